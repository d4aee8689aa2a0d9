/* module_allocator.h: where the worker's numerical modules (forecast,
 * anomaly) allocate, so that tests can make the Nth allocation fail. A
 * NULL allocator means malloc and free. */
#ifndef JOBHUB_WORKER_MODULES_MODULE_ALLOCATOR_H
#define JOBHUB_WORKER_MODULES_MODULE_ALLOCATOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct module_allocator {
  void *(*alloc)(size_t size, void *context);
  void (*release)(void *pointer, void *context);
  void *context;
} module_allocator;

/* module_alloc returns room for count items of size bytes (at least one
 * byte), or NULL when out of memory or when count * size overflows. */
static inline void *module_alloc(const module_allocator *allocator,
                                 size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) {
    return NULL;
  }
  size_t bytes = count * size > 0 ? count * size : 1;
  if (allocator != NULL) {
    return allocator->alloc(bytes, allocator->context);
  }
  return malloc(bytes);
}

/* module_release frees what module_alloc returned; NULL is ignored. */
static inline void module_release(const module_allocator *allocator,
                                  void *pointer) {
  if (pointer == NULL) {
    return;
  }
  if (allocator != NULL) {
    allocator->release(pointer, allocator->context);
  } else {
    free(pointer);
  }
}

#endif
