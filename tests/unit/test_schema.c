/* Unit tests: src/validate (JSON Schema compile + validate, formats).
 * The conformance suite runs separately (tests/schema_suite.c); these are
 * the gateway's own properties: bounded cost, fail-closed budgets, error
 * paths, and no instance value in any error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "validate/schema.h"

#define SECRET "sk-live-51HZxSECRETvalue"

static struct pc_schema *
mk_lim(const char *text, const struct pc_schema_limits *lim)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	struct pc_schema *s = NULL;
	char err[256];
	int rc;

	assert_non_null(j);
	rc = pc_schema_compile(j, lim, NULL, NULL, &s, err, sizeof(err));
	if (rc != 0)
		fail_msg("compile: %d %s", rc, err);
	json_decref(j);
	return s;
}

static struct pc_schema *
mk(const char *text)
{
	return mk_lim(text, NULL);
}

static int
compile_rc(const char *text, char *err, size_t errlen)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	struct pc_schema *s = NULL;
	int rc;

	assert_non_null(j);
	rc = pc_schema_compile(j, NULL, NULL, NULL, &s, err, errlen);
	assert_true(rc != 0 || s != NULL);
	pc_schema_free(s);
	json_decref(j);
	return rc;
}

static int
check(const struct pc_schema *s, const char *inst,
    struct pc_schema_error *errs, unsigned *n)
{
	json_t *j = json_loads(inst, JSON_DECODE_ANY, NULL);
	int rc;

	assert_non_null(j);
	rc = pc_schema_validate(s, j, errs, n);
	json_decref(j);
	return rc;
}

static void
no_secret(const struct pc_schema_error *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_null(strstr(e[i].path, "SECRET"));
		assert_null(strstr(e[i].message, "SECRET"));
		assert_null(strstr(e[i].keyword, "SECRET"));
	}
}

static void
test_error_path(void **state)
{
	struct pc_schema *s = mk("{\"type\":\"object\",\"properties\":{\"args\":"
	    "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":"
	    "{\"name\":{\"type\":\"string\",\"maxLength\":3}},"
	    "\"required\":[\"name\"]}}}}");
	struct pc_schema_error e[16];
	unsigned n = 0;

	(void)state;
	assert_int_equal(check(s, "{\"args\":[{\"name\":\"abc\"}]}", e, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(check(s, "{\"args\":[{\"name\":\"ok\"},{\"name\":\""
	    SECRET "\"},{}]}", e, &n), PC_E_INVAL);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].path, "/args/1/name");
	assert_string_equal(e[0].keyword, "maxLength");
	assert_string_equal(e[1].path, "/args/2");
	assert_string_equal(e[1].keyword, "required");
	assert_non_null(strstr(e[1].message, "\"name\""));
	no_secret(e, n);
	/* errs may be NULL: only the verdict is wanted. */
	assert_int_equal(check(s, "{\"args\":[{}]}", NULL, NULL), PC_E_INVAL);
	pc_schema_free(s);
}

/* Every rule that can reject a string value must do so without quoting it. */
static void
test_secret_not_echoed(void **state)
{
	static const char *const schemas[] = {
	    "{\"type\":\"integer\"}", "{\"enum\":[\"a\",\"b\"]}",
	    "{\"const\":\"x\"}", "{\"pattern\":\"^[0-9]+$\"}",
	    "{\"maxLength\":4}", "{\"format\":\"email\"}",
	    "{\"format\":\"uri\"}", "{\"format\":\"uuid\"}",
	    "{\"format\":\"date-time\"}", "{\"format\":\"ipv4\"}",
	    "{\"not\":{\"type\":\"string\"}}", "{\"anyOf\":[{\"type\":\"null\"},"
	    "{\"maxLength\":1}]}", "{\"oneOf\":[{\"type\":\"string\"},"
	    "{\"minLength\":1}]}", "false",
	};
	struct pc_schema_error e[16];
	unsigned n;

	(void)state;
	for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
		struct pc_schema *s = mk(schemas[i]);
		n = 0;
		assert_int_equal(check(s, "\"" SECRET "\"", e, &n), PC_E_INVAL);
		assert_true(n >= 1);
		no_secret(e, n);
		pc_schema_free(s);
	}
	/* Inside an object: the path names the argument, not its value. */
	struct pc_schema *s = mk("{\"properties\":{\"token\":{\"pattern\":\"^x\"}},"
	    "\"additionalProperties\":false}");
	n = 0;
	assert_int_equal(check(s, "{\"token\":\"" SECRET "\"}", e, &n),
	    PC_E_INVAL);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].path, "/token");
	assert_string_equal(e[0].keyword, "pattern");
	no_secret(e, n);
	pc_schema_free(s);
}

static void
test_path_escape(void **state)
{
	struct pc_schema *s = mk("{\"additionalProperties\":false}");
	struct pc_schema_error e[4];
	unsigned n = 0;

	(void)state;
	assert_int_equal(check(s, "{\"a/b~c\":1}", e, &n), PC_E_INVAL);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].path, "/a~1b~0c");
	assert_string_equal(e[0].keyword, "additionalProperties");
	pc_schema_free(s);
}

/*
 * A schema applying `leaf` 2^levels times through a chain of $defs, each
 * an allOf of the next twice; compiled without the time budget, so that
 * the step budget alone is under test.
 */
static struct pc_schema *
doubling_chain(char *buf, size_t cap, int levels, const char *leaf)
{
	struct pc_schema_limits lim;
	size_t off = 0;

	off += (size_t)snprintf(buf + off, cap - off,
	    "{\"$ref\":\"#/$defs/d0\",\"$defs\":{");
	for (int i = 0; i < levels; i++)
		off += (size_t)snprintf(buf + off, cap - off,
		    "\"d%d\":{\"allOf\":[{\"$ref\":\"#/$defs/d%d\"},"
		    "{\"$ref\":\"#/$defs/d%d\"}]},", i, i + 1, i + 1);
	snprintf(buf + off, cap - off, "\"d%d\":%s}}", levels, leaf);
	pc_schema_limits_default(&lim);
	lim.max_time_ms = 0;
	return mk_lim(buf, &lim);
}

/* Catastrophic backtracking stops at the match limit: an error, no hang. */
static void
test_catastrophic_regex(void **state)
{
	struct pc_schema *s = mk("{\"pattern\":\"^(a+)+$\"}");
	struct pc_schema *neg = mk("{\"not\":{\"pattern\":\"^(a|a)*$\"}}");
	struct pc_schema_error e[4];
	char inst[128];
	unsigned n = 0;
	uint64_t t0 = pc_now_ms();

	(void)state;
	memset(inst, 'a', sizeof(inst));
	inst[0] = '"';
	inst[sizeof(inst) - 3] = '!';
	inst[sizeof(inst) - 2] = '"';
	inst[sizeof(inst) - 1] = '\0';
	assert_int_equal(check(s, inst, e, &n), PC_E_LIMIT);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].keyword, "limit");
	assert_non_null(strstr(e[0].message, "regex"));
	/* Under "not", an exhausted budget must not turn into a pass. */
	assert_int_equal(check(neg, inst, e, &n), PC_E_LIMIT);
	assert_true(pc_now_ms() - t0 < 2000);
	/* An ordinary match still works. */
	assert_int_equal(check(s, "\"aaaa\"", e, &n), 0);
	pc_schema_free(s);
	pc_schema_free(neg);
}

/*
 * Matches that each stay just under PCRE2's per-match limit, where a
 * failed match is no failure (contains): thousands of them used to
 * block the loop for seconds and then pass. The time budget stops them.
 */
static void
test_regex_time_budget(void **state)
{
	struct pc_schema *s = mk("{\"contains\":{\"pattern\":\"^(a+)+$\"}}");
	struct pc_schema_error e[4];
	json_t *arr = json_array();
	unsigned n = 0;

	(void)state;
	for (int i = 0; i < 4000; i++)
		json_array_append_new(arr, json_string("aaaaaaaaaaaaaaa!"));
	json_array_append_new(arr, json_string("aaa"));
	assert_int_equal(pc_schema_validate(s, arr, e, &n), PC_E_LIMIT);
	assert_string_equal(e[0].keyword, "limit");
	assert_non_null(strstr(e[0].message, "time"));
	json_decref(arr);
	pc_schema_free(s);
}

/*
 * A chain of allOf doubling 12 times ends in minLength: 4096 scans of a
 * 100 KB string were one step each. Bytes count now, so the step budget
 * stops it (deterministically: no clock involved).
 */
static void
test_string_bytes_count(void **state)
{
	char buf[4096];
	struct pc_schema *s;
	struct pc_schema_error e[4];
	json_t *big;
	char *txt = malloc(100001);
	unsigned n = 0;

	(void)state;
	assert_non_null(txt);
	s = doubling_chain(buf, sizeof(buf), 12, "{\"minLength\":1}");
	memset(txt, 'x', 100000);
	txt[100000] = '\0';
	big = json_string(txt);
	assert_int_equal(pc_schema_validate(s, big, e, &n), PC_E_LIMIT);
	assert_non_null(strstr(e[0].message, "step"));
	/* One scan of the same string is well within budget. */
	pc_schema_free(s);
	s = mk("{\"minLength\":1,\"pattern\":\"^x+$\"}");
	assert_int_equal(pc_schema_validate(s, big, NULL, NULL), 0);
	json_decref(big);
	free(txt);
	pc_schema_free(s);
}

/* An error path near the 256-byte buffer is cut with "/..." inside it
 * (it used to write past the end: UBSan caught index 257). */
static void
test_long_error_path(void **state)
{
	struct pc_schema *s = mk("{\"type\":\"object\",\"additionalProperties\":"
	    "{\"$ref\":\"#\"},\"properties\":{\"z\":false}}");
	struct pc_schema_error e[4];
	char key[249], inst[512];
	unsigned n = 0;

	(void)state;
	memset(key, 'a', 248);
	key[248] = '\0';
	snprintf(inst, sizeof(inst), "{\"%s\":{\"bbbbbbbbbb\":{\"x\":{\"y\":{},"
	    "\"z\":1}}}}", key);
	for (size_t len = 244; len <= 248; len++) {
		key[len] = '\0';
		snprintf(inst, sizeof(inst), "{\"%s\":{\"bbbbbbbbbb\":{\"x\":"
		    "{\"y\":{},\"z\":1}}}}", key);
		key[len] = 'a';
		assert_int_equal(check(s, inst, e, &n), PC_E_INVAL);
		assert_true(n >= 1);
		assert_true(strlen(e[0].path) < sizeof(e[0].path));
		assert_int_equal(e[0].path[0], '/');
	}
	pc_schema_free(s);
}

/* ECMA-262's '.' takes no line terminator (LF, CR, U+2028, U+2029);
 * PCRE2's took all but LF. A '.' in a class or escaped is a dot. */
static void
test_regex_dot(void **state)
{
	struct pc_schema *s = mk("{\"pattern\":\"^.*$\"}");
	struct pc_schema *lit = mk("{\"pattern\":\"^a[.]b\\\\.c$\"}");

	(void)state;
	assert_int_equal(check(s, "\"a b\"", NULL, NULL), 0);
	assert_int_equal(check(s, "\"a\\rb\"", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "\"a\\nb\"", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "\"a\\u2028b\"", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "\"a\\u2029b\"", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "\"a\\u000bb\"", NULL, NULL), 0);
	assert_int_equal(check(lit, "\"a.b.c\"", NULL, NULL), 0);
	assert_int_equal(check(lit, "\"axb.c\"", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(lit, "\"a.bxc\"", NULL, NULL), PC_E_INVAL);
	pc_schema_free(s);
	pc_schema_free(lit);
}

/* 2^40 evaluations through doubling $defs: the step budget cuts it. */
static void
test_schema_bomb_steps(void **state)
{
	char buf[8192];
	struct pc_schema *s;
	struct pc_schema_error e[4];
	unsigned n = 0;
	uint64_t t0 = pc_now_ms();

	(void)state;
	s = doubling_chain(buf, sizeof(buf), 40, "{\"type\":\"integer\"}");
	assert_int_equal(check(s, "1", e, &n), PC_E_LIMIT);
	assert_string_equal(e[0].keyword, "limit");
	assert_non_null(strstr(e[0].message, "step"));
	assert_true(pc_now_ms() - t0 < 5000);
	pc_schema_free(s);
}

/* uniqueItems over many large, nearly equal arrays: every pair compares
 * hundreds of items, so the budget must count items compared, not pairs
 * (1,400 arrays of 370 integers: a million pairs, 370 million
 * comparisons). */
static void
test_unique_items_cost(void **state)
{
	struct pc_schema *s = mk("{\"uniqueItems\":true}");
	json_t *arr = json_array();
	struct pc_schema_error e[4];
	unsigned n = 4;

	(void)state;
	for (int i = 0; i < 1400; i++) {
		json_t *a = json_array();
		for (int k = 0; k < 369; k++)
			json_array_append_new(a, json_integer(7));
		json_array_append_new(a, json_integer(i));
		json_array_append_new(arr, a);
	}
	assert_int_equal(pc_schema_validate(s, arr, e, &n), PC_E_LIMIT);
	assert_non_null(strstr(e[0].message, "step"));
	json_decref(arr);
	pc_schema_free(s);
}

/* $ref cycles that make no progress hit the depth budget. */
static void
test_ref_cycles(void **state)
{
	struct pc_schema *a = mk("{\"$ref\":\"#\"}");
	struct pc_schema *b = mk("{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":"
	    "{\"$ref\":\"#/$defs/b\"},\"b\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"}]}}}");
	/* A recursive schema that does progress is fine. */
	struct pc_schema *tree = mk("{\"type\":\"object\",\"properties\":{\"kids\":"
	    "{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}}}");

	(void)state;
	assert_int_equal(check(a, "{}", NULL, NULL), PC_E_LIMIT);
	assert_int_equal(check(b, "{}", NULL, NULL), PC_E_LIMIT);
	assert_int_equal(check(tree, "{\"kids\":[{\"kids\":[{}]},{}]}", NULL,
	    NULL), 0);
	assert_int_equal(check(tree, "{\"kids\":[{\"kids\":[1]}]}", NULL, NULL),
	    PC_E_INVAL);
	pc_schema_free(a);
	pc_schema_free(b);
	pc_schema_free(tree);
}

/* Nesting and size bombs are refused at compile time. */
static void
test_compile_limits(void **state)
{
	size_t depth = 1500, cap = depth * 12 + 64, off = 0;
	char *buf = malloc(cap), err[256];
	struct pc_schema_limits lim;
	json_t *j;
	struct pc_schema *s = NULL;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < depth; i++)
		off += (size_t)snprintf(buf + off, cap - off, "{\"not\":");
	off += (size_t)snprintf(buf + off, cap - off, "true");
	for (size_t i = 0; i < depth; i++)
		buf[off++] = '}';
	buf[off] = '\0';
	j = json_loads(buf, 0, NULL);
	assert_non_null(j);
	assert_int_equal(pc_schema_compile(j, NULL, NULL, NULL, &s, err,
	    sizeof(err)), PC_E_LIMIT);
	assert_null(s);
	json_decref(j);
	free(buf);

	pc_schema_limits_default(&lim);
	lim.max_schema_nodes = 3;
	j = json_loads("{\"allOf\":[{},{},{},{}]}", 0, NULL);
	assert_int_equal(pc_schema_compile(j, &lim, NULL, NULL, &s, err,
	    sizeof(err)), PC_E_LIMIT);
	assert_non_null(strstr(err, "too many"));
	json_decref(j);
}

static void
test_bad_schemas(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(compile_rc("{\"pattern\":\"(\"}", err, sizeof(err)),
	    PC_E_INVAL);
	assert_non_null(strstr(err, "/pattern"));
	assert_int_equal(compile_rc("{\"properties\":{\"a\":{\"minLength\":-1}}}",
	    err, sizeof(err)), PC_E_INVAL);
	assert_non_null(strstr(err, "schema /properties/a/minLength:"));
	/* A member's name is a JSON Pointer token: '~' and '/' escaped. */
	assert_int_equal(compile_rc("{\"properties\":{\"a/b~c\":{\"minLength\":"
	    "-1}}}", err, sizeof(err)), PC_E_INVAL);
	assert_non_null(strstr(err, "schema /properties/a~1b~0c/minLength:"));
	assert_int_equal(compile_rc("{\"type\":\"strin\"}", err, sizeof(err)),
	    PC_E_INVAL);
	assert_int_equal(compile_rc("{\"multipleOf\":0}", err, sizeof(err)),
	    PC_E_INVAL);
	assert_int_equal(compile_rc("{\"allOf\":[]}", err, sizeof(err)),
	    PC_E_INVAL);
	assert_int_equal(compile_rc("42", err, sizeof(err)), PC_E_INVAL);
	assert_int_equal(compile_rc("{\"$ref\":\"#/$defs/nope\"}", err,
	    sizeof(err)), PC_E_NOTFOUND);
}

static int resolver_calls;

static json_t *
resolver(void *arg, const char *uri)
{
	resolver_calls++;
	assert_string_equal(uri, "http://example.com/int.json");
	(void)arg;
	return json_loads("{\"type\":\"integer\"}", 0, NULL);
}

/* A network $ref is never fetched: refused without a hook, and with one
 * the hook (not the validator) decides. */
static void
test_remote_ref(void **state)
{
	json_t *j = json_loads("{\"properties\":{\"n\":{\"$ref\":"
	    "\"http://example.com/int.json#\"}}}", 0, NULL);
	struct pc_schema *s = NULL;
	char err[256];

	(void)state;
	assert_int_equal(pc_schema_compile(j, NULL, NULL, NULL, &s, err,
	    sizeof(err)), PC_E_NOTFOUND);
	assert_null(s);
	assert_int_equal(pc_schema_compile(j, NULL, resolver, NULL, &s, err,
	    sizeof(err)), 0);
	assert_int_equal(resolver_calls, 1);
	assert_int_equal(check(s, "{\"n\":3}", NULL, NULL), 0);
	assert_int_equal(check(s, "{\"n\":\"x\"}", NULL, NULL), PC_E_INVAL);
	pc_schema_free(s);
	json_decref(j);
}

/* The compiled schema is independent of the caller's document. */
static void
test_schema_copied(void **state)
{
	json_t *j = json_loads("{\"properties\":{\"a\":{\"enum\":[1,2]}}}", 0,
	    NULL);
	struct pc_schema *s = NULL;

	(void)state;
	assert_int_equal(pc_schema_compile(j, NULL, NULL, NULL, &s, NULL, 0), 0);
	json_object_clear(j);
	json_decref(j);
	assert_int_equal(check(s, "{\"a\":2}", NULL, NULL), 0);
	assert_int_equal(check(s, "{\"a\":3}", NULL, NULL), PC_E_INVAL);
	pc_schema_free(s);
	pc_schema_free(NULL);
}

static void
test_max_errors(void **state)
{
	struct pc_schema_limits lim;
	struct pc_schema *s;
	struct pc_schema_error e[3];
	unsigned n = 0;

	(void)state;
	pc_schema_limits_default(&lim);
	lim.max_errors = 3;
	s = mk_lim("{\"additionalProperties\":false}", &lim);
	assert_int_equal(pc_schema_max_errors(s), 3);
	assert_int_equal(check(s, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}", e,
	    &n), PC_E_INVAL);
	assert_int_equal(n, 3);
	pc_schema_free(s);
}

static void
test_numbers(void **state)
{
	struct pc_schema *m = mk("{\"multipleOf\":0.1}");
	struct pc_schema *u = mk("{\"uniqueItems\":true}");
	struct pc_schema *i = mk("{\"type\":\"integer\",\"maximum\":"
	    "9007199254740993}");
	struct pc_schema *big = mk("{\"multipleOf\":3}");

	(void)state;
	assert_int_equal(check(m, "0.3", NULL, NULL), 0);
	assert_int_equal(check(m, "7", NULL, NULL), 0);
	assert_int_equal(check(m, "0.35", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(u, "[1, 1.0]", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(u, "[{\"a\":1}, {\"a\":1.0}]", NULL, NULL),
	    PC_E_INVAL);
	assert_int_equal(check(u, "[1, true, \"1\", [1], {\"1\":1}]", NULL,
	    NULL), 0);
	assert_int_equal(check(i, "1.0", NULL, NULL), 0);
	/* Exact integer comparison past 2^53. */
	assert_int_equal(check(i, "9007199254740993", NULL, NULL), 0);
	assert_int_equal(check(i, "9007199254740994", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(big, "-9223372036854775806", NULL, NULL), 0);
	/* The quotient overflows to infinity: no multiple. */
	assert_int_equal(check(m, "1e308", NULL, NULL), PC_E_INVAL);
	/* A real past 2^53 is decided exactly, not taken as whole: 1e17 is
	 * 1 more than a multiple of 3, 3e17 is one. */
	assert_int_equal(check(big, "1e17", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(big, "3e17", NULL, NULL), 0);
	assert_int_equal(check(big, "7.5", NULL, NULL), PC_E_INVAL);
	pc_schema_free(m);
	pc_schema_free(u);
	pc_schema_free(i);
	pc_schema_free(big);
}

/* Large unique arrays: quadratic work is counted, so a huge one is a
 * budget error, not a stall. */
static void
test_unique_budget(void **state)
{
	struct pc_schema *u = mk("{\"uniqueItems\":true}");
	json_t *arr = json_array();
	uint64_t t0 = pc_now_ms();

	(void)state;
	for (int k = 0; k < 5000; k++)
		json_array_append_new(arr, json_integer(k));
	assert_int_equal(pc_schema_validate(u, arr, NULL, NULL), PC_E_LIMIT);
	assert_true(pc_now_ms() - t0 < 5000);
	json_decref(arr);
	pc_schema_free(u);
}

static void
test_draft7(void **state)
{
	struct pc_schema *s = mk("{\"$schema\":\"http://json-schema.org/draft-07/"
	    "schema#\",\"items\":[{\"type\":\"string\"}],\"additionalItems\":false,"
	    "\"dependencies\":{\"a\":[\"b\"]},\"definitions\":{\"n\":"
	    "{\"type\":\"null\"}},\"properties\":{\"x\":{\"$ref\":"
	    "\"#/definitions/n\",\"type\":\"string\"}}}");
	char err[256];

	(void)state;
	assert_int_equal(check(s, "[\"a\"]", NULL, NULL), 0);
	assert_int_equal(check(s, "[\"a\", 1]", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "{\"a\":1}", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "{\"a\":1,\"b\":2}", NULL, NULL), 0);
	/* draft-07: $ref wins over its siblings. */
	assert_int_equal(check(s, "{\"x\":null}", NULL, NULL), 0);
	pc_schema_free(s);
	/* In 2020-12 "items" must be a schema. */
	assert_int_equal(compile_rc("{\"items\":[{\"type\":\"string\"}]}",
	    err, sizeof(err)), PC_E_INVAL);
}

static void
test_formats(void **state)
{
	struct pc_schema_limits lim;
	struct pc_schema *on, *off;

	(void)state;
	assert_int_equal(pc_schema_format_check("date-time",
	    "2024-02-29T12:00:00.5Z", 22), 1);
	assert_int_equal(pc_schema_format_check("date-time",
	    "2023-02-29T12:00:00Z", 20), 0);
	assert_int_equal(pc_schema_format_check("email", "a.b@example.com", 15),
	    1);
	assert_int_equal(pc_schema_format_check("email", "a..b@example.com", 16),
	    0);
	assert_int_equal(pc_schema_format_check("uri", "https://x.org/a?b#c",
	    19), 1);
	assert_int_equal(pc_schema_format_check("uri", "/relative", 9), 0);
	assert_int_equal(pc_schema_format_check("uuid",
	    "2eb8aa08-aa98-11ea-b4aa-73b441d16380", 36), 1);
	assert_int_equal(pc_schema_format_check("ipv4", "192.168.0.1", 11), 1);
	assert_int_equal(pc_schema_format_check("ipv4", "192.168.0.01", 12), 0);
	assert_int_equal(pc_schema_format_check("ipv6", "::ffff:1.2.3.4", 14),
	    1);
	assert_int_equal(pc_schema_format_check("ipv6", "1::2::3", 7), 0);
	/* Length is honoured: a NUL inside is not a terminator. */
	assert_int_equal(pc_schema_format_check("ipv4", "1.2.3.4\0x", 9), 0);
	assert_int_equal(pc_schema_format_check("no-such-format", "x", 1), -1);

	pc_schema_limits_default(&lim);
	on = mk_lim("{\"format\":\"ipv4\"}", &lim);
	lim.assert_formats = 0;
	off = mk_lim("{\"format\":\"ipv4\"}", &lim);
	assert_int_equal(check(on, "\"300.1.1.1\"", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(off, "\"300.1.1.1\"", NULL, NULL), 0);
	assert_int_equal(check(on, "42", NULL, NULL), 0);
	pc_schema_free(on);
	pc_schema_free(off);
}

static void
test_anchor_and_id(void **state)
{
	struct pc_schema *s = mk("{\"$id\":\"https://ex.test/root.json\","
	    "\"properties\":{\"a\":{\"$ref\":\"#num\"},\"b\":{\"$ref\":"
	    "\"item.json\"}},\"$defs\":{\"n\":{\"$anchor\":\"num\","
	    "\"type\":\"number\"},\"i\":{\"$id\":\"item.json\",\"type\":"
	    "\"string\"}}}");

	(void)state;
	assert_int_equal(check(s, "{\"a\":1,\"b\":\"x\"}", NULL, NULL), 0);
	assert_int_equal(check(s, "{\"a\":\"1\"}", NULL, NULL), PC_E_INVAL);
	assert_int_equal(check(s, "{\"b\":1}", NULL, NULL), PC_E_INVAL);
	pc_schema_free(s);
}

/*
 * dependentRequired beside dependentSchemas: compiling the second used to
 * replace the first's table with an empty one, its count kept, so the
 * rules were skipped (or read past the end of the table).
 */
static void
test_dependent_both(void **state)
{
	struct pc_schema *s = mk("{\"dependentRequired\":{\"a\":[\"b\"],"
	    "\"c\":[\"d\"],\"e\":[\"f\"],\"g\":[\"h\"]},"
	    "\"dependentSchemas\":{\"x\":{\"required\":[\"y\"]}}}");
	struct pc_schema_error e[16];
	unsigned n = 0;

	(void)state;
	assert_int_equal(check(s, "{\"a\":1}", e, &n), PC_E_INVAL);
	assert_int_equal(check(s, "{\"g\":1}", e, &n), PC_E_INVAL);
	assert_int_equal(check(s, "{\"a\":1,\"b\":2}", e, &n), 0);
	assert_int_equal(check(s, "{\"x\":1}", e, &n), PC_E_INVAL);
	assert_int_equal(check(s, "{\"x\":1,\"y\":1}", e, &n), 0);
	pc_schema_free(s);
}

/*
 * An unanchored pattern: PCRE2's match limit restarts at every start
 * position of a search, so (a+)+$ over 64 KiB of short runs of a ran for
 * seconds inside one match, every position under the limit, and then
 * passed. A callout at each start position reads the time budget now.
 * Ordinary searches are unchanged: a quadratic but modest one passes,
 * a verb that moves the search on works, and a pattern whose
 * start-of-pattern options cannot be wrapped is refused.
 */
static void
test_regex_search_limit(void **state)
{
	struct pc_schema *s = mk("{\"pattern\":\"(a+)+$\"}");
	struct pc_schema *foo = mk("{\"pattern\":\"foo\"}");
	struct pc_schema *end = mk("{\"pattern\":\"x$\"}");
	struct pc_schema *mid = mk("{\"pattern\":\"b+c\"}");
	struct pc_schema_error e[16];
	size_t len = 65536;
	json_t *str;
	char *buf = malloc(len + 1);
	unsigned n = 0;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = i % 15 == 14 ? '!' : 'a';
	buf[len - 1] = '!';
	buf[len] = '\0';
	str = json_string(buf);
	assert_int_equal(pc_schema_validate(s, str, e, &n), PC_E_LIMIT);
	assert_string_equal(e[0].keyword, "limit");
	json_decref(str);
	/* A long subject with an ordinary pattern: searched to its end, no
	 * limit hit (the limit grows with the subject). */
	memset(buf, 'x', len);
	str = json_string(buf);
	assert_int_equal(pc_schema_validate(foo, str, e, &n), PC_E_INVAL);
	assert_string_equal(e[0].keyword, "pattern");
	assert_int_equal(pc_schema_validate(end, str, e, &n), 0);
	json_decref(str);
	/* Still a search, not a match at the start. */
	assert_int_equal(check(mid, "\"aaabbbcdd\"", e, &n), 0);
	assert_int_equal(check(mid, "\"aaabbbdd\"", e, &n), PC_E_INVAL);
	/* \w+\d over 500 bytes: about 125,000 steps in all, each start
	 * position well under the limit. */
	struct pc_schema *wd = mk("{\"pattern\":\"\\\\w+\\\\d\"}");
	memset(buf, 'a', 500);
	memcpy(buf + 500, "!b1", 4);
	str = json_string(buf);
	assert_int_equal(pc_schema_validate(wd, str, e, &n), 0);
	json_decref(str);
	pc_schema_free(wd);
	struct pc_schema *prune = mk("{\"pattern\":\"a(*PRUNE)b\"}");
	assert_int_equal(check(prune, "\"acab\"", e, &n), 0);
	pc_schema_free(prune);
	char err[128];
	assert_int_equal(compile_rc("{\"pattern\":\"(*LIMIT_MATCH=9)a\"}", err,
	    sizeof(err)), PC_E_INVAL);
	assert_non_null(strstr(err, "as a search"));
	free(buf);
	pc_schema_free(s);
	pc_schema_free(foo);
	pc_schema_free(end);
	pc_schema_free(mid);
}

/*
 * `required` with many names cost one step whatever its length: 100,000
 * names checked on each of 200 items ran 20 million lookups inside the
 * step budget. Each name is a step now. And `properties` with many names
 * is looked up by name, not compared with each.
 */
static void
test_required_and_properties_cost(void **state)
{
	json_t *names = json_array(), *sch, *props = json_object();
	json_t *items = json_array(), *obj = json_object();
	struct pc_schema *s = NULL;
	struct pc_schema_error e[16];
	char err[128], k[32];
	unsigned n = 0;

	(void)state;
	for (int i = 0; i < 100000; i++)
		json_array_append_new(names, json_string("a"));
	sch = json_pack("{s:{s:o}}", "items", "required", names);
	assert_int_equal(pc_schema_compile(sch, NULL, NULL, NULL, &s, err,
	    sizeof(err)), 0);
	for (int i = 0; i < 200; i++)
		json_array_append_new(items, json_pack("{s:i}", "a", 1));
	assert_int_equal(pc_schema_validate(s, items, e, &n), PC_E_LIMIT);
	assert_string_equal(e[0].keyword, "limit");
	pc_schema_free(s);
	json_decref(sch);
	json_decref(items);

	/* dependentRequired entries cost a lookup each, whatever the object
	 * holds: 100,000 of them on each of 200 items. */
	json_t *deps = json_object();
	for (int i = 0; i < 100000; i++) {
		snprintf(k, sizeof(k), "d%d", i);
		json_object_set_new(deps, k, json_array());
	}
	sch = json_pack("{s:{s:o}}", "items", "dependentRequired", deps);
	assert_int_equal(pc_schema_compile(sch, NULL, NULL, NULL, &s, err,
	    sizeof(err)), 0);
	items = json_array();
	for (int i = 0; i < 200; i++)
		json_array_append_new(items, json_pack("{s:i}", "a", 1));
	assert_int_equal(pc_schema_validate(s, items, e, &n), PC_E_LIMIT);
	pc_schema_free(s);
	json_decref(sch);
	json_decref(items);

	/* Many properties: found by name, whatever their order. */
	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(props, k, i == 4321 ?
		    json_pack("{s:s}", "type", "string") : json_true());
	}
	sch = json_pack("{s:o, s:b}", "properties", props,
	    "additionalProperties", 0);
	assert_int_equal(pc_schema_compile(sch, NULL, NULL, NULL, &s, err,
	    sizeof(err)), 0);
	json_object_set_new(obj, "k0", json_integer(1));
	json_object_set_new(obj, "k4999", json_integer(1));
	json_object_set_new(obj, "k4321", json_string("x"));
	assert_int_equal(pc_schema_validate(s, obj, e, &n), 0);
	json_object_set_new(obj, "k4321", json_integer(1));
	assert_int_equal(pc_schema_validate(s, obj, e, &n), PC_E_INVAL);
	assert_string_equal(e[0].keyword, "type");
	json_object_del(obj, "k4321");
	json_object_set_new(obj, "k5000", json_integer(1));
	assert_int_equal(pc_schema_validate(s, obj, e, &n), PC_E_INVAL);
	assert_string_equal(e[0].keyword, "additionalProperties");
	pc_schema_free(s);
	json_decref(sch);
	json_decref(obj);
}

/*
 * $ref pointers into an unknown keyword reach schemas the index does not
 * know; each reference used to compile its target anew, so a doubling
 * chain of 14 links made 2^14 copies (each running pcre2_compile again)
 * until the node limit refused the schema. Each target compiles once now.
 */
static void
test_ref_unindexed_shared(void **state)
{
	json_t *x = json_object(), *sch;
	struct pc_schema *s = NULL;
	struct pc_schema_error e[16];
	char err[128], k[16], r[32];
	unsigned n = 0;

	(void)state;
	for (int i = 0; i < 14; i++) {
		snprintf(k, sizeof(k), "a%d", i);
		snprintf(r, sizeof(r), "#/x/a%d", i + 1);
		json_object_set_new(x, k, json_pack("{s:[{s:s},{s:s}]}",
		    "allOf", "$ref", r, "$ref", r));
	}
	json_object_set_new(x, "a14", json_pack("{s:s}", "pattern", "^ab+c"));
	sch = json_pack("{s:s, s:o}", "$ref", "#/x/a0", "x", x);
	assert_int_equal(pc_schema_compile(sch, NULL, NULL, NULL, &s, err,
	    sizeof(err)), 0);
	assert_int_equal(check(s, "\"abbbc\"", e, &n), 0);
	assert_int_equal(check(s, "\"ac\"", e, &n), PC_E_INVAL);
	pc_schema_free(s);
	json_decref(sch);
}

/*
 * An integer against a real bound or divisor, exactly: in doubles
 * 9007199254740993 rounds to ...992, so it passed a maximum of
 * 9007199254740992.0 and a multipleOf of 2.0.
 */
static void
test_int_real_exact(void **state)
{
	struct pc_schema *mx = mk("{\"maximum\":9007199254740992.0}");
	struct pc_schema *m2 = mk("{\"multipleOf\":2.0}");
	struct pc_schema *xm = mk("{\"exclusiveMaximum\":1.5,"
	    "\"minimum\":-0.5}");
	struct pc_schema *big = mk("{\"maximum\":1e300,\"minimum\":-1e300}");
	struct pc_schema *c1 = mk("{\"const\":1}");
	struct pc_schema_error e[16];
	unsigned n = 0;

	(void)state;
	assert_int_equal(check(mx, "9007199254740993", e, &n), PC_E_INVAL);
	assert_int_equal(check(mx, "9007199254740992", e, &n), 0);
	assert_int_equal(check(m2, "9007199254740993", e, &n), PC_E_INVAL);
	assert_int_equal(check(m2, "9007199254740994", e, &n), 0);
	assert_int_equal(check(m2, "3.0", e, &n), PC_E_INVAL);
	assert_int_equal(check(xm, "1", e, &n), 0);
	assert_int_equal(check(xm, "0", e, &n), 0);
	assert_int_equal(check(xm, "2", e, &n), PC_E_INVAL);
	assert_int_equal(check(xm, "-1", e, &n), PC_E_INVAL);
	assert_int_equal(check(big, "9223372036854775807", e, &n), 0);
	assert_int_equal(check(big, "-9223372036854775807", e, &n), 0);
	assert_int_equal(check(c1, "1.0", e, &n), 0);
	assert_int_equal(check(c1, "1.5", e, &n), PC_E_INVAL);
	pc_schema_free(mx);
	pc_schema_free(m2);
	pc_schema_free(xm);
	pc_schema_free(big);
	pc_schema_free(c1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_path),
		cmocka_unit_test(test_secret_not_echoed),
		cmocka_unit_test(test_path_escape),
		cmocka_unit_test(test_catastrophic_regex),
		cmocka_unit_test(test_regex_time_budget),
		cmocka_unit_test(test_string_bytes_count),
		cmocka_unit_test(test_long_error_path),
		cmocka_unit_test(test_schema_bomb_steps),
		cmocka_unit_test(test_unique_items_cost),
		cmocka_unit_test(test_regex_dot),
		cmocka_unit_test(test_ref_cycles),
		cmocka_unit_test(test_compile_limits),
		cmocka_unit_test(test_bad_schemas),
		cmocka_unit_test(test_remote_ref),
		cmocka_unit_test(test_schema_copied),
		cmocka_unit_test(test_max_errors),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_unique_budget),
		cmocka_unit_test(test_draft7),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_anchor_and_id),
		cmocka_unit_test(test_dependent_both),
		cmocka_unit_test(test_regex_search_limit),
		cmocka_unit_test(test_required_and_properties_cost),
		cmocka_unit_test(test_ref_unindexed_shared),
		cmocka_unit_test(test_int_real_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
