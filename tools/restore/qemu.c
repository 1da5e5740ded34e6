/* The restored VM's QEMU process: its command line, start, end and log
 * (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcres/log.h"
#include "restore.h"

#define FIXED_ARGS 16        /* QEMU's arguments besides QEMU-ARGS */
#define KILL_GRACE_MS 5000   /* SIGTERM to SIGKILL */
#define LOG_TAIL_BYTES 4096
#define LOG_TAIL_LINES 20

/* A QEMU option string being built; ok turns false when it overflows. */
struct optbuf {
	char *s;
	size_t len, used;
	bool ok;
};

/* Appends text to b as it is. */
static void put_raw(struct optbuf *b, const char *text)
{
	size_t n = strlen(text);

	if (!b->ok || b->used + n >= b->len) {
		b->ok = false;
		return;
	}
	memcpy(b->s + b->used, text, n + 1);
	b->used += n;
}

/* Appends value to b with its commas doubled, as QEMU's option syntax
 * wants inside a value. */
static void put_value(struct optbuf *b, const char *value)
{
	for (; *value && b->ok; value++)
		put_raw(b, *value == ',' ? ",," : (char[2]){ *value, '\0' });
}

/* Appends ",key=value" to b. */
static void put_prop(struct optbuf *b, const char *key, const char *value)
{
	put_raw(b, ",");
	put_raw(b, key);
	put_raw(b, "=");
	put_value(b, value);
}

/* Formats the dcres-split object's properties into b. */
static void split_object(const struct rst_run *r, struct optbuf *b)
{
	/* A VM on one host keeps all its RAM there. */
	uint64_t local_size = r->nhosts == 1 ? r->ram_size
					     : r->hosts[0].capacity * RST_PAGE_SIZE;
	char local[32], servers[RST_MAX_HOSTS * 260];
	struct optbuf sb = { servers, sizeof(servers), 0, true };

	servers[0] = '\0';
	for (unsigned k = 1; k < r->nhosts; k++) {
		put_raw(&sb, k > 1 ? ";" : "");
		put_raw(&sb, r->hosts[k].name);
	}
	snprintf(local, sizeof(local), "%llu", (unsigned long long)local_size);
	put_raw(b, "dcres-split,id=dcres-split0");
	put_prop(b, "memdev", r->cd.loc.main_file.block_id);
	put_prop(b, "local-size", local);
	put_prop(b, "servers", servers);
	put_prop(b, "psk-file", r->psk_file);
	put_prop(b, "ckpt-root", r->root);
	put_prop(b, "restore-plan", r->plan_path);
	put_prop(b, "restore-lazy", r->opts.lazy ? "on" : "off");
}

/* Builds QEMU's argv into argv (FIXED_ARGS + QEMU-ARGS + 1 entries), its
 * option strings in ram, machine, split and qmp. The memory backend takes
 * the id of the checkpoint's RAM block, which names it in main.mem. */
static int build_argv(const struct rst_run *r, char **argv, struct optbuf *ram,
		      struct optbuf *machine, struct optbuf *split, struct optbuf *qmp)
{
	const char *id = r->cd.loc.main_file.block_id;
	char size[32];
	int n = 0;

	snprintf(size, sizeof(size), "%llu", (unsigned long long)r->ram_size);
	put_raw(ram, "memory-backend-ram");
	put_prop(ram, "id", id);
	put_prop(ram, "size", size);
	put_raw(machine, "memory-backend=");
	put_value(machine, id);
	split_object(r, split);
	put_raw(qmp, "unix:");
	put_value(qmp, r->qmp_path);
	put_raw(qmp, ",server=on,wait=off");
	if (!ram->ok || !machine->ok || !split->ok || !qmp->ok) {
		pr_err("QEMU's arguments for the VM's memory or QMP socket are too long");
		return -ENAMETOOLONG;
	}
	argv[n++] = (char *)r->opts.qemu;
	argv[n++] = "-S";
	argv[n++] = "-incoming";
	argv[n++] = "defer";
	argv[n++] = "-uuid";
	argv[n++] = (char *)r->uuid_str;
	argv[n++] = "-object";
	argv[n++] = ram->s;
	argv[n++] = "-machine";
	argv[n++] = machine->s;
	argv[n++] = "-object";
	argv[n++] = split->s;
	argv[n++] = "-qmp";
	argv[n++] = qmp->s;
	for (int i = 0; i < r->opts.nqemu_args; i++)
		argv[n++] = r->opts.qemu_args[i];
	argv[n] = NULL;
	return 0;
}

/* Opens QEMU's log (truncated, 0600) and writes the command line into it
 * first; returns the fd (close-on-exec) or a negative errno. */
static int open_log(const struct rst_run *r, char *const *argv)
{
	int fd = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0) {
		pr_perror("create %s", r->log_path);
		return -errno;
	}
	f = fdopen(dup(fd), "w");
	if (f) {
		fprintf(f, "# dcres-restore started:");
		for (int i = 0; argv[i]; i++)
			fprintf(f, " %s", argv[i]);
		fprintf(f, "\n");
		fclose(f);
	}
	return fd;
}

/* In the child: detaches from the tool's session, stdin from /dev/null,
 * output to log_fd, default signal handling, then runs QEMU. On failure
 * writes errno to err_fd and exits 127. */
static void __attribute__((noreturn)) exec_child(char *const *argv, int log_fd, int err_fd)
{
	int null_fd = open("/dev/null", O_RDONLY), e;
	sigset_t none;

	setsid();
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0) {
		e = errno;
	} else {
		execvp(argv[0], argv);
		e = errno;
	}
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

int qemu_start(struct rst_run *r)
{
	static char ram_s[2 * DCRES_MAPPED_RAM_ID_MAX + 64],
		machine_s[2 * DCRES_MAPPED_RAM_ID_MAX + 32],
		split_s[3 * 2 * PATH_MAX + RST_MAX_HOSTS * 260 + 2 * DCRES_MAPPED_RAM_ID_MAX],
		qmp_s[2 * PATH_MAX];
	struct optbuf ram = { ram_s, sizeof(ram_s), 0, true };
	struct optbuf machine = { machine_s, sizeof(machine_s), 0, true };
	struct optbuf split = { split_s, sizeof(split_s), 0, true };
	struct optbuf qmp = { qmp_s, sizeof(qmp_s), 0, true };
	char **argv = calloc(FIXED_ARGS + (size_t)r->opts.nqemu_args + 1, sizeof(*argv));
	int pipefd[2], log_fd = -1, child_err = 0, ret;
	pid_t pid;
	ssize_t n;

	if (!argv)
		return -ENOMEM;
	ret = build_argv(r, argv, &ram, &machine, &split, &qmp);
	if (!ret && (log_fd = open_log(r, argv)) < 0)
		ret = log_fd;
	if (!ret && pipe2(pipefd, O_CLOEXEC) < 0) {
		ret = -errno;
		pr_perror("pipe");
	}
	if (ret)
		goto out;
	pid = fork();
	if (pid == 0)
		exec_child(argv, log_fd, pipefd[1]);
	close(pipefd[1]);
	if (pid < 0) {
		ret = -errno;
		pr_perror("fork");
		close(pipefd[0]);
		goto out;
	}
	/* Nothing comes through the pipe once exec succeeded: it closes. */
	do
		n = read(pipefd[0], &child_err, sizeof(child_err));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n > 0) {
		waitpid(pid, NULL, 0);
		pr_err("cannot run QEMU %s: %s", r->opts.qemu, strerror(child_err));
		ret = -child_err;
		goto out;
	}
	r->qemu_pid = pid;
	r->qemu_started_at = rst_now_ms();
	pr_debug("QEMU started, pid %d, log %s", (int)pid, r->log_path);
out:
	if (log_fd >= 0)
		close(log_fd);
	free(argv);
	return ret;
}

void qemu_log_tail(const struct rst_run *r)
{
	char buf[LOG_TAIL_BYTES + 1], *start;
	int fd = open(r->log_path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;
	int lines = 0;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	n = size < 0 ? -1 : pread(fd, buf, LOG_TAIL_BYTES,
				  size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	for (start = buf + n; start > buf; start--)
		if (start[-1] == '\n' && ++lines == LOG_TAIL_LINES)
			break;
	pr_err("QEMU's log %s ends with:", r->log_path);
	for (char *line = strtok(start, "\n"); line; line = strtok(NULL, "\n"))
		fprintf(stderr, "  | %s\n", line);
}

bool qemu_alive(struct rst_run *r)
{
	int status;

	if (!r->qemu_pid)
		return false;
	if (waitpid(r->qemu_pid, &status, WNOHANG) != r->qemu_pid)
		return true;
	if (WIFSIGNALED(status))
		pr_err("QEMU (pid %d) was killed by signal %d", (int)r->qemu_pid,
		       WTERMSIG(status));
	else
		pr_err("QEMU (pid %d) exited with status %d", (int)r->qemu_pid,
		       WEXITSTATUS(status));
	qemu_log_tail(r);
	r->qemu_pid = 0;
	return false;
}

void qemu_kill(struct rst_run *r)
{
	int64_t deadline = rst_now_ms() + KILL_GRACE_MS;

	if (!r->qemu_pid)
		return;
	kill(r->qemu_pid, SIGTERM);
	while (waitpid(r->qemu_pid, NULL, WNOHANG) == 0) {
		if (rst_now_ms() >= deadline) {
			kill(r->qemu_pid, SIGKILL);
			waitpid(r->qemu_pid, NULL, 0);
			break;
		}
		usleep(50000);
	}
	pr_info("QEMU (pid %d) was stopped", (int)r->qemu_pid);
	r->qemu_pid = 0;
}
