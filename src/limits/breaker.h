/*
 * Circuit breakers and concurrency caps: the two guards that protect an
 * upstream (and the gateway) from a caller or an upstream gone wrong.
 * See docs/limits.md.
 *
 * Breaker: N consecutive failures open it; while open every call is
 * refused at once with the remaining cooldown as the retry hint; after the
 * cooldown exactly one call (the probe) goes through; its success closes
 * the breaker, its failure opens it again for a cooldown doubled up to
 * max_cooldown_us. One pc_breaker holds many breakers, one per key string
 * (an API key id, or an upstream name: never a secret, keys are logged):
 * make one pc_breaker per kind.
 *
 * Concurrency cap: a counter per key with acquire/release.
 *
 * Breaker and cap state is in memory only: after a restart every breaker
 * is closed, which is what a restarted gateway should try first.
 */
#ifndef PC_LIMITS_BREAKER_H
#define PC_LIMITS_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pc_breaker_state {
	PC_BREAKER_CLOSED = 0,
	PC_BREAKER_OPEN,
	PC_BREAKER_HALF_OPEN,	/* cooldown over; a probe may be in flight */
};

struct pc_breaker_config {
	uint32_t threshold;		/* consecutive failures that open it */
	int64_t cooldown_us;		/* first open period */
	int64_t max_cooldown_us;	/* doubling stops here; 0 = never
					 * double (every reopen waits
					 * cooldown_us) */
	int64_t probe_timeout_us;	/* a probe that never reports frees
					 * the slot after this; 0 = cooldown */
	int64_t forget_us;		/* failures older than this are
					 * forgotten; 0 = 1 hour */
	size_t max_entries;		/* 0 = PC_LIMIT_DEF_ENTRIES */
};

struct pc_breaker;

/*
 * 0; PC_E_CONFIG (threshold 0, cooldown <= 0, max below cooldown);
 * PC_E_NOMEM; PC_E_IO. *out is owned by the caller.
 */
int pc_breaker_new(const struct pc_breaker_config *cfg,
    struct pc_breaker **out);
void pc_breaker_free(struct pc_breaker *br);	/* accepts NULL */

/* pc_breaker_allow: go ahead, as the half-open breaker's one probe. */
#define PC_BREAKER_PROBE 1

/*
 * May a call for key go ahead? 0 = yes; PC_BREAKER_PROBE = yes, and the
 * breaker was half-open: this call is its probe, whose outcome the caller
 * must report with pc_breaker_record — or, if the call goes no further
 * or its outcome will not count, give back with pc_breaker_release, or
 * everyone else waits out the probe timeout. PC_E_UNAVAIL = no:
 * *retry_after_us is the remaining cooldown, or while a probe is out, the
 * time until at most 1 s later (the probe will likely have closed it by
 * then). PC_E_INVAL for a bad key. retry_after_us may be NULL.
 */
int pc_breaker_allow(struct pc_breaker *br, const char *key, int64_t now_us,
    int64_t *retry_after_us);

/*
 * The probe pc_breaker_allow let through at allowed_us will report
 * nothing (a later check refused it, or its client left): the next call
 * may probe at once. Nothing changes if that probe's window is over and
 * another probe went out since, or the breaker is no longer half-open.
 */
void pc_breaker_release(struct pc_breaker *br, const char *key,
    int64_t allowed_us, int64_t now_us);

/*
 * Report the outcome of a call that pc_breaker_allow admitted. A success
 * resets the count of consecutive failures (and closes a half-open
 * breaker); a failure counts, opens at the threshold, and re-opens a
 * half-open breaker. Outcomes reported while the breaker is open (calls
 * admitted before it opened) are ignored. 0; PC_E_LIMIT if the failure
 * could not be counted (table full of failing keys; logged); PC_E_INVAL.
 */
int pc_breaker_record(struct pc_breaker *br, const char *key, bool ok,
    int64_t now_us);

/* Current state (for metrics and tests); an unknown key is CLOSED. The
 * optional out-parameters give the consecutive failures and, when open,
 * the instant it may half-open. */
enum pc_breaker_state pc_breaker_state(struct pc_breaker *br, const char *key,
    int64_t now_us, uint32_t *failures, int64_t *open_until_us);

/* ---- concurrency caps --------------------------------------------------- */

struct pc_conc;

/* A table of at most max_entries (0 = default) counters. 0, PC_E_INVAL,
 * PC_E_NOMEM, PC_E_IO. */
int pc_conc_new(size_t max_entries, struct pc_conc **out);
void pc_conc_free(struct pc_conc *c);	/* accepts NULL */

/*
 * Take one slot of key if fewer than cap are taken. 0 (taken; *inflight,
 * if not NULL, is the count including this one); PC_E_LIMIT (cap reached,
 * or the table is full: fail closed); PC_E_INVAL (bad key, cap 0).
 * Every 0 must be matched by exactly one pc_conc_release.
 */
int pc_conc_acquire(struct pc_conc *c, const char *key, uint32_t cap,
    uint32_t *inflight);
/* Give a slot back. Releasing a key with no slot taken is a bug in the
 * caller: logged and ignored. */
void pc_conc_release(struct pc_conc *c, const char *key);
/* Slots of key taken now. */
uint32_t pc_conc_count(struct pc_conc *c, const char *key);

#endif
