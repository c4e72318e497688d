/*
 * Logger. Writes whole lines with one write(2) so that records from the
 * gateway never interleave mid-line even when stderr is shared.
 */
#include "log.h"
#include "errors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum pc_log_level log_level = PC_LOG_INFO;
static pc_log_filter_fn log_filter;
static void *log_filter_arg;

void
pc_log_set_filter(pc_log_filter_fn fn, void *arg)
{
	log_filter = fn;
	log_filter_arg = arg;
}

char *
pc_log_redact(const char *s, size_t len)
{
	return pc_log_redact_head(s, len, false);
}

char *
pc_log_redact_head(const char *s, size_t len, bool cut)
{
	char *c;

	if (log_filter != NULL)
		return log_filter(log_filter_arg, s, len, cut);
	if ((c = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(c, s, len);
	c[len] = '\0';
	return c;
}

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
pc_log_set_level(enum pc_log_level lvl)
{
	log_level = lvl;
}

enum pc_log_level
pc_log_get_level(void)
{
	return log_level;
}

int
pc_log_level_parse(const char *s, enum pc_log_level *out)
{
	for (int i = 0; i <= PC_LOG_ERROR; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum pc_log_level)i;
			return 0;
		}
	}
	return PC_E_INVAL;
}

static void
emit(enum pc_log_level lvl, const char *func, const char *msg, json_t *fields)
{
	struct timeval tv;
	struct tm tm;
	char ts[64];
	json_t *rec;
	char *line;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)tv.tv_usec);

	rec = json_object();
	if (rec == NULL)
		return;
	json_object_set_new(rec, "ts", json_string(ts));
	json_object_set_new(rec, "level", json_string(level_names[lvl]));
	if (func != NULL)
		json_object_set_new(rec, "func", json_string(func));
	/* json_string() refuses invalid UTF-8; a child's stderr may hold any
	 * bytes, so fall back to a lossless-enough placeholder. */
	json_t *m = json_string(msg);
	json_object_set_new(rec, "msg", m ? m : json_string("<non-utf8 message>"));
	if (fields != NULL)
		json_object_update_missing(rec, fields);
	line = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	if (line == NULL)
		return;
	if (log_filter != NULL) {
		/* Whole line: a secret may sit in the message or any field, in
		 * its JSON-escaped spelling. */
		char *f = log_filter(log_filter_arg, line, strlen(line), false);
		free(line);
		if (f == NULL)
			return;
		line = realloc(f, strlen(f) + 2);
		if (line == NULL) {
			free(f);
			return;
		}
	}
	size_t n = strlen(line);
	line[n] = '\n';	/* json_dumps leaves room for the NUL we overwrite */
	ssize_t w = write(STDERR_FILENO, line, n + 1);
	(void)w;
	free(line);
}

void
pc_log_msg(enum pc_log_level lvl, const char *func, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (lvl < log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit(lvl, func, buf, NULL);
}

void
pc_log_fields(enum pc_log_level lvl, const char *func, const char *msg,
    json_t *fields)
{
	if (lvl < log_level)
		return;
	emit(lvl, func, msg, fields);
}
