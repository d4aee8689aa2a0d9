/* store/sqlite_history.c: a job's events in the SQLite store's compact
 * form (sqlite_history.h). */
#include "server/store/sqlite_history.h"

#include <string.h>

/* The fixed fields before an event's actor and detail. */
#define EVENT_HEADER_SIZE 26

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    v |= (uint32_t)p[i] << (8 * i);
  }
  return v;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) {
    v |= (uint64_t)p[i] << (8 * i);
  }
  return v;
}

size_t history_text_size(const char *text) {
  return text != NULL ? strlen(text) + 1 : 0;
}

size_t history_event_size(const stored_event *event) {
  return EVENT_HEADER_SIZE +
         history_text_size(event->actor ? event->actor : "") +
         history_text_size(event->detail);
}

void history_event_encode(const stored_event *event, uint8_t *out) {
  const char *actor = event->actor ? event->actor : "";
  uint32_t actor_size = (uint32_t)history_text_size(actor);
  uint32_t detail_size = (uint32_t)history_text_size(event->detail);
  out[0] = (uint8_t)event->from_state;
  out[1] = (uint8_t)event->to_state;
  put_u64(out + 2, (uint64_t)event->time_us);
  put_u64(out + 10, event->worker_idx);
  put_u32(out + 18, actor_size);
  put_u32(out + 22, detail_size);
  memcpy(out + EVENT_HEADER_SIZE, actor, actor_size);
  if (detail_size > 0) {
    memcpy(out + EVENT_HEADER_SIZE + actor_size, event->detail, detail_size);
  }
}

int history_event_decode(const uint8_t *history, size_t size, size_t *offset,
                         stored_event *event) {
  size_t at = *offset;
  if (size - at < EVENT_HEADER_SIZE) {
    return -1;
  }
  const uint8_t *p = history + at;
  uint32_t actor_size = get_u32(p + 18);
  uint32_t detail_size = get_u32(p + 22);
  size_t left = size - at - EVENT_HEADER_SIZE;
  if (actor_size == 0 || actor_size > left || detail_size > left - actor_size) {
    return -1;
  }
  const char *actor = (const char *)p + EVENT_HEADER_SIZE;
  const char *detail = actor + actor_size;
  if (actor[actor_size - 1] != '\0' ||
      (detail_size > 0 && detail[detail_size - 1] != '\0')) {
    return -1;
  }
  *event = (stored_event){
      .from_state = p[0],
      .to_state = p[1],
      .time_us = (int64_t)get_u64(p + 2),
      .worker_idx = get_u64(p + 10),
      .actor = actor,
      .detail = detail_size > 0 ? detail : NULL,
  };
  *offset = at + EVENT_HEADER_SIZE + actor_size + detail_size;
  return 0;
}
