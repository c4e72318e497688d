/*
 * Policy engine: roles → tool grants by pattern and access class, class
 * overrides, argument constraints with tenant placeholders.
 *
 * Built once from the config, then read-only. Lookups are linear scans:
 * policies hold tens to hundreds of rules, and a scan over them costs less
 * than the JSON parse of the request that triggers it.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "authz/policy.h"
#include "lib/errors.h"
#include "lib/limits.h"
#include "lib/util.h"

/* PCRE2 budget per match: a constraint regex from the operator, but run on
 * attacker strings. */
#define PC_POLICY_REGEX_MATCH_LIMIT 100000u
#define PC_POLICY_REGEX_DEPTH_LIMIT 1000u

struct rule {
	enum pc_policy_item item;
	char *role;
	char *pattern;
	unsigned mask;		/* tools only; 0 for prompts and resources */
};

struct override {
	char *pattern;
	unsigned mask;
	size_t prio;	/* exact names beat globs, longer globs beat shorter */
};

struct list {
	char **v;
	size_t n;
};

struct cons {
	enum pc_constraint_kind kind;
	char *pattern;
	char *arg;
	bool optional;
	struct list values, hosts, cmd_args;
	pcre2_code *re;
	double min, max;
	char *set_value;
};

struct pc_policy {
	struct rule *rules;
	size_t nrules;
	char defaults[PC_ROLES_MAX];	/* roles every principal holds */
	struct override *ovr;
	size_t novr;
	struct cons *cons;
	size_t ncons;
	pcre2_match_context *mctx;
};

bool
pc_policy_glob(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	/* Greedy with one backtrack point: enough for '*'-only globs. */
	while (*s != '\0') {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat == *s) {
			pat++;
			s++;
		} else if (star != NULL) {
			pat = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

static bool
mask_ok(unsigned m)
{
	return m != 0 && (m & ~(unsigned)PC_ACC_ALL) == 0;
}

static bool
name_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	return n > 0 && n <= max;
}

int
pc_policy_new(struct pc_policy **out)
{
	struct pc_policy *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (p == NULL)
		return PC_E_NOMEM;
	p->mctx = pcre2_match_context_create(NULL);
	if (p->mctx == NULL) {
		free(p);
		return PC_E_NOMEM;
	}
	pcre2_set_match_limit(p->mctx, PC_POLICY_REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(p->mctx, PC_POLICY_REGEX_DEPTH_LIMIT);
	*out = p;
	return 0;
}

static void
list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

void
pc_policy_free(struct pc_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrules; i++) {
		free(p->rules[i].role);
		free(p->rules[i].pattern);
	}
	free(p->rules);
	for (i = 0; i < p->novr; i++)
		free(p->ovr[i].pattern);
	free(p->ovr);
	for (i = 0; i < p->ncons; i++) {
		struct cons *c = &p->cons[i];

		free(c->pattern);
		free(c->arg);
		list_free(&c->values);
		list_free(&c->hosts);
		list_free(&c->cmd_args);
		pcre2_code_free(c->re);
		free(c->set_value);
	}
	free(p->cons);
	pcre2_match_context_free(p->mctx);
	free(p);
}

static char *
dup(const char *s)
{
	return pc_strndup(s, strlen(s));
}

static bool
role_ok(const char *role)
{
	return name_ok(role, PC_POLICY_MAX_ROLE) && strchr(role, ',') == NULL;
}

static int
add_rule(struct pc_policy *p, enum pc_policy_item item, const char *role,
    const char *pattern, unsigned mask)
{
	struct rule *r;

	if (p->nrules >= PC_POLICY_MAX_RULES)
		return PC_E_LIMIT;
	r = realloc(p->rules, (p->nrules + 1) * sizeof(*r));
	if (r == NULL)
		return PC_E_NOMEM;
	p->rules = r;
	r = &p->rules[p->nrules];
	r->item = item;
	r->role = dup(role);
	r->pattern = dup(pattern);
	r->mask = mask;
	if (r->role == NULL || r->pattern == NULL) {
		free(r->role);
		free(r->pattern);
		return PC_E_NOMEM;
	}
	p->nrules++;
	return 0;
}

int
pc_policy_add_rule(struct pc_policy *p, const char *role,
    const char *tool_pattern, unsigned access_mask)
{
	if (p == NULL || !role_ok(role) || !name_ok(tool_pattern,
	    PC_MAX_NAME_LEN) || !mask_ok(access_mask))
		return PC_E_INVAL;
	return add_rule(p, PC_ITEM_TOOL, role, tool_pattern, access_mask);
}

int
pc_policy_add_grant(struct pc_policy *p, const char *role,
    enum pc_policy_item item, const char *pattern)
{
	if (p == NULL || !role_ok(role) || (item != PC_ITEM_PROMPT &&
	    item != PC_ITEM_RESOURCE) || !name_ok(pattern, PC_POLICY_MAX_URL))
		return PC_E_INVAL;
	return add_rule(p, item, role, pattern, 0);
}

int
pc_policy_add_default_role(struct pc_policy *p, const char *role)
{
	size_t n;

	if (p == NULL || !role_ok(role))
		return PC_E_INVAL;
	n = strlen(p->defaults);
	if (n + 1 + strlen(role) >= sizeof(p->defaults))
		return PC_E_LIMIT;
	snprintf(p->defaults + n, sizeof(p->defaults) - n, "%s%s",
	    n ? "," : "", role);
	return 0;
}

int
pc_policy_set_class(struct pc_policy *p, const char *tool_pattern,
    unsigned access_mask)
{
	struct override *o;

	if (p == NULL || !name_ok(tool_pattern, PC_MAX_NAME_LEN) ||
	    !mask_ok(access_mask))
		return PC_E_INVAL;
	if (p->novr >= PC_POLICY_MAX_RULES)
		return PC_E_LIMIT;
	o = realloc(p->ovr, (p->novr + 1) * sizeof(*o));
	if (o == NULL)
		return PC_E_NOMEM;
	p->ovr = o;
	o = &p->ovr[p->novr];
	if ((o->pattern = dup(tool_pattern)) == NULL)
		return PC_E_NOMEM;
	o->mask = access_mask;
	o->prio = strchr(tool_pattern, '*') == NULL ? (size_t)-1 :
	    strlen(tool_pattern);
	p->novr++;
	return 0;
}

/* Only ${tenant} and ${principal}; any other "${" is a config mistake. */
static bool
template_ok(const char *t)
{
	const char *q = t;

	while ((q = strstr(q, "${")) != NULL) {
		if (strncmp(q, "${tenant}", 9) == 0)
			q += 9;
		else if (strncmp(q, "${principal}", 12) == 0)
			q += 12;
		else
			return false;
	}
	return true;
}

/* A value substituted into a root or an allow-list must be one plain name:
 * a tenant called "../other" must not reach another tenant's data. */
static bool
subst_value_ok(const char *v)
{
	if (v[0] == '\0' || strcmp(v, ".") == 0 || strcmp(v, "..") == 0 ||
	    v[0] == '~')
		return false;
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '%')
			return false;
	}
	return true;
}

/* Substitute placeholders from who; PC_E_DENIED when a needed value is
 * missing or unsafe, PC_E_LIMIT when out is too small. */
static int
subst(const char *t, const struct pc_principal *who, char *out, size_t cap)
{
	size_t o = 0, n;
	const char *v;

	while (*t != '\0') {
		if (strncmp(t, "${tenant}", 9) == 0 ||
		    strncmp(t, "${principal}", 12) == 0) {
			bool ten = t[2] == 't';

			if (who == NULL)
				return PC_E_DENIED;
			v = ten ? who->tenant : who->id;
			if (memchr(v, '\0', PC_PRINCIPAL_MAX) == NULL ||
			    !subst_value_ok(v))
				return PC_E_DENIED;
			n = strlen(v);
			t += ten ? 9 : 12;
		} else {
			v = t;
			n = 1;
			t++;
		}
		if (o + n + 1 > cap)
			return PC_E_LIMIT;
		memcpy(out + o, v, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

static int
list_copy(struct list *l, const char *const *v, size_t n, bool templ)
{
	if (n > PC_POLICY_MAX_LIST)
		return PC_E_LIMIT;
	if (n == 0)
		return 0;
	if (v == NULL)
		return PC_E_INVAL;
	l->v = calloc(n, sizeof(*l->v));
	if (l->v == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == NULL || (templ && !template_ok(v[i])))
			return PC_E_INVAL;
		if ((l->v[i] = dup(v[i])) == NULL)
			return PC_E_NOMEM;
		l->n++;
	}
	return 0;
}

/* Is the root absolute and already in normal form (so that the prefix test
 * after normalization is exact)? Placeholders count as plain names here and
 * are re-checked after substitution. */
static bool
root_ok(const char *root)
{
	char norm[PC_POLICY_MAX_PATH + 1];

	if (root[0] != '/')
		return false;
	if (pc_policy_path_normalize("/", root, strlen(root), norm,
	    sizeof(norm)) != 0)
		return false;
	return strcmp(norm, root) == 0;
}

int
pc_policy_add_constraint(struct pc_policy *p, const struct pc_constraint *in)
{
	struct cons c, *nc;
	int rc = PC_E_INVAL;
	size_t i;

	memset(&c, 0, sizeof(c));
	if (p == NULL || in == NULL || !name_ok(in->tool_pattern,
	    PC_MAX_NAME_LEN) || !name_ok(in->arg, PC_MAX_NAME_LEN))
		return PC_E_INVAL;
	if (p->ncons >= PC_POLICY_MAX_CONSTRAINTS)
		return PC_E_LIMIT;
	c.kind = in->kind;
	c.optional = in->optional;
	c.min = in->min;
	c.max = in->max;
	switch (in->kind) {
	case PC_CON_PATH:
		if (in->nvalues == 0)
			goto out;
		for (i = 0; i < in->nvalues; i++)
			if (in->values[i] == NULL || !root_ok(in->values[i]))
				goto out;
		break;
	case PC_CON_STRING:
	case PC_CON_COMMAND:
		if (in->nvalues == 0)
			goto out;
		break;
	case PC_CON_REGEX: {
		int err;
		PCRE2_SIZE off;

		if (in->pattern == NULL)
			goto out;
		c.re = pcre2_compile((PCRE2_SPTR)in->pattern,
		    PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED |
		    PCRE2_ENDANCHORED, &err, &off, NULL);
		if (c.re == NULL)
			goto out;
		break;
	}
	case PC_CON_NUMBER:
		if (!isfinite(in->min) || !isfinite(in->max) ||
		    in->min > in->max)
			goto out;
		break;
	case PC_CON_URL:
		break;
	case PC_CON_SET:
		if (in->set_value == NULL || !template_ok(in->set_value))
			goto out;
		if ((c.set_value = dup(in->set_value)) == NULL) {
			rc = PC_E_NOMEM;
			goto out;
		}
		break;
	default:
		goto out;
	}
	if ((rc = list_copy(&c.values, in->values, in->nvalues, true)) != 0 ||
	    (rc = list_copy(&c.hosts, in->hosts, in->nhosts, false)) != 0 ||
	    (rc = list_copy(&c.cmd_args, in->cmd_args, in->ncmd_args,
	    false)) != 0)
		goto out;
	c.pattern = dup(in->tool_pattern);
	c.arg = dup(in->arg);
	if (c.pattern == NULL || c.arg == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	nc = realloc(p->cons, (p->ncons + 1) * sizeof(*nc));
	if (nc == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	p->cons = nc;
	p->cons[p->ncons++] = c;
	return 0;
out:
	free(c.pattern);
	free(c.arg);
	list_free(&c.values);
	list_free(&c.hosts);
	list_free(&c.cmd_args);
	pcre2_code_free(c.re);
	free(c.set_value);
	return rc;
}

unsigned
pc_policy_tool_class(const struct pc_policy *p, const char *tool,
    json_t *annotations)
{
	const struct override *best = NULL;
	unsigned cls;
	size_t i;

	if (p != NULL && tool != NULL) {
		for (i = 0; i < p->novr; i++) {
			const struct override *o = &p->ovr[i];

			if (pc_policy_glob(o->pattern, tool) &&
			    (best == NULL || o->prio >= best->prio))
				best = o;
		}
		if (best != NULL)
			return best->mask;
	}
	/* Untrusted hints: only a JSON boolean moves a default, and only the
	 * defaults are the pessimistic ones. */
	if (json_is_true(json_object_get(annotations, "readOnlyHint"))) {
		cls = PC_ACC_READ;
	} else {
		cls = PC_ACC_WRITE;
		if (!json_is_false(json_object_get(annotations,
		    "destructiveHint")))
			cls |= PC_ACC_DESTRUCTIVE;
	}
	if (!json_is_false(json_object_get(annotations, "openWorldHint")))
		cls |= PC_ACC_OPEN_WORLD;
	return cls;
}

/* Does one of the comma-separated `roles` have a rule of kind `item` whose
 * pattern matches `name` and whose mask covers `cls`? */
static bool
roles_grant(const struct pc_policy *p, const char *roles,
    enum pc_policy_item item, const char *name, unsigned cls)
{
	const char *r, *e;
	size_t i, n;

	for (r = roles; *r != '\0'; r = *e ? e + 1 : e) {
		while (*r == ' ')
			r++;
		e = strchr(r, ',');
		if (e == NULL)
			e = r + strlen(r);
		n = (size_t)(e - r);
		while (n > 0 && r[n - 1] == ' ')
			n--;
		if (n == 0)
			continue;
		for (i = 0; i < p->nrules; i++) {
			const struct rule *ru = &p->rules[i];

			if (ru->item == item && strlen(ru->role) == n &&
			    memcmp(ru->role, r, n) == 0 &&
			    (ru->mask & cls) == cls &&
			    pc_policy_glob(ru->pattern, name))
				return true;
		}
	}
	return false;
}

static bool
granted(const struct pc_policy *p, const char *roles,
    enum pc_policy_item item, const char *name, unsigned cls)
{
	if (p == NULL || name == NULL || name[0] == '\0')
		return false;
	return (roles != NULL && roles_grant(p, roles, item, name, cls)) ||
	    roles_grant(p, p->defaults, item, name, cls);
}

bool
pc_policy_tool_allowed(const struct pc_policy *p, const char *roles,
    const char *tool, json_t *annotations)
{
	if (p == NULL || tool == NULL || tool[0] == '\0')
		return false;
	return granted(p, roles, PC_ITEM_TOOL, tool,
	    pc_policy_tool_class(p, tool, annotations));
}

/*
 * Whether s climbs out of what a glob seems to confine it to: a "." or
 * ".." segment (between any of / ? # & = : or the ends), a backslash, or
 * an escape that decodes to '.', '/' or '\'. A glob's '*' matches all of
 * these, so a grant of "fs+file:///srv/data/" plus '*' would take
 * ".../data/../../etc/passwd"
 * at face value, and the upstream resolves what the glob did not. Such a
 * name is refused wherever a pattern stands for a place (resource grants,
 * a command's arguments); no legitimate client needs one.
 */
static bool
climbs(const char *s)
{
	const char *seg = s;

	for (const char *q = s;; q++) {
		if (*q == '\\')
			return true;
		if (*q == '%' && q[1] != '\0' && q[2] != '\0' &&
		    ((q[1] == '2' && (q[2] == 'e' || q[2] == 'E' ||
		    q[2] == 'f' || q[2] == 'F')) ||
		    (q[1] == '5' && (q[2] == 'c' || q[2] == 'C'))))
			return true;
		if (*q == '\0' || strchr("/?#&=:", *q) != NULL) {
			size_t n = (size_t)(q - seg);

			if ((n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return true;
			if (*q == '\0')
				return false;
			seg = q + 1;
		}
	}
}

/*
 * A space or control byte in a URI. URL parsers (WHATWG: Node's URL,
 * which the TypeScript SDK runs on every resources/read) delete tab, LF
 * and CR anywhere and trim spaces and controls at the ends before they
 * resolve dot segments: ".\t." passes climbs() as one segment and reaches
 * the upstream as "..". No valid URI holds such a byte (RFC 3986 wants
 * them escaped).
 */
static bool
uri_has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

bool
pc_policy_item_allowed(const struct pc_policy *p, const char *roles,
    enum pc_policy_item item, const char *name)
{
	if (item == PC_ITEM_RESOURCE && name != NULL &&
	    (climbs(name) || uri_has_ctl(name)))
		return false;
	return item != PC_ITEM_TOOL && granted(p, roles, item, name, 0);
}

/* --- argument checks ---------------------------------------------------- */

static int
check_path(const struct cons *c, const struct pc_principal *who, json_t *v,
    json_t **rewritten)
{
	char root[PC_POLICY_MAX_PATH + 1], norm[PC_POLICY_MAX_PATH + 1];
	size_t i;

	*rewritten = NULL;
	if (!json_is_string(v))
		return PC_E_DENIED;
	for (i = 0; i < c->values.n; i++) {
		if (subst(c->values.v[i], who, root, sizeof(root)) != 0 ||
		    !root_ok(root))
			continue;
		if (pc_policy_path_normalize(root, json_string_value(v),
		    json_string_length(v), norm, sizeof(norm)) == 0) {
			*rewritten = json_string(norm);
			return *rewritten != NULL ? 0 : PC_E_NOMEM;
		}
	}
	return PC_E_DENIED;
}

static int
check_string(const struct cons *c, const struct pc_principal *who, json_t *v)
{
	char want[PC_POLICY_MAX_PATH + 1];
	size_t i;

	if (!json_is_string(v))
		return PC_E_DENIED;
	for (i = 0; i < c->values.n; i++) {
		if (subst(c->values.v[i], who, want, sizeof(want)) != 0)
			continue;
		/* Length first: a JSON string may hold a NUL. */
		if (strlen(want) == json_string_length(v) &&
		    memcmp(want, json_string_value(v), strlen(want)) == 0)
			return 0;
	}
	return PC_E_DENIED;
}

static int
check_regex(const struct pc_policy *p, const struct cons *c, json_t *v)
{
	pcre2_match_data *md;
	int rc;

	if (!json_is_string(v))
		return PC_E_DENIED;
	md = pcre2_match_data_create_from_pattern(c->re, NULL);
	if (md == NULL)
		return PC_E_NOMEM;
	rc = pcre2_match(c->re, (PCRE2_SPTR)json_string_value(v),
	    json_string_length(v), 0, 0, md, p->mctx);
	pcre2_match_data_free(md);
	/* Errors (match limit, bad UTF-8) deny like a mismatch. */
	return rc >= 0 ? 0 : PC_E_DENIED;
}

static int
check_number(const struct cons *c, json_t *v)
{
	double d;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		/* Compare in double only where the conversion is exact. */
		if (i > (json_int_t)1 << 53 || i < -((json_int_t)1 << 53))
			return PC_E_DENIED;
		d = (double)i;
	} else if (json_is_real(v)) {
		d = json_real_value(v);
	} else {
		return PC_E_DENIED;
	}
	if (!isfinite(d) || d < c->min || d > c->max)
		return PC_E_DENIED;
	return 0;
}

static int
check_url(const struct cons *c, json_t *v, struct pc_url_memo *memo)
{
	if (!json_is_string(v))
		return PC_E_DENIED;
	return pc_policy_url_check_memo(json_string_value(v),
	    json_string_length(v), (const char *const *)c->values.v,
	    c->values.n, (const char *const *)c->hosts.v, c->hosts.n, memo);
}

static bool
plain_string(json_t *v)
{
	return json_is_string(v) &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

static int
check_command(const struct cons *c, json_t *v)
{
	const char *cmd;
	size_t i, j, n;

	/* A string is one command name, never split on spaces: "ls; rm -rf /"
	 * is simply not in the list. */
	if (json_is_string(v)) {
		if (!plain_string(v))
			return PC_E_DENIED;
		cmd = json_string_value(v);
		for (i = 0; i < c->values.n; i++)
			if (strcmp(c->values.v[i], cmd) == 0)
				return 0;
		return PC_E_DENIED;
	}
	if (!json_is_array(v) || (n = json_array_size(v)) == 0 ||
	    !json_is_string(json_array_get(v, 0)) ||
	    check_command(c, json_array_get(v, 0)) != 0)
		return PC_E_DENIED;
	for (j = 1; j < n; j++) {
		json_t *a = json_array_get(v, j);

		if (!plain_string(a))
			return PC_E_DENIED;
		/* A climbing argument matches only a pattern naming it
		 * exactly: "/srv/" plus '*' must not take
		 * "/srv/../etc/shadow". */
		for (i = 0; i < c->cmd_args.n; i++)
			if (climbs(json_string_value(a)) ?
			    strcmp(c->cmd_args.v[i], json_string_value(a)) == 0 :
			    pc_policy_glob(c->cmd_args.v[i],
			    json_string_value(a)))
				break;
		if (i == c->cmd_args.n)
			return PC_E_DENIED;
	}
	return 0;
}

/* One value (not an array, except for COMMAND). *rw gets a replacement
 * value (PATH) or stays NULL. */
static int
check_one(const struct pc_policy *p, const struct cons *c,
    const struct pc_principal *who, json_t *v, struct pc_url_memo *memo,
    json_t **rw)
{
	*rw = NULL;
	switch (c->kind) {
	case PC_CON_PATH:
		return check_path(c, who, v, rw);
	case PC_CON_STRING:
		return check_string(c, who, v);
	case PC_CON_REGEX:
		return check_regex(p, c, v);
	case PC_CON_NUMBER:
		return check_number(c, v);
	case PC_CON_URL:
		return check_url(c, v, memo);
	default:
		return PC_E_DENIED;
	}
}

static int
check_value(const struct pc_policy *p, const struct cons *c,
    const struct pc_principal *who, json_t *args, struct pc_url_memo *memo)
{
	json_t *v = json_object_get(args, c->arg), *rw;
	size_t i;
	int rc;

	if (v == NULL)
		return c->optional ? 0 : PC_E_DENIED;
	if (c->kind == PC_CON_COMMAND)
		return check_command(c, v);
	if (!json_is_array(v)) {
		if ((rc = check_one(p, c, who, v, memo, &rw)) != 0)
			return rc;
		if (rw != NULL && json_object_set_new(args, c->arg, rw) != 0)
			return PC_E_NOMEM;
		return 0;
	}
	if (json_array_size(v) == 0)
		return c->optional ? 0 : PC_E_DENIED;
	for (i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);

		if (json_is_array(e) || json_is_object(e))
			return PC_E_DENIED;
		if ((rc = check_one(p, c, who, e, memo, &rw)) != 0)
			return rc;
		if (rw != NULL && json_array_set_new(v, i, rw) != 0)
			return PC_E_NOMEM;
	}
	return 0;
}

static int
deny(const char **reason, const char *why, char *arg, size_t arglen,
    const char *name)
{
	if (reason != NULL)
		*reason = why;
	if (arg != NULL && arglen > 0)
		pc_strlcpy(arg, name, arglen);
	return PC_E_DENIED;
}

bool
pc_policy_rewrites(const struct pc_policy *p, const char *tool)
{
	if (p == NULL || tool == NULL)
		return false;
	for (size_t i = 0; i < p->ncons; i++) {
		const struct cons *c = &p->cons[i];

		if ((c->kind == PC_CON_SET || c->kind == PC_CON_PATH) &&
		    pc_policy_glob(c->pattern, tool))
			return true;
	}
	return false;
}

bool
pc_policy_resolves(const struct pc_policy *p, const char *tool)
{
	if (p == NULL || tool == NULL)
		return false;
	for (size_t i = 0; i < p->ncons; i++)
		if (p->cons[i].kind == PC_CON_URL &&
		    pc_policy_glob(p->cons[i].pattern, tool))
			return true;
	return false;
}

bool
pc_policy_constrains(const struct pc_policy *p, const char *tool)
{
	if (p == NULL || tool == NULL)
		return false;
	for (size_t i = 0; i < p->ncons; i++)
		if (pc_policy_glob(p->cons[i].pattern, tool))
			return true;
	return false;
}

int
pc_policy_check_call(const struct pc_policy *p,
    const struct pc_principal *who, const char *tool, json_t *annotations,
    json_t *arguments, const char **reason, char *arg, size_t arglen)
{
	return pc_policy_check_call_memo(p, who, tool, annotations, arguments,
	    NULL, reason, arg, arglen);
}

int
pc_policy_check_call_memo(const struct pc_policy *p,
    const struct pc_principal *who, const char *tool, json_t *annotations,
    json_t *arguments, struct pc_url_memo *memo, const char **reason,
    char *arg, size_t arglen)
{
	char val[PC_POLICY_MAX_PATH + 1];
	size_t i;
	int rc;

	if (reason != NULL)
		*reason = NULL;
	if (arg != NULL && arglen > 0)
		arg[0] = '\0';
	if (p == NULL || who == NULL || tool == NULL ||
	    memchr(who->roles, '\0', sizeof(who->roles)) == NULL ||
	    !pc_policy_tool_allowed(p, who->roles, tool, annotations))
		return deny(reason, PC_POLICY_DENIED_TOOL, arg, arglen, "");
	if (arguments != NULL && !json_is_object(arguments))
		return deny(reason, PC_POLICY_DENIED_ARGUMENT, arg, arglen, "");

	/* Values the gateway sets come first, so checks see them. */
	for (i = 0; i < p->ncons; i++) {
		const struct cons *c = &p->cons[i];
		json_t *s;

		if (c->kind != PC_CON_SET || !pc_policy_glob(c->pattern, tool))
			continue;
		if (arguments == NULL || subst(c->set_value, who, val,
		    sizeof(val)) != 0)
			return deny(reason, PC_POLICY_DENIED_ARGUMENT, arg,
			    arglen, c->arg);
		if ((s = json_string(val)) == NULL ||
		    json_object_set_new(arguments, c->arg, s) != 0)
			return PC_E_NOMEM;
	}
	for (i = 0; i < p->ncons; i++) {
		const struct cons *c = &p->cons[i];

		if (c->kind == PC_CON_SET || !pc_policy_glob(c->pattern, tool))
			continue;
		rc = arguments == NULL ? (c->optional ? 0 : PC_E_DENIED) :
		    check_value(p, c, who, arguments, memo);
		if (rc == PC_E_NOMEM || rc == PC_E_AGAIN)
			return rc;
		if (rc != 0)
			return deny(reason, PC_POLICY_DENIED_ARGUMENT, arg,
			    arglen, c->arg);
	}
	return 0;
}
