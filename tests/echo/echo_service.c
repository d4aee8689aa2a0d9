/* echo_service.c: jobhub.test.Echo, for the end-to-end tests and the fuzz
 * target: every call shape, delays on the call's loop, chosen failures,
 * metadata echo, and a count of cancelled calls. */
#include "echo_service.h"

#include <ev.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "echo.rpc.h"

/* Stop a server stream from queueing more than this before it drains. */
#define STREAM_HIGH_WATER (256u << 10)

static atomic_uint cancelled_calls;

/* One call in progress: unary and server-stream calls may wait on a timer;
 * streams keep their counters here. */
typedef struct echo_call {
  rpc_call *call;
  ev_timer delay;
  Jobhub__Test__EchoRequest *request; /* own copy, for delayed answers */
  uint32_t sent;                      /* server stream: responses sent */
  uint32_t received; /* client stream and bidi: messages received */
  rpc_buffer joined; /* client stream: messages joined */
  bool streaming;
} echo_call;

static void echo_call_free(echo_call *e) {
  if (e->request != NULL) {
    protobuf_c_message_free_unpacked(&e->request->base, NULL);
  }
  rpc_buffer_free(&e->joined);
  free(e);
}

static void finish(echo_call *e, rpc_status_code code, const char *message) {
  ev_timer_stop(rpc_call_loop(e->call), &e->delay);
  rpc_call_finish(e->call, code, message);
  echo_call_free(e);
}

static void on_cancel(rpc_call *call, rpc_status_code reason, void *arg) {
  (void)call;
  (void)reason;
  atomic_fetch_add(&cancelled_calls, 1);
  finish(arg, RPC_STATUS_CANCELLED, NULL);
}

/* Copies x-echo-* metadata to the headers and, as x-trailer-*, trailers. */
static void echo_metadata(rpc_call *call) {
  const rpc_metadata *md = rpc_call_request_metadata(call);
  for (size_t i = 0; i < md->count; i++) {
    const rpc_metadata_entry *entry = &md->entries[i];
    if (strncmp(entry->key, "x-echo-", 7) != 0) {
      continue;
    }
    char trailer[256];
    int length =
        snprintf(trailer, sizeof(trailer), "x-trailer-%s", entry->key + 7);
    if (length < 0 || (size_t)length >= sizeof(trailer)) {
      continue; /* a cut key could lose its -bin suffix */
    }
    (void)rpc_call_add_initial_metadata(call, entry->key, entry->value,
                                        entry->value_len);
    (void)rpc_call_add_trailing_metadata(call, trailer, entry->value,
                                         entry->value_len);
  }
}

/* The request's text metadata (binary -bin keys left out) as "key: value\n"
 * lines, NUL-terminated, in text (the caller frees it with
 * rpc_buffer_free). Returns 0, or -1 when out of memory. */
static int metadata_lines(rpc_call *call, rpc_buffer *text) {
  const rpc_metadata *md = rpc_call_request_metadata(call);
  for (size_t i = 0; i < md->count; i++) {
    const rpc_metadata_entry *entry = &md->entries[i];
    if (rpc_metadata_key_is_binary(entry->key, entry->key_len)) {
      continue;
    }
    if (rpc_buffer_append(text, entry->key, entry->key_len) != 0 ||
        rpc_buffer_append(text, ": ", 2) != 0 ||
        rpc_buffer_append(text, entry->value, entry->value_len) != 0 ||
        rpc_buffer_append(text, "\n", 1) != 0) {
      return -1;
    }
  }
  return rpc_buffer_append(text, "", 1);
}

static Jobhub__Test__EchoResponse
response_for(const Jobhub__Test__EchoRequest *request, uint32_t index) {
  Jobhub__Test__EchoResponse response = JOBHUB__TEST__ECHO_RESPONSE__INIT;
  response.message = request->message;
  response.payload = request->payload;
  response.index = index;
  return response;
}

/* Sends server-stream responses up to the high-water mark. */
static void pump_stream(echo_call *e) {
  while (e->sent < e->request->repeat &&
         rpc_call_pending_bytes(e->call) < STREAM_HIGH_WATER) {
    Jobhub__Test__EchoResponse response = response_for(e->request, e->sent);
    if (jobhub_test_echo_server_stream_send(e->call, &response) != 0) {
      finish(e, RPC_STATUS_RESOURCE_EXHAUSTED, "cannot send");
      return;
    }
    e->sent++;
  }
  if (e->sent == e->request->repeat) {
    finish(e, RPC_STATUS_OK, NULL);
  }
}

static void on_writable(rpc_call *call, void *arg) {
  (void)call;
  pump_stream(arg);
}

/* Answers a unary or server-stream request, now or after its delay. */
static void answer(echo_call *e) {
  const Jobhub__Test__EchoRequest *request = e->request;
  if (request->echo_metadata) {
    echo_metadata(e->call);
  }
  if (request->fail_code != 0) {
    finish(e, (rpc_status_code)request->fail_code, request->fail_message);
    return;
  }
  if (e->streaming) {
    pump_stream(e);
    return;
  }
  Jobhub__Test__EchoResponse response = response_for(request, 0);
  rpc_buffer lines;
  rpc_buffer_init(&lines);
  if (request->metadata_in_message) {
    if (metadata_lines(e->call, &lines) != 0) {
      rpc_buffer_free(&lines);
      finish(e, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    response.message = (char *)lines.data;
  }
  ev_timer_stop(rpc_call_loop(e->call), &e->delay);
  jobhub_test_echo_unary_reply(e->call, &response);
  rpc_buffer_free(&lines);
  echo_call_free(e);
}

static void on_delay(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  answer(timer->data);
}

static echo_call *echo_call_new(rpc_call *call) {
  echo_call *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  e->call = call;
  rpc_buffer_init(&e->joined);
  ev_timer_init(&e->delay, on_delay, 0., 0.);
  e->delay.data = e;
  return e;
}

/* Unary and server stream: keep a copy of the request (it belongs to the
 * call only until finish), then answer now or after delay_ms. */
static void start_single(rpc_call *call,
                         const Jobhub__Test__EchoRequest *request,
                         bool streaming) {
  echo_call *e = echo_call_new(call);
  if (e == NULL) {
    return;
  }
  size_t size = protobuf_c_message_get_packed_size(&request->base);
  uint8_t *bytes = malloc(size + 1);
  if (bytes != NULL) {
    protobuf_c_message_pack(&request->base, bytes);
    e->request = jobhub__test__echo_request__unpack(NULL, size, bytes);
    free(bytes);
  }
  if (e->request == NULL) {
    finish(e, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  e->streaming = streaming;
  rpc_call_set_hooks(
      call,
      &(rpc_call_hooks){.on_cancel = on_cancel, .on_writable = on_writable}, e);
  if (request->delay_ms > 0) {
    ev_timer_set(&e->delay, request->delay_ms / 1000., 0.);
    ev_timer_start(rpc_call_loop(call), &e->delay);
    return;
  }
  answer(e);
}

static void unary(rpc_call *call, const Jobhub__Test__EchoRequest *request,
                  void *user) {
  (void)user;
  start_single(call, request, false);
}

static void server_stream(rpc_call *call,
                          const Jobhub__Test__EchoRequest *request,
                          void *user) {
  (void)user;
  start_single(call, request, true);
}

static void client_stream_message(rpc_call *call,
                                  const ProtobufCMessage *message, void *arg) {
  (void)call;
  echo_call *e = arg;
  const Jobhub__Test__EchoRequest *request =
      (const Jobhub__Test__EchoRequest *)message;
  e->received++;
  if (rpc_buffer_append(&e->joined, request->message,
                        strlen(request->message)) != 0) {
    finish(e, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
}

static void client_stream_end(rpc_call *call, void *arg) {
  (void)call;
  echo_call *e = arg;
  if (rpc_buffer_append(&e->joined, "", 1) != 0) {
    finish(e, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  Jobhub__Test__EchoResponse response = JOBHUB__TEST__ECHO_RESPONSE__INIT;
  response.message = (char *)e->joined.data;
  response.count = e->received;
  jobhub_test_echo_client_stream_reply(e->call, &response);
  echo_call_free(e);
}

static void client_stream(rpc_call *call, void *user) {
  (void)user;
  echo_call *e = echo_call_new(call);
  if (e != NULL) {
    rpc_call_set_hooks(call,
                       &(rpc_call_hooks){.on_message = client_stream_message,
                                         .on_half_close = client_stream_end,
                                         .on_cancel = on_cancel},
                       e);
  }
}

static void bidi_message(rpc_call *call, const ProtobufCMessage *message,
                         void *arg) {
  echo_call *e = arg;
  const Jobhub__Test__EchoRequest *request =
      (const Jobhub__Test__EchoRequest *)message;
  if (request->fail_code != 0) {
    finish(e, (rpc_status_code)request->fail_code, request->fail_message);
    return;
  }
  Jobhub__Test__EchoResponse response = response_for(request, e->received++);
  if (jobhub_test_echo_bidi_send(call, &response) != 0) {
    finish(e, RPC_STATUS_RESOURCE_EXHAUSTED, "cannot send");
  }
}

static void bidi_end(rpc_call *call, void *arg) {
  (void)call;
  finish(arg, RPC_STATUS_OK, NULL);
}

static void bidi(rpc_call *call, void *user) {
  (void)user;
  echo_call *e = echo_call_new(call);
  if (e != NULL) {
    rpc_call_set_hooks(call,
                       &(rpc_call_hooks){.on_message = bidi_message,
                                         .on_half_close = bidi_end,
                                         .on_cancel = on_cancel},
                       e);
  }
}

static void cancel_count(rpc_call *call,
                         const Jobhub__Test__EchoRequest *request, void *user) {
  (void)request;
  (void)user;
  Jobhub__Test__EchoResponse response = JOBHUB__TEST__ECHO_RESPONSE__INIT;
  response.count = atomic_load(&cancelled_calls);
  jobhub_test_echo_cancel_count_reply(call, &response);
}

static const jobhub_test_echo_handlers handlers = {
    .unary = unary,
    .server_stream = server_stream,
    .client_stream = client_stream,
    .bidi = bidi,
    .cancel_count = cancel_count,
};

int echo_service_add(rpc_server *server) {
  return jobhub_test_echo_add_to_server(server, &handlers, NULL);
}
