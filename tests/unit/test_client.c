/* test_client.c: the C client (blocking and asynchronous) through the
 * generated stubs, against an in-process server with the echo and health
 * services: the four call shapes, deadlines, metadata, gzip, cancel, TLS,
 * and errors. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "deep_message.h"
#include "echo.rpc.h"
#include "echo_service.h"
#include "google/protobuf/struct.pb-c.h"
#include "grpc/health/v1/health.rpc.h"
#include "rpc/health.h"
#include "rpc/tls.h"

typedef struct fixture {
  rpc_server *server;
  rpc_health *health;
  SSL_CTX *server_tls;
  char target[64];
  char dir[64];
} fixture;

static fixture f;

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int setup(void **state) {
  (void)state;
  char err[256];
  /* A throwaway CA-less certificate for 127.0.0.1, made by openssl. */
  snprintf(f.dir, sizeof(f.dir), "/tmp/jobhub-client-test-XXXXXX");
  if (mkdtemp(f.dir) == NULL) {
    return -1;
  }
  char command[512];
  snprintf(command, sizeof(command),
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
           "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "
           "%s/key.pem -out %s/cert.pem >/dev/null 2>&1",
           f.dir, f.dir);
  if (system(command) != 0) {
    return -1;
  }
  char cert[128], key[128];
  snprintf(cert, sizeof(cert), "%s/cert.pem", f.dir);
  snprintf(key, sizeof(key), "%s/key.pem", f.dir);
  f.server_tls = rpc_tls_server_context(cert, key, NULL, err, sizeof(err));
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.listen = "127.0.0.1:0";
  options.threads = 2;
  options.tls = f.server_tls;
  options.allow_plaintext = true; /* the tests use TLS and h2c */
  f.server = rpc_server_new(&options, err, sizeof(err));
  if (f.server_tls == NULL || f.server == NULL ||
      echo_service_add(f.server) != 0 ||
      (f.health = rpc_health_add(f.server)) == NULL ||
      rpc_server_start(f.server, err, sizeof(err)) != 0) {
    fprintf(stderr, "setup: %s\n", err);
    return -1;
  }
  rpc_health_set(f.health, "", RPC_HEALTH_SERVING);
  snprintf(f.target, sizeof(f.target), "127.0.0.1:%u",
           rpc_server_port(f.server));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  rpc_server_shutdown(f.server);
  rpc_server_free(f.server);
  rpc_health_free(f.health);
  SSL_CTX_free(f.server_tls);
  char command[128];
  snprintf(command, sizeof(command), "rm -rf %s", f.dir);
  return system(command) == 0 ? 0 : -1;
}

static rpc_channel *open_channel(SSL_CTX *tls) {
  char err[256];
  rpc_channel_options options = {.target = f.target, .tls = tls};
  rpc_channel *channel = rpc_channel_new(NULL, &options, err, sizeof(err));
  assert_non_null(channel);
  return channel;
}

static void test_unary_and_health(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char hello[] = "hello";
  request.message = hello;
  Jobhub__Test__EchoResponse *response = NULL;
  rpc_status status = {0};
  for (int i = 0; i < 3; i++) { /* reuses the connection */
    assert_int_equal(
        jobhub_test_echo_unary(channel, &request, &response, NULL, &status),
        RPC_STATUS_OK);
    assert_string_equal(response->message, "hello");
    jobhub__test__echo_response__free_unpacked(response, NULL);
  }
  Grpc__Health__V1__HealthCheckRequest check =
      GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *health = NULL;
  assert_int_equal(
      grpc_health_v1_health_check(channel, &check, &health, NULL, &status),
      RPC_STATUS_OK);
  assert_int_equal(
      health->status,
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  grpc__health__v1__health_check_response__free_unpacked(health, NULL);
  rpc_channel_free(channel);
}

static void test_error_status_and_message(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.fail_code = RPC_STATUS_NOT_FOUND;
  char why[] = "no such job: 100% gone \xc3\xa9";
  request.fail_message = why;
  Jobhub__Test__EchoResponse *response = NULL;
  rpc_status status = {0};
  assert_int_equal(
      jobhub_test_echo_unary(channel, &request, &response, NULL, &status),
      RPC_STATUS_NOT_FOUND);
  assert_null(response);
  assert_string_equal(status.message, "no such job: 100% gone \xc3\xa9");
  rpc_status_clear(&status);
  rpc_channel_free(channel);
}

static void test_metadata_both_ways(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  rpc_metadata md, initial, trailers;
  rpc_metadata_init(&md);
  const uint8_t blob[] = {0, 1, 2, 255};
  assert_int_equal(
      rpc_metadata_add(&md, "x-echo-name", 11, (const uint8_t *)"v 1", 3), 0);
  assert_int_equal(rpc_metadata_add(&md, "x-echo-blob-bin", 15, blob, 4), 0);
  rpc_call_options options = {.metadata = &md};
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.echo_metadata = true;
  ProtobufCMessage *response = NULL;
  rpc_status status = {0};
  assert_int_equal(rpc_channel_call_unary(
                       channel, jobhub_test_echo_unary_method, &request.base,
                       &options, &response, &status, &initial, &trailers),
                   RPC_STATUS_OK);
  const rpc_metadata_entry *name = rpc_metadata_get(&initial, "x-echo-name");
  assert_non_null(name);
  assert_string_equal((const char *)name->value, "v 1");
  const rpc_metadata_entry *back =
      rpc_metadata_get(&trailers, "x-trailer-blob-bin");
  assert_non_null(back);
  assert_int_equal(back->value_len, 4);
  assert_memory_equal(back->value, blob, 4);
  protobuf_c_message_free_unpacked(response, NULL);
  rpc_metadata_free(&md);
  rpc_metadata_free(&initial);
  rpc_metadata_free(&trailers);
  rpc_channel_free(channel);
}

static void test_gzip_request(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  size_t size = 256 << 10;
  uint8_t *payload = malloc(size);
  memset(payload, 'q', size);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.payload.data = payload;
  request.payload.len = size;
  rpc_call_options options = {.compress = true};
  Jobhub__Test__EchoResponse *response = NULL;
  rpc_status status = {0};
  assert_int_equal(
      jobhub_test_echo_unary(channel, &request, &response, &options, &status),
      RPC_STATUS_OK);
  assert_int_equal(response->payload.len, size);
  assert_memory_equal(response->payload.data, payload, size);
  jobhub__test__echo_response__free_unpacked(response, NULL);
  free(payload);
  rpc_channel_free(channel);
}

static void test_deadline(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.delay_ms = 3000;
  rpc_call_options options = {.timeout_ms = 200};
  Jobhub__Test__EchoResponse *response = NULL;
  rpc_status status = {0};
  double started = now_seconds();
  assert_int_equal(
      jobhub_test_echo_unary(channel, &request, &response, &options, &status),
      RPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(now_seconds() - started < 1.5);
  rpc_status_clear(&status);
  rpc_channel_free(channel);
}

static void test_server_stream(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.repeat = 500;
  rpc_stream *stream =
      jobhub_test_echo_server_stream_open(channel, &request, NULL);
  assert_non_null(stream);
  Jobhub__Test__EchoResponse *response;
  uint32_t expected = 0;
  while (jobhub_test_echo_server_stream_read(stream, &response) == 1) {
    assert_int_equal(response->index, expected++);
    jobhub__test__echo_response__free_unpacked(response, NULL);
  }
  assert_int_equal(expected, 500);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_OK);
  rpc_stream_free(stream);
  rpc_channel_free(channel);
}

static void test_client_stream(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  rpc_stream *stream = jobhub_test_echo_client_stream_open(channel, NULL);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char ab[] = "ab";
  request.message = ab;
  for (int i = 0; i < 10; i++) {
    assert_int_equal(jobhub_test_echo_client_stream_write(stream, &request), 0);
  }
  assert_int_equal(rpc_stream_close_send(stream), 0);
  Jobhub__Test__EchoResponse *response;
  assert_int_equal(jobhub_test_echo_client_stream_read(stream, &response), 1);
  assert_int_equal(response->count, 10);
  assert_string_equal(response->message, "abababababababababab");
  jobhub__test__echo_response__free_unpacked(response, NULL);
  assert_int_equal(jobhub_test_echo_client_stream_read(stream, &response), 0);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_OK);
  rpc_stream_free(stream);
  rpc_channel_free(channel);
}

static void test_bidi_ping_pong(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  rpc_stream *stream = jobhub_test_echo_bidi_open(channel, NULL);
  for (uint32_t i = 0; i < 50; i++) {
    char text[16];
    snprintf(text, sizeof(text), "m%u", i);
    Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
    request.message = text;
    assert_int_equal(jobhub_test_echo_bidi_write(stream, &request), 0);
    Jobhub__Test__EchoResponse *response;
    assert_int_equal(jobhub_test_echo_bidi_read(stream, &response), 1);
    assert_int_equal(response->index, i);
    assert_string_equal(response->message, text);
    jobhub__test__echo_response__free_unpacked(response, NULL);
  }
  assert_int_equal(rpc_stream_close_send(stream), 0);
  Jobhub__Test__EchoResponse *response;
  assert_int_equal(jobhub_test_echo_bidi_read(stream, &response), 0);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_OK);
  rpc_stream_free(stream);
  rpc_channel_free(channel);
}

/* Raw methods: a path alone, bytes in and out, nothing decoded. */
static const rpc_method raw_unary = {
    "/jobhub.test.Echo/Unary", "Unary", RPC_SHAPE_UNARY, NULL, NULL, NULL};
static const rpc_method raw_server_stream = {"/jobhub.test.Echo/ServerStream",
                                             "ServerStream",
                                             RPC_SHAPE_SERVER_STREAMING,
                                             NULL,
                                             NULL,
                                             NULL};
static const rpc_method raw_bidi = {"/jobhub.test.Echo/Bidi",
                                    "Bidi",
                                    RPC_SHAPE_BIDI_STREAMING,
                                    NULL,
                                    NULL,
                                    NULL};

/* Packs request into a malloc'd buffer; *size receives its length. */
static uint8_t *pack_request(const Jobhub__Test__EchoRequest *request,
                             size_t *size) {
  *size = jobhub__test__echo_request__get_packed_size(request);
  uint8_t *data = malloc(*size > 0 ? *size : 1);
  assert_non_null(data);
  jobhub__test__echo_request__pack(request, data);
  return data;
}

static Jobhub__Test__EchoResponse *unpack_response(const rpc_buffer *bytes) {
  Jobhub__Test__EchoResponse *response =
      jobhub__test__echo_response__unpack(NULL, bytes->len, bytes->data);
  assert_non_null(response);
  return response;
}

static void test_raw_unary_with_a_compressed_answer(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  size_t payload_size = 64 << 10; /* big enough for a gzip answer */
  uint8_t *payload = malloc(payload_size);
  memset(payload, 'r', payload_size);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char text[] = "raw";
  request.message = text;
  request.payload.data = payload;
  request.payload.len = payload_size;
  size_t size;
  uint8_t *packed = pack_request(&request, &size);
  rpc_stream *stream = rpc_channel_open_stream(channel, &raw_unary, NULL);
  assert_non_null(stream);
  assert_int_equal(rpc_stream_send_packed(stream, packed, size), 0);
  assert_int_equal(rpc_stream_close_send(stream), 0);
  ProtobufCMessage *typed = NULL;
  assert_int_equal(rpc_stream_recv(stream, &typed), -1); /* raw only */
  assert_null(typed);
  rpc_buffer bytes;
  rpc_buffer_init(&bytes);
  assert_int_equal(rpc_stream_recv_packed(stream, &bytes), 1);
  Jobhub__Test__EchoResponse *response = unpack_response(&bytes);
  assert_string_equal(response->message, "raw");
  assert_int_equal(response->payload.len, payload_size);
  assert_memory_equal(response->payload.data, payload, payload_size);
  jobhub__test__echo_response__free_unpacked(response, NULL);
  assert_int_equal(rpc_stream_recv_packed(stream, &bytes), 0);
  assert_int_equal(bytes.len, 0);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_OK);
  rpc_stream_free(stream);

  /* The blocking unary helper refuses a raw method rather than guess. */
  ProtobufCMessage *none = NULL;
  rpc_status status = {0};
  assert_int_equal(rpc_channel_call_unary(channel, &raw_unary, &request.base,
                                          NULL, &none, &status, NULL, NULL),
                   RPC_STATUS_INTERNAL);
  assert_null(none);
  rpc_status_clear(&status);
  /* And a typed stream has no packed answers. */
  stream =
      rpc_channel_open_stream(channel, jobhub_test_echo_unary_method, NULL);
  assert_int_equal(rpc_stream_send(stream, &request.base), 0);
  assert_int_equal(rpc_stream_recv_packed(stream, &bytes), -1);
  rpc_stream_free(stream);
  rpc_buffer_free(&bytes);
  free(packed);
  free(payload);
  rpc_channel_free(channel);
}

static void test_raw_server_stream_and_error(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.repeat = 20;
  size_t size;
  uint8_t *packed = pack_request(&request, &size);
  rpc_stream *stream =
      rpc_channel_open_stream(channel, &raw_server_stream, NULL);
  assert_int_equal(rpc_stream_send_packed(stream, packed, size), 0);
  assert_int_equal(rpc_stream_close_send(stream), 0);
  free(packed);
  rpc_buffer bytes;
  rpc_buffer_init(&bytes);
  uint32_t expected = 0;
  while (rpc_stream_recv_packed(stream, &bytes) == 1) {
    Jobhub__Test__EchoResponse *response = unpack_response(&bytes);
    assert_int_equal(response->index, expected++);
    jobhub__test__echo_response__free_unpacked(response, NULL);
  }
  assert_int_equal(expected, 20);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_OK);
  rpc_stream_free(stream);

  /* A status from the server comes through as for typed calls; a stream
   * freed with answers still queued frees them. */
  request.repeat = 3;
  request.fail_code = RPC_STATUS_ABORTED;
  char why[] = "stop";
  request.fail_message = why;
  packed = pack_request(&request, &size);
  stream = rpc_channel_open_stream(channel, &raw_unary, NULL);
  assert_int_equal(rpc_stream_send_packed(stream, packed, size), 0);
  assert_int_equal(rpc_stream_close_send(stream), 0);
  assert_int_equal(rpc_stream_recv_packed(stream, &bytes), 0);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_ABORTED);
  assert_string_equal(rpc_stream_status(stream)->message, "stop");
  rpc_stream_free(stream);
  request.fail_code = 0;
  free(packed);
  packed = pack_request(&request, &size);
  stream = rpc_channel_open_stream(channel, &raw_server_stream, NULL);
  assert_int_equal(rpc_stream_send_packed(stream, packed, size), 0);
  assert_int_equal(rpc_stream_close_send(stream), 0);
  assert_int_equal(rpc_stream_recv_packed(stream, &bytes), 1);
  rpc_stream_free(stream); /* two answers left unread */
  free(packed);
  rpc_buffer_free(&bytes);
  rpc_channel_free(channel);
}

static void test_raw_bidi_ping_pong(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  rpc_stream *stream = rpc_channel_open_stream(channel, &raw_bidi, NULL);
  rpc_buffer bytes;
  rpc_buffer_init(&bytes);
  for (uint32_t i = 0; i < 10; i++) {
    char text[16];
    snprintf(text, sizeof(text), "b%u", i);
    Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
    request.message = text;
    size_t size;
    uint8_t *packed = pack_request(&request, &size);
    assert_int_equal(rpc_stream_send_packed(stream, packed, size), 0);
    free(packed);
    assert_int_equal(rpc_stream_recv_packed(stream, &bytes), 1);
    Jobhub__Test__EchoResponse *response = unpack_response(&bytes);
    assert_int_equal(response->index, i);
    assert_string_equal(response->message, text);
    jobhub__test__echo_response__free_unpacked(response, NULL);
  }
  assert_int_equal(rpc_stream_close_send(stream), 0);
  assert_int_equal(rpc_stream_send_packed(stream, (const uint8_t *)"", 0), -1);
  assert_int_equal(rpc_stream_recv_packed(stream, &bytes), 0);
  assert_int_equal(rpc_stream_status(stream)->code, RPC_STATUS_OK);
  rpc_stream_free(stream);
  rpc_buffer_free(&bytes);
  rpc_channel_free(channel);
}

/* Asynchronous use on a loop of the caller's. */
typedef struct async_record {
  int initial_calls, message_calls, close_calls;
  bool order_ok;
  rpc_status_code code;
  bool inside_cancel;
  bool closed_inside_cancel;
} async_record;

static void async_initial(rpc_client_call *call, const rpc_metadata *md,
                          void *arg) {
  (void)call;
  (void)md;
  async_record *r = arg;
  r->initial_calls++;
  r->order_ok = r->message_calls == 0 && r->close_calls == 0;
}

static void async_message(rpc_client_call *call,
                          const ProtobufCMessage *message, void *arg) {
  (void)call;
  (void)message;
  async_record *r = arg;
  r->message_calls++;
  r->order_ok = r->order_ok && r->initial_calls == 1 && r->close_calls == 0;
}

static void async_close(rpc_client_call *call, const rpc_status *status,
                        const rpc_metadata *trailers, void *arg) {
  (void)call;
  (void)trailers;
  async_record *r = arg;
  r->close_calls++;
  r->code = status->code;
  r->closed_inside_cancel = r->inside_cancel;
  ev_break(EV_DEFAULT, EVBREAK_ONE);
}

static const rpc_client_hooks async_hooks = {async_initial, async_message,
                                             async_close};

static void on_guard(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)timer;
  (void)events;
  ev_break(loop, EVBREAK_ONE); /* the hooks never came: fail, not hang */
}

/* Runs loop until a hook breaks it, for 5 s at most. */
static void run_bounded(struct ev_loop *loop) {
  ev_timer guard;
  ev_timer_init(&guard, on_guard, 5., 0.);
  ev_timer_start(loop, &guard);
  ev_run(loop, 0);
  ev_timer_stop(loop, &guard);
}

static void test_async_unary_hook_order(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = EV_DEFAULT;
  rpc_channel_options options = {.target = f.target};
  rpc_channel *channel = rpc_channel_new(loop, &options, err, sizeof(err));
  async_record r = {0};
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char text[] = "async";
  request.message = text;
  assert_non_null(
      jobhub_test_echo_unary_start(channel, &request, NULL, &async_hooks, &r));
  run_bounded(loop);
  assert_int_equal(r.close_calls, 1);
  assert_int_equal(r.message_calls, 1);
  assert_int_equal(r.initial_calls, 1);
  assert_true(r.order_ok);
  assert_int_equal(r.code, RPC_STATUS_OK);
  rpc_channel_free(channel);
}

static void test_async_cancel_closes_from_the_loop(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = EV_DEFAULT;
  rpc_channel_options options = {.target = f.target};
  rpc_channel *channel = rpc_channel_new(loop, &options, err, sizeof(err));
  async_record r = {0};
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  request.delay_ms = 5000;
  rpc_client_call *call =
      jobhub_test_echo_unary_start(channel, &request, NULL, &async_hooks, &r);
  ev_run(loop, EVRUN_NOWAIT); /* let the request go out */
  r.inside_cancel = true;
  rpc_client_call_cancel(call);
  r.inside_cancel = false;
  assert_int_equal(r.close_calls, 0);
  run_bounded(loop);
  assert_int_equal(r.close_calls, 1);
  assert_false(r.closed_inside_cancel);
  assert_int_equal(r.code, RPC_STATUS_CANCELLED);
  rpc_channel_free(channel);
}

typedef struct packed_record {
  int packed_calls, typed_calls, close_calls;
  char message[32];
  rpc_status_code code;
} packed_record;

static void packed_typed(rpc_client_call *call, const ProtobufCMessage *message,
                         void *arg) {
  (void)call;
  (void)message;
  ((packed_record *)arg)->typed_calls++;
}

static void packed_message(rpc_client_call *call, const uint8_t *data,
                           size_t size, void *arg) {
  (void)call;
  packed_record *r = arg;
  r->packed_calls++;
  Jobhub__Test__EchoResponse *response =
      jobhub__test__echo_response__unpack(NULL, size, data);
  if (response != NULL) {
    snprintf(r->message, sizeof(r->message), "%s", response->message);
    jobhub__test__echo_response__free_unpacked(response, NULL);
  }
}

static void packed_close(rpc_client_call *call, const rpc_status *status,
                         const rpc_metadata *trailers, void *arg) {
  (void)call;
  (void)trailers;
  packed_record *r = arg;
  r->close_calls++;
  r->code = status->code;
  ev_break(EV_DEFAULT, EVBREAK_ONE);
}

static void test_async_raw_unary(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = EV_DEFAULT;
  rpc_channel_options options = {.target = f.target};
  rpc_channel *channel = rpc_channel_new(loop, &options, err, sizeof(err));
  static const rpc_client_hooks hooks = {.on_message = packed_typed,
                                         .on_packed_message = packed_message,
                                         .on_close = packed_close};
  packed_record r = {0};
  rpc_client_call *call =
      rpc_channel_start_call(channel, &raw_unary, NULL, &hooks, &r);
  assert_non_null(call);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char text[] = "async raw";
  request.message = text;
  size_t size;
  uint8_t *packed = pack_request(&request, &size);
  assert_int_equal(rpc_client_call_send_packed(call, packed, size), 0);
  assert_int_equal(rpc_client_call_close_send(call), 0);
  free(packed);
  run_bounded(loop);
  assert_int_equal(r.close_calls, 1);
  assert_int_equal(r.packed_calls, 1);
  assert_int_equal(r.typed_calls, 0);
  assert_string_equal(r.message, "async raw");
  assert_int_equal(r.code, RPC_STATUS_OK);
  rpc_channel_free(channel);
}

static void test_tls(void **state) {
  (void)state;
  char err[256], ca[128];
  snprintf(ca, sizeof(ca), "%s/cert.pem", f.dir);
  SSL_CTX *tls = rpc_tls_client_context(ca, NULL, NULL, err, sizeof(err));
  assert_non_null(tls);
  rpc_channel *channel = open_channel(tls);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char secret[] = "secret";
  request.message = secret;
  Jobhub__Test__EchoResponse *response = NULL;
  rpc_status status = {0};
  assert_int_equal(
      jobhub_test_echo_unary(channel, &request, &response, NULL, &status),
      RPC_STATUS_OK);
  assert_string_equal(response->message, "secret");
  jobhub__test__echo_response__free_unpacked(response, NULL);
  rpc_channel_free(channel);
  /* Without trusting the certificate, the handshake fails: UNAVAILABLE. */
  SSL_CTX *system_store =
      rpc_tls_client_context(NULL, NULL, NULL, err, sizeof(err));
  channel = open_channel(system_store);
  assert_int_equal(
      jobhub_test_echo_unary(channel, &request, &response, NULL, &status),
      RPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(status.message, "TLS"));
  rpc_status_clear(&status);
  rpc_channel_free(channel);
  SSL_CTX_free(system_store);
  SSL_CTX_free(tls);
}

/* Responses go through the same checks as requests, with protobuf's limit
 * of 100: read as a Struct entry, EchoResponse's payload (field 2, bytes)
 * is the entry's Value, so the echo server sends back whatever Value the
 * request's payload held, deep or with a bad string; the client fails the
 * call with INTERNAL naming the field, as gRPC does for a response it
 * cannot parse. */
static void test_response_checked_before_unpacking(void **state) {
  (void)state;
  static const rpc_method as_entry = {
      "/jobhub.test.Echo/Unary",
      "Unary",
      RPC_SHAPE_UNARY,
      &jobhub__test__echo_request__descriptor,
      &google__protobuf__struct__fields_entry__descriptor,
      NULL};
  rpc_channel *channel = open_channel(NULL);
  static uint8_t buf[4096];
  static const struct {
    int pairs;         /* Value { list_value { values { ... } } } */
    const char *inner; /* the innermost Value's string_value */
    rpc_status_code code;
    const char *message; /* start of the status message */
  } cases[] = {
      {0, "ok", RPC_STATUS_OK, ""},
      {49, "ok", RPC_STATUS_OK, ""}, /* deepest Value at depth 99 */
      {0, "\xff", RPC_STATUS_INTERNAL,
       "failed to parse response: value.string_value: invalid UTF-8"},
      {0, "a\xc0\x80", RPC_STATUS_INTERNAL,
       "failed to parse response: value.string_value: invalid UTF-8"},
      {50, "ok", RPC_STATUS_INTERNAL, /* deepest Value at depth 101 */
       "failed to parse response: value.list_value.values.list_value."},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t len = strlen(cases[i].inner);
    size_t start = sizeof(buf) - len;
    memcpy(buf + start, cases[i].inner, len);
    start = deep_wrap_field(buf, sizeof(buf), start, 3); /* string_value */
    static const uint32_t list_value_values[] = {1, 6};
    for (int k = 0; k < cases[i].pairs; k++) {
      start = deep_wrap_fields(buf, sizeof(buf), start, list_value_values, 2);
    }
    Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
    request.payload.data = buf + start;
    request.payload.len = sizeof(buf) - start;
    ProtobufCMessage *response = NULL;
    rpc_status status = {0};
    assert_int_equal(rpc_channel_call_unary(channel, &as_entry, &request.base,
                                            NULL, &response, &status, NULL,
                                            NULL),
                     cases[i].code);
    if (cases[i].code == RPC_STATUS_OK) {
      Google__Protobuf__Value *value =
          ((Google__Protobuf__Struct__FieldsEntry *)response)->value;
      for (int k = 0; k < cases[i].pairs; k++) {
        value = value->list_value->values[0];
      }
      assert_string_equal(value->string_value, "ok");
      protobuf_c_message_free_unpacked(response, NULL);
    } else {
      assert_null(response);
      assert_non_null(status.message);
      if (strncmp(status.message, cases[i].message, strlen(cases[i].message)) !=
          0) {
        fail_msg("case %zu: %s", i, status.message);
      }
    }
    rpc_status_clear(&status);
  }
  rpc_channel_free(channel);
}

static void test_unknown_method_and_refused_connection(void **state) {
  (void)state;
  rpc_channel *channel = open_channel(NULL);
  rpc_method unknown = *jobhub_test_echo_unary_method;
  unknown.path = "/jobhub.test.Echo/Missing";
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  ProtobufCMessage *response = NULL;
  rpc_status status = {0};
  assert_int_equal(rpc_channel_call_unary(channel, &unknown, &request.base,
                                          NULL, &response, &status, NULL, NULL),
                   RPC_STATUS_UNIMPLEMENTED);
  rpc_status_clear(&status);
  rpc_channel_free(channel);

  char err[256];
  rpc_channel_options options = {.target = "127.0.0.1:1"};
  channel = rpc_channel_new(NULL, &options, err, sizeof(err));
  assert_int_equal(rpc_channel_call_unary(
                       channel, jobhub_test_echo_unary_method, &request.base,
                       NULL, &response, &status, NULL, NULL),
                   RPC_STATUS_UNAVAILABLE);
  rpc_status_clear(&status);
  rpc_channel_free(channel);
}

static void note_ran(struct ev_loop *loop, void *arg) {
  (void)loop;
  *(volatile int *)arg = 1;
}

/* A server on a loop thread it shares (as jobhubd's hub core does with one
 * thread): only with threads = 1; the server starts and joins that thread,
 * and tasks others post to it run beside the calls. */
static void test_shared_loop_thread(void **state) {
  (void)state;
  char err[256];
  rpc_loop_thread *shared = rpc_loop_thread_new(NULL);
  assert_non_null(shared);
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.listen = "127.0.0.1:0";
  options.threads = 2;
  options.loop_thread = shared;
  assert_null(rpc_server_new(&options, err, sizeof(err)));
  assert_string_equal(err, "a shared loop thread needs exactly one thread");

  options.threads = 1;
  rpc_server *server = rpc_server_new(&options, err, sizeof(err));
  assert_non_null(server);
  assert_int_equal(echo_service_add(server), 0);
  assert_int_equal(rpc_server_start(server, err, sizeof(err)), 0);
  volatile int ran = 0;
  rpc_loop_task task = {note_ran, (void *)&ran, false, NULL, NULL};
  rpc_loop_thread_post(shared, &task);

  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%u", rpc_server_port(server));
  rpc_channel_options channel_options = {.target = target};
  rpc_channel *channel =
      rpc_channel_new(NULL, &channel_options, err, sizeof(err));
  assert_non_null(channel);
  Jobhub__Test__EchoRequest request = JOBHUB__TEST__ECHO_REQUEST__INIT;
  char hello[] = "shared";
  request.message = hello;
  Jobhub__Test__EchoResponse *response = NULL;
  rpc_status status = {0};
  assert_int_equal(
      jobhub_test_echo_unary(channel, &request, &response, NULL, &status),
      RPC_STATUS_OK);
  assert_string_equal(response->message, "shared");
  jobhub__test__echo_response__free_unpacked(response, NULL);
  rpc_channel_free(channel);

  rpc_server_shutdown(server); /* joins the shared thread */
  assert_int_equal(ran, 1);
  rpc_server_free(server);
  rpc_loop_thread_free(shared);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* TLS writes: see rpc/client.h */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unary_and_health),
      cmocka_unit_test(test_error_status_and_message),
      cmocka_unit_test(test_metadata_both_ways),
      cmocka_unit_test(test_gzip_request),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_server_stream),
      cmocka_unit_test(test_client_stream),
      cmocka_unit_test(test_bidi_ping_pong),
      cmocka_unit_test(test_raw_unary_with_a_compressed_answer),
      cmocka_unit_test(test_raw_server_stream_and_error),
      cmocka_unit_test(test_raw_bidi_ping_pong),
      cmocka_unit_test(test_async_unary_hook_order),
      cmocka_unit_test(test_async_raw_unary),
      cmocka_unit_test(test_async_cancel_closes_from_the_loop),
      cmocka_unit_test(test_tls),
      cmocka_unit_test(test_response_checked_before_unpacking),
      cmocka_unit_test(test_unknown_method_and_refused_connection),
      cmocka_unit_test(test_shared_loop_thread),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
