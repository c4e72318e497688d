/* Small helpers every module uses: randomness, clocks, bounded strings. */
#ifndef PC_UTIL_H
#define PC_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Fill buf with n bytes from the kernel CSPRNG. 0 or PC_E_IO. */
int pc_random_bytes(void *buf, size_t n);

/* Write the 2*n lowercase hex digits of in[0..n), plus NUL, into out
 * (room for 2n+1). */
void pc_hex_encode(const void *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int pc_hex_digit(unsigned char c);

/* Write 2*n lowercase hex chars of n random bytes, plus NUL, into out
 * (outlen >= 2n+1). 0 or negative PC_E_*. */
int pc_random_hex(char *out, size_t outlen, size_t n);

/* Monotonic milliseconds. */
uint64_t pc_now_ms(void);
/* Monotonic microseconds (durations, rate buckets). */
int64_t pc_now_us(void);
/* Wall-clock microseconds since the Unix epoch, UTC (state that must
 * outlive the process: limit counters). */
int64_t pc_wall_us(void);

/* strdup that aborts on OOM is not allowed here; this returns NULL. */
char *pc_strndup(const char *s, size_t n);

/* Copy with truncation; always NUL-terminates when dstlen > 0.
 * Returns strlen(src) so callers can detect truncation. */
size_t pc_strlcpy(char *dst, const char *src, size_t dstlen);

/* Parse a decimal unsigned integer in [min,max]; whole string must be used.
 * 0 or PC_E_INVAL. */
int pc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Read fd to EOF into a new NUL-terminated buffer (*out, caller frees; it
 * may hold a secret: wipe before freeing) of at most max bytes. Reads to
 * EOF rather than trusting st_size: the file may change under us.
 * 0, PC_E_LIMIT (longer than max), PC_E_IO (errno set), PC_E_NOMEM.
 */
int pc_read_fd_bounded(int fd, size_t max, char **out, size_t *len);

/* Value of a base64url digit (RFC 4648 §5), or -1. */
int pc_b64url_val(unsigned char c);

/*
 * Take node out of the doubly linked list whose first element is `head`
 * (an lvalue), linked through its fields `next` and `prev`, which are left
 * NULL. A node that is not linked (both NULL, not the head) is untouched.
 */
#define PC_LIST_UNLINK(head, node, next, prev) do {			\
	if ((node)->prev != NULL)					\
		(node)->prev->next = (node)->next;			\
	else if ((head) == (node))					\
		(head) = (node)->next;					\
	if ((node)->next != NULL)					\
		(node)->next->prev = (node)->prev;			\
	(node)->next = (node)->prev = NULL;				\
} while (0)

/* Constant-time equality of two buffers of equal length. */
int pc_ct_equal(const void *a, const void *b, size_t n);

/* SipHash-2-4 of data under the key (k0, k1): a keyed hash for tables
 * whose keys clients choose (tool names, tenants, addresses), so that they
 * cannot build colliding keys without the random key. */
uint64_t pc_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);

/*
 * A new request id (request_id.c): 32 lowercase hex digits, 128 random
 * bits from the kernel — they do not tell a client how many requests the
 * gateway has served, and a repeat has a 2^-128 chance per pair. An
 * identifier for correlation (the X-Request-Id header, the audit record's
 * request_id), not a secret: nothing may trust it. One thread only (the
 * event loop's).
 */
#define PC_REQUEST_ID_LEN 32
void pc_request_id_new(char out[PC_REQUEST_ID_LEN + 1]);

/* Length of the well-formed UTF-8 sequence at s[0..n) (lead byte >= 0x80),
 * or 0: overlong forms, surrogates and code points past U+10FFFF are
 * refused, as jansson refuses them. */
size_t pc_utf8_seq(const unsigned char *s, size_t n);

#endif
