// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest faults racing allocations that fail.
 *
 * A guest's vCPUs write a mark to every page of a gmem file that is not
 * populated yet, while a host thread populates the same pages with
 * fallocate() under injected allocation failures (fail_page_alloc and
 * failslab, for that thread only): pages and 2 MiB blocks come from
 * both sides at once, and many of the fallocate calls fail with ENOMEM
 * half way.  Whatever the populate did, a page the guest was handed
 * must stay the guest's: after more failing calls, the guest reads back
 * every mark it wrote.  A page freed under the guest reads as zero or
 * as someone else's data here, and on the debug kernel KASAN and page
 * poisoning report the guest's writes into it.
 *
 *   GMEM_FAILURE_SECONDS=T  duration (default 20)
 *   GMEM_TEST_BACKEND=guest_memfd
 *                           the same on KVM's own guest_memfd, to compare
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define NR_VCPUS	2
#define FILE_SIZE	(8 * SZ_2M)
#define PAGES		(FILE_SIZE / PAGE_SIZE)
#define DATA_GPA	(1ULL << 32)
#define DATA_SLOT	10
#define MARK(round, page)	((uint64_t)(round) << 32 | (page) | (uint64_t)1 << 63)

/*
 * Phase 1: write MARK(@round) to each of this vCPU's pages (every
 * NR_VCPUS-th) and read it back.  Phase 2, after the host made more
 * populates fail: every mark is still there.
 */
static void guest_code(uint64_t vcpu)
{
	uint64_t round, i;

	for (round = 1;; round++) {
		for (i = vcpu; i < PAGES; i += NR_VCPUS) {
			volatile uint64_t *p = (uint64_t *)(DATA_GPA + i * PAGE_SIZE);

			__GUEST_ASSERT(*p == 0, "round %lu page %lu: %#lx before the first write",
				       round, i, *p);
			*p = MARK(round, i);
			__GUEST_ASSERT(*p == MARK(round, i), "round %lu page %lu: wrote %#lx, read %#lx",
				       round, i, MARK(round, i), *p);
		}
		GUEST_SYNC(1);
		for (i = vcpu; i < PAGES; i += NR_VCPUS) {
			uint64_t v = *(volatile uint64_t *)(DATA_GPA + i * PAGE_SIZE);

			__GUEST_ASSERT(v == MARK(round, i),
				       "round %lu page %lu: %#lx, expected %#lx (page lost or reused)",
				       round, i, v, MARK(round, i));
		}
		GUEST_SYNC(2);
	}
}

static void write_knob(const char *dir, const char *name, const char *val)
{
	char path[128];
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	r = __gmem_write_file(path, val);
	TEST_ASSERT(!r, "write '%s' to %s: %s", val, path, strerror(-r));
}

/*
 * Fail @percent % of the page and slab allocations of the tasks that ask
 * for it (make-it-fail).  gmem_failnth_setup() opened the filters and
 * silenced the reports.
 */
static void inject(int percent)
{
	static const char * const dirs[] = { FAILNTH_PAGE_ALLOC, FAILNTH_FAILSLAB };
	char p[16];
	int i;

	snprintf(p, sizeof(p), "%d", percent);
	for (i = 0; i < 2; i++) {
		write_knob(dirs[i], "task-filter", "Y");
		write_knob(dirs[i], "interval", "1");
		write_knob(dirs[i], "times", "-1");
		write_knob(dirs[i], "probability", p);
	}
}

struct populater {
	int fd;
	atomic_bool stop;
	unsigned long calls, enomem, done;
	unsigned int seed;
};

/* fallocate() over random ranges (whole blocks, odd pages) until told. */
static void *populate_thread(void *arg)
{
	struct populater *p = arg;
	int fd = open("/proc/thread-self/make-it-fail", O_WRONLY);

	TEST_ASSERT(fd >= 0 && write(fd, "1", 1) == 1, "make-it-fail: %s",
		    strerror(errno));
	close(fd);
	while (!atomic_load(&p->stop)) {
		uint64_t first = rand_r(&p->seed) % PAGES;
		uint64_t n = 1 + rand_r(&p->seed) % (PAGES - first);

		if (rand_r(&p->seed) % 2) {
			first &= ~(uint64_t)(SZ_2M / PAGE_SIZE - 1);
			n = PAGES - first;
		}
		p->calls++;
		if (!fallocate(p->fd, FALLOC_FL_KEEP_SIZE, first * PAGE_SIZE,
			       n * PAGE_SIZE)) {
			p->done++;
			continue;
		}
		TEST_ASSERT(errno == ENOMEM || errno == EINTR,
			    "fallocate [%#lx, +%#lx): errno %d (%s), expected ENOMEM or EINTR",
			    (uint64_t)(first * PAGE_SIZE), (uint64_t)(n * PAGE_SIZE), errno,
			    strerror(errno));
		p->enomem += errno == ENOMEM;
	}
	return NULL;
}

struct vcpu_run {
	struct kvm_vcpu *vcpu;
	uint64_t stage;
};

static void *vcpu_thread(void *arg)
{
	struct vcpu_run *v = arg;
	struct ucall uc;

	vcpu_run(v->vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(v->vcpu, KVM_EXIT_IO);
	switch (get_ucall(v->vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
		TEST_ASSERT_EQ(uc.args[1], v->stage);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	return NULL;
}

/* Run every vCPU to GUEST_SYNC(@stage), at once. */
static void run_vcpus(struct kvm_vcpu **vcpus, uint64_t stage)
{
	struct vcpu_run runs[NR_VCPUS];
	pthread_t t[NR_VCPUS];
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		runs[i] = (struct vcpu_run){ vcpus[i], stage };
		pthread_create(&t[i], NULL, vcpu_thread, &runs[i]);
	}
	for (i = 0; i < NR_VCPUS; i++)
		pthread_join(t[i], NULL);
}

FIXTURE(failure) {
	struct gmem_failnth fi;
};

FIXTURE_SETUP(failure)
{
	char why[256];
	int r;

	self->fi.fd = -1;
	self->fi.saved = 0;
	REQUIRE_GMEM_KVM();
	if (access("/proc/thread-self/make-it-fail", F_OK))
		SKIP(return, "/proc/thread-self/make-it-fail is absent (CONFIG_FAULT_INJECTION)");
	r = gmem_failnth_setup(&self->fi, why, sizeof(why));
	if (r == -ENOENT)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, r) TH_LOG("fault injection setup: %s", why);
}

FIXTURE_TEARDOWN(failure)
{
	if (self->fi.saved)
		inject(0);
	gmem_failnth_restore(&self->fi);
}

TEST_F_TIMEOUT(failure, faults_race_failing_populate, KVM_TEST_TIMEOUT)
{
	const char *env = getenv("GMEM_FAILURE_SECONDS");
	unsigned long seconds = env ? strtoul(env, NULL, 0) : 20, rounds = 0;
	unsigned long long files0 = gmem_read_ull(GMEM_SYSFS_FILES);
	unsigned long long bytes0 = gmem_read_ull(GMEM_SYSFS_BYTES);
	struct populater pop = { .seed = 1 };
	struct kvm_vcpu *vcpus[NR_VCPUS];
	struct kvm_vm *vm;
	pthread_t thread;
	time_t end;
	int i;

	vm = __vm_create_with_vcpus(protected_shape, NR_VCPUS, 0, guest_code, vcpus);
	for (i = 0; i < NR_VCPUS; i++)
		vcpu_args_set(vcpus[i], 1, i);
	pop.fd = private_file(vm, FILE_SIZE);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA, DATA_SLOT, PAGES,
		   KVM_MEM_GUEST_MEMFD, pop.fd, 0);
	virt_map(vm, DATA_GPA, DATA_GPA, PAGES);
	vm_mem_set_private(vm, DATA_GPA, FILE_SIZE);
	inject(20);

	end = time(NULL) + seconds;
	do {
		/* The vCPUs are between rounds: a fresh, empty file range. */
		TEST_ASSERT(!fallocate(pop.fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				       0, FILE_SIZE), "punch: %s", strerror(errno));
		atomic_store(&pop.stop, false);
		pthread_create(&thread, NULL, populate_thread, &pop);
		run_vcpus(vcpus, 1);
		/* More populates, failing ones among them, over handed-out pages. */
		usleep(100 * 1000);
		run_vcpus(vcpus, 2);
		atomic_store(&pop.stop, true);
		pthread_join(thread, NULL);
		rounds++;
	} while (time(NULL) < end);
	inject(0);

	ksft_print_msg("%lu rounds of %lu pages, %lu fallocate calls: %lu whole, %lu ENOMEM\n",
		       rounds, (unsigned long)PAGES, pop.calls, pop.done, pop.enomem);
	EXPECT_LT(0UL, pop.enomem) TH_LOG("no populate failed: nothing was injected");
	kvm_vm_free(vm);
	close(pop.fd);
	EXPECT_EQ(files0, gmem_read_ull(GMEM_SYSFS_FILES));
	EXPECT_EQ(bytes0, gmem_read_ull(GMEM_SYSFS_BYTES));
}

TEST_HARNESS_MAIN
