/* http1_exchange.c: one request and its response on an HTTP/1.x
 * connection (rpc/http1.h): libhttp-parser's callbacks build the
 * rpc_http_request as HTTP/2 would give it, and the backend table here
 * writes its response, framed by content-length or chunks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc/http1_connection.h"
#include "rpc/http_request_internal.h"

/* What a request head carries that is the connection's, not the
 * request's: not given to the handler (HTTP/2 has none of them). */
static bool is_hop_by_hop(const char *name) {
  static const char *const names[] = {"connection",       "keep-alive",
                                      "proxy-connection", "transfer-encoding",
                                      "upgrade",          "http2-settings"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcmp(name, names[i]) == 0) {
      return true;
    }
  }
  return false;
}

/* Whether a comma-separated header value lists token (any case). */
static bool lists_token(const char *value, const char *token) {
  size_t token_len = strlen(token);
  for (const char *at = value; *at != '\0';) {
    at += strspn(at, " \t,");
    size_t len = strcspn(at, " \t,;");
    if (len == token_len && strncasecmp(at, token, len) == 0) {
      return true;
    }
    at += strcspn(at, ",");
  }
  return false;
}

static http1_connection *connection_of(const http_parser *parser) {
  return parser->data;
}

/* Counts head bytes against the limit. Returns 0, or -1 (431). */
static int count_head(http1_connection *c, size_t len) {
  c->head_bytes += len;
  if (c->head_bytes > c->server->options.max_header_bytes) {
    c->error_status = 431;
    return -1;
  }
  return 0;
}

static int on_message_begin(http_parser *parser) {
  http1_connection *c = connection_of(parser);
  rpc_buffer_reset(&c->url);
  rpc_buffer_reset(&c->field);
  rpc_buffer_reset(&c->value);
  rpc_buffer_reset(&c->headers);
  c->header_count = 0;
  c->head_bytes = 0;
  c->body_bytes = 0;
  c->reading_value = false;
  c->head_done = false;
  c->te_trailers = false;
  c->expect_continue = false;
  return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len) {
  http1_connection *c = connection_of(parser);
  return count_head(c, len) == 0 && rpc_buffer_append(&c->url, at, len) == 0
             ? 0
             : -1;
}

/* Keeps the header just read (field, value): the connection's own are
 * noted, the rest go to the request. Returns 0 or -1 (no memory). */
static int commit_header(http1_connection *c) {
  static const uint8_t nul = 0;
  if (rpc_buffer_append(&c->field, &nul, 1) != 0 ||
      rpc_buffer_append(&c->value, &nul, 1) != 0) {
    return -1;
  }
  const char *name = (const char *)c->field.data;
  const char *value = (const char *)c->value.data;
  int rv = 0;
  if (strcmp(name, "te") == 0) {
    c->te_trailers = c->te_trailers || lists_token(value, "trailers");
  } else if (strcmp(name, "expect") == 0) {
    c->expect_continue = strcasecmp(value, "100-continue") == 0;
  } else if (strcmp(name, "host") == 0) {
    /* Kept (first in the block) until the pseudo-headers are made. */
    if (c->header_count > 0 &&
        strcmp((const char *)c->headers.data, "host") == 0) {
      c->error_status = 400; /* RFC 9112 3.2: one Host */
      return -1;
    }
    rpc_buffer other = c->headers;
    rpc_buffer_init(&c->headers);
    rv = rpc_http_request_add_header(&c->headers, c->field.data,
                                     c->field.len - 1, c->value.data,
                                     c->value.len - 1);
    if (rv == 0 && rpc_buffer_append(&c->headers, other.data, other.len) != 0) {
      rv = -1;
    }
    rpc_buffer_free(&other);
    c->header_count++;
  } else if (!is_hop_by_hop(name)) {
    rv = rpc_http_request_add_header(&c->headers, c->field.data,
                                     c->field.len - 1, c->value.data,
                                     c->value.len - 1);
    c->header_count++;
  }
  rpc_buffer_reset(&c->field);
  rpc_buffer_reset(&c->value);
  c->reading_value = false;
  return rv;
}

static int on_header_field(http_parser *parser, const char *at, size_t len) {
  http1_connection *c = connection_of(parser);
  if (c->head_done) {
    return 0; /* a chunked body's trailers: not kept */
  }
  if ((c->reading_value && commit_header(c) != 0) || count_head(c, len) != 0 ||
      rpc_buffer_reserve(&c->field, len) != 0) {
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    char lower =
        at[i] >= 'A' && at[i] <= 'Z' ? (char)(at[i] - 'A' + 'a') : at[i];
    c->field.data[c->field.len++] = (uint8_t)lower;
  }
  return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t len) {
  http1_connection *c = connection_of(parser);
  if (c->head_done) {
    return 0;
  }
  c->reading_value = true;
  return count_head(c, len) == 0 && rpc_buffer_append(&c->value, at, len) == 0
             ? 0
             : -1;
}

/* The request target as :path and, for the absolute form, its authority.
 * Returns 0, or -1 when it is neither origin nor absolute form. */
static int split_target(const rpc_buffer *url, const char **path,
                        size_t *path_len, const char **authority,
                        size_t *authority_len) {
  const char *target = (const char *)url->data;
  *authority = NULL;
  *authority_len = 0;
  if (url->len > 0 &&
      (target[0] == '/' || (url->len == 1 && target[0] == '*'))) {
    *path = target;
    *path_len = url->len;
    return 0;
  }
  struct http_parser_url parts;
  http_parser_url_init(&parts);
  if (url->len == 0 ||
      http_parser_parse_url(target, url->len, 0, &parts) != 0 ||
      !(parts.field_set & (1 << UF_HOST))) {
    return -1;
  }
  size_t start = url->len;
  if (parts.field_set & (1 << UF_PATH)) {
    start = parts.field_data[UF_PATH].off;
  } else if (parts.field_set & (1 << UF_QUERY)) {
    start = parts.field_data[UF_QUERY].off - 1u;
  }
  *path = start < url->len ? target + start : "/";
  *path_len = start < url->len ? url->len - start : 1;
  *authority = target + parts.field_data[UF_HOST].off;
  *authority_len = parts.field_data[UF_HOST].len;
  if (parts.field_set & (1 << UF_PORT)) {
    *authority_len = (size_t)parts.field_data[UF_PORT].off +
                     parts.field_data[UF_PORT].len -
                     parts.field_data[UF_HOST].off;
  }
  return 0;
}

/* Makes the header block the handler sees: pseudo-headers, then the
 * request's own (a Host header, first in c->headers, becomes
 * :authority). Returns the count, or -1 (error_status set, or no
 * memory). */
static int make_request_headers(http1_connection *c, rpc_buffer *block) {
  const char *path, *authority;
  size_t path_len, authority_len;
  if (split_target(&c->url, &path, &path_len, &authority, &authority_len) !=
      0) {
    c->error_status = 400;
    return -1;
  }
  const char *rest = (const char *)c->headers.data;
  size_t rest_len = c->headers.len, rest_count = c->header_count;
  if (rest_count > 0 && strcmp(rest, "host") == 0) {
    const char *host = rest + 5;
    if (authority == NULL) {
      authority = host;
      authority_len = strlen(host);
    }
    size_t entry = 5 + strlen(host) + 1;
    rest += entry;
    rest_len -= entry;
    rest_count--;
  }
  if (authority == NULL && c->parser.http_minor >= 1) {
    c->error_status = 400; /* RFC 9112 3.2: HTTP/1.1 needs Host */
    return -1;
  }
  const char *method = http_method_str((enum http_method)c->parser.method);
  const char *scheme = c->socket.ssl != NULL ? "https" : "http";
  int count = 3;
  if (rpc_http_request_add_header(block, (const uint8_t *)":method", 7,
                                  (const uint8_t *)method,
                                  strlen(method)) != 0 ||
      rpc_http_request_add_header(block, (const uint8_t *)":scheme", 7,
                                  (const uint8_t *)scheme,
                                  strlen(scheme)) != 0 ||
      rpc_http_request_add_header(block, (const uint8_t *)":path", 5,
                                  (const uint8_t *)path, path_len) != 0) {
    return -1;
  }
  if (authority != NULL) {
    if (rpc_http_request_add_header(block, (const uint8_t *)":authority", 10,
                                    (const uint8_t *)authority,
                                    authority_len) != 0) {
      return -1;
    }
    count++;
  }
  if (c->te_trailers &&
      rpc_http_request_add_header(block, (const uint8_t *)"te", 2,
                                  (const uint8_t *)"trailers", 8) != 0) {
    return -1;
  }
  count += c->te_trailers ? 1 : 0;
  if (rpc_buffer_append(block, rest, rest_len) != 0) {
    return -1;
  }
  return count + (int)rest_count;
}

static const rpc_http_request_backend http1_backend;

static bool has_body(const http_parser *parser) {
  return (parser->flags & F_CHUNKED) ||
         (parser->content_length > 0 && parser->content_length != ULLONG_MAX);
}

static int on_headers_complete(http_parser *parser) {
  http1_connection *c = connection_of(parser);
  if (c->reading_value && commit_header(c) != 0) {
    return -1;
  }
  c->head_done = true;
  if (parser->method == HTTP_CONNECT) {
    c->error_status = 400; /* no tunnels here */
    return -1;
  }
  if (parser->content_length != ULLONG_MAX &&
      parser->content_length > c->server->options.max_body_bytes) {
    c->error_status = 413;
    return -1;
  }
  rpc_buffer block;
  rpc_buffer_init(&block);
  int count = make_request_headers(c, &block);
  rpc_http_request_origin origin = {
      .backend = &http1_backend,
      .transport = c,
      .loop_thread = c->loop_thread,
      .peer = c->peer,
      .cert_cn = c->cert_cn,
  };
  rpc_http_request *request =
      count >= 0 ? rpc_http_request_new(&origin, &block, (size_t)count) : NULL;
  rpc_buffer_free(&block);
  if (request == NULL) {
    if (c->error_status == 0) {
      c->error_status = 500;
    }
    return -1;
  }
  c->request = request;
  c->in_exchange = true;
  c->responded = c->response_done = c->chunked = c->has_length = false;
  c->continue_sent = false;
  c->keep_alive = http_should_keep_alive(parser) != 0;
  c->head_method = parser->method == HTTP_HEAD;
  c->server->fn(c->server->user, request);
  if (c->expect_continue && !c->responded && parser->http_minor >= 1 &&
      has_body(parser)) {
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (rpc_buffer_append(&c->out, go_on, sizeof(go_on) - 1) != 0) {
      return -1;
    }
    c->continue_sent = true;
    http1_schedule_progress(c);
  }
  return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len) {
  http1_connection *c = connection_of(parser);
  c->body_bytes += len;
  if (c->body_bytes > c->server->options.max_body_bytes) {
    c->error_status = 413;
    return -1;
  }
  if (c->request != NULL) {
    rpc_http_request_on_data(c->request, (const uint8_t *)at, len);
  }
  return 0;
}

static int on_message_complete(http_parser *parser) {
  http1_connection *c = connection_of(parser);
  c->request_done = true;
  /* The next request waits, unparsed, until this exchange ends. */
  http_parser_pause(parser, 1);
  if (c->request != NULL) {
    rpc_http_request_on_remote_close(c->request);
  }
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int http1_exchange_parse(http1_connection *c) {
  while (!c->request_done && !c->closing && c->in_offset < c->in.len) {
    size_t len = c->in.len - c->in_offset;
    size_t n =
        http_parser_execute(&c->parser, &parser_settings,
                            (const char *)c->in.data + c->in_offset, len);
    c->in_offset += n;
    enum http_errno error = HTTP_PARSER_ERRNO(&c->parser);
    if (error == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
    } else if (error != HPE_OK) {
      if (c->error_status == 0) {
        c->error_status = error == HPE_HEADER_OVERFLOW ? 431 : 400;
      }
      return -1;
    } else if (n < len && !c->parser.upgrade) {
      c->error_status = 400;
      return -1;
    }
    /* An Upgrade (h2c, say) is not taken: what follows the request is
     * the next request, parsed as HTTP/1.x. */
    c->parser.upgrade = 0;
  }
  if (c->in_offset == c->in.len) {
    rpc_buffer_reset(&c->in);
    c->in_offset = 0;
  }
  return 0;
}

/* The response. */

/* A header name is a token, a value has no CR, LF or NUL: a handler's
 * strings cannot split the response. */
static bool header_is_safe(const rpc_http_header *header) {
  static const char token[] = "!#$%&'*+-.^_`|~0123456789"
                              "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  size_t name_len = strlen(header->name);
  return name_len > 0 && strspn(header->name, token) == name_len &&
         strcspn(header->value, "\r\n") == strlen(header->value);
}

/* Appends "name: value\r\n" for each header that is safe and not the
 * connection's. Returns 0, or an RPC_HTTP_REQUEST_ERR_ code. */
static int append_fields(rpc_buffer *out, const rpc_http_header *headers,
                         size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (!header_is_safe(&headers[i])) {
      return RPC_HTTP_REQUEST_ERR_STATE;
    }
    if (is_hop_by_hop(headers[i].name)) {
      continue;
    }
    if (rpc_buffer_append(out, headers[i].name, strlen(headers[i].name)) != 0 ||
        rpc_buffer_append(out, ": ", 2) != 0 ||
        rpc_buffer_append(out, headers[i].value, strlen(headers[i].value)) !=
            0 ||
        rpc_buffer_append(out, "\r\n", 2) != 0) {
      return RPC_HTTP_REQUEST_ERR_NOMEM;
    }
  }
  return 0;
}

/* The handler's content-length, if it gave one. Returns 0, 1 when none,
 * or -1 when it is not a number. */
static int given_length(const rpc_http_header *headers, size_t count,
                        uint64_t *length) {
  for (size_t i = 0; i < count; i++) {
    if (strcasecmp(headers[i].name, "content-length") == 0) {
      char *end;
      const char *value = headers[i].value;
      if (value[0] < '0' || value[0] > '9') {
        return -1;
      }
      *length = strtoull(value, &end, 10);
      return *end == '\0' ? 0 : -1;
    }
  }
  return 1;
}

static int http1_respond(rpc_http_request *request, int status,
                         const rpc_http_header *headers, size_t count) {
  http1_connection *c = rpc_http_request_transport(request);
  int length = given_length(headers, count, &c->length_left);
  if (length < 0) {
    return RPC_HTTP_REQUEST_ERR_STATE;
  }
  c->has_length = length == 0;
  c->bodiless = c->head_method || status == 204 || status == 304;
  bool http10 = c->parser.http_minor == 0;
  c->chunked = !c->has_length && !c->bodiless && !http10;
  if (!c->has_length && !c->bodiless && http10) {
    c->keep_alive = false; /* the body ends with the connection */
  }
  if (c->expect_continue && !c->continue_sent && !c->request_done) {
    /* The client may never send the body it announced: nothing more can
     * be read on this connection. */
    c->keep_alive = false;
  }
  const char *reason = http_status_str((enum http_status)status);
  char line[64];
  int line_len = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
                          strcmp(reason, "<unknown>") == 0 ? "" : reason);
  size_t before = c->out.len;
  int rv = rpc_buffer_append(&c->out, line, (size_t)line_len) == 0
               ? append_fields(&c->out, headers, count)
               : RPC_HTTP_REQUEST_ERR_NOMEM;
  const char *framing = c->chunked ? "transfer-encoding: chunked\r\n" : "";
  const char *persistence = !c->keep_alive ? "connection: close\r\n"
                            : http10       ? "connection: keep-alive\r\n"
                                           : "";
  if (rv == 0 &&
      (rpc_buffer_append(&c->out, framing, strlen(framing)) != 0 ||
       rpc_buffer_append(&c->out, persistence, strlen(persistence)) != 0 ||
       rpc_buffer_append(&c->out, "\r\n", 2) != 0)) {
    rv = RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  if (rv != 0) {
    c->out.len = before;
    return rv;
  }
  c->responded = true;
  c->head_end = c->out.len;
  http1_schedule_progress(c);
  return 0;
}

/* Body bytes of the response not yet written: what is queued after its
 * head (which, like HTTP/2's HEADERS, does not count against the
 * stream's bound). */
static size_t body_pending(const http1_connection *c) {
  size_t from = c->out_offset > c->head_end ? c->out_offset : c->head_end;
  return c->out.len - from;
}

static size_t http1_pending_bytes(const rpc_http_request *request) {
  return body_pending(rpc_http_request_transport(request));
}

static int http1_write(rpc_http_request *request, const void *data,
                       size_t len) {
  http1_connection *c = rpc_http_request_transport(request);
  if (c->bodiless || len == 0) {
    return 0; /* HEAD, 204, 304: no body goes out */
  }
  const rpc_http1_options *options = &c->server->options;
  if (!rpc_http_request_output_fits(body_pending(c), c->out.len - c->out_offset,
                                    len, options->max_stream_output_bytes,
                                    options->max_connection_output_bytes)) {
    return RPC_HTTP_REQUEST_ERR_FULL;
  }
  if (c->has_length && len > c->length_left) {
    return RPC_HTTP_REQUEST_ERR_STATE; /* more than its content-length */
  }
  char size_line[24];
  int size_len =
      c->chunked ? snprintf(size_line, sizeof(size_line), "%zx\r\n", len) : 0;
  size_t before = c->out.len;
  if (rpc_buffer_append(&c->out, size_line, (size_t)size_len) != 0 ||
      rpc_buffer_append(&c->out, data, len) != 0 ||
      (c->chunked && rpc_buffer_append(&c->out, "\r\n", 2) != 0)) {
    c->out.len = before;
    return RPC_HTTP_REQUEST_ERR_NOMEM;
  }
  if (c->has_length) {
    c->length_left -= len;
  }
  http1_schedule_progress(c);
  return 0;
}

static void http1_finish(rpc_http_request *request,
                         const rpc_http_header *trailers, size_t count) {
  http1_connection *c = rpc_http_request_transport(request);
  c->response_done = true;
  http1_schedule_progress(c);
  if (!c->responded) {
    c->closing = true; /* as HTTP/2 resets the stream: no answer */
    return;
  }
  if (c->chunked) {
    size_t before = c->out.len;
    int rv = rpc_buffer_append(&c->out, "0\r\n", 3) == 0 && c->te_trailers
                 ? append_fields(&c->out, trailers, count)
                 : 0;
    if (rv != 0 || rpc_buffer_append(&c->out, "\r\n", 2) != 0) {
      c->out.len = before;
      c->closing = true; /* the body cannot end well */
    }
  } else if (c->has_length && c->length_left > 0 && !c->bodiless) {
    c->keep_alive = false; /* short of its content-length */
  }
}

static void http1_refuse(rpc_http_request *request) {
  http1_connection *c = rpc_http_request_transport(request);
  c->keep_alive = false;
  c->closing = true;
  http1_schedule_progress(c);
}

static const rpc_http_request_backend http1_backend = {
    .respond = http1_respond,
    .write = http1_write,
    .pending_bytes = http1_pending_bytes,
    .finish = http1_finish,
    .refuse = http1_refuse,
};

void http1_exchange_cancel(http1_connection *c) {
  rpc_http_request *request = c->request;
  c->request = NULL;
  if (request != NULL) {
    rpc_http_request_on_transport_close(request);
  }
}

void http1_exchange_fail(http1_connection *c) {
  c->closing = true;
  if (c->error_status != 0 && !c->responded) {
    const char *reason = http_status_str((enum http_status)c->error_status);
    char answer[200];
    int len = snprintf(answer, sizeof(answer),
                       "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n"
                       "content-length: %zu\r\nconnection: close\r\n\r\n%s\n",
                       c->error_status, reason, strlen(reason) + 1, reason);
    (void)rpc_buffer_append(&c->out, answer, (size_t)len);
    c->responded = true;
  }
  http1_exchange_cancel(c);
}

void http1_exchange_end(http1_connection *c) {
  http1_exchange_cancel(c); /* finished: only released */
  c->in_exchange = false;
  c->request_done = false;
  c->responded = c->response_done = false;
  c->last_active = ev_now(c->loop);
  c->head_started = c->in_offset < c->in.len ? c->last_active : 0;
  if (!c->keep_alive) {
    c->closing = true;
  }
}
