/* store/sqlite_schema.c: the SQLite store's schema migrations. */
#include "server/store/sqlite_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/sqlite_history.h"

/* A schema change: SQL, or a function for what SQL cannot do alone. */
typedef struct migration {
  const char *sql;
  int (*run)(sqlite3 *db, char *err, size_t err_size);
} migration;

static int migrate_to_sequence_keys(sqlite3 *db, char *err, size_t err_size);

/* Schema migrations, applied in order; PRAGMA user_version counts those
 * done. Never edit one that has shipped: append a new one. */
static const migration migrations[] = {
    {"CREATE TABLE jobs ("
     "  id TEXT PRIMARY KEY,"
     "  state INTEGER NOT NULL,"
     "  pool_id INTEGER NOT NULL,"
     "  job_type_id INTEGER NOT NULL,"
     "  priority INTEGER NOT NULL,"
     "  not_before_us INTEGER NOT NULL,"
     "  created_us INTEGER NOT NULL,"
     "  lease_expires_us INTEGER NOT NULL,"
     "  idempotency_key TEXT UNIQUE,"
     "  job BLOB NOT NULL,"
     "  result BLOB);"
     "CREATE INDEX jobs_by_state ON jobs(state, pool_id, job_type_id);"
     "CREATE TABLE job_events ("
     "  seq INTEGER PRIMARY KEY,"
     "  job_id TEXT NOT NULL,"
     "  from_state INTEGER NOT NULL,"
     "  to_state INTEGER NOT NULL,"
     "  time_us INTEGER NOT NULL,"
     "  actor TEXT NOT NULL,"
     "  worker_idx INTEGER NOT NULL,"
     "  detail TEXT);"
     "CREATE INDEX job_events_by_job ON job_events(job_id, seq);",
     NULL},
    /* 2: the job splits into the part fixed at Submit (job) and the part
     * that changes (status), so a transition rewrites only the latter. */
    {"ALTER TABLE jobs ADD COLUMN status BLOB;"
     "ALTER TABLE jobs ADD COLUMN subject TEXT;"
     "ALTER TABLE jobs ADD COLUMN lease_seconds INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 0;",
     NULL},
    /* 3: one b-tree per write: rows keyed by the id's number (the rowid),
     * events appended to their job's row, no index but the idempotency
     * keys'. A transition was five b-tree writes; it is one. */
    {"CREATE TABLE jobs_by_sequence ("
     "  seq INTEGER PRIMARY KEY,"
     "  state INTEGER NOT NULL,"
     "  pool_id INTEGER NOT NULL,"
     "  job_type_id INTEGER NOT NULL,"
     "  priority INTEGER NOT NULL,"
     "  not_before_us INTEGER NOT NULL,"
     "  created_us INTEGER NOT NULL,"
     "  lease_expires_us INTEGER NOT NULL,"
     "  lease_seconds INTEGER NOT NULL,"
     "  max_attempts INTEGER NOT NULL,"
     "  idempotency_key TEXT,"
     "  subject TEXT,"
     "  job BLOB NOT NULL,"
     "  status BLOB,"
     "  result BLOB,"
     "  history BLOB);",
     migrate_to_sequence_keys},
    /* 4: lease numbers outlive a Reset (attempts do not). */
    {"ALTER TABLE jobs ADD COLUMN leases INTEGER NOT NULL DEFAULT 0;", NULL},
    /* 5: lease ids carry a secret; a worker re-sends its result with it
     * after a restart. NULL: a row of before (its lease id is void). */
    {"ALTER TABLE jobs ADD COLUMN lease_secret BLOB;", NULL},
};

static const char *column_text(sqlite3_stmt *s, int column) {
  return (const char *)sqlite3_column_text(s, column);
}

int sqlite_run_statement(sqlite3_stmt *stmt) {
  int rv = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return rv == SQLITE_DONE ? 0 : -1;
}

/* Migration 3's work: copies each job of the old table into
 * jobs_by_sequence with its id as the key, appends its events to its
 * history, and drops the old tables. */
static int migrate_to_sequence_keys(sqlite3 *db, char *err, size_t err_size) {
  static const char *const copy_sql =
      "INSERT INTO jobs_by_sequence (" JOB_COLUMNS_V3 ") SELECT ?1, state,"
      " pool_id, job_type_id, priority, not_before_us, created_us,"
      " lease_expires_us, lease_seconds, max_attempts, idempotency_key,"
      " subject, job, status, result FROM jobs WHERE id = ?2";
  static const char *const event_sql =
      "UPDATE jobs_by_sequence SET history = CAST(COALESCE(history, x'') ||"
      " ?2 AS BLOB) WHERE seq = ?1";
  sqlite3_stmt *ids = NULL, *copy = NULL, *events = NULL, *append = NULL;
  int rv = -1;
  uint8_t *buffer = NULL;
  if (sqlite3_prepare_v2(db, "SELECT id FROM jobs", -1, &ids, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(db, copy_sql, -1, &copy, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT job_id, from_state, to_state, time_us, actor,"
                         " worker_idx, detail FROM job_events ORDER BY seq",
                         -1, &events, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, event_sql, -1, &append, NULL) != SQLITE_OK) {
    snprintf(err, err_size, "%s", sqlite3_errmsg(db));
    goto out;
  }
  while (sqlite3_step(ids) == SQLITE_ROW) {
    const char *id = column_text(ids, 0);
    char *end = NULL;
    unsigned long long sequence = id ? strtoull(id, &end, 16) : 0;
    if (id == NULL || strlen(id) != 16 || *end != '\0') {
      snprintf(err, err_size, "job id \"%s\" is not 16 hex digits",
               id ? id : "");
      goto out;
    }
    sqlite3_bind_int64(copy, 1, (sqlite3_int64)sequence);
    sqlite3_bind_text(copy, 2, id, -1, SQLITE_STATIC);
    if (sqlite_run_statement(copy) != 0) {
      snprintf(err, err_size, "copying job %s: %s", id, sqlite3_errmsg(db));
      goto out;
    }
  }
  while (sqlite3_step(events) == SQLITE_ROW) {
    const char *id = column_text(events, 0);
    stored_event event = {
        .from_state = sqlite3_column_int(events, 1),
        .to_state = sqlite3_column_int(events, 2),
        .time_us = sqlite3_column_int64(events, 3),
        .actor = column_text(events, 4),
        .worker_idx = (uint64_t)sqlite3_column_int64(events, 5),
        .detail = column_text(events, 6),
    };
    size_t size = history_event_size(&event);
    uint8_t *grown = realloc(buffer, size);
    if (grown == NULL) {
      snprintf(err, err_size, "out of memory");
      goto out;
    }
    buffer = grown;
    history_event_encode(&event, buffer);
    sqlite3_bind_int64(append, 1,
                       (sqlite3_int64)strtoull(id ? id : "0", NULL, 16));
    sqlite3_bind_blob(append, 2, buffer, (int)size, SQLITE_STATIC);
    if (sqlite_run_statement(append) != 0) {
      snprintf(err, err_size, "copying events: %s", sqlite3_errmsg(db));
      goto out;
    }
  }
  char *message = NULL;
  if (sqlite3_exec(db,
                   "DROP TABLE job_events; DROP TABLE jobs;"
                   " ALTER TABLE jobs_by_sequence RENAME TO jobs;"
                   " CREATE UNIQUE INDEX jobs_by_key ON jobs(idempotency_key)"
                   " WHERE idempotency_key IS NOT NULL;",
                   NULL, NULL, &message) != SQLITE_OK) {
    snprintf(err, err_size, "%s", message ? message : sqlite3_errmsg(db));
    sqlite3_free(message);
    goto out;
  }
  rv = 0;
out:
  free(buffer);
  sqlite3_finalize(ids);
  sqlite3_finalize(copy);
  sqlite3_finalize(events);
  sqlite3_finalize(append);
  return rv;
}

int sqlite_schema_version(void) {
  return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

int sqlite_schema_migrate(sqlite3 *db, char *err, size_t err_size) {
  sqlite3_stmt *s = NULL;
  int version = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) ==
          SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    version = sqlite3_column_int(s, 0);
  }
  sqlite3_finalize(s);
  int known = sqlite_schema_version();
  if (version > known) {
    snprintf(err, err_size,
             "the database has schema version %d; this jobhubd knows %d",
             version, known);
    return -1;
  }
  for (int i = version; i < known; i++) {
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", i + 1);
    char *message = NULL;
    char why[200] = "unknown error";
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, migrations[i].sql, NULL, NULL, &message) !=
            SQLITE_OK ||
        (migrations[i].run != NULL &&
         migrations[i].run(db, why, sizeof(why)) != 0) ||
        sqlite3_exec(db, pragma, NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &message) != SQLITE_OK) {
      snprintf(err, err_size, "migration %d failed: %s", i + 1,
               message ? message : why);
      sqlite3_free(message);
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
  }
  return 0;
}
