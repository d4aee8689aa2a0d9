/* job_record.h: one job as the hub core holds it, and its wire forms.
 *
 * A job's protobuf is kept in two serialized parts with disjoint fields:
 * the fixed part, built once from the SubmitRequest (config, payload,
 * meta, subject, ...), and the status part, encoded from the record's
 * fields when needed (id, state, attempts, worker_idx, times, progress,
 * error). Their concatenation parses as the whole jobhub.v1.Job, so an
 * answer never unpacks or copies the payload twice. The record, the
 * fixed part, the subject and the idempotency key are one allocation. */
#ifndef JOBHUB_SERVER_CORE_JOB_RECORD_H
#define JOBHUB_SERVER_CORE_JOB_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/deadline_heap.h"
#include "jobhub/v1/jobs.pb-c.h"
#include "rpc/buffer.h"
#include "server/core/job_queue.h"

/* "%016" PRIx64 of the sequence, and its terminator. */
#define JOB_ID_SIZE 17
/* Random bytes in a lease id: what makes it unguessable. */
#define LEASE_SECRET_SIZE 16
/* A lease id: the job id, '.', the lease number (up to 10 digits), '.',
 * the secret in lowercase hex, and the terminator. */
#define LEASE_ID_SIZE (JOB_ID_SIZE + 11 + 2 * LEASE_SECRET_SIZE + 1)

struct hub_worker;
struct job_watcher;

typedef struct job_record {
  job_queue_entry entry;          /* sequence is the id; pool_idx the route */
  job_queue *queued_in;           /* which queue entry is in, while queued */
  deadline_heap_entry lease;      /* while IN_PROGRESS: due at lease expiry */
  struct job_record *prev, *next; /* every job, in id order */
  struct job_record *run_prev, *run_next; /* the holder's running jobs */
  /* On the hub's list of leases not yet written (see hub_save). */
  struct job_record *unsaved_prev, *unsaved_next;
  struct hub_worker *holder;    /* NULL unless IN_PROGRESS */
  struct job_watcher *watchers; /* Watch calls on this job */
  int64_t created_us, started_us, finished_us;
  uint64_t worker_idx;
  double progress;
  char *progress_message; /* malloc'd, or NULL */
  char *error;            /* malloc'd, or NULL */
  uint32_t pool_id, job_type_id;
  uint32_t attempts, max_attempts, lease_seconds;
  /* Every lease the job had, Reset or not: the number in its lease ids,
   * so that a lease of a run before a Reset is never taken for a later
   * one. Equals attempts until a Reset. */
  uint32_t leases;
  uint32_t voided_lease; /* the lease a Reset took back; 0: none */
  /* The random part of the last lease's id (stored with the job: a
   * worker re-sends results after a hub restart). */
  uint8_t lease_secret[LEASE_SECRET_SIZE];
  uint32_t writes_pending; /* its writes not yet durable */
  int state;               /* jobhub.v1.JobState */
  bool durable;            /* the Submit is committed to the store */
  bool lease_unsaved;      /* its last lease is not written yet */
  /* The holder said it started the job (Started, or any message about
   * the lease): a Connect stream ending before that gives the job back
   * without counting the attempt. */
  bool lease_acknowledged;
  char id[JOB_ID_SIZE];
  uint32_t fixed_size;
  uint32_t subject_size; /* without terminator; 0: none */
  uint32_t key_size;     /* idempotency key, without terminator; 0: none */
  uint8_t data[];        /* fixed part, subject\0, key\0 */
} job_record;

/* job_record_new makes a record for sequence with a copy of the fixed
 * part, subject and idempotency key (either may be NULL or ""). The other
 * fields are zero; state is QUEUED. Returns NULL when memory is out. */
job_record *job_record_new(uint64_t sequence, const uint8_t *fixed,
                           size_t fixed_size, const char *subject,
                           const char *idempotency_key);

/* job_record_free frees the record and the strings it owns. */
void job_record_free(job_record *job);

/* Accessors for the parts held in data. */
const uint8_t *job_record_fixed(const job_record *job);
const char *job_record_subject(const job_record *job); /* "" for none */
const char *job_record_key(const job_record *job);     /* "" for none */

/* job_record_set_text replaces *field (progress_message or error) with a
 * copy of text (NULL or "": none). Returns 0 or -1 (no memory; unchanged). */
int job_record_set_text(char **field, const char *text);

/* job_record_pack_status appends the status part to out; job_record_pack
 * appends the whole Job (fixed part then status part). Return 0 or -1. */
int job_record_pack_status(const job_record *job, rpc_buffer *out);
int job_record_pack(const job_record *job, rpc_buffer *out);

/* job_record_apply_status sets the record's status fields from a status
 * part read back from the store. Returns 0, or -1 if it does not parse. */
int job_record_apply_status(job_record *job, const uint8_t *status,
                            size_t size);

/* job_fixed_pack packs the fixed part of a job submitted with request:
 * every field a Submit sets, with max_attempts as resolved. Returns a
 * malloc'd buffer and its size in *size, or NULL (no memory). */
uint8_t *job_fixed_pack(const Jobhub__V1__SubmitRequest *request,
                        uint32_t max_attempts, size_t *size);

/* job_id_format writes the id of sequence; job_id_parse reads it back.
 * Parse returns 0, or -1 for anything but 16 lowercase hex digits. */
void job_id_format(uint64_t sequence, char id[JOB_ID_SIZE]);
int job_id_parse(const char *id, uint64_t *sequence);

/* decimal_format writes value in decimal with its terminator into out,
 * which has room for them (11 bytes for a uint32_t, 21 for any value);
 * returns the digits' count. (snprintf costs ten times as much.) */
size_t decimal_format(uint64_t value, char *out);

/* lease_id_format writes "<id>.<leases>.<lease_secret in hex>";
 * lease_id_parse splits one into the job's sequence, the lease number and
 * the secret's bytes. Parse returns 0, or -1 when it is not of that form
 * (an id without the secret, of ids before it, included). */
void lease_id_format(const job_record *job, char lease_id[LEASE_ID_SIZE]);
int lease_id_parse(const char *lease_id, uint64_t *sequence, uint32_t *lease,
                   uint8_t secret[LEASE_SECRET_SIZE]);

/* lease_secret_equal compares two secrets in time that does not depend
 * on where they differ (a caller cannot find one byte by byte). */
bool lease_secret_equal(const uint8_t a[LEASE_SECRET_SIZE],
                        const uint8_t b[LEASE_SECRET_SIZE]);

/* pb_append_bytes_field appends field number as a length-delimited field
 * holding size bytes of data: how the hub nests stored bytes in an answer
 * (a Job in an Assignment, an Assignment in a HubMessage). */
int pb_append_bytes_field(rpc_buffer *out, uint32_t field, const void *data,
                          size_t size);

/* pb_append_message appends message, packed. Returns 0 or -1. */
int pb_append_message(rpc_buffer *out, const ProtobufCMessage *message);

/* time_now_us is the wall clock in microseconds since the Unix epoch. */
int64_t time_now_us(void);

#endif
