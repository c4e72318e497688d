/*
 * What the writer (audit.c), the verifier (audit_verify.c) and the file
 * helpers (audit_file.c) share: the exact byte layout of a record's MAC,
 * file names, and bounded line reading. Not for other modules.
 */
#ifndef PC_AUDIT_INT_H
#define PC_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "audit.h"

#define AUDIT_MAC_LEN 32u
#define AUDIT_MAC_HEX (2u * AUDIT_MAC_LEN)
/* Every line ends with exactly this, then the hex MAC, then AUDIT_TAIL. */
#define AUDIT_MAC_KEY ",\"mac\":\""
#define AUDIT_MAC_KEY_LEN (sizeof(AUDIT_MAC_KEY) - 1)
#define AUDIT_TAIL "\"}"
#define AUDIT_TAIL_LEN (sizeof(AUDIT_TAIL) - 1)
#define AUDIT_SUFFIX_LEN (AUDIT_MAC_KEY_LEN + AUDIT_MAC_HEX + AUDIT_TAIL_LEN)
/* Longest line (without '\n') a reader accepts: a record plus its MAC. */
#define AUDIT_MAX_LINE (PC_AUDIT_MAX_RECORD + AUDIT_SUFFIX_LEN)
#define AUDIT_DEF_PREFIX "audit"
/* Digits of the sequence number in file names, zero-padded so that names
 * of one log sort in chain order by eye; parsing accepts up to 20. */
#define AUDIT_NAME_SEQ_DIGITS 12

/* Module-written record types (refused from callers). */
#define AUDIT_T_FILE "file"
#define AUDIT_T_CHECKPOINT "checkpoint"
#define AUDIT_T_RETENTION "retention"

/* HMAC-SHA256 context keyed once; NULL on failure. Free with
 * EVP_MAC_CTX_free (which wipes the key). */
EVP_MAC_CTX *audit_mac_new(const unsigned char *key, size_t key_len);

/* out = HMAC(key, prev || body[0..len)), reusing `keyed` (so one
 * context serves one thread at a time). 0 or PC_E_IO. */
int audit_mac(EVP_MAC_CTX *keyed, const unsigned char prev[AUDIT_MAC_LEN],
    const char *body, size_t len, unsigned char out[AUDIT_MAC_LEN]);

/* Decode exactly 2n lowercase hex chars; 0 or PC_E_PARSE. */
int audit_unhex(const char *in, size_t n, unsigned char *out);

/*
 * Split a line (without '\n') into the MACed body and the MAC: the body is
 * line[0..*body_len), the bytes before ,"mac":". 0 or PC_E_PARSE.
 */
int audit_split(const char *line, size_t len, size_t *body_len,
    unsigned char mac[AUDIT_MAC_LEN]);

/* Valid prefix: 1..PC_AUDIT_MAX_PREFIX of [A-Za-z0-9._-]. */
bool audit_prefix_ok(const char *p);

/* The first sequence number in a file name PREFIX-STAMP-SEQ.jsonl;
 * 0 or PC_E_INVAL when the name is not one of ours. */
int audit_name_seq(const char *name, const char *prefix, uint64_t *seq);

/* A name that begins like the log's files (PREFIX-) but is not one, such
 * as PREFIX-...jsonl~ or .jsonl.gz: pc_audit_list() leaves it out, so
 * a log file renamed that way drops out of a directory's chain. */
bool audit_name_lookalike(const char *name, const char *prefix);

enum audit_line {
	AUDIT_LINE_OK = 0,	/* a complete line (newline stripped) */
	AUDIT_LINE_EOF,		/* end of file, nothing read */
	AUDIT_LINE_TORN,	/* end of file inside a line */
	AUDIT_LINE_LONG,	/* longer than cap - 1 */
	AUDIT_LINE_ERR,		/* read error (errno) */
};

/* Read one line into buf[0..cap) (NUL-terminated, may hold NULs before
 * *len). A long line is consumed to its end so reading can go on. */
enum audit_line audit_read_line(FILE *f, char *buf, size_t cap, size_t *len);

/* The end of a log file: its last complete line and the one before it,
 * whose MAC the last line's was computed over. */
struct audit_tail {
	char *buf;		/* owns what line and prev point into */
	const char *line;	/* the last complete line, without '\n' */
	size_t len;
	const char *prev;	/* the line before it; NULL: line is the first */
	size_t plen;
	bool torn;		/* bytes follow line without a newline */
};

/*
 * Read the tail of dirfd/name (not following a symlink; a regular file
 * only, opened without blocking on a FIFO). Fills *t (audit_tail_free,
 * also after an error). Returns 0, PC_E_NOTFOUND (no complete line),
 * PC_E_INVAL (a symlink or not a regular file), PC_E_IO (cannot open or
 * read),
 * PC_E_LIMIT (a line longer than any record), PC_E_NOMEM.
 */
int audit_tail_read(int dirfd, const char *name, struct audit_tail *t);
void audit_tail_free(struct audit_tail *t);

/*
 * Open a log file for reading (*out, the caller's to fclose): a regular
 * file only, and open(2) never waits on a FIFO. A symlink is followed:
 * the readers (verify, tail, query) open what an operator named or
 * listed, may be pointed at archived files, and authenticate or merely
 * show what they read. 0, PC_E_INVAL (not a regular file), PC_E_IO
 * (errno says why).
 */
int audit_fopen(const char *path, FILE **out);

/* The writer's fdatasync, called on its worker thread. A seam for the
 * unit test, which makes it fail or notes the thread; nothing else
 * changes it. */
extern int (*audit_fdatasync)(int fd);

/* The clock of records' ts (clock_gettime, asked for CLOCK_REALTIME).
 * A seam for the unit test, which dates records in the past to test
 * retention; nothing else changes it. */
extern int (*audit_clock)(clockid_t id, struct timespec *t);

/* The syslog sink (audit_syslog.c), driven by the writer on the loop. */
struct audit_syslog;
/* 0, PC_E_INVAL / PC_E_NOMEM with a message in err. A receiver that is
 * not listening yet is not an error (an outage, retried). */
int audit_syslog_new(struct event_base *base,
    const struct pc_audit_syslog_conf *c, struct audit_syslog **out,
    char *err, size_t errlen);
/* Send one record (rec[0..len), no newline) with its ts; never blocks,
 * never fails: what cannot go is counted as dropped. sl may be NULL. */
void audit_syslog_send(struct audit_syslog *sl, int severity,
    const char *msgid, const char *ts, size_t tslen, const char *rec,
    size_t len);
void audit_syslog_stats(const struct audit_syslog *sl, uint64_t *sent,
    uint64_t *dropped);
void audit_syslog_free(struct audit_syslog *sl);

/* "2026-11-21T12:00:00.123456Z" for a realtime clock reading; out >= 28. */
void audit_ts(const struct timespec *t, char *out, size_t outlen);

/* UTC time to microseconds since the epoch: YYYY-MM-DD, optionally
 * followed by THH:MM, :SS, .ffffff (1-6 digits), and Z; a record's ts is
 * one. 0 or PC_E_PARSE. */
int audit_parse_time(const char *s, int64_t *us);

#endif
