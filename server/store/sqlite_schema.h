/* sqlite_schema.h: the columns of the SQLite store's jobs table, in the
 * order its writer binds them and its reader reads them (sqlite.c has the
 * migrations that make the table). */
#ifndef JOBHUB_SERVER_STORE_SQLITE_SCHEMA_H
#define JOBHUB_SERVER_STORE_SQLITE_SCHEMA_H

/* The columns of migration 3, and the ones after it. */
#define JOB_COLUMNS_V3                                                         \
  "seq, state, pool_id, job_type_id, priority, not_before_us, created_us,"     \
  " lease_expires_us, lease_seconds, max_attempts, idempotency_key,"           \
  " subject, job, status, result"
#define JOB_COLUMNS JOB_COLUMNS_V3 ", leases, lease_secret"

#endif
