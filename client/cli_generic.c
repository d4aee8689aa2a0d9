/* cli_generic.c: jobhub health, and the grpcurl-like commands that work
 * against any gRPC server with reflection: list, describe, call. */
#include <stdlib.h>
#include <string.h>

#include "client/cli_commands.h"
#include "client/cli_input.h"
#include "client/cli_output.h"
#include "client/cli_reflection.h"
#include "client/cli_request.h"
#include "client/cli_schema.h"
#include "grpc/health/v1/health.rpc.h"

static int run_health(cli_context *ctx, const cli_args *args) {
  json_t *request = json_object();
  if (args->n_positional > 0) {
    json_object_set_new(request, "service", json_string(args->positional[0]));
  }
  cli_method method = cli_method_of(grpc_health_v1_health_check_method);
  rpc_buffer response;
  int exit_code = cli_request_call(ctx, &method, request, &response);
  json_decref(request);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  exit_code = cli_output_json(ctx, cli_jobhub_pool(ctx), method.output_type,
                              response.data, response.len);
  Grpc__Health__V1__HealthCheckResponse *health =
      grpc__health__v1__health_check_response__unpack(NULL, response.len,
                                                      response.data);
  rpc_buffer_free(&response);
  if (health == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode the Check answer");
  }
  if (exit_code == CLI_EXIT_OK &&
      health->status !=
          GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
    exit_code = CLI_EXIT_NOT_SERVING;
  }
  grpc__health__v1__health_check_response__free_unpacked(health, NULL);
  return exit_code;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The services of the server, sorted, in *sorted (the caller frees the
 * array; the names belong to r). */
static int sorted_services(cli_reflection *r, const char ***sorted,
                           size_t *count) {
  const char *const *names;
  int exit_code = cli_reflection_list_services(r, &names, count);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  *sorted = malloc((*count ? *count : 1) * sizeof(**sorted));
  if (*sorted == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  memcpy(*sorted, names, *count * sizeof(**sorted));
  qsort(*sorted, *count, sizeof(**sorted), compare_names);
  return CLI_EXIT_OK;
}

/* Loads service through r and returns it, or NULL after printing why. */
static const Google__Protobuf__ServiceDescriptorProto *
load_service(cli_reflection *r, const char *name, int *exit_code) {
  *exit_code = cli_reflection_load_symbol(r, name);
  if (*exit_code != CLI_EXIT_OK) {
    return NULL;
  }
  const Google__Protobuf__ServiceDescriptorProto *service =
      cli_schema_find_service(cli_reflection_pool(r), name);
  if (service == NULL) {
    *exit_code = cli_fail(CLI_EXIT_USAGE, "%s is not a service", name);
  }
  return service;
}

static int run_list(cli_context *ctx, const cli_args *args) {
  cli_reflection *r = cli_reflection_new(ctx);
  if (r == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  int exit_code;
  if (args->n_positional == 0) {
    const char **names = NULL;
    size_t count = 0;
    exit_code = sorted_services(r, &names, &count);
    for (size_t i = 0; exit_code == CLI_EXIT_OK && i < count; i++) {
      printf("%s\n", names[i]);
    }
    free(names);
  } else {
    const char *name = args->positional[0];
    const Google__Protobuf__ServiceDescriptorProto *service =
        load_service(r, name, &exit_code);
    for (size_t i = 0; service != NULL && i < service->n_method; i++) {
      printf("%s.%s\n", name, service->method[i]->name);
    }
  }
  cli_reflection_free(r);
  return exit_code;
}

static int describe_one(cli_reflection *r, const char *symbol) {
  int exit_code = cli_reflection_load_symbol(r, symbol);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  if (cli_schema_describe(cli_reflection_pool(r), symbol, stdout) != 0) {
    return cli_fail(CLI_EXIT_STATUS_BASE + RPC_STATUS_NOT_FOUND,
                    "NOT_FOUND: %s is not declared", symbol);
  }
  return CLI_EXIT_OK;
}

static int run_describe(cli_context *ctx, const cli_args *args) {
  cli_reflection *r = cli_reflection_new(ctx);
  if (r == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  int exit_code = CLI_EXIT_OK;
  if (args->n_positional > 0) {
    exit_code = describe_one(r, args->positional[0]);
  } else {
    const char **names = NULL;
    size_t count = 0;
    exit_code = sorted_services(r, &names, &count);
    for (size_t i = 0; exit_code == CLI_EXIT_OK && i < count; i++) {
      exit_code = describe_one(r, names[i]);
    }
    free(names);
  }
  fflush(stdout);
  cli_reflection_free(r);
  return exit_code;
}

/* Splits "pkg.Service/Method", "/pkg.Service/Method" or
 * "pkg.Service.Method" into service and method. */
static int split_method(const char *text, char *service, size_t size,
                        const char **method) {
  if (text[0] == '/') {
    text++;
  }
  const char *cut = strrchr(text, '/');
  if (cut == NULL) {
    cut = strrchr(text, '.');
  }
  if (cut == NULL || cut == text || cut[1] == '\0' ||
      (size_t)(cut - text) >= size) {
    return cli_fail(CLI_EXIT_USAGE,
                    "\"%s\": expected SERVICE/METHOD, e.g. "
                    "jobhub.v1.Jobs/Get",
                    text);
  }
  snprintf(service, size, "%.*s", (int)(cut - text), text);
  *method = cut + 1;
  return CLI_EXIT_OK;
}

/* Transcodes each JSON value of text and sends it; a method that takes
 * one request must get exactly one. */
static int send_requests(rpc_stream *stream, const rpc_descriptor_pool *pool,
                         const cli_method *method, const rpc_buffer *text) {
  size_t offset = 0, start, end, sent = 0;
  char err[512];
  int rv = 0;
  while ((rv = cli_input_next_json((const char *)text->data, text->len, &offset,
                                   &start, &end, err, sizeof(err))) == 1) {
    if (!method->client_streaming && sent == 1) {
      return cli_fail(CLI_EXIT_USAGE,
                      "%s takes one request; more JSON follows it",
                      method->path);
    }
    rpc_buffer bytes;
    int exit_code =
        cli_to_wire(pool, method->input_type, (const char *)text->data + start,
                    end - start, &bytes);
    if (exit_code != CLI_EXIT_OK) {
      return exit_code;
    }
    (void)rpc_stream_send_packed(stream, bytes.data, bytes.len);
    rpc_buffer_free(&bytes);
    sent++;
  }
  if (rv < 0) {
    return cli_fail(CLI_EXIT_USAGE, "request %zu: %s", sent + 1, err);
  }
  if (!method->client_streaming && sent == 0) {
    return cli_fail(CLI_EXIT_USAGE, "%s takes one request; none was given",
                    method->path);
  }
  return CLI_EXIT_OK;
}

static int run_call(cli_context *ctx, const cli_args *args) {
  char service_name[512];
  const char *method_name = NULL;
  int exit_code = split_method(args->positional[0], service_name,
                               sizeof(service_name), &method_name);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  cli_reflection *r = cli_reflection_new(ctx);
  if (r == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  rpc_buffer text;
  rpc_buffer_init(&text);
  rpc_stream *stream = NULL;
  const Google__Protobuf__ServiceDescriptorProto *service =
      load_service(r, service_name, &exit_code);
  if (service == NULL) {
    goto out;
  }
  const Google__Protobuf__MethodDescriptorProto *m =
      cli_schema_find_method(service, method_name);
  if (m == NULL) {
    exit_code = cli_fail(CLI_EXIT_USAGE, "%s has no method %s", service_name,
                         method_name);
    goto out;
  }
  char path[1024];
  snprintf(path, sizeof(path), "/%s/%s", service_name, method_name);
  cli_method method = {
      .path = path,
      .input_type = m->input_type[0] == '.' ? m->input_type + 1 : m->input_type,
      .output_type =
          m->output_type[0] == '.' ? m->output_type + 1 : m->output_type,
      .client_streaming = m->client_streaming,
      .server_streaming = m->server_streaming,
  };
  const rpc_descriptor_pool *pool = cli_reflection_pool(r);
  char err[512];
  if (args->n_positional > 1) {
    if (cli_input_read(args->positional[1], &text, err, sizeof(err)) != 0) {
      exit_code = cli_fail(CLI_EXIT_FAILURE, "%s", err);
      goto out;
    }
  } else if (!method.client_streaming &&
             rpc_buffer_append(&text, "{}", 2) != 0) {
    exit_code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
    goto out;
  }
  /* Streams the server keeps open get no deadline unless asked for. */
  stream = cli_open(ctx, &method,
                    method.server_streaming ? 0 : CLI_DEFAULT_TIMEOUT_SECONDS,
                    &exit_code);
  if (stream == NULL) {
    goto out;
  }
  exit_code = send_requests(stream, pool, &method, &text);
  if (exit_code != CLI_EXIT_OK) {
    goto out;
  }
  (void)rpc_stream_close_send(stream);
  rpc_buffer message;
  rpc_buffer_init(&message);
  int rv = 0;
  while (exit_code == CLI_EXIT_OK &&
         (rv = rpc_stream_recv_packed(stream, &message)) == 1) {
    exit_code = cli_output_json(ctx, pool, method.output_type, message.data,
                                message.len);
  }
  rpc_buffer_free(&message);
  if (exit_code == CLI_EXIT_OK) {
    exit_code = rv < 0 ? cli_fail(CLI_EXIT_FAILURE, "the event loop failed")
                       : cli_status_exit(rpc_stream_status(stream));
  }
out:
  rpc_stream_free(stream);
  rpc_buffer_free(&text);
  cli_reflection_free(r);
  return exit_code;
}

static const cli_command generic_commands[] = {
    {"health", "[SERVICE]", "check the server's health (grpc.health.v1)",
     "Prints the answer; exits 5 unless it is SERVING.", "", 0, 1, run_health},
    {"list", "[SERVICE]",
     "list the services of any server with reflection, or a service's "
     "methods",
     NULL, "", 0, 1, run_list},
    {"describe", "[SYMBOL]",
     "show a service, method, message or enum in .proto syntax (all "
     "services without SYMBOL)",
     NULL, "", 0, 1, run_describe},
    {"call", "SERVICE/METHOD [REQUEST]",
     "call any method of any server with reflection, JSON in and out",
     "REQUEST is JSON, @FILE or - (stdin): one object for unary and server "
     "streaming methods ({} when absent), a sequence of objects "
     "(concatenated or one per line) for client streaming and bidi ones, all "
     "sent before the answers are read. Each answer is printed as it "
     "arrives. Server streaming and bidi calls have no deadline unless "
     "--timeout is given.",
     "", 1, 2, run_call},
};

const cli_group cli_generic_group = {NULL, "generic", generic_commands,
                                     sizeof(generic_commands) /
                                         sizeof(generic_commands[0])};
