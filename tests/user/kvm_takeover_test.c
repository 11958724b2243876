// SPDX-License-Identifier: GPL-2.0-only
/*
 * Takeover: with the module parameter takeover on, KVM_CREATE_GUEST_MEMFD
 * returns gmem files, with KVM's own contract for such files.
 *
 * - Off, KVM_CREATE_GUEST_MEMFD gives KVM's guest_memfd; on, a gmem file
 *   (fdinfo, module counters), with KVM's fd flags and size.
 * - Invalid flags and sizes fail with KVM's EINVAL, on or off.
 * - The file is bound to its VM from creation and for life: another VM's
 *   memslot cannot bind it (EINVAL, never a GMEM_CREATE file's EBUSY),
 *   not even once its VM deleted its memslots, GMEM_RELEASE_VM fails
 *   with EINVAL whichever VM asks, and it pins the VM until it is closed.
 * - A guest runs on it, and gmem's own ioctls work on the fd.
 * - What gmem leaves to KVM (a size above max_file_size) is KVM's own
 *   guest_memfd, counted in takeover_declined.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_kvm_util.h"
#include "gmem_leak.h"
#include <gmem.h>

#define MAX_SIZE_PARAM	"/sys/module/gmem/parameters/max_file_size"
#define TAKEN_OVER	"/sys/class/misc/gmem/takeover_files"
#define DECLINED	"/sys/class/misc/gmem/takeover_declined"

#define SLOT		10
#define GPA		(1ULL << 32)
#define SIZE		(4 * SZ_2M)

/* The parameters takeover and max_file_size are put back after each test. */
FIXTURE(takeover) {
	int saved;		/* -1: nothing to put back */
	unsigned long long max_size;
};

FIXTURE_SETUP(takeover)
{
	self->saved = -1;
	REQUIRE_GMEM_KVM();
	self->max_size = gmem_read_ull(MAX_SIZE_PARAM);
	self->saved = gmem_takeover_param_get();
	if (self->saved < 0)
		SKIP(return, "gmem has no takeover parameter");
}

FIXTURE_TEARDOWN(takeover)
{
	char v[32];

	if (self->saved < 0)
		return;
	gmem_takeover_param_set(self->saved);
	snprintf(v, sizeof(v), "%llu", self->max_size);
	gmem_write_str(MAX_SIZE_PARAM, v);
}

/* Is @fd a gmem file?  Only gmem's fdinfo has gmem-id. */
static bool is_gmem(int fd)
{
	return fdinfo_value(fd, "gmem-id") >= 0;
}

/*
 * Off: KVM's own guest_memfd, and the counters stay.  On: a gmem file,
 * counted, already bound to its VM (fdinfo gmem-vm), with what KVM gives
 * its own files: no FD_CLOEXEC, read-write, the size asked for.
 */
TEST_F(takeover, off_kvm_on_gmem)
{
	unsigned long long taken = gmem_read_ull(TAKEN_OVER);
	unsigned long long declined = gmem_read_ull(DECLINED);
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	char vm_name[64];
	struct stat st;
	int fd, plain;

	gmem_takeover_param_set(false);
	fd = vm_create_guest_memfd(vm, SIZE, 0);
	EXPECT_FALSE(is_gmem(fd));
	EXPECT_EQ(taken, gmem_read_ull(TAKEN_OVER));
	close(fd);

	gmem_takeover_param_set(true);
	fd = vm_create_guest_memfd(vm, SIZE, 0);
	EXPECT_TRUE(is_gmem(fd));
	EXPECT_EQ(taken + 1, gmem_read_ull(TAKEN_OVER));
	EXPECT_EQ(declined, gmem_read_ull(DECLINED));
	EXPECT_EQ(0, fcntl(fd, F_GETFD));
	EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(SIZE, st.st_size);
	EXPECT_EQ(PAGE_SIZE, st.st_blksize);
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-allocated"));
	/* Bound from creation: fdinfo names the VM before any memslot. */
	snprintf(vm_name, sizeof(vm_name), "gmem-vm:\tkvm-%d\n", getpid());
	EXPECT_TRUE(fdinfo_has(fd, vm_name));
	/*
	 * gmem's defaults, as GMEM_CREATE without flags: the parameters
	 * blocks and no_direct_map decide the rest.
	 */
	plain = gmem_file(SIZE, 0);
	EXPECT_EQ(fdinfo_value(plain, "gmem-flags"), fdinfo_value(fd, "gmem-flags"));
	EXPECT_EQ(0, fdinfo_value(fd, "gmem-flags") &
		  ~(GMEM_CREATE_BLOCKS | GMEM_CREATE_NO_DIRECT_MAP));
	close(plain);
	close(fd);
	kvm_vm_free(vm);
}

/*
 * KVM checks flags and size before asking gmem: every flag bit and every
 * size that is not a positive multiple of the page size fail with EINVAL,
 * as they do with takeover off, and gmem counts none of them.
 */
TEST_F(takeover, invalid_args_einval)
{
	static const uint64_t sizes[] = { 0, 1, PAGE_SIZE - 1, PAGE_SIZE + 1,
					  -PAGE_SIZE };
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	unsigned long long taken, declined;
	int on, bit, i, fd;

	for (on = 0; on < 2; on++) {
		gmem_takeover_param_set(on);
		taken = gmem_read_ull(TAKEN_OVER);
		declined = gmem_read_ull(DECLINED);
		for (bit = 0; bit < 64; bit++) {
			fd = __vm_create_guest_memfd(vm, PAGE_SIZE, 1ULL << bit);
			EXPECT_EQ(-1, fd);
			EXPECT_EQ(EINVAL, errno) TH_LOG("flag bit %d, takeover %d",
							bit, on);
		}
		for (i = 0; i < (int)ARRAY_SIZE(sizes); i++) {
			fd = __vm_create_guest_memfd(vm, sizes[i], 0);
			EXPECT_EQ(-1, fd);
			EXPECT_EQ(EINVAL, errno) TH_LOG("size %#lx, takeover %d",
							sizes[i], on);
		}
		EXPECT_EQ(taken, gmem_read_ull(TAKEN_OVER));
		EXPECT_EQ(declined, gmem_read_ull(DECLINED));
	}
	kvm_vm_free(vm);
}

/* Memslot @slot at @gpa on [@offset, @offset + @size) of @fd. */
static int bind_slot(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, int fd,
		     uint64_t offset, uint64_t size)
{
	return __vm_set_user_memory_region2(vm, slot, KVM_MEM_GUEST_MEMFD, gpa,
					    size, NULL, fd, offset);
}

static int release_vm(int fd, struct kvm_vm *vm)
{
	struct gmem_release_vm rel = { .vm_fd = vm->fd };

	return ioctl(fd, GMEM_RELEASE_VM, &rel);
}

/*
 * The file belongs to the VM it was created for, for life: another VM
 * cannot bind it, before its own VM has nor after its own VM deleted its
 * memslots (EINVAL, as for KVM's own files, never a GMEM_CREATE file's
 * EBUSY), GMEM_RELEASE_VM cannot let it go (EINVAL, with the memslots or
 * without), and the file keeps its VM alive after the VMM closed the VM's
 * fd.
 */
TEST_F(takeover, bound_to_its_vm)
{
	struct kvm_vm *a, *b;
	char vm_name[64];
	int vms, fd;

	gmem_takeover_param_set(true);
	a = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	b = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = vm_create_guest_memfd(a, SIZE, 0);
	ASSERT_TRUE(is_gmem(fd));

	EXPECT_EQ(-1, bind_slot(b, SLOT, GPA, fd, 0, SIZE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, bind_slot(a, SLOT, GPA, fd, 0, SZ_2M));
	/* Overlapping ranges of one file: EINVAL, as KVM's. */
	EXPECT_EQ(-1, bind_slot(a, SLOT + 1, GPA + SZ_2M, fd, 0, SZ_2M));
	EXPECT_EQ(EINVAL, errno);
	/* Past the end of the file: EINVAL. */
	EXPECT_EQ(-1, bind_slot(a, SLOT + 1, GPA + SZ_2M, fd, SZ_2M, SIZE));
	EXPECT_EQ(EINVAL, errno);
	/* Its VM cannot release it: EINVAL (not EBUSY), memslot or not. */
	EXPECT_EQ(-1, release_vm(fd, a));
	EXPECT_EQ(EINVAL, errno) TH_LOG("GMEM_RELEASE_VM with a memslot: %s",
					strerror(errno));
	/* Its VM's memslots gone, the file is still that VM's... */
	EXPECT_EQ(0, __vm_set_user_memory_region2(a, SLOT, 0, GPA, 0, NULL, -1, 0));
	snprintf(vm_name, sizeof(vm_name), "gmem-vm:\tkvm-%d\n", getpid());
	EXPECT_TRUE(fdinfo_has(fd, vm_name));
	EXPECT_EQ(-1, bind_slot(b, SLOT, GPA, fd, 0, SIZE));
	EXPECT_EQ(EINVAL, errno) TH_LOG("another VM's bind: %s", strerror(errno));
	/* ...for life: neither its VM nor another can release it. */
	EXPECT_EQ(-1, release_vm(fd, a));
	EXPECT_EQ(EINVAL, errno) TH_LOG("GMEM_RELEASE_VM by its VM: %s", strerror(errno));
	EXPECT_EQ(-1, release_vm(fd, b));
	EXPECT_EQ(EINVAL, errno) TH_LOG("GMEM_RELEASE_VM by another VM: %s",
					strerror(errno));
	EXPECT_TRUE(fdinfo_has(fd, vm_name));
	EXPECT_EQ(-1, bind_slot(b, SLOT, GPA, fd, 0, SIZE));
	EXPECT_EQ(EINVAL, errno) TH_LOG("another VM's bind after the release attempts: %s",
					strerror(errno));
	EXPECT_EQ(0, bind_slot(a, SLOT, GPA, fd, 0, SZ_2M));
	kvm_vm_free(b);

	vms = gmem_count_vms_vmalloc();
	kvm_vm_free(a);
	/* The file pins its VM: still there ... */
	EXPECT_EQ(vms, gmem_count_vms_vmalloc());
	close(fd);
	/* ... until the file is closed. */
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
}

/*
 * Stage 1: the guest reads what the host wrote with GMEM_WRITE into the
 * first page, then writes a pattern into every page.  Stage 2: it reads
 * the pattern back after the host punched and re-allocated the last
 * block (which reads zero).
 */
static void guest_code(void)
{
	uint64_t i;

	GUEST_ASSERT_EQ(*(volatile uint64_t *)GPA, 0x676d656dULL);
	for (i = 0; i < SIZE; i += PAGE_SIZE)
		*(volatile uint64_t *)(GPA + i) = i | 1;
	GUEST_SYNC(1);
	for (i = 0; i < SIZE - SZ_2M; i += PAGE_SIZE)
		GUEST_ASSERT_EQ(*(volatile uint64_t *)(GPA + i), i | 1);
	for (; i < SIZE; i += PAGE_SIZE)
		GUEST_ASSERT_EQ(*(volatile uint64_t *)(GPA + i), 0);
	GUEST_DONE();
}

/*
 * An unmodified VMM's sequence (KVM_CREATE_GUEST_MEMFD, memslot, private
 * attributes) runs its guest on gmem memory, and gmem's own ioctls work
 * on the fd it got from KVM.
 */
TEST_F_TIMEOUT(takeover, guest_runs, KVM_TEST_TIMEOUT)
{
	uint64_t magic = 0x676d656dULL;
	struct gmem_write w = { .offset = 0, .size = PAGE_SIZE };
	struct gmem_attributes attrs = { .offset = 0, .size = PAGE_SIZE };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	char *page;
	int fd;

	gmem_takeover_param_set(true);
	vm = vm_create_shape_with_one_vcpu(protected_shape, &vcpu, guest_code);
	fd = vm_create_guest_memfd(vm, SIZE, 0);
	ASSERT_TRUE(is_gmem(fd));

	/* GMEM_WRITE copies whole pages: a page holding the magic first. */
	page = calloc(1, PAGE_SIZE);
	ASSERT_NE(NULL, page);
	memcpy(page, &magic, sizeof(magic));
	w.user_addr = (uint64_t)(uintptr_t)page;
	ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w));
	ASSERT_EQ(0, ioctl(fd, GMEM_GET_ATTRIBUTES, &attrs));
	EXPECT_EQ(0, attrs.attributes);
	free(page);

	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA, SLOT, SIZE / PAGE_SIZE,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, GPA, GPA, SIZE / PAGE_SIZE);
	vm_mem_set_private(vm, GPA, SIZE);
	run_to_sync(vcpu, 1);
	EXPECT_EQ(SIZE, fdinfo_value(fd, "gmem-allocated"));

	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			       SIZE - SZ_2M, SZ_2M));
	EXPECT_EQ(SIZE - SZ_2M, fdinfo_value(fd, "gmem-allocated"));
	run_to_sync(vcpu, 0);
	EXPECT_EQ(SIZE, fdinfo_value(fd, "gmem-allocated"));
	kvm_vm_free(vm);
	close(fd);
}

/*
 * What gmem cannot serve stays KVM's, silently: a file larger than
 * max_file_size is KVM's own guest_memfd, counted in takeover_declined.
 */
TEST_F(takeover, too_big_left_to_kvm)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	unsigned long long taken = gmem_read_ull(TAKEN_OVER);
	unsigned long long declined = gmem_read_ull(DECLINED);
	char v[32];
	int fd;

	gmem_takeover_param_set(true);
	snprintf(v, sizeof(v), "%d", SZ_2M);
	gmem_write_str(MAX_SIZE_PARAM, v);
	fd = vm_create_guest_memfd(vm, SIZE, 0);
	EXPECT_FALSE(is_gmem(fd));
	EXPECT_EQ(taken, gmem_read_ull(TAKEN_OVER));
	EXPECT_EQ(declined + 1, gmem_read_ull(DECLINED));
	close(fd);
	fd = vm_create_guest_memfd(vm, SZ_2M, 0);
	EXPECT_TRUE(is_gmem(fd));
	EXPECT_EQ(taken + 1, gmem_read_ull(TAKEN_OVER));
	close(fd);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
