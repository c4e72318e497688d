/*
 * Unit tests: src/lib/fetch.c and the JWKS fetching of src/authn/jwt.c.
 *
 * A small evhttp server on 127.0.0.1 runs in the test's own event loop and
 * serves JWKS documents, metadata, oversized bodies, a redirect and a
 * request that never gets an answer. It is freed by each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjose/cjose.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <time.h>

#include "authn/jwt.h"
#include "lib/errors.h"
#include "lib/fetch.h"
#include "lib/limits.h"
#include "lib/util.h"

#define RES	"https://mcp.example.com/mcp"

/* ---- the server ---------------------------------------------------------- */

struct srv {
	struct event_base *base;
	struct evhttp *http;
	int port;
	char origin[64];
	char jwks[8192];
	char meta_issuer[128];
	int n_jwks, n_target, n_meta, n_big;
	struct evhttp_request *hung;
};

static void
reply(struct evhttp_request *req, int code, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, body, len);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Other", b);
	evbuffer_free(b);
}

static void
on_jwks(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;

	s->n_jwks++;
	reply(req, 200, s->jwks, strlen(s->jwks));
}

static void
on_target(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;

	s->n_target++;
	reply(req, 200, s->jwks, strlen(s->jwks));
}

static void
on_redir(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	char loc[128];

	snprintf(loc, sizeof(loc), "%s/target", s->origin);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
	    loc);
	evhttp_send_reply(req, 302, "Found", NULL);
}

static void
on_big(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	size_t n = PC_MAX_JWKS_BYTES + 100;
	char *big = malloc(n);

	s->n_big++;
	memset(big, ' ', n);
	memcpy(big, "{\"keys\":[]}", 11);
	reply(req, 200, big, n);
	free(big);
}

/* Chunked, so that no Content-Length warns the client in advance. */
static void
on_bigchunk(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	char chunk[16384];

	s->n_big++;
	memset(chunk, ' ', sizeof(chunk));
	evhttp_send_reply_start(req, 200, "OK");
	for (size_t sent = 0; sent <= PC_MAX_JWKS_BYTES; sent += sizeof(chunk)) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, chunk, sizeof(chunk));
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
	}
	evhttp_send_reply_end(req);
}

static void
on_hang(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;

	s->hung = req;	/* never answered */
}

static void
on_meta(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	char doc[512];

	s->n_meta++;
	snprintf(doc, sizeof(doc), "{\"issuer\":\"%s\",\"jwks_uri\":\"%s/jwks\"}",
	    s->meta_issuer, s->origin);
	reply(req, 200, doc, strlen(doc));
}

static void
on_other(struct evhttp_request *req, void *arg)
{
	reply(req, 404, "{}", 2);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

static struct srv *
srv_start(void)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	assert_non_null(s);
	s->base = event_base_new();
	s->http = evhttp_new(s->base);
	assert_non_null(s->http);
	bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	assert_non_null(bs);
	assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &sl), 0);
	s->port = ntohs(sin.sin_port);
	snprintf(s->origin, sizeof(s->origin), "http://127.0.0.1:%d", s->port);
	snprintf(s->meta_issuer, sizeof(s->meta_issuer), "%s", s->origin);
	evhttp_set_cb(s->http, "/jwks", on_jwks, s);
	evhttp_set_cb(s->http, "/target", on_target, s);
	evhttp_set_cb(s->http, "/redir", on_redir, s);
	evhttp_set_cb(s->http, "/big", on_big, s);
	evhttp_set_cb(s->http, "/bigchunk", on_bigchunk, s);
	evhttp_set_cb(s->http, "/hang", on_hang, s);
	evhttp_set_cb(s->http, "/.well-known/oauth-authorization-server",
	    on_meta, s);
	evhttp_set_gencb(s->http, on_other, s);
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[]}");
	return s;
}

static void
srv_stop(struct srv *s)
{
	evhttp_free(s->http);
	event_base_free(s->base);
	free(s);
}

static char *
url(struct srv *s, const char *path)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s%s", s->origin, path);
	return buf;
}

/* Run the loop until *flag becomes non-zero or ms pass. */
static void
run_until(struct srv *s, const int *flag, unsigned ms)
{
	struct timeval tv = { 0, 10000 };
	struct event *t = event_new(s->base, -1, EV_PERSIST, tick, NULL);
	uint64_t end = pc_now_ms() + ms;

	event_add(t, &tv);
	while ((flag == NULL || !*flag) && pc_now_ms() < end)
		event_base_loop(s->base, EVLOOP_ONCE);
	event_free(t);
}

/* ---- fetch --------------------------------------------------------------- */

struct result {
	int done, rc;
	long status;
	char body[256];
	size_t len;
};

static void
on_done(void *arg, int rc, long status, const char *body, size_t len)
{
	struct result *r = arg;

	r->done++;
	r->rc = rc;
	r->status = status;
	r->len = len;
	if (body != NULL)
		snprintf(r->body, sizeof(r->body), "%s", body);
}

static void
fetch_get_ok(void **st)
{
	struct srv *s = srv_start();
	struct pc_fetcher *f = pc_fetcher_new(s->base);
	struct result r = { 0 };

	(void)st;
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[1]}");
	assert_int_equal(pc_fetch_get(f, url(s, "/jwks"), 1024, 5, on_done, &r),
	    0);
	assert_int_equal(r.done, 0);	/* never from inside pc_fetch_get */
	assert_int_equal(pc_fetch_pending(f), 1);
	run_until(s, &r.done, 5000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"keys\":[1]}");
	assert_int_equal(r.len, 12);
	assert_int_equal(pc_fetch_pending(f), 0);

	/* A 404 is a response, not a failure of the transfer. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(pc_fetch_get(f, url(s, "/nothing"), 1024, 5, on_done,
	    &r), 0);
	run_until(s, &r.done, 5000);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.status, 404);
	pc_fetcher_free(f);
	srv_stop(s);
}

static void
fetch_url_policy(void **st)
{
	struct srv *s = srv_start();
	struct pc_fetcher *f = pc_fetcher_new(s->base);
	struct result r = { 0 };
	char err[128];
	static const char *refused[] = {
		"http://192.0.2.1/jwks",	/* plain http off the host */
		"http://example.com/jwks",
		"http://127.0.0.1.example.com/jwks",
		"http://[::2]/jwks",
		"ftp://127.0.0.1/jwks",
		"file:///etc/passwd",
		"gopher://127.0.0.1/",
		"https://user:secret@example.com/jwks",
		"https://user@example.com/jwks",
		"/relative/jwks",
		"not a url",
		"",
	};
	static const char *allowed[] = {
		"https://example.com/.well-known/jwks.json",
		"HTTPS://Example.COM:8443/jwks",
		"http://127.0.0.1:1/jwks",
		"http://127.9.9.9/jwks",
		"http://[::1]:8080/jwks",
		"http://localhost:8080/jwks",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (pc_fetch_url_check(refused[i], err, sizeof(err)) !=
		    PC_E_DENIED)
			fail_msg("accepted: %s", refused[i]);
		assert_true(err[0] != '\0');
		assert_null(strstr(err, "secret"));
		/* Refused before any connection: done is never called. */
		assert_int_equal(pc_fetch_get(f, refused[i], 1024, 5, on_done,
		    &r), PC_E_DENIED);
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (pc_fetch_url_check(allowed[i], err, sizeof(err)) != 0)
			fail_msg("refused: %s (%s)", allowed[i], err);
	assert_int_equal(pc_fetch_get(f, NULL, 1024, 5, on_done, &r),
	    PC_E_INVAL);
	assert_int_equal(pc_fetch_get(f, url(s, "/jwks"), 0, 5, on_done, &r),
	    PC_E_INVAL);
	assert_int_equal(pc_fetch_pending(f), 0);
	run_until(s, NULL, 50);
	assert_int_equal(r.done, 0);
	assert_int_equal(s->n_jwks, 0);
	pc_fetcher_free(f);
	pc_fetcher_free(NULL);
	srv_stop(s);
}

static void
fetch_size_cap(void **st)
{
	struct srv *s = srv_start();
	struct pc_fetcher *f = pc_fetcher_new(s->base);
	struct result r = { 0 }, r2 = { 0 };

	(void)st;
	assert_int_equal(pc_fetch_get(f, url(s, "/big"), PC_MAX_JWKS_BYTES, 5,
	    on_done, &r), 0);
	assert_int_equal(pc_fetch_get(f, url(s, "/bigchunk"),
	    PC_MAX_JWKS_BYTES, 5, on_done, &r2), 0);
	run_until(s, &r.done, 5000);
	run_until(s, &r2.done, 5000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, PC_E_LIMIT);
	assert_int_equal(r2.done, 1);
	assert_int_equal(r2.rc, PC_E_LIMIT);
	assert_int_equal(s->n_big, 2);
	pc_fetcher_free(f);
	srv_stop(s);
}

static void
fetch_no_redirect(void **st)
{
	struct srv *s = srv_start();
	struct pc_fetcher *f = pc_fetcher_new(s->base);
	struct result r = { 0 };

	(void)st;
	assert_int_equal(pc_fetch_get(f, url(s, "/redir"), 1024, 5, on_done,
	    &r), 0);
	run_until(s, &r.done, 5000);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.status, 302);
	run_until(s, NULL, 100);
	assert_int_equal(s->n_target, 0);
	pc_fetcher_free(f);
	srv_stop(s);
}

static void
fetch_timeout_and_abort(void **st)
{
	struct srv *s = srv_start();
	struct pc_fetcher *f = pc_fetcher_new(s->base);
	struct result r = { 0 }, r2 = { 0 };
	uint64_t t0 = pc_now_ms();

	(void)st;
	assert_int_equal(pc_fetch_get(f, url(s, "/hang"), 1024, 1, on_done,
	    &r), 0);
	run_until(s, &r.done, 5000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, PC_E_TIMEOUT);
	assert_true(pc_now_ms() - t0 < 3000);

	/* Freed with a transfer in flight: no callback, nothing leaks. */
	assert_int_equal(pc_fetch_get(f, url(s, "/hang"), 1024, 5, on_done,
	    &r2), 0);
	run_until(s, NULL, 100);
	pc_fetcher_free(f);
	run_until(s, NULL, 50);
	assert_int_equal(r2.done, 0);
	srv_stop(s);
}

/* ---- JWKS over HTTP ------------------------------------------------------ */

struct eckey {
	EVP_PKEY *pkey;
	char kid[16];
	char jwk[512];
};

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
eckey_make(struct eckey *k, const char *kid)
{
	BIGNUM *x = NULL, *y = NULL;
	unsigned char bx[32], by[32];
	char sx[64], sy[64];

	k->pkey = EVP_EC_gen("P-256");
	assert_non_null(k->pkey);
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	assert_int_equal(EVP_PKEY_get_bn_param(k->pkey,
	    OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(k->pkey,
	    OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
	BN_bn2binpad(x, bx, 32);
	BN_bn2binpad(y, by, 32);
	b64u(bx, 32, sx, sizeof(sx));
	b64u(by, 32, sy, sizeof(sy));
	snprintf(k->jwk, sizeof(k->jwk), "{\"kty\":\"EC\",\"kid\":\"%s\","
	    "\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", kid, sx, sy);
	BN_free(x);
	BN_free(y);
}

/* An ES256 token for issuer iss, valid now; malloc'ed. */
static char *
eckey_token(const struct eckey *k, const char *iss)
{
	char hdr[128], pl[512], h64[256], p64[1024], s64[128], *tok;
	unsigned char der[128], raw[64];
	size_t derlen = sizeof(der), n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const unsigned char *p = der;
	ECDSA_SIG *es;
	char input[1400];

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", k->kid);
	snprintf(pl, sizeof(pl), "{\"iss\":\"%s\",\"aud\":\"" RES "\","
	    "\"sub\":\"bob\",\"exp\":%lld}", iss, (long long)time(NULL) + 300);
	b64u(hdr, strlen(hdr), h64, sizeof(h64));
	b64u(pl, strlen(pl), p64, sizeof(p64));
	snprintf(input, sizeof(input), "%s.%s", h64, p64);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
	    k->pkey), 1);
	assert_int_equal(EVP_DigestSign(ctx, der, &derlen,
	    (unsigned char *)input, strlen(input)), 1);
	EVP_MD_CTX_free(ctx);
	es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	assert_non_null(es);
	BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
	ECDSA_SIG_free(es);
	b64u(raw, 64, s64, sizeof(s64));
	n = strlen(input) + strlen(s64) + 2;
	tok = malloc(n);
	snprintf(tok, n, "%s.%s", input, s64);
	return tok;
}

static int
jwt_ok(struct pc_jwt *j, const char *tok, const char **reason)
{
	struct pc_principal p;

	return pc_jwt_check(j, tok, (int64_t)time(NULL), &p, reason);
}

static void
base_conf(struct pc_auth_conf *c, struct srv *s)
{
	memset(c, 0, sizeof(*c));
	c->issuer = s->origin;
	c->resource = RES;
	c->leeway_s = 60;
}

static void
wait_ready(struct srv *s, struct pc_jwt *j, unsigned ms)
{
	uint64_t end = pc_now_ms() + ms;

	while (!pc_jwt_ready(j) && pc_now_ms() < end)
		run_until(s, NULL, 10);
}

static void
jwks_uri_load_refetch_ratelimit(void **st)
{
	struct srv *s = srv_start();
	struct eckey a, b, c;
	struct pc_auth_conf conf;
	struct pc_jwt *j = NULL;
	char err[256], jwks_uri[128];
	const char *reason = NULL;
	char *ta, *tb, *tc;

	(void)st;
	eckey_make(&a, "a");
	eckey_make(&b, "b");
	eckey_make(&c, "c");
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[%s]}", a.jwk);
	base_conf(&conf, s);
	snprintf(jwks_uri, sizeof(jwks_uri), "%s/jwks", s->origin);
	conf.jwks_uri = jwks_uri;
	assert_int_equal(pc_jwt_new(s->base, &conf, &j, err, sizeof(err)), 0);
	assert_false(pc_jwt_ready(j));
	ta = eckey_token(&a, s->origin);
	tb = eckey_token(&b, s->origin);
	tc = eckey_token(&c, s->origin);
	/* No key set yet: unavailable, not a bad token. */
	assert_int_equal(jwt_ok(j, ta, &reason), PC_E_UNAVAIL);
	assert_string_equal(reason, "jwt.no_keys");
	wait_ready(s, j, 5000);
	assert_true(pc_jwt_ready(j));
	assert_int_equal(s->n_jwks, 1);
	assert_int_equal(jwt_ok(j, ta, &reason), 0);

	/* The issuer rotates in key b. */
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[%s,%s]}", a.jwk, b.jwk);
	assert_int_equal(jwt_ok(j, tb, &reason), PC_E_DENIED);
	assert_string_equal(reason, "jwt.kid_unknown");
	uint64_t end = pc_now_ms() + 5000;
	while (jwt_ok(j, tb, &reason) != 0 && pc_now_ms() < end)
		run_until(s, NULL, 10);
	assert_int_equal(jwt_ok(j, tb, &reason), 0);
	assert_int_equal(s->n_jwks, 2);
	assert_int_equal(jwt_ok(j, ta, &reason), 0);

	/* A flood of unknown kids: no further fetch within the window. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(jwt_ok(j, tc, &reason), PC_E_DENIED);
		assert_string_equal(reason, "jwt.kid_unknown");
		run_until(s, NULL, 5);
	}
	run_until(s, NULL, 200);
	assert_int_equal(s->n_jwks, 2);

	free(ta);
	free(tb);
	free(tc);
	pc_jwt_free(j);
	EVP_PKEY_free(a.pkey);
	EVP_PKEY_free(b.pkey);
	EVP_PKEY_free(c.pkey);
	srv_stop(s);
}

static void
jwks_bad_fetch_keeps_nothing_or_old(void **st)
{
	struct srv *s = srv_start();
	struct eckey a, b;
	struct pc_auth_conf conf;
	struct pc_jwt *j = NULL;
	char err[256], uri[128];
	const char *reason;
	char *ta, *tb;

	(void)st;
	eckey_make(&a, "a");
	eckey_make(&b, "b");
	base_conf(&conf, s);
	conf.jwks_uri = uri;

	/* Oversized JWKS, and one behind a redirect: never loaded. */
	const char *paths[] = { "/big", "/bigchunk", "/redir" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(uri, sizeof(uri), "%s%s", s->origin, paths[i]);
		assert_int_equal(pc_jwt_new(s->base, &conf, &j, err,
		    sizeof(err)), 0);
		run_until(s, NULL, 300);
		assert_false(pc_jwt_ready(j));
		pc_jwt_free(j);
		j = NULL;
	}
	assert_int_equal(s->n_big, 2);
	assert_int_equal(s->n_target, 0);

	/* A good set, then a refetch that brings garbage: the old set stays. */
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[%s]}", a.jwk);
	snprintf(uri, sizeof(uri), "%s/jwks", s->origin);
	assert_int_equal(pc_jwt_new(s->base, &conf, &j, err, sizeof(err)), 0);
	wait_ready(s, j, 5000);
	assert_true(pc_jwt_ready(j));
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[{\"kty\":\"oct\"}]}");
	ta = eckey_token(&a, s->origin);
	tb = eckey_token(&b, s->origin);
	assert_int_equal(jwt_ok(j, tb, &reason), PC_E_DENIED);
	assert_string_equal(reason, "jwt.kid_unknown");
	uint64_t end = pc_now_ms() + 5000;
	while (s->n_jwks < 2 && pc_now_ms() < end)
		run_until(s, NULL, 10);
	run_until(s, NULL, 100);
	assert_int_equal(s->n_jwks, 2);
	assert_true(pc_jwt_ready(j));
	assert_int_equal(jwt_ok(j, ta, &reason), 0);
	free(ta);
	free(tb);
	pc_jwt_free(j);

	/* Plain http off the host is a configuration error. */
	conf.jwks_uri = "http://192.0.2.1/jwks";
	assert_int_equal(pc_jwt_new(s->base, &conf, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_null(j);
	assert_non_null(strstr(err, "loopback"));
	conf.jwks_uri = "https://u:p@example.com/jwks";
	assert_int_equal(pc_jwt_new(s->base, &conf, &j, err, sizeof(err)),
	    PC_E_CONFIG);
	EVP_PKEY_free(a.pkey);
	EVP_PKEY_free(b.pkey);
	srv_stop(s);
}

static void
jwks_from_issuer_metadata(void **st)
{
	struct srv *s = srv_start();
	struct eckey a;
	struct pc_auth_conf conf;
	struct pc_jwt *j = NULL;
	char err[256];
	const char *reason;
	char *ta;

	(void)st;
	eckey_make(&a, "a");
	snprintf(s->jwks, sizeof(s->jwks), "{\"keys\":[%s]}", a.jwk);
	base_conf(&conf, s);
	assert_int_equal(pc_jwt_new(s->base, &conf, &j, err, sizeof(err)), 0);
	wait_ready(s, j, 5000);
	assert_true(pc_jwt_ready(j));
	assert_int_equal(s->n_meta, 1);
	assert_int_equal(s->n_jwks, 1);
	ta = eckey_token(&a, s->origin);
	assert_int_equal(jwt_ok(j, ta, &reason), 0);
	free(ta);
	pc_jwt_free(j);

	/* Metadata naming another issuer is not followed. */
	snprintf(s->meta_issuer, sizeof(s->meta_issuer), "https://evil.example");
	assert_int_equal(pc_jwt_new(s->base, &conf, &j, err, sizeof(err)), 0);
	run_until(s, NULL, 300);
	assert_int_equal(s->n_meta, 2);
	assert_int_equal(s->n_jwks, 1);
	assert_false(pc_jwt_ready(j));
	pc_jwt_free(j);
	EVP_PKEY_free(a.pkey);
	srv_stop(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fetch_get_ok),
		cmocka_unit_test(fetch_url_policy),
		cmocka_unit_test(fetch_size_cap),
		cmocka_unit_test(fetch_no_redirect),
		cmocka_unit_test(fetch_timeout_and_abort),
		cmocka_unit_test(jwks_uri_load_refetch_ratelimit),
		cmocka_unit_test(jwks_bad_fetch_keeps_nothing_or_old),
		cmocka_unit_test(jwks_from_issuer_metadata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
