/* config.h: jobhubd's configuration. One table of options drives the
 * command-line flags, the environment (JOBHUB_<NAME>), the INI file
 * (--config, section [jobhubd]), --help and --print-config. Precedence:
 * flags, then environment, then file, then defaults. */
#ifndef JOBHUB_SERVER_CONFIG_H
#define JOBHUB_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/options.h"

typedef struct jobhubd_config {
  char *listen;
  unsigned threads;
  char *tls_cert;
  char *tls_key;
  char *tls_client_ca;
  bool allow_plaintext; /* with TLS, cleartext h2c is served too */
  uint64_t max_receive_message_bytes;
  unsigned max_concurrent_streams;
  unsigned max_header_bytes;
  uint64_t max_stream_output_bytes;
  uint64_t max_connection_output_bytes;
  double idle_timeout;       /* s */
  double keepalive_interval; /* s */
  double keepalive_timeout;  /* s */
  double shutdown_grace;     /* s */
  double busy_poll_us;       /* us; -1: auto (see config.c) */
  char *data_dir;
  unsigned lease_seconds;
  unsigned max_attempts;
  unsigned retry_backoff_ms;
  double worker_timeout;         /* s */
  char *auth_file;               /* NULL: no credentials (see no_auth) */
  option_text_list cors_origins; /* --cors-origin, repeatable */
  bool no_auth;                  /* serve without credentials on any address */
  unsigned max_worker_capacity;
  char *port_file;
  char *log_level;
  char *config_file;
} jobhubd_config;

typedef enum jobhubd_config_result {
  JOBHUBD_CONFIG_RUN = 0,   /* serve */
  JOBHUBD_CONFIG_EXIT = 1,  /* --help, --version, --print-config done */
  JOBHUBD_CONFIG_USAGE = 2, /* bad input: message in err */
} jobhubd_config_result;

/* jobhubd_config_load fills config from defaults, the file, the
 * environment and argv, validating every value. Strings in config are
 * owned by it (jobhubd_config_free). */
jobhubd_config_result jobhubd_config_load(jobhubd_config *config, int argc,
                                          char **argv, char *err,
                                          size_t err_size);

/* jobhubd_config_free releases the strings of config. */
void jobhubd_config_free(jobhubd_config *config);

#endif
