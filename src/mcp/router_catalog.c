/*
 * Keeping the aggregated catalogue fresh, and serving the list methods
 * from it.
 *
 * The gateway never forwards a list request: it fetches each upstream's
 * lists when the upstream becomes ready and when it says list_changed,
 * and answers clients from the merged copy. That keeps ordering and
 * pagination under the gateway's control, and gives later policy one
 * place to filter what a caller may see.
 */
#include <stdint.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/json.h"
#include "router_int.h"

static const char *const list_method[PC_CAT__N] = {
	"tools/list", "prompts/list", "resources/list",
	"resources/templates/list",
};
static const char *const list_key[PC_CAT__N] = {
	"tools", "prompts", "resources", "resourceTemplates",
};
static const char *const cap_key[PC_CAT__N] = {
	"tools", "prompts", "resources", "resources",
};
const char *const pc_list_changed_method[PC_CAT__N] = {
	"notifications/tools/list_changed",
	"notifications/prompts/list_changed",
	"notifications/resources/list_changed",
	"notifications/resources/list_changed",
};

static void fetch_page(struct pc_refresh *rf, const char *cursor);

void
pc_router_check_ready(struct pc_router *r)
{
	if (r->ready)
		return;
	for (size_t i = 0; i < r->nslots; i++)
		if (!r->slots[i].first_done)
			return;
	r->ready = 1;
	pc_info("all upstreams finished their first handshake");
	if (r->ready_cb != NULL)
		r->ready_cb(r->ready_arg);
}

static void
first_kind_done(struct pc_up_slot *slot)
{
	if (slot->first_done)
		return;
	if (slot->pending_kinds > 0)
		slot->pending_kinds--;
	if (slot->pending_kinds == 0) {
		slot->first_done = 1;
		pc_router_check_ready(slot->r);
	}
}

static void
refresh_end(struct pc_refresh *rf, int ok)
{
	struct pc_up_slot *slot = rf->slot;
	struct pc_router *r = slot->r;

	if (ok) {
		uint64_t gen = pc_catalog_generation(r->cat, rf->kind);
		json_t *changed = NULL;
		/* Before the first fetch nobody is told: no difference to
		 * work out. */
		if (pc_catalog_set_diff(r->cat, slot->idx, rf->kind, rf->acc,
		    slot->first_done ? &changed : NULL) != 0)
			pc_warn("upstream '%s': could not store %s",
			    pc_upstream_name(slot->up), list_key[rf->kind]);
		if (rf->kind == PC_CAT_TOOLS)
			pc_schemas_rebuild(slot, rf->acc);
		pc_debug("upstream '%s': %zu %s", pc_upstream_name(slot->up),
		    json_array_size(rf->acc), list_key[rf->kind]);
		/* Tell clients only about changes after the first fetch,
		 * and each only of a change it can see: a tool it may not
		 * call appearing or changing is not its business. */
		if (slot->first_done &&
		    pc_catalog_generation(r->cat, rf->kind) != gen) {
			struct pc_list_change chg = { rf->kind, changed,
			    pc_map_new() };
			json_t *n = json_pack("{s:s, s:s}", "jsonrpc", "2.0",
			    "method", pc_list_changed_method[rf->kind]);
			if (n != NULL) {
				pc_sessions_broadcast(r, n, NULL, &chg);
				json_decref(n);
			}
			pc_listeners_notify(r, pc_list_changed_method[rf->kind], NULL,
			    &chg);
			pc_map_free(chg.seen);
		}
		json_decref(changed);
	}
	json_decref(rf->acc);
	rf->acc = NULL;
	rf->busy = 0;
	first_kind_done(slot);
	if (rf->again && !r->shutting_down) {
		rf->again = 0;
		pc_refresh_start(slot, rf->kind);
	}
}

/*
 * Add a page's items to rf->acc within the byte budgets: an item over
 * PC_MAX_CATALOG_ITEM_BYTES is left out (warned), and past
 * PC_MAX_CATALOG_BYTES the list stops. 0, 1 (stopped: keep what came
 * before), or PC_E_NOMEM.
 */
static int
take_items(struct pc_refresh *rf, json_t *items)
{
	size_t i, dropped = 0;
	json_t *it;

	json_array_foreach(items, i, it) {
		size_t w = pc_json_weight(it, PC_MAX_CATALOG_ITEM_BYTES);

		if (w > PC_MAX_CATALOG_ITEM_BYTES) {
			dropped++;
			continue;
		}
		if (rf->bytes + w > PC_MAX_CATALOG_BYTES) {
			pc_warn("upstream '%s': %s over %u bytes; list "
			    "truncated", pc_upstream_name(rf->slot->up),
			    list_key[rf->kind], PC_MAX_CATALOG_BYTES);
			return 1;
		}
		rf->bytes += w;
		if (json_array_append(rf->acc, it) != 0)
			return PC_E_NOMEM;
	}
	if (dropped > 0)
		pc_warn("upstream '%s': %zu of its %s over %u bytes each left "
		    "out", pc_upstream_name(rf->slot->up), dropped,
		    list_key[rf->kind], PC_MAX_CATALOG_ITEM_BYTES);
	return 0;
}

static void
on_page(void *arg, int err, json_t *msg)
{
	struct pc_refresh *rf = arg;
	json_t *result, *items;
	const char *next;

	if (err != 0) {
		pc_warn("upstream '%s': %s failed: %s",
		    pc_upstream_name(rf->slot->up), list_method[rf->kind],
		    pc_strerror(err));
		refresh_end(rf, 0);
		return;
	}
	result = json_object_get(msg, "result");
	items = json_object_get(result, list_key[rf->kind]);
	if (!json_is_array(items)) {
		pc_warn("upstream '%s': %s returned no '%s' array",
		    pc_upstream_name(rf->slot->up), list_method[rf->kind],
		    list_key[rf->kind]);
		refresh_end(rf, 0);
		return;
	}
	if (json_array_size(rf->acc) + json_array_size(items) >
	    PC_MAX_CATALOG_ITEMS) {
		pc_warn("upstream '%s': more than %u %s; list truncated",
		    pc_upstream_name(rf->slot->up), PC_MAX_CATALOG_ITEMS,
		    list_key[rf->kind]);
		refresh_end(rf, 1);
		return;
	}
	switch (take_items(rf, items)) {
	case 0:
		break;
	case 1:
		refresh_end(rf, 1);	/* truncated at the byte budget */
		return;
	default:
		refresh_end(rf, 0);
		return;
	}
	next = json_string_value(json_object_get(result, "nextCursor"));
	if (next != NULL && *next != '\0') {
		if (++rf->pages >= PC_MAX_CATALOG_PAGES) {
			pc_warn("upstream '%s': %s paginates past %u pages; "
			    "list truncated", pc_upstream_name(rf->slot->up),
			    list_method[rf->kind], PC_MAX_CATALOG_PAGES);
			refresh_end(rf, 1);
			return;
		}
		fetch_page(rf, next);
		return;
	}
	refresh_end(rf, 1);
}

static void
fetch_page(struct pc_refresh *rf, const char *cursor)
{
	json_t *params = json_object();
	int rc;

	if (cursor != NULL)
		json_object_set_new(params, "cursor", json_string(cursor));
	rc = pc_upstream_call(rf->slot->up, list_method[rf->kind], params, 0,
	    on_page, NULL, rf, NULL);
	json_decref(params);
	if (rc != 0) {
		pc_debug("upstream '%s': %s not sent: %s",
		    pc_upstream_name(rf->slot->up), list_method[rf->kind],
		    pc_strerror(rc));
		refresh_end(rf, 0);
	}
}

void
pc_refresh_start(struct pc_up_slot *slot, enum pc_cat_kind kind)
{
	struct pc_refresh *rf = &slot->refresh[kind];

	if (rf->busy) {
		rf->again = 1;
		return;
	}
	rf->slot = slot;
	rf->kind = kind;
	rf->busy = 1;
	rf->pages = 0;
	rf->bytes = 0;
	rf->acc = json_array();
	if (rf->acc == NULL) {
		rf->busy = 0;
		first_kind_done(slot);
		return;
	}
	fetch_page(rf, NULL);
}

/* Refresh every kind the upstream declared in its capabilities. */
void
pc_refresh_all(struct pc_up_slot *slot)
{
	json_t *info = pc_upstream_server_info(slot->up);
	json_t *caps = json_object_get(info, "capabilities");
	int want[PC_CAT__N], n = 0;

	for (int k = 0; k < PC_CAT__N; k++) {
		want[k] = json_object_get(caps, cap_key[k]) != NULL;
		n += want[k];
	}
	if (!slot->first_done)
		slot->pending_kinds = n;
	for (int k = 0; k < PC_CAT__N; k++) {
		if (want[k])
			pc_refresh_start(slot, (enum pc_cat_kind)k);
		else {
			json_t *none = json_array();
			pc_catalog_set(slot->r->cat, slot->idx,
			    (enum pc_cat_kind)k, none);
			json_decref(none);
		}
	}
	if (n == 0 && !slot->first_done) {
		slot->first_done = 1;
		pc_router_check_ready(slot->r);
	}
}

/* Serve tools/list, prompts/list, resources/list, templates/list. */
int
pc_router_list(struct pc_router *r, const struct pc_reqinfo *ri,
    enum pc_cat_kind kind, json_t *params, json_t **result, json_t **error)
{
	json_t *items = NULL, *res;
	char *next = NULL;
	const char *cursor = NULL;
	json_t *jc = json_object_get(params, "cursor");
	int rc;

	*result = NULL;
	*error = NULL;
	if (jc != NULL && !json_is_null(jc)) {
		if (!json_is_string(jc)) {
			*error = json_pack("{s:i, s:s}", "code", -32602,
			    "message", "Invalid params: cursor must be a string");
			return PC_E_INVAL;
		}
		cursor = json_string_value(jc);
	}
	/* Only what the caller may use is listed (deny by default). */
	struct pc_rpol_filter f;
	pc_rpol_filter_init(&f, r, ri, kind);
	rc = pc_catalog_page_where(r->cat, kind, cursor,
	    r->cfg->limits.page_size, pc_rpol_list_keep, &f, &items, &next);
	if (rc == PC_E_INVAL) {
		*error = json_pack("{s:i, s:s}", "code", -32602,
		    "message", "Invalid params: unknown cursor");
		return rc;
	}
	if (rc != 0)
		return rc;
	res = json_object();
	json_object_set_new(res, list_key[kind], items);
	if (next != NULL) {
		json_object_set_new(res, "nextCursor", json_string(next));
		free(next);
	}
	if (ri->era == PC_CLIENT_MODERN) {
		/* What a caller sees will depend on its authorization, so a
		 * cache of it must never be shared between callers. */
		json_object_set_new(res, "ttlMs",
		    json_integer(r->cfg->limits.list_ttl_ms));
		json_object_set_new(res, "cacheScope", json_string("private"));
	}
	*result = res;
	return 0;
}

const json_t *
pc_router_tool_schema(const struct pc_router *r, const char *name)
{
	const json_t *tool = pc_catalog_find(r->cat, PC_CAT_TOOLS, name);

	return tool != NULL ? json_object_get(tool, "inputSchema") : NULL;
}

bool
pc_router_has_tool(const struct pc_router *r, const char *name)
{
	return r != NULL && name != NULL &&
	    pc_catalog_find(r->cat, PC_CAT_TOOLS, name) != NULL;
}

const json_t *
pc_router_call_schema(const struct pc_router *r, const json_t *msg)
{
	const char *m = json_string_value(json_object_get(msg, "method"));
	const char *name = json_string_value(json_object_get(json_object_get(
	    msg, "params"), "name"));

	if (m == NULL || name == NULL || strcmp(m, "tools/call") != 0)
		return NULL;
	return pc_router_tool_schema(r, name);
}
