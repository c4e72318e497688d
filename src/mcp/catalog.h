/*
 * The aggregated catalogue: tools, prompts, resources and resource
 * templates of every upstream, in one namespace.
 *
 * Naming. Tools and prompts are exposed as <prefix>__<name> (PC_NAME_SEP).
 * Resource URIs and URI templates are exposed as <prefix>+<original-uri>:
 * '+' is legal in a URI scheme, upstream prefixes never contain '+', so the
 * first '+' before the first ':' splits the mapping back unambiguously
 * ("git+https://x" from upstream "fs" becomes "fs+git+https://x").
 * An upstream whose prefix is "" is exposed unprefixed; if two upstreams
 * then expose the same name or URI, the one earlier in the config wins and
 * the other item is hidden (and logged).
 *
 * Order is deterministic: upstreams in config order, each upstream's items
 * in the order it listed them. Pagination is the gateway's own: the cursor
 * is opaque to clients and encodes an offset into the merged list.
 */
#ifndef PC_CATALOG_H
#define PC_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pc_catalog;

enum pc_cat_kind {
	PC_CAT_TOOLS = 0,	/* items keyed by "name" */
	PC_CAT_PROMPTS,		/* items keyed by "name" */
	PC_CAT_RESOURCES,	/* items keyed by "uri" */
	PC_CAT_TEMPLATES,	/* items keyed by "uriTemplate" */
	PC_CAT__N
};

/* 0 or PC_E_NOMEM. */
int pc_catalog_new(struct pc_catalog **out);
void pc_catalog_free(struct pc_catalog *cat);	/* accepts NULL */

/*
 * Declare upstream slot `idx` (0-based, config order, added in increasing
 * order) with its exposed prefix ("" = unprefixed). The prefix is copied.
 * 0, PC_E_INVAL (bad prefix or order), PC_E_NOMEM.
 */
int pc_catalog_add_upstream(struct pc_catalog *cat, size_t idx,
    const char *prefix);

/*
 * Replace upstream idx's items of one kind with `items` (a JSON array as
 * the upstream returned it; borrowed, deep-copied). Items without a valid
 * key (non-string, empty, or for tools/prompts longer than what fits in
 * 128 chars once prefixed, or with characters outside [A-Za-z0-9_.-]) are
 * dropped and logged. Bumps the kind's generation.
 * 0, PC_E_INVAL (not an array / bad idx), PC_E_NOMEM.
 */
int pc_catalog_set(struct pc_catalog *cat, size_t idx, enum pc_cat_kind kind,
    json_t *items);
/*
 * pc_catalog_set(), and what changed: on success with a change, *changed
 * is a new array of the items (exposed form) that differ, each old item
 * with no equal item under its name or URI in the new list and each new
 * item with none in the old (an altered item is there in both versions),
 * so that a client is told of a change only when it may see one of them.
 * *changed is NULL when nothing changed, on failure, and when the
 * difference could not be worked out (no memory): then treat every item
 * as changed.
 */
int pc_catalog_set_diff(struct pc_catalog *cat, size_t idx,
    enum pc_cat_kind kind, json_t *items, json_t **changed);

/* Forget every item of upstream idx (it went away). */
void pc_catalog_clear(struct pc_catalog *cat, size_t idx);

/*
 * One page of exposed items, starting at `cursor` (NULL = first page).
 * *items gets a new JSON array (exposed names/URIs substituted, every other
 * field as the upstream sent it); *next gets a malloc'ed cursor or NULL at
 * the end. 0, PC_E_INVAL (malformed cursor), PC_E_NOMEM.
 */
int pc_catalog_page(struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *cursor, size_t page_size, json_t **items, char **next);

/* The same, listing only the items `keep` accepts (the exposed item is
 * passed, borrowed); keep NULL keeps all. */
int pc_catalog_page_where(struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *cursor, size_t page_size,
    bool (*keep)(void *arg, const json_t *item), void *arg,
    json_t **items, char **next);

/* Number of exposed items of a kind. */
size_t pc_catalog_count(const struct pc_catalog *cat, enum pc_cat_kind kind);

/* The exposed item at position i (borrowed), or NULL. */
json_t *pc_catalog_item(const struct pc_catalog *cat, enum pc_cat_kind kind,
    size_t i, size_t *up_idx);

/* The listed item (exposed form, borrowed, valid until the next
 * pc_catalog_set for its upstream) named `exposed`, or NULL. */
const json_t *pc_catalog_find(const struct pc_catalog *cat,
    enum pc_cat_kind kind, const char *exposed);

/*
 * Exposed tool/prompt name -> owning upstream and its original name
 * (borrowed, valid until the next pc_catalog_set for that upstream).
 * If the name is not listed but carries a declared prefix, the prefix is
 * stripped and *listed is set to 0 (the caller decides whether to forward
 * an unlisted name). 0 or PC_E_NOTFOUND.
 */
int pc_catalog_resolve_name(const struct pc_catalog *cat, enum pc_cat_kind kind,
    const char *exposed, size_t *up_idx, const char **orig, int *listed);

/*
 * Exposed resource URI -> owning upstream and original URI (*orig is
 * malloc'ed). Rules, in order: "<prefix>+rest" of a prefixed upstream;
 * a URI listed by an unprefixed upstream; the first unprefixed upstream
 * with a template whose literal prefix (text before the first '{')
 * matches; the only unprefixed upstream if there is exactly one.
 * 0, PC_E_NOTFOUND, PC_E_NOMEM.
 */
int pc_catalog_resolve_uri(const struct pc_catalog *cat, const char *exposed,
    size_t *up_idx, char **orig);

/* Upstream URI -> exposed form (malloc'ed), or NULL on OOM. */
char *pc_catalog_expose_uri(const struct pc_catalog *cat, size_t up_idx,
    const char *uri);

/* Upstream tool/prompt name -> exposed form (malloc'ed), or NULL on OOM. */
char *pc_catalog_expose_name(const struct pc_catalog *cat, size_t up_idx,
    const char *name);

/* Changes whenever the kind's merged list changes. */
uint64_t pc_catalog_generation(const struct pc_catalog *cat,
    enum pc_cat_kind kind);

#endif
