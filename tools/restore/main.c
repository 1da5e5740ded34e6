/* dcres-restore: restores a dcres checkpoint onto a set of hosts: the
 * memory servers load their share, then the patched QEMU starts on this
 * host and loads the rest. This file holds the options and the order of
 * the steps (DESIGN.md §6); restore.h lists them. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcres/log.h"
#include "restore.h"

#ifndef DCRES_VERSION
#define DCRES_VERSION "unknown"
#endif

#define DEFAULT_QEMU "qemu-system-x86_64"
#define DEFAULT_TIMEOUT_S 600

volatile sig_atomic_t rst_interrupted;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dcres-restore --ckpt DIR --hosts MAIN[,SUB:PORT...]\n"
		"                     [--capacity HOST=SIZE,...] [--lazy] [--wait-loaded]\n"
		"                     [--json] [--psk FILE] [--replica-hosts LIST]\n"
		"                     [--ckpt-root PATH] [--qemu PATH]\n"
		"                     [--qmp PATH] [--run-dir DIR] [--flat-dir FLAT]\n"
		"                     [--timeout SEC]\n"
		"                     [--log-level LEVEL] -- QEMU-ARGS...\n"
		"\n"
		"Restores the checkpoint in DIR onto this host (MAIN, a label) and the memory\n"
		"servers SUB:PORT, or onto this host alone: hot pages go to this host, the rest\n"
		"to the servers, pages staying where they were when their host is kept. The\n"
		"servers load their share first, in parallel; then the patched QEMU starts\n"
		"with QEMU-ARGS (the VM's machine and devices, without its memory backend) and\n"
		"loads the rest from DIR/main.mem. The tool exits once the VM runs, leaving\n"
		"QEMU running (its pid is in the summary).\n"
		"\n"
		"With --lazy the VM runs before its pages are in: only what is small is checked\n"
		"first (the manifest, main.loc, the presence files, the files' sizes); each\n"
		"server serves its pages from the checkpoint's files at once and loads them in\n"
		"the background, hottest first, as this host does. Every page is checked against\n"
		"its CRC as it loads; one that fails is never given to the guest: the VM pauses\n"
		"with a DCRES_PAGE_ERROR event naming the file and page.\n"
		"\n"
		"Every part is taken from its own host or a copy on another memory server\n"
		"(the servers of --hosts and --replica-hosts and those the manifest names are\n"
		"asked; the copy on the server that loads it is preferred), and pages move\n"
		"server to server. When DIR is missing or has no manifest (the main host\n"
		"that took the checkpoint is gone), the main host's files are fetched into it\n"
		"from a copy.\n"
		"\n"
		"An incremental checkpoint is restored through its chain: its parents are\n"
		"read from their directories (where its manifest says) and the chain is\n"
		"flattened first into FLAT, a new directory the VM reads from (remove it\n"
		"once the VM is gone).\n"
		"\n"
		"  --ckpt DIR          the checkpoint directory\n"
		"  --hosts LIST        this host's name, then the memory servers as HOST:PORT\n"
		"  --capacity LIST     pages each host may hold, as HOST=SIZE (K, M, G, T);\n"
		"                      default: this host the checkpoint's resident set (the\n"
		"                      whole RAM alone), a server its free memory\n"
		"  --lazy              resume the VM before its pages are loaded (see above)\n"
		"  --wait-loaded       with --lazy: wait until every host has loaded them, and\n"
		"                      report when\n"
		"  --json              print the summary as one JSON object\n"
		"  --psk FILE          the memory servers' pre-shared key (needed with servers)\n"
		"  --replica-hosts LIST  more memory servers (HOST:PORT,...) that may hold\n"
		"                      copies of parts; they are not restored onto\n"
		"  --ckpt-root PATH    what the servers' --dir is on this host (default /)\n"
		"  --qemu PATH         the patched QEMU (default $DCRES_QEMU, else "
		DEFAULT_QEMU ")\n"
		"  --qmp PATH          the restored VM's QMP socket (default RUN/qmp.sock)\n"
		"  --run-dir DIR       plan file and QEMU log (default /run/dcres/restore-UUID)\n"
		"  --flat-dir FLAT     where to flatten an incremental checkpoint's chain\n"
		"                      (default /var/tmp/dcres-flat-UUID)\n"
		"  --timeout SEC       how long loading main.mem may take, and the wait of\n"
		"                      --wait-loaded (default %d)\n"
		"  --log-level LEVEL   error, warn, info or debug\n"
		"  --help, --version\n"
		"\n"
		"Exit status: 0 the VM runs, 1 failed (no QEMU left running, the servers hold\n"
		"nothing this run loaded), 2 usage error.\n", DEFAULT_TIMEOUT_S);
}

/* Sets the interrupt flag; the steps check it. */
static void on_signal(int sig)
{
	(void)sig;
	rst_interrupted = 1;
}

/* Installs on_signal for SIGINT and SIGTERM, without SA_RESTART so waits
 * end early, and ignores SIGPIPE (a server closing its connection is an
 * error of the call, not the end of the tool). */
static void install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int64_t rst_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rst_nap(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	if (!rst_interrupted)
		nanosleep(&ts, NULL);
}

int rst_check_interrupt(void)
{
	if (!rst_interrupted)
		return 0;
	pr_err("interrupted");
	return -EINTR;
}

/* Parses the command line into r; returns 0, or 2 after a usage message
 * (or 1 for --help/--version, which exit 0). */
static int parse_options(int argc, char **argv, struct rst_run *r)
{
	static const struct option opts[] = {
		{ "ckpt", required_argument, NULL, 'c' },
		{ "hosts", required_argument, NULL, 'H' },
		{ "capacity", required_argument, NULL, 'C' },
		{ "lazy", no_argument, NULL, 'l' },
		{ "wait-loaded", no_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "psk", required_argument, NULL, 'k' },
		{ "replica-hosts", required_argument, NULL, 'P' },
		{ "ckpt-root", required_argument, NULL, 'r' },
		{ "qemu", required_argument, NULL, 'Q' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "flat-dir", required_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct rst_opts *o = &r->opts;
	const char *hosts = NULL, *capacity = NULL;
	enum dcres_log_level level;
	char *end;
	long n;
	int opt;

	*o = (struct rst_opts){ .ckpt_root = "/", .timeout_s = DEFAULT_TIMEOUT_S };
	/* "+": options end at the first other argument, so QEMU's own
	 * options after "--" are never taken for ours. */
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': o->ckpt = optarg; break;
		case 'H': hosts = optarg; break;
		case 'C': capacity = optarg; break;
		case 'l': o->lazy = true; break;
		case 'w': o->wait_loaded = true; break;
		case 'j': o->json = true; break;
		case 'k': o->psk_path = optarg; break;
		case 'P': o->replica_hosts = optarg; break;
		case 'r': o->ckpt_root = optarg; break;
		case 'Q': o->qemu = optarg; break;
		case 'q': o->qmp_path = optarg; break;
		case 'R': o->run_dir = optarg; break;
		case 'F': o->flat_dir = optarg; break;
		case 't':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 1 || n > 86400 * 7) {
				fprintf(stderr, "dcres-restore: --timeout %s: expected seconds, "
					"1 to 604800\n", optarg);
				return 2;
			}
			o->timeout_s = (unsigned)n;
			break;
		case 'L':
			if (dcres_log_parse_level(optarg, &level)) {
				fprintf(stderr, "dcres-restore: --log-level %s: expected error, "
					"warn, info or debug\n", optarg);
				return 2;
			}
			dcres_log_set_level(level);
			break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("dcres-restore " DCRES_VERSION "\n"); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--")) {
		fprintf(stderr, "dcres-restore: unexpected argument %s (QEMU's arguments go "
			"after --)\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	o->qemu_args = argv + optind;
	o->nqemu_args = argc - optind;
	if (!o->ckpt || !*o->ckpt || !hosts) {
		fprintf(stderr, "dcres-restore: --ckpt and --hosts are required\n");
		usage(stderr);
		return 2;
	}
	if (hosts_parse(r, hosts) || (capacity && hosts_parse_capacity(r, capacity)) ||
	    locate_parse(r, o->replica_hosts))
		return 2;
	if (o->wait_loaded && !o->lazy) {
		fprintf(stderr, "dcres-restore: --wait-loaded goes with --lazy (without it the "
			"VM resumes only once every page is loaded)\n");
		return 2;
	}
	if (!o->qemu)
		o->qemu = getenv("DCRES_QEMU");
	if (!o->qemu || !*o->qemu)
		o->qemu = DEFAULT_QEMU;
	return 0;
}

/* The steps of a restore, in order; stops at the first failure. */
static int run_steps(struct rst_run *r)
{
	int64_t t = rst_now_ms();
	int e;

	/* The checkpoint first: nothing is released or started before every
	 * part of it is found and checks out. */
	if ((e = setup_paths(r)) || (e = locate_main_files(r)) || (e = verify_checkpoint(r)) ||
	    (r->increment && (e = chain_flatten(r))) || (e = locate_parts(r)))
		return e;
	r->verify_ms = rst_now_ms() - t - r->flatten_ms;
	if ((e = setup_run_dir(r)) || (e = rst_check_interrupt()) ||
	    (e = servers_prepare(r)) || (e = rst_check_interrupt()))
		return e;
	t = rst_now_ms();
	if ((e = planning_make(r)))
		return e;
	r->plan_ms = rst_now_ms() - t;
	if ((e = servers_drop_old(r)) || (e = load_servers(r)) || (e = locate_stage_main(r)))
		return e;
	/* The loaders start together: the slowest one's time is theirs. */
	for (unsigned k = 1; k < r->nhosts; k++)
		if (r->hosts[k].loader_ms > r->servers_load_ms)
			r->servers_load_ms = r->hosts[k].loader_ms;
	/* QEMU attaches to the servers itself; a release after a failure
	 * reconnects. */
	servers_close(r);
	if ((e = rst_check_interrupt()) || (e = qemu_start(r)))
		return e;
	return incoming_run(r);
}

/* Undoes what a failed run did: QEMU ended, the servers emptied of what
 * this run loaded. */
static void undo(struct rst_run *r)
{
	progress_end();
	dcres_qmp_close(r->qmp);
	r->qmp = NULL;
	if (r->qemu_pid)
		qemu_kill(r);
	servers_release(r);
	chain_remove(r);
}

int main(int argc, char **argv)
{
	static struct rst_run run;
	int e;

	run.cd.main.fd = -1; /* for verify_close, whatever happens */
	run.started_ms = rst_now_ms();
	e = parse_options(argc, argv, &run);
	if (e)
		return e == 1 ? 0 : e;
	install_signals();
	e = run_steps(&run);
	if (e)
		undo(&run);
	else
		summary_print(&run);
	dcres_qmp_close(run.qmp);
	servers_close(&run);
	if (run.planned)
		dcres_plan_free(&run.plan);
	verify_close(&run);
	if (e) {
		pr_err("restore of %s failed", run.dir[0] ? run.dir : run.opts.ckpt);
		return 1;
	}
	return 0;
}
