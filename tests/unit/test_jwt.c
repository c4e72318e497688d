/*
 * Unit tests: src/authn/jwt.c with a JWKS file.
 *
 * Keys are made here with OpenSSL (RSA 2048, EC P-256, Ed25519), their
 * public JWKs written by hand from the key parameters, and tokens signed
 * with OpenSSL directly, so the verifier (cjose / EVP) is checked against
 * an independent signer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjose/cjose.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "authn/jwt.h"
#include "lib/errors.h"
#include "lib/limits.h"

#define NOW	INT64_C(1700000000)
#define ISS	"https://issuer.example"
#define RES	"https://mcp.example.com/mcp"

struct tkey {
	EVP_PKEY *pkey;
	const char *kid;
	char jwk[4096];		/* public JWK */
};

static struct tkey rsa1, rsa2, ec1, ed1, ps1;
static char dir[64], jwks_path[128];
static struct pc_jwt *J;

static char *roles_read[] = { "reader", NULL };
static char *roles_write[] = { "writer", "reader", NULL };
static char *roles_admin[] = { "admin", NULL };
static struct pc_scope_roles scope_roles[] = {
	{ "tools:read", roles_read, 1 },
	{ "tools:write", roles_write, 2 },
	{ "admin", roles_admin, 1 },
};
static struct pc_auth_conf conf;

/* ---- helpers ------------------------------------------------------------- */

static void
b64u(const void *in, size_t n, char *out, size_t outlen)
{
	char *s = NULL;
	size_t slen = 0;
	cjose_err err;

	assert_true(cjose_base64url_encode(in, n, &s, &slen, &err));
	assert_true(slen < outlen);
	memcpy(out, s, slen);
	out[slen] = '\0';
	cjose_get_dealloc()(s);
}

static void
bn_param(EVP_PKEY *k, const char *name, size_t pad, char *out, size_t outlen)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
	n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	b64u(buf, (size_t)n, out, outlen);
	BN_free(bn);
}

static void
make_key(struct tkey *t, const char *type, const char *kid,
    const char *extra)
{
	char a[1024], b[1024];

	t->kid = kid;
	if (strcmp(type, "RSA") == 0) {
		t->pkey = EVP_RSA_gen(2048);
		assert_non_null(t->pkey);
		bn_param(t->pkey, OSSL_PKEY_PARAM_RSA_N, 0, a, sizeof(a));
		bn_param(t->pkey, OSSL_PKEY_PARAM_RSA_E, 0, b, sizeof(b));
		snprintf(t->jwk, sizeof(t->jwk),
		    "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\","
		    "\"e\":\"%s\"%s}", kid, a, b, extra);
	} else if (strcmp(type, "EC") == 0) {
		t->pkey = EVP_EC_gen("P-256");
		assert_non_null(t->pkey);
		bn_param(t->pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, a, sizeof(a));
		bn_param(t->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b, sizeof(b));
		snprintf(t->jwk, sizeof(t->jwk),
		    "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"x\":\"%s\","
		    "\"y\":\"%s\"%s}", kid, a, b, extra);
	} else {
		unsigned char raw[32];
		size_t n = sizeof(raw);
		t->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		assert_non_null(t->pkey);
		assert_int_equal(EVP_PKEY_get_raw_public_key(t->pkey, raw, &n), 1);
		b64u(raw, n, a, sizeof(a));
		snprintf(t->jwk, sizeof(t->jwk),
		    "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":\"Ed25519\","
		    "\"x\":\"%s\"%s}", kid, a, extra);
	}
}

/* Sign "hdr.payload" with alg; returns a malloc'ed compact JWS. */
static char *
sign_raw(const struct tkey *t, const char *alg, const char *hdr,
    const char *payload, const void *hmac_key, size_t hmac_len)
{
	char h64[4096], p64[8192], s64[1024];
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	char *input, *tok;
	size_t inlen;

	b64u(hdr, strlen(hdr), h64, sizeof(h64));
	b64u(payload, strlen(payload), p64, sizeof(p64));
	inlen = strlen(h64) + 1 + strlen(p64);
	input = malloc(inlen + 1);
	assert_non_null(input);
	snprintf(input, inlen + 1, "%s.%s", h64, p64);

	if (strcmp(alg, "none") == 0) {
		siglen = 0;
	} else if (strcmp(alg, "HS256") == 0) {
		unsigned int l = sizeof(sig);
		assert_non_null(HMAC(EVP_sha256(), hmac_key, (int)hmac_len,
		    (const unsigned char *)input, inlen, sig, &l));
		siglen = l;
	} else {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pctx = NULL;
		const EVP_MD *md = strcmp(alg, "EdDSA") == 0 ? NULL : EVP_sha256();
		assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL,
		    t->pkey), 1);
		if (strcmp(alg, "PS256") == 0) {
			assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx,
			    RSA_PKCS1_PSS_PADDING), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
			    RSA_PSS_SALTLEN_DIGEST), 1);
		}
		assert_int_equal(EVP_DigestSign(ctx, sig, &siglen,
		    (unsigned char *)input, inlen), 1);
		EVP_MD_CTX_free(ctx);
		if (strcmp(alg, "ES256") == 0) {
			/* DER ECDSA-Sig-Value -> JWS R || S */
			const unsigned char *p = sig;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
			assert_non_null(es);
			assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig,
			    32), 32);
			assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es),
			    sig + 32, 32), 32);
			ECDSA_SIG_free(es);
			siglen = 64;
		}
	}
	if (siglen > 0)
		b64u(sig, siglen, s64, sizeof(s64));
	else
		s64[0] = '\0';
	tok = malloc(inlen + 2 + strlen(s64));
	assert_non_null(tok);
	snprintf(tok, inlen + 2 + strlen(s64), "%s.%s", input, s64);
	free(input);
	return tok;
}

/* Standard header for alg/kid. */
static char *
sign(const struct tkey *t, const char *alg, const char *payload)
{
	char hdr[256];

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"at+jwt\","
	    "\"kid\":\"%s\"}", alg, t->kid);
	return sign_raw(t, alg, hdr, payload, NULL, 0);
}

/* A payload that passes every check but for what the arguments change;
 * `extra` is appended (",\"name\":value..."). */
static void
claims(char *out, size_t outlen, const char *iss, const char *aud,
    int64_t exp, const char *extra)
{
	snprintf(out, outlen, "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"alice\","
	    "\"exp\":%lld,\"iat\":%lld,\"jti\":\"tok-1\"%s}", iss, aud,
	    (long long)exp, (long long)(NOW - 10), extra);
}

static int
check(const char *tok, const char **reason, struct pc_principal *p)
{
	struct pc_principal tmp;

	return pc_jwt_check(J, tok, NOW, p ? p : &tmp, reason);
}

/* Sign with t/alg and expect `want` (NULL = accepted). */
static void
expect(const struct tkey *t, const char *alg, const char *payload,
    const char *want)
{
	const char *reason = NULL;
	char *tok = sign(t, alg, payload);
	int rc = check(tok, &reason, NULL);

	if (want == NULL) {
		if (rc != 0)
			fail_msg("refused: %s", reason);
	} else {
		assert_int_equal(rc, PC_E_DENIED);
		assert_string_equal(reason, want);
	}
	free(tok);
}

static void
expect_tok(const char *tok, const char *want)
{
	const char *reason = NULL;

	assert_int_equal(check(tok, &reason, NULL), PC_E_DENIED);
	assert_string_equal(reason, want);
}

static void
write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(s, f) >= 0, 1);
	fclose(f);
}

static int
setup(void **st)
{
	char jwks[32768];

	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/pc-jwt-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	make_key(&rsa1, "RSA", "rsa1", "");
	make_key(&rsa2, "RSA", "rsa2", "");
	make_key(&ps1, "RSA", "ps1", ",\"alg\":\"PS256\"");
	make_key(&ec1, "EC", "ec1", "");
	make_key(&ed1, "OKP", "ed1", "");
	/* rsa2 is left out: its tokens have an unknown kid. An oct key and
	 * an EC key on another curve are there to be ignored. */
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s,%s,%s,%s,"
	    "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"},"
	    "{\"kty\":\"EC\",\"kid\":\"p384\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}"
	    "]}", rsa1.jwk, ps1.jwk, ec1.jwk, ed1.jwk);
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
	write_file(jwks_path, jwks);

	memset(&conf, 0, sizeof(conf));
	conf.issuer = ISS;
	conf.resource = RES;
	conf.jwks_file = jwks_path;
	conf.leeway_s = 60;
	conf.scope_roles = scope_roles;
	conf.nscope_roles = 3;
	char err[256];
	if (pc_jwt_new(NULL, &conf, &J, err, sizeof(err)) != 0) {
		fprintf(stderr, "pc_jwt_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **st)
{
	(void)st;
	pc_jwt_free(J);
	EVP_PKEY_free(rsa1.pkey);
	EVP_PKEY_free(rsa2.pkey);
	EVP_PKEY_free(ps1.pkey);
	EVP_PKEY_free(ec1.pkey);
	EVP_PKEY_free(ed1.pkey);
	unlink(jwks_path);
	rmdir(dir);
	return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void
valid_tokens_accepted(void **st)
{
	char c[1024];
	const char *reason = NULL;
	struct pc_principal p;
	char *tok;

	(void)st;
	assert_true(pc_jwt_ready(J));
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300,
	    ",\"tenant\":\"acme\"");
	expect(&rsa1, "RS256", c, NULL);
	expect(&rsa1, "PS256", c, NULL);
	expect(&ps1, "PS256", c, NULL);
	expect(&ec1, "ES256", c, NULL);
	expect(&ed1, "EdDSA", c, NULL);

	tok = sign(&ed1, "EdDSA", c);
	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(check(tok, &reason, &p), 0);
	assert_int_equal(p.method, PC_AUTH_JWT);
	assert_string_equal(p.id, "alice");
	assert_string_equal(p.key_id, "tok-1");
	assert_string_equal(p.tenant, "acme");
	assert_string_equal(p.roles, "");
	assert_string_equal(p.scopes, "");
	assert_int_equal(p.expires, NOW + 300);
	free(tok);
}

static void
alg_none_refused(void **st)
{
	char c[1024], hdr[128];
	char *tok;

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	const char *nones[] = { "none", "None", "NONE", "" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"rsa1\"}",
		    nones[i]);
		tok = sign_raw(&rsa1, "none", hdr, c, NULL, 0);
		expect_tok(tok, "jwt.alg");
		free(tok);
	}
	/* No alg at all, or not a string. */
	tok = sign_raw(&rsa1, "none", "{\"kid\":\"rsa1\"}", c, NULL, 0);
	expect_tok(tok, "jwt.alg");
	free(tok);
	tok = sign_raw(&rsa1, "none", "{\"alg\":null,\"kid\":\"rsa1\"}", c,
	    NULL, 0);
	expect_tok(tok, "jwt.alg");
	free(tok);
	/* An alg-none token with a signature segment copied from elsewhere. */
	tok = sign_raw(&rsa1, "HS256", "{\"alg\":\"none\",\"kid\":\"rsa1\"}", c,
	    "k", 1);
	expect_tok(tok, "jwt.alg");
	free(tok);
}

static void
hs256_with_public_key_refused(void **st)
{
	char c[1024];
	char *tok, *pem;
	BIO *bio = BIO_new(BIO_s_mem());
	long pemlen;

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	/* The classic confusion: the verifier's public key as HMAC secret. */
	tok = sign_raw(&rsa1, "HS256", "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
	    c, rsa1.jwk, strlen(rsa1.jwk));
	expect_tok(tok, "jwt.alg");
	free(tok);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa1.pkey), 1);
	pemlen = BIO_get_mem_data(bio, &pem);
	tok = sign_raw(&rsa1, "HS256", "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
	    c, pem, (size_t)pemlen);
	expect_tok(tok, "jwt.alg");
	free(tok);
	BIO_free(bio);
	/* The oct key of the JWKS is never loaded: HS256 with it is refused
	 * and its kid is unknown. */
	tok = sign_raw(&rsa1, "HS256", "{\"alg\":\"HS256\",\"kid\":\"hs\"}", c,
	    "secretsecretsecretsecretsecret", 30);
	expect_tok(tok, "jwt.alg");
	free(tok);
	expect(&rsa1, "RS384", c, "jwt.alg");
}

static void
alg_key_mismatch_refused(void **st)
{
	char c[1024];
	char *tok;

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	/* ES256 header naming the RSA key (signed with the EC key). */
	tok = sign_raw(&ec1, "ES256", "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}",
	    c, NULL, 0);
	expect_tok(tok, "jwt.alg");
	free(tok);
	tok = sign_raw(&rsa1, "RS256", "{\"alg\":\"RS256\",\"kid\":\"ec1\"}",
	    c, NULL, 0);
	expect_tok(tok, "jwt.alg");
	free(tok);
	tok = sign_raw(&rsa1, "RS256", "{\"alg\":\"RS256\",\"kid\":\"ed1\"}",
	    c, NULL, 0);
	expect_tok(tok, "jwt.alg");
	free(tok);
	/* ps1 declares alg PS256 in the JWKS: RS256 with it is refused. */
	expect(&ps1, "RS256", c, "jwt.alg");
	/* A key on P-384 was skipped when loading: its kid is unknown. */
	tok = sign_raw(&ec1, "ES256", "{\"alg\":\"ES256\",\"kid\":\"p384\"}",
	    c, NULL, 0);
	expect_tok(tok, "jwt.kid_unknown");
	free(tok);
}

static void
claims_iss_aud(void **st)
{
	char c[1024];

	(void)st;
	claims(c, sizeof(c), ISS, "\"https://other.example/mcp\"", NOW + 300, "");
	expect(&rsa1, "RS256", c, "jwt.aud");
	claims(c, sizeof(c), ISS, "\"" RES "/\"", NOW + 300, "");
	expect(&rsa1, "RS256", c, "jwt.aud");
	claims(c, sizeof(c), ISS, "[\"a\",\"b\"]", NOW + 300, "");
	expect(&rsa1, "RS256", c, "jwt.aud");
	claims(c, sizeof(c), ISS, "[\"a\",1,\"" RES "\"]", NOW + 300, "");
	expect(&ec1, "ES256", c, NULL);
	claims(c, sizeof(c), ISS, "null", NOW + 300, "");
	expect(&rsa1, "RS256", c, "jwt.aud");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"sub\":\"a\",\"exp\":%lld}",
	    (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.aud");

	claims(c, sizeof(c), "https://evil.example", "\"" RES "\"", NOW + 300, "");
	expect(&rsa1, "RS256", c, "jwt.iss");
	claims(c, sizeof(c), ISS "/", "\"" RES "\"", NOW + 300, "");
	expect(&rsa1, "RS256", c, "jwt.iss");
	claims(c, sizeof(c), "HTTPS://issuer.example", "\"" RES "\"", NOW + 300,
	    "");
	expect(&rsa1, "RS256", c, "jwt.iss");
	snprintf(c, sizeof(c), "{\"aud\":\"" RES "\",\"sub\":\"a\",\"exp\":%lld}",
	    (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.iss");
}

static void
claims_times(void **st)
{
	char c[1024], extra[128];

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW - 61, "");
	expect(&rsa1, "RS256", c, "jwt.expired");
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW - 60, "");
	expect(&rsa1, "RS256", c, "jwt.expired");
	/* Within the leeway. */
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW - 30, "");
	expect(&rsa1, "RS256", c, NULL);
	/* Fractional exp (NumericDate may be non-integer). */
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":%lld.5}", (long long)NOW - 100);
	expect(&rsa1, "RS256", c, "jwt.expired");
	/* exp missing or not a number. */
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\"}");
	expect(&rsa1, "RS256", c, "jwt.malformed");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":\"%lld\"}", (long long)NOW + 100);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	/* Huge exp does not overflow. */
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":9223372036854775807}");
	expect(&rsa1, "RS256", c, NULL);
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":-9223372036854775807}");
	expect(&rsa1, "RS256", c, "jwt.expired");

	snprintf(extra, sizeof(extra), ",\"nbf\":%lld", (long long)NOW + 120);
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, extra);
	expect(&rsa1, "RS256", c, "jwt.not_yet_valid");
	snprintf(extra, sizeof(extra), ",\"nbf\":%lld", (long long)NOW + 30);
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, extra);
	expect(&rsa1, "RS256", c, NULL);
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, ",\"nbf\":true");
	expect(&rsa1, "RS256", c, "jwt.malformed");

	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":%lld,\"iat\":%lld}", (long long)NOW + 300,
	    (long long)NOW + 120);
	expect(&rsa1, "RS256", c, "jwt.iat");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":%lld,\"iat\":%lld}", (long long)NOW + 300,
	    (long long)NOW + 30);
	expect(&rsa1, "RS256", c, NULL);
}

static void
unknown_kid_refused(void **st)
{
	char c[1024];

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	expect(&rsa2, "RS256", c, "jwt.kid_unknown");
	/* rsa2's signature under rsa1's kid: the signature fails. */
	char *tok = sign_raw(&rsa2, "RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
	    c, NULL, 0);
	expect_tok(tok, "jwt.signature");
	free(tok);
	/* No kid, or kid not a string. */
	tok = sign_raw(&rsa1, "RS256", "{\"alg\":\"RS256\"}", c, NULL, 0);
	expect_tok(tok, "jwt.malformed");
	free(tok);
	tok = sign_raw(&rsa1, "RS256", "{\"alg\":\"RS256\",\"kid\":1}", c, NULL,
	    0);
	expect_tok(tok, "jwt.malformed");
	free(tok);
}

/* Replace segment `seg` (0..2) of tok with repl. */
static char *
splice(const char *tok, int seg, const char *repl)
{
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	size_t n = strlen(tok) + strlen(repl) + 1;
	char *out = malloc(n);

	assert_non_null(out);
	if (seg == 0)
		snprintf(out, n, "%s%s", repl, d1);
	else if (seg == 1)
		snprintf(out, n, "%.*s%s%s", (int)(d1 - tok + 1), tok, repl, d2);
	else
		snprintf(out, n, "%.*s%s", (int)(d2 - tok + 1), tok, repl);
	return out;
}

static void
tampering_detected(void **st)
{
	char c[1024], c2[1024], seg[2048], *tok, *bad;
	const struct { const struct tkey *k; const char *alg; } ks[] = {
		{ &rsa1, "RS256" }, { &rsa1, "PS256" }, { &ec1, "ES256" },
		{ &ed1, "EdDSA" },
	};

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	claims(c2, sizeof(c2), ISS, "\"" RES "\"", NOW + 300,
	    ",\"scope\":\"admin\"");
	b64u(c2, strlen(c2), seg, sizeof(seg));
	for (size_t i = 0; i < 4; i++) {
		tok = sign(ks[i].k, ks[i].alg, c);
		/* Payload swapped. */
		bad = splice(tok, 1, seg);
		expect_tok(bad, "jwt.signature");
		free(bad);
		/* Header changed (an extra member), same kid and alg. */
		char h[256], h64[512];
		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"%s\",\"x\":1}",
		    ks[i].alg, ks[i].k->kid);
		b64u(h, strlen(h), h64, sizeof(h64));
		bad = splice(tok, 0, h64);
		expect_tok(bad, "jwt.signature");
		free(bad);
		/* One bit of the signature flipped (first char, so the
		 * encoding stays canonical). */
		bad = strdup(tok);
		char *s = strrchr(bad, '.') + 1;
		s[0] = s[0] == 'A' ? 'B' : 'A';
		expect_tok(bad, "jwt.signature");
		/* Signature truncated (to a multiple of 4 characters, so
		 * that it is still canonical base64url). */
		s[(strlen(s) / 4) * 4 - 4] = '\0';
		expect_tok(bad, "jwt.signature");
		/* Signature missing. */
		s[0] = '\0';
		expect_tok(bad, "jwt.signature");
		free(bad);
		free(tok);
	}
	/* Non-canonical base64url (trailing bits set) in the signature. */
	tok = sign(&ec1, "ES256", c);	/* 64 bytes -> 86 chars, 2 spare bits */
	bad = strdup(tok);
	char *last = bad + strlen(bad) - 1;
	*last = *last == 'A' ? 'B' : (*last == 'B' ? 'C' : 'B');
	expect_tok(bad, "jwt.malformed");
	free(bad);
	free(tok);
}

static void
shape_refused(void **st)
{
	char c[1024], *tok, *bad;
	size_t n;

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	tok = sign(&rsa1, "RS256", c);
	n = strlen(tok);

	/* Two segments. */
	bad = strdup(tok);
	*strrchr(bad, '.') = '\0';
	expect_tok(bad, "jwt.malformed");
	free(bad);
	/* Four and five segments. */
	bad = malloc(n + 16);
	snprintf(bad, n + 16, "%s.AAAA", tok);
	expect_tok(bad, "jwt.malformed");
	snprintf(bad, n + 16, "%s.AAAA.BBBB", tok);
	expect_tok(bad, "jwt.malformed");
	/* Empty header or payload. */
	snprintf(bad, n + 16, ".%s", strchr(tok, '.') + 1);
	expect_tok(bad, "jwt.malformed");
	free(bad);
	bad = splice(tok, 1, "");
	expect_tok(bad, "jwt.malformed");
	free(bad);
	/* Not base64url: '+', '/', padding, space, quoted. */
	const char *chars = "+/= \"%\n";
	for (size_t i = 0; chars[i] != '\0'; i++) {
		bad = strdup(tok);
		bad[5] = chars[i];
		expect_tok(bad, "jwt.malformed");
		bad[5] = tok[5];
		bad[n - 3] = chars[i];
		expect_tok(bad, "jwt.malformed");
		free(bad);
	}
	/* Header not JSON / not an object. */
	bad = splice(tok, 0, "bm90IGpzb24");	/* "not json" */
	expect_tok(bad, "jwt.malformed");
	free(bad);
	bad = splice(tok, 0, "WzFd");		/* "[1]" */
	expect_tok(bad, "jwt.malformed");
	free(bad);
	/* Oversized. */
	bad = malloc(PC_MAX_AUTH_HEADER + 2);
	memset(bad, 'A', PC_MAX_AUTH_HEADER + 1);
	bad[PC_MAX_AUTH_HEADER + 1] = '\0';
	memcpy(bad, tok, n);
	expect_tok(bad, "jwt.malformed");
	free(bad);
	expect_tok("", "jwt.malformed");
	expect_tok("..", "jwt.malformed");
	free(tok);
}

static void
duplicates_and_subject(void **st)
{
	char c[1024], *tok;

	(void)st;
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"alice\",\"sub\":\"admin\",\"exp\":%lld}",
	    (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\",\"exp\":%lld,\"exp\":%lld}",
	    (long long)NOW + 300, (long long)NOW + 99999);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	/* Duplicate header member (an alg smuggled past a first look). */
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	tok = sign_raw(&rsa1, "RS256",
	    "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"alg\":\"none\"}", c, NULL, 0);
	expect_tok(tok, "jwt.malformed");
	free(tok);
	/* crit is not understood. */
	tok = sign_raw(&rsa1, "RS256",
	    "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"]}", c, NULL,
	    0);
	expect_tok(tok, "jwt.malformed");
	free(tok);

	/* sub missing, empty, not a string, too long, with a control char. */
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"exp\":%lld}", (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"\",\"exp\":%lld}", (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":42,\"exp\":%lld}", (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"a\\nb\",\"exp\":%lld}", (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	char longsub[PC_PRINCIPAL_MAX + 1];
	memset(longsub, 'x', PC_PRINCIPAL_MAX);
	longsub[PC_PRINCIPAL_MAX] = '\0';
	snprintf(c, sizeof(c), "{\"iss\":\"" ISS "\",\"aud\":\"" RES "\","
	    "\"sub\":\"%s\",\"exp\":%lld}", longsub, (long long)NOW + 300);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	/* Payload that is JSON but not an object. */
	tok = sign(&rsa1, "RS256", "[1,2]");
	expect_tok(tok, "jwt.malformed");
	free(tok);
}

static void
scopes_to_roles(void **st)
{
	char c[1024], *tok;
	const char *reason;
	struct pc_principal p;

	(void)st;
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300,
	    ",\"scope\":\"tools:read  tools:write other\"");
	tok = sign(&rsa1, "RS256", c);
	assert_int_equal(check(tok, &reason, &p), 0);
	assert_string_equal(p.scopes, "tools:read tools:write other");
	assert_string_equal(p.roles, "reader,writer");
	free(tok);

	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300,
	    ",\"scp\":[\"admin\",\"tools:read\"]");
	tok = sign(&ec1, "ES256", c);
	assert_int_equal(check(tok, &reason, &p), 0);
	assert_string_equal(p.scopes, "admin tools:read");
	assert_string_equal(p.roles, "admin,reader");
	free(tok);

	/* A scope with a character outside RFC 6749's set. */
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300,
	    ",\"scope\":\"a,b\\\"c\"");
	expect(&rsa1, "RS256", c, "jwt.malformed");
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, ",\"scp\":[1]");
	expect(&rsa1, "RS256", c, "jwt.malformed");
	/* More scopes than fit: refused, never truncated. */
	char big[1200], extra[1300];
	size_t o = 0;
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "scope%02d ", i);
	snprintf(extra, sizeof(extra), ",\"scope\":\"%s\"", big);
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, extra);
	expect(&rsa1, "RS256", c, "jwt.malformed");
	/* A long jti is cut, not refused. */
	claims(c, sizeof(c), ISS, "\"" RES "\"", NOW + 300, "");
	char *j = strstr(c, "\"tok-1\"");
	assert_non_null(j);
	char c3[1200];
	snprintf(c3, sizeof(c3), "%.*s\"%s\"%s", (int)(j - c), c,
	    "0123456789012345678901234567890123456789012345678901234567890123",
	    j + 7);
	tok = sign(&rsa1, "RS256", c3);
	assert_int_equal(check(tok, &reason, &p), 0);
	assert_int_equal(strlen(p.key_id), sizeof(p.key_id) - 1);
	free(tok);
}

static void
config_refused(void **st)
{
	struct pc_auth_conf c2;
	struct pc_jwt *j = NULL;
	char err[256], path[160];
	char *bad_algs[] = { "RS256", "HS256", NULL };
	char *none_algs[] = { "none", NULL };
	char *es_only[] = { "ES256", NULL };

	(void)st;
	c2 = conf;
	c2.algorithms = bad_algs;
	c2.nalgorithms = 2;
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_null(j);
	assert_non_null(strstr(err, "HS256"));
	c2.algorithms = none_algs;
	c2.nalgorithms = 1;
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);

	/* An allow-list narrower than the keys. */
	c2.algorithms = es_only;
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)), 0);
	char cl[1024], *tok;
	const char *reason;
	struct pc_principal p;
	claims(cl, sizeof(cl), ISS, "\"" RES "\"", NOW + 300, "");
	tok = sign(&rsa1, "RS256", cl);
	assert_int_equal(pc_jwt_check(j, tok, NOW, &p, &reason), PC_E_DENIED);
	assert_string_equal(reason, "jwt.alg");
	free(tok);
	tok = sign(&ec1, "ES256", cl);
	assert_int_equal(pc_jwt_check(j, tok, NOW, &p, &reason), 0);
	free(tok);
	pc_jwt_free(j);
	j = NULL;

	c2 = conf;
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	c2.jwks_file = path;
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);

	/* A JWKS file others may write is a way to forge tokens: refused. */
	assert_int_equal(chmod(jwks_path, 0666), 0);
	c2.jwks_file = jwks_path;
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "writable by group/others"));
	assert_int_equal(chmod(jwks_path, 0644), 0);
	if (pc_jwt_new(NULL, &c2, &j, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	pc_jwt_free(j);
	j = NULL;
	c2.jwks_file = path;

	/* Only unusable keys. */
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	write_file(path, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"AAAA\"},"
	    "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	write_file(path, "{\"keys\":{}}");
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	write_file(path, "{\"keys\":[],\"keys\":[]}");
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	/* A private JWK (with "d"): loaded, public part only. */
	cjose_err cerr;
	cjose_jwk_t *priv = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr);
	assert_non_null(priv);
	char *pj = cjose_jwk_to_json(priv, true, &cerr);
	assert_non_null(strstr(pj, "\"d\""));
	char doc[2048];
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kid\":\"p\",%s]}", pj + 1);
	write_file(path, doc);
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)), 0);
	assert_true(pc_jwt_ready(j));
	pc_jwt_free(j);
	j = NULL;
	cjose_get_dealloc()(pj);
	cjose_jwk_release(priv);
	/* Over the size limit. */
	char *huge = malloc(PC_MAX_JWKS_BYTES + 64);
	memset(huge, ' ', PC_MAX_JWKS_BYTES + 63);
	huge[PC_MAX_JWKS_BYTES + 63] = '\0';
	memcpy(huge, "{\"keys\":[]}", 11);
	write_file(path, huge);
	free(huge);
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "larger"));
	unlink(path);

	/* Fetching without an event loop; missing issuer / resource. */
	c2 = conf;
	c2.jwks_file = NULL;
	c2.jwks_uri = "https://issuer.example/jwks";
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	c2 = conf;
	c2.issuer = NULL;
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	c2 = conf;
	c2.resource = "";
	assert_int_equal(pc_jwt_new(NULL, &c2, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	pc_jwt_free(NULL);
	assert_false(pc_jwt_ready(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_tokens_accepted),
		cmocka_unit_test(alg_none_refused),
		cmocka_unit_test(hs256_with_public_key_refused),
		cmocka_unit_test(alg_key_mismatch_refused),
		cmocka_unit_test(claims_iss_aud),
		cmocka_unit_test(claims_times),
		cmocka_unit_test(unknown_kid_refused),
		cmocka_unit_test(tampering_detected),
		cmocka_unit_test(shape_refused),
		cmocka_unit_test(duplicates_and_subject),
		cmocka_unit_test(scopes_to_roles),
		cmocka_unit_test(config_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
