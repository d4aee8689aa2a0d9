/* config.c: the option table and its sources (defaults, INI file,
 * environment, flags). */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "rpc/log.h"
#include "rpc/socket.h"

typedef enum option_type {
  OPTION_STRING,
  OPTION_UNSIGNED,
  OPTION_BYTES,
  OPTION_SECONDS,
  OPTION_MICROSECONDS, /* >= 0, unlike seconds */
  OPTION_BOOL,         /* --name alone means true */
} option_type;

typedef struct option {
  const char *name; /* flag --name, env JOBHUB_NAME, INI key name */
  option_type type;
  size_t offset;
  const char *default_value; /* NULL: unset */
  /* The valid range of numbers, shown by --help; out of it is a usage
   * error. Seconds are above 0 and at most max; microseconds 0..max. */
  uint64_t max;
  const char *help;
  uint64_t min; /* whole numbers; last so that rows may leave it out (0) */
} option;

#define FIELD(member) offsetof(jobhubd_config, member)

static const option options[] = {
    {"listen", OPTION_STRING, FIELD(listen), "127.0.0.1:50051", 0,
     "address to serve gRPC on, host:port (port 0: any free port)"},
    {"threads", OPTION_UNSIGNED, FIELD(threads), "0", 1024,
     "event-loop threads (0: one per CPU the process may use)"},
    {"tls-cert", OPTION_STRING, FIELD(tls_cert), NULL, 0,
     "PEM certificate chain: enables TLS (cleartext is then refused "
     "unless --allow-plaintext)"},
    {"tls-key", OPTION_STRING, FIELD(tls_key), NULL, 0,
     "PEM private key of --tls-cert"},
    {"tls-client-ca", OPTION_STRING, FIELD(tls_client_ca), NULL, 0,
     "PEM CA: TLS clients must present a certificate it signed (mTLS)"},
    {"allow-plaintext", OPTION_BOOL, FIELD(allow_plaintext), "false", 0,
     "with TLS, also serve cleartext h2c on the port (it bypasses "
     "--tls-client-ca): true or false"},
    {"max-receive-message-bytes", OPTION_BYTES,
     FIELD(max_receive_message_bytes), "4194304", UINT32_MAX,
     "largest request message; larger ones get RESOURCE_EXHAUSTED", 1},
    {"max-concurrent-streams", OPTION_UNSIGNED, FIELD(max_concurrent_streams),
     "100", INT32_MAX, "HTTP/2 streams one connection may have open", 1},
    {"max-header-bytes", OPTION_UNSIGNED, FIELD(max_header_bytes), "16384",
     INT32_MAX,
     "largest request header list (RFC 7540 size; a gRPC call needs a few "
     "hundred bytes)",
     1024},
    {"max-stream-output-bytes", OPTION_BYTES, FIELD(max_stream_output_bytes),
     "8388608", SIZE_MAX,
     "response bytes a streaming call may have queued for a client that "
     "does not read; past it the call ends with RESOURCE_EXHAUSTED (one "
     "message always fits an empty queue)",
     65536},
    {"max-connection-output-bytes", OPTION_BYTES,
     FIELD(max_connection_output_bytes), "67108864", SIZE_MAX,
     "response bytes one connection may have queued; an answer that would "
     "pass it (unary too) gets RESOURCE_EXHAUSTED instead",
     65536},
    {"idle-timeout", OPTION_SECONDS, FIELD(idle_timeout), "300", 86400,
     "seconds a connection without calls stays open"},
    {"keepalive-interval", OPTION_SECONDS, FIELD(keepalive_interval), "60",
     86400, "seconds of silence before the server sends a PING"},
    {"keepalive-timeout", OPTION_SECONDS, FIELD(keepalive_timeout), "20", 86400,
     "seconds to wait for a PING ack (and for a TLS handshake)"},
    {"shutdown-grace", OPTION_SECONDS, FIELD(shutdown_grace), "10", 86400,
     "seconds in-flight calls get to finish on SIGTERM"},
    {"busy-poll-us", OPTION_MICROSECONDS, FIELD(busy_poll_us), "auto", 1000000,
     "microseconds a loop keeps polling after input before it sleeps: "
     "lower latency for some CPU (0: off; auto: 200 when the process has "
     "more CPUs than loop threads, else off)"},
    {"data", OPTION_STRING, FIELD(data_dir), "./var", 0,
     "folder of the embedded store (jobhub.db, SQLite in WAL mode)"},
    {"lease-seconds", OPTION_UNSIGNED, FIELD(lease_seconds), "60", 86400,
     "lease of a job submitted without lease_seconds", 1},
    {"max-attempts", OPTION_UNSIGNED, FIELD(max_attempts), "3", 1000,
     "attempts of a job submitted without max_attempts", 1},
    {"retry-backoff-ms", OPTION_UNSIGNED, FIELD(retry_backoff_ms), "1000",
     3600000,
     "wait before the second attempt; doubles each attempt, with jitter"},
    {"worker-timeout", OPTION_SECONDS, FIELD(worker_timeout), "30", 86400,
     "seconds a worker using only unary calls may be silent before it "
     "leaves the routing tables"},
    {"auth-file", OPTION_STRING, FIELD(auth_file), NULL, 0,
     "credentials and their roles, one a line: ROLE bearer TOKEN, ROLE "
     "bearer sha256:HEX, ROLE basic USER:PASSWORD, ROLE cert CN (ROLE: "
     "admin, client, worker); reloaded on SIGHUP"},
    {"no-auth", OPTION_BOOL, FIELD(no_auth), NULL, 0,
     "serve without credentials even on a non-loopback address (without "
     "it and --auth-file, only a loopback --listen starts)"},
    {"max-worker-capacity", OPTION_UNSIGNED, FIELD(max_worker_capacity), "1024",
     1000000,
     "largest capacity (Register, Connect) or Lease max_jobs a worker gets; "
     "more is clamped (and logged once per worker)"},
    {"port-file", OPTION_STRING, FIELD(port_file), NULL, 0,
     "write the bound port to this file once listening"},
    {"log-level", OPTION_STRING, FIELD(log_level), "info", 0,
     "debug, info, warn or error"},
    {"config", OPTION_STRING, FIELD(config_file), NULL, 0,
     "INI file with a [jobhubd] section of these options"},
};

#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

/* The environment variable of an option: JOBHUB_ and the name in capitals,
 * '-' as '_'. */
static void env_name(const option *opt, char *out, size_t out_size) {
  snprintf(out, out_size, "JOBHUB_%s", opt->name);
  for (char *p = out; *p; p++) {
    *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  }
}

static const option *find_option(const char *name, size_t len) {
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (strlen(options[i].name) == len &&
        strncmp(options[i].name, name, len) == 0) {
      return &options[i];
    }
  }
  return NULL;
}

/* The member of config that opt describes: offsetof keeps it aligned. */
static void *field_of(const jobhubd_config *config, const option *opt) {
  return (char *)config + opt->offset;
}

/* The valid values of opt in words, for --help and messages. */
static void describe_range(const option *opt, char *out, size_t out_size) {
  switch (opt->type) {
  case OPTION_STRING:
    snprintf(out, out_size, "text");
    break;
  case OPTION_BOOL:
    snprintf(out, out_size, "true or false");
    break;
  case OPTION_UNSIGNED:
  case OPTION_BYTES:
    snprintf(out, out_size, "a whole number %llu..%llu",
             (unsigned long long)opt->min, (unsigned long long)opt->max);
    break;
  case OPTION_SECONDS:
    snprintf(out, out_size, "seconds above 0, at most %llu",
             (unsigned long long)opt->max);
    break;
  case OPTION_MICROSECONDS:
    snprintf(out, out_size, "microseconds 0..%llu or auto",
             (unsigned long long)opt->max);
    break;
  }
}

/* Parses and stores one value; source names where it came from. */
static int set_option(jobhubd_config *config, const option *opt,
                      const char *value, const char *source, char *err,
                      size_t err_size) {
  void *field = field_of(config, opt);
  char *end = NULL;
  errno = 0;
  switch (opt->type) {
  case OPTION_STRING: {
    char *copy = strdup(value);
    if (copy == NULL) {
      snprintf(err, err_size, "out of memory");
      return -1;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return 0;
  }
  case OPTION_UNSIGNED:
  case OPTION_BYTES: {
    if (!isdigit((unsigned char)value[0])) {
      goto invalid;
    }
    unsigned long long number = strtoull(value, &end, 10);
    if (errno != 0 || *end != '\0' || number < opt->min || number > opt->max) {
      goto invalid;
    }
    if (opt->type == OPTION_BYTES) {
      *(uint64_t *)field = number;
    } else {
      *(unsigned *)field = (unsigned)number;
    }
    return 0;
  }
  case OPTION_SECONDS:
  case OPTION_MICROSECONDS: {
    if (opt->type == OPTION_MICROSECONDS && strcmp(value, "auto") == 0) {
      *(double *)field = -1; /* the daemon decides */
      return 0;
    }
    double number = strtod(value, &end);
    bool zero_ok = opt->type == OPTION_MICROSECONDS;
    if (errno != 0 || end == value || *end != '\0' || !isfinite(number) ||
        number < 0 || (number == 0 && !zero_ok) || number > (double)opt->max) {
      goto invalid;
    }
    *(double *)field = number;
    return 0;
  }
  case OPTION_BOOL:
    if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
        strcmp(value, "yes") == 0) {
      *(bool *)field = true;
    } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
               strcmp(value, "no") == 0) {
      *(bool *)field = false;
    } else {
      goto invalid;
    }
    return 0;
  }
invalid:;
  char range[96];
  describe_range(opt, range, sizeof(range));
  snprintf(err, err_size,
           "invalid value \"%s\" for --%s (from %s): expected %s", value,
           opt->name, source, range);
  return -1;
}

typedef struct ini_context {
  jobhubd_config *config;
  char *err;
  size_t err_size;
  bool failed;
} ini_context;

static int on_ini_entry(void *user, const char *section, const char *name,
                        const char *value) {
  ini_context *ctx = user;
  if (strcmp(section, "jobhubd") != 0) {
    return 1; /* other programs' sections */
  }
  const option *opt = find_option(name, strlen(name));
  if (opt == NULL || strcmp(opt->name, "config") == 0) {
    snprintf(ctx->err, ctx->err_size, "unknown option \"%s\" in %s", name,
             ctx->config->config_file);
    ctx->failed = true;
    return 0;
  }
  if (set_option(ctx->config, opt, value, ctx->config->config_file, ctx->err,
                 ctx->err_size) != 0) {
    ctx->failed = true;
    return 0;
  }
  return 1;
}

static void print_help(void) {
  printf("Usage: jobhubd [OPTION]...\n"
         "The jobhub hub: gRPC over HTTP/2 (h2c and TLS on one port).\n\n");
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    char flag[64];
    char env[64];
    snprintf(flag, sizeof(flag), "--%s%s", options[i].name,
             options[i].type == OPTION_BOOL ? "[=BOOL]" : "=VALUE");
    env_name(&options[i], env, sizeof(env));
    printf("  %-34s %s\n", flag, options[i].help);
    if (options[i].type != OPTION_STRING) {
      char range[96];
      describe_range(&options[i], range, sizeof(range));
      printf("  %-34s valid: %s\n", "", range);
    }
    printf("  %-34s env %s%s%s\n", "", env,
           options[i].default_value ? ", default " : "",
           options[i].default_value ? options[i].default_value : "");
  }
  printf("  %-34s %s\n  %-34s %s\n  %-34s %s\n", "--print-config",
         "print the effective configuration and exit", "--version",
         "print the version and exit", "--help", "print this help and exit");
  printf("\nExit codes: 0 clean shutdown, 1 start-up failure, 2 usage error.\n"
         "SIGTERM or SIGINT: stop accepting, GOAWAY, let calls finish.\n"
         "SIGHUP: read --auth-file again (a bad file keeps the old one).\n");
}

static void print_config(const jobhubd_config *config) {
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const void *field = field_of(config, &options[i]);
    switch (options[i].type) {
    case OPTION_STRING: {
      const char *value = *(char *const *)field;
      printf("%s = %s\n", options[i].name, value ? value : "");
      break;
    }
    case OPTION_UNSIGNED:
      printf("%s = %u\n", options[i].name, *(const unsigned *)field);
      break;
    case OPTION_BYTES:
      printf("%s = %llu\n", options[i].name,
             (unsigned long long)*(const uint64_t *)field);
      break;
    case OPTION_SECONDS:
    case OPTION_MICROSECONDS:
      printf("%s = %g\n", options[i].name, *(const double *)field);
      break;
    case OPTION_BOOL:
      printf("%s = %s\n", options[i].name,
             *(const bool *)field ? "true" : "false");
      break;
    }
  }
}

/* Flags: --name=value or --name value. Returns the index of the next
 * argument, or -1 with a message in err. */
static int parse_flag(jobhubd_config *config, int argc, char **argv, int i,
                      char *err, size_t err_size) {
  const char *arg = argv[i] + 2;
  const char *equals = strchr(arg, '=');
  size_t name_len = equals ? (size_t)(equals - arg) : strlen(arg);
  const option *opt = find_option(arg, name_len);
  if (opt == NULL) {
    snprintf(err, err_size, "unknown option %s (see --help)", argv[i]);
    return -1;
  }
  const char *value = equals ? equals + 1 : NULL;
  if (value == NULL && opt->type == OPTION_BOOL) {
    value = "true"; /* --allow-plaintext alone */
  } else if (value == NULL) {
    if (i + 1 >= argc) {
      snprintf(err, err_size, "option --%s needs a value", opt->name);
      return -1;
    }
    value = argv[++i];
  }
  return set_option(config, opt, value, "the command line", err, err_size) == 0
             ? i + 1
             : -1;
}

jobhubd_config_result jobhubd_config_load(jobhubd_config *config, int argc,
                                          char **argv, char *err,
                                          size_t err_size) {
  memset(config, 0, sizeof(*config));
  bool print = false;
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (options[i].default_value != NULL &&
        set_option(config, &options[i], options[i].default_value, "defaults",
                   err, err_size) != 0) {
      return JOBHUBD_CONFIG_USAGE;
    }
  }
  /* The file is named by a flag or the environment, so find it first. */
  const char *file = getenv("JOBHUB_CONFIG");
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--config=", 9) == 0) {
      file = argv[i] + 9;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      file = argv[i + 1];
    }
  }
  if (file != NULL) {
    if (set_option(config, find_option("config", 6), file, "the command line",
                   err, err_size) != 0) {
      return JOBHUBD_CONFIG_USAGE;
    }
    ini_context ctx = {config, err, err_size, false};
    int rv = ini_parse(file, on_ini_entry, &ctx);
    if (ctx.failed) {
      return JOBHUBD_CONFIG_USAGE;
    }
    if (rv != 0) {
      snprintf(err, err_size,
               rv < 0 ? "cannot read config file %s"
                      : "syntax error in config file %s",
               file);
      return JOBHUBD_CONFIG_USAGE;
    }
  }
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    char env[64];
    env_name(&options[i], env, sizeof(env));
    const char *value = getenv(env);
    if (value != NULL &&
        set_option(config, &options[i], value, env, err, err_size) != 0) {
      return JOBHUBD_CONFIG_USAGE;
    }
  }
  for (int i = 1; i < argc;) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_help();
      return JOBHUBD_CONFIG_EXIT;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("jobhubd %s\n", JOBHUB_VERSION);
      return JOBHUBD_CONFIG_EXIT;
    }
    if (strcmp(argv[i], "--print-config") == 0) {
      print = true;
      i++;
      continue;
    }
    if (strncmp(argv[i], "--", 2) != 0) {
      snprintf(err, err_size, "unexpected argument %s (see --help)", argv[i]);
      return JOBHUBD_CONFIG_USAGE;
    }
    i = parse_flag(config, argc, argv, i, err, err_size);
    if (i < 0) {
      return JOBHUBD_CONFIG_USAGE;
    }
  }
  if ((config->tls_cert == NULL) != (config->tls_key == NULL)) {
    snprintf(err, err_size, "--tls-cert and --tls-key go together");
    return JOBHUBD_CONFIG_USAGE;
  }
  if (config->tls_client_ca != NULL && config->tls_cert == NULL) {
    snprintf(err, err_size, "--tls-client-ca needs --tls-cert and --tls-key");
    return JOBHUBD_CONFIG_USAGE;
  }
  if (config->auth_file != NULL && config->no_auth) {
    snprintf(err, err_size, "--auth-file and --no-auth exclude each other");
    return JOBHUBD_CONFIG_USAGE;
  }
  rpc_log_level level;
  if (rpc_log_level_parse(config->log_level, &level) != 0) {
    snprintf(err, err_size, "--log-level must be debug, info, warn or error");
    return JOBHUBD_CONFIG_USAGE;
  }
  char address_err[300];
  if (rpc_socket_check_address(config->listen, address_err,
                               sizeof(address_err)) != 0) {
    snprintf(err, err_size, "invalid value for --listen: %s", address_err);
    return JOBHUBD_CONFIG_USAGE;
  }
  if (print) {
    print_config(config);
    return JOBHUBD_CONFIG_EXIT;
  }
  return JOBHUBD_CONFIG_RUN;
}

void jobhubd_config_free(jobhubd_config *config) {
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (options[i].type == OPTION_STRING) {
      char **field = field_of(config, &options[i]);
      free(*field);
      *field = NULL;
    }
  }
}
