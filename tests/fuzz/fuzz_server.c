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
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "echo_descriptor_set.h"
#include "echo_service.h"
#include "jobhub/v1/engine.rpc.h"
#include "jobhub/v1/hub.rpc.h"
#include "jobhub/v1/outputs.rpc.h"
#include "jobhub/v1/series.rpc.h"
#include "jobhub_descriptor_set.h"
#include "rpc/health.h"
#include "rpc/log.h"
#include "rpc/loop_thread.h"
#include "rpc/reflection.h"
#include "rpc/server_internal.h"
#include "rpc/tls.h"
#include "rpc_descriptor_set.h"
#include "server/core/hub.h"
#include "server/http/face.h"
#include "server/services/jobs.h"
#include "server/services/workers.h"
#include "server/store/sqlite.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MAX_ROUNDS 64

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

static void set_up_failed(const char *what, const char *err) {
  fprintf(stderr, "fuzz_server: set-up failed: %s: %s\n", what, err);
  abort();
}

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

/* A self-signed P-256 certificate and its key, as PEM files in the
 * temporary folder, for the TLS server. */
static void write_certificate(const char *cert_path, const char *key_path) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = X509_new();
  if (key == NULL || cert == NULL) {
    set_up_failed("certificate", "out of memory");
  }
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * 365);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"fuzz", -1, -1, 0);
  X509_set_issuer_name(cert, name);
  FILE *cert_file = fopen(cert_path, "w");
  FILE *key_file = fopen(key_path, "w");
  if (X509_sign(cert, key, EVP_sha256()) == 0 || cert_file == NULL ||
      key_file == NULL || PEM_write_X509(cert_file, cert) != 1 ||
      PEM_write_PrivateKey(key_file, key, NULL, NULL, 0, NULL, NULL) != 1) {
    set_up_failed("certificate", "cannot write it");
  }
  fclose(cert_file);
  fclose(key_file);
  X509_free(cert);
  EVP_PKEY_free(key);
}

/* The server's HTTP face, as server/daemon.c sets it (one CORS origin);
 * it lives as long as the process. Returns 0 or -1. */
static int add_face(rpc_server *server, const rpc_descriptor_pool *pool) {
  static const char *const origins[] = {"https://app.example"};
  http_face_options options = {.server = server,
                               .pool = pool,
                               .cors_origins = origins,
                               .cors_origin_count = 1};
  http_face *face = http_face_new(&options);
  rpc_protocol_hook hook = {.http_request = http_face_serve, .user = face};
  return face != NULL && rpc_server_set_protocol_hook(server, &hook) == 0 ? 0
                                                                          : -1;
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
      rpc_reflection_add(server, pool) == NULL || add_face(server, pool) != 0 ||
      rpc_server_start_on_loop(server, loop, err, sizeof(err)) != 0) {
    set_up_failed("server", err);
  }
  return server;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char err[256] = "";
  rpc_log_set_level(RPC_LOG_ERROR);
  loop = ev_loop_new(EVFLAG_AUTO);
  if (loop == NULL || mkdtemp(temp_dir) == NULL) {
    set_up_failed("loop or temporary folder", "");
  }
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
    set_up_failed("hub", err);
  }

  rpc_descriptor_pool *pool = rpc_descriptor_pool_new();
  if (pool == NULL ||
      rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                  rpc_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, echo_descriptor_set,
                                  echo_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0) {
    set_up_failed("descriptor pool", "");
  }

  char cert_path[sizeof(temp_dir) + 16], key_path[sizeof(temp_dir) + 16];
  snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", temp_dir);
  snprintf(key_path, sizeof(key_path), "%s/key.pem", temp_dir);
  write_certificate(cert_path, key_path);
  SSL_CTX *server_tls =
      rpc_tls_server_context(cert_path, key_path, NULL, err, sizeof(err));
  /* The harness's own client: no verification (the certificate is ours),
   * ALPN h2 as gRPC clients offer it. */
  client_tls = SSL_CTX_new(TLS_client_method());
  static const unsigned char alpn[] = "\x02h2";
  if (server_tls == NULL || client_tls == NULL ||
      SSL_CTX_set_alpn_protos(client_tls, alpn, sizeof(alpn) - 1) != 0) {
    set_up_failed("TLS", err);
  }
  SSL_CTX_set_verify(client_tls, SSL_VERIFY_NONE, NULL);

  plain_server = new_server(hub, pool, NULL);
  tls_server = new_server(hub, pool, server_tls);
  return 0;
}

/* Reads and drops what the server wrote (through ssl when set). Returns
 * false at end of stream. */
static bool drain(int fd, SSL *ssl) {
  uint8_t sink[65536];
  for (;;) {
    if (ssl != NULL) {
      int n = SSL_read(ssl, sink, (int)sizeof(sink));
      if (n > 0) {
        continue;
      }
      int error = SSL_get_error(ssl, n);
      ERR_clear_error();
      return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
    }
    ssize_t n = read(fd, sink, sizeof(sink));
    if (n > 0) {
      continue;
    }
    return n != 0;
  }
}

/* Runs the handshake against the server on the loop. Returns false when
 * it fails or does not finish in MAX_ROUNDS rounds. */
static bool handshake(SSL *ssl) {
  for (int round = 0; round < MAX_ROUNDS; round++) {
    int rv = SSL_connect(ssl);
    if (rv == 1) {
      return true;
    }
    int error = SSL_get_error(ssl, rv);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      return false;
    }
    ev_run(loop, EVRUN_NOWAIT);
  }
  return false;
}

/* Writes input[*sent..total) as far as the socket takes it. */
static void send_some(int fd, SSL *ssl, const uint8_t *input, size_t total,
                      size_t *sent) {
  if (*sent >= total) {
    return;
  }
  if (ssl != NULL) {
    size_t n = 0;
    if (SSL_write_ex(ssl, input + *sent, total - *sent, &n) == 1) {
      *sent += n;
    }
    ERR_clear_error();
  } else {
    ssize_t n = write(fd, input + *sent, total - *sent);
    if (n > 0) {
      *sent += (size_t)n;
    }
  }
  if (*sent == total) {
    if (ssl != NULL) {
      (void)SSL_shutdown(ssl); /* close_notify */
      ERR_clear_error();
    }
    shutdown(fd, SHUT_WR);
  }
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
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 pair) != 0) {
    return 0;
  }
  if (rpc_server_adopt_fd(server, pair[0]) != 0) {
    close(pair[1]);
    return 0;
  }
  bool preface = mode == MODE_H2 || mode == MODE_TLS_H2;
  size_t total = (preface ? sizeof(PREFACE) - 1 : 0) + size;
  uint8_t *input = malloc(total > 0 ? total : 1);
  SSL *ssl = NULL;
  if (input == NULL) {
    goto out;
  }
  if (preface) {
    memcpy(input, PREFACE, sizeof(PREFACE) - 1);
  }
  if (size > 0) {
    memcpy(input + total - size, data, size);
  }
  if (mode == MODE_TLS_H2) {
    ssl = SSL_new(client_tls);
    if (ssl == NULL || SSL_set_fd(ssl, pair[1]) != 1 || !handshake(ssl)) {
      goto out;
    }
  }
  size_t sent = 0;
  bool open = true;
  for (int round = 0; round < MAX_ROUNDS && open; round++) {
    send_some(pair[1], ssl, input, total, &sent);
    ev_run(loop, EVRUN_NOWAIT);
    open = drain(pair[1], ssl);
  }
out:
  SSL_free(ssl);
  free(input);
  close(pair[1]);
  rpc_server_close_connections(server);
  ev_run(loop, EVRUN_NOWAIT);
  return 0;
}
