/* fuzz_server.c: the whole request path — sniffing, HTTP/2, gRPC framing,
 * decoding, dispatch to the echo, health and reflection services — fed
 * with arbitrary bytes after the HTTP/2 client preface, over a socketpair
 * served on this thread's loop. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "echo_descriptor_set.h"
#include "echo_service.h"
#include "rpc/health.h"
#include "rpc/reflection.h"
#include "rpc/server_internal.h"
#include "rpc_descriptor_set.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MAX_ROUNDS 64

static struct ev_loop *loop;
static rpc_server *server;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char err[256];
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.threads = 1;
  loop = ev_loop_new(EVFLAG_AUTO);
  server = rpc_server_new(&options, err, sizeof(err));
  rpc_descriptor_pool *pool = rpc_descriptor_pool_new();
  if (loop == NULL || server == NULL || pool == NULL ||
      rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                  rpc_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, echo_descriptor_set,
                                  echo_descriptor_set_size) != 0 ||
      echo_service_add(server) != 0 || rpc_health_add(server) == NULL ||
      rpc_reflection_add(server, pool) == NULL ||
      rpc_server_start_on_loop(server, loop, err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz_server: set-up failed: %s\n", err);
    abort();
  }
  return 0;
}

/* Reads and drops what the server wrote. Returns false at end of stream. */
static bool drain(int fd) {
  uint8_t sink[65536];
  for (;;) {
    ssize_t n = read(fd, sink, sizeof(sink));
    if (n > 0) {
      continue;
    }
    return n != 0;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 pair) != 0) {
    return 0;
  }
  if (rpc_server_adopt_fd(server, pair[0]) != 0) {
    close(pair[1]);
    return 0;
  }
  uint8_t *input = malloc(sizeof(PREFACE) - 1 + size);
  if (input == NULL) {
    close(pair[1]);
    rpc_server_close_connections(server);
    return 0;
  }
  memcpy(input, PREFACE, sizeof(PREFACE) - 1);
  memcpy(input + sizeof(PREFACE) - 1, data, size);
  size_t total = sizeof(PREFACE) - 1 + size;
  size_t sent = 0;
  bool open = true;
  for (int round = 0; round < MAX_ROUNDS && open; round++) {
    if (sent < total) {
      ssize_t n = write(pair[1], input + sent, total - sent);
      if (n > 0) {
        sent += (size_t)n;
      }
      if (sent == total) {
        shutdown(pair[1], SHUT_WR);
      }
    }
    ev_run(loop, EVRUN_NOWAIT);
    open = drain(pair[1]);
  }
  free(input);
  close(pair[1]);
  rpc_server_close_connections(server);
  ev_run(loop, EVRUN_NOWAIT);
  return 0;
}
