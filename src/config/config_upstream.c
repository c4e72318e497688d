/*
 * The upstreams: list. Each entry describes one stdio MCP server: its argv
 * (never a shell string), its environment (where secrets live, so literal
 * secrets are refused and references resolved), and its timeouts.
 */
#include "config_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/util.h"
#include "../secrets/redact.h"

/* Local ceilings; tell the lead if they belong in limits.h. */
#define CFG_MAX_BACKOFF_MS	PC_MAX_BACKOFF_MS
#define CFG_MIN_LINE_BYTES	PC_MIN_LINE_BYTES	/* an initialize reply needs more */

#define UF(f) offsetof(struct pc_upstream_conf, f)

/* [a-z0-9-]{min,PC_MAX_UPSTREAM_NAME} */
static bool
name_ok(const char *s, size_t min)
{
	size_t n = strlen(s);

	if (n < min || n > PC_MAX_UPSTREAM_NAME)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '-'))
			return false;
	return true;
}

static void
k_name(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_upstream_conf *u = obj;
	const char *s = cfg_want_str(ctx, k, v, "a name such as my-server");
	char sh[80];

	if (s == NULL)
		return;
	if (!name_ok(s, 1)) {
		cfg_err_at(ctx, v, "name: '%s' must be 1 to %u characters of "
		    "a-z, 0-9 and '-'", cfg_show(v->s, v->len, sh, sizeof(sh)),
		    PC_MAX_UPSTREAM_NAME);
		return;
	}
	free(u->name);
	u->name = cfg_dup(ctx, s);
}

static void
k_prefix(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_upstream_conf *u = obj;
	const char *s = cfg_want_str(ctx, k, v,
	    "a prefix such as fs (or \"\" for none)");
	char sh[80];

	if (s == NULL)
		return;
	/* The charset also keeps out '+' and the "__" separator, so a
	 * prefixed name splits back unambiguously. */
	if (!name_ok(s, 0)) {
		cfg_err_at(ctx, v, "prefix: '%s' must be at most %u characters "
		    "of a-z, 0-9 and '-'", cfg_show(v->s, v->len, sh,
		    sizeof(sh)), PC_MAX_UPSTREAM_NAME);
		return;
	}
	free(u->prefix);
	u->prefix = cfg_dup(ctx, s);
}

static void
free_argv(char **argv, size_t n)
{
	if (argv == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		cfg_free_secret(argv[i]);
	free(argv);
}

static void
k_command(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_upstream_conf *u = obj;
	char **argv = NULL;
	size_t n = 0;
	bool bad = false, had;

	if (v->kind == CN_SCALAR && !cfg_node_is_null(v)) {
		cfg_err_at(ctx, v, "command must be an argv list, not a shell "
		    "string; write [program, arg, ...]");
		return;
	}
	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, "an argv list such as [program, arg]");
		return;
	}
	if (v->nkids == 0 || v->nkids > CFG_MAX_ARGS) {
		cfg_err_at(ctx, v, "command: needs 1 to %u items", CFG_MAX_ARGS);
		return;
	}
	argv = calloc(v->nkids + 1, sizeof(*argv));
	if (argv == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		int rc;

		if (it->kind == CN_BAD ||
		    cfg_want_str(ctx, k, it, "a string") == NULL) {
			bad = true;
			continue;
		}
		/* Arguments may carry a credential (--token=${env:T}):
		 * resolved, but every local user can read a process's argv,
		 * so production mode refuses it (checked at the end, when
		 * the mode is known) and serve warns otherwise. */
		rc = cfg_expand(ctx, it, &argv[n], &had);
		if (rc == PC_E_NOMEM)
			ctx->nomem = true;
		if (rc != 0) {
			bad = true;
			continue;
		}
		if (had) {
			u->argv_secret = true;
			if (ctx->argv_ref_line == 0) {
				ctx->argv_ref_line = it->line;
				ctx->argv_ref_col = it->col;
			}
		}
		n++;
	}
	if (!bad && argv[0][0] == '\0') {
		cfg_err_at(ctx, v->kids[0], "command: the program (first item) "
		    "is empty");
		bad = true;
	}
	/* "bin/server" is relative to the config file; "npx" is looked up
	 * in PATH by the supervisor, so it stays as written. */
	if (!bad && argv[0][0] != '/' && strchr(argv[0], '/') != NULL) {
		char *abs = cfg_abs_path(ctx, argv[0]);
		if (abs == NULL) {
			ctx->nomem = true;
			bad = true;
		} else {
			cfg_free_secret(argv[0]);
			argv[0] = abs;
		}
	}
	if (bad) {
		free_argv(argv, n);
		return;
	}
	free_argv(u->argv, u->argc);
	u->argv = argv;
	u->argc = n;
}

/* One env entry "NAME: value" -> "NAME=value" in *out. */
static int
env_entry(struct cfg_ctx *ctx, const struct cfg_node *kn,
    const struct cfg_node *vn, char **out)
{
	char sh[80], *val = NULL;
	bool had;
	size_t n;
	int rc;

	cfg_show(kn->s, kn->len, sh, sizeof(sh));
	if (vn->kind == CN_BAD)
		return PC_E_CONFIG;
	if (vn->kind != CN_SCALAR || cfg_node_is_null(vn)) {
		cfg_err_at(ctx, vn, "env %s: expected a string (write \"\" for "
		    "an empty value)", sh);
		return PC_E_CONFIG;
	}
	if (strlen(vn->s) != vn->len) {
		cfg_err_at(ctx, vn, "env %s: value contains a NUL byte", sh);
		return PC_E_CONFIG;
	}
	rc = cfg_expand(ctx, vn, &val, &had);
	if (rc != 0)
		return rc;
	/* The message names the variable, never the value. */
	if (!had && val[0] != '\0' && cfg_name_looks_secret(kn->s)) {
		cfg_err_at(ctx, vn, "env %s holds a literal secret; use "
		    "${env:NAME} or ${file:PATH}", sh);
		rc = PC_E_CONFIG;
		goto out;
	}
	n = kn->len + 1 + strlen(val) + 1;
	*out = malloc(n);
	if (*out == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	snprintf(*out, n, "%s=%s", kn->s, val);
out:
	cfg_free_secret(val);
	return rc;
}

static void
k_env(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_upstream_conf *u = obj;
	char **env, sh[80];
	size_t n = 0, np;
	bool bad = false;

	if (cfg_node_is_null(v))
		return;
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "a mapping of NAME: value");
		return;
	}
	np = v->nkids / 2;
	if (np > CFG_MAX_ENV) {
		cfg_err_at(ctx, v, "env: more than %u entries", CFG_MAX_ENV);
		return;
	}
	env = calloc(np + 1, sizeof(*env));
	if (env == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t p = 0; p < np; p++) {
		const struct cfg_node *kn = v->kids[2 * p];
		const struct cfg_node *vn = v->kids[2 * p + 1];
		size_t q;
		int rc;

		if (kn->kind == CN_BAD || cfg_want_str(ctx, k, kn,
		    "a variable name") == NULL) {
			bad = true;
			continue;
		}
		if (!cfg_env_name_ok(kn->s)) {
			cfg_err_at(ctx, kn, "env: '%s' is not a valid "
			    "environment variable name", cfg_show(kn->s,
			    kn->len, sh, sizeof(sh)));
			bad = true;
			continue;
		}
		for (q = 0; q < p; q++) {
			const struct cfg_node *o = v->kids[2 * q];
			if (o->kind == CN_SCALAR && strcmp(o->s, kn->s) == 0)
				break;
		}
		if (q < p) {
			cfg_err_at(ctx, kn, "duplicate key '%s' (first at line "
			    "%u)", kn->s, v->kids[2 * q]->line);
			bad = true;
			continue;
		}
		rc = env_entry(ctx, kn, vn, &env[n]);
		if (rc == PC_E_NOMEM)
			ctx->nomem = true;
		if (rc != 0) {
			bad = true;
			continue;
		}
		n++;
	}
	if (bad) {
		free_argv(env, n);
		return;
	}
	free_argv(u->env, u->nenv);
	u->env = env;
	u->nenv = n;
}

static void
k_inherit(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_upstream_conf *u = obj;

	cfg_set_strlist(ctx, k, v, &u->inherit_env, &u->ninherit,
	    cfg_env_name_item);
	/* An inherited value the gateway hands the child is one it knows:
	 * when its name says secret, it is redacted like a ${env:} value
	 * (the child may print it, or quote it in an error). */
	for (size_t i = 0; i < u->ninherit; i++) {
		const char *val;

		if (u->inherit_env[i] == NULL ||
		    !cfg_env_name_holds_secret(u->inherit_env[i]) ||
		    (val = getenv(u->inherit_env[i])) == NULL ||
		    strlen(val) < PC_REDACT_MIN_VALUE)
			continue;
		if (cfg_add_secret(ctx, val, strlen(val)) != 0)
			ctx->nomem = true;
	}
}

static void
k_cwd(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_upstream_conf *u = obj;
	const char *s = cfg_want_str(ctx, k, v, "a directory path");
	char *abs;

	if (s == NULL)
		return;
	if (s[0] == '\0') {
		cfg_err_at(ctx, v, "cwd: empty path (leave cwd out to use the "
		    "gateway's directory)");
		return;
	}
	abs = cfg_abs_path(ctx, s);
	if (abs == NULL) {
		ctx->nomem = true;
		return;
	}
	free(u->cwd);
	u->cwd = abs;
}

static void
k_era(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_upstream_conf *u = obj;

	if (v->kind == CN_SCALAR && strcmp(v->s, "auto") == 0)
		u->era = PC_ERA_AUTO;
	else if (v->kind == CN_SCALAR && strcmp(v->s, "legacy") == 0)
		u->era = PC_ERA_LEGACY;
	else if (v->kind == CN_SCALAR && strcmp(v->s, "modern") == 0)
		u->era = PC_ERA_MODERN;
	else
		cfg_expected(ctx, k, v, "auto, legacy or modern");
}

static const struct cfg_key backoff_keys[] = {
	{ "min", VK_DUR_MS, UF(restart_min_ms), 1, CFG_MAX_BACKOFF_MS, NULL },
	{ "max", VK_DUR_MS, UF(restart_max_ms), 1, CFG_MAX_BACKOFF_MS, NULL },
};

static void
k_backoff(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_upstream_conf *u = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, "restart_backoff", backoff_keys, 2, u, seen);
	if (u->restart_min_ms > u->restart_max_ms)
		cfg_err_at(ctx, seen[1] ? seen[1] : v, "restart_backoff: max "
		    "must be at least min");
}

enum { UK_NAME = 0, UK_PREFIX, UK_COMMAND, UK_TIMEOUT = 8, UK_MAX_TIMEOUT };

static const struct cfg_key up_keys[] = {
	[UK_NAME] = { "name", VK_FN, 0, 0, 0, k_name },
	[UK_PREFIX] = { "prefix", VK_FN, 0, 0, 0, k_prefix },
	[UK_COMMAND] = { "command", VK_FN, 0, 0, 0, k_command },
	{ "env", VK_FN, 0, 0, 0, k_env },
	{ "inherit_env", VK_FN, 0, 0, 0, k_inherit },
	{ "cwd", VK_FN, 0, 0, 0, k_cwd },
	{ "era", VK_FN, 0, 0, 0, k_era },
	{ "client_roots", VK_BOOL, UF(client_roots), 0, 0, NULL },
	[UK_TIMEOUT] = { "timeout", VK_DUR_MS, UF(call_timeout_ms), 1,
	    PC_MAX_CALL_TIMEOUT_MS, NULL },
	[UK_MAX_TIMEOUT] = { "max_timeout", VK_DUR_MS,
	    UF(max_call_timeout_ms), 1, PC_MAX_CALL_TIMEOUT_MS, NULL },
	{ "probe_timeout", VK_DUR_MS, UF(probe_timeout_ms), 1,
	    PC_MAX_CALL_TIMEOUT_MS, NULL },
	{ "init_timeout", VK_DUR_MS, UF(init_timeout_ms), 1,
	    PC_MAX_CALL_TIMEOUT_MS, NULL },
	{ "shutdown_grace", VK_DUR_MS, UF(shutdown_grace_ms), 0,
	    PC_MAX_CALL_TIMEOUT_MS, NULL },
	{ "restart_backoff", VK_FN, 0, 0, 0, k_backoff },
	{ "max_line_bytes", VK_SIZE, UF(max_line_bytes), CFG_MIN_LINE_BYTES,
	    PC_MAX_MAX_LINE_BYTES, NULL },
};

_Static_assert(sizeof(up_keys) / sizeof(up_keys[0]) <= CFG_MAX_KEYS,
    "seen[] arrays are CFG_MAX_KEYS long");

/* Where each upstream's name and effective prefix were written. */
struct up_pos {
	const struct cfg_node *item, *name, *prefix;
};

static void
check_unique(struct cfg_ctx *ctx, const struct up_pos *pos)
{
	struct pc_config *c = ctx->cfg;

	for (size_t i = 0; i < c->nupstreams; i++) {
		const struct pc_upstream_conf *a = &c->upstreams[i];
		for (size_t j = 0; j < i; j++) {
			const struct pc_upstream_conf *b = &c->upstreams[j];
			if (a->name != NULL && b->name != NULL &&
			    strcmp(a->name, b->name) == 0) {
				cfg_err_at(ctx, pos[i].name, "duplicate "
				    "upstream name '%s' (first at line %u)",
				    a->name, pos[j].name->line);
				break;
			}
			/* Tool names would collide; "" (unprefixed) is
			 * allowed on several, the catalogue picks one. */
			if (a->prefix != NULL && b->prefix != NULL &&
			    a->prefix[0] != '\0' &&
			    strcmp(a->prefix, b->prefix) == 0) {
				cfg_err_at(ctx, pos[i].prefix, "upstreams '%s' "
				    "and '%s' both use the prefix '%s'",
				    b->name ? b->name : "?",
				    a->name ? a->name : "?", a->prefix);
				break;
			}
		}
	}
}

void
cfg_upstreams(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];
	struct pc_config *c = ctx->cfg;
	struct up_pos *pos = NULL;
	char lo[32], hi[32];

	if (cfg_node_is_null(v))
		return;
	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, "a list of upstreams (- name: ...)");
		return;
	}
	if (v->nkids > PC_MAX_UPSTREAMS) {
		cfg_err_at(ctx, v, "upstreams: more than %u entries",
		    PC_MAX_UPSTREAMS);
		return;
	}
	if (v->nkids == 0)
		return;
	c->upstreams = calloc(v->nkids, sizeof(*c->upstreams));
	pos = calloc(v->nkids, sizeof(*pos));
	if (c->upstreams == NULL || pos == NULL) {
		ctx->nomem = true;
		goto out;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		struct pc_upstream_conf *u;
		struct up_pos *p;

		if (it->kind != CN_MAP) {
			if (it->kind != CN_BAD)
				cfg_expected(ctx, k, it, "an upstream mapping "
				    "(name:, command:, ...)");
			continue;
		}
		p = &pos[c->nupstreams];
		u = &c->upstreams[c->nupstreams++];
		if (cfg_upstream_defaults(u) != 0) {
			ctx->nomem = true;
			continue;
		}
		cfg_walk_map(ctx, it, "upstream", up_keys,
		    sizeof(up_keys) / sizeof(up_keys[0]), u, seen);
		if (seen[UK_NAME] == NULL)
			cfg_err_at(ctx, it, "upstream: missing required key "
			    "'name'");
		if (seen[UK_COMMAND] == NULL)
			cfg_err_at(ctx, it, "upstream%s%s: missing required "
			    "key 'command'", u->name ? " " : "",
			    u->name ? u->name : "");
		if (seen[UK_PREFIX] == NULL && u->name != NULL)
			u->prefix = cfg_dup(ctx, u->name);
		if (u->call_timeout_ms > u->max_call_timeout_ms) {
			cfg_fmt_dur(u->call_timeout_ms, lo, sizeof(lo));
			cfg_fmt_dur(u->max_call_timeout_ms, hi, sizeof(hi));
			cfg_err_at(ctx, seen[UK_MAX_TIMEOUT] ?
			    seen[UK_MAX_TIMEOUT] : seen[UK_TIMEOUT],
			    "max_timeout (%s) must be at least timeout (%s)",
			    hi, lo);
		}
		p->item = it;
		p->name = seen[UK_NAME] ? seen[UK_NAME] : it;
		p->prefix = seen[UK_PREFIX] ? seen[UK_PREFIX] : p->name;
	}
	check_unique(ctx, pos);
out:
	free(pos);
}
