/*
 * Redaction: keeps secrets out of the audit log, the gateway's own logs and
 * error messages (issue 5). See docs/redaction.md for the rules.
 *
 * A redactor is built once (pc_redactor_new, then add_key / add_value while
 * it is private to one thread) and is then immutable: any number of threads
 * may call pc_redact_json / pc_redact_text on it concurrently.
 *
 * Three ways a value is recognised as secret:
 *  - by key name: the value under a sensitive object key (built-in names,
 *    the "contains" rule, plus names added with pc_redactor_add_key);
 *  - by schema: a property whose (tool inputSchema) subschema says
 *    writeOnly: true or format: "password";
 *  - by value: any occurrence of a secret the gateway knows (resolved
 *    ${env:...} / ${file:...} values, the pepper...) in any string.
 * Every match becomes the marker PC_REDACTED.
 */
#ifndef PC_REDACT_H
#define PC_REDACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PC_REDACTED "<redacted>"

/* Known values shorter than this are ignored: an 8-byte minimum keeps a
 * short env value ("1", "true", "prod") from blanking every log line. */
#define PC_REDACT_MIN_VALUE 8u

struct pc_redactor;

/* A new redactor with the built-in key names. *out is owned by the caller
 * (pc_redactor_free). 0 or PC_E_NOMEM. */
int pc_redactor_new(struct pc_redactor **out);

/* Add a sensitive key name (copied). Matched exactly after normalizing:
 * ASCII case folded, '-', '_', '.' and ' ' dropped. 0, PC_E_INVAL (empty or
 * longer than 255 bytes), PC_E_LIMIT (too many keys) or PC_E_NOMEM. */
int pc_redactor_add_key(struct pc_redactor *r, const char *name);

/* Add a secret value (copied; the copy is wiped by pc_redactor_free).
 * Values shorter than PC_REDACT_MIN_VALUE are ignored (returns 0). The
 * JSON-escaped spelling is added too when it differs, so the value is also
 * found in serialized JSON handed to pc_redact_text. 0, PC_E_LIMIT (too many
 * values, or longer than PC_MAX_CONFIG_EXPANDED) or PC_E_NOMEM. */
int pc_redactor_add_value(struct pc_redactor *r, const void *value,
    size_t len);

/*
 * Redact the JSON value v in place. `schema` (borrowed, may be NULL) is the
 * tool's inputSchema describing v; local "$ref"s ("#/...") are followed.
 *  - object member under a sensitive key, or whose subschema is writeOnly /
 *    format: password: the value (of any type) becomes "<redacted>";
 *  - string containing a known value or a credential shape (Bearer token,
 *    pcs_ API key): those bytes become "<redacted>"; object keys too;
 *  - number whose text contains a known value: becomes "<redacted>".
 * Containers nested deeper than PC_MAX_MAX_JSON_DEPTH are replaced by
 * "<redacted>" (fail closed) and PC_E_LIMIT is returned: v is then safe to
 * emit. On PC_E_NOMEM v may be partly redacted: do not emit it.
 */
int pc_redact_json(const struct pc_redactor *r, json_t *v,
    const json_t *schema);

/*
 * An answer on its way to a client (a JSON-RPC response, changed in place):
 * a JSON-RPC error's members, or an isError result's, lose every secret r
 * knows. Failures are where an upstream quotes its own credential; ordinary
 * results are the tool's output and pass as they are. When the redaction
 * fails half way (out of memory, or a secret that starts inside a UTF-8
 * sequence, whose removal leaves a key that is no longer text), nothing of
 * the failure's text leaves: it is replaced by a fixed message. r NULL:
 * no-op.
 */
void pc_redact_rpc_failure(const struct pc_redactor *r, json_t *msg);

/*
 * Whether pc_redact_json(r, v, schema) would change anything, without
 * copying or changing v: 1 (it would, or v is too deep to tell), 0 (v is
 * safe to emit as it is), or PC_E_NOMEM / PC_E_INVAL. The audit log keeps
 * a reference to the arguments instead of a redacted copy when this
 * says 0.
 */
int pc_redact_json_needed(const struct pc_redactor *r, const json_t *v,
    const json_t *schema);

/*
 * Redact a plain string (log message, error text) s[0..len). Returns a new
 * NUL-terminated string (caller frees) in which every known value and every
 * credential shape is replaced: "Bearer <token>" / "Basic <token>" keep the
 * scheme, "pcs_<id>_<secret>" keeps "pcs_<id>_". NULL on allocation failure
 * (or a NULL r / s with len > 0). r may not be NULL.
 */
char *pc_redact_text(const struct pc_redactor *r, const char *s, size_t len);
/* The same for s[0..len) cut from a longer text when cut is true: its end
 * may hold the start of a known value, or of a credential shape, whose rest
 * was cut off and which no longer matches; the output covers only the
 * input before the first byte that could start one (and ends on a UTF-8
 * boundary). For text cut before it is logged (an overlong line of a
 * child's stderr). */
char *pc_redact_text_head(const struct pc_redactor *r, const char *s,
    size_t len, bool cut);

/*
 * v fit to emit: a new reference to v itself when nothing in it needs
 * redacting (the common case: no copy), else a redacted deep copy (one cut
 * at the depth bound counts: it is safe). NULL when that could not be
 * made (no memory): then nothing may be emitted. v is not changed.
 */
json_t *pc_redact_json_copy(const struct pc_redactor *r, json_t *v,
    const json_t *schema);

/*
 * A URI fit for a record (caller frees): the password of its userinfo
 * (scheme://user:<redacted>@host), the value of each query parameter whose
 * name is sensitive (as object keys are: ?token=<redacted>), then every
 * known value and credential shape as in pc_redact_text. NULL on
 * allocation failure.
 */
char *pc_redact_uri(const struct pc_redactor *r, const char *uri);

/* Wipes the stored values and frees. Accepts NULL. */
void pc_redactor_free(struct pc_redactor *r);

#endif
