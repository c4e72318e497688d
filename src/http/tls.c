/*
 * TLS for the MCP listener: one SSL_CTX built from the config, handed to
 * every accepted connection through evhttp's bufferevent callback.
 *
 * Why the choices (docs/tls.md has the operator's view):
 * - TLS 1.2 floor and ECDHE+AEAD suites only: no RSA key exchange (no
 *   forward secrecy, ROBOT), no CBC (Lucky13, BEAST), no 64-bit blocks.
 * - No renegotiation at all: a client-started one is a DoS lever and mTLS
 *   never needs it (certificates are asked for in the first handshake).
 * - Resumption off by default; when enabled, only stateless tickets whose
 *   keys rotate by time and are dropped on reload, so a stolen ticket key
 *   opens at most two rotation periods of recorded traffic.
 * - A reload builds a whole new SSL_CTX; each SSL holds a reference to the
 *   context it was made from, so open connections are untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/tls.h"
#include "lib/errors.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"

/* Protocol choices (limits are in lib/limits.h). */

#define PC_TLS12_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define PC_TLS13_SUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
	"TLS_CHACHA20_POLY1305_SHA256"
#define PC_TLS_GROUPS		"X25519:P-256:P-384"
/* Resumed sessions must come from this application's contexts. */
#define PC_TLS_SID_CTX		"portcullis"

struct pc_tls {
	SSL_CTX *ctx;			/* current context for new connections */
	uint32_t hsts_max_age_s;
};

/* Ticket keys of one SSL_CTX, freed with it (ex_data free callback). */
struct pc_tls_tkey {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
	uint64_t born_ms;
	bool valid;
};

struct pc_tls_tickets {
	struct pc_tls_tkey cur, prev;
};

static int tickets_idx = -1;

static void
tickets_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (ptr == NULL)
		return;
	OPENSSL_cleanse(ptr, sizeof(struct pc_tls_tickets));
	free(ptr);
}

static void
err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The reason of the newest OpenSSL error (a static string naming what went
 * wrong, never data), and an empty error queue for the next caller. */
static const char *
ossl_reason(void)
{
	unsigned long e, last = 0;
	const char *r;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		return "unknown error";
	r = ERR_reason_error_string(last);
	return r != NULL ? r : "unknown error";
}

/* A passphrase-protected key must not make OpenSSL prompt on the terminal
 * of a daemon: refuse it instead. */
static int
no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

static int
tkey_fill(struct pc_tls_tkey *k)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return PC_E_IO;
	k->born_ms = pc_tls_now_ms();
	k->valid = true;
	return 0;
}

/* The clock ticket keys age by (a test sets its own). */
uint64_t (*pc_tls_now_ms)(void) = pc_now_ms;

static int
tkey_mac_init(EVP_MAC_CTX *hctx, struct pc_tls_tkey *k)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
	    k->hmac, sizeof(k->hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket key callback: 1 = key used, 2 = decrypted with an old
 * key (issue a fresh ticket), 0 = unknown key (full handshake), -1 = error.
 * Rotation is lazy (checked on each use) so it needs no timer; the event
 * loop is single-threaded, so no lock.
 */
static int
ticket_key_cb(SSL *s, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct pc_tls_tickets *tk;
	struct pc_tls_tkey *k = NULL;
	uint64_t now = pc_tls_now_ms();
	uint64_t period = PC_TLS_TICKET_ROTATE_S * 1000ull;
	int ret = 1;

	tk = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), tickets_idx);
	if (tk == NULL)
		return -1;
	if (now - tk->cur.born_ms >= period) {
		tk->prev = tk->cur;
		if (tkey_fill(&tk->cur) != 0) {
			OPENSSL_cleanse(&tk->cur, sizeof(tk->cur));
			return -1;
		}
	}
	/* After the rotation: rotation is lazy, and after a quiet spell the
	 * key just retired may be far older than two periods. Checked
	 * before, it became "previous" and its tickets were accepted again. */
	if (tk->prev.valid && now - tk->prev.born_ms >= 2 * period)
		OPENSSL_cleanse(&tk->prev, sizeof(tk->prev));
	if (enc) {
		k = &tk->cur;
		memcpy(name, k->name, sizeof(k->name));
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc()))
		    != 1)
			return -1;
		if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes,
		    iv) != 1 || tkey_mac_init(hctx, k) != 0)
			return -1;
		return 1;
	}
	if (tk->cur.valid && CRYPTO_memcmp(name, tk->cur.name, 16) == 0) {
		k = &tk->cur;
	} else if (tk->prev.valid &&
	    CRYPTO_memcmp(name, tk->prev.name, 16) == 0) {
		k = &tk->prev;
		ret = 2;
	}
	if (k == NULL)
		return 0;
	if (tkey_mac_init(hctx, k) != 0 ||
	    EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
		return -1;
	return ret;
}

static int
setup_tickets(SSL_CTX *ctx, bool enabled, char *err, size_t errlen)
{
	struct pc_tls_tickets *tk = NULL;
	int rc = PC_E_CONFIG;

	if (!enabled) {
		/* TLS 1.2 tickets off, and zero TLS 1.3 tickets: with the
		 * server cache off as well, nothing can be resumed. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		return 0;
	}
	if (tickets_idx < 0) {
		tickets_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
		    tickets_free_cb);
		if (tickets_idx < 0) {
			err_set(err, errlen, "tls: %s", ossl_reason());
			return PC_E_NOMEM;
		}
	}
	tk = calloc(1, sizeof(*tk));
	if (tk == NULL)
		return PC_E_NOMEM;
	if (tkey_fill(&tk->cur) != 0) {
		err_set(err, errlen, "tls: no randomness for ticket keys");
		rc = PC_E_IO;
		goto out;
	}
	if (SSL_CTX_set_ex_data(ctx, tickets_idx, tk) != 1) {
		rc = PC_E_NOMEM;
		goto out;
	}
	tk = NULL;		/* owned by ctx now */
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1) {
		err_set(err, errlen, "tls: ticket callback: %s", ossl_reason());
		goto out;
	}
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, (long)(2 * PC_TLS_TICKET_ROTATE_S));
	rc = 0;
out:
	if (tk != NULL) {
		OPENSSL_cleanse(tk, sizeof(*tk));
		free(tk);
	}
	return rc;
}

/*
 * Read the private key through one descriptor: the permission check and the
 * read see the same file (no window for a swap between stat and open).
 */
static int
load_key(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
	struct stat st;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	int fd = -1, rc = PC_E_CONFIG;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err_set(err, errlen, "tls.key: cannot open %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err_set(err, errlen, "tls.key: %s is not a regular file",
		    path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		err_set(err, errlen,
		    "tls.key: %s is readable by group or others (chmod 600)",
		    path);
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > PC_TLS_MAX_KEY_FILE_BYTES) {
		err_set(err, errlen, "tls.key: %s: unexpected size", path);
		goto out;
	}
	bio = BIO_new_fd(fd, BIO_NOCLOSE);
	if (bio == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb, NULL);
	if (pkey == NULL) {
		err_set(err, errlen,
		    "tls.key: %s: no usable PEM private key (%s)", path,
		    ossl_reason());
		goto out;
	}
	/* With the certificate loaded first, a mismatch fails right here. */
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
		err_set(err, errlen, "tls.key: %s does not match the "
		    "certificate or is unusable (%s)", path, ossl_reason());
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err_set(err, errlen,
		    "tls.key: %s does not match the certificate", path);
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);		/* cleanses the key material */
	BIO_free(bio);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
setup_client_auth(SSL_CTX *ctx, const struct pc_tls_conf *conf, char *err,
    size_t errlen)
{
	STACK_OF(X509_NAME) *names;
	int mode;

	if (conf->client_auth == PC_CLIENT_AUTH_NONE) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	if (conf->client_ca_file == NULL || conf->client_ca_file[0] == '\0') {
		err_set(err, errlen,
		    "tls.client_ca: required when client_auth is set");
		return PC_E_CONFIG;
	}
	if (SSL_CTX_load_verify_locations(ctx, conf->client_ca_file, NULL)
	    != 1) {
		err_set(err, errlen, "tls.client_ca: cannot load %s: %s",
		    conf->client_ca_file, ossl_reason());
		return PC_E_CONFIG;
	}
	names = SSL_load_client_CA_file(conf->client_ca_file);
	if (names == NULL) {
		err_set(err, errlen, "tls.client_ca: no certificate in %s",
		    conf->client_ca_file);
		ERR_clear_error();
		return PC_E_CONFIG;
	}
	SSL_CTX_set_client_CA_list(ctx, names);	/* takes ownership */
	mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
	if (conf->client_auth == PC_CLIENT_AUTH_REQUIRED)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	/* No verify callback: any chain error aborts the handshake, also in
	 * optional mode (a certificate that is sent must be good). */
	SSL_CTX_set_verify(ctx, mode, NULL);
	SSL_CTX_set_verify_depth(ctx, PC_TLS_VERIFY_DEPTH);
	return 0;
}

/* Build a complete server context from conf; *out is owned by the caller. */
static int
ctx_build(const struct pc_tls_conf *conf, SSL_CTX **out, char *err,
    size_t errlen)
{
	SSL_CTX *ctx = NULL;
	uint64_t opts;
	int rc = PC_E_CONFIG;

	*out = NULL;
	if (conf == NULL || conf->cert_file == NULL ||
	    conf->cert_file[0] == '\0' || conf->key_file == NULL ||
	    conf->key_file[0] == '\0') {
		err_set(err, errlen, "tls: cert and key files are required");
		return PC_E_CONFIG;
	}
	if (conf->min_version != 0 && conf->min_version != 12 &&
	    conf->min_version != 13) {
		err_set(err, errlen, "tls.min_version: 1.2 or 1.3");
		return PC_E_CONFIG;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		err_set(err, errlen, "tls: %s", ossl_reason());
		rc = PC_E_NOMEM;
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, conf->min_version == 13 ?
	    TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		err_set(err, errlen, "tls: protocol versions: %s",
		    ossl_reason());
		goto out;
	}
	if (SSL_CTX_set_cipher_list(ctx, PC_TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, PC_TLS13_SUITES) != 1) {
		err_set(err, errlen, "tls: cipher suites: %s", ossl_reason());
		goto out;
	}
	if (SSL_CTX_set1_groups_list(ctx, PC_TLS_GROUPS) != 1) {
		err_set(err, errlen, "tls: groups: %s", ossl_reason());
		goto out;
	}
	opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA;
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
	opts |= SSL_OP_NO_CLIENT_RENEGOTIATION;
#endif
	/* No SSL_CTX_set_read_ahead: bufferevent_openssl waits on the socket,
	 * and records OpenSSL has already read ahead into its own buffer do
	 * not wake it. The benchmark showed clients stalling with it on. */
	SSL_CTX_set_options(ctx, opts);
	/* OpenSSL 3 refuses client renegotiation by default, but a system
	 * openssl.cnf may turn it on for every context: turn it off again. */
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION |
	    SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION);
	/* Stateful resumption would keep sessions (and their secrets) in
	 * server memory; tickets, when enabled, are the only resumption. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* 0-RTT data is replayable: never accept it. */
	SSL_CTX_set_max_early_data(ctx, 0);
	SSL_CTX_set_recv_max_early_data(ctx, 0);
	if (SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)PC_TLS_SID_CTX,
	    sizeof(PC_TLS_SID_CTX) - 1) != 1) {
		err_set(err, errlen, "tls: %s", ossl_reason());
		goto out;
	}
	if ((rc = setup_tickets(ctx, conf->session_tickets, err, errlen)) != 0)
		goto out;
	rc = PC_E_CONFIG;
	if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert_file) != 1) {
		err_set(err, errlen, "tls.cert: cannot load %s: %s",
		    conf->cert_file, ossl_reason());
		goto out;
	}
	if ((rc = load_key(ctx, conf->key_file, err, errlen)) != 0)
		goto out;
	if ((rc = setup_client_auth(ctx, conf, err, errlen)) != 0)
		goto out;
	*out = ctx;
	ctx = NULL;
	rc = 0;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

int
pc_tls_new(const struct pc_tls_conf *conf, struct pc_tls **out, char *err,
    size_t errlen)
{
	struct pc_tls *t = NULL;
	int rc;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return PC_E_NOMEM;
	if ((rc = ctx_build(conf, &t->ctx, err, errlen)) != 0)
		goto out;
	t->hsts_max_age_s = conf->hsts_max_age_s;
	*out = t;
	t = NULL;
out:
	pc_tls_free(t);
	return rc;
}

void
pc_tls_free(struct pc_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int
pc_tls_reload(struct pc_tls *t, const struct pc_tls_conf *conf, char *err,
    size_t errlen)
{
	SSL_CTX *nctx = NULL;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((rc = ctx_build(conf, &nctx, err, errlen)) != 0)
		return rc;
	/* Live SSL objects hold their own reference to the old context. */
	SSL_CTX_free(t->ctx);
	t->ctx = nctx;
	t->hsts_max_age_s = conf->hsts_max_age_s;
	return 0;
}

struct bufferevent *
pc_tls_bev_new(struct pc_tls *t, struct event_base *base)
{
	struct bufferevent *bev;
	SSL *ssl;

	/*
	 * evhttp falls back to a plain socket bufferevent when this returns
	 * NULL, which would serve cleartext on a TLS port. That only happens
	 * when memory is exhausted; stopping is the safe answer.
	 */
	ssl = SSL_new(t->ctx);
	if (ssl == NULL) {
		pc_error("tls: SSL_new failed (%s); refusing to serve "
		    "cleartext on a TLS listener", ossl_reason());
		abort();
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		pc_error("tls: no memory for a TLS bufferevent; refusing to "
		    "serve cleartext on a TLS listener");
		abort();
	}
	/* Many HTTP clients close without close_notify; with full-length
	 * framing in HTTP that is not a truncation risk for requests. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static struct bufferevent *
attach_cb(struct event_base *base, void *arg)
{
	return pc_tls_bev_new(arg, base);
}

void
pc_tls_attach(struct pc_tls *t, struct evhttp *http)
{
	evhttp_set_bevcb(http, attach_cb, t);
}

int
pc_tls_hsts(const struct pc_tls *t, char *out, size_t outlen)
{
	int n;

	if (t == NULL || t->hsts_max_age_s == 0)
		return PC_E_NOTFOUND;
	n = snprintf(out, outlen, "max-age=%u", (unsigned)t->hsts_max_age_s);
	if (n < 0 || (size_t)n >= outlen)
		return PC_E_LIMIT;
	return 0;
}

/*
 * Copy an identity string if it is usable as one: non-empty, fits, and only
 * printable ASCII (an embedded NUL or control byte could make two different
 * certificates look alike to a string compare, or forge log lines).
 */
static int
ident_copy(const unsigned char *s, int len, char *out, size_t outlen)
{
	int i;

	if (s == NULL || len <= 0 || (size_t)len >= outlen)
		return PC_E_NOTFOUND;
	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return PC_E_NOTFOUND;
	memcpy(out, s, (size_t)len);
	out[len] = '\0';
	return 0;
}

/* First SAN entry of `type` (GEN_URI or GEN_DNS): 0, PC_E_NOTFOUND when
 * there is none, PC_E_DENIED when the first one is unusable. */
static int
san_first(X509 *cert, int type, char *out, size_t outlen)
{
	GENERAL_NAMES *gens;
	int i, n, rc = PC_E_NOTFOUND;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL)
		return PC_E_NOTFOUND;
	n = sk_GENERAL_NAME_num(gens);
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;

		if (g->type != type)
			continue;
		s = type == GEN_URI ? g->d.uniformResourceIdentifier :
		    g->d.dNSName;
		/* The first one decides: a bad one is not skipped in
		 * favour of a later entry or a weaker kind of name. */
		rc = ident_copy(ASN1_STRING_get0_data(s), ASN1_STRING_length(s),
		    out, outlen) == 0 ? 0 : PC_E_DENIED;
		break;
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

/* The subject CN, only when there is exactly one (several are ambiguous). */
static int
subject_cn(X509 *cert, char *out, size_t outlen)
{
	const X509_NAME *name = X509_get_subject_name(cert);
	const X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	int idx, len, rc;

	if (name == NULL)
		return PC_E_NOTFOUND;
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		return PC_E_NOTFOUND;
	e = X509_NAME_get_entry(name, idx);
	/* CN may be BMPString, UTF8String, PrintableString...: normalise. */
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	if (len < 0)
		return PC_E_NOTFOUND;
	rc = ident_copy(utf8, len, out, outlen);
	OPENSSL_free(utf8);
	/* A plain name only: a CN like "spiffe://corp/agent/x" would match
	 * identities meant for SAN URIs, and a CA may let users choose their
	 * CN where it would never sign their SAN URI. */
	if (rc == 0 && strpbrk(out, ":/") != NULL) {
		out[0] = '\0';
		rc = PC_E_NOTFOUND;
	}
	return rc;
}

/* notAfter as unix seconds; 0 when it cannot be read. */
static int64_t
cert_not_after(const X509 *cert)
{
	struct tm tm;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	t = timegm(&tm);
	/* Not representable (a far notAfter where time_t is narrow): unknown,
	 * never "expired in 1969". */
	return t > 0 ? (int64_t)t : 0;
}

int
pc_tls_peer_identity(struct evhttp_connection *evcon, char *out,
    size_t outlen, int64_t *not_after)
{
	struct bufferevent *bev;
	X509 *cert;
	SSL *ssl;
	int rc;

	if (out == NULL || outlen == 0)
		return PC_E_INVAL;
	out[0] = '\0';
	if (not_after != NULL)
		*not_after = 0;
	if (evcon == NULL)
		return PC_E_NOTFOUND;
	bev = evhttp_connection_get_bufferevent(evcon);
	if (bev == NULL)
		return PC_E_NOTFOUND;
	ssl = bufferevent_openssl_get_ssl(bev);	/* NULL if not TLS */
	if (ssl == NULL)
		return PC_E_NOTFOUND;
	cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return PC_E_NOTFOUND;
	/* Verified at the handshake, which a kept-alive connection may
	 * outlive by hours: the certificate must still be in date now. */
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		ERR_clear_error();
		return PC_E_DENIED;
	}
	if (not_after != NULL)
		*not_after = cert_not_after(cert);
	rc = san_first(cert, GEN_URI, out, outlen);
	if (rc == PC_E_NOTFOUND)
		rc = san_first(cert, GEN_DNS, out, outlen);
	if (rc == PC_E_NOTFOUND)
		rc = subject_cn(cert, out, outlen);
	if (rc != 0) {
		out[0] = '\0';
		if (not_after != NULL)
			*not_after = 0;
		rc = PC_E_NOTFOUND;
	}
	ERR_clear_error();
	return rc;
}
