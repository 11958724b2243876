// SPDX-License-Identifier: GPL-2.0-only
/*
 * Huge mappings of gmem memory, proven with KVM's own counters: the VM's
 * pages_2m (current 2M mappings) and the vCPU's exits.
 *
 * - Guest faults allocate whole 2 MiB blocks on files with blocks
 *   (GMEM_CREATE_BLOCKS), so that a guest touching fresh memory takes one
 *   exit per 2 MiB; without blocks, one per 4 KiB.
 * - A 4 KiB private -> shared -> private round trip inside a block gets
 *   the block mapped at 2M again once the guest touches the page.
 * - A restore written page by page with GMEM_WRITE ends in whole blocks.
 * - Where KVM cannot map 2M (a memslot covering half a block), faults
 *   allocate single pages.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
#include <gmem.h>

#define SLOT		10
#define GPA		(1ULL << 32)

#define MAX_1G_PARAM	"/sys/module/gmem/parameters/max_1g"

/* The module parameters blocks and max_1g are put back after each test. */
FIXTURE(blocks) {
	char param[16];
	unsigned long long max_1g;
};

FIXTURE_SETUP(blocks)
{
	self->param[0] = '\0';
	REQUIRE_GMEM_KVM();
	gmem_blocks_param_get(self->param, sizeof(self->param));
	self->max_1g = gmem_read_ull(MAX_1G_PARAM);
}

FIXTURE_TEARDOWN(blocks)
{
	char v[32];

	if (!self->param[0])
		return;
	gmem_blocks_param_set(self->param);
	snprintf(v, sizeof(v), "%llu", self->max_1g);
	gmem_write_str(MAX_1G_PARAM, v);
}

/* A VM whose memslot SLOT maps [GPA, GPA + size) to @fd from offset 0. */
static struct kvm_vm *blocks_vm(struct kvm_vcpu **vcpu, void *guest, int fd,
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
 * Stage 1: nothing touched yet.  Then one word per 4 KiB page of
 * [GPA, GPA + size) is written, and read back at stage 2.
 */
static void guest_touch(uint64_t size)
{
	uint64_t i;

	GUEST_SYNC(1);
	for (i = 0; i < size; i += PAGE_SIZE)
		*(volatile uint64_t *)(GPA + i) = i | 1;
	GUEST_SYNC(2);
	for (i = 0; i < size; i += PAGE_SIZE)
		GUEST_ASSERT_EQ(*(volatile uint64_t *)(GPA + i), i | 1);
	GUEST_DONE();
}

#define TOUCH_SIZE	(4 * SZ_2M)
#define TOUCH_PAGES	(TOUCH_SIZE / PAGE_SIZE)

/*
 * Fresh memory, never populated: with blocks each 2 MiB costs one fault
 * and one 2M mapping; without, each 4 KiB page costs a fault and a 4K
 * mapping.  Both read back what the guest wrote.
 */
TEST_F_TIMEOUT(blocks, fault_allocates_blocks, KVM_TEST_TIMEOUT)
{
	static const char * const mode[] = { "with blocks", "without blocks" };
	uint64_t m2, exits;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int i, fd;

	/* never: the flag is ignored */
	gmem_blocks_param_set("never");
	fd = gmem_file(TOUCH_SIZE, GMEM_CREATE_BLOCKS);
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-flags") & GMEM_CREATE_BLOCKS);
	close(fd);

	gmem_blocks_param_set("flag");
	for (i = 0; i < 2; i++) {
		fd = gmem_file(TOUCH_SIZE, i ? 0 : GMEM_CREATE_BLOCKS);
		EXPECT_EQ(i ? 0 : GMEM_CREATE_BLOCKS,
			  fdinfo_value(fd, "gmem-flags") & GMEM_CREATE_BLOCKS)
			TH_LOG("%s: gmem-flags %#llx", mode[i],
			       fdinfo_value(fd, "gmem-flags"));
		vm = blocks_vm(&vcpu, guest_touch, fd, TOUCH_SIZE);
		vcpu_args_set(vcpu, 1, TOUCH_SIZE);
		run_to_sync(vcpu, 1);
		m2 = vm_get_stat(vm, "pages_2m");
		exits = gmem_vcpu_stat(vcpu, "exits");
		run_to_sync(vcpu, 2);
		m2 = vm_get_stat(vm, "pages_2m") - m2;
		exits = gmem_vcpu_stat(vcpu, "exits") - exits;
		TH_LOG("%s: %lu pages touched: %lu new 2M mappings, %lu exits",
		       mode[i], (unsigned long)TOUCH_PAGES, m2, exits);
		EXPECT_EQ(TOUCH_SIZE, fdinfo_value(fd, "gmem-allocated"));
		EXPECT_EQ(0, fdinfo_value(fd, "gmem-held"));
		if (!i) {
			EXPECT_EQ(TOUCH_SIZE / SZ_2M, m2);
			EXPECT_GT(TOUCH_PAGES / 8, exits);
		} else {
			EXPECT_EQ(0, m2);
			EXPECT_LE(TOUCH_PAGES, exits);
		}
		run_to_sync(vcpu, 0);
		kvm_vm_free(vm);
		close(fd);
	}
}

/*
 * A memslot that covers half a block: KVM cannot map it with a 2M entry,
 * so a fault allocates the page it needs only, and a file that no guest
 * touches all of stays sparse.
 */
TEST_F_TIMEOUT(blocks, half_block_memslot_allocates_pages, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd;

	gmem_blocks_param_set("always");
	fd = gmem_file(SZ_2M, 0);
	EXPECT_EQ(GMEM_CREATE_BLOCKS, fdinfo_value(fd, "gmem-flags") & GMEM_CREATE_BLOCKS);
	vm = blocks_vm(&vcpu, guest_touch, fd, SZ_1M);
	vcpu_args_set(vcpu, 1, SZ_1M);
	run_to_sync(vcpu, 1);
	run_to_sync(vcpu, 2);
	EXPECT_EQ(SZ_1M, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-held"));
	EXPECT_EQ(0, vm_get_stat(vm, "pages_2m"));
	run_to_sync(vcpu, 0);
	kvm_vm_free(vm);
	close(fd);
}

#define RT_SIZE		(2 * SZ_2M)
#define RT_PAGE		5

/*
 * Stage 1: every page written.  The host converts page RT_PAGE to shared
 * and punches it (what a VMM does for SWIOTLB or free-page reporting),
 * then back to private.  Stage 2: the guest writes page RT_PAGE + 1 and
 * RT_PAGE again, finding RT_PAGE zeroed.  Stage 3: all pages checked.
 */
static void guest_round_trip(void)
{
	volatile uint64_t *p = (uint64_t *)GPA;
	uint64_t i;

	for (i = 0; i < RT_SIZE; i += PAGE_SIZE)
		p[i / 8] = i | 1;
	GUEST_SYNC(1);
	p[(RT_PAGE + 1) * PAGE_SIZE / 8] = 0x6666;
	GUEST_SYNC(2);
	GUEST_ASSERT_EQ(p[RT_PAGE * PAGE_SIZE / 8], 0);
	p[RT_PAGE * PAGE_SIZE / 8] = 0x5555;
	GUEST_SYNC(3);
	for (i = 0; i < RT_SIZE; i += PAGE_SIZE) {
		if (i == RT_PAGE * PAGE_SIZE)
			GUEST_ASSERT_EQ(p[i / 8], 0x5555);
		else if (i == (RT_PAGE + 1) * PAGE_SIZE)
			GUEST_ASSERT_EQ(p[i / 8], 0x6666);
		else
			GUEST_ASSERT_EQ(p[i / 8], i | 1);
	}
	GUEST_DONE();
}

/*
 * Populated or fault-allocated, a block whose page went private ->
 * shared -> private is mapped at 2M again once the guest touches that
 * page: the punch kept the page, zeroed (gmem-held), and the fault took
 * it back into its block.
 */
TEST_F_TIMEOUT(blocks, round_trip_maps_2m_again, KVM_TEST_TIMEOUT)
{
	static const char * const how[] = { "populated", "fault-allocated" };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t m2;
	int i, fd;

	gmem_blocks_param_set("always");
	for (i = 0; i < 2; i++) {
		fd = gmem_file(RT_SIZE, 0);
		vm = blocks_vm(&vcpu, guest_round_trip, fd, RT_SIZE);
		m2 = vm_get_stat(vm, "pages_2m");
		if (!i)
			ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, RT_SIZE));
		run_to_sync(vcpu, 1);
		EXPECT_EQ(m2 + 2, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: blocks not mapped at 2M before the round trip",
			       how[i]);

		vm_mem_set_shared(vm, GPA + RT_PAGE * PAGE_SIZE, PAGE_SIZE);
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				       RT_PAGE * PAGE_SIZE, PAGE_SIZE));
		EXPECT_EQ(RT_SIZE - PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
		EXPECT_EQ(PAGE_SIZE, fdinfo_value(fd, "gmem-held"));
		EXPECT_EQ(m2 + 1, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: converting a page left its block mapped at 2M",
			       how[i]);
		vm_mem_set_private(vm, GPA + RT_PAGE * PAGE_SIZE, PAGE_SIZE);

		run_to_sync(vcpu, 2);
		/* The neighbour is mapped 4K while its block has a hole. */
		EXPECT_EQ(m2 + 1, vm_get_stat(vm, "pages_2m"));
		run_to_sync(vcpu, 3);
		EXPECT_EQ(RT_SIZE, fdinfo_value(fd, "gmem-allocated"));
		EXPECT_EQ(0, fdinfo_value(fd, "gmem-held"));
		EXPECT_EQ(m2 + 2, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: the block is not mapped at 2M after the round trip",
			       how[i]);
		run_to_sync(vcpu, 0);
		kvm_vm_free(vm);
		close(fd);
	}
}

static void guest_read_pattern(uint64_t size)
{
	uint64_t i;

	for (i = 0; i < size; i += PAGE_SIZE)
		GUEST_ASSERT_EQ(*(volatile uint64_t *)(GPA + i), ~i);
	GUEST_DONE();
}

/*
 * A post-copy restore: the file starts USERFAULT, the VMM writes it one
 * page per GMEM_WRITE (the first write into a block allocates all of it,
 * the rest held until written), then lets the guest in: it reads the
 * pattern through 2M mappings.
 */
TEST_F_TIMEOUT(blocks, restore_by_pages_maps_2m, KVM_TEST_TIMEOUT)
{
	uint64_t page[PAGE_SIZE / 8] = { 0 };
	struct gmem_attributes attrs = {
		.size = RT_SIZE, .mask = GMEM_ATTR_USERFAULT,
	};
	struct gmem_write w = { .size = PAGE_SIZE };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t off, m2;
	int fd;

	gmem_blocks_param_set("always");
	fd = gmem_file(RT_SIZE, GMEM_CREATE_USERFAULT);
	vm = blocks_vm(&vcpu, guest_read_pattern, fd, RT_SIZE);
	vcpu_args_set(vcpu, 1, RT_SIZE);
	m2 = vm_get_stat(vm, "pages_2m");
	/* Backwards, so that no block is written in order. */
	for (off = RT_SIZE; off; ) {
		off -= PAGE_SIZE;
		page[0] = ~off;
		w.offset = off;
		w.user_addr = (uintptr_t)page;
		ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w))
			TH_LOG("GMEM_WRITE at %#lx: %s", off, strerror(errno));
		if (off == RT_SIZE - PAGE_SIZE) {
			EXPECT_EQ(PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
			EXPECT_EQ(SZ_2M - PAGE_SIZE, fdinfo_value(fd, "gmem-held"));
		}
	}
	EXPECT_EQ(RT_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-held"));
	ASSERT_EQ(0, ioctl(fd, GMEM_SET_ATTRIBUTES, &attrs));
	run_to_sync(vcpu, 0);
	EXPECT_EQ(m2 + 2, vm_get_stat(vm, "pages_2m"));
	kvm_vm_free(vm);
	close(fd);
}

static void guest_touch_2m(uint64_t size)
{
	uint64_t i;

	for (i = 0; i < size; i += SZ_2M)
		*(volatile uint64_t *)(GPA + i) = i | 1;
	GUEST_DONE();
}

/*
 * A naturally aligned 1 GiB file populated with max_1g=1: one contiguous
 * allocation (fdinfo gmem-1g), mapped by KVM with one 1G entry when the
 * guest touches it.  With max_1g=0 the same populate gives 2 MiB blocks,
 * 512 2M mappings.  A punch of one page ends the 1 GiB range, which the
 * module counter shows once the file is gone.
 */
TEST_F_TIMEOUT(blocks, giant_maps_1g, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t m1, m2;
	void *hva;
	int i, fd;

	for (i = 0; i < 2; i++) {
		gmem_write_str(MAX_1G_PARAM, i ? "0" : "1");
		fd = gmem_file(SZ_1G, 0);
		vm = __vm_create_shape_with_one_vcpu(protected_shape, &vcpu,
						     SZ_1G / SZ_2M + 64, guest_touch_2m);
		/*
		 * KVM maps 1G only where the memslot's userspace address is
		 * aligned with its guest frames at 1 GiB, shared view or not.
		 */
		hva = mmap(NULL, 2UL * SZ_1G, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ASSERT_NE(MAP_FAILED, hva);
		vm_set_user_memory_region2(vm, SLOT, KVM_MEM_GUEST_MEMFD, GPA, SZ_1G,
					   align_ptr_up(hva, SZ_1G), fd, 0);
		virt_map_level(vm, GPA, GPA, SZ_1G, PG_LEVEL_2M);
		vm_mem_set_private(vm, GPA, SZ_1G);
		vcpu_args_set(vcpu, 1, SZ_1G);
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SZ_1G))
			TH_LOG("populate 1 GiB: %s", strerror(errno));
		EXPECT_EQ(i ? 0 : SZ_1G, fdinfo_value(fd, "gmem-1g"))
			TH_LOG("max_1g=%d: gmem-1g %lld", !i, fdinfo_value(fd, "gmem-1g"));
		m1 = vm_get_stat(vm, "pages_1g");
		m2 = vm_get_stat(vm, "pages_2m");
		run_to_sync(vcpu, 0);
		m1 = vm_get_stat(vm, "pages_1g") - m1;
		m2 = vm_get_stat(vm, "pages_2m") - m2;
		TH_LOG("max_1g=%d: 1 GiB touched once per 2 MiB: %lu 1G and %lu 2M mappings",
		       !i, m1, m2);
		EXPECT_EQ(i ? 0 : 1, m1);
		EXPECT_EQ(i ? SZ_1G / SZ_2M : 0, m2);
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				       SZ_2M + PAGE_SIZE, PAGE_SIZE));
		EXPECT_EQ(0, fdinfo_value(fd, "gmem-1g"));
		EXPECT_EQ(0, vm_get_stat(vm, "pages_1g"));
		kvm_vm_free(vm);
		close(fd);
		munmap(hva, 2UL * SZ_1G);
	}
	EXPECT_EQ(0, gmem_read_ull("/sys/class/misc/gmem/allocations_1g"));
}

TEST_HARNESS_MAIN
