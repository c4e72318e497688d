/*
 * Host name lookups off the event loop.
 *
 * getaddrinfo() blocks for as long as the name's DNS servers take (seconds,
 * and an attacker can choose a name whose server never answers). Run on the
 * loop, one such lookup stalls every client of the gateway. Here it runs on
 * a few worker threads; the answer comes back on the loop.
 *
 * Workers start on first use (a gateway without URL constraints has none),
 * at most PC_RESOLVE_THREADS; lookups beyond them wait in a queue of at most
 * PC_RESOLVE_QUEUE, and past that are refused (PC_E_LIMIT): the caller
 * fails closed. A lookup stuck in the resolver keeps its worker until the
 * resolver gives up on its own; the caller bounds its own wait with a timer
 * and cancels.
 */
#ifndef PC_RESOLVE_H
#define PC_RESOLVE_H

#include <netdb.h>

#include "limits.h"

struct event_base;
struct pc_resolver;
struct pc_lookup;

/* 0, PC_E_NOMEM or PC_E_IO. */
int pc_resolver_new(struct event_base *base, struct pc_resolver **out);
/* Accepts NULL. Lookups still pending are dropped (their callbacks never
 * run); workers blocked in getaddrinfo() finish on their own and exit.
 * Every handle is invalid afterwards. */
void pc_resolver_free(struct pc_resolver *r);

/*
 * Look host up (AF_UNSPEC, SOCK_STREAM, flags as given). done(arg, gai,
 * res) runs later on the loop, never from inside this call: gai is
 * getaddrinfo()'s return, res its list (NULL on failure), valid only
 * during the callback. *out gets the handle for pc_lookup_cancel(), valid
 * until done runs or the lookup is cancelled.
 * 0, PC_E_INVAL (host too long or empty), PC_E_LIMIT (queue full) or
 * PC_E_NOMEM.
 */
int pc_resolve(struct pc_resolver *r, const char *host, int flags,
    void (*done)(void *arg, int gai, const struct addrinfo *res), void *arg,
    struct pc_lookup **out);
/* Its callback will not run. Accepts NULL. */
void pc_lookup_cancel(struct pc_lookup *l);

#endif
