/*
 * Runs the JSON Schema validator against the official JSON-Schema-Test-Suite.
 *
 *   schema_suite SUITE_DIR [-v]
 *
 * Reads the *.json files of SUITE_DIR/tests/draft2020-12 and SUITE_DIR/tests/draft7
 * (optional/ is not required) and prints one line per file, e.g.
 * "draft2020-12/allOf.json: 34/34", then the totals. A test group whose
 * schema uses a keyword the validator does not implement is skipped and
 * counted; so is one whose $ref needs a document the suite does not ship
 * (the draft meta-schemas). Exit status is 1 if any other test fails.
 *
 * Remote refs to http://localhost:1234/... are served from SUITE_DIR/remotes
 * by the resolver hook below: the mapping lives in this test program only,
 * the validator itself never reads files or the network.
 *
 * The format tests of optional/format/ for the formats the validator asserts
 * are run too, with assertion on, and reported as informational lines.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "validate/schema.h"

#define REMOTE_PREFIX "http://localhost:1234/"

static const char *const unsupported[] = { "$dynamicRef", "$dynamicAnchor",
    "unevaluatedProperties", "unevaluatedItems", "$recursiveRef",
    "$recursiveAnchor", "$vocabulary" };
#define NUNSUP (sizeof(unsupported) / sizeof(unsupported[0]))

static const char *suite_dir;
static int verbose;
static int seen_unsup[NUNSUP];
static unsigned long n_pass, n_fail, n_skip;
static unsigned long n_skip_remote;
/* Set by the resolver when a fetched document uses an unsupported keyword
 * (index + 1), so the group is skipped like a local use would be. */
static int remote_unsupported;

static int uses_unsupported(json_t *v);

static json_t *
resolve(void *arg, const char *uri)
{
	char path[4096];
	size_t plen = strlen(REMOTE_PREFIX);
	json_t *doc;

	(void)arg;
	if (strncmp(uri, REMOTE_PREFIX, plen) != 0 ||
	    strstr(uri, "..") != NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/remotes/%s", suite_dir, uri + plen);
	doc = json_load_file(path, JSON_ALLOW_NUL, NULL);
	if (doc != NULL && uses_unsupported(doc) >= 0)
		remote_unsupported = uses_unsupported(doc) + 1;
	return doc;
}

/* Index of an unsupported keyword used anywhere in v, or -1. */
static int
uses_unsupported(json_t *v)
{
	const char *k;
	json_t *e;
	size_t i;
	int r;

	if (json_is_object(v)) {
		json_object_foreach(v, k, e) {
			for (size_t u = 0; u < NUNSUP; u++)
				if (strcmp(k, unsupported[u]) == 0)
					return (int)u;
			if ((r = uses_unsupported(e)) >= 0)
				return r;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if ((r = uses_unsupported(e)) >= 0)
				return r;
	}
	return -1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run one file; informational files do not count in the totals. */
static void
run_file(const char *draft, const char *rel, int assert_formats, int info)
{
	char path[4096], err[256];
	json_t *groups, *g, *t;
	size_t gi, ti;
	unsigned long pass = 0, total = 0, skip = 0, fail = 0;
	struct pc_schema_limits lim;

	snprintf(path, sizeof(path), "%s/tests/%s/%s", suite_dir, draft, rel);
	groups = json_load_file(path, JSON_ALLOW_NUL, NULL);
	if (!json_is_array(groups)) {
		json_decref(groups);
		if (info)
			return;	/* not every draft has every format */
		printf("%s/%s: cannot read\n", draft, rel);
		n_fail++;
		json_decref(groups);
		return;
	}
	pc_schema_limits_default(&lim);
	lim.assert_formats = assert_formats;
	json_array_foreach(groups, gi, g) {
		json_t *schema = json_object_get(g, "schema");
		json_t *tests = json_object_get(g, "tests");
		struct pc_schema *s = NULL;
		int u = uses_unsupported(schema), rc = 0;
		size_t ntests = json_array_size(tests);

		const char *ms = json_is_object(schema) ? json_string_value(
		    json_object_get(schema, "$schema")) : NULL;
		/* A custom meta-schema may switch vocabularies off; that is
		 * $vocabulary, which the validator does not implement. */
		if (u < 0 && ms != NULL && strstr(ms, "json-schema.org") == NULL)
			u = (int)NUNSUP - 1;
		if (u >= 0) {
			seen_unsup[u] = 1;
			skip += ntests;
			continue;
		}
		/* draft7 files rarely say $schema; the gateway's default is
		 * 2020-12, so name the dialect as a tool schema would. */
		schema = json_deep_copy(schema);
		if (strcmp(draft, "draft7") == 0 && json_is_object(schema) &&
		    json_object_get(schema, "$schema") == NULL)
			json_object_set_new(schema, "$schema", json_string(
			    "http://json-schema.org/draft-07/schema#"));
		remote_unsupported = 0;
		rc = pc_schema_compile(schema, &lim, resolve, NULL, &s, err,
		    sizeof(err));
		json_decref(schema);
		if (remote_unsupported > 0) {
			seen_unsup[remote_unsupported - 1] = 1;
			skip += ntests;
			pc_schema_free(s);
			continue;
		}
		if (rc == PC_E_NOTFOUND) {
			if (verbose)
				printf("  skip %s/%s: %s: %s\n", draft, rel,
				    json_string_value(json_object_get(g,
				    "description")), err);
			skip += ntests;
			n_skip_remote += ntests;
			continue;
		}
		json_array_foreach(tests, ti, t) {
			int want = json_is_true(json_object_get(t, "valid"));
			int got = -1;
			struct pc_schema_error errs[16];
			unsigned nerrs = 0;

			total++;
			if (rc == 0) {
				int vr = pc_schema_validate(s, json_object_get(t,
				    "data"), errs, &nerrs);
				got = vr == 0 ? 1 : vr == PC_E_INVAL ? 0 : -1;
			}
			if (got == want) {
				pass++;
				continue;
			}
			fail++;
			if (info && !verbose)
				continue;
			printf("  FAIL %s/%s: %s / %s: expected %s, got %s%s%s\n",
			    draft, rel,
			    json_string_value(json_object_get(g, "description")),
			    json_string_value(json_object_get(t, "description")),
			    want ? "valid" : "invalid",
			    rc != 0 ? "compile error: " : got < 0 ? "error" :
			    got ? "valid" : "invalid", rc != 0 ? err : "",
			    nerrs > 0 && !want ? "" : "");
		}
		pc_schema_free(s);
	}
	json_decref(groups);
	if (info) {
		printf("optional %s/%s: %lu/%lu (informational)\n", draft, rel,
		    pass, total);
		return;
	}
	if (skip > 0)
		printf("%s/%s: %lu/%lu (%lu skipped)\n", draft, rel, pass, total,
		    skip);
	else
		printf("%s/%s: %lu/%lu\n", draft, rel, pass, total);
	n_pass += pass;
	n_fail += fail;
	n_skip += skip;
}

static int
run_draft(const char *draft)
{
	char path[4096];
	char *names[256];
	size_t n = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/tests/%s", suite_dir, draft);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "schema-suite: cannot open %s\n", path);
		return -1;
	}
	while ((e = readdir(d)) != NULL && n < 256) {
		size_t l = strlen(e->d_name);
		if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		run_file(draft, names[i], 0, 0);
		free(names[i]);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const char *const drafts[] = { "draft2020-12", "draft7" };
	static const char *const fmts[] = { "date-time", "date", "time",
	    "email", "uri", "uuid", "ipv4", "ipv6", "hostname" };
	int first = 1;

	if (argc < 2) {
		fprintf(stderr, "usage: %s SUITE_DIR [-v]\n", argv[0]);
		return 2;
	}
	suite_dir = argv[1];
	verbose = argc > 2 && strcmp(argv[2], "-v") == 0;
	for (size_t i = 0; i < 2; i++)
		if (run_draft(drafts[i]) != 0)
			return 2;
	for (size_t i = 0; i < 2; i++)
		for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
			char rel[64];
			snprintf(rel, sizeof(rel), "optional/format/%s.json",
			    fmts[f]);
			run_file(drafts[i], rel, 1, 1);
		}
	printf("skipped: %lu need a meta-schema the suite does not ship; "
	    "the rest use unsupported keywords:", n_skip_remote);
	for (size_t u = 0; u < NUNSUP; u++)
		if (seen_unsup[u]) {
			printf("%s %s", first ? "" : ",", unsupported[u]);
			first = 0;
		}
	printf("\nschema-suite: %lu passed, %lu failed, %lu skipped\n", n_pass,
	    n_fail, n_skip);
	return n_fail > 0 ? 1 : 0;
}
