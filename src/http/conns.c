/*
 * Connection accounting for the MCP listener; see conns.h.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "../config/config.h"
#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"
#include "conns.h"
#include "http_check.h"

/* A connection's key in the map: its bufferevent's address in hex. */
#define BEV_KEY_LEN (2 * sizeof(void *) + 1)
/* How often the sweep runs: the granularity of every limit here. */
#define CONNS_SWEEP_MS	250u
/* An over-share connection idle this long is shut (a fresh one is given
 * the time to send its request). */
#define CONNS_SHARE_GRACE_MS 1000u
/* Descriptors kept for the rest: upstream pipes, audit files, listeners. */
#define CONNS_FD_RESERVE 256u

struct conn {
	struct bufferevent *bev;	/* one reference is ours */
	uint64_t idle_since_ms;		/* start, or end of the last answer */
	uint64_t last_in_ms;		/* the last bytes received */
	bool busy;			/* a request is being answered */
	bool closing;			/* shut down by us */
	char source[64];		/* "" until the descriptor is known */
	char share[64];			/* what the per-address share counts:
					 * the address, an IPv6 one's /64;
					 * "" when exempt (loopback, proxy) */
	struct evbuffer_cb_entry *watch; /* on the input: evhttp let go */
	char key[BEV_KEY_LEN];		/* bev's address, the map's key */
	struct conn *next, *prev;
};

struct pc_conns {
	struct event_base *base;
	const struct pc_config *cfg;
	struct evconnlistener *lev;
	bool paused;			/* the listener, by us */
	struct conn *head, *tail;	/* oldest first */
	size_t n;
	struct pc_map *by_bev;		/* key -> struct conn */
	struct event *sweep;
	uint64_t said_full_ms, said_source_ms, said_slow_ms;
};

/* The map's key: the address in hex (no printf on the request path). */
static void
bev_key(const struct bufferevent *bev, char out[BEV_KEY_LEN])
{
	pc_hex_encode(&bev, sizeof(bev), out);
}

static void
conn_drop(struct pc_conns *c, struct conn *k)
{
	if (c->tail == k)
		c->tail = k->prev;
	PC_LIST_UNLINK(c->head, k, next, prev);
	(void)pc_map_del(c->by_bev, k->key);
	c->n--;
	if (k->watch != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(k->bev),
		    k->watch);
	/* evhttp's bufferevent_free() leaves it reading: not a byte more. */
	bufferevent_disable(k->bev, EV_READ | EV_WRITE);
	bufferevent_decref(k->bev);
	free(k);
}

/* evhttp freed it: bufferevent_free() leaves no callbacks behind. */
static bool
gone(const struct conn *k)
{
	bufferevent_data_cb r, w;
	bufferevent_event_cb e;
	void *arg;

	bufferevent_getcb(k->bev, &r, &w, &e, &arg);
	return r == NULL && w == NULL && e == NULL && arg == NULL;
}

static void
shut(struct conn *k, const char *why, uint64_t now, uint64_t *said)
{
	evutil_socket_t fd = bufferevent_getfd(k->bev);

	if (fd < 0 || k->closing)
		return;
	/* evhttp sees the end of the stream and frees the connection
	 * itself; never freed here under its feet. */
	(void)shutdown(fd, SHUT_RDWR);
	k->closing = true;
	if (now - *said >= 10000) {
		*said = now;
		pc_warn("connection from %s closed: %s", k->source[0] != '\0' ?
		    k->source : "-", why);
	}
}

/* What an address counts against: IPv6 by its /64 (one host has them
 * all), IPv4 by itself; "" for loopback and trusted proxies, which share
 * nothing (a proxy carries everyone; a local client has other means). */
static void
share_of(const struct pc_config *cfg, const char *src, char *out, size_t n)
{
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN];

	out[0] = '\0';
	if (src[0] == '\0' || strcmp(src, "-") == 0 ||
	    pc_addr_is_loopback(src) || (cfg->ntrusted_proxies > 0 &&
	    pc_addr_in(cfg->trusted_proxies, cfg->ntrusted_proxies, src)))
		return;
	if (strchr(src, ':') != NULL && inet_pton(AF_INET6, src, &a6) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&a6)) {
		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) != NULL) {
			snprintf(out, n, "%s/64", buf);
			return;
		}
	}
	pc_strlcpy(out, src, n);
}

static void
learn_source(const struct pc_conns *c, struct conn *k)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd;

	if (k->source[0] != '\0' || (fd = bufferevent_getfd(k->bev)) < 0)
		return;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, k->source,
	    sizeof(k->source), NULL, 0, NI_NUMERICHOST) != 0)
		pc_strlcpy(k->source, "-", sizeof(k->source));
	share_of(c->cfg, k->source, k->share, sizeof(k->share));
}

/* Full: the listener pauses (said at most every 10 s). */
static void
pause_full(struct pc_conns *c, uint64_t now)
{
	evconnlistener_disable(c->lev);
	if (!c->paused && now - c->said_full_ms >= 10000) {
		c->said_full_ms = now;
		pc_warn("%zu connections open (limits.max_connections): new "
		    "ones wait", c->n);
	}
	c->paused = true;
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pc_conns *c = arg;
	const struct pc_limits_conf *l = &c->cfg->limits;
	uint64_t now = pc_now_ms(), deadline = (uint64_t)l->request_timeout_s *
	    1000u;
	struct pc_map *per = pc_map_new();
	struct conn *k, *next;

	(void)fd;
	(void)what;
	for (k = c->head; k != NULL; k = next) {
		next = k->next;
		if (gone(k)) {
			conn_drop(c, k);
			continue;
		}
		learn_source(c, k);
		if (!k->busy && now - k->idle_since_ms > deadline)
			shut(k, "no whole request within request_timeout",
			    now, &c->said_slow_ms);
		/* Oldest first: the newest of an address past its share go,
		 * once quiet for a moment: a call being answered is never cut
		 * here, nor a request still arriving (request_timeout bounds
		 * that); they count all the same. */
		if (per != NULL && k->share[0] != '\0' && !k->closing &&
		    pc_map_add(per, k->share, 1) >
		    (long)l->max_connections_per_source && !k->busy &&
		    now - k->idle_since_ms >= CONNS_SHARE_GRACE_MS &&
		    now - k->last_in_ms >= CONNS_SHARE_GRACE_MS)
			shut(k, "more connections from this address than "
			    "limits.max_connections_per_source", now,
			    &c->said_source_ms);
	}
	pc_map_free(per);
	if (c->lev == NULL)
		return;
	if (c->n >= l->max_connections) {
		/* Again each time: a pause after accept() failed may have
		 * resumed it meanwhile (admin.c). */
		pause_full(c, now);
	} else if (c->n < l->max_connections && c->paused) {
		evconnlistener_enable(c->lev);
		c->paused = false;
	}
}

int
pc_conns_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_conns **out)
{
	struct pc_conns *c = calloc(1, sizeof(*c));
	struct timeval tv = { 0, CONNS_SWEEP_MS * 1000 };

	*out = NULL;
	if (c == NULL)
		return PC_E_NOMEM;
	c->base = base;
	c->cfg = cfg;
	c->by_bev = pc_map_new();
	c->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, c);
	if (c->by_bev == NULL || c->sweep == NULL ||
	    event_add(c->sweep, &tv) != 0) {
		pc_conns_free(c);
		return PC_E_NOMEM;
	}
	*out = c;
	return 0;
}

void
pc_conns_set_config(struct pc_conns *c, const struct pc_config *cfg)
{
	if (c != NULL)
		c->cfg = cfg;
}

void
pc_conns_set_listener(struct pc_conns *c, struct evconnlistener *lev)
{
	if (c == NULL)
		return;
	c->lev = lev;
	c->paused = false;
}

void
pc_conns_free(struct pc_conns *c)
{
	if (c == NULL)
		return;
	if (c->sweep != NULL)
		event_free(c->sweep);
	while (c->head != NULL)
		conn_drop(c, c->head);
	pc_map_free(c->by_bev);
	free(c);
}

/* Bytes arrived: if evhttp has let the connection go (our reference
 * keeps it until the sweep), it reads no more. */
static void
input_added(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn *k = arg;

	(void)buf;
	if (info->n_added == 0)
		return;
	if (gone(k))
		bufferevent_disable(k->bev, EV_READ | EV_WRITE);
	else
		k->last_in_ms = pc_now_ms();
}

struct bufferevent *
pc_conns_track(struct pc_conns *c, struct bufferevent *bev)
{
	struct conn *k;

	if (bev == NULL || c == NULL)
		return bev;
	k = calloc(1, sizeof(*k));
	if (k != NULL) {
		bev_key(bev, k->key);
		if (pc_map_put(c->by_bev, k->key, k) != 0) {
			free(k);
			k = NULL;
		}
	}
	if (k == NULL) {
		/* Uncounted: served all the same, but said. */
		pc_warn("out of memory counting a connection");
		return bev;
	}
	bufferevent_incref(bev);
	k->bev = bev;
	k->idle_since_ms = pc_now_ms();
	k->watch = evbuffer_add_cb(bufferevent_get_input(bev), input_added,
	    k);
	k->prev = c->tail;
	if (c->tail != NULL)
		c->tail->next = k;
	else
		c->head = k;
	c->tail = k;
	c->n++;
	/* At once, not at the next sweep: libevent accepts until EAGAIN,
	 * a burst would overshoot by a backlog. It stops accepting as soon
	 * as a callback disables the listener. */
	if (c->lev != NULL && c->n >= c->cfg->limits.max_connections)
		pause_full(c, pc_now_ms());
	return bev;
}

static struct conn *
conn_of(struct pc_conns *c, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ?
	    evhttp_connection_get_bufferevent(evcon) : NULL;
	char key[BEV_KEY_LEN];

	if (bev == NULL)
		return NULL;
	bev_key(bev, key);
	return pc_map_get(c->by_bev, key);
}

static void
request_done(struct evhttp_request *req, void *arg)
{
	/* Looked up again, not kept: nothing here trusts a pointer across
	 * evhttp's callbacks. */
	struct conn *k = conn_of(arg, req);

	if (k == NULL)
		return;
	k->busy = false;
	k->idle_since_ms = pc_now_ms();
}

void
pc_conns_request(struct pc_conns *c, struct evhttp_request *req)
{
	struct conn *k;

	if (c == NULL || (k = conn_of(c, req)) == NULL)
		return;
	k->busy = true;
	evhttp_request_set_on_complete_cb(req, request_done, c);
}

bool
pc_conns_full(const struct pc_conns *c)
{
	return c != NULL && c->n >= c->cfg->limits.max_connections;
}

void
pc_conns_check_fds(const struct pc_config *cfg)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	/* The usual soft limit (1024) is max_connections' default: raise it
	 * to what the hard limit allows (bounded: a child's descriptors are
	 * closed up to it where close_range is missing). */
	want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 :
	    rl.rlim_max;
	if (rl.rlim_cur < want) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = was;
	}
	if ((rlim_t)cfg->limits.max_connections + CONNS_FD_RESERVE >
	    rl.rlim_cur)
		pc_warn("limits.max_connections (%u) is close to the open "
		    "files limit (%llu): accept() may run out of descriptors "
		    "first, and upstreams and the audit log need theirs; "
		    "lower it or raise the limit", cfg->limits.max_connections,
		    (unsigned long long)rl.rlim_cur);
}

size_t
pc_conns_count(const struct pc_conns *c)
{
	return c != NULL ? c->n : 0;
}
