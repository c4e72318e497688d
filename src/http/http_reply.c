/*
 * Replies of the MCP endpoint: plain JSON bodies, SSE streams, and the
 * exchanges that carry a reply the router produces later. An exchange lives
 * from the request until its reply ends or its client leaves; the client
 * leaving is detected by a socket watch that a sweep arms only for replies
 * that are still pending (see pc_http_sweep_cb).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
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
#include "http_int.h"


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

void
pc_http_send_json(struct evhttp_request *req, int status, json_t *body,
    const char *session_id)
{
	struct evbuffer *b = evbuffer_new();
	char *s = body ? pc_json_dump(body) : NULL;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	set_common_headers(req);
	if (session_id != NULL)
		evhttp_add_header(oh, "Mcp-Session-Id", session_id);
	if (s != NULL) {
		evhttp_add_header(oh, "Content-Type", "application/json");
		evbuffer_add(b, s, strlen(s));
		free(s);
	}
	evhttp_send_reply(req, status, pc_http_reason(status), b);
	evbuffer_free(b);
}

void
pc_http_send_error(struct evhttp_request *req, int status, json_t *id,
    int code, const char *msg)
{
	json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", id ? id : json_null(), "error", "code", code, "message", msg);

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

void
pc_sse_start(struct pc_exchange *ex)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(ex->req);

	set_common_headers(ex->req);
	evhttp_add_header(oh, "Content-Type", "text/event-stream");
	evhttp_add_header(oh, "X-Accel-Buffering", "no");
	evhttp_send_reply_start(ex->req, 200, "OK");
	ex->mode = EX_SSE;
}

static void
sse_event(struct pc_exchange *ex, json_t *msg)
{
	struct evbuffer *b;
	char *s;

	if (ex->req == NULL)
		return;
	/* A client that does not read its stream must not make us buffer
	 * without end. */
	struct evhttp_connection *evcon = evhttp_request_get_connection(ex->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon)
	    : NULL;
	if (bev != NULL && evbuffer_get_length(bufferevent_get_output(bev)) >
	    PC_MAX_STREAM_BACKLOG) {
		pc_warn("dropping an event for a client that stopped reading");
		return;
	}
	s = pc_json_dump(msg);
	b = evbuffer_new();
	if (s != NULL && b != NULL) {
		evbuffer_add(b, "event: message\ndata: ", 21);
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n\n", 2);
		evhttp_send_reply_chunk(ex->req, b);
	}
	free(s);
	if (b != NULL)
		evbuffer_free(b);
}

/* --- exchange lifecycle --------------------------------------------------------- */

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
		pc_router_abandon(ex->call);
		ex->call = NULL;
	}
	if (ex->kind == EX_STREAM && ex->session != NULL)
		pc_session_detach_stream(ex->session, ex);
	if (ex->req != NULL && evhttp_request_get_connection(ex->req) == NULL)
		evhttp_request_free(ex->req);
	ex->req = NULL;
	ex->evcon = NULL;
	if (ex->kind == EX_BATCH) {
		/* Items still running will find req == NULL; the last one
		 * frees the exchange. */
		if (ex->batch_wait > 0)
			return;
	}
	pc_ex_free(ex);
}

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

/* Called once the exchange will take no more callbacks. */
void
pc_ex_free(struct pc_exchange *ex)
{
	struct pc_http *h = ex->h;

	if (ex->evcon != NULL)
		evhttp_connection_set_closecb(ex->evcon, NULL, NULL);
	if (ex->keepalive != NULL)
		event_free(ex->keepalive);
	if (ex->watch != NULL)
		event_free(ex->watch);
	json_decref(ex->batch);
	if (ex->prev != NULL)
		ex->prev->next = ex->next;
	else
		h->exchanges = ex->next;
	if (ex->next != NULL)
		ex->next->prev = ex->prev;
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
	 * sweep rather than spin on a level-triggered event.
	 */
	if (poll(&p, 1, 0) < 0 && errno == EINTR)
		return;
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

static void
post_done(void *sink, int status, json_t *msg)
{
	struct pc_exchange *ex = sink;

	ex->call = NULL;
	if (ex->req != NULL) {
		if (ex->mode == EX_PENDING) {
			if (msg != NULL)
				pc_http_send_json(ex->req, status, msg, NULL);
			else
				pc_http_send_json(ex->req, 202, NULL, NULL);
		} else {
			if (msg != NULL)
				sse_event(ex, msg);
			evhttp_send_reply_end(ex->req);
		}
	}
	ex->mode = EX_DONE;
	pc_ex_free(ex);
}

const struct pc_sink_ops pc_post_ops = { post_message, post_done };

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
	if (ex->req != NULL) {
		if (json_array_size(ex->batch) > 0)
			pc_http_send_json(ex->req, 200, ex->batch, NULL);
		else
			pc_http_send_json(ex->req, 202, NULL, NULL);
	}
	pc_ex_free(ex);
}

void
pc_batch_done(void *sink, int status, json_t *msg)
{
	struct pc_bitem *it = sink;
	struct pc_exchange *ex = it->parent;

	(void)status;
	if (msg != NULL)
		json_array_append(ex->batch, msg);
	ex->batch_wait--;
	free(it);
	pc_batch_flush(ex);
}

const struct pc_sink_ops pc_batch_ops = { batch_message, pc_batch_done };

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
	if (ex->req != NULL)
		evhttp_send_reply_end(ex->req);
	pc_ex_free(ex);
}

const struct pc_sink_ops pc_stream_ops = { stream_message, stream_done };

void
pc_ex_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pc_exchange *ex = arg;
	struct evbuffer *b;

	(void)fd;
	(void)what;
	if (ex->req == NULL)
		return;
	b = evbuffer_new();
	if (b == NULL)
		return;
	evbuffer_add(b, ": keepalive\n\n", 13);
	evhttp_send_reply_chunk(ex->req, b);
	evbuffer_free(b);
}

