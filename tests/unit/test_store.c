/*
 * Store: file creation and mode checks, schema migration and persistence,
 * key records, buffered last use, and the change counter that another
 * connection's commits move. Every test works in its own mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "store/store.h"

/* --- helpers ------------------------------------------------------------------ */

struct tdir {
	char dir[64];
	char db[PATH_MAX];
};

static int
setup(void **state)
{
	struct tdir *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/pc_store_XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->db, sizeof(t->db), "%s/keys.db", t->dir);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tdir *t = *state;
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char p[PATH_MAX + 16];

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", t->db, sfx[i]);
		unlink(p);
	}
	rmdir(t->dir);
	free(t);
	return 0;
}

static struct pc_store *
open_ok(const char *path)
{
	struct pc_store *st = NULL;
	char err[512];
	int rc = pc_store_open(path, &st, err, sizeof(err));

	if (rc != 0)
		fail_msg("open %s: %s", path, err);
	assert_non_null(st);
	return st;
}

static void
make_rec(struct pc_key_rec *r, const char *id, const char *principal,
    int64_t created, unsigned char fill)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->principal, sizeof(r->principal), "%s", principal);
	snprintf(r->tenant, sizeof(r->tenant), "acme");
	snprintf(r->description, sizeof(r->description), "ci runner");
	snprintf(r->roles, sizeof(r->roles), "reader,writer");
	memset(r->hash, fill, sizeof(r->hash));
	r->created = created;
	r->rotation_due = created + 90 * 86400;
}

/* One integer from a constant query on a private connection. */
static int64_t
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* --- tests ------------------------------------------------------------------ */

static void
test_create_mode_0600(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st;
	struct stat sb;
	mode_t old = umask(0);	/* the most permissive umask */

	st = open_ok(t->db);
	umask(old);
	assert_int_equal(stat(t->db, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	pc_store_close(st);
	/* WAL mode is persistent in the file. */
	assert_int_equal(raw_int(t->db, "SELECT journal_mode = 'wal' "
	    "FROM pragma_journal_mode"), 1);
}

static void
test_refuse_readable(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = NULL;
	char err[512];
	int fd = open(t->db, O_CREAT | O_WRONLY, 0600);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(t->db, 0644), 0);
	assert_int_equal(pc_store_open(t->db, &st, err, sizeof(err)),
	    PC_E_IO);
	assert_null(st);
	assert_non_null(strstr(err, "chmod 600"));
	/* Group-writable is refused too. */
	assert_int_equal(chmod(t->db, 0620), 0);
	assert_int_equal(pc_store_open(t->db, &st, err, sizeof(err)),
	    PC_E_IO);
	assert_int_equal(chmod(t->db, 0600), 0);
	st = open_ok(t->db);
	pc_store_close(st);
}

static void
test_refuse_not_a_file(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = NULL;
	char err[512];

	assert_int_equal(pc_store_open(t->dir, &st, err, sizeof(err)),
	    PC_E_IO);
	assert_null(st);
}

static void
test_migrate_and_reopen(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st;
	struct pc_key_rec r, g;
	char err[512];

	st = open_ok(t->db);
	make_rec(&r, "0123456789abcdef", "alice", 1000, 0xaa);
	r.expires = 5000;
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	pc_store_close(st);
	/* v1 keys, v2 grants, v3 events, v4 the cache generation. */
	assert_int_equal(raw_int(t->db,
	    "SELECT max(version) FROM schema_version"), 4);
	assert_int_equal(raw_int(t->db,
	    "SELECT count(*) FROM schema_version"), 4);

	/* Reopening does not migrate again and the data is there. */
	st = open_ok(t->db);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_string_equal(g.principal, "alice");
	assert_string_equal(g.tenant, "acme");
	assert_string_equal(g.description, "ci runner");
	assert_string_equal(g.roles, "reader,writer");
	assert_memory_equal(g.hash, r.hash, 32);
	assert_false(g.has_prev);
	assert_int_equal(g.created, 1000);
	assert_int_equal(g.expires, 5000);
	assert_int_equal(g.rotation_due, 1000 + 90 * 86400);
	assert_int_equal(g.revoked_at, 0);
	assert_int_equal(g.last_used, 0);
	pc_store_close(st);
	assert_int_equal(raw_int(t->db,
	    "SELECT count(*) FROM schema_version"), 4);

	/* A file from a newer release is refused, not downgraded. */
	raw_exec(t->db, "INSERT INTO schema_version VALUES (99, 0)");
	st = NULL;
	assert_int_equal(pc_store_open(t->db, &st, err, sizeof(err)),
	    PC_E_IO);
	assert_null(st);
	assert_non_null(strstr(err, "newer"));
}

static void
test_insert_get_list(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db);
	struct pc_key_rec r, g, *v = NULL;
	size_t n = 0;

	make_rec(&r, "bbbbbbbbbbbbbbbb", "bob", 300, 1);
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	make_rec(&r, "aaaaaaaaaaaaaaaa", "alice", 200, 2);
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	make_rec(&r, "cccccccccccccccc", "carol", 100, 3);
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	/* Same id again. */
	make_rec(&r, "cccccccccccccccc", "mallory", 400, 4);
	assert_int_equal(pc_store_key_insert(st, &r), PC_E_EXISTS);
	assert_int_equal(pc_store_key_get(st, "cccccccccccccccc", &g), 0);
	assert_string_equal(g.principal, "carol");
	/* Bad ids and empty principals never reach the table. */
	make_rec(&r, "short", "x", 1, 5);
	assert_int_equal(pc_store_key_insert(st, &r), PC_E_INVAL);
	make_rec(&r, "dddddddddddddddd", "", 1, 5);
	assert_int_equal(pc_store_key_insert(st, &r), PC_E_INVAL);

	assert_int_equal(pc_store_key_get(st, "ffffffffffffffff", &g),
	    PC_E_NOTFOUND);
	/* An id that is a SQL fragment is just a value. */
	assert_int_equal(pc_store_key_get(st, "' OR 1=1 --", &g),
	    PC_E_NOTFOUND);

	assert_int_equal(pc_store_key_list(st, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].principal, "carol");	/* by creation */
	assert_string_equal(v[1].principal, "alice");
	assert_string_equal(v[2].principal, "bob");
	assert_int_equal(v[1].hash[0], 2);
	free(v);
	pc_store_close(st);
}

static void
test_list_many(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db);
	struct pc_key_rec r, *v = NULL;
	size_t n = 0;
	char id[32];

	/* More than the first allocation, so the array grows. */
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "%016x", i);
		make_rec(&r, id, "p", 1000 - i, (unsigned char)i);
		assert_int_equal(pc_store_key_insert(st, &r), 0);
	}
	assert_int_equal(pc_store_key_list(st, &v, &n), 0);
	assert_int_equal(n, 40);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].hash[0], 39 - i);
	free(v);
	pc_store_close(st);
}

static void
test_rotate_revoke(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db);
	struct pc_key_rec r, g;
	unsigned char nh[32];

	make_rec(&r, "0123456789abcdef", "alice", 1000, 0x11);
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	memset(nh, 0x22, sizeof(nh));
	assert_int_equal(pc_store_key_rotate(st, r.id, nh, 2000, 9000), 0);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_memory_equal(g.hash, nh, 32);
	assert_true(g.has_prev);
	assert_int_equal(g.prev_hash[0], 0x11);
	assert_int_equal(g.prev_until, 2000);
	assert_int_equal(g.rotation_due, 9000);
	assert_int_equal(pc_store_key_rotate(st, "ffffffffffffffff", nh, 0, 0),
	    PC_E_NOTFOUND);

	assert_int_equal(pc_store_key_revoke(st, r.id, 3000), 0);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_int_equal(g.revoked_at, 3000);
	/* Revoking again is fine and keeps the first time. */
	assert_int_equal(pc_store_key_revoke(st, r.id, 4000), 0);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_int_equal(g.revoked_at, 3000);
	assert_int_equal(pc_store_key_revoke(st, "ffffffffffffffff", 4000),
	    PC_E_NOTFOUND);
	pc_store_close(st);
}

static void
test_version_moves(void **state)
{
	struct tdir *t = *state;
	struct pc_store *a = open_ok(t->db), *b = open_ok(t->db);
	struct pc_key_rec r, g;
	uint64_t v0, v1, v2, v3;

	make_rec(&r, "0123456789abcdef", "alice", 1000, 0x11);
	v0 = pc_store_version(a);
	assert_int_equal(pc_store_key_insert(a, &r), 0);
	v1 = pc_store_version(a);
	assert_true(v1 != v0);		/* our own write */
	assert_true(pc_store_version(a) == v1);	/* stable when idle */

	/* Another connection (think: `portcullis keys revoke`) commits. */
	assert_int_equal(pc_store_key_revoke(b, r.id, 2000), 0);
	v2 = pc_store_version(a);
	assert_true(v2 != v1);
	assert_int_equal(pc_store_key_get(a, r.id, &g), 0);
	assert_int_equal(g.revoked_at, 2000);
	assert_true(pc_store_version(a) == v2);

	/* A connection that did not write also sees the others'. */
	v3 = pc_store_version(b);
	assert_int_equal(pc_store_key_rotate(a, r.id, r.hash, 0, 0), 0);
	assert_true(pc_store_version(b) != v3);
	pc_store_close(b);
	pc_store_close(a);
}

/*
 * What another connection writes that no cache depends on — the limit
 * counters saved into this file every few seconds, another gateway's
 * last-use writes — leaves the version alone (it used to drop every key
 * cache each time); a change to keys, grants or events moves it, by the
 * CLI or by an operator's own SQL.
 */
static void
test_version_ignores_unrelated(void **state)
{
	struct tdir *t = *state;
	struct pc_store *a = open_ok(t->db), *b = open_ok(t->db);
	struct pc_key_rec r;
	uint64_t v;

	make_rec(&r, "0123456789abcdef", "alice", 1000, 0x11);
	assert_int_equal(pc_store_key_insert(b, &r), 0);
	v = pc_store_version(a);
	raw_exec(t->db, "CREATE TABLE IF NOT EXISTS limit_state (k TEXT)");
	raw_exec(t->db, "INSERT INTO limit_state VALUES ('x')");
	assert_true(pc_store_version(a) == v);
	assert_int_equal(pc_store_key_touch(b, r.id, 5000, "10.0.0.1"), 0);
	assert_true(pc_store_version(a) == v);
	raw_exec(t->db, "UPDATE keys SET last_used = 6000");
	assert_true(pc_store_version(a) == v);
	raw_exec(t->db, "UPDATE keys SET revoked_at = 7000");
	assert_true(pc_store_version(a) != v);
	v = pc_store_version(a);
	assert_int_equal(pc_store_grant(b, r.id, "writer", 9000, 1000), 0);
	assert_true(pc_store_version(a) != v);
	/* A key event written by another process (the keys CLI): the
	 * gateway's copier must see it. */
	v = pc_store_version(a);
	raw_exec(t->db, "INSERT INTO events (ts, event) VALUES (1, 'x')");
	assert_true(pc_store_version(a) != v);
	/* Restored from an older copy: a change, however the numbers go. */
	v = pc_store_version(a);
	raw_exec(t->db, "UPDATE store_gen SET gen = 0");
	assert_true(pc_store_version(a) != v);
	pc_store_close(b);
	pc_store_close(a);
}

/* A store of schema v3 holding keys gains v4 on open, keys intact, and its
 * generation moves from then on. */
static void
test_migrate_v3_with_keys(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db), *other;
	struct pc_key_rec r, g;
	uint64_t v;

	make_rec(&r, "0123456789abcdef", "alice", 1000, 0x11);
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	pc_store_close(st);
	/* Back to v3, as an older release left it. */
	raw_exec(t->db, "DROP TRIGGER keys_gen_ins; DROP TRIGGER keys_gen_del;"
	    "DROP TRIGGER keys_gen_upd; DROP TRIGGER grants_gen_ins;"
	    "DROP TRIGGER grants_gen_del; DROP TRIGGER grants_gen_upd;"
	    "DROP TRIGGER events_gen_ins; DROP TABLE store_gen;"
	    "DELETE FROM schema_version WHERE version = 4");
	st = open_ok(t->db);
	assert_int_equal(raw_int(t->db,
	    "SELECT max(version) FROM schema_version"), 4);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_string_equal(g.principal, "alice");
	other = open_ok(t->db);
	v = pc_store_version(st);
	assert_int_equal(pc_store_key_revoke(other, r.id, 2000), 0);
	assert_true(pc_store_version(st) != v);
	pc_store_close(other);
	pc_store_close(st);
}

static void
test_touch_buffered(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db), *other = open_ok(t->db);
	struct pc_key_rec r, g;

	make_rec(&r, "0123456789abcdef", "alice", 1000, 0x11);
	assert_int_equal(pc_store_key_insert(st, &r), 0);

	/* The first use is written at once. */
	assert_int_equal(pc_store_key_touch(st, r.id, 5000, "10.0.0.1"), 0);
	assert_int_equal(pc_store_key_get(other, r.id, &g), 0);
	assert_int_equal(g.last_used, 5000);
	assert_string_equal(g.last_source, "10.0.0.1");

	/* Within the interval: buffered, not written. */
	assert_int_equal(pc_store_key_touch(st, r.id, 5000, "10.0.0.2"), 0);
	assert_int_equal(pc_store_key_get(other, r.id, &g), 0);
	assert_string_equal(g.last_source, "10.0.0.1");

	/* After the interval: the next use writes. */
	assert_int_equal(pc_store_key_touch(st, r.id, 5001, "10.0.0.3"), 0);
	assert_int_equal(pc_store_key_get(other, r.id, &g), 0);
	assert_int_equal(g.last_used, 5001);
	assert_string_equal(g.last_source, "10.0.0.3");

	/* A buffered use is written by flush... */
	assert_int_equal(pc_store_key_touch(st, r.id, 5001, "10.0.0.4"), 0);
	assert_int_equal(pc_store_key_get(other, r.id, &g), 0);
	assert_string_equal(g.last_source, "10.0.0.3");
	assert_int_equal(pc_store_flush(st), 0);
	assert_int_equal(pc_store_key_get(other, r.id, &g), 0);
	assert_string_equal(g.last_source, "10.0.0.4");

	/* ...and by close. */
	assert_int_equal(pc_store_key_touch(st, r.id, 5001, "10.0.0.5"), 0);
	pc_store_close(st);
	assert_int_equal(pc_store_key_get(other, r.id, &g), 0);
	assert_string_equal(g.last_source, "10.0.0.5");

	/* Touches do not count as changes for cache holders. */
	{
		uint64_t v = pc_store_version(other);
		assert_int_equal(pc_store_key_touch(other, r.id, 6000, "x"),
		    0);
		assert_true(pc_store_version(other) == v);
	}
	assert_int_equal(pc_store_key_touch(other, "nope", 6000, "x"),
	    PC_E_INVAL);
	pc_store_close(other);
}

/* Time-boxed grants: kept with their end, replaced on a second grant,
 * bounded per key, pruned once expired, refused for unknown keys. */
static void
test_grants(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db);
	struct pc_key_rec r, g;
	char role[16];

	make_rec(&r, "00000000000000aa", "bob", 1000, 0xbb);
	assert_int_equal(pc_store_key_insert(st, &r), 0);
	assert_int_equal(pc_store_grant(st, r.id, "writer", 2000, 1000), 0);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_int_equal(g.ngrants, 1);
	assert_string_equal(g.grants[0].role, "writer");
	assert_int_equal(g.grants[0].until, 2000);
	/* Granting again sets the new end. */
	assert_int_equal(pc_store_grant(st, r.id, "writer", 1500, 1000), 0);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_int_equal(g.ngrants, 1);
	assert_int_equal(g.grants[0].until, 1500);
	/* An end in the past, an unknown key: refused. */
	assert_int_equal(pc_store_grant(st, r.id, "x", 900, 1000), PC_E_INVAL);
	assert_int_equal(pc_store_grant(st, "00000000000000ff", "x", 2000,
	    1000), PC_E_NOTFOUND);
	/* At most PC_KEY_MAX_GRANTS live grants. */
	for (int i = 1; i < PC_KEY_MAX_GRANTS; i++) {
		snprintf(role, sizeof(role), "r%d", i);
		assert_int_equal(pc_store_grant(st, r.id, role, 3000, 1000), 0);
	}
	assert_int_equal(pc_store_grant(st, r.id, "one-more", 3000, 1000),
	    PC_E_LIMIT);
	/* Once "writer" has expired (now 1600) it is pruned, making room. */
	assert_int_equal(pc_store_grant(st, r.id, "one-more", 3000, 1600), 0);
	assert_int_equal(pc_store_key_get(st, r.id, &g), 0);
	assert_int_equal(g.ngrants, PC_KEY_MAX_GRANTS);
	for (size_t i = 0; i < g.ngrants; i++)
		assert_string_not_equal(g.grants[i].role, "writer");
	assert_int_equal(pc_store_ungrant(st, r.id, "r1"), 0);
	assert_int_equal(pc_store_ungrant(st, r.id, "r1"), PC_E_NOTFOUND);
	pc_store_close(st);
}

static int
take_until(void *arg, const struct pc_store_event *ev)
{
	int *left = arg;

	if (*left == 0)
		return 1;	/* refused: offered again next time */
	(*left)--;
	return ev->seq > 0 ? 0 : -1;
}

/* Events are offered in order, from the consumer's cursor on; an event the
 * consumer refuses is offered again; the cursor survives a reopen. */
static void
test_events(void **state)
{
	struct tdir *t = *state;
	struct pc_store *st = open_ok(t->db);
	struct pc_store_event ev = { .ts = 100 };
	int left;

	pc_strlcpy(ev.event, "key.created", sizeof(ev.event));
	for (int i = 0; i < 5; i++) {
		snprintf(ev.key_id, sizeof(ev.key_id), "%016x", i);
		assert_int_equal(pc_store_event_add(st, &ev), 0);
	}
	left = 2;
	assert_int_equal(pc_store_events_take(st, "audit", 10, take_until,
	    &left), 2);
	left = 100;
	assert_int_equal(pc_store_events_take(st, "audit", 2, take_until,
	    &left), 2);
	pc_store_close(st);
	st = open_ok(t->db);
	left = 100;
	assert_int_equal(pc_store_events_take(st, "audit", 10, take_until,
	    &left), 1);
	assert_int_equal(pc_store_events_take(st, "audit", 10, take_until,
	    &left), 0);
	/* Another consumer starts from the beginning. */
	left = 100;
	assert_int_equal(pc_store_events_take(st, "other", 10, take_until,
	    &left), 5);
	ev.event[0] = '\0';
	assert_int_equal(pc_store_event_add(st, &ev), PC_E_INVAL);
	pc_store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_mode_0600, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_readable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_not_a_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_grants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_and_reopen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insert_get_list, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_many, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rotate_revoke, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_version_moves, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_version_ignores_unrelated,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v3_with_keys,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_touch_buffered, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
