/* cli_output.c: JSON through rpc/json; tables padded by display width. */
#include "client/cli_output.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc/json.h"

bool cli_output_table_wanted(const cli_context *ctx) {
  if (ctx->global.table) {
    return true;
  }
  return !ctx->global.json && ctx->stdout_tty;
}

int cli_output_json(const cli_context *ctx, const rpc_descriptor_pool *pool,
                    const char *type, const uint8_t *data, size_t size) {
  rpc_json_options options = {
      .emit_defaults = ctx->global.emit_defaults,
      .indent = ctx->stdout_tty ? 2 : 0,
  };
  rpc_buffer out;
  rpc_buffer_init(&out);
  char err[512];
  if (rpc_json_from_wire(pool, type, data, size, &options, &out, err,
                         sizeof(err)) != 0) {
    rpc_buffer_free(&out);
    return cli_fail(CLI_EXIT_FAILURE, "cannot show the %s answer: %s", type,
                    err);
  }
  fwrite(out.data, 1, out.len, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  rpc_buffer_free(&out);
  return CLI_EXIT_OK;
}

static void add_cell(cli_table *table, char *cell) {
  if (cell == NULL) {
    table->failed = true;
    return;
  }
  if (table->count == table->cap) {
    size_t cap = table->cap ? table->cap * 2 : 64;
    char **grown = realloc(table->cells, cap * sizeof(*grown));
    if (grown == NULL) {
      free(cell);
      table->failed = true;
      return;
    }
    table->cells = grown;
    table->cap = cap;
  }
  table->cells[table->count++] = cell;
}

void cli_table_init(cli_table *table, const char *const *headers,
                    size_t columns) {
  memset(table, 0, sizeof(*table));
  table->columns = columns;
  for (size_t i = 0; i < columns; i++) {
    add_cell(table, strdup(headers[i]));
  }
}

void cli_table_cell(cli_table *table, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char *cell = NULL;
  if (vasprintf(&cell, fmt, args) < 0) {
    cell = NULL;
  }
  va_end(args);
  add_cell(table, cell);
}

/* Characters on screen: UTF-8 continuation bytes take no column. */
static size_t display_width(const char *text) {
  size_t width = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    width += (*p & 0xC0) != 0x80;
  }
  return width;
}

int cli_table_print(cli_table *table) {
  int exit_code = CLI_EXIT_OK;
  size_t *widths = calloc(table->columns ? table->columns : 1, sizeof(*widths));
  if (table->failed || widths == NULL) {
    exit_code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < table->count; i++) {
    size_t width = display_width(table->cells[i]);
    size_t column = i % table->columns;
    if (width > widths[column]) {
      widths[column] = width;
    }
  }
  for (size_t i = 0; i < table->count; i++) {
    size_t column = i % table->columns;
    bool last = column + 1 == table->columns || i + 1 == table->count;
    fputs(table->cells[i], stdout);
    if (last) {
      fputc('\n', stdout);
    } else {
      for (size_t pad = display_width(table->cells[i]);
           pad < widths[column] + 2; pad++) {
        fputc(' ', stdout);
      }
    }
  }
  fflush(stdout);
out:
  free(widths);
  for (size_t i = 0; i < table->count; i++) {
    free(table->cells[i]);
  }
  free(table->cells);
  memset(table, 0, sizeof(*table));
  return exit_code;
}

void cli_format_time(int64_t seconds, char *out, size_t size) {
  if (seconds == 0) {
    snprintf(out, size, "-");
    return;
  }
  time_t t = (time_t)seconds;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL ||
      strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
    snprintf(out, size, "%lld", (long long)seconds);
  }
}
