/* sqlite_schema.h: the columns of the SQLite store's jobs table, in the
 * order its writer binds them and its reader reads them, and the
 * migrations that make the table (sqlite_schema.c). */
#ifndef JOBHUB_SERVER_STORE_SQLITE_SCHEMA_H
#define JOBHUB_SERVER_STORE_SQLITE_SCHEMA_H

#include <stddef.h>

#include <sqlite3.h>

/* The columns of migration 3, and the ones after it. */
#define JOB_COLUMNS_V3                                                         \
  "seq, state, pool_id, job_type_id, priority, not_before_us, created_us,"     \
  " lease_expires_us, lease_seconds, max_attempts, idempotency_key,"           \
  " subject, job, status, result"
#define JOB_COLUMNS JOB_COLUMNS_V3 ", leases, lease_secret"

/* sqlite_run_statement steps stmt (bound) to its end, then resets it and
 * clears its bindings for the next use. Returns 0, or -1 (the step
 * failed: sqlite3_errcode of its connection says why). */
int sqlite_run_statement(sqlite3_stmt *stmt);

/* sqlite_schema_version is the schema version (PRAGMA user_version) of
 * this jobhubd: how many migrations it knows. */
int sqlite_schema_version(void);

/* sqlite_schema_migrate brings the database of db to the schema this
 * jobhubd knows, one transaction per migration. Returns 0, or -1 with a
 * message in err (a newer schema than this jobhubd knows, or a failed
 * migration, rolled back). */
int sqlite_schema_migrate(sqlite3 *db, char *err, size_t err_size);

#endif
