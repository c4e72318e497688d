/*
 * The audit log's syslog sink: every record the writer has put in the file
 * is also sent, as the same bytes, to a syslog receiver in RFC 5424 form,
 * over a local datagram socket (/dev/log) or TCP with octet-counting
 * framing (RFC 6587).
 *
 * The file stays the source of truth. The sink never blocks the event
 * loop (non-blocking sockets, a bounded queue for TCP), never fails the
 * log and never refuses a request: when the receiver is away or slow,
 * records are dropped and counted, one warning is logged per outage and
 * one line when it is back. Reconnection is tried at most once a second,
 * when a record is to be sent (an idle gateway makes no connections).
 */
#include "audit.h"
#include "audit_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* RFC 5424 fields. authpriv: audit records name principals, sources and
 * (redacted) arguments; authpriv is the facility syslog daemons route to
 * files only root reads, where auth may go to world-readable ones. */
#define SL_APP_NAME		"portcullis"
#define SL_DEFAULT_FACILITY	10	/* authpriv */
#define SL_RETRY_S		1
/* The header before the record: <PRI>1 TS HOST APP PROCID MSGID SD BOM,
 * with HOST at most 255 and MSGID at most 32 (RFC 5424, 6.2). */
#define SL_HEAD_MAX		400u
#define SL_UTF8_BOM		"\xef\xbb\xbf"

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "user", 1 }, { "daemon", 3 }, { "auth", 4 }, { "authpriv", 10 },
	{ "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
	{ "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

struct audit_syslog {
	struct event_base *base;
	bool tcp;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char where[128];		/* for log lines: path or address */
	int facility;
	char host[256];			/* RFC 5424 HOSTNAME, or "-" */
	char procid[24];

	int fd;				/* -1 while down */
	bool connecting;		/* TCP connect in progress */
	bool out;			/* in an outage (warned) */
	time_t retry_at;
	struct event *wev, *rev;	/* TCP: writable, readable */
	struct evbuffer *queue;		/* TCP: framed records not yet sent */
	uint64_t queued;		/* records in the queue */

	uint64_t sent, dropped, dropped_in_outage;
};

int
pc_audit_syslog_facility(const char *name)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(name, facilities[i].name) == 0)
			return facilities[i].code;
	return PC_E_INVAL;
}

const char *
pc_audit_syslog_facility_name(int code)
{
	if (code < 0)
		code = SL_DEFAULT_FACILITY;
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (facilities[i].code == code)
			return facilities[i].name;
	return NULL;
}

int
pc_audit_syslog_addr(const char *s, struct sockaddr_storage *ss,
    socklen_t *len)
{
	char host[64];
	const char *port, *end;
	uint64_t p;
	size_t hl;
	int af = AF_INET;

	if (s == NULL)
		return PC_E_INVAL;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return PC_E_INVAL;
		s++;
		port = end + 2;
		af = AF_INET6;
	} else {
		end = strrchr(s, ':');
		if (end == NULL || memchr(s, ':', (size_t)(end - s)) != NULL)
			return PC_E_INVAL;
		port = end + 1;
	}
	hl = (size_t)(end - s);
	if (hl == 0 || hl >= sizeof(host) ||
	    pc_parse_u64(port, 1, 65535, &p) != 0)
		return PC_E_INVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return PC_E_INVAL;
		*len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return PC_E_INVAL;
		*len = sizeof(*in6);
	}
	return 0;
}

/* RFC 5424 PRINTUSASCII (33..126) only; anything else becomes '_'. */
static void
printable(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126)
			*s = '_';
}

/* --- outages ------------------------------------------------------------------ */

static void
drop(struct audit_syslog *sl, uint64_t n, const char *why)
{
	sl->dropped += n;
	sl->dropped_in_outage += n;
	if (!sl->out) {
		sl->out = true;
		pc_warn("audit syslog %s: %s; records are dropped (the audit "
		    "file keeps them) until it is back", sl->where, why);
	}
}

static void
back(struct audit_syslog *sl)
{
	if (!sl->out)
		return;
	sl->out = false;
	pc_info("audit syslog %s: back; %" PRIu64 " record(s) were dropped "
	    "meanwhile", sl->where, sl->dropped_in_outage);
	sl->dropped_in_outage = 0;
}

static void
close_conn(struct audit_syslog *sl)
{
	if (sl->wev != NULL)
		event_del(sl->wev);
	if (sl->rev != NULL)
		event_del(sl->rev);
	if (sl->fd >= 0)
		close(sl->fd);
	sl->fd = -1;
	sl->connecting = false;
}

static void
down(struct audit_syslog *sl, const char *why)
{
	close_conn(sl);
	sl->retry_at = time(NULL) + SL_RETRY_S;
	if (sl->queue != NULL)
		evbuffer_drain(sl->queue, evbuffer_get_length(sl->queue));
	/* Queued records were counted as sent; they were not. */
	sl->sent -= sl->queued;
	drop(sl, sl->queued, why);
	sl->queued = 0;
}

/* --- TCP ------------------------------------------------------------------------ */

/* One sendmsg of the queue's head; MSG_NOSIGNAL: a receiver that went
 * away must not kill the gateway with SIGPIPE. Bytes sent, or -1. */
static ssize_t
send_queue(struct audit_syslog *sl)
{
	struct evbuffer_iovec v[16];
	struct iovec iov[16];
	struct msghdr mh = { .msg_iov = iov };
	int n = evbuffer_peek(sl->queue, -1, NULL, v, 16);
	ssize_t w;

	if (n > 16)
		n = 16;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	mh.msg_iovlen = (size_t)n;
	w = sendmsg(sl->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0)
		evbuffer_drain(sl->queue, (size_t)w);
	return w;
}

static void
flush_tcp(struct audit_syslog *sl)
{
	while (evbuffer_get_length(sl->queue) > 0) {
		ssize_t n = send_queue(sl);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(sl->wev, NULL);
			return;
		}
		if (n <= 0) {
			down(sl, n < 0 ? strerror(errno) : "connection closed");
			return;
		}
	}
	sl->queued = 0;
	event_del(sl->wev);
}

static void
on_tcp_write(evutil_socket_t fd, short what, void *arg)
{
	struct audit_syslog *sl = arg;

	if (sl->connecting) {
		int err = 0;
		socklen_t elen = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
			err = errno;
		if (err != 0) {
			down(sl, strerror(err));
			return;
		}
		sl->connecting = false;
		event_add(sl->rev, NULL);
	}
	flush_tcp(sl);
}

/* A receiver has nothing to say; reading tells us when it goes away. */
static void
on_tcp_read(evutil_socket_t fd, short what, void *arg)
{
	struct audit_syslog *sl = arg;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		down(sl, n == 0 ? "connection closed by the receiver" :
		    strerror(errno));
}

/* --- connecting ----------------------------------------------------------------- */

static int
connect_sink(struct audit_syslog *sl)
{
	int fd;

	fd = socket(sl->addr.ss_family, (sl->tcp ? SOCK_STREAM : SOCK_DGRAM) |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sl->addr, sl->addrlen) != 0 &&
	    !(sl->tcp && errno == EINPROGRESS)) {
		int e = errno;

		close(fd);
		return -e;
	}
	sl->fd = fd;
	if (sl->tcp) {
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		event_assign(sl->wev, sl->base, fd, EV_WRITE, on_tcp_write, sl);
		event_assign(sl->rev, sl->base, fd, EV_READ | EV_PERSIST,
		    on_tcp_read, sl);
		/* Completion (or refusal) is seen when it turns writable. */
		sl->connecting = true;
		event_add(sl->wev, NULL);
	}
	return 0;
}

/* Up, or trying to be: false while the retry delay runs. */
static bool
ensure_up(struct audit_syslog *sl)
{
	int rc;

	if (sl->fd >= 0)
		return true;
	if (time(NULL) < sl->retry_at)
		return false;
	rc = connect_sink(sl);
	if (rc != 0) {
		sl->retry_at = time(NULL) + SL_RETRY_S;
		drop(sl, 0, strerror(-rc));
		return false;
	}
	return true;
}

/* --- sending -------------------------------------------------------------------- */

void
audit_syslog_send(struct audit_syslog *sl, int severity, const char *msgid,
    const char *ts, size_t tslen, const char *rec, size_t len)
{
	char head[SL_HEAD_MAX], mid[33];
	int hl;

	if (sl == NULL)
		return;
	/* MSGID: 1 to 32 PRINTUSASCII; the record's type is the caller's. */
	pc_strlcpy(mid, msgid != NULL && msgid[0] != '\0' ? msgid : "-",
	    sizeof(mid));
	printable(mid);
	if (!ensure_up(sl)) {
		drop(sl, 1, "not connected");
		return;
	}
	/* STRUCTURED-DATA is "-": the record itself (JSON, with its seq
	 * and MAC) is the MSG, byte for byte the line in the file. */
	hl = snprintf(head, sizeof(head), "<%d>1 %.*s %s " SL_APP_NAME
	    " %s %s - " SL_UTF8_BOM, sl->facility * 8 + severity, (int)tslen,
	    ts, sl->host, sl->procid, mid);
	if (hl < 0 || (size_t)hl >= sizeof(head)) {
		drop(sl, 1, "header too long");
		return;
	}
	if (!sl->tcp) {
		struct iovec iov[2] = {
			{ head, (size_t)hl }, { (void *)rec, len },
		};
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

		if (sendmsg(sl->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			int e = errno;

			/* A full receiver queue is congestion, not a
			 * broken socket: keep it, drop this one. */
			if (e == EAGAIN || e == ENOBUFS || e == EMSGSIZE)
				drop(sl, 1, strerror(e));
			else {
				down(sl, strerror(e));
				drop(sl, 1, strerror(e));
			}
			return;
		}
		sl->sent++;
		back(sl);
		return;
	}
	/* RFC 6587 octet counting: "LEN SP MSG". */
	if (evbuffer_get_length(sl->queue) + (size_t)hl + len + 24 >
	    PC_AUDIT_SYSLOG_MAX_QUEUE) {
		drop(sl, 1, "queue full (receiver too slow)");
		return;
	}
	if (evbuffer_add_printf(sl->queue, "%zu ", (size_t)hl + len) < 0 ||
	    evbuffer_add(sl->queue, head, (size_t)hl) != 0 ||
	    evbuffer_add(sl->queue, rec, len) != 0) {
		/* Out of memory: a partial frame would garble the stream. */
		down(sl, "out of memory");
		return;
	}
	sl->queued++;
	sl->sent++;
	if (!sl->connecting) {
		back(sl);
		flush_tcp(sl);
	}
}

/* --- life ----------------------------------------------------------------------- */

int
audit_syslog_new(struct event_base *base, const struct pc_audit_syslog_conf *c,
    struct audit_syslog **out, char *err, size_t errlen)
{
	struct audit_syslog *sl;
	int rc = PC_E_INVAL;

	*out = NULL;
	if ((c->socket == NULL) == (c->tcp == NULL) || c->facility > 23) {
		snprintf(err, errlen, "audit syslog: give exactly one of a "
		    "socket path or a TCP address");
		return PC_E_INVAL;
	}
	sl = calloc(1, sizeof(*sl));
	if (sl == NULL) {
		snprintf(err, errlen, "audit syslog: out of memory");
		return PC_E_NOMEM;
	}
	sl->base = base;
	sl->fd = -1;
	sl->facility = c->facility < 0 ? SL_DEFAULT_FACILITY : c->facility;
	if (c->socket != NULL) {
		struct sockaddr_un *un = (struct sockaddr_un *)&sl->addr;

		if (strlen(c->socket) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "audit syslog: socket path too "
			    "long");
			goto out;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, c->socket, strlen(c->socket) + 1);
		sl->addrlen = sizeof(*un);
		snprintf(sl->where, sizeof(sl->where), "%s", c->socket);
	} else {
		sl->tcp = true;
		if (pc_audit_syslog_addr(c->tcp, &sl->addr, &sl->addrlen) != 0) {
			snprintf(err, errlen, "audit syslog: tcp must be a "
			    "numeric IP address and port, e.g. 127.0.0.1:514");
			goto out;
		}
		snprintf(sl->where, sizeof(sl->where), "tcp %s", c->tcp);
		sl->queue = evbuffer_new();
		sl->wev = calloc(1, event_get_struct_event_size());
		sl->rev = calloc(1, event_get_struct_event_size());
		if (sl->queue == NULL || sl->wev == NULL || sl->rev == NULL) {
			snprintf(err, errlen, "audit syslog: out of memory");
			rc = PC_E_NOMEM;
			goto out;
		}
		/* Assigned for real on each connection; until then a valid
		 * event that is never added, so event_del is always safe. */
		event_assign(sl->wev, base, -1, 0, on_tcp_write, sl);
		event_assign(sl->rev, base, -1, 0, on_tcp_read, sl);
	}
	if (gethostname(sl->host, sizeof(sl->host)) != 0 || sl->host[0] == '\0')
		pc_strlcpy(sl->host, "-", sizeof(sl->host));
	sl->host[sizeof(sl->host) - 1] = '\0';
	printable(sl->host);
	snprintf(sl->procid, sizeof(sl->procid), "%ld", (long)getpid());
	/* A receiver that is not there yet is an outage, not an error: the
	 * gateway starts, and the first record retries. */
	(void)ensure_up(sl);
	*out = sl;
	sl = NULL;
	rc = 0;
out:
	audit_syslog_free(sl);
	return rc;
}

void
audit_syslog_stats(const struct audit_syslog *sl, uint64_t *sent,
    uint64_t *dropped)
{
	*sent = sl != NULL ? sl->sent : 0;
	*dropped = sl != NULL ? sl->dropped : 0;
}

void
audit_syslog_free(struct audit_syslog *sl)
{
	if (sl == NULL)
		return;
	/* A last try for what is queued, without waiting for it. */
	if (sl->tcp && sl->fd >= 0 && !sl->connecting)
		(void)send_queue(sl);
	close_conn(sl);
	free(sl->wev);
	free(sl->rev);
	if (sl->queue != NULL)
		evbuffer_free(sl->queue);
	free(sl);
}
