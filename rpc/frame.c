/* frame.c: reassembly of length-prefixed gRPC messages. */
#include "rpc/frame.h"

#include <string.h>

void rpc_deframer_init(rpc_deframer *d, size_t max_message_size) {
  memset(d, 0, sizeof(*d));
  d->max_message_size = max_message_size;
  rpc_buffer_init(&d->body);
}

void rpc_deframer_free(rpc_deframer *d) { rpc_buffer_free(&d->body); }

bool rpc_deframer_is_partial(const rpc_deframer *d) {
  return d->header_len > 0;
}

static uint32_t read_length(const uint8_t *header) {
  return (uint32_t)header[1] << 24 | (uint32_t)header[2] << 16 |
         (uint32_t)header[3] << 8 | (uint32_t)header[4];
}

/* Checks the prefix just completed in d->header. */
static int check_header(rpc_deframer *d) {
  if (d->header[0] > 1) {
    return RPC_FRAME_ERR_BAD_FLAG;
  }
  d->body_expected = read_length(d->header);
  if (d->body_expected > d->max_message_size) {
    return RPC_FRAME_ERR_TOO_LARGE;
  }
  return 0;
}

int rpc_deframer_feed(rpc_deframer *d, const uint8_t *data, size_t len,
                      rpc_deframer_message_cb on_message, void *arg) {
  while (len > 0) {
    if (d->header_len == 0 && len >= RPC_FRAME_HEADER_SIZE) {
      /* Fast path: a whole message inside this chunk needs no copy. */
      memcpy(d->header, data, RPC_FRAME_HEADER_SIZE);
      int rv = check_header(d);
      if (rv != 0) {
        return rv;
      }
      if (len - RPC_FRAME_HEADER_SIZE >= d->body_expected) {
        rv = on_message(arg, d->header[0] == 1, data + RPC_FRAME_HEADER_SIZE,
                        d->body_expected);
        data += RPC_FRAME_HEADER_SIZE + d->body_expected;
        len -= RPC_FRAME_HEADER_SIZE + d->body_expected;
        if (rv != 0) {
          return rv;
        }
        continue;
      }
      d->header_len = RPC_FRAME_HEADER_SIZE;
      data += RPC_FRAME_HEADER_SIZE;
      len -= RPC_FRAME_HEADER_SIZE;
      if (rpc_buffer_reserve(&d->body, d->body_expected) != 0) {
        return RPC_FRAME_ERR_NOMEM;
      }
      continue;
    }
    if (d->header_len < RPC_FRAME_HEADER_SIZE) {
      size_t take = RPC_FRAME_HEADER_SIZE - d->header_len;
      take = take < len ? take : len;
      memcpy(d->header + d->header_len, data, take);
      d->header_len += take;
      data += take;
      len -= take;
      if (d->header_len < RPC_FRAME_HEADER_SIZE) {
        return 0;
      }
      int rv = check_header(d);
      if (rv != 0) {
        return rv;
      }
      if (rpc_buffer_reserve(&d->body, d->body_expected) != 0) {
        return RPC_FRAME_ERR_NOMEM;
      }
    }
    size_t missing = d->body_expected - d->body.len;
    size_t take = missing < len ? missing : len;
    if (rpc_buffer_append(&d->body, data, take) != 0) {
      return RPC_FRAME_ERR_NOMEM;
    }
    data += take;
    len -= take;
    if (d->body.len < d->body_expected) {
      return 0;
    }
    d->header_len = 0;
    int rv = on_message(arg, d->header[0] == 1, d->body.data, d->body.len);
    rpc_buffer_reset(&d->body);
    if (rv != 0) {
      return rv;
    }
  }
  return 0;
}

void rpc_frame_header_write(uint8_t out[RPC_FRAME_HEADER_SIZE], bool compressed,
                            uint32_t length) {
  out[0] = compressed ? 1 : 0;
  out[1] = (uint8_t)(length >> 24);
  out[2] = (uint8_t)(length >> 16);
  out[3] = (uint8_t)(length >> 8);
  out[4] = (uint8_t)length;
}
