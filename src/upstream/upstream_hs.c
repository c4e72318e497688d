/*
 * The era handshake with a freshly spawned child (reference §1.6):
 * server/discover first, initialize as the fallback; see docs/upstream.md.
 *
 * The verdict is per upstream: a child that dies of the probe (rmcp-style
 * servers exit on anything before initialize) makes later restarts skip it
 * (legacy_sticky, handled in upstream.c where the exit is seen).
 */
#include "upstream_int.h"

#include "lib/errors.h"
#include "lib/json.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"

#include <stdio.h>
#include <string.h>

static void send_initialize(struct pc_upstream *up);
static void send_probe(struct pc_upstream *up, bool strict);

static bool
array_has_string(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

/* A -32022 whose data.supported names our modern version. */
static bool
error_says_modern(json_t *err)
{
	json_t *data = pc_json_obj(err, "data");

	return json_integer_value(json_object_get(err, "code")) ==
	    UP_RPC_UNSUPPORTED_VER &&
	    array_has_string(json_object_get(data, "supported"),
	    UP_MODERN_VERSION);
}

static void
go_modern(struct pc_upstream *up, json_t *info)
{
	json_decref(up->server_info);
	up->server_info = info;
	up->era = PC_UP_ERA_MODERN;
	up->legacy_sticky = false;
	pc_strlcpy(up->proto_ver, UP_MODERN_VERSION, sizeof(up->proto_ver));
	up_hs_reset(up);
	up_became_ready(up);
}

static void
hs_probe_answer(struct pc_upstream *up, json_t *msg)
{
	json_t *result = pc_json_obj(msg, "result");
	json_t *err = pc_json_obj(msg, "error");

	if (result != NULL && array_has_string(
	    json_object_get(result, "supportedVersions"), UP_MODERN_VERSION)) {
		go_modern(up, json_incref(result));
		return;
	}
	if (err != NULL && error_says_modern(err)) {
		/* No DiscoverResult to keep: record what the error told us. */
		json_t *info = json_pack("{s:s, s:O, s:{}}", "resultType",
		    "complete", "supportedVersions",
		    json_object_get(pc_json_obj(err, "data"), "supported"),
		    "capabilities");
		if (info == NULL) {
			up_fail_child(up, "out of memory in handshake");
			return;
		}
		go_modern(up, info);
		return;
	}
	if (up->hs_strict) {
		up_fail_child(up, "server/discover did not offer "
		    UP_MODERN_VERSION " (era is pinned to modern)");
		return;
	}
	pc_info("upstream '%s': server/discover %s; falling back to "
	    "initialize", up->conf->name, err != NULL ? "refused" :
	    "offered no modern version");
	up->probe_fell_back = true;
	send_initialize(up);
}

static void
hs_init_answer(struct pc_upstream *up, json_t *msg)
{
	json_t *result = pc_json_obj(msg, "result");
	json_t *err = pc_json_obj(msg, "error");
	const char *pv = pc_json_str(result, "protocolVersion");

	if (err != NULL && error_says_modern(err) &&
	    up->conf->era != PC_ERA_LEGACY) {
		/* A modern-only server we took for legacy (the probe timed
		 * out or killed a sibling): ask it properly, no fallback. */
		pc_info("upstream '%s': initialize refused as modern-only; "
		    "probing again", up->conf->name);
		up->legacy_sticky = false;
		send_probe(up, true);
		return;
	}
	if (result == NULL || pv == NULL || pv[0] == '\0' ||
	    strlen(pv) >= sizeof(up->proto_ver)) {
		char why[96];
		snprintf(why, sizeof(why), "initialize failed (%s %lld)",
		    err != NULL ? "error" : "bad result",
		    (long long)json_integer_value(json_object_get(err, "code")));
		up_fail_child(up, why);
		return;
	}
	json_decref(up->server_info);
	up->server_info = json_incref(result);
	up->era = PC_UP_ERA_LEGACY;
	pc_strlcpy(up->proto_ver, pv, sizeof(up->proto_ver));
	up_hs_reset(up);
	if (up_send_notification(up, "notifications/initialized", NULL) != 0) {
		up_fail_child(up, "cannot send notifications/initialized");
		return;
	}
	up_became_ready(up);
}

void
up_hs_answer(struct pc_upstream *up, json_t *msg)
{
	if (up->hs_phase == UP_HS_PROBE)
		hs_probe_answer(up, msg);
	else
		hs_init_answer(up, msg);
}

/* ---- handshake ----------------------------------------------------------- */

void
up_hs_reset(struct pc_upstream *up)
{
	up->hs_phase = UP_HS_NONE;
	up->hs_id = 0;
	if (up->ev_hs != NULL)
		event_del(up->ev_hs);
}

static void
hs_send(struct pc_upstream *up, enum up_hs_phase phase, const char *method,
    json_t *params, uint32_t timeout_ms)
{
	enum pc_upstream_era saved = up->era;

	up->hs_phase = phase;
	up->hs_id = up->next_id++;
	/* initialize and server/discover carry their own params: keep
	 * build_params from adding modern _meta to them. */
	up->era = PC_UP_ERA_UNKNOWN;
	int rc = params == NULL ? PC_E_NOMEM :
	    up_send_request(up, up->hs_id, method, params, NULL);
	up->era = saved;
	json_decref(params);
	if (rc != 0) {
		up_fail_child(up, "cannot send the handshake");
		return;
	}
	up_timer_ms(up->ev_hs, timeout_ms);
}

static void
send_probe(struct pc_upstream *up, bool strict)
{
	up->hs_strict = strict;
	hs_send(up, UP_HS_PROBE, "server/discover",
	    json_pack("{s:{s:s, s:O, s:O}}", "_meta", UP_META_VERSION,
	    UP_MODERN_VERSION, UP_META_CAPS, up->modern_caps, UP_META_INFO,
	    up->client_info),
	    up_ms_or(up->conf->probe_timeout_ms, PC_DEF_PROBE_TIMEOUT_MS));
}

static void
send_initialize(struct pc_upstream *up)
{
	json_t *caps = json_pack("{s:{}, s:{}}", "sampling", "elicitation");

	if (caps != NULL && up->conf->client_roots)
		json_object_set_new(caps, "roots",
		    json_pack("{s:b}", "listChanged", 0));
	hs_send(up, UP_HS_INIT, "initialize", caps == NULL ? NULL :
	    json_pack("{s:s, s:o, s:O}", "protocolVersion", UP_LEGACY_VERSION,
	    "capabilities", caps, "clientInfo", up->client_info),
	    up_ms_or(up->conf->init_timeout_ms, PC_DEF_INIT_TIMEOUT_MS));
}

static void
on_hs_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;

	up_enter(up);
	if (up->hs_phase == UP_HS_PROBE && !up->hs_strict) {
		pc_info("upstream '%s': no answer to server/discover; "
		    "falling back to initialize", up->conf->name);
		up->probe_fell_back = true;
		send_initialize(up);
	} else if (up->hs_phase == UP_HS_PROBE) {
		up_fail_child(up, "server/discover timed out (era is pinned "
		    "to modern)");
	} else if (up->hs_phase == UP_HS_INIT) {
		up_fail_child(up, "initialize timed out");
	}
	up_leave(up);
}

int
up_hs_begin(struct pc_upstream *up)
{
	if (up->ev_hs == NULL) {
		up->ev_hs = evtimer_new(up->base, on_hs_timeout, up);
		if (up->ev_hs == NULL)
			return PC_E_NOMEM;
	}
	up->era = PC_UP_ERA_UNKNOWN;
	up->probe_fell_back = false;
	if (up->conf->era == PC_ERA_LEGACY || up->legacy_sticky)
		send_initialize(up);
	else
		send_probe(up, up->conf->era == PC_ERA_MODERN);
	return 0;
}
