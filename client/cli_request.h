/* cli_request.h: requests of the jobhub subcommands as JSON objects: a
 * base from the command line (inline JSON, @file or -) with the flags set
 * on top, transcoded by rpc/json against the embedded descriptors. */
#ifndef JOBHUB_CLIENT_CLI_REQUEST_H
#define JOBHUB_CLIENT_CLI_REQUEST_H

#include <stdbool.h>

#include <jansson.h>

#include "client/cli_context.h"

/* cli_request_is_json tells whether a positional word is a request
 * (starts with '{', '@', or is "-") rather than a plain value such as an
 * id. */
bool cli_request_is_json(const char *word);

/* cli_request_new returns the base request: the JSON object that arg
 * stands for, or {} when arg is NULL. Returns NULL after printing why
 * (*exit_code: CLI_EXIT_USAGE for text that is not a JSON object,
 * CLI_EXIT_FAILURE for I/O). The caller owns the object (json_decref). */
json_t *cli_request_new(const char *arg, int *exit_code);

/* cli_request_set sets field json_name (the lowerCamelCase JSON name) to
 * value (stolen), dropping the field's other spelling proto_name if the
 * base had it. */
void cli_request_set(json_t *request, const char *json_name,
                     const char *proto_name, json_t *value);

/* cli_request_has tells whether request has the field under either
 * name. */
bool cli_request_has(const json_t *request, const char *json_name,
                     const char *proto_name);

/* cli_request_call transcodes request as method->input_type and makes the
 * unary call; response receives the answer's bytes (initialized here; the
 * caller frees it). Returns an exit code, having printed any error. */
int cli_request_call(cli_context *ctx, cli_method *method,
                     const json_t *request, rpc_buffer *response);

/* cli_request_bytes transcodes request into out (initialized here).
 * Returns an exit code, having printed any error. */
int cli_request_bytes(cli_context *ctx, const char *type, const json_t *request,
                      rpc_buffer *out);

#endif
