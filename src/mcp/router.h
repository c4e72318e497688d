/*
 * The router: MCP semantics between the transport (src/http) and the
 * upstreams. It owns the upstream supervisors, the aggregated catalogue and
 * the legacy sessions, and serves every method the gateway exposes.
 *
 * The transport validates the framing (HTTP, headers, envelope) and hands
 * the router well-formed JSON-RPC messages plus what it learnt about the
 * client (era, version, session). The router answers through a sink the
 * transport implements, so it knows nothing of HTTP or SSE.
 */
#ifndef PC_ROUTER_H
#define PC_ROUTER_H

#include <jansson.h>
#include <stdbool.h>

#include "../authn/principal.h"
#include "../config/config.h"
#include "../lib/limits.h"

struct event_base;
struct pc_router;
struct pc_session;
struct pc_call;

enum pc_client_era { PC_CLIENT_LEGACY = 1, PC_CLIENT_MODERN = 2 };

#define PC_MODERN_VERSION "2026-07-28"

/* Gateway-defined JSON-RPC error codes (implementation range). */
#define PC_RPC_GENERIC        (-32000)	/* bad request at transport level */
#define PC_RPC_NO_SESSION     (-32001)	/* session not found / terminated */
#define PC_RPC_UP_TIMEOUT     (-32003)	/* upstream did not answer in time */
#define PC_RPC_UP_UNAVAILABLE (-32004)	/* upstream down or restarting */
#define PC_RPC_BUSY           (-32005)	/* too many requests in flight */
#define PC_RPC_UNAUTHORIZED   (-32006)	/* 401: no or invalid credentials */
#define PC_RPC_FORBIDDEN      (-32007)	/* 403: insufficient scope */
#define PC_RPC_AUTH_THROTTLED (-32008)	/* 429: repeated failed auth */

/*
 * Output of one inbound request, implemented by the transport.
 * message(): a notification or server-to-client request that belongs to
 *   this request's stream, before its response. msg is borrowed.
 * done(): the final response; exactly once, unless the call was abandoned.
 *   `status` is the HTTP status the revision prescribes (200, 400, 404).
 *   msg is borrowed. The call no longer exists when done() returns.
 * For an open stream (a legacy GET stream or a modern subscriptions/listen)
 * message() may be called any number of times and done() only when the
 * router ends the stream.
 */
struct pc_sink_ops {
	void (*message)(void *sink, json_t *msg);
	void (*done)(void *sink, int status, json_t *msg);
	/* May be NULL. The router refused the request on policy with this
	 * stable reason code (static string); done() follows with the
	 * answer, which for a hidden item is the same as for a missing one,
	 * so only this tells the audit log it was a denial. */
	void (*denied)(void *sink, const char *reason);
	/* May be NULL. The request is about to leave for this upstream (its
	 * configured name, borrowed: copy it), before the limits stage's
	 * admit(): the audit record names the upstream even when a breaker
	 * or cap then refuses the call. */
	void (*routed)(void *sink, const char *upstream);
	/* The sink drops messages (a 2025-03-26 batch member: one JSON
	 * array, no stream): a request from the upstream to the client is
	 * refused at once instead of waiting for an answer that cannot
	 * come. */
	bool no_messages;
};

/*
 * The limits stage's hook where a call leaves for its upstream (src/http
 * implements it with src/limits): budgets are charged and the upstream's
 * breaker and concurrency cap are checked only for calls that passed
 * authorization and validation, and the outcome feeds the breakers.
 *
 * admit(): about to forward `method` to `upstream` (its configured name).
 *   0: go ahead; end() then follows exactly once. Otherwise the call is
 *   answered with HTTP *status and *error (a JSON-RPC error object, new
 *   ref, stolen) and never reaches the upstream.
 * end(): how the forwarded call ended; sent false when it never reached
 *   the upstream (no child, or its queue full): what it cost is given back.
 */
enum pc_fwd_outcome {
	PC_FWD_ANSWERED = 0,	/* the upstream answered: a result, isError
				 * or its own JSON-RPC error */
	PC_FWD_FAILED,		/* no answer: timeout, crash, unavailable */
	PC_FWD_CANCELLED,	/* client left, session ended, shutdown, or
				 * the upstream's queue was full */
};
struct pc_fwd_gate {
	int (*admit)(void *ctx, const char *method, const char *upstream,
	    int *status, json_t **error);
	void (*end)(void *ctx, enum pc_fwd_outcome outcome, bool sent);
};

struct pc_reqinfo {
	enum pc_client_era era;
	const char *version;		/* negotiated / requested revision */
	struct pc_session *session;	/* legacy only; NULL for modern */
	json_t *meta;			/* modern: params._meta (borrowed) */
	const char *source;		/* client address, for per-client caps */
	const struct pc_principal *principal;	/* authenticated caller */
	const struct pc_fwd_gate *gate;	/* NULL: no limits stage */
	void *gate_ctx;			/* the transport's, for gate calls;
					 * must outlive the call */
};

/* 0, PC_E_NOMEM. cfg borrowed; must outlive the router (or be swapped
 * with pc_router_set_config). */
int pc_router_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_router **out);
/* Spawn every upstream. 0 or the first error (the rest still start). */
int pc_router_start(struct pc_router *r);
/* Drain: fail new requests, let calls finish, stop children; done(arg)
 * runs when every child is gone. */
void pc_router_shutdown(struct pc_router *r, void (*done)(void *), void *arg);
void pc_router_free(struct pc_router *r);	/* accepts NULL */

/* The redactor for what upstreams say to clients on their own (log
 * notifications): borrowed; set again when a reload replaces it. NULL:
 * none. */
struct pc_redactor;
void pc_router_set_redactor(struct pc_router *r,
    const struct pc_redactor *red);

/* Swap in a reloaded config (limits, eras, timeouts). Upstream changes
 * need a restart for now; they are reported as warnings. */
void pc_router_set_config(struct pc_router *r, const struct pc_config *cfg);

/* The inputSchema of the exposed tool `name` (borrowed, valid until the
 * catalogue of its upstream changes: use it at once), or NULL. */
const json_t *pc_router_tool_schema(const struct pc_router *r,
    const char *name);

/* Whether `name` is a tool of the catalogue now (whoever may call it). */
bool pc_router_has_tool(const struct pc_router *r, const char *name);

/* For a tools/call message, the called tool's inputSchema (as above);
 * NULL for anything else. */
const json_t *pc_router_call_schema(const struct pc_router *r,
    const json_t *msg);

/* True when every upstream finished its first handshake and catalogue
 * fetch (or failed it). ready_cb fires once when that first happens. */
bool pc_router_ready(const struct pc_router *r);
void pc_router_on_ready(struct pc_router *r, void (*cb)(void *), void *arg);
/* Upstream lifecycle events for the audit log: cb(arg, event, upstream) with
 * event "upstream.ready" (first start and every restart) or
 * "upstream.exited" (crashed or killed; not during shutdown). */
void pc_router_on_event(struct pc_router *r,
    void (*cb)(void *, const char *, const char *), void *arg);
/* Upstream status for /readyz: JSON object name -> state (new ref). */
json_t *pc_router_status(const struct pc_router *r);

/*
 * A request (has "id" and "method"); the router may modify req in place.
 * Returns 0 when the sink will be
 * answered (possibly before this returns; then *out is NULL), or
 * PC_E_LIMIT when the client has too many requests in flight (nothing is
 * sent; the transport answers 429), or PC_E_NOMEM.
 * *out (may be NULL) receives the live call for pc_router_abandon().
 */
int pc_router_request(struct pc_router *r, const struct pc_reqinfo *ri,
    json_t *req, const struct pc_sink_ops *ops, void *sink,
    struct pc_call **out);

/* The client went away (connection closed): cancel upstream work and never
 * touch the sink again. */
void pc_router_abandon(struct pc_call *c);

/* The client cancelled call c (notifications/cancelled) but still reads
 * its answers: the upstream is told, and the sink gets the -32000
 * "Request cancelled" answer (and with it its record). */
void pc_router_cancel(struct pc_call *c);

/* A notification from the client (cancelled, initialized, ...). */
void pc_router_notification(struct pc_router *r, const struct pc_reqinfo *ri,
    json_t *msg);
/* A response from a legacy client to a request the gateway forwarded to it
 * (elicitation, sampling, roots). 0 or PC_E_NOTFOUND. */
int pc_router_client_response(struct pc_router *r, struct pc_session *s,
    json_t *msg);

/* What a client's response answers, for its audit record: the method the
 * upstream asked and that upstream's name ("" once it is gone). */
struct pc_answered {
	char method[32];
	char upstream[PC_MAX_UPSTREAM_NAME + 1];
};
/* Look msg's id up without consuming it: 0 with *what filled, or
 * PC_E_NOTFOUND (an id the gateway never sent, or answered already). */
int pc_router_client_lookup(struct pc_router *r, struct pc_session *s,
    json_t *msg, struct pc_answered *what);

/* What one JSON-RPC message from a client is, by its shape alone. */
enum pc_rpc_kind {
	PC_MSG_BAD = 0, PC_MSG_REQUEST, PC_MSG_NOTIFICATION, PC_MSG_RESPONSE
};
/* Classify m (borrowed); for PC_MSG_BAD, *why names the fault for -32600.
 * Both fronts (HTTP and stdio) use it, so that they accept the same
 * shapes. */
enum pc_rpc_kind pc_rpc_classify(json_t *m, const char **why);

/* JSON-RPC envelopes (new refs). id borrowed (NULL = null); result stolen. */
json_t *pc_rpc_error(json_t *id, int code, const char *msg);
/* The answer to a client of an era the configuration switched off (eras:):
 * -32022 with data.supported naming the versions this gateway does serve,
 * so that the client can fall back (a modern one to a session). NULL on
 * OOM. */
json_t *pc_rpc_era_refused(json_t *id, bool modern_served);
json_t *pc_rpc_result(json_t *id, json_t *result);

/* --- legacy sessions ---------------------------------------------------- */

/*
 * initialize: negotiates the version and creates a session. On success
 * *result is the InitializeResult (new ref) and *session the new session.
 * PC_E_LIMIT when the session table is full, PC_E_DENIED when the
 * principal holds limits.max_sessions_per_principal sessions already,
 * PC_E_INVAL for bad params (*result then holds an error object to send,
 * new ref).
 */
int pc_router_initialize(struct pc_router *r, json_t *params,
    const struct pc_principal *principal, struct pc_session **session,
    json_t **result);
/*
 * The session `id` if it exists and belongs to `principal` (borrowed), or
 * NULL. A session presented by another principal is treated exactly like an
 * unknown one (and logged): holding a session id never authenticates.
 * Touches the session's idle timer.
 */
struct pc_session *pc_router_session(struct pc_router *r, const char *id,
    const struct pc_principal *principal);
/* End a session: its calls get an error, its stream ends. */
void pc_router_session_close(struct pc_router *r, struct pc_session *s);
const char *pc_session_id(const struct pc_session *s);
const char *pc_session_version(const struct pc_session *s);
/* Attach the session's GET stream. PC_E_EXISTS if one is open. The stream
 * gets list_changed and other session-wide messages; detach when it
 * closes. */
int pc_session_attach_stream(struct pc_session *s,
    const struct pc_sink_ops *ops, void *sink);
void pc_session_detach_stream(struct pc_session *s, void *sink);

/* The roles a held-open stream's principal has now (its credential was
 * checked again): a session's (GET stream) or a subscriptions/listen
 * call's, which decide what resources/updated it still hears. When they
 * change what its lists show, the stream gets list_changed for them. A
 * session's roles follow the credential of its latest request: a stream
 * whose credential is no longer that one leaves them alone. */
void pc_session_set_roles(struct pc_router *r, struct pc_session *s,
    const struct pc_principal *p);
void pc_router_listen_set_roles(struct pc_call *c, const char *roles);

#endif
