/*
 * Unit tests: src/http/tls.c over real sockets.
 *
 * The server (evhttp + pc_tls on 127.0.0.1, ephemeral port) runs its event
 * loop in the test's main thread; an OpenSSL client with blocking sockets
 * runs in a second thread and records outcomes, which the main thread
 * asserts once the client is done (cmocka asserts only in the main thread).
 * The client asks the loop thread to reload through a pipe, so pc_tls is
 * only ever touched by the loop thread, as in the gateway.
 *
 * Certificates come from tests/tls/make-certs.sh (PC_SOURCE_DIR, default
 * ".", locates it) in a fresh temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/tls.h"
#include "lib/errors.h"
#include "lib/util.h"

#define NFILES 32
static char certdir[PATH_MAX];
static struct {
	const char *name;
	char path[PATH_MAX + 64];
} files[NFILES];
static size_t nfiles;

/* Absolute path of a file in the generated PKI. Read-only after setup, so
 * both threads may call it. */
static const char *
cf(const char *name)
{
	size_t i;

	for (i = 0; i < nfiles; i++)
		if (strcmp(files[i].name, name) == 0)
			return files[i].path;
	abort();
}

/*
 * A client certificate from the test CA whose only SAN URI holds an
 * embedded NUL (the openssl CLI cannot make one): a string compare in C
 * would see only "spiffe://test.example/agent/a".
 */
static int
make_nul_cert(void)
{
	static const char uri[] = "spiffe://test.example/agent/a\0.evil";
	EVP_PKEY *cakey = NULL, *key = NULL;
	X509 *ca = NULL, *x = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *g = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	X509_NAME *nm;
	FILE *f = NULL;
	int rc = -1;

	if ((f = fopen(cf("ca.crt"), "r")) == NULL ||
	    (ca = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		goto out;
	fclose(f);
	if ((f = fopen(cf("ca.key"), "r")) == NULL ||
	    (cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
		goto out;
	fclose(f);
	f = NULL;
	key = EVP_EC_gen("P-256");
	x = X509_new();
	gens = sk_GENERAL_NAME_new_null();
	g = GENERAL_NAME_new();
	ia5 = ASN1_IA5STRING_new();
	if (key == NULL || x == NULL || gens == NULL || g == NULL ||
	    ia5 == NULL ||
	    ASN1_STRING_set(ia5, uri, (int)sizeof(uri) - 1) != 1)
		goto out;
	GENERAL_NAME_set0_value(g, GEN_URI, ia5);
	ia5 = NULL;
	if (sk_GENERAL_NAME_push(gens, g) <= 0)
		goto out;
	g = NULL;
	nm = X509_get_subject_name(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)"nul-agent", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	if (X509_set_pubkey(x, key) != 1 ||
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0) != 1 ||
	    X509_sign(x, cakey, EVP_sha256()) <= 0)
		goto out;
	if ((f = fopen(cf("nul-client.crt"), "w")) == NULL ||
	    PEM_write_X509(f, x) != 1)
		goto out;
	fclose(f);
	if ((f = fopen(cf("nul-client.key"), "w")) == NULL ||
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	return rc;
}

static int
group_setup(void **st)
{
	static const char *names[] = {
		"ca.crt", "server.crt", "server.key", "server2.crt",
		"server2.key", "client.crt", "client.key", "dns-client.crt",
		"dns-client.key", "cn-client.crt", "cn-client.key",
		"cnuri-client.crt", "cnuri-client.key",
		"other-ca.crt", "other-client.crt", "other-client.key",
		"key-0644.key", "key-0640.key", "missing.key",
		"nul-client.crt", "nul-client.key", "ca.key",
	};
	const char *src = getenv("PC_SOURCE_DIR");
	char cmd[8 * PATH_MAX];
	size_t i;

	(void)st;
	snprintf(certdir, sizeof(certdir), "/tmp/pc-test-tls-XXXXXX");
	if (mkdtemp(certdir) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/tests/tls/make-certs.sh '%s'",
	    src != NULL ? src : ".", certdir);
	if (system(cmd) != 0)
		return -1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		files[i].name = names[i];
		if ((size_t)snprintf(files[i].path, sizeof(files[i].path),
		    "%s/%s", certdir, names[i]) >= sizeof(files[i].path))
			return -1;
	}
	nfiles = i;
	/* Copies of the server key with loose modes. */
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0644 '%s' && "
	    "cp '%s' '%s' && chmod 0640 '%s'", cf("server.key"),
	    cf("key-0644.key"), cf("key-0644.key"), cf("server.key"),
	    cf("key-0640.key"), cf("key-0640.key"));
	if (system(cmd) != 0)
		return -1;
	return make_nul_cert();
}

static int
group_teardown(void **st)
{
	char cmd[PATH_MAX + 16];

	(void)st;
	if (certdir[0] == '\0')
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
conf_init(struct pc_tls_conf *c, const char *cert, const char *key)
{
	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->cert_file = (char *)cf(cert);
	c->key_file = (char *)cf(key);
	c->min_version = 12;
}

/* ---- server ---------------------------------------------------------- */

struct srv {
	struct event_base *base;
	struct evhttp *http;
	struct pc_tls *tls;
	struct event *cmd_ev;
	int cmd[2];		/* client -> loop: 'R' reload, 'Q' done */
	int ack[2];		/* loop -> client: reload result */
	int port;
	const struct pc_tls_conf *reload_conf;
};

/* Reply with the peer identity as the loop thread sees it. */
static void
on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	char id[256];
	int rc;

	(void)arg;
	rc = pc_tls_peer_identity(evhttp_request_get_connection(req), id,
	    sizeof(id), NULL);
	if (rc == 0)
		evbuffer_add_printf(b, "id=%s", id);
	else
		evbuffer_add_printf(b, "noid=%d", rc);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
on_cmd(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	char c, err[512];
	int rc;

	(void)what;
	if (read(fd, &c, 1) != 1 || c == 'Q') {
		event_base_loopbreak(s->base);
		return;
	}
	rc = pc_tls_reload(s->tls, s->reload_conf, err, sizeof(err));
	if (write(s->ack[1], &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
		abort();
}

static void
srv_start(struct srv *s, const struct pc_tls_conf *conf)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char err[512] = "";
	int rc;

	memset(s, 0, sizeof(*s));
	rc = pc_tls_new(conf, &s->tls, err, sizeof(err));
	if (rc != 0)
		fail_msg("pc_tls_new: %d %s", rc, err);
	s->base = event_base_new();
	s->http = evhttp_new(s->base);
	assert_non_null(s->base);
	assert_non_null(s->http);
	pc_tls_attach(s->tls, s->http);
	evhttp_set_gencb(s->http, on_request, s);
	bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	assert_non_null(bs);
	assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &sl), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pipe(s->cmd), 0);
	assert_int_equal(pipe(s->ack), 0);
	s->cmd_ev = event_new(s->base, s->cmd[0], EV_READ | EV_PERSIST,
	    on_cmd, s);
	assert_non_null(s->cmd_ev);
	event_add(s->cmd_ev, NULL);
}

static void
srv_stop(struct srv *s)
{
	event_free(s->cmd_ev);
	evhttp_free(s->http);
	pc_tls_free(s->tls);
	event_base_free(s->base);
	close(s->cmd[0]);
	close(s->cmd[1]);
	close(s->ack[0]);
	close(s->ack[1]);
}

struct run {
	struct srv *srv;
	void (*fn)(struct srv *, void *);
	void *arg;
};

static void *
client_thread(void *p)
{
	struct run *r = p;
	char q = 'Q';

	r->fn(r->srv, r->arg);
	if (write(r->srv->cmd[1], &q, 1) != 1)
		abort();
	return NULL;
}

/* Run fn in a client thread while this thread serves. */
static void
srv_run(struct srv *s, void (*fn)(struct srv *, void *), void *arg)
{
	struct run r = { s, fn, arg };
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, client_thread, &r), 0);
	event_base_dispatch(s->base);
	assert_int_equal(pthread_join(th, NULL), 0);
}

/* From the client thread: have the loop reload with conf; its result. */
static int
srv_reload(struct srv *s, const struct pc_tls_conf *conf)
{
	char c = 'R';
	int rc;

	s->reload_conf = conf;
	if (write(s->cmd[1], &c, 1) != 1 ||
	    read(s->ack[0], &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
		abort();
	return rc;
}

/* ---- client ---------------------------------------------------------- */

struct copts {
	int minv, maxv;			/* 0: library default */
	const char *ciphers;		/* TLS 1.2 cipher list, or NULL */
	const char *cert, *key;		/* names in the PKI, or NULL */
	bool weak;			/* security level 0 (TLS 1.1) */
	SSL_SESSION *resume;
};

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

static void
cl_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Connect and handshake; 0 when the client-side handshake completed, else
 * the OpenSSL reason code of the failure (-1 if there is none). */
static int
cl_open(int port, const struct copts *o, struct conn *c)
{
	struct sockaddr_in sin;
	struct timeval tv = { 5, 0 };
	int reason;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		goto fail;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		goto fail;
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL)
		goto fail;
	if (o->weak) {
		SSL_CTX_set_security_level(c->ctx, 0);
		SSL_CTX_set_cipher_list(c->ctx, "DEFAULT:@SECLEVEL=0");
	}
	if (o->minv != 0)
		SSL_CTX_set_min_proto_version(c->ctx, o->minv);
	if (o->maxv != 0)
		SSL_CTX_set_max_proto_version(c->ctx, o->maxv);
	if (o->ciphers != NULL &&
	    SSL_CTX_set_cipher_list(c->ctx, o->ciphers) != 1)
		goto fail;
	if (SSL_CTX_load_verify_locations(c->ctx, cf("ca.crt"), NULL) != 1)
		goto fail;
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (o->cert != NULL &&
	    (SSL_CTX_use_certificate_chain_file(c->ctx, cf(o->cert)) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c->ctx, cf(o->key),
	    SSL_FILETYPE_PEM) != 1))
		goto fail;
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL)
		goto fail;
	SSL_set1_host(c->ssl, "localhost");
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	if (o->resume != NULL)
		SSL_set_session(c->ssl, o->resume);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1)
		goto fail;
	return 0;
fail:
	reason = ERR_GET_REASON(ERR_peek_last_error());
	ERR_clear_error();
	cl_close(c);
	return reason > 0 ? reason : -1;
}

/* GET / on c; 0 and the body in out when a 200 came back. */
static int
cl_get(struct conn *c, char *out, size_t outlen)
{
	static const char req[] =
	    "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	char buf[8192];
	size_t len = 0, clen = 0, hlen;
	const char *h, *p;
	int n;

	out[0] = '\0';
	if (c->ssl == NULL || SSL_write(c->ssl, req, sizeof(req) - 1) <= 0)
		goto fail;
	for (;;) {
		n = SSL_read(c->ssl, buf + len, (int)(sizeof(buf) - 1 - len));
		if (n <= 0)
			goto fail;
		len += (size_t)n;
		buf[len] = '\0';
		h = strstr(buf, "\r\n\r\n");
		if (h == NULL) {
			if (len == sizeof(buf) - 1)
				goto fail;
			continue;
		}
		hlen = (size_t)(h - buf) + 4;
		p = strcasestr(buf, "\r\nContent-Length: ");
		if (p == NULL || p > h)
			goto fail;
		clen = 0;
		for (p += 18; *p >= '0' && *p <= '9' && clen < 4096; p++)
			clen = clen * 10 + (size_t)(*p - '0');
		if (len >= hlen + clen)
			break;
		if (len == sizeof(buf) - 1)
			goto fail;
	}
	if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 || clen >= outlen)
		goto fail;
	memcpy(out, buf + hlen, clen);
	out[clen] = '\0';
	return 0;
fail:
	ERR_clear_error();
	return -1;
}

static void
peer_cn(struct conn *c, char *out, size_t outlen)
{
	X509 *x = SSL_get0_peer_certificate(c->ssl);

	out[0] = '\0';
	if (x != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, out, (int)outlen);
}

/* ---- tests ----------------------------------------------------------- */

#define NCASE 16
struct cases {
	struct copts o[NCASE];
	size_t n;
	int rc[NCASE];
	char body[NCASE][256];
	int version[NCASE];
	char cipher[NCASE][64];
	int reason[NCASE];		/* cl_open's failure reason */
};

/* Every case is one fresh connection and one request. */
static void
run_cases(struct srv *s, void *arg)
{
	struct cases *cs = arg;
	struct conn c;
	size_t i;

	for (i = 0; i < cs->n; i++) {
		cs->rc[i] = -1;
		cs->reason[i] = cl_open(s->port, &cs->o[i], &c);
		if (cs->reason[i] != 0)
			continue;
		cs->version[i] = SSL_version(c.ssl);
		snprintf(cs->cipher[i], sizeof(cs->cipher[i]), "%s",
		    SSL_get_cipher_name(c.ssl));
		cs->rc[i] = cl_get(&c, cs->body[i], sizeof(cs->body[i]));
		cl_close(&c);
	}
}

static void
versions_and_ciphers(void **st)
{
	struct pc_tls_conf conf;
	struct cases cs;
	struct srv s;

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	srv_start(&s, &conf);
	memset(&cs, 0, sizeof(cs));
	cs.o[0] = (struct copts){ .minv = TLS1_2_VERSION,
	    .maxv = TLS1_2_VERSION };
	cs.o[1] = (struct copts){ .minv = TLS1_3_VERSION };
	cs.o[2] = (struct copts){ 0 };
	cs.o[3] = (struct copts){ .weak = true, .minv = TLS1_1_VERSION,
	    .maxv = TLS1_1_VERSION };
	cs.o[4] = (struct copts){ .weak = true, .minv = TLS1_VERSION,
	    .maxv = TLS1_VERSION };
	/* RSA key exchange (CBC, then GCM), and ECDHE with CBC. */
	cs.o[5] = (struct copts){ .maxv = TLS1_2_VERSION,
	    .ciphers = "AES128-SHA" };
	cs.o[6] = (struct copts){ .maxv = TLS1_2_VERSION,
	    .ciphers = "AES128-GCM-SHA256" };
	cs.o[7] = (struct copts){ .maxv = TLS1_2_VERSION,
	    .ciphers = "ECDHE-RSA-AES128-SHA" };
	cs.o[8] = (struct copts){ .maxv = TLS1_2_VERSION,
	    .ciphers = "ECDHE-RSA-AES256-SHA384" };
	cs.o[9] = (struct copts){ .maxv = TLS1_2_VERSION, .weak = true,
	    .ciphers = "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0" };
	cs.o[10] = (struct copts){ .maxv = TLS1_2_VERSION,
	    .ciphers = "ECDHE-RSA-CHACHA20-POLY1305" };
	cs.n = 11;
	srv_run(&s, run_cases, &cs);
	srv_stop(&s);

	assert_int_equal(cs.rc[0], 0);
	assert_int_equal(cs.version[0], TLS1_2_VERSION);
	assert_string_equal(cs.body[0], "noid=-6");
	assert_non_null(strstr(cs.cipher[0], "ECDHE-RSA-"));
	assert_non_null(strstr(cs.cipher[0], "GCM"));
	assert_int_equal(cs.rc[1], 0);
	assert_int_equal(cs.version[1], TLS1_3_VERSION);
	assert_int_equal(cs.rc[2], 0);
	assert_int_equal(cs.version[2], TLS1_3_VERSION);
	/* Refused for the version itself, not only for want of a suite. */
	assert_int_equal(cs.rc[3], -1);
	assert_int_equal(cs.reason[3], SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
	assert_int_equal(cs.rc[4], -1);
	assert_int_equal(cs.reason[4], SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
	assert_int_equal(cs.rc[5], -1);
	assert_int_equal(cs.rc[6], -1);
	assert_int_equal(cs.rc[7], -1);
	assert_int_equal(cs.rc[8], -1);
	assert_int_equal(cs.rc[9], -1);
	assert_int_equal(cs.rc[10], 0);
	assert_string_equal(cs.cipher[10], "ECDHE-RSA-CHACHA20-POLY1305");
}

static void
tls13_only(void **st)
{
	struct pc_tls_conf conf;
	struct cases cs;
	struct srv s;

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	conf.min_version = 13;
	srv_start(&s, &conf);
	memset(&cs, 0, sizeof(cs));
	cs.o[0] = (struct copts){ .maxv = TLS1_2_VERSION };
	cs.o[1] = (struct copts){ 0 };
	cs.n = 2;
	srv_run(&s, run_cases, &cs);
	srv_stop(&s);
	assert_int_equal(cs.rc[0], -1);
	assert_int_equal(cs.reason[0], SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
	assert_int_equal(cs.rc[1], 0);
	assert_int_equal(cs.version[1], TLS1_3_VERSION);
}

static void
bad_files(void **st)
{
	struct pc_tls_conf conf;
	struct pc_tls *t = NULL;
	char err[512];

	(void)st;
	conf_init(&conf, "server.crt", "key-0644.key");
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_null(t);
	assert_non_null(strstr(err, "readable by group or others "
	    "(chmod 600)"));
	assert_non_null(strstr(err, cf("key-0644.key")));
	assert_null(strstr(err, "PRIVATE"));

	conf_init(&conf, "server.crt", "key-0640.key");
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "chmod 600"));

	conf_init(&conf, "server.crt", "server2.key");
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "does not match"));

	conf_init(&conf, "server.crt", "missing.key");
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "cannot open"));

	/* A key where the certificate should be. */
	conf_init(&conf, "server.key", "server.key");
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "tls.cert"));
	assert_null(strstr(err, "PRIVATE"));

	/* A certificate where the key should be. */
	conf_init(&conf, "server.crt", "server.crt");
	chmod(cf("server.crt"), 0600);
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	chmod(cf("server.crt"), 0644);
	assert_non_null(strstr(err, "no usable PEM private key"));

	/* Client auth without a CA bundle. */
	conf_init(&conf, "server.crt", "server.key");
	conf.client_auth = PC_CLIENT_AUTH_REQUIRED;
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "client_ca"));

	conf_init(&conf, "server.crt", "server.key");
	conf.min_version = 11;
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_null(t);
}

static void
mtls_required(void **st)
{
	struct pc_tls_conf conf;
	struct cases cs;
	struct srv s;
	size_t i;

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	conf.client_ca_file = (char *)cf("ca.crt");
	conf.client_auth = PC_CLIENT_AUTH_REQUIRED;
	srv_start(&s, &conf);
	memset(&cs, 0, sizeof(cs));
	/* The same six cases over TLS 1.3 (0..5) and TLS 1.2 (6..11). */
	for (i = 0; i < 2; i++) {
		int v = i == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
		struct copts *o = &cs.o[i * 7];

		o[0] = (struct copts){ .minv = v, .maxv = v };
		o[1] = (struct copts){ .minv = v, .maxv = v,
		    .cert = "other-client.crt", .key = "other-client.key" };
		o[2] = (struct copts){ .minv = v, .maxv = v,
		    .cert = "client.crt", .key = "client.key" };
		o[3] = (struct copts){ .minv = v, .maxv = v,
		    .cert = "cn-client.crt", .key = "cn-client.key" };
		o[4] = (struct copts){ .minv = v, .maxv = v,
		    .cert = "dns-client.crt", .key = "dns-client.key" };
		/* The server's own certificate is not a client one. */
		o[5] = (struct copts){ .minv = v, .maxv = v,
		    .cert = "server.crt", .key = "server.key" };
		o[6] = (struct copts){ .minv = v, .maxv = v,
		    .cert = "cnuri-client.crt", .key = "cnuri-client.key" };
	}
	cs.n = 14;
	srv_run(&s, run_cases, &cs);
	srv_stop(&s);
	for (i = 0; i < 14; i += 7) {
		assert_int_equal(cs.rc[i + 0], -1);
		assert_int_equal(cs.rc[i + 1], -1);
		assert_int_equal(cs.rc[i + 2], 0);
		assert_string_equal(cs.body[i + 2],
		    "id=spiffe://test.example/agent/a");
		assert_int_equal(cs.rc[i + 3], 0);
		assert_string_equal(cs.body[i + 3], "id=cn-only-agent");
		assert_int_equal(cs.rc[i + 4], 0);
		assert_string_equal(cs.body[i + 4], "id=agent-b.test.example");
		assert_int_equal(cs.rc[i + 5], -1);
		/* A CN shaped like a URI is no identity: a CA that lets
		 * users pick their CN must not mint SAN-URI look-alikes. */
		assert_int_equal(cs.rc[i + 6], 0);
		assert_string_equal(cs.body[i + 6], "noid=-6");
	}
}

static void
mtls_optional(void **st)
{
	struct pc_tls_conf conf;
	struct cases cs;
	struct srv s;

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	conf.client_ca_file = (char *)cf("ca.crt");
	conf.client_auth = PC_CLIENT_AUTH_OPTIONAL;
	srv_start(&s, &conf);
	memset(&cs, 0, sizeof(cs));
	cs.o[0] = (struct copts){ 0 };
	cs.o[1] = (struct copts){ .cert = "client.crt", .key = "client.key" };
	cs.o[2] = (struct copts){ .cert = "other-client.crt",
	    .key = "other-client.key" };
	cs.o[3] = (struct copts){ .maxv = TLS1_2_VERSION };
	cs.o[4] = (struct copts){ .cert = "nul-client.crt",
	    .key = "nul-client.key" };
	cs.n = 5;
	srv_run(&s, run_cases, &cs);
	srv_stop(&s);
	assert_int_equal(cs.rc[0], 0);
	assert_string_equal(cs.body[0], "noid=-6");
	assert_int_equal(cs.rc[1], 0);
	assert_string_equal(cs.body[1], "id=spiffe://test.example/agent/a");
	/* A certificate that is sent must verify, even when optional. */
	assert_int_equal(cs.rc[2], -1);
	assert_int_equal(cs.rc[3], 0);
	assert_string_equal(cs.body[3], "noid=-6");
	/* Verified, but its first SAN URI has a NUL: no identity at all,
	 * and no fallback to the CN. */
	assert_int_equal(cs.rc[4], 0);
	assert_string_equal(cs.body[4], "noid=-6");
}

static void
no_client_auth(void **st)
{
	struct pc_tls_conf conf;
	struct cases cs;
	struct srv s;
	char id[64];

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	srv_start(&s, &conf);
	memset(&cs, 0, sizeof(cs));
	/* A client certificate is not asked for, so none is seen. */
	cs.o[0] = (struct copts){ .cert = "client.crt", .key = "client.key" };
	cs.n = 1;
	srv_run(&s, run_cases, &cs);
	srv_stop(&s);
	assert_int_equal(cs.rc[0], 0);
	assert_string_equal(cs.body[0], "noid=-6");
	assert_int_equal(pc_tls_peer_identity(NULL, id, sizeof(id), NULL),
	    PC_E_NOTFOUND);
}

struct reload_res {
	const struct pc_tls_conf *good, *bad;
	int r_good, r_bad;
	int a1, a2, b, c;
	char cn_a[64], cn_b[64], cn_c[64], body_a2[256];
};

static void
run_reload(struct srv *s, void *arg)
{
	struct reload_res *r = arg;
	struct copts o = { 0 };
	struct conn a, b, c;
	char body[256];

	r->a1 = r->a2 = r->b = r->c = -1;
	if (cl_open(s->port, &o, &a) != 0)
		return;
	peer_cn(&a, r->cn_a, sizeof(r->cn_a));
	r->a1 = cl_get(&a, body, sizeof(body));
	r->r_good = srv_reload(s, r->good);
	if (cl_open(s->port, &o, &b) == 0) {
		peer_cn(&b, r->cn_b, sizeof(r->cn_b));
		r->b = cl_get(&b, body, sizeof(body));
		cl_close(&b);
	}
	/* The connection from before the reload still serves. */
	r->a2 = cl_get(&a, r->body_a2, sizeof(r->body_a2));
	cl_close(&a);
	r->r_bad = srv_reload(s, r->bad);
	if (cl_open(s->port, &o, &c) == 0) {
		peer_cn(&c, r->cn_c, sizeof(r->cn_c));
		r->c = cl_get(&c, body, sizeof(body));
		cl_close(&c);
	}
}

static void
reload(void **st)
{
	struct pc_tls_conf conf, good, bad;
	struct reload_res r;
	struct srv s;

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	conf_init(&good, "server2.crt", "server2.key");
	conf_init(&bad, "server.crt", "key-0644.key");
	srv_start(&s, &conf);
	memset(&r, 0, sizeof(r));
	r.good = &good;
	r.bad = &bad;
	srv_run(&s, run_reload, &r);
	srv_stop(&s);
	assert_int_equal(r.a1, 0);
	assert_string_equal(r.cn_a, "localhost");
	assert_int_equal(r.r_good, 0);
	assert_int_equal(r.b, 0);
	assert_string_equal(r.cn_b, "localhost-2");
	assert_int_equal(r.a2, 0);
	assert_string_equal(r.body_a2, "noid=-6");
	assert_int_equal(r.r_bad, PC_E_CONFIG);
	assert_int_equal(r.c, 0);
	assert_string_equal(r.cn_c, "localhost-2");
}

struct reneg_res {
	int first, hs, after;
};

static void
run_reneg(struct srv *s, void *arg)
{
	struct reneg_res *r = arg;
	struct copts o = { .maxv = TLS1_2_VERSION };
	struct conn c;
	char body[256];

	r->first = r->hs = r->after = -1;
	if (cl_open(s->port, &o, &c) != 0)
		return;
	r->first = cl_get(&c, body, sizeof(body));
	if (SSL_renegotiate(c.ssl) == 1)
		r->hs = SSL_do_handshake(c.ssl);
	else
		r->hs = -2;
	r->after = cl_get(&c, body, sizeof(body));
	ERR_clear_error();
	cl_close(&c);
}

static void
no_renegotiation(void **st)
{
	struct pc_tls_conf conf;
	struct reneg_res r;
	struct srv s;

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	srv_start(&s, &conf);
	srv_run(&s, run_reneg, &r);
	srv_stop(&s);
	assert_int_equal(r.first, 0);
	/* The client could start it, the server refused it. */
	assert_true(r.hs != -2);
	assert_true(r.hs <= 0 || r.after != 0);
}

struct resume_res {
	int version;
	int first, second, third;	/* request results */
	int reused2, reused3;
	bool reload_between;
	const struct pc_tls_conf *reload_conf;
};

static void
run_resume(struct srv *s, void *arg)
{
	struct resume_res *r = arg;
	struct copts o = { .minv = r->version, .maxv = r->version };
	SSL_SESSION *sess = NULL;
	struct conn c;
	char body[256];

	r->first = r->second = r->third = -1;
	if (cl_open(s->port, &o, &c) != 0)
		return;
	/* TLS 1.3 tickets arrive after the handshake: read first. */
	r->first = cl_get(&c, body, sizeof(body));
	sess = SSL_get1_session(c.ssl);
	cl_close(&c);
	o.resume = sess;
	if (cl_open(s->port, &o, &c) == 0) {
		r->reused2 = SSL_session_reused(c.ssl);
		r->second = cl_get(&c, body, sizeof(body));
		cl_close(&c);
	}
	if (r->reload_conf != NULL &&
	    srv_reload(s, r->reload_conf) == 0 &&
	    cl_open(s->port, &o, &c) == 0) {
		r->reused3 = SSL_session_reused(c.ssl);
		r->third = cl_get(&c, body, sizeof(body));
		cl_close(&c);
	}
	SSL_SESSION_free(sess);
}

static void
resumption(void **st)
{
	struct pc_tls_conf conf;
	struct resume_res r;
	struct srv s;
	int v, tickets;

	(void)st;
	for (tickets = 0; tickets < 2; tickets++) {
		for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
			conf_init(&conf, "server.crt", "server.key");
			conf.session_tickets = tickets;
			srv_start(&s, &conf);
			memset(&r, 0, sizeof(r));
			r.version = v;
			r.reload_conf = &conf;
			srv_run(&s, run_resume, &r);
			srv_stop(&s);
			assert_int_equal(r.first, 0);
			assert_int_equal(r.second, 0);
			assert_int_equal(r.reused2, tickets);
			/* A reload makes new ticket keys. */
			assert_int_equal(r.third, 0);
			assert_int_equal(r.reused3, 0);
		}
	}
}

/* The ticket keys' clock, moved forward by the client thread. */
static _Atomic uint64_t skew_ms;

static uint64_t
skewed_now(void)
{
	return pc_now_ms() + skew_ms;
}

struct age_res {
	int version;
	uint64_t late_ms;		/* how long after the ticket */
	int first, second, reused;
};

static void
run_ticket_age(struct srv *s, void *arg)
{
	struct age_res *r = arg;
	struct copts o = { .minv = r->version, .maxv = r->version };
	SSL_SESSION *sess;
	struct conn c;
	char body[256];

	r->first = r->second = -1;
	if (cl_open(s->port, &o, &c) != 0)
		return;
	r->first = cl_get(&c, body, sizeof(body));
	sess = SSL_get1_session(c.ssl);
	cl_close(&c);
	/* No handshake in between: rotation is lazy, so the next one finds
	 * keys that many periods old. */
	skew_ms = r->late_ms;
	o.resume = sess;
	if (cl_open(s->port, &o, &c) == 0) {
		r->reused = SSL_session_reused(c.ssl);
		r->second = cl_get(&c, body, sizeof(body));
		cl_close(&c);
	}
	SSL_SESSION_free(sess);
}

/* A ticket is accepted for at most two key periods (two hours), even when
 * no handshake happened in between to rotate the keys on time. */
static void
ticket_lifetime(void **st)
{
	static const struct { uint64_t late_ms; int reused; } cases[] = {
		{ 90u * 60u * 1000u, 1 },	/* previous key: accepted */
		{ 3u * 3600u * 1000u, 0 },	/* retired: full handshake */
		{ 10u * 3600u * 1000u, 0 },
	};
	struct pc_tls_conf conf;
	struct age_res r;
	struct srv s;

	(void)st;
	pc_tls_now_ms = skewed_now;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
			skew_ms = 0;
			conf_init(&conf, "server.crt", "server.key");
			conf.session_tickets = true;
			srv_start(&s, &conf);
			memset(&r, 0, sizeof(r));
			r.version = v;
			r.late_ms = cases[i].late_ms;
			srv_run(&s, run_ticket_age, &r);
			srv_stop(&s);
			assert_int_equal(r.first, 0);
			assert_int_equal(r.second, 0);
			if (r.reused != cases[i].reused)
				fail_msg("TLS 0x%x, %llu ms late: reused %d",
				    v, (unsigned long long)cases[i].late_ms,
				    r.reused);
		}
	}
	pc_tls_now_ms = pc_now_ms;
	skew_ms = 0;
}

static void
hsts(void **st)
{
	struct pc_tls_conf conf;
	struct pc_tls *t = NULL;
	char err[256], v[32];

	(void)st;
	conf_init(&conf, "server.crt", "server.key");
	assert_int_equal(pc_tls_new(&conf, &t, err, sizeof(err)), 0);
	assert_int_equal(pc_tls_hsts(t, v, sizeof(v)), PC_E_NOTFOUND);
	conf.hsts_max_age_s = 31536000;
	assert_int_equal(pc_tls_reload(t, &conf, err, sizeof(err)), 0);
	assert_int_equal(pc_tls_hsts(t, v, sizeof(v)), 0);
	assert_string_equal(v, "max-age=31536000");
	assert_int_equal(pc_tls_hsts(t, v, 8), PC_E_LIMIT);
	/* A failed reload keeps the old settings too. */
	conf.hsts_max_age_s = 60;
	conf.key_file = (char *)cf("key-0644.key");
	assert_int_equal(pc_tls_reload(t, &conf, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_int_equal(pc_tls_hsts(t, v, sizeof(v)), 0);
	assert_string_equal(v, "max-age=31536000");
	pc_tls_free(t);
	pc_tls_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(versions_and_ciphers),
		cmocka_unit_test(tls13_only),
		cmocka_unit_test(bad_files),
		cmocka_unit_test(mtls_required),
		cmocka_unit_test(mtls_optional),
		cmocka_unit_test(no_client_auth),
		cmocka_unit_test(reload),
		cmocka_unit_test(no_renegotiation),
		cmocka_unit_test(resumption),
		cmocka_unit_test(ticket_lifetime),
		cmocka_unit_test(hsts),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
