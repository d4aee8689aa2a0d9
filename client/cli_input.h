/* cli_input.h: request text as the command line gives it: inline JSON,
 * "@file", or "-" for stdin; and a sequence of JSON values (concatenated
 * or one per line) taken apart for streaming calls. */
#ifndef JOBHUB_CLIENT_CLI_INPUT_H
#define JOBHUB_CLIENT_CLI_INPUT_H

#include <stddef.h>

#include "rpc/buffer.h"

/* cli_input_read stores in out (initialized here; the caller frees it)
 * the text arg stands for: the contents of FILE for "@FILE", all of stdin
 * for "-", arg itself otherwise. A NUL follows the text, not counted in
 * out->len. Returns 0, or -1 with a message in err (a file that cannot be
 * read, no memory). */
int cli_input_read(const char *arg, rpc_buffer *out, char *err,
                   size_t err_size);

/* cli_input_next_json finds the next JSON value in text[*offset..len),
 * skipping white space before it: on 1, [*start, *end) is the value and
 * *offset is past it. Returns 1, 0 when only white space is left, or -1
 * with a message in err (the text there is not JSON, with line and
 * column). */
int cli_input_next_json(const char *text, size_t len, size_t *offset,
                        size_t *start, size_t *end, char *err, size_t err_size);

#endif
