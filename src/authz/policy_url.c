/*
 * URL constraint: scheme, host allow-list, and no request forgery toward
 * the gateway's own network (SSRF).
 *
 * The URL is split with a deliberately strict grammar (scheme "://"
 * authority [path]); whatever a lenient parser would repair — userinfo,
 * backslashes, whitespace, percent-encoded hosts, non-ASCII — is refused,
 * so that no parser on the upstream's side can see a different host.
 *
 * Addresses are never parsed by hand: getaddrinfo() (numeric first, then
 * the resolver) produces them and every result must be public. The router
 * looks names up on worker threads (a memo, src/lib/resolve.h), never on
 * the event loop. A host that
 * looks numeric but that inet_pton() does not accept as a canonical
 * dotted quad (0x7f.1, 2130706433, 0177.0.0.1, 127.1) is refused, because
 * WHATWG and BSD parsers read those as IPv4 and we would not.
 *
 * Known limit: the upstream resolves the name again (DNS rebinding). This
 * check raises the bar; the egress sandbox is what closes it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "authz/policy.h"
#include "lib/errors.h"
#include "lib/util.h"

#define HOST_MAX 256u	/* DNS names are at most 253 octets */

static int
v4_forbidden(const uint8_t a[4])
{
	uint32_t x = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) |
	    ((uint32_t)a[2] << 8) | a[3];
	static const struct { uint32_t net, mask; } bad[] = {
		{ 0x00000000u, 0xff000000u },	/* 0/8 "this network" */
		{ 0x0a000000u, 0xff000000u },	/* 10/8 */
		{ 0x64400000u, 0xffc00000u },	/* 100.64/10 CGNAT */
		{ 0x7f000000u, 0xff000000u },	/* 127/8 loopback */
		{ 0xa9fe0000u, 0xffff0000u },	/* 169.254/16 link-local,
						 * cloud metadata */
		{ 0xac100000u, 0xfff00000u },	/* 172.16/12 */
		{ 0xc0000000u, 0xffffff00u },	/* 192.0.0/24 IETF */
		{ 0xc0586300u, 0xffffff00u },	/* 192.88.99/24 6to4 relay
						 * anycast (deprecated) */
		{ 0xc0a80000u, 0xffff0000u },	/* 192.168/16 */
		{ 0xc6120000u, 0xfffe0000u },	/* 198.18/15 benchmarking */
		{ 0xe0000000u, 0xf0000000u },	/* 224/4 multicast */
		{ 0xf0000000u, 0xf0000000u },	/* 240/4 reserved, broadcast */
		{ 0xa83f8110u, 0xffffffffu },	/* 168.63.129.16 Azure's host
						 * (metadata, DNS) */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if ((x & bad[i].mask) == bad[i].net)
			return 1;
	return 0;
}

static int
v6_forbidden(const uint8_t a[16])
{
	static const uint8_t zero[16];
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };

	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
		return 1;			/* :: and ::1 */
	if ((a[0] & 0xfe) == 0xfc)
		return 1;			/* fc00::/7 ULA (fd00:ec2::254) */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return 1;			/* fe80::/10 link-local */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return 1;			/* fec0::/10 old site-local */
	if (a[0] == 0xff)
		return 1;			/* multicast */
	/* Forms that carry an IPv4 address: judge the embedded one. */
	if (memcmp(a, zero, 10) == 0 && a[10] == 0xff && a[11] == 0xff)
		return v4_forbidden(a + 12);	/* ::ffff:a.b.c.d mapped */
	if (memcmp(a, zero, 12) == 0)
		return 1;			/* ::a.b.c.d (deprecated) */
	if (memcmp(a, zero, 8) == 0 && a[8] == 0xff && a[9] == 0xff &&
	    a[10] == 0 && a[11] == 0)
		return v4_forbidden(a + 12);	/* ::ffff:0:a.b.c.d SIIT */
	if (memcmp(a, nat64, 12) == 0)
		return v4_forbidden(a + 12);	/* 64:ff9b::/96 */
	if (memcmp(a, nat64, 4) == 0 && a[4] == 0 && a[5] == 1)
		return 1;			/* 64:ff9b:1::/48 local-use
						 * NAT64 (RFC 8215): any v4
						 * in any of its forms */
	if (a[0] == 0x20 && a[1] == 0x02)
		return v4_forbidden(a + 2);	/* 2002::/16 6to4 */
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0)
		return 1;			/* 2001::/32 Teredo: obfuscated */
	return 0;
}

/* Every address of a lookup is public; an empty list is not. */
static int
addrs_public(const struct addrinfo *res)
{
	const struct addrinfo *ai;
	int n = 0;

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *s = (const void *)ai->ai_addr;

			if (v4_forbidden((const uint8_t *)&s->sin_addr))
				return PC_E_DENIED;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *s = (const void *)ai->ai_addr;

			if (v6_forbidden(s->sin6_addr.s6_addr))
				return PC_E_DENIED;
		} else {
			return PC_E_DENIED;
		}
		n++;
	}
	return n > 0 ? 0 : PC_E_DENIED;
}

static int
addrs_ok(const char *host, int numeric)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = numeric ? AI_NUMERICHOST : 0;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return PC_E_DENIED;
	rc = addrs_public(res);
	freeaddrinfo(res);
	return rc;
}

void
pc_url_memo_put(struct pc_url_memo *m, int gai, const struct addrinfo *res)
{
	if (m->n >= PC_URL_MEMO_MAX || m->need[0] == '\0')
		return;
	pc_strlcpy(m->e[m->n].host, m->need, sizeof(m->e[m->n].host));
	m->e[m->n].verdict = gai != 0 ? PC_E_DENIED : addrs_public(res);
	m->n++;
	m->need[0] = '\0';
}

/* A name: its verdict from the memo, or PC_E_AGAIN with it in need. */
static int
memo_get(struct pc_url_memo *m, const char *host)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->e[i].host, host) == 0)
			return m->e[i].verdict;
	/* A call that needs more names than the memo holds is refused. */
	if (m->n >= PC_URL_MEMO_MAX)
		return PC_E_DENIED;
	pc_strlcpy(m->need, host, sizeof(m->need));
	return PC_E_AGAIN;
}

/* Would a WHATWG/BSD parser read this host as an IPv4 number? True when
 * its last label is all digits or 0x-hex. */
static int
looks_numeric_v4(const char *h)
{
	const char *last = strrchr(h, '.');
	size_t i = 0;

	last = last ? last + 1 : h;
	if (last[0] == '\0')
		return 0;
	if (last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
		for (i = 2; last[i] != '\0'; i++)
			if (!isxdigit((unsigned char)last[i]))
				return 0;
		return 1;
	}
	for (; last[i] != '\0'; i++)
		if (!isdigit((unsigned char)last[i]))
			return 0;
	return 1;
}

static int
in_list(const char *s, const char *const *list, size_t n, int glob)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i] != NULL && (glob ? pc_policy_glob(list[i], s) :
		    strcmp(list[i], s) == 0))
			return 1;
	return 0;
}

int
pc_policy_url_check(const char *url, size_t len,
    const char *const *schemes, size_t nschemes,
    const char *const *hosts, size_t nhosts)
{
	return pc_policy_url_check_memo(url, len, schemes, nschemes, hosts,
	    nhosts, NULL);
}

int
pc_policy_url_check_memo(const char *url, size_t len,
    const char *const *schemes, size_t nschemes,
    const char *const *hosts, size_t nhosts, struct pc_url_memo *memo)
{
	static const char *const defaults[] = { "http", "https" };
	char scheme[32], host[HOST_MAX];
	const char *p, *end, *auth, *aend, *hs, *he;
	size_t i, n;
	uint64_t port;
	int v6 = 0;

	if (url == NULL || len == 0 || len > PC_POLICY_MAX_URL)
		return PC_E_DENIED;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];

		/* No controls, spaces, backslashes or non-ASCII anywhere:
		 * parsers disagree on all of them. */
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return PC_E_DENIED;
	}
	end = url + len;

	/* scheme */
	for (p = url; p < end && *p != ':'; p++) {
		if (!(isalpha((unsigned char)*p) || (p > url &&
		    (isdigit((unsigned char)*p) || *p == '+' || *p == '-' ||
		    *p == '.'))))
			return PC_E_DENIED;
	}
	n = (size_t)(p - url);
	if (n == 0 || n >= sizeof(scheme) || end - p < 3 ||
	    memcmp(p, "://", 3) != 0)
		return PC_E_DENIED;
	for (i = 0; i < n; i++)
		scheme[i] = (char)tolower((unsigned char)url[i]);
	scheme[n] = '\0';
	if (nschemes == 0 ? !in_list(scheme, defaults, 2, 0) :
	    !in_list(scheme, schemes, nschemes, 0))
		return PC_E_DENIED;

	/* authority: up to the first '/', '?' or '#' */
	auth = p + 3;
	for (aend = auth; aend < end && *aend != '/' && *aend != '?' &&
	    *aend != '#'; aend++)
		if (*aend == '@' || *aend == '%')
			return PC_E_DENIED;	/* userinfo, encoded host */
	if (aend == auth)
		return PC_E_DENIED;
	if (*auth == '[') {
		hs = auth + 1;
		for (he = hs; he < aend && *he != ']'; he++)
			if (!(isxdigit((unsigned char)*he) || *he == ':' ||
			    *he == '.'))
				return PC_E_DENIED;	/* no zone ids */
		if (he == aend)
			return PC_E_DENIED;
		p = he + 1;
		v6 = 1;
	} else {
		hs = auth;
		for (he = hs; he < aend && *he != ':'; he++)
			if (!(isalnum((unsigned char)*he) || *he == '-' ||
			    *he == '.' || *he == '_'))
				return PC_E_DENIED;
		p = he;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= sizeof(host))
		return PC_E_DENIED;
	if (p < aend) {
		char pbuf[8];
		size_t pl = (size_t)(aend - p - 1);

		if (*p != ':' || pl == 0 || pl >= sizeof(pbuf))
			return PC_E_DENIED;
		memcpy(pbuf, p + 1, pl);
		pbuf[pl] = '\0';
		if (pc_parse_u64(pbuf, 1, 65535, &port) != 0)
			return PC_E_DENIED;
	}
	for (i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)hs[i]);
	host[n] = '\0';
	if (!v6 && (host[n - 1] == '.' || host[0] == '.' ||
	    strstr(host, "..") != NULL))
		return PC_E_DENIED;	/* "a.com." would dodge the allow-list */

	if (nhosts > 0 && !in_list(host, hosts, nhosts, 1))
		return PC_E_DENIED;

	if (v6)
		return addrs_ok(host, 1);
	{
		struct in_addr a4;

		if (inet_pton(AF_INET, host, &a4) == 1)
			return addrs_ok(host, 1);
	}
	if (looks_numeric_v4(host))
		return PC_E_DENIED;	/* non-canonical IPv4 spelling */
	/* Numbers are read at once; a name may take the resolver seconds,
	 * which the caller with a memo spends off the loop. */
	return memo != NULL ? memo_get(memo, host) : addrs_ok(host, 0);
}
