/*
 * The authenticate stage. Cheap checks first: the per-source failure
 * limiter runs before any key lookup or signature check, so a client
 * guessing keys costs us a map lookup per attempt once it is throttled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"
#include "../store/store.h"
#include "apikey.h"
#include "authn.h"
#include "jwt.h"

struct fail_slot {
	uint32_t count;
	int64_t window_start;
};

struct pc_authn {
	const struct pc_config *cfg;
	struct pc_store *store;		/* API keys, or NULL */
	struct pc_apikeys *keys;
	struct pc_jwt *jwt;		/* OAuth, or NULL */
	struct pc_map *fails;		/* source -> struct fail_slot */
	char prm_url[512];		/* resource_metadata, or "" */
	char scope[256];		/* required scopes, space-separated */
};

/* https://host/path -> https://host/.well-known/oauth-protected-resource/path
 * (RFC 9728 §3.1: the well-known segment goes between host and path). */
static void
prm_url_of(const char *resource, char *out, size_t outlen)
{
	const char *host, *path;

	out[0] = '\0';
	if (resource == NULL || (host = strstr(resource, "://")) == NULL)
		return;
	host += 3;
	path = strchr(host, '/');
	if (path == NULL || strcmp(path, "/") == 0)
		snprintf(out, outlen, "%.*s/.well-known/oauth-protected-resource",
		    (int)(host - resource + strlen(host)), resource);
	else
		snprintf(out, outlen, "%.*s/.well-known/oauth-protected-resource%s",
		    (int)(path - resource), resource, path);
}

int
pc_authn_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_authn **out, char *err, size_t errlen)
{
	const struct pc_auth_conf *ac = &cfg->auth;
	struct pc_authn *a;
	int rc = PC_E_NOMEM;

	*out = NULL;
	err[0] = '\0';
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return PC_E_NOMEM;
	a->cfg = cfg;
	a->fails = pc_map_new();
	if (a->fails == NULL)
		goto fail;
	if (!ac->none && ac->pepper != NULL) {
		rc = pc_store_open(ac->key_store, &a->store, err, errlen);
		if (rc != 0)
			goto fail;
		rc = pc_apikeys_new(a->store, (const unsigned char *)ac->pepper,
		    ac->pepper_len, &a->keys);
		if (rc != 0)
			goto fail;
	}
	if (!ac->none && ac->issuer != NULL) {
		rc = pc_jwt_new(base, ac, &a->jwt, err, errlen);
		if (rc != 0)
			goto fail;
		prm_url_of(ac->resource, a->prm_url, sizeof(a->prm_url));
	}
	for (size_t i = 0; i < ac->nrequired_scopes; i++) {
		size_t n = strlen(a->scope);
		snprintf(a->scope + n, sizeof(a->scope) - n, "%s%s", n ? " " : "",
		    ac->required_scopes[i]);
	}
	*out = a;
	return 0;
fail:
	pc_authn_free(a);
	return rc;
}

void
pc_authn_free(struct pc_authn *a)
{
	size_t pos = 0;
	const char *k;
	void *v;

	if (a == NULL)
		return;
	pc_jwt_free(a->jwt);
	pc_apikeys_free(a->keys);
	if (a->store != NULL)
		pc_store_flush(a->store);
	pc_store_close(a->store);
	if (a->fails != NULL)
		while (pc_map_next(a->fails, &pos, &k, &v))
			free(v);
	pc_map_free(a->fails);
	free(a);
}

void
pc_authn_flush(struct pc_authn *a)
{
	if (a != NULL && a->store != NULL)
		pc_store_flush(a->store);
}

struct pc_store *
pc_authn_store(struct pc_authn *a)
{
	return a != NULL ? a->store : NULL;
}

int
pc_authn_ready(const struct pc_authn *a)
{
	return a->jwt == NULL || pc_jwt_ready(a->jwt);
}

/* --- failure limiter ---------------------------------------------------------- */

static struct fail_slot *
fail_slot(struct pc_authn *a, const char *src, int64_t now, int create)
{
	const struct pc_auth_conf *ac = &a->cfg->auth;
	struct fail_slot *f = pc_map_get(a->fails, src);

	if (f != NULL && now - f->window_start >= ac->failure_window_s) {
		f->count = 0;
		f->window_start = now;
	}
	if (f != NULL || !create)
		return f;
	if (pc_map_count(a->fails) >= PC_MAX_AUTH_FAIL_SOURCES) {
		/* Make room from expired windows only: a source that is
		 * being throttled keeps its count. */
		size_t pos = 0;
		const char *k;
		void *v;
		while (pc_map_next(a->fails, &pos, &k, &v)) {
			struct fail_slot *o = v;
			if (now - o->window_start >= ac->failure_window_s) {
				pc_map_del(a->fails, k);
				free(o);
			}
		}
		if (pc_map_count(a->fails) >= PC_MAX_AUTH_FAIL_SOURCES)
			return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->window_start = now;
	if (pc_map_put(a->fails, src, f) != 0) {
		free(f);
		return NULL;
	}
	return f;
}

/* --- challenges ------------------------------------------------------------------- */

static void
challenge(struct pc_authn *a, struct pc_authn_result *res, const char *error)
{
	size_t n = 0;
	char *c = res->challenge;
	size_t cl = sizeof(res->challenge);

	n += (size_t)snprintf(c + n, cl - n, "Bearer");
	if (error != NULL)
		n += (size_t)snprintf(c + n, cl - n, " error=\"%s\",", error);
	if (a->prm_url[0] != '\0' && n < cl)
		n += (size_t)snprintf(c + n, cl - n, " resource_metadata=\"%s\",",
		    a->prm_url);
	if (a->scope[0] != '\0' && n < cl)
		n += (size_t)snprintf(c + n, cl - n, " scope=\"%s\",", a->scope);
	if (a->prm_url[0] == '\0' && n < cl)
		n += (size_t)snprintf(c + n, cl - n, " realm=\"portcullis\",");
	if (n > 0 && n < cl && c[n - 1] == ',')
		c[n - 1] = '\0';
}

static void
deny(struct pc_authn *a, struct pc_authn_result *res, const char *reason,
    const char *error)
{
	res->verdict = PC_AUTHN_UNAUTHORIZED;
	res->reason = reason;
	challenge(a, res, error);
}

/* --- methods --------------------------------------------------------------------- */

static int
identity_matches(const char *pattern, const char *id)
{
	size_t n = strlen(pattern);

	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, id, n - 1) == 0;
	return strcmp(pattern, id) == 0;
}

static int
check_mtls(struct pc_authn *a, const char *identity, int64_t not_after,
    struct pc_principal *p)
{
	const struct pc_auth_conf *ac = &a->cfg->auth;

	for (size_t i = 0; i < ac->nidentities; i++) {
		const struct pc_mtls_identity *m = &ac->identities[i];
		if (m->match == NULL || m->principal == NULL ||
		    !identity_matches(m->match, identity))
			continue;
		memset(p, 0, sizeof(*p));
		p->method = PC_AUTH_MTLS;
		/* A stream held open ends with the certificate. */
		p->expires = not_after;
		pc_strlcpy(p->id, m->principal, sizeof(p->id));
		if (m->tenant != NULL)
			pc_strlcpy(p->tenant, m->tenant, sizeof(p->tenant));
		for (size_t r = 0; r < m->nroles; r++) {
			size_t n = strlen(p->roles), k = strlen(m->roles[r]);
			/* A role that does not fit is left out whole (cut,
			 * "administrators-ro" could become "admin"); the
			 * config refuses such lists, so this is a guard. */
			if (k == 0 || n + (n ? 1 : 0) + k >= sizeof(p->roles))
				continue;
			snprintf(p->roles + n, sizeof(p->roles) - n, "%s%s",
			    n ? "," : "", m->roles[r]);
		}
		return 0;
	}
	return PC_E_DENIED;
}

int
pc_authn_recheck(struct pc_authn *a, struct pc_principal *p,
    const char *tls_identity, int64_t now, const char **reason)
{
	struct pc_principal fresh;
	int rc;

	*reason = NULL;
	if (a == NULL || p == NULL)
		return PC_E_INVAL;
	/* A token's exp has the leeway it was let in with; a key's expiry
	 * has none (as in the checks at the door). */
	if (p->expires != 0 && now >= p->expires + (p->method ==
	    PC_AUTH_JWT ? (int64_t)a->cfg->auth.leeway_s : 0)) {
		*reason = p->method == PC_AUTH_JWT ? "jwt.expired" :
		    p->method == PC_AUTH_MTLS ? "mtls.expired" :
		    "apikey.expired";
		return PC_E_DENIED;
	}
	switch (p->method) {
	case PC_AUTH_APIKEY:
		if (a->keys == NULL) {		/* API keys turned off */
			*reason = "apikey.disabled";
			return PC_E_DENIED;
		}
		rc = pc_apikeys_recheck(a->keys, p->key_id, p->key_tag, now, &fresh,
		    reason);
		if (rc != 0)
			return rc;
		/* The key's record, the same key: its roles and expiry as
		 * they stand now. */
		pc_strlcpy(p->roles, fresh.roles, sizeof(p->roles));
		p->expires = fresh.expires;
		return 0;
	case PC_AUTH_JWT:
		if (a->jwt == NULL) {		/* OAuth turned off */
			*reason = "jwt.disabled";
			return PC_E_DENIED;
		}
		if (pc_jwt_roles(&a->cfg->auth, p) != 0) {
			*reason = "jwt.scope";
			return PC_E_DENIED;
		}
		return 0;
	case PC_AUTH_MTLS:
		if (tls_identity == NULL) {
			*reason = "mtls.expired";
			return PC_E_DENIED;
		}
		if (check_mtls(a, tls_identity, p->expires, &fresh) != 0) {
			*reason = "mtls.unmapped";
			return PC_E_DENIED;
		}
		/* The same certificate mapped to someone else now: not the
		 * principal the stream was opened for. */
		if (strcmp(fresh.id, p->id) != 0 ||
		    strcmp(fresh.tenant, p->tenant) != 0) {
			*reason = "mtls.changed";
			return PC_E_DENIED;
		}
		pc_strlcpy(p->roles, fresh.roles, sizeof(p->roles));
		return 0;
	default:
		return 0;	/* none: nothing that lapses */
	}
}

/* Every required scope is among the token's (space-separated) scopes. */
static int
has_required_scopes(const struct pc_auth_conf *ac, const char *scopes)
{
	for (size_t i = 0; i < ac->nrequired_scopes; i++) {
		const char *want = ac->required_scopes[i];
		size_t wl = strlen(want);
		const char *s = scopes;
		int found = 0;
		while (*s != '\0' && !found) {
			const char *e = strchr(s, ' ');
			size_t l = e ? (size_t)(e - s) : strlen(s);
			found = l == wl && strncmp(s, want, wl) == 0;
			s += l;
			while (*s == ' ')
				s++;
		}
		if (!found)
			return 0;
	}
	return 1;
}

void
pc_authn_check(struct pc_authn *a, const struct pc_authn_input *in,
    int64_t now, struct pc_principal *p, struct pc_authn_result *res)
{
	const struct pc_auth_conf *ac = &a->cfg->auth;
	const char *src = in->source ? in->source : "-";
	const char *reason = NULL;
	struct fail_slot *f;
	const char *cred = NULL;

	memset(res, 0, sizeof(*res));
	res->verdict = PC_AUTHN_OK;
	if (ac->none) {
		memset(p, 0, sizeof(*p));
		p->method = PC_AUTH_NONE;
		pc_strlcpy(p->id, "anonymous", sizeof(p->id));
		return;
	}
	/* Throttled sources get nothing more expensive than this lookup. */
	f = fail_slot(a, src, now, 0);
	if (f != NULL && f->count >= ac->max_failures) {
		res->verdict = PC_AUTHN_THROTTLED;
		res->reason = "auth.throttled";
		res->retry_after_s = (unsigned)(f->window_start +
		    ac->failure_window_s - now);
		if (res->retry_after_s == 0)
			res->retry_after_s = 1;
		return;
	}
	if (in->token_in_query) {
		deny(a, res, "auth.token_in_query", "invalid_request");
		goto failed;
	}
	if (in->authorization != NULL) {
		if (strncasecmp(in->authorization, "Bearer ", 7) != 0) {
			deny(a, res, "auth.scheme", "invalid_request");
			goto failed;
		}
		cred = in->authorization + 7;
		while (*cred == ' ')
			cred++;
		if (strlen(cred) > PC_MAX_AUTH_HEADER || *cred == '\0') {
			deny(a, res, "auth.malformed", "invalid_request");
			goto failed;
		}
		if (strncmp(cred, PC_APIKEY_PREFIX, 4) == 0) {
			int rc = a->keys == NULL ? PC_E_DENIED :
			    pc_apikeys_check(a->keys, cred, now, src, p,
			    &reason);
			if (rc != 0 && rc != PC_E_DENIED) {
				/* The store failed: fail closed, but a valid
				 * key is not "invalid", and a store outage
				 * must not throttle every client. */
				res->verdict = PC_AUTHN_UNAVAILABLE;
				res->reason = reason ? reason :
				    "apikey.unavailable";
				res->retry_after_s = 1;
				return;
			}
			if (rc != 0) {
				deny(a, res, reason ? reason : "apikey.disabled",
				    "invalid_token");
				goto failed;
			}
			return;
		}
		int jrc = a->jwt == NULL ? PC_E_DENIED :
		    pc_jwt_check(a->jwt, cred, now, p, &reason);
		if (jrc == PC_E_UNAVAIL) {
			/* No key set (the issuer unreachable so far): as
			 * with a key store outage, a valid token is not
			 * "invalid" and its caller is not throttled. */
			res->verdict = PC_AUTHN_UNAVAILABLE;
			res->reason = reason;
			res->retry_after_s = 5;
			return;
		}
		if (jrc != 0) {
			deny(a, res, reason ? reason : "jwt.disabled",
			    "invalid_token");
			goto failed;
		}
		if (!has_required_scopes(ac, p->scopes)) {
			res->verdict = PC_AUTHN_FORBIDDEN;
			res->reason = "jwt.insufficient_scope";
			challenge(a, res, "insufficient_scope");
			return;
		}
		return;
	}
	if (in->tls_identity != NULL && ac->nidentities > 0) {
		if (check_mtls(a, in->tls_identity, in->tls_not_after, p) == 0)
			return;
		deny(a, res, "mtls.unmapped", "invalid_token");
		goto failed;
	}
	/* A kept-alive connection outlived its certificate: a credential
	 * that failed, counted and recorded as one. */
	if (in->tls_expired && ac->nidentities > 0) {
		deny(a, res, "mtls.expired", "invalid_token");
		goto failed;
	}
	/* No credential at all is the normal first step of an OAuth client
	 * (it reads the challenge): not counted as a failure. */
	deny(a, res, "auth.missing", NULL);
	return;
failed:
	f = fail_slot(a, src, now, 1);
	if (f != NULL)
		f->count++;
	else {
		/* Cannot track the source: fail closed. */
		res->verdict = PC_AUTHN_THROTTLED;
		res->reason = "auth.throttled";
		res->retry_after_s = ac->failure_window_s;
	}
}

json_t *
pc_authn_prm(const struct pc_authn *a)
{
	const struct pc_auth_conf *ac = &a->cfg->auth;
	json_t *doc, *scopes;

	if (a->jwt == NULL || ac->resource == NULL)
		return NULL;
	scopes = json_array();
	for (size_t i = 0; i < ac->nscopes_supported; i++)
		json_array_append_new(scopes, json_string(ac->scopes_supported[i]));
	doc = json_pack("{s:s, s:[s], s:o, s:[s], s:s}",
	    "resource", ac->resource,
	    "authorization_servers", ac->issuer,
	    "scopes_supported", scopes,
	    "bearer_methods_supported", "header",
	    "resource_name", "Portcullis MCP gateway");
	return doc;
}
