/* cli_commands.h: the subcommands of jobhub. Each group (jobs, workers,
 * the generic ones) is a table of commands; every command-specific flag
 * lives in one table (cli_flag_options) and lands in one struct
 * (cli_args), each command naming the flags it takes (the table is in
 * main.c). */
#ifndef JOBHUB_CLIENT_CLI_COMMANDS_H
#define JOBHUB_CLIENT_CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "client/cli_context.h"
#include "client/cli_options.h"

#define CLI_MAX_POSITIONAL 64

/* The words and flags after a command's name. */
typedef struct cli_args {
  const char *positional[CLI_MAX_POSITIONAL];
  size_t n_positional;
  cli_uint pool;
  cli_uint job_type;
  const char *state;
  const char *subject;
  cli_uint page_size;
  const char *page_token;
  bool wait;
  const char *module;
  const char *params;  /* JSON object: config.moduleParams */
  const char *payload; /* text, sent as the bytes of payload */
  const char *priority;
  cli_list meta; /* "key=value" */
  const char *idempotency_key;
  cli_uint max_attempts;
  cli_uint lease_seconds;
  const char *hostname;
  cli_uint port;
  const char *config; /* JSON object: workerConfig */
} cli_args;

typedef int (*cli_run_fn)(cli_context *ctx, const cli_args *args);

typedef struct cli_command {
  const char *name;     /* "submit" */
  const char *synopsis; /* "[REQUEST] [flags]" */
  const char *summary;  /* one line */
  const char *details;  /* more help text, or NULL */
  const char *flags;    /* the flags it takes, space-separated names */
  size_t min_args, max_args;
  cli_run_fn run;
} cli_command;

typedef struct cli_group {
  const char *name; /* "jobs"; NULL for the top-level commands */
  const char *summary;
  const cli_command *commands;
  size_t count;
} cli_group;

extern const cli_group cli_jobs_group;
extern const cli_group cli_workers_group;
extern const cli_group cli_generic_group; /* health, list, describe, call */

#endif
