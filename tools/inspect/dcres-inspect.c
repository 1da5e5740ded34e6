/* dcres-inspect: shows what a D-CRES checkpoint directory holds and checks
 * all of it (DESIGN.md §5).
 *
 *   dcres-inspect [--json] [--no-verify] [--disk FILE]... DIR
 *
 * It prints the manifest (VM, RAM, QEMU version, creation time, live or
 * stopped, disk snapshot), a table of hosts (address, memory file, pages
 * the manifest says each saved, pages its file holds, pages main.loc places
 * there and how many of those are hot), the never-written pages and a
 * summary of the access history; then its checks: the manifest, main.loc,
 * main.mem's mapped-ram header and bitmap against main.loc, main.present
 * (when the checkpoint has one) against both, each memory server's files,
 * the manifest's page counts, that every written page is in exactly one
 * file; unless --no-verify, the size and CRC-32C of every file the
 * manifest lists (each file read once), every main.mem page against
 * main.present's CRC and every server page against its presence file's
 * CRC; and each qcow2 image (--disk, and the
 * manifest's disk_files) through libqcow. It goes on past failures and
 * reports each, naming the file (and page). With --json the same report
 * is one JSON object.
 *
 * Exit status: 0 every check passed, 1 some check failed (each failure is
 * also written to stderr), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"

/* Prints the usage text to f. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: dcres-inspect [--json] [--no-verify] [--disk FILE]...\n"
		"                     [--psk FILE [--ckpt-root PATH] [--servers LIST]] DIR\n"
		"  Shows the D-CRES checkpoint in DIR and checks it: manifest, location\n"
		"  table, memory files, page placement, checksums, qcow2 disk images.\n"
		"  --json       print the report as one JSON object\n"
		"  --no-verify  skip the file checksums and page CRCs (fast)\n"
		"  --disk FILE  also check the qcow2 image FILE (repeatable); the images\n"
		"               the manifest lists are always checked\n"
		"  --psk FILE   read memory servers' parts that are not in DIR through the\n"
		"               servers holding a copy (those of --servers, then those the\n"
		"               manifest names), with their pre-shared key\n"
		"  --ckpt-root PATH  what the servers' --dir is on this host (default /)\n"
		"  --servers LIST    memory servers to ask first (HOST:PORT,...)\n"
		"exit status: 0 all checks passed, 1 a check failed, 2 usage\n");
}

/* Parses argv into in; returns -1 after printing the usage error, 1 for
 * --help, 0 otherwise. */
static int parse_args(int argc, char **argv, struct inspect *in)
{
	bool options = true;

	in->verify = true;
	in->disk_args = calloc((size_t)argc, sizeof(*in->disk_args));
	if (!in->disk_args)
		return -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options && !strcmp(a, "--")) {
			options = false;
		} else if (options && !strcmp(a, "--json")) {
			in->json = true;
		} else if (options && !strcmp(a, "--no-verify")) {
			in->verify = false;
		} else if (options && (!strcmp(a, "--psk") || !strcmp(a, "--ckpt-root") ||
				       !strcmp(a, "--servers"))) {
			if (++i >= argc || !*argv[i]) {
				fprintf(stderr, "dcres-inspect: %s needs a value\n", a);
				return -1;
			}
			if (!strcmp(a, "--psk"))
				in->remote.psk_path = argv[i];
			else if (!strcmp(a, "--ckpt-root"))
				in->remote.ckpt_root = argv[i];
			else
				in->remote.servers = argv[i];
		} else if (options && !strcmp(a, "--disk")) {
			if (++i >= argc || !*argv[i]) {
				fprintf(stderr, "dcres-inspect: --disk needs a FILE\n");
				return -1;
			}
			in->disk_args[in->ndisk_args++] = argv[i];
		} else if (options && !strncmp(a, "--disk=", 7) && a[7]) {
			in->disk_args[in->ndisk_args++] = a + 7;
		} else if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			return 1;
		} else if (options && a[0] == '-' && a[1]) {
			fprintf(stderr, "dcres-inspect: unknown option %s\n", a);
			return -1;
		} else if (!in->dir) {
			in->dir = a;
		} else {
			fprintf(stderr, "dcres-inspect: too many arguments\n");
			return -1;
		}
	}
	if (!in->dir || !*in->dir) {
		fprintf(stderr, "dcres-inspect: DIR is required\n");
		return -1;
	}
	return 0;
}

/* Writes every failure to stderr, one line each. */
static void report_failures(const struct inspect *in)
{
	unsigned failed = 0;

	for (const struct insp_check *ck = in->checks; ck; ck = ck->next) {
		if (ck->state != INSP_FAILED)
			continue;
		failed++;
		for (size_t i = 0; i < ck->nerrors; i++)
			fprintf(stderr, "dcres-inspect: %s\n", ck->errors[i]);
	}
	if (failed)
		fprintf(stderr, "dcres-inspect: %s: %u check%s failed\n", in->dir, failed,
			failed == 1 ? "" : "s");
}

/* Parses the command line, inspects DIR and returns the exit status
 * described at the top of this file. */
int main(int argc, char **argv)
{
	struct inspect in = { 0 };
	int ret = parse_args(argc, argv, &in);

	if (ret) {
		usage(ret > 0 ? stdout : stderr);
		free(in.disk_args);
		return ret > 0 ? 0 : 2;
	}
	insp_log_init();
	in.given_dir = in.dir;
	if (ckptview_needed(in.dir)) {
		if (ckptview_open(in.dir, &in.remote, &in.view)) {
			report_failures(&in);
			fprintf(stderr, "dcres-inspect: %s: the memory servers' parts cannot be "
				"read\n", in.dir);
			free(in.disk_args);
			return 1;
		}
		in.dir = in.view.dir;
	}
	insp_open_parts(&in);
	insp_facts(&in);
	insp_check_consistency(&in);
	if (in.verify) {
		insp_verify_files(&in);
		insp_verify_pages(&in);
	}
	insp_check_disks(&in);

	if (in.json)
		insp_print_json(&in);
	else
		insp_print_text(&in);
	fflush(stdout);
	report_failures(&in);
	ret = insp_failures(&in) ? 1 : 0;
	insp_free(&in);
	ckptview_close(&in.view);
	free(in.disk_args);
	return ret;
}
