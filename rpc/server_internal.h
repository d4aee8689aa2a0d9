/* server_internal.h: the server without threads or listeners, for tests
 * and fuzzing: connections are handed in as connected fds and served on
 * the caller's loop. Not for production use. */
#ifndef JOBHUB_RPC_SERVER_INTERNAL_H
#define JOBHUB_RPC_SERVER_INTERNAL_H

#include "rpc/server.h"

struct ev_loop;

/* rpc_server_start_on_loop prepares server (not started otherwise) to
 * serve on loop, which the caller runs and destroys after
 * rpc_server_free. Returns 0, or -1 with a message in err. */
int rpc_server_start_on_loop(rpc_server *server, struct ev_loop *loop,
                             char *err, size_t err_size);

/* rpc_server_adopt_fd serves a connected, non-blocking fd as a new
 * connection; the server owns fd afterwards. Returns 0 or -1 (fd closed). */
int rpc_server_adopt_fd(rpc_server *server, int fd);

/* rpc_server_close_connections closes every connection of a server
 * started on a loop, cancelling their calls. */
void rpc_server_close_connections(rpc_server *server);

#endif
