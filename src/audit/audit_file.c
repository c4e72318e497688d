/*
 * Audit log helpers shared by the writer and the verifier: the MAC and its
 * place in a line, file names, listing a log's files in chain order, and
 * bounded line reading (a log file is input we did not necessarily write).
 */
#include "audit_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "../lib/errors.h"
#include "../lib/util.h"

EVP_MAC_CTX *
audit_mac_new(const unsigned char *key, size_t key_len)
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[2];

	EVP_MAC_free(m);	/* the context keeps its own reference */
	if (c == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(c, key, key_len, params) != 1) {
		EVP_MAC_CTX_free(c);
		return NULL;
	}
	return c;
}

int
audit_mac(EVP_MAC_CTX *keyed, const unsigned char prev[AUDIT_MAC_LEN],
    const char *body, size_t len, unsigned char out[AUDIT_MAC_LEN])
{
	size_t olen = 0;

	/* Init without a key restarts HMAC from the pads derived when the
	 * context was keyed: no allocation and no key schedule per record
	 * (a copy of the context per record cost an allocation each). */
	if (EVP_MAC_init(keyed, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(keyed, prev, AUDIT_MAC_LEN) != 1 ||
	    EVP_MAC_update(keyed, (const unsigned char *)body, len) != 1 ||
	    EVP_MAC_final(keyed, out, &olen, AUDIT_MAC_LEN) != 1 ||
	    olen != AUDIT_MAC_LEN)
		return PC_E_IO;
	return 0;
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;	/* uppercase too: one spelling per MAC */
}

int
audit_unhex(const char *in, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return PC_E_PARSE;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
audit_split(const char *line, size_t len, size_t *body_len,
    unsigned char mac[AUDIT_MAC_LEN])
{
	size_t b;

	/* The body holds at least "{}"-worth of a record: "{"seq":1". */
	if (len < AUDIT_SUFFIX_LEN + 2)
		return PC_E_PARSE;
	b = len - AUDIT_SUFFIX_LEN;
	if (memcmp(line + b, AUDIT_MAC_KEY, AUDIT_MAC_KEY_LEN) != 0 ||
	    memcmp(line + len - AUDIT_TAIL_LEN, AUDIT_TAIL, AUDIT_TAIL_LEN) != 0)
		return PC_E_PARSE;
	if (audit_unhex(line + b + AUDIT_MAC_KEY_LEN, AUDIT_MAC_LEN, mac) != 0)
		return PC_E_PARSE;
	*body_len = b;
	return 0;
}

bool
audit_prefix_ok(const char *p)
{
	size_t n = 0;

	if (p == NULL)
		return false;
	for (; p[n] != '\0'; n++) {
		char c = p[n];

		if (n >= PC_AUDIT_MAX_PREFIX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0 && p[0] != '.';
}

/* PREFIX-YYYYmmddTHHMMSSZ-SEQ.jsonl */
int
audit_name_seq(const char *name, const char *prefix, uint64_t *seq)
{
	static const char ext[] = ".jsonl";
	size_t pl = strlen(prefix), nl = strlen(name), el = sizeof(ext) - 1;
	const char *p, *end;
	char digits[24];
	size_t dl;

	/* prefix, '-', 16-char stamp, '-', 1+ digits, ext */
	if (nl < pl + 1 + 16 + 1 + 1 + el || strncmp(name, prefix, pl) != 0 ||
	    name[pl] != '-' || strcmp(name + nl - el, ext) != 0)
		return PC_E_INVAL;
	p = name + pl + 1;
	for (size_t i = 0; i < 16; i++) {
		char c = p[i];
		bool want_digit = i != 8 && i != 15;

		if (want_digit ? !(c >= '0' && c <= '9') :
		    c != (i == 8 ? 'T' : 'Z'))
			return PC_E_INVAL;
	}
	if (p[16] != '-')
		return PC_E_INVAL;
	p += 17;
	end = name + nl - el;
	dl = (size_t)(end - p);
	if (dl == 0 || dl >= sizeof(digits))
		return PC_E_INVAL;
	memcpy(digits, p, dl);
	digits[dl] = '\0';
	return pc_parse_u64(digits, 1, UINT64_MAX, seq);
}

bool
audit_name_lookalike(const char *name, const char *prefix)
{
	size_t pl = strlen(prefix);
	uint64_t seq;

	return strncmp(name, prefix, pl) == 0 && name[pl] == '-' &&
	    audit_name_seq(name, prefix, &seq) != 0;
}

enum audit_line
audit_read_line(FILE *f, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	bool long_line = false;
	int c;

	while ((c = getc_unlocked(f)) != EOF) {
		if (c == '\n') {
			buf[n < cap ? n : cap - 1] = '\0';
			*len = n;
			return long_line ? AUDIT_LINE_LONG : AUDIT_LINE_OK;
		}
		if (n + 1 < cap)
			buf[n++] = (char)c;
		else
			long_line = true;
	}
	buf[n] = '\0';
	*len = n;
	if (ferror(f))
		return AUDIT_LINE_ERR;
	if (long_line)
		return AUDIT_LINE_LONG;
	return n == 0 ? AUDIT_LINE_EOF : AUDIT_LINE_TORN;
}

/* The first byte of the line that ends just before buf[e] (a '\n' or the
 * end), or -1 when no '\n' precedes it in buf[0..e). */
static ptrdiff_t
line_start(const char *buf, size_t e)
{
	size_t s = e;

	while (s > 0 && buf[s - 1] != '\n')
		s--;
	return s > 0 ? (ptrdiff_t)s : -1;
}

/*
 * Find the last two complete lines in buf[0..got), which ends the file
 * and starts at offset `from` of it. 0, PC_E_NOTFOUND (no complete line
 * in the file), or 1: a line may begin before buf (read more).
 */
static int
find_tail(char *buf, size_t got, off_t from, struct audit_tail *t)
{
	size_t e = got;
	ptrdiff_t ls, ps;

	while (e > 0 && buf[e - 1] != '\n')
		e--;
	if (e == 0)
		return from > 0 ? 1 : PC_E_NOTFOUND;
	t->torn = e < got;
	e--;				/* the last line's '\n' */
	ls = line_start(buf, e);
	if (ls < 0 && from > 0)
		return 1;
	ls = ls < 0 ? 0 : ls;
	t->line = buf + ls;
	t->len = e - (size_t)ls;
	t->prev = NULL;
	t->plen = 0;
	if (ls == 0)
		return 0;		/* the file's only line */
	ps = line_start(buf, (size_t)ls - 1);
	if (ps < 0 && from > 0)
		return 1;
	ps = ps < 0 ? 0 : ps;
	t->prev = buf + ps;
	t->plen = (size_t)ls - 1 - (size_t)ps;
	return 0;
}

/* buf[0..n) from offset `at` of fd; 0 or PC_E_IO. */
static int
read_at(int fd, char *buf, size_t n, off_t at)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, at + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return PC_E_IO;
		got += (size_t)r;
	}
	return 0;
}

/*
 * Open dirfd/name for reading, a regular file only; *fd and *st on 0.
 * O_NONBLOCK: a FIFO under a log's name must not hang open(2) until a
 * writer comes (fstat then refuses it); reads of a regular file ignore
 * the flag. With O_NOFOLLOW in flags a symlink is PC_E_INVAL too.
 * 0, PC_E_INVAL, PC_E_IO (errno kept).
 */
static int
open_regular(int dirfd, const char *name, int flags, int *fd,
    struct stat *st)
{
	int rc = PC_E_INVAL, saved;

	*fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
	    O_NOCTTY | flags);
	if (*fd < 0)
		return errno == ELOOP && (flags & O_NOFOLLOW) ? PC_E_INVAL :
		    PC_E_IO;
	if (fstat(*fd, st) != 0)
		rc = PC_E_IO;
	else if (S_ISREG(st->st_mode))
		return 0;
	saved = errno;
	close(*fd);
	*fd = -1;
	errno = saved;
	return rc;
}

int
audit_tail_read(int dirfd, const char *name, struct audit_tail *t)
{
	/* A torn record, the last line and the one before it at most; most
	 * files end well within the first window, which doubles as needed. */
	const size_t cap = 3 * (AUDIT_MAX_LINE + 1);
	size_t want = 64 * 1024;
	struct stat st;
	int fd, rc;

	memset(t, 0, sizeof(*t));
	/* The writer never follows a link in its directory. */
	rc = open_regular(dirfd, name, O_NOFOLLOW, &fd, &st);
	if (rc != 0)
		return rc;
	rc = PC_E_NOTFOUND;
	if (st.st_size == 0)
		goto out;
	for (;;) {
		off_t from;

		if ((uint64_t)st.st_size < want)
			want = (size_t)st.st_size;
		from = st.st_size - (off_t)want;
		free(t->buf);
		t->buf = malloc(want);
		if (t->buf == NULL) {
			rc = PC_E_NOMEM;
			goto out;
		}
		rc = read_at(fd, t->buf, want, from);
		if (rc == 0)
			rc = find_tail(t->buf, want, from, t);
		if (rc != 1)
			break;
		if (want >= cap) {
			rc = PC_E_LIMIT;	/* a line longer than any record */
			break;
		}
		want = want * 2 < cap ? want * 2 : cap;
	}
out:
	close(fd);
	if (rc != 0)
		audit_tail_free(t);
	return rc;
}

int
audit_fopen(const char *path, FILE **out)
{
	struct stat st;
	int fd, rc;

	*out = NULL;
	/* Following a symlink: see audit_int.h. */
	rc = open_regular(AT_FDCWD, path, 0, &fd, &st);
	if (rc != 0)
		return rc;
	*out = fdopen(fd, "r");
	if (*out != NULL)
		return 0;
	close(fd);
	return PC_E_IO;
}

void
audit_tail_free(struct audit_tail *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

void
audit_ts(const struct timespec *t, char *out, size_t outlen)
{
	struct tm tm;
	char day[24];

	gmtime_r(&t->tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%.19s.%06ldZ", day,
	    (long)(t->tv_nsec / 1000) % 1000000);
}

static int
digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
audit_parse_time(const char *s, int64_t *us)
{
	struct tm tm = { 0 };
	size_t n = strlen(s), p = 10;
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, fd = 0;
	time_t t;

	if (n < 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) ||
	    digits(s + 5, 2, &mo) || digits(s + 8, 2, &d))
		return PC_E_PARSE;
	if (p < n && s[p] == 'T') {
		if (n < p + 6 || s[p + 3] != ':' || digits(s + p + 1, 2, &h) ||
		    digits(s + p + 4, 2, &mi))
			return PC_E_PARSE;
		p += 6;
		if (p < n && s[p] == ':') {
			if (n < p + 3 || digits(s + p + 1, 2, &sec))
				return PC_E_PARSE;
			p += 3;
			if (p < n && s[p] == '.') {
				p++;
				while (p < n && fd < 6 && s[p] >= '0' &&
				    s[p] <= '9') {
					frac = frac * 10 + (s[p++] - '0');
					fd++;
				}
				if (fd == 0)
					return PC_E_PARSE;
				for (; fd < 6; fd++)
					frac *= 10;
			}
		}
	}
	if (p < n && s[p] == 'Z')
		p++;
	if (p != n || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return PC_E_PARSE;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return PC_E_PARSE;
	*us = (int64_t)t * 1000000 + frac;
	return 0;
}

/* --- listing ------------------------------------------------------------------ */

struct entry {
	uint64_t seq;
	char *name;
};

static int
entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;

	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return strcmp(a->name, b->name);
}

void
pc_audit_list_free(char **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int
pc_audit_list(const char *dir, const char *prefix, char ***out, size_t *n)
{
	struct entry *ents = NULL;
	size_t cnt = 0, cap = 0;
	char **list = NULL;
	struct dirent *de;
	DIR *d = NULL;
	int rc = PC_E_NOMEM, saved;

	*out = NULL;
	*n = 0;
	if (prefix == NULL)
		prefix = AUDIT_DEF_PREFIX;
	if (dir == NULL || !audit_prefix_ok(prefix))
		return PC_E_INVAL;
	d = opendir(dir);
	if (d == NULL)
		return PC_E_IO;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		uint64_t seq;

		if (audit_name_seq(de->d_name, prefix, &seq) != 0)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			struct entry *ne = realloc(ents, ncap * sizeof(*ne));

			if (ne == NULL)
				goto out;
			ents = ne;
			cap = ncap;
		}
		ents[cnt].seq = seq;
		ents[cnt].name = strdup(de->d_name);
		if (ents[cnt].name == NULL)
			goto out;
		cnt++;
	}
	if (cnt > 0)
		qsort(ents, cnt, sizeof(*ents), entry_cmp);
	list = calloc(cnt + 1, sizeof(*list));
	if (list == NULL)
		goto out;
	for (size_t i = 0; i < cnt; i++) {
		size_t l = strlen(dir) + 1 + strlen(ents[i].name) + 1;

		list[i] = malloc(l);
		if (list[i] == NULL) {
			pc_audit_list_free(list, i);
			list = NULL;
			goto out;
		}
		snprintf(list[i], l, "%s/%s", dir, ents[i].name);
	}
	*out = list;
	*n = cnt;
	rc = 0;
out:
	saved = errno;
	for (size_t i = 0; i < cnt; i++)
		free(ents[i].name);
	free(ents);
	closedir(d);
	errno = saved;
	return rc;
}
