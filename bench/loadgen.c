/*
 * loadgen: a closed-loop load generator for one MCP Streamable HTTP endpoint.
 *
 * Each of --concurrency keep-alive connections has exactly one tools/call in
 * flight; the next one leaves as soon as the previous answer is read, so the
 * rate measured is what the server sustains at that concurrency. In legacy
 * mode every connection opens its own session (initialize, then
 * notifications/initialized); in modern mode (2026-07-28) every request is
 * self-describing and there is no session.
 *
 * Written on raw epoll with a hand-rolled HTTP/1.1 response reader because
 * the generator shares two cores with the system under test: every cycle it
 * spends is taken from the thing being measured. JSON bodies are still
 * checked with jansson (id, error, isError), since a benchmark that counts
 * wrong answers as calls measures nothing.
 *
 * With an https:// URL every connection is one TLS session (OpenSSL, TLS 1.3
 * unless --tls-version says otherwise), verified against --cacert or the
 * system store with the URL's host name or address checked. The handshake is
 * done right after connect, before the connection's first request, so it
 * falls in the warm-up and never in a call's latency.
 *
 * Safety: it only ever connects to loopback (127.0.0.0/8, localhost, [::1])
 * and stops by itself after warmup + duration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Local limits: this tool is not part of the gateway, so it does not use
 * src/lib/limits.h; each value is sized for the echo benchmark with room. */
#define LG_MAX_CONNS      4096		/* more would measure the kernel */
#define LG_MAX_THREADS    16
#define LG_MAX_HEADERS    16		/* --header options */
#define LG_MAX_HDR_LINE   1024		/* one --header "K: V" */
#define LG_RBUF_MAX       (4u << 20)	/* one response; echo answers are tiny */
#define LG_RBUF_INIT      (16u << 10)
#define LG_REQ_MAX        (32u << 10)	/* one request: headers + body */
#define LG_SESSION_MAX    256		/* Mcp-Session-Id bytes we keep */
#define LG_PROTO_MAX      32
#define LG_PATH_MAX       512
#define LG_TOOL_MAX       128
#define LG_ERRMSG_MAX     512
#define LG_RETRY_NS       (100ull * 1000 * 1000)	/* reconnect backoff */
#define LG_MAX_DURATION_S 3600
#define LG_HOST_MAX       64
#define LG_FILE_MAX       4096

#define LEGACY_VERSION "2025-11-25"
#define MODERN_VERSION "2026-07-28"

/* ---- log-linear latency histogram (HDR-like), values in nanoseconds ----
 * 128 linear sub-buckets per power of two: under 0.8 % error at any scale,
 * 59 KiB per thread, O(1) record. */
#define H_SUB_BITS 7
#define H_SUB      (1u << H_SUB_BITS)
#define H_N        ((64 - H_SUB_BITS) * H_SUB + H_SUB)

struct hist {
	uint64_t c[H_N];
	uint64_t n;
	uint64_t max;
	uint64_t sum;
};

static unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * H_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - H_SUB_BITS;
	return (shift << H_SUB_BITS) + (unsigned)(v >> shift);
}

/* Highest value that falls in bucket idx. */
static uint64_t
hist_upper(unsigned idx)
{
	unsigned shift;
	uint64_t sub;

	if (idx < 2 * H_SUB)
		return idx;
	shift = (idx >> H_SUB_BITS) - 1;
	sub = idx - (shift << H_SUB_BITS);
	return ((sub + 1) << shift) - 1;
}

static void
hist_record(struct hist *h, uint64_t v)
{
	h->c[hist_index(v)]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

static void
hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < H_N; i++)
		dst->c[i] += src->c[i];
	dst->n += src->n;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Value at quantile q (0..1), as the bucket's upper bound capped by max. */
static uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(q * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_N; i++) {
		seen += h->c[i];
		if (seen >= want) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

/* ---- options ---- */

enum mode { MODE_LEGACY, MODE_MODERN };

struct opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char url[LG_PATH_MAX + 64];
	char host_hdr[96];		/* Host: value, as given in the URL */
	char host[LG_HOST_MAX];		/* URL host as written: the name TLS checks */
	bool tls;			/* https:// */
	bool host_is_ip;		/* check an IP SAN, send no SNI */
	char cacert[LG_FILE_MAX];	/* --cacert; empty: the system store */
	int tls_version;		/* TLS1_2_VERSION or TLS1_3_VERSION (pinned) */
	char path[LG_PATH_MAX];
	enum mode mode;
	unsigned concurrency;
	unsigned threads;
	double duration_s;
	double warmup_s;
	char tool[LG_TOOL_MAX];
	char headers[LG_MAX_HEADERS][LG_MAX_HDR_LINE];
	unsigned nheaders;
	bool json;
};

static struct opts O = {
	.mode = MODE_LEGACY,
	.concurrency = 16,
	.threads = 1,
	.duration_s = 10,
	.warmup_s = 2,
	.tool = "echo",
	.tls_version = TLS1_3_VERSION,
};

/* Shared by all workers (an SSL_CTX is safe to use from several threads once
 * set up); NULL for plain HTTP. */
static SSL_CTX *TLS_CTX;

/* Times are fixed before the workers start and only read afterwards. */
static uint64_t T_START, T_WARM, T_END;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- connections and workers ---- */

enum phase { PH_INIT, PH_NOTIFY, PH_RUN };
enum err_kind {
	E_CONNECT, E_TLS, E_HTTP, E_JSONRPC, E_TOOL, E_ID, E_BAD, E_CLOSED,
	E_NKINDS
};
static const char *const err_names[E_NKINDS] = {
	"connect", "tls", "http_status", "jsonrpc_error", "tool_is_error",
	"id_mismatch", "bad_response", "closed_mid_request",
};

struct worker;

struct conn {
	struct worker *w;
	int fd;			/* -1 when closed */
	bool connecting;
	bool want_out;		/* EPOLLOUT registered */
	SSL *ssl;		/* TLS session of this connection, or NULL */
	bool handshaking;	/* TLS handshake not finished yet */
	bool w_wants_in;	/* SSL_write blocked until readable */
	bool r_wants_out;	/* SSL_read blocked until writable */
	bool in_flight;		/* a request was sent, answer not read yet */
	enum phase phase;
	uint64_t retry_at;	/* ns; 0 = not waiting to reconnect */
	uint64_t next_id;
	uint64_t expect_id;	/* 0 for a notification */
	uint64_t t_sent;
	char session[LG_SESSION_MAX];
	char proto[LG_PROTO_MAX];	/* negotiated version (legacy) */
	char *wbuf;
	size_t wlen, woff;
	char *rbuf;
	size_t rlen, rcap;
	char *body;		/* de-chunked body of the current response */
	size_t bcap;
};

struct worker {
	pthread_t th;
	unsigned idx;
	int ep;
	struct conn *conns;
	unsigned nconns;
	unsigned nwaiting;	/* conns with retry_at set */
	struct hist h;
	uint64_t calls;		/* good calls completed in the window */
	uint64_t errors[E_NKINDS];
	char first_err[LG_ERRMSG_MAX];
	char proto_seen[LG_PROTO_MAX];
	uint64_t handshakes;	/* TLS handshakes completed */
	uint64_t handshakes_in_window;	/* of which after the warm-up */
	char tls_seen[96];	/* "TLSv1.3 TLS_AES_128_GCM_SHA256" */
};

static void
note_error(struct conn *c, enum err_kind k, const char *detail, size_t dlen)
{
	struct worker *w = c->w;
	size_t i, n;

	w->errors[k]++;
	if (w->first_err[0] != '\0')
		return;
	n = (size_t)snprintf(w->first_err, sizeof(w->first_err), "%s: ",
	    err_names[k]);
	/* Keep the sample printable: a response body may hold anything. */
	for (i = 0; detail && i < dlen && n + 1 < sizeof(w->first_err); i++) {
		unsigned char ch = (unsigned char)detail[i];
		w->first_err[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
	}
	w->first_err[n] = '\0';
}

static void
conn_close(struct conn *c, bool retry)
{
	if (c->ssl != NULL) {
		/* One try at close_notify, without waiting for the peer's:
		 * the socket is non-blocking and about to be closed. */
		if (!c->handshaking)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
		c->ssl = NULL;
	}
	c->handshaking = c->w_wants_in = c->r_wants_out = false;
	if (c->fd >= 0) {
		epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->connecting = false;
	c->want_out = false;
	c->in_flight = false;
	c->rlen = 0;
	c->wlen = c->woff = 0;
	if (retry && c->retry_at == 0) {
		c->retry_at = now_ns() + LG_RETRY_NS;
		c->w->nwaiting++;
	}
}

static int
conn_set_events(struct conn *c, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
	    .data.ptr = c };

	if (c->want_out == out)
		return 0;
	c->want_out = out;
	return epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int conn_send_next(struct conn *c);

/* ---- transport: plain socket or TLS ----
 * io_write and io_read return bytes moved (> 0), 0 at end of stream,
 * IO_AGAIN when the call would block (*want_out then says it waits for the
 * socket to become writable rather than readable), IO_ERR on failure. */
#define IO_AGAIN (-1)
#define IO_ERR   (-2)

/* An OpenSSL error as text for the error sample, queue emptied. */
static void
note_tls_error(struct conn *c, const char *what, int sslerr)
{
	char msg[LG_ERRMSG_MAX], reason[256] = "";
	unsigned long e = ERR_peek_last_error();
	long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	int n;

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else if (sslerr == SSL_ERROR_SYSCALL)
		snprintf(reason, sizeof(reason), "%s",
		    errno ? strerror(errno) : "unexpected EOF");
	n = snprintf(msg, sizeof(msg), "%s: %s%s%s", what,
	    reason[0] ? reason : "SSL error",
	    vr != X509_V_OK ? "; certificate: " : "",
	    vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
	ERR_clear_error();
	note_error(c, E_TLS, msg, n > 0 ? strnlen(msg, sizeof(msg)) : 0);
}

static ssize_t
tls_result(struct conn *c, int k, bool *want_out, const char *what)
{
	int e = SSL_get_error(c->ssl, k);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want_out = false;
		return IO_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want_out = true;
		return IO_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return 0;
	default:
		/* SSL_OP_IGNORE_UNEXPECTED_EOF turns a bare TCP close into
		 * ZERO_RETURN; anything here is a real failure. */
		note_tls_error(c, what, e);
		return IO_ERR;
	}
}

static ssize_t
io_write(struct conn *c, const char *p, size_t n, bool *want_out)
{
	ssize_t k;
	int r;

	if (c->ssl == NULL) {
		k = write(c->fd, p, n);
		if (k >= 0)
			return k;
		*want_out = true;
		return (errno == EAGAIN || errno == EINTR) ? IO_AGAIN : IO_ERR;
	}
	/* A retry after WANT_* passes the same bytes again (woff only moves
	 * on success), as OpenSSL requires. SSL_get_error needs an empty
	 * error queue before the call. */
	ERR_clear_error();
	r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	return tls_result(c, r, want_out, "TLS write");
}

static ssize_t
io_read(struct conn *c, char *p, size_t n, bool *want_out)
{
	ssize_t k;
	int r;

	if (c->ssl == NULL) {
		k = read(c->fd, p, n);
		if (k >= 0)
			return k;
		*want_out = false;
		return (errno == EAGAIN || errno == EINTR) ? IO_AGAIN : IO_ERR;
	}
	ERR_clear_error();
	r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	return tls_result(c, r, want_out, "TLS read");
}

/* EPOLLOUT is needed while a write waits for room or a read waits to
 * write (TLS only). */
static int
conn_update_events(struct conn *c, bool write_blocked_out)
{
	return conn_set_events(c, write_blocked_out || c->r_wants_out);
}

/* Start the TLS session on a connected socket. */
static int
tls_start(struct conn *c)
{
	c->ssl = SSL_new(TLS_CTX);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		goto fail;
	if (O.host_is_ip) {
		/* SNI carries names only; an address is checked as an IP SAN. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl),
		    O.host) != 1)
			goto fail;
	} else if (SSL_set_tlsext_host_name(c->ssl, O.host) != 1 ||
	    SSL_set1_host(c->ssl, O.host) != 1) {
		goto fail;
	}
	SSL_set_connect_state(c->ssl);
	c->handshaking = true;
	return 0;
fail:
	note_tls_error(c, "TLS setup", SSL_ERROR_SSL);
	return -1;
}

/* One step of the handshake; the first request leaves when it is done. */
static void
tls_handshake(struct conn *c)
{
	bool want_out = false;
	ssize_t k;
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		k = tls_result(c, r, &want_out, "TLS handshake");
		if (k == IO_AGAIN && conn_set_events(c, want_out) == 0)
			return;
		if (k == 0)
			note_error(c, E_TLS, "TLS handshake: peer closed", 26);
		conn_close(c, true);
		return;
	}
	c->handshaking = false;
	c->w->handshakes++;
	if (now_ns() >= T_WARM)
		c->w->handshakes_in_window++;
	if (c->w->tls_seen[0] == '\0')
		snprintf(c->w->tls_seen, sizeof(c->w->tls_seen), "%s %s",
		    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	if (conn_send_next(c) < 0)
		conn_close(c, true);
}

static int
conn_open(struct conn *c)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(O.addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail;
	/* One small request per round trip: Nagle would add 40 ms stalls. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&O.addr, O.addrlen) < 0 &&
	    errno != EINPROGRESS)
		goto fail;
	c->connecting = true;
	c->want_out = true;
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		goto fail;
	return 0;
fail:
	note_error(c, E_CONNECT, strerror(errno), strlen(strerror(errno)));
	conn_close(c, true);
	return -1;
}

/* Build the whole request into c->wbuf. body is the JSON-RPC message. */
static int
build_request(struct conn *c, const char *method, const char *body,
    size_t blen)
{
	size_t n = 0;
	int r;

#define APPEND(...) do {						\
		r = snprintf(c->wbuf + n, LG_REQ_MAX - n, __VA_ARGS__);	\
		if (r < 0 || (size_t)r >= LG_REQ_MAX - n)		\
			return -1;					\
		n += (size_t)r;						\
	} while (0)

	APPEND("POST %s HTTP/1.1\r\nHost: %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Accept: application/json, text/event-stream\r\n",
	    O.path, O.host_hdr);
	if (O.mode == MODE_MODERN) {
		APPEND("MCP-Protocol-Version: " MODERN_VERSION "\r\n"
		    "Mcp-Method: %s\r\n", method);
		if (strcmp(method, "tools/call") == 0)
			APPEND("Mcp-Name: %s\r\n", O.tool);
	} else if (c->phase != PH_INIT) {
		APPEND("MCP-Protocol-Version: %s\r\n", c->proto);
		if (c->session[0] != '\0')
			APPEND("Mcp-Session-Id: %s\r\n", c->session);
	}
	for (unsigned i = 0; i < O.nheaders; i++)
		APPEND("%s\r\n", O.headers[i]);
	APPEND("Content-Length: %zu\r\n\r\n", blen);
	if (blen > LG_REQ_MAX - n)
		return -1;
	memcpy(c->wbuf + n, body, blen);
	c->wlen = n + blen;
	c->woff = 0;
#undef APPEND
	return 0;
}

/* conn_flush's failure when the cause was already counted (TLS). */
#define FLUSH_NOTED (-2)

/* Write what is left of c->wbuf: 0 when done or waiting, < 0 on failure. */
static int
conn_flush(struct conn *c)
{
	c->w_wants_in = false;
	while (c->woff < c->wlen) {
		bool want_out = true;
		ssize_t k = io_write(c, c->wbuf + c->woff, c->wlen - c->woff,
		    &want_out);
		if (k == IO_AGAIN) {
			c->w_wants_in = !want_out;
			return conn_update_events(c, want_out);
		}
		if (k == IO_ERR && c->ssl != NULL)
			return FLUSH_NOTED;
		if (k <= 0)
			return -1;
		c->woff += (size_t)k;
	}
	return conn_update_events(c, false);
}

/* Send whatever the connection's phase calls for next. */
static int
conn_send_next(struct conn *c)
{
	char body[1024];
	const char *method;
	int n;

	c->expect_id = 0;
	if (c->phase == PH_INIT) {
		method = "initialize";
		c->expect_id = ++c->next_id;
		n = snprintf(body, sizeof(body),
		    "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":"
		    "\"initialize\",\"params\":{\"protocolVersion\":\""
		    LEGACY_VERSION "\",\"capabilities\":{},\"clientInfo\":"
		    "{\"name\":\"portcullis-loadgen\",\"version\":\"1\"}}}",
		    c->expect_id);
	} else if (c->phase == PH_NOTIFY) {
		method = "notifications/initialized";
		n = snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\","
		    "\"method\":\"notifications/initialized\"}");
	} else if (O.mode == MODE_LEGACY) {
		method = "tools/call";
		c->expect_id = ++c->next_id;
		n = snprintf(body, sizeof(body),
		    "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":"
		    "\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":"
		    "{\"text\":\"hello\"}}}", c->expect_id, O.tool);
	} else {
		method = "tools/call";
		c->expect_id = ++c->next_id;
		n = snprintf(body, sizeof(body),
		    "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":"
		    "\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":"
		    "{\"text\":\"hello\"},\"_meta\":{"
		    "\"io.modelcontextprotocol/protocolVersion\":\""
		    MODERN_VERSION "\","
		    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
		    c->expect_id, O.tool);
	}
	if (n < 0 || (size_t)n >= sizeof(body) ||
	    build_request(c, method, body, (size_t)n) < 0) {
		note_error(c, E_BAD, "request too large", 17);
		return -1;
	}
	c->t_sent = now_ns();
	c->in_flight = true;
	return conn_flush(c);
}

/* ---- HTTP/1.1 response reading ---- */

struct resp {
	int status;
	bool sse;
	bool close_after;
	const char *session;	/* points into rbuf; not NUL-terminated */
	size_t session_len;
	const char *body;	/* rbuf (Content-Length) or c->body (chunked) */
	size_t blen;
	size_t consumed;	/* bytes of rbuf this response used */
};

static bool
hdr_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

static bool
parse_size(const char *s, size_t len, int base, size_t *out)
{
	size_t v = 0;
	size_t i;

	if (len == 0 || len > 16)
		return false;
	for (i = 0; i < len; i++) {
		int d;
		char ch = s[i];
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (base == 16 && ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (base == 16 && ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			return false;
		v = v * (size_t)base + (size_t)d;
	}
	*out = v;
	return true;
}

static bool
ensure_body_cap(struct conn *c, size_t need)
{
	char *p;
	size_t cap;

	if (need <= c->bcap)
		return true;
	if (need > LG_RBUF_MAX)
		return false;
	cap = c->bcap ? c->bcap : LG_RBUF_INIT;
	while (cap < need)
		cap *= 2;
	p = realloc(c->body, cap);
	if (p == NULL)
		return false;
	c->body = p;
	c->bcap = cap;
	return true;
}

/*
 * Try to read one complete response from c->rbuf. Returns 1 when complete
 * (r filled), 0 when more bytes are needed, -1 when malformed. eof says the
 * peer closed, which ends a body that has neither length nor chunking.
 */
static int
parse_response(struct conn *c, struct resp *r, bool eof)
{
	const char *buf = c->rbuf, *end, *p, *hend;
	size_t clen = 0;
	bool have_clen = false, chunked = false;

	memset(r, 0, sizeof(*r));
	hend = memmem(buf, c->rlen, "\r\n\r\n", 4);
	if (hend == NULL)
		return (c->rlen >= LG_RBUF_MAX) ? -1 : 0;
	end = hend + 2;
	if (c->rlen < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -1;
	if (!parse_size(buf + 9, 3, 10, &clen))
		return -1;
	r->status = (int)clen;
	clen = 0;
	if (buf[7] == '0')
		r->close_after = true;
	p = memchr(buf, '\n', (size_t)(end - buf));
	p = p ? p + 1 : end;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *colon, *v, *ve;
		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL) {
			size_t nlen = (size_t)(colon - p);
			v = colon + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			if (hdr_is(p, nlen, "content-length")) {
				if (!parse_size(v, (size_t)(ve - v), 10, &clen))
					return -1;
				have_clen = true;
			} else if (hdr_is(p, nlen, "transfer-encoding")) {
				chunked = memmem(v, (size_t)(ve - v),
				    "chunked", 7) != NULL;
			} else if (hdr_is(p, nlen, "content-type")) {
				r->sse = memmem(v, (size_t)(ve - v),
				    "text/event-stream", 17) != NULL;
			} else if (hdr_is(p, nlen, "mcp-session-id")) {
				r->session = v;
				r->session_len = (size_t)(ve - v);
			} else if (hdr_is(p, nlen, "connection")) {
				if (memmem(v, (size_t)(ve - v), "close", 5))
					r->close_after = true;
			}
		}
		p = eol + 1;
	}
	p = hend + 4;
	if (r->status == 204 || r->status == 304 ||
	    (r->status >= 100 && r->status < 200)) {
		r->body = p;
		r->consumed = (size_t)(p - buf);
		return 1;
	}
	if (chunked) {
		size_t blen = 0;
		const char *lim = buf + c->rlen;
		for (;;) {
			const char *eol = memmem(p, (size_t)(lim - p), "\r\n", 2);
			const char *semi;
			size_t sz;
			if (eol == NULL)
				return 0;
			semi = memchr(p, ';', (size_t)(eol - p));
			if (!parse_size(p, (size_t)((semi ? semi : eol) - p),
			    16, &sz))
				return -1;
			p = eol + 2;
			if (sz == 0) {
				/* Trailers are not expected; take the CRLF. */
				eol = memmem(p, (size_t)(lim - p), "\r\n", 2);
				if (eol == NULL)
					return 0;
				p = eol + 2;
				break;
			}
			if ((size_t)(lim - p) < sz + 2)
				return 0;
			if (!ensure_body_cap(c, blen + sz))
				return -1;
			memcpy(c->body + blen, p, sz);
			blen += sz;
			p += sz + 2;
		}
		r->body = c->body;
		r->blen = blen;
		r->consumed = (size_t)(p - buf);
		return 1;
	}
	if (have_clen) {
		if (c->rlen - (size_t)(p - buf) < clen)
			return (clen > LG_RBUF_MAX) ? -1 : 0;
		r->body = p;
		r->blen = clen;
		r->consumed = (size_t)(p - buf) + clen;
		return 1;
	}
	/* No framing: the body runs until the server closes. */
	if (!eof)
		return 0;
	r->body = p;
	r->blen = c->rlen - (size_t)(p - buf);
	r->consumed = c->rlen;
	r->close_after = true;
	return 1;
}

/* Parse one SSE event's data; a new reference when it is the answer. */
static json_t *
sse_event(const char *data, size_t dlen, uint64_t want, bool *any)
{
	json_t *m = json_loadb(data, dlen, 0, NULL);
	json_t *id;

	if (m == NULL)
		return NULL;
	*any = true;
	id = json_object_get(m, "id");
	if (json_is_integer(id) && (uint64_t)json_integer_value(id) == want)
		return m;
	json_decref(m);
	return NULL;
}

/*
 * Find the JSON-RPC response with id want in the body: the body itself for
 * application/json, or the SSE event whose data carries that id (other
 * events, such as notifications, are skipped). Returns a new reference or
 * NULL; *id_mismatch says JSON was there but not the answer.
 */
static json_t *
find_message(const struct resp *r, uint64_t want, bool *id_mismatch)
{
	const char *p = r->body, *lim = r->body + r->blen;
	json_t *m = NULL, *id;
	char *data;
	size_t dlen = 0;

	*id_mismatch = false;
	if (!r->sse) {
		m = json_loadb(r->body, r->blen, 0, NULL);
		if (m == NULL)
			return NULL;
		id = json_object_get(m, "id");
		if (!json_is_integer(id) ||
		    (uint64_t)json_integer_value(id) != want) {
			*id_mismatch = true;
			json_decref(m);
			return NULL;
		}
		return m;
	}
	/* Events end at a blank line; their data lines join with '\n'. */
	data = malloc(r->blen + 1);
	if (data == NULL)
		return NULL;
	while (p < lim && m == NULL) {
		const char *eol = memchr(p, '\n', (size_t)(lim - p));
		const char *le = eol ? eol : lim;
		if (le > p && le[-1] == '\r')
			le--;
		if (le == p) {
			if (dlen > 0)
				m = sse_event(data, dlen, want, id_mismatch);
			dlen = 0;
		} else if ((size_t)(le - p) >= 5 && memcmp(p, "data:", 5) == 0) {
			const char *v = p + 5;
			if (v < le && *v == ' ')
				v++;
			if (dlen > 0)
				data[dlen++] = '\n';
			memcpy(data + dlen, v, (size_t)(le - v));
			dlen += (size_t)(le - v);
		}
		p = eol ? eol + 1 : lim;
	}
	if (m == NULL && dlen > 0)
		m = sse_event(data, dlen, want, id_mismatch);
	free(data);
	if (m != NULL)
		*id_mismatch = false;
	return m;
}

static void
store_session(struct conn *c, const struct resp *r)
{
	size_t i;

	if (r->session == NULL || r->session_len == 0 ||
	    r->session_len >= sizeof(c->session))
		return;
	for (i = 0; i < r->session_len; i++)
		if (r->session[i] < 0x21 || r->session[i] > 0x7e)
			return;
	memcpy(c->session, r->session, r->session_len);
	c->session[r->session_len] = '\0';
}

/*
 * Act on one complete response. Returns 0 to go on with the next request,
 * -1 to drop the connection (and reconnect after a pause).
 */
static int
handle_response(struct conn *c, const struct resp *r, uint64_t t_done)
{
	json_t *m = NULL, *res, *err;
	bool mismatch;
	char msg[64];
	int rc = 0;

	c->in_flight = false;
	if (c->phase == PH_NOTIFY) {
		if (r->status < 200 || r->status > 299) {
			snprintf(msg, sizeof(msg), "HTTP %d to initialized",
			    r->status);
			note_error(c, E_HTTP, msg, strlen(msg));
			c->phase = PH_INIT;
			c->session[0] = '\0';
			return -1;
		}
		c->phase = PH_RUN;
		return 0;
	}
	if (r->status != 200) {
		size_t n = (size_t)snprintf(msg, sizeof(msg), "HTTP %d ",
		    r->status);
		char detail[LG_ERRMSG_MAX];
		size_t dl = r->blen < sizeof(detail) - n ? r->blen :
		    sizeof(detail) - n - 1;
		memcpy(detail, msg, n);
		memcpy(detail + n, r->body ? r->body : "", r->body ? dl : 0);
		note_error(c, E_HTTP, detail, n + (r->body ? dl : 0));
		if (c->phase == PH_INIT)
			return -1;
		/* A legacy server forgets sessions with 404: start over. */
		if (r->status == 404 && O.mode == MODE_LEGACY) {
			c->phase = PH_INIT;
			c->session[0] = '\0';
		}
		return 0;
	}
	m = find_message(r, c->expect_id, &mismatch);
	if (m == NULL) {
		note_error(c, mismatch ? E_ID : E_BAD, r->body,
		    r->blen < 200 ? r->blen : 200);
		rc = c->phase == PH_INIT ? -1 : 0;
		goto out;
	}
	err = json_object_get(m, "error");
	res = json_object_get(m, "result");
	if (err != NULL || !json_is_object(res)) {
		char *s = json_dumps(err ? err : m, JSON_COMPACT);
		note_error(c, E_JSONRPC, s, s ? strlen(s) : 0);
		free(s);
		rc = c->phase == PH_INIT ? -1 : 0;
		goto out;
	}
	if (c->phase == PH_INIT) {
		const char *v = json_string_value(json_object_get(res,
		    "protocolVersion"));
		/* Later requests must carry the version the server chose. */
		if (v == NULL || strlen(v) >= sizeof(c->proto)) {
			note_error(c, E_BAD, "initialize without version", 26);
			rc = -1;
			goto out;
		}
		memcpy(c->proto, v, strlen(v) + 1);
		if (c->w->proto_seen[0] == '\0')
			memcpy(c->w->proto_seen, c->proto, sizeof(c->proto));
		store_session(c, r);
		c->phase = PH_NOTIFY;
		goto out;
	}
	if (json_is_true(json_object_get(res, "isError"))) {
		char *s = json_dumps(res, JSON_COMPACT);
		note_error(c, E_TOOL, s, s ? strlen(s) : 0);
		free(s);
		goto out;
	}
	if (t_done >= T_WARM && t_done < T_END) {
		c->w->calls++;
		hist_record(&c->w->h, t_done - c->t_sent);
	}
out:
	json_decref(m);
	return rc;
}

static void
conn_on_readable(struct conn *c)
{
	bool eof = false, want_out = false;
	struct resp r;
	int pr;

	for (;;) {
		ssize_t k;
		if (c->rcap - c->rlen < 4096 && c->rcap < LG_RBUF_MAX) {
			size_t ncap = c->rcap * 2;
			char *p = realloc(c->rbuf, ncap);
			if (p == NULL)
				break;
			c->rbuf = p;
			c->rcap = ncap;
		}
		if (c->rlen == c->rcap)
			break;
		k = io_read(c, c->rbuf + c->rlen, c->rcap - c->rlen, &want_out);
		if (k > 0) {
			c->rlen += (size_t)k;
			/* A short plain read drained the socket, and epoll is
			 * level-triggered. OpenSSL hands out one record per
			 * call and may hold more already read from the socket,
			 * which epoll cannot see: go on while it does. */
			if (c->ssl != NULL ? SSL_has_pending(c->ssl) :
			    c->rlen == c->rcap)
				continue;
			break;
		}
		if (k == IO_AGAIN) {
			/* TLS may need to write before it can read on. */
			if (want_out != c->r_wants_out) {
				c->r_wants_out = want_out;
				conn_update_events(c, c->woff < c->wlen &&
				    !c->w_wants_in);
			}
			break;
		}
		if (k == IO_ERR && c->ssl != NULL) {
			/* Already counted as a TLS error, in flight or not. */
			conn_close(c, true);
			return;
		}
		eof = true;	/* end of stream, or a plain read failed */
		break;
	}
	if (c->r_wants_out && !want_out) {
		c->r_wants_out = false;
		conn_update_events(c, c->woff < c->wlen && !c->w_wants_in);
	}
	while (c->rlen > 0) {
		uint64_t t;
		pr = parse_response(c, &r, eof);
		/* Incomplete with a full buffer would wait forever: too big. */
		if (pr == 0 && c->rlen >= LG_RBUF_MAX)
			pr = -1;
		if (pr == 0)
			break;
		if (pr < 0) {
			note_error(c, E_BAD, c->rbuf, c->rlen < 200 ? c->rlen : 200);
			conn_close(c, true);
			return;
		}
		t = now_ns();
		if (!c->in_flight) {
			/* An answer nobody asked for: the stream is confused. */
			note_error(c, E_BAD, "unsolicited response", 20);
			conn_close(c, true);
			return;
		}
		if (handle_response(c, &r, t) < 0) {
			conn_close(c, true);
			return;
		}
		if (r.close_after) {
			/* The server ends keep-alive: carry on over a new
			 * connection; the session lives in a header. */
			conn_close(c, false);
			if (t < T_END)
				conn_open(c);
			return;
		}
		memmove(c->rbuf, c->rbuf + r.consumed, c->rlen - r.consumed);
		c->rlen -= r.consumed;
		if (t >= T_END)
			return;
		if (conn_send_next(c) < 0) {
			conn_close(c, true);
			return;
		}
	}
	if (eof) {
		bool lost = c->in_flight;
		if (lost)
			note_error(c, E_CLOSED, "peer closed", 11);
		conn_close(c, lost);
		if (!lost && now_ns() < T_END)
			conn_open(c);
	}
}

static void
conn_on_event(struct conn *c, uint32_t ev)
{
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if ((ev & (EPOLLERR | EPOLLHUP)) != 0 ||
		    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
		    err != 0) {
			const char *s = strerror(err ? err : ECONNREFUSED);
			note_error(c, E_CONNECT, s, strlen(s));
			conn_close(c, true);
			return;
		}
		c->connecting = false;
		if (TLS_CTX != NULL) {
			if (tls_start(c) < 0)
				conn_close(c, true);
			else
				tls_handshake(c);
			return;
		}
		if (conn_send_next(c) < 0)
			conn_close(c, true);
		return;
	}
	if (c->handshaking) {
		tls_handshake(c);
		return;
	}
	/* A write goes on when the socket has room, or (TLS) when the read
	 * it was waiting for arrived; EPOLLOUT with nothing left to write
	 * just turns EPOLLOUT off again (unless a TLS read is waiting for
	 * it). */
	if (((ev & EPOLLOUT) != 0 && (!c->r_wants_out ||
	    (c->woff < c->wlen && !c->w_wants_in))) ||
	    ((ev & EPOLLIN) != 0 && c->w_wants_in)) {
		int fr = conn_flush(c);
		if (fr < 0) {
			/* A TLS failure was counted with its reason already. */
			if (fr != FLUSH_NOTED)
				note_error(c, E_CLOSED, "write failed", 12);
			conn_close(c, true);
			return;
		}
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 ||
	    ((ev & EPOLLOUT) != 0 && c->r_wants_out))
		conn_on_readable(c);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];

	for (unsigned i = 0; i < w->nconns; i++)
		conn_open(&w->conns[i]);
	for (;;) {
		uint64_t t = now_ns();
		int n, timeout_ms;

		if (t >= T_END)
			break;
		timeout_ms = (int)((T_END - t) / 1000000) + 1;
		if (w->nwaiting > 0 && timeout_ms > 10)
			timeout_ms = 10;
		n = epoll_wait(w->ep, evs, 256, timeout_ms);
		for (int i = 0; i < n; i++)
			conn_on_event(evs[i].data.ptr, evs[i].events);
		if (w->nwaiting > 0) {
			t = now_ns();
			for (unsigned i = 0; i < w->nconns; i++) {
				struct conn *c = &w->conns[i];
				if (c->retry_at != 0 && t >= c->retry_at) {
					c->retry_at = 0;
					w->nwaiting--;
					if (t < T_END)
						conn_open(c);
				}
			}
		}
	}
	for (unsigned i = 0; i < w->nconns; i++)
		conn_close(&w->conns[i], false);
	return NULL;
}

/* ---- command line ---- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: loadgen --url http[s]://127.0.0.1:PORT/PATH [options]\n"
	    "  --mode legacy|modern   legacy: one session per connection "
	    "(initialize,\n"
	    "                         " LEGACY_VERSION "); modern: "
	    MODERN_VERSION ", no session (default legacy)\n"
	    "  --concurrency N        connections, one call in flight each "
	    "(default 16)\n"
	    "  --duration S           measured seconds (default 10)\n"
	    "  --warmup S             seconds run but not measured (default 2)\n"
	    "  --tool NAME            tool to call with {\"text\":\"hello\"} "
	    "(default echo)\n"
	    "  --header \"K: V\"        extra request header, sent on every "
	    "request\n                         (repeatable)\n"
	    "  --cacert FILE          https: trust these CAs (PEM) instead of "
	    "the\n                         system store; the URL's host is "
	    "checked\n"
	    "  --tls-version 1.2|1.3  https: the only version offered "
	    "(default 1.3)\n"
	    "  --threads N            worker threads (default 1)\n"
	    "  --json                 one JSON object on stdout\n"
	    "Only loopback targets are accepted. Exit status: 0 when calls "
	    "succeeded\nwith no error, 1 when any error was counted or no call "
	    "completed, 2 on\nbad usage.\n");
}

static bool
parse_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
parse_seconds(const char *s, double min, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= min) ||
	    v > LG_MAX_DURATION_S)
		return false;
	*out = v;
	return true;
}

/* Accept http(s)://HOST[:PORT][/PATH] where HOST is loopback only. */
static bool
parse_url(const char *url)
{
	const char *p, *hs, *he, *pe, *auth;
	char host[LG_HOST_MAX];
	unsigned long long port;
	size_t hl;

	if (strlen(url) >= sizeof(O.url))
		return false;
	if (strncmp(url, "http://", 7) == 0) {
		O.tls = false;
		auth = url + 7;
		port = 80;
	} else if (strncmp(url, "https://", 8) == 0) {
		O.tls = true;
		auth = url + 8;
		port = 443;
	} else {
		fprintf(stderr, "loadgen: --url must be http(s)://HOST:PORT/PATH\n");
		return false;
	}
	memcpy(O.url, url, strlen(url) + 1);
	hs = auth;
	if (*hs == '[') {
		he = strchr(hs, ']');
		if (he == NULL)
			return false;
		p = he + 1;
		hs++;
	} else {
		he = hs + strcspn(hs, ":/");
		p = he;
	}
	hl = (size_t)(he - hs);
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	/* TLS checks the certificate against the host as written. */
	memcpy(O.host, host, hl + 1);
	pe = p + strcspn(p, "/");
	if (*p == ':') {
		char pbuf[8];
		size_t pl = (size_t)(pe - p - 1);
		if (pl == 0 || pl >= sizeof(pbuf))
			return false;
		memcpy(pbuf, p + 1, pl);
		pbuf[pl] = '\0';
		if (!parse_uint(pbuf, 1, 65535, &port))
			return false;
	} else if (p != pe) {
		return false;
	}
	if (*pe == '\0') {
		memcpy(O.path, "/", 2);
	} else {
		if (strlen(pe) >= sizeof(O.path) || strpbrk(pe, " \r\n") != NULL)
			return false;
		memcpy(O.path, pe, strlen(pe) + 1);
	}
	if ((size_t)(pe - auth) >= sizeof(O.host_hdr))
		return false;
	memcpy(O.host_hdr, auth, (size_t)(pe - auth));
	O.host_hdr[pe - auth] = '\0';

	memset(&O.addr, 0, sizeof(O.addr));
	if (strcasecmp(host, "localhost") == 0)
		memcpy(host, "127.0.0.1", 10);
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *)&O.addr;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&O.addr;
		if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
			/* Load tests target loopback only (127.0.0.0/8). */
			if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
				goto not_loopback;
			a4->sin_family = AF_INET;
			O.host_is_ip = strcasecmp(O.host, "localhost") != 0;
			a4->sin_port = htons((uint16_t)port);
			O.addrlen = sizeof(*a4);
			return true;
		}
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
			if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
				goto not_loopback;
			a6->sin6_family = AF_INET6;
			O.host_is_ip = true;
			a6->sin6_port = htons((uint16_t)port);
			O.addrlen = sizeof(*a6);
			return true;
		}
	}
not_loopback:
	fprintf(stderr, "loadgen: refusing host '%s': load tests target "
	    "loopback only (127.0.0.0/8, localhost, [::1])\n", host);
	return false;
}

static bool
valid_tool(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= LG_TOOL_MAX)
		return false;
	/* Interpolated into JSON and a header unescaped, so keep it plain. */
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-./") == n;
}

static bool
add_header(const char *h)
{
	const char *colon = strchr(h, ':');
	size_t n = strlen(h);

	if (O.nheaders >= LG_MAX_HEADERS || n >= LG_MAX_HDR_LINE ||
	    colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL)
		return false;
	memcpy(O.headers[O.nheaders++], h, n + 1);
	return true;
}

static int
parse_args(int argc, char **argv)
{
	bool have_url = false;
	unsigned long long v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--json") == 0) {
			O.json = true;
			continue;
		}
		if (val == NULL)
			goto bad;
		i++;
		if (strcmp(a, "--url") == 0) {
			if (!parse_url(val))
				return -1;
			have_url = true;
		} else if (strcmp(a, "--mode") == 0) {
			if (strcmp(val, "legacy") == 0)
				O.mode = MODE_LEGACY;
			else if (strcmp(val, "modern") == 0)
				O.mode = MODE_MODERN;
			else
				goto bad;
		} else if (strcmp(a, "--concurrency") == 0) {
			if (!parse_uint(val, 1, LG_MAX_CONNS, &v))
				goto bad;
			O.concurrency = (unsigned)v;
		} else if (strcmp(a, "--threads") == 0) {
			if (!parse_uint(val, 1, LG_MAX_THREADS, &v))
				goto bad;
			O.threads = (unsigned)v;
		} else if (strcmp(a, "--duration") == 0) {
			if (!parse_seconds(val, 0.1, &O.duration_s))
				goto bad;
		} else if (strcmp(a, "--warmup") == 0) {
			if (!parse_seconds(val, 0, &O.warmup_s))
				goto bad;
		} else if (strcmp(a, "--tool") == 0) {
			if (!valid_tool(val))
				goto bad;
			memcpy(O.tool, val, strlen(val) + 1);
		} else if (strcmp(a, "--header") == 0) {
			if (!add_header(val))
				goto bad;
		} else if (strcmp(a, "--cacert") == 0) {
			if (val[0] == '\0' || strlen(val) >= sizeof(O.cacert))
				goto bad;
			memcpy(O.cacert, val, strlen(val) + 1);
		} else if (strcmp(a, "--tls-version") == 0) {
			if (strcmp(val, "1.2") == 0)
				O.tls_version = TLS1_2_VERSION;
			else if (strcmp(val, "1.3") == 0)
				O.tls_version = TLS1_3_VERSION;
			else
				goto bad;
		} else {
			goto bad;
		}
		continue;
bad:
		fprintf(stderr, "loadgen: bad option or value: %s%s%s\n", a,
		    val ? " " : "", val ? val : "");
		return -1;
	}
	if (!have_url) {
		fprintf(stderr, "loadgen: --url is required\n");
		return -1;
	}
	if (O.threads > O.concurrency)
		O.threads = O.concurrency;
	if (O.cacert[0] != '\0' && !O.tls) {
		fprintf(stderr, "loadgen: --cacert needs an https:// URL\n");
		return -1;
	}
	return 0;
}

/* The client context: one version pinned, peer verified, no resumption
 * (each connection is one full session, made during the warm-up). */
static int
tls_setup(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char reason[256];

	if (ctx == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, O.tls_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, O.tls_version) != 1)
		goto fail;
	if (O.cacert[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, O.cacert, NULL) != 1)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* A peer that drops TCP without close_notify ends the stream like a
	 * plain server would, rather than as a TLS failure. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* Read whole socket buffers rather than a record header and then its
	 * body: half the read calls. The read loop drains what OpenSSL holds
	 * (SSL_has_pending), since epoll cannot see it. */
	SSL_CTX_set_read_ahead(ctx, 1);
	TLS_CTX = ctx;
	return 0;
fail:
	ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
	fprintf(stderr, "loadgen: TLS setup failed%s%s: %s\n",
	    O.cacert[0] ? " with " : "", O.cacert, reason);
	SSL_CTX_free(ctx);
	return -1;
}

/* ---- report ---- */

static double
us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* CPU seconds this process used (user + system), all threads. */
static double
self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Print the results; returns the exit status. */
static int
report(struct worker *ws, double window_s, double wall_s)
{
	static struct hist h;
	uint64_t calls = 0, errs[E_NKINDS] = { 0 }, total_err = 0;
	const char *first = "", *proto = "", *tls = "";
	uint64_t hs = 0, hs_window = 0;
	double rate, cpu = self_cpu_s();

	for (unsigned i = 0; i < O.threads; i++) {
		hist_merge(&h, &ws[i].h);
		calls += ws[i].calls;
		for (int k = 0; k < E_NKINDS; k++)
			errs[k] += ws[i].errors[k];
		if (first[0] == '\0')
			first = ws[i].first_err;
		if (proto[0] == '\0')
			proto = ws[i].proto_seen;
		if (tls[0] == '\0')
			tls = ws[i].tls_seen;
		hs += ws[i].handshakes;
		hs_window += ws[i].handshakes_in_window;
	}
	for (int k = 0; k < E_NKINDS; k++)
		total_err += errs[k];
	rate = window_s > 0 ? (double)calls / window_s : 0;
	if (O.mode == MODE_MODERN)
		proto = MODERN_VERSION;

	if (O.json) {
		json_t *o = json_object(), *lat = json_object(),
		    *ek = json_object();
		char *s;
		for (int k = 0; k < E_NKINDS; k++)
			json_object_set_new(ek, err_names[k],
			    json_integer((json_int_t)errs[k]));
		json_object_set_new(lat, "p50", json_real(us(hist_quantile(&h, .50))));
		json_object_set_new(lat, "p90", json_real(us(hist_quantile(&h, .90))));
		json_object_set_new(lat, "p99", json_real(us(hist_quantile(&h, .99))));
		json_object_set_new(lat, "p999", json_real(us(hist_quantile(&h, .999))));
		json_object_set_new(lat, "max", json_real(us(h.max)));
		json_object_set_new(lat, "mean", json_real(h.n ?
		    us(h.sum / h.n) : 0));
		json_object_set_new(o, "url", json_string(O.url));
		json_object_set_new(o, "mode", json_string(
		    O.mode == MODE_LEGACY ? "legacy" : "modern"));
		json_object_set_new(o, "protocol_version", json_string(proto));
		json_object_set_new(o, "tool", json_string(O.tool));
		if (O.tls) {
			/* Handshakes in the window mean reconnections were
			 * measured: the window then includes their cost. */
			json_object_set_new(o, "tls", json_string(tls));
			json_object_set_new(o, "tls_handshakes",
			    json_integer((json_int_t)hs));
			json_object_set_new(o, "tls_handshakes_in_window",
			    json_integer((json_int_t)hs_window));
		}
		json_object_set_new(o, "concurrency", json_integer(O.concurrency));
		json_object_set_new(o, "threads", json_integer(O.threads));
		json_object_set_new(o, "duration_s", json_real(window_s));
		json_object_set_new(o, "warmup_s", json_real(O.warmup_s));
		json_object_set_new(o, "calls", json_integer((json_int_t)calls));
		json_object_set_new(o, "calls_per_s", json_real(rate));
		json_object_set_new(o, "errors", json_integer((json_int_t)total_err));
		json_object_set_new(o, "errors_by_kind", ek);
		json_object_set_new(o, "first_error", json_string(first));
		/* So a reader can tell whether the generator was the limit. */
		json_object_set_new(o, "loadgen_cpu_s", json_real(cpu));
		json_object_set_new(o, "loadgen_cpu_pct", json_real(wall_s > 0 ?
		    100 * cpu / wall_s : 0));
		json_object_set_new(o, "latency_us", lat);
		s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
		if (s != NULL)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("loadgen: %s mode=%s proto=%s tool=%s concurrency=%u "
		    "threads=%u\n", O.url,
		    O.mode == MODE_LEGACY ? "legacy" : "modern",
		    proto[0] ? proto : "-", O.tool, O.concurrency, O.threads);
		printf("  window   %.2f s (after %.1f s warmup)\n", window_s,
		    O.warmup_s);
		if (O.tls)
			printf("  tls      %s, %" PRIu64 " handshakes (%" PRIu64
			    " in the window)\n", tls[0] ? tls : "-", hs,
			    hs_window);
		printf("  calls    %" PRIu64 " (%.1f calls/s)\n", calls, rate);
		printf("  latency  p50 %.1f us  p90 %.1f us  p99 %.1f us  "
		    "p99.9 %.1f us  max %.1f us\n",
		    us(hist_quantile(&h, .50)), us(hist_quantile(&h, .90)),
		    us(hist_quantile(&h, .99)), us(hist_quantile(&h, .999)),
		    us(h.max));
		printf("  errors   %" PRIu64, total_err);
		for (int k = 0; k < E_NKINDS; k++)
			if (errs[k] != 0)
				printf(" %s=%" PRIu64, err_names[k], errs[k]);
		printf("\n");
		if (first[0] != '\0')
			printf("  first error: %s\n", first);
		printf("  loadgen  %.2f s CPU over %.2f s (%.0f %% of one core)\n",
		    cpu, wall_s, wall_s > 0 ? 100 * cpu / wall_s : 0);
	}
	fflush(stdout);
	return (total_err > 0 || calls == 0) ? 1 : 0;
}

int
main(int argc, char **argv)
{
	struct worker *ws = NULL;
	unsigned i;
	uint64_t t_stop;
	int rc;

	if (parse_args(argc, argv) < 0) {
		fprintf(stderr, "loadgen: see loadgen --help\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (O.tls && tls_setup() < 0)
		return 2;
	ws = calloc(O.threads, sizeof(*ws));
	if (ws == NULL)
		return 2;
	for (i = 0; i < O.threads; i++) {
		ws[i].idx = i;
		ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
		ws[i].conns = calloc(O.concurrency / O.threads + 1,
		    sizeof(struct conn));
		if (ws[i].ep < 0 || ws[i].conns == NULL)
			return 2;
	}
	for (i = 0; i < O.concurrency; i++) {
		struct worker *w = &ws[i % O.threads];
		struct conn *c = &w->conns[w->nconns++];
		c->w = w;
		c->fd = -1;
		c->phase = O.mode == MODE_LEGACY ? PH_INIT : PH_RUN;
		c->wbuf = malloc(LG_REQ_MAX);
		c->rbuf = malloc(LG_RBUF_INIT);
		c->rcap = LG_RBUF_INIT;
		if (c->wbuf == NULL || c->rbuf == NULL)
			return 2;
	}
	T_START = now_ns();
	T_WARM = T_START + (uint64_t)(O.warmup_s * 1e9);
	T_END = T_WARM + (uint64_t)(O.duration_s * 1e9);
	for (i = 0; i < O.threads; i++)
		if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0)
			return 2;
	for (i = 0; i < O.threads; i++)
		pthread_join(ws[i].th, NULL);
	t_stop = now_ns();
	rc = report(ws, (double)(T_END - T_WARM) / 1e9,
	    (double)(t_stop - T_START) / 1e9);
	for (i = 0; i < O.threads; i++) {
		for (unsigned j = 0; j < ws[i].nconns; j++) {
			free(ws[i].conns[j].wbuf);
			free(ws[i].conns[j].rbuf);
			free(ws[i].conns[j].body);
		}
		free(ws[i].conns);
		close(ws[i].ep);
	}
	free(ws);
	SSL_CTX_free(TLS_CTX);
	return rc;
}
