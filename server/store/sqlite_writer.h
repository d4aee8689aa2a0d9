/* sqlite_writer.h: the SQLite store's writer side, on two threads of its
 * own. The writer takes the queued writes as one group, merges the
 * writes of a job within it, and commits it in one transaction without
 * syncing; the syncer's one fdatasync of the WAL then makes the whole
 * group durable, and hands it to the loop (store->completed) for its
 * callbacks. A write refused alone (a constraint) fails alone. */
#ifndef JOBHUB_SERVER_STORE_SQLITE_WRITER_H
#define JOBHUB_SERVER_STORE_SQLITE_WRITER_H

#include <stddef.h>

#include "server/store/sqlite_store.h"

/* sqlite_writer_prepare prepares the writer's statements on
 * store->writer (finalized by the store's close). Returns 0, or -1 with a
 * message in err. */
int sqlite_writer_prepare(sqlite_store *store, char *err, size_t err_size);

/* sqlite_writer_main and sqlite_syncer_main are the writer's and the
 * syncer's thread functions (arg: the store). The writer stops once
 * store->closing is set and the queue is empty, setting writer_done; the
 * syncer then syncs what is left and stops. */
void *sqlite_writer_main(void *arg);
void *sqlite_syncer_main(void *arg);

/* write_op_append appends list (linked by next; NULL: nothing) to the list
 * of head and tail. The caller holds store->lock if the list is shared. */
void write_op_append(write_op **head, write_op **tail, write_op *list);

#endif
