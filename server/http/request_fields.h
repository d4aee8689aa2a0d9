/* request_fields.h: request fields filled from the path variables and
 * query parameters of a JSON transcoding request (google/api/http.proto,
 * SPEC "HTTP face"), by appending their encodings to the request's wire
 * bytes (what the JSON body was converted into). Appending is protobuf's
 * merge: a scalar given here overrides one of the body, a repeated field
 * gains elements, and "a.b" is appended as a message a holding b.
 *
 * Keys name fields by JSON name or proto name, nested by dots
 * (`?poolID=0`, `pool_id`, `config.job_type_id`); a repeated field takes
 * one value per repetition of its key. Values: strings (UTF-8), bytes
 * (base64 or base64url), bool (true/false/1/0), integers (decimal,
 * range-checked), float and double (as ProtoJSON reads them, "NaN" and
 * "Infinity" included), enums by name or number. Only scalar leaves: a
 * key naming a message, map or group is an error. Type names are fully
 * qualified, a leading dot allowed.
 *
 * Append the body first, then the query, then the path variables, so that
 * what the path binds wins over both. */
#ifndef JOBHUB_SERVER_HTTP_REQUEST_FIELDS_H
#define JOBHUB_SERVER_HTTP_REQUEST_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/buffer.h"
#include "rpc/descriptor_pool.h"
#include "server/http/route_table.h"

/* http_request_field_append appends to wire the field of the message type
 * named by key[0..key_len) with the value value[0..value_len) (already
 * decoded). Returns 0, or -1 with a message in err[0..err_size) that
 * names the key and, for a bad value, the value: the type is not in the
 * pool, an unknown key, a key through a non-message or a repeated or map
 * field, a message-typed leaf, a value that does not parse as the field's
 * type or is out of its range, a string that is not UTF-8, or no memory.
 * On error wire is left as it was. The caller owns wire. */
int http_request_field_append(const rpc_descriptor_pool *pool, const char *type,
                              const char *key, size_t key_len,
                              const char *value, size_t value_len,
                              rpc_buffer *wire, char *err, size_t err_size);

/* http_request_field_check says whether key (NUL-terminated, dotted)
 * names a field of the message type that http_request_field_append could
 * fill, or with any_leaf, any field reached through singular messages (a
 * body or response_body field). Returns 0, or -1 with a message in
 * err[0..err_size) as http_request_field_append gives. For start-up
 * checks of the rules. */
int http_request_field_check(const rpc_descriptor_pool *pool, const char *type,
                             const char *key, bool any_leaf, char *err,
                             size_t err_size);

/* http_request_fields_from_path appends the path variables of a match,
 * bindings[0..count), each percent-decoded as http.proto says (a
 * multi-segment variable keeps %2F). Errors as http_request_field_append,
 * and a malformed escape; on error wire is left as it was. */
int http_request_fields_from_path(const rpc_descriptor_pool *pool,
                                  const char *type,
                                  const http_route_binding *bindings,
                                  size_t count, rpc_buffer *wire, char *err,
                                  size_t err_size);

/* http_request_fields_from_query appends every parameter of the query
 * string query[0..len) (without the '?'): "k=v" pairs split at '&', keys
 * and values percent-decoded with '+' as a space; "k" alone has the empty
 * value; empty pairs are skipped. Errors as http_request_fields_from_path;
 * on error wire is left as it was. */
int http_request_fields_from_query(const rpc_descriptor_pool *pool,
                                   const char *type, const char *query,
                                   size_t len, rpc_buffer *wire, char *err,
                                   size_t err_size);

#endif
