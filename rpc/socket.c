/* socket.c: non-blocking plain or TLS sockets. Connected sockets get
 * TCP_NODELAY here; accepted ones from the server, which owns accept. */
#include "rpc/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

void rpc_socket_init(rpc_socket *s, int fd, SSL *ssl) {
  s->fd = fd;
  s->ssl = ssl;
  s->want_write = false;
  s->handshake_done = ssl == NULL;
}

void rpc_socket_attach_tls(rpc_socket *s, SSL *ssl) {
  s->ssl = ssl;
  s->handshake_done = false;
  s->want_write = false;
}

void rpc_socket_close(rpc_socket *s) {
  if (s->ssl != NULL) {
    if (s->handshake_done) {
      (void)SSL_shutdown(s->ssl); /* best effort close_notify */
      ERR_clear_error();
    }
    SSL_free(s->ssl);
    s->ssl = NULL;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

/* Maps an OpenSSL result to AGAIN (with want_write) or ERROR. */
static int tls_result(rpc_socket *s, int rv) {
  int error = SSL_get_error(s->ssl, rv);
  ERR_clear_error();
  if (error == SSL_ERROR_WANT_READ) {
    s->want_write = false;
    return RPC_SOCKET_AGAIN;
  }
  if (error == SSL_ERROR_WANT_WRITE) {
    s->want_write = true;
    return RPC_SOCKET_AGAIN;
  }
  return RPC_SOCKET_ERROR;
}

int rpc_socket_handshake(rpc_socket *s) {
  if (s->handshake_done) {
    return 1;
  }
  int rv = SSL_do_handshake(s->ssl);
  if (rv == 1) {
    s->handshake_done = true;
    s->want_write = false;
    return 1;
  }
  return tls_result(s, rv) == RPC_SOCKET_AGAIN ? 0 : RPC_SOCKET_ERROR;
}

ssize_t rpc_socket_read(rpc_socket *s, void *data, size_t size) {
  if (s->ssl == NULL) {
    for (;;) {
      ssize_t n = read(s->fd, data, size);
      if (n >= 0) {
        return n;
      }
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK ? RPC_SOCKET_AGAIN
                                                     : RPC_SOCKET_ERROR;
    }
  }
  int done = rpc_socket_handshake(s);
  if (done != 1) {
    return done == 0 ? RPC_SOCKET_AGAIN : RPC_SOCKET_ERROR;
  }
  size_t n = 0;
  int rv = SSL_read_ex(s->ssl, data, size, &n);
  if (rv == 1) {
    return (ssize_t)n;
  }
  if (SSL_get_error(s->ssl, rv) == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return 0;
  }
  return tls_result(s, rv);
}

ssize_t rpc_socket_write(rpc_socket *s, const void *data, size_t size) {
  if (s->ssl == NULL) {
    for (;;) {
      ssize_t n = send(s->fd, data, size, MSG_NOSIGNAL);
      if (n >= 0) {
        return n;
      }
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK ? RPC_SOCKET_AGAIN
                                                     : RPC_SOCKET_ERROR;
    }
  }
  int done = rpc_socket_handshake(s);
  if (done != 1) {
    return done == 0 ? RPC_SOCKET_AGAIN : RPC_SOCKET_ERROR;
  }
  size_t n = 0;
  int rv = SSL_write_ex(s->ssl, data, size, &n);
  if (rv == 1) {
    return (ssize_t)n;
  }
  return tls_result(s, rv);
}

bool rpc_socket_alpn_is_h2(const rpc_socket *s) {
  if (s->ssl == NULL) {
    return true;
  }
  const unsigned char *protocol = NULL;
  unsigned int len = 0;
  SSL_get0_alpn_selected(s->ssl, &protocol, &len);
  return len == 2 && memcmp(protocol, "h2", 2) == 0;
}

/* Splits "host:port" or "[v6]:port" into its parts. */
static int split_address(const char *address, char *host, size_t host_size,
                         char *port, size_t port_size) {
  const char *colon = strrchr(address, ':');
  if (colon == NULL || colon[1] == '\0') {
    return -1;
  }
  const char *start = address;
  size_t len = (size_t)(colon - address);
  if (len >= 2 && address[0] == '[' && address[len - 1] == ']') {
    start++;
    len -= 2;
  }
  if (len >= host_size || strlen(colon + 1) >= port_size) {
    return -1;
  }
  memcpy(host, start, len);
  host[len] = '\0';
  snprintf(port, port_size, "%s", colon + 1);
  return 0;
}

/* getaddrinfo takes a port above 65535 modulo 65536 (99999 is 34463):
 * only 0..65535 in decimal digits is a port here. */
static bool port_is_valid(const char *port) {
  size_t len = strlen(port);
  if (len == 0 || len > 5 || strspn(port, "0123456789") != len) {
    return false;
  }
  return strtoul(port, NULL, 10) <= 65535;
}

int rpc_socket_check_address(const char *address, char *err, size_t err_size) {
  char host[256], port[16];
  if (split_address(address, host, sizeof(host), port, sizeof(port)) != 0) {
    snprintf(err, err_size, "address %s is not host:port", address);
    return -1;
  }
  if (!port_is_valid(port)) {
    snprintf(err, err_size, "address %s: the port must be 0..65535", address);
    return -1;
  }
  return 0;
}

static struct addrinfo *resolve(const char *address, bool passive, char *err,
                                size_t err_size) {
  char host[256], port[16];
  if (rpc_socket_check_address(address, err, err_size) != 0 ||
      split_address(address, host, sizeof(host), port, sizeof(port)) != 0) {
    return NULL;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = passive ? AI_PASSIVE : 0};
  struct addrinfo *result = NULL;
  int rv = getaddrinfo(host[0] ? host : NULL, port, &hints, &result);
  if (rv != 0) {
    snprintf(err, err_size, "cannot resolve %s: %s", address, gai_strerror(rv));
    return NULL;
  }
  return result;
}

int rpc_socket_listen(const char *address, char *err, size_t err_size) {
  struct addrinfo *addresses = resolve(address, true, err, err_size);
  if (addresses == NULL) {
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *a = addresses; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) {
      snprintf(err, err_size, "cannot listen on %s: %s", address,
               strerror(errno));
      continue;
    }
    /* SO_REUSEADDR binds over TIME_WAIT after a restart; no SO_REUSEPORT,
     * which would let another process share the port and split clients. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
      snprintf(err, err_size, "cannot listen on %s: %s", address,
               strerror(errno));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  return fd;
}

int rpc_socket_connect(const char *address, char *err, size_t err_size) {
  struct addrinfo *addresses = resolve(address, false, err, err_size);
  if (addresses == NULL) {
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *a = addresses; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) {
      snprintf(err, err_size, "cannot connect to %s: %s", address,
               strerror(errno));
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      snprintf(err, err_size, "cannot connect to %s: %s", address,
               strerror(errno));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  return fd;
}

unsigned rpc_socket_local_port(int fd) {
  struct sockaddr_storage address;
  socklen_t len = sizeof(address);
  if (getsockname(fd, (struct sockaddr *)&address, &len) != 0) {
    return 0;
  }
  if (address.ss_family == AF_INET) {
    return ntohs(((struct sockaddr_in *)&address)->sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
  }
  return 0;
}

char *rpc_socket_peer_cn(const rpc_socket *s) {
  if (s->ssl == NULL || !s->handshake_done) {
    return NULL;
  }
  X509 *cert = SSL_get0_peer_certificate(s->ssl);
  if (cert == NULL || SSL_get_verify_result(s->ssl) != X509_V_OK) {
    return NULL;
  }
  X509_NAME *subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  /* Several CNs: which one names the client is ambiguous, so none does. */
  if (index < 0 ||
      X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) {
    return NULL;
  }
  const ASN1_STRING *data =
      X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char *utf8 = NULL;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len <= 0) {
    OPENSSL_free(utf8);
    return NULL;
  }
  char *cn = NULL;
  if (memchr(utf8, '\0', (size_t)len) == NULL) {
    cn = malloc((size_t)len + 1);
    if (cn != NULL) {
      memcpy(cn, utf8, (size_t)len);
      cn[len] = '\0';
    }
  }
  OPENSSL_free(utf8);
  return cn;
}

void rpc_socket_peer_address(int fd, char *out, size_t out_size) {
  struct sockaddr_storage address;
  socklen_t len = sizeof(address);
  const void *ip = NULL;
  if (getpeername(fd, (struct sockaddr *)&address, &len) == 0) {
    if (address.ss_family == AF_INET) {
      ip = &((const struct sockaddr_in *)&address)->sin_addr;
    } else if (address.ss_family == AF_INET6) {
      ip = &((const struct sockaddr_in6 *)&address)->sin6_addr;
    }
  }
  if (ip == NULL || out_size < INET6_ADDRSTRLEN ||
      inet_ntop(address.ss_family, ip, out, (socklen_t)out_size) == NULL) {
    snprintf(out, out_size, "unknown");
  }
}
