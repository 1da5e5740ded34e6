/* Unit test of loctable.c (version 5): round trip with the main.mem
 * geometry and the servers' ids, a version 4 file read without them,
 * detection of any flipped byte, truncation and trailing bytes, refusal
 * of version 1 and of an unterminated block id. */
#include "testutil.h"

#include <errno.h>

#include "dcres/crc32c.h"
#include "dcres/loctable.h"

#define NPAGES 3000u
#define HDR 304u /* bytes before the host bytes in version 2 */

/* Ends the first len - 4 bytes of b with their big-endian CRC-32C. */
static void put_crc(unsigned char *b, size_t len)
{
	uint32_t crc = dcres_crc32c(0, b, len - 4);

	b[len - 4] = (unsigned char)(crc >> 24);
	b[len - 3] = (unsigned char)(crc >> 16);
	b[len - 2] = (unsigned char)(crc >> 8);
	b[len - 1] = (unsigned char)crc;
}

/* Writes a version-1 table (the old layout: 24-byte header, no geometry)
 * of n pages at path. */
static void write_v1(const char *path, uint64_t n)
{
	size_t len = 24 + 2 * n + 4;
	unsigned char *b = calloc(len, 1);
	uint32_t crc;
	int fd;

	CHECK(b != NULL);
	memcpy(b, "DCRESLOC", 8);
	b[11] = 1;
	b[14] = 0x10; /* page size 4096 */
	b[23] = (unsigned char)n;
	crc = dcres_crc32c(0, b, len - 4);
	for (int i = 0; i < 4; i++)
		b[len - 4 + i] = (unsigned char)(crc >> (24 - 8 * i));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, b, len) == (ssize_t)len);
	close(fd);
	free(b);
}

/* dcres_loctable_read of path, freed again. */
static int read_free(const char *path)
{
	struct dcres_loctable t;
	int ret = dcres_loctable_read(path, &t);

	if (!ret)
		dcres_loctable_free(&t);
	return ret;
}

int main(void)
{
	const char *dir = test_tmpdir("/var/tmp");
	char *path = test_path(dir, "main.loc");
	struct dcres_loctable t, u;
	struct stat sb;
	off_t len;
	int fd;

	CHECK_EQ(dcres_loctable_init(&t, NPAGES, 4096), 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK(t.host[p] == DCRES_LOC_ZERO && t.history[p] == 0);
	for (unsigned p = 0; p < NPAGES; p += 2) {
		t.host[p] = (uint8_t)(p % 5 == 0 ? DCRES_LOC_MAIN : 1 + p % 7);
		t.history[p] = (uint8_t)(p * 37);
	}
	snprintf(t.main_file.block_id, sizeof(t.main_file.block_id), "pc.ram");
	t.main_file.used_length = (uint64_t)NPAGES * 4096;
	t.main_file.bitmap_offset = 0x1234567;
	t.main_file.pages_offset = 0x89abcdef00ull;
	/* Two servers' parts, as their CKPT_FINAL answers gave them. */
	snprintf(t.server_dir, sizeof(t.server_dir), "var/ckpt/one");
	struct dcres_loc_part parts[2] = {
		{ .host = 1, .address = "10.0.0.1:7700", .pages = 77, .mem_size = 1 << 20,
		  .mem_crc = 0xdeadbeef, .present_size = 99, .present_crc = 0x01020304,
		  .has_server_id = true, .server_id = { 0x5e, 0x71, [15] = 0x0d } },
		{ .host = 2, .address = "[fd00::2]:7700", .pages = 5, .mem_size = 3 << 20,
		  .mem_crc = 0xfeedf00d, .present_size = 40, .present_crc = 0x0a0b0c0d },
	};
	CHECK_EQ(dcres_loctable_add_part(&t, &parts[0]), 0);
	CHECK_EQ(dcres_loctable_add_part(&t, &parts[1]), 0);
	/* An incremental checkpoint's ids. */
	memset(t.ckpt_id, 0xc1, 16);
	t.has_parent = true;
	memset(t.parent_id, 0x9a, 16);
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	len = sb.st_size;
	CHECK_EQ(len, HDR + 2 * NPAGES + (2 + 12 + 4) + (38 + 13) + (38 + 14) + 33 + 2 * 17 + 4);
	CHECK_EQ(dcres_loctable_read(path, &u), 0);
	CHECK_EQ(u.npages, NPAGES);
	CHECK_EQ(u.page_size, 4096);
	CHECK(strcmp(u.main_file.block_id, "pc.ram") == 0);
	CHECK_EQ(u.main_file.used_length, (uint64_t)NPAGES * 4096);
	CHECK_EQ(u.main_file.bitmap_offset, 0x1234567);
	CHECK_EQ(u.main_file.pages_offset, 0x89abcdef00ull);
	CHECK(memcmp(t.host, u.host, NPAGES) == 0);
	CHECK(memcmp(t.history, u.history, NPAGES) == 0);
	CHECK(strcmp(u.server_dir, "var/ckpt/one") == 0);
	CHECK_EQ(u.nparts, 2);
	for (unsigned i = 0; i < 2 && u.nparts == 2; i++) {
		CHECK_EQ(u.parts[i].host, parts[i].host);
		CHECK(strcmp(u.parts[i].address, parts[i].address) == 0);
		CHECK_EQ(u.parts[i].pages, parts[i].pages);
		CHECK_EQ(u.parts[i].mem_size, parts[i].mem_size);
		CHECK_EQ(u.parts[i].mem_crc, parts[i].mem_crc);
		CHECK_EQ(u.parts[i].present_size, parts[i].present_size);
		CHECK_EQ(u.parts[i].present_crc, parts[i].present_crc);
		CHECK_EQ(u.parts[i].has_server_id, parts[i].has_server_id);
		CHECK(memcmp(u.parts[i].server_id, parts[i].server_id, 16) == 0);
	}
	CHECK(memcmp(u.ckpt_id, t.ckpt_id, 16) == 0 && u.has_parent &&
	      memcmp(u.parent_id, t.parent_id, 16) == 0);
	dcres_loctable_free(&u);

	/* The same table as version 4 wrote it (no servers' ids) reads
	 * without them. */
	{
		unsigned char *b = malloc(len);
		FILE *f = fopen(path, "rb");
		size_t v4 = (size_t)len - 2 * 17;
		char v4path[512];

		CHECK(b && f && fread(b, 1, (size_t)len, f) == (size_t)len);
		fclose(f);
		b[11] = 4;
		put_crc(b, v4);
		snprintf(v4path, sizeof(v4path), "%s.v4", path);
		f = fopen(v4path, "wb");
		CHECK(f && fwrite(b, 1, v4, f) == v4);
		fclose(f);
		CHECK_EQ(dcres_loctable_read(v4path, &u), 0);
		CHECK(u.nparts == 2 && !u.parts[0].has_server_id && !u.parts[1].has_server_id &&
		      u.has_parent && memcmp(u.ckpt_id, t.ckpt_id, 16) == 0);
		dcres_loctable_free(&u);
		unlink(v4path);
		free(b);
	}

	/* Any flipped byte is detected, naming the file. */
	for (off_t off = 0; off < len; off++) {
		test_flip_byte(path, off);
		test_capture_start();
		if (dcres_loctable_read(path, &u) >= 0) {
			fprintf(stderr, "flipped byte %lld not detected\n", (long long)off);
			exit(1);
		}
		CHECK(test_logged(path));
		CHECK(u.host == NULL && u.history == NULL);
		dcres_log_set_sink(NULL);
		test_flip_byte(path, off);
	}
	CHECK_EQ(dcres_loctable_read(path, &u), 0);
	dcres_loctable_free(&u);

	/* Truncation is -EIO; a trailing byte is -EINVAL. */
	static const off_t cuts[] = { 0, 8, 23, 24, 27, 303, 304, 1000, HDR + 2 * NPAGES };
	for (unsigned i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		CHECK_EQ(dcres_loctable_write(path, &t), 0);
		CHECK(truncate(path, cuts[i]) == 0);
		CHECK_EQ(dcres_loctable_read(path, &u), -EIO);
	}
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	CHECK_EQ(dcres_loctable_read(path, &u), -EINVAL);
	CHECK(unlink(path) == 0);
	CHECK_EQ(dcres_loctable_read(path, &u), -ENOENT);

	/* Version 1 is refused with a message saying so. */
	write_v1(path, 5);
	test_capture_start();
	CHECK_EQ(dcres_loctable_read(path, &u), -EINVAL);
	CHECK(test_logged(path) && test_logged("version 1"));
	dcres_log_set_sink(NULL);

	/* A block id filling all 256 bytes cannot be written. */
	memset(t.main_file.block_id, 'x', sizeof(t.main_file.block_id));
	test_capture_start();
	CHECK_EQ(dcres_loctable_write(path, &t), -EINVAL);
	CHECK(test_logged(path));
	dcres_log_set_sink(NULL);

	/* An empty table round-trips; absurd geometry is refused. */
	dcres_loctable_free(&t);
	CHECK_EQ(dcres_loctable_init(&t, 0, 4096), 0);
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	CHECK_EQ(dcres_loctable_read(path, &u), 0);
	CHECK_EQ(u.npages, 0);
	dcres_loctable_free(&u);
	dcres_loctable_free(&t);
	CHECK_EQ(dcres_loctable_init(&t, 16, 3000), -ENOTSUP);
	CHECK_EQ(dcres_loctable_init(&t, 16, 8192), -ENOTSUP);

	/* A consistent file declaring 8 KiB or 1 MiB pages is refused, naming
	 * the file and the field. */
	CHECK_EQ(dcres_loctable_init(&t, 16, 4096), 0);
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	dcres_loctable_free(&t);
	test_page_sizes_refused(path, read_free);

	free(path);
	printf("ckpt-loctable-test: ok\n");
	return 0;
}
