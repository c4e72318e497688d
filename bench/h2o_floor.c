/*
 * The h2o floor: the same workload as bench/http_floor.c (answer the load
 * generator's MCP calls directly, with jansson, no upstream, no checks), on
 * libh2o instead of evhttp. It shows what the HTTP server library alone
 * allows on a machine: the evidence DESIGN.md asks for before the HTTP
 * front changes library.
 *
 * Built twice from this file:
 *
 *   build/bench/h2o_floor PORT      h2o on its own event loop (Debian's
 *                                   libh2o-evloop)
 *   build/bench/h2o_uv_floor PORT   h2o built on libuv (Debian's libh2o),
 *                                   its uv loop embedded in a libevent
 *                                   base the way the gateway would run it:
 *                                   libevent watches libuv's backend fd and
 *                                   its next timeout, and runs the uv loop
 *                                   without blocking when either fires, so
 *                                   everything else (upstream pipes,
 *                                   timers, the audit log) stays on
 *                                   libevent
 *
 * Both bind 127.0.0.1 only.
 */
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <h2o.h>
#if H2O_USE_LIBUV
#include <event2/event.h>
#endif
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static int
reply(h2o_req_t *req, int status, const char *reason, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

	req->res.status = status;
	req->res.reason = reason;
	if (s != NULL)
		h2o_add_header(&req->pool, &req->res.headers,
		    H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
	h2o_send_inline(req, s ? s : "", s ? strlen(s) : 0);	/* copies */
	free(s);
	return 0;
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
	json_t *msg, *id, *res;
	const char *method;
	int rc;

	(void)self;
	msg = json_loadb(req->entity.base, req->entity.len,
	    JSON_REJECT_DUPLICATES, NULL);
	id = json_object_get(msg, "id");
	method = json_string_value(json_object_get(msg, "method"));
	if (msg == NULL || method == NULL) {
		rc = reply(req, 400, "Bad Request", NULL);
	} else if (id == NULL) {
		rc = reply(req, 202, "Accepted", NULL);
	} else if (strcmp(method, "initialize") == 0) {
		h2o_add_header_by_str(&req->pool, &req->res.headers,
		    H2O_STRLIT("mcp-session-id"), 0, NULL, H2O_STRLIT("floor"));
		res = json_pack("{s:s, s:O, s:{s:s, s:{}, s:{s:s, s:s}}}",
		    "jsonrpc", "2.0", "id", id, "result", "protocolVersion",
		    "2025-11-25", "capabilities", "serverInfo", "name", "floor",
		    "version", "1");
		rc = reply(req, 200, "OK", res);
		json_decref(res);
	} else {
		const char *t = json_string_value(json_object_get(json_object_get(
		    json_object_get(msg, "params"), "arguments"), "text"));
		res = json_pack("{s:s, s:O, s:{s:[{s:s, s:s}]}}", "jsonrpc",
		    "2.0", "id", id, "result", "content", "type", "text", "text",
		    t ? t : "");
		rc = reply(req, 200, "OK", res);
		json_decref(res);
	}
	json_decref(msg);
	return rc;
}

static int
listen_loopback(long port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	int fd, one = 1;

	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 || bind(fd, (struct sockaddr *)&addr,
	    sizeof(addr)) != 0 || listen(fd, 1024) != 0) {
		fprintf(stderr, "h2o_floor: cannot listen on 127.0.0.1:%ld\n",
		    port);
		return -1;
	}
	return fd;
}

#if H2O_USE_LIBUV

static uv_loop_t uvl;
static struct event *uv_timer;

static void
on_connect(uv_stream_t *listener, int status)
{
	uv_tcp_t *conn;

	if (status != 0)
		return;
	conn = h2o_mem_alloc(sizeof(*conn));
	uv_tcp_init(listener->loop, conn);
	if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
		uv_close((uv_handle_t *)conn, (uv_close_cb)free);
		return;
	}
	h2o_accept(&accept_ctx,
	    h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

/* libuv's fd is readable, or its next timer is due: one non-blocking pass
 * of the uv loop, then re-arm the libevent timer for its next timeout. */
static void
pump(evutil_socket_t fd, short what, void *arg)
{
	int ms;

	(void)fd;
	(void)what;
	(void)arg;
	uv_run(&uvl, UV_RUN_NOWAIT);
	ms = uv_backend_timeout(&uvl);
	if (ms >= 0) {
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(uv_timer, &tv);
	} else {
		evtimer_del(uv_timer);
	}
}

static int
run(int fd)
{
	static uv_tcp_t listener;
	struct event_base *base = event_base_new();
	struct event *ready;

	if (base == NULL || uv_loop_init(&uvl) != 0)
		return 1;
	h2o_context_init(&ctx, &uvl, &config);
	if (uv_tcp_init(&uvl, &listener) != 0 ||
	    uv_tcp_open(&listener, fd) != 0 ||
	    uv_listen((uv_stream_t *)&listener, 1024, on_connect) != 0)
		return 1;
	ready = event_new(base, uv_backend_fd(&uvl), EV_READ | EV_PERSIST,
	    pump, NULL);
	uv_timer = evtimer_new(base, pump, NULL);
	if (ready == NULL || uv_timer == NULL || event_add(ready, NULL) != 0)
		return 1;
	pump(-1, 0, NULL);
	return event_base_dispatch(base) == 0 ? 0 : 1;
}

#else

static void
on_accept(h2o_socket_t *listener, const char *err)
{
	h2o_socket_t *sock;

	if (err == NULL && (sock = h2o_evloop_socket_accept(listener)) != NULL)
		h2o_accept(&accept_ctx, sock);
}

static int
run(int fd)
{
	h2o_socket_t *lsock;

	h2o_context_init(&ctx, h2o_evloop_create(), &config);
	lsock = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
	h2o_socket_read_start(lsock, on_accept);
	while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0)
		;
	return 0;
}

#endif

int
main(int argc, char **argv)
{
	h2o_hostconf_t *hc;
	h2o_handler_t *h;
	char *end;
	long port;
	int fd;

	if (argc != 2 || (port = strtol(argv[1], &end, 10)) <= 0 ||
	    port > 65535 || *end != '\0') {
		fprintf(stderr, "usage: h2o_floor PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	h2o_config_init(&config);
	hc = h2o_config_register_host(&config,
	    h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h = h2o_create_handler(h2o_config_register_path(hc, "/", 0), sizeof(*h));
	h->on_req = on_req;
	accept_ctx.ctx = &ctx;
	accept_ctx.hosts = config.hosts;
	if ((fd = listen_loopback(port)) < 0)
		return 1;
	return run(fd);
}
