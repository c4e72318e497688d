/*
 * Internals shared by the router_*.c files. Not for use outside src/mcp.
 */
#ifndef PC_ROUTER_INT_H
#define PC_ROUTER_INT_H

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

#include "../authz/policy.h"
#include "../upstream/upstream.h"
#include "catalog.h"
#include "router.h"
#include "session.h"

struct pc_map;
struct pc_router;

/* Fetch state of one catalogue kind of one upstream. */
struct pc_refresh {
	struct pc_up_slot *slot;
	enum pc_cat_kind kind;
	json_t *acc;		/* items gathered so far */
	size_t bytes;		/* their weight (pc_json_weight) */
	unsigned pages;
	int busy;		/* a fetch is running */
	int again;		/* list_changed arrived while busy */
};

struct pc_up_slot {
	struct pc_router *r;
	size_t idx;
	struct pc_upstream *up;
	struct pc_refresh refresh[PC_CAT__N];
	int first_done;		/* first catalogue fetch finished or failed */
	struct pc_map *schemas;	/* tool (upstream's name) -> struct pc_schema,
				 * or absent when it could not be compiled */
	int pending_kinds;	/* kinds of the first fetch still running */
	int stopped;
};

/* A server-to-client request forwarded to a legacy session. */
struct pc_fwd {
	struct pc_up_slot *slot;
	json_t *up_id;		/* the upstream's id, answered verbatim */
	struct pc_call *call;	/* the call it was attributed to */
	char method[32];	/* what the upstream asked (for the audit
				 * record of the client's answer) */
	uint64_t gen;		/* the child that asked
				 * (pc_upstream_generation) */
	uint64_t born_ms;	/* when it asked (pc_now_ms) */
};

/* router.c: the child that asked f is still the one running. */
bool pc_fwd_current(const struct pc_fwd *f);

enum pc_call_kind {
	PC_CK_FORWARD = 0,	/* forwarded to an upstream */
	PC_CK_LISTEN,		/* modern subscriptions/listen stream */
};

struct pc_call {
	struct pc_router *r;
	enum pc_call_kind kind;
	enum pc_client_era era;
	char method[32];
	struct pc_session *session;	/* legacy, borrowed */
	char client[2 * PC_PRINCIPAL_MAX + 8];	/* whom the per-client cap
					 * counts it for (client_key) */
	const struct pc_sink_ops *ops;
	void *sink;
	json_t *client_id;		/* owned copy */
	json_t *progress_token;		/* client's token, owned, or NULL */
	int log_level;			/* -1: send no log messages */
	struct pc_call *snext, *sprev;	/* session->calls */
	int in_session;
	struct pc_up_slot *slot;
	uint64_t handle;
	int in_upstream;
	const struct pc_fwd_gate *gate;	/* limits hook, or NULL */
	void *gate_ctx;
	int gate_open;			/* admitted: end() still owed */
	int client_elicit, client_sampling, client_roots; /* declared */
	/* listen streams */
	json_t *listen_filter;		/* owned */
	char *listen_roles;		/* its principal's roles (owned):
					 * updates are checked at send time,
					 * against the policy then in force */
	char *sub_uri;			/* a subscribe counted before the
					 * upstream confirmed it (owned):
					 * undone if it fails */
	bool sub_held;			/* ...by a session already holding
					 * it (a URI lost upstream): nothing
					 * to undo */
	struct pc_call *lnext, *lprev;
	struct pc_rdns *dns;		/* tools/call: URL lookups (owned),
					 * router_dns.c */
};

struct pc_router {
	struct event_base *base;
	const struct pc_config *cfg;
	struct pc_up_slot *slots;
	size_t nslots;
	struct pc_catalog *cat;
	struct pc_map *sessions;	/* id -> pc_session */
	struct pc_map *sources;		/* client_key -> (uintptr_t) inflight */
	struct pc_map *owners;		/* session owner -> (uintptr_t)
					 * sessions open */
	struct pc_map *subs;		/* exposed uri -> (uintptr_t) sessions */
	const struct pc_redactor *redactor;	/* borrowed, or NULL */
	struct pc_map *sub_lost;	/* held URIs the upstream refused to
					 * take again -> (void *)1: the next
					 * subscribe asks it once more */
	struct pc_call *listeners;	/* modern listen streams */
	struct pc_resolver *resolver;	/* URL host lookups; made on first
					 * use */
	struct event *sweep;		/* idle-session expiry */
	uint64_t next_fwd;
	int ready;
	void (*ready_cb)(void *);
	void *ready_arg;
	void (*event_cb)(void *, const char *event, const char *upstream);
	void *event_arg;
	int shutting_down;
	size_t stopping;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

/* router_session.c */
int pc_session_new(struct pc_router *r, const char *version, json_t *caps,
    const struct pc_principal *owner, struct pc_session **out);
void pc_session_free(struct pc_session *s);
void pc_sessions_sweep_start(struct pc_router *r);
void pc_session_end_stream(struct pc_session *s);
/* notifications/<kind>/list_changed, per catalogue kind. */
extern const char *const pc_list_changed_method[PC_CAT__N];

/* A list change clients are told of: its kind and the items it touched
 * (pc_catalog_set_diff; NULL: not known, every item counts). */
struct pc_list_change {
	enum pc_cat_kind kind;
	const json_t *items;
	struct pc_map *seen;		/* roles -> verdict, or NULL */
};
/* msg to every session with a stream; with a uri, only to those
 * subscribed to it that may still read it; with a change, only to those
 * whose roles let them see one of its items (a hidden tool's arrival is
 * nobody else's business). */
void pc_sessions_broadcast(struct pc_router *r, json_t *msg,
    const char *only_subscribed_uri, const struct pc_list_change *chg);

/* router_validate.c: tool argument validation */
void pc_schemas_rebuild(struct pc_up_slot *slot, json_t *tools);
void pc_schemas_free(struct pc_up_slot *slot);
/* 0: arguments valid. Otherwise *result is an isError tool result to send
 * instead of forwarding (new ref). */
int pc_schemas_check(struct pc_up_slot *slot, const char *tool,
    json_t *arguments, json_t **result);
/* The config's tightenings (policy constraints `schema:`) of the exposed
 * tool, in config order: 0, or as pc_schemas_check. */
int pc_tighten_check(const struct pc_router *r, const char *exposed,
    json_t *arguments, json_t **result);

/* router_policy.c: the authorize stage */
struct pc_rpol_filter {
	const struct pc_policy *policy;
	const char *roles;
	enum pc_cat_kind kind;
};
void pc_rpol_filter_init(struct pc_rpol_filter *f, const struct pc_router *r,
    const struct pc_reqinfo *ri, enum pc_cat_kind kind);
/* pc_catalog_page_where's `keep`: arg is a struct pc_rpol_filter. */
bool pc_rpol_list_keep(void *arg, const json_t *item);
/* The lists (bit 1 << PC_CAT_*) in which a caller with roles `ra` under
 * policy `pa` sees other items than one with `rb` under `pb`: a reload or
 * a change of roles that such a caller must be told of. */
unsigned pc_rpol_views_differ(const struct pc_router *r,
    const struct pc_policy *pa, const char *ra, const struct pc_policy *pb,
    const char *rb);
/* Tell a session's GET stream, or a listen stream that asked, that the
 * lists in `mask` changed (one resources notification for both resource
 * kinds). */
void pc_session_tell_lists(struct pc_session *s, unsigned mask);
bool pc_list_bit_told(unsigned mask, int k);
void pc_listener_tell_lists(struct pc_call *c, unsigned mask);
/* Whether a caller with `roles` sees one of chg's items in its lists. */
bool pc_rpol_change_visible(const struct pc_router *r, const char *roles,
    const struct pc_list_change *chg);
/* Whether ri's principal may see resource uri (no denial recorded: for
 * filtering what a stream will carry). */
bool pc_rpol_resource_allowed(const struct pc_router *r,
    const struct pc_reqinfo *ri, const char *uri);
/* 0 when the caller may use the prompt/resource; PC_E_NOTFOUND when not
 * (logged and reported to the sink: answer as for a missing one). */
int pc_rpol_item(struct pc_call *c, const struct pc_reqinfo *ri,
    enum pc_policy_item item, const char *name);
/* Authorize a tools/call (params is rewritten: SET and PATH constraints).
 * 0 allowed; PC_E_NOTFOUND hidden (answer exactly as for an unknown tool);
 * PC_E_DENIED with *result an isError result to send; PC_E_NOMEM;
 * PC_E_AGAIN: a URL constraint needs memo->need looked up (params is as
 * it was: call again once the memo has its verdict). memo NULL: names are
 * looked up here, blocking. */
int pc_rpol_tool_call(struct pc_call *c, const struct pc_reqinfo *ri,
    const char *exposed, json_t *params, struct pc_url_memo *memo,
    json_t **result);

/* router_dns.c: a tools/call waiting for URL host lookups. The memo of
 * c's lookups, made on first use (NULL: no memory). */
struct pc_rdns;
struct pc_url_memo *pc_rdns_memo(struct pc_call *c);
/* Look up memo->need off the loop, then pc_router_tool_resume(c, ...)
 * with params (kept) and the caller ri names. 0, or an error: the caller
 * fails the call. */
int pc_rdns_wait(struct pc_call *c, const struct pc_reqinfo *ri,
    json_t *params);
void pc_rdns_free(struct pc_rdns *d);		/* accepts NULL */
/* router.c: run a tools/call's path again (after a lookup). */
void pc_router_tool_resume(struct pc_call *c, const struct pc_reqinfo *ri,
    json_t *params);

/* router.c: resource subscriptions shared by sessions */
int pc_sub_adjust(struct pc_router *r, const char *uri, int d);
/* A child of slot became ready: subscribe it again to what sessions hold. */
void pc_sub_replay(struct pc_router *r, struct pc_up_slot *slot);
void pc_sub_release_session(struct pc_router *r, struct pc_session *s);

/* router_catalog.c */
void pc_refresh_start(struct pc_up_slot *slot, enum pc_cat_kind kind);
void pc_refresh_all(struct pc_up_slot *slot);
void pc_router_check_ready(struct pc_router *r);
int pc_router_list(struct pc_router *r, const struct pc_reqinfo *ri,
    enum pc_cat_kind kind, json_t *params, json_t **result, json_t **error);

/* router.c */
int pc_log_level_index(const char *name);
void pc_call_finish(struct pc_call *c, int status, json_t *resp);
void pc_call_finish_result(struct pc_call *c, json_t *res);
void pc_listeners_notify(struct pc_router *r, const char *method,
    const char *uri, const struct pc_list_change *chg);

#endif
