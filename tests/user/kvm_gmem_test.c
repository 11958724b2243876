// SPDX-License-Identifier: GPL-2.0-only
/*
 * Real KVM guests on /dev/gmem memory: the scenarios users rely on from
 * KVM's own guest_memfd (private memory round trips and conversions,
 * KVM_EXIT_MEMORY_FAULT, memslot rules, lifetime orders), with the
 * guest_memfd of every memslot coming from GMEM_CREATE.
 *
 * Guests run under KVM_X86_SW_PROTECTED_VM; the KVM selftests library
 * of the kernel tree sets them up.  With GMEM_TEST_BACKEND=guest_memfd
 * the conversion tests run on KVM's own guest_memfd instead, to compare.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/kvm_para.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_kvm_util.h"
#include "gmem_leak.h"
#include <gmem.h>

#define DATA_SLOT	10
#define DATA_GPA	(1ULL << 32)
#define DATA_SIZE	(SZ_2M + PAGE_SIZE)	/* per vCPU: crosses a 2M boundary */

FIXTURE(kvm) {
};

FIXTURE_SETUP(kvm)
{
	REQUIRE_GMEM_KVM();
}

FIXTURE_TEARDOWN(kvm)
{
}

/* The library holds its own dup of the gmem fd of each memslot. */
static void close_region_fd(struct kvm_vm *vm, int slot)
{
	struct userspace_mem_region *region = memslot2region(vm, slot);

	close(region->region.guest_memfd);
	region->region.guest_memfd = -1;
}

/*
 * Guest <-> host protocol for the data tests.  The guest converts memory
 * with KVM_HC_MAP_GPA_RANGE (the host sets the attributes and, if asked,
 * allocates or punches the gmem range), and asks the host to check the
 * shared view of a range with GUEST_SYNC.
 */
#define MAP_SHARED_ATTR		BIT(0)
#define MAP_FALLOCATE		BIT(1)
#define MAP_KEEP_ATTRS		BIT(2)

enum { SYNC_CHECK_SHARED_VIEW = 1 };

static void guest_map(uint64_t gpa, uint64_t size, bool shared, bool falloc)
{
	uint64_t flags = (shared ? MAP_SHARED_ATTR : 0) | (falloc ? MAP_FALLOCATE : 0);

	kvm_hypercall_map_gpa_range(gpa, size, flags);
}

/* Punch [gpa, gpa+size) out of the gmem file, leaving it private. */
static void guest_punch(uint64_t gpa, uint64_t size)
{
	kvm_hypercall_map_gpa_range(gpa, size,
				    MAP_SHARED_ATTR | MAP_FALLOCATE | MAP_KEEP_ATTRS);
}

/* Host: the shared view of [gpa, gpa+size) holds @expect; then fill @fill. */
static void guest_check_shared_view(uint64_t gpa, uint64_t size, uint8_t expect,
				    uint8_t fill)
{
	GUEST_SYNC5(SYNC_CHECK_SHARED_VIEW, gpa, size, expect, fill);
}

#define GUEST_EXPECT_BYTES(gpa, val, size) do {				\
	const uint8_t *__p = (const uint8_t *)(gpa);			\
	uint64_t __i;							\
									\
	for (__i = 0; __i < (size); __i++)				\
		__GUEST_ASSERT(__p[__i] == (val),			\
			       "gpa %#lx: expected %#x, got %#x",	\
			       (uint64_t)(gpa) + __i, (val), __p[__i]);	\
} while (0)

static const struct {
	uint64_t offset, size;
} ranges[] = {
	{ 0, PAGE_SIZE },
	{ 0, SZ_2M },
	{ PAGE_SIZE, PAGE_SIZE },
	{ PAGE_SIZE, SZ_2M },
	{ SZ_2M, PAGE_SIZE },
};

/*
 * Private data round trip, then conversions: private writes never show
 * in the host's shared view, and memory punched on conversion comes back
 * as zeros.
 */
static void guest_conversions(uint64_t base)
{
	const uint8_t host_p = 0xcc, priv_p = 0x5a, shared_p = 0x33;
	uint64_t i, j;

	/* Shared by default: the host filled it with host_p. */
	GUEST_EXPECT_BYTES(base, host_p, DATA_SIZE);

	for (i = 0; i < ARRAY_SIZE(ranges); i++) {
		uint64_t gpa = base + ranges[i].offset;
		uint64_t size = ranges[i].size;

		/* Private: a fresh gmem page reads as zeros. */
		guest_map(gpa, size, false, true);
		GUEST_EXPECT_BYTES(gpa, 0, size);
		memset((void *)gpa, priv_p, size);
		GUEST_EXPECT_BYTES(gpa, priv_p, size);
		/* The host's shared view never saw the private writes. */
		guest_check_shared_view(gpa, size, host_p, host_p);
		/* The rest of the range is still shared and untouched. */
		GUEST_EXPECT_BYTES(base, host_p, gpa - base);

		/* Every other page back to shared, punched. */
		for (j = 0; j < size; j += PAGE_SIZE) {
			if (!((j >> PAGE_SHIFT) & 1))
				continue;
			guest_map(gpa + j, PAGE_SIZE, true, true);
			GUEST_EXPECT_BYTES(gpa + j, host_p, PAGE_SIZE);
			memset((void *)(gpa + j), shared_p, PAGE_SIZE);
			guest_check_shared_view(gpa + j, PAGE_SIZE, shared_p, host_p);
			GUEST_EXPECT_BYTES(gpa + j, host_p, PAGE_SIZE);
		}
		/* The even pages kept their private data. */
		for (j = 0; j < size; j += 2 * PAGE_SIZE)
			GUEST_EXPECT_BYTES(gpa + j, priv_p, PAGE_SIZE);

		/* Back to private without allocating: punched pages are zero. */
		guest_map(gpa, size, false, false);
		for (j = 0; j < size; j += PAGE_SIZE)
			GUEST_EXPECT_BYTES(gpa + j, (j >> PAGE_SHIFT) & 1 ? 0 : priv_p,
					   PAGE_SIZE);

		/* All shared and punched again for the next range. */
		guest_map(gpa, size, true, true);
		GUEST_EXPECT_BYTES(gpa, host_p, size);
	}

	/*
	 * Punch-hole alone, no conversion: the guest's mappings must be
	 * zapped before the pages are freed, and faulting them in again
	 * gives zeroed pages.
	 */
	guest_map(base, DATA_SIZE, false, true);
	for (i = 0; i < ARRAY_SIZE(ranges); i++) {
		uint64_t gpa = base + ranges[i].offset;
		uint64_t size = ranges[i].size;

		memset((void *)base, priv_p, DATA_SIZE);
		guest_punch(gpa, size);
		GUEST_EXPECT_BYTES(gpa, 0, size);
		GUEST_EXPECT_BYTES(base, priv_p, gpa - base);
		GUEST_EXPECT_BYTES(gpa + size, priv_p, DATA_SIZE - (gpa + size - base));
	}
	guest_map(base, DATA_SIZE, true, true);
	GUEST_DONE();
}

/* Host side of guest_map(). */
static void handle_map_gpa_range(struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint64_t gpa = run->hypercall.args[0];
	uint64_t size = run->hypercall.args[1] * PAGE_SIZE;
	bool shared = run->hypercall.args[2] & MAP_SHARED_ATTR;

	TEST_ASSERT(run->hypercall.nr == KVM_HC_MAP_GPA_RANGE,
		    "hypercall %llu, expected KVM_HC_MAP_GPA_RANGE", run->hypercall.nr);
	/* As a VMM does it: drop private pages when sharing, allocate when privatising. */
	if (run->hypercall.args[2] & MAP_FALLOCATE)
		vm_guest_mem_fallocate(vcpu->vm, gpa, size, shared);
	if (!(run->hypercall.args[2] & MAP_KEEP_ATTRS))
		vm_set_memory_attributes(vcpu->vm, gpa, size,
					 shared ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE);
	run->hypercall.ret = 0;
}

/* Run @vcpu until GUEST_DONE, serving conversions and shared-view checks. */
static void *run_data_vcpu(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	uint64_t i;

	for (;;) {
		vcpu_run(vcpu);
		if (run->exit_reason == KVM_EXIT_HYPERCALL) {
			handle_map_gpa_range(vcpu);
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		case UCALL_SYNC:
			TEST_ASSERT_EQ(uc.args[0], SYNC_CHECK_SHARED_VIEW);
			for (i = 0; i < uc.args[2]; i++) {
				uint8_t *hva = addr_gpa2hva(vcpu->vm, uc.args[1] + i);

				TEST_ASSERT(*hva == uc.args[3],
					    "shared view of gpa %#lx: expected %#lx, got %#x",
					    uc.args[1] + i, uc.args[3], *hva);
				*hva = uc.args[4];
			}
			break;
		case UCALL_DONE:
			return NULL;
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

/*
 * @nr_vcpus guests, each converting its own DATA_SIZE chunk, on
 * @nr_slots memslots that share one gmem file.
 */
static void test_conversions(int nr_vcpus, int nr_slots)
{
	const uint64_t per_vcpu = align_up(DATA_SIZE, SZ_2M);
	const uint64_t total = per_vcpu * nr_vcpus;
	const uint64_t slot_size = total / nr_slots;
	struct kvm_vcpu *vcpus[4];
	pthread_t threads[4];
	struct kvm_vm *vm;
	int fd, i;

	TEST_ASSERT(nr_vcpus <= 4 && slot_size * nr_slots == total, "bad layout");
	vm = __vm_create_with_vcpus(protected_shape, nr_vcpus, 0, guest_conversions,
				    vcpus);
	vm_enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, BIT(KVM_HC_MAP_GPA_RANGE));

	fd = private_file(vm, total);
	for (i = 0; i < nr_slots; i++)
		vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA + slot_size * i,
			   DATA_SLOT + i, slot_size / vm->page_size,
			   KVM_MEM_GUEST_MEMFD, fd, slot_size * i);

	for (i = 0; i < nr_vcpus; i++) {
		uint64_t gpa = DATA_GPA + per_vcpu * i;

		memset(addr_gpa2hva(vm, gpa), 0xcc, DATA_SIZE);
		vcpu_args_set(vcpus[i], 1, gpa);
		virt_map(vm, gpa, gpa, DATA_SIZE / vm->page_size);
	}
	for (i = 0; i < nr_vcpus; i++)
		pthread_create(&threads[i], NULL, run_data_vcpu, vcpus[i]);
	for (i = 0; i < nr_vcpus; i++)
		pthread_join(threads[i], NULL);

	TEST_ASSERT(on_guest_memfd() || fdinfo_has(fd, "gmem-vm:\tkvm-"),
		    "fdinfo of a bound gmem file names no VM");
	kvm_vm_free(vm);

	/*
	 * The file pins the VM, although kvm_vm_free() deleted its memslots
	 * (only GMEM_RELEASE_VM lets it go): punching and allocating still
	 * work.
	 */
	TEST_ASSERT(on_guest_memfd() || fdinfo_has(fd, "gmem-vm:\tkvm-"),
		    "fdinfo names no VM after the VM's memslots were deleted");
	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, total),
		    "punch after VM close: %s", strerror(errno));
	TEST_ASSERT(on_guest_memfd() || fdinfo_value(fd, "gmem-allocated") == 0,
		    "gmem-allocated after a punch of everything: %lld",
		    fdinfo_value(fd, "gmem-allocated"));
	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, total),
		    "allocate after VM close: %s", strerror(errno));
	TEST_ASSERT(on_guest_memfd() || fdinfo_value(fd, "gmem-allocated") == (long long)total,
		    "gmem-allocated after allocating %#lx bytes: %lld", total,
		    fdinfo_value(fd, "gmem-allocated"));
	close(fd);
}

TEST_F_TIMEOUT(kvm, conversions_one_vcpu, KVM_TEST_TIMEOUT)
{
	test_conversions(1, 1);
}

TEST_F_TIMEOUT(kvm, conversions_two_vcpus_two_memslots, KVM_TEST_TIMEOUT)
{
	test_conversions(2, 2);
}

/* KVM_EXIT_MEMORY_FAULT checks, one page at EXIT_GPA. */
#define EXIT_GPA	0xc0000000ULL
#define EXIT_SLOT	10

static void guest_read_forever(void)
{
	for (;;)
		READ_ONCE(*(volatile uint64_t *)EXIT_GPA);
}

static uint64_t run_until_fault(struct kvm_vcpu *vcpu)
{
	int r = _vcpu_run(vcpu);

	if (r) {
		TEST_ASSERT(errno == EFAULT, "KVM_RUN: errno %d, expected EFAULT", errno);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MEMORY_FAULT);
	}
	return vcpu->run->exit_reason;
}

static void *run_until_fault_thread(void *vcpu)
{
	return (void *)run_until_fault(vcpu);
}

static void expect_private_fault(struct kvm_vcpu *vcpu, uint64_t reason)
{
	TEST_ASSERT_EQ(reason, KVM_EXIT_MEMORY_FAULT);
	TEST_ASSERT_EQ(vcpu->run->memory_fault.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE);
	TEST_ASSERT_EQ(vcpu->run->memory_fault.gpa, EXIT_GPA);
	TEST_ASSERT_EQ(vcpu->run->memory_fault.size, PAGE_SIZE);
}

static struct kvm_vm *exit_vm(struct kvm_vcpu **vcpu, int *fd)
{
	struct kvm_vm *vm;

	vm = vm_create_shape_with_one_vcpu(protected_shape, vcpu, guest_read_forever);
	*fd = gmem_file(PAGE_SIZE, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, EXIT_GPA, EXIT_SLOT, 1,
		   KVM_MEM_GUEST_MEMFD, *fd, 0);
	virt_map(vm, EXIT_GPA, EXIT_GPA, 1);
	vm_mem_set_private(vm, EXIT_GPA, PAGE_SIZE);
	return vm;
}

/* The memslot goes away under a vCPU spinning on private memory. */
TEST_F_TIMEOUT(kvm, exit_memslot_deleted, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	pthread_t thread;
	void *reason;
	int fd;

	vm = exit_vm(&vcpu, &fd);
	pthread_create(&thread, NULL, run_until_fault_thread, vcpu);
	usleep(100000);
	vm_mem_region_delete(vm, EXIT_SLOT);
	pthread_join(thread, &reason);
	expect_private_fault(vcpu, (uint64_t)reason);
	kvm_vm_free(vm);
	close(fd);
}

/* Private access to a memslot without guest_memfd. */
TEST_F_TIMEOUT(kvm, exit_memslot_not_private, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = vm_create_shape_with_one_vcpu(protected_shape, &vcpu, guest_read_forever);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, EXIT_GPA, EXIT_SLOT, 1, 0);
	virt_map(vm, EXIT_GPA, EXIT_GPA, 1);
	vm_mem_set_private(vm, EXIT_GPA, PAGE_SIZE);
	expect_private_fault(vcpu, run_until_fault(vcpu));
	kvm_vm_free(vm);
}

/*
 * The gmem file is closed while its memslot stays: guest accesses fault
 * out to userspace, and the memslot can still be deleted.
 */
TEST_F_TIMEOUT(kvm, exit_gmem_file_closed, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd;

	vm = exit_vm(&vcpu, &fd);
	close(fd);
	close_region_fd(vm, EXIT_SLOT);
	expect_private_fault(vcpu, run_until_fault(vcpu));
	vm_mem_region_delete(vm, EXIT_SLOT);
	kvm_vm_free(vm);
}

#define MR_SLOT	10
#define MR_GPA	(1ULL << 30)
#define MR_SIZE	SZ_2M

static int set_region(struct kvm_vm *vm, int slot, uint32_t flags, uint64_t gpa,
		      uint64_t size, int fd, uint64_t offset)
{
	return __vm_set_user_memory_region2(vm, slot, flags, gpa, size, NULL, fd,
					    offset);
}

#define EXPECT_REGION_ERRNO(err, vm, slot, flags, gpa, size, fd, off) do {	\
	errno = 0;								\
	EXPECT_EQ(-1, set_region(vm, slot, flags, gpa, size, fd, off));	\
	EXPECT_EQ(err, errno) TH_LOG("memslot gpa %#llx size %#llx offset %#llx " \
				     "flags %#x: errno %d (%s), expected %s",	\
				     (unsigned long long)(gpa),			\
				     (unsigned long long)(size),		\
				     (unsigned long long)(off), (unsigned int)(flags), errno,	\
				     strerror(errno), #err);			\
} while (0)

static int release_vm(int fd, int vm_fd, uint32_t flags)
{
	struct gmem_release_vm rel = { .vm_fd = vm_fd, .flags = flags };

	return ioctl(fd, GMEM_RELEASE_VM, &rel);
}

#define EXPECT_RELEASE_ERRNO(err, fd, vm_fd, flags) do {			\
	errno = 0;								\
	EXPECT_EQ(-1, release_vm(fd, vm_fd, flags));				\
	EXPECT_EQ(err, errno) TH_LOG("GMEM_RELEASE_VM(vm_fd %d, flags %#x): "	\
				     "errno %d (%s), expected %s", (int)(vm_fd),	\
				     (unsigned int)(flags), errno, strerror(errno), #err); \
} while (0)

/* The memslot rules of KVM's guest_memfd, on gmem files. */
TEST_F_TIMEOUT(kvm, memslot_errors, KVM_TEST_TIMEOUT)
{
	const uint32_t gm = KVM_MEM_GUEST_MEMFD;
	struct kvm_vm *vm, *vm2;
	int fd, fd2, memfd, i, vms;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = gmem_file(4 * MR_SIZE, 0);

	/* Not a guest_memfd at all. */
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, vm->fd, 0);
	memfd = kvm_memfd_alloc(MR_SIZE, false);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, memfd, 0);
	close(memfd);
	EXPECT_REGION_ERRNO(EBADF, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, 1000, 0);

	/* Unaligned, out of range, or overflowing offsets. */
	for (i = 1; i < PAGE_SIZE; i += 511)
		EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, i);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 3 * MR_SIZE + PAGE_SIZE);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 4 * MR_SIZE);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, -PAGE_SIZE);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd,
			    1ULL << 63);

	/* Flags guest_memfd memslots cannot have. */
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm | KVM_MEM_READONLY, MR_GPA,
			    MR_SIZE, fd, 0);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm | KVM_MEM_LOG_DIRTY_PAGES, MR_GPA,
			    MR_SIZE, fd, 0);

	/* The first bind works; the file's ranges may not overlap. */
	ASSERT_EQ(0, set_region(vm, MR_SLOT, gm, MR_GPA, 2 * MR_SIZE, fd, 0));
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT + 1, gm, 4 * MR_GPA, 2 * MR_SIZE, fd,
			    MR_SIZE);
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT + 1, gm, 4 * MR_GPA, MR_SIZE, fd, 0);
	/* Overlapping guest physical ranges are KVM's EEXIST, as ever. */
	EXPECT_REGION_ERRNO(EEXIST, vm, MR_SLOT + 1, gm, MR_GPA + MR_SIZE, 2 * MR_SIZE,
			    fd, 2 * MR_SIZE);
	/* Adjacent file ranges are fine. */
	EXPECT_EQ(0, set_region(vm, MR_SLOT + 1, gm, 4 * MR_GPA, 2 * MR_SIZE, fd,
				2 * MR_SIZE));
	/* guest_memfd memslots are immutable. */
	EXPECT_REGION_ERRNO(EINVAL, vm, MR_SLOT, gm, 8 * MR_GPA, 2 * MR_SIZE, fd, 0);

	/*
	 * A file binds to one VM: another VM gets EBUSY while the first VM
	 * has memslots on it, even for a range the first VM does not use...
	 */
	vm2 = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	EXPECT_REGION_ERRNO(EBUSY, vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0);
	EXPECT_EQ(0, set_region(vm, MR_SLOT, 0, MR_GPA, 0, -1, 0));
	EXPECT_REGION_ERRNO(EBUSY, vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0);
	/* ...and the first VM cannot let it go while one memslot is left. */
	EXPECT_RELEASE_ERRNO(EBUSY, fd, vm->fd, 0);
	/*
	 * Deleting every memslot releases nothing (a VMM lays its memory out
	 * anew that way): the file stays the first VM's, the second waits.
	 */
	EXPECT_EQ(0, set_region(vm, MR_SLOT + 1, 0, 4 * MR_GPA, 0, -1, 0));
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	EXPECT_REGION_ERRNO(EBUSY, vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0);
	/* The first VM can still bind it again, and delete that again. */
	EXPECT_EQ(0, set_region(vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0));
	EXPECT_RELEASE_ERRNO(EBUSY, fd, vm->fd, 0);
	EXPECT_EQ(0, set_region(vm, MR_SLOT, 0, MR_GPA, 0, -1, 0));
	/* The second VM's fd does not release it: not the file's VM. */
	EXPECT_RELEASE_ERRNO(EINVAL, fd, vm2->fd, 0);
	EXPECT_REGION_ERRNO(EBUSY, vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0);
	/* The first VM lets the file go: fdinfo names no VM any more... */
	EXPECT_EQ(0, release_vm(fd, vm->fd, 0)) TH_LOG("release: %s", strerror(errno));
	EXPECT_FALSE(fdinfo_has(fd, "gmem-vm:"));
	/* ...the second VM binds it, and now the first VM gets EBUSY. */
	EXPECT_EQ(0, set_region(vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0));
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	EXPECT_REGION_ERRNO(EBUSY, vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 2 * MR_SIZE);
	/* Nor can the first VM take it back by releasing: not its VM now. */
	EXPECT_RELEASE_ERRNO(EINVAL, fd, vm->fd, 0);
	/* The second VM has the first one's rules: no overlap, adjacent fine. */
	EXPECT_REGION_ERRNO(EINVAL, vm2, MR_SLOT + 1, gm, 4 * MR_GPA, MR_SIZE, fd, 0);
	EXPECT_EQ(0, set_region(vm2, MR_SLOT + 1, gm, 4 * MR_GPA, MR_SIZE, fd, MR_SIZE));
	/* A fresh file binds to the second VM, and then not to the first. */
	fd2 = gmem_file(MR_SIZE, 0);
	EXPECT_EQ(0, set_region(vm2, MR_SLOT + 2, gm, 8 * MR_GPA, MR_SIZE, fd2, 0));
	EXPECT_REGION_ERRNO(EBUSY, vm, MR_SLOT + 2, gm, 8 * MR_GPA, MR_SIZE, fd2, 0);

	/*
	 * The file let the first VM go: closing the VM's fd frees it, with
	 * the file still open.
	 */
	vms = gmem_count_vms_vmalloc();
	kvm_vm_free(vm);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
	/*
	 * The second VM's fd closes with its memslots still there (the
	 * library does not know them), unreleased: both files pin it, until
	 * the last of them is closed.
	 */
	kvm_vm_free(vm2);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
	close(fd2);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	close(fd);
	EXPECT_EQ(vms - 2, gmem_count_vms_vmalloc());

	/* Only VMs with private memory take guest_memfd memslots at all. */
	vm2 = vm_create_barebones();
	fd2 = gmem_file(MR_SIZE, 0);
	EXPECT_REGION_ERRNO(EINVAL, vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd2, 0);
	kvm_vm_free(vm2);
	close(fd2);
}

/*
 * Every errno of GMEM_RELEASE_VM, each on a file whose VM has no memslot
 * on it any more (so that a release that skipped a check would show: the
 * file would lose its VM), then the release itself, and no-ops.
 */
TEST_F_TIMEOUT(kvm, release_vm_errors, KVM_TEST_TIMEOUT)
{
	const uint32_t gm = KVM_MEM_GUEST_MEMFD;
	struct kvm_vm *vm, *vm2;
	int fd, dev, kvm_fd, closed, takeover, tfd, vms;
	void *none;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	vm2 = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = gmem_file(MR_SIZE, 0);

	/* A file no VM has: nothing to do, with any VM's fd, twice. */
	EXPECT_EQ(0, release_vm(fd, vm->fd, 0)) TH_LOG("unbound: %s", strerror(errno));
	EXPECT_EQ(0, release_vm(fd, vm2->fd, 0)) TH_LOG("unbound: %s", strerror(errno));
	EXPECT_FALSE(fdinfo_has(fd, "gmem-vm:"));

	ASSERT_EQ(0, set_region(vm, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0));
	/* EBUSY: a memslot of the VM is still bound to the file. */
	EXPECT_RELEASE_ERRNO(EBUSY, fd, vm->fd, 0);
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	ASSERT_EQ(0, set_region(vm, MR_SLOT, 0, MR_GPA, 0, -1, 0));

	/*
	 * EFAULT: no argument, one in an inaccessible page, one that ends
	 * in it (its vm_fd readable: the file's VM).
	 */
	none = mmap(NULL, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, none);
	ASSERT_EQ(0, mprotect((char *)none + PAGE_SIZE, PAGE_SIZE, PROT_NONE));
	errno = 0;
	EXPECT_EQ(-1, ioctl(fd, GMEM_RELEASE_VM, NULL));
	EXPECT_EQ(EFAULT, errno) TH_LOG("NULL argument: %s", strerror(errno));
	errno = 0;
	EXPECT_EQ(-1, ioctl(fd, GMEM_RELEASE_VM, (char *)none + PAGE_SIZE));
	EXPECT_EQ(EFAULT, errno) TH_LOG("inaccessible argument: %s", strerror(errno));
	*(int32_t *)((char *)none + PAGE_SIZE - sizeof(int32_t)) = vm->fd;
	errno = 0;
	EXPECT_EQ(-1, ioctl(fd, GMEM_RELEASE_VM, (char *)none + PAGE_SIZE - sizeof(int32_t)));
	EXPECT_EQ(EFAULT, errno) TH_LOG("argument across the end: %s", strerror(errno));
	munmap(none, 2 * PAGE_SIZE);

	/* EINVAL: flags. */
	EXPECT_RELEASE_ERRNO(EINVAL, fd, vm->fd, 1);
	EXPECT_RELEASE_ERRNO(EINVAL, fd, vm->fd, 1U << 31);
	/* EINVAL: an fd that is no KVM VM: the gmem file itself, /dev/kvm. */
	EXPECT_RELEASE_ERRNO(EINVAL, fd, fd, 0);
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, kvm_fd);
	EXPECT_RELEASE_ERRNO(EINVAL, fd, kvm_fd, 0);
	close(kvm_fd);
	/* EINVAL: another VM, not the file's. */
	EXPECT_RELEASE_ERRNO(EINVAL, fd, vm2->fd, 0);
	/* EBADF: negative, or not open. */
	EXPECT_RELEASE_ERRNO(EBADF, fd, -1, 0);
	EXPECT_RELEASE_ERRNO(EBADF, fd, INT32_MIN, 0);
	closed = dup(fd);
	ASSERT_LE(0, closed);
	close(closed);
	EXPECT_RELEASE_ERRNO(EBADF, fd, closed, 0);
	/* ENOTTY: on /dev/gmem, which has no VM. */
	dev = open("/dev/gmem", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, dev);
	EXPECT_RELEASE_ERRNO(ENOTTY, dev, vm->fd, 0);
	close(dev);

	/* None of those let the VM go: the second VM still waits. */
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	EXPECT_REGION_ERRNO(EBUSY, vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0);

	/* The release, then again: the file has no VM, a no-op. */
	EXPECT_EQ(0, release_vm(fd, vm->fd, 0)) TH_LOG("release: %s", strerror(errno));
	EXPECT_FALSE(fdinfo_has(fd, "gmem-vm:"));
	EXPECT_EQ(0, release_vm(fd, vm->fd, 0)) TH_LOG("again: %s", strerror(errno));
	EXPECT_EQ(0, release_vm(fd, vm2->fd, 0)) TH_LOG("another VM's: %s", strerror(errno));
	EXPECT_EQ(0, set_region(vm2, MR_SLOT, gm, MR_GPA, MR_SIZE, fd, 0));
	/* The first VM's fd now is another VM's: EINVAL, the file stays. */
	EXPECT_RELEASE_ERRNO(EINVAL, fd, vm->fd, 0);
	EXPECT_RELEASE_ERRNO(EBUSY, fd, vm2->fd, 0);
	EXPECT_EQ(0, set_region(vm2, MR_SLOT, 0, MR_GPA, 0, -1, 0));

	/* The released VM is freed with its fd; the file's VM is not. */
	vms = gmem_count_vms_vmalloc();
	kvm_vm_free(vm);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
	kvm_vm_free(vm2);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	close(fd);
	EXPECT_EQ(vms - 2, gmem_count_vms_vmalloc());

	/*
	 * EINVAL: a file KVM_CREATE_GUEST_MEMFD made (takeover on) is its
	 * VM's for life, memslots or not.
	 */
	takeover = gmem_takeover_param_get();
	if (takeover < 0) {
		ksft_print_msg("no takeover parameter: takeover file case skipped\n");
		return;
	}
	gmem_takeover_param_set(true);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	tfd = vm_create_guest_memfd(vm, MR_SIZE, 0);
	gmem_takeover_param_set(takeover);
	ASSERT_LE(0, fdinfo_value(tfd, "gmem-id")) TH_LOG("not a gmem file");
	EXPECT_RELEASE_ERRNO(EINVAL, tfd, vm->fd, 0);
	EXPECT_TRUE(fdinfo_has(tfd, "gmem-vm:\tkvm-"));
	close(tfd);
	kvm_vm_free(vm);
}

/*
 * Punch-hole races a vCPU that keeps writing and reading private memory:
 * every read returns what was just written or zero (the page was punched
 * in between and faulted in fresh), never anything else.
 */
#define RACE_GPA	(1ULL << 32)
#define RACE_PAGES	64
#define RACE_ROUNDS	200

static void guest_write_read(void)
{
	uint64_t round, i;

	for (round = 1; round <= RACE_ROUNDS; round++) {
		for (i = 0; i < RACE_PAGES; i++) {
			volatile uint64_t *p = (uint64_t *)(RACE_GPA + i * PAGE_SIZE);
			uint64_t v;

			*p = round;
			v = *p;
			__GUEST_ASSERT(v == round || v == 0,
				       "page %lu round %lu: read %#lx", i, round, v);
		}
		GUEST_SYNC(round);
	}
	GUEST_DONE();
}

struct puncher {
	int fd;
	atomic_bool stop;
	unsigned long punches;
};

static void *punch_loop(void *arg)
{
	struct puncher *p = arg;

	while (!atomic_load(&p->stop)) {
		TEST_ASSERT(!fallocate(p->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				       0, RACE_PAGES * PAGE_SIZE),
			    "punch: %s", strerror(errno));
		p->punches++;
	}
	return NULL;
}

TEST_F_TIMEOUT(kvm, punch_while_vcpu_runs, KVM_TEST_TIMEOUT)
{
	struct puncher p = { .stop = false };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	pthread_t thread;
	struct ucall uc;
	bool done = false;

	vm = vm_create_shape_with_one_vcpu(protected_shape, &vcpu, guest_write_read);
	p.fd = gmem_file(RACE_PAGES * PAGE_SIZE, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, RACE_GPA, DATA_SLOT, RACE_PAGES,
		   KVM_MEM_GUEST_MEMFD, p.fd, 0);
	virt_map(vm, RACE_GPA, RACE_GPA, RACE_PAGES);
	vm_mem_set_private(vm, RACE_GPA, RACE_PAGES * PAGE_SIZE);

	pthread_create(&thread, NULL, punch_loop, &p);
	while (!done) {
		vcpu_run(vcpu);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		case UCALL_SYNC:
			break;
		case UCALL_DONE:
			done = true;
			break;
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
	atomic_store(&p.stop, true);
	pthread_join(thread, NULL);
	TH_LOG("%lu punches raced %d rounds of %d pages", p.punches, RACE_ROUNDS,
	       RACE_PAGES);
	EXPECT_LT(0, p.punches);
	kvm_vm_free(vm);
	close(p.fd);
}

/*
 * Populated 2 MiB blocks: KVM maps them with 2M entries, every page of a
 * mapped block counts as seen by the guest (GMEM_WRITE refuses it), and
 * punching one page of a mapped block zaps the whole mapping, leaving
 * zeros in that page only.
 */
#define BLK_GPA		(1ULL << 32)
#define BLK_SIZE	(2 * SZ_2M)

static void guest_blocks(void)
{
	volatile uint64_t *p = (uint64_t *)BLK_GPA;

	p[0] = 0x1111;				/* block 0, first page */
	GUEST_SYNC(1);
	/* Block 1 was never touched: the host filled page 100 of it. */
	GUEST_ASSERT_EQ(p[(SZ_2M + 100 * PAGE_SIZE) / 8], 0x2222);
	p[5 * PAGE_SIZE / 8] = 0x5555;
	p[6 * PAGE_SIZE / 8] = 0x6666;
	GUEST_SYNC(2);
	/* The host punched page 5 of block 0. */
	GUEST_ASSERT_EQ(p[5 * PAGE_SIZE / 8], 0);
	GUEST_ASSERT_EQ(p[6 * PAGE_SIZE / 8], 0x6666);
	GUEST_ASSERT_EQ(p[0], 0x1111);
	GUEST_DONE();
}

static int gmem_write(int fd, uint64_t offset, const void *buf, uint64_t size)
{
	struct gmem_write args = {
		.offset = offset,
		.size = size,
		.user_addr = (uintptr_t)buf,
	};

	return ioctl(fd, GMEM_WRITE, &args);
}

TEST_F_TIMEOUT(kvm, populated_blocks_map_2m, KVM_TEST_TIMEOUT)
{
	uint64_t data[PAGE_SIZE / 8] = { 0x2222 };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd;

	vm = vm_create_shape_with_one_vcpu(protected_shape, &vcpu, guest_blocks);
	fd = gmem_file(BLK_SIZE, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, BLK_GPA, DATA_SLOT,
		   BLK_SIZE / PAGE_SIZE, KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, BLK_GPA, BLK_GPA, BLK_SIZE / PAGE_SIZE);
	vm_mem_set_private(vm, BLK_GPA, BLK_SIZE);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, BLK_SIZE));

	run_to_sync(vcpu, 1);
	EXPECT_LE(1, vm_get_stat(vm, "pages_2m"))
		TH_LOG("a touched populated block is not mapped with a 2M entry");

	/* The guest can reach all of block 0, none of block 1. */
	errno = 0;
	EXPECT_EQ(-1, gmem_write(fd, 100 * PAGE_SIZE, data, PAGE_SIZE));
	EXPECT_EQ(EPERM, errno) TH_LOG("GMEM_WRITE into a mapped block: %s",
				       strerror(errno));
	EXPECT_EQ(0, gmem_write(fd, SZ_2M + 100 * PAGE_SIZE, data, PAGE_SIZE))
		TH_LOG("GMEM_WRITE into an untouched block: %s", strerror(errno));

	run_to_sync(vcpu, 2);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			       5 * PAGE_SIZE, PAGE_SIZE));
	run_to_sync(vcpu, 0);
	kvm_vm_free(vm);
	close(fd);
}

static void guest_touch_first(void)
{
	((volatile uint64_t *)BLK_GPA)[0] = 0x1111;
	GUEST_DONE();
}

/*
 * A populated block is handed to the guest whole only when KVM maps it
 * with one 2M entry.  When one page of its 2M range is shared (mixed
 * attributes), or its memslot covers only half of it, KVM maps the page
 * the guest touched at 4K: GMEM_WRITE still fills the block's other
 * pages, and refuses the touched one with EPERM.
 */
TEST_F_TIMEOUT(kvm, block_mapped_4k_stays_writable, KVM_TEST_TIMEOUT)
{
	uint64_t data[PAGE_SIZE / 8] = { 0x2222 };
	static const char * const why[] = { "one page shared", "half-block memslot" };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t npages;
	int fd, i;

	for (i = 0; i < 2; i++) {
		npages = (i ? SZ_1M : SZ_2M) / PAGE_SIZE;
		vm = vm_create_shape_with_one_vcpu(protected_shape, &vcpu,
						   guest_touch_first);
		fd = gmem_file(SZ_2M, 0);
		vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, BLK_GPA, DATA_SLOT, npages,
			   KVM_MEM_GUEST_MEMFD, fd, 0);
		virt_map(vm, BLK_GPA, BLK_GPA, npages);
		vm_mem_set_private(vm, BLK_GPA, npages * PAGE_SIZE);
		if (i == 0)
			vm_mem_set_shared(vm, BLK_GPA + SZ_2M - PAGE_SIZE, PAGE_SIZE);
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SZ_2M));

		run_to_sync(vcpu, 0);
		EXPECT_EQ(0, vm_get_stat(vm, "pages_2m"))
			TH_LOG("%s: the block is mapped with a 2M entry", why[i]);
		EXPECT_EQ(0, gmem_write(fd, 5 * PAGE_SIZE, data, PAGE_SIZE))
			TH_LOG("%s: GMEM_WRITE into an untouched page of the block: %s",
			       why[i], strerror(errno));
		EXPECT_EQ(0, gmem_write(fd, 300 * PAGE_SIZE, data, PAGE_SIZE))
			TH_LOG("%s: GMEM_WRITE into page 300 of the block: %s",
			       why[i], strerror(errno));
		errno = 0;
		EXPECT_EQ(-1, gmem_write(fd, 0, data, PAGE_SIZE));
		EXPECT_EQ(EPERM, errno)
			TH_LOG("%s: GMEM_WRITE into the page the guest touched: %s",
			       why[i], strerror(errno));
		kvm_vm_free(vm);
		close(fd);
	}
}

/*
 * Closing the VM first: the file keeps it alive until the file goes.
 * kvm_vm_free() deletes the VM's memslots before it closes the VM's fd,
 * which does not release the file (only GMEM_RELEASE_VM does, see
 * release_vm_errors).
 */
TEST_F_TIMEOUT(kvm, vm_closed_before_file, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd, vms;

	vm = exit_vm(&vcpu, &fd);
	vm_mem_set_shared(vm, EXIT_GPA, PAGE_SIZE);
	vms = gmem_count_vms_vmalloc();
	kvm_vm_free(vm);
	EXPECT_EQ(vms, gmem_count_vms_vmalloc());
	EXPECT_TRUE(fdinfo_has(fd, "gmem-vm:\tkvm-"));
	EXPECT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE));
	EXPECT_EQ(PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(0, close(fd));
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
}

static long delete_module(const char *name, unsigned int flags)
{
	return syscall(SYS_delete_module, name, flags);
}

/*
 * A memslot bound to a gmem file holds the module, even when no gmem fd
 * is open any more; once the memslot is gone, gmem unloads cleanly (and
 * is loaded again for the tests that follow).
 */
TEST_F_TIMEOUT(kvm, memslot_pins_module, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd;

	vm = exit_vm(&vcpu, &fd);
	close(fd);
	close_region_fd(vm, EXIT_SLOT);

	errno = 0;
	EXPECT_EQ(-1, delete_module("gmem", O_NONBLOCK));
	EXPECT_EQ(EWOULDBLOCK, errno) TH_LOG("delete_module: %s", strerror(errno));

	vm_mem_region_delete(vm, EXIT_SLOT);
	kvm_vm_free(vm);
	ASSERT_EQ(0, delete_module("gmem", O_NONBLOCK))
		TH_LOG("unload after the memslot is gone: %s", strerror(errno));
	EXPECT_NE(0, access("/dev/gmem", F_OK));
	ASSERT_EQ(0, system("modprobe gmem"));
	EXPECT_EQ(0, access("/dev/gmem", F_OK));
}

TEST_HARNESS_MAIN
