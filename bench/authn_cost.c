/*
 * What authentication adds to one request, measured without the noise of a
 * shared 2-core machine: the authenticate stage (pc_authn_check) run in a
 * loop against a real key store, with a valid API key and with a wrong one.
 *
 *   build/bench/authn_cost [ITERATIONS]
 *
 * Prints ns per check. Divide by the gateway's CPU time per call (its
 * "server CPU %" ÷ calls/s in bench/run.sh) to get the expected share.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authn/apikey.h"
#include "authn/authn.h"
#include "config/config.h"
#include "lib/errors.h"
#include "store/store.h"

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	char dir[] = "/tmp/pc-authn-cost-XXXXXX";
	char path[256], cfgpath[256], pepper_path[256], yaml[1024], err[256];
	char key[PC_APIKEY_LEN + 1], id[PC_KEY_ID_LEN + 1], hdr[128], bad[128];
	static const char pepper[] = "0123456789abcdef0123456789abcdef01234567";
	struct pc_config *cfg = NULL;
	struct pc_config_errors errs = { 0 };
	struct pc_store *st = NULL;
	struct pc_authn *a = NULL;
	struct pc_key_rec rec = { 0 };
	struct pc_principal p;
	struct pc_authn_result res;
	struct pc_authn_input in = { .source = "127.0.0.1" };
	int rc = 1;
	FILE *f;

	if (iters < 1000 || mkdtemp(dir) == NULL)
		return 2;
	snprintf(path, sizeof(path), "%s/keys.db", dir);
	snprintf(pepper_path, sizeof(pepper_path), "%s/pepper", dir);
	snprintf(cfgpath, sizeof(cfgpath), "%s/c.yaml", dir);
	f = fopen(pepper_path, "w");
	if (f == NULL)
		goto out;
	fputs(pepper, f);
	fclose(f);
	chmod(pepper_path, 0600);
	snprintf(yaml, sizeof(yaml), "auth:\n  api_keys:\n    store: %s\n"
	    "    pepper: \"${file:%s}\"\n  failed_auth: {max_failures: "
	    "1000000}\n", path, pepper_path);
	f = fopen(cfgpath, "w");
	if (f == NULL)
		goto out;
	fputs(yaml, f);
	fclose(f);
	if (pc_config_load(cfgpath, &cfg, &errs) != 0) {
		pc_config_errors_print(&errs, stderr);
		goto out;
	}
	/* One key in the store, made as `portcullis keys create` makes it. */
	if (pc_store_open(path, &st, err, sizeof(err)) != 0 ||
	    pc_apikey_generate((const unsigned char *)cfg->auth.pepper,
	    cfg->auth.pepper_len, key, id, rec.hash) != 0)
		goto out;
	memcpy(rec.id, id, sizeof(rec.id));
	snprintf(rec.principal, sizeof(rec.principal), "bench");
	rec.created = time(NULL);
	if (pc_store_key_insert(st, &rec) != 0)
		goto out;
	pc_store_close(st);
	st = NULL;
	if (pc_authn_new(NULL, cfg, &a, err, sizeof(err)) != 0) {
		fprintf(stderr, "authn: %s\n", err);
		goto out;
	}
	snprintf(hdr, sizeof(hdr), "Bearer %s", key);
	snprintf(bad, sizeof(bad), "Bearer %s", key);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';

	for (int round = 0; round < 2; round++) {
		in.authorization = round == 0 ? hdr : bad;
		for (long i = 0; i < iters / 10; i++)	/* warm the cache */
			pc_authn_check(a, &in, time(NULL), &p, &res);
		double t0 = now_ns();
		for (long i = 0; i < iters; i++)
			pc_authn_check(a, &in, time(NULL), &p, &res);
		double t1 = now_ns();
		if ((round == 0) != (res.verdict == PC_AUTHN_OK)) {
			fprintf(stderr, "unexpected verdict %d (%s)\n",
			    res.verdict, res.reason ? res.reason : "");
			goto out;
		}
		printf("%-22s %8.0f ns per check (%ld checks)\n", round == 0 ?
		    "valid API key" : "wrong secret", (t1 - t0) / (double)iters,
		    iters);
	}
	rc = 0;
out:
	pc_authn_free(a);
	pc_store_close(st);
	pc_config_free(cfg);
	pc_config_errors_free(&errs);
	unlink(path);
	snprintf(path, sizeof(path), "%s/keys.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/keys.db-shm", dir);
	unlink(path);
	unlink(pepper_path);
	unlink(cfgpath);
	rmdir(dir);
	return rc;
}
