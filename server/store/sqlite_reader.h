/* sqlite_reader.h: the SQLite store's reads, on a connection of their own
 * (read-only; WAL lets it read while the writer writes) and a thread of
 * their own, so that a slow read never stalls the loop that asked for it:
 * load_result and load_events are queued to the reader thread, and their
 * completions come back on the loop, in the order they were asked for
 * (an ev_async, as the writer's completions). The recovery's scan of
 * every job runs on the calling thread, at start-up. */
#ifndef JOBHUB_SERVER_STORE_SQLITE_READER_H
#define JOBHUB_SERVER_STORE_SQLITE_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "server/store/store.h"

typedef struct sqlite_reader sqlite_reader;

/* sqlite_reader_open opens the database at path (already created and
 * migrated by the writer) read-only and starts the reader thread, whose
 * completions run on loop. Returns NULL with a message in err. */
sqlite_reader *sqlite_reader_open(const char *path, struct ev_loop *loop,
                                  char *err, size_t err_size);

/* sqlite_reader_load_jobs is job_store_load_jobs (store.h), on the
 * calling thread. */
int sqlite_reader_load_jobs(sqlite_reader *reader,
                            int (*each)(const stored_job *job, void *arg),
                            void *arg);

/* sqlite_reader_load queues a read of job sequence's events (events
 * true) or result; done runs once, on the loop, as for
 * job_store_load_result (store.h). A read begins after every commit that
 * returned before it was queued. Returns 0, or -1 (no memory, or the
 * reader is closing: done is then never called). */
int sqlite_reader_load(sqlite_reader *reader, uint64_t sequence, bool events,
                       job_store_read_fn done, void *arg);

/* sqlite_reader_close does the reads still queued, runs their completions
 * on the calling thread (the loop's; a read they ask for is refused),
 * stops the thread, closes the connection and frees the reader. NULL:
 * nothing. */
void sqlite_reader_close(sqlite_reader *reader);

#endif
