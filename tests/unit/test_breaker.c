/* Unit tests: src/limits/breaker.c (circuit breakers, concurrency caps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "limits/breaker.h"
#include "limits/gcra.h"

#define SEC PC_LIMIT_SECOND_US
#define T0 (INT64_C(1700000000) * SEC)

static struct pc_breaker *
mk(uint32_t n, int64_t cool, int64_t max_cool)
{
	struct pc_breaker_config c = {
		.threshold = n, .cooldown_us = cool, .max_cooldown_us = max_cool,
	};
	struct pc_breaker *br = NULL;

	assert_int_equal(pc_breaker_new(&c, &br), 0);
	return br;
}

static void
fail_n(struct pc_breaker *br, const char *key, int n, int64_t now)
{
	for (int i = 0; i < n; i++) {
		assert_int_equal(pc_breaker_allow(br, key, now, NULL), 0);
		assert_int_equal(pc_breaker_record(br, key, false, now), 0);
	}
}

static void
opens_at_exactly_n(void **st)
{
	/* Seed 002: 50 failures in a row. */
	struct pc_breaker *br = mk(50, 30 * SEC, 0);
	int64_t retry;
	uint32_t fails;
	int64_t until;

	(void)st;
	fail_n(br, "k", 49, T0);
	assert_int_equal(pc_breaker_state(br, "k", T0, &fails, NULL),
	    PC_BREAKER_CLOSED);
	assert_int_equal(fails, 49);
	assert_int_equal(pc_breaker_allow(br, "k", T0, &retry), 0);
	assert_int_equal(retry, 0);
	assert_int_equal(pc_breaker_record(br, "k", false, T0 + 5), 0);
	assert_int_equal(pc_breaker_state(br, "k", T0 + 5, &fails, &until),
	    PC_BREAKER_OPEN);
	assert_int_equal(fails, 50);
	assert_true(until == T0 + 5 + 30 * SEC);
	assert_int_equal(pc_breaker_allow(br, "k", T0 + 5, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(retry, 30 * SEC);
	assert_int_equal(pc_breaker_allow(br, "k", T0 + 5 + 30 * SEC - 1,
	    &retry), PC_E_UNAVAIL);
	assert_int_equal(retry, 1);
	/* Other keys are unaffected. */
	assert_int_equal(pc_breaker_allow(br, "other", T0 + 5, &retry), 0);
	pc_breaker_free(br);
}

static void
success_resets_count(void **st)
{
	struct pc_breaker *br = mk(50, 30 * SEC, 0);
	uint32_t fails;

	(void)st;
	fail_n(br, "k", 49, T0);
	assert_int_equal(pc_breaker_record(br, "k", true, T0), 0);
	assert_int_equal(pc_breaker_state(br, "k", T0, &fails, NULL),
	    PC_BREAKER_CLOSED);
	assert_int_equal(fails, 0);
	fail_n(br, "k", 49, T0 + 1);
	assert_int_equal(pc_breaker_state(br, "k", T0 + 1, NULL, NULL),
	    PC_BREAKER_CLOSED);
	fail_n(br, "k", 1, T0 + 2);
	assert_int_equal(pc_breaker_state(br, "k", T0 + 2, NULL, NULL),
	    PC_BREAKER_OPEN);
	pc_breaker_free(br);
}

static void
half_open_one_probe_then_close(void **st)
{
	struct pc_breaker *br = mk(3, 10 * SEC, 0);
	int64_t retry;
	int64_t t = T0 + 10 * SEC;

	(void)st;
	fail_n(br, "up", 3, T0);
	assert_int_equal(pc_breaker_allow(br, "up", t - 1, &retry),
	    PC_E_UNAVAIL);
	/* Cooldown over: exactly one probe. */
	assert_int_equal(pc_breaker_state(br, "up", t, NULL, NULL),
	    PC_BREAKER_HALF_OPEN);
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry),
	    PC_BREAKER_PROBE);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pc_breaker_allow(br, "up", t + i, &retry),
		    PC_E_UNAVAIL);
		assert_int_equal(retry, SEC);	/* come back soon */
	}
	assert_int_equal(pc_breaker_record(br, "up", true, t + 100), 0);
	assert_int_equal(pc_breaker_state(br, "up", t + 100, NULL, NULL),
	    PC_BREAKER_CLOSED);
	for (int i = 0; i < 5; i++)
		assert_int_equal(pc_breaker_allow(br, "up", t + 100, &retry), 0);
	/* Closed afresh: it takes the full threshold again to open. */
	fail_n(br, "up", 2, t + 200);
	assert_int_equal(pc_breaker_state(br, "up", t + 200, NULL, NULL),
	    PC_BREAKER_CLOSED);
	fail_n(br, "up", 1, t + 300);
	assert_int_equal(pc_breaker_allow(br, "up", t + 300, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(retry, 10 * SEC);	/* the base cooldown again */
	pc_breaker_free(br);
}

static void
failed_probe_reopens_doubled(void **st)
{
	struct pc_breaker *br = mk(1, 10 * SEC, 25 * SEC);
	int64_t retry, t = T0;

	(void)st;
	fail_n(br, "up", 1, t);
	t += 10 * SEC;
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_record(br, "up", false, t + 7), 0);
	assert_int_equal(pc_breaker_allow(br, "up", t + 7, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(retry, 20 * SEC);
	t += 7 + 20 * SEC;
	assert_int_equal(pc_breaker_allow(br, "up", t - 1, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_record(br, "up", false, t), 0);
	/* 40 s capped at 25 s. */
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry), PC_E_UNAVAIL);
	assert_int_equal(retry, 25 * SEC);
	t += 25 * SEC;
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_record(br, "up", true, t), 0);
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry), 0);
	pc_breaker_free(br);

	/* max_cooldown 0: every reopen waits the same cooldown. */
	br = mk(1, 10 * SEC, 0);
	fail_n(br, "up", 1, T0);
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 10 * SEC, &retry),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_record(br, "up", false, T0 + 10 * SEC), 0);
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 10 * SEC, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(retry, 10 * SEC);
	pc_breaker_free(br);
}

static void
lost_probe_and_stale_outcomes(void **st)
{
	struct pc_breaker_config c = {
		.threshold = 2, .cooldown_us = 10 * SEC,
		.probe_timeout_us = 5 * SEC, .forget_us = 60 * SEC,
	};
	struct pc_breaker *br = NULL;
	int64_t retry;
	uint32_t fails;

	(void)st;
	assert_int_equal(pc_breaker_new(&c, &br), 0);
	fail_n(br, "up", 2, T0);
	/* An outcome of a call admitted before it opened: ignored. */
	assert_int_equal(pc_breaker_record(br, "up", true, T0 + 1), 0);
	assert_int_equal(pc_breaker_state(br, "up", T0 + 1, NULL, NULL),
	    PC_BREAKER_OPEN);
	/* The probe never reports: after probe_timeout, another one. */
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 10 * SEC, NULL),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 14 * SEC, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(retry, SEC);
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 15 * SEC - 500, &retry),
	    PC_E_UNAVAIL);
	assert_int_equal(retry, 500);
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 15 * SEC, NULL),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_allow(br, "up", T0 + 15 * SEC, NULL),
	    PC_E_UNAVAIL);
	pc_breaker_free(br);

	/* Failures far apart are forgotten. */
	assert_int_equal(pc_breaker_new(&c, &br), 0);
	fail_n(br, "k", 1, T0);
	assert_int_equal(pc_breaker_state(br, "k", T0 + 59 * SEC, &fails, NULL),
	    PC_BREAKER_CLOSED);
	assert_int_equal(fails, 1);
	fail_n(br, "k", 1, T0 + 61 * SEC);
	assert_int_equal(pc_breaker_state(br, "k", T0 + 61 * SEC, &fails,
	    NULL), PC_BREAKER_CLOSED);
	assert_int_equal(fails, 1);
	fail_n(br, "k", 1, T0 + 62 * SEC);
	assert_int_equal(pc_breaker_state(br, "k", T0 + 62 * SEC, NULL, NULL),
	    PC_BREAKER_OPEN);
	pc_breaker_free(br);
}

/*
 * A probe that goes no further (a later check refused it) or whose
 * outcome does not count (its client left) is given back: the next call
 * probes at once instead of everyone waiting out the probe timeout. A
 * stale release (its window over, another probe out) changes nothing.
 */
static void
released_probe(void **st)
{
	struct pc_breaker_config c = {
		.threshold = 1, .cooldown_us = 10 * SEC,
		.probe_timeout_us = 10 * SEC,
	};
	struct pc_breaker *br = NULL;
	int64_t retry, t = T0 + 10 * SEC;

	(void)st;
	assert_int_equal(pc_breaker_new(&c, &br), 0);
	fail_n(br, "up", 1, T0);
	assert_int_equal(pc_breaker_allow(br, "up", t, &retry),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_allow(br, "up", t + 1, &retry),
	    PC_E_UNAVAIL);
	pc_breaker_release(br, "up", t, t + 2);
	assert_int_equal(pc_breaker_state(br, "up", t + 2, NULL, NULL),
	    PC_BREAKER_HALF_OPEN);
	assert_int_equal(pc_breaker_allow(br, "up", t + 3, &retry),
	    PC_BREAKER_PROBE);
	/* The first probe's release again: not the probe out now. */
	pc_breaker_release(br, "up", t, t + 4);
	assert_int_equal(pc_breaker_allow(br, "up", t + 5, &retry),
	    PC_E_UNAVAIL);
	/* The probe out reports: closed. */
	assert_int_equal(pc_breaker_record(br, "up", true, t + 6), 0);
	assert_int_equal(pc_breaker_allow(br, "up", t + 7, &retry), 0);
	/* Released after it closed: nothing to give back. */
	pc_breaker_release(br, "up", t + 3, t + 8);
	assert_int_equal(pc_breaker_state(br, "up", t + 8, NULL, NULL),
	    PC_BREAKER_CLOSED);
	pc_breaker_free(br);
}

static void
bad_input_and_full_table(void **st)
{
	struct pc_breaker_config c = {
		.threshold = 1, .cooldown_us = SEC, .max_entries = 2,
	};
	struct pc_breaker *br = NULL;
	char longkey[PC_LIMIT_KEY_MAX + 1];

	(void)st;
	memset(longkey, 'a', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	c.threshold = 0;
	assert_int_equal(pc_breaker_new(&c, &br), PC_E_CONFIG);
	c.threshold = 1;
	c.max_cooldown_us = SEC / 2;
	assert_int_equal(pc_breaker_new(&c, &br), PC_E_CONFIG);
	c.max_cooldown_us = 0;
	assert_int_equal(pc_breaker_new(&c, &br), 0);
	assert_int_equal(pc_breaker_allow(br, "", T0, NULL), PC_E_INVAL);
	assert_int_equal(pc_breaker_allow(br, NULL, T0, NULL), PC_E_INVAL);
	assert_int_equal(pc_breaker_allow(br, longkey, T0, NULL), PC_E_INVAL);
	assert_int_equal(pc_breaker_record(br, "a", false, T0), 0);
	assert_int_equal(pc_breaker_record(br, "b", false, T0), 0);
	/* Two open breakers fill the table: a third failure cannot be
	 * counted, but calls are still let through (a breaker protects
	 * availability, it is not an access check). */
	assert_int_equal(pc_breaker_record(br, "c", false, T0), PC_E_LIMIT);
	assert_int_equal(pc_breaker_allow(br, "c", T0, NULL), 0);
	assert_int_equal(pc_breaker_allow(br, "a", T0, NULL), PC_E_UNAVAIL);
	/* Closing one frees its entry. */
	assert_int_equal(pc_breaker_allow(br, "a", T0 + SEC, NULL),
	    PC_BREAKER_PROBE);
	assert_int_equal(pc_breaker_record(br, "a", true, T0 + SEC), 0);
	assert_int_equal(pc_breaker_record(br, "c", false, T0 + SEC), 0);
	assert_int_equal(pc_breaker_state(br, "c", T0 + SEC, NULL, NULL),
	    PC_BREAKER_OPEN);
	pc_breaker_free(br);
	pc_breaker_free(NULL);
}

static void
concurrency_caps(void **st)
{
	struct pc_conc *c = NULL;
	uint32_t n;

	(void)st;
	assert_int_equal(pc_conc_new(2, &c), 0);
	assert_int_equal(pc_conc_acquire(c, "k", 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pc_conc_acquire(c, "k", 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(pc_conc_acquire(c, "k", 2, &n), PC_E_LIMIT);
	assert_int_equal(pc_conc_count(c, "k"), 2);
	pc_conc_release(c, "k");
	assert_int_equal(pc_conc_count(c, "k"), 1);
	assert_int_equal(pc_conc_acquire(c, "k", 2, NULL), 0);
	/* A second key; the table (2 entries) is then full: fail closed. */
	assert_int_equal(pc_conc_acquire(c, "up", 1, NULL), 0);
	assert_int_equal(pc_conc_acquire(c, "x", 5, NULL), PC_E_LIMIT);
	assert_int_equal(pc_conc_acquire(c, "x", 0, NULL), PC_E_INVAL);
	/* A key with nothing in flight holds no entry. */
	pc_conc_release(c, "up");
	assert_int_equal(pc_conc_count(c, "up"), 0);
	assert_int_equal(pc_conc_acquire(c, "x", 5, NULL), 0);
	pc_conc_release(c, "x");
	pc_conc_release(c, "x");	/* caller bug: logged, no underflow */
	assert_int_equal(pc_conc_count(c, "x"), 0);
	pc_conc_release(c, "k");
	pc_conc_release(c, "k");
	assert_int_equal(pc_conc_count(c, "k"), 0);
	pc_conc_free(c);
	pc_conc_free(NULL);
}

/* The wall clock stepped back an hour: the wait is the cooldown at most,
 * not the cooldown plus the hour. */
static void
clock_stepped_back(void **st)
{
	struct pc_breaker *br = mk(1, 10 * SEC, 0);
	int64_t retry, back = T0 - 3600 * SEC;

	(void)st;
	fail_n(br, "up", 1, T0);
	assert_int_equal(pc_breaker_allow(br, "up", back, &retry),
	    PC_E_UNAVAIL);
	assert_true(retry == 10 * SEC);
	assert_int_equal(pc_breaker_allow(br, "up", back + 10 * SEC, &retry),
	    PC_BREAKER_PROBE);
	pc_breaker_free(br);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(opens_at_exactly_n),
		cmocka_unit_test(success_resets_count),
		cmocka_unit_test(half_open_one_probe_then_close),
		cmocka_unit_test(failed_probe_reopens_doubled),
		cmocka_unit_test(lost_probe_and_stale_outcomes),
		cmocka_unit_test(released_probe),
		cmocka_unit_test(clock_stepped_back),
		cmocka_unit_test(bad_input_and_full_table),
		cmocka_unit_test(concurrency_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
