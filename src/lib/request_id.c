/*
 * Request ids (see util.h): AES-128 of a counter under a per-process key.
 * A block cipher is a permutation of 128-bit blocks, so distinct counters
 * give distinct ids, and without the key an id says nothing about the
 * next one or about how many came before.
 */
#include "util.h"

#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

static EVP_CIPHER_CTX *ctx;	/* keyed once; lives as long as the process */
static uint64_t counter;
static bool broken;

/* Key the cipher; false when it cannot be (then a plain counter is the
 * fallback: still unique, only no longer opaque). */
static bool
keyed(void)
{
	unsigned char key[16];
	bool ok;

	if (ctx != NULL || broken)
		return ctx != NULL;
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL && pc_random_bytes(key, sizeof(key)) == 0 &&
	    EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL) == 1 &&
	    EVP_CIPHER_CTX_set_padding(ctx, 0) == 1;
	explicit_bzero(key, sizeof(key));
	if (!ok) {
		EVP_CIPHER_CTX_free(ctx);
		ctx = NULL;
		broken = true;
	}
	return ok;
}

void
pc_request_id_new(char out[PC_REQUEST_ID_LEN + 1])
{
	unsigned char in[16] = { 0 }, blk[32];
	uint64_t n = ++counter;
	int len = 0;

	for (int i = 0; i < 8; i++)
		in[8 + i] = (unsigned char)(n >> (56 - 8 * i));
	if (!keyed() || EVP_EncryptUpdate(ctx, blk, &len, in, sizeof(in)) != 1 ||
	    len != 16) {
		/* The pid keeps two such processes apart. */
		uint64_t pid = (uint64_t)getpid();
		for (int i = 0; i < 8; i++)
			in[i] = (unsigned char)(pid >> (56 - 8 * i));
		memcpy(blk, in, 16);
	}
	pc_hex_encode(blk, 16, out);
}
