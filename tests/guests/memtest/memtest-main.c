/* Bare-metal memtest guest: platform glue for memtest-core.
 *
 * Tests every usable RAM page above its own image (below 64 GiB) from the
 * multiboot memory map, keeps the generation table at the start of that RAM,
 * prints on COM1 and keeps time with the TSC calibrated against the PIT.
 * Command line (QEMU -append): hot=PCT hotat=PCT rate=N|max rest=SEC, see
 * memtest-core.h. */
#include <stddef.h>
#include <stdint.h>

#include "memtest-core.h"
#include "pattern.h"

#define COM1 0x3f8
#define MAPPED_LIMIT (64ull << 30) /* boot.S identity-maps this much */
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MMAP (1u << 6)

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
	uint32_t mods_count, mods_addr, syms[4], mmap_length, mmap_addr;
} __attribute__((packed));

struct mb_mmap_entry {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

extern char __image_end[];
static uint64_t tsc_per_us;
static char cmdline[512];
static struct mt_state state;

/* The compiler may emit calls to these even in freestanding code. */
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static void serial_write(const char *s, unsigned len)
{
	while (len--) {
		while (!(inb(COM1 + 5) & 0x20))
			;
		outb(COM1, (uint8_t)*s++);
	}
}

static uint64_t now_us(void)
{
	return rdtsc() / tsc_per_us;
}

/* Measures TSC ticks per microsecond over 50 ms of PIT channel 2. */
static void calibrate_tsc(void)
{
	const uint32_t latch = 1193182 / 20;
	uint64_t t0, t1;

	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, latch & 0xff);
	outb(0x42, (uint8_t)(latch >> 8));
	t0 = rdtsc();
	while (!(inb(0x61) & 0x20))
		;
	t1 = rdtsc();
	tsc_per_us = (t1 - t0) / 50000;
	if (tsc_per_us == 0)
		tsc_per_us = 1;
}

static void fatal(const char *msg)
{
	mt_say(state.plat, msg);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* Adds usable RAM [start, end) to the tested regions, page-aligned. */
static void add_region(uint64_t start, uint64_t end)
{
	struct mt_region *r;

	start = (start + MT_PAGE_SIZE - 1) & ~(uint64_t)(MT_PAGE_SIZE - 1);
	end &= ~(uint64_t)(MT_PAGE_SIZE - 1);
	if (end > MAPPED_LIMIT)
		end = MAPPED_LIMIT;
	if (end <= start)
		return;
	if (state.nregions == MT_MAX_REGIONS)
		fatal("too many memory regions");
	r = &state.regions[state.nregions++];
	r->addr = (uint64_t *)(uintptr_t)start;
	r->first_page = start / MT_PAGE_SIZE;
	r->count = (end - start) / MT_PAGE_SIZE;
	state.npages += r->count;
}

/* Copies what is needed out of the multiboot info (which lies in RAM the
 * test will overwrite) and builds the region list. */
static void read_boot_info(const struct mb_info *mbi)
{
	uint64_t image_end = (uint64_t)(uintptr_t)__image_end;

	if ((mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline) {
		const char *c = (const char *)(uintptr_t)mbi->cmdline;
		unsigned i = 0;
		while (c[i] && i < sizeof(cmdline) - 1) {
			cmdline[i] = c[i];
			i++;
		}
	}
	if (!(mbi->flags & MB_INFO_MMAP))
		fatal("no multiboot memory map");
	for (uint32_t off = 0; off < mbi->mmap_length;) {
		const struct mb_mmap_entry *e =
			(const void *)(uintptr_t)(mbi->mmap_addr + off);
		if (e->type == 1 && e->addr + e->len > image_end)
			add_region(e->addr < image_end ? image_end : e->addr,
				   e->addr + e->len);
		off += e->size + 4;
	}
}

/* Carves the generation table out of the front of the first region large
 * enough to hold it, and drops those pages from the tested set. */
static void place_generation_table(void)
{
	uint64_t table_pages =
		(state.npages * sizeof(uint32_t) + MT_PAGE_SIZE - 1) / MT_PAGE_SIZE;

	for (unsigned i = 0; i < state.nregions; i++) {
		struct mt_region *r = &state.regions[i];
		if (r->count > table_pages) {
			state.gens = (uint32_t *)r->addr;
			r->addr += table_pages * MT_WORDS;
			r->first_page += table_pages;
			r->count -= table_pages;
			state.npages -= table_pages;
			return;
		}
	}
	fatal("no region can hold the generation table");
}

static const struct mt_platform platform = {
	.write = serial_write,
	.now_us = now_us,
};

void memtest_main(uint32_t mbi_addr)
{
	state.plat = &platform;
	outb(COM1 + 1, 0x00); /* no interrupts; QEMU's UART needs no baud setup */
	outb(COM1 + 3, 0x03); /* 8N1 */
	calibrate_tsc();
	read_boot_info((const struct mb_info *)(uintptr_t)mbi_addr);
	mt_parse_cmdline(&state.cfg, cmdline, "");
	place_generation_table();
	mt_run(&state);
}
