/*
 * Rate limits: GCRA (generic cell rate algorithm), several limits checked
 * at once, and the keyed state store they (and budgets) keep their counters
 * in. See docs/limits.md.
 *
 * Time is always passed in by the caller (`now_us`: wall-clock
 * microseconds since the Unix epoch, UTC) so that state can be persisted
 * across a restart and tests can drive the clock exactly.
 *
 * Every function runs on the event loop and never blocks or allocates on
 * the hot path: the in-memory store is sized once, at creation.
 */
#ifndef PC_LIMITS_GCRA_H
#define PC_LIMITS_GCRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/limits.h"

/*
 * Ceilings (PC_LIMIT_KEY_MAX, PC_LIMIT_ID_MAX, PC_GCRA_MAX_LIMITS,
 * PC_LIMIT_DEF_ENTRIES, PC_LIMIT_MAX_ENTRIES) are in src/lib/limits.h. A
 * state key is "<limit id>\x1f<subject>"; subjects are key ids (16 hex),
 * tool names (<= 128) or tenant names (<= 128): 256 bytes hold the longest
 * combination and bound the memory of one entry.
 */

/* ---- keyed state store: the seam for SQLite snapshots and Redis -------- */

/* The value a store keeps per key. Modules give the slots their own
 * meaning (GCRA: v[0] = TAT; budgets: v[0] = spent, v[1] = period start).
 * expire_us: from then on the entry means the same as an absent one and
 * may be evicted (INT64_MAX: never). */
#define PC_LVAL_SLOTS 4
struct pc_lval {
	int64_t v[PC_LVAL_SLOTS];
	int64_t expire_us;
};

/*
 * A store holds pc_lval per key. Both verbs take a batch so that a check of
 * several limits is one atomic step: a shared store (Redis, a later issue)
 * implements `cas` as one server-side script that compares every key and
 * writes all or none. The in-memory store below never sees a concurrent
 * writer (one event loop), so its compare always matches.
 *
 * get: for each i, found[i] and vals[i] (zeroed when absent). 0, or a
 *   negative PC_E_* (callers then refuse: limits fail closed).
 * cas: write vals[i] for every key if every key still holds old[i] (or is
 *   still absent when !found[i]). 0; PC_E_EXISTS if one changed (nothing
 *   written; the caller re-reads and retries); PC_E_LIMIT if new keys do
 *   not fit (nothing written). An entry whose new expire_us <= now_us may
 *   be dropped instead of written.
 * each: call cb for every entry not expired at now_us; stops at and
 *   returns cb's first non-zero return. May be NULL (store persists itself).
 * destroy: free ctx. May be NULL.
 */
struct pc_limit_store_ops {
	int (*get)(void *ctx, size_t n, const char *const keys[],
	    struct pc_lval vals[], bool found[]);
	int (*cas)(void *ctx, size_t n, const char *const keys[],
	    const struct pc_lval old[], const bool found[],
	    const struct pc_lval vals[], int64_t now_us);
	int (*each)(void *ctx, int64_t now_us,
	    int (*cb)(void *arg, const char *key, const struct pc_lval *v),
	    void *arg);
	void (*destroy)(void *ctx);
};

/*
 * The in-memory store: a hash table of at most max_entries (0 = default)
 * fixed-size entries, all allocated here. When it is full, entries whose
 * expire_us has passed are evicted; if none has, a write of a new key fails
 * with PC_E_LIMIT (callers refuse: fail closed). Keys are hashed with a
 * random per-table SipHash key, so clients choosing tool names cannot aim
 * at one chain. On success *ops points to static ops and *ctx is owned by
 * the caller (free with ops->destroy). PC_E_INVAL, PC_E_NOMEM, PC_E_IO
 * (no randomness).
 */
int pc_limit_mem_new(size_t max_entries, const struct pc_limit_store_ops **ops,
    void **ctx);
/*
 * The store a limiter uses: the caller's (ops, ctx) when ops is given, else
 * a private pc_limit_mem_new() store of max_entries, with *own set so that
 * pc_limit_store_release() destroys it. 0 or pc_limit_mem_new's errors.
 */
int pc_limit_store_use(const struct pc_limit_store_ops *ops, void *ctx,
    size_t max_entries, const struct pc_limit_store_ops **out_ops,
    void **out_ctx, bool *own);
void pc_limit_store_release(const struct pc_limit_store_ops *ops, void *ctx,
    bool own);
/* Live entries of a store made by pc_limit_mem_new (tests, metrics). */
size_t pc_limit_mem_count(void *ctx);

/*
 * State keys are "<id>\x1f<a>" or "<id>\x1f<a>\x1f<b>": 0x1f appears in no
 * id, key id, tool name or tenant we accept, so two subjects never share a
 * key. Fields that together would not fit go in as "\x1e" and 32 hex
 * digits of their SHA-256 (0x1e is refused in fields too). Writes the key
 * into dst (PC_LIMIT_KEY_MAX bytes). 0; PC_E_INVAL if a field holds 0x1f
 * or 0x1e, or the key would not fit even so (callers refuse); PC_E_IO if
 * the digest failed.
 */
#define PC_LIMIT_KEY_SEP '\x1f'
int pc_limit_key(char *dst, const char *id, const char *a, const char *b);

/* ---- GCRA limits -------------------------------------------------------- */

/* Whose calls a limit counts. Each limit counts every subject separately
 * (30/min per key means 30/min for each key), unless `match` restricts it
 * to one key, tool or tenant. */
enum pc_limit_scope {
	PC_LIMIT_KEY = 0,	/* per API key / principal */
	PC_LIMIT_TOOL,		/* per tool, all callers together */
	PC_LIMIT_KEY_TOOL,	/* per key and tool */
	PC_LIMIT_TENANT,	/* per tenant */
	PC_LIMIT_GLOBAL,	/* the whole gateway */
};

#define PC_LIMIT_SECOND_US	INT64_C(1000000)
#define PC_LIMIT_MINUTE_US	(60 * PC_LIMIT_SECOND_US)
#define PC_LIMIT_HOUR_US	(3600 * PC_LIMIT_SECOND_US)
#define PC_LIMIT_DAY_US		(86400 * PC_LIMIT_SECOND_US)

/*
 * `count` calls per `period_us`, of which up to `burst` may come at once
 * (burst 0 = count: a fresh client may spend a whole period's worth
 * immediately, then gets the steady rate). The spacing of the steady rate
 * is ceil(period_us / count) microseconds.
 *
 * id: stable name used in answers, logs and persisted keys; "" derives
 *   "<scope>:<period>" ("key:minute", "tool[search]:hour", "global:90s").
 *   Ids must be unique in a set.
 * match: "" = every subject; else only this key (KEY), tool (TOOL,
 *   KEY_TOOL) or tenant (TENANT). Ignored for GLOBAL.
 */
struct pc_gcra_limit {
	char id[PC_LIMIT_ID_MAX];
	enum pc_limit_scope scope;
	uint64_t count;
	int64_t period_us;
	uint64_t burst;
	char match[PC_LIMIT_KEY_MAX / 2];
};

/* Who is calling. NULL or "" fields are absent: a limit whose scope needs
 * an absent field does not apply (a call without a tool is not counted by
 * TOOL limits). */
struct pc_gcra_subject {
	const char *key;
	const char *tool;
	const char *tenant;
};

/*
 * The answer. On refusal, limit_id names the limit that fired (when several
 * refuse, the one that frees last, so Retry-After is right); on success,
 * the limit closest to exhaustion, for the RateLimit headers.
 */
struct pc_gcra_result {
	bool allowed;
	int64_t retry_after_us;	/* refused: wait this long and the same call
				 * passes (if nothing else is spent); 0 when
				 * allowed; INT64_MAX if it never can
				 * (cost > burst) */
	uint64_t limit;		/* RateLimit-Limit: the reported limit's count */
	uint64_t remaining;	/* RateLimit-Remaining: cost-1 calls left now */
	int64_t reset_us;	/* RateLimit-Reset: until the limit is whole */
	int64_t window_us;	/* the reported limit's period */
	char limit_id[PC_LIMIT_ID_MAX];	/* "" when no limit applied */
};

struct pc_gcra;

/*
 * A limiter over n limits (copied). ops/ctx: the state store; NULL ops =
 * a private in-memory store of max_entries (0 = default). With non-NULL
 * ops, ctx stays the caller's (not destroyed by pc_gcra_free).
 * 0; PC_E_CONFIG (count 0, period <= 0, burst too large, duplicate or
 * malformed id: message in err); PC_E_LIMIT (n > PC_GCRA_MAX_LIMITS);
 * PC_E_NOMEM; PC_E_IO.
 */
int pc_gcra_new(const struct pc_gcra_limit *limits, size_t n,
    const struct pc_limit_store_ops *ops, void *ctx, size_t max_entries,
    struct pc_gcra **out, char *err, size_t errlen);
void pc_gcra_free(struct pc_gcra *g);	/* accepts NULL */

/*
 * Charge `cost` units against every limit that applies to subj, all or
 * nothing. Returns 0 with r filled whether the call is allowed or refused.
 * Negative when no decision could be made (r then reads as refused with a
 * 1 s retry and limit_id "capacity" or "store"): PC_E_LIMIT (store full of
 * live entries: fail closed), PC_E_INVAL (a subject too long for a key),
 * or a store error. Callers refuse on any non-allowed outcome.
 */
int pc_gcra_take_subject(struct pc_gcra *g, const struct pc_gcra_subject *subj,
    uint32_t cost, int64_t now_us, struct pc_gcra_result *r);
/* Shorthand: subject with only a key (KEY and GLOBAL limits apply). */
int pc_gcra_take(struct pc_gcra *g, const char *key, uint32_t cost,
    int64_t now_us, struct pc_gcra_result *r);
/* As pc_gcra_take_subject but charges nothing: lets a caller check rate
 * limits and budgets first and charge both only if both allow. */
int pc_gcra_peek_subject(struct pc_gcra *g, const struct pc_gcra_subject *subj,
    uint32_t cost, int64_t now_us, struct pc_gcra_result *r);

/*
 * Persistence ("counters survive a restart"): snapshot calls cb for every
 * state key whose TAT is still ahead of now_us (the others are the same as
 * absent); cb's first non-zero return stops it and is returned. Strings
 * passed to cb are borrowed for the call. Restore puts one back: 0;
 * PC_E_NOTFOUND if the key names no configured limit (config changed:
 * drop it); PC_E_INVAL (malformed); PC_E_LIMIT (full). A TAT in the past
 * is accepted and ignored; one further ahead than the limit allows (the
 * limit was tightened) is clamped.
 */
int pc_gcra_snapshot(struct pc_gcra *g, int64_t now_us,
    int (*cb)(void *arg, const char *key, int64_t tat_us), void *arg);
int pc_gcra_restore(struct pc_gcra *g, const char *key, int64_t tat_us,
    int64_t now_us);

/*
 * The HTTP answer. Values are whole seconds rounded up (a client that waits
 * Retry-After seconds is never refused by this limit for being early).
 * has_retry_after is set for a refusal that can succeed later.
 */
struct pc_gcra_hdr {
	uint64_t limit;
	uint64_t remaining;
	uint64_t reset_s;
	uint64_t retry_after_s;
	bool has_retry_after;
};
void pc_gcra_hdr_values(const struct pc_gcra_result *r, struct pc_gcra_hdr *h);
/*
 * Format "RateLimit-Limit: N\r\nRateLimit-Remaining: N\r\nRateLimit-Reset:
 * N\r\n" (+ "Retry-After: N\r\n" on refusal) into buf (NUL-terminated).
 * Returns the length, or PC_E_LIMIT if buf is too small (96 bytes always
 * suffice).
 */
int pc_gcra_headers(const struct pc_gcra_result *r, char *buf, size_t len);

/* Seconds rounded up, for Retry-After; 0 for <= 0. */
uint64_t pc_limit_ceil_s(int64_t us);

#endif
