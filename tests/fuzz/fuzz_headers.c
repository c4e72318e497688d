/* Fuzz target: the header checks of the HTTP front (Mcp-* decoding,
 * Accept, Content-Type, Host, Origin). Input: the bytes as a C string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	free(pc_header_decode(s));
	(void)pc_accept_has(s, "application/json");
	(void)pc_content_type_json(s);
	(void)pc_host_is_loopback(s);
	(void)pc_origin_is_loopback(s);
	free(s);
	return 0;
}
