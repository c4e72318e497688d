#include "json.h"
#include "errors.h"
#include "limits.h"

#include <stdio.h>
#include <stdbool.h>
#include <string.h>

/*
 * Lexical pre-scan: walks the bytes once, tracking whether we are inside a
 * string, to find the maximum bracket depth and any raw NUL byte. It does not
 * validate JSON (jansson does); it only guarantees jansson never recurses
 * deeper than we allow.
 */
static int
prescan(const char *buf, size_t len, size_t max_depth, enum pc_json_fault *fault,
    char *why, size_t whylen, size_t *longest, size_t *commas, size_t *opens)
{
	size_t depth = 0, start = 0;
	int in_str = 0, esc = 0;

	*longest = 0;
	*commas = 0;
	*opens = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == 0) {
			*fault = PC_JSON_SYNTAX;
			snprintf(why, whylen, "NUL byte at offset %zu", i);
			return PC_E_PARSE;
		}
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"') {
				in_str = 0;
				if (i - start > *longest)
					*longest = i - start;
			}
			continue;
		}
		if (c == '"') {
			in_str = 1;
			start = i + 1;
		}
		else if (c == '{' || c == '[') {
			(*opens)++;
			if (++depth > max_depth) {
				*fault = PC_JSON_DEPTH;
				snprintf(why, whylen,
				    "nesting deeper than %zu levels", max_depth);
				return PC_E_LIMIT;
			}
		} else if (c == '}' || c == ']') {
			if (depth > 0)
				depth--;
		} else if (c == ',') {
			(*commas)++;
		}
	}
	return 0;
}

/* Iterative walk (explicit stack bounded by max_depth) for string lengths
 * and array sizes. */
static int
check_walk(json_t *root, const struct pc_json_limits *lim,
    enum pc_json_fault *fault)
{
	size_t max_string = lim->max_string, max_depth = lim->max_depth;
	struct frame { json_t *v; void *it; size_t idx; } *st;
	size_t sp = 0;
	int rc = 0;

	st = calloc(max_depth + 2, sizeof(*st));
	if (st == NULL)
		return PC_E_NOMEM;
	st[sp++] = (struct frame){ root, NULL, 0 };
	while (sp > 0) {
		struct frame *f = &st[sp - 1];
		json_t *child = NULL;

		if (json_is_string(f->v)) {
			if (json_string_length(f->v) > max_string) {
				*fault = PC_JSON_STRING;
				rc = PC_E_LIMIT;
				goto out;
			}
			sp--;
			continue;
		}
		if (json_is_object(f->v)) {
			if (f->idx == 0)
				f->it = json_object_iter(f->v);
			else
				f->it = json_object_iter_next(f->v, f->it);
			f->idx++;
			if (f->it == NULL) {
				sp--;
				continue;
			}
			if (strlen(json_object_iter_key(f->it)) > max_string) {
				*fault = PC_JSON_STRING;
				rc = PC_E_LIMIT;
				goto out;
			}
			child = json_object_iter_value(f->it);
		} else if (json_is_array(f->v)) {
			if (f->idx == 0 && lim->max_items != 0 &&
			    json_array_size(f->v) > lim->max_items) {
				*fault = PC_JSON_ITEMS;
				rc = PC_E_LIMIT;
				goto out;
			}
			if (f->idx >= json_array_size(f->v)) {
				sp--;
				continue;
			}
			child = json_array_get(f->v, f->idx++);
		} else {
			sp--;
			continue;
		}
		if (sp >= max_depth + 2) {
			rc = PC_E_LIMIT;	/* unreachable after prescan */
			goto out;
		}
		st[sp++] = (struct frame){ child, NULL, 0 };
	}
out:
	free(st);
	return rc;
}

static int
hex4(const char *p, size_t left, unsigned *cp)
{
	unsigned v = 0;

	if (left < 4)
		return 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return 0;
	}
	*cp = v;
	return 1;
}

size_t
pc_json_replace_bad_escapes(char *buf, size_t len)
{
	size_t i = 0, n = 0;
	bool in_str = false;

	while (i < len) {
		unsigned cp, lo;

		if (!in_str) {
			in_str = buf[i++] == '"';
			continue;
		}
		if (buf[i] == '"') {
			in_str = false;
			i++;
			continue;
		}
		if (buf[i] != '\\' || i + 1 >= len) {
			i++;
			continue;
		}
		if (buf[i + 1] != 'u' || !hex4(buf + i + 2, len - i - 2, &cp)) {
			i += 2;		/* \\, \", \n, ...: one escape */
			continue;
		}
		if (cp >= 0xD800 && cp <= 0xDBFF && i + 12 <= len &&
		    buf[i + 6] == '\\' && buf[i + 7] == 'u' &&
		    hex4(buf + i + 8, len - i - 8, &lo) &&
		    lo >= 0xDC00 && lo <= 0xDFFF) {
			i += 12;	/* a proper pair */
			continue;
		}
		if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
			memcpy(buf + i, "\\ufffd", 6);
			n++;
		}
		i += 6;
	}
	return n;
}

int
pc_json_parse(const char *buf, size_t len, const struct pc_json_limits *lim,
    json_t **out, enum pc_json_fault *fault, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *v;
	size_t longest, commas, opens;
	int rc;

	*out = NULL;
	*fault = PC_JSON_OK;
	if (whylen > 0)
		why[0] = '\0';
	rc = prescan(buf, len, lim->max_depth, fault, why, whylen, &longest,
	    &commas, &opens);
	if (rc != 0)
		return rc;
	/* Every value but the first follows a comma or opens a container's
	 * first slot: at most commas + opens + 1 values. Refused before
	 * jansson allocates them: a 16 MiB line of "{}," is 5 million
	 * objects, over a gigabyte. */
	if (lim->max_values != 0 && commas + opens >= lim->max_values) {
		*fault = PC_JSON_ITEMS;
		snprintf(why, whylen, "more than %zu values", lim->max_values);
		return PC_E_LIMIT;
	}
	v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		*fault = PC_JSON_SYNTAX;
		/* jerr.text may quote input (a duplicate key name); report the
		 * position and the class of error only. */
		const char *kind = "invalid JSON";
		if (json_error_code(&jerr) == json_error_duplicate_key)
			kind = "duplicate object key";
		else if (json_error_code(&jerr) == json_error_invalid_utf8)
			kind = "invalid UTF-8";
		else if (json_error_code(&jerr) == json_error_null_character)
			kind = "NUL character in string";
		snprintf(why, whylen, "%s at line %d column %d", kind,
		    jerr.line, jerr.column);
		return PC_E_PARSE;
	}
	/* An escape never decodes to more bytes than it takes, so when every
	 * raw string fits, every decoded one does; an array has at most one
	 * element more than the body has commas. Then skip the walk. */
	rc = longest > lim->max_string || (lim->max_items != 0 &&
	    commas >= lim->max_items) ? check_walk(v, lim, fault) : 0;
	if (rc != 0) {
		json_decref(v);
		if (*fault == PC_JSON_ITEMS)
			snprintf(why, whylen, "array longer than %zu elements",
			    lim->max_items);
		else
			snprintf(why, whylen, "string longer than %zu bytes",
			    lim->max_string);
		return rc == PC_E_NOMEM ? rc : PC_E_LIMIT;
	}
	*out = v;
	return 0;
}

const char *
pc_json_str(const json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	return json_string_value(json_object_get(obj, key));
}

json_t *
pc_json_obj(const json_t *obj, const char *key)
{
	json_t *v;

	if (!json_is_object(obj))
		return NULL;
	v = json_object_get(obj, key);
	return json_is_object(v) ? v : NULL;
}

static size_t
weigh(const json_t *v, size_t cap, size_t sum, unsigned depth)
{
	const char *k;
	json_t *e;
	size_t i;

	if (sum > cap || depth > PC_MAX_MAX_JSON_DEPTH)
		return cap + 1;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return sum + json_string_length(v) + 2;
	case JSON_OBJECT:
		sum += 2;
		json_object_foreach((json_t *)v, k, e) {
			sum = weigh(e, cap, sum + strlen(k) + 4, depth + 1);
			if (sum > cap)
				return sum;
		}
		return sum;
	case JSON_ARRAY:
		sum += 2;
		json_array_foreach(v, i, e) {
			sum = weigh(e, cap, sum + 1, depth + 1);
			if (sum > cap)
				return sum;
		}
		return sum;
	default:
		return sum + 8;
	}
}

size_t
pc_json_weight(const json_t *v, size_t cap)
{
	return v != NULL ? weigh(v, cap, 0, 0) : 0;
}
