/* daemon.h: jobhubd's whole life (configuration, server, health,
 * reflection, signals, graceful shutdown) behind one call, so that a test
 * server is jobhubd plus its own services. */
#ifndef JOBHUB_SERVER_DAEMON_H
#define JOBHUB_SERVER_DAEMON_H

#include "rpc/descriptor_pool.h"
#include "rpc/server.h"

/* Adds a program's own services to server and their descriptor set to
 * pool, before the server starts. Returns 0, or -1 to abort start-up. */
typedef int (*jobhubd_add_services_fn)(rpc_server *server,
                                       rpc_descriptor_pool *pool, void *arg);

/* jobhubd_main parses argv, serves until SIGTERM or SIGINT, shuts down
 * gracefully, and returns the process exit code: 0 after a clean
 * shutdown, 1 when start-up failed, 2 for a usage error. extra may be
 * NULL. */
int jobhubd_main(int argc, char **argv, jobhubd_add_services_fn extra,
                 void *arg);

#endif
