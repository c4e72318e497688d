/*
 * Unit tests: src/limits/limiter.c (the limits stage as the gateway runs
 * it) and src/limits/limit_db.c (its counters in SQLite). The clock is
 * driven by the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "lib/errors.h"
#include "limits/limit_db.h"
#include "limits/limiter.h"

#define SEC PC_LIMIT_SECOND_US
/* 2023-11-14 22:13:20 UTC: not near a day's end. */
#define T0 (INT64_C(1700000000) * SEC)

static struct pc_gcra_limit per_minute = {
	.id = "per-min", .scope = PC_LIMIT_KEY, .count = 2,
	.period_us = 60 * SEC,
};
static struct pc_budget_limit daily = {
	.id = "daily", .scope = PC_BUDGET_KEY, .period = PC_BUDGET_DAY,
	.amount = 10,
};
static struct pc_tool_cost costs[] = { { "big", 4 }, { "free*", 0 } };

static struct pc_limiter *
mk(const struct pc_limiter_conf *c)
{
	struct pc_limiter *l = NULL;
	char err[128];

	assert_int_equal(pc_limiter_new(c, &l, err, sizeof(err)), 0);
	return l;
}

static void
admit(struct pc_limiter *l, const char *key, const char *tool, int64_t now,
    struct pc_limit_verdict *v)
{
	struct pc_limit_subject s = { key, "", tool };

	pc_limiter_admit(l, &s, now, v);
}

static void
forward(struct pc_limiter *l, const char *key, const char *tool, int64_t now,
    struct pc_limit_verdict *v)
{
	struct pc_limit_subject s = { key, "", tool };

	pc_limiter_forward(l, &s, "up", now, v);
}

static void
nothing_configured_allows_all(void **st)
{
	struct pc_limiter_conf c = { 0 };
	struct pc_limiter *l = mk(&c);
	struct pc_limit_verdict v;

	(void)st;
	assert_false(pc_limiter_active(l));
	admit(l, "k", "t", T0, &v);
	assert_true(v.allowed);
	assert_false(v.has_rate);
	forward(l, "k", "t", T0, &v);
	assert_true(v.allowed);
	pc_limiter_free(l);
}

static void
rate_then_headers(void **st)
{
	struct pc_limiter_conf c = { .rate = &per_minute, .nrate = 1 };
	struct pc_limiter *l = mk(&c);
	struct pc_limit_verdict v;

	(void)st;
	admit(l, "k", "t", T0, &v);
	assert_true(v.allowed);
	assert_true(v.has_rate);
	assert_int_equal(v.rate.limit, 2);
	assert_int_equal(v.rate.remaining, 1);
	admit(l, "k", "t", T0, &v);
	assert_true(v.allowed);
	admit(l, "k", "t", T0 + SEC, &v);
	assert_false(v.allowed);
	assert_int_equal(v.status, 429);
	assert_string_equal(v.reason, "limit.rate");
	assert_string_equal(v.limit_id, "per-min");
	assert_true(v.retry_after_us == 29 * SEC);
	assert_int_equal(v.rate.retry_after_s, 29);
	/* Another key is counted on its own. */
	admit(l, "other", "t", T0 + SEC, &v);
	assert_true(v.allowed);
	pc_limiter_free(l);
}

static void
budget_charged_at_forward(void **st)
{
	struct pc_limiter_conf c = { .budgets = &daily, .nbudgets = 1,
	    .costs = costs, .ncosts = 2 };
	struct pc_limiter *l = mk(&c);
	struct pc_limit_verdict v;

	(void)st;
	assert_true(pc_limiter_active(l));
	/* The front does not charge budgets. */
	for (int i = 0; i < 5; i++) {
		admit(l, "k", "big", T0, &v);
		assert_true(v.allowed);
	}
	forward(l, "k", "big", T0, &v);
	assert_true(v.allowed);
	forward(l, "k", "big", T0, &v);
	assert_true(v.allowed);
	/* 8 of 10: another 4 would exceed, 2 of cost 1 fit, cost 0 always. */
	forward(l, "k", "big", T0, &v);
	assert_false(v.allowed);
	assert_string_equal(v.reason, "limit.budget");
	assert_string_equal(v.limit_id, "daily");
	assert_int_equal(v.status, 429);
	/* Until the next UTC midnight (T0 is 22:13:20). */
	assert_true(v.retry_after_us == (86400 - 80000) * SEC);
	forward(l, "k", "small", T0, &v);
	assert_true(v.allowed);
	forward(l, "k", "free-lunch", T0, &v);
	assert_true(v.allowed);
	forward(l, "k", "small", T0, &v);
	assert_true(v.allowed);
	forward(l, "k", "small", T0, &v);
	assert_false(v.allowed);
	/* Methods other than tools/call pay nothing. */
	forward(l, "k", NULL, T0, &v);
	assert_true(v.allowed);
	pc_limiter_free(l);
}

static void
caps_and_breakers(void **st)
{
	struct pc_limiter_conf c = {
		.per_key = 1, .per_upstream = 1,
		.key_breaker = true,
		.key_br = { .threshold = 2, .cooldown_us = 10 * SEC },
		.upstream_breaker = true,
		.upstream_br = { .threshold = 1, .cooldown_us = 5 * SEC },
	};
	struct pc_limiter *l = mk(&c);
	struct pc_limit_verdict a, b, f;

	(void)st;
	admit(l, "k", "t", T0, &a);
	assert_true(a.allowed && a.took_key_slot && a.key_breaker);
	admit(l, "k", "t", T0, &b);
	assert_false(b.allowed);
	assert_string_equal(b.reason, "limit.concurrency.key");
	assert_int_equal(b.status, 429);
	/* The upstream cap: one call at a time. */
	forward(l, "k", "t", T0, &f);
	assert_true(f.allowed && f.took_up_slot);
	forward(l, "j", "t", T0, &b);
	assert_false(b.allowed);
	assert_string_equal(b.reason, "limit.concurrency.upstream");
	assert_string_equal(b.limit_id, "concurrency:up");
	assert_int_equal(b.status, 503);
	/* The forward failed: the upstream breaker (threshold 1) opens. */
	pc_limiter_forward_end(l, "up", &f, true, true, T0);
	forward(l, "j", "t", T0 + SEC, &b);
	assert_false(b.allowed);
	assert_string_equal(b.reason, "limit.breaker.upstream");
	assert_true(b.retry_after_us == 4 * SEC);
	/* Slots came back: the key's next call passes; two failures in a
	 * row open its breaker. */
	pc_limiter_admit_end(l, "k", &a, true, true, T0);
	admit(l, "k", "t", T0, &a);
	assert_true(a.allowed);
	pc_limiter_admit_end(l, "k", &a, true, true, T0);
	admit(l, "k", "t", T0 + SEC, &a);
	assert_false(a.allowed);
	assert_string_equal(a.reason, "limit.breaker.key");
	assert_true(a.retry_after_us == 9 * SEC);
	/* An outcome that does not count (a later limit refused) leaves the
	 * count alone. */
	admit(l, "x", "t", T0, &a);
	pc_limiter_admit_end(l, "x", &a, false, true, T0);
	admit(l, "x", "t", T0, &a);
	pc_limiter_admit_end(l, "x", &a, true, true, T0);
	admit(l, "x", "t", T0, &a);
	assert_true(a.allowed);
	pc_limiter_admit_end(l, "x", &a, true, false, T0);
	pc_limiter_free(l);
}

/*
 * A breaker's probe whose outcome will not count — its client left, or a
 * later check refused it — used to stay out until probe_timeout: one
 * client resetting its connection as each cooldown ended kept the
 * upstream (or a key) refused for everyone. It is given back now: the
 * next call probes at once.
 */
static void
lost_probes_given_back(void **st)
{
	struct pc_limiter_conf c = {
		.key_breaker = true,
		.key_br = { .threshold = 1, .cooldown_us = 10 * SEC },
		.upstream_breaker = true,
		.upstream_br = { .threshold = 1, .cooldown_us = 5 * SEC },
	};
	struct pc_limiter *l = mk(&c);
	struct pc_limit_verdict f, a, b;
	int64_t t = T0 + 5 * SEC;

	(void)st;
	/* Open the upstream breaker. */
	forward(l, "k", "t", T0, &f);
	pc_limiter_forward_end(l, "up", &f, true, true, T0);
	/* Cooldown over: the probe's client leaves. */
	forward(l, "k", "t", t, &f);
	assert_true(f.allowed && f.up_probe);
	forward(l, "j", "t", t, &b);
	assert_string_equal(b.reason, "limit.breaker.upstream");
	pc_limiter_forward_end(l, "up", &f, false, false, t + 1);
	/* Another caller probes at once. */
	forward(l, "j", "t", t + 2, &f);
	assert_true(f.allowed && f.up_probe);
	pc_limiter_forward_end(l, "up", &f, true, false, t + 3);
	forward(l, "j", "t", t + 4, &b);
	assert_true(b.allowed && !b.up_probe);		/* closed */
	pc_limiter_forward_end(l, "up", &b, true, false, t + 4);

	/* The key breaker: its probe refused further on (the upstream
	 * breaker open again: a later limit, which does not count). */
	admit(l, "q", "t", T0, &a);
	pc_limiter_admit_end(l, "q", &a, true, true, T0);	/* opens */
	forward(l, "q", "t", T0, &f);
	pc_limiter_forward_end(l, "up", &f, true, true, T0 + 10 * SEC);
	t = T0 + 10 * SEC;
	admit(l, "q", "t", t, &a);
	assert_true(a.allowed && a.key_probe);
	admit(l, "q", "t", t, &b);
	assert_string_equal(b.reason, "limit.breaker.key");
	forward(l, "q", "t", t, &f);
	assert_string_equal(f.reason, "limit.breaker.upstream");
	pc_limiter_admit_end(l, "q", &a, false, true, t);
	admit(l, "q", "t", t + 1, &a);
	assert_true(a.allowed && a.key_probe);
	pc_limiter_admit_end(l, "q", &a, true, false, t + 2);
	admit(l, "q", "t", t + 3, &a);
	assert_true(a.allowed && !a.key_probe);
	pc_limiter_admit_end(l, "q", &a, true, false, t + 3);
	pc_limiter_free(l);
}

/*
 * A refund after a reload: the budgets charged are not the ones now in
 * force (a tenant budget added in between was never charged, and would
 * be given units it never paid). The charge stands; before a reload the
 * refund is made.
 */
static void
refund_after_reload(void **st)
{
	struct pc_budget_limit ten = {
		.id = "tenant-day", .scope = PC_BUDGET_TENANT,
		.period = PC_BUDGET_DAY, .amount = 10,
	};
	struct pc_budget_limit both[2] = { daily, ten };
	struct pc_limiter_conf c1 = { .budgets = &daily, .nbudgets = 1,
	    .costs = costs, .ncosts = 2 };
	struct pc_limiter_conf c2 = { .budgets = both, .nbudgets = 2,
	    .costs = costs, .ncosts = 2 };
	struct pc_limiter *l = mk(&c1);
	struct pc_limit_subject s = { "k", "acme", "big" };
	struct pc_limit_verdict v, t;
	char err[128];

	(void)st;
	pc_limiter_forward(l, &s, "up", T0, &v);
	assert_true(v.allowed && v.charged == 4);
	pc_limiter_forward_refund(l, &s, &v, T0);	/* same set: refunded */
	pc_limiter_forward(l, &s, "up", T0, &v);
	assert_true(v.allowed);
	assert_int_equal(pc_limiter_set_config(l, &c2, T0, err, sizeof(err)),
	    0);
	/* Under the new set: the tenant has 4 of 10, the key 8 of 10. */
	pc_limiter_forward(l, &s, "up", T0, &t);
	assert_true(t.allowed);
	pc_limiter_forward(l, &s, "up", T0, &t);
	assert_false(t.allowed);
	assert_string_equal(t.limit_id, "daily");	/* key: 4 + 4 + 4 > 10 */
	/* The call charged before the reload is refunded: not to the tenant. */
	pc_limiter_forward_refund(l, &s, &v, T0);
	struct pc_limit_subject other = { "j", "acme", "big" };
	pc_limiter_forward(l, &other, "up", T0, &t);
	assert_true(t.allowed);				/* tenant: 4 + 4 = 8 */
	pc_limiter_forward(l, &other, "up", T0, &t);
	assert_false(t.allowed);
	assert_string_equal(t.limit_id, "tenant-day");
	pc_limiter_free(l);
}

/*
 * The wall clock stepped back an hour, through the limiter: it peeks
 * before it takes and stops at the peek's refusal, so the peek must store
 * the cut too, or every call is refused again for the whole hour.
 */
static void
clock_step_through_admit(void **st)
{
	struct pc_limiter_conf c = { .rate = &per_minute, .nrate = 1 };
	struct pc_limiter *l = mk(&c);
	struct pc_limit_verdict v;
	int64_t back = T0 - 3600 * SEC;

	(void)st;
	admit(l, "k", "t", T0, &v);
	admit(l, "k", "t", T0, &v);
	assert_true(v.allowed);
	admit(l, "k", "t", back, &v);
	assert_false(v.allowed);
	assert_true(v.retry_after_us <= 30 * SEC);
	admit(l, "k", "t", back + 30 * SEC, &v);
	assert_true(v.allowed);
	pc_limiter_free(l);
}

static void
reload_keeps_counters(void **st)
{
	struct pc_gcra_limit other = { .scope = PC_LIMIT_TOOL, .count = 1,
	    .period_us = SEC };
	struct pc_limiter_conf c1 = { .rate = &per_minute, .nrate = 1,
	    .budgets = &daily, .nbudgets = 1 };
	struct pc_gcra_limit both[2] = { per_minute, other };
	struct pc_limiter_conf c2 = { .rate = both, .nrate = 2 };
	struct pc_limiter *l = mk(&c1);
	struct pc_limit_verdict v;
	char err[128];

	(void)st;
	admit(l, "k", "t", T0, &v);
	admit(l, "k", "t", T0, &v);
	forward(l, "k", "t", T0, &v);
	assert_int_equal(pc_limiter_set_config(l, &c2, T0, err, sizeof(err)),
	    0);
	/* per-min still exists: its state came along. */
	admit(l, "k", "u", T0, &v);
	assert_false(v.allowed);
	assert_string_equal(v.limit_id, "per-min");
	/* A bad set is refused and the running one kept. */
	struct pc_gcra_limit dup[2] = { per_minute, per_minute };
	struct pc_limiter_conf bad = { .rate = dup, .nrate = 2 };
	assert_int_equal(pc_limiter_set_config(l, &bad, T0, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "duplicate"));
	admit(l, "k", "u", T0, &v);
	assert_false(v.allowed);
	pc_limiter_free(l);
}

static void
saved_and_restored(void **st)
{
	struct pc_limiter_conf c = { .rate = &per_minute, .nrate = 1,
	    .budgets = &daily, .nbudgets = 1, .costs = costs, .ncosts = 2 };
	struct pc_limiter *l = mk(&c), *l2;
	struct pc_limit_db *db = NULL;
	struct pc_limit_verdict v;
	char path[] = "/tmp/pc-limiter-XXXXXX", err[256];
	size_t restored = 0, dropped = 0;
	struct stat sb;
	int fd;

	(void)st;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	/* mkstemp makes 0600: a looser mode is refused. */
	chmod(path, 0644);
	assert_int_equal(pc_limit_db_open(path, &db, err, sizeof(err)),
	    PC_E_IO);
	assert_non_null(strstr(err, "chmod 600"));
	chmod(path, 0600);
	assert_int_equal(pc_limit_db_open(path, &db, err, sizeof(err)), 0);
	admit(l, "k", "t", T0, &v);
	admit(l, "k", "t", T0, &v);
	forward(l, "k", "big", T0, &v);
	assert_int_equal(pc_limit_db_save(db, l, T0), 0);
	assert_int_equal(pc_limit_db_save(db, l, T0), 0); /* replaces */
	pc_limit_db_close(db);
	pc_limiter_free(l);

	l2 = mk(&c);
	assert_int_equal(pc_limit_db_open(path, &db, err, sizeof(err)), 0);
	assert_int_equal(pc_limit_db_load(db, l2, T0 + SEC, &restored,
	    &dropped), 0);
	assert_int_equal(restored, 2);
	assert_int_equal(dropped, 0);
	admit(l2, "k", "t", T0 + SEC, &v);
	assert_false(v.allowed);
	assert_true(v.retry_after_us == 29 * SEC);
	/* 4 of 10 spent before: 6 left. */
	forward(l2, "k", "big", T0 + SEC, &v);
	assert_true(v.allowed);
	forward(l2, "k", "big", T0 + SEC, &v);
	assert_false(v.allowed);
	pc_limit_db_close(db);
	pc_limiter_free(l2);

	/* Counters of limits no longer configured are dropped on load. */
	struct pc_limiter_conf none = { 0 };
	l2 = mk(&none);
	assert_int_equal(pc_limit_db_open(path, &db, err, sizeof(err)), 0);
	assert_int_equal(pc_limit_db_load(db, l2, T0 + SEC, &restored,
	    &dropped), 0);
	assert_int_equal(restored, 0);
	assert_int_equal(dropped, 2);
	pc_limit_db_close(db);
	pc_limiter_free(l2);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);
	unlink(path);
	/* SQLite's WAL files. */
	char side[sizeof(path) + 8];
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nothing_configured_allows_all),
		cmocka_unit_test(rate_then_headers),
		cmocka_unit_test(budget_charged_at_forward),
		cmocka_unit_test(caps_and_breakers),
		cmocka_unit_test(lost_probes_given_back),
		cmocka_unit_test(refund_after_reload),
		cmocka_unit_test(clock_step_through_admit),
		cmocka_unit_test(reload_keeps_counters),
		cmocka_unit_test(saved_and_restored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
