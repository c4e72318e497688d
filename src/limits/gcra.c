/*
 * GCRA rate limits and the in-memory keyed store (see gcra.h and
 * docs/limits.md).
 *
 * GCRA keeps one number per counted subject: the theoretical arrival time
 * (TAT), the instant at which the subject's allowance would be whole again
 * if it made no more calls. A call of cost c moves it to
 * max(TAT, now) + c*T (T = period/count); the call is allowed while that
 * new TAT is at most `burst` intervals (the tolerance) ahead of now. So
 * one integer per subject gives both a burst and an exact steady rate, and
 * the wait of a refused call is known to the microsecond.
 */
#include "limits/gcra.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

#define KEY_SEP PC_LIMIT_KEY_SEP

/* The longest tolerance (T * burst) a limit may have: a day limit with
 * burst of several days' worth is still far below; past this a value is a
 * typo, and keeping it bounded keeps every TAT sum far from overflow. */
#define MAX_TOLERANCE_US (400 * PC_LIMIT_DAY_US)

/* Entries examined for eviction per write, so expired entries leave the
 * table (and the snapshots) even when it never fills. */
#define SWEEP_STEP 4u

/* ======================================================================
 * In-memory store: fixed entry array + open-addressed index (linear
 * probing, backward-shift deletion, load <= 1/2). Nothing is allocated
 * after creation.
 * ====================================================================== */

struct ent {
	struct pc_lval val;
	uint64_t hash;
	uint32_t klen;			/* 0 = free */
	char key[PC_LIMIT_KEY_MAX];
};

struct mem {
	struct ent *ents;
	uint32_t *idx;			/* slot -> entry index + 1; 0 = empty */
	uint32_t *freel;		/* stack of free entry indexes */
	size_t nfree;
	size_t max;
	size_t mask;
	size_t cursor;			/* next entry the incremental sweep checks */
	int64_t next_expiry;		/* no live entry expires before this */
	uint64_t k0, k1;
	bool warned_full;
};

static size_t
mem_find(const struct mem *m, const char *key, size_t klen, uint64_t h,
    bool *found)
{
	size_t i = h & m->mask;

	for (;;) {
		uint32_t e = m->idx[i];
		if (e == 0) {
			*found = false;
			return i;
		}
		const struct ent *x = &m->ents[e - 1];
		if (x->hash == h && x->klen == klen &&
		    memcmp(x->key, key, klen) == 0) {
			*found = true;
			return i;
		}
		i = (i + 1) & m->mask;
	}
}

static void
mem_remove_slot(struct mem *m, size_t i)
{
	uint32_t e = m->idx[i];
	size_t j = i;

	m->ents[e - 1].klen = 0;
	m->freel[m->nfree++] = e - 1;
	/* Backward shift: pull later members of the chain into the hole so
	 * lookups never need tombstones. */
	for (;;) {
		j = (j + 1) & m->mask;
		if (m->idx[j] == 0)
			break;
		size_t k = m->ents[m->idx[j] - 1].hash & m->mask;
		bool move = (i <= j) ? (k <= i || k > j) : (k <= i && k > j);
		if (move) {
			m->idx[i] = m->idx[j];
			i = j;
		}
	}
	m->idx[i] = 0;
}

static void
mem_remove_ent(struct mem *m, struct ent *x)
{
	bool found;
	size_t i = mem_find(m, x->key, x->klen, x->hash, &found);

	if (!found)
		abort();	/* the index lost an entry: corrupt table */
	mem_remove_slot(m, i);
}

static int
mem_insert(struct mem *m, size_t slot, const char *key, size_t klen,
    uint64_t h, const struct pc_lval *v)
{
	if (m->nfree == 0)
		return PC_E_LIMIT;
	uint32_t e = m->freel[--m->nfree];
	struct ent *x = &m->ents[e];

	x->val = *v;
	x->hash = h;
	x->klen = (uint32_t)klen;
	memcpy(x->key, key, klen);
	x->key[klen] = '\0';
	m->idx[slot] = e + 1;
	if (v->expire_us < m->next_expiry)
		m->next_expiry = v->expire_us;
	return 0;
}

/*
 * Evict every expired entry. Called only when the table is full; when
 * nothing can be evicted it records the earliest expiry so that a flood of
 * new keys against a full table costs O(1) each until then.
 */
static void
mem_sweep_all(struct mem *m, int64_t now_us)
{
	int64_t next = INT64_MAX;

	if (now_us < m->next_expiry)
		return;
	for (size_t i = 0; i < m->max; i++) {
		struct ent *x = &m->ents[i];
		if (x->klen == 0)
			continue;
		if (x->val.expire_us <= now_us)
			mem_remove_ent(m, x);
		else if (x->val.expire_us < next)
			next = x->val.expire_us;
	}
	m->next_expiry = next;
}

static void
mem_sweep_step(struct mem *m, int64_t now_us)
{
	for (unsigned n = 0; n < SWEEP_STEP; n++) {
		struct ent *x = &m->ents[m->cursor];
		m->cursor = (m->cursor + 1) % m->max;
		if (x->klen != 0 && x->val.expire_us <= now_us)
			mem_remove_ent(m, x);
	}
}

static int
mem_get(void *ctx, size_t n, const char *const keys[], struct pc_lval vals[],
    bool found[])
{
	struct mem *m = ctx;

	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(keys[i]);
		uint64_t h = pc_siphash(m->k0, m->k1, keys[i], klen);
		size_t s = mem_find(m, keys[i], klen, h, &found[i]);

		if (found[i])
			vals[i] = m->ents[m->idx[s] - 1].val;
		else
			memset(&vals[i], 0, sizeof(vals[i]));
	}
	return 0;
}

static int
mem_cas(void *ctx, size_t n, const char *const keys[],
    const struct pc_lval old[], const bool found[],
    const struct pc_lval vals[], int64_t now_us)
{
	struct mem *m = ctx;
	size_t need = 0;
	uint64_t hs[PC_GCRA_MAX_LIMITS];
	size_t ls[PC_GCRA_MAX_LIMITS];

	if (n > PC_GCRA_MAX_LIMITS)
		return PC_E_INVAL;
	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(keys[i]);
		if (klen == 0 || klen >= PC_LIMIT_KEY_MAX)
			return PC_E_INVAL;
		uint64_t h = pc_siphash(m->k0, m->k1, keys[i], klen);
		bool f;

		hs[i] = h;
		ls[i] = klen;
		size_t s = mem_find(m, keys[i], klen, h, &f);

		if (f != found[i] || (f && memcmp(&m->ents[m->idx[s] - 1].val,
		    &old[i], sizeof(old[i])) != 0))
			return PC_E_EXISTS;
		if (!f && vals[i].expire_us > now_us)
			need++;
	}
	if (need > m->nfree)
		mem_sweep_all(m, now_us);
	if (need > m->nfree) {
		if (!m->warned_full) {
			pc_warn("limit state table full (%zu entries): "
			    "refusing new subjects", m->max);
			m->warned_full = true;
		}
		return PC_E_LIMIT;
	}
	m->warned_full = false;
	for (size_t i = 0; i < n; i++) {
		size_t klen = ls[i];
		uint64_t h = hs[i];
		bool f;
		/* Found again: an earlier removal in this loop may have
		 * shifted the key's slot. */
		size_t s = mem_find(m, keys[i], klen, h, &f);

		if (vals[i].expire_us <= now_us) {
			/* Same as absent: do not spend an entry on it. */
			if (f)
				mem_remove_slot(m, s);
		} else if (f) {
			m->ents[m->idx[s] - 1].val = vals[i];
			if (vals[i].expire_us < m->next_expiry)
				m->next_expiry = vals[i].expire_us;
		} else if (mem_insert(m, s, keys[i], klen, h, &vals[i]) != 0) {
			abort();	/* room was checked above */
		}
	}
	/* Only writes that took entries pay for the sweep: updates of known
	 * keys (the common case) stay at a few cache lines. */
	if (need > 0)
		mem_sweep_step(m, now_us);
	return 0;
}

static int
mem_each(void *ctx, int64_t now_us,
    int (*cb)(void *arg, const char *key, const struct pc_lval *v), void *arg)
{
	struct mem *m = ctx;

	for (size_t i = 0; i < m->max; i++) {
		const struct ent *x = &m->ents[i];
		if (x->klen == 0 || x->val.expire_us <= now_us)
			continue;
		int rc = cb(arg, x->key, &x->val);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void
mem_destroy(void *ctx)
{
	struct mem *m = ctx;

	if (m == NULL)
		return;
	free(m->ents);
	free(m->idx);
	free(m->freel);
	explicit_bzero(m, sizeof(*m));	/* the hash key */
	free(m);
}

static const struct pc_limit_store_ops mem_ops = {
	.get = mem_get,
	.cas = mem_cas,
	.each = mem_each,
	.destroy = mem_destroy,
};

int
pc_limit_mem_new(size_t max_entries, const struct pc_limit_store_ops **ops,
    void **ctx)
{
	struct mem *m = NULL;
	size_t slots = 1;
	uint64_t seed[2];
	int rc;

	if (max_entries == 0)
		max_entries = PC_LIMIT_DEF_ENTRIES;
	if (max_entries > PC_LIMIT_MAX_ENTRIES)
		return PC_E_INVAL;
	while (slots < 2 * max_entries)
		slots <<= 1;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return PC_E_NOMEM;
	m->max = max_entries;
	m->mask = slots - 1;
	m->nfree = max_entries;
	m->next_expiry = INT64_MAX;
	m->ents = calloc(max_entries, sizeof(*m->ents));
	m->idx = calloc(slots, sizeof(*m->idx));
	m->freel = calloc(max_entries, sizeof(*m->freel));
	if (m->ents == NULL || m->idx == NULL || m->freel == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	/* Hand out low entry indexes first: they are the warm ones. */
	for (size_t i = 0; i < max_entries; i++)
		m->freel[i] = (uint32_t)(max_entries - 1 - i);
	rc = pc_random_bytes(seed, sizeof(seed));
	if (rc != 0)
		goto out;
	m->k0 = seed[0];
	m->k1 = seed[1];
	explicit_bzero(seed, sizeof(seed));
	*ops = &mem_ops;
	*ctx = m;
	m = NULL;
out:
	mem_destroy(m);
	return rc;
}

int
pc_limit_store_use(const struct pc_limit_store_ops *ops, void *ctx,
    size_t max_entries, const struct pc_limit_store_ops **out_ops,
    void **out_ctx, bool *own)
{
	*own = false;
	if (ops == NULL) {
		int rc = pc_limit_mem_new(max_entries, out_ops, out_ctx);

		*own = rc == 0;
		return rc;
	}
	*out_ops = ops;
	*out_ctx = ctx;
	return 0;
}

void
pc_limit_store_release(const struct pc_limit_store_ops *ops, void *ctx,
    bool own)
{
	if (own && ops->destroy != NULL)
		ops->destroy(ctx);
}

size_t
pc_limit_mem_count(void *ctx)
{
	const struct mem *m = ctx;

	return m->max - m->nfree;
}

/* ======================================================================
 * GCRA
 * ====================================================================== */

struct lim {
	struct pc_gcra_limit cfg;
	int64_t t_us;		/* emission interval: ceil(period / count) */
	int64_t tol_us;		/* tolerance: t_us * burst */
};

/* Scratch for one check, kept in the limiter so a check uses no stack
 * beyond a few words and allocates nothing (one event loop: never
 * re-entered). */
struct scratch {
	char key[PC_GCRA_MAX_LIMITS][PC_LIMIT_KEY_MAX];
	const char *keys[PC_GCRA_MAX_LIMITS];
	size_t which[PC_GCRA_MAX_LIMITS];	/* key i -> limit index */
	struct pc_lval old[PC_GCRA_MAX_LIMITS];
	struct pc_lval val[PC_GCRA_MAX_LIMITS];
	bool found[PC_GCRA_MAX_LIMITS];
};

struct pc_gcra {
	struct lim lim[PC_GCRA_MAX_LIMITS];
	size_t n;
	const struct pc_limit_store_ops *ops;
	void *ctx;
	bool own_ctx;
	struct scratch s;
};

static const char *const scope_names[] = {
	[PC_LIMIT_KEY] = "key",
	[PC_LIMIT_TOOL] = "tool",
	[PC_LIMIT_KEY_TOOL] = "key+tool",
	[PC_LIMIT_TENANT] = "tenant",
	[PC_LIMIT_GLOBAL] = "global",
};

static int
derive_id(const struct pc_gcra_limit *l, char *id, size_t len)
{
	char per[32];
	int w;

	switch (l->period_us) {
	case PC_LIMIT_SECOND_US: snprintf(per, sizeof(per), "second"); break;
	case PC_LIMIT_MINUTE_US: snprintf(per, sizeof(per), "minute"); break;
	case PC_LIMIT_HOUR_US: snprintf(per, sizeof(per), "hour"); break;
	case PC_LIMIT_DAY_US: snprintf(per, sizeof(per), "day"); break;
	default:
		if (l->period_us % PC_LIMIT_SECOND_US == 0)
			snprintf(per, sizeof(per), "%" PRId64 "s",
			    l->period_us / PC_LIMIT_SECOND_US);
		else
			snprintf(per, sizeof(per), "%" PRId64 "us",
			    l->period_us);
	}
	if (l->match[0] != '\0' && l->scope != PC_LIMIT_GLOBAL)
		w = snprintf(id, len, "%s[%s]:%s", scope_names[l->scope],
		    l->match, per);
	else
		w = snprintf(id, len, "%s:%s", scope_names[l->scope], per);
	return (w < 0 || (size_t)w >= len) ? PC_E_CONFIG : 0;
}

static bool
id_ok(const char *id)
{
	if (id[0] == '\0')
		return false;
	for (const char *p = id; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f)
			return false;
	return true;
}

static int
lim_init(struct lim *d, const struct pc_gcra_limit *l, char *err,
    size_t errlen)
{
	uint64_t burst = l->burst ? l->burst : l->count;

	d->cfg = *l;
	d->cfg.match[sizeof(d->cfg.match) - 1] = '\0';
	d->cfg.id[sizeof(d->cfg.id) - 1] = '\0';
	if ((unsigned)l->scope > PC_LIMIT_GLOBAL) {
		snprintf(err, errlen, "limit: unknown scope");
		return PC_E_CONFIG;
	}
	if (d->cfg.id[0] == '\0' &&
	    derive_id(&d->cfg, d->cfg.id, sizeof(d->cfg.id)) != 0) {
		snprintf(err, errlen, "limit: name too long, give it an id");
		return PC_E_CONFIG;
	}
	if (!id_ok(d->cfg.id)) {
		snprintf(err, errlen, "limit: id must be printable, no spaces");
		return PC_E_CONFIG;
	}
	if (memchr(d->cfg.match, KEY_SEP, strlen(d->cfg.match)) != NULL) {
		snprintf(err, errlen, "limit %s: bad match", d->cfg.id);
		return PC_E_CONFIG;
	}
	if (l->count == 0 || l->period_us <= 0 ||
	    l->period_us > MAX_TOLERANCE_US) {
		snprintf(err, errlen, "limit %s: count must be >= 1 and the "
		    "period between 1 us and 400 days", d->cfg.id);
		return PC_E_CONFIG;
	}
	d->t_us = (int64_t)(((uint64_t)l->period_us + l->count - 1) /
	    l->count);
	if (burst > (uint64_t)(MAX_TOLERANCE_US / d->t_us)) {
		snprintf(err, errlen, "limit %s: burst too large", d->cfg.id);
		return PC_E_CONFIG;
	}
	d->tol_us = d->t_us * (int64_t)burst;
	d->cfg.burst = burst;
	return 0;
}

int
pc_gcra_new(const struct pc_gcra_limit *limits, size_t n,
    const struct pc_limit_store_ops *ops, void *ctx, size_t max_entries,
    struct pc_gcra **out, char *err, size_t errlen)
{
	struct pc_gcra *g = NULL;
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (n > PC_GCRA_MAX_LIMITS) {
		snprintf(err, errlen, "more than %u rate limits",
		    PC_GCRA_MAX_LIMITS);
		return PC_E_LIMIT;
	}
	if (n > 0 && limits == NULL)
		return PC_E_INVAL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		rc = lim_init(&g->lim[i], &limits[i], err, errlen);
		if (rc != 0)
			goto out;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(g->lim[j].cfg.id, g->lim[i].cfg.id) == 0) {
				snprintf(err, errlen, "limit %s: duplicate id",
				    g->lim[i].cfg.id);
				rc = PC_E_CONFIG;
				goto out;
			}
		}
	}
	g->n = n;
	rc = pc_limit_store_use(ops, ctx, max_entries, &g->ops, &g->ctx,
	    &g->own_ctx);
	if (rc != 0)
		goto out;
	*out = g;
	g = NULL;
	rc = 0;
out:
	pc_gcra_free(g);
	return rc;
}

void
pc_gcra_free(struct pc_gcra *g)
{
	if (g == NULL)
		return;
	pc_limit_store_release(g->ops, g->ctx, g->own_ctx);
	free(g);
}

static bool
present(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* The subject fields a limit counts, or NULL/NULL if it does not apply. */
static bool
applies(const struct pc_gcra_limit *l, const struct pc_gcra_subject *s,
    const char **a, const char **b)
{
	const char *m = l->match;

	*a = *b = NULL;
	switch (l->scope) {
	case PC_LIMIT_KEY:
		*a = s->key;
		return present(s->key) && (!*m || strcmp(m, s->key) == 0);
	case PC_LIMIT_TOOL:
		*a = s->tool;
		return present(s->tool) && (!*m || strcmp(m, s->tool) == 0);
	case PC_LIMIT_KEY_TOOL:
		*a = s->key;
		*b = s->tool;
		return present(s->key) && present(s->tool) &&
		    (!*m || strcmp(m, s->tool) == 0);
	case PC_LIMIT_TENANT:
		*a = s->tenant;
		return present(s->tenant) && (!*m || strcmp(m, s->tenant) == 0);
	case PC_LIMIT_GLOBAL:
		return true;
	}
	return false;
}

/* A field too long for a key, as KEY_DIGEST and 32 hex digits of its
 * SHA-256 (out: DIGEST_FIELD_LEN + 1 bytes). 0 or PC_E_IO. */
#define KEY_DIGEST '\x1e'
#define DIGEST_FIELD_LEN 33

static int
digest_field(const char *f, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(f, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < 16)
		return PC_E_IO;
	out[0] = KEY_DIGEST;
	for (size_t i = 0; i < 16; i++) {
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 15];
	}
	out[DIGEST_FIELD_LEN] = '\0';
	return 0;
}

/* *f (of *len bytes; NULL: none) replaced by its digest in buf when it is
 * longer than one. 0 or PC_E_IO. */
static int
digest_long(const char **f, size_t *len, char buf[DIGEST_FIELD_LEN + 1])
{
	if (*f == NULL || *len <= DIGEST_FIELD_LEN)
		return 0;
	if (digest_field(*f, *len, buf) != 0)
		return PC_E_IO;
	*f = buf;
	*len = DIGEST_FIELD_LEN;
	return 0;
}

int
pc_limit_key(char *dst, const char *id, const char *a, const char *b)
{
	size_t il = strlen(id), al = a ? strlen(a) : 0, bl = b ? strlen(b) : 0;
	size_t n = il + 1 + al + (b ? 1 + bl : 0);
	char da[DIGEST_FIELD_LEN + 1], db[DIGEST_FIELD_LEN + 1];
	char *p = dst;

	/* A separator inside a field would let two subjects share a key;
	 * so would a field that looks like another's digest. */
	if ((a && (memchr(a, KEY_SEP, al) || memchr(a, KEY_DIGEST, al))) ||
	    (b && (memchr(b, KEY_SEP, bl) || memchr(b, KEY_DIGEST, bl))))
		return PC_E_INVAL;
	/*
	 * Too long together (a JWT subject of 127 bytes and a tool name of
	 * 128): the long fields go in as digests. Refusing the key instead
	 * answered every call of that caller 503 under a key+tool limit.
	 */
	if (n >= PC_LIMIT_KEY_MAX && digest_long(&a, &al, da) != 0)
		return PC_E_IO;
	n = il + 1 + al + (b ? 1 + bl : 0);
	if (n >= PC_LIMIT_KEY_MAX && digest_long(&b, &bl, db) != 0)
		return PC_E_IO;
	n = il + 1 + al + (b ? 1 + bl : 0);
	if (n >= PC_LIMIT_KEY_MAX)
		return PC_E_INVAL;
	/* Hand-assembled rather than snprintf: this runs for every limit of
	 * every call, and the lengths are checked above. */
	memcpy(p, id, il);
	p += il;
	*p++ = KEY_SEP;
	if (al > 0)
		memcpy(p, a, al);
	p += al;
	if (b != NULL) {
		*p++ = KEY_SEP;
		memcpy(p, b, bl);
		p += bl;
	}
	*p = '\0';
	return 0;
}

static void
fail_result(struct pc_gcra_result *r, const char *why)
{
	memset(r, 0, sizeof(*r));
	r->allowed = false;
	r->retry_after_us = PC_LIMIT_SECOND_US;
	pc_strlcpy(r->limit_id, why, sizeof(r->limit_id));
}

static void
report(struct pc_gcra_result *r, const struct lim *l, int64_t tat,
    int64_t now_us)
{
	int64_t used = tat > now_us ? tat - now_us : 0;
	int64_t left = l->tol_us - used;
	uint64_t rem = left > 0 ? (uint64_t)(left / l->t_us) : 0;

	r->limit = l->cfg.count;
	r->remaining = rem < l->cfg.count ? rem : l->cfg.count;
	r->reset_us = used;
	r->window_us = l->cfg.period_us;
	pc_strlcpy(r->limit_id, l->cfg.id, sizeof(r->limit_id));
}

/* A TAT is never more than the tolerance ahead of the clock that set it;
 * further ahead, the wall clock stepped back: capped there, it counts as
 * the whole burst used, not as a wait as long as the step. */
static int64_t
tat_cap(const struct lim *l, int64_t tat, int64_t now_us)
{
	return tat - now_us > l->tol_us ? now_us + l->tol_us : tat;
}

/* The TATs of take's subjects that are further ahead than their tolerance
 * (the wall clock stepped back) cut to now + tolerance, one by one; a
 * failure leaves that one as it was (it is cut again next time). */
static void
unstep(struct pc_gcra *g, size_t k, int64_t now_us)
{
	struct scratch *s = &g->s;

	for (size_t j = 0; j < k; j++) {
		const struct lim *l = &g->lim[s->which[j]];
		struct pc_lval fix;

		if (!s->found[j] || tat_cap(l, s->old[j].v[0], now_us) ==
		    s->old[j].v[0])
			continue;
		fix = s->old[j];
		fix.v[0] = tat_cap(l, fix.v[0], now_us);
		fix.expire_us = fix.v[0];
		(void)g->ops->cas(g->ctx, 1, &s->keys[j], &s->old[j],
		    &s->found[j], &fix, now_us);
	}
}

static int
take(struct pc_gcra *g, const struct pc_gcra_subject *subj, uint32_t cost,
    int64_t now_us, bool charge, struct pc_gcra_result *r)
{
	struct scratch *s = &g->s;
	size_t k = 0, fired = SIZE_MAX, tight = SIZE_MAX;
	int64_t worst = -1;
	uint64_t tight_rem = UINT64_MAX;
	bool stepped = false;
	int rc;

	if (subj == NULL || r == NULL || now_us < 0 ||
	    now_us > INT64_MAX / 4) {
		if (r != NULL)
			fail_result(r, "invalid");
		return PC_E_INVAL;
	}
	for (size_t i = 0; i < g->n; i++) {
		const char *a, *b;
		if (!applies(&g->lim[i].cfg, subj, &a, &b))
			continue;
		rc = pc_limit_key(s->key[k], g->lim[i].cfg.id, a, b);
		if (rc != 0) {
			fail_result(r, "invalid");
			return rc;
		}
		s->keys[k] = s->key[k];
		s->which[k] = i;
		k++;
	}
	memset(r, 0, sizeof(*r));
	r->allowed = true;
	if (k == 0)
		return 0;

	for (int attempt = 0; attempt < 3; attempt++) {
		rc = g->ops->get(g->ctx, k, s->keys, s->old, s->found);
		if (rc != 0) {
			fail_result(r, "store");
			return rc;
		}
		fired = tight = SIZE_MAX;
		worst = -1;
		tight_rem = UINT64_MAX;
		for (size_t j = 0; j < k; j++) {
			const struct lim *l = &g->lim[s->which[j]];
			int64_t tat = s->found[j] && s->old[j].v[0] > now_us ?
			    s->old[j].v[0] : now_us;
			int64_t wait;

			stepped |= tat_cap(l, tat, now_us) != tat;
			tat = tat_cap(l, tat, now_us);

			if (cost > l->cfg.burst) {
				wait = INT64_MAX;
			} else {
				/* cost <= burst: the product is <= the
				 * tolerance, far from overflow. */
				int64_t ntat = tat + l->t_us * (int64_t)cost;
				wait = ntat - l->tol_us - now_us;
				s->val[j] = s->old[j];
				s->val[j].v[0] = ntat;
				s->val[j].expire_us = ntat;
			}
			if (wait > 0) {
				if (wait > worst) {
					worst = wait;
					fired = j;
				}
				continue;
			}
			/* Allowed by this limit: remaining after the charge. */
			int64_t left = l->tol_us - (s->val[j].v[0] - now_us);
			uint64_t rem = (uint64_t)(left / l->t_us);
			if (rem < tight_rem || (rem == tight_rem &&
			    s->val[j].v[0] > s->val[tight].v[0])) {
				tight_rem = rem;
				tight = j;
			}
		}
		if (fired != SIZE_MAX) {
			const struct lim *l = &g->lim[s->which[fired]];
			int64_t tat = s->found[fired] ?
			    tat_cap(l, s->old[fired].v[0], now_us) : 0;

			report(r, l, tat, now_us);
			r->allowed = false;
			r->retry_after_us = worst;
			/* A refusal writes nothing, so a TAT stepped past
			 * would be cut back again at every call, each one
			 * waiting a spacing: store the cut (a peek too: the
			 * limiter peeks first and stops at its refusal). */
			if (stepped)
				unstep(g, k, now_us);
			return 0;
		}
		if (!charge)
			break;
		rc = g->ops->cas(g->ctx, k, s->keys, s->old, s->found, s->val,
		    now_us);
		if (rc != PC_E_EXISTS)
			break;
	}
	if (charge && rc != 0) {
		fail_result(r, rc == PC_E_LIMIT ? "capacity" : "store");
		return rc;
	}
	report(r, &g->lim[s->which[tight]], s->val[tight].v[0], now_us);
	return 0;
}

int
pc_gcra_take_subject(struct pc_gcra *g, const struct pc_gcra_subject *subj,
    uint32_t cost, int64_t now_us, struct pc_gcra_result *r)
{
	return take(g, subj, cost, now_us, true, r);
}

int
pc_gcra_peek_subject(struct pc_gcra *g, const struct pc_gcra_subject *subj,
    uint32_t cost, int64_t now_us, struct pc_gcra_result *r)
{
	return take(g, subj, cost, now_us, false, r);
}

int
pc_gcra_take(struct pc_gcra *g, const char *key, uint32_t cost,
    int64_t now_us, struct pc_gcra_result *r)
{
	struct pc_gcra_subject s = { .key = key };

	return take(g, &s, cost, now_us, true, r);
}

struct snap_arg {
	int (*cb)(void *arg, const char *key, int64_t tat_us);
	void *arg;
};

static int
snap_one(void *arg, const char *key, const struct pc_lval *v)
{
	struct snap_arg *sa = arg;

	return sa->cb(sa->arg, key, v->v[0]);
}

int
pc_gcra_snapshot(struct pc_gcra *g, int64_t now_us,
    int (*cb)(void *arg, const char *key, int64_t tat_us), void *arg)
{
	struct snap_arg sa = { cb, arg };

	if (g->ops->each == NULL)
		return 0;
	return g->ops->each(g->ctx, now_us, snap_one, &sa);
}

int
pc_gcra_restore(struct pc_gcra *g, const char *key, int64_t tat_us,
    int64_t now_us)
{
	const char *sep;
	const struct lim *l = NULL;
	const char *keys[1] = { key };
	struct pc_lval old, val;
	bool found;
	int rc;

	if (key == NULL || strlen(key) >= PC_LIMIT_KEY_MAX ||
	    (sep = strchr(key, KEY_SEP)) == NULL)
		return PC_E_INVAL;
	for (size_t i = 0; i < g->n; i++) {
		const char *id = g->lim[i].cfg.id;
		if (strlen(id) == (size_t)(sep - key) &&
		    memcmp(id, key, (size_t)(sep - key)) == 0) {
			l = &g->lim[i];
			break;
		}
	}
	if (l == NULL)
		return PC_E_NOTFOUND;
	if (tat_us <= now_us)
		return 0;
	tat_us = tat_cap(l, tat_us, now_us);
	rc = g->ops->get(g->ctx, 1, keys, &old, &found);
	if (rc != 0)
		return rc;
	val = old;
	val.v[0] = tat_us;
	val.expire_us = tat_us;
	return g->ops->cas(g->ctx, 1, keys, &old, &found, &val, now_us);
}

uint64_t
pc_limit_ceil_s(int64_t us)
{
	if (us <= 0)
		return 0;
	return ((uint64_t)us + (uint64_t)PC_LIMIT_SECOND_US - 1) /
	    (uint64_t)PC_LIMIT_SECOND_US;
}

void
pc_gcra_hdr_values(const struct pc_gcra_result *r, struct pc_gcra_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->limit = r->limit;
	h->remaining = r->remaining;
	h->reset_s = pc_limit_ceil_s(r->reset_us);
	if (!r->allowed && r->retry_after_us != INT64_MAX) {
		h->has_retry_after = true;
		h->retry_after_s = pc_limit_ceil_s(r->retry_after_us);
		/* A refusal always asks for at least a second: 0 would
		 * invite an immediate retry loop. */
		if (h->retry_after_s == 0)
			h->retry_after_s = 1;
	}
}

int
pc_gcra_headers(const struct pc_gcra_result *r, char *buf, size_t len)
{
	struct pc_gcra_hdr h;
	int w;

	pc_gcra_hdr_values(r, &h);
	w = snprintf(buf, len, "RateLimit-Limit: %" PRIu64 "\r\n"
	    "RateLimit-Remaining: %" PRIu64 "\r\nRateLimit-Reset: %" PRIu64
	    "\r\n", h.limit, h.remaining, h.reset_s);
	if (w < 0 || (size_t)w >= len)
		return PC_E_LIMIT;
	if (h.has_retry_after) {
		int w2 = snprintf(buf + w, len - (size_t)w,
		    "Retry-After: %" PRIu64 "\r\n", h.retry_after_s);
		if (w2 < 0 || (size_t)w2 >= len - (size_t)w)
			return PC_E_LIMIT;
		w += w2;
	}
	return w;
}
