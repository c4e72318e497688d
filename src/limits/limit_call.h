/*
 * One request's passage through the limits stage, for either front end
 * (HTTP or stdio): what it is counted as, what each checkpoint took, and
 * giving it back exactly once. See limiter.h for the two checkpoints and
 * docs/limits.md, "In the gateway".
 *
 * A refusal is a JSON-RPC error with code PC_RPC_LIMITED and data
 * {reason, limit, retryAfter}; a front that speaks HTTP adds the status
 * and headers through on_verdict.
 */
#ifndef PC_LIMITS_LIMIT_CALL_H
#define PC_LIMITS_LIMIT_CALL_H

#include <stdbool.h>

#include <jansson.h>

#include "../authn/principal.h"
#include "../lib/limits.h"
#include "limiter.h"

struct pc_reqinfo;
struct pc_router;

/* JSON-RPC error code of a refusal by the limits stage (429/503 on HTTP);
 * the reason code and the limit are in error.data. */
#define PC_RPC_LIMITED (-32009)

struct pc_limit_call {
	struct pc_limiter *limiter;	/* borrowed; NULL: no limits stage */
	/* May be NULL. Every verdict of the front checkpoint (its RateLimit
	 * values go out on success too) and a refusal at the forward one. */
	void (*on_verdict)(void *arg, const struct pc_limit_verdict *v);
	void *arg;
	char key[PC_PRINCIPAL_MAX + 8];	/* API key id, else "jwt:" or
					 * "mtls:" and the principal */
	char tenant[PC_PRINCIPAL_MAX];
	char tool[PC_MAX_NAME_LEN + 1];	/* tools/call: the exposed name */
	char upstream[PC_MAX_UPSTREAM_NAME + 1];
	bool counted;			/* front checkpoint applies: tools/call,
					 * resources/read, prompts/get,
					 * completion/complete */
	bool is_call;			/* a tools/call with a usable name:
					 * budgets */
	bool tool_known;		/* ... of a tool in the catalogue:
					 * tool limits */
	bool admitted;			/* front checkpoint: end owed */
	bool forwarded;			/* forward checkpoint: end owed */
	struct pc_limit_verdict front, fwd;
	const char *deny_reason;	/* a limit refused it (static) */
};

/* Fill q for request msg (borrowed) of principal p; router: whose
 * catalogue says which tool names are real (NULL: none are). */
void pc_limit_call_init(struct pc_limit_call *q, struct pc_limiter *limiter,
    const struct pc_router *router, const struct pc_principal *p, json_t *msg,
    void (*on_verdict)(void *, const struct pc_limit_verdict *), void *arg);

/*
 * The front checkpoint (counted methods only, see `counted`). 0: go on
 * (then pc_limit_call_end is owed). PC_E_DENIED: *refusal is the JSON-RPC
 * response to send (new ref, with `id`), *status the HTTP status (429 or
 * 503), q->deny_reason set.
 */
int pc_limit_call_admit(struct pc_limit_call *q, json_t *id, int *status,
    json_t **refusal);

/* Let the router run the forward checkpoint on q (q must outlive the
 * call): sets ri->gate. */
void pc_limit_call_route(struct pc_limit_call *q, struct pc_reqinfo *ri);

/* The request ended with answer msg (NULL: no answer, the client left);
 * gives back what the front checkpoint took. Idempotent. */
void pc_limit_call_end(struct pc_limit_call *q, json_t *msg);

#endif
