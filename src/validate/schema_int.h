/*
 * Internals of the JSON Schema validator, shared by schema.c (compile),
 * schema_ref.c (URIs, $id/$anchor index, $ref resolution) and
 * schema_eval.c (validation). Not for use outside src/validate/.
 */
#ifndef PC_VALIDATE_SCHEMA_INT_H
#define PC_VALIDATE_SCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stddef.h>

#include "lib/map.h"
#include "validate/schema.h"

/* A schema nested deeper than this is refused. The index recurses once per
 * level with ~4 KiB of URI buffers on the stack (128 levels: 512 KiB, safe
 * on any thread); no tool schema needs a fraction of it. Compilation may go
 * twice as deep, following chains of $ref. */
#define SC_MAX_NEST 128u

enum sc_dialect { SC_D2020 = 0, SC_D7 = 1 };

/* Instance type bits of the "type" keyword. */
enum {
	SC_T_NULL = 1, SC_T_BOOL = 2, SC_T_OBJECT = 4, SC_T_ARRAY = 8,
	SC_T_NUMBER = 16, SC_T_STRING = 32, SC_T_INTEGER = 64
};

/* Formats that assert (format.c); SC_F_NONE for the rest. */
enum sc_format {
	SC_F_NONE = 0, SC_F_DATE_TIME, SC_F_DATE, SC_F_TIME, SC_F_EMAIL,
	SC_F_URI, SC_F_UUID, SC_F_IPV4, SC_F_IPV6, SC_F_HOSTNAME
};

struct sc_node;

/* A name (borrowed from the kept schema document) and what applies to it. */
struct sc_named {
	const char *name;
	struct sc_node *node;	/* properties, dependentSchemas */
	json_t *names;		/* dependentRequired: array of strings */
};

struct sc_pattern {
	pcre2_code *re;
	struct sc_node *node;
};

struct sc_list {
	struct sc_node **v;
	size_t n;
};

/*
 * One compiled subschema. json values (enum, const, bounds) are borrowed
 * from the schema documents, which the compiled schema keeps alive.
 */
struct sc_node {
	int boolean;			/* -1: object schema; 0 false; 1 true */
	unsigned types;			/* SC_T_* bits; 0 = no "type" */
	json_t *enum_v, *const_v, *required;
	int has_const;
	struct sc_named *props;
	size_t nprops;
	struct sc_pattern *pats;
	size_t npats;
	struct sc_node *addl_props, *prop_names;
	struct sc_list prefix;		/* prefixItems, or draft-07 items[] */
	struct sc_node *items_rest;	/* items, or draft-07 additionalItems */
	struct sc_node *contains;
	long long min_contains, max_contains;	/* -1: unset */
	long long min_items, max_items, min_len, max_len, min_props, max_props;
	int unique;
	json_t *minimum, *maximum, *xminimum, *xmaximum, *multiple_of;
	pcre2_code *pattern;
	struct sc_list all, any, one;
	struct sc_node *not_s, *if_s, *then_s, *else_s;
	struct sc_named *dep_req, *dep_sch;
	size_t ndep_req, ndep_sch;
	struct sc_node *ref;
	enum sc_format format;
	struct sc_node *next_alloc;	/* every node, for pc_schema_free */
};

struct pc_schema {
	struct sc_node *root;
	struct sc_node *nodes;		/* allocation list */
	size_t nnodes;
	json_t *docs;			/* array: the documents kept alive */
	struct pc_schema_limits lim;
	pcre2_match_context *mctx;	/* limits, shared read-only */
};

/* What the index knows about a schema value (keyed by its address). */
struct sc_info {
	char *base;			/* base URI in effect at this schema */
	enum sc_dialect dialect;
	struct sc_node *node;		/* once compiled */
};

/* Compile-time state. */
struct sc_compiler {
	struct pc_schema *s;
	struct pc_map *info;		/* "%p" of a json_t -> struct sc_info */
	struct pc_map *uris;		/* absolute URI (with #anchor) -> json_t */
	struct pc_map *memo;		/* "%p dialect base" of a schema the
					 * index does not know (reached by a
					 * $ref pointer into an unknown
					 * keyword) -> its struct sc_node */
	pc_schema_resolve_fn resolve;
	void *arg;
	unsigned depth;
	char loc[256];			/* schema location, for messages */
	size_t loclen;
	char *err;
	size_t errlen;
};

/* schema_ref.c */
int sc_uri_resolve(const char *base, const char *ref, char *out, size_t outlen);
int sc_index(struct sc_compiler *c, json_t *doc, const char *base,
    enum sc_dialect dialect);
struct sc_info *sc_info_get(struct sc_compiler *c, const json_t *v);
int sc_ref_target(struct sc_compiler *c, const char *base, const char *ref,
    enum sc_dialect dialect, json_t **target);
void sc_compiler_release(struct sc_compiler *c);
enum sc_dialect sc_dialect_of(const json_t *doc, enum sc_dialect dflt);

/* schema.c */
int sc_fail(struct sc_compiler *c, int code, const char *what);

/* format.c */
enum sc_format sc_format_lookup(const char *name);
int sc_format_valid(enum sc_format f, const char *s, size_t len);

/* schema_eval.c: 1 if d is finite and has no fractional part. */
int sc_is_whole(double d);

/* schema_eval.c: JSON Schema equality (1 == 1.0), depth-bounded.
 * Returns 1 equal, 0 not, -1 too deep. */
int sc_json_equal(const json_t *a, const json_t *b, unsigned depth);

#endif
