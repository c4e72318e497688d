/*
 * Unit tests: src/authz/policy*.c (roles, classes, constraints).
 *
 * Traversal variants live one per file in tests/data/traversal/ (the file
 * holds the exact bytes an agent would send); every one must be refused
 * against the root /srv/data.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "authz/policy.h"
#include "lib/errors.h"

static struct pc_principal
mkwho(const char *id, const char *tenant, const char *roles)
{
	struct pc_principal w;

	memset(&w, 0, sizeof(w));
	w.method = PC_AUTH_APIKEY;
	snprintf(w.id, sizeof(w.id), "%s", id);
	snprintf(w.tenant, sizeof(w.tenant), "%s", tenant);
	snprintf(w.roles, sizeof(w.roles), "%s", roles);
	return w;
}

static json_t *
js(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

	assert_non_null(v);
	return v;
}

static void
glob_matches(void **st)
{
	(void)st;
	assert_true(pc_policy_glob("fs__read_*", "fs__read_file"));
	assert_true(pc_policy_glob("fs__read_*", "fs__read_"));
	assert_false(pc_policy_glob("fs__read_*", "fs__write_file"));
	assert_true(pc_policy_glob("*", ""));
	assert_true(pc_policy_glob("github__*", "github__create_issue"));
	assert_true(pc_policy_glob("*__get_*_x", "a__get_b_c_x"));
	assert_false(pc_policy_glob("*__get_*_x", "a__get_b_c_xy"));
	assert_true(pc_policy_glob("a*b*c", "aXbYbZc"));
	assert_false(pc_policy_glob("exact", "exactly"));
	assert_false(pc_policy_glob("?", "a"));	/* only '*' is special */
}

static void
classes_from_annotations(void **st)
{
	struct pc_policy *p;
	json_t *ro = js("{\"readOnlyHint\":true}");
	json_t *ro_closed = js("{\"readOnlyHint\":true,\"openWorldHint\":false}");
	json_t *w_nd = js("{\"destructiveHint\":false,\"openWorldHint\":false}");
	json_t *junk = js("{\"readOnlyHint\":\"true\",\"destructiveHint\":0}");

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_tool_class(p, "t", NULL),
	    PC_ACC_WRITE | PC_ACC_DESTRUCTIVE | PC_ACC_OPEN_WORLD);
	assert_int_equal(pc_policy_tool_class(p, "t", ro),
	    PC_ACC_READ | PC_ACC_OPEN_WORLD);
	assert_int_equal(pc_policy_tool_class(p, "t", ro_closed), PC_ACC_READ);
	assert_int_equal(pc_policy_tool_class(p, "t", w_nd), PC_ACC_WRITE);
	/* Non-booleans are absent: pessimistic defaults. */
	assert_int_equal(pc_policy_tool_class(p, "t", junk),
	    PC_ACC_WRITE | PC_ACC_DESTRUCTIVE | PC_ACC_OPEN_WORLD);
	/* Override: exact beats glob, whatever the annotations say. */
	assert_int_equal(pc_policy_set_class(p, "ev__get-*", PC_ACC_READ), 0);
	assert_int_equal(pc_policy_set_class(p, "ev__get-env",
	    PC_ACC_READ | PC_ACC_DESTRUCTIVE), 0);
	assert_int_equal(pc_policy_tool_class(p, "ev__get-env", ro_closed),
	    PC_ACC_READ | PC_ACC_DESTRUCTIVE);
	assert_int_equal(pc_policy_tool_class(p, "ev__get-sum", NULL),
	    PC_ACC_READ);
	assert_int_equal(pc_policy_set_class(p, "x", 0), PC_E_INVAL);
	assert_int_equal(pc_policy_set_class(p, "x", 16), PC_E_INVAL);
	pc_policy_free(p);
	json_decref(ro);
	json_decref(ro_closed);
	json_decref(w_nd);
	json_decref(junk);
}

static void
role_matrix(void **st)
{
	struct pc_policy *p;
	json_t *ro = js("{\"readOnlyHint\":true,\"openWorldHint\":false}");
	json_t *wr = js("{\"destructiveHint\":false,\"openWorldHint\":false}");
	json_t *destr = js("{\"openWorldHint\":false}");

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "reader", "fs__*",
	    PC_ACC_READ), 0);
	assert_int_equal(pc_policy_add_rule(p, "writer", "fs__*",
	    PC_ACC_READ | PC_ACC_WRITE), 0);
	assert_int_equal(pc_policy_add_rule(p, "admin", "*", PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_rule(p, "a,b", "*", PC_ACC_ALL),
	    PC_E_INVAL);
	assert_int_equal(pc_policy_add_rule(p, "r", "*", 0), PC_E_INVAL);

	/* reader: read tools only */
	assert_true(pc_policy_tool_allowed(p, "reader", "fs__read_file", ro));
	assert_false(pc_policy_tool_allowed(p, "reader", "fs__write_file", wr));
	assert_false(pc_policy_tool_allowed(p, "reader", "fs__delete", destr));
	assert_false(pc_policy_tool_allowed(p, "reader", "fs__unknown", NULL));
	assert_false(pc_policy_tool_allowed(p, "reader", "gh__read", ro));
	/* writer: read + non-destructive write, never destructive */
	assert_true(pc_policy_tool_allowed(p, "writer", "fs__read_file", ro));
	assert_true(pc_policy_tool_allowed(p, "writer", "fs__write_file", wr));
	assert_false(pc_policy_tool_allowed(p, "writer", "fs__delete", destr));
	/* admin: anything */
	assert_true(pc_policy_tool_allowed(p, "admin", "fs__delete", NULL));
	/* several roles: the union; spaces around names tolerated */
	assert_true(pc_policy_tool_allowed(p, "nobody, writer", "fs__write_file",
	    wr));
	assert_false(pc_policy_tool_allowed(p, "nobody,ghost", "fs__read_file",
	    ro));
	assert_false(pc_policy_tool_allowed(p, "", "fs__read_file", ro));
	assert_false(pc_policy_tool_allowed(p, "read", "fs__read_file", ro));
	assert_false(pc_policy_tool_allowed(p, "readers", "fs__read_file", ro));

	/* get-env: the upstream says read-only; the override says otherwise */
	assert_true(pc_policy_tool_allowed(p, "reader", "fs__get-env", ro));
	assert_int_equal(pc_policy_set_class(p, "fs__get-env",
	    PC_ACC_READ | PC_ACC_DESTRUCTIVE), 0);
	assert_false(pc_policy_tool_allowed(p, "reader", "fs__get-env", ro));
	assert_true(pc_policy_tool_allowed(p, "admin", "fs__get-env", ro));

	pc_policy_free(p);
	json_decref(ro);
	json_decref(wr);
	json_decref(destr);
}

static void
later_tool_denied_until_granted(void **st)
{
	struct pc_policy *p;
	struct pc_principal w = mkwho("alice", "", "ops");
	json_t *args = js("{}");
	const char *why;
	char arg[64];

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "ops", "gh__list_issues",
	    PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_check_call(p, &w, "gh__list_issues", NULL,
	    args, &why, arg, sizeof(arg)), 0);
	/* The upstream grows a new tool: still denied. */
	assert_int_equal(pc_policy_check_call(p, &w, "gh__delete_repo", NULL,
	    args, &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(why, PC_POLICY_DENIED_TOOL);
	assert_string_equal(arg, "");
	assert_false(pc_policy_tool_allowed(p, "ops", "gh__delete_repo", NULL));
	pc_policy_free(p);

	/* A new policy that grants it by name: allowed. */
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "ops", "gh__delete_repo",
	    PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_check_call(p, &w, "gh__delete_repo", NULL,
	    args, &why, arg, sizeof(arg)), 0);
	assert_null(why);
	pc_policy_free(p);
	json_decref(args);
}

static void
srcdir(char *out, size_t len)
{
	const char *env = getenv("PC_SOURCE_DIR");
	char *cut;

	if (env != NULL) {
		snprintf(out, len, "%s", env);
		return;
	}
	/* __FILE__ is "tests/unit/test_policy.c" as the Makefile builds it
	 * (relative to the repository), or an absolute path. */
	snprintf(out, len, "%s", __FILE__);
	cut = strstr(out, "tests/unit/test_policy.c");
	assert_non_null(cut);
	*cut = '\0';
	if (out[0] == '\0')
		snprintf(out, len, ".");
}

static size_t
read_all(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, cap, f);
	assert_true(n < cap);
	fclose(f);
	return n;
}

static void
traversal_variants_refused(void **st)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], buf[8192], norm[4096];
	struct pc_policy *p;
	struct pc_principal w = mkwho("bob", "", "reader");
	const char *roots[] = { "/srv/data" };
	struct pc_constraint c = {
		.kind = PC_CON_PATH, .tool_pattern = "fs__*", .arg = "path",
		.values = roots, .nvalues = 1,
	};
	struct dirent *de;
	DIR *d;
	size_t n, count = 0;

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "reader", "fs__*",
	    PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_constraint(p, &c), 0);
	srcdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/tests/data/traversal", dir);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		json_t *args;
		const char *why = NULL;
		char arg[32];

		if (strstr(de->d_name, ".txt") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/tests/data/traversal/%s", dir,
		    de->d_name);
		n = read_all(path, buf, sizeof(buf));
		if (pc_policy_path_normalize("/srv/data", buf, n, norm,
		    sizeof(norm)) != PC_E_DENIED)
			fail_msg("normalizer accepted %s", de->d_name);
		/* And through the whole call path (JSON keeps NUL bytes). */
		args = json_object();
		json_object_set_new(args, "path", json_stringn(buf, n));
		if (json_object_get(args, "path") != NULL) {
			if (pc_policy_check_call(p, &w, "fs__read_file", NULL,
			    args, &why, arg, sizeof(arg)) != PC_E_DENIED)
				fail_msg("policy accepted %s", de->d_name);
			assert_string_equal(why, PC_POLICY_DENIED_ARGUMENT);
			assert_string_equal(arg, "path");
		}
		json_decref(args);
		count++;
	}
	closedir(d);
	assert_true(count >= 20);
	pc_policy_free(p);
}

static void
legit_paths_normalized(void **st)
{
	static const struct { const char *in, *out; } ok[] = {
		{ "/srv/data", "/srv/data" },
		{ "/srv/data/", "/srv/data" },
		{ "/srv/data/a.txt", "/srv/data/a.txt" },
		{ "a.txt", "/srv/data/a.txt" },
		{ "./sub//b.txt", "/srv/data/sub/b.txt" },
		{ "/srv/data/sub/../c", "/srv/data/c" },
		{ "/srv//data/./x/./y", "/srv/data/x/y" },
		{ "file~", "/srv/data/file~" },
		{ "caf\xc3\xa9.txt", "/srv/data/caf\xc3\xa9.txt" },
		{ "...", "/srv/data/..." },
	};
	char norm[4096];
	size_t i;

	(void)st;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (pc_policy_path_normalize("/srv/data", ok[i].in,
		    strlen(ok[i].in), norm, sizeof(norm)) != 0)
			fail_msg("refused %s", ok[i].in);
		assert_string_equal(norm, ok[i].out);
	}
	/* Root "/" admits any absolute path, still normalized. */
	assert_int_equal(pc_policy_path_normalize("/", "/a/../b", 7, norm,
	    sizeof(norm)), 0);
	assert_string_equal(norm, "/b");
	/* A small out buffer is a limit, never a truncated path. */
	assert_int_equal(pc_policy_path_normalize("/srv/data", "abcdef", 6,
	    norm, 12), PC_E_LIMIT);
}

static void
call_rewrites_paths(void **st)
{
	struct pc_policy *p;
	struct pc_principal w = mkwho("bob", "", "r");
	const char *roots[] = { "/srv/data", "/tmp/scratch" };
	struct pc_constraint c = {
		.kind = PC_CON_PATH, .tool_pattern = "fs__*", .arg = "path",
		.values = roots, .nvalues = 2,
	};
	struct pc_constraint c2 = {
		.kind = PC_CON_PATH, .tool_pattern = "fs__read_multiple",
		.arg = "paths", .values = roots, .nvalues = 1,
	};
	json_t *args;
	const char *why;
	char arg[32];

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "r", "fs__*", PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_constraint(p, &c), 0);
	c.arg = "other";
	c.optional = true;
	assert_int_equal(pc_policy_add_constraint(p, &c), 0);
	assert_int_equal(pc_policy_add_constraint(p, &c2), 0);

	args = js("{\"path\":\"/tmp/scratch/./x/../y\"}");
	assert_int_equal(pc_policy_check_call(p, &w, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), 0);
	assert_string_equal(json_string_value(json_object_get(args, "path")),
	    "/tmp/scratch/y");
	json_decref(args);

	/* Required argument absent: denied (the tool might default to /). */
	args = js("{}");
	assert_int_equal(pc_policy_check_call(p, &w, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(arg, "path");
	json_decref(args);
	/* Wrong type: denied. */
	args = js("{\"path\":42}");
	assert_int_equal(pc_policy_check_call(p, &w, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(args);
	/* Optional one, present and bad. */
	args = js("{\"path\":\"a\",\"other\":\"/etc\"}");
	assert_int_equal(pc_policy_check_call(p, &w, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(arg, "other");
	json_decref(args);

	/* Arrays: every element checked and rewritten. */
	args = js("{\"path\":\"a\",\"paths\":[\"x\",\"/srv/data/y/../z\"]}");
	assert_int_equal(pc_policy_check_call(p, &w, "fs__read_multiple", NULL,
	    args, &why, arg, sizeof(arg)), 0);
	assert_string_equal(json_string_value(json_array_get(
	    json_object_get(args, "paths"), 1)), "/srv/data/z");
	json_decref(args);
	args = js("{\"path\":\"a\",\"paths\":[\"x\",\"../etc/passwd\"]}");
	assert_int_equal(pc_policy_check_call(p, &w, "fs__read_multiple", NULL,
	    args, &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(why, PC_POLICY_DENIED_ARGUMENT);
	assert_string_equal(arg, "paths");
	json_decref(args);

	/* Roots must be absolute and normal. */
	roots[0] = "srv/data";
	assert_int_equal(pc_policy_add_constraint(p, &c), PC_E_INVAL);
	roots[0] = "/srv/../data";
	assert_int_equal(pc_policy_add_constraint(p, &c), PC_E_INVAL);
	roots[0] = "/data/${tenantx}";
	assert_int_equal(pc_policy_add_constraint(p, &c), PC_E_INVAL);
	pc_policy_free(p);
}

static void
tenant_scoping(void **st)
{
	struct pc_policy *p;
	const char *roots[] = { "/data/${tenant}" };
	const char *owners[] = { "${principal}" };
	struct pc_constraint c = {
		.kind = PC_CON_PATH, .tool_pattern = "fs__*", .arg = "path",
		.values = roots, .nvalues = 1,
	};
	struct pc_constraint s = {
		.kind = PC_CON_SET, .tool_pattern = "db__*", .arg = "tenant",
		.set_value = "${tenant}",
	};
	struct pc_constraint o = {
		.kind = PC_CON_STRING, .tool_pattern = "db__*", .arg = "owner",
		.values = owners, .nvalues = 1,
	};
	struct pc_principal acme = mkwho("alice", "acme", "r");
	struct pc_principal none = mkwho("bob", "", "r");
	struct pc_principal evil = mkwho("eve", "..", "r");
	struct pc_principal slash = mkwho("eve", "acme/../globex", "r");
	json_t *args;
	const char *why;
	char arg[32];

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "r", "*", PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_constraint(p, &c), 0);
	assert_int_equal(pc_policy_add_constraint(p, &s), 0);
	assert_int_equal(pc_policy_add_constraint(p, &o), 0);

	args = js("{\"path\":\"reports/q1.csv\"}");
	assert_int_equal(pc_policy_check_call(p, &acme, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), 0);
	assert_string_equal(json_string_value(json_object_get(args, "path")),
	    "/data/acme/reports/q1.csv");
	json_decref(args);

	args = js("{\"path\":\"/data/globex/x\"}");
	assert_int_equal(pc_policy_check_call(p, &acme, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(args);
	args = js("{\"path\":\"../globex/x\"}");
	assert_int_equal(pc_policy_check_call(p, &acme, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(args);
	/* No tenant: a ${tenant} root matches nothing. */
	args = js("{\"path\":\"/data/x\"}");
	assert_int_equal(pc_policy_check_call(p, &none, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(args);
	/* A tenant name that is itself a traversal never becomes a root. */
	args = js("{\"path\":\"/etc/passwd\"}");
	assert_int_equal(pc_policy_check_call(p, &evil, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(args);
	args = js("{\"path\":\"/data/globex/x\"}");
	assert_int_equal(pc_policy_check_call(p, &slash, "fs__read", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(args);

	/* SET overwrites what the agent claimed; STRING from the principal. */
	args = js("{\"tenant\":\"globex\",\"owner\":\"alice\"}");
	assert_int_equal(pc_policy_check_call(p, &acme, "db__query", NULL, args,
	    &why, arg, sizeof(arg)), 0);
	assert_string_equal(json_string_value(json_object_get(args, "tenant")),
	    "acme");
	json_decref(args);
	args = js("{\"owner\":\"mallory\"}");
	assert_int_equal(pc_policy_check_call(p, &acme, "db__query", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(arg, "owner");
	json_decref(args);
	args = js("{\"owner\":\"bob\"}");
	assert_int_equal(pc_policy_check_call(p, &none, "db__query", NULL, args,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(arg, "tenant");
	json_decref(args);
	pc_policy_free(p);
}

static void
strings_regex_numbers(void **st)
{
	struct pc_policy *p;
	struct pc_principal w = mkwho("alice", "", "r");
	const char *colors[] = { "red", "green" };
	struct pc_constraint cs = {
		.kind = PC_CON_STRING, .tool_pattern = "t", .arg = "color",
		.values = colors, .nvalues = 2,
	};
	struct pc_constraint cr = {
		.kind = PC_CON_REGEX, .tool_pattern = "t", .arg = "id",
		.pattern = "[a-z]{2}-[0-9]+",
	};
	struct pc_constraint cn = {
		.kind = PC_CON_NUMBER, .tool_pattern = "t", .arg = "n",
		.min = 1, .max = 100,
	};
	static const struct { const char *args; int rc; const char *arg; } cases[] = {
		{ "{\"color\":\"red\",\"id\":\"ab-12\",\"n\":1}", 0, "" },
		{ "{\"color\":\"green\",\"id\":\"zz-0\",\"n\":100}", 0, "" },
		{ "{\"color\":\"green\",\"id\":\"zz-0\",\"n\":99.5}", 0, "" },
		{ "{\"color\":\"blue\",\"id\":\"ab-12\",\"n\":1}", PC_E_DENIED, "color" },
		{ "{\"color\":\"Red\",\"id\":\"ab-12\",\"n\":1}", PC_E_DENIED, "color" },
		{ "{\"color\":\"red\\u0000x\",\"id\":\"ab-12\",\"n\":1}", PC_E_DENIED, "color" },
		{ "{\"color\":[\"red\",\"blue\"],\"id\":\"ab-12\",\"n\":1}", PC_E_DENIED, "color" },
		{ "{\"color\":\"red\",\"id\":\"ab-12x\",\"n\":1}", PC_E_DENIED, "id" },
		{ "{\"color\":\"red\",\"id\":\"xab-12\",\"n\":1}", PC_E_DENIED, "id" },
		{ "{\"color\":\"red\",\"id\":\"ab-12\\n\",\"n\":1}", PC_E_DENIED, "id" },
		{ "{\"color\":\"red\",\"id\":\"ab-12\",\"n\":0}", PC_E_DENIED, "n" },
		{ "{\"color\":\"red\",\"id\":\"ab-12\",\"n\":100.01}", PC_E_DENIED, "n" },
		{ "{\"color\":\"red\",\"id\":\"ab-12\",\"n\":\"5\"}", PC_E_DENIED, "n" },
		{ "{\"color\":\"red\",\"id\":\"ab-12\",\"n\":9007199254740993}", PC_E_DENIED, "n" },
		{ "{\"color\":\"red\",\"id\":\"ab-12\"}", PC_E_DENIED, "n" },
	};
	size_t i;

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "r", "*", PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_constraint(p, &cs), 0);
	assert_int_equal(pc_policy_add_constraint(p, &cr), 0);
	assert_int_equal(pc_policy_add_constraint(p, &cn), 0);
	cr.pattern = "([a-z";
	assert_int_equal(pc_policy_add_constraint(p, &cr), PC_E_INVAL);
	cn.min = 5;
	cn.max = 4;
	assert_int_equal(pc_policy_add_constraint(p, &cn), PC_E_INVAL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *a = js(cases[i].args);
		const char *why;
		char arg[32];
		int rc = pc_policy_check_call(p, &w, "t", NULL, a, &why, arg,
		    sizeof(arg));

		if (rc != cases[i].rc || strcmp(arg, cases[i].arg) != 0)
			fail_msg("case %zu (%s): rc %d arg '%s'", i,
			    cases[i].args, rc, arg);
		json_decref(a);
	}
	pc_policy_free(p);
}

static void
urls(void **st)
{
	static const char *refused[] = {
		"http://127.0.0.1/", "http://169.254.169.254/latest/meta-data",
		"http://10.0.0.1", "http://[::1]/", "http://0x7f000001/",
		"http://2130706433/", "http://0177.0.0.1/", "http://127.1/",
		"http://0x7f.1/", "http://192.168.1.1/", "http://172.16.5.4/",
		"http://100.64.0.1/", "http://0.0.0.0/", "http://[::]/",
		"http://[fe80::1]/", "http://[fd00:ec2::254]/",
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
		"http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/",
		"http://[64:ff9b:1::a9fe:a9fe]/", "http://[64:ff9b:1:ab::5db8:d822]/",
		"http://[::ffff:0:a9fe:a9fe]/", "http://[::ffff:0:127.0.0.1]/",
		"http://192.88.99.1/", "http://168.63.129.16/",
		"http://224.0.0.1/", "http://255.255.255.255/",
		"http://localhost/", "http://LOCALHOST:8080/",
		"http://user@93.184.216.34/", "http://93.184.216.34@127.0.0.1/",
		"http://%31%32%37.0.0.1/", "http://93.184.216.34\\@127.0.0.1/",
		"http:/93.184.216.34/", "ftp://93.184.216.34/",
		"file:///etc/passwd", "gopher://93.184.216.34/",
		"http://93.184.216.34:0/", "http://93.184.216.34:99999/",
		"http://93.184.216.34:/", "http:// 93.184.216.34/",
		"http://[fe80::1%25eth0]/", "", "http://",
	};
	static const char *allowed[] = {
		"https://93.184.216.34/", "http://93.184.216.34:8080/a?b#c",
		"HTTPS://93.184.216.34", "https://[2606:2800:220:1:248:1893:25c8:1946]/",
	};
	const char *hosts[] = { "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946" };
	const char *other[] = { "example.org" };
	size_t i;

	(void)st;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (pc_policy_url_check(refused[i], strlen(refused[i]), NULL, 0,
		    NULL, 0) != PC_E_DENIED)
			fail_msg("accepted %s", refused[i]);
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (pc_policy_url_check(allowed[i], strlen(allowed[i]), NULL, 0,
		    hosts, 2) != 0)
			fail_msg("refused %s", allowed[i]);
	/* Host allow-list enforced; scheme list enforced. */
	assert_int_equal(pc_policy_url_check("https://93.184.216.34/", 22,
	    NULL, 0, other, 1), PC_E_DENIED);
	{
		const char *https[] = { "https" };

		assert_int_equal(pc_policy_url_check("http://93.184.216.34/",
		    21, https, 1, NULL, 0), PC_E_DENIED);
		assert_int_equal(pc_policy_url_check("https://93.184.216.34/",
		    22, https, 1, NULL, 0), 0);
	}
	/* Through a call. */
	{
		struct pc_policy *p;
		struct pc_principal w = mkwho("a", "", "r");
		struct pc_constraint c = {
			.kind = PC_CON_URL, .tool_pattern = "fetch__*",
			.arg = "url", .hosts = hosts, .nhosts = 1,
		};
		json_t *a;
		const char *why;
		char arg[16];

		assert_int_equal(pc_policy_new(&p), 0);
		assert_int_equal(pc_policy_add_rule(p, "r", "*", PC_ACC_ALL), 0);
		assert_int_equal(pc_policy_add_constraint(p, &c), 0);
		a = js("{\"url\":\"https://93.184.216.34/x\"}");
		assert_int_equal(pc_policy_check_call(p, &w, "fetch__get", NULL,
		    a, &why, arg, sizeof(arg)), 0);
		json_decref(a);
		a = js("{\"url\":\"http://169.254.169.254/latest\"}");
		assert_int_equal(pc_policy_check_call(p, &w, "fetch__get", NULL,
		    a, &why, arg, sizeof(arg)), PC_E_DENIED);
		assert_string_equal(why, PC_POLICY_DENIED_ARGUMENT);
		assert_string_equal(arg, "url");
		json_decref(a);
		pc_policy_free(p);
	}
}

/* An addrinfo list of one IPv4 address, as a lookup would give. */
static struct addrinfo *
one_v4(const char *dotted, struct sockaddr_in *sa, struct addrinfo *ai)
{
	memset(sa, 0, sizeof(*sa));
	memset(ai, 0, sizeof(*ai));
	sa->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, dotted, &sa->sin_addr), 1);
	ai->ai_family = AF_INET;
	ai->ai_addr = (struct sockaddr *)sa;
	ai->ai_addrlen = sizeof(*sa);
	return ai;
}

/* With a memo the check never resolves a name itself: it asks for it
 * (PC_E_AGAIN) and then judges the answer it was given. */
static void
url_memo(void **st)
{
	struct pc_policy *p;
	struct pc_principal w = mkwho("a", "", "r");
	struct pc_constraint c = {
		.kind = PC_CON_URL, .tool_pattern = "fetch__*", .arg = "url",
	};
	struct pc_url_memo *m = calloc(1, sizeof(*m));
	struct sockaddr_in sa;
	struct addrinfo ai;
	json_t *a;
	const char *why;
	char arg[16];

	(void)st;
	assert_non_null(m);
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "r", "*", PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_constraint(p, &c), 0);
	assert_true(pc_policy_resolves(p, "fetch__get"));
	assert_false(pc_policy_resolves(p, "other__get"));

	/* Literals need no lookup. */
	a = js("{\"url\":\"https://93.184.216.34/\"}");
	assert_int_equal(pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
	    a, m, &why, arg, sizeof(arg)), 0);
	json_decref(a);
	assert_int_equal(m->need[0], '\0');

	/* A name is asked for, then judged by what it resolved to. */
	a = js("{\"url\":[\"https://Good.Example/\",\"http://bad.example/\"]}");
	assert_int_equal(pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
	    a, m, &why, arg, sizeof(arg)), PC_E_AGAIN);
	assert_string_equal(m->need, "good.example");
	pc_url_memo_put(m, 0, one_v4("93.184.216.34", &sa, &ai));
	assert_int_equal(pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
	    a, m, &why, arg, sizeof(arg)), PC_E_AGAIN);
	assert_string_equal(m->need, "bad.example");
	pc_url_memo_put(m, 0, one_v4("169.254.169.254", &sa, &ai));
	assert_int_equal(pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
	    a, m, &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(arg, "url");
	json_decref(a);

	/* A failed lookup refuses. */
	a = js("{\"url\":\"http://gone.example/\"}");
	assert_int_equal(pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
	    a, m, &why, arg, sizeof(arg)), PC_E_AGAIN);
	pc_url_memo_put(m, EAI_NONAME, NULL);
	assert_int_equal(pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
	    a, m, &why, arg, sizeof(arg)), PC_E_DENIED);
	json_decref(a);

	/* More names than the memo holds: refused, not looked up for ever. */
	a = js("{\"url\":[\"http://a1.example/\",\"http://a2.example/\","
	    "\"http://a3.example/\",\"http://a4.example/\",\"http://a5.example/\","
	    "\"http://a6.example/\",\"http://a7.example/\",\"http://a8.example/\","
	    "\"http://a9.example/\"]}");
	memset(m, 0, sizeof(*m));
	for (int i = 0;; i++) {
		int rc = pc_policy_check_call_memo(p, &w, "fetch__get", NULL,
		    a, m, &why, arg, sizeof(arg));

		assert_true(i <= (int)PC_URL_MEMO_MAX);
		if (rc == PC_E_DENIED)
			break;
		assert_int_equal(rc, PC_E_AGAIN);
		pc_url_memo_put(m, 0, one_v4("93.184.216.34", &sa, &ai));
	}
	assert_int_equal(m->n, PC_URL_MEMO_MAX);
	json_decref(a);
	free(m);
	pc_policy_free(p);
}

static void
commands(void **st)
{
	struct pc_policy *p;
	struct pc_principal w = mkwho("a", "", "r");
	const char *cmds[] = { "ls", "git" };
	const char *cargs[] = { "-l", "-a", "status", "--format=*" };
	struct pc_constraint c = {
		.kind = PC_CON_COMMAND, .tool_pattern = "sh__run", .arg = "cmd",
		.values = cmds, .nvalues = 2, .cmd_args = cargs, .ncmd_args = 4,
	};
	static const struct { const char *args; int rc; } cases[] = {
		{ "{\"cmd\":\"ls\"}", 0 },
		{ "{\"cmd\":[\"git\",\"status\"]}", 0 },
		{ "{\"cmd\":[\"ls\",\"-l\",\"-a\"]}", 0 },
		{ "{\"cmd\":[\"git\",\"--format=%h\"]}", 0 },
		/* '*' would take these; a climbing argument needs an exact
		 * pattern */
		{ "{\"cmd\":[\"git\",\"--format=../x\"]}", PC_E_DENIED },
		{ "{\"cmd\":[\"git\",\"--format=a/../../x\"]}", PC_E_DENIED },
		{ "{\"cmd\":[\"git\",\"--format=%2e%2e\"]}", PC_E_DENIED },
		{ "{\"cmd\":\"ls -l\"}", PC_E_DENIED },
		{ "{\"cmd\":\"ls; rm -rf /\"}", PC_E_DENIED },
		{ "{\"cmd\":\"rm\"}", PC_E_DENIED },
		{ "{\"cmd\":\"/bin/ls\"}", PC_E_DENIED },
		{ "{\"cmd\":[\"ls\",\"/etc\"]}", PC_E_DENIED },
		{ "{\"cmd\":[\"git\",\"push\"]}", PC_E_DENIED },
		{ "{\"cmd\":[]}", PC_E_DENIED },
		{ "{\"cmd\":[\"ls\",7]}", PC_E_DENIED },
		{ "{\"cmd\":[[\"ls\"]]}", PC_E_DENIED },
		{ "{\"cmd\":\"ls\\u0000x\"}", PC_E_DENIED },
		{ "{}", PC_E_DENIED },
	};
	size_t i;

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_rule(p, "r", "*", PC_ACC_ALL), 0);
	assert_int_equal(pc_policy_add_constraint(p, &c), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *a = js(cases[i].args);
		const char *why;
		char arg[16];

		if (pc_policy_check_call(p, &w, "sh__run", NULL, a, &why, arg,
		    sizeof(arg)) != cases[i].rc)
			fail_msg("case %zu: %s", i, cases[i].args);
		json_decref(a);
	}
	pc_policy_free(p);
}

/* Prompts and resources are granted by pattern; default roles are held by
 * every principal, including one with no roles at all. */
static void
items_and_default_roles(void **st)
{
	struct pc_policy *p;
	struct pc_principal w = { .method = PC_AUTH_NONE };
	json_t *a = js("{}");
	const char *why;
	char arg[16];

	(void)st;
	assert_int_equal(pc_policy_new(&p), 0);
	assert_int_equal(pc_policy_add_grant(p, "reader", PC_ITEM_PROMPT,
	    "fs__*"), 0);
	assert_int_equal(pc_policy_add_grant(p, "reader", PC_ITEM_RESOURCE,
	    "fs+file:///srv/*"), 0);
	assert_int_equal(pc_policy_add_grant(p, "reader", PC_ITEM_TOOL, "x"),
	    PC_E_INVAL);
	assert_int_equal(pc_policy_add_grant(p, "a,b", PC_ITEM_PROMPT, "x"),
	    PC_E_INVAL);
	assert_true(pc_policy_item_allowed(p, "reader", PC_ITEM_PROMPT,
	    "fs__greet"));
	assert_false(pc_policy_item_allowed(p, "reader", PC_ITEM_PROMPT,
	    "gh__greet"));
	assert_true(pc_policy_item_allowed(p, "reader", PC_ITEM_RESOURCE,
	    "fs+file:///srv/a.txt"));
	assert_false(pc_policy_item_allowed(p, "reader", PC_ITEM_RESOURCE,
	    "fs+file:///etc/passwd"));
	/* The glob's '*' would take these; the upstream resolves them out
	 * of the granted directory. */
	{
		static const char *const climbing[] = {
			"fs+file:///srv/../etc/passwd",
			"fs+file:///srv/a/../../etc/passwd",
			"fs+file:///srv/%2e%2e/etc/passwd",
			"fs+file:///srv/%2E%2e%2Fetc%2fpasswd",
			"fs+file:///srv/..\\etc",
			"fs+file:///srv/./a.txt",
			"fs+file:///srv/x?path=../../etc/passwd",
			"fs+file:///srv/..",
			/* URL parsers (WHATWG: Node's URL, the TS SDK) drop
			 * tab, LF and CR anywhere and trim spaces and controls
			 * at the ends before resolving dot segments. */
			"fs+file:///srv/.\t./etc/passwd",
			"fs+file:///srv/.\n./.\r./etc/passwd",
			"fs+file:///srv/a/.. ",
			"fs+file:///srv/a/..\x7f",
			"fs+file:///srv/a/..\x01",
		};
		for (size_t i = 0; i < sizeof(climbing) / sizeof(*climbing); i++)
			if (pc_policy_item_allowed(p, "reader", PC_ITEM_RESOURCE,
			    climbing[i]))
				fail_msg("allowed: %s", climbing[i]);
		assert_true(pc_policy_item_allowed(p, "reader",
		    PC_ITEM_RESOURCE, "fs+file:///srv/a..b/c.d"));
	}
	/* A prompt grant is not a tool grant, nor the other way round. */
	assert_false(pc_policy_tool_allowed(p, "reader", "fs__greet", NULL));
	assert_false(pc_policy_item_allowed(p, "reader", PC_ITEM_TOOL,
	    "fs__greet"));
	assert_false(pc_policy_item_allowed(p, "", PC_ITEM_PROMPT, "fs__greet"));

	/* Default roles: everyone, also with roles NULL or "". */
	assert_int_equal(pc_policy_add_rule(p, "base", "up__echo", PC_ACC_ALL),
	    0);
	assert_false(pc_policy_tool_allowed(p, "", "up__echo", NULL));
	assert_int_equal(pc_policy_add_default_role(p, "base"), 0);
	assert_int_equal(pc_policy_add_default_role(p, "x,y"), PC_E_INVAL);
	assert_true(pc_policy_tool_allowed(p, "", "up__echo", NULL));
	assert_true(pc_policy_tool_allowed(p, NULL, "up__echo", NULL));
	assert_true(pc_policy_tool_allowed(p, "ghost", "up__echo", NULL));
	assert_false(pc_policy_tool_allowed(p, NULL, "up__other", NULL));
	assert_int_equal(pc_policy_check_call(p, &w, "up__echo", NULL, a, &why,
	    arg, sizeof(arg)), 0);
	assert_int_equal(pc_policy_check_call(p, &w, "up__other", NULL, a,
	    &why, arg, sizeof(arg)), PC_E_DENIED);
	assert_string_equal(why, PC_POLICY_DENIED_TOOL);
	/* The NULL policy (no policy: section) grants nothing. */
	assert_false(pc_policy_tool_allowed(NULL, "base", "up__echo", NULL));
	assert_false(pc_policy_item_allowed(NULL, "reader", PC_ITEM_PROMPT,
	    "fs__greet"));
	json_decref(a);
	pc_policy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(glob_matches),
		cmocka_unit_test(classes_from_annotations),
		cmocka_unit_test(role_matrix),
		cmocka_unit_test(later_tool_denied_until_granted),
		cmocka_unit_test(traversal_variants_refused),
		cmocka_unit_test(legit_paths_normalized),
		cmocka_unit_test(call_rewrites_paths),
		cmocka_unit_test(tenant_scoping),
		cmocka_unit_test(strings_regex_numbers),
		cmocka_unit_test(urls),
		cmocka_unit_test(url_memo),
		cmocka_unit_test(commands),
		cmocka_unit_test(items_and_default_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
