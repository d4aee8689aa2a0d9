/* legacy.c: the work manager's paths over the call bridge (see the
 * header). */
#include "server/http/legacy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobhub/v1/workers.pb-c.h"
#include "rpc/call_bridge.h"
#include "rpc/frame.h"
#include "rpc/json.h"
#include "server/http/percent.h"

/* The answers SPEC settles besides Google's mapping. */
#define HTTP_UNAUTHORIZED 401
#define HTTP_GONE 410
#define HTTP_CONTENT_TOO_LARGE 413

/* Longest ?client= value and {table} taken (decoded). */
#define LEGACY_TEXT_MAX 1024

typedef struct legacy {
  http_exchange exchange;
  legacy_path which;
  legacy_target target;
  char client[LEGACY_TEXT_MAX + 1];
  char table[LEGACY_TEXT_MAX + 1];
  bool too_large;    /* the body went past the limit: 413 */
  bool no_work;      /* getWork found no queued job: 410 */
  bool responded;    /* the answer's headers went out */
  bool answer_ready; /* out holds the answer (a write came back FULL) */
  rpc_buffer body;   /* the request body */
  rpc_buffer out;    /* the answer */
  char error[256];   /* why the answer has no JSON form: INTERNAL */
} legacy;

static const char *const rpc_paths[] = {
    [LEGACY_GET_WORK] = "/jobhub.v1.Workers/Lease",
    [LEGACY_STORE_RESULT] = "/jobhub.v1.Workers/Complete",
    [LEGACY_STORE_ERROR] = "/jobhub.v1.Workers/Fail",
};

bool legacy_path_of(const char *method, const char *path, size_t len,
                    legacy_path *which, const char **table, size_t *table_len) {
  static const struct {
    const char *method, *prefix;
    legacy_path which;
  } paths[] = {
      {"POST", "/getWork", LEGACY_GET_WORK},
      {"PUT", "/storeResult/", LEGACY_STORE_RESULT},
      {"PUT", "/storeError/", LEGACY_STORE_ERROR},
  };
  if (len > 1 && path[len - 1] == '/') {
    len--; /* SPEC: a trailing slash is accepted */
  }
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    size_t prefix = strlen(paths[i].prefix);
    if (strcmp(method, paths[i].method) != 0 || len < prefix ||
        memcmp(path, paths[i].prefix, prefix) != 0) {
      continue;
    }
    const char *rest = path + prefix;
    size_t rest_len = len - prefix;
    bool store = paths[i].which != LEGACY_GET_WORK;
    if (store ? rest_len == 0 || memchr(rest, '/', rest_len) != NULL
              : rest_len != 0) {
      continue;
    }
    *which = paths[i].which;
    *table = rest;
    *table_len = rest_len;
    return true;
  }
  return false;
}

/* Finds key in query and decodes its value into value (size bytes, NUL
 * terminated). Returns 1 found, 0 absent, -1 malformed or too long. */
static int query_value(const char *query, const char *key, char *value,
                       size_t size) {
  for (const char *p = query; p != NULL && *p != '\0';) {
    size_t pair = strcspn(p, "&");
    size_t key_len = strcspn(p, "=&");
    char name[64];
    size_t name_len = 0;
    if (key_len < sizeof(name) &&
        http_percent_decode(p, key_len, HTTP_PERCENT_QUERY, name, &name_len) ==
            0 &&
        name_len == strlen(key) && memcmp(name, key, name_len) == 0) {
      const char *text = key_len < pair ? p + key_len + 1 : p + pair;
      size_t text_len = (size_t)(p + pair - text);
      size_t len = 0;
      if (text_len >= size ||
          http_percent_decode(text, text_len, HTTP_PERCENT_QUERY, value,
                              &len) != 0 ||
          memchr(value, '\0', len) != NULL) {
        return -1;
      }
      value[len] = '\0';
      return 1;
    }
    p += pair + (p[pair] == '&');
  }
  return 0;
}

static int read_uint32(const char *query, const char *key, uint32_t *out,
                       char *err, size_t err_size) {
  char text[16];
  int found = query_value(query, key, text, sizeof(text));
  if (found == 0) {
    return 0;
  }
  char *end = NULL;
  unsigned long long value = found > 0 ? strtoull(text, &end, 10) : 0;
  if (found < 0 || text[0] < '0' || text[0] > '9' || *end != '\0' ||
      value > UINT32_MAX) {
    snprintf(err, err_size, "?%s= must be a whole number up to %u", key,
             UINT32_MAX);
    return -1;
  }
  *out = (uint32_t)value;
  return 0;
}

int legacy_read_target(const char *query, const legacy_target *defaults,
                       legacy_target *target, char *err, size_t err_size) {
  *target = *defaults;
  return read_uint32(query, "pool", &target->pool_id, err, err_size) == 0 &&
                 read_uint32(query, "jobType", &target->job_type_id, err,
                             err_size) == 0
             ? 0
             : -1;
}

/* Only Authorization reaches the call: these clients send no metadata. */
static const char *call_header(const char *name) {
  return strcmp(name, "authorization") == 0 ? name : NULL;
}

static void on_body(rpc_bridge *bridge, void *arg, const uint8_t *data,
                    size_t len) {
  legacy *l = arg;
  http_collect_body(bridge, &l->body, data, len, &l->too_large);
}

/* Packs message into out, then feeds it to the call. */
static void feed(rpc_bridge *bridge, legacy *l, const ProtobufCMessage *m) {
  size_t size = protobuf_c_message_get_packed_size(m);
  rpc_buffer_reset(&l->out);
  if (rpc_buffer_reserve(&l->out, size) != 0) {
    rpc_bridge_fail(bridge, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  l->out.len = protobuf_c_message_pack(m, l->out.data);
  rpc_bridge_feed_message(bridge, false, l->out.data, l->out.len);
  rpc_buffer_reset(&l->out);
}

/* The stored result: the raw body as data, and as value too when it is
 * JSON (what GET /jobs/{id}/results gives back). */
static void store_result(rpc_bridge *bridge, legacy *l) {
  Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
  Jobhub__V1__CompleteRequest request = JOBHUB__V1__COMPLETE_REQUEST__INIT;
  rpc_buffer value;
  rpc_buffer_init(&value);
  char err[64];
  if (rpc_json_to_wire(l->exchange.pool, "google.protobuf.Value",
                       (const char *)l->body.data, l->body.len, &value, err,
                       sizeof(err)) == 0) {
    result.value = google__protobuf__value__unpack(NULL, value.len, value.data);
  }
  result.data = (ProtobufCBinaryData){l->body.len, l->body.data};
  request.client_id = l->client;
  request.table = l->table;
  request.result = &result;
  feed(bridge, l, &request.base);
  if (result.value != NULL) {
    google__protobuf__value__free_unpacked(result.value, NULL);
  }
  rpc_buffer_free(&value);
}

static void on_body_end(rpc_bridge *bridge, void *arg) {
  legacy *l = arg;
  if (l->too_large) {
    return;
  }
  if (l->which == LEGACY_GET_WORK) {
    Jobhub__V1__LeaseRequest request = JOBHUB__V1__LEASE_REQUEST__INIT;
    request.client_id = l->client;
    request.pool_id = l->target.pool_id;
    request.n_job_type_ids = 1;
    request.job_type_ids = &l->target.job_type_id;
    request.max_jobs = 1;
    feed(bridge, l, &request.base);
  } else if (l->which == LEGACY_STORE_RESULT) {
    store_result(bridge, l);
  } else if (rpc_buffer_append(&l->body, "", 1) != 0) {
    rpc_bridge_fail(bridge, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    /* The error text: the wire check refuses one that is not UTF-8. */
    Jobhub__V1__FailRequest request = JOBHUB__V1__FAIL_REQUEST__INIT;
    request.client_id = l->client;
    request.table = l->table;
    request.error = (char *)l->body.data;
    feed(bridge, l, &request.base);
  }
}

/* getWork's answer: the job's module_params, with "name" its subject
 * unless the params have one. NULL job: no work. */
static int unit_of_work(legacy *l, const Jobhub__V1__Job *job) {
  json_t *params = NULL;
  rpc_buffer text;
  rpc_buffer_init(&text);
  const Google__Protobuf__Struct *given =
      job->config != NULL ? job->config->module_params : NULL;
  if (given != NULL) {
    size_t size = protobuf_c_message_get_packed_size(&given->base);
    if (rpc_buffer_reserve(&l->out, size) == 0) {
      size_t len = protobuf_c_message_pack(&given->base, l->out.data);
      if (rpc_json_from_wire(l->exchange.pool, "google.protobuf.Struct",
                             l->out.data, len, NULL, &text, l->error,
                             sizeof(l->error)) == 0) {
        params = json_loadb((const char *)text.data, text.len, 0, NULL);
      }
    }
  } else {
    params = json_object();
  }
  rpc_buffer_free(&text);
  rpc_buffer_reset(&l->out);
  if (params != NULL && json_object_get(params, "name") == NULL &&
      json_object_set_new(params, "name", http_json_message(job->subject)) !=
          0) {
    json_decref(params);
    params = NULL;
  }
  return http_json_dump(params, &l->out);
}

/* Converts the answer into out: the unit of work, or the Job. */
static int make_answer(rpc_bridge *bridge, legacy *l, const uint8_t *message,
                       size_t len) {
  if (l->which != LEGACY_GET_WORK) {
    return rpc_json_from_wire(l->exchange.pool,
                              rpc_bridge_method(bridge)->output->name, message,
                              len, NULL, &l->out, l->error, sizeof(l->error));
  }
  Jobhub__V1__LeaseResponse *leased =
      jobhub__v1__lease_response__unpack(NULL, len, message);
  int rv = -1;
  if (leased != NULL && leased->n_assignments == 0) {
    l->no_work = true;
    rv = 0;
  } else if (leased != NULL && leased->assignments[0]->job != NULL) {
    rv = unit_of_work(l, leased->assignments[0]->job);
  }
  if (leased != NULL) {
    jobhub__v1__lease_response__free_unpacked(leased, NULL);
  }
  return rv;
}

static int write_message(rpc_bridge *bridge, void *arg, const uint8_t *framed,
                         size_t length) {
  legacy *l = arg;
  if (!l->answer_ready) {
    rpc_buffer_reset(&l->out);
    if (make_answer(bridge, l, framed + RPC_FRAME_HEADER_SIZE, length) != 0 &&
        l->error[0] == '\0') {
      snprintf(l->error, sizeof(l->error), "the answer has no JSON form");
    }
    l->answer_ready = true;
  }
  if (l->error[0] != '\0' || l->no_work) {
    return 0; /* finish answers */
  }
  int rv = 0;
  if (!l->responded) {
    rv = http_respond_call(&l->exchange, 200, "application/json",
                           rpc_bridge_initial_metadata(bridge), NULL, NULL);
    l->responded = rv == 0;
  }
  return rv == 0 ? rpc_http_request_write(l->exchange.request, l->out.data,
                                          l->out.len)
                 : rv;
}

/* The HTTP status of a failed call: SPEC's 410 for a job already final
 * (FAILED_PRECONDITION) and 413, else Google's mapping. */
static int failure_status(const legacy *l, rpc_status_code code) {
  if (l->too_large) {
    return HTTP_CONTENT_TOO_LARGE;
  }
  return code == RPC_STATUS_FAILED_PRECONDITION ? HTTP_GONE
                                                : rpc_status_to_http(code);
}

static int finish(rpc_bridge *bridge, void *arg, const rpc_bridge_end *end) {
  legacy *l = arg;
  (void)bridge;
  rpc_status_code code = end->code;
  const char *message = end->message;
  int status = 200;
  char text[128];
  if (code == RPC_STATUS_OK && l->error[0] != '\0') {
    code = RPC_STATUS_INTERNAL;
    message = l->error;
    status = rpc_status_to_http(code);
  } else if (code == RPC_STATUS_OK && l->no_work) {
    code = RPC_STATUS_NOT_FOUND;
    snprintf(text, sizeof(text),
             "no more work: no job of pool %u, job type "
             "%u is queued",
             l->target.pool_id, l->target.job_type_id);
    message = text;
    status = HTTP_GONE;
  } else if (code != RPC_STATUS_OK) {
    status = failure_status(l, code);
  }
  int rv = 0;
  if (!l->responded && code != RPC_STATUS_OK) {
    rpc_buffer_reset(&l->out);
    rv = http_json_error_body((int)code, message, &l->out) == 0
             ? http_respond_call(&l->exchange, status, "application/json",
                                 end->initial_metadata, NULL, NULL)
             : RPC_HTTP_REQUEST_ERR_NOMEM;
    if (rv == 0) {
      l->responded = true;
      rv = rpc_http_request_write(l->exchange.request, l->out.data, l->out.len);
    }
  }
  if (rv == RPC_HTTP_REQUEST_ERR_FULL) {
    return rv;
  }
  rpc_http_request_finish(l->exchange.request, NULL, 0);
  return rv;
}

static void legacy_free(void *arg) {
  legacy *l = arg;
  rpc_buffer_free(&l->body);
  rpc_buffer_free(&l->out);
  free(l);
}

static const rpc_bridge_codec codec = {
    .call_header = call_header,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .write_message = write_message,
    .finish = finish,
    .free = legacy_free,
};

void legacy_serve(const http_exchange *exchange, legacy_path which,
                  const char *table, size_t table_len, const char *query,
                  const legacy_target *defaults) {
  legacy *l = calloc(1, sizeof(*l));
  if (l == NULL) {
    http_respond_json_error(exchange, 500, RPC_STATUS_INTERNAL,
                            "out of memory");
    return;
  }
  *l = (legacy){.exchange = *exchange, .which = which};
  rpc_buffer_init(&l->body);
  rpc_buffer_init(&l->out);
  char err[128];
  size_t len = 0;
  int client = query_value(query, "client", l->client, sizeof(l->client));
  if (client <= 0 || l->client[0] == '\0') {
    http_respond_json_error(
        exchange, HTTP_UNAUTHORIZED, RPC_STATUS_UNAUTHENTICATED,
        client < 0 ? "?client= is malformed or too long"
                   : "?client=ID is missing: say which client you are");
  } else if (legacy_read_target(query, defaults, &l->target, err,
                                sizeof(err)) != 0) {
    http_respond_json_error(exchange, 400, RPC_STATUS_INVALID_ARGUMENT, err);
  } else if (table_len > LEGACY_TEXT_MAX ||
             http_percent_decode(table, table_len, HTTP_PERCENT_SEGMENT,
                                 l->table, &len) != 0 ||
             memchr(l->table, '\0', len) != NULL) {
    http_respond_json_error(exchange, 400, RPC_STATUS_INVALID_ARGUMENT,
                            "{table} is malformed or too long");
  } else {
    l->table[len] = '\0';
    if (rpc_server_bridge_call(exchange->server, exchange->request,
                               rpc_paths[which], &codec, l) == 0) {
      return; /* l is the call's now */
    }
    http_respond_json_error(exchange, 500, RPC_STATUS_INTERNAL,
                            "out of memory");
  }
  legacy_free(l);
}
