/* cli_context.h: what every jobhub subcommand shares: the global options,
 * the exit codes, the channel to the server, raw calls by path, and the
 * "jobhub: CODE: message" error convention. */
#ifndef JOBHUB_CLIENT_CLI_CONTEXT_H
#define JOBHUB_CLIENT_CLI_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "client/cli_options.h"
#include "rpc/buffer.h"
#include "rpc/client.h"
#include "rpc/descriptor_pool.h"
#include "rpc/metadata.h"
#include "rpc/status.h"

/* Exit codes of jobhub (documented in jobhub --help). */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAILURE = 1,       /* a local failure: I/O, connection set-up */
  CLI_EXIT_USAGE = 2,         /* bad options, arguments or request JSON */
  CLI_EXIT_JOB_FAILED = 3,    /* --wait: the job ended FAILED */
  CLI_EXIT_JOB_CANCELLED = 4, /* --wait: the job ended CANCELLED */
  CLI_EXIT_NOT_SERVING = 5,   /* health: the answer was not SERVING */
  CLI_EXIT_STATUS_BASE = 10,  /* a gRPC error: 10 + its status code */
};

/* Unary calls get this deadline when --timeout is not given; streams get
 * none. */
#define CLI_DEFAULT_TIMEOUT_SECONDS 30.

/* The global options (the table is in main.c). */
typedef struct cli_global {
  const char *address; /* "host:port" */
  bool tls;
  const char *cacert;
  const char *cert; /* PEM client certificate (mTLS), with key */
  const char *key;
  const char *token;
  const char *basic; /* "user:password" */
  cli_seconds timeout;
  cli_list headers; /* "key: value" */
  bool json;        /* force JSON output */
  bool table;       /* force the table view */
  bool emit_defaults;
} cli_global;

/* How a method is called: by path, with the types of its messages. */
typedef struct cli_method {
  const char *path;        /* "/jobhub.v1.Jobs/Get" */
  const char *input_type;  /* fully qualified: "jobhub.v1.GetRequest" */
  const char *output_type; /* "jobhub.v1.Job" */
  bool client_streaming;
  bool server_streaming;
  rpc_method raw; /* filled by cli_open: what the stream points at */
} cli_method;

typedef struct cli_context {
  cli_global global;
  bool stdout_tty;
  bool stderr_tty;
  SSL_CTX *tls;
  rpc_channel *channel; /* made on the first call */
  rpc_metadata metadata;
  rpc_descriptor_pool *jobhub_pool; /* the embedded sets; made on demand */
} cli_context;

/* cli_context_init empties ctx and notes whether stdout and stderr are
 * terminals; the caller then fills ctx->global. */
void cli_context_init(cli_context *ctx);

/* cli_context_free closes the channel and frees what ctx owns. */
void cli_context_free(cli_context *ctx);

/* cli_fail prints "jobhub: MESSAGE" on stderr and returns exit_code. */
int cli_fail(int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_status_exit prints "jobhub: CODE_NAME: message" on stderr and
 * returns CLI_EXIT_STATUS_BASE + the code (CLI_EXIT_OK for OK, printing
 * nothing). */
int cli_status_exit(const rpc_status *status);

/* cli_jobhub_pool returns the pool of the descriptor sets compiled in
 * (jobhub.v1, health, reflection, the well-known types), or NULL after
 * printing why. Owned by ctx. */
const rpc_descriptor_pool *cli_jobhub_pool(cli_context *ctx);

/* cli_method_of describes a generated method (its path and message
 * types). */
cli_method cli_method_of(const rpc_method *method);

/* cli_open makes the channel if needed and opens a raw stream for method
 * with the metadata of -H and --token, and --timeout as the deadline (or,
 * when --timeout is absent, default_timeout seconds; 0 for none). The
 * stream points into method, which must outlive it. Returns the stream
 * (the caller frees it with rpc_stream_free) or NULL, after printing why;
 * *exit_code is then set. */
rpc_stream *cli_open(cli_context *ctx, cli_method *method,
                     double default_timeout, int *exit_code);

/* cli_unary calls a unary method with request (serialized) and stores
 * the serialized answer in response (owned by the caller; initialized
 * here). Returns CLI_EXIT_OK, or an exit code after printing the error. */
int cli_unary(cli_context *ctx, cli_method *method, const uint8_t *request,
              size_t request_size, rpc_buffer *response);

/* cli_unary_json is cli_unary with the request given as JSON of
 * method->input_type, transcoded through pool. A request that does not
 * transcode is a usage error. */
int cli_unary_json(cli_context *ctx, const rpc_descriptor_pool *pool,
                   cli_method *method, const char *json, size_t len,
                   rpc_buffer *response);

/* cli_to_wire transcodes JSON of type into out (initialized here; the
 * caller frees it). Returns CLI_EXIT_OK or CLI_EXIT_USAGE after printing
 * "jobhub: invalid TYPE: why". */
int cli_to_wire(const rpc_descriptor_pool *pool, const char *type,
                const char *json, size_t len, rpc_buffer *out);

#endif
