/* Progress of the loading on stderr (restore.h): pages loaded per host.
 * On a terminal one line is redrawn in place; otherwise a line is printed
 * about once a second, and once more when the step is complete. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dcres/appendf.h"
#include "restore.h"

#define PROGRESS_LINE_MAX 4096
#define PROGRESS_PERIOD_MS 1000

static bool drawn;        /* a line without its newline is on the terminal */
static int64_t last_line; /* when the last line was printed (not a tty) */
static bool final_shown;  /* the complete state was printed (not a tty) */

/* Shows line: redrawn on a terminal, else throttled (complete lines once). */
static void show(const char *line, bool complete)
{
	int64_t now = rst_now_ms();

	if (isatty(STDERR_FILENO)) {
		fprintf(stderr, "\r%s\033[K", line);
		drawn = true;
	} else {
		if (complete ? final_shown
			     : last_line && now - last_line < PROGRESS_PERIOD_MS)
			return;
		fprintf(stderr, "%s\n", line);
		last_line = now;
		final_shown = complete;
	}
	fflush(stderr);
}

void progress_servers(const struct rst_run *r)
{
	char line[PROGRESS_LINE_MAX];
	bool complete = true;
	size_t used = 0;

	if (r->nhosts < 2)
		return;
	dcres_appendf(line, PROGRESS_LINE_MAX, &used, "[%6.1fs] loading memory servers:",
	       (double)(rst_now_ms() - r->started_ms) / 1000);
	for (unsigned k = 1; k < r->nhosts; k++) {
		const struct rst_host *h = &r->hosts[k];
		uint64_t loaded = atomic_load(&h->loaded);

		complete &= loaded >= h->pages;
		dcres_appendf(line, PROGRESS_LINE_MAX, &used, "%s %s %llu/%llu", k > 1 ? "," : "", h->name,
		       (unsigned long long)loaded, (unsigned long long)h->pages);
	}
	dcres_appendf(line, PROGRESS_LINE_MAX, &used, " pages");
	show(line, complete);
}

void progress_main(const struct rst_run *r, const char *status, bool has_counts,
		   uint64_t loaded, uint64_t pending)
{
	char line[PROGRESS_LINE_MAX];
	size_t used = 0;

	if (!has_counts)
		return;
	dcres_appendf(line, PROGRESS_LINE_MAX, &used, "[%6.1fs] %s: %s %llu/%llu pages loaded",
	       (double)(rst_now_ms() - r->started_ms) / 1000, status, r->hosts[0].name,
	       (unsigned long long)loaded, (unsigned long long)(loaded + pending));
	show(line, !pending);
}

void progress_end(void)
{
	if (drawn)
		fputc('\n', stderr);
	drawn = false;
	final_shown = false;
	last_line = 0;
}
