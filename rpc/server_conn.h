/* server_conn.h: a server connection's life on its loop thread
 * (server_conn.c): opened on an accepted fd, sniffed, served (HTTP/2 by
 * server_h2.c) or handed to the protocol hook, closed. Internal to the
 * server; used by server.c. */
#ifndef JOBHUB_RPC_SERVER_CONN_H
#define JOBHUB_RPC_SERVER_CONN_H

#include <ev.h>

#include "rpc/server_state.h"

/* server_conn_open serves fd (connected, non-blocking) on thread's loop;
 * the connection owns fd afterwards. Returns 0, or -1 (no memory; fd
 * closed). */
int server_conn_open(server_thread *thread, int fd);

/* server_conn_close closes c at once: its streams end (calls and hooked
 * requests learn they are cancelled), its socket is closed, and c is
 * freed. The last connection of a stopping thread breaks its loop. */
void server_conn_close(rpc_connection *c);

/* server_conn_close_hooked asks the protocol hook, if it takes HTTP/1.x,
 * to close every connection it took on thread's loop. */
void server_conn_close_hooked(server_thread *thread);

/* server_conn_on_prepare is the thread's ev_prepare callback (data: the
 * server_thread): it runs every scheduled flush before the loop waits,
 * then the on_writable hooks the flushes owe. */
void server_conn_on_prepare(struct ev_loop *loop, ev_prepare *watcher,
                            int events);

/* server_conn_on_spin is the thread's ev_idle callback (data: the
 * server_thread) that keeps the loop polling for busy_poll seconds after
 * input. */
void server_conn_on_spin(struct ev_loop *loop, ev_idle *watcher, int events);

#endif
