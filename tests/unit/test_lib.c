/* Unit tests: src/lib (JSON hygiene, map, util). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/event.h>

#include "lib/errors.h"
#include "lib/json.h"
#include "lib/map.h"
#include "lib/resolve.h"
#include "lib/util.h"

static int
parse(const char *s, size_t len, size_t depth, size_t maxstr,
    enum pc_json_fault *fault)
{
	struct pc_json_limits lim = { depth, maxstr, 0, 0 };
	char why[128];
	json_t *v = NULL;
	int rc = pc_json_parse(s, len, &lim, &v, fault, why, sizeof(why));

	json_decref(v);
	return rc;
}

/* What jansson refuses though JSON allows it becomes \ufffd in place;
 * everything else (pairs, escaped backslashes, text outside strings,
 * cut escapes) is left alone. */
static void
json_replace_bad_escapes(void **st)
{
	static const struct { const char *in, *out; size_t n; } t[] = {
		{ "{\"a\":\"x\\u0000y\"}", "{\"a\":\"x\\ufffdy\"}", 1 },
		{ "[\"\\udcff\",\"\\uD800x\"]", "[\"\\ufffd\",\"\\ufffdx\"]", 2 },
		{ "\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"", 0 },
		{ "\"\\ude00\\ud83d\"", "\"\\ufffd\\ufffd\"", 2 },
		{ "\"\\\\u0000\"", "\"\\\\u0000\"", 0 },
		{ "{\"k\\u0000\":1}", "{\"k\\ufffd\":1}", 1 },
		{ "\"\\u00\"", "\"\\u00\"", 0 },
		{ "\"a\\\"\\u0000\"", "\"a\\\"\\ufffd\"", 1 },
	};
	enum pc_json_fault f;
	struct pc_json_limits lim = { 8, 100, 0, 0 };
	char buf[64], why[128];
	json_t *v = NULL;

	(void)st;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = strlen(t[i].in);
		memcpy(buf, t[i].in, len + 1);
		assert_int_equal(pc_json_replace_bad_escapes(buf, len), t[i].n);
		assert_string_equal(buf, t[i].out);
	}
	/* Refused before, parsed after. */
	memcpy(buf, "{\"a\":\"\\u0000\\udcff\"}", 21);
	assert_int_not_equal(pc_json_parse(buf, 20, &lim, &v, &f, why,
	    sizeof(why)), 0);
	assert_int_equal(pc_json_replace_bad_escapes(buf, 20), 2);
	assert_int_equal(pc_json_parse(buf, 20, &lim, &v, &f, why,
	    sizeof(why)), 0);
	assert_string_equal(json_string_value(json_object_get(v, "a")),
	    "\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(v);
}

/* Arrays longer than max_items are refused, at any depth; commas inside
 * strings do not count; exactly max_items passes. */
static void
json_array_cap(void **st)
{
	struct pc_json_limits lim = { 8, 100, 3, 0 };
	enum pc_json_fault f;
	char why[128];
	json_t *v = NULL;
	const char *ok[] = { "[1,2,3]", "{\"a\":[1,2,3],\"b\":[4,5,6]}",
	    "[\"a,b,c,d,e\"]", "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}" };
	const char *bad[] = { "[1,2,3,4]", "{\"x\":{\"y\":[[],[],[],[]]}}",
	    "[[1,2,3,4]]" };

	(void)st;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(pc_json_parse(ok[i], strlen(ok[i]), &lim, &v,
		    &f, why, sizeof(why)), 0);
		json_decref(v);
		v = NULL;
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pc_json_parse(bad[i], strlen(bad[i]), &lim, &v,
		    &f, why, sizeof(why)), PC_E_LIMIT);
		assert_null(v);
		assert_int_equal(f, PC_JSON_ITEMS);
		assert_string_equal(why, "array longer than 3 elements");
	}
}

static void
json_accepts_valid(void **st)
{
	enum pc_json_fault f;
	const char *s = "{\"jsonrpc\":\"2.0\",\"id\":1,\"params\":{\"a\":[1,2,{\"b\":\"c\"}]}}";

	(void)st;
	assert_int_equal(parse(s, strlen(s), 8, 100, &f), 0);
	assert_int_equal(f, PC_JSON_OK);
}

static void
json_rejects_duplicates_nul_utf8(void **st)
{
	enum pc_json_fault f;
	static const char raw_nul[] = "{\"a\":\"x\0y\"}";

	(void)st;
	assert_int_equal(parse("{\"a\":1,\"a\":2}", 13, 8, 100, &f), PC_E_PARSE);
	assert_int_equal(f, PC_JSON_SYNTAX);
	assert_int_equal(parse(raw_nul, sizeof(raw_nul) - 1, 8, 100, &f), PC_E_PARSE);
	assert_int_equal(parse("\"\\u0000\"", 8, 8, 100, &f), PC_E_PARSE);
	assert_int_equal(parse("\"\xc0\xaf\"", 4, 8, 100, &f), PC_E_PARSE);
	assert_int_equal(parse("\"\xed\xa0\x80\"", 5, 8, 100, &f), PC_E_PARSE);
	assert_int_equal(parse("{", 1, 8, 100, &f), PC_E_PARSE);
}

static void
json_depth_limit_before_parse(void **st)
{
	enum pc_json_fault f;
	char deep[2048];

	(void)st;
	memset(deep, '[', 1000);
	memset(deep + 1000, ']', 1000);
	assert_int_equal(parse(deep, 2000, 64, 100, &f), PC_E_LIMIT);
	assert_int_equal(f, PC_JSON_DEPTH);
	/* Exactly at the limit is fine; brackets inside strings do not count. */
	assert_int_equal(parse("[[[1]]]", 7, 3, 100, &f), 0);
	assert_int_equal(parse("[[[[1]]]]", 9, 3, 100, &f), PC_E_LIMIT);
	assert_int_equal(parse("[\"[[[[[[\"]", 10, 1, 100, &f), 0);
	assert_int_equal(parse("[\"\\\"[[[[\"]", 10, 1, 100, &f), 0);
}

static void
json_string_limit(void **st)
{
	enum pc_json_fault f;

	(void)st;
	assert_int_equal(parse("{\"k\":\"12345\"}", 13, 8, 5, &f), 0);
	assert_int_equal(parse("{\"k\":\"123456\"}", 14, 8, 5, &f), PC_E_LIMIT);
	assert_int_equal(f, PC_JSON_STRING);
	/* Keys count too. */
	assert_int_equal(parse("{\"123456\":1}", 12, 8, 5, &f), PC_E_LIMIT);
	/* Nested in arrays. */
	assert_int_equal(parse("[[[\"123456\"]]]", 14, 8, 5, &f), PC_E_LIMIT);
}

static void
map_basics(void **st)
{
	struct pc_map *m = pc_map_new();
	char k[32];
	size_t pos = 0, seen = 0;
	const char *key;
	void *val;

	(void)st;
	assert_non_null(m);
	for (uintptr_t i = 1; i <= 5000; i++) {
		snprintf(k, sizeof(k), "k%lu", (unsigned long)i);
		assert_int_equal(pc_map_put(m, k, (void *)i), 0);
	}
	assert_int_equal(pc_map_count(m), 5000);
	assert_ptr_equal(pc_map_get(m, "k4321"), (void *)4321);
	for (uintptr_t i = 1; i <= 5000; i += 2) {
		snprintf(k, sizeof(k), "k%lu", (unsigned long)i);
		assert_ptr_equal(pc_map_del(m, k), (void *)i);
	}
	assert_null(pc_map_get(m, "k1"));
	assert_ptr_equal(pc_map_get(m, "k2"), (void *)2);
	while (pc_map_next(m, &pos, &key, &val)) {
		assert_int_equal((uintptr_t)val % 2, 0);
		pc_map_del(m, key);	/* deleting while iterating is allowed */
		seen++;
	}
	assert_int_equal(seen, 2500);
	assert_int_equal(pc_map_count(m), 0);
	assert_int_equal(pc_map_put(m, "again", (void *)7), 0);
	assert_ptr_equal(pc_map_get(m, "again"), (void *)7);
	pc_map_free(m);
	pc_map_free(NULL);
}

static void
util_random_and_parse(void **st)
{
	char a[65], b[65];
	uint64_t v;

	(void)st;
	assert_int_equal(pc_random_hex(a, sizeof(a), 32), 0);
	assert_int_equal(pc_random_hex(b, sizeof(b), 32), 0);
	assert_int_equal(strlen(a), 64);
	assert_string_not_equal(a, b);
	assert_int_equal(pc_random_hex(a, 10, 32), PC_E_INVAL);
	assert_int_equal(pc_parse_u64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(pc_parse_u64("-1", 0, 100, &v), PC_E_INVAL);
	assert_int_equal(pc_parse_u64("101", 0, 100, &v), PC_E_INVAL);
	assert_int_equal(pc_parse_u64("12x", 0, 100, &v), PC_E_INVAL);
	assert_int_equal(pc_parse_u64("", 0, 100, &v), PC_E_INVAL);
	assert_true(pc_ct_equal("abc", "abc", 3));
	assert_false(pc_ct_equal("abc", "abd", 3));
}

static void
util_read_and_b64url(void **st)
{
	char path[] = "/tmp/pc-test-lib-XXXXXX";
	int fd = mkstemp(path);
	char *buf = NULL;
	size_t len = 0;

	(void)st;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(pc_read_fd_bounded(fd, 10, &buf, &len), 0);
	assert_int_equal(len, 10);
	assert_string_equal(buf, "0123456789");
	free(buf);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(pc_read_fd_bounded(fd, 9, &buf, &len), PC_E_LIMIT);
	assert_null(buf);
	close(fd);
	unlink(path);
	assert_int_equal(pc_b64url_val('A'), 0);
	assert_int_equal(pc_b64url_val('z'), 51);
	assert_int_equal(pc_b64url_val('9'), 61);
	assert_int_equal(pc_b64url_val('-'), 62);
	assert_int_equal(pc_b64url_val('_'), 63);
	assert_int_equal(pc_b64url_val('+'), -1);
	assert_int_equal(pc_b64url_val('/'), -1);
	assert_int_equal(pc_b64url_val('='), -1);
}

/* Request ids: 32 lowercase hex digits, all different, across more than
 * one refill of the pool, and no fixed part (a counter or a pid would
 * leave the same leading or trailing digits in neighbouring ids). */
static void
request_ids(void **state)
{
	enum { N = 1000 };
	static char ids[N][PC_REQUEST_ID_LEN + 1];
	size_t same_head = 0, same_tail = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		pc_request_id_new(ids[i]);
		assert_int_equal(strlen(ids[i]), PC_REQUEST_ID_LEN);
		assert_int_equal(strspn(ids[i], "0123456789abcdef"),
		    PC_REQUEST_ID_LEN);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
		if (i > 0 && memcmp(ids[i], ids[i - 1], 8) == 0)
			same_head++;
		if (i > 0 && memcmp(ids[i] + 24, ids[i - 1] + 24, 8) == 0)
			same_tail++;
	}
	assert_true(same_head == 0 && same_tail == 0);
}

/* The writer's text is jansson's, byte for byte. */
static void
writer_same(const json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char *got = pc_json_dump(v);
	char small[7];
	size_t n = pc_json_dumpb(v, small, sizeof(small));

	assert_non_null(want);
	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(small, want, n < sizeof(small) ? n : sizeof(small));
	free(want);
	free(got);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t
rng(void)
{
	/* xorshift64*: reproducible, no libc state. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Du;
}

/* A string of n code points from every class the writer treats apart:
 * control characters, '"', '\\', '/', DEL, ASCII, 2-, 3- and 4-byte UTF-8
 * (U+2028 and U+FFFF among them), and NUL. */
static json_t *
random_string(void)
{
	static const char *const pieces[] = {
		"\x01", "\x1f", "\b", "\f", "\n", "\r", "\t", "\"", "\\", "/",
		"\x7f", "a", "Z", " ", "\xc3\xa9", "\xdf\xbf", "\xe2\x80\xa8",
		"\xef\xbf\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
	};
	char buf[128];
	size_t len = 0, n = rng() % 12;

	for (size_t i = 0; i < n; i++) {
		if (rng() % 16 == 0) {
			buf[len++] = '\0';
			continue;
		}
		const char *p = pieces[rng() % (sizeof(pieces) /
		    sizeof(pieces[0]))];
		memcpy(buf + len, p, strlen(p));
		len += strlen(p);
	}
	return json_stringn(buf, len);
}

static json_t *
random_value(int depth)
{
	static const double reals[] = { 0.1, -0.0, 1e300, 5e-324, 1.5e10,
	    -123.456, 1e21, 2.5, 1e-7, 123456789012345678.0 };
	static const json_int_t ints[] = { 0, -1, 1, 9, 10, -10, INT64_MAX,
	    INT64_MIN, INT64_MIN + 1, 1000000007 };
	unsigned kind = (unsigned)(rng() % (depth > 4 ? 6 : 8));

	switch (kind) {
	case 0: return json_null();
	case 1: return rng() % 2 ? json_true() : json_false();
	case 2: return json_integer(rng() % 2 ? ints[rng() % 10] :
	    (json_int_t)rng());
	case 3: return json_real(reals[rng() % 10]);
	case 4:
	case 5: return random_string();
	case 6: {
		json_t *a = json_array();
		size_t n = rng() % 5;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, random_value(depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		size_t n = rng() % 5;

		for (size_t i = 0; i < n; i++) {
			json_t *k = random_string();

			json_object_setn_new(o, json_string_value(k),
			    json_string_length(k), random_value(depth + 1));
			json_decref(k);
		}
		return o;
	}
	}
}

static void
json_writer_matches_jansson(void **state)
{
	(void)state;
	for (int i = 0; i < 20000; i++) {
		json_t *v = random_value(0);

		assert_non_null(v);
		writer_same(v);
		json_decref(v);
	}
	/* Long text: past the first buffer of pc_json_dump. */
	json_t *a = json_array();
	for (int i = 0; i < 500; i++)
		json_array_append_new(a, json_string("0123456789\n\"\xe2\x82\xac"));
	writer_same(a);
	json_decref(a);
}

/* A string that is not UTF-8 (made without jansson's check) is refused
 * as jansson refuses it; as a key too, where jansson 2.14 writes a broken
 * key instead (it ignores that error): never our text. NULL and a cycle
 * are refused. */
static void
json_writer_refuses(void **state)
{
	static const char *const bad[] = { "\xc0\xaf", "\xed\xa0\x80",
	    "\xf4\x90\x80\x80", "\xe2\x82", "\x80", "\xf8\x88\x80\x80\x80" };
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *s = json_string_nocheck(bad[i]);
		json_t *o = json_object();

		json_object_set_nocheck(o, bad[i], json_true());
		assert_null(json_dumps(s, JSON_ENCODE_ANY));
		assert_null(pc_json_dump(s));
		assert_int_equal(pc_json_dumpb(o, buf, sizeof(buf)), 0);
		json_decref(s);
		json_decref(o);
	}
	assert_null(pc_json_dump(NULL));
	json_t *loop = json_array();
	json_t *inner = json_array();
	json_array_append(loop, inner);
	json_array_append(inner, loop);		/* a cycle */
	assert_null(pc_json_dump(loop));
	json_array_clear(inner);		/* break it to free */
	json_decref(inner);
	json_decref(loop);
}

/* pc_json_weight: close to the serialized size, and it stops at cap. */
static void
json_weight(void **st)
{
	json_t *v = json_pack("{s:s, s:[i, s, {s:b}]}", "name", "abcdef",
	    "list", 1, "xyz", "k", 1);
	char *text = json_dumps(v, JSON_COMPACT);
	size_t w = pc_json_weight(v, 1 << 20);

	(void)st;
	assert_true(w >= strlen(text) && w <= 3 * strlen(text));
	assert_true(pc_json_weight(v, 10) > 10);
	assert_int_equal(pc_json_weight(NULL, 10), 0);
	free(text);
	json_decref(v);
}

/* --- resolver ------------------------------------------------------------ */

struct lookup_seen {
	int calls, gai, loopback;
	struct event_base *base;
};

static void
lookup_done(void *arg, int gai, const struct addrinfo *res)
{
	struct lookup_seen *w = arg;

	w->calls++;
	w->gai = gai;
	for (; res != NULL; res = res->ai_next) {
		if (res->ai_family == AF_INET) {
			const struct sockaddr_in *sa = (const void *)res->ai_addr;

			if (ntohl(sa->sin_addr.s_addr) == 0x7f000001u)
				w->loopback = 1;
		}
	}
	event_base_loopbreak(w->base);
}

static void
never_called(void *arg, int gai, const struct addrinfo *res)
{
	(void)gai;
	(void)res;
	((struct lookup_seen *)arg)->calls++;
}

/* Lookups answer on the loop, never from inside pc_resolve(); a cancelled
 * one never calls back; freeing with lookups pending leaks nothing
 * (ASan). */
static void
resolver_lookups(void **st)
{
	struct event_base *base = event_base_new();
	struct pc_resolver *r;
	struct pc_lookup *l, *gone;
	struct lookup_seen w = { .base = base }, x = { .base = base };
	char longname[PC_RESOLVE_HOST_MAX + 1];

	(void)st;
	assert_non_null(base);
	assert_int_equal(pc_resolver_new(base, &r), 0);
	assert_int_equal(pc_resolve(r, "127.0.0.1", AI_NUMERICHOST,
	    lookup_done, &w, &l), 0);
	assert_non_null(l);
	assert_int_equal(pc_resolve(r, "localhost", 0, never_called, &x,
	    &gone), 0);
	pc_lookup_cancel(gone);
	assert_int_equal(w.calls, 0);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.gai, 0);
	assert_int_equal(w.loopback, 1);

	/* A name through the real resolver (/etc/hosts). */
	memset(&w, 0, sizeof(w));
	w.base = base;
	assert_int_equal(pc_resolve(r, "localhost", 0, lookup_done, &w, &l),
	    0);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.gai, 0);
	assert_int_equal(x.calls, 0);

	/* Bad names are refused at once. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(pc_resolve(r, "", 0, lookup_done, &w, &l),
	    PC_E_INVAL);
	assert_int_equal(pc_resolve(r, longname, 0, lookup_done, &w, &l),
	    PC_E_INVAL);

	/* Pending at free: dropped, no callback, no leak. */
	for (int i = 0; i < 8; i++)
		assert_int_equal(pc_resolve(r, "localhost", 0, never_called,
		    &x, &l), 0);
	pc_resolver_free(r);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	assert_int_equal(x.calls, 0);
	/* Workers still finishing their lookup exit on their own. */
	usleep(200 * 1000);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_accepts_valid),
		cmocka_unit_test(json_array_cap),
		cmocka_unit_test(json_replace_bad_escapes),
		cmocka_unit_test(json_rejects_duplicates_nul_utf8),
		cmocka_unit_test(json_depth_limit_before_parse),
		cmocka_unit_test(json_string_limit),
		cmocka_unit_test(json_writer_matches_jansson),
		cmocka_unit_test(json_writer_refuses),
		cmocka_unit_test(map_basics),
		cmocka_unit_test(util_random_and_parse),
		cmocka_unit_test(util_read_and_b64url),
		cmocka_unit_test(request_ids),
		cmocka_unit_test(resolver_lookups),
		cmocka_unit_test(json_weight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
