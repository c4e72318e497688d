/*
 * The stdio front end (see stdio_front.h). Lines in, lines out; every line
 * passes the same JSON hygiene as an HTTP body, and every request goes
 * through the router exactly as one from the HTTP front would.
 */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "../audit/audit.h"
#include "../audit/audit_call.h"
#include "../lib/errors.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../limits/limit_call.h"
#include "../mcp/router.h"
#include "../secrets/redact.h"
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
	struct req *held;		/* answered, waiting for their record */
	struct pc_audit *audit;		/* borrowed; NULL: no audit log */
	struct pc_limiter *limiter;	/* borrowed; NULL: no limits stage */
	const struct pc_redactor *redactor; /* borrowed; NULL: no arguments
					 * recorded (never unredacted) */
	void (*on_eof)(void *);
	void *arg;
	int eof;
	int in_eof;		/* stdin ended with requests still buffered */
	bool skip_line;		/* the rest of an over-long line is dropped */
	unsigned long dropped;	/* notifications dropped: host not reading */
};

/* One request's sink. Once answered it waits, on f->held, for its
 * record to be written (the answer goes out only then). */
struct req {
	struct pc_stdio_front *f;	/* NULL: the front is gone */
	struct pc_call *call;
	struct req *next, *prev;
	struct pc_audit_call *rec;	/* NULL without an audit log */
	json_t *answer;			/* held until the record is written */
	json_t *id;
	struct pc_limit_call lim;	/* the limits stage */
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

/*
 * A message that is not an answer (progress, a log message, list_changed,
 * a request from an upstream): a notification is dropped past the
 * backlog, as on an HTTP stream. Output of a host that stops reading stdout must not grow
 * without end; answers (bounded by the requests in flight) always go.
 */
static void
put_note(struct pc_stdio_front *f, json_t *msg)
{
	/* A request (elicitation, sampling) always goes: dropped, its
	 * upstream would wait for an answer until its timeout. */
	if (json_object_get(msg, "id") == NULL &&
	    evbuffer_get_length(bufferevent_get_output(f->out)) >
	    PC_MAX_STREAM_BACKLOG) {
		if (f->dropped++ == 0)
			pc_warn("stdio: the host stopped reading: messages "
			    "past %u bytes of backlog are dropped (answers "
			    "are not)", PC_MAX_STREAM_BACKLOG);
		return;
	}
	put(f, msg);
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
req_unlink(struct req **head, struct req *q)
{
	PC_LIST_UNLINK(*head, q, next, prev);
}

static void
req_link(struct req **head, struct req *q)
{
	q->prev = NULL;
	q->next = *head;
	if (*head != NULL)
		(*head)->prev = q;
	*head = q;
}

static void
req_free(struct req *q)
{
	pc_limit_call_end(&q->lim, NULL);	/* unanswered: give back */
	pc_audit_call_free(q->rec);
	json_decref(q->answer);
	json_decref(q->id);
	free(q);
}

/* No record, no answer: the result is replaced by the audit error. */
static void
withhold(struct pc_stdio_front *f, json_t *id)
{
	pc_error("audit: %s; withholding a result", pc_audit_error(f->audit) ?
	    pc_audit_error(f->audit) : "cannot write");
	put_error(f, id, PC_RPC_UP_UNAVAILABLE, PC_AUDIT_DOWN_MSG);
}

/* The answer's record is written (or could not be): answer. */
static void
on_record_ready(void *arg, int rc)
{
	struct req *q = arg;
	struct pc_stdio_front *f = q->f;

	if (f != NULL) {
		req_unlink(&f->held, q);
		if (rc != 0)
			withhold(f, q->id);
		else if (q->answer != NULL)
			put(f, q->answer);
	}
	req_free(q);
}

static void
req_message(void *sink, json_t *msg)
{
	struct req *q = sink;

	put_note(q->f, msg);
}

static void
req_done(void *sink, int status, json_t *msg)
{
	struct req *q = sink;
	struct pc_stdio_front *f = q->f;

	(void)status;
	q->call = NULL;
	req_unlink(&f->reqs, q);
	pc_limit_call_end(&q->lim, msg);
	/* An upstream's failure may quote its own credential. */
	pc_redact_rpc_failure(f->redactor, msg);
	if (f->audit == NULL) {
		if (msg != NULL)
			put(f, msg);
		req_free(q);
		return;
	}
	/* The answer waits for its record, written with the loop pass's
	 * others (strict: synced). */
	q->answer = json_incref(msg);
	if (q->rec == NULL || pc_audit_call_write(f->audit, q->rec, msg,
	    q->lim.deny_reason, on_record_ready, q) != 0) {
		withhold(f, q->id);
		req_free(q);
		return;
	}
	req_link(&f->held, q);
}

/* The policy refused the call: its record says so. */
static void
req_denied(void *sink, const char *reason)
{
	struct req *q = sink;

	if (q->rec != NULL)
		q->rec->denied = reason;
}

static void
req_routed(void *sink, const char *upstream)
{
	pc_audit_call_routed(((struct req *)sink)->rec, upstream);
}

static const struct pc_sink_ops req_ops = { req_message, req_done,
    req_denied, req_routed, false };

/* The session's stream (list_changed and other session-wide messages). */
static void
stream_message(void *sink, json_t *msg)
{
	put_note(sink, msg);
}

static void
stream_done(void *sink, int status, json_t *msg)
{
	(void)sink;
	(void)status;
	(void)msg;
}

static const struct pc_sink_ops stream_ops = { stream_message, stream_done,
    NULL, NULL, false };

static const char *
era_name(const struct pc_reqinfo *ri)
{
	return ri->era == PC_CLIENT_MODERN ? "modern" : "legacy";
}

static struct pc_audit_call *
rec_new(struct pc_stdio_front *f, const struct pc_reqinfo *ri, json_t *msg)
{
	char id[PC_REQUEST_ID_LEN + 1];

	pc_request_id_new(id);
	return pc_audit_call_new(f->redactor, pc_router_call_schema(f->router,
	    msg), id, &f->principal, "stdio", era_name(ri), msg,
	    f->session != NULL && ri->era == PC_CLIENT_LEGACY ?
	    pc_session_id(f->session) : NULL);
}

/*
 * Record what the front answers or accepts itself (a notification, an
 * initialize, a refusal): in the file when this returns. 0, or negative
 * when it could not be recorded (the caller then answers the audit error,
 * or drops a notification).
 */
static int
record_now(struct pc_stdio_front *f, const struct pc_reqinfo *ri, json_t *msg,
    json_t *answer)
{
	struct pc_audit_call *rec;
	int rc;

	if (f->audit == NULL)
		return 0;
	rec = rec_new(f, ri, msg);
	rc = rec != NULL ? pc_audit_call_write(f->audit, rec, answer, NULL,
	    NULL, NULL) : PC_E_NOMEM;
	pc_audit_call_free(rec);
	if (rc != 0)
		pc_error("audit: cannot record a %s: %s",
		    json_string_value(json_object_get(msg, "method")) ?
		    json_string_value(json_object_get(msg, "method")) :
		    "message", pc_audit_error(f->audit) ?
		    pc_audit_error(f->audit) : "invalid record");
	return rc;
}

/*
 * The client's answer to a request the gateway forwarded to it
 * (elicitation, sampling, roots): recorded with the method the upstream
 * asked and that upstream, status from the answer itself ("ok", or
 * "error" with "rpc.<code>"); an id the gateway never sent, or answered
 * already, is a deny ("response.unknown_id"). 0, or negative when it could
 * not be recorded.
 */
static int
record_response(struct pc_stdio_front *f, json_t *msg)
{
	struct pc_reqinfo ri = { .era = PC_CLIENT_LEGACY };
	struct pc_answered what;
	struct pc_audit_call *rec;
	int rc;

	if (f->audit == NULL)
		return 0;
	rec = rec_new(f, &ri, msg);
	if (rec == NULL)
		return PC_E_NOMEM;
	if (pc_router_client_lookup(f->router, f->session, msg, &what) == 0) {
		pc_strlcpy(rec->method, what.method, sizeof(rec->method));
		pc_audit_call_routed(rec, what.upstream);
	} else {
		rec->denied = "response.unknown_id";
	}
	rc = pc_audit_call_write(f->audit, rec, msg, NULL, NULL, NULL);
	pc_audit_call_free(rec);
	if (rc != 0)
		pc_error("audit: cannot record a response: %s",
		    pc_audit_error(f->audit) ? pc_audit_error(f->audit) :
		    "invalid record");
	return rc;
}

/* An answer the front gives itself, recorded first (as its outcome);
 * takes e. */
static void
answer_now(struct pc_stdio_front *f, const struct pc_reqinfo *ri,
    json_t *msg, json_t *id, json_t *e)
{
	if (e != NULL && record_now(f, ri, msg, e) != 0)
		put_error(f, id, PC_RPC_UP_UNAVAILABLE, PC_AUDIT_DOWN_MSG);
	else if (e != NULL)
		put(f, e);
	json_decref(e);
}

/* An error the front answers itself, recorded first (as its outcome). */
static void
refuse(struct pc_stdio_front *f, const struct pc_reqinfo *ri, json_t *msg,
    json_t *id, int code, const char *text)
{
	answer_now(f, ri, msg, id, pc_rpc_error(id, code, text));
}

static void
request(struct pc_stdio_front *f, const struct pc_reqinfo *ri, json_t *msg)
{
	struct req *q = calloc(1, sizeof(*q));
	json_t *id = json_object_get(msg, "id"), *refusal = NULL;
	struct pc_reqinfo iri = *ri;
	int rc, status = 429;

	if (q == NULL) {
		put_error(f, id, -32603, "Internal error");
		return;
	}
	q->f = f;
	q->id = json_incref(id);
	if (f->audit != NULL && (q->rec = rec_new(f, ri, msg)) == NULL) {
		withhold(f, id);	/* it could never be recorded */
		req_free(q);
		return;
	}
	req_link(&f->reqs, q);
	/* The limits stage, as on HTTP: a refusal is answered and recorded
	 * like any answer (deny, the limit's reason), without the status. */
	pc_limit_call_init(&q->lim, f->limiter, f->router, &f->principal, msg,
	    NULL, NULL);
	if (pc_limit_call_admit(&q->lim, id, &status, &refusal) != 0) {
		if (refusal == NULL)
			refusal = pc_rpc_error(id, PC_RPC_LIMITED,
			    "Refused by a limit");
		req_done(q, status, refusal);
		json_decref(refusal);
		return;
	}
	pc_limit_call_route(&q->lim, &iri);
	/* q->call is written before any sink callback; req_done takes q. */
	rc = pc_router_request(f->router, &iri, msg, &req_ops, q, &q->call);
	if (rc != 0) {
		req_unlink(&f->reqs, q);
		req_free(q);
		refuse(f, ri, msg, id, PC_RPC_BUSY, rc == PC_E_LIMIT ?
		    "Too many requests in flight" : "Internal error");
	}
}

static void
handle_initialize(struct pc_stdio_front *f, json_t *msg)
{
	json_t *result = NULL, *id = json_object_get(msg, "id");
	struct pc_reqinfo ri = { .era = PC_CLIENT_LEGACY, .source = "stdio",
	    .principal = &f->principal, .session = f->session };
	int rc;

	/* Every outcome has its record, refusals included (as on HTTP). */
	if (f->session != NULL) {
		refuse(f, &ri, msg, id, -32600,
		    "Invalid Request: already initialized");
		return;
	}
	rc = pc_router_initialize(f->router, json_object_get(msg, "params"),
	    &f->principal, &f->session, &result);
	if (rc == PC_E_INVAL) {
		json_t *e = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
		    id, "error", result);
		if (e != NULL && record_now(f, &ri, msg, e) != 0)
			put_error(f, id, PC_RPC_UP_UNAVAILABLE,
			    PC_AUDIT_DOWN_MSG);
		else if (e != NULL)
			put(f, e);
		json_decref(e);
		return;
	}
	if (rc != 0) {
		refuse(f, &ri, msg, id, -32603, "Internal error");
		return;
	}
	pc_session_attach_stream(f->session, &stream_ops, f);
	json_t *resp = pc_rpc_result(id, result);
	ri.session = f->session;
	/* Recorded (with the new session) before it is answered. */
	if (record_now(f, &ri, msg, resp) != 0)
		put_error(f, id, PC_RPC_UP_UNAVAILABLE, PC_AUDIT_DOWN_MSG);
	else
		put(f, resp);
	json_decref(resp);
}

/*
 * notifications/cancelled naming one of the client's requests in flight:
 * MCP (every revision) says a cancelled request is not answered, and a
 * stdio client, unlike an HTTP one, has no response it still waits for.
 * The call leaves the front before the router would answer it; the
 * upstream is told, the record says cancelled. false when the
 * notification names no call of ours (a session's router may know it).
 */
static bool
cancel_request(struct pc_stdio_front *f, json_t *msg)
{
	json_t *rid = json_object_get(json_object_get(msg, "params"),
	    "requestId");
	const char *m = json_string_value(json_object_get(msg, "method"));

	if (rid == NULL || m == NULL ||
	    strcmp(m, "notifications/cancelled") != 0)
		return false;
	for (struct req *q = f->reqs; q != NULL; q = q->next)
		if (q->call != NULL && json_equal(q->id, rid)) {
			req_unlink(&f->reqs, q);
			if (q->rec != NULL && f->audit != NULL &&
			    pc_audit_call_cancelled(f->audit, q->rec,
			    "client.cancelled") != 0)
				pc_error("audit: cannot record a cancelled "
				    "call");
			pc_router_abandon(q->call);
			req_free(q);
			return true;
		}
	return false;
}

static void
handle_modern(struct pc_stdio_front *f, json_t *msg, json_t *meta)
{
	const char *ver = json_string_value(json_object_get(meta,
	    "io.modelcontextprotocol/protocolVersion"));
	json_t *id = json_object_get(msg, "id");
	struct pc_reqinfo ri;

	ri = (struct pc_reqinfo){ .era = PC_CLIENT_MODERN, .version = ver,
	    .meta = meta, .source = "stdio", .principal = &f->principal };
	if (!json_is_object(json_object_get(meta,
	    "io.modelcontextprotocol/clientCapabilities")) || ver == NULL) {
		refuse(f, &ri, msg, id, -32602, "Invalid params: _meta must "
		    "carry protocolVersion and clientCapabilities");
		return;
	}
	if (strcmp(ver, PC_MODERN_VERSION) != 0) {
		json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:[s], s:s}}}",
		    "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code",
		    -32022, "message", "Unsupported protocol version", "data",
		    "supported", PC_MODERN_VERSION, "requested", ver);
		if (record_now(f, &ri, msg, e) != 0)
			put_error(f, id, PC_RPC_UP_UNAVAILABLE,
			    PC_AUDIT_DOWN_MSG);
		else
			put(f, e);
		json_decref(e);
		return;
	}
	if (id == NULL) {
		/* Modern notifications need no answer, only a record. */
		(void)record_now(f, &ri, msg, NULL);
		(void)cancel_request(f, msg);
		return;
	}
	request(f, &ri, msg);
}

static void
handle_line(struct pc_stdio_front *f, const char *line, size_t len)
{
	const struct pc_limits_conf *lim = &f->cfg->limits;
	struct pc_json_limits jl = { lim->max_json_depth, lim->max_string_bytes,
	    lim->max_array_items, 0 };
	enum pc_json_fault fault;
	char why[128], text[192];
	json_t *msg = NULL, *id, *meta;
	const char *method, *what = NULL;
	struct pc_reqinfo ri;

	if (len == 0)
		return;
	/* Refusals before the message is understood are recorded too
	 * (without a method when there is none). */
	ri = (struct pc_reqinfo){ .era = PC_CLIENT_LEGACY, .source = "stdio",
	    .principal = &f->principal };
	/* A whole line past the cap that arrived in one read: read_cb only
	 * sees lines still open. */
	if (len > f->cfg->limits.max_body_bytes) {
		refuse(f, &ri, NULL, NULL, -32600, "Invalid Request: line "
		    "longer than limits.max_body_bytes");
		return;
	}
	if (pc_json_parse(line, len, &jl, &msg, &fault, why, sizeof(why)) != 0) {
		snprintf(text, sizeof(text), "%s: %s", fault == PC_JSON_SYNTAX ?
		    "Parse error" : "Invalid Request", why);
		refuse(f, &ri, NULL, NULL, fault == PC_JSON_SYNTAX ? -32700 :
		    -32600, text);
		return;
	}
	/* The shapes the HTTP front accepts, no others: `{"jsonrpc":"2.0"}`
	 * used to be dropped unanswered, a non-string method taken for a
	 * response, and an empty one served. */
	if (pc_rpc_classify(msg, &what) == PC_MSG_BAD) {
		/* The id of a request, echoed; a message without a method is
		 * a (bad) response, whose id is the gateway's own numbering:
		 * echoed, it would fail a request of the client's with that
		 * id. null then, as on HTTP. */
		json_t *bad_id = json_is_object(msg) && json_object_get(msg,
		    "method") != NULL ? json_object_get(msg, "id") : NULL;

		refuse(f, &ri, json_is_object(msg) ? msg : NULL,
		    json_is_string(bad_id) || json_is_integer(bad_id) ?
		    bad_id : NULL, -32600, what);
		goto out;
	}
	id = json_object_get(msg, "id");
	method = json_string_value(json_object_get(msg, "method"));
	meta = json_object_get(json_object_get(msg, "params"), "_meta");
	/* Fail closed: with the audit log broken, nothing is served. */
	if (f->audit != NULL && pc_audit_error(f->audit) != NULL) {
		if (id != NULL)
			put_error(f, id, PC_RPC_UP_UNAVAILABLE,
			    PC_AUDIT_DOWN_MSG);
		goto out;
	}
	if (method != NULL && json_object_get(meta,
	    "io.modelcontextprotocol/protocolVersion") != NULL) {
		/* The eras switches hold here as on HTTP. */
		if (!f->cfg->modern_enabled) {
			ri.era = PC_CLIENT_MODERN;
			if (id != NULL)	/* a notification is dropped */
				answer_now(f, &ri, msg, id,
				    pc_rpc_era_refused(id, false));
			goto out;
		}
		handle_modern(f, msg, meta);
		goto out;
	}
	if (method != NULL && !f->cfg->legacy_enabled) {
		if (id != NULL)
			answer_now(f, &ri, msg, id, pc_rpc_era_refused(id,
			    true));
		goto out;
	}
	if (method == NULL) {
		/* A response to a request the gateway forwarded: recorded,
		 * then passed on; unrecorded, it goes no further. */
		if (id != NULL && record_response(f, msg) == 0 &&
		    f->session != NULL)
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
		/* Recorded as accepted; unrecorded, it goes no further. */
		if (f->session != NULL && record_now(f, &ri, msg, NULL) == 0 &&
		    !cancel_request(f, msg))
			pc_router_notification(f->router, &ri, msg);
		goto out;
	}
	if (f->session == NULL) {
		refuse(f, &ri, msg, id, -32600, "Invalid Request: send "
		    "initialize first (or the 2026-07-28 _meta envelope)");
		goto out;
	}
	request(f, &ri, msg);
out:
	json_decref(msg);
}

/*
 * Answers waiting for a client that does not read them: past this much
 * queued output the front stops reading requests (every request adds
 * output, and a client writing without reading would grow it without
 * end); below the low mark it reads again.
 */
#define STDIO_OUT_HIGH (4u << 20)
#define STDIO_OUT_LOW (1u << 20)

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void input_ended(struct pc_stdio_front *f);

static void
drained_cb(struct bufferevent *bev, void *arg)
{
	struct pc_stdio_front *f = arg;

	(void)bev;
	bufferevent_setwatermark(f->out, EV_WRITE, 0, 0);
	bufferevent_setcb(f->out, NULL, NULL, event_cb, f);
	bufferevent_enable(f->in, EV_READ);
	read_cb(f->in, f);		/* lines already buffered */
}

static bool
out_full(struct pc_stdio_front *f)
{
	if (evbuffer_get_length(bufferevent_get_output(f->out)) <=
	    STDIO_OUT_HIGH)
		return false;
	bufferevent_disable(f->in, EV_READ);
	bufferevent_setwatermark(f->out, EV_WRITE, STDIO_OUT_LOW, 0);
	bufferevent_setcb(f->out, NULL, drained_cb, event_cb, f);
	return true;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct pc_stdio_front *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;
	bool paused = false;

	/* The rest of a line refused as too long, up to its newline: it is
	 * no message of its own (parsed, it answered -32700 for nothing). */
	while (f->skip_line && evbuffer_get_length(in) > 0) {
		struct evbuffer_ptr nl = evbuffer_search(in, "\n", 1, NULL);
		if (nl.pos < 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			break;
		}
		evbuffer_drain(in, (size_t)nl.pos + 1);
		f->skip_line = false;
	}
	while (!f->skip_line && !(paused = out_full(f)) &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		handle_line(f, line, n);
		free(line);
	}
	/* A line that never ends is a flood, not a message (while paused,
	 * what waits may be whole lines). */
	if (!paused && !f->skip_line &&
	    evbuffer_get_length(in) > f->cfg->limits.max_body_bytes) {
		struct pc_reqinfo ri = { .era = PC_CLIENT_LEGACY,
		    .source = "stdio", .principal = &f->principal };

		evbuffer_drain(in, evbuffer_get_length(in));
		f->skip_line = true;
		refuse(f, &ri, NULL, NULL, -32600, "Invalid Request: line "
		    "longer than limits.max_body_bytes");
	}
	if (f->in_eof && !paused) {
		/* A last line without its newline is still the client's. */
		size_t rest = evbuffer_get_length(in);

		if (rest > 0 && !f->skip_line) {
			char *last = malloc(rest + 1);

			if (last != NULL) {
				evbuffer_remove(in, last, rest);
				last[rest] = '\0';
				handle_line(f, last, rest);
				free(last);
			}
		}
		evbuffer_drain(in, evbuffer_get_length(in));
		input_ended(f);
	}
}

static void
input_ended(struct pc_stdio_front *f)
{
	if (f->eof)
		return;
	f->eof = 1;
	pc_info("stdio client closed its input; shutting down");
	if (f->on_eof != NULL)
		f->on_eof(f->arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pc_stdio_front *f = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* Requests still buffered behind held-back output are the client's
	 * too: read_cb ends the input once it has handled them. */
	if (bev == f->in && (what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_input(f->in)) > 0) {
		f->in_eof = 1;
		/* libevent stops reading at EOF and calls read_cb only for
		 * new bytes: what is buffered is handled now (or, behind
		 * held-back output, by drained_cb). */
		read_cb(bev, f);
		return;
	}
	input_ended(f);
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
pc_stdio_front_set_config(struct pc_stdio_front *f,
    const struct pc_config *cfg)
{
	if (f != NULL && cfg != NULL)
		f->cfg = cfg;
}

void
pc_stdio_front_set_audit(struct pc_stdio_front *f, struct pc_audit *audit,
    const struct pc_redactor *redactor)
{
	f->audit = audit;
	f->redactor = redactor;
}

void
pc_stdio_front_set_limiter(struct pc_stdio_front *f, struct pc_limiter *l)
{
	f->limiter = l;
}

void
pc_stdio_front_start(struct pc_stdio_front *f)
{
	bufferevent_enable(f->in, EV_READ);
}

/*
 * Whatever is still queued goes out before we go, all of it: one
 * non-blocking write cut answers larger than the pipe's free space (a
 * truncated JSON line). A slow reader is waited for, but not one that has
 * stopped: after STDIO_FLUSH_STALL_MS without progress the rest is given
 * up (a host that keeps our stdout open and no longer reads must not hold
 * the shutdown, and the audit log's close after it, for ever; signals are
 * ignored by then). A reader that is gone fails the write (EPIPE).
 */
#define STDIO_FLUSH_STALL_MS 10000

static void
final_flush(struct bufferevent *out)
{
	struct evbuffer *o = bufferevent_get_output(out);
	int fd = bufferevent_getfd(out);

	/* A socket bufferevent keeps the front of its output frozen (only
	 * its own write callback may drain it): thawed, or evbuffer_write
	 * refuses at once and the rest is lost. */
	evbuffer_unfreeze(o, 1);
	while (evbuffer_get_length(o) > 0) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int n = evbuffer_write(o, fd), r;

		if (n > 0)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR))
			break;
		do
			r = poll(&p, 1, STDIO_FLUSH_STALL_MS);
		while (r < 0 && errno == EINTR);
		if (r <= 0 || (p.revents & (POLLERR | POLLNVAL)))
			break;
	}
	if (evbuffer_get_length(o) > 0)
		pc_warn("stdio: %zu bytes of answers not delivered: the client "
		    "stopped reading them", evbuffer_get_length(o));
}

void
pc_stdio_front_free(struct pc_stdio_front *f)
{
	if (f == NULL)
		return;
	if (f->dropped > 0)
		pc_warn("stdio: %lu message(s) dropped in all for a host that "
		    "did not read them", f->dropped);
	while (f->reqs != NULL) {
		struct req *q = f->reqs;
		/* Allowed, maybe started upstream, never answered. */
		if (q->rec != NULL && f->audit != NULL &&
		    pc_audit_call_cancelled(f->audit, q->rec, "shutdown") != 0)
			pc_error("audit: cannot record a call cut by the "
			    "shutdown");
		req_unlink(&f->reqs, q);
		pc_router_abandon(q->call);
		req_free(q);
	}
	/* Answers still waiting for their record: the log delivers the
	 * callback later (at the latest when it closes), to nobody. */
	while (f->held != NULL) {
		struct req *q = f->held;
		req_unlink(&f->held, q);
		q->f = NULL;
	}
	if (f->session != NULL)
		pc_session_detach_stream(f->session, f);
	if (f->out != NULL) {
		final_flush(f->out);
		bufferevent_free(f->out);
	}
	if (f->in != NULL)
		bufferevent_free(f->in);
	free(f);
}
