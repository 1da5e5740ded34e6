#define _GNU_SOURCE
#include "memserver-spawn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/memclient.h"

static void drop_line(enum dcres_log_level level, const char *line)
{
	(void)level;
	(void)line;
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

int test_memserver_start(struct test_memserver *s, const char *binary, const char *capacity,
			 const char *dir, const char *keyfile, const struct dcres_psk *psk)
{
	int port = free_port();

	if (port < 0)
		return -EADDRNOTAVAIL;
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", port);
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		execl(binary, binary, "--listen", s->addr, "--capacity", capacity, "--dir", dir,
		      "--psk-file", keyfile, "--no-populate", "--log-level", "warn", (char *)NULL);
		perror("exec dcres-memserver");
		_exit(127);
	}
	dcres_log_set_sink(drop_line); /* "connection refused" until it listens */
	for (int i = 0; i < 200; i++) {
		struct dcres_memclient *c;
		if (dcres_memclient_connect(s->addr, psk, 1000, &c) == 0) {
			dcres_memclient_close(c);
			dcres_log_set_sink(NULL);
			return 0;
		}
		usleep(50000);
	}
	dcres_log_set_sink(NULL);
	test_memserver_kill(s);
	return -ETIMEDOUT;
}

int test_memserver_stop(const struct test_memserver *s)
{
	int status;

	kill(s->pid, SIGSTOP);
	return waitpid(s->pid, &status, WUNTRACED) == s->pid && WIFSTOPPED(status) ? 0 : -ECHILD;
}

void test_memserver_kill(struct test_memserver *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

int test_uffd_available(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return access("/dev/userfaultfd", R_OK | W_OK) == 0;
}

int test_write_key(const char *path, struct dcres_psk *psk)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, "test-key-0123456789abcdef\n", 26) != 26) {
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	return dcres_psk_load(path, psk);
}
