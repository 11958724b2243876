// SPDX-License-Identifier: GPL-2.0-only
/*
 * Stress: real KVM guests on gmem files while everything that can
 * change under them does, at once, for a bounded time.
 *
 * Worker processes run "worlds" one after another until the deadline.
 * A world is a KVM_X86_SW_PROTECTED_VM with two vCPUs whose private
 * memory is one gmem file bound through two memslots (made by
 * GMEM_CREATE, or, one world in three, by KVM_CREATE_GUEST_MEMFD with
 * gmem's takeover on).  Its vCPUs write
 * and read back tagged values on every page, forever; chaos threads,
 * each holding its own fd of the file, race them with operations from
 * a table (punch-hole, allocation, private<->shared conversion,
 * memslot deletion and re-creation, fdinfo, binding to another VM).
 * Each world ends in one of several orders, raced with all of the
 * above: the file closed under running vCPUs, the VM closed first, a
 * forked child holding the last reference, memslots deleted first.
 *
 * Guests check on every access that they read zero or a value this very
 * vCPU of this very VM wrote; on the pages that are never converted,
 * that they read exactly the last value they wrote, or zero after a
 * punch.  Another VM's tag, another vCPU's, or anything else fails the
 * test: a page freed without zapping, or handed to two files, shows up
 * here.  Every failed host call must be a documented errno (gmem_abi.h).
 *
 * At the end the machine must be back where it started: gmem's own
 * counters and KVM's VM count exactly, MemFree and Slab within the
 * tolerances below.
 * make check runs it for 60 s in a test VM with one CPU (tests/vm/check):
 * with two, the emulated CPU now and then runs a guest on the host's
 * registers and it shuts down or spins, with KVM's own guest_memfd as
 * well (see tests/vm/suites), and most 60-second runs meet that.
 *   GMEM_STRESS_SECONDS=T   duration (default 60; 0 skips the test)
 *   GMEM_STRESS_PROCS=N     worker processes (default 2)
 *   GMEM_STRESS_SEED=S      seed of the operation choices (default 1)
 *   GMEM_TEST_BACKEND=guest_memfd
 *                           the same on KVM's own guest_memfd, to compare
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
#include "gmem_abi.h"
#include "gmem_leak.h"
#include <gmem.h>

#define NR_VCPUS	2
#define PAGES		512			/* of the file, and of guest data */
#define STRICT_PAGES	256			/* slot A: never converted */
#define DATA_GPA	(1ULL << 32)
#define SLOT_A		10			/* pages [0, 256) of the file */
#define SLOT_B		11			/* pages [256, 512) */
#define OTHER_SLOT	20
#define NR_CHAOS	2

/*
 * What the machine may legitimately hold on to after the run, beyond its
 * state before (taken after a warm-up world, so that one-time allocations
 * of KVM and of the first VM are not counted):
 *  - MemFree: per-CPU page lists keep freed pages out of MemFree (a few
 *    MiB per CPU), page tables and slab pages freed after an RCU grace
 *    period, and the slab growth below.  A leaked gmem page is 4 KiB; the
 *    run churns hundreds of MiB of them, so a leak of even 1% of them
 *    exceeds this.
 *  - Slab: partially filled slabs stay allocated, and on KASAN kernels
 *    freed objects wait in a quarantine of up to 1/32 of RAM before they
 *    are freed; there kmemleak, not this number, is the leak detector.
 * gmem's own counters and the number of VMs must be exact.
 */
#define MEMFREE_TOLERANCE	(32ULL << 20)
#define SLAB_TOLERANCE		(16ULL << 20)
#define SLAB_TOLERANCE_KASAN	(160ULL << 20)

/* ---- the guest ---- */

#define MARK(tag, vcpu, round)	((tag) << 32 | (vcpu) << 28 | ((round) & 0x0fffffff))
#define MARK_OWNER(v)		((v) >> 28)

/*
 * Every vCPU owns every NR_VCPUS-th page; each round writes a new mark
 * to each of them and reads it back.  GUEST_SYNC after each round lets
 * the host count the accesses and stop the vCPU.
 */
static void guest_code(uint64_t tag, uint64_t vcpu)
{
	uint64_t round, i, n;

	for (round = 1;; round++) {
		n = 0;
		for (i = vcpu; i < PAGES; i += NR_VCPUS) {
			volatile uint64_t *p = (uint64_t *)(DATA_GPA + i * PAGE_SIZE);
			uint64_t want = MARK(tag, vcpu, round);
			uint64_t prev = MARK(tag, vcpu, round - 1);
			uint64_t v0 = *p, v1;

			*p = want;
			v1 = *p;
			if (i < STRICT_PAGES) {
				/* Private all along: ours, or zero after a punch. */
				__GUEST_ASSERT(v0 == prev || v0 == 0,
					       "page %lu round %lu: read %#lx before writing, expected %#lx or 0",
					       i, round, v0, prev);
				__GUEST_ASSERT(v1 == want || v1 == 0,
					       "page %lu round %lu: read back %#lx, expected %#lx or 0",
					       i, round, v1, want);
			} else {
				/* Converted back and forth: zero or something we wrote. */
				__GUEST_ASSERT(!v0 || MARK_OWNER(v0) == MARK_OWNER(want),
					       "page %lu round %lu: read %#lx, not ours (%#lx)",
					       i, round, v0, want);
				__GUEST_ASSERT(!v1 || MARK_OWNER(v1) == MARK_OWNER(want),
					       "page %lu round %lu: read back %#lx, not ours (%#lx)",
					       i, round, v1, want);
			}
			n++;
		}
		GUEST_SYNC(n);
	}
}

/* ---- shared counters, and judging host calls ---- */

enum {
	C_WORLDS, C_GUEST_ACCESSES, C_MEMORY_FAULT_EXITS, C_MMIO_EXITS,
	C_TEARDOWN_CLOSE_FIRST, C_TEARDOWN_VM_FIRST, C_TEARDOWN_CHILD,
	C_TEARDOWN_MEMSLOTS_FIRST, C_CHILD_OPS, C_TAKEOVER_WORLDS, C_FAILURES,
	C_NR
};

static const char *const counter_names[C_NR] = {
	"worlds", "guest page accesses", "memory-fault exits", "MMIO exits",
	"ends: file closed under running vCPUs", "ends: VM closed first",
	"ends: a child held the last reference", "ends: memslots deleted first",
	"operations of children", "worlds on KVM_CREATE_GUEST_MEMFD (takeover)",
	"failures",
};

/*
 * With gmem's takeover on (set for the run when the module has it), one
 * world in three takes its file from KVM_CREATE_GUEST_MEMFD, as an
 * unmodified VMM does: a gmem file bound to the VM from creation.
 */
static bool takeover_on;

struct chaos;
struct world;

struct stress_op {
	const char *name;
	unsigned int weight;
	void (*fn)(struct world *w, struct chaos *c);
};

static const struct stress_op stress_ops[];
#define NR_STRESS_OPS 6

struct shared {
	atomic_ulong count[C_NR];
	atomic_ulong ops[NR_STRESS_OPS];
};

static struct shared *sh;

static void failure(const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&sh->count[C_FAILURES], 1);
	fprintf(stderr, "# stress FAIL [pid %d] ", getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

/* A failed call: its errno must be documented for @op, or listed in @also. */
static void check_errno(enum gmem_abi_op op, int err, const char *what, const int *also)
{
	for (; also && *also; also++)
		if (*also == err)
			return;
	if (!gmem_abi_documented(op, err))
		failure("%s: %s is not documented for %s (%s)", what, strerror(err),
			gmem_abi[op].name, gmem_abi[op].doc);
}

/* ---- a world ---- */

struct chaos {
	struct world *w;
	pthread_t thread;
	int fd;			/* this thread's own fd of the file */
	uint64_t rng;
	int close_after;	/* ops before closing the fd (teardown "close first") */
};

struct vcpu_runner {
	struct world *w;
	struct kvm_vcpu *vcpu;
	pthread_t thread;
};

struct world {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpus[NR_VCPUS];
	struct vcpu_runner runners[NR_VCPUS];
	pthread_rwlock_t vm_lock;	/* the chaos's uses of vm vs. freeing it */
	bool vm_gone;
	int fd;
	char *shared;			/* the shared view, PAGES pages */
	uint64_t tag;
	pthread_mutex_t slot_lock[2];
	bool slot_present[2];
	atomic_bool stop_vcpus, stop_chaos, file_gone;
	struct chaos chaos[NR_CHAOS];
	struct kvm_vm *other;		/* another VM of this process */
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return rnd(s) % n;
}

static int set_slot(struct world *w, int i, int fd, bool present)
{
	uint64_t off = i * STRICT_PAGES * PAGE_SIZE;

	return __vm_set_user_memory_region2(w->vm, i ? SLOT_B : SLOT_A,
					    present ? KVM_MEM_GUEST_MEMFD : 0,
					    DATA_GPA + off,
					    present ? STRICT_PAGES * PAGE_SIZE : 0,
					    w->shared + off, present ? fd : -1,
					    present ? off : 0);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu_runner *vr = arg;
	struct kvm_vcpu *vcpu = vr->vcpu;
	struct world *w = vr->w;
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int r;

	while (!atomic_load(&w->stop_vcpus)) {
		r = _vcpu_run(vcpu);
		if (r) {
			/*
			 * A private access with no page to give: the memslot is
			 * being re-created, the attribute is changing, or the
			 * file is gone.  Retry until told to stop.
			 */
			TEST_ASSERT(errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT,
				    "KVM_RUN: %s, exit reason %u", strerror(errno),
				    run->exit_reason);
			atomic_fetch_add(&sh->count[C_MEMORY_FAULT_EXITS], 1);
			usleep(200);
			continue;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_MMIO:
			/* A shared page whose memslot is being re-created. */
			atomic_fetch_add(&sh->count[C_MMIO_EXITS], 1);
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
			continue;
		case KVM_EXIT_IO:
			break;
		default:
			TEST_FAIL("unexpected exit reason %u", run->exit_reason);
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			atomic_fetch_add(&sh->count[C_GUEST_ACCESSES], uc.args[1]);
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
	return NULL;
}

/* ---- the chaos operations ---- */

/* The VM for an operation that uses it, or NULL once it is closed. */
static struct kvm_vm *get_vm(struct world *w)
{
	pthread_rwlock_rdlock(&w->vm_lock);
	if (!w->vm_gone)
		return w->vm;
	pthread_rwlock_unlock(&w->vm_lock);
	return NULL;
}

static void put_vm(struct world *w)
{
	pthread_rwlock_unlock(&w->vm_lock);
}

/* Close the VM's fds while the chaos may go on with the file alone. */
static void free_vm(struct world *w)
{
	pthread_rwlock_wrlock(&w->vm_lock);
	kvm_vm_free(w->vm);
	w->vm_gone = true;
	pthread_rwlock_unlock(&w->vm_lock);
}

static void random_range(uint64_t *rng, uint64_t *off, uint64_t *len)
{
	uint64_t first = below(rng, PAGES), n = 1 + below(rng, 64);

	if (first + n > PAGES)
		n = PAGES - first;
	*off = first * PAGE_SIZE;
	*len = n * PAGE_SIZE;
}

static void op_punch(struct world *w, struct chaos *c)
{
	uint64_t off, len;

	random_range(&c->rng, &off, &len);
	if (fallocate(c->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, off, len))
		check_errno(GMEM_ABI_FALLOCATE, errno, "punch", NULL);
}

static void op_allocate(struct world *w, struct chaos *c)
{
	uint64_t off, len;

	random_range(&c->rng, &off, &len);
	if (fallocate(c->fd, FALLOC_FL_KEEP_SIZE, off, len))
		check_errno(GMEM_ABI_FALLOCATE, errno, "allocate", NULL);
}

/* A VMM's conversion, on the pages that may convert: attribute, then punch. */
static void op_convert(struct world *w, struct chaos *c)
{
	static const int kvm_errnos[] = { EAGAIN, EINTR, ENOMEM, 0 };
	uint64_t first = STRICT_PAGES + below(&c->rng, PAGES - STRICT_PAGES);
	uint64_t n = 1 + below(&c->rng, 16);
	bool shared = below(&c->rng, 2);
	struct kvm_memory_attributes attr = { 0 };

	struct kvm_vm *vm = get_vm(w);
	int r;

	if (!vm)
		return;
	if (first + n > PAGES)
		n = PAGES - first;
	attr.address = DATA_GPA + first * PAGE_SIZE;
	attr.size = n * PAGE_SIZE;
	attr.attributes = shared ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
	r = ioctl(vm->fd, KVM_SET_MEMORY_ATTRIBUTES, &attr);
	put_vm(w);
	if (r) {
		for (const int *e = kvm_errnos; *e; e++)
			if (*e == errno)
				return;
		failure("KVM_SET_MEMORY_ATTRIBUTES: %s", strerror(errno));
		return;
	}
	if (shared && fallocate(c->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				first * PAGE_SIZE, n * PAGE_SIZE))
		check_errno(GMEM_ABI_FALLOCATE, errno, "punch on conversion", NULL);
}

/* Delete a data memslot under the vCPUs, then bind it again. */
static void op_memslot(struct world *w, struct chaos *c)
{
	int i = below(&c->rng, 2);

	if (!get_vm(w))
		return;
	if (pthread_mutex_trylock(&w->slot_lock[i])) {
		put_vm(w);
		return;
	}
	if (w->slot_present[i]) {
		if (set_slot(w, i, -1, false))
			failure("deleting memslot %d: %s", i, strerror(errno));
		else
			w->slot_present[i] = false;
	}
	usleep(below(&c->rng, 2000));
	if (set_slot(w, i, c->fd, true))
		check_errno(GMEM_ABI_BIND, errno, "re-creating a memslot", NULL);
	else
		w->slot_present[i] = true;
	pthread_mutex_unlock(&w->slot_lock[i]);
	put_vm(w);
}

static void op_fdinfo(struct world *w, struct chaos *c)
{
	char path[64], buf[512];
	struct stat st;
	int fd;

	if (fstat(c->fd, &st) || st.st_size != PAGES * PAGE_SIZE)
		failure("fstat: %s, size %lld", strerror(errno), (long long)st.st_size);
	if (on_guest_memfd())
		return;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", c->fd);
	fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0 || !strstr(buf, "gmem-vm:"))
		failure("fdinfo of a bound file: %s", fd < 0 ? strerror(errno) : "no gmem-vm");
	if (fd >= 0)
		close(fd);
}

/* The file is bound to this world's VM: another VM must not get it. */
static void op_bind_other(struct world *w, struct chaos *c)
{
	uint64_t off = below(&c->rng, PAGES) * PAGE_SIZE;
	int r;

	r = __vm_set_user_memory_region2(w->other, OTHER_SLOT, KVM_MEM_GUEST_MEMFD,
					 DATA_GPA, PAGE_SIZE, w->shared, c->fd, off);
	if (!r) {
		failure("a file bound to one VM was bound to another one");
		__vm_set_user_memory_region2(w->other, OTHER_SLOT, 0, DATA_GPA, 0, NULL, -1, 0);
	} else if (errno != EINVAL) {
		failure("binding to a second VM: %s, expected EINVAL", strerror(errno));
	}
}

/*
 * The operations of the chaos threads.  gmem's per-page attributes
 * (GMEM_SET_ATTRIBUTES) become one more row here.
 */
static const struct stress_op stress_ops[NR_STRESS_OPS] = {
	{ "punch-hole",		30, op_punch },
	{ "allocate",		20, op_allocate },
	{ "convert",		20, op_convert },
	{ "memslot",		8,  op_memslot },
	{ "fdinfo",		4,  op_fdinfo },
	{ "bind-other-vm",	3,  op_bind_other },
};

static void *chaos_thread(void *arg)
{
	struct chaos *c = arg;
	unsigned int total = 0, i, w;
	int done = 0;

	for (i = 0; i < NR_STRESS_OPS; i++)
		total += stress_ops[i].weight;
	while (!atomic_load(&c->w->stop_chaos)) {
		if (c->close_after >= 0 && done >= c->close_after)
			break;
		w = below(&c->rng, total);
		for (i = 0; w >= stress_ops[i].weight; i++)
			w -= stress_ops[i].weight;
		stress_ops[i].fn(c->w, c);
		atomic_fetch_add(&sh->ops[i], 1);
		done++;
		if (!below(&c->rng, 4))
			usleep(below(&c->rng, 500));
	}
	close(c->fd);
	c->fd = -1;
	return NULL;
}

static void stop_vcpus(struct world *w)
{
	int i;

	atomic_store(&w->stop_vcpus, true);
	for (i = 0; i < NR_VCPUS; i++)
		pthread_join(w->runners[i].thread, NULL);
}

static void stop_chaos(struct world *w)
{
	int i;

	atomic_store(&w->stop_chaos, true);
	for (i = 0; i < NR_CHAOS; i++)
		pthread_join(w->chaos[i].thread, NULL);
}

/* A child that holds the file, punches and allocates, then exits. */
static void child_holds_file(struct world *w, uint64_t rng)
{
	struct kvm_vm *vm;
	int i, r, ops = 0;

	if (fork())
		return;
	/* Its own VM: the file, bound to the parent's, must not bind here. */
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	r = __vm_set_user_memory_region2(vm, OTHER_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
					 PAGE_SIZE, w->shared, w->fd, 0);
	if (!r || errno != EINVAL)
		failure("child: binding its parent's file to its own VM: %s, expected EINVAL",
			r ? strerror(errno) : "success");
	for (i = 0; i < 200; i++, ops++) {
		uint64_t off, len;

		random_range(&rng, &off, &len);
		if (fallocate(w->fd, FALLOC_FL_KEEP_SIZE |
			      (below(&rng, 2) ? FALLOC_FL_PUNCH_HOLE : 0), off, len))
			check_errno(GMEM_ABI_FALLOCATE, errno, "child fallocate", NULL);
		if (!below(&rng, 8))
			usleep(1000);
	}
	atomic_fetch_add(&sh->count[C_CHILD_OPS], ops + 1);
	kvm_vm_free(vm);
	/* Its exit drops what may be the file's last reference, and the VM's. */
	_exit(0);
}

static void run_world(uint64_t *rng, struct kvm_vm *other, double seconds)
{
	struct world *w = calloc(1, sizeof(*w));
	int i, how = below(rng, 4);
	pid_t child = 0;

	TEST_ASSERT(w, "calloc");
	w->other = other;
	w->tag = (getpid() << 12 | (atomic_load(&sh->count[C_WORLDS]) & 0xfff)) & 0xfffffff;
	w->tag |= 1ULL << 28;		/* never zero */
	w->vm = __vm_create_with_vcpus(protected_shape, NR_VCPUS, 0, guest_code, w->vcpus);
	if (takeover_on && !below(rng, 3)) {
		w->fd = vm_create_guest_memfd(w->vm, PAGES * PAGE_SIZE, 0);
		if (fdinfo_value(w->fd, "gmem-id") < 0)
			failure("KVM_CREATE_GUEST_MEMFD with takeover on: not a gmem file");
		atomic_fetch_add(&sh->count[C_TAKEOVER_WORLDS], 1);
	} else {
		w->fd = private_file(w->vm, PAGES * PAGE_SIZE);
	}
	w->shared = mmap(NULL, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(w->shared != MAP_FAILED, "mmap");
	for (i = 0; i < 2; i++) {
		pthread_mutex_init(&w->slot_lock[i], NULL);
		TEST_ASSERT(!set_slot(w, i, w->fd, true), "memslot: %s", strerror(errno));
		w->slot_present[i] = true;
	}
	virt_map(w->vm, DATA_GPA, DATA_GPA, PAGES);
	vm_set_memory_attributes(w->vm, DATA_GPA, PAGES * PAGE_SIZE,
				 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	pthread_rwlock_init(&w->vm_lock, NULL);
	for (i = 0; i < NR_VCPUS; i++) {
		vcpu_args_set(w->vcpus[i], 2, w->tag, (uint64_t)i);
		w->runners[i].w = w;
		w->runners[i].vcpu = w->vcpus[i];
		pthread_create(&w->runners[i].thread, NULL, vcpu_thread, &w->runners[i]);
	}
	for (i = 0; i < NR_CHAOS; i++) {
		struct chaos *c = &w->chaos[i];

		c->w = w;
		c->rng = rnd(rng) | 1;
		c->fd = dup(w->fd);
		c->close_after = how == 0 ? (int)below(rng, 400) : -1;
		TEST_ASSERT(c->fd >= 0, "dup");
		pthread_create(&c->thread, NULL, chaos_thread, c);
	}
	atomic_fetch_add(&sh->count[C_WORLDS], 1);
	usleep(seconds * 1e6);

	switch (how) {
	case 0:
		/*
		 * The file goes while the vCPUs run: our fd now, the chaos
		 * threads' after a random number of operations each.  The
		 * last close releases the file under the vCPUs' faults.
		 */
		atomic_fetch_add(&sh->count[C_TEARDOWN_CLOSE_FIRST], 1);
		close(w->fd);
		for (i = 0; i < NR_CHAOS; i++)
			pthread_join(w->chaos[i].thread, NULL);
		usleep(below(rng, 100000));
		stop_vcpus(w);
		free_vm(w);
		break;
	case 1:
		/* The VM's fds go first, the chaos goes on; the file pins the VM. */
		atomic_fetch_add(&sh->count[C_TEARDOWN_VM_FIRST], 1);
		stop_vcpus(w);
		free_vm(w);
		usleep(below(rng, 100000));
		stop_chaos(w);
		close(w->fd);		/* the VM is destroyed here */
		break;
	case 2:
		/* A child holds the file; the VM dies when the child exits. */
		atomic_fetch_add(&sh->count[C_TEARDOWN_CHILD], 1);
		child_holds_file(w, rnd(rng));
		stop_chaos(w);
		stop_vcpus(w);
		free_vm(w);
		close(w->fd);
		child = 1;
		break;
	default:
		/* Memslots deleted under the vCPUs, then the VM, then the file. */
		atomic_fetch_add(&sh->count[C_TEARDOWN_MEMSLOTS_FIRST], 1);
		stop_chaos(w);
		for (i = 0; i < 2; i++)
			TEST_ASSERT(!w->slot_present[i] || !set_slot(w, i, -1, false),
				    "delete memslot: %s", strerror(errno));
		usleep(below(rng, 50000));
		stop_vcpus(w);
		close(w->fd);
		free_vm(w);
		break;
	}
	munmap(w->shared, PAGES * PAGE_SIZE);
	free(w);
	if (child) {
		int st;

		while (wait(&st) > 0)
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				failure("child holding the file: status %#x", st);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A worker process: worlds one after another until @deadline. */
static void worker(uint64_t seed, double deadline)
{
	uint64_t rng = seed * 0x9E3779B97F4A7C15ULL | 1;
	struct kvm_vm *other = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);

	while (now() < deadline) {
		double left = deadline - now();
		double t = 0.3 + below(&rng, 2700) / 1000.0;

		run_world(&rng, other, t < left ? t : (left > 0.1 ? left : 0.1));
	}
	kvm_vm_free(other);
}

static pid_t spawn(uint64_t seed, double deadline)
{
	pid_t pid = fork();

	if (!pid) {
		worker(seed, deadline);
		_exit(0);
	}
	return pid;
}

/* ---- the machine's state ---- */

struct state {
	unsigned long long files, bytes, memfree, slab;
	int vms, vm_structs;
	char meminfo[4096];
};

static void free_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "3", 1) < 0)
			;
		close(fd);
	}
}

static void read_state(struct state *s)
{
	free_caches();
	s->files = gmem_read_ull(GMEM_SYSFS_FILES);
	s->bytes = gmem_read_ull(GMEM_SYSFS_BYTES);
	s->vms = gmem_count_vms_debugfs();
	s->vm_structs = gmem_count_vms_vmalloc();
	s->memfree = gmem_meminfo("MemFree");
	s->slab = gmem_meminfo("Slab");
	s->meminfo[0] = 0;
	{
		int fd = open("/proc/meminfo", O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, s->meminfo, sizeof(s->meminfo) - 1) : 0;

		s->meminfo[n > 0 ? n : 0] = 0;
		if (fd >= 0)
			close(fd);
	}
}

/* Log the /proc/meminfo lines that moved by 1 MiB or more. */
static void log_meminfo_diff(struct __test_metadata *_metadata, const struct state *a,
			     const struct state *b)
{
	const char *p = b->meminfo;
	char key[64];
	long long va, vb;
	int n;

	while (sscanf(p, "%63[^:]: %lld kB%n", key, &vb, &n) == 2) {
		const char *q = strstr(a->meminfo, key);

		if (q && sscanf(q + strlen(key), ": %lld", &va) == 1 && llabs(vb - va) >= 1024)
			TH_LOG("  meminfo %-16s %+lld KiB", key, vb - va);
		p += n;
		while (*p == '\n')
			p++;
	}
}

/* Is this a KASAN kernel (with its quarantine of freed objects)? */
static bool kasan_kernel(void)
{
	char line[256];
	bool found = false;
	FILE *f = fopen("/proc/kallsyms", "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = !!strstr(line, " kasan_report\n");
	if (f)
		fclose(f);
	return found;
}

FIXTURE(stress) {
};

FIXTURE_SETUP(stress)
{
	if (access("/dev/gmem", F_OK))
		SKIP(return, "/dev/gmem is absent (is gmem loaded?)");
	if (access("/dev/kvm", F_OK))
		SKIP(return, "/dev/kvm is absent");
	if (!(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)))
		SKIP(return, "KVM_X86_SW_PROTECTED_VM is not supported");
}

FIXTURE_TEARDOWN(stress)
{
}

static bool settled(const struct state *a, const struct state *b)
{
	return a->files == b->files && a->bytes == b->bytes && a->vms == b->vms &&
	       a->vm_structs == b->vm_structs;
}

/* The deadline is checked between worlds; the harness timeout is a backstop. */
TEST_F_TIMEOUT(stress, races, 4 * 3600)
{
	const char *e = getenv("GMEM_STRESS_SECONDS");
	double secs = e && *e ? strtod(e, NULL) : 60;

	if (secs <= 0)
		SKIP(return, "GMEM_STRESS_SECONDS=%s", e);
	const char *procs_env = getenv("GMEM_STRESS_PROCS");
	int procs = procs_env ? atoi(procs_env) : 2;
	const char *seed_env = getenv("GMEM_STRESS_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 1;
	unsigned long long slab_tol = SLAB_TOLERANCE, ops = 0;
	struct state base, end;
	int takeover0 = -1;
	double t0, t1;
	pid_t pids[64];
	int i, st, tries, bad = 0;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, sh);
	ASSERT_LE(procs, 64);

	/* Warm-up: KVM's and the first VM's one-time allocations. */
	waitpid(spawn(seed + 1000, now() + 1), &st, 0);
	ASSERT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st)) TH_LOG("warm-up: status %#x", st);
	sleep(1);
	read_state(&base);
	memset(sh, 0, sizeof(*sh));

	if (!on_guest_memfd())
		takeover0 = gmem_takeover_param_get();
	if (takeover0 >= 0) {
		gmem_takeover_param_set(true);
		takeover_on = true;
	}
	t0 = now();
	for (i = 0; i < procs; i++)
		pids[i] = spawn(seed + i, t0 + secs);
	for (i = 0; i < procs; i++) {
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			TH_LOG("worker %d: status %#x", i, st);
			bad++;
		}
	}
	t1 = now();
	if (takeover_on)
		gmem_takeover_param_set(takeover0);

	/* Releases are synchronous, VM destruction may wait for RCU: settle. */
	for (tries = 0; tries < 50; tries++) {
		read_state(&end);
		if (settled(&base, &end))
			break;
		usleep(200000);
	}

	for (i = 0; i < NR_STRESS_OPS; i++) {
		ops += sh->ops[i];
		TH_LOG("  %-40s %lu", stress_ops[i].name, (unsigned long)sh->ops[i]);
	}
	for (i = 0; i < C_NR; i++)
		TH_LOG("  %-40s %lu", counter_names[i], (unsigned long)sh->count[i]);
	TH_LOG("stress: %d processes for %.1f s (seed %llu): %llu host operations, %lu guest page accesses, %lu worlds",
	       procs, t1 - t0, (unsigned long long)seed, ops,
	       (unsigned long)sh->count[C_GUEST_ACCESSES], (unsigned long)sh->count[C_WORLDS]);
	if (kasan_kernel())
		slab_tol = SLAB_TOLERANCE_KASAN;
	TH_LOG("end state: gmem files %llu (start %llu), allocated_bytes %llu (start %llu), KVM VMs %d/%d (debugfs/vmalloc; start %d/%d)",
	       end.files, base.files, end.bytes,
	       base.bytes, end.vms, end.vm_structs, base.vms, base.vm_structs);
	TH_LOG("end state: MemFree %+lld KiB (tolerance -%llu KiB), Slab %+lld KiB (tolerance +%llu KiB)",
	       ((long long)end.memfree - (long long)base.memfree) >> 10,
	       MEMFREE_TOLERANCE >> 10, ((long long)end.slab - (long long)base.slab) >> 10,
	       slab_tol >> 10);

	log_meminfo_diff(_metadata, &base, &end);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0UL, (unsigned long)sh->count[C_FAILURES]);
	EXPECT_LT(0UL, (unsigned long)sh->count[C_GUEST_ACCESSES]);
	if (takeover_on)
		EXPECT_LT(0UL, (unsigned long)sh->count[C_TAKEOVER_WORLDS]);
	EXPECT_EQ(base.files, end.files);
	EXPECT_EQ(base.bytes, end.bytes);
	EXPECT_EQ(base.vms, end.vms);
	EXPECT_EQ(base.vm_structs, end.vm_structs);
	/*
	 * Pages the slab took (KASAN's quarantine holds freed objects: tens
	 * of MiB on the debug kernel) are judged by the slab check; MemFree
	 * looks for pages lost outside it, which is where gmem's come from.
	 */
	EXPECT_GE(end.memfree + MEMFREE_TOLERANCE +
		  (end.slab > base.slab ? end.slab - base.slab : 0), base.memfree);
	EXPECT_LE(end.slab, base.slab + slab_tol);
}

TEST_HARNESS_MAIN
