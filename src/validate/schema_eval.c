/*
 * JSON Schema evaluation: walks a compiled tree against one instance.
 *
 * Cost is bounded three ways: every keyword evaluated is a step (and so is
 * every pair compared by uniqueItems and every enum member tried), nesting
 * of subschema applications is capped by max_depth (a $ref cycle that makes
 * no progress in the instance hits it at once), and regexes run under PCRE2
 * match, depth and heap limits. Running out of any budget fails the whole
 * call with PC_E_LIMIT: an exhausted budget must never turn a "not" or a
 * oneOf into a pass.
 *
 * Errors name the instance location and the keyword. They never quote an
 * instance value; property names appear only as path segments.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "validate/schema_int.h"

/* Nesting of sc_json_equal; deeper values are treated as a budget failure. */
#define SC_EQUAL_MAX_DEPTH 512u

struct vctx {
	const struct pc_schema *s;
	unsigned long steps;
	unsigned depth;
	int limit;			/* a budget ran out: fail closed */
	unsigned quiet;			/* >0: inside anyOf/oneOf/not/if/... */
	struct pc_schema_error *errs;
	unsigned nerrs, maxerrs, failed;
	pcre2_match_data *md;
	pcre2_match_context *mctx;	/* the schema's, copied at the first
					 * match, with re_callout */
	unsigned long re_positions;	/* start positions tried (callout) */
	int64_t deadline_ns;		/* thread CPU time; 0: not started */
	unsigned long matches;		/* regex matches run so far */
	char path[256];
	size_t pathlen;
};

static void
add_error(struct vctx *v, const char *kw, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
add_error(struct vctx *v, const char *kw, const char *fmt, ...)
{
	struct pc_schema_error *e;
	va_list ap;

	v->failed = 1;
	if (v->quiet > 0 || v->errs == NULL || v->nerrs >= v->maxerrs)
		return;
	e = &v->errs[v->nerrs++];
	pc_strlcpy(e->path, v->pathlen > 0 ? v->path : "", sizeof(e->path));
	pc_strlcpy(e->keyword, kw, sizeof(e->keyword));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* Once nothing more will be reported, the first failure decides. */
static int
stop_early(const struct vctx *v)
{
	return v->limit || v->quiet > 0 || v->errs == NULL ||
	    v->nerrs >= v->maxerrs;
}

static void
limit_hit(struct vctx *v, const char *what)
{
	if (v->limit)
		return;
	unsigned q = v->quiet;
	v->quiet = 0;
	if (v->errs != NULL && v->nerrs >= v->maxerrs)
		v->nerrs = v->maxerrs - 1;	/* the budget error must show */
	add_error(v, "limit", "%s budget exhausted", what);
	v->quiet = q;
	v->limit = 1;
}

/* The thread's CPU time: a validation preempted on a loaded host is not
 * charged for the time it did not run. */
static int64_t
cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/*
 * The time budget: steps bound the keywords evaluated, but not what one
 * regex match costs below PCRE2's per-match limit, and places where a
 * failed match is not a failure (contains, patternProperties, anyOf, not)
 * let a caller pay just under that limit thousands of times. The clock
 * (the thread's CPU time, a system call) is read after every 8th regex
 * match and every 1024 steps: 8 matches cost at most 8 ms over. It starts
 * at the first reading, so that the many small validations that never
 * get there cost no system call (what runs before it is that bounded).
 */
static int
over_time(struct vctx *v)
{
	int64_t now;

	if (v->limit)
		return -1;
	if (v->s->lim.max_time_ms == 0)
		return 0;
	now = cpu_ns();
	if (v->deadline_ns == 0) {
		v->deadline_ns = now + (int64_t)v->s->lim.max_time_ms * 1000000;
		return 0;
	}
	if (now < v->deadline_ns)
		return 0;
	limit_hit(v, "time");
	return -1;
}

static int
step(struct vctx *v, unsigned long n)
{
	unsigned long before = v->steps;

	v->steps += n;
	if (v->steps > v->s->lim.max_steps) {
		limit_hit(v, "step");
		return -1;
	}
	if ((before >> 10) != (v->steps >> 10))
		return over_time(v);
	return 0;
}

/* Work proportional to a string's length (counting, scanning, matching)
 * costs a step per SC_STEP_BYTES: one step per string whatever its length
 * let a chain of subschemas scan a megabyte thousands of times. */
#define SC_STEP_BYTES 16u

static int
step_bytes(struct vctx *v, size_t len)
{
	return len >= SC_STEP_BYTES ? step(v, len / SC_STEP_BYTES) : 0;
}

/* Path segment push (RFC 6901 escaping); pop by restoring the length. A
 * path that would overflow is cut at the last whole segment and marked. */
static size_t
path_push(struct vctx *v, const char *seg)
{
	size_t old = v->pathlen, n = old;

	/* Room for "/..." and the NUL whatever happens below. */
	if (old + 5 > sizeof(v->path))
		return old;
	v->path[n++] = '/';
	for (const char *p = seg; *p != '\0'; p++) {
		const char *rep = *p == '~' ? "~0" : *p == '/' ? "~1" : NULL;
		size_t k = rep ? 2 : 1;
		if (n + k + 4 >= sizeof(v->path)) {
			memcpy(v->path + old, "/...", 4);
			n = old + 4;
			break;
		}
		if (rep)
			memcpy(v->path + n, rep, 2);
		else
			v->path[n] = *p;
		n += k;
	}
	v->path[n] = '\0';
	v->pathlen = n;
	return old;
}

static size_t
path_push_index(struct vctx *v, size_t i)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%zu", i);
	return path_push(v, buf);
}

static void
path_pop(struct vctx *v, size_t old)
{
	v->pathlen = old;
	v->path[old] = '\0';
}

/* Whole-number test without libm (the gateway does not link it): every
 * double of magnitude 2^53 or more is whole. */
int
sc_is_whole(double d)
{
	if (!isfinite(d))
		return 0;
	if (d >= 9007199254740992.0 || d <= -9007199254740992.0)
		return 1;
	return d == (double)(long long)d;
}

static int
is_integral(const json_t *x)
{
	if (json_is_integer(x))
		return 1;
	return json_is_real(x) && sc_is_whole(json_real_value(x));
}

/* An integer against a double, exactly: converted to double, an integer
 * past 2^53 rounds (9007199254740993 became ...992.0 and passed a maximum
 * of 9007199254740992.0). */
static int
int_real_cmp(json_int_t i, double d)
{
	if (d >= 9223372036854775808.0)		/* 2^63: above every int64 */
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	/* |d| < 2^63: its whole part is an exact int64, its fraction exact. */
	json_int_t t = (json_int_t)d;
	double frac = d - (double)t;

	if (i != t)
		return (i > t) - (i < t);
	return (frac < 0) - (frac > 0);
}

/* Compare two numbers exactly (integers as integers, an integer against a
 * real without rounding it). */
static int
num_cmp(const json_t *a, const json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);
		return (x > y) - (x < y);
	}
	if (json_is_integer(a))
		return int_real_cmp(json_integer_value(a), json_real_value(b));
	if (json_is_integer(b))
		return -int_real_cmp(json_integer_value(b), json_real_value(a));
	double x = json_number_value(a), y = json_number_value(b);
	return (x > y) - (x < y);
}

/* sc_json_equal counting the pairs of values it compared in *nodes. */
static int
json_eq(const json_t *a, const json_t *b, unsigned depth, size_t *nodes)
{
	++*nodes;
	if (depth > SC_EQUAL_MAX_DEPTH)
		return -1;
	if (json_is_number(a) && json_is_number(b))
		return num_cmp(a, b) == 0;
	if (json_typeof(a) != json_typeof(b))
		return 0;
	if (json_is_array(a)) {
		size_t n = json_array_size(a);
		if (n != json_array_size(b))
			return 0;
		for (size_t i = 0; i < n; i++) {
			int r = json_eq(json_array_get(a, i),
			    json_array_get(b, i), depth + 1, nodes);
			if (r != 1)
				return r;
		}
		return 1;
	}
	if (json_is_object(a)) {
		const char *k;
		json_t *x;
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, k, x) {
			json_t *y = json_object_get(b, k);
			int r = y ? json_eq(x, y, depth + 1, nodes) : 0;
			if (r != 1)
				return r;
		}
		return 1;
	}
	return json_equal(a, b);
}

int
sc_json_equal(const json_t *a, const json_t *b, unsigned depth)
{
	size_t nodes = 0;

	return json_eq(a, b, depth, &nodes);
}

/* Equal, with the comparison's work charged to the step budget: one step
 * per pair of values compared, so that uniqueItems over large arrays of
 * arrays (a million pairs of hundreds of items each) cannot hold the loop
 * for seconds on a budget that counted only pairs. */
static int
equal(struct vctx *v, const json_t *a, const json_t *b)
{
	size_t nodes = 0;
	int r = json_eq(a, b, 0, &nodes);

	if (r < 0) {
		limit_hit(v, "depth");
		return 0;
	}
	if (nodes > 1 && step(v, nodes - 1) != 0)
		return 0;
	return r;
}

static int eval(struct vctx *v, const struct sc_node *n, json_t *x);

/* Evaluate a subschema whose errors are not reported (a branch). */
static int
eval_quiet(struct vctx *v, const struct sc_node *n, json_t *x)
{
	int ok;

	v->quiet++;
	ok = eval(v, n, x);
	v->quiet--;
	return ok && !v->limit;
}

static size_t
utf8_len(const char *s, size_t n)
{
	size_t cps = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			cps++;
	return cps;
}

/* Start positions a search tries between two readings of the clock. */
#define RE_POSITIONS_PER_CHECK 64u

/*
 * The callout at the start of every compiled pattern (compile_regex): one
 * call per start position tried. The match limit bounds one position; the
 * time budget, read here, bounds them all, inside a single pcre2_match.
 */
static int
re_callout(pcre2_callout_block *cb, void *data)
{
	struct vctx *v = data;

	(void)cb;
	if ((++v->re_positions % RE_POSITIONS_PER_CHECK) == 0 &&
	    over_time(v) != 0)
		return PCRE2_ERROR_CALLOUT;	/* abort the match */
	return 0;
}

/* 1 match, 0 no match, -1 budget ran out. */
static int
re_match(struct vctx *v, pcre2_code *re, const char *s, size_t n)
{
	int rc;

	if (step_bytes(v, n) != 0)
		return -1;
	if (v->mctx == NULL) {
		if ((v->mctx = pcre2_match_context_copy(v->s->mctx)) == NULL) {
			limit_hit(v, "regex");	/* out of memory: fail closed */
			return -1;
		}
		pcre2_set_callout(v->mctx, re_callout, v);
	}
	rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, v->md, v->mctx);
	if ((++v->matches & 7) == 0 && over_time(v) != 0)
		return -1;
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	/* Match, depth or heap limit, the time budget (the callout), or any
	 * other failure: fail closed. */
	limit_hit(v, "regex");
	return -1;
}

static const char *const type_names[] = { "null", "boolean", "object",
    "array", "number", "string", "integer" };

static int
check_type(struct vctx *v, const struct sc_node *n, json_t *x)
{
	unsigned t;
	char want[96] = "";

	switch (json_typeof(x)) {
	case JSON_NULL: t = SC_T_NULL; break;
	case JSON_TRUE: case JSON_FALSE: t = SC_T_BOOL; break;
	case JSON_OBJECT: t = SC_T_OBJECT; break;
	case JSON_ARRAY: t = SC_T_ARRAY; break;
	case JSON_STRING: t = SC_T_STRING; break;
	default: t = SC_T_NUMBER | (is_integral(x) ? SC_T_INTEGER : 0); break;
	}
	if (n->types & t)
		return 1;
	for (size_t i = 0; i < 7; i++)
		if (n->types & (1u << i)) {
			size_t len = strlen(want);
			snprintf(want + len, sizeof(want) - len, "%s%s",
			    len ? " or " : "", type_names[i]);
		}
	add_error(v, "type", "expected %s", want);
	return 0;
}

static int
check_number(struct vctx *v, const struct sc_node *n, json_t *x)
{
	int ok = 1;

	if (n->minimum && num_cmp(x, n->minimum) < 0) {
		add_error(v, "minimum", "below the minimum");
		ok = 0;
	}
	if (n->maximum && num_cmp(x, n->maximum) > 0) {
		add_error(v, "maximum", "above the maximum");
		ok = 0;
	}
	if (n->xminimum && num_cmp(x, n->xminimum) <= 0) {
		add_error(v, "exclusiveMinimum", "not above the exclusive minimum");
		ok = 0;
	}
	if (n->xmaximum && num_cmp(x, n->xmaximum) >= 0) {
		add_error(v, "exclusiveMaximum", "not below the exclusive maximum");
		ok = 0;
	}
	if (n->multiple_of) {
		int mult;
		double dv = json_number_value(n->multiple_of);
		/* A whole real divisor within int64 (2.0) is an integer one:
		 * in doubles, an integer past 2^53 rounds to a multiple. */
		int whole_div = json_is_integer(n->multiple_of) ||
		    (dv == floor(dv) && dv < 9223372036854775808.0);
		if (json_is_integer(x) && whole_div) {
			json_int_t a = json_integer_value(x);
			json_int_t b = json_is_integer(n->multiple_of) ?
			    json_integer_value(n->multiple_of) : (json_int_t)dv;
			/* b > 0 (checked at compile), so no INT_MIN % -1. */
			mult = a % b == 0;
		} else {
			double xv = json_number_value(x);
			double d = json_number_value(n->multiple_of);
			double q = xv / d;
			/* Decimal divisors (0.01) are not exact in binary:
			 * accept a quotient within a relative epsilon of an
			 * integer. An infinite quotient is no multiple. A
			 * whole divisor is decided exactly (fmod is exact):
			 * past a quotient of 2^53 every double is whole, and
			 * taking that as "a multiple" let 1e17 pass for a
			 * multiple of 3. A fractional divisor past 2^53 stays
			 * accepted (any integer is a multiple of 1e-8, and
			 * binary cannot say so exactly). */
			double aq = q < 0 ? -q : q, dist;
			if (!isfinite(q))
				mult = 0;
			else if (d == floor(d))
				mult = fmod(xv, d) == 0.0;
			else if (aq >= 9007199254740992.0)
				mult = 1;
			else {
				dist = aq - (double)(long long)(aq + 0.5);
				dist = dist < 0 ? -dist : dist;
				mult = dist <= 1e-9 * (aq > 1.0 ? aq : 1.0);
			}
		}
		if (!mult) {
			add_error(v, "multipleOf", "not a multiple of the divisor");
			ok = 0;
		}
	}
	return ok;
}

static int
check_string(struct vctx *v, const struct sc_node *n, json_t *x)
{
	const char *s = json_string_value(x);
	size_t len = json_string_length(x), cps = 0;
	int ok = 1, r;

	if ((n->min_len >= 0 || n->max_len >= 0 || n->format != SC_F_NONE) &&
	    step_bytes(v, len) != 0)
		return 0;
	if (n->min_len >= 0 || n->max_len >= 0)
		cps = utf8_len(s, len);
	if (n->min_len >= 0 && cps < (unsigned long long)n->min_len) {
		add_error(v, "minLength", "shorter than %lld characters",
		    n->min_len);
		ok = 0;
	}
	if (n->max_len >= 0 && cps > (unsigned long long)n->max_len) {
		add_error(v, "maxLength", "longer than %lld characters",
		    n->max_len);
		ok = 0;
	}
	if (n->pattern && (ok || !stop_early(v))) {
		if ((r = re_match(v, n->pattern, s, len)) < 0)
			return 0;
		if (r == 0) {
			add_error(v, "pattern", "does not match the pattern");
			ok = 0;
		}
	}
	if (n->format != SC_F_NONE && !sc_format_valid(n->format, s, len)) {
		add_error(v, "format", "not a valid value of its format");
		ok = 0;
	}
	return ok;
}

static int
check_array(struct vctx *v, const struct sc_node *n, json_t *x)
{
	size_t len = json_array_size(x), i;
	int ok = 1;

	if (n->min_items >= 0 && len < (unsigned long long)n->min_items) {
		add_error(v, "minItems", "fewer than %lld items", n->min_items);
		ok = 0;
	}
	if (n->max_items >= 0 && len > (unsigned long long)n->max_items) {
		add_error(v, "maxItems", "more than %lld items", n->max_items);
		ok = 0;
	}
	for (i = 0; i < len && (ok || !stop_early(v)); i++) {
		const struct sc_node *sub = i < n->prefix.n ? n->prefix.v[i] :
		    n->items_rest;
		if (sub == NULL)
			break;
		size_t old = path_push_index(v, i);
		if (!eval(v, sub, json_array_get(x, i)))
			ok = 0;
		path_pop(v, old);
	}
	if (n->contains && (ok || !stop_early(v))) {
		long long found = 0, min = n->min_contains >= 0 ?
		    n->min_contains : 1;
		for (i = 0; i < len && !v->limit; i++) {
			if (eval_quiet(v, n->contains, json_array_get(x, i)))
				found++;
			if (found >= min && n->max_contains < 0)
				break;
			if (n->max_contains >= 0 && found > n->max_contains)
				break;
		}
		if (v->limit)
			return 0;
		if (found < min) {
			add_error(v, n->min_contains >= 0 ? "minContains" :
			    "contains", "too few items match \"contains\"");
			ok = 0;
		} else if (n->max_contains >= 0 && found > n->max_contains) {
			add_error(v, "maxContains",
			    "too many items match \"contains\"");
			ok = 0;
		}
	}
	if (n->unique && len > 1 && (ok || !stop_early(v))) {
		for (i = 0; i + 1 < len; i++) {
			if (step(v, len - i - 1) != 0)
				return 0;
			for (size_t j = i + 1; j < len; j++) {
				if (equal(v, json_array_get(x, i),
				    json_array_get(x, j))) {
					add_error(v, "uniqueItems",
					    "items %zu and %zu are equal", i, j);
					return 0;
				}
				if (v->limit)
					return 0;
			}
			if (v->limit)
				return 0;
		}
	}
	return ok;
}

/* The `properties` entry named k (sorted by compile), or NULL. */
static const struct sc_named *
prop_find(const struct sc_node *n, const char *k)
{
	size_t lo = 0, hi = n->nprops;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(k, n->props[mid].name);

		if (c == 0)
			return &n->props[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Whether o has every name of the array `names`: one step per name (a
 * `required` of a million names is a million lookups, not one step). 1
 * yes, 0 no (*missing names it), -1 the budget ran out. */
static int
has_key(struct vctx *v, json_t *o, json_t *names, const char **missing)
{
	json_t *e;
	size_t i;

	if (step(v, json_array_size(names)) != 0)
		return -1;
	json_array_foreach(names, i, e) {
		const char *k = json_string_value(e);
		if (k != NULL && json_object_get(o, k) == NULL) {
			*missing = k;
			return 0;
		}
	}
	return 1;
}

static int
check_object(struct vctx *v, const struct sc_node *n, json_t *x)
{
	size_t size = json_object_size(x);
	const char *k, *miss;
	json_t *e;
	int ok = 1, r;

	if (n->min_props >= 0 && size < (unsigned long long)n->min_props) {
		add_error(v, "minProperties", "fewer than %lld properties",
		    n->min_props);
		ok = 0;
	}
	if (n->max_props >= 0 && size > (unsigned long long)n->max_props) {
		add_error(v, "maxProperties", "more than %lld properties",
		    n->max_props);
		ok = 0;
	}
	if (n->required && (r = has_key(v, x, n->required, &miss)) <= 0) {
		if (r < 0)
			return 0;
		/* The name comes from the schema, not from the instance. */
		add_error(v, "required", "missing required property \"%.64s\"",
		    miss);
		ok = 0;
	}
	/* A lookup per dependency entry, whatever the instance holds. */
	if (n->ndep_req + n->ndep_sch > 0 &&
	    step(v, n->ndep_req + n->ndep_sch) != 0)
		return 0;
	for (size_t i = 0; i < n->ndep_req && (ok || !stop_early(v)); i++)
		if (json_object_get(x, n->dep_req[i].name) &&
		    (r = has_key(v, x, n->dep_req[i].names, &miss)) <= 0) {
			if (r < 0)
				return 0;
			add_error(v, "dependentRequired",
			    "\"%.64s\" requires \"%.64s\"", n->dep_req[i].name,
			    miss);
			ok = 0;
		}
	for (size_t i = 0; i < n->ndep_sch && (ok || !stop_early(v)); i++)
		if (json_object_get(x, n->dep_sch[i].name) &&
		    !eval(v, n->dep_sch[i].node, x))
			ok = 0;
	if (n->nprops == 0 && n->npats == 0 && n->addl_props == NULL &&
	    n->prop_names == NULL)
		return ok;
	json_object_foreach(x, k, e) {
		size_t old, klen = strlen(k);
		const struct sc_named *prop;
		int matched = 0;
		if (!ok && stop_early(v))
			break;
		if (step(v, 1) != 0)
			return 0;
		old = path_push(v, k);
		if (n->prop_names) {
			json_t *name = json_string(k);
			if (name == NULL) {
				limit_hit(v, "memory");
				path_pop(v, old);
				return 0;
			}
			if (!eval(v, n->prop_names, name))
				ok = 0;
			json_decref(name);
		}
		if ((prop = prop_find(n, k)) != NULL) {
			matched = 1;
			if (!eval(v, prop->node, e))
				ok = 0;
		}
		for (size_t i = 0; i < n->npats && !v->limit; i++) {
			if ((r = re_match(v, n->pats[i].re, k, klen)) > 0) {
				matched = 1;
				if (!eval(v, n->pats[i].node, e))
					ok = 0;
			}
		}
		if (!matched && n->addl_props && !v->limit) {
			if (n->addl_props->boolean == 0) {
				add_error(v, "additionalProperties",
				    "property not allowed");
				ok = 0;
			} else if (!eval(v, n->addl_props, e))
				ok = 0;
		}
		path_pop(v, old);
		if (v->limit)
			return 0;
	}
	return ok;
}

static int
check_combinators(struct vctx *v, const struct sc_node *n, json_t *x)
{
	int ok = 1;
	size_t i, hits;

	for (i = 0; i < n->all.n && (ok || !stop_early(v)); i++)
		if (!eval(v, n->all.v[i], x))
			ok = 0;
	if (n->any.n > 0 && (ok || !stop_early(v))) {
		for (i = 0; i < n->any.n; i++)
			if (eval_quiet(v, n->any.v[i], x))
				break;
		if (v->limit)
			return 0;
		if (i == n->any.n) {
			add_error(v, "anyOf", "matches none of the alternatives");
			ok = 0;
		}
	}
	if (n->one.n > 0 && (ok || !stop_early(v))) {
		for (i = hits = 0; i < n->one.n && hits < 2; i++)
			if (eval_quiet(v, n->one.v[i], x))
				hits++;
		if (v->limit)
			return 0;
		if (hits != 1) {
			add_error(v, "oneOf", hits ? "matches more than one "
			    "alternative" : "matches none of the alternatives");
			ok = 0;
		}
	}
	if (n->not_s && (ok || !stop_early(v))) {
		int r = eval_quiet(v, n->not_s, x);
		if (v->limit)
			return 0;
		if (r) {
			add_error(v, "not", "matches a schema it must not");
			ok = 0;
		}
	}
	if (n->if_s && (n->then_s || n->else_s) && (ok || !stop_early(v))) {
		int r = eval_quiet(v, n->if_s, x);
		const struct sc_node *next = r ? n->then_s : n->else_s;
		if (v->limit)
			return 0;
		if (next && !eval(v, next, x))
			ok = 0;
	}
	return ok;
}

static int
eval_keywords(struct vctx *v, const struct sc_node *n, json_t *x)
{
	int ok = 1;

	if (n->ref && !eval(v, n->ref, x)) {
		ok = 0;
		if (stop_early(v))
			return 0;
	}
	if (n->types && !check_type(v, n, x)) {
		ok = 0;
		if (stop_early(v))
			return 0;
	}
	if (n->has_const && !equal(v, x, n->const_v)) {
		add_error(v, "const", "not the required value");
		ok = 0;
	}
	if (n->enum_v) {
		size_t i, cnt = json_array_size(n->enum_v);
		if (step(v, cnt) != 0)
			return 0;
		for (i = 0; i < cnt; i++)
			if (equal(v, x, json_array_get(n->enum_v, i)))
				break;
		if (i == cnt) {
			add_error(v, "enum", "not one of the allowed values");
			ok = 0;
		}
	}
	if (v->limit || (!ok && stop_early(v)))
		return 0;
	if (json_is_number(x) && !check_number(v, n, x))
		ok = 0;
	else if (json_is_string(x) && !check_string(v, n, x))
		ok = 0;
	else if (json_is_array(x) && !check_array(v, n, x))
		ok = 0;
	else if (json_is_object(x) && !check_object(v, n, x))
		ok = 0;
	if (v->limit || (!ok && stop_early(v)))
		return 0;
	if (!check_combinators(v, n, x))
		ok = 0;
	return ok && !v->limit;
}

static int
eval(struct vctx *v, const struct sc_node *n, json_t *x)
{
	int ok;

	if (v->limit || step(v, 1) != 0)
		return 0;
	if (n->boolean == 1)
		return 1;
	if (n->boolean == 0) {
		add_error(v, "false", "no value is allowed here");
		return 0;
	}
	if (v->depth >= v->s->lim.max_depth) {
		limit_hit(v, "depth");
		return 0;
	}
	v->depth++;
	ok = eval_keywords(v, n, x);
	v->depth--;
	return ok;
}

int
pc_schema_validate(const struct pc_schema *s, json_t *instance,
    struct pc_schema_error *errs, unsigned *nerrs)
{
	struct vctx v;
	int ok;

	memset(&v, 0, sizeof(v));
	v.s = s;
	v.errs = errs;
	v.maxerrs = s->lim.max_errors;
	if (nerrs != NULL)
		*nerrs = 0;
	/* Match data per call: the compiled schema stays read-only and so
	 * shareable between threads. One ovector pair is all we read. */
	v.md = pcre2_match_data_create(1, NULL);
	if (v.md == NULL)
		return PC_E_NOMEM;
	ok = eval(&v, s->root, instance);
	pcre2_match_data_free(v.md);
	pcre2_match_context_free(v.mctx);
	if (nerrs != NULL)
		*nerrs = v.nerrs;
	if (v.limit)
		return PC_E_LIMIT;
	return ok ? 0 : PC_E_INVAL;
}
