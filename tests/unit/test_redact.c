/* Unit tests: src/secrets/redact.c (redaction by key, schema and value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "secrets/redact.h"

#define CANARY "CANARY-7f3a9c1e5b2d"

static struct pc_redactor *
mk(void)
{
	struct pc_redactor *r = NULL;

	assert_int_equal(pc_redactor_new(&r), 0);
	assert_non_null(r);
	return r;
}

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &e);

	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", e.text, s);
	return v;
}

/* Redact text under schema and return the compact dump (caller frees). */
static char *
redact_dump(struct pc_redactor *r, const char *text, const char *schema,
    int want_rc)
{
	const size_t fl = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
	json_t *v = parse(text), *s = schema ? parse(schema) : NULL;
	char *before, *after, *out;
	int needed;

	/* Every case also checks the dry run: it changes nothing, and it
	 * says "needed" exactly when redaction then changes something (an
	 * input already holding the marker may be redacted to itself). */
	before = json_dumps(v, fl);
	needed = pc_redact_json_needed(r, v, s);
	after = json_dumps(v, fl);
	assert_non_null(before);
	assert_non_null(after);
	assert_string_equal(before, after);
	assert_true(needed == 0 || needed == 1);
	assert_int_equal(pc_redact_json(r, v, s), want_rc);
	out = json_dumps(v, fl);
	assert_non_null(out);
	if (strcmp(before, out) != 0)
		assert_int_equal(needed, 1);
	else if (strstr(before, PC_REDACTED) == NULL)
		assert_int_equal(needed, 0);
	free(before);
	free(after);
	json_decref(v);
	json_decref(s);
	return out;
}

static void
expect_json(struct pc_redactor *r, const char *in, const char *schema,
    const char *want)
{
	char *got = redact_dump(r, in, schema, 0);

	assert_string_equal(got, want);
	assert_null(strstr(got, CANARY));
	free(got);
}

static void
expect_text(struct pc_redactor *r, const char *in, const char *want)
{
	char *got = pc_redact_text(r, in, strlen(in));

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void
test_sensitive_keys(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	expect_json(r, "{\"api_key\":\"" CANARY "\",\"name\":\"x\"}", NULL,
	    "{\"api_key\":\"<redacted>\",\"name\":\"x\"}");
	expect_json(r, "{\"API-Key\":\"" CANARY "\",\"apiKey\":\"" CANARY
	    "\",\"X-Api-Key\":\"" CANARY "\",\"client_secret\":\"" CANARY
	    "\",\"db_password\":\"" CANARY "\",\"Authorization\":\"" CANARY
	    "\",\"refresh_token\":\"" CANARY "\",\"Set-Cookie\":\"" CANARY
	    "\",\"credentials\":\"" CANARY "\"}", NULL,
	    "{\"API-Key\":\"<redacted>\",\"Authorization\":\"<redacted>\","
	    "\"Set-Cookie\":\"<redacted>\",\"X-Api-Key\":\"<redacted>\","
	    "\"apiKey\":\"<redacted>\",\"client_secret\":\"<redacted>\","
	    "\"credentials\":\"<redacted>\",\"db_password\":\"<redacted>\","
	    "\"refresh_token\":\"<redacted>\"}");
	/* Nested, and arrays of objects. */
	expect_json(r, "{\"a\":{\"b\":[{\"token\":\"" CANARY "\",\"n\":1},"
	    "{\"Secret\":\"" CANARY "\"}]}}", NULL,
	    "{\"a\":{\"b\":[{\"n\":1,\"token\":\"<redacted>\"},"
	    "{\"Secret\":\"<redacted>\"}]}}");
	/* Non-string values under a sensitive key go whole. */
	expect_json(r, "{\"password\":12345678,\"secret\":{\"k\":\"" CANARY
	    "\"},\"token\":[\"" CANARY "\"],\"passwd\":null}", NULL,
	    "{\"passwd\":\"<redacted>\",\"password\":\"<redacted>\","
	    "\"secret\":\"<redacted>\",\"token\":\"<redacted>\"}");
	pc_redactor_free(r);
}

static void
test_no_false_redaction(void **state)
{
	struct pc_redactor *r = mk();
	const char *in = "{\"name\":\"Bob\",\"path\":\"/tmp/x\",\"text\":"
	    "\"please use a token and a password\",\"max_tokens\":256,"
	    "\"author\":\"a\",\"passage\":\"p\",\"keys\":[1,2],"
	    "\"auth\":\"Bearer tokens\",\"signature\":\"s\"}";
	char *got;

	(void)state;
	got = redact_dump(r, in, NULL, 0);
	{
		json_t *a = parse(in);
		char *want = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
		assert_string_equal(got, want);
		free(want);
		json_decref(a);
	}
	free(got);
	pc_redactor_free(r);
}

static void
test_configured_key(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	expect_json(r, "{\"ssn\":\"123\",\"Pin-Code\":\"9\"}", NULL,
	    "{\"Pin-Code\":\"9\",\"ssn\":\"123\"}");
	assert_int_equal(pc_redactor_add_key(r, "SSN"), 0);
	assert_int_equal(pc_redactor_add_key(r, "pin_code"), 0);
	assert_int_equal(pc_redactor_add_key(r, ""), PC_E_INVAL);
	assert_int_equal(pc_redactor_add_key(r, "-_"), PC_E_INVAL);
	expect_json(r, "{\"ssn\":\"123\",\"Pin-Code\":\"9\"}", NULL,
	    "{\"Pin-Code\":\"<redacted>\",\"ssn\":\"<redacted>\"}");
	pc_redactor_free(r);
}

static void
test_schema(void **state)
{
	struct pc_redactor *r = mk();
	const char *schema =
	    "{\"type\":\"object\",\"properties\":{"
	    "\"user\":{\"type\":\"string\"},"
	    "\"pw\":{\"type\":\"string\",\"format\":\"password\"},"
	    "\"blob\":{\"writeOnly\":true},"
	    "\"conn\":{\"type\":\"object\",\"properties\":{"
	    "  \"host\":{\"type\":\"string\"},"
	    "  \"dsn\":{\"type\":\"string\",\"writeOnly\":true}}},"
	    "\"list\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/cred\"}},"
	    "\"mixed\":{\"allOf\":[{\"type\":\"string\"},{\"writeOnly\":true}]}"
	    "},\"$defs\":{\"cred\":{\"type\":\"object\",\"properties\":{"
	    "  \"id\":{\"type\":\"string\"},"
	    "  \"v\":{\"$ref\":\"#/$defs/pw\"}}},"
	    "\"pw\":{\"type\":\"string\",\"format\":\"password\"}}}";

	(void)state;
	expect_json(r, "{\"user\":\"u\",\"pw\":\"" CANARY "\",\"blob\":{\"a\":1},"
	    "\"conn\":{\"host\":\"h\",\"dsn\":\"" CANARY "\"},"
	    "\"list\":[{\"id\":\"i\",\"v\":\"" CANARY "\"},{\"v\":\"" CANARY
	    "\"}],\"mixed\":\"" CANARY "\"}", schema,
	    "{\"blob\":\"<redacted>\",\"conn\":{\"dsn\":\"<redacted>\","
	    "\"host\":\"h\"},\"list\":[{\"id\":\"i\",\"v\":\"<redacted>\"},"
	    "{\"v\":\"<redacted>\"}],\"mixed\":\"<redacted>\",\"pw\":"
	    "\"<redacted>\",\"user\":\"u\"}");
	/* A $ref cycle does not hang. */
	expect_json(r, "{\"a\":{\"a\":\"x\"}}",
	    "{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},"
	    "\"b\":{\"$ref\":\"#/$defs/a\"}}}", "{\"a\":{\"a\":\"x\"}}");
	/* draft-07 tuple items and additionalProperties. */
	expect_json(r, "{\"t\":[\"a\",\"" CANARY "\"],\"extra\":{\"z\":\""
	    CANARY "\"}}",
	    "{\"properties\":{\"t\":{\"items\":[{},{\"writeOnly\":true}]}},"
	    "\"additionalProperties\":{\"properties\":{\"z\":{\"format\":"
	    "\"password\"}}}}",
	    "{\"extra\":{\"z\":\"<redacted>\"},\"t\":[\"a\",\"<redacted>\"]}");
	pc_redactor_free(r);
}

static void
test_values(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, CANARY, strlen(CANARY)), 0);
	/* Inside longer strings, several times, in keys, in nested arrays. */
	expect_json(r, "{\"cmd\":\"curl -H x:" CANARY " && echo " CANARY
	    "!\",\"l\":[[\"" CANARY "\"]],\"k-" CANARY "\":1}", NULL,
	    "{\"cmd\":\"curl -H x:<redacted> && echo <redacted>!\","
	    "\"k-<redacted>\":1,\"l\":[[\"<redacted>\"]]}");
	expect_text(r, "error: connect with " CANARY CANARY " failed",
	    "error: connect with <redacted> failed");
	expect_text(r, CANARY, "<redacted>");
	expect_text(r, "nothing here", "nothing here");
	/* Root string, in place. */
	{
		json_t *s = json_string("pre" CANARY "post");
		json_t *keep = s;
		assert_int_equal(pc_redact_json(r, s, NULL), 0);
		assert_ptr_equal(s, keep);
		assert_string_equal(json_string_value(s), "pre<redacted>post");
		json_decref(s);
	}
	/* Long strings (their scan mask is not on the stack): the value at
	 * the very end is found, by the dry run and by redaction. */
	{
		size_t n = 9000;
		char *big = malloc(n + sizeof(CANARY));
		json_t *o;
		char *out;

		assert_non_null(big);
		memset(big, 'x', n);
		big[n] = '\0';
		o = json_pack("{s:s}", "note", big);
		assert_int_equal(pc_redact_json_needed(r, o, NULL), 0);
		json_decref(o);
		memcpy(big + n, CANARY, sizeof(CANARY));
		o = json_pack("{s:s}", "note", big);
		assert_int_equal(pc_redact_json_needed(r, o, NULL), 1);
		assert_int_equal(pc_redact_json(r, o, NULL), 0);
		out = json_dumps(o, JSON_COMPACT);
		assert_null(strstr(out, CANARY));
		assert_non_null(strstr(out, "x<redacted>\""));
		free(out);
		json_decref(o);
		free(big);
	}
	pc_redactor_free(r);
}

static void
test_key_collision(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, CANARY, strlen(CANARY)), 0);
	expect_json(r, "{\"" CANARY "\":1,\"<redacted>\":2}", NULL,
	    "{\"<redacted>\":2,\"<redacted>#2\":1}");
	pc_redactor_free(r);
}

/* A known value however an encoder escaped it: any mix of raw and %XX
 * bytes, either case of hex. */
static void
test_percent_spellings(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, "abc+def/ghi1", 12), 0);
	/* Go's userinfo escaping leaves '+' raw, escapes '/'. */
	expect_text(r, "postgres://app:abc+def%2Fghi1@db",
	    "postgres://app:<redacted>@db");
	/* Python's quote() escapes '+', leaves '/'; lowercase hex. */
	expect_text(r, "u=abc%2bdef/ghi1&x", "u=<redacted>&x");
	expect_text(r, "all: abc%2Bdef%2Fghi1.", "all: <redacted>.");
	/* Escapes that decode to something else are left alone. */
	expect_text(r, "abc%2Cdef/ghi1 100% sure",
	    "abc%2Cdef/ghi1 100% sure");
	pc_redactor_free(r);
}

/* The head of a longer text: its last bytes may start a value cut off. */
static void
test_text_head(void **state)
{
	struct pc_redactor *r = mk();
	const char *t = "x=SECRETVALUE-0123456789 y=SECRETVAL";
	char *o;

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, "SECRETVALUE-0123456789",
	    22), 0);
	o = pc_redact_text_head(r, t, strlen(t), false);
	assert_string_equal(o, "x=<redacted> y=SECRETVAL");	/* whole */
	free(o);
	o = pc_redact_text_head(r, t, strlen(t), true);
	assert_string_equal(o, "x=<redacted> y=");	/* only what could be */
	free(o);
	o = pc_redact_text_head(r, "short", 5, true);
	assert_string_equal(o, "short");
	free(o);
	/* A credential shape cut off: its run goes; a split UTF-8 sequence
	 * too. */
	o = pc_redact_text_head(r, "token ghp_16C7e42F292c", 22, true);
	assert_string_equal(o, "token ");
	free(o);
	o = pc_redact_text_head(r, "auth: Bearer abc", 16, true);
	assert_string_equal(o, "auth: Bearer ");
	free(o);
	o = pc_redact_text_head(r, "caf\xc3\xa9 ok SECR", 13, true);
	assert_string_equal(o, "caf\xc3\xa9 ok ");
	free(o);
	o = pc_redact_text_head(r, "caf\xc3", 4, true);
	assert_string_equal(o, "caf");
	free(o);
	pc_redactor_free(r);
}

/* A failure on its way to a client: redacted; and when the redaction
 * cannot finish (here a secret that starts inside a UTF-8 sequence, so
 * the key left behind is no longer text), withheld whole rather than sent
 * half redacted. */
static void
test_rpc_failure(void **state)
{
	struct pc_redactor *r = mk();
	json_t *m;
	char *out;

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, CANARY, strlen(CANARY)), 0);
	assert_int_equal(pc_redactor_add_value(r, "\xA9SECRETVALUE1234", 16),
	    0);
	m = json_pack("{s:s, s:i, s:{s:i, s:s, s:{s:s}}}", "jsonrpc", "2.0",
	    "id", 1, "error", "code", -32000, "message", "bad " CANARY,
	    "data", "k", CANARY);
	pc_redact_rpc_failure(r, m);
	out = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(out, "{\"error\":{\"code\":-32000,\"data\":"
	    "{\"k\":\"<redacted>\"},\"message\":\"bad <redacted>\"},"
	    "\"id\":1,\"jsonrpc\":\"2.0\"}");
	free(out);
	json_decref(m);

	m = json_loads("{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":"
	    "-32001,\"data\":{\"\xC3\xA9SECRETVALUE1234\":1},\"message\":"
	    "\"\xC3\xA9SECRETVALUE1234\"}}", 0, NULL);
	assert_non_null(m);
	pc_redact_rpc_failure(r, m);
	out = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	assert_null(strstr(out, "SECRETVALUE"));
	assert_non_null(strstr(out, "\"code\":-32001"));
	free(out);
	json_decref(m);

	/* The same in an isError result; an ordinary result passes. */
	m = json_loads("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{"
	    "\"resultType\":\"complete\",\"structuredContent\":{\"\xC3\xA9"
	    "SECRETVALUE1234\":1},\"content\":[{\"type\":\"text\",\"text\":"
	    "\"\xC3\xA9SECRETVALUE1234\"}],\"isError\":true}}", 0, NULL);
	assert_non_null(m);
	pc_redact_rpc_failure(r, m);
	out = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	assert_null(strstr(out, "SECRETVALUE"));
	assert_non_null(strstr(out, "\"isError\":true"));
	assert_non_null(strstr(out, "\"resultType\":\"complete\""));
	free(out);
	json_decref(m);
	m = json_pack("{s:s, s:i, s:{s:s}}", "jsonrpc", "2.0", "id", 4,
	    "result", "text", CANARY);
	pc_redact_rpc_failure(r, m);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    m, "result"), "text")), CANARY);
	json_decref(m);
	pc_redactor_free(r);
}

static void
test_overlap_and_short(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, "ABCDEFGH1234", 12), 0);
	assert_int_equal(pc_redactor_add_value(r, "1234WXYZ5678", 12), 0);
	assert_int_equal(pc_redactor_add_value(r, "EFGH1234", 8), 0);
	/* Duplicate is accepted (stored once). */
	assert_int_equal(pc_redactor_add_value(r, "EFGH1234", 8), 0);
	/* Short values are ignored. */
	assert_int_equal(pc_redactor_add_value(r, "prod", 4), 0);
	assert_int_equal(pc_redactor_add_value(r, "1234567", 7), 0);
	expect_text(r, "x ABCDEFGH1234WXYZ5678 y", "x <redacted> y");
	expect_text(r, "aEFGH1234b", "a<redacted>b");
	expect_text(r, "prod 1234567 ABCDEFGH123", "prod 1234567 ABCDEFGH123");
	/* Numbers whose text is a known value. */
	assert_int_equal(pc_redactor_add_value(r, "31415926535", 11), 0);
	expect_json(r, "{\"n\":31415926535,\"m\":7}", NULL,
	    "{\"m\":7,\"n\":\"<redacted>\"}");
	pc_redactor_free(r);
}

static void
test_escaped_value(void **state)
{
	struct pc_redactor *r = mk();
	const char sec[] = "se\"cr\\et\nvalue";
	json_t *o;
	char *dump, *red;

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, sec, strlen(sec)), 0);
	o = json_pack("{s:s}", "v", sec);
	dump = json_dumps(o, JSON_COMPACT);
	red = pc_redact_text(r, dump, strlen(dump));
	assert_string_equal(red, "{\"v\":\"<redacted>\"}");
	free(red);
	free(dump);
	assert_int_equal(pc_redact_json(r, o, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(o, "v")),
	    "<redacted>");
	json_decref(o);
	pc_redactor_free(r);
}

/* A secret read with a trailing newline (a Kubernetes secret from a
 * file), a multi-line one (a PEM key), and one quoted in a URL: the forms
 * a child prints or an error quotes are known too. */
static void
test_value_spellings(void **state)
{
	static const char pem[] = "-----BEGIN KEY-----\n"
	    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nshort\n-----END KEY-----\n";
	static const char kube[] = "apiVersion: v1\nkind: Config\n"
	    "users:\n- name: a\n  user:\n    token:\n"
	    "      ZXhhbXBsZS1zZWNyZXQtdG9rZW4=\n";
	struct pc_redactor *r = mk();

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, "CANARY-7f3a9c1e5b2d\n",
	    20), 0);
	expect_text(r, "bad token CANARY-7f3a9c1e5b2d.",
	    "bad token <redacted>.");
	assert_int_equal(pc_redactor_add_value(r, pem, sizeof(pem) - 1), 0);
	expect_text(r, "line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
	    "line: <redacted>");
	expect_text(r, "short", "short");	/* a line too short to tell */
	/* Armor and plain fields of a credential file are not secrets:
	 * only base64 lines are known on their own. */
	expect_text(r, "-----END KEY-----", "-----END KEY-----");
	assert_int_equal(pc_redactor_add_value(r, kube, sizeof(kube) - 1), 0);
	expect_text(r, "apiVersion: v1", "apiVersion: v1");
	expect_text(r, "token ZXhhbXBsZS1zZWNyZXQtdG9rZW4=",
	    "token <redacted>");
	assert_int_equal(pc_redactor_add_value(r, "abc+def/ghi=jkl", 15), 0);
	expect_text(r, "GET /x?k=abc%2Bdef%2Fghi%3Djkl failed",
	    "GET /x?k=<redacted> failed");
	expect_text(r, "{\"k\":\"abc+def\\/ghi=jkl\"}", "{\"k\":\"<redacted>\"}");
	pc_redactor_free(r);
}

static void
expect_uri(struct pc_redactor *r, const char *in, const char *want)
{
	char *got = pc_redact_uri(r, in);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* A resource URI in a record: its userinfo password, sensitive query
 * values and known secrets go; the rest stays readable. */
static void
test_uri(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, CANARY, strlen(CANARY)), 0);
	expect_uri(r, "postgres://app:S3cret@db/x", "postgres://app:<redacted>@db/x");
	expect_uri(r, "postgres://app@db/x?sslmode=require",
	    "postgres://app@db/x?sslmode=require");
	expect_uri(r, "https://h/p?a=1&access_token=xyz&api-key=k;b=2#frag",
	    "https://h/p?a=1&access_token=<redacted>&api-key=<redacted>;b=2"
	    "#frag");
	expect_uri(r, "mini://r/" CANARY "/x", "mini://r/<redacted>/x");
	expect_uri(r, "file:///srv/a?b", "file:///srv/a?b");
	expect_uri(r, "a?password=&x", "a?password=<redacted>&x");
	/* A "://" inside a parameter is not the authority. */
	expect_uri(r, "x:y?token=T&next=http://u:p@h",
	    "x:y?token=<redacted>&next=http://u:p@h");
	/* The last '@' ends the userinfo: nothing of the password stays. */
	expect_uri(r, "postgres://u:p@ss@db/x", "postgres://u:<redacted>@db/x");
	expect_uri(r, "postgres://u:@db", "postgres://u:<redacted>@db");
	/* A '/' left unescaped in the password; a token as the user; names
	 * as the server decodes them. */
	expect_uri(r, "postgres://app:pa/ss@db/x", "postgres://app:<redacted>@db/x");
	expect_uri(r, "https://ghp_16C7e42F292c6912E7710c8@github.com/o/r",
	    "https://<redacted>@github.com/o/r");
	expect_uri(r, "ssh://git@github.com/o/r", "ssh://git@github.com/o/r");
	/* A '@' in the path after an empty authority or a port is a path. */
	expect_uri(r, "file:///C:/Users/a/node_modules/@types/node/fs.d.ts",
	    "file:///C:/Users/a/node_modules/@types/node/fs.d.ts");
	expect_uri(r, "http://localhost:5173/@vite/client",
	    "http://localhost:5173/@vite/client");
	expect_uri(r, "https://h/p?api%5Fkey=K1&access+token=K2&ok%3D=1",
	    "https://h/p?api%5Fkey=<redacted>&access+token=<redacted>&ok%3D=1");
	/* OAuth's implicit flow puts the token in the fragment. */
	expect_uri(r, "https://h/cb#access_token=abc&state=1",
	    "https://h/cb#access_token=<redacted>&state=1");
	expect_uri(r, "https://h/?q=1#frag", "https://h/?q=1#frag");
	expect_uri(r, "a?x=1&", "a?x=1&");
	expect_uri(r, "", "");
	pc_redactor_free(r);
}

static void
test_text_shapes(void **state)
{
	struct pc_redactor *r = mk();

	(void)state;
	expect_text(r, "Authorization: Bearer eyJhbGciOi.abc-def_ghi rest",
	    "Authorization: Bearer <redacted> rest");
	expect_text(r, "authorization: basic dXNlcjpwYXNzd29yZA==",
	    "authorization: basic <redacted>");
	/* A tab, raw or as a JSON string has it (the gateway's log lines
	 * are scanned after serialization). */
	expect_text(r, "Bearer\tabcdefghijkl", "Bearer\t<redacted>");
	expect_text(r, "\"Authorization: Bearer\\tabcdefghijkl\"",
	    "\"Authorization: Bearer\\t<redacted>\"");
	expect_text(r, "key=pcs_0123456789abcdef_"
	    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde end",
	    "key=pcs_0123456789abcdef_<redacted> end");
	/* A bare JWT, wherever it is; a JWE's five parts. */
	expect_text(r, "id=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"
	    "X3ZhbHVl; next", "id=<redacted>; next");
	expect_text(r, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ. x",
	    "<redacted> x");
	expect_text(r, "e:eyJlbmMiOiJBMjU2R0NNIn0.a2V5a2V5a2V5a2V5.aXZpdml2aXZp"
	    ".Y2lwaGVydGV4dA.dGFndGFn", "e:<redacted>");
	/* Well-known prefixes: the prefix stays. */
	expect_text(r, "token ghp_16C7e42F292c6912E7710c838347Ae178B4a ok",
	    "token ghp_<redacted> ok");
	expect_text(r, "OPENAI=sk-proj-AbCdEfGhIjKlMnOpQrStUvWx12-x_Y9 end",
	    "OPENAI=sk-<redacted> end");
	expect_text(r, "key sk-AbCdEfGhIjKlMnOpQrStUvWxYz012345.",
	    "key sk-<redacted>.");
	expect_text(r, "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
	    "xoxb-<redacted>");
	expect_text(r, "k=AIzaSyA1234567890abcdefghijklmnopqrstuv",
	    "k=AIza<redacted>");
	/* Bodies with '-' and '_' anywhere, as GitLab's and Google's are. */
	expect_text(r, "glpat-abcdEFGH1-jklmn_pqrs x", "glpat-<redacted> x");
	/* Identifiers and names that start like tokens are not tokens. */
	expect_text(r, "npm_config_strict_peer_dependencies=true "
	    "/srv/sk-quarterly-report-2024-final-version.pdf "
	    "hf_hub_download_timeout_seconds_default_value "
	    "ghp_notatoken",
	    "npm_config_strict_peer_dependencies=true "
	    "/srv/sk-quarterly-report-2024-final-version.pdf "
	    "hf_hub_download_timeout_seconds_default_value "
	    "ghp_notatoken");
	/* Not credentials. */
	expect_text(r, "Bearer tokens are fine; pcs_xyz; Bearer",
	    "Bearer tokens are fine; pcs_xyz; Bearer");
	expect_text(r, "eyJ.short.parts; task-list; sk-short; ghp_x; "
	    "risk-assessment-document-review",
	    "eyJ.short.parts; task-list; sk-short; ghp_x; "
	    "risk-assessment-document-review");
	expect_text(r, "unbearer 1234567890abc", "unbearer 1234567890abc");
	/* Key names of bearer assertions. */
	expect_json(r, "{\"jwt\":\"x\",\"client_assertion\":\"y\","
	    "\"id_jwt\":1,\"otp\":\"123456\",\"auth\":\"kept\"}", NULL,
	    "{\"auth\":\"kept\",\"client_assertion\":\"<redacted>\","
	    "\"id_jwt\":\"<redacted>\",\"jwt\":\"<redacted>\","
	    "\"otp\":\"<redacted>\"}");
	/* Same shapes inside JSON strings. */
	expect_json(r, "{\"h\":\"Bearer abcdefghijkl\"}", NULL,
	    "{\"h\":\"Bearer <redacted>\"}");
	{
		char *e = pc_redact_text(r, "", 0);
		assert_non_null(e);
		assert_string_equal(e, "");
		free(e);
	}
	pc_redactor_free(r);
}

static void
test_depth_bound(void **state)
{
	struct pc_redactor *r = mk();
	json_t *root = json_object(), *cur = root;
	char *out;

	(void)state;
	for (int i = 0; i < 600; i++) {
		json_t *n = json_object();
		json_object_set_new(cur, "a", n);
		cur = n;
	}
	json_object_set_new(cur, "x", json_string("deep"));
	/* Too deep to tell is "needed": the copy is then redacted. */
	assert_int_equal(pc_redact_json_needed(r, root, NULL), 1);
	assert_int_equal(pc_redact_json(r, root, NULL), PC_E_LIMIT);
	out = json_dumps(root, JSON_COMPACT);
	assert_non_null(out);
	assert_null(strstr(out, "deep"));
	assert_non_null(strstr(out, "\"<redacted>\""));
	free(out);
	json_decref(root);
	pc_redactor_free(r);
}

static void
test_in_place(void **state)
{
	struct pc_redactor *r = mk();
	json_t *v = parse("{\"o\":{\"token\":\"" CANARY "\",\"x\":\"y\"}}");
	json_t *inner = json_object_get(v, "o");
	json_t *x = json_object_get(inner, "x");

	(void)state;
	assert_int_equal(pc_redact_json(r, v, NULL), 0);
	assert_ptr_equal(json_object_get(v, "o"), inner);
	assert_ptr_equal(json_object_get(inner, "x"), x);
	assert_string_equal(json_string_value(json_object_get(inner, "token")),
	    "<redacted>");
	assert_int_equal(pc_redact_json(NULL, v, NULL), PC_E_INVAL);
	json_decref(v);
	pc_redactor_free(r);
}

/*
 * explicit_bzero is interposed for this test binary (the module is linked
 * statically into it): each wipe of a buffer holding the canary is counted,
 * so a redactor that frees its values without wiping fails the test.
 */
static int canary_wipes;

void
explicit_bzero(void *p, size_t n)
{
	volatile unsigned char *q = p;
	size_t same = 0;

	/* Read through volatile: glibc declares the buffer write-only. */
	for (size_t i = 0; n == strlen(CANARY) && i < n; i++)
		same += q[i] == (unsigned char)CANARY[i];
	if (n == strlen(CANARY) && same == n)
		canary_wipes++;
	for (size_t i = 0; i < n; i++)
		q[i] = 0;
}

static void
test_copy_and_free_wipes(void **state)
{
	struct pc_redactor *r = mk();
	char buf[] = CANARY;

	(void)state;
	assert_int_equal(pc_redactor_add_value(r, buf, strlen(buf)), 0);
	/* The value was copied: the caller may wipe its own buffer. */
	memset(buf, 'z', strlen(buf));
	expect_text(r, "v=" CANARY, "v=<redacted>");
	canary_wipes = 0;
	pc_redactor_free(r);
	assert_int_equal(canary_wipes, 1);
	pc_redactor_free(NULL);
}

static void
test_many_values(void **state)
{
	struct pc_redactor *r = mk();
	char v[32], text[64];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(v, sizeof(v), "secret-%08d", i);
		assert_int_equal(pc_redactor_add_value(r, v, (size_t)n), 0);
	}
	snprintf(text, sizeof(text), "a secret-%08d b secret-x", 4321);
	expect_text(r, text, "a <redacted> b secret-x");
	pc_redactor_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sensitive_keys),
		cmocka_unit_test(test_no_false_redaction),
		cmocka_unit_test(test_configured_key),
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_key_collision),
		cmocka_unit_test(test_overlap_and_short),
		cmocka_unit_test(test_escaped_value),
		cmocka_unit_test(test_text_shapes),
		cmocka_unit_test(test_depth_bound),
		cmocka_unit_test(test_in_place),
		cmocka_unit_test(test_copy_and_free_wipes),
		cmocka_unit_test(test_many_values),
		cmocka_unit_test(test_value_spellings),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_rpc_failure),
		cmocka_unit_test(test_text_head),
		cmocka_unit_test(test_percent_spellings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
