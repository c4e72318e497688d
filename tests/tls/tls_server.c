/*
 * A minimal HTTPS server on pc_tls, for scanning the TLS settings with
 * testssl.sh without the whole gateway (tests/tls/testssl.sh builds and
 * runs it). Every request gets 200 "ok\n" with the HSTS header; SIGHUP
 * reloads the same files, SIGTERM/SIGINT stop it. Binds 127.0.0.1 only.
 *
 *   tls_server PORT CERT KEY [CLIENT_CA optional|required]
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/tls.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

struct srv {
	struct event_base *base;
	struct pc_tls *tls;
	struct pc_tls_conf conf;
};

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char v[64];

	if (pc_tls_hsts(s->tls, v, sizeof(v)) == 0)
		evhttp_add_header(h, "Strict-Transport-Security", v);
	evhttp_add_header(h, "Content-Type", "text/plain");
	evbuffer_add(b, "ok\n", 3);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct srv *s = arg;
	char err[512];
	int rc;

	(void)what;
	if (sig != SIGHUP) {
		event_base_loopbreak(s->base);
		return;
	}
	rc = pc_tls_reload(s->tls, &s->conf, err, sizeof(err));
	if (rc != 0)
		pc_error("reload failed, keeping the old context: %s", err);
	else
		pc_info("reloaded");
}

int
main(int argc, char **argv)
{
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	struct evhttp *http = NULL;
	struct srv s;
	uint64_t port;
	char err[512];
	int rc = 1;

	memset(&s, 0, sizeof(s));
	if ((argc != 4 && argc != 6) ||
	    pc_parse_u64(argv[1], 1, 65535, &port) != 0) {
		fprintf(stderr, "usage: tls_server PORT CERT KEY "
		    "[CLIENT_CA optional|required]\n");
		return 2;
	}
	s.conf.enabled = true;
	s.conf.cert_file = argv[2];
	s.conf.key_file = argv[3];
	s.conf.min_version = 12;
	s.conf.hsts_max_age_s = 31536000;
	if (argc == 6) {
		s.conf.client_ca_file = argv[4];
		s.conf.client_auth = strcmp(argv[5], "required") == 0 ?
		    PC_CLIENT_AUTH_REQUIRED : PC_CLIENT_AUTH_OPTIONAL;
	}
	signal(SIGPIPE, SIG_IGN);
	if (pc_tls_new(&s.conf, &s.tls, err, sizeof(err)) != 0) {
		pc_error("%s", err);
		goto out;
	}
	s.base = event_base_new();
	if (s.base == NULL || (http = evhttp_new(s.base)) == NULL)
		goto out;
	pc_tls_attach(s.tls, http);
	evhttp_set_gencb(http, on_request, &s);
	if (evhttp_bind_socket(http, "127.0.0.1", (uint16_t)port) != 0) {
		pc_error("cannot bind 127.0.0.1:%u", (unsigned)port);
		goto out;
	}
	ev_term = evsignal_new(s.base, SIGTERM, on_signal, &s);
	ev_int = evsignal_new(s.base, SIGINT, on_signal, &s);
	ev_hup = evsignal_new(s.base, SIGHUP, on_signal, &s);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL)
		goto out;
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	pc_info("listening on 127.0.0.1:%u", (unsigned)port);
	event_base_dispatch(s.base);
	rc = 0;
out:
	if (ev_term != NULL)
		event_free(ev_term);
	if (ev_int != NULL)
		event_free(ev_int);
	if (ev_hup != NULL)
		event_free(ev_hup);
	if (http != NULL)
		evhttp_free(http);
	pc_tls_free(s.tls);
	if (s.base != NULL)
		event_base_free(s.base);
	return rc;
}
