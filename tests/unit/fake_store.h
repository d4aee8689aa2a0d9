/* fake_store.h: an in-memory job store for the core's unit tests (its own
 * job_store_ops): writes and reads complete on the core's loop (a 0 s
 * timer, in the order asked, as a real store's would), load_jobs replays
 * a prepared store image, and what was written is kept to be checked:
 * each job's last stored state and its events. No thread, no disk. */
#ifndef JOBHUB_TESTS_UNIT_FAKE_STORE_H
#define JOBHUB_TESTS_UNIT_FAKE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "server/store/store.h"

/* Jobs (sequences 1 .. FAKE_STORE_MAX_JOBS - 1) and events per job the
 * fake store keeps; more are refused (the write fails to queue). */
#define FAKE_STORE_MAX_JOBS 1024
#define FAKE_STORE_MAX_EVENTS 16

/* One stored transition, as the store was told it. */
typedef struct fake_event {
  int from_state, to_state;
  uint64_t worker_idx;
} fake_event;

/* The operations; open ignores its folder. */
extern const job_store_ops fake_store_ops;

/* fake_store_set_image makes the next open's load_jobs replay these jobs
 * (borrowed until then; NULL, 0: none). */
void fake_store_set_image(const stored_job *jobs, size_t count);

/* fake_store_state returns the state last written for sequence, or -1
 * when none was; fake_store_events its events so far (count in *count,
 * oldest first), borrowed. Both of the store opened last, until it is
 * closed. */
int fake_store_state(uint64_t sequence);
const fake_event *fake_store_events(uint64_t sequence, size_t *count);

/* fake_store_pending returns how many writes and reads wait for their
 * completion (run by the core's loop). */
size_t fake_store_pending(void);

#endif
