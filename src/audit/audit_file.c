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

int
audit_last_line(int dirfd, const char *name, char **line, size_t *len,
    bool *torn)
{
	/* Room for a torn record after the last complete one. */
	const size_t window = 2 * (AUDIT_MAX_LINE + 1);
	struct stat st;
	char *buf = NULL;
	size_t got = 0, want, e, s;
	off_t from;
	int fd, rc = PC_E_IO;

	*line = NULL;
	*len = 0;
	*torn = false;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return PC_E_IO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	if (st.st_size == 0) {
		rc = PC_E_NOTFOUND;
		goto out;
	}
	want = (uint64_t)st.st_size < window ? (size_t)st.st_size : window;
	from = st.st_size - (off_t)want;
	buf = malloc(want);
	if (buf == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, from + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out;
		got += (size_t)r;
	}
	e = got;
	while (e > 0 && buf[e - 1] != '\n')
		e--;
	*torn = e < got;
	if (e == 0) {
		rc = (got == want && from > 0) ? PC_E_LIMIT : PC_E_NOTFOUND;
		goto out;
	}
	e--;			/* drop the '\n' */
	s = e;
	while (s > 0 && buf[s - 1] != '\n')
		s--;
	if (s == 0 && from > 0) {
		rc = PC_E_LIMIT;	/* a line longer than any record */
		goto out;
	}
	*line = pc_strndup(buf + s, e - s);
	if (*line == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	*len = e - s;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
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
