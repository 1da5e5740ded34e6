/* Unit test of manifest.c: round trip of every field, detection of damage
 * and truncation, version checks, file checksums (holes through
 * dcres_crc32c_zeros, checked here against reading zeros) and
 * verify_files naming the changed or missing file. */
#include "testutil.h"

#include <errno.h>

#include "dcres/crc32c.h"
#include "dcres/manifest.h"

#define SPARSE_SIZE (3u << 20)

/* Writes a small file and a sparse one into dir; returns their FileSums
 * computed independently of dcres_file_checksum. */
static void make_files(const char *dir, Dcres__FileSum *small, Dcres__FileSum *sparse)
{
	char *path = test_path(dir, "main.loc");
	uint8_t *img = calloc(1, SPARSE_SIZE);
	int fd;

	CHECK(img);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "hello, manifest", 15) == 15);
	close(fd);
	small->name = "main.loc";
	small->has_size = small->has_crc32c = 1;
	small->size = 15;
	small->crc32c = dcres_crc32c(0, "hello, manifest", 15);
	free(path);

	/* Holes around some data, ending in a hole. */
	path = test_path(dir, "host-1.mem");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, SPARSE_SIZE) == 0);
	memset(img + 1000000, 0x5a, 70000);
	CHECK(pwrite(fd, img + 1000000, 70000, 1000000) == 70000);
	close(fd);
	sparse->name = "host-1.mem";
	sparse->has_size = sparse->has_crc32c = 1;
	sparse->size = SPARSE_SIZE;
	sparse->crc32c = dcres_crc32c(0, img, SPARSE_SIZE);
	free(img);
	free(path);
}

static void check_fields(const Dcres__Manifest *a, const Dcres__Manifest *b)
{
	CHECK(b->has_version && b->version == a->version);
	CHECK(b->has_vm_uuid && b->vm_uuid.len == 16 &&
	      memcmp(a->vm_uuid.data, b->vm_uuid.data, 16) == 0);
	CHECK(b->has_ram_size && b->ram_size == a->ram_size);
	CHECK(b->has_page_size && b->page_size == a->page_size);
	CHECK(strcmp(a->qemu_version, b->qemu_version) == 0);
	CHECK(strcmp(a->disk_snapshot, b->disk_snapshot) == 0);
	CHECK(b->has_created_unix && b->created_unix == a->created_unix);
	CHECK(b->has_live && b->live == a->live);
	CHECK(strcmp(a->loc_file, b->loc_file) == 0);
	CHECK_EQ(b->n_hosts, a->n_hosts);
	for (size_t i = 0; i < a->n_hosts; i++) {
		CHECK_EQ(b->hosts[i]->id, a->hosts[i]->id);
		CHECK(strcmp(a->hosts[i]->address, b->hosts[i]->address) == 0);
		CHECK(strcmp(a->hosts[i]->mem_file, b->hosts[i]->mem_file) == 0);
		CHECK((a->hosts[i]->present_file == NULL) == (b->hosts[i]->present_file == NULL));
		CHECK_EQ(b->hosts[i]->pages, a->hosts[i]->pages);
	}
	CHECK_EQ(b->n_files, a->n_files);
	for (size_t i = 0; i < a->n_files; i++) {
		CHECK(strcmp(a->files[i]->name, b->files[i]->name) == 0);
		CHECK_EQ(b->files[i]->size, a->files[i]->size);
		CHECK_EQ(b->files[i]->crc32c, a->files[i]->crc32c);
	}
}

/* Writes raw framing around payload as dir/manifest (for hand-made files). */
static void write_framed(const char *path, const uint8_t *payload, uint32_t len)
{
	uint8_t hdr[12] = "DCRESMAN", tail[4];
	uint32_t crc = dcres_crc32c(0, payload, len);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	for (int i = 0; i < 4; i++) {
		hdr[8 + i] = (uint8_t)(len >> (24 - 8 * i));
		tail[i] = (uint8_t)(crc >> (24 - 8 * i));
	}
	CHECK(fd >= 0);
	CHECK(write(fd, hdr, 12) == 12);
	CHECK(write(fd, payload, len) == (ssize_t)len);
	CHECK(write(fd, tail, 4) == 4);
	close(fd);
}

/* dcres_crc32c_zeros equals running dcres_crc32c over the zeros. */
static void check_crc_zeros(void)
{
	static const uint64_t lens[] = { 0, 1, 3, 8, 4095, 4096, 65537, 1u << 20, 3000001 };
	static uint8_t zeros[3000001];

	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (uint32_t start = 0; start < 3; start++) {
			uint32_t crc = start ? dcres_crc32c(0, "seed", start * 2) : 0;
			CHECK_EQ(dcres_crc32c_zeros(crc, lens[i]),
				 dcres_crc32c(crc, zeros, lens[i]));
		}
}

int main(void)
{
	const char *dir = test_tmpdir("/var/tmp");
	char *mpath = test_path(dir, DCRES_MANIFEST_NAME);
	char *loc = test_path(dir, "main.loc"), *mem = test_path(dir, "host-1.mem");
	Dcres__Manifest m = DCRES__MANIFEST__INIT, *r;
	Dcres__HostPart h0 = DCRES__HOST_PART__INIT, h1 = DCRES__HOST_PART__INIT;
	Dcres__HostPart *hosts[] = { &h0, &h1 };
	Dcres__FileSum f0 = DCRES__FILE_SUM__INIT, f1 = DCRES__FILE_SUM__INIT;
	Dcres__FileSum *files[] = { &f0, &f1 };
	uint8_t uuid[16], payload[64];
	uint64_t size;
	uint32_t crc;
	struct stat sb;
	off_t len;
	int fd;

	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(i * 17);
	make_files(dir, &f0, &f1);
	m.has_version = 1;
	m.version = DCRES__MANIFEST_VERSION__MANIFEST_VERSION;
	m.has_vm_uuid = 1;
	m.vm_uuid.data = uuid;
	m.vm_uuid.len = 16;
	m.has_ram_size = 1;
	m.ram_size = 1ull << 30;
	m.has_page_size = 1;
	m.page_size = 4096;
	m.qemu_version = "10.0.0 (dcres)";
	m.disk_snapshot = "dcres-1";
	m.has_created_unix = 1;
	m.created_unix = 1700000000;
	m.has_live = 1;
	m.live = 1;
	m.loc_file = "main.loc";
	h0.has_id = h1.has_id = h0.has_pages = h1.has_pages = 1;
	h0.id = 0;
	h0.address = "10.0.0.1";
	h0.mem_file = "main.mem";
	h0.pages = 1234;
	h1.id = 1;
	h1.address = "10.0.0.2:7000";
	h1.mem_file = "host-1.mem";
	h1.present_file = "host-1.present";
	h1.pages = 99999;
	m.n_hosts = 2;
	m.hosts = hosts;
	m.n_files = 2;
	m.files = files;

	check_crc_zeros();
	/* Checksums: a small file and a sparse one (holes read as zeros). */
	CHECK_EQ(dcres_file_checksum(loc, &size, &crc), 0);
	CHECK(size == f0.size && crc == f0.crc32c);
	CHECK_EQ(dcres_file_checksum(mem, &size, &crc), 0);
	CHECK(size == f1.size && crc == f1.crc32c);

	/* Round trip. */
	CHECK_EQ(dcres_manifest_write(dir, &m), 0);
	CHECK(stat(mpath, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	CHECK_EQ(dcres_manifest_read(dir, &r), 0);
	check_fields(&m, r);
	CHECK_EQ(dcres_manifest_verify_files(dir, r), 0);
	dcres_manifest_free(r);
	dcres_manifest_free(NULL);

	/* Any flipped byte is detected; truncation is -EIO. */
	len = sb.st_size;
	for (off_t off = 0; off < len; off++) {
		test_flip_byte(mpath, off);
		test_capture_start();
		r = (Dcres__Manifest *)1;
		if (dcres_manifest_read(dir, &r) >= 0) {
			fprintf(stderr, "flipped byte %lld not detected\n", (long long)off);
			exit(1);
		}
		CHECK(r == NULL);
		CHECK(test_logged(mpath));
		dcres_log_set_sink(NULL);
		test_flip_byte(mpath, off);
	}
	for (off_t cut = 0; cut < len; cut += 7) {
		CHECK_EQ(dcres_manifest_write(dir, &m), 0);
		CHECK(truncate(mpath, cut) == 0);
		CHECK_EQ(dcres_manifest_read(dir, &r), -EIO);
	}
	CHECK_EQ(dcres_manifest_write(dir, &m), 0);
	fd = open(mpath, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	CHECK_EQ(dcres_manifest_read(dir, &r), -EINVAL);

	/* Versions: writing or reading anything but MANIFEST_VERSION fails. */
	m.version = 2;
	CHECK_EQ(dcres_manifest_write(dir, &m), -EINVAL);
	{
		uint8_t *packed = malloc(dcres__manifest__get_packed_size(&m));

		CHECK(packed);
		write_framed(mpath, packed, (uint32_t)dcres__manifest__pack(&m, packed));
		test_capture_start();
		CHECK_EQ(dcres_manifest_read(dir, &r), -EINVAL);
		CHECK(test_logged("version 2"));
		dcres_log_set_sink(NULL);
		free(packed);
	}
	m.version = DCRES__MANIFEST_VERSION__MANIFEST_VERSION;
	/* Valid framing around bytes that are not a manifest. */
	memset(payload, 0xff, sizeof(payload));
	write_framed(mpath, payload, sizeof(payload));
	CHECK_EQ(dcres_manifest_read(dir, &r), -EINVAL);
	/* A length beyond the limit is refused before anything else. */
	write_framed(mpath, payload, sizeof(payload));
	test_flip_byte(mpath, 8);
	CHECK_EQ(dcres_manifest_read(dir, &r), -EINVAL);
	CHECK(unlink(mpath) == 0);
	CHECK_EQ(dcres_manifest_read(dir, &r), -ENOENT);

	/* verify_files: a changed byte, a changed size, a missing file. */
	test_capture_start();
	test_flip_byte(mem, 2000000);
	CHECK_EQ(dcres_manifest_verify_files(dir, &m), -EBADMSG);
	CHECK(test_logged(mem));
	test_flip_byte(mem, 2000000);
	CHECK_EQ(dcres_manifest_verify_files(dir, &m), 0);
	CHECK(truncate(mem, SPARSE_SIZE + 4096) == 0);
	test_capture_start();
	CHECK_EQ(dcres_manifest_verify_files(dir, &m), -EBADMSG);
	CHECK(test_logged(mem));
	CHECK(unlink(loc) == 0);
	test_capture_start();
	CHECK_EQ(dcres_manifest_verify_files(dir, &m), -ENOENT);
	CHECK(test_logged(loc));
	/* Names must stay inside the checkpoint directory. */
	f0.name = "../main.loc";
	CHECK_EQ(dcres_manifest_verify_files(dir, &m), -EINVAL);
	f0.name = "/etc/passwd";
	CHECK_EQ(dcres_manifest_verify_files(dir, &m), -EINVAL);
	dcres_log_set_sink(NULL);

	free(mpath);
	free(loc);
	free(mem);
	printf("ckpt-manifest-test: ok\n");
	return 0;
}
