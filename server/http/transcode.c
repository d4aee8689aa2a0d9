/* transcode.c: the JSON transcoding codec of the call bridge (see the
 * header). */
#include "server/http/transcode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/call_bridge.h"
#include "rpc/frame.h"
#include "rpc/json.h"
#include "rpc/json_internal.h"
#include "server/http/json_headers.h"
#include "server/http/request_fields.h"

/* HTTP's own status for a body over the size limit (413), which gRPC's
 * RESOURCE_EXHAUSTED (429) would misname. */
#define HTTP_CONTENT_TOO_LARGE 413
/* And for a body that is not JSON (415), rather than INVALID_ARGUMENT's
 * 400. */
#define HTTP_UNSUPPORTED_MEDIA_TYPE 415

typedef struct transcode {
  http_exchange exchange;
  const http_route *route;
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
  size_t binding_count;
  const char *query;  /* NULL: none */
  bool legacy_submit; /* the Jobs API's POST /jobs: see transcode.h */
  legacy_target legacy;
  bool too_large;  /* the body went past the limit: 413 */
  bool not_json;   /* the body's content-type is not JSON: 415 */
  bool responded;  /* headers sent */
  bool line_ready; /* out holds the message being written (FULL) */
  rpc_buffer body; /* the request's JSON */
  rpc_buffer wire; /* the request message being built */
  rpc_buffer out;  /* one answer or one NDJSON line */
  char error[256]; /* why an answer has no JSON form: INTERNAL */
} transcode;

static void on_body(rpc_bridge *bridge, void *arg, const uint8_t *data,
                    size_t len) {
  transcode *t = arg;
  http_collect_body(bridge, &t->body, data, len, &t->too_large);
}

static bool body_is_blank(const rpc_buffer *body) {
  for (size_t i = 0; i < body->len; i++) {
    if (strchr(" \t\r\n", body->data[i]) == NULL) {
      return false;
    }
  }
  return true;
}

/* The body given to a field of the request (body: "a.b"): the JSON
 * {"a":{"b":BODY}} that rpc/json reads as the request. */
static int wrap_body_in_field(const char *field_path, const rpc_buffer *body,
                              rpc_buffer *out) {
  size_t depth = 0;
  int rv = 0;
  for (const char *p = field_path; rv == 0 && *p != '\0'; depth++) {
    size_t len = strcspn(p, ".");
    rv = rpc_buffer_append(out, "{\"", 2) || rpc_buffer_append(out, p, len) ||
         rpc_buffer_append(out, "\":", 2);
    p += len + (p[len] == '.');
  }
  if (rv == 0) {
    rv = rpc_buffer_append(out, body->data, body->len);
  }
  for (size_t i = 0; rv == 0 && i < depth; i++) {
    rv = rpc_buffer_append(out, "}", 1);
  }
  return rv == 0 ? 0 : -1;
}

/* The Jobs API's POST /jobs with a JSON object that is not a
 * SubmitRequest (SPEC, legacy paths): a job of the legacy pool and job type
 * whose config.module_params is that object. scratch is the caller's.
 * Returns 0, or -1 (the SubmitRequest's error stands). */
static int submit_unit_of_work(transcode *t, rpc_buffer *scratch) {
  size_t start = 0;
  while (start < t->body.len && strchr(" \t\r\n", t->body.data[start])) {
    start++;
  }
  if (start == t->body.len || t->body.data[start] != '{') {
    return -1;
  }
  char head[96];
  int n = snprintf(head, sizeof(head),
                   "{\"poolId\":%u,\"jobTypeId\":%u,\"config\":{"
                   "\"moduleParams\":",
                   t->legacy.pool_id, t->legacy.job_type_id);
  char err[8];
  rpc_buffer_reset(scratch);
  rpc_buffer_reset(&t->wire);
  return n > 0 && rpc_buffer_append(scratch, head, (size_t)n) == 0 &&
                 rpc_buffer_append(scratch, t->body.data, t->body.len) == 0 &&
                 rpc_buffer_append(scratch, "}}", 2) == 0 &&
                 rpc_json_to_wire(t->exchange.pool, t->route->input_type,
                                  (const char *)scratch->data, scratch->len,
                                  &t->wire, err, sizeof(err)) == 0
             ? 0
             : -1;
}

/* Makes the request message of the body, the query and the path, in that
 * order (what the path binds wins). Returns 0, or -1 with a message. */
static int build_request(transcode *t, char *err, size_t err_size) {
  const http_route *route = t->route;
  const char *type = route->input_type;
  const rpc_descriptor_pool *pool = t->exchange.pool;
  bool blank = body_is_blank(&t->body);
  if (route->body == NULL && !blank) {
    snprintf(err, err_size, "%s %s takes no request body", route->http_method,
             route->path_template);
    return -1;
  }
  if (route->body != NULL && blank) {
    snprintf(err, err_size,
             "the request body is missing: %s %s takes a JSON body (send {} "
             "for none)",
             route->http_method, route->path_template);
    return -1;
  }
  if (route->body != NULL) {
    const char *content_type =
        rpc_http_request_header(t->exchange.request, "content-type");
    if (content_type != NULL &&
        !http_media_type_is(content_type, "application/json")) {
      t->not_json = true;
      snprintf(err, err_size,
               "the body must be JSON (Content-Type: application/json), not "
               "%.100s",
               content_type);
      return -1;
    }
    const rpc_buffer *json = &t->body;
    rpc_buffer wrapped;
    rpc_buffer_init(&wrapped);
    if (strcmp(route->body, "*") != 0) {
      if (wrap_body_in_field(route->body, &t->body, &wrapped) != 0) {
        rpc_buffer_free(&wrapped);
        snprintf(err, err_size, "out of memory");
        return -1;
      }
      json = &wrapped;
    }
    int rv = rpc_json_to_wire(pool, type, (const char *)json->data, json->len,
                              &t->wire, err, err_size);
    if (rv != 0 && t->legacy_submit) {
      rv = submit_unit_of_work(t, &wrapped);
    }
    rpc_buffer_free(&wrapped);
    if (rv != 0) {
      return -1;
    }
  }
  if (t->query != NULL && !t->legacy_submit &&
      http_request_fields_from_query(pool, type, t->query, strlen(t->query),
                                     &t->wire, err, err_size) != 0) {
    return -1;
  }
  return http_request_fields_from_path(
      pool, type, t->bindings, t->binding_count, &t->wire, err, err_size);
}

static void on_body_end(rpc_bridge *bridge, void *arg) {
  transcode *t = arg;
  if (t->too_large) {
    return;
  }
  char err[512];
  if (build_request(t, err, sizeof(err)) != 0) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT, err);
    return;
  }
  rpc_bridge_feed_message(bridge, false, t->wire.data, t->wire.len);
  rpc_buffer_free(&t->body);
  rpc_buffer_free(&t->wire);
}

/* The JSON name of field_path's last field in type (its declared
 * json_name, or protoc's), malloc'ed; *type_out names the type the next
 * segment is looked up in. NULL when a segment is unknown. */
static char *json_key_of(const rpc_descriptor_pool *pool, const char *type,
                         const char *segment, size_t len,
                         const char **next_type) {
  const message_type *m = rpc_descriptor_pool_find_message(pool, type, NULL);
  size_t index =
      m != NULL ? rpc_json_field_by_key(m, segment, len) : (size_t)SIZE_MAX;
  if (index == (size_t)SIZE_MAX) {
    return NULL;
  }
  const field_type *field = m->field[index];
  *next_type = field->type_name;
  return field->json_name != NULL ? strdup(field->json_name)
                                  : rpc_json_name_of(field);
}

/* Appends to out the member at route->response_body of the JSON in
 * json[0..len). */
static int pick_response_body(transcode *t, const rpc_buffer *json,
                              rpc_buffer *out, char *err, size_t err_size) {
  json_error_t parse_error;
  json_t *root =
      json_loadb((const char *)json->data, json->len, 0, &parse_error);
  json_t *node = root;
  const char *type = t->route->output_type;
  for (const char *p = t->route->response_body; node != NULL && *p != '\0';) {
    size_t len = strcspn(p, ".");
    char *key = json_key_of(t->exchange.pool, type, p, len, &type);
    json_t *member = key != NULL ? json_object_get(node, key) : NULL;
    free(key);
    if (member == NULL) {
      /* An unset message field is not written: its JSON is {}. */
      json_decref(root);
      root = node = json_object();
      break;
    }
    node = member;
    p += len + (p[len] == '.');
  }
  if (node == NULL) {
    snprintf(err, err_size, "response_body %s: out of memory",
             t->route->response_body);
    return -1;
  }
  json_incref(node);
  json_decref(root);
  return http_json_dump(node, out);
}

/* Appends one response message as JSON to out (the response, or its
 * response_body member: converted with defaults, so a scalar member is
 * always there). */
static int convert(transcode *t, const uint8_t *message, size_t len,
                   rpc_buffer *out, char *err, size_t err_size) {
  if (t->route->response_body == NULL) {
    return rpc_json_from_wire(t->exchange.pool, t->route->output_type, message,
                              len, NULL, out, err, err_size);
  }
  rpc_json_options with_defaults = {.emit_defaults = true};
  rpc_buffer_reset(&t->wire); /* free since the request went */
  if (rpc_json_from_wire(t->exchange.pool, t->route->output_type, message, len,
                         &with_defaults, &t->wire, err, err_size) != 0) {
    return -1;
  }
  return pick_response_body(t, &t->wire, out, err, err_size);
}

/* Sends the headers once; length: the whole body's, or
 * HTTP_LENGTH_UNKNOWN (a stream). */
static int respond(transcode *t, int status, const char *content_type,
                   const rpc_metadata *initial, size_t length) {
  if (t->responded) {
    return 0;
  }
  int rv = http_respond_call_sized(&t->exchange, status, content_type, initial,
                                   NULL, NULL, length);
  t->responded = rv == 0;
  return rv;
}

static int write_message(rpc_bridge *bridge, void *arg, const uint8_t *framed,
                         size_t length) {
  transcode *t = arg;
  bool stream = t->route->server_streaming;
  if (!t->line_ready) {
    static const char head[] = "{\"result\":";
    char err[256] = "out of memory";
    rpc_buffer_reset(&t->out);
    if ((stream && rpc_buffer_append(&t->out, head, sizeof(head) - 1) != 0) ||
        convert(t, framed + RPC_FRAME_HEADER_SIZE, length, &t->out, err,
                sizeof(err)) != 0 ||
        (stream && rpc_buffer_append(&t->out, "}\n", 2) != 0)) {
      /* The status may be settled already (a unary reply): finish says. */
      if (t->error[0] == '\0') {
        snprintf(t->error, sizeof(t->error), "%s", err);
      }
      return 0;
    }
    t->line_ready = true;
  }
  int rv = respond(t, 200, stream ? "application/x-ndjson" : "application/json",
                   rpc_bridge_initial_metadata(bridge),
                   stream ? HTTP_LENGTH_UNKNOWN : t->out.len);
  if (rv == 0) {
    rv = rpc_http_request_write(t->exchange.request, t->out.data, t->out.len);
  }
  if (rv != RPC_HTTP_REQUEST_ERR_FULL) {
    t->line_ready = false;
  }
  return rv;
}

static int finish(rpc_bridge *bridge, void *arg, const rpc_bridge_end *end) {
  transcode *t = arg;
  (void)bridge;
  rpc_http_request *request = t->exchange.request;
  rpc_bridge_end failed = *end;
  if (end->code == RPC_STATUS_OK && t->error[0] != '\0') {
    failed.code = RPC_STATUS_INTERNAL;
    failed.message = t->error;
    end = &failed;
  }
  int rv = 0;
  if (end->code == RPC_STATUS_OK && !t->responded) {
    /* A stream without messages, or a unary answer that never came. */
    rv = respond(t, 200,
                 t->route->server_streaming ? "application/x-ndjson"
                                            : "application/json",
                 end->initial_metadata,
                 t->route->server_streaming ? HTTP_LENGTH_UNKNOWN : 0);
  } else if (end->code != RPC_STATUS_OK) {
    rpc_buffer_reset(&t->out);
    bool line = t->responded;
    if ((line && rpc_buffer_append(&t->out, "{\"error\":", 9) != 0) ||
        http_json_error_body((int)end->code, end->message, &t->out) != 0 ||
        (line && rpc_buffer_append(&t->out, "}\n", 2) != 0)) {
      rv = RPC_HTTP_REQUEST_ERR_NOMEM;
    } else {
      int status = t->too_large  ? HTTP_CONTENT_TOO_LARGE
                   : t->not_json ? HTTP_UNSUPPORTED_MEDIA_TYPE
                                 : rpc_status_to_http(end->code);
      rv = respond(t, status, "application/json", end->initial_metadata,
                   line ? HTTP_LENGTH_UNKNOWN : t->out.len);
      if (rv == 0) {
        rv = rpc_http_request_write(request, t->out.data, t->out.len);
      }
    }
  }
  if (rv == RPC_HTTP_REQUEST_ERR_FULL) {
    return rv;
  }
  rpc_http_request_finish(request, NULL, 0);
  return rv;
}

static void transcode_free(void *arg) {
  transcode *t = arg;
  rpc_buffer_free(&t->body);
  rpc_buffer_free(&t->wire);
  rpc_buffer_free(&t->out);
  free(t);
}

static const rpc_bridge_codec codec = {
    .call_header = json_call_header,
    .deadline = json_call_deadline,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .write_message = write_message,
    .finish = finish,
    .free = transcode_free,
};

void transcode_serve(const http_exchange *exchange, const http_route *route,
                     const http_route_binding *bindings, size_t binding_count,
                     const char *query, const legacy_target *legacy_submit) {
  transcode *t = calloc(1, sizeof(*t));
  if (t != NULL) {
    *t = (transcode){.exchange = *exchange,
                     .route = route,
                     .binding_count = binding_count,
                     .query = query,
                     .legacy_submit = legacy_submit != NULL};
    if (legacy_submit != NULL) {
      t->legacy = *legacy_submit;
    }
    memcpy(t->bindings, bindings, binding_count * sizeof(*bindings));
    rpc_buffer_init(&t->body);
    rpc_buffer_init(&t->wire);
    rpc_buffer_init(&t->out);
  }
  if (t == NULL || rpc_server_bridge_call(exchange->server, exchange->request,
                                          route->rpc_path, &codec, t) != 0) {
    free(t);
    http_respond_json_error(exchange, 500, RPC_STATUS_INTERNAL,
                            "out of memory");
  }
}
