// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fault-injection sweeps over gmem's ABI calls, no guests.
 *
 * For every call path (GMEM_CREATE, fallocate allocate and punch-hole,
 * GMEM_WRITE, GMEM_SET_ATTRIBUTES, the release at the last close) the
 * test makes the 1st, 2nd, 3rd, ... allocation of the call fail with
 * /proc/thread-self/fail-nth (gmem_failnth.h) until the call makes fewer
 * allocations than that.  For every N:
 *  - the call succeeds, or fails with an errno that include/uapi/gmem.h
 *    documents for running out of memory (argument errors such as
 *    EINVAL or EFAULT would be wrong: the arguments are valid);
 *  - the file is in a state the ABI allows after that result, and the
 *    call repeated without injection completes it;
 *  - once everything is closed, gmem's counters are back at their
 *    baseline, and so is memory.current of the memory cgroup the test
 *    runs in (when cgroup v2 has a memory controller), within a slack.
 *
 * Each test logs how many injection points its path has; the last one
 * prints the totals.  Needs root, debugfs and a kernel with
 * CONFIG_FAULT_INJECTION, CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and
 * CONFIG_FAULT_INJECTION_DEBUG_FS; skips otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/mempolicy.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"
#include "gmem_failnth.h"

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define PAGE		4096ULL

#define FILE_SIZE	(8 * MiB)
#define NR_PAGES	(FILE_SIZE / PAGE)

#define GMEM_ALLOCATE	FALLOC_FL_KEEP_SIZE
#define GMEM_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

#define CGROUP_ROOT	"/sys/fs/cgroup"
#define MEMCG_SLACK	(2 * MiB)	/* per-cpu charge stocks, slab */

/* The source of GMEM_WRITE, touched before any sweep. */
#define WRITE_SIZE	(96 * KiB)
static unsigned char write_src[WRITE_SIZE] __attribute__((aligned(4096)));

/*
 * Per-path results, in memory shared with the harness's parent process
 * (every test runs in a child of its own), for the summary at the end.
 */
#define MAX_PATHS	16

struct path_result {
	char name[32];
	unsigned int points;
	unsigned int failed;	/* calls that failed under injection */
	double seconds;
};

static struct {
	unsigned int nr;
	struct path_result r[MAX_PATHS];
} *results;

static void __attribute__((constructor)) results_init(void)
{
	results = mmap(NULL, sizeof(*results), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (results == MAP_FAILED)
		results = NULL;
	memset(write_src, 0xa5, sizeof(write_src));
}

/*
 * One run of a path: what setup() built, what run() did under
 * injection, what check() saw.
 */
struct ctx {
	int devfd;
	int fd;			/* the file under test, or -1 */
	unsigned int n;		/* fail-nth of this run */
	unsigned int failed_at;	/* index of the call that failed, if any */
	const char *call;	/* that call, for messages */
	struct gmem_write w;
	unsigned long long before;	/* bytes allocated before run() */
};

struct path {
	const char *name;
	/* Without injection: the file and state run() starts from. */
	void (*setup)(struct __test_metadata *_metadata, struct ctx *c);
	/* Under injection, and nothing else: 0, or the errno of a failed call. */
	int (*run)(struct ctx *c);
	/* Without injection: @err is allowed, the state fits it, complete it. */
	void (*check)(struct __test_metadata *_metadata, struct ctx *c, int err);
};

static const char *errno_name(int err)
{
	switch (err) {
	case 0: return "success";
	case ENOMEM: return "ENOMEM";
	case EINTR: return "EINTR";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case EBADF: return "EBADF";
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	case EPERM: return "EPERM";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EHWPOISON: return "EHWPOISON";
	default: return strerror(err);
	}
}

/* Bytes allocated to @fd according to fstat (st_blocks are 512 bytes). */
#define allocated(_metadata, fd) ({					\
	struct stat __st;						\
	ASSERT_EQ(0, fstat((fd), &__st)) TH_LOG("fstat: %s", strerror(errno)); \
	(unsigned long long)__st.st_blocks * 512;			\
})

#define falloc_ok(_metadata, fd, mode, off, len) do {			\
	unsigned long long __o = (off), __l = (len);			\
	int __m = (mode);						\
	ASSERT_EQ(0, fallocate((fd), __m, __o, __l))			\
		TH_LOG("fallocate mode %#x offset %#llx len %#llx without injection: %s", \
		       __m, __o, __l, strerror(errno));			\
} while (0)

/* @err is one of the errnos the ABI documents for the call. */
#define expect_errno_in(_metadata, c, err, allowed, nr, doc) do {	\
	unsigned int __i;						\
	int __ok = 0;							\
	for (__i = 0; __i < (nr); __i++)				\
		__ok |= (err) == (allowed)[__i];			\
	ASSERT_TRUE(__ok)						\
		TH_LOG("%s with fail-nth %u: expected success or %s, got %s", \
		       (c)->call, (c)->n, doc, errno_name(err));	\
} while (0)

static void new_file(struct __test_metadata *_metadata, struct ctx *c, __u64 flags)
{
	c->fd = gmem_create(_metadata, c->devfd, FILE_SIZE, flags);
}

/* GMEM_CREATE: its errors for running out of memory or fds. */
static const int create_errnos[] = { ENOMEM, EMFILE, ENFILE };

static void setup_nothing(struct __test_metadata *_metadata, struct ctx *c)
{
	c->call = "GMEM_CREATE";
}

static int run_create(struct ctx *c, __u64 flags)
{
	struct gmem_create args = { .size = FILE_SIZE, .flags = flags };

	c->fd = ioctl(c->devfd, GMEM_CREATE, &args);
	return c->fd < 0 ? errno : 0;
}

static int run_create_plain(struct ctx *c)
{
	return run_create(c, GMEM_CREATE_CLOEXEC);
}

static int run_create_userfault(struct ctx *c)
{
	return run_create(c, GMEM_CREATE_USERFAULT);
}

static void check_create(struct __test_metadata *_metadata, struct ctx *c, int err,
			 __u64 flags)
{
	struct stat st;

	if (err) {
		expect_errno_in(_metadata, c, err, create_errnos, ARRAY_SIZE(create_errnos),
				"ENOMEM, EMFILE or ENFILE");
		ASSERT_GT(0, c->fd);
		/* Nothing is left in the way: the same call works now. */
		new_file(_metadata, c, flags);
	}
	ASSERT_EQ(0, fstat(c->fd, &st)) TH_LOG("fstat: %s", strerror(errno));
	EXPECT_EQ(FILE_SIZE, (unsigned long long)st.st_size)
		TH_LOG("GMEM_CREATE with fail-nth %u: st_size %lld, expected %llu",
		       c->n, (long long)st.st_size, FILE_SIZE);
	EXPECT_EQ(0, st.st_blocks)
		TH_LOG("GMEM_CREATE with fail-nth %u: a new file has %lld blocks",
		       c->n, (long long)st.st_blocks);
	EXPECT_EQ(flags, gmem_fdinfo(_metadata, c->fd, "gmem-flags") & ~GMEM_CREATE_BLOCKS);
	if (flags & GMEM_CREATE_USERFAULT) {
		struct gmem_attributes a = { .offset = 0 };

		ASSERT_EQ(0, ioctl(c->fd, GMEM_GET_ATTRIBUTES, &a))
			TH_LOG("GMEM_GET_ATTRIBUTES: %s", strerror(errno));
		EXPECT_EQ(GMEM_ATTR_USERFAULT, a.attributes)
			TH_LOG("GMEM_CREATE_USERFAULT with fail-nth %u %s: attributes %#llx at 0, expected USERFAULT",
			       c->n, errno_name(err), (unsigned long long)a.attributes);
		EXPECT_EQ(FILE_SIZE, a.size)
			TH_LOG("GMEM_CREATE_USERFAULT with fail-nth %u %s: first run %#llx bytes, expected the whole file",
			       c->n, errno_name(err), (unsigned long long)a.size);
	}
}

static void check_create_plain(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	check_create(_metadata, c, err, GMEM_CREATE_CLOEXEC);
}

static void check_create_userfault(struct __test_metadata *_metadata, struct ctx *c,
				   int err)
{
	check_create(_metadata, c, err, GMEM_CREATE_USERFAULT);
}

/*
 * fallocate allocate.  ENOMEM may keep any part of what the call
 * allocated (the ABI allows from nothing to all of it); what was there
 * before stays, and the call repeated completes the range.
 */
struct falloc_case {
	unsigned long long pre_off, pre_len;	/* populated by setup, if pre_len */
	unsigned long long off, len;		/* the call under injection */
	unsigned long long total;		/* allocated after it succeeded */
};

/* Two whole 2 MiB blocks of an empty file. */
static const struct falloc_case falloc_blocks = {
	.off = 0, .len = 4 * MiB, .total = 4 * MiB,
};

/*
 * Single pages, two whole blocks, single pages again, two of which are
 * there already.
 */
static const struct falloc_case falloc_unaligned = {
	.pre_off = 6 * MiB + 8 * KiB, .pre_len = 8 * KiB,
	.off = 2 * MiB - 32 * KiB, .len = 4 * MiB + 64 * KiB,
	.total = 4 * MiB + 64 * KiB,
};

static const struct falloc_case *falloc_case;

static void setup_falloc(struct __test_metadata *_metadata, struct ctx *c)
{
	new_file(_metadata, c, 0);
	if (falloc_case->pre_len)
		falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, falloc_case->pre_off,
			  falloc_case->pre_len);
	c->before = falloc_case->pre_len;
	c->call = "fallocate(FALLOC_FL_KEEP_SIZE)";
}

static int run_falloc(struct ctx *c)
{
	return fallocate(c->fd, GMEM_ALLOCATE, falloc_case->off, falloc_case->len) ?
	       errno : 0;
}

static const int falloc_errnos[] = { ENOMEM };

static void check_falloc(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	unsigned long long a = allocated(_metadata, c->fd);

	if (err) {
		expect_errno_in(_metadata, c, err, falloc_errnos, ARRAY_SIZE(falloc_errnos), "ENOMEM");
		ASSERT_EQ(0ULL, a % PAGE) TH_LOG("%llu bytes allocated", a);
		ASSERT_LE(c->before, a)
			TH_LOG("fallocate with fail-nth %u failed with ENOMEM: %llu bytes allocated, fewer than the %llu before",
			       c->n, a, c->before);
		ASSERT_GE(falloc_case->total, a)
			TH_LOG("fallocate with fail-nth %u failed with ENOMEM: %llu bytes allocated, more than the whole range (%llu)",
			       c->n, a, falloc_case->total);
		falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, falloc_case->off,
			  falloc_case->len);
		a = allocated(_metadata, c->fd);
	}
	ASSERT_EQ(falloc_case->total, a)
		TH_LOG("fallocate with fail-nth %u (%s, then completed): %llu bytes allocated, expected %llu",
		       c->n, errno_name(err), a, falloc_case->total);
}

/*
 * Punch-hole of a partly populated file: one block whole, one block
 * split, single pages.  The ABI documents no ENOMEM for punching (only
 * an allocation runs out of memory).
 */
#define PUNCH_OFF	(1 * MiB)
#define PUNCH_LEN	(5 * MiB + 32 * KiB)
#define PUNCH_LEFT	(1 * MiB + 32 * KiB)

static void setup_punch(struct __test_metadata *_metadata, struct ctx *c)
{
	new_file(_metadata, c, 0);
	falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, 0, 4 * MiB);
	falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, 6 * MiB, 64 * KiB);
	c->call = "fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)";
}

static int run_punch(struct ctx *c)
{
	return fallocate(c->fd, GMEM_PUNCH, PUNCH_OFF, PUNCH_LEN) ? errno : 0;
}

static void check_punch(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	unsigned long long a;

	ASSERT_EQ(0, err)
		TH_LOG("punch-hole with fail-nth %u: expected success, got %s",
		       c->n, errno_name(err));
	a = allocated(_metadata, c->fd);
	ASSERT_EQ(PUNCH_LEFT, a)
		TH_LOG("punch-hole with fail-nth %u: %llu bytes left, expected %llu",
		       c->n, a, PUNCH_LEFT);
}

/*
 * GMEM_WRITE over holes and allocated pages, across a block boundary.
 * On ENOMEM, @written pages hold the data and the rest are untouched:
 * no hole after them was filled.
 */
#define WRITE_OFF	(2 * MiB - 32 * KiB)
#define WRITE_PRE_OFF	(2 * MiB)
#define WRITE_PRE_LEN	(16 * KiB)

static void setup_write(struct __test_metadata *_metadata, struct ctx *c)
{
	new_file(_metadata, c, 0);
	falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, WRITE_PRE_OFF, WRITE_PRE_LEN);
	memset(&c->w, 0, sizeof(c->w));
	/* Output only: the call must store it whatever happens. */
	c->w.written = ~0ULL;
	c->w.offset = WRITE_OFF;
	c->w.size = WRITE_SIZE;
	c->w.user_addr = (uintptr_t)write_src;
	c->call = "GMEM_WRITE";
}

static int run_write(struct ctx *c)
{
	return ioctl(c->fd, GMEM_WRITE, &c->w) ? errno : 0;
}

static const int write_errnos[] = { ENOMEM };

static unsigned long long overlap(unsigned long long a, unsigned long long alen,
				  unsigned long long b, unsigned long long blen)
{
	unsigned long long lo = a > b ? a : b;
	unsigned long long hi = a + alen < b + blen ? a + alen : b + blen;

	return hi > lo ? hi - lo : 0;
}

static void check_write(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	unsigned long long written = c->w.written, a, want;
	struct gmem_write rest;

	if (err) {
		expect_errno_in(_metadata, c, err, write_errnos, ARRAY_SIZE(write_errnos), "ENOMEM");
		ASSERT_NE(~0ULL, written)
			TH_LOG("GMEM_WRITE with fail-nth %u failed with %s and did not store written",
			       c->n, errno_name(err));
		ASSERT_EQ(0ULL, written % PAGE) TH_LOG("written %#llx", written);
		ASSERT_GT(WRITE_SIZE, written)
			TH_LOG("GMEM_WRITE with fail-nth %u failed with %s but says it wrote everything",
			       c->n, errno_name(err));
		a = allocated(_metadata, c->fd);
		want = WRITE_PRE_LEN + written -
		       overlap(WRITE_OFF, written, WRITE_PRE_OFF, WRITE_PRE_LEN);
		ASSERT_EQ(want, a)
			TH_LOG("GMEM_WRITE with fail-nth %u failed with %s after %llu bytes: %llu bytes allocated, expected %llu",
			       c->n, errno_name(err), written, a, want);
		memset(&rest, 0, sizeof(rest));
		rest.offset = WRITE_OFF + written;
		rest.size = WRITE_SIZE - written;
		rest.user_addr = (uintptr_t)write_src + written;
		ASSERT_EQ(0, ioctl(c->fd, GMEM_WRITE, &rest))
			TH_LOG("GMEM_WRITE of the rest without injection: %s", strerror(errno));
		written += rest.written;
	}
	ASSERT_EQ(WRITE_SIZE, written)
		TH_LOG("GMEM_WRITE with fail-nth %u (%s): wrote %llu bytes, expected %llu",
		       c->n, errno_name(err), written, WRITE_SIZE);
	a = allocated(_metadata, c->fd);
	ASSERT_EQ(WRITE_SIZE, a)
		TH_LOG("GMEM_WRITE with fail-nth %u (%s): %llu bytes allocated, expected %llu",
		       c->n, errno_name(err), a, WRITE_SIZE);
}

/*
 * GMEM_SET_ATTRIBUTES: calls that build runs (more than one node of the
 * tree holds: new ones, merged ones, overlapping ones), then one that
 * splits a run in three.  The sweep spans the whole sequence: the Nth
 * allocation of all the calls fails.  A call that fails (ENOMEM; it may
 * have applied in part) is repeated without injection, and the rest run
 * after it; the attributes then read back must be those of the whole
 * sequence.
 */
#define NR_SMALL_RUNS	48
#define NR_ATTR_CALLS	(NR_SMALL_RUNS + 4)

static struct gmem_attributes attr_calls[NR_ATTR_CALLS];

static void __attribute__((constructor)) attr_calls_init(void)
{
	static const __u64 cycle[] = {
		GMEM_ATTR_NOALLOC, GMEM_ATTR_USERFAULT, GMEM_ATTR_POISON,
		GMEM_ATTR_NOALLOC | GMEM_ATTR_USERFAULT,
	};
	struct gmem_attributes *a = attr_calls;
	unsigned int i;

	/* 64 KiB runs with 64 KiB gaps in the first 6 MiB. */
	for (i = 0; i < NR_SMALL_RUNS; i++, a++) {
		a->offset = i * 128 * KiB;
		a->size = 64 * KiB;
		a->mask = GMEM_ATTRS;
		a->attributes = cycle[i % ARRAY_SIZE(cycle)];
	}
	/* One gap filled: it merges with neither neighbour. */
	*a++ = (struct gmem_attributes){ .offset = 64 * KiB, .size = 64 * KiB,
		.mask = GMEM_ATTR_POISON, .attributes = GMEM_ATTR_POISON };
	/* One bit over many runs and gaps: they all change. */
	*a++ = (struct gmem_attributes){ .offset = 1 * MiB, .size = 2 * MiB,
		.mask = GMEM_ATTR_USERFAULT, .attributes = GMEM_ATTR_USERFAULT };
	/* A large run over the end of the small ones. */
	*a++ = (struct gmem_attributes){ .offset = 5 * MiB, .size = 3 * MiB,
		.mask = GMEM_ATTRS, .attributes = GMEM_ATTR_NOALLOC };
	/* The split: one page out of the middle of that run. */
	*a++ = (struct gmem_attributes){ .offset = 7 * MiB, .size = PAGE,
		.mask = GMEM_ATTR_NOALLOC, .attributes = 0 };
}

static void setup_attrs(struct __test_metadata *_metadata, struct ctx *c)
{
	new_file(_metadata, c, 0);
	c->failed_at = NR_ATTR_CALLS;
	c->call = "GMEM_SET_ATTRIBUTES";
}

static int run_attrs(struct ctx *c)
{
	unsigned int i;

	for (i = 0; i < NR_ATTR_CALLS; i++) {
		struct gmem_attributes a = attr_calls[i];

		if (ioctl(c->fd, GMEM_SET_ATTRIBUTES, &a)) {
			c->failed_at = i;
			return errno;
		}
	}
	return 0;
}

static const int attrs_errnos[] = { ENOMEM };

static void check_attrs(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	static unsigned char want[NR_PAGES];
	unsigned long long off, p;
	unsigned int i;

	if (err) {
		expect_errno_in(_metadata, c, err, attrs_errnos, ARRAY_SIZE(attrs_errnos), "ENOMEM");
		for (i = c->failed_at; i < NR_ATTR_CALLS; i++) {
			struct gmem_attributes a = attr_calls[i];

			ASSERT_EQ(0, ioctl(c->fd, GMEM_SET_ATTRIBUTES, &a))
				TH_LOG("GMEM_SET_ATTRIBUTES call %u without injection: %s",
				       i, strerror(errno));
		}
	}
	memset(want, 0, sizeof(want));
	for (i = 0; i < NR_ATTR_CALLS; i++)
		for (p = attr_calls[i].offset / PAGE;
		     p < (attr_calls[i].offset + attr_calls[i].size) / PAGE; p++)
			want[p] = (want[p] & ~attr_calls[i].mask) | attr_calls[i].attributes;

	/* Walk the runs: each is as long as possible and right page by page. */
	for (off = 0; off < FILE_SIZE; ) {
		struct gmem_attributes a = { .offset = off };
		unsigned long long end;

		ASSERT_EQ(0, ioctl(c->fd, GMEM_GET_ATTRIBUTES, &a))
			TH_LOG("GMEM_GET_ATTRIBUTES at %#llx: %s", off, strerror(errno));
		ASSERT_LT(0ULL, a.size);
		end = off + a.size;
		ASSERT_GE(FILE_SIZE, end);
		for (p = off / PAGE; p < end / PAGE; p++)
			ASSERT_EQ(want[p], a.attributes)
				TH_LOG("fail-nth %u, call %u failed with %s: page %#llx has attributes %#llx, expected %#x",
				       c->n, c->failed_at, errno_name(err), p,
				       (unsigned long long)a.attributes, want[p]);
		if (end < FILE_SIZE)
			ASSERT_NE(want[end / PAGE], a.attributes)
				TH_LOG("fail-nth %u: the run at %#llx ends at %#llx, but the next page has the same attributes",
				       c->n, off, end);
		off = end;
	}
}

/*
 * GMEM_SET_MEMPOLICY: policies that make, cut, split and replace ranges
 * of the file's policy tree, the last one with MPOL_MF_STRICT over
 * allocated pages.  As for the attributes, a call that fails (ENOMEM:
 * the kernel's tree is left as it was) is repeated without injection,
 * with the rest after it; every page then reads back the policy of the
 * whole sequence.  Node 0 only: every machine has it.
 */
static const struct {
	unsigned long long offset, size;
	__u32 mode, flags;
} pol_calls[] = {
	{ 0, 8 * MiB, MPOL_BIND, 0 },
	{ 1 * MiB, 1 * MiB, MPOL_INTERLEAVE, 0 },
	{ 4 * MiB, PAGE, MPOL_PREFERRED, 0 },		/* splits the first */
	{ 6 * MiB, 2 * MiB, MPOL_LOCAL, 0 },
	{ 2 * MiB - 64 * KiB, 128 * KiB, MPOL_DEFAULT, 0 },
	{ 0, 3 * MiB, MPOL_WEIGHTED_INTERLEAVE | MPOL_F_STATIC_NODES, MPOL_MF_STRICT },
};

static unsigned long pol_node0 = 1;

static bool pol_has_nodes(__u32 mode)
{
	mode &= ~(MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES);
	return mode != MPOL_DEFAULT && mode != MPOL_LOCAL;
}

static int set_pol(int fd, unsigned int i)
{
	struct gmem_mempolicy p = {
		.offset = pol_calls[i].offset, .size = pol_calls[i].size,
		.mode = pol_calls[i].mode, .flags = pol_calls[i].flags,
	};

	if (pol_has_nodes(p.mode)) {
		p.nodemask = (uintptr_t)&pol_node0;
		p.maxnode = 64;
	}
	return ioctl(fd, GMEM_SET_MEMPOLICY, &p) ? errno : 0;
}

static void setup_mempolicy(struct __test_metadata *_metadata, struct ctx *c)
{
	new_file(_metadata, c, 0);
	falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, 0, 4 * MiB);
	c->failed_at = ARRAY_SIZE(pol_calls);
	c->call = "GMEM_SET_MEMPOLICY";
}

static int run_mempolicy(struct ctx *c)
{
	unsigned int i;
	int err;

	for (i = 0; i < ARRAY_SIZE(pol_calls); i++) {
		err = set_pol(c->fd, i);
		if (err) {
			c->failed_at = i;
			return err;
		}
	}
	return 0;
}

static const int mempolicy_errnos[] = { ENOMEM };

static void check_mempolicy(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	static __u32 want[NR_PAGES];
	unsigned long long p;
	unsigned int i;

	if (err) {
		expect_errno_in(_metadata, c, err, mempolicy_errnos,
				ARRAY_SIZE(mempolicy_errnos), "ENOMEM");
		for (i = c->failed_at; i < ARRAY_SIZE(pol_calls); i++)
			ASSERT_EQ(0, set_pol(c->fd, i))
				TH_LOG("GMEM_SET_MEMPOLICY call %u without injection: %s",
				       i, strerror(errno));
	}
	memset(want, 0, sizeof(want));
	for (i = 0; i < ARRAY_SIZE(pol_calls); i++)
		for (p = pol_calls[i].offset / PAGE;
		     p < (pol_calls[i].offset + pol_calls[i].size) / PAGE; p++)
			want[p] = pol_calls[i].mode;
	for (p = 0; p < NR_PAGES; p++) {
		unsigned long nodes = ~0UL;
		struct gmem_mempolicy g = {
			.offset = p * PAGE, .nodemask = (uintptr_t)&nodes, .maxnode = 64,
		};

		ASSERT_EQ(0, ioctl(c->fd, GMEM_GET_MEMPOLICY, &g))
			TH_LOG("GMEM_GET_MEMPOLICY at page %llu: %s", p, strerror(errno));
		ASSERT_EQ(want[p], g.mode)
			TH_LOG("fail-nth %u, call %u failed with %s: page %llu has mode %#x, expected %#x",
			       c->n, c->failed_at, errno_name(err), p, g.mode, want[p]);
		ASSERT_EQ(pol_has_nodes(want[p]) ? 1UL : 0UL, nodes)
			TH_LOG("fail-nth %u: page %llu has nodes %#lx", c->n, p, nodes);
	}
}

/*
 * Release: the last close of a file with pages (whole blocks, a split
 * block, single pages) and attribute runs.  close() itself cannot fail;
 * everything must be given back whatever fails inside.
 */
static void setup_release(struct __test_metadata *_metadata, struct ctx *c)
{
	unsigned int i;

	new_file(_metadata, c, 0);
	falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, 0, 4 * MiB);
	falloc_ok(_metadata, c->fd, GMEM_PUNCH, 3 * MiB, 64 * KiB);
	falloc_ok(_metadata, c->fd, GMEM_ALLOCATE, 6 * MiB - 16 * KiB, 32 * KiB);
	for (i = 0; i < NR_ATTR_CALLS; i++) {
		struct gmem_attributes a = attr_calls[i];

		ASSERT_EQ(0, ioctl(c->fd, GMEM_SET_ATTRIBUTES, &a))
			TH_LOG("GMEM_SET_ATTRIBUTES call %u: %s", i, strerror(errno));
	}
	c->call = "close";
}

static int run_release(struct ctx *c)
{
	int r = close(c->fd);

	c->fd = -1;
	return r ? errno : 0;
}

static void check_release(struct __test_metadata *_metadata, struct ctx *c, int err)
{
	ASSERT_EQ(0, err)
		TH_LOG("close of a gmem file with fail-nth %u: %s", c->n, errno_name(err));
}

/* What a sweep works with: fault injection, /dev/gmem, the baseline. */
struct sweeper {
	struct gmem_failnth fi;
	int devfd;
	char memcg[64];		/* the test's group, "" without one */
	char file[128];
	unsigned long long files0, bytes0, memcg0;
};

FIXTURE(failnth) {
	struct sweeper s;
};

#define memcg_path(self, name) ({					\
	snprintf((self)->file, sizeof((self)->file), "%s/%s", (self)->memcg, (name)); \
	(self)->file;							\
})

#define memcg_current(_metadata, self)					\
	gmem_read_u64(_metadata, memcg_path(self, "memory.current"))

/* memory.current once it stops moving (see gmem_read_u64_settled()). */
#define memcg_current_settled(_metadata, self)				\
	gmem_read_u64_settled(_metadata, memcg_path(self, "memory.current"))

/* A memory cgroup of its own for the test process, if there is cgroup v2. */
static void memcg_setup(struct __test_metadata *_metadata,
			struct sweeper *self)
{
	char controllers[256], pid[16];
	int r;

	r = __gmem_read_file(CGROUP_ROOT "/cgroup.controllers", controllers,
			     sizeof(controllers));
	if (r || !strstr(controllers, "memory")) {
		TH_LOG("no cgroup v2 memory controller: memory.current is not checked");
		return;
	}
	r = __gmem_write_file(CGROUP_ROOT "/cgroup.subtree_control", "+memory");
	if (r) {
		TH_LOG("cannot enable the memory controller (%s): memory.current is not checked",
		       strerror(-r));
		return;
	}
	snprintf(self->memcg, sizeof(self->memcg), CGROUP_ROOT "/gmem-failnth-%d",
		 getpid());
	if (mkdir(self->memcg, 0755)) {
		TH_LOG("mkdir %s: %s: memory.current is not checked", self->memcg,
		       strerror(errno));
		self->memcg[0] = '\0';
		return;
	}
	snprintf(pid, sizeof(pid), "%d", getpid());
	r = __gmem_write_file(memcg_path(self, "cgroup.procs"), pid);
	if (r) {
		TH_LOG("entering %s: %s: memory.current is not checked", self->memcg,
		       strerror(-r));
		rmdir(self->memcg);
		self->memcg[0] = '\0';
	}
}

FIXTURE_SETUP(failnth)
{
	struct sweeper *s = &self->s;
	char why[256];
	int r;

	s->fi.fd = -1;
	s->fi.saved = 0;
	s->memcg[0] = '\0';
	s->devfd = gmem_open_dev(_metadata);
	/*
	 * Nothing the calls under injection touch in user space may fault
	 * in a page then: that would take an injection point, or turn a
	 * copy from user space into EFAULT.
	 */
	if (mlockall(MCL_CURRENT | MCL_FUTURE))
		TH_LOG("mlockall: %s (page faults may take injection points)",
		       strerror(errno));
	r = gmem_failnth_setup(&s->fi, why, sizeof(why));
	if (r == -ENOENT)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, r) TH_LOG("fault injection setup: %s", why);
	/* Last: it never fails the setup, which would skip the teardown. */
	memcg_setup(_metadata, s);
}

FIXTURE_TEARDOWN(failnth)
{
	struct sweeper *s = &self->s;
	char pid[16];
	int r;

	gmem_failnth_restore(&s->fi);
	if (s->devfd >= 0)
		close(s->devfd);
	if (!s->memcg[0])
		return;
	snprintf(pid, sizeof(pid), "%d", getpid());
	__gmem_write_file(CGROUP_ROOT "/cgroup.procs", pid);
	/*
	 * No TH_LOG() after the EXPECT: after a failed ASSERT the harness
	 * prints the message of the next EXPECT even when that one holds.
	 */
	r = rmdir(s->memcg) ? errno : 0;
	if (r)
		TH_LOG("rmdir %s: %s", s->memcg, strerror(r));
	EXPECT_EQ(0, r);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Everything closed: gmem's counters and the group back at the baseline. */
static void expect_baseline(struct __test_metadata *_metadata,
			    struct sweeper *self, const struct path *p,
			    unsigned int n)
{
	unsigned long long files = gmem_read_u64(_metadata, GMEM_SYSFS "/files");
	unsigned long long bytes = gmem_read_u64(_metadata, GMEM_SYSFS "/allocated_bytes");
	unsigned long long cur;

	ASSERT_EQ(self->files0, files)
		TH_LOG("%s, fail-nth %u, all closed: " GMEM_SYSFS "/files %llu, expected %llu",
		       p->name, n, files, self->files0);
	ASSERT_EQ(self->bytes0, bytes)
		TH_LOG("%s, fail-nth %u, all closed: " GMEM_SYSFS "/allocated_bytes %llu, expected %llu",
		       p->name, n, bytes, self->bytes0);
	if (!self->memcg[0])
		return;
	cur = memcg_current(_metadata, self);
	if (cur > self->memcg0 + MEMCG_SLACK)
		cur = memcg_current_settled(_metadata, self);
	ASSERT_GE(self->memcg0 + MEMCG_SLACK, cur)
		TH_LOG("%s, fail-nth %u, all closed: memory.current %llu KiB, baseline %llu KiB (slack %llu KiB)",
		       p->name, n, cur >> 10, self->memcg0 >> 10, MEMCG_SLACK >> 10);
}

static void sweep(struct __test_metadata *_metadata, struct sweeper *self,
		  const struct path *p)
{
	unsigned int n, points = 0, failed = 0;
	double t0 = now();
	long left = 0;

	self->files0 = gmem_read_u64(_metadata, GMEM_SYSFS "/files");
	self->bytes0 = gmem_read_u64(_metadata, GMEM_SYSFS "/allocated_bytes");
	if (self->memcg[0])
		self->memcg0 = memcg_current_settled(_metadata, self);

	for (n = 1; n <= FAILNTH_MAX; n++) {
		struct ctx c = { .devfd = self->devfd, .fd = -1, .n = n };
		int r, err;

		p->setup(_metadata, &c);
		r = gmem_failnth_arm(&self->fi, n);
		ASSERT_EQ(0, r) TH_LOG("write %u to " FAILNTH_PROC ": %s", n, strerror(-r));
		err = p->run(&c);
		left = gmem_failnth_left(&self->fi);
		ASSERT_LE(0, left) TH_LOG("read " FAILNTH_PROC ": %s", strerror(-left));
		if (err)
			failed++;
		p->check(_metadata, &c, err);
		if (c.fd >= 0)
			close(c.fd);
		expect_baseline(_metadata, self, p, n);
		if (left) {
			/* The call made n - left allocations: all were tried. */
			points = n - left;
			break;
		}
		points = n;
	}
	if (!left)
		TH_LOG("%s: stopped after %u injection points, the path has more",
		       p->name, FAILNTH_MAX);
	TH_LOG("%s: %u injection points, %u failed calls (%.1f s; memory.current %s)",
	       p->name, points, failed, now() - t0,
	       self->memcg[0] ? "checked" : "not checked");
	if (results && results->nr < MAX_PATHS) {
		struct path_result *res = &results->r[results->nr++];

		snprintf(res->name, sizeof(res->name), "%s", p->name);
		res->points = points;
		res->failed = failed;
		res->seconds = now() - t0;
	}
}

TEST_F_TIMEOUT(failnth, create, 300)
{
	static const struct path p = {
		"GMEM_CREATE", setup_nothing, run_create_plain, check_create_plain,
	};

	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, create_userfault, 300)
{
	static const struct path p = {
		"GMEM_CREATE_USERFAULT", setup_nothing, run_create_userfault,
		check_create_userfault,
	};

	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, fallocate_blocks, 600)
{
	static const struct path p = {
		"fallocate 2 blocks", setup_falloc, run_falloc, check_falloc,
	};

	falloc_case = &falloc_blocks;
	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, fallocate_unaligned, 600)
{
	static const struct path p = {
		"fallocate unaligned", setup_falloc, run_falloc, check_falloc,
	};

	falloc_case = &falloc_unaligned;
	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, punch_hole, 300)
{
	static const struct path p = {
		"punch-hole", setup_punch, run_punch, check_punch,
	};

	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, write, 300)
{
	static const struct path p = {
		"GMEM_WRITE", setup_write, run_write, check_write,
	};

	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, set_attributes, 300)
{
	static const struct path p = {
		"GMEM_SET_ATTRIBUTES", setup_attrs, run_attrs, check_attrs,
	};

	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, set_mempolicy, 300)
{
	static const struct path p = {
		"GMEM_SET_MEMPOLICY", setup_mempolicy, run_mempolicy, check_mempolicy,
	};

	sweep(_metadata, &self->s, &p);
}

TEST_F_TIMEOUT(failnth, release, 300)
{
	static const struct path p = {
		"release", setup_release, run_release, check_release,
	};

	sweep(_metadata, &self->s, &p);
}

/* Runs last: what the sweeps above covered. */
TEST_F(failnth, summary)
{
	unsigned int i, points = 0, failed = 0;
	double secs = 0;

	if (!results || !results->nr)
		SKIP(return, "no sweep ran");
	for (i = 0; i < results->nr; i++) {
		ksft_print_msg("%-24s %5u injection points, %4u failed calls, %6.1f s\n",
			       results->r[i].name, results->r[i].points,
			       results->r[i].failed, results->r[i].seconds);
		points += results->r[i].points;
		failed += results->r[i].failed;
		secs += results->r[i].seconds;
	}
	ksft_print_msg("%-24s %5u injection points, %4u failed calls, %6.1f s\n",
		       "total", points, failed, secs);
}

TEST_HARNESS_MAIN
