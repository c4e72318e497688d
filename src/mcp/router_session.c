/*
 * Legacy sessions: created by initialize, named by a 256-bit random id,
 * ended by DELETE or by idling past session_idle_s.
 *
 * A session id is a routing key, never a credential: the transport
 * authenticates every request on its own (see DESIGN.md), and the id is
 * only looked up after that.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"
#include "../lib/version.h"
#include "router_int.h"

static const char *const supported_legacy[] = {
	"2025-11-25", "2025-06-18", "2025-03-26",
};

/* "method\x1ftenant\x1fid": the principal a session is bound to. The
 * method is part of it: the same name from two authorities (an API key's
 * principal, a JWT's sub) is two callers. */
static void
owner_of(const struct pc_principal *p, char *out, size_t outlen)
{
	snprintf(out, outlen, "%d\x1f%s\x1f%s", p ? (int)p->method : 0,
	    p ? p->tenant : "", p ? p->id : "");
}

int
pc_session_new(struct pc_router *r, const char *version, json_t *caps,
    const struct pc_principal *owner, struct pc_session **out)
{
	struct pc_session *s;
	int rc = PC_E_NOMEM;

	*out = NULL;
	if (pc_map_count(r->sessions) >= r->cfg->limits.max_sessions)
		return PC_E_LIMIT;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PC_E_NOMEM;
	/* One principal may not take every session slot (the table is
	 * shared: filling it would lock everyone else out). */
	owner_of(owner, s->owner, sizeof(s->owner));
	if (pc_map_counter(r->owners, s->owner) >=
	    r->cfg->limits.max_sessions_per_principal) {
		free(s);
		return PC_E_DENIED;
	}
	s->pending = pc_map_new();
	s->subs = pc_map_new();
	if (s->pending == NULL || s->subs == NULL)
		goto out;
	/* Retry on the (astronomically unlikely) collision rather than
	 * silently sharing a session. */
	do {
		rc = pc_random_hex(s->id, sizeof(s->id), PC_SESSION_ID_BYTES);
		if (rc != 0)
			goto out;
	} while (pc_map_get(r->sessions, s->id) != NULL);
	pc_strlcpy(s->version, version, sizeof(s->version));
	pc_strlcpy(s->roles, owner != NULL ? owner->roles : "",
	    sizeof(s->roles));
	if (owner != NULL)
		pc_principal_credential(owner, s->roles_by,
		    sizeof(s->roles_by));
	s->client_caps = caps ? json_deep_copy(caps) : json_object();
	s->log_level = 0;
	s->last_used_ms = pc_now_ms();
	if (pc_map_add(r->owners, s->owner, 1) < 0) {
		rc = PC_E_NOMEM;
		goto out;
	}
	rc = pc_map_put(r->sessions, s->id, s);
	if (rc != 0) {
		(void)pc_map_add(r->owners, s->owner, -1);
		goto out;
	}
	*out = s;
	return 0;
out:
	pc_session_free(s);
	return rc;
}

void
pc_session_free(struct pc_session *s)
{
	if (s == NULL)
		return;
	if (s->pending != NULL) {
		size_t pos = 0;
		const char *k;
		void *v;
		while (pc_map_next(s->pending, &pos, &k, &v)) {
			struct pc_fwd *f = v;
			json_decref(f->up_id);
			free(f);
		}
	}
	pc_map_free(s->pending);
	pc_map_free(s->subs);
	json_decref(s->client_caps);
	explicit_bzero(s->id, sizeof(s->id));
	free(s);
}

int
pc_router_initialize(struct pc_router *r, json_t *params,
    const struct pc_principal *principal, struct pc_session **session,
    json_t **result)
{
	const char *want = json_string_value(json_object_get(params,
	    "protocolVersion"));
	const char *ver = supported_legacy[0];
	json_t *caps = json_object_get(params, "capabilities");
	int rc;

	*session = NULL;
	*result = NULL;
	if (!json_is_object(params) || want == NULL ||
	    (caps != NULL && !json_is_object(caps))) {
		*result = json_pack("{s:i, s:s}", "code", -32602, "message",
		    "Invalid params: initialize needs protocolVersion and "
		    "capabilities");
		return PC_E_INVAL;
	}
	/* Answer the requested revision if we speak it, else our latest; the
	 * client decides whether it can live with that. */
	for (size_t i = 0; i < sizeof(supported_legacy) /
	    sizeof(supported_legacy[0]); i++)
		if (strcmp(want, supported_legacy[i]) == 0)
			ver = supported_legacy[i];
	rc = pc_session_new(r, ver, caps, principal, session);
	if (rc != 0)
		return rc;
	*result = json_pack("{s:s, s:{s:{s:b}, s:{s:b}, s:{s:b, s:b}, s:{}, "
	    "s:{}}, s:{s:s, s:s}}",
	    "protocolVersion", ver,
	    "capabilities",
	      "tools", "listChanged", 1,
	      "prompts", "listChanged", 1,
	      "resources", "subscribe", 1, "listChanged", 1,
	      "logging", "completions",
	    "serverInfo", "name", "portcullis", "version", PC_VERSION);
	pc_info("session created (version %s, %zu open)", ver,
	    pc_map_count(r->sessions));
	return *result ? 0 : PC_E_NOMEM;
}

static void session_roles(struct pc_router *r, struct pc_session *s,
    const char *roles);

struct pc_session *
pc_router_session(struct pc_router *r, const char *id,
    const struct pc_principal *principal)
{
	struct pc_session *s;
	char who[sizeof(s->owner)];

	if (id == NULL || strlen(id) != 2 * PC_SESSION_ID_BYTES)
		return NULL;
	s = pc_map_get(r->sessions, id);
	if (s == NULL || s->closing)
		return NULL;
	owner_of(principal, who, sizeof(who));
	if (strcmp(who, s->owner) != 0) {
		/* Someone else's session id: answer as for an unknown one,
		 * and say so in the log (a stolen or guessed id). */
		pc_warn("session id presented by principal '%s', not its owner; "
		    "refused as unknown", principal ? principal->id : "?");
		return NULL;
	}
	s->last_used_ms = pc_now_ms();
	/* Keys and tokens are checked on every request: the session's roles
	 * follow the latest (a key's roles changed, a new token). */
	if (principal != NULL) {
		pc_principal_credential(principal, s->roles_by,
		    sizeof(s->roles_by));
		session_roles(r, s, principal->roles);
	}
	return s;
}

void
pc_router_session_close(struct pc_router *r, struct pc_session *s)
{
	size_t pos = 0;
	const char *k;
	void *v;

	if (s == NULL || s->closing)
		return;
	s->closing = 1;
	/* Calls still running belong to a session that no longer exists:
	 * answer them now so their HTTP requests end. */
	while (s->calls != NULL) {
		struct pc_call *c = s->calls;
		json_t *e = pc_rpc_error(c->client_id, PC_RPC_NO_SESSION,
		    "Session terminated");
		pc_call_finish(c, 404, e);	/* unlinks c */
		json_decref(e);
	}
	/* Pending server-to-client requests will never be answered. */
	pos = 0;
	while (pc_map_next(s->pending, &pos, &k, &v)) {
		struct pc_fwd *f = v;
		json_t *err = json_pack("{s:i, s:s}", "code", -32603,
		    "message", "Client session ended");
		/* Only to the child that asked: a restarted one reuses ids,
		 * and this would answer another client's request. */
		if (pc_fwd_current(f))
			pc_upstream_respond(f->slot->up, f->up_id, NULL, err);
		json_decref(err);
	}
	pc_session_end_stream(s);
	pc_sub_release_session(r, s);
	pc_map_del(r->sessions, s->id);
	(void)pc_map_add(r->owners, s->owner, -1);
	pc_info("session closed (%zu open)", pc_map_count(r->sessions));
	pc_session_free(s);
}

const char *
pc_session_id(const struct pc_session *s)
{
	return s->id;
}

const char *
pc_session_version(const struct pc_session *s)
{
	return s->version;
}

/* End the session's GET stream, if one is open. */
void
pc_session_end_stream(struct pc_session *s)
{
	const struct pc_sink_ops *ops = s->stream_ops;
	void *sink = s->stream;

	if (ops == NULL)
		return;
	s->stream_ops = NULL;
	s->stream = NULL;
	ops->done(sink, 200, NULL);
}

int
pc_session_attach_stream(struct pc_session *s, const struct pc_sink_ops *ops,
    void *sink)
{
	if (s->stream_ops != NULL)
		return PC_E_EXISTS;
	s->stream_ops = ops;
	s->stream = sink;
	return 0;
}

void
pc_session_set_roles(struct pc_router *r, struct pc_session *s,
    const struct pc_principal *p)
{
	char by[sizeof(s->roles_by)];

	/* A request since came with another credential of the owner's
	 * (another key, a new token): the roles are that one's now. The
	 * stream's own credential was found valid, nothing more; following
	 * it too would flip the roles, and the lists, at every turn. */
	pc_principal_credential(p, by, sizeof(by));
	if (strcmp(by, s->roles_by) == 0)
		session_roles(r, s, p->roles);
}

/*
 * Set a session's roles. A grant that ended or began changes what its
 * lists show: its stream, if it has one, is told, as of a list_changed.
 */
static void
session_roles(struct pc_router *r, struct pc_session *s, const char *roles)
{
	char old[sizeof(s->roles)];

	if (roles == NULL)
		roles = "";
	if (strcmp(s->roles, roles) == 0)
		return;
	memcpy(old, s->roles, sizeof(old));
	pc_strlcpy(s->roles, roles, sizeof(s->roles));
	if (s->stream_ops != NULL && !s->closing)
		pc_session_tell_lists(s, pc_rpol_views_differ(r,
		    r->cfg->policy, old, r->cfg->policy, s->roles));
}

/* Whether list kind k is to be told of under mask (both resource kinds
 * share one notification). */
bool
pc_list_bit_told(unsigned mask, int k)
{
	return (mask & (1u << k)) != 0 && !(k == PC_CAT_TEMPLATES &&
	    (mask & (1u << PC_CAT_RESOURCES)) != 0);
}

void
pc_session_tell_lists(struct pc_session *s, unsigned mask)
{
	for (int k = 0; k < PC_CAT__N; k++) {
		json_t *n;

		if (s->stream_ops == NULL || s->closing ||
		    !pc_list_bit_told(mask, k))
			continue;
		n = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
		    pc_list_changed_method[k]);
		if (n != NULL) {
			s->stream_ops->message(s->stream, n);
			json_decref(n);
		}
	}
}

void
pc_session_detach_stream(struct pc_session *s, void *sink)
{
	if (s->stream == sink) {
		s->stream_ops = NULL;
		s->stream = NULL;
	}
}

/* Send msg on the GET stream of every session (or only those subscribed to
 * `uri`). Sessions without a stream miss it: legacy clients re-list after
 * reconnecting anyway. */
void
pc_sessions_broadcast(struct pc_router *r, json_t *msg, const char *uri,
    const struct pc_list_change *chg)
{
	size_t pos = 0;
	const char *k;
	void *v;

	while (pc_map_next(r->sessions, &pos, &k, &v)) {
		struct pc_session *s = v;
		if (s->stream_ops == NULL || s->closing)
			continue;
		if (uri != NULL && pc_map_get(s->subs, uri) == NULL)
			continue;
		/* Subscribed under an older policy: a reload that hides the
		 * resource ends its updates too. */
		if (uri != NULL && !pc_policy_item_allowed(r->cfg->policy,
		    s->roles, PC_ITEM_RESOURCE, uri))
			continue;
		if (chg != NULL && !pc_rpol_change_visible(r, s->roles, chg))
			continue;
		s->stream_ops->message(s->stream, msg);
	}
}

/*
 * Requests of upstreams a session's client never answered. One whose child
 * is gone can never be answered; one older than its upstream's max_timeout
 * outlived any call it could serve: the child hears it timed out. Else an
 * upstream asking a client that ignores it filled the session's table
 * (max_pending_per_client), and every later request to that session, from
 * any upstream, was refused.
 */
static void
expire_pending(struct pc_session *s, uint64_t now)
{
	size_t pos = 0;
	const char *k;
	void *v;

	while (pc_map_next(s->pending, &pos, &k, &v)) {
		struct pc_fwd *f = v;
		bool current = pc_fwd_current(f);

		if (current && now - f->born_ms <= pc_upstream_conf(
		    f->slot->up)->max_call_timeout_ms)
			continue;
		if (current) {
			json_t *err = json_pack("{s:i, s:s}", "code",
			    PC_RPC_UP_TIMEOUT, "message", "The client did not "
			    "answer in time");

			if (err != NULL)
				pc_upstream_respond(f->slot->up, f->up_id, NULL,
				    err);
			json_decref(err);
		}
		pc_map_del(s->pending, k);
		json_decref(f->up_id);
		free(f);
	}
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pc_router *r = arg;
	uint64_t now = pc_now_ms(), idle = (uint64_t)r->cfg->limits.session_idle_s * 1000u;
	size_t pos = 0;
	const char *k;
	void *v;

	(void)fd;
	(void)what;
	/* Shutting down, every stream has been ended, so every idle session
	 * would look unused, the stdio front's too, which still holds its
	 * session and would use it freed: the router frees them all at the
	 * end anyway. */
	if (r->shutting_down)
		return;
	while (pc_map_next(r->sessions, &pos, &k, &v)) {
		struct pc_session *s = v;

		expire_pending(s, now);
		/* A session with work in flight or an open stream is in use. */
		if (s->inflight > 0 || s->stream_ops != NULL)
			continue;
		if (now - s->last_used_ms > idle) {
			pc_info("session expired after %u s idle",
			    r->cfg->limits.session_idle_s);
			pc_router_session_close(r, s);
		}
	}
}

void
pc_sessions_sweep_start(struct pc_router *r)
{
	struct timeval tv = { 5, 0 };

	r->sweep = event_new(r->base, -1, EV_PERSIST, sweep_cb, r);
	if (r->sweep != NULL)
		event_add(r->sweep, &tv);
}
