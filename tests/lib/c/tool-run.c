/* Running a command-line tool from a test (tool-run.h). */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "tool-run.h"

#include <sys/wait.h>
#include <time.h>

/* Reads path into buf (size bytes, NUL-terminated). */
static void slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	CHECK(fd >= 0);
	n = read(fd, buf, size - 1);
	CHECK(n >= 0);
	buf[n] = 0;
	close(fd);
}

int test_run_tool(const char *tool, const char *scratch, const char *const *args,
		  struct test_tool_output *o)
{
	char *out = test_path(scratch, "stdout"), *err = test_path(scratch, "stderr");
	const char *argv[TEST_TOOL_MAX_ARGS + 2] = { tool };
	struct timespec t0, t1;
	int status, n = 1;
	pid_t pid;

	for (; args[n - 1]; n++) {
		CHECK(n <= TEST_TOOL_MAX_ARGS);
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(127);
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(WIFEXITED(status));
	slurp(out, o->out, sizeof(o->out));
	slurp(err, o->err, sizeof(o->err));
	fprintf(stderr, "---");
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, ": exit %d (%.2f s)\n%s%s", WEXITSTATUS(status),
		(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, o->out,
		o->err);
	free(out);
	free(err);
	return WEXITSTATUS(status);
}
