/* queue_peers: the load client of bench/jobs.sh for the peer queues,
 * beanstalkd (put / reserve + delete on a tube) and a Redis list (LPUSH /
 * BRPOP). Producers put --jobs jobs in total; consumers take each one and,
 * on beanstalkd, delete it. Every connection keeps up to --pipeline
 * commands in flight. Plain POSIX sockets on one poll() loop: the client is
 * meant to be pinned to one core.
 *
 * Each job body is --body bytes: its sequence number in 16 hex digits, then
 * filler that depends on the number, so a body that comes back altered,
 * twice or never is an error. The final line is
 *   queue_peers kind=K jobs=N seconds=S jobs_per_s=X
 * with seconds from the first put sent to the last delete acked (beanstalkd)
 * or the last pop received (Redis). Exit codes: 0 every job came back once
 * and the queue is empty at the end, 1 any error (a message says which),
 * 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_NAME "jobhub-bench" /* the beanstalkd tube, the Redis key */
#define SEQUENCE_DIGITS 16        /* hex digits of the number in a body */
#define BEANSTALKD_TTR 3600       /* s: a reserved job never times out */
#define READ_CHUNK 65536          /* bytes read per read() call at most */

typedef enum peer_kind { PEER_BEANSTALKD, PEER_REDIS } peer_kind;

typedef enum role { ROLE_PRODUCER, ROLE_CONSUMER } role;

/* A command sent and not yet answered; replies come back in order. */
typedef enum command { COMMAND_PUT, COMMAND_TAKE, COMMAND_DELETE } command;

typedef struct byte_buffer {
  char *data;
  size_t start;    /* first unconsumed byte */
  size_t end;      /* one past the last byte */
  size_t capacity; /* bytes allocated */
} byte_buffer;

typedef struct connection {
  int fd;
  role role;
  byte_buffer in, out;
  command *pending;     /* ring of pipeline entries: commands in flight */
  size_t pending_first; /* index of the oldest command in flight */
  size_t pending_count;
} connection;

typedef struct options {
  peer_kind kind;
  const char *host, *port;
  uint64_t jobs;
  unsigned producers, consumers;
  size_t pipeline;
  size_t body;        /* bytes per job body */
  unsigned timeout_s; /* the whole run, set-up included */
} options;

typedef struct bench {
  options options;
  connection *connections; /* producers first, then consumers */
  size_t connection_count;
  struct pollfd *polls;
  char *body;                /* scratch: the body being put */
  uint8_t *seen;             /* bitmap: bodies taken, one bit per job */
  uint64_t next_sequence;    /* next job to put */
  uint64_t puts_acked;       /* INSERTED or LPUSH answers */
  uint64_t taken;            /* bodies received (reserved or popped) */
  uint64_t takes_in_flight;  /* reserve or BRPOP sent, not answered */
  uint64_t done;             /* deleted (beanstalkd) or popped (Redis) */
  struct timespec first_put; /* CLOCK_MONOTONIC */
  struct timespec last_done; /* CLOCK_MONOTONIC */
  struct timespec deadline;  /* CLOCK_MONOTONIC: give up then */
  char error[256];           /* why the run failed */
} bench;

static int fail(bench *b, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* fail: records the first error message of the run; returns -1. */
static int fail(bench *b, const char *format, ...) {
  if (b->error[0] == '\0') {
    va_list args;
    va_start(args, format);
    vsnprintf(b->error, sizeof b->error, format, args);
    va_end(args);
  }
  return -1;
}

static double seconds_between(const struct timespec *from,
                              const struct timespec *to) {
  return (double)(to->tv_sec - from->tv_sec) +
         (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

static bool past_deadline(const bench *b) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return seconds_between(&b->deadline, &now) > 0;
}

/* ---------------------------------------------------------------- buffers */

/* reserve_bytes: room for at least `more` bytes after buf->end. */
static int reserve_bytes(byte_buffer *buf, size_t more) {
  if (buf->start > 0 && buf->start == buf->end) {
    buf->start = buf->end = 0;
  }
  if (buf->capacity - buf->end >= more) {
    return 0;
  }
  if (buf->start > 0) { /* compact first: replies are consumed in order */
    memmove(buf->data, buf->data + buf->start, buf->end - buf->start);
    buf->end -= buf->start;
    buf->start = 0;
    if (buf->capacity - buf->end >= more) {
      return 0;
    }
  }
  size_t capacity = buf->capacity ? buf->capacity : 4096;
  while (capacity - buf->end < more) {
    capacity *= 2;
  }
  char *data = realloc(buf->data, capacity);
  if (data == NULL) {
    return -1;
  }
  buf->data = data;
  buf->capacity = capacity;
  return 0;
}

static int append_bytes(byte_buffer *buf, const void *data, size_t size) {
  if (reserve_bytes(buf, size) != 0) {
    return -1;
  }
  memcpy(buf->data + buf->end, data, size);
  buf->end += size;
  return 0;
}

static int append_text(byte_buffer *buf, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int append_text(byte_buffer *buf, const char *format, ...) {
  char text[128];
  va_list args;
  va_start(args, format);
  int length = vsnprintf(text, sizeof text, format, args);
  va_end(args);
  if (length < 0 || (size_t)length >= sizeof text) {
    return -1;
  }
  return append_bytes(buf, text, (size_t)length);
}

/* ---------------------------------------------------------------- bodies */

static char filler(uint64_t sequence, size_t index) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  return alphabet[(sequence + index) % (sizeof alphabet - 1)];
}

static void make_body(char *body, size_t size, uint64_t sequence) {
  char digits[SEQUENCE_DIGITS + 1];
  snprintf(digits, sizeof digits, "%016" PRIx64, sequence);
  memcpy(body, digits, SEQUENCE_DIGITS);
  for (size_t i = SEQUENCE_DIGITS; i < size; i++) {
    body[i] = filler(sequence, i);
  }
}

/* take_body: checks a body that came back and marks its job seen. */
static int take_body(bench *b, const char *body, size_t size) {
  if (size != b->options.body) {
    return fail(b, "a body of %zu bytes came back, not %zu", size,
                b->options.body);
  }
  uint64_t sequence = 0;
  for (size_t i = 0; i < SEQUENCE_DIGITS; i++) {
    char c = body[i];
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = (unsigned)(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = (unsigned)(c - 'a' + 10);
    } else {
      return fail(b, "a body came back without its sequence number");
    }
    sequence = sequence << 4 | digit;
  }
  if (sequence >= b->next_sequence) {
    return fail(b, "job %" PRIu64 " came back but was never put", sequence);
  }
  for (size_t i = SEQUENCE_DIGITS; i < size; i++) {
    if (body[i] != filler(sequence, i)) {
      return fail(b,
                  "the body of job %" PRIu64 " came back altered at byte %zu",
                  sequence, i);
    }
  }
  uint8_t bit = (uint8_t)(1u << (sequence % 8));
  if (b->seen[sequence / 8] & bit) {
    return fail(b, "job %" PRIu64 " came back twice", sequence);
  }
  b->seen[sequence / 8] |= bit;
  b->taken++;
  return 0;
}

/* ---------------------------------------------------------------- replies */

/* line_end: the offset of the "\r\n" ending the line at data[0], or -1. */
static long line_end(const char *data, size_t size) {
  const char *newline = memchr(data, '\n', size);
  if (newline == NULL || newline == data || newline[-1] != '\r') {
    return -1;
  }
  return (long)(newline - data) - 1;
}

/* parse_count: a decimal number ended by `stop`; -1 if malformed. */
static long long parse_count(const char *text, char stop) {
  char *end;
  errno = 0;
  long long value = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != stop) {
    return -1;
  }
  return value;
}

/* beanstalkd_reply_length: bytes of the first whole beanstalkd reply in
 * data: 0 if incomplete, -1 if malformed. Replies are a line; RESERVED and
 * OK lines are followed by a body and "\r\n". */
static long beanstalkd_reply_length(const char *data, size_t size) {
  long end = line_end(data, size);
  if (end < 0) {
    return size > 1024 ? -1 : 0;
  }
  size_t length = (size_t)end + 2;
  const char *count = NULL;
  if (strncmp(data, "RESERVED ", 9) == 0) {
    count = memchr(data + 9, ' ', (size_t)end - 9);
    count = count ? count + 1 : NULL;
  } else if (strncmp(data, "OK ", 3) == 0) {
    count = data + 3;
  }
  if (count == NULL) {
    return strncmp(data, "RESERVED ", 9) == 0 ? -1 : (long)length;
  }
  long long bytes = parse_count(count, '\r');
  if (bytes < 0 || bytes > INT_MAX) {
    return -1;
  }
  length += (size_t)bytes + 2;
  return length <= size ? (long)length : 0;
}

/* redis_reply_length: bytes of the first whole RESP value in data: 0 if
 * incomplete, -1 if malformed. */
static long redis_reply_length(const char *data, size_t size) {
  long end = line_end(data, size);
  if (end < 0) {
    return size > 1024 ? -1 : 0;
  }
  size_t length = (size_t)end + 2;
  long long count;
  switch (data[0]) {
  case '+':
  case '-':
  case ':':
    return (long)length;
  case '$':
    count = parse_count(data + 1, '\r');
    if (count < -1 || count > INT_MAX) {
      return -1;
    }
    if (count >= 0) {
      length += (size_t)count + 2;
    }
    return length <= size ? (long)length : 0;
  case '*':
    count = parse_count(data + 1, '\r');
    if (count < -1 || count > 1024) {
      return -1;
    }
    for (long long i = 0; i < count; i++) {
      if (length >= size) {
        return 0;
      }
      long element = redis_reply_length(data + length, size - length);
      if (element <= 0) {
        return element;
      }
      length += (size_t)element;
    }
    return (long)length;
  default:
    return -1;
  }
}

static long reply_length(const bench *b, const char *data, size_t size) {
  return b->options.kind == PEER_BEANSTALKD
             ? beanstalkd_reply_length(data, size)
             : redis_reply_length(data, size);
}

/* reply_text: the first line of a reply, for error messages. */
static const char *reply_text(const char *reply, size_t length, char *out,
                              size_t out_size) {
  size_t n = 0;
  while (n < length && n + 1 < out_size && reply[n] != '\r') {
    out[n] = reply[n];
    n++;
  }
  out[n] = '\0';
  return out;
}

/* redis_bulk: the bulk string at *offset of a whole RESP reply; advances
 * *offset past it. -1 if it is not a non-null bulk string. */
static int redis_bulk(const char *reply, size_t length, size_t *offset,
                      const char **data, size_t *size) {
  if (*offset >= length || reply[*offset] != '$') {
    return -1;
  }
  long long count = parse_count(reply + *offset + 1, '\r');
  const char *line = memchr(reply + *offset, '\n', length - *offset);
  if (count < 0 || line == NULL) {
    return -1;
  }
  *data = line + 1;
  *size = (size_t)count;
  *offset = (size_t)(line + 1 - reply) + (size_t)count + 2;
  return 0;
}

static void pending_push(connection *conn, size_t pipeline, command cmd) {
  conn->pending[(conn->pending_first + conn->pending_count) % pipeline] = cmd;
  conn->pending_count++;
}

static void mark_done(bench *b) {
  b->done++;
  clock_gettime(CLOCK_MONOTONIC, &b->last_done);
}

/* handle_reply: one whole reply to the oldest command in flight on conn. */
static int handle_reply(bench *b, connection *conn, const char *reply,
                        size_t length) {
  char text[80];
  size_t pipeline = b->options.pipeline;
  if (conn->pending_count == 0) {
    return fail(b, "an unexpected reply: %s",
                reply_text(reply, length, text, sizeof text));
  }
  command cmd = conn->pending[conn->pending_first];
  conn->pending_first = (conn->pending_first + 1) % pipeline;
  conn->pending_count--;
  bool beanstalkd = b->options.kind == PEER_BEANSTALKD;
  switch (cmd) {
  case COMMAND_PUT:
    if (beanstalkd ? strncmp(reply, "INSERTED ", 9) != 0 : reply[0] != ':') {
      return fail(b, "put answered %s",
                  reply_text(reply, length, text, sizeof text));
    }
    b->puts_acked++;
    return 0;
  case COMMAND_TAKE:
    b->takes_in_flight--;
    if (beanstalkd) {
      unsigned long long id;
      const char *body = memchr(reply, '\n', length);
      if (strncmp(reply, "RESERVED ", 9) != 0 ||
          sscanf(reply + 9, "%llu", &id) != 1 || body == NULL) {
        return fail(b, "reserve answered %s",
                    reply_text(reply, length, text, sizeof text));
      }
      body++;
      if (take_body(b, body, (size_t)(reply + length - 2 - body)) != 0) {
        return -1;
      }
      /* The reserve's pipeline slot goes to its delete. */
      if (append_text(&conn->out, "delete %llu\r\n", id) != 0) {
        return fail(b, "out of memory");
      }
      pending_push(conn, pipeline, COMMAND_DELETE);
      return 0;
    } else {
      size_t offset;
      const char *key, *body;
      size_t key_size, body_size;
      if (strncmp(reply, "*2\r\n", 4) != 0) {
        return fail(b, "BRPOP answered %s",
                    reply_text(reply, length, text, sizeof text));
      }
      offset = 4;
      if (redis_bulk(reply, length, &offset, &key, &key_size) != 0 ||
          redis_bulk(reply, length, &offset, &body, &body_size) != 0 ||
          key_size != strlen(QUEUE_NAME) ||
          memcmp(key, QUEUE_NAME, key_size) != 0) {
        return fail(b, "BRPOP answered a malformed array");
      }
      if (take_body(b, body, body_size) != 0) {
        return -1;
      }
      mark_done(b);
      return 0;
    }
  case COMMAND_DELETE:
    if (strncmp(reply, "DELETED\r\n", 9) != 0) {
      return fail(b, "delete answered %s",
                  reply_text(reply, length, text, sizeof text));
    }
    mark_done(b);
    return 0;
  }
  return fail(b, "unknown command in flight");
}

/* ---------------------------------------------------------------- commands */

static int append_put(bench *b, connection *conn) {
  size_t size = b->options.body;
  uint64_t sequence = b->next_sequence++;
  make_body(b->body, size, sequence);
  int rv;
  if (b->options.kind == PEER_BEANSTALKD) {
    rv = append_text(&conn->out, "put 1024 0 %d %zu\r\n", BEANSTALKD_TTR, size);
  } else {
    rv = append_text(&conn->out, "*3\r\n$5\r\nLPUSH\r\n$%zu\r\n%s\r\n$%zu\r\n",
                     strlen(QUEUE_NAME), QUEUE_NAME, size);
  }
  if (rv != 0 || append_bytes(&conn->out, b->body, size) != 0 ||
      append_bytes(&conn->out, "\r\n", 2) != 0) {
    return fail(b, "out of memory");
  }
  if (sequence == 0) {
    clock_gettime(CLOCK_MONOTONIC, &b->first_put);
  }
  pending_push(conn, b->options.pipeline, COMMAND_PUT);
  return 0;
}

static int append_take(bench *b, connection *conn) {
  int rv;
  if (b->options.kind == PEER_BEANSTALKD) {
    rv = append_text(&conn->out, "reserve\r\n");
  } else {
    rv = append_text(&conn->out,
                     "*3\r\n$5\r\nBRPOP\r\n$%zu\r\n%s\r\n$1\r\n0\r\n",
                     strlen(QUEUE_NAME), QUEUE_NAME);
  }
  if (rv != 0) {
    return fail(b, "out of memory");
  }
  b->takes_in_flight++;
  pending_push(conn, b->options.pipeline, COMMAND_TAKE);
  return 0;
}

/* fill_pipeline: queues commands on conn up to --pipeline in flight. A
 * consumer never has more takes in flight, over all consumers, than jobs
 * left to take: a blocking take that no job will answer would hold up the
 * deletes queued behind it on its connection. */
static int fill_pipeline(bench *b, connection *conn) {
  while (conn->pending_count < b->options.pipeline) {
    if (conn->role == ROLE_PRODUCER) {
      if (b->next_sequence >= b->options.jobs) {
        break;
      }
      if (append_put(b, conn) != 0) {
        return -1;
      }
    } else {
      if (b->taken + b->takes_in_flight >= b->options.jobs) {
        break;
      }
      if (append_take(b, conn) != 0) {
        return -1;
      }
    }
  }
  return 0;
}

/* flush: writes what it can of conn->out without blocking. */
static int flush(bench *b, connection *conn) {
  byte_buffer *out = &conn->out;
  while (out->start < out->end) {
    ssize_t n = write(conn->fd, out->data + out->start, out->end - out->start);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
      }
      return fail(b, "write: %s", strerror(errno));
    }
    out->start += (size_t)n;
  }
  out->start = out->end = 0;
  return 0;
}

/* receive: reads what is there on conn and handles every whole reply. */
static int receive(bench *b, connection *conn) {
  byte_buffer *in = &conn->in;
  for (;;) {
    if (reserve_bytes(in, READ_CHUNK) != 0) {
      return fail(b, "out of memory");
    }
    ssize_t n = read(conn->fd, in->data + in->end, in->capacity - in->end);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
      }
      return fail(b, "read: %s", strerror(errno));
    }
    if (n == 0) {
      return fail(b, "the server closed a connection");
    }
    in->end += (size_t)n;
    while (in->start < in->end) {
      const char *reply = in->data + in->start;
      long length = reply_length(b, reply, in->end - in->start);
      if (length < 0) {
        char text[80];
        return fail(b, "a malformed reply: %s",
                    reply_text(reply, in->end - in->start, text, sizeof text));
      }
      if (length == 0) {
        break;
      }
      if (handle_reply(b, conn, reply, (size_t)length) != 0) {
        return -1;
      }
      in->start += (size_t)length;
    }
    if ((size_t)n < READ_CHUNK) {
      return 0; /* most likely drained: poll again rather than read EAGAIN */
    }
  }
}

/* ---------------------------------------------------------------- set-up */

static int connect_to(bench *b, int *fd_out) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *addresses;
  int rv = getaddrinfo(b->options.host, b->options.port, &hints, &addresses);
  if (rv != 0) {
    return fail(b, "%s:%s: %s", b->options.host, b->options.port,
                gai_strerror(rv));
  }
  int fd = -1;
  int saved = 0;
  for (struct addrinfo *a = addresses; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      break;
    }
    saved = errno;
    if (fd >= 0) {
      close(fd);
    }
    fd = -1;
  }
  freeaddrinfo(addresses);
  if (fd < 0) {
    return fail(b, "connect %s:%s: %s", b->options.host, b->options.port,
                strerror(saved));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  *fd_out = fd;
  return 0;
}

/* request: sends `text` on a still-blocking conn and waits for one whole
 * reply; *reply and *length point into conn->in until the next call. */
static int request(bench *b, connection *conn, const char *text,
                   const char **reply, size_t *length) {
  byte_buffer *in = &conn->in;
  size_t sent = 0, size = strlen(text);
  while (sent < size) {
    ssize_t n = write(conn->fd, text + sent, size - sent);
    if (n < 0 && errno != EINTR) {
      return fail(b, "write: %s", strerror(errno));
    }
    sent += n > 0 ? (size_t)n : 0;
  }
  in->start = in->end = 0;
  for (;;) {
    long whole = reply_length(b, in->data ? in->data : "", in->end);
    if (whole < 0) {
      return fail(b, "a malformed reply to %.*s", (int)strcspn(text, "\r"),
                  text);
    }
    if (whole > 0) {
      *reply = in->data;
      *length = (size_t)whole;
      in->start = in->end = 0;
      return 0;
    }
    if (reserve_bytes(in, 4096) != 0) {
      return fail(b, "out of memory");
    }
    ssize_t n = read(conn->fd, in->data + in->end, in->capacity - in->end);
    if (n == 0) {
      return fail(b, "the server closed the connection");
    }
    if (n < 0 && errno != EINTR) {
      return fail(b, "read: %s", strerror(errno));
    }
    in->end += n > 0 ? (size_t)n : 0;
  }
}

/* expect: request() whose reply must start with `prefix`. */
static int expect(bench *b, connection *conn, const char *text,
                  const char *prefix) {
  const char *reply;
  size_t length;
  char shown[80];
  if (request(b, conn, text, &reply, &length) != 0) {
    return -1;
  }
  if (length < strlen(prefix) || strncmp(reply, prefix, strlen(prefix)) != 0) {
    return fail(b, "%.*s answered %s (expected %s)", (int)strcspn(text, "\r"),
                text, reply_text(reply, length, shown, sizeof shown), prefix);
  }
  return 0;
}

/* stats_field: the number after "NAME: " in beanstalkd's YAML stats. */
static long long stats_field(const char *stats, size_t length,
                             const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\n%s: ", name);
  const char *end = stats + length;
  for (const char *p = stats; p < end; p++) {
    p = memchr(p, '\n', (size_t)(end - p));
    if (p == NULL) {
      break;
    }
    if ((size_t)(end - p) > strlen(key) && strncmp(p, key, strlen(key)) == 0) {
      return parse_count(p + strlen(key), '\n');
    }
  }
  return -1;
}

/* check_queue_empty: the peer holds no job of ours, ready, reserved or
 * otherwise. At the end, beanstalkd must also have seen exactly --jobs
 * jobs on the tube: no other client put any (the tube is new, as
 * beanstalkd drops an empty tube that no connection uses). */
static int check_queue_empty(bench *b, connection *conn, bool at_end) {
  const char *reply;
  size_t length;
  if (b->options.kind == PEER_REDIS) {
    char llen[64];
    snprintf(llen, sizeof llen, "*2\r\n$4\r\nLLEN\r\n$%zu\r\n%s\r\n",
             strlen(QUEUE_NAME), QUEUE_NAME);
    if (request(b, conn, llen, &reply, &length) != 0) {
      return -1;
    }
    if (strncmp(reply, ":0\r\n", 4) != 0) {
      char shown[80];
      return fail(b, "LLEN " QUEUE_NAME " is %s %s, not 0",
                  reply_text(reply, length, shown, sizeof shown),
                  at_end ? "after the run" : "before the run");
    }
    return 0;
  }
  if (request(b, conn, "stats-tube " QUEUE_NAME "\r\n", &reply, &length) != 0) {
    return -1;
  }
  if (!at_end && strncmp(reply, "NOT_FOUND\r\n", 11) == 0) {
    return 0;
  }
  if (strncmp(reply, "OK ", 3) != 0) {
    char shown[80];
    return fail(b, "stats-tube answered %s",
                reply_text(reply, length, shown, sizeof shown));
  }
  static const char *const states[] = {
      "current-jobs-ready", "current-jobs-reserved", "current-jobs-delayed",
      "current-jobs-buried"};
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
    long long count = stats_field(reply, length, states[i]);
    if (count != 0) {
      return fail(b, "tube " QUEUE_NAME " has %s: %lld %s", states[i], count,
                  at_end ? "after the run" : "before the run");
    }
  }
  long long total = stats_field(reply, length, "total-jobs");
  if (at_end && (total < 0 || (uint64_t)total != b->options.jobs)) {
    return fail(b,
                "tube " QUEUE_NAME " saw %lld jobs, not %" PRIu64
                " (did another client use it?)",
                total, b->options.jobs);
  }
  return 0;
}

/* set_up: connects every producer and consumer, picks the tube, checks the
 * queue is empty, then makes the sockets non-blocking. */
static int set_up(bench *b) {
  bool beanstalkd = b->options.kind == PEER_BEANSTALKD;
  for (size_t i = 0; i < b->connection_count; i++) {
    connection *conn = &b->connections[i];
    conn->role = i < b->options.producers ? ROLE_PRODUCER : ROLE_CONSUMER;
    if (connect_to(b, &conn->fd) != 0) {
      return -1;
    }
    if (!beanstalkd) {
      if (expect(b, conn, "*1\r\n$4\r\nPING\r\n", "+PONG") != 0) {
        return -1;
      }
    } else if (conn->role == ROLE_PRODUCER) {
      if (expect(b, conn, "use " QUEUE_NAME "\r\n", "USING " QUEUE_NAME) != 0) {
        return -1;
      }
    } else if (expect(b, conn, "watch " QUEUE_NAME "\r\n", "WATCHING 2") != 0 ||
               expect(b, conn, "ignore default\r\n", "WATCHING 1") != 0) {
      return -1;
    }
  }
  if (check_queue_empty(b, &b->connections[0], false) != 0) {
    return -1;
  }
  for (size_t i = 0; i < b->connection_count; i++) {
    int fd = b->connections[i].fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      return fail(b, "cannot make a socket non-blocking: %s", strerror(errno));
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- run */

/* run: the poll loop, until every job is done and every put acked (a job
 * can come back before its put's answer), an error or the deadline. */
static int run(bench *b) {
  while (b->done < b->options.jobs || b->puts_acked < b->options.jobs) {
    for (size_t i = 0; i < b->connection_count; i++) {
      connection *conn = &b->connections[i];
      if (fill_pipeline(b, conn) != 0 || flush(b, conn) != 0) {
        return -1;
      }
      b->polls[i].fd = conn->fd;
      b->polls[i].events =
          (short)(POLLIN | (conn->out.end > conn->out.start ? POLLOUT : 0));
      b->polls[i].revents = 0;
    }
    int ready = poll(b->polls, b->connection_count, 1000);
    if (ready < 0 && errno != EINTR) {
      return fail(b, "poll: %s", strerror(errno));
    }
    if (past_deadline(b)) {
      return fail(b,
                  "timed out after %u s: %" PRIu64 " put, %" PRIu64
                  " acked, %" PRIu64 " taken, %" PRIu64 " done",
                  b->options.timeout_s, b->next_sequence, b->puts_acked,
                  b->taken, b->done);
    }
    for (size_t i = 0; ready > 0 && i < b->connection_count; i++) {
      short revents = b->polls[i].revents;
      connection *conn = &b->connections[i];
      if (revents & (POLLERR | POLLNVAL)) {
        return fail(b, "a connection failed");
      }
      if ((revents & (POLLIN | POLLHUP)) && receive(b, conn) != 0) {
        return -1;
      }
    }
  }
  if (b->puts_acked != b->options.jobs) {
    return fail(b, "%" PRIu64 " puts acked of %" PRIu64, b->puts_acked,
                b->options.jobs);
  }
  /* Every bit must be set: taken counts distinct jobs, so this holds if
   * taken == jobs; checked anyway, it is cheap. */
  for (uint64_t sequence = 0; sequence < b->options.jobs; sequence++) {
    if (!(b->seen[sequence / 8] & (1u << (sequence % 8)))) {
      return fail(b, "job %" PRIu64 " never came back", sequence);
    }
  }
  return 0;
}

/* back_to_blocking: the sockets block again, for the closing requests. */
static int back_to_blocking(bench *b) {
  for (size_t i = 0; i < b->connection_count; i++) {
    int fd = b->connections[i].fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
      return fail(b, "fcntl: %s", strerror(errno));
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- main */

static void usage(void) {
  fprintf(stderr,
          "usage: queue_peers --kind beanstalkd|redis --addr HOST:PORT\n"
          "         [--jobs N (100000)] [--producers P (1)] [--consumers C "
          "(1)]\n"
          "         [--pipeline D (64)] [--body BYTES (100)] [--timeout S "
          "(600)]\n"
          "Puts N jobs (beanstalkd put on tube " QUEUE_NAME
          ", Redis LPUSH on list " QUEUE_NAME ")\n"
          "from P connections and takes each once from C connections "
          "(reserve + delete,\n"
          "BRPOP), up to D commands in flight per connection. Exit 0 ok, 1 "
          "error, 2 usage.\n");
  exit(2);
}

static unsigned long long parse_number(const char *text, unsigned long long min,
                                       unsigned long long max) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
      value < min || value > max) {
    fprintf(stderr, "queue_peers: %s is not a number in %llu..%llu\n", text,
            min, max);
    usage();
  }
  return value;
}

static void parse_options(int argc, char **argv, options *opts, char *addr_copy,
                          size_t addr_size) {
  static const struct option long_options[] = {
      {"kind", required_argument, NULL, 'k'},
      {"addr", required_argument, NULL, 'a'},
      {"jobs", required_argument, NULL, 'n'},
      {"producers", required_argument, NULL, 'p'},
      {"consumers", required_argument, NULL, 'c'},
      {"pipeline", required_argument, NULL, 'd'},
      {"body", required_argument, NULL, 'b'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *kind = NULL, *addr = NULL;
  int option;
  while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (option) {
    case 'k':
      kind = optarg;
      break;
    case 'a':
      addr = optarg;
      break;
    case 'n':
      opts->jobs = parse_number(optarg, 1, 1ull << 32);
      break;
    case 'p':
      opts->producers = (unsigned)parse_number(optarg, 1, 1000);
      break;
    case 'c':
      opts->consumers = (unsigned)parse_number(optarg, 1, 1000);
      break;
    case 'd':
      opts->pipeline = (size_t)parse_number(optarg, 1, 100000);
      break;
    case 'b':
      opts->body = (size_t)parse_number(optarg, SEQUENCE_DIGITS, 65535);
      break;
    case 't':
      opts->timeout_s = (unsigned)parse_number(optarg, 1, 86400);
      break;
    default:
      usage();
    }
  }
  if (optind != argc || kind == NULL || addr == NULL) {
    usage();
  }
  if (strcmp(kind, "beanstalkd") == 0) {
    opts->kind = PEER_BEANSTALKD;
  } else if (strcmp(kind, "redis") == 0) {
    opts->kind = PEER_REDIS;
  } else {
    fprintf(stderr, "queue_peers: --kind must be beanstalkd or redis\n");
    usage();
  }
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon == addr || colon[1] == '\0' ||
      strlen(addr) >= addr_size) {
    fprintf(stderr, "queue_peers: --addr must be HOST:PORT\n");
    usage();
  }
  memcpy(addr_copy, addr, strlen(addr) + 1);
  addr_copy[colon - addr] = '\0';
  opts->host = addr_copy;
  opts->port = addr_copy + (colon - addr) + 1;
}

int main(int argc, char **argv) {
  static const char *const kinds[] = {"beanstalkd", "redis"};
  char addr[256];
  bench b = {.options = {.jobs = 100000,
                         .producers = 1,
                         .consumers = 1,
                         .pipeline = 64,
                         .body = 100,
                         .timeout_s = 600}};
  int exit_code = 1;
  parse_options(argc, argv, &b.options, addr, sizeof addr);
  signal(SIGPIPE, SIG_IGN);
  clock_gettime(CLOCK_MONOTONIC, &b.deadline);
  b.deadline.tv_sec += b.options.timeout_s;

  b.connection_count = b.options.producers + (size_t)b.options.consumers;
  b.connections = calloc(b.connection_count, sizeof *b.connections);
  b.polls = calloc(b.connection_count, sizeof *b.polls);
  b.body = malloc(b.options.body);
  b.seen = calloc((size_t)(b.options.jobs / 8 + 1), 1);
  if (b.connections == NULL || b.polls == NULL || b.body == NULL ||
      b.seen == NULL) {
    fail(&b, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < b.connection_count; i++) {
    b.connections[i].fd = -1;
    b.connections[i].pending = calloc(b.options.pipeline, sizeof(command));
    if (b.connections[i].pending == NULL) {
      fail(&b, "out of memory");
      goto out;
    }
  }
  if (set_up(&b) != 0 || run(&b) != 0 || back_to_blocking(&b) != 0 ||
      check_queue_empty(&b, &b.connections[0], true) != 0) {
    goto out;
  }
  double seconds = seconds_between(&b.first_put, &b.last_done);
  printf("queue_peers kind=%s jobs=%" PRIu64 " seconds=%.3f jobs_per_s=%.0f\n",
         kinds[b.options.kind], b.options.jobs, seconds,
         seconds > 0 ? (double)b.options.jobs / seconds : 0.0);
  exit_code = 0;

out:
  if (exit_code != 0) {
    fprintf(stderr, "queue_peers: %s\n", b.error);
  }
  for (size_t i = 0; b.connections != NULL && i < b.connection_count; i++) {
    if (b.connections[i].fd >= 0) {
      close(b.connections[i].fd);
    }
    free(b.connections[i].in.data);
    free(b.connections[i].out.data);
    free(b.connections[i].pending);
  }
  free(b.connections);
  free(b.polls);
  free(b.body);
  free(b.seen);
  return exit_code;
}
