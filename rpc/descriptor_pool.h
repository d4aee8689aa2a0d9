/* descriptor_pool.h: the .proto files compiled into a binary, as
 * serialized FileDescriptorProtos, indexed by file name and by symbol:
 * what server reflection answers with and what ProtoJSON looks names up
 * in. */
#ifndef JOBHUB_RPC_DESCRIPTOR_POOL_H
#define JOBHUB_RPC_DESCRIPTOR_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef struct rpc_descriptor_pool rpc_descriptor_pool;

/* One file: proto is decoded (owned by the pool); bytes is its
 * serialization as it was embedded (borrowed from the embedded set). */
typedef struct rpc_descriptor_file {
  const char *name; /* "grpc/health/v1/health.proto" */
  const uint8_t *bytes;
  size_t size;
  Google__Protobuf__FileDescriptorProto *proto;
} rpc_descriptor_file;

/* rpc_descriptor_pool_new returns an empty pool, or NULL (no memory). */
rpc_descriptor_pool *rpc_descriptor_pool_new(void);

/* rpc_descriptor_pool_free frees the pool and its decoded files. */
void rpc_descriptor_pool_free(rpc_descriptor_pool *pool);

/* rpc_descriptor_pool_add_set adds every file of a serialized
 * FileDescriptorSet (data is borrowed and must outlive the pool, as
 * embedded arrays do). A file already in the pool is skipped. Returns 0,
 * or -1 if data is not a valid set or memory is exhausted. */
int rpc_descriptor_pool_add_set(rpc_descriptor_pool *pool, const uint8_t *data,
                                size_t size);

/* rpc_descriptor_pool_find_file returns the file called name, or NULL. */
const rpc_descriptor_file *
rpc_descriptor_pool_find_file(const rpc_descriptor_pool *pool,
                              const char *name);

/* rpc_descriptor_pool_find_symbol returns the file that declares a fully
 * qualified symbol (no leading dot): a package-level or nested message,
 * enum, service, a method ("pkg.Service.Method"), a field, an enum value,
 * or an extension. NULL when unknown. */
const rpc_descriptor_file *
rpc_descriptor_pool_find_symbol(const rpc_descriptor_pool *pool,
                                const char *symbol);

/* rpc_descriptor_pool_find_message returns the message type called name
 * (fully qualified; a leading dot is allowed), package-level or nested, or
 * NULL when the pool has no such message. When file is not NULL, *file is
 * set to the declaring file. The descriptor is owned by the pool. */
const Google__Protobuf__DescriptorProto *
rpc_descriptor_pool_find_message(const rpc_descriptor_pool *pool,
                                 const char *name,
                                 const rpc_descriptor_file **file);

/* rpc_descriptor_pool_find_enum is rpc_descriptor_pool_find_message for
 * enum types. */
const Google__Protobuf__EnumDescriptorProto *
rpc_descriptor_pool_find_enum(const rpc_descriptor_pool *pool, const char *name,
                              const rpc_descriptor_file **file);

/* rpc_descriptor_pool_find_extension returns the file declaring the
 * extension number of containing_type (fully qualified, no leading dot),
 * or NULL. */
const rpc_descriptor_file *
rpc_descriptor_pool_find_extension(const rpc_descriptor_pool *pool,
                                   const char *containing_type, int32_t number);

/* rpc_descriptor_pool_extension_numbers stores up to max extension numbers
 * of containing_type in numbers and returns how many there are in all. */
size_t rpc_descriptor_pool_extension_numbers(const rpc_descriptor_pool *pool,
                                             const char *containing_type,
                                             int32_t *numbers, size_t max);

/* rpc_descriptor_pool_file_count and rpc_descriptor_pool_file list the
 * files in the order they were added (dependencies first). */
size_t rpc_descriptor_pool_file_count(const rpc_descriptor_pool *pool);
const rpc_descriptor_file *
rpc_descriptor_pool_file(const rpc_descriptor_pool *pool, size_t index);

#endif
