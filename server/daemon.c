/* daemon.c: jobhubd's life: configuration, the server and its services,
 * signals, graceful shutdown. */
#include "server/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobhub/v1/engine.rpc.h"
#include "jobhub/v1/hub.rpc.h"
#include "jobhub/v1/outputs.rpc.h"
#include "jobhub/v1/series.rpc.h"
#include "jobhub_descriptor_set.h"
#include "rpc/health.h"
#include "rpc/http1.h"
#include "rpc/log.h"
#include "rpc/loop_thread.h"
#include "rpc/reflection.h"
#include "rpc/tls.h"
#include "rpc_descriptor_set.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/core/hub.h"
#include "server/http/face.h"
#include "server/services/jobs.h"
#include "server/services/workers.h"
#include "server/store/sqlite.h"

/* Services whose methods are not built yet: empty handler tables make
 * every method answer UNIMPLEMENTED, naming itself. */
static const jobhub_v1_outputs_handlers outputs_handlers;
static const jobhub_v1_engine_handlers engine_handlers;
static const jobhub_v1_series_handlers series_handlers;
static const jobhub_v1_hub_handlers hub_handlers;

static int add_jobhub_services(rpc_server *server, job_hub *hub) {
  if (jobs_service_add(server, hub) != 0 ||
      workers_service_add(server, hub) != 0 ||
      jobhub_v1_outputs_add_to_server(server, &outputs_handlers, NULL) != 0 ||
      jobhub_v1_engine_add_to_server(server, &engine_handlers, NULL) != 0 ||
      jobhub_v1_series_add_to_server(server, &series_handlers, NULL) != 0 ||
      jobhub_v1_hub_add_to_server(server, &hub_handlers, NULL) != 0) {
    return -1;
  }
  return 0;
}

static int write_port_file(const char *path, unsigned port) {
  /* Write then rename, so a reader never sees a partial file. */
  char temp[4096];
  snprintf(temp, sizeof(temp), "%s.tmp", path);
  FILE *file = fopen(temp, "w");
  if (file == NULL) {
    return -1;
  }
  int rv = fprintf(file, "%u\n", port) < 0 ? -1 : 0;
  if (fclose(file) != 0) {
    rv = -1;
  }
  return rv == 0 ? rename(temp, path) : -1;
}

/* Room beyond two messages in an HTTP/1.1 body: framing and envelopes. */
#define HTTP1_BODY_SLACK_BYTES 65536

/* The server's authorization hook: the guard decides (server/auth.h). */
static rpc_status_code authorize_call(void *user,
                                      const rpc_auth_request *request,
                                      char *message, size_t message_size) {
  auth_request check = {
      .service = request->service,
      .method = request->method,
      .authorization = request->authorization,
      .cert_cn = request->cert_cn,
      .peer = request->peer,
  };
  return auth_guard_check(user, &check, message, message_size);
}

/* SPEC "Auth": credentials from --auth-file; without them, only a
 * loopback listener or an explicit --no-auth serves. Returns 0 with
 * *guard set (NULL: no auth), or -1 (logged): do not start. */
static int open_auth(const jobhubd_config *config, auth_guard **guard) {
  char err[512] = "";
  *guard = NULL;
  if (config->auth_file != NULL) {
    *guard = auth_guard_open(config->auth_file, err, sizeof(err));
    if (*guard == NULL) {
      rpc_log(RPC_LOG_ERROR, "auth_file_failed", "error=\"%s\"", err);
      return -1;
    }
    rpc_log(RPC_LOG_INFO, "auth_enabled", "file=%s credentials=%zu",
            config->auth_file, auth_guard_count(*guard));
    return 0;
  }
  if (config->no_auth) {
    rpc_log(RPC_LOG_WARN, "auth_disabled", "reason=--no-auth");
    return 0;
  }
  if (!auth_listen_is_loopback(config->listen)) {
    rpc_log(RPC_LOG_ERROR, "auth_required",
            "listen=%s error=\"a listen address that is not loopback needs "
            "--auth-file FILE (or --no-auth to serve without credentials)\"",
            config->listen);
    return -1;
  }
  rpc_log(RPC_LOG_INFO, "auth_disabled", "reason=loopback listen=%s",
          config->listen);
  return 0;
}

/* SIGHUP: the auth file again; a bad one leaves the credentials as they
 * were. */
static void reload_auth(auth_guard *guard, const char *path) {
  char err[512] = "";
  if (guard == NULL) {
    rpc_log(RPC_LOG_INFO, "reload_ignored", "reason=\"no --auth-file\"");
    return;
  }
  if (auth_guard_reload(guard, err, sizeof(err)) != 0) {
    rpc_log(RPC_LOG_ERROR, "auth_reload_failed",
            "error=\"%s\" kept=previous credentials=%zu", err,
            auth_guard_count(guard));
    return;
  }
  rpc_log(RPC_LOG_INFO, "auth_reloaded", "file=%s credentials=%zu", path,
          auth_guard_count(guard));
}

/* Every connection costs a descriptor and the default soft limit (often
 * 1024) is far below what the hard limit allows: raise soft to hard, so
 * that the limit an operator set (ulimit -Hn, LimitNOFILE=) is the one
 * that applies. Failing to raise leaves the soft limit as it was. */
static void raise_fd_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return;
  }
  rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      limit.rlim_cur = before;
    }
  }
  rpc_log(RPC_LOG_INFO, "fd_limit", "soft=%llu hard=%llu raised_from=%llu",
          (unsigned long long)limit.rlim_cur,
          (unsigned long long)limit.rlim_max, (unsigned long long)before);
}

static void mark_health(rpc_server *server, rpc_health *health,
                        rpc_health_status status) {
  rpc_health_set(health, "", status);
  for (size_t i = 0; i < rpc_server_service_count(server); i++) {
    rpc_health_set(health, rpc_server_service(server, i)->name, status);
  }
}

static void mark_serving(rpc_server *server, rpc_health *health) {
  mark_health(server, health, RPC_HEALTH_SERVING);
}

/* What the store's state changes report to. */
typedef struct store_health {
  rpc_server *server;
  rpc_health *health;
} store_health;

/* While the store cannot write (disk full, I/O errors), the hub answers
 * no Submit: it is NOT_SERVING, the whole server and each service. */
static void on_store_writable(bool writable, void *arg) {
  store_health *report = arg;
  mark_health(report->server, report->health,
              writable ? RPC_HEALTH_SERVING : RPC_HEALTH_NOT_SERVING);
}

/* Takes the data dir's lock, DIR/jobhub.lock, flock'd for the life of the
 * process and holding its PID: two hubs on one store would hand out the
 * same ids and overwrite each other's jobs. Returns the lock's descriptor
 * (kept open until exit), or -1 with why in err. */
static int lock_data_dir(const char *dir, char *err, size_t err_size) {
  if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
    snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  char path[4200];
  snprintf(path, sizeof(path), "%s/jobhub.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, err_size, "cannot open %.300s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    char pid[24] = "";
    ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? strcspn(pid, "\n") : 0] = '\0';
    if (error == EWOULDBLOCK) {
      snprintf(err, err_size, "data dir %s is in use by jobhubd pid %s", dir,
               pid[0] != '\0' ? pid : "(unknown)");
    } else {
      snprintf(err, err_size, "cannot lock %.300s: %s", path, strerror(error));
    }
    close(fd);
    return -1;
  }
  char pid[24];
  int size = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)size, 0) != size) {
    snprintf(err, err_size, "cannot write %.300s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

int jobhubd_main(int argc, char **argv, jobhubd_add_services_fn extra,
                 void *arg) {
  char err[512] = "";
  jobhubd_config config;
  jobhubd_config_result loaded =
      jobhubd_config_load(&config, argc, argv, err, sizeof(err));
  if (loaded != JOBHUBD_CONFIG_RUN) {
    if (loaded == JOBHUBD_CONFIG_USAGE) {
      fprintf(stderr, "jobhubd: %s\n", err);
    }
    jobhubd_config_free(&config);
    return loaded == JOBHUBD_CONFIG_EXIT ? 0 : 2;
  }
  /* The loop and core threads allocate in bursts, a group of jobs at a
   * time: a padded heap that is trimmed late does not grow and shrink
   * (mprotect, brk) on every burst. Failing leaves glibc's defaults. */
  (void)mallopt(M_TOP_PAD, 16 << 20);
  (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
  rpc_log_level level = RPC_LOG_INFO;
  (void)rpc_log_level_parse(config.log_level, &level); /* validated */
  rpc_log_set_level(level);
  raise_fd_limit();

  int exit_code = 1;
  SSL_CTX *tls = NULL;
  rpc_server *server = NULL;
  rpc_descriptor_pool *pool = NULL;
  rpc_health *health = NULL;
  rpc_reflection *reflection = NULL;
  job_hub *hub = NULL;
  rpc_loop_thread *shared_loop = NULL;
  auth_guard *guard = NULL;
  http_face *face = NULL;
  rpc_http1_server *http1 = NULL;
  int data_lock = -1;
  store_health report = {NULL, NULL};

  /* Signals are taken by sigwait below; threads inherit the mask. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (open_auth(&config, &guard) != 0) {
    goto out;
  }
  if (config.tls_cert != NULL) {
    tls = rpc_tls_server_context(config.tls_cert, config.tls_key,
                                 config.tls_client_ca, err, sizeof(err));
    if (tls == NULL) {
      rpc_log(RPC_LOG_ERROR, "tls_failed", "error=\"%s\"", err);
      goto out;
    }
  }
  /* With one loop thread the core shares it: a call then reaches the core
   * and comes back without a thread switch (two on one CPU). */
  unsigned loops = config.threads ? config.threads : rpc_usable_cpus();
  if (loops == 1) {
    shared_loop = rpc_loop_thread_new(NULL);
    if (shared_loop == NULL) {
      rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"out of memory\"");
      goto out;
    }
  }
  hub_options hub_config = {
      .data_dir = config.data_dir,
      .store = &job_store_sqlite_ops,
      .lease_seconds = config.lease_seconds ? config.lease_seconds : 1,
      .max_attempts = config.max_attempts ? config.max_attempts : 1,
      .retry_backoff_ms = config.retry_backoff_ms,
      .worker_timeout = config.worker_timeout,
      .max_worker_capacity = config.max_worker_capacity,
      .loop_thread = shared_loop,
  };
  data_lock = lock_data_dir(config.data_dir, err, sizeof(err));
  if (data_lock < 0) {
    rpc_log(RPC_LOG_ERROR, "data_dir_locked", "data=%s error=\"%s\"",
            config.data_dir, err);
    fprintf(stderr, "jobhubd: %s\n", err);
    goto out;
  }
  hub = hub_open(&hub_config, err, sizeof(err));
  if (hub == NULL) {
    rpc_log(RPC_LOG_ERROR, "store_failed", "data=%s error=\"%s\"",
            config.data_dir, err);
    goto out;
  }
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.listen = config.listen;
  options.threads = loops;
  options.loop_thread = shared_loop;
  options.max_receive_message_bytes = config.max_receive_message_bytes;
  options.max_concurrent_streams = config.max_concurrent_streams;
  options.max_header_list_bytes = config.max_header_bytes;
  options.max_stream_output_bytes = (size_t)config.max_stream_output_bytes;
  options.max_connection_output_bytes =
      (size_t)config.max_connection_output_bytes;
  options.idle_timeout = config.idle_timeout;
  options.keepalive_interval = config.keepalive_interval;
  options.keepalive_timeout = config.keepalive_timeout;
  options.shutdown_grace = config.shutdown_grace;
  options.busy_poll = config.busy_poll_us / 1e6;
  if (config.busy_poll_us < 0) {
    /* A loop that polls on the only CPU it shares with the core and store
     * threads delays them more than it saves. */
    options.busy_poll = rpc_usable_cpus() > loops ? 200e-6 : 0;
  }
  options.tls = tls;
  options.authorize = guard != NULL ? authorize_call : NULL;
  options.authorize_user = guard;
  options.allow_plaintext = config.allow_plaintext;
  server = rpc_server_new(&options, err, sizeof(err));
  pool = rpc_descriptor_pool_new();
  if (server == NULL || pool == NULL) {
    rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"%s\"",
            server == NULL ? err : "out of memory");
    goto out;
  }
  /* The HTTP face answers what is not gRPC; a test server's extra may
   * put its own hook in its place. */
  http_face_options face_options = {
      .server = server,
      .pool = pool,
      .cors_origins = (const char *const *)config.cors_origins.values,
      .cors_origin_count = config.cors_origins.count,
      .legacy_pool = config.legacy_pool,
      .legacy_job_type = config.legacy_job_type,
  };
  face = http_face_new(&face_options);
  /* One handler, the face, for HTTP/1.x (rpc/http1) and HTTP/2 alike. */
  rpc_http1_options http1_options;
  rpc_http1_options_default(&http1_options, &options);
  /* The protocols bound each message themselves, with their own errors
   * (JSON's 413, Connect's resource_exhausted); HTTP/1.1's own 413 only
   * guards what no message limit could pass: base64 (gRPC-Web-text) and
   * JSON make a message's body larger than the message. */
  http1_options.max_body_bytes =
      2 * options.max_receive_message_bytes + HTTP1_BODY_SLACK_BYTES;
  http1 = face != NULL
              ? rpc_http1_server_new(&http1_options, http_face_serve, face)
              : NULL;
  rpc_protocol_hook hook;
  if (http1 != NULL) {
    rpc_http1_protocol_hook(&hook, http1);
  }
  if (http1 == NULL || rpc_server_set_protocol_hook(server, &hook) != 0) {
    rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"out of memory\"");
    goto out;
  }
  if (rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                  rpc_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0 ||
      add_jobhub_services(server, hub) != 0 ||
      (extra != NULL && extra(server, pool, arg) != 0)) {
    rpc_log(RPC_LOG_ERROR, "startup_failed",
            "error=\"cannot register the services\"");
    goto out;
  }
  if (http_face_load_routes(face, err, sizeof(err)) != 0) {
    rpc_log(RPC_LOG_ERROR, "startup_failed", "error=\"http routes: %s\"", err);
    goto out;
  }
  health = rpc_health_add(server);
  reflection = rpc_reflection_add(server, pool);
  if (health == NULL || reflection == NULL) {
    rpc_log(RPC_LOG_ERROR, "startup_failed",
            "error=\"cannot register health and reflection\"");
    goto out;
  }
  if (rpc_server_start(server, err, sizeof(err)) != 0) {
    rpc_log(RPC_LOG_ERROR, "listen_failed", "address=%s error=\"%s\"",
            config.listen, err);
    goto out;
  }
  mark_serving(server, health);
  report = (store_health){server, health};
  hub_on_store_writable(hub, on_store_writable, &report);
  if (config.port_file != NULL &&
      write_port_file(config.port_file, rpc_server_port(server)) != 0) {
    rpc_log(RPC_LOG_ERROR, "port_file_failed", "path=%s", config.port_file);
    rpc_server_shutdown(server);
    goto out;
  }
  rpc_log(RPC_LOG_INFO, "listening", "address=%s port=%u threads=%u tls=%s",
          config.listen, rpc_server_port(server),
          rpc_server_thread_count(server), tls != NULL ? "on" : "off");

  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) {
      break;
    }
    reload_auth(guard, config.auth_file);
  }
  rpc_log(RPC_LOG_INFO, "shutting_down", "signal=%s",
          received == SIGTERM ? "SIGTERM" : "SIGINT");
  /* Watchers see NOT_SERVING, then their streams end so that they do not
   * hold the drain; the loops run these before the shutdown itself. */
  rpc_health_set_all(health, RPC_HEALTH_NOT_SERVING);
  rpc_health_close_watches(health);
  hub_stop_streams(hub);
  rpc_server_shutdown(server);
  rpc_log(RPC_LOG_INFO, "stopped", NULL);
  exit_code = 0;
out:
  hub_close(hub);
  if (data_lock >= 0) {
    close(data_lock); /* after the store is closed */
  }
  rpc_server_free(server);
  rpc_http1_server_free(http1); /* after the loops closed its connections */
  http_face_free(face);   /* after the loops that serve requests stopped */
  auth_guard_free(guard); /* after the loops that check calls stopped */
  rpc_loop_thread_free(shared_loop);
  rpc_health_free(health);
  rpc_reflection_free(reflection);
  rpc_descriptor_pool_free(pool);
  SSL_CTX_free(tls);
  jobhubd_config_free(&config);
  return exit_code;
}
