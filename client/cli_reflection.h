/* cli_reflection.h: a client of gRPC server reflection
 * (grpc.reflection.v1.ServerReflection, falling back to v1alpha when the
 * server does not serve v1): lists services and fetches the file
 * descriptors that declare a symbol, with their dependencies, into a pool
 * of its own, for any server. */
#ifndef JOBHUB_CLIENT_CLI_REFLECTION_H
#define JOBHUB_CLIENT_CLI_REFLECTION_H

#include <stddef.h>

#include "client/cli_context.h"
#include "rpc/descriptor_pool.h"

typedef struct cli_reflection cli_reflection;

/* cli_reflection_new returns a client on ctx's channel (no call is made
 * yet), or NULL when memory is exhausted. */
cli_reflection *cli_reflection_new(cli_context *ctx);

/* cli_reflection_free ends the reflection stream and frees the pool and
 * the descriptor bytes. */
void cli_reflection_free(cli_reflection *r);

/* cli_reflection_list_services stores the services the server names in
 * *names (an array of *count strings; owned by r, valid until it is
 * freed). Returns an exit code, having printed any error. */
int cli_reflection_list_services(cli_reflection *r, const char *const **names,
                                 size_t *count);

/* cli_reflection_load_symbol fetches the file that declares symbol (fully
 * qualified, a leading dot allowed) and every file it depends on, unless
 * the pool has them already. An unknown symbol is the server's NOT_FOUND.
 * Returns an exit code, having printed any error. */
int cli_reflection_load_symbol(cli_reflection *r, const char *symbol);

/* cli_reflection_pool returns the pool of the files fetched so far (owned
 * by r). */
const rpc_descriptor_pool *cli_reflection_pool(const cli_reflection *r);

#endif
