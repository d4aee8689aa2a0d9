/* queries.c: calls waiting for a Connect worker's answer. */
#include "server/core/queries.h"

#include "server/core/hub_state.h"

uint64_t hub_query_wait(job_hub *hub, hub_call *hc, double timeout,
                        void (*on_timeout)(struct ev_loop *loop,
                                           ev_timer *timer, int events)) {
  hc->query_id = ++hub->next_query_id;
  hc->next_waiting = hub->queries;
  hub->queries = hc;
  ev_timer_init(&hc->timer, on_timeout, timeout, 0);
  hc->timer.data = hc;
  hc->timer_active = true;
  ev_timer_start(hub->loop, &hc->timer);
  return hc->query_id;
}

void hub_query_forget(job_hub *hub, hub_call *hc) {
  for (hub_call **at = &hub->queries; *at != NULL; at = &(*at)->next_waiting) {
    if (*at == hc) {
      *at = hc->next_waiting;
      break;
    }
  }
  if (hc->timer_active) {
    ev_timer_stop(hub->loop, &hc->timer);
    hc->timer_active = false;
  }
}

hub_call *hub_query_take(job_hub *hub, uint64_t query_id, uint64_t worker_idx) {
  for (hub_call *hc = hub->queries; hc != NULL; hc = hc->next_waiting) {
    if (hc->query_id == query_id && hc->worker->worker_idx == worker_idx) {
      hub_query_forget(hub, hc);
      return hc;
    }
  }
  return NULL;
}

hub_call *hub_query_take_of(job_hub *hub, const struct hub_worker *worker) {
  for (hub_call *hc = hub->queries; hc != NULL; hc = hc->next_waiting) {
    if (worker == NULL || hc->worker == worker) {
      hub_query_forget(hub, hc);
      return hc;
    }
  }
  return NULL;
}
