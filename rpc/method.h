/* method.h: the method tables that the code generator emits for every
 * service, and that both the server and the client runtime consume. */
#ifndef JOBHUB_RPC_METHOD_H
#define JOBHUB_RPC_METHOD_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct rpc_call rpc_call;

/* The four call shapes of gRPC. */
typedef enum rpc_call_shape {
  RPC_SHAPE_UNARY = 0,
  RPC_SHAPE_SERVER_STREAMING = 1,
  RPC_SHAPE_CLIENT_STREAMING = 2,
  RPC_SHAPE_BIDI_STREAMING = 3,
} rpc_call_shape;

/* True for shapes whose client sends one message (unary, server stream):
 * the server runtime collects it before it starts the handler. */
#define RPC_SHAPE_HAS_SINGLE_REQUEST(shape)                                    \
  ((shape) == RPC_SHAPE_UNARY || (shape) == RPC_SHAPE_SERVER_STREAMING)

/* rpc_method_dispatch_fn is generated per method: it casts handlers to the
 * service's typed handler table and calls the method's entry with request
 * (the decoded single request, or NULL for client-streaming and bidi
 * methods). Returns false, calling nothing, when the table has no entry for
 * the method; the runtime then ends the call with UNIMPLEMENTED. */
typedef bool (*rpc_method_dispatch_fn)(rpc_call *call,
                                       const ProtobufCMessage *request,
                                       const void *handlers, void *user);

typedef struct rpc_method {
  const char *path; /* ":path" of the call: "/grpc.health.v1.Health/Check" */
  const char *name; /* "Check" */
  rpc_call_shape shape;
  const ProtobufCMessageDescriptor *input;
  const ProtobufCMessageDescriptor *output;
  rpc_method_dispatch_fn dispatch;
} rpc_method;

typedef struct rpc_service_desc {
  const char *name; /* fully qualified: "grpc.health.v1.Health" */
  size_t method_count;
  const rpc_method *methods;
} rpc_service_desc;

#endif
