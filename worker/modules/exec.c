/* exec.c: the exec module: runs the configured command (--module-config,
 * through /bin/sh -c) once per job, in a process group of its own, with
 * the Job as ProtoJSON on its stdin; what it prints on stdout, JSON, is
 * the result's value. A non-zero exit fails the job with its stderr;
 * module_params.timeout_seconds (default 600) and a cancellation kill the
 * whole process group. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "jobhub_descriptor_set.h"
#include "rpc/json.h"
#include "rpc/log.h"
#include "worker/modules/modules.h"

#define STDOUT_LIMIT (16u << 20) /* bytes of result JSON */
#define STDERR_LIMIT (8u << 10)  /* bytes of stderr kept for the error */
#define DEFAULT_TIMEOUT 600.0    /* s */

typedef struct exec_state exec_state;

/* One process: the job it runs (NULL once cancelled: it is then only
 * reaped), its pipes and what came out of them. */
typedef struct exec_run {
  exec_state *state;
  struct exec_run *prev, *next;
  worker_job *job;
  pid_t pid;
  ev_child child;
  ev_io in, out, err;
  ev_timer timeout;
  rpc_buffer input; /* the Job as JSON */
  size_t written;
  rpc_buffer output; /* stdout */
  rpc_buffer errors; /* stderr, the last STDERR_LIMIT bytes */
  bool output_too_long, timed_out;
} exec_run;

struct exec_state {
  struct ev_loop *loop;
  char *command;
  rpc_descriptor_pool *pool;
  exec_run *runs;
};

static int exec_open(struct ev_loop *loop, const char *config, void **out,
                     char *err, size_t err_size) {
  if (config == NULL || config[0] == '\0') {
    snprintf(err, err_size,
             "the exec module needs the command to run: --module-config "
             "'COMMAND' (run with /bin/sh -c, the job as JSON on stdin)");
    return -1;
  }
  exec_state *state = calloc(1, sizeof(*state));
  if (state == NULL || (state->command = strdup(config)) == NULL ||
      (state->pool = rpc_descriptor_pool_new()) == NULL ||
      rpc_descriptor_pool_add_set(state->pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0) {
    snprintf(err, err_size, "out of memory");
    if (state != NULL) {
      rpc_descriptor_pool_free(state->pool);
      free(state->command);
    }
    free(state);
    return -1;
  }
  state->loop = loop;
  *out = state;
  return 0;
}

static void stop_io(exec_run *run) {
  struct ev_loop *loop = run->state->loop;
  ev_io *ios[] = {&run->in, &run->out, &run->err};
  for (size_t i = 0; i < 3; i++) {
    if (ev_is_active(ios[i])) {
      ev_io_stop(loop, ios[i]);
    }
    if (ios[i]->fd >= 0) {
      close(ios[i]->fd);
      ios[i]->fd = -1;
    }
  }
  ev_timer_stop(loop, &run->timeout);
}

static void run_free(exec_run *run) {
  exec_state *state = run->state;
  stop_io(run);
  ev_child_stop(state->loop, &run->child);
  if (run->prev != NULL) {
    run->prev->next = run->next;
  } else {
    state->runs = run->next;
  }
  if (run->next != NULL) {
    run->next->prev = run->prev;
  }
  rpc_buffer_free(&run->input);
  rpc_buffer_free(&run->output);
  rpc_buffer_free(&run->errors);
  free(run);
}

static void kill_group(exec_run *run) {
  if (run->pid > 0) {
    (void)kill(-run->pid, SIGKILL);
  }
}

static void exec_close(void *arg) {
  exec_state *state = arg;
  /* Whatever still runs is killed and reaped here: nothing outlives the
   * worker. */
  while (state->runs != NULL) {
    exec_run *run = state->runs;
    kill_group(run);
    (void)waitpid(run->pid, NULL, 0);
    run_free(run);
  }
  rpc_descriptor_pool_free(state->pool);
  free(state->command);
  free(state);
}

/* The process ended: the job's outcome from its exit and output. */
static void finish(exec_run *run, int status) {
  worker_job *job = run->job;
  exec_state *state = run->state;
  if (job == NULL) {
    run_free(run); /* cancelled: only reaped */
    return;
  }
  char message[STDERR_LIMIT + 200];
  const char *tail = run->errors.len > 0 ? (const char *)run->errors.data : "";
  int tail_len = (int)run->errors.len;
  while (tail_len > 0 &&
         (tail[tail_len - 1] == '\n' || tail[tail_len - 1] == ' ')) {
    tail_len--;
  }
  if (run->timed_out) {
    snprintf(message, sizeof(message), "timed out; killed: %.*s", tail_len,
             tail);
    worker_job_fail(job, message, true);
  } else if (WIFSIGNALED(status)) {
    snprintf(message, sizeof(message), "killed by signal %d: %.*s",
             WTERMSIG(status), tail_len, tail);
    worker_job_fail(job, message, false);
  } else if (WEXITSTATUS(status) != 0) {
    snprintf(message, sizeof(message), "exit code %d: %.*s",
             WEXITSTATUS(status), tail_len, tail);
    worker_job_fail(job, message, false);
  } else if (run->output_too_long) {
    snprintf(message, sizeof(message), "stdout is over %u bytes", STDOUT_LIMIT);
    worker_job_fail(job, message, false);
  } else {
    rpc_buffer value;
    rpc_buffer_init(&value);
    char why[256];
    const char *text =
        run->output.len > 0 ? (const char *)run->output.data : "null";
    size_t text_len = run->output.len > 0 ? run->output.len : 4;
    Google__Protobuf__Value *parsed = NULL;
    if (rpc_json_to_wire(state->pool, "google.protobuf.Value", text, text_len,
                         &value, why, sizeof(why)) != 0 ||
        (parsed = google__protobuf__value__unpack(NULL, value.len,
                                                  value.data)) == NULL) {
      snprintf(message, sizeof(message), "stdout is not a JSON value: %s",
               parsed == NULL && value.len > 0 ? "out of memory" : why);
      worker_job_fail(job, message, false);
    } else {
      Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
      result.value = parsed;
      worker_job_succeed(job, &result);
      google__protobuf__value__free_unpacked(parsed, NULL);
    }
    rpc_buffer_free(&value);
  }
  run_free(run);
}

static void on_child(struct ev_loop *loop, ev_child *watcher, int events) {
  (void)loop;
  (void)events;
  exec_run *run = watcher->data;
  ev_child_stop(loop, watcher);
  /* Drain what is still in the pipes before judging. */
  char chunk[65536];
  ssize_t n;
  while (run->out.fd >= 0 &&
         (n = read(run->out.fd, chunk, sizeof(chunk))) > 0) {
    if (run->output.len + (size_t)n > STDOUT_LIMIT) {
      run->output_too_long = true;
      break;
    }
    (void)rpc_buffer_append(&run->output, chunk, (size_t)n);
  }
  while (run->err.fd >= 0 &&
         (n = read(run->err.fd, chunk, sizeof(chunk))) > 0) {
    (void)rpc_buffer_append(&run->errors, chunk, (size_t)n);
    if (run->errors.len > STDERR_LIMIT) {
      rpc_buffer_consume(&run->errors, run->errors.len - STDERR_LIMIT);
    }
  }
  if (rpc_buffer_append(&run->output, "", 1) == 0) {
    run->output.len--; /* a terminator for the JSON text, not counted */
  }
  if (rpc_buffer_append(&run->errors, "", 1) == 0) {
    run->errors.len--;
  }
  finish(run, watcher->rstatus);
}

static void on_stdin(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)events;
  exec_run *run = watcher->data;
  ssize_t n = write(watcher->fd, run->input.data + run->written,
                    run->input.len - run->written);
  if (n > 0) {
    run->written += (size_t)n;
  }
  if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
      run->written == run->input.len) {
    /* All written, or the command stopped reading: its stdin ends. */
    ev_io_stop(loop, watcher);
    close(watcher->fd);
    watcher->fd = -1;
  }
}

static void on_output(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)events;
  exec_run *run = watcher->data;
  bool is_stdout = watcher == &run->out;
  char chunk[65536];
  ssize_t n = read(watcher->fd, chunk, sizeof(chunk));
  if (n > 0) {
    rpc_buffer *into = is_stdout ? &run->output : &run->errors;
    if (is_stdout && run->output.len + (size_t)n > STDOUT_LIMIT) {
      run->output_too_long = true;
      kill_group(run);
    } else {
      (void)rpc_buffer_append(into, chunk, (size_t)n);
    }
    if (!is_stdout && run->errors.len > STDERR_LIMIT) {
      rpc_buffer_consume(&run->errors, run->errors.len - STDERR_LIMIT);
    }
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    return;
  }
  ev_io_stop(loop, watcher);
  close(watcher->fd);
  watcher->fd = -1;
}

static void on_timeout(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  exec_run *run = timer->data;
  run->timed_out = true;
  kill_group(run); /* on_child follows and reports it */
}

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static int exec_start(worker_job *job, char *err, size_t err_size) {
  exec_state *state = worker_job_module_state(job);
  const Jobhub__V1__Job *j = worker_job_job(job);
  double timeout;
  if (module_param_number(j, "timeout_seconds", DEFAULT_TIMEOUT, 0.001,
                          30 * 86400.0, &timeout) != 0) {
    snprintf(err, err_size,
             "module_params.timeout_seconds must be a number of seconds, "
             "over 0 and at most 30 days");
    return -1;
  }
  exec_run *run = calloc(1, sizeof(*run));
  if (run == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  run->state = state;
  run->job = job;
  run->in.fd = run->out.fd = run->err.fd = -1;
  rpc_buffer_init(&run->input);
  rpc_buffer_init(&run->output);
  rpc_buffer_init(&run->errors);
  size_t size = jobhub__v1__job__get_packed_size(j);
  uint8_t *packed = malloc(size ? size : 1);
  rpc_json_options json = {.indent = 0};
  if (packed == NULL) {
    snprintf(err, err_size, "out of memory");
    free(run);
    return -1;
  }
  jobhub__v1__job__pack(j, packed);
  int rv = rpc_json_from_wire(state->pool, "jobhub.v1.Job", packed, size, &json,
                              &run->input, err, err_size);
  free(packed);
  if (rv != 0 || rpc_buffer_append(&run->input, "\n", 1) != 0) {
    rpc_buffer_free(&run->input);
    free(run);
    return -1;
  }
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errs[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(errs, O_CLOEXEC) != 0) {
    snprintf(err, err_size, "pipe: %s", strerror(errno));
    goto fail;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(err, err_size, "fork: %s", strerror(errno));
    goto fail;
  }
  if (pid == 0) {
    /* The child: its own process group (so a kill reaches what it
     * starts), the pipes as its standard streams, default signals. */
    (void)setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(errs[1], 2) < 0) {
      _exit(127);
    }
    execl("/bin/sh", "sh", "-c", state->command, (char *)NULL);
    _exit(127);
  }
  (void)setpgid(pid, pid); /* also here: no race with an early kill */
  close(in[0]);
  close(out[1]);
  close(errs[1]);
  run->pid = pid;
  (void)set_nonblocking(in[1]);
  (void)set_nonblocking(out[0]);
  (void)set_nonblocking(errs[0]);
  ev_io_init(&run->in, on_stdin, in[1], EV_WRITE);
  ev_io_init(&run->out, on_output, out[0], EV_READ);
  ev_io_init(&run->err, on_output, errs[0], EV_READ);
  run->in.data = run->out.data = run->err.data = run;
  ev_io_start(state->loop, &run->in);
  ev_io_start(state->loop, &run->out);
  ev_io_start(state->loop, &run->err);
  ev_child_init(&run->child, on_child, pid, 0);
  run->child.data = run;
  ev_child_start(state->loop, &run->child);
  ev_timer_init(&run->timeout, on_timeout, timeout, 0);
  run->timeout.data = run;
  ev_timer_start(state->loop, &run->timeout);
  run->next = state->runs;
  if (state->runs != NULL) {
    state->runs->prev = run;
  }
  state->runs = run;
  worker_job_set_data(job, run);
  return 0;
fail:
  for (int i = 0; i < 2; i++) {
    int fds[] = {in[i], out[i], errs[i]};
    for (int k = 0; k < 3; k++) {
      if (fds[k] >= 0) {
        close(fds[k]);
      }
    }
  }
  rpc_buffer_free(&run->input);
  free(run);
  return -1;
}

static void exec_cancel(worker_job *job) {
  exec_run *run = worker_job_data(job);
  run->job = NULL; /* reaped when it exits */
  stop_io(run);
  kill_group(run);
}

const worker_module exec_module = {"exec", exec_open, exec_close, exec_start,
                                   exec_cancel};
