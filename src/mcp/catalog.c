/*
 * The aggregated catalogue (see catalog.h and docs/aggregation.md).
 *
 * Each upstream slot keeps, per kind, the items it last listed in their
 * exposed form (deep copies with the name or URI already substituted), so a
 * page is a plain deep copy. Per kind, a merged view (the visible items in
 * config order) and an open-addressing hash table keyed by the exposed
 * name/URI are rebuilt whenever a slot changes. Rebuilding is O(items) and
 * happens only on list changes; lookups, which happen on every tools/call,
 * are one keyed hash and a short probe.
 *
 * The view's buffers are sized for every valid item, hidden ones included.
 * Removing items therefore never needs to allocate, which is what lets
 * pc_catalog_clear() be infallible, and a failed pc_catalog_set() leaves the
 * previous state untouched.
 */
#include "mcp/catalog.h"

#include "lib/errors.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/map.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The MCP spec's tool-name limit (SEP-986). */
#define CAT_MAX_NAME		PC_MAX_NAME_LEN

/* An exposed URI longer than this is dropped: no real resource needs it and
 * every page copies it. */
#define CAT_MAX_URI		PC_MAX_URI_LEN

/* Cursor: base64url of "<kind>:<offset>"; the longest decoded form
 * ("templates:" + 20 digits) is 30 bytes, so 64 encoded chars is ample. */
#define CAT_MAX_CURSOR		64u
#define CAT_MAX_CURSOR_RAW	48u

#define CAT_SEP_LEN		(sizeof(PC_NAME_SEP) - 1)

struct cat_item {
	json_t *obj;		/* exposed form, owned */
	const char *exposed;	/* borrowed from obj, never modified */
	size_t exposed_len;
	char *orig;		/* the upstream's own name/URI, owned */
	uint64_t hash;		/* of exposed, with the catalogue's key */
	size_t up;
};

struct cat_slot {
	struct cat_item *items;
	size_t n;
};

struct cat_upstream {
	int declared;
	char *prefix;		/* "" when unprefixed */
	size_t prefix_len;
	struct cat_slot kinds[PC_CAT__N];
};

struct cat_view {
	struct cat_item **list;	/* visible items, in exposed order */
	size_t n;
	size_t cap;		/* >= every valid item, hidden ones included */
	struct cat_item **tab;	/* open addressing, NULL = empty */
	size_t tab_size;	/* power of two, >= 2 * cap */
	uint64_t gen;
};

struct pc_catalog {
	uint64_t k0, k1;	/* hash key: upstreams choose our keys */
	struct cat_upstream *ups;
	size_t n_ups;		/* slots allocated: highest idx + 1 */
	struct cat_view views[PC_CAT__N];
};

static const char *const kind_names[PC_CAT__N] = {
	"tools", "prompts", "resources", "templates"
};

static const char *const kind_keys[PC_CAT__N] = {
	"name", "name", "uri", "uriTemplate"
};

/* --- hashing -------------------------------------------------------------- */

/*
 * Keyed with a per-process random key: the keys come from upstreams, and a
 * plain hash would let one of them degrade every lookup to a scan.
 */
static uint64_t
cat_hash(const struct pc_catalog *cat, const char *s, size_t len)
{
	return pc_siphash(cat->k0, cat->k1, s, len);
}

static struct cat_item *
tab_find(const struct cat_view *v, uint64_t h, const char *s, size_t len)
{
	if (v->tab_size == 0)
		return NULL;
	size_t mask = v->tab_size - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct cat_item *it = v->tab[i];
		if (it == NULL)
			return NULL;
		if (it->hash == h && it->exposed_len == len &&
		    memcmp(it->exposed, s, len) == 0)
			return it;
	}
}

/* Caller guarantees a free slot (load <= 1/2) and that the key is absent. */
static void
tab_put(struct cat_view *v, struct cat_item *it)
{
	size_t mask = v->tab_size - 1;
	size_t i = (size_t)it->hash & mask;

	while (v->tab[i] != NULL)
		i = (i + 1) & mask;
	v->tab[i] = it;
}

/* --- validation ----------------------------------------------------------- */

static int
name_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int
name_ok(const char *s, size_t len)
{
	if (len == 0 || len > CAT_MAX_NAME)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * A prefix must split back unambiguously from both forms: no "__" inside
 * and no trailing '_' (else "a_" + "__" + "x" reads as "a" + "__" + "_x"),
 * and nothing outside the name alphabet, which also keeps '+' and ':' out.
 */
static int
prefix_ok(const char *p, size_t len)
{
	if (len == 0)
		return 1;
	if (len > PC_MAX_UPSTREAM_NAME || p[len - 1] == '_' ||
	    strstr(p, PC_NAME_SEP) != NULL)
		return 0;
	return name_ok(p, len);
}

static const struct cat_upstream *
up_get(const struct pc_catalog *cat, size_t idx)
{
	if (cat == NULL || idx >= cat->n_ups || !cat->ups[idx].declared)
		return NULL;
	return &cat->ups[idx];
}

/* The prefixed upstream whose prefix is exactly p[0..len), or NULL. */
static const struct cat_upstream *
up_by_prefix(const struct pc_catalog *cat, const char *p, size_t len,
    size_t *idx)
{
	if (len == 0)
		return NULL;
	for (size_t i = 0; i < cat->n_ups; i++) {
		const struct cat_upstream *u = &cat->ups[i];
		if (u->declared && u->prefix_len == len &&
		    memcmp(u->prefix, p, len) == 0) {
			*idx = i;
			return u;
		}
	}
	return NULL;
}

static const char *
up_label(const struct cat_upstream *u)
{
	return u->prefix_len > 0 ? u->prefix : "(unprefixed)";
}

/* --- construction --------------------------------------------------------- */

int
pc_catalog_new(struct pc_catalog **out)
{
	struct pc_catalog *cat;
	uint64_t key[2];

	*out = NULL;
	cat = calloc(1, sizeof(*cat));
	if (cat == NULL)
		return PC_E_NOMEM;
	/* Without the CSPRNG the table still works, only less flood-proof. */
	if (pc_random_bytes(key, sizeof(key)) != 0) {
		key[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)cat;
		key[1] = pc_now_ms() * 0x9e3779b97f4a7c15ULL;
	}
	cat->k0 = key[0];
	cat->k1 = key[1];
	*out = cat;
	return 0;
}

static void
slot_free(struct cat_slot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		json_decref(s->items[i].obj);
		free(s->items[i].orig);
	}
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

void
pc_catalog_free(struct pc_catalog *cat)
{
	if (cat == NULL)
		return;
	for (size_t i = 0; i < cat->n_ups; i++) {
		for (int k = 0; k < PC_CAT__N; k++)
			slot_free(&cat->ups[i].kinds[k]);
		free(cat->ups[i].prefix);
	}
	free(cat->ups);
	for (int k = 0; k < PC_CAT__N; k++) {
		free(cat->views[k].list);
		free(cat->views[k].tab);
	}
	free(cat);
}

int
pc_catalog_add_upstream(struct pc_catalog *cat, size_t idx, const char *prefix)
{
	struct cat_upstream *ups;
	size_t len, dummy;
	char *p;

	if (cat == NULL || prefix == NULL || idx >= PC_MAX_UPSTREAMS ||
	    idx < cat->n_ups)
		return PC_E_INVAL;
	len = strlen(prefix);
	if (!prefix_ok(prefix, len) ||
	    up_by_prefix(cat, prefix, len, &dummy) != NULL)
		return PC_E_INVAL;
	p = pc_strndup(prefix, len);
	if (p == NULL)
		return PC_E_NOMEM;
	ups = realloc(cat->ups, (idx + 1) * sizeof(*ups));
	if (ups == NULL) {
		free(p);
		return PC_E_NOMEM;
	}
	/* Slots skipped over (disabled upstreams) stay undeclared. */
	memset(&ups[cat->n_ups], 0, (idx + 1 - cat->n_ups) * sizeof(*ups));
	cat->ups = ups;
	cat->n_ups = idx + 1;
	ups[idx].declared = 1;
	ups[idx].prefix = p;
	ups[idx].prefix_len = len;
	return 0;
}

/* --- the merged view ------------------------------------------------------ */

static size_t
total_items(const struct pc_catalog *cat, enum pc_cat_kind kind)
{
	size_t n = 0;

	for (size_t i = 0; i < cat->n_ups; i++)
		n += cat->ups[i].kinds[kind].n;
	return n;
}

/*
 * Make the view able to hold `total` items. Either succeeds or changes
 * nothing; after success the view must be refilled before use.
 */
static int
view_reserve(struct cat_view *v, size_t total)
{
	struct cat_item **list, **tab;
	size_t ts = 16;

	if (total <= v->cap && v->tab_size >= 2 * total)
		return 0;
	while (ts < 2 * total)
		ts *= 2;
	list = calloc(total, sizeof(*list));
	tab = calloc(ts, sizeof(*tab));
	if (list == NULL || tab == NULL) {
		free(list);
		free(tab);
		return PC_E_NOMEM;
	}
	free(v->list);
	free(v->tab);
	v->list = list;
	v->tab = tab;
	v->cap = total;
	v->tab_size = ts;
	v->n = 0;
	return 0;
}

/*
 * An unprefixed upstream's item spelt as another upstream's — a URI
 * "<declared prefix>+rest" or a name "<declared prefix>__rest" — is not
 * listed at all. A URI would be listed as its own but read from the
 * prefixed upstream (rule 1 of pc_catalog_resolve_uri comes first); a name
 * would squat on the other upstream's namespace: rules written for "fs__*"
 * would grant it, and it would hide fs's own item of that name. What a
 * client sees must be what it gets, from whom the name says.
 */
static int
shadowed(const struct pc_catalog *cat, enum pc_cat_kind kind, size_t u,
    const struct cat_item *it, size_t *owner)
{
	const char *sep;
	size_t head;

	if (cat->ups[u].prefix_len > 0)
		return 0;
	if (kind == PC_CAT_TOOLS || kind == PC_CAT_PROMPTS) {
		sep = strstr(it->exposed, PC_NAME_SEP);
		return sep != NULL && up_by_prefix(cat, it->exposed,
		    (size_t)(sep - it->exposed), owner) != NULL;
	}
	head = strcspn(it->exposed, "+:");
	return it->exposed[head] == '+' && it->exposed[head + 1] != '\0' &&
	    up_by_prefix(cat, it->exposed, head, owner) != NULL;
}

/*
 * Recompute the visible list; cannot fail once view_reserve() succeeded.
 * Collisions are logged only when they involve `who` (the upstream whose
 * change triggered this), so a standing collision is not logged again each
 * time some other upstream refreshes its list.
 */
static void
view_fill(struct pc_catalog *cat, enum pc_cat_kind kind, size_t who)
{
	struct cat_view *v = &cat->views[kind];

	if (v->tab_size > 0)
		memset(v->tab, 0, v->tab_size * sizeof(*v->tab));
	v->n = 0;
	for (size_t u = 0; u < cat->n_ups; u++) {
		struct cat_slot *s = &cat->ups[u].kinds[kind];
		for (size_t i = 0; i < s->n; i++) {
			struct cat_item *it = &s->items[i];
			struct cat_item *win;
			size_t owner;

			if (shadowed(cat, kind, u, it, &owner)) {
				if (u == who)
					pc_warn("%s \"%s\" of unprefixed "
					    "upstream %zu is hidden: it reads "
					    "as upstream %s's", kind_names[kind],
					    it->exposed, u,
					    cat->ups[owner].prefix);
				continue;
			}
			win = tab_find(v, it->hash, it->exposed,
			    it->exposed_len);
			if (win != NULL) {
				if (u == who || win->up == who)
					pc_warn("%s \"%s\" of upstream %s is "
					    "hidden by the same name from "
					    "upstream %s", kind_names[kind],
					    it->exposed,
					    up_label(&cat->ups[u]),
					    up_label(&cat->ups[win->up]));
				continue;
			}
			tab_put(v, it);
			v->list[v->n++] = it;
		}
	}
	v->gen++;
}

/* --- set / clear ---------------------------------------------------------- */

/*
 * Build the exposed form of one upstream item. Returns 0 and fills *it,
 * 1 if the item is to be dropped (*why says why), or PC_E_NOMEM.
 */
static int
item_make(const struct pc_catalog *cat, const struct cat_upstream *u,
    size_t up, enum pc_cat_kind kind, json_t *src, struct cat_item *it,
    const char **why)
{
	const char *key = kind_keys[kind];
	const char *orig;
	size_t olen, elen;
	char *exposed = NULL, *ocopy = NULL;
	json_t *obj = NULL, *js;
	int is_name = kind == PC_CAT_TOOLS || kind == PC_CAT_PROMPTS;
	int rc = 1;

	if (!json_is_object(src)) {
		*why = "not an object";
		goto out;
	}
	js = json_object_get(src, key);
	if (!json_is_string(js)) {
		*why = is_name ? "missing or non-string name" :
		    "missing or non-string URI";
		goto out;
	}
	orig = json_string_value(js);
	olen = json_string_length(js);
	if (olen == 0 || strlen(orig) != olen) {
		*why = olen == 0 ? "empty key" : "key contains NUL";
		goto out;
	}
	if (is_name && !name_ok(orig, olen)) {
		*why = olen > CAT_MAX_NAME ? "name too long" :
		    "name has characters outside [A-Za-z0-9_.-]";
		goto out;
	}
	elen = olen;
	if (u->prefix_len > 0)
		elen += u->prefix_len + (is_name ? CAT_SEP_LEN : 1);
	if (is_name ? elen > CAT_MAX_NAME : elen > CAT_MAX_URI) {
		*why = is_name ? "name too long once prefixed" : "URI too long";
		goto out;
	}

	rc = PC_E_NOMEM;
	ocopy = pc_strndup(orig, olen);
	exposed = malloc(elen + 1);
	if (ocopy == NULL || exposed == NULL)
		goto out;
	if (u->prefix_len > 0)
		snprintf(exposed, elen + 1, "%s%s%s", u->prefix,
		    is_name ? PC_NAME_SEP : "+", orig);
	else
		memcpy(exposed, orig, olen + 1);
	obj = json_deep_copy(src);
	if (obj == NULL ||
	    json_object_set_new(obj, key, json_stringn(exposed, elen)) != 0)
		goto out;
	js = json_object_get(obj, key);
	if (!json_is_string(js))
		goto out;

	it->obj = obj;
	it->exposed = json_string_value(js);
	it->exposed_len = elen;
	it->orig = ocopy;
	it->hash = cat_hash(cat, exposed, elen);
	it->up = up;
	obj = NULL;
	ocopy = NULL;
	rc = 0;
out:
	json_decref(obj);
	free(ocopy);
	free(exposed);
	return rc;
}

static bool
slot_same(const struct cat_slot *a, const struct cat_slot *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!json_equal(a->items[i].obj, b->items[i].obj))
			return false;
	return true;
}

/* A slot's items by exposed key (the first of a repeated key). */
static struct pc_map *
slot_index(const struct cat_slot *sl)
{
	struct pc_map *m = pc_map_new();

	for (size_t i = 0; m != NULL && i < sl->n; i++)
		if (pc_map_get(m, sl->items[i].exposed) == NULL &&
		    pc_map_put(m, sl->items[i].exposed, &sl->items[i]) != 0) {
			pc_map_free(m);
			m = NULL;
		}
	return m;
}

static bool
has_equal(const struct pc_map *m, const struct cat_item *it)
{
	const struct cat_item *o = pc_map_get(m, it->exposed);

	return o != NULL && json_equal(o->obj, it->obj);
}

/* The items of a and b with no equal item under the same key on the other
 * side (an altered item: both versions); NULL when out of memory. */
static json_t *
slot_diff(const struct cat_slot *a, const struct cat_slot *b)
{
	struct pc_map *ma = slot_index(a), *mb = slot_index(b);
	json_t *out = json_array();
	const struct cat_slot *side[2] = { a, b };
	const struct pc_map *other[2] = { mb, ma };

	if (ma == NULL || mb == NULL || out == NULL)
		goto fail;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < side[k]->n; i++)
			if (!has_equal(other[k], &side[k]->items[i]) &&
			    json_array_append(out, side[k]->items[i].obj) != 0)
				goto fail;
	pc_map_free(ma);
	pc_map_free(mb);
	return out;
fail:
	pc_map_free(ma);
	pc_map_free(mb);
	json_decref(out);
	return NULL;
}

int
pc_catalog_set(struct pc_catalog *cat, size_t idx, enum pc_cat_kind kind,
    json_t *items)
{
	return pc_catalog_set_diff(cat, idx, kind, items, NULL);
}

int
pc_catalog_set_diff(struct pc_catalog *cat, size_t idx, enum pc_cat_kind kind,
    json_t *items, json_t **changed)
{
	struct cat_upstream *u;
	struct cat_slot fresh = { NULL, 0 }, old;
	size_t n, total;
	int rc;

	if (changed != NULL)
		*changed = NULL;
	if (cat == NULL || (int)kind < 0 || kind >= PC_CAT__N ||
	    up_get(cat, idx) == NULL || !json_is_array(items))
		return PC_E_INVAL;
	u = &cat->ups[idx];
	n = json_array_size(items);
	if (n > PC_MAX_CATALOG_ITEMS) {
		pc_warn("upstream %s listed %zu %s; only the first %u are kept",
		    up_label(u), n, kind_names[kind], PC_MAX_CATALOG_ITEMS);
		n = PC_MAX_CATALOG_ITEMS;
	}
	if (n > 0) {
		fresh.items = calloc(n, sizeof(*fresh.items));
		if (fresh.items == NULL)
			return PC_E_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL;
		rc = item_make(cat, u, idx, kind, json_array_get(items, i),
		    &fresh.items[fresh.n], &why);
		if (rc < 0)
			goto out;
		if (rc == 0)
			fresh.n++;
		else
			pc_warn("upstream %s: %s item %zu dropped: %s",
			    up_label(u), kind_names[kind], i, why);
	}

	/* The same list again (a refresh, a list_changed that changed
	 * nothing here): the view and its generation stay, so clients are
	 * not told of a change there was not. */
	if (slot_same(&u->kinds[kind], &fresh)) {
		rc = 0;
		goto out;
	}
	total = total_items(cat, kind) - u->kinds[kind].n + fresh.n;
	rc = view_reserve(&cat->views[kind], total);
	if (rc != 0)
		goto out;
	if (changed != NULL)
		*changed = slot_diff(&u->kinds[kind], &fresh);
	old = u->kinds[kind];
	u->kinds[kind] = fresh;
	fresh = old;
	view_fill(cat, kind, idx);
	rc = 0;
out:
	/* On success this frees the replaced items, on failure the new ones. */
	slot_free(&fresh);
	return rc;
}

void
pc_catalog_clear(struct pc_catalog *cat, size_t idx)
{
	if (up_get(cat, idx) == NULL)
		return;
	for (int k = 0; k < PC_CAT__N; k++) {
		struct cat_slot *s = &cat->ups[idx].kinds[k];
		if (s->n == 0)
			continue;
		slot_free(s);
		/* Fewer items than before: the buffers are big enough. */
		view_fill(cat, (enum pc_cat_kind)k, SIZE_MAX);
	}
}

/* --- cursors -------------------------------------------------------------- */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of in[0..len) into out (NUL-terminated). */
static void
b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;
		size_t n = len - i >= 3 ? 3 : len - i;
		if (n > 1)
			w |= (uint32_t)in[i + 1] << 8;
		if (n > 2)
			w |= in[i + 2];
		for (size_t j = 0; j < n + 1 && o + 1 < outlen; j++)
			out[o++] = b64url[(w >> (18 - 6 * j)) & 63];
	}
	out[o] = '\0';
}

static int
b64_val(char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(b64url, c);
	return p == NULL ? -1 : (int)(p - b64url);
}

/* Decode; -1 on bad length or characters. Non-canonical trailing bits are
 * caught by the caller re-encoding. */
static int
b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen,
    size_t *olen)
{
	size_t o = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		size_t n = len - i >= 4 ? 4 : len - i;
		uint32_t w = 0;
		for (size_t j = 0; j < 4; j++) {
			int v = j < n ? b64_val(in[i + j]) : 0;
			if (v < 0)
				return -1;
			w = (w << 6) | (uint32_t)v;
		}
		for (size_t j = 0; j < n - 1; j++) {
			if (o >= outlen)
				return -1;
			out[o++] = (unsigned char)(w >> (16 - 8 * j));
		}
	}
	*olen = o;
	return 0;
}

static char *
cursor_make(enum pc_cat_kind kind, size_t off)
{
	char raw[CAT_MAX_CURSOR_RAW], *enc;
	int n;

	n = snprintf(raw, sizeof(raw), "%s:%zu", kind_names[kind], off);
	if (n < 0 || (size_t)n >= sizeof(raw))
		return NULL;
	enc = malloc(CAT_MAX_CURSOR + 1);
	if (enc == NULL)
		return NULL;
	b64_encode((const unsigned char *)raw, (size_t)n, enc,
	    CAT_MAX_CURSOR + 1);
	return enc;
}

static int
cursor_parse(const char *cursor, enum pc_cat_kind kind, size_t *off)
{
	unsigned char raw[CAT_MAX_CURSOR_RAW + 1];
	char again[CAT_MAX_CURSOR + 1];
	size_t len = strnlen(cursor, CAT_MAX_CURSOR + 1), rlen, klen;
	uint64_t v;

	if (len == 0 || len > CAT_MAX_CURSOR ||
	    b64_decode(cursor, len, raw, CAT_MAX_CURSOR_RAW, &rlen) != 0)
		return PC_E_INVAL;
	/* One spelling per cursor: reject stray low bits in the last char. */
	b64_encode(raw, rlen, again, sizeof(again));
	if (strcmp(again, cursor) != 0)
		return PC_E_INVAL;
	raw[rlen] = '\0';
	if (memchr(raw, '\0', rlen) != NULL)
		return PC_E_INVAL;
	klen = strlen(kind_names[kind]);
	if (rlen <= klen + 1 || memcmp(raw, kind_names[kind], klen) != 0 ||
	    raw[klen] != ':')
		return PC_E_INVAL;
	if (pc_parse_u64((const char *)raw + klen + 1, 0, SIZE_MAX, &v) != 0)
		return PC_E_INVAL;
	*off = (size_t)v;
	return 0;
}

/* --- queries -------------------------------------------------------------- */

int
pc_catalog_page(struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *cursor, size_t page_size, json_t **items, char **next)
{
	return pc_catalog_page_where(cat, kind, cursor, page_size, NULL, NULL,
	    items, next);
}

/* Index of the first item at or after i that `keep` accepts (v->n: none). */
static size_t
next_kept(const struct cat_view *v, size_t i,
    bool (*keep)(void *, const json_t *), void *arg)
{
	while (i < v->n && keep != NULL && !keep(arg, v->list[i]->obj))
		i++;
	return i;
}

int
pc_catalog_page_where(struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *cursor, size_t page_size,
    bool (*keep)(void *arg, const json_t *item), void *arg,
    json_t **items, char **next)
{
	const struct cat_view *v;
	json_t *arr = NULL;
	char *nc = NULL;
	size_t off = 0, i, taken = 0;
	int rc = PC_E_INVAL;

	*items = NULL;
	*next = NULL;
	if (cat == NULL || (int)kind < 0 || kind >= PC_CAT__N)
		goto out;
	v = &cat->views[kind];
	if (cursor != NULL && (cursor_parse(cursor, kind, &off) != 0 ||
	    off > v->n))
		goto out;
	/* The cursor counts kept items, not positions in the merged list: a
	 * position would tell a client how many items it may not see (the
	 * gaps between its cursors, the largest offset accepted), and
	 * hidden must look like missing. */
	for (i = next_kept(v, 0, keep, arg); i < v->n && taken < off;
	    i = next_kept(v, i + 1, keep, arg))
		taken++;
	if (taken < off)
		goto out;		/* past the end of what it may see */
	taken = 0;
	if (page_size == 0)
		page_size = PC_DEF_PAGE_SIZE;

	rc = PC_E_NOMEM;
	arr = json_array();
	if (arr == NULL)
		goto out;
	/* A page is never followed by an empty one: the next cursor is
	 * made only when a kept item follows. */
	for (; i < v->n && taken < page_size;
	    i = next_kept(v, i + 1, keep, arg), taken++)
		if (json_array_append_new(arr,
		    json_deep_copy(v->list[i]->obj)) != 0)
			goto out;
	if (i < v->n && (nc = cursor_make(kind, off + taken)) == NULL)
		goto out;
	*items = arr;
	*next = nc;
	arr = NULL;
	rc = 0;
out:
	json_decref(arr);
	return rc;
}

size_t
pc_catalog_count(const struct pc_catalog *cat, enum pc_cat_kind kind)
{
	if (cat == NULL || (int)kind < 0 || kind >= PC_CAT__N)
		return 0;
	return cat->views[kind].n;
}

json_t *
pc_catalog_item(const struct pc_catalog *cat, enum pc_cat_kind kind,
    size_t i, size_t *up_idx)
{
	const struct cat_item *it;

	if (i >= pc_catalog_count(cat, kind))
		return NULL;
	it = cat->views[kind].list[i];
	if (up_idx != NULL)
		*up_idx = it->up;
	return it->obj;
}

uint64_t
pc_catalog_generation(const struct pc_catalog *cat, enum pc_cat_kind kind)
{
	if (cat == NULL || (int)kind < 0 || kind >= PC_CAT__N)
		return 0;
	return cat->views[kind].gen;
}

/* The listed item named `exposed` in a tools/prompts view, or NULL. */
static const struct cat_item *
find_listed(const struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *exposed, size_t *lenp)
{
	size_t len;

	*lenp = 0;
	if (cat == NULL || exposed == NULL ||
	    (kind != PC_CAT_TOOLS && kind != PC_CAT_PROMPTS))
		return NULL;
	/* Anything longer cannot be a valid name; stop before hashing it. */
	len = strnlen(exposed, CAT_MAX_NAME + 1);
	if (len == 0 || len > CAT_MAX_NAME)
		return NULL;
	*lenp = len;
	return tab_find(&cat->views[kind], cat_hash(cat, exposed, len),
	    exposed, len);
}

const json_t *
pc_catalog_find(const struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *exposed)
{
	size_t len;
	const struct cat_item *it = find_listed(cat, kind, exposed, &len);

	return it != NULL ? it->obj : NULL;
}

int
pc_catalog_resolve_name(const struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *exposed, size_t *up_idx, const char **orig, int *listed)
{
	const struct cat_item *it;
	const char *sep;
	size_t len, idx;

	it = find_listed(cat, kind, exposed, &len);
	if (it != NULL) {
		*up_idx = it->up;
		*orig = it->orig;
		*listed = 1;
		return 0;
	}
	if (len == 0)
		return PC_E_NOTFOUND;
	/* Unlisted: only a well-formed name under a declared prefix may be
	 * forwarded, since the caller may pass the rest to the upstream. */
	sep = strstr(exposed, PC_NAME_SEP);
	if (sep == NULL || !name_ok(exposed, len) ||
	    sep[CAT_SEP_LEN] == '\0' ||
	    up_by_prefix(cat, exposed, (size_t)(sep - exposed), &idx) == NULL)
		return PC_E_NOTFOUND;
	*up_idx = idx;
	*orig = sep + CAT_SEP_LEN;
	*listed = 0;
	return 0;
}

static int
uri_found(size_t idx, const char *orig, size_t *up_idx, char **out)
{
	char *s = strdup(orig);

	if (s == NULL)
		return PC_E_NOMEM;
	*up_idx = idx;
	*out = s;
	return 0;
}

int
pc_catalog_resolve_uri(const struct pc_catalog *cat, const char *exposed,
    size_t *up_idx, char **orig)
{
	const struct cat_item *it;
	size_t len, idx, n_unpref = 0, only = 0;
	const char *plus;

	*orig = NULL;
	if (cat == NULL || exposed == NULL || *exposed == '\0')
		return PC_E_NOTFOUND;

	/* 1. "<prefix>+rest": the first '+' before the first ':'. A part
	 * before '+' that is no prefix is a scheme ("git+https:"). */
	len = strcspn(exposed, "+:");
	plus = exposed[len] == '+' ? exposed + len : NULL;
	if (plus != NULL && plus[1] != '\0' &&
	    up_by_prefix(cat, exposed, len, &idx) != NULL)
		return uri_found(idx, plus + 1, up_idx, orig);

	/* 2. Listed by an unprefixed upstream (the winner of any collision). */
	len = strlen(exposed);
	it = tab_find(&cat->views[PC_CAT_RESOURCES],
	    cat_hash(cat, exposed, len), exposed, len);
	if (it != NULL && cat->ups[it->up].prefix_len == 0)
		return uri_found(it->up, it->orig, up_idx, orig);

	/* 3. A template's literal head. An empty head ("{uri}") would claim
	 * every URI for whichever upstream comes first, so it never matches;
	 * a lone unprefixed upstream still gets such URIs through rule 4. */
	for (size_t u = 0; u < cat->n_ups; u++) {
		const struct cat_upstream *up = &cat->ups[u];
		if (!up->declared || up->prefix_len > 0)
			continue;
		n_unpref++;
		only = u;
		const struct cat_slot *s = &up->kinds[PC_CAT_TEMPLATES];
		for (size_t i = 0; i < s->n; i++) {
			size_t lit = strcspn(s->items[i].orig, "{");
			if (lit > 0 && lit <= len &&
			    memcmp(exposed, s->items[i].orig, lit) == 0)
				return uri_found(u, exposed, up_idx, orig);
		}
	}

	/* 4. Nothing else can claim it. */
	if (n_unpref == 1)
		return uri_found(only, exposed, up_idx, orig);
	return PC_E_NOTFOUND;
}

static char *
expose(const struct pc_catalog *cat, size_t up_idx, const char *s,
    const char *sep)
{
	const struct cat_upstream *u = up_get(cat, up_idx);
	size_t n;
	char *out;

	if (u == NULL || s == NULL)
		return NULL;
	if (u->prefix_len == 0)
		return strdup(s);
	n = u->prefix_len + strlen(sep) + strlen(s) + 1;
	out = malloc(n);
	if (out != NULL)
		snprintf(out, n, "%s%s%s", u->prefix, sep, s);
	return out;
}

char *
pc_catalog_expose_uri(const struct pc_catalog *cat, size_t up_idx,
    const char *uri)
{
	return expose(cat, up_idx, uri, "+");
}

char *
pc_catalog_expose_name(const struct pc_catalog *cat, size_t up_idx,
    const char *name)
{
	return expose(cat, up_idx, name, PC_NAME_SEP);
}
