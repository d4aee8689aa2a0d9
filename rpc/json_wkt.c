/* json_wkt.c: the well-known types whose JSON is a string, both ways:
 * Timestamp (RFC 3339), Duration ("1.5s") and FieldMask ("a.fooBar,b").
 * Any, Struct, Value, ListValue, Empty and the wrappers hold or are other
 * values, so the walks of json_from_wire.c and json_to_wire.c write them. */
#include "rpc/json_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* google/protobuf/timestamp.proto and duration.proto */
#define TIMESTAMP_MIN_SECONDS INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */

#define TIMESTAMP_MAX_SECONDS INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

#define DURATION_MAX_SECONDS INT64_C(315576000000) /* 10000 years */

#define NANOS_PER_SECOND 1000000000

/* Reads the last fitting varint or fixed value of a field. */
static bool scalar_of(const record_list *records, uint32_t number, int type,
                      uint64_t *value) {
  field_info fi = rpc_json_plain_field(number, type);
  const record *run;
  size_t count = rpc_json_find_run(records, number, &run);
  const record *last = rpc_json_last_fitting(&fi, run, count);
  *value = last != NULL ? last->value : 0;
  return last != NULL;
}

/* civil_from_days and days_from_civil: Howard Hinnant's algorithms for
 * the proleptic Gregorian calendar. */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month,
                            unsigned *day) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  unsigned day_of_era = (unsigned)(days - era * 146097);
  unsigned year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 -
                          day_of_era / 146096) /
                         365;
  unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  unsigned mp = (5 * day_of_year + 2) / 153;
  *day = day_of_year - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = (int64_t)year_of_era + era * 400 + (*month <= 2);
}

static int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  int64_t era = (year >= 0 ? year : year - 399) / 400;
  unsigned year_of_era = (unsigned)(year - era * 400);
  unsigned day_of_year =
      (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  unsigned day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + (int64_t)day_of_era - 719468;
}

/* ".5" style fractions: 0, 3, 6 or 9 digits, as the mapping asks. */
static void format_nanos(int32_t nanos, char *buf, size_t size) {
  if (nanos == 0) {
    buf[0] = '\0';
  } else if (nanos % 1000000 == 0) {
    snprintf(buf, size, ".%03" PRId32, nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    snprintf(buf, size, ".%06" PRId32, nanos / 1000);
  } else {
    snprintf(buf, size, ".%09" PRId32, nanos);
  }
}

/* The fields of a Timestamp or Duration: seconds (1) and nanos (2). */
static void seconds_nanos_of(const record_list *records, int64_t *seconds,
                             int32_t *nanos) {
  uint64_t seconds_bits, nanos_bits;
  (void)scalar_of(records, 1, FIELD_TYPE(INT64), &seconds_bits);
  (void)scalar_of(records, 2, FIELD_TYPE(INT32), &nanos_bits);
  *seconds = (int64_t)seconds_bits;
  *nanos = (int32_t)(uint32_t)nanos_bits;
}

int rpc_json_write_timestamp(context *ctx, const record_list *records) {
  int64_t seconds;
  int32_t nanos;
  seconds_nanos_of(records, &seconds, &nanos);
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS ||
      nanos < 0 || nanos >= NANOS_PER_SECOND) {
    return rpc_json_fail(ctx,
                         "Timestamp %" PRId64 "s %" PRId32
                         "ns is outside 0001-01-01 to 9999-12-31",
                         seconds, nanos);
  }
  int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  int64_t rest = seconds - days * 86400;
  int64_t year;
  unsigned month, day;
  civil_from_days(days, &year, &month, &day);
  char fraction[16];
  format_nanos(nanos, fraction, sizeof(fraction));
  rpc_json_emit_format(ctx, "\"%04" PRId64 "-%02u-%02uT%02u:%02u:%02u%sZ\"",
                       year, month, day, (unsigned)(rest / 3600),
                       (unsigned)(rest / 60 % 60), (unsigned)(rest % 60),
                       fraction);
  return 0;
}

int rpc_json_write_duration(context *ctx, const record_list *records) {
  int64_t seconds;
  int32_t nanos;
  seconds_nanos_of(records, &seconds, &nanos);
  if (seconds < -DURATION_MAX_SECONDS || seconds > DURATION_MAX_SECONDS ||
      nanos <= -NANOS_PER_SECOND || nanos >= NANOS_PER_SECOND ||
      (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return rpc_json_fail(ctx,
                         "Duration %" PRId64 "s %" PRId32 "ns is out of range",
                         seconds, nanos);
  }
  bool negative = seconds < 0 || nanos < 0;
  char fraction[16];
  format_nanos(negative ? -nanos : nanos, fraction, sizeof(fraction));
  rpc_json_emit_format(ctx, "\"%s%" PRId64 "%ss\"", negative ? "-" : "",
                       negative ? -seconds : seconds, fraction);
  return 0;
}

/* FieldMask: the paths in lowerCamelCase, joined by commas. */
int rpc_json_write_field_mask(context *ctx, const record_list *records) {
  const record *run;
  size_t count = rpc_json_find_run(records, 1, &run);
  rpc_buffer joined;
  rpc_buffer_init(&joined);
  bool first = true;
  for (size_t i = 0; i < count; i++) {
    if (run[i].wire_type != WIRE_LEN) {
      continue;
    }
    if (!first && rpc_buffer_append(&joined, ",", 1) != 0) {
      rpc_buffer_free(&joined);
      return rpc_json_fail_no_memory(ctx);
    }
    first = false;
    const uint8_t *path = run[i].data;
    for (size_t k = 0; k < run[i].len; k++) {
      char c = (char)path[k];
      if (c == '_' && k + 1 < run[i].len && path[k + 1] >= 'a' &&
          path[k + 1] <= 'z') {
        c = (char)(path[++k] - 'a' + 'A');
      } else if (c == '_' || (c >= 'A' && c <= 'Z')) {
        rpc_buffer_free(&joined);
        return rpc_json_fail(
            ctx, "FieldMask path \"%.*s\" has no lowerCamelCase form",
            (int)(run[i].len > 64 ? 64 : run[i].len), (const char *)path);
      }
      if (rpc_buffer_append(&joined, &c, 1) != 0) {
        rpc_buffer_free(&joined);
        return rpc_json_fail_no_memory(ctx);
      }
    }
  }
  int rv = rpc_json_emit_string(
      ctx, joined.data != NULL ? joined.data : (const uint8_t *)"", joined.len);
  rpc_buffer_free(&joined);
  return rv;
}

/* n digits at s into *value; false if any is not a digit. */
static bool fixed_digits(const char *s, size_t n, unsigned *value) {
  *value = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i])) {
      return false;
    }
    *value = *value * 10 + (unsigned)(s[i] - '0');
  }
  return true;
}

/* ".d{1,9}" at s[*i]: the nanoseconds; false if malformed. */
static bool parse_fraction(const char *s, size_t len, size_t *i,
                           int32_t *nanos) {
  *nanos = 0;
  if (*i >= len || s[*i] != '.') {
    return true;
  }
  size_t start = ++*i;
  int32_t value = 0;
  while (*i < len && is_digit(s[*i])) {
    if (*i - start >= 9) {
      return false;
    }
    value = value * 10 + (s[*i] - '0');
    ++*i;
  }
  size_t count = *i - start;
  if (count == 0) {
    return false;
  }
  for (size_t k = count; k < 9; k++) {
    value *= 10;
  }
  *nanos = value;
  return true;
}

static unsigned days_in_month(unsigned year, unsigned month) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

/* RFC 3339: "1972-01-01T10:00:20.021Z" or with an offset "+01:00".
 * Returns 0, -1 (malformed) or -2 (outside years 1 to 9999). */
static int parse_timestamp(const char *s, size_t len, int64_t *seconds,
                           int32_t *nanos) {
  unsigned year, month, day, hour, minute, second;
  if (len < 20 || !fixed_digits(s, 4, &year) || s[4] != '-' ||
      !fixed_digits(s + 5, 2, &month) || s[7] != '-' ||
      !fixed_digits(s + 8, 2, &day) || s[10] != 'T' ||
      !fixed_digits(s + 11, 2, &hour) || s[13] != ':' ||
      !fixed_digits(s + 14, 2, &minute) || s[16] != ':' ||
      !fixed_digits(s + 17, 2, &second)) {
    return -1;
  }
  size_t i = 19;
  if (!parse_fraction(s, len, &i, nanos)) {
    return -1;
  }
  int64_t offset = 0;
  if (i < len && s[i] == 'Z') {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    unsigned offset_hours, offset_minutes;
    if (len - i < 6 || !fixed_digits(s + i + 1, 2, &offset_hours) ||
        s[i + 3] != ':' || !fixed_digits(s + i + 4, 2, &offset_minutes) ||
        offset_hours > 23 || offset_minutes > 59) {
      return -1;
    }
    offset = (int64_t)(offset_hours * 3600 + offset_minutes * 60);
    if (s[i] == '-') {
      offset = -offset;
    }
    i += 6;
  } else {
    return -1;
  }
  if (i != len || year < 1 || month < 1 || month > 12 || day < 1 ||
      day > days_in_month(year, month) || hour > 23 || minute > 59 ||
      second > 59) {
    return -1;
  }
  *seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 +
             minute * 60 + second - offset;
  if (*seconds < TIMESTAMP_MIN_SECONDS || *seconds > TIMESTAMP_MAX_SECONDS) {
    return -2;
  }
  return 0;
}

/* "1.5s", "-0.000000001s". Returns 0, -1 (malformed) or -2 (beyond
 * +-315576000000 s). */
static int parse_duration(const char *s, size_t len, int64_t *seconds,
                          int32_t *nanos) {
  size_t i = 0;
  bool negative = i < len && s[i] == '-';
  if (negative) {
    i++;
  }
  size_t start = i;
  int64_t whole = 0;
  while (i < len && is_digit(s[i])) {
    if (whole <= DURATION_MAX_SECONDS) {
      whole = whole * 10 + (s[i] - '0');
    }
    i++;
  }
  if (i == start || !parse_fraction(s, len, &i, nanos) || i + 1 != len ||
      s[i] != 's') {
    return -1;
  }
  if (whole > DURATION_MAX_SECONDS) {
    return -2;
  }
  *seconds = negative ? -whole : whole;
  *nanos = negative ? -*nanos : *nanos;
  return 0;
}

static int put_seconds_nanos(context *ctx, int64_t seconds, int32_t nanos) {
  if (seconds != 0 && (rpc_json_put_tag(ctx, 1, WIRE_VARINT) != 0 ||
                       rpc_json_put_varint(ctx, (uint64_t)seconds) != 0)) {
    return -1;
  }
  if (nanos != 0 && (rpc_json_put_tag(ctx, 2, WIRE_VARINT) != 0 ||
                     rpc_json_put_varint(ctx, (uint64_t)(int64_t)nanos) != 0)) {
    return -1;
  }
  return 0;
}

int rpc_json_encode_time(context *ctx, wkt kind, const json_t *v) {
  const char *what = kind == WKT_TIMESTAMP ? "google.protobuf.Timestamp"
                                           : "google.protobuf.Duration";
  if (!json_is_string(v)) {
    return rpc_json_fail(ctx, "expected a string for %s, got %s", what,
                         rpc_json_kind(v));
  }
  const char *text = json_string_value(v);
  size_t len = json_string_length(v);
  int shown = len > 64 ? 64 : (int)len;
  int64_t seconds = 0;
  int32_t nanos = 0;
  int rv = kind == WKT_TIMESTAMP ? parse_timestamp(text, len, &seconds, &nanos)
                                 : parse_duration(text, len, &seconds, &nanos);
  if (rv == -1) {
    return rpc_json_fail(ctx,
                         kind == WKT_TIMESTAMP
                             ? "\"%.*s\" is not an RFC 3339 timestamp "
                               "(like 1972-01-01T10:00:20.021Z)"
                             : "\"%.*s\" is not a duration (like 1.5s)",
                         shown, text);
  }
  if (rv == -2) {
    return rpc_json_fail(ctx,
                         kind == WKT_TIMESTAMP
                             ? "\"%.*s\" is outside 0001-01-01 to 9999-12-31"
                             : "\"%.*s\" is beyond 315576000000 seconds",
                         shown, text);
  }
  return put_seconds_nanos(ctx, seconds, nanos);
}

/* FieldMask: "a.fooBar,b" -> paths "a.foo_bar", "b". */
int rpc_json_encode_field_mask(context *ctx, const json_t *v) {
  if (!json_is_string(v)) {
    return rpc_json_fail(
        ctx, "expected a string for google.protobuf.FieldMask, got %s",
        rpc_json_kind(v));
  }
  const char *text = json_string_value(v);
  size_t len = json_string_length(v);
  if (len == 0) {
    return 0;
  }
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && text[i] != ',') {
      continue;
    }
    if (rpc_json_put_tag(ctx, 1, WIRE_LEN) != 0) {
      return -1;
    }
    size_t path = rpc_json_begin_len(ctx);
    for (size_t k = start; k < i; k++) {
      char c = text[k];
      if (c == '_') {
        return rpc_json_fail(
            ctx, "FieldMask path \"%.*s\" is not lowerCamelCase",
            (int)(i - start > 64 ? 64 : i - start), text + start);
      }
      if (c >= 'A' && c <= 'Z') {
        char snake[2] = {'_', (char)(c - 'A' + 'a')};
        if (rpc_json_put(ctx, snake, 2) != 0) {
          return -1;
        }
      } else if (rpc_json_put(ctx, &c, 1) != 0) {
        return -1;
      }
    }
    if (rpc_json_end_len(ctx, path) != 0) {
      return -1;
    }
    start = i + 1;
  }
  return 0;
}
