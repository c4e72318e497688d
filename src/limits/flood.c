/*
 * The flood gate for unaccountable refusal records (see flood.h): token
 * buckets per source and global, suppressed refusals counted per source
 * and reason, summaries drained by the caller's timer.
 */
#include "flood.h"

#include <stdlib.h>
#include <string.h>

#include "../lib/errors.h"
#include "../lib/util.h"

/* Slots probed for a source before it goes to the overflow slot. */
#define FLOOD_PROBE 8u

struct bucket {
	double tokens;
	int64_t at_us;			/* when tokens was last brought up */
};

struct slot {
	char source[64];		/* "" = free */
	struct bucket b;
	uint64_t suppressed;
	int64_t first_us, last_us;
	int64_t summary_us;		/* last summary; 0 = never */
	size_t nreasons;
	const char *reason[PC_FLOOD_REASONS];
	uint64_t rcount[PC_FLOOD_REASONS];
};

struct pc_flood {
	double burst, per_s, global_per_s;
	struct bucket global;
	uint64_t k0, k1;
	size_t pending;			/* slots with suppressed > 0 */
	struct slot over;		/* source "*" */
	struct slot slots[PC_FLOOD_SLOTS];
};

static void
refill(struct bucket *b, double cap, double per_s, int64_t now_us)
{
	if (b->at_us == 0) {
		b->tokens = cap;	/* a new bucket starts full */
	} else if (now_us > b->at_us) {
		b->tokens += (double)(now_us - b->at_us) * per_s / 1e6;
		if (b->tokens > cap)
			b->tokens = cap;
	}
	if (now_us > b->at_us)
		b->at_us = now_us;
}

int
pc_flood_new(const struct pc_flood_conf *c, struct pc_flood **out)
{
	struct pc_flood *f;
	uint64_t k[2];

	*out = NULL;
	if (pc_random_bytes(k, sizeof(k)) != 0)
		return PC_E_IO;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return PC_E_NOMEM;
	f->burst = c != NULL && c->burst ? c->burst : PC_FLOOD_DEF_BURST;
	f->per_s = c != NULL && c->per_s ? c->per_s : PC_FLOOD_DEF_PER_S;
	f->global_per_s = c != NULL && c->global_per_s ? c->global_per_s :
	    PC_FLOOD_DEF_GLOBAL;
	f->k0 = k[0];
	f->k1 = k[1];
	pc_strlcpy(f->over.source, "*", sizeof(f->over.source));
	*out = f;
	return 0;
}

void
pc_flood_free(struct pc_flood *f)
{
	free(f);
}

/* A slot is idle when forgetting it loses nothing: its bucket is full
 * again and it has nothing to report. */
static bool
idle(const struct pc_flood *f, struct slot *s, int64_t now_us)
{
	if (s->source[0] == '\0')
		return true;
	if (s->suppressed > 0)
		return false;
	refill(&s->b, f->burst, f->per_s, now_us);
	return s->b.tokens >= f->burst;
}

static struct slot *
find(struct pc_flood *f, const char *source, int64_t now_us)
{
	size_t len = strnlen(source, sizeof(f->over.source) - 1);
	size_t i0 = (size_t)(pc_siphash(f->k0, f->k1, source, len) %
	    PC_FLOOD_SLOTS);
	struct slot *spare = NULL;

	for (size_t i = 0; i < FLOOD_PROBE; i++) {
		struct slot *s = &f->slots[(i0 + i) % PC_FLOOD_SLOTS];

		if (s->source[0] != '\0' &&
		    strncmp(s->source, source, sizeof(s->source) - 1) == 0)
			return s;
		if (spare == NULL && idle(f, s, now_us))
			spare = s;
	}
	if (spare == NULL)
		return &f->over;
	memset(spare, 0, sizeof(*spare));
	pc_strlcpy(spare->source, source, sizeof(spare->source));
	return spare;
}

static void
count(struct pc_flood *f, struct slot *s, const char *reason, int64_t now_us)
{
	size_t i;

	if (s->suppressed++ == 0) {
		s->first_us = now_us;
		f->pending++;
	}
	s->last_us = now_us;
	for (i = 0; i < s->nreasons; i++)
		if (strcmp(s->reason[i], reason) == 0)
			break;
	if (i == s->nreasons) {
		if (s->nreasons == PC_FLOOD_REASONS) {
			/* Past the table everything else is "other", in the
			 * last entry. */
			i = PC_FLOOD_REASONS - 1;
			s->reason[i] = "other";
		} else {
			s->reason[i] = reason;
			s->rcount[i] = 0;
			s->nreasons++;
		}
	}
	s->rcount[i]++;
}

bool
pc_flood_admit(struct pc_flood *f, const char *source, const char *reason,
    int64_t now_us)
{
	struct slot *s = find(f, source != NULL ? source : "", now_us);

	refill(&s->b, f->burst, f->per_s, now_us);
	refill(&f->global, f->global_per_s, f->global_per_s, now_us);
	if (s->b.tokens >= 1.0 && f->global.tokens >= 1.0) {
		s->b.tokens -= 1.0;
		f->global.tokens -= 1.0;
		return true;
	}
	count(f, s, reason != NULL ? reason : "unknown", now_us);
	return false;
}

static void
report(struct pc_flood *f, struct slot *s, int64_t now_us,
    void (*cb)(void *, const struct pc_flood_summary *), void *arg)
{
	struct pc_flood_summary sum = {
		.source = s->source, .count = s->suppressed,
		.first_us = s->first_us, .last_us = s->last_us,
		.nreasons = s->nreasons,
	};

	for (size_t i = 0; i < s->nreasons; i++) {
		sum.reasons[i].reason = s->reason[i];
		sum.reasons[i].count = s->rcount[i];
	}
	s->suppressed = 0;
	s->nreasons = 0;
	s->summary_us = now_us;
	f->pending--;
	cb(arg, &sum);
}

void
pc_flood_drain(struct pc_flood *f, int64_t now_us, bool all,
    void (*cb)(void *arg, const struct pc_flood_summary *s), void *arg)
{
	if (f == NULL || f->pending == 0)
		return;
	for (size_t i = 0; i <= PC_FLOOD_SLOTS && f->pending > 0; i++) {
		struct slot *s = i < PC_FLOOD_SLOTS ? &f->slots[i] : &f->over;

		if (s->suppressed == 0)
			continue;
		if (all || s->summary_us == 0 ||
		    now_us - s->summary_us >= PC_FLOOD_SUMMARY_US)
			report(f, s, now_us, cb, arg);
	}
}
