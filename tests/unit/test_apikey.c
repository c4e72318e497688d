/*
 * API keys: the key format, the stored hash, and every outcome of the
 * check (success, each denial reason, the rotation grace window, a
 * revocation by another connection, strict parsing).
 *
 * Timing safety is by construction and reviewed, not measured: the check
 * compares with CRYPTO_memcmp and computes the HMAC for unknown ids too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>

#include "authn/apikey.h"
#include "lib/errors.h"
#include "lib/map.h"
#include "store/store.h"

static const unsigned char pepper[] =
    "0123456789abcdef0123456789abcdef-test-pepper";
#define PEPPER_LEN (sizeof(pepper) - 1)
#define NOW 1700000000

struct fx {
	char dir[64];
	char db[PATH_MAX];
	struct pc_store *st;
	struct pc_apikeys *ak;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/pc_apikey_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/keys.db", f->dir);
	if (pc_store_open(f->db, &f->st, err, sizeof(err)) != 0 ||
	    pc_apikeys_new(f->st, pepper, PEPPER_LEN, &f->ak) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char p[PATH_MAX + 16];

	pc_apikeys_free(f->ak);
	pc_store_close(f->st);
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->db, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Generate a key and store its record; key[] receives the full key. */
static void
add_key(struct fx *f, char key[PC_APIKEY_LEN + 1], int64_t expires)
{
	struct pc_key_rec r;

	memset(&r, 0, sizeof(r));
	assert_int_equal(pc_apikey_generate(pepper, PEPPER_LEN, key, r.id,
	    r.hash), 0);
	snprintf(r.principal, sizeof(r.principal), "agent-7");
	snprintf(r.tenant, sizeof(r.tenant), "acme");
	snprintf(r.roles, sizeof(r.roles), "reader,deployer");
	r.created = NOW - 100;
	r.expires = expires;
	r.rotation_due = NOW + 86400;
	assert_int_equal(pc_store_key_insert(f->st, &r), 0);
}

static const char *
check(struct fx *f, const char *key, int64_t now)
{
	struct pc_principal p;
	const char *reason = "unset";
	int rc = pc_apikeys_check(f->ak, key, now, "192.0.2.1", &p, &reason);

	if (rc == 0) {
		assert_null(reason);
		return "ok";
	}
	assert_int_equal(rc, PC_E_DENIED);
	assert_non_null(reason);
	return reason;
}

static void
key_id(const char *key, char id[PC_KEY_ID_LEN + 1])
{
	memcpy(id, key + 4, PC_KEY_ID_LEN);
	id[PC_KEY_ID_LEN] = '\0';
}

/* --- tests ---------------------------------------------------------------- */

static void
test_generate_format(void **state)
{
	char key[PC_APIKEY_LEN + 1], id[PC_KEY_ID_LEN + 1];
	unsigned char hash[32], want[32];
	unsigned int len = 0;
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";

	assert_int_equal(pc_apikey_generate(pepper, PEPPER_LEN, key, id, hash),
	    0);
	assert_int_equal(strlen(key), 4 + 16 + 1 + 43);
	assert_memory_equal(key, "pcs_", 4);
	assert_memory_equal(key + 4, id, 16);
	assert_int_equal(strspn(id, "0123456789abcdef"), 16);
	assert_int_equal(key[20], '_');
	assert_int_equal(strspn(key + 21, b64), 43);
	/* The stored hash is HMAC-SHA256(pepper, the 43-char secret). */
	assert_non_null(HMAC(EVP_sha256(), pepper, (int)PEPPER_LEN,
	    (const unsigned char *)key + 21, 43, want, &len));
	assert_memory_equal(hash, want, 32);
}

static void
test_generate_unique(void **state)
{
	struct pc_map *ids = pc_map_new(), *secrets = pc_map_new();
	char key[PC_APIKEY_LEN + 1], id[PC_KEY_ID_LEN + 1];
	unsigned char hash[32];
	/* Bits seen set and clear at each of the 256 secret bit positions:
	 * a generator with fewer than 256 random bits would leave some
	 * position constant. */
	unsigned char any1[32] = { 0 }, any0[32] = { 0 };
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";

	assert_non_null(ids);
	assert_non_null(secrets);
	for (int i = 0; i < 1000; i++) {
		unsigned char raw[33] = { 0 };
		size_t bit = 0;

		assert_int_equal(pc_apikey_generate(pepper, PEPPER_LEN, key,
		    id, hash), 0);
		assert_null(pc_map_get(ids, id));
		assert_null(pc_map_get(secrets, key + 21));
		assert_int_equal(pc_map_put(ids, id, ids), 0);
		assert_int_equal(pc_map_put(secrets, key + 21, secrets), 0);
		/* Decode the 43 chars (258 bits; the last 2 are zero). */
		for (int c = 0; c < 43; c++) {
			int v = (int)(strchr(b64, key[21 + c]) - b64);
			for (int b = 5; b >= 0; b--, bit++)
				if (v >> b & 1)
					raw[bit / 8] |= (unsigned char)
					    (0x80 >> (bit % 8));
		}
		assert_int_equal(raw[32], 0);
		for (int b = 0; b < 32; b++) {
			any1[b] |= raw[b];
			any0[b] |= (unsigned char)~raw[b];
		}
	}
	for (int b = 0; b < 32; b++) {
		assert_int_equal(any1[b], 0xff);
		assert_int_equal(any0[b], 0xff);
	}
	assert_int_equal(pc_map_count(ids), 1000);
	pc_map_free(ids);
	pc_map_free(secrets);
}

static void
test_check_ok(void **state)
{
	struct fx *f = *state;
	char key[PC_APIKEY_LEN + 1], id[PC_KEY_ID_LEN + 1];
	struct pc_principal p;
	struct pc_key_rec r;
	const char *reason = "unset";

	add_key(f, key, 0);
	key_id(key, id);
	assert_int_equal(pc_apikeys_check(f->ak, key, NOW, "192.0.2.7", &p,
	    &reason), 0);
	assert_null(reason);
	assert_int_equal(p.method, PC_AUTH_APIKEY);
	assert_string_equal(p.id, "agent-7");
	assert_string_equal(p.tenant, "acme");
	assert_string_equal(p.key_id, id);
	assert_string_equal(p.roles, "reader,deployer");
	/* The use was recorded (first use: written at once). */
	assert_int_equal(pc_store_key_get(f->st, id, &r), 0);
	assert_int_equal(r.last_used, NOW);
	assert_string_equal(r.last_source, "192.0.2.7");
	/* Again, from the cache. */
	assert_string_equal(check(f, key, NOW + 1), "ok");
}

static void
test_unknown_and_mismatch(void **state)
{
	struct fx *f = *state;
	char key[PC_APIKEY_LEN + 1], other[PC_APIKEY_LEN + 1];
	char id[PC_KEY_ID_LEN + 1];
	unsigned char hash[32];
	struct pc_apikeys *wrong = NULL;
	static const unsigned char pepper2[] =
	    "another-pepper-another-pepper-another-pepper";

	add_key(f, key, 0);
	/* A well-formed key that was never stored. */
	assert_int_equal(pc_apikey_generate(pepper, PEPPER_LEN, other, id,
	    hash), 0);
	assert_string_equal(check(f, other, NOW), "apikey.unknown");
	/* The stored id with another secret. */
	memcpy(other + 4, key + 4, PC_KEY_ID_LEN);
	assert_string_equal(check(f, other, NOW), "apikey.mismatch");
	/* One character of the secret changed (still canonical). */
	memcpy(other, key, sizeof(other));
	other[30] = other[30] == 'A' ? 'B' : 'A';
	assert_string_equal(check(f, other, NOW), "apikey.mismatch");
	/* The right key under another pepper. */
	assert_int_equal(pc_apikeys_new(f->st, pepper2, sizeof(pepper2) - 1,
	    &wrong), 0);
	{
		struct pc_principal p;
		const char *reason = NULL;

		assert_int_equal(pc_apikeys_check(wrong, key, NOW, "x", &p,
		    &reason), PC_E_DENIED);
		assert_string_equal(reason, "apikey.mismatch");
	}
	pc_apikeys_free(wrong);
	assert_string_equal(check(f, key, NOW), "ok");
}

static void
test_revoked_expired(void **state)
{
	struct fx *f = *state;
	char key[PC_APIKEY_LEN + 1], exp[PC_APIKEY_LEN + 1];
	char id[PC_KEY_ID_LEN + 1];

	add_key(f, key, 0);
	key_id(key, id);
	assert_string_equal(check(f, key, NOW), "ok");
	assert_int_equal(pc_store_key_revoke(f->st, id, NOW), 0);
	assert_string_equal(check(f, key, NOW), "apikey.revoked");

	add_key(f, exp, NOW + 10);
	assert_string_equal(check(f, exp, NOW + 9), "ok");
	assert_string_equal(check(f, exp, NOW + 10), "apikey.expired");
	/* Revoked wins over expired. */
	key_id(exp, id);
	assert_int_equal(pc_store_key_revoke(f->st, id, NOW + 20), 0);
	assert_string_equal(check(f, exp, NOW + 30), "apikey.revoked");
}

static void
test_rotation_grace(void **state)
{
	struct fx *f = *state;
	char old[PC_APIKEY_LEN + 1], new[PC_APIKEY_LEN + 1];
	char id[PC_KEY_ID_LEN + 1], nid[PC_KEY_ID_LEN + 1];
	unsigned char nh[32];

	add_key(f, old, 0);
	key_id(old, id);
	assert_string_equal(check(f, old, NOW), "ok");
	/* Rotate with a 24 h grace: a new secret under the same id. */
	assert_int_equal(pc_apikey_generate(pepper, PEPPER_LEN, new, nid, nh),
	    0);
	memcpy(new + 4, id, PC_KEY_ID_LEN);
	assert_int_equal(pc_store_key_rotate(f->st, id, nh, NOW + 86400,
	    NOW + 90 * 86400), 0);
	assert_string_equal(check(f, new, NOW), "ok");
	assert_string_equal(check(f, old, NOW), "ok");
	assert_string_equal(check(f, old, NOW + 86399), "ok");
	assert_string_equal(check(f, old, NOW + 86400), "apikey.rotated_out");
	assert_string_equal(check(f, new, NOW + 86400), "ok");

	/* Rotating again with no grace: the previous secret is out at once,
	 * and the one before it is simply wrong now. */
	memcpy(old, new, sizeof(old));
	assert_int_equal(pc_apikey_generate(pepper, PEPPER_LEN, new, nid, nh),
	    0);
	memcpy(new + 4, id, PC_KEY_ID_LEN);
	assert_int_equal(pc_store_key_rotate(f->st, id, nh, NOW + 100000,
	    NOW + 90 * 86400), 0);
	assert_string_equal(check(f, old, NOW + 100000), "apikey.rotated_out");
	assert_string_equal(check(f, new, NOW + 100000), "ok");
}

static void
test_revoke_by_other_connection(void **state)
{
	struct fx *f = *state;
	struct pc_store *cli = NULL;
	char key[PC_APIKEY_LEN + 1], id[PC_KEY_ID_LEN + 1];
	char err[512];

	add_key(f, key, 0);
	key_id(key, id);
	assert_string_equal(check(f, key, NOW), "ok");	/* now cached */
	assert_string_equal(check(f, key, NOW + 1), "ok");
	/* `portcullis keys revoke` in another process. */
	assert_int_equal(pc_store_open(f->db, &cli, err, sizeof(err)), 0);
	assert_int_equal(pc_store_key_revoke(cli, id, NOW + 2), 0);
	assert_string_equal(check(f, key, NOW + 2), "apikey.revoked");
	pc_store_close(cli);
}

/* The store cannot answer (here: its table is gone under it): no verdict
 * on the key, so not PC_E_DENIED (which the authentication stage counts
 * against the caller and answers "invalid"), but "apikey.unavailable". */
static void
test_store_failure_not_denied(void **state)
{
	struct fx *f = *state;
	struct pc_principal p;
	char key[PC_APIKEY_LEN + 1];
	const char *reason = NULL;
	sqlite3 *db = NULL;
	int rc;

	add_key(f, key, 0);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE keys", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	rc = pc_apikeys_check(f->ak, key, NOW, "192.0.2.1", &p, &reason);
	assert_true(rc < 0 && rc != PC_E_DENIED);
	assert_string_equal(reason, "apikey.unavailable");
}

static void
test_malformed(void **state)
{
	struct fx *f = *state;
	char key[PC_APIKEY_LEN + 1], bad[PC_APIKEY_LEN + 8];
	const char *reason = NULL;
	struct pc_principal p;

	add_key(f, key, 0);
	assert_string_equal(check(f, key, NOW), "ok");

#define EXPECT_MALFORMED(s) \
	assert_string_equal(check(f, (s), NOW), "apikey.malformed")

	EXPECT_MALFORMED("");
	EXPECT_MALFORMED("pcs_");
	/* Wrong prefix. */
	memcpy(bad, key, sizeof(key));
	bad[0] = 'P';
	EXPECT_MALFORMED(bad);
	memcpy(bad, key, sizeof(key));
	bad[3] = '-';
	EXPECT_MALFORMED(bad);
	/* Short and long. */
	memcpy(bad, key, sizeof(key));
	bad[PC_APIKEY_LEN - 1] = '\0';
	EXPECT_MALFORMED(bad);
	snprintf(bad, sizeof(bad), "%sA", key);
	EXPECT_MALFORMED(bad);
	snprintf(bad, sizeof(bad), "%s\n", key);
	EXPECT_MALFORMED(bad);
	snprintf(bad, sizeof(bad), " %s", key);
	EXPECT_MALFORMED(bad);
	/* Bad characters: uppercase hex in the id, '+' and '=' in the
	 * secret (base64, not base64url), a space. */
	memcpy(bad, key, sizeof(key));
	bad[5] = 'A';
	EXPECT_MALFORMED(bad);
	memcpy(bad, key, sizeof(key));
	bad[25] = '+';
	EXPECT_MALFORMED(bad);
	memcpy(bad, key, sizeof(key));
	bad[PC_APIKEY_LEN - 1] = '=';
	EXPECT_MALFORMED(bad);
	memcpy(bad, key, sizeof(key));
	bad[30] = ' ';
	EXPECT_MALFORMED(bad);
	/* An extra underscore: in the id, or doubled separator. */
	memcpy(bad, key, sizeof(key));
	bad[10] = '_';
	EXPECT_MALFORMED(bad);
	snprintf(bad, sizeof(bad), "pcs__%.*s", PC_APIKEY_LEN - 5, key + 4);
	EXPECT_MALFORMED(bad);
	memcpy(bad, key, sizeof(key));
	bad[20] = 'x';
	EXPECT_MALFORMED(bad);
	/* An embedded NUL makes it short. */
	memcpy(bad, key, sizeof(key));
	bad[40] = '\0';
	EXPECT_MALFORMED(bad);
	/* A non-canonical last character (its two spare bits set). */
	memcpy(bad, key, sizeof(key));
	bad[PC_APIKEY_LEN - 1] = 'B';
	EXPECT_MALFORMED(bad);
	/* Bytes past the ASCII range. */
	memcpy(bad, key, sizeof(key));
	bad[22] = (char)0xc3;
	EXPECT_MALFORMED(bad);
	assert_int_equal(pc_apikeys_check(f->ak, NULL, NOW, "x", &p, &reason),
	    PC_E_DENIED);
	assert_string_equal(reason, "apikey.malformed");
#undef EXPECT_MALFORMED
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_format),
		cmocka_unit_test(test_generate_unique),
		cmocka_unit_test_setup_teardown(test_check_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_mismatch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_expired, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rotation_grace, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_revoke_by_other_connection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_failure_not_denied,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
