/*
 * Redaction by key name, by schema and by value. See redact.h and
 * docs/redaction.md.
 *
 * Value search: a 64 Ki-bit table says whether any stored value starts with
 * a given byte pair; when one does, 4096 chains hashed on the first four
 * bytes hold the candidates, compared with memcmp. A text of n bytes costs
 * O(n) table probes plus one memcmp per candidate sharing the hash of its
 * first four bytes, instead of O(values x n).
 *
 * Matches are marked in a bitmap over the text and each maximal marked run
 * becomes one "<redacted>": overlapping or adjacent secrets are removed as a
 * union, so no tail of one survives because another matched first.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/limits.h"
#include "lib/util.h"
#include "secrets/redact.h"

/* Configured key names and known values; a config with more than this is
 * not plausible (tell the lead if limits.h should carry them). */
#define REDACT_MAX_KEYS    PC_REDACT_MAX_KEYS
#define REDACT_MAX_VALUES  PC_REDACT_MAX_VALUES
#define REDACT_MAX_KEY_LEN PC_REDACT_MAX_KEY_LEN
/* $ref hops followed when resolving one subschema: a cycle stops here. */
#define REDACT_MAX_REF_HOPS PC_REDACT_MAX_REF_HOPS
/* A Bearer/Basic credential shorter than this is prose ("Bearer tokens"). */
#define REDACT_MIN_TOKEN   8u
/* A URI's userinfo without a password this long is taken for a token. */
#define REDACT_MIN_USER_TOKEN 16u

#define NO_VAL UINT32_MAX
/* Mask bytes kept on the stack: strings up to 4 KiB need no allocation. */
#define REDACT_SMALL_MASK 512u
#define NBUCKET 4096u

struct rval {
	unsigned char *p;
	size_t len;
	uint32_t next;		/* next value in the same bucket, or NO_VAL */
};

struct pc_redactor {
	char **keys;		/* normalized extra key names */
	size_t nkeys;
	struct rval *vals;
	size_t nvals, capvals;
	size_t maxlen;		/* the longest stored value */
	uint32_t head[NBUCKET];
	uint8_t first2[65536 / 8];	/* bit set: some value starts with pair */
};

/* Names whose value is always secret (normalized spelling). */
static const char *const exact_keys[] = {
	"apikey", "xapikey", "token", "accesstoken", "refreshtoken", "idtoken",
	"secret", "clientsecret", "password", "passwd", "pwd", "passphrase",
	"authorization", "proxyauthorization", "cookie", "setcookie",
	"privatekey", "credential", "credentials", "sessionid", "jwt",
	"assertion", "clientassertion", "otp", NULL
};

/* Any name containing one of these is secret ... */
static const char *const contains_keys[] = {
	"token", "secret", "password", "passwd", "passphrase", "apikey",
	"credential", "privatekey", "authorization", "cookie", "jwt", NULL
};

/* ... except these counters and settings, which contain "token" but hold
 * no secret and are what an audit reader wants to see (LLM parameters). */
static const char *const exempt_keys[] = {
	"maxtokens", "maxcompletiontokens", "maxoutputtokens", "maxnewtokens",
	"numtokens", "tokencount", "totaltokens", "inputtokens",
	"outputtokens", "prompttokens", "completiontokens", "tokenlimit",
	"tokenizer", NULL
};

int
pc_redactor_new(struct pc_redactor **out)
{
	struct pc_redactor *r;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < NBUCKET; i++)
		r->head[i] = NO_VAL;
	*out = r;
	return 0;
}

void
pc_redactor_free(struct pc_redactor *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nkeys; i++)
		free(r->keys[i]);
	free(r->keys);
	for (size_t i = 0; i < r->nvals; i++) {
		explicit_bzero(r->vals[i].p, r->vals[i].len);
		free(r->vals[i].p);
	}
	free(r->vals);
	/* The index reveals first byte pairs of secrets. */
	explicit_bzero(r, sizeof(*r));
	free(r);
}

/* Normalized key into buf (nul-terminated); returns its length. */
static size_t
norm_key(const char *k, size_t klen, char *buf)
{
	size_t n = 0;

	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c == '-' || c == '_' || c == '.' || c == ' ')
			continue;
		buf[n++] = (char)tolower(c);
	}
	buf[n] = '\0';
	return n;
}

static int
in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

int
pc_redactor_add_key(struct pc_redactor *r, const char *name)
{
	char buf[REDACT_MAX_KEY_LEN + 1], **nk;
	size_t len;

	if (r == NULL || name == NULL)
		return PC_E_INVAL;
	len = strlen(name);
	if (len == 0 || len > REDACT_MAX_KEY_LEN)
		return PC_E_INVAL;
	if (norm_key(name, len, buf) == 0)
		return PC_E_INVAL;
	if (r->nkeys >= REDACT_MAX_KEYS)
		return PC_E_LIMIT;
	nk = realloc(r->keys, (r->nkeys + 1) * sizeof(*nk));
	if (nk == NULL)
		return PC_E_NOMEM;
	r->keys = nk;
	nk[r->nkeys] = strdup(buf);
	if (nk[r->nkeys] == NULL)
		return PC_E_NOMEM;
	r->nkeys++;
	return 0;
}

static int
key_sensitive(const struct pc_redactor *r, const char *k)
{
	char sbuf[REDACT_MAX_KEY_LEN + 1], *buf = sbuf;
	size_t klen = strlen(k);
	int hit = 0;

	/* Long names are rare but must not escape the contains rule. */
	if (klen > REDACT_MAX_KEY_LEN) {
		buf = malloc(klen + 1);
		if (buf == NULL)
			return 1;	/* fail closed */
	}
	norm_key(k, klen, buf);
	if (in_list(exact_keys, buf))
		hit = 1;
	for (size_t i = 0; !hit && i < r->nkeys; i++)
		if (strcmp(r->keys[i], buf) == 0)
			hit = 1;
	if (!hit && !in_list(exempt_keys, buf))
		for (size_t i = 0; !hit && contains_keys[i] != NULL; i++)
			if (strstr(buf, contains_keys[i]) != NULL)
				hit = 1;
	if (buf != sbuf)
		free(buf);
	return hit;
}

static unsigned
pair_of(const unsigned char *p)
{
	return (unsigned)p[0] | ((unsigned)p[1] << 8);
}

/* Chains are keyed on the first four bytes (every value has at least
 * eight), so hex or base64 secrets, which share the few two-byte pairs of
 * their alphabet, do not pile into a few long chains. */
static unsigned
bucket_of(const unsigned char *p)
{
	uint32_t x = (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	    ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);

	return (x * 2654435761u) >> 20;
}

static int
add_one(struct pc_redactor *r, const unsigned char *v, size_t len)
{
	unsigned pair, b;

	/* The same value resolved twice (two references) is stored once. */
	pair = pair_of(v);
	b = bucket_of(v);
	for (uint32_t i = r->head[b]; i != NO_VAL; i = r->vals[i].next)
		if (r->vals[i].len == len && memcmp(r->vals[i].p, v, len) == 0)
			return 0;
	if (r->nvals >= REDACT_MAX_VALUES)
		return PC_E_LIMIT;
	if (r->nvals == r->capvals) {
		size_t cap = r->capvals ? r->capvals * 2 : 16;
		struct rval *nv = realloc(r->vals, cap * sizeof(*nv));
		if (nv == NULL)
			return PC_E_NOMEM;
		r->vals = nv;
		r->capvals = cap;
	}
	r->vals[r->nvals].p = malloc(len);
	if (r->vals[r->nvals].p == NULL)
		return PC_E_NOMEM;
	memcpy(r->vals[r->nvals].p, v, len);
	r->vals[r->nvals].len = len;
	if (len > r->maxlen)
		r->maxlen = len;
	r->vals[r->nvals].next = r->head[b];
	r->head[b] = (uint32_t)r->nvals;
	r->first2[pair >> 3] |= (uint8_t)(1u << (pair & 7));
	r->nvals++;
	return 0;
}

/* The value and its escaped JSON spelling. */
static int
add_spelled(struct pc_redactor *r, const void *value, size_t len)
{
	json_t *s;
	char *esc = NULL;
	size_t elen;
	int rc;

	if (len < PC_REDACT_MIN_VALUE)
		return 0;
	rc = add_one(r, value, len);
	if (rc != 0)
		return rc;
	/* The escaped spelling, as it appears in serialized JSON. A value
	 * that is not UTF-8 cannot appear in a JSON string at all. */
	s = json_stringn(value, len);
	if (s == NULL)
		return 0;
	esc = json_dumps(s, JSON_ENCODE_ANY);
	json_decref(s);
	if (esc == NULL)
		return PC_E_NOMEM;
	elen = strlen(esc);
	if (elen - 2 != len || memcmp(esc + 1, value, len) != 0)
		rc = add_one(r, (unsigned char *)esc + 1, elen - 2);
	explicit_bzero(esc, elen);
	free(esc);
	return rc;
}

/* Lines of one multi-line value looked at one by one. */
#define REDACT_MAX_LINES 1024

static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The value written another way, stored when that differs: percent-encoded
 * (RFC 3986: all but unreserved), as a URL an upstream's error quotes; or
 * with "/" written "\/", as PHP's and some Java JSON encoders print it.
 */
static int
add_escaped(struct pc_redactor *r, const unsigned char *v, size_t len,
    bool percent)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char *e;
	size_t n = 0;
	bool differs = false;
	int rc = 0;

	if (len > PC_MAX_CONFIG_EXPANDED / 3)
		return 0;
	e = malloc(len * 3);
	if (e == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = v[i];
		if (percent && !isalnum(c) && c != '-' && c != '.' &&
		    c != '_' && c != '~') {
			e[n++] = '%';
			e[n++] = (unsigned char)hex[c >> 4];
			e[n++] = (unsigned char)hex[c & 15];
			differs = true;
			continue;
		}
		if (!percent && c == '/') {
			e[n++] = '\\';
			differs = true;
		}
		e[n++] = c;
	}
	if (differs)
		rc = add_one(r, e, n);
	explicit_bzero(e, len * 3);
	free(e);
	return rc;
}

static int other_spellings(struct pc_redactor *r, const unsigned char *v,
    size_t len);

int
pc_redactor_add_value(struct pc_redactor *r, const void *value, size_t len)
{
	const unsigned char *v = value;
	int rc;

	if (r == NULL || (value == NULL && len > 0))
		return PC_E_INVAL;
	if (len < PC_REDACT_MIN_VALUE)
		return 0;
	if (len > PC_MAX_CONFIG_EXPANDED)
		return PC_E_LIMIT;
	if ((rc = add_spelled(r, v, len)) != 0)
		return rc;
	/* The other spellings are extra cover: past the value limit the
	 * value itself is still known, and that is what limits promise. */
	rc = other_spellings(r, v, len);
	return rc == PC_E_LIMIT ? 0 : rc;
}

/* A line of base64 (a PEM body, a key split over lines) long enough to
 * be secret material: only such lines of a multi-line value are known
 * on their own, not its armor ("-----BEGIN ...") or the plain fields
 * of a credential file ("type": "service_account", apiVersion: v1). */
static bool
secret_line(const unsigned char *s, size_t n)
{
	if (n < 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum(s[i]) && s[i] != '+' && s[i] != '/' && s[i] != '=')
			return false;
	return true;
}

static int
other_spellings(struct pc_redactor *r, const unsigned char *v, size_t len)
{
	const unsigned char *a, *b, *end;
	int rc;

	if ((rc = add_escaped(r, v, len, true)) != 0 ||
	    (rc = add_escaped(r, v, len, false)) != 0)
		return rc;
	/*
	 * A value read from a file or a Kubernetes secret often ends with a
	 * newline, and a PEM key spans lines: what a child prints, logged
	 * line by line, or quotes without the newline never matches the
	 * whole. So its trimmed form and each of its base64 lines are known
	 * too.
	 */
	end = v + len;
	a = v;
	while (a < end && is_space(*a))
		a++;
	b = end;
	while (b > a && is_space(b[-1]))
		b--;
	if ((a != v || b != end) && (rc = add_spelled(r, a, (size_t)(b - a))) != 0)
		return rc;
	if (memchr(a, '\n', (size_t)(b - a)) == NULL)
		return 0;
	/* Bounded per value (a bundle of certificates and a key is a few
	 * hundred lines): the whole still matches past it. */
	for (int lines = 0; a < b && lines < REDACT_MAX_LINES; lines++) {
		const unsigned char *nl = memchr(a, '\n', (size_t)(b - a));
		const unsigned char *le = nl != NULL ? nl : b, *ls = a;
		while (ls < le && is_space(*ls))
			ls++;
		while (le > ls && is_space(le[-1]))
			le--;
		if (secret_line(ls, (size_t)(le - ls)) &&
		    (rc = add_one(r, ls, (size_t)(le - ls))) != 0)
			return rc;
		a = nl != NULL ? nl + 1 : b;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Text scanning                                                        */

static void
mark(uint8_t *m, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		m[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static int
marked(const uint8_t *m, size_t i)
{
	return (m[i >> 3] >> (i & 7)) & 1;
}

static int
is_tok68(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
	    c == '+' || c == '/' || c == '=';
}

static int
is_b64url(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_';
}

/* Blank between a scheme and its token at s[j]: a space or tab (1), or
 * the two bytes "\\t" a tab becomes in a JSON string (2) — the gateway's
 * log lines are scanned after they were serialized. 0 otherwise. */
static size_t
blank(const unsigned char *s, size_t len, size_t j)
{
	if (j < len && (s[j] == ' ' || s[j] == '\t'))
		return 1;
	return j + 1 < len && s[j] == '\\' && s[j + 1] == 't' ? 2 : 0;
}

/* "Bearer <token>" / "Basic <token>" (case-insensitive scheme, RFC 9110
 * token68): returns the token's end and sets *tok, or 0. */
static size_t
auth_shape(const unsigned char *s, size_t len, size_t i, size_t *tok)
{
	static const char *const schemes[] = { "bearer", "basic", NULL };
	size_t j, k;

	if (i > 0 && isalnum(s[i - 1]))
		return 0;
	for (size_t n = 0; schemes[n] != NULL; n++) {
		size_t sl = strlen(schemes[n]);
		if (len - i <= sl || strncasecmp((const char *)s + i,
		    schemes[n], sl) != 0)
			continue;
		j = i + sl;
		if (blank(s, len, j) == 0)
			continue;
		for (size_t b; (b = blank(s, len, j)) > 0;)
			j += b;
		for (k = j; k < len && is_tok68(s[k]); k++)
			;
		if (k - j >= REDACT_MIN_TOKEN) {
			*tok = j;
			return k;
		}
	}
	return 0;
}

/* "pcs_" + 16 hex + "_" + base64url: returns the secret's end, *sec its
 * start (the public "pcs_<id>_" stays readable), or 0. */
static size_t
pcs_shape(const unsigned char *s, size_t len, size_t i, size_t *sec)
{
	size_t j, k;

	if (len - i < 4 + 16 + 2 || memcmp(s + i, "pcs_", 4) != 0)
		return 0;
	for (j = i + 4; j < i + 20; j++)
		if (!isxdigit(s[j]))
			return 0;
	if (s[j] != '_')
		return 0;
	j++;
	for (k = j; k < len && is_b64url(s[k]); k++)
		;
	if (k == j)
		return 0;
	*sec = j;
	return k;
}

/* A run of base64url of at least min bytes from s[i]: its end, or 0. */
static size_t
b64url_run(const unsigned char *s, size_t len, size_t i, size_t min)
{
	size_t k;

	for (k = i; k < len && is_b64url(s[k]); k++)
		;
	return k - i >= min ? k : 0;
}

/* A JSON Web Token (JWS compact form, or the first parts of a JWE):
 * "eyJ" header "." "eyJ"-or-other payload "." signature, the parts
 * base64url. A bare token is a bearer credential wherever it appears, with
 * or without "Bearer". Returns its end, or 0. */
static size_t
jwt_shape(const unsigned char *s, size_t len, size_t i)
{
	size_t e;

	if (i > 0 && (is_b64url(s[i - 1]) || s[i - 1] == '.'))
		return 0;
	if (len - i < 3 || memcmp(s + i, "eyJ", 3) != 0 ||
	    (e = b64url_run(s, len, i, 10)) == 0 || e >= len || s[e] != '.' ||
	    (e = b64url_run(s, len, e + 1, 10)) == 0 || e >= len ||
	    s[e] != '.')
		return 0;
	/* The signature may be empty ("alg": "none"); its run ends it. */
	for (e++; e < len && (is_b64url(s[e]) || s[e] == '.'); e++)
		;
	return e;
}

/* Tokens of well-known services by their published prefixes (see
 * prefix_shape for what must follow). */
static const struct token_prefix {
	const char *prefix;
	size_t min, seg;
	bool alnum;			/* letters and digits only */
} prefixes[] = {
	{ "ghp_", 36, 36, true }, { "gho_", 36, 36, true },
	{ "ghu_", 36, 36, true }, { "ghs_", 36, 36, true },
	{ "ghr_", 36, 36, true },		/* GitHub */
	{ "github_pat_", 60, 20, false },
	{ "glpat-", 20, 4, false },		/* GitLab */
	{ "sk-", 32, 20, false },		/* OpenAI, Anthropic */
	{ "xoxb-", 30, 16, false }, { "xoxp-", 30, 16, false },
	{ "xoxa-", 30, 16, false }, { "xoxr-", 30, 16, false },
	{ "xapp-", 30, 16, false },		/* Slack */
	{ "AIza", 35, 4, false },		/* Google API keys */
	{ "npm_", 36, 36, true },		/* npm */
	{ "hf_", 30, 30, true },		/* Hugging Face */
};

#define NPREFIX (sizeof(prefixes) / sizeof(prefixes[0]))

/* A token of a well-known service (prefixes[]): the prefix stays readable
 * (it says what kind of credential it was), the rest is masked. Random
 * material, not words: after the prefix, a run of at least `min`
 * characters (letters and digits only where the service's tokens are), one
 * unbroken stretch of letters and digits at least `seg` long in it (short
 * where the prefix alone is distinctive and the body may hold '-' and '_'
 * anywhere), and not followed by more word characters
 * ("npm_config_strict_peer_dependencies", "sk-quarterly-report-2024.pdf"
 * are not tokens). Returns the token's end and sets *sec, or 0. */
static size_t
prefix_shape(const unsigned char *s, size_t len, size_t i, size_t *sec)
{

	if (i > 0 && is_b64url(s[i - 1]))
		return 0;
	for (size_t n = 0; n < NPREFIX; n++) {
		size_t pl = strlen(prefixes[n].prefix), e, run = 0, best = 0;

		if (len - i <= pl || memcmp(s + i, prefixes[n].prefix, pl) != 0)
			continue;
		for (e = i + pl; e < len && (prefixes[n].alnum ? isalnum(s[e]) :
		    is_b64url(s[e])); e++) {
			run = isalnum(s[e]) ? run + 1 : 0;
			if (run > best)
				best = run;
		}
		if (e - (i + pl) < prefixes[n].min || best < prefixes[n].seg ||
		    (e < len && is_b64url(s[e])))
			continue;
		*sec = i + pl;
		return e;
	}
	return 0;
}

/*
 * Known values in the percent-decoded view of s: encoders escape
 * different sets (Go's userinfo escaping '@' '/' '?' ':', Python's quote()
 * leaving '/', lowercase hex), so a value may appear with any mix of raw
 * and escaped bytes, which no list of spellings covers. Each match marks
 * the bytes of s it was decoded from. Out of memory: all of s is marked
 * (fail closed). Whether anything was marked.
 */
static int
scan_decoded(const struct pc_redactor *r, const unsigned char *s, size_t len,
    uint8_t *m)
{
	const unsigned char *p = s, *end = s + len;
	unsigned char *d;
	uint32_t *at;			/* strings are far below 4 GiB */
	size_t n = 0;
	int any = 0;

	/* Only a real escape makes a different view ("100%" does not). */
	while ((p = memchr(p, '%', (size_t)(end - p))) != NULL &&
	    !(end - p > 2 && pc_hex_digit(p[1]) >= 0 &&
	    pc_hex_digit(p[2]) >= 0))
		p++;
	if (p == NULL || len > UINT32_MAX)
		return 0;
	d = malloc(len);
	at = malloc(len * sizeof(*at));
	if (d == NULL || at == NULL) {
		free(d);
		free(at);
		mark(m, 0, len);
		return 1;
	}
	for (size_t i = 0; i < len; n++) {
		int hi, lo;

		at[n] = (uint32_t)i;
		if (s[i] == '%' && len - i > 2 &&
		    (hi = pc_hex_digit(s[i + 1])) >= 0 &&
		    (lo = pc_hex_digit(s[i + 2])) >= 0) {
			d[n] = (unsigned char)(hi << 4 | lo);
			i += 3;
		} else {
			d[n] = s[i++];
		}
	}
	for (size_t j = 0; j + PC_REDACT_MIN_VALUE <= n; j++) {
		unsigned pair = pair_of(d + j);

		if (!((r->first2[pair >> 3] >> (pair & 7)) & 1))
			continue;
		for (uint32_t v = r->head[bucket_of(d + j)]; v != NO_VAL;
		    v = r->vals[v].next) {
			const struct rval *rv = &r->vals[v];
			size_t last;

			if (rv->len > n - j ||
			    memcmp(rv->p, d + j, rv->len) != 0)
				continue;
			/* From the first source byte to the end of the last
			 * one (a "%XX" is three). */
			last = j + rv->len - 1;
			mark(m, at[j], last + 1 < n ? at[last + 1] : len);
			any = 1;
		}
	}
	explicit_bzero(d, n);
	free(d);
	free(at);
	return any;
}

/* Mark every secret byte of s[0..len) in m; returns whether any. */
static int
scan(const struct pc_redactor *r, const unsigned char *s, size_t len,
    uint8_t *m)
{
	int any = 0;
	size_t a, e;

	for (size_t i = 0; i < len; i++) {
		if (r->nvals > 0 && len - i >= PC_REDACT_MIN_VALUE) {
			unsigned pair = pair_of(s + i);
			if ((r->first2[pair >> 3] >> (pair & 7)) & 1) {
				for (uint32_t v = r->head[bucket_of(s + i)];
				    v != NO_VAL; v = r->vals[v].next) {
					const struct rval *rv = &r->vals[v];
					if (rv->len <= len - i &&
					    memcmp(rv->p, s + i, rv->len) == 0) {
						mark(m, i, i + rv->len);
						any = 1;
					}
				}
			}
		}
		if ((s[i] | 0x20) == 'b' &&
		    (e = auth_shape(s, len, i, &a)) != 0) {
			mark(m, a, e);
			any = 1;
		} else if (s[i] == 'p' && (e = pcs_shape(s, len, i, &a)) != 0) {
			mark(m, a, e);
			any = 1;
		} else if (s[i] == 'e' && (e = jwt_shape(s, len, i)) != 0) {
			mark(m, i, e);
			any = 1;
		} else if (strchr("gsxAnh", s[i]) != NULL && s[i] != '\0' &&
		    (e = prefix_shape(s, len, i, &a)) != 0) {
			mark(m, a, e);
			any = 1;
		}
	}
	if (r->nvals > 0 && memchr(s, '%', len) != NULL &&
	    scan_decoded(r, s, len, m))
		any = 1;
	return any;
}

/* A zeroed mask of one bit per byte of a len-byte string: `small` (a
 * REDACT_SMALL_MASK-byte stack buffer) when it fits — most strings are
 * short — else allocated (free it when it is not `small`). NULL: no
 * memory. */
static uint8_t *
mask_new(size_t len, uint8_t *small)
{
	if (len / 8 + 1 <= REDACT_SMALL_MASK) {
		memset(small, 0, len / 8 + 1);
		return small;
	}
	return calloc(len / 8 + 1, 1);
}

/*
 * Redact s[0..len). Returns 0 when nothing is secret (*out NULL), 1 with
 * *out a new string of *outlen bytes (caller frees), or PC_E_NOMEM.
 */
static int
redact_bytes(const struct pc_redactor *r, const char *s, size_t len,
    size_t keep, char **out, size_t *outlen)
{
	const size_t ml = sizeof(PC_REDACTED) - 1;
	uint8_t small[REDACT_SMALL_MASK];
	uint8_t *m;
	char *o = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	*outlen = 0;
	if ((m = mask_new(len, small)) == NULL)
		return PC_E_NOMEM;
	if (!scan(r, (const unsigned char *)s, len, m)) {
		rc = 0;
		goto out;
	}
	/* Size exactly: a 16 MiB log line must not cost 10x that. Only
	 * input before keep is emitted (a run of secret that starts there
	 * becomes the marker whole). */
	for (size_t i = 0; i < keep; ) {
		if (!marked(m, i)) {
			n++;
			i++;
			continue;
		}
		n += ml;
		while (i < len && marked(m, i))
			i++;
	}
	o = malloc(n + 1);
	n = 0;
	if (o == NULL) {
		rc = PC_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < keep; ) {
		if (!marked(m, i)) {
			o[n++] = s[i++];
			continue;
		}
		memcpy(o + n, PC_REDACTED, ml);
		n += ml;
		while (i < len && marked(m, i))
			i++;
	}
	o[n] = '\0';
	*out = o;
	*outlen = n;
	rc = 1;
out:
	if (m != small)
		free(m);
	return rc;
}

/* Whether s[0..len) holds anything redact_bytes would replace: 1, 0, or
 * PC_E_NOMEM. */
static int
has_secret(const struct pc_redactor *r, const char *s, size_t len)
{
	uint8_t small[REDACT_SMALL_MASK];
	uint8_t *m = mask_new(len, small);
	int any;

	if (m == NULL)
		return PC_E_NOMEM;
	any = scan(r, (const unsigned char *)s, len, m);
	if (m != small)
		free(m);
	return any;
}

/* Whether some known value starts with s[0..n) and is longer. */
static bool
starts_value(const struct pc_redactor *r, const unsigned char *s, size_t n)
{
	unsigned pair;

	if (n >= 4) {
		for (uint32_t v = r->head[bucket_of(s)]; v != NO_VAL;
		    v = r->vals[v].next)
			if (r->vals[v].len > n &&
			    memcmp(r->vals[v].p, s, n) == 0)
				return true;
		return false;
	}
	/* Too short for the chains: any value starting with these bytes
	 * counts (a few bytes more dropped at most). */
	if (n >= 2) {
		pair = pair_of(s);
		return (r->first2[pair >> 3] >> (pair & 7)) & 1;
	}
	for (unsigned b = 0; b < 256; b++) {
		pair = (unsigned)s[0] | (b << 8);
		if ((r->first2[pair >> 3] >> (pair & 7)) & 1)
			return true;
	}
	return false;
}

/* A credential shape still open at the end of s[0..len): the start of
 * the token run it would have masked, or len. */
static size_t
open_shape(const unsigned char *s, size_t len)
{
	static const char *const more[] = { "eyJ", "pcs_" };
	size_t j = len;

	while (j > 0 && (is_tok68(s[j - 1]) || s[j - 1] == '.'))
		j--;
	if (j == len)
		return len;
	/* The run may hold several words ("a.b_c"): any of its tokens that
	 * starts like a credential (or like the start of one) counts. */
	for (size_t k = j; k < len; k++) {
		if (k > j && is_b64url(s[k - 1]))
			continue;
		for (size_t i = 0; i < NPREFIX + 2; i++) {
			const char *p = i < NPREFIX ? prefixes[i].prefix :
			    more[i - NPREFIX];
			size_t pl = strlen(p);

			if (memcmp(s + k, p, len - k < pl ? len - k : pl) == 0)
				return k;
		}
	}
	/* After "Bearer " or "Basic ": the run is its token. */
	if (j >= 7 && (strncasecmp((const char *)s + j - 7, "bearer ", 7) == 0))
		return j;
	if (j >= 6 && (strncasecmp((const char *)s + j - 6, "basic ", 6) == 0))
		return j;
	return len;
}

/*
 * Where a head cut from a longer text must end: before the first byte
 * that may start a known value (a longer one than what is left) or a
 * credential shape cut off, and on a UTF-8 boundary.
 */
static size_t
cut_point(const struct pc_redactor *r, const unsigned char *s, size_t len)
{
	size_t from = r->maxlen > 1 && len > r->maxlen - 1 ?
	    len - (r->maxlen - 1) : 0, keep = len;

	if (r->nvals > 0)
		for (size_t i = from; i < len; i++)
			if (starts_value(r, s + i, len - i)) {
				keep = i;
				break;
			}
	{
		size_t sh = open_shape(s, keep);

		if (sh < keep)
			keep = sh;
	}
	/* A UTF-8 sequence left incomplete at the end goes too. */
	{
		size_t b = keep;

		while (b > 0 && keep - b < 3 && (s[b - 1] & 0xC0) == 0x80)
			b--;
		if (b > 0 && s[b - 1] >= 0x80 &&
		    pc_utf8_seq(s + b - 1, keep - b + 1) == 0)
			keep = b - 1;
	}
	return keep;
}

char *
pc_redact_text(const struct pc_redactor *r, const char *s, size_t len)
{
	return pc_redact_text_head(r, s, len, false);
}

char *
pc_redact_text_head(const struct pc_redactor *r, const char *s, size_t len,
    bool cut)
{
	char *o;
	size_t n, keep = len;
	int rc;

	if (r == NULL || (s == NULL && len > 0))
		return NULL;
	if (cut)
		keep = cut_point(r, (const unsigned char *)s, len);
	if (keep == 0)
		return calloc(1, 1);
	rc = redact_bytes(r, s, len, keep, &o, &n);
	if (rc < 0)
		return NULL;
	if (rc == 0) {
		o = malloc(keep + 1);
		if (o == NULL)
			return NULL;
		memcpy(o, s, keep);
		o[keep] = '\0';
	}
	return o;
}

/* Append s[0..n) to the growing string *o (length *len); false on NOMEM. */
static bool
put_str(char **o, size_t *len, size_t cap, const char *s, size_t n)
{
	if (*len + n >= cap)
		return false;
	memcpy(*o + *len, s, n);
	*len += n;
	return true;
}

/* A parameter name f..e percent-decoded, '+' as a space, into out (room
 * for e - f + 1 bytes): its length. */
static size_t
decode_name(const char *f, const char *e, char *out)
{
	size_t n = 0;
	int hi, lo;

	for (const char *c = f; c < e; c++) {
		if (*c == '%' && e - c > 2 &&
		    (hi = pc_hex_digit((unsigned char)c[1])) >= 0 &&
		    (lo = pc_hex_digit((unsigned char)c[2])) >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			c += 2;
		} else {
			out[n++] = *c == '+' ? ' ' : *c;
		}
	}
	out[n] = '\0';
	return n;
}

/*
 * Copy the parameter list f..e ("a=1&token=x;b") to the output, the value
 * of each sensitive name replaced; false on NOMEM.
 */
static bool
put_params(const struct pc_redactor *r, char **o, size_t *len, size_t cap,
    const char *f, const char *e)
{
	while (f < e) {
		const char *fe = f;
		const char *eq;
		char name[128];
		bool hide = false;

		while (fe < e && *fe != '&' && *fe != ';')
			fe++;
		eq = memchr(f, '=', (size_t)(fe - f));
		if (eq != NULL && (size_t)(eq - f) < sizeof(name)) {
			/* Judged as the server reads it: "api%5Fkey" and
			 * "access+token" are api_key and "access token". */
			size_t nl = decode_name(f, eq, name);

			hide = memchr(name, '\0', nl) != NULL ||
			    key_sensitive(r, name);
		} else if (eq != NULL) {
			hide = true;	/* a name too long to judge */
		}
		if (hide ? !put_str(o, len, cap, f, (size_t)(eq + 1 - f)) ||
		    !put_str(o, len, cap, PC_REDACTED, strlen(PC_REDACTED)) :
		    !put_str(o, len, cap, f, (size_t)(fe - f)))
			return false;
		if (fe < e && !put_str(o, len, cap, fe, 1))
			return false;
		f = fe + 1;
	}
	return true;
}

/* "scheme:" with a valid scheme (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" /
 * "-" / "." )) ending at colon. */
static bool
valid_scheme(const char *s, const char *colon)
{
	if (s == colon || !isalpha((unsigned char)*s))
		return false;
	for (const char *c = s; c < colon; c++)
		if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' &&
		    *c != '.')
			return false;
	return true;
}

char *
pc_redact_uri(const struct pc_redactor *r, const char *uri)
{
	size_t n, len = 0, cap;
	const char *p, *end, *q, *hash, *stop, *auth;
	char *o, *out;

	if (r == NULL || uri == NULL)
		return NULL;
	n = strlen(uri);
	/* Each field keeps its size or becomes name=<redacted>, at most
	 * 10 bytes more; a field takes at least one byte and a separator. */
	cap = n + 10 * (n / 2 + 2) + 1;
	o = malloc(cap);
	if (o == NULL)
		return NULL;
	p = uri;
	end = uri + n;
	q = strchr(uri, '?');
	hash = strchr(uri, '#');
	stop = q != NULL && (hash == NULL || q < hash) ? q : hash;
	if (stop == NULL)
		stop = end;
	/* scheme://user:password@host: the password goes. Only an
	 * authority before the query or fragment, after a real scheme (a
	 * "://" inside a parameter is not one), up to its last '@' — also
	 * past a '/', which a password written unescaped may hold ("a '@'
	 * in the path" then masks more than needed, never less). A userinfo
	 * without ':' long enough to be a token (https://TOKEN@host) goes
	 * whole. */
	auth = strstr(uri, "://");
	if (auth != NULL && auth < stop && valid_scheme(uri, auth)) {
		const char *as = auth + 3, *at = NULL, *colon, *slash;
		const char *lim = stop;

		/* Past a '/' only when what precedes it could be a password:
		 * not an empty authority (file:///C:/x/@types) and not a
		 * port (localhost:5173/@vite). */
		slash = memchr(as, '/', (size_t)(stop - as));
		colon = slash != NULL ? memchr(as, ':', (size_t)(slash - as)) :
		    NULL;
		if (slash == as || (colon != NULL && colon + 1 < slash &&
		    strspn(colon + 1, "0123456789") == (size_t)(slash - colon -
		    1)))
			lim = slash;
		for (const char *c = as; c < lim; c++)
			if (*c == '@')
				at = c;
		colon = at != NULL ? memchr(as, ':', (size_t)(at - as)) : NULL;
		if (colon == NULL && at != NULL &&
		    (size_t)(at - as) >= REDACT_MIN_USER_TOKEN &&
		    memchr(as, '/', (size_t)(at - as)) == NULL)
			colon = as - 1;		/* the whole userinfo */
		if (colon != NULL) {
			if (!put_str(&o, &len, cap, uri, (size_t)(colon + 1 -
			    uri)) || !put_str(&o, &len, cap, PC_REDACTED,
			    strlen(PC_REDACTED)))
				goto nomem;
			p = at;
		}
	}
	/* The path as it is; then ?query and #fragment (OAuth's implicit
	 * flow puts #access_token=... there): the value of a sensitive name
	 * goes. */
	if (!put_str(&o, &len, cap, p, (size_t)(stop - p)))
		goto nomem;
	if (q != NULL && q == stop) {
		const char *qe = hash != NULL && hash > q ? hash : end;
		if (!put_str(&o, &len, cap, q, 1) ||
		    !put_params(r, &o, &len, cap, q + 1, qe))
			goto nomem;
		stop = qe;
	}
	if (stop < end && (!put_str(&o, &len, cap, stop, 1) ||
	    !put_params(r, &o, &len, cap, stop + 1, end)))
		goto nomem;
	o[len] = '\0';
	/* Then every secret the gateway knows, anywhere in it. */
	out = pc_redact_text(r, o, len);
	explicit_bzero(o, len);
	free(o);
	return out;
nomem:
	explicit_bzero(o, len);
	free(o);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

struct walk {
	const struct pc_redactor *r;
	const json_t *root;	/* schema root, for local $ref */
	int limited;		/* a subtree was cut at the depth bound */
	int dry;		/* only find out whether anything would change */
};

/* Tells the caller to replace the node with the marker. */
#define WALK_REPLACE 1
/* A dry walk found something to change: unwinds like an error. */
#define WALK_FOUND (PC_E__LAST - 1)

/* RFC 6901 pointer p (after '#') into root, or NULL. */
static const json_t *
json_pointer(const json_t *root, const char *p)
{
	const json_t *cur = root;
	char seg[256];

	while (*p == '/' && cur != NULL) {
		size_t n = 0;
		for (p++; *p != '\0' && *p != '/'; p++) {
			char c = *p;
			if (c == '~' && (p[1] == '0' || p[1] == '1'))
				c = *++p == '0' ? '~' : '/';
			if (n + 1 >= sizeof(seg))
				return NULL;
			seg[n++] = c;
		}
		seg[n] = '\0';
		if (json_is_object(cur)) {
			cur = json_object_get(cur, seg);
		} else if (json_is_array(cur)) {
			uint64_t idx;
			if (pc_parse_u64(seg, 0, SIZE_MAX, &idx) != 0)
				return NULL;
			cur = json_array_get(cur, (size_t)idx);
		} else {
			return NULL;
		}
	}
	return *p == '\0' ? cur : NULL;
}

/* Follow local $refs; an unresolvable one leaves s as it is (its siblings
 * may still say writeOnly). */
static const json_t *
resolve(const struct walk *w, const json_t *s)
{
	for (unsigned hop = 0; hop < REDACT_MAX_REF_HOPS; hop++) {
		const char *ref;
		const json_t *t;

		if (!json_is_object(s) || w->root == NULL)
			return s;
		ref = json_string_value(json_object_get(s, "$ref"));
		if (ref == NULL || ref[0] != '#')
			return s;
		t = json_pointer(w->root, ref + 1);
		if (t == NULL || t == s)
			return s;
		s = t;
	}
	return s;
}

static int
sens_one(const json_t *s)
{
	const char *fmt;

	if (!json_is_object(s))
		return 0;
	if (json_is_true(json_object_get(s, "writeOnly")))
		return 1;
	fmt = json_string_value(json_object_get(s, "format"));
	return fmt != NULL && strcmp(fmt, "password") == 0;
}

static const char *const combiners[] = { "allOf", "anyOf", "oneOf", NULL };

/* writeOnly / format: password on the subschema or one of its direct
 * allOf/anyOf/oneOf branches. */
static int
schema_sensitive(const struct walk *w, const json_t *s)
{
	s = resolve(w, s);
	if (sens_one(s))
		return 1;
	if (!json_is_object(s))
		return 0;
	for (size_t c = 0; combiners[c] != NULL; c++) {
		const json_t *arr = json_object_get(s, combiners[c]);
		for (size_t i = 0; i < json_array_size(arr); i++)
			if (sens_one(resolve(w, json_array_get(arr, i))))
				return 1;
	}
	return 0;
}

/* Subschema of member `key`: properties, then the properties of direct
 * combiner branches, then additionalProperties. NULL when unknown. */
static const json_t *
schema_child(const struct walk *w, const json_t *s, const char *key)
{
	const json_t *t;

	s = resolve(w, s);
	if (!json_is_object(s))
		return NULL;
	t = json_object_get(json_object_get(s, "properties"), key);
	if (t != NULL)
		return t;
	for (size_t c = 0; combiners[c] != NULL; c++) {
		const json_t *arr = json_object_get(s, combiners[c]);
		for (size_t i = 0; i < json_array_size(arr); i++) {
			const json_t *b = resolve(w, json_array_get(arr, i));
			t = json_object_get(json_object_get(b, "properties"),
			    key);
			if (t != NULL)
				return t;
		}
	}
	t = json_object_get(s, "additionalProperties");
	return json_is_object(t) ? t : NULL;
}

/* Subschema of array element idx: prefixItems (2020-12) or tuple items
 * (draft-07), else items. */
static const json_t *
schema_item(const struct walk *w, const json_t *s, size_t idx)
{
	const json_t *t;

	s = resolve(w, s);
	if (!json_is_object(s))
		return NULL;
	t = json_array_get(json_object_get(s, "prefixItems"), idx);
	if (t != NULL)
		return t;
	t = json_object_get(s, "items");
	if (json_is_array(t))
		return json_array_get(t, idx);
	return json_is_object(t) ? t : NULL;
}

/* Redact a string node in place. 0 or PC_E_NOMEM. */
static int
walk_string(const struct walk *w, json_t *v)
{
	char *o;
	size_t n;
	int rc;

	if (w->dry) {
		rc = has_secret(w->r, json_string_value(v),
		    json_string_length(v));
		return rc == 1 ? WALK_FOUND : rc;
	}
	rc = redact_bytes(w->r, json_string_value(v), json_string_length(v),
	    json_string_length(v), &o, &n);
	if (rc <= 0)
		return rc;
	/* A value that is not valid UTF-8 can match inside a character and
	 * leave a broken sequence: then the whole string goes. */
	if (json_string_setn(v, o, n) != 0 &&
	    json_string_set(v, PC_REDACTED) != 0)
		rc = PC_E_NOMEM;
	else
		rc = 0;
	free(o);
	return rc;
}

/* A number whose text holds a known value (a numeric PIN, an account
 * number). 1 when secret, 0 otherwise, or PC_E_NOMEM. */
static int
number_secret(const struct walk *w, const json_t *v)
{
	char *t, *o;
	size_t n;
	int rc;

	if (w->r->nvals == 0)
		return 0;
	t = json_dumps(v, JSON_ENCODE_ANY);
	if (t == NULL)
		return PC_E_NOMEM;
	rc = redact_bytes(w->r, t, strlen(t), strlen(t), &o, &n);
	free(o);
	free(t);
	return rc;
}

static int walk(struct walk *w, json_t *v, const json_t *sch, size_t depth);

/* Walk child c of a container at `depth`, under subschema sch; returns
 * WALK_REPLACE when the caller must put the marker in its place. */
static int
walk_child(struct walk *w, json_t *c, const json_t *sch, size_t depth,
    int key_secret)
{
	if (key_secret || (sch != NULL && schema_sensitive(w, sch)))
		return WALK_REPLACE;
	if ((json_is_object(c) || json_is_array(c)) &&
	    depth + 1 > PC_MAX_MAX_JSON_DEPTH) {
		w->limited = 1;
		return WALK_REPLACE;
	}
	return walk(w, c, sch, depth + 1);
}

struct rename {
	char *from;
	char *to;
};

static int
apply_renames(json_t *obj, struct rename *rn, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_t *val = json_incref(json_object_get(obj, rn[i].from));
		char key[64 + 16];
		const char *k = rn[i].to;

		json_object_del(obj, rn[i].from);
		/* Two keys that redact alike must both survive; past 100
		 * collisions the member is dropped rather than leaked. */
		for (unsigned j = 2; json_object_get(obj, k) != NULL; j++) {
			if (j > 100 || strlen(rn[i].to) > 64) {
				k = NULL;
				break;
			}
			snprintf(key, sizeof(key), "%s#%u", rn[i].to, j);
			k = key;
		}
		if (k == NULL) {
			json_decref(val);
			continue;
		}
		if (json_object_set_new(obj, k, val) != 0)
			return PC_E_NOMEM;
	}
	return 0;
}

static int
walk_object(struct walk *w, json_t *v, const json_t *sch, size_t depth)
{
	struct rename *rn = NULL;
	size_t nrn = 0;
	const char *key;
	json_t *c;
	void *tmp;
	int rc = 0;

	json_object_foreach_safe(v, tmp, key, c) {
		char *o;
		size_t n;

		rc = walk_child(w, c, schema_child(w, sch, key), depth,
		    key_sensitive(w->r, key));
		if (w->dry && rc == 0)
			rc = has_secret(w->r, key, strlen(key));
		if (w->dry && rc != 0) {
			rc = rc < 0 && rc != WALK_FOUND ? rc : WALK_FOUND;
			goto out;
		}
		if (rc < 0)
			goto out;
		if (rc == WALK_REPLACE &&
		    json_object_set_new(v, key, json_string(PC_REDACTED)) != 0) {
			rc = PC_E_NOMEM;
			goto out;
		}
		rc = redact_bytes(w->r, key, strlen(key), strlen(key), &o, &n);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			struct rename *nr = realloc(rn, (nrn + 1) * sizeof(*nr));
			if (nr == NULL) {
				free(o);
				rc = PC_E_NOMEM;
				goto out;
			}
			rn = nr;
			rn[nrn].to = o;
			rn[nrn].from = strdup(key);
			nrn++;
			if (rn[nrn - 1].from == NULL) {
				rc = PC_E_NOMEM;
				goto out;
			}
		}
	}
	rc = apply_renames(v, rn, nrn);
out:
	for (size_t i = 0; i < nrn; i++) {
		free(rn[i].from);
		free(rn[i].to);
	}
	free(rn);
	return rc < 0 ? rc : 0;
}

static int
walk(struct walk *w, json_t *v, const json_t *sch, size_t depth)
{
	int rc;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return walk_string(w, v);
	case JSON_INTEGER:
	case JSON_REAL:
		rc = number_secret(w, v);
		return rc < 0 ? rc : (rc == 1 ? WALK_REPLACE : 0);
	case JSON_OBJECT:
		return walk_object(w, v, sch, depth);
	case JSON_ARRAY:
		for (size_t i = 0; i < json_array_size(v); i++) {
			rc = walk_child(w, json_array_get(v, i),
			    schema_item(w, sch, i), depth, 0);
			if (w->dry && rc == WALK_REPLACE)
				return WALK_FOUND;
			if (rc < 0)
				return rc;
			if (rc == WALK_REPLACE && json_array_set_new(v, i,
			    json_string(PC_REDACTED)) != 0)
				return PC_E_NOMEM;
		}
		return 0;
	default:
		return 0;
	}
}

int
pc_redact_json_needed(const struct pc_redactor *r, const json_t *v,
    const json_t *schema)
{
	/* The walk does not modify v when dry. */
	struct walk w = { r, schema, 0, 1 };
	int rc;

	if (r == NULL || v == NULL)
		return PC_E_INVAL;
	rc = walk(&w, (json_t *)v, schema, 0);
	if (rc == WALK_FOUND || rc == WALK_REPLACE || w.limited)
		return 1;
	return rc < 0 ? rc : 0;
}

json_t *
pc_redact_json_copy(const struct pc_redactor *r, json_t *v,
    const json_t *schema)
{
	json_t *copy;
	int rc = pc_redact_json_needed(r, v, schema);

	if (rc == 0)
		return json_incref(v);
	if (rc < 0 || (copy = json_deep_copy(v)) == NULL)
		return NULL;
	rc = pc_redact_json(r, copy, schema);
	/* PC_E_LIMIT leaves a safe (over-redacted) value; NOMEM may not. */
	if (rc != 0 && rc != PC_E_LIMIT) {
		json_decref(copy);
		return NULL;
	}
	return copy;
}

int
pc_redact_json(const struct pc_redactor *r, json_t *v, const json_t *schema)
{
	struct walk w = { r, schema, 0, 0 };
	int rc;

	if (r == NULL || v == NULL)
		return PC_E_INVAL;
	/* The root has no parent slot: only its subtree can be redacted,
	 * which is what schema/key rules address anyway. */
	rc = walk(&w, v, schema, 0);
	if (rc == WALK_REPLACE) {
		/* A bare number holding a secret: no marker fits its type. */
		if (json_is_integer(v))
			json_integer_set(v, 0);
		else
			json_real_set(v, 0.0);
		rc = 0;
	}
	if (rc < 0)
		return rc;
	return w.limited ? PC_E_LIMIT : 0;
}

void
pc_redact_rpc_failure(const struct pc_redactor *r, json_t *msg)
{
	json_t *err = json_object_get(msg, "error");
	json_t *res = json_object_get(msg, "result");
	int rc;

	if (r == NULL || msg == NULL)
		return;
	if (json_is_object(err)) {
		json_t *code = json_incref(json_object_get(err, "code"));

		rc = pc_redact_json(r, err, NULL);
		if (rc != 0 && rc != PC_E_LIMIT) {
			/* Partly redacted: keep the code alone. */
			json_object_clear(err);
			if (code != NULL)
				(void)json_object_set(err, "code", code);
			(void)json_object_set_new(err, "message", json_string(
			    "Upstream error withheld: it could not be "
			    "redacted"));
		}
		json_decref(code);
	} else if (json_is_true(json_object_get(res, "isError"))) {
		json_t *type = json_incref(json_object_get(res, "resultType"));

		rc = pc_redact_json(r, res, NULL);
		if (rc != 0 && rc != PC_E_LIMIT) {
			json_object_clear(res);
			(void)json_object_set_new(res, "content", json_pack(
			    "[{s:s, s:s}]", "type", "text", "text",
			    "Tool error withheld: it could not be redacted"));
			(void)json_object_set_new(res, "isError", json_true());
			if (type != NULL)
				(void)json_object_set(res, "resultType", type);
		}
		json_decref(type);
	}
}
