/* Fuzz target: the YAML config loader (schema, references, positions). */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_config *cfg = NULL;
	struct pc_config_errors errs = { 0 };

	if (pc_config_load_buffer("fuzz.yaml", (const char *)data, size, &cfg,
	    &errs) == 0)
		pc_config_free(cfg);
	pc_config_errors_free(&errs);
	return 0;
}
