/* grpc_web.c: the gRPC-Web codec of the call bridge (see the header). */
#include "server/http/grpc_web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc/base64.h"
#include "rpc/call_bridge.h"
#include "rpc/frame.h"
#include "server/http/base64_stream.h"

/* PROTOCOL-WEB: the MSB of the flags byte marks the trailers frame. */
#define TRAILERS_FLAG 0x80

typedef struct grpc_web {
  http_exchange exchange;
  bool text;
  bool responded;
  base64_stream decoder; /* -text request bodies */
  rpc_buffer scratch;    /* decoded or encoded bytes of one step */
} grpc_web;

grpc_web_kind grpc_web_kind_of(const char *content_type) {
  if (content_type == NULL ||
      strncasecmp(content_type, "application/grpc-web", 20) != 0) {
    return GRPC_WEB_NONE;
  }
  if (http_media_type_is(content_type, "application/grpc-web") ||
      http_media_type_is(content_type, "application/grpc-web+proto")) {
    return GRPC_WEB_BINARY;
  }
  if (http_media_type_is(content_type, "application/grpc-web-text") ||
      http_media_type_is(content_type, "application/grpc-web-text+proto")) {
    return GRPC_WEB_TEXT;
  }
  return GRPC_WEB_OTHER;
}

/* gRPC-Web carries gRPC's request headers as they are. */
static const char *call_header(const char *name) {
  return http_header_is_transport(name) ? NULL : name;
}

static void on_body(rpc_bridge *bridge, void *arg, const uint8_t *data,
                    size_t len) {
  grpc_web *web = arg;
  rpc_buffer_reset(&web->scratch);
  if (base64_stream_decode(&web->decoder, data, len, &web->scratch) != 0) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT,
                    "grpc-web-text request body is not base64");
    return;
  }
  rpc_bridge_feed_frames(bridge, web->scratch.data, web->scratch.len);
}

static void on_body_end(rpc_bridge *bridge, void *arg) {
  grpc_web *web = arg;
  if (base64_stream_is_partial(&web->decoder)) {
    rpc_bridge_fail(bridge, RPC_STATUS_INVALID_ARGUMENT,
                    "grpc-web-text request body ends inside a base64 quantum");
  }
}

/* Sends the response headers once. Returns 0 or an
 * RPC_HTTP_REQUEST_ERR_* code. */
static int respond(grpc_web *web, const rpc_metadata *initial_metadata) {
  if (web->responded) {
    return 0;
  }
  int rv = http_respond_call(&web->exchange, 200,
                             web->text ? "application/grpc-web-text+proto"
                                       : "application/grpc-web+proto",
                             initial_metadata, NULL, NULL);
  web->responded = rv == 0;
  return rv;
}

/* Writes frame (size bytes), base64-encoded for -text: each write is
 * padded on its own, as PROTOCOL-WEB allows. */
static int write_frame(grpc_web *web, const uint8_t *frame, size_t size) {
  if (!web->text) {
    return rpc_http_request_write(web->exchange.request, frame, size);
  }
  rpc_buffer_reset(&web->scratch);
  if (rpc_base64_encode(frame, size, &web->scratch) != 0) {
    return RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  return rpc_http_request_write(web->exchange.request, web->scratch.data,
                                web->scratch.len);
}

static int write_message(rpc_bridge *bridge, void *arg, const uint8_t *framed,
                         size_t length) {
  grpc_web *web = arg;
  int rv = respond(web, rpc_bridge_initial_metadata(bridge));
  return rv != 0 ? rv
                 : write_frame(web, framed, RPC_FRAME_HEADER_SIZE + length);
}

/* Appends "name:value\r\n" (PROTOCOL-WEB: an HTTP/1 header block). */
static int add_line(rpc_buffer *block, const char *name, const void *value,
                    size_t len) {
  return rpc_buffer_append(block, name, strlen(name)) == 0 &&
                 rpc_buffer_append(block, ":", 1) == 0 &&
                 rpc_buffer_append(block, value, len) == 0 &&
                 rpc_buffer_append(block, "\r\n", 2) == 0
             ? 0
             : -1;
}

/* Builds the trailers frame of end into frame. Returns 0 or -1. */
static int trailers_frame(const rpc_bridge_end *end, rpc_buffer *frame) {
  uint8_t prefix[RPC_FRAME_HEADER_SIZE] = {0};
  char code[12];
  snprintf(code, sizeof(code), "%d", (int)end->code);
  rpc_buffer value;
  rpc_buffer_init(&value);
  int rv = rpc_buffer_append(frame, prefix, sizeof(prefix)) == 0 &&
                   add_line(frame, "grpc-status", code, strlen(code)) == 0
               ? 0
               : -1;
  if (rv == 0 && end->message != NULL && end->message[0] != '\0') {
    rv = rpc_percent_encode(end->message, strlen(end->message), &value) == 0 &&
                 add_line(frame, "grpc-message", value.data, value.len) == 0
             ? 0
             : -1;
  }
  for (size_t i = 0; rv == 0 && i < end->trailing_metadata->count; i++) {
    const rpc_metadata_entry *entry = &end->trailing_metadata->entries[i];
    rpc_buffer_reset(&value);
    rv = rpc_metadata_wire_value(entry, &value) == 0 &&
                 add_line(frame, entry->key, value.data, value.len) == 0
             ? 0
             : -1;
  }
  rpc_buffer_free(&value);
  if (rv == 0) {
    size_t length = frame->len - RPC_FRAME_HEADER_SIZE;
    rpc_frame_header_write(frame->data, false, (uint32_t)length);
    frame->data[0] = TRAILERS_FLAG;
  }
  return rv;
}

static int finish(rpc_bridge *bridge, void *arg, const rpc_bridge_end *end) {
  (void)bridge;
  grpc_web *web = arg;
  rpc_buffer frame;
  rpc_buffer_init(&frame);
  int rv = respond(web, end->initial_metadata);
  if (rv == 0) {
    rv = trailers_frame(end, &frame) == 0
             ? write_frame(web, frame.data, frame.len)
             : RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  rpc_buffer_free(&frame);
  if (rv != RPC_HTTP_REQUEST_ERR_FULL) {
    rpc_http_request_finish(web->exchange.request, NULL, 0);
  }
  return rv;
}

static void web_free(void *arg) {
  grpc_web *web = arg;
  rpc_buffer_free(&web->scratch);
  free(web);
}

static const rpc_bridge_codec binary_codec = {
    .call_header = call_header,
    .write_message = write_message,
    .finish = finish,
    .free = web_free,
};

static const rpc_bridge_codec text_codec = {
    .call_header = call_header,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .write_message = write_message,
    .finish = finish,
    .free = web_free,
};

void grpc_web_serve(const http_exchange *exchange, const char *path,
                    grpc_web_kind kind) {
  grpc_web *web = calloc(1, sizeof(*web));
  if (web != NULL) {
    web->exchange = *exchange;
    web->text = kind == GRPC_WEB_TEXT;
    base64_stream_init(&web->decoder);
    rpc_buffer_init(&web->scratch);
    if (rpc_server_bridge_call(exchange->server, exchange->request, path,
                               web->text ? &text_codec : &binary_codec,
                               web) == 0) {
      return;
    }
    free(web);
  }
  static const char body[] = "out of memory\n";
  (void)http_respond_whole(exchange, 500, "text/plain; charset=utf-8", body,
                           sizeof(body) - 1);
}
