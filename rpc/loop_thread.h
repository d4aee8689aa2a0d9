/* loop_thread.h: a libev loop on a thread of its own, with a mailbox:
 * other threads post tasks, which run on the loop's thread in the order
 * posted. The server's loops are these; so will the hub core be. */
#ifndef JOBHUB_RPC_LOOP_THREAD_H
#define JOBHUB_RPC_LOOP_THREAD_H

#include <stdbool.h>

struct ev_loop;

/* A task: fn(loop, arg) on the loop's thread. When free_after is true the
 * loop thread frees the task (malloc'd by the poster) once it ran or was
 * dropped; otherwise the poster owns it. A task that never runs (still
 * queued when the mailbox is freed) gets dropped(arg) instead, when set,
 * to release what it carries. */
typedef struct rpc_loop_task {
  void (*fn)(struct ev_loop *loop, void *arg);
  void *arg;
  bool free_after;
  struct rpc_loop_task *next;
  void (*dropped)(void *arg);
} rpc_loop_task;

typedef struct rpc_loop_thread rpc_loop_thread;

/* rpc_loop_thread_new makes the mailbox on loop, or on a loop of its own
 * when loop is NULL. Returns NULL when memory is exhausted. */
rpc_loop_thread *rpc_loop_thread_new(struct ev_loop *loop);

/* rpc_loop_thread_loop returns the loop. */
struct ev_loop *rpc_loop_thread_loop(const rpc_loop_thread *thread);

/* rpc_loop_thread_start runs the loop on a new thread named name (at most
 * 15 characters; what top -H and perf show) until a task breaks it
 * (ev_break). Returns 0 or an errno value. */
int rpc_loop_thread_start(rpc_loop_thread *thread, const char *name);

/* rpc_loop_thread_post queues task and wakes the loop. Thread-safe; never
 * fails (the task is the caller's allocation). */
void rpc_loop_thread_post(rpc_loop_thread *thread, rpc_loop_task *task);

/* rpc_loop_thread_join waits for a started thread to end. */
void rpc_loop_thread_join(rpc_loop_thread *thread);

/* rpc_loop_thread_free frees the mailbox (after join, or if never
 * started), dropping tasks that never ran, and the loop if it is its own.
 * Watchers others started on the loop must be stopped before. */
void rpc_loop_thread_free(rpc_loop_thread *thread);

/* rpc_usable_cpus is how many CPUs this process may run on (its
 * affinity mask), at least 1. */
unsigned rpc_usable_cpus(void);

#endif
