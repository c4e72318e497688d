/* Unit tests: src/http/http_check.c (pure header checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <sys/queue.h>
#include <event2/keyvalq_struct.h>

#include "http/http_check.h"

static void
accept_header(void **st)
{
	(void)st;
	assert_true(pc_accept_has("application/json, text/event-stream", "application/json"));
	assert_true(pc_accept_has("application/json, text/event-stream", "text/event-stream"));
	assert_true(pc_accept_has("text/event-stream;q=0.9,Application/JSON", "application/json"));
	assert_false(pc_accept_has("application/jsonx", "application/json"));
	assert_false(pc_accept_has("text/html", "text/event-stream"));
	assert_false(pc_accept_has(NULL, "text/event-stream"));
	assert_false(pc_accept_has("", "application/json"));
}

static void
content_type(void **st)
{
	(void)st;
	assert_true(pc_content_type_json("application/json"));
	assert_true(pc_content_type_json("application/json; charset=utf-8"));
	assert_true(pc_content_type_json("Application/JSON"));
	assert_false(pc_content_type_json("application/json-patch+json"));
	assert_false(pc_content_type_json("text/plain"));
	assert_false(pc_content_type_json(NULL));
}

static void
host_and_origin(void **st)
{
	(void)st;
	assert_true(pc_host_is_loopback("localhost"));
	assert_true(pc_host_is_loopback("127.0.0.1:8080"));
	assert_true(pc_host_is_loopback("[::1]:8080"));
	/* IP literals (the admin listener takes them: no rebinding). */
	assert_true(pc_host_is_ip_literal("127.0.0.2"));
	assert_true(pc_host_is_ip_literal("127.0.0.2:9"));
	assert_true(pc_host_is_ip_literal("[::ffff:127.0.0.1]:8081"));
	assert_false(pc_host_is_ip_literal("evil.example"));
	assert_false(pc_host_is_ip_literal("evil.example:80"));
	assert_false(pc_host_is_ip_literal("127.0.0.1:evil"));
	assert_false(pc_host_is_ip_literal("[::1]x"));
	assert_false(pc_host_is_ip_literal("[::1"));
	assert_false(pc_host_is_ip_literal(":80"));
	assert_false(pc_host_is_ip_literal(NULL));
	assert_false(pc_host_is_loopback("localhost.evil.com"));
	assert_false(pc_host_is_loopback("evil.com"));
	assert_false(pc_host_is_loopback("127.0.0.1:80x"));
	assert_false(pc_host_is_loopback("127.0.0.1:123456"));
	assert_false(pc_host_is_loopback("127.0.0.1:"));
	assert_false(pc_host_is_loopback("127.0.0.10"));
	assert_true(pc_origin_is_loopback("http://localhost:3000"));
	assert_true(pc_origin_is_loopback("https://127.0.0.1"));
	assert_false(pc_origin_is_loopback("http://evil.com"));
	assert_false(pc_origin_is_loopback("http://localhost.evil.com"));
	assert_false(pc_origin_is_loopback("null"));
	assert_false(pc_origin_is_loopback("file://localhost"));
	assert_false(pc_origin_is_loopback("http://localhost/path"));
}

static void
header_decode(void **st)
{
	char *v;

	(void)st;
	v = pc_header_decode("tools/call");
	assert_string_equal(v, "tools/call");
	free(v);
	v = pc_header_decode("=?base64?dG9vbHMvY2FsbA==?=");
	assert_string_equal(v, "tools/call");
	free(v);
	v = pc_header_decode("=?base64?w6k=?=");	/* "é" */
	assert_string_equal(v, "\xc3\xa9");
	free(v);
	assert_null(pc_header_decode("=?base64?@@@@?="));
	assert_null(pc_header_decode("=?base64?AA==?="));	/* NUL inside */
	assert_null(pc_header_decode("=?base64?wK8=?="));	/* overlong '/' */
	assert_null(pc_header_decode("=?base64?7aCA?="));	/* surrogate */
	assert_null(pc_header_decode("bad\x01value"));
	assert_null(pc_header_decode("caf\xc3\xa9"));	/* raw non-ASCII */
	assert_null(pc_header_decode("=?base64?YW=j?="));	/* '=' then data */
	v = pc_header_decode("=?base64?YWI=?=");
	assert_string_equal(v, "ab");
	free(v);
}

static void
add_header(struct evkeyvalq *q, struct evkeyval *kv, const char *k,
    const char *v)
{
	kv->key = (char *)k;
	kv->value = (char *)v;
	TAILQ_INSERT_TAIL(q, kv, next);
}

static void
duplicate_headers(void **st)
{
	struct evkeyvalq q;
	struct evkeyval kv[4];

	(void)st;
	TAILQ_INIT(&q);
	add_header(&q, &kv[0], "Host", "127.0.0.1");
	add_header(&q, &kv[1], "Mcp-Name", "delete_all");
	add_header(&q, &kv[2], "X-Forwarded-For", "10.0.0.1");
	assert_null(pc_duplicate_header(&q));
	add_header(&q, &kv[3], "mcp-name", "read_file");	/* any case */
	assert_string_equal(pc_duplicate_header(&q), "Mcp-Name");
	TAILQ_REMOVE(&q, &kv[3], next);
	add_header(&q, &kv[3], "X-Forwarded-For", "10.0.0.2");	/* a list */
	assert_null(pc_duplicate_header(&q));
}

static struct pc_cidr
cidr(int fam, const char *addr, unsigned bits)
{
	struct pc_cidr c = { .family = fam, .bits = bits };

	assert_int_equal(inet_pton(fam, addr, c.addr), 1);
	return c;
}


static bool
xff_of(const char *const *v, size_t n, const struct pc_cidr *list, char *out,
    size_t outlen)
{
	return pc_forwarded_client(v, n, list, 2, out, outlen);
}
static void
proxies(void **st)
{
	struct pc_cidr list[2];
	char out[64];

	(void)st;
	list[0] = cidr(AF_INET, "10.0.0.0", 8);
	list[1] = cidr(AF_INET6, "fd00::", 8);
	assert_true(pc_addr_in(list, 2, "10.1.2.3"));
	assert_false(pc_addr_in(list, 2, "11.1.2.3"));
	assert_true(pc_addr_in(list, 2, "fd12::1"));
	assert_false(pc_addr_in(list, 2, "fe80::1"));
	assert_false(pc_addr_in(list, 2, "not-an-ip"));
	assert_false(pc_addr_in(list, 2, "010.1.2.3"));	/* no octal tricks */
	assert_true(pc_addr_is_loopback("127.0.0.1"));
	assert_true(pc_addr_is_loopback("127.9.9.9"));
	assert_true(pc_addr_is_loopback("::1"));
	assert_true(pc_addr_is_loopback("::ffff:127.0.0.1"));
	assert_false(pc_addr_is_loopback("::ffff:10.0.0.1"));
	assert_false(pc_addr_is_loopback("0.0.0.0"));

	/* The client is the rightmost address that is not one of ours: a
	 * client cannot pose as another by prepending to the header. */
#define XFF(...) xff_of((const char *[]){ __VA_ARGS__ }, \
	    sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *), \
	    list, out, sizeof(out))
	snprintf(out, sizeof(out), "peer");
	assert_true(XFF("6.6.6.6, 1.2.3.4, 10.0.0.7"));
	assert_string_equal(out, "1.2.3.4");
	assert_true(XFF("1.2.3.4"));
	assert_string_equal(out, "1.2.3.4");
	/* Several lines are one list: a proxy that adds its own line (not
	 * appending) puts the client it saw in the last one; the client's
	 * own first line must not win. */
	assert_true(XFF("10.9.9.9", "127.0.0.1, 203.0.113.5"));
	assert_string_equal(out, "203.0.113.5");
	assert_true(XFF("6.6.6.6", "5.5.5.5", "10.0.0.7"));
	assert_string_equal(out, "5.5.5.5");
	/* Garbage or only proxies: keep the peer address (out untouched). */
	snprintf(out, sizeof(out), "peer");
	assert_false(XFF("1.2.3.4, evil"));
	assert_false(XFF("1.2.3.4", "evil"));
	assert_false(XFF("10.0.0.1, 10.0.0.2"));
	assert_false(XFF(""));
	assert_false(XFF(", ,"));
	assert_false(xff_of(NULL, 0, list, out, sizeof(out)));
	assert_false(XFF(NULL));
#undef XFF
	assert_string_equal(out, "peer");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accept_header),
		cmocka_unit_test(content_type),
		cmocka_unit_test(host_and_origin),
		cmocka_unit_test(header_decode),
		cmocka_unit_test(duplicate_headers),
		cmocka_unit_test(proxies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
