/* cli_request.c: JSON requests built with jansson, marshalled by rpc/json. */
#include "client/cli_request.h"

#include <stdlib.h>
#include <string.h>

#include "client/cli_input.h"

bool cli_request_is_json(const char *word) {
  return word[0] == '{' || word[0] == '@' || strcmp(word, "-") == 0;
}

json_t *cli_request_new(const char *arg, int *exit_code) {
  *exit_code = CLI_EXIT_OK;
  if (arg == NULL) {
    return json_object();
  }
  rpc_buffer text;
  char err[512];
  if (cli_input_read(arg, &text, err, sizeof(err)) != 0) {
    *exit_code = cli_fail(CLI_EXIT_FAILURE, "%s", err);
    return NULL;
  }
  json_error_t error;
  json_t *request = json_loadb((const char *)text.data, text.len, 0, &error);
  rpc_buffer_free(&text);
  if (request == NULL) {
    *exit_code = cli_fail(CLI_EXIT_USAGE,
                          "the request is not JSON (line %d, column %d): %s",
                          error.line, error.column, error.text);
    return NULL;
  }
  if (!json_is_object(request)) {
    json_decref(request);
    *exit_code = cli_fail(CLI_EXIT_USAGE, "the request must be a JSON object");
    return NULL;
  }
  return request;
}

void cli_request_set(json_t *request, const char *json_name,
                     const char *proto_name, json_t *value) {
  if (proto_name != NULL) {
    json_object_del(request, proto_name);
  }
  json_object_set_new(request, json_name, value);
}

bool cli_request_has(const json_t *request, const char *json_name,
                     const char *proto_name) {
  return json_object_get(request, json_name) != NULL ||
         (proto_name != NULL && json_object_get(request, proto_name) != NULL);
}

int cli_request_bytes(cli_context *ctx, const char *type, const json_t *request,
                      rpc_buffer *out) {
  rpc_buffer_init(out);
  const rpc_descriptor_pool *pool = cli_jobhub_pool(ctx);
  if (pool == NULL) {
    return CLI_EXIT_FAILURE;
  }
  char *text = json_dumps(request, JSON_COMPACT);
  if (text == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  int exit_code = cli_to_wire(pool, type, text, strlen(text), out);
  free(text);
  return exit_code;
}

int cli_request_call(cli_context *ctx, cli_method *method,
                     const json_t *request, rpc_buffer *response) {
  rpc_buffer bytes;
  rpc_buffer_init(response);
  int exit_code = cli_request_bytes(ctx, method->input_type, request, &bytes);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  exit_code = cli_unary(ctx, method, bytes.data, bytes.len, response);
  rpc_buffer_free(&bytes);
  return exit_code;
}
