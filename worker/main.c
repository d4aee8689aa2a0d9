/* main.c: jobhub-worker: connects to a hub with Workers.Connect and runs
 * the jobs it pushes with one module. Options come from the command line
 * or JOBHUB_WORKER_<NAME> environment variables (the table below).
 *
 * Exit codes: 0 after a drain (SIGTERM or SIGINT: no new jobs, running
 * ones finish, their results acked), 1 when start-up failed or a second
 * signal cut a drain short, 2 for a usage error. */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "common/options.h"
#include "rpc/log.h"
#include "rpc/socket.h"
#include "rpc/tls.h"
#include "worker/modules/modules.h"
#include "worker/worker.h"

/* Strings are owned (options_free). */
typedef struct worker_config {
  char *address;
  bool tls;
  char *cacert;
  char *cert;
  char *key;
  char *token;
  char *basic;
  char *client_id;
  char *hostname;
  unsigned pool_id;
  option_list job_type_ids;
  unsigned capacity;
  char *module;
  char *module_config;
  char *log_level;
} worker_config;

#define FIELD(f) offsetof(worker_config, f)

static const option_spec specs[] = {
    {"addr", OPTION_TEXT, FIELD(address), "127.0.0.1:50051", 0,
     "the hub, host:port"},
    {"tls", OPTION_BOOL, FIELD(tls), NULL, 0, "TLS (ALPN h2) instead of h2c"},
    {"cacert", OPTION_TEXT, FIELD(cacert), NULL, 0,
     "PEM file of the CAs the hub's certificate is checked against "
     "(default: the system's); implies --tls"},
    {"cert", OPTION_TEXT, FIELD(cert), NULL, 0,
     "PEM client certificate for mTLS (with --key); implies --tls"},
    {"key", OPTION_TEXT, FIELD(key), NULL, 0, "PEM private key of --cert"},
    {"token", OPTION_TEXT, FIELD(token), NULL, 0,
     "sent as \"authorization: Bearer TOKEN\" (also JOBHUB_TOKEN)"},
    {"basic", OPTION_TEXT, FIELD(basic), NULL, 0,
     "USER:PASSWORD sent as Basic authorization (also JOBHUB_BASIC)"},
    {"client-id", OPTION_TEXT, FIELD(client_id), NULL, 0,
     "this worker's client id (default: worker-HOSTNAME-PID)"},
    {"hostname", OPTION_TEXT, FIELD(hostname), NULL, 0,
     "the host name the hub lists (default: this host's)"},
    {"pool", OPTION_UNSIGNED, FIELD(pool_id), "0", 1023, "pool_id"},
    {"job-type", OPTION_UNSIGNED_LIST, FIELD(job_type_ids), "1", 1023,
     "a job_type_id it runs; repeat for more"},
    {"capacity", OPTION_UNSIGNED, FIELD(capacity), "1", 100000,
     "jobs it runs at once", 1},
    {"module", OPTION_TEXT, FIELD(module), "echo", 0, "the module (see below)"},
    {"module-config", OPTION_TEXT, FIELD(module_config), NULL, 0,
     "the module's setting: for exec, the command (run with /bin/sh -c)"},
    {"log-level", OPTION_TEXT, FIELD(log_level), "info", 0,
     "debug, info, warn or error"},
};

static const option_command commands[] = {
    {"help", "print this help and exit", true},
};
enum { HELP = 1 << 0 };

static const option_table table =
    OPTION_TABLE(specs, "JOBHUB_WORKER_", commands);

static void usage(FILE *out) {
  fprintf(out, "usage: jobhub-worker [OPTIONS]\n\n"
               "Runs the jobs a jobhub hub pushes over Workers.Connect.\n\n");
  options_help(&table, out);
  fprintf(out,
          "\nModules: %s.\n\n"
          "Exit codes: 0 drained after SIGTERM/SIGINT, 1 start-up "
          "failed or a second signal, 2 usage error.\n",
          module_names);
}

/* Sets the text option name from the environment variable env, if set.
 * Returns 0, or -1 with a message in err (no memory). */
static int text_from_env(worker_config *config, const char *name,
                         const char *env, char *err, size_t err_size) {
  const char *value = getenv(env);
  if (value == NULL) {
    return 0;
  }
  const option_spec *spec = options_find(&table, name, strlen(name));
  return options_set(config, spec, value, OPTION_FROM_ENV, env, err, err_size);
}

/* Defaults, then the environment, then the command line. Returns 0, 1 for
 * --help, or -1 with a message in err. The caller frees config with
 * options_free in every case. */
static int load_config(worker_config *config, int argc, char **argv, char *err,
                       size_t err_size) {
  memset(config, 0, sizeof(*config));
  uint32_t given = 0;
  if (options_load_defaults(&table, config, err, err_size) != 0 ||
      options_load_env(&table, config, err, err_size) != 0 ||
      options_parse_args(&table, config, argc, argv, &given, err, err_size) !=
          0) {
    return -1;
  }
  if (given & HELP) {
    return 1;
  }
  char address_err[300];
  if (rpc_socket_check_address(config->address, address_err,
                               sizeof(address_err)) != 0) {
    snprintf(err, err_size, "invalid value for --addr: %s", address_err);
    return -1;
  }
  if (config->cacert != NULL || config->cert != NULL) {
    config->tls = true;
  }
  if ((config->cert == NULL) != (config->key == NULL)) {
    snprintf(err, err_size, "--cert and --key go together");
    return -1;
  }
  /* The variables the CLI reads too, below the worker's own. */
  if (config->token == NULL && config->basic == NULL) {
    if (text_from_env(config, "token", "JOBHUB_TOKEN", err, err_size) != 0 ||
        (config->token == NULL &&
         text_from_env(config, "basic", "JOBHUB_BASIC", err, err_size) != 0)) {
      return -1;
    }
  }
  if (config->token != NULL && config->basic != NULL) {
    snprintf(err, err_size, "--token and --basic exclude each other");
    return -1;
  }
  if (config->basic != NULL && strchr(config->basic, ':') == NULL) {
    snprintf(err, err_size, "--basic needs USER:PASSWORD");
    return -1;
  }
  return 0;
}

typedef struct run_state {
  worker *w;
  int signals;
  int exit_code;
} run_state;

static void on_stopped(worker *w, void *arg) {
  (void)w;
  (void)arg;
  ev_break(EV_DEFAULT, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *watcher, int events) {
  (void)events;
  run_state *state = watcher->data;
  if (state->signals++ == 0) {
    worker_drain(state->w, on_stopped, state);
    return;
  }
  rpc_log(RPC_LOG_WARN, "worker_stopped_early",
          "reason=\"a second signal: running jobs are abandoned\"");
  state->exit_code = 1;
  ev_break(loop, EVBREAK_ALL);
}

/* Runs the worker that config describes; returns the exit code. */
static int run(const worker_config *config) {
  char err[512];
  rpc_log_level level;
  if (rpc_log_level_parse(config->log_level, &level) != 0) {
    fprintf(stderr, "jobhub-worker: unknown --log-level \"%s\"\n",
            config->log_level);
    return 2;
  }
  rpc_log_set_level(level);
  const worker_module *module = module_find(config->module);
  if (module == NULL) {
    fprintf(stderr, "jobhub-worker: unknown --module \"%s\" (one of %s)\n",
            config->module, module_names);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* TLS writes through write(2) */
  char host[HOST_NAME_MAX + 1] = "localhost";
  (void)gethostname(host, sizeof(host));
  host[sizeof(host) - 1] = '\0';
  char client_id[HOST_NAME_MAX + 32];
  snprintf(client_id, sizeof(client_id), "worker-%s-%ld", host, (long)getpid());
  SSL_CTX *tls = NULL;
  if (config->tls &&
      (tls = rpc_tls_client_context(config->cacert, config->cert, config->key,
                                    err, sizeof(err))) == NULL) {
    rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"%s\"", err);
    return 1;
  }
  worker_options wo = {
      .address = config->address,
      .tls = tls,
      .token = config->token,
      .basic = config->basic,
      .client_id = config->client_id ? config->client_id : client_id,
      .hostname = config->hostname ? config->hostname : host,
      .pool_id = config->pool_id,
      .job_type_ids = config->job_type_ids.values,
      .n_job_type_ids = config->job_type_ids.count,
      .capacity = config->capacity,
      .module = module,
      .module_config = config->module_config,
      .backoff_initial = 0.1,
      .backoff_max = 30,
  };
  struct ev_loop *loop = EV_DEFAULT;
  worker *w = worker_new(loop, &wo, err, sizeof(err));
  if (w == NULL) {
    rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"%s\"", err);
    SSL_CTX_free(tls);
    return 1;
  }
  run_state state = {w, 0, 0};
  ev_signal term, interrupt;
  ev_signal_init(&term, on_signal, SIGTERM);
  ev_signal_init(&interrupt, on_signal, SIGINT);
  term.data = interrupt.data = &state;
  ev_signal_start(loop, &term);
  ev_signal_start(loop, &interrupt);
  rpc_log(RPC_LOG_INFO, "worker_starting",
          "address=%s pool=%u module=%s capacity=%u client_id=%s",
          config->address, config->pool_id, module->name, config->capacity,
          wo.client_id);
  worker_start(w);
  ev_run(loop, 0);
  ev_signal_stop(loop, &term);
  ev_signal_stop(loop, &interrupt);
  worker_free(w);
  SSL_CTX_free(tls);
  return state.exit_code;
}

int main(int argc, char **argv) {
  worker_config config;
  char err[512];
  int rv = load_config(&config, argc, argv, err, sizeof(err));
  int exit_code;
  if (rv == 1) {
    usage(stdout);
    exit_code = 0;
  } else if (rv != 0) {
    fprintf(stderr, "jobhub-worker: %s\n", err);
    exit_code = 2;
  } else {
    exit_code = run(&config);
  }
  options_free(&table, &config);
  return exit_code;
}
