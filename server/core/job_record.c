/* job_record.c: job records and their wire forms. */
#include "server/core/job_record.h"

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

int pb_append_message(rpc_buffer *out, const ProtobufCMessage *message) {
  size_t size = protobuf_c_message_get_packed_size(message);
  if (rpc_buffer_reserve(out, size) != 0) {
    return -1;
  }
  protobuf_c_message_pack(message, out->data + out->len);
  out->len += size;
  return 0;
}

/* The status part is encoded here rather than by protobuf-c, whose
 * generic packer walks every field of Job twice (size, then bytes): the
 * hub packs a status on every transition. The bytes are the same as
 * protobuf-c's (fields in number order, proto3 defaults left out);
 * tests/unit/test_job_record.c compares the two. */

/* jobhub.v1.Job field numbers of the status part (common.proto). */
enum {
  JOB_FIELD_ID = 1,
  JOB_FIELD_STATE = 2,
  JOB_FIELD_ATTEMPTS = 10,
  JOB_FIELD_WORKER_IDX = 12,
  JOB_FIELD_CREATED_AT = 13,
  JOB_FIELD_STARTED_AT = 14,
  JOB_FIELD_FINISHED_AT = 15,
  JOB_FIELD_PROGRESS = 16,
  JOB_FIELD_PROGRESS_MESSAGE = 17,
  JOB_FIELD_ERROR = 18,
};

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LENGTH = 2 };

static uint8_t *put_varint(uint8_t *p, uint64_t value) {
  while (value >= 0x80) {
    *p++ = (uint8_t)(value | 0x80);
    value >>= 7;
  }
  *p++ = (uint8_t)value;
  return p;
}

static uint8_t *put_tag(uint8_t *p, uint32_t field, uint32_t wire) {
  return put_varint(p, (uint64_t)field << 3 | wire);
}

static uint8_t *put_varint_field(uint8_t *p, uint32_t field, uint64_t value) {
  if (value == 0) {
    return p;
  }
  return put_varint(put_tag(p, field, WIRE_VARINT), value);
}

static uint8_t *put_text_field(uint8_t *p, uint32_t field, const char *text,
                               size_t size) {
  if (size == 0) {
    return p;
  }
  p = put_varint(put_tag(p, field, WIRE_LENGTH), size);
  memcpy(p, text, size);
  return p + size;
}

/* A google.protobuf.Timestamp of us (set: the field is present). */
static uint8_t *put_time_field(uint8_t *p, uint32_t field, int64_t us) {
  if (us == 0) {
    return p;
  }
  int64_t seconds = us / 1000000;
  int32_t nanos = (int32_t)(us % 1000000) * 1000;
  uint8_t body[24];
  uint8_t *end = put_varint_field(body, 1, (uint64_t)seconds);
  /* int32 varints are sign-extended to 64 bits. */
  end = put_varint_field(end, 2, (uint64_t)(int64_t)nanos);
  p = put_varint(put_tag(p, field, WIRE_LENGTH), (uint64_t)(end - body));
  memcpy(p, body, (size_t)(end - body));
  return p + (end - body);
}

int job_record_pack_status(const job_record *job, rpc_buffer *out) {
  size_t message_size =
      job->progress_message ? strlen(job->progress_message) : 0;
  size_t error_size = job->error ? strlen(job->error) : 0;
  /* id 18, state 2, attempts 6, worker_idx 11, three timestamps of 24,
   * progress 10, and the strings with 12 each for tag and length. */
  size_t bound = 160 + message_size + error_size;
  if (rpc_buffer_reserve(out, bound) != 0) {
    return -1;
  }
  uint8_t *start = out->data + out->len;
  uint8_t *p = put_text_field(start, JOB_FIELD_ID, job->id, JOB_ID_SIZE - 1);
  p = put_varint_field(p, JOB_FIELD_STATE, (uint64_t)(int64_t)job->state);
  p = put_varint_field(p, JOB_FIELD_ATTEMPTS, job->attempts);
  p = put_varint_field(p, JOB_FIELD_WORKER_IDX, job->worker_idx);
  p = put_time_field(p, JOB_FIELD_CREATED_AT, job->created_us);
  p = put_time_field(p, JOB_FIELD_STARTED_AT, job->started_us);
  p = put_time_field(p, JOB_FIELD_FINISHED_AT, job->finished_us);
  if (job->progress != 0) {
    uint64_t bits;
    memcpy(&bits, &job->progress, sizeof(bits));
    p = put_tag(p, JOB_FIELD_PROGRESS, WIRE_FIXED64);
    for (int i = 0; i < 8; i++) {
      *p++ = (uint8_t)(bits >> (8 * i));
    }
  }
  p = put_text_field(p, JOB_FIELD_PROGRESS_MESSAGE, job->progress_message,
                     message_size);
  p = put_text_field(p, JOB_FIELD_ERROR, job->error, error_size);
  out->len += (size_t)(p - start);
  return 0;
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
  job->state = (int)parsed->state;
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
  static const char digits[] = "0123456789abcdef";
  for (int i = JOB_ID_SIZE - 2; i >= 0; i--) {
    id[i] = digits[sequence & 0xf];
    sequence >>= 4;
  }
  id[JOB_ID_SIZE - 1] = '\0';
}

size_t decimal_format(uint64_t value, char *out) {
  char reversed[20];
  size_t n = 0;
  do {
    reversed[n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (size_t i = 0; i < n; i++) {
    out[i] = reversed[n - 1 - i];
  }
  out[n] = '\0';
  return n;
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

static const char hex_digits[] = "0123456789abcdef";

void lease_id_format(const job_record *job, char lease_id[LEASE_ID_SIZE]) {
  memcpy(lease_id, job->id, JOB_ID_SIZE - 1);
  lease_id[JOB_ID_SIZE - 1] = '.';
  char *at = lease_id + JOB_ID_SIZE;
  at += decimal_format(job->leases, at);
  *at++ = '.';
  for (size_t i = 0; i < LEASE_SECRET_SIZE; i++) {
    *at++ = hex_digits[job->lease_secret[i] >> 4];
    *at++ = hex_digits[job->lease_secret[i] & 0xf];
  }
  *at = '\0';
}

static int hex_value(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : -1;
}

int lease_id_parse(const char *lease_id, uint64_t *sequence, uint32_t *lease,
                   uint8_t secret[LEASE_SECRET_SIZE]) {
  char id[JOB_ID_SIZE];
  if (strlen(lease_id) < JOB_ID_SIZE + 1 || lease_id[JOB_ID_SIZE - 1] != '.') {
    return -1;
  }
  memcpy(id, lease_id, JOB_ID_SIZE - 1);
  id[JOB_ID_SIZE - 1] = '\0';
  const char *p = lease_id + JOB_ID_SIZE;
  uint64_t value = 0;
  size_t digits = 0;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (value > UINT32_MAX / 10) {
      return -1;
    }
    value = value * 10 + (uint64_t)(*p - '0');
  }
  if (digits == 0 || value > UINT32_MAX || *p != '.' ||
      strlen(p + 1) != 2 * LEASE_SECRET_SIZE ||
      job_id_parse(id, sequence) != 0) {
    return -1;
  }
  p++;
  for (size_t i = 0; i < LEASE_SECRET_SIZE; i++) {
    int high = hex_value(p[2 * i]);
    int low = hex_value(p[2 * i + 1]);
    if (high < 0 || low < 0) {
      return -1;
    }
    secret[i] = (uint8_t)(high << 4 | low);
  }
  *lease = (uint32_t)value;
  return 0;
}

bool lease_secret_equal(const uint8_t a[LEASE_SECRET_SIZE],
                        const uint8_t b[LEASE_SECRET_SIZE]) {
  volatile uint8_t differ = 0;
  for (size_t i = 0; i < LEASE_SECRET_SIZE; i++) {
    differ |= (uint8_t)(a[i] ^ b[i]);
  }
  return differ == 0;
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
