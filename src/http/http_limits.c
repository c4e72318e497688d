/*
 * The rate limit stage at the HTTP front (docs/limits.md, "In the
 * gateway"): right after authentication a tools/call passes the key's
 * breaker, the key's concurrency cap and the rate limits; where the router
 * forwards a call (after authorization and validation) the gate below
 * checks the upstream's breaker and cap and charges the budgets.
 *
 * A refusal is answered in HTTP terms while the reply is still plain JSON:
 * 429 (the caller's limits) or 503 (an upstream's), Retry-After and, for
 * rate limits, RateLimit-Limit/Remaining/Reset; the JSON-RPC error carries
 * code PC_RPC_LIMITED and data {reason, limit, retryAfter}. It goes through
 * the same done() path as any answer, so the audit record (decision deny,
 * the reason code) is written before it leaves.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "http_int.h"

void
pc_lreq_init(struct pc_lreq *q, struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, json_t *msg)
{
	const struct pc_principal *p = &cx->principal;
	const char *method = json_string_value(json_object_get(msg, "method"));
	const char *tool = json_string_value(json_object_get(json_object_get(
	    msg, "params"), "name"));

	memset(q, 0, sizeof(*q));
	q->h = h;
	q->req = req;
	/* Counted per API key (a key is what an operator hands out and
	 * revokes); other methods have no key id that names a caller
	 * (a JWT's jti names one token), so the principal is counted. */
	pc_strlcpy(q->key, p->method == PC_AUTH_APIKEY && p->key_id[0] != '\0'
	    ? p->key_id : p->id[0] != '\0' ? p->id : "anonymous",
	    sizeof(q->key));
	pc_strlcpy(q->tenant, p->tenant, sizeof(q->tenant));
	q->is_call = method != NULL && strcmp(method, "tools/call") == 0 &&
	    tool != NULL && strlen(tool) < sizeof(q->tool);
	if (q->is_call)
		pc_strlcpy(q->tool, tool, sizeof(q->tool));
}

void
pc_lreq_route(struct pc_lreq *q, struct pc_reqinfo *ri)
{
	if (!pc_limiter_active(q->h->limiter))
		return;
	ri->gate = &pc_http_gate;
	ri->gate_ctx = q;
}

static void
add_header_u64(struct evhttp_request *req, const char *name, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	evhttp_add_header(evhttp_request_get_output_headers(req), name, b);
}

/* Retry-After and the RateLimit fields of a verdict, on q's reply. */
static void
add_headers(struct pc_lreq *q, const struct pc_limit_verdict *v)
{
	if (q->req == NULL)
		return;
	if (v->has_rate) {
		add_header_u64(q->req, "RateLimit-Limit", v->rate.limit);
		add_header_u64(q->req, "RateLimit-Remaining", v->rate.remaining);
		add_header_u64(q->req, "RateLimit-Reset", v->rate.reset_s);
	}
	/* A refusal that can never pass (a cost above the whole budget)
	 * names no time to come back. */
	if (!v->allowed && v->retry_after_us != INT64_MAX)
		add_header_u64(q->req, "Retry-After",
		    pc_limit_ceil_s(v->retry_after_us));
}

/* The error object of a refusal (new ref). */
static json_t *
refusal_error(const struct pc_limit_verdict *v)
{
	json_t *data = json_pack("{s:s, s:s}", "reason", v->reason, "limit",
	    v->limit_id);

	if (data != NULL && v->retry_after_us != INT64_MAX)
		json_object_set_new(data, "retryAfter", json_integer(
		    (json_int_t)pc_limit_ceil_s(v->retry_after_us)));
	return json_pack("{s:i, s:s, s:o*}", "code", PC_RPC_LIMITED, "message",
	    v->message, "data", data);
}

static void
log_refusal(const struct pc_lreq *q, const struct pc_limit_verdict *v)
{
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "reason", v->reason,
	    "limit", v->limit_id, "key", q->key, "tool", q->tool);

	pc_log_fields(PC_LOG_INFO, __func__, "limit refused a call", f);
	json_decref(f);
}

int
pc_lreq_admit(struct pc_lreq *q, json_t *id, int *status, json_t **refusal)
{
	struct pc_limit_subject s = { q->key, q->tenant, q->tool };
	struct pc_limit_verdict *v = &q->front;

	*refusal = NULL;
	if (!q->is_call || !pc_limiter_active(q->h->limiter))
		return 0;
	pc_limiter_admit(q->h->limiter, &s, pc_wall_us(), v);
	add_headers(q, v);
	if (v->allowed) {
		q->admitted = true;
		return 0;
	}
	log_refusal(q, v);
	q->deny_reason = v->reason;
	*status = v->status;
	*refusal = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
	    id ? id : json_null(), "error", refusal_error(v));
	return PC_E_DENIED;
}

/* Whether msg ends a call in error, and whether it counts at all for a
 * breaker: a later limit's refusal says nothing about the caller. */
static void
outcome_of(json_t *msg, bool *counted, bool *failed)
{
	json_t *err = json_object_get(msg, "error");
	json_t *res = json_object_get(msg, "result");
	const char *reason = json_string_value(json_object_get(
	    json_object_get(err, "data"), "reason"));

	*counted = msg != NULL && !(reason != NULL &&
	    strncmp(reason, "limit.", 6) == 0);
	*failed = err != NULL || json_is_true(json_object_get(res, "isError"));
}

void
pc_lreq_end(struct pc_lreq *q, json_t *msg)
{
	bool counted, failed;

	if (!q->admitted)
		return;
	q->admitted = false;
	outcome_of(msg, &counted, &failed);
	pc_limiter_admit_end(q->h->limiter, q->key, &q->front, counted, failed,
	    pc_wall_us());
}

/* --- the router's gate -------------------------------------------------------- */

static int
gate_admit(void *ctx, const char *method, const char *upstream, int *status,
    json_t **error)
{
	struct pc_lreq *q = ctx;
	struct pc_limit_subject s = { q->key, q->tenant,
	    q->is_call && strcmp(method, "tools/call") == 0 ? q->tool : NULL };
	struct pc_limit_verdict *v = &q->fwd;

	pc_strlcpy(q->upstream, upstream ? upstream : "", sizeof(q->upstream));
	pc_limiter_forward(q->h->limiter, &s, q->upstream, pc_wall_us(), v);
	if (v->allowed) {
		q->forwarded = true;
		return 0;
	}
	log_refusal(q, v);
	add_headers(q, v);
	q->deny_reason = v->reason;
	*status = v->status;
	*error = refusal_error(v);
	return PC_E_DENIED;
}

static void
gate_end(void *ctx, enum pc_fwd_outcome outcome)
{
	struct pc_lreq *q = ctx;

	if (!q->forwarded)
		return;
	q->forwarded = false;
	pc_limiter_forward_end(q->h->limiter, q->upstream, &q->fwd,
	    outcome != PC_FWD_CANCELLED, outcome == PC_FWD_FAILED, pc_wall_us());
}

const struct pc_fwd_gate pc_http_gate = { gate_admit, gate_end };
