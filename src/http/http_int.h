/* Internals shared by the files of src/http. */
#ifndef PC_HTTP_INT_H
#define PC_HTTP_INT_H

#include <jansson.h>

#include <stdint.h>

#include <event2/util.h>

#include "../config/config.h"
#include "../audit/audit_call.h"
#include "../authn/principal.h"
#include "../mcp/router.h"
#include "../lib/limits.h"
#include "../limits/limit_call.h"
#include "../limits/limiter.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct pc_router;
struct pc_exchange;
struct pc_authn;
struct pc_tls;
struct pc_audit;
struct pc_held;
struct pc_redactor;
struct pc_flood;
struct pc_conns;

/* What the front learnt about a request before routing it. */
struct pc_rctx {
	char request_id[PC_REQUEST_ID_LEN + 12];	/* X-Request-Id; a
					 * batch member's is "<id>.<n>" */
	char source[64];		/* client address (behind trusted
					 * proxies: the forwarded client) */
	struct pc_principal principal;	/* from the authenticate stage */
};

struct pc_http {
	struct event_base *base;
	const struct pc_config *cfg;
	struct pc_router *router;
	struct evhttp *mcp;
	struct evhttp *admin;
	struct evhttp_bound_socket *mcp_sock;
	struct evhttp_bound_socket *admin_sock;
	struct pc_authn *authn;		/* borrowed */
	struct pc_audit *audit;		/* borrowed; NULL without an audit log */
	const struct pc_redactor *redactor; /* borrowed; NULL: arguments are
					 * not recorded (never unredacted) */
	struct pc_tls *tls;		/* owned; NULL without TLS */
	struct pc_limiter *limiter;	/* borrowed; NULL: no limits stage */
	struct pc_flood *flood;		/* owned: unaccountable refusal
					 * records, src/limits/flood.h */
	struct pc_exchange *exchanges;	/* requests being answered */
	struct event *sweep;		/* arms EOF watches, see http.c */
	struct pc_conns *conns;		/* connections of the MCP listener
					 * (conns.h); owned */
	struct event *accept_pause;	/* listening again after accept()
					 * failed (admin.c), or NULL */
	unsigned active;
};

enum ex_mode { EX_PENDING = 0, EX_SSE, EX_DONE };
enum ex_kind { EX_POST = 0, EX_BATCH, EX_STREAM };

/* One HTTP request being answered asynchronously. */
struct pc_exchange {
	struct pc_http *h;
	struct evhttp_request *req;	/* NULL once the client is gone */
	struct evhttp_connection *evcon;
	enum ex_kind kind;
	enum ex_mode mode;
	struct pc_call *call;		/* POST: the router call */
	struct pc_session *session;	/* STREAM: its session */
	json_t *batch;			/* BATCH: responses collected */
	unsigned batch_wait;		/* BATCH: responses outstanding */
	struct pc_bitem *bitems;	/* BATCH: members still running */
	int batch_sealed;		/* BATCH: all items submitted */
	struct event *keepalive;	/* SSE: comment pings */
	struct pc_principal *who;	/* held-open streams (GET, listen):
					 * whose credential each keepalive
					 * checks again; owned */
	struct event *watch;		/* EOF detection while we answer */
	struct pc_audit_call *audit;	/* POST with an audit log: what the
					 * record will say; owned */
	struct pc_held *held;		/* fsync: strict, the reply waiting
					 * for its record's fsync; see
					 * http_reply.c */
	struct pc_limit_call lim;		/* POST: the limits stage */
	unsigned long dropped;		/* SSE events dropped: the client
					 * stopped reading (logged once) */
	struct pc_exchange *next, *prev;
};

/* One request inside a batch: its own sink, feeding the parent. */
struct pc_bitem {
	struct pc_exchange *parent;
	struct pc_bitem *next, *prev;	/* parent->bitems */
	struct pc_call *call;
	struct pc_limit_call lim;
	struct pc_audit_call *audit;	/* NULL: no audit log (or no memory) */
};

/* Start an audit context for ex (no-op without an audit log). */
void pc_ex_audit_begin(struct pc_exchange *ex, const struct pc_rctx *cx,
    const char *era, json_t *msg, const char *session);
/* The same for a member of a 2025-03-26 batch (it->parent set). */
void pc_bitem_audit_begin(struct pc_bitem *it, const struct pc_rctx *cx,
    json_t *msg, const char *session);
/* Accepts NULL. */
void pc_audit_ctx_free(struct pc_audit_call *a);
/* The record of ex's call that ends unanswered (status cancelled):
 * reason "client.closed" or "shutdown". No-op without an audit log. */
void pc_ex_audit_cancelled(struct pc_exchange *ex, const char *reason);
/* Write a record for a request refused before authentication (no
 * principal). false: the source's flood gate held it back, counted for a
 * summary record (callers then skip their own log line too). */
bool pc_http_audit_refusal(struct pc_http *h, const struct pc_rctx *cx,
    const char *reason);
/* Write the summaries of refusals the flood gate held back: those due
 * (the sweep timer), or all of them (shutdown). */
void pc_http_flood_drain(struct pc_http *h, bool all);

/* A request the front answers itself (legacy initialize): what to record. */
struct pc_audit_direct {
	const char *era, *method, *session;
	const char *tool;		/* may be NULL */
	const char *upstream;		/* may be NULL */
	const char *decision;		/* "allow" or "deny" */
	const char *status, *reason;
};
/* Record it (principal and source from cx). durable/arg as for
 * pc_audit_write(); NULL: nobody waits (in strict mode too: a refusal is
 * not held back). 0, or negative when the log cannot be written: the
 * caller then answers 503 instead (fail closed). */
/* The request handled now (after authentication): a refusal sent with
 * pc_http_send_error before it has a record of its own is recorded as a
 * deny with reason "http.<status>". No-op without an audit log. */
void pc_http_scope_begin(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const char *method);
void pc_http_scope_end(void);
int pc_http_audit_direct(struct pc_http *h, const struct pc_rctx *cx,
    const struct pc_audit_direct *d, void (*durable)(void *, int),
    void *arg);
/* Record d, then answer req with resp (taken) and the new session's id:
 * at once, or with fsync: strict once the record is synced; 503 when it
 * cannot be recorded. */
void pc_http_reply_recorded(struct pc_http *h, struct evhttp_request *req,
    const struct pc_rctx *cx, const struct pc_audit_direct *d, json_t *resp,
    const char *session);

/* http_reply.c */
extern const struct pc_sink_ops pc_post_ops, pc_batch_ops, pc_stream_ops;
struct pc_exchange *pc_ex_new(struct pc_http *h, struct evhttp_request *req,
    enum ex_kind kind);
void pc_ex_free(struct pc_exchange *ex);
/* Detach a held reply from its exchange (it is freed when its fsync
 * reports); pc_ex_free does it. */
void pc_ex_unhold(struct pc_exchange *ex);
void pc_ex_watch(struct pc_exchange *ex);
void pc_sse_start(struct pc_exchange *ex);
void pc_batch_done(void *sink, int status, json_t *msg);
void pc_batch_flush(struct pc_exchange *ex);
void pc_ex_keepalive_cb(evutil_socket_t fd, short what, void *arg);
/* The client of a batch left (reason "client.closed") or the gateway is
 * stopping ("shutdown"): its members still running are cancelled upstream
 * (as a single request's would be) and recorded as such. */
void pc_batch_abandon(struct pc_exchange *ex, const char *reason);
/* Keep a copy of p: ex is a stream held open (a session's GET, a listen),
 * whose credential each keepalive checks again. */
void pc_ex_hold_principal(struct pc_exchange *ex, const struct pc_principal *p);
void pc_http_sweep_cb(evutil_socket_t fd, short what, void *arg);

/* Strict-Transport-Security on every MCP reply; 0 = none. */
void pc_http_set_hsts(uint32_t max_age_s);

void pc_http_send_json(struct evhttp_request *req, int status, json_t *body,
    const char *session_id);
void pc_http_send_error(struct evhttp_request *req, int status, json_t *id,
    int code, const char *msg);
const char *pc_http_reason(int status);
void pc_http_too_many(struct evhttp_request *req, json_t *id, int rc);

/* Forget bs's listener (NULL: all of h's) before it is freed: accept()
 * failures pause listening (admin.c). */
void pc_http_unguard(struct pc_http *h, struct evhttp_bound_socket *bs);
/* Bind `http` to the listen address, log it. 0, PC_E_IO, PC_E_CONFIG. */
int pc_http_bind(struct pc_http *h, struct evhttp *http,
    const struct pc_listen_conf *l, const char *name,
    struct evhttp_bound_socket **out);

/* http_limits.c: the rate limit stage (docs/limits.md, "In the gateway") */
/* Fill q for msg from cx's principal; req: where headers go (NULL: none,
 * a batch member). */
void pc_http_limit_init(struct pc_limit_call *q, struct pc_http *h,
    struct evhttp_request *req, const struct pc_rctx *cx, json_t *msg);

/* admin.c */
int pc_admin_start(struct pc_http *h);
void pc_admin_apply(struct pc_http *h);

#endif
