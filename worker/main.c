/* main.c: jobhub-worker: connects to a hub with Workers.Connect and runs
 * the jobs it pushes with one module. Options come from the command line
 * or JOBHUB_WORKER_<NAME> environment variables (the table below).
 *
 * Exit codes: 0 after a drain (SIGTERM or SIGINT: no new jobs, running
 * ones finish, their results acked), 1 when start-up failed or a second
 * signal cut a drain short, 2 for a usage error. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "rpc/log.h"
#include "rpc/socket.h"
#include "rpc/tls.h"
#include "worker/modules/modules.h"
#include "worker/worker.h"

#define MAX_JOB_TYPES 64

typedef struct worker_config {
  const char *address;
  bool tls;
  const char *cacert;
  const char *cert;
  const char *key;
  const char *token;
  const char *basic;
  const char *client_id;
  const char *hostname;
  unsigned long pool_id;
  uint32_t job_type_ids[MAX_JOB_TYPES];
  size_t n_job_type_ids;
  unsigned long capacity;
  const char *module;
  const char *module_config;
  const char *log_level;
} worker_config;

typedef enum option_kind { TEXT, FLAG, NUMBER, JOB_TYPES } option_kind;

typedef struct option {
  const char *name;
  option_kind kind;
  size_t offset;
  const char *fallback; /* NULL: none */
  unsigned long max;    /* NUMBER, JOB_TYPES */
  const char *help;
} option;

#define FIELD(f) offsetof(worker_config, f)

static const option options[] = {
    {"addr", TEXT, FIELD(address), "127.0.0.1:50051", 0, "the hub, host:port"},
    {"tls", FLAG, FIELD(tls), NULL, 0, "TLS (ALPN h2) instead of h2c"},
    {"cacert", TEXT, FIELD(cacert), NULL, 0,
     "PEM file of the CAs the hub's certificate is checked against "
     "(default: the system's); implies --tls"},
    {"cert", TEXT, FIELD(cert), NULL, 0,
     "PEM client certificate for mTLS (with --key); implies --tls"},
    {"key", TEXT, FIELD(key), NULL, 0, "PEM private key of --cert"},
    {"token", TEXT, FIELD(token), NULL, 0,
     "sent as \"authorization: Bearer TOKEN\" (also JOBHUB_TOKEN)"},
    {"basic", TEXT, FIELD(basic), NULL, 0,
     "USER:PASSWORD sent as Basic authorization (also JOBHUB_BASIC)"},
    {"client-id", TEXT, FIELD(client_id), NULL, 0,
     "this worker's client id (default: worker-HOSTNAME-PID)"},
    {"hostname", TEXT, FIELD(hostname), NULL, 0,
     "the host name the hub lists (default: this host's)"},
    {"pool", NUMBER, FIELD(pool_id), "0", 1023, "pool_id, 0..1023"},
    {"job-type", JOB_TYPES, FIELD(job_type_ids), NULL, 1023,
     "a job_type_id it runs, 0..1023; repeat for more (default: 1)"},
    {"capacity", NUMBER, FIELD(capacity), "1", 100000,
     "jobs it runs at once, 1..100000"},
    {"module", TEXT, FIELD(module), "echo", 0, "the module (see below)"},
    {"module-config", TEXT, FIELD(module_config), NULL, 0,
     "the module's setting: for exec, the command (run with /bin/sh -c)"},
    {"log-level", TEXT, FIELD(log_level), "info", 0,
     "debug, info, warn or error"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static void usage(FILE *out) {
  fprintf(out, "usage: jobhub-worker [OPTIONS]\n\n"
               "Runs the jobs a jobhub hub pushes over Workers.Connect.\n\n"
               "Options (each also an environment variable "
               "JOBHUB_WORKER_NAME, e.g. JOBHUB_WORKER_ADDR):\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s%s", options[i].name,
             options[i].kind == FLAG ? "" : "=VALUE");
    fprintf(out, "  %-22s ", flag);
    fputs(options[i].help, out);
    if (options[i].fallback != NULL) {
      fprintf(out, " [%s]", options[i].fallback);
    }
    fputc('\n', out);
  }
  fprintf(out,
          "  %-22s this help\n\nModules: %s.\n\n"
          "Exit codes: 0 drained after SIGTERM/SIGINT, 1 start-up "
          "failed or a second signal, 2 usage error.\n",
          "--help", module_names);
}

/* Sets opt from text (source names where it came from). Returns 0, or -1
 * with a message in err. */
static int set_option(worker_config *config, const option *opt,
                      const char *text, const char *source, char *err,
                      size_t err_size) {
  char *field = (char *)config + opt->offset;
  if (opt->kind == TEXT) {
    *(const char **)(void *)field = text;
    return 0;
  }
  if (opt->kind == FLAG) {
    if (strcmp(text, "1") != 0 && strcmp(text, "true") != 0 &&
        strcmp(text, "0") != 0 && strcmp(text, "false") != 0) {
      snprintf(err, err_size, "--%s (from %s) takes 1, true, 0 or false",
               opt->name, source);
      return -1;
    }
    *(bool *)(void *)field = text[0] == '1' || text[0] == 't';
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long value = strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
      value > opt->max) {
    snprintf(err, err_size,
             "invalid value \"%s\" for --%s (from %s): a "
             "whole number 0..%lu",
             text, opt->name, source, opt->max);
    return -1;
  }
  if (opt->kind == NUMBER) {
    *(unsigned long *)(void *)field = value;
    return 0;
  }
  if (config->n_job_type_ids == MAX_JOB_TYPES) {
    snprintf(err, err_size, "more than %d --job-type", MAX_JOB_TYPES);
    return -1;
  }
  config->job_type_ids[config->n_job_type_ids++] = (uint32_t)value;
  return 0;
}

static const option *find_option(const char *name, size_t len) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    if (strlen(options[i].name) == len &&
        strncmp(options[i].name, name, len) == 0) {
      return &options[i];
    }
  }
  return NULL;
}

/* Defaults, then the environment, then the command line. Returns 0, 1 for
 * --help, or -1 with a message in err. */
static int load_config(worker_config *config, int argc, char **argv, char *err,
                       size_t err_size) {
  memset(config, 0, sizeof(*config));
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option *opt = &options[i];
    if (opt->fallback != NULL &&
        set_option(config, opt, opt->fallback, "default", err, err_size) != 0) {
      return -1;
    }
    char env[64];
    snprintf(env, sizeof(env), "JOBHUB_WORKER_");
    size_t at = strlen(env);
    for (const char *p = opt->name; *p != '\0' && at + 1 < sizeof(env); p++) {
      env[at++] =
          *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    }
    env[at] = '\0';
    const char *value = getenv(env);
    if (value != NULL &&
        set_option(config, opt, value, env, err, err_size) != 0) {
      return -1;
    }
  }
  bool job_types_from_flags = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      return 1;
    }
    if (strncmp(arg, "--", 2) != 0) {
      snprintf(err, err_size, "unexpected argument \"%s\"", arg);
      return -1;
    }
    const char *name = arg + 2;
    const char *equals = strchr(name, '=');
    size_t len = equals ? (size_t)(equals - name) : strlen(name);
    const option *opt = find_option(name, len);
    if (opt == NULL) {
      snprintf(err, err_size, "unknown option \"%s\" (see --help)", arg);
      return -1;
    }
    const char *value = equals ? equals + 1 : NULL;
    if (value == NULL && opt->kind == FLAG) {
      value = "1";
    } else if (value == NULL) {
      if (i + 1 == argc) {
        snprintf(err, err_size, "--%s needs a value", opt->name);
        return -1;
      }
      value = argv[++i];
    }
    if (opt->kind == JOB_TYPES && !job_types_from_flags) {
      config->n_job_type_ids = 0; /* the flags replace the environment's */
      job_types_from_flags = true;
    }
    if (set_option(config, opt, value, "the command line", err, err_size) !=
        0) {
      return -1;
    }
  }
  if (config->n_job_type_ids == 0) {
    config->job_type_ids[config->n_job_type_ids++] = 1;
  }
  if (config->capacity == 0) {
    snprintf(err, err_size, "--capacity must be 1..100000");
    return -1;
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
    config->token = getenv("JOBHUB_TOKEN");
    config->basic = config->token == NULL ? getenv("JOBHUB_BASIC") : NULL;
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

int main(int argc, char **argv) {
  worker_config config;
  char err[512];
  int rv = load_config(&config, argc, argv, err, sizeof(err));
  if (rv == 1) {
    usage(stdout);
    return 0;
  }
  if (rv != 0) {
    fprintf(stderr, "jobhub-worker: %s\n", err);
    return 2;
  }
  rpc_log_level level;
  if (rpc_log_level_parse(config.log_level, &level) != 0) {
    fprintf(stderr, "jobhub-worker: unknown --log-level \"%s\"\n",
            config.log_level);
    return 2;
  }
  rpc_log_set_level(level);
  const worker_module *module = module_find(config.module);
  if (module == NULL) {
    fprintf(stderr, "jobhub-worker: unknown --module \"%s\" (one of %s)\n",
            config.module, module_names);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* TLS writes through write(2) */
  char host[HOST_NAME_MAX + 1] = "localhost";
  (void)gethostname(host, sizeof(host));
  host[sizeof(host) - 1] = '\0';
  char client_id[HOST_NAME_MAX + 32];
  snprintf(client_id, sizeof(client_id), "worker-%s-%ld", host, (long)getpid());
  SSL_CTX *tls = NULL;
  if (config.tls &&
      (tls = rpc_tls_client_context(config.cacert, config.cert, config.key, err,
                                    sizeof(err))) == NULL) {
    rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"%s\"", err);
    return 1;
  }
  worker_options wo = {
      .address = config.address,
      .tls = tls,
      .token = config.token,
      .basic = config.basic,
      .client_id = config.client_id ? config.client_id : client_id,
      .hostname = config.hostname ? config.hostname : host,
      .pool_id = (uint32_t)config.pool_id,
      .job_type_ids = config.job_type_ids,
      .n_job_type_ids = config.n_job_type_ids,
      .capacity = (uint32_t)config.capacity,
      .module = module,
      .module_config = config.module_config,
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
          "address=%s pool=%lu module=%s capacity=%lu client_id=%s",
          config.address, config.pool_id, module->name, config.capacity,
          wo.client_id);
  worker_start(w);
  ev_run(loop, 0);
  ev_signal_stop(loop, &term);
  ev_signal_stop(loop, &interrupt);
  worker_free(w);
  SSL_CTX_free(tls);
  return state.exit_code;
}
