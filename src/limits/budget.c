/*
 * Spend budgets per UTC day and month (see budget.h, docs/limits.md).
 *
 * A budget's state is (spent, period start). A stored start older than the
 * current period reads as nothing spent, so a new day or month needs no
 * timer and no sweep: the first charge of the period starts it afresh.
 */
#include "limits/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/errors.h"
#include "lib/util.h"

struct blim {
	struct pc_budget_limit cfg;
};

/* One cached period per kind: recomputing a month from the calendar costs
 * two libc calls, done once a month instead of once a call. */
struct period_cache {
	int64_t start, end;	/* [start, end); end 0 = empty */
};

struct bscratch {
	char key[PC_BUDGET_MAX_LIMITS][PC_LIMIT_KEY_MAX];
	const char *keys[PC_BUDGET_MAX_LIMITS];
	size_t which[PC_BUDGET_MAX_LIMITS];
	struct pc_lval old[PC_BUDGET_MAX_LIMITS];
	struct pc_lval val[PC_BUDGET_MAX_LIMITS];
	bool found[PC_BUDGET_MAX_LIMITS];
};

struct pc_budget {
	struct blim lim[PC_BUDGET_MAX_LIMITS];
	size_t n;
	const struct pc_limit_store_ops *ops;
	void *ctx;
	bool own_ctx;
	struct period_cache cache[2];
	struct bscratch s;
};

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void
pc_budget_period_bounds(enum pc_budget_period p, int64_t now_us,
    int64_t *start_us, int64_t *end_us)
{
	int64_t s = floor_div(now_us, PC_LIMIT_SECOND_US);

	if (p == PC_BUDGET_DAY) {
		/* Unix time has no leap seconds: every UTC day is 86400 s. */
		int64_t d = floor_div(s, 86400) * 86400;
		*start_us = d * PC_LIMIT_SECOND_US;
		*end_us = (d + 86400) * PC_LIMIT_SECOND_US;
		return;
	}
	time_t t = (time_t)s;
	struct tm tm;

	gmtime_r(&t, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = 0;
	*start_us = (int64_t)timegm(&tm) * PC_LIMIT_SECOND_US;
	tm.tm_mon += 1;		/* timegm carries December into January */
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	*end_us = (int64_t)timegm(&tm) * PC_LIMIT_SECOND_US;
}

static void
bounds(struct pc_budget *b, enum pc_budget_period p, int64_t now_us,
    int64_t *start, int64_t *end)
{
	struct period_cache *c = &b->cache[p];

	if (c->end == 0 || now_us < c->start || now_us >= c->end)
		pc_budget_period_bounds(p, now_us, &c->start, &c->end);
	*start = c->start;
	*end = c->end;
}

static const char *const scope_names[] = { "key", "tenant" };
static const char *const period_names[] = { "day", "month" };

static int
blim_init(struct blim *d, const struct pc_budget_limit *l, char *err,
    size_t errlen)
{
	d->cfg = *l;
	d->cfg.id[sizeof(d->cfg.id) - 1] = '\0';
	d->cfg.match[sizeof(d->cfg.match) - 1] = '\0';
	if ((unsigned)l->scope > PC_BUDGET_TENANT ||
	    (unsigned)l->period > PC_BUDGET_MONTH) {
		snprintf(err, errlen, "budget: unknown scope or period");
		return PC_E_CONFIG;
	}
	if (d->cfg.id[0] == '\0') {
		int w;
		if (d->cfg.match[0] != '\0')
			w = snprintf(d->cfg.id, sizeof(d->cfg.id), "%s[%s]:%s",
			    scope_names[l->scope], d->cfg.match,
			    period_names[l->period]);
		else
			w = snprintf(d->cfg.id, sizeof(d->cfg.id), "%s:%s",
			    scope_names[l->scope], period_names[l->period]);
		if (w < 0 || (size_t)w >= sizeof(d->cfg.id)) {
			snprintf(err, errlen, "budget: name too long, give "
			    "it an id");
			return PC_E_CONFIG;
		}
	}
	for (const char *p = d->cfg.id; *p; p++) {
		if ((unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f) {
			snprintf(err, errlen, "budget: id must be printable, "
			    "no spaces");
			return PC_E_CONFIG;
		}
	}
	if (strchr(d->cfg.match, PC_LIMIT_KEY_SEP) != NULL) {
		snprintf(err, errlen, "budget %s: bad match", d->cfg.id);
		return PC_E_CONFIG;
	}
	if (l->amount == 0 || l->amount > (uint64_t)INT64_MAX) {
		snprintf(err, errlen, "budget %s: amount must be >= 1",
		    d->cfg.id);
		return PC_E_CONFIG;
	}
	return 0;
}

int
pc_budget_new(const struct pc_budget_limit *limits, size_t n,
    const struct pc_limit_store_ops *ops, void *ctx, size_t max_entries,
    struct pc_budget **out, char *err, size_t errlen)
{
	struct pc_budget *b = NULL;
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (n > PC_BUDGET_MAX_LIMITS) {
		snprintf(err, errlen, "more than %u budgets",
		    PC_BUDGET_MAX_LIMITS);
		return PC_E_LIMIT;
	}
	if (n > 0 && limits == NULL)
		return PC_E_INVAL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		rc = blim_init(&b->lim[i], &limits[i], err, errlen);
		if (rc != 0)
			goto out;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(b->lim[j].cfg.id, b->lim[i].cfg.id) == 0) {
				snprintf(err, errlen, "budget %s: duplicate id",
				    b->lim[i].cfg.id);
				rc = PC_E_CONFIG;
				goto out;
			}
		}
	}
	b->n = n;
	rc = pc_limit_store_use(ops, ctx, max_entries, &b->ops, &b->ctx,
	    &b->own_ctx);
	if (rc != 0)
		goto out;
	*out = b;
	b = NULL;
	rc = 0;
out:
	pc_budget_free(b);
	return rc;
}

void
pc_budget_free(struct pc_budget *b)
{
	if (b == NULL)
		return;
	pc_limit_store_release(b->ops, b->ctx, b->own_ctx);
	free(b);
}

static bool
present(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static const char *
subject_of(const struct pc_budget_limit *l, const struct pc_budget_subject *s)
{
	const char *v = l->scope == PC_BUDGET_KEY ? s->key : s->tenant;

	if (!present(v))
		return NULL;
	if (l->match[0] != '\0' && strcmp(l->match, v) != 0)
		return NULL;
	return v;
}

static void
fail_result(struct pc_budget_result *r, const char *why)
{
	memset(r, 0, sizeof(*r));
	r->retry_after_us = PC_LIMIT_SECOND_US;
	pc_strlcpy(r->budget_id, why, sizeof(r->budget_id));
}

/* The state keys of every budget that applies to subj, into b->s (keys,
 * which); *n of them. 0 or pc_limit_key's error. */
static int
subject_keys(struct pc_budget *b, const struct pc_budget_subject *subj,
    size_t *n)
{
	struct bscratch *s = &b->s;
	size_t k = 0;

	for (size_t i = 0; i < b->n; i++) {
		const char *v = subject_of(&b->lim[i].cfg, subj);
		int rc;

		if (v == NULL)
			continue;
		rc = pc_limit_key(s->key[k], b->lim[i].cfg.id, v, NULL);
		if (rc != 0)
			return rc;
		s->keys[k] = s->key[k];
		s->which[k] = i;
		k++;
	}
	*n = k;
	return 0;
}

static int
charge(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t now_us, bool commit, struct pc_budget_result *r)
{
	struct bscratch *s = &b->s;
	size_t k = 0, fired = SIZE_MAX, tight = SIZE_MAX;
	int64_t fired_reset = 0;
	uint64_t tight_rem = UINT64_MAX;
	int rc = 0;

	if (subj == NULL || r == NULL || now_us < 0) {
		if (r != NULL)
			fail_result(r, "invalid");
		return PC_E_INVAL;
	}
	rc = subject_keys(b, subj, &k);
	if (rc != 0) {
		fail_result(r, "invalid");
		return rc;
	}
	memset(r, 0, sizeof(*r));
	r->allowed = true;
	if (k == 0)
		return 0;

	for (int attempt = 0; attempt < 3; attempt++) {
		rc = b->ops->get(b->ctx, k, s->keys, s->old, s->found);
		if (rc != 0) {
			fail_result(r, "store");
			return rc;
		}
		fired = tight = SIZE_MAX;
		fired_reset = 0;
		tight_rem = UINT64_MAX;
		for (size_t j = 0; j < k; j++) {
			const struct pc_budget_limit *l =
			    &b->lim[s->which[j]].cfg;
			int64_t start, end, reset;
			uint64_t spent = 0;

			bounds(b, l->period, now_us, &start, &end);
			/* The wall clock stepped back over the period's end
			 * (an NTP correction at midnight): the newer period's
			 * spend stands, or it would be overwritten here and
			 * forgotten when the clock comes back. Only the next
			 * period: a record further ahead is no clock step. */
			if (s->found[j] && s->old[j].v[1] == end) {
				int64_t next = end;

				pc_budget_period_bounds(l->period, next, &start,
				    &end);
			}
			if (s->found[j] && s->old[j].v[1] == start &&
			    s->old[j].v[0] > 0)
				spent = (uint64_t)s->old[j].v[0];
			s->val[j] = s->old[j];
			s->val[j].v[0] = (int64_t)spent;
			s->val[j].v[1] = start;
			s->val[j].expire_us = end;
			/* spent <= amount always holds: the test is written
			 * so that it cannot overflow. */
			if (spent > l->amount || cost > l->amount - spent) {
				reset = cost > l->amount ? INT64_MAX : end;
				if (fired == SIZE_MAX || reset > fired_reset) {
					fired = j;
					fired_reset = reset;
				}
				continue;
			}
			s->val[j].v[0] = (int64_t)(spent + cost);
			uint64_t rem = l->amount - spent - cost;
			if (rem < tight_rem || (rem == tight_rem &&
			    end > s->val[tight].expire_us)) {
				tight_rem = rem;
				tight = j;
			}
		}
		if (fired != SIZE_MAX) {
			const struct pc_budget_limit *l =
			    &b->lim[s->which[fired]].cfg;
			r->allowed = false;
			r->amount = l->amount;
			r->spent = (uint64_t)s->val[fired].v[0];
			r->remaining = r->spent < l->amount ?
			    l->amount - r->spent : 0;
			r->reset_at_us = s->val[fired].expire_us;
			r->retry_after_us = fired_reset == INT64_MAX ?
			    INT64_MAX : fired_reset - now_us;
			pc_strlcpy(r->budget_id, l->id, sizeof(r->budget_id));
			return 0;
		}
		if (!commit || cost == 0)
			break;
		rc = b->ops->cas(b->ctx, k, s->keys, s->old, s->found, s->val,
		    now_us);
		if (rc != PC_E_EXISTS)
			break;
	}
	if (rc != 0) {
		fail_result(r, rc == PC_E_LIMIT ? "capacity" : "store");
		return rc;
	}
	const struct pc_budget_limit *l = &b->lim[s->which[tight]].cfg;
	r->amount = l->amount;
	r->spent = (uint64_t)s->val[tight].v[0];
	r->remaining = tight_rem;
	r->reset_at_us = s->val[tight].expire_us;
	pc_strlcpy(r->budget_id, l->id, sizeof(r->budget_id));
	return 0;
}

int
pc_budget_charge(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t now_us, struct pc_budget_result *res)
{
	return charge(b, subj, cost, now_us, true, res);
}

/*
 * Give back a charge that bought nothing. Only into the period it was
 * taken from: a day that has ended keeps its spend (it is history), and
 * the new one was never charged. A spend never goes below zero (a
 * restore or a reload may have replaced the counter meanwhile).
 */
int
pc_budget_refund(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t charged_at_us, int64_t now_us)
{
	struct bscratch *s = &b->s;
	const char *keys[PC_BUDGET_MAX_LIMITS];
	struct pc_lval old[PC_BUDGET_MAX_LIMITS], val[PC_BUDGET_MAX_LIMITS];
	bool found[PC_BUDGET_MAX_LIMITS];
	size_t k = 0;
	int rc = 0;

	if (subj == NULL || charged_at_us < 0 || cost == 0 ||
	    cost > INT64_MAX)
		return cost == 0 ? 0 : PC_E_INVAL;
	rc = subject_keys(b, subj, &k);
	if (rc != 0)
		return rc;
	for (int attempt = 0; k > 0 && attempt < 3; attempt++) {
		size_t m = 0;

		rc = b->ops->get(b->ctx, k, s->keys, s->old, s->found);
		if (rc != 0)
			return rc;
		for (size_t j = 0; j < k; j++) {
			const struct pc_budget_limit *l =
			    &b->lim[s->which[j]].cfg;
			int64_t start, end;

			bounds(b, l->period, charged_at_us, &start, &end);
			if (!s->found[j] || s->old[j].v[1] != start ||
			    s->old[j].v[0] <= 0)
				continue;	/* nothing of that period */
			keys[m] = s->keys[j];
			old[m] = s->old[j];
			found[m] = true;
			val[m] = s->old[j];
			val[m].v[0] = (uint64_t)s->old[j].v[0] > cost ?
			    s->old[j].v[0] - (int64_t)cost : 0;
			m++;
		}
		if (m == 0)
			return 0;
		rc = b->ops->cas(b->ctx, m, keys, old, found, val, now_us);
		if (rc != PC_E_EXISTS)
			return rc;
	}
	return rc;
}

int
pc_budget_check(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t now_us, struct pc_budget_result *res)
{
	return charge(b, subj, cost, now_us, false, res);
}

struct snap_arg {
	int (*cb)(void *arg, const char *key, uint64_t spent, int64_t start);
	void *arg;
};

static int
snap_one(void *arg, const char *key, const struct pc_lval *v)
{
	struct snap_arg *sa = arg;

	return sa->cb(sa->arg, key, v->v[0] > 0 ? (uint64_t)v->v[0] : 0,
	    v->v[1]);
}

int
pc_budget_snapshot(struct pc_budget *b, int64_t now_us,
    int (*cb)(void *arg, const char *key, uint64_t spent,
    int64_t period_start_us), void *arg)
{
	struct snap_arg sa = { cb, arg };

	if (b->ops->each == NULL)
		return 0;
	return b->ops->each(b->ctx, now_us, snap_one, &sa);
}

int
pc_budget_restore(struct pc_budget *b, const char *key, uint64_t spent,
    int64_t period_start_us, int64_t now_us)
{
	const char *sep;
	const struct pc_budget_limit *l = NULL;
	const char *keys[1] = { key };
	int64_t start, end, cur, cur_end;
	struct pc_lval old, val;
	bool found;
	int rc;

	/* The file is ours, but read as untrusted: a start past the next
	 * period is no clock step, and near INT64_MAX its bounds overflow. */
	if (key == NULL || strlen(key) >= PC_LIMIT_KEY_MAX ||
	    (sep = strchr(key, PC_LIMIT_KEY_SEP)) == NULL ||
	    spent > (uint64_t)INT64_MAX || period_start_us < 0 ||
	    now_us < 0 || period_start_us > now_us + 32 * PC_LIMIT_DAY_US)
		return PC_E_INVAL;
	for (size_t i = 0; i < b->n; i++) {
		const char *id = b->lim[i].cfg.id;
		if (strlen(id) == (size_t)(sep - key) &&
		    memcmp(id, key, (size_t)(sep - key)) == 0) {
			l = &b->lim[i].cfg;
			break;
		}
	}
	if (l == NULL)
		return PC_E_NOTFOUND;
	pc_budget_period_bounds(l->period, period_start_us, &start, &end);
	if (start != period_start_us)
		return PC_E_INVAL;
	bounds(b, l->period, now_us, &cur, &cur_end);
	if (start < cur)
		return 0;	/* that period is over: nothing to keep */
	/* The next period: saved before the clock stepped back over its
	 * start; its spend stands (as in take). Further ahead: dropped. */
	if (start > cur && start != cur_end)
		return PC_E_INVAL;
	rc = b->ops->get(b->ctx, 1, keys, &old, &found);
	if (rc != 0)
		return rc;
	val = old;
	val.v[0] = (int64_t)spent;
	val.v[1] = start;
	val.expire_us = end;
	return b->ops->cas(b->ctx, 1, keys, &old, &found, &val, now_us);
}
