/*
 * Tool arguments against the upstream's own inputSchema, before the call
 * leaves the gateway. Schemas are compiled when the tool list is fetched
 * (and again on list_changed), so a call pays only for validation.
 *
 * Fail closed: a tool whose schema cannot be compiled (too large, a $ref to
 * another document, an invalid regex) cannot be called, and a validation
 * that runs out of its step or regex budget counts as invalid. The error
 * result names the argument path and the rule, never a value: arguments
 * may carry secrets.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../validate/schema.h"
#include "../authz/policy.h"
#include "router_int.h"

/* Errors quoted in one answer; more are summarized by their count. */
#define SHOW_ERRORS 5u

static void
free_map(struct pc_map *m)
{
	size_t pos = 0;
	const char *k;
	void *v;

	if (m == NULL)
		return;
	while (pc_map_next(m, &pos, &k, &v))
		pc_schema_free(v);
	pc_map_free(m);
}

void
pc_schemas_free(struct pc_up_slot *slot)
{
	free_map(slot->schemas);
	slot->schemas = NULL;
}

void
pc_schemas_rebuild(struct pc_up_slot *slot, json_t *tools)
{
	struct pc_schema_limits lim;
	struct pc_map *m = pc_map_new(), *seen = pc_map_new();
	size_t i;
	json_t *t;

	if (m == NULL || seen == NULL) {
		pc_map_free(m);
		pc_map_free(seen);
		/* Keep the old set rather than none: calls stay checked. */
		pc_warn("upstream '%s': out of memory compiling tool schemas",
		    pc_upstream_name(slot->up));
		return;
	}
	pc_schema_limits_default(&lim);
	json_array_foreach(tools, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *schema = json_object_get(t, "inputSchema");
		struct pc_schema *s = NULL;
		char err[160];

		/* A name listed twice: the catalogue shows the first, so the
		 * first is the one enforced, also when it has no usable schema
		 * (the second must not be enforced for it: seen, not m). */
		if (name == NULL || pc_map_get(seen, name) != NULL)
			continue;
		if (pc_map_put(seen, name, (void *)1) != 0) {
			/* Cannot tell a later copy: stop here, the rest of
			 * the tools then cannot be called (fail closed). */
			pc_warn("upstream '%s': out of memory compiling tool "
			    "schemas", pc_upstream_name(slot->up));
			break;
		}
		if (!json_is_object(schema)) {
			pc_warn("upstream '%s': tool '%s' has no inputSchema; it "
			    "cannot be called", pc_upstream_name(slot->up), name);
			continue;
		}
		if (pc_schema_compile(schema, &lim, NULL, NULL, &s, err,
		    sizeof(err)) != 0) {
			pc_warn("upstream '%s': tool '%s': input schema refused "
			    "(%s); the tool cannot be called",
			    pc_upstream_name(slot->up), name, err);
			continue;
		}
		if (pc_map_put(m, name, s) != 0)
			pc_schema_free(s);
	}
	pc_map_free(seen);
	free_map(slot->schemas);
	slot->schemas = m;
}

static json_t *
error_result(const char *text)
{
	return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text",
	    "text", text, "isError", 1);
}

/* Validate arguments against s; on a misfit *result is the isError
 * result naming paths and rules (never values). */
static int
check_into(const struct pc_schema *s, const char *tool, json_t *arguments,
    json_t **result)
{
	struct pc_schema_error *errs = NULL;
	unsigned n = 0, max;
	json_t *empty = NULL;
	char text[1536];
	size_t len;
	int rc;

	if (arguments == NULL)
		arguments = empty = json_object();
	/* Most calls fit: check without collecting errors first, so a call
	 * does not pay for a table of max_errors messages (kilobytes, zeroed)
	 * it will not use; a misfit is checked again to name what failed. */
	rc = pc_schema_validate(s, arguments, NULL, NULL);
	if (rc == 0) {
		json_decref(empty);
		return 0;
	}
	max = pc_schema_max_errors(s);
	errs = calloc(max ? max : 1, sizeof(*errs));
	if (errs == NULL) {
		json_decref(empty);
		*result = error_result("Internal error");
		return PC_E_NOMEM;
	}
	rc = pc_schema_validate(s, arguments, errs, &n);
	json_decref(empty);
	if (rc == 0) {
		free(errs);
		return 0;
	}
	len = (size_t)snprintf(text, sizeof(text), "Invalid arguments%s:",
	    rc == PC_E_LIMIT ? " (validation budget exhausted)" : "");
	for (unsigned i = 0; i < n && i < SHOW_ERRORS && len < sizeof(text); i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "%s %s: %s: %s", i ? ";" : "", errs[i].path[0] ? errs[i].path
		    : "/", errs[i].keyword, errs[i].message);
	if (n > SHOW_ERRORS && len < sizeof(text))
		snprintf(text + len, sizeof(text) - len, "; and %u more",
		    n - SHOW_ERRORS);
	free(errs);
	*result = error_result(text);
	pc_debug("tool '%s' refused: arguments do not fit its schema", tool);
	return PC_E_INVAL;
}

int
pc_schemas_check(struct pc_up_slot *slot, const char *tool, json_t *arguments,
    json_t **result)
{
	struct pc_schema *s;

	*result = NULL;
	s = slot->schemas ? pc_map_get(slot->schemas, tool) : NULL;
	if (s == NULL) {
		*result = error_result("This tool cannot be called through the "
		    "gateway: its input schema could not be enforced");
		return PC_E_DENIED;
	}
	return check_into(s, tool, arguments, result);
}

int
pc_tighten_check(const struct pc_router *r, const char *exposed,
    json_t *arguments, json_t **result)
{
	*result = NULL;
	for (size_t i = 0; i < r->cfg->ntighten; i++) {
		const struct pc_tighten *t = &r->cfg->tighten[i];
		int rc;

		if (!pc_policy_glob(t->tool_pattern, exposed))
			continue;
		if ((rc = check_into(t->schema, exposed, arguments, result)) != 0)
			return rc;
	}
	return 0;
}
