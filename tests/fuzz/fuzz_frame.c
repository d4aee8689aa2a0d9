/* fuzz_frame.c: the gRPC deframer on arbitrary bytes cut into arbitrary
 * chunks; every message it reports must lie inside what was fed, and the
 * same input fed whole must give the same messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/frame.h"

#define MAX_MESSAGE 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally {
  size_t messages;
  size_t bytes;
  uint64_t checksum;
} tally;

static int on_message(void *arg, bool compressed, const uint8_t *message,
                      size_t len) {
  tally *t = arg;
  t->messages++;
  t->bytes += len;
  t->checksum = t->checksum * 31 + (compressed ? 1u : 0u);
  for (size_t i = 0; i < len; i++) {
    t->checksum = t->checksum * 131 + message[i];
  }
  return 0;
}

static int feed_in_chunks(const uint8_t *data, size_t size, size_t chunk,
                          tally *t) {
  rpc_deframer deframer;
  rpc_deframer_init(&deframer, MAX_MESSAGE);
  int rv = 0;
  for (size_t offset = 0; offset < size && rv == 0; offset += chunk) {
    size_t n = size - offset < chunk ? size - offset : chunk;
    rv = rpc_deframer_feed(&deframer, data + offset, n, on_message, t);
  }
  rpc_deframer_free(&deframer);
  return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) {
    return 0;
  }
  size_t chunk = (size_t)data[0] % 17 + 1;
  tally whole = {0}, pieces = {0};
  int rv_whole = feed_in_chunks(data + 1, size - 1, size, &whole);
  int rv_pieces = feed_in_chunks(data + 1, size - 1, chunk, &pieces);
  if (rv_whole != rv_pieces || whole.messages != pieces.messages ||
      whole.bytes != pieces.bytes || whole.checksum != pieces.checksum) {
    abort(); /* reassembly depends on how the bytes were cut */
  }
  return 0;
}
