/*
 * Flood gate for records nobody is accountable for: refusals before
 * authentication (a wrong credential, a foreign Host or Origin, plaintext
 * from afar) and other denials without a principal. Each is worth a record,
 * but an unauthenticated client must not be able to fill the audit disk —
 * a full disk fails the log, and a failed log refuses everyone (fail
 * closed): a flood of bad requests would become an outage.
 *
 * So each source address gets a token bucket (a burst, then a steady rate)
 * and all sources together a global one. What passes is recorded one by
 * one; what does not is counted per source (and per reason), and a summary
 * record says how many were not recorded individually, at most once a
 * second per source and as soon as the flood stops. Counts are exact: the
 * individual records plus the summaries account for every refusal.
 *
 * Fixed memory: PC_FLOOD_SLOTS sources tracked at once (keyed hash, random
 * per gate, so a client cannot aim at another's slot); when every slot is
 * busy, further sources share one overflow slot, reported as source "*".
 * Time comes from the caller (monotonic microseconds) so tests drive it.
 * Loop thread only.
 */
#ifndef PC_LIMITS_FLOOD_H
#define PC_LIMITS_FLOOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/limits.h"

struct pc_flood;

struct pc_flood_conf {
	uint32_t burst;			/* per source; 0: PC_FLOOD_DEF_BURST */
	uint32_t per_s;			/* per source; 0: PC_FLOOD_DEF_PER_S */
	uint32_t global_per_s;		/* all sources; 0: PC_FLOOD_DEF_GLOBAL */
};

/* 0, PC_E_NOMEM or PC_E_IO (no randomness for the hash key). */
int pc_flood_new(const struct pc_flood_conf *c, struct pc_flood **out);
void pc_flood_free(struct pc_flood *f);

/* Whether one more refusal from `source` (reason: a static string) may be
 * recorded on its own now. false: it was counted for a summary. */
bool pc_flood_admit(struct pc_flood *f, const char *source, const char *reason,
    int64_t now_us);

/* A summary of what one source had suppressed. */
struct pc_flood_summary {
	const char *source;		/* valid during the callback */
	uint64_t count;			/* refusals not recorded one by one */
	int64_t first_us, last_us;	/* when the first and last happened */
	size_t nreasons;
	struct {
		const char *reason;	/* static; "other" past the table */
		uint64_t count;
	} reasons[PC_FLOOD_REASONS];
};

/*
 * Report, through cb, every source with suppressed refusals whose last
 * summary is at least a second old (or never was), then reset its counts.
 * `all`: report every source with something suppressed, whatever its age
 * (shutdown). Cheap when nothing is suppressed.
 */
void pc_flood_drain(struct pc_flood *f, int64_t now_us, bool all,
    void (*cb)(void *arg, const struct pc_flood_summary *s), void *arg);

#endif
