/* sqlite.h: the job store on SQLite in WAL mode, one file in the data
 * folder (jobhub.db). Writes are queued to a writer thread that commits
 * them in groups: every write that arrives while a commit runs goes into
 * the next transaction, and a syncer thread's fdatasync makes a whole
 * group durable. Each write's callback runs on the core's loop once the
 * write is durable (or failed): a job is acknowledged only then. Reads
 * run on a reader thread with a connection of its own
 * (sqlite_reader.h), which WAL lets read while the writer writes. */
#ifndef JOBHUB_SERVER_STORE_SQLITE_H
#define JOBHUB_SERVER_STORE_SQLITE_H

#include "server/store/store.h"

typedef struct sqlite_store sqlite_store;

/* job_store_sqlite_ops: the SQLite store's operations, for hub_open
 * (hub_options.store) and job_store_open. */
extern const job_store_ops job_store_sqlite_ops;

#endif
