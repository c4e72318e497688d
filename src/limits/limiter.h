/*
 * The limits stage as the gateway runs it: one object built from the
 * config's rate_limits, budgets, tool_costs, breakers and concurrency
 * sections, over the modules of this folder (gcra, budget, breaker). See
 * docs/limits.md, "In the gateway".
 *
 * Two checkpoints per call, because they know different things:
 *
 *   admit    at the front, right after authentication (the pipeline's
 *            "rate limit" stage): the key's breaker, the key's concurrency
 *            cap and the rate limits. Tool calls only.
 *   forward  where the router sends the call to its upstream (after
 *            authorization and validation): the upstream's breaker, its
 *            concurrency cap, and the budgets (tools/call only), so that a
 *            call refused on the way costs nothing.
 *
 * Each successful checkpoint is matched by exactly one *_end() with the
 * outcome. Everything runs on the event loop; the clock is the caller's
 * (now_us: wall-clock microseconds, UTC).
 *
 * The object lives as long as the process: a reload reconfigures it in
 * place (pc_limiter_set_config), keeping counters of limits that still
 * exist, breaker state when a breaker's settings did not change, and the
 * slots of calls in flight.
 */
#ifndef PC_LIMITS_LIMITER_H
#define PC_LIMITS_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "../config/config.h"
#include "limits/gcra.h"

struct pc_limiter;

/* Who is calling what. key: the API key id (or the principal for other
 * methods); tenant may be "" or NULL; tool: the exposed tool name. */
struct pc_limit_subject {
	const char *key;
	const char *tenant;
	const char *tool;
};

/* What a checkpoint decided. */
struct pc_limit_verdict {
	bool allowed;
	int status;			/* refused: 429 (the caller's doing) or
					 * 503 (an upstream's) */
	const char *reason;		/* refused: a stable code, static:
					 * limit.rate, limit.budget,
					 * limit.breaker.key, limit.breaker.upstream,
					 * limit.concurrency.key,
					 * limit.concurrency.upstream,
					 * limit.unavailable (no decision) */
	const char *message;		/* refused: for the client, static */
	char limit_id[PC_LIMIT_ID_MAX];	/* refused: which limit fired */
	int64_t retry_after_us;		/* refused: the wait; INT64_MAX never */
	bool has_rate;			/* a rate limit applied: headers */
	struct pc_gcra_hdr rate;	/* its RateLimit-* values */
	/* admit only: what *_end must give back */
	bool took_key_slot;
	bool key_breaker;		/* the key breaker admitted it */
	bool key_probe;			/* ... as its half-open probe */
	/* forward only */
	bool took_up_slot;
	bool up_breaker;
	bool up_probe;
	int64_t at_us;			/* when the checkpoint ran */
	uint64_t charged;		/* budget units taken (for a refund) */
	int64_t charged_at_us;
	uint64_t charged_gen;		/* the budget set charged */
};

/* 0; PC_E_CONFIG (message in err); PC_E_NOMEM; PC_E_IO. */
int pc_limiter_new(const struct pc_limiter_conf *cfg, struct pc_limiter **out,
    char *err, size_t errlen);
void pc_limiter_free(struct pc_limiter *l);	/* accepts NULL */

/*
 * Use a reloaded configuration (borrowed; it must outlive its use, like
 * every config). Rate and budget state carries over for ids that still
 * exist (a tightened limit is clamped); breakers keep their state unless
 * their settings changed. On error nothing changes. 0 or as _new.
 */
int pc_limiter_set_config(struct pc_limiter *l,
    const struct pc_limiter_conf *cfg, int64_t now_us, char *err,
    size_t errlen);

/* Anything to check at all (false: every checkpoint allows at once). */
bool pc_limiter_active(const struct pc_limiter *l);

/* The front checkpoint. Fills v (refused: nothing is held). */
void pc_limiter_admit(struct pc_limiter *l, const struct pc_limit_subject *s,
    int64_t now_us, struct pc_limit_verdict *v);
/* The admitted call ended; failed: it ended in an error (for the key
 * breaker; ignored unless v->key_breaker); counted: whether its outcome
 * counts for the breaker at all (false for a refusal by a later limit or
 * a client that left). */
void pc_limiter_admit_end(struct pc_limiter *l, const char *key,
    const struct pc_limit_verdict *v, bool counted, bool failed,
    int64_t now_us);

/* The forward checkpoint; s->tool NULL for methods other than tools/call
 * (no budget). */
void pc_limiter_forward(struct pc_limiter *l, const struct pc_limit_subject *s,
    const char *upstream, int64_t now_us, struct pc_limit_verdict *v);
/* The forwarded call never reached its upstream (none could take it):
 * give back its budget charge, once. Other ends keep the charge. */
void pc_limiter_forward_refund(struct pc_limiter *l,
    const struct pc_limit_subject *s, struct pc_limit_verdict *v,
    int64_t now_us);
/* counted/failed as above, for the upstream breaker. */
void pc_limiter_forward_end(struct pc_limiter *l, const char *upstream,
    const struct pc_limit_verdict *v, bool counted, bool failed,
    int64_t now_us);

/*
 * Persistence: every rate ('r': v0 = TAT) and budget ('b': v0 = spent,
 * v1 = period start) state still in effect. cb's first non-zero return
 * stops the walk and is returned.
 */
int pc_limiter_snapshot(struct pc_limiter *l, int64_t now_us,
    int (*cb)(void *arg, char kind, const char *key, int64_t v0, int64_t v1),
    void *arg);
/* Put one back: 0, PC_E_NOTFOUND (no such limit any more: drop it),
 * PC_E_INVAL, PC_E_LIMIT. */
int pc_limiter_restore(struct pc_limiter *l, char kind, const char *key,
    int64_t v0, int64_t v1, int64_t now_us);
/* Grows with every charge: a snapshot is due when it moved. */
uint64_t pc_limiter_changes(const struct pc_limiter *l);

#endif
