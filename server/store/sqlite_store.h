/* sqlite_store.h: the SQLite store's state, shared by the files of the
 * store (sqlite.c: the operations on the loop thread; sqlite_writer.c:
 * the writer and syncer threads). Nothing outside server/store/sqlite*.c
 * includes it. */
#ifndef JOBHUB_SERVER_STORE_SQLITE_STORE_H
#define JOBHUB_SERVER_STORE_SQLITE_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <sqlite3.h>

#include "server/store/sqlite.h"
#include "server/store/sqlite_reader.h"
#include "server/store/store.h"

/* A queued write: the record and, after it in data, copies of every
 * string and blob it points to, and the encoded event (history). */
typedef struct write_op {
  struct write_op *next;
  job_store_done_fn done;
  void *arg;
  int status;
  stored_job job;
  const uint8_t *history; /* the events to append, or NULL */
  size_t history_size;
  /* Set by the writer: a later write of the same job in the group that
   * carries this one's changes too, and the events the two make. */
  struct write_op *merged_into;
  uint8_t *merged_history; /* owned */
  bool probe;              /* no job: a write that tests the disk */
  size_t capacity;         /* of data */
  uint8_t data[];
} write_op;

/* Write ops are made and freed on the store's loop thread, a group's worth
 * at a time; the common ones (a job without a big payload or result) are
 * of one size and kept for reuse, so that a group does not go through
 * malloc and free in a burst. */
#define WRITE_OP_POOLED_CAPACITY 1024
#define WRITE_OP_POOL_MAX 4096

struct sqlite_store {
  job_store base; /* first: the handle the core holds */
  sqlite3 *writer;
  sqlite_reader *reader;
  sqlite3_stmt *save_job;
  sqlite3_stmt *update_job;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  write_op *queue_head, *queue_tail;       /* waiting for the writer */
  write_op *unsynced_head, *unsynced_tail; /* committed, not yet synced */
  write_op *done_head, *done_tail;         /* durable, callbacks owed */
  bool closing;
  bool writer_done; /* the writer has stopped: the syncer drains, stops */
  int wal_fd;       /* the -wal file, synced by the syncer */
  pthread_t syncer;
  bool syncer_started;
  pthread_cond_t sync_wake;
  write_op **merge_slots; /* the writer's table for merge_writes */
  size_t merge_capacity;
  write_op *spare_ops; /* the loop thread's pool of pooled-size ops */
  size_t spare_count;
  struct ev_loop *loop;
  ev_async completed;
  void (*on_written)(uint64_t sequence, void *arg);
  void *on_written_arg;
  atomic_uint_fast64_t commits;
  atomic_uint_fast64_t writes;
  char last_error[256]; /* the latest failure's cause; under lock */
  /* The loop's: whether the latest write completed wrote, the probe. */
  bool writable;
  bool probe_pending;
  ev_timer probe_timer;
  void (*on_writable)(bool writable, void *arg);
  void *on_writable_arg;
};

#endif
