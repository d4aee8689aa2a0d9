/* frame.h: gRPC length-prefixed messages (PROTOCOL-HTTP2
 * "Length-Prefixed-Message"): 1 flag byte, 4 bytes big-endian length. */
#ifndef JOBHUB_RPC_FRAME_H
#define JOBHUB_RPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"

#define RPC_FRAME_HEADER_SIZE 5

enum {
  RPC_FRAME_ERR_NOMEM = -1,
  RPC_FRAME_ERR_TOO_LARGE = -2, /* declared length over the limit */
  RPC_FRAME_ERR_BAD_FLAG = -3,  /* flag byte other than 0 or 1 */
};

/* Called once per complete message; data is borrowed for the call only.
 * A non-zero return stops rpc_deframer_feed, which returns it. */
typedef int (*rpc_deframer_message_cb)(void *arg, bool compressed,
                                       const uint8_t *data, size_t len);

/* Reassembles messages from DATA chunks of any size. */
typedef struct rpc_deframer {
  size_t max_message_size; /* bytes; a larger declared length fails */
  uint8_t header[RPC_FRAME_HEADER_SIZE];
  size_t header_len;    /* header bytes seen of the current message */
  rpc_buffer body;      /* partial body when it spans chunks */
  size_t body_expected; /* declared length of the current message */
} rpc_deframer;

/* rpc_deframer_init prepares d for messages of at most max_message_size
 * bytes. */
void rpc_deframer_init(rpc_deframer *d, size_t max_message_size);

/* rpc_deframer_free releases the partial body. */
void rpc_deframer_free(rpc_deframer *d);

/* rpc_deframer_feed consumes len bytes, calling on_message for every
 * complete message in order. A message wholly inside data is passed
 * without a copy. Returns 0, a RPC_FRAME_ERR_* code (the deframer is then
 * unusable), or the first non-zero return of on_message. */
int rpc_deframer_feed(rpc_deframer *d, const uint8_t *data, size_t len,
                      rpc_deframer_message_cb on_message, void *arg);

/* rpc_deframer_is_partial tells whether a message has begun but not
 * ended: at end of stream that is a protocol error. */
bool rpc_deframer_is_partial(const rpc_deframer *d);

/* rpc_frame_header_write writes the 5-byte prefix for a message. */
void rpc_frame_header_write(uint8_t out[RPC_FRAME_HEADER_SIZE], bool compressed,
                            uint32_t length);

#endif
