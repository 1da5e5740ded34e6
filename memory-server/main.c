/* dcres-memserver: holds pages of split-memory VMs for their main hosts,
 * and saves/restores them for dcres checkpoints. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/log.h"
#include "server.h"

#ifndef DCRES_VERSION
#define DCRES_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dcres-memserver --listen ADDR:PORT --capacity SIZE --dir DIR --psk-file FILE\n"
		"                       [--log-level error|warn|info|debug] [--no-populate]\n"
		"                       [--id-file FILE] [--fault-file FILE]\n"
		"\n"
		"Holds the pages of split-memory VMs (remote paging) and saves them into, or\n"
		"loads them from, dcres checkpoints under DIR.\n"
		"\n"
		"  --listen ADDR:PORT  address to accept main hosts and tools on (ADDR may be empty)\n"
		"  --capacity SIZE     memory for pages, e.g. 512M, 4G (suffixes K, M, G, T)\n"
		"  --dir DIR           checkpoint files are created below DIR (created, mode 0700;\n"
		"                      it must be this user's and writable by no one else;\n"
		"                      no symlink below it is ever followed)\n"
		"  --psk-file FILE     pre-shared key (>= %d bytes, mode 0600); every peer must\n"
		"                      prove it knows the key before anything else\n"
		"  --id-file FILE      this server's id (a UUID), created when missing; restores\n"
		"                      know the server by it (default: a new id at each start)\n"
		"  --log-level LEVEL   default info\n"
		"  --no-populate       do not fault the whole arena in at start-up\n"
		"  --fault-file FILE   for tests: when FILE reads \"stop MSG\" or \"kill MSG\"\n"
		"                      (MSG a request's name, e.g. MSG_CKPT_FINAL), the next\n"
		"                      such request stops (SIGSTOP) or kills this server\n"
		"  --help, --version\n",
		DCRES_PSK_MIN_LEN);
}

/* Parses "512M"-style sizes. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'T': case 't': v <<= 10; /* fall through */
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (*end && !(end[0] == 'i' && end[1] == 'B' && !end[2]) && !(*end == 'B' && !end[1]))
		return -EINVAL;
	*out = v;
	return 0;
}

/* Opens the --dir directory path and checks that it is safe to write
 * checkpoints below: owned by this user and writable by nobody else (a
 * directory others can write to lets them plant files and symlinks).
 * Returns its fd, or -1 after logging why not. */
static int open_state_dir(const char *path)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		pr_perror("--dir %s", path);
		return -1;
	}
	if (fstat(fd, &sb) < 0) {
		pr_perror("--dir %s", path);
	} else if (sb.st_uid != geteuid()) {
		pr_err("--dir %s is owned by uid %u, not by this server's uid %u: refused",
		       path, (unsigned)sb.st_uid, (unsigned)geteuid());
	} else if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		pr_err("--dir %s is writable by others (mode %03o): refused; chmod 700 it",
		       path, (unsigned)(sb.st_mode & 0777));
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

struct signal_waiter {
	struct server *srv;
	sigset_t set;
};

/* Waits for SIGTERM/SIGINT, then shuts the server down cleanly. */
static void *signal_main(void *arg)
{
	struct signal_waiter *w = arg;
	int sig = 0;

	sigwait(&w->set, &sig);
	pr_info("%s: shutting down", strsignal(sig));
	server_shutdown(w->srv);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "dir", required_argument, NULL, 'd' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "no-populate", no_argument, NULL, 'P' },
		{ "fault-file", required_argument, NULL, 'F' },
		{ "id-file", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static struct server srv;
	const char *listen_addr = NULL, *dir = NULL, *psk_file = NULL, *id_file = NULL;
	uint64_t capacity = 0;
	int populate = 1, opt;
	struct signal_waiter waiter = { .srv = &srv };
	pthread_t sig_thread;
	enum dcres_log_level level;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen_addr = optarg; break;
		case 'd': dir = optarg; break;
		case 'k': psk_file = optarg; break;
		case 'P': populate = 0; break;
		case 'F': srv.fault_file = optarg; break;
		case 'I': id_file = optarg; break;
		case 'c':
			if (parse_size(optarg, &capacity) || capacity < DCRES_PAGE_SIZE) {
				fprintf(stderr, "dcres-memserver: --capacity %s: expected a size such as 512M\n", optarg);
				return 2;
			}
			break;
		case 'L':
			if (dcres_log_parse_level(optarg, &level)) {
				fprintf(stderr, "dcres-memserver: --log-level %s: expected error, warn, info or debug\n", optarg);
				return 2;
			}
			dcres_log_set_level(level);
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dcres-memserver %s\n", DCRES_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen_addr || !capacity || !dir || !psk_file || optind != argc) {
		fprintf(stderr, "dcres-memserver: --listen, --capacity, --dir and --psk-file are required\n");
		usage(stderr);
		return 2;
	}
	if (dcres_psk_load(psk_file, &srv.psk) || server_id_load(&srv, id_file))
		return 1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		pr_perror("cannot create --dir %s", dir);
		return 1;
	}
	if (!realpath(dir, srv.dir)) {
		pr_perror("--dir %s", dir);
		return 1;
	}
	srv.dir_fd = open_state_dir(srv.dir);
	if (srv.dir_fd < 0)
		return 1;

	/* Signals go to the waiter thread only; writes to closed peers are errors. */
	sigemptyset(&waiter.set);
	sigaddset(&waiter.set, SIGTERM);
	sigaddset(&waiter.set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &waiter.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (arena_init(&srv.arena, capacity, populate))
		return 1;
	vmstore_init(&srv.store, &srv.arena);
	pthread_mutex_init(&srv.lock, NULL);
	pthread_cond_init(&srv.idle, NULL);
	server_init_slots(&srv);
	if (server_listen(&srv, listen_addr))
		return 1;
	pr_info("dcres-memserver %s (id %s) listening on %s, capacity %llu pages, "
		"checkpoints in %s", DCRES_VERSION, srv.id_str, listen_addr,
		(unsigned long long)srv.arena.nslots, srv.dir);
	pthread_create(&sig_thread, NULL, signal_main, &waiter);
	server_accept_loop(&srv);
	pthread_join(sig_thread, NULL);
	close(srv.listen_fd);
	vmstore_destroy(&srv.store);
	arena_destroy(&srv.arena);
	pr_info("stopped");
	return 0;
}
