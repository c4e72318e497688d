/*
 * String-keyed hash map of borrowed pointers (open addressing, linear
 * probing, tombstones). Keys are copied; values are never freed by the map.
 * Used for sessions, in-flight calls and similar per-request lookups, where
 * a lookup must cost O(1) whatever the number of clients.
 */
#ifndef PC_MAP_H
#define PC_MAP_H

#include <stddef.h>

struct pc_map;

/* NULL on OOM. */
struct pc_map *pc_map_new(void);
void pc_map_free(struct pc_map *m);	/* accepts NULL; values untouched */

/* Borrowed value or NULL. */
void *pc_map_get(const struct pc_map *m, const char *key);
/* Insert or replace. 0 or PC_E_NOMEM. */
int pc_map_put(struct pc_map *m, const char *key, void *val);
/* Remove; returns the old value or NULL. */
void *pc_map_del(struct pc_map *m, const char *key);
size_t pc_map_count(const struct pc_map *m);

/*
 * Counters kept as the values themselves (a count, not a pointer): the
 * count of key (0 when absent), and adding d to it, the key dropped at
 * zero. pc_map_add returns the new count, or PC_E_NOMEM (unchanged).
 */
size_t pc_map_counter(const struct pc_map *m, const char *key);
long pc_map_add(struct pc_map *m, const char *key, long d);

/*
 * Iterate: start with *pos = 0; returns 1 and sets *key and *val for each live
 * entry, 0 at the end. Deleting the current entry during iteration is safe;
 * inserting is not.
 */
int pc_map_next(const struct pc_map *m, size_t *pos, const char **key,
    void **val);

#endif
