/* percent.h: percent-decoding of URL parts as google/api/http.proto maps
 * them to request fields: a path variable of one segment decodes every
 * escape, one of several segments keeps "%2F" (an encoded '/' stays apart
 * from the separators), and a query string also reads '+' as a space. */
#ifndef JOBHUB_SERVER_HTTP_PERCENT_H
#define JOBHUB_SERVER_HTTP_PERCENT_H

#include <stddef.h>

typedef enum http_percent_mode {
  HTTP_PERCENT_SEGMENT,       /* a single-segment path variable */
  HTTP_PERCENT_MULTI_SEGMENT, /* a path variable over several segments */
  HTTP_PERCENT_QUERY,         /* a query key or value: '+' is a space */
} http_percent_mode;

/* http_percent_decode writes the decoding of in[0..len) to out, which
 * has room for len bytes (a decoding is never longer), and sets *out_len.
 * Returns 0, or -1 when a '%' is not followed by two hex digits (out is
 * then undefined). The result may hold any bytes, NUL and non-UTF-8
 * included: the caller checks what its use needs. */
int http_percent_decode(const char *in, size_t len, http_percent_mode mode,
                        char *out, size_t *out_len);

#endif
