/* Unit tests: src/limits/budget.c (spend budgets per UTC day and month). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "limits/budget.h"

#define SEC PC_LIMIT_SECOND_US
#define DAY PC_LIMIT_DAY_US
/* Midnights UTC, in seconds since the epoch. */
#define MAR10_2024 INT64_C(1710028800)
#define MAR11_2024 INT64_C(1710115200)
#define JAN31_2024 INT64_C(1706659200)
#define FEB01_2024 INT64_C(1706745600)
#define FEB15_2024 INT64_C(1707955200)
#define MAR01_2024 INT64_C(1709251200)
#define FEB01_2023 INT64_C(1675209600)
#define MAR01_2023 INT64_C(1677628800)
#define DEC01_2023 INT64_C(1701388800)
#define JAN01_2024 INT64_C(1704067200)

static struct pc_budget_limit
blim(enum pc_budget_scope sc, enum pc_budget_period p, uint64_t amount)
{
	struct pc_budget_limit l;

	memset(&l, 0, sizeof(l));
	l.scope = sc;
	l.period = p;
	l.amount = amount;
	return l;
}

static struct pc_budget *
mk(const struct pc_budget_limit *l, size_t n)
{
	struct pc_budget *b = NULL;
	char err[160];

	assert_int_equal(pc_budget_new(l, n, NULL, NULL, 0, &b, err,
	    sizeof(err)), 0);
	return b;
}

static void
period_bounds_calendar(void **st)
{
	int64_t s, e;

	(void)st;
	pc_budget_period_bounds(PC_BUDGET_DAY, MAR10_2024 * SEC + DAY - 1, &s, &e);
	assert_true(s == MAR10_2024 * SEC && e == MAR11_2024 * SEC);
	pc_budget_period_bounds(PC_BUDGET_DAY, MAR11_2024 * SEC, &s, &e);
	assert_true(s == MAR11_2024 * SEC);
	/* Leap February: 29 days; 2023's: 28. */
	pc_budget_period_bounds(PC_BUDGET_MONTH, FEB15_2024 * SEC, &s, &e);
	assert_true(s == FEB01_2024 * SEC && e == MAR01_2024 * SEC);
	assert_int_equal((e - s) / DAY, 29);
	pc_budget_period_bounds(PC_BUDGET_MONTH, FEB01_2023 * SEC + 5, &s, &e);
	assert_true(s == FEB01_2023 * SEC && e == MAR01_2023 * SEC);
	assert_int_equal((e - s) / DAY, 28);
	/* January has 31 days; December rolls into the next year. */
	pc_budget_period_bounds(PC_BUDGET_MONTH, JAN31_2024 * SEC, &s, &e);
	assert_true(s == JAN01_2024 * SEC && e == FEB01_2024 * SEC);
	assert_int_equal((e - s) / DAY, 31);
	pc_budget_period_bounds(PC_BUDGET_MONTH, JAN01_2024 * SEC - 1, &s, &e);
	assert_true(s == DEC01_2023 * SEC && e == JAN01_2024 * SEC);
	/* The last microsecond of a month belongs to it. */
	pc_budget_period_bounds(PC_BUDGET_MONTH, MAR01_2024 * SEC - 1, &s, &e);
	assert_true(s == FEB01_2024 * SEC);
}

static void
day_boundary_and_exact_refusal(void **st)
{
	struct pc_budget_limit l = blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 100);
	struct pc_budget *b = mk(&l, 1);
	struct pc_budget_subject s = { .key = "k1" };
	struct pc_budget_result r;
	int64_t late = MAR11_2024 * SEC - 1000;	/* 23:59:59.999 */

	(void)st;
	assert_int_equal(pc_budget_charge(b, &s, 60, late - 3600 * SEC, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.spent, 60);
	assert_int_equal(r.remaining, 40);
	assert_string_equal(r.budget_id, "key:day");
	assert_true(r.reset_at_us == MAR11_2024 * SEC);
	/* 41 would exceed by one: refused, and nothing is charged. */
	assert_int_equal(pc_budget_charge(b, &s, 41, late, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "key:day");
	assert_int_equal(r.spent, 60);
	assert_int_equal(r.remaining, 40);
	assert_int_equal(r.retry_after_us, 1000);
	assert_true(r.reset_at_us == MAR11_2024 * SEC);
	/* Exactly the amount is allowed, then not one unit more. */
	assert_int_equal(pc_budget_charge(b, &s, 40, late, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(pc_budget_charge(b, &s, 1, late, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(pc_budget_charge(b, &s, 0, late, &r), 0);
	assert_true(r.allowed);
	/* Another key has its own budget. */
	struct pc_budget_subject s2 = { .key = "k2" };
	assert_int_equal(pc_budget_charge(b, &s2, 100, late, &r), 0);
	assert_true(r.allowed);
	/* Midnight UTC: a new day, a whole budget. */
	assert_int_equal(pc_budget_charge(b, &s, 100, MAR11_2024 * SEC, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.spent, 100);
	assert_true(r.reset_at_us == MAR11_2024 * SEC + DAY);
	pc_budget_free(b);
}

static void
day_and_month_together(void **st)
{
	struct pc_budget_limit l[4] = {
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 100),
		blim(PC_BUDGET_KEY, PC_BUDGET_MONTH, 250),
		blim(PC_BUDGET_TENANT, PC_BUDGET_DAY, 1000),
		blim(PC_BUDGET_TENANT, PC_BUDGET_MONTH, 260),
	};
	struct pc_budget *b = mk(l, 4);
	struct pc_budget_subject s = { "k", "acme" }, s2 = { "k2", "acme" };
	struct pc_budget_result r;
	int64_t t = FEB01_2024 * SEC + 10 * 3600 * SEC;

	(void)st;
	/* Three days of 90: the month has 250, so day 3 gets 70 only. */
	for (int d = 0; d < 2; d++) {
		assert_int_equal(pc_budget_charge(b, &s, 90, t + d * DAY, &r), 0);
		assert_true(r.allowed);
	}
	assert_int_equal(pc_budget_charge(b, &s, 71, t + 2 * DAY, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "key:month");
	assert_int_equal(r.remaining, 70);
	assert_true(r.reset_at_us == MAR01_2024 * SEC);
	assert_true(r.retry_after_us == MAR01_2024 * SEC - (t + 2 * DAY));
	/* Refused by day AND month: the later reset (the month) is named. */
	assert_int_equal(pc_budget_charge(b, &s, 70, t + 2 * DAY, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.budget_id, "key:month");
	assert_int_equal(pc_budget_charge(b, &s, 31, t + 2 * DAY, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "key:month");
	/* The tenant has 10 left this month: the other key of the tenant is
	 * refused at 11 and its own budgets stay untouched. */
	assert_int_equal(pc_budget_charge(b, &s2, 11, t + 2 * DAY, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "tenant:month");
	assert_int_equal(r.spent, 250);
	struct pc_budget_subject k2only = { .key = "k2" };
	assert_int_equal(pc_budget_check(b, &k2only, 100, t + 2 * DAY, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);	/* day: 100 - 100 */
	assert_int_equal(pc_budget_check(b, &k2only, 101, t + 2 * DAY, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(pc_budget_charge(b, &s2, 10, t + 2 * DAY, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.budget_id, "tenant:month");
	assert_int_equal(r.remaining, 0);
	/* Leap day: still February, still refused; March 1st: fresh. */
	assert_int_equal(pc_budget_charge(b, &s, 1, MAR01_2024 * SEC - 1000, &r),
	    0);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_us, 1000);
	assert_int_equal(pc_budget_charge(b, &s, 100, MAR01_2024 * SEC, &r), 0);
	assert_true(r.allowed);
	pc_budget_free(b);
}

static void
cost_above_amount_and_match(void **st)
{
	struct pc_budget_limit l[2] = {
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 50),
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 5),
	};
	struct pc_budget *b;
	struct pc_budget_subject vip = { .key = "cheap" }, other = { .key = "x" };
	struct pc_budget_subject none = { NULL, NULL };
	struct pc_budget_result r;
	int64_t t = MAR10_2024 * SEC;

	(void)st;
	pc_strlcpy(l[1].match, "cheap", sizeof(l[1].match));
	b = mk(l, 2);
	assert_int_equal(pc_budget_charge(b, &other, 51, t, &r), 0);
	assert_false(r.allowed);
	assert_true(r.retry_after_us == INT64_MAX);	/* never fits */
	assert_int_equal(pc_budget_charge(b, &other, 6, t, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.budget_id, "key:day");
	assert_int_equal(pc_budget_charge(b, &vip, 6, t, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "key[cheap]:day");
	/* No key, no tenant: nothing applies. */
	assert_int_equal(pc_budget_charge(b, &none, 1000, t, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.budget_id, "");
	pc_budget_free(b);
}

struct snap {
	char key[8][PC_LIMIT_KEY_MAX];
	uint64_t spent[8];
	int64_t start[8];
	int n;
};

static int
snap_cb(void *arg, const char *key, uint64_t spent, int64_t start)
{
	struct snap *s = arg;

	if (s->n == 8)
		return 1;
	pc_strlcpy(s->key[s->n], key, sizeof(s->key[0]));
	s->spent[s->n] = spent;
	s->start[s->n++] = start;
	return 0;
}

static void
snapshot_restore(void **st)
{
	struct pc_budget_limit l[2] = {
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 100),
		blim(PC_BUDGET_TENANT, PC_BUDGET_MONTH, 1000),
	};
	struct pc_budget *b = mk(l, 2), *b2;
	struct pc_budget_subject s = { "k", "acme" };
	struct pc_budget_result r;
	struct snap sn = { .n = 0 };
	int64_t t = FEB15_2024 * SEC;

	(void)st;
	assert_int_equal(pc_budget_charge(b, &s, 70, t, &r), 0);
	assert_int_equal(pc_budget_snapshot(b, t + 60 * SEC, snap_cb, &sn), 0);
	assert_int_equal(sn.n, 2);
	pc_budget_free(b);

	b2 = mk(l, 2);
	for (int i = 0; i < sn.n; i++)
		assert_int_equal(pc_budget_restore(b2, sn.key[i], sn.spent[i],
		    sn.start[i], t + 120 * SEC), 0);
	assert_int_equal(pc_budget_charge(b2, &s, 31, t + 120 * SEC, &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "key:day");
	assert_int_equal(pc_budget_charge(b2, &s, 30, t + 120 * SEC, &r), 0);
	assert_true(r.allowed);
	/* Tomorrow the day spend is gone, the month's is not. */
	pc_budget_free(b2);
	b2 = mk(l, 2);
	for (int i = 0; i < sn.n; i++)
		assert_int_equal(pc_budget_restore(b2, sn.key[i], sn.spent[i],
		    sn.start[i], t + DAY), 0);
	assert_int_equal(pc_budget_charge(b2, &s, 1, t + DAY, &r), 0);
	assert_true(r.allowed);
	assert_string_equal(r.budget_id, "key:day");
	assert_int_equal(r.remaining, 99);
	struct pc_budget_subject ten = { .tenant = "acme" };
	assert_int_equal(pc_budget_check(b2, &ten, 0, t + DAY, &r), 0);
	assert_int_equal(r.spent, 71);
	/* Bad input. */
	assert_int_equal(pc_budget_restore(b2, "nope:day\x1fk", 1,
	    MAR10_2024 * SEC, MAR10_2024 * SEC), PC_E_NOTFOUND);
	assert_int_equal(pc_budget_restore(b2, "key:day\x1fk", 1,
	    MAR10_2024 * SEC + 1, MAR10_2024 * SEC + 5), PC_E_INVAL);
	assert_int_equal(pc_budget_restore(b2, "key:day", 1,
	    MAR10_2024 * SEC, MAR10_2024 * SEC), PC_E_INVAL);
	pc_budget_free(b2);
}

static void
config_checks(void **st)
{
	struct pc_budget_limit l[2] = {
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 0),
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 10),
	};
	struct pc_budget *b = NULL;
	char err[160];

	(void)st;
	assert_int_equal(pc_budget_new(l, 1, NULL, NULL, 0, &b, err,
	    sizeof(err)), PC_E_CONFIG);
	l[0].amount = 5;
	assert_int_equal(pc_budget_new(l, 2, NULL, NULL, 0, &b, err,
	    sizeof(err)), PC_E_CONFIG);
	assert_non_null(strstr(err, "duplicate"));
	l[1].period = PC_BUDGET_MONTH;
	assert_int_equal(pc_budget_new(l, 2, NULL, NULL, 0, &b, err,
	    sizeof(err)), 0);
	pc_budget_free(b);
	pc_budget_free(NULL);
}

/* A refund gives back exactly what was charged, in every budget the call
 * was charged to, and only into the period charged: a day that ended
 * keeps its spend and the new day gets nothing it did not spend. */
static void
refund_only_what_and_when_charged(void **st)
{
	struct pc_budget_limit l[3] = {
		blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 10),
		blim(PC_BUDGET_KEY, PC_BUDGET_MONTH, 100),
		blim(PC_BUDGET_TENANT, PC_BUDGET_DAY, 10),
	};
	struct pc_budget *b = mk(l, 3);
	struct pc_budget_subject s = { "k", "acme" }, other = { "k2", "acme" };
	struct pc_budget_result r;
	int64_t t = FEB15_2024 * SEC + 23 * 3600 * SEC;	/* 23:00 UTC */

	(void)st;
	assert_int_equal(pc_budget_charge(b, &s, 6, t, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_budget_charge(b, &s, 4, t, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_budget_check(b, &s, 1, t, &r), 0);
	assert_false(r.allowed);			/* 10 of 10 */
	/* The 4 bought nothing: back in the key's day and month and the
	 * tenant's day. */
	assert_int_equal(pc_budget_refund(b, &s, 4, t, t + SEC), 0);
	assert_int_equal(pc_budget_charge(b, &other, 4, t + SEC, &r), 0);
	assert_true(r.allowed);				/* tenant: 6 + 4 */
	assert_int_equal(pc_budget_check(b, &s, 1, t + SEC, &r), 0);
	assert_false(r.allowed);			/* tenant full */
	assert_int_equal(pc_budget_refund(b, &other, 4, t + SEC, t + SEC), 0);
	assert_int_equal(pc_budget_check(b, &s, 4, t + SEC, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	/* Never below zero: a refund larger than the spend leaves 0. */
	assert_int_equal(pc_budget_refund(b, &s, 50, t, t + SEC), 0);
	assert_int_equal(pc_budget_check(b, &s, 10, t + SEC, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	/* Charged at 23:00, refunded after midnight: the new day was not
	 * charged and keeps its 10, the month (same period) gets it back. */
	assert_int_equal(pc_budget_charge(b, &s, 10, t, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_budget_charge(b, &s, 10, t + 2 * 3600 * SEC, &r),
	    0);
	assert_true(r.allowed);				/* Feb 16: fresh */
	assert_int_equal(pc_budget_refund(b, &s, 10, t, t + 2 * 3600 * SEC),
	    0);
	assert_int_equal(pc_budget_check(b, &s, 1, t + 2 * 3600 * SEC, &r),
	    0);
	assert_false(r.allowed);			/* Feb 16: 10 of 10 */
	assert_string_equal(r.budget_id, "key:day");
	struct pc_budget_subject konly = { .key = "k" };
	assert_int_equal(pc_budget_check(b, &konly, 90, t + 2 * 3600 * SEC, &r),
	    0);
	assert_false(r.allowed);	/* the day refuses 90 ... */
	assert_string_equal(r.budget_id, "key:day");
	/* ... the month would take it: 10 (Feb 16) + 0 (Feb 15, refunded). */
	assert_int_equal(pc_budget_refund(b, &s, 10, t + 2 * 3600 * SEC,
	    t + 2 * 3600 * SEC), 0);
	assert_int_equal(pc_budget_check(b, &konly, 100, t + 2 * 3600 * SEC,
	    &r), 0);
	assert_false(r.allowed);
	assert_string_equal(r.budget_id, "key:day");	/* not the month */
	assert_int_equal(pc_budget_check(b, &konly, 10, t + 2 * 3600 * SEC, &r),
	    0);
	assert_true(r.allowed);
	pc_budget_free(b);
}

/*
 * The wall clock stepped back over midnight: the new day's spend stands
 * (it used to be overwritten by the old day's record and forgotten when
 * the clock came back), in memory and across a restart. A record further
 * ahead than the next period, or one whose bounds would overflow, is no
 * clock step: dropped.
 */
static void
clock_stepped_back(void **st)
{
	struct pc_budget_limit l = blim(PC_BUDGET_KEY, PC_BUDGET_DAY, 100);
	struct pc_budget *b = mk(&l, 1), *b2;
	struct pc_budget_subject s = { .key = "k1" };
	struct pc_budget_result r;
	struct snap sn = { .n = 0 };
	int64_t after = MAR11_2024 * SEC + 5 * SEC, before = after - 60 * SEC;

	(void)st;
	assert_int_equal(pc_budget_charge(b, &s, 90, after, &r), 0);
	assert_true(r.allowed);
	assert_int_equal(pc_budget_charge(b, &s, 20, before, &r), 0);
	assert_false(r.allowed);			/* 90 of the new day spent */
	assert_int_equal(pc_budget_charge(b, &s, 10, before, &r), 0);
	assert_true(r.allowed);
	/* The clock comes back: 100 spent today, nothing forgotten. */
	assert_int_equal(pc_budget_charge(b, &s, 1, after + SEC, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.spent, 100);
	/* Saved, then restored by a gateway whose clock is behind. */
	assert_int_equal(pc_budget_snapshot(b, after, snap_cb, &sn), 0);
	assert_int_equal(sn.n, 1);
	b2 = mk(&l, 1);
	assert_int_equal(pc_budget_restore(b2, sn.key[0], sn.spent[0],
	    sn.start[0], before), 0);
	assert_int_equal(pc_budget_charge(b2, &s, 1, after, &r), 0);
	assert_false(r.allowed);
	/* Two days ahead: not a clock step. Near INT64_MAX: refused before
	 * its bounds are computed. */
	assert_int_equal(pc_budget_restore(b2, sn.key[0], 5,
	    MAR11_2024 * SEC + 2 * DAY, before), PC_E_INVAL);
	assert_int_equal(pc_budget_restore(b2, sn.key[0], 5,
	    INT64_MAX - 5, before), PC_E_INVAL);
	pc_budget_free(b);
	pc_budget_free(b2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(period_bounds_calendar),
		cmocka_unit_test(day_boundary_and_exact_refusal),
		cmocka_unit_test(day_and_month_together),
		cmocka_unit_test(cost_above_amount_and_match),
		cmocka_unit_test(snapshot_restore),
		cmocka_unit_test(clock_stepped_back),
		cmocka_unit_test(refund_only_what_and_when_charged),
		cmocka_unit_test(config_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
