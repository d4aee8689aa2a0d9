/* job_record.c: job records and their wire forms. */
#include "server/job_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/timestamp.pb-c.h"

job_record *job_record_new(uint64_t sequence, const uint8_t *fixed,
                           size_t fixed_size, const char *subject,
                           const char *idempotency_key) {
  size_t subject_size = subject != NULL ? strlen(subject) : 0;
  size_t key_size = idempotency_key != NULL ? strlen(idempotency_key) : 0;
  if (fixed_size > UINT32_MAX || subject_size > UINT32_MAX ||
      key_size > UINT32_MAX) {
    return NULL;
  }
  job_record *job =
      malloc(sizeof(*job) + fixed_size + subject_size + key_size + 2);
  if (job == NULL) {
    return NULL;
  }
  memset(job, 0, sizeof(*job));
  job->entry.sequence = sequence;
  job->state = JOBHUB__V1__JOB_STATE__QUEUED;
  job_id_format(sequence, job->id);
  job->fixed_size = (uint32_t)fixed_size;
  job->subject_size = (uint32_t)subject_size;
  job->key_size = (uint32_t)key_size;
  uint8_t *at = job->data;
  if (fixed_size > 0) {
    memcpy(at, fixed, fixed_size);
  }
  at += fixed_size;
  if (subject_size > 0) {
    memcpy(at, subject, subject_size);
  }
  at[subject_size] = '\0';
  at += subject_size + 1;
  if (key_size > 0) {
    memcpy(at, idempotency_key, key_size);
  }
  at[key_size] = '\0';
  return job;
}

void job_record_free(job_record *job) {
  if (job != NULL) {
    free(job->progress_message);
    free(job->error);
    free(job);
  }
}

const uint8_t *job_record_fixed(const job_record *job) { return job->data; }

const char *job_record_subject(const job_record *job) {
  return (const char *)job->data + job->fixed_size;
}

const char *job_record_key(const job_record *job) {
  return (const char *)job->data + job->fixed_size + job->subject_size + 1;
}

int job_record_set_text(char **field, const char *text) {
  char *copy = NULL;
  if (text != NULL && text[0] != '\0') {
    copy = strdup(text);
    if (copy == NULL) {
      return -1;
    }
  }
  free(*field);
  *field = copy;
  return 0;
}

static void timestamp_set(Google__Protobuf__Timestamp *ts, int64_t us) {
  ts->seconds = us / 1000000;
  ts->nanos = (int32_t)(us % 1000000) * 1000;
}

int pb_append_message(rpc_buffer *out, const ProtobufCMessage *message) {
  size_t size = protobuf_c_message_get_packed_size(message);
  if (rpc_buffer_reserve(out, size) != 0) {
    return -1;
  }
  protobuf_c_message_pack(message, out->data + out->len);
  out->len += size;
  return 0;
}

int job_record_pack_status(const job_record *job, rpc_buffer *out) {
  Jobhub__V1__Job status = JOBHUB__V1__JOB__INIT;
  Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp started = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp finished = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  status.id = (char *)job->id;
  status.state = (Jobhub__V1__JobState)job->state;
  status.attempts = job->attempts;
  status.worker_idx = job->worker_idx;
  if (job->created_us != 0) {
    timestamp_set(&created, job->created_us);
    status.created_at = &created;
  }
  if (job->started_us != 0) {
    timestamp_set(&started, job->started_us);
    status.started_at = &started;
  }
  if (job->finished_us != 0) {
    timestamp_set(&finished, job->finished_us);
    status.finished_at = &finished;
  }
  status.progress = job->progress;
  if (job->progress_message != NULL) {
    status.progress_message = job->progress_message;
  }
  if (job->error != NULL) {
    status.error = job->error;
  }
  return pb_append_message(out, &status.base);
}

int job_record_pack(const job_record *job, rpc_buffer *out) {
  size_t start = out->len;
  if (rpc_buffer_append(out, job_record_fixed(job), job->fixed_size) != 0 ||
      job_record_pack_status(job, out) != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}

static int64_t timestamp_us(const Google__Protobuf__Timestamp *ts) {
  return ts != NULL ? ts->seconds * 1000000 + ts->nanos / 1000 : 0;
}

int job_record_apply_status(job_record *job, const uint8_t *status,
                            size_t size) {
  Jobhub__V1__Job *parsed = jobhub__v1__job__unpack(NULL, size, status);
  if (parsed == NULL) {
    return -1;
  }
  int rv = 0;
  job->state = parsed->state;
  job->attempts = parsed->attempts;
  job->worker_idx = parsed->worker_idx;
  job->created_us = timestamp_us(parsed->created_at);
  job->started_us = timestamp_us(parsed->started_at);
  job->finished_us = timestamp_us(parsed->finished_at);
  job->progress = parsed->progress;
  if (job_record_set_text(&job->progress_message, parsed->progress_message) !=
          0 ||
      job_record_set_text(&job->error, parsed->error) != 0) {
    rv = -1;
  }
  jobhub__v1__job__free_unpacked(parsed, NULL);
  return rv;
}

uint8_t *job_fixed_pack(const Jobhub__V1__SubmitRequest *request,
                        uint32_t max_attempts, size_t *size) {
  Jobhub__V1__Job fixed = JOBHUB__V1__JOB__INIT;
  fixed.job_type_id = request->job_type_id;
  fixed.pool_id = request->pool_id;
  fixed.subject = request->subject;
  fixed.config = request->config;
  fixed.payload = request->payload;
  fixed.priority = request->priority;
  fixed.max_attempts = max_attempts;
  /* The request's meta entries are of another message type: point Job
   * entries at their strings (one allocation for all of them). */
  Jobhub__V1__Job__MetaEntry *entries = NULL;
  if (request->n_meta > 0) {
    entries = malloc(request->n_meta *
                     (sizeof(*entries) + sizeof(Jobhub__V1__Job__MetaEntry *)));
    if (entries == NULL) {
      return NULL;
    }
    fixed.meta = (Jobhub__V1__Job__MetaEntry **)(entries + request->n_meta);
    for (size_t i = 0; i < request->n_meta; i++) {
      jobhub__v1__job__meta_entry__init(&entries[i]);
      entries[i].key = request->meta[i]->key;
      entries[i].value = request->meta[i]->value;
      fixed.meta[i] = &entries[i];
    }
    fixed.n_meta = request->n_meta;
  }
  *size = jobhub__v1__job__get_packed_size(&fixed);
  uint8_t *packed = malloc(*size > 0 ? *size : 1);
  if (packed != NULL) {
    jobhub__v1__job__pack(&fixed, packed);
  }
  free(entries);
  return packed;
}

void job_id_format(uint64_t sequence, char id[JOB_ID_SIZE]) {
  snprintf(id, JOB_ID_SIZE, "%016" PRIx64, sequence);
}

int job_id_parse(const char *id, uint64_t *sequence) {
  uint64_t value = 0;
  for (int i = 0; i < JOB_ID_SIZE - 1; i++) {
    char c = id[i];
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
    if (digit < 0) {
      return -1;
    }
    value = value << 4 | (uint64_t)digit;
  }
  if (id[JOB_ID_SIZE - 1] != '\0') {
    return -1;
  }
  *sequence = value;
  return 0;
}

void lease_id_format(const job_record *job, char lease_id[LEASE_ID_SIZE]) {
  snprintf(lease_id, LEASE_ID_SIZE, "%s.%" PRIu32, job->id, job->attempts);
}

int lease_id_parse(const char *lease_id, uint64_t *sequence,
                   uint32_t *attempt) {
  char id[JOB_ID_SIZE];
  if (strlen(lease_id) < JOB_ID_SIZE + 1 || lease_id[JOB_ID_SIZE - 1] != '.') {
    return -1;
  }
  memcpy(id, lease_id, JOB_ID_SIZE - 1);
  id[JOB_ID_SIZE - 1] = '\0';
  const char *digits = lease_id + JOB_ID_SIZE;
  uint64_t value = 0;
  for (const char *p = digits; *p != '\0'; p++) {
    if (*p < '0' || *p > '9' || value > UINT32_MAX / 10) {
      return -1;
    }
    value = value * 10 + (uint64_t)(*p - '0');
  }
  if (value > UINT32_MAX || job_id_parse(id, sequence) != 0) {
    return -1;
  }
  *attempt = (uint32_t)value;
  return 0;
}

static size_t varint_write(uint8_t *out, uint64_t value) {
  size_t n = 0;
  while (value >= 0x80) {
    out[n++] = (uint8_t)(value | 0x80);
    value >>= 7;
  }
  out[n++] = (uint8_t)value;
  return n;
}

int pb_append_bytes_field(rpc_buffer *out, uint32_t field, const void *data,
                          size_t size) {
  uint8_t header[20];
  size_t header_size = varint_write(header, (uint64_t)field << 3 | 2);
  header_size += varint_write(header + header_size, size);
  if (rpc_buffer_reserve(out, header_size + size) != 0) {
    return -1;
  }
  memcpy(out->data + out->len, header, header_size);
  if (size > 0) {
    memcpy(out->data + out->len + header_size, data, size);
  }
  out->len += header_size + size;
  return 0;
}

int64_t time_now_us(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}
