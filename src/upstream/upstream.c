/*
 * Upstream supervisor: the state machine of one stdio child.
 *
 *   new ──start──► STARTING ──handshake──► READY
 *                     │  ▲                   │ exit / protocol error
 *                     ▼  └──── backoff ◄─────┘
 *                  BACKOFF
 *   any ──shutdown──► STOPPING ──reaped──► STOPPED
 *
 * Re-entrancy: every callback into the owner (reply, progress, hooks,
 * shutdown done) may call back into this module, including
 * pc_upstream_free(). Entry points from libevent bracket their work with
 * up_enter()/up_leave(); a free requested while inside is deferred to the
 * outermost up_leave(), so no code here touches a freed object.
 */
#include "upstream_int.h"

#include "lib/errors.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"

#include <event2/buffer.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void call_free(struct up_call *c);

uint32_t
up_ms_or(uint32_t v, uint32_t def)
{
	return v != 0 ? v : def;
}

void
up_timer_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {
		.tv_sec = (time_t)(ms / 1000u),
		.tv_usec = (suseconds_t)((ms % 1000u) * 1000u),
	};

	event_add(ev, &tv);
}

/* ---- object lifetime ----------------------------------------------------- */

static void
free_ev(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

static void
real_free(struct pc_upstream *up)
{
	struct up_call *c;

	up->closing = true;
	if (up->pid > 0) {
		up_kill_group(up, SIGKILL);
		up_reap_blocking(up);
	}
	up_io_close(up);
	/* Calls still in flight are dropped silently: the owner is freeing
	 * the upstream and must not be called back from inside free. */
	while ((c = TAILQ_FIRST(&up->calls)) != NULL) {
		TAILQ_REMOVE(&up->calls, c, link);
		call_free(c);
	}
	free_ev(&up->ev_hs);
	free_ev(&up->ev_restart);
	free_ev(&up->ev_stable);
	free_ev(&up->ev_eofkill);
	free_ev(&up->ev_sd);
	up_registry_del(up);
	json_decref(up->server_info);
	json_decref(up->modern_caps);
	json_decref(up->client_info);
	free(up);
}

void
up_enter(struct pc_upstream *up)
{
	up->busy++;
}

bool
up_leave(struct pc_upstream *up)
{
	if (--up->busy == 0 && up->free_pending) {
		real_free(up);
		return true;
	}
	return false;
}

void
pc_upstream_free(struct pc_upstream *up)
{
	if (up == NULL)
		return;
	if (up->busy > 0) {
		/* Inside one of our own callbacks: stop everything that could
		 * call the owner again, free on the way out. */
		up->free_pending = true;
		up->closing = true;
		up_kill_group(up, SIGKILL);
		return;
	}
	real_free(up);
}

/* ---- calls ----------------------------------------------------------------- */

static void
call_free(struct up_call *c)
{
	event_del(&c->timer);
	free(c);
}

struct up_call *
up_call_find(struct pc_upstream *up, uint64_t id)
{
	struct up_call *c = up->buckets[id & (UP_BUCKETS - 1)];

	while (c != NULL && c->id != id)
		c = c->hnext;
	return c;
}

static void
call_unlink(struct pc_upstream *up, struct up_call *c)
{
	struct up_call **pp = &up->buckets[c->id & (UP_BUCKETS - 1)];

	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	TAILQ_REMOVE(&up->calls, c, link);
	up->ncalls--;
	event_del(&c->timer);
}

static void sd_step(struct pc_upstream *up);

static void
drain_check(struct pc_upstream *up)
{
	if (up->sd_phase == UP_SD_DRAIN && up->ncalls == 0)
		sd_step(up);
}

void
up_call_complete(struct pc_upstream *up, struct up_call *c, int err,
    json_t *msg)
{
	pc_upstream_reply_fn reply = c->reply;
	void *arg = c->arg;

	call_unlink(up, c);
	call_free(c);
	if (!up->free_pending)
		reply(arg, err, msg);
	if (!up->free_pending)
		drain_check(up);
}

void
up_call_progress(struct pc_upstream *up, struct up_call *c, json_t *params)
{
	uint64_t now = pc_now_ms();
	uint64_t deadline = now + c->timeout_ms;

	if (deadline > c->hard_deadline_ms)
		deadline = c->hard_deadline_ms;
	up_timer_ms(&c->timer, deadline > now ? deadline - now : 0);
	c->progress(c->arg, params);
}

/*
 * Who caused an unattributed message of the child (a log line, a request
 * to the client): the owner of the only client call in flight, else
 * nobody. The gateway's own calls (catalogue pages, unsubscribes) have no
 * owner and never count: their callback argument is not a client call,
 * and treating it as one crashed the gateway.
 */
uint64_t
pc_upstream_generation(const struct pc_upstream *up)
{
	return up != NULL ? up->generation : 0;
}

void *
up_attributed_owner(const struct pc_upstream *up)
{
	const struct up_call *c, *only = NULL;
	void *owner = NULL;

	TAILQ_FOREACH(c, &up->calls, link) {
		if (c->owner == NULL)
			continue;
		if (owner != NULL)
			return NULL;		/* two clients: nobody */
		owner = c->owner;
		only = c;
	}
	/* A call given up on may still be running in the child: what the
	 * child says now may be for it, not for the one call left, unless
	 * that call is the same client's. */
	if (only != NULL && pc_now_ms() < up->attr_blocked_until_ms &&
	    (up->attr_blocked_client == UINT64_MAX ||
	    only->client != up->attr_blocked_client))
		return NULL;
	return owner;
}

void
pc_upstream_set_owner(struct pc_upstream *up, uint64_t handle, void *owner,
    uint64_t client)
{
	struct up_call *c;

	if (up != NULL && (c = up_call_find(up, handle)) != NULL) {
		c->owner = owner;
		c->client = client;
	}
}

/* Client call c is given up (cancelled, timed out) while the child may go
 * on with it: for one more call timeout, the child's unattributed messages
 * (a log line, an elicitation) could be its, and go to nobody rather than
 * to whichever other call is in flight. A child still at it after that is
 * the case docs/upstream.md names (work of a call that ended). */
static void
block_attribution(struct pc_upstream *up, const struct up_call *c)
{
	uint64_t now = pc_now_ms(), until = now + c->timeout_ms;

	if (c->owner == NULL)
		return;			/* the gateway's own call */
	/* Two clients' calls given up at once (or one of unknown client):
	 * nobody's. */
	if (c->client == 0 || (now < up->attr_blocked_until_ms &&
	    up->attr_blocked_client != c->client))
		up->attr_blocked_client = UINT64_MAX;
	else
		up->attr_blocked_client = c->client;
	if (until > up->attr_blocked_until_ms)
		up->attr_blocked_until_ms = until;
}

static void
fail_all(struct pc_upstream *up, int err)
{
	struct up_call *c;

	while (!up->free_pending && (c = TAILQ_FIRST(&up->calls)) != NULL)
		up_call_complete(up, c, err, NULL);
}

static void
on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct up_call *c = arg;
	struct pc_upstream *up = c->up;

	up_enter(up);
	pc_info("upstream '%s': call %llu timed out", up->conf->name,
	    (unsigned long long)c->id);
	(void)up_send_cancelled(up, c->id, "timeout");
	block_attribution(up, c);
	up_call_complete(up, c, PC_E_TIMEOUT, NULL);
	up_leave(up);
}

int
pc_upstream_call(struct pc_upstream *up, const char *method, json_t *params,
    uint32_t timeout_ms, pc_upstream_reply_fn reply,
    pc_upstream_progress_fn progress, void *call_arg, uint64_t *handle)
{
	const struct pc_upstream_conf *conf;
	char token[32];
	struct up_call *c;
	uint32_t max_ms;
	int rc;

	if (up == NULL || method == NULL || reply == NULL)
		return PC_E_INVAL;
	if (up->closing)
		return PC_E_CLOSED;
	if (up->state != PC_UP_READY)
		return PC_E_UNAVAIL;
	if (up->ncalls >= PC_MAX_UPSTREAM_INFLIGHT)
		return PC_E_LIMIT;
	conf = up->conf;
	max_ms = up_ms_or(conf->max_call_timeout_ms, PC_DEF_MAX_CALL_TIMEOUT_MS);
	if (max_ms > PC_MAX_CALL_TIMEOUT_MS)
		max_ms = PC_MAX_CALL_TIMEOUT_MS;
	if (timeout_ms == 0)
		timeout_ms = up_ms_or(conf->call_timeout_ms,
		    PC_DEF_CALL_TIMEOUT_MS);
	if (timeout_ms > max_ms)
		timeout_ms = max_ms;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return PC_E_NOMEM;
	c->id = up->next_id++;
	c->up = up;
	c->reply = reply;
	c->progress = progress;
	c->arg = call_arg;
	c->timeout_ms = timeout_ms;
	c->start_ms = pc_now_ms();
	c->hard_deadline_ms = c->start_ms + max_ms;
	if (progress != NULL)
		snprintf(token, sizeof(token), "pc-%llu",
		    (unsigned long long)c->id);
	rc = up_send_request(up, c->id, method, params,
	    progress != NULL ? token : NULL);
	if (rc != 0) {
		free(c);
		return rc;
	}
	evtimer_assign(&c->timer, up->base, on_call_timeout, c);
	up_timer_ms(&c->timer, timeout_ms);
	struct up_call **head = &up->buckets[c->id & (UP_BUCKETS - 1)];
	c->hnext = *head;
	*head = c;
	TAILQ_INSERT_TAIL(&up->calls, c, link);
	up->ncalls++;
	if (handle != NULL)
		*handle = c->id;
	return 0;
}

void
pc_upstream_cancel(struct pc_upstream *up, uint64_t handle, const char *reason)
{
	struct up_call *c;

	if (up == NULL || (c = up_call_find(up, handle)) == NULL)
		return;
	(void)up_send_cancelled(up, c->id, reason);
	block_attribution(up, c);
	call_unlink(up, c);
	call_free(c);
	up_enter(up);
	drain_check(up);
	up_leave(up);
}

/* ---- starting and restarting ---------------------------------------------- */

static void
schedule_restart(struct pc_upstream *up, uint32_t delay_ms)
{
	up->state = PC_UP_BACKOFF;
	up_timer_ms(up->ev_restart, delay_ms);
}

/* Next delay; doubles up to restart_max_ms. */
static uint32_t
next_backoff(struct pc_upstream *up)
{
	uint32_t max = up_ms_or(up->conf->restart_max_ms, PC_DEF_RESTART_MAX_MS);
	uint32_t delay = up->backoff_ms;

	if (max < delay)
		max = delay;
	up->backoff_ms = delay > max / 2 ? max : delay * 2;
	return delay;
}

static int
spawn_incarnation(struct pc_upstream *up)
{
	int rc;

	up->state = PC_UP_STARTING;
	up->was_ready = false;
	json_decref(up->server_info);
	up->server_info = NULL;
	up->proto_ver[0] = '\0';
	rc = up_spawn(up);
	if (rc != 0) {
		uint32_t delay = next_backoff(up);
		pc_warn("upstream '%s': restart in %u ms", up->conf->name,
		    delay);
		schedule_restart(up, delay);
		/* The router must learn that this upstream is not coming up
		 * (readiness, /readyz) just as for a child that died. */
		if (!up->free_pending && up->hooks.on_down != NULL)
			up->hooks.on_down(up, up->hook_arg);
		return PC_E_SPAWN;
	}
	rc = up_hs_begin(up);
	if (rc != 0)
		up_fail_child(up, "cannot start the handshake");
	return 0;
}

static void
on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;

	up_enter(up);
	if (!up->closing)
		(void)spawn_incarnation(up);
	up_leave(up);
}

static void
on_stable(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;

	up->backoff_ms = up_ms_or(up->conf->restart_min_ms,
	    PC_DEF_RESTART_MIN_MS);
}

int
pc_upstream_start(struct pc_upstream *up)
{
	if (up == NULL)
		return PC_E_INVAL;
	if (up->closing)
		return PC_E_CLOSED;
	if (up->pid > 0 || up->state == PC_UP_BACKOFF)
		return 0;	/* already running or about to be */
	return spawn_incarnation(up);
}

void
up_became_ready(struct pc_upstream *up)
{
	if (up->closing)
		return;
	up->state = PC_UP_READY;
	up->was_ready = true;
	up_timer_ms(up->ev_stable, UP_STABLE_MS);
	pc_info("upstream '%s': ready (%s, protocol %s)", up->conf->name,
	    up->era == PC_UP_ERA_MODERN ? "modern" : "legacy", up->proto_ver);
	if (up->hooks.on_ready != NULL)
		up->hooks.on_ready(up, up->hook_arg);
}

void
up_fail_child(struct pc_upstream *up, const char *why)
{
	if (up->proto_failed)
		return;
	pc_error("upstream '%s': %s; killing it", up->conf->name, why);
	up->proto_failed = true;
	if (up->ev_out != NULL)
		event_del(up->ev_out);
	if (up->rbuf != NULL)
		evbuffer_drain(up->rbuf, evbuffer_get_length(up->rbuf));
	up_hs_reset(up);
	up_kill_group(up, SIGKILL);
}

static void
finish_shutdown(struct pc_upstream *up)
{
	void (*done)(void *) = up->sd_done;
	void *arg = up->sd_arg;

	up->sd_phase = UP_SD_NONE;
	up->sd_done = NULL;
	up->state = PC_UP_STOPPED;
	if (up->ev_sd != NULL)
		event_del(up->ev_sd);
	pc_info("upstream '%s': stopped", up->conf->name);
	if (done != NULL)
		done(arg);
}

void
up_child_exited(struct pc_upstream *up, int status)
{
	enum up_hs_phase hs;
	bool was_ready;
	bool quick;

	/* Whatever it wrote before dying still counts. */
	up_io_drain(up);
	if (up->free_pending)
		return;
	hs = up->hs_phase;
	was_ready = up->was_ready;
	up_io_close(up);
	up_hs_reset(up);
	event_del(up->ev_stable);
	up->was_ready = false;

	if (up->closing) {
		up_log_exit(up, status, true);
		fail_all(up, PC_E_UNAVAIL);
		if (!up->free_pending)
			finish_shutdown(up);
		return;
	}
	/* rmcp-style servers exit on any request before initialize: the probe
	 * killed it. Not a crash; remember the verdict and go straight on.
	 * The same when it died during the initialize that followed a probe
	 * it never answered: a slow starter (npx, a container's cold start)
	 * reads the probe late, after we gave up on it, and dies of it; a
	 * new probe would kill every start. At most once: with the verdict
	 * kept, a later death is a crash. */
	quick = (hs == UP_HS_PROBE || (hs == UP_HS_INIT &&
	    up->probe_fell_back)) && !up->hs_strict &&
	    up->conf->era == PC_ERA_AUTO && !up->legacy_sticky;
	up->state = PC_UP_BACKOFF;
	fail_all(up, PC_E_UNAVAIL);
	/* Also on a failed first start: the router must not wait for an
	 * upstream that cannot come up. */
	if ((was_ready || !quick) && !up->free_pending &&
	    up->hooks.on_down != NULL)
		up->hooks.on_down(up, up->hook_arg);
	if (up->free_pending || up->closing)
		return;
	if (quick) {
		pc_info("upstream '%s': exited after server/discover; "
		    "treating it as legacy", up->conf->name);
		up->legacy_sticky = true;
		schedule_restart(up, 0);
		return;
	}
	up_log_exit(up, status, false);
	uint32_t delay = next_backoff(up);
	pc_warn("upstream '%s': restart in %u ms", up->conf->name, delay);
	schedule_restart(up, delay);
}

/* ---- shutdown ------------------------------------------------------------- */

static void
sd_step(struct pc_upstream *up)
{
	uint32_t grace = up_ms_or(up->conf->shutdown_grace_ms,
	    PC_DEF_SHUTDOWN_GRACE_MS);
	struct up_call *c;

	switch (up->sd_phase) {
	case UP_SD_DRAIN:
		/* Grace is over, or nothing is left: cancel the stragglers
		 * (the child should stop working on them), then EOF. */
		while (!up->free_pending &&
		    (c = TAILQ_FIRST(&up->calls)) != NULL) {
			(void)up_send_cancelled(up, c->id, "shutdown");
			up_call_complete(up, c, PC_E_CLOSED, NULL);
		}
		if (up->free_pending || up->sd_phase != UP_SD_DRAIN)
			return;
		up->sd_phase = UP_SD_STDIN;
		up_close_stdin(up);
		up_timer_ms(up->ev_sd, grace);
		break;
	case UP_SD_STDIN:
		pc_info("upstream '%s': did not exit after stdin closed; "
		    "sending SIGTERM", up->conf->name);
		up->sd_phase = UP_SD_TERM;
		up_kill_group(up, SIGTERM);
		up_timer_ms(up->ev_sd, grace);
		break;
	case UP_SD_TERM:
		pc_warn("upstream '%s': did not exit after SIGTERM; sending "
		    "SIGKILL", up->conf->name);
		up->sd_phase = UP_SD_KILL;
		up_kill_group(up, SIGKILL);
		up_timer_ms(up->ev_sd, grace);
		break;
	case UP_SD_KILL:
		/* Not even SIGKILL: stuck in the kernel (a hung mount). The
		 * gateway's shutdown must not wait for it forever; freeing
		 * the upstream reaps it if it can, briefly. */
		pc_error("upstream '%s': did not exit after SIGKILL; shutting "
		    "down without it", up->conf->name);
		finish_shutdown(up);
		break;
	default:
		break;
	}
}

static void
on_sd_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pc_upstream *up = arg;

	up_enter(up);
	sd_step(up);
	up_leave(up);
}

void
pc_upstream_shutdown(struct pc_upstream *up, void (*done)(void *), void *arg)
{
	if (up == NULL)
		return;
	if (up->sd_phase != UP_SD_NONE) {
		/* One shutdown at a time; a second waiter joins if the slot
		 * is free, else it is told at once (nothing else to wait). */
		if (up->sd_done == NULL) {
			up->sd_done = done;
			up->sd_arg = arg;
		} else if (done != NULL) {
			pc_warn("upstream '%s': shutdown already in progress",
			    up->conf->name);
			done(arg);
		}
		return;
	}
	up_enter(up);
	up->closing = true;
	event_del(up->ev_restart);
	event_del(up->ev_stable);
	up_hs_reset(up);
	if (up->pid <= 0) {
		up->sd_done = done;
		up->sd_arg = arg;
		finish_shutdown(up);
		up_leave(up);
		return;
	}
	up->state = PC_UP_STOPPING;
	up->sd_done = done;
	up->sd_arg = arg;
	up->sd_phase = UP_SD_DRAIN;
	if (up->ncalls > 0)
		up_timer_ms(up->ev_sd, up_ms_or(up->conf->shutdown_grace_ms,
		    PC_DEF_SHUTDOWN_GRACE_MS));
	else
		sd_step(up);
	up_leave(up);
}

/* ---- construction and accessors ------------------------------------------ */

int
pc_upstream_new(struct event_base *base, const struct pc_upstream_conf *conf,
    const struct pc_upstream_hooks *hooks, void *hook_arg,
    struct pc_upstream **out)
{
	struct pc_upstream *up;
	int rc = PC_E_NOMEM;

	if (out == NULL)
		return PC_E_INVAL;
	*out = NULL;
	if (base == NULL || conf == NULL || conf->name == NULL ||
	    conf->argv == NULL || conf->argv[0] == NULL ||
	    conf->argv[0][0] == '\0')
		return PC_E_INVAL;
	up = calloc(1, sizeof(*up));
	if (up == NULL)
		return PC_E_NOMEM;
	up->base = base;
	up->conf = conf;
	if (hooks != NULL)
		up->hooks = *hooks;
	up->hook_arg = hook_arg;
	up->state = PC_UP_STOPPED;
	up->fd_in = up->fd_out = up->fd_err = -1;
	up->next_id = 1;
	TAILQ_INIT(&up->calls);
	up->backoff_ms = up_ms_or(conf->restart_min_ms, PC_DEF_RESTART_MIN_MS);
	up->max_line = up_ms_or(conf->max_line_bytes, PC_DEF_MAX_LINE_BYTES);
	if (up->max_line > PC_MAX_MAX_LINE_BYTES)
		up->max_line = PC_MAX_MAX_LINE_BYTES;
	up->ev_restart = evtimer_new(base, on_restart, up);
	up->ev_stable = evtimer_new(base, on_stable, up);
	up->ev_sd = evtimer_new(base, on_sd_timer, up);
	up->client_info = json_pack("{s:s, s:s}", "name", UP_CLIENT_NAME,
	    "version", UP_CLIENT_VERSION);
	up->modern_caps = conf->client_roots ?
	    json_pack("{s:{}, s:{}, s:{}}", "sampling", "elicitation", "roots") :
	    json_pack("{s:{}, s:{}}", "sampling", "elicitation");
	if (up->ev_restart == NULL || up->ev_stable == NULL ||
	    up->ev_sd == NULL || up->client_info == NULL ||
	    up->modern_caps == NULL)
		goto out;
	rc = up_registry_add(up);
	if (rc != 0)
		goto out;
	*out = up;
	return 0;
out:
	free_ev(&up->ev_restart);
	free_ev(&up->ev_stable);
	free_ev(&up->ev_sd);
	json_decref(up->client_info);
	json_decref(up->modern_caps);
	free(up);
	return rc;
}

size_t
pc_upstream_queued(const struct pc_upstream *up)
{
	return up->wbuf != NULL ? evbuffer_get_length(up->wbuf) : 0;
}

const char *
pc_upstream_name(const struct pc_upstream *up)
{
	return up->conf->name;
}

const struct pc_upstream_conf *
pc_upstream_conf(const struct pc_upstream *up)
{
	return up->conf;
}

enum pc_upstream_state
pc_upstream_state(const struct pc_upstream *up)
{
	return up->state;
}

enum pc_upstream_era
pc_upstream_era(const struct pc_upstream *up)
{
	return up->era;
}

json_t *
pc_upstream_server_info(const struct pc_upstream *up)
{
	return up->server_info;
}

const char *
pc_upstream_protocol_version(const struct pc_upstream *up)
{
	return up->proto_ver[0] != '\0' ? up->proto_ver : NULL;
}

unsigned
pc_upstream_inflight(const struct pc_upstream *up)
{
	return up->ncalls;
}

long
pc_upstream_pid(const struct pc_upstream *up)
{
	return (long)up->pid;
}
