/* route_template.c: google.api.http path templates parsed by recursive
 * descent over the grammar in route_template.h. */
#include "server/http/route_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
  const char *text;
  size_t at;
  http_template *template;
  size_t segment_cap;
  bool in_variable;
  char *err;
  size_t err_size;
  bool failed;
} parser;

static int fail(parser *p, const char *what) {
  if (!p->failed && p->err != NULL && p->err_size > 0) {
    snprintf(p->err, p->err_size, "path template \"%s\": %s at offset %zu",
             p->text, what, p->at);
  }
  p->failed = true;
  return -1;
}

/* RFC 3986 unreserved and sub-delims, '%', '@': what a literal may hold.
 * '*' and '=' mean something in templates. */
static bool is_literal_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != '\0' && strchr("-._~%!$&'()+,;@", c));
}

static bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

static char peek(const parser *p) { return p->text[p->at]; }

static int add_segment(parser *p, http_segment_kind kind, const char *literal,
                       size_t len) {
  http_template *t = p->template;
  if (t->segment_count == p->segment_cap) {
    size_t cap = p->segment_cap == 0 ? 8 : p->segment_cap * 2;
    http_template_segment *grown = realloc(t->segments, cap * sizeof(*grown));
    if (grown == NULL) {
      return fail(p, "out of memory");
    }
    t->segments = grown;
    p->segment_cap = cap;
  }
  http_template_segment *s = &t->segments[t->segment_count];
  memset(s, 0, sizeof(*s));
  s->kind = kind;
  if (kind == HTTP_SEGMENT_LITERAL) {
    s->literal = strndup(literal, len);
    if (s->literal == NULL) {
      return fail(p, "out of memory");
    }
    s->literal_len = len;
  }
  t->segment_count++;
  return 0;
}

static int parse_variable(parser *p);

static int parse_segment(parser *p) {
  const char *start = p->text + p->at;
  if (start[0] == '*' && start[1] == '*') {
    p->at += 2;
    return add_segment(p, HTTP_SEGMENT_MULTI, NULL, 0);
  }
  if (start[0] == '*') {
    p->at++;
    return add_segment(p, HTTP_SEGMENT_SINGLE, NULL, 0);
  }
  if (start[0] == '{') {
    if (p->in_variable) {
      return fail(p, "a variable inside a variable");
    }
    return parse_variable(p);
  }
  size_t len = 0;
  while (is_literal_char(start[len])) {
    len++;
  }
  if (len == 0) {
    return fail(p, "expected a segment");
  }
  p->at += len;
  return add_segment(p, HTTP_SEGMENT_LITERAL, start, len);
}

static int parse_segments(parser *p) {
  for (;;) {
    if (parse_segment(p) != 0) {
      return -1;
    }
    if (peek(p) != '/') {
      return 0;
    }
    p->at++;
  }
}

static bool bound_already(const http_template *t, const char *path,
                          size_t len) {
  for (size_t i = 0; i < t->variable_count; i++) {
    if (strlen(t->variables[i].field_path) == len &&
        memcmp(t->variables[i].field_path, path, len) == 0) {
      return true;
    }
  }
  return false;
}

static int parse_variable(parser *p) {
  http_template *t = p->template;
  p->at++; /* '{' */
  const char *path = p->text + p->at;
  size_t len = 0;
  for (;;) {
    if (!is_ident_start(path[len])) {
      return fail(p, "expected a field name");
    }
    while (is_ident_char(path[len])) {
      len++;
    }
    if (path[len] != '.') {
      break;
    }
    len++;
  }
  if (t->variable_count == HTTP_TEMPLATE_MAX_VARIABLES) {
    return fail(p, "too many variables");
  }
  if (bound_already(t, path, len)) {
    return fail(p, "a field bound twice");
  }
  http_template_variable *v = &t->variables[t->variable_count];
  memset(v, 0, sizeof(*v));
  v->field_path = strndup(path, len);
  if (v->field_path == NULL) {
    return fail(p, "out of memory");
  }
  t->variable_count++;
  p->at += len;
  v->first = t->segment_count;
  if (peek(p) == '=') {
    p->at++;
    p->in_variable = true;
    int rv = parse_segments(p);
    p->in_variable = false;
    if (rv != 0) {
      return -1;
    }
  } else if (add_segment(p, HTTP_SEGMENT_SINGLE, NULL, 0) != 0) {
    return -1;
  }
  if (peek(p) != '}') {
    return fail(p, "expected '}'");
  }
  p->at++;
  v->count = t->segment_count - v->first;
  v->multi_segment = v->count > 1 || t->segments[t->segment_count - 1].kind ==
                                         HTTP_SEGMENT_MULTI;
  return 0;
}

static int parse_verb(parser *p) {
  p->at++; /* ':' */
  const char *start = p->text + p->at;
  size_t len = 0;
  while (is_literal_char(start[len])) {
    len++;
  }
  if (len == 0) {
    return fail(p, "expected a verb after ':'");
  }
  p->template->verb = strndup(start, len);
  if (p->template->verb == NULL) {
    return fail(p, "out of memory");
  }
  p->at += len;
  return 0;
}

static int parse_template(parser *p) {
  if (peek(p) != '/') {
    return fail(p, "expected '/'");
  }
  p->at++;
  if (parse_segments(p) != 0) {
    return -1;
  }
  if (peek(p) == ':' && parse_verb(p) != 0) {
    return -1;
  }
  if (peek(p) != '\0') {
    return fail(p, "unexpected character");
  }
  const http_template *t = p->template;
  for (size_t i = 0; i + 1 < t->segment_count; i++) {
    if (t->segments[i].kind == HTTP_SEGMENT_MULTI) {
      p->at = 0;
      return fail(p, "\"**\" is allowed only as the last segment");
    }
  }
  return 0;
}

int http_template_parse(const char *text, http_template *template, char *err,
                        size_t err_size) {
  memset(template, 0, sizeof(*template));
  parser p = {
      .text = text, .template = template, .err = err, .err_size = err_size};
  template->variables =
      calloc(HTTP_TEMPLATE_MAX_VARIABLES, sizeof(*template->variables));
  if (template->variables == NULL) {
    return fail(&p, "out of memory");
  }
  if (parse_template(&p) != 0) {
    http_template_free(template);
    return -1;
  }
  return 0;
}

void http_template_free(http_template *template) {
  for (size_t i = 0; i < template->segment_count; i++) {
    free(template->segments[i].literal);
  }
  free(template->segments);
  if (template->variables != NULL) {
    for (size_t i = 0; i < template->variable_count; i++) {
      free(template->variables[i].field_path);
    }
    free(template->variables);
  }
  free(template->verb);
  memset(template, 0, sizeof(*template));
}
