/* Unit test of loctable.c: round trip, detection of any flipped byte,
 * truncation and trailing bytes. */
#include "testutil.h"

#include <errno.h>

#include "dcres/loctable.h"

#define NPAGES 3000u

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
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	len = sb.st_size;
	CHECK_EQ(len, 24 + 2 * NPAGES + 4);
	CHECK_EQ(dcres_loctable_read(path, &u), 0);
	CHECK_EQ(u.npages, NPAGES);
	CHECK_EQ(u.page_size, 4096);
	CHECK(memcmp(t.host, u.host, NPAGES) == 0);
	CHECK(memcmp(t.history, u.history, NPAGES) == 0);
	dcres_loctable_free(&u);

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
	static const off_t cuts[] = { 0, 8, 23, 24, 27, 1000, 24 + 2 * NPAGES };
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

	/* An empty table round-trips; absurd geometry is refused. */
	dcres_loctable_free(&t);
	CHECK_EQ(dcres_loctable_init(&t, 0, 4096), 0);
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	CHECK_EQ(dcres_loctable_read(path, &u), 0);
	CHECK_EQ(u.npages, 0);
	dcres_loctable_free(&u);
	dcres_loctable_free(&t);
	CHECK_EQ(dcres_loctable_init(&t, 16, 3000), -EINVAL);

	free(path);
	printf("ckpt-loctable-test: ok\n");
	return 0;
}
