/*
 * A tools/call whose URL constraint needs a host name looked up.
 *
 * The policy check never waits for DNS on the event loop: with a memo it
 * stops at the first name it has no verdict for (PC_E_AGAIN). The call then
 * waits here: the name is looked up on a worker (src/lib/resolve.h), the
 * verdict goes into the memo, and the whole tools/call path runs again
 * from the arguments as the client sent them, under the policy and the
 * catalogue in force by then. A call needs at most PC_URL_MEMO_MAX names;
 * each lookup is bounded by PC_URL_LOOKUP_TIMEOUT_MS, after which the name
 * counts as refused (fail closed), as does a lookup the resolver cannot
 * take (queue full).
 *
 * The wait belongs to the call: the client leaving, a cancellation or the
 * call's end frees it (pc_rdns_free), which cancels the lookup and its
 * timer.
 */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/resolve.h"
#include "router_int.h"

struct pc_rdns {
	struct pc_call *c;
	struct pc_url_memo memo;
	struct pc_principal who;	/* the caller, as authenticated */
	json_t *params;			/* the request's params (a reference) */
	struct pc_lookup *lookup;	/* running, or NULL */
	struct event *timer;		/* bounds the running lookup */
};

struct pc_url_memo *
pc_rdns_memo(struct pc_call *c)
{
	if (c->dns == NULL) {
		c->dns = calloc(1, sizeof(*c->dns));
		if (c->dns == NULL)
			return NULL;
		c->dns->c = c;
	}
	return &c->dns->memo;
}

void
pc_rdns_free(struct pc_rdns *d)
{
	if (d == NULL)
		return;
	pc_lookup_cancel(d->lookup);
	if (d->timer != NULL)
		event_free(d->timer);
	json_decref(d->params);
	explicit_bzero(&d->who, sizeof(d->who));
	free(d);
}

/* The verdict is in the memo: run the call's path again. */
static void
resume(struct pc_rdns *d)
{
	struct pc_call *c = d->c;
	struct pc_principal who = d->who;
	struct pc_reqinfo ri;
	json_t *params = json_incref(d->params);

	memset(&ri, 0, sizeof(ri));
	ri.era = c->era;
	ri.session = c->session;
	ri.principal = &who;
	ri.gate = c->gate;
	ri.gate_ctx = c->gate_ctx;
	/* The call (and d with it) may end inside. */
	pc_router_tool_resume(c, &ri, params);
	json_decref(params);
	explicit_bzero(&who, sizeof(who));
}

static void
looked_up(void *arg, int gai, const struct addrinfo *res)
{
	struct pc_rdns *d = arg;

	d->lookup = NULL;
	evtimer_del(d->timer);
	pc_url_memo_put(&d->memo, gai, res);
	resume(d);
}

/* No answer to wait for: the lookup took too long (its worker is let go),
 * or it could not even start (the queue was full; the timer then fires at
 * once, so that the check that asked is never re-entered from inside
 * itself). Either way the name counts as refused. */
static void
no_answer(evutil_socket_t fd, short what, void *arg)
{
	struct pc_rdns *d = arg;

	(void)fd;
	(void)what;
	if (d->lookup != NULL) {
		pc_lookup_cancel(d->lookup);
		d->lookup = NULL;
		/* The name stays out of the log: it is part of an argument. */
		pc_warn("policy: a URL host lookup took over %u ms: refused",
		    PC_URL_LOOKUP_TIMEOUT_MS);
	}
	pc_url_memo_put(&d->memo, EAI_FAIL, NULL);
	resume(d);
}

int
pc_rdns_wait(struct pc_call *c, const struct pc_reqinfo *ri, json_t *params)
{
	struct pc_router *r = c->r;
	struct pc_rdns *d = c->dns;
	struct timeval tv = { PC_URL_LOOKUP_TIMEOUT_MS / 1000,
	    (PC_URL_LOOKUP_TIMEOUT_MS % 1000) * 1000 };
	int rc;

	if (d == NULL || d->lookup != NULL || d->memo.need[0] == '\0')
		return PC_E_INVAL;
	if (d->timer == NULL &&
	    (d->timer = evtimer_new(r->base, no_answer, d)) == NULL)
		return PC_E_NOMEM;
	if (d->params == NULL) {
		if (ri->principal != NULL)
			d->who = *ri->principal;
		d->params = json_incref(params);
	}
	if (r->resolver == NULL &&
	    (rc = pc_resolver_new(r->base, &r->resolver)) != 0)
		return rc;
	rc = pc_resolve(r->resolver, d->memo.need, 0, looked_up, d,
	    &d->lookup);
	if (rc == PC_E_LIMIT) {
		pc_warn("policy: too many URL host lookups waiting: refused");
		tv.tv_sec = tv.tv_usec = 0;	/* d->lookup is NULL */
	} else if (rc != 0) {
		return rc;
	}
	return evtimer_add(d->timer, &tv) == 0 ? 0 : PC_E_NOMEM;
}
