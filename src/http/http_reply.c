/*
 * Replies of the MCP endpoint: plain JSON bodies, SSE streams, and the
 * exchanges that carry a reply the router produces later. An exchange lives
 * from the request until its reply ends or its client leaves; the client
 * leaving is detected by a socket watch that a sweep arms only for replies
 * that are still pending (see pc_http_sweep_cb).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "../lib/json.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../mcp/router.h"
#include "../audit/audit.h"
#include "../authn/authn.h"
#include "../audit/audit_call.h"
#include "../secrets/redact.h"
#include "../lib/errors.h"
#include "../lib/util.h"
#include "http_int.h"
#include "tls.h"
#include "../limits/flood.h"


/* --- replies ------------------------------------------------------------------ */

static char hsts[64];		/* "max-age=N; includeSubDomains" or "" */

void
pc_http_set_hsts(uint32_t max_age_s)
{
	if (max_age_s == 0)
		hsts[0] = '\0';
	else
		snprintf(hsts, sizeof(hsts), "max-age=%u; includeSubDomains",
		    max_age_s);
}

static void
set_common_headers(struct evhttp_request *req)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	evhttp_add_header(oh, "Cache-Control", "no-store");
	evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
	if (hsts[0] != '\0')
		evhttp_add_header(oh, "Strict-Transport-Security", hsts);
}

/* Send `text` (a serialized JSON body, or NULL for none) as the reply. */
static void
send_text(struct evhttp_request *req, int status, const char *text,
    const char *session_id)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	set_common_headers(req);
	if (session_id != NULL)
		evhttp_add_header(oh, "Mcp-Session-Id", session_id);
	if (text != NULL) {
		evhttp_add_header(oh, "Content-Type", "application/json");
		/* Straight into the reply's buffer: no buffer of our own. */
		evbuffer_add(evhttp_request_get_output_buffer(req), text,
		    strlen(text));
	}
	evhttp_send_reply(req, status, pc_http_reason(status), NULL);
}

/*
 * The request being handled synchronously on the loop, so that a refusal
 * sent before the request reaches the router (a 400 for a bad envelope,
 * 404 for an unknown session, 405, 406, 413, 415, 429...) gets its audit
 * record from pc_http_send_error itself, without every call site having
 * to remember. One loop thread: one scope at a time. A request that gets
 * a record of its own (routed, or recorded directly) marks the scope.
 */
static struct {
	struct pc_http *h;
	struct evhttp_request *req;	/* NULL: no scope */
	const struct pc_rctx *cx;
	const char *method;		/* HTTP method, static */
	bool recorded;
} scope;

void
pc_http_scope_begin(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const char *method)
{
	scope.h = h;
	scope.req = h->audit != NULL ? req : NULL;
	scope.cx = cx;
	scope.method = method;
	scope.recorded = false;
}

void
pc_http_scope_end(void)
{
	scope.req = NULL;
	scope.cx = NULL;
}

/* A refusal before routing: "http.<status>", the HTTP method as the
 * method (the JSON-RPC one may not even parse). */
/* The reason code of a refusal with HTTP `status`: a static string (the
 * flood gate keeps the pointer for its summary). */
static const char *
status_reason(int status)
{
	static const struct { int status; const char *reason; } codes[] = {
		{ 400, "http.400" }, { 401, "http.401" }, { 403, "http.403" },
		{ 404, "http.404" }, { 405, "http.405" }, { 406, "http.406" },
		{ 409, "http.409" }, { 413, "http.413" }, { 415, "http.415" },
		{ 429, "http.429" }, { 500, "http.500" }, { 503, "http.503" },
	};

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].status == status)
			return codes[i].reason;
	return status < 500 ? "http.4xx" : "http.5xx";
}

static void
scope_refusal(struct evhttp_request *req, int status)
{
	struct pc_audit_direct d = { .method = scope.method, .decision = "deny",
	    .status = "refused", .reason = status_reason(status) };

	if (scope.req != req || scope.recorded || status < 400)
		return;
	scope.recorded = true;
	(void)pc_http_audit_direct(scope.h, scope.cx, &d, NULL, NULL);
}

/* Any error answer sent while its request is in scope and has no record
 * yet gets one here (scope_refusal), whichever helper built it. */
void
pc_http_send_json(struct evhttp_request *req, int status, json_t *body,
    const char *session_id)
{
	char *s = body ? pc_json_dump(body) : NULL;

	scope_refusal(req, status);
	send_text(req, status, s, session_id);
	free(s);
}

void
pc_http_send_error(struct evhttp_request *req, int status, json_t *id,
    int code, const char *msg)
{
	json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", id ? id : json_null(), "error", "code", code, "message", msg);

	scope_refusal(req, status);
	pc_http_send_json(req, status, e, NULL);
	json_decref(e);
}

const char *
pc_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/*
 * Once a reply has started, evhttp reads the socket to notice a close, and
 * its read timeout (limits.read_timeout, 10 s by default) ends the
 * connection after that long without a byte either way. Every stream (a
 * session's GET, a listen stream, a POST turned SSE by progress) therefore
 * carries a comment at half of it, or of idle_timeout if smaller: a stream
 * quiet for longer used to be cut, its final answer lost.
 */
static void
arm_keepalive(struct pc_exchange *ex)
{
	const struct pc_limits_conf *l = &ex->h->cfg->limits;
	uint32_t t = l->read_timeout_s < l->idle_timeout_s ?
	    l->read_timeout_s : l->idle_timeout_s;
	uint64_t half_ms = (uint64_t)t * 500u;	/* t >= 1 s (config) */
	struct timeval tv = { (time_t)(half_ms / 1000),
	    (suseconds_t)(half_ms % 1000) * 1000 };

	if (ex->keepalive != NULL)
		return;
	ex->keepalive = event_new(ex->h->base, -1, EV_PERSIST,
	    pc_ex_keepalive_cb, ex);
	if (ex->keepalive != NULL)
		event_add(ex->keepalive, &tv);
}

void
pc_sse_start(struct pc_exchange *ex)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(ex->req);

	set_common_headers(ex->req);
	evhttp_add_header(oh, "Content-Type", "text/event-stream");
	evhttp_add_header(oh, "X-Accel-Buffering", "no");
	evhttp_send_reply_start(ex->req, 200, "OK");
	ex->mode = EX_SSE;
	arm_keepalive(ex);
}

/* An event on the stream. final: the answer itself, always queued (one
 * event more than the backlog; dropping it would end the stream with no
 * answer while the record says ok). */
static void
sse_text_x(struct pc_exchange *ex, const char *s, bool final)
{
	struct evbuffer *b;

	if (ex->req == NULL)
		return;
	/* A client that does not read its stream must not make us buffer
	 * without end: notifications and progress are dropped past it. */
	struct evhttp_connection *evcon = evhttp_request_get_connection(ex->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon)
	    : NULL;
	if (!final && bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(bev)) >
	    PC_MAX_STREAM_BACKLOG) {
		/* Once per stream: a log line per dropped event would let a
		 * client that does not read flood the log instead. */
		if (ex->dropped++ == 0)
			pc_warn("a client stopped reading its stream: events "
			    "past %u bytes of backlog are dropped",
			    PC_MAX_STREAM_BACKLOG);
		return;
	}
	b = evbuffer_new();
	if (b != NULL) {
		evbuffer_add(b, "event: message\ndata: ", 21);
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n\n", 2);
		if (ex->audit != NULL)
			ex->audit->bytes_out += (int64_t)evbuffer_get_length(b);
		evhttp_send_reply_chunk(ex->req, b);
		evbuffer_free(b);
	}
}

static void
sse_text(struct pc_exchange *ex, const char *s)
{
	sse_text_x(ex, s, false);
}

static void
sse_event(struct pc_exchange *ex, json_t *msg)
{
	char *s = ex->req != NULL ? pc_json_dump(msg) : NULL;

	if (s != NULL)
		sse_text(ex, s);
	free(s);
}

/* --- exchange lifecycle --------------------------------------------------------- */

void
pc_ex_audit_cancelled(struct pc_exchange *ex, const char *reason)
{
	/* It was allowed and may have started upstream: on record, or a
	 * client could act and leave without a trace. */
	if (ex->audit != NULL && ex->h->audit != NULL &&
	    pc_audit_call_cancelled(ex->h->audit, ex->audit, reason) != 0)
		pc_error("audit: cannot record a call that ended unanswered "
		    "(%s)", reason);
}


static void
on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct pc_exchange *ex = arg;

	(void)evcon;
	pc_debug("client closed the connection before the reply ended");
	/* The client left before we answered: cancel upstream work. If
	 * libevent detached the request (it does when the reply is still
	 * ours to send), it is ours to free. */
	if (ex->kind == EX_POST && ex->call != NULL) {
		pc_ex_audit_cancelled(ex, "client.closed");
		pc_router_abandon(ex->call);
		ex->call = NULL;
	}
	if (ex->kind == EX_STREAM && ex->session != NULL)
		pc_session_detach_stream(ex->session, ex);
	if (ex->req != NULL && evhttp_request_get_connection(ex->req) == NULL)
		evhttp_request_free(ex->req);
	ex->req = NULL;
	ex->evcon = NULL;
	/* A batch's running members would have freed it: none will now. */
	if (ex->kind == EX_BATCH)
		pc_batch_abandon(ex, "client.closed");
	pc_ex_free(ex);
}

/* One exchange per request: small enough for glibc's per-thread cache
 * (requests up to 1032 bytes). Past it every request took the large-chunk
 * path, which first consolidates the fast bins (1.5 % of the gateway's
 * CPU in a profile). */
_Static_assert(sizeof(struct pc_exchange) <= 1032,
    "struct pc_exchange outgrew the malloc cache");

struct pc_exchange *
pc_ex_new(struct pc_http *h, struct evhttp_request *req, enum ex_kind kind)
{
	struct pc_exchange *ex = calloc(1, sizeof(*ex));

	if (ex == NULL)
		return NULL;
	ex->h = h;
	ex->req = req;
	ex->kind = kind;
	ex->evcon = evhttp_request_get_connection(req);
	ex->next = h->exchanges;
	if (h->exchanges != NULL)
		h->exchanges->prev = ex;
	h->exchanges = ex;
	h->active++;
	return ex;
}

/*
 * End a streamed reply. With nothing left to send and no chunked framing
 * (an HTTP/1.0 client), libevent finishes the reply inside
 * evhttp_send_reply_end: it frees the request and, the connection not
 * kept alive, the connection too, whose close callback (on_conn_close)
 * would free the exchange under its caller. So stop listening first and
 * forget both pointers: the caller frees the exchange once.
 */
static void
end_stream(struct pc_exchange *ex)
{
	struct evhttp_request *req = ex->req;

	if (ex->evcon != NULL)
		evhttp_connection_set_closecb(ex->evcon, NULL, NULL);
	ex->evcon = NULL;
	ex->req = NULL;
	if (req != NULL)
		evhttp_send_reply_end(req);
}

/* Called once the exchange will take no more callbacks. */
void
pc_ex_free(struct pc_exchange *ex)
{
	struct pc_http *h = ex->h;

	if (ex->evcon != NULL)
		evhttp_connection_set_closecb(ex->evcon, NULL, NULL);
	if (ex->dropped > 0)
		pc_warn("a stream ended with %lu event(s) dropped for a client "
		    "that did not read them", ex->dropped);
	if (ex->keepalive != NULL)
		event_free(ex->keepalive);
	free(ex->who);
	if (ex->watch != NULL)
		event_free(ex->watch);
	pc_limit_call_end(&ex->lim, NULL);
	pc_audit_call_free(ex->audit);
	pc_ex_unhold(ex);
	json_decref(ex->batch);
	PC_LIST_UNLINK(h->exchanges, ex, next, prev);
	h->active--;
	free(ex);
}

/*
 * evhttp stops reading a connection while the reply is ours to send, so it
 * never sees the client leave. A modern client cancels by closing its
 * stream, and a legacy client that gave up should not keep an upstream
 * busy: watch the socket ourselves. Readable with nothing to read is EOF;
 * readable with data is a pipelined request, which we leave to evhttp
 * (and stop watching).
 */
static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pc_exchange *ex = arg;
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	(void)what;
	/*
	 * POLLRDHUP reports the peer's close even while bytes are still
	 * unread: under TLS a client that leaves cleanly sends close_notify
	 * first, which a peek would take for data. Readable without a close
	 * is a pipelined request (or a TLS record): check again at the next
	 * sweep rather than spin on a level-triggered event. A poll that
	 * failed (EINTR) reports nothing: the same, checked again at the next
	 * sweep. (Returning with the one-shot event spent and ex->watch set
	 * stopped the sweep re-arming it: a client leaving went unseen.)
	 */
	if (poll(&p, 1, 0) < 0)
		p.revents = 0;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) {
		if (ex->evcon != NULL)
			evhttp_connection_free(ex->evcon);	/* on_conn_close */
		return;
	}
	event_free(ex->watch);
	ex->watch = NULL;
}

/* Start watching the socket for EOF. */
static void
ex_arm_watch(struct pc_exchange *ex)
{
	struct bufferevent *bev;

	if (ex->evcon == NULL || ex->watch != NULL)
		return;
	bev = evhttp_connection_get_bufferevent(ex->evcon);
	if (bev == NULL || bufferevent_getfd(bev) < 0)
		return;
	ex->watch = event_new(ex->h->base, bufferevent_getfd(bev), EV_READ,
	    watch_cb, ex);
	if (ex->watch != NULL)
		event_add(ex->watch, NULL);
}

/*
 * Most calls are answered in well under a millisecond; adding and removing
 * a read event for each would cost two epoll_ctl calls per request. So the
 * watch is armed only for replies still pending at the next sweep (at most
 * PC_WATCH_SWEEP_MS later): a client that leaves is noticed within that.
 */
void
pc_http_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pc_http *h = arg;

	(void)fd;
	(void)what;
	for (struct pc_exchange *ex = h->exchanges; ex != NULL; ex = ex->next)
		if (ex->watch == NULL && ex->req != NULL)
			ex_arm_watch(ex);
	pc_http_flood_drain(h, false);
}

/* The reply will be asynchronous: learn when the connection goes away. */
void
pc_ex_watch(struct pc_exchange *ex)
{
	if (ex->evcon == NULL)
		return;
	evhttp_connection_set_closecb(ex->evcon, on_conn_close, ex);
	if (ex->kind == EX_STREAM)
		ex_arm_watch(ex);	/* long-lived by nature */
}

/* Sink for single POST requests and modern listen streams. */
static void
post_message(void *sink, json_t *msg)
{
	struct pc_exchange *ex = sink;

	if (ex->req == NULL)
		return;
	if (ex->mode == EX_PENDING)
		pc_sse_start(ex);
	sse_event(ex, msg);
}

void
pc_ex_audit_begin(struct pc_exchange *ex, const struct pc_rctx *cx,
    const char *era, json_t *msg, const char *session)
{
	struct pc_audit_call *a;

	if (ex->h->audit == NULL)
		return;
	if (scope.req == ex->req)
		scope.recorded = true;	/* the outcome will be recorded */
	a = pc_audit_call_new(ex->h->redactor, pc_router_call_schema(
	    ex->h->router, msg), cx->request_id, &cx->principal, cx->source,
	    era, msg, session);
	if (a == NULL)
		return;		/* post_done refuses to answer unrecorded */
	a->bytes_in = ex->req ? (int64_t)evbuffer_get_length(
	    evhttp_request_get_input_buffer(ex->req)) : -1;
	a->bytes_out = 0;
	ex->audit = a;
}

void
pc_bitem_audit_begin(struct pc_bitem *it, const struct pc_rctx *cx,
    json_t *msg, const char *session)
{
	struct pc_http *h = it->parent->h;

	if (h->audit == NULL)
		return;
	if (scope.req == it->parent->req)
		scope.recorded = true;	/* each member has its record */
	/* NULL: pc_batch_done answers the member with an error. */
	it->audit = pc_audit_call_new(h->redactor, pc_router_call_schema(
	    h->router, msg), cx->request_id, &cx->principal, cx->source,
	    "legacy", msg, session);
}

static const char *
nz(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/*
 * The record of a request's outcome, written before its reply leaves.
 * ready(arg, rc) sends the reply: queued with the other records of this
 * pass of the loop, it runs once the record is in the file (group commit:
 * the fsync follows) or, in strict mode, synced. ready NULL: nobody waits,
 * and the record is in the file when this returns. 0, or negative when the
 * log cannot be written (ready then never runs): the caller withholds the
 * result (fail closed).
 */
/*
 * The record of a request's outcome, written before its reply leaves
 * (pc_audit_call_write): 0 without an audit log; PC_E_NOMEM when its
 * context could not be made (the answer is then withheld).
 */
static int
record_outcome(struct pc_http *h, struct pc_audit_call *a,
    const struct pc_limit_call *lim, json_t *msg, void (*ready)(void *, int),
    void *arg)
{
	if (h->audit == NULL)
		return 0;
	if (a == NULL)
		return PC_E_NOMEM;
	return pc_audit_call_write(h->audit, a, msg, lim->deny_reason, ready,
	    arg);
}

static int
audit_outcome(struct pc_exchange *ex, json_t *msg,
    void (*ready)(void *, int), void *arg)
{
	return record_outcome(ex->h, ex->audit, &ex->lim, msg, ready, arg);
}

/*
 * Whether a record may be written on its own. Denials nobody is
 * accountable for (no principal: before authentication; or `auth: none`,
 * where every local process is `anonymous`) pass a per-source flood gate; what it holds back is counted and summarized (pc_http_flood_
 * drain), so an unauthenticated client cannot fill the audit disk — which
 * would fail the log and, failing closed, refuse everyone. A record someone
 * waits for (durable) is never held back.
 */
static bool
flood_gate(struct pc_http *h, const struct pc_rctx *cx,
    const struct pc_audit_direct *d, void (*durable)(void *, int))
{
	if (h->flood == NULL || durable != NULL ||
	    (cx->principal.id[0] != '\0' &&
	    cx->principal.method != PC_AUTH_NONE) || d->decision == NULL ||
	    strcmp(d->decision, "deny") != 0)
		return true;
	return pc_flood_admit(h->flood, cx->source, d->reason, pc_now_us());
}

static void
flood_summary(void *arg, const struct pc_flood_summary *s)
{
	struct pc_http *h = arg;
	struct pc_audit_request r = {
		.type = "event", .event = "refusals.suppressed",
		.source = s->source, .decision = "deny",
		.reason = "flood.suppressed", .status = "refused",
		.latency_us = -1, .bytes_in = -1, .bytes_out = -1,
	};
	json_t *f = pc_audit_request_fields(&r), *why = json_object();

	for (size_t i = 0; why != NULL && i < s->nreasons; i++)
		json_object_set_new(why, s->reasons[i].reason,
		    json_integer((json_int_t)s->reasons[i].count));
	if (f == NULL || why == NULL ||
	    json_object_set_new(f, "count", json_integer((json_int_t)
	    s->count)) != 0 || json_object_set(f, "reasons", why) != 0 ||
	    json_object_set_new(f, "window_ms", json_integer((json_int_t)
	    ((s->last_us - s->first_us) / 1000))) != 0 ||
	    pc_audit_write(h->audit, f, pc_audit_strict(h->audit) ?
	    pc_audit_no_wait : NULL, NULL) != 0)
		pc_error("audit: cannot record %" PRIu64 " suppressed refusals "
		    "from %s", s->count, s->source);
	pc_warn("%" PRIu64 " refusals from %s were not recorded one by one "
	    "(flood); the audit log has their summary", s->count, s->source);
	json_decref(why);
	json_decref(f);
}

void
pc_http_flood_drain(struct pc_http *h, bool all)
{
	if (h->flood != NULL && h->audit != NULL)
		pc_flood_drain(h->flood, pc_now_us(), all, flood_summary, h);
}

static int
audit_direct(struct pc_http *h, const struct pc_rctx *cx,
    const struct pc_audit_direct *d, void (*durable)(void *, int), void *arg,
    bool gate)
{
	struct pc_audit_request r = {
		.type = "request", .request_id = nz(cx->request_id),
		.source = nz(cx->source),
		.principal = nz(cx->principal.id),
		.key_id = nz(cx->principal.key_id),
		.tenant = nz(cx->principal.tenant),
		.era = d->era, .session = nz(d->session), .method = nz(d->method),
		.tool = nz(d->tool), .upstream = nz(d->upstream),
		.decision = d->decision, .reason = nz(d->reason),
		.status = d->status, .latency_us = -1, .bytes_in = -1,
		.bytes_out = -1,
	};
	int rc;

	if (h->audit == NULL)
		return 0;
	scope.recorded = scope.req != NULL;	/* this request has its record */
	if (gate && !flood_gate(h, cx, d, durable))
		return 0;			/* counted for its summary */
	/* A refusal grants nothing: strict mode does not hold it back. */
	if (durable == NULL && pc_audit_strict(h->audit))
		durable = pc_audit_no_wait;
	rc = pc_audit_write_request(h->audit, &r, durable, arg);
	if (rc != 0)
		pc_error("audit: cannot record a %s: %s", d->method ? d->method :
		    "refusal", pc_audit_error(h->audit) ? pc_audit_error(h->audit)
		    : "invalid record");
	return rc;
}

int
pc_http_audit_direct(struct pc_http *h, const struct pc_rctx *cx,
    const struct pc_audit_direct *d, void (*durable)(void *, int), void *arg)
{
	return audit_direct(h, cx, d, durable, arg, true);
}

bool
pc_http_audit_refusal(struct pc_http *h, const struct pc_rctx *cx,
    const char *reason)
{
	struct pc_audit_direct d = { .decision = "deny", .reason = reason,
	    .status = "refused" };
	struct pc_rctx anon = *cx;

	/* Nobody was authenticated: the record names no principal. */
	memset(&anon.principal, 0, sizeof(anon.principal));
	if (h->audit == NULL)
		return true;
	if (!flood_gate(h, &anon, &d, NULL)) {
		scope.recorded = scope.req != NULL;	/* counted */
		return false;
	}
	(void)audit_direct(h, &anon, &d, NULL, NULL, false);
	return true;
}

/* No record, no answer: the result is withheld (503, or mid-stream an
 * error for the same id; the caller then ends the stream). */
static void
withhold(struct pc_exchange *ex, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");

	pc_error("audit: %s; withholding a result",
	    pc_audit_error(ex->h->audit) ? pc_audit_error(ex->h->audit)
	    : "cannot write");
	if (ex->req != NULL && ex->mode == EX_PENDING) {
		pc_http_send_error(ex->req, 503, id, PC_RPC_UP_UNAVAILABLE,
		    PC_AUDIT_DOWN_MSG);
		ex->req = NULL;
	} else if (ex->req != NULL) {
		/* Mid-stream: the status is sent; the result becomes an
		 * error for the same id, then the stream ends. */
		json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}",
		    "jsonrpc", "2.0", "id", id ? id : json_null(),
		    "error", "code", PC_RPC_UP_UNAVAILABLE, "message",
		    PC_AUDIT_DOWN_MSG);
		if (e != NULL)
			sse_event(ex, e);
		json_decref(e);
	}
}

/* The last answer of a POST (msg NULL: 202 Accepted, or just the end of
 * the stream); session: a new legacy session's id, or NULL. */
static void
send_final_text(struct pc_exchange *ex, int status, json_t *msg,
    const char *text, const char *session)
{
	if (ex->req == NULL)
		return;
	if (ex->mode == EX_PENDING) {
		if (msg != NULL && text != NULL)
			send_text(ex->req, status, text, session);
		else if (msg != NULL)
			pc_http_send_json(ex->req, status, msg, session);
		else
			pc_http_send_json(ex->req, 202, NULL, NULL);
	} else {
		char *own = msg != NULL && text == NULL ? pc_json_dump(msg) :
		    NULL;
		if (msg != NULL && (text != NULL || own != NULL))
			sse_text_x(ex, text != NULL ? text : own, true);
		free(own);
		end_stream(ex);
	}
}

static void
send_final(struct pc_exchange *ex, int status, json_t *msg,
    const char *session)
{
	send_final_text(ex, status, msg, NULL, session);
}

/* A reply held back until its record is written (group commit: the
 * pass's records go out in one write) or synced (fsync: strict). It
 * outlives its exchange if need be: the client may leave, or the front
 * be freed at shutdown, before the log reports. */
struct pc_held {
	struct pc_exchange *ex;		/* NULL once the exchange is gone */
	int status;
	json_t *msg;			/* owned */
	char *text;			/* owned: msg serialized, or NULL */
	char session[72];
};

static struct pc_held *
held_new(struct pc_exchange *ex, int status, json_t *msg, const char *session)
{
	struct pc_held *hd = calloc(1, sizeof(*hd));

	if (hd == NULL)
		return NULL;
	hd->ex = ex;
	hd->status = status;
	hd->msg = json_incref(msg);
	pc_strlcpy(hd->session, session ? session : "", sizeof(hd->session));
	return hd;
}

static void
held_free(struct pc_held *hd)
{
	if (hd == NULL)
		return;
	json_decref(hd->msg);
	free(hd->text);
	free(hd);
}

/* The log has the held reply's record (written, or synced in strict
 * mode): send the reply, or withhold it if the log failed first. */
static void
on_record_ready(void *arg, int rc)
{
	struct pc_held *hd = arg;
	struct pc_exchange *ex = hd->ex;

	if (ex != NULL) {
		ex->held = NULL;
		if (rc != 0) {
			withhold(ex, hd->msg);
			send_final(ex, hd->status, NULL, NULL);
		} else {
			send_final_text(ex, hd->status, hd->msg, hd->text,
			    hd->session[0] != '\0' ? hd->session : NULL);
		}
		ex->mode = EX_DONE;
		pc_ex_free(ex);
	}
	held_free(hd);
}

void
pc_ex_unhold(struct pc_exchange *ex)
{
	if (ex->held != NULL)
		ex->held->ex = NULL;	/* on_record_ready frees it */
	ex->held = NULL;
}

/* An error on its way to a client passes the same redaction as the logs
 * (pc_redact_rpc_failure). */
static void
redact_failure(const struct pc_http *h, json_t *msg)
{
	pc_redact_rpc_failure(h->redactor, msg);
}

static void
post_denied(void *sink, const char *reason)
{
	struct pc_exchange *ex = sink;

	if (ex->audit != NULL)
		ex->audit->denied = reason;
}

static void
post_done(void *sink, int status, json_t *msg)
{
	struct pc_exchange *ex = sink;
	struct pc_held *hd = NULL;
	char *text = NULL;
	int rc = 0;

	ex->call = NULL;
	pc_limit_call_end(&ex->lim, msg);
	redact_failure(ex->h, msg);
	/* The record says how many bytes the answer has: serialize it once,
	 * before the record, and send that text. On a stream the final
	 * event adds its framing to what was streamed before. */
	if (ex->audit != NULL && msg != NULL) {
		text = pc_json_dump(msg);
		if (text != NULL)
			ex->audit->bytes_out += (int64_t)strlen(text) +
			    (ex->mode == EX_PENDING ? 0 : 23);
	}
	if (ex->h->audit != NULL) {
		/* The reply waits for its record (written with the pass's
		 * other records; strict: synced). */
		if (ex->req != NULL &&
		    (hd = held_new(ex, status, msg, NULL)) == NULL)
			rc = PC_E_NOMEM;
		else
			rc = audit_outcome(ex, msg, hd ? on_record_ready : NULL,
			    hd);
		if (rc != 0) {
			held_free(hd);
			withhold(ex, msg);
			msg = NULL;
		} else if (hd != NULL) {
			/* A limit's refusal arrives here before the exchange
			 * is watched: a client that leaves now must still
			 * free ex, never leave on_record_ready a freed req. */
			hd->text = text;
			ex->held = hd;
			pc_ex_watch(ex);
			return;
		}
	}
	send_final_text(ex, status, msg, text, NULL);
	free(text);
	ex->mode = EX_DONE;
	pc_ex_free(ex);
}

void
pc_http_reply_recorded(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const struct pc_audit_direct *d, json_t *resp,
    const char *session)
{
	struct pc_exchange *ex = NULL;
	struct pc_held *hd = NULL;
	int rc = PC_E_NOMEM;

	if (h->audit != NULL && pc_audit_strict(h->audit)) {
		ex = pc_ex_new(h, req, EX_POST);
		hd = ex != NULL ? held_new(ex, 200, resp, session) : NULL;
		if (hd == NULL)
			goto out;
	}
	rc = pc_http_audit_direct(h, cx, d, hd ? on_record_ready : NULL, hd);
	if (rc == 0 && hd != NULL) {
		ex->held = hd;
		pc_ex_watch(ex);	/* a client that leaves frees ex */
		ex = NULL;
		hd = NULL;
	} else if (rc == 0) {
		pc_http_send_json(req, 200, resp, session);
	}
out:
	if (rc != 0)
		pc_http_send_error(req, 503, json_object_get(resp, "id"),
		    PC_RPC_UP_UNAVAILABLE, PC_AUDIT_DOWN_MSG);
	held_free(hd);
	if (ex != NULL)
		pc_ex_free(ex);
	json_decref(resp);
}

static void
post_routed(void *sink, const char *upstream)
{
	pc_audit_call_routed(((struct pc_exchange *)sink)->audit, upstream);
}

const struct pc_sink_ops pc_post_ops = { post_message, post_done,
    post_denied, post_routed, false };

/* Batch items: no streaming (2025-03-26 only, rarely used): messages before
 * the response are dropped, responses collected into one array. */
static void
batch_message(void *sink, json_t *msg)
{
	(void)sink;
	(void)msg;
}

void
pc_batch_flush(struct pc_exchange *ex)
{
	if (ex->batch_wait > 0 || !ex->batch_sealed)
		return;
	/* Strict: the members' records were written without waiting; the
	 * array (their results) leaves only once they are on disk. */
	if (ex->req != NULL && ex->held == NULL && ex->h->audit != NULL &&
	    pc_audit_strict(ex->h->audit) && json_array_size(ex->batch) > 0) {
		struct pc_held *hd = held_new(ex, 200, ex->batch, NULL);
		if (hd != NULL && pc_audit_barrier(ex->h->audit,
		    on_record_ready, hd) == 0) {
			ex->held = hd;
			pc_ex_watch(ex);	/* a client that leaves frees ex */
			return;
		}
		held_free(hd);
		pc_http_send_error(ex->req, 503, NULL, PC_RPC_UP_UNAVAILABLE,
		    PC_AUDIT_DOWN_MSG);
		ex->req = NULL;
	}
	if (ex->req != NULL) {
		if (json_array_size(ex->batch) > 0)
			pc_http_send_json(ex->req, 200, ex->batch, NULL);
		else
			pc_http_send_json(ex->req, 202, NULL, NULL);
	}
	pc_ex_free(ex);
}

static void
bitem_unlink(struct pc_bitem *it)
{
	PC_LIST_UNLINK(it->parent->bitems, it, next, prev);
}

void
pc_batch_abandon(struct pc_exchange *ex, const char *reason)
{
	while (ex->bitems != NULL) {
		struct pc_bitem *it = ex->bitems;

		bitem_unlink(it);
		if (ex->h->audit != NULL && it->audit != NULL &&
		    pc_audit_call_cancelled(ex->h->audit, it->audit,
		    reason) != 0)
			pc_error("audit: cannot record a batch member whose "
			    "client left");
		pc_router_abandon(it->call);
		pc_limit_call_end(&it->lim, NULL);
		pc_audit_call_free(it->audit);
		free(it);
		ex->batch_wait--;
	}
}

void
pc_batch_done(void *sink, int status, json_t *msg)
{
	struct pc_bitem *it = sink;
	struct pc_exchange *ex = it->parent;

	(void)status;
	pc_limit_call_end(&it->lim, msg);
	redact_failure(ex->h, msg);
	if (ex->h->audit != NULL) {
		/* Each member's record is in the file before the batch's
		 * answer leaves; a member that cannot be recorded is answered
		 * with an error instead of its result. */
		if (record_outcome(ex->h, it->audit, &it->lim, msg, NULL,
		    NULL) != 0) {
			pc_error("audit: %s; withholding a batch member's "
			    "result", pc_audit_error(ex->h->audit) ?
			    pc_audit_error(ex->h->audit) : "cannot write");
			msg = pc_rpc_error(json_object_get(msg, "id"),
			    PC_RPC_UP_UNAVAILABLE, PC_AUDIT_DOWN_MSG);
			if (msg != NULL)
				json_array_append_new(ex->batch, msg);
			msg = NULL;
		}
	}
	if (msg != NULL)
		json_array_append(ex->batch, msg);
	bitem_unlink(it);
	ex->batch_wait--;
	pc_audit_call_free(it->audit);
	free(it);
	pc_batch_flush(ex);
}

/* A batch member refused by the policy: its record says deny with this
 * reason (pc_batch_done writes it). */
static void
batch_denied(void *sink, const char *reason)
{
	struct pc_bitem *it = sink;

	if (it->audit != NULL)
		it->audit->denied = reason;
	else
		it->lim.deny_reason = reason;
}

static void
batch_routed(void *sink, const char *upstream)
{
	pc_audit_call_routed(((struct pc_bitem *)sink)->audit, upstream);
}

const struct pc_sink_ops pc_batch_ops = { batch_message, pc_batch_done,
    batch_denied, batch_routed, true };

/* GET streams. */
static void
stream_message(void *sink, json_t *msg)
{
	struct pc_exchange *ex = sink;

	sse_event(ex, msg);
}

static void
stream_done(void *sink, int status, json_t *msg)
{
	struct pc_exchange *ex = sink;

	(void)status;
	(void)msg;
	ex->session = NULL;
	end_stream(ex);
	pc_ex_free(ex);
}

const struct pc_sink_ops pc_stream_ops = { stream_message, stream_done,
    NULL, NULL, false };

void
pc_ex_hold_principal(struct pc_exchange *ex, const struct pc_principal *p)
{
	if (ex->who == NULL)
		ex->who = malloc(sizeof(*ex->who));
	if (ex->who != NULL)
		*ex->who = *p;
}

/*
 * A stream held open is checked again at each keepalive: a key revoked or
 * expired, a token expired, ends it (a request would be refused by now);
 * otherwise its roles follow the credential (a time-boxed grant that
 * ended, a reload's scope_roles). Returns -1 when ex is gone.
 */
static int
recheck(struct pc_exchange *ex)
{
	const char *why = NULL;
	char ident[256];
	bool cert = ex->who->method == PC_AUTH_MTLS &&
	    pc_tls_peer_identity(ex->evcon, ident, sizeof(ident), NULL) == 0;
	int rc = pc_authn_recheck(ex->h->authn, ex->who, cert ? ident : NULL,
	    (int64_t)time(NULL), &why);

	if (rc == 0) {
		if (ex->kind == EX_STREAM && ex->session != NULL)
			pc_session_set_roles(ex->h->router, ex->session,
			    ex->who);
		else if (ex->call != NULL)
			pc_router_listen_set_roles(ex->call, ex->who->roles);
		return 0;
	}
	if (why == NULL)
		why = "auth.unavailable";	/* cannot tell: fail closed */
	pc_info("a stream of principal '%s' ended: %s", ex->who->id, why);
	if (ex->kind == EX_POST && ex->call != NULL) {
		pc_ex_audit_cancelled(ex, why);
		pc_router_abandon(ex->call);
		ex->call = NULL;
	}
	if (ex->evcon == NULL)
		return 0;
	evhttp_connection_free(ex->evcon);	/* on_conn_close frees ex */
	return -1;
}

void
pc_ex_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pc_exchange *ex = arg;
	struct evbuffer *b;

	(void)fd;
	(void)what;
	if (ex->req == NULL)
		return;
	if (ex->who != NULL && recheck(ex) != 0)
		return;
	b = evbuffer_new();
	if (b == NULL)
		return;
	evbuffer_add(b, ": keepalive\n\n", 13);
	if (ex->audit != NULL)
		ex->audit->bytes_out += 13;	/* all a stream sent */
	evhttp_send_reply_chunk(ex->req, b);
	evbuffer_free(b);
}

