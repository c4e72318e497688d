/*
 * "format" checks of the JSON Schema validator: date-time, date, time
 * (RFC 3339), email (RFC 5321 mailbox, simplified), uri (RFC 3986 absolute
 * URI), uuid (RFC 4122 text form), ipv4, ipv6, hostname (RFC 1123).
 *
 * Each check reads exactly len bytes (strings may hold NUL) and never
 * allocates: it runs once per argument value on the request path.
 * Unknown formats are not asserted, as the spec says.
 */
#include <arpa/inet.h>
#include <string.h>

#include "validate/schema_int.h"

static const struct {
	const char *name;
	enum sc_format f;
} formats[] = {
	{ "date-time", SC_F_DATE_TIME }, { "date", SC_F_DATE },
	{ "time", SC_F_TIME }, { "email", SC_F_EMAIL }, { "uri", SC_F_URI },
	{ "uuid", SC_F_UUID }, { "ipv4", SC_F_IPV4 }, { "ipv6", SC_F_IPV6 },
	{ "hostname", SC_F_HOSTNAME },
};

enum sc_format
sc_format_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(formats[i].name, name) == 0)
			return formats[i].f;
	return SC_F_NONE;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n decimal digits at s; -1 if any is not a digit. */
static int
digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
check_date(const char *s, size_t len)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int y, m, d;

	if (len != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	y = digits(s, 4);
	m = digits(s + 5, 2);
	d = digits(s + 8, 2);
	if (y < 0 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return 0;
	return 1;
}

/* RFC 3339 full-time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int
check_time(const char *s, size_t len)
{
	int h, mi, sec, oh = 0, om = 0, sign = 0;
	size_t i = 8;

	if (len < 9 || s[2] != ':' || s[5] != ':')
		return 0;
	h = digits(s, 2);
	mi = digits(s + 3, 2);
	sec = digits(s + 6, 2);
	if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return 0;
	if (s[i] == '.') {
		size_t start = ++i;
		while (i < len && is_digit(s[i]))
			i++;
		if (i == start)
			return 0;
	}
	if (i == len)
		return 0;
	if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
		sign = 0;
	} else if ((s[i] == '+' || s[i] == '-') && len - i == 6 &&
	    s[i + 3] == ':') {
		sign = s[i] == '+' ? 1 : -1;
		oh = digits(s + i + 1, 2);
		om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return 0;
	} else
		return 0;
	if (sec == 60) {
		/* A leap second exists only at 23:59:60 UTC. */
		int utc = (h * 60 + mi - sign * (oh * 60 + om)) % 1440;
		if (utc < 0)
			utc += 1440;
		if (utc != 23 * 60 + 59)
			return 0;
	}
	return 1;
}

static int
check_date_time(const char *s, size_t len)
{
	if (len < 20 || (s[10] != 'T' && s[10] != 't'))
		return 0;
	return check_date(s, 10) && check_time(s + 11, len - 11);
}

static int
check_uuid(const char *s, size_t len)
{
	if (len != 36)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!is_hex(s[i]))
			return 0;
	}
	return 1;
}

static int
check_ipv4(const char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		int v = 0;
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			start = ++i;
		}
		while (i < len && is_digit(s[i]) && i - start < 3)
			v = v * 10 + (s[i++] - '0');
		/* No empty part, no leading zero (octal ambiguity), <= 255. */
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return 0;
	}
	return i == len;
}

static int
check_ipv6(const char *s, size_t len)
{
	char buf[64];
	unsigned char out[16];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
			return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	/* An embedded IPv4 must pass our stricter dotted-quad check too. */
	const char *colon = strrchr(buf, ':');
	if (strchr(buf, '.') != NULL && (colon == NULL ||
	    !check_ipv4(colon + 1, len - (size_t)(colon + 1 - buf))))
		return 0;
	return inet_pton(AF_INET6, buf, out) == 1;
}

static int
check_hostname(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

static int
atext(char c)
{
	return is_alpha(c) || is_digit(c) || (c != '\0' &&
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
check_email(const char *s, size_t len)
{
	size_t at = len, i;

	/* The last '@' splits: a quoted local part may contain '@'. */
	for (i = len; i > 0; i--)
		if (s[i - 1] == '@') {
			at = i - 1;
			break;
		}
	if (at == len || at == 0 || at + 1 == len || at > 64)
		return 0;
	if (s[0] == '"') {
		if (at < 2 || s[at - 1] != '"')
			return 0;
		for (i = 1; i + 1 < at; i++) {
			if (s[i] == '\\' && i + 2 < at) {
				i++;
				continue;
			}
			if (s[i] == '"' || s[i] == '\\' ||
			    (unsigned char)s[i] < 0x20)
				return 0;
		}
	} else {
		for (i = 0; i < at; i++) {
			if (s[i] == '.') {
				if (i == 0 || i + 1 == at || s[i + 1] == '.')
					return 0;
			} else if (!atext(s[i]))
				return 0;
		}
	}
	const char *d = s + at + 1;
	size_t dl = len - at - 1;
	if (d[0] == '[') {
		if (d[dl - 1] != ']' || dl < 3)
			return 0;
		if (dl > 7 && strncmp(d + 1, "IPv6:", 5) == 0)
			return check_ipv6(d + 6, dl - 7);
		return check_ipv4(d + 1, dl - 2);
	}
	return check_hostname(d, dl);
}

/* RFC 3986 absolute URI: scheme ":" then only URI characters, with valid
 * percent escapes and a sane authority. Not a full grammar, but it refuses
 * what matters for a gateway: relative references, spaces, control and
 * non-ASCII bytes, backslashes, and broken escapes. */
static int
check_uri(const char *s, size_t len)
{
	size_t i = 0, auth_end = 0;

	if (len == 0 || !is_alpha(s[0]))
		return 0;
	while (i < len && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' ||
	    s[i] == '-' || s[i] == '.'))
		i++;
	if (i == len || s[i] != ':')
		return 0;
	i++;
	if (len - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
		/* authority: [userinfo@]host[:port] */
		size_t a = i + 2, e = a, at = 0, colon = 0;
		int bracket = 0;
		while (e < len && s[e] != '/' && s[e] != '?' && s[e] != '#') {
			if (s[e] == '@')
				at = e;
			if (s[e] == '[')
				bracket = 1;
			e++;
		}
		size_t h = at ? at + 1 : a;
		if (bracket) {
			const char *close = memchr(s + h, ']', e - h);
			if (s[h] != '[' || close == NULL ||
			    !check_ipv6(s + h + 1, (size_t)(close - s - h - 1)))
				return 0;
			colon = (size_t)(close - s) + 1;
			if (colon < e && s[colon] != ':')
				return 0;
		} else {
			for (colon = h; colon < e && s[colon] != ':'; colon++)
				;
		}
		for (size_t p = colon + 1; p < e; p++)
			if (!is_digit(s[p]))
				return 0;
		auth_end = e;
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= len || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
				return 0;
			i += 2;
		} else if (!is_alpha((char)c) && !is_digit((char)c) &&
		    strchr("-._~:/?#[]@!$&'()*+,;=", c) == NULL)
			return 0;
		else if (c == '\0' || ((c == '[' || c == ']') && i >= auth_end))
			return 0;	/* brackets only around an IPv6 host */
	}
	return 1;
}

int
sc_format_valid(enum sc_format f, const char *s, size_t len)
{
	switch (f) {
	case SC_F_DATE_TIME: return check_date_time(s, len);
	case SC_F_DATE: return check_date(s, len);
	case SC_F_TIME: return check_time(s, len);
	case SC_F_EMAIL: return check_email(s, len);
	case SC_F_URI: return check_uri(s, len);
	case SC_F_UUID: return check_uuid(s, len);
	case SC_F_IPV4: return check_ipv4(s, len);
	case SC_F_IPV6: return check_ipv6(s, len);
	case SC_F_HOSTNAME: return check_hostname(s, len);
	case SC_F_NONE: break;
	}
	return 1;
}

int
pc_schema_format_check(const char *name, const char *s, size_t len)
{
	enum sc_format f = sc_format_lookup(name);

	if (f == SC_F_NONE)
		return -1;
	return sc_format_valid(f, s, len);
}
