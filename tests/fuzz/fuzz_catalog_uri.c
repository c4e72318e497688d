/*
 * libFuzzer target: exposed names, URIs and cursors from clients reach
 * pc_catalog_resolve_name, pc_catalog_resolve_uri and pc_catalog_page
 * unfiltered; upstream names and URIs reach pc_catalog_set. Besides "no
 * crash", it checks that whatever resolves maps back to the input.
 *
 *   clang-14 -fsanitize=fuzzer,address,undefined -std=c17 -D_GNU_SOURCE \
 *     -Isrc tests/fuzz/fuzz_catalog_uri.c src/mcp/catalog.c src/lib/\*.c \
 *     $(pkg-config --cflags --libs jansson libcrypto libevent)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "mcp/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what shorter ones cover. */
#define FUZZ_MAX_INPUT 4096u

static struct pc_catalog *fixed;

static void
must(int cond)
{
	if (!cond)
		abort();
}

static void
set_str(struct pc_catalog *cat, size_t idx, enum pc_cat_kind kind,
    const char *text)
{
	json_t *a = json_loads(text, 0, NULL);

	must(a != NULL && pc_catalog_set(cat, idx, kind, a) == 0);
	json_decref(a);
}

/* Prefixed and unprefixed upstreams, listed URIs, templates and tools. */
static void
fixed_init(void)
{
	static const char *const prefixes[] = { "fs", "", "", "gh" };

	pc_log_set_level(PC_LOG_ERROR);
	must(pc_catalog_new(&fixed) == 0);
	for (size_t i = 0; i < 4; i++)
		must(pc_catalog_add_upstream(fixed, i, prefixes[i]) == 0);
	set_str(fixed, 0, PC_CAT_TOOLS, "[{\"name\":\"read\"},{\"name\":\"x\"}]");
	set_str(fixed, 1, PC_CAT_TOOLS, "[{\"name\":\"x\"},{\"name\":\"fs__y\"}]");
	set_str(fixed, 2, PC_CAT_PROMPTS, "[{\"name\":\"p\"}]");
	set_str(fixed, 0, PC_CAT_RESOURCES, "[{\"uri\":\"file:///a\"}]");
	set_str(fixed, 1, PC_CAT_RESOURCES,
	    "[{\"uri\":\"git+https://h/r\"},{\"uri\":\"mem://one\"}]");
	set_str(fixed, 2, PC_CAT_TEMPLATES,
	    "[{\"uriTemplate\":\"db://{t}\"},{\"uriTemplate\":\"{x}\"}]");
	set_str(fixed, 3, PC_CAT_TEMPLATES,
	    "[{\"uriTemplate\":\"repo://{o}/{r}\"}]");
}

static void
check_names(struct pc_catalog *cat, const char *s)
{
	for (int k = PC_CAT_TOOLS; k <= PC_CAT_PROMPTS; k++) {
		size_t up;
		const char *orig;
		int listed;
		if (pc_catalog_resolve_name(cat, (enum pc_cat_kind)k, s, &up,
		    &orig, &listed) != 0)
			continue;
		char *back = pc_catalog_expose_name(cat, up, orig);
		must(back != NULL && strcmp(back, s) == 0);
		free(back);
	}
}

static void
check_uri(struct pc_catalog *cat, const char *s)
{
	size_t up;
	char *orig = NULL;

	if (pc_catalog_resolve_uri(cat, s, &up, &orig) != 0) {
		must(orig == NULL);
		return;
	}
	char *back = pc_catalog_expose_uri(cat, up, orig);
	must(back != NULL && strcmp(back, s) == 0);
	free(back);
	free(orig);
}

static void
check_cursor(struct pc_catalog *cat, const char *s)
{
	for (int k = 0; k < PC_CAT__N; k++) {
		json_t *items;
		char *next;
		int rc = pc_catalog_page(cat, (enum pc_cat_kind)k, s, 1,
		    &items, &next);
		must(rc == 0 || rc == PC_E_INVAL);
		if (rc == 0)
			must(json_array_size(items) <= 1);
		json_decref(items);
		free(next);
	}
}

/* The input as an upstream's own name and URI: whatever is listed
 * resolves back to its owner and original spelling, so a client never
 * reads from another upstream than the one that listed the item. */
static void
check_roundtrip(const char *s, size_t len)
{
	struct pc_catalog *cat;
	json_t *str = json_stringn(s, len);

	if (str == NULL)	/* not UTF-8, or holds NUL: jansson refuses */
		return;
	must(pc_catalog_new(&cat) == 0);
	must(pc_catalog_add_upstream(cat, 0, "fs") == 0);
	must(pc_catalog_add_upstream(cat, 1, "") == 0);
	for (size_t u = 0; u < 2; u++) {
		json_t *a = json_pack("[{s:O}]", "name", str);
		json_t *r = json_pack("[{s:O}]", "uri", str);
		must(a != NULL && r != NULL);
		must(pc_catalog_set(cat, u, PC_CAT_TOOLS, a) == 0);
		must(pc_catalog_set(cat, u, PC_CAT_RESOURCES, r) == 0);
		json_decref(a);
		json_decref(r);
	}
	for (size_t i = 0; i < pc_catalog_count(cat, PC_CAT_TOOLS); i++) {
		size_t up, owner;
		const char *orig;
		int listed;
		json_t *it = pc_catalog_item(cat, PC_CAT_TOOLS, i, &owner);
		const char *e = json_string_value(json_object_get(it, "name"));
		must(pc_catalog_resolve_name(cat, PC_CAT_TOOLS, e, &up, &orig,
		    &listed) == 0);
		must(up == owner && listed == 1 && strcmp(orig, s) == 0);
	}
	for (size_t i = 0; i < pc_catalog_count(cat, PC_CAT_RESOURCES); i++) {
		size_t up, owner;
		char *orig;
		json_t *it = pc_catalog_item(cat, PC_CAT_RESOURCES, i, &owner);
		const char *e = json_string_value(json_object_get(it, "uri"));
		must(pc_catalog_resolve_uri(cat, e, &up, &orig) == 0);
		must(up == owner && strcmp(orig, s) == 0);
		free(orig);
	}
	json_decref(str);
	pc_catalog_free(cat);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (fixed == NULL)
		fixed_init();
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	/* A NUL inside ends the string, as it would in a C caller. */
	check_names(fixed, s);
	check_uri(fixed, s);
	check_cursor(fixed, s);
	check_roundtrip(s, size);
	free(s);
	return 0;
}
