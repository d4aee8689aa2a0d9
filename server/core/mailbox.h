/* mailbox.h: calls and streams between the loop threads and the core.
 * A handler (on a loop thread) posts a hub_call to the core; the core
 * answers by posting it back to the call's loop, where it is sent and
 * finished. Streams (Connect, Watch) have a loop half and a core half
 * that exchange messages the same way. Functions marked "loop" run on a
 * loop thread, the others on the core. */
#ifndef JOBHUB_SERVER_CORE_MAILBOX_H
#define JOBHUB_SERVER_CORE_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "rpc/call.h"
#include "rpc/loop_thread.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/core/job_table.h"

struct hub_worker;

typedef struct hub_call hub_call;
typedef void (*hub_call_fn)(job_hub *hub, hub_call *hc);

/* A unary call handed to the core. The request is the call's (it lives
 * until the call finishes) and is only read. The core answers with
 * hub_call_answer*, once; the loop then sends and finishes. */
struct hub_call {
  rpc_loop_task task;
  job_hub *hub;
  rpc_call *call;               /* loop only */
  rpc_loop_thread *loop_thread; /* where the answer goes */
  const void *request;
  hub_call_fn run;         /* core: serves the request */
  hub_call_fn undelivered; /* core: an OK answer could not be sent */
  rpc_status_code code;
  char message[256];
  rpc_buffer answer; /* the packed response when OK */
  /* Core state of a call the core holds on to. */
  hub_call *next_waiting;
  ev_timer timer;
  bool timer_active;
  struct hub_worker *worker;
  uint32_t want;
  job_record *job;
  uint64_t query_id;
  uint8_t *data; /* owned: bytes prepared on the loop (a fixed part) */
  size_t data_size;
  job_undo undo; /* of the transition the call waits for; freed with it */
};

/* hub_call_post (loop) hands the call to the core, which runs run; data
 * (malloc'd, may be NULL) goes with it and is freed with it. Out of
 * memory: the call is finished with RESOURCE_EXHAUSTED and data freed. */
void hub_call_post(job_hub *hub, rpc_call *call, const void *request,
                   hub_call_fn run, hub_call_fn undelivered, uint8_t *data,
                   size_t data_size);

/* hub_call_answer sends answer (filled) with OK; hub_call_fail the error.
 * Either posts the call back to its loop; the core must not touch hc
 * afterwards. */
void hub_call_answer(job_hub *hub, hub_call *hc);
void hub_call_fail(job_hub *hub, hub_call *hc, rpc_status_code code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A stream (Connect, Watch) has two halves: the loop's, which owns the
 * rpc_call, and the core's. Each half sends exactly one final message to
 * the other (the core: "finish with this status"; the loop: "closed") and
 * frees itself once it has both sent and received one. */
typedef struct loop_stream loop_stream;
typedef struct core_stream core_stream;

struct core_stream {
  job_hub *hub;
  loop_stream *loop;
  rpc_loop_task closed_task; /* the loop's final, posted once */
  rpc_loop_thread *loop_thread;
  bool sent_final, got_closed;
  /* A message from the client (Connect: a WorkerMessage), borrowed for
   * the call. */
  void (*on_message)(job_hub *hub, core_stream *stream,
                     const ProtobufCMessage *message);
  /* The loop half is done (client gone, or after our final): the owner
   * cleans up, and frees itself if sent_final. */
  void (*on_closed)(job_hub *hub, core_stream *stream);
};

/* loop_stream_open (loop) binds call to stream, a core half the caller
 * allocated (its ownership passes to the core), and posts opened to the
 * core, which runs there first. Returns 0, or -1 (no memory: the caller
 * finishes the call and frees stream). */
int loop_stream_open(job_hub *hub, rpc_call *call, core_stream *stream,
                     void (*opened)(job_hub *hub, core_stream *stream),
                     bool client_streams);

/* core_stream_send queues message bytes (copied) for the client. Returns
 * 0 or -1 (no memory, or the final was sent, or the client is gone). */
int core_stream_send(job_hub *hub, core_stream *stream, const uint8_t *data,
                     size_t size);

/* core_stream_finish sends the final: the call ends with code. Only the
 * first final counts. */
void core_stream_finish(job_hub *hub, core_stream *stream, rpc_status_code code,
                        const char *message);

/* hub_run_on_core runs fn(hub, arg) on the core thread and returns once it
 * has run (any thread but the core's; the core loop must be running). */
void hub_run_on_core(job_hub *hub, void (*fn)(job_hub *hub, void *arg),
                     void *arg);

/* hub_configure runs fn(hub, arg) on the core before the server serves
 * and returns once it has run: on the core thread when the hub has its
 * own (already running), else at once (a shared loop thread is not
 * started yet). How the hub is given observers and encoders. */
void hub_configure(job_hub *hub, void (*fn)(job_hub *hub, void *arg),
                   void *arg);

#endif
