/*
 * Compact JSON text of a jansson value, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes.
 *
 * Why not jansson's own dumper: every dump sets up a hash table to catch
 * reference cycles, and every object or array on the way formats its
 * address with snprintf and inserts it there; every token then goes
 * through a callback. For the small messages of the request path (a
 * tools/call to the upstream, its answer to the client, the arguments in
 * an audit record) that bookkeeping is most of the cost: 1.7 µs to dump a
 * 100-byte tools/call, against 0.2 µs here. The gateway never builds a
 * cycle, and a depth cap stops one anyway.
 *
 * jansson stays the reference: numbers with a fraction are formatted by
 * it (rare, and its round-trip rules are not worth repeating), and the
 * fuzz target (tests/fuzz/fuzz_json.c) and a unit test compare the two
 * outputs on every value they make.
 */
#include "json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Deeper than anything jansson parses (2048 levels, whatever our own
 * limits) or the gateway builds; reaching it means a cycle. A frame is
 * small: 4096 of them are well within the loop thread's stack. */
#define JW_MAX_DEPTH 4096

struct jw {
	char *buf;
	size_t size;	/* bytes of buf */
	size_t len;	/* bytes the text needs so far (may exceed size) */
};

static void
put(struct jw *w, const char *s, size_t n)
{
	if (w->len < w->size) {
		size_t room = w->size - w->len;

		memcpy(w->buf + w->len, s, n < room ? n : room);
	}
	w->len += n;
}

static void
put_c(struct jw *w, char c)
{
	if (w->len < w->size)
		w->buf[w->len] = c;
	w->len++;
}

/* A quoted string: '"' and '\\' escaped, control characters as \b \f \n \r
 * \t or \u00XX (upper-case hex), everything else as is. -1 on bad UTF-8. */
static int
put_str(struct jw *w, const char *str, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t run = 0, i = 0;

	put_c(w, '"');
	while (i < n) {
		unsigned char c = s[i];
		char esc[6] = { '\\', 0, '0', '0', 0, 0 };
		size_t elen = 2;

		if (c >= 0x80) {
			size_t k = pc_utf8_seq(s + i, n - i);

			if (k == 0)
				return -1;
			i += k;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		put(w, str + run, i - run);
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xF];
			elen = 6;
			break;
		}
		put(w, esc, elen);
		run = ++i;
	}
	put(w, str + run, n - run);
	put_c(w, '"');
	return 0;
}

static void
put_int(struct jw *w, json_int_t v)
{
	char d[24];
	size_t i = sizeof(d);
	/* Through unsigned: -INT64_MIN does not exist. */
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		d[--i] = '-';
	put(w, d + i, sizeof(d) - i);
}

static int
put_value(struct jw *w, const json_t *v, unsigned depth)
{
	if (v == NULL || depth > JW_MAX_DEPTH)
		return -1;
	switch (json_typeof(v)) {
	case JSON_NULL:
		put(w, "null", 4);
		return 0;
	case JSON_TRUE:
		put(w, "true", 4);
		return 0;
	case JSON_FALSE:
		put(w, "false", 5);
		return 0;
	case JSON_INTEGER:
		put_int(w, json_integer_value(v));
		return 0;
	case JSON_REAL: {
		char d[64];
		size_t n = json_dumpb(v, d, sizeof(d),
		    JSON_COMPACT | JSON_ENCODE_ANY);

		if (n == 0 || n > sizeof(d))
			return -1;
		put(w, d, n);
		return 0;
	}
	case JSON_STRING:
		return put_str(w, json_string_value(v), json_string_length(v));
	case JSON_ARRAY: {
		size_t n = json_array_size(v);

		put_c(w, '[');
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				put_c(w, ',');
			if (put_value(w, json_array_get(v, i), depth + 1) != 0)
				return -1;
		}
		put_c(w, ']');
		return 0;
	}
	case JSON_OBJECT: {
		bool first = true;

		put_c(w, '{');
		/* Insertion order, as jansson writes without JSON_SORT_KEYS. */
		for (void *it = json_object_iter((json_t *)v); it != NULL;
		    it = json_object_iter_next((json_t *)v, it)) {
			if (!first)
				put_c(w, ',');
			first = false;
			if (put_str(w, json_object_iter_key(it),
			    json_object_iter_key_len(it)) != 0)
				return -1;
			put_c(w, ':');
			if (put_value(w, json_object_iter_value(it),
			    depth + 1) != 0)
				return -1;
		}
		put_c(w, '}');
		return 0;
	}
	}
	return -1;
}

size_t
pc_json_dumpb(const json_t *v, char *buf, size_t size)
{
	struct jw w = { buf, size, 0 };

	if (put_value(&w, v, 0) != 0)
		return 0;
	return w.len;
}

char *
pc_json_dump(const json_t *v)
{
	char first[1024];
	size_t n = pc_json_dumpb(v, first, sizeof(first));
	char *s;

	if (n == 0 || n == SIZE_MAX || (s = malloc(n + 1)) == NULL)
		return NULL;
	if (n <= sizeof(first))
		memcpy(s, first, n);
	else if (pc_json_dumpb(v, s, n) != n) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	return s;
}
