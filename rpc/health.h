/* health.h: grpc.health.v1.Health (Check and Watch) over the statuses the
 * program sets: "" for the whole server and one per service name. */
#ifndef JOBHUB_RPC_HEALTH_H
#define JOBHUB_RPC_HEALTH_H

#include "rpc/server.h"

typedef struct rpc_health rpc_health;

typedef enum rpc_health_status {
  RPC_HEALTH_SERVING = 1,     /* = HealthCheckResponse.SERVING */
  RPC_HEALTH_NOT_SERVING = 2, /* = HealthCheckResponse.NOT_SERVING */
} rpc_health_status;

/* rpc_health_add registers the Health service on server (before start) and
 * returns its state, owned by the caller (free it after the server). No
 * service is known until rpc_health_set names it. NULL: no memory. */
rpc_health *rpc_health_add(rpc_server *server);

/* rpc_health_set records status for service ("" is the whole server) and
 * tells every Watch of it. Thread-safe. Returns 0 or -1 (no memory). */
int rpc_health_set(rpc_health *health, const char *service,
                   rpc_health_status status);

/* rpc_health_set_all sets every known service, "" included, to status:
 * NOT_SERVING on shutdown. Thread-safe. */
void rpc_health_set_all(rpc_health *health, rpc_health_status status);

/* rpc_health_close_watches ends every Watch with UNAVAILABLE (after their
 * last status went out), so that open watches do not hold up a graceful
 * shutdown. Runs on the loops, in order before tasks posted later. */
void rpc_health_close_watches(rpc_health *health);

/* rpc_health_free frees the state once the server is freed. */
void rpc_health_free(rpc_health *health);

#endif
