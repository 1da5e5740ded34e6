/* Test helpers: a real dcres-memserver on a free loopback port, a test key,
 * and whether userfaultfd is available. */
#ifndef DCRES_TEST_MEMSERVER_SPAWN_H
#define DCRES_TEST_MEMSERVER_SPAWN_H

#include <sys/types.h>

#include "dcres/auth.h"

struct test_memserver {
	pid_t pid;
	char addr[64];  /* "127.0.0.1:PORT" */
};

/* Starts binary with --capacity capacity --dir dir --psk-file keyfile (plus
 * --no-populate) and waits until it accepts an authenticated connection
 * with psk. The server dies with the test process. Returns 0 or -errno. */
int test_memserver_start(struct test_memserver *s, const char *binary, const char *capacity,
			 const char *dir, const char *keyfile, const struct dcres_psk *psk);

/* Stops the server (SIGSTOP) and returns once it is stopped (kill only
 * asks); -ECHILD if it did not stop (it died). */
int test_memserver_stop(const struct test_memserver *s);

/* Kills the server (SIGKILL) and reaps it. */
void test_memserver_kill(struct test_memserver *s);

/* True when this process may create a userfaultfd (the pager needs one). */
int test_uffd_available(void);

/* Writes a 0600 key file with a fixed test key at path and loads it. */
int test_write_key(const char *path, struct dcres_psk *psk);

#endif
