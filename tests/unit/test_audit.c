/*
 * Audit log: records and their chain, every tampering of the acceptance
 * text (alter, delete, swap, truncate, forge, duplicate) caught and named,
 * rotation and restart continuing one chain, a removed middle file, crash
 * leftovers as warnings, retention, fail-closed writes, group commit
 * (fsync on the worker thread, a failed fsync failing the log) and strict
 * mode. Every test works in its own mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char BADKEY[32] = "fedcba9876543210fedcba9876543210";

struct t {
	char dir[64];
	char copy[96];		/* tampered copies go here */
	struct event_base *base;
};

static void
rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[PATH_MAX];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) != 0)
			rm_dir(p);
	}
	closedir(d);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/pc_audit_XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->copy, sizeof(t->copy), "%s/copy", t->dir);
	if (mkdir(t->copy, 0700) != 0)
		return -1;
	t->base = event_base_new();
	if (t->base == NULL)
		return -1;
	pc_log_set_level(PC_LOG_ERROR);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	rm_dir(t->dir);
	event_base_free(t->base);
	free(t);
	return 0;
}

static void
conf_init(struct t *t, struct pc_audit_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->dir = t->dir;
	c->key = KEY;
	c->key_len = sizeof(KEY);
	c->group_delay_ms = 5;
}

static struct pc_audit *
open_ok(struct t *t, const struct pc_audit_conf *c)
{
	struct pc_audit *a = NULL;
	char err[512];
	int rc = pc_audit_open(t->base, c, &a, err, sizeof(err));

	if (rc != 0)
		fail_msg("open: %s", err);
	return a;
}

static void
write_n(struct pc_audit *a, int n)
{
	for (int i = 0; i < n; i++) {
		json_t *args = json_pack("{s:s, s:i}", "path", "/tmp/x", "n", i);
		struct pc_audit_request r = {
			.request_id = "r-1", .principal = i % 2 ? "bob" : "alice",
			.key_id = "5a7ab5e4d0265daf", .tenant = "acme",
			.source = "127.0.0.1", .era = "2025-06-18",
			.upstream = "fs", .method = "tools/call",
			.tool = i % 3 ? "fs__read" : "fs__write", .args = args,
			.decision = i % 5 ? "allow" : "deny",
			.reason = i % 5 ? "policy.allow" : "policy.deny",
			.status = "ok", .latency_us = 1200 + i, .bytes_in = 80,
			.bytes_out = 300,
		};
		json_t *f = pc_audit_request_fields(&r);

		assert_non_null(f);
		assert_int_equal(pc_audit_write(a, f, NULL, NULL), 0);
		json_decref(f);
		json_decref(args);
	}
}

/* A closed log of n caller records in one file; returns its path. */
static char *
make_log(struct t *t, int n)
{
	struct pc_audit_conf c;
	struct pc_audit *a;
	char **files;
	size_t nf;
	char *p;

	conf_init(t, &c);
	a = open_ok(t, &c);
	write_n(a, n);
	pc_audit_close(a);
	assert_int_equal(pc_audit_list(t->dir, NULL, &files, &nf), 0);
	assert_int_equal(nf, 1);
	p = strdup(files[0]);
	pc_audit_list_free(files, nf);
	return p;
}

struct lines {
	char **l;
	size_t n;
};

static void
load(const char *path, struct lines *ls)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t r;

	assert_non_null(f);
	ls->l = NULL;
	ls->n = 0;
	while ((r = getline(&line, &cap, f)) > 0) {
		ls->l = realloc(ls->l, (ls->n + 1) * sizeof(char *));
		assert_non_null(ls->l);
		ls->l[ls->n++] = strdup(line);	/* keeps its '\n' */
	}
	free(line);
	fclose(f);
}

static void
lines_free(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	free(ls->l);
}

static void
store(const char *path, const struct lines *ls)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (size_t i = 0; i < ls->n; i++)
		fputs(ls->l[i], f);
	fclose(f);
}

/* Path of the copy of `orig` in t->copy, keeping its name. */
static void
copy_path(struct t *t, const char *orig, char *out, size_t outlen)
{
	const char *b = strrchr(orig, '/');

	snprintf(out, outlen, "%s/%s", t->copy, b ? b + 1 : orig);
}

static void
verify1(const char *path, const unsigned char *key,
    struct pc_audit_verdict *v)
{
	const char *files[1] = { path };

	assert_int_equal(pc_audit_verify(files, 1, key, 32, v), 0);
}

static void
verify_dir(const char *dir, struct pc_audit_verdict *v)
{
	char **files;
	size_t n;

	assert_int_equal(pc_audit_list(dir, NULL, &files, &n), 0);
	assert_true(n > 0);
	assert_int_equal(pc_audit_verify((const char *const *)files, n, KEY,
	    sizeof(KEY), v), 0);
	pc_audit_list_free(files, n);
}

static void
expect_bad(const struct pc_audit_verdict *v, const char *file, uint64_t line,
    uint64_t seq, const char *reason)
{
	if (v->ok)
		fail_msg("verify passed; expected \"%s\"", reason);
	if (strstr(v->reason, reason) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", v->reason, reason);
	assert_string_equal(v->first_bad_file, file);
	assert_int_equal(v->first_bad_line, line);
	assert_int_equal(v->first_bad_seq, seq);
}

static bool
has_warning(const struct pc_audit_verdict *v, const char *text)
{
	for (size_t i = 0; i < v->warnings && i < PC_AUDIT_MAX_WARNINGS; i++)
		if (strstr(v->warning[i].text, text) != NULL)
			return true;
	return false;
}

/* --- records and a clean chain -------------------------------------------------- */

static void
test_write_verify(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	struct lines ls;
	struct stat sb;
	char *p = make_log(t, 50);
	json_t *j;
	const char *k;
	json_t *val;
	size_t i = 0;
	static const char *const order[] = { "seq", "ts", "type",
	    "request_id", "principal", "key_id", "tenant", "source",
	    "session", "era", "upstream", "method", "tool", "args",
	    "decision", "reason", "status", "latency_us", "bytes_in",
	    "bytes_out", "mac" };

	verify1(p, KEY, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 0);
	assert_int_equal(v.records, 52);	/* header + 50 + checkpoint */
	assert_int_equal(v.first_seq, 1);
	assert_int_equal(v.last_seq, 52);

	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);

	load(p, &ls);
	assert_int_equal(ls.n, 52);
	assert_non_null(strstr(ls.l[0], "\"type\":\"file\""));
	assert_non_null(strstr(ls.l[51], "\"type\":\"checkpoint\""));
	assert_non_null(strstr(ls.l[51], "\"reason\":\"close\""));
	/* Fixed key order, microsecond UTC timestamps. */
	j = json_loads(ls.l[1], JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(j);
	json_object_foreach(j, k, val) {
		assert_true(i < sizeof(order) / sizeof(order[0]));
		assert_string_equal(k, order[i]);
		i++;
	}
	assert_int_equal(i, sizeof(order) / sizeof(order[0]));
	assert_int_equal(strlen(json_string_value(json_object_get(j, "ts"))),
	    27);
	assert_int_equal(json_string_value(json_object_get(j, "ts"))[26], 'Z');
	json_decref(j);
	/* The key is nowhere in the log. */
	for (i = 0; i < ls.n; i++)
		assert_null(strstr(ls.l[i], "0123456789abcdef"));
	lines_free(&ls);

	verify1(p, BADKEY, &v);
	expect_bad(&v, p, 1, 1, "MAC mismatch");
	free(p);
}

/* --- tampering --------------------------------------------------------------------- */

enum tamper { ALTER, DELETE, SWAP, TRUNCATE, FORGE, FORGE_AFTER, DUPLICATE };

static void
forge_line(const char *after, uint64_t seq, char *out, size_t outlen)
{
	unsigned char prev[AUDIT_MAC_LEN], mac[AUDIT_MAC_LEN];
	char body[256], hex[AUDIT_MAC_HEX + 1];
	size_t bl, alen = strlen(after);
	EVP_MAC_CTX *m = audit_mac_new(BADKEY, sizeof(BADKEY));

	/* The forger knows the format and the previous MAC, not the key. */
	assert_non_null(m);
	assert_int_equal(audit_split(after, alen - 1, &bl, prev), 0);
	snprintf(body, sizeof(body), "{\"seq\":%llu,\"ts\":\"2026-01-01T00:00:"
	    "00.000000Z\",\"type\":\"request\",\"principal\":\"mallory\"",
	    (unsigned long long)seq);
	assert_int_equal(audit_mac(m, prev, body, strlen(body), mac), 0);
	pc_hex_encode(mac, sizeof(mac), hex);
	snprintf(out, outlen, "%s,\"mac\":\"%s\"}\n", body, hex);
	EVP_MAC_CTX_free(m);
}

/* Apply one tampering to a copy of a 20-record log and verify it. */
static void
tamper(struct t *t, enum tamper how, struct pc_audit_verdict *v, char *cp,
    size_t cplen)
{
	char *p = make_log(t, 20);	/* lines 1..22, seq == line */
	char forged[512];
	struct lines ls;
	char *tmp;

	load(p, &ls);
	assert_int_equal(ls.n, 22);
	switch (how) {
	case ALTER: {
		char *s = strstr(ls.l[4], "\"acme\"");	/* line 5 */

		assert_non_null(s);
		memcpy(s, "\"acmf\"", 6);
		break;
	}
	case DELETE:		/* line 7 */
		free(ls.l[6]);
		memmove(&ls.l[6], &ls.l[7], (ls.n - 7) * sizeof(char *));
		ls.n--;
		break;
	case SWAP:		/* lines 6 and 7 */
		tmp = ls.l[5];
		ls.l[5] = ls.l[6];
		ls.l[6] = tmp;
		break;
	case TRUNCATE:		/* the checkpoint and two records */
		for (size_t i = 19; i < 22; i++)
			free(ls.l[i]);
		ls.n = 19;
		break;
	case FORGE:		/* cut the checkpoint, append seq 22 */
		forge_line(ls.l[20], 22, forged, sizeof(forged));
		free(ls.l[21]);
		ls.l[21] = strdup(forged);
		break;
	case FORGE_AFTER:	/* append seq 23 after the checkpoint */
		forge_line(ls.l[21], 23, forged, sizeof(forged));
		ls.l = realloc(ls.l, (ls.n + 1) * sizeof(char *));
		ls.l[ls.n++] = strdup(forged);
		break;
	case DUPLICATE:		/* line 5 again after itself */
		ls.l = realloc(ls.l, (ls.n + 1) * sizeof(char *));
		memmove(&ls.l[6], &ls.l[5], (ls.n - 5) * sizeof(char *));
		ls.l[5] = strdup(ls.l[4]);
		ls.n++;
		break;
	}
	copy_path(t, p, cp, cplen);
	store(cp, &ls);
	lines_free(&ls);
	verify1(cp, KEY, v);
	free(p);
}

static void
test_alter(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, ALTER, &v, cp, sizeof(cp));
	expect_bad(&v, cp, 5, 5, "MAC mismatch");
}

static void
test_delete(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, DELETE, &v, cp, sizeof(cp));
	expect_bad(&v, cp, 7, 8, "expected seq 7, found 8");
}

static void
test_swap(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, SWAP, &v, cp, sizeof(cp));
	expect_bad(&v, cp, 6, 7, "expected seq 6, found 7");
}

static void
test_truncate(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, TRUNCATE, &v, cp, sizeof(cp));
	/* A crash looks the same: a warning, never a silent pass. */
	assert_true(v.ok);
	assert_int_equal(v.warnings, 1);
	assert_true(has_warning(&v, "no closing checkpoint after seq 19"));
	assert_string_equal(v.warning[0].file, cp);
	assert_int_equal(v.warning[0].seq, 19);
}

static void
test_forge(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, FORGE, &v, cp, sizeof(cp));
	expect_bad(&v, cp, 22, 22, "MAC mismatch");
}

static void
test_forge_after_checkpoint(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, FORGE_AFTER, &v, cp, sizeof(cp));
	expect_bad(&v, cp, 23, 23, "after the file's checkpoint");
}

static void
test_duplicate(void **state)
{
	struct pc_audit_verdict v;
	char cp[PATH_MAX];

	tamper(*state, DUPLICATE, &v, cp, sizeof(cp));
	expect_bad(&v, cp, 6, 5, "expected seq 6, found 5");
}

/* --- several files ----------------------------------------------------------------- */

/* Records dated this far back when the_past is set (audit_clock). */
#define PAST_S (100 * 86400)
static bool the_past;

static int
past_clock(clockid_t id, struct timespec *ts)
{
	int rc = clock_gettime(id, ts);

	if (the_past)
		ts->tv_sec -= PAST_S;
	return rc;
}

/*
 * Three files by rotation: 1..12 | 13..24 | 25..36 (header + 10 + cp);
 * file i's records (its closing checkpoint included) are dated 100 days
 * back when bit i of `old` is set. Retention is off while they are made.
 */
static void
three_files_dated(struct t *t, char ***files, size_t *n, unsigned old)
{
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_stats st;

	conf_init(t, &c);
	c.retention_days = 36500;
	audit_clock = past_clock;
	the_past = old & 1;
	a = open_ok(t, &c);
	write_n(a, 10);
	assert_int_equal(pc_audit_rotate(a), 0);
	the_past = old & 2;
	write_n(a, 10);
	assert_int_equal(pc_audit_rotate(a), 0);
	the_past = old & 4;
	write_n(a, 10);
	pc_audit_stats(a, &st);
	assert_int_equal(st.rotations, 2);
	assert_int_equal(st.files_removed, 0);
	pc_audit_close(a);
	the_past = false;
	audit_clock = clock_gettime;
	assert_int_equal(pc_audit_list(t->dir, NULL, files, n), 0);
	assert_int_equal(*n, 3);
}

static void
three_files(struct t *t, char ***files, size_t *n)
{
	three_files_dated(t, files, n, 0);
}

static void
test_rotation_chain(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	char **files;
	size_t n;

	three_files(t, &files, &n);
	assert_int_equal(pc_audit_verify((const char *const *)files, n, KEY,
	    sizeof(KEY), &v), 0);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 0);
	assert_int_equal(v.records, 36);
	/* Each file on its own: intact, but its start is not anchored. */
	verify1(files[1], KEY, &v);
	assert_true(v.ok);
	assert_true(has_warning(&v, "the chain starts at seq 13"));
	/* Out of order. */
	{
		const char *swapped[3] = { files[0], files[2], files[1] };

		assert_int_equal(pc_audit_verify(swapped, 3, KEY, sizeof(KEY),
		    &v), 0);
		expect_bad(&v, files[2], 1, 25, "records seq 13..24 are "
		    "missing");
	}
	pc_audit_list_free(files, n);
}

static void
test_size_rotation(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct pc_audit_stats st;

	conf_init(t, &c);
	c.max_file_bytes = 4096;
	a = open_ok(t, &c);
	write_n(a, 40);
	pc_audit_stats(a, &st);
	assert_true(st.rotations >= 2);
	pc_audit_close(a);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 0);
}

static void
test_delete_middle_file(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	char **files;
	size_t n;

	three_files(t, &files, &n);
	assert_int_equal(unlink(files[1]), 0);
	{
		const char *rest[2] = { files[0], files[2] };

		assert_int_equal(pc_audit_verify(rest, 2, KEY, sizeof(KEY), &v),
		    0);
		expect_bad(&v, files[2], 1, 25, "records seq 13..24 are "
		    "missing before this file");
	}
	pc_audit_list_free(files, n);
}

static void
test_truncate_middle_file(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	struct lines ls;
	char **files;
	size_t n;

	three_files(t, &files, &n);
	load(files[1], &ls);		/* seq 13..24 */
	for (size_t i = 9; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = 9;			/* keeps 13..21 */
	store(files[1], &ls);
	lines_free(&ls);
	assert_int_equal(pc_audit_verify((const char *const *)files, n, KEY,
	    sizeof(KEY), &v), 0);
	expect_bad(&v, files[1], 0, 21, "truncated after seq 21");
	pc_audit_list_free(files, n);
}

/* Open the log in t->dir, write n records, close: the directory then
 * verifies without a warning. */
static void
run_clean(struct t *t, int n, struct pc_audit_verdict *v)
{
	struct pc_audit_conf c;
	struct pc_audit *a;

	conf_init(t, &c);
	a = open_ok(t, &c);
	write_n(a, n);
	pc_audit_close(a);
	verify_dir(t->dir, v);
	assert_true(v->ok);
	assert_int_equal(v->warnings, 0);
}

/*
 * Deleting or renaming the newest file leaves no gap in the sequence: the
 * rotation checkpoint at the end of what is left is the evidence. verify
 * warns about it, and so does a restart on what is left: its header says
 * prev_end "rotation", and the verifier sees a restart after a rotation.
 */
static void
test_delete_newest_file(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct lines ls;
	char **files, **now, moved[PATH_MAX];
	size_t n, nn;

	three_files(t, &files, &n);
	assert_int_equal(pc_audit_verify((const char *const *)files, 2, KEY,
	    sizeof(KEY), &v), 0);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 1);
	assert_true(has_warning(&v, "the log continues after seq 24 "
	    "(rotation checkpoint, reason request) but no next file was "
	    "given"));
	assert_string_equal(v.warning[0].file, files[1]);
	assert_int_equal(v.warning[0].seq, 24);

	/* Renamed out of the listing: the directory tells the same, and
	 * the CLI can name the look-alike. */
	snprintf(moved, sizeof(moved), "%s~", files[2]);
	assert_int_equal(rename(files[2], moved), 0);
	assert_true(audit_name_lookalike(strrchr(moved, '/') + 1, "audit"));
	assert_false(audit_name_lookalike(strrchr(files[1], '/') + 1,
	    "audit"));
	assert_false(audit_name_lookalike("auditor.txt", "audit"));
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_true(has_warning(&v, "the log continues after seq 24"));

	/* The gateway starts on what is left and says so. */
	conf_init(t, &c);
	a = open_ok(t, &c);
	write_n(a, 2);
	pc_audit_close(a);
	assert_int_equal(pc_audit_list(t->dir, NULL, &now, &nn), 0);
	assert_int_equal(nn, 3);
	load(now[2], &ls);
	assert_non_null(strstr(ls.l[0], "\"prev_end\":\"rotation\""));
	assert_non_null(strstr(ls.l[0], "\"prev_seq\":24,"));
	lines_free(&ls);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 1);
	assert_true(has_warning(&v, "the next file given begins with a "
	    "restart"));
	assert_string_equal(v.warning[0].file, files[1]);
	/* The new file alone carries the evidence in its header. */
	verify1(now[2], KEY, &v);
	assert_true(v.ok);
	assert_true(has_warning(&v, "records after seq 24 may be missing"));
	pc_audit_list_free(now, nn);
	pc_audit_list_free(files, n);
}

/* An empty last file must not hide where the records stop. */
static void
test_empty_last_file(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	struct lines ls;
	char **files, empty[PATH_MAX];
	size_t n;
	FILE *f;

	three_files(t, &files, &n);
	load(files[2], &ls);		/* cut 32..36 */
	for (size_t i = 7; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = 7;
	store(files[2], &ls);
	lines_free(&ls);
	snprintf(empty, sizeof(empty), "%s/audit-20990101T000000Z-"
	    "000000000099.jsonl", t->dir);
	f = fopen(empty, "w");
	assert_non_null(f);
	fclose(f);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_true(has_warning(&v, "the file holds no record"));
	assert_true(has_warning(&v, "no closing checkpoint after seq 31"));
	for (size_t i = 0; i < v.warnings; i++)
		if (strstr(v.warning[i].text, "no closing checkpoint") != NULL)
			assert_string_equal(v.warning[i].file, files[2]);
	pc_audit_list_free(files, n);
}

/* A restart continues the chain; a crash (no checkpoint, a torn line)
 * leaves warnings that name the file, and the chain still verifies. */
static void
test_restart_and_crash(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct lines ls;
	char **files;
	size_t n;
	FILE *f;

	conf_init(t, &c);
	a = open_ok(t, &c);
	write_n(a, 5);
	pc_audit_close(a);		/* 1..7 */
	run_clean(t, 5, &v);		/* 8..14 */
	assert_int_equal(v.records, 14);

	/* A crash: the second file loses its checkpoint, then a torn line. */
	assert_int_equal(pc_audit_list(t->dir, NULL, &files, &n), 0);
	assert_int_equal(n, 2);
	load(files[1], &ls);
	free(ls.l[--ls.n]);
	store(files[1], &ls);
	lines_free(&ls);
	f = fopen(files[1], "a");
	fputs("{\"seq\":14,\"ts\":\"20", f);
	fclose(f);
	a = open_ok(t, &c);
	write_n(a, 3);
	pc_audit_close(a);		/* 14..18 */
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 1);
	assert_string_equal(v.warning[0].file, files[1]);
	assert_true(has_warning(&v, "incomplete last line and no checkpoint "
	    "after seq 13"));
	assert_int_equal(v.records, 18);
	pc_audit_list_free(files, n);
}

static void
test_retention(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct pc_audit_stats st;
	char **files, **left;
	size_t n, nl;

	/* The first and the third are old by their records, the second is
	 * not: only the first goes (never a hole in the middle). */
	three_files_dated(t, &files, &n, 1 | 4);
	conf_init(t, &c);
	a = open_ok(t, &c);		/* retention runs at open */
	pc_audit_stats(a, &st);
	assert_int_equal(st.files_removed, 1);
	write_n(a, 2);
	pc_audit_close(a);
	assert_int_equal(access(files[0], F_OK), -1);
	assert_int_equal(access(files[1], F_OK), 0);
	assert_int_equal(pc_audit_list(t->dir, NULL, &left, &nl), 0);
	assert_int_equal(nl, 3);
	pc_audit_list_free(left, nl);
	/* The retention record accounts for the removed start. */
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 0);
	assert_int_equal(v.first_seq, 13);

	/* Removing the oldest file by hand is not retention. */
	assert_int_equal(unlink(files[1]), 0);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_true(has_warning(&v, "the chain starts at seq 25"));
	pc_audit_list_free(files, n);
}

/* Set every file's mtime (and atime) 100 days back. */
static void
age_mtimes(char **files, size_t n)
{
	struct timespec old[2];

	old[0].tv_sec = old[1].tv_sec = time(NULL) - PAST_S;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(utimensat(AT_FDCWD, files[i], old, 0), 0);
}

/* Open (retention runs) and close the log: no file removed. */
static void
open_keeps_all(struct t *t, char **files, size_t n)
{
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_stats st;

	conf_init(t, &c);
	a = open_ok(t, &c);
	pc_audit_stats(a, &st);
	assert_int_equal(st.files_removed, 0);
	pc_audit_close(a);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(access(files[i], F_OK), 0);
}

/* Whoever can touch a file must not be able to expire it: the age is
 * the last record's ts, not the mtime. */
static void
test_retention_ignores_mtime(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	char **files;
	size_t n;

	three_files(t, &files, &n);
	age_mtimes(files, n);
	open_keeps_all(t, files, n);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 0);
	assert_int_equal(v.first_seq, 1);
	pc_audit_list_free(files, n);
}

/* An old ts written over a fresh file's last record without the key does
 * not verify: the file is kept (and so is every later one). */
static void
test_retention_forged_tail(void **state)
{
	struct t *t = *state;
	struct lines ls;
	char **files, *ts;
	size_t n;

	three_files(t, &files, &n);
	load(files[0], &ls);
	ts = strstr(ls.l[ls.n - 1], "\"ts\":\"");
	assert_non_null(ts);
	memcpy(ts + 6, "2001", 4);	/* same length, no MAC */
	store(files[0], &ls);
	lines_free(&ls);
	age_mtimes(files, n);
	open_keeps_all(t, files, n);
	pc_audit_list_free(files, n);
}

/* --- resuming ---------------------------------------------------------------------- */

#define PLANTED "audit-20990101T000000Z-999999999999.jsonl"

/* Write one line into t->dir/name (made 0600). */
static void
plant(struct t *t, const char *name, const char *line)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(line, f);
	fclose(f);
}

static void
unplant(struct t *t, const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	assert_int_equal(unlink(p), 0);
}

/* pc_audit_open must fail, naming the file and saying why. */
static void
open_refused(struct t *t, const char *name, const char *why, int want)
{
	struct pc_audit_conf c;
	struct pc_audit *a = NULL;
	char err[1024];

	conf_init(t, &c);
	assert_int_equal(pc_audit_open(t->base, &c, &a, err, sizeof(err)),
	    want);
	assert_null(a);
	if (strstr(err, name) == NULL || strstr(err, why) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, name, why);
}

/* A header of seq 2^63-1 with a genuine MAC (made with the key). */
static void
keyed_header(char *out, size_t outlen)
{
	static const unsigned char zero[AUDIT_MAC_LEN];
	unsigned char mac[AUDIT_MAC_LEN];
	char body[256], hex[AUDIT_MAC_HEX + 1];
	EVP_MAC_CTX *m = audit_mac_new(KEY, sizeof(KEY));

	assert_non_null(m);
	snprintf(body, sizeof(body), "{\"seq\":9223372036854775807,\"ts\":"
	    "\"2026-01-01T00:00:00.000000Z\",\"type\":\"file\","
	    "\"prev_mac\":\"%064d\"", 0);
	assert_int_equal(audit_mac(m, zero, body, strlen(body), mac), 0);
	pc_hex_encode(mac, sizeof(mac), hex);
	snprintf(out, outlen, "%s,\"mac\":\"%s\"}\n", body, hex);
	EVP_MAC_CTX_free(m);
}

/*
 * A file planted as the newest must not set the writer's seq and MAC:
 * forged (no key), genuine but at the last seq, or genuine lines copied
 * under a newer name. Each stops pc_audit_open with the file's name; a
 * genuine log still resumes.
 */
static void
test_resume_refuses_planted(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	struct lines ls;
	char line[512], copy[PATH_MAX];
	char *p = make_log(t, 5);	/* 1..7 */

	plant(t, PLANTED, "{\"seq\":9223372036854775807,\"mac\":\""
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "\"}\n");
	open_refused(t, PLANTED, "does not verify with the key", PC_E_DENIED);
	unplant(t, PLANTED);

	keyed_header(line, sizeof(line));
	plant(t, PLANTED, line);
	open_refused(t, PLANTED, "leaves no room for another record",
	    PC_E_DENIED);
	unplant(t, PLANTED);

	snprintf(copy, sizeof(copy), "%s/audit-20990101T000000Z-"
	    "000000000100.jsonl", t->dir);
	load(p, &ls);
	store(copy, &ls);
	lines_free(&ls);
	open_refused(t, "000000000100.jsonl", "comes before the seq in its "
	    "name", PC_E_DENIED);
	assert_int_equal(unlink(copy), 0);

	run_clean(t, 2, &v);		/* 8..11 */
	assert_int_equal(v.last_seq, 11);
	free(p);
}

/*
 * A FIFO under a log file's name: open(2) of a FIFO waits for a writer, so
 * the gateway (resume, retention) and verify would hang. Both must refuse
 * it at once; alarm() turns a hang into a failure.
 */
static void
test_fifo_refused(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	char fifo[PATH_MAX];
	char *p = make_log(t, 2);

	snprintf(fifo, sizeof(fifo), "%s/%s", t->dir, PLANTED);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10);
	open_refused(t, PLANTED, "not a regular file", PC_E_IO);
	verify1(fifo, KEY, &v);
	expect_bad(&v, fifo, 0, 0, "not a regular file");
	/* A symlink given to verify is followed to a regular file. */
	assert_int_equal(unlink(fifo), 0);
	assert_int_equal(symlink(p, fifo), 0);
	verify1(fifo, KEY, &v);
	assert_true(v.ok);
	/* The writer does not follow it. */
	open_refused(t, PLANTED, "not a regular file (a symlink", PC_E_IO);
	alarm(0);
	free(p);
}

/* --- failing closed ---------------------------------------------------------------- */

static void
test_open_errors(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a = NULL;
	char err[512], path[PATH_MAX];
	FILE *f;

	conf_init(t, &c);
	c.key_len = 16;
	assert_int_equal(pc_audit_open(t->base, &c, &a, err, sizeof(err)),
	    PC_E_INVAL);
	assert_non_null(strstr(err, "32"));

	conf_init(t, &c);
	snprintf(path, sizeof(path), "%s/missing", t->dir);
	c.dir = path;
	assert_int_equal(pc_audit_open(t->base, &c, &a, err, sizeof(err)),
	    PC_E_IO);
	assert_non_null(strstr(err, "cannot open directory"));
	assert_null(a);

	/* A regular file where the directory should be (as root, mode bits
	 * would not stop us, so this is the unwritable directory). */
	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(pc_audit_open(t->base, &c, &a, err, sizeof(err)),
	    PC_E_IO);
	assert_non_null(strstr(err, "Not a directory"));

	conf_init(t, &c);
	c.prefix = "../x";
	assert_int_equal(pc_audit_open(t->base, &c, &a, err, sizeof(err)),
	    PC_E_INVAL);
}

/*
 * A write error is forced with RLIMIT_FSIZE (EFBIG), which binds root too,
 * unlike a read-only mode. After it every write fails, with the reason,
 * and the file holds no partial record.
 */
static void
test_write_error_fails_closed(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct pc_audit_stats st;
	struct rlimit saved, lim;
	struct stat sb;
	char path[PATH_MAX];
	json_t *f = json_pack("{s:s}", "type", "request");
	void (*old)(int) = signal(SIGXFSZ, SIG_IGN);

	conf_init(t, &c);
	a = open_ok(t, &c);
	write_n(a, 3);
	assert_null(pc_audit_error(a));
	pc_audit_stats(a, &st);
	snprintf(path, sizeof(path), "%s/%s", t->dir, st.file);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	lim = saved;
	lim.rlim_cur = (rlim_t)sb.st_size + 10;	/* room for a torn piece */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_IO);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, old);
	assert_non_null(pc_audit_error(a));
	assert_non_null(strstr(pc_audit_error(a), "write failed: File too "
	    "large"));
	assert_non_null(strstr(pc_audit_error(a), "refusing requests"));
	/* Still failed with room again. */
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_IO);
	assert_int_equal(pc_audit_rotate(a), PC_E_IO);
	pc_audit_close(a);
	json_decref(f);
	/* What was written before verifies; no torn line was left. */
	assert_int_equal(stat(path, &sb), 0);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.records, 4);
	assert_int_equal(v.warnings, 1);
	assert_true(has_warning(&v, "no closing checkpoint after seq 4"));
}

static void
test_bad_fields(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	json_t *f;
	char *big;

	conf_init(t, &c);
	a = open_ok(t, &c);
	f = json_pack("{s:i}", "seq", 5);
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_INVAL);
	json_decref(f);
	f = json_pack("{s:s}", "mac", "00");
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_INVAL);
	json_decref(f);
	f = json_pack("{s:s}", "type", "checkpoint");
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_INVAL);
	json_decref(f);
	assert_int_equal(pc_audit_write(a, NULL, NULL, NULL), PC_E_INVAL);
	big = malloc(PC_AUDIT_MAX_RECORD + 1);
	memset(big, 'a', PC_AUDIT_MAX_RECORD);
	big[PC_AUDIT_MAX_RECORD] = '\0';
	f = json_pack("{s:s}", "args", big);
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_LIMIT);
	json_decref(f);
	free(big);
	/* None of these broke the log. */
	assert_null(pc_audit_error(a));
	f = json_object();
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), 0);
	json_decref(f);
	pc_audit_close(a);
	{
		struct pc_audit_verdict v;

		verify_dir(t->dir, &v);
		assert_true(v.ok);
		assert_int_equal(v.records, 3);
	}
}

/* The direct serializer writes what jansson writes for the same fields. */
static void
test_request_paths_agree(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct lines ls;
	json_t *args = json_pack("{s:s, s:[i,b,n], s:f}", "q", "a\"b\\c\n\x01"
	    "\xc3\xa9\xe2\x82\xac/", "l", 1, 1, "x", 1.5);
	struct pc_audit_request r = {
		.type = "event", .event = "auth.failed", .request_id = "r\t1",
		.principal = "al\"ice", .key_id = "", .tenant = NULL,
		.source = "::1", .tool = "fs__\x7f", .args = args,
		.decision = "deny", .reason = "apikey.unknown",
		.latency_us = -1, .bytes_in = 0, .bytes_out = 12345678901,
	};
	json_t *f = pc_audit_request_fields(&r);
	char *x, *y;

	assert_non_null(f);
	conf_init(t, &c);
	a = open_ok(t, &c);
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), 0);
	assert_int_equal(pc_audit_write_request(a, &r, NULL, NULL), 0);
	r.type = "checkpoint";
	assert_int_equal(pc_audit_write_request(a, &r, NULL, NULL),
	    PC_E_INVAL);
	r.type = "request";
	r.principal = "bad\xff\xc3";		/* invalid UTF-8 */
	assert_int_equal(pc_audit_write_request(a, &r, NULL, NULL), 0);
	pc_audit_close(a);
	json_decref(f);
	json_decref(args);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	{
		char **files;
		size_t n;

		assert_int_equal(pc_audit_list(t->dir, NULL, &files, &n), 0);
		load(files[0], &ls);
		pc_audit_list_free(files, n);
	}
	assert_int_equal(ls.n, 5);
	/* Equal from "type" up to the MAC. */
	x = strstr(ls.l[1], "\"type\"");
	y = strstr(ls.l[2], "\"type\"");
	assert_non_null(x);
	assert_non_null(y);
	*strstr(x, ",\"mac\"") = '\0';
	*strstr(y, ",\"mac\"") = '\0';
	assert_string_equal(x, y);
	assert_non_null(strstr(ls.l[3], "\"principal\":\"bad\xef\xbf\xbd"
	    "\xef\xbf\xbd\""));
	lines_free(&ls);
}

/* --- durability -------------------------------------------------------------------- */

struct waits {
	int calls;
	int want;
	int last_rc;
	uint64_t at_ms;
	struct event_base *base;
};

static void
on_durable(void *arg, int rc)
{
	struct waits *w = arg;

	w->calls++;
	w->last_rc = rc;
	if (w->calls == w->want) {
		w->at_ms = pc_now_ms();
		event_base_loopbreak(w->base);
	}
}

static void
run_loop(struct event_base *base, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Run the loop until w has seen `want` calls, up to 10 s: waited for, not
 * timed (a loaded machine is slow, and nothing here is about speed). */
static void
wait_calls(struct event_base *base, struct waits *w, int want)
{
	for (int i = 0; i < 100 && w->calls < want; i++)
		run_loop(base, 100);
}

static void
test_group_commit(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_stats st;
	struct waits w = { .want = 3, .base = t->base };
	json_t *f = json_pack("{s:s}", "type", "event");
	uint64_t t0, before;

	conf_init(t, &c);
	c.group_delay_ms = 50;
	a = open_ok(t, &c);
	/* The header's own group: waited for, not timed (a loaded machine
	 * takes longer than the delay). */
	for (int i = 0; i < 100; i++) {
		run_loop(t->base, 100);
		pc_audit_stats(a, &st);
		if (st.fsyncs >= 1 && st.pending == 0)
			break;
	}
	before = st.fsyncs;
	assert_true(before >= 1);
	t0 = pc_now_ms();
	for (int i = 0; i < 3; i++)
		assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	assert_int_equal(w.calls, 0);	/* never from inside the write */
	pc_audit_stats(a, &st);
	assert_int_equal(st.pending, 3);
	for (int i = 0; i < 100 && w.calls < 3; i++)
		run_loop(t->base, 100);
	assert_int_equal(w.calls, 3);
	assert_int_equal(w.last_rc, 0);
	assert_true(w.at_ms - t0 >= 45);	/* the group delay, at least */
	pc_audit_stats(a, &st);
	assert_int_equal(st.fsyncs, before + 1);	/* one for the group */
	assert_int_equal(st.pending, 0);

	/* Close delivers what is still waiting. */
	w.calls = 0;
	w.want = 1;
	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	pc_audit_close(a);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.last_rc, 0);
	json_decref(f);
}

static void
test_strict(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct waits w = { .want = 2, .base = t->base };
	json_t *f = json_pack("{s:s}", "type", "request");

	conf_init(t, &c);
	c.fsync_mode = PC_AUDIT_FSYNC_STRICT;
	c.group_delay_ms = 0;
	a = open_ok(t, &c);
	/* A strict caller must wait for the fsync. */
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), PC_E_INVAL);
	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	assert_int_equal(w.calls, 0);
	wait_calls(t->base, &w, 2);
	assert_int_equal(w.calls, 2);
	assert_int_equal(w.last_rc, 0);
	pc_audit_close(a);
	json_decref(f);
}

/* The group's fsync runs on the worker thread, never the caller's; when
 * it fails the log fails closed at once, like a failed write. */
static pthread_t sync_thread;
static int sync_calls;
static int sync_errno;

static int
fake_fdatasync(int fd)
{
	sync_thread = pthread_self();
	sync_calls++;
	if (sync_errno != 0) {
		errno = sync_errno;
		return -1;
	}
	return fdatasync(fd);
}

/* A log whose worker syncs through fake_fdatasync, at every loop turn. */
static struct pc_audit *
open_fake_sync(struct t *t)
{
	struct pc_audit_conf c;

	conf_init(t, &c);
	c.group_delay_ms = 0;
	sync_calls = 0;
	sync_errno = 0;
	audit_fdatasync = fake_fdatasync;
	return open_ok(t, &c);
}

static void
test_fsync_on_worker(void **state)
{
	struct t *t = *state;
	struct pc_audit *a = open_fake_sync(t);
	struct waits w = { .want = 2, .base = t->base };
	json_t *f = json_pack("{s:s}", "type", "event");

	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	wait_calls(t->base, &w, 2);
	assert_int_equal(w.calls, 2);
	assert_int_equal(w.last_rc, 0);
	assert_true(sync_calls >= 1);
	assert_false(pthread_equal(sync_thread, pthread_self()));
	pc_audit_close(a);
	audit_fdatasync = fdatasync;
	json_decref(f);
}

/* The write waiting on w, made after the log broke, got PC_E_IO once the
 * loop ran; the log says `why` and refuses every later write. */
static void
expect_failed_closed(struct t *t, struct pc_audit *a, json_t *f,
    struct waits *w, const char *why)
{
	wait_calls(t->base, w, 1);
	assert_int_equal(w->calls, 1);
	assert_int_equal(w->last_rc, PC_E_IO);
	assert_non_null(pc_audit_error(a));
	assert_non_null(strstr(pc_audit_error(a), why));
	assert_int_equal(pc_audit_write(a, f, on_durable, w), PC_E_IO);
}

/* The live file deleted, or renamed, under a running gateway: its records
 * would go to an orphan inode. The next group sync finds it and the log
 * fails closed (the reply waiting on it gets PC_E_IO). */
static void
live_file_gone(struct t *t, bool rename_it)
{
	struct pc_audit *a = open_fake_sync(t);
	struct waits w = { .want = 1, .base = t->base };
	json_t *f = json_pack("{s:s}", "type", "event");
	char **files, moved[PATH_MAX];
	size_t nf;

	run_loop(t->base, 50);
	assert_null(pc_audit_error(a));
	assert_int_equal(pc_audit_list(t->dir, NULL, &files, &nf), 0);
	assert_int_equal(nf, 1);
	snprintf(moved, sizeof(moved), "%s/elsewhere", t->copy);
	if (rename_it)
		assert_int_equal(rename(files[0], moved), 0);
	else
		assert_int_equal(unlink(files[0]), 0);
	pc_audit_list_free(files, nf);
	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	expect_failed_closed(t, a, f, &w, "removed or replaced");
	pc_audit_close(a);
	audit_fdatasync = fdatasync;
	unlink(moved);
	json_decref(f);
}

static void
test_live_file_removed(void **state)
{
	live_file_gone(*state, false);
	live_file_gone(*state, true);
}

static void
test_fsync_error_fails_closed(void **state)
{
	struct t *t = *state;
	struct pc_audit *a = open_fake_sync(t);
	struct waits w = { .want = 1, .base = t->base };
	json_t *f = json_pack("{s:s}", "type", "event");

	run_loop(t->base, 50);		/* the header's group syncs fine */
	assert_null(pc_audit_error(a));
	sync_errno = EIO;
	assert_int_equal(pc_audit_write(a, f, on_durable, &w), 0);
	/* Failed for good: nothing more is written. */
	expect_failed_closed(t, a, f, &w, "fsync failed");
	assert_int_equal(w.calls, 1);
	pc_audit_close(a);
	audit_fdatasync = fdatasync;
	sync_errno = 0;
	json_decref(f);
}

/* --- queued records (one write per pass of the loop) ------------------------------ */

static off_t
cur_size(struct t *t, struct pc_audit *a)
{
	struct pc_audit_stats st;
	struct stat sb;
	char path[PATH_MAX];

	pc_audit_stats(a, &st);
	snprintf(path, sizeof(path), "%s/%s", t->dir, st.file);
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static const struct pc_audit_request QREC = {
	.principal = "alice", .method = "tools/call", .tool = "echo",
	.decision = "allow", .status = "ok", .latency_us = 5,
	.bytes_in = 10, .bytes_out = 20,
};

static void
test_queue_written_per_pass(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_stats st;
	struct pc_audit_verdict v;
	struct waits w = { .want = 3, .base = t->base };
	json_t *f = json_pack("{s:s}", "type", "event");
	uint64_t writes;
	off_t before, mid;

	conf_init(t, &c);
	c.group_delay_ms = 1000;	/* no fsync in the way */
	a = open_ok(t, &c);
	before = cur_size(t, a);
	/* A queued record has a caller who answers from the callback. */
	assert_int_equal(pc_audit_queue_request(a, &QREC, NULL, NULL),
	    PC_E_INVAL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable,
		    &w), 0);
	/* Chained, not yet written, nobody answered. */
	pc_audit_stats(a, &st);
	assert_int_equal(st.seq, 4);
	assert_int_equal(st.pending, 3);
	assert_int_equal(cur_size(t, a), before);
	assert_int_equal(w.calls, 0);
	/* A synchronous record goes out after them, in chain order, and
	 * still runs no callback from inside the call. */
	assert_int_equal(pc_audit_write(a, f, NULL, NULL), 0);
	mid = cur_size(t, a);
	assert_true(mid > before);
	assert_int_equal(w.calls, 0);
	wait_calls(t->base, &w, 3);
	assert_int_equal(w.calls, 3);
	assert_int_equal(w.last_rc, 0);
	assert_int_equal(cur_size(t, a), mid);
	/* The next pass: written when it ends, with one write(2), then
	 * answered. */
	w.calls = 0;
	w.want = 5;
	pc_audit_stats(a, &st);
	writes = st.writes;
	for (int i = 0; i < 5; i++)
		assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable,
		    &w), 0);
	assert_int_equal(cur_size(t, a), mid);
	wait_calls(t->base, &w, 5);
	assert_int_equal(w.calls, 5);
	assert_int_equal(w.last_rc, 0);
	assert_true(cur_size(t, a) > mid);
	pc_audit_stats(a, &st);
	assert_int_equal(st.writes, writes + 1);
	/* Close writes and answers what is still queued. */
	w.calls = 0;
	w.want = 1;
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	pc_audit_close(a);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.last_rc, 0);
	json_decref(f);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.records, 12);	/* header, 10, checkpoint */
}

/* Rotation in the middle of a pass: the queued records stay in the
 * file they were chained in, before its checkpoint. */
static void
test_queue_across_rotation(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct waits w = { .want = 4, .base = t->base };

	conf_init(t, &c);
	a = open_ok(t, &c);
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	assert_int_equal(pc_audit_rotate(a), 0);
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	wait_calls(t->base, &w, 4);
	assert_int_equal(w.calls, 4);
	assert_int_equal(w.last_rc, 0);
	pc_audit_close(a);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.warnings, 0);
	assert_int_equal(v.records, 8);	/* 2 files: header, 2, checkpoint */
}

/* The pass's write fails: every queued caller hears PC_E_IO (and must
 * withhold its answer), the log is failed, and no torn line is left. */
static void
test_queue_write_fails(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct pc_audit_verdict v;
	struct rlimit saved, lim;
	struct waits w = { .want = 3, .base = t->base };
	void (*old)(int) = signal(SIGXFSZ, SIG_IGN);

	conf_init(t, &c);
	c.group_delay_ms = 1000;
	a = open_ok(t, &c);
	write_n(a, 2);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	lim = saved;
	lim.rlim_cur = (rlim_t)cur_size(t, a) + 10;	/* a torn piece fits */
	for (int i = 0; i < 3; i++)
		assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable,
		    &w), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	run_loop(t->base, 2000);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, old);
	assert_int_equal(w.calls, 3);
	assert_int_equal(w.last_rc, PC_E_IO);
	assert_non_null(pc_audit_error(a));
	assert_non_null(strstr(pc_audit_error(a), "write failed"));
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w),
	    PC_E_IO);
	pc_audit_close(a);
	assert_int_equal(w.calls, 3);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
	assert_int_equal(v.records, 3);	/* header and the two before */
	assert_true(has_warning(&v, "no closing checkpoint after seq 3"));
}

/* Strict mode: a queued record is answered after the fsync that covers
 * it, which the pass's write precedes. */
static void
test_queue_strict(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	struct waits w = { .want = 2, .base = t->base };

	conf_init(t, &c);
	c.fsync_mode = PC_AUDIT_FSYNC_STRICT;
	c.group_delay_ms = 0;
	audit_fdatasync = fake_fdatasync;
	a = open_ok(t, &c);
	run_loop(t->base, 50);		/* the header's own sync */
	sync_calls = 0;
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	assert_int_equal(pc_audit_queue_request(a, &QREC, on_durable, &w), 0);
	wait_calls(t->base, &w, 2);
	assert_int_equal(w.calls, 2);
	assert_int_equal(w.last_rc, 0);
	assert_true(sync_calls >= 1);
	pc_audit_close(a);
	audit_fdatasync = fdatasync;
}

/*
 * One writer per directory: a second gateway on the same audit.dir used to
 * resume from the first one's newest record and write a second branch of
 * the chain. It is refused now, saying why; once the first one closed,
 * the next open works and continues the one chain.
 */
static void
test_one_writer(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a, *b = NULL;
	struct pc_audit_verdict v;
	char err[512];

	conf_init(t, &c);
	a = open_ok(t, &c);
	assert_int_equal(pc_audit_open(t->base, &c, &b, err, sizeof(err)),
	    PC_E_EXISTS);
	assert_null(b);
	assert_non_null(strstr(err, "in use by another portcullis process"));
	pc_audit_close(a);
	b = open_ok(t, &c);
	pc_audit_close(b);
	verify_dir(t->dir, &v);
	assert_true(v.ok);
}

/*
 * The newest file deleted, and a score of empty files named to sort first:
 * their "holds no record" warnings used to fill the report, so that the
 * one about the missing end showed only as "... and N more".
 */
static void
test_warning_not_crowded_out(void **state)
{
	struct t *t = *state;
	struct pc_audit_verdict v;
	char **files, name[PATH_MAX];
	size_t n;

	three_files(t, &files, &n);
	assert_int_equal(unlink(files[2]), 0);
	pc_audit_list_free(files, n);
	for (int i = 1; i <= 20; i++) {
		snprintf(name, sizeof(name), "%s/audit-19700101T000000Z-%012d"
		    ".jsonl", t->dir, i);
		int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	verify_dir(t->dir, &v);
	assert_true(v.warnings > PC_AUDIT_MAX_WARNINGS);
	assert_true(has_warning(&v, "continues after"));
}

static int removed_lines;

static char *
count_removed(void *arg, const char *line, size_t len, bool cut)
{
	(void)arg;
	(void)cut;
	if (strstr(line, "was removed or replaced") != NULL)
		removed_lines++;
	return strndup(line, len);
}

/*
 * The live file deleted while the gateway is idle (no sync since to
 * notice): rotation and close used to seal it with a checkpoint nobody
 * would ever read, and go on. Now the log fails and says so.
 */
static void
test_removed_while_idle(void **state)
{
	struct t *t = *state;
	struct pc_audit_conf c;
	struct pc_audit *a;
	char **files;
	size_t n;

	conf_init(t, &c);
	a = open_ok(t, &c);
	write_n(a, 3);
	assert_int_equal(pc_audit_list(t->dir, NULL, &files, &n), 0);
	assert_int_equal(unlink(files[0]), 0);
	pc_audit_list_free(files, n);
	assert_int_not_equal(pc_audit_rotate(a), 0);
	assert_non_null(pc_audit_error(a));
	assert_non_null(strstr(pc_audit_error(a), "removed"));
	pc_audit_close(a);

	/* At close too. */
	a = open_ok(t, &c);
	write_n(a, 2);
	assert_int_equal(pc_audit_list(t->dir, NULL, &files, &n), 0);
	for (size_t i = 0; i < n; i++)
		unlink(files[i]);
	pc_audit_list_free(files, n);
	removed_lines = 0;
	pc_log_set_filter(count_removed, NULL);
	pc_audit_close(a);
	pc_log_set_filter(NULL, NULL);
	assert_int_equal(removed_lines, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_writer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_warning_not_crowded_out,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_while_idle,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_verify, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_alter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forge_after_checkpoint,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_chain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_size_rotation, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delete_middle_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_truncate_middle_file,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_newest_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_empty_last_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_restart_and_crash, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retention_ignores_mtime,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_forged_tail,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_refuses_planted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_error_fails_closed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_fields, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_request_paths_agree,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_strict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_on_worker, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_live_file_removed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fsync_error_fails_closed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_written_per_pass,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_across_rotation,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_write_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_queue_strict, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
