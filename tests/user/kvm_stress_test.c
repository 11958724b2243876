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
 * memslot deletion and re-creation, fdinfo, binding to another VM,
 * GMEM_RELEASE_VM).  A file of GMEM_CREATE is the world's VM's from its
 * first bind, whatever its memslots, until the world releases it with
 * GMEM_RELEASE_VM and its VM's fd (EBUSY while one of its memslots is
 * bound); another VM's bind gets EBUSY meanwhile, and so does a release
 * naming another VM EINVAL.  Released, the file is the next binder's:
 * the world's own memslot re-creation races the worker's other VM (which
 * gives it back by deleting its memslot and releasing it) and a forked
 * child's VM.  A file of KVM_CREATE_GUEST_MEMFD is its VM's for life:
 * EINVAL for other VMs and for GMEM_RELEASE_VM.
 * Each world ends in one of several orders, raced with all of the
 * above: the file closed under running vCPUs, the VM closed first, a
 * forked child holding the last reference (binding the file to its own
 * VM, and trying to release it from the world's VM with its own, now
 * and then), memslots deleted first, or handed off: a VMM's live
 * update, once or more, the world's vCPUs stopped, its memslots
 * deleted, the file released and bound to a new VM whose guests go on
 * with its contents, the old VM freed at once, then one of the other
 * orders.
 *
 * Guests check on every access that they read zero or a value this very
 * vCPU of this very VM wrote; on the pages that are never converted,
 * that they read exactly the last value they wrote, or zero after a
 * punch.  After a handoff, a guest also accepts, on its first round,
 * exactly the last value its predecessor's vCPU wrote (on converted
 * pages any value of that vCPU).  Another VM's tag, another vCPU's, or
 * anything else fails the test: a page freed without zapping, or handed
 * to two files, shows up here.  Every failed host call must be a
 * documented errno (gmem_abi.h); whether a bind or a release had to
 * fail (EBUSY, EINVAL) or succeed is judged against what the VMs did
 * around it.
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
 *
 * A guest on a file handed off by a predecessor VM (tag @old_tag, not 0)
 * finds on its pages what the predecessor's vCPU of the same number left
 * there: it stopped right after its round @old_round, so a page that was
 * never converted holds exactly that round's mark, or zero after a
 * punch, until this guest's first round rewrites it; a converted page
 * holds zero or one of its marks of any round.
 */
static void guest_code(uint64_t tag, uint64_t vcpu, uint64_t old_tag, uint64_t old_round)
{
	uint64_t inherited = old_tag ? MARK(old_tag, vcpu, old_round) : 0;
	uint64_t old_owner = old_tag ? MARK_OWNER(inherited) : 0;
	uint64_t round, i, n;

	for (round = 1;; round++) {
		n = 0;
		for (i = vcpu; i < PAGES; i += NR_VCPUS) {
			volatile uint64_t *p = (uint64_t *)(DATA_GPA + i * PAGE_SIZE);
			uint64_t want = MARK(tag, vcpu, round);
			uint64_t prev = round > 1 ? MARK(tag, vcpu, round - 1) : inherited;
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
				/*
				 * Converted back and forth: zero or something we,
				 * or our predecessor's vCPU, wrote.
				 */
				__GUEST_ASSERT(!v0 || MARK_OWNER(v0) == MARK_OWNER(want) ||
					       (old_owner && MARK_OWNER(v0) == old_owner),
					       "page %lu round %lu: read %#lx, not ours (%#lx) nor our predecessor's (%#lx)",
					       i, round, v0, want, inherited);
				__GUEST_ASSERT(!v1 || MARK_OWNER(v1) == MARK_OWNER(want) ||
					       (old_owner && MARK_OWNER(v1) == old_owner),
					       "page %lu round %lu: read back %#lx, not ours (%#lx) nor our predecessor's (%#lx)",
					       i, round, v1, want, inherited);
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
	C_TEARDOWN_MEMSLOTS_FIRST, C_TEARDOWN_HANDED_OFF, C_HANDOFFS, C_HANDOFFS_REFUSED,
	C_OTHER_BOUND, C_OTHER_BUSY, C_CHILD_BOUND, C_CHILD_BUSY, C_OWN_BUSY, C_OWN_REGAINED,
	C_REL_OK, C_REL_NOOP, C_REL_BUSY, C_REL_WRONG_OTHER, C_REL_WRONG_CHILD,
	C_REL_WRONG_OWN, C_REL_FOR_LIFE, C_REL_NOT_VM,
	C_CHILD_OPS, C_TAKEOVER_WORLDS, C_FAILURES,
	C_NR
};

static const char *const counter_names[C_NR] = {
	"worlds", "guest page accesses", "memory-fault exits", "MMIO exits",
	"ends: file closed under running vCPUs", "ends: VM closed first",
	"ends: a child held the last reference", "ends: memslots deleted first",
	"ends: handed off to new VMs, then one of the above",
	"handoffs: the file's contents went on in a new VM",
	"handoffs refused: file of KVM_CREATE_GUEST_MEMFD (EINVAL)",
	"another VM bound the released file", "another VM's bind: EBUSY",
	"a child's VM bound the released file", "a child's VM's bind: EBUSY",
	"the world's own bind: EBUSY (another VM had the file)",
	"the world's VMs took the released file (again, or by handoff)",
	"release: 0, the VM let go of the file", "release: 0, the file had no VM",
	"release: EBUSY, a memslot of the VM bound",
	"release: EINVAL, the other VM's fd (not the file's VM)",
	"release: EINVAL, a child's VM (not the file's VM)",
	"release: EINVAL, the world's VM (no longer the file's)",
	"release: EINVAL, file of KVM_CREATE_GUEST_MEMFD",
	"release: EINVAL/EBADF, vm_fd not a VM / not open",
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
#define NR_STRESS_OPS 7

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

/*
 * ---- who has the file: the world's VM, another VM, a child's VM ----
 *
 * A file made by GMEM_CREATE is the VM's that first binds it, whatever
 * its memslots, until that VM releases it (GMEM_RELEASE_VM with the VM's
 * fd, which fails with EBUSY while a memslot of the VM is bound): other
 * VMs' binds fail with EBUSY meanwhile, and their releases with EINVAL.
 * Which a call should get is decided by what the VMs did around it, in
 * the kernel, which the test cannot see; it can only bracket it.  Each
 * binder keeps two pairs of counters, one of its memslots on the file
 * and one of its having the file: "maybe", raised before the ioctl that
 * binds (takes the file) and lowered after the one that unbinds
 * (releases it) returned (it covers every moment the kernel may count
 * it), and "sure", raised after the bind returned and lowered before the
 * unbind (release) starts (every moment the kernel must).  A counter is
 * one 64-bit word with a generation above the count, so that two reads
 * that find the same word saw no change in between.  Then a bind that
 * got EBUSY must have met a "maybe" of another binder's having the file,
 * and a bind that succeeded must not have met a "sure" that stayed above
 * zero all along; a release of one's own file got EBUSY only if one of
 * its memslots was "maybe" there, and succeeded only if none was "sure"
 * there all along; a release by a VM that has not the file succeeds (a
 * no-op) only while no VM has it, and fails with EINVAL only while
 * another may.  The same holds for the gmem-vm line of fdinfo.  Each
 * binder serialises its own binds and releases (own_lock, other_lock, a
 * child's one thread), so it knows whether it has the file.  The
 * binders: the world's VMs, its predecessors and successors by handoff
 * included (OWN), the worker's other VM (OTHER), and a forked child's VM
 * (CHILD); the words live in memory shared with the child.
 */
enum { B_OWN, B_OTHER, B_CHILD, B_NR };

struct track {
	atomic_ullong maybe, sure;
};

struct binder {
	struct track slots, hold;
};

struct world_shared {
	struct binder b[B_NR];
};

#define WORD_GEN	(1ULL << 32)
#define WORD_COUNT(x)	((uint32_t)(x))

static void word_up(atomic_ullong *word)
{
	atomic_fetch_add(word, WORD_GEN + 1);
}

static void word_down(atomic_ullong *word)
{
	atomic_fetch_add(word, WORD_GEN - 1);
}

/* The words of all binders, read at once (each word on its own). */
struct snap {
	uint64_t maybe[B_NR], sure[B_NR];
};

/* @hold: the words of having the file, else those of memslots. */
static void snap_take(struct world_shared *ws, bool hold, struct snap *s)
{
	int i;

	for (i = 0; i < B_NR; i++) {
		struct track *t = hold ? &ws->b[i].hold : &ws->b[i].slots;

		s->maybe[i] = atomic_load(&t->maybe);
		s->sure[i] = atomic_load(&t->sure);
	}
}

/* Did binder @i maybe count, between @a and @b? */
static bool binder_maybe(const struct snap *a, const struct snap *b, int i)
{
	return WORD_COUNT(a->maybe[i]) || a->maybe[i] != b->maybe[i] || WORD_COUNT(b->maybe[i]);
}

/* Did binder @i surely count all along, from @a to @b? */
static bool binder_sure(const struct snap *a, const struct snap *b, int i)
{
	return WORD_COUNT(a->sure[i]) && a->sure[i] == b->sure[i];
}

/* May a binder other than @me have counted, between @a and @b? */
static bool others_maybe(const struct snap *a, const struct snap *b, int me)
{
	int i;

	for (i = 0; i < B_NR; i++)
		if (i != me && binder_maybe(a, b, i))
			return true;
	return false;
}

/* Did a binder other than @me count all along, from @a to @b? */
static bool others_sure(const struct snap *a, const struct snap *b, int me)
{
	int i;

	for (i = 0; i < B_NR; i++)
		if (i != me && binder_sure(a, b, i))
			return true;
	return false;
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
	uint64_t rounds;	/* GUEST_SYNCs: rounds the guest completed */
};

struct world {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpus[NR_VCPUS];
	struct vcpu_runner runners[NR_VCPUS];
	pthread_rwlock_t vm_lock;	/* the chaos's uses of vm vs. freeing or replacing it */
	bool vm_gone;
	bool for_life;			/* KVM_CREATE_GUEST_MEMFD: the VM's until closed */
	int fd;
	char *shared;			/* the shared view, PAGES pages */
	uint64_t tag;
	pthread_mutex_t slot_lock[2];
	bool slot_present[2];
	atomic_bool stop_vcpus, stop_at_sync, stop_chaos;
	struct chaos chaos[NR_CHAOS];
	pthread_mutex_t own_lock;	/* the world's binds vs. its releases */
	bool own_held;			/* the world's VM has the file */
	bool bound_once;		/* past the world's first binds */
	struct kvm_vm *other;		/* another VM of this process */
	pthread_mutex_t other_lock;	/* its memslot, binds and releases */
	bool other_held;
	struct world_shared *ws;	/* shared with a child */
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

/* A tag no other VM of the run has had (never zero). */
static uint64_t new_tag(void)
{
	static unsigned int seq;

	return ((getpid() << 12 | (seq++ & 0xfff)) & 0xfffffff) | 1ULL << 28;
}

/*
 * Bind @size bytes of the file at @off to memslot @slot of @vm for
 * binder @me, which has the file if *@held (then the bind must not get
 * EBUSY) and takes it if not, and judge EBUSY or success against the
 * other binders.  The caller serialises @me's binds and releases.
 * Return 0 or the errno.
 */
static int bind_as(struct world *w, int me, bool *held, struct kvm_vm *vm, uint32_t slot,
		   uint64_t gpa, uint64_t size, void *hva, int fd, uint64_t off, const char *what)
{
	struct binder *b = &w->ws->b[me];
	bool taking = !*held;
	struct snap s0, s1;
	int r, err;

	word_up(&b->slots.maybe);
	if (taking)
		word_up(&b->hold.maybe);
	snap_take(w->ws, true, &s0);
	r = __vm_set_user_memory_region2(vm, slot, KVM_MEM_GUEST_MEMFD, gpa, size, hva, fd, off);
	err = r ? errno : 0;
	snap_take(w->ws, true, &s1);
	if (!r) {
		word_up(&b->slots.sure);
		if (taking) {
			word_up(&b->hold.sure);
			*held = true;
			if (others_sure(&s0, &s1, me))
				failure("%s: bound while another VM had the file all along", what);
		}
		return 0;
	}
	word_down(&b->slots.maybe);
	if (taking)
		word_down(&b->hold.maybe);
	if (err == EBUSY && w->for_life)
		failure("%s: EBUSY on a file of KVM_CREATE_GUEST_MEMFD", what);
	else if (err == EBUSY && !taking)
		failure("%s: EBUSY, but the file is this VM's", what);
	else if (err == EBUSY && !others_maybe(&s0, &s1, me))
		failure("%s: EBUSY while no other VM had the file", what);
	return err;
}

/* Delete memslot @slot of @vm, bound to the file for binder @me. */
static int unbind_as(struct world *w, int me, struct kvm_vm *vm, uint32_t slot,
		     const char *what)
{
	struct binder *b = &w->ws->b[me];

	word_down(&b->slots.sure);
	if (__vm_set_user_memory_region2(vm, slot, 0, 0, 0, NULL, -1, 0)) {
		failure("%s: deleting memslot %u: %s", what, slot, strerror(errno));
		word_up(&b->slots.sure);
		return -1;
	}
	word_down(&b->slots.maybe);
	return 0;
}

/*
 * GMEM_RELEASE_VM on @fd with @vm_fd, the VM of binder @me, which has
 * the file if *@held; judged against what the binders did around it
 * (see above), and counted.  The caller serialises @me's binds and
 * releases.  Return 0 or the errno.
 */
static int release_as(struct world *w, int me, bool *held, int fd, int vm_fd, const char *what)
{
	static const int wrong[B_NR] = { C_REL_WRONG_OWN, C_REL_WRONG_OTHER, C_REL_WRONG_CHILD };
	struct gmem_release_vm rel = { .vm_fd = vm_fd };
	struct binder *b = &w->ws->b[me];
	struct snap h0, h1, m0, m1;
	bool had = *held;
	int r, err;

	if (had)
		word_down(&b->hold.sure);
	snap_take(w->ws, true, &h0);
	snap_take(w->ws, false, &m0);
	r = ioctl(fd, GMEM_RELEASE_VM, &rel);
	err = r ? errno : 0;
	snap_take(w->ws, false, &m1);
	snap_take(w->ws, true, &h1);
	if (had && !err) {
		word_down(&b->hold.maybe);
		*held = false;
	} else if (had) {
		word_up(&b->hold.sure);
	}

	if (w->for_life) {
		if (err != EINVAL)
			failure("%s: %s on a file of KVM_CREATE_GUEST_MEMFD, expected EINVAL", what,
				err ? strerror(err) : "success");
		else
			atomic_fetch_add(&sh->count[C_REL_FOR_LIFE], 1);
	} else if (had) {
		/* Our file: EBUSY while a memslot of ours is bound, else 0. */
		if (!err && binder_sure(&m0, &m1, me))
			failure("%s: released while a memslot of the VM was bound all along", what);
		else if (err == EBUSY && !binder_maybe(&m0, &m1, me))
			failure("%s: EBUSY while no memslot of the VM was bound", what);
		else if (err && err != EBUSY)
			failure("%s: %s, expected EBUSY or success", what, strerror(err));
		else
			atomic_fetch_add(&sh->count[err ? C_REL_BUSY : C_REL_OK], 1);
	} else {
		/* Not ours: EINVAL while another VM has it, a no-op while none has. */
		if (!err && others_sure(&h0, &h1, me))
			failure("%s: succeeded on a file another VM had all along (no consent)",
				what);
		else if (err == EINVAL && !others_maybe(&h0, &h1, me))
			failure("%s: EINVAL while no VM had the file", what);
		else if (err && err != EINVAL)
			failure("%s: %s, expected EINVAL or a no-op", what, strerror(err));
		else
			atomic_fetch_add(&sh->count[err ? wrong[me] : C_REL_NOOP], 1);
	}
	if (err)
		check_errno(GMEM_ABI_RELEASE_VM, err, what, NULL);
	return err;
}

/* The world's data memslot @i on @vm: pages [i * 256, (i + 1) * 256) of the file. */
static int own_bind(struct world *w, struct kvm_vm *vm, int i, int fd, const char *what)
{
	uint64_t off = i * STRICT_PAGES * PAGE_SIZE;
	bool had;
	int err;

	pthread_mutex_lock(&w->own_lock);
	had = w->own_held;
	err = bind_as(w, B_OWN, &w->own_held, vm, i ? SLOT_B : SLOT_A, DATA_GPA + off,
		      STRICT_PAGES * PAGE_SIZE, w->shared + off, fd, off, what);
	pthread_mutex_unlock(&w->own_lock);
	if (!err && !had && w->bound_once)
		atomic_fetch_add(&sh->count[C_OWN_REGAINED], 1);
	return err;
}

/*
 * own_bind() until it gets past EBUSY (another VM has the released file
 * for a while), at most 100 tries; true if memslot @i is there.
 */
static bool own_rebind(struct world *w, struct kvm_vm *vm, int i, int fd, const char *what)
{
	int tries, err;

	for (tries = 0; tries < 100; tries++) {
		err = own_bind(w, vm, i, fd, what);
		if (err != EBUSY)
			break;
		atomic_fetch_add(&sh->count[C_OWN_BUSY], 1);
		usleep(200);
	}
	if (err && err != EBUSY)
		check_errno(GMEM_ABI_BIND, err, what, NULL);
	return !err;
}

static int own_unbind(struct world *w, struct kvm_vm *vm, int i, const char *what)
{
	return unbind_as(w, B_OWN, vm, i ? SLOT_B : SLOT_A, what);
}

/* The world's VM @vm lets the file go (@fd: an fd of the file). */
static int own_release(struct world *w, struct kvm_vm *vm, int fd, const char *what)
{
	int err;

	pthread_mutex_lock(&w->own_lock);
	err = release_as(w, B_OWN, &w->own_held, fd, vm->fd, what);
	pthread_mutex_unlock(&w->own_lock);
	return err;
}

/*
 * Another VM (binder @me: the worker's other VM or a child's) binds a
 * page of the file: EINVAL for a file of KVM_CREATE_GUEST_MEMFD, else
 * EBUSY while the world's VM (or another) has the file, success once it
 * was released.  Return 0 (the caller gives the file back with
 * foreign_give_back()) or the errno.
 */
static int foreign_bind(struct world *w, int me, bool *held, struct kvm_vm *vm, int fd,
			uint64_t off, const char *what)
{
	int err = bind_as(w, me, held, vm, OTHER_SLOT, DATA_GPA, PAGE_SIZE, w->shared, fd, off,
			  what);

	if (w->for_life) {
		if (err != EINVAL)
			failure("%s: %s, expected EINVAL (a file of KVM_CREATE_GUEST_MEMFD)", what,
				err ? strerror(err) : "success");
		if (!err) {
			unbind_as(w, me, vm, OTHER_SLOT, what);
			word_down(&w->ws->b[me].hold.sure);
			word_down(&w->ws->b[me].hold.maybe);
			*held = false;
			err = EINVAL;
		}
	} else if (err && err != EBUSY) {
		failure("%s: %s, expected EBUSY or success", what, strerror(err));
	}
	return err;
}

/* The foreign VM gives the file back: its memslot, then the release (0). */
static void foreign_give_back(struct world *w, int me, bool *held, struct kvm_vm *vm, int fd,
			      const char *what)
{
	/* Judged by release_as(): with the memslot gone, it must be 0. */
	if (!unbind_as(w, me, vm, OTHER_SLOT, what))
		release_as(w, me, held, fd, vm->fd, what);
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
			vr->rounds++;
			/* A handoff: stop between rounds, where the marks are known. */
			if (atomic_load(&w->stop_at_sync))
				return NULL;
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

static void start_vcpus(struct world *w)
{
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		w->runners[i].w = w;
		w->runners[i].vcpu = w->vcpus[i];
		pthread_create(&w->runners[i].thread, NULL, vcpu_thread, &w->runners[i]);
	}
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

/*
 * A VMM's conversion, on the pages that may convert: attribute, then
 * punch, both before a handoff may start (a page made shared is empty
 * in the file by then: a successor finds there only what its
 * predecessor wrote while the page was private).
 */
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
	if (r) {
		put_vm(w);
		for (const int *e = kvm_errnos; *e; e++)
			if (*e == errno)
				return;
		failure("KVM_SET_MEMORY_ATTRIBUTES: %s", strerror(errno));
		return;
	}
	if (shared && fallocate(c->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				first * PAGE_SIZE, n * PAGE_SIZE))
		check_errno(GMEM_ABI_FALLOCATE, errno, "punch on conversion", NULL);
	put_vm(w);
}

/*
 * Delete data memslots under the vCPUs (one, or both), then bind them
 * again: the file stays the world's VM's meanwhile, unless a release
 * (op_release) lets it go, and then the re-creation races the other
 * VMs' binds (EBUSY while one has the file; it gives it back soon).
 */
static void op_memslot(struct world *w, struct chaos *c)
{
	unsigned int mask = 1 + below(&c->rng, 3), locked = 0;
	struct kvm_vm *vm = get_vm(w);
	int i;

	if (!vm)
		return;
	for (i = 0; i < 2; i++)
		if ((mask & 1 << i) && !pthread_mutex_trylock(&w->slot_lock[i]))
			locked |= 1 << i;
	for (i = 0; i < 2; i++)
		if ((locked & 1 << i) && w->slot_present[i] &&
		    !own_unbind(w, vm, i, "op memslot"))
			w->slot_present[i] = false;
	if (locked)
		usleep(below(&c->rng, 2000));
	for (i = 0; i < 2; i++) {
		if (!(locked & 1 << i))
			continue;
		if (w->slot_present[i]) {	/* its deletion failed */
			pthread_mutex_unlock(&w->slot_lock[i]);
			continue;
		}
		/* EBUSY: released, and another VM has the file for a while. */
		if (own_rebind(w, vm, i, c->fd, "re-creating a memslot"))
			w->slot_present[i] = true;
		pthread_mutex_unlock(&w->slot_lock[i]);
	}
	put_vm(w);
}

/*
 * fdinfo's gmem-vm names the file's VM, from its first bind until it
 * releases the file, and is absent while the file has none; a file of
 * KVM_CREATE_GUEST_MEMFD has it always.
 */
static void op_fdinfo(struct world *w, struct chaos *c)
{
	char path[64], buf[4096], want[32];
	struct snap s0, s1;
	struct stat st;
	const char *vm;
	ssize_t n = -1;
	int fd;

	if (fstat(c->fd, &st) || st.st_size != PAGES * PAGE_SIZE)
		failure("fstat: %s, size %lld", strerror(errno), (long long)st.st_size);
	if (on_guest_memfd())
		return;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", c->fd);
	snap_take(w->ws, true, &s0);
	fd = open(path, O_RDONLY);
	if (fd >= 0)
		n = read(fd, buf, sizeof(buf) - 1);
	snap_take(w->ws, true, &s1);
	if (n <= 0) {
		failure("fdinfo of a gmem file: %s", strerror(errno));
		goto out;
	}
	buf[n] = 0;
	vm = strstr(buf, "gmem-vm:");
	if (w->for_life) {
		if (!vm)
			failure("fdinfo of a file of KVM_CREATE_GUEST_MEMFD: no gmem-vm");
	} else if (vm && !others_maybe(&s0, &s1, -1)) {
		failure("fdinfo: gmem-vm while no VM had the file");
	} else if (!vm && others_sure(&s0, &s1, -1)) {
		failure("fdinfo: no gmem-vm while a VM had the file all along");
	}
	/* A VM of this process, unless a child's may have had the file. */
	snprintf(want, sizeof(want), "gmem-vm:\tkvm-%d\n", getpid());
	if (vm && !binder_maybe(&s0, &s1, B_CHILD) && strncmp(vm, want, strlen(want)))
		failure("fdinfo: %.40s, expected %s", vm, want);
out:
	if (fd >= 0)
		close(fd);
}

/*
 * Another VM binds a page of the file, racing the world's memslot
 * deletions and re-creations, its releases and its handoffs: EBUSY
 * while the world's VM has the file, whatever its memslots; success only
 * once the world released it.  The other VM gives the file back after a
 * while (its memslot deleted, then released with its own VM's fd),
 * during which the world's own binds get EBUSY.
 */
static void op_bind_other(struct world *w, struct chaos *c)
{
	uint64_t off = below(&c->rng, PAGES) * PAGE_SIZE;
	int err;

	pthread_mutex_lock(&w->other_lock);
	err = foreign_bind(w, B_OTHER, &w->other_held, w->other, c->fd, off,
			   "binding to another VM");
	if (!err) {
		atomic_fetch_add(&sh->count[C_OTHER_BOUND], 1);
		usleep(below(&c->rng, 1000));
		foreign_give_back(w, B_OTHER, &w->other_held, w->other, c->fd,
				  "the other VM gives the file back");
	} else if (err == EBUSY) {
		atomic_fetch_add(&sh->count[C_OTHER_BUSY], 1);
	}
	pthread_mutex_unlock(&w->other_lock);
}

/*
 * GMEM_RELEASE_VM, in one of three ways:
 *  - a re-layout: the world deletes both its memslots, releases the file
 *    (0: no memslot of its VM is left; EINVAL on a file for life), and
 *    binds them again, racing the other VMs for the file (EBUSY and
 *    retry while one has it);
 *  - the world's VM, racing the memslot deletions and re-creations of
 *    the other chaos thread: EBUSY while one of its memslots is bound, 0
 *    once both are gone (then op_memslot's re-creation races the other
 *    VMs for it);
 *  - by a VM that does not have the file (the other VM's fd), which must
 *    not take it from the world's VM: EINVAL while the world has it, a
 *    no-op while nobody has it; and by fds that are no VM's (the file's
 *    own: EINVAL; none: EBADF).
 */
static void op_release(struct world *w, struct chaos *c)
{
	unsigned int how = below(&c->rng, 8), locked = 0;
	struct gmem_release_vm rel = { .vm_fd = -1 };
	struct kvm_vm *vm;
	int i;

	if (on_guest_memfd())
		return;		/* no such ioctl on KVM's guest_memfd */
	if (how >= 6) {
		pthread_mutex_lock(&w->other_lock);
		release_as(w, B_OTHER, &w->other_held, c->fd, w->other->fd,
			   "release naming the other VM");
		pthread_mutex_unlock(&w->other_lock);
		rel.vm_fd = how == 6 ? c->fd : -1;
		if (!ioctl(c->fd, GMEM_RELEASE_VM, &rel))
			failure("release naming fd %d: success", rel.vm_fd);
		else if (errno != (how == 6 ? EINVAL : EBADF))
			failure("release naming fd %d: %s, expected %s", rel.vm_fd,
				strerror(errno), how == 6 ? "EINVAL" : "EBADF");
		else
			atomic_fetch_add(&sh->count[C_REL_NOT_VM], 1);
		return;
	}
	vm = get_vm(w);
	if (!vm)
		return;
	if (how >= 3) {
		own_release(w, vm, c->fd, "release racing memslot changes");
		put_vm(w);
		return;
	}
	for (i = 0; i < 2; i++)
		if (!pthread_mutex_trylock(&w->slot_lock[i]))
			locked |= 1 << i;
	if (locked != 3)
		goto out;
	for (i = 0; i < 2; i++)
		if (w->slot_present[i] && !own_unbind(w, vm, i, "re-layout"))
			w->slot_present[i] = false;
	/* No memslot of the VM is left: 0 if the file is its VM's (judged). */
	if (!w->slot_present[0] && !w->slot_present[1])
		own_release(w, vm, c->fd, "re-layout: release");
	usleep(below(&c->rng, 2000));	/* the file is any VM's now */
	for (i = 0; i < 2; i++) {
		if (!w->slot_present[i] &&
		    own_rebind(w, vm, i, c->fd, "re-layout: re-creating a memslot"))
			w->slot_present[i] = true;
	}
out:
	for (i = 0; i < 2; i++)
		if (locked & 1 << i)
			pthread_mutex_unlock(&w->slot_lock[i]);
	put_vm(w);
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
	{ "bind-other-vm",	4,  op_bind_other },
	{ "release-vm",		4,  op_release },
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

/*
 * A child that holds the file, punches and allocates, and now and then
 * binds it to a VM of its own (EBUSY while the parent's VM has the file;
 * success once the parent released it, and then the child gives it
 * back), or tries to take it with GMEM_RELEASE_VM naming its own VM: it
 * has the file's fd, but not the fd of the file's VM, so EINVAL (the
 * consent rule), a no-op if nobody has the file.  Then it exits.
 */
static void child_holds_file(struct world *w, uint64_t rng)
{
	struct kvm_vm *vm;
	bool held = false;
	int i, err, ops = 0;

	if (fork())
		return;
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	for (i = 0; i < 200; i++, ops++) {
		uint64_t off, len;

		random_range(&rng, &off, &len);
		if (fallocate(w->fd, FALLOC_FL_KEEP_SIZE |
			      (below(&rng, 2) ? FALLOC_FL_PUNCH_HOLE : 0), off, len))
			check_errno(GMEM_ABI_FALLOCATE, errno, "child fallocate", NULL);
		if (!i || !below(&rng, 8)) {
			err = foreign_bind(w, B_CHILD, &held, vm, w->fd, off,
					   "child: binding to its VM");
			if (!err) {
				atomic_fetch_add(&sh->count[C_CHILD_BOUND], 1);
				usleep(below(&rng, 1000));
				foreign_give_back(w, B_CHILD, &held, vm, w->fd,
						  "child: giving the file back");
			} else if (err == EBUSY) {
				atomic_fetch_add(&sh->count[C_CHILD_BUSY], 1);
			}
			ops++;
		}
		if (!on_guest_memfd() && (i == 1 || !below(&rng, 8))) {
			release_as(w, B_CHILD, &held, w->fd, vm->fd,
				   "child: release naming its own VM");
			ops++;
		}
		if (!below(&rng, 8))
			usleep(1000);
	}
	atomic_fetch_add(&sh->count[C_CHILD_OPS], ops + 1);
	kvm_vm_free(vm);
	/* Its exit drops what may be the file's last reference, and the VM's. */
	_exit(0);
}

/*
 * A VMM's live update, under the chaos: the old VM's vCPUs stop between
 * two rounds, its memslots go, it releases the file (GMEM_RELEASE_VM with
 * its fd), a new VM binds the same file and its guests go on with what
 * the old ones left there; the old VM is freed, and must be gone at
 * once.  The file is any VM's between the release and the new binds,
 * and the other VM's binds race for it: the new VM's binds get EBUSY
 * until it is given back.  A file of KVM_CREATE_GUEST_MEMFD stays the
 * old VM's (EINVAL for the release and the new VM), which then goes on.
 */
static void hand_off(struct world *w, uint64_t *rng)
{
	uint64_t old_tag = w->tag, tag = new_tag(), rounds[NR_VCPUS];
	struct kvm_vcpu *vcpus[NR_VCPUS];
	struct kvm_vm *old = w->vm, *vm;
	struct timespec ts;
	bool handed = false;
	char dir[64];
	int i, err, tries;

	/* The old guests end their round: the marks they leave are known. */
	atomic_store(&w->stop_at_sync, true);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	for (i = 0; i < NR_VCPUS; i++) {
		if (pthread_timedjoin_np(w->runners[i].thread, NULL, &ts)) {
			failure("handoff: vCPU %d did not end its round within 20 s", i);
			atomic_store(&w->stop_vcpus, true);
			pthread_join(w->runners[i].thread, NULL);
		}
		rounds[i] = w->runners[i].rounds;
	}
	atomic_store(&w->stop_at_sync, false);
	if (atomic_load(&w->stop_vcpus)) {
		/* Reported: no handoff, the old guests go on. */
		atomic_store(&w->stop_vcpus, false);
		start_vcpus(w);
		return;
	}

	/* The new VMM's VM, ready before the old one lets go. */
	vm = __vm_create_with_vcpus(protected_shape, NR_VCPUS, 0, guest_code, vcpus);
	virt_map(vm, DATA_GPA, DATA_GPA, PAGES);

	pthread_rwlock_wrlock(&w->vm_lock);
	for (i = 0; i < 2; i++)
		pthread_mutex_lock(&w->slot_lock[i]);
	for (i = 0; i < 2; i++)
		if (w->slot_present[i] && !own_unbind(w, old, i, "handoff"))
			w->slot_present[i] = false;
	if (w->slot_present[0] || w->slot_present[1])
		goto refused;	/* reported: the file stays the old VM's */

	/*
	 * The release: 0 (the old VM lets go; or a no-op if a chaos release
	 * did already), EINVAL on a file for life, or if another VM took the
	 * file after a chaos release (its binds are retried below).
	 */
	if (!on_guest_memfd())
		own_release(w, old, w->fd, "handoff: release");
	if (w->own_held && !w->for_life)
		goto refused;	/* reported */
	usleep(below(rng, 2000));	/* the file is any VM's */

	if (w->for_life) {
		/* KVM's contract: the file is the old VM's for life. */
		for (i = 0; i < 2; i++) {
			err = own_bind(w, vm, i, w->fd, "handoff of a file for life");
			if (err != EINVAL)
				failure("handoff of a file of KVM_CREATE_GUEST_MEMFD to a new VM: %s, expected EINVAL",
					err ? strerror(err) : "success");
			if (!err)
				own_unbind(w, vm, i, "handoff of a file for life");
		}
		atomic_fetch_add(&sh->count[C_HANDOFFS_REFUSED], 1);
		goto refused;
	}

	/* What the old VM left in the shared view is not the new one's. */
	memset(w->shared, 0, PAGES * PAGE_SIZE);
	for (i = 0; i < 2; i++) {
		for (tries = 0; tries < 20000; tries++) {
			err = own_bind(w, vm, i, w->fd, "handoff: binding to the new VM");
			if (err != EBUSY)
				break;
			/* Another VM has the file for a moment (judged above). */
			atomic_fetch_add(&sh->count[C_OWN_BUSY], 1);
			usleep(100);
		}
		if (err)
			failure("handoff: memslot %d of the new VM: %s", i, strerror(err));
		else
			w->slot_present[i] = true;
	}
	vm_set_memory_attributes(vm, DATA_GPA, PAGES * PAGE_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE);
	w->vm = vm;
	w->tag = tag;
	for (i = 0; i < NR_VCPUS; i++) {
		w->vcpus[i] = vcpus[i];
		w->runners[i].rounds = 0;
		vcpu_args_set(vcpus[i], 4, tag, (uint64_t)i, old_tag, rounds[i]);
	}
	start_vcpus(w);
	atomic_fetch_add(&sh->count[C_HANDOFFS], 1);
	handed = true;
	goto out;

refused:
	/* The old VM keeps the file and goes on; the new one goes. */
	for (i = 0; i < 2; i++) {
		if (w->slot_present[i])
			continue;
		err = own_bind(w, old, i, w->fd, "handoff refused: back to the old VM");
		if (err)
			failure("handoff refused: memslot %d back on the old VM: %s", i,
				strerror(err));
		else
			w->slot_present[i] = true;
	}
	start_vcpus(w);
	old = vm;
out:
	for (i = 0; i < 2; i++)
		pthread_mutex_unlock(&w->slot_lock[i]);
	pthread_rwlock_unlock(&w->vm_lock);

	/*
	 * The VM the file did not end up with goes.  After a handoff, the
	 * file let the old VM go: it must go now.
	 */
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/kvm/%d-%d", getpid(), old->fd);
	kvm_vm_free(old);
	for (tries = 0; handed && !access(dir, F_OK) && tries < 200; tries++)
		usleep(10000);
	if (handed && !access(dir, F_OK))
		failure("handoff: the old VM (%s) lives on after its fds were closed", dir);
}

static void run_world(uint64_t *rng, struct kvm_vm *other, double seconds)
{
	struct world *w = calloc(1, sizeof(*w));
	int i, how = below(rng, 5), handoffs = 0;
	pid_t child = 0;

	TEST_ASSERT(w, "calloc");
	w->other = other;
	w->ws = mmap(NULL, sizeof(*w->ws), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	TEST_ASSERT(w->ws != MAP_FAILED, "mmap");
	w->tag = new_tag();
	w->vm = __vm_create_with_vcpus(protected_shape, NR_VCPUS, 0, guest_code, w->vcpus);
	if (takeover_on && !below(rng, 3)) {
		w->fd = vm_create_guest_memfd(w->vm, PAGES * PAGE_SIZE, 0);
		if (fdinfo_value(w->fd, "gmem-id") < 0)
			failure("KVM_CREATE_GUEST_MEMFD with takeover on: not a gmem file");
		atomic_fetch_add(&sh->count[C_TAKEOVER_WORLDS], 1);
		w->for_life = true;
	} else {
		w->fd = private_file(w->vm, PAGES * PAGE_SIZE);
		w->for_life = on_guest_memfd();
	}
	w->shared = mmap(NULL, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(w->shared != MAP_FAILED, "mmap");
	pthread_mutex_init(&w->own_lock, NULL);
	if (w->for_life) {
		/* The VM's from creation. */
		w->own_held = true;
		word_up(&w->ws->b[B_OWN].hold.maybe);
		word_up(&w->ws->b[B_OWN].hold.sure);
	}
	for (i = 0; i < 2; i++) {
		int err;

		pthread_mutex_init(&w->slot_lock[i], NULL);
		err = own_bind(w, w->vm, i, w->fd, "memslot");
		TEST_ASSERT(!err, "memslot: %s", strerror(err));
		w->slot_present[i] = true;
	}
	w->bound_once = true;
	pthread_mutex_init(&w->other_lock, NULL);
	virt_map(w->vm, DATA_GPA, DATA_GPA, PAGES);
	vm_set_memory_attributes(w->vm, DATA_GPA, PAGES * PAGE_SIZE,
				 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	pthread_rwlock_init(&w->vm_lock, NULL);
	for (i = 0; i < NR_VCPUS; i++)
		vcpu_args_set(w->vcpus[i], 4, w->tag, (uint64_t)i, 0UL, 0UL);
	start_vcpus(w);
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
	if (how == 4) {
		/*
		 * Handed off to a new VM, once or more, under the chaos; then
		 * one of the endings below (but the one whose chaos stops by
		 * itself).
		 */
		atomic_fetch_add(&sh->count[C_TEARDOWN_HANDED_OFF], 1);
		handoffs = 1 + below(rng, 3);
		how = 1 + below(rng, 3);
		for (i = 0; i < handoffs; i++) {
			usleep(seconds * 1e6 / (handoffs + 1));
			hand_off(w, rng);
		}
		seconds /= handoffs + 1;
	}
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
		/*
		 * A child holds the file; the VM dies when the child exits, or
		 * when its fds close if it released the file first.
		 */
		atomic_fetch_add(&sh->count[C_TEARDOWN_CHILD], 1);
		child_holds_file(w, rnd(rng));
		usleep(below(rng, 100000));	/* its binds race the world's */
		stop_chaos(w);
		stop_vcpus(w);
		if (below(rng, 2)) {
			/* The world lets the file go: the child's VM may take it. */
			for (i = 0; i < 2; i++)
				if (w->slot_present[i] && !own_unbind(w, w->vm, i, "child ending"))
					w->slot_present[i] = false;
			if (!on_guest_memfd())
				own_release(w, w->vm, w->fd, "child ending: release");
		}
		free_vm(w);
		close(w->fd);
		child = 1;
		break;
	default:
		/* Memslots deleted under the vCPUs, then the VM, then the file. */
		atomic_fetch_add(&sh->count[C_TEARDOWN_MEMSLOTS_FIRST], 1);
		stop_chaos(w);
		for (i = 0; i < 2; i++)
			TEST_ASSERT(!w->slot_present[i] ||
				    !own_unbind(w, w->vm, i, "memslots first"),
				    "delete memslot: %s", strerror(errno));
		usleep(below(rng, 50000));
		stop_vcpus(w);
		close(w->fd);
		free_vm(w);
		break;
	}
	munmap(w->shared, PAGES * PAGE_SIZE);
	munmap(w->ws, sizeof(*w->ws));
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
	TH_LOG("stress: %d processes for %.1f s (seed %llu): %llu host operations, %lu guest page accesses, %lu worlds, %lu handoffs",
	       procs, t1 - t0, (unsigned long long)seed, ops,
	       (unsigned long)sh->count[C_GUEST_ACCESSES], (unsigned long)sh->count[C_WORLDS],
	       (unsigned long)sh->count[C_HANDOFFS]);
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
	/* A minute has a dozen handoff worlds; a few seconds may have none. */
	if (secs >= 30 && !on_guest_memfd())
		EXPECT_LT(0UL, (unsigned long)sh->count[C_HANDOFFS]);
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
