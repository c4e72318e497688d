/*
 * JSON Schema compiler: turns a schema document into an immutable tree of
 * struct sc_node that schema_eval.c walks per call.
 *
 * Compiling up front is what lets validation be cheap and bounded: regexes
 * are compiled once with PCRE2 (UTF mode, match and depth limits applied at
 * match time), $ref targets are resolved once (a cycle of $refs becomes a
 * cycle of pointers, cut at run time by the depth and step budgets), and a
 * malformed schema is refused here rather than discovered mid-request.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "validate/schema_int.h"

/* Defaults of struct pc_schema_limits. Nesting: each level of an argument
 * costs a few schema levels (properties -> $ref -> items), and arguments
 * nest at most PC_DEF_MAX_JSON_DEPTH (64) deep. Steps: a 1 MiB argument
 * checked against a schema of ~10 keywords per value stays well under a
 * million, which costs tens of milliseconds at worst. Regex limits: PCRE2's
 * own defaults are 10 million backtracks; 100 thousand is plenty for the
 * anchored, simple patterns tool schemas use, and stops a catastrophic
 * pattern within about a millisecond. */
#define SCHEMA_DEF_MAX_DEPTH	256u
#define SCHEMA_DEF_MAX_STEPS	1000000ul
/* Far above any honest validation (microseconds to a few milliseconds for
 * a megabyte), far below a stall anyone would notice. */
#define SCHEMA_DEF_MAX_TIME_MS	50u
#define SCHEMA_DEF_MAX_ERRORS	16u
#define SCHEMA_DEF_RE_MATCH	100000u
#define SCHEMA_DEF_RE_DEPTH	1000u
#define SCHEMA_DEF_MAX_NODES	10000u
/* Memory PCRE2 may use for backtracking in one match, in KiB. */
#define SCHEMA_RE_HEAP_KIB	4096u
/* Base URI of a document that has no $id: an opaque name, never fetched. */
#define SCHEMA_ROOT_BASE	"urn:portcullis:schema:root"

void
pc_schema_limits_default(struct pc_schema_limits *l)
{
	l->max_depth = SCHEMA_DEF_MAX_DEPTH;
	l->max_steps = SCHEMA_DEF_MAX_STEPS;
	l->max_time_ms = SCHEMA_DEF_MAX_TIME_MS;
	l->max_errors = SCHEMA_DEF_MAX_ERRORS;
	l->regex_match_limit = SCHEMA_DEF_RE_MATCH;
	l->regex_depth_limit = SCHEMA_DEF_RE_DEPTH;
	l->max_schema_nodes = SCHEMA_DEF_MAX_NODES;
	l->assert_formats = 1;
}

int
sc_fail(struct sc_compiler *c, int code, const char *what)
{
	if (c->err != NULL && c->errlen > 0 && c->err[0] == '\0')
		snprintf(c->err, c->errlen, "schema %s: %s",
		    c->loclen > 0 ? c->loc : "/", what);
	return code;
}

/* Schema location for messages: push a keyword, pop by restoring length. */
static size_t
loc_push(struct sc_compiler *c, const char *kw, const char *sub)
{
	size_t old = c->loclen;
	int n = snprintf(c->loc + old, sizeof(c->loc) - old, "/%s%s%s", kw,
	    sub ? "/" : "", sub ? sub : "");

	if (n > 0)
		c->loclen = old + (size_t)n < sizeof(c->loc) ?
		    old + (size_t)n : sizeof(c->loc) - 1;
	return old;
}

static void
loc_pop(struct sc_compiler *c, size_t old)
{
	c->loclen = old;
	c->loc[old] = '\0';
}

static int compile_node(struct sc_compiler *c, json_t *v, const char *base,
    enum sc_dialect d, struct sc_node **out);

static int
sub(struct sc_compiler *c, json_t *v, const char *base, enum sc_dialect d,
    const char *kw, const char *key, struct sc_node **out)
{
	size_t old = loc_push(c, kw, key);
	int rc;

	if (!json_is_object(v) && !json_is_boolean(v))
		rc = sc_fail(c, PC_E_INVAL, "expected a schema");
	else
		rc = compile_node(c, v, base, d, out);
	loc_pop(c, old);
	return rc;
}

static int
sub_list(struct sc_compiler *c, json_t *v, const char *base,
    enum sc_dialect d, const char *kw, struct sc_list *out)
{
	json_t *e;
	size_t i;
	int rc;

	if (!json_is_array(v) || (json_array_size(v) == 0 &&
	    strcmp(kw, "prefixItems") != 0 && strcmp(kw, "items") != 0))
		return sc_fail(c, PC_E_INVAL, "expected a non-empty array");
	out->v = calloc(json_array_size(v) + 1, sizeof(*out->v));
	if (out->v == NULL)
		return PC_E_NOMEM;
	json_array_foreach(v, i, e) {
		char idx[24];
		snprintf(idx, sizeof(idx), "%zu", i);
		if ((rc = sub(c, e, base, d, kw, idx, &out->v[i])) != 0)
			return rc;
		out->n = i + 1;
	}
	return 0;
}

/* Object of name -> schema (properties, dependentSchemas). */
static int
sub_map(struct sc_compiler *c, json_t *v, const char *base,
    enum sc_dialect d, const char *kw, struct sc_named **out, size_t *n)
{
	const char *k;
	json_t *e;
	int rc;

	if (!json_is_object(v))
		return sc_fail(c, PC_E_INVAL, "expected an object");
	*out = calloc(json_object_size(v) + 1, sizeof(**out));
	if (*out == NULL)
		return PC_E_NOMEM;
	json_object_foreach(v, k, e) {
		char esc[128];
		size_t j = 0;

		/* The member's name in the location, as a JSON Pointer token
		 * (RFC 6901: '~' as ~0, '/' as ~1), cut when long. */
		for (const char *p = k; *p != '\0' && j + 3 < sizeof(esc); p++) {
			if (*p == '~' || *p == '/') {
				esc[j++] = '~';
				esc[j++] = *p == '~' ? '0' : '1';
			} else {
				esc[j++] = *p;
			}
		}
		esc[j] = '\0';
		(*out)[*n].name = k;
		if ((rc = sub(c, e, base, d, kw, esc, &(*out)[*n].node)) != 0)
			return rc;
		(*n)++;
	}
	return 0;
}

static int
get_count(struct sc_compiler *c, json_t *o, const char *kw, long long *out)
{
	json_t *v = json_object_get(o, kw);
	double x;

	*out = -1;
	if (v == NULL)
		return 0;
	if (json_is_integer(v))
		x = (double)json_integer_value(v);
	else if (json_is_real(v))
		x = json_real_value(v);
	else
		x = -1;
	if (x < 0 || !sc_is_whole(x)) {
		size_t old = loc_push(c, kw, NULL);
		int rc = sc_fail(c, PC_E_INVAL, "expected a non-negative integer");
		loc_pop(c, old);
		return rc;
	}
	*out = x > 9e18 ? (long long)9e18 : (long long)x;
	return 0;
}

static int
get_number(struct sc_compiler *c, json_t *o, const char *kw, json_t **out)
{
	json_t *v = json_object_get(o, kw);

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_number(v) || (strcmp(kw, "multipleOf") == 0 &&
	    json_number_value(v) <= 0)) {
		size_t old = loc_push(c, kw, NULL);
		int rc = sc_fail(c, PC_E_INVAL, "expected a number");
		loc_pop(c, old);
		return rc;
	}
	*out = v;
	return 0;
}

/* ECMA-262 property names PCRE2 10.42 lacks: long General_Category
 * aliases. Short names and script names pass through unchanged. */
static const char *const gc_alias[][2] = {
	{ "Letter", "L" }, { "Cased_Letter", "L&" }, { "Uppercase_Letter", "Lu" },
	{ "Lowercase_Letter", "Ll" }, { "Titlecase_Letter", "Lt" },
	{ "Modifier_Letter", "Lm" }, { "Other_Letter", "Lo" }, { "Mark", "M" },
	{ "Combining_Mark", "M" }, { "Nonspacing_Mark", "Mn" },
	{ "Spacing_Mark", "Mc" }, { "Enclosing_Mark", "Me" }, { "Number", "N" },
	{ "Decimal_Number", "Nd" }, { "digit", "Nd" }, { "Letter_Number", "Nl" },
	{ "Other_Number", "No" }, { "Punctuation", "P" }, { "punct", "P" },
	{ "Connector_Punctuation", "Pc" }, { "Dash_Punctuation", "Pd" },
	{ "Open_Punctuation", "Ps" }, { "Close_Punctuation", "Pe" },
	{ "Initial_Punctuation", "Pi" }, { "Final_Punctuation", "Pf" },
	{ "Other_Punctuation", "Po" }, { "Symbol", "S" }, { "Math_Symbol", "Sm" },
	{ "Currency_Symbol", "Sc" }, { "Modifier_Symbol", "Sk" },
	{ "Other_Symbol", "So" }, { "Separator", "Z" },
	{ "Space_Separator", "Zs" }, { "Line_Separator", "Zl" },
	{ "Paragraph_Separator", "Zp" }, { "Other", "C" }, { "Control", "Cc" },
	{ "cntrl", "Cc" }, { "Format", "Cf" }, { "Surrogate", "Cs" },
	{ "Private_Use", "Co" }, { "Unassigned", "Cn" },
};

/* ECMA-262's '.': anything but the four line terminators. PCRE2's (newline
 * LF) takes CR, U+2028 and U+2029 too, so "^.*$" passed "a\rb". */
static const char ecma_dot[] = "[^\\n\\r\\x{2028}\\x{2029}]";

/* Rewrite \p{Long_Name} and \p{gc=X} / \p{Script=X} into the forms PCRE2
 * knows, and '.' outside a class into ecma_dot. The result is at most
 * strlen(in) + (sizeof(ecma_dot) - 2) per '.' long. */
static void
regex_translate(const char *in, char *out)
{
	int cls = 0;

	while (*in != '\0') {
		const char *close, *name;
		size_t n;
		if (in[0] != '\\') {
			if (!cls && in[0] == '.') {
				memcpy(out, ecma_dot, sizeof(ecma_dot) - 1);
				out += sizeof(ecma_dot) - 1;
				in++;
				continue;
			}
			if (in[0] == '[')
				cls = 1;
			else if (in[0] == ']')
				cls = 0;
			*out++ = *in++;
			continue;
		}
		if ((in[1] != 'p' && in[1] != 'P') || in[2] != '{' ||
		    (close = strchr(in + 3, '}')) == NULL) {
			*out++ = *in++;
			if (*in != '\0')
				*out++ = *in++;
			continue;
		}
		*out++ = '\\';
		*out++ = in[1];
		*out++ = '{';
		name = in + 3;
		n = (size_t)(close - name);
		const char *eq = memchr(name, '=', n);
		if (eq != NULL) {	/* gc=Lu, Script=Greek: value only */
			n -= (size_t)(eq + 1 - name);
			name = eq + 1;
		}
		for (size_t i = 0; i < sizeof(gc_alias) / sizeof(gc_alias[0]);
		    i++)
			if (strlen(gc_alias[i][0]) == n &&
			    strncmp(gc_alias[i][0], name, n) == 0) {
				name = gc_alias[i][1];
				n = strlen(name);
				break;
			}
		memmove(out, name, n);
		out += n;
		*out++ = '}';
		in = close + 1;
	}
	*out = '\0';
}

static int
compile_regex(struct sc_compiler *c, const char *pat, pcre2_code **out)
{
	static const char head[] = "(?C1)(?:", tail[] = "\\E)";
	const uint32_t opts = PCRE2_UTF | PCRE2_DOLLAR_ENDONLY;
	int errcode;
	PCRE2_SIZE erroff;
	size_t dots = 0;
	pcre2_code *alone;
	char *tr;

	for (const char *q = pat; *q != '\0'; q++)
		dots += *q == '.';
	tr = malloc(sizeof(head) - 1 + strlen(pat) + dots *
	    (sizeof(ecma_dot) - 2) + sizeof(tail));
	if (tr == NULL)
		return PC_E_NOMEM;
	memcpy(tr, head, sizeof(head) - 1);
	regex_translate(pat, tr + sizeof(head) - 1);
	/* UTF: patterns and instances are Unicode text. No UCP: in ECMA-262
	 * \d and \w are ASCII. DOLLAR_ENDONLY: ECMA's $ does not match before
	 * a final newline. Other differences: docs/validate.md. The pattern
	 * must compile on its own, so that the group below closes it. */
	alone = pcre2_compile((PCRE2_SPTR)(tr + sizeof(head) - 1),
	    PCRE2_ZERO_TERMINATED, opts, &errcode, &erroff, NULL);
	if (alone == NULL) {
		free(tr);
		return sc_fail(c, PC_E_INVAL, "pattern does not compile");
	}
	pcre2_code_free(alone);
	/*
	 * A callout at the start, `(?C1)(?:PAT\E)`: PCRE2's match limit
	 * restarts at every start position of a search and the time budget
	 * was read only between matches, so `(a+)+$` (no `^`) over 64 KiB
	 * ran for seconds inside one pcre2_match, each position under the
	 * limit. The callout runs at each start position tried and reads the
	 * time budget (re_match). The \E ends a \Q left open. A pattern that
	 * does not survive the wrapping (start-of-pattern options, a comment
	 * running to its end) is refused: fail closed.
	 */
	memcpy(tr + strlen(tr), tail, sizeof(tail));	/* sized above */
	*out = pcre2_compile((PCRE2_SPTR)tr, PCRE2_ZERO_TERMINATED, opts,
	    &errcode, &erroff, NULL);
	free(tr);
	if (*out == NULL)
		return sc_fail(c, PC_E_INVAL, "pattern does not compile as a "
		    "search");
	return 0;
}

static int
compile_types(struct sc_compiler *c, json_t *t, unsigned *types)
{
	static const char *const names[] = { "null", "boolean", "object",
	    "array", "number", "string", "integer" };
	json_t *e;
	size_t i, n = json_is_array(t) ? json_array_size(t) : 1;

	for (i = 0; i < n; i++) {
		const char *s;
		size_t k;
		e = json_is_array(t) ? json_array_get(t, i) : t;
		s = json_string_value(e);
		for (k = 0; s != NULL && k < 7; k++)
			if (strcmp(s, names[k]) == 0)
				break;
		if (s == NULL || k == 7)
			return sc_fail(c, PC_E_INVAL, "unknown type");
		*types |= 1u << k;
	}
	return 0;
}

static int
compile_patterns(struct sc_compiler *c, struct sc_node *n, json_t *pp,
    const char *base, enum sc_dialect d)
{
	const char *k;
	json_t *e;
	int rc;

	if (!json_is_object(pp))
		return sc_fail(c, PC_E_INVAL, "expected an object");
	n->pats = calloc(json_object_size(pp) + 1, sizeof(*n->pats));
	if (n->pats == NULL)
		return PC_E_NOMEM;
	json_object_foreach(pp, k, e) {
		struct sc_pattern *p = &n->pats[n->npats];
		if ((rc = compile_regex(c, k, &p->re)) != 0)
			return rc;
		n->npats++;
		if ((rc = sub(c, e, base, d, "patternProperties", NULL,
		    &p->node)) != 0)
			return rc;
	}
	return 0;
}

static int
named_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sc_named *)a)->name,
	    ((const struct sc_named *)b)->name);
}

/* A dependency table for the entries of v, made once per node. */
static int
dep_table(struct sc_compiler *c, struct sc_named **t, json_t *v)
{
	if (*t != NULL)
		return sc_fail(c, PC_E_INVAL, "dependencies twice");
	*t = calloc(json_object_size(v) + 1, sizeof(**t));
	return *t != NULL ? 0 : PC_E_NOMEM;
}

static int
compile_deps(struct sc_compiler *c, struct sc_node *n, json_t *v,
    const char *base, enum sc_dialect d, int want_req, int want_sch)
{
	const char *k;
	json_t *e;
	int rc;

	if (!json_is_object(v))
		return sc_fail(c, PC_E_INVAL, "expected an object");
	/* Called once per keyword (2020-12 has two, draft 7 one for both):
	 * each call makes only its own table, or the second would replace
	 * the first's, its count kept, and the rules read past the end. */
	if ((want_req && (rc = dep_table(c, &n->dep_req, v)) != 0) ||
	    (want_sch && (rc = dep_table(c, &n->dep_sch, v)) != 0))
		return rc;
	json_object_foreach(v, k, e) {
		if (json_is_array(e) && want_req) {
			n->dep_req[n->ndep_req].name = k;
			n->dep_req[n->ndep_req++].names = e;
		} else if ((json_is_object(e) || json_is_boolean(e)) &&
		    want_sch) {
			n->dep_sch[n->ndep_sch].name = k;
			if ((rc = sub(c, e, base, d, "dependentSchemas", k,
			    &n->dep_sch[n->ndep_sch].node)) != 0)
				return rc;
			n->ndep_sch++;
		} else
			return sc_fail(c, PC_E_INVAL, "bad dependency");
	}
	return 0;
}

static int
compile_keywords(struct sc_compiler *c, struct sc_node *n, json_t *o,
    const char *base, enum sc_dialect d)
{
	json_t *v;
	const char *s;
	int rc;

	if ((v = json_object_get(o, "$ref")) != NULL) {
		json_t *target;
		if ((s = json_string_value(v)) == NULL)
			return sc_fail(c, PC_E_INVAL, "$ref is not a string");
		if ((rc = sc_ref_target(c, base, s, d, &target)) != 0)
			return rc;
		struct sc_info *ti = sc_info_get(c, target);
		if ((rc = sub(c, target, ti ? ti->base : base,
		    ti ? ti->dialect : d, "$ref", NULL, &n->ref)) != 0)
			return rc;
		if (d == SC_D7)
			return 0;	/* draft-07: siblings of $ref ignored */
	}
	if ((v = json_object_get(o, "type")) != NULL &&
	    (rc = compile_types(c, v, &n->types)) != 0)
		return rc;
	if ((v = json_object_get(o, "enum")) != NULL) {
		if (!json_is_array(v))
			return sc_fail(c, PC_E_INVAL, "enum is not an array");
		n->enum_v = v;
	}
	if ((v = json_object_get(o, "const")) != NULL) {
		n->const_v = v;
		n->has_const = 1;
	}
	if ((v = json_object_get(o, "required")) != NULL) {
		if (!json_is_array(v))
			return sc_fail(c, PC_E_INVAL, "required is not an array");
		n->required = v;
	}
	if ((v = json_object_get(o, "properties")) != NULL) {
		if ((rc = sub_map(c, v, base, d, "properties", &n->props,
		    &n->nprops)) != 0)
			return rc;
		/* Sorted by name: each instance key is looked up by bsearch
		 * (sc_prop_find), not compared with every name — a million
		 * `"kN": true` are one compiled node but a million strcmp. */
		qsort(n->props, n->nprops, sizeof(*n->props), named_cmp);
	}
	if ((v = json_object_get(o, "patternProperties")) != NULL &&
	    (rc = compile_patterns(c, n, v, base, d)) != 0)
		return rc;
	if ((v = json_object_get(o, "additionalProperties")) != NULL &&
	    (rc = sub(c, v, base, d, "additionalProperties", NULL,
	    &n->addl_props)) != 0)
		return rc;
	if ((v = json_object_get(o, "propertyNames")) != NULL &&
	    (rc = sub(c, v, base, d, "propertyNames", NULL,
	    &n->prop_names)) != 0)
		return rc;
	if (d == SC_D2020) {
		if ((v = json_object_get(o, "prefixItems")) != NULL &&
		    (rc = sub_list(c, v, base, d, "prefixItems",
		    &n->prefix)) != 0)
			return rc;
		if ((v = json_object_get(o, "items")) != NULL &&
		    (rc = sub(c, v, base, d, "items", NULL,
		    &n->items_rest)) != 0)
			return rc;
		if ((v = json_object_get(o, "dependentRequired")) != NULL &&
		    (rc = compile_deps(c, n, v, base, d, 1, 0)) != 0)
			return rc;
		if ((v = json_object_get(o, "dependentSchemas")) != NULL &&
		    (rc = compile_deps(c, n, v, base, d, 0, 1)) != 0)
			return rc;
		if ((rc = get_count(c, o, "minContains", &n->min_contains)) ||
		    (rc = get_count(c, o, "maxContains", &n->max_contains)))
			return rc;
	} else {
		v = json_object_get(o, "items");
		if (json_is_array(v)) {
			if ((rc = sub_list(c, v, base, d, "items",
			    &n->prefix)) != 0)
				return rc;
			if ((v = json_object_get(o, "additionalItems")) &&
			    (rc = sub(c, v, base, d, "additionalItems", NULL,
			    &n->items_rest)) != 0)
				return rc;
		} else if (v != NULL && (rc = sub(c, v, base, d, "items", NULL,
		    &n->items_rest)) != 0)
			return rc;
		if ((v = json_object_get(o, "dependencies")) != NULL &&
		    (rc = compile_deps(c, n, v, base, d, 1, 1)) != 0)
			return rc;
	}
	if ((v = json_object_get(o, "contains")) != NULL &&
	    (rc = sub(c, v, base, d, "contains", NULL, &n->contains)) != 0)
		return rc;
	if ((rc = get_count(c, o, "minItems", &n->min_items)) ||
	    (rc = get_count(c, o, "maxItems", &n->max_items)) ||
	    (rc = get_count(c, o, "minLength", &n->min_len)) ||
	    (rc = get_count(c, o, "maxLength", &n->max_len)) ||
	    (rc = get_count(c, o, "minProperties", &n->min_props)) ||
	    (rc = get_count(c, o, "maxProperties", &n->max_props)))
		return rc;
	n->unique = json_is_true(json_object_get(o, "uniqueItems"));
	if ((rc = get_number(c, o, "minimum", &n->minimum)) ||
	    (rc = get_number(c, o, "maximum", &n->maximum)) ||
	    (rc = get_number(c, o, "exclusiveMinimum", &n->xminimum)) ||
	    (rc = get_number(c, o, "exclusiveMaximum", &n->xmaximum)) ||
	    (rc = get_number(c, o, "multipleOf", &n->multiple_of)))
		return rc;
	if ((v = json_object_get(o, "pattern")) != NULL) {
		if ((s = json_string_value(v)) == NULL)
			return sc_fail(c, PC_E_INVAL, "pattern is not a string");
		size_t old = loc_push(c, "pattern", NULL);
		rc = compile_regex(c, s, &n->pattern);
		loc_pop(c, old);
		if (rc != 0)
			return rc;
	}
	if ((v = json_object_get(o, "allOf")) != NULL &&
	    (rc = sub_list(c, v, base, d, "allOf", &n->all)) != 0)
		return rc;
	if ((v = json_object_get(o, "anyOf")) != NULL &&
	    (rc = sub_list(c, v, base, d, "anyOf", &n->any)) != 0)
		return rc;
	if ((v = json_object_get(o, "oneOf")) != NULL &&
	    (rc = sub_list(c, v, base, d, "oneOf", &n->one)) != 0)
		return rc;
	if ((v = json_object_get(o, "not")) != NULL &&
	    (rc = sub(c, v, base, d, "not", NULL, &n->not_s)) != 0)
		return rc;
	if ((v = json_object_get(o, "if")) != NULL) {
		if ((rc = sub(c, v, base, d, "if", NULL, &n->if_s)) != 0)
			return rc;
		if ((v = json_object_get(o, "then")) != NULL &&
		    (rc = sub(c, v, base, d, "then", NULL, &n->then_s)) != 0)
			return rc;
		if ((v = json_object_get(o, "else")) != NULL &&
		    (rc = sub(c, v, base, d, "else", NULL, &n->else_s)) != 0)
			return rc;
	}
	if (c->s->lim.assert_formats &&
	    (s = json_string_value(json_object_get(o, "format"))) != NULL)
		n->format = sc_format_lookup(s);
	return 0;
}

static int
compile_node(struct sc_compiler *c, json_t *v, const char *base,
    enum sc_dialect d, struct sc_node **out)
{
	struct sc_info *info = sc_info_get(c, v);
	struct sc_node *n;
	int rc;

	char *memo_key = NULL;

	/* Compiled already (a $ref target, or a cycle back to an ancestor):
	 * share the node. */
	if (info != NULL && info->node != NULL) {
		*out = info->node;
		return 0;
	}
	/* Not in the index (a $ref pointer into an unknown keyword): keyed by
	 * address and context instead. Compiled anew at every reference, a
	 * doubling chain of such refs made thousands of copies, each running
	 * pcre2_compile again on the event loop. */
	if (info == NULL && json_is_object(v)) {
		size_t kl = strlen(base != NULL ? base : "") + 48;

		if ((memo_key = malloc(kl)) == NULL)
			return PC_E_NOMEM;
		snprintf(memo_key, kl, "%p %d %s", (void *)v, (int)d,
		    base != NULL ? base : "");
		if ((*out = pc_map_get(c->memo, memo_key)) != NULL) {
			free(memo_key);
			return 0;
		}
	}
	if (c->s->nnodes >= c->s->lim.max_schema_nodes) {
		free(memo_key);
		return sc_fail(c, PC_E_LIMIT, "too many subschemas");
	}
	if (c->depth >= 2 * SC_MAX_NEST) {
		free(memo_key);
		return sc_fail(c, PC_E_LIMIT, "schema nested too deeply");
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL || (memo_key != NULL &&
	    pc_map_put(c->memo, memo_key, n) != 0)) {
		free(memo_key);
		free(n);
		return PC_E_NOMEM;
	}
	free(memo_key);
	n->next_alloc = c->s->nodes;
	c->s->nodes = n;
	c->s->nnodes++;
	n->min_contains = n->max_contains = -1;
	n->min_items = n->max_items = n->min_len = n->max_len = -1;
	n->min_props = n->max_props = -1;
	*out = n;
	if (info != NULL) {
		info->node = n;
		base = info->base;
		d = info->dialect;
	}
	if (json_is_boolean(v)) {
		n->boolean = json_is_true(v);
		return 0;
	}
	n->boolean = -1;
	c->depth++;
	rc = compile_keywords(c, n, v, base, d);
	c->depth--;
	return rc;
}

static void
node_free(struct sc_node *n)
{
	free(n->props);
	for (size_t i = 0; i < n->npats; i++)
		pcre2_code_free(n->pats[i].re);
	free(n->pats);
	free(n->prefix.v);
	pcre2_code_free(n->pattern);
	free(n->all.v);
	free(n->any.v);
	free(n->one.v);
	free(n->dep_req);
	free(n->dep_sch);
	free(n);
}

void
pc_schema_free(struct pc_schema *s)
{
	struct sc_node *n, *next;

	if (s == NULL)
		return;
	for (n = s->nodes; n != NULL; n = next) {
		next = n->next_alloc;
		node_free(n);
	}
	pcre2_match_context_free(s->mctx);
	json_decref(s->docs);
	free(s);
}

unsigned
pc_schema_max_errors(const struct pc_schema *s)
{
	return s->lim.max_errors;
}

int
pc_schema_compile(json_t *schema, const struct pc_schema_limits *lim,
    pc_schema_resolve_fn resolve, void *arg, struct pc_schema **out,
    char *err, size_t errlen)
{
	struct sc_compiler c;
	struct pc_schema *s;
	json_t *doc;
	enum sc_dialect d;
	int rc;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&c, 0, sizeof(c));
	c.err = err;
	c.errlen = errlen;
	c.resolve = resolve;
	c.arg = arg;
	if (!json_is_object(schema) && !json_is_boolean(schema))
		return sc_fail(&c, PC_E_INVAL, "not a schema");
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PC_E_NOMEM;
	c.s = s;
	if (lim != NULL)
		s->lim = *lim;
	else
		pc_schema_limits_default(&s->lim);
	if (s->lim.max_errors == 0)
		s->lim.max_errors = 1;
	/* A private copy: the caller may change or free its document, and
	 * the compiled tree borrows strings and values from ours. */
	doc = json_deep_copy(schema);
	s->docs = json_array();
	s->mctx = pcre2_match_context_create(NULL);
	c.info = pc_map_new();
	c.uris = pc_map_new();
	c.memo = pc_map_new();
	if (doc == NULL || s->docs == NULL || s->mctx == NULL ||
	    c.info == NULL || c.uris == NULL || c.memo == NULL ||
	    json_array_append_new(s->docs, doc) != 0) {
		rc = PC_E_NOMEM;
		goto out;
	}
	pcre2_set_match_limit(s->mctx, s->lim.regex_match_limit);
	pcre2_set_depth_limit(s->mctx, s->lim.regex_depth_limit);
	pcre2_set_heap_limit(s->mctx, SCHEMA_RE_HEAP_KIB);
	d = sc_dialect_of(doc, SC_D2020);
	/* The root is known by the default base and by its $id (indexed
	 * like any other), so "#..." refs work either way. */
	if ((rc = sc_index(&c, doc, SCHEMA_ROOT_BASE, d)) != 0)
		goto out;
	rc = compile_node(&c, doc, SCHEMA_ROOT_BASE, d, &s->root);
out:
	sc_compiler_release(&c);
	if (rc != 0) {
		pc_schema_free(s);
		return rc;
	}
	*out = s;
	return 0;
}
