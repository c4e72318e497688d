/*
 * The wire to a stdio child: newline-delimited JSON-RPC both ways, stderr
 * lines into the log, and message dispatch (the handshake is upstream_hs.c).
 *
 * Framing rules: one message per line; a line longer than max_line_bytes,
 * or one that is not a JSON object or array, is a protocol error of the
 * child (it is killed and restarted). Writes are queued in an evbuffer and
 * flushed when the pipe is writable, so a slow child never blocks the loop;
 * the queue has a ceiling (UP_MAX_WBUF).
 */
#include "upstream_int.h"

#include "lib/errors.h"
#include "lib/json.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

/* Bytes read from a pipe per read(2), and reads per callback before the
 * loop gets a turn to serve other descriptors. */
#define UP_READ_CHUNK		65536
#define UP_READS_PER_CB		16

/* Bytes of a non-JSON line quoted in the protocol-error log: enough to
 * recognise a stray print, too little to carry a useful secret. */
#define UP_QUOTE_BYTES		64u

static void on_out_read(evutil_socket_t fd, short what, void *arg);
static void on_err_read(evutil_socket_t fd, short what, void *arg);
static void on_in_write(evutil_socket_t fd, short what, void *arg);
static void on_eofkill(evutil_socket_t fd, short what, void *arg);

/* ---- descriptors and buffers --------------------------------------------- */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return PC_E_IO;
	return 0;
}

int
up_io_open(struct pc_upstream *up)
{
	if (set_nonblock(up->fd_in) != 0 || set_nonblock(up->fd_out) != 0 ||
	    set_nonblock(up->fd_err) != 0)
		return PC_E_IO;
	up->wbuf = evbuffer_new();
	up->rbuf = evbuffer_new();
	up->ebuf = evbuffer_new();
	up->ev_in = event_new(up->base, up->fd_in, EV_WRITE, on_in_write, up);
	up->ev_out = event_new(up->base, up->fd_out, EV_READ | EV_PERSIST,
	    on_out_read, up);
	up->ev_err = event_new(up->base, up->fd_err, EV_READ | EV_PERSIST,
	    on_err_read, up);
	if (up->wbuf == NULL || up->rbuf == NULL || up->ebuf == NULL ||
	    up->ev_in == NULL || up->ev_out == NULL ||
	    up->ev_err == NULL)
		return PC_E_NOMEM;
	if (event_add(up->ev_out, NULL) != 0 || event_add(up->ev_err, NULL) != 0)
		return PC_E_IO;
	up->rscan = 0;
	up->err_skip = false;
	up->proto_failed = false;
	return 0;
}

static void
free_event(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

static void
free_buf(struct evbuffer **b)
{
	if (*b != NULL) {
		evbuffer_free(*b);
		*b = NULL;
	}
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

void
up_io_close(struct pc_upstream *up)
{
	free_event(&up->ev_in);
	free_event(&up->ev_out);
	free_event(&up->ev_err);
	if (up->ev_eofkill != NULL)
		event_del(up->ev_eofkill);
	close_fd(&up->fd_in);
	close_fd(&up->fd_out);
	close_fd(&up->fd_err);
	free_buf(&up->wbuf);
	free_buf(&up->rbuf);
	free_buf(&up->ebuf);
}

void
up_close_stdin(struct pc_upstream *up)
{
	if (up->fd_in < 0)
		return;
	/* Last chance for queued bytes (a final cancel); never wait. */
	if (up->wbuf != NULL && evbuffer_get_length(up->wbuf) > 0)
		(void)evbuffer_write(up->wbuf, up->fd_in);
	free_event(&up->ev_in);
	close_fd(&up->fd_in);
}

/* ---- writing ------------------------------------------------------------- */

static void
on_in_write(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;

	up_enter(up);
	int n = evbuffer_write(up->wbuf, fd);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		/* The child closed its stdin (EPIPE): it cannot take more
		 * requests. Its exit, if it comes, is handled by SIGCHLD. */
		pc_warn("upstream '%s': write to stdin: %s", up->conf->name,
		    strerror(errno));
		evbuffer_drain(up->wbuf, evbuffer_get_length(up->wbuf));
		free_event(&up->ev_in);
		close_fd(&up->fd_in);
		up_fail_child(up, "stopped reading its stdin");
	} else if (evbuffer_get_length(up->wbuf) > 0) {
		event_add(up->ev_in, NULL);
	}
	up_leave(up);
}

int
up_send(struct pc_upstream *up, json_t *msg)
{
	char line[2048];
	char *text = line;
	size_t n;
	int rc = 0;

	if (up->fd_in < 0 || up->wbuf == NULL)
		return PC_E_UNAVAIL;
	if (evbuffer_get_length(up->wbuf) > UP_MAX_WBUF) {
		/* The child has stopped reading its stdin (or reads far
		 * slower than it is asked): every call would be "saturated"
		 * for ever, and answers to its own requests would be lost.
		 * Only a restart gets it going again. */
		up_fail_child(up, "it stopped reading its stdin (64 MiB "
		    "queued)");
		return PC_E_LIMIT;
	}
	/* The whole line is made aside first, so a failure halfway never
	 * leaves half a message in the stream. Compact text never holds a
	 * raw newline. */
	n = pc_json_dumpb(msg, line, sizeof(line) - 1);
	if (n == 0)
		return PC_E_INVAL;
	if (n > sizeof(line) - 1) {
		if ((text = malloc(n + 1)) == NULL)
			return PC_E_NOMEM;
		if (pc_json_dumpb(msg, text, n) != n) {
			rc = PC_E_INVAL;
			goto out;
		}
	}
	text[n] = '\n';
	if (evbuffer_add(up->wbuf, text, n + 1) != 0) {
		rc = PC_E_NOMEM;
		goto out;
	}
	/* Flushed on the next loop turn: requests made in one turn share a
	 * write(2). */
	if (!event_pending(up->ev_in, EV_WRITE, NULL))
		event_add(up->ev_in, NULL);
out:
	if (text != line)
		free(text);
	return rc;
}

/* params._meta for a modern child (version + capabilities + info) and/or a
 * progress token, merged into the caller's _meta without losing its keys.
 * Returns a new reference or NULL (no params needed / out of memory: *rc). */
static json_t *
build_params(struct pc_upstream *up, json_t *params, const char *token,
    int *rc)
{
	bool modern = up->era == PC_UP_ERA_MODERN;
	json_t *p = NULL, *meta = NULL, *old;

	*rc = 0;
	if (!modern && token == NULL)
		return params != NULL ? json_incref(params) : NULL;
	if (params != NULL && !json_is_object(params)) {
		*rc = PC_E_INVAL;
		return NULL;
	}
	/* Shallow copies: only params and params._meta are changed, and the
	 * caller's objects stay untouched. */
	p = params != NULL ? json_copy(params) : json_object();
	old = p != NULL ? json_object_get(p, "_meta") : NULL;
	meta = json_is_object(old) ? json_copy(old) : json_object();
	if (p == NULL || meta == NULL)
		goto nomem;
	if (token != NULL &&
	    json_object_set_new(meta, "progressToken", json_string(token)) != 0)
		goto nomem;
	if (modern &&
	    (json_object_set_new(meta, UP_META_VERSION,
	    json_string(UP_MODERN_VERSION)) != 0 ||
	    json_object_set(meta, UP_META_CAPS, up->modern_caps) != 0 ||
	    json_object_set(meta, UP_META_INFO, up->client_info) != 0))
		goto nomem;
	if (json_object_set_new(p, "_meta", meta) != 0) {
		meta = NULL;
		goto nomem;
	}
	return p;
nomem:
	json_decref(meta);
	json_decref(p);
	*rc = PC_E_NOMEM;
	return NULL;
}

int
up_send_request(struct pc_upstream *up, uint64_t id, const char *method,
    json_t *params, const char *progress_token)
{
	json_t *msg, *p;
	int rc;

	p = build_params(up, params, progress_token, &rc);
	if (rc != 0)
		return rc;
	msg = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id",
	    (json_int_t)id, "method", method);
	if (msg == NULL || (p != NULL && json_object_set_new(msg, "params", p)
	    != 0)) {
		if (msg == NULL)
			json_decref(p);
		json_decref(msg);
		return PC_E_NOMEM;
	}
	rc = up_send(up, msg);
	json_decref(msg);
	return rc;
}

int
up_send_notification(struct pc_upstream *up, const char *method, json_t *params)
{
	json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
	    method);
	int rc;

	if (msg == NULL ||
	    (params != NULL && json_object_set(msg, "params", params) != 0)) {
		json_decref(msg);
		return PC_E_NOMEM;
	}
	rc = up_send(up, msg);
	json_decref(msg);
	return rc;
}

int
up_send_cancelled(struct pc_upstream *up, uint64_t id, const char *reason)
{
	json_t *params = json_pack("{s:I}", "requestId", (json_int_t)id);
	int rc;

	if (params == NULL)
		return PC_E_NOMEM;
	if (reason != NULL)
		json_object_set_new(params, "reason", json_string(reason));
	rc = up_send_notification(up, "notifications/cancelled", params);
	json_decref(params);
	return rc;
}

int
pc_upstream_notify(struct pc_upstream *up, const char *method, json_t *params)
{
	if (up == NULL || method == NULL)
		return PC_E_INVAL;
	if (up->pid <= 0)
		return PC_E_UNAVAIL;
	return up_send_notification(up, method, params);
}

int
pc_upstream_respond(struct pc_upstream *up, json_t *id, json_t *result,
    json_t *error)
{
	json_t *msg;
	int rc;

	if (up == NULL || id == NULL || (result == NULL) == (error == NULL))
		return PC_E_INVAL;
	if (up->pid <= 0)
		return PC_E_UNAVAIL;
	msg = json_pack("{s:s, s:O}", "jsonrpc", "2.0", "id", id);
	if (msg == NULL || json_object_set(msg, result ? "result" : "error",
	    result ? result : error) != 0) {
		json_decref(msg);
		return PC_E_NOMEM;
	}
	rc = up_send(up, msg);
	json_decref(msg);
	return rc;
}

static void
respond_error(struct pc_upstream *up, json_t *id, int code, const char *text)
{
	json_t *err = json_pack("{s:i, s:s}", "code", code, "message", text);

	if (err != NULL)
		(void)pc_upstream_respond(up, id, NULL, err);
	json_decref(err);
}

/* ---- dispatch ------------------------------------------------------------ */

/* "pc-<id>" → the live call that asked for progress, or NULL. */
static struct up_call *
progress_call(struct pc_upstream *up, json_t *params)
{
	const char *tok = pc_json_str(params, "progressToken");
	uint64_t id;

	if (tok == NULL || strncmp(tok, "pc-", 3) != 0 ||
	    pc_parse_u64(tok + 3, 1, UINT64_MAX, &id) != 0)
		return NULL;
	struct up_call *c = up_call_find(up, id);
	return c != NULL && c->progress != NULL ? c : NULL;
}

/*
 * Whether one more line about this child may go to the gateway's log (its
 * stderr, messages of it that are dropped): UP_LOG_RATE a second with
 * bursts of UP_LOG_BURST, so a child writing without end costs the loop
 * and the disk a bounded amount. What is held back is counted and said
 * with the next line let through.
 */
static bool
up_log_admit(struct pc_upstream *up)
{
	uint64_t now = pc_now_ms();
	uint64_t add = (now - up->log_last_ms) * UP_LOG_RATE / 1000u;

	if (add > 0) {
		/* The first call finds last = 0: a full bucket. */
		up->log_tokens = add >= UP_LOG_BURST - up->log_tokens ?
		    UP_LOG_BURST : up->log_tokens + (uint32_t)add;
		up->log_last_ms = now;
	}
	if (up->log_tokens == 0) {
		up->log_held++;
		return false;
	}
	up->log_tokens--;
	if (up->log_held > 0) {
		pc_warn("upstream '%s': %llu line(s) of its output were not "
		    "logged (more than %u a second)", up->conf->name,
		    (unsigned long long)up->log_held, UP_LOG_RATE);
		up->log_held = 0;
	}
	return true;
}

static void
dispatch_response(struct pc_upstream *up, json_t *msg, json_t *id)
{
	uint64_t uid;
	struct up_call *c;

	if (!json_is_integer(id) || json_integer_value(id) < 0) {
		if (up_log_admit(up))	/* a child may send these in a loop */
			pc_warn("upstream '%s': response with a foreign id "
			    "dropped", up->conf->name);
		return;
	}
	uid = (uint64_t)json_integer_value(id);
	if (up->hs_phase != UP_HS_NONE && uid == up->hs_id) {
		up_hs_answer(up, msg);
		return;
	}
	c = up_call_find(up, uid);
	if (c == NULL) {
		if (up_log_admit(up))
			pc_warn("upstream '%s': response to unknown id %llu "
			    "dropped", up->conf->name,
			    (unsigned long long)uid);
		return;
	}
	up_call_complete(up, c, 0, msg);
}

static void
dispatch(struct pc_upstream *up, json_t *msg)
{
	const char *method;
	json_t *id;

	if (!json_is_object(msg)) {
		if (up_log_admit(up))
			pc_warn("upstream '%s': non-object message dropped",
			    up->conf->name);
		return;
	}
	method = pc_json_str(msg, "method");
	id = json_object_get(msg, "id");
	if (method != NULL && id != NULL && !json_is_null(id)) {
		if (strcmp(method, "ping") == 0) {
			json_t *empty = json_object();
			if (empty != NULL)
				(void)pc_upstream_respond(up, id, empty, NULL);
			json_decref(empty);
		} else if (up->hooks.on_request != NULL) {
			up->hooks.on_request(up, msg, up_attributed_owner(up),
			    up->hook_arg);
		} else {
			respond_error(up, id, UP_RPC_METHOD_NOT_FOUND,
			    "Method not found");
		}
	} else if (method != NULL) {
		json_t *params = pc_json_obj(msg, "params");
		struct up_call *c = NULL;
		if (strcmp(method, "notifications/progress") == 0)
			c = progress_call(up, params);
		if (c != NULL)
			up_call_progress(up, c, params);
		else if (up->hooks.on_notification != NULL)
			up->hooks.on_notification(up, msg,
			    up_attributed_owner(up), up->hook_arg);
	} else if (id != NULL) {
		dispatch_response(up, msg, id);
	} else {
		if (up_log_admit(up))
			pc_warn("upstream '%s': message without method or "
			    "id dropped", up->conf->name);
	}
}

/* ---- reading stdout ------------------------------------------------------ */

static void
protocol_error(struct pc_upstream *up, const char *what, const char *line,
    size_t len)
{
	char why[512], quote[UP_QUOTE_BYTES + 1];
	/* Redacted before it is cut to the quote (see log_stderr_line). */
	char *red = line != NULL ? pc_log_redact_head(line, len <
	    UP_ERR_WINDOW ? len : UP_ERR_WINDOW, len > UP_ERR_WINDOW) : NULL;
	size_t q = 0, rlen = red != NULL ? strlen(red) : 0;

	quote[0] = '\0';
	/* Quote only printable ASCII: the log stays one valid line. */
	for (size_t i = 0; i < rlen && i < UP_QUOTE_BYTES; i++) {
		unsigned char ch = (unsigned char)red[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			quote[q++] = (char)ch;
		else
			quote[q++] = '.';
	}
	quote[q] = '\0';
	free(red);
	if (line != NULL)
		snprintf(why, sizeof(why), "protocol error: %s (%zu bytes, "
		    "starts \"%s\")", what, len, quote);
	else
		snprintf(why, sizeof(why), "protocol error: %s", what);
	up_fail_child(up, why);
}

static void
handle_line(struct pc_upstream *up, const char *line, size_t len, bool tail)
{
	/* One value per 16 bytes of the line cap (a million for the default
	 * 16 MiB): room for any real answer, not for a line that would
	 * take the gateway's memory. */
	size_t values = up->max_line / 16 > 65536 ? up->max_line / 16 : 65536;
	struct pc_json_limits lim = { UP_JSON_DEPTH, up->max_line, 0, values };
	enum pc_json_fault fault;
	char why[128];
	json_t *msg = NULL;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;		/* tolerated: some servers emit blank lines */
	if (pc_json_parse(line, len, &lim, &msg, &fault, why, sizeof(why)) != 0) {
		/* Legal JSON jansson refuses (\u0000, a lone surrogate): one
		 * client's binary file must not kill the child every client
		 * shares. The line is ours (rbuf, drained after this). */
		size_t fixed = fault == PC_JSON_SYNTAX ?
		    pc_json_replace_bad_escapes((char *)line, len) : 0;
		if (fixed == 0 || pc_json_parse(line, len, &lim, &msg, &fault,
		    why, sizeof(why)) != 0) {
			/* A tail that is no JSON (a server's last words on
			 * its way out, a cut line) is the end of a child
			 * already gone: no protocol error, which would also
			 * reset the handshake the restart decision reads. */
			if (tail) {
				if (up_log_admit(up))
					pc_warn("upstream '%s': the %zu bytes "
					    "after its last newline are not "
					    "JSON (%s); dropped", up->conf->name,
					    len, why);
				return;
			}
			protocol_error(up, why, line, len);
			return;
		}
		if (up_log_admit(up))
			pc_warn("upstream '%s': %zu escape(s) the gateway does "
			    "not pass on (\\u0000, a lone surrogate) replaced "
			    "with U+FFFD", up->conf->name, fixed);
	}
	if (json_is_object(msg)) {
		dispatch(up, msg);
	} else if (json_is_array(msg)) {
		size_t i;
		json_t *v;
		json_array_foreach(msg, i, v) {
			if (up->proto_failed || up->free_pending)
				break;
			dispatch(up, v);
		}
	} else if (tail) {
		if (up_log_admit(up))
			pc_warn("upstream '%s': its last line is not a JSON "
			    "object or array; dropped", up->conf->name);
	} else {
		protocol_error(up, "line is not a JSON object or array", line,
		    len);
	}
	json_decref(msg);
}

static void
process_lines(struct pc_upstream *up)
{
	struct evbuffer_ptr p;

	while (!up->proto_failed && !up->free_pending && up->rbuf != NULL) {
		size_t len = evbuffer_get_length(up->rbuf);
		if (len == 0)
			break;
		if (evbuffer_ptr_set(up->rbuf, &p, up->rscan,
		    EVBUFFER_PTR_SET) != 0)
			break;
		p = evbuffer_search(up->rbuf, "\n", 1, &p);
		/* A trailing \r is tolerated (handle_line strips it), so it
		 * does not count against the cap. */
		if (p.pos < 0) {
			up->rscan = len;
			if (len > up->max_line + 1)
				protocol_error(up, "line longer than "
				    "max_line_bytes", NULL, 0);
			break;
		}
		size_t n = (size_t)p.pos;
		char cr = 0;
		if (n == up->max_line + 1) {
			struct evbuffer_ptr q;
			if (evbuffer_ptr_set(up->rbuf, &q, n - 1,
			    EVBUFFER_PTR_SET) == 0)
				(void)evbuffer_copyout_from(up->rbuf, &q, &cr, 1);
		}
		if (n > up->max_line && !(n == up->max_line + 1 && cr == '\r')) {
			protocol_error(up, "line longer than max_line_bytes",
			    NULL, 0);
			break;
		}
		const char *line = (const char *)evbuffer_pullup(up->rbuf,
		    (ev_ssize_t)n + 1);
		if (line == NULL) {
			up_fail_child(up, "out of memory reading stdout");
			break;
		}
		handle_line(up, line, n, false);
		/* rbuf survives callbacks: io is only torn down on reap or
		 * by a deferred free, never inside this loop. */
		evbuffer_drain(up->rbuf, n + 1);
		up->rscan = 0;
	}
}

/*
 * stdout ended (EOF, or the child was reaped) with bytes after the last
 * newline: a last message written without its newline, or one cut off by
 * a crash. Read as a line rather than dropped in silence: a whole answer
 * still reaches its caller; what is not JSON is logged and dropped.
 */
static void
last_line(struct pc_upstream *up)
{
	size_t len;
	const char *line;

	if (up->rbuf == NULL || up->proto_failed || up->free_pending ||
	    (len = evbuffer_get_length(up->rbuf)) == 0 || len > up->max_line)
		return;
	if (up_log_admit(up))
		pc_warn("upstream '%s': its output ended without a newline "
		    "(%zu bytes after the last one); read as a last line",
		    up->conf->name, len);
	line = (const char *)evbuffer_pullup(up->rbuf, (ev_ssize_t)len);
	if (line != NULL)
		handle_line(up, line, len, true);
	if (up->rbuf != NULL && !up->free_pending) {
		evbuffer_drain(up->rbuf, evbuffer_get_length(up->rbuf));
		up->rscan = 0;
	}
}

/* Returns false at EOF or on a read error. */
static bool
read_into(int fd, struct evbuffer *buf)
{
	for (int i = 0; i < UP_READS_PER_CB; i++) {
		int n = evbuffer_read(buf, fd, UP_READ_CHUNK);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
	return true;
}

static void
on_eofkill(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;

	up_enter(up);
	pc_warn("upstream '%s': closed stdout but did not exit; killing",
	    up->conf->name);
	up_kill_group(up, SIGKILL);
	up_leave(up);
}

static void
out_eof(struct pc_upstream *up)
{
	event_del(up->ev_out);
	if (up->ev_eofkill == NULL)
		up->ev_eofkill = evtimer_new(up->base, on_eofkill, up);
	if (up->ev_eofkill != NULL)
		up_timer_ms(up->ev_eofkill, UP_EOF_KILL_MS);
	else
		up_kill_group(up, SIGKILL);
}

static void
on_out_read(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;
	bool open;

	up_enter(up);
	open = read_into(fd, up->rbuf);
	if (up->proto_failed)
		evbuffer_drain(up->rbuf, evbuffer_get_length(up->rbuf));
	else
		process_lines(up);
	if (!open)
		last_line(up);
	if (!open && up->ev_out != NULL)
		out_eof(up);
	up_leave(up);
}

/* ---- reading stderr ------------------------------------------------------ */


/*
 * A line of the child's stderr, s[0..len) with len at most UP_ERR_WINDOW:
 * redacted whole, then cut to PC_MAX_STDERR_LINE. Cut first, a secret
 * across the cut would leave a prefix the redactor no longer knows. When
 * s is itself the head of a longer line (cut), its last bytes may hold
 * such a prefix: they are dropped (pc_log_redact_head), or a redaction
 * earlier in the line, which shortens it, could bring them under the cut.
 */
static void
log_stderr_line(struct pc_upstream *up, const char *s, size_t len, bool cut)
{
	json_t *fields;
	char *line;
	size_t n;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	/* Empty lines say nothing (and s may be NULL then). */
	if (len == 0 || !up_log_admit(up))
		return;
	if ((line = pc_log_redact_head(s, len, cut)) == NULL)
		return;
	n = strlen(line);	/* a NUL in the child's text ends it here */
	if (n > PC_MAX_STDERR_LINE) {
		n = PC_MAX_STDERR_LINE;
		/* Not inside a UTF-8 sequence: the record stays text. */
		while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80)
			n--;
		line[n] = '\0';
	}
	fields = json_pack("{s:s, s:s}", "upstream", up->conf->name, "stream",
	    "stderr");
	pc_log_fields(PC_LOG_INFO, __func__, line, fields);
	json_decref(fields);
	free(line);
}

static void
process_stderr(struct pc_upstream *up, bool final)
{
	struct evbuffer_ptr p;

	for (;;) {
		size_t len = evbuffer_get_length(up->ebuf);
		if (len == 0)
			break;
		p = evbuffer_search(up->ebuf, "\n", 1, NULL);
		if (p.pos < 0) {
			if (len < UP_ERR_WINDOW && !final)
				break;
			/* Overlong (or last, unterminated) line: log its
			 * head, drop the rest up to the next newline. */
			if (!up->err_skip) {
				size_t n = len < UP_ERR_WINDOW ? len :
				    UP_ERR_WINDOW;
				log_stderr_line(up, (const char *)
				    evbuffer_pullup(up->ebuf, (ev_ssize_t)n), n,
				    len > n || !final);
			}
			up->err_skip = !final;
			evbuffer_drain(up->ebuf, len);
			break;
		}
		size_t n = (size_t)p.pos;
		if (!up->err_skip) {
			size_t m = n < UP_ERR_WINDOW ? n : UP_ERR_WINDOW;
			log_stderr_line(up, (const char *)evbuffer_pullup(
			    up->ebuf, (ev_ssize_t)m), m, n > m);
		}
		up->err_skip = false;
		evbuffer_drain(up->ebuf, n + 1);
	}
}

static void
on_err_read(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;
	bool open;

	up_enter(up);
	open = read_into(fd, up->ebuf);
	process_stderr(up, !open);
	if (!open)
		event_del(up->ev_err);
	up_leave(up);
}

/* After the child was reaped: whatever it wrote before dying still
 * counts (a last response, a last stderr line explaining the crash). */
void
up_io_drain(struct pc_upstream *up)
{
	if (up->fd_err >= 0 && up->ebuf != NULL) {
		(void)read_into(up->fd_err, up->ebuf);
		process_stderr(up, true);
	}
	if (up->fd_out >= 0 && up->rbuf != NULL && !up->proto_failed) {
		bool open = read_into(up->fd_out, up->rbuf);

		process_lines(up);
		if (!open)		/* its end, not a pause in the middle */
			last_line(up);
	}
}

