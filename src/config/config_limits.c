/*
 * The config sections of issue 5 (src/limits): rate_limits, budgets,
 * tool_costs, breakers, concurrency and limits_store. They fill
 * cfg->limiter; docs/config.md ("Rate limits, budgets, breakers") is the
 * user's reference.
 *
 * Each entry is checked where it stands (file:line:col). The sets as a
 * whole (unique ids, bursts the GCRA can represent) are checked once the
 * file has been walked, by building them with the same constructors the
 * gateway uses (pc_gcra_new, pc_budget_new), so a file that passes here
 * cannot fail at start for a reason the loader could have named.
 */
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/util.h"
#include "config_int.h"

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

/* Ceilings of these sections. (Local: the GCRA's own ceiling on a period
 * is 400 days; a day limit and a month budget are the longest we name.) */
#define CFG_MAX_RATE_PERIOD_S	(400u * 86400u)
#define CFG_MAX_TOOL_COSTS	PC_MAX_CONFIG_LIST
#define CFG_MAX_COST		UINT64_C(1000000000000)	/* 10^12 units */
#define CFG_MAX_CONCURRENCY	65536u
#define CFG_MAX_BREAKER_N	1000000u
#define CFG_MAX_COOLDOWN_S	(24u * 3600u)

void
cfg_limiter_free(struct pc_config *c)
{
	struct pc_limiter_conf *l = &c->limiter;

	free(l->rate);
	free(l->budgets);
	for (size_t i = 0; i < l->ncosts; i++)
		free(l->costs[i].pattern);
	free(l->costs);
	free(l->store);
}

/* Copy a short name (id, match) into a fixed field; false after reporting
 * when it does not fit or holds what a state key cannot (0x1f, spaces). */
static bool
set_name(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    char *dst, size_t dstlen)
{
	const char *s = cfg_want_str(ctx, k, v, "a name");

	if (s == NULL)
		return false;
	if (*s == '\0' || strlen(s) >= dstlen) {
		cfg_err_at(ctx, v, "%s: must be 1 to %zu characters", k->name,
		    dstlen - 1);
		return false;
	}
	for (const char *p = s; *p; p++) {
		/* No quote or backslash either: the effective config
		 * (check --print) writes these between double quotes. */
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' ||
		    *p == '\\') {
			cfg_err_at(ctx, v, "%s: no spaces, quotes, backslashes "
			    "or control characters", k->name);
			return false;
		}
	}
	memcpy(dst, s, strlen(s) + 1);
	return true;
}

/* A whole number within [min, max]; false after reporting. */
static bool
want_u64(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    uint64_t min, uint64_t max, uint64_t *out)
{
	const char *s = cfg_want_str(ctx, k, v, "an integer");

	if (s == NULL)
		return false;
	if (pc_parse_u64(s, min, max, out) != 0) {
		cfg_err_at(ctx, v, "%s: expected an integer from %llu to %llu",
		    k->name, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	return true;
}

/* --- rate_limits ---------------------------------------------------------- */

/*
 * "30/minute", "500/hour", "3/second", "10/day", or a count per duration:
 * "5/90s", "100/10m". Units: second|sec|s, minute|min|m, hour|h, day|d.
 */
static int
parse_rate(const char *s, uint64_t *count, int64_t *period_us)
{
	static const struct { const char *name; int64_t us; } units[] = {
		{ "second", PC_LIMIT_SECOND_US }, { "sec", PC_LIMIT_SECOND_US },
		{ "s", PC_LIMIT_SECOND_US }, { "minute", PC_LIMIT_MINUTE_US },
		{ "min", PC_LIMIT_MINUTE_US }, { "m", PC_LIMIT_MINUTE_US },
		{ "hour", PC_LIMIT_HOUR_US }, { "h", PC_LIMIT_HOUR_US },
		{ "day", PC_LIMIT_DAY_US }, { "d", PC_LIMIT_DAY_US },
	};
	const char *slash = strchr(s, '/'), *u;
	char num[24];
	uint64_t n, mult = 1;
	size_t nl;

	if (slash == NULL || (nl = (size_t)(slash - s)) == 0 ||
	    nl >= sizeof(num))
		return PC_E_PARSE;
	memcpy(num, s, nl);
	num[nl] = '\0';
	if (pc_parse_u64(num, 1, UINT32_MAX, count) != 0)
		return PC_E_PARSE;
	u = slash + 1;
	/* An optional multiplier: "90s", "10m". */
	if (*u >= '0' && *u <= '9') {
		const char *e = u;
		while (*e >= '0' && *e <= '9')
			e++;
		if ((size_t)(e - u) >= sizeof(num))
			return PC_E_PARSE;
		memcpy(num, u, (size_t)(e - u));
		num[e - u] = '\0';
		if (pc_parse_u64(num, 1, CFG_MAX_RATE_PERIOD_S, &mult) != 0)
			return PC_E_PARSE;
		u = e;
	}
	for (size_t i = 0; i < NKEYS(units); i++) {
		if (strcmp(u, units[i].name) != 0)
			continue;
		n = mult * (uint64_t)(units[i].us / PC_LIMIT_SECOND_US);
		if (n > CFG_MAX_RATE_PERIOD_S)
			return PC_E_LIMIT;
		*period_us = (int64_t)n * PC_LIMIT_SECOND_US;
		return 0;
	}
	return PC_E_PARSE;
}

static void
k_rl_id(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_gcra_limit *l = obj;

	(void)set_name(ctx, k, v, l->id, sizeof(l->id));
}

static void
k_rl_match(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_gcra_limit *l = obj;

	(void)set_name(ctx, k, v, l->match, sizeof(l->match));
}

/* The index of v's word in words[n], or -1 after reporting. */
static int
pick_word(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    const char *const *words, size_t n, const char *what)
{
	const char *s = cfg_want_str(ctx, k, v, what);

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, words[i]) == 0)
			return (int)i;
	cfg_expected(ctx, k, v, what);
	return -1;
}

static void
k_rl_scope(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	/* In the order of enum pc_limit_scope. */
	static const char *const words[] = { "key", "tool", "key_tool",
	    "tenant", "global" };
	struct pc_gcra_limit *l = obj;
	int i = pick_word(ctx, k, v, words, NKEYS(words),
	    "key, tool, key_tool, tenant or global");

	if (i >= 0)
		l->scope = (enum pc_limit_scope)i;
}

static void
k_rl_rate(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_gcra_limit *l = obj;
	const char *s = cfg_want_str(ctx, k, v, "a rate such as 30/minute");
	int rc;

	if (s == NULL)
		return;
	rc = parse_rate(s, &l->count, &l->period_us);
	if (rc == PC_E_LIMIT)
		cfg_err_at(ctx, v, "rate: the period may be at most 400 days");
	else if (rc != 0)
		cfg_expected(ctx, k, v, "a rate such as 30/minute, 500/hour, "
		    "3/second, 10/day or 5/90s");
}

static void
k_rl_burst(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_gcra_limit *l = obj;

	(void)want_u64(ctx, k, v, 1, UINT32_MAX, &l->burst);
}

static const struct cfg_key rl_keys[] = {
	{ "id", VK_FN, 0, 0, 0, k_rl_id },
	{ "scope", VK_FN, 0, 0, 0, k_rl_scope },
	{ "match", VK_FN, 0, 0, 0, k_rl_match },
	{ "rate", VK_FN, 0, 0, 0, k_rl_rate },
	{ "burst", VK_FN, 0, 0, 0, k_rl_burst },
};

/* A list of entries (calloc'ed, v->nkids items of size sz); each is
 * walked with `keys`, then checked by `each`. Returns the array, or NULL
 * after reporting: a list with a bad entry is not kept (the load fails
 * anyway), so the checks of the whole set never repeat its errors. */
static void *
walk_list(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    size_t max, size_t sz, const char *what, const struct cfg_key *keys,
    size_t nkeys, void (*each)(struct cfg_ctx *, const struct cfg_node *,
    const struct cfg_node **, void *))
{
	const struct cfg_node *seen[CFG_MAX_KEYS];
	size_t nerr = ctx->errs->n;
	unsigned char *arr;

	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, what);
		return NULL;
	}
	if (v->nkids > max) {
		cfg_err_at(ctx, v, "%s: more than %zu entries", k->name, max);
		return NULL;
	}
	arr = calloc(v->nkids ? v->nkids : 1, sz);
	if (arr == NULL) {
		ctx->nomem = true;
		return NULL;
	}
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		if (it->kind != CN_MAP) {
			cfg_expected(ctx, k, it, what);
			continue;
		}
		cfg_walk_map(ctx, it, k->name, keys, nkeys, arr + i * sz, seen);
		each(ctx, it, seen, arr + i * sz);
	}
	if (ctx->errs->n != nerr) {
		free(arr);
		return NULL;
	}
	return arr;
}

static void
rl_each(struct cfg_ctx *ctx, const struct cfg_node *it,
    const struct cfg_node **seen, void *obj)
{
	struct pc_gcra_limit *l = obj;

	/* seen[1] scope, seen[2] match, seen[3] rate (order of rl_keys). */
	if (seen[1] == NULL)
		cfg_err_at(ctx, it, "rate_limits: each entry needs a scope "
		    "(key, tool, key_tool, tenant or global)");
	if (seen[3] == NULL)
		cfg_err_at(ctx, it, "rate_limits: each entry needs a rate such "
		    "as 30/minute");
	if (seen[2] != NULL && l->scope == PC_LIMIT_GLOBAL)
		cfg_err_at(ctx, seen[2], "match: a global limit counts every "
		    "call; match has no meaning there");
	if (l->burst > 0 && l->count > 0 && l->burst > l->count * 1000u)
		cfg_err_at(ctx, it, "burst: more than 1000 times the count "
		    "is surely a mistake");
}

void
cfg_k_rate_limits(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_limiter_conf *l = &((struct pc_config *)obj)->limiter;
	struct pc_gcra_limit *arr;

	if (cfg_node_is_null(v))
		return;
	arr = walk_list(ctx, k, v, PC_GCRA_MAX_LIMITS, sizeof(*arr),
	    "a list of {scope, rate, id?, match?, burst?}", rl_keys,
	    NKEYS(rl_keys), rl_each);
	if (arr == NULL)
		return;
	free(l->rate);
	l->rate = arr;
	l->nrate = v->nkids;
}

/* --- budgets -------------------------------------------------------------- */

static void
k_bu_id(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_budget_limit *b = obj;

	(void)set_name(ctx, k, v, b->id, sizeof(b->id));
}

static void
k_bu_match(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_budget_limit *b = obj;

	(void)set_name(ctx, k, v, b->match, sizeof(b->match));
}

static void
k_bu_scope(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	static const char *const words[] = { "key", "tenant" };
	struct pc_budget_limit *b = obj;
	int i = pick_word(ctx, k, v, words, NKEYS(words), "key or tenant");

	if (i >= 0)
		b->scope = i == 0 ? PC_BUDGET_KEY : PC_BUDGET_TENANT;
}

static void
k_bu_period(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	static const char *const words[] = { "day", "month" };
	struct pc_budget_limit *b = obj;
	int i = pick_word(ctx, k, v, words, NKEYS(words),
	    "day or month (UTC calendar periods)");

	if (i >= 0)
		b->period = i == 0 ? PC_BUDGET_DAY : PC_BUDGET_MONTH;
}

static void
k_bu_amount(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_budget_limit *b = obj;

	(void)want_u64(ctx, k, v, 1, CFG_MAX_COST, &b->amount);
}

static const struct cfg_key bu_keys[] = {
	{ "id", VK_FN, 0, 0, 0, k_bu_id },
	{ "scope", VK_FN, 0, 0, 0, k_bu_scope },
	{ "match", VK_FN, 0, 0, 0, k_bu_match },
	{ "period", VK_FN, 0, 0, 0, k_bu_period },
	{ "amount", VK_FN, 0, 0, 0, k_bu_amount },
};

static void
bu_each(struct cfg_ctx *ctx, const struct cfg_node *it,
    const struct cfg_node **seen, void *obj)
{
	(void)obj;
	if (seen[1] == NULL || seen[3] == NULL || seen[4] == NULL)
		cfg_err_at(ctx, it, "budgets: each entry needs scope (key or "
		    "tenant), period (day or month) and amount");
}

void
cfg_k_budgets(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_limiter_conf *l = &((struct pc_config *)obj)->limiter;
	struct pc_budget_limit *arr;

	if (cfg_node_is_null(v))
		return;
	arr = walk_list(ctx, k, v, PC_BUDGET_MAX_LIMITS, sizeof(*arr),
	    "a list of {scope, period, amount, id?, match?}", bu_keys,
	    NKEYS(bu_keys), bu_each);
	if (arr == NULL)
		return;
	free(l->budgets);
	l->budgets = arr;
	l->nbudgets = v->nkids;
}

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* --- tool_costs ------------------------------------------------------------- */

void
cfg_k_tool_costs(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_limiter_conf *l = &((struct pc_config *)obj)->limiter;
	size_t n;

	if (cfg_node_is_null(v))
		return;
	if (v->kind != CN_MAP) {
		cfg_expected(ctx, k, v, "a mapping tool name or glob: cost");
		return;
	}
	n = v->nkids / 2;
	if (n > CFG_MAX_TOOL_COSTS) {
		cfg_err_at(ctx, v, "tool_costs: more than %u entries",
		    CFG_MAX_TOOL_COSTS);
		return;
	}
	l->costs = calloc(n ? n : 1, sizeof(*l->costs));
	if (l->costs == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cfg_node *kn = v->kids[2 * i];
		const char *name = cfg_want_str(ctx, k, kn, "a tool name");
		struct pc_tool_cost *tc = &l->costs[l->ncosts];

		if (name == NULL)
			continue;
		if (*name == '\0' || strlen(name) > PC_MAX_NAME_LEN) {
			cfg_err_at(ctx, kn, "tool_costs: a tool name or glob "
			    "of 1 to %u characters", PC_MAX_NAME_LEN);
			continue;
		}
		if (strpbrk(name, "\"\\ ") != NULL || !printable(name)) {
			cfg_err_at(ctx, kn, "tool_costs: a tool name or glob "
			    "holds no spaces, quotes, backslashes or control "
			    "characters");
			continue;
		}
		for (size_t j = 0; j < l->ncosts; j++)
			if (strcmp(l->costs[j].pattern, name) == 0)
				cfg_err_at(ctx, kn, "tool_costs: '%s' is given "
				    "twice", name);
		if (!want_u64(ctx, k, v->kids[2 * i + 1], 0, CFG_MAX_COST,
		    &tc->cost))
			continue;
		tc->pattern = cfg_dup(ctx, name);
		if (tc->pattern != NULL)
			l->ncosts++;
	}
}

/* --- breakers and concurrency -------------------------------------------- */

struct br_tmp {
	uint32_t threshold;
	uint32_t cooldown_ms;
	uint32_t max_cooldown_ms;
};

#define BF(f) offsetof(struct br_tmp, f)

static const struct cfg_key br_keys[] = {
	{ "threshold", VK_UINT, BF(threshold), 1, CFG_MAX_BREAKER_N, NULL },
	{ "cooldown", VK_DUR_MS, BF(cooldown_ms), 100,
	    CFG_MAX_COOLDOWN_S * 1000u, NULL },
	{ "max_cooldown", VK_DUR_MS, BF(max_cooldown_ms), 100,
	    CFG_MAX_COOLDOWN_S * 1000u, NULL },
};

/* One breaker: a mapping, or `off`. */
static void
breaker_one(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, bool *on, struct pc_breaker_config *out)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];
	struct br_tmp t = { 0 };

	if (v->kind == CN_SCALAR && strcmp(v->s, "off") == 0) {
		*on = false;
		return;
	}
	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, k->name, br_keys, NKEYS(br_keys), &t, seen);
	if (seen[0] == NULL || seen[1] == NULL) {
		cfg_err_at(ctx, v, "%s: needs threshold and cooldown", k->name);
		return;
	}
	if (seen[2] != NULL && t.max_cooldown_ms < t.cooldown_ms) {
		cfg_err_at(ctx, seen[2], "%s: max_cooldown must be at least "
		    "cooldown", k->name);
		return;
	}
	*on = true;
	*out = (struct pc_breaker_config){
		.threshold = t.threshold,
		.cooldown_us = (int64_t)t.cooldown_ms * 1000,
		.max_cooldown_us = (int64_t)t.max_cooldown_ms * 1000,
	};
}

static void
k_br_key(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_limiter_conf *l = obj;

	breaker_one(ctx, k, v, &l->key_breaker, &l->key_br);
}

static void
k_br_upstream(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_limiter_conf *l = obj;

	breaker_one(ctx, k, v, &l->upstream_breaker, &l->upstream_br);
}

static const struct cfg_key breaker_keys[] = {
	{ "key", VK_FN, 0, 0, 0, k_br_key },
	{ "upstream", VK_FN, 0, 0, 0, k_br_upstream },
};

void
cfg_k_breakers(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "breakers", breaker_keys,
		    NKEYS(breaker_keys), &((struct pc_config *)obj)->limiter,
		    seen);
}

#define LMF(f) offsetof(struct pc_limiter_conf, f)

static const struct cfg_key conc_keys[] = {
	{ "per_key", VK_UINT, LMF(per_key), 1, CFG_MAX_CONCURRENCY, NULL },
	{ "per_upstream", VK_UINT, LMF(per_upstream), 1, CFG_MAX_CONCURRENCY,
	    NULL },
};

void
cfg_k_concurrency(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "concurrency", conc_keys, NKEYS(conc_keys),
		    &((struct pc_config *)obj)->limiter, seen);
}

void
cfg_k_limits_store(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	cfg_set_path(ctx, k, v, &((struct pc_config *)obj)->limiter.store);
}

/* --- rules across entries --------------------------------------------------- */

/* The cost of a tool, as the gateway computes it (exact, then globs). */
uint64_t
pc_tool_cost_of(const struct pc_limiter_conf *l, const char *tool)
{
	for (size_t i = 0; i < l->ncosts; i++)
		if (strcmp(l->costs[i].pattern, tool) == 0)
			return l->costs[i].cost;
	for (size_t i = 0; i < l->ncosts; i++)
		if (fnmatch(l->costs[i].pattern, tool, 0) == 0)
			return l->costs[i].cost;
	return 1;
}

void
cfg_limiter_check(struct cfg_ctx *ctx, const struct cfg_node *root,
    const struct cfg_node *rate_node, const struct cfg_node *budget_node)
{
	struct pc_limiter_conf *l = &ctx->cfg->limiter;
	struct pc_gcra *g = NULL;
	struct pc_budget *b = NULL;
	char err[192];

	/* Build the sets as the gateway will (a one-entry store: only the
	 * configuration is checked here). */
	if (l->nrate > 0 && pc_gcra_new(l->rate, l->nrate, NULL, NULL, 1, &g,
	    err, sizeof(err)) == PC_E_CONFIG)
		cfg_err_at(ctx, rate_node ? rate_node : root, "rate_limits: %s",
		    err);
	pc_gcra_free(g);
	if (l->nbudgets > 0 && pc_budget_new(l->budgets, l->nbudgets, NULL,
	    NULL, 1, &b, err, sizeof(err)) == PC_E_CONFIG)
		cfg_err_at(ctx, budget_node ? budget_node : root, "budgets: %s",
		    err);
	pc_budget_free(b);
	/* A cost above a budget's whole amount is a tool nobody under that
	 * budget could ever call: surely a typo, refused like one. */
	for (size_t i = 0; i < l->ncosts; i++) {
		for (size_t j = 0; j < l->nbudgets; j++) {
			if (l->costs[i].cost <= l->budgets[j].amount)
				continue;
			cfg_err_at(ctx, budget_node ? budget_node : root,
			    "tool_costs: '%s' costs %llu, more than a whole "
			    "budget of %llu: it could never be called",
			    l->costs[i].pattern,
			    (unsigned long long)l->costs[i].cost,
			    (unsigned long long)l->budgets[j].amount);
			break;
		}
	}
	/* Counters persist next to the API keys unless told otherwise. */
	if (l->store == NULL && (l->nrate > 0 || l->nbudgets > 0)) {
		const char *ks = ctx->cfg->auth.key_store;
		l->store = ks != NULL ? cfg_dup(ctx, ks) :
		    cfg_abs_path(ctx, "portcullis.db");
		if (l->store == NULL)
			ctx->nomem = true;
	}
}

/* --- the effective configuration (check --print) -------------------------- */

static const char *const scope_word[] = {
	[PC_LIMIT_KEY] = "key", [PC_LIMIT_TOOL] = "tool",
	[PC_LIMIT_KEY_TOOL] = "key_tool", [PC_LIMIT_TENANT] = "tenant",
	[PC_LIMIT_GLOBAL] = "global",
};

static void
dump_breaker(FILE *f, const char *name, bool on,
    const struct pc_breaker_config *b)
{
	char cd[32], mx[32];

	if (!on) {
		fprintf(f, "  %s: off\n", name);
		return;
	}
	cfg_fmt_dur((uint64_t)(b->cooldown_us / 1000), cd, sizeof(cd));
	fprintf(f, "  %s: {threshold: %u, cooldown: %s", name, b->threshold,
	    cd);
	if (b->max_cooldown_us > 0) {
		cfg_fmt_dur((uint64_t)(b->max_cooldown_us / 1000), mx,
		    sizeof(mx));
		fprintf(f, ", max_cooldown: %s", mx);
	}
	fputs("}\n", f);
}

/* Ids, matches and tool patterns were checked to hold no quote, backslash
 * or control character: quoting them is enough. */
void
cfg_limiter_dump(const struct pc_config *cfg, FILE *f)
{
	const struct pc_limiter_conf *l = &cfg->limiter;

	fprintf(f, "rate_limits:%s\n", l->nrate ? "" : " []");
	for (size_t i = 0; i < l->nrate; i++) {
		const struct pc_gcra_limit *r = &l->rate[i];
		fprintf(f, "  - {scope: %s, rate: \"%llu/%llds\"",
		    scope_word[r->scope], (unsigned long long)r->count,
		    (long long)(r->period_us / PC_LIMIT_SECOND_US));
		if (r->id[0] != '\0')
			fprintf(f, ", id: \"%s\"", r->id);
		if (r->match[0] != '\0')
			fprintf(f, ", match: \"%s\"", r->match);
		if (r->burst > 0)
			fprintf(f, ", burst: %llu", (unsigned long long)r->burst);
		fputs("}\n", f);
	}
	fprintf(f, "budgets:%s\n", l->nbudgets ? "" : " []");
	for (size_t i = 0; i < l->nbudgets; i++) {
		const struct pc_budget_limit *b = &l->budgets[i];
		fprintf(f, "  - {scope: %s, period: %s, amount: %llu",
		    b->scope == PC_BUDGET_KEY ? "key" : "tenant",
		    b->period == PC_BUDGET_DAY ? "day" : "month",
		    (unsigned long long)b->amount);
		if (b->id[0] != '\0')
			fprintf(f, ", id: \"%s\"", b->id);
		if (b->match[0] != '\0')
			fprintf(f, ", match: \"%s\"", b->match);
		fputs("}\n", f);
	}
	fprintf(f, "tool_costs:%s\n", l->ncosts ? "" : " {}");
	for (size_t i = 0; i < l->ncosts; i++)
		fprintf(f, "  \"%s\": %llu\n", l->costs[i].pattern,
		    (unsigned long long)l->costs[i].cost);
	fputs("breakers:\n", f);
	dump_breaker(f, "key", l->key_breaker, &l->key_br);
	dump_breaker(f, "upstream", l->upstream_breaker, &l->upstream_br);
	if (l->per_key > 0 || l->per_upstream > 0) {
		fputs("concurrency:\n", f);
		if (l->per_key > 0)
			fprintf(f, "  per_key: %u\n", l->per_key);
		if (l->per_upstream > 0)
			fprintf(f, "  per_upstream: %u\n", l->per_upstream);
	}
	if (l->store != NULL)
		fprintf(f, "limits_store: \"%s\"\n", l->store);
}
