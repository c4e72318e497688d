/*
 * JWT access tokens (RFC 9068 / OAuth 2.1 resource server).
 *
 * Order of the checks (each failure has its own stable reason):
 *   shape (size, 3 base64url segments) -> header JSON -> alg allow-list ->
 *   key by kid (family must fit alg) -> signature -> claims JSON ->
 *   iss -> aud -> exp -> nbf -> iat -> sub/jti/tenant -> scopes to roles.
 * Nothing in the payload is looked at before the signature holds.
 *
 * RS256, PS256 and ES256 are verified by cjose. cjose 0.6 has no OKP keys,
 * so EdDSA (Ed25519) is verified by OpenSSL's EVP_DigestVerify on the raw
 * public key and the JWS signing input.
 *
 * Keys come from a local JWKS file (read once) or from jwks_uri / the
 * issuer's metadata, fetched on the event loop; a fetched set replaces the
 * old one whole, and a failed fetch keeps the old one.
 */
#include "jwt.h"

#include <cjose/cjose.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/errors.h"
#include "../lib/fetch.h"
#include "../lib/json.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* Local limits (candidates for limits.h):
 * - a kid longer than this is not an identifier anyone issues;
 * - keys in one JWKS: issuers publish a handful (current + next + old);
 * - RSA moduli: below 2048 bits is breakable, above 8192 bits is only a
 *   way to make every verification slow;
 * - a loaded key set is refreshed this often even without an unknown kid,
 *   so that a key the issuer withdrew stops being trusted. */
#define JWT_MAX_KID		PC_JWT_MAX_KID
#define JWT_MAX_KEYS		PC_JWKS_MAX_KEYS
#define JWT_RSA_MIN_BYTES	PC_JWT_RSA_MIN_BYTES
#define JWT_RSA_MAX_BYTES	PC_JWT_RSA_MAX_BYTES

enum jwt_family { FAM_RSA = 1, FAM_EC256, FAM_ED25519 };

enum {
	ALG_RS256 = 1u << 0,
	ALG_PS256 = 1u << 1,
	ALG_ES256 = 1u << 2,
	ALG_EDDSA = 1u << 3,
};

static const struct {
	const char *name;
	unsigned bit;
	enum jwt_family fam;
} algs[] = {
	{ "RS256", ALG_RS256, FAM_RSA },
	{ "PS256", ALG_PS256, FAM_RSA },
	{ "ES256", ALG_ES256, FAM_EC256 },
	{ "EdDSA", ALG_EDDSA, FAM_ED25519 },
};
#define NALGS (sizeof(algs) / sizeof(algs[0]))

struct jwt_key {
	char *kid;
	enum jwt_family fam;
	unsigned algs;		/* ALG_* this key may be used with */
	size_t sig_len;		/* exact signature length for this key */
	cjose_jwk_t *jwk;	/* RSA, EC */
	EVP_PKEY *ed;		/* Ed25519 */
};

struct jwt_keyset {
	struct jwt_key *v;
	size_t n;
};

enum jwt_inflight { FETCH_NONE = 0, FETCH_META, FETCH_JWKS };

struct pc_jwt {
	struct event_base *base;
	const struct pc_auth_conf *conf;
	unsigned allowed;		/* ALG_* from the config */
	struct jwt_keyset *keys;	/* NULL until a set is loaded */
	struct pc_fetcher *fetcher;	/* NULL with a jwks_file */
	struct event *timer;		/* retry / periodic refresh */
	char *jwks_url;			/* configured or discovered */
	char *meta_url[3];		/* discovery candidates, in order */
	size_t nmeta, meta_idx;
	enum jwt_inflight inflight;
	int refetched;			/* an unknown-kid refetch happened */
	uint64_t last_refetch_ms;
};

static void start_fetch(struct pc_jwt *j);

/* ---- base64url ----------------------------------------------------------- */

/* Unpadded, canonical base64url only: a second spelling of the same bytes
 * (non-zero trailing bits) would make two tokens out of one. */
static int
b64u_valid(const char *s, size_t n)
{
	int last = 0;

	if (n % 4 == 1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		last = pc_b64url_val((unsigned char)s[i]);
		if (last < 0)
			return 0;
	}
	if (n % 4 == 2 && (last & 0x0f) != 0)
		return 0;
	if (n % 4 == 3 && (last & 0x03) != 0)
		return 0;
	return 1;
}

/* Decode into a new malloc'ed buffer (+1 NUL byte), caller frees. */
static int
b64u_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	cjose_err cerr;
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	unsigned char *buf;

	*out = NULL;
	*outlen = 0;
	if (!b64u_valid(s, n))
		return PC_E_PARSE;
	if (n == 0) {
		buf = calloc(1, 1);
		if (buf == NULL)
			return PC_E_NOMEM;
		*out = buf;
		return 0;
	}
	cerr.code = CJOSE_ERR_NONE;
	if (!cjose_base64url_decode(s, n, &raw, &rawlen, &cerr) || raw == NULL)
		return cerr.code == CJOSE_ERR_NO_MEMORY ? PC_E_NOMEM : PC_E_PARSE;
	buf = malloc(rawlen + 1);
	if (buf != NULL) {
		memcpy(buf, raw, rawlen);
		buf[rawlen] = '\0';
	}
	cjose_get_dealloc()(raw);
	if (buf == NULL)
		return PC_E_NOMEM;
	*out = buf;
	*outlen = rawlen;
	return 0;
}

/* ---- key sets ------------------------------------------------------------ */

static void
keyset_free(struct jwt_keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->v[i].kid);
		if (ks->v[i].jwk != NULL)
			cjose_jwk_release(ks->v[i].jwk);
		EVP_PKEY_free(ks->v[i].ed);
	}
	free(ks->v);
	free(ks);
}

static int
json_str_eq(const json_t *v, const char *s)
{
	return json_is_string(v) && json_string_length(v) == strlen(s) &&
	    memcmp(json_string_value(v), s, strlen(s)) == 0;
}

/* Decoded length of a base64url member, leading zero bytes not counted
 * (an RSA modulus may carry one). -1 when absent or not base64url. */
static long
member_len(const json_t *k, const char *name, int strip_zeros)
{
	const json_t *v = json_object_get(k, name);
	unsigned char *raw;
	size_t n, i = 0;

	if (!json_is_string(v) ||
	    b64u_decode(json_string_value(v), json_string_length(v), &raw,
	    &n) != 0)
		return -1;
	while (strip_zeros && i < n && raw[i] == 0)
		i++;
	free(raw);
	return (long)(n - i);
}

/* Import only the public members through cjose: private material in the
 * document (a careless issuer) is never loaded. */
static int
import_public(const json_t *k, const char *const *members, cjose_jwk_t **out)
{
	json_t *pub = json_object();
	cjose_err cerr;
	int rc = PC_E_NOMEM;

	*out = NULL;
	if (pub == NULL)
		goto out;
	for (size_t i = 0; members[i] != NULL; i++) {
		json_t *v = json_object_get(k, members[i]);
		if (!json_is_string(v)) {
			rc = PC_E_PARSE;
			goto out;
		}
		if (json_object_set(pub, members[i], v) != 0)
			goto out;
	}
	*out = cjose_jwk_import_json((cjose_header_t *)pub, &cerr);
	rc = *out != NULL ? 0 :
	    cerr.code == CJOSE_ERR_NO_MEMORY ? PC_E_NOMEM : PC_E_PARSE;
out:
	json_decref(pub);
	return rc;
}

/* 0 = loaded, 1 = skipped (why says so), < 0 = out of memory. */
static int
key_parse(const json_t *k, struct jwt_key *out, const char **why)
{
	static const char *const rsa_members[] = { "kty", "n", "e", NULL };
	static const char *const ec_members[] = { "kty", "crv", "x", "y", NULL };
	const json_t *kid = json_object_get(k, "kid");
	const json_t *use = json_object_get(k, "use");
	const json_t *alg = json_object_get(k, "alg");
	const char *kty = pc_json_str(k, "kty");
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(k)) {
		*why = "not an object";
		return 1;
	}
	if (!json_is_string(kid) || json_string_length(kid) == 0 ||
	    json_string_length(kid) > JWT_MAX_KID) {
		*why = "no usable kid";
		return 1;
	}
	if (use != NULL && !json_str_eq(use, "sig")) {
		*why = "use is not sig";
		return 1;
	}
	if (kty == NULL) {
		*why = "no kty";
		return 1;
	}
	if (strcmp(kty, "RSA") == 0) {
		long nlen = member_len(k, "n", 1);
		if (nlen < (long)JWT_RSA_MIN_BYTES ||
		    nlen > (long)JWT_RSA_MAX_BYTES) {
			*why = "RSA modulus missing or out of 2048..8192 bits";
			return 1;
		}
		out->fam = FAM_RSA;
		out->algs = ALG_RS256 | ALG_PS256;
		out->sig_len = (size_t)nlen;
		rc = import_public(k, rsa_members, &out->jwk);
	} else if (strcmp(kty, "EC") == 0) {
		if (!json_str_eq(json_object_get(k, "crv"), "P-256") ||
		    member_len(k, "x", 0) != 32 || member_len(k, "y", 0) != 32) {
			*why = "EC key not on P-256";
			return 1;
		}
		out->fam = FAM_EC256;
		out->algs = ALG_ES256;
		out->sig_len = 64;
		rc = import_public(k, ec_members, &out->jwk);
	} else if (strcmp(kty, "OKP") == 0) {
		const json_t *x = json_object_get(k, "x");
		unsigned char *raw = NULL;
		size_t n = 0;
		if (!json_str_eq(json_object_get(k, "crv"), "Ed25519") ||
		    !json_is_string(x) ||
		    b64u_decode(json_string_value(x), json_string_length(x),
		    &raw, &n) != 0 || n != 32) {
			free(raw);
			*why = "OKP key is not an Ed25519 public key";
			return 1;
		}
		out->fam = FAM_ED25519;
		out->algs = ALG_EDDSA;
		out->sig_len = 64;
		out->ed = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		    raw, n);
		free(raw);
		rc = out->ed != NULL ? 0 : PC_E_PARSE;
	} else {
		/* oct keys included: never an HMAC secret from a JWKS. */
		*why = "unsupported kty";
		return 1;
	}
	if (rc != 0) {
		if (rc != PC_E_NOMEM) {
			*why = "key material rejected";
			rc = 1;
		}
		goto out;
	}
	/* A key that names its algorithm is used with that one only. */
	if (alg != NULL) {
		unsigned bit = 0;
		for (size_t i = 0; i < NALGS; i++)
			if (json_str_eq(alg, algs[i].name) &&
			    algs[i].fam == out->fam)
				bit = algs[i].bit;
		if (bit == 0) {
			*why = "alg not supported for this key";
			rc = 1;
			goto out;
		}
		out->algs = bit;
	}
	out->kid = pc_strndup(json_string_value(kid), json_string_length(kid));
	rc = out->kid != NULL ? 0 : PC_E_NOMEM;
out:
	if (rc != 0) {
		if (out->jwk != NULL)
			cjose_jwk_release(out->jwk);
		EVP_PKEY_free(out->ed);
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

/* Parse a JWKS document. 0 and *out (caller frees), or PC_E_PARSE /
 * PC_E_LIMIT / PC_E_NOMEM with a message in err. */
static int
keyset_parse(const char *buf, size_t len, struct jwt_keyset **out, char *err,
    size_t errlen)
{
	struct pc_json_limits lim = { 8, PC_MAX_JWKS_BYTES, 0, 0 };
	enum pc_json_fault fault;
	struct jwt_keyset *ks = NULL;
	json_t *doc = NULL, *keys;
	char why[128];
	int rc;

	*out = NULL;
	if (len > PC_MAX_JWKS_BYTES) {
		snprintf(err, errlen, "JWKS larger than %u bytes",
		    PC_MAX_JWKS_BYTES);
		return PC_E_LIMIT;
	}
	rc = pc_json_parse(buf, len, &lim, &doc, &fault, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "JWKS is not valid JSON: %s", why);
		goto out;
	}
	rc = PC_E_PARSE;
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		snprintf(err, errlen, "JWKS has no \"keys\" array");
		goto out;
	}
	if (json_array_size(keys) > JWT_MAX_KEYS) {
		snprintf(err, errlen, "JWKS has more than %u keys",
		    JWT_MAX_KEYS);
		rc = PC_E_LIMIT;
		goto out;
	}
	rc = PC_E_NOMEM;
	ks = calloc(1, sizeof(*ks));
	if (ks == NULL ||
	    (ks->v = calloc(json_array_size(keys) + 1, sizeof(*ks->v))) == NULL)
		goto out;
	for (size_t i = 0; i < json_array_size(keys); i++) {
		const char *skip = "";
		int r = key_parse(json_array_get(keys, i), &ks->v[ks->n], &skip);
		if (r < 0)
			goto out;
		if (r == 0)
			ks->n++;
		else
			pc_debug("JWKS key %zu skipped: %s", i, skip);
	}
	if (ks->n == 0) {
		snprintf(err, errlen,
		    "JWKS has no usable key (RSA >= 2048 bits, EC P-256 or "
		    "Ed25519, with a kid)");
		rc = PC_E_PARSE;
		goto out;
	}
	*out = ks;
	ks = NULL;
	rc = 0;
out:
	if (rc == PC_E_NOMEM)
		snprintf(err, errlen, "out of memory");
	keyset_free(ks);
	json_decref(doc);
	return rc;
}

static int
read_file_bounded(const char *path, size_t max, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc = PC_E_IO;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open JWKS file: %s",
		    strerror(errno));
		return PC_E_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "JWKS file is not a regular file");
		goto out;
	}
	/* The keys that decide who anyone is: whoever can change this file
	 * can sign in as anyone. Public, so it may be readable, but only its
	 * owner (the gateway's user or root) may write it. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "JWKS file is writable by group/others "
		    "(chmod go-w): anyone who can change it can forge tokens");
		rc = PC_E_DENIED;
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, errlen, "JWKS file belongs to another user "
		    "(uid %u): it must be the gateway's user's or root's",
		    (unsigned)st.st_uid);
		rc = PC_E_DENIED;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errlen, "JWKS file larger than %zu bytes", max);
		rc = PC_E_LIMIT;
		goto out;
	}
	rc = pc_read_fd_bounded(fd, max, &buf, &len);
	if (rc == PC_E_LIMIT) {
		snprintf(err, errlen, "JWKS file larger than %zu bytes", max);
		goto out;
	}
	if (rc != 0) {
		snprintf(err, errlen, "cannot read JWKS file: %s",
		    rc == PC_E_IO ? strerror(errno) : "out of memory");
		goto out;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- fetching ------------------------------------------------------------ */

static void
schedule(struct pc_jwt *j, unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	if (j->timer != NULL)
		evtimer_add(j->timer, &tv);
}

static void
on_jwks(void *arg, int rc, long status, const char *body, size_t len)
{
	struct pc_jwt *j = arg;
	struct jwt_keyset *ks = NULL;
	char err[256];

	j->inflight = FETCH_NONE;
	if (rc != 0 || status != 200) {
		pc_warn("JWKS fetch failed (%s, HTTP %ld); keeping %s key set",
		    rc != 0 ? pc_strerror(rc) : "bad status", status,
		    j->keys != NULL ? "the current" : "no");
		schedule(j, PC_JWKS_REFETCH_S);
		return;
	}
	rc = keyset_parse(body, len, &ks, err, sizeof(err));
	if (rc != 0) {
		pc_warn("JWKS refused: %s; keeping %s key set", err,
		    j->keys != NULL ? "the current" : "no");
		schedule(j, PC_JWKS_REFETCH_S);
		return;
	}
	keyset_free(j->keys);
	j->keys = ks;
	pc_info("JWKS loaded: %zu key(s)", ks->n);
	schedule(j, PC_JWKS_REFRESH_S);
}

static void
on_meta(void *arg, int rc, long status, const char *body, size_t len)
{
	struct pc_jwt *j = arg;
	struct pc_json_limits lim = { 16, PC_MAX_JWKS_BYTES, 0, 0 };
	enum pc_json_fault fault;
	json_t *doc = NULL;
	const char *uri;
	char why[128];

	j->inflight = FETCH_NONE;
	if (rc != 0 || status != 200 ||
	    pc_json_parse(body, len, &lim, &doc, &fault, why, sizeof(why)) != 0
	    || !json_is_object(doc)) {
		json_decref(doc);
		if (j->meta_idx + 1 < j->nmeta) {
			j->meta_idx++;
			start_fetch(j);
			return;
		}
		pc_warn("authorization server metadata not found (HTTP %ld)",
		    status);
		j->meta_idx = 0;
		schedule(j, PC_JWKS_REFETCH_S);
		return;
	}
	/* RFC 8414 section 3.3: the document must name the issuer we asked
	 * for, exactly, or an attacker's metadata could point at its keys. */
	uri = pc_json_str(doc, "jwks_uri");
	if (!json_str_eq(json_object_get(doc, "issuer"), j->conf->issuer)) {
		pc_warn("authorization server metadata names another issuer");
	} else if (uri == NULL ||
	    pc_fetch_url_check(uri, why, sizeof(why)) != 0) {
		pc_warn("authorization server metadata: unusable jwks_uri");
	} else if ((j->jwks_url = pc_strndup(uri, strlen(uri))) != NULL) {
		json_decref(doc);
		start_fetch(j);
		return;
	}
	json_decref(doc);
	j->meta_idx = 0;
	schedule(j, PC_JWKS_REFETCH_S);
}

static void
start_fetch(struct pc_jwt *j)
{
	int rc;

	if (j->fetcher == NULL || j->inflight != FETCH_NONE)
		return;
	if (j->jwks_url != NULL) {
		rc = pc_fetch_get(j->fetcher, j->jwks_url, PC_MAX_JWKS_BYTES,
		    PC_JWKS_FETCH_TIMEOUT_S, on_jwks, j);
		if (rc == 0)
			j->inflight = FETCH_JWKS;
	} else {
		rc = pc_fetch_get(j->fetcher, j->meta_url[j->meta_idx],
		    PC_MAX_JWKS_BYTES, PC_JWKS_FETCH_TIMEOUT_S, on_meta, j);
		if (rc == 0)
			j->inflight = FETCH_META;
	}
	if (rc != 0) {
		pc_warn("JWKS fetch not started: %s", pc_strerror(rc));
		schedule(j, PC_JWKS_REFETCH_S);
	}
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	start_fetch(arg);
}

/* An unknown kid may mean the issuer rotated keys: look again, but at most
 * once per PC_JWKS_REFETCH_S, so that tokens with made-up kids cannot make
 * us hammer the issuer. */
static void
refetch(struct pc_jwt *j)
{
	uint64_t now = pc_now_ms();

	if (j->fetcher == NULL || j->inflight != FETCH_NONE)
		return;
	if (j->refetched &&
	    now - j->last_refetch_ms < (uint64_t)PC_JWKS_REFETCH_S * 1000u)
		return;
	j->refetched = 1;
	j->last_refetch_ms = now;
	pc_info("token with an unknown key id: refetching the JWKS");
	start_fetch(j);
}

/* Discovery URLs for an issuer, in the order MCP clients try them:
 * RFC 8414 path-inserted, OIDC path-inserted, OIDC appended. */
static int
discovery_urls(struct pc_jwt *j, char *err, size_t errlen)
{
	const char *iss = j->conf->issuer, *p, *path;
	size_t origin_len, path_len;
	char buf[2048];

	if (pc_fetch_url_check(iss, buf, sizeof(buf)) != 0 ||
	    strpbrk(iss, "?#") != NULL || (p = strstr(iss, "://")) == NULL) {
		snprintf(err, errlen, "issuer is not an https URL without "
		    "query or fragment; set jwks_uri or jwks_file");
		return PC_E_CONFIG;
	}
	path = strchr(p + 3, '/');
	if (path == NULL)
		path = p + strlen(p);
	origin_len = (size_t)(path - iss);
	path_len = strlen(path);
	while (path_len > 0 && path[path_len - 1] == '/')
		path_len--;
	const char *fmt[3][2] = {
		{ "/.well-known/oauth-authorization-server", "" },
		{ "/.well-known/openid-configuration", "" },
		{ "", "/.well-known/openid-configuration" },
	};
	for (size_t i = 0; i < 3; i++) {
		int n;
		if (i == 2 && path_len == 0)
			break;
		n = snprintf(buf, sizeof(buf), "%.*s%s%.*s%s", (int)origin_len,
		    iss, fmt[i][0], (int)path_len, path, fmt[i][1]);
		if (n < 0 || (size_t)n >= sizeof(buf)) {
			snprintf(err, errlen, "issuer URL too long");
			return PC_E_CONFIG;
		}
		j->meta_url[j->nmeta] = pc_strndup(buf, (size_t)n);
		if (j->meta_url[j->nmeta] == NULL)
			return PC_E_NOMEM;
		j->nmeta++;
	}
	return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int
conf_algs(const struct pc_auth_conf *conf, unsigned *out, char *err,
    size_t errlen)
{
	*out = 0;
	if (conf->algorithms == NULL || conf->nalgorithms == 0) {
		*out = ALG_RS256 | ALG_PS256 | ALG_ES256 | ALG_EDDSA;
		return 0;
	}
	for (size_t i = 0; i < conf->nalgorithms; i++) {
		const char *a = conf->algorithms[i];
		unsigned bit = 0;
		for (size_t k = 0; a != NULL && k < NALGS; k++)
			if (strcmp(a, algs[k].name) == 0)
				bit = algs[k].bit;
		if (bit == 0) {
			snprintf(err, errlen, "algorithm %.32s is not supported "
			    "(RS256, PS256, ES256, EdDSA)", a ? a : "(null)");
			return PC_E_CONFIG;
		}
		*out |= bit;
	}
	return 0;
}

int
pc_jwt_new(struct event_base *base, const struct pc_auth_conf *conf,
    struct pc_jwt **out, char *err, size_t errlen)
{
	struct pc_jwt *j = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc = PC_E_CONFIG;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (conf == NULL || conf->issuer == NULL || conf->issuer[0] == '\0') {
		snprintf(err, errlen, "auth.issuer is required for JWT");
		return PC_E_CONFIG;
	}
	if (conf->resource == NULL || conf->resource[0] == '\0') {
		snprintf(err, errlen, "auth.resource is required for JWT");
		return PC_E_CONFIG;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return PC_E_NOMEM;
	j->base = base;
	j->conf = conf;
	rc = conf_algs(conf, &j->allowed, err, errlen);
	if (rc != 0)
		goto out;

	if (conf->jwks_file != NULL) {
		rc = read_file_bounded(conf->jwks_file, PC_MAX_JWKS_BYTES, &buf,
		    &len, err, errlen);
		if (rc == 0)
			rc = keyset_parse(buf, len, &j->keys, err, errlen);
		if (rc != 0) {
			rc = rc == PC_E_NOMEM ? rc : PC_E_CONFIG;
			goto out;
		}
		rc = 0;
		goto out;
	}

	if (base == NULL) {
		snprintf(err, errlen, "fetching the JWKS needs an event loop");
		rc = PC_E_CONFIG;
		goto out;
	}
	if (conf->jwks_uri != NULL) {
		char why[128];
		if (pc_fetch_url_check(conf->jwks_uri, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "jwks_uri: %s", why);
			rc = PC_E_CONFIG;
			goto out;
		}
		j->jwks_url = pc_strndup(conf->jwks_uri, strlen(conf->jwks_uri));
		rc = j->jwks_url != NULL ? 0 : PC_E_NOMEM;
	} else {
		rc = discovery_urls(j, err, errlen);
	}
	if (rc != 0)
		goto out;
	rc = PC_E_NOMEM;
	j->fetcher = pc_fetcher_new(base);
	j->timer = evtimer_new(base, on_timer, j);
	if (j->fetcher == NULL || j->timer == NULL)
		goto out;
	start_fetch(j);
	rc = 0;
out:
	free(buf);
	if (rc != 0) {
		if (rc == PC_E_NOMEM && errlen > 0 && err[0] == '\0')
			snprintf(err, errlen, "out of memory");
		pc_jwt_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

void
pc_jwt_free(struct pc_jwt *j)
{
	if (j == NULL)
		return;
	pc_fetcher_free(j->fetcher);
	if (j->timer != NULL)
		event_free(j->timer);
	keyset_free(j->keys);
	free(j->jwks_url);
	for (size_t i = 0; i < j->nmeta; i++)
		free(j->meta_url[i]);
	free(j);
}

int
pc_jwt_ready(const struct pc_jwt *j)
{
	return j != NULL && j->keys != NULL;
}

/* ---- the check ----------------------------------------------------------- */

/* Times are clamped to +-2^53 so that adding a leeway cannot overflow. */
#define JWT_TIME_MAX (INT64_C(1) << 53)

static int64_t
clamp_time(int64_t t)
{
	return t > JWT_TIME_MAX ? JWT_TIME_MAX :
	    t < -JWT_TIME_MAX ? -JWT_TIME_MAX : t;
}

/* 1 present (value in *t), 0 absent, -1 not a number. */
static int
claim_time(const json_t *claims, const char *name, int64_t *t)
{
	const json_t *v = json_object_get(claims, name);

	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		*t = clamp_time((int64_t)json_integer_value(v));
		return 1;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d))
			return -1;
		if (d > (double)JWT_TIME_MAX)
			d = (double)JWT_TIME_MAX;
		if (d < -(double)JWT_TIME_MAX)
			d = -(double)JWT_TIME_MAX;
		/* floor, without libm */
		*t = (int64_t)d;
		if ((double)*t > d)
			(*t)--;
		return 1;
	}
	return -1;
}

/* Printable UTF-8 only (no C0 controls, no DEL): these values reach logs
 * and audit records. */
static int
printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* A string claim into dst; 1 copied, 0 absent, -1 wrong type, too long,
 * or not printable. With truncate, a long value is cut at a UTF-8 boundary
 * instead. */
static int
claim_str(const json_t *claims, const char *name, char *dst, size_t dstlen,
    int truncate)
{
	const json_t *v = json_object_get(claims, name);
	size_t n;

	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	n = json_string_length(v);
	if (!printable(json_string_value(v), n))
		return -1;
	if (n >= dstlen) {
		if (!truncate)
			return -1;
		n = dstlen - 1;
		while (n > 0 &&
		    ((unsigned char)json_string_value(v)[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, json_string_value(v), n);
	dst[n] = '\0';
	return 1;
}

/* RFC 6749 section 3.3 scope-token characters. */
static int
scope_token_ok(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e)
			return 0;
	}
	return 1;
}

/* Is tok (len n) an element of the sep-separated list? */
static int
list_has(const char *list, char sep, const char *tok, size_t n)
{
	const char *p = list;

	while (*p != '\0') {
		const char *e = strchr(p, sep);
		size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
		if (l == n && memcmp(p, tok, n) == 0)
			return 1;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

/* Append tok to a sep-separated list in dst; 0 or PC_E_LIMIT. */
static int
list_add(char *dst, size_t dstlen, char sep, const char *tok, size_t n,
    int dedup)
{
	size_t len = strlen(dst);
	size_t need = n + (len > 0 ? 1 : 0);

	if (dedup && list_has(dst, sep, tok, n))
		return 0;
	if (need >= dstlen - len)
		return PC_E_LIMIT;
	if (len > 0)
		dst[len++] = sep;
	memcpy(dst + len, tok, n);
	dst[len + n] = '\0';
	return 0;
}

static int
add_scope(const struct pc_auth_conf *conf, struct pc_principal *p,
    const char *s, size_t n)
{
	if (!scope_token_ok(s, n))
		return PC_E_PARSE;
	if (list_add(p->scopes, sizeof(p->scopes), ' ', s, n, 1) != 0)
		return PC_E_LIMIT;
	for (size_t i = 0; i < conf->nscope_roles; i++) {
		const struct pc_scope_roles *sr = &conf->scope_roles[i];
		if (sr->scope == NULL || strlen(sr->scope) != n ||
		    memcmp(sr->scope, s, n) != 0)
			continue;
		for (size_t r = 0; r < sr->nroles && sr->roles[r] != NULL; r++)
			if (list_add(p->roles, sizeof(p->roles), ',',
			    sr->roles[r], strlen(sr->roles[r]), 1) != 0)
				return PC_E_LIMIT;
	}
	return 0;
}

int
pc_jwt_roles(const struct pc_auth_conf *conf, struct pc_principal *p)
{
	const char *s = p->scopes;

	p->roles[0] = '\0';
	while (*s != '\0') {
		const char *e = strchr(s, ' ');
		size_t n = e != NULL ? (size_t)(e - s) : strlen(s);

		for (size_t i = 0; i < conf->nscope_roles; i++) {
			const struct pc_scope_roles *sr = &conf->scope_roles[i];
			if (sr->scope == NULL || strlen(sr->scope) != n ||
			    memcmp(sr->scope, s, n) != 0)
				continue;
			for (size_t r = 0; r < sr->nroles && sr->roles[r] !=
			    NULL; r++)
				if (list_add(p->roles, sizeof(p->roles), ',',
				    sr->roles[r], strlen(sr->roles[r]), 1) != 0)
					return PC_E_LIMIT;
		}
		if (e == NULL)
			break;
		s = e + 1;
	}
	return 0;
}

/* Scopes from "scope" (space-separated string, RFC 9068) or "scp" (an
 * array, as some issuers send it). */
static int
claim_scopes(const struct pc_auth_conf *conf, const json_t *claims,
    struct pc_principal *p)
{
	const json_t *v = json_object_get(claims, "scope");
	int rc;

	if (v == NULL)
		v = json_object_get(claims, "scp");
	if (v == NULL)
		return 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v), i = 0;
		while (i < len) {
			size_t start;
			while (i < len && s[i] == ' ')
				i++;
			start = i;
			while (i < len && s[i] != ' ')
				i++;
			if (i > start &&
			    (rc = add_scope(conf, p, s + start, i - start)) != 0)
				return rc;
		}
		return 0;
	}
	if (!json_is_array(v))
		return PC_E_PARSE;
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_string(e))
			return PC_E_PARSE;
		rc = add_scope(conf, p, json_string_value(e),
		    json_string_length(e));
		if (rc != 0)
			return rc;
	}
	return 0;
}

static const char *
check_claims(struct pc_jwt *j, const json_t *c, int64_t now,
    struct pc_principal *p)
{
	const struct pc_auth_conf *conf = j->conf;
	const json_t *aud = json_object_get(c, "aud");
	int64_t exp, nbf, iat, leeway = conf->leeway_s;
	int ok = 0, r;

	if (!json_str_eq(json_object_get(c, "iss"), conf->issuer))
		return "jwt.iss";
	if (json_is_array(aud)) {
		for (size_t i = 0; i < json_array_size(aud) && !ok; i++)
			ok = json_str_eq(json_array_get(aud, i), conf->resource);
	} else {
		ok = json_str_eq(aud, conf->resource);
	}
	if (!ok)
		return "jwt.aud";
	now = clamp_time(now);
	if (claim_time(c, "exp", &exp) != 1)
		return "jwt.malformed";
	if (now - leeway >= exp)
		return "jwt.expired";
	r = claim_time(c, "nbf", &nbf);
	if (r < 0)
		return "jwt.malformed";
	if (r == 1 && now + leeway < nbf)
		return "jwt.not_yet_valid";
	r = claim_time(c, "iat", &iat);
	if (r < 0)
		return "jwt.malformed";
	if (r == 1 && iat > now + leeway)
		return "jwt.iat";

	if (claim_str(c, "sub", p->id, sizeof(p->id), 0) != 1 ||
	    p->id[0] == '\0')
		return "jwt.malformed";
	/* jti is for the audit trail only: a long one is cut, not refused. */
	if (claim_str(c, "jti", p->key_id, sizeof(p->key_id), 1) < 0)
		return "jwt.malformed";
	if (claim_str(c, "tenant", p->tenant, sizeof(p->tenant), 0) < 0)
		return "jwt.malformed";
	/* Too many scopes or roles to hold: refuse rather than truncate a
	 * list that authorization reads. */
	if (claim_scopes(conf, c, p) != 0)
		return "jwt.malformed";
	p->method = PC_AUTH_JWT;
	p->expires = exp;
	return NULL;
}

static int
verify_signature(const struct jwt_key *k, const char *token, size_t toklen,
    size_t signed_len, const unsigned char *sig, size_t siglen)
{
	if (k->ed != NULL) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int ok = ctx != NULL &&
		    EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->ed) == 1 &&
		    EVP_DigestVerify(ctx, sig, siglen,
		    (const unsigned char *)token, signed_len) == 1;
		EVP_MD_CTX_free(ctx);
		return ok;
	}
	cjose_err cerr;
	cjose_jws_t *jws = cjose_jws_import(token, toklen, &cerr);
	int ok = jws != NULL && cjose_jws_verify(jws, k->jwk, &cerr);
	cjose_jws_release(jws);
	return ok;
}

int
pc_jwt_check(struct pc_jwt *j, const char *token, int64_t now,
    struct pc_principal *p, const char **reason)
{
	struct pc_json_limits lim = { 8, PC_MAX_AUTH_HEADER, 0, 0 };
	struct pc_principal tmp;
	enum pc_json_fault fault;
	const struct jwt_key *key = NULL;
	unsigned char *hdr_raw = NULL, *body_raw = NULL, *sig = NULL;
	size_t toklen, d1, d2, hlen, blen, siglen, i;
	json_t *hdr = NULL, *claims = NULL;
	const json_t *kid;
	const char *why = "jwt.malformed", *alg;
	char jerr[128];
	unsigned bit = 0;
	int found = 0;

	*reason = why;
	if (j == NULL || token == NULL || p == NULL)
		return PC_E_DENIED;
	toklen = strnlen(token, PC_MAX_AUTH_HEADER + 1);
	if (toklen == 0 || toklen > PC_MAX_AUTH_HEADER)
		goto out;
	/* Exactly three segments: JWE (five) and JSON serialisation are not
	 * access tokens we accept. */
	d1 = d2 = 0;
	for (i = 0; i < toklen; i++) {
		if (token[i] != '.')
			continue;
		if (d1 == 0)
			d1 = i + 1;
		else if (d2 == 0)
			d2 = i + 1;
		else
			goto out;
	}
	if (d1 == 0 || d2 == 0 || d1 == 1 || d2 == d1 + 1)
		goto out;
	if (!b64u_valid(token, d1 - 1) || !b64u_valid(token + d1, d2 - d1 - 1) ||
	    !b64u_valid(token + d2, toklen - d2))
		goto out;

	if (b64u_decode(token, d1 - 1, &hdr_raw, &hlen) != 0 ||
	    pc_json_parse((const char *)hdr_raw, hlen, &lim, &hdr, &fault, jerr,
	    sizeof(jerr)) != 0 || !json_is_object(hdr))
		goto out;
	alg = pc_json_str(hdr, "alg");
	for (i = 0; alg != NULL && i < NALGS; i++)
		if (strcmp(alg, algs[i].name) == 0)
			bit = algs[i].bit & j->allowed;
	if (bit == 0) {
		why = "jwt.alg";
		goto out;
	}
	/* We implement no extension, so any critical one is not understood
	 * (RFC 7515 section 4.1.11). */
	if (json_object_get(hdr, "crit") != NULL)
		goto out;
	kid = json_object_get(hdr, "kid");
	if (!json_is_string(kid) || json_string_length(kid) == 0 ||
	    json_string_length(kid) > JWT_MAX_KID)
		goto out;
	if (j->keys == NULL) {
		refetch(j);
		why = "jwt.no_keys";
		goto out;
	}
	for (i = 0; i < j->keys->n && key == NULL; i++) {
		const struct jwt_key *k = &j->keys->v[i];
		if (!json_str_eq(kid, k->kid))
			continue;
		found = 1;
		if (k->algs & bit)
			key = k;
	}
	if (!found) {
		refetch(j);
		why = "jwt.kid_unknown";
		goto out;
	}
	if (key == NULL) {
		why = "jwt.alg";
		goto out;
	}

	why = "jwt.signature";
	if (b64u_decode(token + d2, toklen - d2, &sig, &siglen) != 0 ||
	    siglen != key->sig_len ||
	    !verify_signature(key, token, toklen, d2 - 1, sig, siglen))
		goto out;

	why = "jwt.malformed";
	if (b64u_decode(token + d1, d2 - d1 - 1, &body_raw, &blen) != 0 ||
	    pc_json_parse((const char *)body_raw, blen, &lim, &claims, &fault,
	    jerr, sizeof(jerr)) != 0 || !json_is_object(claims))
		goto out;
	memset(&tmp, 0, sizeof(tmp));
	why = check_claims(j, claims, now, &tmp);
	if (why == NULL)
		*p = tmp;
out:
	json_decref(hdr);
	json_decref(claims);
	free(hdr_raw);
	free(body_raw);
	free(sig);
	*reason = why;
	if (why != NULL) {
		pc_debug("JWT refused: %s", why);
		/* No key set yet (issuer unreachable): the gateway cannot
		 * judge the token, which is not the token's fault. */
		return strcmp(why, "jwt.no_keys") == 0 ? PC_E_UNAVAIL :
		    PC_E_DENIED;
	}
	return 0;
}
