/*
 * Pure header checks of the HTTP front, kept apart from evhttp so that
 * unit tests and the fuzzer can drive them directly.
 */
#ifndef PC_HTTP_CHECK_H
#define PC_HTTP_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "../config/config.h"

/* Accept lists both application/json and text/event-stream (media-range
 * parameters ignored, case-insensitive). */
bool pc_accept_has(const char *accept, const char *type);

/* Content-Type is application/json, with or without parameters. */
bool pc_content_type_json(const char *ct);

/* Host header names a loopback host (localhost, 127.0.0.1, [::1]) with an
 * optional numeric port. */
bool pc_host_is_loopback(const char *host);

/* Host header is an IP literal (a.b.c.d or [v6]) with an optional numeric
 * port. */
bool pc_host_is_ip_literal(const char *host);

/* Origin is http(s)://<loopback host>[:port], nothing more. */
bool pc_origin_is_loopback(const char *origin);

/*
 * The first header the gateway decides on (Host, Origin, Authorization,
 * the Mcp-* headers, ...) that appears more than once, or NULL. With two,
 * the gateway would check one (evhttp finds the first) while something
 * behind or in front of it may use the other.
 */
struct evkeyvalq;
const char *pc_duplicate_header(const struct evkeyvalq *headers);

/* `v` appears exactly in the NULL-terminated list. */
bool pc_in_list(char *const *list, const char *v);

/*
 * Decode an Mcp-* header value: either plain visible ASCII (returned as a
 * copy) or "=?base64?<b64>?=" holding UTF-8. Returns a malloc'ed string,
 * or NULL when the value is invalid (bad characters, bad base64, NUL or
 * invalid UTF-8 inside, longer than PC_MAX_HEADER_VALUE).
 */
char *pc_header_decode(const char *v);

/* addr (numeric, v4 or v6) lies in one of the ranges. */
bool pc_addr_in(const struct pc_cidr *list, size_t n, const char *addr);

/* addr is 127.0.0.0/8, ::1 or ::ffff:127.x. */
bool pc_addr_is_loopback(const char *addr);

/*
 * The client behind trusted proxies: walking the X-Forwarded-For header
 * lines xff[0..nxff) (in the order received, taken as one list) from the
 * right, the first address that is not itself a trusted proxy. Writes it
 * to out and returns true; false (out untouched) when the header holds no
 * usable address.
 */
bool pc_forwarded_client(const char *const *xff, size_t nxff,
    const struct pc_cidr *list, size_t n, char *out, size_t outlen);

#endif
