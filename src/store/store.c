/*
 * The embedded store: one SQLite file in WAL mode.
 *
 * Why these choices:
 * - The file is created 0600 by open(2) before SQLite sees it, so the umask
 *   never decides who can read key hashes; an existing file readable by
 *   group or others is refused rather than silently "fixed" (the operator
 *   should learn that it was exposed). SQLite gives its -wal and -shm files
 *   the main file's mode.
 * - WAL lets `portcullis keys ...` write while the gateway reads, and
 *   `PRAGMA data_version` tells the gateway, without touching the disk, that
 *   another connection committed: that is how a revocation takes effect on
 *   the next request without a restart.
 * - Every statement is a compile-time constant, prepared once at open and
 *   bound with parameters: no SQL is ever built from data.
 * - Last-use updates are buffered: authenticating must not cost a write per
 *   request.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/map.h"
#include "../lib/util.h"

/* How long a statement waits for another connection's write lock before
 * giving up: long enough for a CLI command to commit, short enough that the
 * event loop never stalls for long. */
#define STORE_BUSY_TIMEOUT_MS 2000
/* Keys with buffered last-use updates; past this everything is written out
 * and the buffer starts over, so a flood of distinct keys cannot grow it.
 * (local limit; candidate for src/lib/limits.h) */
#define STORE_MAX_TOUCH_BUF 65536u
/* Keys returned by one list; an inventory past this is not a key store
 * the CLI can usefully print. (local limit; candidate for limits.h) */
#define STORE_MAX_LIST 100000u

/*
 * Forward migrations. Entry i takes the schema from version i to i+1; an
 * entry is never edited once released, only new ones appended.
 */
static const char *const migrations[] = {
	/* v1: API keys. Hashes are HMAC-SHA256 (32 bytes); prev_hash is the
	 * secret replaced by the last rotation (kept so that its use after
	 * the grace window is reported as rotated out, not as a mismatch). */
	"CREATE TABLE keys ("
	" id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 16),"
	" principal TEXT NOT NULL CHECK (length(principal) BETWEEN 1 AND 127),"
	" tenant TEXT NOT NULL DEFAULT '' CHECK (length(tenant) <= 127),"
	" description TEXT NOT NULL DEFAULT ''"
	"  CHECK (length(description) <= 255),"
	" roles TEXT NOT NULL DEFAULT '' CHECK (length(roles) <= 511),"
	" hash BLOB NOT NULL CHECK (length(hash) = 32),"
	" prev_hash BLOB CHECK (prev_hash IS NULL OR length(prev_hash) = 32),"
	" prev_until INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" expires INTEGER NOT NULL DEFAULT 0,"
	" rotation_due INTEGER NOT NULL DEFAULT 0,"
	" revoked_at INTEGER NOT NULL DEFAULT 0,"
	" last_used INTEGER NOT NULL DEFAULT 0,"
	" last_source TEXT NOT NULL DEFAULT '' CHECK (length(last_source) <= 63)"
	") STRICT;"
	"CREATE INDEX keys_created ON keys (created, id);",
	/* v2: time-boxed role grants (`keys grant KEY ROLE --for 2h`). A row
	 * past `until` grants nothing; it is pruned on the next grant. */
	"CREATE TABLE grants ("
	" key_id TEXT NOT NULL REFERENCES keys (id),"
	" role TEXT NOT NULL CHECK (length(role) BETWEEN 1 AND 64),"
	" until INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY (key_id, role)"
	") STRICT;",
	/* v3: key lifecycle events written by the `keys` CLI (another
	 * process), read by a running gateway into its audit log; `cursors`
	 * remembers, per consumer, the last event it took, so that events of
	 * a time the gateway was down are recorded when it starts. */
	"CREATE TABLE events ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ts INTEGER NOT NULL,"
	" event TEXT NOT NULL CHECK (length(event) BETWEEN 1 AND 47),"
	" key_id TEXT NOT NULL DEFAULT '' CHECK (length(key_id) <= 16),"
	" principal TEXT NOT NULL DEFAULT '' CHECK (length(principal) <= 127),"
	" tenant TEXT NOT NULL DEFAULT '' CHECK (length(tenant) <= 127),"
	" detail TEXT NOT NULL DEFAULT '' CHECK (length(detail) <= 127)"
	") STRICT;"
	"CREATE TABLE cursors ("
	" consumer TEXT PRIMARY KEY NOT NULL,"
	" seq INTEGER NOT NULL"
	") STRICT;",
	/* v4: a generation that moves with every change a cache of keys,
	 * grants or events depends on, whoever makes it (the keys CLI, an
	 * operator's own SQL), and with nothing else: PRAGMA data_version
	 * also moves for the limit counters saved into this file every few
	 * seconds, and for another gateway's last-use writes, which dropped
	 * every key cache each time. */
	"CREATE TABLE store_gen ("
	" id INTEGER PRIMARY KEY CHECK (id = 0),"
	" gen INTEGER NOT NULL"
	") STRICT;"
	"INSERT INTO store_gen (id, gen) VALUES (0, 0);"
	"CREATE TRIGGER keys_gen_ins AFTER INSERT ON keys"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;"
	"CREATE TRIGGER keys_gen_del AFTER DELETE ON keys"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;"
	"CREATE TRIGGER keys_gen_upd AFTER UPDATE OF id, principal, tenant,"
	" description, roles, hash, prev_hash, prev_until, created, expires,"
	" rotation_due, revoked_at ON keys"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;"
	"CREATE TRIGGER grants_gen_ins AFTER INSERT ON grants"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;"
	"CREATE TRIGGER grants_gen_del AFTER DELETE ON grants"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;"
	"CREATE TRIGGER grants_gen_upd AFTER UPDATE ON grants"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;"
	"CREATE TRIGGER events_gen_ins AFTER INSERT ON events"
	" BEGIN UPDATE store_gen SET gen = gen + 1; END;",
};
#define SCHEMA_VERSION (sizeof(migrations) / sizeof(migrations[0]))

enum stmt_id {
	ST_KEY_INSERT,
	ST_KEY_GET,
	ST_KEY_LIST,
	ST_KEY_ROTATE,
	ST_KEY_REVOKE,
	ST_KEY_EXISTS,
	ST_KEY_TOUCH,
	ST_GEN,
	ST_DATA_VERSION,
	ST_GRANT_LIST,
	ST_GRANT_PRUNE,
	ST_GRANT_COUNT,
	ST_GRANT_PUT,
	ST_GRANT_DEL,
	ST_EVENT_ADD,
	ST_EVENT_LIST,
	ST_CURSOR_GET,
	ST_CURSOR_PUT,
	ST__COUNT
};

#define KEY_COLS "id, principal, tenant, description, roles, hash, " \
	"prev_hash, prev_until, created, expires, rotation_due, revoked_at, " \
	"last_used, last_source"

static const char *const stmt_sql[ST__COUNT] = {
	[ST_KEY_INSERT] = "INSERT INTO keys (" KEY_COLS ") VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[ST_KEY_GET] = "SELECT " KEY_COLS " FROM keys WHERE id = ?1",
	[ST_KEY_LIST] = "SELECT " KEY_COLS " FROM keys ORDER BY created, id",
	/* The replaced hash is always kept as prev_hash, even with no grace
	 * (prev_until <= now), so that a late use of it can be named. */
	[ST_KEY_ROTATE] = "UPDATE keys SET prev_hash = hash, prev_until = ?2, "
	    "hash = ?3, rotation_due = ?4 WHERE id = ?1",
	/* The first revocation time is the one that counts. */
	[ST_KEY_REVOKE] = "UPDATE keys SET revoked_at = ?2 "
	    "WHERE id = ?1 AND revoked_at = 0",
	[ST_KEY_EXISTS] = "SELECT 1 FROM keys WHERE id = ?1",
	/* Never move last use backwards (two gateways sharing the file). */
	[ST_KEY_TOUCH] = "UPDATE keys SET last_used = ?2, last_source = ?3 "
	    "WHERE id = ?1 AND last_used <= ?2",
	[ST_DATA_VERSION] = "PRAGMA data_version",
	[ST_GEN] = "SELECT gen FROM store_gen WHERE id = 0",
	[ST_GRANT_LIST] = "SELECT role, until FROM grants WHERE key_id = ?1 "
	    "ORDER BY until DESC, role LIMIT 8",
	[ST_GRANT_PRUNE] = "DELETE FROM grants WHERE until <= ?1",
	[ST_GRANT_COUNT] = "SELECT count(*) FROM grants WHERE key_id = ?1 "
	    "AND role <> ?2",
	[ST_GRANT_PUT] = "INSERT INTO grants (key_id, role, until, created) "
	    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key_id, role) DO UPDATE "
	    "SET until = excluded.until, created = excluded.created",
	[ST_GRANT_DEL] = "DELETE FROM grants WHERE key_id = ?1 AND role = ?2",
	[ST_EVENT_ADD] = "INSERT INTO events (ts, event, key_id, principal, "
	    "tenant, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_EVENT_LIST] = "SELECT seq, ts, event, key_id, principal, tenant, "
	    "detail FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	[ST_CURSOR_GET] = "SELECT seq FROM cursors WHERE consumer = ?1",
	[ST_CURSOR_PUT] = "INSERT INTO cursors (consumer, seq) VALUES (?1, ?2) "
	    "ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
};

/* A key's buffered last use. */
struct touch {
	int64_t when;			/* pending (dirty) or last written */
	int64_t written;		/* when it was last written; 0 = never */
	char source[sizeof(((struct pc_key_rec *)0)->last_source)];
	char id[PC_KEY_ID_LEN + 1];
	int dirty;
};

struct pc_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST__COUNT];
	uint64_t local_writes;		/* our own committed key changes */
	uint64_t data_version;		/* last PRAGMA data_version read */
	uint64_t gen;			/* store_gen at that reading */
	bool gen_known;			/* gen was read */
	struct pc_map *touches;		/* id -> struct touch */
	char *path;
	int ino_fd;			/* inotify on the store's directory, or
					 * -1: then every version check asks
					 * SQLite */
	bool ino_primed;		/* data_version read at least once */
};

/*
 * Another process (`portcullis keys revoke`) changes the database by
 * writing the database or its -wal file. Asking SQLite on every request
 * whether that happened (PRAGMA data_version) costs two lock calls and a
 * read transaction; inotify on the directory tells the same for one
 * non-blocking read(2) that finds nothing. A change notices on the next
 * request either way. (Network file systems deliver no inotify events for
 * remote writers; SQLite itself advises against them.)
 */
static void
watch_start(struct pc_store *st, const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		pc_strlcpy(dir, ".", sizeof(dir));
	else if (slash == path)
		pc_strlcpy(dir, "/", sizeof(dir));
	else if ((size_t)(slash - path) < sizeof(dir))
		pc_strlcpy(dir, path, (size_t)(slash - path) + 1);
	else
		return;
	st->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (st->ino_fd < 0)
		return;
	if (inotify_add_watch(st->ino_fd, dir, IN_MODIFY | IN_CREATE |
	    IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
	    IN_ATTRIB) < 0) {
		close(st->ino_fd);
		st->ino_fd = -1;
	}
}

/* True when something in the directory may have changed since the last
 * call (or when we cannot tell). Drains the queue. */
static bool
watch_dirty(struct pc_store *st)
{
	char buf[4096] __attribute__((aligned(8)));
	bool dirty = false;
	ssize_t n;

	if (st->ino_fd < 0 || !st->ino_primed)
		return true;
	while ((n = read(st->ino_fd, buf, sizeof(buf))) > 0)
		dirty = true;
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return true;
	return dirty;
}

/* --- helpers --------------------------------------------------------------- */

static int
map_rc(struct pc_store *st, int rc, const char *what)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_CONSTRAINT:
		/* The only constraint callers can hit by design is the id. */
		if (sqlite3_extended_errcode(st->db) ==
		    SQLITE_CONSTRAINT_PRIMARYKEY)
			return PC_E_EXISTS;
		pc_error("store: %s: %s", what, sqlite3_errmsg(st->db));
		return PC_E_INVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		pc_warn("store: %s: database busy", what);
		return PC_E_TIMEOUT;
	case SQLITE_NOMEM:
		return PC_E_NOMEM;
	default:
		pc_error("store: %s: %s", what, sqlite3_errmsg(st->db));
		return PC_E_IO;
	}
}

/* Run a constant statement that may return one text row (a PRAGMA);
 * the first column goes to out when given. */
static int
exec_pragma(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out != NULL) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		pc_strlcpy(out, t ? (const char *)t : "", outlen);
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
out:
	sqlite3_finalize(s);
	return rc;
}

static int
bind_text(sqlite3_stmt *s, int i, const char *v, size_t cap)
{
	size_t n = strnlen(v, cap);

	/* A field that fills its whole array has no NUL: refuse rather than
	 * read past it. */
	if (n >= cap)
		return SQLITE_TOOBIG;
	return sqlite3_bind_text(s, i, v, (int)n, SQLITE_TRANSIENT);
}

static void
col_text(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	pc_strlcpy(dst, t ? (const char *)t : "", cap);
}

/* One row of KEY_COLS into rec. PC_E_IO if a hash is not 32 bytes
 * (a file edited by hand, or corrupt). */
static int
row_to_rec(sqlite3_stmt *s, struct pc_key_rec *rec)
{
	const void *h;

	memset(rec, 0, sizeof(*rec));
	col_text(s, 0, rec->id, sizeof(rec->id));
	col_text(s, 1, rec->principal, sizeof(rec->principal));
	col_text(s, 2, rec->tenant, sizeof(rec->tenant));
	col_text(s, 3, rec->description, sizeof(rec->description));
	col_text(s, 4, rec->roles, sizeof(rec->roles));
	h = sqlite3_column_blob(s, 5);
	if (h == NULL || sqlite3_column_bytes(s, 5) != 32)
		return PC_E_IO;
	memcpy(rec->hash, h, 32);
	if (sqlite3_column_type(s, 6) != SQLITE_NULL) {
		h = sqlite3_column_blob(s, 6);
		if (h == NULL || sqlite3_column_bytes(s, 6) != 32)
			return PC_E_IO;
		memcpy(rec->prev_hash, h, 32);
		rec->has_prev = true;
	}
	rec->prev_until = sqlite3_column_int64(s, 7);
	rec->created = sqlite3_column_int64(s, 8);
	rec->expires = sqlite3_column_int64(s, 9);
	rec->rotation_due = sqlite3_column_int64(s, 10);
	rec->revoked_at = sqlite3_column_int64(s, 11);
	rec->last_used = sqlite3_column_int64(s, 12);
	col_text(s, 13, rec->last_source, sizeof(rec->last_source));
	return 0;
}

static sqlite3_stmt *
stmt(struct pc_store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* --- open: file checks, pragmas, migrations ---------------------------------- */

/*
 * Create the file 0600 if missing; refuse a non-regular file or one that
 * group or others may access. Returns the identity of what was checked so
 * that the caller can verify SQLite opened that same file.
 */
static int
check_file(const char *path, struct stat *sb, char *err, size_t errlen)
{
	int fd, rc = 0;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return PC_E_IO;
	}
	if (fstat(fd, sb) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = PC_E_IO;
		goto out;
	}
	if (!S_ISREG(sb->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		rc = PC_E_IO;
		goto out;
	}
	if ((sb->st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: mode %04o gives group or others "
		    "access to the key store; run chmod 600 %s", path,
		    (unsigned)(sb->st_mode & 07777), path);
		rc = PC_E_IO;
		goto out;
	}
out:
	close(fd);
	return rc;
}

static int
schema_version(sqlite3 *db, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db,
	    "SELECT coalesce(max(version), 0) FROM schema_version", -1, &s,
	    NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_ERROR;
	}
out:
	sqlite3_finalize(s);
	return rc;
}

/* Bring the schema to SCHEMA_VERSION in one IMMEDIATE transaction, so two
 * processes opening a new file at once do not both migrate. */
static int
migrate(struct pc_store *st, char *err, size_t errlen)
{
	sqlite3_stmt *ins = NULL;
	int64_t cur = 0;
	int rc, in_tx = 0, ret = PC_E_IO;

	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto out;
	in_tx = 1;
	rc = sqlite3_exec(st->db, "CREATE TABLE IF NOT EXISTS schema_version ("
	    " version INTEGER PRIMARY KEY NOT NULL,"
	    " applied INTEGER NOT NULL) STRICT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = schema_version(st->db, &cur);
	if (rc != SQLITE_OK)
		goto out;
	if (cur > (int64_t)SCHEMA_VERSION) {
		/* Written by a newer release: migrating down is not a thing,
		 * and guessing at unknown columns could lose a revocation. */
		snprintf(err, errlen, "%s: schema version %" PRId64 " is newer "
		    "than this portcullis knows (%zu); upgrade portcullis",
		    st->path, cur, (size_t)SCHEMA_VERSION);
		goto out;
	}
	rc = sqlite3_prepare_v2(st->db, "INSERT INTO schema_version "
	    "(version, applied) VALUES (?1, ?2)", -1, &ins, NULL);
	if (rc != SQLITE_OK)
		goto out;
	for (int64_t v = cur; v < (int64_t)SCHEMA_VERSION; v++) {
		rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto out;
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, v + 1);
		sqlite3_bind_int64(ins, 2, (int64_t)time(NULL));
		rc = sqlite3_step(ins);
		if (rc != SQLITE_DONE)
			goto out;
		rc = SQLITE_OK;
		if (cur > 0)
			pc_info("store: %s migrated to schema %" PRId64,
			    st->path, v + 1);
	}
	rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		in_tx = 0;
		ret = 0;
	}
out:
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "%s: cannot migrate the schema: %s",
		    st->path, sqlite3_errmsg(st->db));
	sqlite3_finalize(ins);
	if (in_tx)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int
configure(struct pc_store *st, char *err, size_t errlen)
{
	char mode[16];
	int rc;

	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	/* A crafted file must not run functions through its schema. */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	rc = exec_pragma(st->db, "PRAGMA journal_mode = WAL", mode,
	    sizeof(mode));
	if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot enable WAL mode: %s",
		    st->path, rc != SQLITE_OK ? sqlite3_errmsg(st->db) : mode);
		return PC_E_IO;
	}
	/* NORMAL is durable across process crashes in WAL mode; only a power
	 * loss may lose the last commits (a revocation to repeat). */
	if (exec_pragma(st->db, "PRAGMA synchronous = NORMAL", NULL, 0) ||
	    exec_pragma(st->db, "PRAGMA foreign_keys = ON", NULL, 0) ||
	    /* Deleted hashes are overwritten, not left in free pages. */
	    exec_pragma(st->db, "PRAGMA secure_delete = ON", NULL, 0)) {
		snprintf(err, errlen, "%s: %s", st->path,
		    sqlite3_errmsg(st->db));
		return PC_E_IO;
	}
	return 0;
}

int
pc_store_open(const char *path, struct pc_store **out, char *err,
    size_t errlen)
{
	struct pc_store *st = NULL;
	struct stat sb, sb2;
	int rc;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "no store path");
		return PC_E_INVAL;
	}
	rc = check_file(path, &sb, err, errlen);
	if (rc != 0)
		return rc;
	st = calloc(1, sizeof(*st));
	if (st != NULL)
		st->ino_fd = -1;
	if (st == NULL)
		return PC_E_NOMEM;
	st->path = pc_strndup(path, strlen(path));
	st->touches = pc_map_new();
	if (st->path == NULL || st->touches == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, st->db ?
		    sqlite3_errmsg(st->db) : "cannot open");
		rc = rc == SQLITE_NOMEM ? PC_E_NOMEM : PC_E_IO;
		goto out;
	}
	/* The file checked above must be the one SQLite opened. */
	if (stat(path, &sb2) != 0 || sb2.st_dev != sb.st_dev ||
	    sb2.st_ino != sb.st_ino) {
		snprintf(err, errlen, "%s: file replaced while opening", path);
		rc = PC_E_IO;
		goto out;
	}
	rc = configure(st, err, errlen);
	if (rc != 0)
		goto out;
	rc = migrate(st, err, errlen);
	if (rc != 0)
		goto out;
	for (int i = 0; i < ST__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) !=
		    SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path,
			    sqlite3_errmsg(st->db));
			rc = PC_E_IO;
			goto out;
		}
	}
	watch_start(st, path);
	*out = st;
	st = NULL;
	rc = 0;
out:
	pc_store_close(st);
	return rc;
}

/* --- last use ------------------------------------------------------------------- */

static int
touch_write(struct pc_store *st, struct touch *t)
{
	sqlite3_stmt *s = stmt(st, ST_KEY_TOUCH);
	int rc;

	sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, t->when);
	sqlite3_bind_text(s, 3, t->source, -1, SQLITE_STATIC);
	rc = map_rc(st, sqlite3_step(s), "touch");
	sqlite3_reset(s);
	if (rc == 0) {
		t->dirty = 0;
		t->written = t->when;
	}
	return rc;
}

int
pc_store_flush(struct pc_store *st)
{
	const char *k;
	void *v;
	size_t pos = 0;
	int rc = 0;

	if (st == NULL)
		return 0;
	while (pc_map_next(st->touches, &pos, &k, &v)) {
		struct touch *t = v;
		int r;

		if (!t->dirty)
			continue;
		r = touch_write(st, t);
		if (r != 0 && rc == 0)
			rc = r;
	}
	return rc;
}

/* Write what is pending and forget every entry. */
static int
touch_reset(struct pc_store *st)
{
	const char *k;
	void *v;
	size_t pos = 0;
	int rc = pc_store_flush(st);

	while (pc_map_next(st->touches, &pos, &k, &v))
		free(pc_map_del(st->touches, k));
	return rc;
}

int
pc_store_key_touch(struct pc_store *st, const char *id, int64_t when,
    const char *source)
{
	struct touch *t;
	int rc;

	if (st == NULL || id == NULL || strlen(id) != PC_KEY_ID_LEN)
		return PC_E_INVAL;
	t = pc_map_get(st->touches, id);
	if (t == NULL) {
		if (pc_map_count(st->touches) >= STORE_MAX_TOUCH_BUF)
			(void)touch_reset(st);
		t = calloc(1, sizeof(*t));
		if (t == NULL)
			return PC_E_NOMEM;
		pc_strlcpy(t->id, id, sizeof(t->id));
		rc = pc_map_put(st->touches, t->id, t);
		if (rc != 0) {
			free(t);
			return rc;
		}
	}
	if (when < t->when)
		return 0;	/* a clock step back: keep the later use */
	t->when = when;
	pc_strlcpy(t->source, source ? source : "", sizeof(t->source));
	t->dirty = 1;
	if (t->written != 0 && when - t->written < PC_KEY_TOUCH_INTERVAL_S)
		return 0;
	return touch_write(st, t);
}

/* --- keys -------------------------------------------------------------------------- */

int
pc_store_key_insert(struct pc_store *st, const struct pc_key_rec *rec)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || rec == NULL ||
	    strnlen(rec->id, sizeof(rec->id)) != PC_KEY_ID_LEN ||
	    rec->principal[0] == '\0')
		return PC_E_INVAL;
	s = stmt(st, ST_KEY_INSERT);
	if (bind_text(s, 1, rec->id, sizeof(rec->id)) ||
	    bind_text(s, 2, rec->principal, sizeof(rec->principal)) ||
	    bind_text(s, 3, rec->tenant, sizeof(rec->tenant)) ||
	    bind_text(s, 4, rec->description, sizeof(rec->description)) ||
	    bind_text(s, 5, rec->roles, sizeof(rec->roles)) ||
	    sqlite3_bind_blob(s, 6, rec->hash, 32, SQLITE_STATIC) ||
	    (rec->has_prev ?
	     sqlite3_bind_blob(s, 7, rec->prev_hash, 32, SQLITE_STATIC) :
	     sqlite3_bind_null(s, 7)) ||
	    sqlite3_bind_int64(s, 8, rec->prev_until) ||
	    sqlite3_bind_int64(s, 9, rec->created) ||
	    sqlite3_bind_int64(s, 10, rec->expires) ||
	    sqlite3_bind_int64(s, 11, rec->rotation_due) ||
	    sqlite3_bind_int64(s, 12, rec->revoked_at) ||
	    sqlite3_bind_int64(s, 13, rec->last_used) ||
	    bind_text(s, 14, rec->last_source, sizeof(rec->last_source))) {
		rc = PC_E_INVAL;
		goto out;
	}
	rc = map_rc(st, sqlite3_step(s), "insert key");
	if (rc == 0)
		st->local_writes++;
out:
	/* Drop the bound copies of the hash held by SQLite. */
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

_Static_assert(PC_KEY_MAX_GRANTS == 8, "ST_GRANT_LIST's LIMIT");

/* The key's grants, expired ones included (callers compare `until` with
 * their clock: a grant ends by itself, without a write). */
static int
grants_load(struct pc_store *st, struct pc_key_rec *rec)
{
	sqlite3_stmt *s = stmt(st, ST_GRANT_LIST);
	int rc;

	rec->ngrants = 0;
	sqlite3_bind_text(s, 1, rec->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    rec->ngrants < PC_KEY_MAX_GRANTS) {
		struct pc_key_grant *g = &rec->grants[rec->ngrants++];
		col_text(s, 0, g->role, sizeof(g->role));
		g->until = sqlite3_column_int64(s, 1);
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	    map_rc(st, rc, "list grants");
	sqlite3_reset(s);
	return rc;
}

int
pc_store_key_get(struct pc_store *st, const char *id, struct pc_key_rec *out)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || id == NULL || out == NULL)
		return PC_E_INVAL;
	s = stmt(st, ST_KEY_GET);
	sqlite3_bind_text(s, 1, id, (int)strnlen(id, PC_KEY_ID_LEN + 1),
	    SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		rc = row_to_rec(s, out);
		if (rc != 0) {
			OPENSSL_cleanse(out, sizeof(*out));
			pc_error("store: key %s: bad hash column", id);
		}
	} else if (rc == SQLITE_DONE) {
		rc = PC_E_NOTFOUND;
	} else {
		rc = map_rc(st, rc, "get key");
	}
	sqlite3_reset(s);
	if (rc == 0 && (rc = grants_load(st, out)) != 0)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

int
pc_store_key_list(struct pc_store *st, struct pc_key_rec **out, size_t *n)
{
	struct pc_key_rec *v = NULL, *nv;
	size_t len = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*n = 0;
	if (st == NULL)
		return PC_E_INVAL;
	s = stmt(st, ST_KEY_LIST);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;

			if (cap >= STORE_MAX_LIST) {
				rc = PC_E_LIMIT;
				goto out;
			}
			if (ncap > STORE_MAX_LIST)
				ncap = STORE_MAX_LIST;
			/* Not realloc: the old block holds hashes and must be
			 * wiped, not left in the heap. */
			nv = calloc(ncap, sizeof(*nv));
			if (nv == NULL) {
				rc = PC_E_NOMEM;
				goto out;
			}
			if (len > 0)
				memcpy(nv, v, len * sizeof(*v));
			if (v != NULL)
				OPENSSL_cleanse(v, cap * sizeof(*v));
			free(v);
			v = nv;
			cap = ncap;
		}
		rc = row_to_rec(s, &v[len]);
		if (rc != 0)
			goto out;
		len++;
	}
	rc = map_rc(st, rc, "list keys");
	if (rc != 0)
		goto out;
	*out = v;
	*n = len;
	v = NULL;
out:
	sqlite3_reset(s);
	if (v != NULL) {
		OPENSSL_cleanse(v, cap * sizeof(*v));
		free(v);
	}
	return rc;
}

int
pc_store_key_rotate(struct pc_store *st, const char *id,
    const unsigned char new_hash[32], int64_t prev_until,
    int64_t rotation_due)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || id == NULL || new_hash == NULL)
		return PC_E_INVAL;
	s = stmt(st, ST_KEY_ROTATE);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, prev_until);
	sqlite3_bind_blob(s, 3, new_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, rotation_due);
	rc = map_rc(st, sqlite3_step(s), "rotate key");
	if (rc == 0 && sqlite3_changes(st->db) == 0)
		rc = PC_E_NOTFOUND;
	if (rc == 0)
		st->local_writes++;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int
key_exists(struct pc_store *st, const char *id)
{
	sqlite3_stmt *s = stmt(st, ST_KEY_EXISTS);
	int rc;

	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? PC_E_NOTFOUND :
	    map_rc(st, rc, "find key");
	sqlite3_reset(s);
	return rc;
}

int
pc_store_key_revoke(struct pc_store *st, const char *id, int64_t when)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || id == NULL || when <= 0)
		return PC_E_INVAL;
	s = stmt(st, ST_KEY_REVOKE);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, when);
	rc = map_rc(st, sqlite3_step(s), "revoke key");
	sqlite3_reset(s);
	if (rc != 0)
		return rc;
	if (sqlite3_changes(st->db) == 0)
		return key_exists(st, id);	/* already revoked: 0 */
	st->local_writes++;
	return 0;
}

/* --- time-boxed grants --------------------------------------------------------- */

static int
step_once(struct pc_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = map_rc(st, sqlite3_step(s), what);

	sqlite3_reset(s);
	return rc;
}

int
pc_store_grant(struct pc_store *st, const char *id, const char *role,
    int64_t until, int64_t now)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || id == NULL || role == NULL || role[0] == '\0' ||
	    strlen(role) >= sizeof(((struct pc_key_grant *)0)->role) ||
	    until <= now)
		return PC_E_INVAL;
	if ((rc = key_exists(st, id)) != 0)
		return rc;
	s = stmt(st, ST_GRANT_PRUNE);
	sqlite3_bind_int64(s, 1, now);
	if ((rc = step_once(st, s, "prune grants")) != 0)
		return rc;
	s = stmt(st, ST_GRANT_COUNT);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, role, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	rc = rc != SQLITE_ROW ? map_rc(st, rc, "count grants") :
	    sqlite3_column_int64(s, 0) >= PC_KEY_MAX_GRANTS ? PC_E_LIMIT : 0;
	sqlite3_reset(s);
	if (rc != 0)
		return rc;
	s = stmt(st, ST_GRANT_PUT);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, role, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, until);
	sqlite3_bind_int64(s, 4, now);
	if ((rc = step_once(st, s, "grant")) == 0)
		st->local_writes++;
	return rc;
}

int
pc_store_ungrant(struct pc_store *st, const char *id, const char *role)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || id == NULL || role == NULL)
		return PC_E_INVAL;
	s = stmt(st, ST_GRANT_DEL);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, role, -1, SQLITE_STATIC);
	if ((rc = step_once(st, s, "ungrant")) != 0)
		return rc;
	if (sqlite3_changes(st->db) == 0)
		return PC_E_NOTFOUND;
	st->local_writes++;
	return 0;
}

/* --- key lifecycle events ---------------------------------------------------------- */

int
pc_store_event_add(struct pc_store *st, const struct pc_store_event *ev)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || ev == NULL || ev->event[0] == '\0')
		return PC_E_INVAL;
	s = stmt(st, ST_EVENT_ADD);
	sqlite3_bind_int64(s, 1, ev->ts);
	sqlite3_bind_text(s, 2, ev->event, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, ev->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, ev->principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, ev->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, ev->detail, -1, SQLITE_STATIC);
	if ((rc = step_once(st, s, "add event")) == 0)
		st->local_writes++;
	return rc;
}

static int
cursor_get(struct pc_store *st, const char *consumer, int64_t *seq)
{
	sqlite3_stmt *s = stmt(st, ST_CURSOR_GET);
	int rc;

	*seq = 0;
	sqlite3_bind_text(s, 1, consumer, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*seq = sqlite3_column_int64(s, 0);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	    map_rc(st, rc, "read cursor");
	sqlite3_reset(s);
	return rc;
}

int
pc_store_events_take(struct pc_store *st, const char *consumer, size_t max,
    int (*cb)(void *arg, const struct pc_store_event *ev), void *arg)
{
	struct pc_store_event ev;
	sqlite3_stmt *s;
	int64_t from, last;
	int rc, n = 0;

	if (st == NULL || consumer == NULL || cb == NULL || max == 0)
		return PC_E_INVAL;
	if ((rc = cursor_get(st, consumer, &from)) != 0)
		return rc;
	last = from;
	s = stmt(st, ST_EVENT_LIST);
	sqlite3_bind_int64(s, 1, from);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&ev, 0, sizeof(ev));
		ev.seq = sqlite3_column_int64(s, 0);
		ev.ts = sqlite3_column_int64(s, 1);
		col_text(s, 2, ev.event, sizeof(ev.event));
		col_text(s, 3, ev.key_id, sizeof(ev.key_id));
		col_text(s, 4, ev.principal, sizeof(ev.principal));
		col_text(s, 5, ev.tenant, sizeof(ev.tenant));
		col_text(s, 6, ev.detail, sizeof(ev.detail));
		/* Stop at the first event the consumer could not take: it is
		 * offered again next time (at least once, never lost). */
		if (cb(arg, &ev) != 0)
			break;
		last = ev.seq;
		n++;
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	    map_rc(st, rc, "list events");
	sqlite3_reset(s);
	if (rc == 0 && last != from) {
		s = stmt(st, ST_CURSOR_PUT);
		sqlite3_bind_text(s, 1, consumer, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, last);
		rc = step_once(st, s, "move cursor");
	}
	return rc != 0 ? rc : n;
}

/* --- version, close ------------------------------------------------------------------- */

uint64_t
pc_store_version(struct pc_store *st)
{
	sqlite3_stmt *s;
	bool moved = true;

	if (st == NULL)
		return 0;
	if (!watch_dirty(st))
		return st->gen + st->local_writes;
	st->ino_primed = true;
	/*
	 * data_version moves for OTHER connections' commits of anything (the
	 * limit counters saved into this file, another gateway's last-use
	 * writes); store_gen only for what a cache depends on (keys, grants,
	 * events: store.c's triggers). It is read only when data_version
	 * moved. Our own key writes are counted in local_writes. Both only
	 * grow, so their sum moves whenever either does. Buffered last-use
	 * writes are not counted: nothing cached depends on them.
	 */
	s = stmt(st, ST_DATA_VERSION);
	if (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t dv = (uint64_t)sqlite3_column_int64(s, 0);

		moved = dv != st->data_version || !st->gen_known;
		st->data_version = dv;
	}
	sqlite3_reset(s);
	if (moved) {
		s = stmt(st, ST_GEN);
		if (sqlite3_step(s) == SQLITE_ROW) {
			uint64_t gen = (uint64_t)sqlite3_column_int64(s, 0);

			/* Lower than before: the file was restored from a
			 * copy. Counted as a change, or changes made since
			 * could bring it back to the value a cache holds. */
			if (st->gen_known && gen < st->gen)
				st->local_writes += st->gen - gen + 1;
			st->gen = gen;
			st->gen_known = true;
		} else {
			/* Cannot tell: report a change so that callers
			 * re-read rather than trust a stale cache. */
			st->local_writes++;
			st->gen_known = false;
		}
		sqlite3_reset(s);
	}
	return st->gen + st->local_writes;
}

void
pc_store_close(struct pc_store *st)
{
	if (st == NULL)
		return;
	if (st->db != NULL && st->stmt[ST_KEY_TOUCH] != NULL &&
	    pc_store_flush(st) != 0)
		pc_warn("store: %s: last-use times not all written",
		    st->path ? st->path : "?");
	if (st->touches != NULL) {
		const char *k;
		void *v;
		size_t pos = 0;

		while (pc_map_next(st->touches, &pos, &k, &v))
			free(pc_map_del(st->touches, k));
		pc_map_free(st->touches);
	}
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL)
		sqlite3_close(st->db);
	if (st->ino_fd >= 0)
		close(st->ino_fd);
	free(st->path);
	free(st);
}
