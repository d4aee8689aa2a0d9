/* cli_schema.h: lookups in a descriptor pool that the generic commands
 * need beyond rpc/descriptor_pool.h (services and methods by name), and
 * `jobhub describe`: a symbol shown in .proto syntax. */
#ifndef JOBHUB_CLIENT_CLI_SCHEMA_H
#define JOBHUB_CLIENT_CLI_SCHEMA_H

#include <stdio.h>

#include "rpc/descriptor_pool.h"

/* cli_schema_find_service returns the service called name (fully
 * qualified, no leading dot), or NULL. Owned by the pool. */
const Google__Protobuf__ServiceDescriptorProto *
cli_schema_find_service(const rpc_descriptor_pool *pool, const char *name);

/* cli_schema_find_method returns method of service, or NULL. */
const Google__Protobuf__MethodDescriptorProto *
cli_schema_find_method(const Google__Protobuf__ServiceDescriptorProto *service,
                       const char *method);

/* cli_schema_describe writes symbol (a service, method, message, enum,
 * field or enum value; fully qualified) in .proto syntax to out, headed
 * "SYMBOL is a KIND:". Returns 0, or -1 when the pool does not declare
 * it. */
int cli_schema_describe(const rpc_descriptor_pool *pool, const char *symbol,
                        FILE *out);

#endif
