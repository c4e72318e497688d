#include "errors.h"

const char *
pc_strerror(int err)
{
	switch (err) {
	case PC_OK: return "success";
	case PC_E_NOMEM: return "out of memory";
	case PC_E_INVAL: return "invalid argument";
	case PC_E_LIMIT: return "limit exceeded";
	case PC_E_IO: return "I/O error";
	case PC_E_PARSE: return "parse error";
	case PC_E_NOTFOUND: return "not found";
	case PC_E_TIMEOUT: return "timed out";
	case PC_E_CANCELLED: return "cancelled";
	case PC_E_UNAVAIL: return "unavailable";
	case PC_E_PROTO: return "protocol error";
	case PC_E_CONFIG: return "configuration error";
	case PC_E_EXISTS: return "already exists";
	case PC_E_DENIED: return "denied";
	case PC_E_SPAWN: return "spawn failed";
	case PC_E_CLOSED: return "closed";
	case PC_E_AGAIN: return "try again";
	default: return "unknown error";
	}
}
