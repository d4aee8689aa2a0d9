/* cli_schema.c: services, methods and `describe` over FileDescriptorProtos. */
#include "client/cli_schema.h"

#include <stdbool.h>
#include <string.h>

typedef Google__Protobuf__FieldDescriptorProto field_proto;

/* Whether full is package + "." + name (or name when package is empty). */
static bool is_named(const char *full, const char *package, const char *name) {
  size_t package_len = package != NULL ? strlen(package) : 0;
  if (package_len == 0) {
    return strcmp(full, name) == 0;
  }
  return strncmp(full, package, package_len) == 0 && full[package_len] == '.' &&
         strcmp(full + package_len + 1, name) == 0;
}

const Google__Protobuf__ServiceDescriptorProto *
cli_schema_find_service(const rpc_descriptor_pool *pool, const char *name) {
  const rpc_descriptor_file *file = rpc_descriptor_pool_find_symbol(pool, name);
  if (file == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < file->proto->n_service; i++) {
    if (is_named(name, file->proto->package, file->proto->service[i]->name)) {
      return file->proto->service[i];
    }
  }
  return NULL;
}

const Google__Protobuf__MethodDescriptorProto *
cli_schema_find_method(const Google__Protobuf__ServiceDescriptorProto *service,
                       const char *method) {
  for (size_t i = 0; i < service->n_method; i++) {
    if (strcmp(service->method[i]->name, method) == 0) {
      return service->method[i];
    }
  }
  return NULL;
}

static void write_method(const Google__Protobuf__MethodDescriptorProto *m,
                         const char *indent, FILE *out) {
  fprintf(out, "%srpc %s ( %s%s ) returns ( %s%s );\n", indent, m->name,
          m->client_streaming ? "stream " : "", m->input_type,
          m->server_streaming ? "stream " : "", m->output_type);
}

static void write_service(const Google__Protobuf__ServiceDescriptorProto *s,
                          FILE *out) {
  fprintf(out, "service %s {\n", s->name);
  for (size_t i = 0; i < s->n_method; i++) {
    write_method(s->method[i], "  ", out);
  }
  fputs("}\n", out);
}

static const char *scalar_name(int type) {
  static const char *const names[] = {
      [1] = "double",    [2] = "float",     [3] = "int64",   [4] = "uint64",
      [5] = "int32",     [6] = "fixed64",   [7] = "fixed32", [8] = "bool",
      [9] = "string",    [10] = "group",    [12] = "bytes",  [13] = "uint32",
      [15] = "sfixed32", [16] = "sfixed64", [17] = "sint32", [18] = "sint64",
  };
  if (type > 0 && type < (int)(sizeof(names) / sizeof(names[0])) &&
      names[type] != NULL) {
    return names[type];
  }
  return "?";
}

static const char *type_of(const field_proto *field) {
  return field->type_name != NULL ? field->type_name
                                  : scalar_name((int)field->type);
}

/* The map entry type a field's type names, when it is one. */
static const Google__Protobuf__DescriptorProto *
map_entry(const rpc_descriptor_pool *pool, const field_proto *field) {
  if (field->label !=
          GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED ||
      field->type_name == NULL) {
    return NULL;
  }
  const Google__Protobuf__DescriptorProto *entry =
      rpc_descriptor_pool_find_message(pool, field->type_name, NULL);
  if (entry != NULL && entry->options != NULL && entry->options->map_entry &&
      entry->n_field == 2) {
    return entry;
  }
  return NULL;
}

/* Whether json_name is what protoc derives from name (lowerCamelCase), so
 * that it need not be shown. */
static bool is_default_json_name(const char *name, const char *json_name) {
  bool upper = false;
  for (; *name != '\0'; name++) {
    if (*name == '_') {
      upper = true;
      continue;
    }
    char want =
        upper && *name >= 'a' && *name <= 'z' ? (char)(*name - 32) : *name;
    upper = false;
    if (*json_name++ != want) {
      return false;
    }
  }
  return *json_name == '\0';
}

static void write_field(const rpc_descriptor_pool *pool,
                        const field_proto *field, const char *indent,
                        FILE *out) {
  const Google__Protobuf__DescriptorProto *entry = map_entry(pool, field);
  if (entry != NULL) {
    fprintf(out, "%smap<%s, %s> %s = %d;\n", indent, type_of(entry->field[0]),
            type_of(entry->field[1]), field->name, field->number);
    return;
  }
  const char *label = "";
  if (field->label ==
      GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) {
    label = "repeated ";
  } else if (field->proto3_optional) {
    label = "optional ";
  } else if (field->label ==
             GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED) {
    label = "required ";
  }
  fprintf(out, "%s%s%s %s = %d", indent, label, type_of(field), field->name,
          field->number);
  if (field->json_name != NULL &&
      !is_default_json_name(field->name, field->json_name)) {
    fprintf(out, " [json_name = \"%s\"]", field->json_name);
  }
  fputs(";\n", out);
}

static void write_enum(const Google__Protobuf__EnumDescriptorProto *e,
                       const char *indent, FILE *out) {
  fprintf(out, "%senum %s {\n", indent, e->name);
  for (size_t i = 0; i < e->n_value; i++) {
    fprintf(out, "%s  %s = %d;\n", indent, e->value[i]->name,
            e->value[i]->number);
  }
  fprintf(out, "%s}\n", indent);
}

static void write_message(const rpc_descriptor_pool *pool,
                          const Google__Protobuf__DescriptorProto *m,
                          const char *indent, FILE *out) {
  char inner[64];
  snprintf(inner, sizeof(inner), "%s  ", indent);
  fprintf(out, "%smessage %s {\n", indent, m->name);
  for (size_t i = 0; i < m->n_field; i++) {
    const field_proto *field = m->field[i];
    bool in_oneof = field->has_oneof_index && !field->proto3_optional &&
                    (size_t)field->oneof_index < m->n_oneof_decl;
    if (!in_oneof) {
      write_field(pool, field, inner, out);
      continue;
    }
    /* The first member opens the oneof and writes all of its members. */
    bool first = true;
    for (size_t j = 0; j < i; j++) {
      if (m->field[j]->has_oneof_index &&
          m->field[j]->oneof_index == field->oneof_index) {
        first = false;
      }
    }
    if (!first) {
      continue;
    }
    fprintf(out, "%soneof %s {\n", inner,
            m->oneof_decl[field->oneof_index]->name);
    char member[80];
    snprintf(member, sizeof(member), "%s  ", inner);
    for (size_t j = i; j < m->n_field; j++) {
      if (m->field[j]->has_oneof_index &&
          m->field[j]->oneof_index == field->oneof_index) {
        write_field(pool, m->field[j], member, out);
      }
    }
    fprintf(out, "%s}\n", inner);
  }
  for (size_t i = 0; i < m->n_nested_type; i++) {
    const Google__Protobuf__DescriptorProto *nested = m->nested_type[i];
    if (nested->options == NULL || !nested->options->map_entry) {
      write_message(pool, nested, inner, out);
    }
  }
  for (size_t i = 0; i < m->n_enum_type; i++) {
    write_enum(m->enum_type[i], inner, out);
  }
  fprintf(out, "%s}\n", indent);
}

int cli_schema_describe(const rpc_descriptor_pool *pool, const char *symbol,
                        FILE *out) {
  if (symbol[0] == '.') {
    symbol++;
  }
  const Google__Protobuf__ServiceDescriptorProto *service =
      cli_schema_find_service(pool, symbol);
  if (service != NULL) {
    fprintf(out, "%s is a service:\n", symbol);
    write_service(service, out);
    return 0;
  }
  const Google__Protobuf__DescriptorProto *message =
      rpc_descriptor_pool_find_message(pool, symbol, NULL);
  if (message != NULL) {
    fprintf(out, "%s is a message:\n", symbol);
    write_message(pool, message, "", out);
    return 0;
  }
  const Google__Protobuf__EnumDescriptorProto *enumeration =
      rpc_descriptor_pool_find_enum(pool, symbol, NULL);
  if (enumeration != NULL) {
    fprintf(out, "%s is an enum:\n", symbol);
    write_enum(enumeration, "", out);
    return 0;
  }
  /* A method, a field or an enum value: the part after the last dot is
   * the member of what comes before it. */
  const char *dot = strrchr(symbol, '.');
  if (dot == NULL) {
    return -1;
  }
  char parent[1024];
  snprintf(parent, sizeof(parent), "%.*s", (int)(dot - symbol), symbol);
  const char *member = dot + 1;
  service = cli_schema_find_service(pool, parent);
  const Google__Protobuf__MethodDescriptorProto *method =
      service != NULL ? cli_schema_find_method(service, member) : NULL;
  if (method != NULL) {
    fprintf(out, "%s is a method:\n", symbol);
    write_method(method, "", out);
    return 0;
  }
  message = rpc_descriptor_pool_find_message(pool, parent, NULL);
  for (size_t i = 0; message != NULL && i < message->n_field; i++) {
    if (strcmp(message->field[i]->name, member) == 0) {
      fprintf(out, "%s is a field:\n", symbol);
      write_field(pool, message->field[i], "", out);
      return 0;
    }
  }
  /* Enum values are siblings of their enum, in its parent's scope. */
  const rpc_descriptor_file *file =
      rpc_descriptor_pool_find_symbol(pool, symbol);
  if (file != NULL) {
    fprintf(out, "%s is an enum value (declared in %s)\n", symbol, file->name);
    return 0;
  }
  return -1;
}
