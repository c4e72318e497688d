#include "map.h"
#include "errors.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tombstone;		/* address marks a deleted slot */

struct slot {
	char *key;		/* NULL = empty, &tombstone = deleted */
	void *val;
	uint64_t hash;
};

struct pc_map {
	struct slot *s;
	size_t cap;		/* power of two */
	size_t live;
	size_t used;		/* live + tombstones */
};

/*
 * SipHash under a key drawn once per process. Keys of some maps are the
 * attacker's to choose in bulk (client addresses of the failed-auth
 * table, principal names, sources): with an unkeyed hash (FNV-1a before)
 * an attacker with many addresses could pile them into one probe run and
 * make every lookup scan the table. Without randomness the key stays
 * fixed: still a working map, only a predictable one.
 */
static uint64_t hkey[2] = { 0x736f6d6570736575ull, 0x646f72616e646f6dull };

static uint64_t
hash_str(const char *k)
{
	static bool keyed;

	if (!keyed) {
		uint64_t r[2];

		if (pc_random_bytes(r, sizeof(r)) == 0)
			memcpy(hkey, r, sizeof(hkey));
		keyed = true;
	}
	return pc_siphash(hkey[0], hkey[1], k, strlen(k));
}

struct pc_map *
pc_map_new(void)
{
	struct pc_map *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->cap = 16;
	m->s = calloc(m->cap, sizeof(*m->s));
	if (m->s == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
pc_map_free(struct pc_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++)
		if (m->s[i].key != NULL && m->s[i].key != &tombstone)
			free(m->s[i].key);
	free(m->s);
	free(m);
}

static struct slot *
find(const struct pc_map *m, const char *key, uint64_t h)
{
	size_t mask = m->cap - 1;

	for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
		struct slot *s = &m->s[i];
		if (s->key == NULL)
			return NULL;
		if (s->key != &tombstone && s->hash == h && strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

static int
grow(struct pc_map *m)
{
	size_t ncap = m->live * 4 > m->cap ? m->cap * 2 : m->cap;
	struct slot *ns = calloc(ncap, sizeof(*ns));

	if (ns == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->s[i];
		if (s->key == NULL || s->key == &tombstone)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key != NULL)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->s);
	m->s = ns;
	m->cap = ncap;
	m->used = m->live;
	return 0;
}

void *
pc_map_get(const struct pc_map *m, const char *key)
{
	struct slot *s = find(m, key, hash_str(key));

	return s ? s->val : NULL;
}

int
pc_map_put(struct pc_map *m, const char *key, void *val)
{
	uint64_t h = hash_str(key);
	struct slot *s = find(m, key, h);
	size_t mask;

	if (s != NULL) {
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 4 > m->cap * 3 && grow(m) != 0)
		return PC_E_NOMEM;
	char *k = strdup(key);
	if (k == NULL)
		return PC_E_NOMEM;
	mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		s = &m->s[i];
		if (s->key == NULL || s->key == &tombstone) {
			if (s->key == NULL)
				m->used++;
			s->key = k;
			s->val = val;
			s->hash = h;
			m->live++;
			return 0;
		}
	}
}

void *
pc_map_del(struct pc_map *m, const char *key)
{
	struct slot *s = find(m, key, hash_str(key));
	void *v;

	if (s == NULL)
		return NULL;
	v = s->val;
	free(s->key);
	s->key = &tombstone;
	s->val = NULL;
	m->live--;
	return v;
}

size_t
pc_map_count(const struct pc_map *m)
{
	return m->live;
}

size_t
pc_map_counter(const struct pc_map *m, const char *key)
{
	return (size_t)(uintptr_t)pc_map_get(m, key);
}

long
pc_map_add(struct pc_map *m, const char *key, long d)
{
	long n = (long)pc_map_counter(m, key) + d;

	if (n <= 0) {
		pc_map_del(m, key);
		return 0;
	}
	if (pc_map_put(m, key, (void *)(uintptr_t)n) != 0)
		return PC_E_NOMEM;
	return n;
}

int
pc_map_next(const struct pc_map *m, size_t *pos, const char **key, void **val)
{
	for (; *pos < m->cap; (*pos)++) {
		struct slot *s = &m->s[*pos];
		if (s->key != NULL && s->key != &tombstone) {
			*key = s->key;
			*val = s->val;
			(*pos)++;
			return 1;
		}
	}
	return 0;
}
