/* test_log.c: structured lines and the folding of repeated events, on a
 * fake clock, with the lines captured in a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/log.h"

static double fake_now; /* s */

static double fake_clock(void) { return fake_now; }

typedef struct capture {
  FILE *file;
  char text[65536];
} capture;

static int setup(void **state) {
  capture *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return -1;
  }
  c->file = tmpfile();
  if (c->file == NULL) {
    free(c);
    return -1;
  }
  fake_now = 1000.;
  rpc_log_set_clock(fake_clock);
  rpc_log_set_fold_interval(1.);
  rpc_log_set_level(RPC_LOG_INFO);
  rpc_log_set_fd(fileno(c->file));
  *state = c;
  return 0;
}

static int teardown(void **state) {
  capture *c = *state;
  rpc_log_set_fd(-1);
  rpc_log_set_clock(NULL);
  fclose(c->file);
  free(c);
  return 0;
}

/* Everything written so far, as text. */
static const char *captured(capture *c) {
  long size = lseek(fileno(c->file), 0, SEEK_CUR);
  assert_true(size >= 0 && (size_t)size < sizeof(c->text));
  ssize_t n = pread(fileno(c->file), c->text, (size_t)size, 0);
  assert_int_equal(n, size);
  c->text[n] = '\0';
  return c->text;
}

static size_t count(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(text, needle); p != NULL;
       p = strstr(p + 1, needle)) {
    n++;
  }
  return n;
}

static void test_plain_line_shape(void **state) {
  capture *c = *state;
  rpc_log(RPC_LOG_WARN, "thing_failed", "error=\"%s\" n=%d", "boom", 3);
  const char *text = captured(c);
  assert_non_null(strstr(text, "Z level=warn event=thing_failed "
                               "error=\"boom\" n=3\n"));
  assert_int_equal(count(text, "\n"), 1);
}

static void test_repeats_within_the_interval_are_folded(void **state) {
  capture *c = *state;
  for (int i = 0; i < 1000; i++) {
    rpc_log_folded(RPC_LOG_WARN, "accept_failed", "error=\"%s\"", "EMFILE");
    fake_now += 0.0005; /* 1000 lines in 0.5 s */
  }
  const char *text = captured(c);
  assert_int_equal(count(text, "event=accept_failed"), 1);
  assert_null(strstr(text, "repeated="));
  fake_now += 0.6; /* past the interval since the first line */
  rpc_log_folded(RPC_LOG_WARN, "accept_failed", "error=\"%s\"", "EMFILE");
  text = captured(c);
  assert_int_equal(count(text, "event=accept_failed"), 2);
  assert_non_null(
      strstr(text, "event=accept_failed error=\"EMFILE\" repeated=999\n"));
  /* The count starts again after a written line. */
  fake_now += 0.1;
  rpc_log_folded(RPC_LOG_WARN, "accept_failed", NULL);
  fake_now += 1.0;
  rpc_log_folded(RPC_LOG_WARN, "accept_failed", NULL);
  text = captured(c);
  assert_int_equal(count(text, "event=accept_failed"), 3);
  assert_non_null(strstr(text, "event=accept_failed repeated=1\n"));
}

static void test_at_most_one_line_per_interval(void **state) {
  capture *c = *state;
  /* 10 s of a line every millisecond: about one line a second. */
  for (int i = 0; i < 10000; i++) {
    rpc_log_folded(RPC_LOG_WARN, "flood", NULL);
    fake_now += 0.001;
  }
  size_t lines = count(captured(c), "event=flood");
  assert_true(lines >= 9 && lines <= 11);
}

static void test_events_fold_separately(void **state) {
  capture *c = *state;
  rpc_log_folded(RPC_LOG_INFO, "one", NULL);
  rpc_log_folded(RPC_LOG_INFO, "two", NULL);
  rpc_log_folded(RPC_LOG_INFO, "one", NULL);
  rpc_log_folded(RPC_LOG_INFO, "two", NULL);
  const char *text = captured(c);
  assert_int_equal(count(text, "event=one"), 1);
  assert_int_equal(count(text, "event=two"), 1);
  /* Plain lines are never folded. */
  rpc_log(RPC_LOG_INFO, "one", NULL);
  rpc_log(RPC_LOG_INFO, "one", NULL);
  assert_int_equal(count(captured(c), "event=one"), 3);
}

static void test_many_events_reuse_slots(void **state) {
  capture *c = *state;
  char name[32];
  for (int i = 0; i < 200; i++) {
    snprintf(name, sizeof(name), "event_%d", i);
    rpc_log_folded(RPC_LOG_INFO, name, NULL);
    fake_now += 0.001;
  }
  /* Each new event is written once, even past the number of slots. */
  assert_int_equal(count(captured(c), "event=event_"), 200);
}

static void test_level_and_interval_off(void **state) {
  capture *c = *state;
  rpc_log_folded(RPC_LOG_DEBUG, "quiet", NULL);
  assert_int_equal(count(captured(c), "event=quiet"), 0);
  rpc_log_set_fold_interval(0);
  for (int i = 0; i < 5; i++) {
    rpc_log_folded(RPC_LOG_INFO, "loud", NULL);
  }
  assert_int_equal(count(captured(c), "event=loud"), 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_plain_line_shape, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_repeats_within_the_interval_are_folded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_at_most_one_line_per_interval, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_events_fold_separately, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_many_events_reuse_slots, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_level_and_interval_off, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
