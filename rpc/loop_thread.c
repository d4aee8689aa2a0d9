/* loop_thread.c: a loop on its own thread, with a task mailbox. */
#include "rpc/loop_thread.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <ev.h>

struct rpc_loop_thread {
  struct ev_loop *loop;
  bool owns_loop;
  pthread_t thread;
  bool started;
  ev_async wakeup;
  pthread_mutex_t lock;
  rpc_loop_task *head, *tail;
};

static void drop(rpc_loop_task *task) {
  if (task->dropped != NULL) {
    task->dropped(task->arg);
  }
  if (task->free_after) {
    free(task);
  }
}

static void on_wakeup(struct ev_loop *loop, ev_async *watcher, int events) {
  (void)events;
  rpc_loop_thread *thread = watcher->data;
  pthread_mutex_lock(&thread->lock);
  rpc_loop_task *list = thread->head;
  thread->head = thread->tail = NULL;
  pthread_mutex_unlock(&thread->lock);
  while (list != NULL) {
    /* Read before fn runs: a task the poster owns may be freed or posted
     * again by fn itself. */
    rpc_loop_task *next = list->next;
    bool free_after = list->free_after;
    list->fn(loop, list->arg);
    if (free_after) {
      free(list);
    }
    list = next;
  }
}

rpc_loop_thread *rpc_loop_thread_new(struct ev_loop *loop) {
  rpc_loop_thread *thread = calloc(1, sizeof(*thread));
  if (thread == NULL) {
    return NULL;
  }
  thread->owns_loop = loop == NULL;
  /* Signals are the program's business, not each loop's. */
  thread->loop =
      loop != NULL ? loop : ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  if (thread->loop == NULL) {
    free(thread);
    return NULL;
  }
  pthread_mutex_init(&thread->lock, NULL);
  ev_async_init(&thread->wakeup, on_wakeup);
  thread->wakeup.data = thread;
  ev_async_start(thread->loop, &thread->wakeup);
  return thread;
}

struct ev_loop *rpc_loop_thread_loop(const rpc_loop_thread *thread) {
  return thread->loop;
}

static void *run(void *arg) {
  rpc_loop_thread *thread = arg;
  ev_run(thread->loop, 0);
  return NULL;
}

int rpc_loop_thread_start(rpc_loop_thread *thread, const char *name) {
  int rv = pthread_create(&thread->thread, NULL, run, thread);
  thread->started = rv == 0;
  if (thread->started) {
    (void)pthread_setname_np(thread->thread, name); /* a name is a nicety */
  }
  return rv;
}

void rpc_loop_thread_post(rpc_loop_thread *thread, rpc_loop_task *task) {
  task->next = NULL;
  pthread_mutex_lock(&thread->lock);
  if (thread->tail != NULL) {
    thread->tail->next = task;
  } else {
    thread->head = task;
  }
  thread->tail = task;
  pthread_mutex_unlock(&thread->lock);
  ev_async_send(thread->loop, &thread->wakeup);
}

void rpc_loop_thread_join(rpc_loop_thread *thread) {
  if (thread->started) {
    pthread_join(thread->thread, NULL);
    thread->started = false;
  }
}

void rpc_loop_thread_free(rpc_loop_thread *thread) {
  if (thread == NULL) {
    return;
  }
  for (rpc_loop_task *task = thread->head, *next; task != NULL; task = next) {
    next = task->next;
    drop(task);
  }
  ev_async_stop(thread->loop, &thread->wakeup);
  if (thread->owns_loop) {
    ev_loop_destroy(thread->loop);
  }
  pthread_mutex_destroy(&thread->lock);
  free(thread);
}

unsigned rpc_usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return (unsigned)CPU_COUNT(&set);
  }
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? (unsigned)online : 1;
}
