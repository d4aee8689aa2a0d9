/* legacy.h: the paths the work manager's clients call today (SPEC "HTTP
 * face, auth, browsers, operations (settled)", legacy paths), as they
 * call them: `POST /getWork?client=ID` answers the unit of work as it was
 * submitted (the job's config.module_params, with "name" = its subject)
 * leased to that client, or 410 when none is queued; `PUT
 * /storeResult/{table}?client=ID` and `/storeError/{table}` end the job of
 * subject {table} that client holds with the raw body as its result (job
 * DONE) or error (FAILED, no retry): 404 when it holds none, 410 when
 * that job is already final. 401 without ?client=. Pool and job type come
 * from `?pool=&jobType=`, else the face's defaults (--legacy-pool,
 * --legacy-job-type). Each is a call of Workers.Lease, Complete or Fail
 * through the call bridge, so auth and limits are the gRPC ones. */
#ifndef JOBHUB_SERVER_HTTP_LEGACY_H
#define JOBHUB_SERVER_HTTP_LEGACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/http/response.h"

typedef enum legacy_path {
  LEGACY_GET_WORK,
  LEGACY_STORE_RESULT,
  LEGACY_STORE_ERROR,
} legacy_path;

/* The pool and job type of a legacy request. */
typedef struct legacy_target {
  uint32_t pool_id;
  uint32_t job_type_id;
} legacy_target;

/* legacy_path_of tells whether method and path[0..len) (no query) are a
 * work manager path (one trailing '/' accepted), and which; for the store
 * paths *table and *table_len give the raw (percent-encoded) {table}. */
bool legacy_path_of(const char *method, const char *path, size_t len,
                    legacy_path *which, const char **table, size_t *table_len);

/* legacy_read_target reads ?pool= and ?jobType= of query (NULL: none)
 * over defaults into *target, ignoring other keys. Returns 0, or -1 with a
 * message in err for a value that is not a uint32. */
int legacy_read_target(const char *query, const legacy_target *defaults,
                       legacy_target *target, char *err, size_t err_size);

/* legacy_serve serves the exchange's request as the work manager path
 * which, with the raw {table} of the store paths, query (the text after
 * '?', or NULL) and the default pool and job type. The request is taken
 * and finished. */
void legacy_serve(const http_exchange *exchange, legacy_path which,
                  const char *table, size_t table_len, const char *query,
                  const legacy_target *defaults);

#endif
