/* options.h: one table of options drives a program's configuration: long
 * flags (--name value, --name=value, --name alone for a bool), the
 * environment (a prefix and the name in capitals, '-' as '_'), values a
 * caller reads from a file (options_set), --help and a dump of the
 * effective values. Each option lands in a field of one struct (the
 * target). jobhubd (server/config.c) and jobhub-worker (worker/main.c)
 * share it. libc only. */
#ifndef JOBHUB_COMMON_OPTIONS_H
#define JOBHUB_COMMON_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Occurrences an OPTION_UNSIGNED_LIST or OPTION_TEXT_LIST keeps. */
#define OPTION_LIST_MAX 64

typedef enum option_kind {
  OPTION_TEXT,          /* char *: a malloc'd copy (options_free) */
  OPTION_BOOL,          /* bool: true, 1, yes / false, 0, no */
  OPTION_UNSIGNED,      /* unsigned: a whole number min..max */
  OPTION_BYTES,         /* uint64_t: a whole number min..max */
  OPTION_SECONDS,       /* double: above 0, at most max */
  OPTION_MICROSECONDS,  /* double: 0..max, or "auto" stored as -1 */
  OPTION_UNSIGNED_LIST, /* option_list: whole numbers min..max */
  OPTION_TEXT_LIST,     /* option_text_list: malloc'd copies */
} option_kind;

/* Where a value comes from, in the order they are read: each overrides
 * the ones before. A list gets one value per occurrence within a source;
 * a later source replaces it. */
typedef enum option_layer {
  OPTION_FROM_DEFAULTS,
  OPTION_FROM_FILE,
  OPTION_FROM_ENV,
  OPTION_FROM_ARGS,
} option_layer;

typedef struct option_list {
  uint32_t values[OPTION_LIST_MAX];
  size_t count;
  option_layer layer; /* the parser's: where values came from */
} option_list;

typedef struct option_text_list {
  char *values[OPTION_LIST_MAX]; /* owned (options_free) */
  size_t count;
  option_layer layer; /* the parser's: where values came from */
} option_text_list;

typedef struct option_spec {
  const char *name; /* flag --name, environment PREFIXNAME, file key */
  option_kind kind;
  size_t offset;             /* of the field in the target struct */
  const char *default_value; /* NULL: none (the field stays zero) */
  /* The valid range of numbers, shown by --help; out of it is a usage
   * error. At most UINT32_MAX for lists and UINT_MAX for OPTION_UNSIGNED. */
  uint64_t max;
  const char *help;
  uint64_t min; /* whole numbers; last so that rows may leave it out (0) */
} option_spec;

/* A word of the command line that is no option: --help, --version. */
typedef struct option_command {
  const char *name; /* given as --name, never with a value */
  const char *help;
  bool stops; /* the parse ends at it: later words are not read */
} option_command;

typedef struct option_table {
  const option_spec *specs;
  size_t count;
  const char *env_prefix; /* "JOBHUB_": --log-level is JOBHUB_LOG_LEVEL */
  const option_command *commands; /* "-h" is --help if one is "help" */
  size_t n_commands;              /* at most 32 */
} option_table;

/* OPTION_TABLE initializes an option_table from an array of specs, the
 * environment prefix and an array of commands. */
#define OPTION_TABLE(spec_array, prefix, command_array)                        \
  {                                                                            \
    (spec_array), sizeof(spec_array) / sizeof((spec_array)[0]), (prefix),      \
        (command_array), sizeof(command_array) / sizeof((command_array)[0])    \
  }

/* options_find returns the spec named by the len bytes at name, or NULL. */
const option_spec *options_find(const option_table *table, const char *name,
                                size_t len);

/* options_set parses value for spec and stores it in target; source names
 * where it came from in messages ("the command line", a file's path).
 * Returns 0, or -1 with a message in err naming the option, the value,
 * the source and the valid range (or "out of memory"); the field is then
 * unchanged. */
int options_set(void *target, const option_spec *spec, const char *value,
                option_layer layer, const char *source, char *err,
                size_t err_size);

/* options_load_defaults sets every spec that has a default_value;
 * options_load_env every spec whose environment variable is set. Return
 * 0, or -1 with a message in err (from options_set). */
int options_load_defaults(const option_table *table, void *target, char *err,
                          size_t err_size);
int options_load_env(const option_table *table, void *target, char *err,
                     size_t err_size);

/* options_parse_args reads argv[1..argc): options into target, and the
 * table's commands as bits in *commands (bit i: commands[i] was given;
 * a stopping command ends the parse at once). Returns 0, or -1 with a
 * message in err: an unknown option, a missing or invalid value, or a
 * word that is not an option. Values are copied (no borrow of argv). */
int options_parse_args(const option_table *table, void *target, int argc,
                       char **argv, uint32_t *commands, char *err,
                       size_t err_size);

/* options_help writes a line per spec (flag, help, valid range, variable
 * and default) and per command to out. */
void options_help(const option_table *table, FILE *out);

/* options_print writes "name = value" for every spec of target to out. */
void options_print(const option_table *table, const void *target, FILE *out);

/* options_free frees the text fields of target and sets them to NULL. */
void options_free(const option_table *table, void *target);

#endif
