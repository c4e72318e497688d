/*
 * Internals of the stdio upstream supervisor, shared by its three files:
 *
 *   upstream.c        lifecycle: state machine, calls, restart, shutdown
 *   upstream_spawn.c  fork/exec hygiene and the SIGCHLD registry
 *   upstream_proto.c  line framing, message dispatch
 *   upstream_hs.c     the era handshake (server/discover, initialize)
 *
 * Not a public header: only src/upstream/ includes it.
 */
#ifndef PC_UPSTREAM_INT_H
#define PC_UPSTREAM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>

#include "upstream.h"

/* Buckets of the in-flight table; ids are sequential, so id & mask spreads
 * them evenly and a chain rarely holds more than one call. */
#define UP_BUCKETS		1024u

/*
 * Bytes queued toward a child's stdin. A child that stops reading must not
 * make the gateway buffer without bound. Local until limits.h gets
 * PC_MAX_UPSTREAM_WBUF (asked of the lead).
 */
#define UP_MAX_WBUF		PC_MAX_UPSTREAM_WBUF

/* A READY child that stays up this long is considered healthy again: the
 * next crash restarts after restart_min_ms, not the last doubled delay. */
#define UP_STABLE_MS		60000u

/* After stdout reaches EOF the child is useless; give it this long to exit
 * on its own before it is killed. */
#define UP_EOF_KILL_MS		1000u
/* How much of a long stderr line is redacted before it is cut to
 * PC_MAX_STDERR_LINE: a secret that starts before the cut and is shorter
 * than the rest of the window is seen whole. */
#define UP_ERR_WINDOW		(2u * PC_MAX_STDERR_LINE)
/* A child's lines in the gateway's log, per upstream (up_log_admit). */
#define UP_LOG_RATE		200u	/* a second */
#define UP_LOG_BURST		1000u

/* The modern revision we speak and the legacy one we initialize with. */
#define UP_MODERN_VERSION	"2026-07-28"
#define UP_LEGACY_VERSION	"2025-11-25"
#define UP_CLIENT_NAME		"portcullis"
#define UP_CLIENT_VERSION	"0.1.0"

#define UP_META_VERSION		"io.modelcontextprotocol/protocolVersion"
#define UP_META_CAPS		"io.modelcontextprotocol/clientCapabilities"
#define UP_META_INFO		"io.modelcontextprotocol/clientInfo"

/* JSON-RPC codes the supervisor reads or writes itself. */
#define UP_RPC_METHOD_NOT_FOUND	(-32601)
#define UP_RPC_UNSUPPORTED_VER	(-32022)

/* Depth limit for a child's messages: generous, it only stops a hostile
 * child from making jansson recurse without bound. */
#define UP_JSON_DEPTH		256u

struct up_call {
	uint64_t id;
	struct up_call *hnext;		/* bucket chain */
	TAILQ_ENTRY(up_call) link;	/* all calls, oldest first */
	struct event timer;
	struct pc_upstream *up;
	uint64_t start_ms;
	uint64_t hard_deadline_ms;	/* start + max_call_timeout_ms */
	uint32_t timeout_ms;
	pc_upstream_reply_fn reply;
	pc_upstream_progress_fn progress;
	void *arg;
	void *owner;		/* the client call it serves (attribution),
				 * or NULL for the gateway's own calls */
	uint64_t client;	/* who it is for (pc_upstream_set_owner) */
};

TAILQ_HEAD(up_call_list, up_call);

enum up_hs_phase { UP_HS_NONE = 0, UP_HS_PROBE, UP_HS_INIT };

enum up_sd_phase {
	UP_SD_NONE = 0,
	UP_SD_DRAIN,		/* waiting for in-flight calls */
	UP_SD_STDIN,		/* stdin closed, waiting for exit */
	UP_SD_TERM,		/* SIGTERM sent */
	UP_SD_KILL,		/* SIGKILL sent */
};

struct pc_upstream {
	struct event_base *base;
	const struct pc_upstream_conf *conf;
	struct pc_upstream_hooks hooks;
	void *hook_arg;

	enum pc_upstream_state state;
	enum pc_upstream_era era;
	bool legacy_sticky;	/* a probe killed the child: skip it from now */
	bool probe_fell_back;	/* this handshake's probe timed out or was
				 * refused: initialize was sent after it */
	bool closing;		/* shutdown or free began: refuse calls */
	bool was_ready;		/* this incarnation reached READY */
	int busy;		/* depth of callbacks running on this object */
	bool free_pending;	/* pc_upstream_free() ran inside a callback */

	/* The running child; pid 0 when none. */
	pid_t pid;
	uint64_t generation;	/* children spawned so far */
	/* Lines of this child in the gateway's log (up_log_admit). */
	uint32_t log_tokens;
	uint64_t log_last_ms;
	uint64_t log_held;		/* not logged since the last one */
	uint64_t attr_blocked_until_ms;	/* a client's call was given up
					 * (cancelled, timed out) while the
					 * child may still work on it: until
					 * then nothing is attributed... */
	uint64_t attr_blocked_client;	/* ...but to this client's calls
					 * (UINT64_MAX: to nobody's) */
	int fd_in, fd_out, fd_err;	/* parent ends, -1 when closed */
	struct event *ev_in, *ev_out, *ev_err;
	struct evbuffer *wbuf, *rbuf, *ebuf;
	size_t rscan;		/* leading bytes of rbuf known to hold no '\n' */
	bool err_skip;		/* dropping the tail of an overlong stderr line */
	bool proto_failed;	/* protocol error: ignore output, child killed */
	uint32_t max_line;

	/* Handshake of the current incarnation. */
	enum up_hs_phase hs_phase;
	uint64_t hs_id;
	bool hs_strict;		/* a failed probe is fatal, not "legacy" */
	struct event *ev_hs;
	json_t *server_info;
	char proto_ver[32];
	/* Built once, shared (read-only) by every modern request's _meta. */
	json_t *modern_caps;
	json_t *client_info;

	/* In-flight calls. */
	uint64_t next_id;
	struct up_call *buckets[UP_BUCKETS];
	struct up_call_list calls;
	unsigned ncalls;

	/* Restart. */
	uint32_t backoff_ms;
	struct event *ev_restart;
	struct event *ev_stable;
	struct event *ev_eofkill;

	/* Shutdown. */
	enum up_sd_phase sd_phase;
	struct event *ev_sd;
	void (*sd_done)(void *);
	void *sd_arg;

	TAILQ_ENTRY(pc_upstream) reg_link;
};

/* upstream.c */
void up_enter(struct pc_upstream *up);
/* Returns true when the object was freed: the caller must not touch it. */
bool up_leave(struct pc_upstream *up);
void up_child_exited(struct pc_upstream *up, int status);
void up_became_ready(struct pc_upstream *up);
void up_fail_child(struct pc_upstream *up, const char *why);
struct up_call *up_call_find(struct pc_upstream *up, uint64_t id);
void up_call_complete(struct pc_upstream *up, struct up_call *c, int err,
    json_t *msg);
void up_call_progress(struct pc_upstream *up, struct up_call *c,
    json_t *params);
void *up_attributed_owner(const struct pc_upstream *up);
uint32_t up_ms_or(uint32_t v, uint32_t def);
void up_timer_ms(struct event *ev, uint64_t ms);

/* upstream_spawn.c */
int up_registry_add(struct pc_upstream *up);
void up_registry_del(struct pc_upstream *up);
int up_spawn(struct pc_upstream *up);
void up_kill_group(struct pc_upstream *up, int sig);
/* Blocking reap of a child already sent SIGKILL (pc_upstream_free). */
void up_reap_blocking(struct pc_upstream *up);
/* expected: a shutdown asked for it, so a clean exit is not news. */
void up_log_exit(const struct pc_upstream *up, int status, bool expected);

/* upstream_proto.c */
int up_io_open(struct pc_upstream *up);
void up_io_close(struct pc_upstream *up);
void up_io_drain(struct pc_upstream *up);
void up_close_stdin(struct pc_upstream *up);
int up_send(struct pc_upstream *up, json_t *msg);
int up_send_request(struct pc_upstream *up, uint64_t id, const char *method,
    json_t *params, const char *progress_token);
int up_send_notification(struct pc_upstream *up, const char *method,
    json_t *params);
int up_send_cancelled(struct pc_upstream *up, uint64_t id, const char *reason);

/* upstream_hs.c */
int up_hs_begin(struct pc_upstream *up);
void up_hs_reset(struct pc_upstream *up);
/* The response to the pending handshake request (id == hs_id). */
void up_hs_answer(struct pc_upstream *up, json_t *msg);

#endif
