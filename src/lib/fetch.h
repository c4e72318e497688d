/*
 * Outbound HTTP GET on the event loop (libcurl multi, driven by libevent).
 *
 * Used for documents the gateway needs from elsewhere (a JWKS, an
 * authorization server's metadata). Deliberately narrow: GET only, https
 * (or plain http to a loopback address), no redirects, no cookies, no
 * credentials, no content decoding, a body size cap and a deadline.
 */
#ifndef PC_FETCH_H
#define PC_FETCH_H

#include <stddef.h>

struct event_base;
struct pc_fetcher;

/*
 * Completion. rc is 0 when a response arrived (whatever its status), or
 * PC_E_LIMIT (body over max_bytes), PC_E_TIMEOUT, PC_E_IO (connect, TLS,
 * protocol). status is the HTTP status (0 when none). body is NUL-
 * terminated, borrowed for the call only, NULL when rc != 0. Called from the
 * event loop, never from inside pc_fetch_get. It may start another fetch
 * but must not free the fetcher.
 */
typedef void (*pc_fetch_done_fn)(void *arg, int rc, long status,
    const char *body, size_t len);

/* New fetcher on base (borrowed, must outlive it). NULL on OOM or when
 * libcurl cannot be initialised. Caller frees with pc_fetcher_free. */
struct pc_fetcher *pc_fetcher_new(struct event_base *base);

/* Aborts every transfer in flight without calling their callbacks.
 * Accepts NULL. */
void pc_fetcher_free(struct pc_fetcher *f);

/*
 * Is url one we would fetch? https with a host, or http whose host is a
 * loopback literal (127.0.0.0/8, [::1]) or "localhost"; no user or password
 * in it. 0, or PC_E_DENIED with a reason (no URL bytes) in err.
 */
int pc_fetch_url_check(const char *url, char *err, size_t errlen);

/*
 * Start GET url. 0 when started (done will be called exactly once, unless
 * the fetcher is freed first); PC_E_DENIED (url refused by
 * pc_fetch_url_check), PC_E_INVAL, PC_E_NOMEM, PC_E_IO (libcurl refused)
 * otherwise, and done is never called. timeout_s bounds the whole transfer.
 */
int pc_fetch_get(struct pc_fetcher *f, const char *url, size_t max_bytes,
    unsigned timeout_s, pc_fetch_done_fn done, void *arg);

/* Transfers in flight (for tests and readiness). */
unsigned pc_fetch_pending(const struct pc_fetcher *f);

#endif
