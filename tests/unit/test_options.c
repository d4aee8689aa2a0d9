/* test_options.c: the option-table parser: every kind, its range checks
 * and messages, the order of sources, commands, --help and the dump. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/options.h"

typedef struct settings {
  char *name;
  bool verbose;
  unsigned count;
  uint64_t bytes;
  double timeout;
  double poll;
  option_list ids;
  unsigned wide;
} settings;

#define FIELD(member) offsetof(settings, member)

static const option_spec specs[] = {
    {"name", OPTION_TEXT, FIELD(name), "anon", 0, "who it is"},
    {"verbose", OPTION_BOOL, FIELD(verbose), NULL, 0, "say more"},
    {"count", OPTION_UNSIGNED, FIELD(count), "3", 10, "how many", 1},
    {"bytes", OPTION_BYTES, FIELD(bytes), "4096", UINT64_MAX, "how big"},
    {"timeout", OPTION_SECONDS, FIELD(timeout), "30", 86400, "how long"},
    {"poll", OPTION_MICROSECONDS, FIELD(poll), "auto", 1000, "how eager"},
    {"id", OPTION_UNSIGNED_LIST, FIELD(ids), "1", 1023, "one more id"},
    {"wide", OPTION_UNSIGNED, FIELD(wide), NULL, UINT64_MAX, "too wide"},
};

static const option_command commands[] = {
    {"print", "print and go on", false},
    {"help", "print this help and exit", true},
};
enum { PRINT = 1 << 0, HELP = 1 << 1 };

static const option_table table =
    OPTION_TABLE(specs, "TEST_OPTIONS_", commands);

static char err[256];

/* Parses args (NULL-terminated) after defaults and the environment into
 * *s; returns what options_parse_args returned. */
static char program[] = "test";

static int parse(settings *s, uint32_t *given, ...) {
  char *argv[32] = {program};
  int argc = 1;
  va_list args;
  va_start(args, given);
  const char *arg;
  while ((arg = va_arg(args, const char *)) != NULL) {
    assert_true(argc < 32);
    argv[argc++] = (char *)arg; /* options_parse_args does not write */
  }
  va_end(args);
  memset(s, 0, sizeof(*s));
  err[0] = '\0';
  assert_int_equal(options_load_defaults(&table, s, err, sizeof(err)), 0);
  assert_int_equal(options_load_env(&table, s, err, sizeof(err)), 0);
  return options_parse_args(&table, s, argc, argv, given, err, sizeof(err));
}

/* Parses the one word arg, which must be refused with a message that
 * holds want; the fields keep their defaults. */
static void refused(const char *arg, const char *want) {
  settings s;
  uint32_t given;
  assert_int_equal(parse(&s, &given, arg, NULL), -1);
  if (strstr(err, want) == NULL) {
    fail_msg("%s: got \"%s\", want \"%s\"", arg, err, want);
  }
  assert_int_equal(s.count, 3);
  assert_true(s.bytes == 4096 && s.timeout == 30);
  options_free(&table, &s);
}

static int teardown(void **state) {
  (void)state;
  unsetenv("TEST_OPTIONS_ID");
  unsetenv("TEST_OPTIONS_COUNT");
  unsetenv("TEST_OPTIONS_NAME");
  return 0;
}

static void test_defaults(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  assert_int_equal(parse(&s, &given, NULL), 0);
  assert_int_equal(given, 0);
  assert_string_equal(s.name, "anon");
  assert_false(s.verbose);
  assert_int_equal(s.count, 3);
  assert_true(s.bytes == 4096);
  assert_true(s.timeout == 30);
  assert_true(s.poll == -1); /* auto */
  assert_int_equal(s.ids.count, 1);
  assert_int_equal(s.ids.values[0], 1);
  options_free(&table, &s);
  assert_null(s.name);
}

static void test_name_equals_value_and_separate_value(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  assert_int_equal(parse(&s, &given, "--name=a=b", "--count", "7",
                         "--bytes=18446744073709551615", "--timeout", "0.5",
                         "--poll=0", NULL),
                   0);
  assert_string_equal(s.name, "a=b"); /* only the first '=' splits */
  assert_int_equal(s.count, 7);
  assert_true(s.bytes == UINT64_MAX);
  assert_true(s.timeout == 0.5);
  assert_true(s.poll == 0);
  options_free(&table, &s);
}

static void test_bool_alone_and_with_values(void **state) {
  (void)state;
  static const struct {
    const char *arg;
    bool want;
  } cases[] = {{"--verbose", true},        {"--verbose=true", true},
               {"--verbose=1", true},      {"--verbose=yes", true},
               {"--verbose=false", false}, {"--verbose=0", false},
               {"--verbose=no", false}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    settings s;
    uint32_t given;
    /* Set first, so that false must be written, not left. */
    assert_int_equal(parse(&s, &given, "--verbose", cases[i].arg, NULL), 0);
    assert_true(s.verbose == cases[i].want);
    options_free(&table, &s);
  }
  settings s;
  uint32_t given;
  refused("--verbose=maybe", "invalid value \"maybe\" for --verbose (from the "
                             "command line): expected true or false");
  /* A bool never takes the next word as its value. */
  assert_int_equal(parse(&s, &given, "--verbose", "false", NULL), -1);
  assert_string_equal(err, "unexpected argument false (see --help)");
  options_free(&table, &s);
}

static void test_bad_integers(void **state) {
  (void)state;
  static const char *const bad[] = {"--count=12x",
                                    "--count=-1",
                                    "--count=+1",
                                    "--count= 1",
                                    "--count=",
                                    "--count=0x5",
                                    "--count=1.0",
                                    "--count=99999999999",
                                    "--bytes=-1",
                                    "--bytes=",
                                    "--bytes=18446744073709551616"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    refused(bad[i], "expected a whole number");
  }
}

static void test_out_of_range(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  refused("--count=0", "invalid value \"0\" for --count (from the command "
                       "line): expected a whole number 1..10");
  refused("--count=11", "--count");
  assert_int_equal(parse(&s, &given, "--count=10", NULL), 0);
  assert_int_equal(s.count, 10);
  options_free(&table, &s);
  /* An unsigned field never wraps, whatever the table's max says. */
  refused("--wide=4294967296", "--wide");
  assert_int_equal(parse(&s, &given, "--wide=4294967295", NULL), 0);
  assert_int_equal(s.wide, UINT_MAX);
  options_free(&table, &s);
}

static void test_seconds_and_microseconds(void **state) {
  (void)state;
  static const char *const bad[] = {
      "--timeout=0",   "--timeout=-1",  "--timeout=86401", "--timeout=1e9",
      "--timeout=inf", "--timeout=nan", "--timeout=",      "--timeout=1s",
      "--poll=-1",     "--poll=1001",   "--poll=never"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    refused(bad[i], "invalid value \"");
  }
  settings s;
  uint32_t given;
  assert_int_equal(parse(&s, &given, "--timeout=86400", "--poll=1000", NULL),
                   0);
  assert_true(s.timeout == 86400 && s.poll == 1000);
  options_free(&table, &s);
  refused("--timeout=0", "invalid value \"0\" for --timeout (from the command "
                         "line): expected seconds above 0, at most 86400");
}

static void test_unknown_flag_and_stray_word(void **state) {
  (void)state;
  refused("--nope=1", "unknown option --nope=1 (see --help)");
  refused("--coun", "unknown option --coun (see --help)"); /* no prefixes */
  refused("stray", "unexpected argument stray (see --help)");
  refused("-c", "unexpected argument -c (see --help)");
  /* A command takes no value. */
  refused("--help=1", "unknown option --help=1 (see --help)");
}

static void test_missing_value(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  refused("--name", "option --name needs a value");
  /* The next word is the value, even when it looks like a flag. */
  assert_int_equal(parse(&s, &given, "--name", "--count", NULL), 0);
  assert_string_equal(s.name, "--count");
  options_free(&table, &s);
}

static void test_sources_in_order(void **state) {
  (void)state;
  setenv("TEST_OPTIONS_COUNT", "5", 1);
  setenv("TEST_OPTIONS_NAME", "from-env", 1);
  settings s;
  uint32_t given;
  assert_int_equal(parse(&s, &given, "--count=6", NULL), 0);
  assert_int_equal(s.count, 6);            /* flag over environment */
  assert_string_equal(s.name, "from-env"); /* environment over default */
  options_free(&table, &s);
  setenv("TEST_OPTIONS_COUNT", "11", 1);
  memset(&s, 0, sizeof(s));
  assert_int_equal(options_load_env(&table, &s, err, sizeof(err)), -1);
  assert_string_equal(err, "invalid value \"11\" for --count (from "
                           "TEST_OPTIONS_COUNT): expected a whole number "
                           "1..10");
  options_free(&table, &s);
  /* A file's values name the file. */
  memset(&s, 0, sizeof(s));
  assert_int_equal(options_set(&s, options_find(&table, "count", 5), "0",
                               OPTION_FROM_FILE, "/etc/x.ini", err,
                               sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "(from /etc/x.ini)"));
  options_free(&table, &s);
}

static void test_list_is_replaced_by_a_later_source(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  setenv("TEST_OPTIONS_ID", "5", 1);
  assert_int_equal(parse(&s, &given, NULL), 0);
  assert_int_equal(s.ids.count, 1); /* the default 1 is replaced */
  assert_int_equal(s.ids.values[0], 5);
  options_free(&table, &s);
  assert_int_equal(parse(&s, &given, "--id", "7", "--id=8", NULL), 0);
  assert_int_equal(s.ids.count, 2); /* flags add up, without the 5 */
  assert_int_equal(s.ids.values[0], 7);
  assert_int_equal(s.ids.values[1], 8);
  options_free(&table, &s);
  refused("--id=1024", "expected a whole number 0..1023");

  static char id_flag[] = "--id", nine[] = "9";
  char *argv[3 + 2 * OPTION_LIST_MAX] = {program};
  int argc = 1;
  for (int i = 0; i <= OPTION_LIST_MAX; i++) {
    argv[argc++] = id_flag;
    argv[argc++] = nine;
  }
  memset(&s, 0, sizeof(s));
  assert_int_equal(
      options_parse_args(&table, &s, argc - 2, argv, &given, err, sizeof(err)),
      0);
  assert_int_equal(s.ids.count, OPTION_LIST_MAX);
  memset(&s, 0, sizeof(s));
  assert_int_equal(
      options_parse_args(&table, &s, argc, argv, &given, err, sizeof(err)), -1);
  assert_string_equal(err, "more than 64 --id");
  options_free(&table, &s);
}

static void test_commands(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  assert_int_equal(parse(&s, &given, "--print", "--count=4", NULL), 0);
  assert_int_equal(given, PRINT); /* and went on */
  assert_int_equal(s.count, 4);
  options_free(&table, &s);
  /* help stops: what follows is not read, even if wrong. */
  assert_int_equal(parse(&s, &given, "--print", "-h", "--nope", NULL), 0);
  assert_int_equal(given, PRINT | HELP);
  options_free(&table, &s);
  assert_int_equal(parse(&s, &given, "--count=0", "--help", NULL), -1);
  options_free(&table, &s);
}

/* The text options_help or options_print writes for s. */
static char *capture(bool help, const settings *s) {
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  assert_non_null(out);
  if (help) {
    options_help(&table, out);
  } else {
    options_print(&table, s, out);
  }
  assert_int_equal(fclose(out), 0);
  return text;
}

static void test_help_lists_every_row(void **state) {
  (void)state;
  char *text = capture(true, NULL);
  for (size_t i = 0; i < table.count; i++) {
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s%s", specs[i].name,
             specs[i].kind == OPTION_BOOL ? "[=BOOL]" : "=VALUE");
    assert_non_null(strstr(text, flag));
    assert_non_null(strstr(text, specs[i].help));
  }
  for (size_t i = 0; i < table.n_commands; i++) {
    assert_non_null(strstr(text, commands[i].help));
  }
  assert_non_null(strstr(text, "--print "));
  assert_non_null(strstr(text, "--help "));
  assert_non_null(strstr(text, "valid: a whole number 1..10"));
  assert_non_null(strstr(text, "valid: microseconds 0..1000 or auto"));
  assert_non_null(strstr(text, "env TEST_OPTIONS_COUNT, default 3\n"));
  assert_non_null(strstr(text, "env TEST_OPTIONS_VERBOSE\n"));
  free(text);
}

static void test_print_shows_effective_values(void **state) {
  (void)state;
  settings s;
  uint32_t given;
  assert_int_equal(
      parse(&s, &given, "--verbose", "--id=4", "--id=2", "--timeout=1.5", NULL),
      0);
  char *text = capture(false, &s);
  assert_string_equal(text, "name = anon\n"
                            "verbose = true\n"
                            "count = 3\n"
                            "bytes = 4096\n"
                            "timeout = 1.5\n"
                            "poll = -1\n"
                            "id = 4,2\n"
                            "wide = 0\n");
  free(text);
  options_free(&table, &s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_defaults, teardown),
      cmocka_unit_test_teardown(test_name_equals_value_and_separate_value,
                                teardown),
      cmocka_unit_test_teardown(test_bool_alone_and_with_values, teardown),
      cmocka_unit_test_teardown(test_bad_integers, teardown),
      cmocka_unit_test_teardown(test_out_of_range, teardown),
      cmocka_unit_test_teardown(test_seconds_and_microseconds, teardown),
      cmocka_unit_test_teardown(test_unknown_flag_and_stray_word, teardown),
      cmocka_unit_test_teardown(test_missing_value, teardown),
      cmocka_unit_test_teardown(test_sources_in_order, teardown),
      cmocka_unit_test_teardown(test_list_is_replaced_by_a_later_source,
                                teardown),
      cmocka_unit_test_teardown(test_commands, teardown),
      cmocka_unit_test_teardown(test_help_lists_every_row, teardown),
      cmocka_unit_test_teardown(test_print_shows_effective_values, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
