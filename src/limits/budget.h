/*
 * Quotas and spend budgets: each tool call has a cost (integer units the
 * config chooses: calls, credits, micro-dollars), each key and tenant a
 * budget per UTC calendar day and month. A call that would take a budget
 * past its amount is refused before it reaches the upstream, and nothing
 * is charged anywhere. See docs/limits.md.
 *
 * State lives in a pc_limit_store (gcra.h): in memory by default, the same
 * seam as the rate limits for SQLite snapshots and a shared store.
 */
#ifndef PC_LIMITS_BUDGET_H
#define PC_LIMITS_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/limits.h"

#include "limits/gcra.h"


enum pc_budget_scope {
	PC_BUDGET_KEY = 0,
	PC_BUDGET_TENANT,
};

enum pc_budget_period {
	PC_BUDGET_DAY = 0,	/* 00:00:00 UTC to the next 00:00:00 UTC */
	PC_BUDGET_MONTH,	/* the 1st 00:00 UTC to the next 1st */
};

/*
 * `amount` units per period, for every key (or tenant) separately, or only
 * for `match` when it is not "". id "" derives "key:day", "tenant:month",
 * "key[k1]:day". Ids must be unique.
 */
struct pc_budget_limit {
	char id[PC_LIMIT_ID_MAX];
	enum pc_budget_scope scope;
	enum pc_budget_period period;
	uint64_t amount;
	char match[PC_LIMIT_KEY_MAX / 2];
};

struct pc_budget_subject {
	const char *key;	/* NULL/"": KEY budgets do not apply */
	const char *tenant;	/* NULL/"": TENANT budgets do not apply */
};

/*
 * On refusal budget_id names the budget that refused (when several do, the
 * one that resets last); on success the one with the least left.
 * Amounts are of that budget.
 */
struct pc_budget_result {
	bool allowed;
	uint64_t amount;
	uint64_t spent;		/* after this call if allowed, before if not */
	uint64_t remaining;	/* amount - spent */
	int64_t reset_at_us;	/* UTC instant the period ends */
	int64_t retry_after_us;	/* refused: until reset_at; INT64_MAX when the
				 * cost exceeds the whole amount */
	char budget_id[PC_LIMIT_ID_MAX];	/* "" if none applied */
};

struct pc_budget;

/*
 * ops/ctx/max_entries as for pc_gcra_new. 0; PC_E_CONFIG (amount 0,
 * unknown scope or period, duplicate or bad id; message in err);
 * PC_E_LIMIT (n > PC_BUDGET_MAX_LIMITS); PC_E_NOMEM; PC_E_IO.
 */
int pc_budget_new(const struct pc_budget_limit *limits, size_t n,
    const struct pc_limit_store_ops *ops, void *ctx, size_t max_entries,
    struct pc_budget **out, char *err, size_t errlen);
void pc_budget_free(struct pc_budget *b);	/* accepts NULL */

/*
 * Charge cost against every budget that applies to subj if, in each,
 * spent + cost <= amount; otherwise charge nothing and refuse. 0 with res
 * filled either way; negative when no decision could be made (res reads
 * as refused, budget_id "capacity"/"store"/"invalid"): PC_E_LIMIT (state
 * table full), PC_E_INVAL, store errors. Callers refuse unless allowed.
 */
int pc_budget_charge(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t now_us, struct pc_budget_result *res);
/* The same decision, charging nothing. */
int pc_budget_check(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t now_us, struct pc_budget_result *res);

/*
 * Give back `cost` charged at charged_at_us (the call it paid for never
 * left the gateway), in every budget of subj whose period is still the
 * one charged; a spend never goes below 0. 0, or a store error.
 */
int pc_budget_refund(struct pc_budget *b, const struct pc_budget_subject *subj,
    uint64_t cost, int64_t charged_at_us, int64_t now_us);

/*
 * Persistence, as pc_gcra_snapshot/restore: cb gets every state key with
 * its spend and period start (UTC us) while the period lasts. Restore: 0
 * (a period already over at now_us is ignored), PC_E_NOTFOUND (no such
 * budget configured), PC_E_INVAL (malformed, or period_start is not the
 * start of a day/month as the budget needs), PC_E_LIMIT.
 */
int pc_budget_snapshot(struct pc_budget *b, int64_t now_us,
    int (*cb)(void *arg, const char *key, uint64_t spent,
    int64_t period_start_us), void *arg);
int pc_budget_restore(struct pc_budget *b, const char *key, uint64_t spent,
    int64_t period_start_us, int64_t now_us);

/* The UTC period containing now_us: [*start, *end). */
void pc_budget_period_bounds(enum pc_budget_period p, int64_t now_us,
    int64_t *start_us, int64_t *end_us);

#endif
