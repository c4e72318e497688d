/*
 * Verification of an audit chain: every record's MAC over the previous MAC
 * and its own bytes, sequence numbers without gaps or repeats, each file
 * opening with a header that links it to the previous file, and each file
 * closed by a checkpoint. The first failure stops verification and is named
 * by file, line and sequence number; states that a crash or a partial set
 * of files also produce are warnings.
 *
 * Deleting the newest files leaves no gap in the sequence, so the end of
 * the log is judged by its last checkpoint: `close` ends a log, any other
 * reason is a rotation, which proves that a next file was begun.
 */
#include "audit.h"
#include "audit_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../lib/errors.h"
#include "../lib/util.h"

struct vstate {
	struct pc_audit_verdict *v;
	EVP_MAC_CTX *mac;
	char *buf;

	bool started;
	unsigned char prev[AUDIT_MAC_LEN];
	uint64_t next_seq;
	uint64_t start_seq;
	unsigned char start_prev[AUDIT_MAC_LEN];
	bool start_covered;		/* a retention record explains it */

	/* The file being read. */
	const char *file;
	uint64_t line;
	uint64_t file_records;
	bool closed;			/* its checkpoint was seen */
	bool rotated;			/* ...and its reason is not "close" */
	char reason[16];		/* that reason, for messages */

	/* The file before it. */
	const char *pfile;
	uint64_t plast_seq;
	uint64_t plines;
	bool pclosed;
	bool protated;
	char preason[16];
	bool ptorn;

	/* Which stored warnings are only about an empty file. */
	bool minor[PC_AUDIT_MAX_WARNINGS];
};

/* The one warning that says nothing about the chain. */
#define NO_RECORD "the file holds no record"

static bool bad(struct vstate *s, const char *file, uint64_t line,
    uint64_t seq, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void warn(struct vstate *s, const char *file, uint64_t line,
    uint64_t seq, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Record the first failure; returns false so callers can `return bad()`. */
static bool
bad(struct vstate *s, const char *file, uint64_t line, uint64_t seq,
    const char *fmt, ...)
{
	va_list ap;

	s->v->ok = false;
	pc_strlcpy(s->v->first_bad_file, file, sizeof(s->v->first_bad_file));
	s->v->first_bad_line = line;
	s->v->first_bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(s->v->reason, sizeof(s->v->reason), fmt, ap);
	va_end(ap);
	return false;
}

static void
warn(struct vstate *s, const char *file, uint64_t line, uint64_t seq,
    const char *fmt, ...)
{
	struct pc_audit_finding *f;
	size_t slot = s->v->warnings;
	bool minor = strcmp(fmt, NO_RECORD) == 0;
	va_list ap;

	/* The table full, a warning about the chain itself takes the place
	 * of one about an empty file: a dozen empty files named to sort
	 * first must not push "no closing checkpoint" out of the report. */
	if (slot >= PC_AUDIT_MAX_WARNINGS && !minor)
		for (size_t i = PC_AUDIT_MAX_WARNINGS; i-- > 0;)
			if (s->minor[i]) {
				slot = i;
				break;
			}
	if (slot < PC_AUDIT_MAX_WARNINGS) {
		s->minor[slot] = minor;
		f = &s->v->warning[slot];
		pc_strlcpy(f->file, file, sizeof(f->file));
		f->line = line;
		f->seq = seq;
		va_start(ap, fmt);
		vsnprintf(f->text, sizeof(f->text), fmt, ap);
		va_end(ap);
	}
	s->v->warnings++;
}

static bool
get_u64(json_t *o, const char *k, uint64_t *out)
{
	json_t *j = json_object_get(o, k);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*out = (uint64_t)json_integer_value(j);
	return true;
}

static bool
get_mac(json_t *o, const char *k, unsigned char out[AUDIT_MAC_LEN])
{
	const char *h = json_string_value(json_object_get(o, k));

	return h != NULL && strlen(h) == AUDIT_MAC_HEX &&
	    audit_unhex(h, AUDIT_MAC_LEN, out) == 0;
}

static bool
is_zero(const unsigned char *p, size_t n)
{
	unsigned char acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * A header that does not follow the rotation before it. A writer that
 * rotates begins the next file with start "rotate"; one that starts
 * again after a rotation checkpoint found no such file: deleted, renamed,
 * or a crash between the checkpoint and the new file (the files cannot
 * tell which). The writer says so in prev_end ("rotation"), which also
 * covers a header read without the file before it.
 */
static void
note_gap(struct vstate *s, json_t *j, uint64_t seq)
{
	const char *start = json_string_value(json_object_get(j, "start"));
	const char *pend = json_string_value(json_object_get(j, "prev_end"));
	bool restart = start == NULL || strcmp(start, "rotate") != 0;

	if (s->pfile != NULL && s->protated && restart)
		warn(s, s->pfile, 0, s->plast_seq, "the log continues after "
		    "seq %" PRIu64 " (rotation checkpoint, reason %s) but the "
		    "next file given begins with a restart: the file(s) in "
		    "between are missing (deleted or renamed?), or the "
		    "gateway stopped before creating one", s->plast_seq,
		    s->preason);
	else if (pend != NULL && strcmp(pend, "rotation") == 0)
		warn(s, s->file, s->line, seq, "the header says the file "
		    "before it ends with a rotation whose next file was not "
		    "there at start: records after seq %" PRIu64 " may be "
		    "missing (deleted or renamed file?)", seq - 1);
}

/* The first record of a file: its header, which must continue the chain
 * where the previous file left it. */
static bool
check_header(struct vstate *s, json_t *j, uint64_t seq)
{
	unsigned char hp[AUDIT_MAC_LEN];
	uint64_t pseq;
	const char *type = json_string_value(json_object_get(j, "type"));

	if (type == NULL || strcmp(type, AUDIT_T_FILE) != 0)
		return bad(s, s->file, s->line, seq, "the file does not begin "
		    "with its header record (records removed from its start?)");
	if (!get_mac(j, "prev_mac", hp) || !get_u64(j, "prev_seq", &pseq) ||
	    pseq + 1 != seq)
		return bad(s, s->file, s->line, seq, "malformed header record");
	if (!s->started) {
		s->started = true;
		memcpy(s->prev, hp, sizeof(hp));
		memcpy(s->start_prev, hp, sizeof(hp));
		s->next_seq = s->start_seq = seq;
		note_gap(s, j, seq);
		return true;
	}
	if (seq > s->next_seq && !s->pclosed)
		return bad(s, s->pfile, 0, s->plast_seq, "truncated after seq "
		    "%" PRIu64 ": the file ends without a checkpoint and the "
		    "next file continues from seq %" PRIu64, s->plast_seq, seq);
	if (seq > s->next_seq)
		return bad(s, s->file, s->line, seq, "records seq %" PRIu64
		    "..%" PRIu64 " are missing before this file (a file "
		    "removed?)", s->next_seq, seq - 1);
	if (seq < s->next_seq)
		return bad(s, s->file, s->line, seq, "seq %" PRIu64 " goes "
		    "back (expected %" PRIu64 "): files out of order or "
		    "repeated", seq, s->next_seq);
	if (CRYPTO_memcmp(hp, s->prev, sizeof(hp)) != 0)
		return bad(s, s->file, s->line, seq, "the header does not "
		    "continue the chain of %s (prev_mac differs)", s->pfile);
	if (!s->pclosed)
		warn(s, s->pfile, 0, s->plast_seq, "%sno checkpoint after seq "
		    "%" PRIu64 " (the gateway stopped without closing the "
		    "file, e.g. a crash); the chain continues intact in the "
		    "next file", s->ptorn ? "incomplete last line and " : "",
		    s->plast_seq);
	note_gap(s, j, seq);
	return true;
}

/* A checkpoint must agree with what was read of its file. */
static bool
check_checkpoint(struct vstate *s, json_t *j, uint64_t seq,
    const unsigned char *before)
{
	unsigned char lm[AUDIT_MAC_LEN];
	uint64_t recs;
	const char *reason = json_string_value(json_object_get(j, "reason"));

	if (!get_u64(j, "records", &recs) || !get_mac(j, "last_mac", lm) ||
	    reason == NULL)
		return bad(s, s->file, s->line, seq, "malformed checkpoint");
	if (recs != s->file_records || CRYPTO_memcmp(lm, before, sizeof(lm)))
		return bad(s, s->file, s->line, seq, "the checkpoint counts "
		    "%" PRIu64 " records but the file holds %" PRIu64,
		    recs, s->file_records);
	s->closed = true;
	/* Anything but "close" (size, age, request, or a reason a later
	 * writer adds) says the writer went on in a next file: treating an
	 * unknown reason as an end would let that file go unnoticed. */
	s->rotated = strcmp(reason, "close") != 0;
	pc_strlcpy(s->reason, reason, sizeof(s->reason));
	return true;
}

static void
note_retention(struct vstate *s, json_t *j)
{
	unsigned char lm[AUDIT_MAC_LEN];
	uint64_t last;

	/* Authenticated by the chain, since it is checked as a record. */
	if (get_u64(j, "removed_last_seq", &last) && get_mac(j, "last_mac", lm) &&
	    last + 1 == s->start_seq &&
	    CRYPTO_memcmp(lm, s->start_prev, sizeof(lm)) == 0)
		s->start_covered = true;
}

static bool
check_line(struct vstate *s, const char *line, size_t len)
{
	unsigned char mac[AUDIT_MAC_LEN], want[AUDIT_MAC_LEN];
	unsigned char before[AUDIT_MAC_LEN];
	size_t body;
	json_t *j;
	uint64_t seq = 0;
	const char *type;
	bool ok = false;

	j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (j != NULL)
		(void)get_u64(j, "seq", &seq);
	if (s->closed) {
		bad(s, s->file, s->line, seq, "a record after the file's "
		    "checkpoint (appended later?)");
		goto out;
	}
	if (!json_is_object(j) || audit_split(line, len, &body, mac) != 0) {
		bad(s, s->file, s->line, seq, "not an audit record (malformed "
		    "JSON or no MAC at its end)");
		goto out;
	}
	if (seq == 0) {
		bad(s, s->file, s->line, 0, "no valid seq");
		goto out;
	}
	type = json_string_value(json_object_get(j, "type"));
	if (s->file_records == 0) {
		if (!check_header(s, j, seq))
			goto out;
	} else if (type != NULL && strcmp(type, AUDIT_T_FILE) == 0) {
		bad(s, s->file, s->line, seq, "a file header inside a file");
		goto out;
	}
	if (seq != s->next_seq) {
		bad(s, s->file, s->line, seq, "out of sequence: expected seq "
		    "%" PRIu64 ", found %" PRIu64 " (a record removed, "
		    "repeated or moved)", s->next_seq, seq);
		goto out;
	}
	if (audit_mac(s->mac, s->prev, line, body, want) != 0) {
		bad(s, s->file, s->line, seq, "cannot compute the MAC");
		goto out;
	}
	if (CRYPTO_memcmp(want, mac, sizeof(mac)) != 0) {
		bad(s, s->file, s->line, seq, "MAC mismatch: the record was "
		    "altered, moved or forged (or the key is wrong)");
		goto out;
	}
	memcpy(before, s->prev, sizeof(before));
	memcpy(s->prev, mac, sizeof(mac));
	if (type != NULL && strcmp(type, AUDIT_T_CHECKPOINT) == 0 &&
	    !check_checkpoint(s, j, seq, before))
		goto out;
	if (type != NULL && strcmp(type, AUDIT_T_RETENTION) == 0)
		note_retention(s, j);
	s->next_seq = seq + 1;
	s->file_records++;
	s->v->records++;
	s->v->last_seq = seq;
	ok = true;
out:
	json_decref(j);
	return ok;
}

/* One file; false at the first bad record. */
static bool
check_file(struct vstate *s, const char *file)
{
	FILE *f;
	enum audit_line r;
	bool torn = false, ok = true;
	size_t len;
	int rc = audit_fopen(file, &f);

	if (rc == PC_E_INVAL)
		return bad(s, file, 0, 0, "not a regular file (a FIFO, device "
		    "or directory where a log file should be)");
	if (rc != 0)
		return bad(s, file, 0, 0, "cannot open: %s", strerror(errno));
	s->file = file;
	s->line = 0;
	s->file_records = 0;
	s->closed = false;
	s->rotated = false;
	for (;;) {
		r = audit_read_line(f, s->buf, AUDIT_MAX_LINE + 1, &len);
		if (r == AUDIT_LINE_EOF)
			break;
		s->line++;
		if (r == AUDIT_LINE_ERR) {
			ok = bad(s, file, s->line, 0, "read error: %s",
			    strerror(errno));
			break;
		}
		if (r == AUDIT_LINE_LONG) {
			ok = bad(s, file, s->line, 0, "line longer than any "
			    "record (%zu bytes)", (size_t)AUDIT_MAX_LINE);
			break;
		}
		if (r == AUDIT_LINE_TORN && !s->closed) {
			/* What a crash in the middle of write(2) leaves. */
			torn = true;
			break;
		}
		if (!check_line(s, s->buf, len)) {
			ok = false;
			break;
		}
	}
	fclose(f);
	if (!ok)
		return false;
	if (s->file_records == 0) {
		warn(s, file, 0, 0, NO_RECORD);
		return true;
	}
	s->pfile = file;
	s->plast_seq = s->next_seq - 1;
	s->plines = s->line;
	s->pclosed = s->closed;
	s->protated = s->rotated;
	pc_strlcpy(s->preason, s->reason, sizeof(s->preason));
	s->ptorn = torn;
	return true;
}

/*
 * How the log ends, judged by the last file that held a record (an empty
 * file after it must not hide where the records stop). Deleting or
 * renaming the newest files leaves no gap to find, only the end of what
 * is left: no checkpoint, or a rotation's, which a next file followed.
 */
static void
check_end(struct vstate *s)
{
	if (!s->pclosed)
		warn(s, s->pfile, 0, s->plast_seq, "%sno closing checkpoint "
		    "after seq %" PRIu64 " (possible truncation or crash, or "
		    "the log is still open)", s->ptorn ? "incomplete last "
		    "line and " : "", s->plast_seq);
	else if (s->protated)
		warn(s, s->pfile, 0, s->plast_seq, "the log continues after "
		    "seq %" PRIu64 " (rotation checkpoint, reason %s) but no "
		    "next file was given (deleted or renamed?)", s->plast_seq,
		    s->preason);
}

int
pc_audit_verify(const char *const *files, size_t n,
    const unsigned char *key, size_t key_len, struct pc_audit_verdict *v)
{
	struct vstate s;
	int rc = PC_E_NOMEM;

	if (v == NULL || files == NULL || n == 0 || key == NULL ||
	    key_len < PC_AUDIT_MIN_KEY || key_len > PC_AUDIT_MAX_KEY)
		return PC_E_INVAL;
	memset(v, 0, sizeof(*v));
	memset(&s, 0, sizeof(s));
	s.v = v;
	v->ok = true;
	s.mac = audit_mac_new(key, key_len);
	s.buf = malloc(AUDIT_MAX_LINE + 1);
	if (s.mac == NULL || s.buf == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!check_file(&s, files[i]))
			break;
	}
	if (v->ok && !s.started)
		bad(&s, files[0], 0, 0, "no record in the files given");
	if (v->ok) {
		check_end(&s);
		v->first_seq = s.start_seq;
		if (!(s.start_seq == 1 && is_zero(s.start_prev, AUDIT_MAC_LEN)) &&
		    !s.start_covered)
			warn(&s, files[0], 1, s.start_seq, "the chain starts at "
			    "seq %" PRIu64 ": earlier records are not among the "
			    "files given and no retention record accounts for "
			    "them", s.start_seq);
	}
	rc = 0;
out:
	EVP_MAC_CTX_free(s.mac);
	free(s.buf);
	return rc;
}
