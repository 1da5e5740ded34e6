/* dcres-inspect: the list of checks and the capture of library errors into
 * them (inspect.h). dcres libraries log one line per failure, naming the
 * file and page; while a thread has a check to capture into, its error
 * lines become that check's errors instead of going to stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "inspect.h"

static _Thread_local struct insp_check *capture_into;

/* Exits on an allocation failure (nothing sensible can follow). */
static void *must(void *p)
{
	if (!p) {
		fprintf(stderr, "dcres-inspect: out of memory\n");
		exit(1);
	}
	return p;
}

/* Returns a malloc'd string formatted from fmt and ap. */
static char *vformat(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		must(NULL);
	return s;
}

/* Appends line to ck's errors. */
static void add_error(struct insp_check *ck, char *line)
{
	ck->errors = must(reallocarray(ck->errors, ck->nerrors + 1, sizeof(*ck->errors)));
	ck->errors[ck->nerrors++] = line;
	ck->state = INSP_FAILED;
}

/* The log sink: error lines of a capturing thread go to its check, without
 * the "error (file.c:N): " prefix; everything else to stderr. Called under
 * the log's lock. */
static void sink(enum dcres_log_level level, const char *line)
{
	const char *msg = strstr(line, "): ");

	if (capture_into && level == DCRES_LOG_ERROR) {
		add_error(capture_into, must(strdup(msg ? msg + 3 : line)));
		return;
	}
	fprintf(stderr, "%s\n", line);
}

void insp_log_init(void)
{
	dcres_log_set_sink(sink);
}

struct insp_check *insp_check_new(struct inspect *in, enum insp_section section,
				  const char *fmt, ...)
{
	struct insp_check *ck = must(calloc(1, sizeof(*ck)));
	va_list ap;

	va_start(ap, fmt);
	ck->name = vformat(fmt, ap);
	va_end(ap);
	ck->section = section;
	ck->state = INSP_OK;
	if (!in->checks_tail)
		in->checks_tail = &in->checks;
	*in->checks_tail = ck;
	in->checks_tail = &ck->next;
	return ck;
}

void insp_capture(struct insp_check *ck)
{
	capture_into = ck;
}

struct insp_check *insp_check_begin(struct inspect *in, enum insp_section section,
				    const char *fmt, ...)
{
	struct insp_check *ck;
	char *name;
	va_list ap;

	va_start(ap, fmt);
	name = vformat(fmt, ap);
	va_end(ap);
	ck = insp_check_new(in, section, "%s", name);
	free(name);
	insp_capture(ck);
	return ck;
}

void insp_check_fail(struct insp_check *ck, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_error(ck, vformat(fmt, ap));
	va_end(ap);
}

void insp_check_clear_errors(struct insp_check *ck)
{
	for (size_t i = 0; i < ck->nerrors; i++)
		free(ck->errors[i]);
	free(ck->errors);
	ck->errors = NULL;
	ck->nerrors = 0;
}

void insp_check_detail(struct insp_check *ck, const char *fmt, ...)
{
	va_list ap;

	free(ck->detail);
	va_start(ap, fmt);
	ck->detail = vformat(fmt, ap);
	va_end(ap);
}

void insp_check_end(struct insp_check *ck, int ret)
{
	if (capture_into == ck)
		capture_into = NULL;
	if (ret < 0 && !ck->nerrors)
		insp_check_fail(ck, "%s: %s", ck->name, strerror(-ret));
	ck->state = ck->nerrors ? INSP_FAILED : INSP_OK;
}

void insp_check_skip(struct insp_check *ck, const char *why)
{
	if (capture_into == ck)
		capture_into = NULL;
	ck->state = INSP_SKIPPED;
	free(ck->detail);
	ck->detail = must(strdup(why));
}

unsigned insp_failures(const struct inspect *in)
{
	unsigned n = 0;

	for (const struct insp_check *ck = in->checks; ck; ck = ck->next)
		n += ck->state == INSP_FAILED;
	return n;
}

const char *insp_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

void insp_free(struct inspect *in)
{
	struct insp_check *ck = in->checks;

	while (ck) {
		struct insp_check *next = ck->next;

		insp_check_clear_errors(ck);
		free(ck->name);
		free(ck->detail);
		free(ck);
		ck = next;
	}
	in->checks = NULL;
	in->checks_tail = NULL;
	for (size_t i = 0; i < in->nbad; i++)
		free(in->bad[i].file);
	free(in->bad);
	for (size_t i = 0; i < in->ndisks; i++) {
		free(in->disks[i].file);
		free(in->disks[i].backing_file);
	}
	free(in->disks);
	for (unsigned i = 0; i < in->nchain; i++)
		free(in->chain[i]);
	free(in->chain);
	free(in->hosts);
	if (in->dir_opened)
		ckptdir_close(&in->c);
	in->dir_opened = false;
}
