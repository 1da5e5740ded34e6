/* Progress of the migration on stderr (ckpt.h): bytes written per host.
 * On a terminal one line is redrawn in place; otherwise a line is printed
 * about once a second. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dcres/appendf.h"
#include "ckpt.h"

#define PROGRESS_LINE_MAX 4096
#define PROGRESS_PERIOD_MS 1000

static bool drawn;        /* a line without its newline is on the terminal */
static int64_t last_line; /* when the last line was printed (not a tty) */

/* Formats bytes as "812.3 MiB" into out. */
static void human(uint64_t bytes, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

void progress_show(const struct ckpt_run *r, const struct ckpt_migration *m,
		   const struct ckpt_dcres *d)
{
	bool tty = isatty(STDERR_FILENO);
	int64_t now = ckpt_now_ms();
	char line[PROGRESS_LINE_MAX], num[32];
	size_t used = 0;

	if (!tty && last_line && now - last_line < PROGRESS_PERIOD_MS &&
	    strcmp(m->status, "completed"))
		return;
	human(m->normal_bytes, num, sizeof(num));
	dcres_appendf(line, PROGRESS_LINE_MAX, &used, "[%6.1fs] %-9s main %s", (double)(now - r->started_ms) / 1000,
	       m->status, num);
	for (unsigned k = 0; d && vm_dcres_is_ours(r, d) && k < d->nservers; k++) {
		const struct ckpt_server *s = &d->servers[k];

		if (s->has_ckpt_bytes)
			human(s->ckpt_bytes, num, sizeof(num));
		else
			snprintf(num, sizeof(num), "?");
		dcres_appendf(line, PROGRESS_LINE_MAX, &used, ", %s %s%s", s->address, num,
		       s->connected ? "" : " (out of reach)");
	}
	if (strcmp(m->status, "completed")) {
		human(m->remaining, num, sizeof(num));
		dcres_appendf(line, PROGRESS_LINE_MAX, &used, "; %s to go", num);
	}
	if (tty) {
		fprintf(stderr, "\r%s\033[K", line);
		drawn = true;
	} else {
		fprintf(stderr, "%s\n", line);
		last_line = now;
	}
	fflush(stderr);
}

void progress_end(void)
{
	if (drawn)
		fputc('\n', stderr);
	drawn = false;
}
