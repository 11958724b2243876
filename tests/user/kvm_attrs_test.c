// SPDX-License-Identifier: GPL-2.0-only
/*
 * Real KVM guests on gmem files with page attributes: what each
 * attribute does to a guest fault (NOALLOC, USERFAULT, POISON), a
 * post-copy run served with GMEM_WRITE, GMEM_WRITE racing a guest's
 * first touch, attribute changes racing vCPU faults, and GMEM_WRITE's
 * refusal of pages a guest was given.
 *
 * Guests run under KVM_X86_SW_PROTECTED_VM; the KVM selftests library
 * of the kernel tree sets them up.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "gmem_attrs_util.h"

#define BASE_GPA	(1ULL << 32)
#define BASE_SLOT	10
#define N		GMEM_ATTR_NOALLOC
#define U		GMEM_ATTR_USERFAULT
#define X		GMEM_ATTR_POISON

FIXTURE(attrs) {
};

FIXTURE_SETUP(attrs)
{
	REQUIRE_GMEM_KVM();
}

FIXTURE_TEARDOWN(attrs)
{
}

/* Asserting helpers. */
static void set_attrs(int fd, uint64_t offset, uint64_t size, uint64_t attrs,
		      uint64_t mask)
{
	TEST_ASSERT(!__gmem_set_attrs(fd, offset, size, attrs, mask),
		    "GMEM_SET_ATTRIBUTES [%#lx, +%#lx) %#lx/%#lx: %s", offset, size,
		    attrs, mask, strerror(errno));
}

static uint64_t get_attrs(int fd, uint64_t offset)
{
	struct gmem_attributes a;

	TEST_ASSERT(!__gmem_get_attrs(fd, offset, &a), "GMEM_GET_ATTRIBUTES %#lx: %s",
		    offset, strerror(errno));
	return a.attributes;
}

static void gmem_write(int fd, uint64_t offset, uint64_t size, const void *src)
{
	uint64_t written = 0;

	TEST_ASSERT(!__gmem_write(fd, offset, size, src, &written),
		    "GMEM_WRITE [%#lx, +%#lx): %s (%#lx written)", offset, size,
		    strerror(errno), written);
	TEST_ASSERT_EQ(written, size);
}

/* What qword @j of page @i holds when filled with @seed (0: zeros). */
static inline uint64_t pattern(uint64_t seed, uint64_t i, uint64_t j)
{
	return seed ? seed + (i << 20) + j : 0;
}

static void fill(void *buf, uint64_t seed, uint64_t first_page, uint64_t npages)
{
	uint64_t *q = buf, i, j;

	for (i = 0; i < npages; i++)
		for (j = 0; j < PAGE_SIZE / 8; j++)
			q[i * PAGE_SIZE / 8 + j] = pattern(seed, first_page + i, j);
}

/*
 * The guest of most tests.  Phase 1 (@first): FIRST_NONE does nothing,
 * FIRST_ZERO checks that every page reads as zeros, FIRST_FILL fills
 * every page with pattern(@fill_seed); then GUEST_SYNC(1).  Phase 2:
 * every page must hold pattern(@seed), then GUEST_DONE.
 */
enum { FIRST_NONE, FIRST_ZERO, FIRST_FILL };

static void guest_check(uint64_t base, uint64_t npages, uint64_t seed)
{
	uint64_t i, j;

	for (i = 0; i < npages; i++)
		for (j = 0; j < PAGE_SIZE / 8; j++) {
			uint64_t v = ((volatile uint64_t *)(base + i * PAGE_SIZE))[j];

			__GUEST_ASSERT(v == pattern(seed, i, j),
				       "page %lu qword %lu: %#lx, expected %#lx",
				       i, j, v, pattern(seed, i, j));
		}
}

static void guest_code(uint64_t base, uint64_t npages, uint64_t first,
		       uint64_t fill_seed, uint64_t seed)
{
	uint64_t i, j;

	if (first == FIRST_ZERO)
		guest_check(base, npages, 0);
	if (first == FIRST_FILL)
		for (i = 0; i < npages; i++)
			for (j = 0; j < PAGE_SIZE / 8; j++)
				((uint64_t *)(base + i * PAGE_SIZE))[j] =
					pattern(fill_seed, i, j);
	GUEST_SYNC(1);
	guest_check(base, npages, seed);
	GUEST_DONE();
}

struct guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	uint64_t npages;
};

/*
 * A VM with one vCPU running @code and @npages private pages at BASE_GPA
 * from a new gmem file created with @flags.
 */
static void guest_create(struct guest *g, void *code, uint64_t npages,
			 uint64_t flags)
{
	g->vm = vm_create_shape_with_one_vcpu(protected_shape, &g->vcpu, code);
	g->npages = npages;
	g->fd = gmem_file(npages * PAGE_SIZE, flags);
	vm_mem_add(g->vm, VM_MEM_SRC_ANONYMOUS, BASE_GPA, BASE_SLOT, npages,
		   KVM_MEM_GUEST_MEMFD, g->fd, 0);
	virt_map(g->vm, BASE_GPA, BASE_GPA, npages);
	vm_mem_set_private(g->vm, BASE_GPA, npages * PAGE_SIZE);
}

static void guest_destroy(struct guest *g)
{
	kvm_vm_free(g->vm);
	close(g->fd);
}

/*
 * Run the vCPU once.  Returns the ucall (UCALL_SYNC or UCALL_DONE, with
 * its arguments in *@uc if not NULL), or -errno when KVM_RUN failed with
 * a private memory fault exit, whose fields are checked: a page of the
 * gmem range, private, one page.
 */
static int __run(struct kvm_vcpu *vcpu, struct ucall *out)
{
	struct kvm_run *r = vcpu->run;
	struct ucall local, *uc = out ? out : &local;

	if (_vcpu_run(vcpu)) {
		int err = errno;

		TEST_ASSERT(err == EFAULT || err == EHWPOISON,
			    "KVM_RUN: errno %d (%s), expected EFAULT or EHWPOISON",
			    err, strerror(err));
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MEMORY_FAULT);
		TEST_ASSERT_EQ(r->memory_fault.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE);
		TEST_ASSERT_EQ(r->memory_fault.size, PAGE_SIZE);
		TEST_ASSERT(r->memory_fault.gpa >= BASE_GPA &&
			    !(r->memory_fault.gpa % PAGE_SIZE),
			    "memory fault at gpa %#llx", r->memory_fault.gpa);
		return -err;
	}
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(*uc);
		break;
	case UCALL_SYNC:
		return UCALL_SYNC;
	case UCALL_DONE:
		return UCALL_DONE;
	default:
		TEST_FAIL("unexpected ucall %lu", uc->cmd);
	}
	return 0;
}

static int run(struct kvm_vcpu *vcpu)
{
	return __run(vcpu, NULL);
}

/* Run until a memory fault exit; check its errno and page. */
static void expect_exit(struct guest *g, int err, uint64_t page)
{
	int r = run(g->vcpu);

	TEST_ASSERT(r == -err, "vCPU: %d, expected a memory fault exit with %s",
		    r, err == EFAULT ? "EFAULT" : "EHWPOISON");
	TEST_ASSERT_EQ(g->vcpu->run->memory_fault.gpa, BASE_GPA + page * PAGE_SIZE);
}

static void expect_ucall(struct guest *g, int ucall)
{
	int r = run(g->vcpu);

	TEST_ASSERT(r == ucall, "vCPU: %d, expected ucall %d", r, ucall);
}

/*
 * NOALLOC: a fault on a hole exits without allocating; allocated pages
 * are not affected; once the VMM allocates (fallocate, or GMEM_WRITE)
 * the guest proceeds.
 */
TEST_F_TIMEOUT(attrs, noalloc, KVM_TEST_TIMEOUT)
{
	const uint64_t seed = 0x1000;
	char *src = malloc(4 * PAGE_SIZE);
	struct guest g;

	TEST_ASSERT(src, "malloc");
	guest_create(&g, guest_code, 4, 0);
	vcpu_args_set(g.vcpu, 5, BASE_GPA, 4, FIRST_NONE, 0, seed);
	set_attrs(g.fd, 0, 4 * PAGE_SIZE, N, N);
	TEST_ASSERT_EQ(get_attrs(g.fd, 0), N);
	/* Page 0 exists before the guest runs: no exit for it. */
	fill(src, seed, 0, 4);
	gmem_write(g.fd, 0, PAGE_SIZE, src);
	expect_ucall(&g, UCALL_SYNC);

	expect_exit(&g, EFAULT, 1);
	expect_exit(&g, EFAULT, 1);	/* Still a hole: again. */
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), PAGE_SIZE);
	gmem_write(g.fd, PAGE_SIZE, PAGE_SIZE, src + PAGE_SIZE);

	expect_exit(&g, EFAULT, 2);
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), 2 * PAGE_SIZE);
	gmem_write(g.fd, 2 * PAGE_SIZE, 2 * PAGE_SIZE, src + 2 * PAGE_SIZE);
	expect_ucall(&g, UCALL_DONE);
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), 4 * PAGE_SIZE);
	guest_destroy(&g);

	/* fallocate fills a hole as well; the guest then reads zeros. */
	guest_create(&g, guest_code, 1, GMEM_CREATE_NOALLOC);
	vcpu_args_set(g.vcpu, 5, BASE_GPA, 1, FIRST_NONE, 0, 0);
	expect_ucall(&g, UCALL_SYNC);
	expect_exit(&g, EFAULT, 0);
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), 0);
	TEST_ASSERT(!fallocate(g.fd, FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE), "fallocate: %s",
		    strerror(errno));
	expect_ucall(&g, UCALL_DONE);
	guest_destroy(&g);
	free(src);
}

/*
 * USERFAULT: a fault exits even when the page exists and was mapped
 * (setting the bit zapped it); GMEM_WRITE fills the page, clearing the
 * bit lets the guest see the data.
 */
TEST_F_TIMEOUT(attrs, userfault, KVM_TEST_TIMEOUT)
{
	const uint64_t seed = 0x2000;
	char *src = malloc(2 * PAGE_SIZE);
	struct guest g;
	int i;

	TEST_ASSERT(src, "malloc");
	fill(src, seed, 0, 2);
	guest_create(&g, guest_code, 2, 0);
	vcpu_args_set(g.vcpu, 5, BASE_GPA, 2, FIRST_ZERO, 0, seed);
	/* The guest maps both pages (zeros) in phase 1. */
	expect_ucall(&g, UCALL_SYNC);
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), 2 * PAGE_SIZE);
	/* The guest has them: GMEM_WRITE may not touch them. */
	errno = 0;
	TEST_ASSERT(__gmem_write(g.fd, 0, PAGE_SIZE, src, NULL) == -1 && errno == EPERM,
		    "GMEM_WRITE of a page the guest has: errno %d, expected EPERM", errno);

	set_attrs(g.fd, 0, 2 * PAGE_SIZE, U, U);
	for (i = 0; i < 2; i++) {
		expect_exit(&g, EFAULT, i);
		TEST_ASSERT_EQ(get_attrs(g.fd, i * PAGE_SIZE), U);
		gmem_write(g.fd, i * PAGE_SIZE, PAGE_SIZE, src + i * PAGE_SIZE);
		/* Written, but still USERFAULT: still an exit. */
		expect_exit(&g, EFAULT, i);
		set_attrs(g.fd, i * PAGE_SIZE, PAGE_SIZE, 0, U);
	}
	expect_ucall(&g, UCALL_DONE);
	/* Nothing allocated beyond the two pages. */
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), 2 * PAGE_SIZE);
	guest_destroy(&g);
	free(src);
}

/*
 * POISON: KVM_RUN fails with EHWPOISON, also for a page the guest has
 * mapped; POISON wins over USERFAULT; clearing it lets the guest go on
 * with the data it had.
 */
TEST_F_TIMEOUT(attrs, poison, KVM_TEST_TIMEOUT)
{
	const uint64_t seed = 0x3000;
	struct guest g;

	guest_create(&g, guest_code, 2, 0);
	vcpu_args_set(g.vcpu, 5, BASE_GPA, 2, FIRST_FILL, seed, seed);
	expect_ucall(&g, UCALL_SYNC);

	set_attrs(g.fd, PAGE_SIZE, PAGE_SIZE, X | U, X | U);
	TEST_ASSERT_EQ(get_attrs(g.fd, PAGE_SIZE), X | U);
	expect_exit(&g, EHWPOISON, 1);
	set_attrs(g.fd, PAGE_SIZE, PAGE_SIZE, 0, U);
	expect_exit(&g, EHWPOISON, 1);
	expect_exit(&g, EHWPOISON, 1);
	set_attrs(g.fd, PAGE_SIZE, PAGE_SIZE, 0, X);
	expect_ucall(&g, UCALL_DONE);
	guest_destroy(&g);
}

/*
 * A real memory error (memory_failure(), through the gmem_inject test
 * module) on one page of a populated 2 MiB block.
 */
#define INJECT_DIR	"/sys/kernel/debug/gmem_inject"
#define INJECT_FILE	INJECT_DIR "/hwpoison"
#define KPF_BUDDY	10
#define KPF_HWPOISON	19

static void guest_touch_two(uint64_t base, uint64_t first, uint64_t second)
{
	((volatile uint64_t *)(base + first * PAGE_SIZE))[0] = 0x1111;
	GUEST_SYNC(1);
	((volatile uint64_t *)(base + second * PAGE_SIZE))[0] = 0x2222;
	GUEST_DONE();
}

/* Poison page @page of @fd; returns its pfn. */
static uint64_t inject_hwpoison(int fd, uint64_t page)
{
	char buf[64];
	int len, dfd;
	ssize_t n;

	dfd = open(INJECT_FILE, O_RDWR);
	TEST_ASSERT(dfd >= 0, "open %s: %s", INJECT_FILE, strerror(errno));
	len = snprintf(buf, sizeof(buf), "%d %lu", fd, (uint64_t)(page * PAGE_SIZE));
	TEST_ASSERT(write(dfd, buf, len) == len, "write '%s' to %s: %s", buf,
		    INJECT_FILE, strerror(errno));
	n = pread(dfd, buf, sizeof(buf) - 1, 0);
	TEST_ASSERT(n > 0, "read %s: %s", INJECT_FILE, strerror(errno));
	buf[n] = '\0';
	close(dfd);
	return strtoull(buf, NULL, 10);
}

static uint64_t page_flags(uint64_t pfn)
{
	uint64_t flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	TEST_ASSERT(fd >= 0, "open /proc/kpageflags: %s", strerror(errno));
	TEST_ASSERT(pread(fd, &flags, 8, pfn * 8) == 8, "read /proc/kpageflags at pfn %#lx: %s",
		    pfn, strerror(errno));
	close(fd);
	return flags;
}

/*
 * The block is no longer mapped whole: the guest's touch of a neighbour
 * maps 4K, its touch of the poisoned page exits with EHWPOISON (every
 * time), and punching the page does not give it back to the page
 * allocator (it stays flagged, never on the buddy lists).
 */
TEST_F_TIMEOUT(attrs, hwpoison_in_block, KVM_TEST_TIMEOUT)
{
	const uint64_t bad = 7, good = 8;
	struct guest g;
	uint64_t pfn, flags;

	/* Loaded for this test only: it holds gmem, which others unload. */
	if (system("modprobe gmem_inject"))
		SKIP(return, "the gmem_inject test module cannot be loaded");
	guest_create(&g, guest_touch_two, SZ_2M / PAGE_SIZE, 0);
	vcpu_args_set(g.vcpu, 3, BASE_GPA, good, bad);
	TEST_ASSERT(!fallocate(g.fd, FALLOC_FL_KEEP_SIZE, 0, SZ_2M), "fallocate: %s",
		    strerror(errno));
	pfn = inject_hwpoison(g.fd, bad);

	expect_ucall(&g, UCALL_SYNC);
	TEST_ASSERT_EQ(vm_get_stat(g.vm, "pages_2m"), 0);
	expect_exit(&g, EHWPOISON, bad);
	expect_exit(&g, EHWPOISON, bad);

	TEST_ASSERT(!fallocate(g.fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			       bad * PAGE_SIZE, PAGE_SIZE), "punch: %s", strerror(errno));
	flags = page_flags(pfn);
	TEST_ASSERT(flags & BIT(KPF_HWPOISON),
		    "pfn %#lx after the punch: flags %#lx, hwpoison is gone", pfn, flags);
	TEST_ASSERT(!(flags & BIT(KPF_BUDDY)),
		    "pfn %#lx after the punch: flags %#lx, back in the page allocator",
		    pfn, flags);
	guest_destroy(&g);
	TEST_ASSERT(!system("rmmod gmem_inject"), "rmmod gmem_inject failed");
}

/*
 * GMEM_WRITE refuses a page a guest was given until the page is punched;
 * then the page is new, and the guest sees what was written.
 */
TEST_F_TIMEOUT(attrs, write_after_punch, KVM_TEST_TIMEOUT)
{
	const uint64_t seed = 0x4000;
	char *src = malloc(PAGE_SIZE);
	uint64_t written = 1;
	struct guest g;

	TEST_ASSERT(src, "malloc");
	fill(src, seed, 0, 1);
	guest_create(&g, guest_code, 1, 0);
	vcpu_args_set(g.vcpu, 5, BASE_GPA, 1, FIRST_ZERO, 0, seed);
	expect_ucall(&g, UCALL_SYNC);
	errno = 0;
	TEST_ASSERT(__gmem_write(g.fd, 0, PAGE_SIZE, src, &written) == -1 &&
		    errno == EPERM, "GMEM_WRITE after a guest fault: errno %d, expected EPERM",
		    errno);
	TEST_ASSERT_EQ(written, 0);
	/* NOALLOC or POISON do not make the page writable. */
	set_attrs(g.fd, 0, PAGE_SIZE, N | X, N | X);
	errno = 0;
	TEST_ASSERT(__gmem_write(g.fd, 0, PAGE_SIZE, src, NULL) == -1 && errno == EPERM,
		    "GMEM_WRITE of a NOALLOC|POISON page: errno %d, expected EPERM", errno);
	set_attrs(g.fd, 0, PAGE_SIZE, 0, N | X);

	TEST_ASSERT(!fallocate(g.fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, PAGE_SIZE),
		    "punch: %s", strerror(errno));
	gmem_write(g.fd, 0, PAGE_SIZE, src);
	expect_ucall(&g, UCALL_DONE);
	guest_destroy(&g);
	free(src);
}

/*
 * Post-copy: every page starts USERFAULT (GMEM_CREATE_USERFAULT); two
 * vCPUs touch all of them, each of their threads serves its exits with
 * GMEM_WRITE of the page from the "source" and clears the bit, and the
 * guest checks every byte.
 */
#define PC_PAGES	64

static void guest_postcopy(uint64_t base, uint64_t npages, uint64_t first_page,
			   uint64_t seed)
{
	uint64_t i, j;

	for (i = 0; i < npages; i++)
		for (j = 0; j < PAGE_SIZE / 8; j++) {
			uint64_t p = first_page + i;
			uint64_t v = ((volatile uint64_t *)(base + p * PAGE_SIZE))[j];

			__GUEST_ASSERT(v == pattern(seed, p, j),
				       "page %lu qword %lu: %#lx, expected %#lx",
				       p, j, v, pattern(seed, p, j));
		}
	GUEST_DONE();
}

struct postcopy_vcpu {
	struct kvm_vcpu *vcpu;
	int fd;
	const char *source;
	unsigned long served;
};

static void *postcopy_vcpu_thread(void *arg)
{
	struct postcopy_vcpu *p = arg;
	uint64_t offset;
	int r;

	for (;;) {
		r = run(p->vcpu);
		if (r == UCALL_DONE)
			return NULL;
		TEST_ASSERT(r == -EFAULT, "vCPU: %d, expected a USERFAULT exit", r);
		offset = p->vcpu->run->memory_fault.gpa - BASE_GPA;
		TEST_ASSERT(offset < PC_PAGES * PAGE_SIZE, "exit at offset %#lx", offset);
		TEST_ASSERT_EQ(get_attrs(p->fd, offset), U);
		gmem_write(p->fd, offset, PAGE_SIZE, p->source + offset);
		set_attrs(p->fd, offset, PAGE_SIZE, 0, U);
		p->served++;
	}
}

TEST_F_TIMEOUT(attrs, postcopy, KVM_TEST_TIMEOUT)
{
	const uint64_t seed = 0x5000, half = PC_PAGES / 2;
	struct postcopy_vcpu p[2];
	struct gmem_attributes a;
	struct kvm_vcpu *vcpus[2];
	pthread_t threads[2];
	struct kvm_vm *vm;
	char *source;
	int fd, i;

	source = malloc(PC_PAGES * PAGE_SIZE);
	TEST_ASSERT(source, "malloc");
	fill(source, seed, 0, PC_PAGES);

	vm = __vm_create_with_vcpus(protected_shape, 2, 0, guest_postcopy, vcpus);
	fd = gmem_file(PC_PAGES * PAGE_SIZE, GMEM_CREATE_USERFAULT);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, BASE_GPA, BASE_SLOT, PC_PAGES,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, BASE_GPA, BASE_GPA, PC_PAGES);
	vm_mem_set_private(vm, BASE_GPA, PC_PAGES * PAGE_SIZE);

	for (i = 0; i < 2; i++) {
		p[i] = (struct postcopy_vcpu){ .vcpu = vcpus[i], .fd = fd,
					       .source = source };
		vcpu_args_set(vcpus[i], 4, BASE_GPA, half, i * half, seed);
		pthread_create(&threads[i], NULL, postcopy_vcpu_thread, &p[i]);
	}
	for (i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);

	TH_LOG("served %lu + %lu USERFAULT exits", p[0].served, p[1].served);
	TEST_ASSERT_EQ(p[0].served, half);
	TEST_ASSERT_EQ(p[1].served, half);
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(fd, "gmem-allocated"), PC_PAGES * PAGE_SIZE);
	/* Every bit cleared: one run without attributes. */
	TEST_ASSERT(!__gmem_get_attrs(fd, 0, &a), "GET: %s", strerror(errno));
	TEST_ASSERT_EQ(a.attributes, 0);
	TEST_ASSERT_EQ(a.size, PC_PAGES * PAGE_SIZE);
	kvm_vm_free(vm);
	close(fd);
	free(source);
}

/*
 * GMEM_WRITE races the guest's first touch of never-allocated pages: the
 * guest walks up, the writer walks down.  Each page is either written
 * first (the guest sees all of the data) or touched first (the guest
 * sees zeros and the write fails with EPERM), never half of each, and
 * never changes once the guest saw it.
 */
#define WR_PAGES	512

static uint8_t wr_seen[WR_PAGES];

static void guest_first_touch(uint64_t base, uint64_t npages, uint64_t seed)
{
	uint64_t i, j, zeros = 0;

	GUEST_SYNC(0);
	for (i = 0; i < npages; i++) {
		volatile uint64_t *q = (uint64_t *)(base + i * PAGE_SIZE);
		bool zero = q[0] == 0;

		for (j = 0; j < PAGE_SIZE / 8; j++)
			__GUEST_ASSERT(q[j] == (zero ? 0 : pattern(seed, i, j)),
				       "page %lu qword %lu: %#lx, qword 0 %#lx",
				       i, j, q[j], q[0]);
		wr_seen[i] = zero ? 1 : 2;
		zeros += zero;
	}
	/* Nothing changed under the guest's feet. */
	for (i = 0; i < npages; i++) {
		volatile uint64_t *q = (uint64_t *)(base + i * PAGE_SIZE);

		__GUEST_ASSERT((q[0] == 0) == (wr_seen[i] == 1) &&
			       (q[PAGE_SIZE / 8 - 1] == 0) == (wr_seen[i] == 1),
			       "page %lu changed after the guest saw it", i);
	}
	GUEST_SYNC(zeros);
	GUEST_DONE();
}

struct writer {
	int fd;
	const char *source;
	uint8_t result[WR_PAGES];	/* 1: EPERM, 2: written */
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	int i;

	for (i = WR_PAGES - 1; i >= 0; i--) {
		int r = __gmem_write(w->fd, (uint64_t)i * PAGE_SIZE, PAGE_SIZE,
				     w->source + (uint64_t)i * PAGE_SIZE, NULL);

		TEST_ASSERT(!r || errno == EPERM,
			    "GMEM_WRITE page %d: errno %d, expected success or EPERM",
			    i, errno);
		w->result[i] = r ? 1 : 2;
	}
	return NULL;
}

TEST_F_TIMEOUT(attrs, write_races_first_touch, KVM_TEST_TIMEOUT)
{
	const uint64_t seed = 0x6000;
	unsigned int i, eperm = 0;
	struct writer w = {};
	struct guest g;
	pthread_t thread;
	struct ucall uc;

	w.source = malloc(WR_PAGES * PAGE_SIZE);
	TEST_ASSERT(w.source, "malloc");
	fill((void *)w.source, seed, 0, WR_PAGES);
	guest_create(&g, guest_first_touch, WR_PAGES, 0);
	w.fd = g.fd;
	vcpu_args_set(g.vcpu, 3, BASE_GPA, WR_PAGES, seed);
	expect_ucall(&g, UCALL_SYNC);

	pthread_create(&thread, NULL, writer_thread, &w);
	TEST_ASSERT_EQ(__run(g.vcpu, &uc), UCALL_SYNC);
	pthread_join(thread, NULL);
	sync_global_from_guest(g.vm, wr_seen);
	for (i = 0; i < WR_PAGES; i++) {
		TEST_ASSERT(w.result[i] == wr_seen[i],
			    "page %u: the write %s, the guest saw %s", i,
			    w.result[i] == 2 ? "succeeded" : "failed",
			    wr_seen[i] == 2 ? "the data" : "zeros");
		eperm += w.result[i] == 1;
	}
	TEST_ASSERT_EQ(uc.args[1], eperm);
	TH_LOG("%u pages written before the guest's touch, %u touched first",
	       WR_PAGES - eperm, eperm);
	expect_ucall(&g, UCALL_DONE);
	guest_destroy(&g);
	free((void *)w.source);
}

/*
 * Attribute changes race vCPU faults: a thread keeps setting and
 * clearing USERFAULT, POISON and NOALLOC on every page while the guest
 * writes and reads them back.  The guest's data survives (no page is
 * lost or replaced), every exit is a well-formed memory fault, and the
 * guest only ever proceeds on pages whose attributes allow it.
 */
#define RACE_PAGES	16
#define RACE_CHANGES	400

static void guest_write_read(uint64_t base, uint64_t npages)
{
	uint64_t round, i;

	for (round = 1;; round++) {
		for (i = 0; i < npages; i++) {
			volatile uint64_t *p = (uint64_t *)(base + i * PAGE_SIZE);
			uint64_t prev = p[1];

			__GUEST_ASSERT(prev == round - 1,
				       "page %lu round %lu: read %#lx, expected %#lx",
				       i, round, prev, round - 1);
			p[1] = round;
			p[PAGE_SIZE / 8 - 1] = round;
		}
		GUEST_SYNC(round);
	}
}

struct toggler {
	int fd;
	atomic_bool stop;
	atomic_ulong exits;	/* memory fault exits the vCPU saw */
	atomic_ulong rounds;	/* rounds the guest finished */
	atomic_ulong changes;
	unsigned long blocking;
};

/* Wait until *@counter moves on from @old, or the guest is done. */
static void wait_for(struct toggler *t, atomic_ulong *counter, unsigned long old)
{
	while (atomic_load(counter) == old && !atomic_load(&t->stop))
		usleep(50);
}

static void *toggle_thread(void *arg)
{
	static const uint64_t cycle[] = { U, N, X, U | N, X | U, N };
	const uint64_t size = RACE_PAGES * PAGE_SIZE;
	struct toggler *t = arg;
	unsigned long exits, rounds;
	unsigned int i = 0;
	uint64_t a;

	while (atomic_load(&t->changes) < RACE_CHANGES) {
		a = cycle[i++ % ARRAY_SIZE(cycle)];
		exits = atomic_load(&t->exits);
		set_attrs(t->fd, 0, size, a, a);
		if (a & (U | X)) {
			/* The guest touches every page every round: it exits. */
			wait_for(t, &t->exits, exits);
			t->blocking++;
		} else {
			usleep(200);
		}
		rounds = atomic_load(&t->rounds);
		set_attrs(t->fd, 0, size, 0, GMEM_ATTRS);
		atomic_fetch_add(&t->changes, 2);
		/* Let the guest go on, and change again at varying points. */
		if (i & 1)
			wait_for(t, &t->rounds, rounds);
		else
			usleep(i % 7 * 100);
	}
	return NULL;
}

TEST_F_TIMEOUT(attrs, changes_race_faults, KVM_TEST_TIMEOUT)
{
	struct toggler t = { .stop = false };
	unsigned long efault = 0, ehwpoison = 0;
	struct guest g;
	pthread_t thread;
	int r;

	guest_create(&g, guest_write_read, RACE_PAGES, 0);
	vcpu_args_set(g.vcpu, 2, BASE_GPA, RACE_PAGES);
	TEST_ASSERT(!fallocate(g.fd, FALLOC_FL_KEEP_SIZE, 0, RACE_PAGES * PAGE_SIZE),
		    "fallocate: %s", strerror(errno));
	t.fd = g.fd;
	pthread_create(&thread, NULL, toggle_thread, &t);
	while (atomic_load(&t.changes) < RACE_CHANGES) {
		r = run(g.vcpu);
		if (r == UCALL_SYNC) {
			atomic_fetch_add(&t.rounds, 1);
			continue;
		}
		efault += r == -EFAULT;
		ehwpoison += r == -EHWPOISON;
		atomic_fetch_add(&t.exits, 1);
		usleep(50);
	}
	atomic_store(&t.stop, true);
	pthread_join(thread, NULL);
	TH_LOG("%lu attribute changes (%lu stopping the guest), %lu guest rounds",
	       atomic_load(&t.changes), t.blocking, atomic_load(&t.rounds));
	TH_LOG("%lu EFAULT and %lu EHWPOISON exits", efault, ehwpoison);
	TEST_ASSERT(efault > 0 && ehwpoison > 0 && efault + ehwpoison >= t.blocking,
		    "%lu changes that stop the guest, but %lu + %lu exits",
		    t.blocking, efault, ehwpoison);
	/* Only attributes changed: every page is still there. */
	TEST_ASSERT_EQ(gmem_attrs_fdinfo(g.fd, "gmem-allocated"), RACE_PAGES * PAGE_SIZE);
	guest_destroy(&g);
}

/*
 * A 1 TiB file bound to a 1 TiB memslot: setting and clearing an
 * attribute on all of it (which zaps the whole range) stays cheap.
 */
TEST_F_TIMEOUT(attrs, tib_memslot, KVM_TEST_TIMEOUT)
{
	const uint64_t size = 1ULL << 40;
	struct timespec t0, t1, t2;
	struct kvm_vm *vm;
	double set_us, clear_us;
	void *hva;
	int fd;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = gmem_file(size, 0);
	/* The shared view is never touched: reserve address space only. */
	hva = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	TEST_ASSERT(hva != MAP_FAILED, "mmap 1 TiB: %s", strerror(errno));
	TEST_ASSERT(!__vm_set_user_memory_region2(vm, BASE_SLOT, KVM_MEM_GUEST_MEMFD,
						  0, size, hva, fd, 0),
		    "1 TiB memslot: %s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	set_attrs(fd, 0, size, U, U);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	set_attrs(fd, 0, size, 0, U);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	set_us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
	clear_us = (t2.tv_sec - t1.tv_sec) * 1e6 + (t2.tv_nsec - t1.tv_nsec) / 1e3;
	TH_LOG("USERFAULT on a bound 1 TiB file: set %.0f us, clear %.0f us",
	       set_us, clear_us);
	TEST_ASSERT(set_us < 1e6 && clear_us < 1e6, "too slow: %.0f + %.0f us",
		    set_us, clear_us);
	kvm_vm_free(vm);
	munmap(hva, size);
	close(fd);
}

TEST_HARNESS_MAIN
