/*
 * YAML text -> a tree of positioned nodes, built from libyaml events.
 *
 * The event API is used rather than yaml_parser_load() because the document
 * API silently expands aliases (a billion-laughs file becomes a huge tree)
 * and drops the anchors we want to refuse. Anchors, aliases and explicit
 * tags are refused: the schema has no use for them and a config that means
 * exactly what it says is easier to review.
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "../lib/errors.h"
#include "../lib/util.h"

static struct cfg_node *
node_new(enum cfg_kind kind, const yaml_mark_t *m)
{
	struct cfg_node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->kind = kind;
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	return n;
}

void
cfg_node_free(struct cfg_node *n)
{
	if (n == NULL)
		return;
	/* Depth is bounded by CFG_MAX_DEPTH at build time. */
	for (size_t i = 0; i < n->nkids; i++)
		cfg_node_free(n->kids[i]);
	free(n->kids);
	free(n->s);
	free(n);
}

bool
cfg_node_is_null(const struct cfg_node *n)
{
	if (n->kind != CN_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->s, "~") == 0 ||
	    strcasecmp(n->s, "null") == 0;
}

static int
node_add_kid(struct cfg_node *parent, struct cfg_node *kid)
{
	if (parent->nkids == parent->cap) {
		size_t ncap = parent->cap ? parent->cap * 2 : 8;
		struct cfg_node **k = realloc(parent->kids, ncap * sizeof(*k));
		if (k == NULL)
			return PC_E_NOMEM;
		parent->kids = k;
		parent->cap = ncap;
	}
	parent->kids[parent->nkids++] = kid;
	return 0;
}

/* Anchors and tags are reported but the node is still built, so the rest of
 * the file gets checked too. */
static void
check_props(struct cfg_ctx *ctx, const yaml_mark_t *m, const yaml_char_t *anchor,
    const yaml_char_t *tag)
{
	char b[80];

	if (anchor != NULL)
		cfg_err(ctx, (unsigned)m->line + 1, (unsigned)m->column + 1,
		    "YAML anchors (&%s) and aliases are not supported; "
		    "write the value out",
		    cfg_show((const char *)anchor, strlen((const char *)anchor),
		    b, sizeof(b)));
	if (tag != NULL)
		cfg_err(ctx, (unsigned)m->line + 1, (unsigned)m->column + 1,
		    "YAML tags (%s) are not supported",
		    cfg_show((const char *)tag, strlen((const char *)tag),
		    b, sizeof(b)));
}

static void
report_syntax(struct cfg_ctx *ctx, const yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "malformed YAML";

	if (p->context != NULL)
		cfg_err(ctx, (unsigned)p->problem_mark.line + 1,
		    (unsigned)p->problem_mark.column + 1,
		    "YAML syntax error: %s (%s at line %u, column %u)", problem,
		    p->context, (unsigned)p->context_mark.line + 1,
		    (unsigned)p->context_mark.column + 1);
	else
		cfg_err(ctx, (unsigned)p->problem_mark.line + 1,
		    (unsigned)p->problem_mark.column + 1,
		    "YAML syntax error: %s", problem);
}

/*
 * Every mapping key is a plain string, and no key is given twice: each
 * offending pair is reported and taken out of the tree, so no section's
 * reader ever sees a key without a string (an alias or a "? [x]" key: a
 * NULL dereference in a reader that did not check) or has to remember to
 * refuse a repeated one (roles, identities and tool entries once took
 * the last value, while a printed config showed another).
 */
static void
clean_maps(struct cfg_ctx *ctx, struct cfg_node *n)
{
	size_t w = 0;

	if (n->kind == CN_SEQ)
		for (size_t i = 0; i < n->nkids; i++)
			clean_maps(ctx, n->kids[i]);
	if (n->kind != CN_MAP)
		return;
	for (size_t i = 0; i + 1 < n->nkids; i += 2) {
		struct cfg_node *k = n->kids[i], *v = n->kids[i + 1];
		const struct cfg_node *first = NULL;

		if (k->kind == CN_SCALAR)
			for (size_t j = 0; j < w && first == NULL; j += 2)
				if (strcmp(n->kids[j]->s, k->s) == 0)
					first = n->kids[j];
		if (k->kind != CN_SCALAR || first != NULL) {
			if (first != NULL)
				cfg_err_at(ctx, k, "duplicate key '%s' (first at "
				    "line %u)", k->s, first->line);
			else if (k->kind != CN_BAD)	/* aliases: reported */
				cfg_err_at(ctx, k, "a mapping key must be a "
				    "plain string");
			cfg_node_free(k);
			cfg_node_free(v);
			continue;
		}
		clean_maps(ctx, v);
		n->kids[w++] = k;
		n->kids[w++] = v;
	}
	if (n->nkids % 2 != 0)		/* never from libyaml; be safe */
		cfg_node_free(n->kids[n->nkids - 1]);
	n->nkids = w;
}

int
cfg_yaml_parse(struct cfg_ctx *ctx, const char *buf, size_t len,
    struct cfg_node **rootp)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct cfg_node *stack[CFG_MAX_DEPTH];
	struct cfg_node *root = NULL, *n;
	size_t depth = 0;
	unsigned docs = 0;
	bool done = false;
	int rc = 0;

	*rootp = NULL;
	if (!yaml_parser_initialize(&p))
		return PC_E_NOMEM;
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);

	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			if (p.error == YAML_MEMORY_ERROR) {
				rc = PC_E_NOMEM;
			} else {
				report_syntax(ctx, &p);
				rc = PC_E_CONFIG;
			}
			goto out;
		}
		n = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				cfg_err(ctx, (unsigned)ev.start_mark.line + 1,
				    (unsigned)ev.start_mark.column + 1,
				    "a config file holds one YAML document; "
				    "this is a second one");
				rc = PC_E_CONFIG;
			}
			break;
		case YAML_ALIAS_EVENT:
			cfg_err(ctx, (unsigned)ev.start_mark.line + 1,
			    (unsigned)ev.start_mark.column + 1,
			    "YAML aliases (*name) are not supported; "
			    "write the value out");
			n = node_new(CN_BAD, &ev.start_mark);
			break;
		case YAML_SCALAR_EVENT:
			check_props(ctx, &ev.start_mark, ev.data.scalar.anchor,
			    ev.data.scalar.tag);
			n = node_new(CN_SCALAR, &ev.start_mark);
			if (n == NULL)
				break;
			n->s = pc_strndup((const char *)ev.data.scalar.value,
			    ev.data.scalar.length);
			n->len = ev.data.scalar.length;
			n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			if (n->s == NULL) {
				free(n);
				n = NULL;
			}
			break;
		case YAML_SEQUENCE_START_EVENT:
			check_props(ctx, &ev.start_mark,
			    ev.data.sequence_start.anchor,
			    ev.data.sequence_start.tag);
			n = node_new(CN_SEQ, &ev.start_mark);
			break;
		case YAML_MAPPING_START_EVENT:
			check_props(ctx, &ev.start_mark,
			    ev.data.mapping_start.anchor,
			    ev.data.mapping_start.tag);
			n = node_new(CN_MAP, &ev.start_mark);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		bool is_node = ev.type == YAML_ALIAS_EVENT ||
		    ev.type == YAML_SCALAR_EVENT ||
		    ev.type == YAML_SEQUENCE_START_EVENT ||
		    ev.type == YAML_MAPPING_START_EVENT;
		yaml_event_delete(&ev);
		if (rc != 0)
			goto out;
		if (!is_node)
			continue;
		if (n == NULL) {
			rc = PC_E_NOMEM;
			goto out;
		}
		if (depth == 0) {
			root = n;
		} else if (node_add_kid(stack[depth - 1], n) != 0) {
			cfg_node_free(n);
			rc = PC_E_NOMEM;
			goto out;
		}
		if (n->kind == CN_SEQ || n->kind == CN_MAP) {
			if (depth == CFG_MAX_DEPTH) {
				cfg_err_at(ctx, n, "nesting deeper than %u levels",
				    CFG_MAX_DEPTH);
				rc = PC_E_CONFIG;
				goto out;
			}
			stack[depth++] = n;
		}
	}
	if (root != NULL)
		clean_maps(ctx, root);
	*rootp = root;
	root = NULL;
out:
	cfg_node_free(root);
	yaml_parser_delete(&p);
	return rc;
}
