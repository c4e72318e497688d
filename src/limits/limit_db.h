/*
 * Counters that survive a restart: the limiter's rate (GCRA) and budget
 * state written to SQLite, in the same file as the API keys by default
 * (config `limits_store`). A snapshot replaces the whole table in one
 * transaction; the gateway takes one every few seconds when something was
 * charged, and one at shutdown, and loads it at start.
 *
 * The table `limit_state` lives beside the store's own tables and is not
 * part of its versioned schema: it is a cache of counters that may be lost
 * (a lost snapshot only forgets up to a few seconds of spending), and it
 * is created here on open. Breakers and concurrency slots are not saved.
 *
 * A shared store (Redis, a later issue) replaces this module: it keeps the
 * counters itself behind pc_limit_store_ops (gcra.h), whose `each` is NULL.
 */
#ifndef PC_LIMITS_LIMIT_DB_H
#define PC_LIMITS_LIMIT_DB_H

#include <stddef.h>
#include <stdint.h>

struct pc_limiter;
struct pc_limit_db;

/*
 * Open (creating 0600 if missing) the SQLite file at path and its table.
 * A file readable or writable by group or others is refused, as the key
 * store does. 0; PC_E_IO (message in err); PC_E_NOMEM.
 */
int pc_limit_db_open(const char *path, struct pc_limit_db **out, char *err,
    size_t errlen);
void pc_limit_db_close(struct pc_limit_db *db);	/* accepts NULL */

/*
 * Restore every saved counter into l. *restored and *dropped (either may
 * be NULL) count what was put back and what named a limit that is no
 * longer configured or had expired. 0 or PC_E_IO.
 */
int pc_limit_db_load(struct pc_limit_db *db, struct pc_limiter *l,
    int64_t now_us, size_t *restored, size_t *dropped);

/* Replace the saved counters with l's state at now_us. 0 or PC_E_IO (the
 * previous snapshot stays). */
int pc_limit_db_save(struct pc_limit_db *db, struct pc_limiter *l,
    int64_t now_us);

#endif
