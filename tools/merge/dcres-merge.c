/* dcres-merge: turns a D-CRES checkpoint directory into one ordinary
 * mapped-ram migration file that an unpatched QEMU 10.0 restores
 * (-incoming defer, migrate-set-capabilities mapped-ram=true,
 * migrate-incoming file:OUT), or with --check only verifies it.
 *
 *   dcres-merge [--check] [--json] DIR [OUT]
 *
 * It reads DIR/manifest (when present; every file's checksum is verified),
 * DIR/main.loc, DIR/main.mem, DIR/main.present (when the checkpoint has
 * one) and each memory server's host-K.mem and host-K.present; checks
 * that every written page is in exactly one file, the one main.loc names.
 * An incremental checkpoint's parents are read too (in the directories
 * its manifest names, checked against the ids and CRCs it records), each
 * page from the newest one holding it. Then it copies main.mem (holes
 * kept) to a new OUT.partial.XXXXXXXX, puts every server page at its place
 * with its bitmap bit set (each page's CRC checked, main.mem's too when
 * there is a main.present), fsyncs and renames it to OUT. Exit status: 0 done, 1 error
 * (logged on stderr naming the file and page), 2 usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "dcres/ckptview.h"
#include "merge.h"

/* Prints the usage text to f. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: dcres-merge [--check] [--flatten] [--json] [--psk FILE\n"
		"                   [--ckpt-root PATH] [--servers LIST]] DIR [OUT]\n"
		"  Merges the D-CRES checkpoint in DIR (with its parents, if incremental)\n"
		"  into OUT, a mapped-ram migration file that stock QEMU restores\n"
		"  (migrate-incoming file:OUT).\n"
		"  --check  only verify DIR (placement, checksums); OUT is not written\n"
		"  --flatten  write OUT as a new directory: DIR's chain as one full D-CRES\n"
		"           checkpoint (every page on the main host) of the same id, which\n"
		"           DIR's children accept as their parent in DIR's place\n"
		"  --json   print the summary as one JSON object\n"
		"  --psk FILE  read memory servers' parts that are not in DIR through the\n"
		"           servers holding a copy (those of --servers, then those the\n"
		"           manifest names)\n"
		"  --ckpt-root PATH  what the servers' --dir is on this host (default /)\n"
		"  --servers LIST    memory servers to ask first (HOST:PORT,...)\n"
		"exit status: 0 ok, 1 error, 2 usage\n");
}

/* Prints s as a JSON string (quoted, escaped). */
static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* Prints the summary: the newest layer's pages per host, the total, the
 * chain's length, the output. */
static void summary(const struct ckptchain *ch, const char *out, bool json,
		    uint64_t duplicates)
{
	const struct ckptdir *c = &ch->layer[0];
	uint64_t total = c->main_pages;

	for (unsigned i = 0; i < c->nservers; i++)
		total += c->servers[i].pages;
	if (json) {
		printf("{\"dir\":");
		json_string(c->dir);
		printf(",\"out\":");
		if (out)
			json_string(out);
		else
			printf("null");
		printf(",\"page_size\":%u,\"pages\":{\"main\":%llu", c->loc.page_size,
		       (unsigned long long)c->main_pages);
		for (unsigned i = 0; i < c->nservers; i++)
			printf(",\"host-%u\":%llu", c->servers[i].id,
			       (unsigned long long)c->servers[i].pages);
		printf("},\"total\":%llu,\"duplicates\":%llu,\"chain\":%u}\n",
		       (unsigned long long)total, (unsigned long long)duplicates, ch->n);
		return;
	}
	printf("checkpoint %s: %llu guest pages of %u bytes\n", c->dir,
	       (unsigned long long)c->loc.npages, c->loc.page_size);
	printf("  %-10s %llu pages\n", "main", (unsigned long long)c->main_pages);
	for (unsigned i = 0; i < c->nservers; i++) {
		char name[16];

		snprintf(name, sizeof(name), "host-%u", c->servers[i].id);
		printf("  %-10s %llu pages\n", name, (unsigned long long)c->servers[i].pages);
	}
	printf("  %-10s %llu pages\n", "total", (unsigned long long)total);
	if (ch->n > 1)
		printf("  incremental: a chain of %u checkpoints, down to %s\n", ch->n,
		       ch->dir[ch->n - 1]);
	if (out)
		printf("merged into %s\n", out);
	else
		printf("check passed\n");
}

/* Parses the command line, then checks (and unless --check merges) DIR;
 * returns the exit status described at the top of this file. */
int main(int argc, char **argv)
{
	bool check = false, flatten = false, json = false, options = true;
	const char *dir = NULL, *out = NULL;
	struct ckptview_opts remote = { 0 };
	static struct ckptchain ch; /* about a megabyte */
	uint64_t duplicates = 0;
	int ret;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options && !strcmp(a, "--")) {
			options = false;
		} else if (options && !strcmp(a, "--check")) {
			check = true;
		} else if (options && !strcmp(a, "--flatten")) {
			flatten = true;
		} else if (options && !strcmp(a, "--json")) {
			json = true;
		} else if (options && (!strcmp(a, "--psk") || !strcmp(a, "--ckpt-root") ||
				       !strcmp(a, "--servers"))) {
			if (++i >= argc || !*argv[i]) {
				fprintf(stderr, "dcres-merge: %s needs a value\n", a);
				return 2;
			}
			if (!strcmp(a, "--psk"))
				remote.psk_path = argv[i];
			else if (!strcmp(a, "--ckpt-root"))
				remote.ckpt_root = argv[i];
			else
				remote.servers = argv[i];
		} else if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			usage(stdout);
			return 0;
		} else if (options && a[0] == '-' && a[1]) {
			fprintf(stderr, "dcres-merge: unknown option %s\n", a);
			usage(stderr);
			return 2;
		} else if (!dir) {
			dir = a;
		} else if (!out) {
			out = a;
		} else {
			fprintf(stderr, "dcres-merge: too many arguments\n");
			usage(stderr);
			return 2;
		}
	}
	if (!dir || (!check && !out) || (check && out) || (check && flatten)) {
		fprintf(stderr, "dcres-merge: %s\n",
			!dir ? "DIR is required" :
			check && flatten ? "--check and --flatten exclude each other" :
			check ? "--check takes no OUT" : "OUT is required (or --check)");
		usage(stderr);
		return 2;
	}

	ret = ckptchain_open(dir, &remote, &ch);
	if (ret)
		goto fail;
	ret = ckptchain_check(&ch, &duplicates);
	if (!ret)
		ret = check ? merge_verify_pages(&ch) :
		      flatten ? ckptchain_flatten(&ch, out) : ckptchain_merge(&ch, out);
	if (!ret)
		summary(&ch, out, json, duplicates);
	ckptchain_close(&ch);
fail:
	if (!ret)
		return 0;
	fprintf(stderr, "dcres-merge: %s: %s (%s)%s\n", dir,
		check ? "check failed" : "merge failed", strerror(-ret),
		check || !out ? "" : "; nothing written");
	return 1;
}
