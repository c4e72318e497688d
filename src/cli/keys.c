/*
 * `portcullis keys`: the operator's side of API keys.
 *
 * A new or rotated key is printed once, alone on its stdout line, so that a
 * script can capture it and a human sees nothing else mixed into it; every
 * note goes to stderr. Keys are named on the command line by their public
 * id only: a secret never has to appear in a shell history.
 */
#include "keys.h"
#include "cliopt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "../authn/apikey.h"
#include "../config/config.h"
#include "../lib/errors.h"
#include "../lib/log.h"
#include "../lib/limits.h"
#include "../lib/util.h"
#include "../store/store.h"

#define EXIT_USAGE 2
/* --expires: past ten years a value is a typo, not a policy.
 * (local limit; candidate for src/lib/limits.h) */
#define KEYS_MAX_EXPIRES_S (3650ull * 86400ull)
/* --grace: an old secret that keeps working for longer than a month is
 * not rotated. (local limit; candidate for src/lib/limits.h) */
#define KEYS_MAX_GRACE_S (30ull * 86400ull)
/* rotation_days from the config is capped the same way. */
#define KEYS_MAX_ROTATION_DAYS 3650u
/* Longest time-boxed grant: an elevation, not a role assignment. */
#define KEYS_MAX_GRANT_S (90u * 86400u)
/* One role name. */
#define KEYS_MAX_ROLE 64u

static const char usage_text[] =
"Usage: portcullis keys COMMAND -c FILE [OPTIONS]\n"
"\n"
"Manage API keys in the store named by auth.api_keys in FILE.\n"
"\n"
"Commands:\n"
"  create -c FILE --principal NAME [--tenant NAME] [--roles R1,R2]\n"
"         [--description TEXT] [--expires DURATION] [--json]\n"
"        Create a key. The full key is printed once on stdout, alone on\n"
"        its line; it cannot be shown again.\n"
"  list -c FILE [--json]\n"
"        The key inventory: id, principal, tenant, roles, description,\n"
"        age, last use, status, rotation due (OVERDUE when past).\n"
"  show -c FILE ID [--json]\n"
"        One key's details.\n"
"  rotate -c FILE ID [--grace DURATION] [--json]\n"
"        Issue a new secret for ID, printed once like create. The old\n"
"        secret keeps working for DURATION (default 0: it stops now).\n"
"        Resets the rotation due date.\n"
"  revoke -c FILE ID\n"
"        Revoke ID. A running gateway refuses it from its next request.\n"
"  grant -c FILE ID ROLE --for DURATION\n"
"        Give ID the role ROLE for DURATION (a time-boxed elevation):\n"
"        it ends by itself, without a restart. Granting a held role again\n"
"        sets its new end. At most 8 live grants per key.\n"
"  ungrant -c FILE ID ROLE\n"
"        End a grant now.\n"
"\n"
"Options:\n"
"  -c, --config FILE      YAML configuration (auth.api_keys)\n"
"  --principal NAME       who the key authenticates as (1-127 visible chars)\n"
"  --tenant NAME          tenant of the principal (default none)\n"
"  --roles R1,R2          comma-separated roles ([A-Za-z0-9_.:-], 1-64 each)\n"
"  --description TEXT     where the key is deployed (up to 255 bytes)\n"
"  --expires DURATION     the key stops working after DURATION (max 3650d)\n"
"  --grace DURATION       with rotate: how long the old secret still works\n"
"                         (max 30d)\n"
"  --for DURATION         with grant: how long the role is held (max 90d)\n"
"  --json                 machine-readable output (timestamps ISO-8601 UTC)\n"
"\n"
"DURATION is an integer and a unit: s, m, h or d (90s, 15m, 24h, 30d).\n"
"Exit status: 0 ok, 1 failure, 2 usage error.\n";

const char *
pc_cli_keys_usage(void)
{
	return usage_text;
}

struct opts {
	const char *cmd;
	const char *config;
	const char *id;
	const char *principal;
	const char *tenant;
	const char *roles;
	const char *description;
	const char *expires;
	const char *grace;
	const char *for_;	/* grant: --for */
	const char *role;	/* grant, ungrant: second argument */
	bool json;
};

struct env {
	const char *store_path;
	const unsigned char *pepper;
	size_t pepper_len;
	uint32_t rotation_days;
	struct pc_store *st;
	int64_t now;
};

/* --- parsing ------------------------------------------------------------------ */

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* An argument as it may be shown: a key's secret part masked, and cut to
 * 64 bytes. Static storage: one call per message. */
static const char *
shown_arg(const char *a)
{
	static char buf[96];
	const char *k = strstr(a, "pcs_");	/* "-pcs_...", "x=pcs_..." too */
	const char *us = k != NULL ? strchr(k + 4, '_') : NULL;

	if (us != NULL)
		snprintf(buf, sizeof(buf), "%.*s_<secret not shown>",
		    (int)(us - a > 40 ? 40 : us - a), a);
	else
		snprintf(buf, sizeof(buf), "%.64s", a);
	return buf;
}

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("portcullis keys: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nRun 'portcullis keys --help' for usage.\n", stderr);
	return EXIT_USAGE;
}

/*
 * "<digits><unit>" with unit s|m|h|d, at most max seconds, at least min.
 * Strict: no sign, no space, no fraction, no missing unit.
 */
static int
parse_duration(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char num[24];
	size_t n = strnlen(s, sizeof(num));
	uint64_t mult, v;

	if (n < 2 || n >= sizeof(num))
		return PC_E_INVAL;
	switch (s[n - 1]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return PC_E_INVAL;
	}
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	if (pc_parse_u64(num, 0, max / mult, &v) != 0)
		return PC_E_INVAL;
	v *= mult;
	if (v < min || v > max)
		return PC_E_INVAL;
	*out = v;
	return 0;
}

/* Visible ASCII only: names end up in logs, audit records and headers. */
static bool
valid_name(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static bool
valid_roles(const char *s, size_t max)
{
	size_t len = 0;

	if (strnlen(s, max + 1) > max)
		return false;
	for (const char *p = s;; p++) {
		char c = *p;

		if (c == ',' || c == '\0') {
			if (len == 0)
				return *s == '\0';	/* "" = no roles */
			if (c == '\0')
				return true;
			len = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == ':' || c == '-') || ++len > KEYS_MAX_ROLE)
			return false;
	}
}

/* Printable text: no control characters (they would rewrite the
 * operator's terminal in `keys list`), valid UTF-8 (for --json). */
static bool
valid_text(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	json_t *j;

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return false;
	j = json_stringn(s, n);
	if (j == NULL)
		return false;
	json_decref(j);
	return true;
}

static bool
valid_id(const char *s)
{
	if (strnlen(s, PC_KEY_ID_LEN + 1) != PC_KEY_ID_LEN)
		return false;
	return strspn(s, "0123456789abcdef") == PC_KEY_ID_LEN;
}

/* Options may come before or after the subcommand's argument. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct pc_cliopt valued[] = {
		{ "-c", offsetof(struct opts, config) },
		{ "--config", offsetof(struct opts, config) },
		{ "--principal", offsetof(struct opts, principal) },
		{ "--tenant", offsetof(struct opts, tenant) },
		{ "--roles", offsetof(struct opts, roles) },
		{ "--description", offsetof(struct opts, description) },
		{ "--expires", offsetof(struct opts, expires) },
		{ "--grace", offsetof(struct opts, grace) },
		{ "--for", offsetof(struct opts, for_) },
	};

	memset(o, 0, sizeof(*o));
	if (argc < 2)
		return usage_error("%s", "missing command");
	o->cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *what, *why;
		bool done = false;

		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		switch (pc_cliopt_take(valued, sizeof(valued) /
		    sizeof(valued[0]), argc, argv, &i, o, &what, &why)) {
		case 1:
			done = true;
			break;
		case -1:
			return usage_error("%s %s", what, why);
		default:
			break;
		}
		if (done)
			continue;
		if (a[0] == '-' && a[1] != '\0')
			return usage_error("unknown option %s", shown_arg(a));
		if (o->id == NULL)
			o->id = a;
		else if (o->role == NULL)
			o->role = a;
		else
			return usage_error("unexpected argument %s",
			    shown_arg(a));
	}
	return 0;
}

/* Which options each command takes; anything else is a usage error. */
static int
check_args(const struct opts *o)
{
	bool create = strcmp(o->cmd, "create") == 0;
	bool rotate = strcmp(o->cmd, "rotate") == 0;
	bool grant = strcmp(o->cmd, "grant") == 0;
	bool takes_role = grant || strcmp(o->cmd, "ungrant") == 0;
	bool takes_id = !create && strcmp(o->cmd, "list") != 0;

	if (!create && !rotate && !takes_role && strcmp(o->cmd, "list") != 0 &&
	    strcmp(o->cmd, "show") != 0 && strcmp(o->cmd, "revoke") != 0)
		return usage_error("unknown command '%s'",
		    shown_arg(o->cmd));
	if (takes_role && o->role == NULL)
		return usage_error("%s: which role? (%s ID ROLE)", o->cmd,
		    o->cmd);
	if (takes_role && (strchr(o->role, ',') != NULL ||
	    !valid_roles(o->role, KEYS_MAX_ROLE) || o->role[0] == '\0'))
		return usage_error("%s", "ROLE: one name of [A-Za-z0-9_.:-], "
		    "1-64 characters");
	if (!takes_role && o->role != NULL)
		return usage_error("unexpected argument %s",
		    shown_arg(o->role));
	if (grant != (o->for_ != NULL))
		return usage_error("%s", grant ? "grant: --for DURATION is "
		    "required (a grant always ends)" : "--for is for grant");
	if (!create && (o->principal || o->tenant || o->roles ||
	    o->description || o->expires))
		return usage_error("%s: --principal, --tenant, --roles, "
		    "--description and --expires are for create", o->cmd);
	if (!rotate && o->grace)
		return usage_error("%s: --grace is for rotate", o->cmd);
	if (o->json && (strcmp(o->cmd, "revoke") == 0 || takes_role))
		return usage_error("%s: no --json output", o->cmd);
	if (takes_id && o->id == NULL)
		return usage_error("%s: which key? (give its id)", o->cmd);
	/* A whole key pasted where an id belongs must not be echoed: its
	 * secret would land in the terminal's scrollback and the logs of
	 * whatever runs this command. */
	if (!takes_id && o->id != NULL)
		return usage_error("unexpected argument %s", shown_arg(o->id));
	if (takes_id && !valid_id(o->id))
		return usage_error("'%s' is not a key id (16 hex characters; "
		    "the id is the part after pcs_)", shown_arg(o->id));
	if (create) {
		if (o->principal == NULL)
			return usage_error("%s", "create: --principal is "
			    "required");
		if (!valid_name(o->principal, PC_PRINCIPAL_MAX - 1))
			return usage_error("%s", "--principal: 1-127 visible "
			    "ASCII characters, no spaces");
		if (o->tenant && !valid_name(o->tenant, PC_PRINCIPAL_MAX - 1))
			return usage_error("%s", "--tenant: 1-127 visible "
			    "ASCII characters, no spaces");
		if (o->roles && !valid_roles(o->roles, PC_ROLES_MAX - 1))
			return usage_error("%s", "--roles: comma-separated "
			    "names of [A-Za-z0-9_.:-], 1-64 characters each");
		if (o->description && !valid_text(o->description, 255))
			return usage_error("%s", "--description: up to 255 "
			    "bytes of UTF-8 text, no control characters");
	}
	return 0;
}

/* --- formatting ------------------------------------------------------------------ */

/* UTC time t, ISO-8601 to the second or short (to the minute, for the
 * table); the raw number if it cannot be formatted. */
static void
utc_time(int64_t t, bool iso, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	size_t n = 0;

	if (gmtime_r(&tt, &tm) != NULL)
		n = iso ? strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) :
		    strftime(buf, len, "%Y-%m-%d %H:%MZ", &tm);
	if (n == 0)
		snprintf(buf, len, "%" PRId64, t);
}

static void
iso_time(int64_t t, char *buf, size_t len)
{
	utc_time(t, true, buf, len);
}

static void
short_time(int64_t t, char *buf, size_t len)
{
	utc_time(t, false, buf, len);
}

static void
human_age(int64_t secs, char *buf, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%" PRId64 "s", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%" PRId64 "m", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%" PRId64 "h", secs / 3600);
	else
		snprintf(buf, len, "%" PRId64 "d", secs / 86400);
}

enum status { ST_ACTIVE, ST_GRACE, ST_REVOKED, ST_EXPIRED };

static enum status
key_status(const struct pc_key_rec *r, int64_t now)
{
	if (r->revoked_at != 0)
		return ST_REVOKED;
	if (r->expires != 0 && now >= r->expires)
		return ST_EXPIRED;
	if (r->has_prev && now < r->prev_until)
		return ST_GRACE;
	return ST_ACTIVE;
}

static const char *const status_name[] = {
	[ST_ACTIVE] = "active", [ST_GRACE] = "grace",
	[ST_REVOKED] = "revoked", [ST_EXPIRED] = "expired",
};

/* Rotation is only due for keys that still work. */
static bool
overdue(const struct pc_key_rec *r, int64_t now)
{
	enum status s = key_status(r, now);

	return (s == ST_ACTIVE || s == ST_GRACE) && r->rotation_due != 0 &&
	    now >= r->rotation_due;
}

static void
set_time(json_t *o, const char *k, int64_t t)
{
	char buf[40];

	if (t == 0) {
		json_object_set_new(o, k, json_null());
		return;
	}
	iso_time(t, buf, sizeof(buf));
	json_object_set_new(o, k, json_string(buf));
}

static void
set_str_or_null(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, v[0] ? json_string(v) : json_null());
}

static json_t *
roles_array(const char *roles)
{
	json_t *a = json_array();
	const char *p = roles;

	while (a != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		json_array_append_new(a, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	return a;
}

/* Every field but the hashes. New reference, or NULL on OOM. */
static json_t *
rec_json(const struct pc_key_rec *r, int64_t now)
{
	json_t *o = json_object();
	enum status s = key_status(r, now);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "principal", json_string(r->principal));
	set_str_or_null(o, "tenant", r->tenant);
	json_object_set_new(o, "roles", roles_array(r->roles));
	json_object_set_new(o, "description", json_string(r->description));
	json_object_set_new(o, "status", json_string(status_name[s]));
	set_time(o, "created", r->created);
	json_object_set_new(o, "age_s", json_integer(now > r->created ?
	    now - r->created : 0));
	set_time(o, "expires", r->expires);
	set_time(o, "last_used", r->last_used);
	set_str_or_null(o, "last_source", r->last_used ? r->last_source : "");
	set_time(o, "grace_until", s == ST_GRACE ? r->prev_until : 0);
	set_time(o, "revoked_at", r->revoked_at);
	set_time(o, "rotation_due", r->rotation_due);
	json_object_set_new(o, "rotation_overdue", json_boolean(overdue(r,
	    now)));
	return o;
}

static int
print_json(json_t *j)
{
	int rc;

	if (j == NULL) {
		fprintf(stderr, "portcullis keys: out of memory\n");
		return 1;
	}
	rc = json_dumpf(j, stdout, JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(j);
	if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "portcullis keys: cannot write the output\n");
		return 1;
	}
	return 0;
}

enum col {
	C_ID, C_PRINCIPAL, C_TENANT, C_ROLES, C_DESCRIPTION, C_AGE,
	C_LAST_USED, C_STATUS, C_ROTATION, C__COUNT
};

static const char *const col_head[C__COUNT] = {
	"ID", "PRINCIPAL", "TENANT", "ROLES", "DESCRIPTION", "AGE",
	"LAST USED", "STATUS", "ROTATION DUE",
};

/* One table cell. Long free text is cut so one key stays one line. */
static void
cell(const struct pc_key_rec *r, enum col c, int64_t now, char *buf,
    size_t len)
{
	char t[40];

	switch (c) {
	case C_ID:
		snprintf(buf, len, "%s", r->id);
		break;
	case C_PRINCIPAL:
		snprintf(buf, len, "%s", r->principal);
		break;
	case C_TENANT:
		snprintf(buf, len, "%s", r->tenant[0] ? r->tenant : "-");
		break;
	case C_ROLES:
		snprintf(buf, len, "%s", r->roles[0] ? r->roles : "-");
		break;
	case C_DESCRIPTION:
		if (r->description[0] == '\0')
			snprintf(buf, len, "-");
		else if (strlen(r->description) > 40)
			snprintf(buf, len, "%.37s...", r->description);
		else
			snprintf(buf, len, "%s", r->description);
		break;
	case C_AGE:
		human_age(now - r->created, buf, len);
		break;
	case C_LAST_USED:
		if (r->last_used == 0) {
			snprintf(buf, len, "never");
			break;
		}
		short_time(r->last_used, t, sizeof(t));
		snprintf(buf, len, "%s from %s", t,
		    r->last_source[0] ? r->last_source : "?");
		break;
	case C_STATUS:
		switch (key_status(r, now)) {
		case ST_GRACE:
			short_time(r->prev_until, t, sizeof(t));
			snprintf(buf, len, "grace until %s", t);
			break;
		case ST_REVOKED:
			short_time(r->revoked_at, t, sizeof(t));
			snprintf(buf, len, "revoked %s", t);
			break;
		case ST_EXPIRED:
			snprintf(buf, len, "expired");
			break;
		default:
			snprintf(buf, len, "active");
			break;
		}
		break;
	case C_ROTATION:
		if (r->rotation_due == 0 || r->revoked_at != 0) {
			snprintf(buf, len, "-");
			break;
		}
		iso_time(r->rotation_due, t, sizeof(t));
		t[10] = '\0';	/* the date is enough */
		snprintf(buf, len, "%s%s", t, overdue(r, now) ?
		    " OVERDUE" : "");
		break;
	default:
		buf[0] = '\0';
	}
}

static void
print_table(const struct pc_key_rec *v, size_t n, int64_t now)
{
	size_t w[C__COUNT];
	char buf[PC_ROLES_MAX + 64];

	for (int c = 0; c < C__COUNT; c++)
		w[c] = strlen(col_head[c]);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < C__COUNT; c++) {
			cell(&v[i], (enum col)c, now, buf, sizeof(buf));
			if (strlen(buf) > w[c])
				w[c] = strlen(buf);
		}
	for (int c = 0; c < C__COUNT; c++)
		printf("%-*s%s", c == C__COUNT - 1 ? 0 : (int)w[c],
		    col_head[c], c == C__COUNT - 1 ? "\n" : "  ");
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < C__COUNT; c++) {
			cell(&v[i], (enum col)c, now, buf, sizeof(buf));
			printf("%-*s%s", c == C__COUNT - 1 ? 0 : (int)w[c],
			    buf, c == C__COUNT - 1 ? "\n" : "  ");
		}
}

static void
print_details(const struct pc_key_rec *r, int64_t now)
{
	char t[40], age[24];

	printf("id:           %s\n", r->id);
	printf("principal:    %s\n", r->principal);
	printf("tenant:       %s\n", r->tenant[0] ? r->tenant : "-");
	printf("roles:        %s\n", r->roles[0] ? r->roles : "-");
	printf("description:  %s\n", r->description[0] ? r->description :
	    "-");
	printf("status:       %s\n", status_name[key_status(r, now)]);
	iso_time(r->created, t, sizeof(t));
	human_age(now - r->created, age, sizeof(age));
	printf("created:      %s (%s ago)\n", t, age);
	if (r->expires != 0) {
		iso_time(r->expires, t, sizeof(t));
		printf("expires:      %s\n", t);
	} else {
		printf("expires:      never\n");
	}
	if (r->last_used != 0) {
		iso_time(r->last_used, t, sizeof(t));
		printf("last used:    %s from %s\n", t,
		    r->last_source[0] ? r->last_source : "?");
	} else {
		printf("last used:    never\n");
	}
	if (key_status(r, now) == ST_GRACE) {
		iso_time(r->prev_until, t, sizeof(t));
		printf("grace until:  %s (the previous secret works until "
		    "then)\n", t);
	}
	if (r->revoked_at != 0) {
		iso_time(r->revoked_at, t, sizeof(t));
		printf("revoked at:   %s\n", t);
	}
	if (r->rotation_due != 0) {
		iso_time(r->rotation_due, t, sizeof(t));
		printf("rotation due: %s%s\n", t, overdue(r, now) ?
		    " OVERDUE" : "");
	}
	for (size_t i = 0; i < r->ngrants; i++) {
		if (r->grants[i].until <= now)
			continue;
		iso_time(r->grants[i].until, t, sizeof(t));
		printf("granted:      %s until %s\n", r->grants[i].role, t);
	}
}

/* --- commands ---------------------------------------------------------------------- */

static int64_t
rotation_due(const struct env *e)
{
	uint32_t days = e->rotation_days ? e->rotation_days :
	    PC_DEF_KEY_ROTATION_DAYS;

	if (days > KEYS_MAX_ROTATION_DAYS)
		days = KEYS_MAX_ROTATION_DAYS;
	return e->now + (int64_t)days * 86400;
}

/* The new key on stdout, alone on its line (or inside the JSON object). */
static int
emit_key(const struct opts *o, const struct pc_key_rec *r, const char *key,
    int64_t now)
{
	int rc;

	if (o->json) {
		/* id and key first: what a script wants, where it looks. */
		json_t *j = json_object(), *rest = rec_json(r, now);

		if (j == NULL || rest == NULL ||
		    json_object_set_new(j, "id", json_string(r->id)) != 0 ||
		    json_object_set_new(j, "key", json_string(key)) != 0 ||
		    json_object_update(j, rest) != 0) {
			json_decref(j);
			j = NULL;
		}
		json_decref(rest);
		rc = print_json(j);
	} else {
		rc = printf("%s\n", key) < 0 || fflush(stdout) != 0;
		if (rc != 0)
			fprintf(stderr, "portcullis keys: cannot write the "
			    "key\n");
	}
	return rc;
}

/* What a lifecycle event is called in the audit log. */
static const struct {
	const char *what, *code;
} event_codes[] = {
	{ "api key created", "key.created" },
	{ "api key rotated", "key.rotated" },
	{ "api key revoked", "key.revoked" },
	{ "api key role granted", "key.granted" },
	{ "api key role ungranted", "key.ungranted" },
};

/*
 * A key lifecycle event: a structured log line on stderr (beside the human
 * text), and a row in the store's events table, from which a running
 * gateway (now, or when it next starts) copies it into its audit log.
 * Never the secret or its hash. `detail` (may be NULL) is a short
 * "name=value" note such as the granted role.
 */
static void
key_event(struct env *e, const char *what, const struct pc_key_rec *r,
    const char *tfield, int64_t t, const char *detail)
{
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "event", what, "key_id",
	    r->id, "principal", r->principal, "tenant", r->tenant);
	struct pc_store_event ev = { .ts = e->now };

	if (f != NULL && tfield != NULL && t > 0)
		json_object_set_new(f, tfield, json_integer(t));
	if (f != NULL && detail != NULL)
		json_object_set_new(f, "detail", json_string(detail));
	pc_log_fields(PC_LOG_INFO, "keys", what, f);
	json_decref(f);

	for (size_t i = 0; i < sizeof(event_codes) / sizeof(event_codes[0]); i++)
		if (strcmp(event_codes[i].what, what) == 0)
			pc_strlcpy(ev.event, event_codes[i].code,
			    sizeof(ev.event));
	pc_strlcpy(ev.key_id, r->id, sizeof(ev.key_id));
	pc_strlcpy(ev.principal, r->principal, sizeof(ev.principal));
	pc_strlcpy(ev.tenant, r->tenant, sizeof(ev.tenant));
	if (detail != NULL)
		pc_strlcpy(ev.detail, detail, sizeof(ev.detail));
	else if (tfield != NULL && t > 0)
		snprintf(ev.detail, sizeof(ev.detail), "%s=%" PRId64, tfield, t);
	/* The key change is made; an event that cannot be stored is said
	 * loudly but does not undo it. */
	if (pc_store_event_add(e->st, &ev) != 0)
		fprintf(stderr, "portcullis keys: warning: the event could not "
		    "be stored; a gateway's audit log will not show it\n");
}

static int
cmd_create(struct env *e, const struct opts *o)
{
	struct pc_key_rec r;
	char key[PC_APIKEY_LEN + 1];
	uint64_t exp = 0;
	int rc, status = 1;

	memset(&r, 0, sizeof(r));
	if (o->expires != NULL && parse_duration(o->expires, 1,
	    KEYS_MAX_EXPIRES_S, &exp) != 0)
		return usage_error("--expires '%s': expected a duration such "
		    "as 12h or 30d (at most 3650d)", o->expires);
	rc = pc_apikey_generate(e->pepper, e->pepper_len, key, r.id, r.hash);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: cannot generate a key: %s\n",
		    pc_strerror(rc));
		goto out;
	}
	pc_strlcpy(r.principal, o->principal, sizeof(r.principal));
	pc_strlcpy(r.tenant, o->tenant ? o->tenant : "", sizeof(r.tenant));
	pc_strlcpy(r.roles, o->roles ? o->roles : "", sizeof(r.roles));
	pc_strlcpy(r.description, o->description ? o->description : "",
	    sizeof(r.description));
	r.created = e->now;
	r.expires = exp ? e->now + (int64_t)exp : 0;
	r.rotation_due = rotation_due(e);
	rc = pc_store_key_insert(e->st, &r);
	if (rc != 0) {
		/* PC_E_EXISTS: 64 random bits collided; not worth a retry
		 * loop, the operator runs the command again. */
		fprintf(stderr, "portcullis keys: cannot store the key: %s\n",
		    pc_strerror(rc));
		goto out;
	}
	if (emit_key(o, &r, key, e->now) != 0)
		goto out;
	fprintf(stderr, "Created key %s for %s.\n"
	    "Store it now: it will not be shown again.\n", r.id, r.principal);
	key_event(e, "api key created", &r, NULL, 0, NULL);
	status = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(&r, sizeof(r));
	return status;
}

static int
cmd_list(struct env *e, const struct opts *o)
{
	struct pc_key_rec *v = NULL;
	size_t n = 0;
	int rc, status = 1;

	rc = pc_store_key_list(e->st, &v, &n);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: cannot list the keys: %s\n",
		    pc_strerror(rc));
		goto out;
	}
	if (o->json) {
		json_t *a = json_array();

		for (size_t i = 0; a != NULL && i < n; i++)
			if (json_array_append_new(a, rec_json(&v[i], e->now)))
				{ json_decref(a); a = NULL; }
		status = print_json(a);
		goto out;
	}
	if (n == 0) {
		fprintf(stderr, "No keys. Create one with: portcullis keys "
		    "create -c FILE --principal NAME\n");
		status = 0;
		goto out;
	}
	print_table(v, n, e->now);
	status = fflush(stdout) != 0;
out:
	if (v != NULL) {
		OPENSSL_cleanse(v, n * sizeof(*v));
		free(v);
	}
	return status;
}

static int
get_key(struct env *e, const char *id, struct pc_key_rec *r)
{
	int rc = pc_store_key_get(e->st, id, r);

	if (rc == PC_E_NOTFOUND)
		fprintf(stderr, "portcullis keys: no key %s in %s\n", id,
		    e->store_path);
	else if (rc != 0)
		fprintf(stderr, "portcullis keys: cannot read key %s: %s\n",
		    id, pc_strerror(rc));
	return rc;
}

static int
cmd_show(struct env *e, const struct opts *o)
{
	struct pc_key_rec r;
	int status = 1;

	if (get_key(e, o->id, &r) != 0)
		goto out;
	if (o->json) {
		status = print_json(rec_json(&r, e->now));
		goto out;
	}
	print_details(&r, e->now);
	status = fflush(stdout) != 0;
out:
	OPENSSL_cleanse(&r, sizeof(r));
	return status;
}

static int
cmd_rotate(struct env *e, const struct opts *o)
{
	struct pc_key_rec r;
	char key[PC_APIKEY_LEN + 1], nid[PC_KEY_ID_LEN + 1], t[40];
	uint64_t grace = 0;
	int rc, status = 1;

	memset(&r, 0, sizeof(r));
	if (o->grace != NULL && parse_duration(o->grace, 0, KEYS_MAX_GRACE_S,
	    &grace) != 0)
		return usage_error("--grace '%s': expected a duration such as "
		    "24h (at most 30d)", o->grace);
	if (get_key(e, o->id, &r) != 0)
		goto out;
	if (r.revoked_at != 0) {
		fprintf(stderr, "portcullis keys: key %s is revoked; create "
		    "a new key instead\n", r.id);
		goto out;
	}
	if (key_status(&r, e->now) == ST_GRACE) {
		iso_time(r.prev_until, t, sizeof(t));
		fprintf(stderr, "Note: the secret before the current one "
		    "was in its grace window until %s; it stops working "
		    "now.\n", t);
	}
	/* A fresh secret under the existing id: the id names the key in
	 * policies, logs and the inventory, and must not change. */
	rc = pc_apikey_generate(e->pepper, e->pepper_len, key, nid, r.hash);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: cannot generate a key: %s\n",
		    pc_strerror(rc));
		goto out;
	}
	memcpy(key + 4, r.id, PC_KEY_ID_LEN);
	r.prev_until = e->now + (int64_t)grace;
	r.rotation_due = rotation_due(e);
	rc = pc_store_key_rotate(e->st, r.id, r.hash, r.prev_until,
	    r.rotation_due);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: cannot rotate key %s: %s\n",
		    r.id, pc_strerror(rc));
		goto out;
	}
	/* What the store now holds, for the JSON output. */
	r.has_prev = true;
	if (emit_key(o, &r, key, e->now) != 0)
		goto out;
	if (grace > 0) {
		iso_time(r.prev_until, t, sizeof(t));
		fprintf(stderr, "Rotated key %s; the old secret works until "
		    "%s.\n", r.id, t);
	} else {
		fprintf(stderr, "Rotated key %s; the old secret no longer "
		    "works.\n", r.id);
	}
	fprintf(stderr, "Store it now: it will not be shown again.\n");
	key_event(e, "api key rotated", &r, "grace_until", r.prev_until,
	    NULL);
	status = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(&r, sizeof(r));
	return status;
}

static int
cmd_revoke(struct env *e, const struct opts *o)
{
	struct pc_key_rec r;
	char t[40];
	int rc, status = 1;

	if (get_key(e, o->id, &r) != 0)
		goto out;
	if (r.revoked_at != 0) {
		iso_time(r.revoked_at, t, sizeof(t));
		printf("Key %s was already revoked at %s.\n", r.id, t);
		status = 0;
		goto out;
	}
	rc = pc_store_key_revoke(e->st, r.id, e->now);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: cannot revoke key %s: %s\n",
		    r.id, pc_strerror(rc));
		goto out;
	}
	printf("Revoked key %s (%s). A running gateway refuses it from its "
	    "next request.\n", r.id, r.principal);
	key_event(e, "api key revoked", &r, NULL, 0, NULL);
	status = 0;
out:
	OPENSSL_cleanse(&r, sizeof(r));
	return status;
}

/* Time-boxed elevation: the role ends by itself at now + --for. */
static int
cmd_grant(struct env *e, const struct opts *o)
{
	struct pc_key_rec r;
	uint64_t secs = 0;
	char t[40], detail[80];
	int rc, status = 1;

	memset(&r, 0, sizeof(r));
	if (parse_duration(o->for_, 1, KEYS_MAX_GRANT_S, &secs) != 0)
		return usage_error("--for '%s': expected a duration such as "
		    "2h (at most 90d)", o->for_);
	if (get_key(e, o->id, &r) != 0)
		goto out;
	if (r.revoked_at != 0) {
		fprintf(stderr, "portcullis keys: key %s is revoked\n", r.id);
		goto out;
	}
	rc = pc_store_grant(e->st, r.id, o->role, e->now + (int64_t)secs,
	    e->now);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: cannot grant %s to %s: %s\n",
		    o->role, r.id, rc == PC_E_LIMIT ? "the key holds the most "
		    "grants it may (8); ungrant one" : pc_strerror(rc));
		goto out;
	}
	iso_time(e->now + (int64_t)secs, t, sizeof(t));
	printf("Granted role %s to key %s (%s) until %s. It ends by itself.\n",
	    o->role, r.id, r.principal, t);
	snprintf(detail, sizeof(detail), "role=%s", o->role);
	key_event(e, "api key role granted", &r, "until",
	    e->now + (int64_t)secs, detail);
	status = 0;
out:
	OPENSSL_cleanse(&r, sizeof(r));
	return status;
}

static int
cmd_ungrant(struct env *e, const struct opts *o)
{
	struct pc_key_rec r;
	char detail[80];
	int rc, status = 1;

	if (get_key(e, o->id, &r) != 0)
		goto out;
	rc = pc_store_ungrant(e->st, r.id, o->role);
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: %s: %s\n", r.id,
		    rc == PC_E_NOTFOUND ? "holds no such grant" :
		    pc_strerror(rc));
		goto out;
	}
	printf("Ended the grant of %s to key %s.\n", o->role, r.id);
	snprintf(detail, sizeof(detail), "role=%s", o->role);
	key_event(e, "api key role ungranted", &r, NULL, 0, detail);
	status = 0;
out:
	OPENSSL_cleanse(&r, sizeof(r));
	return status;
}

static int
run(struct env *e, const struct opts *o)
{
	char err[512];
	int rc, status;

	if (e->pepper == NULL || e->pepper_len == 0) {
		fprintf(stderr, "portcullis keys: API keys need "
		    "auth.api_keys.pepper in the config\n");
		return 1;
	}
	if (e->store_path == NULL) {
		fprintf(stderr, "portcullis keys: no key store: set "
		    "auth.api_keys.store in the config\n");
		return 1;
	}
	rc = pc_store_open(e->store_path, &e->st, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "portcullis keys: %s\n", err[0] ? err :
		    pc_strerror(rc));
		return 1;
	}
	e->now = (int64_t)time(NULL);
	if (strcmp(o->cmd, "create") == 0)
		status = cmd_create(e, o);
	else if (strcmp(o->cmd, "list") == 0)
		status = cmd_list(e, o);
	else if (strcmp(o->cmd, "show") == 0)
		status = cmd_show(e, o);
	else if (strcmp(o->cmd, "rotate") == 0)
		status = cmd_rotate(e, o);
	else if (strcmp(o->cmd, "grant") == 0)
		status = cmd_grant(e, o);
	else if (strcmp(o->cmd, "ungrant") == 0)
		status = cmd_ungrant(e, o);
	else
		status = cmd_revoke(e, o);
	pc_store_close(e->st);
	e->st = NULL;
	return status;
}

static bool
wants_help(int argc, char **argv)
{
	if (argc < 2)
		return false;
	if (strcmp(argv[1], "help") == 0)
		return true;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int
pc_cli_keys_with(const char *store_path, const unsigned char *pepper,
    size_t pepper_len, uint32_t rotation_days, int argc, char **argv)
{
	struct env e = {
		.store_path = store_path, .pepper = pepper,
		.pepper_len = pepper_len, .rotation_days = rotation_days,
	};
	struct opts o;
	int rc;

	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);	/* pepper and new keys */
	if (wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (o.config != NULL)
		return usage_error("%s", "-c is not taken here");
	rc = check_args(&o);
	if (rc != 0)
		return rc;
	return run(&e, &o);
}

int
pc_cli_keys(int argc, char **argv)
{
	struct pc_config_errors errs = { 0 };
	struct pc_config *cfg = NULL;
	struct opts o;
	struct env e = { 0 };
	int rc, status;

	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);	/* pepper and new keys */
	if (wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	rc = check_args(&o);
	if (rc != 0)
		return rc;
	if (o.config == NULL)
		return usage_error("%s", "-c FILE is required (the config "
		    "names the key store and the pepper)");
	rc = pc_config_load(o.config, &cfg, &errs);
	if (rc != 0) {
		if (errs.n > 0)
			pc_config_errors_print(&errs, stderr);
		else
			fprintf(stderr, "%s: %s\n", o.config,
			    pc_strerror(rc));
		pc_config_errors_free(&errs);
		return 1;
	}
	pc_config_errors_free(&errs);
	e.store_path = cfg->auth.key_store;
	e.pepper = (const unsigned char *)cfg->auth.pepper;
	e.pepper_len = cfg->auth.pepper ? cfg->auth.pepper_len : 0;
	e.rotation_days = cfg->auth.rotation_days;
	status = run(&e, &o);
	pc_config_free(cfg);	/* wipes the pepper */
	return status;
}
