/*
 * Who is calling: the result of the authenticate stage, attached to every
 * request past it. Plain data with fixed-size fields so that it can be
 * copied into a call or a session without allocation.
 */
#ifndef PC_PRINCIPAL_H
#define PC_PRINCIPAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum pc_auth_method {
	PC_AUTH_NONE = 0,	/* `auth: none` (loopback development only) */
	PC_AUTH_APIKEY,
	PC_AUTH_JWT,
	PC_AUTH_MTLS,
};

#define PC_PRINCIPAL_MAX 128
#define PC_ROLES_MAX 512

/* Bytes of an API key's hash a principal keeps (key_tag). */
#define PC_KEY_TAG_LEN	16

struct pc_principal {
	enum pc_auth_method method;
	char id[PC_PRINCIPAL_MAX];	/* principal name (key's principal,
					 * JWT sub, mTLS mapping) */
	char tenant[PC_PRINCIPAL_MAX];	/* "" when none */
	char key_id[48];		/* API key id, JWT jti, or "" */
	char roles[PC_ROLES_MAX];	/* comma-separated, "" when none */
	char scopes[PC_ROLES_MAX];	/* JWT scopes, space-separated */
	int64_t expires;		/* unix seconds; 0 = none */
	/* An API key: the head of the keyed hash of the secret presented, so
	 * that a held stream can tell whether that secret still works after
	 * a rotation (the key's id alone says only that the key does). */
	unsigned char key_tag[PC_KEY_TAG_LEN];
};

/* Room for pc_principal_credential()'s text. */
#define PC_CREDENTIAL_ID_MAX 96

/*
 * Which credential a principal came with, as text: its method and key id
 * (an API key's id, a token's jti), and for a token or a certificate its
 * expiry, which tells two tokens (or certificates) of one subject apart.
 * Two requests of one session with different credentials may carry
 * different roles; this says whose roles are whose.
 */
static inline void
pc_principal_credential(const struct pc_principal *p, char *out, size_t n)
{
	snprintf(out, n, "%d/%s/%lld", (int)p->method, p->key_id,
	    p->method == PC_AUTH_APIKEY ? 0LL : (long long)p->expires);
}

#endif
