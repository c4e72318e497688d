/*
 * One upstream MCP server running as a stdio child process.
 *
 * The supervisor owns the child: spawn (execve, no shell, clean environment,
 * its own process group, other descriptors closed), newline-delimited
 * JSON-RPC framing with a line cap, the era probe (server/discover, falling
 * back to initialize), restart with exponential backoff, and shutdown
 * (close stdin, SIGTERM, SIGKILL after the grace period).
 *
 * Ids: every call gets an id minted here, so responses from the child are
 * matched to the caller that made the call and to nobody else. Callers never
 * see or choose upstream ids.
 *
 * All callbacks run on the event loop that was passed to pc_upstream_new().
 */
#ifndef PC_UPSTREAM_H
#define PC_UPSTREAM_H

#include <jansson.h>
#include <stdint.h>

#include "../config/config.h"

struct event_base;
struct pc_upstream;

enum pc_upstream_state {
	PC_UP_STARTING = 0,	/* spawned, probing era / initializing */
	PC_UP_READY,		/* accepting calls */
	PC_UP_BACKOFF,		/* crashed; waiting to restart */
	PC_UP_STOPPING,		/* shutdown in progress */
	PC_UP_STOPPED,
};

enum pc_upstream_era { PC_UP_ERA_UNKNOWN = 0, PC_UP_ERA_LEGACY, PC_UP_ERA_MODERN };

/*
 * Completion of a call. Exactly once per successful pc_upstream_call(),
 * unless the call was cancelled with pc_upstream_cancel().
 *   err == 0: msg is the child's JSON-RPC response object (borrowed; holds
 *             "result" or "error"; its "id" is the upstream id, ignore it).
 *             It is discarded after the callback, so the callback may
 *             modify it or keep references to its parts.
 *   err <  0: msg is NULL. PC_E_TIMEOUT (deadline), PC_E_UNAVAIL (child
 *             died or restarting), PC_E_CLOSED (shutting down).
 */
typedef void (*pc_upstream_reply_fn)(void *call_arg, int err, json_t *msg);

/*
 * A notifications/progress for this call. `params` is borrowed; its
 * progressToken is the upstream-side token: callers put their own back.
 * Progress pushes the deadline out by the call timeout, never past the
 * hard maximum (max_call_timeout_ms from the call's start).
 */
typedef void (*pc_upstream_progress_fn)(void *call_arg, json_t *params);

struct pc_upstream_hooks {
	/* The child finished its handshake (first start and every restart):
	 * refresh whatever was cached from it. */
	void (*on_ready)(struct pc_upstream *up, void *arg);
	/* The child exited or was killed, after being ready or while it was
	 * still starting (not when the era probe merely made it exit, and not
	 * during shutdown); in-flight calls have already been failed with
	 * PC_E_UNAVAIL. */
	void (*on_down)(struct pc_upstream *up, void *arg);
	/*
	 * A notification from the child other than progress for a live call
	 * (list_changed, resources/updated, message, ...). `call_arg` is the
	 * call_arg of the only call in flight when it arrived, or NULL when
	 * zero or several calls were in flight (stdio carries no request
	 * correlation, so attribution is only certain with one call).
	 */
	void (*on_notification)(struct pc_upstream *up, json_t *msg,
	    void *call_arg, void *arg);
	/*
	 * A request from the child (sampling, elicitation, roots, ping).
	 * call_arg is attributed as above. The receiver must answer exactly
	 * once with pc_upstream_respond() using msg's "id". If NULL, the
	 * supervisor answers -32601 itself.
	 */
	void (*on_request)(struct pc_upstream *up, json_t *msg,
	    void *call_arg, void *arg);
};

/*
 * Create (not start). conf is borrowed and must outlive the upstream.
 * Returns 0, PC_E_NOMEM or PC_E_INVAL.
 */
int pc_upstream_new(struct event_base *base, const struct pc_upstream_conf *conf,
    const struct pc_upstream_hooks *hooks, void *hook_arg,
    struct pc_upstream **out);

/* Spawn the child and begin the handshake. 0 or PC_E_SPAWN (the child will
 * be retried with backoff anyway). */
int pc_upstream_start(struct pc_upstream *up);

/*
 * Send a request. params is borrowed (copied; NULL = no params). For a
 * modern child the supervisor adds the required _meta fields. If progress
 * is not NULL, a progressToken is attached and progress is delivered.
 * timeout_ms 0 = the upstream's call_timeout_ms. On success *handle (may be
 * NULL) identifies the call for pc_upstream_cancel().
 * Returns 0, PC_E_UNAVAIL (not ready), PC_E_LIMIT (too many in flight),
 * PC_E_NOMEM. On error the reply callback is never called.
 */
int pc_upstream_call(struct pc_upstream *up, const char *method, json_t *params,
    uint32_t timeout_ms, pc_upstream_reply_fn reply,
    pc_upstream_progress_fn progress, void *call_arg, uint64_t *handle);

/*
 * Mark a call as made for a client: owner (opaque, e.g. the router's call)
 * is what the child's unattributed messages (log lines, requests to the
 * client) are handed with while it is the only such call in flight. Calls
 * without an owner are the gateway's own and are never attributed.
 * client names who the call is for (the same value for every call of one
 * client, 0 when unknown): after a client's call is given up, the child's
 * messages go to nobody for a while unless the one call left is the same
 * client's (docs/upstream.md).
 */
void pc_upstream_set_owner(struct pc_upstream *up, uint64_t handle,
    void *owner, uint64_t client);

/* Cancel a call: sends notifications/cancelled to the child; the reply
 * callback will not be called. Unknown handles are ignored. */
void pc_upstream_cancel(struct pc_upstream *up, uint64_t handle,
    const char *reason);

/* Send a notification to the child. params borrowed. */
int pc_upstream_notify(struct pc_upstream *up, const char *method,
    json_t *params);

/* Answer a request from the child. id, result, error borrowed; exactly one
 * of result/error is non-NULL. */
int pc_upstream_respond(struct pc_upstream *up, json_t *id, json_t *result,
    json_t *error);

/*
 * Graceful stop: fail new calls, let in-flight calls finish up to the
 * grace period, close stdin, SIGTERM, then SIGKILL. done(arg) runs once the
 * child is reaped (or immediately if none is running).
 */
void pc_upstream_shutdown(struct pc_upstream *up, void (*done)(void *), void *arg);

/* Free; accepts NULL. Kills a still-running child with SIGKILL. */
void pc_upstream_free(struct pc_upstream *up);

const char *pc_upstream_name(const struct pc_upstream *up);
/* Bytes queued for the child's stdin, not yet written. */
size_t pc_upstream_queued(const struct pc_upstream *up);

/* Which child this is: the count of children spawned so far. An answer
 * owed to one child (a client's answer to its request) must not reach the
 * next one, whose ids start over. */
uint64_t pc_upstream_generation(const struct pc_upstream *up);
const struct pc_upstream_conf *pc_upstream_conf(const struct pc_upstream *up);
enum pc_upstream_state pc_upstream_state(const struct pc_upstream *up);
enum pc_upstream_era pc_upstream_era(const struct pc_upstream *up);
/* The child's InitializeResult (legacy) or DiscoverResult (modern), or NULL
 * before the first handshake. Borrowed; valid until the next restart. */
json_t *pc_upstream_server_info(const struct pc_upstream *up);
/* protocolVersion negotiated with the child. */
const char *pc_upstream_protocol_version(const struct pc_upstream *up);
/* Number of calls in flight. */
unsigned pc_upstream_inflight(const struct pc_upstream *up);
/* Process id of the running child, or 0. */
long pc_upstream_pid(const struct pc_upstream *up);

#endif
