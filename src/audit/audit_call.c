/*
 * The record of one request's outcome (see audit_call.h): gathered by a
 * front end, written through the audit log's hot path.
 */
#include "audit_call.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../authn/principal.h"
#include "../lib/errors.h"
#include "../lib/util.h"
#include "../secrets/redact.h"
#include "audit.h"

static const char *
nz(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/*
 * A call's arguments fit for the audit log. When nothing needs removing
 * (the common case) a reference to the client's own arguments, which
 * nothing changes afterwards (the policy rewrites a copy,
 * pc_policy_rewrites); else a redacted copy.
 */
static json_t *
call_args(const struct pc_redactor *r, const json_t *schema, json_t *params)
{
	json_t *args = json_object_get(params, "arguments");

	return r == NULL || args == NULL ? NULL :
	    pc_redact_json_copy(r, args, schema);
}

struct pc_audit_call *
pc_audit_call_new(const struct pc_redactor *r, const json_t *schema,
    const char *request_id, const struct pc_principal *who,
    const char *source, const char *era, json_t *msg, const char *session)
{
	struct pc_audit_call *a;
	json_t *params = json_object_get(msg, "params");
	const char *method = json_string_value(json_object_get(msg, "method"));
	const char *tool = json_string_value(json_object_get(params, "name"));
	const char *uri = NULL;
	char *safe = NULL;

	if (tool == NULL)
		tool = uri = json_string_value(json_object_get(params, "uri"));
	/* completion/complete names its prompt or resource in ref (looked
	 * up only then: this runs for every call). */
	if (tool == NULL) {
		json_t *ref = json_object_get(params, "ref");
		tool = json_string_value(json_object_get(ref, "name"));
		if (tool == NULL)
			tool = uri = json_string_value(json_object_get(ref,
			    "uri"));
	}
	/* A URI is the client's text, and may carry a credential (a
	 * password in its userinfo, ?token=, a secret the gateway knows):
	 * recorded as its arguments are, redacted. Tool names are not
	 * (the catalogue's names are plain identifiers). */
	if (uri != NULL && r != NULL) {
		if ((safe = pc_redact_uri(r, uri)) == NULL)
			return NULL;
		tool = safe;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		goto out;
	if (tool != NULL && strlen(tool) >= sizeof(a->tool) &&
	    (a->tool_long = strdup(tool)) == NULL) {
		free(a);
		a = NULL;
		goto out;
	}
	pc_strlcpy(a->request_id, request_id ? request_id : "",
	    sizeof(a->request_id));
	pc_strlcpy(a->principal, who->id, sizeof(a->principal));
	pc_strlcpy(a->key_id, who->key_id, sizeof(a->key_id));
	pc_strlcpy(a->tenant, who->tenant, sizeof(a->tenant));
	pc_strlcpy(a->source, source ? source : "", sizeof(a->source));
	pc_strlcpy(a->session, session ? session : "", sizeof(a->session));
	pc_strlcpy(a->method, method ? method : "", sizeof(a->method));
	pc_strlcpy(a->tool, tool ? tool : "", sizeof(a->tool));
	a->era = era;
	a->args = method != NULL ? call_args(r, schema, params) : NULL;
	a->start_us = pc_now_us();
	a->bytes_in = -1;
	a->bytes_out = -1;
out:
	free(safe);
	return a;
}

void
pc_audit_call_free(struct pc_audit_call *a)
{
	if (a == NULL)
		return;
	json_decref(a->args);
	free(a->tool_long);
	free(a);
}

void
pc_audit_call_routed(struct pc_audit_call *a, const char *upstream)
{
	if (a != NULL && upstream != NULL)
		pc_strlcpy(a->upstream, upstream, sizeof(a->upstream));
}

static int
write_one(struct pc_audit *log, const struct pc_audit_request *r,
    void (*ready)(void *, int), void *arg)
{
	if (ready != NULL)
		return pc_audit_queue_request(log, r, ready, arg);
	/* Nobody waits (the client is gone), and strict mode wants that
	 * said. */
	return pc_audit_write_request(log, r, pc_audit_strict(log) ?
	    pc_audit_no_wait : NULL, NULL);
}

/* The record of a's outcome: status, reason, decision as given. */
static int
put_call(struct pc_audit *log, const struct pc_audit_call *a,
    const char *status, const char *reason, bool deny,
    void (*ready)(void *, int), void *arg)
{
	struct pc_audit_request r = {
		.type = "request", .request_id = nz(a->request_id),
		.principal = nz(a->principal),
		.key_id = nz(a->key_id), .tenant = nz(a->tenant),
		.source = nz(a->source), .session = nz(a->session),
		.era = a->era, .upstream = nz(a->upstream),
		.method = nz(a->method),
		.tool = a->tool_long != NULL ? a->tool_long : nz(a->tool),
		.args = a->args, .decision = deny ? "deny" : "allow",
		.reason = nz(reason),
		.status = status, .latency_us = pc_now_us() - a->start_us,
		.bytes_in = a->bytes_in, .bytes_out = a->bytes_out,
	};
	int rc = write_one(log, &r, ready, arg);

	if (rc == PC_E_LIMIT && a->args != NULL) {
		/* Arguments too large for one record: the call is still
		 * recorded, with a marker where they would be. */
		json_t *marker = json_string("<omitted: too large>");
		r.args = marker;
		rc = write_one(log, &r, ready, arg);
		json_decref(marker);
	}
	return rc;
}

int
pc_audit_call_write(struct pc_audit *log, const struct pc_audit_call *a,
    json_t *msg, const char *limit_reason, void (*ready)(void *, int),
    void *arg)
{
	json_t *err = json_object_get(msg, "error");
	json_t *res = json_object_get(msg, "result");
	const char *status = msg != NULL ? "ok" : "accepted";
	char reason[48] = "";

	if (log == NULL || a == NULL)
		return PC_E_INVAL;
	if (a->denied != NULL) {
		status = "refused";
		pc_strlcpy(reason, a->denied, sizeof(reason));
	} else if (json_is_object(err)) {
		status = "error";
		snprintf(reason, sizeof(reason), "rpc.%" JSON_INTEGER_FORMAT,
		    json_integer_value(json_object_get(err, "code")));
	} else if (json_is_true(json_object_get(res, "isError"))) {
		status = "tool_error";
	}
	/* A limit refused it: the record says deny and which reason. */
	if (limit_reason != NULL) {
		status = "refused";
		pc_strlcpy(reason, limit_reason, sizeof(reason));
	}
	return put_call(log, a, status, reason, a->denied != NULL ||
	    limit_reason != NULL, ready, arg);
}

int
pc_audit_call_cancelled(struct pc_audit *log, const struct pc_audit_call *a,
    const char *reason)
{
	if (log == NULL || a == NULL)
		return PC_E_INVAL;
	return put_call(log, a, "cancelled", reason, false, NULL, NULL);
}
