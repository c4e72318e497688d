/*
 * Error codes shared by every module.
 *
 * Fallible functions return 0 or one of these negative codes. Codes are only
 * ever appended: their numbers may appear in logs and audit records.
 */
#ifndef PC_ERRORS_H
#define PC_ERRORS_H

enum {
	PC_OK = 0,
	PC_E_NOMEM = -1,      /* allocation failed */
	PC_E_INVAL = -2,      /* invalid argument or input */
	PC_E_LIMIT = -3,      /* a configured or compiled-in limit was hit */
	PC_E_IO = -4,         /* read/write/syscall failure */
	PC_E_PARSE = -5,      /* malformed input (JSON, YAML, framing) */
	PC_E_NOTFOUND = -6,   /* no such object (session, tool, upstream) */
	PC_E_TIMEOUT = -7,    /* deadline passed */
	PC_E_CANCELLED = -8,  /* caller cancelled */
	PC_E_UNAVAIL = -9,    /* peer not ready / down / restarting */
	PC_E_PROTO = -10,     /* peer broke the protocol */
	PC_E_CONFIG = -11,    /* configuration is invalid */
	PC_E_EXISTS = -12,    /* object already exists */
	PC_E_DENIED = -13,    /* refused by a security check */
	PC_E_SPAWN = -14,     /* child process could not be started */
	PC_E_CLOSED = -15,    /* the object was shut down */
	PC_E_AGAIN = -16,     /* not yet: wait for something, then retry */
	PC_E__LAST = -17
};

/* Static string naming the code; never NULL. */
const char *pc_strerror(int err);

#endif
