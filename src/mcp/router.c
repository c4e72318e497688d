/*
 * The router: serves each MCP method from the catalogue or by forwarding
 * it to the upstream that owns the named tool, prompt or resource.
 *
 * Who owns what:
 *  - A pc_call lives from pc_router_request() until the sink's done() (or
 *    pc_router_abandon()). The transport must not touch it afterwards.
 *  - Upstream ids never leave the supervisor; the client's id is kept in
 *    the call and put back on the response, so a response can only ever
 *    reach the request that caused it.
 *  - A client's progressToken is replaced by the supervisor's own; progress
 *    is routed back through the call, never by the token the client chose
 *    (two clients may choose the same one).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"
#include "../lib/version.h"
#include "../secrets/redact.h"
#include "router_int.h"

static const char *const log_levels[] = {
	"debug", "info", "notice", "warning", "error", "critical", "alert",
	"emergency",
};

int
pc_log_level_index(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < 8; i++)
		if (strcmp(name, log_levels[i]) == 0)
			return i;
	return -1;
}

enum pc_rpc_kind
pc_rpc_classify(json_t *m, const char **why)
{
	json_t *id, *method;

	if (!json_is_object(m)) {
		*why = "Invalid Request: a message must be a JSON object";
		return PC_MSG_BAD;
	}
	if (!json_is_string(json_object_get(m, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") != 0) {
		*why = "Invalid Request: jsonrpc must be \"2.0\"";
		return PC_MSG_BAD;
	}
	id = json_object_get(m, "id");
	if (id != NULL && !json_is_string(id) && !json_is_integer(id)) {
		*why = "Invalid Request: id must be a string or an integer";
		return PC_MSG_BAD;
	}
	method = json_object_get(m, "method");
	if (method != NULL) {
		if (!json_is_string(method) || json_string_length(method) == 0) {
			*why = "Invalid Request: method must be a non-empty string";
			return PC_MSG_BAD;
		}
		return id != NULL ? PC_MSG_REQUEST : PC_MSG_NOTIFICATION;
	}
	if (id != NULL && ((json_object_get(m, "result") != NULL) ^
	    (json_object_get(m, "error") != NULL)))
		return PC_MSG_RESPONSE;
	*why = "Invalid Request: not a request, notification or response";
	return PC_MSG_BAD;
}

json_t *
pc_rpc_error(json_t *id, int code, const char *msg)
{
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", id ? id : json_null(), "error", "code", code, "message", msg);
}

json_t *
pc_rpc_era_refused(json_t *id, bool modern_served)
{
	if (modern_served)
		return json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:[s]}}}",
		    "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
		    "code", -32022, "message", "Unsupported protocol version: "
		    "this gateway serves only 2026-07-28 (stateless) clients",
		    "data", "supported", PC_MODERN_VERSION);
	return json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:[s, s, s]}}}",
	    "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code",
	    -32022, "message", "Unsupported protocol version: this gateway "
	    "serves only 2025 (session) clients", "data", "supported",
	    "2025-11-25", "2025-06-18", "2025-03-26");
}

json_t *
pc_rpc_result(json_t *id, json_t *result)
{
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
	    id ? id : json_null(), "result", result);
}

/* --- calls ----------------------------------------------------------------- */

static uintptr_t
client_count(struct pc_router *r, const char *src)
{
	return pc_map_counter(r->sources, src);
}

static void
client_adjust(struct pc_router *r, const char *src, int d)
{
	(void)pc_map_add(r->sources, src, d);
}

static void
call_free(struct pc_call *c)
{
	if (c == NULL)
		return;
	json_decref(c->client_id);
	json_decref(c->progress_token);
	json_decref(c->listen_filter);
	free(c->listen_roles);
	free(c->sub_uri);
	pc_rdns_free(c->dns);
	free(c);
}

/*
 * A subscribe is counted (the session's set, the shared count) before it
 * goes upstream. If it does not succeed there — refused on the way, the
 * upstream down or saturated, an error answer, the client gone — undo
 * that, or the session would believe itself subscribed (a retry answered
 * "nothing changes") and no later subscriber would tell the upstream.
 */
static bool sub_send_to(struct pc_router *r, const char *uri,
    struct pc_up_slot *slot);

static void
sub_settle(struct pc_call *c, json_t *resp)
{
	if (c->sub_uri == NULL)
		return;
	if (resp != NULL && json_object_get(resp, "result") != NULL)
		(void)pc_map_del(c->r->sub_lost, c->sub_uri);
	if (!c->sub_held && (resp == NULL ||
	    json_object_get(resp, "result") == NULL) && c->session != NULL &&
	    pc_map_del(c->session->subs, c->sub_uri) != NULL) {
		c->session->sub_bytes -= strlen(c->sub_uri);
		(void)pc_sub_adjust(c->r, c->sub_uri, -1);
		/* Sessions that subscribed while this one was on its way
		 * were told "done" and counted on it: ask again for them. */
		if (pc_map_counter(c->r->subs, c->sub_uri) > 0)
			(void)sub_send_to(c->r, c->sub_uri, NULL);
	}
	free(c->sub_uri);
	c->sub_uri = NULL;
}

/* Tell the limits stage how an admitted forward ended (once); sent: it
 * reached the upstream's queue. */
static void
gate_end_as(struct pc_call *c, enum pc_fwd_outcome outcome, bool sent)
{
	if (!c->gate_open)
		return;
	c->gate_open = 0;
	c->gate->end(c->gate_ctx, outcome, sent);
}

static void
gate_end(struct pc_call *c, enum pc_fwd_outcome outcome)
{
	gate_end_as(c, outcome, true);
}

/* Take the call out of every index it is in. */
static void
call_unlink(struct pc_call *c)
{
	struct pc_router *r = c->r;

	gate_end(c, PC_FWD_CANCELLED);

	if (c->in_session) {
		if (c->sprev != NULL)
			c->sprev->snext = c->snext;
		else
			c->session->calls = c->snext;
		if (c->snext != NULL)
			c->snext->sprev = c->sprev;
		c->snext = c->sprev = NULL;
		c->in_session = 0;
	}
	if (c->kind == PC_CK_FORWARD) {
		if (c->session != NULL && c->session->inflight > 0)
			c->session->inflight--;
		else if (c->session == NULL)
			client_adjust(r, c->client, -1);
	}
	if (c->kind == PC_CK_LISTEN) {
		if (c->session == NULL)
			client_adjust(r, c->client, -1);
		PC_LIST_UNLINK(r->listeners, c, lnext, lprev);
	}
	/* Forwarded server-to-client requests attributed to this call can
	 * still be answered by the client; keep them, drop the link. */
	if (c->session != NULL) {
		size_t pos = 0;
		const char *k;
		void *v;
		while (pc_map_next(c->session->pending, &pos, &k, &v)) {
			struct pc_fwd *f = v;
			if (f->call == c)
				f->call = NULL;
		}
	}
}

void
pc_call_finish(struct pc_call *c, int status, json_t *resp)
{
	const struct pc_sink_ops *ops = c->ops;
	void *sink = c->sink;

	if (c->in_upstream && c->slot != NULL)
		pc_upstream_cancel(c->slot->up, c->handle, "request ended");
	c->in_upstream = 0;
	sub_settle(c, resp);
	call_unlink(c);
	call_free(c);
	ops->done(sink, status, resp);
}

void
pc_router_abandon(struct pc_call *c)
{
	if (c == NULL)
		return;
	if (c->in_upstream && c->slot != NULL)
		pc_upstream_cancel(c->slot->up, c->handle,
		    "client closed the stream");
	c->in_upstream = 0;
	sub_settle(c, NULL);
	call_unlink(c);
	call_free(c);
}

/*
 * Whom the per-client cap counts a call without a session for: the
 * authenticated principal, so that principals behind one address
 * (loopback, a proxy) do not share one cap and one cannot use it up for
 * the others; without authentication (none, or `auth: none`) the address.
 */
static void
client_key(const struct pc_reqinfo *ri, char *out, size_t n)
{
	const struct pc_principal *p = ri->principal;

	if (p != NULL && p->id[0] != '\0' && p->method != PC_AUTH_NONE)
		snprintf(out, n, "p:%d\x1f%s\x1f%s", (int)p->method,
		    p->tenant, p->id);
	else
		snprintf(out, n, "s:%s", ri->source ? ri->source : "-");
}

static struct pc_call *
call_new(struct pc_router *r, const struct pc_reqinfo *ri, json_t *req,
    const struct pc_sink_ops *ops, void *sink)
{
	struct pc_call *c = calloc(1, sizeof(*c));
	const char *method = json_string_value(json_object_get(req, "method"));
	json_t *caps;

	if (c == NULL)
		return NULL;
	c->r = r;
	c->era = ri->era;
	c->session = ri->session;
	c->ops = ops;
	c->sink = sink;
	c->gate = ri->gate;
	c->gate_ctx = ri->gate_ctx;
	c->log_level = -1;
	pc_strlcpy(c->method, method ? method : "", sizeof(c->method));
	c->client_id = json_deep_copy(json_object_get(req, "id"));
	client_key(ri, c->client, sizeof(c->client));
	if (c->client_id == NULL) {
		call_free(c);
		return NULL;
	}
	if (ri->era == PC_CLIENT_LEGACY && ri->session != NULL) {
		caps = ri->session->client_caps;
		c->log_level = ri->session->log_level;
	} else {
		caps = json_object_get(ri->meta,
		    "io.modelcontextprotocol/clientCapabilities");
		/* Modern: no log messages unless the request asked for them. */
		c->log_level = pc_log_level_index(json_string_value(
		    json_object_get(ri->meta, "io.modelcontextprotocol/logLevel")));
	}
	c->client_elicit = json_object_get(caps, "elicitation") != NULL;
	c->client_sampling = json_object_get(caps, "sampling") != NULL;
	c->client_roots = json_object_get(caps, "roots") != NULL;
	return c;
}

/* --- results --------------------------------------------------------------- */

/* Rewrite one resource URI field to its exposed form. */
static void
expose_uri_field(struct pc_router *r, size_t idx, json_t *obj, const char *key)
{
	const char *u = json_string_value(json_object_get(obj, key));
	char *e;

	if (u == NULL)
		return;
	e = pc_catalog_expose_uri(r->cat, idx, u);
	if (e != NULL) {
		json_object_set_new(obj, key, json_string(e));
		free(e);
	}
}

/* Content blocks may name resources (resource_link, embedded resource):
 * a client must be able to read them back through the gateway. */
static void
expose_content(struct pc_router *r, size_t idx, json_t *blocks)
{
	size_t i;
	json_t *b;

	json_array_foreach(blocks, i, b) {
		const char *t = json_string_value(json_object_get(b, "type"));
		if (t == NULL)
			continue;
		if (strcmp(t, "resource_link") == 0)
			expose_uri_field(r, idx, b, "uri");
		else if (strcmp(t, "resource") == 0)
			expose_uri_field(r, idx, json_object_get(b, "resource"),
			    "uri");
	}
}

static void
map_result(struct pc_call *c, json_t *res)
{
	struct pc_router *r = c->r;
	size_t idx = c->slot->idx;
	size_t i;
	json_t *m;

	if (strcmp(c->method, "tools/call") == 0) {
		expose_content(r, idx, json_object_get(res, "content"));
	} else if (strcmp(c->method, "resources/read") == 0) {
		json_array_foreach(json_object_get(res, "contents"), i, m)
			expose_uri_field(r, idx, m, "uri");
	} else if (strcmp(c->method, "prompts/get") == 0) {
		json_array_foreach(json_object_get(res, "messages"), i, m) {
			json_t *one = json_array();
			json_array_append(one, json_object_get(m, "content"));
			expose_content(r, idx, one);
			json_decref(one);
		}
	}
	if (c->era == PC_CLIENT_LEGACY) {
		/* A modern upstream's marker means nothing to a 2025 client. */
		const char *rt = json_string_value(json_object_get(res,
		    "resultType"));
		if (rt != NULL && strcmp(rt, "complete") == 0)
			json_object_del(res, "resultType");
	}
	if (c->era == PC_CLIENT_MODERN) {
		/* Strict modern clients reject results without resultType; a
		 * legacy upstream never sends one. */
		if (json_object_get(res, "resultType") == NULL)
			json_object_set_new(res, "resultType",
			    json_string("complete"));
		/* What a resource holds may differ by caller here (the
		 * policy hides URIs from some): never "public", which lets a
		 * shared cache serve it across authorization contexts, as the
		 * lists already are. */
		if (strcmp(c->method, "resources/read") == 0) {
			if (!json_is_integer(json_object_get(res, "ttlMs")) ||
			    json_integer_value(json_object_get(res,
			    "ttlMs")) < 0)
				json_object_set_new(res, "ttlMs",
				    json_integer(0));
			json_object_set_new(res, "cacheScope",
			    json_string("private"));
		}
	}
}

static void
add_server_meta(json_t *res)
{
	json_t *meta = json_object_get(res, "_meta");

	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(res, "_meta", meta);
	}
	json_object_set_new(meta, "io.modelcontextprotocol/serverInfo",
	    json_pack("{s:s, s:s}", "name", "portcullis", "version", PC_VERSION));
}

/* Answer a call with a result object (stolen). */
void
pc_call_finish_result(struct pc_call *c, json_t *res)
{
	json_t *resp;

	if (c->era == PC_CLIENT_MODERN) {
		if (json_object_get(res, "resultType") == NULL)
			json_object_set_new(res, "resultType",
			    json_string("complete"));
		add_server_meta(res);
	}
	resp = pc_rpc_result(c->client_id, res);
	pc_call_finish(c, 200, resp);
	json_decref(resp);
}

static void
finish_error(struct pc_call *c, int status, int code, const char *msg)
{
	json_t *resp = pc_rpc_error(c->client_id, code, msg);

	pc_call_finish(c, status, resp);
	json_decref(resp);
}

static void
on_reply(void *arg, int err, json_t *msg)
{
	struct pc_call *c = arg;
	json_t *e, *res;

	c->in_upstream = 0;
	gate_end(c, err == 0 ? PC_FWD_ANSWERED : err == PC_E_CLOSED ?
	    PC_FWD_CANCELLED : PC_FWD_FAILED);
	if (err != 0) {
		switch (err) {
		case PC_E_TIMEOUT:
			finish_error(c, 200, PC_RPC_UP_TIMEOUT,
			    "Upstream request timed out");
			break;
		case PC_E_CLOSED:
			finish_error(c, 200, PC_RPC_UP_UNAVAILABLE,
			    "Gateway is shutting down");
			break;
		default:
			finish_error(c, 200, PC_RPC_UP_UNAVAILABLE,
			    "Upstream unavailable; retry later");
			break;
		}
		return;
	}
	e = json_object_get(msg, "error");
	if (json_is_object(e)) {
		json_t *ce = json_deep_copy(e);
		json_t *code = json_object_get(ce, "code");
		json_t *resp;
		/* 2026-07-28 renumbered resource-not-found. */
		if (c->era == PC_CLIENT_MODERN && json_is_integer(code) &&
		    json_integer_value(code) == -32002)
			json_object_set_new(ce, "code", json_integer(-32602));
		resp = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
		    c->client_id, "error", ce);
		pc_call_finish(c, 200, resp);
		json_decref(resp);
		return;
	}
	res = json_object_get(msg, "result");
	if (!json_is_object(res)) {
		finish_error(c, 200, -32603, "Upstream sent an invalid response");
		return;
	}
	/* msg is discarded after this callback: take the result as is. */
	res = json_incref(res);
	map_result(c, res);
	pc_call_finish_result(c, res);
}

static void
on_progress(void *arg, json_t *params)
{
	struct pc_call *c = arg;
	json_t *p, *n;

	if (c->progress_token == NULL)
		return;
	p = json_deep_copy(params);
	/* Its message is the upstream's text, like a log line: a secret
	 * the gateway gave it does not reach the client (the token and
	 * the numbers are left alone: "progressToken" is no secret). */
	const char *m = json_string_value(json_object_get(p, "message"));
	if (m != NULL && c->r->redactor != NULL) {
		char *red = pc_redact_text(c->r->redactor, m, strlen(m));
		json_t *js = red != NULL ? json_string(red) : NULL;
		/* Not redacted, not sent. */
		json_object_set_new(p, "message", js != NULL ? js :
		    json_string(PC_REDACTED));
		free(red);
	}
	json_object_set(p, "progressToken", c->progress_token);
	n = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method",
	    "notifications/progress", "params", p);
	if (n != NULL) {
		c->ops->message(c->sink, n);
		json_decref(n);
	}
}

/*
 * Build the params sent upstream: the client's, with the exposed name
 * replaced by the upstream's own, the client's progress token held back,
 * and the modern envelope removed (the supervisor adds its own for a
 * modern child; a legacy child must not see it).
 */
static json_t *
upstream_params(struct pc_call *c, json_t *params)
{
	/* The request is the transport's, discarded once routed: edit it in
	 * place rather than copy it (see pc_router_request()). */
	json_t *p = json_is_object(params) ? json_incref(params) : json_object();
	json_t *meta = json_object_get(p, "_meta");

	if (json_is_object(meta)) {
		json_t *tok = json_object_get(meta, "progressToken");
		if (json_is_string(tok) || json_is_integer(tok))
			c->progress_token = json_incref(tok);
		json_object_del(meta, "progressToken");
		const char *k;
		void *tmp;
		json_t *v;
		json_object_foreach_safe(meta, tmp, k, v) {
			(void)v;
			if (strncmp(k, "io.modelcontextprotocol/", 24) == 0)
				json_object_del(meta, k);
		}
		if (json_object_size(meta) == 0)
			json_object_del(p, "_meta");
	}
	return p;
}

/* Who a call is for, to the supervisor's attribution: its session (64 of
 * the id's random bits); 0 (unknown) without one. Only a session can be
 * asked anything by an upstream. */
static uint64_t
client_of(const struct pc_call *c)
{
	char head[17];
	uint64_t v;

	if (c->session == NULL || strlen(c->session->id) < 16)
		return 0;
	memcpy(head, c->session->id, 16);
	head[16] = '\0';
	v = strtoull(head, NULL, 16);
	return v == 0 || v == UINT64_MAX ? 1 : v;
}

static void
forward(struct pc_call *c, size_t idx, json_t *p)
{
	struct pc_router *r = c->r;
	struct pc_up_slot *slot = &r->slots[idx];
	int rc;

	c->slot = slot;
	c->kind = PC_CK_FORWARD;
	if (c->ops->routed != NULL)
		c->ops->routed(c->sink, pc_upstream_name(slot->up));
	/* (Un)subscribe is session bookkeeping already done above: it
	 * passes the limits stage unchecked rather than half undone. */
	if (c->gate != NULL && strcmp(c->method, "resources/subscribe") != 0 &&
	    strcmp(c->method, "resources/unsubscribe") != 0) {
		int status = 503;
		json_t *err = NULL, *resp;
		if (c->gate->admit(c->gate_ctx, c->method,
		    pc_upstream_name(slot->up), &status, &err) != 0) {
			json_decref(p);
			resp = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0",
			    "id", c->client_id, "error", err ? err :
			    json_pack("{s:i, s:s}", "code", -32603, "message",
			    "Internal error"));
			pc_call_finish(c, status, resp);
			json_decref(resp);
			return;
		}
		c->gate_open = 1;
	}
	rc = pc_upstream_call(slot->up, c->method, p, 0, on_reply,
	    c->progress_token ? on_progress : NULL, c, &c->handle);
	json_decref(p);
	if (rc == 0)
		pc_upstream_set_owner(slot->up, c->handle, c, client_of(c));
	if (rc != 0) {
		gate_end_as(c, rc == PC_E_LIMIT ? PC_FWD_CANCELLED :
		    PC_FWD_FAILED, false);
		finish_error(c, 200, PC_RPC_UP_UNAVAILABLE,
		    rc == PC_E_LIMIT ? "Upstream is saturated; retry later"
		    : "Upstream unavailable; retry later");
		return;
	}
	c->in_upstream = 1;
}

/* Resolve a tool or prompt name and forward. */
static void
forward_named(struct pc_call *c, const struct pc_reqinfo *ri,
    enum pc_cat_kind kind, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	const char *orig;
	size_t idx;
	int listed = 0;
	json_t *p;

	if (name == NULL) {
		finish_error(c, 200, -32602, "Invalid params: name is required");
		return;
	}
	/* Only what the catalogue lists is callable: a tool an upstream adds
	 * silently is not reachable until it shows up in a refresh. */
	if (pc_catalog_resolve_name(c->r->cat, kind, name, &idx, &orig,
	    &listed) != 0 || !listed)
		goto unknown;
	/* Authorize, then validate: a hidden tool answers exactly as a
	 * missing one; constraints may rewrite arguments (SET, PATH), and
	 * the schema then checks exactly what will be forwarded. */
	if (kind == PC_CAT_PROMPTS &&
	    pc_rpol_item(c, ri, PC_ITEM_PROMPT, name) != 0)
		goto unknown;
	if (kind == PC_CAT_TOOLS) {
		json_t *res = NULL;
		struct pc_url_memo *memo = NULL;
		int rc = 0;

		/* A URL constraint may need names looked up: never here, on
		 * the loop (router_dns.c). */
		if (pc_policy_resolves(c->r->cfg->policy, name) &&
		    (memo = pc_rdns_memo(c)) == NULL)
			rc = PC_E_NOMEM;
		if (rc == 0)
			rc = pc_rpol_tool_call(c, ri, name, params, memo, &res);
		if (rc == PC_E_AGAIN) {
			if (pc_rdns_wait(c, ri, params) != 0)
				finish_error(c, 200, -32603, "Internal error");
			return;
		}
		if (rc == PC_E_NOTFOUND)
			goto unknown;
		if (rc == PC_E_DENIED) {
			pc_call_finish_result(c, res);
			return;
		}
		if (rc != 0) {
			finish_error(c, 200, -32603, "Internal error");
			return;
		}
		/* Arguments must fit the tool's own schema before anything
		 * leaves the gateway; a misfit is a tool execution error. */
		if (pc_schemas_check(&c->r->slots[idx], orig,
		    json_object_get(params, "arguments"), &res) != 0 ||
		    pc_tighten_check(c->r, name, json_object_get(params,
		    "arguments"), &res) != 0) {
			pc_call_finish_result(c, res);
			return;
		}
	}
	p = upstream_params(c, params);
	json_object_set_new(p, "name", json_string(orig));
	forward(c, idx, p);
	return;
unknown:
	finish_error(c, 200, -32602, kind == PC_CAT_TOOLS ? "Unknown tool" :
	    "Unknown prompt");
}

void
pc_router_tool_resume(struct pc_call *c, const struct pc_reqinfo *ri,
    json_t *params)
{
	if (c->r->shutting_down) {
		finish_error(c, 503, PC_RPC_UP_UNAVAILABLE,
		    "Gateway is shutting down");
		return;
	}
	forward_named(c, ri, PC_CAT_TOOLS, params);
}

static void
forward_uri(struct pc_call *c, const struct pc_reqinfo *ri, json_t *params,
    int subscribe)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	char *orig = NULL;
	size_t idx;
	json_t *p;

	if (uri == NULL) {
		finish_error(c, 200, -32602, "Invalid params: uri is required");
		return;
	}
	/* No listed URI is longer (the catalogue's own cap); a client's
	 * longer one would only cost memory here and upstream. */
	if (json_string_length(json_object_get(params, "uri")) >
	    PC_MAX_URI_LEN || strlen(uri) != json_string_length(
	    json_object_get(params, "uri"))) {
		finish_error(c, 200, c->era == PC_CLIENT_MODERN ? -32602 :
		    -32002, "Resource not found");
		return;
	}
	/* Unsubscribing from what the session holds is always allowed: a
	 * reload that hid the resource must not pin the subscription. */
	bool held = subscribe < 0 && c->session != NULL &&
	    pc_map_get(c->session->subs, uri) != NULL;
	if (pc_catalog_resolve_uri(c->r->cat, uri, &idx, &orig) != 0 ||
	    (!held && pc_rpol_item(c, ri, PC_ITEM_RESOURCE, uri) != 0)) {
		free(orig);
		/* -32002 before 2026-07-28, -32602 since. A hidden resource
		 * answers the same. */
		finish_error(c, 200, c->era == PC_CLIENT_MODERN ? -32602 : -32002,
		    "Resource not found");
		return;
	}
	/*
	 * The upstream sees one subscriber, the gateway: it subscribes when
	 * the first session does and unsubscribes when the last one leaves,
	 * so one client's unsubscribe never ends another's updates.
	 */
	if (subscribe != 0 && c->session != NULL) {
		int had = pc_map_get(c->session->subs, uri) != NULL;
		bool lost = subscribe > 0 &&
		    pc_map_get(c->r->sub_lost, uri) != NULL;
		if (lost && had) {
			/* Held here, not upstream: the holder's subscribe
			 * again goes there, and its answer is the client's
			 * (a call like any other, limits and all). */
			if ((c->sub_uri = strdup(uri)) == NULL) {
				free(orig);
				finish_error(c, 200, -32603, "Internal error");
				return;
			}
			c->sub_held = true;
			goto send;
		}
		if (subscribe > 0 ? had : !had) {
			free(orig);
			pc_call_finish_result(c, json_object());	/* nothing changes */
			return;
		}
		if (subscribe > 0 && (pc_map_count(c->session->subs) >=
		    PC_MAX_SESSION_SUBS || c->session->sub_bytes +
		    strlen(uri) > PC_MAX_SESSION_SUB_BYTES)) {
			free(orig);
			finish_error(c, 200, PC_RPC_GENERIC, "Too many "
			    "subscriptions on this session; unsubscribe first");
			return;
		}
		if (subscribe > 0 ? pc_map_put(c->session->subs, uri, (void *)1)
		    != 0 : pc_map_del(c->session->subs, uri) == NULL) {
			free(orig);
			finish_error(c, 200, -32603, "Internal error");
			return;
		}
		if (subscribe > 0)
			c->session->sub_bytes += strlen(uri);
		else
			c->session->sub_bytes -= strlen(uri);
		/* Others hold it: the upstream already has it, unless it
		 * refused to take it again; then this one asks it. */
		if (pc_sub_adjust(c->r, uri, subscribe) != 0 && !lost) {
			free(orig);
			pc_call_finish_result(c, json_object());	/* others remain */
			return;
		}
		/* Sent upstream: settled by the answer (sub_settle). */
		if (subscribe > 0 && (c->sub_uri = strdup(uri)) == NULL) {
			pc_map_del(c->session->subs, uri);
			c->session->sub_bytes -= strlen(uri);
			(void)pc_sub_adjust(c->r, uri, -1);
			free(orig);
			finish_error(c, 200, -32603, "Internal error");
			return;
		}
	}
send:
	p = upstream_params(c, params);
	json_object_set_new(p, "uri", json_string(orig));
	free(orig);
	forward(c, idx, p);
}

/*
 * Count subscribers of an exposed URI across sessions. Returns 0 when the
 * upstream must be told (first subscriber, or last one gone), 1 otherwise.
 */
int
pc_sub_adjust(struct pc_router *r, const char *uri, int d)
{
	long n;

	if (d > 0) {
		n = pc_map_add(r->subs, uri, 1);
		/* Cannot count: tell the upstream anyway. */
		return n < 0 || n == 1 ? 0 : 1;
	}
	n = (long)pc_map_counter(r->subs, uri);
	(void)pc_map_add(r->subs, uri, -1);
	if (n <= 1)
		(void)pc_map_del(r->sub_lost, uri);	/* nobody holds it */
	return n <= 1 ? 0 : 1;
}

static void
ignore_reply(void *arg, int err, json_t *msg)
{
	(void)arg;
	(void)err;
	(void)msg;
}

/* A session went away: drop its subscriptions, unsubscribing upstream
 * where it was the last subscriber. */
void
pc_sub_release_session(struct pc_router *r, struct pc_session *s)
{
	size_t pos = 0;
	const char *uri;
	void *v;

	while (pc_map_next(s->subs, &pos, &uri, &v)) {
		size_t idx;
		char *orig = NULL;
		if (pc_sub_adjust(r, uri, -1) == 0 &&
		    pc_catalog_resolve_uri(r->cat, uri, &idx, &orig) == 0) {
			json_t *p = json_pack("{s:s}", "uri", orig);
			if (p != NULL)
				(void)pc_upstream_call(r->slots[idx].up,
				    "resources/unsubscribe", p, 0, ignore_reply,
				    NULL, NULL, NULL);
			json_decref(p);
		}
		free(orig);
	}
}

static unsigned listen_lists(const struct pc_call *c);

void
pc_router_listen_set_roles(struct pc_call *c, const char *roles)
{
	char *dup;

	if (c == NULL || c->kind != PC_CK_LISTEN)
		return;
	if (roles == NULL)
		roles = "";
	if (c->listen_roles != NULL && strcmp(c->listen_roles, roles) == 0)
		return;
	/* Out of memory: no roles (default roles only) rather than the old
	 * ones, which may be wider than what the principal holds now. */
	dup = strdup(roles);
	/* A grant that ended or began changes what the stream's lists
	 * show: it is told, as of a list_changed, if it asked to be. */
	unsigned mask = listen_lists(c) == 0 ? 0 : pc_rpol_views_differ(c->r,
	    c->r->cfg->policy, c->listen_roles, c->r->cfg->policy,
	    dup != NULL ? dup : "");
	free(c->listen_roles);
	c->listen_roles = dup;
	pc_listener_tell_lists(c, mask);
}

/* The gateway's own subscribe for the sessions holding uri. */
struct sub_again {
	struct pc_router *r;
	char uri[];
};

/* Refused, the URI is marked lost: the next subscribe (a new holder's, or
 * a holder's again) asks the upstream once more. */
static void
sub_lost(struct pc_router *r, const char *uri)
{
	if (pc_map_counter(r->subs, uri) > 0 &&
	    pc_map_put(r->sub_lost, uri, (void *)1) != 0)
		pc_warn("out of memory marking %s lost", uri);
	pc_warn("upstream did not take the subscription to %s: the sessions "
	    "holding it get no updates until one subscribes again, the "
	    "upstream restarts or they all unsubscribe", uri);
}

static void
replay_reply(void *arg, int err, json_t *msg)
{
	struct sub_again *a = arg;

	if (err == 0 && json_object_get(msg, "result") != NULL)
		(void)pc_map_del(a->r->sub_lost, a->uri);
	else if (err != PC_E_CLOSED)
		sub_lost(a->r, a->uri);
	free(a);
}

/*
 * Subscribe the owning upstream to exposed `uri` for the sessions that
 * hold it (the gateway's own call, answered by replay_reply). With slot,
 * only if that is the owner (a child just started). Whether it was sent.
 */
static bool
sub_send_to(struct pc_router *r, const char *uri, struct pc_up_slot *slot)
{
	size_t idx, n = strlen(uri);
	char *orig = NULL;
	struct sub_again *a;
	json_t *p;
	bool sent = false;

	if (pc_catalog_resolve_uri(r->cat, uri, &idx, &orig) != 0 ||
	    (slot != NULL && idx != slot->idx)) {
		free(orig);
		return false;
	}
	p = json_pack("{s:s}", "uri", orig);
	free(orig);
	a = malloc(sizeof(*a) + n + 1);
	if (a != NULL) {
		a->r = r;
		memcpy(a->uri, uri, n + 1);
	}
	if (p == NULL || a == NULL || pc_upstream_call(r->slots[idx].up,
	    "resources/subscribe", p, 0, replay_reply, NULL, a,
	    NULL) != 0) {
		free(a);
		sub_lost(r, uri);
	} else {
		sent = true;
	}
	json_decref(p);
	return sent;
}

/*
 * A child (re)started knows of no subscription: tell it of every URI it
 * owns that a session still holds. Without this, a crash ended every
 * update without a word while the sessions believed themselves
 * subscribed. Calls reach a child only once it is ready, so these go out
 * before any call that could cause an update.
 */
void
pc_sub_replay(struct pc_router *r, struct pc_up_slot *slot)
{
	size_t pos = 0, n = 0, left = 0;
	const char *uri;
	void *v;

	while (pc_map_next(r->subs, &pos, &uri, &v)) {
		/* All of it is queued in this pass of the loop: past a budget
		 * the rest wait for their next subscribe, or the child would
		 * be taken for one that stopped reading and killed, at every
		 * restart. */
		if (pc_upstream_queued(slot->up) > PC_SUB_REPLAY_MAX_BYTES) {
			size_t idx;
			char *orig = NULL;

			if (pc_catalog_resolve_uri(r->cat, uri, &idx,
			    &orig) == 0 && idx == slot->idx &&
			    pc_map_put(r->sub_lost, uri, (void *)1) == 0)
				left++;
			free(orig);
			continue;
		}
		if (sub_send_to(r, uri, slot))
			n++;
	}
	if (n > 0)
		pc_info("upstream '%s': %zu subscription(s) renewed",
		    pc_upstream_name(slot->up), n);
	if (left > 0)
		pc_warn("upstream '%s': %zu more subscription(s) not renewed "
		    "(over %u bytes queued): the sessions holding them get no "
		    "updates until one subscribes again",
		    pc_upstream_name(slot->up), left, PC_SUB_REPLAY_MAX_BYTES);
}

static void
forward_completion(struct pc_call *c, const struct pc_reqinfo *ri,
    json_t *params)
{
	json_t *ref = json_object_get(params, "ref");
	const char *type = json_string_value(json_object_get(ref, "type"));
	json_t *p;

	if (type != NULL && strcmp(type, "ref/prompt") == 0) {
		const char *name = json_string_value(json_object_get(ref, "name"));
		const char *orig;
		size_t idx;
		int listed = 0;
		if (name == NULL || pc_catalog_resolve_name(c->r->cat,
		    PC_CAT_PROMPTS, name, &idx, &orig, &listed) != 0 ||
		    !listed || pc_rpol_item(c, ri, PC_ITEM_PROMPT, name) != 0) {
			finish_error(c, 200, -32602, "Unknown prompt");
			return;
		}
		p = upstream_params(c, params);
		json_object_set_new(json_object_get(p, "ref"), "name",
		    json_string(orig));
		forward(c, idx, p);
		return;
	}
	if (type != NULL && strcmp(type, "ref/resource") == 0) {
		const char *uri = json_string_value(json_object_get(ref, "uri"));
		char *orig = NULL;
		size_t idx;
		if (uri == NULL ||
		    pc_catalog_resolve_uri(c->r->cat, uri, &idx, &orig) != 0 ||
		    pc_rpol_item(c, ri, PC_ITEM_RESOURCE, uri) != 0) {
			free(orig);
			finish_error(c, 200, -32602, "Unknown resource");
			return;
		}
		p = upstream_params(c, params);
		json_object_set_new(json_object_get(p, "ref"), "uri",
		    json_string(orig));
		free(orig);
		forward(c, idx, p);
		return;
	}
	finish_error(c, 200, -32602, "Invalid params: ref must be ref/prompt "
	    "or ref/resource");
}

/* --- modern-only methods ----------------------------------------------------- */

static json_t *
gateway_capabilities(void)
{
	return json_pack("{s:{s:b}, s:{s:b}, s:{s:b, s:b}, s:{}, s:{}}",
	    "tools", "listChanged", 1, "prompts", "listChanged", 1,
	    "resources", "subscribe", 1, "listChanged", 1,
	    "logging", "completions");
}

static void
serve_discover(struct pc_call *c)
{
	json_t *res = json_pack("{s:[s], s:o, s:i, s:s}",
	    "supportedVersions", PC_MODERN_VERSION,
	    "capabilities", gateway_capabilities(),
	    "ttlMs", (json_int_t)c->r->cfg->limits.list_ttl_ms,
	    "cacheScope", "public");

	pc_call_finish_result(c, res);
}

static json_t *
listen_note(struct pc_call *c, const char *method, json_t *params)
{
	json_t *meta;

	if (params == NULL)
		params = json_object();
	meta = json_object_get(params, "_meta");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(params, "_meta", meta);
	}
	json_object_set(meta, "io.modelcontextprotocol/subscriptionId",
	    c->client_id);
	return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method,
	    "params", params);
}

static void
serve_listen(struct pc_call *c, const struct pc_reqinfo *ri, json_t *params)
{
	struct pc_router *r = c->r;
	json_t *want = json_object_get(params, "notifications");
	json_t *honoured = json_object(), *n;
	static const char *const flags[] = {
		"toolsListChanged", "promptsListChanged", "resourcesListChanged",
	};

	if (want != NULL && !json_is_object(want)) {
		json_decref(honoured);
		finish_error(c, 200, -32602,
		    "Invalid params: notifications must be an object");
		return;
	}
	for (size_t i = 0; i < 3; i++)
		if (json_is_true(json_object_get(want, flags[i])))
			json_object_set_new(honoured, flags[i], json_true());
	/* Only resources this principal may see: an update about a hidden
	 * one would tell it that the resource exists (hidden ≡ missing). */
	json_t *subs = json_object_get(want, "resourceSubscriptions");
	json_t *mine = json_array(), *s;
	size_t i;
	json_array_foreach(subs, i, s)
		if (json_is_string(s) &&
		    pc_rpol_resource_allowed(r, ri, json_string_value(s)))
			json_array_append(mine, s);
	if (json_array_size(mine) > 0)
		json_object_set(honoured, "resourceSubscriptions", mine);
	json_decref(mine);
	c->listen_roles = strdup(ri->principal != NULL ?
	    ri->principal->roles : "");
	if (c->listen_roles == NULL) {
		json_decref(honoured);
		finish_error(c, 200, -32603, "Internal error");
		return;
	}
	c->kind = PC_CK_LISTEN;
	c->listen_filter = honoured;
	c->lnext = r->listeners;
	if (r->listeners != NULL)
		r->listeners->lprev = c;
	r->listeners = c;
	n = listen_note(c, "notifications/subscriptions/acknowledged",
	    json_pack("{s:O}", "notifications", honoured));
	if (n != NULL) {
		c->ops->message(c->sink, n);
		json_decref(n);
	}
}

/* The listen filter's flag for a list_changed method; NULL for others. */
static const char *
listen_flag(const char *method)
{
	if (strcmp(method, "notifications/tools/list_changed") == 0)
		return "toolsListChanged";
	if (strcmp(method, "notifications/prompts/list_changed") == 0)
		return "promptsListChanged";
	if (strcmp(method, "notifications/resources/list_changed") == 0)
		return "resourcesListChanged";
	return NULL;
}

static void
listen_send(struct pc_call *c, const char *method, const char *uri)
{
	json_t *n = listen_note(c, method, uri ? json_pack("{s:s}", "uri", uri)
	    : NULL);

	if (n != NULL) {
		c->ops->message(c->sink, n);
		json_decref(n);
	}
}

/* The lists (bit 1 << PC_CAT_*) a listen stream asked to hear of. */
static unsigned
listen_lists(const struct pc_call *c)
{
	unsigned want = 0;

	for (int k = 0; k < PC_CAT__N; k++)
		if (c->kind == PC_CK_LISTEN && json_is_true(json_object_get(
		    c->listen_filter, listen_flag(pc_list_changed_method[k]))))
			want |= 1u << k;
	return want;
}

void
pc_listener_tell_lists(struct pc_call *c, unsigned mask)
{
	const char *send[PC_CAT__N];
	size_t n = 0;

	mask &= listen_lists(c);
	for (int k = 0; k < PC_CAT__N; k++)
		if (pc_list_bit_told(mask, k))
			send[n++] = pc_list_changed_method[k];
	/* Decided before the first is sent; listen_send reads c again for
	 * the next (a sink never frees its call from inside message()). */
	for (size_t i = 0; i < n; i++)
		listen_send(c, send[i], NULL);
}

void
pc_listeners_notify(struct pc_router *r, const char *method, const char *uri,
    const struct pc_list_change *chg)
{
	struct pc_call *c, *next;
	const char *flag = listen_flag(method);

	for (c = r->listeners; c != NULL; c = next) {
		json_t *f = c->listen_filter;
		next = c->lnext;
		if (flag != NULL && !json_is_true(json_object_get(f, flag)))
			continue;
		if (flag != NULL && chg != NULL && !pc_rpol_change_visible(r,
		    c->listen_roles, chg))
			continue;
		if (flag == NULL) {
			/* resources/updated: only for subscribed URIs. */
			json_t *subs = json_object_get(f, "resourceSubscriptions");
			size_t i;
			json_t *s;
			int hit = 0;
			json_array_foreach(subs, i, s)
				if (uri && json_is_string(s) &&
				    strcmp(json_string_value(s), uri) == 0)
					hit = 1;
			/* A reload may have hidden it since. */
			if (!hit || !pc_policy_item_allowed(r->cfg->policy,
			    c->listen_roles != NULL ? c->listen_roles : "",
			    PC_ITEM_RESOURCE, uri))
				continue;
		}
		listen_send(c, method, uri);
	}
}

/* --- dispatch ---------------------------------------------------------------- */

int
pc_router_request(struct pc_router *r, const struct pc_reqinfo *ri,
    json_t *req, const struct pc_sink_ops *ops, void *sink,
    struct pc_call **out)
{
	const char *m = json_string_value(json_object_get(req, "method"));
	json_t *params = json_object_get(req, "params");
	struct pc_call *c;
	int modern = ri->era == PC_CLIENT_MODERN;

	if (out != NULL)
		*out = NULL;
	if (m == NULL)
		return PC_E_INVAL;
	/* Per-client cap, before any work is queued for this client. */
	if (ri->session != NULL) {
		if (ri->session->inflight >= r->cfg->limits.max_pending_per_client)
			return PC_E_LIMIT;
	} else {
		char who[sizeof(((struct pc_call *)0)->client)];

		client_key(ri, who, sizeof(who));
		if (client_count(r, who) >= r->cfg->limits.max_pending_per_client)
			return PC_E_LIMIT;
	}
	/* An id a request of this session still holds: its answer could
	 * not be told from the other's, nor a cancellation aimed at one. */
	bool dup_id = false;
	if (ri->session != NULL) {
		json_t *id = json_object_get(req, "id");

		for (const struct pc_call *o = ri->session->calls; o != NULL;
		    o = o->snext)
			if (json_equal(o->client_id, id)) {
				dup_id = true;
				break;
			}
	}
	c = call_new(r, ri, req, ops, sink);
	if (c == NULL)
		return PC_E_NOMEM;
	c->kind = PC_CK_FORWARD;
	if (c->session != NULL) {
		c->session->inflight++;
		/* A session holds few calls (max_pending_per_client): a list
		 * beats a map, and cancellation scans it. */
		c->snext = c->session->calls;
		if (c->snext != NULL)
			c->snext->sprev = c;
		c->session->calls = c;
		c->in_session = 1;
	} else {
		client_adjust(r, c->client, +1);
	}
	if (out != NULL)
		*out = c;

	if (r->shutting_down) {
		if (out != NULL)
			*out = NULL;
		finish_error(c, 503, PC_RPC_UP_UNAVAILABLE,
		    "Gateway is shutting down");
		return 0;
	}
	if (params != NULL && !json_is_object(params)) {
		if (out != NULL)
			*out = NULL;
		finish_error(c, modern ? 400 : 200, -32602,
		    "Invalid params: params must be an object");
		return 0;
	}
	if (dup_id) {
		if (out != NULL)
			*out = NULL;
		/* With a null id: on stdio, or in a batch, an answer with the
		 * id would settle the other request in the client's eyes. */
		json_decref(c->client_id);
		c->client_id = json_null();
		finish_error(c, 400, -32600, "Invalid Request: this id is "
		    "already in use by a request in progress on this session");
		return 0;
	}

	/* Methods that finish synchronously clear *out first: the call is
	 * gone by the time they return. */
	if (strcmp(m, "tools/call") == 0) {
		forward_named(c, ri, PC_CAT_TOOLS, params);
	} else if (strcmp(m, "prompts/get") == 0) {
		forward_named(c, ri, PC_CAT_PROMPTS, params);
	} else if (strcmp(m, "resources/read") == 0) {
		forward_uri(c, ri, params, 0);
	} else if (strcmp(m, "completion/complete") == 0) {
		forward_completion(c, ri, params);
	} else if (!modern && strcmp(m, "resources/subscribe") == 0) {
		forward_uri(c, ri, params, 1);
	} else if (!modern && strcmp(m, "resources/unsubscribe") == 0) {
		forward_uri(c, ri, params, -1);
	} else if (modern && strcmp(m, "subscriptions/listen") == 0) {
		/* An open listen stream keeps its place under the client's
		 * cap: streams that cost nothing to open and hold a
		 * connection each must not be unlimited. */
		c->kind = PC_CK_LISTEN;
		serve_listen(c, ri, params);
		return 0;
	} else {
		if (out != NULL)
			*out = NULL;
		if (strcmp(m, "tools/list") == 0 || strcmp(m, "prompts/list") == 0 ||
		    strcmp(m, "resources/list") == 0 ||
		    strcmp(m, "resources/templates/list") == 0) {
			enum pc_cat_kind k = m[0] == 't' ? PC_CAT_TOOLS :
			    m[0] == 'p' ? PC_CAT_PROMPTS :
			    strcmp(m, "resources/list") == 0 ? PC_CAT_RESOURCES :
			    PC_CAT_TEMPLATES;
			json_t *res = NULL, *err = NULL;
			int rc = pc_router_list(r, ri, k, params, &res, &err);
			if (rc == 0) {
				pc_call_finish_result(c, res);
			} else {
				json_t *resp = json_pack("{s:s, s:O, s:o}",
				    "jsonrpc", "2.0", "id", c->client_id,
				    "error", err ? err : json_pack("{s:i, s:s}",
				    "code", -32603, "message", "Internal error"));
				pc_call_finish(c, modern ? 400 : 200, resp);
				json_decref(resp);
			}
		} else if (modern && strcmp(m, "server/discover") == 0) {
			serve_discover(c);
		} else if (!modern && strcmp(m, "ping") == 0) {
			pc_call_finish_result(c, json_object());
		} else if (!modern && strcmp(m, "logging/setLevel") == 0) {
			int lvl = pc_log_level_index(json_string_value(
			    json_object_get(params, "level")));
			if (lvl < 0) {
				finish_error(c, 200, -32602,
				    "Invalid params: unknown log level");
			} else {
				c->session->log_level = lvl;
				pc_call_finish_result(c, json_object());
			}
		} else if (!modern && strcmp(m, "initialize") == 0) {
			finish_error(c, 400, -32600,
			    "Invalid Request: session already initialized");
		} else {
			finish_error(c, modern ? 404 : 200, -32601,
			    "Method not found");
		}
		return 0;
	}
	/* The forward may have failed synchronously; then c is freed. The
	 * caller learns it through done(); *out must not dangle. */
	return 0;
}

void
pc_router_notification(struct pc_router *r, const struct pc_reqinfo *ri,
    json_t *msg)
{
	const char *m = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");

	(void)r;
	if (m == NULL)
		return;
	if (strcmp(m, "notifications/cancelled") == 0 && ri->session != NULL) {
		json_t *rid = json_object_get(params, "requestId");
		struct pc_call *c = ri->session->calls;
		while (c != NULL && !(rid != NULL && json_equal(c->client_id, rid)))
			c = c->snext;
		if (c != NULL)
			pc_router_cancel(c);
		return;
	}
	/* initialized, roots/list_changed and others need no action. */
}

void
pc_router_cancel(struct pc_call *c)
{
	pc_debug("client cancelled a request");
	/* The client still waits for an answer: end it. */
	finish_error(c, 200, PC_RPC_GENERIC, "Request cancelled");
}

/* Whether the child that asked is still the one running: after a restart
 * the new child's ids start over, so an answer owed to the old one would
 * answer a request of the new one (another client's, maybe). */
bool
pc_fwd_current(const struct pc_fwd *f)
{
	return f->slot != NULL && f->slot->up != NULL &&
	    pc_upstream_generation(f->slot->up) == f->gen;
}

int
pc_router_client_lookup(struct pc_router *r, struct pc_session *s,
    json_t *msg, struct pc_answered *what)
{
	const char *id = json_string_value(json_object_get(msg, "id"));
	const struct pc_fwd *f;

	(void)r;
	memset(what, 0, sizeof(*what));
	if (s == NULL || id == NULL || (f = pc_map_get(s->pending, id)) == NULL ||
	    !pc_fwd_current(f))
		return PC_E_NOTFOUND;
	pc_strlcpy(what->method, f->method, sizeof(what->method));
	if (f->slot != NULL && f->slot->up != NULL)
		pc_strlcpy(what->upstream, pc_upstream_name(f->slot->up),
		    sizeof(what->upstream));
	return 0;
}

int
pc_router_client_response(struct pc_router *r, struct pc_session *s,
    json_t *msg)
{
	const char *id = json_string_value(json_object_get(msg, "id"));
	struct pc_fwd *f;
	json_t *res, *err;

	(void)r;
	if (id == NULL || (f = pc_map_get(s->pending, id)) == NULL)
		return PC_E_NOTFOUND;
	pc_map_del(s->pending, id);
	res = json_object_get(msg, "result");
	err = json_object_get(msg, "error");
	if (!pc_fwd_current(f)) {
		pc_debug("a client answered a request of an upstream child "
		    "that is gone; dropped");
	} else if (json_is_object(err)) {
		pc_upstream_respond(f->slot->up, f->up_id, NULL, err);
	} else if (json_is_object(res) && err == NULL) {
		pc_upstream_respond(f->slot->up, f->up_id, res, NULL);
	} else {
		/* Neither a result object nor a proper error ("error": "no",
		 * "result": null): never turned into an acceptance. Every
		 * result of a request MCP sends a client is an object. */
		json_t *bad = json_pack("{s:i, s:s}", "code", -32603,
		    "message", "The client's answer was not a valid response");
		if (bad != NULL)
			pc_upstream_respond(f->slot->up, f->up_id, NULL, bad);
		json_decref(bad);
	}
	json_decref(f->up_id);
	free(f);
	return 0;
}
