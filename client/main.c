/* main.c: jobhub, the command-line client of a jobhub hub, and a
 * grpcurl-like client of any gRPC server with reflection. Global options
 * come from the command line (anywhere) or JOBHUB_* environment variables;
 * the tables below drive parsing and --help at every level.
 *
 * Exit codes: see exit_codes_help below (cli_context.h has the values). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "client/cli_commands.h"
#include "client/cli_context.h"
#include "client/cli_options.h"

#define GLOBAL(f) offsetof(cli_global, f)
#define FLAG(f) offsetof(cli_args, f)

static const cli_option global_options[] = {
    {"addr", 0, CLI_TEXT, GLOBAL(address), "HOST:PORT", "JOBHUB_ADDR", 0,
     "the server [127.0.0.1:50051]"},
    {"tls", 0, CLI_FLAG, GLOBAL(tls), NULL, "JOBHUB_TLS", 0,
     "TLS (ALPN h2) instead of h2c"},
    {"cacert", 0, CLI_TEXT, GLOBAL(cacert), "FILE", "JOBHUB_CACERT", 0,
     "PEM CAs to check the server's certificate against (default: the "
     "system's); implies --tls"},
    {"cert", 0, CLI_TEXT, GLOBAL(cert), "FILE", "JOBHUB_CERT", 0,
     "PEM client certificate for mTLS (with --key); implies --tls"},
    {"key", 0, CLI_TEXT, GLOBAL(key), "FILE", "JOBHUB_KEY", 0,
     "PEM private key of --cert"},
    {"token", 0, CLI_TEXT, GLOBAL(token), "TOKEN", "JOBHUB_TOKEN", 0,
     "sent as \"authorization: Bearer TOKEN\""},
    {"basic", 0, CLI_TEXT, GLOBAL(basic), "USER:PASSWORD", "JOBHUB_BASIC", 0,
     "sent as \"authorization: Basic BASE64\" (not with --token)"},
    {"timeout", 0, CLI_SECONDS, GLOBAL(timeout), "SECONDS", "JOBHUB_TIMEOUT",
     31536000,
     "deadline of each call, 0..31536000 (a year) [30 for unary calls; none "
     "for watch and server streams]"},
    {"header", 'H', CLI_LIST, GLOBAL(headers), "'KEY: VALUE'", NULL, 0,
     "custom request metadata (base64 values for -bin keys)"},
    {"json", 0, CLI_FLAG, GLOBAL(json), NULL, NULL, 0,
     "JSON output even on a terminal (indented there, one line otherwise)"},
    {"table", 0, CLI_FLAG, GLOBAL(table), NULL, NULL, 0,
     "the table view of list-like answers even when not on a terminal"},
    {"emit-defaults", 0, CLI_FLAG, GLOBAL(emit_defaults), NULL, NULL, 0,
     "also print fields that hold their default value"},
};
#define N_GLOBAL (sizeof(global_options) / sizeof(global_options[0]))

/* Every command-specific flag; each command names those it takes. */
static const cli_option flag_options[] = {
    {"pool", 0, CLI_UINT, FLAG(pool), "POOL_ID", NULL, 1023,
     "pool_id, 0..1023"},
    {"job-type", 0, CLI_UINT, FLAG(job_type), "JOB_TYPE_ID", NULL, 1023,
     "job_type_id, 0..1023"},
    {"state", 0, CLI_TEXT, FLAG(state), "STATE", NULL, 0,
     "QUEUED, IN_PROGRESS, DONE, FAILED or CANCELLED"},
    {"subject", 0, CLI_TEXT, FLAG(subject), "SUBJECT", NULL, 0,
     "the subject (e.g. a series name)"},
    {"page-size", 0, CLI_UINT, FLAG(page_size), "N", NULL, 1000,
     "jobs per page, 0..1000 (0: 100) [100]"},
    {"page-token", 0, CLI_TEXT, FLAG(page_token), "TOKEN", NULL, 0,
     "the next_page_token of the previous page"},
    {"module", 0, CLI_TEXT, FLAG(module), "MODULE", NULL, 0,
     "config.module: the worker module to run"},
    {"params", 0, CLI_TEXT, FLAG(params), "JSON", NULL, 0,
     "config.moduleParams, a JSON object"},
    {"payload", 0, CLI_TEXT, FLAG(payload), "TEXT", NULL, 0,
     "the payload bytes, given as text"},
    {"priority", 0, CLI_TEXT, FLAG(priority), "N", NULL, 0,
     "higher runs first, -2147483648..2147483647"},
    {"meta", 0, CLI_LIST, FLAG(meta), "KEY=VALUE", NULL, 0, "a meta entry"},
    {"idempotency-key", 0, CLI_TEXT, FLAG(idempotency_key), "KEY", NULL, 0,
     "the same key submits the same job once"},
    {"max-attempts", 0, CLI_UINT, FLAG(max_attempts), "N", NULL, 1000000,
     "leases before the job fails, 0..1000000 (0: the hub's) [the hub's]"},
    {"lease-seconds", 0, CLI_UINT, FLAG(lease_seconds), "N", NULL, 86400 * 30,
     "lease length in seconds, 0..2592000 (0: the hub's) [the hub's]"},
    {"wait", 0, CLI_FLAG, FLAG(wait), NULL, NULL, 0,
     "watch until the job ends, then print its result"},
    {"hostname", 0, CLI_TEXT, FLAG(hostname), "HOST", NULL, 0,
     "the worker's host name"},
    {"port", 0, CLI_UINT, FLAG(port), "PORT", NULL, 65535,
     "the worker's port, 0..65535"},
    {"config", 0, CLI_TEXT, FLAG(config), "JSON", NULL, 0,
     "workerConfig, a JSON object"},
};
#define N_FLAGS (sizeof(flag_options) / sizeof(flag_options[0]))

static const cli_group *const groups[] = {&cli_jobs_group, &cli_workers_group,
                                          &cli_generic_group};
#define N_GROUPS (sizeof(groups) / sizeof(groups[0]))

static const char exit_codes_help[] =
    "Exit codes:\n"
    "  0        OK\n"
    "  1        local failure (I/O, TLS set-up, an answer that does not "
    "decode)\n"
    "  2        usage error (options, arguments, request JSON)\n"
    "  3        --wait: the job ended FAILED\n"
    "  4        --wait: the job ended CANCELLED\n"
    "  5        health: the answer is not SERVING\n"
    "  10+CODE  the call failed with gRPC status CODE: 11 CANCELLED,\n"
    "           13 INVALID_ARGUMENT, 14 DEADLINE_EXCEEDED, 15 NOT_FOUND,\n"
    "           19 FAILED_PRECONDITION, 22 UNIMPLEMENTED, 24 UNAVAILABLE,\n"
    "           26 UNAUTHENTICATED, ...\n"
    "Errors are printed on stderr as \"jobhub: CODE: message\" for gRPC\n"
    "errors and \"jobhub: message\" otherwise.\n";

static void global_help(FILE *out) {
  fputs("usage: jobhub [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
        "The command-line client of a jobhub hub (JSON in and out, by the\n"
        "protobuf JSON mapping), and of any gRPC server with reflection.\n\n",
        out);
  for (size_t g = 0; g < N_GROUPS; g++) {
    const cli_group *group = groups[g];
    if (group->name != NULL) {
      fprintf(out, "jobhub %s COMMAND  (%s)\n", group->name, group->summary);
    } else {
      fputs("Other commands:\n", out);
    }
    for (size_t i = 0; i < group->count; i++) {
      char name[64];
      snprintf(name, sizeof(name), "%s%s%s", group->name ? group->name : "",
               group->name ? " " : "", group->commands[i].name);
      fprintf(out, "  %-18s %s\n", name, group->commands[i].summary);
    }
    fputc('\n', out);
  }
  fputs("Global options (also after the command):\n", out);
  cli_options_help(out, global_options, N_GLOBAL);
  fputs("  -h, --help                   help, also of a command: jobhub jobs "
        "--help,\n                               jobhub jobs submit --help\n\n",
        out);
  fputs("REQUEST arguments are JSON, @FILE, or - for stdin.\n\n", out);
  fputs(exit_codes_help, out);
}

static void group_help(FILE *out, const cli_group *group) {
  fprintf(out, "usage: jobhub %s COMMAND [ARGS]\n\n%s\n\nCommands:\n",
          group->name, group->summary);
  for (size_t i = 0; i < group->count; i++) {
    fprintf(out, "  %-10s %s\n", group->commands[i].name,
            group->commands[i].summary);
  }
  fprintf(out,
          "\n\"jobhub %s COMMAND --help\" tells more; \"jobhub --help\" "
          "lists the global options and exit codes.\n",
          group->name);
}

/* The flags command takes, copied from flag_options in its order. */
static size_t command_flags(const cli_command *command, cli_option *out) {
  size_t count = 0;
  const char *p = command->flags;
  while (*p != '\0') {
    while (*p == ' ') {
      p++;
    }
    size_t len = strcspn(p, " ");
    for (size_t i = 0; len > 0 && i < N_FLAGS; i++) {
      if (strlen(flag_options[i].name) == len &&
          strncmp(flag_options[i].name, p, len) == 0) {
        out[count++] = flag_options[i];
      }
    }
    p += len;
  }
  return count;
}

static void command_help(FILE *out, const cli_group *group,
                         const cli_command *command) {
  fprintf(out, "usage: jobhub %s%s%s %s\n\n%s.\n",
          group->name ? group->name : "", group->name ? " " : "", command->name,
          command->synopsis, command->summary);
  if (command->details != NULL) {
    fprintf(out, "\n%s\n", command->details);
  }
  cli_option flags[N_FLAGS];
  size_t count = command_flags(command, flags);
  if (count > 0) {
    fputs("\nOptions:\n", out);
    cli_options_help(out, flags, count);
  }
  fputs("\nGlobal options:\n", out);
  cli_options_help(out, global_options, N_GLOBAL);
  fputs("\nSee \"jobhub --help\" for the exit codes.\n", out);
}

static const cli_command *find_command(const cli_group *group,
                                       const char *name) {
  for (size_t i = 0; i < group->count; i++) {
    if (strcmp(group->commands[i].name, name) == 0) {
      return &group->commands[i];
    }
  }
  return NULL;
}

/* Parses the global options from argv[*index] up to the next word. */
static int parse_globals(cli_context *ctx, int argc, char **argv, int *index,
                         bool *help) {
  char err[512];
  cli_option_table table = {global_options, N_GLOBAL, &ctx->global};
  size_t none = 0;
  cli_parse_result rv = cli_options_parse(&table, 1, argc, argv, index, true,
                                          NULL, 0, &none, err, sizeof(err));
  *help = rv == CLI_PARSE_HELP;
  if (rv == CLI_PARSE_ERROR) {
    return cli_fail(CLI_EXIT_USAGE, "%s", err);
  }
  return CLI_EXIT_OK;
}

static int run_command(cli_context *ctx, const cli_group *group,
                       const cli_command *command, int argc, char **argv,
                       int index) {
  cli_args args;
  memset(&args, 0, sizeof(args));
  cli_option flags[N_FLAGS];
  size_t count = command_flags(command, flags);
  cli_option_table tables[] = {{flags, count, &args},
                               {global_options, N_GLOBAL, &ctx->global}};
  char err[512];
  cli_parse_result rv = cli_options_parse(tables, 2, argc, argv, &index, false,
                                          args.positional, command->max_args,
                                          &args.n_positional, err, sizeof(err));
  if (rv == CLI_PARSE_HELP) {
    command_help(stdout, group, command);
    return CLI_EXIT_OK;
  }
  if (rv == CLI_PARSE_ERROR) {
    return cli_fail(CLI_EXIT_USAGE, "%s %s: %s (see --help)",
                    group->name ? group->name : "jobhub", command->name, err);
  }
  if (args.n_positional < command->min_args) {
    return cli_fail(CLI_EXIT_USAGE, "usage: jobhub %s%s%s %s (see --help)",
                    group->name ? group->name : "", group->name ? " " : "",
                    command->name, command->synopsis);
  }
  if (ctx->global.json && ctx->global.table) {
    return cli_fail(CLI_EXIT_USAGE, "--json and --table exclude each other");
  }
  return command->run(ctx, &args);
}

static int run(cli_context *ctx, int argc, char **argv) {
  char err[512];
  ctx->global.address = "127.0.0.1:50051";
  cli_option_table table = {global_options, N_GLOBAL, &ctx->global};
  if (cli_options_load_env(&table, err, sizeof(err)) != CLI_PARSE_OK) {
    return cli_fail(CLI_EXIT_USAGE, "%s", err);
  }
  int index = 1;
  bool help;
  int exit_code = parse_globals(ctx, argc, argv, &index, &help);
  if (exit_code != CLI_EXIT_OK || help) {
    if (help) {
      global_help(stdout);
    }
    return exit_code;
  }
  if (index == argc) {
    return cli_fail(CLI_EXIT_USAGE, "a command is missing (see jobhub --help)");
  }
  const char *word = argv[index++];
  for (size_t g = 0; g < N_GROUPS; g++) {
    const cli_group *group = groups[g];
    if (group->name == NULL) {
      const cli_command *command = find_command(group, word);
      if (command != NULL) {
        return run_command(ctx, group, command, argc, argv, index);
      }
      continue;
    }
    if (strcmp(group->name, word) != 0) {
      continue;
    }
    exit_code = parse_globals(ctx, argc, argv, &index, &help);
    if (exit_code != CLI_EXIT_OK || help) {
      if (help) {
        group_help(stdout, group);
      }
      return exit_code;
    }
    const char *name = index < argc ? argv[index++] : NULL;
    const cli_command *command = name ? find_command(group, name) : NULL;
    if (command == NULL) {
      fprintf(stderr, "jobhub: %s: %s%s%s; one of:", group->name,
              name ? "unknown command \"" : "a command is missing",
              name ? name : "", name ? "\"" : "");
      for (size_t i = 0; i < group->count; i++) {
        fprintf(stderr, " %s", group->commands[i].name);
      }
      fputc('\n', stderr);
      return CLI_EXIT_USAGE;
    }
    return run_command(ctx, group, command, argc, argv, index);
  }
  return cli_fail(CLI_EXIT_USAGE, "unknown command \"%s\" (see jobhub --help)",
                  word);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* TLS writes go through write(2) */
  cli_context ctx;
  cli_context_init(&ctx);
  int exit_code = run(&ctx, argc, argv);
  cli_context_free(&ctx);
  return exit_code;
}
