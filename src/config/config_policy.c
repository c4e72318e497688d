/*
 * The `policy:` section: roles and their grants, tool class overrides,
 * argument constraints. It is turned into a built struct pc_policy
 * (src/authz) while the file is loaded, so that every mistake the engine
 * can find (a regex that does not compile, a root that is not absolute, an
 * unknown placeholder) is reported as file:line:col with the rest.
 *
 * The section is also kept as JSON (cfg->policy_src) so that `check
 * --print` shows the effective policy in a form the loader reads back
 * (JSON is YAML flow syntax).
 *
 * Without a `policy:` section nothing is granted: deny by default.
 */
#include "config_int.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../authz/policy.h"
#include "../lib/errors.h"
#include "../lib/util.h"
#include "../validate/schema.h"

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

/* Ceiling on strings in one list of a constraint (roots, hosts, values). */
#define POL_MAX_LIST PC_POLICY_MAX_LIST

/* --- the section as JSON, for --print ------------------------------------- */

/* A plain scalar in JSON's number grammar, as a JSON number; else NULL. */
static json_t *
plain_number(const struct cfg_node *n)
{
	const char *p = n->s;
	bool real = false;
	char *end;

	if (!n->plain || n->len == 0 || strlen(n->s) != n->len)
		return NULL;
	if (*p == '-')
		p++;
	if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] >= '0' &&
	    p[1] <= '9'))
		return NULL;
	for (; *p != '\0'; p++) {
		if (*p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
		    (*p == '-' && p != n->s))
			real = true;
		else if (!(*p >= '0' && *p <= '9'))
			return NULL;
	}
	errno = 0;
	if (!real) {
		long long v = strtoll(n->s, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_integer(v);
	}
	double d = strtod(n->s, &end);
	return errno == 0 && *end == '\0' && isfinite(d) ? json_real(d) : NULL;
}

/*
 * The tree as JSON. Scalars are strings, except inside a `schema:` value
 * (a JSON Schema fragment) where plain true/false/null and numbers take
 * their JSON types: minLength: 2 must be the number 2.
 */
static json_t *
node_json(const struct cfg_node *n, unsigned depth, bool typed)
{
	json_t *o;

	if (n == NULL || depth > CFG_MAX_DEPTH || n->kind == CN_BAD)
		return NULL;
	if (n->kind == CN_SCALAR) {
		if (cfg_node_is_null(n) && n->plain)
			return json_null();
		if (typed && n->plain && strcmp(n->s, "true") == 0)
			return json_true();
		if (typed && n->plain && strcmp(n->s, "false") == 0)
			return json_false();
		if (typed && (o = plain_number(n)) != NULL)
			return o;
		return json_stringn(n->s, n->len);
	}
	if (n->kind == CN_SEQ) {
		o = json_array();
		for (size_t i = 0; o != NULL && i < n->nkids; i++)
			if (json_array_append_new(o, node_json(n->kids[i],
			    depth + 1, typed)) != 0) {
				json_decref(o);
				return NULL;
			}
		return o;
	}
	o = json_object();
	for (size_t i = 0; o != NULL && i + 1 < n->nkids; i += 2) {
		const struct cfg_node *k = n->kids[i];
		json_t *v = k->kind != CN_SCALAR ? NULL : node_json(n->kids[i + 1],
		    depth + 1, typed || strcmp(k->s, "schema") == 0);
		if (v == NULL || json_object_setn_new(o, k->s, k->len, v) != 0) {
			json_decref(v);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* --- helpers ---------------------------------------------------------------- */

/* A mapping key's text; a non-scalar key (already refused by the YAML
 * reader in practice) reads as "" and is reported as unknown. */
static const char *
key_of(const struct cfg_node *n)
{
	return n->kind == CN_SCALAR && n->s != NULL ? n->s : "";
}

/* A scalar string at v, or NULL after an error naming `what`. */
static const char *
want_str(struct cfg_ctx *ctx, const char *where, const struct cfg_node *v,
    const char *what)
{
	if (v->kind != CN_SCALAR || cfg_node_is_null(v) ||
	    strlen(v->s) != v->len) {
		cfg_err_at(ctx, v, "%s: expected %s", where, what);
		return NULL;
	}
	return v->s;
}

/* A list of strings (a single scalar counts as a list of one). *out holds
 * pointers into the tree, valid while it lives. Returns the count, or -1
 * after an error. */
static int
str_items(struct cfg_ctx *ctx, const char *where, const struct cfg_node *v,
    const char **out, size_t cap, const char *what)
{
	size_t n = 0;

	if (v->kind == CN_SCALAR) {
		if ((out[0] = want_str(ctx, where, v, what)) == NULL)
			return -1;
		return 1;
	}
	if (v->kind != CN_SEQ || v->nkids == 0) {
		cfg_err_at(ctx, v, "%s: expected %s or a non-empty list of "
		    "them", where, what);
		return -1;
	}
	if (v->nkids > cap) {
		cfg_err_at(ctx, v, "%s: at most %zu entries", where, cap);
		return -1;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		if ((out[n] = want_str(ctx, where, v->kids[i], what)) == NULL)
			return -1;
		n++;
	}
	return (int)n;
}

static const struct {
	const char *name;
	unsigned mask;
} access_names[] = {
	{ "read", PC_ACC_READ },
	{ "write", PC_ACC_WRITE },
	{ "destructive", PC_ACC_DESTRUCTIVE },
	{ "open_world", PC_ACC_OPEN_WORLD },
	{ "all", PC_ACC_ALL },
};

/* An access class list ("read", [read, open_world], "all") → mask; 0 after
 * an error. */
static unsigned
access_mask(struct cfg_ctx *ctx, const char *where, const struct cfg_node *v)
{
	const char *items[8];
	unsigned m = 0;
	int n = str_items(ctx, where, v, items, NKEYS(items),
	    "an access class");

	for (int i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < NKEYS(access_names); j++)
			if (strcmp(items[i], access_names[j].name) == 0)
				break;
		if (j == NKEYS(access_names)) {
			cfg_err_at(ctx, v, "%s: unknown access class '%s' "
			    "(choose from read, write, destructive, open_world, "
			    "all)", where, items[i]);
			return 0;
		}
		m |= access_names[j].mask;
	}
	return n > 0 ? m : 0;
}

static void
engine_err(struct cfg_ctx *ctx, const struct cfg_node *at, const char *where,
    int rc, const char *what)
{
	if (rc == PC_E_NOMEM)
		ctx->nomem = true;
	else if (rc == PC_E_LIMIT)
		cfg_err_at(ctx, at, "%s: too many entries", where);
	else
		cfg_err_at(ctx, at, "%s: %s", where, what);
}

/* --- roles -------------------------------------------------------------------- */

/* tools: [{match, access}] or a bare pattern (access read). */
static void
role_tools(struct cfg_ctx *ctx, struct pc_policy *p, const char *role,
    const struct cfg_node *v)
{
	if (v->kind != CN_SEQ) {
		cfg_err_at(ctx, v, "roles.%s.tools: expected a list of "
		    "{match, access}", role);
		return;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		const char *match = NULL;
		unsigned mask = PC_ACC_READ;
		int rc;

		if (it->kind == CN_SCALAR) {
			match = want_str(ctx, "tools", it, "a tool pattern");
		} else if (it->kind == CN_MAP) {
			for (size_t j = 0; j + 1 < it->nkids; j += 2) {
				const char *k = key_of(it->kids[j]);
				const struct cfg_node *val = it->kids[j + 1];
				if (strcmp(k, "match") == 0)
					match = want_str(ctx, "match", val,
					    "a tool pattern such as fs__read_*");
				else if (strcmp(k, "access") == 0)
					mask = access_mask(ctx, "access", val);
				else
					cfg_err_at(ctx, it->kids[j], "roles.%s."
					    "tools: unknown key '%s'; expected "
					    "match or access", role, k);
			}
			if (match == NULL)
				cfg_err_at(ctx, it, "roles.%s.tools: each "
				    "entry needs match", role);
		} else {
			cfg_err_at(ctx, it, "roles.%s.tools: expected "
			    "{match, access}", role);
		}
		if (match == NULL || mask == 0)
			continue;
		rc = pc_policy_add_rule(p, role, match, mask);
		if (rc != 0)
			engine_err(ctx, it, "tools", rc, "bad tool pattern "
			    "(1-128 characters)");
	}
}

static void
role_items(struct cfg_ctx *ctx, struct pc_policy *p, const char *role,
    enum pc_policy_item item, const struct cfg_node *v)
{
	const char *pats[POL_MAX_LIST];
	const char *where = item == PC_ITEM_PROMPT ? "prompts" : "resources";
	int n = str_items(ctx, where, v, pats, NKEYS(pats), "a pattern");

	for (int i = 0; i < n; i++) {
		int rc = pc_policy_add_grant(p, role, item, pats[i]);
		if (rc != 0)
			engine_err(ctx, v, where, rc, "bad pattern");
	}
}

static bool
role_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PC_POLICY_MAX_ROLE)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("_.:-", *s) != NULL))
			return false;
	return true;
}

static void
k_roles(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_policy *p = obj;

	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "a mapping role: {tools, prompts, "
		    "resources}");
		return;
	}
	for (size_t i = 0; i + 1 < v->nkids; i += 2) {
		const struct cfg_node *name = v->kids[i], *body = v->kids[i + 1];
		const char *role = name->s;

		if (name->kind != CN_SCALAR || !role_name_ok(role)) {
			cfg_err_at(ctx, name, "roles: a role name is 1-64 of "
			    "[A-Za-z0-9_.:-]");
			continue;
		}
		if (cfg_node_is_null(body))
			continue;	/* a role that grants nothing */
		if (body->kind != CN_MAP) {
			cfg_err_at(ctx, body, "roles.%s: expected a mapping "
			    "{tools, prompts, resources}", role);
			continue;
		}
		for (size_t j = 0; j + 1 < body->nkids; j += 2) {
			const char *key = key_of(body->kids[j]);
			const struct cfg_node *val = body->kids[j + 1];
			if (strcmp(key, "tools") == 0)
				role_tools(ctx, p, role, val);
			else if (strcmp(key, "prompts") == 0)
				role_items(ctx, p, role, PC_ITEM_PROMPT, val);
			else if (strcmp(key, "resources") == 0)
				role_items(ctx, p, role, PC_ITEM_RESOURCE, val);
			else
				cfg_err_at(ctx, body->kids[j], "roles.%s: "
				    "unknown key '%s'; expected tools, prompts "
				    "or resources", role, key);
		}
	}
}

static void
k_default_roles(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	const char *roles[32];
	int n = str_items(ctx, k->name, v, roles, NKEYS(roles), "a role name");

	for (int i = 0; i < n; i++) {
		int rc = role_name_ok(roles[i]) ?
		    pc_policy_add_default_role(obj, roles[i]) : PC_E_INVAL;
		if (rc != 0)
			engine_err(ctx, v, k->name, rc, "a role name is 1-64 "
			    "of [A-Za-z0-9_.:-]");
	}
}

/* tool_classes: {pattern: [classes]} */
static void
k_tool_classes(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "a mapping tool-pattern: [classes]");
		return;
	}
	for (size_t i = 0; i + 1 < v->nkids; i += 2) {
		const char *pat = key_of(v->kids[i]);
		unsigned m = access_mask(ctx, k->name, v->kids[i + 1]);
		int rc;

		if (m == 0)
			continue;
		rc = pc_policy_set_class(obj, pat, m);
		if (rc != 0)
			engine_err(ctx, v->kids[i], k->name, rc,
			    "bad tool pattern (1-128 characters)");
	}
}

/* --- constraints ----------------------------------------------------------------- */

struct con_build {
	struct pc_constraint c;
	const char *values[POL_MAX_LIST];
	const char *hosts[POL_MAX_LIST];
	const char *cmd_args[POL_MAX_LIST];
	const struct cfg_node *kind_at;	/* the key that set c.kind */
	const struct cfg_node *schema;	/* `schema:` (not an engine check) */
};

static bool
set_kind(struct cfg_ctx *ctx, struct con_build *b, const struct cfg_key *k,
    const struct cfg_node *v, enum pc_constraint_kind kind)
{
	if (b->c.kind != 0 || b->schema != NULL) {
		cfg_err_at(ctx, v, "constraints: '%s' and another check in one "
		    "entry; write one entry per check", k->name);
		return false;
	}
	b->c.kind = kind;
	b->kind_at = v;
	return true;
}

static void
c_tool(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	((struct con_build *)obj)->c.tool_pattern = want_str(ctx, k->name, v,
	    "a tool pattern");
}

static void
c_arg(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	((struct con_build *)obj)->c.arg = want_str(ctx, k->name, v,
	    "an argument name");
}

static void
c_optional(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct con_build *b = obj;

	if (v->kind == CN_SCALAR && strcmp(v->s, "true") == 0)
		b->c.optional = true;
	else if (v->kind == CN_SCALAR && strcmp(v->s, "false") == 0)
		b->c.optional = false;
	else
		cfg_expected(ctx, k, v, "true or false");
}

static void
c_values(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    struct con_build *b, enum pc_constraint_kind kind, const char *what)
{
	int n;

	if (!set_kind(ctx, b, k, v, kind))
		return;
	n = str_items(ctx, k->name, v, b->values, NKEYS(b->values), what);
	b->c.values = b->values;
	b->c.nvalues = n > 0 ? (size_t)n : 0;
}

static void
c_path(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	c_values(ctx, k, v, obj, PC_CON_PATH, "an absolute root");
}

static void
c_one_of(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	c_values(ctx, k, v, obj, PC_CON_STRING, "an allowed value");
}

static void
c_pattern(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct con_build *b = obj;

	if (set_kind(ctx, b, k, v, PC_CON_REGEX))
		b->c.pattern = want_str(ctx, k->name, v, "a PCRE2 pattern");
}

static void
c_set(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct con_build *b = obj;

	if (set_kind(ctx, b, k, v, PC_CON_SET))
		b->c.set_value = want_str(ctx, k->name, v,
		    "a value such as ${tenant}");
}

static bool
parse_num(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && isfinite(*out);
}

static void
c_range(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct con_build *b = obj;
	bool have_min = false, have_max = false;

	if (!set_kind(ctx, b, k, v, PC_CON_NUMBER))
		return;
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "{min, max}");
		return;
	}
	for (size_t j = 0; j + 1 < v->nkids; j += 2) {
		const char *key = key_of(v->kids[j]);
		const struct cfg_node *val = v->kids[j + 1];
		double *dst = strcmp(key, "min") == 0 ? &b->c.min :
		    strcmp(key, "max") == 0 ? &b->c.max : NULL;
		if (dst == NULL) {
			cfg_err_at(ctx, v->kids[j], "range: unknown key '%s'; "
			    "expected min or max", key);
			continue;
		}
		if (val->kind != CN_SCALAR || !parse_num(val->s, dst))
			cfg_err_at(ctx, val, "range.%s: expected a number", key);
		else if (dst == &b->c.min)
			have_min = true;
		else
			have_max = true;
	}
	if (!have_min || !have_max)
		cfg_err_at(ctx, v, "range: needs min and max");
}

/* One list-valued key of a url: or command: mapping. */
struct sub_list {
	const char *name;	/* key */
	const char *what;	/* an item, for messages */
	const char **items;	/* con_build storage, POL_MAX_LIST long */
	const char *const **dst;
	size_t *ndst;
};

/* A mapping of lists (url: {schemes, hosts}, command: {allow, args}). */
static void
sub_lists(struct cfg_ctx *ctx, const char *where, const struct cfg_node *v,
    const struct sub_list *keys, size_t nkeys)
{
	for (size_t j = 0; j + 1 < v->nkids; j += 2) {
		const char *key = key_of(v->kids[j]);
		size_t i;
		int n;

		for (i = 0; i < nkeys && strcmp(key, keys[i].name) != 0; i++)
			;
		if (i == nkeys) {
			cfg_err_at(ctx, v->kids[j], "%s: unknown key '%s'; "
			    "expected %s or %s", where, key, keys[0].name,
			    keys[1].name);
			continue;
		}
		n = str_items(ctx, keys[i].name, v->kids[j + 1], keys[i].items,
		    POL_MAX_LIST, keys[i].what);
		*keys[i].dst = keys[i].items;
		*keys[i].ndst = n > 0 ? (size_t)n : 0;
	}
}

/* url: {schemes: [...], hosts: [...]} or null (http/https, any host) */
static void
c_url(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct con_build *b = obj;
	const struct sub_list keys[] = {
		{ "schemes", "a scheme", b->values, &b->c.values, &b->c.nvalues },
		{ "hosts", "a host pattern", b->hosts, &b->c.hosts,
		    &b->c.nhosts },
	};

	if (!set_kind(ctx, b, k, v, PC_CON_URL) || cfg_node_is_null(v))
		return;
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "{schemes, hosts}");
		return;
	}
	sub_lists(ctx, "url", v, keys, NKEYS(keys));
}

/* command: {allow: [...], args: [...]} */
static void
c_command(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct con_build *b = obj;
	const struct sub_list keys[] = {
		{ "allow", "a command", b->values, &b->c.values, &b->c.nvalues },
		{ "args", "an argument pattern", b->cmd_args, &b->c.cmd_args,
		    &b->c.ncmd_args },
	};

	if (!set_kind(ctx, b, k, v, PC_CON_COMMAND))
		return;
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "{allow, args}");
		return;
	}
	sub_lists(ctx, "command", v, keys, NKEYS(keys));
	if (b->c.nvalues == 0)
		cfg_err_at(ctx, v, "command: needs allow (the commands)");
}

/* schema: a JSON Schema fragment the argument must also fit (a tightening
 * of the upstream's own schema; the router checks it after that one). */
static void
c_schema(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct con_build *b = obj;

	if (!set_kind(ctx, b, k, v, 0))
		return;
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "a JSON Schema mapping such as {type: "
		    "string, maxLength: 500}");
		return;
	}
	b->schema = v;
	b->kind_at = v;
}

/* Compile {type: object, properties: {arg: fragment}, required: [arg]}
 * and keep it in cfg->tighten. */
static void
add_tighten(struct cfg_ctx *ctx, const struct con_build *b)
{
	struct pc_config *c = ctx->cfg;
	struct pc_schema_limits lim;
	struct pc_tighten *t;
	struct pc_schema *probe = NULL;
	json_t *frag = node_json(b->schema, 0, true), *doc = NULL;
	char err[160];
	int rc;

	if (frag == NULL) {
		ctx->nomem = true;
		return;
	}
	pc_schema_limits_default(&lim);
	lim.assert_formats = 1;
	/* The fragment alone first: its errors name places in what the
	 * operator wrote, not in the wrapper below. */
	rc = pc_schema_compile(frag, &lim, NULL, NULL, &probe, err,
	    sizeof(err));
	pc_schema_free(probe);
	if (rc != 0) {
		json_decref(frag);
		if (rc == PC_E_NOMEM)
			ctx->nomem = true;
		else
			cfg_err_at(ctx, b->schema, "constraints: schema: %s", err);
		return;
	}
	doc = json_pack("{s:s, s:{s:o}}", "type", "object", "properties",
	    b->c.arg, frag);
	if (doc != NULL && !b->c.optional)
		json_object_set_new(doc, "required", json_pack("[s]", b->c.arg));
	t = realloc(c->tighten, (c->ntighten + 1) * sizeof(*t));
	if (doc == NULL || t == NULL) {
		json_decref(doc);
		ctx->nomem = true;
		return;
	}
	c->tighten = t;
	t = &c->tighten[c->ntighten];
	memset(t, 0, sizeof(*t));
	rc = pc_schema_compile(doc, &lim, NULL, NULL, &t->schema, err,
	    sizeof(err));
	json_decref(doc);
	if (rc != 0) {
		if (rc == PC_E_NOMEM)
			ctx->nomem = true;
		else
			cfg_err_at(ctx, b->schema, "constraints: schema: %s", err);
		return;
	}
	t->tool_pattern = cfg_dup(ctx, b->c.tool_pattern);
	t->arg = cfg_dup(ctx, b->c.arg);
	c->ntighten++;
}

static const struct cfg_key con_keys[] = {
	{ "tool", VK_FN, 0, 0, 0, c_tool },
	{ "argument", VK_FN, 0, 0, 0, c_arg },
	{ "optional", VK_FN, 0, 0, 0, c_optional },
	{ "path_under", VK_FN, 0, 0, 0, c_path },
	{ "one_of", VK_FN, 0, 0, 0, c_one_of },
	{ "pattern", VK_FN, 0, 0, 0, c_pattern },
	{ "range", VK_FN, 0, 0, 0, c_range },
	{ "url", VK_FN, 0, 0, 0, c_url },
	{ "command", VK_FN, 0, 0, 0, c_command },
	{ "set", VK_FN, 0, 0, 0, c_set },
	{ "schema", VK_FN, 0, 0, 0, c_schema },
};

static const char *const con_what[] = {
	[PC_CON_PATH] = "path_under: each root must be absolute and normal "
	    "(no '..', '//', trailing '/'); placeholders are ${tenant} and "
	    "${principal}",
	[PC_CON_STRING] = "one_of: bad value or unknown placeholder (only "
	    "${tenant} and ${principal})",
	[PC_CON_REGEX] = "pattern: does not compile as a PCRE2 pattern",
	[PC_CON_NUMBER] = "range: min must not exceed max",
	[PC_CON_URL] = "url: bad scheme or host pattern",
	[PC_CON_COMMAND] = "command: bad command or argument pattern",
	[PC_CON_SET] = "set: unknown placeholder (only ${tenant} and "
	    "${principal})",
};

static void
k_constraints(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, "a list of {tool, argument, <check>}");
		return;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		const struct cfg_node *seen[CFG_MAX_KEYS];
		struct con_build *b;
		int rc;

		if (it->kind != CN_MAP) {
			cfg_expected(ctx, k, it, "a mapping {tool, argument, "
			    "<check>}");
			continue;
		}
		if ((b = calloc(1, sizeof(*b))) == NULL) {
			ctx->nomem = true;
			return;
		}
		size_t nerr = ctx->errs->n;
		cfg_walk_map(ctx, it, "constraints", con_keys, NKEYS(con_keys),
		    b, seen);
		if (ctx->errs->n != nerr) {
			/* already reported; the engine would only repeat it */
		} else if (seen[0] == NULL || seen[1] == NULL ||
		    (b->c.kind == 0 && b->schema == NULL)) {
			cfg_err_at(ctx, it, "constraints: each entry needs tool, "
			    "argument and one check (path_under, one_of, "
			    "pattern, range, url, command, set or schema)");
		} else if (b->schema != NULL) {
			add_tighten(ctx, b);
		} else if (b->c.tool_pattern != NULL && b->c.arg != NULL) {
			rc = pc_policy_add_constraint(obj, &b->c);
			if (rc != 0)
				engine_err(ctx, b->kind_at, "constraints", rc,
				    con_what[b->c.kind]);
		}
		free(b);
	}
}

static const struct cfg_key policy_keys[] = {
	{ "default_roles", VK_FN, 0, 0, 0, k_default_roles },
	{ "roles", VK_FN, 0, 0, 0, k_roles },
	{ "tool_classes", VK_FN, 0, 0, 0, k_tool_classes },
	{ "constraints", VK_FN, 0, 0, 0, k_constraints },
};

void
cfg_k_policy(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;
	const struct cfg_node *seen[CFG_MAX_KEYS];
	struct pc_policy *p = NULL;
	int rc;

	if (!cfg_want_map(ctx, k, v))
		return;
	if ((rc = pc_policy_new(&p)) != 0) {
		ctx->nomem = true;
		return;
	}
	cfg_walk_map(ctx, v, "policy", policy_keys, NKEYS(policy_keys), p,
	    seen);
	pc_policy_free(c->policy);
	c->policy = p;
	json_decref(c->policy_src);
	if ((c->policy_src = node_json(v, 0, false)) == NULL)
		ctx->nomem = true;
}
