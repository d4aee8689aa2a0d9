/* socket.h: a non-blocking stream socket, plain or TLS, as both the server
 * and the client runtime read and write it. */
#ifndef JOBHUB_RPC_SOCKET_H
#define JOBHUB_RPC_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

enum {
  RPC_SOCKET_AGAIN = -1, /* would block; wait for the wanted event */
  RPC_SOCKET_ERROR = -2, /* fatal; close the connection */
};

/* The socket owns fd and ssl. */
typedef struct rpc_socket {
  int fd;
  SSL *ssl;        /* NULL for plain TCP */
  bool want_write; /* the last AGAIN needs the fd writable */
  bool handshake_done;
} rpc_socket;

/* rpc_socket_init wraps fd; ssl may be NULL. Ownership of both moves to s. */
void rpc_socket_init(rpc_socket *s, int fd, SSL *ssl);

/* rpc_socket_attach_tls starts TLS on a plain socket that has not been
 * read from: ssl (set to s's fd, in accept or connect state) moves to s,
 * and the next read, write or handshake drives the handshake. */
void rpc_socket_attach_tls(rpc_socket *s, SSL *ssl);

/* rpc_socket_close shuts TLS down (best effort), closes fd, frees ssl. */
void rpc_socket_close(rpc_socket *s);

/* rpc_socket_read reads up to size bytes. Returns the count (> 0), 0 at
 * end of stream, RPC_SOCKET_AGAIN or RPC_SOCKET_ERROR. Drives the TLS
 * handshake first where there is one. */
ssize_t rpc_socket_read(rpc_socket *s, void *data, size_t size);

/* rpc_socket_write writes up to size bytes. Returns the count (> 0),
 * RPC_SOCKET_AGAIN or RPC_SOCKET_ERROR. */
ssize_t rpc_socket_write(rpc_socket *s, const void *data, size_t size);

/* rpc_socket_handshake drives the TLS handshake. Returns 1 when done (or
 * plain), 0 while it needs more I/O (see want_write), RPC_SOCKET_ERROR. */
int rpc_socket_handshake(rpc_socket *s);

/* rpc_socket_alpn_is_h2 tells whether TLS negotiated ALPN "h2" (true for
 * plain sockets). */
bool rpc_socket_alpn_is_h2(const rpc_socket *s);

/* rpc_socket_peer_cn returns the subject CN of the client certificate
 * that the TLS handshake verified (a copy the caller frees), or NULL: a
 * plain socket, no certificate, no or several CNs, a CN with a NUL byte,
 * no memory. Call after the handshake. */
char *rpc_socket_peer_cn(const rpc_socket *s);

/* rpc_socket_peer_address writes the IP address of fd's peer (without
 * the port) to out; "unknown" when it cannot be told. */
void rpc_socket_peer_address(int fd, char *out, size_t out_size);
/* rpc_socket_check_address checks that address is "host:port" with a
 * decimal port 0..65535, without resolving it. Returns 0, or -1 with a
 * message in err. */
int rpc_socket_check_address(const char *address, char *err, size_t err_size);

/* rpc_socket_listen binds and listens on "host:port" (IPv4, IPv6 in
 * brackets, or a name), SO_REUSEADDR but not SO_REUSEPORT: a port in use
 * by another socket fails (EADDRINUSE). Returns the fd, or -1 with a
 * message in err naming the address. */
int rpc_socket_listen(const char *address, char *err, size_t err_size);

/* rpc_socket_connect starts a non-blocking connect to "host:port" (name
 * resolution blocks). Returns the fd, or -1 with a message in err. */
int rpc_socket_connect(const char *address, char *err, size_t err_size);

/* rpc_socket_local_port returns the port fd is bound to, or 0. */
unsigned rpc_socket_local_port(int fd);

#endif
