/*
 * The audit log writer.
 *
 * Each record is serialized once, into a buffer sized at open: the module
 * writes {"seq":N,"ts":"..." itself, splices the caller's fields after it,
 * MACs those bytes (prefixed with the previous record's MAC) and closes the
 * line with ,"mac":"<hex>"}. The MAC covers the exact bytes in the file, so
 * verification never depends on re-serializing JSON the same way.
 *
 * write(2) happens on the loop thread before the caller answers, so a
 * record is in the page cache before its reply leaves (and survives a
 * kill -9 of the process): inside pc_audit_write(), or, for the hot path
 * (pc_audit_queue_request), once for all the records queued in one pass of
 * the event loop, whose callers answer from a callback after that write.
 * One write(2) per pass instead of one per record: the syscall and the
 * file system's per-write work are most of what a record costs the loop.
 * fdatasync runs on a worker thread: a timer on
 * the loop hands it the file at most group_delay_ms after the first
 * unsynced write, it syncs once for every record written until then, and
 * an eventfd brings the result back to the loop, where the waiting
 * callbacks run. A disk flush therefore never stalls request handling.
 * Only the loop thread serializes, MACs and writes, so the chain's order is
 * the file's order; the worker touches nothing but the descriptor it was
 * handed and the few fields under `mu`.
 *
 * Any failure to write, sync, rotate or create a file is final: the log
 * stays failed and every later write is refused, so the gateway refuses
 * requests rather than serve them unaudited.
 */
#include "audit.h"
#include "audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "../lib/errors.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* Writes waiting for one fsync before it is brought forward to the next
 * loop turn; and the most that may wait at all (a loop that does not turn
 * while millions of records are written is a bug, not load). Local limits,
 * candidates for src/lib/limits.h. */
#define AUDIT_GROUP_SOON     8192u
#define AUDIT_MAX_PENDING    (1u << 20)
/* Bytes of queued records written with one write(2). A pass of the loop
 * queues a few records of about half a kilobyte; a full buffer is simply
 * written early, and a record larger than it is written on its own. */
#define AUDIT_BATCH_BYTES    (64u * 1024u)
/* Age rotation and retention are also checked by a timer, so that an idle
 * log still rotates and expires; at most this often. */
#define AUDIT_HOUSEKEEP_S    3600u

struct waiter {
	void (*cb)(void *arg, int rc);
	void *arg;
};

/* A list of callbacks waiting for one fsync; its array is reused. */
struct waiters {
	struct waiter *w;
	size_t n, cap;
};

/*
 * The fsync worker. The loop posts a job (a descriptor) and goes on; the
 * worker syncs it and writes the eventfd; the loop collects the result.
 * At most one job exists at a time. The worker never allocates (it may run
 * while the gateway forks an upstream) and never logs (the loop does, when
 * it collects).
 */
struct syncer {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t wake;		/* a job was posted, or stop */
	pthread_cond_t idle;		/* a job finished */
	/* under mu: */
	bool posted;			/* a job is waiting or running */
	bool finished;			/* ...and has finished, not collected */
	bool stop;
	int fd;				/* the job's file */
	char file[256];			/* its name, for the failure message */
	int rc;				/* the finished job's result */
	bool log_failure;		/* the worker failed the log */
	/* loop only: */
	int efd;			/* eventfd, worker -> loop */
	struct event *done_ev;
	struct waiters infl;		/* callbacks of the posted job */
	bool busy;			/* posted, not yet collected */
	bool again;			/* the timer fired while busy */
};

struct pc_audit {
	struct event_base *base;
	struct event *sync_ev;		/* group-commit timer */
	struct event *house_ev;		/* age rotation, retention */
	EVP_MAC_CTX *mac;

	char dir[PATH_MAX];
	char prefix[PC_AUDIT_MAX_PREFIX + 1];
	int dirfd;
	int lockfd;			/* ".<prefix>.lock", flock'ed: one
					 * writer per chain */
	int fd;
	char file[256];
	uint64_t file_bytes;
	uint64_t file_records;
	uint64_t file_first_seq;
	time_t file_opened;

	uint64_t seq;			/* last written */
	unsigned char prev[AUDIT_MAC_LEN];

	uint64_t max_file_bytes;
	uint32_t max_file_age_s;
	uint32_t retention_days;
	enum pc_audit_fsync mode;
	uint32_t delay_ms;

	char *buf;			/* one serialized line */
	size_t bufcap;
	time_t ts_sec;			/* cache of the formatted second */
	char ts_day[24];
	size_t ts_off;			/* where buf's record has its ts */
	struct audit_syslog *sl;	/* NULL: no syslog copy */

	/* Records queued in this pass of the loop (already chained: seq and
	 * prev include them), written at its end by flush_ev, or earlier
	 * when a record must reach the file before its call returns. */
	char *wbuf;
	size_t wlen, wcap;
	struct event *flush_ev;
	bool flush_armed;
	struct waiters ready;		/* GROUP: queued, answered once written */
	struct waiters running;		/* ready, while its callbacks run */

	struct waiters pend;		/* written, not yet handed to a sync */
	bool dirty;			/* written since the last sync began */
	bool sync_armed;
	struct syncer sy;

	/* Set once, by the loop or by the worker (under sy.mu), and read
	 * without the lock by pc_audit_error(): why is complete before
	 * failed is seen true. */
	atomic_bool failed;
	char why[512];
	atomic_uint_fast64_t fsyncs;
	struct pc_audit_stats st;
};

static int rotate(struct pc_audit *a, const char *reason);

/* --- failure ------------------------------------------------------------------ */

static int fail(struct pc_audit *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool
is_failed(const struct pc_audit *a)
{
	return atomic_load_explicit(&a->failed, memory_order_acquire);
}

/* The first failure wins; with sy.mu held (or before the worker runs).
 * true when this call failed the log. */
static bool
set_failed(struct pc_audit *a, const char *file, const char *what)
{
	if (is_failed(a))
		return false;
	/* A long directory cuts the message, never the state. */
	if (snprintf(a->why, sizeof(a->why), "audit log %s/%s: %s; refusing "
	    "requests until the log can be written", a->dir, file,
	    what) >= (int)sizeof(a->why))
		a->why[sizeof(a->why) - 2] = '.';
	atomic_store_explicit(&a->failed, true, memory_order_release);
	return true;
}

static int
fail(struct pc_audit *a, const char *fmt, ...)
{
	va_list ap;
	char what[384];
	bool first;

	if (is_failed(a))
		return PC_E_IO;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&a->sy.mu);
	first = set_failed(a, a->file, what);
	pthread_mutex_unlock(&a->sy.mu);
	if (first)
		pc_error("%s", a->why);
	return PC_E_IO;
}

bool
pc_audit_strict(const struct pc_audit *a)
{
	return a != NULL && a->mode == PC_AUDIT_FSYNC_STRICT;
}

void
pc_audit_no_wait(void *arg, int rc)
{
	(void)arg;
	(void)rc;
}

const char *
pc_audit_error(const struct pc_audit *a)
{
	return a != NULL && is_failed(a) ? a->why : NULL;
}

/* --- serialization -------------------------------------------------------------- */

/* Decimal digits of v at p (room for 20); returns how many. The printf
 * family was a visible share of a record's cost. */
static size_t
fmt_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* "2026-11-21T12:00:00.123456Z" (AUDIT_TS_LEN bytes, no NUL) at out. */
#define AUDIT_TS_LEN 27u

int (*audit_clock)(clockid_t id, struct timespec *t) = clock_gettime;

static void
now_ts(struct pc_audit *a, char out[AUDIT_TS_LEN])
{
	struct timespec t;
	struct tm tm;
	long us;

	audit_clock(CLOCK_REALTIME, &t);
	/* gmtime + strftime once a second, not once a record. */
	if (t.tv_sec != a->ts_sec || a->ts_day[0] == '\0') {
		gmtime_r(&t.tv_sec, &tm);
		strftime(a->ts_day, sizeof(a->ts_day), "%Y-%m-%dT%H:%M:%S", &tm);
		a->ts_sec = t.tv_sec;
	}
	memcpy(out, a->ts_day, 19);
	out[19] = '.';
	us = (long)(t.tv_nsec / 1000) % 1000000;
	for (int i = 25; i >= 20; i--) {
		out[i] = (char)('0' + us % 10);
		us /= 10;
	}
	out[26] = 'Z';
}

/*
 * The request record without building a JSON object: at 100,000 records
 * a second, jansson's object building and dumping were most of the cost.
 * The output is byte for byte what pc_audit_request_fields() + jansson's
 * compact dump give (tests/unit/test_audit.c compares them), except that
 * invalid UTF-8 becomes U+FFFD here where jansson would refuse the string.
 */
struct out {
	char *p;
	size_t len, cap;
	bool over;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->over || n > o->cap - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
put_jstr(struct out *o, const char *str)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0, n = strlen(str);

	put(o, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
		size_t u;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		put(o, str + i - run, run);
		run = 0;
		if (c >= 0x80) {
			u = pc_utf8_seq(s + i, n - i);
			if (u == 0) {
				put(o, "\xef\xbf\xbd", 3);	/* U+FFFD */
				i++;
			} else {
				put(o, str + i, u);
				i += u;
			}
			continue;
		}
		i++;
		switch (c) {
		case '"': put(o, "\\\"", 2); break;
		case '\\': put(o, "\\\\", 2); break;
		case '\b': put(o, "\\b", 2); break;
		case '\f': put(o, "\\f", 2); break;
		case '\n': put(o, "\\n", 2); break;
		case '\r': put(o, "\\r", 2); break;
		case '\t': put(o, "\\t", 2); break;
		default:
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			put(o, esc, 6);
		}
	}
	put(o, str + i - run, run);
	put(o, "\"", 1);
}

static void
put_key(struct out *o, const char *k)
{
	put(o, ",\"", 2);
	put(o, k, strlen(k));
	put(o, "\":", 2);
}

static void
put_skv(struct out *o, const char *k, const char *v)
{
	put_key(o, k);
	if (v == NULL || v[0] == '\0')
		put(o, "null", 4);
	else
		put_jstr(o, v);
}

static void
put_ikv(struct out *o, const char *k, int64_t v)
{
	char num[24];

	put_key(o, k);
	if (v < 0) {
		put(o, "null", 4);
		return;
	}
	put(o, num, fmt_u64(num, (uint64_t)v));
}

/* The fields after "ts", starting with ',' and without a closing '}'. */
static int
put_request(char *buf, size_t cap, const struct pc_audit_request *r,
    size_t *n)
{
	struct out o = { buf, 0, cap, false };
	const char *type = r->type ? r->type : "request";

	/* The order here is the record's key order (docs/audit.md), the
	 * same as in pc_audit_request_fields(). */
	put_skv(&o, "type", type);
	if (strcmp(type, "event") == 0)
		put_skv(&o, "event", r->event);
	put_skv(&o, "request_id", r->request_id);
	put_skv(&o, "principal", r->principal);
	put_skv(&o, "key_id", r->key_id);
	put_skv(&o, "tenant", r->tenant);
	put_skv(&o, "source", r->source);
	put_skv(&o, "session", r->session);
	put_skv(&o, "era", r->era);
	put_skv(&o, "upstream", r->upstream);
	put_skv(&o, "method", r->method);
	put_skv(&o, "tool", r->tool);
	put_key(&o, "args");
	if (r->args == NULL) {
		put(&o, "null", 4);
	} else if (!o.over) {
		size_t room = o.cap - o.len;
		size_t an = pc_json_dumpb(r->args, o.p + o.len, room);

		if (an == 0)
			return PC_E_INVAL;
		if (an > room)
			o.over = true;
		else
			o.len += an;
	}
	put_skv(&o, "decision", r->decision);
	put_skv(&o, "reason", r->reason);
	put_skv(&o, "status", r->status);
	put_ikv(&o, "latency_us", r->latency_us);
	put_ikv(&o, "bytes_in", r->bytes_in);
	put_ikv(&o, "bytes_out", r->bytes_out);
	if (o.over)
		return PC_E_LIMIT;
	*n = o.len;
	return 0;
}

/*
 * Serialize the record numbered a->seq + 1 into a->buf; *len is the line
 * with its '\n', mac its MAC. PC_E_LIMIT when too large.
 */
static int
build(struct pc_audit *a, json_t *fields, const struct pc_audit_request *req,
    size_t *len, unsigned char mac[AUDIT_MAC_LEN])
{
	static const char k_seq[] = "{\"seq\":", k_ts[] = ",\"ts\":\"";
	char hex[AUDIT_MAC_HEX + 1];
	size_t pos, room, n, body;
	int rc;

	/* The buffer holds PC_AUDIT_MAX_RECORD + 1: the head always fits. */
	pos = sizeof(k_seq) - 1;
	memcpy(a->buf, k_seq, pos);
	pos += fmt_u64(a->buf + pos, a->seq + 1);
	memcpy(a->buf + pos, k_ts, sizeof(k_ts) - 1);
	pos += sizeof(k_ts) - 1;
	a->ts_off = pos;
	now_ts(a, a->buf + pos);
	pos += AUDIT_TS_LEN;
	a->buf[pos++] = '"';
	room = a->bufcap - pos;
	if (req != NULL) {
		rc = put_request(a->buf + pos, room, req, &n);
		if (rc != 0)
			return rc;
		body = pos + n;
	} else {
		n = json_is_object(fields) ?
		    pc_json_dumpb(fields, a->buf + pos, room) : 0;
		if (n == 0 || n > room)
			return n == 0 ? PC_E_INVAL : PC_E_LIMIT;
		if (n == 2) {
			body = pos;		/* "{}": nothing to splice */
		} else {
			a->buf[pos] = ',';	/* their '{' joins our keys */
			body = pos + n - 1;	/* without their '}' */
		}
	}
	if (body + AUDIT_SUFFIX_LEN + 1 > a->bufcap)
		return PC_E_LIMIT;
	rc = audit_mac(a->mac, a->prev, a->buf, body, mac);
	if (rc != 0)
		return rc;
	pc_hex_encode(mac, AUDIT_MAC_LEN, hex);
	memcpy(a->buf + body, AUDIT_MAC_KEY, AUDIT_MAC_KEY_LEN);
	body += AUDIT_MAC_KEY_LEN;
	memcpy(a->buf + body, hex, AUDIT_MAC_HEX);
	body += AUDIT_MAC_HEX;
	memcpy(a->buf + body, AUDIT_TAIL "\n", AUDIT_TAIL_LEN + 1);
	*len = body + AUDIT_TAIL_LEN + 1;
	return 0;
}

static void
arm_sync(struct pc_audit *a, bool soon)
{
	struct timeval tv = { 0, 0 };

	if (!soon) {
		tv.tv_sec = a->delay_ms / 1000;
		tv.tv_usec = (suseconds_t)(a->delay_ms % 1000) * 1000;
	}
	if (a->sync_armed && !soon)
		return;
	evtimer_add(a->sync_ev, &tv);	/* re-adding moves the deadline */
	a->sync_armed = true;
}

/* The record just written (a->buf, without its newline) to the syslog
 * sink: MSGID its type; a refusal or a security event is a notice, the
 * rest informational. */
static void
to_syslog(struct pc_audit *a, json_t *fields, const struct pc_audit_request *req,
    size_t len)
{
	const char *type, *decision;

	if (req != NULL) {
		type = req->type != NULL ? req->type : "request";
		decision = req->decision;
	} else {
		type = json_string_value(json_object_get(fields, "type"));
		decision = json_string_value(json_object_get(fields,
		    "decision"));
	}
	audit_syslog_send(a->sl, (decision != NULL &&
	    strcmp(decision, "deny") == 0) || (type != NULL &&
	    strcmp(type, "event") == 0) ? 5 : 6, type,
	    a->buf + a->ts_off, AUDIT_TS_LEN, a->buf, len);
}

/*
 * Write p[0..n) at the end of the file, whose size before them is `at`.
 * On failure the bytes that did land are cut (no torn line left behind if
 * we can help it) and the log fails.
 */
static int
put_file(struct pc_audit *a, const char *p, size_t n, uint64_t at)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = write(a->fd, p + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : ENOSPC;

			if (done > 0 && ftruncate(a->fd, (off_t)at) != 0)
				pc_warn("cannot cut a partial record: %s",
				    strerror(errno));
			return fail(a, "write failed: %s", strerror(e));
		}
		done += (size_t)r;
		a->st.writes++;
	}
	return 0;
}

/* Write the queued records, if any: one write(2). 0 or PC_E_IO. */
static int
flush(struct pc_audit *a)
{
	size_t n = a->wlen;

	if (n == 0)
		return 0;
	a->wlen = 0;
	if (is_failed(a))
		return PC_E_IO;		/* never written: their waiters fail */
	/* file_bytes already counts the queued bytes. */
	return put_file(a, a->wbuf, n, a->file_bytes - n);
}

/*
 * Serialize a record and add it to the chain. Queued (`queued`): its bytes
 * wait in wbuf for the end of the loop's pass; otherwise they are in the
 * file, after everything queued before them, when this returns. A failure
 * to write fails the log, which then refuses everything, so the chain may
 * move before the bytes land.
 */
static int
append(struct pc_audit *a, json_t *fields, const struct pc_audit_request *req,
    bool queued)
{
	unsigned char mac[AUDIT_MAC_LEN];
	size_t len;
	int rc;

	if (is_failed(a))
		return PC_E_IO;
	rc = build(a, fields, req, &len, mac);
	if (rc != 0)
		return rc;
	if (a->wlen + len > a->wcap && (rc = flush(a)) != 0)
		return rc;
	if (len > a->wcap) {
		/* Larger than a batch: on its own, the batch already out. */
		rc = put_file(a, a->buf, len, a->file_bytes);
		if (rc != 0)
			return rc;
	} else {
		memcpy(a->wbuf + a->wlen, a->buf, len);
		a->wlen += len;
	}
	a->seq++;
	memcpy(a->prev, mac, sizeof(mac));
	/* The copy goes now: a queued record whose write then fails is in
	 * syslog but not in the file, and its reply is withheld. */
	if (a->sl != NULL)
		to_syslog(a, fields, req, len - 1);
	a->file_bytes += len;
	a->file_records++;
	a->st.records++;
	a->st.bytes += len;
	a->dirty = true;
	if (!queued)
		return flush(a);
	if (!a->flush_armed) {
		/* Active now, it runs after every callback already active in
		 * this pass: the pass's records go out together. */
		event_active(a->flush_ev, EV_TIMEOUT, 1);
		a->flush_armed = true;
	}
	return 0;
}

/* --- group commit ----------------------------------------------------------------- */

/*
 * fsync on the loop thread, for the rare paths that must know the file is
 * on disk before they go on (rotation, retention, close). The worker may be
 * syncing the same file at the same time; that is harmless.
 */
static int
sync_now(struct pc_audit *a)
{
	if (flush(a) != 0)
		return PC_E_IO;
	if (!a->dirty)
		return 0;	/* what was written is on disk */
	if (is_failed(a))
		return PC_E_IO;
	if (fdatasync(a->fd) != 0)
		return fail(a, "fsync failed: %s", strerror(errno));
	a->dirty = false;
	atomic_fetch_add(&a->fsyncs, 1);
	return 0;
}

/* Run and empty a list. Callbacks may write again: those land in
 * a->pend, never in the list being run. */
static void
deliver(struct waiters *l, int rc)
{
	for (size_t i = 0; i < l->n; i++)
		l->w[i].cb(l->w[i].arg, rc);
	l->n = 0;
}

static void
swap_lists(struct waiters *x, struct waiters *y)
{
	struct waiters t = *x;

	*x = *y;
	*y = t;
}

int (*audit_fdatasync)(int fd) = fdatasync;

static void *
sync_main(void *arg)
{
	struct pc_audit *a = arg;
	struct syncer *sy = &a->sy;
	uint64_t one = 1;

	pthread_mutex_lock(&sy->mu);
	for (;;) {
		int fd, rc = 0;

		while (!sy->stop && (!sy->posted || sy->finished))
			pthread_cond_wait(&sy->wake, &sy->mu);
		if (sy->stop)
			break;
		fd = sy->fd;
		pthread_mutex_unlock(&sy->mu);
		if (audit_fdatasync(fd) != 0)
			rc = errno;
		pthread_mutex_lock(&sy->mu);
		if (rc != 0) {
			char what[128];

			snprintf(what, sizeof(what), "fsync failed: %s",
			    strerror(rc));
			/* Refused from now on, before the loop even hears of
			 * it: a write checks the flag first. */
			sy->log_failure = set_failed(a, sy->file, what);
			sy->rc = PC_E_IO;
		} else {
			atomic_fetch_add(&a->fsyncs, 1);
			sy->rc = 0;
		}
		sy->finished = true;
		pthread_cond_broadcast(&sy->idle);
		/* Cannot fail short of a bad descriptor: the counter is far
		 * from its limit with one job at a time. */
		if (write(sy->efd, &one, sizeof(one)) < 0)
			abort();
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

/* Block until the posted job (if any) has finished: before its
 * descriptor is closed. Runs no callback, so it may be called from
 * inside a write. */
static void
wait_idle(struct pc_audit *a)
{
	struct syncer *sy = &a->sy;

	if (!sy->busy)
		return;
	pthread_mutex_lock(&sy->mu);
	while (!sy->finished)
		pthread_cond_wait(&sy->idle, &sy->mu);
	pthread_mutex_unlock(&sy->mu);
}

/* Take the finished job's result and run its callbacks (from the loop,
 * or from close). Waits for the job if it is still running. */
static void
collect(struct pc_audit *a)
{
	struct syncer *sy = &a->sy;
	bool log_it;
	int rc;

	if (!sy->busy)
		return;
	wait_idle(a);
	pthread_mutex_lock(&sy->mu);
	rc = sy->rc;
	log_it = sy->log_failure;
	sy->log_failure = false;
	sy->posted = sy->finished = false;
	pthread_mutex_unlock(&sy->mu);
	sy->busy = false;
	if (log_it)
		pc_error("%s", a->why);
	deliver(&sy->infl, rc);
}

/*
 * The file being written is still the one the directory holds under its
 * name. Deleted or renamed by someone who can write the directory, every
 * later record (and the closing checkpoint) would go into an orphan inode,
 * and a restart would resume the chain from the previous file: verify
 * would see nothing missing. Checked at every group sync.
 */
static bool
file_in_place(const struct pc_audit *a)
{
	struct stat held, named;

	if (fstat(a->fd, &held) != 0 || held.st_nlink == 0 ||
	    fstatat(a->dirfd, a->file, &named, AT_SYMLINK_NOFOLLOW) != 0)
		return false;
	return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

/*
 * Hand everything written so far to the worker: one fsync for the group,
 * whose callbacks then wait in sy.infl. With a sync already running, the
 * next one starts as soon as it finishes (on_done).
 */
static void
kick(struct pc_audit *a)
{
	struct syncer *sy = &a->sy;

	if (sy->busy) {
		sy->again = true;
		return;
	}
	sy->again = false;
	/* Queued records first: the fsync must cover every waiter's record
	 * (a failure fails the log, and the waiters below with it). */
	(void)flush(a);
	if (!is_failed(a) && a->fd >= 0 && !file_in_place(a))
		(void)fail(a, "audit file %s was removed or replaced under the "
		    "gateway", a->file);
	swap_lists(&a->pend, &sy->infl);
	if (!a->dirty || is_failed(a) || !sy->started) {
		/* Covered by an earlier sync (rotation, retention), or the
		 * log is failed and nothing more will be synced. */
		deliver(&sy->infl, a->dirty ? PC_E_IO : 0);
		return;
	}
	a->dirty = false;
	pthread_mutex_lock(&sy->mu);
	sy->fd = a->fd;
	pc_strlcpy(sy->file, a->file, sizeof(sy->file));
	sy->posted = true;
	sy->finished = false;
	pthread_cond_signal(&sy->wake);
	pthread_mutex_unlock(&sy->mu);
	sy->busy = true;
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct pc_audit *a = arg;
	uint64_t n;

	/* EAGAIN only when close() collected the job already. */
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		pc_warn("audit: fsync notification: %s", strerror(errno));
	collect(a);
	if (a->sy.again)
		kick(a);
}

/*
 * The end of a pass of the loop: write what it queued, then answer the
 * GROUP waiters. Any failure since they were queued withholds them all
 * (a record written before a failure is safe, but telling which is not
 * worth the risk of answering one that is not).
 */
static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct pc_audit *a = arg;
	int rc;

	(void)fd;
	(void)what;
	a->flush_armed = false;
	rc = flush(a);
	/* Callbacks may queue again: into a->ready, not the list run. */
	swap_lists(&a->ready, &a->running);
	deliver(&a->running, rc != 0 || is_failed(a) ? PC_E_IO : 0);
}

static void
on_sync(evutil_socket_t fd, short what, void *arg)
{
	struct pc_audit *a = arg;

	a->sync_armed = false;
	kick(a);
}

static int
sync_start(struct pc_audit *a)
{
	struct syncer *sy = &a->sy;
	sigset_t all, old;
	int rc;

	sy->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sy->efd < 0)
		return PC_E_IO;
	sy->done_ev = event_new(a->base, sy->efd, EV_READ | EV_PERSIST,
	    on_done, a);
	if (sy->done_ev == NULL || event_add(sy->done_ev, NULL) != 0)
		return PC_E_NOMEM;
	/* Signals stay with the loop thread (libevent's handlers). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&sy->thread, NULL, sync_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return PC_E_NOMEM;
	sy->started = true;
	return 0;
}

static void
sync_stop(struct pc_audit *a)
{
	struct syncer *sy = &a->sy;

	if (sy->started) {
		collect(a);
		pthread_mutex_lock(&sy->mu);
		sy->stop = true;
		pthread_cond_signal(&sy->wake);
		pthread_mutex_unlock(&sy->mu);
		pthread_join(sy->thread, NULL);
		sy->started = false;
	}
	if (sy->done_ev != NULL)
		event_free(sy->done_ev);
	sy->done_ev = NULL;
	if (sy->efd >= 0)
		close(sy->efd);
	sy->efd = -1;
}

static int
add_waiter(struct waiters *l, void (*cb)(void *, int), void *arg)
{

	if (l->n == l->cap) {
		size_t ncap = l->cap ? 2 * l->cap : 64;
		struct waiter *nw;

		if (ncap > AUDIT_MAX_PENDING)
			return PC_E_LIMIT;
		nw = realloc(l->w, ncap * sizeof(*nw));
		if (nw == NULL)
			return PC_E_NOMEM;
		l->w = nw;
		l->cap = ncap;
	}
	l->w[l->n].cb = cb;
	l->w[l->n].arg = arg;
	l->n++;
	return 0;
}

/* --- records --------------------------------------------------------------------- */

static bool
reserved_key(const char *k)
{
	return strcmp(k, "seq") == 0 || strcmp(k, "ts") == 0 ||
	    strcmp(k, "mac") == 0;
}

static int
check_fields(json_t *fields)
{
	const char *k, *type;
	json_t *v;

	if (!json_is_object(fields))
		return PC_E_INVAL;
	json_object_foreach(fields, k, v) {
		if (reserved_key(k))
			return PC_E_INVAL;
	}
	v = json_object_get(fields, "type");
	if (v == NULL)
		return 0;
	type = json_string_value(v);
	if (type == NULL || strcmp(type, AUDIT_T_FILE) == 0 ||
	    strcmp(type, AUDIT_T_CHECKPOINT) == 0 ||
	    strcmp(type, AUDIT_T_RETENTION) == 0)
		return PC_E_INVAL;
	return 0;
}

/*
 * queued: durable is the caller's "answer now" (GROUP: once written, so
 * it waits in `ready`; STRICT: once synced, in `pend` like any other).
 */
static int
write_one(struct pc_audit *a, json_t *fields, const struct pc_audit_request *req,
    void (*durable)(void *arg, int rc), void *arg, bool queued)
{
	struct waiters *l = queued && a->mode == PC_AUDIT_FSYNC_GROUP ?
	    &a->ready : &a->pend;
	time_t now;
	int rc;

	if ((a->mode == PC_AUDIT_FSYNC_STRICT || queued) && durable == NULL)
		return PC_E_INVAL;
	if (durable != NULL && l->n >= AUDIT_MAX_PENDING)
		return PC_E_LIMIT;
	/* Rotate before the record rather than after, so that a file never
	 * ends without its checkpoint while the gateway runs. */
	now = time(NULL);
	if (a->file_records > 1 && (a->file_bytes >= a->max_file_bytes ||
	    now - a->file_opened >= (time_t)a->max_file_age_s)) {
		rc = rotate(a, a->file_bytes >= a->max_file_bytes ?
		    "size" : "age");
		if (rc != 0)
			return rc;
	}
	rc = append(a, fields, req, queued);
	if (rc != 0)
		return rc;
	if (durable != NULL && add_waiter(l, durable, arg) != 0) {
		/* The record is written; only the notification is lost, and
		 * a caller that waits for it would hang: fail closed. */
		return fail(a, "out of memory for fsync waiters");
	}
	arm_sync(a, a->pend.n >= AUDIT_GROUP_SOON);
	return 0;
}

int
pc_audit_write(struct pc_audit *a, json_t *fields,
    void (*durable)(void *arg, int rc), void *arg)
{
	if (a == NULL)
		return PC_E_INVAL;
	if (is_failed(a))
		return PC_E_IO;
	if (check_fields(fields) != 0)
		return PC_E_INVAL;
	return write_one(a, fields, NULL, durable, arg, false);
}

int
pc_audit_barrier(struct pc_audit *a, void (*durable)(void *arg, int rc),
    void *arg)
{
	if (a == NULL || durable == NULL)
		return PC_E_INVAL;
	if (is_failed(a))
		return PC_E_IO;
	if (a->pend.n >= AUDIT_MAX_PENDING)
		return PC_E_LIMIT;
	/* In pend like a strict write's waiter: delivered after the fsync
	 * that covers everything written before it (never from here). */
	if (add_waiter(&a->pend, durable, arg) != 0)
		return PC_E_NOMEM;
	arm_sync(a, a->pend.n >= AUDIT_GROUP_SOON);	/* as a write's */
	return 0;
}

static int
write_request(struct pc_audit *a, const struct pc_audit_request *r,
    void (*durable)(void *arg, int rc), void *arg, bool queued)
{
	const char *type;

	if (a == NULL || r == NULL)
		return PC_E_INVAL;
	if (is_failed(a))
		return PC_E_IO;
	type = r->type ? r->type : "request";
	if (strcmp(type, AUDIT_T_FILE) == 0 ||
	    strcmp(type, AUDIT_T_CHECKPOINT) == 0 ||
	    strcmp(type, AUDIT_T_RETENTION) == 0)
		return PC_E_INVAL;
	return write_one(a, NULL, r, durable, arg, queued);
}

int
pc_audit_write_request(struct pc_audit *a, const struct pc_audit_request *r,
    void (*durable)(void *arg, int rc), void *arg)
{
	return write_request(a, r, durable, arg, false);
}

int
pc_audit_queue_request(struct pc_audit *a, const struct pc_audit_request *r,
    void (*ready)(void *arg, int rc), void *arg)
{
	return write_request(a, r, ready, arg, true);
}

/* A module record: type first, then the given pairs (new references). */
static int
append_own(struct pc_audit *a, json_t *obj)
{
	int rc;

	if (obj == NULL)
		return fail(a, "out of memory");
	rc = append(a, obj, NULL, false);
	json_decref(obj);
	if (rc == PC_E_LIMIT || rc == PC_E_INVAL || rc == PC_E_NOMEM)
		return fail(a, "cannot serialize a %s record",
		    rc == PC_E_NOMEM ? "new" : "module");
	return rc;
}

static json_t *
hex_string(const unsigned char *mac)
{
	char hex[AUDIT_MAC_HEX + 1];

	pc_hex_encode(mac, AUDIT_MAC_LEN, hex);
	return json_string(hex);
}

static int
write_checkpoint(struct pc_audit *a, const char *reason)
{
	json_t *o = json_object();

	/* "records" counts the file's records before this one; a verifier
	 * that has read them all and agrees knows nothing was cut. */
	if (o == NULL || json_object_set_new(o, "type",
	    json_string(AUDIT_T_CHECKPOINT)) != 0 ||
	    json_object_set_new(o, "reason", json_string(reason)) != 0 ||
	    json_object_set_new(o, "file", json_string(a->file)) != 0 ||
	    json_object_set_new(o, "first_seq",
	    json_integer((json_int_t)a->file_first_seq)) != 0 ||
	    json_object_set_new(o, "records",
	    json_integer((json_int_t)a->file_records)) != 0 ||
	    json_object_set_new(o, "last_mac", hex_string(a->prev)) != 0) {
		json_decref(o);
		return fail(a, "out of memory");
	}
	return append_own(a, o);
}

/*
 * Create the next file and write its header, which names the previous
 * file and carries the previous MAC: a file can be verified on its own,
 * and a missing file between two others shows as a gap in the chain.
 */
static int
open_file(struct pc_audit *a, const char *start, const char *prev_file,
    const char *prev_end)
{
	char stamp[32], name[sizeof(a->file)];
	struct tm tm;
	time_t now = time(NULL);
	json_t *o;
	int fd;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(name, sizeof(name), "%s-%s-%0*" PRIu64 ".jsonl", a->prefix,
	    stamp, AUDIT_NAME_SEQ_DIGITS, a->seq + 1);
	pc_strlcpy(a->file, name, sizeof(a->file));
	fd = openat(a->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
	    O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return fail(a, "cannot create: %s", strerror(errno));
	/* The new name must survive a crash as much as its records. */
	if (fsync(a->dirfd) != 0) {
		close(fd);
		return fail(a, "cannot sync the directory: %s",
		    strerror(errno));
	}
	a->fd = fd;
	a->file_bytes = 0;
	a->file_records = 0;
	a->file_first_seq = a->seq + 1;
	a->file_opened = now;
	pc_strlcpy(a->st.file, name, sizeof(a->st.file));
	o = json_object();
	if (o == NULL || json_object_set_new(o, "type",
	    json_string(AUDIT_T_FILE)) != 0 ||
	    json_object_set_new(o, "file", json_string(name)) != 0 ||
	    json_object_set_new(o, "start", json_string(start)) != 0 ||
	    json_object_set_new(o, "prev_file",
	    prev_file ? json_string(prev_file) : json_null()) != 0 ||
	    json_object_set_new(o, "prev_seq",
	    json_integer((json_int_t)a->seq)) != 0 ||
	    json_object_set_new(o, "prev_end",
	    prev_end ? json_string(prev_end) : json_null()) != 0 ||
	    json_object_set_new(o, "prev_mac", hex_string(a->prev)) != 0) {
		json_decref(o);
		return fail(a, "out of memory");
	}
	return append_own(a, o);
}

/* --- retention ------------------------------------------------------------------ */

struct tail_info {
	uint64_t seq;
	unsigned char mac[AUDIT_MAC_LEN];
	int64_t ts_us;		/* the record's ts */
	/* static: how the file ends, as a header's prev_end says it:
	 * "checkpoint" (closed), "rotation" (a rotation's checkpoint: a
	 * next file was begun) or "none" (no checkpoint) */
	const char *end;
	bool torn;
};

/* The MAC the tail's last line was computed over: the line before's, or
 * for a file's only line (its header) the prev_mac it carries. */
static int
tail_prev(const struct audit_tail *t, json_t *j,
    unsigned char prev[AUDIT_MAC_LEN])
{
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *h = json_string_value(json_object_get(j, "prev_mac"));
	size_t body;

	if (t->prev != NULL)
		return audit_split(t->prev, t->plen, &body, prev);
	if (type == NULL || strcmp(type, AUDIT_T_FILE) != 0 || h == NULL ||
	    strlen(h) != AUDIT_MAC_HEX)
		return PC_E_PARSE;
	return audit_unhex(h, AUDIT_MAC_LEN, prev);
}

/* seq, ts and how the file ends, from the last record's JSON. */
static int
tail_fields(json_t *j, struct tail_info *ti)
{
	json_t *seq = json_object_get(j, "seq");
	const char *ts = json_string_value(json_object_get(j, "ts"));
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *reason = json_string_value(json_object_get(j, "reason"));

	if (!json_is_integer(seq) || json_integer_value(seq) < 1 ||
	    ts == NULL || audit_parse_time(ts, &ti->ts_us) != 0)
		return PC_E_PARSE;
	ti->seq = (uint64_t)json_integer_value(seq);
	if (type == NULL || strcmp(type, AUDIT_T_CHECKPOINT) != 0)
		ti->end = "none";
	else if (reason != NULL && strcmp(reason, "close") == 0)
		ti->end = "checkpoint";
	else
		ti->end = "rotation";
	return 0;
}

/*
 * The last complete record of a file, authenticated: its MAC must be the
 * key's over the MAC before it and its bytes. Anyone who can write to the
 * directory can plant or edit a file; only the key holder can make a
 * record that passes. 0, PC_E_NOTFOUND (no complete record), PC_E_DENIED
 * (the MAC does not verify or cannot be checked), PC_E_PARSE (a verified
 * record without a valid seq or ts), or an error of audit_tail_read.
 */
static int
read_tail(struct pc_audit *a, const char *name, struct tail_info *ti)
{
	unsigned char prev[AUDIT_MAC_LEN], want[AUDIT_MAC_LEN];
	struct audit_tail t;
	json_t *j = NULL;
	size_t body;
	int rc;

	rc = audit_tail_read(a->dirfd, name, &t);
	if (rc != 0)
		return rc;
	ti->torn = t.torn;
	/* The MAC first: the writer never leaves a complete line it could
	 * not verify (no MAC, no line or header before it), so such a line
	 * is "does not verify", whatever it holds, not merely malformed. */
	rc = PC_E_DENIED;
	j = json_loadb(t.line, t.len, JSON_REJECT_DUPLICATES, NULL);
	if (audit_split(t.line, t.len, &body, ti->mac) != 0 ||
	    tail_prev(&t, j, prev) != 0)
		goto out;
	rc = audit_mac(a->mac, prev, t.line, body, want);
	if (rc == 0 && CRYPTO_memcmp(want, ti->mac, sizeof(want)) != 0)
		rc = PC_E_DENIED;
	if (rc == 0)
		rc = tail_fields(j, ti);
out:
	json_decref(j);
	audit_tail_free(&t);
	return rc;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* What read_tail's rc (not 0) means, for an operator. */
static const char *
tail_problem(int rc)
{
	switch (rc) {
	case PC_E_DENIED:
		return "its last record does not verify with the key (a "
		    "planted or altered file, or a different key)";
	case PC_E_LIMIT:
		return "its last line is longer than any record";
	case PC_E_INVAL:
		return "it is not a regular file (a symlink, FIFO, device or "
		    "directory)";
	case PC_E_NOMEM:
		return "out of memory";
	default:
		return "its last record cannot be read";
	}
}

/* A genuine record can still be a copy from elsewhere in the log: its
 * seq must lie in its file's range, from the seq in the file's name to
 * the next file's. */
static bool
seq_in_place(const struct pc_audit *a, char **files, size_t n, size_t i,
    uint64_t seq)
{
	uint64_t lo, hi = UINT64_MAX;

	if (audit_name_seq(base_name(files[i]), a->prefix, &lo) != 0 ||
	    (i + 1 < n &&
	    audit_name_seq(base_name(files[i + 1]), a->prefix, &hi) != 0))
		return false;
	return seq >= lo && seq < hi;
}

/*
 * How many of the oldest files may go: each one's age is the ts of its
 * last record, read from the file and authenticated with the key. Not the
 * mtime, which anyone who can touch the file sets, and not an unchecked
 * tail, which would put a forged range into the retention record. A file
 * whose tail does not verify is kept, and so is everything after it (no
 * holes); that is an error an operator must see. A file with no complete
 * record has nothing to keep and goes only with a later expired file.
 * *last: the tail of the newest file that goes.
 */
static size_t
expired(struct pc_audit *a, char **files, size_t n, time_t cutoff,
    struct tail_info *last)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const char *name = base_name(files[i]);
		struct tail_info ti;
		const char *why;
		int rc;

		if (strcmp(name, a->file) == 0)
			break;
		rc = read_tail(a, name, &ti);
		if (rc == PC_E_NOTFOUND)
			continue;
		why = rc != 0 ? tail_problem(rc) :
		    !seq_in_place(a, files, n, i, ti.seq) ? "its last record's "
		    "seq lies outside the range its name gives (copied from "
		    "another file?)" : NULL;
		if (why != NULL) {
			pc_error("retention: keeping %s/%s and every later "
			    "file: %s; check the log with `portcullis audit "
			    "verify`", a->dir, name, why);
			break;
		}
		if (ti.ts_us / 1000000 >= (int64_t)cutoff)
			break;
		*last = ti;
		k = i + 1;
	}
	return k;
}

/*
 * Remove the oldest files whose last record is older than the retention
 * (see expired()), oldest first and never past a file that is still kept
 * (no holes), then record what went: the range and the last MAC of the
 * removed part, so a verifier can tell an expired start of the log from
 * a deleted one. The record is written (and synced) before any file goes.
 */
static int
retention(struct pc_audit *a)
{
	char **files = NULL;
	size_t n = 0, k;
	time_t cutoff = time(NULL) - (time_t)a->retention_days * 86400;
	struct tail_info last;
	uint64_t first_seq = 0;
	json_t *o = NULL, *names;
	int rc;

	rc = pc_audit_list(a->dir, a->prefix, &files, &n);
	if (rc != 0) {
		pc_warn("retention: cannot list %s: %s", a->dir,
		    strerror(errno));
		return 0;	/* keeping files too long is not a failure */
	}
	k = expired(a, files, n, cutoff, &last);
	if (k == 0)
		goto out;
	(void)audit_name_seq(base_name(files[0]), a->prefix, &first_seq);
	names = json_array();
	for (size_t i = 0; names != NULL && i < k; i++) {
		if (json_array_append_new(names,
		    json_string(base_name(files[i]))) != 0) {
			json_decref(names);
			names = NULL;
		}
	}
	o = json_object();
	if (o == NULL || names == NULL ||
	    json_object_set_new(o, "type", json_string(AUDIT_T_RETENTION)) ||
	    json_object_set_new(o, "retention_days",
	    json_integer(a->retention_days)) ||
	    json_object_set(o, "removed_files", names) ||
	    json_object_set_new(o, "removed_first_seq",
	    json_integer((json_int_t)first_seq)) ||
	    json_object_set_new(o, "removed_last_seq",
	    json_integer((json_int_t)last.seq)) ||
	    json_object_set_new(o, "last_mac", hex_string(last.mac))) {
		json_decref(names);
		json_decref(o);
		rc = fail(a, "out of memory");
		goto out;
	}
	json_decref(names);
	rc = append_own(a, o);
	if (rc == 0)
		rc = sync_now(a);
	if (rc != 0)
		goto out;
	size_t want = k;
	for (size_t i = 0; i < k; i++) {
		if (unlinkat(a->dirfd, base_name(files[i]), 0) != 0) {
			/* Stop: removing later files past a kept one would
			 * leave a hole that verify takes for tampering. */
			pc_warn("retention: cannot remove %s: %s; later files "
			    "are kept too", base_name(files[i]),
			    strerror(errno));
			k = i;
			break;
		}
		a->st.files_removed++;
	}
	(void)fsync(a->dirfd);
	if (k == want)
		pc_info("retention: removed %zu audit file(s), seq %" PRIu64
		    "..%" PRIu64, k, first_seq, last.seq);
	else
		pc_warn("retention: removed %zu of %zu expired audit file(s)",
		    k, want);
out:
	pc_audit_list_free(files, n);
	return rc;
}

/* --- rotation ------------------------------------------------------------------- */

static int
rotate(struct pc_audit *a, const char *reason)
{
	char old[sizeof(a->file)];
	int rc;

	/* A checkpoint into a file no longer there would seal nothing. */
	if (a->fd >= 0 && !file_in_place(a))
		return fail(a, "audit file %s was removed or replaced under "
		    "the gateway", a->file);
	rc = write_checkpoint(a, reason);
	if (rc == 0)
		rc = sync_now(a);
	if (rc != 0)
		return rc;
	/* The old file is synced: waiters for its records are covered
	 * (the next group sees nothing dirty, or syncs the new file). A
	 * running group sync may still hold the descriptor: wait for it. */
	wait_idle(a);
	close(a->fd);
	a->fd = -1;
	pc_strlcpy(old, a->file, sizeof(old));
	rc = open_file(a, "rotate", old, "checkpoint");
	if (rc != 0)
		return rc;
	a->st.rotations++;
	arm_sync(a, false);
	return retention(a);
}

int
pc_audit_rotate(struct pc_audit *a)
{
	if (a == NULL)
		return PC_E_INVAL;
	if (is_failed(a))
		return PC_E_IO;
	return rotate(a, "request");
}

static void
on_house(evutil_socket_t fd, short what, void *arg)
{
	struct pc_audit *a = arg;

	if (is_failed(a))
		return;
	if (a->file_records > 1 &&
	    time(NULL) - a->file_opened >= (time_t)a->max_file_age_s) {
		(void)rotate(a, "age");
		return;		/* rotation ran retention */
	}
	(void)retention(a);
}

/* --- open / close --------------------------------------------------------------- */

/*
 * Say how the newest file ended when it did not end with a close. After a
 * rotation's checkpoint a next file was begun and is gone: deleted or
 * renamed, or the gateway died between the checkpoint and creating it.
 * Which cannot be told from here, so the new header says "rotation" and
 * verify repeats it; the chain goes on from the checkpoint.
 */
static void
warn_end(const char *name, const char *end, uint64_t seq)
{
	if (strcmp(end, "rotation") == 0)
		pc_warn("audit file %s ends with a rotation checkpoint but "
		    "no later file holds a record: the next file was deleted "
		    "or renamed, or the gateway stopped while rotating; "
		    "continuing the chain after seq %" PRIu64 " (the new "
		    "file's header says prev_end \"rotation\")", name, seq);
	else if (strcmp(end, "checkpoint") != 0)
		pc_warn("audit file %s ends without a checkpoint (the "
		    "gateway stopped without closing it); continuing its "
		    "chain after seq %" PRIu64, name, seq);
}

/*
 * Why the chain must not go on from this tail (rc: read_tail's), or NULL.
 * Whatever the newest file's last record says becomes the writer's seq
 * and MAC, so it must be the key's: a planted file would otherwise set
 * them. A genuine record must also be in its place, not before the seq
 * in its file's name (older lines copied under a newer name would make
 * the writer repeat seqs), and leave room for the next seq: jansson reads
 * integers as int64, so a record numbered 2^63 could never be read back.
 */
static const char *
unresumable(const struct pc_audit *a, const char *name, int rc,
    const struct tail_info *ti)
{
	uint64_t first;

	if (rc != 0)
		return tail_problem(rc);
	if (ti->seq >= (uint64_t)INT64_MAX)
		return "its last seq leaves no room for another record";
	if (audit_name_seq(name, a->prefix, &first) != 0 || ti->seq < first)
		return "its last record comes before the seq in its name "
		    "(copied from another file?)";
	return NULL;
}

/* Continue the chain of the newest file that holds a record; refuse one
 * whose end is not a genuine record in its place (unresumable). */
static int
resume(struct pc_audit *a, char *prev_file, size_t pflen,
    const char **prev_end, char *err, size_t errlen)
{
	char **files = NULL;
	size_t n = 0;
	const char *why;
	int rc;

	*prev_end = NULL;
	prev_file[0] = '\0';
	rc = pc_audit_list(a->dir, a->prefix, &files, &n);
	if (rc != 0) {
		snprintf(err, errlen, "audit: cannot list %s: %s", a->dir,
		    strerror(errno));
		return rc;
	}
	for (size_t i = n; i-- > 0;) {
		struct tail_info ti;
		const char *name = base_name(files[i]);

		rc = read_tail(a, name, &ti);
		if (rc == PC_E_NOTFOUND) {
			pc_warn("audit file %s holds no record; skipped", name);
			continue;
		}
		why = unresumable(a, name, rc, &ti);
		if (why != NULL) {
			snprintf(err, errlen, "audit: refusing to continue the "
			    "chain from %s/%s: %s; move the file away after "
			    "checking it with `portcullis audit verify`",
			    a->dir, name, why);
			/* Unreadable stays an I/O error, as before. */
			rc = rc == 0 || rc == PC_E_DENIED ? PC_E_DENIED :
			    rc == PC_E_NOMEM ? rc : PC_E_IO;
			goto out;
		}
		a->seq = ti.seq;
		memcpy(a->prev, ti.mac, sizeof(a->prev));
		pc_strlcpy(prev_file, name, pflen);
		*prev_end = ti.torn ? "torn" : ti.end;
		warn_end(name, *prev_end, ti.seq);
		break;
	}
	rc = 0;
out:
	pc_audit_list_free(files, n);
	return rc;
}

/*
 * One writer per chain. A second process on the same directory (another
 * `portcullis stdio` on the same config, stdio beside serve) resumed from
 * the first one's newest record and wrote on with the same sequence
 * numbers: two branches, each validly MACed from the same point, so that
 * verify cried tampering, and one branch's files could replace the
 * other's unnoticed. The lock is released when the process ends, however.
 */
static int
take_lock(struct pc_audit *a, char *err, size_t errlen)
{
	char name[PC_AUDIT_MAX_PREFIX + 16];
	struct stat sb;

	snprintf(name, sizeof(name), ".%s.lock", a->prefix);
	a->lockfd = openat(a->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
	if (a->lockfd < 0) {
		snprintf(err, errlen, "audit: cannot open %s/%s: %s", a->dir,
		    name, strerror(errno));
		return PC_E_IO;
	}
	if (fstat(a->lockfd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "audit: %s/%s is not a regular file",
		    a->dir, name);
		return PC_E_IO;
	}
	if (flock(a->lockfd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "audit: %s is in use by another "
			    "portcullis process: two writers would split its "
			    "chain; give each running gateway its own "
			    "audit.dir", a->dir);
		else
			snprintf(err, errlen, "audit: cannot lock %s/%s: %s",
			    a->dir, name, strerror(e));
		return e == EWOULDBLOCK ? PC_E_EXISTS : PC_E_IO;
	}
	return 0;
}

int
pc_audit_open(struct event_base *base, const struct pc_audit_conf *conf,
    struct pc_audit **out, char *err, size_t errlen)
{
	struct pc_audit *a = NULL;
	char prev_file[256];
	const char *prev_end;
	struct stat sb;
	struct timeval hk;
	int rc = PC_E_INVAL;

	*out = NULL;
	if (base == NULL || conf == NULL || conf->dir == NULL ||
	    conf->key == NULL) {
		snprintf(err, errlen, "audit: missing directory or key");
		return PC_E_INVAL;
	}
	if (conf->key_len < PC_AUDIT_MIN_KEY || conf->key_len > PC_AUDIT_MAX_KEY) {
		snprintf(err, errlen, "audit: the MAC key must be %u to %u "
		    "bytes (got %zu)", PC_AUDIT_MIN_KEY, PC_AUDIT_MAX_KEY,
		    conf->key_len);
		return PC_E_INVAL;
	}
	if (conf->prefix != NULL && !audit_prefix_ok(conf->prefix)) {
		snprintf(err, errlen, "audit: file prefix must be 1-%u of "
		    "[A-Za-z0-9._-], not starting with '.'", PC_AUDIT_MAX_PREFIX);
		return PC_E_INVAL;
	}
	if (conf->group_delay_ms > PC_AUDIT_MAX_GROUP_DELAY_MS ||
	    (conf->fsync_mode != PC_AUDIT_FSYNC_GROUP &&
	    conf->fsync_mode != PC_AUDIT_FSYNC_STRICT)) {
		snprintf(err, errlen, "audit: group delay above %u ms or "
		    "unknown fsync mode", PC_AUDIT_MAX_GROUP_DELAY_MS);
		return PC_E_INVAL;
	}
	if (strlen(conf->dir) >= sizeof(a->dir)) {
		snprintf(err, errlen, "audit: directory path too long");
		return PC_E_INVAL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "audit: out of memory");
		return PC_E_NOMEM;
	}
	a->dirfd = a->fd = a->lockfd = -1;
	a->sy.efd = -1;
	pthread_mutex_init(&a->sy.mu, NULL);
	pthread_cond_init(&a->sy.wake, NULL);
	pthread_cond_init(&a->sy.idle, NULL);
	a->base = base;
	pc_strlcpy(a->dir, conf->dir, sizeof(a->dir));
	pc_strlcpy(a->prefix, conf->prefix ? conf->prefix : AUDIT_DEF_PREFIX,
	    sizeof(a->prefix));
	a->max_file_bytes = conf->max_file_bytes ? conf->max_file_bytes :
	    PC_AUDIT_DEF_MAX_FILE_BYTES;
	a->max_file_age_s = conf->max_file_age_s ? conf->max_file_age_s :
	    PC_AUDIT_DEF_MAX_FILE_AGE_S;
	a->retention_days = conf->retention_days ? conf->retention_days :
	    PC_AUDIT_DEF_RETENTION_DAYS;
	a->mode = conf->fsync_mode;
	a->delay_ms = conf->group_delay_ms;
	a->bufcap = PC_AUDIT_MAX_RECORD + 1;
	a->buf = malloc(a->bufcap);
	a->mac = audit_mac_new(conf->key, conf->key_len);
	a->wcap = AUDIT_BATCH_BYTES;
	a->wbuf = malloc(a->wcap);
	a->flush_ev = evtimer_new(base, on_flush, a);
	a->sync_ev = evtimer_new(base, on_sync, a);
	a->house_ev = event_new(base, -1, EV_PERSIST, on_house, a);
	if (a->buf == NULL || a->wbuf == NULL || a->flush_ev == NULL ||
	    a->mac == NULL || a->sync_ev == NULL ||
	    a->house_ev == NULL) {
		snprintf(err, errlen, "audit: out of memory");
		rc = PC_E_NOMEM;
		goto out;
	}
	a->dirfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->dirfd < 0 || fstat(a->dirfd, &sb) != 0) {
		snprintf(err, errlen, "audit: cannot open directory %s: %s",
		    a->dir, strerror(errno));
		rc = PC_E_IO;
		goto out;
	}
	if (sb.st_mode & S_IWOTH)
		pc_warn("audit directory %s is world-writable", a->dir);
	rc = take_lock(a, err, errlen);
	if (rc != 0)
		goto out;
	/* Before the first record, so that the copy starts with the
	 * file's header like the file does. */
	if (conf->syslog != NULL) {
		rc = audit_syslog_new(base, conf->syslog, &a->sl, err, errlen);
		if (rc != 0)
			goto out;
	}
	rc = resume(a, prev_file, sizeof(prev_file), &prev_end, err, errlen);
	if (rc != 0)
		goto out;
	rc = open_file(a, "open", prev_end ? prev_file : NULL, prev_end);
	if (rc == 0)
		rc = retention(a);
	if (rc != 0) {
		snprintf(err, errlen, "%s", a->why);
		goto out;
	}
	rc = sync_start(a);
	if (rc != 0) {
		snprintf(err, errlen, "audit: cannot start the fsync thread");
		goto out;
	}
	hk.tv_sec = a->max_file_age_s < AUDIT_HOUSEKEEP_S ?
	    a->max_file_age_s : AUDIT_HOUSEKEEP_S;
	hk.tv_usec = 0;
	event_add(a->house_ev, &hk);
	arm_sync(a, false);
	*out = a;
	a = NULL;
out:
	if (a != NULL) {
		/* Nobody waits yet: close quietly, no checkpoint. */
		atomic_store(&a->failed, true);
		pc_audit_close(a);
	}
	return rc;
}

void
pc_audit_stats(const struct pc_audit *a, struct pc_audit_stats *st)
{
	*st = a->st;
	st->seq = a->seq;
	st->pending = a->pend.n + a->sy.infl.n + a->ready.n;
	st->fsyncs = atomic_load(&a->fsyncs);
	audit_syslog_stats(a->sl, &st->syslog_sent, &st->syslog_dropped);
}

void
pc_audit_close(struct pc_audit *a)
{
	int rc;

	if (a == NULL)
		return;
	/* Removed while idle (no sync since to notice): say so, rather than
	 * seal a file nobody will read. */
	if (!is_failed(a) && a->fd >= 0 && !file_in_place(a))
		(void)fail(a, "audit file %s was removed or replaced under the "
		    "gateway", a->file);
	if (!is_failed(a) && a->fd >= 0 && write_checkpoint(a, "close") == 0)
		pc_info("audit log closed at seq %" PRIu64 " in %s (%" PRIu64
		    " records in %" PRIu64 " writes)", a->seq, a->file,
		    a->st.records, a->st.writes);
	rc = sync_now(a);
	/* The worker's last group first, then what it never got: every
	 * waiter learns whether its record reached the disk. */
	sync_stop(a);
	swap_lists(&a->pend, &a->sy.infl);
	deliver(&a->sy.infl, rc != 0 || a->dirty ? PC_E_IO : 0);
	/* Queued records went out with the checkpoint, or never will. */
	swap_lists(&a->ready, &a->running);
	deliver(&a->running, rc != 0 || is_failed(a) ? PC_E_IO : 0);
	if (a->fd >= 0)
		close(a->fd);
	if (a->dirfd >= 0)
		close(a->dirfd);
	if (a->lockfd >= 0)
		close(a->lockfd);	/* the lock goes with it */
	audit_syslog_free(a->sl);
	if (a->sync_ev != NULL)
		event_free(a->sync_ev);
	if (a->house_ev != NULL)
		event_free(a->house_ev);
	if (a->flush_ev != NULL)
		event_free(a->flush_ev);
	EVP_MAC_CTX_free(a->mac);
	free(a->pend.w);
	free(a->ready.w);
	free(a->running.w);
	free(a->wbuf);
	free(a->sy.infl.w);
	pthread_cond_destroy(&a->sy.idle);
	pthread_cond_destroy(&a->sy.wake);
	pthread_mutex_destroy(&a->sy.mu);
	free(a->buf);
	free(a);
}

/* --- the request record --------------------------------------------------------- */

static int
set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, v != NULL && v[0] != '\0' ?
	    json_string(v) : json_null());
}

static int
set_int(json_t *o, const char *k, int64_t v)
{
	return json_object_set_new(o, k, v >= 0 ? json_integer(v) :
	    json_null());
}

json_t *
pc_audit_request_fields(const struct pc_audit_request *r)
{
	json_t *o = json_object();
	const char *type = r->type ? r->type : "request";
	int bad = o == NULL;

	/* The order here is the record's key order (docs/audit.md). */
	bad = bad || set_str(o, "type", type);
	if (strcmp(type, "event") == 0)
		bad = bad || set_str(o, "event", r->event);
	bad = bad || set_str(o, "request_id", r->request_id) ||
	    set_str(o, "principal", r->principal) ||
	    set_str(o, "key_id", r->key_id) ||
	    set_str(o, "tenant", r->tenant) ||
	    set_str(o, "source", r->source) ||
	    set_str(o, "session", r->session) ||
	    set_str(o, "era", r->era) ||
	    set_str(o, "upstream", r->upstream) ||
	    set_str(o, "method", r->method) ||
	    set_str(o, "tool", r->tool) ||
	    json_object_set(o, "args", r->args ? r->args : json_null()) ||
	    set_str(o, "decision", r->decision) ||
	    set_str(o, "reason", r->reason) ||
	    set_str(o, "status", r->status) ||
	    set_int(o, "latency_us", r->latency_us) ||
	    set_int(o, "bytes_in", r->bytes_in) ||
	    set_int(o, "bytes_out", r->bytes_out);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
