/*
 * Fuzz target: the hygienic JSON parser that sees every request body, and
 * the writer that serializes every message the gateway sends: its text
 * must be jansson's, byte for byte, for whatever jansson can parse
 * (strings with \u0000, reals, any top-level value included).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_text(const json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char *got = pc_json_dump(v);
	char small[16];
	size_t n = pc_json_dumpb(v, small, sizeof(small));

	if (want == NULL || got == NULL || strcmp(want, got) != 0 ||
	    n != strlen(want) || memcmp(small, want, n < sizeof(small) ? n :
	    sizeof(small)) != 0)
		abort();
	free(want);
	free(got);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_json_limits lim = { 16, 64, 8, 0 };
	enum pc_json_fault fault;
	char why[128];
	json_t *v = NULL;

	if (pc_json_parse((const char *)data, size, &lim, &v, &fault, why,
	    sizeof(why)) == 0) {
		same_text(v);
		json_decref(v);
	}
	v = json_loadb((const char *)data, size, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, NULL);
	if (v != NULL) {
		same_text(v);
		json_decref(v);
	}
	return 0;
}
