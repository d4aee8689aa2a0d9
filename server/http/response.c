/* response.c: response headers, whole responses and error bodies shared
 * by the protocols of the HTTP face. */
#include "server/http/response.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_header_list_init(http_header_list *list) {
  rpc_buffer_init(&list->text);
  list->count = 0;
  list->view = NULL;
}

void http_header_list_free(http_header_list *list) {
  rpc_buffer_free(&list->text);
  free(list->view);
  list->view = NULL;
  list->count = 0;
}

/* Appends name and value[0..value_len) as one entry. */
static int add_entry(http_header_list *list, const char *prefix,
                     const char *name, const void *value, size_t value_len) {
  static const char nul = '\0';
  size_t before = list->text.len;
  if (rpc_buffer_append(&list->text, prefix, strlen(prefix)) != 0 ||
      rpc_buffer_append(&list->text, name, strlen(name) + 1) != 0 ||
      rpc_buffer_append(&list->text, value, value_len) != 0 ||
      rpc_buffer_append(&list->text, &nul, 1) != 0) {
    list->text.len = before;
    return -1;
  }
  list->count++;
  return 0;
}

int http_header_list_add(http_header_list *list, const char *name,
                         const char *value) {
  return add_entry(list, "", name, value, strlen(value));
}

int http_header_list_add_metadata(http_header_list *list, const char *prefix,
                                  const rpc_metadata *md) {
  rpc_buffer value;
  rpc_buffer_init(&value);
  int rv = 0;
  for (size_t i = 0; i < md->count && rv == 0; i++) {
    rpc_buffer_reset(&value);
    rv = rpc_metadata_wire_value(&md->entries[i], &value) == 0 &&
                 add_entry(list, prefix, md->entries[i].key, value.data,
                           value.len) == 0
             ? 0
             : -1;
  }
  rpc_buffer_free(&value);
  return rv;
}

int http_header_list_add_extra(http_header_list *list,
                               const http_exchange *exchange) {
  for (size_t i = 0; i < exchange->extra_count; i++) {
    if (http_header_list_add(list, exchange->extra[i].name,
                             exchange->extra[i].value) != 0) {
      return -1;
    }
  }
  return 0;
}

const rpc_http_header *http_header_list_view(http_header_list *list,
                                             size_t *count) {
  rpc_http_header *view =
      realloc(list->view, (list->count + 1) * sizeof(*view));
  if (view == NULL) {
    return NULL;
  }
  list->view = view;
  const char *at = (const char *)list->text.data;
  for (size_t i = 0; i < list->count; i++) {
    view[i].name = at;
    at += strlen(at) + 1;
    view[i].value = at;
    at += strlen(at) + 1;
  }
  *count = list->count;
  return view;
}

bool http_media_type_is(const char *value, const char *type) {
  if (value == NULL) {
    return false;
  }
  size_t len = strcspn(value, "; ");
  return len == strlen(type) && strncasecmp(value, type, len) == 0;
}

bool http_header_is_transport(const char *name) {
  static const char *const names[] = {
      "accept",         "accept-encoding", "accept-language", "cache-control",
      "cookie",         "origin",          "pragma",          "referer",
      "x-grpc-web",     "x-user-agent",    "priority",        "dnt",
      "content-length", "expect",
  };
  static const char *const prefixes[] = {"sec-", "access-control-", "connect-"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcmp(name, names[i]) == 0) {
      return true;
    }
  }
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
    if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) {
      return true;
    }
  }
  return false;
}

/* Answers at once and finishes the request. Returns 0 or -1. */
/* SPEC "Auth": every 401 of the face says how to authenticate. */
static int add_authenticate(http_header_list *list, int status) {
  return status != 401 ? 0
                       : http_header_list_add(list, "www-authenticate",
                                              "Bearer realm=\"jobhub\"");
}

static int answer_now(const http_exchange *exchange, int status,
                      const char *content_type, const void *body, size_t len) {
  http_header_list list;
  http_header_list_init(&list);
  size_t count = 0;
  const rpc_http_header *headers = NULL;
  int rv = -1;
  if ((content_type == NULL ||
       http_header_list_add(&list, "content-type", content_type) == 0) &&
      add_authenticate(&list, status) == 0 &&
      http_header_list_add_extra(&list, exchange) == 0) {
    headers = http_header_list_view(&list, &count);
  }
  if (headers != NULL &&
      rpc_http_request_respond(exchange->request, status, headers, count) ==
          0 &&
      (len == 0 || rpc_http_request_write(exchange->request, body, len) == 0)) {
    rv = 0;
  }
  rpc_http_request_finish(exchange->request, NULL, 0);
  http_header_list_free(&list);
  return rv;
}

/* An answer waiting for the end of its request's body. */
typedef struct waiting_answer {
  http_exchange exchange;
  int status;
  const char *content_type; /* static */
  rpc_buffer body;
  size_t dropped; /* request body bytes */
} waiting_answer;

static void send_waiting(waiting_answer *answer) {
  (void)answer_now(&answer->exchange, answer->status, answer->content_type,
                   answer->body.data, answer->body.len);
  rpc_buffer_free(&answer->body);
  free(answer);
}

static int on_waiting_data(rpc_http_request *request, const uint8_t *data,
                           size_t len, void *arg) {
  (void)request;
  (void)data;
  waiting_answer *answer = arg;
  answer->dropped += len;
  if (answer->dropped > HTTP_DRAIN_BYTES_MAX) {
    send_waiting(answer);
  }
  return 0;
}

static void on_waiting_end(rpc_http_request *request, void *arg) {
  (void)request;
  send_waiting(arg);
}

static void on_waiting_cancel(rpc_http_request *request, void *arg) {
  waiting_answer *answer = arg;
  rpc_http_request_finish(request, NULL, 0);
  rpc_buffer_free(&answer->body);
  free(answer);
}

int http_respond_whole(const http_exchange *exchange, int status,
                       const char *content_type, const void *body, size_t len) {
  waiting_answer *answer = calloc(1, sizeof(*answer));
  if (answer == NULL) {
    return answer_now(exchange, status, content_type, body, len);
  }
  *answer = (waiting_answer){
      .exchange = *exchange, .status = status, .content_type = content_type};
  rpc_buffer_init(&answer->body);
  if (rpc_buffer_append(&answer->body, body, len) != 0) {
    free(answer);
    return answer_now(exchange, status, content_type, body, len);
  }
  static const rpc_http_request_hooks hooks = {
      .on_data = on_waiting_data,
      .on_end = on_waiting_end,
      .on_cancel = on_waiting_cancel,
  };
  rpc_http_request_set_hooks(exchange->request, &hooks, answer);
  return 0;
}

int http_respond_call(const http_exchange *exchange, int status,
                      const char *content_type, const rpc_metadata *initial,
                      const char *trailing_prefix,
                      const rpc_metadata *trailing) {
  return http_respond_call_sized(exchange, status, content_type, initial,
                                 trailing_prefix, trailing,
                                 HTTP_LENGTH_UNKNOWN);
}

int http_respond_call_sized(const http_exchange *exchange, int status,
                            const char *content_type,
                            const rpc_metadata *initial,
                            const char *trailing_prefix,
                            const rpc_metadata *trailing, size_t length) {
  http_header_list list;
  http_header_list_init(&list);
  size_t count = 0;
  const rpc_http_header *headers = NULL;
  char digits[24] = "";
  if (length != HTTP_LENGTH_UNKNOWN) {
    snprintf(digits, sizeof(digits), "%zu", length);
  }
  if (http_header_list_add(&list, "content-type", content_type) == 0 &&
      (length == HTTP_LENGTH_UNKNOWN ||
       http_header_list_add(&list, "content-length", digits) == 0) &&
      http_header_list_add_metadata(&list, "", initial) == 0 &&
      (trailing == NULL ||
       http_header_list_add_metadata(&list, trailing_prefix, trailing) == 0) &&
      add_authenticate(&list, status) == 0 &&
      http_header_list_add_extra(&list, exchange) == 0) {
    headers = http_header_list_view(&list, &count);
  }
  int rv = headers != NULL ? rpc_http_request_respond(exchange->request, status,
                                                      headers, count)
                           : RPC_HTTP_REQUEST_ERR_NOMEM;
  http_header_list_free(&list);
  return rv;
}

json_t *http_json_message(const char *message) {
  json_t *text = json_string(message != NULL ? message : "");
  return text != NULL ? text : json_string("(message is not UTF-8)");
}

int http_json_dump(json_t *value, rpc_buffer *out) {
  if (value == NULL) {
    return -1;
  }
  size_t size = json_dumpb(value, NULL, 0, JSON_COMPACT);
  int rv = rpc_buffer_reserve(out, size);
  if (rv == 0) {
    out->len +=
        json_dumpb(value, (char *)out->data + out->len, size, JSON_COMPACT);
  }
  json_decref(value);
  return rv;
}

int http_json_error_body(int code, const char *message, rpc_buffer *out) {
  return http_json_dump(json_pack("{s:i,s:o,s:[]}", "code", code, "message",
                                  http_json_message(message), "details"),
                        out);
}

void http_respond_json_error(const http_exchange *exchange, int http_status,
                             rpc_status_code code, const char *message) {
  rpc_buffer body;
  rpc_buffer_init(&body);
  if (http_json_error_body((int)code, message, &body) == 0) {
    (void)http_respond_whole(exchange, http_status, "application/json",
                             body.data, body.len);
  } else {
    (void)http_respond_whole(exchange, 500, "text/plain; charset=utf-8",
                             "out of memory\n", 14);
  }
  rpc_buffer_free(&body);
}

void http_collect_body(rpc_bridge *bridge, rpc_buffer *body,
                       const uint8_t *data, size_t len, bool *too_large) {
  if (*too_large) {
    return;
  }
  if (len > rpc_bridge_max_message_bytes(bridge) - body->len) {
    *too_large = true;
    rpc_bridge_fail_too_large(bridge);
  } else if (rpc_buffer_append(body, data, len) != 0) {
    rpc_bridge_fail(bridge, RPC_STATUS_RESOURCE_EXHAUSTED,
                    "out of memory receiving the body");
  }
}
