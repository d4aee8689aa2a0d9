/* health.c: grpc.health.v1.Health. Statuses live under a mutex; each
 * Watch is a call on some loop thread and is told of changes on that
 * thread, through rpc_server_run_on_loops. */
#include "rpc/health.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.rpc.h"
#include "rpc/log.h"

typedef struct health_entry {
  char *service;
  rpc_health_status status;
} health_entry;

typedef struct watcher {
  rpc_health *health;
  rpc_call *call;
  struct ev_loop *loop;
  char *service;
  int last_sent; /* ServingStatus last sent; -1: none */
  struct watcher *prev, *next;
} watcher;

struct rpc_health {
  rpc_server *server;
  pthread_mutex_t lock;
  health_entry *entries;
  size_t count;
  watcher *watchers; /* every loop's; each touched on its own loop only */
};

/* The status of service, or SERVICE_UNKNOWN. Caller holds the lock. */
static int status_of(const rpc_health *health, const char *service) {
  for (size_t i = 0; i < health->count; i++) {
    if (strcmp(health->entries[i].service, service) == 0) {
      return (int)health->entries[i].status;
    }
  }
  return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
}

static void check(rpc_call *call,
                  const Grpc__Health__V1__HealthCheckRequest *request,
                  void *user) {
  rpc_health *health = user;
  pthread_mutex_lock(&health->lock);
  int status = status_of(health, request->service);
  pthread_mutex_unlock(&health->lock);
  if (status ==
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
    rpc_call_finishf(call, RPC_STATUS_NOT_FOUND, "unknown service %s",
                     request->service);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse response =
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  response.status =
      (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  grpc_health_v1_health_check_reply(call, &response);
}

/* Sends the watched status if it changed. Caller holds the lock. */
static void send_if_changed(rpc_health *health, watcher *w) {
  int status = status_of(health, w->service);
  if (status == w->last_sent) {
    return;
  }
  Grpc__Health__V1__HealthCheckResponse response =
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  response.status =
      (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  if (grpc_health_v1_health_watch_send(w->call, &response) == 0) {
    w->last_sent = status;
  }
}

/* Unlinks and frees w and finishes its call. Caller holds the lock. */
static void watcher_end(rpc_health *health, watcher *w, rpc_status_code code,
                        const char *message) {
  if (w->prev != NULL) {
    w->prev->next = w->next;
  } else {
    health->watchers = w->next;
  }
  if (w->next != NULL) {
    w->next->prev = w->prev;
  }
  rpc_call_finish(w->call, code, message);
  free(w->service);
  free(w);
}

/* The client went away or the deadline passed: forget the watch. */
static void on_watch_cancel(rpc_call *call, rpc_status_code reason, void *arg) {
  (void)call;
  (void)reason;
  watcher *w = arg;
  rpc_health *health = w->health;
  pthread_mutex_lock(&health->lock);
  watcher_end(health, w, RPC_STATUS_CANCELLED, NULL);
  pthread_mutex_unlock(&health->lock);
}

static void watch(rpc_call *call,
                  const Grpc__Health__V1__HealthCheckRequest *request,
                  void *user) {
  rpc_health *health = user;
  watcher *w = calloc(1, sizeof(*w));
  if (w == NULL || (w->service = strdup(request->service)) == NULL) {
    free(w);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->health = health;
  w->call = call;
  w->loop = rpc_call_loop(call);
  rpc_call_set_hooks(call, &(rpc_call_hooks){.on_cancel = on_watch_cancel}, w);
  w->last_sent = -1;
  pthread_mutex_lock(&health->lock);
  w->next = health->watchers;
  if (health->watchers != NULL) {
    health->watchers->prev = w;
  }
  health->watchers = w;
  send_if_changed(health, w);
  pthread_mutex_unlock(&health->lock);
}

static const grpc_health_v1_health_handlers handlers = {
    .check = check,
    .watch = watch,
};

rpc_health *rpc_health_add(rpc_server *server) {
  rpc_health *health = calloc(1, sizeof(*health));
  if (health == NULL) {
    return NULL;
  }
  health->server = server;
  pthread_mutex_init(&health->lock, NULL);
  if (grpc_health_v1_health_add_to_server(server, &handlers, health) != 0) {
    rpc_health_free(health);
    return NULL;
  }
  return health;
}

/* Runs on each loop: tells that loop's watchers of changes. */
static void notify_loop(struct ev_loop *loop, void *arg) {
  rpc_health *health = arg;
  pthread_mutex_lock(&health->lock);
  for (watcher *w = health->watchers; w != NULL; w = w->next) {
    if (w->loop == loop) {
      send_if_changed(health, w);
    }
  }
  pthread_mutex_unlock(&health->lock);
}

static void close_loop_watches(struct ev_loop *loop, void *arg) {
  rpc_health *health = arg;
  pthread_mutex_lock(&health->lock);
  for (watcher *w = health->watchers, *next; w != NULL; w = next) {
    next = w->next;
    if (w->loop == loop) {
      send_if_changed(health, w);
      watcher_end(health, w, RPC_STATUS_UNAVAILABLE,
                  "the server is shutting down");
    }
  }
  pthread_mutex_unlock(&health->lock);
}

static int set_locked(rpc_health *health, const char *service,
                      rpc_health_status status) {
  for (size_t i = 0; i < health->count; i++) {
    if (strcmp(health->entries[i].service, service) == 0) {
      health->entries[i].status = status;
      return 0;
    }
  }
  health_entry *grown =
      realloc(health->entries, (health->count + 1) * sizeof(*grown));
  if (grown == NULL) {
    return -1;
  }
  health->entries = grown;
  char *name = strdup(service);
  if (name == NULL) {
    return -1;
  }
  health->entries[health->count++] = (health_entry){name, status};
  return 0;
}

int rpc_health_set(rpc_health *health, const char *service,
                   rpc_health_status status) {
  pthread_mutex_lock(&health->lock);
  int rv = set_locked(health, service, status);
  bool watched = health->watchers != NULL;
  pthread_mutex_unlock(&health->lock);
  if (rv == 0 && watched &&
      rpc_server_run_on_loops(health->server, notify_loop, health) != 0) {
    rpc_log(RPC_LOG_WARN, "health_notify_failed", NULL);
  }
  return rv;
}

void rpc_health_set_all(rpc_health *health, rpc_health_status status) {
  pthread_mutex_lock(&health->lock);
  for (size_t i = 0; i < health->count; i++) {
    health->entries[i].status = status;
  }
  bool watched = health->watchers != NULL;
  pthread_mutex_unlock(&health->lock);
  if (watched &&
      rpc_server_run_on_loops(health->server, notify_loop, health) != 0) {
    rpc_log(RPC_LOG_WARN, "health_notify_failed", NULL);
  }
}

void rpc_health_close_watches(rpc_health *health) {
  if (rpc_server_run_on_loops(health->server, close_loop_watches, health) !=
      0) {
    rpc_log(RPC_LOG_WARN, "health_close_failed", NULL);
  }
}

void rpc_health_free(rpc_health *health) {
  if (health == NULL) {
    return;
  }
  for (size_t i = 0; i < health->count; i++) {
    free(health->entries[i].service);
  }
  free(health->entries);
  pthread_mutex_destroy(&health->lock);
  free(health);
}
