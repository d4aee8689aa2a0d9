/* config.c: jobhubd's option table, its INI file and the checks across
 * options; common/options parses flags and the environment. */
#include "server/config.h"

#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/options.h"
#include "rpc/log.h"
#include "rpc/socket.h"

#define FIELD(member) offsetof(jobhubd_config, member)

static const option_spec specs[] = {
    {"listen", OPTION_TEXT, FIELD(listen), "127.0.0.1:50051", 0,
     "address to serve gRPC on, host:port (port 0: any free port)"},
    {"threads", OPTION_UNSIGNED, FIELD(threads), "0", 1024,
     "event-loop threads (0: one per CPU the process may use)"},
    {"tls-cert", OPTION_TEXT, FIELD(tls_cert), NULL, 0,
     "PEM certificate chain: enables TLS (cleartext is then refused "
     "unless --allow-plaintext)"},
    {"tls-key", OPTION_TEXT, FIELD(tls_key), NULL, 0,
     "PEM private key of --tls-cert"},
    {"tls-client-ca", OPTION_TEXT, FIELD(tls_client_ca), NULL, 0,
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
    {"data", OPTION_TEXT, FIELD(data_dir), "./var", 0,
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
    {"auth-file", OPTION_TEXT, FIELD(auth_file), NULL, 0,
     "credentials and their roles, one a line: ROLE bearer TOKEN, ROLE "
     "bearer sha256:HEX, ROLE basic USER:PASSWORD, ROLE cert CN (ROLE: "
     "admin, client, worker); reloaded on SIGHUP"},
    {"no-auth", OPTION_BOOL, FIELD(no_auth), NULL, 0,
     "serve without credentials even on a non-loopback address (without "
     "it and --auth-file, only a loopback --listen starts)"},
    {"cors-origin", OPTION_TEXT_LIST, FIELD(cors_origins), NULL, 0,
     "a browser origin (https://app.example.com, or * for any) whose "
     "gRPC-Web and Connect calls get CORS answers; repeatable"},
    {"max-worker-capacity", OPTION_UNSIGNED, FIELD(max_worker_capacity), "1024",
     1000000,
     "largest capacity (Register, Connect) or Lease max_jobs a worker gets; "
     "more is clamped (and logged once per worker)"},
    {"port-file", OPTION_TEXT, FIELD(port_file), NULL, 0,
     "write the bound port to this file once listening"},
    {"log-level", OPTION_TEXT, FIELD(log_level), "info", 0,
     "debug, info, warn or error"},
    {"config", OPTION_TEXT, FIELD(config_file), NULL, 0,
     "INI file with a [jobhubd] section of these options"},
};

static const option_command commands[] = {
    {"print-config", "print the effective configuration and exit", false},
    {"version", "print the version and exit", true},
    {"help", "print this help and exit", true},
};
enum { PRINT_CONFIG = 1 << 0, VERSION = 1 << 1, HELP = 1 << 2 };

static const option_table table = OPTION_TABLE(specs, "JOBHUB_", commands);

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
  const option_spec *spec = options_find(&table, name, strlen(name));
  if (spec == NULL || strcmp(spec->name, "config") == 0) {
    snprintf(ctx->err, ctx->err_size, "unknown option \"%s\" in %s", name,
             ctx->config->config_file);
    ctx->failed = true;
    return 0;
  }
  if (options_set(ctx->config, spec, value, OPTION_FROM_FILE,
                  ctx->config->config_file, ctx->err, ctx->err_size) != 0) {
    ctx->failed = true;
    return 0;
  }
  return 1;
}

static void print_help(void) {
  printf("Usage: jobhubd [OPTION]...\n"
         "The jobhub hub: gRPC over HTTP/2 (h2c and TLS on one port).\n\n");
  options_help(&table, stdout);
  printf("\nExit codes: 0 clean shutdown, 1 start-up failure, 2 usage error.\n"
         "SIGTERM or SIGINT: stop accepting, GOAWAY, let calls finish.\n"
         "SIGHUP: read --auth-file again (a bad file keeps the old one).\n");
}

/* Reads the INI file named by --config or JOBHUB_CONFIG, if any. Returns
 * 0, or -1 with a message in err. */
static int load_file(jobhubd_config *config, int argc, char **argv, char *err,
                     size_t err_size) {
  /* The file is named by a flag or the environment, so find it first. */
  const char *file = getenv("JOBHUB_CONFIG");
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--config=", 9) == 0) {
      file = argv[i] + 9;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      file = argv[i + 1];
    }
  }
  if (file == NULL) {
    return 0;
  }
  if (options_set(config, options_find(&table, "config", 6), file,
                  OPTION_FROM_ARGS, "the command line", err, err_size) != 0) {
    return -1;
  }
  ini_context ctx = {config, err, err_size, false};
  int rv = ini_parse(file, on_ini_entry, &ctx);
  if (ctx.failed) {
    return -1;
  }
  if (rv != 0) {
    snprintf(err, err_size,
             rv < 0 ? "cannot read config file %s"
                    : "syntax error in config file %s",
             file);
    return -1;
  }
  return 0;
}

jobhubd_config_result jobhubd_config_load(jobhubd_config *config, int argc,
                                          char **argv, char *err,
                                          size_t err_size) {
  memset(config, 0, sizeof(*config));
  uint32_t given = 0;
  if (options_load_defaults(&table, config, err, err_size) != 0 ||
      load_file(config, argc, argv, err, err_size) != 0 ||
      options_load_env(&table, config, err, err_size) != 0 ||
      options_parse_args(&table, config, argc, argv, &given, err, err_size) !=
          0) {
    return JOBHUBD_CONFIG_USAGE;
  }
  if (given & HELP) {
    print_help();
    return JOBHUBD_CONFIG_EXIT;
  }
  if (given & VERSION) {
    printf("jobhubd %s\n", JOBHUB_VERSION);
    return JOBHUBD_CONFIG_EXIT;
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
  if (given & PRINT_CONFIG) {
    options_print(&table, config, stdout);
    return JOBHUBD_CONFIG_EXIT;
  }
  return JOBHUBD_CONFIG_RUN;
}

void jobhubd_config_free(jobhubd_config *config) {
  options_free(&table, config);
}
