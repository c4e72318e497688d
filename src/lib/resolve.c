/*
 * Host name lookups on worker threads; see resolve.h.
 *
 * The state the workers touch (queue, finished list, eventfd) lives in a
 * shared block counted by the resolver and by each worker, so a worker
 * still blocked in getaddrinfo() when the resolver is freed finds it intact
 * and frees it if it is the last. Workers never log and never touch a
 * caller's memory: the callback runs on the loop, when the loop collects
 * the finished list.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "errors.h"
#include "limits.h"
#include "resolve.h"

enum state { QUEUED, RUNNING, FINISHED };

struct shared;

struct pc_lookup {
	struct shared *s;
	char host[PC_RESOLVE_HOST_MAX];
	int flags;
	/* under mu: */
	enum state state;
	int gai;
	struct addrinfo *res;
	struct pc_lookup *next;		/* queue or finished list */
	/* loop only: */
	void (*done)(void *, int, const struct addrinfo *);	/* NULL:
					 * cancelled */
	void *arg;
};

struct shared {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	/* under mu: */
	struct pc_lookup *qhead, *qtail;	/* waiting for a worker */
	struct pc_lookup *finished;		/* waiting for the loop */
	unsigned queued, workers, idle, refs;
	bool stop;				/* the resolver is gone */
	int efd;				/* worker -> loop */
};

struct pc_resolver {
	struct shared *s;
	struct event *ev;
};

static void
lookup_free(struct pc_lookup *l)
{
	if (l->res != NULL)
		freeaddrinfo(l->res);
	free(l);
}

/* Drop one reference (mu held); the last one frees the block. */
static void
unref_locked(struct shared *s)
{
	if (--s->refs > 0) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_mutex_unlock(&s->mu);
	close(s->efd);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void *
worker(void *arg)
{
	struct shared *s = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct pc_lookup *l;
		struct addrinfo hints;

		while (!s->stop && s->qhead == NULL) {
			s->idle++;
			pthread_cond_wait(&s->wake, &s->mu);
			s->idle--;
		}
		if (s->stop)
			break;
		l = s->qhead;
		s->qhead = l->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		s->queued--;
		l->next = NULL;
		l->state = RUNNING;
		pthread_mutex_unlock(&s->mu);

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = l->flags;
		l->gai = getaddrinfo(l->host, NULL, &hints, &l->res);
		if (l->gai != 0)
			l->res = NULL;

		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			lookup_free(l);
			break;
		}
		l->state = FINISHED;
		l->next = s->finished;
		s->finished = l;
		/* Cannot fail short of a bad descriptor: the counter stays far
		 * from its limit. */
		if (write(s->efd, &one, sizeof(one)) < 0)
			abort();
	}
	s->workers--;
	unref_locked(s);
	return NULL;
}

/* Run the callbacks of finished lookups (on the loop). */
static void
collect(evutil_socket_t fd, short what, void *arg)
{
	struct pc_resolver *r = arg;
	struct shared *s = r->s;
	struct pc_lookup *l, *list, *rev = NULL;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&s->mu);
	list = s->finished;
	s->finished = NULL;
	pthread_mutex_unlock(&s->mu);
	/* Oldest first. */
	while (list != NULL) {
		l = list;
		list = l->next;
		l->next = rev;
		rev = l;
	}
	while (rev != NULL) {
		l = rev;
		rev = l->next;
		if (l->done != NULL)
			l->done(l->arg, l->gai, l->res);
		lookup_free(l);
	}
}

int
pc_resolver_new(struct event_base *base, struct pc_resolver **out)
{
	struct pc_resolver *r;
	struct shared *s;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	s = calloc(1, sizeof(*s));
	if (r == NULL || s == NULL) {
		free(r);
		free(s);
		return PC_E_NOMEM;
	}
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0) {
		free(r);
		free(s);
		return PC_E_IO;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	s->refs = 1;
	r->s = s;
	r->ev = event_new(base, s->efd, EV_READ | EV_PERSIST, collect, r);
	if (r->ev == NULL || event_add(r->ev, NULL) != 0) {
		pc_resolver_free(r);
		return PC_E_NOMEM;
	}
	*out = r;
	return 0;
}

void
pc_resolver_free(struct pc_resolver *r)
{
	struct shared *s;
	struct pc_lookup *l;

	if (r == NULL)
		return;
	s = r->s;
	if (r->ev != NULL)
		event_free(r->ev);
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	while ((l = s->qhead) != NULL) {
		s->qhead = l->next;
		lookup_free(l);
	}
	s->qtail = NULL;
	while ((l = s->finished) != NULL) {
		s->finished = l->next;
		lookup_free(l);
	}
	pthread_cond_broadcast(&s->wake);
	/* Running lookups are freed by their workers. */
	unref_locked(s);
	free(r);
}

/* Start one more worker (mu held). Signals are blocked in it: they belong
 * to the loop's thread. */
static int
spawn_locked(struct shared *s)
{
	pthread_attr_t at;
	pthread_t t;
	sigset_t all, old;
	int rc;

	if (pthread_attr_init(&at) != 0)
		return PC_E_NOMEM;
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &at, worker, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	if (rc != 0)
		return PC_E_NOMEM;
	s->workers++;
	s->refs++;
	return 0;
}

int
pc_resolve(struct pc_resolver *r, const char *host, int flags,
    void (*done)(void *, int, const struct addrinfo *), void *arg,
    struct pc_lookup **out)
{
	struct shared *s = r->s;
	struct pc_lookup *l;
	size_t n = host != NULL ? strlen(host) : 0;

	*out = NULL;
	if (n == 0 || n >= PC_RESOLVE_HOST_MAX || done == NULL)
		return PC_E_INVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return PC_E_NOMEM;
	l->s = s;
	memcpy(l->host, host, n + 1);
	l->flags = flags;
	l->done = done;
	l->arg = arg;
	pthread_mutex_lock(&s->mu);
	if (s->queued >= PC_RESOLVE_QUEUE) {
		pthread_mutex_unlock(&s->mu);
		free(l);
		return PC_E_LIMIT;
	}
	/* A worker for every lookup waiting, up to the cap; none at all
	 * could start: refuse rather than queue for ever. */
	if (s->idle <= s->queued && s->workers < PC_RESOLVE_THREADS &&
	    spawn_locked(s) != 0 && s->workers == 0) {
		pthread_mutex_unlock(&s->mu);
		free(l);
		return PC_E_NOMEM;
	}
	l->state = QUEUED;
	if (s->qtail != NULL)
		s->qtail->next = l;
	else
		s->qhead = l;
	s->qtail = l;
	s->queued++;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	*out = l;
	return 0;
}

void
pc_lookup_cancel(struct pc_lookup *l)
{
	struct shared *s;

	if (l == NULL)
		return;
	s = l->s;
	pthread_mutex_lock(&s->mu);
	if (l->state == QUEUED) {
		/* Not started: no worker spends its time on it. */
		struct pc_lookup **pp = &s->qhead, *prev = NULL;

		while (*pp != l) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		*pp = l->next;
		if (s->qtail == l)
			s->qtail = prev;
		s->queued--;
		pthread_mutex_unlock(&s->mu);
		lookup_free(l);
		return;
	}
	pthread_mutex_unlock(&s->mu);
	/* Running or finished: the resolver frees it when it is collected
	 * (or the worker, after pc_resolver_free); only the callback is
	 * dropped. */
	l->done = NULL;
	l->arg = NULL;
}
