/* cli_context.c: the channel, raw calls by path, and errors. */
#include "client/cli_context.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobhub_descriptor_set.h"
#include "rpc/base64.h"
#include "rpc/json.h"
#include "rpc/socket.h"
#include "rpc/tls.h"
#include "rpc_descriptor_set.h"

void cli_context_init(cli_context *ctx) {
  memset(ctx, 0, sizeof(*ctx));
  ctx->stdout_tty = isatty(STDOUT_FILENO) == 1;
  ctx->stderr_tty = isatty(STDERR_FILENO) == 1;
  rpc_metadata_init(&ctx->metadata);
}

void cli_context_free(cli_context *ctx) {
  if (ctx->channel != NULL) {
    rpc_channel_free(ctx->channel);
  }
  if (ctx->tls != NULL) {
    SSL_CTX_free(ctx->tls);
  }
  if (ctx->jobhub_pool != NULL) {
    rpc_descriptor_pool_free(ctx->jobhub_pool);
  }
  rpc_metadata_free(&ctx->metadata);
}

int cli_fail(int exit_code, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fputs("jobhub: ", stderr);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  return exit_code;
}

int cli_status_exit(const rpc_status *status) {
  if (status->code == RPC_STATUS_OK) {
    return CLI_EXIT_OK;
  }
  int code = (int)status->code <= RPC_STATUS_CODE_MAX ? (int)status->code
                                                      : RPC_STATUS_UNKNOWN;
  return cli_fail(CLI_EXIT_STATUS_BASE + code, "%s: %s",
                  rpc_status_code_name(code),
                  status->message != NULL ? status->message : "");
}

const rpc_descriptor_pool *cli_jobhub_pool(cli_context *ctx) {
  if (ctx->jobhub_pool != NULL) {
    return ctx->jobhub_pool;
  }
  rpc_descriptor_pool *pool = rpc_descriptor_pool_new();
  if (pool == NULL ||
      rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                  rpc_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0) {
    rpc_descriptor_pool_free(pool);
    cli_fail(CLI_EXIT_FAILURE, "cannot load the embedded descriptor sets");
    return NULL;
  }
  ctx->jobhub_pool = pool;
  return pool;
}

cli_method cli_method_of(const rpc_method *method) {
  return (cli_method){
      .path = method->path,
      .input_type = method->input->name,
      .output_type = method->output->name,
      .client_streaming = method->shape == RPC_SHAPE_CLIENT_STREAMING ||
                          method->shape == RPC_SHAPE_BIDI_STREAMING,
      .server_streaming = method->shape == RPC_SHAPE_SERVER_STREAMING ||
                          method->shape == RPC_SHAPE_BIDI_STREAMING,
  };
}

/* Adds "-H key: value" (value trimmed; base64 for -bin keys). */
static int add_header(rpc_metadata *md, const char *header) {
  const char *colon = strchr(header, ':');
  if (colon == NULL || colon == header) {
    return cli_fail(CLI_EXIT_USAGE, "-H \"%s\": expected \"key: value\"",
                    header);
  }
  size_t key_len = (size_t)(colon - header);
  while (key_len > 0 && isspace((unsigned char)header[key_len - 1])) {
    key_len--;
  }
  const char *value = colon + 1;
  while (isspace((unsigned char)*value)) {
    value++;
  }
  size_t value_len = strlen(value);
  while (value_len > 0 && isspace((unsigned char)value[value_len - 1])) {
    value_len--;
  }
  if (!rpc_metadata_key_is_valid(header, key_len) ||
      rpc_metadata_key_is_reserved(header, key_len) ||
      (!rpc_metadata_key_is_binary(header, key_len) &&
       !rpc_metadata_value_is_valid((const uint8_t *)value, value_len)) ||
      rpc_metadata_add_wire(md, header, key_len, value, value_len) != 0) {
    return cli_fail(CLI_EXIT_USAGE,
                    "-H \"%s\": not a valid custom metadata entry (lower-case "
                    "key of 0-9 a-z _ - .; printable value, base64 for "
                    "-bin keys)",
                    header);
  }
  return CLI_EXIT_OK;
}

/* Adds "authorization: Bearer TOKEN" for --token, or "Basic
 * base64(user:password)" (RFC 7617) for --basic. */
static int add_authorization(rpc_metadata *md, const cli_global *g) {
  if (g->token != NULL && g->basic != NULL) {
    return cli_fail(CLI_EXIT_USAGE, "--token and --basic exclude each other");
  }
  if (g->token == NULL && g->basic == NULL) {
    return CLI_EXIT_OK;
  }
  if (g->basic != NULL && strchr(g->basic, ':') == NULL) {
    return cli_fail(CLI_EXIT_USAGE, "--basic needs USER:PASSWORD");
  }
  rpc_buffer value;
  rpc_buffer_init(&value);
  int rv = 0;
  if (g->token != NULL) {
    if (rpc_buffer_append(&value, "Bearer ", 7) != 0 ||
        rpc_buffer_append(&value, g->token, strlen(g->token)) != 0) {
      rv = -1;
    }
  } else if (rpc_buffer_append(&value, "Basic ", 6) != 0 ||
             rpc_base64_encode((const uint8_t *)g->basic, strlen(g->basic),
                               &value) != 0) {
    rv = -1;
  }
  if (rv == 0 && !rpc_metadata_value_is_valid(value.data, value.len)) {
    rpc_buffer_free(&value);
    return cli_fail(CLI_EXIT_USAGE,
                    "the credentials are not a valid header value");
  }
  if (rv == 0) {
    rv = rpc_metadata_add(md, "authorization", 13, value.data, value.len);
  }
  rpc_buffer_free(&value);
  return rv == 0 ? CLI_EXIT_OK : cli_fail(CLI_EXIT_FAILURE, "out of memory");
}

/* Makes the channel and the request metadata from the global options. */
static int connect_channel(cli_context *ctx) {
  if (ctx->channel != NULL) {
    return CLI_EXIT_OK;
  }
  const cli_global *g = &ctx->global;
  for (size_t i = 0; i < g->headers.count; i++) {
    int rv = add_header(&ctx->metadata, g->headers.items[i]);
    if (rv != CLI_EXIT_OK) {
      return rv;
    }
  }
  int rv = add_authorization(&ctx->metadata, g);
  if (rv != CLI_EXIT_OK) {
    return rv;
  }
  if ((g->cert == NULL) != (g->key == NULL)) {
    return cli_fail(CLI_EXIT_USAGE, "--cert and --key go together");
  }
  char err[512];
  if (rpc_socket_check_address(g->address, err, sizeof(err)) != 0) {
    return cli_fail(CLI_EXIT_USAGE, "invalid value for --addr: %s", err);
  }
  if (g->tls || g->cacert != NULL || g->cert != NULL) {
    ctx->tls =
        rpc_tls_client_context(g->cacert, g->cert, g->key, err, sizeof(err));
    if (ctx->tls == NULL) {
      return cli_fail(CLI_EXIT_FAILURE, "TLS: %s", err);
    }
  }
  rpc_channel_options options = {.target = g->address, .tls = ctx->tls};
  ctx->channel = rpc_channel_new(NULL, &options, err, sizeof(err));
  if (ctx->channel == NULL) {
    return cli_fail(CLI_EXIT_USAGE, "--addr %s: %s", g->address, err);
  }
  return CLI_EXIT_OK;
}

rpc_stream *cli_open(cli_context *ctx, cli_method *method,
                     double default_timeout, int *exit_code) {
  *exit_code = connect_channel(ctx);
  if (*exit_code != CLI_EXIT_OK) {
    return NULL;
  }
  double timeout =
      ctx->global.timeout.set ? ctx->global.timeout.value : default_timeout;
  rpc_call_options options = {
      .timeout_ms = timeout > 0 ? (uint64_t)ceil(timeout * 1000.) : 0,
      .metadata = ctx->metadata.count > 0 ? &ctx->metadata : NULL,
  };
  /* The raw form of rpc/client.h: a path alone, bytes both ways. */
  method->raw = (rpc_method){
      .path = method->path,
      .name = method->path,
      .shape = method->client_streaming
                   ? (method->server_streaming ? RPC_SHAPE_BIDI_STREAMING
                                               : RPC_SHAPE_CLIENT_STREAMING)
                   : (method->server_streaming ? RPC_SHAPE_SERVER_STREAMING
                                               : RPC_SHAPE_UNARY),
  };
  rpc_stream *stream =
      rpc_channel_open_stream(ctx->channel, &method->raw, &options);
  if (stream == NULL) {
    *exit_code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
  }
  return stream;
}

int cli_unary(cli_context *ctx, cli_method *method, const uint8_t *request,
              size_t request_size, rpc_buffer *response) {
  rpc_buffer_init(response);
  int exit_code;
  rpc_stream *stream =
      cli_open(ctx, method, CLI_DEFAULT_TIMEOUT_SECONDS, &exit_code);
  if (stream == NULL) {
    return exit_code;
  }
  if (rpc_stream_send_packed(stream, request, request_size) != 0 ||
      rpc_stream_close_send(stream) != 0) {
    rpc_stream_cancel(stream);
  }
  rpc_buffer message;
  rpc_buffer_init(&message);
  bool got = false;
  int rv;
  while ((rv = rpc_stream_recv_packed(stream, &message)) == 1) {
    if (!got) {
      rpc_buffer tmp = *response;
      *response = message;
      message = tmp;
      got = true;
    }
  }
  rpc_buffer_free(&message);
  const rpc_status *status = rpc_stream_status(stream);
  if (rv < 0) {
    exit_code = cli_fail(CLI_EXIT_FAILURE, "the event loop failed");
  } else if (status->code != RPC_STATUS_OK) {
    exit_code = cli_status_exit(status);
  } else if (!got) {
    exit_code = cli_fail(CLI_EXIT_STATUS_BASE + RPC_STATUS_INTERNAL,
                         "INTERNAL: no response message for a unary call");
  } else {
    exit_code = CLI_EXIT_OK;
  }
  rpc_stream_free(stream);
  if (exit_code != CLI_EXIT_OK) {
    rpc_buffer_free(response);
  }
  return exit_code;
}

int cli_to_wire(const rpc_descriptor_pool *pool, const char *type,
                const char *json, size_t len, rpc_buffer *out) {
  rpc_buffer_init(out);
  char err[512];
  if (rpc_json_to_wire(pool, type, json, len, out, err, sizeof(err)) != 0) {
    rpc_buffer_free(out);
    return cli_fail(CLI_EXIT_USAGE, "invalid %s: %s", type, err);
  }
  return CLI_EXIT_OK;
}

int cli_unary_json(cli_context *ctx, const rpc_descriptor_pool *pool,
                   cli_method *method, const char *json, size_t len,
                   rpc_buffer *response) {
  rpc_buffer request;
  rpc_buffer_init(response);
  int exit_code = cli_to_wire(pool, method->input_type, json, len, &request);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  exit_code = cli_unary(ctx, method, request.data, request.len, response);
  rpc_buffer_free(&request);
  return exit_code;
}
