/*
 * Config loader: the schema, every error class with its file:line:col, the
 * secret references, and the dump.
 *
 * Sample files live in tests/unit/data/config/ (found next to this source
 * file, so run the test from the repository root). Files that need a mode
 * git cannot keep (0600 secrets) are made in a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authz/policy.h"
#include "config/config.h"
#include "lib/errors.h"
#include "lib/limits.h"

/* --- helpers ----------------------------------------------------------------- */

static char datadir[PATH_MAX];

static const char *
data_path(const char *name)
{
	static char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", datadir, name);
	return p;
}

/* All errors as printed, one per line; caller frees. */
static char *
errs_text(const struct pc_config_errors *e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	pc_config_errors_print(e, f);
	fclose(f);
	return buf;
}

/*
 * Load yaml as t.yaml. A document without an auth: section gets `auth: none`
 * appended (after everything, so positions in messages do not move): these
 * tests are about other sections, and a config must name its authentication.
 */
static int
load_str(const char *yaml, struct pc_config **cfg, struct pc_config_errors *e)
{
	char *buf = NULL;
	int rc;

	if (strncmp(yaml, "auth:", 5) == 0 || strstr(yaml, "\nauth:") != NULL ||
	    yaml[0] == '-' || yaml[0] == '[')
		return pc_config_load_buffer("t.yaml", yaml, strlen(yaml), cfg, e);
	size_t n = strlen(yaml);
	buf = malloc(n + 16);
	assert_non_null(buf);
	memcpy(buf, yaml, n);
	if (n > 0 && yaml[n - 1] != '\n')
		buf[n++] = '\n';
	memcpy(buf + n, "auth: none\n", 11);
	rc = pc_config_load_buffer("t.yaml", buf, n + 11, cfg, e);
	free(buf);
	return rc;
}

/* Load yaml, expect failure with exactly `want` as the printed errors. */
static void
expect_errors(const char *yaml, const char *want)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	char *got;

	assert_int_equal(load_str(yaml, &cfg, &e), PC_E_CONFIG);
	assert_null(cfg);
	got = errs_text(&e);
	assert_string_equal(got, want);
	free(got);
	pc_config_errors_free(&e);
}

static struct pc_config *
expect_ok(const char *yaml)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	int rc = load_str(yaml, &cfg, &e);

	if (rc != 0) {
		char *t = errs_text(&e);
		fprintf(stderr, "unexpected errors:\n%s", t);
		free(t);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(e.n, 0);
	assert_non_null(cfg);
	pc_config_errors_free(&e);
	return cfg;
}

static char *
dump_text(const struct pc_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(pc_config_dump(cfg, f), 0);
	fclose(f);
	return buf;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* --- defaults and a full file ------------------------------------------------- */

static void
test_defaults(void **state)
{
	struct pc_config *cfg = NULL;

	(void)state;
	assert_int_equal(pc_config_default(&cfg), 0);
	assert_string_equal(cfg->path, "<embedded>");
	assert_string_equal(cfg->listen.address, "127.0.0.1");
	assert_int_equal(cfg->listen.port, 8080);
	assert_string_equal(cfg->admin.address, "127.0.0.1");
	assert_int_equal(cfg->admin.port, 8081);
	assert_string_equal(cfg->mcp_path, "/mcp");
	assert_int_equal(cfg->norigins, 0);
	assert_null(cfg->allowed_origins[0]);
	assert_int_equal(cfg->nhosts, 0);
	assert_null(cfg->allowed_hosts[0]);
	assert_true(cfg->legacy_enabled);
	assert_true(cfg->modern_enabled);
	assert_string_equal(cfg->log_level, "info");
	assert_int_equal(cfg->limits.max_body_bytes, PC_DEF_MAX_BODY_BYTES);
	assert_int_equal(cfg->limits.max_header_bytes, PC_DEF_MAX_HEADER_BYTES);
	assert_int_equal(cfg->limits.max_json_depth, PC_DEF_MAX_JSON_DEPTH);
	assert_int_equal(cfg->limits.max_string_bytes, PC_DEF_MAX_STRING_BYTES);
	assert_int_equal(cfg->limits.max_pending_per_client,
	    PC_DEF_MAX_PENDING_PER_CLIENT);
	assert_int_equal(cfg->limits.idle_timeout_s, PC_DEF_IDLE_TIMEOUT_S);
	assert_int_equal(cfg->limits.read_timeout_s, PC_DEF_READ_TIMEOUT_S);
	assert_int_equal(cfg->limits.max_sessions, PC_DEF_MAX_SESSIONS);
	assert_int_equal(cfg->limits.session_idle_s, PC_DEF_SESSION_IDLE_S);
	assert_int_equal(cfg->limits.page_size, PC_DEF_PAGE_SIZE);
	assert_int_equal(cfg->limits.list_ttl_ms, 30000);
	assert_int_equal(cfg->nupstreams, 0);
	assert_int_equal(cfg->nsecrets, 0);
	pc_config_free(cfg);
	pc_config_free(NULL);
	pc_config_errors_free(NULL);
}

/* An empty file, or one of comments, means all defaults. */
static void
test_empty_file(void **state)
{
	struct pc_config *cfg;

	(void)state;
	cfg = expect_ok("");
	assert_int_equal(cfg->listen.port, 8080);
	pc_config_free(cfg);
	cfg = expect_ok("# nothing\n---\n");
	assert_int_equal(cfg->admin.port, 8081);
	pc_config_free(cfg);
	cfg = expect_ok("http:\nlimits:\nupstreams:\n");
	assert_string_equal(cfg->mcp_path, "/mcp");
	assert_int_equal(cfg->nupstreams, 0);
	pc_config_free(cfg);
}

static void
test_upstream_defaults(void **state)
{
	struct pc_config *cfg;
	const struct pc_upstream_conf *u;

	(void)state;
	cfg = expect_ok("upstreams:\n  - name: a\n    command: [srv]\n");
	assert_int_equal(cfg->nupstreams, 1);
	u = &cfg->upstreams[0];
	assert_string_equal(u->name, "a");
	assert_string_equal(u->prefix, "a");
	assert_int_equal(u->argc, 1);
	assert_string_equal(u->argv[0], "srv");	/* PATH lookup: kept */
	assert_null(u->argv[1]);
	assert_int_equal(u->nenv, 0);
	assert_null(u->env[0]);
	assert_int_equal(u->ninherit, 3);
	assert_string_equal(u->inherit_env[0], "PATH");
	assert_string_equal(u->inherit_env[1], "HOME");
	assert_string_equal(u->inherit_env[2], "LANG");
	assert_null(u->inherit_env[3]);
	assert_null(u->cwd);
	assert_int_equal(u->era, PC_ERA_AUTO);
	assert_false(u->client_roots);
	assert_int_equal(u->call_timeout_ms, PC_DEF_CALL_TIMEOUT_MS);
	assert_int_equal(u->max_call_timeout_ms, PC_DEF_MAX_CALL_TIMEOUT_MS);
	assert_int_equal(u->probe_timeout_ms, PC_DEF_PROBE_TIMEOUT_MS);
	assert_int_equal(u->init_timeout_ms, PC_DEF_INIT_TIMEOUT_MS);
	assert_int_equal(u->shutdown_grace_ms, PC_DEF_SHUTDOWN_GRACE_MS);
	assert_int_equal(u->restart_min_ms, PC_DEF_RESTART_MIN_MS);
	assert_int_equal(u->restart_max_ms, PC_DEF_RESTART_MAX_MS);
	assert_int_equal(u->max_line_bytes, PC_DEF_MAX_LINE_BYTES);
	pc_config_free(cfg);
}

static void
test_full(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	const struct pc_upstream_conf *u;
	char want[PATH_MAX + 64];
	char *dump;
	int rc;

	(void)state;
	setenv("PC_TEST_TOKEN", "tok-4f1c9a", 1);
	rc = pc_config_load(data_path("full.yaml"), &cfg, &e);
	if (rc != 0) {
		char *t = errs_text(&e);
		fprintf(stderr, "%s", t);
		free(t);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->path, data_path("full.yaml"));
	assert_string_equal(cfg->listen.address, "127.0.0.2");
	assert_int_equal(cfg->listen.port, 9000);
	assert_string_equal(cfg->admin.address, "::1");
	assert_int_equal(cfg->admin.port, 9001);
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->mcp_path, "/gateway/mcp");
	assert_int_equal(cfg->norigins, 2);
	assert_string_equal(cfg->allowed_origins[0], "http://localhost:3000");
	assert_string_equal(cfg->allowed_origins[1], "https://app.example:8443");
	assert_null(cfg->allowed_origins[2]);
	assert_int_equal(cfg->nhosts, 2);
	assert_string_equal(cfg->allowed_hosts[0], "localhost:9000");
	assert_string_equal(cfg->allowed_hosts[1], "127.0.0.2:9000");
	assert_false(cfg->legacy_enabled);
	assert_true(cfg->modern_enabled);
	assert_int_equal(cfg->limits.max_body_bytes, 2u << 20);
	assert_int_equal(cfg->limits.max_header_bytes, 32768);
	assert_int_equal(cfg->limits.max_json_depth, 32);
	assert_int_equal(cfg->limits.max_string_bytes, 512u << 10);
	assert_int_equal(cfg->limits.max_pending_per_client, 16);
	assert_int_equal(cfg->limits.idle_timeout_s, 120);
	assert_int_equal(cfg->limits.read_timeout_s, 5);
	assert_int_equal(cfg->limits.max_sessions, 10);
	assert_int_equal(cfg->limits.session_idle_s, 3600);
	assert_int_equal(cfg->limits.page_size, 50);
	assert_int_equal(cfg->limits.list_ttl_ms, 1500);

	assert_int_equal(cfg->nupstreams, 2);
	u = &cfg->upstreams[0];
	assert_string_equal(u->name, "everything");
	assert_string_equal(u->prefix, "every");
	assert_int_equal(u->argc, 3);
	assert_string_equal(u->argv[0], "npx");
	assert_string_equal(u->argv[1], "-y");
	assert_string_equal(u->argv[2], "@modelcontextprotocol/server-everything");
	assert_null(u->argv[3]);
	assert_int_equal(u->nenv, 5);
	assert_string_equal(u->env[0], "API_KEY=tok-4f1c9a");
	assert_string_equal(u->env[1], "MODE=fast");
	assert_string_equal(u->env[2], "AUTH_HEADER=Bearer tok-4f1c9a");
	assert_string_equal(u->env[3], "LITERAL=${HOME}");
	assert_string_equal(u->env[4], "EMPTY_TOKEN=");
	assert_null(u->env[5]);
	assert_int_equal(u->ninherit, 1);
	assert_string_equal(u->inherit_env[0], "PATH");
	assert_null(u->inherit_env[1]);
	snprintf(want, sizeof(want), "%s/work", datadir);
	assert_string_equal(u->cwd, want);
	assert_int_equal(u->era, PC_ERA_LEGACY);
	assert_true(u->client_roots);
	assert_int_equal(u->call_timeout_ms, 10000);
	assert_int_equal(u->max_call_timeout_ms, 60000);
	assert_int_equal(u->probe_timeout_ms, 2000);
	assert_int_equal(u->init_timeout_ms, 20000);
	assert_int_equal(u->shutdown_grace_ms, 500);
	assert_int_equal(u->restart_min_ms, 100);
	assert_int_equal(u->restart_max_ms, 60000);
	assert_int_equal(u->max_line_bytes, 1u << 20);

	u = &cfg->upstreams[1];
	assert_string_equal(u->name, "fs");
	assert_string_equal(u->prefix, "");
	assert_int_equal(u->argc, 2);
	/* argv[0] with a '/' is taken from the config's directory; later
	 * arguments are passed as written. */
	snprintf(want, sizeof(want), "%s/bin/fs-server", datadir);
	assert_string_equal(u->argv[0], want);
	assert_string_equal(u->argv[1], "data");

	/* One secret, recorded once though referenced twice. */
	assert_int_equal(cfg->nsecrets, 1);
	assert_string_equal(cfg->secrets[0], "tok-4f1c9a");
	assert_null(cfg->secrets[1]);

	dump = dump_text(cfg);
	assert_null(strstr(dump, "tok-4f1c9a"));
	assert_non_null(strstr(dump, "API_KEY: \"<redacted>\""));
	assert_non_null(strstr(dump, "AUTH_HEADER: \"Bearer <redacted>\""));
	assert_non_null(strstr(dump, "LITERAL: \"$${HOME}\""));
	assert_non_null(strstr(dump, "admin_listen: \"[::1]:9001\""));
	assert_non_null(strstr(dump, "restart_backoff: {min: 100ms, max: 1m}"));
	free(dump);
	pc_config_free(cfg);
	unsetenv("PC_TEST_TOKEN");
}

/* What the dump prints loads back to the same config. */
static void
test_dump_reloads(void **state)
{
	struct pc_config *a, *b;
	char *da, *db;

	(void)state;
	a = expect_ok("listen: \"[::1]:0\"\n"
	    "admin_listen: off\n"
	    "http: {allowed_hosts: [\"a:1\"]}\n"
	    "limits: {list_ttl: 0s, max_header_bytes: 100000}\n"
	    "upstreams:\n"
	    "  - name: x\n"
	    "    prefix: \"\"\n"
	    "    command: [/bin/x, \"a \\\"q\\\" $${lit}\", \"\\t\"]\n"
	    "    env: {MODE: \"$$${x}\"}\n"
	    "    cwd: /tmp\n"
	    "    max_line_bytes: 1000000\n");
	assert_null(a->admin.address);
	assert_string_equal(a->upstreams[0].argv[1], "a \"q\" ${lit}");
	assert_string_equal(a->upstreams[0].env[0], "MODE=$${x}");
	da = dump_text(a);
	b = expect_ok(da);
	db = dump_text(b);
	assert_string_equal(da, db);
	assert_string_equal(b->upstreams[0].argv[1], "a \"q\" ${lit}");
	assert_string_equal(b->upstreams[0].env[0], "MODE=$${x}");
	assert_int_equal(b->limits.max_header_bytes, 100000);
	free(da);
	free(db);
	pc_config_free(a);
	pc_config_free(b);
}

/* --- error classes ------------------------------------------------------------ */

static void
test_misspelt_key(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	char want[PATH_MAX + 128];
	char *got;

	(void)state;
	assert_int_equal(pc_config_load(data_path("misspelt.yaml"), &cfg, &e),
	    PC_E_CONFIG);
	assert_null(cfg);
	got = errs_text(&e);
	snprintf(want, sizeof(want), "%s:3:1: unknown key 'upstream'; did you "
	    "mean 'upstreams'?\n", data_path("misspelt.yaml"));
	assert_string_equal(got, want);
	free(got);
	pc_config_errors_free(&e);

	expect_errors("limits:\n  max_body: 1\n  idle_timout: 1s\n"
	    "upstreams:\n  - name: a\n    cmd: [x]\n    comand: [x]\n"
	    "zzz: 1\n",
	    "t.yaml:2:3: unknown key 'max_body' in limits; did you mean "
	    "'max_body_bytes'?\n"
	    "t.yaml:3:3: unknown key 'idle_timout' in limits; did you mean "
	    "'idle_timeout'?\n"
	    "t.yaml:5:5: upstream a: missing required key 'command'\n"
	    "t.yaml:6:5: unknown key 'cmd' in upstream; did you mean "
	    "'command'?\n"
	    "t.yaml:7:5: unknown key 'comand' in upstream; did you mean "
	    "'command'?\n"
	    "t.yaml:8:1: unknown key 'zzz'; expected one of: listen, "
	    "admin_listen, log_level, http, eras, limits, upstreams, mode, tls, "
	    "trusted_proxies, auth, audit, rate_limits, budgets, tool_costs, "
	    "breakers, concurrency, limits_store, policy, redaction\n");
}

/* One run reports every problem, in file order. */
static void
test_many_errors(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	char *got, *want = NULL;
	size_t wl = 0;
	FILE *w;
	const char *p = data_path("many-errors.yaml");

	(void)state;
	assert_int_equal(pc_config_load(p, &cfg, &e), PC_E_CONFIG);
	assert_null(cfg);
	got = errs_text(&e);
	w = open_memstream(&want, &wl);
	fprintf(w, "%s:1:9: listen: 'localhost' is not a numeric IP address "
	    "(hostnames are not resolved; use 127.0.0.1 or [::1])\n", p);
	fprintf(w, "%s:2:15: admin_listen: port in '127.0.0.1:70000' must be a "
	    "number from 0 to 65535\n", p);
	fprintf(w, "%s:3:12: log_level: expected debug, info, warn or error, "
	    "got 'loud'\n", p);
	fprintf(w, "%s:5:17: idle_timeout: a duration needs a unit: add a unit, "
	    "e.g. 30s or 30ms\n", p);
	fprintf(w, "%s:6:19: max_body_bytes: '1GiB' is out of range (1 to "
	    "64MiB)\n", p);
	fprintf(w, "%s:9:14: command must be an argv list, not a shell string; "
	    "write [program, arg, ...]\n", p);
	fprintf(w, "%s:11:21: env GITHUB_TOKEN holds a literal secret; use "
	    "${env:NAME} or ${file:PATH}\n", p);
	fprintf(w, "%s:12:5: duplicate upstream name 'one' (first at line 8)\n",
	    p);
	fprintf(w, "%s:14:10: era: expected auto, legacy or modern, got "
	    "'future'\n", p);
	fclose(w);
	assert_string_equal(got, want);
	assert_int_equal(e.n, 9);
	/* The literal is never echoed back. */
	assert_null(strstr(got, "ghp_"));
	free(got);
	free(want);
	pc_config_errors_free(&e);
}

static void
test_error_cap(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	char *yaml = malloc(200 * 16);
	size_t o = 0;

	(void)state;
	assert_non_null(yaml);
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(yaml + o, 200 * 16 - o, "bad%03d: 1\n", i);
	assert_int_equal(load_str(yaml, &cfg, &e), PC_E_CONFIG);
	assert_int_equal(e.n, PC_MAX_CONFIG_ERRORS);
	assert_int_equal(e.v[0].line, 1);
	assert_int_equal(e.v[PC_MAX_CONFIG_ERRORS - 2].line,
	    PC_MAX_CONFIG_ERRORS - 1);
	assert_int_equal(e.v[PC_MAX_CONFIG_ERRORS - 1].line, 0);
	assert_non_null(strstr(e.v[PC_MAX_CONFIG_ERRORS - 1].msg,
	    "too many errors"));
	pc_config_errors_free(&e);
	free(yaml);
}

static void
test_wrong_types(void **state)
{
	(void)state;
	expect_errors("limits:\n"
	    "  read_timeout: abc\n"
	    "  idle_timeout: 250ms\n"
	    "  max_body_bytes: 1MB\n"
	    "  max_json_depth: 1.5\n"
	    "  list_ttl: [1s]\n"
	    "  page_size: 0\n"
	    "eras: {legacy: yes}\n"
	    "http: {path: mcp, allowed_origins: [http://a/b]}\n",
	    "t.yaml:2:17: read_timeout: expected a duration such as 30s (units "
	    "ms, s, m, h), got 'abc'\n"
	    "t.yaml:3:17: idle_timeout: must be a whole number of seconds, got "
	    "'250ms'\n"
	    "t.yaml:4:19: max_body_bytes: unit in '1MB' is ambiguous; use KiB, "
	    "MiB or GiB (powers of 1024) or a number of bytes\n"
	    "t.yaml:5:19: max_json_depth: expected an integer, got '1.5'\n"
	    "t.yaml:6:13: list_ttl: expected a duration such as 30s, got a "
	    "list\n"
	    "t.yaml:7:14: page_size: '0' is out of range (1 to 10000)\n"
	    "t.yaml:8:16: legacy: expected true or false, got 'yes'\n"
	    "t.yaml:9:14: path: must start with '/', e.g. /mcp\n"
	    "t.yaml:9:37: allowed_origins: an Origin is scheme://host[:port] "
	    "with no path, e.g. http://localhost:8080\n");
	expect_errors("- a\n- b\n", "t.yaml:1:1: expected a mapping of keys at "
	    "the top level (listen:, upstreams:, ...), got a list\n");
	expect_errors("eras: {legacy: false, modern: false}\n",
	    "t.yaml:1:7: eras: at least one of legacy and modern must be "
	    "true\n");
}

static void
test_bare_duration(void **state)
{
	(void)state;
	expect_errors("upstreams:\n  - name: a\n    command: [x]\n"
	    "    timeout: 30\n",
	    "t.yaml:4:14: timeout: a duration needs a unit: add a unit, e.g. "
	    "30s or 30ms\n");
}

static void
test_shell_string_command(void **state)
{
	(void)state;
	expect_errors("upstreams:\n  - name: a\n    command: npx -y x\n",
	    "t.yaml:3:14: command must be an argv list, not a shell string; "
	    "write [program, arg, ...]\n");
	expect_errors("upstreams:\n  - name: a\n    command: []\n"
	    "  - command: [x]\n  - name: c\n",
	    "t.yaml:3:14: command: needs 1 to 1024 items\n"
	    "t.yaml:4:5: upstream: missing required key 'name'\n"
	    "t.yaml:5:5: upstream c: missing required key 'command'\n");
}

static void
test_literal_secret(void **state)
{
	struct pc_config *cfg;

	(void)state;
	expect_errors("upstreams:\n  - name: a\n    command: [x]\n"
	    "    env:\n      MY_API_KEY: sk-live-123\n"
	    "      Password: \"hunter2\"\n      GitHubAuth: $${x}\n",
	    "t.yaml:5:19: env MY_API_KEY holds a literal secret; use "
	    "${env:NAME} or ${file:PATH}\n"
	    "t.yaml:6:17: env Password holds a literal secret; use "
	    "${env:NAME} or ${file:PATH}\n"
	    "t.yaml:7:19: env GitHubAuth holds a literal secret; use "
	    "${env:NAME} or ${file:PATH}\n");
	/* Non-secret names may hold literals; secret names may be empty. */
	cfg = expect_ok("upstreams:\n  - name: a\n    command: [x]\n"
	    "    env: {MODE: fast, TOKEN_FILE_HINT: \"\"}\n");
	assert_string_equal(cfg->upstreams[0].env[0], "MODE=fast");
	assert_int_equal(cfg->nsecrets, 0);
	pc_config_free(cfg);
}

static void
test_env_ref_unset_no_leak(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	char *got;

	(void)state;
	setenv("PC_TEST_SECRET", "hunter2-9d8e", 1);
	unsetenv("PC_TEST_UNSET_VAR");
	assert_int_equal(load_str("upstreams:\n  - name: a\n    command: [x]\n"
	    "    env:\n      OK_TOKEN: \"${env:PC_TEST_SECRET}\"\n"
	    "      API_TOKEN: \"pre ${env:PC_TEST_UNSET_VAR} ${env:PC_TEST_SECRET}\"\n"
	    "      B: \"${env:1BAD}${bogus:x}${noKind}${vault:kv/x}\"\n"
	    "      C: \"${env:PC_TEST_SECRET\"\n",
	    &cfg, &e), PC_E_CONFIG);
	assert_null(cfg);
	got = errs_text(&e);
	assert_string_equal(got,
	    "t.yaml:6:18: ${env:PC_TEST_UNSET_VAR}: environment variable "
	    "PC_TEST_UNSET_VAR is not set\n"
	    "t.yaml:7:10: ${env:1BAD}: '1BAD' is not a valid environment "
	    "variable name\n"
	    "t.yaml:7:10: unknown reference kind 'bogus' (expected ${env:NAME} "
	    "or ${file:PATH})\n"
	    "t.yaml:7:10: reference ${noKind} has no kind; write ${env:noKind} "
	    "or ${file:PATH} (or $${ for a literal \"${\")\n"
	    "t.yaml:7:10: vault references are not supported yet\n"
	    "t.yaml:8:10: unterminated reference: '${' without '}' (write $${ "
	    "for a literal \"${\")\n");
	assert_null(strstr(got, "hunter2"));
	free(got);
	pc_config_errors_free(&e);
	unsetenv("PC_TEST_SECRET");
}

struct tmp {
	char dir[64];
	char cfg[128];
	char sec[128];
};

/* inherit_env: values whose name says secret are known to the redactor
 * (plurals, AUTH words too); sockets, GIT_AUTHOR_NAME, PWD and short
 * values are not. */
static void
test_inherit_env_secrets(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;

	(void)state;
	setenv("PCT_SSH_AUTH_SOCK", "/tmp/ssh-agent-12345.sock", 1);
	setenv("PCT_GIT_AUTHOR_NAME", "Alice Example", 1);
	setenv("PCT_KEYBOARD_LAYOUT", "us-international", 1);
	setenv("PCT_OPENAI_API_KEY", "sk-inherited-value-123", 1);
	setenv("PCT_GITHUB_ACCESSTOKEN", "ghp-inherited-value-456", 1);
	setenv("PCT_SHORT_TOKEN", "abc", 1);
	setenv("PCT_API_KEYS", "key-one,key-two", 1);
	setenv("PCT_NPM_AUTH", "npm-auth-value-789", 1);
	setenv("SSH_AUTH_SOCK", "/tmp/ssh-agent-real.sock", 1);
	setenv("OLDPWD", "/home/somebody/work", 1);
	assert_int_equal(load_str("upstreams:\n  - name: a\n    command: [x]\n"
	    "    inherit_env: [PCT_SSH_AUTH_SOCK, PCT_GIT_AUTHOR_NAME, "
	    "PCT_KEYBOARD_LAYOUT, PCT_OPENAI_API_KEY, PCT_GITHUB_ACCESSTOKEN, "
	    "PCT_SHORT_TOKEN, PCT_API_KEYS, PCT_NPM_AUTH, SSH_AUTH_SOCK, "
	    "OLDPWD]\n", &cfg, &e), 0);
	assert_int_equal(cfg->nsecrets, 4);
	assert_string_equal(cfg->secrets[0], "sk-inherited-value-123");
	assert_string_equal(cfg->secrets[1], "ghp-inherited-value-456");
	assert_string_equal(cfg->secrets[2], "key-one,key-two");
	assert_string_equal(cfg->secrets[3], "npm-auth-value-789");
	pc_config_free(cfg);
	pc_config_errors_free(&e);
}

/* Setup/teardown, so that a failed assertion still removes the files. */
static int
tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/pc-test-config-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->cfg, sizeof(t->cfg), "%s/c.yaml", t->dir);
	snprintf(t->sec, sizeof(t->sec), "%s/secrets.txt", t->dir);
	*state = t;
	return 0;
}

static int
tmp_teardown(void **state)
{
	struct tmp *t = *state;
	int rc;

	unlink(t->cfg);
	unlink(t->sec);
	rc = rmdir(t->dir);
	free(t);
	return rc;
}

static const char file_ref_yaml[] =
    "upstreams:\n"
    "  - name: a\n"
    "    command: [x, \"--key=${file:secrets.txt}\"]\n"
    "    env:\n"
    "      API_KEY: \"${file:secrets.txt}\"\n"
    "auth: none\n";

static void
test_file_ref_group_readable(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	struct tmp *tp = *state, t = *tp;
	char want[512];
	char *got;

	write_file(t.cfg, file_ref_yaml, 0644);
	write_file(t.sec, "s3cret-file-value\n", 0640);
	assert_int_equal(pc_config_load(t.cfg, &cfg, &e), PC_E_CONFIG);
	assert_null(cfg);
	got = errs_text(&e);
	snprintf(want, sizeof(want),
	    "%s:3:18: ${file:secrets.txt}: secrets.txt is readable by "
	    "group/others (chmod 600)\n"
	    "%s:5:16: ${file:secrets.txt}: secrets.txt is readable by "
	    "group/others (chmod 600)\n", t.cfg, t.cfg);
	assert_string_equal(got, want);
	assert_null(strstr(got, "s3cret"));
	free(got);
	pc_config_errors_free(&e);

	/* Writable by others is refused too; a missing file is named. */
	assert_int_equal(chmod(t.sec, 0602), 0);
	assert_int_equal(pc_config_load(t.cfg, &cfg, &e), PC_E_CONFIG);
	assert_non_null(strstr(e.v[0].msg, "writable by group/others"));
	pc_config_errors_free(&e);
	/* A file another user owns (who could rewrite it) is refused; only
	 * root can hand a file over, which CI's runs are. */
	if (geteuid() == 0) {
		assert_int_equal(chmod(t.sec, 0600), 0);
		assert_int_equal(chown(t.sec, 4242, 4242), 0);
		assert_int_equal(pc_config_load(t.cfg, &cfg, &e), PC_E_CONFIG);
		assert_non_null(strstr(e.v[0].msg, "belongs to another user "
		    "(uid 4242)"));
		pc_config_errors_free(&e);
		assert_int_equal(chown(t.sec, 0, 0), 0);
		assert_int_equal(pc_config_load(t.cfg, &cfg, &e), 0);
		pc_config_free(cfg);
		cfg = NULL;
	}
	unlink(t.sec);
	assert_int_equal(pc_config_load(t.cfg, &cfg, &e), PC_E_CONFIG);
	assert_string_equal(e.v[0].msg, "${file:secrets.txt}: cannot open "
	    "secrets.txt: No such file or directory");
	pc_config_errors_free(&e);
}

static void
test_file_ref_ok(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	struct tmp *tp = *state, t = *tp;
	char *dump;

	write_file(t.cfg, file_ref_yaml, 0644);
	/* Only one trailing newline is stripped. */
	write_file(t.sec, "s3cret-file-value\n\n", 0600);
	assert_int_equal(pc_config_load(t.cfg, &cfg, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->upstreams[0].env[0],
	    "API_KEY=s3cret-file-value\n");
	assert_string_equal(cfg->upstreams[0].argv[1],
	    "--key=s3cret-file-value\n");
	assert_int_equal(cfg->nsecrets, 1);
	assert_string_equal(cfg->secrets[0], "s3cret-file-value\n");
	dump = dump_text(cfg);
	assert_null(strstr(dump, "s3cret"));
	assert_non_null(strstr(dump, "\"--key=<redacted>\""));
	free(dump);
	pc_config_free(cfg);

	write_file(t.sec, "v\n", 0400);
	assert_int_equal(pc_config_load(t.cfg, &cfg, &e), 0);
	assert_string_equal(cfg->upstreams[0].env[0], "API_KEY=v");
	assert_string_equal(cfg->secrets[0], "v");
	pc_config_free(cfg);
}

static void
test_duplicate_names(void **state)
{
	(void)state;
	expect_errors("upstreams:\n"
	    "  - name: a\n    command: [x]\n"
	    "  - name: b\n    command: [x]\n    prefix: a\n"
	    "  - name: a\n    command: [x]\n"
	    "  - name: c\n    command: [x]\n    prefix: \"\"\n"
	    "  - name: d\n    command: [x]\n    prefix: \"\"\n",
	    "t.yaml:6:5: upstreams 'a' and 'b' both use the prefix 'a'\n"
	    "t.yaml:7:5: duplicate upstream name 'a' (first at line 2)\n");
}

static void
test_duplicate_yaml_key(void **state)
{
	(void)state;
	expect_errors("listen: 127.0.0.1:1\nlog_level: info\n"
	    "listen: 127.0.0.1:2\n"
	    "upstreams:\n  - name: a\n    command: [x]\n    env: {A: x, A: y}\n"
	    "    name: b\n",
	    "t.yaml:3:1: duplicate key 'listen' (first at line 1)\n"
	    "t.yaml:7:17: duplicate key 'A' (first at line 7)\n"
	    "t.yaml:8:5: duplicate key 'name' (first at line 5)\n");
	/* In sections read by hand as well: a role given twice (its grants
	 * were merged while --print showed one), a tool entry's access, an
	 * mTLS identity's principal (the last one won). */
	expect_errors("policy:\n  roles:\n    admin: {tools: [a]}\n"
	    "    admin: {tools: [b]}\n"
	    "    r: {tools: [{match: x, access: read, access: all}]}\n",
	    "t.yaml:4:5: duplicate key 'admin' (first at line 3)\n"
	    "t.yaml:5:42: duplicate key 'access' (first at line 5)\n");
	expect_errors("auth:\n  mtls:\n    identities:\n"
	    "      - {match: a, principal: p, principal: q}\n",
	    "t.yaml:1:1: auth.mtls needs tls.client_ca\n"
	    "t.yaml:4:34: duplicate key 'principal' (first at line 4)\n");
	/* What a principal cannot hold is refused, never cut: a role list
	 * past 511 bytes ("admin" out of "administrators-ro"), a role with a
	 * comma (two roles out of one), a principal past 127 bytes. */
	{
		char y[2048], roles[1200] = "", name[200];
		size_t off = 0;

		for (int i = 0; i < 60; i++)
			off += (size_t)snprintf(roles + off, sizeof(roles) - off,
			    "%sadministrators-%02d", i ? ", " : "", i);
		snprintf(y, sizeof(y), "auth:\n  mtls:\n    identities:\n"
		    "      - {match: a, principal: p, roles: [%s]}\n", roles);
		expect_errors(y, "t.yaml:1:1: auth.mtls needs tls.client_ca\n"
		    "t.yaml:4:9: identities: the roles of one identity must "
		    "fit 511 bytes together\n");
		expect_errors("auth:\n  mtls:\n    identities:\n"
		    "      - {match: a, principal: p, roles: [\"a,b\"]}\n",
		    "t.yaml:1:1: auth.mtls needs tls.client_ca\n"
		    "t.yaml:4:9: identities: role 'a,b': a role name is not "
		    "empty and holds no comma or space\n");
		memset(name, 'n', 150);
		name[150] = '\0';
		snprintf(y, sizeof(y), "auth:\n  mtls:\n    identities:\n"
		    "      - {match: a, principal: %s}\n", name);
		expect_errors(y, "t.yaml:1:1: auth.mtls needs tls.client_ca\n"
		    "t.yaml:4:9: identities: principal and tenant must be "
		    "shorter than 128 bytes\n");
	}
}

/* A mapping key that is no string (an alias, a "? [x]" key) is an error,
 * never a crash in the reader of that section. */
static void
test_non_string_keys(void **state)
{
	(void)state;
	expect_errors("auth:\n  mtls:\n    identities:\n"
	    "      - ? [x]\n        : y\n        match: a\n"
	    "        principal: p\n",
	    "t.yaml:1:1: auth.mtls needs tls.client_ca\n"
	    "t.yaml:4:11: a mapping key must be a plain string\n");
	expect_errors("auth: {mtls: {identities: [{*a : x}]}}\n",
	    "t.yaml:1:1: auth.mtls needs tls.client_ca\n"
	    "t.yaml:1:28: identities: each entry needs match and principal\n"
	    "t.yaml:1:29: YAML aliases (*name) are not supported; write the "
	    "value out\n");
}

static void
test_listen(void **state)
{
	struct pc_config *cfg;

	(void)state;
	/* A non-loopback listener needs TLS or a declared proxy; the admin
	 * listener is loopback only; `auth: none` only on loopback. */
	expect_errors("listen: 0.0.0.0:8080\nadmin_listen: \"[::]:1\"\n",
	    "t.yaml:1:1: listen: a non-loopback address needs tls (cert and "
	    "key), or trusted_proxies naming the TLS-terminating proxy in front "
	    "of the gateway\n"
	    "t.yaml:2:15: admin_listen: ::: the admin listener must be a "
	    "loopback address\n"
	    "t.yaml:3:1: auth: none is only allowed on a loopback listener\n");
	expect_errors("listen: 127.0.0.1:65536\nadmin_listen: 127.0.0.1:x\n",
	    "t.yaml:1:9: listen: port in '127.0.0.1:65536' must be a number "
	    "from 0 to 65535\n"
	    "t.yaml:2:15: admin_listen: port in '127.0.0.1:x' must be a number "
	    "from 0 to 65535\n");
	expect_errors("listen: 127.0.0.1\nadmin_listen: ::1:80\n",
	    "t.yaml:1:9: listen: expected host:port such as 127.0.0.1:8080, "
	    "got '127.0.0.1'\n"
	    "t.yaml:2:15: admin_listen: write IPv6 addresses in brackets, e.g. "
	    "\"[::1]:8080\"\n");
	expect_errors("listen: [\"::1\", 80]\n",
	    "t.yaml:1:9: listen: expected \"host:port\", got a list; quote IPv6 "
	    "addresses: \"[::1]:8080\"\n");
	expect_errors("listen: 127.0.0.1:80\nadmin_listen: 127.0.0.1:80\n",
	    "t.yaml:2:1: admin_listen must differ from listen (both are "
	    "127.0.0.1:80)\n");
	cfg = expect_ok("listen: 127.0.0.1:0\nadmin_listen: off\n");
	assert_int_equal(cfg->listen.port, 0);
	assert_null(cfg->admin.address);
	pc_config_free(cfg);
	cfg = expect_ok("listen: \"[::ffff:127.0.0.1]:1\"\n");
	assert_string_equal(cfg->listen.address, "::ffff:127.0.0.1");
	pc_config_free(cfg);
}

static void
test_anchor_refused(void **state)
{
	(void)state;
	expect_errors("http: &h {path: /x}\nlimits: *h\n",
	    "t.yaml:1:7: YAML anchors (&h) and aliases are not supported; "
	    "write the value out\n"
	    "t.yaml:2:9: YAML aliases (*name) are not supported; write the "
	    "value out\n");
	expect_errors("log_level: !!str info\n",
	    "t.yaml:1:12: YAML tags (tag:yaml.org,2002:str) are not "
	    "supported\n");
}

static void
test_yaml_syntax_error(void **state)
{
	(void)state;
	expect_errors("listen: 127.0.0.1:8080\nhttp:\n  path: [/x\n"
	    "log_level: info\n",
	    "t.yaml:4:10: YAML syntax error: did not find expected ',' or ']' "
	    "(while parsing a flow sequence at line 3, column 9)\n");
	expect_errors("a: b\n  c: d\n", "t.yaml:2:4: YAML syntax error: mapping "
	    "values are not allowed in this context\n");
	expect_errors("log_level: info\n---\nlog_level: warn\n",
	    "t.yaml:2:1: a config file holds one YAML document; this is a "
	    "second one\n");
}

static void
test_limits_and_files(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	size_t n = PC_MAX_CONFIG_BYTES + 1;
	char *big = malloc(n);

	(void)state;
	assert_non_null(big);
	memset(big, '#', n);
	assert_int_equal(pc_config_load_buffer("big.yaml", big, n, &cfg, &e),
	    PC_E_CONFIG);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.v[0].line, 0);
	assert_string_equal(e.v[0].file, "big.yaml");
	pc_config_errors_free(&e);
	free(big);

	assert_int_equal(pc_config_load("/nonexistent/pc.yaml", &cfg, &e),
	    PC_E_IO);
	assert_null(cfg);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.v[0].msg, "cannot open: No such file or "
	    "directory");
	pc_config_errors_free(&e);

	/* errs may be NULL when the caller only wants the verdict. */
	assert_int_equal(load_str("zzz: 1\n", &cfg, NULL), PC_E_CONFIG);
	assert_null(cfg);
}

static void
test_upstream_values(void **state)
{
	struct pc_config *cfg;

	(void)state;
	expect_errors("upstreams:\n  - name: a\n    command: [x]\n"
	    "    timeout: 10m\n"
	    "    restart_backoff: {min: 2s, max: 1s}\n"
	    "    max_line_bytes: 100\n"
	    "    prefix: \"a__b\"\n"
	    "    inherit_env: [PATH, \"A=B\"]\n"
	    "    cwd: \"\"\n"
	    "  - name: \"\"\n    command: [\"\", y]\n",
	    "t.yaml:4:5: max_timeout (5m) must be at least timeout (10m)\n"
	    "t.yaml:5:32: restart_backoff: max must be at least min\n"
	    "t.yaml:6:21: max_line_bytes: '100' is out of range (1KiB to "
	    "256MiB)\n"
	    "t.yaml:7:13: prefix: 'a__b' must be at most 32 characters of a-z, "
	    "0-9 and '-'\n"
	    "t.yaml:8:25: inherit_env: 'A=B' is not a valid environment "
	    "variable name\n"
	    "t.yaml:9:10: cwd: empty path (leave cwd out to use the gateway's "
	    "directory)\n"
	    "t.yaml:10:11: name: '' must be 1 to 32 characters of a-z, 0-9 and "
	    "'-'\n"
	    "t.yaml:11:15: command: the program (first item) is empty\n");
	cfg = expect_ok("upstreams:\n  - name: a\n    command: [/abs/x]\n"
	    "    cwd: /srv\n    inherit_env: []\n    era: modern\n");
	assert_string_equal(cfg->upstreams[0].argv[0], "/abs/x");
	assert_string_equal(cfg->upstreams[0].cwd, "/srv");
	assert_int_equal(cfg->upstreams[0].ninherit, 0);
	assert_null(cfg->upstreams[0].inherit_env[0]);
	assert_int_equal(cfg->upstreams[0].era, PC_ERA_MODERN);
	pc_config_free(cfg);
}


/* Authentication must be chosen; `auth: none` only on loopback and never in
 * production; the pepper is a secret and long enough. */
static void
test_auth_rules(void **state)
{
	struct pc_config *cfg;

	(void)state;
	expect_errors("auth: {}\n",
	    "t.yaml:1:1: auth: no authentication method is configured; set "
	    "auth.api_keys, auth.oauth or auth.mtls (or write `auth: none` for "
	    "a loopback development setup)\n");
	/* A secret in an upstream's argv is readable by every local user:
	 * refused in production, resolved (and flagged) otherwise. */
	setenv("PC_TEST_ARGV", "argv-secret-123456", 1);
	expect_errors("mode: production\nauth: none\nupstreams:\n  - name: up\n"
	    "    command: [srv, \"--token=${env:PC_TEST_ARGV}\"]\n",
	    "t.yaml:1:1: mode: production needs tls or trusted_proxies (HTTPS "
	    "only)\n"
	    "t.yaml:2:1: auth: none is refused in production mode\n"
	    "t.yaml:5:20: command: a ${env:}/${file:} reference in an argument "
	    "puts the secret where every local user can read it (ps, "
	    "/proc/PID/cmdline); pass it in the upstream's env instead (mode: "
	    "production refuses this)\n");
	cfg = expect_ok("auth: none\nupstreams:\n  - name: up\n"
	    "    command: [srv, \"--token=${env:PC_TEST_ARGV}\"]\n"
	    "  - name: plain\n    command: [srv, --flag]\n");
	assert_true(cfg->upstreams[0].argv_secret);
	assert_false(cfg->upstreams[1].argv_secret);
	pc_config_free(cfg);
	unsetenv("PC_TEST_ARGV");
	expect_errors("mode: production\nauth: none\n",
	    "t.yaml:1:1: mode: production needs tls or trusted_proxies (HTTPS "
	    "only)\n"
	    "t.yaml:2:1: auth: none is refused in production mode\n");
	expect_errors("auth:\n  api_keys:\n    pepper: "
	    "0123456789abcdef0123456789abcdef\n",
	    "t.yaml:3:13: pepper: a literal secret is refused; use "
	    "${file:PATH} (mode 0600) or ${env:NAME}\n");
	setenv("PC_TEST_PEPPER", "short", 1);
	/* A literal with a reference in it is a literal secret too. */
	expect_errors("auth:\n  api_keys:\n    pepper: "
	    "\"0123456789abcdef0123456789abcdef${env:PC_TEST_PEPPER}\"\n",
	    "t.yaml:3:13: pepper: must be exactly one ${file:PATH} (mode 0600) "
	    "or ${env:NAME} reference, with nothing around it\n");
	expect_errors("auth:\n  api_keys:\n    pepper: \"${env:PC_TEST_PEPPER}\"\n",
	    "t.yaml:3:13: pepper: must be at least 32 bytes (e.g. openssl rand "
	    "-hex 32 > pepper; chmod 600 pepper)\n");
	expect_errors("auth:\n  api_keys: {rotation_days: 30}\n",
	    "t.yaml:2:13: api_keys: needs a pepper (\"${file:PATH}\" with at "
	    "least 32 random bytes)\n");
	setenv("PC_TEST_PEPPER", "0123456789abcdef0123456789abcdef", 1);
	cfg = expect_ok("auth:\n  api_keys:\n    pepper: \"${env:PC_TEST_PEPPER}\"\n");
	assert_int_equal(cfg->auth.pepper_len, 32);
	assert_non_null(cfg->auth.key_store);
	assert_non_null(strstr(cfg->auth.key_store, "portcullis.db"));
	/* The pepper is redaction material like any resolved secret. */
	assert_int_equal(cfg->nsecrets, 1);
	pc_config_free(cfg);
	unsetenv("PC_TEST_PEPPER");
	expect_errors("auth:\n  oauth: {issuer: \"https://i\", jwks_file: j.json}\n",
	    "t.yaml:2:10: oauth: needs resource (this gateway's canonical URL; "
	    "tokens must carry it as aud)\n");
	expect_errors("auth:\n  oauth: {issuer: \"https://i\", resource: "
	    "\"http://example.com/mcp\", jwks_uri: \"http://example.com/j\"}\n",
	    "t.yaml:2:42: resource: expected the gateway's canonical https:// "
	    "URL without fragment, e.g. https://mcp.example.com/mcp, got "
	    "'http://example.com/mcp'\n"
	    "t.yaml:2:78: jwks_uri: expected an https:// URL (http only to a "
	    "loopback address), got 'http://example.com/j'\n");
}

static void
test_tls_and_proxies(void **state)
{
	struct pc_config *cfg;

	(void)state;
	expect_errors("tls: {cert: c.pem}\n",
	    "t.yaml:1:6: tls: needs both cert and key\n");
	expect_errors("tls: {cert: c.pem, key: k.pem, client_auth: required}\n",
	    "t.yaml:1:32: tls: client_auth optional or required needs client_ca "
	    "(the CA bundle that signs client certificates)\n");
	expect_errors("trusted_proxies: [10.0.0.0/33, nope]\n",
	    "t.yaml:1:19: trusted_proxies: expected an address or CIDR range "
	    "such as 10.0.0.0/8 or fd00::/8, got '10.0.0.0/33'\n"
	    "t.yaml:1:32: trusted_proxies: expected an address or CIDR range "
	    "such as 10.0.0.0/8 or fd00::/8, got 'nope'\n");
	/* Trusting everyone as a proxy is no trust list. */
	expect_errors("trusted_proxies: [0.0.0.0/0, 10.0.0.0/7, \"::/0\"]\n",
	    "t.yaml:1:19: trusted_proxies: 0.0.0.0/0 is too broad to trust "
	    "(at least /8 for IPv4, /16 for IPv6): name your proxies' "
	    "addresses\n"
	    "t.yaml:1:30: trusted_proxies: 10.0.0.0/7 is too broad to trust "
	    "(at least /8 for IPv4, /16 for IPv6): name your proxies' "
	    "addresses\n"
	    "t.yaml:1:42: trusted_proxies: ::/0 is too broad to trust (at "
	    "least /8 for IPv4, /16 for IPv6): name your proxies' addresses\n");
	/* A network listener with TLS and a real method is fine. */
	setenv("PC_TEST_PEPPER", "0123456789abcdef0123456789abcdef", 1);
	cfg = expect_ok("listen: 0.0.0.0:8443\ntls: {cert: c.pem, key: k.pem, "
	    "min_version: \"1.3\"}\nauth:\n  api_keys: {pepper: "
	    "\"${env:PC_TEST_PEPPER}\"}\n");
	assert_true(cfg->tls.enabled);
	assert_int_equal(cfg->tls.min_version, 13);
	assert_int_equal(cfg->tls.client_auth, PC_CLIENT_AUTH_NONE);
	assert_int_equal(cfg->tls.hsts_max_age_s, 31536000);
	assert_true(cfg->tls.cert_file[0] == '/');
	pc_config_free(cfg);
	/* Behind a declared proxy, plaintext on a network address is fine. */
	cfg = expect_ok("listen: 10.1.2.3:8080\ntrusted_proxies: [10.0.0.0/8]\n"
	    "auth:\n  api_keys: {pepper: \"${env:PC_TEST_PEPPER}\"}\n");
	assert_int_equal(cfg->ntrusted_proxies, 1);
	assert_int_equal(cfg->trusted_proxies[0].bits, 8);
	pc_config_free(cfg);
	unsetenv("PC_TEST_PEPPER");
}

/* --- issue 5: rate_limits, budgets, tool_costs, breakers, concurrency ------ */

static void
test_limiter_sections(void **state)
{
	struct pc_config *cfg;
	const struct pc_limiter_conf *l;

	(void)state;
	/* Nothing configured: no limiting, nothing to store. */
	cfg = expect_ok("listen: 127.0.0.1:0\n");
	l = &cfg->limiter;
	assert_int_equal(l->nrate + l->nbudgets + l->ncosts, 0);
	assert_false(l->key_breaker);
	assert_false(l->upstream_breaker);
	assert_int_equal(l->per_key + l->per_upstream, 0);
	assert_null(l->store);
	pc_config_free(cfg);

	cfg = expect_ok("rate_limits:\n"
	    "  - {id: per-user, scope: key, rate: 30/minute}\n"
	    "  - {scope: key, rate: 500/hour}\n"
	    "  - {scope: tool, match: gh__search, rate: 5/90s, burst: 2}\n"
	    "  - {scope: key_tool, rate: 3/second}\n"
	    "  - {scope: tenant, match: acme, rate: 10000/day}\n"
	    "  - {scope: global, rate: 100/s}\n"
	    "budgets:\n"
	    "  - {scope: key, period: day, amount: 1000}\n"
	    "  - {id: acme-month, scope: tenant, match: acme, period: month, "
	    "amount: 50000}\n"
	    "tool_costs: {gh__search: 5, \"fs__*\": 0, \"gh__create_*\": 20}\n"
	    "breakers:\n"
	    "  key: {threshold: 50, cooldown: 30s, max_cooldown: 10m}\n"
	    "  upstream: {threshold: 5, cooldown: 500ms}\n"
	    "concurrency: {per_key: 8, per_upstream: 32}\n");
	l = &cfg->limiter;
	assert_int_equal(l->nrate, 6);
	assert_string_equal(l->rate[0].id, "per-user");
	assert_int_equal(l->rate[0].scope, PC_LIMIT_KEY);
	assert_int_equal(l->rate[0].count, 30);
	assert_true(l->rate[0].period_us == PC_LIMIT_MINUTE_US);
	assert_string_equal(l->rate[1].id, "");
	assert_true(l->rate[1].period_us == PC_LIMIT_HOUR_US);
	assert_int_equal(l->rate[2].scope, PC_LIMIT_TOOL);
	assert_string_equal(l->rate[2].match, "gh__search");
	assert_true(l->rate[2].period_us == 90 * PC_LIMIT_SECOND_US);
	assert_int_equal(l->rate[2].burst, 2);
	assert_int_equal(l->rate[3].scope, PC_LIMIT_KEY_TOOL);
	assert_true(l->rate[4].period_us == PC_LIMIT_DAY_US);
	assert_int_equal(l->rate[5].scope, PC_LIMIT_GLOBAL);
	assert_int_equal(l->nbudgets, 2);
	assert_int_equal(l->budgets[1].scope, PC_BUDGET_TENANT);
	assert_int_equal(l->budgets[1].period, PC_BUDGET_MONTH);
	assert_int_equal(l->budgets[1].amount, 50000);
	assert_int_equal(pc_tool_cost_of(l, "gh__search"), 5);
	assert_int_equal(pc_tool_cost_of(l, "fs__read_file"), 0);
	assert_int_equal(pc_tool_cost_of(l, "gh__create_issue"), 20);
	assert_int_equal(pc_tool_cost_of(l, "other"), 1);
	assert_true(l->key_breaker);
	assert_int_equal(l->key_br.threshold, 50);
	assert_true(l->key_br.cooldown_us == 30 * PC_LIMIT_SECOND_US);
	assert_true(l->key_br.max_cooldown_us == 600 * PC_LIMIT_SECOND_US);
	assert_true(l->upstream_breaker);
	assert_true(l->upstream_br.cooldown_us == 500000);
	assert_int_equal(l->per_key, 8);
	assert_int_equal(l->per_upstream, 32);
	/* Counters are kept next to the config when there is no key store. */
	assert_non_null(l->store);
	assert_non_null(strstr(l->store, "/portcullis.db"));
	/* check --print shows them in a form that loads back the same. */
	{
		char *da = dump_text(cfg), *db;
		struct pc_config *back = expect_ok(da);
		db = dump_text(back);
		assert_string_equal(da, db);
		assert_non_null(strstr(da, "  - {scope: tool, rate: \"5/90s\", "
		    "match: \"gh__search\", burst: 2}\n"));
		assert_int_equal(back->limiter.rate[0].count, 30);
		free(da);
		free(db);
		pc_config_free(back);
	}
	pc_config_free(cfg);

	/* With API keys, the counters go into the key store by default. */
	setenv("PC_TEST_PEPPER", "0123456789abcdef0123456789abcdef", 1);
	cfg = expect_ok("auth: {api_keys: {store: /tmp/k.db, pepper: "
	    "\"${env:PC_TEST_PEPPER}\"}}\n"
	    "rate_limits: [{scope: key, rate: 1/s}]\n");
	assert_string_equal(cfg->limiter.store, "/tmp/k.db");
	pc_config_free(cfg);
	cfg = expect_ok("auth: {api_keys: {store: /tmp/k.db, pepper: "
	    "\"${env:PC_TEST_PEPPER}\"}}\n"
	    "limits_store: /tmp/limits.db\n"
	    "budgets: [{scope: key, period: day, amount: 1}]\n");
	assert_string_equal(cfg->limiter.store, "/tmp/limits.db");
	pc_config_free(cfg);
	unsetenv("PC_TEST_PEPPER");

	/* `off` turns a breaker off. */
	cfg = expect_ok("breakers: {key: off, upstream: off}\n");
	assert_false(cfg->limiter.key_breaker);
	pc_config_free(cfg);
}

static void
test_limiter_errors(void **state)
{
	(void)state;
	/* An id is printed between double quotes by check --print: no
	 * quote or backslash in it, or the printed config breaks. */
	expect_errors("rate_limits:\n  - {scope: key, rate: 1/s, id: \"a\\\"b\"}\n",
	    "t.yaml:2:33: id: no spaces, quotes, backslashes or control "
	    "characters\n");
	expect_errors("rate_limits:\n"
	    "  - {scope: key, rate: 30/fortnight}\n"
	    "  - {scope: user, rate: 30/minute}\n"
	    "  - {scope: key, rate: 0/minute}\n"
	    "  - {scope: key}\n"
	    "  - {rate: 1/s, scpoe: key}\n"
	    "  - {scope: global, match: x, rate: 1/s}\n"
	    "  - {scope: key, rate: 1/500d}\n",
	    "t.yaml:2:24: rate: expected a rate such as 30/minute, 500/hour, "
	    "3/second, 10/day or 5/90s, got '30/fortnight'\n"
	    "t.yaml:3:13: scope: expected key, tool, key_tool, tenant or "
	    "global, got 'user'\n"
	    "t.yaml:4:24: rate: expected a rate such as 30/minute, 500/hour, "
	    "3/second, 10/day or 5/90s, got '0/minute'\n"
	    "t.yaml:5:5: rate_limits: each entry needs a rate such as "
	    "30/minute\n"
	    "t.yaml:6:5: rate_limits: each entry needs a scope (key, tool, "
	    "key_tool, tenant or global)\n"
	    "t.yaml:6:17: unknown key 'scpoe' in rate_limits; did you mean "
	    "'scope'?\n"
	    "t.yaml:7:21: match: a global limit counts every call; match has "
	    "no meaning there\n"
	    "t.yaml:8:24: rate: the period may be at most 400 days\n");
	/* Ids are unique (checked as the gateway builds the set), derived
	 * ones included. */
	expect_errors("rate_limits:\n"
	    "  - {scope: key, rate: 1/minute}\n"
	    "  - {scope: key, rate: 2/minute}\n",
	    "t.yaml:1:1: rate_limits: limit key:minute: duplicate id\n");
	expect_errors("budgets:\n"
	    "  - {scope: key, period: week, amount: 10}\n"
	    "  - {scope: key, period: day, amount: 0}\n"
	    "  - {scope: key, amount: 5}\n",
	    "t.yaml:2:26: period: expected day or month (UTC calendar "
	    "periods), got 'week'\n"
	    "t.yaml:3:39: amount: expected an integer from 1 to 1000000000000\n"
	    "t.yaml:4:5: budgets: each entry needs scope (key or tenant), "
	    "period (day or month) and amount\n");
	/* A cost above a whole budget could never be paid. */
	expect_errors("budgets: [{scope: key, period: day, amount: 10}]\n"
	    "tool_costs: {big: 11, small: 10}\n",
	    "t.yaml:1:1: tool_costs: 'big' costs 11, more than a whole budget "
	    "of 10: it could never be called\n");
	expect_errors("tool_costs: {a: -1, b: x}\n"
	    "breakers: {key: {threshold: 0, cooldown: 1s}, upstream: "
	    "{cooldown: 10s, max_cooldown: 1s, threshold: 2}, other: {}}\n"
	    "concurrency: {per_key: 0, per_host: 1}\n",
	    "t.yaml:1:17: tool_costs: expected an integer from 0 to "
	    "1000000000000\n"
	    "t.yaml:1:24: tool_costs: expected an integer from 0 to "
	    "1000000000000\n"
	    "t.yaml:2:29: threshold: '0' is out of range (1 to 1000000)\n"
	    "t.yaml:2:73: upstream: max_cooldown must be at least cooldown\n"
	    "t.yaml:2:106: unknown key 'other' in breakers; expected one of: "
	    "key, upstream\n"
	    "t.yaml:3:24: per_key: '0' is out of range (1 to 65536)\n"
	    "t.yaml:3:27: unknown key 'per_host' in concurrency; expected one "
	    "of: per_key, per_upstream\n");
}

/* The shipped examples stay loadable. */
static void
test_examples(void **state)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors e;
	char p[PATH_MAX + 64], root[PATH_MAX], want[PATH_MAX + 64];
	char *dump;

	(void)state;
	snprintf(p, sizeof(p), "%s/../../../..", datadir);
	assert_non_null(realpath(p, root));

	setenv("GITHUB_TOKEN", "ghp-test", 1);
	setenv("PORTCULLIS_PEPPER", "0123456789abcdef0123456789abcdef", 1);
	setenv("PORTCULLIS_AUDIT_KEY", "fedcba9876543210fedcba9876543210", 1);
	snprintf(p, sizeof(p), "%s/examples/full.yaml", root);
	assert_int_equal(pc_config_load(p, &cfg, &e), 0);
	unsetenv("PORTCULLIS_AUDIT_KEY");
	assert_int_equal(cfg->auth.pepper_len, 32);
	assert_string_equal(cfg->audit.dir, "/var/log/portcullis");
	assert_int_equal(cfg->audit.max_file_bytes, 64u << 20);
	assert_int_equal(cfg->audit.max_file_age_s, 86400);
	assert_int_equal(cfg->audit.retention_days, 90);
	assert_int_equal(cfg->audit.group_delay_ms, 10);
	assert_string_equal(cfg->auth.issuer, "https://idp.example.com/");
	assert_int_equal(cfg->auth.nscope_roles, 2);
	assert_int_equal(cfg->auth.max_failures, 10);
	unsetenv("PORTCULLIS_PEPPER");
	assert_int_equal(cfg->nupstreams, 2);
	assert_string_equal(cfg->upstreams[0].prefix, "gh");
	assert_string_equal(cfg->upstreams[0].env[0],
	    "GITHUB_PERSONAL_ACCESS_TOKEN=ghp-test");
	assert_int_equal(cfg->limiter.nrate, 6);
	assert_int_equal(cfg->limiter.nbudgets, 2);
	assert_int_equal(cfg->limiter.key_br.threshold, 50);
	assert_int_equal(cfg->limiter.per_upstream, 64);
	assert_string_equal(cfg->limiter.store, cfg->auth.key_store);
	/* check --print shows the audit section, never its key. */
	dump = dump_text(cfg);
	assert_non_null(strstr(dump, "\naudit:\n  dir: \"/var/log/portcullis\"\n"
	    "  key: <redacted>\n  fsync: group\n  group_delay: 10ms\n"
	    "  max_file_size: 64MiB\n  max_file_age: 24h\n"
	    "  retention_days: 90\n  flood:\n    burst: 20\n"
	    "    per_second: 5\n    global_per_second: 200\n"));
	assert_int_equal(cfg->audit.flood_burst, 20);
	assert_int_equal(cfg->audit.flood_global_per_s, 200);
	assert_null(strstr(dump, "fedcba9876543210"));
	free(dump);
	pc_config_free(cfg);
	unsetenv("GITHUB_TOKEN");

	setenv("PORTCULLIS_DEMO_PEPPER", "0123456789abcdef0123456789abcdef", 1);
	setenv("PORTCULLIS_DEMO_AUDIT_KEY", "fedcba9876543210fedcba9876543210",
	    1);
	snprintf(p, sizeof(p), "%s/examples/demo.yaml", root);
	assert_int_equal(pc_config_load(p, &cfg, &e), 0);
	unsetenv("PORTCULLIS_DEMO_PEPPER");
	unsetenv("PORTCULLIS_DEMO_AUDIT_KEY");
	assert_non_null(strstr(cfg->auth.key_store, "/.demo/keys.db"));
	assert_true(cfg->audit.enabled);
	assert_non_null(strstr(cfg->audit.dir, "/.demo/audit"));
	assert_int_equal(cfg->audit.key_len, 32);
	assert_int_equal(cfg->nupstreams, 2);
	snprintf(want, sizeof(want), "%s/node_modules/.bin/"
	    "mcp-server-everything", root);
	assert_string_equal(cfg->upstreams[0].argv[0], want);
	snprintf(want, sizeof(want), "%s/node_modules/.bin/"
	    "mcp-server-filesystem", root);
	assert_string_equal(cfg->upstreams[1].argv[0], want);
	assert_string_equal(cfg->upstreams[1].argv[1], "examples/demo-files");
	assert_string_equal(cfg->upstreams[1].cwd, root);
	pc_config_free(cfg);
}

/* The policy: section is built into an engine at load time; every mistake
 * is reported with its position; without the section nothing is granted. */
static void
test_policy_section(void **state)
{
	struct pc_config *cfg;
	json_t *ro = json_pack("{s:b, s:b}", "readOnlyHint", 1,
	    "openWorldHint", 0);
	char *txt;

	(void)state;
	cfg = expect_ok("upstreams: []\n");
	assert_null(cfg->policy);
	txt = dump_text(cfg);
	assert_non_null(strstr(txt, "# policy: none"));
	free(txt);
	pc_config_free(cfg);

	cfg = expect_ok(
	    "policy:\n"
	    "  default_roles: base\n"
	    "  roles:\n"
	    "    base:\n"
	    "      tools: [\"up__echo\"]\n"
	    "    writer:\n"
	    "      tools:\n"
	    "        - match: \"fs__*\"\n"
	    "          access: [read, write]\n"
	    "      prompts: [\"fs__*\"]\n"
	    "      resources: \"fs+*\"\n"
	    "  tool_classes:\n"
	    "    \"fs__read_env\": all\n"
	    "  constraints:\n"
	    "    - tool: \"fs__*\"\n"
	    "      argument: path\n"
	    "      path_under: [\"/srv/${tenant}\"]\n"
	    "    - {tool: t, argument: n, optional: true, range: {min: -1, "
	    "max: 2.5}}\n"
	    "    - {tool: t, argument: q, schema: {type: string, minLength: 2, "
	    "maxLength: 500}}\n");
	assert_int_equal(cfg->ntighten, 1);
	assert_string_equal(cfg->tighten[0].arg, "q");
	assert_non_null(cfg->policy);
	/* base is a default role (bare pattern: read access); the override
	 * makes read_env need every class whatever it claims. */
	assert_true(pc_policy_tool_allowed(cfg->policy, "", "up__echo", ro));
	assert_false(pc_policy_tool_allowed(cfg->policy, "", "up__echo", NULL));
	assert_true(pc_policy_tool_allowed(cfg->policy, "writer",
	    "fs__read_file", ro));
	assert_false(pc_policy_tool_allowed(cfg->policy, "writer",
	    "fs__read_env", ro));
	assert_false(pc_policy_tool_allowed(cfg->policy, "writer",
	    "fs__delete", NULL));
	assert_true(pc_policy_item_allowed(cfg->policy, "writer",
	    PC_ITEM_RESOURCE, "fs+file:///a"));
	txt = dump_text(cfg);
	assert_non_null(strstr(txt, "policy: {\"default_roles\":\"base\""));
	/* What --print shows loads again into the same policy. */
	{
		struct pc_config *again = expect_ok(strstr(txt, "policy: "));
		assert_true(pc_policy_tool_allowed(again->policy, "", "up__echo",
		    ro));
		assert_false(pc_policy_tool_allowed(again->policy, "writer",
		    "fs__read_env", ro));
		pc_config_free(again);
	}
	free(txt);
	pc_config_free(cfg);
	json_decref(ro);

	expect_errors(
	    "policy:\n"
	    "  roles:\n"
	    "    \"bad role\":\n"
	    "      tools: [x]\n"
	    "    r:\n"
	    "      tools:\n"
	    "        - match: x\n"
	    "          access: [reed]\n"
	    "        - access: read\n"
	    "      bogus: 1\n"
	    "  tool_classes: [x]\n"
	    "  constraints:\n"
	    "    - tool: a\n"
	    "      argument: p\n"
	    "      path_under: [rel/x]\n"
	    "    - tool: a\n"
	    "      argument: p\n"
	    "      pattern: \"(x\"\n"
	    "    - tool: a\n"
	    "      argument: p\n"
	    "      one_of: [a]\n"
	    "      set: b\n"
	    "    - tool: b\n"
	    "    - tool: a\n"
	    "      argument: n\n"
	    "      range: {min: 3, max: 1}\n"
	    "    - {tool: a, argument: q, schema: {type: string, pattern: "
	    "\"(\"}}\n"
	    "  colour: blue\n",
	    "t.yaml:3:5: roles: a role name is 1-64 of [A-Za-z0-9_.:-]\n"
	    "t.yaml:8:19: access: unknown access class 'reed' (choose from "
	    "read, write, destructive, open_world, all)\n"
	    "t.yaml:9:11: roles.r.tools: each entry needs match\n"
	    "t.yaml:10:7: roles.r: unknown key 'bogus'; expected tools, "
	    "prompts or resources\n"
	    "t.yaml:11:17: tool_classes: expected a mapping tool-pattern: "
	    "[classes], got a list\n"
	    "t.yaml:15:19: constraints: path_under: each root must be absolute "
	    "and normal (no '..', '//', trailing '/'); placeholders are "
	    "${tenant} and ${principal}\n"
	    "t.yaml:18:16: constraints: pattern: does not compile as a PCRE2 "
	    "pattern\n"
	    "t.yaml:22:12: constraints: 'set' and another check in one entry; "
	    "write one entry per check\n"
	    "t.yaml:23:7: constraints: each entry needs tool, argument and one "
	    "check (path_under, one_of, pattern, range, url, command, set or "
	    "schema)\n"
	    "t.yaml:26:14: constraints: range: min must not exceed max\n"
	    "t.yaml:27:38: constraints: schema: schema /pattern: "
	    "pattern does not compile\n"
	    "t.yaml:28:3: unknown key 'colour' in policy; expected one of: "
	    "default_roles, roles, tool_classes, constraints\n");
}

/* redaction.keys: more sensitive names, validated; shown by --print. */
static void
test_redaction_section(void **state)
{
	struct pc_config *cfg;
	char *txt;

	(void)state;
	cfg = expect_ok("redaction:\n  keys: [ssn, card-number]\n");
	assert_int_equal(cfg->nredact_keys, 2);
	assert_string_equal(cfg->redact_keys[1], "card-number");
	txt = dump_text(cfg);
	assert_non_null(strstr(txt, "redaction:\n  keys: "));
	free(txt);
	pc_config_free(cfg);
	expect_errors("redaction:\n  keys: [\"two words\"]\n  other: 1\n",
	    "t.yaml:2:10: keys: a name is printable ASCII without spaces\n"
	    "t.yaml:3:3: unknown key 'other' in redaction; expected one of: "
	    "keys\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_upstream_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_dump_reloads),
		cmocka_unit_test(test_misspelt_key),
		cmocka_unit_test(test_many_errors),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bare_duration),
		cmocka_unit_test(test_shell_string_command),
		cmocka_unit_test(test_literal_secret),
		cmocka_unit_test(test_env_ref_unset_no_leak),
		cmocka_unit_test_setup_teardown(test_file_ref_group_readable, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test(test_inherit_env_secrets),
		cmocka_unit_test_setup_teardown(test_file_ref_ok, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test(test_duplicate_names),
		cmocka_unit_test(test_duplicate_yaml_key),
		cmocka_unit_test(test_non_string_keys),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_auth_rules),
		cmocka_unit_test(test_tls_and_proxies),
		cmocka_unit_test(test_anchor_refused),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_limits_and_files),
		cmocka_unit_test(test_upstream_values),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_policy_section),
		cmocka_unit_test(test_redaction_section),
		cmocka_unit_test(test_limiter_sections),
		cmocka_unit_test(test_limiter_errors),
	};
	char src[PATH_MAX], joined[PATH_MAX + 32];
	char *slash;

	/* __FILE__ is "tests/unit/test_config.c" as the Makefile compiles
	 * it from the repository root. */
	snprintf(src, sizeof(src), "%s", __FILE__);
	slash = strrchr(src, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		snprintf(src, sizeof(src), ".");
	snprintf(joined, sizeof(joined), "%s/data/config", src);
	if (realpath(joined, datadir) == NULL) {
		fprintf(stderr, "test_config: %s not found; run from the "
		    "repository root\n", joined);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
