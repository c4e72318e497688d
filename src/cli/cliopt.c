#include "cliopt.h"

#include <string.h>

int
pc_cliopt_take(const struct pc_cliopt *opts, size_t n, int argc,
    char **argv, int *i, void *obj, const char **what, const char **why)
{
	const char *a = argv[*i];

	for (size_t k = 0; k < n; k++) {
		size_t nl = strlen(opts[k].name);
		const char **slot = (const char **)(void *)
		    ((char *)obj + opts[k].off);
		const char *val;

		if (strncmp(a, opts[k].name, nl) != 0)
			continue;
		if (a[nl] == '=' && nl > 2) {
			val = a + nl + 1;
		} else if (a[nl] == '\0') {
			if (*i + 1 >= argc) {
				*what = a;
				*why = "needs a value";
				return -1;
			}
			val = argv[++*i];
		} else {
			continue;
		}
		if (*slot != NULL) {
			*what = opts[k].name;
			*why = "given twice";
			return -1;
		}
		*slot = val;
		return 1;
	}
	return 0;
}
