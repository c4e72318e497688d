/*
 * Every limit of the gateway, in one place, each with the reason for its value.
 *
 * PC_DEF_* are defaults an operator may change in the config (within the
 * PC_MAX_* ceiling next to it); PC_MAX_* are hard ceilings that no config can
 * raise, because past them a single peer could exhaust the process.
 */
#ifndef PC_LIMITS_H
#define PC_LIMITS_H

/* --- HTTP front ---------------------------------------------------------- */

/* A tools/call with a large argument (a file to write) fits in 1 MiB; 64 MiB
 * is the most we ever buffer for one request. */
#define PC_DEF_MAX_BODY_BYTES        (1024u * 1024u)
#define PC_MAX_MAX_BODY_BYTES        (64u * 1024u * 1024u)

/* Browsers send ~1-2 KiB of headers; bearer tokens add ~2 KiB. */
#define PC_DEF_MAX_HEADER_BYTES      (16u * 1024u)
#define PC_MAX_MAX_HEADER_BYTES      (256u * 1024u)

/* Nesting deeper than this has no legitimate use in tool arguments and costs
 * stack in every recursive walker (jansson, the schema validator). */
#define PC_DEF_MAX_JSON_DEPTH        64u
#define PC_MAX_MAX_JSON_DEPTH        512u

/* One JSON string (after decoding). Large file contents fit. */
#define PC_DEF_MAX_STRING_BYTES      (1024u * 1024u)
/* Elements of one JSON array in a request (arguments included). */
#define PC_DEF_MAX_ARRAY_ITEMS       10000u
#define PC_MAX_MAX_ARRAY_ITEMS       1000000u

/* Requests one client (legacy session, or source address) may have waiting
 * on upstreams at once; more is a flood, not an agent. */
#define PC_DEF_MAX_PENDING_PER_CLIENT 64u
#define PC_MAX_MAX_PENDING_PER_CLIENT 4096u

/* Seconds a connection may sit idle, or send nothing while a request is
 * expected (an inactivity timeout: each byte restarts it; docs/http.md). */
#define PC_DEF_IDLE_TIMEOUT_S        60u
#define PC_DEF_READ_TIMEOUT_S        10u
/* A whole request (TLS handshake, headers and body) must arrive within
 * this of the connection's start or of the end of the previous answer,
 * however slowly its bytes trickle in (slowloris): src/http/conns.c. */
#define PC_DEF_REQUEST_TIMEOUT_S     30u
/* Connections open on the MCP listener, in all and per client address
 * (trusted proxies exempt): past the first, listening pauses; past the
 * second, the newest of that address are closed. */
#define PC_DEF_MAX_CONNECTIONS       1024u
#define PC_MAX_MAX_CONNECTIONS       65536u
#define PC_DEF_MAX_CONNECTIONS_PER_SOURCE 64u

/* Concurrent legacy sessions, and how long an unused one lives. */
#define PC_DEF_MAX_SESSIONS          1024u
#define PC_MAX_MAX_SESSIONS          65536u
/* A quarter of the default table: one principal cannot lock others out. */
#define PC_DEF_MAX_SESSIONS_PER_PRINCIPAL 256u
#define PC_DEF_SESSION_IDLE_S        (30u * 60u)

/* Resources one legacy session may subscribe to: each is an entry in the
 * session and the router (URIs up to max_string_bytes) and, for the first
 * subscriber, a subscribe sent upstream, and an upstream may accept any
 * URI. */
#define PC_MAX_SESSION_SUBS          1024u
/* ...and the bytes of their URIs together (a URI is also capped at
 * PC_MAX_URI_LEN): 1024 sessions hold at most 256 MiB of them. */
#define PC_MAX_SESSION_SUB_BYTES     (256u * 1024u)
/* A child (re)started is told of the subscriptions held for it in one go;
 * past this much queued for it, the rest are marked lost (asked again at
 * the next subscribe) rather than fill its stdin queue to the point where
 * the child is taken for one that stopped reading (PC_MAX_UPSTREAM_WBUF). */
#define PC_SUB_REPLAY_MAX_BYTES      (8u * 1024u * 1024u)

/* Session ids: 32 random bytes, hex encoded (visible ASCII per spec). */
#define PC_SESSION_ID_BYTES          32u

/* Bytes of SSE events queued for one slow stream before it is dropped. */
#define PC_MAX_STREAM_BACKLOG        (4u * 1024u * 1024u)

/* Decoded length of an Mcp-Name / Mcp-Method header value: as long as
 * any URI a resources/read may name (max_header_bytes bounds it first). */
#define PC_MAX_HEADER_VALUE          PC_MAX_URI_LEN

/* A client that closes its connection while its call runs is noticed
 * within this (cancellation latency), see src/http/http.c. */
#define PC_WATCH_SWEEP_MS            100u
/* accept() out of descriptors: listening pauses this long. */
#define PC_ACCEPT_PAUSE_MS           100u

/* JSON-RPC batch (2025-03-26 only): messages in one array. */
#define PC_MAX_BATCH                 64u

/* Records of refusals nobody is accountable for (before authentication),
 * src/limits/flood.h: per source a burst and a steady rate, a global rate
 * for all sources, and how many sources are told apart at once. Beyond
 * them, refusals are counted into one summary record per source and
 * second. A few a second from one address is a typo or a misconfigured
 * client; more is noise an attacker makes to fill the disk. */
#define PC_FLOOD_DEF_BURST           20u
#define PC_FLOOD_DEF_PER_S           5u
#define PC_FLOOD_DEF_GLOBAL          200u
#define PC_FLOOD_SLOTS               1024u
#define PC_FLOOD_REASONS             4u
#define PC_FLOOD_SUMMARY_US          1000000

/* --- upstreams ------------------------------------------------------------ */

/* One line of newline-delimited JSON from a child. Larger results (a big
 * file) are legitimate up to this; a child that never sends '\n' is cut off. */
#define PC_DEF_MAX_LINE_BYTES        (16u * 1024u * 1024u)
#define PC_MAX_MAX_LINE_BYTES        (256u * 1024u * 1024u)

/* A child's stderr line forwarded to the log; longer lines are truncated. */
#define PC_MAX_STDERR_LINE           4096u

/* Per-call timeout and the hard maximum that progress cannot extend. */
#define PC_DEF_CALL_TIMEOUT_MS       30000u
#define PC_DEF_MAX_CALL_TIMEOUT_MS   300000u
#define PC_MAX_CALL_TIMEOUT_MS       (24u * 3600u * 1000u)

/* The era probe (server/discover) and the initialize handshake. */
#define PC_DEF_PROBE_TIMEOUT_MS      5000u
#define PC_DEF_INIT_TIMEOUT_MS       30000u

/* Grace between closing stdin, SIGTERM and SIGKILL at shutdown. */
#define PC_DEF_SHUTDOWN_GRACE_MS     3000u

/* Restart backoff after a crash: doubles from min to max. */
#define PC_DEF_RESTART_MIN_MS        250u
#define PC_DEF_RESTART_MAX_MS        30000u

/* Bytes queued for a child's stdin; a child that stops reading is
 * not allowed to make the gateway buffer without end. */
#define PC_MAX_UPSTREAM_WBUF         (64u * 1024u * 1024u)

/* Outstanding requests to one upstream process. */
#define PC_MAX_UPSTREAM_INFLIGHT     4096u

/* Tools/prompts/resources pages fetched from one upstream when building the
 * catalogue; a server that paginates forever is cut off here. */
#define PC_MAX_CATALOG_PAGES         64u
#define PC_MAX_CATALOG_ITEMS         10000u
/* ...and bytes: one item (a tool with its description and schemas), and
 * one kind of one upstream in all. A server whose list is bigger is
 * truncated (its items past the budget are not offered), an item bigger
 * is dropped: pages of up to max_line_bytes each would otherwise make the
 * catalogue gigabytes. */
#define PC_MAX_CATALOG_ITEM_BYTES    (1024u * 1024u)
#define PC_MAX_CATALOG_BYTES         (32u * 1024u * 1024u)

/* Tool and prompt names: the spec's SHOULD (1..128 chars), prefix included. */
#define PC_MAX_NAME_LEN              128u
/* Resource URIs and templates; longer ones are dropped from the catalogue. */
#define PC_MAX_URI_LEN               (64u * 1024u)

/* Items per page that the gateway returns to clients. */
#define PC_DEF_PAGE_SIZE             100u

/* --- authentication ------------------------------------------------------ */

/* Authorization header value; a JWT with many claims stays well below. */
#define PC_MAX_AUTH_HEADER           8192u
/* A JWKS document, fetched or read from a file. */
#define PC_MAX_JWKS_BYTES            (256u * 1024u)
/* Refetch the JWKS on an unknown kid at most this often, so a flood of
 * tokens with random kids cannot make us hammer the issuer. */
#define PC_JWKS_REFETCH_S            30u
/* A loaded JWKS is refreshed this often (key rotation at the issuer). */
#define PC_JWKS_REFRESH_S            3600u
/* Keys kept from one JWKS, and the longest kid accepted. */
#define PC_JWKS_MAX_KEYS             64u
#define PC_JWT_MAX_KID               256u
/* RSA moduli accepted: 2048 to 8192 bits. */
#define PC_JWT_RSA_MIN_BYTES         256u
#define PC_JWT_RSA_MAX_BYTES         1024u
/* A JWKS fetch gives up after this. */
#define PC_JWKS_FETCH_TIMEOUT_S      10u
/* Default failed authentications per source and window before 429. */
#define PC_DEF_AUTH_MAX_FAILURES     10u
#define PC_DEF_AUTH_FAILURE_WINDOW_S 60u
/* Sources tracked by the failed-authentication limiter (oldest evicted). */
#define PC_MAX_AUTH_FAIL_SOURCES     65536u
/* An API key's last use is written at most this often. */
#define PC_KEY_TOUCH_INTERVAL_S      1u
/* Default rotation policy for API keys. */
#define PC_DEF_KEY_ROTATION_DAYS     90u

/* --- policy ------------------------------------------------------------------ */

/* Rules and argument constraints one configuration may define. */
#define PC_POLICY_MAX_RULES          4096u
#define PC_POLICY_MAX_CONSTRAINTS    4096u
/* Entries of one allow-list (roots, values, hosts, commands). */
#define PC_POLICY_MAX_LIST           1024u
/* A path argument: PATH_MAX; longer is never a file. */
#define PC_POLICY_MAX_PATH           4096u
#define PC_POLICY_MAX_URL            8192u
#define PC_POLICY_MAX_ROLE           64u
/* URL constraints look host names up off the loop (src/lib/resolve.h):
 * workers at most, lookups waiting for one at most (more are refused),
 * the longest name, how long a call waits for its answer (then the URL is
 * refused), and the names one call may need looked up. */
#define PC_RESOLVE_THREADS           4u
#define PC_RESOLVE_QUEUE             256u
#define PC_RESOLVE_HOST_MAX          256u
#define PC_URL_LOOKUP_TIMEOUT_MS     5000u
#define PC_URL_MEMO_MAX              8u

/* --- redaction --------------------------------------------------------------- */

/* Sensitive key names and known secret values one redactor holds. */
#define PC_REDACT_MAX_KEYS           1024u
#define PC_REDACT_MAX_VALUES         8192u
#define PC_REDACT_MAX_KEY_LEN        255u
/* Local $ref hops followed when looking for writeOnly fields (cycles). */
#define PC_REDACT_MAX_REF_HOPS       16u

/* --- rate limits, budgets, breakers -------------------------------------- */

/* A limit key (principal, tool, tenant combined) and a limit's id. */
#define PC_LIMIT_KEY_MAX             256u
#define PC_LIMIT_ID_MAX              64u
/* Limits and budgets one configuration may define. */
#define PC_GCRA_MAX_LIMITS           64u
#define PC_BUDGET_MAX_LIMITS         32u
/* Entries of an in-memory limit table: the default, and the ceiling (each
 * entry is a few hundred bytes; past the table's size new keys are refused,
 * fail closed). */
#define PC_LIMIT_DEF_ENTRIES         65536u
#define PC_LIMIT_MAX_ENTRIES         (4u * 1024u * 1024u)
/* Counters are written to the store this often when something was charged
 * (and at shutdown): a crash forgets at most this much spending, and a
 * snapshot of a full table (~65k rows) stays well under this interval. */
#define PC_LIMIT_SAVE_INTERVAL_MS    5000u

/* --- TLS --------------------------------------------------------------------- */

/* A PEM key file; real keys are a few KiB. */
#define PC_TLS_MAX_KEY_FILE_BYTES    (1024 * 1024)
/* Client certificate chains: leaf, intermediates, root. */
#define PC_TLS_VERIFY_DEPTH          4
/* Session-ticket keys (when tickets are on) rotate this often; the
 * previous key is accepted for one more period. */
#define PC_TLS_TICKET_ROTATE_S       3600u

/* --- config ---------------------------------------------------------------- */

#define PC_MAX_CONFIG_BYTES          (4u * 1024u * 1024u)
#define PC_MAX_UPSTREAMS             256u
#define PC_MAX_FILE_REF_BYTES        (64u * 1024u)
#define PC_MAX_CONFIG_ERRORS         100u
/* YAML nesting in the config; the schema needs 4 levels. */
#define PC_MAX_CONFIG_DEPTH          32u
/* One string value after ${...} expansion. */
#define PC_MAX_CONFIG_EXPANDED       (1024u * 1024u)
/* Entries of one list in the config (origins, argv, env, ...). */
#define PC_MAX_CONFIG_LIST           1024u
/* Ceilings of configurable durations: past them a value is a typo. */
#define PC_MAX_TIMEOUT_MS            (24u * 3600u * 1000u)
#define PC_MAX_SESSION_IDLE_MS       (7u * 24u * 3600u * 1000u)
#define PC_MAX_BACKOFF_MS            (3600u * 1000u)
/* An upstream line must at least hold an initialize reply. */
#define PC_MIN_LINE_BYTES            1024u
/* ttlMs on modern list results: how long a client may cache a list. */
#define PC_DEF_LIST_TTL_MS           30000u

/* Upstream names: [a-z0-9-], 1..32, so prefixed names stay within the
 * 128-character tool-name limit of the spec. */
#define PC_MAX_UPSTREAM_NAME         32u

/* Separator between upstream prefix and tool or prompt name. Chosen because
 * '_' is in the spec's tool-name alphabet and a double one is rare. */
#define PC_NAME_SEP                  "__"

#endif
