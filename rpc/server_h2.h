/* server_h2.h: the HTTP/2 side of a server connection (server_h2.c): the
 * nghttp2 session, its streams, and the route of each request to a gRPC
 * call or to the protocol hook. Internal to the server; used by
 * server_conn.c and server.c. */
#ifndef JOBHUB_RPC_SERVER_H2_H
#define JOBHUB_RPC_SERVER_H2_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/server_state.h"

/* server_h2_init makes the nghttp2 callbacks every session shares, once
 * per process. Returns 0, or -1 (no memory). */
int server_h2_init(void);

/* server_h2_start makes c's session with the server's settings queued
 * (GOAWAY too when its thread is stopping) and moves c to PHASE_H2.
 * Returns 0, or -1 (no memory; close c). */
int server_h2_start(rpc_connection *c);

/* server_h2_feed gives received bytes to c's session. Returns 0, or -1 on
 * a protocol error: nghttp2 may have queued a GOAWAY, which the caller
 * tries to flush before it closes c. */
int server_h2_feed(rpc_connection *c, const uint8_t *data, size_t len);

/* server_h2_goaway queues a graceful GOAWAY on c, once, if it speaks
 * HTTP/2. */
void server_h2_goaway(rpc_connection *c);

/* server_h2_deliver_writable runs the on_writable (and owed on_cancel)
 * hooks of c's streams after a flush. */
void server_h2_deliver_writable(rpc_connection *c);

/* server_h2_end ends every stream of c (their calls and requests learn
 * they are cancelled) and frees its session. */
void server_h2_end(rpc_connection *c);

#endif
