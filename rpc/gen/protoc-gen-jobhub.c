/* protoc-gen-jobhub: a protoc plugin that writes, for every .proto file
 * it is given, X.rpc.h and X.rpc.c (empty of services where the file has
 * none, so that the build knows its outputs in advance): the method tables
 * (rpc/method.h), typed server handler tables and reply helpers (rpc/call.h),
 * and typed client stubs (rpc/client.h) for all four call shapes; and, with the
 * parameter descriptor_set=NAME, NAME.c and NAME.h embedding the
 * serialized FileDescriptorSet of every file in the request (dependencies
 * first), for reflection.
 *
 * C names of messages follow protoc-c 1.4 (c_helpers.cc): types are
 * FullNameToC (pieces ToCamel, joined by "__"), descriptors FullNameToLower
 * (pieces CamelToLower) followed by "__descriptor". */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/compiler/plugin.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto file_proto;
typedef Google__Protobuf__ServiceDescriptorProto service_proto;
typedef Google__Protobuf__MethodDescriptorProto method_proto;

/* A growable string; out of memory aborts the generator (a build tool). */
typedef struct text {
  char *data;
  size_t len;
  size_t cap;
} text;

static void die(const char *message) {
  fprintf(stderr, "protoc-gen-jobhub: %s\n", message);
  exit(1);
}

static void text_reserve(text *t, size_t extra) {
  if (t->len + extra + 1 <= t->cap) {
    return;
  }
  size_t cap = t->cap ? t->cap : 4096;
  while (cap < t->len + extra + 1) {
    cap *= 2;
  }
  t->data = realloc(t->data, cap);
  if (t->data == NULL) {
    die("out of memory");
  }
  t->cap = cap;
}

static void emit(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void emit(text *t, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(NULL, 0, fmt, args);
  va_end(args);
  if (n < 0) {
    die("formatting failed");
  }
  text_reserve(t, (size_t)n);
  va_start(args, fmt);
  vsnprintf(t->data + t->len, (size_t)n + 1, fmt, args);
  va_end(args);
  t->len += (size_t)n;
}

/* Names. */

/* protoc-c's CamelToLower: "HealthCheck" -> "health_check". */
static void camel_to_lower(text *t, const char *name, size_t len) {
  bool was_upper = true; /* no leading underscore */
  for (size_t i = 0; i < len; i++) {
    bool is_upper = isupper((unsigned char)name[i]) != 0;
    if (is_upper) {
      if (!was_upper) {
        emit(t, "_");
      }
      emit(t, "%c", tolower((unsigned char)name[i]));
    } else {
      emit(t, "%c", name[i]);
    }
    was_upper = is_upper;
  }
}

/* protoc-c's ToCamel: "v1alpha" -> "V1alpha", "a_b" -> "AB". */
static void to_camel(text *t, const char *name, size_t len) {
  bool next_upper = true;
  for (size_t i = 0; i < len; i++) {
    if (name[i] == '_') {
      next_upper = true;
    } else if (next_upper) {
      emit(t, "%c", toupper((unsigned char)name[i]));
      next_upper = false;
    } else {
      emit(t, "%c", name[i]);
    }
  }
}

/* Applies piece() to every dot-separated part of full_name (a leading dot
 * is skipped), joined by separator. Returns a malloc'd string. */
static char *map_pieces(const char *full_name, const char *separator,
                        void (*piece)(text *, const char *, size_t)) {
  text t = {0};
  emit(&t, "%s", "");
  const char *p = full_name[0] == '.' ? full_name + 1 : full_name;
  bool first = true;
  while (*p != '\0') {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (len > 0) {
      if (!first) {
        emit(&t, "%s", separator);
      }
      piece(&t, p, len);
      first = false;
    }
    p += len + (dot ? 1 : 0);
  }
  return t.data;
}

/* "Grpc__Health__V1__HealthCheckRequest" */
static char *c_type(const char *full_name) {
  return map_pieces(full_name, "__", to_camel);
}

/* "grpc__health__v1__health_check_request__descriptor" */
static char *c_descriptor(const char *full_name) {
  char *lower = map_pieces(full_name, "__", camel_to_lower);
  text t = {0};
  emit(&t, "%s__descriptor", lower);
  free(lower);
  return t.data;
}

/* "grpc_health_v1_health": our prefix for a service's C names. */
static char *c_prefix(const char *full_name) {
  return map_pieces(full_name, "_", camel_to_lower);
}

static char *c_snake(const char *name) {
  text t = {0};
  emit(&t, "%s", "");
  camel_to_lower(&t, name, strlen(name));
  return t.data;
}

/* A struct member may not be a C keyword ("Register" -> "register_"). */
static char *c_member(const char *method_name) {
  static const char *const keywords[] = {
      "auto",          "break",    "case",     "char",
      "const",         "continue", "default",  "do",
      "double",        "else",     "enum",     "extern",
      "float",         "for",      "goto",     "if",
      "inline",        "int",      "long",     "register",
      "restrict",      "return",   "short",    "signed",
      "sizeof",        "static",   "struct",   "switch",
      "typedef",       "union",    "unsigned", "void",
      "volatile",      "while",    "bool",     "true",
      "false",         "alignas",  "alignof",  "noreturn",
      "static_assert",
  };
  char *snake = c_snake(method_name);
  for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
    if (strcmp(snake, keywords[i]) == 0) {
      text t = {0};
      emit(&t, "%s_", snake);
      free(snake);
      return t.data;
    }
  }
  return snake;
}

/* "grpc/health/v1/health.proto" -> "grpc/health/v1/health" */
static char *strip_proto(const char *file_name) {
  size_t len = strlen(file_name);
  if (len > 6 && strcmp(file_name + len - 6, ".proto") == 0) {
    len -= 6;
  }
  text t = {0};
  emit(&t, "%.*s", (int)len, file_name);
  return t.data;
}

/* Methods. */

typedef enum shape { UNARY, SERVER_STREAMING, CLIENT_STREAMING, BIDI } shape;

static shape method_shape(const method_proto *m) {
  bool client = m->has_client_streaming && m->client_streaming;
  bool server = m->has_server_streaming && m->server_streaming;
  return client ? (server ? BIDI : CLIENT_STREAMING)
                : (server ? SERVER_STREAMING : UNARY);
}

static const char *const shape_names[] = {
    "RPC_SHAPE_UNARY", "RPC_SHAPE_SERVER_STREAMING",
    "RPC_SHAPE_CLIENT_STREAMING", "RPC_SHAPE_BIDI_STREAMING"};

typedef struct method_names {
  char *member; /* handler table member */
  char *snake;  /* in function names */
  char *in_type, *out_type;
  char *in_descriptor, *out_descriptor;
  shape kind;
} method_names;

static method_names names_of(const method_proto *m) {
  return (method_names){
      .member = c_member(m->name),
      .snake = c_snake(m->name),
      .in_type = c_type(m->input_type),
      .out_type = c_type(m->output_type),
      .in_descriptor = c_descriptor(m->input_type),
      .out_descriptor = c_descriptor(m->output_type),
      .kind = method_shape(m),
  };
}

static void names_free(method_names *n) {
  free(n->member);
  free(n->snake);
  free(n->in_type);
  free(n->out_type);
  free(n->in_descriptor);
  free(n->out_descriptor);
}

/* Header for one service. */
static void emit_service_header(text *h, const char *package,
                                const service_proto *service) {
  text full_name = {0};
  emit(&full_name, "%s%s%s", package, package[0] ? "." : "", service->name);
  char *p = c_prefix(full_name.data);

  emit(h, "\n/* Service %s. */\n\n", full_name.data);
  emit(h, "extern const rpc_service_desc %s_service;\n\n", p);
  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    emit(h, "#define %s_%s_method (&%s_service.methods[%zu])\n", p, n.snake, p,
         i);
    names_free(&n);
  }
  emit(h, "\n/* Server side: a handler per method; NULL answers "
          "UNIMPLEMENTED. */\n");
  emit(h, "typedef struct %s_handlers {\n", p);
  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    if (n.kind == UNARY || n.kind == SERVER_STREAMING) {
      emit(h, "  void (*%s)(rpc_call *call, const %s *request, void *user);\n",
           n.member, n.in_type);
    } else {
      emit(h, "  void (*%s)(rpc_call *call, void *user);\n", n.member);
    }
    names_free(&n);
  }
  emit(h, "} %s_handlers;\n\n", p);
  emit(h,
       "/* %s_add_to_server serves the service with handlers "
       "(borrowed;\n * they must outlive the server). Returns 0 or -1. "
       "*/\n",
       p);
  emit(h,
       "int %s_add_to_server(rpc_server *server,\n"
       "    const %s_handlers *handlers, void *user);\n\n",
       p, p);
  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    if (n.kind == UNARY || n.kind == CLIENT_STREAMING) {
      emit(h, "/* %s_%s_reply answers %s and finishes the call OK. */\n", p,
           n.snake, service->method[i]->name);
      emit(h, "void %s_%s_reply(rpc_call *call, const %s *response);\n", p,
           n.snake, n.out_type);
    } else {
      emit(h, "/* %s_%s_send streams one %s response. */\n", p, n.snake,
           service->method[i]->name);
      emit(h, "int %s_%s_send(rpc_call *call, const %s *response);\n", p,
           n.snake, n.out_type);
    }
    names_free(&n);
  }
  emit(h, "\n/* Client side. */\n");
  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    const char *name = service->method[i]->name;
    switch (n.kind) {
    case UNARY:
      emit(h,
           "/* %s_%s calls %s and waits (channel with a private loop). "
           "*/\n",
           p, n.snake, name);
      emit(h,
           "rpc_status_code %s_%s(rpc_channel *channel, const %s *request,"
           "\n    %s **response, const rpc_call_options *options,\n"
           "    rpc_status *status);\n",
           p, n.snake, n.in_type, n.out_type);
      emit(h, "/* %s_%s_start calls %s asynchronously. */\n", p, n.snake, name);
      emit(h,
           "rpc_client_call *%s_%s_start(rpc_channel *channel,\n"
           "    const %s *request, const rpc_call_options *options,\n"
           "    const rpc_client_hooks *hooks, void *arg);\n",
           p, n.snake, n.in_type);
      break;
    case SERVER_STREAMING:
      emit(h, "/* %s_%s_open sends the request of %s; read the answers. */\n",
           p, n.snake, name);
      emit(h,
           "rpc_stream *%s_%s_open(rpc_channel *channel, const %s "
           "*request,\n    const rpc_call_options *options);\n",
           p, n.snake, n.in_type);
      emit(h, "/* %s_%s_start calls %s asynchronously. */\n", p, n.snake, name);
      emit(h,
           "rpc_client_call *%s_%s_start(rpc_channel *channel,\n"
           "    const %s *request, const rpc_call_options *options,\n"
           "    const rpc_client_hooks *hooks, void *arg);\n",
           p, n.snake, n.in_type);
      break;
    case CLIENT_STREAMING:
    case BIDI:
      emit(h, "/* %s_%s_open opens %s; write requests, read answers. */\n", p,
           n.snake, name);
      emit(h,
           "rpc_stream *%s_%s_open(rpc_channel *channel,\n"
           "    const rpc_call_options *options);\n",
           p, n.snake);
      emit(h, "/* %s_%s_start opens %s asynchronously. */\n", p, n.snake, name);
      emit(h,
           "rpc_client_call *%s_%s_start(rpc_channel *channel,\n"
           "    const rpc_call_options *options, const rpc_client_hooks "
           "*hooks,\n    void *arg);\n",
           p, n.snake);
      emit(h, "/* %s_%s_write sends one request on the stream. */\n", p,
           n.snake);
      emit(h, "int %s_%s_write(rpc_stream *stream, const %s *request);\n", p,
           n.snake, n.in_type);
      break;
    }
    if (n.kind != UNARY) {
      emit(h, "/* %s_%s_read: 1 and a response, or 0 at the end. */\n", p,
           n.snake);
      emit(h, "int %s_%s_read(rpc_stream *stream, %s **response);\n", p,
           n.snake, n.out_type);
    }
    names_free(&n);
  }
  free(p);
  free(full_name.data);
}

/* Source for one service. */
static void emit_service_source(text *c, const char *package,
                                const service_proto *service) {
  text full_name = {0};
  emit(&full_name, "%s%s%s", package, package[0] ? "." : "", service->name);
  char *p = c_prefix(full_name.data);

  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    emit(c,
         "\nstatic bool %s_%s_dispatch(rpc_call *call,\n"
         "    const ProtobufCMessage *request, const void *handlers, "
         "void *user) {\n",
         p, n.snake);
    emit(c, "  const %s_handlers *table = handlers;\n", p);
    emit(c, "  if (table->%s == NULL) {\n    return false;\n  }\n", n.member);
    if (n.kind == UNARY || n.kind == SERVER_STREAMING) {
      emit(c, "  table->%s(call, (const %s *)request, user);\n", n.member,
           n.in_type);
    } else {
      emit(c, "  (void)request;\n  table->%s(call, user);\n", n.member);
    }
    emit(c, "  return true;\n}\n");
    names_free(&n);
  }
  emit(c, "\nstatic const rpc_method %s_methods[] = {\n", p);
  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    emit(c, "  {\"/%s/%s\", \"%s\", %s, &%s, &%s, %s_%s_dispatch},\n",
         full_name.data, service->method[i]->name, service->method[i]->name,
         shape_names[n.kind], n.in_descriptor, n.out_descriptor, p, n.snake);
    names_free(&n);
  }
  emit(c, "};\n\n");
  emit(c, "const rpc_service_desc %s_service = {\"%s\", %zu, %s_methods};\n", p,
       full_name.data, service->n_method, p);
  emit(c,
       "\nint %s_add_to_server(rpc_server *server,\n"
       "    const %s_handlers *handlers, void *user) {\n"
       "  return rpc_server_add_service(server, &%s_service, handlers, "
       "user);\n}\n",
       p, p, p);

  for (size_t i = 0; i < service->n_method; i++) {
    method_names n = names_of(service->method[i]);
    text method_ref = {0};
    emit(&method_ref, "&%s_methods[%zu]", p, i);
    const char *method = method_ref.data;
    if (n.kind == UNARY || n.kind == CLIENT_STREAMING) {
      emit(c,
           "\nvoid %s_%s_reply(rpc_call *call, const %s *response) {\n"
           "  rpc_call_reply(call, &response->base);\n}\n",
           p, n.snake, n.out_type);
    } else {
      emit(c,
           "\nint %s_%s_send(rpc_call *call, const %s *response) {\n"
           "  return rpc_call_send(call, &response->base);\n}\n",
           p, n.snake, n.out_type);
    }
    if (n.kind == UNARY) {
      emit(c,
           "\nrpc_status_code %s_%s(rpc_channel *channel, const %s "
           "*request,\n    %s **response, const rpc_call_options "
           "*options,\n    rpc_status *status) {\n"
           "  ProtobufCMessage *answer = NULL;\n"
           "  rpc_status_code code = rpc_channel_call_unary(channel, %s,\n"
           "      &request->base, options, &answer, status, NULL, NULL);\n"
           "  *response = (%s *)answer;\n  return code;\n}\n",
           p, n.snake, n.in_type, n.out_type, method, n.out_type);
    }
    if (n.kind == UNARY || n.kind == SERVER_STREAMING) {
      emit(c,
           "\nrpc_client_call *%s_%s_start(rpc_channel *channel,\n"
           "    const %s *request, const rpc_call_options *options,\n"
           "    const rpc_client_hooks *hooks, void *arg) {\n"
           "  rpc_client_call *call =\n"
           "      rpc_channel_start_call(channel, %s, options, hooks, "
           "arg);\n"
           "  if (call != NULL && (rpc_client_call_send(call, "
           "&request->base) != 0 ||\n"
           "                       rpc_client_call_close_send(call) != 0))"
           " {\n"
           "    rpc_client_call_cancel(call);\n  }\n  return call;\n}\n",
           p, n.snake, n.in_type, method);
    }
    if (n.kind == SERVER_STREAMING) {
      emit(c,
           "\nrpc_stream *%s_%s_open(rpc_channel *channel, const %s "
           "*request,\n    const rpc_call_options *options) {\n"
           "  rpc_stream *stream = rpc_channel_open_stream(channel, %s, "
           "options);\n"
           "  if (stream != NULL && (rpc_stream_send(stream, "
           "&request->base) != 0 ||\n"
           "                         rpc_stream_close_send(stream) != 0)) "
           "{\n"
           "    rpc_stream_free(stream);\n    return NULL;\n  }\n"
           "  return stream;\n}\n",
           p, n.snake, n.in_type, method);
    }
    if (n.kind == CLIENT_STREAMING || n.kind == BIDI) {
      emit(c,
           "\nrpc_stream *%s_%s_open(rpc_channel *channel,\n"
           "    const rpc_call_options *options) {\n"
           "  return rpc_channel_open_stream(channel, %s, options);\n}\n",
           p, n.snake, method);
      emit(c,
           "\nrpc_client_call *%s_%s_start(rpc_channel *channel,\n"
           "    const rpc_call_options *options, const rpc_client_hooks "
           "*hooks,\n    void *arg) {\n"
           "  return rpc_channel_start_call(channel, %s, options, hooks, "
           "arg);\n}\n",
           p, n.snake, method);
      emit(c,
           "\nint %s_%s_write(rpc_stream *stream, const %s *request) {\n"
           "  return rpc_stream_send(stream, &request->base);\n}\n",
           p, n.snake, n.in_type);
    }
    if (n.kind != UNARY) {
      emit(c,
           "\nint %s_%s_read(rpc_stream *stream, %s **response) {\n"
           "  ProtobufCMessage *answer = NULL;\n"
           "  int rv = rpc_stream_recv(stream, &answer);\n"
           "  *response = (%s *)answer;\n  return rv;\n}\n",
           p, n.snake, n.out_type, n.out_type);
    }
    free(method_ref.data);
    names_free(&n);
  }
  free(p);
  free(full_name.data);
}

/* Output files. */

static Google__Protobuf__Compiler__CodeGeneratorResponse__File *
new_file(const char *name, text *content) {
  Google__Protobuf__Compiler__CodeGeneratorResponse__File *file =
      malloc(sizeof(*file));
  if (file == NULL) {
    die("out of memory");
  }
  google__protobuf__compiler__code_generator_response__file__init(file);
  file->name = strdup(name);
  file->content = content->data;
  if (file->name == NULL) {
    die("out of memory");
  }
  return file;
}

static void generate_rpc_files(
    const file_proto *file,
    Google__Protobuf__Compiler__CodeGeneratorResponse *response) {
  char *base = strip_proto(file->name);
  const char *package = file->package ? file->package : "";
  text h = {0}, c = {0}, guard = {0}, name = {0};

  emit(&guard, "JOBHUB_GEN_");
  for (const char *q = base; *q; q++) {
    emit(&guard, "%c",
         isalnum((unsigned char)*q) ? toupper((unsigned char)*q) : '_');
  }
  emit(&h, "/* Generated by protoc-gen-jobhub from %s. Do not edit. */\n",
       file->name);
  emit(&h, "#ifndef %s_RPC_H\n#define %s_RPC_H\n\n", guard.data, guard.data);
  emit(&h,
       "#include \"%s.pb-c.h\"\n#include \"rpc/call.h\"\n"
       "#include \"rpc/client.h\"\n#include \"rpc/method.h\"\n"
       "#include \"rpc/server.h\"\n",
       base);
  emit(&c, "/* Generated by protoc-gen-jobhub from %s. Do not edit. */\n",
       file->name);
  emit(&c, "#include \"%s.rpc.h\"\n", base);
  for (size_t i = 0; i < file->n_service; i++) {
    emit_service_header(&h, package, file->service[i]);
    emit_service_source(&c, package, file->service[i]);
  }
  emit(&h, "\n#endif\n");

  emit(&name, "%s.rpc.h", base);
  response->file[response->n_file++] = new_file(name.data, &h);
  name.len = 0;
  emit(&name, "%s.rpc.c", base);
  response->file[response->n_file++] = new_file(name.data, &c);
  free(name.data);
  free(guard.data);
  free(base);
}

static void generate_descriptor_set(
    const Google__Protobuf__Compiler__CodeGeneratorRequest *request,
    const char *symbol,
    Google__Protobuf__Compiler__CodeGeneratorResponse *response) {
  /* Source info is large and reflection clients do not need it. */
  Google__Protobuf__SourceCodeInfo **saved =
      calloc(request->n_proto_file + 1, sizeof(*saved));
  if (saved == NULL) {
    die("out of memory");
  }
  for (size_t i = 0; i < request->n_proto_file; i++) {
    saved[i] = request->proto_file[i]->source_code_info;
    request->proto_file[i]->source_code_info = NULL;
  }
  Google__Protobuf__FileDescriptorSet set =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  set.n_file = request->n_proto_file;
  set.file = request->proto_file;
  size_t size = protobuf_c_message_get_packed_size(&set.base);
  uint8_t *bytes = malloc(size + 1);
  if (bytes == NULL) {
    die("out of memory");
  }
  protobuf_c_message_pack(&set.base, bytes);
  for (size_t i = 0; i < request->n_proto_file; i++) {
    request->proto_file[i]->source_code_info = saved[i];
  }
  free(saved);

  text h = {0}, c = {0}, name = {0};
  emit(&h,
       "/* Generated by protoc-gen-jobhub. Do not edit. */\n"
       "#ifndef JOBHUB_GEN_%s_H\n#define JOBHUB_GEN_%s_H\n\n"
       "#include <stddef.h>\n#include <stdint.h>\n\n"
       "/* The serialized FileDescriptorSet: every file, dependencies "
       "first. */\n"
       "extern const uint8_t %s[];\nextern const size_t %s_size;\n\n"
       "#endif\n",
       symbol, symbol, symbol, symbol);
  emit(&c,
       "/* Generated by protoc-gen-jobhub. Do not edit. */\n"
       "#include \"%s.h\"\n\nconst size_t %s_size = %zu;\n"
       "const uint8_t %s[] = {",
       symbol, symbol, size, symbol);
  for (size_t i = 0; i < size; i++) {
    emit(&c, "%s0x%02x,", i % 16 == 0 ? "\n  " : " ", bytes[i]);
  }
  emit(&c, "\n  0x00 /* never empty */\n};\n");
  free(bytes);
  emit(&name, "%s.h", symbol);
  response->file[response->n_file++] = new_file(name.data, &h);
  name.len = 0;
  emit(&name, "%s.c", symbol);
  response->file[response->n_file++] = new_file(name.data, &c);
  free(name.data);
}

/* parameter: "descriptor_set=NAME" or empty. */
static const char *descriptor_set_symbol(const char *parameter) {
  static const char key[] = "descriptor_set=";
  if (parameter == NULL || strncmp(parameter, key, sizeof(key) - 1) != 0) {
    return NULL;
  }
  const char *symbol = parameter + sizeof(key) - 1;
  for (const char *q = symbol; *q; q++) {
    if (!isalnum((unsigned char)*q) && *q != '_') {
      return NULL;
    }
  }
  return symbol[0] != '\0' ? symbol : NULL;
}

static uint8_t *read_all(FILE *in, size_t *size) {
  size_t cap = 65536, len = 0;
  uint8_t *data = malloc(cap);
  while (data != NULL) {
    len += fread(data + len, 1, cap - len, in);
    if (len < cap) {
      break;
    }
    cap *= 2;
    uint8_t *grown = realloc(data, cap);
    if (grown == NULL) {
      free(data);
      data = NULL;
    } else {
      data = grown;
    }
  }
  if (data == NULL || ferror(in)) {
    die("cannot read the CodeGeneratorRequest");
  }
  *size = len;
  return data;
}

int main(void) {
  size_t size;
  uint8_t *input = read_all(stdin, &size);
  Google__Protobuf__Compiler__CodeGeneratorRequest *request =
      google__protobuf__compiler__code_generator_request__unpack(NULL, size,
                                                                 input);
  free(input);
  if (request == NULL) {
    die("malformed CodeGeneratorRequest");
  }
  Google__Protobuf__Compiler__CodeGeneratorResponse response =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  response.file =
      calloc(2 * request->n_file_to_generate + 2, sizeof(*response.file));
  if (response.file == NULL) {
    die("out of memory");
  }
  const char *symbol = descriptor_set_symbol(request->parameter);
  if (request->parameter != NULL && request->parameter[0] != '\0' &&
      symbol == NULL) {
    static char usage[] = "protoc-gen-jobhub: the only parameter is "
                          "descriptor_set=C_IDENTIFIER";
    response.error = usage;
  }
  for (size_t i = 0; i < request->n_file_to_generate && !response.error; i++) {
    for (size_t j = 0; j < request->n_proto_file; j++) {
      const file_proto *file = request->proto_file[j];
      if (strcmp(file->name, request->file_to_generate[i]) == 0) {
        generate_rpc_files(file, &response);
      }
    }
  }
  if (symbol != NULL && response.error == NULL) {
    generate_descriptor_set(request, symbol, &response);
  }
  size_t out_size =
      google__protobuf__compiler__code_generator_response__get_packed_size(
          &response);
  uint8_t *output = malloc(out_size + 1);
  if (output == NULL) {
    die("out of memory");
  }
  google__protobuf__compiler__code_generator_response__pack(&response, output);
  int status = fwrite(output, 1, out_size, stdout) == out_size ? 0 : 1;
  free(output);
  for (size_t i = 0; i < response.n_file; i++) {
    free(response.file[i]->name);
    free(response.file[i]->content);
    free(response.file[i]);
  }
  free(response.file);
  google__protobuf__compiler__code_generator_request__free_unpacked(request,
                                                                    NULL);
  return status;
}
