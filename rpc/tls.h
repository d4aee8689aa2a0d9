/* tls.h: OpenSSL contexts for the server and the client: TLS 1.2 or later,
 * ALPN "h2", optional client certificates (mTLS). */
#ifndef JOBHUB_RPC_TLS_H
#define JOBHUB_RPC_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* rpc_tls_server_context loads cert_file (PEM chain) and key_file; when
 * client_ca_file is not NULL, clients must present a certificate signed by
 * it. Returns the context (the caller frees it with SSL_CTX_free) or NULL
 * with OpenSSL's reason in err. */
SSL_CTX *rpc_tls_server_context(const char *cert_file, const char *key_file,
                                const char *client_ca_file, char *err,
                                size_t err_size);

/* rpc_tls_server_offer_http1 makes ssl, made from a context of
 * rpc_tls_server_context, also accept ALPN "http/1.1" when the client
 * does not offer h2 (for a server with an HTTP/1.1 hook). Returns 0, or
 * -1 (no memory: ssl offers h2 only). */
int rpc_tls_server_offer_http1(SSL *ssl);

/* rpc_tls_client_context verifies servers against ca_file (NULL: the
 * system store); cert_file and key_file, both or neither, are the client
 * certificate for mTLS. Offers ALPN "h2". Returns the context or NULL with
 * a message in err. */
SSL_CTX *rpc_tls_client_context(const char *ca_file, const char *cert_file,
                                const char *key_file, char *err,
                                size_t err_size);

#endif
