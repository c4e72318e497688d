/*
 * Fuzz target: pc_jwt_check, the parser every bearer token reaches before
 * authentication. The verifier is loaded once from a fixed JWKS (RSA 2048,
 * EC P-256, Ed25519; written to a temporary file, no network) and checks at
 * a fixed time, so the valid seeds in corpus/jwt/ go the whole way through
 * signature and claims.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authn/jwt.h"
#include "lib/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Public keys whose private halves signed the seeds (and were then
 * thrown away). */
static const char jwks[] =
	"{\"keys\":["
	"{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"n\":\"mN"
	"dG_0I-kVnb_kElaNTiRpbQ8dmMeN9J1gJ5hPil-9he6B7HlhR5bNRHq8W_Tk"
	"dMZw4uz2rzdd-Mv_kgYadVhWTSD4pIIGvLT52ijvbi7942ojCgJosJXKX_3m"
	"dwkwsqnnnJJNxTq8BaIMx7A7y0WbAmvXvOol2a3n5-G9BZMyhXc2sVdZpvIw"
	"W5eOF1KJVE_1ClFZ5bVf8QShmp78XeUOene5MOOLPdfn0QdY0yknEF4B3T_8"
	"G9M-6MiXJpl87aYBSBvDjBM7oB6pW1u88bI2iCUroT8UP_BYugoVj2k3ybpq"
	"2VLJdejseEHJNsyfhZ7pQR0qa1BDBt00qcZmrR8Q\",\"e\":\"AQAB\"}"
	","
	"{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\",\"x\":\"ZJ"
	"fWr9dsRX7FaWGpUC1nNQNSPOpsIYMaBAVoOd4YB9E\",\"y\":\"yey3txlN"
	"mlbYN-8XZp1Hqh7wDIPorngqutn4wz6reRw\"}"
	","
	"{\"kty\":\"OKP\",\"kid\":\"ed1\",\"crv\":\"Ed25519\",\"x\":"
	"\"smc5K3u58ZZRTNxmuntFFKKDUvQVI4nTmgAv-qSMQvA\"}"
	"]}";

static char *roles_read[] = { "reader", NULL };
static char *roles_admin[] = { "admin", "reader", NULL };
static struct pc_scope_roles scope_roles[] = {
	{ "tools:read", roles_read, 1 },
	{ "admin", roles_admin, 2 },
};
static struct pc_auth_conf conf = {
	.issuer = "https://issuer.example",
	.resource = "https://mcp.example.com/mcp",
	.leeway_s = 60,
	.scope_roles = scope_roles,
	.nscope_roles = 2,
};

static struct pc_jwt *
verifier(void)
{
	static struct pc_jwt *j;
	char path[] = "/tmp/pc-fuzz-jwks-XXXXXX", err[256];
	FILE *f;
	int fd;

	if (j != NULL)
		return j;
	fd = mkstemp(path);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		abort();
	fputs(jwks, f);
	fclose(f);
	conf.jwks_file = path;
	if (pc_jwt_new(NULL, &conf, &j, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_jwt: %s\n", err);
		abort();
	}
	conf.jwks_file = NULL;
	unlink(path);
	return j;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_jwt *j = verifier();
	struct pc_principal p;
	const char *reason;
	char *tok;

	/* Tokens arrive as C strings; larger ones are cut by the HTTP layer
	 * long before, but let a little more through to hit the bound. */
	if (size > PC_MAX_AUTH_HEADER + 16)
		return 0;
	tok = malloc(size + 1);
	if (tok == NULL)
		return 0;
	memcpy(tok, data, size);
	tok[size] = '\0';
	if (pc_jwt_check(j, tok, INT64_C(1700000000), &p, &reason) == 0) {
		/* Whatever was accepted must be bounded and terminated. */
		if (memchr(p.id, '\0', sizeof(p.id)) == NULL ||
		    memchr(p.roles, '\0', sizeof(p.roles)) == NULL ||
		    memchr(p.scopes, '\0', sizeof(p.scopes)) == NULL ||
		    p.id[0] == '\0')
			abort();
	}
	free(tok);
	return 0;
}
