/*
 * Structured logging: one JSON object per line on stderr.
 *
 * {"ts":"2026-11-21T12:00:00.123456Z","level":"info","func":"...","msg":"...",...}
 *
 * Messages must never carry secrets: callers log names and codes, not values.
 */
#ifndef PC_LOG_H
#define PC_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct json_t;

enum pc_log_level {
	PC_LOG_DEBUG = 0,
	PC_LOG_INFO,
	PC_LOG_WARN,
	PC_LOG_ERROR,
};

void pc_log_set_level(enum pc_log_level lvl);
enum pc_log_level pc_log_get_level(void);
/* Parse "debug|info|warn|error"; returns 0 or PC_E_INVAL. */
int pc_log_level_parse(const char *s, enum pc_log_level *out);

/*
 * A filter every finished line passes through before it is written (the
 * gateway installs secret redaction here). It returns a new malloc'ed
 * string, or NULL to drop the line (fail closed: a line that could not be
 * filtered is not written). NULL filter: lines are written as they are.
 */
/* cut: line is the head of a longer text (see pc_redact_text_head). */
typedef char *(*pc_log_filter_fn)(void *arg, const char *line, size_t len,
    bool cut);
void pc_log_set_filter(pc_log_filter_fn fn, void *arg);
/* s[0..len) through the filter (a malloc'ed copy without one; NULL when
 * out of memory). For text about to be cut before it is logged: redacted
 * whole first, so that no secret is cut into a prefix the filter would no
 * longer recognise. */
char *pc_log_redact(const char *s, size_t len);
/* The same for the head of a longer text, cut by the caller (cut true): a
 * secret across the cut is not logged by halves. */
char *pc_log_redact_head(const char *s, size_t len, bool cut);

/* printf-style message. */
void pc_log_msg(enum pc_log_level lvl, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Message with extra fields. `fields` (may be NULL) is borrowed: its keys are
 * merged into the record. */
void pc_log_fields(enum pc_log_level lvl, const char *func, const char *msg,
    struct json_t *fields);

#define pc_debug(...) pc_log_msg(PC_LOG_DEBUG, __func__, __VA_ARGS__)
#define pc_info(...)  pc_log_msg(PC_LOG_INFO, __func__, __VA_ARGS__)
#define pc_warn(...)  pc_log_msg(PC_LOG_WARN, __func__, __VA_ARGS__)
#define pc_error(...) pc_log_msg(PC_LOG_ERROR, __func__, __VA_ARGS__)

#endif
