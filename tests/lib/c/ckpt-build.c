/* Synthetic D-CRES checkpoints for tests (ckpt-build.h). */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "ckpt-build.h"

#include "dcres/crc32c.h"
#include "dcres/loctable.h"
#include "dcres/mainpresence.h"
#include "dcres/manifest.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"

#define PS TEST_CKPT_PS
#define NPAGES TEST_CKPT_NPAGES
#define PREFIX TEST_CKPT_PREFIX
#define MIB (1u << 20)

const uint8_t test_ckpt_uuid[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
				     5, 6, 7, 8, 9, 10, 11, 12 };

uint8_t test_ckpt_owner(uint64_t p)
{
	static const uint8_t by_mod[5] = { DCRES_LOC_ZERO, DCRES_LOC_MAIN, 1, 2, 1 };

	return by_mod[p % 5];
}

bool test_ckpt_zero_page(uint64_t p)
{
	return test_ckpt_owner(p) == DCRES_LOC_MAIN && p % 7 == 0;
}

void test_ckpt_fill_page(uint8_t *buf, uint64_t p, unsigned h)
{
	for (unsigned i = 0; i < PS; i++)
		buf[i] = (uint8_t)(p * 131 + i * 7 + h * 61 + 1);
	buf[0] = (uint8_t)(h + 1);
}

void test_ckpt_empty_main(const char *path, const struct dcres_mapped_ram *geo)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	test_write_mapped_ram_header(fd, geo);
	/* The bitmap and the pages area: holes, all clear. */
	CHECK(ftruncate(fd, (off_t)(geo->pages_offset + geo->used_length)) == 0);
	close(fd);
}

/* Writes dir/main.mem: device-state bytes, the 28-byte MappedRamHeader, an
 * empty bitmap, then (through the mappedram library) the main host's pages
 * with their bits, and stream bytes after the pages area. */
static void make_main(const char *dir, const struct dcres_mapped_ram *geo,
		      enum test_ckpt_variant v)
{
	char *path = test_path(dir, "main.mem");
	uint8_t page[PS];
	struct dcres_mrfile f;
	int fd;

	test_ckpt_empty_main(path, geo);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	memset(page, 0xd5, sizeof(page));
	CHECK(pwrite(fd, page, PREFIX, 0) == PREFIX);
	CHECK(pwrite(fd, "QEVM-tail", 9, (off_t)(geo->pages_offset + geo->used_length)) == 9);
	close(fd);

	CHECK_EQ(dcres_mrfile_open(path, geo, true, &f), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (test_ckpt_owner(p) == DCRES_LOC_MAIN && !test_ckpt_zero_page(p)) {
			test_ckpt_fill_page(page, p, 0);
			CHECK_EQ(dcres_mrfile_write_pages(&f, p, page, 1), 0);
			dcres_mrfile_set(&f, p);
		} else if (test_ckpt_owner(p) == 1 && p < 100) {
			/* Moved to host 1 during the checkpoint: data left, bit clear. */
			test_ckpt_fill_page(page, p, 9);
			CHECK_EQ(dcres_mrfile_write_pages(&f, p, page, 1), 0);
		}
	}
	if (v == TEST_CKPT_DUP) {
		test_ckpt_fill_page(page, 12, 0);
		CHECK_EQ(dcres_mrfile_write_pages(&f, 12, page, 1), 0);
		dcres_mrfile_set(&f, 12);
	}
	CHECK_EQ(dcres_mrfile_write_bitmap(&f), 0);
	dcres_mrfile_close(&f);
	free(path);
}

/* Writes dir/host-K.mem and host-K.present with the pages placed on K. */
static void make_server(const char *dir, unsigned k, const uint8_t uuid[16],
			enum test_ckpt_variant v)
{
	char name[32], *mem, *present;
	struct dcres_memfile_info info = { .ram_size = (uint64_t)NPAGES * PS,
					   .page_size = PS, .host_id = k };
	struct dcres_memfile *mf;
	struct dcres_presence pres;
	uint8_t *page = aligned_alloc(4096, PS);

	CHECK(page != NULL);
	snprintf(name, sizeof(name), "host-%u.mem", k);
	mem = test_path(dir, name);
	snprintf(name, sizeof(name), "host-%u.present", k);
	present = test_path(dir, name);
	memcpy(info.vm_uuid, uuid, 16);
	if (v == TEST_CKPT_UUID && k == 2)
		info.vm_uuid[15] ^= 1;
	CHECK_EQ(dcres_memfile_create(mem, &info, &mf), 0);
	CHECK_EQ(dcres_presence_init(&pres, NPAGES, PS), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		bool mine = test_ckpt_owner(p) == k;

		if ((v == TEST_CKPT_MISSING && k == 2 && p == 13) ||
		    (v == TEST_CKPT_STRAY && k == 2 && p == 20))
			mine = !mine;
		if (!mine)
			continue;
		test_ckpt_fill_page(page, p, k);
		CHECK_EQ(dcres_memfile_write_pages(mf, &p, page, 1), 0);
		dcres_presence_set(&pres, p, dcres_crc32c(0, page, PS));
	}
	CHECK_EQ(dcres_memfile_sync(mf), 0);
	dcres_memfile_close(mf);
	CHECK_EQ(dcres_presence_write(present, &pres), 0);
	dcres_presence_free(&pres);
	free(page);
	free(mem);
	free(present);
}

/* Writes dir/main.present for dir/main.mem and its table t. */
static void make_main_present(const char *dir, const struct dcres_loctable *t)
{
	char *mem = test_path(dir, "main.mem"), *present = test_path(dir, "main.present");
	struct dcres_presence p;
	struct dcres_mrfile f;

	CHECK_EQ(dcres_mrfile_open(mem, &t->main_file, false, &f), 0);
	CHECK_EQ(dcres_main_presence_build(&f, t, &p), 0);
	dcres_mrfile_close(&f);
	CHECK_EQ(dcres_presence_write(present, &p), 0);
	dcres_presence_free(&p);
	free(mem);
	free(present);
}

/* Writes dir/manifest listing the hosts and the checksums of all files
 * (main.present too, when main_present). */
static void make_manifest(const char *dir, const uint8_t uuid[16], bool main_present)
{
	static const char *files[] = { "main.mem", "main.loc", "host-1.mem",
				       "host-1.present", "host-2.mem", "host-2.present",
				       "main.present" };
	unsigned nfiles = main_present ? 7 : 6;
	Dcres__Manifest m = DCRES__MANIFEST__INIT;
	Dcres__HostPart h[3], *hp[3];
	Dcres__FileSum fs[7], *fsp[7];

	m.has_version = m.has_vm_uuid = m.has_ram_size = m.has_page_size = 1;
	m.version = DCRES__MANIFEST_VERSION__MANIFEST_VERSION;
	m.vm_uuid.data = (uint8_t *)uuid;
	m.vm_uuid.len = 16;
	m.ram_size = (uint64_t)NPAGES * PS;
	m.page_size = PS;
	m.loc_file = "main.loc";
	for (unsigned i = 0; i < 3; i++) {
		dcres__host_part__init(&h[i]);
		hp[i] = &h[i];
		h[i].has_id = 1;
		h[i].id = i;
	}
	h[0].mem_file = "main.mem";
	h[0].present_file = main_present ? "main.present" : NULL;
	h[1].mem_file = "host-1.mem";
	h[1].present_file = "host-1.present";
	h[2].mem_file = "host-2.mem";
	h[2].present_file = "host-2.present";
	m.n_hosts = 3;
	m.hosts = hp;
	for (unsigned i = 0; i < nfiles; i++) {
		char *path = test_path(dir, files[i]);

		dcres__file_sum__init(&fs[i]);
		fsp[i] = &fs[i];
		fs[i].name = (char *)files[i];
		fs[i].has_size = fs[i].has_crc32c = 1;
		CHECK_EQ(dcres_file_checksum(path, &fs[i].size, &fs[i].crc32c), 0);
		free(path);
	}
	m.n_files = nfiles;
	m.files = fsp;
	CHECK_EQ(dcres_manifest_write(dir, &m), 0);
}

void test_ckpt_set_page_size(const char *path, uint32_t page_size)
{
	test_set_page_size(path, page_size);
}

const char *test_ckpt_make(const char *base, enum test_ckpt_variant v,
			   struct dcres_mapped_ram *geo)
{
	static char dirs[32][512];
	static int seq;
	char *dir, *path;
	struct dcres_loctable t;

	CHECK(seq < 32);
	dir = dirs[seq];
	snprintf(dir, sizeof(dirs[0]), "%s/ckpt-%d", base, seq);
	seq++;
	CHECK(mkdir(dir, 0700) == 0);
	path = test_path(dir, "main.loc");

	memset(geo, 0, sizeof(*geo));
	snprintf(geo->block_id, sizeof(geo->block_id), "pc.ram");
	geo->used_length = (uint64_t)NPAGES * PS;
	geo->bitmap_offset = PREFIX + 28;
	geo->pages_offset = MIB;
	make_main(dir, geo, v);
	make_server(dir, 1, test_ckpt_uuid, v);
	make_server(dir, 2, test_ckpt_uuid, v);
	CHECK_EQ(dcres_loctable_init(&t, NPAGES, PS), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		t.host[p] = test_ckpt_owner(p);
		t.history[p] = (uint8_t)p;
	}
	t.main_file = *geo;
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	if (v == TEST_CKPT_MAIN_PRESENT || v == TEST_CKPT_MAIN_CORRUPT)
		make_main_present(dir, &t);
	dcres_loctable_free(&t);
	free(path);
	if (v == TEST_CKPT_PAGE_8K || v == TEST_CKPT_PAGE_1M) {
		const char *names[] = { "host-1.mem", "host-1.present" };
		for (int i = 0; i < 2; i++) {
			path = test_path(dir, names[i]);
			test_set_page_size(path, v == TEST_CKPT_PAGE_8K ? 8192 : 1u << 20);
			free(path);
		}
	}
	if (v == TEST_CKPT_MANIFEST || v == TEST_CKPT_MANIFEST_BAD || v == TEST_CKPT_PAGE_8K ||
	    v == TEST_CKPT_PAGE_1M || v == TEST_CKPT_MAIN_PRESENT)
		make_manifest(dir, test_ckpt_uuid, v == TEST_CKPT_MAIN_PRESENT);
	if (v == TEST_CKPT_MANIFEST_BAD) {
		path = test_path(dir, "host-1.mem");
		test_flip_byte(path, DCRES_MEMFILE_DATA_START + 10 * PS); /* a hole */
		free(path);
	}
	if (v == TEST_CKPT_CORRUPT) {
		path = test_path(dir, "host-1.mem");
		test_flip_byte(path, DCRES_MEMFILE_DATA_START + 22 * PS + 100);
		free(path);
	}
	if (v == TEST_CKPT_MAIN_CORRUPT) {
		path = test_path(dir, "main.mem");
		test_flip_byte(path, (off_t)(geo->pages_offset + 16 * PS + 100));
		free(path);
	}
	return dir;
}
