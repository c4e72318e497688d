/*
 * Configuration: the YAML file, its schema, and secret references.
 *
 * The struct is plain data, read by every module after loading; it is never
 * changed in place. A reload builds a new pc_config and swaps it in whole,
 * so a failed reload leaves the running one untouched.
 *
 * References in string values (upstream env and anywhere the schema allows):
 *   ${env:NAME}   the gateway's environment variable NAME (error if unset)
 *   ${file:PATH}  the contents of PATH, one trailing newline stripped; a file
 *                 readable by group or others is refused (it holds secrets)
 * Resolved values are recorded in `secrets` so later modules can redact them.
 */
#ifndef PC_CONFIG_H
#define PC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdio.h>

#include "../limits/breaker.h"
#include "../limits/budget.h"
#include "../limits/gcra.h"

struct pc_listen_conf {
	char *address;		/* numeric IP literal; default "127.0.0.1" */
	uint16_t port;		/* 0 = ephemeral (tests) */
};

enum pc_era_pref { PC_ERA_AUTO = 0, PC_ERA_LEGACY, PC_ERA_MODERN };

struct pc_upstream_conf {
	char *name;		/* [a-z0-9-]{1,32}, unique */
	char *prefix;		/* exposed name prefix: default = name; "" = none */
	char **argv;		/* NULL-terminated; argv[0] is the program */
	size_t argc;
	char **env;		/* NULL-terminated "KEY=VALUE", resolved */
	size_t nenv;
	char **inherit_env;	/* names copied from the gateway's env; NULL-term. */
	size_t ninherit;
	char *cwd;		/* NULL = gateway's cwd */
	enum pc_era_pref era;
	bool client_roots;	/* declare the roots capability upstream */
	uint32_t call_timeout_ms;
	uint32_t max_call_timeout_ms;
	uint32_t probe_timeout_ms;
	uint32_t init_timeout_ms;
	uint32_t shutdown_grace_ms;
	uint32_t restart_min_ms;
	uint32_t restart_max_ms;
	uint32_t max_line_bytes;
	bool argv_secret;	/* a command item held a ${...} reference:
				 * visible to local users (ps, /proc) */
};

struct pc_limits_conf {
	uint32_t max_body_bytes;
	uint32_t max_header_bytes;
	uint32_t max_json_depth;
	uint32_t max_string_bytes;
	uint32_t max_array_items;	/* elements of one JSON array */
	uint32_t max_pending_per_client;
	uint32_t idle_timeout_s;
	uint32_t read_timeout_s;
	uint32_t request_timeout_s;	/* a whole request, from the end of the
					 * previous one (or the connection) */
	uint32_t max_connections;	/* open on the MCP listener */
	uint32_t max_connections_per_source; /* per client address (trusted
					 * proxies exempt) */
	uint32_t max_sessions;
	uint32_t max_sessions_per_principal;
	uint32_t session_idle_s;
	uint32_t page_size;
	uint32_t list_ttl_ms;	/* ttlMs on modern list results */
};

enum pc_mode { PC_MODE_DEVELOPMENT = 0, PC_MODE_PRODUCTION };

enum pc_client_auth {
	PC_CLIENT_AUTH_NONE = 0,	/* no client certificate requested */
	PC_CLIENT_AUTH_OPTIONAL,	/* verified if sent */
	PC_CLIENT_AUTH_REQUIRED,	/* handshake fails without a valid one */
};

/* TLS on the MCP listener. */
struct pc_tls_conf {
	bool enabled;
	char *cert_file;		/* PEM chain, absolute path */
	char *key_file;			/* PEM key; refused if group/other can read */
	char *client_ca_file;		/* PEM bundle for mTLS, or NULL */
	enum pc_client_auth client_auth;
	int min_version;		/* 12 (TLS 1.2, default) or 13 */
	bool session_tickets;		/* default false: no ticket resumption */
	uint32_t hsts_max_age_s;	/* Strict-Transport-Security; 0 = off */
};

/* An address range (trusted proxies). */
struct pc_cidr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned bits;
	unsigned char addr[16];
};

/* mTLS identity -> principal. `match` is an exact identity (SAN URI such
 * as a SPIFFE id, SAN DNS name or subject CN) or a prefix ending in '*'. */
struct pc_mtls_identity {
	char *match;
	char *principal;
	char *tenant;			/* may be NULL */
	char **roles;			/* NULL-terminated */
	size_t nroles;
};

/* OAuth scope -> roles. */
struct pc_scope_roles {
	char *scope;
	char **roles;			/* NULL-terminated */
	size_t nroles;
};

struct pc_auth_conf {
	/* `auth: none`: no authentication. Only for a loopback listener and
	 * not in production mode; logged loudly at start. Default false. */
	bool none;

	/* API keys (enabled when a pepper is configured). */
	char *key_store;		/* SQLite file, absolute; default
					 * <config dir>/portcullis.db */
	char *pepper;			/* HMAC key from ${file:}/${env:}, NUL-
					 * terminated; NULL = API keys off */
	size_t pepper_len;		/* >= 32 bytes */
	uint32_t rotation_days;		/* rotation-due policy; default 90 */

	/* OAuth 2.1 resource server (enabled when issuer is set). */
	char *issuer;			/* exact `iss` */
	char *jwks_uri;			/* https (http only for loopback) */
	char *jwks_file;		/* or a local JWKS file (no fetch) */
	char *resource;			/* canonical URI of this gateway = `aud` */
	char **algorithms;		/* NULL-terminated; default RS256 PS256
					 * ES256 EdDSA */
	size_t nalgorithms;
	uint32_t leeway_s;		/* exp/nbf/iat leeway; default 60 */
	char **scopes_supported;	/* for the PRM document */
	size_t nscopes_supported;
	char **required_scopes;		/* challenged on 401; checked on use */
	size_t nrequired_scopes;
	struct pc_scope_roles *scope_roles;
	size_t nscope_roles;

	/* mTLS identities (need tls.client_ca). */
	struct pc_mtls_identity *identities;
	size_t nidentities;

	/* Failed authentications per source address before 429. */
	uint32_t max_failures;		/* default 10 */
	uint32_t failure_window_s;	/* default 60 */
};

/* The audit log (src/audit). Off unless configured. */
struct pc_audit_cfg {
	bool enabled;
	char *dir;			/* absolute; created 0700 if missing */
	char *key;			/* MAC key from ${file:}/${env:}, >= 32 B */
	size_t key_len;
	bool strict;			/* reply only after the fsync */
	uint32_t group_delay_ms;	/* group commit delay; default 10 */
	uint32_t max_file_bytes;	/* rotate past; 0 = module default */
	uint32_t max_file_age_s;	/* rotate past; 0 = module default */
	uint32_t retention_days;	/* 0 = module default (90) */
	/* A copy of every record to syslog: one of the two, or neither. */
	char *syslog_socket;		/* local datagram socket path */
	char *syslog_tcp;		/* "IP:port", octet-counted TCP */
	int syslog_facility;		/* -1: the module's default */
	/* The flood gate of refusal records (src/limits/flood.h); 0: its
	 * default. */
	uint32_t flood_burst;		/* per source */
	uint32_t flood_per_s;		/* per source, steady */
	uint32_t flood_global_per_s;	/* all sources together */
};

struct pc_policy;
struct pc_schema;
struct json_t;

/* A config tightening of a tool's input schema (policy constraint
 * `schema:`): the argument must also fit this schema. */
struct pc_tighten {
	char *tool_pattern;		/* glob on the exposed tool name */
	char *arg;			/* top-level argument */
	struct pc_schema *schema;	/* compiled {type: object, properties:
					 * {arg: fragment}, required: [arg]} */
};

/* A tool's cost for budgets: `pattern` is an exposed tool name, or a glob
 * (fnmatch: *, ?, [..]). Exact names win over globs; globs are tried in
 * file order. Tools that match nothing cost 1. */
struct pc_tool_cost {
	char *pattern;
	uint64_t cost;
};

/*
 * Issue 5 limits (src/limits, docs/limits.md): rate_limits, budgets,
 * tool_costs, breakers, concurrency, limits_store. Everything empty or off
 * (the default) means no limiting.
 */
struct pc_limiter_conf {
	struct pc_gcra_limit *rate;	/* rate_limits, ids filled in */
	size_t nrate;
	struct pc_budget_limit *budgets;
	size_t nbudgets;
	struct pc_tool_cost *costs;
	size_t ncosts;
	bool key_breaker;		/* breakers.key given (default off) */
	struct pc_breaker_config key_br;
	bool upstream_breaker;		/* breakers.upstream given */
	struct pc_breaker_config upstream_br;
	uint32_t per_key;		/* concurrency caps; 0 = none */
	uint32_t per_upstream;
	char *store;			/* SQLite file for the counters;
					 * absolute; NULL = the API key store,
					 * else <config dir>/portcullis.db */
};

/* The budget cost of calling exposed tool `tool`: an exact tool_costs
 * entry, else the first glob that matches, else 1. */
uint64_t pc_tool_cost_of(const struct pc_limiter_conf *l, const char *tool);

struct pc_config {
	char *path;		/* file it came from, or "<embedded>" */
	struct pc_listen_conf listen;
	struct pc_listen_conf admin;	/* address NULL = no admin listener */
	char *mcp_path;		/* default "/mcp" */
	char **allowed_origins;	/* NULL-terminated; empty = loopback origins */
	size_t norigins;
	char **allowed_hosts;	/* NULL-terminated; empty = loopback hosts */
	size_t nhosts;
	bool legacy_enabled;	/* serve 2025-xx clients (default true) */
	bool modern_enabled;	/* serve 2026-07-28 clients (default true) */
	char *log_level;	/* "debug|info|warn|error" */
	struct pc_limits_conf limits;
	struct pc_upstream_conf *upstreams;
	size_t nupstreams;
	enum pc_mode mode;	/* development (default) or production */
	struct pc_tls_conf tls;
	struct pc_cidr *trusted_proxies;	/* plaintext allowed from these;
						 * forwarded headers honoured */
	size_t ntrusted_proxies;
	struct pc_auth_conf auth;
	struct pc_audit_cfg audit;
	/* The built policy (src/authz), or NULL when the file has no
	 * `policy:` section: then nothing is granted (deny by default). */
	struct pc_policy *policy;
	struct json_t *policy_src;	/* the section as written, for --print */
	struct pc_tighten *tighten;	/* schema constraints, config order */
	size_t ntighten;
	/* redaction.keys: argument and field names whose values never reach
	 * the audit log or the gateway's log, added to the built-in list
	 * (src/secrets/redact). NULL-terminated. */
	char **redact_keys;
	size_t nredact_keys;
	struct pc_limiter_conf limiter;
	char **secrets;		/* resolved reference values, for redaction */
	size_t nsecrets;
};

/* One diagnostic: "file:line:col: message". */
struct pc_config_error {
	char *file;
	unsigned line, col;	/* 1-based; 0 when not tied to a position */
	char *msg;
};

struct pc_config_errors {
	struct pc_config_error *v;
	size_t n;
};

/*
 * Load and validate the YAML file at path. On success *out is a new config
 * (caller frees with pc_config_free) and 0 is returned. On failure returns
 * PC_E_CONFIG (or PC_E_IO/PC_E_NOMEM) and fills errs with every problem
 * found (caller frees with pc_config_errors_free); *out stays NULL.
 * errs is overwritten on entry (not freed) and may be NULL. Errors are in
 * file order; messages never contain a secret value.
 */
int pc_config_load(const char *path, struct pc_config **out,
    struct pc_config_errors *errs);

/* Same, from a buffer; `name` is used in messages. */
int pc_config_load_buffer(const char *name, const char *buf, size_t len,
    struct pc_config **out, struct pc_config_errors *errs);

/* The embedded defaults (no upstreams, path "<embedded>"). *out is new,
 * caller frees with pc_config_free. 0 or PC_E_NOMEM. */
int pc_config_default(struct pc_config **out);

/* Free; accepts NULL. Wipes resolved secrets. */
void pc_config_free(struct pc_config *cfg);
void pc_config_errors_free(struct pc_config_errors *errs);

/* Print errors as "file:line:col: msg" lines to stream (FILE *). */
void pc_config_errors_print(const struct pc_config_errors *errs, void *stream);

/*
 * Print the effective config (defaults included) as YAML that the loader
 * reads back, for `portcullis check --print`. Every occurrence of a resolved
 * secret is printed as <redacted>. Returns 0, or PC_E_IO if the stream
 * reported a write error.
 */
int pc_config_dump(const struct pc_config *cfg, FILE *f);

#endif
