/* fake_store.c: the in-memory job store of the core's unit tests. */
#include "tests/unit/fake_store.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

/* A write or read whose completion has not run yet. */
typedef struct fake_pending {
  struct fake_pending *next;
  uint64_t sequence;
  bool is_read;
  job_store_done_fn done;
  job_store_read_fn read_done;
  void *arg;
} fake_pending;

typedef struct fake_store {
  job_store base; /* first: the core reaches ops through it */
  struct ev_loop *loop;
  ev_timer completer; /* runs the pending completions on the loop */
  fake_pending *first, *last;
  size_t pending;
  bool closing; /* completions asked for now are refused */
  void (*written)(uint64_t sequence, void *arg);
  void *written_arg;
  uint64_t writes;
  int state[FAKE_STORE_MAX_JOBS];
  fake_event events[FAKE_STORE_MAX_JOBS][FAKE_STORE_MAX_EVENTS];
  size_t n_events[FAKE_STORE_MAX_JOBS];
} fake_store;

static const stored_job *image;
static size_t image_count;
static fake_store *opened; /* the store opened last, until closed */

void fake_store_set_image(const stored_job *jobs, size_t count) {
  image = jobs;
  image_count = count;
}

int fake_store_state(uint64_t sequence) {
  return sequence < FAKE_STORE_MAX_JOBS ? opened->state[sequence] : -1;
}

const fake_event *fake_store_events(uint64_t sequence, size_t *count) {
  *count = sequence < FAKE_STORE_MAX_JOBS ? opened->n_events[sequence] : 0;
  return sequence < FAKE_STORE_MAX_JOBS ? opened->events[sequence] : NULL;
}

size_t fake_store_pending(void) { return opened->pending; }

static fake_store *fake_of(job_store *store) { return (fake_store *)store; }

/* Runs every completion queued so far, in order; those they queue wait
 * for the next turn of the loop. */
static void complete_pending(struct ev_loop *loop, ev_timer *timer,
                             int events) {
  (void)loop;
  (void)events;
  fake_store *store = timer->data;
  fake_pending *list = store->first;
  store->first = store->last = NULL;
  while (list != NULL) {
    fake_pending *p = list;
    list = p->next;
    store->pending--;
    if (p->is_read) {
      stored_read read = {.sequence = p->sequence};
      p->read_done(0, &read, p->arg);
    } else {
      if (store->written != NULL) {
        store->written(p->sequence, store->written_arg);
      }
      if (p->done != NULL) {
        p->done(0, p->arg);
      }
    }
    free(p);
  }
}

static int queue_pending(fake_store *store, const fake_pending *what) {
  if (store->closing) {
    return -1;
  }
  fake_pending *p = malloc(sizeof(*p));
  if (p == NULL) {
    return -1;
  }
  *p = *what;
  p->next = NULL;
  if (store->last != NULL) {
    store->last->next = p;
  } else {
    store->first = p;
  }
  store->last = p;
  store->pending++;
  if (!ev_is_active(&store->completer)) {
    ev_timer_set(&store->completer, 0, 0);
    ev_timer_start(store->loop, &store->completer);
  }
  return 0;
}

static job_store *fake_open(const char *dir, struct ev_loop *loop, char *err,
                            size_t err_size) {
  (void)dir;
  (void)err;
  (void)err_size;
  fake_store *store = calloc(1, sizeof(*store));
  if (store == NULL) {
    return NULL;
  }
  store->base.ops = &fake_store_ops;
  store->loop = loop;
  ev_timer_init(&store->completer, complete_pending, 0, 0);
  store->completer.data = store;
  for (size_t i = 0; i < FAKE_STORE_MAX_JOBS; i++) {
    store->state[i] = -1;
  }
  opened = store;
  return &store->base;
}

static int fake_save_job(job_store *base, const stored_job *job,
                         const stored_event *event, job_store_done_fn done,
                         void *arg) {
  fake_store *store = fake_of(base);
  if (job->sequence >= FAKE_STORE_MAX_JOBS) {
    return -1;
  }
  fake_pending write = {.sequence = job->sequence, .done = done, .arg = arg};
  if (queue_pending(store, &write) != 0) {
    return -1;
  }
  store->writes++;
  store->state[job->sequence] = job->state;
  for (; event != NULL; event = event->next) {
    size_t *n = &store->n_events[job->sequence];
    if (*n < FAKE_STORE_MAX_EVENTS) {
      store->events[job->sequence][(*n)++] =
          (fake_event){event->from_state, event->to_state, event->worker_idx};
    }
  }
  return 0;
}

static int fake_load_jobs(job_store *store,
                          int (*each)(const stored_job *job, void *arg),
                          void *arg) {
  (void)store;
  for (size_t i = 0; i < image_count; i++) {
    int rv = each(&image[i], arg);
    if (rv != 0) {
      return rv;
    }
  }
  return 0;
}

static int fake_read(job_store *base, uint64_t sequence, job_store_read_fn done,
                     void *arg) {
  fake_pending read = {
      .sequence = sequence, .is_read = true, .read_done = done, .arg = arg};
  return queue_pending(fake_of(base), &read);
}

static uint64_t fake_writes(const job_store *store) {
  return ((const fake_store *)store)->writes;
}

static void fake_on_written(job_store *store,
                            void (*fn)(uint64_t sequence, void *arg),
                            void *arg) {
  fake_of(store)->written = fn;
  fake_of(store)->written_arg = arg;
}

static void fake_error(job_store *store, char *why, size_t why_size) {
  (void)store;
  if (why_size > 0) {
    why[0] = '\0';
  }
}

/* Never turns unwritable. */
static void fake_on_writable(job_store *store,
                             void (*fn)(bool writable, void *arg), void *arg) {
  (void)store;
  (void)fn;
  (void)arg;
}

/* Runs the completions still owed, on the calling thread, and frees. */
static void fake_close(job_store *base) {
  fake_store *store = fake_of(base);
  ev_timer_stop(store->loop, &store->completer);
  store->closing = true;
  complete_pending(store->loop, &store->completer, 0);
  if (opened == store) {
    opened = NULL;
  }
  free(store);
}

const job_store_ops fake_store_ops = {
    .name = "fake",
    .open = fake_open,
    .save_job = fake_save_job,
    .load_jobs = fake_load_jobs,
    .load_result = fake_read,
    .load_events = fake_read,
    .commits = fake_writes, /* one write per commit */
    .writes = fake_writes,
    .on_written = fake_on_written,
    .error = fake_error,
    .on_writable = fake_on_writable,
    .close = fake_close,
};
