/*
 * The stdio front end: one MCP client on standard input and output (a
 * desktop client that spawns `portcullis stdio -c FILE` as its only
 * server), served by the same router, policy and upstreams as the HTTP
 * front. Newline-delimited JSON-RPC, both eras: `initialize` opens the one
 * legacy session; a request carrying the modern `_meta` envelope is served
 * statelessly.
 *
 * The caller is the local user who started the process: the principal is
 * "stdio:<login name>". The front is refused in production mode (stdio has
 * no transport security and no authentication of its own).
 */
#ifndef PC_STDIO_FRONT_H
#define PC_STDIO_FRONT_H

#include "../config/config.h"

struct event_base;
struct pc_router;
struct pc_stdio_front;

/*
 * Start reading fd_in and writing fd_out. `on_eof(arg)` runs once when the
 * client closes its side (the caller then shuts down). cfg and router are
 * borrowed. 0, PC_E_NOMEM, PC_E_IO.
 */
int pc_stdio_front_new(struct event_base *base, const struct pc_config *cfg,
    struct pc_router *router, int fd_in, int fd_out,
    void (*on_eof)(void *), void *arg, struct pc_stdio_front **out);
void pc_stdio_front_free(struct pc_stdio_front *f);

/*
 * Record every outcome in `audit` (borrowed; NULL: none) the way the HTTP
 * front does — requests, notifications (accepted), initialize, refusals —
 * each answer held until its record is written, and nothing served once
 * the log has failed. Arguments are recorded redacted by `redactor`
 * (borrowed; NULL: not recorded). Call again after a reload (new
 * redactor).
 */
/* A reloaded configuration (borrowed; configs live as long as the
 * process): its limits and eras apply from the next line on. */
void pc_stdio_front_set_config(struct pc_stdio_front *f,
    const struct pc_config *cfg);

struct pc_audit;
struct pc_redactor;
void pc_stdio_front_set_audit(struct pc_stdio_front *f, struct pc_audit *audit,
    const struct pc_redactor *redactor);

/* The limits stage (borrowed; NULL: none): rate limits, budgets,
 * breakers and caps apply to the local user's calls as to an HTTP
 * client's (the principal stdio:<login> is the key); a refusal is the
 * JSON-RPC error -32009 with data {reason, limit, retryAfter}. */
struct pc_limiter;
void pc_stdio_front_set_limiter(struct pc_stdio_front *f,
    struct pc_limiter *l);

/* Start reading requests. Called once the router is ready: the client
 * spawned us and expects the upstreams' tools on its first request. */
void pc_stdio_front_start(struct pc_stdio_front *f);

#endif
