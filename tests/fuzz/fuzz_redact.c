/*
 * Fuzz target: redaction. The input is JSON text; a fixed canary secret is
 * spliced into it (into every string, as a new member of every object, and
 * into the raw text), then pc_redact_json and pc_redact_text must not crash
 * and the canary must not survive in their output.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/json.h"
#include "secrets/redact.h"

#define CANARY "CaNaRy-9d81f0a7e6c5"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pc_redactor *red;

static void
must_not_hold(const char *s, size_t n)
{
	if (s != NULL && memmem(s, n, CANARY, sizeof(CANARY) - 1) != NULL)
		abort();
}

/* Splice the canary into v's strings and objects; bounded by depth. */
static void
plant(json_t *v, unsigned seed, int depth)
{
	const char *key;
	json_t *c;
	void *tmp;

	if (depth > 32)
		return;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v), mid = n ? seed % (n + 1) : 0;
		char *b = malloc(n + sizeof(CANARY));

		if (b == NULL)
			return;
		/* Keep the splice on a UTF-8 character boundary. */
		while (mid > 0 && mid < n && ((unsigned char)s[mid] & 0xC0) == 0x80)
			mid--;
		memcpy(b, s, mid);
		memcpy(b + mid, CANARY, sizeof(CANARY) - 1);
		memcpy(b + mid + sizeof(CANARY) - 1, s + mid, n - mid);
		json_string_setn(v, b, n + sizeof(CANARY) - 1);
		free(b);
	} else if (json_is_object(v)) {
		json_object_foreach_safe(v, tmp, key, c)
			plant(c, seed * 31u + 7u, depth + 1);
		if (seed & 1)
			json_object_set_new(v, "k" CANARY, json_integer(1));
		else
			json_object_set_new(v, "note", json_string(CANARY));
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			plant(json_array_get(v, i), seed * 17u + (unsigned)i,
			    depth + 1);
		json_array_append_new(v, json_string("x" CANARY "y"));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_json_limits lim = { 64, 4096, 0, 0 };
	enum pc_json_fault fault;
	char why[128], *out, *text;
	json_t *v = NULL, *schema;
	unsigned seed = size ? data[0] : 0;
	size_t at;

	if (red == NULL) {
		if (pc_redactor_new(&red) != 0 ||
		    pc_redactor_add_value(red, CANARY, sizeof(CANARY) - 1) != 0)
			abort();
	}
	if (size > 65536)
		return 0;

	/* Plain text: the canary spliced at a position picked by the input. */
	at = size ? seed % (size + 1) : 0;
	text = malloc(size + sizeof(CANARY));
	if (text == NULL)
		return 0;
	memcpy(text, data, at);
	memcpy(text + at, CANARY, sizeof(CANARY) - 1);
	memcpy(text + at + sizeof(CANARY) - 1, data + at, size - at);
	out = pc_redact_text(red, text, size + sizeof(CANARY) - 1);
	if (out == NULL)
		abort();
	must_not_hold(out, strlen(out));
	free(out);
	free(text);

	/* The input itself, unchanged, must also redact without crashing. */
	out = pc_redact_text(red, (const char *)data, size);
	free(out);

	if (pc_json_parse((const char *)data, size, &lim, &v, &fault, why,
	    sizeof(why)) != 0)
		return 0;
	plant(v, seed, 0);
	/* A copy of the document serves as its schema too: random keywords,
	 * $refs and cycles. A copy, since redaction mutates v. */
	schema = json_deep_copy(v);
	if (pc_redact_json(red, v, schema) == PC_E_INVAL)
		abort();
	json_decref(schema);
	out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (out != NULL) {
		must_not_hold(out, strlen(out));
		free(out);
	}
	json_decref(v);
	return 0;
}
