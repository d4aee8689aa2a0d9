/* deep_message.h: deeply nested protobuf wire messages, built from the
 * inside out at the end of a caller's buffer, for the depth-limit tests
 * (test_wire_check, test_json, test_client). Each function fails the
 * running cmocka test when the buffer is too small. */
#ifndef JOBHUB_TESTS_DEEP_MESSAGE_H
#define JOBHUB_TESTS_DEEP_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* deep_wrap_field wraps buf[start..size) in a length-delimited field
 * `number` (wire type 2), written just before it; returns the wrapped
 * field's start. */
size_t deep_wrap_field(uint8_t *buf, size_t size, size_t start,
                       uint32_t number);

/* deep_wrap_fields wraps buf[start..size) in `levels` such fields,
 * numbers[0] innermost; returns the outermost one's start. */
size_t deep_wrap_fields(uint8_t *buf, size_t size, size_t start,
                        const uint32_t *numbers, size_t levels);

/* deep_submit_struct builds a jobhub.v1.SubmitRequest whose
 * config.module_params (fields 4, 5) is a Struct nested `levels` levels
 * deep: Struct { fields { key: "k" value { struct_value: ... } } }, so the
 * Struct at level j is at depth 2 + 3j. Returns where it starts; it ends
 * at buf + size. */
size_t deep_submit_struct(uint8_t *buf, size_t size, size_t levels);

#endif
