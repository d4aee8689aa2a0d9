/* connect.c: the Connect codec of the call bridge (see the header). */
#include "server/http/connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/call_bridge.h"
#include "rpc/frame.h"
#include "rpc/json.h"

/* Connect envelope flags (protocol "Streaming-Request"). */
#define ENVELOPE_END_STREAM 0x02

/* Longest connect-timeout-ms value: 10 digits. */
#define TIMEOUT_DIGITS_MAX 10

typedef struct connect {
  http_exchange exchange;
  connect_kind kind;
  bool json;
  bool compressed;    /* unary body with a content-encoding */
  bool too_large;     /* unary: the body went past the message limit */
  bool responded;     /* HEADERS sent */
  bool body_written;  /* unary: the body went out, only finish is left */
  rpc_buffer body;    /* unary: the request body, then the answer's */
  rpc_deframer input; /* JSON streams: request envelopes, set up with
                         the call's receive limit at the first bytes */
  rpc_buffer scratch; /* one message converted or enveloped */
  char error[256];    /* unary JSON: why the answer has no JSON form */
} connect;

connect_kind connect_kind_of(const char *content_type) {
  static const struct {
    const char *type;
    connect_kind kind;
  } kinds[] = {
      {"application/proto", CONNECT_UNARY_PROTO},
      {"application/json", CONNECT_UNARY_JSON},
      {"application/connect+proto", CONNECT_STREAM_PROTO},
      {"application/connect+json", CONNECT_STREAM_JSON},
  };
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    if (http_media_type_is(content_type, kinds[i].type)) {
      return kinds[i].kind;
    }
  }
  return CONNECT_NONE;
}

const char *connect_code_name(rpc_status_code code) {
  static const char *const names[] = {
      "ok",
      "canceled",
      "unknown",
      "invalid_argument",
      "deadline_exceeded",
      "not_found",
      "already_exists",
      "permission_denied",
      "resource_exhausted",
      "failed_precondition",
      "aborted",
      "out_of_range",
      "unimplemented",
      "internal",
      "unavailable",
      "data_loss",
      "unauthenticated",
  };
  if ((int)code < 0 || code > RPC_STATUS_CODE_MAX) {
    return "unknown";
  }
  return names[code];
}

int connect_http_status(rpc_status_code code) {
  return rpc_status_to_http(code);
}

static bool is_stream(connect_kind kind) {
  return kind == CONNECT_STREAM_PROTO || kind == CONNECT_STREAM_JSON;
}

/* Request headers: metadata, except HTTP's and Connect's own; the body's
 * encoding names gRPC's grpc-encoding, so the call inflates as for gRPC. */
static const char *unary_call_header(const char *name) {
  if (strcmp(name, "content-encoding") == 0) {
    return "grpc-encoding";
  }
  return http_header_is_transport(name) ? NULL : name;
}

static const char *stream_call_header(const char *name) {
  if (strcmp(name, "connect-content-encoding") == 0) {
    return "grpc-encoding";
  }
  return http_header_is_transport(name) ? NULL : name;
}

/* Connect's Timeout: "connect-timeout-ms", 1 to 10 digits. */
static int deadline(const rpc_http_request *request, uint64_t *timeout_ns) {
  const char *value = rpc_http_request_header(request, "connect-timeout-ms");
  *timeout_ns = 0;
  if (value == NULL) {
    return 0;
  }
  size_t len = strlen(value);
  if (len == 0 || len > TIMEOUT_DIGITS_MAX ||
      strspn(value, "0123456789") != len) {
    return -1;
  }
  *timeout_ns = strtoull(value, NULL, 10) * 1000000ULL;
  return 0;
}

/* A method's shape must match the content-type: unary ones are served by
 * the unary types, streaming ones by the connect+ types. */
static bool shape_fits(connect *c, rpc_bridge *bridge) {
  const rpc_method *method = rpc_bridge_method(bridge);
  if ((method->shape == RPC_SHAPE_UNARY) != !is_stream(c->kind)) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT,
                    is_stream(c->kind)
                        ? "a unary method takes application/proto or json"
                        : "a streaming method takes application/connect+proto "
                          "or application/connect+json");
    return false;
  }
  return true;
}

/* Feeds one request message given as ProtoJSON text. */
static void feed_json(connect *c, rpc_bridge *bridge, const uint8_t *json,
                      size_t len) {
  char err[256];
  rpc_buffer_reset(&c->scratch);
  if (len > 0 &&
      rpc_json_to_wire(c->exchange.pool, rpc_bridge_method(bridge)->input->name,
                       (const char *)json, len, &c->scratch, err,
                       sizeof(err)) != 0) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT, err);
    return;
  }
  rpc_bridge_feed_message(bridge, false, c->scratch.data, c->scratch.len);
}

static void unary_on_body(rpc_bridge *bridge, void *arg, const uint8_t *data,
                          size_t len) {
  connect *c = arg;
  if (!shape_fits(c, bridge)) {
    return;
  }
  http_collect_body(bridge, &c->body, data, len, &c->too_large);
}

static void unary_on_body_end(rpc_bridge *bridge, void *arg) {
  connect *c = arg;
  if (!shape_fits(c, bridge)) {
    return;
  }
  if (!c->json) {
    rpc_bridge_feed_message(bridge, c->compressed && c->body.len > 0,
                            c->body.data, c->body.len);
  } else if (c->compressed) {
    rpc_bridge_fail(bridge, RPC_STATUS_UNIMPLEMENTED,
                    "compressed JSON requests are not supported (identity "
                    "is)");
  } else {
    feed_json(c, bridge, c->body.data, c->body.len);
  }
  rpc_buffer_free(&c->body); /* the answer's from now on */
}

typedef struct envelope_feed {
  connect *c;
  rpc_bridge *bridge;
} envelope_feed;

static int on_json_envelope(void *arg, bool compressed, const uint8_t *data,
                            size_t len) {
  envelope_feed *feed = arg;
  if (compressed) {
    rpc_bridge_fail(feed->bridge, RPC_STATUS_UNIMPLEMENTED,
                    "compressed JSON envelopes are not supported");
    return -1;
  }
  feed_json(feed->c, feed->bridge, data, len);
  return 0;
}

static void stream_on_body(rpc_bridge *bridge, void *arg, const uint8_t *data,
                           size_t len) {
  connect *c = arg;
  if (!shape_fits(c, bridge)) {
    return;
  }
  if (!c->json) {
    rpc_bridge_feed_frames(bridge, data, len);
    return;
  }
  if (c->input.max_message_size == 0) {
    rpc_deframer_init(&c->input, rpc_bridge_max_message_bytes(bridge));
  }
  envelope_feed feed = {c, bridge};
  int rv = rpc_deframer_feed(&c->input, data, len, on_json_envelope, &feed);
  if (rv == RPC_FRAME_ERR_TOO_LARGE) {
    rpc_bridge_fail_too_large(bridge);
  } else if (rv == RPC_FRAME_ERR_BAD_FLAG) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT,
                    "invalid flags in a request envelope");
  } else if (rv == RPC_FRAME_ERR_NOMEM) {
    rpc_bridge_fail(bridge, RPC_STATUS_RESOURCE_EXHAUSTED,
                    "out of memory receiving a message");
  }
}

static void stream_on_body_end(rpc_bridge *bridge, void *arg) {
  connect *c = arg;
  if (shape_fits(c, bridge) && c->json && rpc_deframer_is_partial(&c->input)) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT,
                    "stream ended inside an envelope");
  }
}

/* Sends the response headers once; a unary answer's trailing metadata
 * goes there, prefixed "trailer-" (it has no trailers). */
static int respond(connect *c, int status, const char *content_type,
                   const rpc_metadata *initial, const rpc_metadata *trailing) {
  if (c->responded) {
    return 0;
  }
  int rv = http_respond_call(&c->exchange, status, content_type, initial,
                             "trailer-", trailing);
  c->responded = rv == 0;
  return rv;
}

/* Connect's Error: {"code":"not_found","message":"..."}; NULL: no
 * memory. */
static json_t *error_json(rpc_status_code code, const char *message) {
  json_t *error = json_pack("{s:s}", "code", connect_code_name(code));
  if (error != NULL && message != NULL && message[0] != '\0' &&
      json_object_set_new(error, "message", http_json_message(message)) != 0) {
    json_decref(error);
    return NULL;
  }
  return error;
}

static int unary_write_message(rpc_bridge *bridge, void *arg,
                               const uint8_t *framed, size_t length) {
  connect *c = arg;
  const uint8_t *message = framed + RPC_FRAME_HEADER_SIZE;
  rpc_buffer_reset(&c->body);
  if (!c->json) {
    return rpc_buffer_append(&c->body, message, length) == 0
               ? 0
               : RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  if (rpc_json_from_wire(
          c->exchange.pool, rpc_bridge_method(bridge)->output->name, message,
          length, NULL, &c->body, c->error, sizeof(c->error)) != 0 &&
      c->error[0] == '\0') {
    snprintf(c->error, sizeof(c->error), "answer has no JSON form");
  }
  return 0;
}

static int unary_finish(rpc_bridge *bridge, void *arg,
                        const rpc_bridge_end *end) {
  (void)bridge;
  connect *c = arg;
  rpc_status_code code = end->code;
  const char *message = end->message;
  if (code == RPC_STATUS_OK && c->error[0] != '\0') {
    code = RPC_STATUS_INTERNAL;
    message = c->error;
  }
  int rv = 0;
  if (!c->responded) {
    const char *type = c->kind == CONNECT_UNARY_JSON || code != RPC_STATUS_OK
                           ? "application/json"
                           : "application/proto";
    if (code != RPC_STATUS_OK) {
      rpc_buffer_reset(&c->body);
      rv = http_json_dump(error_json(code, message), &c->body) == 0
               ? 0
               : RPC_HTTP_REQUEST_ERR_NOMEM;
    }
    if (rv == 0) {
      rv = respond(c, connect_http_status(code), type, end->initial_metadata,
                   end->trailing_metadata);
    }
  }
  if (rv == 0 && !c->body_written && c->body.len > 0) {
    rv = rpc_http_request_write(c->exchange.request, c->body.data, c->body.len);
    c->body_written = rv == 0;
  }
  if (rv != RPC_HTTP_REQUEST_ERR_FULL) {
    rpc_http_request_finish(c->exchange.request, NULL, 0);
  }
  return rv;
}

/* Writes one envelope of flags around data[0..len). */
static int write_envelope(connect *c, uint8_t flags, const uint8_t *data,
                          size_t len) {
  uint8_t prefix[RPC_FRAME_HEADER_SIZE];
  rpc_frame_header_write(prefix, false, (uint32_t)len);
  prefix[0] = flags;
  rpc_buffer_reset(&c->scratch);
  if (rpc_buffer_append(&c->scratch, prefix, sizeof(prefix)) != 0 ||
      rpc_buffer_append(&c->scratch, data, len) != 0) {
    return RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  return rpc_http_request_write(c->exchange.request, c->scratch.data,
                                c->scratch.len);
}

static const char *stream_type(const connect *c) {
  return c->json ? "application/connect+json" : "application/connect+proto";
}

static int stream_write_message(rpc_bridge *bridge, void *arg,
                                const uint8_t *framed, size_t length) {
  connect *c = arg;
  int rv = respond(c, 200, stream_type(c), rpc_bridge_initial_metadata(bridge),
                   NULL);
  if (rv != 0) {
    return rv;
  }
  if (!c->json) {
    /* A Connect envelope of flags 0 is the gRPC frame as it is. */
    return rpc_http_request_write(c->exchange.request, framed,
                                  RPC_FRAME_HEADER_SIZE + length);
  }
  rpc_buffer json;
  rpc_buffer_init(&json);
  char err[256];
  rv = rpc_json_from_wire(c->exchange.pool,
                          rpc_bridge_method(bridge)->output->name,
                          framed + RPC_FRAME_HEADER_SIZE, length, NULL, &json,
                          err, sizeof(err)) == 0
           ? write_envelope(c, 0, json.data, json.len)
           : RPC_HTTP_REQUEST_ERR_NOMEM;
  rpc_buffer_free(&json);
  return rv;
}

/* The EndStreamResponse: {"error":{...},"metadata":{"key":["value"]}},
 * each member only when there is something to say. */
static json_t *end_stream_json(const rpc_bridge_end *end) {
  json_t *root = json_object();
  json_t *metadata = json_object();
  rpc_buffer value;
  rpc_buffer_init(&value);
  bool ok = root != NULL && metadata != NULL;
  for (size_t i = 0; ok && i < end->trailing_metadata->count; i++) {
    const rpc_metadata_entry *entry = &end->trailing_metadata->entries[i];
    rpc_buffer_reset(&value);
    ok = rpc_metadata_wire_value(entry, &value) == 0;
    json_t *values = json_object_get(metadata, entry->key);
    if (ok && values == NULL) {
      values = json_array();
      ok = json_object_set_new(metadata, entry->key, values) == 0;
    }
    ok = ok &&
         json_array_append_new(
             values, json_stringn((const char *)value.data, value.len)) == 0;
  }
  rpc_buffer_free(&value);
  if (ok && json_object_size(metadata) > 0) {
    ok = json_object_set(root, "metadata", metadata) == 0;
  }
  if (ok && end->code != RPC_STATUS_OK) {
    json_t *error = error_json(end->code, end->message);
    ok = error != NULL && json_object_set_new(root, "error", error) == 0;
  }
  json_decref(metadata);
  if (!ok) {
    json_decref(root);
    return NULL;
  }
  return root;
}

static int stream_finish(rpc_bridge *bridge, void *arg,
                         const rpc_bridge_end *end) {
  (void)bridge;
  connect *c = arg;
  int rv = respond(c, 200, stream_type(c), end->initial_metadata, NULL);
  if (rv == 0) {
    rpc_buffer text;
    rpc_buffer_init(&text);
    rv = http_json_dump(end_stream_json(end), &text) == 0
             ? write_envelope(c, ENVELOPE_END_STREAM, text.data, text.len)
             : RPC_HTTP_REQUEST_ERR_NOMEM;
    rpc_buffer_free(&text);
  }
  if (rv != RPC_HTTP_REQUEST_ERR_FULL) {
    rpc_http_request_finish(c->exchange.request, NULL, 0);
  }
  return rv;
}

static void connect_free(void *arg) {
  connect *c = arg;
  rpc_buffer_free(&c->body);
  rpc_buffer_free(&c->scratch);
  rpc_deframer_free(&c->input);
  free(c);
}

static const rpc_bridge_codec unary_codec = {
    .call_header = unary_call_header,
    .deadline = deadline,
    .on_body = unary_on_body,
    .on_body_end = unary_on_body_end,
    .write_message = unary_write_message,
    .finish = unary_finish,
    .free = connect_free,
};

static const rpc_bridge_codec stream_codec = {
    .call_header = stream_call_header,
    .deadline = deadline,
    .on_body = stream_on_body,
    .on_body_end = stream_on_body_end,
    .write_message = stream_write_message,
    .finish = stream_finish,
    .free = connect_free,
};

/* Answers a request refused before any call: Connect's error JSON. */
static void refuse(const http_exchange *exchange, rpc_status_code code,
                   const char *message) {
  rpc_buffer body;
  rpc_buffer_init(&body);
  if (http_json_dump(error_json(code, message), &body) == 0) {
    (void)http_respond_whole(exchange, connect_http_status(code),
                             "application/json", body.data, body.len);
  } else {
    (void)http_respond_whole(exchange, 500, "text/plain; charset=utf-8",
                             "out of memory\n", 14);
  }
  rpc_buffer_free(&body);
}

void connect_serve(const http_exchange *exchange, const char *path,
                   connect_kind kind) {
  const char *version =
      rpc_http_request_header(exchange->request, "connect-protocol-version");
  if (version != NULL && strcmp(version, "1") != 0) {
    refuse(exchange, RPC_STATUS_INVALID_ARGUMENT,
           "connect-protocol-version must be 1");
    return;
  }
  const char *encoding =
      rpc_http_request_header(exchange->request, "content-encoding");
  connect *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    refuse(exchange, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  c->exchange = *exchange;
  c->kind = kind;
  c->json = kind == CONNECT_UNARY_JSON || kind == CONNECT_STREAM_JSON;
  c->compressed = encoding != NULL && strcmp(encoding, "identity") != 0;
  rpc_buffer_init(&c->body);
  rpc_buffer_init(&c->scratch);
  if (rpc_server_bridge_call(exchange->server, exchange->request, path,
                             is_stream(kind) ? &stream_codec : &unary_codec,
                             c) != 0) {
    connect_free(c);
    refuse(exchange, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
}
