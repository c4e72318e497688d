/*
 * TLS for the MCP listener (OpenSSL 3 through bufferevent_openssl): TLS 1.2
 * minimum (1.3 only if configured), modern AEAD suites, no renegotiation, no
 * compression, tickets off unless enabled (then rotated keys), optional or
 * required client certificates against a CA bundle. The SSL_CTX is rebuilt
 * on reload; connections keep the one they started with.
 */
#ifndef PC_TLS_H
#define PC_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"

struct evhttp;
struct evhttp_connection;
struct pc_tls;

/* The clock session-ticket keys age by: pc_now_ms. A test hook (as
 * audit_fdatasync is): only tests assign it, before any TLS context. */
extern uint64_t (*pc_tls_now_ms)(void);

/* Build from conf (borrowed only during the call). 0, PC_E_CONFIG (bad or
 * unreadable file, key readable by group/others, key not matching the
 * certificate: message in err, no secret in it), PC_E_NOMEM. */
int pc_tls_new(const struct pc_tls_conf *conf, struct pc_tls **out,
    char *err, size_t errlen);
void pc_tls_free(struct pc_tls *t);

/* Swap in a new context for new connections. On error the old one stays.
 * Same returns as pc_tls_new. */
int pc_tls_reload(struct pc_tls *t, const struct pc_tls_conf *conf,
    char *err, size_t errlen);

/* The bufferevent of a new TLS connection (for evhttp_set_bevcb): the
 * context in force now, fd set later by evhttp. Never NULL (aborts rather
 * than serve cleartext on a TLS listener). */
struct event_base;
struct bufferevent *pc_tls_bev_new(struct pc_tls *t, struct event_base *base);
/* Make `http` speak TLS on every new connection (its bevcb; the gateway
 * sets its own, which counts connections: tests and tools use this). */
void pc_tls_attach(struct pc_tls *t, struct evhttp *http);

/* The Strict-Transport-Security value for replies on this listener
 * ("max-age=N"), written into out (caller's buffer, 32 bytes is plenty).
 * 0, PC_E_NOTFOUND when HSTS is off (hsts_max_age_s 0), PC_E_LIMIT if out
 * is too small. Follows reloads. */
int pc_tls_hsts(const struct pc_tls *t, char *out, size_t outlen);

/*
 * The verified client certificate's identity on this connection: the first
 * SAN URI (e.g. spiffe://...), else the first SAN DNS name, else the
 * subject CN; and, when not_after is not NULL, the certificate's notAfter
 * (unix seconds). 0 and out filled; PC_E_NOTFOUND when there is no
 * verified client certificate (or the connection is not TLS); PC_E_DENIED
 * when it has expired since the handshake (a kept-alive connection
 * outlives its certificate: the handshake's verdict no longer holds).
 */
int pc_tls_peer_identity(struct evhttp_connection *evcon, char *out,
    size_t outlen, int64_t *not_after);

#endif
