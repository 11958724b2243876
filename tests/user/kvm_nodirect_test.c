// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guests on gmem files whose pages are out of the kernel's direct map
 * (GMEM_CREATE_NO_DIRECT_MAP), with blocks (the module parameter blocks
 * is "always" here unless a test says otherwise):
 *
 * - write_guest_reads: GMEM_WRITE (through its temporary mapping) fills
 *   a file, first one page into a fresh block (the rest held), then the
 *   rest; a guest reads every word back, through 2M mappings.  On a file
 *   without blocks, GMEM_WRITE and guest faults take single pages.
 * - conversions: a guest writes the file (populated, or allocated by its
 *   faults); the VMM converts one page, a range inside a block and a
 *   whole block to shared (KVM_SET_MEMORY_ATTRIBUTES), punches them and
 *   converts them back; the guest reads zeros there and its own data
 *   everywhere else, and KVM maps both blocks at 2M before and after.
 * - unmapped_bytes: /sys/class/misc/gmem/unmapped_bytes follows what
 *   flagged files hold (held pages included, unflagged files never), the
 *   module parameter no_direct_map flags every new file (those of
 *   KVM_CREATE_GUEST_MEMFD with takeover on too), and the counter is
 *   back at its baseline once the files are closed.
 * - failnth.*: fault-injection sweeps (gmem_failnth.h) over an allocating
 *   fallocate, a punch inside a block, a punch across two blocks, a
 *   guest's first touch of a page of a punched block (with and without
 *   blocks) and GMEM_WRITE, all on flagged files: every injected failure
 *   gives success or ENOMEM; a failed
 *   punch leaves what include/uapi/gmem.h promises (nothing punched, or
 *   only the block at the start of the range); at every step the bytes
 *   out of the direct map are exactly what the file holds, and once
 *   everything is closed files, allocated bytes, VMs and unmapped_bytes
 *   are back at their baseline.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_kvm_util.h"
#include "gmem_kvm_stats.h"
#include "gmem_leak.h"
#include "gmem_failnth.h"
#include <gmem.h>

#define SLOT		10
#define GPA		(1ULL << 32)
#define FILE_SIZE	(2 * SZ_2M)
#define FILE_PAGES	(FILE_SIZE / PAGE_SIZE)

#define UNMAPPED	GMEM_SYSFS "/unmapped_bytes"
#define HELD		GMEM_SYSFS "/held_bytes"
#define NDM_PARAM	"/sys/module/gmem/parameters/no_direct_map"
#define THREADS_PARAM	"/sys/module/gmem/parameters/populate_threads"

#define PUNCH_MODE	(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)

/* A new file of @size bytes without the direct map; asserts success. */
static int nd_file(uint64_t size)
{
	int fd = gmem_file(size, GMEM_CREATE_NO_DIRECT_MAP);

	TEST_ASSERT(fdinfo_value(fd, "gmem-flags") & GMEM_CREATE_NO_DIRECT_MAP,
		    "gmem-flags %#llx of a GMEM_CREATE_NO_DIRECT_MAP file lacks the flag",
		    fdinfo_value(fd, "gmem-flags"));
	return fd;
}

/* A module-wide counter or parameter, as a number; asserts success. */
static unsigned long long counter(const char *path)
{
	unsigned long long v = 0;
	int r = __gmem_read_u64(path, &v);

	TEST_ASSERT(!r, "read a number from %s: %s", path, strerror(-r));
	return v;
}

/* Bytes out of the direct map that @fd holds: its live and held pages. */
static unsigned long long file_holds(int fd)
{
	return fdinfo_value(fd, "gmem-allocated") + fdinfo_value(fd, "gmem-held");
}

/* A module parameter as text, without the newline. */
static void param_get(const char *path, char *buf, size_t len)
{
	int r = __gmem_read_file(path, buf, len);

	TEST_ASSERT(!r, "read %s: %s", path, strerror(-r));
	buf[strcspn(buf, "\n")] = '\0';
}

/* The word the host or the guest writes at file offset @off in @round. */
static uint64_t pat(uint64_t round, uint64_t off)
{
	return (round << 56) ^ (off * 0x9e3779b97f4a7c15ULL) ^ off;
}

/* The module parameters this test changes, put back after each test. */
FIXTURE(nodirect) {
	char blocks[16], ndm[8];
	int takeover;
	unsigned long long unmapped0, files0, bytes0;
};

FIXTURE_SETUP(nodirect)
{
	self->blocks[0] = '\0';
	self->ndm[0] = '\0';
	self->takeover = -1;
	REQUIRE_GMEM_KVM();
	self->unmapped0 = counter(UNMAPPED);
	self->files0 = counter(GMEM_SYSFS_FILES);
	self->bytes0 = counter(GMEM_SYSFS_BYTES);
	param_get(NDM_PARAM, self->ndm, sizeof(self->ndm));
	gmem_blocks_param_get(self->blocks, sizeof(self->blocks));
	gmem_blocks_param_set("always");
	self->takeover = gmem_takeover_param_get();
}

FIXTURE_TEARDOWN(nodirect)
{
	if (self->blocks[0])
		gmem_blocks_param_set(self->blocks);
	if (self->ndm[0])
		gmem_write_str(NDM_PARAM, self->ndm);
	if (self->takeover >= 0)
		gmem_takeover_param_set(self->takeover);
}

/* All files closed: the counters are back where the test found them. */
#define expect_nodirect_baseline(_metadata, self) do {			\
	EXPECT_EQ((self)->unmapped0, counter(UNMAPPED)) \
		TH_LOG("all closed: " UNMAPPED " is not back at its baseline"); \
	EXPECT_EQ((self)->files0, counter(GMEM_SYSFS_FILES)); \
	EXPECT_EQ((self)->bytes0, counter(GMEM_SYSFS_BYTES)); \
} while (0)

/* A VM whose memslot SLOT maps [GPA, GPA + size) to @fd from offset 0. */
static struct kvm_vm *nd_vm(struct kvm_vcpu **vcpu, void *guest, int fd,
			    uint64_t size)
{
	struct kvm_vm *vm;

	vm = vm_create_shape_with_one_vcpu(protected_shape, vcpu, guest);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA, SLOT, size / PAGE_SIZE,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, GPA, GPA, size / PAGE_SIZE);
	vm_mem_set_private(vm, GPA, size);
	return vm;
}

/*
 * Every word of [GPA, GPA + @size) holds pat(1, offset), but those of the
 * page at @zero_page (if below @size/PAGE_SIZE), which are zero.
 */
static void guest_read(uint64_t size, uint64_t zero_page)
{
	uint64_t off, want, got;

	for (off = 0; off < size; off += 8) {
		want = off / PAGE_SIZE == zero_page ? 0 : pat(1, off);
		got = *(volatile uint64_t *)(GPA + off);
		__GUEST_ASSERT(got == want, "gpa %#lx reads %#lx, expected %#lx",
			       (uint64_t)(GPA + off), got, want);
	}
	GUEST_DONE();
}

/* GMEM_WRITE of [@off, @off + @size) from @buf, which must succeed. */
#define nd_write(_metadata, fd, buf, _off, _len) do {			\
	struct gmem_write __w = {					\
		.offset = (_off), .size = (_len),			\
		.user_addr = (uintptr_t)(buf),				\
	};								\
	ASSERT_EQ(0, ioctl((fd), GMEM_WRITE, &__w))			\
		TH_LOG("GMEM_WRITE of %#llx bytes at %#llx: %s",	\
		       (unsigned long long)__w.size,			\
		       (unsigned long long)__w.offset, strerror(errno)); \
	ASSERT_EQ(__w.size, __w.written);				\
} while (0)

/*
 * GMEM_WRITE writes pages that are out of the direct map (through a
 * temporary mapping); a guest reads exactly what was written.  With
 * blocks: the first page written into a fresh block takes the whole
 * block out of the direct map (the other pages held), and the guest maps
 * both blocks at 2M.  Without blocks: single pages, and a page the guest
 * faults in is out of the direct map as well.
 */
TEST_F_TIMEOUT(nodirect, write_guest_reads, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t *buf, i, m2;
	int fd;

	buf = malloc(FILE_SIZE);
	ASSERT_NE(NULL, buf);
	for (i = 0; i < FILE_SIZE / 8; i++)
		buf[i] = pat(1, i * 8);

	/* With blocks. */
	fd = nd_file(FILE_SIZE);
	nd_write(_metadata, fd, buf, 0, PAGE_SIZE);
	EXPECT_EQ(PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(SZ_2M - PAGE_SIZE, fdinfo_value(fd, "gmem-held"));
	EXPECT_EQ(self->unmapped0 + SZ_2M, counter(UNMAPPED))
		TH_LOG("one page written into a fresh block: its 2 MiB are not all out of the direct map");
	nd_write(_metadata, fd, (char *)buf + PAGE_SIZE, PAGE_SIZE,
		 FILE_SIZE - PAGE_SIZE);
	EXPECT_EQ(FILE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-held"));
	EXPECT_EQ(self->unmapped0 + FILE_SIZE, counter(UNMAPPED));

	vm = nd_vm(&vcpu, guest_read, fd, FILE_SIZE);
	vcpu_args_set(vcpu, 2, FILE_SIZE, FILE_PAGES);
	m2 = vm_get_stat(vm, "pages_2m");
	run_to_sync(vcpu, 0);
	EXPECT_EQ(m2 + 2, vm_get_stat(vm, "pages_2m"))
		TH_LOG("blocks written by GMEM_WRITE are not mapped at 2M");
	EXPECT_EQ(FILE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	kvm_vm_free(vm);
	close(fd);
	EXPECT_EQ(self->unmapped0, counter(UNMAPPED));

	/* Without blocks: 4 pages written, the guest faults in a fifth. */
	gmem_blocks_param_set("never");
	fd = nd_file(SZ_2M);
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-flags") & GMEM_CREATE_BLOCKS);
	nd_write(_metadata, fd, buf, 0, 4 * PAGE_SIZE);
	EXPECT_EQ(4 * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(self->unmapped0 + 4 * PAGE_SIZE, counter(UNMAPPED));
	vm = nd_vm(&vcpu, guest_read, fd, SZ_2M);
	vcpu_args_set(vcpu, 2, 5 * PAGE_SIZE, 4);
	run_to_sync(vcpu, 0);
	EXPECT_EQ(5 * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(self->unmapped0 + 5 * PAGE_SIZE, counter(UNMAPPED))
		TH_LOG("a page a guest fault allocated is not out of the direct map");
	kvm_vm_free(vm);
	close(fd);
	free(buf);
	expect_nodirect_baseline(_metadata, self);
}

/* The pages the VMM punches in conversions: one, a range, a block. */
#define CONV_PAGE	5
#define CONV_LO		100
#define CONV_HI		164
#define CONV_BLOCK	(SZ_2M / PAGE_SIZE)
#define CONV_HELD	(1 + CONV_HI - CONV_LO)

static bool conv_punched(uint64_t page)
{
	return page == CONV_PAGE || (page >= CONV_LO && page < CONV_HI) ||
	       page >= CONV_BLOCK;
}

/*
 * Stage 1: every word written with round 1.  The VMM then converts and
 * punches.  Stage 2: punched pages read zero, the others round 1; the
 * punched ones are written with round 2.  Done: every word checked.
 */
static void guest_conversions(void)
{
	volatile uint64_t *p = (volatile uint64_t *)GPA;
	uint64_t off, want;

	for (off = 0; off < FILE_SIZE; off += 8)
		p[off / 8] = pat(1, off);
	GUEST_SYNC(1);
	for (off = 0; off < FILE_SIZE; off += 8) {
		want = conv_punched(off / PAGE_SIZE) ? 0 : pat(1, off);
		__GUEST_ASSERT(p[off / 8] == want,
			       "after the round trip gpa %#lx reads %#lx, expected %#lx",
			       (uint64_t)(GPA + off), p[off / 8], want);
		if (conv_punched(off / PAGE_SIZE))
			p[off / 8] = pat(2, off);
	}
	GUEST_SYNC(2);
	for (off = 0; off < FILE_SIZE; off += 8) {
		want = pat(conv_punched(off / PAGE_SIZE) ? 2 : 1, off);
		__GUEST_ASSERT(p[off / 8] == want, "gpa %#lx reads %#lx, expected %#lx",
			       (uint64_t)(GPA + off), p[off / 8], want);
	}
	GUEST_DONE();
}

/* Private -> shared, punched, -> private, as a VMM does for a guest. */
static void conv_round_trip(struct kvm_vm *vm, int fd, uint64_t page, uint64_t n)
{
	vm_mem_set_shared(vm, GPA + page * PAGE_SIZE, n * PAGE_SIZE);
	TEST_ASSERT(!fallocate(fd, PUNCH_MODE, page * PAGE_SIZE, n * PAGE_SIZE),
		    "punching %lu pages at page %lu: %s", n, page, strerror(errno));
	vm_mem_set_private(vm, GPA + page * PAGE_SIZE, n * PAGE_SIZE);
}

/*
 * A file populated by fallocate, and one the guest's faults allocate:
 * both blocks mapped at 2M; after the round trips block 0 keeps its
 * punched pages held (still out of the direct map), block 1 is freed;
 * the guest gets zeros there, its data elsewhere, and once it touched
 * everything both blocks are whole and mapped at 2M again.
 */
TEST_F_TIMEOUT(nodirect, conversions, KVM_TEST_TIMEOUT)
{
	static const char * const how[] = { "populated", "fault-allocated" };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t m2;
	int i, fd;

	for (i = 0; i < 2; i++) {
		fd = nd_file(FILE_SIZE);
		vm = nd_vm(&vcpu, guest_conversions, fd, FILE_SIZE);
		m2 = vm_get_stat(vm, "pages_2m");
		if (!i)
			ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, FILE_SIZE))
				TH_LOG("populate: %s", strerror(errno));
		run_to_sync(vcpu, 1);
		EXPECT_EQ(m2 + 2, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: blocks not mapped at 2M", how[i]);
		EXPECT_EQ(FILE_SIZE, fdinfo_value(fd, "gmem-allocated"));
		EXPECT_EQ(self->unmapped0 + FILE_SIZE, counter(UNMAPPED))
			TH_LOG("%s: %llu bytes out of the direct map, expected %d", how[i],
			       counter(UNMAPPED) - self->unmapped0,
			       FILE_SIZE);

		conv_round_trip(vm, fd, CONV_PAGE, 1);
		conv_round_trip(vm, fd, CONV_LO, CONV_HI - CONV_LO);
		conv_round_trip(vm, fd, CONV_BLOCK, SZ_2M / PAGE_SIZE);
		EXPECT_EQ(SZ_2M - CONV_HELD * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
		EXPECT_EQ(CONV_HELD * PAGE_SIZE, fdinfo_value(fd, "gmem-held"));
		EXPECT_EQ(self->unmapped0 + SZ_2M, counter(UNMAPPED))
			TH_LOG("%s, punched: %llu bytes out of the direct map, expected block 0's (live and held)",
			       how[i], counter(UNMAPPED) - self->unmapped0);
		EXPECT_EQ(m2, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: a punched block is still mapped at 2M", how[i]);

		run_to_sync(vcpu, 2);
		EXPECT_EQ(FILE_SIZE, fdinfo_value(fd, "gmem-allocated"));
		EXPECT_EQ(0, fdinfo_value(fd, "gmem-held"));
		EXPECT_EQ(self->unmapped0 + FILE_SIZE, counter(UNMAPPED));
		EXPECT_EQ(m2 + 2, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: blocks not mapped at 2M again after the round trips",
			       how[i]);
		run_to_sync(vcpu, 0);
		kvm_vm_free(vm);
		close(fd);
		EXPECT_EQ(self->unmapped0, counter(UNMAPPED))
			TH_LOG("%s: file closed, unmapped_bytes not back", how[i]);
	}
	expect_nodirect_baseline(_metadata, self);
}

/* unmapped_bytes - baseline is @want bytes; @what says when. */
#define expect_unmapped(_metadata, self, want, what) do {		\
	unsigned long long __u = counter(UNMAPPED) - (self)->unmapped0; \
	EXPECT_EQ((unsigned long long)(want), __u)			\
		TH_LOG("%s: %llu bytes out of the direct map, expected %llu", \
		       what, __u, (unsigned long long)(want));		\
} while (0)

/*
 * The counter follows flagged files through populate, GMEM_WRITE, held
 * pages and punches; an unflagged file never shows; no_direct_map=1
 * flags every new file, KVM_CREATE_GUEST_MEMFD's with takeover on too;
 * closing the files (and the VM) brings it back to its baseline.
 */
TEST_F_TIMEOUT(nodirect, unmapped_bytes, KVM_TEST_TIMEOUT)
{
	struct kvm_create_guest_memfd gm = { .size = SZ_2M };
	char page[PAGE_SIZE] = { 1 };
	int fd, plain, byparam, taken, plain2;
	struct kvm_vm *vm;

	fd = nd_file(FILE_SIZE);
	expect_unmapped(_metadata, self, 0, "a new file");
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SZ_2M))
		TH_LOG("populate: %s", strerror(errno));
	expect_unmapped(_metadata, self, SZ_2M, "block 0 populated");
	nd_write(_metadata, fd, page, SZ_2M + 7 * PAGE_SIZE, PAGE_SIZE);
	expect_unmapped(_metadata, self, FILE_SIZE, "a page written into block 1");

	plain = gmem_file(SZ_2M, 0);
	ASSERT_EQ(0, fallocate(plain, FALLOC_FL_KEEP_SIZE, 0, SZ_2M));
	expect_unmapped(_metadata, self, FILE_SIZE, "an unflagged file populated");

	ASSERT_EQ(0, fallocate(fd, PUNCH_MODE, 3 * PAGE_SIZE, 10 * PAGE_SIZE))
		TH_LOG("punch inside block 0: %s", strerror(errno));
	EXPECT_EQ(10 * PAGE_SIZE, fdinfo_value(fd, "gmem-held") - (SZ_2M - PAGE_SIZE));
	expect_unmapped(_metadata, self, FILE_SIZE, "10 pages of block 0 held");
	ASSERT_EQ(0, fallocate(fd, PUNCH_MODE, SZ_2M, SZ_2M))
		TH_LOG("punch of block 1: %s", strerror(errno));
	expect_unmapped(_metadata, self, SZ_2M, "block 1 punched");
	EXPECT_EQ(file_holds(fd), counter(UNMAPPED) - self->unmapped0);

	/* The parameter flags every new file. */
	gmem_write_str(NDM_PARAM, "1");
	byparam = gmem_file(SZ_2M, 0);
	EXPECT_EQ(GMEM_CREATE_NO_DIRECT_MAP,
		  fdinfo_value(byparam, "gmem-flags") & GMEM_CREATE_NO_DIRECT_MAP)
		TH_LOG("no_direct_map=1: gmem-flags %#llx",
		       fdinfo_value(byparam, "gmem-flags"));
	ASSERT_EQ(0, fallocate(byparam, FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE));
	expect_unmapped(_metadata, self, SZ_2M + PAGE_SIZE,
			"a page of a file made with no_direct_map=1");

	ASSERT_LE(0, self->takeover) TH_LOG("gmem has no takeover parameter");
	gmem_takeover_param_set(true);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	taken = ioctl(vm->fd, KVM_CREATE_GUEST_MEMFD, &gm);
	ASSERT_LE(0, taken) TH_LOG("KVM_CREATE_GUEST_MEMFD: %s", strerror(errno));
	gmem_takeover_param_set(false);
	ASSERT_LE(0, fdinfo_value(taken, "gmem-id")) TH_LOG("takeover on: not a gmem file");
	EXPECT_EQ(GMEM_CREATE_NO_DIRECT_MAP,
		  fdinfo_value(taken, "gmem-flags") & GMEM_CREATE_NO_DIRECT_MAP)
		TH_LOG("no_direct_map=1, takeover: gmem-flags %#llx",
		       fdinfo_value(taken, "gmem-flags"));
	ASSERT_EQ(0, fallocate(taken, FALLOC_FL_KEEP_SIZE, 0, SZ_2M))
		TH_LOG("populate the takeover file: %s", strerror(errno));
	expect_unmapped(_metadata, self, 2 * SZ_2M + PAGE_SIZE,
			"a block of a KVM_CREATE_GUEST_MEMFD file made with no_direct_map=1");

	gmem_write_str(NDM_PARAM, "0");
	plain2 = gmem_file(SZ_2M, 0);
	EXPECT_EQ(0, fdinfo_value(plain2, "gmem-flags") & GMEM_CREATE_NO_DIRECT_MAP);

	close(taken);
	kvm_vm_free(vm);
	expect_unmapped(_metadata, self, SZ_2M + PAGE_SIZE, "the takeover file and its VM closed");
	close(byparam);
	close(plain);
	close(plain2);
	expect_unmapped(_metadata, self, SZ_2M, "only the first file left");
	close(fd);
	expect_nodirect_baseline(_metadata, self);
}

/* ---- Fault injection ---- */

#define FN_SLOT_SIZE	SZ_2M
/* The page the guest touches, in the middle of the block. */
#define TOUCH_OFF	(100 * PAGE_SIZE)

FIXTURE(failnth) {
	struct gmem_failnth fi;
	unsigned long long files0, bytes0, unmapped0;
	int vms0, structs0;
	char blocks[16], threads[16];
};

FIXTURE_SETUP(failnth)
{
	char why[256];
	int r;

	self->fi.fd = -1;
	self->fi.saved = 0;
	self->blocks[0] = '\0';
	self->threads[0] = '\0';
	REQUIRE_GMEM_KVM();
	gmem_blocks_param_get(self->blocks, sizeof(self->blocks));
	gmem_blocks_param_set("always");
	/* fail-nth is per thread: populate in the calling thread only. */
	param_get(THREADS_PARAM, self->threads, sizeof(self->threads));
	gmem_write_str(THREADS_PARAM, "1");
	r = gmem_failnth_setup(&self->fi, why, sizeof(why));
	if (r == -ENOENT)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, r) TH_LOG("fault injection setup: %s", why);
	self->files0 = counter(GMEM_SYSFS_FILES);
	self->bytes0 = counter(GMEM_SYSFS_BYTES);
	self->unmapped0 = counter(UNMAPPED);
	self->vms0 = gmem_count_vms_debugfs();
	self->structs0 = gmem_count_vms_vmalloc();
}

FIXTURE_TEARDOWN(failnth)
{
	gmem_failnth_restore(&self->fi);
	if (self->blocks[0])
		gmem_blocks_param_set(self->blocks);
	if (self->threads[0])
		gmem_write_str(THREADS_PARAM, self->threads);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Everything closed: files, allocated bytes, unmapped bytes and VMs at
 * their baseline (a VM goes with its last reference, which may be a
 * file's: allow a moment).
 */
#define expect_baseline(_metadata, self, what, n) do {			\
	unsigned long long __files, __bytes, __unm;			\
	int __vms, __structs, __tries;					\
	for (__tries = 0; __tries < 100; __tries++) {			\
		__files = counter(GMEM_SYSFS_FILES);	\
		__bytes = counter(GMEM_SYSFS_BYTES);	\
		__unm = counter(UNMAPPED);		\
		__vms = gmem_count_vms_debugfs();			\
		__structs = gmem_count_vms_vmalloc();			\
		if (__files == (self)->files0 && __bytes == (self)->bytes0 && \
		    __unm == (self)->unmapped0 && __vms == (self)->vms0 && \
		    __structs == (self)->structs0)			\
			break;						\
		usleep(20000);						\
	}								\
	ASSERT_EQ((self)->files0, __files)				\
		TH_LOG("%s, fail-nth %u, all closed: " GMEM_SYSFS_FILES " %llu, expected %llu", \
		       what, n, __files, (self)->files0);		\
	ASSERT_EQ((self)->bytes0, __bytes)				\
		TH_LOG("%s, fail-nth %u, all closed: " GMEM_SYSFS_BYTES " %llu, expected %llu", \
		       what, n, __bytes, (self)->bytes0);		\
	ASSERT_EQ((self)->unmapped0, __unm)				\
		TH_LOG("%s, fail-nth %u, all closed: " UNMAPPED " %llu, expected %llu", \
		       what, n, __unm, (self)->unmapped0);		\
	ASSERT_EQ((self)->vms0, __vms)					\
		TH_LOG("%s, fail-nth %u, all closed: %d VMs in debugfs, expected %d", \
		       what, n, __vms, (self)->vms0);			\
	ASSERT_EQ((self)->structs0, __structs)				\
		TH_LOG("%s, fail-nth %u, all closed: %d struct kvm in vmallocinfo, expected %d", \
		       what, n, __structs, (self)->structs0);		\
} while (0)

/* The only flagged file open is @fd: what it holds is what is unmapped. */
#define expect_holds(_metadata, self, fd, what, n) do {			\
	unsigned long long __u = counter(UNMAPPED) - (self)->unmapped0; \
	unsigned long long __h = file_holds(fd);			\
	ASSERT_EQ(__h, __u)						\
		TH_LOG("%s, fail-nth %u: file holds %llu bytes, %llu unmapped", \
		       what, n, __h, __u);				\
} while (0)

#define arm(_metadata, self, n) do {					\
	int __r = gmem_failnth_arm(&(self)->fi, (n));			\
	ASSERT_EQ(0, __r) TH_LOG("write %u to " FAILNTH_PROC ": %s", (n), \
				 strerror(-__r));			\
} while (0)

#define left(_metadata, self) ({					\
	long __left = gmem_failnth_left(&(self)->fi);			\
	ASSERT_LE(0, __left) TH_LOG("read " FAILNTH_PROC ": %s", strerror(-__left)); \
	__left;								\
})

#define log_sweep(what, n, l, failed, t0) do {				\
	if (!(l))							\
		TH_LOG("%s: stopped after %u injection points, the path has more", \
		       what, FAILNTH_MAX);				\
	TH_LOG("%s: %lu injection points, %u failed with ENOMEM (%.1f s)", \
	       what, (l) ? (n) - (l) : (unsigned long)FAILNTH_MAX, failed, \
	       now() - (t0));						\
} while (0)

/*
 * An allocating fallocate of a block and two single pages (each of
 * which splits a 2 MiB direct-map entry when it is unmapped): success or
 * ENOMEM, keeping what it allocated, all of it out of the direct map;
 * the same call without injection then completes it.
 */
TEST_F_TIMEOUT(failnth, populate, 900)
{
	const uint64_t size = SZ_2M + 2 * PAGE_SIZE;
	unsigned int n, failed = 0;
	double t0 = now();
	long l = 0;
	int fd, r, err;

	for (n = 1; n <= FAILNTH_MAX; n++) {
		fd = nd_file(FILE_SIZE);
		arm(_metadata, self, n);
		r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size);
		err = r ? errno : 0;
		l = left(_metadata, self);
		if (r) {
			failed++;
			ASSERT_EQ(ENOMEM, err)
				TH_LOG("populate with fail-nth %u: expected success or ENOMEM, got %s",
				       n, strerror(err));
		} else {
			ASSERT_EQ(size, fdinfo_value(fd, "gmem-allocated"));
		}
		expect_holds(_metadata, self, fd, "populate", n);
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size))
			TH_LOG("populate without injection after fail-nth %u: %s", n,
			       strerror(errno));
		ASSERT_EQ(size, fdinfo_value(fd, "gmem-allocated"));
		expect_holds(_metadata, self, fd, "populate again", n);
		close(fd);
		expect_baseline(_metadata, self, "populate", n);
		if (l)
			break;
	}
	log_sweep("fallocate populate", n, l, failed, t0);
}

/*
 * A punch of pages [@lo, @hi) of a file of two populated blocks, for
 * every N.  The ABI: punching part of a block may fail with ENOMEM, and
 * then only the block at the start of the range may have been punched.
 */
static void punch_sweep(struct __test_metadata *_metadata,
			struct _test_data_failnth *self, const char *what,
			uint64_t lo, uint64_t hi)
{
	uint64_t first_end = (lo / CONV_BLOCK + 1) * CONV_BLOCK;
	uint64_t head = hi < first_end ? hi - lo : first_end - lo;
	unsigned int n, failed = 0, partial = 0;
	unsigned long long alloc, held;
	double t0 = now();
	long l = 0;
	int fd, r, err;

	for (n = 1; n <= FAILNTH_MAX; n++) {
		fd = nd_file(FILE_SIZE);
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, FILE_SIZE))
			TH_LOG("populate: %s", strerror(errno));
		arm(_metadata, self, n);
		r = fallocate(fd, PUNCH_MODE, lo * PAGE_SIZE, (hi - lo) * PAGE_SIZE);
		err = r ? errno : 0;
		l = left(_metadata, self);
		alloc = fdinfo_value(fd, "gmem-allocated");
		held = fdinfo_value(fd, "gmem-held");
		if (r) {
			failed++;
			ASSERT_EQ(ENOMEM, err)
				TH_LOG("%s with fail-nth %u: expected success or ENOMEM, got %s",
				       what, n, strerror(err));
			/* Nothing punched, or the start block's part only. */
			if (alloc != FILE_SIZE) {
				partial++;
				ASSERT_LT(head, hi - lo)
					TH_LOG("%s failed with ENOMEM at fail-nth %u but punched %llu bytes of one block",
					       what, n, FILE_SIZE - alloc);
				ASSERT_EQ(FILE_SIZE - head * PAGE_SIZE, alloc)
					TH_LOG("%s failed with ENOMEM at fail-nth %u: gmem-allocated %llu, expected %llu or %llu (the start block punched)",
					       what, n, alloc, (unsigned long long)FILE_SIZE,
					       (unsigned long long)(FILE_SIZE - head * PAGE_SIZE));
			}
			/* Held pages only where a punch completed. */
			ASSERT_TRUE(held == FILE_SIZE - alloc || !held)
				TH_LOG("%s failed with ENOMEM at fail-nth %u: gmem-held %llu, gmem-allocated %llu",
				       what, n, held, alloc);
		} else {
			ASSERT_EQ(FILE_SIZE - (hi - lo) * PAGE_SIZE, alloc);
		}
		expect_holds(_metadata, self, fd, what, n);
		/* Without injection the same punch completes. */
		ASSERT_EQ(0, fallocate(fd, PUNCH_MODE, lo * PAGE_SIZE, (hi - lo) * PAGE_SIZE))
			TH_LOG("%s without injection after fail-nth %u: %s", what, n,
			       strerror(errno));
		ASSERT_EQ(FILE_SIZE - (hi - lo) * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
		expect_holds(_metadata, self, fd, what, n);
		close(fd);
		expect_baseline(_metadata, self, what, n);
		if (l)
			break;
	}
	log_sweep(what, n, l, failed, t0);
	TH_LOG("%s: %u failed punches had punched the start block", what, partial);
}

/* 10 pages inside block 0: held, zeroed through a temporary mapping. */
TEST_F_TIMEOUT(failnth, punch_in_block, 900)
{
	punch_sweep(_metadata, self, "punch inside a block", 10, 20);
}

/* The last 3 pages of block 0 and the first 5 of block 1. */
TEST_F_TIMEOUT(failnth, punch_across_blocks, 900)
{
	punch_sweep(_metadata, self, "punch across two blocks", CONV_BLOCK - 3,
		    CONV_BLOCK + 5);
}

/*
 * The guest: at every round, after the host punched its block out, a
 * first write, a check that the rest of the page is zero, then the
 * whole page written and read back.
 */
static void guest_touch(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(GPA + TOUCH_OFF);
	uint64_t round, i;

	GUEST_SYNC(0);
	for (round = 1;; round++) {
		p[0] = pat(round, 0);
		for (i = 1; i < PAGE_SIZE / 8; i++)
			__GUEST_ASSERT(!p[i], "round %lu: word %lu of a fresh page is %#lx",
				       round, i, p[i]);
		for (i = 1; i < PAGE_SIZE / 8; i++)
			p[i] = pat(round, i * 8);
		for (i = 0; i < PAGE_SIZE / 8; i++)
			__GUEST_ASSERT(p[i] == pat(round, i * 8),
				       "round %lu: word %lu reads %#lx, wrote %#lx",
				       round, i, p[i], pat(round, i * 8));
		GUEST_SYNC(round);
	}
}

/* The guest stopped at GUEST_SYNC(@round); a guest assertion fails. */
static void expect_sync(struct kvm_vcpu *vcpu, uint64_t round)
{
	struct ucall uc;

	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
		TEST_ASSERT(uc.args[1] == round, "guest at sync %lu, expected %lu",
			    uc.args[1], round);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
}

/*
 * One warm guest on a flagged file of one block: for every N the whole
 * block is punched and the guest touches a page of it.  With blocks
 * (@blocks) its fault allocates a block, unmapped as one 2 MiB range,
 * or a page when that fails; without, a page, whose unmapping splits a
 * 2 MiB direct-map entry unless it was split already.  KVM_RUN reaches
 * the guest's sync, or fails with ENOMEM (a memory fault exit at that
 * page, or KVM's own allocations); run again without injection, the
 * guest finds a zeroed page and reads back what it wrote.
 */
static void fault_sweep(struct __test_metadata *_metadata,
			struct _test_data_failnth *self, const char *what, bool blocks)
{
	unsigned int n, failed = 0, faults = 0;
	double t0 = now();
	struct kvm_vcpu *vcpu;
	unsigned long long b;
	struct kvm_run *run;
	struct kvm_vm *vm;
	long l = 0;
	int fd, r, err;

	gmem_blocks_param_set(blocks ? "always" : "never");
	fd = nd_file(FN_SLOT_SIZE);
	vm = nd_vm(&vcpu, guest_touch, fd, FN_SLOT_SIZE);
	run = vcpu->run;
	run_to_sync(vcpu, 0);
	if (mlockall(MCL_CURRENT))
		TH_LOG("mlockall: %s (page faults may take injection points)",
		       strerror(errno));

	for (n = 1; n <= FAILNTH_MAX; n++) {
		ASSERT_EQ(0, fallocate(fd, PUNCH_MODE, 0, FN_SLOT_SIZE))
			TH_LOG("punch: %s", strerror(errno));
		ASSERT_EQ(0, file_holds(fd));
		expect_holds(_metadata, self, fd, what, n);

		arm(_metadata, self, n);
		r = __vcpu_run(vcpu);
		err = r ? errno : 0;
		l = left(_metadata, self);

		if (r) {
			failed++;
			ASSERT_EQ(ENOMEM, err)
				TH_LOG("%s: KVM_RUN with fail-nth %u: %s (exit reason %u), expected success or ENOMEM",
				       what, n, strerror(err), run->exit_reason);
			if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
				faults++;
				ASSERT_EQ(KVM_MEMORY_EXIT_FLAG_PRIVATE, run->memory_fault.flags);
				ASSERT_EQ(GPA + TOUCH_OFF, run->memory_fault.gpa)
					TH_LOG("%s: KVM_RUN with fail-nth %u: memory fault at gpa %#llx",
					       what, n, (unsigned long long)run->memory_fault.gpa);
			}
			expect_holds(_metadata, self, fd, what, n);
			run_to_sync(vcpu, n);
		} else {
			expect_sync(vcpu, n);
		}
		/* The page, or its block (a failed block falls back to a page). */
		b = file_holds(fd);
		ASSERT_TRUE(b == PAGE_SIZE || (blocks && b == FN_SLOT_SIZE))
			TH_LOG("%s, fail-nth %u: the file holds %llu bytes, expected a page%s",
			       what, n, b, blocks ? " or a block" : "");
		expect_holds(_metadata, self, fd, what, n);
		if (l)
			break;
	}
	munlockall();
	kvm_vm_free(vm);
	close(fd);
	expect_baseline(_metadata, self, what, n);
	log_sweep(what, n, l, failed, t0);
	TH_LOG("%s: of the failed KVM_RUNs, %u were memory fault exits", what, faults);
}

TEST_F_TIMEOUT(failnth, guest_fault_block, 900)
{
	fault_sweep(_metadata, self, "guest fault, with blocks", true);
}

TEST_F_TIMEOUT(failnth, guest_fault_page, 900)
{
	fault_sweep(_metadata, self, "guest fault, without blocks", false);
}

/*
 * GMEM_WRITE of two pages into a fresh block of a flagged file (the
 * block allocated, the rest held; each page written through a temporary
 * mapping): success, or ENOMEM with @written telling the pages written;
 * what the file holds is out of the direct map; without injection the
 * same call completes.
 */
TEST_F_TIMEOUT(failnth, write, 900)
{
	const uint64_t off = 7 * PAGE_SIZE, size = 2 * PAGE_SIZE;
	unsigned int n, failed = 0;
	struct gmem_write w;
	double t0 = now();
	uint64_t *buf, i;
	long l = 0;
	int fd, r, err;

	buf = malloc(size);
	ASSERT_NE(NULL, buf);
	for (i = 0; i < size / 8; i++)
		buf[i] = pat(1, off + i * 8);
	for (n = 1; n <= FAILNTH_MAX; n++) {
		fd = nd_file(FN_SLOT_SIZE);
		w = (struct gmem_write){
			.offset = off, .size = size, .user_addr = (uintptr_t)buf,
		};
		arm(_metadata, self, n);
		r = ioctl(fd, GMEM_WRITE, &w);
		err = r ? errno : 0;
		l = left(_metadata, self);
		if (r) {
			failed++;
			ASSERT_EQ(ENOMEM, err)
				TH_LOG("GMEM_WRITE with fail-nth %u: expected success or ENOMEM, got %s",
				       n, strerror(err));
			ASSERT_GT(size, w.written);
		} else {
			ASSERT_EQ(size, w.written);
		}
		expect_holds(_metadata, self, fd, "GMEM_WRITE", n);
		nd_write(_metadata, fd, buf, off, size);
		expect_holds(_metadata, self, fd, "GMEM_WRITE again", n);
		close(fd);
		expect_baseline(_metadata, self, "GMEM_WRITE", n);
		if (l)
			break;
	}
	log_sweep("GMEM_WRITE", n, l, failed, t0);
	free(buf);
}

TEST_HARNESS_MAIN
