/*
 * The audit log's syslog sink, against real sockets the test binds: a unix
 * datagram socket (as /dev/log) and a TCP listener on 127.0.0.1. Every
 * record of the file arrives, in order, as an RFC 5424 message whose MSG is
 * the file's line byte for byte; TCP frames are octet-counted (RFC 6587).
 * A receiver that goes away costs dropped (counted) records, never the
 * log's health; one that comes back gets records again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "audit/audit.h"
#include "lib/errors.h"
#include "lib/log.h"

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcdef";
#define BOM "\xef\xbb\xbf"

struct t {
	char dir[64];
	char sock[96];
	struct event_base *base;
	char *lines[64];	/* the file's lines, without '\n' */
	size_t nlines;
};

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/pc_sl_XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->sock, sizeof(t->sock), "%s/log.sock", t->dir);
	t->base = event_base_new();
	pc_log_set_level(PC_LOG_ERROR);
	*state = t;
	return t->base != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	struct t *t = *state;
	DIR *d = opendir(t->dir);
	struct dirent *de;
	char p[PATH_MAX];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name);
		unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(t->dir);
	for (size_t i = 0; i < t->nlines; i++)
		free(t->lines[i]);
	event_base_free(t->base);
	free(t);
	return 0;
}

static int
bind_dgram(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	return fd;
}

static struct pc_audit *
open_with(struct t *t, const struct pc_audit_syslog_conf *sc)
{
	struct pc_audit_conf c = {
		.dir = t->dir, .key = KEY, .key_len = sizeof(KEY),
		.group_delay_ms = 0, .syslog = sc,
	};
	struct pc_audit *a = NULL;
	char err[256];

	if (pc_audit_open(t->base, &c, &a, err, sizeof(err)) != 0)
		fail_msg("open: %s", err);
	return a;
}

/* A request with a canary under a secret's key, redacted as the gateway
 * does before the record is built. */
static void
write_requests(struct pc_audit *a, int n, const char *decision)
{
	json_t *args = json_pack("{s:s, s:s}", "path", "/srv/x", "api_key",
	    "<redacted>");

	for (int i = 0; i < n; i++) {
		struct pc_audit_request r = {
			.principal = "alice", .source = "127.0.0.1",
			.era = "modern", .method = "tools/call",
			.tool = "fs__read", .args = args, .decision = decision,
			.status = "ok", .latency_us = 10, .bytes_in = 20,
			.bytes_out = -1,
		};
		assert_int_equal(pc_audit_write_request(a, &r, NULL, NULL), 0);
	}
	json_decref(args);
}

static void
read_file_lines(struct t *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *de;
	char p[PATH_MAX], line[8192];
	FILE *f = NULL;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".jsonl") == NULL)
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name);
		f = fopen(p, "r");
		break;
	}
	closedir(d);
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL && t->nlines < 64) {
		line[strcspn(line, "\n")] = '\0';
		t->lines[t->nlines++] = strdup(line);
	}
	fclose(f);
}

/*
 * Check one RFC 5424 message: <PRI>1 TS HOST portcullis PROCID MSGID - BOM
 * MSG, where MSG must be `line`, TS its "ts" and MSGID its "type".
 */
static void
check_message(const char *m, size_t len, const char *line, int facility)
{
	char pri[16], ts[40], procid[16], want[64];
	const char *p = m, *sp;
	json_t *j = json_loads(line, 0, NULL);
	const char *type, *decision;
	int sev;

	assert_non_null(j);
	type = json_string_value(json_object_get(j, "type"));
	decision = json_string_value(json_object_get(j, "decision"));
	sev = strcmp(type, "event") == 0 ||
	    (decision != NULL && strcmp(decision, "deny") == 0) ? 5 : 6;
	snprintf(pri, sizeof(pri), "<%d>1 ", facility * 8 + sev);
	assert_memory_equal(p, pri, strlen(pri));
	p += strlen(pri);
	snprintf(ts, sizeof(ts), "%s ", json_string_value(json_object_get(j,
	    "ts")));
	assert_memory_equal(p, ts, strlen(ts));
	p += strlen(ts);
	sp = memchr(p, ' ', len - (size_t)(p - m));	/* HOSTNAME */
	assert_non_null(sp);
	assert_true(sp > p);
	p = sp + 1;
	snprintf(procid, sizeof(procid), "%ld", (long)getpid());
	snprintf(want, sizeof(want), "portcullis %s %s - " BOM, procid, type);
	assert_memory_equal(p, want, strlen(want));
	p += strlen(want);
	assert_int_equal(len - (size_t)(p - m), strlen(line));
	assert_memory_equal(p, line, strlen(line));
	json_decref(j);
}

static void
run_loop(struct event_base *base, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
test_unix_datagram(void **state)
{
	struct t *t = *state;
	struct pc_audit_syslog_conf sc = { .socket = t->sock, .facility = -1 };
	int rx = bind_dgram(t->sock);
	struct pc_audit *a = open_with(t, &sc);
	char buf[8192];
	size_t got = 0;
	ssize_t n;

	write_requests(a, 2, "allow");
	write_requests(a, 1, "deny");
	run_loop(t->base, 20);
	pc_audit_close(a);
	read_file_lines(t);
	assert_true(t->nlines >= 5);	/* header, 3 requests, checkpoint */
	while ((n = recv(rx, buf, sizeof(buf), 0)) > 0) {
		assert_true(got < t->nlines);
		check_message(buf, (size_t)n, t->lines[got], 10);
		got++;
	}
	assert_int_equal(got, t->nlines);
	close(rx);
}

static void
test_receiver_away_drops_and_counts(void **state)
{
	struct t *t = *state;
	struct pc_audit_syslog_conf sc = { .socket = t->sock, .facility = 16 };
	int rx = bind_dgram(t->sock);
	struct pc_audit *a = open_with(t, &sc);
	struct pc_audit_stats st;
	char buf[8192];
	ssize_t n;

	write_requests(a, 1, "allow");
	close(rx);
	unlink(t->sock);
	write_requests(a, 3, "allow");
	pc_audit_stats(a, &st);
	assert_true(st.syslog_dropped >= 3);
	assert_null(pc_audit_error(a));	/* the file is the truth */
	assert_true(st.records >= 5);
	/* Back: after the retry delay (1 s) the next record goes again. */
	rx = bind_dgram(t->sock);
	sleep(2);
	write_requests(a, 1, "allow");
	n = recv(rx, buf, sizeof(buf), 0);
	assert_true(n > 0);
	assert_memory_equal(buf, "<134>1 ", 7);	/* local0.info */
	pc_audit_close(a);
	close(rx);
}

static void
test_tcp_octet_counting(void **state)
{
	struct t *t = *state;
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t il = sizeof(in);
	struct pc_audit_syslog_conf sc = { .facility = -1 };
	char addr[64], *buf = malloc(1 << 16);
	size_t have = 0, got = 0, pos = 0;
	struct pc_audit *a;
	int ls, cs;
	ssize_t n;

	assert_non_null(buf);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&in, &il), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(in.sin_port));
	sc.tcp = addr;
	a = open_with(t, &sc);
	write_requests(a, 3, "allow");
	run_loop(t->base, 100);		/* connect completes, queue flushes */
	pc_audit_close(a);
	cs = accept(ls, NULL, NULL);
	assert_true(cs >= 0);
	while ((n = read(cs, buf + have, (1 << 16) - have)) > 0)
		have += (size_t)n;
	read_file_lines(t);
	while (pos < have) {
		char *end;
		unsigned long flen = strtoul(buf + pos, &end, 10);

		assert_true(end > buf + pos && *end == ' ');
		pos = (size_t)(end + 1 - buf);
		assert_true(pos + flen <= have);
		assert_true(got < t->nlines);
		check_message(buf + pos, flen, t->lines[got], 10);
		pos += flen;
		got++;
	}
	assert_int_equal(got, t->nlines);
	close(cs);
	close(ls);
	free(buf);
}

static void
test_tcp_nobody_listening(void **state)
{
	struct t *t = *state;
	struct pc_audit_syslog_conf sc = { .tcp = "127.0.0.1:9", .facility = -1 };
	struct pc_audit *a = open_with(t, &sc);
	struct pc_audit_stats st;

	write_requests(a, 3, "allow");
	run_loop(t->base, 100);
	pc_audit_stats(a, &st);
	assert_null(pc_audit_error(a));
	assert_true(st.syslog_dropped >= 3);
	pc_audit_close(a);
}

static void
test_parsers(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	assert_int_equal(pc_audit_syslog_facility("authpriv"), 10);
	assert_int_equal(pc_audit_syslog_facility("local7"), 23);
	assert_int_equal(pc_audit_syslog_facility("kern"), PC_E_INVAL);
	assert_int_equal(pc_audit_syslog_addr("127.0.0.1:514", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(pc_audit_syslog_addr("[::1]:6514", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(pc_audit_syslog_addr("localhost:514", &ss, &len),
	    PC_E_INVAL);
	assert_int_equal(pc_audit_syslog_addr("127.0.0.1:0", &ss, &len),
	    PC_E_INVAL);
	assert_int_equal(pc_audit_syslog_addr("::1:514", &ss, &len),
	    PC_E_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unix_datagram, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_receiver_away_drops_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_octet_counting, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tcp_nobody_listening,
		    setup, teardown),
		cmocka_unit_test(test_parsers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
