/*
 * The admin listener: /healthz (the process answers) and /readyz (every
 * upstream finished its first handshake), on its own loopback port so that
 * probes never share limits or allow-lists with MCP clients.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../mcp/router.h"
#include "http_check.h"
#include "conns.h"
#include "http_int.h"

static int
is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* Which gateway a listener belongs to: libevent hands the error callback
 * evhttp's argument, not ours. A process has one gateway (two listeners). */
static struct {
	struct evconnlistener *lev;
	struct pc_http *h;
} guards[4];

void
pc_http_unguard(struct pc_http *h, struct evhttp_bound_socket *bs)
{
	struct evconnlistener *lev = bs != NULL ?
	    evhttp_bound_socket_get_listener(bs) : NULL;

	for (size_t i = 0; i < sizeof(guards) / sizeof(guards[0]); i++)
		if (guards[i].h == h && (lev == NULL || guards[i].lev == lev)) {
			guards[i].lev = NULL;
			guards[i].h = NULL;
		}
}

static void
guard(struct pc_http *h, struct evconnlistener *lev)
{
	for (size_t i = 0; i < sizeof(guards) / sizeof(guards[0]); i++)
		if (guards[i].lev == NULL) {
			guards[i].lev = lev;
			guards[i].h = h;
			return;
		}
	/* Not in this process (one gateway, two listeners): say so. */
	pc_warn("listener not guarded: accept() failures will not pause it");
}

/* Listening again after a pause (accept_failed). */
static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct pc_http *h = arg;

	(void)fd;
	(void)what;
	/* Not while full: the connection count holds it (conns.c). */
	if (h->mcp_sock != NULL && !pc_conns_full(h->conns))
		evconnlistener_enable(evhttp_bound_socket_get_listener(
		    h->mcp_sock));
	if (h->admin_sock != NULL)
		evconnlistener_enable(evhttp_bound_socket_get_listener(
		    h->admin_sock));
}

/*
 * accept() failed for want of a descriptor (or memory). The pending
 * connection stays in the backlog, so the listener is readable at once
 * again: without a pause the loop spun at full CPU, and libevent logged a
 * line per turn (a million a second), as long as a flood of connections
 * held the descriptors. Pause listening for a moment instead, and say so
 * at most every 10 s.
 */
static void
accept_failed(struct evconnlistener *lev, void *arg)
{
	static uint64_t said_ms;
	struct pc_http *h = NULL;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, PC_ACCEPT_PAUSE_MS * 1000 };
	uint64_t now = pc_now_ms();

	(void)arg;			/* evhttp's, not ours */
	for (size_t i = 0; i < sizeof(guards) / sizeof(guards[0]); i++)
		if (guards[i].lev == lev)
			h = guards[i].h;

	if (now - said_ms >= 10000) {
		said_ms = now;
		pc_warn("accept failed: %s; new connections wait %u ms "
		    "(connections open hold the descriptors: lower "
		    "limits.max_connections, or raise the open files limit)",
		    evutil_socket_error_to_string(err), PC_ACCEPT_PAUSE_MS);
	}
	evconnlistener_disable(lev);
	if (h == NULL) {
		evconnlistener_enable(lev);
		return;
	}
	if (h->accept_pause == NULL)
		h->accept_pause = evtimer_new(h->base, accept_resume, h);
	if (h->accept_pause == NULL || evtimer_add(h->accept_pause, &tv) != 0)
		evconnlistener_enable(lev);	/* no timer: as before */
}

int
pc_http_bind(struct pc_http *h, struct evhttp *http,
    const struct pc_listen_conf *l, const char *name,
    struct evhttp_bound_socket **out)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct evhttp_bound_socket *bs;
	uint16_t port = l->port;
	json_t *f;

	/* A network address only for the MCP listener, and only with TLS or
	 * behind declared proxies: the config loader enforces this too; this
	 * is the last line. The admin listener is always loopback. */
	if (l->address == NULL || (!is_loopback(l->address) &&
	    (http != h->mcp || !(h->cfg->tls.enabled ||
	    h->cfg->ntrusted_proxies > 0)))) {
		pc_error("%s listener: refusing a non-loopback address without "
		    "TLS or trusted proxies", name);
		return PC_E_CONFIG;
	}
	bs = evhttp_bind_socket_with_handle(http, l->address, l->port);
	if (bs == NULL) {
		pc_error("%s listener: cannot bind %s port %u", name,
		    l->address, (unsigned)l->port);
		return PC_E_IO;
	}
	guard(h, evhttp_bound_socket_get_listener(bs));
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bs),
	    accept_failed);
	/* Accepted sockets inherit TCP_NODELAY from the listener on Linux.
	 * Without it a reply written in two pieces (TLS writes the HTTP head
	 * and body as two records) waits for the client's delayed ACK:
	 * ~40 ms per request. */
	{
		int one = 1;
		(void)setsockopt(evhttp_bound_socket_get_fd(bs), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one));
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
	    &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	f = json_pack("{s:s, s:s, s:i}", "listener", name, "address",
	    l->address, "port", (int)port);
	pc_log_fields(PC_LOG_INFO, __func__, "listening", f);
	json_decref(f);
	*out = bs;
	return 0;
}

static void
admin_reply(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(body, JSON_COMPACT);

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	if (s != NULL) {
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n", 1);
	}
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Unavailable", b);
	free(s);
	evbuffer_free(b);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct pc_http *h = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Host");
	json_t *body;

	/* The admin listener is loopback only (the config refuses others),
	 * and a page on evil.example that resolves to 127.0.0.1 could read
	 * /readyz (the upstreams' names and states): the Host must name this
	 * machine, as on the MCP listener. An IP literal is no rebinding
	 * (that needs a name): a probe may use 127.0.0.2. */
	if (host == NULL || !(pc_host_is_loopback(host) ||
	    pc_host_is_ip_literal(host) || (h->cfg->nhosts > 0 &&
	    pc_in_list(h->cfg->allowed_hosts, host)))) {
		evhttp_send_error(req, 403, "Forbidden");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	if (strcmp(uri, "/healthz") == 0) {
		body = json_pack("{s:s}", "status", "ok");
		admin_reply(req, 200, body);
		json_decref(body);
	} else if (strcmp(uri, "/readyz") == 0) {
		int ready = pc_router_ready(h->router);
		body = json_pack("{s:s, s:o}", "status", ready ? "ready" :
		    "starting", "upstreams", pc_router_status(h->router));
		admin_reply(req, ready ? 200 : 503, body);
		json_decref(body);
	} else {
		evhttp_send_error(req, 404, "Not Found");
	}
}

void
pc_admin_apply(struct pc_http *h)
{
	evhttp_set_timeout(h->admin, 10);
	evhttp_set_max_body_size(h->admin, 0);
	evhttp_set_max_headers_size(h->admin, 8192);
}

int
pc_admin_start(struct pc_http *h)
{
	h->admin = evhttp_new(h->base);
	if (h->admin == NULL)
		return PC_E_NOMEM;
	pc_admin_apply(h);
	evhttp_set_gencb(h->admin, admin_cb, h);
	return pc_http_bind(h, h->admin, &h->cfg->admin, "admin",
	    &h->admin_sock);
}
