/*
 * The limits stage at the HTTP front (docs/limits.md, "In the gateway"):
 * src/limits/limit_call.c counts and decides; here a verdict becomes HTTP.
 * A refusal is answered while the reply is still plain JSON: 429 (the
 * caller's limits) or 503 (an upstream's), Retry-After and, for rate
 * limits, RateLimit-Limit/Remaining/Reset (on admitted calls too).
 */
#include <stdio.h>

#include <event2/http.h>

#include "http_int.h"

static void
add_header_u64(struct evhttp_request *req, const char *name, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	evhttp_add_header(evhttp_request_get_output_headers(req), name, b);
}

/* Retry-After and the RateLimit fields of a verdict, on the reply. */
static void
add_headers(void *arg, const struct pc_limit_verdict *v)
{
	struct evhttp_request *req = arg;

	if (v->has_rate) {
		add_header_u64(req, "RateLimit-Limit", v->rate.limit);
		add_header_u64(req, "RateLimit-Remaining", v->rate.remaining);
		add_header_u64(req, "RateLimit-Reset", v->rate.reset_s);
	}
	/* A refusal that can never pass (a cost above the whole budget)
	 * names no time to come back. */
	if (!v->allowed && v->retry_after_us != INT64_MAX)
		add_header_u64(req, "Retry-After",
		    pc_limit_ceil_s(v->retry_after_us));
}

void
pc_http_limit_init(struct pc_limit_call *q, struct pc_http *h,
    struct evhttp_request *req, const struct pc_rctx *cx, json_t *msg)
{
	pc_limit_call_init(q, h->limiter, h->router, &cx->principal, msg,
	    req != NULL ? add_headers : NULL, req);
}
