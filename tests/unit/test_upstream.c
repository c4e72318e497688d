/*
 * Tests of the stdio upstream supervisor against the real fixture server
 * (build/fixtures/mini_upstream, or $PC_FIXTURES_DIR/mini_upstream), on a
 * real libevent loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "upstream/upstream.h"

static char fixdir[PATH_MAX];
static char fixture[PATH_MAX + 32];

struct h {
	struct event_base *base;
	struct event *tick;
	struct pc_upstream_conf conf;
	char *argv[8];
	struct pc_upstream *up;
	int ready, down;
	int notes;
	char last_note[128];
	void *last_note_arg;
	int requests;
	void *last_req_arg;
	bool answer_requests;
};

struct res {
	bool done;
	int err;
	json_t *msg;
	int progress;
	uint64_t at_ms;
};

/* ---- harness ---------------------------------------------------------- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	/* keeps EVLOOP_ONCE from sleeping forever */
}

#define RUN_UNTIL(h, cond, ms) do {					\
	uint64_t dl_ = pc_now_ms() + (ms);				\
	while (!(cond) && pc_now_ms() < dl_)				\
		event_base_loop((h)->base, EVLOOP_ONCE);		\
} while (0)

static void
hk_ready(struct pc_upstream *up, void *arg)
{
	((struct h *)arg)->ready++;
}

static void
hk_down(struct pc_upstream *up, void *arg)
{
	((struct h *)arg)->down++;
}

static void
hk_note(struct pc_upstream *up, json_t *msg, void *call_arg, void *arg)
{
	struct h *h = arg;
	const char *m = json_string_value(json_object_get(msg, "method"));

	h->notes++;
	snprintf(h->last_note, sizeof(h->last_note), "%s", m ? m : "");
	h->last_note_arg = call_arg;
}

static void
hk_request(struct pc_upstream *up, json_t *msg, void *call_arg, void *arg)
{
	struct h *h = arg;
	json_t *result;

	h->requests++;
	h->last_req_arg = call_arg;
	result = json_pack("{s:s, s:{s:s}}", "action", "accept", "content",
	    "answer", "yes");
	assert_int_equal(pc_upstream_respond(up, json_object_get(msg, "id"),
	    result, NULL), 0);
	json_decref(result);
}

static const struct pc_upstream_hooks hooks = {
	.on_ready = hk_ready,
	.on_down = hk_down,
	.on_notification = hk_note,
	.on_request = hk_request,
};

/* argv: the fixture and up to 5 flags, NULL-terminated. */
static void
h_init(struct h *h, enum pc_era_pref era, ...)
{
	va_list ap;
	size_t n = 0;
	struct timeval tv = { 0, 10000 };

	memset(h, 0, sizeof(*h));
	h->base = event_base_new();
	assert_non_null(h->base);
	h->tick = event_new(h->base, -1, EV_PERSIST, on_tick, NULL);
	event_add(h->tick, &tv);
	h->argv[n++] = fixture;
	va_start(ap, era);
	for (char *a; (a = va_arg(ap, char *)) != NULL && n < 7;)
		h->argv[n++] = a;
	va_end(ap);
	h->argv[n] = NULL;
	h->conf.name = "t";
	h->conf.argv = h->argv;
	h->conf.argc = n;
	h->conf.era = era;
	h->conf.call_timeout_ms = 5000;
	h->conf.max_call_timeout_ms = 10000;
	h->conf.probe_timeout_ms = 2000;
	h->conf.init_timeout_ms = 2000;
	h->conf.shutdown_grace_ms = 500;
	h->conf.restart_min_ms = 20;
	h->conf.restart_max_ms = 200;
}

static void
h_new(struct h *h)
{
	assert_int_equal(pc_upstream_new(h->base, &h->conf, &hooks, h, &h->up),
	    0);
}

static void
h_start_ready(struct h *h)
{
	h_new(h);
	assert_int_equal(pc_upstream_start(h->up), 0);
	RUN_UNTIL(h, h->ready > 0, 5000);
	assert_int_equal(h->ready, 1);
	assert_int_equal(pc_upstream_state(h->up), PC_UP_READY);
}

static void
h_fini(struct h *h)
{
	pc_upstream_free(h->up);
	event_free(h->tick);
	event_base_free(h->base);
}

static void
on_reply(void *arg, int err, json_t *msg)
{
	struct res *r = arg;

	assert_false(r->done);	/* exactly once */
	r->done = true;
	r->err = err;
	r->msg = msg != NULL ? json_incref(msg) : NULL;
	r->at_ms = pc_now_ms();
}

static void
on_progress(void *arg, json_t *params)
{
	((struct res *)arg)->progress++;
}

static void
res_clear(struct res *r)
{
	json_decref(r->msg);
	memset(r, 0, sizeof(*r));
}

/* First content text of a tools/call response, or NULL. */
static const char *
res_text(const struct res *r)
{
	json_t *c = json_array_get(json_object_get(json_object_get(r->msg,
	    "result"), "content"), 0);

	return json_string_value(json_object_get(c, "text"));
}

static int
call_tool(struct h *h, const char *name, json_t *args, uint32_t timeout,
    bool progress, struct res *r, uint64_t *handle)
{
	json_t *params = json_pack("{s:s, s:o}", "name", name, "arguments",
	    args != NULL ? args : json_object());
	uint64_t hd = 0;
	int rc = pc_upstream_call(h->up, "tools/call", params, timeout,
	    on_reply, progress ? on_progress : NULL, r, &hd);

	json_decref(params);
	if (rc == 0)
		pc_upstream_set_owner(h->up, hd, r, 1);	/* a client's call */
	if (handle != NULL)
		*handle = hd;
	return rc;
}

static void
echo_ok(struct h *h, const char *text)
{
	struct res r = { 0 };

	assert_int_equal(call_tool(h, "echo", json_pack("{s:s}", "text", text),
	    0, false, &r, NULL), 0);
	RUN_UNTIL(h, r.done, 5000);
	assert_true(r.done);
	assert_int_equal(r.err, 0);
	assert_string_equal(res_text(&r), text);
	res_clear(&r);
}

/* Log capture: the logger writes to fd 2. */
static int saved_stderr = -1;
static char capture_path[] = "/tmp/pc_test_upstream_XXXXXX";

static void
capture_start(void)
{
	int fd = mkstemp(capture_path);

	assert_true(fd >= 0);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *
capture_stop(void)
{
	FILE *f;
	char *s;
	long n;

	dup2(saved_stderr, 2);
	close(saved_stderr);
	f = fopen(capture_path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(capture_path);
	memcpy(capture_path + strlen(capture_path) - 6, "XXXXXX", 6);
	return s;
}

static int
count_substr(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static bool
reaped(long pid)
{
	int st;

	return waitpid((pid_t)pid, &st, WNOHANG) < 0 && errno == ECHILD &&
	    kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_legacy_probe_fallback(void **state)
{
	struct h h;
	char *log;

	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	capture_start();
	h_start_ready(&h);
	log = capture_stop();
	assert_int_equal(pc_upstream_era(h.up), PC_UP_ERA_LEGACY);
	assert_string_equal(pc_upstream_protocol_version(h.up), "2025-11-25");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    pc_upstream_server_info(h.up), "serverInfo"), "name")),
	    "mini_upstream");
	assert_non_null(strstr(log, "falling back to initialize"));
	free(log);
	echo_ok(&h, "legacy");
	assert_int_equal(h.down, 0);
	h_fini(&h);
}

static void
test_modern_probe(void **state)
{
	struct h h;
	struct res r = { 0 };
	json_t *params;

	h_init(&h, PC_ERA_AUTO, "--era", "modern", NULL);
	h_start_ready(&h);
	assert_int_equal(pc_upstream_era(h.up), PC_UP_ERA_MODERN);
	assert_string_equal(pc_upstream_protocol_version(h.up), "2026-07-28");
	assert_non_null(json_object_get(pc_upstream_server_info(h.up),
	    "supportedVersions"));
	/* _meta is merged, not replaced: the caller's key survives, and
	 * the progress token and protocol fields are added. */
	params = json_pack("{s:s, s:{s:i}}", "name", "meta", "_meta", "keep",
	    7);
	assert_int_equal(pc_upstream_call(h.up, "tools/call", params, 0,
	    on_reply, on_progress, &r, NULL), 0);
	json_decref(params);
	RUN_UNTIL(&h, r.done, 5000);
	assert_int_equal(r.err, 0);
	assert_non_null(strstr(res_text(&r), "\"keep\":7"));
	assert_non_null(strstr(res_text(&r), "\"progressToken\":\"pc-"));
	assert_non_null(strstr(res_text(&r),
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\""));
	assert_non_null(strstr(res_text(&r),
	    "\"io.modelcontextprotocol/clientCapabilities\":{"));
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(r.msg, "result"), "resultType")), "complete");
	res_clear(&r);
	h_fini(&h);
}

static void
test_exit_on_unknown(void **state)
{
	struct h h;

	h_init(&h, PC_ERA_AUTO, "--exit-on-unknown", NULL);
	h_start_ready(&h);
	assert_int_equal(pc_upstream_era(h.up), PC_UP_ERA_LEGACY);
	assert_int_equal(h.down, 0);
	echo_ok(&h, "after respawn");
	h_fini(&h);
}

/* The same server printing a last word without a newline as it exits:
 * read as a last line, it is no JSON and is dropped. As a protocol error
 * it reset the handshake phase the restart reads, and the server was
 * probed to death at every start. */
static void
test_exit_on_unknown_last_words(void **state)
{
	struct h h;

	h_init(&h, PC_ERA_AUTO, "--exit-on-unknown", "--last-words",
	    "fatal: unknown method", NULL);
	h_start_ready(&h);
	assert_int_equal(pc_upstream_era(h.up), PC_UP_ERA_LEGACY);
	assert_int_equal(h.down, 0);
	echo_ok(&h, "after respawn");
	h_fini(&h);
}

/* A slow starter that dies of the probe it reads late: the probe timed
 * out, initialize followed, then the child read server/discover and
 * exited. Restarted at once with initialize first (not probed to death
 * on every start). */
static void
test_slow_start_probe_killed(void **state)
{
	struct h h;

	h_init(&h, PC_ERA_AUTO, "--exit-on-unknown", "--start-delay", "600",
	    NULL);
	h.conf.probe_timeout_ms = 200;
	h_new(&h);
	assert_int_equal(pc_upstream_start(h.up), 0);
	RUN_UNTIL(&h, h.ready > 0, 8000);
	assert_int_equal(h.ready, 1);
	assert_int_equal(pc_upstream_era(h.up), PC_UP_ERA_LEGACY);
	echo_ok(&h, "after a cold start");
	h_fini(&h);
}

static void
test_legacy_pinned_skips_probe(void **state)
{
	struct h h;

	/* --exit-on-unknown would kill the child if a probe were sent. */
	h_init(&h, PC_ERA_LEGACY, "--exit-on-unknown", NULL);
	h_start_ready(&h);
	long pid = pc_upstream_pid(h.up);
	echo_ok(&h, "x");
	assert_int_equal(pc_upstream_pid(h.up), pid);
	h_fini(&h);
}

static void
test_echo_and_inflight(void **state)
{
	struct h h;
	struct res r = { 0 };

	h_init(&h, PC_ERA_AUTO, NULL);
	assert_int_equal(pc_upstream_new(h.base, &h.conf, &hooks, &h, &h.up), 0);
	/* not started: unavailable */
	assert_int_equal(call_tool(&h, "echo", NULL, 0, false, &r, NULL),
	    PC_E_UNAVAIL);
	assert_int_equal(pc_upstream_start(h.up), 0);
	RUN_UNTIL(&h, h.ready > 0, 5000);
	assert_int_equal(pc_upstream_era(h.up), PC_UP_ERA_MODERN);
	assert_int_equal(call_tool(&h, "echo", json_pack("{s:s}", "text",
	    "hello"), 0, false, &r, NULL), 0);
	assert_int_equal(pc_upstream_inflight(h.up), 1);
	RUN_UNTIL(&h, r.done, 5000);
	assert_int_equal(r.err, 0);
	assert_string_equal(res_text(&r), "hello");
	assert_int_equal(pc_upstream_inflight(h.up), 0);
	res_clear(&r);
	h_fini(&h);
}

static int
count_done(const struct res *r, int n)
{
	int done = 0;

	for (int i = 0; i < n; i++)
		done += r[i].done;
	return done;
}

static void
test_concurrent_100(void **state)
{
	struct h h;
	struct res r[100];
	uint64_t handles[100];
	int done = 0;

	memset(r, 0, sizeof(r));
	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	h_start_ready(&h);
	for (int i = 0; i < 100; i++) {
		char t[16];
		snprintf(t, sizeof(t), "n-%d", i);
		/* every tenth waits a little, so answers come out of order */
		if (i % 10 == 0)
			assert_int_equal(call_tool(&h, "sleep", json_pack(
			    "{s:i}", "ms", 30 + i), 0, false, &r[i],
			    &handles[i]), 0);
		else
			assert_int_equal(call_tool(&h, "echo", json_pack(
			    "{s:s}", "text", t), 0, false, &r[i],
			    &handles[i]), 0);
		for (int j = 0; j < i; j++)
			assert_true(handles[j] != handles[i]);
	}
	assert_int_equal(pc_upstream_inflight(h.up), 100);
	RUN_UNTIL(&h, (done = count_done(r, 100)) == 100, 5000);
	assert_int_equal(done, 100);
	for (int i = 0; i < 100; i++) {
		char t[32];
		assert_true(r[i].done);
		assert_int_equal(r[i].err, 0);
		if (i % 10 == 0)
			snprintf(t, sizeof(t), "slept %d ms", 30 + i);
		else
			snprintf(t, sizeof(t), "n-%d", i);
		assert_string_equal(res_text(&r[i]), t);
		res_clear(&r[i]);
	}
	h_fini(&h);
}

static void
test_timeout_hang(void **state)
{
	struct h h;
	struct res r = { 0 };
	uint64_t t0;

	h_init(&h, PC_ERA_AUTO, NULL);
	h_start_ready(&h);
	long pid = pc_upstream_pid(h.up);
	t0 = pc_now_ms();
	assert_int_equal(call_tool(&h, "hang", NULL, 100, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_true(r.done);
	assert_int_equal(r.err, PC_E_TIMEOUT);
	assert_null(r.msg);
	assert_true(r.at_ms - t0 >= 90);
	res_clear(&r);
	/* still the same, usable child */
	assert_int_equal(pc_upstream_pid(h.up), pid);
	echo_ok(&h, "still alive");
	assert_int_equal(h.down, 0);
	h_fini(&h);
}

static void
test_cancel(void **state)
{
	struct h h;
	struct res r = { 0 };
	uint64_t handle;

	h_init(&h, PC_ERA_AUTO, NULL);
	h_start_ready(&h);
	assert_int_equal(call_tool(&h, "sleep", json_pack("{s:i}", "ms", 50),
	    0, false, &r, &handle), 0);
	pc_upstream_cancel(h.up, handle, "user");
	pc_upstream_cancel(h.up, 999999, "unknown handle is ignored");
	assert_int_equal(pc_upstream_inflight(h.up), 0);
	RUN_UNTIL(&h, false, 150);
	assert_false(r.done);	/* no reply after cancel */
	echo_ok(&h, "after cancel");
	h_fini(&h);
}

static void
test_crash_restart(void **state)
{
	struct h h;
	struct res r = { 0 }, r2 = { 0 };

	h_init(&h, PC_ERA_AUTO, NULL);
	h_start_ready(&h);
	long pid = pc_upstream_pid(h.up);
	assert_int_equal(call_tool(&h, "crash", NULL, 0, false, &r, NULL), 0);
	assert_int_equal(call_tool(&h, "hang", NULL, 0, false, &r2, NULL), 0);
	RUN_UNTIL(&h, r.done && r2.done, 3000);
	assert_int_equal(r.err, PC_E_UNAVAIL);
	assert_int_equal(r2.err, PC_E_UNAVAIL);
	assert_int_equal(h.down, 1);
	assert_true(reaped(pid));
	RUN_UNTIL(&h, h.ready == 2, 3000);
	assert_int_equal(h.ready, 2);
	assert_true(pc_upstream_pid(h.up) != pid);
	echo_ok(&h, "reborn");
	res_clear(&r);
	res_clear(&r2);
	h_fini(&h);
}

/* Call a tool that makes the child misbehave: the call fails, the log
 * (captured until the child is ready again, or ms passed) says `why`, and
 * the next call, echoing `after`, works. */
static void
refused_then_restarted(struct h *h, const char *tool, json_t *args,
    uint32_t ms, const char *why, const char *after)
{
	struct res r = { 0 };
	char *log;

	capture_start();
	assert_int_equal(call_tool(h, tool, args, 0, false, &r, NULL), 0);
	RUN_UNTIL(h, r.done && h->ready == 2, ms);
	log = capture_stop();
	assert_int_equal(r.err, PC_E_UNAVAIL);
	assert_non_null(strstr(log, why));
	free(log);
	echo_ok(h, after);
	res_clear(&r);
}

static void
test_garbage_restart(void **state)
{
	struct h h;

	h_init(&h, PC_ERA_AUTO, NULL);
	h_start_ready(&h);
	refused_then_restarted(&h, "garbage", NULL, 3000,
	    "upstream 't': protocol error", "after garbage");
	assert_int_equal(h.down, 1);
	assert_int_equal(h.ready, 2);
	h_fini(&h);
}

static void
test_line_cap(void **state)
{
	struct h h;
	struct res r = { 0 };
	char big[300];

	h_init(&h, PC_ERA_LEGACY, NULL);
	h.conf.max_line_bytes = 256;
	h_start_ready(&h);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(call_tool(&h, "echo", json_pack("{s:s}", "text", big),
	    0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, PC_E_UNAVAIL);
	RUN_UNTIL(&h, h.ready == 2, 3000);
	echo_ok(&h, "short");
	res_clear(&r);
	h_fini(&h);
}

static void
test_progress_extends_and_max(void **state)
{
	struct h h;
	struct res r = { 0 };
	uint64_t t0;

	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	h.conf.max_call_timeout_ms = 400;
	h_start_ready(&h);
	/* 6 steps 60 ms apart: 360 ms in all, past the 150 ms timeout, but
	 * each progress pushes the deadline. */
	assert_int_equal(call_tool(&h, "progress", json_pack("{s:i, s:i}",
	    "steps", 6, "ms", 60), 150, true, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.progress, 6);
	assert_string_equal(res_text(&r), "progress done");
	res_clear(&r);
	/* without a progress callback, the same call times out */
	assert_int_equal(call_tool(&h, "progress", json_pack("{s:i, s:i}",
	    "steps", 6, "ms", 60), 150, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, PC_E_TIMEOUT);
	res_clear(&r);
	/* progress forever: the hard maximum (400 ms) still fires */
	t0 = pc_now_ms();
	assert_int_equal(call_tool(&h, "progress", json_pack("{s:i, s:i}",
	    "steps", 100, "ms", 50), 150, true, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, PC_E_TIMEOUT);
	assert_true(r.progress >= 3);
	assert_true(r.at_ms - t0 >= 390);
	assert_true(r.at_ms - t0 < 1000);
	res_clear(&r);
	h_fini(&h);
}

static void
test_clean_env_and_path_search(void **state)
{
	struct h h;
	struct res r = { 0 };
	char pathvar[PATH_MAX + 32];
	char *env[3];
	char *inherit[] = { "PC_TEST_INHERIT", "PC_TEST_NOT_SET", NULL };
	const char *text;

	setenv("PC_TEST_CANARY", "must-not-leak", 1);
	setenv("PC_TEST_INHERIT", "yes", 1);
	unsetenv("PC_TEST_NOT_SET");
	snprintf(pathvar, sizeof(pathvar), "PATH=/nonexistent:%s", fixdir);
	env[0] = "FOO=bar";
	env[1] = pathvar;
	env[2] = NULL;
	h_init(&h, PC_ERA_AUTO, NULL);
	h.argv[0] = "mini_upstream";	/* found via the child's PATH */
	h.conf.env = env;
	h.conf.nenv = 2;
	h.conf.inherit_env = inherit;
	h.conf.ninherit = 2;
	h.conf.cwd = "/";
	h_start_ready(&h);
	assert_int_equal(call_tool(&h, "env", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, 0);
	text = res_text(&r);
	assert_non_null(text);
	assert_null(strstr(text, "PC_TEST_CANARY"));
	assert_null(strstr(text, "must-not-leak"));
	assert_non_null(strstr(text, "FOO=bar\n"));
	assert_non_null(strstr(text, "PC_TEST_INHERIT=yes\n"));
	assert_non_null(strstr(text, pathvar));
	assert_int_equal(count_substr(text, "\n"), 3);	/* nothing else */
	res_clear(&r);
	unsetenv("PC_TEST_CANARY");
	unsetenv("PC_TEST_INHERIT");
	h_fini(&h);
}

static void
test_missing_command(void **state)
{
	struct h h;
	char *log;
	char *env[] = { "PATH=/nonexistent", NULL };

	h_init(&h, PC_ERA_AUTO, NULL);
	h.argv[0] = "/nonexistent/prog";
	h_new(&h);
	capture_start();
	assert_int_equal(pc_upstream_start(h.up), PC_E_SPAWN);
	assert_int_equal(pc_upstream_state(h.up), PC_UP_BACKOFF);
	/* restart_min 20 ms doubling: several attempts in 300 ms */
	RUN_UNTIL(&h, false, 300);
	log = capture_stop();
	assert_non_null(strstr(log, "upstream 't': cannot execute "
	    "'/nonexistent/prog': No such file or directory"));
	assert_true(count_substr(log, "cannot execute") >= 3);
	assert_int_equal(pc_upstream_pid(h.up), 0);
	assert_int_equal(h.ready, 0);
	free(log);
	h_fini(&h);

	/* a bare name not found in the child's PATH */
	h_init(&h, PC_ERA_AUTO, NULL);
	h.argv[0] = "mini_upstream";
	h.conf.env = env;
	h_new(&h);
	capture_start();
	assert_int_equal(pc_upstream_start(h.up), PC_E_SPAWN);
	log = capture_stop();
	assert_non_null(strstr(log, "cannot execute 'mini_upstream'"));
	free(log);
	h_fini(&h);

	/* Empty and relative PATH elements are not the working directory:
	 * a program there (here the fixture itself, cwd its directory) is
	 * not run in place of one the PATH names. */
	char *dot_env[] = { "PATH=:/nonexistent::.:bin", NULL };
	h_init(&h, PC_ERA_AUTO, NULL);
	h.argv[0] = "mini_upstream";
	h.conf.env = dot_env;
	h.conf.nenv = 1;
	h.conf.cwd = fixdir;
	h_new(&h);
	capture_start();
	assert_int_equal(pc_upstream_start(h.up), PC_E_SPAWN);
	log = capture_stop();
	assert_non_null(strstr(log, "cannot execute 'mini_upstream'"));
	free(log);
	h_fini(&h);
}

static bool sd_done_flag;

static void
on_sd_done(void *arg)
{
	sd_done_flag = true;
}

static void
test_shutdown_drains_and_reaps(void **state)
{
	struct h h;
	struct res r = { 0 }, r2 = { 0 };

	h_init(&h, PC_ERA_AUTO, NULL);
	h_start_ready(&h);
	long pid = pc_upstream_pid(h.up);
	assert_int_equal(call_tool(&h, "sleep", json_pack("{s:i}", "ms", 80),
	    0, false, &r, NULL), 0);
	sd_done_flag = false;
	pc_upstream_shutdown(h.up, on_sd_done, NULL);
	assert_int_equal(pc_upstream_state(h.up), PC_UP_STOPPING);
	assert_int_equal(call_tool(&h, "echo", NULL, 0, false, &r2, NULL),
	    PC_E_CLOSED);
	RUN_UNTIL(&h, sd_done_flag, 3000);
	assert_true(sd_done_flag);
	assert_true(r.done);
	assert_int_equal(r.err, 0);	/* finished within the grace */
	assert_int_equal(pc_upstream_state(h.up), PC_UP_STOPPED);
	assert_int_equal(pc_upstream_pid(h.up), 0);
	assert_true(reaped(pid));
	assert_int_equal(h.down, 0);
	res_clear(&r);
	h_fini(&h);
}

static void
test_shutdown_grace_expires(void **state)
{
	struct h h;
	struct res r = { 0 };

	h_init(&h, PC_ERA_AUTO, NULL);
	h.conf.shutdown_grace_ms = 100;
	h_start_ready(&h);
	long pid = pc_upstream_pid(h.up);
	assert_int_equal(call_tool(&h, "hang", NULL, 0, false, &r, NULL), 0);
	sd_done_flag = false;
	pc_upstream_shutdown(h.up, on_sd_done, NULL);
	RUN_UNTIL(&h, sd_done_flag, 3000);
	assert_true(sd_done_flag);
	assert_int_equal(r.err, PC_E_CLOSED);
	assert_true(reaped(pid));
	h_fini(&h);
}

static void
test_shutdown_escalates_to_kill(void **state)
{
	struct h h;
	uint64_t t0;

	/* A child that ignores stdin EOF and SIGTERM (SIG_IGN is inherited
	 * by its sleeps): only SIGKILL to the group ends it. It never
	 * answers initialize, so this also covers shutdown while STARTING. */
	h_init(&h, PC_ERA_LEGACY, NULL);
	h.argv[0] = "/bin/sh";
	h.argv[1] = "-c";
	h.argv[2] = "trap '' TERM; while :; do sleep 0.05; done";
	h.argv[3] = NULL;
	h.conf.shutdown_grace_ms = 100;
	h_new(&h);
	assert_int_equal(pc_upstream_start(h.up), 0);
	long pid = pc_upstream_pid(h.up);
	assert_true(pid > 0);
	RUN_UNTIL(&h, false, 100);
	sd_done_flag = false;
	t0 = pc_now_ms();
	pc_upstream_shutdown(h.up, on_sd_done, NULL);
	RUN_UNTIL(&h, sd_done_flag, 3000);
	assert_true(sd_done_flag);
	assert_true(pc_now_ms() - t0 >= 190);	/* stdin grace + TERM grace */
	assert_true(reaped(pid));
	assert_int_equal(h.ready, 0);
	h_fini(&h);
}

static void
test_no_fd_leak_no_zombie(void **state)
{
	struct h h;
	struct event_base *b;
	int before;

	/* The base's own descriptors are opened before counting. */
	h_init(&h, PC_ERA_AUTO, NULL);
	b = h.base;
	before = count_fds();
	h_start_ready(&h);
	echo_ok(&h, "x");
	long pid = pc_upstream_pid(h.up);
	/* free with a live child: SIGKILL + reap */
	pc_upstream_free(h.up);
	h.up = NULL;
	assert_true(reaped(pid));
	assert_int_equal(count_fds(), before);

	/* a full shutdown cycle after a crash/restart */
	h.ready = 0;
	h_start_ready(&h);
	struct res r = { 0 };
	assert_int_equal(call_tool(&h, "crash", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, h.ready == 2, 3000);
	pid = pc_upstream_pid(h.up);
	sd_done_flag = false;
	pc_upstream_shutdown(h.up, on_sd_done, NULL);
	RUN_UNTIL(&h, sd_done_flag, 3000);
	assert_true(sd_done_flag);
	assert_true(reaped(pid));
	pc_upstream_free(h.up);
	h.up = NULL;
	assert_int_equal(count_fds(), before);
	assert_ptr_equal(h.base, b);
	h_fini(&h);
}

static void
test_elicitation_roundtrip(void **state)
{
	struct h h;
	struct res r = { 0 };

	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	h_start_ready(&h);
	assert_int_equal(call_tool(&h, "elicit", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, 0);
	assert_int_equal(h.requests, 1);
	assert_ptr_equal(h.last_req_arg, &r);	/* attributed */
	assert_string_equal(res_text(&r), "{\"answer\":\"yes\"}");
	res_clear(&r);
	h_fini(&h);
}

static void
test_child_ping_and_default_request_answer(void **state)
{
	struct h h;
	struct res r = { 0 };
	struct pc_upstream_hooks no_req = hooks;

	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	h_start_ready(&h);
	/* the supervisor answers a child's ping itself */
	assert_int_equal(call_tool(&h, "ping_client", NULL, 0, false, &r,
	    NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, 0);
	assert_string_equal(res_text(&r), "pong");
	assert_int_equal(h.requests, 0);
	res_clear(&r);
	h_fini(&h);

	/* without on_request, a child request gets -32601 */
	no_req.on_request = NULL;
	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	assert_int_equal(pc_upstream_new(h.base, &h.conf, &no_req, &h, &h.up),
	    0);
	assert_int_equal(pc_upstream_start(h.up), 0);
	RUN_UNTIL(&h, h.ready > 0, 5000);
	assert_int_equal(call_tool(&h, "elicit", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(r.err, 0);
	assert_string_equal(res_text(&r), "error");
	res_clear(&r);
	h_fini(&h);
}

/* The gateway's own call (no owner: a catalogue page) in flight besides a
 * client's: a log line goes to the client's call; alone, to nobody — the
 * hook must never get the gateway's callback argument as a client call. */
static void
test_attribution_skips_own_calls(void **state)
{
	struct h h;
	struct res r = { 0 }, own = { 0 };
	json_t *p = json_pack("{s:s, s:{}}", "name", "log", "arguments");

	(void)state;
	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	h_start_ready(&h);
	assert_int_equal(pc_upstream_call(h.up, "tools/call", p, 0, on_reply,
	    NULL, &own, NULL), 0);
	RUN_UNTIL(&h, own.done, 3000);
	assert_int_equal(h.notes, 1);
	assert_null(h.last_note_arg);		/* not &own */
	res_clear(&own);
	json_decref(p);
	p = json_pack("{s:s, s:{}}", "name", "hang", "arguments");
	assert_int_equal(pc_upstream_call(h.up, "tools/call", p, 0, on_reply,
	    NULL, &own, NULL), 0);
	json_decref(p);
	assert_int_equal(call_tool(&h, "log", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(h.notes, 2);
	assert_ptr_equal(h.last_note_arg, &r);
	res_clear(&r);
	h_fini(&h);
	res_clear(&own);
}

static void
test_notifications(void **state)
{
	struct h h;
	struct res r = { 0 }, r2 = { 0 };

	h_init(&h, PC_ERA_AUTO, "--era", "legacy", NULL);
	h_start_ready(&h);
	/* sent before the answer, one call in flight: attributed */
	assert_int_equal(call_tool(&h, "log", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(h.notes, 1);
	assert_string_equal(h.last_note, "notifications/message");
	assert_ptr_equal(h.last_note_arg, &r);
	res_clear(&r);
	/* two calls in flight: attribution is unknown */
	assert_int_equal(call_tool(&h, "hang", NULL, 0, false, &r2, NULL), 0);
	assert_int_equal(call_tool(&h, "log", NULL, 0, false, &r, NULL), 0);
	RUN_UNTIL(&h, r.done, 3000);
	assert_int_equal(h.notes, 2);
	assert_null(h.last_note_arg);
	res_clear(&r);
	/* list_changed reaches the hook */
	assert_int_equal(call_tool(&h, "list_changed", NULL, 0, false, &r,
	    NULL), 0);
	RUN_UNTIL(&h, h.notes == 3, 3000);
	assert_string_equal(h.last_note, "notifications/tools/list_changed");
	res_clear(&r);
	h_fini(&h);
}

static void
test_stderr_forwarded(void **state)
{
	struct h h;
	char *log;

	h_init(&h, PC_ERA_AUTO, "--stderr-spam", "3", NULL);
	capture_start();
	h_start_ready(&h);
	echo_ok(&h, "x");
	RUN_UNTIL(&h, false, 50);
	log = capture_stop();
	assert_non_null(strstr(log, "\"msg\":\"mini_upstream ready\""));
	assert_int_equal(count_substr(log, "\"stream\":\"stderr\""), 4);
	assert_non_null(strstr(log, "\"upstream\":\"t\""));
	free(log);
	h_fini(&h);
}

/* A child that floods stderr (5,000 lines at once, and blank lines) gets
 * a bounded number of log lines: the burst, then a count of what was held
 * back once the rate allows; blank lines are no lines (and no crash: an
 * empty line is a NULL pullup). */
static void
test_stderr_flood_bounded(void **state)
{
	struct h h;
	char *log;
	size_t n;

	uint64_t t0, secs;

	h_init(&h, PC_ERA_AUTO, "--stderr-spam", "5000", "--stderr-blank",
	    "100", NULL);
	t0 = pc_now_ms();
	capture_start();
	h_start_ready(&h);
	echo_ok(&h, "x");
	RUN_UNTIL(&h, false, 300);
	log = capture_stop();
	secs = (pc_now_ms() - t0) / 1000 + 1;
	n = count_substr(log, "\"stream\":\"stderr\"");
	free(log);
	/* The burst (UP_LOG_BURST), plus what the rate (UP_LOG_RATE a
	 * second) allowed while the lines came in (slow on a loaded
	 * machine), plus "ready"; far below 5,000. */
	assert_true(n >= 1000);
	assert_true(n <= 1000 + 200 * secs + 5);
	assert_true(n < 5000);
	h_fini(&h);
}

/* One answer line of 70,000 empty objects (210 KB, under the 1 MiB line
 * cap) would cost jansson about 17 MB: past the cap's 65,536 values (one
 * per 16 bytes, at least 65,536), refused before it is built, as a
 * protocol error of that child, which is restarted. */
static void
test_value_bomb_refused(void **state)
{
	struct h h;

	h_init(&h, PC_ERA_AUTO, NULL);
	h.conf.max_line_bytes = 1024 * 1024;
	h_start_ready(&h);
	refused_then_restarted(&h, "bomb", json_pack("{s:i}", "n", 70000), 5000,
	    "protocol error: more than 65536 values", "after the bomb");
	h_fini(&h);
}

/* A child that stops reading its stdin: once 64 MiB wait for it, the call
 * that finds the queue full is refused and the child restarted (it would
 * be "saturated" for ever); the next calls work. */
static void
test_deaf_child_restarted(void **state)
{
	struct h h;
	struct res deaf = { 0 }, r[80];
	char *big = malloc(1024 * 1024 + 1);
	int rc = 0, i;

	assert_non_null(big);
	memset(big, 'a', 1024 * 1024);
	big[1024 * 1024] = '\0';
	memset(r, 0, sizeof(r));
	h_init(&h, PC_ERA_AUTO, NULL);
	h.conf.call_timeout_ms = 30000;
	h.conf.max_call_timeout_ms = 30000;
	h_start_ready(&h);
	assert_int_equal(call_tool(&h, "deaf", NULL, 0, false, &deaf, NULL), 0);
	RUN_UNTIL(&h, false, 200);
	for (i = 0; i < 80 && rc == 0; i++) {
		rc = call_tool(&h, "echo", json_pack("{s:s}", "text", big), 0,
		    false, &r[i], NULL);
		RUN_UNTIL(&h, false, 5);	/* let the loop write */
	}
	free(big);
	assert_int_equal(rc, PC_E_LIMIT);
	assert_true(i > 60);		/* about 64 MiB were queued first */
	RUN_UNTIL(&h, h.ready == 2, 5000);
	assert_int_equal(h.ready, 2);
	assert_int_equal(deaf.err, PC_E_UNAVAIL);
	echo_ok(&h, "hears again");
	res_clear(&deaf);
	for (int k = 0; k < i; k++)
		res_clear(&r[k]);
	h_fini(&h);
}

static void
test_modern_pinned_refuses_legacy(void **state)
{
	struct h h;
	char *log;

	h_init(&h, PC_ERA_MODERN, "--era", "legacy", NULL);
	h_new(&h);
	capture_start();
	assert_int_equal(pc_upstream_start(h.up), 0);
	RUN_UNTIL(&h, false, 200);
	log = capture_stop();
	assert_int_equal(h.ready, 0);
	assert_non_null(strstr(log, "era is pinned to modern"));
	free(log);
	h_fini(&h);
}

static struct h *free_h;
static int free_err;

static void
reply_and_free(void *arg, int err, json_t *msg)
{
	free_err = err;
	pc_upstream_free(free_h->up);	/* deferred: we are inside it */
	free_h->up = NULL;
}

static void
test_free_inside_callback(void **state)
{
	struct h h;
	json_t *params;

	h_init(&h, PC_ERA_AUTO, NULL);
	h_start_ready(&h);
	long pid = pc_upstream_pid(h.up);
	free_h = &h;
	free_err = 1;
	params = json_pack("{s:s}", "name", "crash");
	assert_int_equal(pc_upstream_call(h.up, "tools/call", params, 0,
	    reply_and_free, NULL, NULL, NULL), 0);
	json_decref(params);
	RUN_UNTIL(&h, h.up == NULL, 3000);
	assert_null(h.up);
	assert_int_equal(free_err, PC_E_UNAVAIL);
	assert_int_equal(h.down, 0);	/* no hook after free */
	assert_true(reaped(pid));
	RUN_UNTIL(&h, false, 50);	/* nothing fires on freed memory */
	h_fini(&h);
}

int
main(void)
{
	const char *dir = getenv("PC_FIXTURES_DIR");

	if (dir == NULL)
		dir = "build/fixtures";
	if (realpath(dir, fixdir) == NULL) {
		fprintf(stderr, "fixtures dir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(fixture, sizeof(fixture), "%s/mini_upstream", fixdir);
	if (access(fixture, X_OK) != 0) {
		fprintf(stderr, "%s missing: make build/fixtures/mini_upstream\n",
		    fixture);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_legacy_probe_fallback),
		cmocka_unit_test(test_modern_probe),
		cmocka_unit_test(test_exit_on_unknown),
		cmocka_unit_test(test_exit_on_unknown_last_words),
		cmocka_unit_test(test_slow_start_probe_killed),
		cmocka_unit_test(test_legacy_pinned_skips_probe),
		cmocka_unit_test(test_echo_and_inflight),
		cmocka_unit_test(test_concurrent_100),
		cmocka_unit_test(test_timeout_hang),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_crash_restart),
		cmocka_unit_test(test_garbage_restart),
		cmocka_unit_test(test_line_cap),
		cmocka_unit_test(test_progress_extends_and_max),
		cmocka_unit_test(test_clean_env_and_path_search),
		cmocka_unit_test(test_missing_command),
		cmocka_unit_test(test_shutdown_drains_and_reaps),
		cmocka_unit_test(test_shutdown_grace_expires),
		cmocka_unit_test(test_shutdown_escalates_to_kill),
		cmocka_unit_test(test_no_fd_leak_no_zombie),
		cmocka_unit_test(test_elicitation_roundtrip),
		cmocka_unit_test(test_child_ping_and_default_request_answer),
		cmocka_unit_test(test_notifications),
		cmocka_unit_test(test_attribution_skips_own_calls),
		cmocka_unit_test(test_stderr_forwarded),
		cmocka_unit_test(test_stderr_flood_bounded),
		cmocka_unit_test(test_value_bomb_refused),
		cmocka_unit_test(test_deaf_child_restarted),
		cmocka_unit_test(test_modern_pinned_refuses_legacy),
		cmocka_unit_test(test_free_inside_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
