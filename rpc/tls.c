/* tls.c: OpenSSL contexts: TLS 1.2+, ALPN h2, optional mTLS. */
#include "rpc/tls.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static const unsigned char alpn_h2[] = {2, 'h', '2'};
/* h2 first: SSL_select_next_proto picks the first of ours the client has. */
static const unsigned char alpn_h2_http1[] = {2,   'h', '2', 8,   'h', 't',
                                              't', 'p', '/', '1', '.', '1'};

/* The SSL ex_data slot that marks a connection that also takes
 * http/1.1; -1 until made (or when OpenSSL could not make it). */
static int http1_index = -1;
static pthread_once_t http1_index_once = PTHREAD_ONCE_INIT;

static void make_http1_index(void) {
  http1_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int rpc_tls_server_offer_http1(SSL *ssl) {
  pthread_once(&http1_index_once, make_http1_index);
  static char marker;
  return http1_index >= 0 && SSL_set_ex_data(ssl, http1_index, &marker) == 1
             ? 0
             : -1;
}

/* TLS 1.2 suites: ECDHE with AEAD only, as RFC 7540 9.2.2 asks of HTTP/2
 * (TLS 1.3 suites all qualify and keep OpenSSL's defaults). */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static void openssl_error(const char *what, char *err, size_t err_size) {
  char reason[256] = "unknown error";
  unsigned long code = ERR_get_error();
  if (code != 0) {
    ERR_error_string_n(code, reason, sizeof(reason));
  }
  ERR_clear_error();
  snprintf(err, err_size, "%s: %s", what, reason);
}

/* ALPN: the server speaks h2, and http/1.1 too where the connection was
 * marked by rpc_tls_server_offer_http1; a client with neither is
 * refused. */
static int select_h2(SSL *ssl, const unsigned char **out,
                     unsigned char *out_len, const unsigned char *in,
                     unsigned int in_len, void *arg) {
  (void)arg;
  pthread_once(&http1_index_once, make_http1_index);
  bool http1 = http1_index >= 0 && SSL_get_ex_data(ssl, http1_index) != NULL;
  const unsigned char *ours = http1 ? alpn_h2_http1 : alpn_h2;
  unsigned int ours_len = http1 ? sizeof(alpn_h2_http1) : sizeof(alpn_h2);
  unsigned char *selected = NULL;
  if (SSL_select_next_proto(&selected, out_len, ours, ours_len, in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_context(const SSL_METHOD *method, char *err,
                            size_t err_size) {
  ERR_clear_error(); /* so err tells this failure, not an older one */
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (ctx == NULL) {
    openssl_error("cannot create a TLS context", err, err_size);
    return NULL;
  }
  /* RFC 7540 9.2: TLS 1.2 or later, no renegotiation, no compression. */
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
    openssl_error("cannot configure TLS", err, err_size);
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

SSL_CTX *rpc_tls_server_context(const char *cert_file, const char *key_file,
                                const char *client_ca_file, char *err,
                                size_t err_size) {
  SSL_CTX *ctx = new_context(TLS_server_method(), err, err_size);
  if (ctx == NULL) {
    return NULL;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    openssl_error(cert_file, err, err_size);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    openssl_error(key_file, err, err_size);
    goto fail;
  }
  if (client_ca_file != NULL) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca_file, NULL) != 1) {
      openssl_error(client_ca_file, err, err_size);
      goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    /* Resumed sessions of verified clients need a session id context;
     * without one OpenSSL fails the resumption handshake. */
    static const unsigned char session_context[] = "jobhub";
    if (SSL_CTX_set_session_id_context(ctx, session_context,
                                       sizeof(session_context) - 1) != 1) {
      openssl_error("session id context", err, err_size);
      goto fail;
    }
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

SSL_CTX *rpc_tls_client_context(const char *ca_file, const char *cert_file,
                                const char *key_file, char *err,
                                size_t err_size) {
  if ((cert_file == NULL) != (key_file == NULL)) {
    snprintf(err, err_size, "a client certificate needs its key, and back");
    return NULL;
  }
  SSL_CTX *ctx = new_context(TLS_client_method(), err, err_size);
  if (ctx == NULL) {
    return NULL;
  }
  int loaded = ca_file != NULL
                   ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                   : SSL_CTX_set_default_verify_paths(ctx);
  if (loaded != 1) {
    openssl_error(ca_file != NULL ? ca_file : "system CA store", err, err_size);
    goto fail;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (cert_file != NULL &&
      SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    openssl_error(cert_file, err, err_size);
    goto fail;
  }
  if (key_file != NULL &&
      (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(ctx) != 1)) {
    openssl_error(key_file, err, err_size);
    goto fail;
  }
  if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
    openssl_error("ALPN", err, err_size);
    goto fail;
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}
