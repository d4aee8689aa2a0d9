/* test_auth.c: the auth file, credentials, the role table and reloads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/auth.h"

#define HASHED_TOKEN_SHA256                                                    \
  "550643f45e135491c47bea94823b37278d5dd91375b285d44001d005d1603a33"

static const char good_file[] = "# jobhub credentials\n"
                                "\n"
                                "admin bearer admin-token\n"
                                "  client\tbearer client-token   \n"
                                "worker bearer worker-token\r\n"
                                "client bearer sha256:" HASHED_TOKEN_SHA256 "\n"
                                "client basic alice:open sesame\n"
                                "worker cert worker-1\n"
                                "admin cert Ops Team\n";

static auth_credentials *parse(const char *text, char *err, size_t size) {
  return auth_credentials_parse(text, strlen(text), "creds", err, size);
}

static void test_good_file_parses(void **state) {
  (void)state;
  char err[256] = "";
  auth_credentials *set = parse(good_file, err, sizeof(err));
  assert_non_null(set);
  assert_int_equal(auth_credentials_count(set), 7);
  auth_credentials_free(set);
  set = parse("", err, sizeof(err));
  assert_non_null(set);
  assert_int_equal(auth_credentials_count(set), 0);
  auth_credentials_free(set);
}

static void test_bad_lines_name_the_line(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *error;
  } cases[] = {
      {"boss bearer x\n", "creds:1: unknown role \"boss\""},
      {"# ok\nadmin\n", "creds:2: missing kind"},
      {"admin token x\n", "creds:1: unknown kind \"token\""},
      {"\n\nadmin bearer\n", "creds:3: missing token value"},
      {"admin bearer two words\n", "creds:1: a bearer token has no white"},
      {"admin bearer sha256:abc\n", "creds:1: sha256: needs 64 hex digits"},
      {"admin bearer sha256:" HASHED_TOKEN_SHA256 "0\n",
       "creds:1: sha256: needs 64 hex"},
      {"admin bearer sha256:"
       "zz0643f45e135491c47bea94823b37278d5dd91375b285d44001d005d1603a33\n",
       "creds:1: sha256: needs 64 hex"},
      {"admin basic alice\n", "creds:1: basic needs USER:PASSWORD"},
      {"admin basic :pw\n", "creds:1: basic needs USER:PASSWORD"},
      {"admin basic\n", "creds:1: missing USER:PASSWORD value"},
      {"admin cert\n", "creds:1: missing certificate CN value"},
      {"admin bearer t\nclient bearer t\n",
       "creds:2: the same credential is listed earlier"},
      {"admin bearer hashed-token\nclient bearer sha256:" HASHED_TOKEN_SHA256
       "\n",
       "creds:2: the same credential"},
      {"Admin bearer x\n", "creds:1: unknown role"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[256] = "";
    auth_credentials *set = parse(cases[i].text, err, sizeof(err));
    if (set != NULL ||
        strncmp(err, cases[i].error, strlen(cases[i].error)) != 0) {
      print_error("case %zu: got \"%s\", want \"%s...\"\n", i, err,
                  cases[i].error);
      fail();
    }
  }
}

static void test_errors_never_quote_secrets(void **state) {
  (void)state;
  char err[256] = "";
  assert_null(parse("admin bearer sha256:TOPSECRET\n", err, sizeof(err)));
  assert_null(strstr(err, "TOPSECRET"));
  assert_null(parse("admin basic TOPSECRET\n", err, sizeof(err)));
  assert_null(strstr(err, "TOPSECRET"));
  assert_null(parse("admin bearer TOP SECRET\n", err, sizeof(err)));
  assert_null(strstr(err, "TOP"));
}

static void test_identify(void **state) {
  (void)state;
  char err[256] = "";
  auth_credentials *set = parse(good_file, err, sizeof(err));
  assert_non_null(set);
  static const struct {
    const char *authorization;
    const char *cert_cn;
    auth_identity identity;
    auth_role role;
  } cases[] = {
      {NULL, NULL, AUTH_MISSING, 0},
      {"Bearer admin-token", NULL, AUTH_IDENTIFIED, AUTH_ROLE_ADMIN},
      {"bearer   client-token", NULL, AUTH_IDENTIFIED, AUTH_ROLE_CLIENT},
      {"BEARER worker-token", NULL, AUTH_IDENTIFIED, AUTH_ROLE_WORKER},
      {"Bearer hashed-token", NULL, AUTH_IDENTIFIED, AUTH_ROLE_CLIENT},
      {"Bearer " HASHED_TOKEN_SHA256, NULL, AUTH_INVALID, 0},
      {"Bearer sha256:" HASHED_TOKEN_SHA256, NULL, AUTH_INVALID, 0},
      {"Bearer admin-token2", NULL, AUTH_INVALID, 0},
      {"Bearer admin-toke", NULL, AUTH_INVALID, 0},
      {"Bearer ", NULL, AUTH_INVALID, 0},
      {"Bearer", NULL, AUTH_INVALID, 0},
      {"Bearerx admin-token", NULL, AUTH_INVALID, 0},
      {"admin-token", NULL, AUTH_INVALID, 0},
      {"", NULL, AUTH_INVALID, 0},
      {"Basic YWxpY2U6b3BlbiBzZXNhbWU=", NULL, AUTH_IDENTIFIED,
       AUTH_ROLE_CLIENT},
      {"Basic YWxpY2U6d3Jvbmc=", NULL, AUTH_INVALID, 0},
      {"Basic bm9jb2xvbg==", NULL, AUTH_INVALID, 0},
      {"Basic !!!", NULL, AUTH_INVALID, 0},
      /* A basic credential is not a bearer token, nor a CN. */
      {"Bearer alice:open sesame", NULL, AUTH_INVALID, 0},
      {NULL, "alice:open sesame", AUTH_INVALID, 0},
      {NULL, "worker-1", AUTH_IDENTIFIED, AUTH_ROLE_WORKER},
      {NULL, "Ops Team", AUTH_IDENTIFIED, AUTH_ROLE_ADMIN},
      {NULL, "worker-2", AUTH_INVALID, 0},
      {NULL, "admin-token", AUTH_INVALID, 0},
      /* The header, when present, decides alone. */
      {"Bearer nope", "worker-1", AUTH_INVALID, 0},
      {"Bearer client-token", "Ops Team", AUTH_IDENTIFIED, AUTH_ROLE_CLIENT},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    auth_role role = (auth_role)99;
    auth_identity identity = auth_credentials_identify(
        set, cases[i].authorization, cases[i].cert_cn, &role);
    if (identity != cases[i].identity ||
        (identity == AUTH_IDENTIFIED && role != cases[i].role)) {
      print_error("case %zu: identity %d role %d\n", i, identity, role);
      fail();
    }
  }
  auth_credentials_free(set);
}

/* One method of every class SPEC lists, and what each role may do. */
static void test_role_table(void **state) {
  (void)state;
  static const struct {
    const char *service;
    const char *method;
    bool client, worker;
  } cases[] = {
      {"jobhub.v1.Jobs", "Submit", true, false},
      {"jobhub.v1.Jobs", "Get", true, false},
      {"jobhub.v1.Jobs", "List", true, false},
      {"jobhub.v1.Jobs", "GetResult", true, false},
      {"jobhub.v1.Jobs", "Cancel", true, false},
      {"jobhub.v1.Jobs", "Watch", true, false},
      {"jobhub.v1.Jobs", "Reset", true, false},
      {"jobhub.v1.Jobs", "History", true, false},
      {"jobhub.v1.Series", "Run", true, false},
      {"jobhub.v1.Series", "ReportPoints", false, true},
      {"jobhub.v1.Series", "Add", false, false},
      {"jobhub.v1.Series", "List", false, false},
      {"jobhub.v1.Series", "Get", false, false},
      {"jobhub.v1.Series", "Delete", false, false},
      {"jobhub.v1.Engine", "CreateInstance", true, false},
      {"jobhub.v1.Engine", "Fit", true, false},
      {"jobhub.v1.Engine", "WatchState", true, false},
      {"jobhub.v1.Outputs", "Subscribe", true, false},
      {"jobhub.v1.Outputs", "Add", false, false},
      {"jobhub.v1.Outputs", "List", false, false},
      {"jobhub.v1.Outputs", "Delete", false, false},
      {"jobhub.v1.Workers", "List", true, false},
      {"jobhub.v1.Workers", "Stats", true, false},
      {"jobhub.v1.Workers", "GetSubjectState", true, false},
      {"jobhub.v1.Workers", "Register", false, true},
      {"jobhub.v1.Workers", "Connect", false, true},
      {"jobhub.v1.Workers", "Lease", false, true},
      {"jobhub.v1.Workers", "Heartbeat", false, true},
      {"jobhub.v1.Workers", "Progress", false, true},
      {"jobhub.v1.Workers", "Complete", false, true},
      {"jobhub.v1.Workers", "Fail", false, true},
      {"jobhub.v1.Workers", "Add", false, false},
      {"jobhub.v1.Workers", "Delete", false, false},
      {"jobhub.v1.Hub", "Status", true, false},
      {"jobhub.v1.Hub", "GetSettings", false, false},
      {"jobhub.v1.Hub", "UpdateSettings", false, false},
      {"jobhub.v1.Hub", "Log", false, false},
      {"jobhub.v1.Hub", "Clients", false, false},
      {"other.v1.Thing", "Do", false, false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *service = cases[i].service;
    const char *method = cases[i].method;
    if (!auth_role_allows(AUTH_ROLE_ADMIN, service, method) ||
        auth_role_allows(AUTH_ROLE_CLIENT, service, method) !=
            cases[i].client ||
        auth_role_allows(AUTH_ROLE_WORKER, service, method) !=
            cases[i].worker) {
      print_error("case %zu: %s/%s\n", i, service, method);
      fail();
    }
  }
  assert_true(auth_method_is_public("grpc.health.v1.Health"));
  assert_true(auth_method_is_public("grpc.reflection.v1.ServerReflection"));
  assert_true(
      auth_method_is_public("grpc.reflection.v1alpha.ServerReflection"));
  assert_false(auth_method_is_public("jobhub.v1.Jobs"));
}

static void write_file(const char *path, const char *text) {
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  assert_int_equal(fputs(text, file) >= 0, 1);
  assert_int_equal(fclose(file), 0);
}

/* Makes a temporary file (path: a "/tmp/test_auth_XXXXXX" buffer, filled
 * in) holding text. */
static void temp_file(char *path, const char *text) {
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_file(path, text);
}

static rpc_status_code check(auth_guard *guard, const char *service,
                             const char *method, const char *authorization,
                             char *message, size_t size) {
  auth_request request = {service, method, authorization, NULL, "127.0.0.1"};
  return auth_guard_check(guard, &request, message, size);
}

/* A call the guard is asked about, and its answer. */
typedef struct check_case {
  const char *service;
  const char *method;
  const char *authorization;
  rpc_status_code code;
  const char *message; /* the whole status message, or NULL: any */
} check_case;

/* Asks the guard about each case; fails on the first wrong answer. */
static void expect_checks(auth_guard *guard, const check_case *cases,
                          size_t count) {
  for (size_t i = 0; i < count; i++) {
    char message[256] = "";
    rpc_status_code code =
        check(guard, cases[i].service, cases[i].method, cases[i].authorization,
              message, sizeof(message));
    if (code != cases[i].code ||
        (cases[i].message != NULL && strcmp(message, cases[i].message) != 0)) {
      print_error("case %zu: %s/%s with %s: %d \"%s\"\n", i, cases[i].service,
                  cases[i].method,
                  cases[i].authorization ? cases[i].authorization : "(none)",
                  code, message);
      fail();
    }
  }
}

static void test_guard_checks_and_reloads(void **state) {
  (void)state;
  char path[] = "/tmp/test_auth_XXXXXX";
  temp_file(path, "client bearer one\n");
  char err[256] = "";
  auth_guard *guard = auth_guard_open(path, err, sizeof(err));
  assert_non_null(guard);
  assert_int_equal(auth_guard_count(guard), 1);
  static const check_case at_start[] = {
      {"jobhub.v1.Jobs", "Submit", NULL, RPC_STATUS_UNAUTHENTICATED,
       "missing credentials"},
      {"jobhub.v1.Jobs", "Submit", "Bearer two", RPC_STATUS_UNAUTHENTICATED,
       "invalid credentials"},
      {"jobhub.v1.Jobs", "Submit", "Bearer one", RPC_STATUS_OK, NULL},
      {"jobhub.v1.Workers", "Add", "Bearer one", RPC_STATUS_PERMISSION_DENIED,
       "role client may not call jobhub.v1.Workers/Add"},
      {"grpc.health.v1.Health", "Check", NULL, RPC_STATUS_OK, NULL}};
  expect_checks(guard, at_start, sizeof(at_start) / sizeof(at_start[0]));

  /* A good file replaces the set. */
  write_file(path, "admin bearer two\n\nworker bearer three\n");
  assert_int_equal(auth_guard_reload(guard, err, sizeof(err)), 0);
  assert_int_equal(auth_guard_count(guard), 2);
  static const check_case after_reload[] = {
      {"jobhub.v1.Jobs", "Submit", "Bearer one", RPC_STATUS_UNAUTHENTICATED,
       NULL},
      {"jobhub.v1.Workers", "Add", "Bearer two", RPC_STATUS_OK, NULL}};
  expect_checks(guard, after_reload,
                sizeof(after_reload) / sizeof(after_reload[0]));

  /* A bad one keeps it, and says where. */
  write_file(path, "admin bearer four\nnobody bearer five\n");
  assert_int_equal(auth_guard_reload(guard, err, sizeof(err)), -1);
  char where[300];
  snprintf(where, sizeof(where), "%s:2: unknown role", path);
  assert_memory_equal(err, where, strlen(where));
  assert_int_equal(auth_guard_count(guard), 2);
  static const check_case after_bad_file[] = {
      {"jobhub.v1.Workers", "Add", "Bearer two", RPC_STATUS_OK, NULL},
      {"jobhub.v1.Workers", "Add", "Bearer four", RPC_STATUS_UNAUTHENTICATED,
       NULL}};
  expect_checks(guard, after_bad_file,
                sizeof(after_bad_file) / sizeof(after_bad_file[0]));

  /* So does a file that is gone. */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(auth_guard_reload(guard, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "cannot read auth file"));
  static const check_case after_gone_file[] = {
      {"jobhub.v1.Workers", "Lease", "Bearer three", RPC_STATUS_OK, NULL}};
  expect_checks(guard, after_gone_file,
                sizeof(after_gone_file) / sizeof(after_gone_file[0]));
  auth_guard_free(guard);

  assert_null(auth_guard_open(path, err, sizeof(err)));
}

typedef struct checker {
  auth_guard *guard;
  int failures; /* checks whose answer no file in force would give */
} checker;

static void *check_repeatedly(void *arg) {
  checker *c = arg;
  for (int i = 0; i < 20000; i++) {
    char message[256];
    /* "Bearer stay" is in every file; "Bearer come-go" in every other. */
    rpc_status_code stay = check(c->guard, "jobhub.v1.Jobs", "Get",
                                 "Bearer stay", message, sizeof(message));
    rpc_status_code other = check(c->guard, "jobhub.v1.Jobs", "Get",
                                  "Bearer come-go", message, sizeof(message));
    if (stay != RPC_STATUS_OK ||
        (other != RPC_STATUS_OK && other != RPC_STATUS_UNAUTHENTICATED)) {
      c->failures++;
    }
  }
  return NULL;
}

/* Loop threads check while SIGHUP reloads: every check sees one whole
 * set (run under TSan too: ci/build tsan). */
static void test_checks_run_while_reloading(void **state) {
  (void)state;
  char path[] = "/tmp/test_auth_XXXXXX";
  temp_file(path, "client bearer stay\n");
  char err[256] = "";
  auth_guard *guard = auth_guard_open(path, err, sizeof(err));
  assert_non_null(guard);
  checker checkers[4];
  pthread_t threads[4];
  for (size_t i = 0; i < 4; i++) {
    checkers[i] = (checker){guard, 0};
    assert_int_equal(
        pthread_create(&threads[i], NULL, check_repeatedly, &checkers[i]), 0);
  }
  for (int i = 0; i < 200; i++) {
    write_file(path, i % 2 ? "client bearer stay\n"
                           : "client bearer stay\nclient bearer come-go\n");
    assert_int_equal(auth_guard_reload(guard, err, sizeof(err)), 0);
  }
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(checkers[i].failures, 0);
  }
  auth_guard_free(guard);
  unlink(path);
}

static void test_loopback_addresses(void **state) {
  (void)state;
  assert_true(auth_listen_is_loopback("127.0.0.1:50051"));
  assert_true(auth_listen_is_loopback("127.1.2.3:0"));
  assert_true(auth_listen_is_loopback("localhost:50051"));
  assert_true(auth_listen_is_loopback("[::1]:50051"));
  assert_false(auth_listen_is_loopback("0.0.0.0:50051"));
  assert_false(auth_listen_is_loopback("[::]:50051"));
  assert_false(auth_listen_is_loopback("10.0.0.1:50051"));
  assert_false(auth_listen_is_loopback("127.0.0.1.example.com:1"));
  assert_false(auth_listen_is_loopback("128.0.0.1:1"));
  assert_false(auth_listen_is_loopback(":50051"));
  assert_false(auth_listen_is_loopback("example.com:50051"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_file_parses),
      cmocka_unit_test(test_bad_lines_name_the_line),
      cmocka_unit_test(test_errors_never_quote_secrets),
      cmocka_unit_test(test_identify),
      cmocka_unit_test(test_role_table),
      cmocka_unit_test(test_guard_checks_and_reloads),
      cmocka_unit_test(test_checks_run_while_reloading),
      cmocka_unit_test(test_loopback_addresses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
