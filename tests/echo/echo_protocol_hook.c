/* echo_protocol_hook.c: the test server's protocol hook (see the header):
 * rpc/http1 for HTTP/1.x, and one request handler for HTTP/1.x and
 * HTTP/2 requests that are not gRPC. */
#include "echo_protocol_hook.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "rpc/buffer.h"
#include "rpc/http1.h"

#define STREAM_INTERVAL 0.05 /* s between /stream/N lines */

static atomic_ulong cancels;

typedef struct exchange {
  rpc_http_request *request;
  size_t body_bytes;
  rpc_buffer body;      /* /echo: the body, to answer with */
  size_t bytes_to_send; /* /big/N: zero bytes still to write */
  unsigned lines_sent;  /* /stream/N */
  unsigned lines_to_send;
  ev_timer timer; /* /stream/N: the next line */
} exchange;

static const rpc_http_header hook_header = {"x-hook", "yes"};

static void done(exchange *x, const rpc_http_header *trailers, size_t count) {
  ev_timer_stop(rpc_http_request_loop(x->request), &x->timer);
  rpc_http_request_finish(x->request, trailers, count);
  rpc_buffer_free(&x->body);
  free(x);
}

/* Whether the request's path, without the query, is path. */
static bool path_is(rpc_http_request *request, const char *path) {
  const char *have = rpc_http_request_header(request, ":path");
  size_t len = strlen(path);
  return have != NULL && strncmp(have, path, len) == 0 &&
         (have[len] == '\0' || have[len] == '?');
}

static const char *path_after(rpc_http_request *request, const char *prefix) {
  const char *have = rpc_http_request_header(request, ":path");
  return have != NULL && strncmp(have, prefix, strlen(prefix)) == 0
             ? have + strlen(prefix)
             : NULL;
}

static int on_data(rpc_http_request *request, const uint8_t *data, size_t len,
                   void *arg) {
  exchange *x = arg;
  x->body_bytes += len;
  if (path_is(request, "/refuse")) {
    return -1;
  }
  if (path_is(request, "/echo")) {
    return rpc_buffer_append(&x->body, data, len);
  }
  return 0;
}

/* Answers 200 with body (len bytes), with content-length or without. */
static void answer(exchange *x, const void *body, size_t len,
                   bool with_length) {
  char length[24];
  snprintf(length, sizeof(length), "%zu", len);
  const rpc_http_header headers[] = {
      hook_header, {"content-type", "text/plain"}, {"content-length", length}};
  if (rpc_http_request_respond(x->request, 200, headers, with_length ? 3 : 2) ==
          0 &&
      len > 0) {
    (void)rpc_http_request_write(x->request, body, len);
  }
}

/* Writes what is left of a /big/N answer until the queue is full; the
 * rest follows from on_writable. */
static void send_big(exchange *x) {
  static const uint8_t chunk[65536];
  while (x->bytes_to_send > 0) {
    size_t n =
        x->bytes_to_send < sizeof(chunk) ? x->bytes_to_send : sizeof(chunk);
    int rv = rpc_http_request_write(x->request, chunk, n);
    if (rv == RPC_HTTP_REQUEST_ERR_FULL) {
      return;
    }
    if (rv != 0) {
      break;
    }
    x->bytes_to_send -= n;
  }
  done(x, NULL, 0);
}

static void on_writable(rpc_http_request *request, void *arg) {
  (void)request;
  exchange *x = arg;
  if (x->bytes_to_send > 0) {
    send_big(x);
  }
}

static void on_stream_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  exchange *x = timer->data;
  char line[32];
  int len = snprintf(line, sizeof(line), "chunk %u\n", x->lines_sent++);
  if (rpc_http_request_write(x->request, line, (size_t)len) != 0 ||
      x->lines_sent >= x->lines_to_send) {
    done(x, NULL, 0);
  }
}

/* The request headers, one "name: value\n" line each. */
static void answer_headers(exchange *x) {
  rpc_buffer lines;
  rpc_buffer_init(&lines);
  const char *name, *value;
  for (size_t i = 0;
       rpc_http_request_header_at(x->request, i, &name, &value) == 0; i++) {
    if (rpc_buffer_append(&lines, name, strlen(name)) != 0 ||
        rpc_buffer_append(&lines, ": ", 2) != 0 ||
        rpc_buffer_append(&lines, value, strlen(value)) != 0 ||
        rpc_buffer_append(&lines, "\n", 1) != 0) {
      break;
    }
  }
  answer(x, lines.data, lines.len, true);
  rpc_buffer_free(&lines);
}

static void on_end(rpc_http_request *request, void *arg) {
  exchange *x = arg;
  const char *rest;
  if ((rest = path_after(request, "/big/")) != NULL) {
    x->bytes_to_send = strtoull(rest, NULL, 10);
    const rpc_http_header binary[] = {
        hook_header, {"content-type", "application/octet-stream"}};
    if (rpc_http_request_respond(request, 200, binary, 2) != 0) {
      done(x, NULL, 0);
      return;
    }
    send_big(x);
    return;
  }
  if ((rest = path_after(request, "/stream/")) != NULL) {
    x->lines_to_send = (unsigned)strtoul(rest, NULL, 10);
    answer(x, NULL, 0, false);
    if (x->lines_to_send == 0) {
      done(x, NULL, 0);
      return;
    }
    ev_timer_set(&x->timer, STREAM_INTERVAL, STREAM_INTERVAL);
    ev_timer_start(rpc_http_request_loop(request), &x->timer);
    return;
  }
  char text[600];
  if (path_is(request, "/echo")) {
    answer(x, x->body.data, x->body.len, true);
  } else if (path_is(request, "/headers")) {
    answer_headers(x);
  } else if (path_is(request, "/cancels")) {
    snprintf(text, sizeof(text), "%lu\n", atomic_load(&cancels));
    answer(x, text, strlen(text), true);
  } else {
    const char *method = rpc_http_request_header(request, ":method");
    const char *path = rpc_http_request_header(request, ":path");
    const char *type = rpc_http_request_header(request, "content-type");
    snprintf(text, sizeof(text),
             "hook: %.100s %.300s content-type=%.100s body=%zu\n",
             method != NULL ? method : "-", path != NULL ? path : "-",
             type != NULL ? type : "-", x->body_bytes);
    bool with_trailers = path_is(request, "/trailers");
    answer(x, text, strlen(text), !with_trailers);
    static const rpc_http_header trailers[] = {{"x-hook-trailer", "done"}};
    done(x, trailers, with_trailers ? 1 : 0);
    return;
  }
  done(x, NULL, 0);
}

static void on_cancel(rpc_http_request *request, void *arg) {
  (void)request;
  atomic_fetch_add(&cancels, 1);
  done(arg, NULL, 0);
}

/* /early: the whole answer before the body has come. */
static void answer_early(rpc_http_request *request) {
  const rpc_http_header headers[] = {
      hook_header, {"content-type", "text/plain"}, {"content-length", "6"}};
  if (rpc_http_request_respond(request, 200, headers, 3) == 0) {
    (void)rpc_http_request_write(request, "early\n", 6);
  }
  rpc_http_request_finish(request, NULL, 0);
}

void echo_protocol_hook_request(void *user, rpc_http_request *request) {
  (void)user;
  if (path_is(request, "/early")) {
    answer_early(request);
    return;
  }
  exchange *x = calloc(1, sizeof(*x));
  if (x == NULL) {
    rpc_http_request_finish(request, NULL, 0); /* reset: no answer */
    return;
  }
  x->request = request;
  rpc_buffer_init(&x->body);
  ev_timer_init(&x->timer, on_stream_timer, 0., 0.);
  x->timer.data = x;
  static const rpc_http_request_hooks hooks = {
      .on_data = on_data,
      .on_end = on_end,
      .on_cancel = on_cancel,
      .on_writable = on_writable,
  };
  rpc_http_request_set_hooks(request, &hooks, x);
}

/* A number from the environment, or fallback. */
static double setting(const char *name, double fallback) {
  const char *text = getenv(name);
  return text != NULL && *text != '\0' ? strtod(text, NULL) : fallback;
}

/* The HTTP/1.x server: the hook's user until the process ends (the
 * server is shut down and freed when main returns). */
static rpc_http1_server *http1;

static void free_http1(void) { rpc_http1_server_free(http1); }

int echo_protocol_hook_install(rpc_server *server) {
  rpc_server_options defaults;
  rpc_server_options_default(&defaults);
  rpc_http1_options options;
  rpc_http1_options_default(&options, &defaults);
  options.header_timeout =
      setting("JOBHUB_TEST_HTTP1_HEADER_TIMEOUT", options.header_timeout);
  options.idle_timeout =
      setting("JOBHUB_TEST_HTTP1_IDLE_TIMEOUT", options.idle_timeout);
  options.max_body_bytes = (size_t)setting("JOBHUB_TEST_HTTP1_MAX_BODY",
                                           (double)options.max_body_bytes);
  options.max_header_bytes = (size_t)setting("JOBHUB_TEST_HTTP1_MAX_HEADER",
                                             (double)options.max_header_bytes);
  http1 = rpc_http1_server_new(&options, echo_protocol_hook_request, NULL);
  if (http1 == NULL || atexit(free_http1) != 0) {
    return -1;
  }
  rpc_protocol_hook hook;
  rpc_http1_protocol_hook(&hook, http1);
  return rpc_server_set_protocol_hook(server, &hook);
}
