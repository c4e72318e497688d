/* Unit tests: src/limits/gcra.c (GCRA rate limits, the in-memory store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "limits/gcra.h"

/* 2023-11-14T22:13:20Z: any wall-clock instant works; a real one keeps the
 * arithmetic honest about magnitudes. */
#define T0 (INT64_C(1700000000) * PC_LIMIT_SECOND_US)
#define S(x) ((int64_t)((x) * 1000000.0))

static struct pc_gcra *
mk(const struct pc_gcra_limit *l, size_t n)
{
	struct pc_gcra *g = NULL;
	char err[160];

	assert_int_equal(pc_gcra_new(l, n, NULL, NULL, 0, &g, err,
	    sizeof(err)), 0);
	return g;
}

static struct pc_gcra_limit
lim(enum pc_limit_scope sc, uint64_t count, int64_t period, uint64_t burst)
{
	struct pc_gcra_limit l;

	memset(&l, 0, sizeof(l));
	l.scope = sc;
	l.count = count;
	l.period_us = period;
	l.burst = burst;
	return l;
}

static void
burst_then_steady(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_KEY, 30, PC_LIMIT_MINUTE_US, 30);
	struct pc_gcra *g = mk(&l, 1);
	struct pc_gcra_result r;
	char hdr[128];

	(void)st;
	for (int i = 0; i < 30; i++) {
		assert_int_equal(pc_gcra_take(g, "alice", 1, T0, &r), 0);
		assert_true(r.allowed);
		assert_int_equal(r.remaining, 29 - i);
		assert_int_equal(r.limit, 30);
		assert_string_equal(r.limit_id, "key:minute");
	}
	assert_int_equal(pc_gcra_take(g, "alice", 1, T0, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(2));
	assert_string_equal(r.limit_id, "key:minute");
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_us, S(60));
	assert_int_equal(pc_gcra_headers(&r, hdr, sizeof(hdr)) > 0, 1);
	assert_string_equal(hdr, "RateLimit-Limit: 30\r\nRateLimit-Remaining: 0"
	    "\r\nRateLimit-Reset: 60\r\nRetry-After: 2\r\n");

	/* Another key is not affected. */
	assert_int_equal(pc_gcra_take(g, "bob", 1, T0, &r), 0);
	assert_true(r.allowed);

	/* One microsecond early is still refused, and says so exactly. */
	assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(2) - 1, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, 1);
	assert_int_equal(pc_gcra_headers(&r, hdr, sizeof(hdr)) > 0, 1);
	assert_non_null(strstr(hdr, "Retry-After: 1\r\n"));

	/* After 2 s, exactly one more; then the steady rate: one per 2 s. */
	assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(2), &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(2), &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(2));
	for (int k = 2; k < 10; k++) {
		assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(2 * k), &r), 0);
		assert_true(r.allowed);
		assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(2 * k), &r), 0);
		assert_false(r.allowed);
	}
	/* A quiet minute restores the whole burst. */
	for (int i = 0; i < 30; i++) {
		assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(78), &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_gcra_take(g, "alice", 1, T0 + S(78), &r), 0);
	assert_false(r.allowed);
	pc_gcra_free(g);
}

static void
minute_and_hour(void **st)
{
	/* Seed 000: 30 a minute and 500 an hour per user. */
	struct pc_gcra_limit l[2] = {
		lim(PC_LIMIT_KEY, 30, PC_LIMIT_MINUTE_US, 0),
		lim(PC_LIMIT_KEY, 500, PC_LIMIT_HOUR_US, 0),
	};
	struct pc_gcra *g = mk(l, 2);
	struct pc_gcra_result r;
	int k;

	(void)st;
	for (int i = 0; i < 30; i++) {
		assert_int_equal(pc_gcra_take(g, "u", 1, T0, &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_gcra_take(g, "u", 1, T0, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "key:minute");
	assert_int_equal(r.retry_after_us, S(2));

	/*
	 * Then one call every 2 s (the minute's steady rate). The hour's
	 * tolerance is 3600 s and each call costs 7.2 s of it: after the 30,
	 * its TAT is T0 + 216 s and the k-th later call (at 2k s) needs
	 * 216 + 7.2k - 3600 <= 2k, so k = 651 is the first the hour refuses,
	 * 1.2 s early.
	 */
	for (k = 1; k <= 650; k++) {
		assert_int_equal(pc_gcra_take(g, "u", 1, T0 + S(2 * k), &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_gcra_take(g, "u", 1, T0 + S(2 * k), &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "key:hour");
	assert_int_equal(r.retry_after_us, S(1.2));
	assert_int_equal(r.limit, 500);
	/* Both refuse: the one that frees last is named. */
	assert_int_equal(pc_gcra_take(g, "u", 1, T0 + S(2 * k) + S(1.2), &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take(g, "u", 1, T0 + S(2 * k) + S(1.2), &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "key:hour");
	assert_int_equal(r.retry_after_us, S(7.2));
	pc_gcra_free(g);
}

static void
per_second_burst_one(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_GLOBAL, 10, PC_LIMIT_SECOND_US, 1);
	struct pc_gcra *g = mk(&l, 1);
	struct pc_gcra_result r;

	(void)st;
	assert_int_equal(pc_gcra_take(g, "x", 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.limit_id, "global:second");
	assert_int_equal(r.remaining, 0);
	assert_int_equal(pc_gcra_take(g, "y", 1, T0, &r), 0);
	assert_false(r.allowed);	/* global: every key shares it */
	assert_int_equal(r.retry_after_us, 100000);
	assert_int_equal(pc_gcra_take(g, "x", 1, T0 + 99999, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, 1);
	assert_int_equal(pc_gcra_take(g, "x", 1, T0 + 100000, &r), 0);
	assert_true(r.allowed);
	/* 10 per second sustained over 10 s: exactly 100 pass. */
	int n = 0;
	for (int64_t t = T0 + 200000; t < T0 + 200000 + S(10); t += 10000) {
		assert_int_equal(pc_gcra_take(g, "x", 1, t, &r), 0);
		n += r.allowed;
	}
	assert_int_equal(n, 100);
	pc_gcra_free(g);
}

static void
cost_above_one(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_KEY, 30, PC_LIMIT_MINUTE_US, 0);
	struct pc_gcra *g = mk(&l, 1);
	struct pc_gcra_result r;
	struct pc_gcra_hdr h;

	(void)st;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pc_gcra_take(g, "k", 10, T0, &r), 0);
		assert_true(r.allowed);
		assert_int_equal(r.remaining, 20 - 10 * i);
	}
	assert_int_equal(pc_gcra_take(g, "k", 1, T0, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(2));
	/* 18 s later 9 units are back: 10 is refused (2 s more), 9 passes. */
	assert_int_equal(pc_gcra_take(g, "k", 10, T0 + S(18), &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(2));
	assert_int_equal(r.remaining, 9);
	assert_int_equal(pc_gcra_take(g, "k", 9, T0 + S(18), &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	/* More than the burst can never pass: no Retry-After to promise. */
	assert_int_equal(pc_gcra_take(g, "fresh", 31, T0, &r), 0);
	assert_false(r.allowed);
	assert_true(r.retry_after_us == INT64_MAX);
	pc_gcra_hdr_values(&r, &h);
	assert_false(h.has_retry_after);
	/* Cost 0 is always allowed and charges nothing. */
	assert_int_equal(pc_gcra_take(g, "k", 0, T0 + S(18), &r), 0);
	assert_true(r.allowed);
	pc_gcra_free(g);
}

static void
multi_limit_atomic(void **st)
{
	struct pc_gcra_limit l[3] = {
		lim(PC_LIMIT_KEY, 30, PC_LIMIT_MINUTE_US, 0),
		lim(PC_LIMIT_TOOL, 5, PC_LIMIT_MINUTE_US, 0),
		lim(PC_LIMIT_TENANT, 100, PC_LIMIT_MINUTE_US, 0),
	};
	struct pc_gcra *g;
	struct pc_gcra_result r;
	struct pc_gcra_subject s = { "a", "search", "acme" };
	struct pc_gcra_subject other = { "a", "fetch", "acme" };
	struct pc_gcra_subject nokey = { .key = "a" };

	(void)st;
	pc_strlcpy(l[1].match, "search", sizeof(l[1].match));
	g = mk(l, 3);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0, &r), 0);
		assert_true(r.allowed);
		/* The tightest limit is the one reported. */
		assert_string_equal(r.limit_id, "tool[search]:minute");
		assert_int_equal(r.remaining, 4 - i);
	}
	for (int i = 0; i < 10; i++) {
		assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0, &r), 0);
		assert_false(r.allowed);
		assert_string_equal(r.limit_id, "tool[search]:minute");
		assert_int_equal(r.retry_after_us, S(12));
	}
	/* The refusals charged neither the key nor the tenant. */
	assert_int_equal(pc_gcra_peek_subject(g, &nokey, 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.limit_id, "key:minute");
	assert_int_equal(r.remaining, 24);
	/* Peek charged nothing either: 25 more calls to another tool pass. */
	for (int i = 0; i < 25; i++) {
		assert_int_equal(pc_gcra_take_subject(g, &other, 1, T0, &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_gcra_take_subject(g, &other, 1, T0, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "key:minute");
	/* 30 tenant units were spent, not 40. */
	struct pc_gcra_subject ten = { .tenant = "acme" };
	assert_int_equal(pc_gcra_peek_subject(g, &ten, 1, T0, &r), 0);
	assert_string_equal(r.limit_id, "tenant:minute");
	assert_int_equal(r.remaining, 69);
	pc_gcra_free(g);
}

static void
key_tool_scope(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_KEY_TOOL, 2, PC_LIMIT_MINUTE_US, 0);
	struct pc_gcra *g = mk(&l, 1);
	struct pc_gcra_result r;
	struct pc_gcra_subject a = { "a", "t1", NULL }, b = { "b", "t1", NULL };
	struct pc_gcra_subject a2 = { "a", "t2", NULL };
	/* "a\x1f" + "t1" must not collide with "a" + "\x1ft1". */
	struct pc_gcra_subject evil = { "a\x1ft1", "x", NULL };

	(void)st;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pc_gcra_take_subject(g, &a, 1, T0, &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_gcra_take_subject(g, &a, 1, T0, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "key+tool:minute");
	assert_int_equal(pc_gcra_take_subject(g, &b, 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take_subject(g, &a2, 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take_subject(g, &evil, 1, T0, &r), PC_E_INVAL);
	assert_false(r.allowed);
	pc_gcra_free(g);
}

static void
memory_cap_fails_closed(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_KEY, 1, PC_LIMIT_SECOND_US, 1);
	const struct pc_limit_store_ops *ops;
	void *ctx;
	struct pc_gcra *g = NULL;
	struct pc_gcra_result r;
	char err[128], key[16];

	(void)st;
	assert_int_equal(pc_limit_mem_new(4, &ops, &ctx), 0);
	assert_int_equal(pc_gcra_new(&l, 1, ops, ctx, 0, &g, err, sizeof(err)),
	    0);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(pc_gcra_take(g, key, 1, T0, &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_limit_mem_count(ctx), 4);
	/* A fifth subject while all four are live: refused, not tracked. */
	assert_int_equal(pc_gcra_take(g, "k4", 1, T0 + 1, &r), PC_E_LIMIT);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "capacity");
	assert_int_equal(r.retry_after_us, S(1));
	/* Known subjects keep their exact limits meanwhile. */
	assert_int_equal(pc_gcra_take(g, "k0", 1, T0 + 2, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(1) - 2);
	/* Once their TATs pass, the entries are evicted for new subjects. */
	for (int i = 4; i < 8; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(pc_gcra_take(g, key, 1, T0 + S(1), &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_limit_mem_count(ctx), 4);
	/* Many subjects come and go through a small table. */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		assert_int_equal(pc_gcra_take(g, key, 1, T0 + S(2 + i), &r), 0);
		assert_true(r.allowed);
	}
	pc_gcra_free(g);
	ops->destroy(ctx);
}

struct snap {
	char key[8][PC_LIMIT_KEY_MAX];
	int64_t tat[8];
	int n;
};

static int
snap_cb(void *arg, const char *key, int64_t tat)
{
	struct snap *s = arg;

	if (s->n == 8)
		return 1;
	pc_strlcpy(s->key[s->n], key, sizeof(s->key[0]));
	s->tat[s->n++] = tat;
	return 0;
}

static void
snapshot_restore(void **st)
{
	struct pc_gcra_limit l[2] = {
		lim(PC_LIMIT_KEY, 30, PC_LIMIT_MINUTE_US, 0),
		lim(PC_LIMIT_GLOBAL, 1000, PC_LIMIT_HOUR_US, 0),
	};
	struct pc_gcra *g = mk(l, 2), *g2;
	struct pc_gcra_result r;
	struct snap s = { .n = 0 };

	(void)st;
	for (int i = 0; i < 30; i++)
		assert_int_equal(pc_gcra_take(g, "alice", 1, T0, &r), 0);
	assert_int_equal(pc_gcra_take(g, "bob", 1, T0, &r), 0);
	assert_int_equal(pc_gcra_snapshot(g, T0 + S(1), snap_cb, &s), 0);
	assert_int_equal(s.n, 3);	/* alice, bob (TAT T0+2s), global */
	/* bob's TAT has passed by T0+3s: it is not worth saving. */
	s.n = 0;
	assert_int_equal(pc_gcra_snapshot(g, T0 + S(3), snap_cb, &s), 0);
	assert_int_equal(s.n, 2);
	pc_gcra_free(g);

	g2 = mk(l, 2);
	for (int i = 0; i < s.n; i++)
		assert_int_equal(pc_gcra_restore(g2, s.key[i], s.tat[i],
		    T0 + S(3)), 0);
	/* After the "restart" alice is exactly where she was. */
	assert_int_equal(pc_gcra_take(g2, "alice", 1, T0 + S(3), &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take(g2, "alice", 1, T0 + S(3), &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(1));
	/* The global limit kept its 31 charged calls (3.6 s each) and the
	 * one above makes 32: one more leaves (3600 - (32 + 1) * 3.6 + 3) /
	 * 3.6 = 967 whole calls. */
	struct pc_gcra_subject any = { .key = NULL };
	assert_int_equal(pc_gcra_peek_subject(g2, &any, 1, T0 + S(3), &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.limit_id, "global:hour");
	assert_int_equal(r.remaining, 967);

	/* Unknown limit (config changed), malformed, past, clamped. */
	assert_int_equal(pc_gcra_restore(g2, "gone:minute\x1f" "x", T0 + S(9),
	    T0), PC_E_NOTFOUND);
	assert_int_equal(pc_gcra_restore(g2, "no separator", T0, T0),
	    PC_E_INVAL);
	assert_int_equal(pc_gcra_restore(g2, "key:minute\x1f" "dave", T0 - 1,
	    T0), 0);
	assert_int_equal(pc_gcra_take(g2, "dave", 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_restore(g2, "key:minute\x1f" "eve",
	    T0 + PC_LIMIT_DAY_US, T0), 0);
	assert_int_equal(pc_gcra_take(g2, "eve", 1, T0, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(2));	/* clamped to 60 s */
	pc_gcra_free(g2);
}

static void
config_checks(void **st)
{
	struct pc_gcra_limit l[2];
	struct pc_gcra *g = NULL;
	char err[160];

	(void)st;
	l[0] = lim(PC_LIMIT_KEY, 0, PC_LIMIT_MINUTE_US, 0);
	assert_int_equal(pc_gcra_new(l, 1, NULL, NULL, 0, &g, err, sizeof(err)),
	    PC_E_CONFIG);
	l[0] = lim(PC_LIMIT_KEY, 10, 0, 0);
	assert_int_equal(pc_gcra_new(l, 1, NULL, NULL, 0, &g, err, sizeof(err)),
	    PC_E_CONFIG);
	l[0] = lim(PC_LIMIT_KEY, 10, PC_LIMIT_MINUTE_US, 0);
	l[1] = lim(PC_LIMIT_KEY, 20, PC_LIMIT_MINUTE_US, 0);
	assert_int_equal(pc_gcra_new(l, 2, NULL, NULL, 0, &g, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "duplicate"));
	pc_strlcpy(l[1].id, "key-burst", sizeof(l[1].id));
	assert_int_equal(pc_gcra_new(l, 2, NULL, NULL, 0, &g, err, sizeof(err)),
	    0);
	pc_gcra_free(g);
	l[0] = lim(PC_LIMIT_GLOBAL, 1, PC_LIMIT_DAY_US, 1000);
	assert_int_equal(pc_gcra_new(l, 1, NULL, NULL, 0, &g, err, sizeof(err)),
	    PC_E_CONFIG);
	assert_non_null(strstr(err, "burst"));
	l[0] = lim(PC_LIMIT_GLOBAL, 3, 90 * PC_LIMIT_SECOND_US, 0);
	pc_strlcpy(l[0].id, "bad id", sizeof(l[0].id));
	assert_int_equal(pc_gcra_new(l, 1, NULL, NULL, 0, &g, err, sizeof(err)),
	    PC_E_CONFIG);
	pc_gcra_free(NULL);
}

static void
derived_ids_and_period_rounding(void **st)
{
	struct pc_gcra_limit l[2] = {
		lim(PC_LIMIT_GLOBAL, 3, 90 * PC_LIMIT_SECOND_US, 1),
		lim(PC_LIMIT_KEY_TOOL, 7, PC_LIMIT_SECOND_US, 1),
	};
	struct pc_gcra *g;
	struct pc_gcra_result r;
	struct pc_gcra_subject s = { "k", "exec", NULL };
	struct pc_gcra_subject other = { "k", "read", NULL };

	(void)st;
	pc_strlcpy(l[1].match, "exec", sizeof(l[1].match));
	g = mk(&l[0], 1);
	assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0 + S(1), &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "global:90s");
	assert_int_equal(r.retry_after_us, S(29));
	assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0 + S(30), &r), 0);
	assert_true(r.allowed);
	pc_gcra_free(g);

	/* 7/s: the spacing rounds up to 142858 us, never faster than 7/s. */
	g = mk(&l[1], 1);
	assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take_subject(g, &s, 1, T0 + 1, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.limit_id, "key+tool[exec]:second");
	assert_int_equal(r.retry_after_us, 142857);
	int n = 0;
	for (int64_t t = T0 + 142858; t < T0 + S(10) + 142858; t += 1000) {
		assert_int_equal(pc_gcra_take_subject(g, &s, 1, t, &r), 0);
		n += r.allowed;
	}
	assert_int_equal(n, 70);
	/* The limit matches one tool only. */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(pc_gcra_take_subject(g, &other, 1, T0, &r), 0);
		assert_true(r.allowed);
		assert_string_equal(r.limit_id, "");
	}
	pc_gcra_free(g);
}

static void
header_format(void **st)
{
	struct pc_gcra_result r;
	char small[20], buf[128];

	(void)st;
	memset(&r, 0, sizeof(r));
	r.allowed = true;
	r.limit = 500;
	r.remaining = 499;
	r.reset_us = S(7.2);
	int w = pc_gcra_headers(&r, buf, sizeof(buf));
	assert_int_equal(w, (int)strlen(buf));
	assert_string_equal(buf, "RateLimit-Limit: 500\r\nRateLimit-Remaining: "
	    "499\r\nRateLimit-Reset: 8\r\n");
	assert_int_equal(pc_gcra_headers(&r, small, sizeof(small)), PC_E_LIMIT);
	assert_int_equal(pc_limit_ceil_s(0), 0);
	assert_int_equal(pc_limit_ceil_s(1), 1);
	assert_int_equal(pc_limit_ceil_s(S(2)), 2);
	assert_int_equal(pc_limit_ceil_s(S(2) + 1), 3);
}

/* The store against a plain array: random writes, expiries and lookups
 * through a table small enough that probe chains wrap and shift. */
static void
store_churn_matches_reference(void **st)
{
	enum { N = 48, KEYS = 200 };
	const struct pc_limit_store_ops *ops;
	void *ctx;
	int64_t ref[KEYS];		/* expire; 0 = absent */
	unsigned seed = 12345;
	char name[16];
	const char *keys[1] = { name };

	(void)st;
	memset(ref, 0, sizeof(ref));
	assert_int_equal(pc_limit_mem_new(N, &ops, &ctx), 0);
	for (int64_t now = 1; now < 20000; now++) {
		seed = seed * 1103515245u + 12345u;
		int k = (int)((seed >> 8) % KEYS);
		int64_t life = (int64_t)((seed >> 20) % 40);
		struct pc_lval old, val;
		bool found;
		size_t live = 0;

		snprintf(name, sizeof(name), "key%d", k);
		assert_int_equal(ops->get(ctx, 1, keys, &old, &found), 0);
		/* An expired entry may linger until evicted, never a live
		 * one vanish. */
		if (ref[k] > now) {
			assert_true(found);
			assert_int_equal(old.expire_us, ref[k]);
			assert_int_equal(old.v[1], k);
		} else if (found) {
			assert_true(old.expire_us <= now);
		}
		memset(&val, 0, sizeof(val));
		val.v[1] = k;
		val.expire_us = now + life;
		for (int i = 0; i < KEYS; i++)
			live += ref[i] > now && i != k;
		int rc = ops->cas(ctx, 1, keys, &old, &found, &val, now);
		if (rc == 0)
			ref[k] = life > 0 ? now + life : 0;
		else {
			assert_int_equal(rc, PC_E_LIMIT);
			assert_true(live >= N);
		}
		assert_true(pc_limit_mem_count(ctx) <= N);
	}
	ops->destroy(ctx);
}

/*
 * The wall clock stepped back an hour (an NTP correction): a stored TAT an
 * hour ahead used to refuse the caller for the hour. It counts as the whole
 * burst used: one spacing to wait, no more.
 */
static void
clock_stepped_back(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_KEY, 30, PC_LIMIT_MINUTE_US, 30);
	struct pc_gcra *g = mk(&l, 1);
	struct pc_gcra_result r;
	int64_t back = T0 - PC_LIMIT_HOUR_US;

	(void)st;
	for (int i = 0; i < 30; i++)
		assert_int_equal(pc_gcra_take(g, "alice", 1, T0, &r), 0);
	assert_int_equal(pc_gcra_take(g, "alice", 1, back, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, S(2));
	assert_int_equal(r.remaining, 0);
	assert_int_equal(pc_gcra_take(g, "alice", 1, back + S(2), &r), 0);
	assert_true(r.allowed);
	pc_gcra_free(g);
}

/*
 * A long JWT subject and a long tool name do not fit one state key
 * together: the key used to be refused, so every call of that caller got
 * 503 under a key+tool limit. Long fields go in as digests now, and still
 * count apart; a field that holds the digest marker is refused.
 */
static void
long_subjects_digested(void **st)
{
	struct pc_gcra_limit l = lim(PC_LIMIT_KEY_TOOL, 1, PC_LIMIT_MINUTE_US, 0);
	struct pc_gcra *g = mk(&l, 1);
	struct pc_gcra_result r;
	char key[132] = "jwt:", t1[129], t2[129];
	char forged[40] = "\x1e" "0123";

	(void)st;
	memset(key + 4, 'a', 127);
	key[131] = '\0';
	memset(t1, 'b', 128);
	t1[128] = '\0';
	memcpy(t2, t1, sizeof(t2));
	t2[127] = 'c';
	struct pc_gcra_subject s1 = { key, t1, NULL }, s2 = { key, t2, NULL };
	struct pc_gcra_subject bad = { forged, "x", NULL };

	assert_int_equal(pc_gcra_take_subject(g, &s1, 1, T0, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_gcra_take_subject(g, &s1, 1, T0, &r), 0);
	assert_false(r.allowed);		/* the same subject */
	assert_int_equal(pc_gcra_take_subject(g, &s2, 1, T0, &r), 0);
	assert_true(r.allowed);			/* another tool: its own */
	assert_int_equal(pc_gcra_take_subject(g, &bad, 1, T0, &r),
	    PC_E_INVAL);
	pc_gcra_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_steady),
		cmocka_unit_test(clock_stepped_back),
		cmocka_unit_test(minute_and_hour),
		cmocka_unit_test(per_second_burst_one),
		cmocka_unit_test(cost_above_one),
		cmocka_unit_test(multi_limit_atomic),
		cmocka_unit_test(key_tool_scope),
		cmocka_unit_test(long_subjects_digested),
		cmocka_unit_test(memory_cap_fails_closed),
		cmocka_unit_test(snapshot_restore),
		cmocka_unit_test(config_checks),
		cmocka_unit_test(derived_ids_and_period_rounding),
		cmocka_unit_test(header_format),
		cmocka_unit_test(store_churn_matches_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
