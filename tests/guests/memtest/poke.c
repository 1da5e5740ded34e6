/* memtest-poke: corrupts one memtest page in a guest memory file, from
 * outside the guest, to prove the verifier notices.
 *
 * usage: memtest-poke FILE
 * Scans FILE (a memory-backend-file share=on backing, or any RAM image) for
 * pages carrying the memtest pattern, flips one byte in the body of the one
 * with the highest page number (the guests rewrite low page numbers, their
 * hot set, so that page stays as corrupted until it is verified) and prints
 * "page=N offset=OFF". Exits 1 if no memtest page is found. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pattern.h"

int main(int argc, char **argv)
{
	struct stat sb;
	uint64_t best_page = 0;
	off_t best_off = -1;
	uint8_t *mem;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: memtest-poke FILE\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		fprintf(stderr, "memtest-poke: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	mem = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "memtest-poke: mmap %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (off_t off = 0; off + MT_PAGE_SIZE <= sb.st_size; off += MT_PAGE_SIZE) {
		const uint64_t *w = (const uint64_t *)(mem + off);
		unsigned word;
		if (w[2] == MT_MAGIC && mt_check_page(w, w[0], w[1], &word) == MT_OK &&
		    (best_off < 0 || w[0] > best_page)) {
			best_page = w[0];
			best_off = off;
		}
	}
	if (best_off < 0) {
		fprintf(stderr, "memtest-poke: no memtest page in %s\n", argv[1]);
		return 1;
	}
	mem[best_off + MT_PAGE_SIZE / 2] ^= 0x5a;
	msync(mem + best_off, MT_PAGE_SIZE, MS_SYNC);
	printf("page=%" PRIu64 " offset=%lld\n", best_page, (long long)best_off);
	munmap(mem, (size_t)sb.st_size);
	close(fd);
	return 0;
}
