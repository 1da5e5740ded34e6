/* Hand-written qcow2 v3 images (qcow2-fixture.h), laid out as qemu-img
 * lays out a new image: cluster 0 the header, 1 the refcount table, 2 its
 * refcount block, 3 the L1 table (all unallocated), then the snapshot
 * table and the snapshot's L1 copy. Integers are big-endian
 * (docs/interop/qcow2.txt in QEMU's source). */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "qcow2-fixture.h"

#include "dcres/bytes.h"

#define CLUSTER_BITS 16
#define CLUSTER (1u << CLUSTER_BITS)
#define HEADER_LEN 104u /* the version 3 header without optional fields */

enum { C_HEADER, C_REFTABLE, C_REFBLOCK, C_L1, C_SNAPTABLE, C_SNAP_L1, NCLUSTERS };

/* Writes the 104-byte version 3 header into hdr. */
static void header(uint8_t *hdr, uint64_t media_size, unsigned nsnapshots)
{
	memcpy(hdr, "QFI\xfb", 4);
	put_be32(hdr + 4, 3);                        /* version */
	put_be32(hdr + 20, CLUSTER_BITS);
	put_be64(hdr + 24, media_size);
	put_be32(hdr + 32, 0);                       /* crypt_method: none */
	put_be32(hdr + 36, 1);                       /* l1_size */
	put_be64(hdr + 40, (uint64_t)C_L1 * CLUSTER);
	put_be64(hdr + 48, (uint64_t)C_REFTABLE * CLUSTER);
	put_be32(hdr + 56, 1);                       /* refcount_table_clusters */
	put_be32(hdr + 60, nsnapshots);
	put_be64(hdr + 64, nsnapshots ? (uint64_t)C_SNAPTABLE * CLUSTER : 0);
	put_be32(hdr + 96, 4);                       /* refcount_order: 16 bits */
	put_be32(hdr + 100, HEADER_LEN);
	/* Backing file, feature bits: zero. The extension list ends at
	 * HEADER_LEN with a zero type and length, which the buffer holds. */
}

/* Writes one snapshot table entry for name into e; returns its length
 * (padded to 8 bytes). */
static size_t snapshot_entry(uint8_t *e, uint64_t media_size, const char *name)
{
	size_t name_len = strlen(name), len = 40 + 16 + 1 + name_len;

	put_be64(e, (uint64_t)C_SNAP_L1 * CLUSTER); /* its copy of the L1 table */
	put_be32(e + 8, 1);                          /* l1_size */
	e[10] = 0, e[11] = 0;
	e[12] = 0, e[13] = 1;                        /* id_str_size */
	e[14] = (uint8_t)(name_len >> 8), e[15] = (uint8_t)name_len;
	put_be32(e + 16, 1700000000);                /* date */
	put_be32(e + 36, 16);                        /* extra data: v3 needs 16 bytes */
	put_be64(e + 48, media_size);                /* extra: disk size */
	e[56] = '1';                                 /* id_str */
	memcpy(e + 57, name, name_len);
	return (len + 7) & ~(size_t)7;
}

void qcow2_fixture_write(const char *path, uint64_t media_size, const char *snapshot)
{
	uint8_t *img = calloc(NCLUSTERS, CLUSTER);
	unsigned used = snapshot ? NCLUSTERS : C_SNAPTABLE;
	int fd;

	CHECK(img != NULL);
	CHECK(media_size <= (uint64_t)CLUSTER * (CLUSTER / 8)); /* one L2 table's worth */
	CHECK(!snapshot || strlen(snapshot) < 1000);
	header(img, media_size, snapshot ? 1 : 0);
	put_be64(img + C_REFTABLE * CLUSTER, (uint64_t)C_REFBLOCK * CLUSTER);
	for (unsigned c = 0; c < used; c++)
		img[C_REFBLOCK * CLUSTER + 2 * c + 1] = 1; /* refcount 1 */
	if (snapshot)
		snapshot_entry(img + C_SNAPTABLE * CLUSTER, media_size, snapshot);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, img, (size_t)used * CLUSTER) == (ssize_t)used * CLUSTER);
	close(fd);
	free(img);
}
