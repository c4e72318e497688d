/*
 * Connections of the MCP listener: how many are open (in all, and per
 * client address), and how long each has taken to send its request.
 *
 * evhttp (libevent 2.1) offers no hook between accept() and a complete
 * request, and no connection cap: a client trickling one byte at a time
 * restarts its inactivity timeout forever (slowloris), holding a
 * descriptor and up to max_body_bytes each. The one hook it has is the
 * bufferevent it asks us to create for each connection: that is where
 * connections are counted. Each is held by a reference of ours, so that
 * its memory outlives evhttp's bufferevent_free(), which leaves it without
 * callbacks: that is how a sweep tells it is gone, and drops our reference
 * (the descriptor is closed then, at most one sweep later).
 *
 * Limits (limits: in the config):
 *  - max_connections: past it, the listener pauses (connections wait in
 *    the kernel's backlog) until some close;
 *  - max_connections_per_source: past it, the newest idle connections of
 *    that address (an IPv6 one's /64) are shut down; loopback and trusted
 *    proxies are exempt (a proxy carries everyone; a local client has
 *    other means, and one local client must not lock the others out);
 *  - request_timeout: a connection not serving a request must complete
 *    the next one within it, from its start or the end of the previous
 *    answer; else it is shut down. A request being answered (an upstream
 *    call, an SSE stream) has no deadline here.
 */
#ifndef PC_HTTP_CONNS_H
#define PC_HTTP_CONNS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct evconnlistener;
struct event_base;
struct evhttp_request;
struct pc_config;
struct pc_conns;

/* cfg borrowed (swap with pc_conns_set_config). 0 or PC_E_NOMEM. */
int pc_conns_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_conns **out);
void pc_conns_set_config(struct pc_conns *c, const struct pc_config *cfg);
/* The listener to pause when full (NULL: none, e.g. after it is closed). */
void pc_conns_set_listener(struct pc_conns *c, struct evconnlistener *lev);
/* After evhttp_free (every connection already freed). Accepts NULL. */
void pc_conns_free(struct pc_conns *c);

/* A new connection's bufferevent (from the bevcb): counted. Returns bev;
 * NULL only if bev is NULL. */
struct bufferevent *pc_conns_track(struct pc_conns *c,
    struct bufferevent *bev);
/* The handler got a whole request on its connection: no deadline until
 * its answer is complete. */
void pc_conns_request(struct pc_conns *c, struct evhttp_request *req);
/* At start: raise the soft open files limit as far as the hard one
 * allows (up to 65536), and warn when max_connections does not fit under
 * it with room for upstreams and the audit log. */
void pc_conns_check_fds(const struct pc_config *cfg);
/* Connections open now (as of the last sweep, plus those since). */
size_t pc_conns_count(const struct pc_conns *c);
/* At max_connections: the listener is to stay paused. */
bool pc_conns_full(const struct pc_conns *c);

#endif
