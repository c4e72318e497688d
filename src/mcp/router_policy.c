/*
 * The authorize stage in the router: which listed items a caller sees, and
 * whether a call to a tool, prompt or resource may leave the gateway.
 *
 * The decisions are the policy engine's (src/authz); this file applies
 * them to MCP. Two rules shape it:
 *
 * - A hidden item and a missing one are indistinguishable from outside:
 *   same error code, same message, same HTTP status. Only the log and the
 *   audit record (through the sink's `denied` op) say it was a denial.
 * - A tool the caller may see but calls with an argument the policy
 *   refuses gets a tool execution error (isError) with the stable reason
 *   code and the argument's name, never its value or the configured rule.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../authz/policy.h"
#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"
#include "router_int.h"

static const char *
roles_of(const struct pc_reqinfo *ri)
{
	return ri != NULL && ri->principal != NULL ? ri->principal->roles : "";
}

bool
pc_rpol_list_keep(void *arg, const json_t *item)
{
	const struct pc_rpol_filter *f = arg;
	const char *key;

	switch (f->kind) {
	case PC_CAT_TOOLS:
		return pc_policy_tool_allowed(f->policy, f->roles,
		    json_string_value(json_object_get(item, "name")),
		    json_object_get(item, "annotations"));
	case PC_CAT_PROMPTS:
		return pc_policy_item_allowed(f->policy, f->roles,
		    PC_ITEM_PROMPT, json_string_value(json_object_get(item,
		    "name")));
	case PC_CAT_RESOURCES:
		key = "uri";
		break;
	default:
		key = "uriTemplate";
		break;
	}
	return pc_policy_item_allowed(f->policy, f->roles, PC_ITEM_RESOURCE,
	    json_string_value(json_object_get(item, key)));
}

void
pc_rpol_filter_init(struct pc_rpol_filter *f, const struct pc_router *r,
    const struct pc_reqinfo *ri, enum pc_cat_kind kind)
{
	f->policy = r->cfg->policy;
	f->roles = roles_of(ri);
	f->kind = kind;
}

bool
pc_rpol_change_visible(const struct pc_router *r, const char *roles,
    const struct pc_list_change *chg)
{
	struct pc_rpol_filter f = { r->cfg->policy, roles != NULL ? roles : "",
	    chg->kind };
	uintptr_t known;
	bool seen = false;
	size_t i;
	json_t *it;

	if (chg->items == NULL)
		return true;
	/* Once per distinct set of roles: every stream of one role would
	 * otherwise scan the same items again. */
	if (chg->seen != NULL &&
	    (known = (uintptr_t)pc_map_get(chg->seen, f.roles)) != 0)
		return known == 2;
	json_array_foreach(chg->items, i, it)
		if (pc_rpol_list_keep(&f, it)) {
			seen = true;
			break;
		}
	if (chg->seen != NULL)
		(void)pc_map_put(chg->seen, f.roles, (void *)(uintptr_t)(seen ?
		    2 : 1));
	return seen;
}

unsigned
pc_rpol_views_differ(const struct pc_router *r, const struct pc_policy *pa,
    const char *ra, const struct pc_policy *pb, const char *rb)
{
	unsigned mask = 0;

	for (int k = 0; k < PC_CAT__N; k++) {
		struct pc_rpol_filter fa = { pa, ra != NULL ? ra : "",
		    (enum pc_cat_kind)k };
		struct pc_rpol_filter fb = { pb, rb != NULL ? rb : "",
		    (enum pc_cat_kind)k };
		size_t n = pc_catalog_count(r->cat, (enum pc_cat_kind)k);

		for (size_t i = 0; i < n; i++) {
			const json_t *it = pc_catalog_item(r->cat,
			    (enum pc_cat_kind)k, i, NULL);
			if (pc_rpol_list_keep(&fa, it) !=
			    pc_rpol_list_keep(&fb, it)) {
				mask |= 1u << k;
				break;
			}
		}
	}
	return mask;
}

/* Log a denial and tell the sink (the audit record). */
static void
denied(struct pc_call *c, const struct pc_reqinfo *ri, const char *reason,
    const char *what, const char *name, const char *arg)
{
	const char *who = ri != NULL && ri->principal != NULL &&
	    ri->principal->id[0] != '\0' ? ri->principal->id : "-";

	if (arg != NULL && arg[0] != '\0')
		pc_info("policy: %s denied: %s '%s', argument '%s' (%s)", who,
		    what, name, arg, reason);
	else
		pc_info("policy: %s denied: %s '%s' (%s)", who, what, name,
		    reason);
	if (c->ops->denied != NULL)
		c->ops->denied(c->sink, reason);
}

bool
pc_rpol_resource_allowed(const struct pc_router *r,
    const struct pc_reqinfo *ri, const char *uri)
{
	return pc_policy_item_allowed(r->cfg->policy, roles_of(ri),
	    PC_ITEM_RESOURCE, uri);
}

int
pc_rpol_item(struct pc_call *c, const struct pc_reqinfo *ri,
    enum pc_policy_item item, const char *name)
{
	if (pc_policy_item_allowed(c->r->cfg->policy, roles_of(ri), item, name))
		return 0;
	if (item == PC_ITEM_PROMPT)
		denied(c, ri, PC_POLICY_DENIED_PROMPT, "prompt", name, NULL);
	else
		denied(c, ri, PC_POLICY_DENIED_RESOURCE, "resource", name, NULL);
	return PC_E_NOTFOUND;
}

/* Whether the schema object s names k in its `properties`, or in those
 * of a branch of its top-level allOf, anyOf or oneOf. Other ways to admit
 * a name (patternProperties, additionalProperties, $ref) are not followed:
 * such an argument is refused (fail closed; docs/policy.md). */
static bool
declares(const json_t *s, const char *k)
{
	static const char *const comb[] = { "allOf", "anyOf", "oneOf" };
	const json_t *props = json_object_get(s, "properties");

	if (json_is_object(props) && json_object_get(props, k) != NULL)
		return true;
	for (size_t i = 0; i < sizeof(comb) / sizeof(comb[0]); i++) {
		const json_t *l = json_object_get(s, comb[i]), *b;
		size_t j;

		json_array_foreach(l, j, b) {
			props = json_object_get(b, "properties");
			if (json_is_object(props) &&
			    json_object_get(props, k) != NULL)
				return true;
		}
	}
	return false;
}

/* The first argument the tool's inputSchema does not declare, or NULL. */
static const char *
first_undeclared(const json_t *tool, json_t *args)
{
	const json_t *schema = json_object_get(tool, "inputSchema");
	const char *k;
	json_t *v;

	json_object_foreach(args, k, v) {
		if (!declares(schema, k))
			return k;
	}
	return NULL;
}

/* Cut a name copied into buf back to a whole UTF-8 character: a reply
 * that quotes it must stay valid UTF-8. */
static void
utf8_trim(char *buf)
{
	size_t n = strlen(buf), i = n;

	while (i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
		i--;			/* continuation bytes of the last char */
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)buf[i - 1];
	size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ?
	    2 : 1;
	if (n - (i - 1) < want)
		buf[i - 1] = '\0';	/* the last character was cut */
}

int
pc_rpol_tool_call(struct pc_call *c, const struct pc_reqinfo *ri,
    const char *exposed, json_t *params, struct pc_url_memo *memo,
    json_t **result)
{
	static const struct pc_principal nobody;
	const struct pc_principal *who = ri != NULL && ri->principal != NULL ?
	    ri->principal : &nobody;
	const json_t *tool = pc_catalog_find(c->r->cat, PC_CAT_TOOLS, exposed);
	json_t *args = json_object_get(params, "arguments");
	json_t *orig = NULL;
	const char *reason = NULL, *undeclared;
	char arg[PC_MAX_NAME_LEN + 1], text[PC_MAX_NAME_LEN + 96];
	int rc;

	*result = NULL;
	/* Constraints that set an argument need an object to set it in. */
	if (args == NULL && json_is_object(params)) {
		args = json_object();
		if (args == NULL || json_object_set_new(params, "arguments",
		    args) != 0)
			return PC_E_NOMEM;
	}
	/* The audit record may hold the arguments as the client sent them
	 * (a reference, when they needed no redaction): what the policy
	 * rewrites is a copy. A check that may stop for a lookup works on
	 * a copy too: it runs again from the arguments as they were. */
	if (json_is_object(args) && (pc_policy_rewrites(c->r->cfg->policy,
	    exposed) || (memo != NULL && pc_policy_resolves(c->r->cfg->policy,
	    exposed)))) {
		json_t *copy = json_deep_copy(args);

		orig = json_incref(args);
		if (copy == NULL || json_object_set_new(params, "arguments",
		    copy) != 0) {
			json_decref(orig);
			return PC_E_NOMEM;
		}
		args = copy;
	}
	undeclared = json_is_object(args) &&
	    pc_policy_constrains(c->r->cfg->policy, exposed) &&
	    pc_policy_tool_allowed(c->r->cfg->policy, who->roles, exposed,
	    json_object_get(tool, "annotations")) ?
	    first_undeclared(tool, args) : NULL;
	if (undeclared != NULL) {
		reason = PC_POLICY_UNDECLARED_ARGUMENT;
		pc_strlcpy(arg, undeclared, sizeof(arg));
		utf8_trim(arg);
		rc = PC_E_DENIED;
	} else {
		rc = pc_policy_check_call_memo(c->r->cfg->policy, who,
		    exposed, json_object_get(tool, "annotations"), args, memo,
		    &reason, arg, sizeof(arg));
	}
	if (rc == PC_E_AGAIN && orig != NULL &&
	    json_object_set(params, "arguments", orig) != 0)
		rc = PC_E_NOMEM;
	json_decref(orig);
	if (rc != PC_E_DENIED)
		return rc;
	if (strcmp(reason, PC_POLICY_DENIED_TOOL) == 0) {
		denied(c, ri, reason, "tool", exposed, NULL);
		return PC_E_NOTFOUND;
	}
	denied(c, ri, reason, "tool", exposed, arg);
	if (arg[0] != '\0')
		snprintf(text, sizeof(text), "Denied by policy (%s): argument "
		    "'%s' is not allowed", reason, arg);
	else
		snprintf(text, sizeof(text), "Denied by policy (%s): the "
		    "arguments are not allowed", reason);
	*result = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text",
	    "text", text, "isError", 1);
	return *result != NULL ? PC_E_DENIED : PC_E_NOMEM;
}
