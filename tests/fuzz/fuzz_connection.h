/* fuzz_connection.h: what the server fuzz targets (fuzz_server.c,
 * fuzz_http1.c) share: a self-signed certificate for a TLS server, and
 * one input fed over a socketpair to a server on the target's loop, read
 * back until it closes or a bounded number of rounds pass. */
#ifndef JOBHUB_TESTS_FUZZ_CONNECTION_H
#define JOBHUB_TESTS_FUZZ_CONNECTION_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "rpc/server.h"

/* fuzz_connection_write_certificate writes a self-signed P-256
 * certificate (CN "fuzz") and its key as PEM files; aborts on failure
 * (a set-up error). */
void fuzz_connection_write_certificate(const char *cert_path,
                                       const char *key_path);

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
