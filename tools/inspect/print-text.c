/* dcres-inspect: the report as text on stdout (inspect.h). */
#include <stdio.h>
#include <time.h>

#include "dcres/uuid.h"
#include "inspect.h"

/* Prints the manifest's description of the checkpoint. */
static void print_manifest(const struct inspect *in)
{
	const Dcres__Manifest *m = in->c.manifest;
	char uuid[DCRES_UUID_STR_LEN] = "unknown", when[64] = "unknown";

	printf("checkpoint %s\n", in->given_dir);
	if (!m) {
		printf("  (no manifest)\n");
		return;
	}
	if (m->has_vm_uuid && m->vm_uuid.len == 16)
		dcres_uuid_format(m->vm_uuid.data, uuid);
	if (m->has_created_unix) {
		time_t t = (time_t)m->created_unix;
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	printf("  %-15s %s\n", "VM", uuid);
	printf("  %-15s %llu bytes\n", "RAM", (unsigned long long)m->ram_size);
	printf("  %-15s %u bytes\n", "page size", m->page_size);
	printf("  %-15s %s\n", "QEMU", m->qemu_version ? m->qemu_version : "unknown");
	printf("  %-15s %s\n", "created", when);
	printf("  %-15s %s\n", "taken", !m->has_live ? "unknown" : m->live ? "live" : "stopped");
	printf("  %-15s %s\n", "disk snapshot",
	       m->disk_snapshot && *m->disk_snapshot ? m->disk_snapshot : "none");
	printf("  %-15s %s\n", "location table",
	       in->conventional ? "none (conventional checkpoint)" : m->loc_file);
	if (m->parent)
		printf("  %-15s incremental on %s\n", "parent", m->parent->dir ? m->parent->dir : "?");
	for (unsigned i = 1; i < in->nchain; i++)
		printf("  %-15s %s%s\n", i == 1 ? "chain" : "", in->chain[i],
		       i == in->nchain - 1 ? " (full)" : "");
}

/* Prints v into a column of width w, or "-" when it is unknown. */
static void column(bool known, uint64_t v, int w)
{
	if (known)
		printf(" %*llu", w, (unsigned long long)v);
	else
		printf(" %*s", w, "-");
}

/* Prints the host table and the page totals. */
static void print_hosts(const struct inspect *in)
{
	printf("\nhosts (saved: the manifest's count; stored: in its file; placed, hot: "
	       "main.loc)\n");
	printf("  %3s  %-21s %-16s %8s %8s %8s %8s\n", "id", "address", "memory file",
	       "saved", "stored", "placed", "hot");
	for (unsigned i = 0; i < in->nhosts; i++) {
		const struct insp_host *h = &in->hosts[i];

		printf("  %3u  %-21s %-16s", h->id,
		       h->address ? h->address : h->id ? "-" : "main",
		       h->mem_file ? h->mem_file : "-");
		column(h->has_saved, h->pages_saved, 8);
		column(h->has_stored, h->pages_stored, 8);
		column(in->have_loc_facts, h->pages_placed, 8);
		column(in->have_loc_facts, h->hot_pages, 8);
		printf("\n");
	}
	if (!in->have_loc_facts)
		return;
	printf("  never written (zero): %llu pages\n", (unsigned long long)in->zero_pages);
	if (in->c.main_ok)
		printf("  placed on main, not in main.mem (zero pages QEMU skips): %llu pages\n",
		       (unsigned long long)in->main_zero);
}

/* Prints the access-history summary. */
static void print_history(const struct inspect *in)
{
	if (!in->have_loc_facts)
		return;
	printf("\nhistory (pages per access-history value; hot: top bit set)\n");
	for (unsigned b = 0; b < INSP_BUCKETS; b++)
		printf("  %-8s %10llu%s\n", insp_bucket_name[b],
		       (unsigned long long)in->buckets[b], b == INSP_BUCKETS - 1 ? "  (hot)" : "");
}

/* Prints the checks of one section under title. */
static void print_section(const struct inspect *in, enum insp_section sec, const char *title)
{
	static const char *const state[] = { "OK", "FAILED", "SKIPPED" };
	bool any = false;

	for (const struct insp_check *ck = in->checks; ck; ck = ck->next) {
		if (ck->section != sec)
			continue;
		if (!any)
			printf("  %s\n", title);
		any = true;
		printf("    %-8s%s%s%s\n", state[ck->state], ck->name, ck->detail ? ": " : "",
		       ck->detail ? ck->detail : "");
		for (size_t i = 0; i < ck->nerrors; i++)
			printf("            %s\n", ck->errors[i]);
	}
}

void insp_print_text(const struct inspect *in)
{
	unsigned failed = insp_failures(in);

	print_manifest(in);
	for (unsigned i = 0; i < in->view.nparts; i++)
		printf("host %u's part: not in %s, read through memory server %s (copies on %s)\n",
		       in->view.parts[i].id, in->given_dir, in->view.parts[i].from,
		       in->view.parts[i].holders);
	print_hosts(in);
	print_history(in);
	printf("\nchecks\n");
	print_section(in, INSP_STRUCTURE, "structure");
	if (in->verify) {
		print_section(in, INSP_CHECKSUM, "file checksums (manifest)");
		print_section(in, INSP_PAGES, "page CRCs (presence files)");
	} else {
		printf("  checksums and page CRCs: not verified (--no-verify)\n");
	}
	print_section(in, INSP_DISK, "disks (libqcow)");
	if (failed)
		printf("\nresult: FAILED (%u check%s)\n", failed, failed == 1 ? "" : "s");
	else
		printf("\nresult: OK\n");
}
