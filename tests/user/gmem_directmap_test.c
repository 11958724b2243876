// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of gmem files without the direct map: the flag
 * GMEM_CREATE_NO_DIRECT_MAP and the module parameter no_direct_map, the
 * counter unmapped_bytes, the granularity the direct map keeps (read from
 * /proc/meminfo: DirectMap4k, DirectMap2M, DirectMap1G), GMEM_WRITE into
 * such files, and that every test gives back what it took.
 *
 * Every error check names the errno.  The fixture sets no_direct_map to
 * 0 and blocks to "always" for each test and restores both in its
 * teardown, which also checks that the module's counters are back where
 * they were before the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"
#include "gmem_attrs_util.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define BLOCK (2 * MiB)

#define GMEM_ALLOCATE	FALLOC_FL_KEEP_SIZE
#define GMEM_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

#define PARAM_DIR		"/sys/module/gmem/parameters"
#define PARAM_NO_DIRECT_MAP	PARAM_DIR "/no_direct_map"
#define PARAM_BLOCKS		PARAM_DIR "/blocks"
#define SYSFS_UNMAPPED		GMEM_SYSFS "/unmapped_bytes"

/*
 * How far DirectMap4k may grow where gmem itself must split no 2 MiB
 * entry of the direct map.  Each entry split into 4 KiB ones adds 2 MiB
 * to DirectMap4k, so 8 MiB lets four entries be split by something else
 * meanwhile: a 2 MiB range of the file that the page allocator had no
 * free block for (fallocate then takes 4 KiB pages, each unmapped on its
 * own), or the kernel changing the attributes of its own memory.  A
 * module that unmapped blocks page by page would split one entry per
 * block: 1 GiB for the 512 blocks of the granularity test.
 */
#define DM_SPLIT_BOUND	(8 * MiB)

/* Blocks whose direct-map split the granularity test wants to see. */
#define SPLIT_BLOCKS	64

/* The size of the file of the granularity test: 512 blocks. */
#define GRAN_SIZE	GiB

static unsigned long long page_size(void)
{
	return (unsigned long long)sysconf(_SC_PAGESIZE);
}

/* fallocate() that must succeed. */
#define gmem_fallocate(_metadata, fd, mode, off, len) do {		\
	long long __o = (off), __l = (len);				\
	int __m = (mode);						\
	ASSERT_EQ(0, fallocate((fd), __m, __o, __l))			\
		TH_LOG("fallocate mode %#x offset %#llx len %#llx: %s",	\
		       __m, __o, __l, strerror(errno));			\
} while (0)

/* The module-wide counters of /sys/class/misc/gmem/. */
struct counters {
	unsigned long long unmapped;
	unsigned long long allocated;
	unsigned long long held;
	unsigned long long files;
};

static int __read_counters(struct counters *c)
{
	int r;

	r = __gmem_read_u64(SYSFS_UNMAPPED, &c->unmapped);
	if (!r)
		r = __gmem_read_u64(GMEM_SYSFS "/allocated_bytes", &c->allocated);
	if (!r)
		r = __gmem_read_u64(GMEM_SYSFS "/held_bytes", &c->held);
	if (!r)
		r = __gmem_read_u64(GMEM_SYSFS "/files", &c->files);
	return r;
}

#define read_counters(_metadata) ({					\
	struct counters __c;						\
	int __r = __read_counters(&__c);				\
	ASSERT_EQ(0, __r) TH_LOG("read the counters in " GMEM_SYSFS ": %s", \
				 strerror(-__r));			\
	__c;								\
})

/* Each counter of @now equals that of @base. */
#define expect_counters_at(_metadata, base, now, when) do {		\
	EXPECT_EQ((base).unmapped, (now).unmapped)			\
		TH_LOG("%s: unmapped_bytes %llu, expected %llu",	\
		       when, (now).unmapped, (base).unmapped);		\
	EXPECT_EQ((base).allocated, (now).allocated)			\
		TH_LOG("%s: allocated_bytes %llu, expected %llu",	\
		       when, (now).allocated, (base).allocated);	\
	EXPECT_EQ((base).held, (now).held)				\
		TH_LOG("%s: held_bytes %llu, expected %llu",		\
		       when, (now).held, (base).held);			\
	EXPECT_EQ((base).files, (now).files)				\
		TH_LOG("%s: files %llu, expected %llu",			\
		       when, (now).files, (base).files);		\
} while (0)

/* What the process found before any test ran; valid unless -errno. */
static struct counters start_counters;
static int start_counters_err = -ENODATA;

static void __attribute__((constructor)) read_start_counters(void)
{
	start_counters_err = __read_counters(&start_counters);
}

/* fdinfo gmem-allocated + gmem-held of @fd: what it keeps unmapped. */
#define file_bytes(_metadata, fd)					\
	(gmem_fdinfo(_metadata, fd, "gmem-allocated") +			\
	 gmem_fdinfo(_metadata, fd, "gmem-held"))

/*
 * expect_unmapped() - unmapped_bytes is @base's plus @bytes, and the
 * files of the test hold exactly what allocated_bytes and held_bytes
 * gained (@fbytes: their gmem-allocated + gmem-held).
 */
#define expect_unmapped(_metadata, base, bytes, fbytes, what) do {	\
	struct counters __n = read_counters(_metadata);			\
	unsigned long long __want = (base).unmapped + (bytes);		\
	unsigned long long __fb = (fbytes);				\
	EXPECT_EQ(__want, __n.unmapped)					\
		TH_LOG("%s: unmapped_bytes %llu, expected %llu (baseline %llu)", \
		       what, __n.unmapped, __want, (base).unmapped);	\
	EXPECT_EQ((base).allocated + (base).held + __fb,		\
		  __n.allocated + __n.held)				\
		TH_LOG("%s: allocated_bytes + held_bytes %llu, expected %llu + %llu", \
		       what, __n.allocated + __n.held,			\
		       (base).allocated + (base).held, __fb);		\
} while (0)

/* The value of a module parameter, without the newline. */
static int read_param(const char *path, char *buf, size_t len)
{
	int r = __gmem_read_file(path, buf, len);

	if (!r)
		buf[strcspn(buf, "\n")] = '\0';
	return r;
}

/* The direct map by page size, in bytes, from /proc/meminfo. */
struct dmap {
	unsigned long long k4, m2, g1;
};

static int __read_dmap(struct dmap *d)
{
	int r;

	r = __gmem_read_key("/proc/meminfo", "DirectMap4k", 0, &d->k4);
	if (!r)
		r = __gmem_read_key("/proc/meminfo", "DirectMap2M", 0, &d->m2);
	if (r)
		return r;
	/* Only where the CPU has 1 GiB pages. */
	if (__gmem_read_key("/proc/meminfo", "DirectMap1G", 0, &d->g1))
		d->g1 = 0;
	d->k4 *= KiB;
	d->m2 *= KiB;
	d->g1 *= KiB;
	return 0;
}

#define read_dmap(_metadata) ({						\
	struct dmap __d;						\
	int __r = __read_dmap(&__d);					\
	ASSERT_EQ(0, __r) TH_LOG("DirectMap4k and DirectMap2M in /proc/meminfo: %s", \
				 strerror(-__r));			\
	__d;								\
})

static long long mib(long long bytes)
{
	return bytes / (long long)MiB;
}

static void print_dmap(const char *when, const struct dmap *d,
		       const struct dmap *base)
{
	ksft_print_msg("%s: DirectMap4k %llu KiB (%+lld KiB), DirectMap2M %llu MiB (%+lld MiB), DirectMap1G %llu GiB (%+lld MiB)\n",
		       when, d->k4 / KiB, ((long long)d->k4 - (long long)base->k4) / (long long)KiB,
		       d->m2 / MiB, mib((long long)d->m2 - (long long)base->m2),
		       d->g1 / GiB, mib((long long)d->g1 - (long long)base->g1));
}

/* Growth of DirectMap4k from @base to @d, signed. */
static long long grown_4k(const struct dmap *base, const struct dmap *d)
{
	return (long long)d->k4 - (long long)base->k4;
}

/*
 * Is the direct map all 4 KiB already, so that no change of it can be
 * seen in /proc/meminfo?  Sets @why when it is.  debug_pagealloc=on maps
 * everything with 4 KiB pages (any value kstrtobool() takes as true).
 */
static bool dmap_all_4k(const struct dmap *d, const char **why)
{
	char cmdline[4096], *p;
	int r;

	r = __gmem_read_file("/proc/cmdline", cmdline, sizeof(cmdline));
	for (p = cmdline; !r && (p = strstr(p, "debug_pagealloc=")); p++) {
		if (p != cmdline && p[-1] != ' ')
			continue;
		p += strlen("debug_pagealloc=");
		if (strchr("1yYtT", p[0]) || !strncmp(p, "on", 2) ||
		    !strncmp(p, "On", 2)) {
			*why = "booted with debug_pagealloc on: the direct map is all 4 KiB pages";
			return true;
		}
	}
	if (!d->m2 && !d->g1) {
		*why = "DirectMap2M and DirectMap1G are 0: the direct map is all 4 KiB pages";
		return true;
	}
	return false;
}

/*
 * free_blocks() - make free 2 MiB blocks: fallocate and GMEM_WRITE take
 * a block only when the page allocator has one at hand (no reclaim, no
 * compaction), 4 KiB pages otherwise.
 */
#define free_blocks(_metadata) do {					\
	gmem_write_file(_metadata, "/proc/sys/vm/drop_caches", "3");	\
	if (!access("/proc/sys/vm/compact_memory", F_OK))		\
		gmem_write_file(_metadata, "/proc/sys/vm/compact_memory", "1"); \
} while (0)

/*
 * nodm: /dev/gmem and up to four files.  Setup saves no_direct_map and
 * blocks and sets them to 0 and "always"; teardown closes the files,
 * restores both and checks that the counters are back at their values
 * before the test.
 */
#define NFDS 4

FIXTURE(nodm) {
	int devfd;
	int fds[NFDS];
	unsigned long long page;
	char saved_ndm[16];
	char saved_blocks[16];
	struct counters base;
};

FIXTURE_SETUP(nodm)
{
	int i, r;

	self->devfd = -1;
	for (i = 0; i < NFDS; i++)
		self->fds[i] = -1;
	self->saved_ndm[0] = '\0';
	self->saved_blocks[0] = '\0';
	self->page = page_size();
	self->devfd = gmem_open_dev(_metadata);
	r = read_param(PARAM_NO_DIRECT_MAP, self->saved_ndm, sizeof(self->saved_ndm));
	ASSERT_EQ(0, r) TH_LOG("read " PARAM_NO_DIRECT_MAP ": %s", strerror(-r));
	r = read_param(PARAM_BLOCKS, self->saved_blocks, sizeof(self->saved_blocks));
	ASSERT_EQ(0, r) TH_LOG("read " PARAM_BLOCKS ": %s", strerror(-r));
	gmem_write_file(_metadata, PARAM_NO_DIRECT_MAP, "0");
	gmem_write_file(_metadata, PARAM_BLOCKS, "always");
	self->base = read_counters(_metadata);
}

FIXTURE_TEARDOWN(nodm)
{
	struct counters now;
	int i, r;

	for (i = 0; i < NFDS; i++)
		if (self->fds[i] >= 0)
			close(self->fds[i]);
	if (self->saved_ndm[0]) {
		r = __gmem_write_file(PARAM_NO_DIRECT_MAP, self->saved_ndm);
		EXPECT_EQ(0, r) TH_LOG("restore no_direct_map \"%s\": %s",
				       self->saved_ndm, strerror(-r));
	}
	if (self->saved_blocks[0]) {
		r = __gmem_write_file(PARAM_BLOCKS, self->saved_blocks);
		EXPECT_EQ(0, r) TH_LOG("restore blocks \"%s\": %s",
				       self->saved_blocks, strerror(-r));
	}
	if (self->devfd >= 0)
		close(self->devfd);
	/* The last close of a gmem file frees its pages before it returns. */
	if (!__read_counters(&now))
		expect_counters_at(_metadata, self->base, now, "after the test");
}

/* GMEM_CREATE into self->fds[@i]; the fd. */
#define create_fd(_metadata, self, i, size, flags) ({			\
	int __i = (i);							\
	(self)->fds[__i] = gmem_create(_metadata, (self)->devfd, size, flags); \
	(self)->fds[__i];						\
})

/* Close self->fds[@i]. */
static void close_fd(int *fds, int i)
{
	close(fds[i]);
	fds[i] = -1;
}

/*
 * 1. The flag: GMEM_CREATE takes it and fdinfo shows it, with and
 * without blocks and next to the other flags; every bit above it is
 * still unknown (EINVAL), alone or next to the known flags.
 */
TEST_F(nodm, flag)
{
	const struct {
		const char *blocks;
		__u64 flags, shown;
	} cases[] = {
		{ "never",  GMEM_CREATE_NO_DIRECT_MAP, 0x10 },
		{ "always", GMEM_CREATE_NO_DIRECT_MAP, 0x18 },
		{ "flag",   GMEM_CREATE_NO_DIRECT_MAP, 0x10 },
		{ "flag",   GMEM_CREATE_NO_DIRECT_MAP | GMEM_CREATE_BLOCKS, 0x18 },
		{ "never",  GMEM_CREATE_NO_DIRECT_MAP | GMEM_CREATE_CLOEXEC, 0x11 },
		{ "never",  GMEM_CREATE_FLAGS & ~GMEM_CREATE_BLOCKS, 0x17 },
		{ "never",  0, 0 },
	};
	unsigned long long shown;
	unsigned int i;
	__u64 bit;
	int fd;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		gmem_write_file(_metadata, PARAM_BLOCKS, cases[i].blocks);
		fd = create_fd(_metadata, self, 0, self->page, cases[i].flags);
		shown = gmem_fdinfo(_metadata, fd, "gmem-flags");
		EXPECT_EQ(cases[i].shown, shown)
			TH_LOG("blocks=%s, GMEM_CREATE flags %#llx: gmem-flags %#llx, expected %#llx",
			       cases[i].blocks, (unsigned long long)cases[i].flags,
			       shown, (unsigned long long)cases[i].shown);
		close_fd(self->fds, 0);
	}

	for (bit = GMEM_CREATE_NO_DIRECT_MAP << 1; bit; bit <<= 1) {
		errno = 0;
		fd = __gmem_create(self->devfd, self->page, bit);
		EXPECT_EQ(-1, fd)
			TH_LOG("flags %#llx: expected EINVAL, got fd %d",
			       (unsigned long long)bit, fd);
		EXPECT_EQ(EINVAL, errno)
			TH_LOG("flags %#llx: expected EINVAL, got %s",
			       (unsigned long long)bit, strerror(errno));
		if (fd >= 0)
			close(fd);

		errno = 0;
		fd = __gmem_create(self->devfd, self->page,
				   bit | GMEM_CREATE_NO_DIRECT_MAP);
		EXPECT_EQ(-1, fd)
			TH_LOG("flags %#llx: expected EINVAL, got fd %d",
			       (unsigned long long)(bit | GMEM_CREATE_NO_DIRECT_MAP), fd);
		EXPECT_EQ(EINVAL, errno)
			TH_LOG("flags %#llx: expected EINVAL, got %s",
			       (unsigned long long)(bit | GMEM_CREATE_NO_DIRECT_MAP),
			       strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

/*
 * 2. The parameter: with no_direct_map=1 a file created without the flag
 * gets it (fdinfo, and its pages leave the direct map); with 0 it does
 * not; a file keeps what it was created with.  Anything that is not a
 * boolean fails with EINVAL and changes nothing.
 */
TEST_F(nodm, param)
{
	static const char * const bad[] = { "maybe", "2", "-1", "x", "o" };
	char before[16], now[16];
	unsigned long long pg = self->page;
	unsigned int i, round;
	int on, off, r;

	gmem_write_file(_metadata, PARAM_NO_DIRECT_MAP, "1");
	ASSERT_EQ(0, read_param(PARAM_NO_DIRECT_MAP, now, sizeof(now)));
	EXPECT_STREQ("Y", now);
	on = create_fd(_metadata, self, 0, 2 * MiB, 0);
	EXPECT_EQ(0x18ULL, gmem_fdinfo(_metadata, on, "gmem-flags"));

	gmem_write_file(_metadata, PARAM_NO_DIRECT_MAP, "0");
	ASSERT_EQ(0, read_param(PARAM_NO_DIRECT_MAP, now, sizeof(now)));
	EXPECT_STREQ("N", now);
	off = create_fd(_metadata, self, 1, 2 * MiB, 0);
	EXPECT_EQ(0x8ULL, gmem_fdinfo(_metadata, off, "gmem-flags"));
	/* Decided at creation: the first file keeps the flag. */
	EXPECT_EQ(0x18ULL, gmem_fdinfo(_metadata, on, "gmem-flags"));

	/* Only the pages of the file made with the parameter on leave. */
	gmem_fallocate(_metadata, on, GMEM_ALLOCATE, 0, 3 * pg);
	gmem_fallocate(_metadata, off, GMEM_ALLOCATE, 0, 5 * pg);
	expect_unmapped(_metadata, self->base, 3 * pg, 8 * pg,
			"3 pages in the file made with no_direct_map=1, 5 in the other");

	for (round = 0; round < 2; round++) {
		gmem_write_file(_metadata, PARAM_NO_DIRECT_MAP, round ? "Y" : "N");
		ASSERT_EQ(0, read_param(PARAM_NO_DIRECT_MAP, before, sizeof(before)));
		for (i = 0; i < ARRAY_SIZE(bad); i++) {
			r = __gmem_write_file(PARAM_NO_DIRECT_MAP, bad[i]);
			EXPECT_EQ(-EINVAL, r)
				TH_LOG("no_direct_map = \"%s\": expected EINVAL, got %d (%s)",
				       bad[i], r, strerror(-r));
			ASSERT_EQ(0, read_param(PARAM_NO_DIRECT_MAP, now, sizeof(now)));
			EXPECT_STREQ(before, now)
				TH_LOG("no_direct_map changed by \"%s\"", bad[i]);
		}
	}
}

/*
 * 3. unmapped_bytes: it rises by exactly what a file with the flag
 * allocates (gmem-allocated + gmem-held: held pages stay out of the
 * direct map too), does not move when part of a block is punched (the
 * pages are held), falls by what a punch frees and is back at its
 * baseline once the file is closed.  A file without the flag never
 * moves it.
 */
TEST_F(nodm, accounting)
{
	unsigned long long pg = self->page, fb;
	int nd, plain;

	nd = create_fd(_metadata, self, 0, 8 * MiB, GMEM_CREATE_NO_DIRECT_MAP);
	plain = create_fd(_metadata, self, 1, 8 * MiB, 0);

	/* A block and three single pages. */
	gmem_fallocate(_metadata, nd, GMEM_ALLOCATE, 2 * MiB, 2 * MiB);
	gmem_fallocate(_metadata, nd, GMEM_ALLOCATE, 5 * MiB + 7 * pg, 3 * pg);
	EXPECT_EQ(2 * MiB + 3 * pg, gmem_fdinfo(_metadata, nd, "gmem-allocated"));
	fb = file_bytes(_metadata, nd);
	expect_unmapped(_metadata, self->base, fb, fb, "after the allocations");

	/* The file without the flag: allocated_bytes moves, unmapped does not. */
	gmem_fallocate(_metadata, plain, GMEM_ALLOCATE, 0, 8 * MiB);
	expect_unmapped(_metadata, self->base, fb, fb + file_bytes(_metadata, plain),
			"after allocating 8 MiB without the flag");

	/* Part of the block: held, still out of the direct map. */
	gmem_fallocate(_metadata, nd, GMEM_PUNCH, 2 * MiB + 10 * pg, 2 * pg);
	EXPECT_EQ(2 * pg, gmem_fdinfo(_metadata, nd, "gmem-held"));
	EXPECT_EQ(2 * MiB + pg, gmem_fdinfo(_metadata, nd, "gmem-allocated"));
	EXPECT_EQ(fb, file_bytes(_metadata, nd));
	expect_unmapped(_metadata, self->base, fb, fb + file_bytes(_metadata, plain),
			"after punching 2 pages of the block");

	/* One single page freed: one page less. */
	gmem_fallocate(_metadata, nd, GMEM_PUNCH, 5 * MiB + 8 * pg, pg);
	expect_unmapped(_metadata, self->base, fb - pg,
			fb - pg + file_bytes(_metadata, plain),
			"after punching a single page");

	/* The whole block, its held pages with it. */
	gmem_fallocate(_metadata, nd, GMEM_PUNCH, 2 * MiB, 2 * MiB);
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, nd, "gmem-held"));
	expect_unmapped(_metadata, self->base, fb - pg - 2 * MiB,
			fb - pg - 2 * MiB + file_bytes(_metadata, plain),
			"after punching the block");

	/* Allocated again, then given back by close. */
	gmem_fallocate(_metadata, nd, GMEM_ALLOCATE, 0, 8 * MiB);
	expect_unmapped(_metadata, self->base, 8 * MiB, 16 * MiB,
			"after allocating all 8 MiB of both files");
	gmem_fallocate(_metadata, plain, GMEM_PUNCH, 0, 8 * MiB);
	expect_unmapped(_metadata, self->base, 8 * MiB, 8 * MiB,
			"after punching the file without the flag");
	close_fd(self->fds, 0);
	expect_unmapped(_metadata, self->base, 0, 0, "after closing the file");
}

/*
 * 4. The granularity of the direct map, from /proc/meminfo.  A 1 GiB
 * file populated and punched whole must leave every 2 MiB entry whole:
 * DirectMap4k grows by less than DM_SPLIT_BOUND (both after the populate
 * and after the punch).  Punching one page of every block holds those
 * pages (zeroed through a temporary mapping): no entry splits either.
 * Then the test shows it can see a split: giving the held pages back
 * (the shrinker, through drop_caches) maps them back alone, which splits
 * each block's 2 MiB entry and adds 2 MiB to DirectMap4k; at least
 * SPLIT_BLOCKS of the 512 must (a block whose memory some earlier user
 * had split already adds nothing).  x86 never merges 4 KiB entries back
 * into 2 MiB ones, so the split entries stay split (up to 1 GiB of the
 * direct map per run).
 */
TEST_F_TIMEOUT(nodm, granularity, 600)
{
	unsigned long long pg = self->page, avail = 0, off;
	unsigned int b, punched = 0;
	struct dmap d0, d1, d2, d3, d4, d5;
	long long grown;
	const char *why;
	int fd, r;

	r = __read_dmap(&d0);
	if (r)
		SKIP(return, "no DirectMap4k and DirectMap2M in /proc/meminfo: %s",
		     strerror(-r));
	if (dmap_all_4k(&d0, &why))
		SKIP(return, "%s", why);
	r = __gmem_read_key("/proc/meminfo", "MemAvailable", 0, &avail);
	ASSERT_EQ(0, r) TH_LOG("MemAvailable in /proc/meminfo: %s", strerror(-r));
	if (avail * KiB < GRAN_SIZE + 256 * MiB)
		SKIP(return, "%llu MiB available, the test needs 1 GiB and some room",
		     avail / KiB);

	free_blocks(_metadata);

	fd = create_fd(_metadata, self, 0, GRAN_SIZE, GMEM_CREATE_NO_DIRECT_MAP);
	d0 = read_dmap(_metadata);
	print_dmap("before", &d0, &d0);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, GRAN_SIZE);
	d1 = read_dmap(_metadata);
	print_dmap("1 GiB populated", &d1, &d0);
	expect_unmapped(_metadata, self->base, GRAN_SIZE, GRAN_SIZE, "1 GiB populated");
	grown = grown_4k(&d0, &d1);
	EXPECT_GT((long long)DM_SPLIT_BOUND, grown)
		TH_LOG("populating 1 GiB of blocks grew DirectMap4k by %lld KiB: 2 MiB entries were split",
		       grown / (long long)KiB);

	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, GRAN_SIZE);
	d2 = read_dmap(_metadata);
	print_dmap("1 GiB punched", &d2, &d0);
	expect_unmapped(_metadata, self->base, 0, 0, "1 GiB punched");
	grown = grown_4k(&d0, &d2);
	EXPECT_GT((long long)DM_SPLIT_BOUND, grown)
		TH_LOG("populating and punching 1 GiB of blocks grew DirectMap4k by %lld KiB: 2 MiB entries were split",
		       grown / (long long)KiB);

	/* Populated again: one page punched per block, block by block. */
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, GRAN_SIZE);
	d3 = read_dmap(_metadata);
	print_dmap("1 GiB populated again", &d3, &d0);
	grown = grown_4k(&d2, &d3);
	EXPECT_GT((long long)DM_SPLIT_BOUND, grown)
		TH_LOG("populating 1 GiB again grew DirectMap4k by %lld KiB",
		       grown / (long long)KiB);

	for (b = 0; b < GRAN_SIZE / BLOCK; b++) {
		/* Another page of each block: (37 * b) mod 512. */
		off = b * BLOCK + (37ULL * b % (BLOCK / pg)) * pg;
		gmem_fallocate(_metadata, fd, GMEM_PUNCH, off, pg);
		punched++;
	}
	d4 = read_dmap(_metadata);
	print_dmap("one page punched per block", &d4, &d0);
	expect_unmapped(_metadata, self->base, GRAN_SIZE, GRAN_SIZE,
			"one page punched per block (held)");
	grown = grown_4k(&d3, &d4);
	EXPECT_GT((long long)DM_SPLIT_BOUND, grown)
		TH_LOG("%u partial punches grew DirectMap4k by %lld KiB: held pages split 2 MiB entries",
		       punched, grown / (long long)KiB);

	/* The held pages given back, each alone: one split per block. */
	gmem_write_file(_metadata, "/proc/sys/vm/drop_caches", "2");
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, fd, "gmem-held"))
		TH_LOG("drop_caches left held pages in the file");
	d5 = read_dmap(_metadata);
	print_dmap("held pages given back", &d5, &d0);
	grown = grown_4k(&d4, &d5);
	ksft_print_msg("%u held pages given back: DirectMap4k %+lld KiB (%lld 2 MiB entries split)\n",
		       punched, grown / (long long)KiB, grown / (long long)BLOCK);
	EXPECT_LE((long long)(SPLIT_BLOCKS * BLOCK - DM_SPLIT_BOUND), grown)
		TH_LOG("giving back %u held pages grew DirectMap4k by %lld KiB, expected at least %llu MiB: blocks' entries were not split",
		       punched, grown / (long long)KiB,
		       (SPLIT_BLOCKS * BLOCK - DM_SPLIT_BOUND) / MiB);
	/* One entry per block, no more. */
	EXPECT_GE((long long)(punched * BLOCK + DM_SPLIT_BOUND), grown)
		TH_LOG("giving back %u held pages grew DirectMap4k by %lld KiB, more than one 2 MiB entry each",
		       punched, grown / (long long)KiB);

	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, GRAN_SIZE);
	close_fd(self->fds, 0);
	expect_unmapped(_metadata, self->base, 0, 0, "after closing the 1 GiB file");
}

/* GMEM_WRITE that must write all @size bytes. */
#define write_all(_metadata, fd, off, size, src) do {			\
	uint64_t __o = (off), __s = (size), __w = 0;			\
	EXPECT_EQ(0, __gmem_write((fd), __o, __s, (src), &__w))		\
		TH_LOG("GMEM_WRITE offset %#llx size %#llx: %s",	\
		       (unsigned long long)__o, (unsigned long long)__s, \
		       strerror(errno));				\
	EXPECT_EQ(__s, __w)						\
		TH_LOG("GMEM_WRITE offset %#llx size %#llx: written %#llx", \
		       (unsigned long long)__o, (unsigned long long)__s, \
		       (unsigned long long)__w);			\
} while (0)

/*
 * 5. GMEM_WRITE into a file without the direct map (it writes through a
 * temporary mapping): into a hole, whose block it allocates (blocks is
 * "always"), the other pages held; into a held page; into a page
 * fallocate populated, again into a page it wrote; a whole block; one
 * page into each of WRITE_BLOCKS more holes, as a restore does.  The
 * pages stay out of the direct map (unmapped_bytes), and when the direct
 * map has 2 MiB entries none is split (DirectMap4k): a split per block
 * would show as 2 * (WRITE_BLOCKS + 3) MiB, well above DM_SPLIT_BOUND.
 */
#define WRITE_BLOCKS	16

TEST_F(nodm, write)
{
	unsigned long long pg = self->page, off;
	struct dmap d0, d1;
	const char *why;
	unsigned int i;
	bool all_4k;
	char *src;
	int fd;

	src = malloc(2 * MiB);
	ASSERT_NE(NULL, src);
	memset(src, 0x5a, 2 * MiB);
	free_blocks(_metadata);
	fd = create_fd(_metadata, self, 0, (3 + WRITE_BLOCKS) * BLOCK,
		       GMEM_CREATE_NO_DIRECT_MAP);
	EXPECT_EQ(0x18ULL, gmem_fdinfo(_metadata, fd, "gmem-flags"));
	/* Without DirectMap lines in /proc/meminfo there is nothing to see. */
	all_4k = __read_dmap(&d0) || dmap_all_4k(&d0, &why);

	/* A hole: the whole block comes, 511 pages held. */
	write_all(_metadata, fd, 5 * pg, pg, src);
	EXPECT_EQ(pg, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	EXPECT_EQ(2 * MiB - pg, gmem_fdinfo(_metadata, fd, "gmem-held"));
	expect_unmapped(_metadata, self->base, 2 * MiB, 2 * MiB, "write into a hole");

	/* Held pages, taken back, from an unaligned source. */
	write_all(_metadata, fd, 6 * pg, 3 * pg, src + 1);
	EXPECT_EQ(4 * pg, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	EXPECT_EQ(2 * MiB - 4 * pg, gmem_fdinfo(_metadata, fd, "gmem-held"));

	/* Pages written before, and populated ones. */
	write_all(_metadata, fd, 5 * pg, 2 * pg, src);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 2 * MiB, 2 * MiB);
	write_all(_metadata, fd, 2 * MiB + 17 * pg, 4 * pg, src);
	EXPECT_EQ(2 * MiB + 4 * pg, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	expect_unmapped(_metadata, self->base, 4 * MiB, 4 * MiB,
			"writes into written and populated pages");

	/* A whole block. */
	write_all(_metadata, fd, 4 * MiB, 2 * MiB, src);
	EXPECT_EQ(4 * MiB + 4 * pg, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	EXPECT_EQ(2 * MiB - 4 * pg, gmem_fdinfo(_metadata, fd, "gmem-held"));
	expect_unmapped(_metadata, self->base, 6 * MiB, 6 * MiB, "a whole block written");

	/* One page into each of the other blocks: each comes whole. */
	for (i = 0; i < WRITE_BLOCKS; i++) {
		off = (3 + i) * BLOCK + (37ULL * i % (BLOCK / pg)) * pg;
		write_all(_metadata, fd, off, pg, src);
	}
	EXPECT_EQ(4 * MiB + (4 + WRITE_BLOCKS) * pg,
		  gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	expect_unmapped(_metadata, self->base, (3 + WRITE_BLOCKS) * BLOCK,
			(3 + WRITE_BLOCKS) * BLOCK, "one page into each other block");

	if (!all_4k) {
		d1 = read_dmap(_metadata);
		print_dmap("after the writes", &d1, &d0);
		EXPECT_GT((long long)DM_SPLIT_BOUND, grown_4k(&d0, &d1))
			TH_LOG("GMEM_WRITE split 2 MiB entries of the direct map: DirectMap4k %+lld KiB",
			       grown_4k(&d0, &d1) / (long long)KiB);
	}

	close_fd(self->fds, 0);
	expect_unmapped(_metadata, self->base, 0, 0, "after close");
	free(src);
}

/*
 * 6. Nothing leaks: after every test above, unmapped_bytes,
 * allocated_bytes, held_bytes and files are where they were before the
 * first one (each test's teardown checks its own part too).  A fixture
 * of its own, defined last: the harness runs fixtures in the order they
 * are defined, but TEST()s (fixture "global") before all of them.
 */
FIXTURE(leak) {
};

FIXTURE_SETUP(leak)
{
}

FIXTURE_TEARDOWN(leak)
{
}

TEST_F(leak, nothing_leaked)
{
	struct counters now;

	close(gmem_open_dev(_metadata));
	ASSERT_EQ(0, start_counters_err)
		TH_LOG("the counters could not be read at the start: %s",
		       strerror(-start_counters_err));
	now = read_counters(_metadata);
	ksft_print_msg("unmapped_bytes %llu, allocated_bytes %llu, held_bytes %llu, files %llu (at the start: %llu, %llu, %llu, %llu)\n",
		       now.unmapped, now.allocated, now.held, now.files,
		       start_counters.unmapped, start_counters.allocated,
		       start_counters.held, start_counters.files);
	expect_counters_at(_metadata, start_counters, now, "after all tests");
}

TEST_HARNESS_MAIN
