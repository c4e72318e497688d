/*
 * Config loading: file -> tree (config_yaml.c) -> schema walk
 * (config_schema.c, config_upstream.c, references in config_ref.c) ->
 * struct pc_config. This file holds the public entry points, defaults,
 * freeing and the error list. Errors are collected, never printed from
 * here; pc_config_errors_print() is for the CLI.
 */
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../authz/policy.h"
#include "../validate/schema.h"

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/util.h"

/* --- errors ----------------------------------------------------------------- */

const char *
cfg_show(const char *s, size_t len, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	/* Room for one escape (4) plus "..." (3) plus NUL. */
	if (buflen < 16) {
		if (buflen > 0)
			buf[0] = '\0';
		return buf;
	}
	for (i = 0; i < len && o + 8 < buflen && i < 60; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else if (c >= 0x80) {
			buf[o++] = (char)c;	/* UTF-8 stays readable */
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (i < len) {
		/* Do not cut a UTF-8 sequence in half. */
		while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
			o--;
		if (o > 0 && (unsigned char)buf[o - 1] >= 0xc0)
			o--;
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static void
err_store(struct cfg_ctx *ctx, unsigned line, unsigned col, const char *msg)
{
	struct pc_config_errors *e = ctx->errs;
	struct pc_config_error *nv;
	char *file, *m;

	nv = realloc(e->v, (e->n + 1) * sizeof(*nv));
	if (nv == NULL) {
		ctx->nomem = true;
		return;
	}
	e->v = nv;
	file = pc_strndup(ctx->file, strlen(ctx->file));
	m = pc_strndup(msg, strlen(msg));
	if (file == NULL || m == NULL) {
		free(file);
		free(m);
		ctx->nomem = true;
		return;
	}
	e->v[e->n].file = file;
	e->v[e->n].line = line;
	e->v[e->n].col = col;
	e->v[e->n].msg = m;
	e->n++;
}

void
cfg_err(struct cfg_ctx *ctx, unsigned line, unsigned col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ctx->full)
		return;
	/* The last slot says that more were dropped. */
	if (ctx->errs->n + 1 >= PC_MAX_CONFIG_ERRORS) {
		snprintf(msg, sizeof(msg), "too many errors; only the first %u "
		    "are shown", PC_MAX_CONFIG_ERRORS - 1);
		err_store(ctx, 0, 0, msg);
		ctx->full = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_store(ctx, line, col, msg);
}

void
pc_config_errors_free(struct pc_config_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++) {
		free(errs->v[i].file);
		free(errs->v[i].msg);
	}
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

void
pc_config_errors_print(const struct pc_config_errors *errs, void *stream)
{
	FILE *f = stream;

	if (errs == NULL || f == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++) {
		const struct pc_config_error *e = &errs->v[i];
		if (e->line > 0)
			fprintf(f, "%s:%u:%u: %s\n", e->file, e->line, e->col,
			    e->msg);
		else
			fprintf(f, "%s: %s\n", e->file, e->msg);
	}
}

/* --- defaults and free ------------------------------------------------------ */

static void
free_strv(char **v, size_t n, bool secret)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (secret)
			cfg_free_secret(v[i]);
		else
			free(v[i]);
	}
	free(v);
}

void
cfg_upstream_clear(struct pc_upstream_conf *u)
{
	free(u->name);
	free(u->prefix);
	/* argv and env may hold resolved secrets. */
	free_strv(u->argv, u->argc, true);
	free_strv(u->env, u->nenv, true);
	free_strv(u->inherit_env, u->ninherit, false);
	free(u->cwd);
	memset(u, 0, sizeof(*u));
}

int
cfg_strv_new(const char *const *src, size_t n, char ***out)
{
	char **v = calloc(n + 1, sizeof(*v));

	if (v == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = pc_strndup(src[i], strlen(src[i]));
		if (v[i] == NULL) {
			free_strv(v, i, false);
			return PC_E_NOMEM;
		}
	}
	*out = v;
	return 0;
}

int
cfg_upstream_defaults(struct pc_upstream_conf *u)
{
	static const char *const inherit[] = { "PATH", "HOME", "LANG" };

	memset(u, 0, sizeof(*u));
	u->era = PC_ERA_AUTO;
	u->client_roots = false;
	u->call_timeout_ms = PC_DEF_CALL_TIMEOUT_MS;
	u->max_call_timeout_ms = PC_DEF_MAX_CALL_TIMEOUT_MS;
	u->probe_timeout_ms = PC_DEF_PROBE_TIMEOUT_MS;
	u->init_timeout_ms = PC_DEF_INIT_TIMEOUT_MS;
	u->shutdown_grace_ms = PC_DEF_SHUTDOWN_GRACE_MS;
	u->restart_min_ms = PC_DEF_RESTART_MIN_MS;
	u->restart_max_ms = PC_DEF_RESTART_MAX_MS;
	u->max_line_bytes = PC_DEF_MAX_LINE_BYTES;
	u->env = calloc(1, sizeof(*u->env));
	if (u->env == NULL)
		return PC_E_NOMEM;
	if (cfg_strv_new(inherit, 3, &u->inherit_env) != 0)
		return PC_E_NOMEM;
	u->ninherit = 3;
	return 0;
}

void
pc_config_free(struct pc_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->listen.address);
	free(cfg->admin.address);
	free(cfg->mcp_path);
	free_strv(cfg->allowed_origins, cfg->norigins, false);
	free_strv(cfg->allowed_hosts, cfg->nhosts, false);
	free(cfg->log_level);
	for (size_t i = 0; i < cfg->nupstreams; i++)
		cfg_upstream_clear(&cfg->upstreams[i]);
	free(cfg->upstreams);
	cfg_auth_free(cfg);
	pc_policy_free(cfg->policy);
	json_decref(cfg->policy_src);
	for (size_t i = 0; i < cfg->ntighten; i++) {
		free(cfg->tighten[i].tool_pattern);
		free(cfg->tighten[i].arg);
		pc_schema_free(cfg->tighten[i].schema);
	}
	free(cfg->tighten);
	free_strv(cfg->redact_keys, cfg->nredact_keys, false);
	cfg_limiter_free(cfg);
	free_strv(cfg->secrets, cfg->nsecrets, true);
	free(cfg);
}

static struct pc_config *
config_new(const char *path)
{
	struct pc_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	cfg->path = pc_strndup(path, strlen(path));
	cfg->listen.address = pc_strndup("127.0.0.1", 9);
	cfg->listen.port = 8080;
	cfg->admin.address = pc_strndup("127.0.0.1", 9);
	cfg->admin.port = 8081;
	cfg->mcp_path = pc_strndup("/mcp", 4);
	cfg->allowed_origins = calloc(1, sizeof(char *));
	cfg->allowed_hosts = calloc(1, sizeof(char *));
	cfg->legacy_enabled = true;
	cfg->modern_enabled = true;
	cfg->log_level = pc_strndup("info", 4);
	cfg->secrets = calloc(1, sizeof(char *));
	if (cfg_auth_defaults(cfg) != 0) {
		pc_config_free(cfg);
		return NULL;
	}
	cfg->limits = (struct pc_limits_conf){
		.max_body_bytes = PC_DEF_MAX_BODY_BYTES,
		.max_header_bytes = PC_DEF_MAX_HEADER_BYTES,
		.max_json_depth = PC_DEF_MAX_JSON_DEPTH,
		.max_string_bytes = PC_DEF_MAX_STRING_BYTES,
		.max_array_items = PC_DEF_MAX_ARRAY_ITEMS,
		.max_pending_per_client = PC_DEF_MAX_PENDING_PER_CLIENT,
		.idle_timeout_s = PC_DEF_IDLE_TIMEOUT_S,
		.read_timeout_s = PC_DEF_READ_TIMEOUT_S,
		.request_timeout_s = PC_DEF_REQUEST_TIMEOUT_S,
		.max_connections = PC_DEF_MAX_CONNECTIONS,
		.max_connections_per_source = PC_DEF_MAX_CONNECTIONS_PER_SOURCE,
		.max_sessions = PC_DEF_MAX_SESSIONS,
		.max_sessions_per_principal = PC_DEF_MAX_SESSIONS_PER_PRINCIPAL,
		.session_idle_s = PC_DEF_SESSION_IDLE_S,
		.page_size = PC_DEF_PAGE_SIZE,
		.list_ttl_ms = CFG_DEF_LIST_TTL_MS,
	};
	if (cfg->path == NULL || cfg->listen.address == NULL ||
	    cfg->admin.address == NULL || cfg->mcp_path == NULL ||
	    cfg->allowed_origins == NULL || cfg->allowed_hosts == NULL ||
	    cfg->log_level == NULL || cfg->secrets == NULL) {
		pc_config_free(cfg);
		return NULL;
	}
	return cfg;
}

int
pc_config_default(struct pc_config **out)
{
	*out = config_new("<embedded>");
	if (*out == NULL)
		return PC_E_NOMEM;
	/* The embedded defaults serve no upstream on loopback: nothing to
	 * protect yet. A config file must choose its authentication. */
	(*out)->auth.none = true;
	return 0;
}

/* --- loading ---------------------------------------------------------------- */

/* File order reads best; position-less errors go last. Insertion sort:
 * stable, and n <= PC_MAX_CONFIG_ERRORS. */
static void
sort_errors(struct pc_config_errors *e)
{
	for (size_t i = 1; i < e->n; i++) {
		struct pc_config_error x = e->v[i];
		unsigned xl = x.line ? x.line : UINT_MAX;
		size_t j = i;
		while (j > 0) {
			const struct pc_config_error *p = &e->v[j - 1];
			unsigned pl = p->line ? p->line : UINT_MAX;
			if (pl < xl || (pl == xl && p->col <= x.col))
				break;
			e->v[j] = e->v[j - 1];
			j--;
		}
		e->v[j] = x;
	}
}

static int
load(const char *name, const char *dir, const char *buf, size_t len,
    struct pc_config **out, struct pc_config_errors *errs)
{
	struct pc_config_errors local = { 0 };
	struct cfg_ctx ctx = { 0 };
	struct cfg_node *root = NULL;
	int rc;

	*out = NULL;
	if (errs == NULL)
		errs = &local;
	ctx.file = name;
	ctx.errs = errs;
	ctx.dir = pc_strndup(dir, strlen(dir));
	ctx.cfg = config_new(name);
	if (ctx.dir == NULL || ctx.cfg == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	if (len > PC_MAX_CONFIG_BYTES) {
		cfg_err(&ctx, 0, 0, "file is larger than %u bytes",
		    PC_MAX_CONFIG_BYTES);
		rc = PC_E_CONFIG;
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		cfg_err(&ctx, 0, 0, "file contains a NUL byte; is it text?");
		rc = PC_E_CONFIG;
		goto out;
	}
	rc = cfg_yaml_parse(&ctx, buf, len, &root);
	if (rc != 0)
		goto out;
	cfg_walk_root(&ctx, root);
	sort_errors(errs);
	if (ctx.nomem)
		rc = PC_E_NOMEM;
	else if (errs->n > 0)
		rc = PC_E_CONFIG;
out:
	if (rc == PC_E_NOMEM && errs->n == 0)
		cfg_err(&ctx, 0, 0, "out of memory");
	cfg_node_free(root);
	free(ctx.dir);
	if (rc == 0)
		*out = ctx.cfg;
	else
		pc_config_free(ctx.cfg);
	pc_config_errors_free(&local);
	return rc;
}

int
pc_config_load_buffer(const char *name, const char *buf, size_t len,
    struct pc_config **out, struct pc_config_errors *errs)
{
	char cwd[PATH_MAX];

	if (errs != NULL)
		*errs = (struct pc_config_errors){ 0 };
	/* A buffer has no directory of its own: relative paths in it are
	 * taken from the current directory. */
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		pc_strlcpy(cwd, "/", sizeof(cwd));
	return load(name ? name : "<buffer>", cwd, buf, len, out, errs);
}

/* Read the whole file, bounded, and note an error on failure. */
static int
read_config_file(const char *path, char **bufp, size_t *lenp, char *msg,
    size_t msglen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = PC_E_IO;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot open: %s", strerror(errno));
		return PC_E_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "not a regular file");
		goto out;
	}
	rc = pc_read_fd_bounded(fd, PC_MAX_CONFIG_BYTES, &buf, &got);
	if (rc == PC_E_LIMIT) {
		snprintf(msg, msglen, "file is larger than %u bytes",
		    PC_MAX_CONFIG_BYTES);
		rc = PC_E_CONFIG;
		goto out;
	}
	if (rc != 0) {
		snprintf(msg, msglen, "cannot read: %s", rc == PC_E_IO ?
		    strerror(errno) : "out of memory");
		goto out;
	}
	*bufp = buf;
	*lenp = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int
pc_config_load(const char *path, struct pc_config **out,
    struct pc_config_errors *errs)
{
	char msg[256];
	char *buf = NULL, *real = NULL, *slash;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (errs != NULL)
		*errs = (struct pc_config_errors){ 0 };
	rc = read_config_file(path, &buf, &len, msg, sizeof(msg));
	if (rc == 0) {
		real = realpath(path, NULL);
		if (real == NULL) {
			snprintf(msg, sizeof(msg), "cannot resolve path: %s",
			    strerror(errno));
			rc = errno == ENOMEM ? PC_E_NOMEM : PC_E_IO;
		}
	}
	if (rc != 0) {
		if (errs != NULL) {
			struct cfg_ctx ctx = { .file = path, .errs = errs };
			cfg_err(&ctx, 0, 0, "%s", msg);
		}
		goto out;
	}
	/* Relative paths in the file are relative to the file, not to
	 * wherever the gateway happens to be started from. */
	slash = strrchr(real, '/');
	if (slash == real)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = load(path, real, buf, len, out, errs);
out:
	free(real);
	free(buf);
	return rc;
}
