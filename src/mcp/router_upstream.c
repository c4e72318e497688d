/*
 * The router's side facing the upstreams: what it does when an upstream
 * becomes ready, goes down, notifies or asks its client something; and the
 * router's own lifecycle (create, start, drain, free).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"
#include "../secrets/redact.h"
#include "../lib/resolve.h"
#include "router_int.h"

/* --- upstream hooks ---------------------------------------------------------- */

static void
hook_ready(struct pc_upstream *up, void *arg)
{
	struct pc_up_slot *slot = arg;

	pc_info("upstream '%s' ready (%s era, protocol %s)",
	    pc_upstream_name(up),
	    pc_upstream_era(up) == PC_UP_ERA_MODERN ? "modern" : "legacy",
	    pc_upstream_protocol_version(up) ? pc_upstream_protocol_version(up)
	    : "?");
	if (slot->r->event_cb != NULL)
		slot->r->event_cb(slot->r->event_arg, "upstream.ready",
		    pc_upstream_name(up));
	pc_sub_replay(slot->r, slot);
	pc_refresh_all(slot);
}

static void
hook_down(struct pc_upstream *up, void *arg)
{
	struct pc_up_slot *slot = arg;

	if (slot->r->event_cb != NULL)
		slot->r->event_cb(slot->r->event_arg, "upstream.exited",
		    pc_upstream_name(up));
	/* Readiness must not wait forever on an upstream that cannot start:
	 * /readyz reports it per upstream instead. */
	if (!slot->first_done) {
		slot->first_done = 1;
		pc_router_check_ready(slot->r);
	}
}

/*
 * An upstream's log message to the client that caused it. It is a log
 * line like the child's stderr, which the gateway's log redacts: a secret
 * the gateway gave the child (its env) must not reach the client this way
 * either. Redacted on a copy; one that cannot be redacted is dropped.
 */
static void
send_log(struct pc_router *r, struct pc_call *c, json_t *msg)
{
	json_t *safe = r->redactor != NULL ?
	    pc_redact_json_copy(r->redactor, msg, NULL) : json_incref(msg);

	if (safe != NULL)
		c->ops->message(c->sink, safe);
	else
		pc_warn("an upstream log message was not passed on: it could "
		    "not be redacted");
	json_decref(safe);
}

void
pc_router_set_redactor(struct pc_router *r, const struct pc_redactor *red)
{
	r->redactor = red;
}

static void
hook_notification(struct pc_upstream *up, json_t *msg, void *call_arg,
    void *arg)
{
	struct pc_up_slot *slot = arg;
	struct pc_router *r = slot->r;
	const char *m = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");

	(void)up;
	if (m == NULL)
		return;
	if (strcmp(m, "notifications/tools/list_changed") == 0) {
		pc_refresh_start(slot, PC_CAT_TOOLS);
	} else if (strcmp(m, "notifications/prompts/list_changed") == 0) {
		pc_refresh_start(slot, PC_CAT_PROMPTS);
	} else if (strcmp(m, "notifications/resources/list_changed") == 0) {
		pc_refresh_start(slot, PC_CAT_RESOURCES);
		pc_refresh_start(slot, PC_CAT_TEMPLATES);
	} else if (strcmp(m, "notifications/resources/updated") == 0) {
		const char *uri = json_string_value(json_object_get(params, "uri"));
		char *e = uri ? pc_catalog_expose_uri(r->cat, slot->idx, uri) : NULL;
		char *orig = NULL;
		size_t owner;

		/* An unprefixed upstream's URI that routes to another
		 * upstream ("fs+file:///x" from it) would tell that one's
		 * subscribers of a change it never made. */
		if (e != NULL && pc_catalog_resolve_uri(r->cat, e, &owner,
		    &orig) == 0 && owner != slot->idx) {
			pc_warn("upstream '%s': resources/updated for a URI "
			    "another upstream owns: dropped",
			    pc_upstream_name(slot->up));
			free(e);
			e = NULL;
		}
		free(orig);
		if (e != NULL) {
			json_t *n = json_pack("{s:s, s:s, s:{s:s}}", "jsonrpc",
			    "2.0", "method", m, "params", "uri", e);
			pc_sessions_broadcast(r, n, e, NULL);
			json_decref(n);
			pc_listeners_notify(r, m, e, NULL);
			free(e);
		}
	} else if (strcmp(m, "notifications/message") == 0) {
		struct pc_call *c = call_arg;
		int lvl = pc_log_level_index(json_string_value(
		    json_object_get(params, "level")));
		if (c != NULL && c->log_level >= 0 && lvl >= c->log_level)
			send_log(r, c, msg);
	}
	/* Anything else (unattributed progress, cancelled, ...) is dropped:
	 * sending it to a client that did not cause it would leak. */
}

/* The client capability a server-to-client request needs, or NULL. */
static const char *
needed_capability(const char *method)
{
	if (method == NULL)
		return NULL;
	if (strcmp(method, "elicitation/create") == 0)
		return "elicitation";
	if (strcmp(method, "sampling/createMessage") == 0)
		return "sampling";
	if (strcmp(method, "roots/list") == 0)
		return "roots";
	return NULL;
}

/*
 * Every string in v (not object keys, nor numbers: a server's request
 * quotes text) through the redactor's values and credential shapes. Not
 * its key-name rules: in a request the names are the server's own (an
 * elicitation's form field "password" is a schema to fill in, not a
 * secret), and replacing their values would break it.
 * 0, or PC_E_NOMEM / PC_E_LIMIT (deeper than any message the gateway
 * parses): the request is then not sent.
 */
static int
redact_strings(const struct pc_redactor *red, json_t *v, unsigned depth)
{
	const char *k;
	json_t *e;
	size_t i;
	int rc;

	if (depth > PC_MAX_MAX_JSON_DEPTH)
		return PC_E_LIMIT;
	if (json_is_string(v)) {
		char *t = pc_redact_text(red, json_string_value(v),
		    json_string_length(v));

		if (t == NULL)
			return PC_E_NOMEM;
		rc = 0;
		/* A match that split a UTF-8 sequence leaves no text: the
		 * whole string goes instead. */
		if ((strlen(t) != json_string_length(v) ||
		    memcmp(t, json_string_value(v), strlen(t)) != 0) &&
		    json_string_setn(v, t, strlen(t)) != 0 &&
		    json_string_set(v, PC_REDACTED) != 0)
			rc = PC_E_NOMEM;
		free(t);
		return rc;
	}
	if (json_is_object(v)) {
		json_object_foreach(v, k, e)
			if ((rc = redact_strings(red, e, depth + 1)) != 0)
				return rc;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if ((rc = redact_strings(red, e, depth + 1)) != 0)
				return rc;
	}
	return 0;
}

/*
 * An upstream's request as its client will see it. The client knows one
 * server, the gateway: a sampling request's includeContext ("thisServer",
 * "allServers") would hand one upstream the context of the others, so it
 * becomes "none". Its strings pass the redactor (values and credential
 * shapes), like the upstream's log lines: a server may quote the
 * credential the gateway gave it. And it names the upstream that asks (an
 * elicitation that wants a password should say whose it is). NULL: not to
 * be sent (no memory, or its redaction could not finish).
 */
static json_t *
to_client(struct pc_router *r, struct pc_up_slot *slot, json_t *msg)
{
	json_t *fwd = json_deep_copy(msg);
	json_t *params = json_object_get(fwd, "params");
	json_t *meta;
	const char *m = json_string_value(json_object_get(msg, "method"));

	if (fwd == NULL)
		return NULL;
	if (json_is_object(params)) {
		if (m != NULL && strcmp(m, "sampling/createMessage") == 0 &&
		    json_object_get(params, "includeContext") != NULL)
			json_object_set_new(params, "includeContext",
			    json_string("none"));
		if (r->redactor != NULL) {
			int rc = redact_strings(r->redactor, params, 0);

			if (rc != 0) {
				pc_warn("upstream '%s': a %s request that "
				    "could not be redacted was refused",
				    pc_upstream_name(slot->up), m ? m : "?");
				json_decref(fwd);
				return NULL;
			}
		}
		meta = json_object_get(params, "_meta");
		if (!json_is_object(meta)) {
			meta = json_object();
			json_object_set_new(params, "_meta", meta);
		}
		json_object_set_new(meta, "portcullis/upstream",
		    json_string(pc_upstream_name(slot->up)));
	}
	return fwd;
}

static void
hook_request(struct pc_upstream *up, json_t *msg, void *call_arg, void *arg)
{
	struct pc_up_slot *slot = arg;
	struct pc_router *r = slot->r;
	struct pc_call *c = call_arg;
	const char *m = json_string_value(json_object_get(msg, "method"));
	const char *cap = needed_capability(m);
	json_t *id = json_object_get(msg, "id");
	int declared = 0;

	if (c != NULL && cap != NULL)
		declared = cap[0] == 'e' ? c->client_elicit :
		    cap[0] == 's' ? c->client_sampling : c->client_roots;
	/*
	 * A modern client that did not declare what the upstream needs gets
	 * MissingRequiredClientCapability, as a modern server would answer;
	 * the upstream's call is cancelled with it.
	 */
	if (c != NULL && cap != NULL && c->era == PC_CLIENT_MODERN &&
	    !declared && c->kind == PC_CK_FORWARD) {
		json_t *err = json_pack("{s:i, s:s}", "code", -32601, "message",
		    "The client did not declare this capability");
		json_t *resp = json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:{s:{}}}}}",
		    "jsonrpc", "2.0", "id", c->client_id, "error", "code", -32021,
		    "message", "Missing required client capability", "data",
		    "requiredCapabilities", cap);
		pc_upstream_respond(up, id, NULL, err);
		json_decref(err);
		pc_call_finish(c, 400, resp);
		json_decref(resp);
		return;
	}
	/* A client that never answers must not make the session's table of
	 * open requests grow without end: past the per-client cap the
	 * upstream's request is refused (below, -32601 like any request
	 * that cannot reach a client). */
	if (c != NULL && cap != NULL && c->ops->no_messages) {
		/* Nowhere to send it (refused below). */
	} else if (c != NULL && cap != NULL && declared &&
	    c->era == PC_CLIENT_LEGACY &&
	    c->session != NULL && pc_map_count(c->session->pending) >=
	    r->cfg->limits.max_pending_per_client) {
		pc_warn("session has %zu unanswered requests from upstreams: "
		    "%s refused", pc_map_count(c->session->pending), m);
	} else if (c != NULL && cap != NULL && declared &&
	    c->era == PC_CLIENT_LEGACY && c->session != NULL) {
		char gid[48];
		struct pc_fwd *f = calloc(1, sizeof(*f));
		json_t *fwd;
		snprintf(gid, sizeof(gid), "pc-%" PRIu64, ++r->next_fwd);
		if (f != NULL) {
			f->slot = slot;
			f->up_id = json_deep_copy(id);
			f->call = c;
			const char *asked = json_string_value(
			    json_object_get(msg, "method"));
			pc_strlcpy(f->method, asked ? asked : "",
			    sizeof(f->method));
			f->gen = pc_upstream_generation(slot->up);
			f->born_ms = pc_now_ms();
			if ((fwd = to_client(r, slot, msg)) != NULL &&
			    pc_map_put(c->session->pending, gid, f) == 0) {
				json_object_set_new(fwd, "id", json_string(gid));
				c->ops->message(c->sink, fwd);
				json_decref(fwd);
				return;
			}
			json_decref(fwd);
			json_decref(f->up_id);
			free(f);
		}
	}
	/* Modern clients take no server-to-client requests (input_required
	 * translation is future work); unattributed ones have no client. */
	json_t *err = json_pack("{s:i, s:s}", "code", -32601, "message",
	    "The client of this request cannot answer it through the gateway");
	pc_upstream_respond(up, id, NULL, err);
	json_decref(err);
}

static const struct pc_upstream_hooks hooks = {
	.on_ready = hook_ready,
	.on_down = hook_down,
	.on_notification = hook_notification,
	.on_request = hook_request,
};

/* --- lifecycle ----------------------------------------------------------------- */

int
pc_router_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_router **out)
{
	struct pc_router *r;
	int rc = PC_E_NOMEM;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return PC_E_NOMEM;
	r->base = base;
	r->cfg = cfg;
	r->sessions = pc_map_new();
	r->sources = pc_map_new();
	r->owners = pc_map_new();
	r->subs = pc_map_new();
	r->sub_lost = pc_map_new();
	if (r->sessions == NULL || r->sources == NULL || r->owners == NULL ||
	    r->subs == NULL || r->sub_lost == NULL)
		goto out;
	if ((rc = pc_catalog_new(&r->cat)) != 0)
		goto out;
	r->nslots = cfg->nupstreams;
	r->slots = calloc(r->nslots ? r->nslots : 1, sizeof(*r->slots));
	if (r->slots == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->nslots; i++) {
		const struct pc_upstream_conf *uc = &cfg->upstreams[i];
		struct pc_up_slot *slot = &r->slots[i];
		slot->r = r;
		slot->idx = i;
		rc = pc_catalog_add_upstream(r->cat, i,
		    uc->prefix ? uc->prefix : uc->name);
		if (rc != 0)
			goto out;
		rc = pc_upstream_new(base, uc, &hooks, slot, &slot->up);
		if (rc != 0)
			goto out;
	}
	pc_sessions_sweep_start(r);
	*out = r;
	return 0;
out:
	pc_router_free(r);
	return rc;
}

int
pc_router_start(struct pc_router *r)
{
	int first = 0;

	for (size_t i = 0; i < r->nslots; i++) {
		int rc = pc_upstream_start(r->slots[i].up);
		if (rc != 0 && first == 0)
			first = rc;
	}
	pc_router_check_ready(r);
	return first;
}

static void
slot_stopped(void *arg)
{
	struct pc_up_slot *slot = arg;
	struct pc_router *r = slot->r;

	slot->stopped = 1;
	if (r->stopping > 0 && --r->stopping == 0 && r->shutdown_done != NULL)
		r->shutdown_done(r->shutdown_arg);
}

void
pc_router_shutdown(struct pc_router *r, void (*done)(void *), void *arg)
{
	size_t pos = 0;
	const char *k;
	void *v;

	r->shutting_down = 1;
	r->shutdown_done = done;
	r->shutdown_arg = arg;
	/* End open streams so their connections can close. */
	while (r->listeners != NULL) {
		struct pc_call *c = r->listeners;
		json_t *res = json_object();
		pc_call_finish_result(c, res);
	}
	while (pc_map_next(r->sessions, &pos, &k, &v))
		pc_session_end_stream(v);
	r->stopping = r->nslots;
	if (r->nslots == 0) {
		if (done != NULL)
			done(arg);
		return;
	}
	for (size_t i = 0; i < r->nslots; i++)
		pc_upstream_shutdown(r->slots[i].up, slot_stopped, &r->slots[i]);
}

/* The lists that look different to `roles` under the new policy; kept in
 * `seen` (NULL when out of memory: then worked out each time). */
static unsigned
views_for(struct pc_router *r, struct pc_map *seen, const struct pc_policy *old,
    const char *roles)
{
	uintptr_t m;

	if (roles == NULL)
		roles = "";
	if (seen != NULL && (m = (uintptr_t)pc_map_get(seen, roles)) != 0)
		return (unsigned)(m - 1);
	m = pc_rpol_views_differ(r, old, roles, r->cfg->policy, roles);
	if (seen != NULL)
		(void)pc_map_put(seen, roles, (void *)(m + 1));
	return (unsigned)m;
}

/*
 * A reloaded policy may show a stream's caller other items (a grant added
 * or taken away): each held-open stream is told of the lists that changed
 * for its roles. Worked out once per distinct set of roles (a scan of the
 * catalogue each), not once per stream.
 */
static void
tell_new_views(struct pc_router *r, const struct pc_policy *old)
{
	struct pc_map *seen;
	size_t pos = 0;
	const char *k;
	void *v;

	if (old == r->cfg->policy)
		return;
	seen = pc_map_new();
	while (pc_map_next(r->sessions, &pos, &k, &v)) {
		struct pc_session *s = v;
		if (s->stream_ops != NULL && !s->closing)
			pc_session_tell_lists(s, views_for(r, seen, old,
			    s->roles));
	}
	for (struct pc_call *c = r->listeners, *next; c != NULL; c = next) {
		next = c->lnext;
		pc_listener_tell_lists(c, views_for(r, seen, old,
		    c->listen_roles));
	}
	pc_map_free(seen);
}

void
pc_router_set_config(struct pc_router *r, const struct pc_config *cfg)
{
	/* Upstream entries are borrowed by the supervisors: keep them until
	 * restart support lands; limits and eras take effect now. */
	const struct pc_policy *old = r->cfg->policy;

	if (cfg->nupstreams != r->cfg->nupstreams)
		pc_warn("reload: upstream changes take effect after a restart");
	r->cfg = cfg;
	tell_new_views(r, old);
}

bool
pc_router_ready(const struct pc_router *r)
{
	return r->ready != 0;
}

void
pc_router_on_event(struct pc_router *r,
    void (*cb)(void *, const char *, const char *), void *arg)
{
	r->event_cb = cb;
	r->event_arg = arg;
}

void
pc_router_on_ready(struct pc_router *r, void (*cb)(void *), void *arg)
{
	r->ready_cb = cb;
	r->ready_arg = arg;
}

json_t *
pc_router_status(const struct pc_router *r)
{
	static const char *const names[] = {
		"starting", "ready", "backoff", "stopping", "stopped",
	};
	json_t *o = json_object();

	for (size_t i = 0; i < r->nslots; i++) {
		enum pc_upstream_state st = pc_upstream_state(r->slots[i].up);
		json_object_set_new(o, pc_upstream_name(r->slots[i].up),
		    json_string(st <= PC_UP_STOPPED ? names[st] : "?"));
	}
	return o;
}

void
pc_router_free(struct pc_router *r)
{
	size_t pos = 0;
	const char *k;
	void *v;

	if (r == NULL)
		return;
	if (r->sweep != NULL)
		event_free(r->sweep);
	if (r->sessions != NULL) {
		while (pc_map_next(r->sessions, &pos, &k, &v)) {
			pc_map_del(r->sessions, k);
			pc_session_free(v);
		}
	}
	for (size_t i = 0; i < r->nslots; i++) {
		pc_upstream_free(r->slots[i].up);
		pc_schemas_free(&r->slots[i]);
		for (int kk = 0; kk < PC_CAT__N; kk++)
			json_decref(r->slots[i].refresh[kk].acc);
	}
	free(r->slots);
	pc_catalog_free(r->cat);
	pc_map_free(r->sessions);
	pc_map_free(r->sources);
	pc_map_free(r->owners);
	pc_map_free(r->subs);
	pc_map_free(r->sub_lost);
	pc_resolver_free(r->resolver);
	free(r);
}
