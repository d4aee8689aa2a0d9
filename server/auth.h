/* auth.h: who may call what (SPEC "Auth"). An auth file lists credentials
 * with a role each; a call presents a bearer token, a Basic user:password
 * or a verified client certificate; the role's method set decides.
 *
 * Auth file, one credential a line ('#' starts a comment line; blank lines
 * are skipped; fields are separated by spaces or tabs):
 *   ROLE bearer TOKEN          (TOKEN has no white space)
 *   ROLE bearer sha256:HEX     (the token's SHA-256, 64 hex digits)
 *   ROLE basic USER:PASSWORD   (the rest of the line; USER has no ':')
 *   ROLE cert CN               (the rest of the line: the subject CN)
 * ROLE is admin, client or worker. Secrets are kept only as SHA-256
 * digests and compared in constant time; none is ever logged. */
#ifndef JOBHUB_SERVER_AUTH_H
#define JOBHUB_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/status.h"

typedef enum auth_role {
  AUTH_ROLE_ADMIN = 0,  /* every method */
  AUTH_ROLE_CLIENT = 1, /* Jobs, Engine, Series.Run, reads of Workers ... */
  AUTH_ROLE_WORKER = 2, /* Workers.Register/Connect/Lease/..., ReportPoints */
} auth_role;

/* An immutable set of credentials, as parsed from one auth file. */
typedef struct auth_credentials auth_credentials;

/* auth_credentials_parse parses the text of an auth file; name (the file's
 * path) is used in messages. Returns the set (the caller frees it), or NULL
 * with "NAME:LINE: reason" in err for the first bad line (or "out of
 * memory"). */
auth_credentials *auth_credentials_parse(const char *text, size_t len,
                                         const char *name, char *err,
                                         size_t err_size);

/* auth_credentials_load reads and parses the file at path. Returns the set
 * or NULL with a message in err (unreadable file, bad line). */
auth_credentials *auth_credentials_load(const char *path, char *err,
                                        size_t err_size);

/* auth_credentials_free releases a set; NULL is ignored. */
void auth_credentials_free(auth_credentials *credentials);

/* auth_credentials_count returns the number of credentials in the set. */
size_t auth_credentials_count(const auth_credentials *credentials);

typedef enum auth_identity {
  AUTH_IDENTIFIED = 0, /* role set */
  AUTH_MISSING = -1,   /* no authorization header and no certificate */
  AUTH_INVALID = -2,   /* presented, but not a credential of the set */
} auth_identity;

/* auth_credentials_identify finds the role of a caller from the value of
 * its authorization header ("Bearer TOKEN" or "Basic BASE64"; NULL when
 * absent) or, without that header, from its verified client certificate's
 * subject CN (NULL when none). The header, when present, decides alone.
 * Returns AUTH_IDENTIFIED with *role set, AUTH_MISSING or AUTH_INVALID. */
auth_identity auth_credentials_identify(const auth_credentials *credentials,
                                        const char *authorization,
                                        const char *cert_cn, auth_role *role);

/* auth_role_name returns "admin", "client" or "worker". */
const char *auth_role_name(auth_role role);

/* auth_role_allows tells whether role may call service's method (service
 * fully qualified, "jobhub.v1.Jobs"; method "Submit"), per SPEC's lists. */
bool auth_role_allows(auth_role role, const char *service, const char *method);

/* auth_method_is_public tells whether service's methods need no
 * credentials: gRPC health checking and server reflection. */
bool auth_method_is_public(const char *service);

/* What a check sees of a call: the same for gRPC and the HTTP face. */
typedef struct auth_request {
  const char *service;       /* fully qualified: "jobhub.v1.Jobs" */
  const char *method;        /* "Submit" */
  const char *authorization; /* the header's value, or NULL */
  const char *cert_cn;       /* verified client certificate CN, or NULL */
  const char *peer;          /* the caller's address, for logs, or NULL */
} auth_request;

/* The credentials in force and their reloads, shared by every thread that
 * checks calls; failures are logged once per interval per peer. */
typedef struct auth_guard auth_guard;

/* auth_guard_open loads path. Returns the guard (auth_guard_free) or NULL
 * with the load error ("FILE:LINE: reason") in err. */
auth_guard *auth_guard_open(const char *path, char *err, size_t err_size);

/* auth_guard_reload parses the guard's file again and, when it is good,
 * puts it in force for the next checks. Returns 0, or -1 with the error in
 * err; the credentials in force are then unchanged. Thread-safe. */
int auth_guard_reload(auth_guard *guard, char *err, size_t err_size);

/* auth_guard_count returns the number of credentials in force. */
size_t auth_guard_count(auth_guard *guard);

/* auth_guard_check decides a call: RPC_STATUS_OK, UNAUTHENTICATED
 * ("missing credentials" / "invalid credentials") or PERMISSION_DENIED
 * naming the role and the method, with the message in message. Failures
 * are logged (rate limited per peer), never with the secret. Thread-safe;
 * guard may be used by any number of threads at once. */
rpc_status_code auth_guard_check(auth_guard *guard, const auth_request *request,
                                 char *message, size_t message_size);

/* auth_guard_free releases the guard and its credentials; no check may
 * be running. NULL is ignored. */
void auth_guard_free(auth_guard *guard);

/* auth_listen_is_loopback tells whether a listen address ("host:port",
 * "[v6]:port") is a loopback one: 127.0.0.0/8, ::1 or localhost. */
bool auth_listen_is_loopback(const char *listen);

#endif
