/*
 * `portcullis audit`: the operator's side of the audit log.
 *
 * verify needs the MAC key and says whether the chain is intact, naming the
 * first bad record; tail and query only read (they do not authenticate
 * what they show: run verify for that). The audit section of the config
 * does not exist yet, so the directory and the key file are given on the
 * command line.
 */
#include "audit_cli.h"
#include "cliopt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "../audit/audit.h"
#include "../audit/audit_int.h"
#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/util.h"

#define EXIT_BAD 1
#define EXIT_USAGE 2
#define EXIT_WARN 3
/* tail -n: more than this is a query, not a tail. (local limit) */
#define AUDIT_CLI_MAX_TAIL 100000u
/* tail -f polls this often (ms); a log is not a chat. */
#define AUDIT_CLI_POLL_MS 250

static const char usage_text[] =
"Usage: portcullis audit COMMAND [OPTIONS]\n"
"\n"
"Commands:\n"
"  verify -k KEYFILE [--prefix P] FILE|DIR...\n"
"        Check the MAC chain of the given log files (a DIR stands for all\n"
"        its log files, in chain order). Names the first bad record as\n"
"        FILE:LINE (seq N): reason. KEYFILE holds the audit MAC key and\n"
"        must not be readable by group or others (chmod 600). A DIR also\n"
"        gets a warning for each file named PREFIX-... that is not a log\n"
"        file name (a log file renamed out of the chain?).\n"
"  tail [-n N] [-f] [--json] [--prefix P] DIR\n"
"        The last N records (default 10); -f follows new records, across\n"
"        rotation, until interrupted.\n"
"  query DIR [--principal P] [--tool T] [--since TIME] [--until TIME]\n"
"        [--decision allow|deny] [--json] [--prefix P]\n"
"        Records matching every filter given, oldest first.\n"
"\n"
"Options:\n"
"  --prefix P      file name prefix of the log (default \"audit\")\n"
"  --json          print the records as stored (JSON Lines)\n"
"\n"
"TIME is UTC: 2026-11-21, 2026-11-21T12:00, 2026-11-21T12:00:05Z, or a\n"
"duration before now: 90s, 15m, 24h, 7d.\n"
"tail and query do not check MACs; use verify for that.\n"
"Exit status: 0 ok, 1 failure (verify: chain broken), 2 usage error,\n"
"3 verify: chain intact but with warnings (e.g. no closing checkpoint).\n";

const char *
pc_cli_audit_usage(void)
{
	return usage_text;
}

struct opts {
	const char *cmd;
	const char *key;
	const char *prefix;
	const char *principal;
	const char *tool;
	const char *since;
	const char *until;
	const char *decision;
	const char *n;
	bool follow;
	bool json;
	const char **args;
	size_t nargs;
};

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("portcullis audit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see `portcullis audit --help`)\n", stderr);
	return EXIT_USAGE;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct pc_cliopt valued[] = {
		{ "-k", offsetof(struct opts, key) },
		{ "--key", offsetof(struct opts, key) },
		{ "--prefix", offsetof(struct opts, prefix) },
		{ "--principal", offsetof(struct opts, principal) },
		{ "--tool", offsetof(struct opts, tool) },
		{ "--since", offsetof(struct opts, since) },
		{ "--until", offsetof(struct opts, until) },
		{ "--decision", offsetof(struct opts, decision) },
		{ "-n", offsetof(struct opts, n) },
	};

	o->cmd = argv[1];
	o->args = calloc((size_t)argc, sizeof(*o->args));
	if (o->args == NULL)
		return EXIT_BAD;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *what, *why;
		bool done = false;

		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
			o->follow = true;
			continue;
		}
		switch (pc_cliopt_take(valued, sizeof(valued) /
		    sizeof(valued[0]), argc, argv, &i, o, &what, &why)) {
		case 1:
			done = true;
			break;
		case -1:
			return usage_error("%s %s", what, why);
		default:
			break;
		}
		if (done)
			continue;
		if (a[0] == '-' && a[1] != '\0')
			return usage_error("unknown option %s", a);
		o->args[o->nargs++] = a;
	}
	if (o->prefix != NULL && !audit_prefix_ok(o->prefix))
		return usage_error("--prefix: 1-%u of [A-Za-z0-9._-]",
		    PC_AUDIT_MAX_PREFIX);
	return 0;
}

/* --- the key --------------------------------------------------------------------- */

/*
 * Read the MAC key as the config's ${file:} would: whole file, one trailing
 * newline dropped, refused when group or others may read or write it
 * (checked on the opened descriptor).
 */
static int
read_key(const char *path, unsigned char *key, size_t cap, size_t *len)
{
	struct stat st;
	size_t got = 0;
	int fd, rc = EXIT_BAD;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "portcullis audit: cannot open key file %s: "
		    "%s\n", path, strerror(errno));
		return EXIT_BAD;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "portcullis audit: key file %s is not a "
		    "regular file\n", path);
		goto out;
	}
	if (st.st_mode & 077) {
		fprintf(stderr, "portcullis audit: key file %s is accessible "
		    "by group/others (chmod 600)\n", path);
		goto out;
	}
	/* One byte past the ceiling tells "at" from "over". */
	while (got < cap) {
		ssize_t r = read(fd, key + got, cap - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "portcullis audit: cannot read %s: "
			    "%s\n", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > 0 && key[got - 1] == '\n') {
		got--;
		if (got > 0 && key[got - 1] == '\r')
			got--;
	}
	if (got < PC_AUDIT_MIN_KEY || got > PC_AUDIT_MAX_KEY) {
		fprintf(stderr, "portcullis audit: the key in %s must be %u to "
		    "%u bytes\n", path, PC_AUDIT_MIN_KEY, PC_AUDIT_MAX_KEY);
		goto out;
	}
	*len = got;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* --- files ------------------------------------------------------------------------ */

struct flist {
	char **v;
	size_t n, cap;
};

static int
flist_add(struct flist *f, const char *p)
{
	if (f->n == f->cap) {
		size_t nc = f->cap ? 2 * f->cap : 16;
		char **nv = realloc(f->v, nc * sizeof(*nv));

		if (nv == NULL)
			return PC_E_NOMEM;
		f->v = nv;
		f->cap = nc;
	}
	f->v[f->n] = strdup(p);
	if (f->v[f->n] == NULL)
		return PC_E_NOMEM;
	f->n++;
	return 0;
}

/*
 * Warn about names in dir that look like log files but are not listed
 * (renamed out of the chain?); returns how many. A name the listing skips
 * is otherwise invisible, and the newest file renamed away is exactly
 * what the chain cannot show by itself. Best effort: an unreadable
 * directory was already reported by the listing.
 */
static void put_safe(const char *s);

static size_t
note_strays(const char *dir, const char *prefix)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!audit_name_lookalike(de->d_name, prefix))
			continue;
		/* Whoever can write the directory names the file: an escape
		 * sequence in it must not hide the verdict that follows. */
		fputs("warning: ", stdout);
		put_safe(dir);
		putchar('/');
		put_safe(de->d_name);
		puts(": named like a log file but not one (renamed?); not "
		    "verified");
		n++;
	}
	closedir(d);
	return n;
}

/* Arguments to files: a directory gives its log files in chain order;
 * *strays counts the look-alikes it left out. */
static int
expand(const char *const *args, size_t nargs, const char *prefix,
    struct flist *out, size_t *strays)
{
	*strays = 0;
	for (size_t i = 0; i < nargs; i++) {
		struct stat st;
		char **l;
		size_t n;

		if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if (pc_audit_list(args[i], prefix, &l, &n) != 0) {
				fprintf(stderr, "portcullis audit: cannot list "
				    "%s: %s\n", args[i], strerror(errno));
				return EXIT_BAD;
			}
			*strays += note_strays(args[i], prefix ? prefix :
			    AUDIT_DEF_PREFIX);
			for (size_t k = 0; k < n; k++)
				if (flist_add(out, l[k]) != 0) {
					pc_audit_list_free(l, n);
					return EXIT_BAD;
				}
			pc_audit_list_free(l, n);
		} else if (flist_add(out, args[i]) != 0) {
			return EXIT_BAD;
		}
	}
	if (out->n == 0) {
		fprintf(stderr, "portcullis audit: no log files found\n");
		return EXIT_BAD;
	}
	return 0;
}

static void
flist_free(struct flist *f)
{
	pc_audit_list_free(f->v, f->n);
}

/* --- verify ----------------------------------------------------------------------- */

static void
print_where(FILE *out, const char *file, uint64_t line, uint64_t seq)
{
	fputs(file, out);
	if (line > 0)
		fprintf(out, ":%" PRIu64, line);
	if (seq > 0)
		fprintf(out, " (seq %" PRIu64 ")", seq);
}

static int
cmd_verify(const struct opts *o)
{
	unsigned char key[PC_AUDIT_MAX_KEY + 1];
	struct pc_audit_verdict *v = NULL;
	struct flist files = { 0 };
	size_t klen = 0, strays;
	int rc;

	if (o->key == NULL)
		return usage_error("verify needs -k KEYFILE");
	if (o->nargs == 0)
		return usage_error("verify needs FILE or DIR arguments");
	rc = read_key(o->key, key, sizeof(key), &klen);
	if (rc != 0)
		goto out;
	rc = expand(o->args, o->nargs, o->prefix, &files, &strays);
	if (rc != 0)
		goto out;
	v = malloc(sizeof(*v));
	if (v == NULL || pc_audit_verify((const char *const *)files.v, files.n,
	    key, klen, v) != 0) {
		fprintf(stderr, "portcullis audit: verify could not run\n");
		rc = EXIT_BAD;
		goto out;
	}
	for (size_t i = 0; i < v->warnings && i < PC_AUDIT_MAX_WARNINGS; i++) {
		fputs("warning: ", stdout);
		print_where(stdout, v->warning[i].file, v->warning[i].line,
		    v->warning[i].seq);
		printf(": %s\n", v->warning[i].text);
	}
	if (v->warnings > PC_AUDIT_MAX_WARNINGS)
		printf("warning: ... and %zu more\n",
		    v->warnings - PC_AUDIT_MAX_WARNINGS);
	if (!v->ok) {
		print_where(stdout, v->first_bad_file, v->first_bad_line,
		    v->first_bad_seq);
		printf(": %s\n", v->reason);
		printf("FAILED: the chain is broken there (%" PRIu64 " records "
		    "verified before it)\n", v->records);
		rc = EXIT_BAD;
		goto out;
	}
	printf("%s: %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64 ", "
	    "%zu file(s)%s\n", v->warnings || strays ? "OK WITH WARNINGS" :
	    "OK",
	    v->records, v->first_seq, v->last_seq, files.n,
	    v->warnings || strays ? " (see the warnings above)" : "");
	rc = v->warnings || strays ? EXIT_WARN : 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(v);
	flist_free(&files);
	return rc;
}

/* --- printing records -------------------------------------------------------------- */

static const char *
s_or_dash(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL && s[0] != '\0' ? s : "-";
}

/*
 * Print a record's string for a terminal. Records carry what clients sent
 * (a tool name, a method): an escape sequence in one must not rewrite the
 * operator's screen, so control characters (C0, DEL, and C1 in UTF-8) are
 * shown as \xNN and the rest as is.
 */
/*
 * A stored line as JSON for a terminal or a pipe (--json): the writer
 * keeps DEL and C1 characters of client-sent strings as they came, and a
 * tampered file may hold anything. Inside strings, C0, DEL and C1 go out
 * as \u00XX and a byte that is no UTF-8 as \ufffd: the same JSON value for
 * a valid line, nothing a terminal acts on. Between tokens a control
 * character becomes a space (JSON whitespace either way).
 */
static void
put_json_line(const char *line, size_t len)
{
	const unsigned char *p = (const unsigned char *)line;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		size_t u;

		if (in_str && c == '\\') {
			/* An escape: its next byte as is when printable;
			 * otherwise the backslash itself, escaped. */
			if (i + 1 < len && p[i + 1] >= 0x20 && p[i + 1] < 0x7f) {
				putchar(c);
				putchar(p[++i]);
			} else {
				fputs("\\\\", stdout);
			}
			continue;
		}
		if (c == '"')
			in_str = !in_str;
		if (c < 0x20 || c == 0x7f) {
			if (in_str)
				printf("\\u%04x", c);
			else
				putchar(c == '\t' ? '\t' : ' ');
		} else if (c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f) {
			printf("\\u%04x", p[++i]);
		} else if (c >= 0x80) {
			u = pc_utf8_seq(p + i, len - i);
			if (u == 0) {
				fputs(in_str ? "\\ufffd" : " ", stdout);
			} else {
				fwrite(p + i, 1, u, stdout);
				i += u - 1;
			}
		} else {
			putchar(c);
		}
	}
	putchar('\n');
}

static void
put_safe(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	    p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			printf("\\xc2\\x%02x", *++p);
		else
			putchar(*p);
	}
}

/* " name=value" with the value made safe; "-" when absent. */
static void
put_field(json_t *j, const char *name, const char *key)
{
	if (name != NULL)
		printf(" %s=", name);
	else
		putchar(' ');
	put_safe(s_or_dash(j, key));
}

/* " reasons=a:1,b:2" for a summary's counts by reason (names made safe:
 * a client chose none of them, but the log is read on a terminal). */
static void
put_counts(json_t *o)
{
	const char *k;
	json_t *v;
	int first = 1;

	if (!json_is_object(o) || json_object_size(o) == 0)
		return;
	printf(" reasons=");
	json_object_foreach(o, k, v) {
		if (!first)
			putchar(',');
		first = 0;
		put_safe(k);
		printf(":%" JSON_INTEGER_FORMAT, json_integer_value(v));
	}
}

static void
print_human(json_t *j)
{
	const char *type = s_or_dash(j, "type");
	json_int_t seq = json_integer_value(json_object_get(j, "seq"));

	put_safe(s_or_dash(j, "ts"));
	printf(" #%" JSON_INTEGER_FORMAT " ", seq);
	put_safe(type);
	if (strcmp(type, AUDIT_T_FILE) == 0) {
		put_field(j, NULL, "file");
		put_field(j, "start", "start");
		put_field(j, "prev_end", "prev_end");
		putchar('\n');
	} else if (strcmp(type, AUDIT_T_CHECKPOINT) == 0) {
		put_field(j, "reason", "reason");
		printf(" records=%" JSON_INTEGER_FORMAT "\n",
		    json_integer_value(json_object_get(j, "records")));
	} else if (strcmp(type, AUDIT_T_RETENTION) == 0) {
		printf(" removed seq %" JSON_INTEGER_FORMAT "..%"
		    JSON_INTEGER_FORMAT "\n",
		    json_integer_value(json_object_get(j, "removed_first_seq")),
		    json_integer_value(json_object_get(j, "removed_last_seq")));
	} else {
		json_t *lat = json_object_get(j, "latency_us");

		if (strcmp(type, "event") == 0) {
			put_field(j, NULL, "event");
			if (json_is_string(json_object_get(j, "upstream")))
				put_field(j, "upstream", "upstream");
			if (json_is_string(json_object_get(j, "key_id")))
				put_field(j, "key", "key_id");
			if (json_is_string(json_object_get(j, "detail")))
				put_field(j, "detail", "detail");
			if (json_is_integer(json_object_get(j, "count")))
				printf(" count=%" JSON_INTEGER_FORMAT,
				    json_integer_value(json_object_get(j,
				    "count")));
			put_counts(json_object_get(j, "reasons"));
		}
		put_field(j, "principal", "principal");
		put_field(j, "source", "source");
		put_field(j, NULL, "method");
		put_field(j, NULL, "tool");
		put_field(j, "decision", "decision");
		put_field(j, "reason", "reason");
		put_field(j, "status", "status");
		if (json_is_integer(lat))
			printf(" latency=%" JSON_INTEGER_FORMAT "us",
			    json_integer_value(lat));
		putchar('\n');
	}
}

/* Print one stored line; false if it is not a record. */
static bool
print_line(const char *line, size_t len, bool json)
{
	json_t *j;

	if (json) {
		put_json_line(line, len);
		return true;
	}
	j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		printf("(not a record: %zu bytes)\n", len);
		return false;
	}
	print_human(j);
	json_decref(j);
	return true;
}

/* --- tail ------------------------------------------------------------------------- */

/* Complete lines in a file (a torn last line does not count). */
static int
count_lines(const char *path, char *buf, uint64_t *n)
{
	FILE *f;
	enum audit_line r;
	size_t len;

	*n = 0;
	if (audit_fopen(path, &f) != 0)
		return PC_E_IO;
	while ((r = audit_read_line(f, buf, AUDIT_MAX_LINE + 1, &len)) ==
	    AUDIT_LINE_OK || r == AUDIT_LINE_LONG)
		(*n)++;
	fclose(f);
	return 0;
}

/* First sequence number of a log file, from its name; 0 if none. */
static uint64_t
path_seq(const char *path, const char *prefix)
{
	const char *b = strrchr(path, '/');
	uint64_t seq;

	if (audit_name_seq(b ? b + 1 : path, prefix ? prefix : AUDIT_DEF_PREFIX,
	    &seq) != 0)
		return 0;
	return seq;
}

static int
cmd_tail(const struct opts *o)
{
	uint64_t want = 10, total = 0, skip = 0;
	bool quick = false;
	char *cur = NULL;
	char **files = NULL;
	size_t nf = 0, from = 0;
	char *buf = NULL;
	FILE *f = NULL;
	int rc = EXIT_BAD;

	if (o->nargs != 1)
		return usage_error("tail needs one DIR");
	if (o->n != NULL && pc_parse_u64(o->n, 0, AUDIT_CLI_MAX_TAIL,
	    &want) != 0)
		return usage_error("-n: 0 to %u", AUDIT_CLI_MAX_TAIL);
	buf = malloc(AUDIT_MAX_LINE + 1);
	if (buf == NULL)
		goto out;
	if (pc_audit_list(o->args[0], o->prefix, &files, &nf) != 0) {
		fprintf(stderr, "portcullis audit: cannot list %s: %s\n",
		    o->args[0], strerror(errno));
		goto out;
	}
	/* Walk back from the newest file until N lines are covered. */
	from = nf;
	while (from > 0 && total < want) {
		uint64_t n;

		from--;
		if (count_lines(files[from], buf, &n) == 0)
			total += n;
	}
	skip = total > want ? total - want : 0;
	for (size_t i = from; i < nf; i++) {
		enum audit_line r;
		size_t len;

		if (f != NULL)
			fclose(f);
		if (audit_fopen(files[i], &f) != 0)
			continue;
		while ((r = audit_read_line(f, buf, AUDIT_MAX_LINE + 1,
		    &len)) == AUDIT_LINE_OK || r == AUDIT_LINE_LONG) {
			if (skip > 0) {
				skip--;
				continue;
			}
			print_line(buf, len, o->json);
		}
		if (r == AUDIT_LINE_TORN)	/* re-read it when complete */
			fseeko(f, -(off_t)len, SEEK_CUR);
	}
	fflush(stdout);
	cur = nf > 0 ? strdup(files[nf - 1]) : NULL;
	pc_audit_list_free(files, nf);
	files = NULL;
	nf = 0;
	while (o->follow) {
		/* Poll: new lines in the current file, then the next file. */
		struct timespec ts = { 0, AUDIT_CLI_POLL_MS * 1000000L };
		enum audit_line r;
		char **now = NULL;
		size_t nn = 0, len, next;

		if (!quick)
			nanosleep(&ts, NULL);
		quick = false;
		if (f != NULL) {
			clearerr(f);
			while ((r = audit_read_line(f, buf, AUDIT_MAX_LINE + 1,
			    &len)) == AUDIT_LINE_OK || r == AUDIT_LINE_LONG)
				print_line(buf, len, o->json);
			if (r == AUDIT_LINE_TORN)
				fseeko(f, -(off_t)len, SEEK_CUR);
			fflush(stdout);
		}
		if (pc_audit_list(o->args[0], o->prefix, &now, &nn) != 0)
			continue;
		/* The file after the current one, in chain order: several
		 * rotations between two polls are read one by one. */
		next = 0;
		if (cur != NULL) {
			uint64_t cs = path_seq(cur, o->prefix);

			while (next < nn && path_seq(now[next], o->prefix) <= cs)
				next++;
		}
		if (next < nn) {
			/* Rotation: the old file is complete now (its
			 * checkpoint precedes the new file): finish it, then
			 * read the new one from its start. */
			if (f != NULL) {
				clearerr(f);
				while ((r = audit_read_line(f, buf,
				    AUDIT_MAX_LINE + 1, &len)) ==
				    AUDIT_LINE_OK || r == AUDIT_LINE_LONG)
					print_line(buf, len, o->json);
				fclose(f);
			}
			(void)audit_fopen(now[next], &f);	/* NULL: skip */
			free(cur);
			cur = strdup(now[next]);
			quick = true;
		}
		pc_audit_list_free(now, nn);
	}
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	pc_audit_list_free(files, nf);
	free(cur);
	free(buf);
	return rc;
}

/* --- query ------------------------------------------------------------------------ */

/* TIME: ISO-8601 UTC, or a duration before now (90s, 15m, 24h, 7d). */
static int
parse_when(const char *s, int64_t *us)
{
	size_t n = strlen(s);
	uint64_t v, mult;
	char num[24];

	if (audit_parse_time(s, us) == 0)
		return 0;
	if (n < 2 || n - 1 >= sizeof(num))
		return -1;
	switch (s[n - 1]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return -1;
	}
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	if (pc_parse_u64(num, 0, 36500ull * 86400ull / mult, &v) != 0)
		return -1;
	*us = ((int64_t)time(NULL) - (int64_t)(v * mult)) * 1000000;
	return 0;
}

static bool
str_is(json_t *j, const char *k, const char *want)
{
	const char *s = json_string_value(json_object_get(j, k));

	return want == NULL || (s != NULL && strcmp(s, want) == 0);
}

static int
cmd_query(const struct opts *o)
{
	int64_t since = INT64_MIN, until = INT64_MAX;
	char **files = NULL;
	size_t nf = 0;
	char *buf = NULL;
	uint64_t shown = 0;
	int rc = EXIT_BAD;

	if (o->nargs != 1)
		return usage_error("query needs one DIR");
	if (o->since != NULL && parse_when(o->since, &since) != 0)
		return usage_error("--since: not a time: %s", o->since);
	if (o->until != NULL && parse_when(o->until, &until) != 0)
		return usage_error("--until: not a time: %s", o->until);
	if (o->decision != NULL && strcmp(o->decision, "allow") != 0 &&
	    strcmp(o->decision, "deny") != 0)
		return usage_error("--decision: allow or deny");
	buf = malloc(AUDIT_MAX_LINE + 1);
	if (buf == NULL)
		goto out;
	if (pc_audit_list(o->args[0], o->prefix, &files, &nf) != 0) {
		fprintf(stderr, "portcullis audit: cannot list %s: %s\n",
		    o->args[0], strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nf; i++) {
		FILE *f;
		enum audit_line r;
		size_t len;
		int orc = audit_fopen(files[i], &f);

		if (orc != 0) {
			fprintf(stderr, "portcullis audit: cannot open %s: %s\n",
			    files[i], orc == PC_E_INVAL ? "not a regular file" :
			    strerror(errno));
			continue;
		}
		while ((r = audit_read_line(f, buf, AUDIT_MAX_LINE + 1,
		    &len)) == AUDIT_LINE_OK || r == AUDIT_LINE_LONG) {
			if (r == AUDIT_LINE_LONG)
				continue;	/* not a record: the next one */
			json_t *j = json_loadb(buf, len,
			    JSON_REJECT_DUPLICATES, NULL);
			const char *type = json_string_value(
			    json_object_get(j, "type"));
			const char *ts = json_string_value(
			    json_object_get(j, "ts"));
			int64_t at;

			if (j == NULL || type == NULL || ts == NULL ||
			    strcmp(type, AUDIT_T_FILE) == 0 ||
			    strcmp(type, AUDIT_T_CHECKPOINT) == 0 ||
			    strcmp(type, AUDIT_T_RETENTION) == 0 ||
			    audit_parse_time(ts, &at) != 0 || at < since ||
			    at >= until || !str_is(j, "principal",
			    o->principal) || !str_is(j, "tool", o->tool) ||
			    !str_is(j, "decision", o->decision)) {
				json_decref(j);
				continue;
			}
			if (o->json) {
				put_json_line(buf, len);
			} else {
				print_human(j);
			}
			shown++;
			json_decref(j);
		}
		fclose(f);
	}
	if (!o->json)
		fprintf(stderr, "%" PRIu64 " record(s)\n", shown);
	rc = 0;
out:
	pc_audit_list_free(files, nf);
	free(buf);
	return rc;
}

int
pc_cli_audit(int argc, char **argv)
{
	struct opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	rc = parse_args(argc, argv, &o);
	if (rc != 0)
		goto out;
	if (strcmp(o.cmd, "verify") == 0)
		rc = cmd_verify(&o);
	else if (strcmp(o.cmd, "tail") == 0)
		rc = cmd_tail(&o);
	else if (strcmp(o.cmd, "query") == 0)
		rc = cmd_query(&o);
	else
		rc = usage_error("unknown command %s", o.cmd);
out:
	free(o.args);
	return rc;
}
