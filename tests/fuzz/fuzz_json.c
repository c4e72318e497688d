/* Fuzz target: the hygienic JSON parser that sees every request body. */
#include <stddef.h>
#include <stdint.h>

#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_json_limits lim = { 16, 64, 8 };
	enum pc_json_fault fault;
	char why[128];
	json_t *v = NULL;

	if (pc_json_parse((const char *)data, size, &lim, &v, &fault, why,
	    sizeof(why)) == 0)
		json_decref(v);
	return 0;
}
