/* mailbox.c: calls and streams between the loop threads and the core:
 * a handler posts a hub_call (or opens a stream) to the core, the core
 * answers by posting back to the call's loop; and running a function on
 * the core and waiting for it. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/hub_state.h"
#include "server/core/job_table.h"
#include "server/core/mailbox.h"

/* Calls between the loops and the core. */

static void hub_call_free(hub_call *hc) {
  hub_undo_free(&hc->undo);
  rpc_buffer_free(&hc->answer);
  free(hc->data);
  free(hc);
}

static void core_undelivered(struct ev_loop *loop, void *arg) {
  (void)loop;
  hub_call *hc = arg;
  hc->undelivered(hc->hub, hc);
  hub_call_free(hc);
}

/* On the call's loop: send the answer and finish. */
static void loop_deliver(struct ev_loop *loop, void *arg) {
  (void)loop;
  hub_call *hc = arg;
  if (hc->code != RPC_STATUS_OK) {
    rpc_call_finish(hc->call, hc->code, hc->message);
    hub_call_free(hc);
    return;
  }
  int rv = rpc_call_send_packed(hc->call, hc->answer.data, hc->answer.len);
  if (rv == RPC_CALL_ERR_TOO_LARGE || rv == RPC_CALL_ERR_NOMEM) {
    rpc_call_finish(hc->call, RPC_STATUS_RESOURCE_EXHAUSTED,
                    rv == RPC_CALL_ERR_TOO_LARGE ? "response message too large"
                                                 : "out of memory");
  } else {
    rpc_call_finish(hc->call, RPC_STATUS_OK, NULL);
  }
  if (rv != 0 && hc->undelivered != NULL) {
    /* What the answer gave away (leased jobs) goes back at once. */
    hc->call = NULL;
    hc->task.fn = core_undelivered;
    rpc_loop_thread_post(hc->hub->core, &hc->task);
    return;
  }
  hub_call_free(hc);
}

static void core_run(struct ev_loop *loop, void *arg) {
  (void)loop;
  hub_call *hc = arg;
  if (hc->hub->closing) {
    hub_call_fail(hc->hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the hub is shutting down");
    return;
  }
  hc->run(hc->hub, hc);
}

void hub_call_post(job_hub *hub, rpc_call *call, const void *request,
                   hub_call_fn run, hub_call_fn undelivered, uint8_t *data,
                   size_t data_size) {
  hub_call *hc = calloc(1, sizeof(*hc));
  if (hc == NULL) {
    free(data);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hc->hub = hub;
  hc->call = call;
  hc->loop_thread = rpc_call_loop_thread(call);
  hc->request = request;
  hc->run = run;
  hc->undelivered = undelivered;
  hc->data = data;
  hc->data_size = data_size;
  rpc_buffer_init(&hc->answer);
  hc->task = (rpc_loop_task){core_run, hc, false, NULL};
  rpc_loop_thread_post(hub->core, &hc->task);
}

void hub_call_answer(job_hub *hub, hub_call *hc) {
  (void)hub;
  hc->code = RPC_STATUS_OK;
  hc->task.fn = loop_deliver;
  rpc_loop_thread_post(hc->loop_thread, &hc->task);
}

void hub_call_fail(job_hub *hub, hub_call *hc, rpc_status_code code,
                   const char *fmt, ...) {
  (void)hub;
  va_list args;
  va_start(args, fmt);
  vsnprintf(hc->message, sizeof(hc->message), fmt, args);
  va_end(args);
  hc->code = code;
  hc->task.fn = loop_deliver;
  rpc_loop_thread_post(hc->loop_thread, &hc->task);
}

/* Streams: the loop half. */

struct loop_stream {
  job_hub *hub;
  rpc_call *call; /* NULL once finished */
  core_stream *core;
  bool sent_closed;
  rpc_loop_task final_task; /* posted by the core, once */
  rpc_status_code final_code;
  char final_message[200];
};

typedef struct stream_message {
  rpc_loop_task task;
  job_hub *hub;
  loop_stream *loop; /* core to loop */
  core_stream *core; /* loop to core */
  void (*opened)(job_hub *hub, core_stream *stream);
  ProtobufCMessage *message; /* loop to core: the client's, owned */
  size_t size;
  uint8_t data[]; /* core to loop: the packed message */
} stream_message;

static void core_stream_closed(struct ev_loop *loop, void *arg);

static void loop_send_closed(loop_stream *ls) {
  if (!ls->sent_closed) {
    ls->sent_closed = true;
    rpc_loop_thread_post(ls->hub->core, &ls->core->closed_task);
  }
}

static void loop_stream_final(struct ev_loop *loop, void *arg) {
  (void)loop;
  loop_stream *ls = arg;
  if (ls->call != NULL) {
    rpc_call_finish(ls->call, ls->final_code,
                    ls->final_message[0] ? ls->final_message : NULL);
    ls->call = NULL;
  }
  loop_send_closed(ls);
  free(ls);
}

static void loop_stream_send(struct ev_loop *loop, void *arg) {
  (void)loop;
  stream_message *m = arg;
  if (m->loop->call != NULL) {
    /* A failed send means the call is gone; its cancel hook tells the
     * core. */
    (void)rpc_call_send_packed(m->loop->call, m->data, m->size);
  }
}

static void free_carried_message(void *arg) {
  stream_message *m = arg;
  if (m->message != NULL) {
    protobuf_c_message_free_unpacked(m->message, NULL);
    m->message = NULL;
  }
}

static void core_stream_message(struct ev_loop *loop, void *arg) {
  (void)loop;
  stream_message *m = arg;
  if (m->opened != NULL) {
    m->opened(m->hub, m->core);
  } else if (m->core->on_message != NULL && !m->core->sent_final) {
    m->core->on_message(m->hub, m->core, m->message);
  }
  free_carried_message(m);
}

static void core_stream_closed(struct ev_loop *loop, void *arg) {
  (void)loop;
  core_stream *cs = arg;
  cs->got_closed = true;
  cs->on_closed(cs->hub, cs);
}

/* The message is ours (takes_messages): it goes to the core as it is. */
static void on_stream_message(rpc_call *call, const ProtobufCMessage *message,
                              void *arg) {
  loop_stream *ls = arg;
  ProtobufCMessage *owned = (ProtobufCMessage *)message;
  if (ls->sent_closed) {
    protobuf_c_message_free_unpacked(owned, NULL);
    return;
  }
  stream_message *m = malloc(sizeof(*m));
  if (m == NULL) {
    protobuf_c_message_free_unpacked(owned, NULL);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    ls->call = NULL;
    loop_send_closed(ls);
    return;
  }
  *m = (stream_message){
      {core_stream_message, m, true, NULL, free_carried_message},
      ls->hub,
      NULL,
      ls->core,
      NULL,
      owned,
      0};
  rpc_loop_thread_post(ls->hub->core, &m->task);
}

static void on_stream_half_close(rpc_call *call, void *arg) {
  (void)call;
  loop_send_closed(arg);
}

static void on_stream_cancel(rpc_call *call, rpc_status_code reason,
                             void *arg) {
  (void)reason;
  loop_stream *ls = arg;
  rpc_call_finish(call, RPC_STATUS_CANCELLED, NULL); /* only releases */
  ls->call = NULL;
  loop_send_closed(ls);
}

int loop_stream_open(job_hub *hub, rpc_call *call, core_stream *stream,
                     void (*opened)(job_hub *hub, core_stream *stream),
                     bool client_streams) {
  loop_stream *ls = calloc(1, sizeof(*ls));
  stream_message *m = malloc(sizeof(*m));
  if (ls == NULL || m == NULL) {
    free(ls);
    free(m);
    return -1;
  }
  ls->hub = hub;
  ls->call = call;
  ls->core = stream;
  ls->final_task = (rpc_loop_task){loop_stream_final, ls, false, NULL};
  stream->hub = hub;
  stream->loop = ls;
  stream->loop_thread = rpc_call_loop_thread(call);
  stream->closed_task =
      (rpc_loop_task){core_stream_closed, stream, false, NULL};
  rpc_call_hooks hooks = {
      .takes_messages = true,
      .on_message = client_streams ? on_stream_message : NULL,
      .on_half_close = client_streams ? on_stream_half_close : NULL,
      .on_cancel = on_stream_cancel,
  };
  rpc_call_set_hooks(call, &hooks, ls);
  *m = (stream_message){{core_stream_message, m, true, NULL, NULL},
                        hub,
                        NULL,
                        stream,
                        opened,
                        NULL,
                        0};
  rpc_loop_thread_post(hub->core, &m->task);
  return 0;
}

/* Streams: the core half. */

int core_stream_send(job_hub *hub, core_stream *stream, const uint8_t *data,
                     size_t size) {
  (void)hub;
  if (stream->sent_final || stream->got_closed) {
    return -1;
  }
  stream_message *m = malloc(sizeof(*m) + size);
  if (m == NULL) {
    return -1;
  }
  *m = (stream_message){{loop_stream_send, m, true, NULL, NULL},
                        hub,
                        stream->loop,
                        NULL,
                        NULL,
                        NULL,
                        size};
  memcpy(m->data, data, size);
  rpc_loop_thread_post(stream->loop_thread, &m->task);
  return 0;
}

void core_stream_finish(job_hub *hub, core_stream *stream, rpc_status_code code,
                        const char *message) {
  (void)hub;
  if (stream->sent_final) {
    return;
  }
  stream->sent_final = true;
  loop_stream *ls = stream->loop;
  ls->final_code = code;
  snprintf(ls->final_message, sizeof(ls->final_message), "%s",
           message != NULL ? message : "");
  rpc_loop_thread_post(stream->loop_thread, &ls->final_task);
}

/* A function run on the core while its caller waits. */
typedef struct core_sync {
  rpc_loop_task task;
  job_hub *hub;
  void (*fn)(job_hub *hub, void *arg);
  void *arg;
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  bool done;
} core_sync;

static void core_sync_run(struct ev_loop *loop, void *arg) {
  (void)loop;
  core_sync *sync = arg;
  sync->fn(sync->hub, sync->arg);
  pthread_mutex_lock(&sync->lock);
  sync->done = true;
  pthread_cond_signal(&sync->done_cond);
  pthread_mutex_unlock(&sync->lock);
}

void hub_run_on_core(job_hub *hub, void (*fn)(job_hub *hub, void *arg),
                     void *arg) {
  core_sync sync = {.hub = hub, .fn = fn, .arg = arg};
  sync.task = (rpc_loop_task){core_sync_run, &sync, false, NULL};
  pthread_mutex_init(&sync.lock, NULL);
  pthread_cond_init(&sync.done_cond, NULL);
  rpc_loop_thread_post(sync.hub->core, &sync.task);
  pthread_mutex_lock(&sync.lock);
  while (!sync.done) {
    pthread_cond_wait(&sync.done_cond, &sync.lock);
  }
  pthread_mutex_unlock(&sync.lock);
  pthread_cond_destroy(&sync.done_cond);
  pthread_mutex_destroy(&sync.lock);
}

void hub_configure(job_hub *hub, void (*fn)(job_hub *hub, void *arg),
                   void *arg) {
  if (hub->owns_core) {
    hub_run_on_core(hub, fn, arg);
  } else {
    fn(hub, arg);
  }
}
