/*
 * API keys: "pcs_<id>_<secret>". The id (16 hex chars) is public and names
 * the record; the secret is 32 bytes from the kernel CSPRNG, base64url
 * (43 chars). Only HMAC-SHA256(pepper, secret) is stored; the full key is
 * shown once, at creation or rotation.
 */
#ifndef PC_APIKEY_H
#define PC_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"
#include "principal.h"

struct pc_apikeys;

#define PC_APIKEY_PREFIX "pcs_"
/* "pcs_" + 16 + "_" + 43 + NUL */
#define PC_APIKEY_LEN (4 + PC_KEY_ID_LEN + 1 + 43)

/* A fresh key: key[] (PC_APIKEY_LEN + 1) is the full key to show once,
 * id[] its public id, hash the value to store. 0 or PC_E_IO. Wipe key. */
int pc_apikey_generate(const unsigned char *pepper, size_t pepper_len,
    char key[PC_APIKEY_LEN + 1], char id[PC_KEY_ID_LEN + 1],
    unsigned char hash[32]);

/*
 * Verifier bound to a store and a pepper (both borrowed). Caches records
 * and drops the cache whenever pc_store_version() moves, so a revocation by
 * another process takes effect on the next request.
 */
int pc_apikeys_new(struct pc_store *st, const unsigned char *pepper,
    size_t pepper_len, struct pc_apikeys **out);
void pc_apikeys_free(struct pc_apikeys *ak);

/*
 * Check a presented key at time `now` (unix s) from `source`. On success
 * returns 0 and fills *p (method PC_AUTH_APIKEY). Otherwise PC_E_DENIED and
 * *reason is a stable code: "apikey.malformed", "apikey.unknown",
 * "apikey.mismatch", "apikey.revoked", "apikey.expired",
 * "apikey.rotated_out". The comparison is constant-time; an unknown id
 * costs the same HMAC as a known one. Another negative code (and reason
 * "apikey.unavailable") when no decision could be made: the key store or
 * the HMAC failed — not the caller's fault.
 */
int pc_apikeys_check(struct pc_apikeys *ak, const char *presented,
    int64_t now, const char *source, struct pc_principal *p,
    const char **reason);

/*
 * The key `id` as it stands now, for a principal it authenticated earlier
 * (a stream held open): 0 and *p refilled (roles with the grants running
 * at `now`, expiry), or PC_E_DENIED with *reason "apikey.revoked",
 * "apikey.expired", "apikey.unknown" (deleted) or "apikey.rotated_out"
 * (the secret it showed, whose tag is `tag` — pc_principal.key_tag — is
 * no longer the key's, nor its previous one inside the grace window).
 * Another negative code ("apikey.unavailable") when the store cannot
 * answer.
 */
int pc_apikeys_recheck(struct pc_apikeys *ak, const char *id,
    const unsigned char tag[PC_KEY_TAG_LEN], int64_t now,
    struct pc_principal *p, const char **reason);

#endif
