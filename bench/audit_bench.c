/*
 * Audit log throughput: N request records written through
 * pc_audit_queue_request() in group-commit mode, the way the gateway writes
 * an answered call's record: a batch of records per pass of the event
 * loop, each with a ready callback; the pass's records go out in one
 * write(2), the fsync timer hands each group to the module's worker thread
 * and the callbacks come back between batches. The clock stops when the
 * last callback has run and the log is closed (every record written and
 * synced). bench/run.sh runs it with the gateway-audit row (issue 5: at
 * least 100,000 records a second), and again with batches of 8 (about
 * what a pass of the gateway's loop holds under the bench's load) for the
 * writer's CPU per record.
 *
 *   build/bench/audit_bench [RECORDS] [BATCH] [DELAY_MS] [strict]
 *
 * Prints records/s, the process's CPU time per record (both threads),
 * fsyncs and bytes. Defaults: 200000 records, 256 per
 * loop turn, 10 ms group delay. The log goes to a temporary directory
 * (TMPDIR or /tmp), which is verified and removed afterwards.
 * With PC_AUDIT_BENCH_KEEP=DIR the log is written to DIR (created) and kept,
 * with the bench key in DIR.key: tests use it to check `portcullis audit
 * verify` on a real chain.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "audit/audit.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

static long durable_calls;
static int durable_errors;

static void
on_durable(void *arg, int rc)
{
	durable_calls++;
	if (rc != 0)
		durable_errors++;
}

/* User + system CPU of the whole process (loop and fsync worker), s. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[4096];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int
arg_u64(int argc, char **argv, int i, uint64_t def, uint64_t max, uint64_t *out)
{
	if (argc <= i) {
		*out = def;
		return 0;
	}
	return pc_parse_u64(argv[i], 1, max, out);
}

int
main(int argc, char **argv)
{
	static const unsigned char key[32] = "bench-key-0123456789abcdefghijk";
	const char *tmp = getenv("TMPDIR");
	char dir[512], err[512];
	const char *keep = getenv("PC_AUDIT_BENCH_KEEP");
	uint64_t n, batch, delay;
	struct pc_audit_conf conf = { 0 };
	struct pc_audit_stats st;
	struct pc_audit_verdict v;
	struct event_base *base;
	struct pc_audit *a = NULL;
	json_t *args;
	char **files = NULL;
	size_t nf = 0;
	double t0, t1, c0, c1;
	int rc = 1;

	if (arg_u64(argc, argv, 1, 200000, 100000000, &n) != 0 ||
	    arg_u64(argc, argv, 2, 256, 1000000, &batch) != 0 ||
	    (argc > 3 && pc_parse_u64(argv[3], 0, 1000, &delay) != 0)) {
		fprintf(stderr, "usage: audit_bench [RECORDS] [BATCH] "
		    "[DELAY_MS] [strict]\n");
		return 2;
	}
	if (argc <= 3)
		delay = PC_AUDIT_DEF_GROUP_DELAY_MS;
	pc_log_set_level(PC_LOG_WARN);
	if (keep != NULL) {
		char kp[4200];
		FILE *kf;
		snprintf(dir, sizeof(dir), "%s", keep);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return 2;
		snprintf(kp, sizeof(kp), "%s.key", dir);
		kf = fopen(kp, "w");
		if (kf == NULL || fwrite(key, 1, sizeof(key), kf) != sizeof(key))
			return 2;
		fclose(kf);
		chmod(kp, 0600);
	} else {
		snprintf(dir, sizeof(dir), "%s/pc-audit-bench-XXXXXX",
		    tmp != NULL ? tmp : "/tmp");
		if (mkdtemp(dir) == NULL)
			return 2;
	}
	base = event_base_new();
	conf.dir = dir;
	conf.key = key;
	conf.key_len = sizeof(key);
	conf.group_delay_ms = (uint32_t)delay;
	conf.fsync_mode = argc > 4 && strcmp(argv[4], "strict") == 0 ?
	    PC_AUDIT_FSYNC_STRICT : PC_AUDIT_FSYNC_GROUP;
	if (base == NULL || pc_audit_open(base, &conf, &a, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "audit_bench: %s\n", err);
		goto out;
	}
	/* A typical tools/call, arguments already redacted. */
	args = json_pack("{s:s,s:s,s:i}", "path", "/srv/data/report.csv",
	    "token", "[REDACTED]", "limit", 100);
	t0 = now_s();
	c0 = cpu_s();
	for (uint64_t i = 0; i < n;) {
		for (uint64_t b = 0; b < batch && i < n; b++, i++) {
			char rid[32];
			struct pc_audit_request r = {
				.request_id = rid, .principal = "ci-runner",
				.key_id = "5a7ab5e4d0265daf", .tenant = "acme",
				.source = "10.0.0.7", .session = NULL,
				.era = "2025-06-18", .upstream = "fs",
				.method = "tools/call", .tool = "fs__read_file",
				.args = args, .decision = "allow",
				.reason = "policy.allow", .status = "ok",
				.latency_us = 1834, .bytes_in = 212,
				.bytes_out = 4096,
			};
			snprintf(rid, sizeof(rid), "req-%llu",
			    (unsigned long long)i);
			if (pc_audit_queue_request(a, &r, on_durable,
			    NULL) != 0) {
				fprintf(stderr, "audit_bench: write: %s\n",
				    pc_audit_error(a) ? pc_audit_error(a) :
				    "refused");
				goto out;
			}
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	while (durable_calls < (long)n)
		event_base_loop(base, EVLOOP_ONCE);
	pc_audit_stats(a, &st);
	pc_audit_close(a);
	a = NULL;
	t1 = now_s();
	c1 = cpu_s();
	json_decref(args);
	printf("audit_bench: %llu records in %.3f s = %.0f records/s "
	    "(%s, batch %llu, delay %llu ms); cpu %.2f us/record; "
	    "%llu fsyncs, %.1f MiB, "
	    "%llu files, durable errors %d\n", (unsigned long long)n, t1 - t0,
	    (double)n / (t1 - t0),
	    conf.fsync_mode == PC_AUDIT_FSYNC_STRICT ?
	    "strict" : "group", (unsigned long long)batch,
	    (unsigned long long)delay, (c1 - c0) * 1e6 / (double)n, (unsigned long long)st.fsyncs,
	    (double)st.bytes / 1048576.0,
	    (unsigned long long)st.rotations + 1, durable_errors);
	t0 = now_s();
	if (pc_audit_list(dir, NULL, &files, &nf) == 0 &&
	    pc_audit_verify((const char *const *)files, nf, key, sizeof(key),
	    &v) == 0) {
		t1 = now_s();
		printf("audit_bench: verify %s, %llu records in %.3f s = %.0f "
		    "records/s\n", v.ok ? "ok" : v.reason,
		    (unsigned long long)v.records, t1 - t0,
		    (double)v.records / (t1 - t0));
		rc = v.ok && durable_errors == 0 ? 0 : 1;
	}
out:
	pc_audit_list_free(files, nf);
	pc_audit_close(a);
	if (base != NULL)
		event_base_free(base);
	if (keep == NULL)
		rm_dir(dir);
	return rc;
}
