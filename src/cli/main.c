/*
 * The portcullis command.
 *
 *   portcullis serve [-c FILE] [--log-level LEVEL]
 *   portcullis check -c FILE [--print]
 *   portcullis version
 *   portcullis help | --help
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "../audit/audit.h"
#include "../authn/authn.h"
#include "../config/config.h"
#include "../http/http.h"
#include "../http/tls.h"
#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/limits.h"
#include "../lib/util.h"
#include "../lib/version.h"
#include "../limits/limit_db.h"
#include "../limits/limiter.h"
#include "../mcp/router.h"
#include "../secrets/redact.h"
#include "../stdio/stdio_front.h"
#include "audit_cli.h"
#include "key_events.h"
#include "keys.h"

static const char usage[] =
"Usage: portcullis COMMAND [OPTIONS]\n"
"\n"
"A security gateway for the Model Context Protocol: one Streamable HTTP\n"
"endpoint on 127.0.0.1 in front of many stdio MCP servers, for 2025 (session)\n"
"and 2026-07-28 (stateless) clients alike.\n"
"\n"
"Commands:\n"
"  serve [-c FILE] [--log-level LEVEL]\n"
"        Run the gateway. Without -c it runs on its embedded defaults\n"
"        (127.0.0.1:8080, admin 127.0.0.1:8081, no upstreams).\n"
"        Signals: SIGTERM/SIGINT drain in-flight calls, stop the upstreams\n"
"        and exit; SIGHUP reloads FILE (an invalid file keeps the running\n"
"        config and logs why).\n"
"  stdio -c FILE [--log-level LEVEL]\n"
"        Serve one MCP client on standard input/output (a desktop client's\n"
"        single server) with the same upstreams, policy, limits and audit\n"
"        log; the caller is the local user (principal stdio:<login>).\n"
"        Refused when the config says mode: production. Logs stay on\n"
"        standard error.\n"
"  check -c FILE [--print]\n"
"        Validate FILE without starting anything. Every error is printed\n"
"        as file:line:col: message. --print shows the effective config\n"
"        with secrets redacted. Exit 0 when valid, 1 when not.\n"
"  keys create|list|show|rotate|revoke|grant|ungrant -c FILE ...\n"
"        Manage API keys in the store named by the config (see\n"
"        `portcullis keys --help` and docs/keys.md).\n"
"  audit verify|tail|query ...\n"
"        Check the hash chain of audit files (names the first bad record),\n"
"        follow them, or search them (see `portcullis audit --help` and\n"
"        docs/audit.md).\n"
"  version\n"
"        Print the version.\n"
"  help, --help, -h\n"
"        This text.\n"
"\n"
"Options:\n"
"  -c, --config FILE     YAML configuration (see docs/config.md)\n"
"  --log-level LEVEL     debug | info | warn | error (overrides the file)\n"
"  --print               with check: print the effective configuration\n"
"\n"
"Endpoints (serve):\n"
"  POST/GET/DELETE http://127.0.0.1:8080/mcp   the MCP endpoint\n"
"  GET http://127.0.0.1:8081/healthz           liveness\n"
"  GET http://127.0.0.1:8081/readyz            every upstream started\n"
"\n"
"Logs are JSON lines on standard error. Exit status: 0 ok, 1 runtime or\n"
"validation error, 2 usage error.\n";

struct serve_ctx {
	struct event_base *base;
	struct pc_router *router;
	struct pc_http *http;
	struct pc_authn *authn;
	struct pc_audit *audit;		/* NULL without `audit:` */
	struct pc_key_events *key_events;	/* store -> audit, or NULL */
	struct pc_stdio_front *stdio;	/* `portcullis stdio`, else NULL */
	struct pc_limiter *limiter;	/* the limits stage (either front) */
	struct pc_limit_db *limit_db;	/* its saved counters, or NULL */
	struct event *limit_save;	/* periodic snapshot */
	uint64_t limit_saved;		/* pc_limiter_changes() at the last */
	const char *path;		/* NULL: embedded defaults */
	const char *log_override;
	struct pc_config **configs;	/* every config ever loaded: the
					 * supervisors borrow the first */
	size_t nconfigs;
	int stopping;
	struct event *sigs[4];
};

static void audit_event(struct serve_ctx *sc, const char *event,
    const char *reason);
static int open_limit_db(struct serve_ctx *sc, const struct pc_config *cfg,
    bool load);

/*
 * The gateway's own log never carries a secret it knows: every value behind
 * a ${env:} / ${file:} reference, and bearer tokens and API keys by shape,
 * are replaced in each line before it is written. Upstream stderr is
 * forwarded to this log, so this also covers a child that prints its
 * credentials.
 */
static struct pc_redactor *log_redactor;

static char *
log_filter(void *arg, const char *line, size_t len, bool cut)
{
	return pc_redact_text_head(arg, line, len, cut);
}

/*
 * The gateway's own log redaction: the newest config's sensitive key
 * names, and the secrets of every config loaded so far, newest first.
 * Upstreams started under an older config keep its secrets (the values
 * behind its ${env:}/${file:} references) after a reload, and may print
 * them: rotating a secret and reloading must not let the old value reach
 * the log in clear. An old value that no longer fits is logged as such.
 */
static int
install_log_redaction(struct pc_config *const *cfgs, size_t n)
{
	const struct pc_config *cfg = cfgs[n - 1];
	struct pc_redactor *r;

	if (pc_redactor_new(&r) != 0)
		return PC_E_NOMEM;
	for (size_t i = 0; i < cfg->nsecrets; i++)
		if (pc_redactor_add_value(r, cfg->secrets[i],
		    strlen(cfg->secrets[i])) != 0) {
			pc_redactor_free(r);
			return PC_E_NOMEM;
		}
	for (size_t c = n - 1, full = 0; c-- > 0 && !full;)
		for (size_t i = 0; i < cfgs[c]->nsecrets && !full; i++) {
			int rc = pc_redactor_add_value(r, cfgs[c]->secrets[i],
			    strlen(cfgs[c]->secrets[i]));
			if (rc == PC_E_LIMIT) {
				pc_warn("log redaction: too many secrets; "
				    "values of older configurations are no "
				    "longer redacted");
				full = 1;
			} else if (rc != 0) {
				pc_redactor_free(r);
				return PC_E_NOMEM;
			}
		}
	/* Names validated at load; LIMIT (too many) is refused there too. */
	for (size_t i = 0; i < cfg->nredact_keys; i++)
		if (pc_redactor_add_key(r, cfg->redact_keys[i]) != 0) {
			pc_redactor_free(r);
			return PC_E_NOMEM;
		}
	pc_log_set_filter(log_filter, r);
	pc_redactor_free(log_redactor);
	log_redactor = r;
	return 0;
}

static int
apply_log_level(const struct pc_config *cfg, const char *override)
{
	enum pc_log_level lvl;
	const char *name = override ? override : cfg->log_level;

	if (name == NULL)
		return 0;
	if (pc_log_level_parse(name, &lvl) != 0)
		return PC_E_INVAL;
	pc_log_set_level(lvl);
	return 0;
}

/* Load the config; report errors as plain lines (check) or as JSON log
 * records (serve, where stderr is a log stream). */
static int
load(const char *path, struct pc_config **out, int as_log)
{
	struct pc_config_errors errs = { 0 };
	int rc;

	if (path == NULL)
		return pc_config_default(out);
	rc = pc_config_load(path, out, &errs);
	if (rc != 0 && !as_log) {
		if (errs.n > 0)
			pc_config_errors_print(&errs, stderr);
		else
			fprintf(stderr, "%s: %s\n", path, pc_strerror(rc));
	} else if (rc != 0) {
		for (size_t i = 0; i < errs.n; i++)
			pc_error("config: %s:%u:%u: %s", errs.v[i].file,
			    errs.v[i].line, errs.v[i].col, errs.v[i].msg);
		if (errs.n == 0)
			pc_error("config: %s: %s", path, pc_strerror(rc));
	}
	pc_config_errors_free(&errs);
	return rc;
}

static void
shutdown_done(void *arg)
{
	struct serve_ctx *sc = arg;

	pc_info("all upstreams stopped; exiting");
	event_base_loopexit(sc->base, NULL);
}

static void
begin_shutdown(struct serve_ctx *sc)
{
	sc->stopping = 1;
	pc_info("shutting down: draining in-flight calls");
	audit_event(sc, "gateway.stopping", NULL);
	if (sc->http != NULL)
		pc_http_stop_accepting(sc->http);
	pc_router_shutdown(sc->router, shutdown_done, sc);
}

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* Whether a reload left the audit section as it was (the running log is
 * not reopened: a change takes effect at the next start). */
static bool
audit_cfg_same(const struct pc_audit_cfg *a, const struct pc_audit_cfg *b)
{
	return a->enabled == b->enabled && same_str(a->dir, b->dir) &&
	    a->key_len == b->key_len && (a->key_len == 0 ||
	    pc_ct_equal(a->key, b->key, a->key_len)) &&
	    a->strict == b->strict && a->group_delay_ms == b->group_delay_ms &&
	    a->max_file_bytes == b->max_file_bytes &&
	    a->max_file_age_s == b->max_file_age_s &&
	    a->retention_days == b->retention_days &&
	    same_str(a->syslog_socket, b->syslog_socket) &&
	    same_str(a->syslog_tcp, b->syslog_tcp) &&
	    a->syslog_facility == b->syslog_facility &&
	    a->flood_burst == b->flood_burst &&
	    a->flood_per_s == b->flood_per_s &&
	    a->flood_global_per_s == b->flood_global_per_s;
}

/*
 * Why a valid new config cannot be applied by a reload, or NULL. The
 * listeners are bound once, at start, with the first config: a reload
 * that moved them, or switched TLS on or off, would leave the sockets as
 * they are while the new config was judged by what it says — a public
 * listener could come back with `auth: none` judged "loopback". And
 * `portcullis stdio` refuses production mode at start, so at a reload too.
 */
static const char *
reload_refused(const struct serve_ctx *sc, const struct pc_config *run,
    const struct pc_config *n)
{
	if (!same_str(run->listen.address, n->listen.address) ||
	    run->listen.port != n->listen.port)
		return "listen changed";
	if (!same_str(run->admin.address, n->admin.address) ||
	    run->admin.port != n->admin.port)
		return "admin_listen changed";
	if (run->tls.enabled != n->tls.enabled)
		return "tls was switched on or off";
	if (sc->stdio != NULL && n->mode == PC_MODE_PRODUCTION)
		return "mode: production is refused for portcullis stdio";
	return NULL;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct serve_ctx *sc = arg;

	(void)what;
	if (sig == SIGHUP) {
		struct pc_config *ncfg = NULL, **grown;
		if (sc->path == NULL) {
			pc_info("reload: running on embedded defaults; nothing "
			    "to reload");
			return;
		}
		if (load(sc->path, &ncfg, 1) != 0) {
			pc_error("reload: the new configuration is invalid "
			    "(errors above); keeping the running one");
			audit_event(sc, "config.reload_failed", "config.invalid");
			return;
		}
		const char *why = reload_refused(sc, sc->configs[0], ncfg);
		const char *code = "config.restart_needed";
		char terr[256] = "";
		struct pc_tls *probe = NULL;
		/* TLS material that does not load refuses the whole reload:
		 * applying the rest while the old certificate, key and client
		 * CA stay would leave a configuration nobody wrote. */
		if (why == NULL && sc->http != NULL && ncfg->tls.enabled) {
			if (pc_tls_new(&ncfg->tls, &probe, terr,
			    sizeof(terr)) != 0) {
				pc_error("reload: TLS: %s", terr);
				why = "the TLS certificate, key or client CA "
				    "does not load";
				code = "tls.invalid";
			}
			pc_tls_free(probe);
		}
		if (why != NULL) {
			pc_error("reload: %s; keeping the running configuration%s",
			    why, strcmp(code, "tls.invalid") != 0 ?
			    " (restart to apply it)" : "");
			pc_config_free(ncfg);
			audit_event(sc, "config.reload_failed", code);
			return;
		}
		struct pc_authn *nauthn = NULL;
		char err[256];
		if (sc->http != NULL &&
		    pc_authn_new(sc->base, ncfg, &nauthn, err, sizeof(err)) != 0) {
			pc_error("reload: authentication: %s; keeping the running "
			    "configuration", err);
			pc_config_free(ncfg);
			return;
		}
		grown = realloc(sc->configs, (sc->nconfigs + 1) * sizeof(*grown));
		if (grown == NULL) {
			pc_authn_free(nauthn);
			pc_config_free(ncfg);
			pc_error("reload: out of memory; keeping the running "
			    "configuration");
			return;
		}
		sc->configs = grown;
		sc->configs[sc->nconfigs++] = ncfg;
		/* The new secrets must be redacted before anything can log
		 * them: without their redactor, the new config does not
		 * start. */
		if (install_log_redaction(sc->configs, sc->nconfigs) != 0) {
			sc->nconfigs--;
			pc_authn_free(nauthn);
			pc_config_free(ncfg);
			pc_error("reload: out of memory building log redaction; "
			    "keeping the running configuration");
			audit_event(sc, "config.reload_failed", "redaction.nomem");
			return;
		}
		/* The old redactor is gone: hand the front the new one
		 * before the loop runs again. */
		if (sc->http != NULL)
			pc_http_set_redactor(sc->http, log_redactor);
		pc_router_set_redactor(sc->router, log_redactor);
		if (sc->stdio != NULL)
			pc_stdio_front_set_audit(sc->stdio, sc->audit,
			    log_redactor);
		apply_log_level(ncfg, sc->log_override);
		if (sc->limiter != NULL) {
			/* Counters of limits that still exist carry over; a
			 * new limits_store needs a restart. A store opened
			 * only now (the gateway started without limits) is
			 * loaded first: its first save would wipe the
			 * counters an earlier run saved. */
			if (pc_limiter_set_config(sc->limiter, &ncfg->limiter,
			    pc_wall_us(), err, sizeof(err)) != 0)
				pc_error("reload: limits: %s; keeping the running "
				    "limits", err);
			else if (open_limit_db(sc, ncfg, true) != 0)
				pc_error("reload: limits: counters will not be "
				    "saved until a restart");
		}
		pc_router_set_config(sc->router, ncfg);
		if (sc->stdio != NULL)
			pc_stdio_front_set_config(sc->stdio, ncfg);
		if (sc->http != NULL) {
			pc_http_set_config(sc->http, ncfg);
			pc_http_set_authn(sc->http, nauthn);
			/* The copier borrows the old store: drain it, then
			 * follow the new one (the cursor is in the store). */
			pc_key_events_free(sc->key_events);
			sc->key_events = NULL;
			pc_authn_free(sc->authn);
			sc->authn = nauthn;
			if (sc->audit != NULL && pc_authn_store(nauthn) != NULL &&
			    pc_key_events_start(sc->base, pc_authn_store(nauthn),
			    sc->audit, &sc->key_events) != 0)
				pc_error("reload: key events will not reach the "
				    "audit log until a restart (out of memory)");
		}
		/* The audit section itself is not reapplied: the running log
		 * keeps its directory, key and settings until a restart. Say
		 * so, in the log and in the record of the reload. */
		/* Against the config the log was opened with: a second
		 * reload with the same change is still not applied. */
		bool audit_same = audit_cfg_same(&sc->configs[0]->audit,
		    &ncfg->audit);
		if (!audit_same)
			pc_warn("reload: the audit section changed; the running "
			    "audit log keeps its directory, key and settings "
			    "until a restart");
		pc_info("reload: configuration %s applied", sc->path);
		audit_event(sc, "config.reloaded", audit_same ? NULL :
		    "audit.restart_needed");
		return;
	}
	if (sc->stopping) {
		pc_warn("second signal: exiting now");
		event_base_loopbreak(sc->base);
		return;
	}
	begin_shutdown(sc);
}

static void
on_stdio_eof(void *arg)
{
	struct serve_ctx *sc = arg;

	if (!sc->stopping)
		begin_shutdown(sc);
}

static void
on_ready(void *arg)
{
	struct serve_ctx *sc = arg;

	pc_info("ready");
	if (sc->stdio != NULL)
		pc_stdio_front_start(sc->stdio);
}

/*
 * A security event in the audit log (no-op without one). A failed write
 * puts the log in its failed state, which the front turns into refusals.
 */
static void
audit_event_up(struct serve_ctx *sc, const char *event, const char *reason,
    const char *upstream)
{
	struct pc_audit_request r = {
		.type = "event", .event = event, .reason = reason,
		.upstream = upstream,
		.latency_us = -1, .bytes_in = -1, .bytes_out = -1,
	};

	/* No reply waits for an event, in strict mode either. */
	if (sc->audit != NULL && pc_audit_write_request(sc->audit, &r,
	    pc_audit_strict(sc->audit) ? pc_audit_no_wait : NULL, NULL) != 0)
		pc_error("audit: cannot record event %s", event);
}

static void
audit_event(struct serve_ctx *sc, const char *event, const char *reason)
{
	audit_event_up(sc, event, reason, NULL);
}

static void
on_router_event(void *arg, const char *event, const char *upstream)
{
	audit_event_up(arg, event, NULL, upstream);
}

/*
 * Open the audit log named by the configuration, creating its directory
 * (0700) when missing. The gateway does not start without it: an operator
 * who asked for an audit trail gets one or a clear error.
 */
static int
open_audit(struct serve_ctx *sc, const struct pc_config *cfg)
{
	struct pc_audit_conf ac = {
		.dir = cfg->audit.dir,
		.key = (const unsigned char *)cfg->audit.key,
		.key_len = cfg->audit.key_len,
		.max_file_bytes = cfg->audit.max_file_bytes,
		.max_file_age_s = cfg->audit.max_file_age_s,
		.retention_days = cfg->audit.retention_days,
		.fsync_mode = cfg->audit.strict ? PC_AUDIT_FSYNC_STRICT :
		    PC_AUDIT_FSYNC_GROUP,
		.group_delay_ms = cfg->audit.group_delay_ms,
	};
	struct pc_audit_syslog_conf sc_syslog = {
		.socket = cfg->audit.syslog_socket,
		.tcp = cfg->audit.syslog_tcp,
		.facility = cfg->audit.syslog_facility,
	};
	char err[256];
	int rc;

	if (sc_syslog.socket != NULL || sc_syslog.tcp != NULL)
		ac.syslog = &sc_syslog;
	if (mkdir(cfg->audit.dir, 0700) != 0 && errno != EEXIST) {
		pc_error("audit: cannot create the log directory: %s",
		    strerror(errno));
		return PC_E_IO;
	}
	rc = pc_audit_open(sc->base, &ac, &sc->audit, err, sizeof(err));
	if (rc != 0) {
		pc_error("audit: %s", err);
		return rc;
	}
	pc_info("audit log open (%s, group commit %u ms)%s%s",
	    cfg->audit.strict ? "strict: replies wait for their fsync" :
	    "group: replies do not wait for the fsync",
	    (unsigned)cfg->audit.group_delay_ms, ac.syslog ? "; a copy to "
	    "syslog " : "", ac.syslog ? (sc_syslog.socket ? sc_syslog.socket :
	    sc_syslog.tcp) : "");
	return 0;
}

/* Write the counters if anything was charged since the last snapshot. */
static void
limits_save(struct serve_ctx *sc)
{
	uint64_t ch;

	if (sc->limit_db == NULL || sc->limiter == NULL)
		return;
	ch = pc_limiter_changes(sc->limiter);
	if (ch == sc->limit_saved)
		return;
	if (pc_limit_db_save(sc->limit_db, sc->limiter, pc_wall_us()) == 0)
		sc->limit_saved = ch;
}

static void
on_limit_save(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	limits_save(arg);
}

/* Open the counters' store named by cfg (once per process) and start the
 * periodic snapshot. */
static int
open_limit_db(struct serve_ctx *sc, const struct pc_config *cfg, bool load)
{
	struct timeval tv = { PC_LIMIT_SAVE_INTERVAL_MS / 1000u,
	    (PC_LIMIT_SAVE_INTERVAL_MS % 1000u) * 1000u };
	size_t restored = 0, dropped = 0;
	char err[256];
	int rc;

	if (cfg->limiter.store == NULL || sc->limit_db != NULL)
		return 0;
	rc = pc_limit_db_open(cfg->limiter.store, &sc->limit_db, err,
	    sizeof(err));
	if (rc != 0) {
		pc_error("limits: %s", err);
		return rc;
	}
	if (load) {
		rc = pc_limit_db_load(sc->limit_db, sc->limiter, pc_wall_us(),
		    &restored, &dropped);
		if (rc != 0)
			return rc;
		pc_info("limits: %zu saved counter(s) restored, %zu dropped "
		    "(expired or no longer configured)", restored, dropped);
	}
	sc->limit_saved = pc_limiter_changes(sc->limiter);
	sc->limit_save = event_new(sc->base, -1, EV_PERSIST, on_limit_save, sc);
	if (sc->limit_save == NULL || event_add(sc->limit_save, &tv) != 0)
		return PC_E_NOMEM;
	return 0;
}

/* The limits stage: rate limits, budgets, breakers, caps. */
static int
open_limits(struct serve_ctx *sc, const struct pc_config *cfg)
{
	char err[256];
	int rc;

	rc = pc_limiter_new(&cfg->limiter, &sc->limiter, err, sizeof(err));
	if (rc != 0) {
		pc_error("limits: %s", err);
		return rc;
	}
	return open_limit_db(sc, cfg, true);
}

/* serve (HTTP front) or, with stdio_mode, the stdio front end. */
static int
cmd_serve(const char *path, const char *log_override, int stdio_mode)
{
	struct serve_ctx sc = { 0 };
	struct pc_config *cfg = NULL;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	int rc, status = 1;

	/* No core dumps and no ptrace by other users: the process will hold
	 * secrets (upstream credentials) in memory. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit must fail the write (EFBIG: the audit log then
	 * fails closed and says why), not kill the gateway mid-request. */
	signal(SIGXFSZ, SIG_IGN);

	if (load(path, &cfg, 1) != 0)
		return 1;
	if (install_log_redaction(&cfg, 1) != 0) {
		fprintf(stderr, "portcullis: out of memory\n");
		pc_config_free(cfg);
		return 1;
	}
	if (apply_log_level(cfg, log_override) != 0) {
		fprintf(stderr, "portcullis: invalid log level\n");
		pc_config_free(cfg);
		return 2;
	}
	sc.path = path;
	sc.log_override = log_override;
	sc.configs = calloc(1, sizeof(*sc.configs));
	if (sc.configs == NULL) {
		pc_config_free(cfg);
		return 1;
	}
	sc.configs[sc.nconfigs++] = cfg;
	sc.base = event_base_new();
	if (sc.base == NULL)
		goto out;
	for (size_t i = 0; i < 3; i++) {
		sc.sigs[i] = evsignal_new(sc.base, sigs[i], on_signal, &sc);
		if (sc.sigs[i] == NULL || evsignal_add(sc.sigs[i], NULL) != 0)
			goto out;
	}
	rc = pc_router_new(sc.base, cfg, &sc.router);
	if (rc != 0) {
		pc_error("cannot create the router: %s", pc_strerror(rc));
		goto out;
	}
	pc_router_on_ready(sc.router, on_ready, &sc);
	pc_router_set_redactor(sc.router, log_redactor);
	if (cfg->policy == NULL && cfg->nupstreams > 0)
		pc_warn("no policy: section: nothing is granted, so no tool, "
		    "prompt or resource is listed or callable (deny by "
		    "default; docs/policy.md)");
	for (size_t i = 0; i < cfg->nupstreams; i++)
		if (cfg->upstreams[i].argv_secret)
			pc_warn("upstream '%s': a ${env:}/${file:} reference in "
			    "its command puts the value where every local user "
			    "can read it (ps, /proc); pass it in env instead "
			    "(production mode refuses this)",
			    cfg->upstreams[i].name);
	if (stdio_mode) {
		/* The local user's calls are audited and limited like
		 * anyone's. */
		if (cfg->audit.enabled && open_audit(&sc, cfg) != 0)
			goto out;
		if (open_limits(&sc, cfg) != 0)
			goto out;
		rc = pc_stdio_front_new(sc.base, cfg, sc.router, STDIN_FILENO,
		    STDOUT_FILENO, on_stdio_eof, &sc, &sc.stdio);
		if (rc != 0)
			goto out;
		pc_stdio_front_set_audit(sc.stdio, sc.audit, log_redactor);
		pc_stdio_front_set_limiter(sc.stdio, sc.limiter);
		pc_info("portcullis %s serving one MCP client on stdio with %zu "
		    "upstream(s)", PC_VERSION, cfg->nupstreams);
		audit_event(&sc, "gateway.started", NULL);
		pc_router_on_event(sc.router, on_router_event, &sc);
		pc_router_start(sc.router);
		event_base_dispatch(sc.base);
		goto done;
	}
	{
		char err[256];
		rc = pc_authn_new(sc.base, cfg, &sc.authn, err, sizeof(err));
		if (rc != 0) {
			pc_error("authentication: %s", err);
			goto out;
		}
	}
	if (cfg->audit.enabled && open_audit(&sc, cfg) != 0)
		goto out;
	/* Key lifecycle events the `keys` CLI left in the store. */
	if (sc.audit != NULL && pc_authn_store(sc.authn) != NULL &&
	    pc_key_events_start(sc.base, pc_authn_store(sc.authn), sc.audit,
	    &sc.key_events) != 0)
		goto out;
	if (open_limits(&sc, cfg) != 0)
		goto out;
	if (cfg->auth.none)
		pc_warn("authentication is OFF (auth: none): every local process "
		    "can use the upstreams; for development on loopback only");
	rc = pc_http_new(sc.base, cfg, sc.router, sc.authn, &sc.http);
	if (rc != 0)
		goto out;
	pc_http_set_audit(sc.http, sc.audit);
	pc_http_set_limiter(sc.http, sc.limiter);
	pc_http_set_redactor(sc.http, log_redactor);
	rc = pc_http_start(sc.http);
	if (rc != 0)
		goto out;
	pc_info("portcullis %s starting with %zu upstream(s) from %s",
	    PC_VERSION, cfg->nupstreams, cfg->path ? cfg->path : "<embedded>");
	audit_event(&sc, "gateway.started", NULL);
	pc_router_on_event(sc.router, on_router_event, &sc);
	pc_router_start(sc.router);
	event_base_dispatch(sc.base);
done:
	/* Shutdown is under way: a further TERM (an impatient supervisor)
	 * must not kill us halfway through cleanup. libevent restores the
	 * default handlers when the signal events go, so free them first. */
	for (size_t i = 0; i < 3; i++) {
		event_free(sc.sigs[i]);
		sc.sigs[i] = NULL;
	}
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	status = 0;
out:
	pc_stdio_front_free(sc.stdio);
	pc_http_free(sc.http);
	pc_router_free(sc.router);
	/* Every call has ended: the counters are final. */
	limits_save(&sc);
	if (sc.limit_save != NULL)
		event_free(sc.limit_save);
	pc_limit_db_close(sc.limit_db);
	pc_limiter_free(sc.limiter);
	/* After the front and the router: every answered request is in. */
	pc_key_events_free(sc.key_events);
	pc_audit_close(sc.audit);
	pc_authn_flush(sc.authn);
	pc_authn_free(sc.authn);
	for (size_t i = 0; i < 3; i++)
		if (sc.sigs[i] != NULL)
			event_free(sc.sigs[i]);
	if (sc.base != NULL)
		event_base_free(sc.base);
	for (size_t i = 0; i < sc.nconfigs; i++)
		pc_config_free(sc.configs[i]);
	free(sc.configs);
	pc_log_set_filter(NULL, NULL);
	pc_redactor_free(log_redactor);
	log_redactor = NULL;
	libevent_global_shutdown();
	return status;
}

static int
cmd_stdio(const char *path, const char *log_override)
{
	struct pc_config *cfg = NULL;
	int production;

	if (path == NULL) {
		fprintf(stderr, "portcullis stdio: -c FILE is required\n");
		return 2;
	}
	if (load(path, &cfg, 0) != 0)
		return 1;
	production = cfg->mode == PC_MODE_PRODUCTION;
	pc_config_free(cfg);
	/* stdio has no transport security and no authentication: not in
	 * production (seed 002: "Disable stdio in production"). */
	if (production) {
		fprintf(stderr, "portcullis stdio: refused: %s says mode: "
		    "production, where the stdio front end is disabled; use the "
		    "HTTPS endpoint\n", path);
		return 1;
	}
	return cmd_serve(path, log_override, 1);
}

static int
cmd_check(const char *path, int print)
{
	struct pc_config *cfg = NULL;

	if (path == NULL) {
		fprintf(stderr, "portcullis check: -c FILE is required\n");
		return 2;
	}
	if (load(path, &cfg, 0) != 0)
		return 1;
	if (print)
		pc_config_dump(cfg, stdout);
	else
		printf("%s: ok (%zu upstream(s))\n", path, cfg->nupstreams);
	pc_config_free(cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *cmd, *path = NULL, *log_level = NULL;
	int print = 0;

	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "keys") == 0)
		return pc_cli_keys(argc - 1, argv + 1);
	if (strcmp(cmd, "audit") == 0)
		return pc_cli_audit(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("portcullis %s\n", PC_VERSION);
		return 0;
	}
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 ||
		    strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
			log_level = argv[++i];
		} else if (strcmp(argv[i], "--print") == 0) {
			print = 1;
		} else if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "portcullis: unknown option '%s'\n\n%s",
			    argv[i], usage);
			return 2;
		}
	}
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(path, log_level, 0);
	if (strcmp(cmd, "stdio") == 0)
		return cmd_stdio(path, log_level);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(path, print);
	fprintf(stderr, "portcullis: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
