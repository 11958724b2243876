// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fault-injection sweeps over the KVM side of gmem: binding a gmem file
 * in a memslot, and a guest's first touch of a private page.  As in
 * gmem_failnth_test.c, the 1st, 2nd, 3rd, ... allocation of the call is
 * made to fail with /proc/thread-self/fail-nth (gmem_failnth.h) until
 * the call makes fewer allocations than that.  For every N:
 *  - KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD succeeds or
 *    fails with ENOMEM, and then leaves nothing behind: the same call
 *    without injection succeeds (a half-made binding would make it fail
 *    with EINVAL, "file bound elsewhere" or "ranges overlap");
 *  - KVM_RUN of a guest that writes a pattern to a private page it
 *    never touched (the page was punched out just before) and reads it
 *    back either reaches the guest's next sync, or fails with
 *    KVM_EXIT_MEMORY_FAULT at that page (ENOMEM: no page could be
 *    allocated, or EFAULT), or with ENOMEM from KVM's own allocations;
 *    run again without injection, the guest finds a zeroed page and
 *    reads back exactly what it wrote;
 *  - KVM_CREATE_GUEST_MEMFD with takeover on returns a gmem file or
 *    fails with ENOMEM (never falls back to KVM's own guest_memfd), and
 *    then leaves nothing behind: no file, no reference on the VM.
 * Once the VM and the files are closed, gmem's counters and the number
 * of VMs are back at their baseline.
 *
 * KVM_SET_USER_MEMORY_REGION2 binds the file (gmem's allocations), then
 * makes the memslot (KVM's), and unbinds the file when that fails.  On
 * x86 KVM allocates the memslot's large page tracking with vmalloc()
 * without __GFP_NOWARN, in kvm_arch_prepare_memory_region(): a failure
 * injected there logs a warning with a stack trace, which the test VM
 * counts as a kernel splat.  The bind sweep leaves out the allocations
 * made under that function (the stack trace filter of fault injection),
 * and with them the unbind after a failure there.
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
#include "gmem_leak.h"
#include "gmem_failnth.h"
#include <gmem.h>

#define SLOT		10
#define SLOT_GPA	(1ULL << 32)
#define SLOT_SIZE	SZ_2M
/* A page in the middle: the file's xarray needs a node for it. */
#define TOUCH_OFF	(100 * PAGE_SIZE)
#define TOUCH_GPA	(SLOT_GPA + TOUCH_OFF)

FIXTURE(failnth) {
	struct gmem_failnth fi;
	unsigned long long files0, bytes0;
	int vms0, structs0;
	char blocks[16];
	int takeover;		/* to put back; -1: untouched */
};

/*
 * pages: files without blocks, a fault allocates its page.  blocks: a
 * fault allocates the page's 2 MiB block (one more injection point, and
 * xarray nodes for 512 indices), or its page when that fails.
 */
FIXTURE_VARIANT(failnth) {
	const char *blocks;
};

FIXTURE_VARIANT_ADD(failnth, pages) {
	.blocks = "never",
};

FIXTURE_VARIANT_ADD(failnth, blocks) {
	.blocks = "always",
};

FIXTURE_SETUP(failnth)
{
	char why[256];
	int r;

	self->fi.fd = -1;
	self->fi.saved = 0;
	self->blocks[0] = '\0';
	self->takeover = -1;
	REQUIRE_GMEM_KVM();
	gmem_blocks_param_get(self->blocks, sizeof(self->blocks));
	gmem_blocks_param_set(variant->blocks);
	r = gmem_failnth_setup(&self->fi, why, sizeof(why));
	if (r == -ENOENT)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, r) TH_LOG("fault injection setup: %s", why);
	self->files0 = gmem_read_ull(GMEM_SYSFS_FILES);
	self->bytes0 = gmem_read_ull(GMEM_SYSFS_BYTES);
	self->vms0 = gmem_count_vms_debugfs();
	self->structs0 = gmem_count_vms_vmalloc();
}

FIXTURE_TEARDOWN(failnth)
{
	gmem_failnth_reject(NULL);
	gmem_failnth_restore(&self->fi);
	if (self->blocks[0])
		gmem_blocks_param_set(self->blocks);
	if (self->takeover >= 0)
		gmem_takeover_param_set(self->takeover);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Everything closed: gmem's counters and the VM count back at the
 * baseline.  A VM goes when its last reference does, which may be the
 * release of a gmem file; allow a moment for it.
 */
#define expect_baseline(_metadata, self, what, n) do {			\
	unsigned long long __files, __bytes;				\
	int __vms, __structs, __tries;					\
	for (__tries = 0; __tries < 100; __tries++) {			\
		__files = gmem_read_ull(GMEM_SYSFS_FILES);		\
		__bytes = gmem_read_ull(GMEM_SYSFS_BYTES);		\
		__vms = gmem_count_vms_debugfs();			\
		__structs = gmem_count_vms_vmalloc();			\
		if (__files == (self)->files0 && __bytes == (self)->bytes0 && \
		    __vms == (self)->vms0 && __structs == (self)->structs0) \
			break;						\
		usleep(20000);						\
	}								\
	ASSERT_EQ((self)->files0, __files)				\
		TH_LOG("%s, fail-nth %u, all closed: " GMEM_SYSFS_FILES " %llu, expected %llu", \
		       what, n, __files, (self)->files0);		\
	ASSERT_EQ((self)->bytes0, __bytes)				\
		TH_LOG("%s, fail-nth %u, all closed: " GMEM_SYSFS_BYTES " %llu, expected %llu", \
		       what, n, __bytes, (self)->bytes0);		\
	ASSERT_EQ((self)->vms0, __vms)					\
		TH_LOG("%s, fail-nth %u, all closed: %d VMs in debugfs, expected %d", \
		       what, n, __vms, (self)->vms0);			\
	ASSERT_EQ((self)->structs0, __structs)				\
		TH_LOG("%s, fail-nth %u, all closed: %d struct kvm in vmallocinfo, expected %d", \
		       what, n, __structs, (self)->structs0);		\
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

/*
 * KVM_SET_USER_MEMORY_REGION2 as a bare ioctl: the library's wrapper
 * checks the capability first, which opens /dev/kvm, an allocation.
 * @size 0 deletes the memslot.
 */
static int set_region(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size,
		      int fd)
{
	struct kvm_userspace_memory_region2 region = {
		.slot = slot,
		.flags = size ? KVM_MEM_GUEST_MEMFD : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.guest_memfd = size ? fd : 0,
	};

	return ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, &region);
}

/*
 * KVM_SET_USER_MEMORY_REGION2 binding a fresh gmem file to a fresh VM.
 * The ABI documents no errno for running out of memory here other than
 * ENOMEM.
 */
TEST_F_TIMEOUT(failnth, bind, 900)
{
	unsigned int n, points = 0, failed = 0;
	double t0 = now();
	long l = 0;
	int rj;

	rj = gmem_failnth_reject("kvm_arch_prepare_memory_region");
	if (rj == -ENOENT)
		SKIP(return, "no stack trace filter for fault injection, or no kvm_arch_prepare_memory_region(): KVM's vmalloc()s would warn");
	ASSERT_EQ(0, rj) TH_LOG("setting the stack trace filter: %s", strerror(-rj));

	for (n = 1; n <= FAILNTH_MAX; n++) {
		struct kvm_vm *vm;
		int fd, r, err;

		vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
		fd = gmem_file(SLOT_SIZE, 0);

		arm(_metadata, self, n);
		r = set_region(vm, SLOT, SLOT_GPA, SLOT_SIZE, fd);
		err = r ? errno : 0;
		l = left(_metadata, self);

		if (r) {
			failed++;
			ASSERT_EQ(ENOMEM, err)
				TH_LOG("KVM_SET_USER_MEMORY_REGION2 with fail-nth %u: expected success or ENOMEM, got %s",
				       n, strerror(err));
			r = set_region(vm, SLOT, SLOT_GPA, SLOT_SIZE, fd);
			ASSERT_EQ(0, r)
				TH_LOG("KVM_SET_USER_MEMORY_REGION2 without injection after ENOMEM at fail-nth %u: %s",
				       n, strerror(errno));
		}
		/* Bound: the memslot works both ways, and another cannot overlap. */
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SLOT_SIZE))
			TH_LOG("fallocate of a bound file: %s", strerror(errno));
		errno = 0;
		r = set_region(vm, SLOT + 1, 2 * SLOT_GPA, SLOT_SIZE, fd);
		ASSERT_EQ(-1, r);
		ASSERT_EQ(EINVAL, errno)
			TH_LOG("a second memslot on the same file range after fail-nth %u: expected EINVAL, got %s",
			       n, strerror(errno));
		r = set_region(vm, SLOT, SLOT_GPA, 0, -1);
		ASSERT_EQ(0, r) TH_LOG("deleting the memslot: %s", strerror(errno));

		kvm_vm_free(vm);
		close(fd);
		expect_baseline(_metadata, self, "bind", n);
		if (l) {
			points = n - l;
			break;
		}
		points = n;
	}
	if (!l)
		TH_LOG("bind: stopped after %u injection points, the path has more",
		       FAILNTH_MAX);
	TH_LOG("KVM_SET_USER_MEMORY_REGION2: %u injection points, %u failed calls (%.1f s)",
	       points, failed, now() - t0);
}

/*
 * KVM_CREATE_GUEST_MEMFD served by gmem (takeover on): KVM allocates the
 * fd, gmem the file, KVM binds it to the VM.  A failure anywhere must
 * leave no file and no reference on the VM (the VM count at the baseline
 * after closing it proves the latter), and must not fall back to KVM's
 * own guest_memfd: the call fails with ENOMEM.
 */
TEST_F_TIMEOUT(failnth, takeover_create, 900)
{
	struct kvm_create_guest_memfd args = { .size = SLOT_SIZE };
	unsigned int n, points = 0, failed = 0, made = 0;
	unsigned long long taken0;
	double t0 = now();
	long l = 0;
	int fd, r;

	r = gmem_takeover_param_get();
	if (r < 0)
		SKIP(return, "gmem has no takeover parameter");
	self->takeover = r;
	gmem_takeover_param_set(true);
	taken0 = gmem_read_ull("/sys/class/misc/gmem/takeover_files");

	for (n = 1; n <= FAILNTH_MAX; n++) {
		struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);

		arm(_metadata, self, n);
		fd = ioctl(vm->fd, KVM_CREATE_GUEST_MEMFD, &args);
		r = fd < 0 ? errno : 0;
		l = left(_metadata, self);
		if (fd < 0) {
			failed++;
			ASSERT_EQ(ENOMEM, r)
				TH_LOG("KVM_CREATE_GUEST_MEMFD with fail-nth %u: expected a file or ENOMEM, got %s",
				       n, strerror(r));
		} else {
			ASSERT_LE(0, fdinfo_value(fd, "gmem-id"))
				TH_LOG("fail-nth %u: not a gmem file", n);
			made++;
			close(fd);
		}
		kvm_vm_free(vm);
		expect_baseline(_metadata, self, "takeover create", n);
		if (l) {
			points = n - l;
			break;
		}
		points = n;
	}
	EXPECT_EQ(made, gmem_read_ull("/sys/class/misc/gmem/takeover_files") - taken0);
	TH_LOG("KVM_CREATE_GUEST_MEMFD (takeover): %u injection points, %u failed calls (%.1f s)",
	       points, failed, now() - t0);
}

/*
 * The guest: at every round, after the host punched the page out, a
 * first write, a check that the rest of the page is zero, then the
 * whole page written and read back.
 */
static uint64_t pattern(uint64_t round, uint64_t i)
{
	return (round << 32) ^ (i * 0x9e3779b97f4a7c15ULL);
}

/* With @warm_up, the guest syncs once before its first touch. */
static void guest_touch(uint64_t warm_up)
{
	volatile uint64_t *p = (volatile uint64_t *)TOUCH_GPA;
	uint64_t round, i;

	if (warm_up)
		GUEST_SYNC(0);
	for (round = 1;; round++) {
		p[0] = pattern(round, 0);
		for (i = 1; i < PAGE_SIZE / 8; i++)
			__GUEST_ASSERT(!p[i], "round %lu: word %lu of a fresh page is %#lx",
				       round, i, p[i]);
		for (i = 1; i < PAGE_SIZE / 8; i++)
			p[i] = pattern(round, i);
		for (i = 0; i < PAGE_SIZE / 8; i++)
			__GUEST_ASSERT(p[i] == pattern(round, i),
				       "round %lu: word %lu reads %#lx, wrote %#lx",
				       round, i, p[i], pattern(round, i));
		GUEST_SYNC(round);
	}
}

/* The guest stopped at GUEST_SYNC(@round). */
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

/* Run without injection to the guest's GUEST_SYNC(@round). */
static void run_to_round(struct kvm_vcpu *vcpu, uint64_t round)
{
	vcpu_run(vcpu);
	expect_sync(vcpu, round);
}

/* A guest with one vCPU and one private memslot on a new gmem file. */
static struct kvm_vm *touch_vm(struct kvm_vcpu **vcpu, int *fd, bool warm_up)
{
	struct kvm_vm *vm;

	vm = vm_create_shape_with_one_vcpu(protected_shape, vcpu, guest_touch);
	vcpu_args_set(*vcpu, 1, warm_up);
	*fd = gmem_file(SLOT_SIZE, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, SLOT_GPA, SLOT, SLOT_SIZE / PAGE_SIZE,
		   KVM_MEM_GUEST_MEMFD, *fd, 0);
	virt_map(vm, SLOT_GPA, SLOT_GPA, SLOT_SIZE / PAGE_SIZE);
	vm_mem_set_private(vm, SLOT_GPA, SLOT_SIZE);
	return vm;
}

/*
 * After the guest touched its page: gmem holds that page, or without
 * injection on a file with blocks its whole block (a failed block falls
 * back to the page).
 */
#define expect_touched(_metadata, self, variant, n, r, err) do {	\
	unsigned long long __b = gmem_read_ull(GMEM_SYSFS_BYTES) - (self)->bytes0; \
	bool __blocks = !strcmp((variant)->blocks, "always");		\
	ASSERT_TRUE(__b == PAGE_SIZE || (__blocks && __b == SLOT_SIZE))	\
		TH_LOG("fail-nth %u (%s): gmem holds %llu bytes, expected one page%s", \
		       (n), (r) ? strerror(err) : "success", __b,	\
		       __blocks ? " or one block" : "");		\
} while (0)

/* How the KVM_RUNs under injection ended. */
struct run_stats {
	unsigned int ok, fault_enomem, fault_efault, other_enomem;
};

/*
 * The KVM_RUN under injection that should have reached the guest's
 * GUEST_SYNC(@round) returned @r with @err: a sync, or a documented
 * failure.  After a failure the vCPU runs again without injection and
 * must get there, the guest having checked the page.
 */
static void check_run(struct __test_metadata *_metadata, struct kvm_vcpu *vcpu, int r,
		      int err, unsigned int n, uint64_t round, struct run_stats *st)
{
	struct kvm_run *run = vcpu->run;

	if (!r) {
		st->ok++;
		expect_sync(vcpu, round);
		return;
	}
	if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		ASSERT_TRUE(err == ENOMEM || err == EFAULT)
			TH_LOG("KVM_RUN with fail-nth %u: KVM_EXIT_MEMORY_FAULT with %s, expected ENOMEM or EFAULT",
			       n, strerror(err));
		ASSERT_EQ(KVM_MEMORY_EXIT_FLAG_PRIVATE, run->memory_fault.flags);
		ASSERT_EQ(TOUCH_GPA, run->memory_fault.gpa)
			TH_LOG("KVM_RUN with fail-nth %u: memory fault at gpa %#llx, expected %#llx",
			       n, (unsigned long long)run->memory_fault.gpa, TOUCH_GPA);
		ASSERT_EQ(PAGE_SIZE, run->memory_fault.size);
		if (err == ENOMEM)
			st->fault_enomem++;
		else
			st->fault_efault++;
	} else {
		ASSERT_EQ(ENOMEM, err)
			TH_LOG("KVM_RUN with fail-nth %u: %s, exit reason %u, expected ENOMEM or a memory fault exit",
			       n, strerror(err), run->exit_reason);
		st->other_enomem++;
	}
	/* Without injection the guest carries on where it was. */
	run_to_round(vcpu, round);
}

#define log_stats(what, points, st, t0) do {				\
	TH_LOG("%s: %u injection points (%.1f s)", what, points, now() - (t0)); \
	TH_LOG("KVM_RUN reached the guest's sync %u times, failed %u times", \
	       (st)->ok, (st)->fault_enomem + (st)->fault_efault + (st)->other_enomem); \
	TH_LOG("failures: memory fault exit with ENOMEM %u, with EFAULT %u; other ENOMEM %u", \
	       (st)->fault_enomem, (st)->fault_efault, (st)->other_enomem); \
} while (0)

/*
 * One guest, warmed up (its code, stack and page tables are mapped): for
 * every N the private page is punched out and the guest touches it
 * again, a first touch for gmem.
 */
TEST_F_TIMEOUT(failnth, private_fault, 900)
{
	struct run_stats st = { 0 };
	unsigned int n, points = 0;
	double t0 = now();
	struct kvm_vcpu *vcpu;
	unsigned long long held;
	struct kvm_vm *vm;
	long l = 0;
	int fd;

	vm = touch_vm(&vcpu, &fd, true);
	run_to_round(vcpu, 0);
	/* Nothing of the host's memory faults in under injection. */
	if (mlockall(MCL_CURRENT))
		TH_LOG("mlockall: %s (page faults may take injection points)",
		       strerror(errno));

	for (n = 1; n <= FAILNTH_MAX; n++) {
		int r, err;

		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				       TOUCH_OFF, PAGE_SIZE))
			TH_LOG("punch: %s", strerror(errno));
		/* Nothing, or the rest of the block (the page is held). */
		held = gmem_read_ull(GMEM_SYSFS_BYTES) - self->bytes0;
		ASSERT_TRUE(!held || held == SLOT_SIZE - PAGE_SIZE)
			TH_LOG("after the punch gmem holds %llu bytes", held);

		arm(_metadata, self, n);
		r = __vcpu_run(vcpu);
		err = r ? errno : 0;
		l = left(_metadata, self);

		check_run(_metadata, vcpu, r, err, n, n, &st);
		/* The page the guest touched, or its block; nothing else. */
		expect_touched(_metadata, self, variant, n, r, err);
		if (l) {
			points = n - l;
			break;
		}
		points = n;
	}
	if (!l)
		TH_LOG("private fault: stopped after %u injection points, the path has more",
		       FAILNTH_MAX);
	kvm_vm_free(vm);
	close(fd);
	expect_baseline(_metadata, self, "private fault", n);
	log_stats("KVM_RUN, warm guest, first touch of a private page", points, &st, t0);
}

/*
 * A new guest for every N, whose very first KVM_RUN touches the private
 * page: KVM's own allocations for a vCPU's first run and first faults
 * are on the path too.
 */
TEST_F_TIMEOUT(failnth, first_run, 900)
{
	struct run_stats st = { 0 };
	unsigned int n, points = 0;
	double t0 = now();
	long l = 0;

	for (n = 1; n <= FAILNTH_MAX; n++) {
		struct kvm_vcpu *vcpu;
		struct kvm_vm *vm;
		int fd, r, err;

		vm = touch_vm(&vcpu, &fd, false);
		arm(_metadata, self, n);
		r = __vcpu_run(vcpu);
		err = r ? errno : 0;
		l = left(_metadata, self);

		check_run(_metadata, vcpu, r, err, n, 1, &st);
		expect_touched(_metadata, self, variant, n, r, err);
		kvm_vm_free(vm);
		close(fd);
		expect_baseline(_metadata, self, "first run", n);
		if (l) {
			points = n - l;
			break;
		}
		points = n;
	}
	if (!l)
		TH_LOG("first run: stopped after %u injection points, the path has more",
		       FAILNTH_MAX);
	log_stats("KVM_RUN, new guest's first run touching a private page", points, &st, t0);
}

TEST_HARNESS_MAIN
