/* fuzz_connection.h: what the server fuzz targets (fuzz_server.c,
 * fuzz_http1.c) share: their loop, TLS with a self-signed certificate, and
 * one input fed over a socketpair to a server on the target's loop, read
 * back until it closes or a bounded number of rounds pass. */
#ifndef JOBHUB_TESTS_FUZZ_CONNECTION_H
#define JOBHUB_TESTS_FUZZ_CONNECTION_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "rpc/server.h"

/* fuzz_connection_set_up_failed reports a set-up error (what failed,
 * and why) and aborts. */
void fuzz_connection_set_up_failed(const char *what, const char *why);

/* fuzz_connection_set_up quiets the log, makes the target's loop and
 * its temporary folder (temp_dir: a mkdtemp template, filled in), and
 * returns the loop; aborts on failure (a set-up error). */
struct ev_loop *fuzz_connection_set_up(char *temp_dir);

/* fuzz_connection_tls writes a self-signed P-256 certificate (CN "fuzz")
 * and its key to dir/cert.pem and dir/key.pem, and returns the server's
 * SSL_CTX for them; *client gets the harness's client SSL_CTX: no
 * verification (the certificate is ours), offering alpn (ALPN wire
 * format, alpn_len bytes). Both are the caller's. Aborts on failure. */
SSL_CTX *fuzz_connection_tls(const char *dir, const unsigned char *alpn,
                             size_t alpn_len, SSL_CTX **client);

/* fuzz_connection_run serves one socketpair end on server (running on
 * loop) and sends it prefix (prefix_len bytes) then data from the other
 * end: inside TLS when client_tls is not NULL (the handshake is made
 * first, as the client SSL_CTX says), else as they are. It runs the loop
 * and drains the answers for at most a bounded number of rounds, then
 * closes every connection of server. SIGPIPE is ignored from then on. */
void fuzz_connection_run(struct ev_loop *loop, rpc_server *server,
                         SSL_CTX *client_tls, const void *prefix,
                         size_t prefix_len, const uint8_t *data, size_t size);

#endif
