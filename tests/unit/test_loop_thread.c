/* test_loop_thread.c: tasks run on the loop's thread, in the order
 * posted, from any number of posting threads; unrun tasks are dropped. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <ev.h>

#include "rpc/loop_thread.h"

#define POSTERS 4
#define PER_POSTER 5000

typedef struct record {
  pthread_t loop_thread;
  bool on_loop_thread;
  int last_seen[POSTERS];
  bool in_order;
  int total;
} record;

typedef struct item {
  record *r;
  int poster;
  int number;
} item;

static void count(struct ev_loop *loop, void *arg) {
  (void)loop;
  item *it = arg;
  record *r = it->r;
  r->on_loop_thread =
      r->on_loop_thread && pthread_equal(pthread_self(), r->loop_thread);
  r->in_order = r->in_order && it->number == r->last_seen[it->poster] + 1;
  r->last_seen[it->poster] = it->number;
  r->total++;
  free(it);
}

static void note_thread(struct ev_loop *loop, void *arg) {
  (void)loop;
  ((record *)arg)->loop_thread = pthread_self();
}

static void stop(struct ev_loop *loop, void *arg) {
  (void)arg;
  ev_break(loop, EVBREAK_ALL);
}

typedef struct poster_arg {
  rpc_loop_thread *thread;
  record *r;
  int poster;
} poster_arg;

static void *post_many(void *arg) {
  poster_arg *p = arg;
  for (int i = 0; i < PER_POSTER; i++) {
    item *it = malloc(sizeof(*it));
    rpc_loop_task *task = malloc(sizeof(*task));
    *it = (item){p->r, p->poster, i};
    *task = (rpc_loop_task){count, it, true, NULL};
    rpc_loop_thread_post(p->thread, task);
  }
  return NULL;
}

static void test_tasks_from_many_threads_run_in_order(void **state) {
  (void)state;
  rpc_loop_thread *thread = rpc_loop_thread_new(NULL);
  assert_non_null(thread);
  record r = {.on_loop_thread = true, .in_order = true};
  for (int i = 0; i < POSTERS; i++) {
    r.last_seen[i] = -1;
  }
  rpc_loop_task first = {note_thread, &r, false, NULL};
  rpc_loop_thread_post(thread, &first); /* runs before any poster's */
  assert_int_equal(rpc_loop_thread_start(thread, "test-loop"), 0);
  pthread_t posters[POSTERS];
  poster_arg args[POSTERS];
  for (int i = 0; i < POSTERS; i++) {
    args[i] = (poster_arg){thread, &r, i};
    assert_int_equal(pthread_create(&posters[i], NULL, post_many, &args[i]), 0);
  }
  for (int i = 0; i < POSTERS; i++) {
    pthread_join(posters[i], NULL);
  }
  rpc_loop_task last = {stop, NULL, false, NULL};
  rpc_loop_thread_post(thread, &last);
  rpc_loop_thread_join(thread);
  assert_int_equal(r.total, POSTERS * PER_POSTER);
  assert_true(r.in_order);
  assert_true(r.on_loop_thread);
  rpc_loop_thread_free(thread);
}

typedef struct drop_record {
  int ran;     /* tasks whose fn ran */
  int dropped; /* tasks whose dropped(arg) was called */
} drop_record;

static void note_run(struct ev_loop *loop, void *arg) {
  (void)loop;
  ((drop_record *)arg)->ran++;
}

static void note_drop(void *arg) { ((drop_record *)arg)->dropped++; }

static void test_unrun_tasks_are_dropped(void **state) {
  (void)state;
  rpc_loop_thread *thread = rpc_loop_thread_new(NULL);
  assert_non_null(thread);
  drop_record r = {0, 0};
  /* Five the mailbox frees (ASan would see a leak if it did not), five
   * the poster owns (freeing them would be an invalid free). */
  rpc_loop_task owned[5];
  for (int i = 0; i < 5; i++) {
    rpc_loop_task *task = malloc(sizeof(*task));
    assert_non_null(task);
    *task = (rpc_loop_task){note_run, &r, true, NULL, note_drop};
    rpc_loop_thread_post(thread, task);
    owned[i] = (rpc_loop_task){note_run, &r, false, NULL, note_drop};
    rpc_loop_thread_post(thread, &owned[i]);
  }
  rpc_loop_thread_free(thread); /* never started: none runs */
  assert_int_equal(r.ran, 0);
  assert_int_equal(r.dropped, 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tasks_from_many_threads_run_in_order),
      cmocka_unit_test(test_unrun_tasks_are_dropped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
