/*
 * The schema: which keys exist at each level, what type each value has, and
 * the checks that span several keys. The reference for users is
 * docs/config.md; keep the two in step.
 *
 * Each mapping is walked against a table of keys. A key's value is parsed
 * by kind (size, integer, duration, boolean) into a field at an offset, or
 * by a handler. A bad value is reported and the field keeps its default, so
 * the walk continues and every problem in the file is reported at once.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/errors.h"
#include "../lib/limits.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* Ceilings for values that limits.h gives no PC_MAX_* for. Local: tell the
 * lead if they should move there. */
#define CFG_MAX_STRING_BYTES	PC_MAX_MAX_BODY_BYTES	/* a string is in a body */
#define CFG_MAX_TIMEOUT_MS	PC_MAX_TIMEOUT_MS	/* idle/read/list_ttl */
#define CFG_MAX_SESSION_IDLE_MS	PC_MAX_SESSION_IDLE_MS
#define CFG_MIN_LINE_BYTES	PC_MIN_LINE_BYTES	/* an initialize reply needs more */

/* --- formatting ---------------------------------------------------------- */

static void
fmt_val(enum cfg_vkind kind, uint64_t v, char *buf, size_t buflen)
{
	if (kind == VK_SIZE)
		cfg_fmt_size(v, buf, buflen);
	else if (kind == VK_DUR_MS)
		cfg_fmt_dur(v, buf, buflen);
	else if (kind == VK_DUR_S)
		cfg_fmt_dur(v * 1000u, buf, buflen);
	else
		snprintf(buf, buflen, "%llu", (unsigned long long)v);
}

/* What a node is, for "expected X, got Y". */
static const char *
got(const struct cfg_node *v, char *buf, size_t buflen)
{
	char s[80];

	if (v->kind == CN_SEQ)
		return "a list";
	if (v->kind == CN_MAP)
		return "a mapping";
	if (cfg_node_is_null(v))
		return "nothing";
	snprintf(buf, buflen, "'%s'", cfg_show(v->s, v->len, s, sizeof(s)));
	return buf;
}

void
cfg_expected(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    const char *what)
{
	char b[96];

	cfg_err_at(ctx, v, "%s: expected %s, got %s", k->name, what,
	    got(v, b, sizeof(b)));
}

/* The value as a string, or NULL after reporting what was expected. */
const char *
cfg_want_str(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    const char *what)
{
	if (v->kind != CN_SCALAR || cfg_node_is_null(v)) {
		cfg_expected(ctx, k, v, what);
		return NULL;
	}
	if (strlen(v->s) != v->len) {
		cfg_err_at(ctx, v, "%s: value contains a NUL byte", k->name);
		return NULL;
	}
	return v->s;
}

char *
cfg_dup(struct cfg_ctx *ctx, const char *s)
{
	char *d = pc_strndup(s, strlen(s));

	if (d == NULL)
		ctx->nomem = true;
	return d;
}

static void
replace_str(struct cfg_ctx *ctx, char **dst, const char *s)
{
	char *d = cfg_dup(ctx, s);

	if (d != NULL) {
		free(*dst);
		*dst = d;
	}
}

/* --- scalar kinds ---------------------------------------------------------- */

/* Leading decimal digits of s into *n; returns the rest, or NULL. */
static const char *
leading_u64(const char *s, uint64_t *n)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return NULL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return NULL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*n = v;
	return s;
}

/* 0, or an error already reported. */
static int
parse_size(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, uint64_t *out)
{
	static const struct { const char *u; unsigned shift; } units[] = {
		{ "", 0 }, { "B", 0 }, { "KiB", 10 }, { "MiB", 20 },
		{ "GiB", 30 },
	};
	const char *s = cfg_want_str(ctx, k, v, "a size such as 1048576 or 1MiB");
	const char *rest;
	uint64_t n;

	if (s == NULL)
		return PC_E_CONFIG;
	rest = leading_u64(s, &n);
	if (rest == NULL)
		goto bad;
	if (*rest == ' ')
		rest++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(rest, units[i].u) != 0)
			continue;
		if (n > (UINT64_MAX >> units[i].shift))
			goto bad;
		*out = n << units[i].shift;
		return 0;
	}
	if (strcasecmp(rest, "kb") == 0 || strcasecmp(rest, "mb") == 0 ||
	    strcasecmp(rest, "gb") == 0 || strcasecmp(rest, "k") == 0 ||
	    strcasecmp(rest, "m") == 0 || strcasecmp(rest, "g") == 0) {
		char b[80];
		cfg_err_at(ctx, v, "%s: unit in '%s' is ambiguous; use KiB, "
		    "MiB or GiB (powers of 1024) or a number of bytes", k->name,
		    cfg_show(s, strlen(s), b, sizeof(b)));
		return PC_E_CONFIG;
	}
bad:
	cfg_expected(ctx, k, v, "a size such as 1048576 or 1MiB");
	return PC_E_CONFIG;
}

static int
parse_duration(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, uint64_t *ms)
{
	static const struct { const char *u; uint64_t mul; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	const char *s = cfg_want_str(ctx, k, v, "a duration such as 30s");
	const char *rest;
	uint64_t n;

	if (s == NULL)
		return PC_E_CONFIG;
	rest = leading_u64(s, &n);
	if (rest != NULL && *rest == '\0') {
		cfg_err_at(ctx, v, "%s: a duration needs a unit: add a unit, "
		    "e.g. %llus or %llums", k->name, (unsigned long long)n,
		    (unsigned long long)n);
		return PC_E_CONFIG;
	}
	for (size_t i = 0; rest != NULL && i < 4; i++) {
		if (strcmp(rest, units[i].u) != 0)
			continue;
		if (n > UINT64_MAX / units[i].mul)
			break;
		*ms = n * units[i].mul;
		return 0;
	}
	cfg_expected(ctx, k, v, "a duration such as 30s (units ms, s, m, h)");
	return PC_E_CONFIG;
}

static int
parse_bool(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, bool *out)
{
	if (v->kind == CN_SCALAR && strcasecmp(v->s, "true") == 0) {
		*out = true;
		return 0;
	}
	if (v->kind == CN_SCALAR && strcasecmp(v->s, "false") == 0) {
		*out = false;
		return 0;
	}
	cfg_expected(ctx, k, v, "true or false");
	return PC_E_CONFIG;
}

/* Parse a value of a plain kind into its field. */
static void
apply_kind(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	char lo[32], hi[32], sh[80];
	uint64_t n = 0;
	int rc;

	switch (k->kind) {
	case VK_BOOL: {
		bool b;
		if (parse_bool(ctx, k, v, &b) == 0)
			*(bool *)((char *)obj + k->off) = b;
		return;
	}
	case VK_SIZE:
		rc = parse_size(ctx, k, v, &n);
		break;
	case VK_DUR_MS:
		rc = parse_duration(ctx, k, v, &n);
		break;
	case VK_DUR_S:
		rc = parse_duration(ctx, k, v, &n);
		if (rc == 0 && n % 1000u != 0) {
			cfg_err_at(ctx, v, "%s: must be a whole number of "
			    "seconds, got '%s'", k->name,
			    cfg_show(v->s, v->len, sh, sizeof(sh)));
			rc = PC_E_CONFIG;
		}
		n /= 1000u;
		break;
	case VK_UINT:
		if (cfg_want_str(ctx, k, v, "an integer") == NULL)
			return;
		rc = pc_parse_u64(v->s, 0, UINT64_MAX, &n);
		if (rc != 0)
			cfg_expected(ctx, k, v, "an integer");
		break;
	default:
		return;
	}
	if (rc != 0)
		return;
	if (n < k->min || n > k->max) {
		fmt_val(k->kind, k->min, lo, sizeof(lo));
		fmt_val(k->kind, k->max, hi, sizeof(hi));
		cfg_err_at(ctx, v, "%s: '%s' is out of range (%s to %s)",
		    k->name, cfg_show(v->s, v->len, sh, sizeof(sh)), lo, hi);
		return;
	}
	*(uint32_t *)((char *)obj + k->off) = (uint32_t)n;
}

/* --- mappings ------------------------------------------------------------- */

/* Optimal string alignment distance, case-insensitive, capped at 3. */
static unsigned
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned d[40][40];

	if (la >= 40 || lb >= 40)
		return 3;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned cost = (a[i - 1] | 0x20) != (b[j - 1] | 0x20);
			unsigned m = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < m)
				m = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < m)
				m = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < m)
				m = d[i - 2][j - 2] + 1;
			d[i][j] = m;
		}
	}
	return d[la][lb] > 3 ? 3 : d[la][lb];
}

static void
unknown_key(struct cfg_ctx *ctx, const struct cfg_node *key, const char *where,
    const struct cfg_key *keys, size_t nkeys)
{
	char sh[80], list[400];
	const char *best = NULL;
	unsigned bestd = 3;
	size_t kl = strlen(key->s), o = 0;
	bool aliased = false;

	/* Names other tools use for the same thing are not near in edits. */
	static const char *const aliases[][2] = {
		{ "cmd", "command" }, { "args", "command" },
		{ "argv", "command" }, { "exec", "command" },
		{ "environment", "env" }, { "workdir", "cwd" },
		{ "dir", "cwd" }, { "servers", "upstreams" },
		{ "mcpServers", "upstreams" }, { "bind", "listen" },
		{ "address", "listen" }, { "loglevel", "log_level" },
	};

	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(key->s, aliases[i][0]) != 0)
			continue;
		aliased = true;
		for (size_t j = 0; j < nkeys; j++)
			if (strcmp(keys[j].name, aliases[i][1]) == 0)
				best = keys[j].name;
	}
	for (size_t i = 0; i < nkeys && !aliased; i++) {
		unsigned d = edit_distance(key->s, keys[i].name);
		size_t nl = strlen(keys[i].name);
		/* "max_body" for "max_body_bytes": a missing suffix is
		 * far in edits but an obvious intent. */
		if (d >= bestd && kl >= 4 && (strncmp(keys[i].name, key->s,
		    kl) == 0 || strncmp(keys[i].name, key->s, nl) == 0))
			d = 2;
		if (d < bestd && d < kl) {
			bestd = d;
			best = keys[i].name;
		}
	}
	cfg_show(key->s, key->len, sh, sizeof(sh));
	if (best != NULL) {
		cfg_err_at(ctx, key, "unknown key '%s'%s%s; did you mean '%s'?",
		    sh, where ? " in " : "", where ? where : "", best);
		return;
	}
	list[0] = '\0';
	for (size_t i = 0; i < nkeys && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
		    i ? ", " : "", keys[i].name);
	cfg_err_at(ctx, key, "unknown key '%s'%s%s; expected one of: %s", sh,
	    where ? " in " : "", where ? where : "", list);
}

/* Walk a mapping against keys; seen[i] is the key node of keys[i] or NULL. */
void
cfg_walk_map(struct cfg_ctx *ctx, const struct cfg_node *map, const char *where,
    const struct cfg_key *keys, size_t nkeys, void *obj,
    const struct cfg_node **seen)
{
	for (size_t i = 0; i < nkeys; i++)
		seen[i] = NULL;
	for (size_t p = 0; p + 1 < map->nkids; p += 2) {
		const struct cfg_node *k = map->kids[p], *v = map->kids[p + 1];
		size_t i;

		if (k->kind != CN_SCALAR) {
			if (k->kind != CN_BAD)
				cfg_err_at(ctx, k, "expected a key name");
			continue;
		}
		for (i = 0; i < nkeys; i++)
			if (strcmp(k->s, keys[i].name) == 0)
				break;
		if (i == nkeys) {
			unknown_key(ctx, k, where, keys, nkeys);
			continue;
		}
		if (seen[i] != NULL) {
			cfg_err_at(ctx, k, "duplicate key '%s' (first at line "
			    "%u)", keys[i].name, seen[i]->line);
			continue;
		}
		seen[i] = k;
		if (v->kind == CN_BAD)
			continue;
		if (keys[i].kind == VK_FN)
			keys[i].fn(ctx, &keys[i], v, obj);
		else
			apply_kind(ctx, &keys[i], v, obj);
	}
}

/* A nested mapping; null (an empty "http:") leaves the defaults. */
bool
cfg_want_map(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v)
{
	if (v->kind == CN_MAP)
		return true;
	if (!cfg_node_is_null(v))
		cfg_expected(ctx, k, v, "a mapping of keys");
	return false;
}

/* --- lists of strings ------------------------------------------------------ */

/* Replace *dst with the list in v. Items that fail `ok` are reported. */
void
cfg_set_strlist(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, char ***dst, size_t *ndst, cfg_item_ok_fn ok)
{
	char **nv;
	size_t n = 0;
	bool bad = false;

	if (cfg_node_is_null(v)) {
		nv = calloc(1, sizeof(*nv));
		goto done;
	}
	if (v->kind != CN_SEQ) {
		cfg_expected(ctx, k, v, "a list such as [a, b]");
		return;
	}
	if (v->nkids > CFG_MAX_LIST) {
		cfg_err_at(ctx, v, "%s: more than %u entries", k->name,
		    CFG_MAX_LIST);
		return;
	}
	nv = calloc(v->nkids + 1, sizeof(*nv));
	if (nv == NULL)
		goto done;
	for (size_t i = 0; i < v->nkids; i++) {
		const struct cfg_node *it = v->kids[i];
		if (it->kind == CN_BAD || cfg_want_str(ctx, k, it, "a string") ==
		    NULL || (ok != NULL && !ok(ctx, k, it))) {
			bad = true;
			continue;
		}
		if ((nv[n] = cfg_dup(ctx, it->s)) == NULL)
			bad = true;
		else
			n++;
	}
	if (bad) {
		for (size_t i = 0; i < n; i++)
			free(nv[i]);
		free(nv);
		return;
	}
done:
	if (nv == NULL) {
		ctx->nomem = true;
		return;
	}
	for (size_t i = 0; i < *ndst; i++)
		free((*dst)[i]);
	free(*dst);
	*dst = nv;
	*ndst = n;
}

static bool
no_space(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v)
{
	for (size_t i = 0; i < v->len; i++) {
		if ((unsigned char)v->s[i] <= 0x20 || v->s[i] == 0x7f) {
			cfg_err_at(ctx, v, "%s: entries hold no spaces or "
			    "control characters", k->name);
			return false;
		}
	}
	if (v->len == 0) {
		cfg_err_at(ctx, v, "%s: empty entry", k->name);
		return false;
	}
	return true;
}

static bool
origin_ok(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v)
{
	const char *sep;

	if (!no_space(ctx, k, v))
		return false;
	sep = strstr(v->s, "://");
	if (strcmp(v->s, "null") != 0 && (sep == NULL ||
	    strchr(sep + 3, '/') != NULL)) {
		cfg_err_at(ctx, v, "%s: an Origin is scheme://host[:port] with "
		    "no path, e.g. http://localhost:8080", k->name);
		return false;
	}
	return true;
}

static bool
host_ok(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v)
{
	if (!no_space(ctx, k, v))
		return false;
	if (strchr(v->s, '/') != NULL) {
		cfg_err_at(ctx, v, "%s: a Host value is host[:port], without "
		    "scheme or path", k->name);
		return false;
	}
	return true;
}

bool
cfg_env_name_item(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v)
{
	char sh[80];

	if (!cfg_env_name_ok(v->s)) {
		cfg_err_at(ctx, v, "%s: '%s' is not a valid environment "
		    "variable name", k->name, cfg_show(v->s, v->len, sh,
		    sizeof(sh)));
		return false;
	}
	return true;
}

/* --- top level --------------------------------------------------------------- */

static bool
is_loopback(int af, const unsigned char *a)
{
	static const unsigned char v6lo[16] = { [15] = 1 };
	static const unsigned char v4map[12] = { [10] = 0xff, [11] = 0xff };

	if (af == AF_INET)
		return a[0] == 127;
	return memcmp(a, v6lo, 16) == 0 ||
	    (memcmp(a, v4map, 12) == 0 && a[12] == 127);
}

static void
set_listen(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, struct pc_listen_conf *out, bool allow_off)
{
	char host[64], sh[80];
	unsigned char addr[16];
	const char *s, *port;
	uint64_t p;
	size_t hl;
	int af = AF_INET;

	if (v->kind == CN_SEQ) {
		cfg_err_at(ctx, v, "%s: expected \"host:port\", got a list; "
		    "quote IPv6 addresses: \"[::1]:8080\"", k->name);
		return;
	}
	s = cfg_want_str(ctx, k, v, allow_off ? "host:port or off" :
	    "host:port such as 127.0.0.1:8080");
	if (s == NULL)
		return;
	cfg_show(v->s, v->len, sh, sizeof(sh));
	if (allow_off && strcmp(s, "off") == 0) {
		free(out->address);
		out->address = NULL;
		out->port = 0;
		return;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':') {
			cfg_err_at(ctx, v, "%s: expected [ipv6]:port, got '%s'",
			    k->name, sh);
			return;
		}
		hl = (size_t)(rb - s - 1);
		s++;
		port = rb + 2;
		af = AF_INET6;
	} else {
		const char *c = strrchr(s, ':');
		if (c == NULL) {
			cfg_err_at(ctx, v, "%s: expected host:port such as "
			    "127.0.0.1:8080, got '%s'", k->name, sh);
			return;
		}
		if (memchr(s, ':', (size_t)(c - s)) != NULL) {
			cfg_err_at(ctx, v, "%s: write IPv6 addresses in "
			    "brackets, e.g. \"[::1]:8080\"", k->name);
			return;
		}
		hl = (size_t)(c - s);
		port = c + 1;
	}
	if (pc_parse_u64(port, 0, 65535, &p) != 0) {
		cfg_err_at(ctx, v, "%s: port in '%s' must be a number from 0 to "
		    "65535", k->name, sh);
		return;
	}
	if (hl == 0 || hl >= sizeof(host)) {
		cfg_err_at(ctx, v, "%s: missing or overlong address in '%s'",
		    k->name, sh);
		return;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(af, host, addr) != 1) {
		cfg_err_at(ctx, v, "%s: '%s' is not a numeric IP address "
		    "(hostnames are not resolved; use 127.0.0.1 or [::1])",
		    k->name, cfg_show(host, hl, sh, sizeof(sh)));
		return;
	}
	if (!is_loopback(af, addr)) {
		/* The admin endpoints are for local probes only; the MCP
		 * listener may face a network once TLS (or a trusted proxy)
		 * is configured, which cfg_auth_check() decides at the end. */
		if (allow_off) {
			cfg_err_at(ctx, v, "%s: %s: the admin listener must be "
			    "a loopback address", k->name, host);
			return;
		}
		ctx->listen_nonloopback = true;
	}
	replace_str(ctx, &out->address, host);
	out->port = (uint16_t)p;
}

static void
k_listen(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	set_listen(ctx, k, v, &((struct pc_config *)obj)->listen, false);
}

static void
k_admin(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	set_listen(ctx, k, v, &((struct pc_config *)obj)->admin, true);
}

static void
k_log_level(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	enum pc_log_level lvl;

	if (v->kind != CN_SCALAR || pc_log_level_parse(v->s, &lvl) != 0) {
		cfg_expected(ctx, k, v, "debug, info, warn or error");
		return;
	}
	replace_str(ctx, &((struct pc_config *)obj)->log_level, names[lvl]);
}

static void
k_path(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	const char *s = cfg_want_str(ctx, k, v, "a URL path such as /mcp");

	if (s == NULL)
		return;
	if (s[0] != '/') {
		cfg_err_at(ctx, v, "path: must start with '/', e.g. /mcp");
		return;
	}
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' ||
		    *p == '#') {
			cfg_err_at(ctx, v, "path: no spaces, control characters, "
			    "'?' or '#'");
			return;
		}
	}
	replace_str(ctx, &((struct pc_config *)obj)->mcp_path, s);
}

static void
k_origins(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;

	cfg_set_strlist(ctx, k, v, &c->allowed_origins, &c->norigins, origin_ok);
}

static void
k_hosts(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	struct pc_config *c = obj;

	cfg_set_strlist(ctx, k, v, &c->allowed_hosts, &c->nhosts, host_ok);
}

#define CF(f) offsetof(struct pc_config, f)
#define LF(f) offsetof(struct pc_limits_conf, f)

static const struct cfg_key http_keys[] = {
	{ "path", VK_FN, 0, 0, 0, k_path },
	{ "allowed_origins", VK_FN, 0, 0, 0, k_origins },
	{ "allowed_hosts", VK_FN, 0, 0, 0, k_hosts },
};

static const struct cfg_key era_keys[] = {
	{ "legacy", VK_BOOL, CF(legacy_enabled), 0, 0, NULL },
	{ "modern", VK_BOOL, CF(modern_enabled), 0, 0, NULL },
};

static const struct cfg_key limit_keys[] = {
	{ "max_body_bytes", VK_SIZE, LF(max_body_bytes), 1,
	    PC_MAX_MAX_BODY_BYTES, NULL },
	{ "max_header_bytes", VK_SIZE, LF(max_header_bytes), 1024,
	    PC_MAX_MAX_HEADER_BYTES, NULL },
	{ "max_json_depth", VK_UINT, LF(max_json_depth), 1,
	    PC_MAX_MAX_JSON_DEPTH, NULL },
	{ "max_string_bytes", VK_SIZE, LF(max_string_bytes), 1,
	    CFG_MAX_STRING_BYTES, NULL },
	{ "max_array_items", VK_UINT, LF(max_array_items), 1,
	    PC_MAX_MAX_ARRAY_ITEMS, NULL },
	{ "max_pending_per_client", VK_UINT, LF(max_pending_per_client), 1,
	    PC_MAX_MAX_PENDING_PER_CLIENT, NULL },
	{ "idle_timeout", VK_DUR_S, LF(idle_timeout_s), 1,
	    CFG_MAX_TIMEOUT_MS / 1000u, NULL },
	{ "read_timeout", VK_DUR_S, LF(read_timeout_s), 1,
	    CFG_MAX_TIMEOUT_MS / 1000u, NULL },
	{ "request_timeout", VK_DUR_S, LF(request_timeout_s), 1,
	    CFG_MAX_TIMEOUT_MS / 1000u, NULL },
	{ "max_connections", VK_UINT, LF(max_connections), 1,
	    PC_MAX_MAX_CONNECTIONS, NULL },
	{ "max_connections_per_source", VK_UINT,
	    LF(max_connections_per_source), 1, PC_MAX_MAX_CONNECTIONS, NULL },
	{ "max_sessions", VK_UINT, LF(max_sessions), 1, PC_MAX_MAX_SESSIONS,
	    NULL },
	{ "max_sessions_per_principal", VK_UINT,
	    LF(max_sessions_per_principal), 1, PC_MAX_MAX_SESSIONS, NULL },
	{ "session_idle_timeout", VK_DUR_S, LF(session_idle_s), 1,
	    CFG_MAX_SESSION_IDLE_MS / 1000u, NULL },
	{ "page_size", VK_UINT, LF(page_size), 1, PC_MAX_CATALOG_ITEMS, NULL },
	{ "list_ttl", VK_DUR_MS, LF(list_ttl_ms), 0, CFG_MAX_TIMEOUT_MS, NULL },
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

static void
k_http(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "http", http_keys, NKEYS(http_keys), obj, seen);
}

static void
k_eras(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];
	struct pc_config *c = obj;

	if (!cfg_want_map(ctx, k, v))
		return;
	cfg_walk_map(ctx, v, "eras", era_keys, NKEYS(era_keys), obj, seen);
	if (!c->legacy_enabled && !c->modern_enabled)
		cfg_err_at(ctx, v, "eras: at least one of legacy and modern "
		    "must be true");
}

static void
k_limits(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *v,
    void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "limits", limit_keys, NKEYS(limit_keys),
		    &((struct pc_config *)obj)->limits, seen);
}

static void
k_upstreams(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	(void)obj;
	cfg_upstreams(ctx, k, v);
}

/* A name the redactor can match: 1-255 bytes, printable ASCII. */
static bool
redact_key_item(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v)
{
	if (v->len == 0 || v->len > 255) {
		cfg_err_at(ctx, v, "%s: a name is 1-255 bytes", k->name);
		return false;
	}
	for (size_t i = 0; i < v->len; i++)
		if (v->s[i] < 0x21 || v->s[i] > 0x7e) {
			cfg_err_at(ctx, v, "%s: a name is printable ASCII "
			    "without spaces", k->name);
			return false;
		}
	return true;
}

static void
k_redact_keys(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	struct pc_config *c = obj;

	cfg_set_strlist(ctx, k, v, &c->redact_keys, &c->nredact_keys,
	    redact_key_item);
}

static const struct cfg_key redaction_keys[] = {
	{ "keys", VK_FN, 0, 0, 0, k_redact_keys },
};

/* redaction: {keys: [...]} — more sensitive names for the redactor. */
static void
k_redaction(struct cfg_ctx *ctx, const struct cfg_key *k,
    const struct cfg_node *v, void *obj)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];

	if (cfg_want_map(ctx, k, v))
		cfg_walk_map(ctx, v, "redaction", redaction_keys,
		    NKEYS(redaction_keys), obj, seen);
}

static const struct cfg_key top_keys[] = {
	{ "listen", VK_FN, 0, 0, 0, k_listen },
	{ "admin_listen", VK_FN, 0, 0, 0, k_admin },
	{ "log_level", VK_FN, 0, 0, 0, k_log_level },
	{ "http", VK_FN, 0, 0, 0, k_http },
	{ "eras", VK_FN, 0, 0, 0, k_eras },
	{ "limits", VK_FN, 0, 0, 0, k_limits },
	{ "upstreams", VK_FN, 0, 0, 0, k_upstreams },
	{ "mode", VK_FN, 0, 0, 0, cfg_k_mode },
	{ "tls", VK_FN, 0, 0, 0, cfg_k_tls },
	{ "trusted_proxies", VK_FN, 0, 0, 0, cfg_k_trusted_proxies },
	{ "auth", VK_FN, 0, 0, 0, cfg_k_auth },
	{ "audit", VK_FN, 0, 0, 0, cfg_k_audit },
	/* issue 5, config_limits.c */
	{ "rate_limits", VK_FN, 0, 0, 0, cfg_k_rate_limits },
	{ "budgets", VK_FN, 0, 0, 0, cfg_k_budgets },
	{ "tool_costs", VK_FN, 0, 0, 0, cfg_k_tool_costs },
	{ "breakers", VK_FN, 0, 0, 0, cfg_k_breakers },
	{ "concurrency", VK_FN, 0, 0, 0, cfg_k_concurrency },
	{ "limits_store", VK_FN, 0, 0, 0, cfg_k_limits_store },
	{ "policy", VK_FN, 0, 0, 0, cfg_k_policy },
	{ "redaction", VK_FN, 0, 0, 0, k_redaction },
};

_Static_assert(NKEYS(limit_keys) <= CFG_MAX_KEYS &&
    NKEYS(top_keys) <= CFG_MAX_KEYS, "seen[] arrays are CFG_MAX_KEYS long");

void
cfg_walk_root(struct cfg_ctx *ctx, const struct cfg_node *root)
{
	const struct cfg_node *seen[CFG_MAX_KEYS];
	struct pc_config *c = ctx->cfg;
	char b[96];

	if (root == NULL || cfg_node_is_null(root)) {
		/* An empty file: all defaults, which must still pass the
		 * rules (it has no authentication configured). */
		static const struct cfg_node top = { .kind = CN_MAP, .line = 1,
		    .col = 1 };
		cfg_auth_check(ctx, &top, NULL, NULL);
		cfg_limiter_check(ctx, &top, NULL, NULL);
		return;
	}
	if (root->kind != CN_MAP) {
		cfg_err_at(ctx, root, "expected a mapping of keys at the top "
		    "level (listen:, upstreams:, ...), got %s",
		    got(root, b, sizeof(b)));
		return;
	}
	cfg_walk_map(ctx, root, NULL, top_keys, NKEYS(top_keys), c, seen);
	/* seen[1] is admin_listen. */
	if (c->admin.address != NULL && c->listen.port != 0 &&
	    c->admin.port == c->listen.port &&
	    strcmp(c->admin.address, c->listen.address) == 0) {
		const struct cfg_node *at = seen[1] ? seen[1] : seen[0];
		if (at == NULL)
			at = root;
		cfg_err_at(ctx, at, "admin_listen must differ from listen "
		    "(both are %s:%u)", c->listen.address, c->listen.port);
	}
	if (c->mode == PC_MODE_PRODUCTION && ctx->argv_ref_line != 0)
		cfg_err(ctx, ctx->argv_ref_line, ctx->argv_ref_col, "command: a "
		    "${env:}/${file:} reference in an argument puts the secret "
		    "where every local user can read it (ps, /proc/PID/cmdline); "
		    "pass it in the upstream's env instead (mode: production "
		    "refuses this)");
	/* seen[0] is listen, seen[10] auth (order of top_keys). */
	cfg_auth_check(ctx, root, seen[10], seen[0]);
	/* seen[12] rate_limits, seen[13] budgets; after the auth check,
	 * which settles the key store the counters default to. */
	cfg_limiter_check(ctx, root, seen[12], seen[13]);
}
