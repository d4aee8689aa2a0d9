/* compute.c: a pool of loop threads for CPU work, answering on the
 * worker's loop through a mailbox of its own. */
#include "worker/modules/compute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

struct compute_pool {
  rpc_loop_thread *home; /* the worker's loop, as a mailbox */
  rpc_loop_thread **threads;
  unsigned n_threads, next;
};

static void run_done(struct ev_loop *loop, void *arg) {
  (void)loop;
  compute_task *task = arg;
  task->done(task);
}

static void run_task(struct ev_loop *loop, void *arg) {
  (void)loop;
  compute_task *task = arg;
  task->run(task);
  task->mail = (rpc_loop_task){run_done, task, false, NULL, NULL};
  rpc_loop_thread_post(task->pool->home, &task->mail);
}

static void stop_thread(struct ev_loop *loop, void *arg) {
  (void)arg;
  ev_break(loop, EVBREAK_ALL);
}

compute_pool *compute_pool_new(struct ev_loop *loop, unsigned threads,
                               char *err, size_t err_size) {
  compute_pool *pool = calloc(1, sizeof(*pool));
  if (threads == 0) {
    threads = rpc_usable_cpus();
  }
  if (pool == NULL ||
      (pool->threads = calloc(threads, sizeof(*pool->threads))) == NULL ||
      (pool->home = rpc_loop_thread_new(loop)) == NULL) {
    snprintf(err, err_size, "out of memory");
    compute_pool_free(pool);
    return NULL;
  }
  for (unsigned i = 0; i < threads; i++) {
    pool->threads[i] = rpc_loop_thread_new(NULL);
    if (pool->threads[i] == NULL) {
      snprintf(err, err_size, "out of memory");
      compute_pool_free(pool);
      return NULL;
    }
    pool->n_threads++;
    char name[16];
    snprintf(name, sizeof(name), "compute-%u", i % 1000);
    int rv = rpc_loop_thread_start(pool->threads[i], name);
    if (rv != 0) {
      snprintf(err, err_size, "cannot start a compute thread: %s",
               strerror(rv));
      compute_pool_free(pool);
      return NULL;
    }
  }
  return pool;
}

void compute_pool_submit(compute_pool *pool, compute_task *task) {
  task->pool = pool;
  task->mail = (rpc_loop_task){run_task, task, false, NULL, NULL};
  rpc_loop_thread_post(pool->threads[pool->next], &task->mail);
  pool->next = (pool->next + 1) % pool->n_threads;
}

void compute_pool_free(compute_pool *pool) {
  if (pool == NULL) {
    return;
  }
  for (unsigned i = 0; i < pool->n_threads; i++) {
    /* Posted last: the thread runs what it holds first. */
    rpc_loop_task stop = {stop_thread, NULL, false, NULL, NULL};
    rpc_loop_thread_post(pool->threads[i], &stop);
    rpc_loop_thread_join(pool->threads[i]);
    rpc_loop_thread_free(pool->threads[i]);
  }
  free(pool->threads);
  if (pool->home != NULL) {
    /* The dones owed: the home mailbox is drained on its loop's thread,
     * which is this one; run it once without blocking. */
    ev_run(rpc_loop_thread_loop(pool->home), EVRUN_NOWAIT);
    rpc_loop_thread_free(pool->home);
  }
  free(pool);
}
