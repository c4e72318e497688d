/*
 * The record of one request's outcome, gathered as the request passes a
 * front end (HTTP or stdio) and written when its answer is ready: who
 * (principal, key, tenant, source, session), what (era, method, tool or
 * URI, the arguments with secrets redacted), and how it ended (decision,
 * reason, status, latency, bytes). Both fronts record the same way; see
 * docs/audit.md for the fields.
 */
#ifndef PC_AUDIT_CALL_H
#define PC_AUDIT_CALL_H

#include <stdint.h>

#include <jansson.h>

#include "../lib/limits.h"
#include "../lib/util.h"

struct pc_audit;
struct pc_principal;
struct pc_redactor;

/* What a client is told when its result cannot be recorded (fail closed;
 * HTTP 503 and -32004): no path, no errno, those go to the operator's
 * log. */
#define PC_AUDIT_DOWN_MSG \
	"Service Unavailable: the audit log cannot be written"

struct pc_audit_call {
	char request_id[PC_REQUEST_ID_LEN + 12];
	char principal[128], key_id[48], tenant[128], source[64];
	char session[72], method[32], tool[256];
	char *tool_long;		/* a name or URI that does not fit
					 * `tool` (resource URIs run to 64 KiB:
					 * cut, two reads would look alike);
					 * owned, else NULL */
	char upstream[PC_MAX_UPSTREAM_NAME + 1];	/* "" until routed */
	const char *era;		/* static string */
	int64_t start_us;		/* monotonic */
	int64_t bytes_in;		/* < 0: unknown (null) */
	int64_t bytes_out;		/* < 0: unknown; the HTTP front adds
					 * SSE events, then the final body */
	json_t *args;			/* redacted arguments, or NULL; owned */
	const char *denied;		/* policy reason code (static), or
					 * NULL when the router did not deny */
};

/*
 * Start the record of request `msg`. The arguments are kept as the client
 * sent them with every secret the redactor knows removed (by key name, by
 * `schema` — the tool's inputSchema, may be NULL — and by value): a
 * reference when nothing needed removing, else a redacted copy, never an
 * unredacted secret (NULL when redaction could not finish, or without a
 * redactor). Strings are copied (cut to their fields). NULL on allocation
 * failure: the outcome then cannot be recorded, and must not be answered.
 */
struct pc_audit_call *pc_audit_call_new(const struct pc_redactor *r,
    const json_t *schema, const char *request_id,
    const struct pc_principal *who, const char *source, const char *era,
    json_t *msg, const char *session);

/* Accepts NULL. */
void pc_audit_call_free(struct pc_audit_call *a);

/* The router sent the call to `upstream` (a front's sink `routed` hook);
 * accepts a NULL record. */
void pc_audit_call_routed(struct pc_audit_call *a, const char *upstream);

/*
 * Write the record of the answer `msg` (NULL: accepted, no answer):
 * status ok / error (reason rpc.<code>) / tool_error, or refused with
 * decision deny when the policy (a->denied) or a limit (limit_reason)
 * refused it. With `ready`, the record is queued with the pass's others and
 * ready(arg, rc) runs once the caller may answer (pc_audit_queue_request);
 * without, it is in the file when this returns. Arguments too large for
 * one record are replaced by a marker. 0 or a negative PC_E_*: then the
 * answer must be withheld (and ready never runs).
 */
int pc_audit_call_write(struct pc_audit *log, const struct pc_audit_call *a,
    json_t *msg, const char *limit_reason, void (*ready)(void *, int),
    void *arg);

/*
 * Write the record of a request that ends without an answer because its
 * client is gone (reason e.g. "client.closed") or the front is shutting
 * down: status cancelled, decision allow (it had been allowed, and the
 * upstream may have started on it). In the file when this returns.
 */
int pc_audit_call_cancelled(struct pc_audit *log, const struct pc_audit_call *a,
    const char *reason);

#endif
