/*
 * stdio_direct: the upstream's own ceiling, with no gateway in the way.
 *
 * Spawns the MCP server given after `--`, opens it (initialize and
 * notifications/initialized in legacy mode; nothing in modern mode, where
 * every request carries its own _meta) and keeps --concurrency tools/call
 * requests in flight over its stdin/stdout for --duration seconds. The
 * report has the same shape as loadgen's, so bench/run.sh can put the two
 * side by side: whatever the gateway loses against this row is the price
 * of the HTTP hop plus the gateway's own work.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Local limits, sized for the echo benchmark with room to spare. */
#define SD_MAX_INFLIGHT   4096
#define SD_SLOTS          65536u	/* send-time table; power of two */
#define SD_LINE_MAX       (16u << 20)	/* one answer line */
#define SD_WBUF_MAX       (1u << 20)	/* queued requests not yet written */
#define SD_TOOL_MAX       128
#define SD_ERRMSG_MAX     512
#define SD_INIT_TIMEOUT_NS (10ull * 1000000000ull)
#define SD_MAX_DURATION_S 3600

#define LEGACY_VERSION "2025-11-25"
#define MODERN_VERSION "2026-07-28"

/* ---- log-linear histogram, the same scheme as loadgen's ---- */
#define H_SUB_BITS 7
#define H_SUB      (1u << H_SUB_BITS)
#define H_N        ((64 - H_SUB_BITS) * H_SUB + H_SUB)

static uint64_t H[H_N], H_n, H_max, H_sum;

static unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * H_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - H_SUB_BITS;
	return (shift << H_SUB_BITS) + (unsigned)(v >> shift);
}

static uint64_t
hist_upper(unsigned idx)
{
	unsigned shift;
	uint64_t sub;

	if (idx < 2 * H_SUB)
		return idx;
	shift = (idx >> H_SUB_BITS) - 1;
	sub = idx - (shift << H_SUB_BITS);
	return ((sub + 1) << shift) - 1;
}

static void
hist_record(uint64_t v)
{
	H[hist_index(v)]++;
	H_n++;
	H_sum += v;
	if (v > H_max)
		H_max = v;
}

static uint64_t
hist_quantile(double q)
{
	uint64_t want, seen = 0;

	if (H_n == 0)
		return 0;
	want = (uint64_t)(q * (double)H_n + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_N; i++) {
		seen += H[i];
		if (seen >= want) {
			uint64_t u = hist_upper(i);
			return u < H_max ? u : H_max;
		}
	}
	return H_max;
}

/* ---- state ---- */

enum err_kind { E_JSONRPC, E_TOOL, E_ID, E_BAD, E_CLOSED, E_NKINDS };
static const char *const err_names[E_NKINDS] = {
	"jsonrpc_error", "tool_is_error", "id_mismatch", "bad_response",
	"closed_mid_request",
};

static struct {
	unsigned concurrency;
	double duration_s, warmup_s;
	bool modern, json;
	char tool[SD_TOOL_MAX];
	char **argv;
} O = { .concurrency = 16, .duration_s = 10, .warmup_s = 2, .tool = "echo" };

static uint64_t T_WARM, T_END;
static uint64_t slot_id[SD_SLOTS], slot_t[SD_SLOTS];
static uint64_t next_id, inflight, calls, errors[E_NKINDS];
static char first_err[SD_ERRMSG_MAX];
static char proto[32];
static char *wbuf;
static size_t wlen;
static int to_child = -1, from_child = -1;
static pid_t child;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
note_error(enum err_kind k, const char *detail, size_t dlen)
{
	size_t i, n;

	errors[k]++;
	if (first_err[0] != '\0')
		return;
	n = (size_t)snprintf(first_err, sizeof(first_err), "%s: ",
	    err_names[k]);
	for (i = 0; detail && i < dlen && n + 1 < sizeof(first_err); i++) {
		unsigned char ch = (unsigned char)detail[i];
		first_err[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
	}
	first_err[n] = '\0';
}

/* Queue one line for the child; written by flush_out. */
static int
queue_line(const char *s, size_t n)
{
	if (n + 1 > SD_WBUF_MAX - wlen)
		return -1;
	memcpy(wbuf + wlen, s, n);
	wbuf[wlen + n] = '\n';
	wlen += n + 1;
	return 0;
}

static int
flush_out(void)
{
	size_t off = 0;

	while (off < wlen) {
		ssize_t k = write(to_child, wbuf + off, wlen - off);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -1;
		}
		off += (size_t)k;
	}
	memmove(wbuf, wbuf + off, wlen - off);
	wlen -= off;
	return 0;
}

static int
send_call(void)
{
	char body[1024];
	uint64_t id = ++next_id;
	unsigned slot = (unsigned)(id & (SD_SLOTS - 1));
	int n;

	if (O.modern)
		n = snprintf(body, sizeof(body),
		    "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":"
		    "\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":"
		    "{\"text\":\"hello\"},\"_meta\":{"
		    "\"io.modelcontextprotocol/protocolVersion\":\""
		    MODERN_VERSION "\","
		    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
		    id, O.tool);
	else
		n = snprintf(body, sizeof(body),
		    "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":"
		    "\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":"
		    "{\"text\":\"hello\"}}}", id, O.tool);
	if (n < 0 || (size_t)n >= sizeof(body) || queue_line(body, (size_t)n))
		return -1;
	/* A slot still taken means an answer 65536 calls late: lost. */
	if (slot_id[slot] != 0) {
		note_error(E_ID, "answer never came", 17);
		inflight--;
	}
	slot_id[slot] = id;
	slot_t[slot] = now_ns();
	inflight++;
	return 0;
}

/* One line from the child. Returns 1 when it was a call's answer. */
static int
on_line(const char *line, size_t len, uint64_t t)
{
	json_t *m = json_loadb(line, len, 0, NULL), *id, *res;
	unsigned slot;
	uint64_t v;
	int rc = 0;

	if (m == NULL) {
		note_error(E_BAD, line, len < 200 ? len : 200);
		return 0;
	}
	id = json_object_get(m, "id");
	if (id == NULL) {
		/* A notification (log, progress): not an answer. */
		goto out;
	}
	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		note_error(E_ID, line, len < 200 ? len : 200);
		goto out;
	}
	v = (uint64_t)json_integer_value(id);
	slot = (unsigned)(v & (SD_SLOTS - 1));
	if (slot_id[slot] != v) {
		note_error(E_ID, line, len < 200 ? len : 200);
		goto out;
	}
	slot_id[slot] = 0;
	inflight--;
	rc = 1;
	res = json_object_get(m, "result");
	if (json_object_get(m, "error") != NULL || !json_is_object(res)) {
		note_error(E_JSONRPC, line, len < 200 ? len : 200);
		goto out;
	}
	if (json_is_true(json_object_get(res, "isError"))) {
		note_error(E_TOOL, line, len < 200 ? len : 200);
		goto out;
	}
	if (t >= T_WARM && t < T_END) {
		calls++;
		hist_record(t - slot_t[slot]);
	}
out:
	json_decref(m);
	return rc;
}

/* ---- child ---- */

static int
spawn_child(void)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	int rc = -1;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		goto out;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	rc = posix_spawnp(&child, O.argv[0], &fa, NULL, O.argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "stdio_direct: cannot run %s: %s\n", O.argv[0],
		    strerror(rc));
		rc = -1;
		goto out;
	}
	to_child = in[1];
	from_child = out[0];
	in[1] = out[0] = -1;
	fcntl(to_child, F_SETFL, O_NONBLOCK);
	fcntl(from_child, F_SETFL, O_NONBLOCK);
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return rc;
}

/* Close its stdin (the polite stop), then TERM, then KILL. */
static void
stop_child(void)
{
	int st;

	if (to_child >= 0)
		close(to_child);
	to_child = -1;
	for (int i = 0; i < 100; i++) {
		if (waitpid(child, &st, WNOHANG) == child)
			return;
		if (i == 50)
			kill(child, SIGTERM);
		usleep(20000);
	}
	kill(child, SIGKILL);
	waitpid(child, &st, 0);
}

/* ---- the loop ---- */

/*
 * Read what the child wrote and hand each complete line to on_line.
 * Returns -1 on EOF or a line over the limit.
 */
static char *rbuf;
static size_t rlen;

static int
pump_in(uint64_t *answers, bool *eof)
{
	size_t start = 0;
	ssize_t k;

	*eof = false;
	k = read(from_child, rbuf + rlen, SD_LINE_MAX - rlen);
	if (k == 0) {
		*eof = true;
		return -1;
	}
	if (k < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	rlen += (size_t)k;
	for (;;) {
		char *nl = memchr(rbuf + start, '\n', rlen - start);
		uint64_t t;
		if (nl == NULL)
			break;
		t = now_ns();
		if ((size_t)(nl - (rbuf + start)) > 0)
			*answers += (uint64_t)on_line(rbuf + start,
			    (size_t)(nl - (rbuf + start)), t);
		start = (size_t)(nl - rbuf) + 1;
	}
	memmove(rbuf, rbuf + start, rlen - start);
	rlen -= start;
	if (rlen == SD_LINE_MAX) {
		note_error(E_BAD, "line over limit", 15);
		return -1;
	}
	return 0;
}

static int
handshake(void)
{
	char line[512];
	uint64_t deadline = now_ns() + SD_INIT_TIMEOUT_NS;
	int n;

	n = snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"initialize\",\"params\":{\"protocolVersion\":\""
	    LEGACY_VERSION "\",\"capabilities\":{},\"clientInfo\":{\"name\":"
	    "\"portcullis-stdio-direct\",\"version\":\"1\"}}}");
	if (queue_line(line, (size_t)n) < 0 || flush_out() < 0)
		return -1;
	/* Wait for the answer to id 1, skipping notifications. */
	for (;;) {
		struct pollfd p = { .fd = from_child, .events = POLLIN };
		char *nl;
		ssize_t k;
		uint64_t t = now_ns();

		if (t >= deadline) {
			fprintf(stderr, "stdio_direct: no answer to initialize\n");
			return -1;
		}
		poll(&p, 1, 100);
		k = read(from_child, rbuf + rlen, SD_LINE_MAX - rlen);
		if (k == 0) {
			fprintf(stderr, "stdio_direct: server exited during "
			    "initialize\n");
			return -1;
		}
		if (k < 0)
			continue;
		rlen += (size_t)k;
		while ((nl = memchr(rbuf, '\n', rlen)) != NULL) {
			size_t len = (size_t)(nl - rbuf);
			json_t *m = json_loadb(rbuf, len, 0, NULL);
			json_t *id = json_object_get(m, "id");
			const char *v = json_string_value(json_object_get(
			    json_object_get(m, "result"), "protocolVersion"));
			bool done = json_is_integer(id) &&
			    json_integer_value(id) == 1;
			if (done && v != NULL && strlen(v) < sizeof(proto))
				memcpy(proto, v, strlen(v) + 1);
			json_decref(m);
			memmove(rbuf, nl + 1, rlen - len - 1);
			rlen -= len + 1;
			if (done) {
				if (proto[0] == '\0') {
					fprintf(stderr, "stdio_direct: "
					    "initialize failed\n");
					return -1;
				}
				n = snprintf(line, sizeof(line),
				    "{\"jsonrpc\":\"2.0\",\"method\":"
				    "\"notifications/initialized\"}");
				return queue_line(line, (size_t)n);
			}
		}
	}
}

static int
run(void)
{
	uint64_t answers = 0;

	if (!O.modern && handshake() < 0)
		return -1;
	if (O.modern)
		memcpy(proto, MODERN_VERSION, sizeof(MODERN_VERSION));
	next_id = 1;	/* id 1 was initialize */
	T_WARM = now_ns() + (uint64_t)(O.warmup_s * 1e9);
	T_END = T_WARM + (uint64_t)(O.duration_s * 1e9);
	for (unsigned i = 0; i < O.concurrency; i++)
		if (send_call() < 0)
			return -1;
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = from_child, .events = POLLIN },
			{ .fd = to_child, .events = wlen ? POLLOUT : 0 },
		};
		uint64_t t = now_ns(), before = answers;
		bool eof;

		if (t >= T_END)
			break;
		if (flush_out() < 0) {
			note_error(E_CLOSED, "write to server failed", 22);
			return -1;
		}
		poll(p, 2, (int)((T_END - t) / 1000000) + 1);
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
		    pump_in(&answers, &eof) < 0) {
			if (inflight > 0)
				note_error(E_CLOSED, "server closed stdout", 20);
			return -1;
		}
		/* Closed loop: one new call per answer, until the end. */
		if (now_ns() < T_END)
			for (uint64_t i = before; i < answers; i++)
				if (send_call() < 0)
					return -1;
	}
	return 0;
}

/* ---- command line and report ---- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: stdio_direct [options] -- COMMAND [ARGS...]\n"
	    "  --mode legacy|modern   legacy: initialize first (" LEGACY_VERSION
	    ");\n"
	    "                         modern: _meta on every call ("
	    MODERN_VERSION ")\n"
	    "  --concurrency N        calls kept in flight (default 16)\n"
	    "  --duration S           measured seconds (default 10)\n"
	    "  --warmup S             seconds run but not measured (default 2)\n"
	    "  --tool NAME            tool called with {\"text\":\"hello\"} "
	    "(default echo)\n"
	    "  --json                 one JSON object on stdout\n"
	    "Exit status: 0 when calls succeeded with no error, 1 otherwise, "
	    "2 on bad usage.\n");
}

static bool
parse_seconds(const char *s, double min, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= min) ||
	    v > SD_MAX_DURATION_S)
		return false;
	*out = v;
	return true;
}

static int
parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;
		unsigned long long v;

		if (strcmp(a, "--") == 0) {
			if (i + 1 >= argc)
				return -1;
			O.argv = argv + i + 1;
			return 0;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--json") == 0) {
			O.json = true;
			continue;
		}
		if (val == NULL)
			goto bad;
		i++;
		if (strcmp(a, "--mode") == 0) {
			if (strcmp(val, "modern") == 0)
				O.modern = true;
			else if (strcmp(val, "legacy") == 0)
				O.modern = false;
			else
				goto bad;
		} else if (strcmp(a, "--concurrency") == 0) {
			if (*val < '0' || *val > '9')
				goto bad;
			errno = 0;
			v = strtoull(val, &end, 10);
			if (errno != 0 || *end != '\0' || v < 1 ||
			    v > SD_MAX_INFLIGHT)
				goto bad;
			O.concurrency = (unsigned)v;
		} else if (strcmp(a, "--duration") == 0) {
			if (!parse_seconds(val, 0.1, &O.duration_s))
				goto bad;
		} else if (strcmp(a, "--warmup") == 0) {
			if (!parse_seconds(val, 0, &O.warmup_s))
				goto bad;
		} else if (strcmp(a, "--tool") == 0) {
			size_t n = strlen(val);
			if (n == 0 || n >= SD_TOOL_MAX || strspn(val,
			    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789_-./") != n)
				goto bad;
			memcpy(O.tool, val, n + 1);
		} else {
			goto bad;
		}
		continue;
bad:
		fprintf(stderr, "stdio_direct: bad option or value: %s\n", a);
		return -1;
	}
	fprintf(stderr, "stdio_direct: missing -- COMMAND\n");
	return -1;
}

static double
us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static double
cpu_s(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
report(void)
{
	uint64_t total = 0;
	double rate = (double)calls / O.duration_s;
	/* The child has been reaped by now, so RUSAGE_CHILDREN holds it. */
	double self = cpu_s(RUSAGE_SELF), up = cpu_s(RUSAGE_CHILDREN);

	for (int k = 0; k < E_NKINDS; k++)
		total += errors[k];
	if (O.json) {
		json_t *o = json_object(), *lat = json_object(),
		    *ek = json_object();
		char *s;
		for (int k = 0; k < E_NKINDS; k++)
			json_object_set_new(ek, err_names[k],
			    json_integer((json_int_t)errors[k]));
		json_object_set_new(lat, "p50", json_real(us(hist_quantile(.50))));
		json_object_set_new(lat, "p90", json_real(us(hist_quantile(.90))));
		json_object_set_new(lat, "p99", json_real(us(hist_quantile(.99))));
		json_object_set_new(lat, "p999", json_real(us(hist_quantile(.999))));
		json_object_set_new(lat, "max", json_real(us(H_max)));
		json_object_set_new(lat, "mean", json_real(H_n ?
		    us(H_sum / H_n) : 0));
		json_object_set_new(o, "command", json_string(O.argv[0]));
		json_object_set_new(o, "mode", json_string(O.modern ?
		    "modern" : "legacy"));
		json_object_set_new(o, "protocol_version", json_string(proto));
		json_object_set_new(o, "tool", json_string(O.tool));
		json_object_set_new(o, "concurrency", json_integer(O.concurrency));
		json_object_set_new(o, "duration_s", json_real(O.duration_s));
		json_object_set_new(o, "warmup_s", json_real(O.warmup_s));
		json_object_set_new(o, "calls", json_integer((json_int_t)calls));
		json_object_set_new(o, "calls_per_s", json_real(rate));
		json_object_set_new(o, "errors", json_integer((json_int_t)total));
		json_object_set_new(o, "errors_by_kind", ek);
		json_object_set_new(o, "first_error", json_string(first_err));
		json_object_set_new(o, "driver_cpu_s", json_real(self));
		json_object_set_new(o, "upstream_cpu_s", json_real(up));
		json_object_set_new(o, "latency_us", lat);
		s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
		if (s != NULL)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("stdio_direct: %s mode=%s proto=%s tool=%s "
		    "concurrency=%u\n", O.argv[0], O.modern ? "modern" :
		    "legacy", proto[0] ? proto : "-", O.tool, O.concurrency);
		printf("  window   %.2f s (after %.1f s warmup)\n",
		    O.duration_s, O.warmup_s);
		printf("  calls    %" PRIu64 " (%.1f calls/s)\n", calls, rate);
		printf("  latency  p50 %.1f us  p90 %.1f us  p99 %.1f us  "
		    "p99.9 %.1f us  max %.1f us\n", us(hist_quantile(.50)),
		    us(hist_quantile(.90)), us(hist_quantile(.99)),
		    us(hist_quantile(.999)), us(H_max));
		printf("  errors   %" PRIu64, total);
		for (int k = 0; k < E_NKINDS; k++)
			if (errors[k] != 0)
				printf(" %s=%" PRIu64, err_names[k], errors[k]);
		printf("\n");
		if (first_err[0] != '\0')
			printf("  first error: %s\n", first_err);
		printf("  cpu      driver %.2f s, upstream %.2f s\n", self, up);
	}
	fflush(stdout);
	return (total > 0 || calls == 0) ? 1 : 0;
}

int
main(int argc, char **argv)
{
	int rc;

	if (parse_args(argc, argv) < 0) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	wbuf = malloc(SD_WBUF_MAX);
	rbuf = malloc(SD_LINE_MAX);
	if (wbuf == NULL || rbuf == NULL || spawn_child() < 0)
		return 2;
	rc = run();
	stop_child();
	if (rc < 0 && calls == 0 && first_err[0] == '\0')
		note_error(E_CLOSED, "server failed", 13);
	rc = report();
	free(wbuf);
	free(rbuf);
	return rc;
}
