/*
 * The policy engine: which principal may list and call which tool, and with
 * which arguments.
 *
 * Deny by default. A role grants a tool when one of its rules' patterns
 * matches the exposed tool name AND the rule's access mask covers every bit
 * of the tool's access class. A tool no rule grants is neither listed nor
 * callable, so a tool an upstream adds later stays inaccessible until a rule
 * names it (or a glob covers it and its class).
 *
 * The caller (config) builds a policy from plain structs, then only reads it:
 * a built policy is immutable and may be shared by threads. No parsing of
 * the config language happens here.
 *
 * Denials carry a stable reason code and the argument's name only; never the
 * value, a root, or any other internal detail.
 */
#ifndef PC_POLICY_H
#define PC_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "authn/principal.h"
#include "lib/limits.h"

struct addrinfo;

enum pc_access {
	PC_ACC_READ = 1,
	PC_ACC_WRITE = 2,
	PC_ACC_DESTRUCTIVE = 4,
	PC_ACC_OPEN_WORLD = 8,
};
#define PC_ACC_ALL (PC_ACC_READ | PC_ACC_WRITE | PC_ACC_DESTRUCTIVE | \
    PC_ACC_OPEN_WORLD)

/* What a grant is about: tools carry an access class, prompts and
 * resources are granted by pattern alone. */
enum pc_policy_item {
	PC_ITEM_TOOL = 0,	/* exposed tool name */
	PC_ITEM_PROMPT,		/* exposed prompt name */
	PC_ITEM_RESOURCE,	/* exposed resource URI or URI template */
};

/* Stable reason codes (they appear in replies and audit records). */
#define PC_POLICY_DENIED_TOOL     "policy.denied_tool"
#define PC_POLICY_DENIED_ARGUMENT "policy.denied_argument"
#define PC_POLICY_UNDECLARED_ARGUMENT "policy.undeclared_argument"
#define PC_POLICY_DENIED_PROMPT   "policy.denied_prompt"
#define PC_POLICY_DENIED_RESOURCE "policy.denied_resource"

/* Ceilings (PC_POLICY_MAX_*) are in lib/limits.h: a config with more rules
 * than that is a mistake, not a policy. */

enum pc_constraint_kind {
	/* string under one of `values` (roots; may hold ${tenant} and
	 * ${principal}); rewritten to its normalized absolute form */
	PC_CON_PATH = 1,
	/* string equal to one of `values` (placeholders allowed) */
	PC_CON_STRING,
	/* string fully matching the PCRE2 `pattern` */
	PC_CON_REGEX,
	/* number in [min, max] */
	PC_CON_NUMBER,
	/* URL whose scheme is in `values` (default http, https), whose host
	 * matches one of `hosts` (globs; none = any), and whose host resolves
	 * to public addresses only */
	PC_CON_URL,
	/* a string equal to one of `values`, or an array whose first element
	 * is one of `values` and whose other elements each match one of
	 * `cmd_args` (globs) */
	PC_CON_COMMAND,
	/* not a check: the gateway sets (or overwrites) the argument to the
	 * string `set_value` with placeholders substituted, before checks */
	PC_CON_SET,
};

/*
 * One argument constraint. Everything is borrowed for the call of
 * pc_policy_add_constraint only (the policy copies what it keeps).
 *
 * `arg` is a top-level key of the call's arguments. When its value is an
 * array, every element must pass (for PATH, STRING, REGEX, NUMBER, URL; each
 * PATH element is rewritten). Several constraints on one argument all apply.
 * An absent argument is denied unless `optional` is set: a tool that falls
 * back to a default path when none is given would otherwise escape the root.
 */
struct pc_constraint {
	enum pc_constraint_kind kind;
	const char *tool_pattern;	/* glob on the exposed tool name */
	const char *arg;
	bool optional;
	const char *const *values;	/* PATH roots, STRING allow-list, URL
					 * schemes, COMMAND commands */
	size_t nvalues;
	const char *const *hosts;	/* URL host globs (lowercase) */
	size_t nhosts;
	const char *const *cmd_args;	/* COMMAND: allowed arguments (globs) */
	size_t ncmd_args;
	const char *pattern;		/* REGEX (PCRE2, anchored both ends) */
	double min, max;		/* NUMBER, inclusive */
	const char *set_value;		/* SET template */
};

struct pc_policy;

/* New empty policy (denies everything). 0 or PC_E_NOMEM; caller frees with
 * pc_policy_free. */
int pc_policy_new(struct pc_policy **out);

/* Accepts NULL. */
void pc_policy_free(struct pc_policy *p);

/*
 * Grant `role` the tools matching `tool_pattern` ('*' matches any run,
 * including the empty one; nothing else is special) whose class lies within
 * `access_mask`. 0, PC_E_INVAL (empty name, bad mask), PC_E_LIMIT, PC_E_NOMEM.
 */
int pc_policy_add_rule(struct pc_policy *p, const char *role,
    const char *tool_pattern, unsigned access_mask);

/*
 * Grant `role` the prompts or resources (item PC_ITEM_PROMPT or
 * PC_ITEM_RESOURCE) whose exposed name or URI matches `pattern` (same
 * globs). A resource template is listed when its uriTemplate string
 * matches. 0, PC_E_INVAL, PC_E_LIMIT, PC_E_NOMEM.
 */
int pc_policy_add_grant(struct pc_policy *p, const char *role,
    enum pc_policy_item item, const char *pattern);

/*
 * A role every principal holds besides its own (for example a read-only
 * baseline). 0, PC_E_INVAL, PC_E_LIMIT (the list is PC_ROLES_MAX bytes).
 */
int pc_policy_add_default_role(struct pc_policy *p, const char *role);

/*
 * Override the class of the tools matching `tool_pattern`, whatever their
 * annotations say (annotations come from untrusted servers). An exact name
 * beats a glob; among globs, the longest pattern wins, then the last added.
 * 0, PC_E_INVAL, PC_E_LIMIT, PC_E_NOMEM.
 */
int pc_policy_set_class(struct pc_policy *p, const char *tool_pattern,
    unsigned access_mask);

/*
 * Add an argument constraint (copied). 0, PC_E_INVAL (bad kind, empty list,
 * root not absolute or not normal, unknown placeholder, regex that does not
 * compile, min > max), PC_E_LIMIT, PC_E_NOMEM.
 */
int pc_policy_add_constraint(struct pc_policy *p, const struct pc_constraint *c);

/*
 * The tool's access class: the override when one matches, else derived from
 * the MCP annotations (borrowed, may be NULL) with the spec's defaults
 * (readOnlyHint false, destructiveHint true, openWorldHint true): read-only
 * → READ (+ OPEN_WORLD unless openWorldHint is false); otherwise WRITE, +
 * DESTRUCTIVE unless destructiveHint is false, + OPEN_WORLD unless
 * openWorldHint is false. Only JSON booleans count; anything else is absent.
 */
unsigned pc_policy_tool_class(const struct pc_policy *p, const char *tool,
    json_t *annotations);

/* May a principal holding `roles` (comma-separated, may be NULL) list and
 * call `tool`? Unknown roles grant nothing. */
bool pc_policy_tool_allowed(const struct pc_policy *p, const char *roles,
    const char *tool, json_t *annotations);

/* May a principal holding `roles` list and use the prompt or resource
 * `name` (PC_ITEM_PROMPT / PC_ITEM_RESOURCE)? */
bool pc_policy_item_allowed(const struct pc_policy *p, const char *roles,
    enum pc_policy_item item, const char *name);

/*
 * Whether pc_policy_check_call() may change the arguments of `tool`: a SET
 * constraint, or a PATH one (which writes the normalized path back). A
 * caller that shares the arguments with someone who must see them as the
 * client sent them (the audit record) gives the check a copy only then.
 */
bool pc_policy_rewrites(const struct pc_policy *p, const char *tool);

/*
 * Whether any constraint (of any kind) applies to `tool`. The router then
 * refuses arguments the tool's inputSchema does not declare: a constraint
 * checks its own argument by name, and a decoy under that name beside the
 * argument the upstream really reads (`path` beside `paths`), or a spelling
 * the upstream folds into it (`PATH`), would pass it by.
 */
bool pc_policy_constrains(const struct pc_policy *p, const char *tool);

/*
 * Decide one tools/call. `arguments` (borrowed, a JSON object or NULL) is
 * modified in place: SET constraints write their value and PATH constraints
 * replace each path with its normalized form, so that the upstream acts on
 * exactly the path that was checked.
 *
 * Returns 0 (allowed), PC_E_DENIED with *reason set to a static reason code
 * and the offending argument's name copied into arg[0..arglen) ("" when the
 * tool itself is denied), or PC_E_NOMEM. On denial `arguments` may be
 * partly rewritten: the caller must not forward it.
 */
int pc_policy_check_call(const struct pc_policy *p,
    const struct pc_principal *who, const char *tool, json_t *annotations,
    json_t *arguments, const char **reason, char *arg, size_t arglen);

/*
 * The host names a URL constraint had looked up for one call, and the one
 * it needs next. The check itself never waits for DNS when given a memo: a
 * name not in it makes it return PC_E_AGAIN with the name in `need`; the
 * caller looks it up off the loop (src/lib/resolve.h), records the
 * verdict with pc_url_memo_put(), and runs the whole check again on the
 * arguments as they were.
 */
struct pc_url_memo {
	size_t n;
	struct {
		char host[PC_RESOLVE_HOST_MAX];
		int verdict;		/* 0 public, PC_E_DENIED */
	} e[PC_URL_MEMO_MAX];
	char need[PC_RESOLVE_HOST_MAX];
};
/* Record the lookup of memo->need: gai and res as getaddrinfo() gave
 * them (gai != 0: refused). A full memo keeps nothing: the name is then
 * needed again, and the caller stops at PC_URL_MEMO_MAX lookups. */
void pc_url_memo_put(struct pc_url_memo *m, int gai,
    const struct addrinfo *res);

/* Whether any URL constraint applies to `tool`: its check may need a
 * lookup (a memo). */
bool pc_policy_resolves(const struct pc_policy *p, const char *tool);

/* pc_policy_check_call() with a memo (NULL: look names up here, blocking).
 * PC_E_AGAIN: look up memo->need, then call again with the arguments as
 * they were before this call (they may be partly rewritten). */
int pc_policy_check_call_memo(const struct pc_policy *p,
    const struct pc_principal *who, const char *tool, json_t *annotations,
    json_t *arguments, struct pc_url_memo *memo, const char **reason,
    char *arg, size_t arglen);

/* --- building blocks, exposed for tests and the fuzz target ------------- */

/* Does `name` match `pattern` ('*' only)? Linear-space, O(n*m) worst case. */
bool pc_policy_glob(const char *pattern, const char *name);

/*
 * Normalize path[0..len) against `root` (absolute and normal, "/" allowed):
 * refuses NUL, control characters, backslash, '%', a component starting
 * with '~', invalid or overlong UTF-8, Unicode dot and slash look-alikes,
 * and anything that after lexical normalization ('//', '.', '..') leaves
 * the root or climbs above '/'. A relative path is taken under the root.
 * On success writes the normalized absolute path into out[0..outlen).
 * 0, PC_E_DENIED, PC_E_LIMIT (out too small or path too long).
 */
int pc_policy_path_normalize(const char *root, const char *path, size_t len,
    char *out, size_t outlen);

/*
 * Check a URL: scheme in `schemes` (NULL/0 = http, https), no userinfo, a
 * strict host syntax, host in `hosts` (NULL/0 = any), and every address
 * the host resolves to public (no private, loopback, link-local, metadata,
 * CGNAT, multicast, unspecified or reserved range, also when embedded in
 * an IPv6 form). 0 or PC_E_DENIED.
 */
int pc_policy_url_check(const char *url, size_t len,
    const char *const *schemes, size_t nschemes,
    const char *const *hosts, size_t nhosts);
/* The same with a memo (see pc_url_memo): PC_E_AGAIN when the host must
 * be looked up first. */
int pc_policy_url_check_memo(const char *url, size_t len,
    const char *const *schemes, size_t nschemes,
    const char *const *hosts, size_t nhosts, struct pc_url_memo *memo);

#endif
