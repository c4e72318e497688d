/*
 * The config sections of transport security and authentication: mode,
 * tls, trusted_proxies and auth. Cross-key rules (a non-loopback listener
 * needs TLS or a declared TLS-terminating proxy; `auth: none` only on
 * loopback and never in production; some method must be configured) are
 * checked once the whole file has been walked, in cfg_auth_check().
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../audit/audit.h"
#include "../authn/principal.h"
#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/util.h"
#include "config_int.h"

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))
#define AF(f) offsetof(struct pc_auth_conf, f)
#define TF(f) offsetof(struct pc_tls_conf, f)

/* Minimum pepper length: the HMAC key must not be guessable. */
#define CFG_MIN_PEPPER 32u

static const char *const default_algs[] = { "RS256", "PS256", "ES256", "EdDSA" };

int
cfg_auth_defaults(struct pc_config *c)
{
	c->mode = PC_MODE_DEVELOPMENT;
	c->tls.min_version = 12;
	c->tls.hsts_max_age_s = 31536000u;
	c->auth.rotation_days = PC_DEF_KEY_ROTATION_DAYS;
	c->auth.leeway_s = 60;
	c->auth.max_failures = PC_DEF_AUTH_MAX_FAILURES;
	c->auth.failure_window_s = PC_DEF_AUTH_FAILURE_WINDOW_S;
	if (cfg_strv_new(default_algs, NKEYS(default_algs), &c->auth.algorithms))
		return PC_E_NOMEM;
	c->auth.nalgorithms = NKEYS(default_algs);
	return 0;
}

static void
free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

void
cfg_auth_free(struct pc_config *c)
{
	struct pc_auth_conf *a = &c->auth;

	free(c->audit.dir);
	cfg_free_secret(c->audit.key);
	free(c->audit.syslog_socket);
	free(c->audit.syslog_tcp);
	free(c->tls.cert_file);
	free(c->tls.key_file);
	free(c->tls.client_ca_file);
	free(c->trusted_proxies);
	free(a->key_store);
	cfg_free_secret(a->pepper);
	free(a->issuer);
	free(a->jwks_uri);
	free(a->jwks_file);
	free(a->resource);
	free_strv(a->algorithms);
	free_strv(a->scopes_supported);
	free_strv(a->required_scopes);
	for (size_t i = 0; i < a->nscope_roles; i++) {
		free(a->scope_roles[i].scope);
		free_strv(a->scope_roles[i].roles);
	}
	free(a->scope_roles);
	for (size_t i = 0; i < a->nidentities; i++) {
		free(a->identities[i].match);
		free(a->identities[i].principal);
		free(a->identities[i].tenant);
		free_strv(a->identities[i].roles);
	}
	free(a->identities);
}

/* Replace *dst with a copy of v's string (NULL after reporting). */
static void
set_str(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    char **dst, const char *what)
{
	const char *s = cfg_want_str(ctx, k, v, what);

	if (s == NULL)
		return;
	free(*dst);
	*dst = cfg_dup(ctx, s);
}

static void
set_path(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    char **dst)
{
	const char *s = cfg_want_str(ctx, k, v, "a file path");

	if (s == NULL)
		return;
	if (*s == '\0') {
		cfg_expected(ctx, k, v, "a file path");
		return;
	}
	free(*dst);
	*dst = cfg_abs_path(ctx, s);
	if (*dst == NULL)
		ctx->nomem = true;
}

void
cfg_set_path(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, char **dst)
{
	set_path(ctx, k, v, dst);
}

/* --- mode ------------------------------------------------------------------ */

void
cfg_k_mode(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;
	const char *s = cfg_want_str(ctx, k, v, "development or production");

	if (s == NULL)
		return;
	if (strcmp(s, "development") == 0)
		c->mode = PC_MODE_DEVELOPMENT;
	else if (strcmp(s, "production") == 0)
		c->mode = PC_MODE_PRODUCTION;
	else
		cfg_expected(ctx, k, v, "development or production");
}

/* --- tls ------------------------------------------------------------------- */

static void
k_tls_cert(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_path(ctx, k, v, &((struct pc_tls_conf *)obj)->cert_file);
}

static void
k_tls_key(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_path(ctx, k, v, &((struct pc_tls_conf *)obj)->key_file);
}

static void
k_tls_ca(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_path(ctx, k, v, &((struct pc_tls_conf *)obj)->client_ca_file);
}

static void
k_tls_min(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_tls_conf *t = obj;
	const char *s = cfg_want_str(ctx, k, v, "\"1.2\" or \"1.3\"");

	if (s == NULL)
		return;
	if (strcmp(s, "1.2") == 0)
		t->min_version = 12;
	else if (strcmp(s, "1.3") == 0)
		t->min_version = 13;
	else
		cfg_expected(ctx, k, v, "\"1.2\" or \"1.3\" (older versions are "
		    "not offered)");
}

static void
k_tls_client_auth(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_tls_conf *t = obj;
	const char *s = cfg_want_str(ctx, k, v, "none, optional or required");

	if (s == NULL)
		return;
	if (strcmp(s, "none") == 0)
		t->client_auth = PC_CLIENT_AUTH_NONE;
	else if (strcmp(s, "optional") == 0)
		t->client_auth = PC_CLIENT_AUTH_OPTIONAL;
	else if (strcmp(s, "required") == 0)
		t->client_auth = PC_CLIENT_AUTH_REQUIRED;
	else
		cfg_expected(ctx, k, v, "none, optional or required");
}

static const struct cfg_key tls_keys[] = {
	{ "cert", VK_FN, 0, 0, 0, k_tls_cert },
	{ "key", VK_FN, 0, 0, 0, k_tls_key },
	{ "min_version", VK_FN, 0, 0, 0, k_tls_min },
	{ "client_ca", VK_FN, 0, 0, 0, k_tls_ca },
	{ "client_auth", VK_FN, 0, 0, 0, k_tls_client_auth },
	{ "session_tickets", VK_BOOL, TF(session_tickets), 0, 0, NULL },
	{ "hsts_max_age", VK_DUR_S, TF(hsts_max_age_s), 0,
	    2u * 365u * 24u * 3600u, NULL },
};

void
cfg_k_tls(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (!cfg_want_map(ctx, k, v))
		return;
	c->tls.enabled = true;
	cfg_walk_map(ctx, v, "tls", tls_keys, NKEYS(tls_keys), &c->tls, seen);
	if (c->tls.cert_file == NULL || c->tls.key_file == NULL)
		cfg_err_at(ctx, v, "tls: needs both cert and key");
	if (c->tls.client_auth != PC_CLIENT_AUTH_NONE &&
	    c->tls.client_ca_file == NULL)
		cfg_err_at(ctx, seen[4] ? seen[4] : v, "tls: client_auth "
		    "optional or required needs client_ca (the CA bundle that "
		    "signs client certificates)");
	if (c->tls.client_ca_file != NULL &&
	    c->tls.client_auth == PC_CLIENT_AUTH_NONE)
		c->tls.client_auth = PC_CLIENT_AUTH_OPTIONAL;
}

/* --- trusted_proxies ---------------------------------------------------------- */

static int
parse_cidr(const char *s, struct pc_cidr *out)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;

	if (hl == 0 || hl >= sizeof(host))
		return PC_E_INVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, host, out->addr) == 1)
		out->family = AF_INET6;
	else
		return PC_E_INVAL;
	bits = out->family == AF_INET ? 32 : 128;
	if (slash != NULL && pc_parse_u64(slash + 1, 0, bits, &bits) != 0)
		return PC_E_INVAL;
	out->bits = (unsigned)bits;
	return 0;
}

void
cfg_k_trusted_proxies(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;
	struct pc_cidr *list;

	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, "a list of addresses or CIDR ranges "
		    "such as [10.0.0.0/8]");
		return;
	}
	if (v->nkids > CFG_MAX_LIST) {
		cfg_err_at(ctx, v, "trusted_proxies: more than %u entries",
		    CFG_MAX_LIST);
		return;
	}
	list = calloc(v->nkids ? v->nkids : 1, sizeof(*list));
	if (list == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const char *s = cfg_want_str(ctx, k, v->kids[i],
		    "an address or CIDR range");
		if (s != NULL && parse_cidr(s, &list[i]) != 0)
			cfg_expected(ctx, k, v->kids[i], "an address or CIDR "
			    "range such as 10.0.0.0/8 or fd00::/8");
		/* Trusting a whole /0 (or nearly) would trust every client
		 * as a proxy: its X-Forwarded-For chosen freely, plaintext
		 * allowed from anywhere. */
		else if (s != NULL && list[i].bits <
		    (list[i].family == AF_INET ? 8u : 16u))
			cfg_err_at(ctx, v->kids[i], "trusted_proxies: %s is "
			    "too broad to trust (at least /8 for IPv4, /16 "
			    "for IPv6): name your proxies' addresses", s);
	}
	free(c->trusted_proxies);
	c->trusted_proxies = list;
	c->ntrusted_proxies = v->nkids;
}

/* --- auth ------------------------------------------------------------------- */

static void
k_store(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	set_path(ctx, k, v, &((struct pc_auth_conf *)obj)->key_store);
}

/*
 * A secret that must come from ${file:} or ${env:} and hold at least
 * CFG_MIN_PEPPER bytes (pepper, audit key). On success *dst (wiped first)
 * takes the value and *len its length; errors name `what` and how to make
 * a good one (`hint`, a file name).
 */
/* The whole scalar is one reference ("${file:...}" or "${env:...}"), not a
 * reference inside literal text. */
static bool
single_ref(const char *s, size_t len)
{
	return len > 3 && s[0] == '$' && s[1] == '{' &&
	    strchr(s + 2, '}') == s + len - 1 && strstr(s + 2, "${") == NULL;
}

static void
set_ref_secret(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, const char *what, const char *hint, char **dst,
    size_t *len)
{
	char *val = NULL;
	bool had_ref = false;

	if (v->kind != CN_SCALAR) {
		cfg_expected(ctx, k, v, "a ${file:PATH} or ${env:NAME} reference");
		return;
	}
	if (cfg_expand(ctx, v, &val, &had_ref) != 0)
		return;
	/* A secret is never a literal in the file. */
	if (!had_ref) {
		cfg_err_at(ctx, v, "%s: a literal secret is refused; use "
		    "${file:PATH} (mode 0600) or ${env:NAME}", what);
		cfg_free_secret(val);
		return;
	}
	/* Nor partly one: literal text around a reference would be a secret
	 * in the file after all ("<32 bytes>${env:USER}"), and the redactor
	 * would know only the referenced part. */
	if (!single_ref(v->s, v->len)) {
		cfg_err_at(ctx, v, "%s: must be exactly one ${file:PATH} "
		    "(mode 0600) or ${env:NAME} reference, with nothing around "
		    "it", what);
		cfg_free_secret(val);
		return;
	}
	if (strlen(val) < CFG_MIN_PEPPER) {
		cfg_err_at(ctx, v, "%s: must be at least %u bytes (e.g. "
		    "openssl rand -hex 32 > %s; chmod 600 %s)", what,
		    CFG_MIN_PEPPER, hint, hint);
		cfg_free_secret(val);
		return;
	}
	cfg_free_secret(*dst);
	*dst = val;
	*len = strlen(val);
}

static void
k_pepper(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_auth_conf *a = obj;

	set_ref_secret(ctx, k, v, "pepper", "pepper", &a->pepper,
	    &a->pepper_len);
}

static const struct cfg_key apikey_keys[] = {
	{ "store", VK_FN, 0, 0, 0, k_store },
	{ "pepper", VK_FN, 0, 0, 0, k_pepper },
	{ "rotation_days", VK_UINT, AF(rotation_days), 1, 3650, NULL },
};

static void
k_api_keys(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];

	ctx->auth_method_seen = true;
	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, "api_keys", apikey_keys, NKEYS(apikey_keys), a,
	    seen);
	if (seen[1] == NULL)
		cfg_err_at(ctx, v, "api_keys: needs a pepper "
		    "(\"${file:PATH}\" with at least 32 random bytes)");
}

static void
k_issuer(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_str(ctx, k, v, &((struct pc_auth_conf *)obj)->issuer,
	    "the issuer URL");
}

static bool
url_ok(const char *s, bool allow_loopback_http)
{
	if (strncmp(s, "https://", 8) == 0)
		return s[8] != '\0';
	if (allow_loopback_http &&
	    (strncmp(s, "http://127.0.0.1", 16) == 0 ||
	    strncmp(s, "http://localhost", 16) == 0 ||
	    strncmp(s, "http://[::1]", 12) == 0))
		return true;
	return false;
}

static void
k_jwks_uri(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;
	const char *s = cfg_want_str(ctx, k, v, "an https URL");

	if (s == NULL)
		return;
	/* Fetched by the gateway: https only (http for loopback, for tests
	 * and local identity providers). */
	if (!url_ok(s, true)) {
		cfg_expected(ctx, k, v, "an https:// URL (http only to a "
		    "loopback address)");
		return;
	}
	free(a->jwks_uri);
	a->jwks_uri = cfg_dup(ctx, s);
}

static void
k_jwks_file(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_path(ctx, k, v, &((struct pc_auth_conf *)obj)->jwks_file);
}

static void
k_resource(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;
	const char *s = cfg_want_str(ctx, k, v, "the gateway's canonical URL");

	if (s == NULL)
		return;
	if (!url_ok(s, true) || strchr(s, '#') != NULL) {
		cfg_expected(ctx, k, v, "the gateway's canonical https:// URL "
		    "without fragment, e.g. https://mcp.example.com/mcp");
		return;
	}
	free(a->resource);
	a->resource = cfg_dup(ctx, s);
}

static void
k_algorithms(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;

	cfg_set_strlist(ctx, k, v, &a->algorithms, &a->nalgorithms, NULL);
	for (size_t i = 0; a->algorithms != NULL && i < a->nalgorithms; i++) {
		bool known = false;
		for (size_t j = 0; j < NKEYS(default_algs); j++)
			known |= strcmp(a->algorithms[i], default_algs[j]) == 0;
		if (!known)
			cfg_err_at(ctx, v, "algorithms: '%s' is not allowed "
			    "(choose from RS256, PS256, ES256, EdDSA)",
			    a->algorithms[i]);
	}
}

static void
k_scopes_supported(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;

	cfg_set_strlist(ctx, k, v, &a->scopes_supported, &a->nscopes_supported,
	    NULL);
}

static void
k_required_scopes(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;

	cfg_set_strlist(ctx, k, v, &a->required_scopes, &a->nrequired_scopes,
	    NULL);
}

static void
k_scope_roles(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;
	size_t n;

	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "a mapping scope: [roles]");
		return;
	}
	n = v->nkids / 2;
	a->scope_roles = calloc(n ? n : 1, sizeof(*a->scope_roles));
	if (a->scope_roles == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct pc_scope_roles *sr = &a->scope_roles[a->nscope_roles++];
		const char *scope = cfg_want_str(ctx, k, v->kids[2 * i],
		    "a scope name");
		sr->scope = scope ? cfg_dup(ctx, scope) : NULL;
		cfg_set_strlist(ctx, k, v->kids[2 * i + 1], &sr->roles,
		    &sr->nroles, NULL);
	}
}

static const struct cfg_key oauth_keys[] = {
	{ "issuer", VK_FN, 0, 0, 0, k_issuer },
	{ "jwks_uri", VK_FN, 0, 0, 0, k_jwks_uri },
	{ "jwks_file", VK_FN, 0, 0, 0, k_jwks_file },
	{ "resource", VK_FN, 0, 0, 0, k_resource },
	{ "algorithms", VK_FN, 0, 0, 0, k_algorithms },
	{ "leeway", VK_DUR_S, AF(leeway_s), 0, 600, NULL },
	{ "scopes_supported", VK_FN, 0, 0, 0, k_scopes_supported },
	{ "required_scopes", VK_FN, 0, 0, 0, k_required_scopes },
	{ "scope_roles", VK_FN, 0, 0, 0, k_scope_roles },
};

static void
k_oauth(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_auth_conf *a = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];

	ctx->auth_method_seen = true;
	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, "oauth", oauth_keys, NKEYS(oauth_keys), a, seen);
	/* Only report what is missing; a present but bad value has its own
	 * error already. */
	if (seen[0] == NULL)
		cfg_err_at(ctx, v, "oauth: needs issuer (the exact iss of "
		    "accepted tokens)");
	if (seen[3] == NULL)
		cfg_err_at(ctx, v, "oauth: needs resource (this gateway's "
		    "canonical URL; tokens must carry it as aud)");
	/* Neither: the keys are discovered from the issuer's metadata. */
	if (seen[1] != NULL && seen[2] != NULL)
		cfg_err_at(ctx, v, "oauth: give jwks_uri or jwks_file, not both");
	if (seen[1] == NULL && seen[2] == NULL && a->issuer != NULL &&
	    strncmp(a->issuer, "https://", 8) != 0 &&
	    strncmp(a->issuer, "http://127.0.0.1", 16) != 0 &&
	    strncmp(a->issuer, "http://localhost", 16) != 0)
		cfg_err_at(ctx, v, "oauth: without jwks_uri or jwks_file the "
		    "keys are discovered from the issuer, which must then be an "
		    "https:// URL");
}

/* What a principal can hold (principal.h): cut, a long name could merge
 * with another and "administrators-ro" become "admin". */
static void
identity_fits(struct cfg_ctx *ctx, const struct cfg_node *it,
    const struct pc_mtls_identity *id)
{
	size_t total = 0;

	if ((id->principal != NULL &&
	    strlen(id->principal) >= PC_PRINCIPAL_MAX) ||
	    (id->tenant != NULL && strlen(id->tenant) >= PC_PRINCIPAL_MAX))
		cfg_err_at(ctx, it, "identities: principal and tenant must be "
		    "shorter than %d bytes", PC_PRINCIPAL_MAX);
	for (size_t r = 0; r < id->nroles; r++) {
		const char *role = id->roles[r];
		if (role[0] == '\0' || strpbrk(role, ", \t") != NULL) {
			cfg_err_at(ctx, it, "identities: role '%s': a role "
			    "name is not empty and holds no comma or space",
			    role);
			return;
		}
		total += strlen(role) + (r > 0);
	}
	if (total >= PC_ROLES_MAX)
		cfg_err_at(ctx, it, "identities: the roles of one identity "
		    "must fit %d bytes together", PC_ROLES_MAX - 1);
}

static void
k_identities(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_auth_conf *a = obj;

	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, "a list of {match, principal, roles}");
		return;
	}
	a->identities = calloc(v->nkids ? v->nkids : 1, sizeof(*a->identities));
	if (a->identities == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		struct pc_mtls_identity *id = &a->identities[a->nidentities++];
		if (it->kind != CN_MAP) {
			cfg_expected(ctx, k, it, "a mapping {match, principal, "
			    "roles}");
			continue;
		}
		for (size_t j = 0; j + 1 < it->nkids; j += 2) {
			const char *key = it->kids[j]->s;
			const struct cfg_node *val = it->kids[j + 1];
			if (strcmp(key, "match") == 0)
				set_str(ctx, k, val, &id->match, "an identity");
			else if (strcmp(key, "principal") == 0)
				set_str(ctx, k, val, &id->principal, "a name");
			else if (strcmp(key, "tenant") == 0)
				set_str(ctx, k, val, &id->tenant, "a name");
			else if (strcmp(key, "roles") == 0)
				cfg_set_strlist(ctx, k, val, &id->roles,
				    &id->nroles, NULL);
			else
				cfg_err_at(ctx, it->kids[j], "identities: unknown "
				    "key '%s'; expected match, principal, tenant "
				    "or roles", key);
		}
		if (id->match == NULL || id->principal == NULL)
			cfg_err_at(ctx, it, "identities: each entry needs "
			    "match and principal");
		identity_fits(ctx, it, id);
	}
}

static const struct cfg_key mtls_keys[] = {
	{ "identities", VK_FN, 0, 0, 0, k_identities },
};

static void
k_mtls(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	ctx->auth_method_seen = true;
	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "mtls", mtls_keys, NKEYS(mtls_keys), obj,
		    seen);
}

static const struct cfg_key failed_keys[] = {
	{ "max_failures", VK_UINT, AF(max_failures), 1, 1000000, NULL },
	{ "window", VK_DUR_S, AF(failure_window_s), 1, 24u * 3600u, NULL },
};

static void
k_failed(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "failed_auth", failed_keys,
		    NKEYS(failed_keys), obj, seen);
}

static const struct cfg_key auth_keys[] = {
	{ "api_keys", VK_FN, 0, 0, 0, k_api_keys },
	{ "oauth", VK_FN, 0, 0, 0, k_oauth },
	{ "mtls", VK_FN, 0, 0, 0, k_mtls },
	{ "failed_auth", VK_FN, 0, 0, 0, k_failed },
};

void
cfg_k_auth(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];

	/* `auth: none` is the explicit, visible opt-out. */
	if (v->kind == CN_SCALAR && v->s != NULL && strcmp(v->s, "none") == 0) {
		c->auth.none = true;
		return;
	}
	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, "auth", auth_keys, NKEYS(auth_keys), &c->auth,
	    seen);
}

/* --- audit --------------------------------------------------------------------- */

#define UF(f) offsetof(struct pc_audit_cfg, f)

static void
k_audit_dir(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_path(ctx, k, v, &((struct pc_audit_cfg *)obj)->dir);
}

static void
k_audit_key(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_audit_cfg *u = obj;

	set_ref_secret(ctx, k, v, "audit key", "audit.key", &u->key,
	    &u->key_len);
}

static void
k_audit_fsync(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_audit_cfg *u = obj;
	const char *s = cfg_want_str(ctx, k, v, "group or strict");

	if (s == NULL)
		return;
	if (strcmp(s, "group") == 0)
		u->strict = false;
	else if (strcmp(s, "strict") == 0)
		u->strict = true;	/* replies wait for their fsync */
	else
		cfg_expected(ctx, k, v, "group or strict");
}

static void
k_syslog_socket(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	set_path(ctx, k, v, &((struct pc_audit_cfg *)obj)->syslog_socket);
}

static void
k_syslog_tcp(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_audit_cfg *u = obj;
	const char *s = cfg_want_str(ctx, k, v, "IP:port such as "
	    "127.0.0.1:514");
	struct sockaddr_storage ss;
	socklen_t len;

	if (s == NULL)
		return;
	/* Numeric only: resolving a name would block the event loop. */
	if (pc_audit_syslog_addr(s, &ss, &len) != 0) {
		cfg_expected(ctx, k, v, "a numeric IP address and port such as "
		    "127.0.0.1:514 or [::1]:514 (names are not resolved)");
		return;
	}
	free(u->syslog_tcp);
	u->syslog_tcp = cfg_dup(ctx, s);
}

static void
k_syslog_facility(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	static const char what[] = "user, daemon, auth, authpriv or "
	    "local0..local7";
	const char *s = cfg_want_str(ctx, k, v, what);
	int f;

	if (s == NULL)
		return;
	f = pc_audit_syslog_facility(s);
	if (f < 0)
		cfg_expected(ctx, k, v, what);
	else
		((struct pc_audit_cfg *)obj)->syslog_facility = f;
}

static const struct cfg_key syslog_keys[] = {
	{ "socket", VK_FN, 0, 0, 0, k_syslog_socket },
	{ "tcp", VK_FN, 0, 0, 0, k_syslog_tcp },
	{ "facility", VK_FN, 0, 0, 0, k_syslog_facility },
};

static void
k_audit_syslog(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, "syslog", syslog_keys, NKEYS(syslog_keys), obj,
	    seen);
	if ((seen[0] == NULL) == (seen[1] == NULL))
		cfg_err_at(ctx, v, "audit syslog: give exactly one of socket "
		    "(e.g. /dev/log) or tcp (e.g. \"127.0.0.1:514\")");
}

static const struct cfg_key flood_keys[] = {
	{ "burst", VK_UINT, UF(flood_burst), 1, 100000, NULL },
	{ "per_second", VK_UINT, UF(flood_per_s), 1, 100000, NULL },
	{ "global_per_second", VK_UINT, UF(flood_global_per_s), 1, 1000000,
	    NULL },
};

static void
k_audit_flood(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "flood", flood_keys, NKEYS(flood_keys),
		    obj, seen);
}

static const struct cfg_key audit_keys[] = {
	{ "dir", VK_FN, 0, 0, 0, k_audit_dir },
	{ "key", VK_FN, 0, 0, 0, k_audit_key },
	{ "fsync", VK_FN, 0, 0, 0, k_audit_fsync },
	{ "syslog", VK_FN, 0, 0, 0, k_audit_syslog },
	{ "group_delay", VK_DUR_MS, UF(group_delay_ms), 0, 1000, NULL },
	{ "max_file_size", VK_SIZE, UF(max_file_bytes), 65536, 1u << 30, NULL },
	{ "max_file_age", VK_DUR_S, UF(max_file_age_s), 60, 31u * 86400u, NULL },
	{ "retention_days", VK_UINT, UF(retention_days), 1, 36500, NULL },
	{ "flood", VK_FN, 0, 0, 0, k_audit_flood },
};

void
cfg_k_audit(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (!cfg_want_map(ctx, k, v))
		return;
	c->audit.enabled = true;
	c->audit.group_delay_ms = 10;
	c->audit.syslog_facility = -1;
	cfg_walk_map(ctx, v, "audit", audit_keys, NKEYS(audit_keys), &c->audit,
	    seen);
	if (seen[1] == NULL)
		cfg_err_at(ctx, v, "audit: needs a key (\"${file:PATH}\" with at "
		    "least 32 random bytes, kept outside the log directory)");
	if (c->audit.dir == NULL) {
		c->audit.dir = cfg_abs_path(ctx, "audit");
		if (c->audit.dir == NULL)
			ctx->nomem = true;
	}
}

/* --- rules across keys ---------------------------------------------------------- */

void
cfg_auth_check(struct cfg_ctx *ctx, const struct cfg_node *root,
    const struct cfg_node *auth_node, const struct cfg_node *listen_node)
{
	struct pc_config *c = ctx->cfg;
	struct pc_auth_conf *a = &c->auth;
	const struct cfg_node *at = auth_node ? auth_node : root;
	bool plaintext_ok = c->tls.enabled || c->ntrusted_proxies > 0;

	if (ctx->listen_nonloopback && !plaintext_ok)
		cfg_err_at(ctx, listen_node ? listen_node : root, "listen: a "
		    "non-loopback address needs tls (cert and key), or "
		    "trusted_proxies naming the TLS-terminating proxy in front "
		    "of the gateway");
	if (c->mode == PC_MODE_PRODUCTION && !plaintext_ok)
		cfg_err_at(ctx, root, "mode: production needs tls or "
		    "trusted_proxies (HTTPS only)");
	if (a->none) {
		if (ctx->listen_nonloopback)
			cfg_err_at(ctx, at, "auth: none is only allowed on a "
			    "loopback listener");
		if (c->mode == PC_MODE_PRODUCTION)
			cfg_err_at(ctx, at, "auth: none is refused in "
			    "production mode");
		return;
	}
	/* A method that was given but failed has its own errors already. */
	if (a->pepper == NULL && a->issuer == NULL && a->nidentities == 0 &&
	    !ctx->auth_method_seen) {
		cfg_err_at(ctx, at, "auth: no authentication method is "
		    "configured; set auth.api_keys, auth.oauth or auth.mtls "
		    "(or write `auth: none` for a loopback development setup)");
		return;
	}
	if (a->nidentities > 0 && c->tls.client_ca_file == NULL)
		cfg_err_at(ctx, at, "auth.mtls needs tls.client_ca");
	if (a->pepper != NULL && a->key_store == NULL) {
		a->key_store = cfg_abs_path(ctx, "portcullis.db");
		if (a->key_store == NULL)
			ctx->nomem = true;
	}
}
