/* Test helper: runs a command-line tool and keeps what it said. */
#ifndef DCRES_TEST_TOOL_RUN_H
#define DCRES_TEST_TOOL_RUN_H

#define TEST_TOOL_MAX_ARGS 32

/* What the last run of a tool wrote, NUL-terminated. */
struct test_tool_output {
	char out[1 << 20], err[1 << 16];
};

/* Runs tool with args (NULL-terminated, at most TEST_TOOL_MAX_ARGS), its
 * stdout and stderr through files in scratch into o; echoes the command,
 * its exit status, time and output to stderr. Returns the exit status; a
 * tool that did not exit (killed by a signal) fails the test. */
int test_run_tool(const char *tool, const char *scratch, const char *const *args,
		  struct test_tool_output *o);

#endif
