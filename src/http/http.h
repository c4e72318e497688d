/*
 * The HTTP front: the MCP endpoint (Streamable HTTP, both eras) and the
 * admin listener (/healthz, /readyz), on libevent's evhttp.
 *
 * Everything that depends on HTTP lives here: request hygiene (sizes,
 * Accept, Content-Type, Host and Origin), era classification, the modern
 * header/body cross-checks, legacy session headers, and turning router
 * output into a JSON body or an SSE stream. The router never sees HTTP.
 */
#ifndef PC_HTTP_H
#define PC_HTTP_H

#include "../config/config.h"

struct event_base;
struct pc_router;
struct pc_http;

struct pc_authn;

/* cfg, router and authn borrowed. 0 or PC_E_NOMEM. */
int pc_http_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_router *router, struct pc_authn *authn, struct pc_http **out);

/* Use another authenticate stage from now on (reload). */
void pc_http_set_authn(struct pc_http *h, struct pc_authn *authn);
/* The audit log requests are recorded in (borrowed; NULL: none). With it,
 * a result is answered only once its record is written. */
struct pc_audit;
void pc_http_set_audit(struct pc_http *h, struct pc_audit *audit);
/* The redactor applied to tool arguments before they are recorded
 * (borrowed; set it again whenever the caller replaces it). */
struct pc_redactor;
void pc_http_set_redactor(struct pc_http *h, const struct pc_redactor *r);

/* The limits stage (borrowed, lives as long as the front; NULL: none). */
struct pc_limiter;
void pc_http_set_limiter(struct pc_http *h, struct pc_limiter *l);

/*
 * Set up TLS when configured, bind the MCP and admin listeners and log
 * {"msg":"listening",...} with the actual ports. 0, PC_E_IO (bind failed;
 * logged with the address), PC_E_CONFIG (refused address, TLS files
 * unusable: logged).
 */
int pc_http_start(struct pc_http *h);

/* Use a reloaded config for limits, allow-lists and the TLS certificate
 * from now on. A certificate that cannot be loaded keeps the old one
 * (logged). */
void pc_http_set_config(struct pc_http *h, const struct pc_config *cfg);

/* Stop accepting new connections (graceful shutdown, first step). */
void pc_http_stop_accepting(struct pc_http *h);

/* Requests still being answered. */
unsigned pc_http_active(const struct pc_http *h);

void pc_http_free(struct pc_http *h);	/* accepts NULL */

#endif
