/*
 * The stdio front end (see stdio_front.h). Lines in, lines out; every line
 * passes the same JSON hygiene as an HTTP body, and every request goes
 * through the router exactly as one from the HTTP front would.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "../lib/errors.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../mcp/router.h"
#include "stdio_front.h"

struct req;

struct pc_stdio_front {
	struct event_base *base;
	const struct pc_config *cfg;
	struct pc_router *router;
	struct bufferevent *in, *out;
	struct pc_session *session;	/* after initialize (legacy) */
	struct pc_principal principal;
	struct req *reqs;		/* requests being answered */
	void (*on_eof)(void *);
	void *arg;
	int eof;
};

/* One request's sink. */
struct req {
	struct pc_stdio_front *f;
	struct pc_call *call;
	struct req *next, *prev;
};

static void
put(struct pc_stdio_front *f, json_t *msg)
{
	char *s = pc_json_dump(msg);

	if (s == NULL)
		return;
	/* JSON_COMPACT never emits a raw newline: one message, one line. */
	bufferevent_write(f->out, s, strlen(s));
	bufferevent_write(f->out, "\n", 1);
	free(s);
}

static void
put_error(struct pc_stdio_front *f, json_t *id, int code, const char *msg)
{
	json_t *e = pc_rpc_error(id, code, msg);

	if (e != NULL)
		put(f, e);
	json_decref(e);
}

static void
req_unlink(struct req *q)
{
	struct pc_stdio_front *f = q->f;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		f->reqs = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
}

static void
req_message(void *sink, json_t *msg)
{
	struct req *q = sink;

	put(q->f, msg);
}

static void
req_done(void *sink, int status, json_t *msg)
{
	struct req *q = sink;

	(void)status;
	if (msg != NULL)
		put(q->f, msg);
	req_unlink(q);
	free(q);
}

static const struct pc_sink_ops req_ops = { req_message, req_done, NULL };

/* The session's stream (list_changed and other session-wide messages). */
static void
stream_message(void *sink, json_t *msg)
{
	put(sink, msg);
}

static void
stream_done(void *sink, int status, json_t *msg)
{
	(void)sink;
	(void)status;
	(void)msg;
}

static const struct pc_sink_ops stream_ops = { stream_message, stream_done,
    NULL };

static void
request(struct pc_stdio_front *f, const struct pc_reqinfo *ri, json_t *msg)
{
	struct req *q = calloc(1, sizeof(*q));
	int rc;

	if (q == NULL) {
		put_error(f, json_object_get(msg, "id"), -32603, "Internal error");
		return;
	}
	q->f = f;
	q->next = f->reqs;
	if (f->reqs != NULL)
		f->reqs->prev = q;
	f->reqs = q;
	/* q->call is written before any sink callback; req_done frees q. */
	rc = pc_router_request(f->router, ri, msg, &req_ops, q, &q->call);
	if (rc != 0) {
		req_unlink(q);
		free(q);
		put_error(f, json_object_get(msg, "id"), PC_RPC_BUSY,
		    rc == PC_E_LIMIT ? "Too many requests in flight" :
		    "Internal error");
	}
}

static void
handle_initialize(struct pc_stdio_front *f, json_t *msg)
{
	json_t *result = NULL, *id = json_object_get(msg, "id");
	int rc;

	if (f->session != NULL) {
		put_error(f, id, -32600, "Invalid Request: already initialized");
		return;
	}
	rc = pc_router_initialize(f->router, json_object_get(msg, "params"),
	    &f->principal, &f->session, &result);
	if (rc == PC_E_INVAL) {
		json_t *e = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
		    id, "error", result);
		put(f, e);
		json_decref(e);
		return;
	}
	if (rc != 0) {
		put_error(f, id, -32603, "Internal error");
		return;
	}
	pc_session_attach_stream(f->session, &stream_ops, f);
	json_t *resp = pc_rpc_result(id, result);
	put(f, resp);
	json_decref(resp);
}

static void
handle_modern(struct pc_stdio_front *f, json_t *msg, json_t *meta)
{
	const char *ver = json_string_value(json_object_get(meta,
	    "io.modelcontextprotocol/protocolVersion"));
	json_t *id = json_object_get(msg, "id");
	struct pc_reqinfo ri;

	if (!json_is_object(json_object_get(meta,
	    "io.modelcontextprotocol/clientCapabilities")) || ver == NULL) {
		put_error(f, id, -32602, "Invalid params: _meta must carry "
		    "protocolVersion and clientCapabilities");
		return;
	}
	if (strcmp(ver, PC_MODERN_VERSION) != 0) {
		json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:[s], s:s}}}",
		    "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code",
		    -32022, "message", "Unsupported protocol version", "data",
		    "supported", PC_MODERN_VERSION, "requested", ver);
		put(f, e);
		json_decref(e);
		return;
	}
	if (id == NULL)
		return;		/* modern notifications need no answer */
	ri = (struct pc_reqinfo){ .era = PC_CLIENT_MODERN, .version = ver,
	    .meta = meta, .source = "stdio", .principal = &f->principal };
	request(f, &ri, msg);
}

static void
handle_line(struct pc_stdio_front *f, const char *line, size_t len)
{
	const struct pc_limits_conf *lim = &f->cfg->limits;
	struct pc_json_limits jl = { lim->max_json_depth, lim->max_string_bytes,
	    lim->max_array_items };
	enum pc_json_fault fault;
	char why[128], text[192];
	json_t *msg = NULL, *id, *meta;
	const char *method;
	struct pc_reqinfo ri;

	if (len == 0)
		return;
	if (pc_json_parse(line, len, &jl, &msg, &fault, why, sizeof(why)) != 0) {
		snprintf(text, sizeof(text), "%s: %s", fault == PC_JSON_SYNTAX ?
		    "Parse error" : "Invalid Request", why);
		put_error(f, NULL, fault == PC_JSON_SYNTAX ? -32700 : -32600, text);
		return;
	}
	if (!json_is_object(msg) || !json_is_string(json_object_get(msg,
	    "jsonrpc")) || strcmp(json_string_value(json_object_get(msg,
	    "jsonrpc")), "2.0") != 0) {
		put_error(f, NULL, -32600, "Invalid Request: one JSON-RPC 2.0 "
		    "object per line");
		goto out;
	}
	id = json_object_get(msg, "id");
	if (id != NULL && !json_is_string(id) && !json_is_integer(id)) {
		put_error(f, NULL, -32600, "Invalid Request: id must be a string "
		    "or an integer");
		goto out;
	}
	method = json_string_value(json_object_get(msg, "method"));
	meta = json_object_get(json_object_get(msg, "params"), "_meta");
	if (method != NULL && json_object_get(meta,
	    "io.modelcontextprotocol/protocolVersion") != NULL) {
		handle_modern(f, msg, meta);
		goto out;
	}
	if (method == NULL) {
		/* A response to a request the gateway forwarded. */
		if (id != NULL && f->session != NULL)
			(void)pc_router_client_response(f->router, f->session, msg);
		goto out;
	}
	if (id != NULL && strcmp(method, "initialize") == 0) {
		handle_initialize(f, msg);
		goto out;
	}
	ri = (struct pc_reqinfo){ .era = PC_CLIENT_LEGACY, .session = f->session,
	    .version = f->session ? pc_session_version(f->session) : NULL,
	    .source = "stdio", .principal = &f->principal };
	if (id == NULL) {
		if (f->session != NULL)
			pc_router_notification(f->router, &ri, msg);
		goto out;
	}
	if (f->session == NULL) {
		put_error(f, id, -32600, "Invalid Request: send initialize first "
		    "(or the 2026-07-28 _meta envelope)");
		goto out;
	}
	request(f, &ri, msg);
out:
	json_decref(msg);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct pc_stdio_front *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		handle_line(f, line, n);
		free(line);
	}
	/* A line that never ends is a flood, not a message. */
	if (evbuffer_get_length(in) > f->cfg->limits.max_body_bytes) {
		evbuffer_drain(in, evbuffer_get_length(in));
		put_error(f, NULL, -32600, "Invalid Request: line longer than "
		    "limits.max_body_bytes");
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pc_stdio_front *f = arg;

	(void)bev;
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && !f->eof) {
		f->eof = 1;
		pc_info("stdio client closed its input; shutting down");
		if (f->on_eof != NULL)
			f->on_eof(f->arg);
	}
}

int
pc_stdio_front_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_router *router, int fd_in, int fd_out,
    void (*on_eof)(void *), void *arg, struct pc_stdio_front **out)
{
	struct pc_stdio_front *f;
	struct passwd *pw = getpwuid(getuid());

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return PC_E_NOMEM;
	f->base = base;
	f->cfg = cfg;
	f->router = router;
	f->on_eof = on_eof;
	f->arg = arg;
	f->principal.method = PC_AUTH_NONE;
	snprintf(f->principal.id, sizeof(f->principal.id), "stdio:%s",
	    pw && pw->pw_name ? pw->pw_name : "unknown");
	evutil_make_socket_nonblocking(fd_in);
	evutil_make_socket_nonblocking(fd_out);
	f->in = bufferevent_socket_new(base, fd_in, 0);
	f->out = bufferevent_socket_new(base, fd_out, 0);
	if (f->in == NULL || f->out == NULL) {
		pc_stdio_front_free(f);
		return PC_E_NOMEM;
	}
	bufferevent_setcb(f->in, read_cb, NULL, event_cb, f);
	bufferevent_setcb(f->out, NULL, NULL, event_cb, f);
	bufferevent_enable(f->out, EV_WRITE);
	*out = f;
	return 0;
}

void
pc_stdio_front_start(struct pc_stdio_front *f)
{
	bufferevent_enable(f->in, EV_READ);
}

void
pc_stdio_front_free(struct pc_stdio_front *f)
{
	if (f == NULL)
		return;
	while (f->reqs != NULL) {
		struct req *q = f->reqs;
		req_unlink(q);
		pc_router_abandon(q->call);
		free(q);
	}
	if (f->session != NULL)
		pc_session_detach_stream(f->session, f);
	if (f->out != NULL) {
		/* Whatever is still queued goes out before we go. */
		struct evbuffer *o = bufferevent_get_output(f->out);
		evbuffer_write(o, bufferevent_getfd(f->out));
		bufferevent_free(f->out);
	}
	if (f->in != NULL)
		bufferevent_free(f->in);
	free(f);
}
