/* options.c: parsing, environment, help and dump of an option table. */
#include "common/options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The field of target that spec describes: offsetof keeps it aligned. */
static void *field_of(const void *target, const option_spec *spec) {
  return (char *)target + spec->offset;
}

/* The environment variable of spec: the prefix and the name in capitals,
 * '-' as '_'. */
static void env_name(const option_table *table, const option_spec *spec,
                     char *out, size_t out_size) {
  snprintf(out, out_size, "%s%s", table->env_prefix, spec->name);
  for (char *p = out + strlen(table->env_prefix); *p; p++) {
    *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  }
}

const option_spec *options_find(const option_table *table, const char *name,
                                size_t len) {
  for (size_t i = 0; i < table->count; i++) {
    if (strlen(table->specs[i].name) == len &&
        strncmp(table->specs[i].name, name, len) == 0) {
      return &table->specs[i];
    }
  }
  return NULL;
}

/* The valid values of spec in words, for --help and messages. */
static void describe_range(const option_spec *spec, char *out,
                           size_t out_size) {
  switch (spec->kind) {
  case OPTION_TEXT:
  case OPTION_TEXT_LIST:
    snprintf(out, out_size, "text");
    break;
  case OPTION_BOOL:
    snprintf(out, out_size, "true or false");
    break;
  case OPTION_UNSIGNED:
  case OPTION_BYTES:
  case OPTION_UNSIGNED_LIST:
    snprintf(out, out_size, "a whole number %llu..%llu",
             (unsigned long long)spec->min, (unsigned long long)spec->max);
    break;
  case OPTION_SECONDS:
    snprintf(out, out_size, "seconds above 0, at most %llu",
             (unsigned long long)spec->max);
    break;
  case OPTION_MICROSECONDS:
    snprintf(out, out_size, "microseconds 0..%llu or auto",
             (unsigned long long)spec->max);
    break;
  }
}

/* Reads a whole number of spec's range (digits only: no sign, no space).
 * Returns 0 or -1. */
static int parse_whole(const option_spec *spec, const char *value,
                       uint64_t *number) {
  if (!isdigit((unsigned char)value[0])) {
    return -1;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long parsed = strtoull(value, &end, 10);
  if (errno != 0 || *end != '\0' || parsed < spec->min || parsed > spec->max) {
    return -1;
  }
  *number = parsed;
  return 0;
}

/* Reads seconds (above 0) or microseconds (0 too) up to spec's max.
 * Returns 0 or -1. */
static int parse_time(const option_spec *spec, const char *value,
                      double *number) {
  char *end = NULL;
  errno = 0;
  double parsed = strtod(value, &end);
  bool zero_ok = spec->kind == OPTION_MICROSECONDS;
  if (errno != 0 || end == value || *end != '\0' || !isfinite(parsed) ||
      parsed < 0 || (parsed == 0 && !zero_ok) || parsed > (double)spec->max) {
    return -1;
  }
  *number = parsed;
  return 0;
}

/* Reads a bool. Returns 0 or -1. */
static int parse_bool(const char *value, bool *flag) {
  if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
      strcmp(value, "yes") == 0) {
    *flag = true;
  } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
             strcmp(value, "no") == 0) {
    *flag = false;
  } else {
    return -1;
  }
  return 0;
}

/* Appends number to the list, first emptying it if it came from an
 * earlier source. Returns 0, or -1 with a message in err (full). */
static int list_add(option_list *list, const option_spec *spec, uint64_t number,
                    option_layer layer, char *err, size_t err_size) {
  if (layer != list->layer) {
    list->count = 0; /* a later source replaces an earlier one's list */
    list->layer = layer;
  }
  if (list->count == OPTION_LIST_MAX) {
    snprintf(err, err_size, "more than %d --%s", OPTION_LIST_MAX, spec->name);
    return -1;
  }
  list->values[list->count++] = (uint32_t)number;
  return 0;
}

/* Frees the values of a text list. */
static void text_list_clear(option_text_list *list) {
  for (size_t i = 0; i < list->count; i++) {
    free(list->values[i]);
  }
  list->count = 0;
}

/* Appends a copy of value as list_add does. Returns 0, or -1 with a
 * message in err (full, or no memory). */
static int text_list_add(option_text_list *list, const option_spec *spec,
                         const char *value, option_layer layer, char *err,
                         size_t err_size) {
  if (layer != list->layer) {
    text_list_clear(list); /* a later source replaces an earlier one's */
    list->layer = layer;
  }
  if (list->count == OPTION_LIST_MAX) {
    snprintf(err, err_size, "more than %d --%s", OPTION_LIST_MAX, spec->name);
    return -1;
  }
  list->values[list->count] = strdup(value);
  if (list->values[list->count] == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  list->count++;
  return 0;
}

int options_set(void *target, const option_spec *spec, const char *value,
                option_layer layer, const char *source, char *err,
                size_t err_size) {
  void *field = field_of(target, spec);
  uint64_t whole = 0;
  switch (spec->kind) {
  case OPTION_TEXT: {
    char *copy = strdup(value);
    if (copy == NULL) {
      snprintf(err, err_size, "out of memory");
      return -1;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return 0;
  }
  case OPTION_BOOL:
    if (parse_bool(value, field) != 0) {
      break;
    }
    return 0;
  case OPTION_UNSIGNED:
    if (parse_whole(spec, value, &whole) != 0 || whole > UINT_MAX) {
      break;
    }
    *(unsigned *)field = (unsigned)whole;
    return 0;
  case OPTION_BYTES:
    if (parse_whole(spec, value, field) != 0) {
      break;
    }
    return 0;
  case OPTION_SECONDS:
  case OPTION_MICROSECONDS:
    if (spec->kind == OPTION_MICROSECONDS && strcmp(value, "auto") == 0) {
      *(double *)field = -1; /* the program decides */
      return 0;
    }
    if (parse_time(spec, value, field) != 0) {
      break;
    }
    return 0;
  case OPTION_UNSIGNED_LIST:
    if (parse_whole(spec, value, &whole) != 0 || whole > UINT32_MAX) {
      break;
    }
    return list_add(field, spec, whole, layer, err, err_size);
  case OPTION_TEXT_LIST:
    return text_list_add(field, spec, value, layer, err, err_size);
  }
  char range[96];
  describe_range(spec, range, sizeof(range));
  snprintf(err, err_size,
           "invalid value \"%s\" for --%s (from %s): expected %s", value,
           spec->name, source, range);
  return -1;
}

int options_load_defaults(const option_table *table, void *target, char *err,
                          size_t err_size) {
  for (size_t i = 0; i < table->count; i++) {
    const option_spec *spec = &table->specs[i];
    if (spec->default_value != NULL &&
        options_set(target, spec, spec->default_value, OPTION_FROM_DEFAULTS,
                    "defaults", err, err_size) != 0) {
      return -1;
    }
  }
  return 0;
}

int options_load_env(const option_table *table, void *target, char *err,
                     size_t err_size) {
  for (size_t i = 0; i < table->count; i++) {
    char env[128];
    env_name(table, &table->specs[i], env, sizeof(env));
    const char *value = getenv(env);
    if (value != NULL &&
        options_set(target, &table->specs[i], value, OPTION_FROM_ENV, env, err,
                    err_size) != 0) {
      return -1;
    }
  }
  return 0;
}

/* The index of the command arg names ("--name", or "-h" for help), or
 * -1. */
static int find_command(const option_table *table, const char *arg) {
  const char *name;
  if (strcmp(arg, "-h") == 0) {
    name = "help";
  } else if (strncmp(arg, "--", 2) == 0) {
    name = arg + 2;
  } else {
    return -1;
  }
  for (size_t i = 0; i < table->n_commands; i++) {
    if (strcmp(table->commands[i].name, name) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* Parses the option at argv[*index] (--name=value, --name value, or a
 * bool's --name alone) and moves *index past it. Returns 0 or -1. */
static int parse_flag(const option_table *table, void *target, int argc,
                      char **argv, int *index, char *err, size_t err_size) {
  const char *arg = argv[*index] + 2;
  const char *equals = strchr(arg, '=');
  size_t name_len = equals ? (size_t)(equals - arg) : strlen(arg);
  const option_spec *spec = options_find(table, arg, name_len);
  if (spec == NULL) {
    snprintf(err, err_size, "unknown option %s (see --help)", argv[*index]);
    return -1;
  }
  const char *value = equals ? equals + 1 : NULL;
  if (value == NULL && spec->kind == OPTION_BOOL) {
    value = "true"; /* --allow-plaintext alone */
  } else if (value == NULL) {
    if (*index + 1 >= argc) {
      snprintf(err, err_size, "option --%s needs a value", spec->name);
      return -1;
    }
    value = argv[++*index];
  }
  ++*index;
  return options_set(target, spec, value, OPTION_FROM_ARGS, "the command line",
                     err, err_size);
}

int options_parse_args(const option_table *table, void *target, int argc,
                       char **argv, uint32_t *commands, char *err,
                       size_t err_size) {
  *commands = 0;
  for (int i = 1; i < argc;) {
    int command = find_command(table, argv[i]);
    if (command >= 0) {
      *commands |= UINT32_C(1) << command;
      if (table->commands[command].stops) {
        return 0;
      }
      i++;
      continue;
    }
    if (strncmp(argv[i], "--", 2) != 0) {
      snprintf(err, err_size, "unexpected argument %s (see --help)", argv[i]);
      return -1;
    }
    if (parse_flag(table, target, argc, argv, &i, err, err_size) != 0) {
      return -1;
    }
  }
  return 0;
}

void options_help(const option_table *table, FILE *out) {
  for (size_t i = 0; i < table->count; i++) {
    const option_spec *spec = &table->specs[i];
    char flag[64];
    char env[128];
    snprintf(flag, sizeof(flag), "--%s%s", spec->name,
             spec->kind == OPTION_BOOL ? "[=BOOL]" : "=VALUE");
    env_name(table, spec, env, sizeof(env));
    fprintf(out, "  %-34s %s\n", flag, spec->help);
    if (spec->kind != OPTION_TEXT && spec->kind != OPTION_TEXT_LIST) {
      char range[96];
      describe_range(spec, range, sizeof(range));
      fprintf(out, "  %-34s valid: %s\n", "", range);
    }
    fprintf(out, "  %-34s env %s%s%s\n", "", env,
            spec->default_value ? ", default " : "",
            spec->default_value ? spec->default_value : "");
  }
  for (size_t i = 0; i < table->n_commands; i++) {
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s", table->commands[i].name);
    fprintf(out, "  %-34s %s\n", flag, table->commands[i].help);
  }
}

void options_print(const option_table *table, const void *target, FILE *out) {
  for (size_t i = 0; i < table->count; i++) {
    const option_spec *spec = &table->specs[i];
    const void *field = field_of(target, spec);
    fprintf(out, "%s = ", spec->name);
    switch (spec->kind) {
    case OPTION_TEXT: {
      const char *value = *(char *const *)field;
      fputs(value ? value : "", out);
      break;
    }
    case OPTION_BOOL:
      fputs(*(const bool *)field ? "true" : "false", out);
      break;
    case OPTION_UNSIGNED:
      fprintf(out, "%u", *(const unsigned *)field);
      break;
    case OPTION_BYTES:
      fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)field);
      break;
    case OPTION_SECONDS:
    case OPTION_MICROSECONDS:
      fprintf(out, "%g", *(const double *)field);
      break;
    case OPTION_UNSIGNED_LIST: {
      const option_list *list = field;
      for (size_t k = 0; k < list->count; k++) {
        fprintf(out, "%s%u", k > 0 ? "," : "", (unsigned)list->values[k]);
      }
      break;
    }
    case OPTION_TEXT_LIST: {
      const option_text_list *list = field;
      for (size_t k = 0; k < list->count; k++) {
        fprintf(out, "%s%s", k > 0 ? "," : "", list->values[k]);
      }
      break;
    }
    }
    fputc('\n', out);
  }
}

void options_free(const option_table *table, void *target) {
  for (size_t i = 0; i < table->count; i++) {
    if (table->specs[i].kind == OPTION_TEXT) {
      char **field = field_of(target, &table->specs[i]);
      free(*field);
      *field = NULL;
    } else if (table->specs[i].kind == OPTION_TEXT_LIST) {
      text_list_clear(field_of(target, &table->specs[i]));
    }
  }
}
