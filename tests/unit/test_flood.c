/* Unit tests: src/limits/flood.c (records of unaccountable refusals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "limits/flood.h"

#define S 1000000		/* one second in µs */

struct seen {
	size_t n;
	uint64_t total;
	bool star;			/* the overflow slot reported */
	char source[8][64];
	uint64_t count[8];
	struct pc_flood_summary last;
};

static void
on_summary(void *arg, const struct pc_flood_summary *s)
{
	struct seen *z = arg;

	if (z->n < 8) {
		snprintf(z->source[z->n], sizeof(z->source[0]), "%s", s->source);
		z->count[z->n] = s->count;
	}
	z->n++;
	z->total += s->count;
	z->star = z->star || strcmp(s->source, "*") == 0;
	z->last = *s;
	z->last.source = NULL;	/* only valid during the callback */
}

static struct pc_flood *
mk(uint32_t burst, uint32_t per_s, uint32_t global)
{
	struct pc_flood_conf c = { burst, per_s, global };
	struct pc_flood *f = NULL;

	assert_int_equal(pc_flood_new(&c, &f), 0);
	return f;
}

/* A burst, then the steady rate, exactly. */
static void
test_burst_then_rate(void **state)
{
	struct pc_flood *f = mk(3, 2, 1000);
	int64_t t = 10 * (int64_t)S;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_true(pc_flood_admit(f, "10.0.0.1", "apikey.mismatch", t));
	assert_false(pc_flood_admit(f, "10.0.0.1", "apikey.mismatch", t));
	/* Half a second gives one token at 2/s. */
	assert_false(pc_flood_admit(f, "10.0.0.1", "x", t + S / 2 - 1));
	assert_true(pc_flood_admit(f, "10.0.0.1", "x", t + S / 2));
	assert_false(pc_flood_admit(f, "10.0.0.1", "x", t + S / 2));
	/* Another source has its own bucket. */
	assert_true(pc_flood_admit(f, "10.0.0.2", "x", t + S / 2));
	pc_flood_free(f);
}

/* Suppressed refusals come back as summaries: per source, per reason, at
 * most once a second, and all of them at the end. */
static void
test_summaries(void **state)
{
	struct pc_flood *f = mk(1, 1, 1000);
	struct seen z = { 0 };
	int64_t t = 5 * (int64_t)S;

	(void)state;
	pc_flood_drain(f, t, false, on_summary, &z);
	assert_int_equal(z.n, 0);		/* nothing to say */
	assert_true(pc_flood_admit(f, "a", "apikey.mismatch", t));
	assert_false(pc_flood_admit(f, "a", "apikey.mismatch", t));
	assert_false(pc_flood_admit(f, "a", "http.host", t + 1));
	assert_false(pc_flood_admit(f, "a", "apikey.mismatch", t + 2));
	pc_flood_drain(f, t + 3, false, on_summary, &z);
	assert_int_equal(z.n, 1);
	assert_string_equal(z.source[0], "a");
	assert_int_equal(z.count[0], 3);
	assert_int_equal(z.last.first_us, t);
	assert_int_equal(z.last.last_us, t + 2);
	assert_int_equal(z.last.nreasons, 2);
	assert_string_equal(z.last.reasons[0].reason, "apikey.mismatch");
	assert_int_equal(z.last.reasons[0].count, 2);
	assert_string_equal(z.last.reasons[1].reason, "http.host");
	assert_int_equal(z.last.reasons[1].count, 1);
	/* More within the second: held until a second after the summary. */
	assert_false(pc_flood_admit(f, "a", "apikey.mismatch", t + 4));
	pc_flood_drain(f, t + S / 2, false, on_summary, &z);
	assert_int_equal(z.n, 1);
	pc_flood_drain(f, t + 3 + S, false, on_summary, &z);
	assert_int_equal(z.n, 2);
	assert_int_equal(z.count[1], 1);
	/* Shutdown: everything, whatever its age. */
	(void)pc_flood_admit(f, "a", "x", t + 3 + S);	/* the refilled token */
	assert_false(pc_flood_admit(f, "a", "x", t + 3 + S));
	pc_flood_drain(f, t + 4 + S, true, on_summary, &z);
	assert_int_equal(z.n, 3);
	pc_flood_free(f);
}

/* Past PC_FLOOD_REASONS distinct reasons the rest count as "other". */
static void
test_reason_overflow(void **state)
{
	static const char *r[] = { "r1", "r2", "r3", "r4", "r5", "r6" };
	struct pc_flood *f = mk(1, 1, 1000);
	struct seen z = { 0 };
	uint64_t sum = 0;

	(void)state;
	assert_true(pc_flood_admit(f, "a", "r0", S));
	for (size_t i = 0; i < 6; i++)
		assert_false(pc_flood_admit(f, "a", r[i], S));
	pc_flood_drain(f, S, true, on_summary, &z);
	assert_int_equal(z.count[0], 6);
	assert_int_equal(z.last.nreasons, PC_FLOOD_REASONS);
	assert_string_equal(z.last.reasons[PC_FLOOD_REASONS - 1].reason,
	    "other");
	for (size_t i = 0; i < z.last.nreasons; i++)
		sum += z.last.reasons[i].count;
	assert_int_equal(sum, 6);
	pc_flood_free(f);
}

/* The global rate holds however many addresses a flood comes from. */
static void
test_global(void **state)
{
	struct pc_flood *f = mk(5, 5, 10);
	struct seen z = { 0 };
	int admitted = 0;
	char src[32];

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(src, sizeof(src), "10.1.%d.%d", i / 250, i % 250);
		admitted += pc_flood_admit(f, src, "http.origin", S);
	}
	assert_int_equal(admitted, 10);
	pc_flood_drain(f, S, true, on_summary, &z);
	assert_int_equal(z.total, 90);
	pc_flood_free(f);
}

/* Every refusal is accounted for, one by one or in a summary, with many
 * sources (more than the table holds: the rest share the slot "*"). */
static void
test_exact_accounting(void **state)
{
	struct pc_flood *f = mk(2, 1, 1000000);
	struct seen z = { 0 };
	uint64_t total = 0, admitted = 0;
	char src[32];
	int64_t t = S;

	(void)state;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3000; i++) {
			snprintf(src, sizeof(src), "fd00::%x", i);
			for (int k = 0; k < 4; k++) {
				admitted += pc_flood_admit(f, src, "auth.x", t);
				total++;
			}
		}
		t += S / 10;
		pc_flood_drain(f, t, false, on_summary, &z);
	}
	pc_flood_drain(f, t, true, on_summary, &z);
	assert_int_equal(admitted + z.total, total);
	assert_true(z.n > 0);
	/* More sources than the table holds, none idle: the rest share the
	 * overflow slot, reported as "*", and still nothing is lost. */
	{
		struct seen y = { 0 };
		struct pc_flood *g = mk(1, 1, 1000000);
		uint64_t in = 0;

		for (int i = 0; i < 5000; i++) {
			snprintf(src, sizeof(src), "fd01::%x", i);
			in += pc_flood_admit(g, src, "auth.x", S);
			in += pc_flood_admit(g, src, "auth.x", S);
		}
		pc_flood_drain(g, S, true, on_summary, &y);
		assert_true(y.star);
		assert_int_equal(in + y.total, 10000);
		pc_flood_free(g);
	}
	pc_flood_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_summaries),
		cmocka_unit_test(test_reason_overflow),
		cmocka_unit_test(test_global),
		cmocka_unit_test(test_exact_accounting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
