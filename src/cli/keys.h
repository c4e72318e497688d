/*
 * `portcullis keys ...`: create, list, show, rotate and revoke API keys in
 * the store named by the config (auth.api_keys).
 */
#ifndef PC_CLI_KEYS_H
#define PC_CLI_KEYS_H

#include <stddef.h>
#include <stdint.h>

/*
 * argv[0] is "keys", argv[1] the subcommand. Loads the config given with
 * -c FILE. Prints results on stdout and errors on stderr. Returns the exit
 * status: 0 success, 1 failure, 2 usage error.
 */
int pc_cli_keys(int argc, char **argv);

/*
 * The same on an explicit store and pepper (borrowed), for callers that
 * already hold them (tests, other commands); -c is then refused.
 * rotation_days 0 means the default policy.
 */
int pc_cli_keys_with(const char *store_path, const unsigned char *pepper,
    size_t pepper_len, uint32_t rotation_days, int argc, char **argv);

/* The usage text of `portcullis keys`, for `portcullis help`. Static. */
const char *pc_cli_keys_usage(void);

#endif
