/* service_table.c: the served services and the route from ":path" to a
 * method. */
#include "rpc/service_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void rpc_service_table_init(rpc_service_table *table) {
  *table = (rpc_service_table){0};
}

void rpc_service_table_free(rpc_service_table *table) {
  free(table->services);
  free(table->routes);
  rpc_service_table_init(table);
}

int rpc_service_table_add(rpc_service_table *table,
                          const rpc_service_desc *desc, const void *handlers,
                          void *user) {
  for (size_t i = 0; i < table->service_count; i++) {
    if (strcmp(table->services[i].desc->name, desc->name) == 0) {
      return -1;
    }
  }
  rpc_registered_service *grown = realloc(
      table->services, (table->service_count + 1) * sizeof(*table->services));
  if (grown == NULL) {
    return -1;
  }
  table->services = grown;
  table->services[table->service_count++] =
      (rpc_registered_service){desc, handlers, user};
  return 0;
}

static size_t hash_path(const char *text, size_t len) {
  size_t hash = 14695981039346656037u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    hash = (hash ^ (uint8_t)text[i]) * 1099511628211u;
  }
  return hash;
}

int rpc_service_table_build_routes(rpc_service_table *table) {
  size_t methods = 0;
  for (size_t i = 0; i < table->service_count; i++) {
    methods += table->services[i].desc->method_count;
  }
  size_t slots = 16;
  while (slots < methods * 2) {
    slots *= 2;
  }
  table->routes = calloc(slots, sizeof(*table->routes));
  if (table->routes == NULL) {
    return -1;
  }
  table->route_mask = slots - 1;
  for (size_t i = 0; i < table->service_count; i++) {
    const rpc_service_desc *desc = table->services[i].desc;
    for (size_t m = 0; m < desc->method_count; m++) {
      const char *path = desc->methods[m].path;
      size_t slot = hash_path(path, strlen(path)) & table->route_mask;
      while (table->routes[slot].path != NULL) {
        slot = (slot + 1) & table->route_mask;
      }
      table->routes[slot] =
          (rpc_route){path, &desc->methods[m], &table->services[i]};
    }
  }
  return 0;
}

const rpc_route *rpc_service_table_find(const rpc_service_table *table,
                                        const char *path) {
  size_t len = strlen(path);
  size_t slot = hash_path(path, len) & table->route_mask;
  while (table->routes[slot].path != NULL) {
    if (strcmp(table->routes[slot].path, path) == 0) {
      return &table->routes[slot];
    }
    slot = (slot + 1) & table->route_mask;
  }
  return NULL;
}

const char *rpc_service_table_service_name(const rpc_service_table *table,
                                           const char *path) {
  if (path == NULL || path[0] != '/') {
    return NULL;
  }
  const char *slash = strchr(path + 1, '/');
  if (slash == NULL) {
    return NULL;
  }
  size_t len = (size_t)(slash - path - 1);
  for (size_t i = 0; i < table->service_count; i++) {
    const char *name = table->services[i].desc->name;
    if (strlen(name) == len && memcmp(name, path + 1, len) == 0) {
      return name;
    }
  }
  return NULL;
}
