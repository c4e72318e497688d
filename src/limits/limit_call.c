/*
 * The limits stage around one request (see limit_call.h): right after
 * authentication a tools/call, resources/read, prompts/get or completion
 * passes the key's breaker, the key's concurrency cap and the rate limits; where the router forwards a call
 * (after authorization and validation) the gate below checks the
 * upstream's breaker and cap and charges the budgets. The refusal goes
 * through the front's usual done path, so its audit record (decision
 * deny, the reason code) is written before it leaves.
 */
#include "limit_call.h"

#include <string.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../mcp/router.h"

/*
 * The requests that reach an upstream's data: each is one attempt for the
 * key's, tenant's and global rate limits, the key's breaker and its cap.
 * Counting only tools/call let a key held to 30 calls a minute read
 * resources or render prompts without limit. Lists, pings and session
 * bookkeeping are answered by the gateway (or cost the upstream nothing
 * per caller) and stay bounded by the pending-request cap.
 */
static bool
counted_method(const char *m)
{
	return m != NULL && (strcmp(m, "tools/call") == 0 ||
	    strcmp(m, "resources/read") == 0 ||
	    strcmp(m, "prompts/get") == 0 ||
	    strcmp(m, "completion/complete") == 0);
}

void
pc_limit_call_init(struct pc_limit_call *q, struct pc_limiter *limiter,
    const struct pc_router *router, const struct pc_principal *p, json_t *msg,
    void (*on_verdict)(void *, const struct pc_limit_verdict *), void *arg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	const char *tool = json_string_value(json_object_get(json_object_get(
	    msg, "params"), "name"));

	memset(q, 0, sizeof(*q));
	q->limiter = limiter;
	q->on_verdict = on_verdict;
	q->arg = arg;
	/* Counted per API key (a key is what an operator hands out and
	 * revokes); other methods have no key id that names a caller
	 * (a JWT's jti names one token), so the principal is counted, under
	 * its method: names from different authorities are different
	 * callers (a JWT whose sub is an API key's id or principal must not
	 * spend that key's budget). */
	if (p->method == PC_AUTH_APIKEY && p->key_id[0] != '\0')
		pc_strlcpy(q->key, p->key_id, sizeof(q->key));
	else if (p->id[0] == '\0')
		pc_strlcpy(q->key, "anonymous", sizeof(q->key));
	else if (p->method == PC_AUTH_NONE)	/* anonymous, stdio:<login> */
		pc_strlcpy(q->key, p->id, sizeof(q->key));
	else
		snprintf(q->key, sizeof(q->key), "%s:%s",
		    p->method == PC_AUTH_JWT ? "jwt" : p->method ==
		    PC_AUTH_MTLS ? "mtls" : "other", p->id);
	pc_strlcpy(q->tenant, p->tenant, sizeof(q->tenant));
	q->counted = counted_method(method);
	q->is_call = method != NULL && strcmp(method, "tools/call") == 0 &&
	    tool != NULL && strlen(tool) < sizeof(q->tool);
	if (q->is_call)
		pc_strlcpy(q->tool, tool, sizeof(q->tool));
	/* Tool and key+tool limits count real tools only: each name counted
	 * is an entry of the bounded limit table for a whole spacing
	 * interval, and made-up names (answered "Unknown tool", which costs
	 * the upstream nothing) would fill it until every new caller is
	 * refused. The key's own limits count them as any call. */
	q->tool_known = q->is_call && pc_router_has_tool(router, q->tool);
}

static bool
active(const struct pc_limit_call *q)
{
	return q->limiter != NULL && pc_limiter_active(q->limiter);
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
log_refusal(const struct pc_limit_call *q, const struct pc_limit_verdict *v)
{
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "reason", v->reason,
	    "limit", v->limit_id, "key", q->key, "tool", q->tool);

	pc_log_fields(PC_LOG_INFO, __func__, "limit refused a call", f);
	json_decref(f);
}

int
pc_limit_call_admit(struct pc_limit_call *q, json_t *id, int *status,
    json_t **refusal)
{
	struct pc_limit_subject s = { q->key, q->tenant,
	    q->tool_known ? q->tool : NULL };
	struct pc_limit_verdict *v = &q->front;

	*refusal = NULL;
	if (!q->counted || !active(q))
		return 0;
	pc_limiter_admit(q->limiter, &s, pc_wall_us(), v);
	if (q->on_verdict != NULL)
		q->on_verdict(q->arg, v);
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
pc_limit_call_end(struct pc_limit_call *q, json_t *msg)
{
	bool counted, failed;

	if (!q->admitted)
		return;
	q->admitted = false;
	outcome_of(msg, &counted, &failed);
	pc_limiter_admit_end(q->limiter, q->key, &q->front, counted, failed,
	    pc_wall_us());
}

/* --- the router's gate -------------------------------------------------------- */

static int
gate_admit(void *ctx, const char *method, const char *upstream, int *status,
    json_t **error)
{
	struct pc_limit_call *q = ctx;
	struct pc_limit_subject s = { q->key, q->tenant,
	    q->is_call && strcmp(method, "tools/call") == 0 ? q->tool : NULL };
	struct pc_limit_verdict *v = &q->fwd;

	pc_strlcpy(q->upstream, upstream ? upstream : "", sizeof(q->upstream));
	pc_limiter_forward(q->limiter, &s, q->upstream, pc_wall_us(), v);
	if (v->allowed) {
		q->forwarded = true;
		return 0;
	}
	log_refusal(q, v);
	if (q->on_verdict != NULL)
		q->on_verdict(q->arg, v);
	q->deny_reason = v->reason;
	*status = v->status;
	*error = refusal_error(v);
	return PC_E_DENIED;
}

static void
gate_end(void *ctx, enum pc_fwd_outcome outcome, bool sent)
{
	struct pc_limit_call *q = ctx;
	struct pc_limit_subject s = { q->key, q->tenant, q->tool };

	if (!q->forwarded)
		return;
	q->forwarded = false;
	if (!sent)
		pc_limiter_forward_refund(q->limiter, &s, &q->fwd,
		    pc_wall_us());
	pc_limiter_forward_end(q->limiter, q->upstream, &q->fwd,
	    outcome != PC_FWD_CANCELLED, outcome == PC_FWD_FAILED, pc_wall_us());
}

static const struct pc_fwd_gate gate = { gate_admit, gate_end };

void
pc_limit_call_route(struct pc_limit_call *q, struct pc_reqinfo *ri)
{
	if (!active(q))
		return;
	ri->gate = &gate;
	ri->gate_ctx = q;
}
