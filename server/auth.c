/* auth.c: the auth file, the role table and the guard that checks calls
 * (see auth.h). */
#include "server/auth.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "rpc/base64.h"
#include "rpc/buffer.h"
#include "rpc/log.h"

#define DIGEST_SIZE 32
/* Repeated failures from one peer are logged once per this many seconds. */
#define FAILURE_LOG_INTERVAL 60.
/* Peers whose failures are tracked at once; the oldest is forgotten. */
#define FAILURE_PEERS 64
#define PEER_SIZE 64

typedef enum credential_kind {
  KIND_BEARER,
  KIND_BASIC,
  KIND_CERT,
} credential_kind;

typedef struct credential {
  auth_role role;
  credential_kind kind;
  /* SHA-256 of the token, of "user:password", or of the CN: comparing
   * fixed-size digests does not leak the secret's length. */
  unsigned char digest[DIGEST_SIZE];
} credential;

struct auth_credentials {
  credential *items;
  size_t count;
  size_t cap;
};

/* The role table: a method of a listed service is allowed when the entry
 * names it, or names no method (the whole service). SPEC "Auth". */
typedef struct allowed_method {
  const char *service;
  const char *method; /* NULL: every method of the service */
} allowed_method;

static const allowed_method client_methods[] = {
    {"jobhub.v1.Jobs", NULL},
    {"jobhub.v1.Series", "Run"},
    {"jobhub.v1.Engine", NULL},
    {"jobhub.v1.Outputs", "Subscribe"},
    {"jobhub.v1.Workers", "List"},
    {"jobhub.v1.Workers", "Stats"},
    {"jobhub.v1.Workers", "GetSubjectState"},
    {"jobhub.v1.Hub", "Status"},
};

static const allowed_method worker_methods[] = {
    {"jobhub.v1.Workers", "Register"}, {"jobhub.v1.Workers", "Connect"},
    {"jobhub.v1.Workers", "Lease"},    {"jobhub.v1.Workers", "Heartbeat"},
    {"jobhub.v1.Workers", "Progress"}, {"jobhub.v1.Workers", "Complete"},
    {"jobhub.v1.Workers", "Fail"},     {"jobhub.v1.Series", "ReportPoints"},
};

static const char *const public_services[] = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
};

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* EVP_sha256() makes every digest look its implementation up again (an
 * OpenSSL 3 implicit fetch, most of a check's time): fetch it once. */
static void fetch_sha256(void) {
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int sha256(const void *data, size_t len,
                  unsigned char digest[DIGEST_SIZE]) {
  unsigned int size = 0;
  pthread_once(&sha256_once, fetch_sha256);
  if (sha256_md == NULL ||
      EVP_Digest(data, len, digest, &size, sha256_md, NULL) != 1 ||
      size != DIGEST_SIZE) {
    return -1;
  }
  return 0;
}

const char *auth_role_name(auth_role role) {
  switch (role) {
  case AUTH_ROLE_ADMIN:
    return "admin";
  case AUTH_ROLE_CLIENT:
    return "client";
  case AUTH_ROLE_WORKER:
    return "worker";
  }
  return "unknown";
}

static bool table_allows(const allowed_method *table, size_t count,
                         const char *service, const char *method) {
  for (size_t i = 0; i < count; i++) {
    if (strcmp(table[i].service, service) == 0 &&
        (table[i].method == NULL || strcmp(table[i].method, method) == 0)) {
      return true;
    }
  }
  return false;
}

bool auth_role_allows(auth_role role, const char *service, const char *method) {
  switch (role) {
  case AUTH_ROLE_ADMIN:
    return true;
  case AUTH_ROLE_CLIENT:
    return table_allows(client_methods, COUNT_OF(client_methods), service,
                        method);
  case AUTH_ROLE_WORKER:
    return table_allows(worker_methods, COUNT_OF(worker_methods), service,
                        method);
  }
  return false;
}

bool auth_method_is_public(const char *service) {
  for (size_t i = 0; i < COUNT_OF(public_services); i++) {
    if (strcmp(public_services[i], service) == 0) {
      return true;
    }
  }
  return false;
}

/* Parsing. */

static int parse_role(const char *word, size_t len, auth_role *role) {
  static const auth_role roles[] = {AUTH_ROLE_ADMIN, AUTH_ROLE_CLIENT,
                                    AUTH_ROLE_WORKER};
  for (size_t i = 0; i < COUNT_OF(roles); i++) {
    const char *name = auth_role_name(roles[i]);
    if (strlen(name) == len && memcmp(name, word, len) == 0) {
      *role = roles[i];
      return 0;
    }
  }
  return -1;
}

static bool word_is(const char *word, size_t len, const char *expected) {
  return strlen(expected) == len && memcmp(word, expected, len) == 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = (char)tolower((unsigned char)c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_hex_digest(const char *hex, size_t len,
                            unsigned char digest[DIGEST_SIZE]) {
  if (len != 2 * DIGEST_SIZE) {
    return -1;
  }
  for (size_t i = 0; i < DIGEST_SIZE; i++) {
    int high = hex_value(hex[2 * i]);
    int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      return -1;
    }
    digest[i] = (unsigned char)(high << 4 | low);
  }
  return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Parses one line (no newline) into cred. Returns 1 for a credential, 0
 * for a blank or comment line, -1 with the reason in err. The reasons
 * never quote the secret. */
static int parse_line(const char *line, size_t len, credential *cred, char *err,
                      size_t err_size) {
  while (len > 0 && (is_blank(line[len - 1]) || line[len - 1] == '\r')) {
    len--;
  }
  size_t at = 0;
  while (at < len && is_blank(line[at])) {
    at++;
  }
  if (at == len || line[at] == '#') {
    return 0;
  }
  const char *role = line + at;
  while (at < len && !is_blank(line[at])) {
    at++;
  }
  size_t role_len = (size_t)(line + at - role);
  while (at < len && is_blank(line[at])) {
    at++;
  }
  const char *kind = line + at;
  while (at < len && !is_blank(line[at])) {
    at++;
  }
  size_t kind_len = (size_t)(line + at - kind);
  while (at < len && is_blank(line[at])) {
    at++;
  }
  const char *value = line + at;
  size_t value_len = len - at;
  if (parse_role(role, role_len, &cred->role) != 0) {
    snprintf(err, err_size,
             "unknown role \"%.*s\" (expected admin, client or worker)",
             (int)(role_len > 32 ? 32 : role_len), role);
    return -1;
  }
  if (kind_len == 0) {
    snprintf(err, err_size, "missing kind (bearer, basic or cert)");
    return -1;
  }
  if (word_is(kind, kind_len, "bearer")) {
    cred->kind = KIND_BEARER;
  } else if (word_is(kind, kind_len, "basic")) {
    cred->kind = KIND_BASIC;
  } else if (word_is(kind, kind_len, "cert")) {
    cred->kind = KIND_CERT;
  } else {
    snprintf(err, err_size,
             "unknown kind \"%.*s\" (expected bearer, basic or cert)",
             (int)(kind_len > 32 ? 32 : kind_len), kind);
    return -1;
  }
  if (value_len == 0) {
    snprintf(err, err_size, "missing %s value",
             cred->kind == KIND_BEARER  ? "token"
             : cred->kind == KIND_BASIC ? "USER:PASSWORD"
                                        : "certificate CN");
    return -1;
  }
  switch (cred->kind) {
  case KIND_BEARER:
    for (size_t i = 0; i < value_len; i++) {
      if (is_blank(value[i])) {
        snprintf(err, err_size, "a bearer token has no white space");
        return -1;
      }
    }
    if (value_len >= 7 && memcmp(value, "sha256:", 7) == 0) {
      if (parse_hex_digest(value + 7, value_len - 7, cred->digest) != 0) {
        snprintf(err, err_size, "sha256: needs 64 hex digits");
        return -1;
      }
      return 1;
    }
    break;
  case KIND_BASIC: {
    const char *colon = memchr(value, ':', value_len);
    if (colon == NULL || colon == value) {
      snprintf(err, err_size, "basic needs USER:PASSWORD");
      return -1;
    }
    break;
  }
  case KIND_CERT:
    break;
  }
  if (sha256(value, value_len, cred->digest) != 0) {
    snprintf(err, err_size, "SHA-256 failed");
    return -1;
  }
  return 1;
}

static int add_credential(auth_credentials *set, const credential *cred) {
  for (size_t i = 0; i < set->count; i++) {
    if (set->items[i].kind == cred->kind &&
        memcmp(set->items[i].digest, cred->digest, DIGEST_SIZE) == 0) {
      return -2;
    }
  }
  if (set->count == set->cap) {
    size_t cap = set->cap ? 2 * set->cap : 8;
    credential *items = realloc(set->items, cap * sizeof(*items));
    if (items == NULL) {
      return -1;
    }
    set->items = items;
    set->cap = cap;
  }
  set->items[set->count++] = *cred;
  return 0;
}

auth_credentials *auth_credentials_parse(const char *text, size_t len,
                                         const char *name, char *err,
                                         size_t err_size) {
  auth_credentials *set = calloc(1, sizeof(*set));
  if (set == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  size_t line_number = 0;
  size_t at = 0;
  while (at < len) {
    const char *line = text + at;
    const char *newline = memchr(line, '\n', len - at);
    size_t line_len = newline ? (size_t)(newline - line) : len - at;
    at += line_len + (newline ? 1 : 0);
    line_number++;
    char reason[160];
    credential cred;
    memset(&cred, 0, sizeof(cred));
    if (memchr(line, '\0', line_len) != NULL) {
      snprintf(err, err_size, "%s:%zu: a NUL byte", name, line_number);
      goto fail;
    }
    int parsed = parse_line(line, line_len, &cred, reason, sizeof(reason));
    if (parsed < 0) {
      snprintf(err, err_size, "%s:%zu: %s", name, line_number, reason);
      goto fail;
    }
    if (parsed == 0) {
      continue;
    }
    int added = add_credential(set, &cred);
    OPENSSL_cleanse(&cred, sizeof(cred));
    if (added == -2) {
      snprintf(err, err_size, "%s:%zu: the same credential is listed earlier",
               name, line_number);
      goto fail;
    }
    if (added != 0) {
      snprintf(err, err_size, "out of memory");
      goto fail;
    }
  }
  return set;
fail:
  auth_credentials_free(set);
  return NULL;
}

auth_credentials *auth_credentials_load(const char *path, char *err,
                                        size_t err_size) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    snprintf(err, err_size, "cannot read auth file %s: %s", path,
             strerror(errno));
    return NULL;
  }
  rpc_buffer text;
  rpc_buffer_init(&text);
  char chunk[4096];
  size_t n;
  bool failed = false;
  while ((n = fread(chunk, 1, sizeof(chunk), file)) > 0) {
    if (rpc_buffer_append(&text, chunk, n) != 0) {
      failed = true;
      break;
    }
  }
  if (ferror(file)) {
    failed = true;
  }
  fclose(file);
  auth_credentials *set = NULL;
  if (failed) {
    snprintf(err, err_size, "cannot read auth file %s", path);
  } else {
    set = auth_credentials_parse((const char *)text.data, text.len, path, err,
                                 err_size);
  }
  if (text.data != NULL) {
    OPENSSL_cleanse(text.data, text.cap);
  }
  rpc_buffer_free(&text);
  return set;
}

void auth_credentials_free(auth_credentials *credentials) {
  if (credentials == NULL) {
    return;
  }
  free(credentials->items);
  free(credentials);
}

size_t auth_credentials_count(const auth_credentials *credentials) {
  return credentials->count;
}

/* Finds a credential of kind whose digest is that of secret. Every entry
 * is compared, in constant time, so timing says nothing about which one
 * (or whether one) matched. */
static bool find_credential(const auth_credentials *set, credential_kind kind,
                            const void *secret, size_t secret_len,
                            auth_role *role) {
  unsigned char digest[DIGEST_SIZE];
  if (sha256(secret, secret_len, digest) != 0) {
    return false;
  }
  bool found = false;
  for (size_t i = 0; i < set->count; i++) {
    bool same = set->items[i].kind == kind &&
                CRYPTO_memcmp(set->items[i].digest, digest, DIGEST_SIZE) == 0;
    if (same && !found) {
      *role = set->items[i].role;
      found = true;
    }
  }
  OPENSSL_cleanse(digest, sizeof(digest));
  return found;
}

/* The credentials after "SCHEME " (case-insensitive scheme, RFC 9110
 * 11.4), or NULL when the header is of another scheme. */
static const char *after_scheme(const char *header, const char *scheme) {
  size_t len = strlen(scheme);
  if (strncasecmp(header, scheme, len) != 0 || !is_blank(header[len])) {
    return NULL;
  }
  const char *rest = header + len;
  while (is_blank(*rest)) {
    rest++;
  }
  return rest;
}

auth_identity auth_credentials_identify(const auth_credentials *credentials,
                                        const char *authorization,
                                        const char *cert_cn, auth_role *role) {
  if (authorization == NULL) {
    if (cert_cn == NULL) {
      return AUTH_MISSING;
    }
    return find_credential(credentials, KIND_CERT, cert_cn, strlen(cert_cn),
                           role)
               ? AUTH_IDENTIFIED
               : AUTH_INVALID;
  }
  const char *token = after_scheme(authorization, "Bearer");
  if (token != NULL) {
    size_t token_len = strlen(token);
    while (token_len > 0 && is_blank(token[token_len - 1])) {
      token_len--;
    }
    return token_len > 0 && find_credential(credentials, KIND_BEARER, token,
                                            token_len, role)
               ? AUTH_IDENTIFIED
               : AUTH_INVALID;
  }
  const char *encoded = after_scheme(authorization, "Basic");
  if (encoded == NULL) {
    return AUTH_INVALID;
  }
  size_t encoded_len = strlen(encoded);
  while (encoded_len > 0 && is_blank(encoded[encoded_len - 1])) {
    encoded_len--;
  }
  rpc_buffer decoded;
  rpc_buffer_init(&decoded);
  auth_identity identity = AUTH_INVALID;
  if (rpc_base64_decode(encoded, encoded_len, &decoded) == 0 &&
      decoded.len > 0 && memchr(decoded.data, ':', decoded.len) != NULL &&
      find_credential(credentials, KIND_BASIC, decoded.data, decoded.len,
                      role)) {
    identity = AUTH_IDENTIFIED;
  }
  if (decoded.data != NULL) {
    OPENSSL_cleanse(decoded.data, decoded.cap);
  }
  rpc_buffer_free(&decoded);
  return identity;
}

/* The guard. */

typedef struct failure_peer {
  char peer[PEER_SIZE]; /* "" : free slot */
  double last_logged;   /* s, CLOCK_MONOTONIC */
  unsigned suppressed;  /* failures since then, not logged */
} failure_peer;

struct auth_guard {
  char *path;
  /* Checks read the set under the read lock; a reload swaps the pointer
   * under the write lock and frees the old set once no check holds it. */
  pthread_rwlock_t lock;
  auth_credentials *credentials;
  pthread_mutex_t failures_lock;
  failure_peer failures[FAILURE_PEERS];
};

auth_guard *auth_guard_open(const char *path, char *err, size_t err_size) {
  auth_guard *guard = calloc(1, sizeof(*guard));
  if (guard == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  guard->path = strdup(path);
  if (guard->path == NULL) {
    snprintf(err, err_size, "out of memory");
    free(guard);
    return NULL;
  }
  guard->credentials = auth_credentials_load(path, err, err_size);
  if (guard->credentials == NULL) {
    free(guard->path);
    free(guard);
    return NULL;
  }
  pthread_rwlock_init(&guard->lock, NULL);
  pthread_mutex_init(&guard->failures_lock, NULL);
  return guard;
}

int auth_guard_reload(auth_guard *guard, char *err, size_t err_size) {
  auth_credentials *fresh = auth_credentials_load(guard->path, err, err_size);
  if (fresh == NULL) {
    return -1;
  }
  pthread_rwlock_wrlock(&guard->lock);
  auth_credentials *old = guard->credentials;
  guard->credentials = fresh;
  pthread_rwlock_unlock(&guard->lock);
  auth_credentials_free(old);
  return 0;
}

size_t auth_guard_count(auth_guard *guard) {
  pthread_rwlock_rdlock(&guard->lock);
  size_t count = guard->credentials->count;
  pthread_rwlock_unlock(&guard->lock);
  return count;
}

static double monotonic_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Logs a failed check, unless this peer's last one was logged less than
 * FAILURE_LOG_INTERVAL ago: then it is only counted, and the count goes
 * with the next line logged. */
static void log_failure(auth_guard *guard, const auth_request *request,
                        rpc_status_code code, const char *message) {
  const char *peer = request->peer != NULL ? request->peer : "unknown";
  double now = monotonic_seconds();
  unsigned suppressed = 0;
  bool log = true;
  pthread_mutex_lock(&guard->failures_lock);
  failure_peer *slot = NULL;
  failure_peer *oldest = &guard->failures[0];
  for (size_t i = 0; i < FAILURE_PEERS; i++) {
    failure_peer *entry = &guard->failures[i];
    if (strncmp(entry->peer, peer, PEER_SIZE - 1) == 0 &&
        entry->peer[0] != '\0') {
      slot = entry;
      break;
    }
    if (entry->peer[0] == '\0' || entry->last_logged < oldest->last_logged) {
      oldest = entry;
    }
  }
  if (slot != NULL && now - slot->last_logged < FAILURE_LOG_INTERVAL) {
    slot->suppressed++;
    log = false;
  } else {
    if (slot == NULL) {
      slot = oldest;
      snprintf(slot->peer, sizeof(slot->peer), "%s", peer);
      slot->suppressed = 0;
    }
    suppressed = slot->suppressed;
    slot->suppressed = 0;
    slot->last_logged = now;
  }
  pthread_mutex_unlock(&guard->failures_lock);
  if (log) {
    rpc_log(RPC_LOG_WARN, "auth_failed",
            "peer=%s method=%s/%s code=%s reason=\"%s\" "
            "not_logged_before=%u interval_s=%g",
            peer, request->service, request->method,
            rpc_status_code_name((int)code), message, suppressed,
            FAILURE_LOG_INTERVAL);
  }
}

rpc_status_code auth_guard_check(auth_guard *guard, const auth_request *request,
                                 char *message, size_t message_size) {
  if (auth_method_is_public(request->service)) {
    return RPC_STATUS_OK;
  }
  auth_role role = AUTH_ROLE_ADMIN;
  pthread_rwlock_rdlock(&guard->lock);
  auth_identity identity = auth_credentials_identify(
      guard->credentials, request->authorization, request->cert_cn, &role);
  pthread_rwlock_unlock(&guard->lock);
  rpc_status_code code = RPC_STATUS_OK;
  if (identity == AUTH_MISSING) {
    code = RPC_STATUS_UNAUTHENTICATED;
    snprintf(message, message_size, "missing credentials");
  } else if (identity == AUTH_INVALID) {
    code = RPC_STATUS_UNAUTHENTICATED;
    snprintf(message, message_size, "invalid credentials");
  } else if (!auth_role_allows(role, request->service, request->method)) {
    code = RPC_STATUS_PERMISSION_DENIED;
    snprintf(message, message_size, "role %s may not call %.100s/%.100s",
             auth_role_name(role), request->service, request->method);
  }
  if (code != RPC_STATUS_OK) {
    log_failure(guard, request, code, message);
  }
  return code;
}

void auth_guard_free(auth_guard *guard) {
  if (guard == NULL) {
    return;
  }
  auth_credentials_free(guard->credentials);
  pthread_rwlock_destroy(&guard->lock);
  pthread_mutex_destroy(&guard->failures_lock);
  free(guard->path);
  free(guard);
}

bool auth_listen_is_loopback(const char *listen) {
  const char *host = listen;
  size_t host_len;
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    if (close == NULL) {
      return false;
    }
    host++;
    host_len = (size_t)(close - host);
  } else {
    const char *colon = strrchr(host, ':');
    host_len = colon != NULL ? (size_t)(colon - host) : strlen(host);
  }
  if (word_is(host, host_len, "localhost") || word_is(host, host_len, "::1")) {
    return true;
  }
  /* 127.0.0.0/8: four dotted decimal numbers, the first 127. */
  char ipv4[16];
  if (host_len >= sizeof(ipv4)) {
    return false;
  }
  memcpy(ipv4, host, host_len);
  ipv4[host_len] = '\0';
  unsigned a, b, c, d;
  char extra;
  return sscanf(ipv4, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 &&
         a == 127 && b < 256 && c < 256 && d < 256;
}
