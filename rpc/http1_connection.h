/* http1_connection.h: one HTTP/1.x connection of rpc/http1.h, shared by
 * its two halves: http1.c (the socket, the loop's watchers, timeouts, the
 * order of exchanges) and http1_exchange.c (parsing a request into an
 * rpc_http_request, and writing its response). Not for handlers. */
#ifndef JOBHUB_RPC_HTTP1_CONNECTION_H
#define JOBHUB_RPC_HTTP1_CONNECTION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <http_parser.h>

#include "rpc/buffer.h"
#include "rpc/http1.h"
#include "rpc/http_request.h"
#include "rpc/loop_thread.h"
#include "rpc/socket.h"

struct rpc_http1_server {
  rpc_http1_options options;
  rpc_http1_request_fn fn;
  void *user;
  /* The connections of every loop; each is touched only on its own
   * loop, the list under the lock. */
  pthread_mutex_t lock;
  struct http1_connection *connections;
};

typedef struct http1_connection {
  rpc_http1_server *server;
  rpc_socket socket;
  struct ev_loop *loop;
  rpc_loop_thread *loop_thread;
  ev_io read_watcher;
  ev_io write_watcher;
  ev_timer timer;          /* header, idle and lingering timeouts */
  ev_prepare flush_runner; /* progress before the loop waits */
  char peer[48];
  char *cert_cn; /* the verified client certificate's CN, or NULL */
  http_parser parser;
  rpc_buffer in; /* read, parsed up to in_offset */
  size_t in_offset;
  rpc_buffer out; /* for the socket, written up to out_offset */
  size_t out_offset;
  size_t head_end; /* in out: where the response's head ends */

  /* The request being parsed. */
  rpc_buffer url;
  rpc_buffer field;   /* the header name being read (lower case) */
  rpc_buffer value;   /* its value */
  rpc_buffer headers; /* "name\0value\0" each, for the request */
  size_t header_count;
  size_t head_bytes;      /* request line and headers so far */
  uint64_t body_bytes;    /* received */
  bool reading_value;     /* the last header callback was a value's */
  bool head_done;         /* on_headers_complete ran */
  bool request_done;      /* on_message_complete ran: parsing paused */
  int error_status;       /* 400, 413 or 431 to answer, then close */
  ev_tstamp head_started; /* first byte of this head; 0: none yet */
  ev_tstamp last_active;  /* the last read or finished exchange */

  /* The exchange: the handler's request and the state of its response. */
  rpc_http_request *request; /* NULL: none (or it was given up) */
  bool in_exchange;          /* from the head until the exchange ends */
  bool responded;
  bool response_done; /* finish queued the response's end */
  bool keep_alive;    /* after this exchange */
  bool te_trailers;   /* the request said "TE: trailers" */
  bool expect_continue;
  bool continue_sent;
  bool head_method;     /* HEAD: no response body */
  bool chunked;         /* the response body is chunked */
  bool bodiless;        /* no response body may be sent (HEAD, 204, 304) */
  bool has_length;      /* the handler gave content-length */
  uint64_t length_left; /* of it */

  bool read_needs_write; /* TLS: the last read waits for writability */
  bool peer_eof;         /* the client will send nothing more */
  bool closing;          /* close once out is written */
  bool lingering;        /* closing: written, reading until EOF or the timer */
  ev_tstamp linger_until;
  bool progress_scheduled;
  struct http1_connection *prev, *next; /* the server's list */
} http1_connection;

/* http1_exchange_parse parses what is read and not yet parsed, up to the
 * end of a request (parsing then waits for http1_exchange_end): the
 * request goes to the server's fn once its head is complete, its body to
 * the handler. Returns 0, or -1 when the connection must close: then
 * error_status may hold an answer that was queued. */
int http1_exchange_parse(http1_connection *c);

/* http1_exchange_fail answers error_status (if no response has begun)
 * and gives up the request (on_cancel); the connection closes after
 * what is queued. */
void http1_exchange_fail(http1_connection *c);

/* http1_exchange_cancel gives up the request, if any (on_cancel unless
 * it finished), for a connection that is closing. */
void http1_exchange_cancel(http1_connection *c);

/* http1_exchange_end ends a finished exchange (request read and response
 * queued): releases the request and makes ready for the next one. */
void http1_exchange_end(http1_connection *c);

/* http1_schedule_progress makes the connection write what is queued and
 * move on before its loop next waits (from the backend's calls, which
 * run inside the handler: nothing is closed or freed there). */
void http1_schedule_progress(http1_connection *c);

#endif
