/*
 * Spawning upstream children, and the one SIGCHLD handler that reaps them.
 *
 * Spawn hygiene (see docs/upstream.md): fork + execve, never a shell; the
 * environment is exactly the declared entries plus the inherited names; the
 * program is searched in the CHILD's PATH (the gateway's PATH is not the
 * child's business); every descriptor but 0/1/2 closed at exec; signal
 * dispositions and mask reset; its own session (so its own process group,
 * which is what shutdown signals); PR_SET_PDEATHSIG so a crashed gateway
 * does not leave orphans. Everything the child needs is built before fork:
 * between fork and exec only async-signal-safe calls are made.
 *
 * Exec failure travels back through a close-on-exec pipe: EOF means exec
 * succeeded, a struct spawn_report means it did not.
 */
#include "upstream_int.h"

#include "lib/errors.h"
#include "lib/log.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* PATH for a child whose environment has none: what execvp would use,
 * minus the current directory. */
#define UP_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* Most program candidates tried from the child's PATH. */
#define UP_MAX_PATH_DIRS 64u

/* Descriptors closed one by one when close_range() is unavailable. */
#define UP_FALLBACK_MAX_FD 65536L

enum spawn_stage { ST_SETUP = 1, ST_CHDIR, ST_EXEC };

struct spawn_report {
	int stage;
	int err;
};

/* ---- the SIGCHLD registry ------------------------------------------------ */

/*
 * Several upstreams share one loop and one signal: a SIGCHLD says "some
 * child changed", not which. The handler therefore polls every registered
 * upstream's pid with WNOHANG. Only our own pids are waited for, so other
 * children of the process (if any) are left to whoever spawned them.
 */
#define UP_MAX_BASES 8

static TAILQ_HEAD(, pc_upstream) registry = TAILQ_HEAD_INITIALIZER(registry);
static struct {
	struct event_base *base;
	struct event *ev;
	unsigned refs;
} sig_bases[UP_MAX_BASES];

static void
reap_all(void)
{
	struct pc_upstream *up, *next;
	int status;

	/* up_child_exited may free nothing (free is deferred while busy),
	 * but may remove `up` from the registry via free: fetch next first
	 * and restart the scan after each reap to stay safe. */
again:
	for (up = TAILQ_FIRST(&registry); up != NULL; up = next) {
		next = TAILQ_NEXT(up, reg_link);
		if (up->pid <= 0)
			continue;
		pid_t r = waitpid(up->pid, &status, WNOHANG);
		if (r == up->pid || (r < 0 && errno == ECHILD)) {
			if (r < 0)
				status = 0;
			/* Helpers it forked live in its process group; the
			 * group id stays reserved while any member lives. */
			kill(-up->pid, SIGKILL);
			up->pid = 0;
			up_enter(up);
			up_child_exited(up, status);
			up_leave(up);
			goto again;
		}
	}
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	reap_all();
}

int
up_registry_add(struct pc_upstream *up)
{
	int free_slot = -1;

	/* A gateway daemon never wants SIGPIPE: a child that closes stdin
	 * must show up as EPIPE on write, not kill us. Respect a handler the
	 * application installed; children get SIG_DFL back before exec. */
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
	for (int i = 0; i < UP_MAX_BASES; i++) {
		if (sig_bases[i].base == up->base) {
			sig_bases[i].refs++;
			TAILQ_INSERT_TAIL(&registry, up, reg_link);
			return 0;
		}
		if (sig_bases[i].base == NULL && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return PC_E_LIMIT;
	struct event *ev = evsignal_new(up->base, SIGCHLD, on_sigchld, NULL);
	if (ev == NULL)
		return PC_E_NOMEM;
	if (evsignal_add(ev, NULL) != 0) {
		event_free(ev);
		return PC_E_IO;
	}
	sig_bases[free_slot].base = up->base;
	sig_bases[free_slot].ev = ev;
	sig_bases[free_slot].refs = 1;
	TAILQ_INSERT_TAIL(&registry, up, reg_link);
	return 0;
}

void
up_registry_del(struct pc_upstream *up)
{
	TAILQ_REMOVE(&registry, up, reg_link);
	for (int i = 0; i < UP_MAX_BASES; i++) {
		if (sig_bases[i].base != up->base)
			continue;
		if (--sig_bases[i].refs == 0) {
			event_free(sig_bases[i].ev);
			sig_bases[i].base = NULL;
			sig_bases[i].ev = NULL;
		}
		return;
	}
}

/* ---- building what the child needs --------------------------------------- */

struct spawn_plan {
	char **envp;		/* NULL-terminated; strings borrowed */
	char **progs;		/* candidate paths, owned */
	size_t nprogs;
};

static void
plan_free(struct spawn_plan *p)
{
	free(p->envp);
	for (size_t i = 0; i < p->nprogs; i++)
		free(p->progs[i]);
	free(p->progs);
}

static bool
env_has_name(char *const *envp, size_t n, const char *name, size_t nlen)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], name, nlen) == 0 && envp[i][nlen] == '=')
			return true;
	return false;
}

/* The child's environment: declared entries win over inherited ones of
 * the same name; inherited names missing from our environment are skipped.
 * Strings are borrowed from conf and environ, which outlive the fork. */
static int
plan_env(const struct pc_upstream_conf *conf, struct spawn_plan *p)
{
	size_t nenv = 0, ninh = 0, n = 0;

	for (char **e = conf->env; e != NULL && *e != NULL; e++)
		nenv++;
	for (char **e = conf->inherit_env; e != NULL && *e != NULL; e++)
		ninh++;
	p->envp = calloc(nenv + ninh + 1, sizeof(char *));
	if (p->envp == NULL)
		return PC_E_NOMEM;
	for (size_t i = 0; i < nenv; i++)
		p->envp[n++] = conf->env[i];
	for (size_t i = 0; i < ninh; i++) {
		const char *name = conf->inherit_env[i];
		size_t nlen = strlen(name);
		if (nlen == 0 || env_has_name(p->envp, n, name, nlen))
			continue;
		for (char **g = environ; g != NULL && *g != NULL; g++) {
			if (strncmp(*g, name, nlen) == 0 && (*g)[nlen] == '=') {
				p->envp[n++] = *g;
				break;
			}
		}
	}
	p->envp[n] = NULL;
	return 0;
}

static int
plan_add_prog(struct spawn_plan *p, const char *dir, size_t dlen,
    const char *prog)
{
	size_t plen = strlen(prog);

	if (p->nprogs >= UP_MAX_PATH_DIRS || dlen + 1 + plen + 1 > PATH_MAX)
		return 0;	/* ignored, like an unusable PATH entry */
	char *s = malloc(dlen + 1 + plen + 1);
	if (s == NULL)
		return PC_E_NOMEM;
	memcpy(s, dir, dlen);
	s[dlen] = '/';
	memcpy(s + dlen + 1, prog, plen + 1);
	p->progs[p->nprogs++] = s;
	return 0;
}

static int
plan_progs(const char *prog, struct spawn_plan *p)
{
	const char *path = UP_DEFAULT_PATH;
	int rc;

	p->progs = calloc(UP_MAX_PATH_DIRS, sizeof(char *));
	if (p->progs == NULL)
		return PC_E_NOMEM;
	if (strchr(prog, '/') != NULL) {
		p->progs[0] = strdup(prog);
		if (p->progs[0] == NULL)
			return PC_E_NOMEM;
		p->nprogs = 1;
		return 0;
	}
	for (char **e = p->envp; *e != NULL; e++) {
		if (strncmp(*e, "PATH=", 5) == 0) {
			path = *e + 5;
			break;
		}
	}
	/* An empty PATH element means the current directory (POSIX), and a
	 * relative one a directory under it: both skipped. The working
	 * directory is the upstream's `cwd`, often a tree agents may write
	 * to (a filesystem server's root); a program planted there must not
	 * run in place of the one the config names. */
	for (const char *s = path;;) {
		const char *colon = strchr(s, ':');
		size_t len = colon ? (size_t)(colon - s) : strlen(s);
		rc = len == 0 || s[0] != '/' ? 0 : plan_add_prog(p, s, len, prog);
		if (rc != 0)
			return rc;
		if (colon == NULL)
			break;
		s = colon + 1;
	}
	return 0;
}

/* ---- the child side ------------------------------------------------------- */

static void __attribute__((noreturn))
child_fail(int repfd, int stage, int err)
{
	struct spawn_report rep = { stage, err };
	ssize_t w;

	do {
		w = write(repfd, &rep, sizeof(rep));
	} while (w < 0 && errno == EINTR);
	_exit(127);
}

/* Move fd to `target` without ever clobbering another pipe end that may
 * sit on 0..2 (a gateway started with closed stdio gets low numbers). */
static int
child_lift(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static void __attribute__((noreturn))
child_main(const struct pc_upstream_conf *conf, const struct spawn_plan *plan,
    int in_rd, int out_wr, int err_wr, int repfd, pid_t parent)
{
	struct sigaction sa;
	sigset_t none;
	int fds[3];
	int err = ENOENT;

	/* Handlers first, then the mask: a signal pending in the parent's
	 * blocked set must not run a parent handler here. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL);	/* fails harmlessly for KILL/STOP */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (setsid() < 0)
		child_fail(repfd, ST_SETUP, errno);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != parent)
		_exit(127);	/* the gateway died before we got here */

	fds[0] = child_lift(in_rd);
	fds[1] = child_lift(out_wr);
	fds[2] = child_lift(err_wr);
	for (int i = 0; i < 3; i++) {
		if (fds[i] < 0 || dup2(fds[i], i) < 0)
			child_fail(repfd, ST_SETUP, errno);
	}
	if (conf->cwd != NULL && chdir(conf->cwd) < 0)
		child_fail(repfd, ST_CHDIR, errno);

	/* Mark everything above stderr close-on-exec (the report pipe already
	 * is), so exec closes them and a failed exec can still report. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		if (max < 0 || max > UP_FALLBACK_MAX_FD)
			max = UP_FALLBACK_MAX_FD;
		for (int fd = 3; fd < max; fd++)
			if (fd != repfd)
				close(fd);
	}

	/* Like execvpe: keep going past entries that do not hold the
	 * program; remember EACCES, which says more than ENOENT. */
	for (size_t i = 0; i < plan->nprogs; i++) {
		execve(plan->progs[i], conf->argv, plan->envp);
		if (errno == EACCES)
			err = EACCES;
		else if (errno != ENOENT && errno != ENOTDIR)
			err = errno;
		if (err != ENOENT && err != EACCES)
			break;
	}
	child_fail(repfd, ST_EXEC, err);
}

/* ---- the parent side ------------------------------------------------------ */

static void
close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

int
up_spawn(struct pc_upstream *up)
{
	const struct pc_upstream_conf *conf = up->conf;
	struct spawn_plan plan = { 0 };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int rep[2] = { -1, -1 };
	sigset_t all, old;
	struct spawn_report report;
	ssize_t r;
	pid_t pid;
	int rc;

	rc = plan_env(conf, &plan);
	if (rc == 0)
		rc = plan_progs(conf->argv[0], &plan);
	if (rc != 0)
		goto out;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		pc_error("upstream '%s': pipe: %s", conf->name, strerror(errno));
		rc = PC_E_SPAWN;
		goto out;
	}

	pid_t self = getpid();
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_main(conf, &plan, in[0], out[1], errp[1], rep[1], self);
	int fork_errno = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		pc_error("upstream '%s': fork: %s", conf->name,
		    strerror(fork_errno));
		rc = PC_E_SPAWN;
		goto out;
	}

	close(rep[1]);
	rep[1] = -1;
	/* Blocks only until the child execs or fails, both immediate. */
	do {
		r = read(rep[0], &report, sizeof(report));
	} while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof(report)) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (report.stage == ST_EXEC)
			pc_error("upstream '%s': cannot execute '%s': %s",
			    conf->name, conf->argv[0], strerror(report.err));
		else if (report.stage == ST_CHDIR)
			pc_error("upstream '%s': cannot change directory to "
			    "'%s': %s", conf->name, conf->cwd,
			    strerror(report.err));
		else
			pc_error("upstream '%s': child setup failed: %s",
			    conf->name, strerror(report.err));
		rc = PC_E_SPAWN;
		goto out;
	}

	up->pid = pid;
	up->generation++;
	up->attr_blocked_until_ms = 0;	/* a new child owes nothing old */
	up->fd_in = in[1];
	up->fd_out = out[0];
	up->fd_err = errp[0];
	in[1] = out[0] = errp[0] = -1;
	rc = up_io_open(up);
	if (rc != 0) {
		up_kill_group(up, SIGKILL);
		up_reap_blocking(up);
		up_io_close(up);
		goto out;
	}
	/* Every spawn is logged (MCP security best practice for proxies
	 * that start stdio servers), in a form tests and operators can parse. */
	json_t *f = json_pack("{s:s, s:I}", "upstream", conf->name, "pid",
	    (json_int_t)pid);
	pc_log_fields(PC_LOG_INFO, __func__, "upstream spawned", f);
	json_decref(f);
out:
	close_pair(in);
	close_pair(out);
	close_pair(errp);
	close_pair(rep);
	plan_free(&plan);
	return rc;
}

void
up_kill_group(struct pc_upstream *up, int sig)
{
	if (up->pid <= 0)
		return;
	/* The child is a session leader, so its pgid is its pid; signalling
	 * the group reaches helpers it forked too. Fall back to the pid if
	 * the group is already gone (the leader is a zombie-less exit race). */
	if (kill(-up->pid, sig) < 0)
		kill(up->pid, sig);
}

/* How long a child killed with SIGKILL may take to be reaped. */
#define UP_REAP_WAIT_MS 2000

/*
 * Reap a child just sent SIGKILL. It dies at once unless it sleeps in the
 * kernel (a hung NFS or FUSE mount), where no signal reaches it: then the
 * gateway gives up after UP_REAP_WAIT_MS rather than hang for ever (at
 * shutdown, before the audit log is closed), and says so.
 */
void
up_reap_blocking(struct pc_upstream *up)
{
	int st;

	if (up->pid <= 0)
		return;
	for (int waited = 0;; waited += 10) {
		pid_t r = waitpid(up->pid, &st, WNOHANG);

		if (r == up->pid || (r < 0 && errno != EINTR))
			break;
		if (waited >= UP_REAP_WAIT_MS) {
			pc_error("upstream '%s': process %ld did not die within "
			    "%d ms of SIGKILL (stuck in the kernel?); left "
			    "behind", up->conf->name, (long)up->pid,
			    UP_REAP_WAIT_MS);
			break;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	up->pid = 0;
}

void
up_log_exit(const struct pc_upstream *up, int status, bool expected)
{
	const char *name = up->conf->name;

	if (expected && WIFEXITED(status))
		pc_info("upstream '%s': exited with status %d", name,
		    WEXITSTATUS(status));
	else if (WIFEXITED(status))
		pc_warn("upstream '%s': exited with status %d", name,
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		pc_warn("upstream '%s': killed by signal %d (%s)", name,
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		pc_warn("upstream '%s': ended (wait status 0x%x)", name,
		    (unsigned)status);
}
