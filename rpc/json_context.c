/* json_context.c: a transcoding's errors, with the JSON path where they
 * happened ("config.moduleParams"), and its nesting depth. */
#include "rpc/json_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Records the first error, prefixed with the current path. Returns -1. */
int rpc_json_fail(context *ctx, const char *format, ...) {
  if (ctx->failed) {
    return -1;
  }
  ctx->failed = true;
  if (ctx->err == NULL || ctx->err_size == 0) {
    return -1;
  }
  int used = 0;
  if (ctx->path_len > 0) {
    used = snprintf(ctx->err, ctx->err_size, "%s: ", ctx->path);
  }
  if (used < 0) {
    used = 0;
    ctx->err[0] = '\0';
  }
  if ((size_t)used < ctx->err_size) {
    va_list args;
    va_start(args, format);
    vsnprintf(ctx->err + used, ctx->err_size - (size_t)used, format, args);
    va_end(args);
  }
  return -1;
}

int rpc_json_fail_no_memory(context *ctx) {
  return rpc_json_fail(ctx, "out of memory");
}

/* Appends ".key" (or "key" at the root); returns the length to restore. */
size_t rpc_json_push_key(context *ctx, const char *key, size_t len) {
  size_t saved = ctx->path_len;
  size_t at = ctx->path_len;
  if (at > 0 && at < PATH_CAP - 1) {
    ctx->path[at++] = '.';
  }
  for (size_t i = 0; i < len && at < PATH_CAP - 1; i++) {
    unsigned char c = (unsigned char)key[i];
    ctx->path[at++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
  }
  ctx->path[at] = '\0';
  ctx->path_len = at;
  return saved;
}

size_t rpc_json_push_index(context *ctx, size_t index) {
  size_t saved = ctx->path_len;
  int used = snprintf(ctx->path + ctx->path_len, PATH_CAP - ctx->path_len,
                      "[%zu]", index);
  if (used > 0) {
    ctx->path_len += (size_t)used;
    if (ctx->path_len > PATH_CAP - 1) {
      ctx->path_len = PATH_CAP - 1;
    }
  }
  return saved;
}

void rpc_json_pop_path(context *ctx, size_t saved) {
  ctx->path_len = saved;
  ctx->path[saved] = '\0';
}

int rpc_json_enter(context *ctx) {
  if (++ctx->depth > RPC_JSON_MAX_DEPTH) {
    return rpc_json_fail(ctx, "nested deeper than %d levels",
                         RPC_JSON_MAX_DEPTH);
  }
  return 0;
}

void rpc_json_leave(context *ctx) { ctx->depth--; }

void rpc_json_init_context(context *ctx, const rpc_descriptor_pool *pool,
                           rpc_buffer *out, char *err, size_t err_size) {
  memset(ctx, 0, sizeof(*ctx));
  ctx->pool = pool;
  ctx->out = out;
  ctx->err = err;
  ctx->err_size = err_size;
  if (err != NULL && err_size > 0) {
    err[0] = '\0';
  }
}
