/*
 * Lexical path confinement for path-constrained tool arguments.
 *
 * Policy: reject rather than guess. Anything an upstream (or a library on
 * its side) might decode into something else — percent-encoding,
 * backslashes, overlong UTF-8, Unicode full stops and solidi that NFKC
 * folds to '.' and '/', a leading '~' that a shell would expand — is
 * refused outright instead of being decoded here, so that our reading of
 * the path and the upstream's cannot differ. What remains is normalized
 * lexically and must stay under the root; the caller rewrites the argument
 * to the normalized form so the upstream never sees a '..' at all.
 *
 * Symlinks inside the root are out of scope (no file system access here):
 * that is the upstream sandbox's job.
 */
#include <stdint.h>
#include <string.h>

#include "authz/policy.h"
#include "lib/errors.h"

/*
 * Code points that compatibility normalization (NFKC) or lenient decoders
 * fold to '.', '/' or '\': a path using them is either meant to trick a
 * decoder or is too odd to be worth the risk.
 */
static const uint32_t lookalikes[] = {
	0x2024, 0x2025, 0x2026,	/* one/two dot leader, ellipsis */
	0xfe52, 0xff0e,		/* small / fullwidth full stop */
	0x3002, 0xff61,		/* ideographic / halfwidth ideographic stop */
	0x2044, 0x2215, 0x29f8,	/* fraction slash, division slash, big solidus */
	0xff0f, 0xfe68, 0xff3c,	/* fullwidth solidus, small/fullwidth rev. */
	0x2216, 0x29f5, 0x29f9,	/* set minus, reverse solidus operator, big rev */
	0x0338, 0x20e5,		/* combining long solidus, reverse solidus */
	/* The rest of what NFKC folds to text holding '.', '/' or '\\'
	 * (all of them, Unicode 15: U+FE30 is "..", U+2100 "a/c"). */
	0xfe30, 0xfe19,		/* vertical two dot leader, vertical ellipsis */
	0x2100, 0x2101, 0x2105, 0x2106,	/* a/c, a/s, c/o, c/u */
	0x33c2, 0x33c7, 0x33d8,	/* square a.m., Co., p.m. */
	0x1f100,		/* digit zero full stop */
};

/* Decode one strict UTF-8 sequence at s[0..n); returns its length or 0 when
 * invalid (overlong, surrogate, past U+10FFFF, truncated). */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
	} else {
		return 0;	/* continuation byte, 0xc0/0xc1 (overlong), 0xf5+ */
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Is every byte of s[0..n) acceptable in a path we are willing to judge? */
static int
path_chars_ok(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k, step;
	uint32_t cp;

	while (i < n) {
		step = utf8_next(u + i, n - i, &cp);
		if (step == 0)
			return 0;
		if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
			return 0;	/* NUL and every other control */
		if (cp == '\\' || cp == '%')
			return 0;
		if (cp == '~' && (i == 0 || u[i - 1] == '/'))
			return 0;
		if (cp >= 0x2488 && cp <= 0x249b)
			return 0;	/* digit / number full stop: "1." */
		for (k = 0; k < sizeof(lookalikes) / sizeof(lookalikes[0]); k++)
			if (cp == lookalikes[k])
				return 0;
		i += step;
	}
	return 1;
}

/* Append "/" + comp[0..n) to out (length *olen, capacity cap). */
static int
push(char *out, size_t cap, size_t *olen, const char *comp, size_t n)
{
	if (*olen + 1 + n + 1 > cap)
		return PC_E_LIMIT;
	out[(*olen)++] = '/';
	memcpy(out + *olen, comp, n);
	*olen += n;
	out[*olen] = '\0';
	return 0;
}

/* Lexically resolve s[0..n) (absolute) into out; PC_E_DENIED when a '..'
 * climbs above '/'. */
static int
resolve(const char *s, size_t n, char *out, size_t cap, size_t *olen)
{
	size_t i = 0, start, clen;
	int rc;

	*olen = 0;
	out[0] = '\0';
	while (i < n) {
		while (i < n && s[i] == '/')
			i++;
		start = i;
		while (i < n && s[i] != '/')
			i++;
		clen = i - start;
		if (clen == 0 || (clen == 1 && s[start] == '.'))
			continue;
		if (clen == 2 && s[start] == '.' && s[start + 1] == '.') {
			if (*olen == 0)
				return PC_E_DENIED;
			while (*olen > 0 && out[*olen - 1] != '/')
				(*olen)--;
			(*olen)--;	/* the '/' itself */
			out[*olen] = '\0';
			continue;
		}
		if ((rc = push(out, cap, olen, s + start, clen)) != 0)
			return rc;
	}
	if (*olen == 0) {
		if (cap < 2)
			return PC_E_LIMIT;
		out[0] = '/';
		out[1] = '\0';
		*olen = 1;
	}
	return 0;
}

int
pc_policy_path_normalize(const char *root, const char *path, size_t len,
    char *out, size_t outlen)
{
	char joined[2 * PC_POLICY_MAX_PATH + 2];
	size_t rlen, jlen, olen;
	int rc;

	if (root == NULL || path == NULL || out == NULL || outlen == 0)
		return PC_E_DENIED;
	rlen = strlen(root);
	if (rlen == 0 || root[0] != '/' || rlen > PC_POLICY_MAX_PATH)
		return PC_E_DENIED;
	if (len == 0)
		return PC_E_DENIED;	/* "" could mean the root or the cwd */
	if (len > PC_POLICY_MAX_PATH)
		return PC_E_LIMIT;
	if (!path_chars_ok(path, len))
		return PC_E_DENIED;

	if (path[0] == '/') {
		memcpy(joined, path, len);
		jlen = len;
	} else {
		memcpy(joined, root, rlen);
		joined[rlen] = '/';
		memcpy(joined + rlen + 1, path, len);
		jlen = rlen + 1 + len;
	}
	joined[jlen] = '\0';

	if ((rc = resolve(joined, jlen, out, outlen, &olen)) != 0)
		return rc;
	/* Component-wise prefix: "/srv/data2" is not under "/srv/data". */
	if (rlen == 1)
		return 0;
	if (root[rlen - 1] == '/')
		rlen--;
	if (olen < rlen || memcmp(out, root, rlen) != 0 ||
	    (olen > rlen && out[rlen] != '/'))
		return PC_E_DENIED;
	return 0;
}
