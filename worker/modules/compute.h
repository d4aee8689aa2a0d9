/* compute.h: threads for the modules whose work is CPU (forecast,
 * anomaly), so that the worker's loop keeps heartbeating and taking
 * messages while they compute. A task runs on one of the pool's threads,
 * then its done runs on the worker's loop. */
#ifndef JOBHUB_WORKER_MODULES_COMPUTE_H
#define JOBHUB_WORKER_MODULES_COMPUTE_H

#include <stddef.h>

#include "rpc/loop_thread.h"

struct ev_loop;

typedef struct compute_pool compute_pool;

/* A task the caller allocates; the pool borrows it from submit until done
 * has run. */
typedef struct compute_task {
  rpc_loop_task mail;                      /* the pool's */
  compute_pool *pool;                      /* the pool's */
  void (*run)(struct compute_task *task);  /* on a pool thread */
  void (*done)(struct compute_task *task); /* then on the loop */
} compute_task;

/* compute_pool_new starts threads (0: one per usable CPU) whose results
 * come back to loop. Returns NULL with a message in err. */
compute_pool *compute_pool_new(struct ev_loop *loop, unsigned threads,
                               char *err, size_t err_size);

/* compute_pool_submit queues task on the next thread (round robin). */
void compute_pool_submit(compute_pool *pool, compute_task *task);

/* compute_pool_free stops the threads after the tasks they hold ran, then
 * runs the dones owed (on the calling thread, which is the loop's). */
void compute_pool_free(compute_pool *pool);

#endif
