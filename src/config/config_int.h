/*
 * Internals shared by the config_*.c files; not part of the public API.
 *
 * Loading runs in three steps: config_yaml.c turns the text into a small tree
 * of nodes that keep their positions (built from events: libyaml's document
 * API resolves aliases before we could refuse them), config_schema.c and
 * config_upstream.c walk the tree against the schema and fill a struct
 * pc_config, and config_ref.c
 * resolves ${env:...} / ${file:...} references inside string values. Every
 * problem is recorded in the context and the walk goes on, so one run reports
 * all of them.
 */
#ifndef PC_CONFIG_INT_H
#define PC_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../lib/limits.h"
#include "config.h"

/* Nesting deeper than this has no use in the schema; the bound keeps the
 * recursive walkers' stack use small. (Local; not an operator limit.) */
#define CFG_MAX_DEPTH		PC_MAX_CONFIG_DEPTH

/* A string after reference expansion; several file references together stay
 * well below this. (Local; PC_MAX_FILE_REF_BYTES bounds each file.) */
#define CFG_MAX_EXPANDED	PC_MAX_CONFIG_EXPANDED

enum cfg_kind {
	CN_SCALAR = 0,
	CN_SEQ,
	CN_MAP,
	CN_BAD,		/* an alias or other refused construct, already reported */
};

struct cfg_node {
	enum cfg_kind kind;
	unsigned line, col;	/* 1-based */
	char *s;		/* scalar bytes (NUL-terminated copy) */
	size_t len;
	bool plain;		/* unquoted scalar: "", "~" and "null" mean null */
	struct cfg_node **kids;	/* seq: items; map: key0, val0, key1, val1... */
	size_t nkids, cap;
};

struct cfg_ctx {
	const char *file;		/* name used in messages */
	char *dir;			/* absolute dir for relative paths */
	struct pc_config_errors *errs;	/* never NULL here */
	struct pc_config *cfg;
	bool nomem;			/* an allocation failed somewhere */
	bool listen_nonloopback;	/* checked against tls at the end */
	bool auth_method_seen;		/* an auth method section was given */
	bool full;			/* error list reached its cap */
	unsigned argv_ref_line, argv_ref_col;	/* first reference in a
					 * command item (0: none) */
};

/* Record "file:line:col: msg". Never fails: OOM sets ctx->nomem. */
void cfg_err(struct cfg_ctx *ctx, unsigned line, unsigned col,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define cfg_err_at(ctx, node, ...) \
	cfg_err((ctx), (node)->line, (node)->col, __VA_ARGS__)

/* Render user text for a message: printable, at most ~60 chars, NUL-safe. */
const char *cfg_show(const char *s, size_t len, char *buf, size_t buflen);

/* config_yaml.c ---------------------------------------------------------- */

/* Parse buf into a tree. *root is NULL for an empty document. Returns 0,
 * PC_E_CONFIG (problem recorded) or PC_E_NOMEM. Caller frees *root. */
int cfg_yaml_parse(struct cfg_ctx *ctx, const char *buf, size_t len,
    struct cfg_node **root);
void cfg_node_free(struct cfg_node *n);
/* A plain empty scalar, "~" or "null" (any case of the word). */
bool cfg_node_is_null(const struct cfg_node *n);

/* config.c / config_schema.c ---------------------------------------------- */

/* ttlMs on modern list results when the config says nothing. (Local until
 * src/lib/limits.h has a PC_DEF_LIST_TTL_MS.) */
#define CFG_DEF_LIST_TTL_MS	PC_DEF_LIST_TTL_MS

/* Fill the tree's values into ctx->cfg (which holds the defaults). */
void cfg_walk_root(struct cfg_ctx *ctx, const struct cfg_node *root);
/* Upstream defaults (no name/argv yet). 0 or PC_E_NOMEM; on failure the
 * caller still clears u. */
int cfg_upstream_defaults(struct pc_upstream_conf *u);
/* Free what u holds (wiping argv and env) and zero it. */
void cfg_upstream_clear(struct pc_upstream_conf *u);
/* NULL-terminated copy of n strings. 0 or PC_E_NOMEM. */
int cfg_strv_new(const char *const *src, size_t n, char ***out);
/* config_dump.c: "30s", "5m", "250ms", "1h"; "1MiB", "16KiB", "1000".
 * buflen >= 32. */
void cfg_fmt_dur(uint64_t ms, char *buf, size_t buflen);
void cfg_fmt_size(uint64_t bytes, char *buf, size_t buflen);

/* Schema tables (config_schema.c): each mapping is walked against an array
 * of keys; plain kinds are parsed into a field at `off` in the object being
 * filled, VK_FN keys call `fn`. */
#define CFG_MAX_KEYS		24u	/* longest key table */
#define CFG_MAX_LIST		PC_MAX_CONFIG_LIST	/* origins, hosts, inherit_env */
#define CFG_MAX_ARGS		PC_MAX_CONFIG_LIST
#define CFG_MAX_ENV		PC_MAX_CONFIG_LIST

enum cfg_vkind { VK_FN = 0, VK_SIZE, VK_UINT, VK_DUR_S, VK_DUR_MS, VK_BOOL };

struct cfg_key;
typedef void (*cfg_key_fn)(struct cfg_ctx *, const struct cfg_key *,
    const struct cfg_node *val, void *obj);

struct cfg_key {
	const char *name;
	enum cfg_vkind kind;
	size_t off;		/* uint32_t (or bool) field in obj */
	uint64_t min, max;	/* bytes, count, ms or s after conversion */
	cfg_key_fn fn;
};

/* seen[i] is set to the key node of keys[i], or NULL if absent. `where`
 * names the mapping in messages (NULL at the top level). */
void cfg_walk_map(struct cfg_ctx *ctx, const struct cfg_node *map,
    const char *where, const struct cfg_key *keys, size_t nkeys, void *obj,
    const struct cfg_node **seen);
/* Report "KEY: expected WHAT, got ...". */
void cfg_expected(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, const char *what);
/* v's string, or NULL after reporting (not a scalar, null, holds NUL). */
const char *cfg_want_str(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, const char *what);
/* True for a mapping; null is silently false (keep defaults). */
bool cfg_want_map(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v);
typedef bool (*cfg_item_ok_fn)(struct cfg_ctx *, const struct cfg_key *,
    const struct cfg_node *);
/* Replace *dst (NULL-terminated, *ndst entries) with the list in v. */
void cfg_set_strlist(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, char ***dst, size_t *ndst, cfg_item_ok_fn ok);
bool cfg_env_name_item(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v);
/* Record a value the gateway knows as a secret, for redaction (empty
 * values and repeats are skipped). 0 or PC_E_NOMEM. */
int cfg_add_secret(struct cfg_ctx *ctx, const char *v, size_t len);
/* strdup that sets ctx->nomem on failure. */
char *cfg_dup(struct cfg_ctx *ctx, const char *s);

/* config_upstream.c: the upstreams: list. */
void cfg_upstreams(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v);

/* config_auth.c: mode, tls, trusted_proxies, auth ------------------------ */
int cfg_auth_defaults(struct pc_config *c);
void cfg_auth_free(struct pc_config *c);
void cfg_k_mode(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_tls(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_trusted_proxies(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
/* Replace *dst with v as an absolute path (relative: from the config's
 * directory); an empty or non-string value is reported. */
void cfg_set_path(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, char **dst);
void cfg_k_auth(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_audit(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
/* Rules across keys, after the walk. Nodes may be NULL (key absent). */
void cfg_auth_check(struct cfg_ctx *ctx, const struct cfg_node *root,
    const struct cfg_node *auth_node, const struct cfg_node *listen_node);

/* config_policy.c: the policy: section, built into cfg->policy. */
void cfg_k_policy(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
/* config_limits.c: rate_limits, budgets, tool_costs, breakers,
 * concurrency, limits_store ----------------------------------------------- */
void cfg_k_rate_limits(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_budgets(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_tool_costs(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_breakers(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_concurrency(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_k_limits_store(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj);
void cfg_limiter_free(struct pc_config *c);
/* The sections as `check --print` shows them (they load back). */
void cfg_limiter_dump(const struct pc_config *cfg, FILE *f);
/* After the walk (and cfg_auth_check: the store defaults to the key
 * store). Nodes may be NULL (section absent). */
void cfg_limiter_check(struct cfg_ctx *ctx, const struct cfg_node *root,
    const struct cfg_node *rate_node, const struct cfg_node *budget_node);

/* config_ref.c ------------------------------------------------------------ */

/*
 * Expand ${env:NAME}, ${file:PATH} and the $${ escape in scalar n. On 0,
 * *out is a new string (caller frees, wiping it: it may hold a secret) and
 * *had_ref tells whether any reference was resolved; every resolved value
 * was added to ctx->cfg->secrets. Returns PC_E_CONFIG (problem recorded at
 * n) or PC_E_NOMEM.
 */
int cfg_expand(struct cfg_ctx *ctx, const struct cfg_node *n, char **out,
    bool *had_ref);
/* Whether an environment variable name suggests it holds a credential. */
bool cfg_name_looks_secret(const char *name);
/* Whether an environment variable's name says its value is a secret: a
 * '_'-separated word ending in KEY, TOKEN, SECRET, PASSWORD, PASSWD, PWD,
 * CREDENTIAL, PASSPHRASE, AUTH, AUTHORIZATION or PRIVATE (or one of them
 * and an S), except PWD, OLDPWD and names ending in _SOCK or _SOCKET
 * (SSH_AUTH_SOCK). Word-wise, unlike
 * cfg_name_looks_secret, which errs towards refusing literals. */
bool cfg_env_name_holds_secret(const char *name);
/* [A-Za-z_][A-Za-z0-9_]* */
bool cfg_env_name_ok(const char *name);
/* Absolute path of p, relative ones taken from ctx->dir. NULL on OOM. */
char *cfg_abs_path(const struct cfg_ctx *ctx, const char *p);
/* Free a string that may hold a secret, wiping it first. Accepts NULL. */
void cfg_free_secret(char *s);

#endif
