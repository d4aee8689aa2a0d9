/* service_table.h: the services a server serves and the route from a
 * request's ":path" to one of their methods (an open-addressing hash
 * table built once, at start). Internal to the server. */
#ifndef JOBHUB_RPC_SERVICE_TABLE_H
#define JOBHUB_RPC_SERVICE_TABLE_H

#include <stddef.h>

#include "rpc/method.h"

/* A service as added: its descriptor, typed handler table and user
 * argument, all borrowed. */
typedef struct rpc_registered_service {
  const rpc_service_desc *desc;
  const void *handlers;
  void *user;
} rpc_registered_service;

typedef struct rpc_route {
  const char *path; /* NULL: empty slot */
  const rpc_method *method;
  const rpc_registered_service *service;
} rpc_route;

/* The table owns its arrays, not what they point to. */
typedef struct rpc_service_table {
  rpc_registered_service *services;
  size_t service_count;
  rpc_route *routes; /* NULL until rpc_service_table_build_routes */
  size_t route_mask; /* slots - 1, a power of two minus one */
} rpc_service_table;

/* rpc_service_table_init makes an empty table. */
void rpc_service_table_init(rpc_service_table *table);

/* rpc_service_table_free releases the table's arrays. */
void rpc_service_table_free(rpc_service_table *table);

/* rpc_service_table_add adds a service. Returns 0, or -1 when a service of
 * that name is there already, or no memory. Not after build_routes. */
int rpc_service_table_add(rpc_service_table *table,
                          const rpc_service_desc *desc, const void *handlers,
                          void *user);

/* rpc_service_table_build_routes makes the route of every method of every
 * service added. Returns 0, or -1 (no memory). */
int rpc_service_table_build_routes(rpc_service_table *table);

/* rpc_service_table_find returns the route of path, or NULL. */
const rpc_route *rpc_service_table_find(const rpc_service_table *table,
                                        const char *path);

/* rpc_service_table_service_name returns the name of the service path
 * ("/pkg.Service/Method", may be NULL) names when that service is served,
 * else NULL: for a clearer UNIMPLEMENTED. */
const char *rpc_service_table_service_name(const rpc_service_table *table,
                                           const char *path);

#endif
