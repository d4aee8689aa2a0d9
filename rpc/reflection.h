/* reflection.h: grpc.reflection.v1.ServerReflection and its v1alpha twin,
 * answering from a descriptor pool: list_services, file_by_filename,
 * file_containing_symbol (each file with its transitive dependencies),
 * file_containing_extension and all_extension_numbers_of_type. */
#ifndef JOBHUB_RPC_REFLECTION_H
#define JOBHUB_RPC_REFLECTION_H

#include "rpc/descriptor_pool.h"
#include "rpc/server.h"

typedef struct rpc_reflection rpc_reflection;

/* rpc_reflection_add registers both reflection services on server (before
 * start) and returns their state, owned by the caller (free it after the
 * server). list_services names every service the server has when asked,
 * health and reflection included. pool is borrowed and must outlive the
 * server. NULL: no memory. */
rpc_reflection *rpc_reflection_add(rpc_server *server,
                                   const rpc_descriptor_pool *pool);

/* rpc_reflection_free frees the state once the server is freed. */
void rpc_reflection_free(rpc_reflection *reflection);

#endif
