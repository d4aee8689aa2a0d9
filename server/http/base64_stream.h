/* base64_stream.h: base64 decoding of a body that arrives in chunks of any
 * size (gRPC-Web-text, PROTOCOL-WEB "Text-encoded streams"): a quantum of
 * four characters may span chunks, and the text may be several padded
 * encodings one after the other ("AAA=AAA="). Line breaks are skipped. */
#ifndef JOBHUB_SERVER_HTTP_BASE64_STREAM_H
#define JOBHUB_SERVER_HTTP_BASE64_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"

/* The characters of an unfinished quantum, between chunks. */
typedef struct base64_stream {
  char pending[4];
  size_t pending_len;
} base64_stream;

/* base64_stream_init makes a decoder at the start of a text. */
void base64_stream_init(base64_stream *stream);

/* base64_stream_decode appends to out the bytes of every quantum that
 * text[0..len) completes, keeping the rest for the next chunk. Returns 0,
 * or -1 for a character outside the alphabet, padding that does not end a
 * quantum, or no memory (the decoder is then unusable). */
int base64_stream_decode(base64_stream *stream, const uint8_t *text, size_t len,
                         rpc_buffer *out);

/* base64_stream_is_partial tells whether a quantum has begun but not
 * ended: at the end of the body that is an error. */
bool base64_stream_is_partial(const base64_stream *stream);

#endif
