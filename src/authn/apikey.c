/*
 * API keys: generation, hashing and the per-request check.
 *
 * The check is built so that what an attacker can learn from its answers
 * and its timing is limited to what the id already says: every well-formed
 * key costs one HMAC and two constant-time comparisons, whether its id
 * exists, is revoked, expired, or matches. Only a malformed key is cheaper,
 * and its shape is public anyway.
 */
#include "apikey.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"

#define SECRET_BYTES 32
#define SECRET_CHARS 43		/* unpadded base64url of 32 bytes */
#define ID_BYTES (PC_KEY_ID_LEN / 2)
#define ID_OFF 4		/* after "pcs_" */
#define SEP_OFF (ID_OFF + PC_KEY_ID_LEN)
#define SECRET_OFF (SEP_OFF + 1)
/* Records cached by a verifier; past this the cache starts over, so a
 * gateway with a huge key inventory still has bounded memory.
 * (local limit; candidate for src/lib/limits.h) */
#define APIKEY_CACHE_MAX 4096u

struct pc_apikeys {
	struct pc_store *st;		/* borrowed */
	const unsigned char *pepper;	/* borrowed */
	size_t pepper_len;
	struct pc_map *cache;		/* id -> struct pc_key_rec (owned) */
	uint64_t version;		/* pc_store_version() of the cache */
	unsigned char dummy[32];	/* compared against for unknown ids */
	EVP_MAC_CTX *mac;		/* HMAC-SHA256 keyed with the pepper:
					 * duplicated per check, so OpenSSL does
					 * not fetch the algorithm every time */
};

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 32 bytes -> 43 chars + NUL. */
static void
b64url_32(const unsigned char in[SECRET_BYTES], char out[SECRET_CHARS + 1])
{
	size_t o = 0, i = 0;

	for (; i + 3 <= SECRET_BYTES; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	/* 32 = 30 + 2: two bytes left, three chars. */
	{
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
	}
	out[o] = '\0';
}

/* The HMAC is over the secret as presented (its 43 characters). */
static int
secret_hmac(const unsigned char *pepper, size_t pepper_len,
    const char *secret, unsigned char out[32])
{
	unsigned int len = 0;

	if (pepper == NULL || pepper_len == 0 || pepper_len > INT32_MAX)
		return PC_E_INVAL;
	if (HMAC(EVP_sha256(), pepper, (int)pepper_len,
	    (const unsigned char *)secret, SECRET_CHARS, out, &len) == NULL ||
	    len != 32)
		return PC_E_IO;
	return 0;
}

/* The same HMAC with the verifier's keyed context. */
static int
keyed_hmac(struct pc_apikeys *ak, const char *secret, unsigned char out[32])
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(ak->mac);
	size_t len = 0;
	int ok;

	if (c == NULL)
		return PC_E_NOMEM;
	ok = EVP_MAC_update(c, (const unsigned char *)secret, SECRET_CHARS) == 1 &&
	    EVP_MAC_final(c, out, &len, 32) == 1 && len == 32;
	EVP_MAC_CTX_free(c);
	return ok ? 0 : PC_E_IO;
}

int
pc_apikey_generate(const unsigned char *pepper, size_t pepper_len,
    char key[PC_APIKEY_LEN + 1], char id[PC_KEY_ID_LEN + 1],
    unsigned char hash[32])
{
	unsigned char raw[SECRET_BYTES];
	char secret[SECRET_CHARS + 1];
	int rc;

	rc = pc_random_hex(id, PC_KEY_ID_LEN + 1, ID_BYTES);
	if (rc != 0)
		goto out;
	rc = pc_random_bytes(raw, sizeof(raw));
	if (rc != 0)
		goto out;
	b64url_32(raw, secret);
	rc = secret_hmac(pepper, pepper_len, secret, hash);
	if (rc != 0)
		goto out;
	memcpy(key, PC_APIKEY_PREFIX, ID_OFF);
	memcpy(key + ID_OFF, id, PC_KEY_ID_LEN);
	key[SEP_OFF] = '_';
	memcpy(key + SECRET_OFF, secret, SECRET_CHARS);
	key[PC_APIKEY_LEN] = '\0';
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc != 0) {
		OPENSSL_cleanse(key, PC_APIKEY_LEN + 1);
		OPENSSL_cleanse(hash, 32);
	}
	return rc;
}

/*
 * Exactly "pcs_" + 16 lowercase hex + "_" + 43 base64url whose last char
 * encodes only the final 4 bits (the canonical encoding: one secret, one
 * spelling). Bounded: never reads past PC_APIKEY_LEN + 1 bytes.
 */
static bool
parse_key(const char *k, char id[PC_KEY_ID_LEN + 1])
{
	int last;

	if (k == NULL || strnlen(k, PC_APIKEY_LEN + 1) != PC_APIKEY_LEN ||
	    memcmp(k, PC_APIKEY_PREFIX, ID_OFF) != 0 || k[SEP_OFF] != '_')
		return false;
	for (size_t i = ID_OFF; i < SEP_OFF; i++) {
		char c = k[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	for (size_t i = SECRET_OFF; i < PC_APIKEY_LEN; i++)
		if (pc_b64url_val((unsigned char)k[i]) < 0)
			return false;
	last = pc_b64url_val((unsigned char)k[PC_APIKEY_LEN - 1]);
	if ((last & 3) != 0)
		return false;
	memcpy(id, k + ID_OFF, PC_KEY_ID_LEN);
	id[PC_KEY_ID_LEN] = '\0';
	return true;
}

static void
cache_drop(struct pc_apikeys *ak)
{
	const char *k;
	void *v;
	size_t pos = 0;

	while (pc_map_next(ak->cache, &pos, &k, &v)) {
		pc_map_del(ak->cache, k);
		OPENSSL_cleanse(v, sizeof(struct pc_key_rec));
		free(v);
	}
}

int
pc_apikeys_new(struct pc_store *st, const unsigned char *pepper,
    size_t pepper_len, struct pc_apikeys **out)
{
	struct pc_apikeys *ak;
	int rc;

	*out = NULL;
	if (st == NULL || pepper == NULL || pepper_len == 0)
		return PC_E_INVAL;
	ak = calloc(1, sizeof(*ak));
	if (ak == NULL)
		return PC_E_NOMEM;
	ak->st = st;
	ak->pepper = pepper;
	ak->pepper_len = pepper_len;
	ak->cache = pc_map_new();
	if (ak->cache == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	{
		EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
			OSSL_PARAM_construct_end(),
		};
		ak->mac = m ? EVP_MAC_CTX_new(m) : NULL;
		EVP_MAC_free(m);
		if (ak->mac == NULL || EVP_MAC_init(ak->mac, pepper, pepper_len,
		    params) != 1) {
			rc = PC_E_IO;
			goto out;
		}
	}
	/* Random, so no presented secret can be built to match it. */
	rc = pc_random_bytes(ak->dummy, sizeof(ak->dummy));
	if (rc != 0)
		goto out;
	ak->version = pc_store_version(st);
	*out = ak;
	ak = NULL;
out:
	pc_apikeys_free(ak);
	return rc;
}

void
pc_apikeys_free(struct pc_apikeys *ak)
{
	if (ak == NULL)
		return;
	if (ak->cache != NULL) {
		cache_drop(ak);
		pc_map_free(ak->cache);
	}
	OPENSSL_cleanse(ak->dummy, sizeof(ak->dummy));
	EVP_MAC_CTX_free(ak->mac);	/* wipes the key */
	free(ak);
}

/* The record for id: from the cache while the store has not changed, else
 * from the store. *rec is borrowed from the cache until the next call. */
static int
lookup(struct pc_apikeys *ak, const char *id, const struct pc_key_rec **rec)
{
	struct pc_key_rec *r;
	uint64_t v = pc_store_version(ak->st);
	int rc;

	if (v != ak->version) {
		/* Any change (a revocation, a rotation, by any process)
		 * drops everything: simpler than knowing what changed, and
		 * key changes are rare. */
		cache_drop(ak);
		ak->version = v;
	}
	r = pc_map_get(ak->cache, id);
	if (r != NULL) {
		*rec = r;
		return 0;
	}
	r = malloc(sizeof(*r));
	if (r == NULL)
		return PC_E_NOMEM;
	rc = pc_store_key_get(ak->st, id, r);
	if (rc != 0)
		goto out;
	if (pc_map_count(ak->cache) >= APIKEY_CACHE_MAX)
		cache_drop(ak);
	rc = pc_map_put(ak->cache, r->id, r);
	if (rc != 0)
		goto out;
	*rec = r;
	r = NULL;
out:
	if (r != NULL) {
		OPENSSL_cleanse(r, sizeof(*r));
		free(r);
	}
	return rc;
}

/* The key's roles, plus every time-boxed grant still running at `now`:
 * an expired grant drops out on the next request, with no write and no
 * restart. A role that would not fit is left out (fewer rights, never
 * more). */
static void
fill_principal(struct pc_principal *p, const struct pc_key_rec *r,
    int64_t now)
{
	memset(p, 0, sizeof(*p));
	p->method = PC_AUTH_APIKEY;
	pc_strlcpy(p->id, r->principal, sizeof(p->id));
	pc_strlcpy(p->tenant, r->tenant, sizeof(p->tenant));
	pc_strlcpy(p->key_id, r->id, sizeof(p->key_id));
	pc_strlcpy(p->roles, r->roles, sizeof(p->roles));
	for (size_t i = 0; i < r->ngrants && i < PC_KEY_MAX_GRANTS; i++) {
		size_t n = strlen(p->roles), m = strlen(r->grants[i].role);
		if (r->grants[i].until <= now || m == 0 ||
		    n + 1 + m >= sizeof(p->roles))
			continue;
		snprintf(p->roles + n, sizeof(p->roles) - n, "%s%s",
		    n ? "," : "", r->grants[i].role);
	}
	p->expires = r->expires;
}

int
pc_apikeys_recheck(struct pc_apikeys *ak, const char *id,
    const unsigned char tag[PC_KEY_TAG_LEN], int64_t now,
    struct pc_principal *p, const char **reason)
{
	const struct pc_key_rec *r = NULL;
	int rc;

	*reason = NULL;
	if (ak == NULL || id == NULL || p == NULL)
		return PC_E_INVAL;
	rc = lookup(ak, id, &r);
	if (rc == PC_E_NOTFOUND) {
		*reason = "apikey.unknown";	/* deleted since */
		return PC_E_DENIED;
	}
	if (rc != 0) {
		*reason = "apikey.unavailable";
		return rc;
	}
	if (r->revoked_at != 0) {
		*reason = "apikey.revoked";
		return PC_E_DENIED;
	}
	if (r->expires != 0 && now >= r->expires) {
		*reason = "apikey.expired";
		return PC_E_DENIED;
	}
	/* The secret the stream came with: still the key's, or its previous
	 * one inside the grace window. Rotated since and the window over (or
	 * rotated twice), it no longer opens anything, held streams included. */
	if (CRYPTO_memcmp(tag, r->hash, PC_KEY_TAG_LEN) != 0 &&
	    !(r->has_prev && now < r->prev_until &&
	    CRYPTO_memcmp(tag, r->prev_hash, PC_KEY_TAG_LEN) == 0)) {
		*reason = "apikey.rotated_out";
		return PC_E_DENIED;
	}
	fill_principal(p, r, now);
	return 0;
}

int
pc_apikeys_check(struct pc_apikeys *ak, const char *presented,
    int64_t now, const char *source, struct pc_principal *p,
    const char **reason)
{
	const struct pc_key_rec *r = NULL;
	unsigned char mac[32];
	char id[PC_KEY_ID_LEN + 1];
	const unsigned char *cur, *prev;
	bool cur_ok, prev_ok, known;
	int rc;

	*reason = NULL;
	if (ak == NULL || p == NULL)
		return PC_E_INVAL;
	/* A caller that ignores the return value finds no identity. */
	memset(p, 0, sizeof(*p));
	if (!parse_key(presented, id)) {
		*reason = "apikey.malformed";
		return PC_E_DENIED;
	}
	rc = lookup(ak, id, &r);
	if (rc != 0 && rc != PC_E_NOTFOUND) {
		/* The store failed: not the caller's fault, and not a
		 * denial that would count against them. */
		*reason = "apikey.unavailable";
		return rc;
	}
	known = rc == 0;
	/* The same work whatever the record says: one HMAC, two compares. */
	rc = keyed_hmac(ak, presented + SECRET_OFF,
	    mac);
	if (rc != 0) {
		*reason = "apikey.unavailable";
		goto out;
	}
	cur = known ? r->hash : ak->dummy;
	prev = known && r->has_prev ? r->prev_hash : ak->dummy;
	cur_ok = CRYPTO_memcmp(mac, cur, sizeof(mac)) == 0;
	prev_ok = CRYPTO_memcmp(mac, prev, sizeof(mac)) == 0;
	rc = PC_E_DENIED;
	if (!known)
		*reason = "apikey.unknown";
	else if (r->revoked_at != 0)
		*reason = "apikey.revoked";
	else if (r->expires != 0 && now >= r->expires)
		*reason = "apikey.expired";
	else if (cur_ok)
		rc = 0;
	else if (prev_ok && r->has_prev && now < r->prev_until)
		rc = 0;
	else if (prev_ok && r->has_prev)
		*reason = "apikey.rotated_out";
	else
		*reason = "apikey.mismatch";
	if (rc != 0)
		goto out;
	fill_principal(p, r, now);
	memcpy(p->key_tag, mac, sizeof(p->key_tag));
	/* A failed last-use write must not fail the request. */
	if (pc_store_key_touch(ak->st, id, now, source) != 0)
		pc_warn("apikey: key %s: last use not recorded", id);
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}
