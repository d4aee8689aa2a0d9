/* http_request.h: one HTTP request that is not gRPC, as the server's
 * protocol hook (rpc/protocol_hook.h) sees it: an HTTP/2 stream, or an
 * HTTP/1.x request (rpc/http1.h) that looks the same to a handler.
 *
 * Life of a request: the server gives it to the hook's http_request when
 * its headers are complete. The handler installs hooks (at once, in that
 * call, to see the whole body), answers with rpc_http_request_respond,
 * any number of rpc_http_request_write, and rpc_http_request_finish.
 * The handler owns one reference until it calls rpc_http_request_finish,
 * exactly once, even after on_cancel (then nothing is sent). After finish
 * it must not touch the request again. All functions run on the
 * request's loop thread only. */
#ifndef JOBHUB_RPC_HTTP_REQUEST_H
#define JOBHUB_RPC_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/loop_thread.h"

struct ev_loop;

typedef struct rpc_http_request rpc_http_request;

enum {
  RPC_HTTP_REQUEST_ERR_NOMEM = -1,
  RPC_HTTP_REQUEST_ERR_CLOSED = -2, /* gone, or finished */
  RPC_HTTP_REQUEST_ERR_STATE = -3,  /* respond twice, write before it */
  RPC_HTTP_REQUEST_ERR_FULL = -4,   /* over the output bounds: wait */
};

/* A response header or trailer: NUL-terminated, names in lower case
 * (HTTP/2). */
typedef struct rpc_http_header {
  const char *name;
  const char *value;
} rpc_http_header;

/* Hooks a handler installs; every member may be NULL. */
typedef struct rpc_http_request_hooks {
  /* Request body bytes, borrowed for the call, as the client sends them
   * (HTTP/2 flow control windows are given back as data arrives, as for
   * gRPC calls). Returns 0, or -1 to refuse the rest (e.g. a body over
   * the handler's size limit): the stream is reset (HTTP/1.x: the
   * connection closes after what is queued) and on_cancel follows. */
  int (*on_data)(rpc_http_request *request, const uint8_t *data, size_t len,
                 void *arg);
  /* The body is complete (the client's END_STREAM). */
  void (*on_end)(rpc_http_request *request, void *arg);
  /* The request ended before finish: the client reset the stream, the
   * connection was lost, or on_data refused. The handler stops and calls
   * rpc_http_request_finish to release the request. */
  void (*on_cancel)(rpc_http_request *request, void *arg);
  /* The response has begun, is not finished, and every queued body byte
   * has been taken by HTTP/2 flow control (HTTP/1.x: the socket): a
   * streaming handler may write more (after an RPC_HTTP_REQUEST_ERR_FULL,
   * say). */
  void (*on_writable)(rpc_http_request *request, void *arg);
} rpc_http_request_hooks;

/* rpc_http_request_set_hooks installs hooks (copied) and their argument. */
void rpc_http_request_set_hooks(rpc_http_request *request,
                                const rpc_http_request_hooks *hooks, void *arg);

/* rpc_http_request_header returns the value of the first request header
 * named name (lower case; pseudo-headers too: ":method", ":path",
 * ":authority", ":scheme"), or NULL. Owned by the request. */
const char *rpc_http_request_header(const rpc_http_request *request,
                                    const char *name);

/* rpc_http_request_header_count and rpc_http_request_header_at give every
 * request header in the order received, pseudo-headers first. Returns 0,
 * or -1 when index is out of range. Strings owned by the request. */
size_t rpc_http_request_header_count(const rpc_http_request *request);
int rpc_http_request_header_at(const rpc_http_request *request, size_t index,
                               const char **name, const char **value);

/* rpc_http_request_peer returns the client's IP address. */
const char *rpc_http_request_peer(const rpc_http_request *request);

/* rpc_http_request_cert_cn returns the verified client certificate's
 * subject CN (TLS with a client CA), or NULL. */
const char *rpc_http_request_cert_cn(const rpc_http_request *request);

/* rpc_http_request_loop and rpc_http_request_loop_thread return the
 * request's loop and its mailbox (work done on another thread posts its
 * outcome there). */
struct ev_loop *rpc_http_request_loop(const rpc_http_request *request);
rpc_loop_thread *rpc_http_request_loop_thread(const rpc_http_request *request);

/* rpc_http_request_is_cancelled tells whether on_cancel has come (or is
 * owed): nothing more will be sent. */
bool rpc_http_request_is_cancelled(const rpc_http_request *request);

/* rpc_http_request_respond queues the response HEADERS: status (100..599,
 * not 1xx) and headers (copied; no pseudo-headers). The body follows with
 * write, and ends with finish. Returns 0, RPC_HTTP_REQUEST_ERR_STATE
 * (already responded, or a bad status), RPC_HTTP_REQUEST_ERR_CLOSED, or
 * RPC_HTTP_REQUEST_ERR_NOMEM. */
int rpc_http_request_respond(rpc_http_request *request, int status,
                             const rpc_http_header *headers, size_t count);

/* rpc_http_request_write queues len body bytes (copied). The queue is
 * bounded as a streaming gRPC call's is (rpc_server_options
 * max_stream_output_bytes, one write always fits an empty queue, and
 * max_connection_output_bytes for the connection): a write past either
 * returns RPC_HTTP_REQUEST_ERR_FULL and queues nothing; on_writable
 * comes once the queue has drained (write large bodies in pieces: one
 * larger than max_connection_output_bytes never fits). Returns 0,
 * RPC_HTTP_REQUEST_ERR_FULL, RPC_HTTP_REQUEST_ERR_STATE (before respond or
 * after finish), RPC_HTTP_REQUEST_ERR_CLOSED, or RPC_HTTP_REQUEST_ERR_NOMEM. */
int rpc_http_request_write(rpc_http_request *request, const void *data,
                           size_t len);

/* rpc_http_request_pending_bytes returns body bytes queued but not yet
 * taken by HTTP/2 flow control (HTTP/1.x: written to the socket). */
size_t rpc_http_request_pending_bytes(const rpc_http_request *request);

/* rpc_http_request_finish ends the response after what is queued, with
 * trailers (copied; count 0: none), and releases the handler's reference.
 * Without a respond before, the stream is reset (INTERNAL_ERROR;
 * HTTP/1.x: the connection is closed). After cancellation it only
 * releases. */
void rpc_http_request_finish(rpc_http_request *request,
                             const rpc_http_header *trailers, size_t count);

#endif
