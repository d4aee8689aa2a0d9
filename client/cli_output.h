/* cli_output.h: answers on stdout: ProtoJSON (indented on a terminal, one
 * line otherwise) and aligned tables for the list-like answers. */
#ifndef JOBHUB_CLIENT_CLI_OUTPUT_H
#define JOBHUB_CLIENT_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/cli_context.h"
#include "rpc/descriptor_pool.h"

/* cli_output_table_wanted tells whether a list-like answer is shown as a
 * table: --table, or a terminal without --json. */
bool cli_output_table_wanted(const cli_context *ctx);

/* cli_output_json writes the message of type serialized in data[0..size)
 * as JSON and a newline on stdout: indented on a terminal, one line
 * otherwise. Returns CLI_EXIT_OK, or CLI_EXIT_FAILURE after printing why
 * (the bytes do not match the type). */
int cli_output_json(const cli_context *ctx, const rpc_descriptor_pool *pool,
                    const char *type, const uint8_t *data, size_t size);

/* A table built cell by cell, row after row; it owns its cells. */
typedef struct cli_table {
  size_t columns;
  char **cells; /* row-major */
  size_t count, cap;
  bool failed; /* a cell could not be allocated */
} cli_table;

/* cli_table_init makes a table whose first row is headers[0..columns). */
void cli_table_init(cli_table *table, const char *const *headers,
                    size_t columns);

/* cli_table_cell appends a printf-formatted cell (rows wrap after
 * table->columns cells). */
void cli_table_cell(cli_table *table, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_table_print writes the table, columns padded to their widest cell,
 * and frees it. Returns CLI_EXIT_OK, or CLI_EXIT_FAILURE when memory ran
 * out while it was built. */
int cli_table_print(cli_table *table);

/* cli_format_time writes a Timestamp (seconds, nanos) as
 * "2025-01-02 15:04:05" UTC into out, or "-" when it is unset (0). */
void cli_format_time(int64_t seconds, char *out, size_t size);

#endif
