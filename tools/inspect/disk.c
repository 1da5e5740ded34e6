/* dcres-inspect: the qcow2 images of the checkpoint's disk snapshot, read
 * with libqcow (inspect.h). libqcow 20201213 (Debian 12) opens qcow2
 * versions 1-3, reads the header, L1/L2 tables and media data and counts
 * internal snapshots, but has no call that lists their names: whether the
 * manifest's snapshot is among them is only known when there are none. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libqcow.h>

#include "inspect.h"

#define PROBE_BYTES 4096u /* media data read at the start and the end */

const char *insp_disk_snapshot_note(void)
{
	return "libqcow counts snapshots but cannot list their names";
}

/* Adds file to in->disks unless it is already there (same name, or same
 * device and inode). */
static void add_disk(struct inspect *in, const char *file, bool from_manifest)
{
	struct stat a, b;
	bool have_a = stat(file, &a) == 0;
	struct insp_disk *d;

	for (size_t i = 0; i < in->ndisks; i++) {
		if (!strcmp(in->disks[i].file, file) ||
		    (have_a && stat(in->disks[i].file, &b) == 0 && a.st_dev == b.st_dev &&
		     a.st_ino == b.st_ino)) {
			in->disks[i].from_manifest |= from_manifest;
			return;
		}
	}
	d = reallocarray(in->disks, in->ndisks + 1, sizeof(*d));
	if (!d || !(file = strdup(file))) {
		fprintf(stderr, "dcres-inspect: out of memory\n");
		exit(1);
	}
	in->disks = d;
	d = &in->disks[in->ndisks++];
	memset(d, 0, sizeof(*d));
	d->file = (char *)file;
	d->from_manifest = from_manifest;
}

/* Adds libqcow's error to ck, prefixed with what failed: its deepest
 * cause (the first line of the backtrace, without the function name),
 * naming file. Frees *err. */
static void fail_qcow(struct insp_check *ck, const char *file, const char *what,
		      libqcow_error_t **err)
{
	char buf[1024] = "", *cause = buf, *end;

	if (*err && libqcow_error_backtrace_sprint(*err, buf, sizeof(buf)) > 0) {
		if ((end = strchr(buf, '\n')))
			*end = '\0';
		if ((end = strstr(buf, ": ")))
			cause = end + 2;
		end = cause + strlen(cause);
		while (end > cause && (end[-1] == '.' || end[-1] == ' '))
			*--end = '\0';
	}
	insp_check_fail(ck, "%s: %s%s%s", file, what, *cause ? ": " : "",
			*cause ? cause : "");
	libqcow_error_free(err);
}

/* Reads the image's properties into d (backing file name: best effort). */
static int read_properties(struct insp_disk *d, libqcow_file_t *f, libqcow_error_t **err)
{
	size64_t size;
	size_t len;

	if (libqcow_file_get_format_version(f, &d->format_version, err) != 1 ||
	    libqcow_file_get_media_size(f, &size, err) != 1 ||
	    libqcow_file_get_encryption_method(f, &d->encryption, err) != 1 ||
	    libqcow_file_get_number_of_snapshots(f, &d->nsnapshots, err) != 1)
		return -1;
	d->media_size = size;
	if (libqcow_file_get_utf8_backing_filename_size(f, &len, NULL) == 1 && len > 1 &&
	    (d->backing_file = calloc(1, len)) &&
	    libqcow_file_get_utf8_backing_filename(f, (uint8_t *)d->backing_file, len,
						   NULL) != 1) {
		free(d->backing_file);
		d->backing_file = NULL;
	}
	return 0;
}

/* Reads PROBE_BYTES of media data at the start and the end of the image:
 * the L1 and L2 tables that map them must be sound. Encrypted images are
 * not read (no key). */
static void probe_data(struct insp_disk *d, libqcow_file_t *f)
{
	static char buf[PROBE_BYTES];
	libqcow_error_t *err = NULL;
	uint64_t at[2] = { 0, 0 };
	size_t n = d->media_size < PROBE_BYTES ? (size_t)d->media_size : PROBE_BYTES;

	if (d->encryption != LIBQCOW_ENCRYPTION_METHOD_NONE || !n)
		return;
	at[1] = d->media_size - n;
	for (int i = 0; i < 2; i++) {
		if (libqcow_file_read_buffer_at_offset(f, buf, n, (off64_t)at[i], &err) !=
		    (ssize_t)n) {
			char what[96];

			snprintf(what, sizeof(what), "cannot read media data at offset %llu",
				 (unsigned long long)at[i]);
			fail_qcow(d->check, d->file, what, &err);
			return;
		}
	}
}

/* Notes what is known of the manifest's snapshot (snap) in d. */
static void check_snapshot(struct insp_disk *d, const char *snap)
{
	if (!snap || !*snap)
		return;
	if (d->nsnapshots > 0) {
		d->snapshot = INSP_SNAP_UNKNOWN;
		return;
	}
	d->snapshot = INSP_SNAP_MISSING;
	insp_check_fail(d->check, "%s: has no snapshots, so not %s, the checkpoint's disk "
			"snapshot", d->file, snap);
}

/* Names libqcow's encryption method e. */
static const char *encryption_name(uint32_t e)
{
	switch (e) {
	case LIBQCOW_ENCRYPTION_METHOD_NONE:
		return "not encrypted";
	case LIBQCOW_ENCRYPTION_METHOD_AES_128_CBC:
		return "encrypted (AES-128-CBC)";
	case LIBQCOW_ENCRYPTION_METHOD_LUKS:
		return "encrypted (LUKS)";
	default:
		return "encrypted (unknown method)";
	}
}

/* Sets the detail line of d's check: what libqcow found, and what is
 * known of the checkpoint's snapshot snap in it. */
static void describe(struct insp_disk *d, const char *snap)
{
	char note[512] = "";

	if (d->snapshot == INSP_SNAP_UNKNOWN)
		snprintf(note, sizeof(note), "; snapshot %s: cannot tell (%s)", snap,
			 insp_disk_snapshot_note());
	insp_check_detail(d->check, "qcow version %u, %llu bytes, %s, %d snapshots%s%s%s",
			  d->format_version, (unsigned long long)d->media_size,
			  encryption_name(d->encryption), d->nsnapshots,
			  d->backing_file ? ", backing file " : "",
			  d->backing_file ? d->backing_file : "", note);
}

/* Opens d with libqcow and checks it; fills d and its check. */
static void check_disk(struct inspect *in, struct insp_disk *d)
{
	const Dcres__Manifest *m = in->c.manifest;
	libqcow_file_t *f = NULL;
	libqcow_error_t *err = NULL;

	d->check = insp_check_new(in, INSP_DISK, "%s", d->file);
	if (libqcow_file_initialize(&f, &err) != 1) {
		fail_qcow(d->check, d->file, "libqcow cannot start", &err);
		return;
	}
	if (libqcow_file_open(f, d->file, LIBQCOW_OPEN_READ, &err) != 1) {
		fail_qcow(d->check, d->file, "libqcow cannot open it", &err);
	} else {
		if (read_properties(d, f, &err)) {
			fail_qcow(d->check, d->file, "cannot read its header", &err);
		} else {
			d->opened = true;
			probe_data(d, f);
			check_snapshot(d, m ? m->disk_snapshot : NULL);
		}
		libqcow_file_close(f, NULL);
	}
	libqcow_file_free(&f, NULL);
	if (d->opened && !d->check->nerrors)
		describe(d, m ? m->disk_snapshot : NULL);
	insp_check_end(d->check, 0);
}

void insp_check_disks(struct inspect *in)
{
	const Dcres__Manifest *m = in->c.manifest;

	for (size_t i = 0; i < in->ndisk_args; i++)
		add_disk(in, in->disk_args[i], false);
	for (size_t i = 0; m && i < m->n_disk_files; i++)
		add_disk(in, m->disk_files[i], true);
	for (size_t i = 0; i < in->ndisks; i++)
		check_disk(in, &in->disks[i]);
}
