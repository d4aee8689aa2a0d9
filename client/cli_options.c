/* cli_options.c: parsing driven by the option tables. */
#include "client/cli_options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *field_of(const cli_option_table *table, const cli_option *opt) {
  return (char *)table->target + opt->offset;
}

/* Stores text as the value of opt (source says where it came from, for
 * the message). Returns CLI_PARSE_OK or CLI_PARSE_ERROR. */
static cli_parse_result set_value(const cli_option_table *table,
                                  const cli_option *opt, const char *text,
                                  const char *source, char *err,
                                  size_t err_size) {
  void *field = field_of(table, opt);
  switch (opt->kind) {
  case CLI_TEXT:
    *(const char **)field = text;
    return CLI_PARSE_OK;
  case CLI_FLAG:
    if (strcmp(text, "1") == 0 || strcmp(text, "true") == 0) {
      *(bool *)field = true;
    } else if (strcmp(text, "0") == 0 || strcmp(text, "false") == 0 ||
               text[0] == '\0') {
      *(bool *)field = false;
    } else {
      snprintf(err, err_size, "--%s (from %s) takes 1, true, 0 or false",
               opt->name, source);
      return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
  case CLI_UINT: {
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
        text[0] == '+' || text[0] == ' ' || value > opt->max) {
      snprintf(err, err_size,
               "invalid value \"%s\" for --%s (from %s): a whole number "
               "0..%lu",
               text, opt->name, source, opt->max);
      return CLI_PARSE_ERROR;
    }
    *(cli_uint *)field = (cli_uint){true, value};
    return CLI_PARSE_OK;
  }
  case CLI_SECONDS: {
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value) ||
        value < 0 || (opt->max != 0 && value > (double)opt->max)) {
      snprintf(err, err_size,
               "invalid value \"%s\" for --%s (from %s): seconds 0..%lu, "
               "e.g. 2.5",
               text, opt->name, source, opt->max);
      return CLI_PARSE_ERROR;
    }
    *(cli_seconds *)field = (cli_seconds){true, value};
    return CLI_PARSE_OK;
  }
  case CLI_LIST: {
    cli_list *list = field;
    if (list->count == CLI_LIST_MAX) {
      snprintf(err, err_size, "more than %d --%s", CLI_LIST_MAX, opt->name);
      return CLI_PARSE_ERROR;
    }
    list->items[list->count++] = text;
    return CLI_PARSE_OK;
  }
  }
  return CLI_PARSE_ERROR;
}

cli_parse_result cli_options_load_env(const cli_option_table *table, char *err,
                                      size_t err_size) {
  for (size_t i = 0; i < table->count; i++) {
    const cli_option *opt = &table->options[i];
    const char *value = opt->env != NULL ? getenv(opt->env) : NULL;
    if (value != NULL &&
        set_value(table, opt, value, opt->env, err, err_size) != 0) {
      return CLI_PARSE_ERROR;
    }
  }
  return CLI_PARSE_OK;
}

/* Finds an option by long name (name[0..len)) or, when len is 0, by
 * letter, in the tables in order. */
static const cli_option *find(const cli_option_table *tables, size_t n_tables,
                              const char *name, size_t len, char letter,
                              const cli_option_table **table) {
  for (size_t t = 0; t < n_tables; t++) {
    for (size_t i = 0; i < tables[t].count; i++) {
      const cli_option *opt = &tables[t].options[i];
      bool match = len > 0 ? strlen(opt->name) == len &&
                                 strncmp(opt->name, name, len) == 0
                           : opt->letter != 0 && opt->letter == letter;
      if (match) {
        *table = &tables[t];
        return opt;
      }
    }
  }
  return NULL;
}

cli_parse_result cli_options_parse(const cli_option_table *tables,
                                   size_t n_tables, int argc, char **argv,
                                   int *index, bool stop_at_positional,
                                   const char **positional,
                                   size_t max_positional, size_t *n_positional,
                                   char *err, size_t err_size) {
  bool only_positional = false;
  for (; *index < argc; (*index)++) {
    const char *arg = argv[*index];
    bool is_option = !only_positional && arg[0] == '-' && arg[1] != '\0';
    if (is_option && strcmp(arg, "--") == 0) {
      only_positional = true;
      continue;
    }
    if (!is_option) {
      if (stop_at_positional) {
        return CLI_PARSE_OK;
      }
      if (*n_positional == max_positional) {
        snprintf(err, err_size, "unexpected argument \"%s\"", arg);
        return CLI_PARSE_ERROR;
      }
      positional[(*n_positional)++] = arg;
      continue;
    }
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      return CLI_PARSE_HELP;
    }
    const cli_option_table *table = NULL;
    const cli_option *opt;
    const char *value = NULL;
    if (arg[1] == '-') {
      const char *name = arg + 2;
      const char *equals = strchr(name, '=');
      size_t len = equals != NULL ? (size_t)(equals - name) : strlen(name);
      opt = len > 0 ? find(tables, n_tables, name, len, 0, &table) : NULL;
      value = equals != NULL ? equals + 1 : NULL;
    } else {
      opt = find(tables, n_tables, NULL, 0, arg[1], &table);
      value = arg[2] != '\0' ? arg + 2 : NULL; /* -Hvalue */
    }
    if (opt == NULL) {
      snprintf(err, err_size, "unknown option \"%s\" (see --help)", arg);
      return CLI_PARSE_ERROR;
    }
    if (value == NULL && opt->kind == CLI_FLAG) {
      value = "1";
    } else if (value == NULL) {
      if (*index + 1 == argc) {
        snprintf(err, err_size, "--%s needs a value (%s)", opt->name,
                 opt->metavar != NULL ? opt->metavar : "VALUE");
        return CLI_PARSE_ERROR;
      }
      value = argv[++*index];
    }
    if (set_value(table, opt, value, "the command line", err, err_size) !=
        CLI_PARSE_OK) {
      return CLI_PARSE_ERROR;
    }
  }
  return CLI_PARSE_OK;
}

void cli_options_help(FILE *out, const cli_option *options, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const cli_option *opt = &options[i];
    char flag[64];
    if (opt->letter != 0) {
      snprintf(flag, sizeof(flag), "-%c, --%s%s%s", opt->letter, opt->name,
               opt->metavar != NULL ? " " : "",
               opt->metavar != NULL ? opt->metavar : "");
    } else {
      snprintf(flag, sizeof(flag), "    --%s%s%s", opt->name,
               opt->metavar != NULL ? " " : "",
               opt->metavar != NULL ? opt->metavar : "");
    }
    fprintf(out, "  %-28s %s", flag, opt->help);
    if (opt->env != NULL) {
      fprintf(out, " [env %s]", opt->env);
    }
    if (opt->kind == CLI_LIST) {
      fputs(" (repeatable)", out);
    }
    fputc('\n', out);
  }
}
