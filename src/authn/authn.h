/*
 * The authenticate stage: turns what a request presents (Authorization
 * header, verified client certificate) into a principal, or into the
 * protocol's refusal (401 with a challenge, 403 insufficient_scope, 429
 * after repeated failures from one source). Nothing past this stage runs
 * for a request that did not pass it.
 *
 * Methods: API keys ("Bearer pcs_..."), OAuth 2.1 JWT access tokens
 * ("Bearer <jwt>"), mTLS identities (no Authorization header, a verified
 * client certificate mapped by config), or `auth: none` (loopback
 * development only). Tokens are taken from the Authorization header only,
 * never from the query string.
 */
#ifndef PC_AUTHN_H
#define PC_AUTHN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../config/config.h"
#include "principal.h"

struct event_base;
struct pc_authn;

struct pc_authn_input {
	const char *authorization;	/* header value, or NULL */
	const char *tls_identity;	/* verified client cert identity, or NULL */
	int64_t tls_not_after;		/* its notAfter (unix s), 0 unknown */
	bool tls_expired;		/* a verified client cert that has
					 * expired since the handshake */
	const char *source;		/* client address */
	int token_in_query;		/* the URL carried access_token= */
};

enum pc_authn_verdict {
	PC_AUTHN_OK = 0,
	PC_AUTHN_UNAUTHORIZED,		/* 401 */
	PC_AUTHN_FORBIDDEN,		/* 403 insufficient_scope */
	PC_AUTHN_THROTTLED,		/* 429 */
	PC_AUTHN_UNAVAILABLE,		/* 503: no decision could be made
					 * (the key store failed); refused,
					 * and not counted against the
					 * caller */
};

struct pc_authn_result {
	enum pc_authn_verdict verdict;
	const char *reason;		/* stable code: "auth.missing",
					 * "apikey.revoked", "jwt.aud", ... */
	unsigned retry_after_s;		/* for 429 */
	char challenge[768];		/* WWW-Authenticate value for 401/403 */
};

/*
 * Build from cfg (borrowed; must outlive the stage): opens the key store
 * when API keys are configured, loads or starts fetching the JWKS when
 * OAuth is. 0, or PC_E_CONFIG / PC_E_IO with a message in err.
 */
int pc_authn_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_authn **out, char *err, size_t errlen);
void pc_authn_free(struct pc_authn *a);

/* Decide. Always fills *res; fills *p when res->verdict is PC_AUTHN_OK. */
void pc_authn_check(struct pc_authn *a, const struct pc_authn_input *in,
    int64_t now, struct pc_principal *p, struct pc_authn_result *res);

/*
 * Check again, at `now`, a principal that pc_authn_check let in earlier
 * and that a stream still serves: 0 and p->roles (and expiry) brought up
 * to date, or PC_E_DENIED with a stable *reason when its credential no
 * longer holds (expired, an API key revoked, expired or deleted, the
 * method turned off by a reload). Another negative code when it cannot be
 * told (the key store failed). JWT roles follow the current scope_roles.
 * An mTLS principal is mapped again from `tls_identity`, the connection's
 * certificate identity now (NULL: none, or expired): mtls.expired,
 * mtls.unmapped (a reload dropped its mapping) or mtls.changed (it now
 * maps to another principal or tenant) end it; its roles follow the
 * mapping. `none` principals do not lapse.
 */
int pc_authn_recheck(struct pc_authn *a, struct pc_principal *p,
    const char *tls_identity, int64_t now, const char **reason);

/*
 * RFC 9728 Protected Resource Metadata for this gateway (new ref), or NULL
 * when OAuth is not configured.
 */
json_t *pc_authn_prm(const struct pc_authn *a);

/* Ready to authenticate (the JWKS is loaded when OAuth is configured). */
int pc_authn_ready(const struct pc_authn *a);

/* The API key store (borrowed, lives as long as a), or NULL when API keys
 * are off. */
struct pc_store;
struct pc_store *pc_authn_store(struct pc_authn *a);

/* Write pending last-use records (shutdown). */
void pc_authn_flush(struct pc_authn *a);

#endif
