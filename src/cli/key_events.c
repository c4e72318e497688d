/*
 * Copy key lifecycle events from the store into the audit log (see
 * key_events.h). Runs on the event loop: one indexed query a second, and
 * only when the store changed since the last pass.
 */
#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "../audit/audit.h"
#include "key_events.h"
#include "../lib/errors.h"
#include "../lib/log.h"
#include "../store/store.h"

/* Events copied per pass: a burst of CLI calls drains over a few seconds
 * instead of holding the loop. */
#define KEY_EVENTS_PER_PASS 256u
#define KEY_EVENTS_CONSUMER "audit"

struct pc_key_events {
	struct pc_store *st;
	struct pc_audit *audit;
	struct event *timer;
	uint64_t version;	/* pc_store_version() at the last pass */
	int primed;
};

static int
take(void *arg, const struct pc_store_event *ev)
{
	struct pc_key_events *k = arg;
	struct pc_audit_request r = {
		.type = "event", .event = ev->event,
		.principal = ev->principal[0] ? ev->principal : NULL,
		.key_id = ev->key_id[0] ? ev->key_id : NULL,
		.tenant = ev->tenant[0] ? ev->tenant : NULL,
		.latency_us = -1, .bytes_in = -1, .bytes_out = -1,
	};
	json_t *f = pc_audit_request_fields(&r);
	int rc;

	if (f == NULL)
		return PC_E_NOMEM;
	/* When the CLI made the change (the record's own ts is when the
	 * gateway learnt of it), and what changed. */
	json_object_set_new(f, "at", json_integer(ev->ts));
	if (ev->detail[0] != '\0')
		json_object_set_new(f, "detail", json_string(ev->detail));
	/* No reply waits for a key event, in strict mode either. */
	rc = pc_audit_write(k->audit, f, pc_audit_strict(k->audit) ?
	    pc_audit_no_wait : NULL, NULL);
	json_decref(f);
	if (rc != 0)
		pc_error("audit: cannot record %s of key %s; it stays queued",
		    ev->event, ev->key_id);
	return rc;
}

static void
pass(struct pc_key_events *k)
{
	uint64_t v = pc_store_version(k->st);
	int n;

	if (k->primed && v == k->version)
		return;
	n = pc_store_events_take(k->st, KEY_EVENTS_CONSUMER,
	    KEY_EVENTS_PER_PASS, take, k);
	if (n < 0) {
		pc_warn("audit: cannot read key events from the store: %s",
		    pc_strerror(n));
		return;	/* not primed: try again next second */
	}
	/* A full pass may have left more: read again next second. */
	k->primed = n < (int)KEY_EVENTS_PER_PASS;
	k->version = pc_store_version(k->st);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pass(arg);
}

int
pc_key_events_start(struct event_base *base, struct pc_store *st,
    struct pc_audit *a, struct pc_key_events **out)
{
	struct pc_key_events *k = calloc(1, sizeof(*k));
	struct timeval tv = { 1, 0 };

	*out = NULL;
	if (k == NULL)
		return PC_E_NOMEM;
	k->st = st;
	k->audit = a;
	k->timer = event_new(base, -1, EV_PERSIST, on_timer, k);
	if (k->timer == NULL || event_add(k->timer, &tv) != 0) {
		pc_key_events_free(k);
		return PC_E_NOMEM;
	}
	pass(k);
	*out = k;
	return 0;
}

void
pc_key_events_free(struct pc_key_events *k)
{
	if (k == NULL)
		return;
	if (k->timer != NULL) {
		pass(k);
		event_free(k->timer);
	}
	free(k);
}
