/*
 * OAuth 2.1 bearer tokens (JWT access tokens), checked as a resource
 * server: signature with keys from a JWKS (a local file, or fetched from
 * jwks_uri with libcurl on the event loop and cached; refetched on an
 * unknown kid at most once per PC_JWKS_REFETCH_S), algorithm allow-list
 * (never "none", never HS* with asymmetric keys), exact iss, aud equal to
 * the configured resource, exp/nbf/iat with leeway, scopes to roles.
 */
#ifndef PC_JWT_H
#define PC_JWT_H

#include <stdint.h>

#include "../config/config.h"
#include "principal.h"

struct event_base;
struct pc_jwt;

/* conf borrowed. Starts the first JWKS fetch when jwks_uri is set.
 * 0, PC_E_CONFIG (bad JWKS file: message in err), PC_E_NOMEM. */
int pc_jwt_new(struct event_base *base, const struct pc_auth_conf *conf,
    struct pc_jwt **out, char *err, size_t errlen);
void pc_jwt_free(struct pc_jwt *j);

/* True once a key set is loaded (readiness). */
int pc_jwt_ready(const struct pc_jwt *j);

/*
 * Verify token at time `now` (unix s). 0 and *p filled (PC_AUTH_JWT; id =
 * sub, roles from the scopes, scopes space-separated), or PC_E_DENIED with
 * a stable *reason: "jwt.malformed", "jwt.alg", "jwt.kid_unknown",
 * "jwt.signature", "jwt.iss", "jwt.aud", "jwt.expired", "jwt.not_yet_valid",
 * "jwt.iat"; PC_E_UNAVAIL with "jwt.no_keys" while no key set is loaded
 * (a refetch is scheduled). An unknown kid schedules a refetch.
 */
int pc_jwt_check(struct pc_jwt *j, const char *token, int64_t now,
    struct pc_principal *p, const char **reason);

/* p->roles again from p->scopes under conf's scope_roles (a reload may
 * have changed them). 0 or PC_E_LIMIT (the roles do not fit). */
struct pc_auth_conf;
int pc_jwt_roles(const struct pc_auth_conf *conf, struct pc_principal *p);

#endif
