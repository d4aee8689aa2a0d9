/* route_rules.h: the google.api.http rules of the methods in a descriptor
 * pool (MethodOptions extension 72295728, an HttpRule) read into a route
 * table, so no route is written by hand. */
#ifndef JOBHUB_SERVER_HTTP_ROUTE_RULES_H
#define JOBHUB_SERVER_HTTP_ROUTE_RULES_H

#include <stddef.h>

#include "rpc/descriptor_pool.h"
#include "server/http/route_table.h"

/* http_route_rules_add_service adds the google.api.http rule of every
 * method of service (fully qualified, "jobhub.v1.Jobs") in pool, with its
 * additional_bindings (theirs are ignored, as http.proto says they must
 * not nest); methods without a rule get no route. Returns 0, or -1 with a
 * message naming the method: the service is not in the pool, a rule that
 * does not parse or has no pattern, or an error of http_route_table_add.
 * Routes added before the error stay. */
int http_route_rules_add_service(http_route_table *table,
                                 const rpc_descriptor_pool *pool,
                                 const char *service, char *err,
                                 size_t err_size);

/* http_route_rules_add_pool is http_route_rules_add_service for every
 * service of every file in pool. */
int http_route_rules_add_pool(http_route_table *table,
                              const rpc_descriptor_pool *pool, char *err,
                              size_t err_size);

#endif
