/* fuzz_headers.c: the parsers of untrusted header values: grpc-timeout,
 * grpc-message percent-decoding, base64, and custom metadata. Round trips
 * must hold where the format defines them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/base64.h"
#include "rpc/metadata.h"
#include "rpc/status.h"
#include "rpc/timeout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  uint64_t ns;
  (void)rpc_timeout_parse(text, size, &ns);

  rpc_buffer encoded, decoded;
  rpc_buffer_init(&encoded);
  rpc_buffer_init(&decoded);
  /* percent: encode then decode gives the input back. */
  if (rpc_percent_encode(text, size, &encoded) == 0 &&
      rpc_percent_decode((const char *)encoded.data, encoded.len, &decoded) ==
          0) {
    if (decoded.len != size || memcmp(decoded.data, data, size) != 0) {
      abort();
    }
  }
  rpc_buffer_reset(&encoded);
  rpc_buffer_reset(&decoded);
  (void)rpc_percent_decode(text, size, &decoded);
  rpc_buffer_reset(&decoded);
  /* base64: encode then decode gives the input back. */
  if (rpc_base64_encode(data, size, &encoded) == 0 &&
      rpc_base64_decode((const char *)encoded.data, encoded.len, &decoded) ==
          0) {
    if (decoded.len != size || memcmp(decoded.data, data, size) != 0) {
      abort();
    }
  }
  rpc_buffer_reset(&decoded);
  (void)rpc_base64_decode(text, size, &decoded);
  rpc_buffer_free(&encoded);
  rpc_buffer_free(&decoded);

  /* metadata: the first byte splits key from value; key_len <= size - 1. */
  if (size > 1) {
    size_t key_len = data[0] % (size - 1) + 1;
    rpc_metadata md;
    rpc_metadata_init(&md);
    (void)rpc_metadata_add_wire(&md, text + 1, key_len, text + 1 + key_len,
                                size - 1 - key_len);
    rpc_metadata_free(&md);
  }
  return 0;
}
