/*
 * The MCP endpoint over Streamable HTTP, for both protocol eras.
 *
 * Order of checks on every request (cheapest and most general first, so
 * that nothing past a failed check runs):
 *   path -> Host -> Origin -> method -> Accept -> Content-Type -> body
 *   size (evhttp past twice the limit, else ours) -> JSON hygiene -> era -> envelope/headers (modern) or
 *   session (legacy) -> router.
 *
 * Responses start as a plain JSON body. If the router has something to
 * send before the response (progress, a log message, a request to the
 * client), the reply turns into an SSE stream at that moment; a fast call
 * therefore pays nothing for streaming.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "../audit/audit.h"
#include "../authn/authn.h"
#include "../lib/errors.h"
#include "../lib/json.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../mcp/router.h"
#include "http.h"
#include "http_check.h"
#include "http_int.h"
#include "../limits/flood.h"
#include "conns.h"
#include "tls.h"

/* X-Forwarded-For lines read: the last ones (a proxy's own is last). */
#define PC_MAX_XFF_LINES	16

/* How far past limits.max_body_bytes evhttp's own cap sits (apply_limits). */
#define PC_BODY_MARGIN_MAX	(1024u * 1024u)

static const char *const legacy_versions[] = {
	"2025-03-26", "2025-06-18", "2025-11-25", NULL,
};

/* --- message validation ------------------------------------------------------------ */

static const char *
hdr(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static void
source_of(struct evhttp_request *req, char *out, size_t outlen)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *addr = NULL;
	ev_uint16_t port = 0;

	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, (char **)&addr, &port);
	snprintf(out, outlen, "%s", addr ? addr : "-");
}

/* --- modern era ---------------------------------------------------------------------- */

/* Compare a required Mcp-* header to the body value. */
static int
header_matches(struct evhttp_request *req, const char *name, const char *want)
{
	const char *raw = hdr(req, name);
	char *dec;
	int ok;

	if (raw == NULL || want == NULL)
		return 0;
	dec = pc_header_decode(raw);
	ok = dec != NULL && strcmp(dec, want) == 0;
	free(dec);
	return ok;
}

/*
 * The rate limit stage for a POST exchange, after authentication and
 * before routing. 0: route it (ri then carries the forward gate).
 * Otherwise the refusal was answered through the exchange's done path
 * (audited like any answer) and ex is gone.
 */
static int
ex_limits(struct pc_exchange *ex, const struct pc_rctx *cx, json_t *msg,
    struct pc_reqinfo *ri)
{
	json_t *refusal = NULL;
	int status = 429;

	pc_http_limit_init(&ex->lim, ex->h, ex->req, cx, msg);
	if (pc_limit_call_admit(&ex->lim, json_object_get(msg, "id"), &status,
	    &refusal) == 0) {
		pc_limit_call_route(&ex->lim, ri);
		return 0;
	}
	if (refusal == NULL) {
		/* Out of memory for the answer: still refused. */
		pc_http_send_error(ex->req, status, json_object_get(msg, "id"),
		    PC_RPC_LIMITED, "Refused by a limit");
		pc_ex_free(ex);
		return PC_E_DENIED;
	}
	pc_post_ops.done(ex, status, refusal);
	json_decref(refusal);
	return PC_E_DENIED;
}

/*
 * The router did not take the request (rc of pc_router_request: too many
 * in flight for this client, or out of memory): answered through the
 * exchange like a limit's refusal, so that it has its record (a deny,
 * "limit.pending" or "internal"), then freed.
 */
static void
ex_not_taken(struct pc_exchange *ex, json_t *id, int rc)
{
	int status = rc == PC_E_LIMIT ? 429 : 500;
	json_t *e = rc == PC_E_LIMIT ? pc_rpc_error(id, PC_RPC_BUSY,
	    "Too many requests in flight for this client") :
	    pc_rpc_error(id, -32603, "Internal error");

	if (rc == PC_E_LIMIT)
		evhttp_add_header(evhttp_request_get_output_headers(ex->req),
		    "Retry-After", "1");
	if (ex->audit != NULL)
		ex->audit->denied = rc == PC_E_LIMIT ? "limit.pending" :
		    "internal";
	if (e == NULL) {
		struct evhttp_request *req = ex->req;
		pc_ex_free(ex);
		pc_http_too_many(req, id, rc);
		return;
	}
	pc_post_ops.done(ex, status, e);
	json_decref(e);
}

/* Record d before what it allows happens: 0, or -1 after answering 503
 * (the log cannot be written: unrecorded, it does not happen). */
static int
record_or_refuse(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const struct pc_audit_direct *d)
{
	if (pc_http_audit_direct(h, cx, d, NULL, NULL) == 0)
		return 0;
	pc_http_send_error(req, 503, NULL, PC_RPC_UP_UNAVAILABLE,
	    PC_AUDIT_DOWN_MSG);
	return -1;
}

/* A notification from the client: recorded (allow, status "accepted"),
 * then 202; 0, or -1 after 503 (then it goes no further). */
static int
accept_notification(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const char *era, const char *session,
    json_t *msg)
{
	struct pc_audit_direct d = { .era = era, .session = session,
	    .method = json_string_value(json_object_get(msg, "method")),
	    .decision = "allow", .status = "accepted" };

	if (record_or_refuse(h, req, cx, &d) != 0)
		return -1;
	pc_http_send_json(req, 202, NULL, NULL);
	return 0;
}

/*
 * A legacy client's answer to a request the gateway forwarded to it
 * (elicitation, sampling, roots), recorded before it goes on: allow with
 * the method the upstream asked and that upstream, status "ok" or "error"
 * (reason "rpc.<code>" when the client answered with an error); an id the
 * gateway never sent, answered already, or owed to an upstream child that
 * has restarted since, is a deny ("response.unknown_id") and goes nowhere.
 * The result of pc_http_audit_direct.
 */
static int
record_response(struct pc_http *h, const struct pc_rctx *cx,
    struct pc_session *s, json_t *msg)
{
	struct pc_answered what;
	json_t *err = json_object_get(msg, "error");
	char reason[40] = "";
	struct pc_audit_direct d = { .era = "legacy",
	    .session = pc_session_id(s), .decision = "allow", .status = "ok" };

	if (pc_router_client_lookup(h->router, s, msg, &what) != 0) {
		d.decision = "deny";
		d.reason = "response.unknown_id";	/* static: the flood
							 * gate keeps it */
		d.status = "refused";
		return pc_http_audit_direct(h, cx, &d, NULL, NULL);
	}
	d.method = what.method;
	d.upstream = what.upstream;
	if (json_is_object(err)) {
		d.status = "error";
		snprintf(reason, sizeof(reason), "rpc.%" JSON_INTEGER_FORMAT,
		    json_integer_value(json_object_get(err, "code")));
		d.reason = reason;
	}
	return pc_http_audit_direct(h, cx, &d, NULL, NULL);
}

/* A legacy session's stream opened (GET) or the session ended by its
 * client (DELETE): recorded before it happens. */
static int
record_session_op(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const char *method, struct pc_session *s)
{
	struct pc_audit_direct d = { .era = "legacy", .method = method,
	    .session = pc_session_id(s), .decision = "allow", .status = "ok" };

	return record_or_refuse(h, req, cx, &d);
}

static void
handle_modern(struct pc_http *h, struct evhttp_request *req, json_t *msg,
    const struct pc_rctx *cx)
{
	json_t *params, *meta, *id, *caps;
	const char *ver, *method, *hver;
	enum pc_rpc_kind t;
	const char *why = NULL;
	struct pc_reqinfo ri;
	int rc;

	if (!h->cfg->modern_enabled) {
		/* Named, so that a client can fall back to a session. */
		json_t *e = pc_rpc_era_refused(NULL, false);

		pc_http_send_json(req, 400, e, NULL);
		json_decref(e);
		return;
	}
	t = pc_rpc_classify(msg, &why);
	if (t == PC_MSG_BAD) {
		pc_http_send_error(req, 400, NULL, -32600, why);
		return;
	}
	id = json_object_get(msg, "id");
	if (t == PC_MSG_RESPONSE) {
		/* Modern servers never send requests, so nothing to answer. */
		pc_http_send_error(req, 400, id, -32600,
		    "Invalid Request: unexpected response");
		return;
	}
	method = json_string_value(json_object_get(msg, "method"));
	params = json_object_get(msg, "params");
	meta = json_object_get(params, "_meta");
	ver = json_string_value(json_object_get(meta,
	    "io.modelcontextprotocol/protocolVersion"));
	caps = json_object_get(meta, "io.modelcontextprotocol/clientCapabilities");
	if (ver == NULL || !json_is_object(caps)) {
		pc_http_send_error(req, 400, id, -32602,
		    "Invalid params: _meta must carry "
		    "io.modelcontextprotocol/protocolVersion and "
		    "io.modelcontextprotocol/clientCapabilities");
		return;
	}
	/* Route and authorize only on headers proven equal to the body. */
	hver = hdr(req, "MCP-Protocol-Version");
	if (hver == NULL || strcmp(hver, ver) != 0) {
		pc_http_send_error(req, 400, id, -32020,
		    "Header mismatch: MCP-Protocol-Version must equal "
		    "_meta protocolVersion");
		return;
	}
	if (strcmp(ver, PC_MODERN_VERSION) != 0) {
		json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:[s], s:s}}}",
		    "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
		    "code", -32022, "message", "Unsupported protocol version",
		    "data", "supported", PC_MODERN_VERSION, "requested", ver);
		pc_http_send_json(req, 400, e, NULL);
		json_decref(e);
		return;
	}
	if (!header_matches(req, "Mcp-Method", method)) {
		pc_http_send_error(req, 400, id, -32020,
		    "Header mismatch: Mcp-Method must equal the method");
		return;
	}
	if (strcmp(method, "tools/call") == 0 ||
	    strcmp(method, "prompts/get") == 0 ||
	    strcmp(method, "resources/read") == 0) {
		const char *key = method[0] == 'r' ? "uri" : "name";
		const char *want = json_string_value(json_object_get(params, key));
		if (want == NULL) {
			pc_http_send_error(req, 400, id, -32602,
			    "Invalid params: missing name or uri");
			return;
		}
		if (!header_matches(req, "Mcp-Name", want)) {
			pc_http_send_error(req, 400, id, -32020,
			    "Header mismatch: Mcp-Name must equal the "
			    "name or uri in params");
			return;
		}
	}
	if (t == PC_MSG_NOTIFICATION) {
		(void)accept_notification(h, req, cx, "modern", NULL, msg);
		return;
	}
	ri = (struct pc_reqinfo){ .era = PC_CLIENT_MODERN, .version = ver,
	    .meta = meta, .source = cx->source,
	    .principal = &cx->principal };
	struct pc_exchange *ex = pc_ex_new(h, req, EX_POST);
	if (ex == NULL) {
		pc_http_send_error(req, 500, id, -32603, "Internal error");
		return;
	}
	pc_ex_audit_begin(ex, cx, "modern", msg, NULL);
	if (ex_limits(ex, cx, msg, &ri) != 0)
		return;
	if (strcmp(method, "subscriptions/listen") == 0)
		pc_ex_hold_principal(ex, &cx->principal);
	pc_ex_watch(ex);
	rc = pc_router_request(h->router, &ri, msg, &pc_post_ops, ex, &ex->call);
	if (rc != 0)
		ex_not_taken(ex, id, rc);
}

void
pc_http_too_many(struct evhttp_request *req, json_t *id, int rc)
{
	if (rc == PC_E_LIMIT) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "1");
		pc_http_send_error(req, 429, id, PC_RPC_BUSY,
		    "Too many requests in flight for this client");
	} else {
		pc_http_send_error(req, 500, id, -32603, "Internal error");
	}
}

/* --- legacy era ------------------------------------------------------------------------ */

/* No session for this initialize (the table is full, or the principal
 * holds its share): recorded as a deny with `reason` (static), then
 * refused with Retry-After. */
static void
refuse_session(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, json_t *id, int status, const char *reason,
    const char *text)
{
	struct pc_audit_direct d = { .era = "legacy", .method = "initialize",
	    .decision = "deny", .status = "refused", .reason = reason };

	(void)pc_http_audit_direct(h, cx, &d, NULL, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Retry-After", "5");
	pc_http_send_error(req, status, id, PC_RPC_BUSY, text);
}

static void
handle_initialize(struct pc_http *h, struct evhttp_request *req, json_t *msg,
    const struct pc_rctx *cx)
{
	struct pc_session *s = NULL;
	json_t *result = NULL, *id = json_object_get(msg, "id");
	int rc;

	rc = pc_router_initialize(h->router, json_object_get(msg, "params"),
	    &cx->principal,
	    &s, &result);
	if (rc == PC_E_INVAL) {
		json_t *e = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0",
		    "id", id, "error", result);
		pc_http_send_json(req, 400, e, NULL);
		json_decref(e);
		return;
	}
	if (rc == PC_E_LIMIT) {
		refuse_session(h, req, cx, id, 503, "session.limit",
		    "Too many sessions; retry later");
		return;
	}
	if (rc == PC_E_DENIED) {
		refuse_session(h, req, cx, id, 429, "session.principal_limit",
		    "Too many sessions open for this principal: end some "
		    "(DELETE) or let them expire");
		return;
	}
	if (rc != 0) {
		pc_http_send_error(req, 500, id, -32603, "Internal error");
		return;
	}
	/* A new session is recorded before its id leaves (with fsync:
	 * strict, synced); unrecorded, the client never learns it and it
	 * expires unused. */
	struct pc_audit_direct d = { .era = "legacy", .method = "initialize",
	    .session = pc_session_id(s), .decision = "allow", .status = "ok" };
	pc_http_reply_recorded(h, req, cx, &d, pc_rpc_result(id, result),
	    pc_session_id(s));
}

static void
legacy_one(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, struct pc_reqinfo *ri, json_t *msg,
    enum pc_rpc_kind t, struct pc_exchange *batch_ex, int *requests)
{
	if (t == PC_MSG_NOTIFICATION) {
		/* A batch member is recorded here (a single notification was,
		 * before its 202); unrecorded, it goes no further. */
		struct pc_audit_direct d = { .era = "legacy",
		    .session = pc_session_id(ri->session),
		    .method = json_string_value(json_object_get(msg, "method")),
		    .decision = "allow", .status = "accepted" };
		if (batch_ex != NULL &&
		    pc_http_audit_direct(h, cx, &d, NULL, NULL) != 0)
			return;
		pc_router_notification(h->router, ri, msg);
		return;
	}
	if (t == PC_MSG_RESPONSE) {
		/* A batch member is recorded here (a single response was,
		 * before its 202); unrecorded, it goes no further. */
		if (batch_ex != NULL &&
		    record_response(h, cx, ri->session, msg) != 0)
			return;
		if (pc_router_client_response(h->router, ri->session, msg) != 0)
			pc_debug("client answered an unknown request id");
		return;
	}
	(*requests)++;
	if (batch_ex != NULL) {
		struct pc_bitem *it = calloc(1, sizeof(*it));
		int rc;
		if (it == NULL)
			return;
		it->parent = batch_ex;
		it->next = batch_ex->bitems;
		if (batch_ex->bitems != NULL)
			batch_ex->bitems->prev = it;
		batch_ex->bitems = it;
		batch_ex->batch_wait++;
		/* Each item is counted by the limits stage on its own; its
		 * refusal is an error inside the batch (no headers). */
		struct pc_reqinfo iri = *ri;
		json_t *refusal = NULL;
		int status = 429;
		pc_http_limit_init(&it->lim, h, NULL, cx, msg);
		pc_bitem_audit_begin(it, cx, msg, pc_session_id(ri->session));
		if (pc_limit_call_admit(&it->lim, json_object_get(msg, "id"), &status,
		    &refusal) != 0) {
			pc_batch_done(it, status, refusal);
			json_decref(refusal);
			return;
		}
		pc_limit_call_route(&it->lim, &iri);
		rc = pc_router_request(h->router, &iri, msg, &pc_batch_ops, it,
		    &it->call);
		if (rc != 0) {
			json_t *e = pc_rpc_error(json_object_get(msg, "id"),
			    PC_RPC_BUSY, "Too many requests in flight");
			pc_batch_done(it, 429, e);
			json_decref(e);
		}
	}
}

static void
handle_legacy(struct pc_http *h, struct evhttp_request *req, json_t *body,
    const struct pc_rctx *cx)
{
	const char *sid = hdr(req, "Mcp-Session-Id");
	const char *ver = hdr(req, "MCP-Protocol-Version");
	struct pc_session *s;
	struct pc_reqinfo ri;
	const char *why = NULL;
	int is_batch = json_is_array(body);

	if (!h->cfg->legacy_enabled) {
		/* As a modern-only server answers: the versions it serves. */
		json_t *e = pc_rpc_era_refused(NULL, true);

		pc_http_send_json(req, 400, e, NULL);
		json_decref(e);
		return;
	}
	if (ver != NULL && !pc_in_list((char *const *)legacy_versions, ver)) {
		pc_http_send_error(req, 400, NULL, PC_RPC_GENERIC,
		    "Bad Request: unsupported MCP-Protocol-Version");
		return;
	}
	if (is_batch) {
		size_t i;
		json_t *m;
		if (json_array_size(body) == 0 ||
		    json_array_size(body) > PC_MAX_BATCH) {
			pc_http_send_error(req, 400, NULL, -32600,
			    "Invalid Request: empty or oversized batch");
			return;
		}
		json_array_foreach(body, i, m) {
			const char *mm = json_string_value(json_object_get(m,
			    "method"));
			if (mm != NULL && strcmp(mm, "initialize") == 0) {
				pc_http_send_error(req, 400, NULL, -32600,
				    "Invalid Request: initialize must not be "
				    "batched");
				return;
			}
		}
	} else {
		enum pc_rpc_kind t = pc_rpc_classify(body, &why);
		if (t == PC_MSG_BAD) {
			pc_http_send_error(req, 400, NULL, -32600, why);
			return;
		}
		const char *m = json_string_value(json_object_get(body, "method"));
		if (t == PC_MSG_REQUEST && strcmp(m, "initialize") == 0) {
			handle_initialize(h, req, body, cx);
			return;
		}
	}
	if (sid == NULL) {
		pc_http_send_error(req, 400, NULL, PC_RPC_GENERIC,
		    "Bad Request: Mcp-Session-Id header is required");
		return;
	}
	s = pc_router_session(h->router, sid, &cx->principal);
	if (s == NULL) {
		pc_http_send_error(req, 404, NULL, PC_RPC_NO_SESSION,
		    "Session not found");
		return;
	}
	if (is_batch && strcmp(pc_session_version(s), "2025-03-26") != 0) {
		pc_http_send_error(req, 400, NULL, -32600,
		    "Invalid Request: batches exist only in 2025-03-26");
		return;
	}
	ri = (struct pc_reqinfo){ .era = PC_CLIENT_LEGACY,
	    .version = pc_session_version(s), .session = s, .source = cx->source,
	    .principal = &cx->principal };

	if (!is_batch) {
		enum pc_rpc_kind t = pc_rpc_classify(body, &why);
		if (t != PC_MSG_REQUEST) {
			int n = 0;
			if (t == PC_MSG_NOTIFICATION &&
			    accept_notification(h, req, cx, "legacy",
			    pc_session_id(s), body) != 0)
				return;		/* answered 503 */
			if (t == PC_MSG_RESPONSE &&
			    record_response(h, cx, s, body) != 0) {
				pc_http_send_error(req, 503, NULL,
				    PC_RPC_UP_UNAVAILABLE, PC_AUDIT_DOWN_MSG);
				return;
			}
			legacy_one(h, req, cx, &ri, body, t, NULL, &n);
			if (t != PC_MSG_NOTIFICATION)
				pc_http_send_json(req, 202, NULL, NULL);
			return;
		}
		struct pc_exchange *ex = pc_ex_new(h, req, EX_POST);
		if (ex == NULL) {
			pc_http_send_error(req, 500, NULL, -32603,
			    "Internal error");
			return;
		}
		pc_ex_audit_begin(ex, cx, "legacy", body,
		    s ? pc_session_id(s) : NULL);
		if (ex_limits(ex, cx, body, &ri) != 0)
			return;
		pc_ex_watch(ex);
		int rc = pc_router_request(h->router, &ri, body, &pc_post_ops, ex,
		    &ex->call);
		if (rc != 0)
			ex_not_taken(ex, json_object_get(body, "id"), rc);
		return;
	}

	/* Batch: validate every member first; a bad one fails the batch. */
	size_t i;
	json_t *m;
	json_array_foreach(body, i, m) {
		if (pc_rpc_classify(m, &why) == PC_MSG_BAD) {
			pc_http_send_error(req, 400, NULL, -32600, why);
			return;
		}
	}
	struct pc_exchange *ex = pc_ex_new(h, req, EX_BATCH);
	if (ex == NULL || (ex->batch = json_array()) == NULL) {
		if (ex != NULL)
			pc_ex_free(ex);
		pc_http_send_error(req, 500, NULL, -32603, "Internal error");
		return;
	}
	pc_ex_watch(ex);
	int nreq = 0;
	json_array_foreach(body, i, m) {
		/* Each member is a request of its own in the audit log: the
		 * HTTP request's id and its position, "<id>.1" first. */
		struct pc_rctx mcx = *cx;
		size_t at = strlen(mcx.request_id);
		snprintf(mcx.request_id + at, sizeof(mcx.request_id) - at,
		    ".%zu", i + 1);
		legacy_one(h, req, &mcx, &ri, m, pc_rpc_classify(m, &why), ex, &nreq);
	}
	ex->batch_sealed = 1;
	pc_batch_flush(ex);
}

/* --- GET and DELETE ------------------------------------------------------------------------ */

/*
 * The session a GET or DELETE names, or NULL after answering: 405 without a
 * session (modern clients and session-less legacy ones have no stream and
 * nothing to delete), 404 for an unknown or ended one.
 */
static struct pc_session *
session_for(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const char *why405)
{
	const char *sid = hdr(req, "Mcp-Session-Id");
	const char *ver = hdr(req, "MCP-Protocol-Version");
	struct pc_session *s;

	/* A modern client has neither (its Mcp-Session-Id is ignored, a
	 * stale one included). */
	if (sid == NULL || !h->cfg->legacy_enabled ||
	    (ver != NULL && strcmp(ver, PC_MODERN_VERSION) == 0)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "POST");
		pc_http_send_error(req, 405, NULL, PC_RPC_GENERIC, why405);
		return NULL;
	}
	s = pc_router_session(h->router, sid, &cx->principal);
	if (s == NULL)
		pc_http_send_error(req, 404, NULL, PC_RPC_NO_SESSION,
		    "Session not found");
	return s;
}

static void
handle_get(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx)
{
	struct pc_session *s;
	struct pc_exchange *ex;

	const char *ver = hdr(req, "MCP-Protocol-Version");

	if ((ver == NULL || strcmp(ver, PC_MODERN_VERSION) != 0) &&
	    !pc_accept_has(hdr(req, "Accept"), "text/event-stream")) {
		pc_http_send_error(req, 406, NULL, PC_RPC_GENERIC,
		    "Not Acceptable: GET needs Accept: text/event-stream");
		return;
	}
	s = session_for(h, req, cx,
	    "Method Not Allowed: no session stream without a session");
	if (s == NULL)
		return;
	ex = pc_ex_new(h, req, EX_STREAM);
	if (ex == NULL) {
		pc_http_send_error(req, 500, NULL, -32603, "Internal error");
		return;
	}
	if (pc_session_attach_stream(s, &pc_stream_ops, ex) != 0) {
		pc_ex_free(ex);
		pc_http_send_error(req, 409, NULL, PC_RPC_GENERIC,
		    "Conflict: this session already has a stream open");
		return;
	}
	ex->session = s;
	if (record_session_op(h, req, cx, "GET", s) != 0) {
		pc_session_detach_stream(s, ex);
		pc_ex_free(ex);
		return;		/* answered 503 */
	}
	pc_ex_hold_principal(ex, &cx->principal);
	pc_ex_watch(ex);
	pc_sse_start(ex);		/* with its keepalive */
}

static void
handle_delete(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx)
{
	struct pc_session *s = session_for(h, req, cx,
	    "Method Not Allowed: DELETE needs a session");

	if (s == NULL)
		return;
	/* Recorded first: an unrecorded close is not done (503). */
	if (record_session_op(h, req, cx, "DELETE", s) != 0)
		return;
	pc_router_session_close(h->router, s);
	pc_http_send_json(req, 200, NULL, NULL);
}

/* --- entry --------------------------------------------------------------------------------- */

static int
is_modern_request(struct evhttp_request *req, json_t *body)
{
	json_t *meta;

	if (!json_is_object(body))
		return 0;
	meta = json_object_get(json_object_get(body, "params"), "_meta");
	if (json_object_get(meta, "io.modelcontextprotocol/protocolVersion"))
		return 1;
	/* A modern version header without a session is a modern client
	 * whose envelope is missing: the modern path owns that error. */
	const char *v = hdr(req, "MCP-Protocol-Version");
	const char *m = json_string_value(json_object_get(body, "method"));
	return v != NULL && strcmp(v, PC_MODERN_VERSION) == 0 &&
	    hdr(req, "Mcp-Session-Id") == NULL &&
	    !(m != NULL && strcmp(m, "initialize") == 0);
}

static void
handle_post(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const struct pc_limits_conf *lim = &h->cfg->limits;
	struct pc_json_limits jl = { lim->max_json_depth, lim->max_string_bytes,
	    lim->max_array_items, 0 };
	enum pc_json_fault fault;
	char why[128], msg[192];
	json_t *body = NULL;
	const char *accept = hdr(req, "Accept");

	if (!pc_accept_has(accept, "application/json") ||
	    !pc_accept_has(accept, "text/event-stream")) {
		pc_http_send_error(req, 406, NULL, PC_RPC_GENERIC,
		    "Not Acceptable: Accept must list application/json and "
		    "text/event-stream");
		return;
	}
	if (!pc_content_type_json(hdr(req, "Content-Type"))) {
		pc_http_send_error(req, 415, NULL, PC_RPC_GENERIC,
		    "Unsupported Media Type: Content-Type must be "
		    "application/json");
		return;
	}
	if (len > lim->max_body_bytes) {
		pc_http_send_error(req, 413, NULL, PC_RPC_GENERIC,
		    "Payload Too Large");
		return;
	}
	const char *data = (const char *)evbuffer_pullup(in, -1);
	int rc = pc_json_parse(data ? data : "", len, &jl, &body, &fault, why,
	    sizeof(why));
	if (rc != 0) {
		int code = fault == PC_JSON_SYNTAX ? -32700 : -32600;
		snprintf(msg, sizeof(msg), "%s: %s",
		    code == -32700 ? "Parse error" : "Invalid Request", why);
		pc_http_send_error(req, 400, NULL, code, msg);
		return;
	}
	if (!json_is_object(body) && !json_is_array(body)) {
		pc_http_send_error(req, 400, NULL, -32600,
		    "Invalid Request: body must be a JSON-RPC message");
	} else if (is_modern_request(req, body)) {
		handle_modern(h, req, body, cx);
	} else {
		handle_legacy(h, req, body, cx);
	}
	json_decref(body);
}

/* The URL's query names an access token: refused, never read. */
static int
token_in_query(struct evhttp_request *req)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *q = u ? evhttp_uri_get_query(u) : NULL;
	static const char *const names[] = { "access_token", "api_key",
	    "apikey", "pcs_" };
	char *dec;
	size_t n;
	int found = 0;

	if (q == NULL || *q == '\0')
		return 0;
	/* Decoded as a whole ("%5F" is '_', '+' a space), then searched
	 * anywhere and in any case: a parameter parser that gives up on one
	 * odd pair ("?x&api_key=...") or an escaped name must not let a
	 * credential in the URL (and with it in every access log) through. */
	dec = evhttp_uridecode(q, 1, &n);
	if (dec == NULL)
		return 1;			/* cannot tell: refuse */
	/* A "%00" decodes to a NUL, where a string search would stop: a
	 * query that holds one is refused as it stands (no honest client
	 * sends one). */
	found = memchr(dec, '\0', n) != NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !found; i++)
		found = strcasestr(dec, names[i]) != NULL;
	free(dec);
	return found;
}

static void
send_auth_refusal(struct pc_http *h, struct evhttp_request *req,
    const struct pc_authn_result *res)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	int missing = res->reason != NULL &&
	    strcmp(res->reason, "auth.missing") == 0;
	int status, code;
	const char *msg, *reason;
	char ra[16];
	json_t *e;

	(void)h;
	/* The reason in the body is coarse on purpose: telling "unknown key"
	 * from "wrong secret" would let a caller enumerate key ids. The
	 * precise reason is in the log. */
	switch (res->verdict) {
	case PC_AUTHN_UNAVAILABLE:
		status = 503, code = PC_RPC_UP_UNAVAILABLE;
		msg = "Authentication is unavailable; retry later";
		reason = "auth.unavailable";
		snprintf(ra, sizeof(ra), "%u", res->retry_after_s > 0 ?
		    res->retry_after_s : 1);
		evhttp_add_header(oh, "Retry-After", ra);
		break;
	case PC_AUTHN_THROTTLED:
		status = 429, code = PC_RPC_AUTH_THROTTLED;
		msg = "Too many failed authentications; retry later";
		reason = "auth.throttled";
		snprintf(ra, sizeof(ra), "%u", res->retry_after_s);
		evhttp_add_header(oh, "Retry-After", ra);
		break;
	case PC_AUTHN_FORBIDDEN:
		status = 403, code = PC_RPC_FORBIDDEN;
		msg = "Forbidden: insufficient scope";
		reason = "auth.insufficient_scope";
		evhttp_add_header(oh, "WWW-Authenticate", res->challenge);
		break;
	default:
		status = 401, code = PC_RPC_UNAUTHORIZED;
		msg = missing ? "Unauthorized: credentials required" :
		    "Unauthorized: invalid credentials";
		reason = missing ? "auth.missing" : "auth.invalid";
		evhttp_add_header(oh, "WWW-Authenticate", res->challenge);
		break;
	}
	e = json_pack("{s:s, s:n, s:{s:i, s:s, s:{s:s}}}", "jsonrpc", "2.0",
	    "id", "error", "code", code, "message", msg, "data", "reason",
	    reason);
	pc_http_send_json(req, status, e, NULL);
	json_decref(e);
}

/* GET /.well-known/oauth-protected-resource[<mcp path>] (RFC 9728). */
static int
serve_prm(struct pc_http *h, struct evhttp_request *req, const char *uri)
{
	static const char wk[] = "/.well-known/oauth-protected-resource";
	size_t wl = sizeof(wk) - 1;
	const char *rest;
	json_t *doc;

	if (strncmp(uri, wk, wl) != 0)
		return 0;
	rest = uri + wl;
	if (!(*rest == '\0' || *rest == '?' ||
	    (strncmp(rest, h->cfg->mcp_path, strlen(h->cfg->mcp_path)) == 0 &&
	    (rest[strlen(h->cfg->mcp_path)] == '\0' ||
	    rest[strlen(h->cfg->mcp_path)] == '?'))))
		return 0;
	doc = h->authn ? pc_authn_prm(h->authn) : NULL;
	if (doc == NULL) {
		pc_http_send_error(req, 404, NULL, PC_RPC_GENERIC, "Not Found");
		return 1;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET");
		pc_http_send_error(req, 405, NULL, PC_RPC_GENERIC,
		    "Method Not Allowed");
	} else {
		pc_http_send_json(req, 200, doc, NULL);
	}
	json_decref(doc);
	return 1;
}

/*
 * Where the request comes from, and whether it may come that way: over
 * plaintext only from loopback or a declared TLS-terminating proxy, whose
 * X-Forwarded-For then names the client. 1: the peer is such a proxy, 0:
 * a direct client, PC_E_DENIED: refused, PC_E_LIMIT: a chunked body
 * through a proxy (411).
 */
static int
resolve_source(struct pc_http *h, struct evhttp_request *req, char *out,
    size_t outlen)
{
	const struct pc_config *cfg = h->cfg;
	int trusted;

	source_of(req, out, outlen);
	trusted = cfg->ntrusted_proxies > 0 &&
	    pc_addr_in(cfg->trusted_proxies, cfg->ntrusted_proxies, out);
	if (!cfg->tls.enabled && !trusted && !pc_addr_is_loopback(out))
		return PC_E_DENIED;
	if (trusted) {
		const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
		const char *ring[PC_MAX_XFF_LINES], *xff[PC_MAX_XFF_LINES];
		size_t n = 0;

		/* evhttp merges a chunked body's trailer fields into the
		 * headers, after the proxy's own: a client could end its body
		 * with an X-Forwarded-For of its choosing. Through a proxy, a
		 * body comes with Content-Length. */
		if (evhttp_find_header(in, "Transfer-Encoding") != NULL)
			return PC_E_LIMIT;
		/* The last lines: a client may send as many as it likes
		 * before the one its proxy adds, and the first 16 would push
		 * the proxy's out (the source then was the proxy itself, which
		 * one client could get throttled for everyone behind it). */
		for (const struct evkeyval *kv = in->tqh_first; kv != NULL;
		    kv = kv->next.tqe_next) {
			if (strcasecmp(kv->key, "X-Forwarded-For") != 0)
				continue;
			ring[n % PC_MAX_XFF_LINES] = kv->value;
			n++;
		}
		if (n > PC_MAX_XFF_LINES) {
			for (size_t i = 0; i < PC_MAX_XFF_LINES; i++)
				xff[i] = ring[(n + i) % PC_MAX_XFF_LINES];
			n = PC_MAX_XFF_LINES;
		} else {
			memcpy(xff, ring, n * sizeof(*xff));
		}
		(void)pc_forwarded_client(xff, n, cfg->trusted_proxies,
		    cfg->ntrusted_proxies, out, outlen);
	}
	return trusted ? 1 : 0;
}

static void
handle_mcp(struct evhttp_request *req, void *arg)
{
	struct pc_http *h = arg;
	const struct pc_config *cfg = h->cfg;
	const char *uri = evhttp_request_get_uri(req);
	const char *host = hdr(req, "Host");
	const char *origin = hdr(req, "Origin");
	size_t plen = strlen(cfg->mcp_path);
	struct pc_authn_input in;
	struct pc_authn_result res;
	struct pc_rctx cx;
	char ident[256];

	/* A whole request: no request_timeout until it is answered. */
	pc_conns_request(h->conns, req);
	/* Refusals before authentication are recorded like a refused
	 * credential: no principal, the peer's address. */
	memset(&cx, 0, sizeof(cx));
	/* Every answer names its request, refusals included: the id under
	 * which the audit log recorded it. */
	pc_request_id_new(cx.request_id);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "X-Request-Id", cx.request_id);
	source_of(req, cx.source, sizeof(cx.source));
	const char *dup = pc_duplicate_header(
	    evhttp_request_get_input_headers(req));
	if (dup != NULL) {
		char why[96];
		snprintf(why, sizeof(why), "Bad Request: more than one %s "
		    "header", dup);
		pc_http_audit_refusal(h, &cx, "http.duplicate_header");
		pc_http_send_error(req, 400, NULL, PC_RPC_GENERIC, why);
		return;
	}
	/* DNS rebinding: a browser page on evil.example that resolves to
	 * 127.0.0.1 still sends its own Host and Origin. */
	if (host == NULL || !(cfg->nhosts > 0 ? pc_in_list(cfg->allowed_hosts, host)
	    : pc_host_is_loopback(host))) {
		pc_http_audit_refusal(h, &cx, "http.host");
		pc_http_send_error(req, 403, NULL, PC_RPC_GENERIC,
		    "Forbidden: Host not allowed");
		return;
	}
	if (uri != NULL && serve_prm(h, req, uri))
		return;
	/* Exact path, optionally followed by a query string. */
	if (uri == NULL || strncmp(uri, cfg->mcp_path, plen) != 0 ||
	    (uri[plen] != '\0' && uri[plen] != '?')) {
		pc_http_send_error(req, 404, NULL, PC_RPC_GENERIC, "Not Found");
		return;
	}
	if (origin != NULL && !(cfg->norigins > 0 ?
	    pc_in_list(cfg->allowed_origins, origin) :
	    pc_origin_is_loopback(origin))) {
		pc_http_audit_refusal(h, &cx, "http.origin");
		pc_http_send_error(req, 403, NULL, PC_RPC_GENERIC,
		    "Forbidden: Origin not allowed");
		return;
	}
	int via = resolve_source(h, req, cx.source, sizeof(cx.source));
	if (via == PC_E_LIMIT) {
		pc_http_audit_refusal(h, &cx, "http.chunked_via_proxy");
		pc_http_send_error(req, 411, NULL, PC_RPC_GENERIC, "Length "
		    "Required: through a proxy, send the body with "
		    "Content-Length");
		return;
	}
	if (via < 0) {
		if (pc_http_audit_refusal(h, &cx, "http.plaintext"))
			pc_warn("plaintext request from %s refused: not "
			    "loopback and not a trusted proxy", cx.source);
		pc_http_send_error(req, 403, NULL, PC_RPC_GENERIC,
		    "Forbidden: use HTTPS");
		return;
	}

	/* Authenticate: nothing past this point runs without a principal. */
	in = (struct pc_authn_input){
		.authorization = hdr(req, "Authorization"),
		.source = cx.source,
		.token_in_query = token_in_query(req),
	};
	/* A trusted proxy's certificate names the proxy, not the client it
	 * forwards: mapped, it would authenticate every request the proxy
	 * passes on, credential or not. */
	if (h->tls != NULL && cfg->auth.nidentities > 0 && via == 0) {
		int trc = pc_tls_peer_identity(evhttp_request_get_connection(req),
		    ident, sizeof(ident), &in.tls_not_after);
		if (trc == 0)
			in.tls_identity = ident;
		in.tls_expired = trc == PC_E_DENIED;
	}
	pc_authn_check(h->authn, &in, (int64_t)time(NULL), &cx.principal, &res);
	if (res.verdict != PC_AUTHN_OK) {
		/* A missing credential is a client's first step in OAuth,
		 * not an event worth a record; a wrong one is — and its log
		 * line, unless the source's flood gate held the record back
		 * (the summary then speaks for both). */
		bool missing = strcmp(res.reason, "auth.missing") == 0;
		if (missing || pc_http_audit_refusal(h, &cx, res.reason)) {
			json_t *f = json_pack("{s:s, s:s}", "reason",
			    res.reason, "source", cx.source);
			pc_log_fields(missing ? PC_LOG_DEBUG : PC_LOG_WARN,
			    __func__, "authentication refused", f);
			json_decref(f);
		}
		send_auth_refusal(h, req, &res);
		return;
	}
	/* Fail closed: with the audit log broken, nothing is served. */
	if (h->audit != NULL && pc_audit_error(h->audit) != NULL) {
		pc_http_send_error(req, 503, NULL, PC_RPC_UP_UNAVAILABLE,
		    PC_AUDIT_DOWN_MSG);
		return;
	}
	if (pc_log_get_level() <= PC_LOG_DEBUG) {
		json_t *f = json_pack("{s:s, s:s, s:s}", "principal",
		    cx.principal.id, "key_id", cx.principal.key_id, "source",
		    cx.source);
		pc_log_fields(PC_LOG_DEBUG, __func__, "authenticated", f);
		json_decref(f);
	}

	/* From here every outcome has a record: routed calls get theirs
	 * when they end, refusals on the way get one from the scope. */
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	pc_http_scope_begin(h, req, &cx, cmd == EVHTTP_REQ_POST ? "POST" :
	    cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_DELETE ?
	    "DELETE" : "HTTP");
	switch (cmd) {
	case EVHTTP_REQ_POST:
		handle_post(h, req, &cx);
		break;
	case EVHTTP_REQ_GET:
		handle_get(h, req, &cx);
		break;
	case EVHTTP_REQ_DELETE:
		handle_delete(h, req, &cx);
		break;
	default:
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, POST, DELETE");
		pc_http_send_error(req, 405, NULL, PC_RPC_GENERIC,
		    "Method Not Allowed");
		break;
	}
	pc_http_scope_end();
}

/* --- setup --------------------------------------------------------------------------------- */

static void
apply_limits(struct pc_http *h)
{
	const struct pc_limits_conf *l = &h->cfg->limits;

	/*
	 * evhttp answers 413 itself past its own cap, with no hook for the
	 * gateway (no JSON-RPC error, no audit record). So its cap sits
	 * above ours, by the limit again (at most 1 MiB more): a body a
	 * little or twice too large reaches handle_post, which refuses it
	 * with a record; only a larger one is cut off unrecorded. The
	 * margin bounds the extra memory one connection can hold.
	 */
	uint64_t margin = l->max_body_bytes < PC_BODY_MARGIN_MAX ?
	    l->max_body_bytes : PC_BODY_MARGIN_MAX;
	evhttp_set_max_body_size(h->mcp, (ev_ssize_t)(l->max_body_bytes +
	    margin));
	evhttp_set_max_headers_size(h->mcp, l->max_header_bytes);
	evhttp_set_timeout(h->mcp, (int)l->read_timeout_s);
	evhttp_set_allowed_methods(h->mcp, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_HEAD);
}

/* The bufferevent of a new MCP connection: TLS or plain, counted. */
static struct bufferevent *
mcp_bev(struct event_base *base, void *arg)
{
	struct pc_http *h = arg;

	return pc_conns_track(h->conns, h->tls != NULL ?
	    pc_tls_bev_new(h->tls, base) : bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE));
}

int
pc_http_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_router *router, struct pc_authn *authn, struct pc_http **out)
{
	struct pc_http *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL)
		return PC_E_NOMEM;
	h->base = base;
	h->cfg = cfg;
	h->router = router;
	h->authn = authn;
	h->mcp = evhttp_new(base);
	if (h->mcp == NULL) {
		free(h);
		return PC_E_NOMEM;
	}
	apply_limits(h);
	evhttp_set_gencb(h->mcp, handle_mcp, h);
	/* Set once: a reload leaves the audit section as it started. */
	struct pc_flood_conf fc = { cfg->audit.flood_burst,
	    cfg->audit.flood_per_s, cfg->audit.flood_global_per_s };
	if (pc_flood_new(&fc, &h->flood) != 0) {
		evhttp_free(h->mcp);
		free(h);
		return PC_E_NOMEM;
	}
	h->sweep = event_new(base, -1, EV_PERSIST, pc_http_sweep_cb, h);
	if (h->sweep == NULL || pc_conns_new(base, cfg, &h->conns) != 0) {
		if (h->sweep != NULL)
			event_free(h->sweep);
		pc_flood_free(h->flood);
		evhttp_free(h->mcp);
		free(h);
		return PC_E_NOMEM;
	}
	/* Every connection is counted as it is made (conns.h). */
	evhttp_set_bevcb(h->mcp, mcp_bev, h);
	struct timeval tv = { 0, PC_WATCH_SWEEP_MS * 1000 };
	event_add(h->sweep, &tv);
	*out = h;
	return 0;
}

void
pc_http_set_config(struct pc_http *h, const struct pc_config *cfg)
{
	char err[256];

	/* A certificate that cannot be loaded must not take the listener
	 * down: keep serving the old one and say why. */
	if (h->tls != NULL && cfg->tls.enabled &&
	    pc_tls_reload(h->tls, &cfg->tls, err, sizeof(err)) != 0)
		pc_error("reload: TLS: %s; keeping the current certificate", err);
	else if (h->tls != NULL)
		pc_info("reload: TLS certificate loaded");
	h->cfg = cfg;
	pc_conns_set_config(h->conns, cfg);
	pc_http_set_hsts(cfg->tls.enabled ? cfg->tls.hsts_max_age_s : 0);
	apply_limits(h);
	if (h->admin != NULL)
		pc_admin_apply(h);
}

void
pc_http_set_authn(struct pc_http *h, struct pc_authn *authn)
{
	h->authn = authn;
}

void
pc_http_set_audit(struct pc_http *h, struct pc_audit *audit)
{
	h->audit = audit;
}

void
pc_http_set_limiter(struct pc_http *h, struct pc_limiter *l)
{
	h->limiter = l;
}

void
pc_http_set_redactor(struct pc_http *h, const struct pc_redactor *r)
{
	h->redactor = r;
}

int
pc_http_start(struct pc_http *h)
{
	char err[256];
	int rc;

	if (h->cfg->tls.enabled) {
		rc = pc_tls_new(&h->cfg->tls, &h->tls, err, sizeof(err));
		if (rc != 0) {
			pc_error("TLS: %s", err);
			return rc;
		}
		pc_http_set_hsts(h->cfg->tls.hsts_max_age_s);
	}
	pc_conns_check_fds(h->cfg);
	rc = pc_http_bind(h, h->mcp, &h->cfg->listen, "mcp", &h->mcp_sock);
	if (rc != 0)
		return rc;
	pc_conns_set_listener(h->conns, evhttp_bound_socket_get_listener(
	    h->mcp_sock));
	if (h->cfg->admin.address != NULL) {
		rc = pc_admin_start(h);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void
pc_http_stop_accepting(struct pc_http *h)
{
	if (h->mcp_sock != NULL) {
		pc_conns_set_listener(h->conns, NULL);
		pc_http_unguard(h, h->mcp_sock);
		evhttp_del_accept_socket(h->mcp, h->mcp_sock);
		h->mcp_sock = NULL;
	}
}

unsigned
pc_http_active(const struct pc_http *h)
{
	return h->active;
}

void
pc_http_free(struct pc_http *h)
{
	if (h == NULL)
		return;
	/* evhttp_free frees pending requests and connections: detach our
	 * exchanges first so no close callback runs into freed memory. */
	while (h->exchanges != NULL) {
		struct pc_exchange *ex = h->exchanges;
		if (ex->call != NULL) {
			pc_ex_audit_cancelled(ex, "shutdown");
			pc_router_abandon(ex->call);
		}
		ex->call = NULL;
		if (ex->kind == EX_BATCH)
			pc_batch_abandon(ex, "shutdown");
		if (ex->kind == EX_STREAM && ex->session != NULL)
			pc_session_detach_stream(ex->session, ex);
		ex->session = NULL;
		pc_ex_free(ex);
	}
	/* What the flood gate still holds goes to the log before it closes
	 * (the front is freed first). */
	pc_http_flood_drain(h, true);
	pc_flood_free(h->flood);
	if (h->admin != NULL)
		evhttp_free(h->admin);
	if (h->sweep != NULL)
		event_free(h->sweep);
	if (h->accept_pause != NULL)
		event_free(h->accept_pause);
	pc_http_unguard(h, NULL);
	evhttp_free(h->mcp);
	/* After evhttp_free: it has freed the connections. */
	pc_conns_free(h->conns);
	pc_tls_free(h->tls);
	free(h);
}
