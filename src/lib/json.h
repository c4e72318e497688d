/*
 * Hygienic JSON parsing for untrusted input.
 *
 * jansson does the parsing (with duplicate keys rejected and NUL refused);
 * this module adds the bounds jansson lacks: nesting depth (checked by a
 * lexical pre-scan, before jansson recurses) and decoded string length.
 */
#ifndef PC_JSON_H
#define PC_JSON_H

#include <jansson.h>
#include <stddef.h>

struct pc_json_limits {
	size_t max_depth;
	size_t max_string;
	size_t max_items;	/* elements of one array; 0 = no cap */
	size_t max_values;	/* values in the whole text, counted before
				 * jansson builds anything (each costs it
				 * 50-250 bytes); 0 = no cap */
};

enum pc_json_fault {
	PC_JSON_OK = 0,
	PC_JSON_SYNTAX,    /* not JSON, bad UTF-8, raw NUL, duplicate key */
	PC_JSON_DEPTH,     /* nested deeper than max_depth */
	PC_JSON_STRING,    /* a string or key longer than max_string */
	PC_JSON_ITEMS,     /* an array with more than max_items elements, or
	                    * more than max_values values in all */
};

/*
 * Rewrite in place, to \ufffd (the same six bytes), the escapes in the
 * JSON text buf[0..len) that JSON allows but the gateway does not take
 * in: \u0000 (a NUL inside a C string would cut names short) and a
 * surrogate without its pair (jansson refuses it). Only escapes inside
 * strings are touched. Returns how many were rewritten. For text from an
 * upstream, where refusing the line would kill a child shared by every
 * client (Node's JSON.stringify of a binary file's text emits \u0000).
 */
size_t pc_json_replace_bad_escapes(char *buf, size_t len);

/*
 * Parse buf[0..len). On success *out holds a new reference and 0 is returned.
 * On failure returns PC_E_PARSE or PC_E_LIMIT, sets *fault, and writes a short
 * message (no input bytes echoed) into why[0..whylen).
 */
int pc_json_parse(const char *buf, size_t len, const struct pc_json_limits *lim,
    json_t **out, enum pc_json_fault *fault, char *why, size_t whylen);

/*
 * Compact text of v, the same bytes as json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) (json_write.c says why not jansson's dumper).
 * pc_json_dump returns a malloc'ed string or NULL. pc_json_dumpb writes
 * at most size bytes (no NUL) and returns the length of the whole text:
 * larger than size means it did not fit; 0 means v cannot be written.
 */
char *pc_json_dump(const json_t *v);
/* The bytes v holds (its strings and keys, plus a few per value): what it
 * costs in memory, close to its serialized size. Stops counting past cap
 * (returns more than cap). */
size_t pc_json_weight(const json_t *v, size_t cap);
size_t pc_json_dumpb(const json_t *v, char *buf, size_t size);

/* Shorthands that tolerate NULL and wrong types. */
const char *pc_json_str(const json_t *obj, const char *key);
json_t *pc_json_obj(const json_t *obj, const char *key);

#endif
