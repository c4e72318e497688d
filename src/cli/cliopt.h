/*
 * Options that take a value, shared by the subcommands' parsers (keys,
 * audit): "--name VALUE" or "--name=VALUE" (the second form for long
 * options only), each at most once, stored as a borrowed argv string in a
 * `const char *` field of the caller's options struct.
 */
#ifndef PC_CLIOPT_H
#define PC_CLIOPT_H

#include <stddef.h>

struct pc_cliopt {
	const char *name;	/* "-c", "--config" */
	size_t off;		/* offsetof(the options struct, field) */
};

/*
 * Try argv[*i] against opts. Returns 1 when it was one of them (the value
 * stored in obj; *i moved past a separate value), 0 when it is not, -1 on a
 * usage error: *what names the option and *why says what is wrong.
 */
int pc_cliopt_take(const struct pc_cliopt *opts, size_t n, int argc,
    char **argv, int *i, void *obj, const char **what, const char **why);

#endif
