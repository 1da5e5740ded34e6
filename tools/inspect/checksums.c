/* dcres-inspect: the checks that read every byte: the size and CRC-32C of
 * every file the manifest lists (each file read once, main.mem included),
 * and main.mem's pages against main.present (when the checkpoint has one)
 * and each memory server's against the CRCs of its presence file
 * (inspect.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/mainpresence.h"
#include "inspect.h"

/* Checks file entry i of the manifest (its name is safe, its size and CRC
 * match) through dcres_manifest_verify_files on a one-file view. */
static int verify_one(const char *dir, const Dcres__Manifest *m, size_t i)
{
	Dcres__Manifest one = *m;

	one.n_files = 1;
	one.files = &m->files[i];
	return dcres_manifest_verify_files(dir, &one);
}

void insp_verify_files(struct inspect *in)
{
	const Dcres__Manifest *m = in->c.manifest;
	struct insp_check **cks;
	long n;

	if (!m || !m->n_files)
		return;
	n = (long)m->n_files;
	cks = calloc((size_t)n, sizeof(*cks));
	if (!cks) {
		insp_check_end(insp_check_new(in, INSP_CHECKSUM, "%s/manifest", in->dir),
			       -ENOMEM);
		return;
	}
	for (long i = 0; i < n; i++)
		cks[i] = insp_check_new(in, INSP_CHECKSUM, "%s",
					m->files[i]->name ? m->files[i]->name : "(unnamed)");
	/* Files are independent: read several at once (the disk or the page
	 * cache is the limit, not the CRC). */
#pragma omp parallel for schedule(dynamic, 1)
	for (long i = 0; i < n; i++) {
		int ret;

		insp_capture(cks[i]);
		ret = verify_one(in->dir, m, (size_t)i);
		if (!ret)
			insp_check_detail(cks[i], "%llu bytes, CRC-32C %08x",
					  (unsigned long long)m->files[i]->size,
					  m->files[i]->crc32c);
		insp_check_end(cks[i], ret);
	}
	free(cks);
}

/* Records page of file (a name in the directory) as corrupted. */
static void add_bad_page(struct inspect *in, const char *file, uint64_t page)
{
	struct insp_bad_page *b = reallocarray(in->bad, in->nbad + 1, sizeof(*b));
	char *name = b ? strdup(file) : NULL;

	if (!b || !name) {
		free(name);
		if (b)
			in->bad = b;
		return; /* the check itself still fails and names the page */
	}
	in->bad = b;
	in->bad[in->nbad].file = name;
	in->bad[in->nbad++].page = page;
}

/* Checks main.mem's pages against main.present, when the checkpoint has
 * one. */
static void verify_main_pages(struct inspect *in)
{
	const char *name = insp_basename(in->c.main_path);
	struct insp_check *ck;
	uint64_t bad = 0;
	int ret;

	if (!in->c.main_present_path[0])
		return; /* a checkpoint made before main.present */
	ck = insp_check_begin(in, INSP_PAGES, "%s", name);
	if (!in->c.main_pres_ok) {
		insp_check_skip(ck, "main.mem or main.present did not open");
		return;
	}
	ret = dcres_main_presence_verify(&in->c.main_pres, &in->c.main, &bad);
	if (ret == -EBADMSG) {
		insp_check_clear_errors(ck);
		insp_check_fail(ck, "%s: page %llu is corrupted (its CRC-32C is not the one "
				"%s gives)", in->c.main_path, (unsigned long long)bad,
				insp_basename(in->c.main_present_path));
		add_bad_page(in, name, bad);
	} else if (!ret) {
		insp_check_detail(ck, "%llu pages match the CRCs of %s",
				  (unsigned long long)dcres_presence_count(&in->c.main_pres),
				  insp_basename(in->c.main_present_path));
	}
	insp_check_end(ck, ret);
}

void insp_verify_pages(struct inspect *in)
{
	verify_main_pages(in);
	for (unsigned i = 0; in->c.servers && i < in->c.nservers; i++) {
		struct ckptdir_server *s = &in->c.servers[i];
		const char *name = insp_basename(s->mem_path);
		struct insp_check *ck = insp_check_begin(in, INSP_PAGES, "%s", name);
		uint64_t bad = 0;
		int ret;

		if (!s->ok) {
			insp_check_skip(ck, "its files did not open");
			continue;
		}
		ret = dcres_presence_verify_pages(&s->pres, s->mf, &bad);
		if (ret == -EBADMSG) {
			/* The library's line gives the CRCs; this one says it plainly. */
			insp_check_clear_errors(ck);
			insp_check_fail(ck, "%s: page %llu is corrupted (its CRC-32C is not "
					"the one %s gives)", s->mem_path, (unsigned long long)bad,
					insp_basename(s->present_path));
			add_bad_page(in, name, bad);
		} else if (!ret) {
			insp_check_detail(ck, "%llu pages match the CRCs of %s",
					  (unsigned long long)s->pages,
					  insp_basename(s->present_path));
		}
		insp_check_end(ck, ret);
	}
}
