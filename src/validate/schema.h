/*
 * JSON Schema validator (draft 2020-12 and draft-07) for tool arguments.
 *
 * A schema is compiled once (when an upstream's tools/list is read) into an
 * immutable tree that many requests then validate against, from any thread.
 * Every cost is bounded: schema size at compile time, and evaluation depth,
 * keyword evaluations ("steps") and regex backtracking at validation time,
 * so a hostile schema or argument yields an error, never a hang.
 *
 * The validator never fetches anything. A $ref that leaves the document is
 * handed to an optional resolver hook (the test-suite runner maps the suite's
 * URLs to files); without one it is refused at compile time.
 *
 * Errors name the instance location (JSON pointer) and the failing keyword,
 * never an instance value: arguments may carry secrets.
 */
#ifndef PC_VALIDATE_SCHEMA_H
#define PC_VALIDATE_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct pc_schema;	/* compiled schema, immutable, shareable */

struct pc_schema_limits {
	unsigned max_depth;		/* nested evaluation (schema x instance) */
	unsigned long max_steps;	/* keyword evaluations per validate call
					 * (and a step per 16 bytes of a string
					 * counted, matched or checked) */
	unsigned max_time_ms;		/* wall clock per validate call; 0: none */
	unsigned max_errors;		/* errors collected per validate call */
	uint32_t regex_match_limit;	/* pcre2_set_match_limit */
	uint32_t regex_depth_limit;	/* pcre2_set_depth_limit */
	size_t max_schema_nodes;	/* subschemas compiled, refs included */
	/* 1: "format" asserts (date-time, email, uri, uuid, ipv4, ipv6) as the
	 * gateway wants; 0: annotation only, as 2020-12 says by default. */
	int assert_formats;
};

/* Fill *l with the defaults (see SCHEMA_DEF_* in schema.c). */
void pc_schema_limits_default(struct pc_schema_limits *l);

/*
 * Resolver for a $ref outside the document (tests only). Given an absolute
 * URI without fragment, returns a new reference to the JSON document, or
 * NULL when unknown. The validator takes ownership of the reference.
 */
typedef json_t *(*pc_schema_resolve_fn)(void *arg, const char *uri);

/*
 * Compile `schema` (borrowed; the compiled schema keeps its own reference).
 * lim NULL = defaults; resolve NULL = refuse every non-local $ref.
 * On success *out is owned by the caller (pc_schema_free).
 * Errors: PC_E_INVAL bad schema (bad regex, wrong keyword type),
 * PC_E_LIMIT too big, PC_E_NOTFOUND unresolvable $ref, PC_E_NOMEM.
 * err receives a short message naming the schema location, never a value.
 */
int pc_schema_compile(json_t *schema, const struct pc_schema_limits *lim,
    pc_schema_resolve_fn resolve, void *arg, struct pc_schema **out,
    char *err, size_t errlen);

/* Accepts NULL. */
void pc_schema_free(struct pc_schema *s);

struct pc_schema_error {
	char path[256];		/* JSON pointer of the instance location */
	char keyword[32];	/* failing rule, e.g. "required", "maxLength" */
	char message[192];	/* never contains instance values */
};

/*
 * Validate `instance` (borrowed). errs may be NULL; otherwise it holds room
 * for the compiled max_errors entries and *nerrs receives the count used.
 * Returns 0 valid; PC_E_INVAL invalid (errs filled); PC_E_LIMIT a step,
 * depth or regex budget ran out (callers must treat it as invalid: fail
 * closed; errs then names the budget that ran out).
 */
int pc_schema_validate(const struct pc_schema *s, json_t *instance,
    struct pc_schema_error *errs, unsigned *nerrs);

/* Errors the compiled schema may report per call (its max_errors). */
unsigned pc_schema_max_errors(const struct pc_schema *s);

/*
 * Format checks (format.c), exposed for the tests and for semantic checks.
 * name is the format name; returns 1 valid, 0 invalid, -1 unknown format
 * (unknown formats are not asserted).
 */
int pc_schema_format_check(const char *name, const char *s, size_t len);

#endif
