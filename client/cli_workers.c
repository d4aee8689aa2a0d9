/* cli_workers.c: jobhub workers list|stats|add|delete|state, the admin
 * methods of jobhub.v1.Workers. */
#include <stdio.h>
#include <string.h>

#include "client/cli_commands.h"
#include "client/cli_output.h"
#include "client/cli_request.h"
#include "jobhub/v1/workers.rpc.h"

/* The base request: a REQUEST word, or {}. */
static json_t *base_request(const cli_args *args, size_t index,
                            int *exit_code) {
  const char *word =
      args->n_positional > index ? args->positional[index] : NULL;
  return cli_request_new(word, exit_code);
}

static void set_pool_and_type(json_t *request, const cli_args *args) {
  if (args->pool.set) {
    cli_request_set(request, "poolId", "pool_id",
                    json_integer((json_int_t)args->pool.value));
  }
  if (args->job_type.set) {
    cli_request_set(request, "jobTypeId", "job_type_id",
                    json_integer((json_int_t)args->job_type.value));
  }
}

/* Calls method; on OK, *response holds the answer. */
static int call(cli_context *ctx, const rpc_method *rpc, json_t *request,
                rpc_buffer *response) {
  cli_method method = cli_method_of(rpc);
  int exit_code = cli_request_call(ctx, &method, request, response);
  json_decref(request);
  return exit_code;
}

static int call_and_print(cli_context *ctx, const rpc_method *rpc,
                          json_t *request) {
  rpc_buffer response;
  int exit_code = call(ctx, rpc, request, &response);
  if (exit_code == CLI_EXIT_OK) {
    exit_code = cli_output_json(ctx, cli_jobhub_pool(ctx), rpc->output->name,
                                response.data, response.len);
  }
  rpc_buffer_free(&response);
  return exit_code;
}

static const char *status_name(int status) {
  const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value(
      &jobhub__v1__worker_status__descriptor, status);
  if (value == NULL) {
    return "?";
  }
  /* WORKER_IDLE -> IDLE: the column says what it is. */
  return strncmp(value->name, "WORKER_", 7) == 0 ? value->name + 7
                                                 : value->name;
}

/* The admin List and Stats calls, filtered by --pool and --job-type: on
 * a table the answer's bytes are left in *response (*printed false),
 * otherwise the JSON answer is printed (*printed true). */
static int call_filtered(cli_context *ctx, const cli_args *args,
                         const rpc_method *rpc, rpc_buffer *response,
                         bool *printed) {
  int exit_code;
  json_t *request = base_request(args, 0, &exit_code);
  if (request == NULL) {
    *printed = true;
    return exit_code;
  }
  set_pool_and_type(request, args);
  *printed = !cli_output_table_wanted(ctx);
  return *printed ? call_and_print(ctx, rpc, request)
                  : call(ctx, rpc, request, response);
}

static int run_list(cli_context *ctx, const cli_args *args) {
  rpc_buffer response;
  bool printed;
  int exit_code = call_filtered(ctx, args, jobhub_v1_workers_list_method,
                                &response, &printed);
  if (printed || exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  Jobhub__V1__ListWorkersResponse *list =
      jobhub__v1__list_workers_response__unpack(NULL, response.len,
                                                response.data);
  rpc_buffer_free(&response);
  if (list == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode the List answer");
  }
  static const char *const headers[] = {"WORKER_IDX", "CLIENT",   "POOL",
                                        "TYPES",      "HOST",     "STATUS",
                                        "RUNNING",    "LAST_SEEN"};
  cli_table table;
  cli_table_init(&table, headers, 8);
  for (size_t i = 0; i < list->n_workers; i++) {
    const Jobhub__V1__Worker *w = list->workers[i];
    char types[128] = "";
    size_t at = 0;
    for (size_t j = 0; j < w->n_job_type_ids && at + 12 < sizeof(types); j++) {
      at += (size_t)snprintf(types + at, sizeof(types) - at, "%s%u",
                             j > 0 ? "," : "", w->job_type_ids[j]);
    }
    char seen[32];
    cli_format_time(w->last_seen != NULL ? w->last_seen->seconds : 0, seen,
                    sizeof(seen));
    cli_table_cell(&table, "%llu", (unsigned long long)w->worker_idx);
    cli_table_cell(&table, "%s", w->client_id[0] ? w->client_id : "-");
    cli_table_cell(&table, "%u", w->pool_id);
    cli_table_cell(&table, "%s", types[0] ? types : "-");
    cli_table_cell(&table, "%s", w->hostname[0] ? w->hostname : "-");
    cli_table_cell(&table, "%s", status_name((int)w->status));
    cli_table_cell(&table, "%u/%u", w->running, w->capacity);
    cli_table_cell(&table, "%s", seen);
  }
  exit_code = cli_table_print(&table);
  jobhub__v1__list_workers_response__free_unpacked(list, NULL);
  return exit_code;
}

static int run_stats(cli_context *ctx, const cli_args *args) {
  rpc_buffer response;
  bool printed;
  int exit_code = call_filtered(ctx, args, jobhub_v1_workers_stats_method,
                                &response, &printed);
  if (printed || exit_code != CLI_EXIT_OK) {
    return exit_code;
  }
  Jobhub__V1__WorkerStatsResponse *stats =
      jobhub__v1__worker_stats_response__unpack(NULL, response.len,
                                                response.data);
  rpc_buffer_free(&response);
  if (stats == NULL) {
    return cli_fail(CLI_EXIT_FAILURE, "cannot decode the Stats answer");
  }
  static const char *const headers[] = {"POOL", "TYPE",   "WORKERS",
                                        "BUSY", "QUEUED", "IN_PROGRESS",
                                        "DONE", "FAILED", "MEAN_RUN_S"};
  cli_table table;
  cli_table_init(&table, headers, 9);
  for (size_t i = 0; i < stats->n_job_types; i++) {
    const Jobhub__V1__JobTypeStats *s = stats->job_types[i];
    cli_table_cell(&table, "%u", s->pool_id);
    cli_table_cell(&table, "%u", s->job_type_id);
    cli_table_cell(&table, "%u", s->workers);
    cli_table_cell(&table, "%u", s->busy);
    cli_table_cell(&table, "%llu", (unsigned long long)s->queued);
    cli_table_cell(&table, "%llu", (unsigned long long)s->in_progress);
    cli_table_cell(&table, "%llu", (unsigned long long)s->done);
    cli_table_cell(&table, "%llu", (unsigned long long)s->failed);
    cli_table_cell(&table, "%.3f", s->mean_run_seconds);
  }
  exit_code = cli_table_print(&table);
  jobhub__v1__worker_stats_response__free_unpacked(stats, NULL);
  return exit_code;
}

static int run_add(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = base_request(args, 0, &exit_code);
  if (request == NULL) {
    return exit_code;
  }
  set_pool_and_type(request, args);
  if (args->hostname != NULL) {
    cli_request_set(request, "hostname", NULL, json_string(args->hostname));
  }
  if (args->port.set) {
    cli_request_set(request, "port", NULL,
                    json_integer((json_int_t)args->port.value));
  }
  if (args->config != NULL) {
    json_error_t error;
    json_t *config = json_loads(args->config, 0, &error);
    if (!json_is_object(config)) {
      json_decref(config);
      json_decref(request);
      return cli_fail(CLI_EXIT_USAGE, "--config must be a JSON object");
    }
    cli_request_set(request, "workerConfig", "worker_config", config);
  }
  return call_and_print(ctx, jobhub_v1_workers_add_method, request);
}

static int run_delete(cli_context *ctx, const cli_args *args) {
  int exit_code;
  json_t *request = base_request(args, 0, &exit_code);
  if (request == NULL) {
    return exit_code;
  }
  set_pool_and_type(request, args);
  return call_and_print(ctx, jobhub_v1_workers_delete_method, request);
}

static int run_state(cli_context *ctx, const cli_args *args) {
  int exit_code;
  const char *word = args->n_positional > 0 ? args->positional[0] : NULL;
  json_t *request;
  if (word != NULL && !cli_request_is_json(word)) {
    request = json_object();
    json_object_set_new(request, "subject", json_string(word));
  } else {
    request = cli_request_new(word, &exit_code);
    if (request == NULL) {
      return exit_code;
    }
  }
  set_pool_and_type(request, args);
  return call_and_print(ctx, jobhub_v1_workers_get_subject_state_method,
                        request);
}

static const cli_command workers_commands[] = {
    {"list", "[REQUEST] [flags]", "list the workers of a pool (Workers.List)",
     "A table on a terminal, JSON otherwise.", "pool", 0, 1, run_list},
    {"stats", "[REQUEST] [flags]",
     "per pool and job type: workers, busy, queued, done, failed, mean run "
     "time (Workers.Stats)",
     "A table on a terminal, JSON otherwise.", "pool", 0, 1, run_stats},
    {"add", "[REQUEST] [flags]", "pre-register a worker slot (Workers.Add)",
     NULL, "pool job-type hostname port config", 0, 1, run_add},
    {"delete", "[REQUEST] [flags]",
     "remove the latest worker of a pool and job type (Workers.Delete)", NULL,
     "pool job-type", 0, 1, run_delete},
    {"state", "SUBJECT|REQUEST [flags]",
     "ask the worker responsible for a subject for its state "
     "(Workers.GetSubjectState)",
     NULL, "pool job-type", 1, 1, run_state},
};

const cli_group cli_workers_group = {
    "workers", "workers: list, stats and admin", workers_commands,
    sizeof(workers_commands) / sizeof(workers_commands[0])};
