/*
 * Circuit breakers and concurrency caps (see breaker.h, docs/limits.md).
 *
 * Both keep their per-key state in the in-memory limit store of gcra.h, so
 * they share its bounded, allocation-free table and its eviction rules:
 * a closed breaker with no failures and a cap with no slot taken have no
 * entry at all; an open breaker is never evicted (evicting it would close
 * it).
 */
#include "limits/breaker.h"

#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "limits/gcra.h"

/* While the probe is out, callers are told to come back within this: the
 * probe is usually one call's latency away from closing the breaker, so
 * the full probe timeout would be far too pessimistic a hint. */
#define PROBE_RETRY_US PC_LIMIT_SECOND_US
#define DEF_FORGET_US PC_LIMIT_HOUR_US

/* pc_lval slots of a breaker. */
enum { B_STATE = 0, B_FAILS, B_UNTIL, B_COOL };

struct pc_breaker {
	struct pc_breaker_config cfg;
	const struct pc_limit_store_ops *ops;
	void *ctx;
};

static bool
key_ok(const char *key)
{
	return key != NULL && key[0] != '\0' &&
	    strnlen(key, PC_LIMIT_KEY_MAX) < PC_LIMIT_KEY_MAX;
}

int
pc_breaker_new(const struct pc_breaker_config *cfg, struct pc_breaker **out)
{
	struct pc_breaker *br;
	int rc;

	if (cfg == NULL || cfg->threshold == 0 || cfg->cooldown_us <= 0 ||
	    (cfg->max_cooldown_us != 0 &&
	    cfg->max_cooldown_us < cfg->cooldown_us) ||
	    cfg->probe_timeout_us < 0 || cfg->forget_us < 0)
		return PC_E_CONFIG;
	br = calloc(1, sizeof(*br));
	if (br == NULL)
		return PC_E_NOMEM;
	br->cfg = *cfg;
	if (br->cfg.max_cooldown_us == 0)
		br->cfg.max_cooldown_us = cfg->cooldown_us;
	if (br->cfg.probe_timeout_us == 0)
		br->cfg.probe_timeout_us = cfg->cooldown_us;
	if (br->cfg.forget_us == 0)
		br->cfg.forget_us = DEF_FORGET_US;
	rc = pc_limit_mem_new(cfg->max_entries, &br->ops, &br->ctx);
	if (rc != 0) {
		free(br);
		return rc;
	}
	*out = br;
	return 0;
}

void
pc_breaker_free(struct pc_breaker *br)
{
	if (br == NULL)
		return;
	br->ops->destroy(br->ctx);
	free(br);
}

/* One read-modify-write of a single key; the in-memory store has no
 * concurrent writer, so the compare cannot fail. */
static int
put(void *ctx, const struct pc_limit_store_ops *ops, const char *key,
    const struct pc_lval *old, bool found, const struct pc_lval *val,
    int64_t now_us)
{
	const char *keys[1] = { key };

	return ops->cas(ctx, 1, keys, old, &found, val, now_us);
}

int
pc_breaker_allow(struct pc_breaker *br, const char *key, int64_t now_us,
    int64_t *retry_after_us)
{
	const char *keys[1] = { key };
	struct pc_lval old, val;
	int64_t span;
	bool found;
	int rc;

	if (retry_after_us != NULL)
		*retry_after_us = 0;
	if (!key_ok(key))
		return PC_E_INVAL;

	rc = br->ops->get(br->ctx, 1, keys, &old, &found);
	if (rc != 0)
		return rc;
	if (!found || old.v[B_STATE] == PC_BREAKER_CLOSED)
		return 0;
	/* Never further ahead than the cooldown (or the probe's window) that
	 * set it: if it is, the wall clock stepped back, and the wait would
	 * grow by the step. The cut is stored, or every call would cut it
	 * again to a whole cooldown from its own now. */
	span = old.v[B_STATE] == PC_BREAKER_HALF_OPEN ?
	    br->cfg.probe_timeout_us : old.v[B_COOL];
	if (old.v[B_UNTIL] - now_us > span) {
		val = old;
		val.v[B_UNTIL] = now_us + span;
		if (put(br->ctx, br->ops, key, &old, found, &val, now_us) == 0)
			old = val;
		else
			old.v[B_UNTIL] = now_us + span;
	}
	if (now_us < old.v[B_UNTIL]) {
		int64_t wait = old.v[B_UNTIL] - now_us;
		if (old.v[B_STATE] == PC_BREAKER_HALF_OPEN &&
		    wait > PROBE_RETRY_US)
			wait = PROBE_RETRY_US;
		if (retry_after_us != NULL)
			*retry_after_us = wait;
		return PC_E_UNAVAIL;
	}
	/* Cooldown over (or the last probe never reported): this call is
	 * the one probe; everyone else waits for its outcome. */
	val = old;
	val.v[B_STATE] = PC_BREAKER_HALF_OPEN;
	val.v[B_UNTIL] = now_us + br->cfg.probe_timeout_us;
	val.expire_us = INT64_MAX;
	rc = put(br->ctx, br->ops, key, &old, found, &val, now_us);
	return rc != 0 ? rc : PC_BREAKER_PROBE;
}

void
pc_breaker_release(struct pc_breaker *br, const char *key, int64_t allowed_us,
    int64_t now_us)
{
	const char *keys[1] = { key };
	struct pc_lval old, val;
	bool found;

	if (br == NULL || !key_ok(key) ||
	    br->ops->get(br->ctx, 1, keys, &old, &found) != 0 || !found)
		return;
	/* Its window still names it: this probe is the one out. */
	if (old.v[B_STATE] != PC_BREAKER_HALF_OPEN ||
	    old.v[B_UNTIL] != allowed_us + br->cfg.probe_timeout_us ||
	    now_us >= old.v[B_UNTIL])
		return;
	val = old;
	val.v[B_UNTIL] = now_us;
	(void)put(br->ctx, br->ops, key, &old, found, &val, now_us);
}

static void
open_for(struct pc_lval *v, int64_t cool, int64_t now_us)
{
	v->v[B_STATE] = PC_BREAKER_OPEN;
	v->v[B_COOL] = cool;
	v->v[B_UNTIL] = now_us + cool;
	v->expire_us = INT64_MAX;
}

int
pc_breaker_record(struct pc_breaker *br, const char *key, bool ok,
    int64_t now_us)
{
	const char *keys[1] = { key };
	struct pc_lval old, val;
	bool found;
	int rc;

	if (!key_ok(key))
		return PC_E_INVAL;
	rc = br->ops->get(br->ctx, 1, keys, &old, &found);
	if (rc != 0)
		return rc;
	val = old;
	switch (found ? old.v[B_STATE] : PC_BREAKER_CLOSED) {
	case PC_BREAKER_OPEN:
		/* A call admitted before the breaker opened: its outcome
		 * says nothing the failures that opened it did not. */
		return 0;
	case PC_BREAKER_HALF_OPEN:
		if (ok) {
			val.expire_us = 0;	/* closed, cooldown reset */
		} else {
			int64_t cool = old.v[B_COOL];
			cool = cool > br->cfg.max_cooldown_us / 2 ?
			    br->cfg.max_cooldown_us : cool * 2;
			open_for(&val, cool, now_us);
		}
		break;
	default:
		if (ok) {
			if (!found)
				return 0;
			val.expire_us = 0;
			break;
		}
		val.v[B_STATE] = PC_BREAKER_CLOSED;
		val.v[B_FAILS] = (found && old.expire_us > now_us ?
		    old.v[B_FAILS] : 0) + 1;
		val.expire_us = now_us + br->cfg.forget_us;
		if (val.v[B_FAILS] >= (int64_t)br->cfg.threshold)
			open_for(&val, br->cfg.cooldown_us, now_us);
		break;
	}
	/* expire 0 with now 0 makes the store drop the entry. */
	rc = put(br->ctx, br->ops, key, &old, found, &val,
	    val.expire_us == 0 ? 0 : now_us);
	if (rc == PC_E_LIMIT)
		pc_warn("breaker table full: a failure of %s was not counted",
		    key);
	else if (rc == 0 && val.v[B_STATE] == PC_BREAKER_OPEN)
		pc_info("breaker %s open for %lld ms after %lld consecutive "
		    "failures", key, (long long)(val.v[B_COOL] / 1000),
		    (long long)val.v[B_FAILS]);
	return rc;
}

enum pc_breaker_state
pc_breaker_state(struct pc_breaker *br, const char *key, int64_t now_us,
    uint32_t *failures, int64_t *open_until_us)
{
	const char *keys[1] = { key };
	struct pc_lval v;
	bool found = false;

	if (failures != NULL)
		*failures = 0;
	if (open_until_us != NULL)
		*open_until_us = 0;
	if (!key_ok(key) || br->ops->get(br->ctx, 1, keys, &v, &found) != 0 ||
	    !found)
		return PC_BREAKER_CLOSED;
	if (v.v[B_STATE] == PC_BREAKER_CLOSED) {
		/* Failures past forget_us are forgotten even before the
		 * entry is evicted. */
		if (failures != NULL && v.expire_us > now_us)
			*failures = (uint32_t)v.v[B_FAILS];
		return PC_BREAKER_CLOSED;
	}
	if (failures != NULL)
		*failures = (uint32_t)v.v[B_FAILS];
	if (v.v[B_STATE] == PC_BREAKER_OPEN) {
		if (open_until_us != NULL)
			*open_until_us = v.v[B_UNTIL];
		return now_us < v.v[B_UNTIL] ? PC_BREAKER_OPEN :
		    PC_BREAKER_HALF_OPEN;
	}
	return PC_BREAKER_HALF_OPEN;
}

/* ---- concurrency caps --------------------------------------------------- */

struct pc_conc {
	const struct pc_limit_store_ops *ops;
	void *ctx;
};

int
pc_conc_new(size_t max_entries, struct pc_conc **out)
{
	struct pc_conc *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL)
		return PC_E_NOMEM;
	rc = pc_limit_mem_new(max_entries, &c->ops, &c->ctx);
	if (rc != 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void
pc_conc_free(struct pc_conc *c)
{
	if (c == NULL)
		return;
	c->ops->destroy(c->ctx);
	free(c);
}

/* Counters never expire by time: a taken slot is held until released.
 * An entry whose count falls to 0 is written with expire 0 at "now" 0,
 * which the store drops. */
static int
conc_add(struct pc_conc *c, const char *key, int delta, uint32_t cap,
    uint32_t *after)
{
	const char *keys[1] = { key };
	struct pc_lval old, val;
	bool found;
	int rc;

	rc = c->ops->get(c->ctx, 1, keys, &old, &found);
	if (rc != 0)
		return rc;
	int64_t n = found ? old.v[0] : 0;
	if (delta > 0 && n >= (int64_t)cap)
		return PC_E_LIMIT;
	if (delta < 0 && n == 0)
		return PC_E_NOTFOUND;
	val = old;
	val.v[0] = n + delta;
	val.expire_us = val.v[0] > 0 ? INT64_MAX : 0;
	rc = put(c->ctx, c->ops, key, &old, found, &val, 0);
	if (rc == 0 && after != NULL)
		*after = (uint32_t)val.v[0];
	return rc;
}

int
pc_conc_acquire(struct pc_conc *c, const char *key, uint32_t cap,
    uint32_t *inflight)
{
	if (!key_ok(key) || cap == 0)
		return PC_E_INVAL;
	return conc_add(c, key, 1, cap, inflight);
}

void
pc_conc_release(struct pc_conc *c, const char *key)
{
	if (!key_ok(key) || conc_add(c, key, -1, 0, NULL) != 0)
		pc_error("concurrency slot released that was not taken");
}

uint32_t
pc_conc_count(struct pc_conc *c, const char *key)
{
	const char *keys[1] = { key };
	struct pc_lval v;
	bool found;

	if (!key_ok(key) || c->ops->get(c->ctx, 1, keys, &v, &found) != 0 ||
	    !found)
		return 0;
	return (uint32_t)v.v[0];
}
