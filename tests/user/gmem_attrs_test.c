// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of the page attributes of gmem files without guests:
 * GMEM_SET_ATTRIBUTES, GMEM_GET_ATTRIBUTES and GMEM_WRITE (arguments,
 * errors, run walking, allocation and charging), and the attribute flags
 * of GMEM_CREATE.  What guests see is kvm_attrs_test.c's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"
#include "gmem_attrs_util.h"

#define PG		((uint64_t)getpagesize())
#define NPAGES		64
#define N		GMEM_ATTR_NOALLOC
#define U		GMEM_ATTR_USERFAULT
#define X		GMEM_ATTR_POISON
#define TIB		(1ULL << 40)

#define EXPECT_ERRNO(err, call, what, ...) do {				\
	errno = 0;							\
	EXPECT_EQ(-1, (call)) TH_LOG(what ": succeeded, expected %s",	\
				     ##__VA_ARGS__, #err);		\
	EXPECT_EQ(err, errno) TH_LOG(what ": errno %d (%s), expected %s", \
				     ##__VA_ARGS__, errno, strerror(errno), #err); \
} while (0)

FIXTURE(attrs) {
	int fd;
};

FIXTURE_SETUP(attrs)
{
	int dev;

	self->fd = -1;
	dev = gmem_open_dev(_metadata);
	close(dev);
	self->fd = __gmem_create_file(NPAGES * PG, 0);
	ASSERT_LE(0, self->fd) TH_LOG("GMEM_CREATE: %s", strerror(errno));
}

FIXTURE_TEARDOWN(attrs)
{
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * Tests that make tens of thousands of calls: minutes, not the harness's
 * 30 s, on a debug kernel under emulation.
 */
#define SLOW_TIMEOUT	600

FIXTURE(slow) {
};

FIXTURE_SETUP(slow)
{
}

FIXTURE_TEARDOWN(slow)
{
}

/* Asserting GET: the attributes at @offset and the length of their run. */
#define EXPECT_RUN(fd, offset, attrs, len) do {				\
	struct gmem_attributes __a;					\
									\
	ASSERT_EQ(0, __gmem_get_attrs(fd, offset, &__a))		\
		TH_LOG("GET at %#llx: %s", (unsigned long long)(offset), \
		       strerror(errno));				\
	EXPECT_EQ((uint64_t)(attrs), __a.attributes)			\
		TH_LOG("attributes at %#llx", (unsigned long long)(offset)); \
	EXPECT_EQ((uint64_t)(len), __a.size)				\
		TH_LOG("run length at %#llx", (unsigned long long)(offset)); \
	EXPECT_EQ(GMEM_ATTRS, __a.mask);				\
} while (0)

TEST(create_flags_sweep)
{
	uint64_t flag;
	int fd;

	close(gmem_open_dev(_metadata));
	for (flag = 1; flag; flag <<= 1) {
		errno = 0;
		fd = __gmem_create_file(PG, flag);
		if (!(flag & GMEM_CREATE_FLAGS)) {
			EXPECT_EQ(-1, fd) TH_LOG("unknown flag %#llx accepted",
						 (unsigned long long)flag);
			EXPECT_EQ(EINVAL, errno) TH_LOG("flag %#llx: errno %d, expected EINVAL",
							(unsigned long long)flag, errno);
			continue;
		}
		ASSERT_LE(0, fd) TH_LOG("flag %#llx: %s", (unsigned long long)flag,
					strerror(errno));
		EXPECT_EQ((long long)(flag & ~GMEM_CREATE_BLOCKS),
			  (long long)(gmem_attrs_fdinfo(fd, "gmem-flags") & ~GMEM_CREATE_BLOCKS));
		close(fd);
	}
}

/* The attribute flags of GMEM_CREATE cover the whole file, 1 TiB too. */
TEST(create_attribute_flags)
{
	static const struct {
		uint64_t flags, attrs;
	} cases[] = {
		{ 0, 0 },
		{ GMEM_CREATE_NOALLOC, N },
		{ GMEM_CREATE_USERFAULT, U },
		{ GMEM_CREATE_NOALLOC | GMEM_CREATE_USERFAULT | GMEM_CREATE_CLOEXEC, N | U },
	};
	unsigned int i;
	int fd;

	close(gmem_open_dev(_metadata));
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		fd = __gmem_create_file(TIB, cases[i].flags);
		ASSERT_LE(0, fd) TH_LOG("GMEM_CREATE 1 TiB flags %#llx: %s",
					(unsigned long long)cases[i].flags,
					strerror(errno));
		EXPECT_EQ((long long)(cases[i].flags),
			  (long long)(gmem_attrs_fdinfo(fd, "gmem-flags") & ~GMEM_CREATE_BLOCKS));
		EXPECT_RUN(fd, 0, cases[i].attrs, TIB);
		EXPECT_RUN(fd, TIB - PG, cases[i].attrs, PG);
		EXPECT_EQ(0LL, gmem_attrs_fdinfo(fd, "gmem-allocated"));
		close(fd);
	}
}

/* Masked changes split and merge runs; GET walks them. */
TEST_F(attrs, set_and_walk)
{
	static const struct {
		uint64_t first, pages, attrs;
	} runs[] = {
		{ 0, 4, 0 }, { 4, 2, N }, { 6, 2, N | U }, { 8, 4, U },
		{ 12, 48, 0 }, { 60, 4, X },
	};
	struct gmem_attributes a;
	uint64_t offset = 0;
	unsigned int i = 0;

	ASSERT_EQ(0, __gmem_set_attrs(self->fd, 4 * PG, 4 * PG, N, N));
	ASSERT_EQ(0, __gmem_set_attrs(self->fd, 6 * PG, 6 * PG, U, U));
	ASSERT_EQ(0, __gmem_set_attrs(self->fd, 60 * PG, 4 * PG, X, N | U | X));
	while (offset < NPAGES * PG) {
		ASSERT_EQ(0, __gmem_get_attrs(self->fd, offset, &a));
		ASSERT_LT(i, ARRAY_SIZE(runs));
		EXPECT_EQ(runs[i].first * PG, offset);
		EXPECT_EQ(runs[i].pages * PG, a.size) TH_LOG("run %u", i);
		EXPECT_EQ(runs[i].attrs, a.attributes) TH_LOG("run %u", i);
		offset += a.size;
		i++;
	}
	EXPECT_EQ(ARRAY_SIZE(runs), i);
	EXPECT_EQ(NPAGES * PG, offset);

	/* Inside a run, GET gives the rest of the run. */
	EXPECT_RUN(self->fd, 20 * PG, 0, 40 * PG);
	/* Clearing N merges [4, 12) into one U run... */
	ASSERT_EQ(0, __gmem_set_attrs(self->fd, 0, NPAGES * PG, 0, N));
	EXPECT_RUN(self->fd, 4 * PG, 0, 2 * PG);
	EXPECT_RUN(self->fd, 6 * PG, U, 6 * PG);
	/* ...and clearing everything leaves one run without attributes. */
	ASSERT_EQ(0, __gmem_set_attrs(self->fd, 0, NPAGES * PG, 0, GMEM_ATTRS));
	EXPECT_RUN(self->fd, 0, 0, NPAGES * PG);
	/* Attributes alone allocate nothing. */
	EXPECT_EQ(0LL, gmem_attrs_fdinfo(self->fd, "gmem-allocated"));
}

TEST_F(attrs, set_errors)
{
	const uint64_t size = NPAGES * PG;
	static const struct {
		const char *name;
		uint64_t offset, size, attrs, mask, flags, reserved;
	} cases[] = {
		{ "unaligned offset", .offset = 1, .size = 4096, .attrs = N, .mask = N },
		{ "unaligned size", .size = 4097, .attrs = N, .mask = N },
		{ "size 0", .size = 0, .attrs = N, .mask = N },
		{ "past the end", .offset = (NPAGES - 1) * 4096, .size = 2 * 4096,
		  .attrs = N, .mask = N },
		{ "after the end", .offset = NPAGES * 4096, .size = 4096, .attrs = N,
		  .mask = N },
		{ "offset + size wraps", .offset = -4096ULL, .size = 2 * 4096,
		  .attrs = N, .mask = N },
		{ "mask 0", .size = 4096 },
		{ "unknown mask bit", .size = 4096, .mask = GMEM_ATTRS + 1 },
		{ "attributes outside mask", .size = 4096, .attrs = U, .mask = N },
		{ "flags", .size = 4096, .attrs = N, .mask = N, .flags = 1 },
		{ "reserved", .size = 4096, .attrs = N, .mask = N, .reserved = 1 },
	};
	struct gmem_attributes a;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		a = (struct gmem_attributes){
			.offset = cases[i].offset,
			.size = cases[i].size,
			.attributes = cases[i].attrs,
			.mask = cases[i].mask,
			.flags = cases[i].flags,
			.reserved = { [2] = cases[i].reserved },
		};
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_SET_ATTRIBUTES, &a),
			     "SET %s", cases[i].name);
	}
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_SET_ATTRIBUTES, NULL), "SET NULL");
	/* Nothing was changed by the failed calls. */
	EXPECT_RUN(self->fd, 0, 0, size);
}

TEST_F(attrs, set_mask_sweep)
{
	uint64_t bit;

	for (bit = 1; bit; bit <<= 1) {
		if (bit & GMEM_ATTRS) {
			EXPECT_EQ(0, __gmem_set_attrs(self->fd, 0, PG, bit, bit))
				TH_LOG("SET attribute %#llx: %s",
				       (unsigned long long)bit, strerror(errno));
			EXPECT_RUN(self->fd, 0, bit, PG);
			EXPECT_EQ(0, __gmem_set_attrs(self->fd, 0, PG, 0, bit));
			continue;
		}
		EXPECT_ERRNO(EINVAL, __gmem_set_attrs(self->fd, 0, PG, bit, bit),
			     "SET unknown attribute %#llx", (unsigned long long)bit);
		EXPECT_ERRNO(EINVAL, __gmem_set_attrs(self->fd, 0, PG, 0, bit | N),
			     "SET mask with unknown bit %#llx", (unsigned long long)bit);
	}
}

TEST_F(attrs, get_errors)
{
	static const struct {
		const char *name;
		uint64_t offset, flags, reserved;
	} cases[] = {
		{ "unaligned offset", .offset = 1 },
		{ "offset at the size", .offset = NPAGES * 4096 },
		{ "offset past the size", .offset = 1ULL << 63 },
		{ "flags", .flags = 1 },
		{ "reserved", .reserved = 1 },
	};
	struct gmem_attributes a;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		a = (struct gmem_attributes){
			.offset = cases[i].offset,
			.flags = cases[i].flags,
			.reserved = { [0] = cases[i].reserved },
		};
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_GET_ATTRIBUTES, &a),
			     "GET %s", cases[i].name);
	}
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_GET_ATTRIBUTES, NULL), "GET NULL");
	/* Read-only struct: the result cannot be written back. */
	a = (struct gmem_attributes){ .offset = 0 };
	{
		void *ro = mmap(NULL, PG, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		ASSERT_NE(MAP_FAILED, ro);
		memcpy(ro, &a, sizeof(a));
		ASSERT_EQ(0, mprotect(ro, PG, PROT_READ));
		EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_GET_ATTRIBUTES, ro),
			     "GET into read-only memory");
		munmap(ro, PG);
	}
	/* Output fields given as input are ignored. */
	a = (struct gmem_attributes){ .offset = PG, .size = 7, .attributes = 7, .mask = 7 };
	EXPECT_EQ(0, ioctl(self->fd, GMEM_GET_ATTRIBUTES, &a));
	EXPECT_EQ((NPAGES - 1) * PG, a.size);
	EXPECT_EQ(0ULL, a.attributes);
}

TEST_F(attrs, write_errors)
{
	static const struct {
		const char *name;
		uint64_t offset, size, flags, reserved;
	} cases[] = {
		{ "unaligned offset", .offset = 1, .size = 4096 },
		{ "unaligned size", .size = 100 },
		{ "size 0", .size = 0 },
		{ "past the end", .offset = (NPAGES - 1) * 4096, .size = 2 * 4096 },
		{ "after the end", .offset = NPAGES * 4096, .size = 4096 },
		{ "offset + size wraps", .offset = -4096ULL, .size = 2 * 4096 },
		{ "flags", .size = 4096, .flags = 1 },
		{ "reserved", .size = 4096, .reserved = 1 },
	};
	char *buf = calloc(2, PG);
	struct gmem_write w;
	unsigned int i;

	ASSERT_NE(NULL, buf);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		w = (struct gmem_write){
			.offset = cases[i].offset,
			.size = cases[i].size,
			.user_addr = (uintptr_t)buf,
			.flags = cases[i].flags,
			.reserved = { [1] = cases[i].reserved },
		};
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_WRITE, &w),
			     "WRITE %s", cases[i].name);
	}
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_WRITE, NULL), "WRITE NULL");
	for (i = 0; i < 3; i++) {
		static const uint64_t bad[] = { 0, 0xffff800000000000ULL, -4096ULL };
		uint64_t written = 1;

		EXPECT_ERRNO(EFAULT, __gmem_write(self->fd, 0, PG, (void *)bad[i], &written),
			     "WRITE from %#llx", (unsigned long long)bad[i]);
		EXPECT_EQ(0ULL, (unsigned long long)written);
	}
	EXPECT_EQ(0LL, gmem_attrs_fdinfo(self->fd, "gmem-allocated"));
	free(buf);
}

TEST_F(attrs, write_flags_sweep)
{
	char *buf = calloc(1, PG);
	struct gmem_write w;
	uint64_t flag;

	ASSERT_NE(NULL, buf);
	for (flag = 1; flag; flag <<= 1) {
		w = (struct gmem_write){ .size = PG, .user_addr = (uintptr_t)buf,
					 .flags = flag };
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_WRITE, &w),
			     "WRITE flag %#llx", (unsigned long long)flag);
	}
	free(buf);
}

/* The source runs out after one page: that page is written, no more. */
TEST_F(attrs, write_partial_efault)
{
	uint64_t written = 0;
	char *src;

	src = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	memset(src, 0x5a, PG);
	ASSERT_EQ(0, mprotect(src + PG, PG, PROT_NONE));
	EXPECT_ERRNO(EFAULT, __gmem_write(self->fd, 8 * PG, 2 * PG, src, &written),
		     "WRITE from a half-readable buffer");
	EXPECT_EQ(PG, written);
	EXPECT_EQ((long long)(PG), gmem_attrs_fdinfo(self->fd, "gmem-allocated"));
	/* An unaligned source is fine. */
	ASSERT_EQ(0, mprotect(src + PG, PG, PROT_READ));
	EXPECT_EQ(0, __gmem_write(self->fd, 0, PG, src + 1, &written))
		TH_LOG("WRITE from an unaligned source: %s", strerror(errno));
	EXPECT_EQ(PG, written);
	munmap(src, 2 * PG);
}

/*
 * A GMEM_WRITE whose first allocation fails (fail-nth: the kernel buffer
 * it copies through) fails with ENOMEM and still says how far it got:
 * nothing written.
 */
TEST_F(attrs, write_enomem_stores_written)
{
	static const char * const knobs[][2] = {
		{ "/sys/kernel/debug/failslab/verbose", "0" },
		{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
	};
	uint64_t written = 0;
	char *src = malloc(PG);
	char nth[16] = "";
	unsigned int i;
	int fd, r, err;

	ASSERT_NE(NULL, src);
	memset(src, 0x5a, PG);
	fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (fd < 0 || access(knobs[0][0], F_OK))
		SKIP(return, "no fail-nth or failslab in this kernel");
	for (i = 0; i < 2; i++)
		gmem_write_file(_metadata, knobs[i][0], knobs[i][1]);
	ASSERT_EQ(1, pwrite(fd, "1", 1, 0));
	r = __gmem_write(self->fd, 0, PG, src, &written);
	err = errno;
	ASSERT_LT(0, pread(fd, nth, sizeof(nth) - 1, 0));
	ASSERT_EQ(1, pwrite(fd, "0", 1, 0));
	close(fd);
	ASSERT_EQ(0, atoi(nth)) TH_LOG("the injected failure did not fire");
	EXPECT_EQ(-1, r) TH_LOG("WRITE whose first allocation fails: succeeded");
	EXPECT_EQ(ENOMEM, err) TH_LOG("WRITE whose first allocation fails: errno %d (%s), expected ENOMEM",
				      err, strerror(err));
	EXPECT_EQ(0UL, written)
		TH_LOG("written %#llx after ENOMEM, expected 0", (unsigned long long)written);
	EXPECT_EQ(0, gmem_attrs_fdinfo(self->fd, "gmem-allocated"));
	free(src);
}

/*
 * GMEM_WRITE allocates whatever the attributes say (NOALLOC only stops
 * guest faults), keeps the attributes, and may write a page again as
 * long as no guest was given it.
 */
TEST(write_allocates)
{
	const uint64_t size = 16 * PG;
	uint64_t written;
	char *src = malloc(4 * PG);
	int fd;

	ASSERT_NE(NULL, src);
	memset(src, 0xa5, 4 * PG);
	close(gmem_open_dev(_metadata));
	fd = __gmem_create_file(size, GMEM_CREATE_NOALLOC | GMEM_CREATE_USERFAULT);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 9 * PG, PG));
	EXPECT_EQ(0, __gmem_write(fd, 8 * PG, 4 * PG, src, &written))
		TH_LOG("WRITE: %s", strerror(errno));
	EXPECT_EQ(4 * PG, written);
	EXPECT_EQ((long long)(4 * PG), gmem_attrs_fdinfo(fd, "gmem-allocated"));
	EXPECT_RUN(fd, 0, N | U, size);
	EXPECT_EQ(0, __gmem_write(fd, 8 * PG, 4 * PG, src, &written));
	EXPECT_EQ((long long)(4 * PG), gmem_attrs_fdinfo(fd, "gmem-allocated"));
	/* Punched pages are holes again. */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, size));
	EXPECT_EQ(0LL, gmem_attrs_fdinfo(fd, "gmem-allocated"));
	close(fd);
	free(src);
}

static void on_alarm(int sig)
{
}

/* A signal stops a long write; what was written stays, and is reported. */
TEST(write_interrupted)
{
	const uint64_t size = 256ULL << 20;
	struct itimerval it = { { 0, 2000 }, { 0, 2000 } };
	struct sigaction sa = { .sa_handler = on_alarm };
	uint64_t written = 0;
	int fd, r, err, tries;
	void *src;

	close(gmem_open_dev(_metadata));
	/* Never touched: reads come from the zero page, costing nothing. */
	src = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	for (tries = 0; tries < 5; tries++) {
		fd = __gmem_create_file(size, 0);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));
		r = __gmem_write(fd, 0, size, src, &written);
		err = errno;
		setitimer(ITIMER_REAL, &(struct itimerval){}, NULL);
		if (r == 0) {
			/* Finished before the first signal; try again. */
			EXPECT_EQ(size, written);
			close(fd);
			continue;
		}
		EXPECT_EQ(EINTR, err) TH_LOG("WRITE: errno %d (%s), expected EINTR",
					     err, strerror(err));
		EXPECT_LT(written, size);
		EXPECT_EQ(0, (int)(written % PG));
		EXPECT_EQ((long long)(written), gmem_attrs_fdinfo(fd, "gmem-allocated"));
		TH_LOG("interrupted after %llu of %llu bytes",
		       (unsigned long long)written, (unsigned long long)size);
		close(fd);
		break;
	}
	EXPECT_LT(tries, 5) TH_LOG("no write was ever interrupted");
	munmap(src, size);
}

/*
 * A signal stops a masked change that visits many runs; the change is
 * then partly done, and repeating the call as it is completes it.
 */
#define INTR_RUNS	20000

TEST_F_TIMEOUT(slow, set_interrupted, SLOW_TIMEOUT)
{
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } };
	struct sigaction sa = { .sa_handler = on_alarm };
	const uint64_t range = 2 * INTR_RUNS * PG;
	int fd, i, r = 0, err = 0, tries;

	close(gmem_open_dev(_metadata));
	fd = __gmem_create_file(TIB, 0);
	ASSERT_LE(0, fd);
	for (i = 0; i < INTR_RUNS; i++)
		ASSERT_EQ(0, __gmem_set_attrs(fd, (2ULL * i + 1) * PG, PG, N, N));
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	for (tries = 0; tries < 5 && !err; tries++) {
		ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));
		r = __gmem_set_attrs(fd, 0, range, U, U);
		err = r ? errno : 0;
		setitimer(ITIMER_REAL, &(struct itimerval){}, NULL);
		/* Done before any signal: undo and try again. */
		if (!r)
			ASSERT_EQ(0, __gmem_set_attrs(fd, 0, range, 0, U));
	}
	EXPECT_EQ(EINTR, err) TH_LOG("SET: errno %d (%s), expected EINTR after %d tries",
				     err, strerror(err), tries);
	/* The first run was done, the last one not. */
	EXPECT_RUN(fd, 0, U, PG);
	EXPECT_RUN(fd, range - PG, N, PG);
	ASSERT_EQ(0, __gmem_set_attrs(fd, 0, range, U, U));
	EXPECT_RUN(fd, 0, U, PG);
	EXPECT_RUN(fd, PG, N | U, PG);
	EXPECT_RUN(fd, range - 2 * PG, U, PG);
	EXPECT_RUN(fd, range - PG, N | U, PG);
	EXPECT_RUN(fd, range, 0, TIB - range);
	close(fd);
}

#define CG_ROOT		"/sys/fs/cgroup"
#define CG_DIR		CG_ROOT "/gmem-attrs-test"
#define CG_MAX		(16ULL << 20)
#define CG_RUNS		1000000

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

struct cg_result {
	int r, err;
	uint64_t written, allocated;
	int set_err, runs;
};

/*
 * In a child moved into CG_DIR: create a 1 TiB file, write 4 * CG_MAX to
 * it, then split its attributes into runs until that fails.
 * Past the limit, allocate nothing until the file is closed (the cgroup
 * is full: anything more would wake its OOM killer).
 */
static void cg_child(int out, void *src)
{
	struct cg_result res = { .r = -2 };
	struct stat st;
	char pid[32];
	int fd;

	memset(&st, 0, sizeof(st));
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (!write_file(CG_DIR "/cgroup.procs", pid)) {
		fd = __gmem_create_file(TIB, 0);
		if (fd >= 0) {
			res.r = __gmem_write(fd, 0, 4 * CG_MAX, src, &res.written);
			res.err = errno;
			if (!fstat(fd, &st))
				res.allocated = (uint64_t)st.st_blocks * 512;
			/* Attributes are charged too: fragment them until full. */
			for (res.runs = 0; res.runs < CG_RUNS; res.runs++)
				if (__gmem_set_attrs(fd, (2ULL * res.runs + 1) * PG, PG,
						     GMEM_ATTR_NOALLOC, GMEM_ATTR_NOALLOC)) {
					res.set_err = errno;
					break;
				}
			close(fd);
		}
	}
	if (write(out, &res, sizeof(res)) != sizeof(res))
		_exit(2);
	_exit(0);
}

/*
 * Pages GMEM_WRITE allocates, and the runs of attributes, are charged to
 * the file's memory cgroup: at memory.max both fail with ENOMEM.
 */
TEST(write_charged_to_memcg)
{
	struct cg_result res = {};
	int pipefd[2], status;
	char max[32];
	void *src;
	pid_t pid;

	close(gmem_open_dev(_metadata));
	if (access(CG_ROOT "/cgroup.subtree_control", W_OK))
		SKIP(return, "no writable cgroup2 hierarchy at " CG_ROOT);
	if (write_file(CG_ROOT "/cgroup.subtree_control", "+memory"))
		SKIP(return, "cannot enable the memory controller: %s", strerror(errno));
	rmdir(CG_DIR);
	ASSERT_EQ(0, mkdir(CG_DIR, 0755)) TH_LOG("mkdir %s: %s", CG_DIR, strerror(errno));
	snprintf(max, sizeof(max), "%llu", CG_MAX);
	ASSERT_EQ(0, write_file(CG_DIR "/memory.max", max));

	/* The zero page: the source itself costs the cgroup nothing. */
	src = mmap(NULL, 4 * CG_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		cg_child(pipefd[1], src);
	close(pipefd[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ((ssize_t)sizeof(res), read(pipefd[0], &res, sizeof(res)));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child in the cgroup died: status %#x", status);
	EXPECT_EQ(0, rmdir(CG_DIR));

	close(pipefd[0]);
	EXPECT_EQ(-1, res.r) TH_LOG("WRITE of %llu MiB under memory.max %llu MiB: %d",
				    4 * CG_MAX >> 20, CG_MAX >> 20, res.r);
	EXPECT_EQ(ENOMEM, res.err) TH_LOG("errno %d (%s), expected ENOMEM", res.err,
					  strerror(res.err));
	EXPECT_LT(0ULL, (unsigned long long)res.written);
	EXPECT_GT(CG_MAX, res.written);
	EXPECT_EQ(res.written, res.allocated);
	TH_LOG("wrote %llu KiB, then split attributes into %d runs before memory.max",
	       (unsigned long long)res.written >> 10, res.runs);
	EXPECT_EQ(ENOMEM, res.set_err) TH_LOG("SET ATTRIBUTES at memory.max: errno %d (%s) after %d runs, expected ENOMEM",
					      res.set_err, strerror(res.set_err), res.runs);
	munmap(src, 4 * CG_MAX);
}

#define COST_FILES	512
#define COST_RUNS	100000

/*
 * Bytes of slab in the whole system, per-cpu counters folded first: the
 * pages of slab caches, so only changes of many objects show.
 */
static long long slab_bytes(void)
{
	char line[256];
	long long kb = -1;
	FILE *f;

	if (write_file("/proc/sys/vm/stat_refresh", "1"))
		return -1;
	f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Slab:", 5))
			kb = strtoll(line + 5, NULL, 10);
	fclose(f);
	return kb * 1024;
}

/*
 * KASAN's quarantine, kmemleak's metadata and their slowness make slab
 * and time figures meaningless: skip the cost test on such kernels.
 */
static bool debug_kernel(void)
{
	char line[256];
	bool kasan = false;
	FILE *f;

	if (!access("/sys/kernel/debug/kmemleak", F_OK))
		return true;
	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return false;
	while (!kasan && fgets(line, sizeof(line), f))
		kasan = !!strstr(line, " kasan_report\n");
	fclose(f);
	return kasan;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/*
 * What attributes cost in memory (the system's slab) and time: for an
 * attribute on all of a 1 TiB file, and per run of pages.
 */
TEST_F_TIMEOUT(slow, tib_costs_little, SLOW_TIMEOUT)
{
	struct rlimit nofile = { COST_FILES + 64, COST_FILES + 64 };
	long long s0, s1, s2, s3;
	double t0, t1, t2, t3;
	int fds[COST_FILES], i;

	close(gmem_open_dev(_metadata));
	if (debug_kernel())
		SKIP(return, "KASAN or kmemleak kernel: its slab and time figures say nothing");
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &nofile)) TH_LOG("%s", strerror(errno));
	for (i = 0; i < COST_FILES; i++) {
		fds[i] = __gmem_create_file(TIB, 0);
		ASSERT_LE(0, fds[i]) TH_LOG("GMEM_CREATE 1 TiB: %s", strerror(errno));
	}
	s0 = slab_bytes();
	ASSERT_LE(0, s0) TH_LOG("no Slab in /proc/meminfo");
	t0 = now_us();
	for (i = 0; i < COST_FILES; i++)
		ASSERT_EQ(0, __gmem_set_attrs(fds[i], 0, TIB, N, N));
	t1 = now_us();
	s1 = slab_bytes();
	TH_LOG("NOALLOC on all of a 1 TiB file: %.1f us, %lld bytes of slab (mean of %d files)",
	       (t1 - t0) / COST_FILES, (s1 - s0) / COST_FILES, COST_FILES);
	EXPECT_GT(4096, (s1 - s0) / COST_FILES);
	EXPECT_GT(10000, (t1 - t0) / COST_FILES);

	/*
	 * Fragment one file: every other page of the first 2 * COST_RUNS.
	 * The other files stay open, so that no freed node is reused.
	 */
	s1 = slab_bytes();
	t1 = now_us();
	for (i = 0; i < COST_RUNS; i++)
		ASSERT_EQ(0, __gmem_set_attrs(fds[0], (2ULL * i + 1) * PG, PG, 0, N));
	t2 = now_us();
	s2 = slab_bytes();
	EXPECT_RUN(fds[0], 0, N, PG);
	EXPECT_RUN(fds[0], 2 * COST_RUNS * PG, N, TIB - 2 * COST_RUNS * PG);
	TH_LOG("%d runs: %.1f us per change, %lld bytes of slab per run",
	       COST_RUNS, (t2 - t1) / COST_RUNS, (s2 - s1) / COST_RUNS);
	EXPECT_LT(0, s2 - s1);
	EXPECT_GT(256, (s2 - s1) / COST_RUNS);
	/* One call clears them all, and gives the memory back. */
	t2 = now_us();
	ASSERT_EQ(0, __gmem_set_attrs(fds[0], 0, TIB, 0, GMEM_ATTRS));
	t3 = now_us();
	s3 = slab_bytes();
	TH_LOG("clearing 1 TiB holding %d runs: %.0f us, slab %+lld KiB",
	       COST_RUNS, t3 - t2, (s3 - s2) >> 10);
	EXPECT_RUN(fds[0], 0, 0, TIB);
	EXPECT_LT((s2 - s1) / 2, s2 - s3) TH_LOG("the runs' memory was not freed");
	EXPECT_GT(2e6, t3 - t2);
	for (i = 0; i < COST_FILES; i++)
		close(fds[i]);
}

/* The file's ioctls are not /dev/gmem's, and the other way round. */
TEST_F(attrs, wrong_fd_enotty)
{
	struct gmem_attributes a = { .size = PG, .mask = N };
	struct gmem_create c = { .size = PG };
	int dev = gmem_open_dev(_metadata);

	EXPECT_ERRNO(ENOTTY, ioctl(dev, GMEM_SET_ATTRIBUTES, &a), "SET on /dev/gmem");
	EXPECT_ERRNO(ENOTTY, ioctl(dev, GMEM_GET_ATTRIBUTES, &a), "GET on /dev/gmem");
	EXPECT_ERRNO(ENOTTY, ioctl(dev, GMEM_WRITE, &a), "WRITE on /dev/gmem");
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, GMEM_CREATE, &c), "CREATE on a gmem file");
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IO(GMEM_IOCTL_MAGIC, 0x7f), 0),
		     "unknown ioctl on a gmem file");
	close(dev);
}

TEST_HARNESS_MAIN
