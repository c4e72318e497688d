#include "http_check.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "../lib/limits.h"
#include "../lib/util.h"

bool
pc_accept_has(const char *accept, const char *type)
{
	size_t tl = strlen(type);
	const char *p = accept;

	if (accept == NULL)
		return false;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p;
		while (*end != '\0' && *end != ',' && *end != ';' &&
		    *end != ' ' && *end != '\t')
			end++;
		if ((size_t)(end - p) == tl && strncasecmp(p, type, tl) == 0)
			return true;
		while (*end != '\0' && *end != ',')
			end++;
		p = end;
	}
	return false;
}

bool
pc_content_type_json(const char *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if (ct == NULL || strncasecmp(ct, want, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* host[:port] where host is a loopback name; `end` bounds the string. */
static bool
loopback_hostport(const char *s, size_t len)
{
	static const char *const names[] = { "localhost", "127.0.0.1", "[::1]" };

	for (size_t i = 0; i < 3; i++) {
		size_t nl = strlen(names[i]);
		if (len < nl || strncasecmp(s, names[i], nl) != 0)
			continue;
		if (len == nl)
			return true;
		if (s[nl] != ':' || len == nl + 1 || len - nl - 1 > 5)
			continue;
		for (size_t j = nl + 1; j < len; j++)
			if (!isdigit((unsigned char)s[j]))
				return false;
		return true;
	}
	return false;
}

bool
pc_host_is_loopback(const char *host)
{
	return host != NULL && loopback_hostport(host, strlen(host));
}

/* ":digits" (1 to 5 of them) or nothing. */
static bool
port_suffix(const char *s)
{
	size_t n;

	if (*s == '\0')
		return true;
	if (*s++ != ':')
		return false;
	n = strlen(s);
	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

bool
pc_host_is_ip_literal(const char *host)
{
	char buf[64];
	const char *e;
	unsigned char a[16];
	bool v6;
	size_t n;

	if (host == NULL)
		return false;
	v6 = host[0] == '[';
	e = v6 ? strchr(host, ']') : host + strcspn(host, ":");
	if (e == NULL)
		return false;
	n = (size_t)(e - host) - (v6 ? 1 : 0);
	if (n == 0 || n >= sizeof(buf) || !port_suffix(e + (v6 ? 1 : 0)))
		return false;
	memcpy(buf, host + (v6 ? 1 : 0), n);
	buf[n] = '\0';
	return inet_pton(v6 ? AF_INET6 : AF_INET, buf, a) == 1;
}

bool
pc_origin_is_loopback(const char *origin)
{
	const char *rest;

	if (origin == NULL)
		return false;
	if (strncasecmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	else
		return false;
	return loopback_hostport(rest, strlen(rest));
}

bool
pc_in_list(char *const *list, const char *v)
{
	if (list == NULL || v == NULL)
		return false;
	for (; *list != NULL; list++)
		if (strcmp(*list, v) == 0)
			return true;
	return false;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), no NUL. */
static bool
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t k;
		unsigned cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
		else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
		else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
		else return false;
		if (i + k >= n)		/* needs bytes i+1 .. i+k */
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += k + 1;
	}
	return true;
}

#define ONCE(name) { name, sizeof(name) - 1 }

const char *
pc_duplicate_header(const struct evkeyvalq *headers)
{
	/* Headers the gateway decides on: each must appear once. */
	static const struct { const char *name; size_t len; } once[] = {
		ONCE("Host"), ONCE("Origin"), ONCE("Authorization"),
		ONCE("Content-Type"), ONCE("Content-Length"),
		ONCE("Transfer-Encoding"), ONCE("Accept"),
		ONCE("Mcp-Session-Id"), ONCE("MCP-Protocol-Version"),
		ONCE("Mcp-Method"), ONCE("Mcp-Name"), ONCE("Last-Event-ID"),
	};
	const struct evkeyval *kv;
	unsigned seen = 0;

	/* One pass over the request's headers; the length first, so most
	 * names cost no comparison at all. */
	for (kv = headers->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		size_t n = strlen(kv->key);

		for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
			if (once[i].len != n ||
			    strcasecmp(kv->key, once[i].name) != 0)
				continue;
			if (seen & (1u << i))
				return once[i].name;
			seen |= 1u << i;
			break;
		}
	}
	return NULL;
}

#undef ONCE

char *
pc_header_decode(const char *v)
{
	size_t n;

	if (v == NULL)
		return NULL;
	n = strlen(v);
	if (n > 4 * PC_MAX_HEADER_VALUE)
		return NULL;
	if (n >= 12 && strncmp(v, "=?base64?", 9) == 0 &&
	    strcmp(v + n - 2, "?=") == 0) {
		const char *b = v + 9;
		size_t bl = n - 11;
		unsigned char *out;
		int ol;
		size_t pad = 0;

		if (bl % 4 != 0)
			return NULL;
		for (size_t i = 0; i < bl; i++) {
			unsigned char c = (unsigned char)b[i];
			if (!(isalnum(c) || c == '+' || c == '/' ||
			    (c == '=' && i >= bl - 2)))
				return NULL;
		}
		if (bl >= 1 && b[bl - 1] == '=')
			pad++;
		if (bl >= 2 && b[bl - 2] == '=') {
			/* "ab=c": padding then data; OpenSSL would decode
			 * the '=' as zero bits and the count cut the rest. */
			if (b[bl - 1] != '=')
				return NULL;
			pad++;
		}
		out = malloc(bl / 4 * 3 + 1);
		if (out == NULL)
			return NULL;
		ol = EVP_DecodeBlock(out, (const unsigned char *)b, (int)bl);
		if (ol < 0 || (size_t)ol < pad) {
			free(out);
			return NULL;
		}
		ol -= (int)pad;	/* EVP_DecodeBlock counts padding bytes */
		out[ol] = '\0';
		if ((size_t)ol > PC_MAX_HEADER_VALUE ||
		    !valid_utf8(out, (size_t)ol)) {
			free(out);
			return NULL;
		}
		return (char *)out;
	}
	if (n > PC_MAX_HEADER_VALUE)
		return NULL;
	/* Plain values: visible ASCII and spaces only. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c > 0x7e)
			return NULL;
	}
	return pc_strndup(v, n);
}

static bool
parse_addr(const char *addr, int *family, unsigned char out[16])
{
	if (inet_pton(AF_INET, addr, out) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, addr, out) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

static bool
prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool
pc_addr_in(const struct pc_cidr *list, size_t n, const char *addr)
{
	unsigned char a[16];
	int fam;

	if (addr == NULL || !parse_addr(addr, &fam, a))
		return false;
	for (size_t i = 0; i < n; i++)
		if (list[i].family == fam && prefix_eq(a, list[i].addr,
		    list[i].bits))
			return true;
	return false;
}

bool
pc_addr_is_loopback(const char *addr)
{
	unsigned char a[16];
	int fam;

	if (addr == NULL || !parse_addr(addr, &fam, a))
		return false;
	if (fam == AF_INET)
		return a[0] == 127;
	if (IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a))
		return true;
	return IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a) && a[12] == 127;
}

/* One header's list from the right: 1 found (out set), 0 every entry is
 * a trusted proxy, -1 garbage. */
static int
forwarded_one(const char *xff, const struct pc_cidr *list, size_t n,
    char *out, size_t outlen)
{
	size_t len = strlen(xff);

	while (len > 0) {
		size_t end = len, start;
		while (end > 0 && (xff[end - 1] == ' ' || xff[end - 1] == ','))
			end--;
		if (end == 0)
			break;		/* only separators left */
		start = end;
		while (start > 0 && xff[start - 1] != ',')
			start--;
		while (start < end && xff[start] == ' ')
			start++;
		len = start;
		char one[INET6_ADDRSTRLEN + 1];
		size_t l = end - start;
		unsigned char tmp[16];
		int fam;
		if (l == 0 || l >= sizeof(one))
			return -1;	/* garbage: do not guess */
		memcpy(one, xff + start, l);
		one[l] = '\0';
		if (!parse_addr(one, &fam, tmp))
			return -1;
		if (pc_addr_in(list, n, one))
			continue;	/* another proxy of ours */
		pc_strlcpy(out, one, outlen);
		return 1;
	}
	return 0;
}

bool
pc_forwarded_client(const char *const *xff, size_t nxff,
    const struct pc_cidr *list, size_t n, char *out, size_t outlen)
{
	/* Several header lines are one list, in order (RFC 9110 5.3): a
	 * proxy that adds its own line rather than appending puts the
	 * client it saw in the last one. Reading only the first line let a
	 * client pose as any address. */
	for (size_t i = nxff; i > 0; i--) {
		int rc;

		if (xff[i - 1] == NULL)
			return false;
		rc = forwarded_one(xff[i - 1], list, n, out, outlen);
		if (rc != 0)
			return rc > 0;
	}
	return false;
}
