/*
 * Outbound HTTP GET with libcurl's multi interface on the libevent loop.
 *
 * libcurl tells us which sockets to watch (socket callback) and when it
 * next needs to be woken (timer callback); libevent events call back into
 * curl_multi_socket_action. Nothing here blocks: name resolution is done by
 * libcurl's threaded resolver.
 */
#include "fetch.h"

#include <arpa/inet.h>
#include <dlfcn.h>
/* The calls go through the table below: no type-checking macros. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errors.h"
#include "log.h"
#include "util.h"

/*
 * libcurl is loaded on first use, not linked. Only OAuth with a remote
 * JWKS (or issuer discovery) needs it, and loading it pulls in a TLS stack
 * of its own (GnuTLS), Kerberos and PKCS#11 whose constructors run at
 * process start: several MiB of resident memory a gateway without OAuth
 * would carry for nothing. If it cannot be loaded, a fetcher cannot be
 * made and the configuration that needs one is refused (fail closed).
 */
static struct {
	int state;		/* 0 not tried, 1 loaded, -1 failed */
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	void (*free_)(void *);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLU *(*url)(void);
	void (*url_cleanup)(CURLU *);
	CURLUcode (*url_get)(const CURLU *, CURLUPart, char **, unsigned int);
	CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
} C;

static int
curl_load(void)
{
	void *h;

	if (C.state != 0)
		return C.state > 0 ? 0 : PC_E_UNAVAIL;
	C.state = -1;
	h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		pc_error("cannot load libcurl (libcurl.so.4): %s", dlerror());
		return PC_E_UNAVAIL;
	}
#define SYM(field, name) \
	if ((*(void **)&C.field = dlsym(h, name)) == NULL) { \
		pc_error("libcurl lacks %s", name); \
		return PC_E_UNAVAIL; \
	}
	SYM(global_init, "curl_global_init")
	SYM(global_cleanup, "curl_global_cleanup")
	SYM(easy_init, "curl_easy_init")
	SYM(easy_setopt, "curl_easy_setopt")
	SYM(easy_getinfo, "curl_easy_getinfo")
	SYM(easy_cleanup, "curl_easy_cleanup")
	SYM(easy_strerror, "curl_easy_strerror")
	SYM(free_, "curl_free")
	SYM(multi_init, "curl_multi_init")
	SYM(multi_setopt, "curl_multi_setopt")
	SYM(multi_add_handle, "curl_multi_add_handle")
	SYM(multi_remove_handle, "curl_multi_remove_handle")
	SYM(multi_assign, "curl_multi_assign")
	SYM(multi_cleanup, "curl_multi_cleanup")
	SYM(multi_info_read, "curl_multi_info_read")
	SYM(multi_socket_action, "curl_multi_socket_action")
	SYM(url, "curl_url")
	SYM(url_cleanup, "curl_url_cleanup")
	SYM(url_get, "curl_url_get")
	SYM(url_set, "curl_url_set")
#undef SYM
	/* The handle stays open for the life of the process: libcurl keeps
	 * global state that must not be unmapped under it. */
	C.state = 1;
	return 0;
}

/* curl.h wraps these four in argument-count macros; ours replace them. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#undef curl_share_setopt
#define curl_global_init C.global_init
#define curl_global_cleanup C.global_cleanup
#define curl_easy_init C.easy_init
#define curl_easy_setopt C.easy_setopt
#define curl_easy_getinfo C.easy_getinfo
#define curl_easy_cleanup C.easy_cleanup
#define curl_easy_strerror C.easy_strerror
#define curl_free C.free_
#define curl_multi_init C.multi_init
#define curl_multi_setopt C.multi_setopt
#define curl_multi_add_handle C.multi_add_handle
#define curl_multi_remove_handle C.multi_remove_handle
#define curl_multi_assign C.multi_assign
#define curl_multi_cleanup C.multi_cleanup
#define curl_multi_info_read C.multi_info_read
#define curl_multi_socket_action C.multi_socket_action
#define curl_url C.url
#define curl_url_cleanup C.url_cleanup
#define curl_url_get C.url_get
#define curl_url_set C.url_set

/* First allocation of a response body; it doubles up to max_bytes. */
#define FETCH_INITIAL_BUF 4096u

struct pc_fetch_req {
	struct pc_fetcher *f;
	CURL *easy;
	CURLU *url;		/* parsed once, handed to curl as is */
	char *buf;
	size_t len, cap, max;
	int over;		/* body went past max */
	pc_fetch_done_fn done;
	void *arg;
	struct pc_fetch_req *prev, *next;
};

struct pc_fetch_sock {
	struct pc_fetcher *f;
	struct event *ev;
	curl_socket_t fd;
	struct pc_fetch_sock *prev, *next;
};

struct pc_fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct pc_fetch_req *reqs;
	struct pc_fetch_sock *socks;
	unsigned pending;
};

/* ---- URL policy ---------------------------------------------------------- */

static int
host_is_loopback(const char *host)
{
	unsigned char a[16];
	char tmp[64];
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	/* libcurl reports IPv6 hosts with their brackets. */
	if (n >= 2 && n < sizeof(tmp) && host[0] == '[' && host[n - 1] == ']') {
		memcpy(tmp, host + 1, n - 2);
		tmp[n - 2] = '\0';
		host = tmp;
	}
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char lo[16] = { [15] = 1 };
		return memcmp(a, lo, sizeof(lo)) == 0;
	}
	return 0;
}

/* Parse and vet url; on success *out is a new CURLU (caller frees). */
static int
url_parse(const char *url, CURLU **out, int *loopback, char *err,
    size_t errlen)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL;
	int rc = PC_E_DENIED;

	*out = NULL;
	*loopback = 0;
	if (curl_load() != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "libcurl is not available");
		return PC_E_UNAVAIL;
	}
	u = curl_url();
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (u == NULL)
		return PC_E_NOMEM;
	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, errlen, "not a valid absolute URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    host[0] == '\0') {
		snprintf(err, errlen, "URL has no host");
		goto out;
	}
	/* Credentials in the URL would be sent to whoever answers. */
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
		snprintf(err, errlen, "URL carries a user name or password");
		goto out;
	}
	*loopback = host_is_loopback(host);
	if (strcasecmp(scheme, "https") == 0) {
		rc = 0;
	} else if (strcasecmp(scheme, "http") == 0) {
		if (!*loopback) {
			snprintf(err, errlen,
			    "plain http is only allowed to a loopback address");
			goto out;
		}
		rc = 0;
	} else {
		snprintf(err, errlen, "scheme must be https");
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(pass);
	if (rc == 0)
		*out = u;
	else
		curl_url_cleanup(u);
	return rc;
}

int
pc_fetch_url_check(const char *url, char *err, size_t errlen)
{
	CURLU *u;
	int loopback;
	int rc = url_parse(url, &u, &loopback, err, errlen);

	if (u != NULL)
		curl_url_cleanup(u);
	return rc;
}

/* ---- requests ------------------------------------------------------------ */

static void
req_free(struct pc_fetch_req *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL) {
		curl_multi_remove_handle(r->f->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_url_cleanup(r->url);
	PC_LIST_UNLINK(r->f->reqs, r, next, prev);
	if (r->f->pending > 0)
		r->f->pending--;
	free(r->buf);
	free(r);
}

static size_t
on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct pc_fetch_req *r = userp;
	size_t n = size * nmemb;

	/* Returning less than n makes libcurl abort with a write error. */
	if (n > r->max - r->len) {
		r->over = 1;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : FETCH_INITIAL_BUF;
		char *nb;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->max + 1)
			cap = r->max + 1;
		nb = realloc(r->buf, cap);
		if (nb == NULL)
			return 0;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	r->buf[r->len] = '\0';
	return n;
}

static void
check_done(struct pc_fetcher *f)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		struct pc_fetch_req *r = NULL;
		long status = 0;
		int rc;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		switch (m->data.result) {
		case CURLE_OK:
			rc = 0;
			break;
		case CURLE_FILESIZE_EXCEEDED:
			rc = PC_E_LIMIT;
			break;
		case CURLE_WRITE_ERROR:
			rc = r->over ? PC_E_LIMIT : PC_E_NOMEM;
			break;
		case CURLE_OPERATION_TIMEDOUT:
			rc = PC_E_TIMEOUT;
			break;
		default:
			rc = PC_E_IO;
			pc_debug("fetch failed: %s",
			    curl_easy_strerror(m->data.result));
			break;
		}
		/* Unlink first: the callback may start a new fetch. */
		pc_fetch_done_fn done = r->done;
		void *arg = r->arg;
		char *body = r->buf;
		size_t len = r->len;
		r->buf = NULL;
		req_free(r);
		if (rc == 0 && body == NULL)
			body = calloc(1, 1);
		if (rc == 0 && body == NULL)
			rc = PC_E_NOMEM;
		done(arg, rc, status, rc == 0 ? body : NULL, rc == 0 ? len : 0);
		free(body);
	}
}

/* ---- libcurl <-> libevent ------------------------------------------------ */

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pc_fetcher *f = arg;
	int running;

	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
}

static int
curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct pc_fetcher *f = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(f->timer);
		return 0;
	}
	/* Never call back into libcurl from here: arm the timer, even for 0. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(f->timer, &tv) == 0 ? 0 : -1;
}

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct pc_fetcher *f = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(f->multi, fd, flags, &running);
	check_done(f);
}

static void
sock_free(struct pc_fetch_sock *s)
{
	if (s == NULL)
		return;
	if (s->ev != NULL)
		event_free(s->ev);
	PC_LIST_UNLINK(s->f->socks, s, next, prev);
	free(s);
}

static int
curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct pc_fetcher *f = userp;
	struct pc_fetch_sock *s = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(f->multi, fd, NULL);
			sock_free(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		s->f = f;
		s->fd = fd;
		s->next = f->socks;
		if (f->socks != NULL)
			f->socks->prev = s;
		f->socks = s;
		curl_multi_assign(f->multi, fd, s);
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s->ev != NULL)
		event_free(s->ev);
	s->ev = event_new(f->base, fd, kind, on_socket, f);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		return -1;
	return 0;
}

/* ---- public -------------------------------------------------------------- */

struct pc_fetcher *
pc_fetcher_new(struct event_base *base)
{
	struct pc_fetcher *f;

	if (base == NULL || curl_load() != 0)
		return NULL;
	/* Reference-counted by libcurl; paired with the cleanup in free. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		goto out;
	f->base = base;
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, on_timer, f);
	if (f->multi == NULL || f->timer == NULL)
		goto out;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
out:
	if (f != NULL) {
		if (f->multi != NULL)
			curl_multi_cleanup(f->multi);
		if (f->timer != NULL)
			event_free(f->timer);
		free(f);
	}
	curl_global_cleanup();
	return NULL;
}

void
pc_fetcher_free(struct pc_fetcher *f)
{
	if (f == NULL)
		return;
	while (f->reqs != NULL)
		req_free(f->reqs);
	/* Cleanup may still report sockets of cached connections through
	 * the callbacks, which need f intact; leftovers are freed after. */
	curl_multi_cleanup(f->multi);
	while (f->socks != NULL)
		sock_free(f->socks);
	event_free(f->timer);
	free(f);
	curl_global_cleanup();
}

unsigned
pc_fetch_pending(const struct pc_fetcher *f)
{
	return f != NULL ? f->pending : 0;
}

int
pc_fetch_get(struct pc_fetcher *f, const char *url, size_t max_bytes,
    unsigned timeout_s, pc_fetch_done_fn done, void *arg)
{
	struct pc_fetch_req *r = NULL;
	char why[128];
	int rc, loopback;

	if (f == NULL || url == NULL || done == NULL || max_bytes == 0 ||
	    timeout_s == 0)
		return PC_E_INVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return PC_E_NOMEM;
	r->f = f;
	r->max = max_bytes;
	r->done = done;
	r->arg = arg;
	rc = url_parse(url, &r->url, &loopback, why, sizeof(why));
	if (rc != 0) {
		pc_warn("fetch refused: %s", why);
		free(r);
		return rc;
	}
	r->easy = curl_easy_init();
	if (r->easy == NULL) {
		curl_url_cleanup(r->url);
		free(r);
		return PC_E_NOMEM;
	}
	/* Linked before any error exit so that req_free can undo it all. */
	r->next = f->reqs;
	if (f->reqs != NULL)
		f->reqs->prev = r;
	f->reqs = r;
	f->pending++;

	rc = PC_E_IO;
	if (curl_easy_setopt(r->easy, CURLOPT_CURLU, r->url) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "https,http") !=
	    CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_MAXREDIRS, 0L) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, (long)timeout_s) !=
	    CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, (long)timeout_s) !=
	    CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)max_bytes) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_write) !=
	    CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "portcullis") !=
	    CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    /* No .netrc, no cookie engine (neither is on by default; said
	     * here so that nobody turns them on by accident). */
	    curl_easy_setopt(r->easy, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED) !=
	    CURLE_OK)
		goto out;
	/* A proxy from the environment is for leaving the host; a loopback
	 * address must never be sent to it. */
	if (loopback &&
	    curl_easy_setopt(r->easy, CURLOPT_NOPROXY, "*") != CURLE_OK)
		goto out;
	if (curl_multi_add_handle(f->multi, r->easy) != CURLM_OK)
		goto out;
	return 0;
out:
	req_free(r);
	return rc;
}
