/* cli_options.h: the option tables of the jobhub command line: one table
 * drives parsing (flags, "--name=value" and "--name value", a one-letter
 * form, environment variables) and the --help text. */
#ifndef JOBHUB_CLIENT_CLI_OPTIONS_H
#define JOBHUB_CLIENT_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Repeated options keep their values in order, up to this many. */
#define CLI_LIST_MAX 32

typedef enum cli_option_kind {
  CLI_TEXT,    /* const char * */
  CLI_FLAG,    /* bool; takes no value */
  CLI_UINT,    /* cli_uint: a whole number 0..max */
  CLI_SECONDS, /* cli_seconds: decimal seconds 0..max (0 max: no maximum) */
  CLI_LIST,    /* cli_list: every occurrence */
} cli_option_kind;

/* A number that may be absent: pool 0 is a real pool. */
typedef struct cli_uint {
  bool set;
  unsigned long value;
} cli_uint;

typedef struct cli_seconds {
  bool set;
  double value; /* s */
} cli_seconds;

typedef struct cli_list {
  const char *items[CLI_LIST_MAX]; /* borrowed from argv or the env */
  size_t count;
} cli_list;

typedef struct cli_option {
  const char *name; /* "addr": given as --addr */
  char letter;      /* 'H': given as -H; 0 for none */
  cli_option_kind kind;
  size_t offset;       /* of the field in the target struct */
  const char *metavar; /* "HOST:PORT"; NULL for flags */
  const char *env;     /* environment variable read first; may be NULL */
  unsigned long max;   /* CLI_UINT, CLI_SECONDS */
  const char *help;
} cli_option;

/* Options of one table land in one struct (target). */
typedef struct cli_option_table {
  const cli_option *options;
  size_t count;
  void *target;
} cli_option_table;

/* The result of cli_options_parse. */
typedef enum cli_parse_result {
  CLI_PARSE_OK = 0,
  CLI_PARSE_HELP = 1,   /* --help or -h was given */
  CLI_PARSE_ERROR = -1, /* the message is in err */
} cli_parse_result;

/* cli_options_load_env sets every option of table that has an environment
 * variable set. Returns CLI_PARSE_OK or CLI_PARSE_ERROR with a message in
 * err naming the variable. */
cli_parse_result cli_options_load_env(const cli_option_table *table, char *err,
                                      size_t err_size);

/* cli_options_parse reads argv[*index..argc): each option is looked up in
 * tables in order; other words are positional and stored in positional (at
 * most max_positional, counted in *n_positional; "-" alone is positional,
 * "--" makes every later word positional). With stop_at_positional it
 * stops at the first positional word, leaving *index on it (not stored);
 * otherwise *index ends at argc. Values are borrowed from argv. Returns
 * CLI_PARSE_OK, CLI_PARSE_HELP, or CLI_PARSE_ERROR with a message in err
 * (unknown option, missing or invalid value, too many arguments). */
cli_parse_result cli_options_parse(const cli_option_table *tables,
                                   size_t n_tables, int argc, char **argv,
                                   int *index, bool stop_at_positional,
                                   const char **positional,
                                   size_t max_positional, size_t *n_positional,
                                   char *err, size_t err_size);

/* cli_options_help writes one line per option of table to out. */
void cli_options_help(FILE *out, const cli_option *options, size_t count);

#endif
