/* reflection.c: grpc.reflection.v1.ServerReflection and v1alpha. The two
 * protocols are wire-identical, so the logic is written once on the v1
 * types; a v1alpha call has its messages re-encoded across. */
#include "rpc/reflection.h"

#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.rpc.h"
#include "grpc/reflection/v1alpha/reflection.rpc.h"
#include "rpc/buffer.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest reflection_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse reflection_response;

#define MAX_EXTENSIONS 1024

struct rpc_reflection {
  rpc_server *server;
  const rpc_descriptor_pool *pool;
};

/* Files of one answer: each once, the asked one first. */
typedef struct file_list {
  const rpc_descriptor_file **files;
  size_t count;
  size_t cap;
} file_list;

static int list_add_with_dependencies(file_list *list,
                                      const rpc_descriptor_pool *pool,
                                      const rpc_descriptor_file *file) {
  for (size_t i = 0; i < list->count; i++) {
    if (list->files[i] == file) {
      return 0;
    }
  }
  if (list->count == list->cap) {
    size_t cap = list->cap ? list->cap * 2 : 16;
    const rpc_descriptor_file **grown =
        realloc(list->files, cap * sizeof(*grown));
    if (grown == NULL) {
      return -1;
    }
    list->files = grown;
    list->cap = cap;
  }
  list->files[list->count++] = file;
  for (size_t i = 0; i < file->proto->n_dependency; i++) {
    const rpc_descriptor_file *dependency =
        rpc_descriptor_pool_find_file(pool, file->proto->dependency[i]);
    /* A dependency missing from the pool is the client's to report. */
    if (dependency != NULL &&
        list_add_with_dependencies(list, pool, dependency) != 0) {
      return -1;
    }
  }
  return 0;
}

static void send_error(rpc_call *call, bool alpha,
                       const reflection_request *request, rpc_status_code code,
                       const char *message);
static void send_answer(rpc_call *call, bool alpha,
                        const reflection_request *request,
                        reflection_response *response);

static void answer_files(rpc_call *call, bool alpha,
                         const reflection_request *request,
                         const rpc_descriptor_pool *pool,
                         const rpc_descriptor_file *file, const char *what) {
  if (file == NULL) {
    char message[512];
    snprintf(message, sizeof(message), "%s not found", what);
    send_error(call, alpha, request, RPC_STATUS_NOT_FOUND, message);
    return;
  }
  file_list list = {0};
  if (list_add_with_dependencies(&list, pool, file) != 0) {
    free(list.files);
    send_error(call, alpha, request, RPC_STATUS_RESOURCE_EXHAUSTED,
               "out of memory");
    return;
  }
  ProtobufCBinaryData *blobs = calloc(list.count, sizeof(*blobs));
  if (blobs == NULL) {
    free(list.files);
    send_error(call, alpha, request, RPC_STATUS_RESOURCE_EXHAUSTED,
               "out of memory");
    return;
  }
  for (size_t i = 0; i < list.count; i++) {
    /* The pool's embedded bytes, sent without a copy. */
    blobs[i].data = (uint8_t *)list.files[i]->bytes;
    blobs[i].len = list.files[i]->size;
  }
  Grpc__Reflection__V1__FileDescriptorResponse files =
      GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
  files.n_file_descriptor_proto = list.count;
  files.file_descriptor_proto = blobs;
  reflection_response response =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  response.file_descriptor_response = &files;
  send_answer(call, alpha, request, &response);
  free(blobs);
  free(list.files);
}

static void answer_services(rpc_call *call, bool alpha,
                            const reflection_request *request,
                            const rpc_server *server) {
  size_t count = rpc_server_service_count(server);
  Grpc__Reflection__V1__ServiceResponse *services =
      calloc(count + 1, sizeof(*services));
  Grpc__Reflection__V1__ServiceResponse **pointers =
      calloc(count + 1, sizeof(*pointers));
  if (services == NULL || pointers == NULL) {
    free(services);
    free(pointers);
    send_error(call, alpha, request, RPC_STATUS_RESOURCE_EXHAUSTED,
               "out of memory");
    return;
  }
  for (size_t i = 0; i < count; i++) {
    grpc__reflection__v1__service_response__init(&services[i]);
    services[i].name = (char *)rpc_server_service(server, i)->name;
    pointers[i] = &services[i];
  }
  Grpc__Reflection__V1__ListServiceResponse list =
      GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
  list.n_service = count;
  list.service = pointers;
  reflection_response response =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  response.list_services_response = &list;
  send_answer(call, alpha, request, &response);
  free(pointers);
  free(services);
}

static void answer_extension_numbers(rpc_call *call, bool alpha,
                                     const reflection_request *request,
                                     const rpc_descriptor_pool *pool) {
  const char *type = request->all_extension_numbers_of_type;
  if (type[0] == '.') {
    type++;
  }
  if (rpc_descriptor_pool_find_symbol(pool, type) == NULL) {
    char message[512];
    snprintf(message, sizeof(message), "type %s not found", type);
    send_error(call, alpha, request, RPC_STATUS_NOT_FOUND, message);
    return;
  }
  int32_t numbers[MAX_EXTENSIONS];
  size_t count = rpc_descriptor_pool_extension_numbers(pool, type, numbers,
                                                       MAX_EXTENSIONS);
  Grpc__Reflection__V1__ExtensionNumberResponse answer =
      GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
  answer.base_type_name = (char *)type;
  answer.n_extension_number = count < MAX_EXTENSIONS ? count : MAX_EXTENSIONS;
  answer.extension_number = numbers;
  reflection_response response =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
  response.all_extension_numbers_response = &answer;
  send_answer(call, alpha, request, &response);
}

static void send_error(rpc_call *call, bool alpha,
                       const reflection_request *request, rpc_status_code code,
                       const char *message) {
  Grpc__Reflection__V1__ErrorResponse error =
      GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
  error.error_code = (int32_t)code;
  error.error_message = (char *)message;
  reflection_response response =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  response.error_response = &error;
  send_answer(call, alpha, request, &response);
}

/* Re-encodes message as the type of descriptor. NULL: no memory. */
static ProtobufCMessage *convert(const ProtobufCMessage *message,
                                 const ProtobufCMessageDescriptor *descriptor) {
  rpc_buffer bytes;
  rpc_buffer_init(&bytes);
  size_t size = protobuf_c_message_get_packed_size(message);
  if (rpc_buffer_reserve(&bytes, size + 1) != 0) {
    return NULL;
  }
  protobuf_c_message_pack(message, bytes.data);
  ProtobufCMessage *converted =
      protobuf_c_message_unpack(descriptor, NULL, size, bytes.data);
  rpc_buffer_free(&bytes);
  return converted;
}

/* Completes the envelope every answer shares and sends it in the
 * call's protocol version. */
static void send_answer(rpc_call *call, bool alpha,
                        const reflection_request *request,
                        reflection_response *response) {
  response->valid_host = request->host;
  response->original_request = (reflection_request *)request;
  if (!alpha) {
    (void)grpc_reflection_v1_server_reflection_server_reflection_info_send(
        call, response);
    return;
  }
  ProtobufCMessage *converted = convert(
      &response->base,
      &grpc__reflection__v1alpha__server_reflection_response__descriptor);
  if (converted != NULL) {
    (void)rpc_call_send(call, converted);
    protobuf_c_message_free_unpacked(converted, NULL);
  }
}

static void on_request(rpc_call *call, const ProtobufCMessage *message,
                       void *arg) {
  const rpc_reflection *r = arg;
  bool alpha = message->descriptor !=
               &grpc__reflection__v1__server_reflection_request__descriptor;
  reflection_request *converted = NULL;
  const reflection_request *request = (const reflection_request *)message;
  if (alpha) {
    converted = (reflection_request *)convert(
        message, &grpc__reflection__v1__server_reflection_request__descriptor);
    if (converted == NULL) {
      rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    request = converted;
  }
  char what[600];
  switch (request->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    snprintf(what, sizeof(what), "file %.500s", request->file_by_filename);
    answer_files(
        call, alpha, request, r->pool,
        rpc_descriptor_pool_find_file(r->pool, request->file_by_filename),
        what);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    snprintf(what, sizeof(what), "symbol %.500s",
             request->file_containing_symbol);
    answer_files(call, alpha, request, r->pool,
                 rpc_descriptor_pool_find_symbol(
                     r->pool, request->file_containing_symbol),
                 what);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
    const Grpc__Reflection__V1__ExtensionRequest *extension =
        request->file_containing_extension;
    const char *type = extension->containing_type;
    snprintf(what, sizeof(what), "extension %d of %.500s",
             extension->extension_number, type);
    answer_files(call, alpha, request, r->pool,
                 rpc_descriptor_pool_find_extension(
                     r->pool, type[0] == '.' ? type + 1 : type,
                     extension->extension_number),
                 what);
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
    answer_extension_numbers(call, alpha, request, r->pool);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    answer_services(call, alpha, request, r->server);
    break;
  default:
    send_error(call, alpha, request, RPC_STATUS_INVALID_ARGUMENT,
               "the request names no message_request");
    break;
  }
  if (converted != NULL) {
    protobuf_c_message_free_unpacked(&converted->base, NULL);
  }
}

static void on_half_close(rpc_call *call, void *arg) {
  (void)arg;
  rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

static void on_cancel(rpc_call *call, rpc_status_code reason, void *arg) {
  (void)reason;
  (void)arg;
  rpc_call_finish(call, RPC_STATUS_CANCELLED, NULL);
}

static const rpc_call_hooks stream_hooks = {
    .on_message = on_request,
    .on_half_close = on_half_close,
    .on_cancel = on_cancel,
};

static void server_reflection_info(rpc_call *call, void *user) {
  rpc_call_set_hooks(call, &stream_hooks, user);
}

static const grpc_reflection_v1_server_reflection_handlers v1_handlers = {
    .server_reflection_info = server_reflection_info,
};
static const grpc_reflection_v1alpha_server_reflection_handlers
    v1alpha_handlers = {
        .server_reflection_info = server_reflection_info,
};

rpc_reflection *rpc_reflection_add(rpc_server *server,
                                   const rpc_descriptor_pool *pool) {
  rpc_reflection *state = malloc(sizeof(*state));
  if (state == NULL) {
    return NULL;
  }
  *state = (rpc_reflection){server, pool};
  if (grpc_reflection_v1_server_reflection_add_to_server(server, &v1_handlers,
                                                         state) != 0 ||
      grpc_reflection_v1alpha_server_reflection_add_to_server(
          server, &v1alpha_handlers, state) != 0) {
    free(state);
    return NULL;
  }
  return state;
}

void rpc_reflection_free(rpc_reflection *reflection) { free(reflection); }
