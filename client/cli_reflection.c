/* cli_reflection.c: one ServerReflectionInfo stream, one request and one
 * answer at a time. v1 and v1alpha are wire-identical, so the v1 types
 * serve both; only the path differs. */
#include "client/cli_reflection.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest reflection_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse reflection_response;

#define V1_PATH "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
#define V1ALPHA_PATH                                                           \
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
#define REQUEST_INIT GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT
#define REQUEST_CASE(name)                                                     \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##name
#define RESPONSE_CASE(name)                                                    \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##name
/* A descriptor dependency chain longer than this is not a real schema. */
#define MAX_ROUNDS 256

/* One fetched file as a one-file FileDescriptorSet (field 1, length
 * delimited), the form rpc_descriptor_pool_add_set borrows. */
typedef struct fetched_set {
  uint8_t *data;
  size_t size;
} fetched_set;

struct cli_reflection {
  cli_context *ctx;
  cli_method method;
  rpc_stream *stream;
  bool alpha;    /* the server has only v1alpha */
  bool answered; /* the stream has answered once: the version is settled */
  rpc_descriptor_pool *pool;
  fetched_set *sets;
  size_t n_sets, cap_sets;
  char **services;
  size_t n_services;
};

cli_reflection *cli_reflection_new(cli_context *ctx) {
  cli_reflection *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    return NULL;
  }
  r->ctx = ctx;
  r->pool = rpc_descriptor_pool_new();
  if (r->pool == NULL) {
    free(r);
    return NULL;
  }
  return r;
}

void cli_reflection_free(cli_reflection *r) {
  if (r == NULL) {
    return;
  }
  if (r->stream != NULL) {
    (void)rpc_stream_close_send(r->stream);
    rpc_stream_free(r->stream);
  }
  rpc_descriptor_pool_free(r->pool); /* before the bytes it borrows */
  for (size_t i = 0; i < r->n_sets; i++) {
    free(r->sets[i].data);
  }
  free(r->sets);
  for (size_t i = 0; i < r->n_services; i++) {
    free(r->services[i]);
  }
  free(r->services);
  free(r);
}

const rpc_descriptor_pool *cli_reflection_pool(const cli_reflection *r) {
  return r->pool;
}

static int open_stream(cli_reflection *r) {
  r->method = (cli_method){
      .path = r->alpha ? V1ALPHA_PATH : V1_PATH,
      .client_streaming = true,
      .server_streaming = true,
  };
  int exit_code;
  r->stream = cli_open(r->ctx, &r->method, 0, &exit_code);
  return r->stream != NULL ? CLI_EXIT_OK : exit_code;
}

/* Sends request and waits for its answer (*response: the caller frees it
 * with grpc__reflection__v1__server_reflection_response__free_unpacked).
 * On the first exchange, an UNIMPLEMENTED v1 falls back to v1alpha.
 * Returns an exit code, having printed any error. */
static int exchange(cli_reflection *r, const reflection_request *request,
                    reflection_response **response) {
  *response = NULL;
  size_t size =
      grpc__reflection__v1__server_reflection_request__get_packed_size(request);
  uint8_t *packed = malloc(size > 0 ? size : 1);
  if (packed == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  grpc__reflection__v1__server_reflection_request__pack(request, packed);
  rpc_buffer answer;
  rpc_buffer_init(&answer);
  int exit_code = CLI_EXIT_OK;
  for (;;) {
    if (r->stream == NULL && (exit_code = open_stream(r)) != CLI_EXIT_OK) {
      break;
    }
    (void)rpc_stream_send_packed(r->stream, packed, size);
    int rv = rpc_stream_recv_packed(r->stream, &answer);
    if (rv == 1) {
      r->answered = true;
      *response = grpc__reflection__v1__server_reflection_response__unpack(
          NULL, answer.len, answer.data);
      if (*response == NULL) {
        exit_code = cli_fail(CLI_EXIT_FAILURE,
                             "cannot decode a server reflection answer");
      }
      break;
    }
    const rpc_status *status = rpc_stream_status(r->stream);
    if (rv == 0 && !r->answered && !r->alpha &&
        status->code == RPC_STATUS_UNIMPLEMENTED) {
      rpc_stream_free(r->stream);
      r->stream = NULL;
      r->alpha = true;
      continue;
    }
    if (rv < 0) {
      exit_code = cli_fail(CLI_EXIT_FAILURE, "the event loop failed");
    } else if (status->code == RPC_STATUS_OK) {
      exit_code = cli_fail(CLI_EXIT_STATUS_BASE + RPC_STATUS_UNKNOWN,
                           "UNKNOWN: the reflection stream ended early");
    } else {
      exit_code = cli_status_exit(status);
    }
    rpc_stream_free(r->stream);
    r->stream = NULL;
    break;
  }
  rpc_buffer_free(&answer);
  free(packed);
  return exit_code;
}

/* Prints the server's error answer; returns its exit code. */
static int answer_error(const reflection_response *response, const char *what) {
  const Grpc__Reflection__V1__ErrorResponse *error = response->error_response;
  int code = error->error_code > 0 && error->error_code <= RPC_STATUS_CODE_MAX
                 ? error->error_code
                 : RPC_STATUS_UNKNOWN;
  return cli_fail(
      CLI_EXIT_STATUS_BASE + code, "%s: %s", rpc_status_code_name(code),
      error->error_message[0] != '\0' ? error->error_message : what);
}

int cli_reflection_list_services(cli_reflection *r, const char *const **names,
                                 size_t *count) {
  reflection_request request = REQUEST_INIT;
  request.message_request_case = REQUEST_CASE(LIST_SERVICES);
  char any[] = "*";
  request.list_services = any;
  reflection_response *response;
  int exit_code = exchange(r, &request, &response);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  if (response->message_response_case == RESPONSE_CASE(ERROR_RESPONSE)) {
    exit_code = answer_error(response, "list_services");
  } else if (response->message_response_case !=
             RESPONSE_CASE(LIST_SERVICES_RESPONSE)) {
    exit_code = cli_fail(CLI_EXIT_FAILURE,
                         "the server answered list_services with something "
                         "else");
  } else {
    const Grpc__Reflection__V1__ListServiceResponse *list =
        response->list_services_response;
    r->services =
        calloc(list->n_service ? list->n_service : 1, sizeof(*r->services));
    if (r->services == NULL) {
      exit_code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
    }
    for (size_t i = 0; exit_code == CLI_EXIT_OK && i < list->n_service; i++) {
      r->services[i] = strdup(list->service[i]->name);
      if (r->services[i] == NULL) {
        exit_code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
      } else {
        r->n_services++;
      }
    }
  }
  grpc__reflection__v1__server_reflection_response__free_unpacked(response,
                                                                  NULL);
  *names = (const char *const *)r->services;
  *count = r->n_services;
  return exit_code;
}

/* Adds one serialized FileDescriptorProto to the pool (skipped by the pool
 * when it has the file already). */
static int add_file(cli_reflection *r, const uint8_t *bytes, size_t len) {
  if (r->n_sets == r->cap_sets) {
    size_t cap = r->cap_sets ? r->cap_sets * 2 : 16;
    fetched_set *grown = realloc(r->sets, cap * sizeof(*grown));
    if (grown == NULL) {
      return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    }
    r->sets = grown;
    r->cap_sets = cap;
  }
  uint8_t *data = malloc(len + 11);
  if (data == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  size_t at = 0;
  data[at++] = 0x0A; /* FileDescriptorSet.file = 1, length-delimited */
  uint64_t rest = len;
  do {
    uint8_t byte = (uint8_t)(rest & 0x7F);
    rest >>= 7;
    data[at++] = rest != 0 ? (uint8_t)(byte | 0x80) : byte;
  } while (rest != 0);
  memcpy(data + at, bytes, len);
  r->sets[r->n_sets++] = (fetched_set){data, at + len};
  if (rpc_descriptor_pool_add_set(r->pool, data, at + len) != 0) {
    return cli_fail(CLI_EXIT_FAILURE,
                    "the server sent a file descriptor that does not parse");
  }
  return CLI_EXIT_OK;
}

/* One file_containing_symbol or file_by_filename exchange; the files of
 * the answer go into the pool. */
static int fetch(cli_reflection *r, bool by_symbol, const char *name) {
  reflection_request request = REQUEST_INIT;
  char *text = strdup(name);
  if (text == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  if (by_symbol) {
    request.message_request_case = REQUEST_CASE(FILE_CONTAINING_SYMBOL);
    request.file_containing_symbol = text;
  } else {
    request.message_request_case = REQUEST_CASE(FILE_BY_FILENAME);
    request.file_by_filename = text;
  }
  reflection_response *response;
  int exit_code = exchange(r, &request, &response);
  free(text);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  if (response->message_response_case == RESPONSE_CASE(ERROR_RESPONSE)) {
    char what[512];
    snprintf(what, sizeof(what), "%s %s", by_symbol ? "symbol" : "file", name);
    exit_code = answer_error(response, what);
  } else if (response->message_response_case !=
             RESPONSE_CASE(FILE_DESCRIPTOR_RESPONSE)) {
    exit_code = cli_fail(CLI_EXIT_FAILURE,
                         "the server answered a file request with something "
                         "else");
  } else {
    const Grpc__Reflection__V1__FileDescriptorResponse *files =
        response->file_descriptor_response;
    for (size_t i = 0;
         exit_code == CLI_EXIT_OK && i < files->n_file_descriptor_proto; i++) {
      exit_code = add_file(r, files->file_descriptor_proto[i].data,
                           files->file_descriptor_proto[i].len);
    }
  }
  grpc__reflection__v1__server_reflection_response__free_unpacked(response,
                                                                  NULL);
  return exit_code;
}

/* The first dependency of a pool file that the pool lacks, or NULL. */
static const char *missing_dependency(const rpc_descriptor_pool *pool) {
  for (size_t i = 0; i < rpc_descriptor_pool_file_count(pool); i++) {
    const rpc_descriptor_file *file = rpc_descriptor_pool_file(pool, i);
    for (size_t j = 0; j < file->proto->n_dependency; j++) {
      if (rpc_descriptor_pool_find_file(pool, file->proto->dependency[j]) ==
          NULL) {
        return file->proto->dependency[j];
      }
    }
  }
  return NULL;
}

int cli_reflection_load_symbol(cli_reflection *r, const char *symbol) {
  if (symbol[0] == '.') {
    symbol++;
  }
  if (rpc_descriptor_pool_find_symbol(r->pool, symbol) == NULL) {
    int exit_code = fetch(r, true, symbol);
    if (exit_code != CLI_EXIT_OK) {
      return exit_code;
    }
  }
  /* Servers may leave out files they sent before on the same stream, or
   * send only the file itself: ask for what is still missing by name. */
  const char *missing;
  for (int round = 0;
       round < MAX_ROUNDS && (missing = missing_dependency(r->pool)) != NULL;
       round++) {
    char name[1024];
    snprintf(name, sizeof(name), "%s", missing);
    int exit_code = fetch(r, false, name);
    if (exit_code != CLI_EXIT_OK) {
      return exit_code;
    }
    if (rpc_descriptor_pool_find_file(r->pool, name) == NULL) {
      return cli_fail(CLI_EXIT_FAILURE,
                      "the server did not send %s, needed by %s", name, symbol);
    }
  }
  if (rpc_descriptor_pool_find_symbol(r->pool, symbol) == NULL) {
    return cli_fail(CLI_EXIT_STATUS_BASE + RPC_STATUS_NOT_FOUND,
                    "NOT_FOUND: the server's descriptors do not declare %s",
                    symbol);
  }
  return CLI_EXIT_OK;
}
