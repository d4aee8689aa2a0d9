/* route_table.c: the route trie. A node per template prefix: literal
 * edges, one "*" edge, one "**" edge; the endpoints (routes) hang off the
 * node their last segment leads to, told apart by HTTP method and verb.
 * Variables do not shape the trie: "/jobs/{id}" and "/jobs/{name}" end in
 * the same node, which is how conflicts are found. */
#include "server/http/route_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct endpoint {
  http_route route;
  http_template template; /* parsed route.path_template */
} endpoint;

typedef struct node node;

typedef struct literal_edge {
  char *text;
  size_t len;
  node *child;
} literal_edge;

struct node {
  literal_edge *literals;
  size_t literal_count;
  node *single; /* "*" */
  node *multi;  /* "**": always a leaf */
  endpoint **endpoints;
  size_t endpoint_count;
};

struct http_route_table {
  node root;
  size_t count;
};

http_route_table *http_route_table_new(void) {
  return calloc(1, sizeof(http_route_table));
}

static void free_endpoint(endpoint *e) {
  if (e == NULL) {
    return;
  }
  free((char *)e->route.http_method);
  free((char *)e->route.path_template);
  free((char *)e->route.rpc_path);
  free((char *)e->route.input_type);
  free((char *)e->route.output_type);
  free((char *)e->route.body);
  free((char *)e->route.response_body);
  free((void *)e->route.variables);
  http_template_free(&e->template);
  free(e);
}

static void free_node(node *n) {
  for (size_t i = 0; i < n->literal_count; i++) {
    free(n->literals[i].text);
    free_node(n->literals[i].child);
    free(n->literals[i].child);
  }
  free(n->literals);
  if (n->single != NULL) {
    free_node(n->single);
    free(n->single);
  }
  if (n->multi != NULL) {
    free_node(n->multi);
    free(n->multi);
  }
  for (size_t i = 0; i < n->endpoint_count; i++) {
    free_endpoint(n->endpoints[i]);
  }
  free(n->endpoints);
}

void http_route_table_free(http_route_table *table) {
  if (table == NULL) {
    return;
  }
  free_node(&table->root);
  free(table);
}

size_t http_route_table_count(const http_route_table *table) {
  return table->count;
}

static node *literal_child(const node *n, const char *text, size_t len) {
  for (size_t i = 0; i < n->literal_count; i++) {
    if (n->literals[i].len == len &&
        memcmp(n->literals[i].text, text, len) == 0) {
      return n->literals[i].child;
    }
  }
  return NULL;
}

static node *add_literal_child(node *n, const char *text, size_t len) {
  literal_edge *grown =
      realloc(n->literals, (n->literal_count + 1) * sizeof(*grown));
  if (grown == NULL) {
    return NULL;
  }
  n->literals = grown;
  literal_edge *edge = &n->literals[n->literal_count];
  edge->text = strndup(text, len);
  edge->child = calloc(1, sizeof(node));
  if (edge->text == NULL || edge->child == NULL) {
    free(edge->text);
    free(edge->child);
    return NULL;
  }
  edge->len = len;
  n->literal_count++;
  return edge->child;
}

/* The node a template's segments lead to; with create, made as needed
 * (NULL then means no memory), else NULL when it does not exist. */
static node *template_node(node *root, const http_template *t, bool create) {
  node *n = root;
  for (size_t i = 0; i < t->segment_count && n != NULL; i++) {
    const http_template_segment *s = &t->segments[i];
    node **slot = s->kind == HTTP_SEGMENT_SINGLE ? &n->single : &n->multi;
    if (s->kind == HTTP_SEGMENT_LITERAL) {
      node *child = literal_child(n, s->literal, s->literal_len);
      n = child != NULL || !create
              ? child
              : add_literal_child(n, s->literal, s->literal_len);
    } else {
      if (*slot == NULL && create) {
        *slot = calloc(1, sizeof(node));
      }
      n = *slot;
    }
  }
  return n;
}

static bool same_verb(const char *a, const char *b, size_t b_len) {
  if (a == NULL || b == NULL) {
    return a == b;
  }
  return strlen(a) == b_len && memcmp(a, b, b_len) == 0;
}

static char *copy_or_null(const char *text) {
  return text != NULL && text[0] != '\0' ? strdup(text) : NULL;
}

/* A new endpoint for spec, its template parsed. NULL with err filled. */
static endpoint *new_endpoint(const http_route_spec *spec, char *err,
                              size_t err_size) {
  endpoint *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  char parse_err[256];
  if (http_template_parse(spec->path_template, &e->template, parse_err,
                          sizeof(parse_err)) != 0) {
    snprintf(err, err_size, "%s %s of %s: %s", spec->http_method,
             spec->path_template, spec->rpc_path, parse_err);
    free(e);
    return NULL;
  }
  if (e->template.segment_count > HTTP_ROUTE_MAX_SEGMENTS) {
    snprintf(err, err_size, "%s %s of %s: more than %d segments",
             spec->http_method, spec->path_template, spec->rpc_path,
             HTTP_ROUTE_MAX_SEGMENTS);
    http_template_free(&e->template);
    free(e);
    return NULL;
  }
  const char *input = spec->input_type != NULL ? spec->input_type : "";
  const char *output = spec->output_type != NULL ? spec->output_type : "";
  e->route.http_method = strdup(spec->http_method);
  e->route.path_template = strdup(spec->path_template);
  e->route.rpc_path = strdup(spec->rpc_path);
  e->route.input_type = strdup(input[0] == '.' ? input + 1 : input);
  e->route.output_type = strdup(output[0] == '.' ? output + 1 : output);
  e->route.body = copy_or_null(spec->body);
  e->route.response_body = copy_or_null(spec->response_body);
  const char **variables =
      calloc(e->template.variable_count + 1, sizeof(*variables));
  for (size_t i = 0; variables != NULL && i < e->template.variable_count; i++) {
    variables[i] = e->template.variables[i].field_path;
  }
  e->route.variables = variables;
  e->route.variable_count = e->template.variable_count;
  e->route.client_streaming = spec->client_streaming;
  e->route.server_streaming = spec->server_streaming;
  if (e->route.http_method == NULL || e->route.path_template == NULL ||
      e->route.rpc_path == NULL || e->route.input_type == NULL ||
      e->route.output_type == NULL || e->route.variables == NULL ||
      (e->route.body == NULL) != (spec->body == NULL || !spec->body[0]) ||
      (e->route.response_body == NULL) !=
          (spec->response_body == NULL || !spec->response_body[0])) {
    snprintf(err, err_size, "out of memory");
    free_endpoint(e);
    return NULL;
  }
  return e;
}

/* The endpoint of n already taking method and verb, or NULL. */
static const endpoint *conflicting(const node *n, const char *method,
                                   const char *verb) {
  for (size_t i = 0; n != NULL && i < n->endpoint_count; i++) {
    const endpoint *other = n->endpoints[i];
    if (strcmp(other->route.http_method, method) == 0 &&
        same_verb(other->template.verb, verb,
                  verb != NULL ? strlen(verb) : 0)) {
      return other;
    }
  }
  return NULL;
}

int http_route_table_add(http_route_table *table, const http_route_spec *spec,
                         const http_route **added, char *err, size_t err_size) {
  if (spec->http_method == NULL || spec->http_method[0] == '\0' ||
      spec->path_template == NULL || spec->rpc_path == NULL) {
    snprintf(err, err_size, "a route needs an HTTP method, a path and an RPC");
    return -1;
  }
  endpoint *e = new_endpoint(spec, err, err_size);
  if (e == NULL) {
    return -1;
  }
  const endpoint *other =
      conflicting(template_node(&table->root, &e->template, false),
                  spec->http_method, e->template.verb);
  if (other != NULL) {
    snprintf(err, err_size,
             "conflicting HTTP rules: %s %s of %s and %s %s of %s match the "
             "same requests",
             other->route.http_method, other->route.path_template,
             other->route.rpc_path, spec->http_method, spec->path_template,
             spec->rpc_path);
    free_endpoint(e);
    return -1;
  }
  node *leaf = template_node(&table->root, &e->template, true);
  endpoint **grown = leaf != NULL
                         ? realloc(leaf->endpoints,
                                   (leaf->endpoint_count + 1) * sizeof(*grown))
                         : NULL;
  if (grown == NULL) {
    snprintf(err, err_size, "out of memory");
    free_endpoint(e);
    return -1;
  }
  leaf->endpoints = grown;
  leaf->endpoints[leaf->endpoint_count++] = e;
  table->count++;
  if (added != NULL) {
    *added = &e->route;
  }
  return 0;
}

/* ---- matching ---- */

typedef struct segment {
  const char *text;
  size_t len;
} segment;

typedef struct walk {
  const char *method;
  const segment *segments;
  size_t count;
  const char *verb; /* NULL: the path has none */
  size_t verb_len;
  const endpoint *found;
  http_route_match *match;
} walk;

static void note_allowed(http_route_match *match, const char *method) {
  for (size_t i = 0; i < match->allowed_count; i++) {
    if (strcmp(match->allowed[i], method) == 0) {
      return;
    }
  }
  if (match->allowed_count < HTTP_ROUTE_MAX_ALLOWED) {
    match->allowed[match->allowed_count++] = method;
  }
}

/* Whether n has the endpoint sought; notes the other methods it has. */
static bool check_endpoints(walk *w, const node *n) {
  for (size_t i = 0; i < n->endpoint_count; i++) {
    const endpoint *e = n->endpoints[i];
    if (!same_verb(e->template.verb, w->verb, w->verb_len)) {
      continue;
    }
    if (strcmp(e->route.http_method, w->method) == 0) {
      w->found = e;
      return true;
    }
    note_allowed(w->match, e->route.http_method);
  }
  return false;
}

static bool walk_node(walk *w, const node *n, size_t depth) {
  if (depth == w->count) {
    return check_endpoints(w, n) ||
           (n->multi != NULL && check_endpoints(w, n->multi));
  }
  const segment *s = &w->segments[depth];
  const node *literal = literal_child(n, s->text, s->len);
  if (literal != NULL && walk_node(w, literal, depth + 1)) {
    return true;
  }
  if (n->single != NULL && s->len > 0 && walk_node(w, n->single, depth + 1)) {
    return true;
  }
  return n->multi != NULL && check_endpoints(w, n->multi);
}

/* Fills the bindings of the endpoint found over the path's segments. */
static size_t bind(const walk *w, const char *path_end,
                   http_route_binding *bindings) {
  const http_template *t = &w->found->template;
  for (size_t i = 0; i < t->variable_count; i++) {
    const http_template_variable *v = &t->variables[i];
    bool to_end =
        t->segments[v->first + v->count - 1].kind == HTTP_SEGMENT_MULTI;
    size_t end = to_end ? w->count : v->first + v->count;
    http_route_binding *b = &bindings[i];
    b->field_path = v->field_path;
    b->multi_segment = v->multi_segment;
    if (v->first >= end) {
      b->value = path_end;
      b->len = 0;
      continue;
    }
    b->value = w->segments[v->first].text;
    const segment *last = &w->segments[end - 1];
    b->len = (size_t)(last->text + last->len - b->value);
  }
  return t->variable_count;
}

http_route_outcome http_route_table_match(const http_route_table *table,
                                          const char *method, const char *path,
                                          size_t path_len,
                                          http_route_binding *bindings,
                                          http_route_match *match) {
  memset(match, 0, sizeof(*match));
  for (size_t i = 0; i < path_len; i++) {
    if (path[i] == '?' || path[i] == '#') {
      path_len = i;
      break;
    }
  }
  if (path_len == 0 || path[0] != '/') {
    return HTTP_ROUTE_NOT_FOUND;
  }
  if (path_len > 1 && path[path_len - 1] == '/') {
    path_len--; /* SPEC: legacy clients may add a trailing slash */
  }
  segment segments[HTTP_ROUTE_MAX_SEGMENTS];
  size_t count = 0;
  for (size_t at = 1; at < path_len || (at == path_len && path_len > 1);) {
    const char *slash = memchr(path + at, '/', path_len - at);
    size_t end = slash != NULL ? (size_t)(slash - path) : path_len;
    if (count == HTTP_ROUTE_MAX_SEGMENTS) {
      return HTTP_ROUTE_NOT_FOUND;
    }
    segments[count++] = (segment){path + at, end - at};
    at = end + 1;
  }
  walk w = {
      .method = method, .segments = segments, .count = count, .match = match};
  bool found = false;
  if (count > 0) {
    segment *last = &segments[count - 1];
    const char *colon = NULL;
    for (size_t i = last->len; i > 0 && colon == NULL; i--) {
      colon = last->text[i - 1] == ':' ? last->text + i - 1 : NULL;
    }
    if (colon != NULL && colon + 1 < last->text + last->len) {
      segment whole = *last;
      last->len = (size_t)(colon - last->text);
      w.verb = colon + 1;
      w.verb_len = (size_t)(whole.text + whole.len - w.verb);
      found = walk_node(&w, &table->root, 0);
      if (!found) {
        *last = whole;
        w.verb = NULL;
        w.verb_len = 0;
      }
    }
  }
  if (!found) {
    found = walk_node(&w, &table->root, 0);
  }
  if (!found) {
    return match->allowed_count > 0 ? HTTP_ROUTE_METHOD_NOT_ALLOWED
                                    : HTTP_ROUTE_NOT_FOUND;
  }
  match->route = &w.found->route;
  match->binding_count = bind(&w, path + path_len, bindings);
  match->allowed_count = 0;
  return HTTP_ROUTE_FOUND;
}
