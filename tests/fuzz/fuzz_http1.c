/* fuzz_http1.c: the HTTP/1.x path of the server's port — sniffing, the
 * hand-over to the protocol hook, rpc/http1 (libhttp-parser, keep-alive,
 * pipelining, chunked bodies, limits) and the test server's request
 * handler (echo_protocol_hook.h: bodies echoed, headers listed, streamed
 * and bounded answers) — fed with arbitrary bytes over a socketpair
 * served on this thread's loop. The limits are small, so that inputs
 * reach them: 4 KiB of head, 16 KiB of body, 64 KiB of output.
 *
 * The first input byte (modulo 2) chooses how the connection starts:
 *   0  the rest as it is, cleartext (what is not the HTTP/2 preface is
 *      HTTP/1.x);
 *   1  a TLS handshake made here offering only ALPN http/1.1, then the
 *      rest inside TLS. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "echo_protocol_hook.h"
#include "fuzz_connection.h"
#include "rpc/http1.h"
#include "rpc/server_internal.h"

enum { MODE_PLAIN, MODE_TLS, MODE_COUNT };

static struct ev_loop *loop;
static rpc_server *plain_server;
static rpc_server *tls_server;
static SSL_CTX *client_tls;
static char temp_dir[] = "/tmp/fuzz_http1-XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Removes what fuzz_connection_tls wrote, and the folder. */
static void remove_temp_files(void) {
  char path[sizeof(temp_dir) + 16];
  snprintf(path, sizeof(path), "%s/cert.pem", temp_dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/key.pem", temp_dir);
  unlink(path);
  rmdir(temp_dir);
}

/* A server on the loop whose protocol hook is rpc/http1 with the test
 * handler, for HTTP/1.x and HTTP/2 requests alike. */
static rpc_server *new_server(SSL_CTX *tls) {
  char err[256] = "";
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.threads = 1;
  options.tls = tls;
  options.max_header_list_bytes = 4096;
  options.max_receive_message_bytes = 16384;
  options.max_stream_output_bytes = 65536;
  options.max_connection_output_bytes = 65536;
  rpc_http1_options http1_options;
  rpc_http1_options_default(&http1_options, &options);
  rpc_http1_server *http1 =
      rpc_http1_server_new(&http1_options, echo_protocol_hook_request, NULL);
  rpc_server *server = rpc_server_new(&options, err, sizeof(err));
  if (http1 == NULL || server == NULL) {
    fuzz_connection_set_up_failed("server", err);
  }
  /* Both live as long as the process. */
  rpc_protocol_hook hook;
  rpc_http1_protocol_hook(&hook, http1);
  if (rpc_server_set_protocol_hook(server, &hook) != 0 ||
      rpc_server_start_on_loop(server, loop, err, sizeof(err)) != 0) {
    fuzz_connection_set_up_failed("server", err);
  }
  return server;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  loop = fuzz_connection_set_up(temp_dir);
  atexit(remove_temp_files);
  /* The harness offers only ALPN http/1.1, as curl --http1.1 does. */
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX *server_tls =
      fuzz_connection_tls(temp_dir, alpn, sizeof(alpn) - 1, &client_tls);
  plain_server = new_server(NULL);
  tls_server = new_server(server_tls);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) {
    return 0;
  }
  int mode = data[0] % MODE_COUNT;
  fuzz_connection_run(loop, mode == MODE_TLS ? tls_server : plain_server,
                      mode == MODE_TLS ? client_tls : NULL, NULL, 0, data + 1,
                      size - 1);
  return 0;
}
