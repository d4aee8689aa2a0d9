/* server.c: the gRPC server: its options and services, one listening
 * socket that every loop thread accepts from, one libev loop per thread,
 * and shutdown. A connection's life is server_conn.c's, its HTTP/2
 * session server_h2.c's, what a call means call.c's. */
#include "rpc/server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "rpc/log.h"
#include "rpc/loop_thread.h"
#include "rpc/server_conn.h"
#include "rpc/server_h2.h"
#include "rpc/server_internal.h"
#include "rpc/server_state.h"
#include "rpc/socket.h"

#define ACCEPTS_PER_EVENT 64
/* s a thread stops accepting after running out of file descriptors: the
 * pending connection stays in the backlog, and accept() would fail again
 * at once (a level-triggered watcher would spin on it). */
#define ACCEPT_PAUSE_SECONDS 0.1

/* Options and services. */

void rpc_server_options_default(rpc_server_options *options) {
  *options = (rpc_server_options){
      .listen = "127.0.0.1:50051",
      .threads = 0,
      .max_receive_message_bytes = 4u << 20,
      .max_concurrent_streams = 100,
      .max_header_list_bytes = 16u << 10,
      .idle_timeout = 300.,
      .keepalive_interval = 60.,
      .keepalive_timeout = 20.,
      .shutdown_grace = 10.,
      .busy_poll = 200e-6,
      .max_stream_output_bytes = 8u << 20,
      .max_connection_output_bytes = 64u << 20,
      .tls = NULL,
  };
}

rpc_server *rpc_server_new(const rpc_server_options *options, char *err,
                           size_t err_size) {
  rpc_server *server = calloc(1, sizeof(*server));
  if (server == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  server->options = *options;
  server->listen_fd = -1;
  rpc_service_table_init(&server->services);
  server->options.listen = strdup(options->listen);
  if (server->options.listen == NULL) {
    free(server);
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  if (server->options.threads == 0) {
    server->options.threads = rpc_usable_cpus();
  }
  if (server->options.loop_thread != NULL && server->options.threads != 1) {
    snprintf(err, err_size, "a shared loop thread needs exactly one thread");
    free((char *)server->options.listen);
    free(server);
    return NULL;
  }
  return server;
}

int rpc_server_add_service(rpc_server *server, const rpc_service_desc *desc,
                           const void *handlers, void *user) {
  if (server->started) {
    return -1;
  }
  return rpc_service_table_add(&server->services, desc, handlers, user);
}

int rpc_server_set_protocol_hook(rpc_server *server,
                                 const rpc_protocol_hook *hook) {
  if (server->started ||
      (hook->http1_accept != NULL && hook->http1_close_loop == NULL)) {
    return -1;
  }
  server->hook = *hook;
  return 0;
}

size_t rpc_server_service_count(const rpc_server *server) {
  return server->services.service_count;
}

const rpc_service_desc *rpc_server_service(const rpc_server *server,
                                           size_t index) {
  return index < server->services.service_count
             ? server->services.services[index].desc
             : NULL;
}

/* Out of descriptors (or kernel memory) the connection stays queued and
 * accept() fails again at once: pause this thread's accepting for a
 * moment instead of spinning on the level-triggered watcher. */
static void pause_accepting(server_thread *thread, int error) {
  rpc_log_folded(RPC_LOG_WARN, "accept_paused", "error=\"%s\" pause_ms=%d",
                 strerror(error), (int)(ACCEPT_PAUSE_SECONDS * 1000));
  ev_io_stop(thread->loop, &thread->accept_watcher);
  ev_timer_stop(thread->loop, &thread->accept_pause);
  ev_timer_set(&thread->accept_pause, ACCEPT_PAUSE_SECONDS, 0.);
  ev_timer_start(thread->loop, &thread->accept_pause);
}

static void on_accept_pause_end(struct ev_loop *loop, ev_timer *timer,
                                int events) {
  (void)events;
  server_thread *thread = timer->data;
  if (!thread->stopping) {
    ev_io_start(loop, &thread->accept_watcher);
  }
}

static void on_accept(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  server_thread *thread = watcher->data;
  for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
    int fd = accept4(thread->server->listen_fd, NULL, NULL,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int error = errno;
      if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
          error == ENOMEM) {
        pause_accepting(thread, error);
      } else if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR &&
                 error != ECONNABORTED) {
        rpc_log_folded(RPC_LOG_WARN, "accept_failed", "error=\"%s\"",
                       strerror(error));
      }
      return;
    }
    rpc_log(RPC_LOG_DEBUG, "connection_accepted", "thread=%u", thread->index);
    (void)server_conn_open(thread, fd); /* failure is logged */
  }
}

/* Threads, tasks and shutdown. */

int rpc_server_run_on_loops(rpc_server *server,
                            void (*fn)(struct ev_loop *loop, void *arg),
                            void *arg) {
  /* All or nothing: allocate every task before posting any. */
  rpc_loop_task *list = NULL;
  for (unsigned i = 0; i < server->thread_count; i++) {
    rpc_loop_task *task = malloc(sizeof(*task));
    if (task == NULL) {
      while (list != NULL) {
        rpc_loop_task *next = list->next;
        free(list);
        list = next;
      }
      return -1;
    }
    *task = (rpc_loop_task){fn, arg, true, list};
    list = task;
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    rpc_loop_task *task = list;
    list = task->next;
    rpc_loop_thread_post(server->threads[i]->runner, task);
  }
  return 0;
}

static void on_grace_expired(struct ev_loop *loop, ev_timer *timer,
                             int events) {
  (void)events;
  server_thread *thread = timer->data;
  if (thread->connections != NULL) {
    rpc_log(RPC_LOG_WARN, "shutdown_grace_expired", "thread=%u", thread->index);
  }
  while (thread->connections != NULL) {
    server_conn_close(thread->connections);
  }
  ev_break(loop, EVBREAK_ALL);
}

static void begin_shutdown(struct ev_loop *loop, void *arg) {
  server_thread *thread = arg;
  thread->stopping = true;
  ev_io_stop(loop, &thread->accept_watcher);
  ev_timer_stop(loop, &thread->accept_pause);
  /* The socket is shared: the last thread to stop accepting closes it,
   * after which connecting is refused. */
  rpc_server *server = thread->server;
  if (server->listen_fd >= 0 &&
      atomic_fetch_sub(&server->accepting_threads, 1) == 1) {
    close(server->listen_fd);
    server->listen_fd = -1;
  }
  server_conn_close_hooked(thread);
  for (rpc_connection *c = thread->connections, *next; c != NULL; c = next) {
    next = c->next;
    if (c->phase == PHASE_H2) {
      server_h2_goaway(c);
    } else {
      server_conn_close(c);
    }
  }
  if (thread->connections == NULL) {
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  ev_timer_init(&thread->grace_timer, on_grace_expired,
                thread->server->options.shutdown_grace, 0.);
  thread->grace_timer.data = thread;
  ev_timer_start(loop, &thread->grace_timer);
}

static void thread_free(server_thread *thread) {
  if (thread == NULL) {
    return;
  }
  while (thread->connections != NULL) {
    server_conn_close(thread->connections);
  }
  if (thread->runner != NULL) {
    server_conn_close_hooked(thread);
    ev_prepare_stop(thread->loop, &thread->flusher);
    ev_idle_stop(thread->loop, &thread->spinner);
    ev_io_stop(thread->loop, &thread->accept_watcher);
    ev_timer_stop(thread->loop, &thread->accept_pause);
    if (thread->owns_runner) {
      rpc_loop_thread_free(thread->runner);
    }
  }
  free(thread);
}

/* thread_new makes loop thread index, accepting from the server's
 * listening socket (which thread 0 opens) unless loop is given (the
 * caller's loop: no listener, no thread of its own). */
static server_thread *thread_new(rpc_server *server, unsigned index,
                                 struct ev_loop *loop, char *err,
                                 size_t err_size) {
  server_thread *thread = calloc(1, sizeof(*thread));
  if (thread == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  thread->server = server;
  thread->index = index;
  thread->owns_runner = loop != NULL || server->options.loop_thread == NULL;
  thread->runner = thread->owns_runner ? rpc_loop_thread_new(loop)
                                       : server->options.loop_thread;
  if (thread->runner == NULL) {
    snprintf(err, err_size, "cannot create an event loop");
    thread_free(thread);
    return NULL;
  }
  thread->loop = rpc_loop_thread_loop(thread->runner);
  ev_prepare_init(&thread->flusher, server_conn_on_prepare);
  thread->flusher.data = thread;
  ev_prepare_start(thread->loop, &thread->flusher);
  ev_idle_init(&thread->spinner, server_conn_on_spin);
  thread->spinner.data = thread;
  ev_timer_init(&thread->accept_pause, on_accept_pause_end, 0., 0.);
  thread->accept_pause.data = thread;
  if (loop != NULL) {
    return thread;
  }
  if (index == 0) {
    server->listen_fd =
        rpc_socket_listen(server->options.listen, err, err_size);
    if (server->listen_fd < 0) {
      thread_free(thread);
      return NULL;
    }
    server->port = (uint16_t)rpc_socket_local_port(server->listen_fd);
  }
  ev_io_init(&thread->accept_watcher, on_accept, server->listen_fd, EV_READ);
  thread->accept_watcher.data = thread;
  ev_io_start(thread->loop, &thread->accept_watcher);
  return thread;
}

/* What every way of starting needs: callbacks, routes, thread slots. */
static int prepare_start(rpc_server *server, unsigned threads, char *err,
                         size_t err_size) {
  if (server->started) {
    snprintf(err, err_size, "server already started");
    return -1;
  }
  if (server_h2_init() != 0 ||
      rpc_service_table_build_routes(&server->services) != 0) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  server->threads = calloc(threads, sizeof(*server->threads));
  if (server->threads == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  return 0;
}

int rpc_server_start_on_loop(rpc_server *server, struct ev_loop *loop,
                             char *err, size_t err_size) {
  if (prepare_start(server, 1, err, err_size) != 0) {
    return -1;
  }
  server->threads[0] = thread_new(server, 0, loop, err, err_size);
  if (server->threads[0] == NULL) {
    return -1;
  }
  server->thread_count = 1;
  server->started = true;
  return 0;
}

int rpc_server_adopt_fd(rpc_server *server, int fd) {
  if (server->thread_count == 0) {
    close(fd);
    return -1;
  }
  return server_conn_open(server->threads[0], fd);
}

void rpc_server_close_connections(rpc_server *server) {
  for (unsigned i = 0; i < server->thread_count; i++) {
    server_conn_close_hooked(server->threads[i]);
    while (server->threads[i]->connections != NULL) {
      server_conn_close(server->threads[i]->connections);
    }
  }
}

int rpc_server_start(rpc_server *server, char *err, size_t err_size) {
  if (prepare_start(server, server->options.threads, err, err_size) != 0) {
    return -1;
  }
  for (unsigned i = 0; i < server->options.threads; i++) {
    server->threads[i] = thread_new(server, i, NULL, err, err_size);
    if (server->threads[i] == NULL) {
      goto fail;
    }
    server->thread_count = i + 1;
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    char name[16];
    snprintf(name, sizeof(name), "rpc-loop-%u", i % 1000);
    int rv = rpc_loop_thread_start(server->threads[i]->runner, name);
    if (rv != 0) {
      snprintf(err, err_size, "cannot start a thread: %s", strerror(rv));
      goto fail;
    }
    server->threads[i]->running = true;
  }
  server->started = true;
  return 0;
fail:
  server->started = true; /* so that shutdown joins what runs */
  rpc_server_shutdown(server);
  return -1;
}

uint16_t rpc_server_port(const rpc_server *server) { return server->port; }

unsigned rpc_server_thread_count(const rpc_server *server) {
  return server->thread_count;
}

struct ev_loop *rpc_server_loop(const rpc_server *server, unsigned index) {
  return index < server->thread_count ? server->threads[index]->loop : NULL;
}

void rpc_server_shutdown(rpc_server *server) {
  unsigned running = 0;
  for (unsigned i = 0; i < server->thread_count; i++) {
    running += server->threads[i]->running ? 1u : 0u;
  }
  atomic_store(&server->accepting_threads, running);
  for (unsigned i = 0; i < server->thread_count; i++) {
    server_thread *thread = server->threads[i];
    if (thread->running) {
      /* The task lives in the thread: no allocation can fail here. */
      thread->shutdown_task =
          (rpc_loop_task){begin_shutdown, thread, false, NULL};
      rpc_loop_thread_post(thread->runner, &thread->shutdown_task);
    }
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    server_thread *thread = server->threads[i];
    if (thread->running) {
      rpc_loop_thread_join(thread->runner);
      thread->running = false;
    }
  }
}

void rpc_server_free(rpc_server *server) {
  if (server == NULL) {
    return;
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    thread_free(server->threads[i]);
  }
  if (server->listen_fd >= 0) {
    close(server->listen_fd);
  }
  free(server->threads);
  rpc_service_table_free(&server->services);
  free((char *)server->options.listen);
  free(server);
}
