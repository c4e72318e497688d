/*
 * The audit log: append-only JSON Lines, one record per request outcome and
 * per security event, each record carrying a sequence number and an
 * HMAC-SHA256 chained over the previous record, so that altering, removing,
 * reordering or forging a record is caught by pc_audit_verify(). See
 * docs/audit.md for the record format and the guarantees.
 *
 * One struct pc_audit lives on the gateway's event loop; its API is for
 * that thread only. Writing is synchronous (write(2) before
 * pc_audit_write() returns), or, for the hot path, batched per pass of the
 * loop (pc_audit_queue_request: one write(2) for the pass, the caller
 * answers from a callback); fsync is batched (group commit), runs on a
 * worker thread the module owns, and is reported through a callback on the
 * loop.
 */
#ifndef PC_AUDIT_H
#define PC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

struct event_base;
struct pc_audit;

/* Defaults and ceilings (local; candidates for src/lib/limits.h).
 * 64 MiB files rotate often enough to keep retention fine-grained and a
 * verify of one file quick; a day bounds how long one file stays open. */
#define PC_AUDIT_DEF_MAX_FILE_BYTES   (64ull * 1024ull * 1024ull)
#define PC_AUDIT_DEF_MAX_FILE_AGE_S   86400u
#define PC_AUDIT_DEF_RETENTION_DAYS   90u
/* Group commit: 10 ms adds little to a tool call and still batches
 * hundreds of records per fsync under load; past 1 s a "bounded" delay
 * stops meaning anything. */
#define PC_AUDIT_DEF_GROUP_DELAY_MS   10u
#define PC_AUDIT_MAX_GROUP_DELAY_MS   1000u
/* One record, serialized. Tool arguments must be redacted (and cut) by the
 * caller before they get here; a record past this is refused. */
#define PC_AUDIT_MAX_RECORD           (1024u * 1024u)
/* The MAC key: HMAC-SHA256 wants at least its output size. */
#define PC_AUDIT_MIN_KEY              32u
#define PC_AUDIT_MAX_KEY              1024u
/* File prefix: [A-Za-z0-9._-], so that names need no quoting anywhere. */
#define PC_AUDIT_MAX_PREFIX           64u
/* Syslog over TCP: bytes waiting for a slow receiver before records are
 * dropped; a few thousand records, a few seconds of a stall at full load. */
#define PC_AUDIT_SYSLOG_MAX_QUEUE     (4u * 1024u * 1024u)

enum pc_audit_fsync {
	/* write() returns, fsync follows within group_delay_ms; callers may
	 * answer before it (a crash can lose the last group_delay_ms). */
	PC_AUDIT_FSYNC_GROUP = 0,
	/* Same batching, but every write must have a durable callback and
	 * the caller answers only from it (nothing answered is ever lost). */
	PC_AUDIT_FSYNC_STRICT,
};

/* A copy of every record to syslog (RFC 5424): exactly one of socket (a
 * local datagram socket such as /dev/log) or tcp ("IP:port", octet-counted
 * frames per RFC 6587). The file stays the source of truth: the sink never
 * blocks, never fails the log, and drops (and counts) what it cannot send. */
struct pc_audit_syslog_conf {
	const char *socket;
	const char *tcp;
	int facility;			/* 0..23; < 0: authpriv (10) */
};

struct pc_audit_conf {
	const char *dir;		/* must exist; files are created in it */
	const char *prefix;		/* NULL: "audit" */
	const unsigned char *key;	/* MAC key, borrowed during open only */
	size_t key_len;			/* PC_AUDIT_MIN_KEY .. PC_AUDIT_MAX_KEY */
	uint64_t max_file_bytes;	/* 0: default; rotate past this size */
	uint32_t max_file_age_s;	/* 0: default; rotate past this age */
	uint32_t retention_days;	/* 0: default (90) */
	enum pc_audit_fsync fsync_mode;
	uint32_t group_delay_ms;	/* 0: fsync at the next loop turn */
	const struct pc_audit_syslog_conf *syslog;	/* NULL: none */
};

/* Counters for metrics and tests. */
struct pc_audit_stats {
	uint64_t seq;			/* last sequence number written */
	uint64_t records;		/* records written by this instance */
	uint64_t bytes;			/* bytes written by this instance */
	uint64_t writes;		/* write(2) calls that wrote them */
	uint64_t fsyncs;
	uint64_t rotations;
	uint64_t files_removed;		/* by retention */
	size_t pending;			/* writes waiting for their fsync */
	uint64_t syslog_sent;		/* records handed to the syslog sink */
	uint64_t syslog_dropped;	/* records it could not send */
	char file[256];			/* current file name (no directory) */
};

/*
 * Open the log in conf->dir: find the newest existing file of the prefix,
 * continue its chain (sequence and MAC), remove files past retention, and
 * start a new file whose first record links it to the previous one. The key
 * is copied into an OpenSSL MAC context and never written anywhere.
 * On success *out is owned by the caller (pc_audit_close). On failure
 * returns PC_E_INVAL (conf), PC_E_IO (directory or file), PC_E_NOMEM,
 * PC_E_DENIED (the newest file's last record does not verify with the key,
 * is out of place or has the last possible seq: the file is named in err),
 * with a message in err (no secret in it).
 */
int pc_audit_open(struct event_base *base, const struct pc_audit_conf *conf,
    struct pc_audit **out, char *err, size_t errlen);

/*
 * Append one record. `fields` (borrowed) is a JSON object whose keys are
 * written in their insertion order after "seq" and "ts"; it must not hold
 * the keys "seq", "ts" or "mac", nor "type" with a value the module uses
 * itself ("file", "checkpoint", "retention"). See pc_audit_request_fields()
 * for the request record.
 *
 * The record is in the file (page cache) when this returns 0. durable (may
 * be NULL in GROUP mode, required in STRICT mode) is then called exactly
 * once from the event loop, never from inside this call, after the fsync
 * that covers the record: rc 0, or PC_E_IO if the fsync failed. A failed
 * fsync (on the worker) fails the log at once: pc_audit_error() is set and
 * writes are refused from that moment, before any callback runs.
 *
 * Returns PC_E_INVAL (bad fields, durable missing in STRICT mode),
 * PC_E_LIMIT (record larger than PC_AUDIT_MAX_RECORD), both leaving the log
 * untouched; or PC_E_IO when the log cannot be written: from then on every
 * write fails (fail closed) and pc_audit_error() says why. durable is not
 * called when the return is not 0.
 */
int pc_audit_write(struct pc_audit *a, json_t *fields,
    void (*durable)(void *arg, int rc), void *arg);

/* STRICT mode: callers answer from the durable callback. */
bool pc_audit_strict(const struct pc_audit *a);

/* A durable callback for a record no reply waits for (a security event,
 * a refusal, a client already gone). STRICT mode wants a callback on
 * every write so that not waiting is a visible choice; this is that
 * choice. */
void pc_audit_no_wait(void *arg, int rc);

/* NULL while the log is healthy; else why it failed (owned by a, valid
 * until pc_audit_close). Fit to show an operator; holds no secret. */
const char *pc_audit_error(const struct pc_audit *a);

/* Close the current file with a checkpoint, open the next one, then apply
 * retention. Rotation by size and age happens by itself; this is for an
 * operator's request (and tests). 0 or PC_E_IO (the log is then failed). */
int pc_audit_rotate(struct pc_audit *a);

void pc_audit_stats(const struct pc_audit *a, struct pc_audit_stats *st);

/*
 * Call durable(arg, rc) on the loop once every record written so far is
 * on disk (rc 0) or the log failed (PC_E_IO): for a reply whose records
 * were written without waiting (a batch's members) in strict mode. 0, or
 * PC_E_IO (failed already) / PC_E_LIMIT / PC_E_NOMEM, when it never runs.
 */
int pc_audit_barrier(struct pc_audit *a, void (*durable)(void *arg, int rc),
    void *arg);

/* Write the closing checkpoint, fsync, deliver pending durable callbacks
 * (with the fsync's result), close and free. Accepts NULL. */
void pc_audit_close(struct pc_audit *a);

/* Syslog facility code for a name (user, daemon, auth, authpriv,
 * local0..local7), or PC_E_INVAL. */
int pc_audit_syslog_facility(const char *name);
/* The name of a facility code (-1: the default, authpriv), or NULL. */
const char *pc_audit_syslog_facility_name(int code);

/* Parse "1.2.3.4:514" or "[::1]:514" (numeric only, port 1..65535) into
 * *ss / *len: 0 or PC_E_INVAL. For the config check and the sink. */
int pc_audit_syslog_addr(const char *s, struct sockaddr_storage *ss,
    socklen_t *len);

/* --- the request record ---------------------------------------------------- */

/*
 * The fields of one request-outcome or security-event record, in the fixed
 * order of docs/audit.md. Strings are borrowed; NULL or "" is written as
 * null. args (borrowed, may be NULL) must already have secrets redacted.
 */
struct pc_audit_request {
	const char *type;		/* "request" or "event" (NULL: request) */
	const char *event;		/* event name for type "event" */
	const char *request_id;
	const char *principal;
	const char *key_id;
	const char *tenant;
	const char *source;		/* client address */
	const char *session;
	const char *era;		/* protocol era */
	const char *upstream;
	const char *method;
	const char *tool;
	json_t *args;
	const char *decision;		/* "allow" or "deny" */
	const char *reason;		/* reason code */
	const char *status;		/* result status */
	int64_t latency_us;		/* < 0: null */
	int64_t bytes_in;		/* < 0: null */
	int64_t bytes_out;		/* < 0: null */
};

/*
 * Append one request or event record (fields borrowed): the same record as
 * pc_audit_write(a, pc_audit_request_fields(r), ...), serialized without an
 * intermediate JSON object (the hot path). Invalid UTF-8 in a string is
 * written as U+FFFD. type must not be one of the module's own. Returns and
 * callbacks as pc_audit_write().
 */
int pc_audit_write_request(struct pc_audit *a, const struct pc_audit_request *r,
    void (*durable)(void *arg, int rc), void *arg);

/*
 * The hot path: the same record as pc_audit_write_request(), queued with
 * the other records of this pass of the event loop and written with them
 * in one write(2) when the pass ends (or sooner, when a synchronous write
 * or a rotation comes first: the file's order is always the chain's).
 * ready (required) then runs exactly once, from the loop, never from
 * inside this call: rc 0 once the caller may answer — GROUP mode: the
 * record is in the file; STRICT mode: it is synced — or PC_E_IO: it may
 * not be (the log is failed), withhold the answer. Returns as
 * pc_audit_write_request(); ready is not called when the return is not 0.
 */
int pc_audit_queue_request(struct pc_audit *a, const struct pc_audit_request *r,
    void (*ready)(void *arg, int rc), void *arg);

/* A new object (owned by the caller) for pc_audit_write(), e.g. to add
 * fields to an event; NULL on allocation failure or invalid UTF-8. */
json_t *pc_audit_request_fields(const struct pc_audit_request *r);

/* --- verification ----------------------------------------------------------- */

#define PC_AUDIT_MAX_WARNINGS 16

struct pc_audit_finding {
	char file[512];
	uint64_t line;			/* 1-based; 0 = the file as a whole */
	uint64_t seq;			/* 0 = unknown */
	char text[256];
};

struct pc_audit_verdict {
	bool ok;			/* no record failed; see warnings */
	char first_bad_file[512];
	uint64_t first_bad_line;	/* 0 when the fault is not one line */
	uint64_t first_bad_seq;		/* seq of that record, or of the last
					 * good one for a truncation; 0 unknown */
	char reason[256];
	uint64_t records;		/* records authenticated */
	uint64_t first_seq, last_seq;
	size_t warnings;		/* how many; the first ones below */
	struct pc_audit_finding warning[PC_AUDIT_MAX_WARNINGS];
};

/*
 * Verify files[0..n) as one chain, in the order given (pc_audit_list()
 * gives that order). Stops at the first bad record: ok false, and
 * first_bad_* / reason name it. States that may be legitimate (a last file
 * without its closing checkpoint after a crash, or a log whose start is not
 * among the files given) are warnings, with ok still true.
 * Returns 0 when verification ran (read v), PC_E_INVAL / PC_E_NOMEM.
 */
int pc_audit_verify(const char *const *files, size_t n,
    const unsigned char *key, size_t key_len, struct pc_audit_verdict *v);

/*
 * The log files of `prefix` (NULL: "audit") in dir, as full paths sorted by
 * their first sequence number (the chain's order). *out is an array of
 * *n strings, owned by the caller (pc_audit_list_free). 0, PC_E_IO (with
 * errno kept), PC_E_NOMEM, PC_E_INVAL.
 */
int pc_audit_list(const char *dir, const char *prefix, char ***out, size_t *n);
void pc_audit_list_free(char **list, size_t n);

#endif
