/* cli_jobs.c: jobhub jobs submit|get|list|result|cancel|watch|history|
 * reset, on jobhub.v1.Jobs. Requests are JSON (a base from the command
 * line, flags on top) marshalled by rpc/json; answers are printed as JSON
 * or, for the list-like ones, as tables, decoded with the generated
 * types only to pick the columns. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli_commands.h"
#include "client/cli_output.h"
#include "client/cli_request.h"
#include "jobhub/v1/jobs.rpc.h"
#include "rpc/base64.h"

#define PROGRESS_BAR_WIDTH 30

static const char *state_name(int state) {
  const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value(
      &jobhub__v1__job_state__descriptor, state);
  return value != NULL ? value->name : "?";
}

static bool is_final(Jobhub__V1__JobState state) {
  return state == JOBHUB__V1__JOB_STATE__DONE ||
         state == JOBHUB__V1__JOB_STATE__FAILED ||
         state == JOBHUB__V1__JOB_STATE__CANCELLED;
}

/* The request of a command whose single word is an ID or a REQUEST. */
static json_t *id_request(const cli_args *args, int *exit_code) {
  const char *word = args->n_positional > 0 ? args->positional[0] : NULL;
  if (word != NULL && !cli_request_is_json(word)) {
    json_t *request = json_object();
    json_object_set_new(request, "id", json_string(word));
    *exit_code = CLI_EXIT_OK;
    return request;
  }
  return cli_request_new(word, exit_code);
}

/* Sets the pool/job-type filter fields: from the flags, or "any" when
 * neither the flags nor the base request name one (pool 0 is a real
 * pool, so the request must say "any"). */
static void set_filter(json_t *request, const cli_args *args, bool with_state,
                       bool with_subject) {
  if (args->pool.set) {
    cli_request_set(request, "poolId", "pool_id",
                    json_integer((json_int_t)args->pool.value));
    cli_request_set(request, "anyPool", "any_pool", json_false());
  } else if (!cli_request_has(request, "poolId", "pool_id") &&
             !cli_request_has(request, "anyPool", "any_pool")) {
    cli_request_set(request, "anyPool", "any_pool", json_true());
  }
  if (args->job_type.set) {
    cli_request_set(request, "jobTypeId", "job_type_id",
                    json_integer((json_int_t)args->job_type.value));
    cli_request_set(request, "anyJobType", "any_job_type", json_false());
  } else if (!cli_request_has(request, "jobTypeId", "job_type_id") &&
             !cli_request_has(request, "anyJobType", "any_job_type")) {
    cli_request_set(request, "anyJobType", "any_job_type", json_true());
  }
  if (with_state && args->state != NULL) {
    /* "done" and "DONE" alike; rpc/json rejects names that are not. */
    char name[64];
    size_t i = 0;
    for (; args->state[i] != '\0' && i + 1 < sizeof(name); i++) {
      name[i] = (char)toupper((unsigned char)args->state[i]);
    }
    name[i] = '\0';
    cli_request_set(request, "state", NULL, json_string(name));
  }
  if (with_subject && args->subject != NULL) {
    cli_request_set(request, "subject", NULL, json_string(args->subject));
  }
}

/* Calls method with request and prints the answer as JSON. */
static int call_and_print(cli_context *ctx, const rpc_method *rpc,
                          json_t *request) {
  cli_method method = cli_method_of(rpc);
  rpc_buffer response;
  int exit_code = cli_request_call(ctx, &method, request, &response);
  json_decref(request);
  if (exit_code == CLI_EXIT_OK) {
    exit_code = cli_output_json(ctx, cli_jobhub_pool(ctx), method.output_type,
                                response.data, response.len);
  }
  rpc_buffer_free(&response);
  return exit_code;
}

static int run_get(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = id_request(args, &exit_code);
  return request != NULL
             ? call_and_print(ctx, jobhub_v1_jobs_get_method, request)
             : exit_code;
}

static int run_result(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = id_request(args, &exit_code);
  return request != NULL
             ? call_and_print(ctx, jobhub_v1_jobs_get_result_method, request)
             : exit_code;
}

static int run_cancel(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = id_request(args, &exit_code);
  return request != NULL
             ? call_and_print(ctx, jobhub_v1_jobs_cancel_method, request)
             : exit_code;
}

static void job_row(cli_table *table, const Jobhub__V1__Job *job) {
  char created[32];
  cli_format_time(job->created_at != NULL ? job->created_at->seconds : 0,
                  created, sizeof(created));
  cli_table_cell(table, "%s", job->id);
  cli_table_cell(table, "%s", state_name((int)job->state));
  cli_table_cell(table, "%u", job->pool_id);
  cli_table_cell(table, "%u", job->job_type_id);
  cli_table_cell(table, "%s", job->subject[0] != '\0' ? job->subject : "-");
  cli_table_cell(table, "%u", job->attempts);
  cli_table_cell(table, "%.0f%%", job->progress * 100);
  cli_table_cell(table, "%s", created);
  cli_table_cell(table, "%s", job->error[0] != '\0' ? job->error : "");
}

static const char *const job_headers[] = {"ID",       "STATE",   "POOL",
                                          "TYPE",     "SUBJECT", "ATTEMPTS",
                                          "PROGRESS", "CREATED", "ERROR"};
#define JOB_COLUMNS (sizeof(job_headers) / sizeof(job_headers[0]))

static int run_list(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = cli_request_new(
      args->n_positional > 0 ? args->positional[0] : NULL, &exit_code);
  if (request == NULL) {
    return exit_code;
  }
  set_filter(request, args, true, true);
  if (args->page_size.set) {
    cli_request_set(request, "pageSize", "page_size",
                    json_integer((json_int_t)args->page_size.value));
  }
  if (args->page_token != NULL) {
    cli_request_set(request, "pageToken", "page_token",
                    json_string(args->page_token));
  }
  if (!cli_output_table_wanted(ctx)) {
    return call_and_print(ctx, jobhub_v1_jobs_list_method, request);
  }
  cli_method method = cli_method_of(jobhub_v1_jobs_list_method);
  rpc_buffer response;
  exit_code = cli_request_call(ctx, &method, request, &response);
  json_decref(request);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  Jobhub__V1__ListJobsResponse *list =
      jobhub__v1__list_jobs_response__unpack(NULL, response.len, response.data);
  rpc_buffer_free(&response);
  if (list == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode the List answer");
  }
  cli_table table;
  cli_table_init(&table, job_headers, JOB_COLUMNS);
  for (size_t i = 0; i < list->n_jobs; i++) {
    job_row(&table, list->jobs[i]);
  }
  exit_code = cli_table_print(&table);
  if (list->next_page_token[0] != '\0') {
    printf("(more: --page-token %s)\n", list->next_page_token);
  }
  jobhub__v1__list_jobs_response__free_unpacked(list, NULL);
  return exit_code;
}

static int run_history(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = id_request(args, &exit_code);
  if (request == NULL) {
    return exit_code;
  }
  if (!cli_output_table_wanted(ctx)) {
    return call_and_print(ctx, jobhub_v1_jobs_history_method, request);
  }
  cli_method method = cli_method_of(jobhub_v1_jobs_history_method);
  rpc_buffer response;
  exit_code = cli_request_call(ctx, &method, request, &response);
  json_decref(request);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  Jobhub__V1__HistoryResponse *history =
      jobhub__v1__history_response__unpack(NULL, response.len, response.data);
  rpc_buffer_free(&response);
  if (history == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode the History answer");
  }
  static const char *const headers[] = {"TIME",  "FROM",   "TO",
                                        "ACTOR", "WORKER", "DETAIL"};
  cli_table table;
  cli_table_init(&table, headers, 6);
  for (size_t i = 0; i < history->n_events; i++) {
    const Jobhub__V1__JobEvent *event = history->events[i];
    char time[32];
    cli_format_time(event->time != NULL ? event->time->seconds : 0, time,
                    sizeof(time));
    cli_table_cell(&table, "%s", time);
    cli_table_cell(&table, "%s",
                   event->from_state != 0 ? state_name((int)event->from_state)
                                          : "-");
    cli_table_cell(&table, "%s", state_name((int)event->to_state));
    cli_table_cell(&table, "%s", event->actor[0] != '\0' ? event->actor : "-");
    cli_table_cell(&table, "%llu", (unsigned long long)event->worker_idx);
    cli_table_cell(&table, "%s", event->detail);
  }
  exit_code = cli_table_print(&table);
  jobhub__v1__history_response__free_unpacked(history, NULL);
  return exit_code;
}

static int run_reset(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request;
  if (args->n_positional == 1 && cli_request_is_json(args->positional[0])) {
    request = cli_request_new(args->positional[0], &exit_code);
    if (request == NULL) {
      return exit_code;
    }
  } else {
    request = json_object();
    if (args->n_positional > 0) {
      json_t *ids = json_array();
      for (size_t i = 0; i < args->n_positional; i++) {
        json_array_append_new(ids, json_string(args->positional[i]));
      }
      json_object_set_new(request, "ids", ids);
    }
  }
  set_filter(request, args, false, false);
  return call_and_print(ctx, jobhub_v1_jobs_reset_method, request);
}

/* Watch output: a live line on a terminal, JSON lines otherwise. */
typedef struct watch_view {
  cli_context *ctx;
  FILE *bar;       /* where the progress bar goes; NULL: none */
  bool json_lines; /* print each Job as JSON on stdout */
  bool bar_open;   /* the bar's line is not finished yet */
  Jobhub__V1__JobState last_state;
  char *last_error; /* of the final Job; malloc'd */
  char *id;         /* of the first Job; malloc'd */
} watch_view;

static void draw_bar(watch_view *view, const Jobhub__V1__Job *job) {
  double progress = job->progress < 0   ? 0
                    : job->progress > 1 ? 1
                                        : job->progress;
  if (job->state == JOBHUB__V1__JOB_STATE__DONE) {
    progress = 1;
  }
  int filled = (int)(progress * PROGRESS_BAR_WIDTH + 0.5);
  char bar[PROGRESS_BAR_WIDTH + 1];
  for (int i = 0; i < PROGRESS_BAR_WIDTH; i++) {
    bar[i] = i < filled ? '#' : '.';
  }
  bar[PROGRESS_BAR_WIDTH] = '\0';
  const char *message = job->state == JOBHUB__V1__JOB_STATE__FAILED
                            ? job->error
                            : job->progress_message;
  /* \r and erase-line: the line is redrawn in place. */
  fprintf(view->bar, "\r\033[K%s %-11s [%s] %3.0f%% %.60s", job->id,
          state_name((int)job->state), bar, progress * 100, message);
  view->bar_open = true;
  if (is_final(job->state)) {
    fputc('\n', view->bar);
    view->bar_open = false;
  }
  fflush(view->bar);
}

/* Shows one Job of the stream (data, size bytes). */
static int watch_show(watch_view *view, const uint8_t *data, size_t size) {
  Jobhub__V1__Job *job = jobhub__v1__job__unpack(NULL, size, data);
  if (job == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode a Watch answer");
  }
  view->last_state = job->state;
  if (view->id == NULL) {
    view->id = strdup(job->id);
  }
  if (is_final(job->state)) {
    free(view->last_error);
    view->last_error = strdup(job->error);
  }
  int exit_code = CLI_EXIT_OK;
  if (view->bar != NULL) {
    draw_bar(view, job);
  }
  if (view->json_lines) {
    exit_code = cli_output_json(view->ctx, cli_jobhub_pool(view->ctx),
                                "jobhub.v1.Job", data, size);
  }
  jobhub__v1__job__free_unpacked(job, NULL);
  return exit_code;
}

/* Runs Watch with request (serialized) until the stream ends. */
static int watch(watch_view *view, const rpc_buffer *request) {
  cli_method method = cli_method_of(jobhub_v1_jobs_watch_method);
  int exit_code;
  rpc_stream *stream = cli_open(view->ctx, &method, 0, &exit_code);
  if (stream == NULL) {
    return exit_code;
  }
  if (rpc_stream_send_packed(stream, request->data, request->len) != 0 ||
      rpc_stream_close_send(stream) != 0) {
    rpc_stream_cancel(stream);
  }
  rpc_buffer message;
  rpc_buffer_init(&message);
  int rv = 0;
  exit_code = CLI_EXIT_OK;
  while (exit_code == CLI_EXIT_OK &&
         (rv = rpc_stream_recv_packed(stream, &message)) == 1) {
    exit_code = watch_show(view, message.data, message.len);
  }
  rpc_buffer_free(&message);
  if (view->bar_open) {
    fputc('\n', view->bar);
    view->bar_open = false;
  }
  if (exit_code == CLI_EXIT_OK) {
    exit_code = rv < 0 ? cli_fail(CLI_EXIT_FAILURE, "the event loop failed")
                       : cli_status_exit(rpc_stream_status(stream));
  }
  rpc_stream_free(stream);
  return exit_code;
}

static int run_watch(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = id_request(args, &exit_code);
  if (request == NULL) {
    return exit_code;
  }
  bool one_job = cli_request_has(request, "id", NULL);
  if (!one_job) {
    set_filter(request, args, true, true);
  }
  rpc_buffer bytes;
  exit_code = cli_request_bytes(ctx, "jobhub.v1.WatchRequest", request, &bytes);
  json_decref(request);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  bool bar = one_job && ctx->stdout_tty && !ctx->global.json;
  watch_view view = {
      .ctx = ctx, .bar = bar ? stdout : NULL, .json_lines = !bar};
  exit_code = watch(&view, &bytes);
  rpc_buffer_free(&bytes);
  free(view.last_error);
  free(view.id);
  return exit_code;
}

/* Sets config.<name> in the submit request, making config if needed. */
static void set_config(json_t *request, const char *json_name,
                       const char *proto_name, json_t *value) {
  json_t *config = json_object_get(request, "config");
  if (!json_is_object(config)) {
    config = json_object();
    json_object_set_new(request, "config", config);
  }
  cli_request_set(config, json_name, proto_name, value);
}

/* Puts the submit flags on request. Returns an exit code. */
static int submit_flags(json_t *request, const cli_args *args) {
  if (args->pool.set) {
    cli_request_set(request, "poolId", "pool_id",
                    json_integer((json_int_t)args->pool.value));
  }
  if (args->job_type.set) {
    cli_request_set(request, "jobTypeId", "job_type_id",
                    json_integer((json_int_t)args->job_type.value));
  }
  if (args->subject != NULL) {
    cli_request_set(request, "subject", NULL, json_string(args->subject));
  }
  if (args->module != NULL) {
    set_config(request, "module", NULL, json_string(args->module));
  }
  if (args->params != NULL) {
    json_error_t error;
    json_t *params = json_loads(args->params, 0, &error);
    if (!json_is_object(params)) {
      json_decref(params);
      return cli_fail(CLI_EXIT_USAGE, "--params must be a JSON object");
    }
    set_config(request, "moduleParams", "module_params", params);
  }
  if (args->payload != NULL) {
    rpc_buffer encoded;
    rpc_buffer_init(&encoded);
    if (rpc_base64_encode((const uint8_t *)args->payload, strlen(args->payload),
                          &encoded) != 0) {
      return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    }
    cli_request_set(request, "payload", NULL,
                    json_stringn((const char *)encoded.data, encoded.len));
    rpc_buffer_free(&encoded);
  }
  if (args->priority != NULL) {
    char *end;
    long priority = strtol(args->priority, &end, 10);
    if (end == args->priority || *end != '\0' || priority < INT32_MIN ||
        priority > INT32_MAX) {
      return cli_fail(CLI_EXIT_USAGE, "--priority takes a whole number");
    }
    cli_request_set(request, "priority", NULL, json_integer(priority));
  }
  if (args->meta.count > 0) {
    json_t *meta = json_object_get(request, "meta");
    if (!json_is_object(meta)) {
      meta = json_object();
      json_object_set_new(request, "meta", meta);
    }
    for (size_t i = 0; i < args->meta.count; i++) {
      const char *item = args->meta.items[i];
      const char *equals = strchr(item, '=');
      if (equals == NULL || equals == item) {
        return cli_fail(CLI_EXIT_USAGE, "--meta \"%s\": expected KEY=VALUE",
                        item);
      }
      char key[256];
      snprintf(key, sizeof(key), "%.*s", (int)(equals - item), item);
      json_object_set_new(meta, key, json_string(equals + 1));
    }
  }
  if (args->idempotency_key != NULL) {
    cli_request_set(request, "idempotencyKey", "idempotency_key",
                    json_string(args->idempotency_key));
  }
  if (args->max_attempts.set) {
    cli_request_set(request, "maxAttempts", "max_attempts",
                    json_integer((json_int_t)args->max_attempts.value));
  }
  if (args->lease_seconds.set) {
    cli_request_set(request, "leaseSeconds", "lease_seconds",
                    json_integer((json_int_t)args->lease_seconds.value));
  }
  return CLI_EXIT_OK;
}

/* --wait: watches the job until it ends, then prints its result. */
static int wait_for(cli_context *ctx, const char *id) {
  json_t *request = json_object();
  json_object_set_new(request, "id", json_string(id));
  rpc_buffer bytes;
  int exit_code =
      cli_request_bytes(ctx, "jobhub.v1.WatchRequest", request, &bytes);
  if (exit_code != CLI_EXIT_OK) {
    json_decref(request);
    return exit_code;
  }
  watch_view view = {.ctx = ctx, .bar = ctx->stderr_tty ? stderr : NULL};
  exit_code = watch(&view, &bytes);
  rpc_buffer_free(&bytes);
  if (exit_code == CLI_EXIT_OK) {
    switch (view.last_state) {
    case JOBHUB__V1__JOB_STATE__DONE:
      exit_code =
          call_and_print(ctx, jobhub_v1_jobs_get_result_method, request);
      request = NULL; /* taken */
      break;
    case JOBHUB__V1__JOB_STATE__FAILED:
      exit_code = cli_fail(CLI_EXIT_JOB_FAILED, "job %s FAILED: %s", id,
                           view.last_error != NULL ? view.last_error : "");
      break;
    case JOBHUB__V1__JOB_STATE__CANCELLED:
      exit_code = cli_fail(CLI_EXIT_JOB_CANCELLED, "job %s CANCELLED", id);
      break;
    default:
      exit_code =
          cli_fail(CLI_EXIT_FAILURE, "the Watch of job %s ended in state %s",
                   id, state_name((int)view.last_state));
      break;
    }
  }
  json_decref(request);
  free(view.last_error);
  free(view.id);
  return exit_code;
}

static int run_submit(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = cli_request_new(
      args->n_positional > 0 ? args->positional[0] : NULL, &exit_code);
  if (request == NULL) {
    return exit_code;
  }
  exit_code = submit_flags(request, args);
  if (exit_code != CLI_EXIT_OK) {
    json_decref(request);
    return exit_code;
  }
  if (!args->wait) {
    return call_and_print(ctx, jobhub_v1_jobs_submit_method, request);
  }
  cli_method method = cli_method_of(jobhub_v1_jobs_submit_method);
  rpc_buffer response;
  exit_code = cli_request_call(ctx, &method, request, &response);
  json_decref(request);
  if (exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  Jobhub__V1__Job *job =
      jobhub__v1__job__unpack(NULL, response.len, response.data);
  rpc_buffer_free(&response);
  if (job == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode the Submit answer");
  }
  if (ctx->stderr_tty) {
    fprintf(stderr, "submitted %s\n", job->id);
  }
  exit_code = wait_for(ctx, job->id);
  jobhub__v1__job__free_unpacked(job, NULL);
  return exit_code;
}

static const cli_command jobs_commands[] = {
    {"submit", "[REQUEST] [flags]", "submit a job (Jobs.Submit)",
     "REQUEST is a jobhub.v1.SubmitRequest as JSON, @FILE or - (stdin); the "
     "flags set its fields on top. With --wait, watches the job until it "
     "ends and prints its result (exit 3 if it FAILED, 4 if CANCELLED).",
     "pool job-type subject module params payload priority meta "
     "idempotency-key max-attempts lease-seconds wait",
     0, 1, run_submit},
    {"get", "ID|REQUEST", "show a job (Jobs.Get)", NULL, "", 1, 1, run_get},
    {"list", "[REQUEST] [flags]", "list jobs (Jobs.List)",
     "Without --pool or --job-type (and none in REQUEST) every pool and job "
     "type is listed. A table on a terminal, JSON otherwise.",
     "state pool job-type subject page-size page-token", 0, 1, run_list},
    {"result", "ID|REQUEST", "show a job's result (Jobs.GetResult)", NULL, "",
     1, 1, run_result},
    {"cancel", "ID|REQUEST", "cancel a job (Jobs.Cancel)", NULL, "", 1, 1,
     run_cancel},
    {"watch", "[ID|REQUEST] [flags]",
     "follow a job, or the jobs of a filter (Jobs.Watch)",
     "On a terminal a live progress line (state, progress, message); "
     "otherwise one JSON Job per line. Without ID, the flags filter. No "
     "deadline unless --timeout is given.",
     "state pool job-type subject", 0, 1, run_watch},
    {"history", "ID|REQUEST", "a job's audit trail (Jobs.History)",
     "A table on a terminal, JSON otherwise.", "", 1, 1, run_history},
    {"reset", "[ID...|REQUEST] [flags]",
     "requeue jobs: the IDs, or every FAILED job of the filter (Jobs.Reset)",
     NULL, "pool job-type", 0, CLI_MAX_POSITIONAL, run_reset},
};

const cli_group cli_jobs_group = {
    "jobs", "jobs: submit, inspect, follow, cancel, requeue", jobs_commands,
    sizeof(jobs_commands) / sizeof(jobs_commands[0])};
