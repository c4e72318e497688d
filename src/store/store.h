/*
 * State store: the gateway's own records, in SQLite (WAL) by default.
 * Today: API keys. Later issues add tool pins, counters and grants; the
 * schema is versioned and migrated forward on open.
 *
 * The store is used from the event loop: every call is a short, indexed
 * statement. A store file readable by group or others is refused (it holds
 * key hashes), and a new file is created 0600.
 */
#ifndef PC_STORE_H
#define PC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pc_store;

enum pc_key_status {
	PC_KEY_ACTIVE = 0,	/* usable */
	PC_KEY_GRACE,		/* rotated: the previous secret still works
				 * until prev_until */
	PC_KEY_REVOKED,
};

#define PC_KEY_ID_LEN 16	/* hex chars of the public id */

/* Time-boxed role grants a key may hold at once. */
#define PC_KEY_MAX_GRANTS 8

/* A role held until `until` (unix s), then no more: `keys grant`. */
struct pc_key_grant {
	char role[65];
	int64_t until;
};

struct pc_key_rec {
	char id[PC_KEY_ID_LEN + 1];	/* public id, hex */
	char principal[128];
	char tenant[128];		/* "" = none */
	char description[256];		/* where the key is deployed */
	char roles[512];		/* comma-separated */
	unsigned char hash[32];		/* HMAC-SHA256(pepper, secret) */
	unsigned char prev_hash[32];	/* the rotated-out secret's hash */
	bool has_prev;
	int64_t prev_until;		/* unix s: end of the grace window */
	int64_t created;		/* unix s */
	int64_t expires;		/* unix s; 0 = never */
	int64_t rotation_due;		/* unix s, from the rotation policy */
	int64_t revoked_at;		/* unix s; 0 = not revoked */
	int64_t last_used;		/* unix s; 0 = never */
	char last_source[64];		/* address of the last use */
	/* Grants, filled by pc_store_key_get only (not by the list), newest
	 * end first; expired ones included: compare until with the clock. */
	struct pc_key_grant grants[PC_KEY_MAX_GRANTS];
	size_t ngrants;
};

/*
 * Open (creating and migrating) the store at path. 0, PC_E_IO (cannot open,
 * or the file is readable by group/others: message in err), PC_E_NOMEM.
 */
int pc_store_open(const char *path, struct pc_store **out, char *err,
    size_t errlen);
void pc_store_close(struct pc_store *st);	/* accepts NULL */

/* Insert a new key. PC_E_EXISTS if the id is taken. */
int pc_store_key_insert(struct pc_store *st, const struct pc_key_rec *rec);
/* Fetch by id into *out. PC_E_NOTFOUND. */
int pc_store_key_get(struct pc_store *st, const char *id,
    struct pc_key_rec *out);
/* All keys, ordered by creation. *out is malloc'ed (caller frees, after
 * wiping: it holds hashes). */
int pc_store_key_list(struct pc_store *st, struct pc_key_rec **out,
    size_t *n);
/* Replace the secret hash; the old one stays valid until prev_until
 * (0 = no grace). Resets rotation_due. PC_E_NOTFOUND. */
int pc_store_key_rotate(struct pc_store *st, const char *id,
    const unsigned char new_hash[32], int64_t prev_until,
    int64_t rotation_due);
/* Mark revoked at `when`. PC_E_NOTFOUND. */
int pc_store_key_revoke(struct pc_store *st, const char *id, int64_t when);
/*
 * Grant `role` to key `id` until `until` (unix s, > now); a grant of the
 * same role is replaced (extended or shortened). Expired grants of every
 * key are removed first. 0; PC_E_NOTFOUND (no such key); PC_E_LIMIT (the
 * key already holds PC_KEY_MAX_GRANTS other live grants); PC_E_INVAL.
 */
int pc_store_grant(struct pc_store *st, const char *id, const char *role,
    int64_t until, int64_t now);
/* End a grant now. 0 or PC_E_NOTFOUND. */
int pc_store_ungrant(struct pc_store *st, const char *id, const char *role);
/*
 * Key lifecycle events, written by the `keys` CLI, read by the gateway into
 * its audit log (the CLI has no access to the log's chain). `seq` is set by
 * the store.
 */
struct pc_store_event {
	int64_t seq;
	int64_t ts;			/* unix s */
	char event[48];			/* "key.created", ... */
	char key_id[PC_KEY_ID_LEN + 1];
	char principal[128];
	char tenant[128];
	char detail[128];		/* e.g. "role=writer until=..." */
};
int pc_store_event_add(struct pc_store *st, const struct pc_store_event *ev);
/*
 * Offer `consumer` the events after its cursor, oldest first, at most max;
 * cb returns 0 when it took the event, non-zero to stop (the event is
 * offered again next time). The cursor moves past what was taken. Returns
 * the number taken, or a negative PC_E_*.
 */
int pc_store_events_take(struct pc_store *st, const char *consumer, size_t max,
    int (*cb)(void *arg, const struct pc_store_event *ev), void *arg);
/* Record a use. Cheap to call per request: uses are buffered and written
 * at most once a second per key (pc_store_flush writes them now). */
int pc_store_key_touch(struct pc_store *st, const char *id, int64_t when,
    const char *source);
int pc_store_flush(struct pc_store *st);

/*
 * A counter that changes whenever any connection (another process such as
 * `portcullis keys revoke`, or this one) changed the database: callers keep
 * caches and drop them when it moves. Cheap (no disk access).
 */
uint64_t pc_store_version(struct pc_store *st);

#endif
