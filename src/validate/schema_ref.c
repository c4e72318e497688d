/*
 * URIs, the $id / $anchor index and $ref resolution of the JSON Schema
 * compiler.
 *
 * Before compiling, every schema value of a document is visited once to learn
 * its base URI (RFC 3986 resolution of the $id values above it) and to record
 * the resources ($id) and anchors ($anchor, draft-07 "$id": "#name") it
 * defines. A $ref is then resolved against the base in effect where it
 * stands. A document outside the ones already indexed is asked of the
 * resolver hook, if any: nothing here opens a socket or a file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "validate/schema_int.h"

/* Longest URI handled (base or $ref); longer ones are refused. */
#define SC_MAX_URI 2048u

struct uri_part {
	const char *p;
	size_t n;
	int set;
};

struct uri {
	struct uri_part scheme, auth, path, query, frag;
};

static void
uri_parse(const char *s, struct uri *u)
{
	const char *p = s, *e;

	memset(u, 0, sizeof(*u));
	/* scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	e = p;
	while ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') ||
	    (e > p && ((*e >= '0' && *e <= '9') || *e == '+' || *e == '-' ||
	    *e == '.')))
		e++;
	if (e > p && *e == ':') {
		u->scheme = (struct uri_part){ p, (size_t)(e - p), 1 };
		p = e + 1;
	}
	if (p[0] == '/' && p[1] == '/') {
		p += 2;
		e = p + strcspn(p, "/?#");
		u->auth = (struct uri_part){ p, (size_t)(e - p), 1 };
		p = e;
	}
	e = p + strcspn(p, "?#");
	u->path = (struct uri_part){ p, (size_t)(e - p), 1 };
	p = e;
	if (*p == '?') {
		e = p + 1 + strcspn(p + 1, "#");
		u->query = (struct uri_part){ p + 1, (size_t)(e - p - 1), 1 };
		p = e;
	}
	if (*p == '#')
		u->frag = (struct uri_part){ p + 1, strlen(p + 1), 1 };
}

/* RFC 3986 5.2.4, in place on a NUL-terminated path. */
static void
remove_dots(char *in)
{
	char *out = in, *r = in;

	while (*r != '\0') {
		if (strncmp(r, "../", 3) == 0)
			r += 3;
		else if (strncmp(r, "./", 2) == 0)
			r += 2;
		else if (strncmp(r, "/./", 3) == 0)
			r += 2;
		else if (strcmp(r, "/.") == 0)
			r[1] = '\0';
		else if (strncmp(r, "/../", 4) == 0 || strcmp(r, "/..") == 0) {
			r += 3;
			if (*r == '\0') {
				r--;
				*r = '/';
			}
			while (out > in && *--out != '/')
				;
		} else if (strcmp(r, ".") == 0 || strcmp(r, "..") == 0)
			break;
		else {
			if (*r == '/')
				*out++ = *r++;
			while (*r != '\0' && *r != '/')
				*out++ = *r++;
		}
	}
	*out = '\0';
}

/* Resolve ref against base (RFC 3986 5.2.2). 0 or PC_E_LIMIT. */
int
sc_uri_resolve(const char *base, const char *ref, char *out, size_t outlen)
{
	struct uri b, r;
	char path[SC_MAX_URI];
	const struct uri_part *scheme, *auth, *query;
	int n;

	if (strlen(base) >= SC_MAX_URI || strlen(ref) >= SC_MAX_URI)
		return PC_E_LIMIT;
	uri_parse(base, &b);
	uri_parse(ref, &r);
	scheme = r.scheme.set ? &r.scheme : &b.scheme;
	if (r.scheme.set || r.auth.set) {
		auth = &r.auth;
		query = &r.query;
		snprintf(path, sizeof(path), "%.*s", (int)r.path.n, r.path.p);
	} else {
		auth = &b.auth;
		if (r.path.n == 0) {
			query = r.query.set ? &r.query : &b.query;
			snprintf(path, sizeof(path), "%.*s", (int)b.path.n,
			    b.path.p);
		} else {
			query = &r.query;
			if (r.path.p[0] == '/')
				snprintf(path, sizeof(path), "%.*s",
				    (int)r.path.n, r.path.p);
			else if (b.auth.set && b.path.n == 0)
				snprintf(path, sizeof(path), "/%.*s",
				    (int)r.path.n, r.path.p);
			else {
				const char *slash = NULL;
				for (size_t i = 0; i < b.path.n; i++)
					if (b.path.p[i] == '/')
						slash = b.path.p + i;
				int keep = slash ? (int)(slash - b.path.p + 1) : 0;
				snprintf(path, sizeof(path), "%.*s%.*s", keep,
				    b.path.p, (int)r.path.n, r.path.p);
			}
		}
	}
	remove_dots(path);
	n = snprintf(out, outlen, "%.*s%s%s%.*s%s%s%.*s%s%.*s",
	    (int)scheme->n, scheme->p, scheme->set ? ":" : "",
	    auth->set ? "//" : "", (int)auth->n, auth->p, path,
	    query->set ? "?" : "", (int)query->n, query->p,
	    r.frag.set ? "#" : "", (int)r.frag.n, r.frag.p);
	if (n < 0 || (size_t)n >= outlen)
		return PC_E_LIMIT;
	return 0;
}

enum sc_dialect
sc_dialect_of(const json_t *doc, enum sc_dialect dflt)
{
	const char *s = json_is_object(doc) ?
	    json_string_value(json_object_get(doc, "$schema")) : NULL;

	if (s == NULL)
		return dflt;
	if (strstr(s, "draft-07") || strstr(s, "draft-06") ||
	    strstr(s, "draft-04"))
		return SC_D7;
	if (strstr(s, "2020-12") || strstr(s, "2019-09"))
		return SC_D2020;
	return dflt;
}

static void
ptr_key(const json_t *v, char *key, size_t keylen)
{
	snprintf(key, keylen, "%p", (const void *)v);
}

struct sc_info *
sc_info_get(struct sc_compiler *c, const json_t *v)
{
	char key[32];

	ptr_key(v, key, sizeof(key));
	return pc_map_get(c->info, key);
}

static int
put_uri(struct sc_compiler *c, const char *uri, json_t *v)
{
	/* The first definition wins; a duplicate $id is the schema's bug, not
	 * a way to swap a resource after the fact. */
	if (pc_map_get(c->uris, uri) != NULL)
		return 0;
	return pc_map_put(c->uris, uri, v);
}

/* Drop an empty trailing fragment: "x#" names the same resource as "x". */
static void
strip_empty_frag(char *u)
{
	size_t n = strlen(u);

	if (n > 0 && u[n - 1] == '#')
		u[n - 1] = '\0';
}

static int index_walk(struct sc_compiler *c, json_t *v, const char *base,
    enum sc_dialect d);

static int
index_members(struct sc_compiler *c, json_t *obj, const char *base,
    enum sc_dialect d)
{
	static const char *const one[] = { "additionalProperties",
	    "additionalItems", "contains", "propertyNames", "not", "if", "then",
	    "else", "unevaluatedItems", "unevaluatedProperties",
	    "contentSchema", "items" };
	static const char *const arr[] = { "allOf", "anyOf", "oneOf",
	    "prefixItems", "items" };
	static const char *const map[] = { "properties", "patternProperties",
	    "$defs", "definitions", "dependentSchemas", "dependencies" };
	int rc;

	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		json_t *x = json_object_get(obj, one[i]);
		if ((json_is_object(x) || json_is_boolean(x)) &&
		    (rc = index_walk(c, x, base, d)) != 0)
			return rc;
	}
	for (size_t i = 0; i < sizeof(arr) / sizeof(arr[0]); i++) {
		json_t *x = json_object_get(obj, arr[i]), *e;
		size_t k;
		if (!json_is_array(x))
			continue;
		json_array_foreach(x, k, e)
			if ((rc = index_walk(c, e, base, d)) != 0)
				return rc;
	}
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		json_t *x = json_object_get(obj, map[i]), *e;
		const char *k;
		if (!json_is_object(x))
			continue;
		json_object_foreach(x, k, e)
			if ((json_is_object(e) || json_is_boolean(e)) &&
			    (rc = index_walk(c, e, base, d)) != 0)
				return rc;
	}
	return 0;
}

static int
index_walk(struct sc_compiler *c, json_t *v, const char *base,
    enum sc_dialect d)
{
	char key[32], nb[SC_MAX_URI], anc[SC_MAX_URI];
	struct sc_info *info;
	const char *id, *anchor;
	int rc;

	if (!json_is_object(v) && !json_is_boolean(v))
		return 0;
	ptr_key(v, key, sizeof(key));
	if (pc_map_get(c->info, key) != NULL)
		return 0;	/* jansson shares no values, but stay safe */
	if (c->depth >= SC_MAX_NEST)
		return sc_fail(c, PC_E_LIMIT, "schema nested too deeply");
	pc_strlcpy(nb, base, sizeof(nb));
	if (json_is_object(v)) {
		id = json_string_value(json_object_get(v, "$id"));
		if (id != NULL && d == SC_D7 && json_object_get(v, "$ref"))
			id = NULL;	/* draft-07: $ref hides its siblings */
		if (id != NULL && d == SC_D7 && id[0] == '#') {
			if (snprintf(anc, sizeof(anc), "%s%s", base, id) >=
			    (int)sizeof(anc))
				return sc_fail(c, PC_E_LIMIT, "$id too long");
			if ((rc = put_uri(c, anc, v)) != 0)
				return rc;
		} else if (id != NULL) {
			if (sc_uri_resolve(base, id, nb, sizeof(nb)) != 0)
				return sc_fail(c, PC_E_LIMIT, "$id too long");
			strip_empty_frag(nb);
			if ((rc = put_uri(c, nb, v)) != 0)
				return rc;
			char *h = strchr(nb, '#');
			if (h != NULL)	/* draft-07 "x.json#name" */
				*h = '\0';
		}
		anchor = d == SC_D2020 ?
		    json_string_value(json_object_get(v, "$anchor")) : NULL;
		for (int pass = 0; pass < 2; pass++) {
			if (anchor != NULL) {
				if (snprintf(anc, sizeof(anc), "%s#%s", nb,
				    anchor) >= (int)sizeof(anc))
					return sc_fail(c, PC_E_LIMIT,
					    "$anchor too long");
				if ((rc = put_uri(c, anc, v)) != 0)
					return rc;
			}
			/* A $dynamicAnchor is also a plain anchor. */
			anchor = d == SC_D2020 ? json_string_value(
			    json_object_get(v, "$dynamicAnchor")) : NULL;
		}
	}
	info = calloc(1, sizeof(*info));
	if (info == NULL || (info->base = pc_strndup(nb, strlen(nb))) == NULL ||
	    pc_map_put(c->info, key, info) != 0) {
		if (info != NULL)
			free(info->base);
		free(info);
		return PC_E_NOMEM;
	}
	info->dialect = d;
	if (!json_is_object(v))
		return 0;
	c->depth++;
	rc = index_members(c, v, nb, d);
	c->depth--;
	return rc;
}

int
sc_index(struct sc_compiler *c, json_t *doc, const char *base,
    enum sc_dialect dialect)
{
	char b[SC_MAX_URI];
	int rc;

	pc_strlcpy(b, base, sizeof(b));
	strip_empty_frag(b);
	if ((rc = put_uri(c, b, doc)) != 0)
		return rc;
	return index_walk(c, doc, b, dialect);
}

/* Percent-decode in place; a bad escape is kept as it is. */
static void
pct_decode(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++) {
		int h, l;
		if (*s == '%' &&
		    (h = pc_hex_digit((unsigned char)s[1])) >= 0 &&
		    (l = pc_hex_digit((unsigned char)s[2])) >= 0) {
			*o++ = (char)(h * 16 + l);
			s += 2;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

/* Evaluate a JSON pointer (already percent-decoded) from v. */
static json_t *
pointer_eval(json_t *v, char *ptr)
{
	char *tok = ptr;

	while (v != NULL && *tok == '/') {
		char *end = strchr(tok + 1, '/'), *o, *i;
		char save = '\0';
		if (end != NULL) {
			save = *end;
			*end = '\0';
		}
		for (o = i = tok + 1; *i != '\0'; i++) {
			if (i[0] == '~' && i[1] == '0') {
				*o++ = '~';
				i++;
			} else if (i[0] == '~' && i[1] == '1') {
				*o++ = '/';
				i++;
			} else
				*o++ = *i;
		}
		*o = '\0';
		if (json_is_object(v))
			v = json_object_get(v, tok + 1);
		else if (json_is_array(v)) {
			uint64_t idx;
			if (pc_parse_u64(tok + 1, 0, SIZE_MAX, &idx) != 0 ||
			    (tok[1] == '0' && tok[2] != '\0'))
				v = NULL;
			else
				v = json_array_get(v, (size_t)idx);
		} else
			v = NULL;
		if (end == NULL)
			return v;
		*end = save;
		tok = end;
	}
	return v;
}

int
sc_ref_target(struct sc_compiler *c, const char *base, const char *ref,
    enum sc_dialect dialect, json_t **target)
{
	char abs[SC_MAX_URI], key[SC_MAX_URI + 2];
	char *frag;
	json_t *res, *doc;
	int rc;

	*target = NULL;
	if (sc_uri_resolve(base, ref, abs, sizeof(abs)) != 0)
		return sc_fail(c, PC_E_LIMIT, "$ref too long");
	frag = strchr(abs, '#');
	if (frag != NULL)
		*frag++ = '\0';
	res = pc_map_get(c->uris, abs);
	if (res == NULL && c->resolve != NULL &&
	    (doc = c->resolve(c->arg, abs)) != NULL) {
		if (json_array_append_new(c->s->docs, doc) != 0)
			return PC_E_NOMEM;
		if ((rc = sc_index(c, doc, abs, sc_dialect_of(doc,
		    dialect))) != 0)
			return rc;
		res = doc;
	}
	if (res == NULL)
		return sc_fail(c, PC_E_NOTFOUND, "$ref to an unknown document");
	if (frag == NULL || *frag == '\0') {
		*target = res;
		return 0;
	}
	if (*frag == '/') {
		pct_decode(frag);
		*target = pointer_eval(res, frag);
	} else {
		snprintf(key, sizeof(key), "%s#%s", abs, frag);
		*target = pc_map_get(c->uris, key);
	}
	if (*target == NULL)
		return sc_fail(c, PC_E_NOTFOUND, "$ref target not found");
	return 0;
}

void
sc_compiler_release(struct sc_compiler *c)
{
	size_t pos = 0;
	const char *k;
	void *v;

	if (c->info != NULL) {
		while (pc_map_next(c->info, &pos, &k, &v)) {
			struct sc_info *info = v;
			free(info->base);
			free(info);
		}
	}
	pc_map_free(c->info);
	pc_map_free(c->uris);
	pc_map_free(c->memo);
	c->info = NULL;
	c->uris = NULL;
	c->memo = NULL;
}
