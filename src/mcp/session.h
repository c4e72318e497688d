/*
 * Legacy (2025-xx) sessions, internal to src/mcp. The transport sees only
 * the accessors in router.h.
 */
#ifndef PC_SESSION_H
#define PC_SESSION_H

#include <jansson.h>
#include <stdint.h>

#include "../lib/limits.h"
#include "router.h"

struct pc_map;

struct pc_session {
	char id[2 * PC_SESSION_ID_BYTES + 1];
	char version[16];
	char owner[2 * 128 + 8];	/* method, tenant and principal id it
					 * belongs to (owner_of) */
	char roles[PC_ROLES_MAX];	/* the owner's roles, as of its last
					 * request: what its notifications
					 * are filtered by */
	char roles_by[PC_CREDENTIAL_ID_MAX];	/* the credential they came
					 * with (pc_principal_credential) */
	json_t *client_caps;		/* from initialize; owned */
	int log_level;			/* index into the syslog-style levels */
	uint64_t last_used_ms;
	unsigned inflight;		/* requests being served */
	struct pc_call *calls;		/* requests being served (list);
					 * at most max_pending_per_client */
	struct pc_map *pending;		/* gateway id -> struct pc_fwd */
	struct pc_map *subs;		/* exposed uri -> (void *)1 */
	size_t sub_bytes;		/* their URIs' lengths, summed */
	const struct pc_sink_ops *stream_ops;	/* GET stream, or NULL */
	void *stream;
	int closing;
};

#endif
