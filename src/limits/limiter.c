/*
 * The limits stage: the gateway's use of gcra, budget and breaker, built
 * from the config. See limiter.h for the two checkpoints and
 * docs/limits.md for what each refusal looks like to a client.
 *
 * Order inside a checkpoint: what can refuse without side effects first
 * (a rate peek, a budget check), then what takes something (a breaker's
 * probe, a concurrency slot), then the charge, which cannot be refused by
 * then on one event loop unless the state table is full (fail closed:
 * everything taken is given back).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "limits/breaker.h"
#include "limits/budget.h"
#include "limits/limiter.h"

/* A refusal that names no configured limit waits this long: a full state
 * table or a busy cap frees within a call's time. */
#define LIMITER_BUSY_RETRY_US	PC_LIMIT_SECOND_US

struct pc_limiter {
	const struct pc_limiter_conf *cfg;	/* borrowed */
	struct pc_gcra *gcra;		/* NULL: no rate limits */
	struct pc_budget *budget;	/* NULL: no budgets */
	struct pc_breaker *key_br;	/* NULL: off */
	struct pc_breaker *up_br;
	struct pc_breaker_config key_brc, up_brc;	/* what they were made of */
	/* Made on first need and kept for the process: calls in flight hold
	 * slots across reloads. */
	struct pc_conc *conc_key;
	struct pc_conc *conc_up;
	uint64_t changes;
	uint64_t budget_gen;		/* grows with every budget set made */
};

static void
refuse(struct pc_limit_verdict *v, int status, const char *reason,
    const char *message, const char *id, int64_t retry_after_us)
{
	v->allowed = false;
	v->status = status;
	v->reason = reason;
	v->message = message;
	snprintf(v->limit_id, sizeof(v->limit_id), "%s", id);
	v->retry_after_us = retry_after_us;
}

/* No decision could be made (state table full, store error): refuse. */
static void
refuse_unavailable(struct pc_limit_verdict *v, const char *id)
{
	refuse(v, 503, "limit.unavailable", "Limits cannot be checked now; "
	    "retry later", id, LIMITER_BUSY_RETRY_US);
}

/* --- configuration ---------------------------------------------------------- */

struct xfer {
	struct pc_limiter *to;
	int64_t now_us;
	struct pc_gcra *g;
	struct pc_budget *b;
	size_t dropped;
};

static int
xfer_rate(void *arg, const char *key, int64_t tat_us)
{
	struct xfer *x = arg;

	if (pc_gcra_restore(x->g, key, tat_us, x->now_us) != 0)
		x->dropped++;
	return 0;
}

static int
xfer_budget(void *arg, const char *key, uint64_t spent, int64_t start_us)
{
	struct xfer *x = arg;

	if (pc_budget_restore(x->b, key, spent, start_us, x->now_us) != 0)
		x->dropped++;
	return 0;
}

static bool
same_breaker(const struct pc_breaker_config *a,
    const struct pc_breaker_config *b)
{
	return a->threshold == b->threshold && a->cooldown_us == b->cooldown_us &&
	    a->max_cooldown_us == b->max_cooldown_us;
}

/* The breaker for `on`/`want`: the current one if its settings are the
 * same (keeping its state), a new one, or none. */
static int
breaker_for(bool on, const struct pc_breaker_config *want,
    struct pc_breaker *cur, const struct pc_breaker_config *cur_cfg,
    struct pc_breaker **out)
{
	*out = NULL;
	if (!on)
		return 0;
	if (cur != NULL && same_breaker(want, cur_cfg)) {
		*out = cur;
		return 0;
	}
	return pc_breaker_new(want, out);
}

int
pc_limiter_set_config(struct pc_limiter *l, const struct pc_limiter_conf *cfg,
    int64_t now_us, char *err, size_t errlen)
{
	struct pc_gcra *g = NULL;
	struct pc_budget *b = NULL;
	struct pc_breaker *kb = NULL, *ub = NULL;
	struct xfer x = { .to = l, .now_us = now_us };
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (cfg->nrate > 0) {
		rc = pc_gcra_new(cfg->rate, cfg->nrate, NULL, NULL, 0, &g, err,
		    errlen);
		if (rc != 0)
			goto out;
	}
	if (cfg->nbudgets > 0) {
		rc = pc_budget_new(cfg->budgets, cfg->nbudgets, NULL, NULL, 0,
		    &b, err, errlen);
		if (rc != 0)
			goto out;
	}
	rc = breaker_for(cfg->key_breaker, &cfg->key_br, l->key_br,
	    &l->key_brc, &kb);
	if (rc == 0)
		rc = breaker_for(cfg->upstream_breaker, &cfg->upstream_br,
		    l->up_br, &l->up_brc, &ub);
	if (rc != 0) {
		snprintf(err, errlen, "breakers: %s", pc_strerror(rc));
		goto out;
	}
	if (cfg->per_key > 0 && l->conc_key == NULL &&
	    (rc = pc_conc_new(0, &l->conc_key)) != 0)
		goto out;
	if (cfg->per_upstream > 0 && l->conc_up == NULL &&
	    (rc = pc_conc_new(0, &l->conc_up)) != 0)
		goto out;
	/* Carry the counters over: ids that no longer exist are dropped. */
	x.g = g;
	x.b = b;
	if (g != NULL && l->gcra != NULL)
		(void)pc_gcra_snapshot(l->gcra, now_us, xfer_rate, &x);
	if (b != NULL && l->budget != NULL)
		(void)pc_budget_snapshot(l->budget, now_us, xfer_budget, &x);
	if (x.dropped > 0)
		pc_info("limits: %zu counter(s) of limits no longer configured "
		    "dropped", x.dropped);
	pc_gcra_free(l->gcra);
	pc_budget_free(l->budget);
	if (l->key_br != kb)
		pc_breaker_free(l->key_br);
	if (l->up_br != ub)
		pc_breaker_free(l->up_br);
	l->gcra = g;
	l->budget = b;
	l->budget_gen++;
	l->key_br = kb;
	l->up_br = ub;
	l->key_brc = cfg->key_br;
	l->up_brc = cfg->upstream_br;
	l->cfg = cfg;
	l->changes++;
	return 0;
out:
	pc_gcra_free(g);
	pc_budget_free(b);
	if (kb != l->key_br)
		pc_breaker_free(kb);
	if (ub != l->up_br)
		pc_breaker_free(ub);
	if (err[0] == '\0')
		snprintf(err, errlen, "%s", pc_strerror(rc));
	return rc;
}

int
pc_limiter_new(const struct pc_limiter_conf *cfg, struct pc_limiter **out,
    char *err, size_t errlen)
{
	struct pc_limiter *l = calloc(1, sizeof(*l));
	int rc;

	*out = NULL;
	if (l == NULL)
		return PC_E_NOMEM;
	rc = pc_limiter_set_config(l, cfg, 0, err, errlen);
	if (rc != 0) {
		pc_limiter_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

void
pc_limiter_free(struct pc_limiter *l)
{
	if (l == NULL)
		return;
	pc_gcra_free(l->gcra);
	pc_budget_free(l->budget);
	pc_breaker_free(l->key_br);
	pc_breaker_free(l->up_br);
	pc_conc_free(l->conc_key);
	pc_conc_free(l->conc_up);
	free(l);
}

bool
pc_limiter_active(const struct pc_limiter *l)
{
	return l != NULL && (l->gcra != NULL || l->budget != NULL ||
	    l->key_br != NULL || l->up_br != NULL || l->cfg->per_key > 0 ||
	    l->cfg->per_upstream > 0);
}

/* --- the front checkpoint ----------------------------------------------------- */

static void
rate_refusal(struct pc_limit_verdict *v, const struct pc_gcra_result *r, int rc)
{
	if (rc != 0) {
		refuse_unavailable(v, r->limit_id);
		return;
	}
	refuse(v, 429, "limit.rate", "Rate limit exceeded", r->limit_id,
	    r->retry_after_us);
	v->has_rate = true;
	pc_gcra_hdr_values(r, &v->rate);
}

/* A breaker's probe that a later check refused: the next call probes. */
static void
probe_back(struct pc_breaker *br, const char *key, bool probe, int64_t now_us)
{
	if (probe)
		pc_breaker_release(br, key, now_us, now_us);
}

void
pc_limiter_admit(struct pc_limiter *l, const struct pc_limit_subject *s,
    int64_t now_us, struct pc_limit_verdict *v)
{
	struct pc_gcra_subject gs = { s->key, s->tool, s->tenant };
	struct pc_gcra_result r;
	int64_t wait = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	v->at_us = now_us;
	v->allowed = true;
	if (l == NULL)
		return;
	if (l->gcra != NULL) {
		rc = pc_gcra_peek_subject(l->gcra, &gs, 1, now_us, &r);
		if (rc != 0 || !r.allowed) {
			rate_refusal(v, &r, rc);
			return;
		}
	}
	if (l->key_br != NULL) {
		rc = pc_breaker_allow(l->key_br, s->key, now_us, &wait);
		if (rc == PC_E_UNAVAIL) {
			refuse(v, 429, "limit.breaker.key", "Calls paused for "
			    "this key after repeated failures", "breaker:key",
			    wait);
			return;
		}
		v->key_breaker = rc >= 0;
		v->key_probe = rc == PC_BREAKER_PROBE;
	}
	if (l->cfg->per_key > 0 && l->conc_key != NULL) {
		rc = pc_conc_acquire(l->conc_key, s->key, l->cfg->per_key, NULL);
		if (rc != 0) {
			probe_back(l->key_br, s->key, v->key_probe, now_us);
			refuse(v, 429, "limit.concurrency.key", "Too many calls "
			    "in flight for this key", "concurrency:key",
			    LIMITER_BUSY_RETRY_US);
			return;
		}
		v->took_key_slot = true;
	}
	if (l->gcra != NULL) {
		rc = pc_gcra_take_subject(l->gcra, &gs, 1, now_us, &r);
		if (rc != 0 || !r.allowed) {
			if (v->took_key_slot)
				pc_conc_release(l->conc_key, s->key);
			v->took_key_slot = false;
			probe_back(l->key_br, s->key, v->key_probe, now_us);
			rate_refusal(v, &r, rc);
			return;
		}
		if (r.limit_id[0] != '\0') {
			v->has_rate = true;
			pc_gcra_hdr_values(&r, &v->rate);
		}
		l->changes++;
	}
}

/* Give back what a checkpoint took: its slot of `key` in cap, and its
 * breaker outcome (when it counts; a probe whose outcome does not count
 * is given back, or the breaker would wait out the probe timeout). */
static void
checkpoint_end(struct pc_conc *cap, struct pc_breaker *br, const char *key,
    bool took_slot, bool breaker_used, bool probe, int64_t at_us,
    bool counted, bool failed, int64_t now_us)
{
	if (took_slot && cap != NULL)
		pc_conc_release(cap, key);
	if (!breaker_used || br == NULL)
		return;
	if (counted)
		(void)pc_breaker_record(br, key, !failed, now_us);
	else if (probe)
		pc_breaker_release(br, key, at_us, now_us);
}

void
pc_limiter_admit_end(struct pc_limiter *l, const char *key,
    const struct pc_limit_verdict *v, bool counted, bool failed,
    int64_t now_us)
{
	if (l != NULL && v->allowed)
		checkpoint_end(l->conc_key, l->key_br, key, v->took_key_slot,
		    v->key_breaker, v->key_probe, v->at_us, counted, failed,
		    now_us);
}

/* --- the forward checkpoint --------------------------------------------------- */

void
pc_limiter_forward(struct pc_limiter *l, const struct pc_limit_subject *s,
    const char *upstream, int64_t now_us, struct pc_limit_verdict *v)
{
	struct pc_budget_subject bs = { s->key, s->tenant };
	struct pc_budget_result br;
	char id[PC_LIMIT_ID_MAX];
	bool charge = s->tool != NULL && l != NULL && l->budget != NULL;
	uint64_t cost = 0;
	int64_t wait = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	v->at_us = now_us;
	v->allowed = true;
	if (l == NULL)
		return;
	if (charge) {
		cost = pc_tool_cost_of(l->cfg, s->tool);
		rc = pc_budget_check(l->budget, &bs, cost, now_us, &br);
		if (rc != 0) {
			refuse_unavailable(v, br.budget_id);
			return;
		}
		if (!br.allowed) {
			refuse(v, 429, "limit.budget", "Budget exhausted",
			    br.budget_id, br.retry_after_us);
			return;
		}
	}
	if (l->up_br != NULL) {
		rc = pc_breaker_allow(l->up_br, upstream, now_us, &wait);
		if (rc == PC_E_UNAVAIL) {
			snprintf(id, sizeof(id), "breaker:%s", upstream);
			refuse(v, 503, "limit.breaker.upstream", "Upstream "
			    "temporarily unavailable; retry later", id, wait);
			return;
		}
		v->up_breaker = rc >= 0;
		v->up_probe = rc == PC_BREAKER_PROBE;
	}
	if (l->cfg->per_upstream > 0 && l->conc_up != NULL) {
		rc = pc_conc_acquire(l->conc_up, upstream, l->cfg->per_upstream,
		    NULL);
		if (rc != 0) {
			probe_back(l->up_br, upstream, v->up_probe, now_us);
			snprintf(id, sizeof(id), "concurrency:%s", upstream);
			refuse(v, 503, "limit.concurrency.upstream", "Upstream "
			    "busy; retry later", id, LIMITER_BUSY_RETRY_US);
			return;
		}
		v->took_up_slot = true;
	}
	if (charge) {
		rc = pc_budget_charge(l->budget, &bs, cost, now_us, &br);
		if (rc != 0 || !br.allowed) {
			if (v->took_up_slot)
				pc_conc_release(l->conc_up, upstream);
			v->took_up_slot = false;
			probe_back(l->up_br, upstream, v->up_probe, now_us);
			if (rc != 0)
				refuse_unavailable(v, br.budget_id);
			else
				refuse(v, 429, "limit.budget", "Budget "
				    "exhausted", br.budget_id,
				    br.retry_after_us);
			return;
		}
		v->charged = cost;
		v->charged_at_us = now_us;
		v->charged_gen = l->budget_gen;
		l->changes++;
	}
}

void
pc_limiter_forward_refund(struct pc_limiter *l,
    const struct pc_limit_subject *s, struct pc_limit_verdict *v,
    int64_t now_us)
{
	struct pc_budget_subject bs = { s->key, s->tenant };
	int rc;

	if (l == NULL || l->budget == NULL || !v->allowed || v->charged == 0)
		return;
	/* A reload since the charge made another budget set: one that was
	 * not charged (a tenant budget added) would be given units it never
	 * paid. The charge stands (fewer units, never more). */
	if (v->charged_gen != l->budget_gen) {
		pc_info("budget: %" PRIu64 " unit(s) of a call that never "
		    "reached its upstream are not given back: the budgets were "
		    "reloaded since", v->charged);
		v->charged = 0;
		return;
	}
	rc = pc_budget_refund(l->budget, &bs, v->charged, v->charged_at_us,
	    now_us);
	if (rc != 0)
		pc_warn("budget: could not give back %" PRIu64 " unit(s) of a "
		    "call that never reached its upstream (%s)", v->charged,
		    pc_strerror(rc));
	v->charged = 0;
	l->changes++;
}

void
pc_limiter_forward_end(struct pc_limiter *l, const char *upstream,
    const struct pc_limit_verdict *v, bool counted, bool failed,
    int64_t now_us)
{
	if (l != NULL && v->allowed)
		checkpoint_end(l->conc_up, l->up_br, upstream, v->took_up_slot,
		    v->up_breaker, v->up_probe, v->at_us, counted, failed,
		    now_us);
}

/* --- persistence --------------------------------------------------------------- */

struct snap {
	int (*cb)(void *, char, const char *, int64_t, int64_t);
	void *arg;
};

static int
snap_rate(void *arg, const char *key, int64_t tat_us)
{
	struct snap *s = arg;

	return s->cb(s->arg, 'r', key, tat_us, 0);
}

static int
snap_budget(void *arg, const char *key, uint64_t spent, int64_t start_us)
{
	struct snap *s = arg;

	return s->cb(s->arg, 'b', key, (int64_t)spent, start_us);
}

int
pc_limiter_snapshot(struct pc_limiter *l, int64_t now_us,
    int (*cb)(void *arg, char kind, const char *key, int64_t v0, int64_t v1),
    void *arg)
{
	struct snap s = { cb, arg };
	int rc = 0;

	if (l->gcra != NULL)
		rc = pc_gcra_snapshot(l->gcra, now_us, snap_rate, &s);
	if (rc == 0 && l->budget != NULL)
		rc = pc_budget_snapshot(l->budget, now_us, snap_budget, &s);
	return rc;
}

int
pc_limiter_restore(struct pc_limiter *l, char kind, const char *key,
    int64_t v0, int64_t v1, int64_t now_us)
{
	if (kind == 'r')
		return l->gcra != NULL ? pc_gcra_restore(l->gcra, key, v0,
		    now_us) : PC_E_NOTFOUND;
	if (kind == 'b')
		return l->budget != NULL && v0 >= 0 ? pc_budget_restore(
		    l->budget, key, (uint64_t)v0, v1, now_us) : PC_E_NOTFOUND;
	return PC_E_INVAL;
}

uint64_t
pc_limiter_changes(const struct pc_limiter *l)
{
	return l->changes;
}
