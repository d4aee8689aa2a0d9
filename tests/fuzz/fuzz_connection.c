/* fuzz_connection.c: see fuzz_connection.h. */
#include "fuzz_connection.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rpc/log.h"
#include "rpc/server_internal.h"
#include "rpc/tls.h"

#define MAX_ROUNDS 64

void fuzz_connection_set_up_failed(const char *what, const char *why) {
  fprintf(stderr, "fuzz: set-up failed: %s: %s\n", what, why);
  abort();
}

struct ev_loop *fuzz_connection_set_up(char *temp_dir) {
  rpc_log_set_level(RPC_LOG_ERROR);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  if (loop == NULL || mkdtemp(temp_dir) == NULL) {
    fuzz_connection_set_up_failed("loop or temporary folder", "");
  }
  return loop;
}

/* Writes a self-signed P-256 certificate and its key as PEM files. */
static void write_certificate(const char *cert_path, const char *key_path) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = X509_new();
  if (key == NULL || cert == NULL) {
    fuzz_connection_set_up_failed("certificate", "out of memory");
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
    fuzz_connection_set_up_failed("certificate", "cannot write it");
  }
  fclose(cert_file);
  fclose(key_file);
  X509_free(cert);
  EVP_PKEY_free(key);
}

SSL_CTX *fuzz_connection_tls(const char *dir, const unsigned char *alpn,
                             size_t alpn_len, SSL_CTX **client) {
  char err[256] = "";
  char cert_path[512], key_path[512];
  snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
  snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
  write_certificate(cert_path, key_path);
  SSL_CTX *server =
      rpc_tls_server_context(cert_path, key_path, NULL, err, sizeof(err));
  *client = SSL_CTX_new(TLS_client_method());
  if (server == NULL || *client == NULL ||
      SSL_CTX_set_alpn_protos(*client, alpn, (unsigned)alpn_len) != 0) {
    fuzz_connection_set_up_failed("TLS", err);
  }
  SSL_CTX_set_verify(*client, SSL_VERIFY_NONE, NULL);
  return server;
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
static bool handshake(struct ev_loop *loop, SSL *ssl) {
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

void fuzz_connection_run(struct ev_loop *loop, rpc_server *server,
                         SSL_CTX *client_tls, const void *prefix,
                         size_t prefix_len, const uint8_t *data, size_t size) {
  /* The server may close while the input is still being sent. */
  signal(SIGPIPE, SIG_IGN);
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 pair) != 0) {
    return;
  }
  if (rpc_server_adopt_fd(server, pair[0]) != 0) {
    close(pair[1]);
    return;
  }
  size_t total = prefix_len + size;
  uint8_t *input = malloc(total > 0 ? total : 1);
  SSL *ssl = NULL;
  if (input == NULL) {
    goto out;
  }
  if (prefix_len > 0) {
    memcpy(input, prefix, prefix_len);
  }
  if (size > 0) {
    memcpy(input + prefix_len, data, size);
  }
  if (client_tls != NULL) {
    ssl = SSL_new(client_tls);
    if (ssl == NULL || SSL_set_fd(ssl, pair[1]) != 1 || !handshake(loop, ssl)) {
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
}
