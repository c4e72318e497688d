/*
 * Request ids (see util.h): 128 bits from the kernel's CSPRNG, drawn 64
 * ids at a time. Not a counter enciphered with AES (an earlier version):
 * the first use of OpenSSL's EVP layer loads its providers, 2.4 MB of
 * resident memory for a gateway that otherwise needs no OpenSSL at all
 * (no TLS, no API keys, no audit log). Random ids lose the guarantee of a
 * permutation that no two ids of one process are equal; a repeat among
 * 2^40 ids (a year at 30,000 requests a second) has a chance of about
 * 2^-49.
 */
#include "util.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define ID_BYTES 16u
#define POOL_IDS 64u

static unsigned char pool[ID_BYTES * POOL_IDS];
static size_t used = sizeof(pool);	/* bytes of pool already handed out */
static uint64_t counter;

void
pc_request_id_new(char out[PC_REQUEST_ID_LEN + 1])
{
	unsigned char blk[ID_BYTES];

	if (used == sizeof(pool) && pc_random_bytes(pool, sizeof(pool)) == 0)
		used = 0;
	if (used < sizeof(pool)) {
		memcpy(blk, pool + used, ID_BYTES);
		used += ID_BYTES;
	} else {
		/* No randomness (getrandom failed): the pid and a counter,
		 * still unique, only no longer opaque. */
		uint64_t pid = (uint64_t)getpid(), n = ++counter;

		for (int i = 0; i < 8; i++) {
			blk[i] = (unsigned char)(pid >> (56 - 8 * i));
			blk[8 + i] = (unsigned char)(n >> (56 - 8 * i));
		}
	}
	pc_hex_encode(blk, ID_BYTES, out);
}
