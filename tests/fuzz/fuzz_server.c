/* fuzz_server.c: the whole request path of jobhubd — port sniffing, TLS,
 * HTTP/2, gRPC framing, wire checks and decoding, dispatch to the Jobs and
 * Workers services of a real hub (its store in a temporary folder made
 * once per process, its core on this thread's loop), the services without
 * handlers yet, echo, health and reflection, and jobhubd's HTTP face
 * (gRPC-Web, Connect and CORS over the call bridge) — fed with arbitrary bytes
 * over a socketpair served on this thread's loop. No thread is started per
 * input (the store's writer and syncer threads start once).
 *
 * The first input byte (modulo 4) chooses how the connection starts:
 *   0  the HTTP/2 client preface, then the rest of the input (frames);
 *   1  the rest as it is: HTTP/1.1 requests, anything (sniffing);
 *   2  the rest as it is, to a server with TLS (ClientHello bytes);
 *   3  a TLS handshake made here (ALPN h2), then the preface and the rest
 *      inside TLS. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "echo_descriptor_set.h"
#include "echo_service.h"
#include "fuzz_connection.h"
#include "jobhub/v1/engine.rpc.h"
#include "jobhub/v1/hub.rpc.h"
#include "jobhub/v1/outputs.rpc.h"
#include "jobhub/v1/series.rpc.h"
#include "jobhub_descriptor_set.h"
#include "rpc/health.h"
#include "rpc/http1.h"
#include "rpc/loop_thread.h"
#include "rpc/reflection.h"
#include "rpc/server_internal.h"
#include "rpc_descriptor_set.h"
#include "server/core/hub.h"
#include "server/http/face.h"
#include "server/services/jobs.h"
#include "server/services/workers.h"
#include "server/store/sqlite.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

enum { MODE_H2, MODE_RAW, MODE_RAW_TLS, MODE_TLS_H2, MODE_COUNT };

static struct ev_loop *loop;
static rpc_server *plain_server;
static rpc_server *tls_server;
static SSL_CTX *client_tls;
static char temp_dir[] = "/tmp/fuzz_server-XXXXXX";

/* Services jobhubd serves without handlers yet (as server/daemon.c). */
static const jobhub_v1_outputs_handlers outputs_handlers;
static const jobhub_v1_engine_handlers engine_handlers;
static const jobhub_v1_series_handlers series_handlers;
static const jobhub_v1_hub_handlers hub_handlers;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Removes the temporary folder and what the hub left in it. */
static void remove_temp_dir(void) {
  DIR *dir = opendir(temp_dir);
  if (dir == NULL) {
    return;
  }
  struct dirent *entry;
  char path[sizeof(temp_dir) + 300];
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
      snprintf(path, sizeof(path), "%s/%.255s", temp_dir, entry->d_name);
      unlink(path);
    }
  }
  closedir(dir);
  rmdir(temp_dir);
}

/* The server's HTTP face with its JSON routes, for HTTP/2 and HTTP/1.1
 * (rpc/http1) as server/daemon.c sets it (one CORS origin); both live as
 * long as the process. Returns 0 or -1. */
static int add_face(rpc_server *server, const rpc_server_options *options,
                    const rpc_descriptor_pool *pool) {
  static const char *const origins[] = {"https://app.example"};
  http_face_options face_options = {.server = server,
                                    .pool = pool,
                                    .cors_origins = origins,
                                    .cors_origin_count = 1};
  http_face *face = http_face_new(&face_options);
  char err[256];
  rpc_http1_options http1_options;
  rpc_http1_options_default(&http1_options, options);
  rpc_http1_server *http1 =
      face != NULL && http_face_load_routes(face, err, sizeof(err)) == 0
          ? rpc_http1_server_new(&http1_options, http_face_serve, face)
          : NULL;
  rpc_protocol_hook hook;
  if (http1 == NULL) {
    return -1;
  }
  rpc_http1_protocol_hook(&hook, http1);
  return rpc_server_set_protocol_hook(server, &hook);
}

/* A server on the loop with every service jobhubd has. */
static rpc_server *new_server(job_hub *hub, rpc_descriptor_pool *pool,
                              SSL_CTX *tls) {
  char err[256] = "";
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.threads = 1;
  options.tls = tls;
  rpc_server *server = rpc_server_new(&options, err, sizeof(err));
  if (server == NULL || echo_service_add(server) != 0 ||
      jobs_service_add(server, hub) != 0 ||
      workers_service_add(server, hub) != 0 ||
      jobhub_v1_outputs_add_to_server(server, &outputs_handlers, NULL) != 0 ||
      jobhub_v1_engine_add_to_server(server, &engine_handlers, NULL) != 0 ||
      jobhub_v1_series_add_to_server(server, &series_handlers, NULL) != 0 ||
      jobhub_v1_hub_add_to_server(server, &hub_handlers, NULL) != 0 ||
      rpc_health_add(server) == NULL ||
      rpc_reflection_add(server, pool) == NULL ||
      add_face(server, &options, pool) != 0 ||
      rpc_server_start_on_loop(server, loop, err, sizeof(err)) != 0) {
    fuzz_connection_set_up_failed("server", err);
  }
  return server;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char err[256] = "";
  loop = fuzz_connection_set_up(temp_dir);
  atexit(remove_temp_dir);

  /* The hub's core shares this thread's loop, as in jobhubd --threads 1. */
  rpc_loop_thread *core = rpc_loop_thread_new(loop);
  hub_options hub_config = {
      .data_dir = temp_dir,
      .store = &job_store_sqlite_ops,
      .lease_seconds = 60,
      .max_attempts = 3,
      .retry_backoff_ms = 1000,
      .worker_timeout = 30,
      .loop_thread = core,
  };
  job_hub *hub = core != NULL ? hub_open(&hub_config, err, sizeof(err)) : NULL;
  if (hub == NULL) {
    fuzz_connection_set_up_failed("hub", err);
  }

  rpc_descriptor_pool *pool = rpc_descriptor_pool_new();
  if (pool == NULL ||
      rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                  rpc_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, echo_descriptor_set,
                                  echo_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0) {
    fuzz_connection_set_up_failed("descriptor pool", "");
  }

  /* The harness offers ALPN h2, as gRPC clients do. */
  static const unsigned char alpn[] = "\x02h2";
  SSL_CTX *server_tls =
      fuzz_connection_tls(temp_dir, alpn, sizeof(alpn) - 1, &client_tls);

  plain_server = new_server(hub, pool, NULL);
  tls_server = new_server(hub, pool, server_tls);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) {
    return 0;
  }
  int mode = data[0] % MODE_COUNT;
  data++;
  size--;
  rpc_server *server =
      mode == MODE_RAW_TLS || mode == MODE_TLS_H2 ? tls_server : plain_server;
  bool preface = mode == MODE_H2 || mode == MODE_TLS_H2;
  fuzz_connection_run(loop, server, mode == MODE_TLS_H2 ? client_tls : NULL,
                      PREFACE, preface ? sizeof(PREFACE) - 1 : 0, data, size);
  return 0;
}
