/*
 * The effective configuration as YAML, for `portcullis check --print`.
 *
 * Every value is printed, defaults included, in the same syntax the loader
 * reads, so the output can be saved and loaded again. Any resolved secret
 * that occurs in a printed string is replaced by <redacted>; the caller
 * never sees a secret through this path.
 */
#include <arpa/inet.h>
#include "config_int.h"

#include <jansson.h>

#include <stdio.h>
#include <string.h>

#include "../audit/audit.h"
#include "../lib/errors.h"

void
cfg_fmt_dur(uint64_t ms, char *buf, size_t buflen)
{
	if (ms != 0 && ms % 3600000u == 0)
		snprintf(buf, buflen, "%lluh", (unsigned long long)(ms / 3600000u));
	else if (ms != 0 && ms % 60000u == 0)
		snprintf(buf, buflen, "%llum", (unsigned long long)(ms / 60000u));
	else if (ms % 1000u == 0)
		snprintf(buf, buflen, "%llus", (unsigned long long)(ms / 1000u));
	else
		snprintf(buf, buflen, "%llums", (unsigned long long)ms);
}

void
cfg_fmt_size(uint64_t b, char *buf, size_t buflen)
{
	if (b != 0 && b % (1024u * 1024u * 1024u) == 0)
		snprintf(buf, buflen, "%lluGiB", (unsigned long long)(b >> 30));
	else if (b != 0 && b % (1024u * 1024u) == 0)
		snprintf(buf, buflen, "%lluMiB", (unsigned long long)(b >> 20));
	else if (b != 0 && b % 1024u == 0)
		snprintf(buf, buflen, "%lluKiB", (unsigned long long)(b >> 10));
	else
		snprintf(buf, buflen, "%llu", (unsigned long long)b);
}

/* Length of the longest secret that starts at s, or 0. */
static size_t
secret_at(const struct pc_config *cfg, const char *s)
{
	size_t best = 0;

	for (size_t i = 0; i < cfg->nsecrets; i++) {
		size_t n = strlen(cfg->secrets[i]);
		if (n > best && strncmp(s, cfg->secrets[i], n) == 0)
			best = n;
	}
	return best;
}

/* A double-quoted YAML string with secrets redacted. In fields where the
 * loader expands references (refs), a literal "${" is written as "$${" so
 * that the output loads back to the same value. */
static void
put_str_r(FILE *f, const struct pc_config *cfg, const char *s, bool refs)
{
	fputc('"', f);
	while (*s != '\0') {
		size_t n = secret_at(cfg, s);
		unsigned char c = (unsigned char)*s;

		if (n > 0) {
			fputs("<redacted>", f);
			s += n;
			continue;
		}
		if (refs && s[0] == '$' && s[1] == '{')
			fputc('$', f);
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
		s++;
	}
	fputc('"', f);
}

static void
put_str(FILE *f, const struct pc_config *cfg, const char *s)
{
	put_str_r(f, cfg, s, false);
}

static void
put_list(FILE *f, const struct pc_config *cfg, char *const *v, size_t n,
    bool refs)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			fputs(", ", f);
		put_str_r(f, cfg, v[i], refs);
	}
	fputs("]\n", f);
}

static void
put_listen(FILE *f, const char *key, const struct pc_listen_conf *l)
{
	if (l->address == NULL)
		fprintf(f, "%s: off\n", key);
	else if (strchr(l->address, ':') != NULL)
		fprintf(f, "%s: \"[%s]:%u\"\n", key, l->address, l->port);
	else
		fprintf(f, "%s: \"%s:%u\"\n", key, l->address, l->port);
}

static void
put_dur(FILE *f, const char *indent, const char *key, uint64_t ms)
{
	char b[32];

	cfg_fmt_dur(ms, b, sizeof(b));
	fprintf(f, "%s%s: %s\n", indent, key, b);
}

static void
put_size(FILE *f, const char *indent, const char *key, uint64_t bytes)
{
	char b[32];

	cfg_fmt_size(bytes, b, sizeof(b));
	fprintf(f, "%s%s: %s\n", indent, key, b);
}

static void
put_upstream(FILE *f, const struct pc_config *cfg,
    const struct pc_upstream_conf *u)
{
	static const char *const eras[] = { "auto", "legacy", "modern" };
	const char *in = "    ";
	char lo[32], hi[32];

	fputs("  - name: ", f);
	put_str(f, cfg, u->name ? u->name : "");
	fputs("\n    prefix: ", f);
	put_str(f, cfg, u->prefix ? u->prefix : "");
	fputs("\n    command: ", f);
	put_list(f, cfg, u->argv, u->argc, true);
	fprintf(f, "    env:%s\n", u->nenv ? "" : " {}");
	for (size_t i = 0; i < u->nenv; i++) {
		const char *eq = strchr(u->env[i], '=');
		/* Names are not secret; only the value is redacted. */
		fprintf(f, "      %.*s: ", (int)(eq - u->env[i]), u->env[i]);
		put_str_r(f, cfg, eq + 1, true);
		fputc('\n', f);
	}
	fputs("    inherit_env: ", f);
	put_list(f, cfg, u->inherit_env, u->ninherit, false);
	if (u->cwd != NULL) {
		fputs("    cwd: ", f);
		put_str(f, cfg, u->cwd);
		fputc('\n', f);
	}
	fprintf(f, "    era: %s\n", eras[u->era]);
	fprintf(f, "    client_roots: %s\n", u->client_roots ? "true" : "false");
	put_dur(f, in, "timeout", u->call_timeout_ms);
	put_dur(f, in, "max_timeout", u->max_call_timeout_ms);
	put_dur(f, in, "probe_timeout", u->probe_timeout_ms);
	put_dur(f, in, "init_timeout", u->init_timeout_ms);
	put_dur(f, in, "shutdown_grace", u->shutdown_grace_ms);
	cfg_fmt_dur(u->restart_min_ms, lo, sizeof(lo));
	cfg_fmt_dur(u->restart_max_ms, hi, sizeof(hi));
	fprintf(f, "    restart_backoff: {min: %s, max: %s}\n", lo, hi);
	put_size(f, in, "max_line_bytes", u->max_line_bytes);
}

static void
put_path(FILE *f, const struct pc_config *cfg, const char *key, const char *p)
{
	if (p == NULL)
		return;
	fprintf(f, "%s: ", key);
	put_str(f, cfg, p);
	fputc('\n', f);
}

/* mode, tls, trusted_proxies and auth. The pepper is always redacted. */
static void
put_security(FILE *f, const struct pc_config *cfg)
{
	static const char *const ca[] = { "none", "optional", "required" };
	const struct pc_auth_conf *a = &cfg->auth;
	char b[INET6_ADDRSTRLEN];

	fprintf(f, "mode: %s\n", cfg->mode == PC_MODE_PRODUCTION ?
	    "production" : "development");
	if (cfg->tls.enabled) {
		const struct pc_tls_conf *t = &cfg->tls;
		fputs("tls:\n", f);
		put_path(f, cfg, "  cert", t->cert_file);
		put_path(f, cfg, "  key", t->key_file);
		fprintf(f, "  min_version: \"1.%d\"\n", t->min_version - 10);
		put_path(f, cfg, "  client_ca", t->client_ca_file);
		fprintf(f, "  client_auth: %s\n", ca[t->client_auth]);
		fprintf(f, "  session_tickets: %s\n", t->session_tickets ?
		    "true" : "false");
		put_dur(f, "  ", "hsts_max_age", (uint64_t)t->hsts_max_age_s * 1000u);
	}
	if (cfg->ntrusted_proxies > 0) {
		fputs("trusted_proxies: [", f);
		for (size_t i = 0; i < cfg->ntrusted_proxies; i++) {
			const struct pc_cidr *c = &cfg->trusted_proxies[i];
			inet_ntop(c->family, c->addr, b, sizeof(b));
			fprintf(f, "%s%s/%u", i ? ", " : "", b, c->bits);
		}
		fputs("]\n", f);
	}
	if (a->none) {
		fputs("auth: none\n", f);
		return;
	}
	fputs("auth:\n", f);
	if (a->pepper != NULL) {
		fputs("  api_keys:\n", f);
		put_path(f, cfg, "    store", a->key_store);
		fputs("    pepper: <redacted>\n", f);
		fprintf(f, "    rotation_days: %u\n", a->rotation_days);
	}
	if (a->issuer != NULL) {
		fputs("  oauth:\n", f);
		put_path(f, cfg, "    issuer", a->issuer);
		put_path(f, cfg, "    jwks_uri", a->jwks_uri);
		put_path(f, cfg, "    jwks_file", a->jwks_file);
		put_path(f, cfg, "    resource", a->resource);
		fputs("    algorithms: ", f);
		put_list(f, cfg, a->algorithms, a->nalgorithms, false);
		put_dur(f, "    ", "leeway", (uint64_t)a->leeway_s * 1000u);
		fputs("    scopes_supported: ", f);
		put_list(f, cfg, a->scopes_supported, a->nscopes_supported, false);
		fputs("    required_scopes: ", f);
		put_list(f, cfg, a->required_scopes, a->nrequired_scopes, false);
		if (a->nscope_roles > 0) {
			fputs("    scope_roles:\n", f);
			for (size_t i = 0; i < a->nscope_roles; i++) {
				fputs("      ", f);
				put_str(f, cfg, a->scope_roles[i].scope ?
				    a->scope_roles[i].scope : "");
				fputs(": ", f);
				put_list(f, cfg, a->scope_roles[i].roles,
				    a->scope_roles[i].nroles, false);
			}
		}
	}
	if (a->nidentities > 0) {
		fputs("  mtls:\n    identities:\n", f);
		for (size_t i = 0; i < a->nidentities; i++) {
			const struct pc_mtls_identity *id = &a->identities[i];
			fputs("      - match: ", f);
			put_str(f, cfg, id->match ? id->match : "");
			fputs("\n        principal: ", f);
			put_str(f, cfg, id->principal ? id->principal : "");
			fputc('\n', f);
			put_path(f, cfg, "        tenant", id->tenant);
			fputs("        roles: ", f);
			put_list(f, cfg, id->roles, id->nroles, false);
		}
	}
	fprintf(f, "  failed_auth:\n    max_failures: %u\n", a->max_failures);
	put_dur(f, "    ", "window", (uint64_t)a->failure_window_s * 1000u);
}

/* The audit section with the module's defaults filled in; the key is a
 * secret. */
static void
put_audit(FILE *f, const struct pc_config *cfg)
{
	const struct pc_audit_cfg *a = &cfg->audit;
	const char *fac;

	if (!a->enabled) {
		fputs("# audit: off (no audit log)\n", f);
		return;
	}
	fputs("audit:\n", f);
	put_path(f, cfg, "  dir", a->dir);
	fputs("  key: <redacted>\n", f);
	fprintf(f, "  fsync: %s\n", a->strict ? "strict" : "group");
	put_dur(f, "  ", "group_delay", a->group_delay_ms);
	put_size(f, "  ", "max_file_size", a->max_file_bytes ?
	    a->max_file_bytes : PC_AUDIT_DEF_MAX_FILE_BYTES);
	put_dur(f, "  ", "max_file_age", (uint64_t)(a->max_file_age_s ?
	    a->max_file_age_s : PC_AUDIT_DEF_MAX_FILE_AGE_S) * 1000u);
	fprintf(f, "  retention_days: %u\n", a->retention_days ?
	    a->retention_days : PC_AUDIT_DEF_RETENTION_DAYS);
	fprintf(f, "  flood:\n    burst: %u\n    per_second: %u\n"
	    "    global_per_second: %u\n", a->flood_burst ? a->flood_burst :
	    PC_FLOOD_DEF_BURST, a->flood_per_s ? a->flood_per_s :
	    PC_FLOOD_DEF_PER_S, a->flood_global_per_s ?
	    a->flood_global_per_s : PC_FLOOD_DEF_GLOBAL);
	if (a->syslog_socket == NULL && a->syslog_tcp == NULL)
		return;
	fputs("  syslog:\n", f);
	put_path(f, cfg, "    socket", a->syslog_socket);
	put_path(f, cfg, "    tcp", a->syslog_tcp);
	fac = pc_audit_syslog_facility_name(a->syslog_facility);
	fprintf(f, "    facility: %s\n", fac ? fac : "?");
}

int
pc_config_dump(const struct pc_config *cfg, FILE *f)
{
	const struct pc_limits_conf *l = &cfg->limits;
	const char *in = "  ";

	fputs("# Effective configuration from ", f);
	put_str(f, cfg, cfg->path);
	fputs(".\n# Resolved secrets are shown as <redacted>.\n", f);
	put_listen(f, "listen", &cfg->listen);
	put_listen(f, "admin_listen", &cfg->admin);
	fprintf(f, "log_level: %s\n", cfg->log_level);
	fputs("http:\n  path: ", f);
	put_str(f, cfg, cfg->mcp_path);
	fputs("\n  allowed_origins: ", f);
	put_list(f, cfg, cfg->allowed_origins, cfg->norigins, false);
	fputs("  allowed_hosts: ", f);
	put_list(f, cfg, cfg->allowed_hosts, cfg->nhosts, false);
	fprintf(f, "eras:\n  legacy: %s\n  modern: %s\n",
	    cfg->legacy_enabled ? "true" : "false",
	    cfg->modern_enabled ? "true" : "false");
	fputs("limits:\n", f);
	put_size(f, in, "max_body_bytes", l->max_body_bytes);
	put_size(f, in, "max_header_bytes", l->max_header_bytes);
	fprintf(f, "  max_json_depth: %u\n", l->max_json_depth);
	put_size(f, in, "max_string_bytes", l->max_string_bytes);
	fprintf(f, "  max_array_items: %u\n", l->max_array_items);
	fprintf(f, "  max_pending_per_client: %u\n", l->max_pending_per_client);
	put_dur(f, in, "idle_timeout", (uint64_t)l->idle_timeout_s * 1000u);
	put_dur(f, in, "read_timeout", (uint64_t)l->read_timeout_s * 1000u);
	put_dur(f, in, "request_timeout",
	    (uint64_t)l->request_timeout_s * 1000u);
	fprintf(f, "  max_connections: %u\n", l->max_connections);
	fprintf(f, "  max_connections_per_source: %u\n",
	    l->max_connections_per_source);
	fprintf(f, "  max_sessions: %u\n", l->max_sessions);
	fprintf(f, "  max_sessions_per_principal: %u\n",
	    l->max_sessions_per_principal);
	put_dur(f, in, "session_idle_timeout",
	    (uint64_t)l->session_idle_s * 1000u);
	fprintf(f, "  page_size: %u\n", l->page_size);
	put_dur(f, in, "list_ttl", l->list_ttl_ms);
	fprintf(f, "upstreams:%s\n", cfg->nupstreams ? "" : " []");
	for (size_t i = 0; i < cfg->nupstreams; i++)
		put_upstream(f, cfg, &cfg->upstreams[i]);
	put_security(f, cfg);
	put_audit(f, cfg);
	if (cfg->nredact_keys > 0) {
		fputs("redaction:\n  keys: ", f);
		put_list(f, cfg, cfg->redact_keys, cfg->nredact_keys, false);
	}
	/* JSON is YAML flow syntax: the section reads back as written. */
	if (cfg->policy_src != NULL) {
		fputs("policy: ", f);
		json_dumpf(cfg->policy_src, f, JSON_COMPACT | JSON_ENSURE_ASCII);
		fputc('\n', f);
	} else {
		fputs("# policy: none: nothing is granted (deny by default)\n", f);
	}
	cfg_limiter_dump(cfg, f);
	return ferror(f) ? PC_E_IO : 0;
}
