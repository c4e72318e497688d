/*
 * The limiter's counters in SQLite. See limit_db.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "limits/limit_db.h"
#include "limits/limiter.h"

/* As the key store: long enough for another connection's commit, short
 * enough that the event loop never stalls for long. */
#define LIMIT_DB_BUSY_MS 2000

struct pc_limit_db {
	sqlite3 *db;
	sqlite3_stmt *ins;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS limit_state ("
    " kind TEXT NOT NULL CHECK (kind IN ('r', 'b')),"
    " key TEXT NOT NULL CHECK (length(key) < 256),"
    " v0 INTEGER NOT NULL,"
    " v1 INTEGER NOT NULL,"
    " PRIMARY KEY (kind, key)) STRICT";

/* Create the file 0600 if it is missing; refuse one others can read. */
static int
check_file(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return PC_E_IO;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (sb.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: must be a regular file readable "
		    "only by its owner (chmod 600)", path);
		close(fd);
		return PC_E_IO;
	}
	close(fd);
	return 0;
}

int
pc_limit_db_open(const char *path, struct pc_limit_db **out, char *err,
    size_t errlen)
{
	struct pc_limit_db *d;
	int rc;

	*out = NULL;
	rc = check_file(path, err, errlen);
	if (rc != 0)
		return rc;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return PC_E_NOMEM;
	rc = PC_E_IO;
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(d->db, LIMIT_DB_BUSY_MS);
	/* A crafted file must not run functions through its schema. */
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* The key store puts the file in WAL mode; so do we when we are
	 * first, so that readers of keys never wait for a snapshot. */
	if (sqlite3_exec(d->db, "PRAGMA journal_mode = WAL", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(d->db, "PRAGMA synchronous = NORMAL", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(d->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(d->db, "INSERT INTO limit_state (kind, key, v0, "
	    "v1) VALUES (?1, ?2, ?3, ?4)", -1, SQLITE_PREPARE_PERSISTENT,
	    &d->ins, NULL) != SQLITE_OK)
		goto out;
	*out = d;
	d = NULL;
	rc = 0;
out:
	if (rc != 0)
		snprintf(err, errlen, "%s: %s", path, d->db ?
		    sqlite3_errmsg(d->db) : "cannot open");
	pc_limit_db_close(d);
	return rc;
}

void
pc_limit_db_close(struct pc_limit_db *d)
{
	if (d == NULL)
		return;
	sqlite3_finalize(d->ins);
	sqlite3_close(d->db);
	free(d);
}

int
pc_limit_db_load(struct pc_limit_db *d, struct pc_limiter *l, int64_t now_us,
    size_t *restored, size_t *dropped)
{
	sqlite3_stmt *s = NULL;
	size_t ok = 0, gone = 0;
	int rc;

	if (sqlite3_prepare_v2(d->db, "SELECT kind, key, v0, v1 FROM "
	    "limit_state", -1, &s, NULL) != SQLITE_OK) {
		pc_error("limits: cannot read saved counters: %s",
		    sqlite3_errmsg(d->db));
		return PC_E_IO;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(s, 0);
		const char *key = (const char *)sqlite3_column_text(s, 1);
		if (kind == NULL || key == NULL ||
		    pc_limiter_restore(l, kind[0], key,
		    sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
		    now_us) != 0)
			gone++;
		else
			ok++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		pc_error("limits: cannot read saved counters: %s",
		    sqlite3_errmsg(d->db));
		return PC_E_IO;
	}
	if (restored != NULL)
		*restored = ok;
	if (dropped != NULL)
		*dropped = gone;
	return 0;
}

static int
save_one(void *arg, char kind, const char *key, int64_t v0, int64_t v1)
{
	struct pc_limit_db *d = arg;
	char k[2] = { kind, '\0' };
	int rc;

	sqlite3_bind_text(d->ins, 1, k, 1, SQLITE_STATIC);
	sqlite3_bind_text(d->ins, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(d->ins, 3, v0);
	sqlite3_bind_int64(d->ins, 4, v1);
	rc = sqlite3_step(d->ins);
	sqlite3_reset(d->ins);
	sqlite3_clear_bindings(d->ins);
	return rc == SQLITE_DONE ? 0 : PC_E_IO;
}

int
pc_limit_db_save(struct pc_limit_db *d, struct pc_limiter *l, int64_t now_us)
{
	int rc = PC_E_IO;

	if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto out;
	if (sqlite3_exec(d->db, "DELETE FROM limit_state", NULL, NULL, NULL) !=
	    SQLITE_OK || pc_limiter_snapshot(l, now_us, save_one, d) != 0) {
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	if (sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		pc_error("limits: cannot save counters: %s",
		    sqlite3_errmsg(d->db));
	return rc;
}
