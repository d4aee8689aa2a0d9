/* http_request.c: a request that is not gRPC, handed to the server's
 * protocol hook: its headers, body delivery, and a response of status,
 * headers, a streamed body and optional trailers. The response goes out
 * through a backend table: HTTP/2's is here (an nghttp2 stream), other
 * transports bring theirs (rpc/http1.h). */
#include "rpc/http_request_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"

struct rpc_http_request {
  rpc_stream stream; /* first: kind RPC_STREAM_HTTP_REQUEST; HTTP/2 only */
  const rpc_http_request_backend *backend;
  void *transport; /* another transport's; NULL once it is done */
  rpc_loop_thread *loop_thread;
  int refs;           /* the stream's, the handler's, temporary ones */
  rpc_buffer headers; /* "name\0value\0" each */
  size_t header_count;
  char *peer;
  char *cert_cn;
  size_t max_stream_output_bytes;
  size_t max_connection_output_bytes;
  rpc_http_request_hooks hooks;
  void *hooks_arg;
  rpc_buffer send_queue; /* body bytes; sent from send_offset */
  size_t send_offset;
  rpc_buffer trailers; /* "name\0value\0" each, set by finish */
  size_t trailer_count;
  bool remote_closed;   /* END_STREAM from the client seen */
  bool responded;       /* HEADERS submitted */
  bool finished;        /* finish called: the body ends after the queue */
  bool cancelled;       /* ended without the handler's finish */
  bool handler_owned;   /* the handler holds a reference */
  bool writable_wanted; /* on_writable owed after the next flush */
};

static void release(rpc_http_request *request) {
  if (--request->refs > 0) {
    return;
  }
  rpc_buffer_free(&request->headers);
  rpc_buffer_free(&request->send_queue);
  rpc_buffer_free(&request->trailers);
  free(request->peer);
  free(request->cert_cn);
  free(request);
}

int rpc_http_request_add_header(rpc_buffer *headers, const uint8_t *name,
                                size_t name_len, const uint8_t *value,
                                size_t value_len) {
  static const uint8_t nul = 0;
  size_t before = headers->len;
  if (rpc_buffer_append(headers, name, name_len) != 0 ||
      rpc_buffer_append(headers, &nul, 1) != 0 ||
      rpc_buffer_append(headers, value, value_len) != 0 ||
      rpc_buffer_append(headers, &nul, 1) != 0) {
    headers->len = before;
    return -1;
  }
  return 0;
}

static const rpc_http_request_backend h2_backend;

rpc_http_request *rpc_http_request_new(const rpc_http_request_origin *origin,
                                       rpc_buffer *headers, size_t count) {
  rpc_http_request *request = calloc(1, sizeof(*request));
  if (request == NULL) {
    return NULL;
  }
  request->peer = strdup(origin->peer);
  request->cert_cn = origin->cert_cn != NULL ? strdup(origin->cert_cn) : NULL;
  if (request->peer == NULL ||
      (origin->cert_cn != NULL && request->cert_cn == NULL)) {
    free(request->peer);
    free(request->cert_cn);
    free(request);
    return NULL;
  }
  request->stream = (rpc_stream){.kind = RPC_STREAM_HTTP_REQUEST,
                                 .conn_ops = origin->conn_ops,
                                 .connection = origin->connection,
                                 .session = origin->session,
                                 .id = origin->stream_id};
  request->backend = origin->backend != NULL ? origin->backend : &h2_backend;
  request->transport = origin->transport;
  request->loop_thread = origin->loop_thread;
  request->refs = 2; /* the stream's and the handler's */
  request->handler_owned = true;
  request->headers = *headers;
  request->header_count = count;
  rpc_buffer_init(headers);
  request->max_stream_output_bytes = origin->max_stream_output_bytes;
  request->max_connection_output_bytes = origin->max_connection_output_bytes;
  rpc_buffer_init(&request->send_queue);
  rpc_buffer_init(&request->trailers);
  return request;
}

void rpc_http_request_set_hooks(rpc_http_request *request,
                                const rpc_http_request_hooks *hooks,
                                void *arg) {
  request->hooks = *hooks;
  request->hooks_arg = arg;
}

/* Walks a "name\0value\0" block to entry index. */
static int block_entry(const rpc_buffer *block, size_t count, size_t index,
                       const char **name, const char **value) {
  if (index >= count) {
    return -1;
  }
  const char *at = (const char *)block->data;
  for (size_t i = 0; i < index * 2; i++) {
    at += strlen(at) + 1;
  }
  *name = at;
  *value = at + strlen(at) + 1;
  return 0;
}

const char *rpc_http_request_header(const rpc_http_request *request,
                                    const char *name) {
  const char *key, *value;
  for (size_t i = 0; block_entry(&request->headers, request->header_count, i,
                                 &key, &value) == 0;
       i++) {
    if (strcmp(key, name) == 0) {
      return value;
    }
  }
  return NULL;
}

size_t rpc_http_request_header_count(const rpc_http_request *request) {
  return request->header_count;
}

int rpc_http_request_header_at(const rpc_http_request *request, size_t index,
                               const char **name, const char **value) {
  return block_entry(&request->headers, request->header_count, index, name,
                     value);
}

const char *rpc_http_request_peer(const rpc_http_request *request) {
  return request->peer;
}

const char *rpc_http_request_cert_cn(const rpc_http_request *request) {
  return request->cert_cn;
}

struct ev_loop *rpc_http_request_loop(const rpc_http_request *request) {
  return rpc_loop_thread_loop(request->loop_thread);
}

rpc_loop_thread *rpc_http_request_loop_thread(const rpc_http_request *request) {
  return request->loop_thread;
}

bool rpc_http_request_is_cancelled(const rpc_http_request *request) {
  return request->cancelled;
}

static size_t h2_pending_bytes(const rpc_http_request *request) {
  return request->send_queue.len - request->send_offset;
}

size_t rpc_http_request_pending_bytes(const rpc_http_request *request) {
  return request->cancelled ? 0 : request->backend->pending_bytes(request);
}

/* Tells the handler the request ended without it; the caller holds a
 * reference of its own. */
static void fire_cancel(rpc_http_request *request) {
  if (request->cancelled) {
    return;
  }
  request->cancelled = true;
  if (request->handler_owned && request->hooks.on_cancel != NULL) {
    request->hooks.on_cancel(request, request->hooks_arg);
  }
}

static void reset_stream(rpc_http_request *request, uint32_t error_code) {
  if (request->stream.session != NULL) {
    nghttp2_submit_rst_stream(request->stream.session, NGHTTP2_FLAG_NONE,
                              request->stream.id, error_code);
    rpc_stream_schedule_flush(&request->stream);
  }
}

/* Fills nva from a "name\0value\0" block. */
static void block_to_nva(const rpc_buffer *block, size_t count,
                         nghttp2_nv *nva) {
  for (size_t i = 0; i < count; i++) {
    const char *name, *value;
    (void)block_entry(block, count, i, &name, &value);
    nva[i] = (nghttp2_nv){
        (uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
        NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
  }
}

/* Submits the trailers (finish's), or makes the stream end with the last
 * DATA frame when there are none. Returns the data provider's flags. */
static uint32_t end_body(rpc_http_request *request) {
  if (request->trailer_count == 0) {
    return NGHTTP2_DATA_FLAG_EOF;
  }
  nghttp2_nv *nva = calloc(request->trailer_count, sizeof(*nva));
  if (nva == NULL) {
    reset_stream(request, NGHTTP2_INTERNAL_ERROR);
    return NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }
  block_to_nva(&request->trailers, request->trailer_count, nva);
  int rv = nghttp2_submit_trailer(request->stream.session, request->stream.id,
                                  nva, request->trailer_count);
  free(nva);
  if (rv != 0) {
    rpc_log_folded(RPC_LOG_WARN, "trailers_failed", "error=\"%s\"",
                   nghttp2_strerror(rv));
    reset_stream(request, NGHTTP2_INTERNAL_ERROR);
  }
  return NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id,
                         uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  rpc_http_request *request = source->ptr;
  bool drained;
  size_t n =
      rpc_stream_take_output(&request->stream, &request->send_queue,
                             &request->send_offset, buf, length, &drained);
  if (drained) {
    if (request->finished) {
      *flags |= end_body(request);
      return (ssize_t)n;
    }
    if (n == 0) {
      request->writable_wanted = request->hooks.on_writable != NULL;
      if (request->writable_wanted) {
        /* This flush may be the socket's (no on_writable hooks run after
         * it) and the client may send nothing more: make sure a flush of
         * the loop's, which runs them, follows. */
        rpc_stream_schedule_flush(&request->stream);
      }
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

static int h2_respond(rpc_http_request *request, int status,
                      const rpc_http_header *headers, size_t count) {
  if (request->stream.session == NULL) {
    return RPC_HTTP_REQUEST_ERR_CLOSED;
  }
  nghttp2_nv *nva = calloc(count + 1, sizeof(*nva));
  if (nva == NULL) {
    return RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  char status_text[4];
  snprintf(status_text, sizeof(status_text), "%d", status);
  nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, 3,
                        NGHTTP2_NV_FLAG_NO_COPY_NAME};
  for (size_t i = 0; i < count; i++) {
    /* nghttp2 copies names and values: the caller's may go. */
    nva[i + 1] =
        (nghttp2_nv){(uint8_t *)headers[i].name, (uint8_t *)headers[i].value,
                     strlen(headers[i].name), strlen(headers[i].value),
                     NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider provider = {.source.ptr = request,
                                    .read_callback = read_body};
  int rv = nghttp2_submit_response(request->stream.session, request->stream.id,
                                   nva, count + 1, &provider);
  free(nva);
  if (rv != 0) {
    return rv == NGHTTP2_ERR_NOMEM ? RPC_HTTP_REQUEST_ERR_NOMEM
                                   : RPC_HTTP_REQUEST_ERR_STATE;
  }
  rpc_stream_schedule_flush(&request->stream);
  return 0;
}

int rpc_http_request_respond(rpc_http_request *request, int status,
                             const rpc_http_header *headers, size_t count) {
  if (request->responded || request->finished || status < 200 || status > 599) {
    return RPC_HTTP_REQUEST_ERR_STATE;
  }
  if (request->cancelled) {
    return RPC_HTTP_REQUEST_ERR_CLOSED;
  }
  int rv = request->backend->respond(request, status, headers, count);
  if (rv == 0) {
    request->responded = true;
  }
  return rv;
}

/* Makes sure queued bytes or the end of the body will go out. */
static void kick(rpc_http_request *request) {
  /* Not deferred is fine: the provider will be called anyway. */
  (void)nghttp2_session_resume_data(request->stream.session,
                                    request->stream.id);
  rpc_stream_schedule_flush(&request->stream);
}

static int h2_write(rpc_http_request *request, const void *data, size_t len) {
  if (request->stream.session == NULL) {
    return RPC_HTTP_REQUEST_ERR_CLOSED;
  }
  size_t pending = h2_pending_bytes(request);
  size_t connection_queued = rpc_stream_queued_output(&request->stream);
  if (!rpc_http_request_output_fits(pending, connection_queued, len,
                                    request->max_stream_output_bytes,
                                    request->max_connection_output_bytes)) {
    return RPC_HTTP_REQUEST_ERR_FULL;
  }
  if (rpc_buffer_append(&request->send_queue, data, len) != 0) {
    return RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  rpc_stream_output_changed(&request->stream, pending, pending + len);
  kick(request);
  return 0;
}

int rpc_http_request_write(rpc_http_request *request, const void *data,
                           size_t len) {
  if (!request->responded || request->finished) {
    return RPC_HTTP_REQUEST_ERR_STATE;
  }
  if (request->cancelled) {
    return RPC_HTTP_REQUEST_ERR_CLOSED;
  }
  int rv = request->backend->write(request, data, len);
  if (rv == RPC_HTTP_REQUEST_ERR_FULL) {
    request->writable_wanted = request->hooks.on_writable != NULL;
  }
  return rv;
}

static void h2_finish(rpc_http_request *request,
                      const rpc_http_header *trailers, size_t count) {
  if (request->stream.session == NULL) {
    return;
  }
  if (!request->responded) {
    reset_stream(request, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  for (size_t i = 0; i < count; i++) {
    if (rpc_http_request_add_header(
            &request->trailers, (const uint8_t *)trailers[i].name,
            strlen(trailers[i].name), (const uint8_t *)trailers[i].value,
            strlen(trailers[i].value)) != 0) {
      reset_stream(request, NGHTTP2_INTERNAL_ERROR);
      break;
    }
    request->trailer_count++;
  }
  kick(request);
}

static void h2_refuse(rpc_http_request *request) {
  reset_stream(request, NGHTTP2_CANCEL);
}

static const rpc_http_request_backend h2_backend = {
    .respond = h2_respond,
    .write = h2_write,
    .pending_bytes = h2_pending_bytes,
    .finish = h2_finish,
    .refuse = h2_refuse,
};

void rpc_http_request_finish(rpc_http_request *request,
                             const rpc_http_header *trailers, size_t count) {
  if (!request->handler_owned) {
    rpc_log(RPC_LOG_ERROR, "http_request_finish_twice", NULL);
    return;
  }
  request->handler_owned = false;
  if (!request->cancelled) {
    request->finished = true;
    request->backend->finish(request, trailers, count);
  }
  release(request);
}

void rpc_http_request_on_data(rpc_http_request *request, const uint8_t *data,
                              size_t len) {
  if (request->cancelled || !request->handler_owned ||
      request->hooks.on_data == NULL) {
    return; /* nobody wants the body: it is dropped */
  }
  request->refs++;
  if (request->hooks.on_data(request, data, len, request->hooks_arg) != 0) {
    request->backend->refuse(request);
    fire_cancel(request);
  }
  release(request);
}

void rpc_http_request_on_remote_close(rpc_http_request *request) {
  request->remote_closed = true;
  if (request->cancelled || !request->handler_owned ||
      request->hooks.on_end == NULL) {
    return;
  }
  request->refs++;
  request->hooks.on_end(request, request->hooks_arg);
  release(request);
}

void rpc_http_request_on_response_end(rpc_http_request *request) {
  if (!request->remote_closed) {
    /* RFC 7540 8.1: a complete response may end the request with
     * RST_STREAM NO_ERROR. */
    reset_stream(request, NGHTTP2_NO_ERROR);
  }
}

void rpc_http_request_on_transport_close(rpc_http_request *request) {
  request->transport = NULL;
  if (!request->finished) {
    fire_cancel(request);
  }
  request->cancelled = true;
  release(request);
}

void rpc_http_request_on_stream_close(rpc_http_request *request) {
  rpc_stream_output_changed(&request->stream, h2_pending_bytes(request), 0);
  request->stream.session = NULL;
  request->stream.connection = NULL;
  rpc_http_request_on_transport_close(request);
}

void *rpc_http_request_transport(const rpc_http_request *request) {
  return request->transport;
}

void rpc_http_request_drained(rpc_http_request *request) {
  request->writable_wanted = request->hooks.on_writable != NULL;
}

void rpc_http_request_deliver_writable(rpc_http_request *request) {
  if (!request->writable_wanted) {
    return;
  }
  request->writable_wanted = false;
  if (request->hooks.on_writable != NULL && request->handler_owned &&
      !request->cancelled && request->responded && !request->finished &&
      rpc_http_request_pending_bytes(request) == 0) {
    request->refs++;
    request->hooks.on_writable(request, request->hooks_arg);
    release(request);
  }
}
