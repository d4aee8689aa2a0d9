/* job_index.c: a directory of pages of slots, indexed by sequence. */
#include "server/core/job_index.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_BITS 12
#define PAGE_SLOTS (1u << PAGE_BITS)

typedef struct index_page {
  uint32_t used; /* slots holding a value */
  void *slots[PAGE_SLOTS];
} index_page;

struct job_index {
  index_page **pages; /* pages[sequence >> PAGE_BITS], NULL: none */
  size_t n_pages;     /* entries in the directory */
  size_t count;
};

job_index *job_index_new(void) { return calloc(1, sizeof(job_index)); }

void job_index_free(job_index *index) {
  if (index == NULL) {
    return;
  }
  for (size_t i = 0; i < index->n_pages; i++) {
    free(index->pages[i]);
  }
  free(index->pages);
  free(index);
}

/* Makes the directory reach page; doubling keeps the copies rare. */
static int reach(job_index *index, size_t page) {
  if (page < index->n_pages) {
    return 0;
  }
  size_t n = index->n_pages ? index->n_pages : 16;
  while (n <= page) {
    n *= 2;
  }
  index_page **grown = realloc(index->pages, n * sizeof(*grown));
  if (grown == NULL) {
    return -1;
  }
  memset(grown + index->n_pages, 0, (n - index->n_pages) * sizeof(*grown));
  index->pages = grown;
  index->n_pages = n;
  return 0;
}

int job_index_put(job_index *index, uint64_t sequence, void *value) {
  if (sequence > JOB_INDEX_MAX_SEQUENCE) {
    return -1;
  }
  size_t page = (size_t)(sequence >> PAGE_BITS);
  if (reach(index, page) != 0) {
    return -1;
  }
  index_page *p = index->pages[page];
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
      return -1;
    }
    index->pages[page] = p;
  }
  void **slot = &p->slots[sequence & (PAGE_SLOTS - 1)];
  if (*slot == NULL) {
    p->used++;
    index->count++;
  }
  *slot = value;
  return 0;
}

void *job_index_get(const job_index *index, uint64_t sequence) {
  size_t page = (size_t)(sequence >> PAGE_BITS);
  if (sequence > JOB_INDEX_MAX_SEQUENCE || page >= index->n_pages ||
      index->pages[page] == NULL) {
    return NULL;
  }
  return index->pages[page]->slots[sequence & (PAGE_SLOTS - 1)];
}

void job_index_remove(job_index *index, uint64_t sequence) {
  size_t page = (size_t)(sequence >> PAGE_BITS);
  if (sequence > JOB_INDEX_MAX_SEQUENCE || page >= index->n_pages ||
      index->pages[page] == NULL) {
    return;
  }
  index_page *p = index->pages[page];
  void **slot = &p->slots[sequence & (PAGE_SLOTS - 1)];
  if (*slot == NULL) {
    return;
  }
  *slot = NULL;
  index->count--;
  if (--p->used == 0) {
    free(p);
    index->pages[page] = NULL;
  }
}

size_t job_index_count(const job_index *index) { return index->count; }
