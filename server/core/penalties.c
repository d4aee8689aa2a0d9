/* penalties.c: flapping workers: a worker identity (client_id) whose
 * Connect streams keep ending with jobs it had not acknowledged is paused
 * before it gets new ones (docs/core-design.md "Connect"). */
#include "server/core/penalties.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/hub_state.h"
#include "server/core/registry.h"

/* What the hub remembers of a worker identity (client_id) whose Connect
 * streams ended holding jobs it had not acknowledged: it is slowed down
 * when it does it again (docs/core-design.md "Connect"). */
typedef struct worker_penalty {
  char *client_id;         /* owned */
  int64_t last_drop_us;    /* its last stream end that dropped jobs */
  int64_t backoff_us;      /* the last pause it got; 0: none yet */
  int64_t paused_until_us; /* its next Connect gets no jobs before this */
  bool logged;             /* this episode has its log line */
} worker_penalty;

/* Drops this close after the previous one make the pause grow. */
#define DROP_WINDOW_US (60 * 1000000LL)
#define FIRST_PAUSE_US (1 * 1000000LL)
#define LONGEST_PAUSE_US (60 * 1000000LL)
/* A stream that ran this long without dropping a job ends the episode. */
#define CLEAN_STREAM_US (30 * 1000000LL)

static bool penalty_is_for(const void *value, const void *key) {
  return strcmp(((const worker_penalty *)value)->client_id, key) == 0;
}

static worker_penalty *find_penalty(job_hub *hub, const char *client_id) {
  if (client_id == NULL) {
    return NULL;
  }
  return hash_table_find(hub->penalties,
                         hash_bytes(client_id, strlen(client_id)),
                         penalty_is_for, client_id);
}

static void forget_penalty(job_hub *hub, worker_penalty *penalty) {
  (void)hash_table_remove(
      hub->penalties,
      hash_bytes(penalty->client_id, strlen(penalty->client_id)), penalty);
  free(penalty->client_id);
  free(penalty);
}

void hub_penalty_note_stream_end(job_hub *hub, hub_worker *worker,
                                 uint32_t dropped) {
  int64_t now = time_now_us();
  worker_penalty *penalty = find_penalty(hub, worker->client_id);
  if (dropped == 0) {
    if (penalty != NULL && now - worker->connected_us >= CLEAN_STREAM_US &&
        now >= penalty->paused_until_us) {
      forget_penalty(hub, penalty);
    }
    return;
  }
  if (penalty == NULL) {
    if (worker->client_id == NULL) {
      return;
    }
    penalty = calloc(1, sizeof(*penalty));
    if (penalty == NULL ||
        (penalty->client_id = strdup(worker->client_id)) == NULL) {
      free(penalty);
      return; /* no memory: not slowed down */
    }
    if (hash_table_insert(
            hub->penalties,
            hash_bytes(penalty->client_id, strlen(penalty->client_id)),
            penalty) != 0) {
      free(penalty->client_id);
      free(penalty);
      return;
    }
  } else if (now - penalty->last_drop_us <= DROP_WINDOW_US) {
    penalty->backoff_us = penalty->backoff_us == 0 ? FIRST_PAUSE_US
                          : penalty->backoff_us * 2 > LONGEST_PAUSE_US
                              ? LONGEST_PAUSE_US
                              : penalty->backoff_us * 2;
    penalty->paused_until_us = now + penalty->backoff_us;
    if (!penalty->logged) {
      penalty->logged = true;
      rpc_log(RPC_LOG_WARN, "worker_backoff",
              "client_id=\"%s\" worker_idx=%llu dropped=%u pause_ms=%lld "
              "reason=\"its Connect streams keep ending before it starts "
              "the jobs they got\"",
              penalty->client_id, (unsigned long long)worker->worker_idx,
              dropped, (long long)(penalty->backoff_us / 1000));
    }
  } else {
    /* Long after the last drop: a new episode. */
    penalty->backoff_us = 0;
    penalty->paused_until_us = 0;
    penalty->logged = false;
  }
  penalty->last_drop_us = now;
}

typedef struct penalty_scan {
  int64_t now;
  worker_penalty *stale;
} penalty_scan;

static int find_stale_penalty(void *value, void *arg) {
  worker_penalty *penalty = value;
  penalty_scan *scan = arg;
  if (scan->now - penalty->last_drop_us > DROP_WINDOW_US &&
      scan->now >= penalty->paused_until_us) {
    scan->stale = penalty;
    return 1;
  }
  return 0;
}

void hub_penalties_expire(job_hub *hub, int64_t now_us) {
  penalty_scan scan = {now_us, NULL};
  while (hash_table_each(hub->penalties, find_stale_penalty, &scan) != 0) {
    forget_penalty(hub, scan.stale);
    scan.stale = NULL;
  }
}

static int free_penalty_each(void *value, void *arg) {
  (void)arg;
  worker_penalty *penalty = value;
  free(penalty->client_id);
  free(penalty);
  return 0;
}

void hub_penalties_free(job_hub *hub) {
  hash_table_each(hub->penalties, free_penalty_each, NULL);
}

void hub_penalty_apply(job_hub *hub, hub_worker *worker) {
  worker_penalty *penalty = find_penalty(hub, worker->client_id);
  if (penalty != NULL && penalty->paused_until_us > worker->connected_us) {
    hub_worker_pause(hub, worker, penalty->paused_until_us);
  }
}
