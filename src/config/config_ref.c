/*
 * Secret references inside config strings: ${env:NAME}, ${file:PATH}, and
 * the $${ escape for a literal "${".
 *
 * Resolved values are secrets: they are built in buffers that are wiped
 * before release (never realloc'd, which could leave a copy behind), are
 * never put into an error message, and are recorded in cfg->secrets so that
 * later stages can redact them.
 */
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/util.h"

/* Growable buffer with a ceiling that wipes what it drops. */
struct sbuf {
	char *p;
	size_t len, cap, max;
};

static int
sb_append(struct sbuf *b, const char *s, size_t n)
{
	if (n > b->max - b->len)
		return PC_E_LIMIT;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 64;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		char *np = malloc(ncap);
		if (np == NULL)
			return PC_E_NOMEM;
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			explicit_bzero(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void
sb_wipe(struct sbuf *b)
{
	if (b->p != NULL) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

void
cfg_free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

bool
cfg_name_looks_secret(const char *name)
{
	static const char *const words[] = {
		"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL",
		"AUTH", "PRIVATE",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(name, words[i]) != NULL)
			return true;
	return false;
}

bool
cfg_env_name_holds_secret(const char *name)
{
	static const char *const ends[] = {
		"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PWD",
		"CREDENTIAL", "PASSPHRASE", "AUTH", "AUTHORIZATION", "PRIVATE",
	};
	/* Named like secrets, known not to be: a socket path, directories. */
	static const char *const not_secret[] = {
		"SSH_AUTH_SOCK", "PWD", "OLDPWD",
	};
	const char *w = name, *last = strrchr(name, '_');

	for (size_t i = 0; i < sizeof(not_secret) / sizeof(not_secret[0]); i++)
		if (strcasecmp(name, not_secret[i]) == 0)
			return false;
	/* ..._SOCK, ..._SOCKET: a socket's path (SSH_AUTH_SOCK and kin). */
	last = last != NULL ? last + 1 : name;
	if (strcasecmp(last, "SOCK") == 0 || strcasecmp(last, "SOCKET") == 0)
		return false;
	/* Word by word ('_' separates): a word ending in one of these, or
	 * in one of these and an S (API_KEYS). Substrings would take
	 * GIT_AUTHOR_NAME or KEYBOARD_* for secrets and redact their values
	 * everywhere. */
	while (*w != '\0') {
		size_t n = strcspn(w, "_");

		for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
			size_t el = strlen(ends[i]), m = n;

			if (n > 0 && (w[n - 1] == 'S' || w[n - 1] == 's'))
				m = n - 1;

			if ((n >= el && strncasecmp(w + n - el, ends[i], el) ==
			    0) || (m >= el && m < n && strncasecmp(w + m - el,
			    ends[i], el) == 0))
				return true;
		}
		w += n;
		if (*w == '_')
			w++;
	}
	return false;
}

bool
cfg_env_name_ok(const char *name)
{
	if (!((name[0] >= 'A' && name[0] <= 'Z') ||
	    (name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return false;
	for (const char *p = name + 1; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

char *
cfg_abs_path(const struct cfg_ctx *ctx, const char *p)
{
	size_t dl = strlen(ctx->dir), n;
	char *out;

	if (p[0] == '/')
		return pc_strndup(p, strlen(p));
	/* ctx->dir is canonical (realpath or getcwd), so a leading "../"
	 * can drop its last component without crossing a symlink. Later
	 * ".." are left for the kernel: they may follow links. */
	while (dl > 1 && ctx->dir[dl - 1] == '/')
		dl--;
	for (;;) {
		if (p[0] == '.' && p[1] == '/') {
			p += 2;
		} else if (p[0] == '.' && p[1] == '\0') {
			p += 1;
		} else if (p[0] == '.' && p[1] == '.' &&
		    (p[2] == '/' || p[2] == '\0')) {
			while (dl > 1 && ctx->dir[dl - 1] != '/')
				dl--;
			if (dl > 1)
				dl--;	/* the '/' before the dropped name */
			p += p[2] == '/' ? 3 : 2;
		} else {
			break;
		}
		while (*p == '/')
			p++;
	}
	n = dl + 1 + strlen(p) + 1;
	out = malloc(n);
	if (out == NULL)
		return NULL;
	if (*p == '\0')
		snprintf(out, n, "%.*s", (int)dl, ctx->dir);
	else
		snprintf(out, n, "%.*s%s%s", (int)dl, ctx->dir,
		    dl == 1 && ctx->dir[0] == '/' ? "" : "/", p);
	return out;
}

/* Record a resolved value for redaction. Empty values are skipped: there is
 * nothing to redact, and an empty pattern would match everywhere. */
int
cfg_add_secret(struct cfg_ctx *ctx, const char *v, size_t len)
{
	struct pc_config *cfg = ctx->cfg;
	char **nv, *copy;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < cfg->nsecrets; i++)
		if (strlen(cfg->secrets[i]) == len &&
		    memcmp(cfg->secrets[i], v, len) == 0)
			return 0;
	copy = pc_strndup(v, len);
	if (copy == NULL)
		return PC_E_NOMEM;
	nv = realloc(cfg->secrets, (cfg->nsecrets + 2) * sizeof(*nv));
	if (nv == NULL) {
		cfg_free_secret(copy);
		return PC_E_NOMEM;
	}
	cfg->secrets = nv;
	cfg->secrets[cfg->nsecrets++] = copy;
	cfg->secrets[cfg->nsecrets] = NULL;
	return 0;
}

/*
 * Append the contents of a secret file. The mode is checked on the opened
 * descriptor (fstat), so the file judged is the file read even if the path
 * is a symlink (as mounted secrets often are) or is swapped meanwhile.
 */
static int
read_file_ref(struct cfg_ctx *ctx, const struct cfg_node *n, const char *path,
    struct sbuf *dst)
{
	char show[80];
	char *full = NULL;
	char *buf = NULL;
	size_t got = 0;
	struct stat st;
	int fd = -1, rc = PC_E_CONFIG;

	cfg_show(path, strlen(path), show, sizeof(show));
	full = cfg_abs_path(ctx, path);
	if (full == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		cfg_err_at(ctx, n, "${file:%s}: cannot open %s: %s", show, show,
		    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cfg_err_at(ctx, n, "${file:%s}: %s is not a regular file", show,
		    show);
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH)) {
		cfg_err_at(ctx, n, "${file:%s}: %s is readable by group/others "
		    "(chmod 600)", show, show);
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		cfg_err_at(ctx, n, "${file:%s}: %s is writable by group/others "
		    "(chmod 600)", show, show);
		goto out;
	}
	/* Its owner can rewrite it (the pepper, the audit key, a token the
	 * gateway hands on): only the gateway's user or root may own it. */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		cfg_err_at(ctx, n, "${file:%s}: %s belongs to another user "
		    "(uid %u); it must be owned by the gateway's user or root",
		    show, show, (unsigned)st.st_uid);
		goto out;
	}
	buf = malloc(PC_MAX_FILE_REF_BYTES + 1);
	if (buf == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	/* Read one byte past the limit to tell "exactly at" from "over". */
	while (got < PC_MAX_FILE_REF_BYTES + 1) {
		ssize_t r = read(fd, buf + got, PC_MAX_FILE_REF_BYTES + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cfg_err_at(ctx, n, "${file:%s}: cannot read %s: %s",
			    show, show, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > PC_MAX_FILE_REF_BYTES) {
		cfg_err_at(ctx, n, "${file:%s}: %s is larger than %u bytes",
		    show, show, PC_MAX_FILE_REF_BYTES);
		goto out;
	}
	if (got > 0 && buf[got - 1] == '\n') {
		got--;
		if (got > 0 && buf[got - 1] == '\r')
			got--;
	}
	if (memchr(buf, '\0', got) != NULL) {
		cfg_err_at(ctx, n, "${file:%s}: %s contains a NUL byte", show,
		    show);
		goto out;
	}
	rc = sb_append(dst, buf, got);
	if (rc == PC_E_LIMIT) {
		cfg_err_at(ctx, n, "value is longer than %u bytes after "
		    "expanding references", CFG_MAX_EXPANDED);
		rc = PC_E_CONFIG;
	}
	if (rc == 0)
		rc = cfg_add_secret(ctx, buf, got);
out:
	if (buf != NULL) {
		explicit_bzero(buf, PC_MAX_FILE_REF_BYTES + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	free(full);
	return rc;
}

static int
env_ref(struct cfg_ctx *ctx, const struct cfg_node *n, const char *name,
    struct sbuf *dst)
{
	char show[80];
	const char *v;
	int rc;

	cfg_show(name, strlen(name), show, sizeof(show));
	if (!cfg_env_name_ok(name)) {
		cfg_err_at(ctx, n, "${env:%s}: '%s' is not a valid environment "
		    "variable name", show, show);
		return PC_E_CONFIG;
	}
	v = getenv(name);
	if (v == NULL) {
		cfg_err_at(ctx, n, "${env:%s}: environment variable %s is not "
		    "set", show, show);
		return PC_E_CONFIG;
	}
	rc = sb_append(dst, v, strlen(v));
	if (rc == PC_E_LIMIT) {
		cfg_err_at(ctx, n, "value is longer than %u bytes after "
		    "expanding references", CFG_MAX_EXPANDED);
		return PC_E_CONFIG;
	}
	if (rc == 0)
		rc = cfg_add_secret(ctx, v, strlen(v));
	return rc;
}

/* One "${kind:arg}" with `inner` = "kind:arg" (NUL-terminated copy). */
static int
one_ref(struct cfg_ctx *ctx, const struct cfg_node *n, char *inner,
    struct sbuf *dst)
{
	char show[80];
	char *colon = strchr(inner, ':');

	if (colon == NULL) {
		cfg_show(inner, strlen(inner), show, sizeof(show));
		cfg_err_at(ctx, n, "reference ${%s} has no kind; write "
		    "${env:%s} or ${file:PATH} (or $${ for a literal \"${\")",
		    show, show);
		return PC_E_CONFIG;
	}
	*colon = '\0';
	if (strcmp(inner, "env") == 0)
		return env_ref(ctx, n, colon + 1, dst);
	if (strcmp(inner, "file") == 0) {
		if (colon[1] == '\0') {
			cfg_err_at(ctx, n, "${file:} needs a path");
			return PC_E_CONFIG;
		}
		return read_file_ref(ctx, n, colon + 1, dst);
	}
	cfg_show(inner, strlen(inner), show, sizeof(show));
	if (strcmp(inner, "vault") == 0)
		cfg_err_at(ctx, n, "vault references are not supported yet");
	else
		cfg_err_at(ctx, n, "unknown reference kind '%s' (expected "
		    "${env:NAME} or ${file:PATH})", show);
	return PC_E_CONFIG;
}

int
cfg_expand(struct cfg_ctx *ctx, const struct cfg_node *n, char **out,
    bool *had_ref)
{
	struct sbuf b = { .max = CFG_MAX_EXPANDED };
	const char *s = n->s;
	size_t len = n->len, i = 0;
	bool failed = false;
	int rc = 0;

	*out = NULL;
	*had_ref = false;
	if (sb_append(&b, "", 0) != 0)
		return PC_E_NOMEM;
	while (i < len && rc == 0) {
		if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' &&
		    s[i + 2] == '{') {
			rc = sb_append(&b, "${", 2);
			i += 3;
			continue;
		}
		if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
			const char *end = memchr(s + i + 2, '}', len - i - 2);
			if (end == NULL) {
				cfg_err_at(ctx, n, "unterminated reference: "
				    "'${' without '}' (write $${ for a "
				    "literal \"${\")");
				failed = true;
				break;
			}
			char *inner = pc_strndup(s + i + 2,
			    (size_t)(end - (s + i + 2)));
			if (inner == NULL) {
				rc = PC_E_NOMEM;
				break;
			}
			int r = one_ref(ctx, n, inner, &b);
			free(inner);
			if (r == PC_E_CONFIG)
				failed = true;	/* keep going: report all */
			else if (r != 0)
				rc = r;
			*had_ref = true;
			i = (size_t)(end - s) + 1;
			continue;
		}
		rc = sb_append(&b, s + i, 1);
		i++;
	}
	if (rc == PC_E_LIMIT) {
		cfg_err_at(ctx, n, "value is longer than %u bytes after "
		    "expanding references", CFG_MAX_EXPANDED);
		rc = PC_E_CONFIG;
	}
	if (rc == 0 && failed)
		rc = PC_E_CONFIG;
	if (rc != 0) {
		sb_wipe(&b);
		return rc;
	}
	*out = b.p;
	return 0;
}
