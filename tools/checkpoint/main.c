/* dcres-checkpoint: checkpoints a VM of the dcres-patched QEMU (split
 * memory or ordinary) into a directory, through QMP. This file holds the
 * options and the order of the steps (DESIGN.md §5); ckpt.h lists them. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "dcres/log.h"

#ifndef DCRES_VERSION
#define DCRES_VERSION "unknown"
#endif

#define CONNECT_TIMEOUT_MS 5000
#define REPLY_TIMEOUT_MS 30000

#define REPLICA_MISSING 1000 /* run_steps: complete, a replica missing */

volatile sig_atomic_t ckpt_interrupted;

/* Parses --name's argument arg as a decimal number in min..max into *out;
 * -EINVAL, with a message, otherwise. */
static int parse_number(const char *name, const char *arg, long min, long max, unsigned *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || end == arg || *end || n < min || n > max) {
		fprintf(stderr, "dcres-checkpoint: --%s %s: expected %ld to %ld\n", name, arg, min,
			max);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dcres-checkpoint --qmp SOCKET --dir DIR [--live] [--parallel N]\n"
		"                        [--max-downtime MS] [--lost-timeout S]\n"
		"                        [--direct-io] [--conventional] [--json]\n"
		"                        [--replicas N --psk FILE]\n"
		"                        [--parent PARENT | --incremental]\n"
		"       dcres-checkpoint --qmp SOCKET --chain DIR --every DURATION [--keep N]\n"
		"                        [--full-every K] [the options above but --dir]\n"
		"                        [--log-level error|warn|info|debug]\n"
		"\n"
		"Checkpoints the VM whose QMP socket is SOCKET into DIR (created, mode 0700;\n"
		"a DIR that already holds a checkpoint is refused). A split-memory VM is saved\n"
		"where its pages are: the main host's in DIR/main.mem, each memory server's in\n"
		"its own files. The VM is stopped during the checkpoint unless --live, and\n"
		"resumed afterwards if it was running. qcow2 disks get an internal snapshot\n"
		"named dcres-<name of DIR>. The files are made durable after the VM resumed;\n"
		"the manifest, written last, makes DIR a checkpoint. A lost memory server or\n"
		"Ctrl-C ends the run within seconds.\n"
		"\n"
		"  --qmp SOCKET     the VM's QMP unix socket (QEMU -qmp unix:SOCKET,server=on)\n"
		"  --dir DIR        the checkpoint directory\n"
		"  --live           save while the VM runs; it stops only at the end\n"
		"  --parallel N     N migration channels (multifd) for the main host's pages\n"
		"  --max-downtime MS  the VM stops for the last pass only once QEMU expects\n"
		"                   to finish within MS milliseconds (QEMU's downtime-limit;\n"
		"                   default 20)\n"
		"  --lost-timeout S  a memory server out of reach for S seconds during the\n"
		"                   migration fails the checkpoint (default 5)\n"
		"  --direct-io      write main.mem with O_DIRECT (needs --parallel N > 1)\n"
		"  --conventional   save every page through the main host, as stock QEMU\n"
		"                   does (paging in the ones on memory servers)\n"
		"  --replicas N     once the VM runs again, copy every host's part to N other\n"
		"                   hosts (memory servers), server to server, so that the\n"
		"                   checkpoint survives the loss of any N hosts\n"
		"  --psk FILE       the memory servers' pre-shared key (for --replicas)\n"
		"  --parent PARENT  incremental: every host saves only the pages that changed\n"
		"                   since checkpoint PARENT's stop point (PARENT must be the\n"
		"                   VM's last checkpoint, of its chain); readers take the\n"
		"                   others from PARENT and its own parents\n"
		"  --incremental    --parent the newest checkpoint in DIR's directory\n"
		"  --every DURATION, --chain DIR  run until SIGTERM, taking a checkpoint into\n"
		"                   DIR/NNNNNN every DURATION (60s, 5m, 1h): a full one first\n"
		"                   and every K-th with --full-every K, increments on the\n"
		"                   previous between; one line per checkpoint on stderr\n"
		"  --keep N         keep the newest N checkpoints of the chain (default 5),\n"
		"                   each restorable: the oldest kept is flattened into a full\n"
		"                   one (dcres-merge --flatten, DCRES_MERGE or from PATH)\n"
		"                   before the older ones are removed\n"
		"  --json           print the summary as one JSON object\n"
		"  --help, --version\n"
		"\n"
		"Exit status: 0 done, 1 failed (the VM is resumed if this tool stopped it),\n"
		"2 usage error, 3 the checkpoint is complete but a replica is missing (the\n"
		"summary says which).\n");
}

/* Parses a duration ("90", "90s", "5m", "1h") into *out seconds (1 s to a
 * day); 2 after a message otherwise. */
static int parse_duration(const char *arg, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);
	unsigned long unit = !*end || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 :
			     !strcmp(end, "h") ? 3600 : 0;

	if (end == arg || !unit || v == 0 || v * unit > 86400) {
		fprintf(stderr, "dcres-checkpoint: --every %s: expected a duration such as "
			"60s, 5m or 1h (at most a day)\n", arg);
		return 2;
	}
	*out = (unsigned)(v * unit);
	return 0;
}

/* Sets the interrupt flag; the steps check it. */
static void on_signal(int sig)
{
	(void)sig;
	ckpt_interrupted = 1;
}

/* Installs on_signal for SIGINT and SIGTERM, without SA_RESTART so waits
 * end early. */
static void install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int64_t ckpt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ckpt_qmp(struct ckpt_run *r, const char *command, struct json_object *args,
	     struct json_object **ret)
{
	char err[DCRES_QMP_ERR_MAX];
	int e;

	if (!r->qmp) {
		json_object_put(args);
		pr_err("%s: not connected to QEMU", command);
		return -ENOTCONN;
	}
	e = dcres_qmp_execute(r->qmp, command, args, ret, err, sizeof(err));
	if (e)
		pr_err("%s", err);
	if (e == -ETIMEDOUT)
		pr_err("QEMU did not answer %s in time (stuck, e.g. on a lost memory server?): "
		       "this tool asks it nothing more; see query-migrate and query-dcres",
		       command);
	if (e == -ECONNRESET || e == -ETIMEDOUT) {
		/* QEMU is gone or stuck: nothing more to ask it (a late reply
		 * would answer the wrong command), nothing to undo there. */
		dcres_qmp_close(r->qmp);
		r->qmp = NULL;
	}
	return e;
}

/* Parses the command line into o; returns 0, or 2 after a usage message
 * (or 1 for --help/--version, which exit 0). */
static int parse_options(int argc, char **argv, struct ckpt_opts *o)
{
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, 'q' },
		{ "dir", required_argument, NULL, 'd' },
		{ "live", no_argument, NULL, 'l' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "max-downtime", required_argument, NULL, 'T' },
		{ "lost-timeout", required_argument, NULL, 'S' },
		{ "direct-io", no_argument, NULL, 'D' },
		{ "conventional", no_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "replicas", required_argument, NULL, 'R' },
		{ "psk", required_argument, NULL, 'k' },
		{ "parent", required_argument, NULL, 'P' },
		{ "incremental", no_argument, NULL, 'I' },
		{ "every", required_argument, NULL, 'E' },
		{ "chain", required_argument, NULL, 'C' },
		{ "keep", required_argument, NULL, 'K' },
		{ "full-every", required_argument, NULL, 'F' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	enum dcres_log_level level;
	int opt;

	*o = (struct ckpt_opts){ .parallel = 1, .max_downtime_ms = DEFAULT_MAX_DOWNTIME_MS,
				 .lost_timeout_s = DEFAULT_LOST_TIMEOUT_S, .keep = DEFAULT_KEEP };
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'q': o->qmp_path = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'l': o->live = true; break;
		case 'D': o->direct_io = true; break;
		case 'c': o->conventional = true; break;
		case 'j': o->json = true; break;
		case 'k': o->psk_path = optarg; break;
		case 'P': o->parent = optarg; break;
		case 'I': o->incremental = true; break;
		case 'C': o->chain = optarg; break;
		case 'E':
			if (parse_duration(optarg, &o->every_s))
				return 2;
			break;
		case 'K':
			if (parse_number("keep", optarg, 1, 100000, &o->keep))
				return 2;
			break;
		case 'F':
			if (parse_number("full-every", optarg, 0, 100000, &o->full_every))
				return 2;
			break;
		case 'R':
			if (parse_number("replicas", optarg, 0, 253, &o->replicas))
				return 2;
			break;
		case 'p':
			if (parse_number("parallel", optarg, 1, 255, &o->parallel))
				return 2;
			break;
		case 'T':
			if (parse_number("max-downtime", optarg, 1, 2000000, &o->max_downtime_ms))
				return 2;
			break;
		case 'S':
			if (parse_number("lost-timeout", optarg, 1, 3600, &o->lost_timeout_s))
				return 2;
			break;
		case 'L':
			if (dcres_log_parse_level(optarg, &level)) {
				fprintf(stderr, "dcres-checkpoint: --log-level %s: expected error, "
					"warn, info or debug\n", optarg);
				return 2;
			}
			dcres_log_set_level(level);
			break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("dcres-checkpoint " DCRES_VERSION "\n"); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !o->qmp_path || (o->every_s ? !o->chain || o->dir || o->parent ||
						o->incremental
					      : !o->dir || !*o->dir || o->chain)) {
		if (optind < argc)
			fprintf(stderr, "dcres-checkpoint: unexpected argument %s\n", argv[optind]);
		else if (o->every_s || o->chain)
			fprintf(stderr, "dcres-checkpoint: --every and --chain go together, "
				"without --dir, --parent or --incremental\n");
		else
			fprintf(stderr, "dcres-checkpoint: --qmp and --dir are required\n");
		usage(stderr);
		return 2;
	}
	if (o->parent && o->incremental) {
		fprintf(stderr, "dcres-checkpoint: --parent and --incremental both name the "
			"parent: give one\n");
		return 2;
	}
	if (o->direct_io && o->parallel < 2) {
		fprintf(stderr, "dcres-checkpoint: --direct-io needs --parallel N with N > 1 "
			"(QEMU writes with O_DIRECT only on multifd channels)\n");
		return 2;
	}
	return 0;
}

/* Fails with -EINTR once SIGINT or SIGTERM came. */
static int check_interrupt(void)
{
	if (!ckpt_interrupted)
		return 0;
	pr_err("interrupted");
	return -EINTR;
}

/* The steps of a checkpoint, in order; stops at the first failure. */
static int run_steps(struct ckpt_run *r)
{
	char err[DCRES_QMP_ERR_MAX];
	int e;

	/* The directory first: a checkpoint there already is refused at once. */
	e = files_prepare(r);
	if (e)
		return e;
	e = dcres_qmp_connect(r->opts.qmp_path, CONNECT_TIMEOUT_MS, REPLY_TIMEOUT_MS, &r->qmp,
			      err, sizeof(err));
	if (e) {
		pr_err("%s", err);
		return e;
	}
	if ((e = vm_query(r)) || (e = parent_find(r)) || (e = disk_find(r)) ||
	    (e = migrate_setup(r)) || (e = check_interrupt()))
		return e;
	if (!r->opts.live && r->was_running && (e = vm_stop(r)))
		return e;
	if (r->split && (e = vm_query_dcres(r, &r->before)))
		return e;
	if ((e = parent_tell_qemu(r)))
		return e;
	if ((e = replicate_check(r)))
		return e;
	if ((e = check_interrupt()) || (e = migrate_start(r)) || (e = migrate_wait(r)))
		return e;
	/* The VM is stopped at the checkpoint's stop point: snapshot the
	 * disks, then end the downtime. */
	if ((e = disk_snapshot(r)))
		return e;
	if (r->was_running && (e = vm_resume(r)))
		return e;
	if ((e = vm_wait_durable(r)) ||
	    (e = check_interrupt()) || (e = files_count_pages(r)) || (e = files_sync_main(r)) ||
	    (e = files_write_main_present(r)) || (e = check_interrupt()) ||
	    (e = manifest_out(r)))
		return e;
	r->finished_ms = ckpt_now_ms();
	/* The checkpoint is complete: a missing copy does not undo it. */
	return replicate_run(r) == 0 ? 0 : REPLICA_MISSING;
}

/* Undoes what a failed run did: its files, its disk snapshots, its stop. */
static void undo(struct ckpt_run *r)
{
	progress_end();
	files_remove(r);
	if (r->qmp && ckpt_interrupted)
		dcres_qmp_set_reply_timeout(r->qmp, INTERRUPTED_REPLY_TIMEOUT_MS);
	if (r->qmp) {
		disk_undo(r);
		vm_undo_stop(r);
	}
}

int ckpt_run_once(const struct ckpt_opts *o)
{
	static struct ckpt_run run;
	int e;

	memset(&run, 0, sizeof(run));
	run.dir_lock_fd = -1;
	run.opts = *o;
	run.started_ms = ckpt_now_ms();
	e = run_steps(&run);
	if (e && e != REPLICA_MISSING)
		undo(&run);
	else
		summary_print(&run);
	if (run.qmp)
		migrate_restore_settings(&run);
	dcres_qmp_close(run.qmp);
	if (e == REPLICA_MISSING)
		pr_err("checkpoint into %s is complete, but it survives the loss of %u hosts, "
		       "not %u: a replica is missing", run.dir, replicate_survivable(&run),
		       run.opts.replicas);
	free(run.disks);
	free(run.parts);
	free(run.replicas);
	if (run.dir_lock_fd >= 0)
		close(run.dir_lock_fd);
	if (e == REPLICA_MISSING)
		return 3;
	if (e) {
		pr_err("checkpoint into %s failed", run.dir[0] ? run.dir : run.opts.dir);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ckpt_opts o;
	int e;

	e = parse_options(argc, argv, &o);
	if (e)
		return e == 1 ? 0 : e;
	install_signals();
	return o.every_s ? periodic_run(&o) : ckpt_run_once(&o);
}
