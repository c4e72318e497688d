/*
 * What authorization and the config's schema tightening add to one
 * tools/call, measured in process (no noise from the shared machine): the
 * policy of the bench's gateway+apikey+policy row, loaded through the real
 * config loader, then pc_policy_check_call and the tightening schema run
 * in a loop on the row's arguments. The upstream's own schema check runs
 * in every row (the reference too), so it is not part of the difference.
 *
 *   build/bench/policy_cost [ITERATIONS]
 *
 * Prints ns per call. Divide by the gateway's CPU time per call to get the
 * expected ratio (bench/run.sh does it).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authz/policy.h"
#include "config/config.h"
#include "lib/errors.h"
#include "validate/schema.h"

static const char policy_yaml[] =
"auth: none\n"
"policy:\n"
"  roles:\n"
"    r0: {tools: [{match: \"tool0__*\", access: all}], prompts: [\"p0__*\"]}\n"
"    r1: {tools: [{match: \"tool1__*\", access: all}], prompts: [\"p1__*\"]}\n"
"    r2: {tools: [{match: \"tool2__*\", access: all}], prompts: [\"p2__*\"]}\n"
"    r3: {tools: [{match: \"tool3__*\", access: all}], prompts: [\"p3__*\"]}\n"
"    r4: {tools: [{match: \"tool4__*\", access: all}], prompts: [\"p4__*\"]}\n"
"    r5: {tools: [{match: \"tool5__*\", access: all}], prompts: [\"p5__*\"]}\n"
"    r6: {tools: [{match: \"tool6__*\", access: all}], prompts: [\"p6__*\"]}\n"
"    r7: {tools: [{match: \"tool7__*\", access: all}], prompts: [\"p7__*\"]}\n"
"    r8: {tools: [{match: \"tool8__*\", access: all}], prompts: [\"p8__*\"]}\n"
"    r9: {tools: [{match: \"tool9__*\", access: all}], prompts: [\"p9__*\"]}\n"
"    caller:\n"
"      tools:\n"
"        - {match: \"ech*\", access: [read]}\n"
"  tool_classes:\n"
"    \"echo\": [read]\n"
"  constraints:\n"
"    - {tool: \"echo\", argument: text, pattern: \"[a-z]{1,64}\"}\n"
"    - {tool: \"echo\", argument: text, schema: {type: string, minLength: 1, "
"maxLength: 500}}\n"
"    - {tool: \"other__*\", argument: path, path_under: [\"/srv/${tenant}\"]}\n";

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	struct pc_config *cfg = NULL;
	struct pc_config_errors errs = { 0 };
	struct pc_principal who = { .method = PC_AUTH_APIKEY, .id = "bench",
	    .roles = "r3,r7,caller" };
	const char *reason;
	char arg[64];
	double t0, t1;
	int rc = 1;

	if (iters < 1000)
		return 2;
	if (pc_config_load_buffer("policy_cost", policy_yaml,
	    strlen(policy_yaml), &cfg, &errs) != 0 || cfg->ntighten != 1) {
		pc_config_errors_print(&errs, stderr);
		goto out;
	}
	t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		/* A fresh arguments object per call, as the request parse
		 * gives the router one. */
		json_t *args = json_pack("{s:s}", "text", "hello");
		json_t *wrap = json_pack("{s:O}", "text", json_object_get(args,
		    "text"));

		if (pc_policy_check_call(cfg->policy, &who, "echo", NULL, args,
		    &reason, arg, sizeof(arg)) != 0 ||
		    pc_schema_validate(cfg->tighten[0].schema, wrap, NULL,
		    NULL) != 0) {
			fprintf(stderr, "policy_cost: the call was refused\n");
			json_decref(args);
			json_decref(wrap);
			goto out;
		}
		json_decref(args);
		json_decref(wrap);
	}
	t1 = now_ns();
	/* The loop's own JSON allocation, to subtract. */
	double b0 = now_ns();
	for (long i = 0; i < iters; i++) {
		json_t *args = json_pack("{s:s}", "text", "hello");
		json_t *wrap = json_pack("{s:O}", "text", json_object_get(args,
		    "text"));
		json_decref(args);
		json_decref(wrap);
	}
	double b1 = now_ns();
	printf("policy+tightening per tools/call: %.0f ns (%ld calls; loop "
	    "allocation %.0f ns subtracted)\n", ((t1 - t0) - (b1 - b0)) /
	    (double)iters, iters, (b1 - b0) / (double)iters);
	rc = 0;
out:
	pc_config_errors_free(&errs);
	pc_config_free(cfg);
	return rc;
}
