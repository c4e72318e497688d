/*
 * libFuzzer target for the policy matcher: agent-chosen paths reach
 * pc_policy_path_normalize, agent-chosen tool names reach pc_policy_glob,
 * and agent-chosen arguments reach pc_policy_check_call. Besides "no
 * crash", it checks the property that matters: whatever the normalizer
 * accepts is a normal absolute path under the root.
 *
 * The first byte picks the mode; the rest is the input. URL arguments ("u")
 * are checked with a memo, as the router does: a host name is asked for
 * (PC_E_AGAIN), never resolved, so the fuzzer never reaches the network.
 *
 *   make fuzz   (clang-14, -fsanitize=fuzzer,address,undefined)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authz/policy.h"
#include "lib/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what shorter ones cover. */
#define FUZZ_MAX_INPUT 8192u
#define ROOT "/srv/data"

static struct pc_policy *fixed;

static void
must(int cond)
{
	if (!cond)
		abort();
}

static void
check_normal(const char *out)
{
	size_t n = strlen(out), rl = strlen(ROOT);

	must(n >= rl && memcmp(out, ROOT, rl) == 0 &&
	    (out[rl] == '\0' || out[rl] == '/'));
	must(strstr(out, "//") == NULL && strstr(out, "/./") == NULL &&
	    strstr(out, "/../") == NULL && strchr(out, '\\') == NULL &&
	    strchr(out, '%') == NULL);
	must(n < 2 || strcmp(out + n - 2, "/.") != 0);
	must(n < 3 || strcmp(out + n - 3, "/..") != 0);
	must(out[n - 1] != '/' || n == 1);
}

static void
setup(void)
{
	static const char *roots[] = { ROOT, "/t/${tenant}" };
	static const char *vals[] = { "a", "${principal}" };
	static const char *cmds[] = { "ls" };
	static const char *cargs[] = { "-*" };
	struct pc_constraint c;

	must(pc_policy_new(&fixed) == 0);
	must(pc_policy_add_rule(fixed, "r", "t*", PC_ACC_ALL) == 0);
	must(pc_policy_set_class(fixed, "t_ro*", PC_ACC_READ) == 0);
	memset(&c, 0, sizeof(c));
	c.tool_pattern = "t*";
	c.optional = true;
	c.kind = PC_CON_PATH; c.arg = "p"; c.values = roots; c.nvalues = 2;
	must(pc_policy_add_constraint(fixed, &c) == 0);
	c.kind = PC_CON_STRING; c.arg = "s"; c.values = vals; c.nvalues = 2;
	must(pc_policy_add_constraint(fixed, &c) == 0);
	c.kind = PC_CON_COMMAND; c.arg = "c"; c.values = cmds; c.nvalues = 1;
	c.cmd_args = cargs; c.ncmd_args = 1;
	must(pc_policy_add_constraint(fixed, &c) == 0);
	memset(&c, 0, sizeof(c));
	c.tool_pattern = "t*";
	c.optional = true;
	c.kind = PC_CON_NUMBER; c.arg = "n"; c.min = -5; c.max = 5;
	must(pc_policy_add_constraint(fixed, &c) == 0);
	c.kind = PC_CON_REGEX; c.arg = "r"; c.pattern = "(a|b)*c";
	must(pc_policy_add_constraint(fixed, &c) == 0);
	memset(&c, 0, sizeof(c));
	c.tool_pattern = "t*";
	c.optional = true;
	c.kind = PC_CON_URL; c.arg = "u";
	must(pc_policy_add_constraint(fixed, &c) == 0);
	c.kind = PC_CON_SET; c.arg = "tenant"; c.set_value = "${tenant}";
	c.tool_pattern = "tset";
	must(pc_policy_add_constraint(fixed, &c) == 0);
}

static void
fuzz_path(const char *s, size_t n)
{
	char out[PC_POLICY_MAX_PATH + 1];

	if (pc_policy_path_normalize(ROOT, s, n, out, sizeof(out)) == 0)
		check_normal(out);
}

static void
fuzz_glob(const char *s, size_t n)
{
	const char *sep = memchr(s, '\n', n);
	char *pat, *name;

	if (sep == NULL)
		return;
	pat = strndup(s, (size_t)(sep - s));
	name = strndup(sep + 1, n - (size_t)(sep - s) - 1);
	must(pat != NULL && name != NULL);
	/* A '*'-free pattern matches exactly itself. */
	if (strchr(pat, '*') == NULL)
		must(pc_policy_glob(pat, name) == (strcmp(pat, name) == 0));
	if (pc_policy_glob(pat, name) && pat[0] != '*' && pat[0] != '\0')
		must(name[0] == pat[0]);
	must(pc_policy_glob("*", name));
	(void)pc_policy_tool_allowed(fixed, "r,x", name, NULL);
	free(pat);
	free(name);
}

static void
fuzz_call(const char *s, size_t n)
{
	struct pc_principal who;
	struct pc_url_memo memo;
	json_t *args = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
	const char *why;
	char arg[32];
	json_t *p;
	int rc;

	if (args == NULL)
		return;
	memset(&who, 0, sizeof(who));
	memcpy(who.id, "alice", 6);
	memcpy(who.tenant, "acme", 5);
	memcpy(who.roles, "r", 2);
	memset(&memo, 0, sizeof(memo));
	rc = pc_policy_check_call_memo(fixed, &who, "tool", NULL, args, &memo,
	    &why, arg, sizeof(arg));
	/* Asked for a name: one the URL grammar let through, never empty. */
	must(rc != PC_E_AGAIN || (memo.need[0] != '\0' &&
	    strchr(memo.need, '/') == NULL && strchr(memo.need, '@') == NULL));
	if (rc == 0 && json_is_object(args) &&
	    (p = json_object_get(args, "p")) != NULL && json_is_string(p) &&
	    strncmp(json_string_value(p), "/t/", 3) != 0)
		check_normal(json_string_value(p));
	json_decref(args);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > FUZZ_MAX_INPUT)
		return 0;
	if (fixed == NULL)
		setup();
	switch (data[0] % 3) {
	case 0:
		fuzz_path((const char *)data + 1, size - 1);
		break;
	case 1:
		fuzz_glob((const char *)data + 1, size - 1);
		break;
	default:
		fuzz_call((const char *)data + 1, size - 1);
		break;
	}
	return 0;
}
