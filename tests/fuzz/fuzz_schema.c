/*
 * Fuzz target: the JSON Schema compiler and validator, which read tool
 * schemas from upstreams and arguments from clients.
 *
 * Input: schema JSON, a NUL byte, instance JSON. Without a NUL the input is
 * both the schema and the instance. Both go through the gateway's hygienic
 * JSON parser first, as in production. Budgets are smaller than the defaults
 * so that each input stays fast; a budget error is a normal outcome.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/json.h"
#include "validate/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_json_limits jl = { 32, 4096, 0, 0 };
	struct pc_schema_limits lim;
	struct pc_schema_error errs[4];
	enum pc_json_fault fault;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t slen = nul ? (size_t)(nul - data) : size;
	json_t *schema = NULL, *inst = NULL;
	struct pc_schema *s = NULL;
	char why[128], err[256];
	unsigned n = 0;

	pc_schema_limits_default(&lim);
	lim.max_steps = 20000;
	lim.max_depth = 64;
	lim.max_errors = 4;
	lim.max_schema_nodes = 500;
	lim.regex_match_limit = 10000;
	if (pc_json_parse((const char *)data, slen, &jl, &schema, &fault, why,
	    sizeof(why)) != 0)
		return 0;
	if (nul != NULL) {
		if (pc_json_parse((const char *)nul + 1, size - slen - 1, &jl,
		    &inst, &fault, why, sizeof(why)) != 0)
			goto out;
	} else
		inst = json_incref(schema);
	if (pc_schema_compile(schema, &lim, NULL, NULL, &s, err,
	    sizeof(err)) != 0)
		goto out;
	int rc = pc_schema_validate(s, inst, errs, &n);
	if (n > lim.max_errors || (rc == 0 && n != 0))
		__builtin_trap();
	for (unsigned i = 0; i < n; i++)
		if (memchr(errs[i].path, '\0', sizeof(errs[i].path)) == NULL ||
		    memchr(errs[i].message, '\0', sizeof(errs[i].message)) ==
		    NULL)
			__builtin_trap();
out:
	pc_schema_free(s);
	json_decref(schema);
	json_decref(inst);
	return 0;
}
