/* sqlite_history.h: the compact form in which the SQLite store keeps the
 * events of a job, appended one after another to its row's history blob
 * (so that a transition costs one row write):
 *   from u8, to u8, time_us i64, worker_idx u64, actor size u32,
 *   detail size u32 (0: none), actor with its NUL, detail with its NUL;
 * integers little-endian. */
#ifndef JOBHUB_SERVER_STORE_SQLITE_HISTORY_H
#define JOBHUB_SERVER_STORE_SQLITE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "server/store/store.h"

/* history_text_size is the bytes text takes with its NUL (0 for NULL). */
size_t history_text_size(const char *text);

/* history_event_size is the encoded size of event (a NULL actor is
 * written as ""). */
size_t history_event_size(const stored_event *event);

/* history_event_encode writes event into out, history_event_size bytes. */
void history_event_encode(const stored_event *event, uint8_t *out);

/* history_event_decode reads the event at *offset of history (size bytes)
 * into event, whose actor and detail then point into history, and moves
 * *offset past it. Returns 0, or -1 when the bytes there are not an
 * event. */
int history_event_decode(const uint8_t *history, size_t size, size_t *offset,
                         stored_event *event);

#endif
