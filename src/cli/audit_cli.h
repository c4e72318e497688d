/*
 * `portcullis audit ...`: verify a log's chain, follow it, search it.
 */
#ifndef PC_CLI_AUDIT_H
#define PC_CLI_AUDIT_H

/*
 * argv[0] is "audit", argv[1] the subcommand (verify, tail, query).
 * Prints results on stdout and errors on stderr. Returns the exit status:
 * 0 success (verify: chain intact, no warning), 1 failure (verify: a bad
 * record), 2 usage error, 3 (verify only) chain intact with warnings, such
 * as a last file without its closing checkpoint.
 */
int pc_cli_audit(int argc, char **argv);

/* The usage text of `portcullis audit`, for `portcullis help`. Static. */
const char *pc_cli_audit_usage(void);

#endif
