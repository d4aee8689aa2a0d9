/* timeout.h: the grpc-timeout header (PROTOCOL-HTTP2 "Timeout"). */
#ifndef JOBHUB_RPC_TIMEOUT_H
#define JOBHUB_RPC_TIMEOUT_H

#include <stddef.h>
#include <stdint.h>

/* Longest formatted value: 8 digits and a unit, plus NUL. */
#define RPC_TIMEOUT_TEXT_SIZE 10

/* rpc_timeout_parse reads "TimeoutValue TimeoutUnit": 1 to 8 ASCII digits
 * then one of H M S m u n, nothing else. Stores the timeout in nanoseconds
 * (hours are large: 99999999H saturates at UINT64_MAX). Returns 0, or -1 when
 * the text is malformed. */
int rpc_timeout_parse(const char *text, size_t len, uint64_t *nanoseconds);

/* rpc_timeout_format writes the value to send for a timeout of nanoseconds:
 * the finest unit whose count fits in 8 digits, rounded up so a deadline
 * is never shortened. Returns the length written (without the NUL). */
size_t rpc_timeout_format(uint64_t nanoseconds,
                          char out[RPC_TIMEOUT_TEXT_SIZE]);

#endif
