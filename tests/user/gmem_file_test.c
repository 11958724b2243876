// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of gmem files: GMEM_CREATE on /dev/gmem, what the returned fd
 * allows (fallocate, fstat, fdinfo) and refuses (read, write, mmap,
 * splice, seek, truncate), memory cgroup charging, the module-wide
 * counters, permissions and the module reference a file holds.
 *
 * Every error check names the errno; where the VFS rejects a call before
 * gmem sees it, the comment says so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define GMEM_ALLOCATE	FALLOC_FL_KEEP_SIZE
#define GMEM_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

#define CGROUP_ROOT	"/sys/fs/cgroup"
#define MODULE_DIR	"/sys/module/gmem"

static unsigned long long page_size(void)
{
	return (unsigned long long)sysconf(_SC_PAGESIZE);
}

/* Bytes allocated to @fd according to fstat (st_blocks are 512 bytes). */
#define stat_allocated(_metadata, fd) ({				\
	struct stat __st;						\
	ASSERT_EQ(0, fstat((fd), &__st)) TH_LOG("fstat: %s", strerror(errno)); \
	(unsigned long long)__st.st_blocks * 512;			\
})

/*
 * expect_allocated() - fstat and fdinfo both say @fd holds @bytes.
 */
#define expect_allocated(_metadata, fd, bytes) do {			\
	int __afd = (fd);						\
	unsigned long long __want = (bytes);				\
	unsigned long long __st = stat_allocated(_metadata, __afd);	\
	unsigned long long __fi = gmem_fdinfo(_metadata, __afd, "gmem-allocated"); \
	EXPECT_EQ(__want, __st)						\
		TH_LOG("st_blocks * 512: expected %llu, got %llu", __want, __st); \
	EXPECT_EQ(__want, __fi)						\
		TH_LOG("gmem-allocated: expected %llu, got %llu", __want, __fi); \
} while (0)

/* fallocate() that must succeed. */
#define gmem_fallocate(_metadata, fd, mode, off, len) do {		\
	long long __o = (off), __l = (len);				\
	int __m = (mode);						\
	ASSERT_EQ(0, fallocate((fd), __m, __o, __l))			\
		TH_LOG("fallocate mode %#x offset %#llx len %#llx: %s",	\
		       __m, __o, __l, strerror(errno));			\
} while (0)

/* Both files of the module-wide view in /sys/class/misc/gmem/. */
struct gmem_counters {
	unsigned long long files;
	unsigned long long allocated;
};

#define gmem_counters(_metadata) ((struct gmem_counters) {		\
	.files = gmem_read_u64(_metadata, GMEM_SYSFS "/files"),		\
	.allocated = gmem_read_u64(_metadata, GMEM_SYSFS "/allocated_bytes"), \
})

#define expect_counters(_metadata, base, nfiles, bytes) do {		\
	struct gmem_counters __c = gmem_counters(_metadata);		\
	unsigned long long __wf = (base).files + (nfiles);		\
	unsigned long long __wa = (base).allocated + (bytes);		\
	EXPECT_EQ(__wf, __c.files)					\
		TH_LOG(GMEM_SYSFS "/files: expected %llu, got %llu",	\
		       __wf, __c.files);				\
	EXPECT_EQ(__wa, __c.allocated)					\
		TH_LOG(GMEM_SYSFS "/allocated_bytes: expected %llu, got %llu", \
		       __wa, __c.allocated);				\
} while (0)

/* The MemFree line of /proc/meminfo, in bytes. */
#define mem_free(_metadata) ({						\
	unsigned long long __kb = 0;					\
	int __r = __gmem_read_key("/proc/meminfo", "MemFree", 0, &__kb); \
	ASSERT_EQ(0, __r) TH_LOG("MemFree in /proc/meminfo: %s", strerror(-__r)); \
	__kb * 1024;							\
})

/*
 * Bytes of free pages parked on per-cpu lists: the "count:" lines of the
 * pagesets in /proc/zoneinfo.  MemFree does not include them, and after
 * a large free they can hold tens of MiB until the vmstat worker decays
 * them.
 */
static unsigned long long pcp_free(void)
{
	unsigned long long pages = 0;
	char line[256];
	FILE *f;

	f = fopen("/proc/zoneinfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long n;

		if (sscanf(line, " count: %llu", &n) == 1)
			pages += n;
	}
	fclose(f);
	return pages * page_size();
}

static unsigned long long abs_diff(unsigned long long a, unsigned long long b)
{
	return a > b ? a - b : b - a;
}

/*
 * free_settled() - free memory (MemFree + per-cpu lists) once it is
 * steady: right after another process exits it can read tens of MiB low
 * for a moment.  Samples 20 ms apart until two agree within 1 MiB (at
 * most about a second).
 */
#define free_settled(_metadata) ({					\
	unsigned long long __prev, __now = mem_free(_metadata) + pcp_free(); \
	int __tries = 50;						\
	do {								\
		__prev = __now;						\
		usleep(20000);						\
		__now = mem_free(_metadata) + pcp_free();		\
	} while (abs_diff(__prev, __now) > MiB && --__tries);		\
	__now;								\
})

/*
 * create: GMEM_CREATE itself, and what needs no more than /dev/gmem.
 */
FIXTURE(create) {
	int devfd;
	unsigned long long page;
};

FIXTURE_SETUP(create)
{
	self->devfd = -1;
	self->page = page_size();
	self->devfd = gmem_open_dev(_metadata);
}

FIXTURE_TEARDOWN(create)
{
	if (self->devfd >= 0)
		close(self->devfd);
}

TEST_F(create, fd_flags)
{
	int fd, fl;

	fd = gmem_create(_metadata, self->devfd, self->page, 0);
	fl = fcntl(fd, F_GETFL);
	EXPECT_EQ(O_RDWR, fl & O_ACCMODE)
		TH_LOG("F_GETFL: expected O_RDWR, got %#x", fl);
	fl = fcntl(fd, F_GETFD);
	EXPECT_EQ(0, fl & FD_CLOEXEC)
		TH_LOG("F_GETFD without GMEM_CREATE_CLOEXEC: expected 0, got %#x", fl);
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, fd, "gmem-flags") & ~GMEM_CREATE_BLOCKS);
	close(fd);

	fd = gmem_create(_metadata, self->devfd, self->page, GMEM_CREATE_CLOEXEC);
	fl = fcntl(fd, F_GETFL);
	EXPECT_EQ(O_RDWR, fl & O_ACCMODE)
		TH_LOG("F_GETFL: expected O_RDWR, got %#x", fl);
	fl = fcntl(fd, F_GETFD);
	EXPECT_EQ(FD_CLOEXEC, fl & FD_CLOEXEC)
		TH_LOG("F_GETFD with GMEM_CREATE_CLOEXEC: expected FD_CLOEXEC, got %#x", fl);
	EXPECT_EQ(GMEM_CREATE_CLOEXEC,
		  gmem_fdinfo(_metadata, fd, "gmem-flags") & ~GMEM_CREATE_BLOCKS);
	close(fd);
}

TEST_F(create, reserved_einval)
{
	const __u64 values[] = { 1, 1ULL << 63, ~0ULL };
	struct gmem_create args;
	unsigned int i, v;
	int fd;

	for (i = 0; i < ARRAY_SIZE(args.reserved); i++) {
		for (v = 0; v < ARRAY_SIZE(values); v++) {
			memset(&args, 0, sizeof(args));
			args.size = self->page;
			args.reserved[i] = values[v];
			errno = 0;
			fd = ioctl(self->devfd, GMEM_CREATE, &args);
			EXPECT_EQ(-1, fd)
				TH_LOG("reserved[%u] = %#llx: expected EINVAL, got fd %d",
				       i, (unsigned long long)values[v], fd);
			EXPECT_EQ(EINVAL, errno)
				TH_LOG("reserved[%u] = %#llx: expected EINVAL, got %s",
				       i, (unsigned long long)values[v], strerror(errno));
			if (fd >= 0)
				close(fd);
		}
	}
	/* All six are checked: struct gmem_create has not grown under us. */
	EXPECT_EQ(6UL, ARRAY_SIZE(args.reserved));
}

TEST_F(create, unknown_flags_einval)
{
	__u64 flag;
	int fd;

	for (flag = 1; flag; flag <<= 1) {
		if (flag & GMEM_CREATE_FLAGS)
			continue;
		errno = 0;
		fd = __gmem_create(self->devfd, self->page, flag);
		EXPECT_EQ(-1, fd)
			TH_LOG("flags %#llx: expected EINVAL, got fd %d",
			       (unsigned long long)flag, fd);
		EXPECT_EQ(EINVAL, errno)
			TH_LOG("flags %#llx: expected EINVAL, got %s",
			       (unsigned long long)flag, strerror(errno));
		if (fd >= 0)
			close(fd);

		/* A known flag does not make an unknown one acceptable. */
		errno = 0;
		fd = __gmem_create(self->devfd, self->page, flag | GMEM_CREATE_FLAGS);
		EXPECT_EQ(-1, fd);
		EXPECT_EQ(EINVAL, errno)
			TH_LOG("flags %#llx: expected EINVAL, got %s",
			       (unsigned long long)(flag | GMEM_CREATE_FLAGS),
			       strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

TEST_F(create, bad_size_einval)
{
	unsigned long long pg = self->page;
	unsigned long long max = gmem_read_u64(_metadata, GMEM_PARAM_MAX_FILE_SIZE);
	const struct {
		const char *name;
		__u64 size;
	} cases[] = {
		{ "zero",		0 },
		{ "one byte",		1 },
		{ "page - 1",		pg - 1 },
		{ "page + 1",		pg + 1 },
		{ "2 MiB - 1",		2 * MiB - 1 },
		{ "max + page",		max + pg },
		{ "max + 1",		max + 1 },
		{ "1 << 63",		1ULL << 63 },
		{ "largest aligned",	~0ULL & ~(pg - 1) },
		{ "~0",			~0ULL },
	};
	unsigned int i;
	int fd;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		errno = 0;
		fd = __gmem_create(self->devfd, cases[i].size, 0);
		EXPECT_EQ(-1, fd)
			TH_LOG("size %s (%#llx): expected EINVAL, got fd %d",
			       cases[i].name, (unsigned long long)cases[i].size, fd);
		EXPECT_EQ(EINVAL, errno)
			TH_LOG("size %s (%#llx): expected EINVAL, got %s",
			       cases[i].name, (unsigned long long)cases[i].size,
			       strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

TEST_F(create, max_file_size)
{
	unsigned long long max = gmem_read_u64(_metadata, GMEM_PARAM_MAX_FILE_SIZE);
	struct stat st;
	int fd;

	fd = gmem_create(_metadata, self->devfd, max, 0);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(max, (unsigned long long)st.st_size);
	EXPECT_EQ(max, gmem_fdinfo(_metadata, fd, "gmem-size"));
	close(fd);

	errno = 0;
	fd = __gmem_create(self->devfd, max + self->page, 0);
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("size max_file_size + page: expected EINVAL, got %s",
		       strerror(errno));
	if (fd >= 0)
		close(fd);
}

TEST_F(create, bad_pointer_efault)
{
	struct gmem_create args = { .size = self->page };
	struct gmem_create *straddle;
	unsigned int i;
	char *map;
	int fd;

	/* Two pages; unmap the second so the struct can run into a hole. */
	map = mmap(NULL, 2 * self->page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, munmap(map + self->page, self->page));
	straddle = (void *)(map + self->page - sizeof(args.size));
	memcpy(straddle, &args, sizeof(args.size));

	const struct {
		const char *name;
		void *ptr;
	} cases[] = {
		{ "NULL",		NULL },
		{ "unmapped page",	map + self->page },
		{ "crosses into a hole", straddle },
		{ "kernel address",	(void *)0xffffffff81000000UL },
		{ "non-canonical",	(void *)0x8000000000000000UL },
	};

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		errno = 0;
		fd = ioctl(self->devfd, GMEM_CREATE, cases[i].ptr);
		EXPECT_EQ(-1, fd)
			TH_LOG("argument %s: expected EFAULT, got fd %d",
			       cases[i].name, fd);
		EXPECT_EQ(EFAULT, errno)
			TH_LOG("argument %s: expected EFAULT, got %s",
			       cases[i].name, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	munmap(map, self->page);
}

TEST_F(create, dev_not_writable_ebadf)
{
	int rofd, wofd, fd;

	rofd = open(GMEM_DEV, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, rofd) TH_LOG("open " GMEM_DEV " O_RDONLY: %s", strerror(errno));
	errno = 0;
	fd = __gmem_create(rofd, self->page, 0);
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(EBADF, errno)
		TH_LOG("GMEM_CREATE on O_RDONLY " GMEM_DEV ": expected EBADF, got %s",
		       strerror(errno));
	if (fd >= 0)
		close(fd);
	close(rofd);

	/* Writing is what counts, not reading. */
	wofd = open(GMEM_DEV, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wofd) TH_LOG("open " GMEM_DEV " O_WRONLY: %s", strerror(errno));
	fd = gmem_create(_metadata, wofd, self->page, 0);
	close(fd);
	close(wofd);
}

TEST_F(create, file_ioctl_enotty)
{
	struct gmem_create args = { .size = self->page };
	const unsigned long cmds[] = {
		GMEM_CREATE,				/* only /dev/gmem's */
		_IO('X', 1),				/* someone else's type */
		_IO(GMEM_IOCTL_MAGIC, 0xff),		/* ours, unused number */
		_IOWR(GMEM_IOCTL_MAGIC, 0x7f, __u64),
	};
	unsigned int i;
	int fd, r;

	fd = gmem_create(_metadata, self->devfd, self->page, 0);
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		errno = 0;
		r = ioctl(fd, cmds[i], &args);
		EXPECT_EQ(-1, r) TH_LOG("ioctl %#lx on a gmem file succeeded", cmds[i]);
		EXPECT_EQ(ENOTTY, errno)
			TH_LOG("ioctl %#lx on a gmem file: expected ENOTTY, got %s",
			       cmds[i], strerror(errno));
		if (r >= 0 && cmds[i] == GMEM_CREATE)
			close(r);
	}
	close(fd);
}

/* Number of SIGALRMs seen by fallocate_eintr. */
static volatile sig_atomic_t nr_alarms;

static void count_alarm(int sig)
{
	nr_alarms++;
}

TEST_F(create, fallocate_eintr)
{
	const unsigned long long size = 1 * GiB;
	struct itimerval tick = {
		.it_interval = { .tv_usec = 1000 },
		.it_value = { .tv_usec = 1000 },
	};
	struct itimerval off = { 0 };
	struct sigaction sa = { .sa_handler = count_alarm };	/* no SA_RESTART */
	struct gmem_counters base = gmem_counters(_metadata);
	unsigned long long st, fi;
	int fd, r, err;

	fd = gmem_create(_metadata, self->devfd, size, 0);
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	nr_alarms = 0;
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &tick, NULL));
	r = fallocate(fd, GMEM_ALLOCATE, 0, size);
	err = errno;
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &off, NULL));
	signal(SIGALRM, SIG_DFL);

	EXPECT_EQ(-1, r) TH_LOG("fallocate of 1 GiB under a 1 ms timer returned %d", r);
	EXPECT_EQ(EINTR, err)
		TH_LOG("fallocate under a 1 ms timer: expected EINTR, got %s",
		       strerror(err));
	EXPECT_LT(0, nr_alarms);

	/* What was allocated before the signal stays, and is counted. */
	st = stat_allocated(_metadata, fd);
	fi = gmem_fdinfo(_metadata, fd, "gmem-allocated");
	EXPECT_EQ(fi, st)
		TH_LOG("after EINTR: st_blocks * 512 = %llu, gmem-allocated = %llu",
		       st, fi);
	EXPECT_LT(st, size);
	EXPECT_EQ(0ULL, st % self->page);
	expect_counters(_metadata, base, 1, fi);

	/* Without the timer the same call completes the range. */
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, size);
	expect_allocated(_metadata, fd, size);
	expect_counters(_metadata, base, 1, size);

	close(fd);
	expect_counters(_metadata, base, 0, 0);
}

TEST_F(create, module_counters)
{
	unsigned long long pg = self->page;
	struct gmem_counters base = gmem_counters(_metadata);
	int a, b;

	a = gmem_create(_metadata, self->devfd, 4 * MiB, 0);
	expect_counters(_metadata, base, 1, 0);
	b = gmem_create(_metadata, self->devfd, 4 * MiB, GMEM_CREATE_CLOEXEC);
	expect_counters(_metadata, base, 2, 0);

	gmem_fallocate(_metadata, a, GMEM_ALLOCATE, 0, 3 * pg);
	gmem_fallocate(_metadata, b, GMEM_ALLOCATE, MiB, 5 * pg);
	expect_counters(_metadata, base, 2, 8 * pg);
	/* Allocating again what is there allocates nothing. */
	gmem_fallocate(_metadata, b, GMEM_ALLOCATE, MiB, 2 * pg);
	expect_counters(_metadata, base, 2, 8 * pg);

	gmem_fallocate(_metadata, a, GMEM_PUNCH, pg, pg);
	expect_counters(_metadata, base, 2, 7 * pg);
	expect_allocated(_metadata, a, 2 * pg);
	expect_allocated(_metadata, b, 5 * pg);

	close(a);
	expect_counters(_metadata, base, 1, 5 * pg);
	close(b);
	expect_counters(_metadata, base, 0, 0);
}

/*
 * The pages are real memory: free memory drops by about the allocation
 * and comes back after close.  Pages freed last sit on the per-cpu lists
 * for a while, where MemFree does not count them: count them in.
 */
TEST_F(create, memfree)
{
	const unsigned long long size = 256 * MiB, slack = 16 * MiB;
	unsigned long long free0, free1, free2;
	int fd;

	fd = gmem_create(_metadata, self->devfd, size, 0);
	free0 = free_settled(_metadata);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, size);
	free1 = free_settled(_metadata);
	EXPECT_GE(free0, free1 + size - slack)
		TH_LOG("MemFree + per-cpu lists: %llu MiB before allocating 256 MiB, %llu after",
		       free0 / MiB, free1 / MiB);
	EXPECT_LE(free0, free1 + size + slack)
		TH_LOG("MemFree + per-cpu lists: %llu MiB before allocating 256 MiB, %llu after",
		       free0 / MiB, free1 / MiB);

	close(fd);
	free2 = free_settled(_metadata);
	EXPECT_LE(abs_diff(free0, free2), slack)
		TH_LOG("MemFree + per-cpu lists: %llu MiB before, %llu MiB after close",
		       free0 / MiB, free2 / MiB);
}

/*
 * expect_module_busy() - gmem is pinned (@what says by what), and
 * delete_module() fails with EWOULDBLOCK.  The delete_module() is
 * guarded by a look at the refcount: when nothing pins gmem it would
 * really go, and take the suite with it.
 */
#define expect_module_busy(_metadata, what) do {			\
	unsigned long long __ref = gmem_read_u64(_metadata, MODULE_DIR "/refcnt"); \
	long __r;							\
	ASSERT_LT(0ULL, __ref) TH_LOG("gmem's refcnt is 0 with %s", (what)); \
	errno = 0;							\
	__r = syscall(SYS_delete_module, "gmem", O_NONBLOCK);		\
	ASSERT_EQ(-1, __r) TH_LOG("gmem unloaded with %s", (what));	\
	EXPECT_EQ(EWOULDBLOCK, errno)					\
		TH_LOG("delete_module with %s: expected EWOULDBLOCK, got %s", \
		       (what), strerror(errno));			\
} while (0)

/*
 * The module cannot go while anything of it is open.  Never unloads it:
 * the rest of the suite needs it.
 */
TEST_F(create, module_busy)
{
	struct dirent *de;
	char path[64];
	struct stat st;
	DIR *holders;
	int fd, opath;

	/* No module depends on gmem: "busy" can only come from references. */
	holders = opendir(MODULE_DIR "/holders");
	ASSERT_NE(NULL, holders) TH_LOG("opendir " MODULE_DIR "/holders: %s",
					strerror(errno));
	while ((de = readdir(holders)))
		ASSERT_EQ('.', de->d_name[0])
			TH_LOG("module %s uses gmem: cannot test its references",
			       de->d_name);
	closedir(holders);

	expect_module_busy(_metadata, "/dev/gmem open");

	/* Only a gmem file open. */
	fd = gmem_create(_metadata, self->devfd, self->page, 0);
	close(self->devfd);
	self->devfd = -1;
	expect_module_busy(_metadata, "a gmem file open");
	EXPECT_EQ(0, access(GMEM_DEV, F_OK));

	/*
	 * Only an O_PATH fd of a closed gmem file: it keeps the inode,
	 * whose operations are gmem's, so it keeps the module too.
	 */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	opath = open(path, O_PATH | O_CLOEXEC);
	ASSERT_LE(0, opath) TH_LOG("open %s O_PATH: %s", path, strerror(errno));
	close(fd);
	expect_module_busy(_metadata, "an O_PATH fd of a gmem inode open");
	ASSERT_EQ(0, fstat(opath, &st)) TH_LOG("fstat O_PATH: %s", strerror(errno));
	EXPECT_EQ(self->page, (unsigned long long)st.st_size);
	EXPECT_EQ(0, st.st_blocks);
	close(opath);
}

/*
 * param: the max_file_size module parameter.  Teardown restores it.
 */
FIXTURE(param) {
	int devfd;
	unsigned long long page;
	char saved[64];
};

FIXTURE_SETUP(param)
{
	int r;

	self->saved[0] = '\0';
	self->devfd = -1;
	self->page = page_size();
	self->devfd = gmem_open_dev(_metadata);
	r = __gmem_read_file(GMEM_PARAM_MAX_FILE_SIZE, self->saved,
			     sizeof(self->saved));
	ASSERT_EQ(0, r) TH_LOG("read " GMEM_PARAM_MAX_FILE_SIZE ": %s", strerror(-r));
}

FIXTURE_TEARDOWN(param)
{
	int r;

	if (self->saved[0]) {
		r = __gmem_write_file(GMEM_PARAM_MAX_FILE_SIZE, self->saved);
		EXPECT_EQ(0, r) TH_LOG("restore max_file_size: %s", strerror(-r));
	}
	if (self->devfd >= 0)
		close(self->devfd);
}

TEST_F(param, max_file_size_rejects_invalid)
{
	unsigned long long before = gmem_read_u64(_metadata, GMEM_PARAM_MAX_FILE_SIZE);
	char unaligned[3][32];
	const char * const cases[] = {
		"0", "0\n", "1", unaligned[0], unaligned[1], unaligned[2],
		"abc", "-4096",
		"0x8000000000000000",	/* aligned, above MAX_LFS_FILESIZE */
	};
	unsigned long long now;
	unsigned int i;
	int r;

	snprintf(unaligned[0], sizeof(unaligned[0]), "%llu", self->page - 1);
	snprintf(unaligned[1], sizeof(unaligned[1]), "%llu", self->page + 1);
	snprintf(unaligned[2], sizeof(unaligned[2]), "%llu\n", 2 * MiB + 512);

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		r = __gmem_write_file(GMEM_PARAM_MAX_FILE_SIZE, cases[i]);
		EXPECT_EQ(-EINVAL, r)
			TH_LOG("max_file_size = \"%s\": expected EINVAL, got %d (%s)",
			       cases[i], r, strerror(-r));
		now = gmem_read_u64(_metadata, GMEM_PARAM_MAX_FILE_SIZE);
		EXPECT_EQ(before, now)
			TH_LOG("max_file_size changed by \"%s\": %llu -> %llu",
			       cases[i], before, now);
	}
}

/*
 * The huge-page, takeover and direct-map parameters refuse what they
 * cannot parse with EINVAL and keep their value: blocks takes always,
 * flag or never; populate_threads and max_1g an unsigned number;
 * takeover and no_direct_map a boolean.
 */
TEST_F(param, params_reject_invalid)
{
	static const struct {
		const char *name, *bad[4];
	} params[] = {
		{ MODULE_DIR "/parameters/blocks", { "sometimes", "ALWAYS", " flag", "1" } },
		{ MODULE_DIR "/parameters/populate_threads", { "abc", "-1", "1.5", "0x" } },
		{ MODULE_DIR "/parameters/max_1g", { "abc", "-1", "1G", "one" } },
		{ MODULE_DIR "/parameters/takeover", { "maybe", "2", "-1", "x" } },
		{ MODULE_DIR "/parameters/no_direct_map", { "maybe", "2", "-1", "x" } },
	};
	char before[32], now[32];
	unsigned int i, j;
	int r;

	for (i = 0; i < ARRAY_SIZE(params); i++) {
		ASSERT_EQ(0, __gmem_read_file(params[i].name, before, sizeof(before)));
		for (j = 0; j < ARRAY_SIZE(params[i].bad); j++) {
			r = __gmem_write_file(params[i].name, params[i].bad[j]);
			EXPECT_EQ(-EINVAL, r)
				TH_LOG("%s = \"%s\": expected EINVAL, got %d (%s)",
				       params[i].name, params[i].bad[j], r, strerror(-r));
			ASSERT_EQ(0, __gmem_read_file(params[i].name, now, sizeof(now)));
			EXPECT_STREQ(before, now);
		}
	}
}

TEST_F(param, max_file_size_takes_effect)
{
	int fd;

	gmem_write_file(_metadata, GMEM_PARAM_MAX_FILE_SIZE, "2097152\n");
	EXPECT_EQ(2 * MiB, gmem_read_u64(_metadata, GMEM_PARAM_MAX_FILE_SIZE));
	fd = gmem_create(_metadata, self->devfd, 2 * MiB, 0);
	close(fd);
	errno = 0;
	fd = __gmem_create(self->devfd, 2 * MiB + self->page, 0);
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("size 2 MiB + page with max_file_size 2 MiB: expected EINVAL, got %s",
		       strerror(errno));
	if (fd >= 0)
		close(fd);

	/* Raising it works as well, in any base kstrtoul() takes. */
	gmem_write_file(_metadata, GMEM_PARAM_MAX_FILE_SIZE, "0x400000");
	EXPECT_EQ(4 * MiB, gmem_read_u64(_metadata, GMEM_PARAM_MAX_FILE_SIZE));
	fd = gmem_create(_metadata, self->devfd, 4 * MiB, 0);
	close(fd);
}

/*
 * file: one 2 MiB gmem file.
 */
FIXTURE(file) {
	int devfd;
	int fd;
	unsigned long long page;
	unsigned long long size;
};

FIXTURE_SETUP(file)
{
	self->devfd = -1;
	self->fd = -1;
	self->page = page_size();
	self->size = 2 * MiB;
	self->devfd = gmem_open_dev(_metadata);
	self->fd = gmem_create(_metadata, self->devfd, self->size, 0);
}

FIXTURE_TEARDOWN(file)
{
	if (self->fd >= 0)
		close(self->fd);
	if (self->devfd >= 0)
		close(self->devfd);
}

static char iobuf[4096];

static ssize_t do_read(int fd)
{
	return read(fd, iobuf, sizeof(iobuf));
}

static ssize_t do_write(int fd)
{
	return write(fd, iobuf, sizeof(iobuf));
}

static ssize_t do_pread(int fd)
{
	return pread(fd, iobuf, sizeof(iobuf), 0);
}

static ssize_t do_pwrite(int fd)
{
	return pwrite(fd, iobuf, sizeof(iobuf), 0);
}

static ssize_t do_readv(int fd)
{
	struct iovec iov = { iobuf, sizeof(iobuf) };

	return readv(fd, &iov, 1);
}

static ssize_t do_writev(int fd)
{
	struct iovec iov = { iobuf, sizeof(iobuf) };

	return writev(fd, &iov, 1);
}

static ssize_t do_preadv(int fd)
{
	struct iovec iov = { iobuf, sizeof(iobuf) };

	return preadv(fd, &iov, 1, 0);
}

static ssize_t do_pwritev(int fd)
{
	struct iovec iov = { iobuf, sizeof(iobuf) };

	return pwritev(fd, &iov, 1, 0);
}

/*
 * No file I/O.  read/write/readv/writev: the VFS says EINVAL for a file
 * without read or write ops.  The positioned variants fail earlier, with
 * ESPIPE: a gmem file, like every anon inode file, is not pread-able.
 */
TEST_F(file, no_read_write)
{
	const struct {
		const char *name;
		ssize_t (*fn)(int fd);
		int err;
	} cases[] = {
		{ "read",	do_read,	EINVAL },
		{ "write",	do_write,	EINVAL },
		{ "readv",	do_readv,	EINVAL },
		{ "writev",	do_writev,	EINVAL },
		{ "pread",	do_pread,	ESPIPE },
		{ "pwrite",	do_pwrite,	ESPIPE },
		{ "preadv",	do_preadv,	ESPIPE },
		{ "pwritev",	do_pwritev,	ESPIPE },
	};
	unsigned int i;
	ssize_t r;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		errno = 0;
		r = cases[i].fn(self->fd);
		EXPECT_EQ(-1, r) TH_LOG("%s on a gmem file returned %zd", cases[i].name, r);
		EXPECT_EQ(cases[i].err, errno)
			TH_LOG("%s: expected %s, got %s", cases[i].name,
			       strerror(cases[i].err), strerror(errno));
	}
	expect_allocated(_metadata, self->fd, 0);
}

TEST_F(file, no_mmap)
{
	const int flags[] = { MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE };
	const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE };
	unsigned int f, p;
	void *map;

	for (f = 0; f < ARRAY_SIZE(flags); f++) {
		for (p = 0; p < ARRAY_SIZE(prots); p++) {
			errno = 0;
			map = mmap(NULL, self->page, prots[p], flags[f], self->fd, 0);
			EXPECT_EQ(MAP_FAILED, map)
				TH_LOG("mmap flags %#x prot %#x of a gmem file succeeded",
				       flags[f], prots[p]);
			EXPECT_EQ(ENODEV, errno)
				TH_LOG("mmap flags %#x prot %#x: expected ENODEV, got %s",
				       flags[f], prots[p], strerror(errno));
			if (map != MAP_FAILED)
				munmap(map, self->page);
		}
	}
}

TEST_F(file, no_splice)
{
	loff_t off = 0;
	int pipefd[2];
	ssize_t r;

	ASSERT_EQ(0, pipe(pipefd));

	errno = 0;
	r = splice(self->fd, NULL, pipefd[1], NULL, self->page, 0);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("splice gmem -> pipe: expected EINVAL, got %s", strerror(errno));

	/* With data in the pipe, so that the VFS has something to move. */
	memset(iobuf, 0xaa, sizeof(iobuf));
	ASSERT_EQ((ssize_t)sizeof(iobuf), write(pipefd[1], iobuf, sizeof(iobuf)));
	errno = 0;
	r = splice(pipefd[0], NULL, self->fd, NULL, sizeof(iobuf), 0);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("splice pipe -> gmem: expected EINVAL, got %s", strerror(errno));

	/*
	 * Given an offset, do_splice() refuses earlier (not pread/pwrite-able)
	 * but also with EINVAL, unlike pread and sendfile (ESPIPE).
	 */
	errno = 0;
	r = splice(self->fd, &off, pipefd[1], NULL, self->page, 0);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("splice gmem at offset -> pipe: expected EINVAL, got %s",
		       strerror(errno));
	errno = 0;
	r = splice(pipefd[0], NULL, self->fd, &off, sizeof(iobuf), 0);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("splice pipe -> gmem at offset: expected EINVAL, got %s",
		       strerror(errno));

	close(pipefd[0]);
	close(pipefd[1]);
	expect_allocated(_metadata, self->fd, 0);
}

TEST_F(file, no_sendfile)
{
	char path[] = "/tmp/gmem-sendfile-XXXXXX";
	int pipefd[2], tmpfd;
	off_t off = 0;
	ssize_t r;

	ASSERT_EQ(0, pipe(pipefd));
	tmpfd = mkstemp(path);
	ASSERT_LE(0, tmpfd) TH_LOG("mkstemp %s: %s", path, strerror(errno));
	unlink(path);
	memset(iobuf, 0x55, sizeof(iobuf));
	ASSERT_EQ((ssize_t)sizeof(iobuf), write(tmpfd, iobuf, sizeof(iobuf)));

	errno = 0;
	r = sendfile(pipefd[1], self->fd, NULL, self->page);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("sendfile gmem -> pipe: expected EINVAL, got %s", strerror(errno));

	errno = 0;
	r = sendfile(tmpfd, self->fd, NULL, self->page);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("sendfile gmem -> file: expected EINVAL, got %s", strerror(errno));

	/* From a file that has data, so that the write side is reached. */
	ASSERT_EQ(0, lseek(tmpfd, 0, SEEK_SET));
	errno = 0;
	r = sendfile(self->fd, tmpfd, NULL, sizeof(iobuf));
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("sendfile file -> gmem: expected EINVAL, got %s", strerror(errno));
	errno = 0;
	r = sendfile(self->fd, tmpfd, &off, sizeof(iobuf));
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EINVAL, errno)
		TH_LOG("sendfile file at offset -> gmem: expected EINVAL, got %s",
		       strerror(errno));

	/* An offset for the gmem side: not pread-able. */
	errno = 0;
	r = sendfile(pipefd[1], self->fd, &off, self->page);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(ESPIPE, errno)
		TH_LOG("sendfile gmem at offset -> pipe: expected ESPIPE, got %s",
		       strerror(errno));

	close(tmpfd);
	close(pipefd[0]);
	close(pipefd[1]);
	expect_allocated(_metadata, self->fd, 0);
}

TEST_F(file, no_lseek)
{
	const int whences[] = { SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE };
	unsigned int i;
	off_t r;

	for (i = 0; i < ARRAY_SIZE(whences); i++) {
		errno = 0;
		r = lseek(self->fd, 0, whences[i]);
		EXPECT_EQ(-1, r)
			TH_LOG("lseek whence %d on a gmem file returned %lld",
			       whences[i], (long long)r);
		EXPECT_EQ(ESPIPE, errno)
			TH_LOG("lseek whence %d: expected ESPIPE, got %s",
			       whences[i], strerror(errno));
	}
}

TEST_F(file, no_ftruncate)
{
	const off_t sizes[] = { 0, self->page, self->size - self->page,
				self->size, 2 * self->size };
	struct stat st;
	unsigned int i;

	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, self->size);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		errno = 0;
		EXPECT_EQ(-1, ftruncate(self->fd, sizes[i]))
			TH_LOG("ftruncate to %lld succeeded", (long long)sizes[i]);
		EXPECT_EQ(EINVAL, errno)
			TH_LOG("ftruncate to %lld: expected EINVAL, got %s",
			       (long long)sizes[i], strerror(errno));
		ASSERT_EQ(0, fstat(self->fd, &st));
		EXPECT_EQ(self->size, (unsigned long long)st.st_size);
	}
	expect_allocated(_metadata, self->fd, self->size);
}

TEST_F(file, fstat)
{
	unsigned long long pg = self->page;
	struct stat st;

	ASSERT_EQ(0, fstat(self->fd, &st));
	EXPECT_TRUE(S_ISREG(st.st_mode)) TH_LOG("st_mode %#o is not S_IFREG", st.st_mode);
	EXPECT_EQ(self->size, (unsigned long long)st.st_size);
	EXPECT_EQ(pg, (unsigned long long)st.st_blksize);
	EXPECT_EQ(0, st.st_blocks);

	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, pg, 3 * pg);
	ASSERT_EQ(0, fstat(self->fd, &st));
	EXPECT_EQ(3 * pg / 512, (unsigned long long)st.st_blocks);
	EXPECT_EQ(self->size, (unsigned long long)st.st_size)
		TH_LOG("KEEP_SIZE allocation changed st_size");

	/* Overlapping allocation counts each page once. */
	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, 2 * pg);
	expect_allocated(_metadata, self->fd, 4 * pg);

	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 2 * pg, pg);
	expect_allocated(_metadata, self->fd, 3 * pg);
	/* Punching a hole again frees nothing more. */
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 2 * pg, pg);
	expect_allocated(_metadata, self->fd, 3 * pg);

	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, self->size);
	expect_allocated(_metadata, self->fd, self->size);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 0, self->size);
	expect_allocated(_metadata, self->fd, 0);
	ASSERT_EQ(0, fstat(self->fd, &st));
	EXPECT_EQ(self->size, (unsigned long long)st.st_size);
}

TEST_F(file, distinct_inodes)
{
	struct stat a, b;
	int fd2;

	fd2 = gmem_create(_metadata, self->devfd, self->size, 0);
	ASSERT_EQ(0, fstat(self->fd, &a));
	ASSERT_EQ(0, fstat(fd2, &b));
	EXPECT_NE(a.st_ino, b.st_ino)
		TH_LOG("two gmem files share inode %lu", (unsigned long)a.st_ino);
	EXPECT_EQ(a.st_ino, gmem_fdinfo(_metadata, self->fd, "gmem-id"));
	EXPECT_EQ(b.st_ino, gmem_fdinfo(_metadata, fd2, "gmem-id"));

	/* Their pages are their own. */
	gmem_fallocate(_metadata, fd2, GMEM_ALLOCATE, 0, self->page);
	expect_allocated(_metadata, fd2, self->page);
	expect_allocated(_metadata, self->fd, 0);
	close(fd2);
}

TEST_F(file, fdinfo)
{
	unsigned long long pg = self->page;
	struct stat st;
	int fd2;

	ASSERT_EQ(0, fstat(self->fd, &st));
	EXPECT_EQ(st.st_ino, gmem_fdinfo(_metadata, self->fd, "gmem-id"));
	EXPECT_EQ(self->size, gmem_fdinfo(_metadata, self->fd, "gmem-size"));
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, self->fd, "gmem-allocated"));
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, self->fd, "gmem-flags") & ~GMEM_CREATE_BLOCKS);

	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 8 * pg, 8 * pg);
	EXPECT_EQ(8 * pg, gmem_fdinfo(_metadata, self->fd, "gmem-allocated"));
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 10 * pg, 2 * pg);
	EXPECT_EQ(6 * pg, gmem_fdinfo(_metadata, self->fd, "gmem-allocated"));
	EXPECT_EQ(self->size, gmem_fdinfo(_metadata, self->fd, "gmem-size"));

	fd2 = gmem_create(_metadata, self->devfd, 3 * pg, GMEM_CREATE_CLOEXEC);
	ASSERT_EQ(0, fstat(fd2, &st));
	EXPECT_EQ(st.st_ino, gmem_fdinfo(_metadata, fd2, "gmem-id"));
	EXPECT_EQ(3 * pg, gmem_fdinfo(_metadata, fd2, "gmem-size"));
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, fd2, "gmem-allocated"));
	EXPECT_EQ(GMEM_CREATE_CLOEXEC,
		  gmem_fdinfo(_metadata, fd2, "gmem-flags") & ~GMEM_CREATE_BLOCKS);
	close(fd2);
}

/*
 * Punching part of a populated 2 MiB block holds the punched pages: the
 * file no longer has them (st_blocks, gmem-allocated), fdinfo gmem-held
 * and the module's held_bytes count them, and allocating them again
 * takes them back.  Punching the rest of the block frees all of it; so
 * does the shrinker (drop_caches), which leaves the live pages alone.
 */
TEST_F(file, held_pages)
{
	struct gmem_counters base = gmem_counters(_metadata);
	unsigned long long pg = self->page, held0;

	held0 = gmem_read_u64(_metadata, GMEM_SYSFS "/held_bytes");
	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, self->size);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 3 * pg, pg);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 10 * pg, 10 * pg);
	expect_allocated(_metadata, self->fd, self->size - 11 * pg);
	EXPECT_EQ(11 * pg, gmem_fdinfo(_metadata, self->fd, "gmem-held"));
	EXPECT_EQ(held0 + 11 * pg, gmem_read_u64(_metadata, GMEM_SYSFS "/held_bytes"));
	expect_counters(_metadata, base, 0, self->size - 11 * pg);

	/* Allocating a held page takes it back; punching it again holds it. */
	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 3 * pg, pg);
	EXPECT_EQ(10 * pg, gmem_fdinfo(_metadata, self->fd, "gmem-held"));
	expect_allocated(_metadata, self->fd, self->size - 10 * pg);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 3 * pg, pg);
	EXPECT_EQ(11 * pg, gmem_fdinfo(_metadata, self->fd, "gmem-held"));

	/* Under memory pressure the shrinker frees held pages only. */
	gmem_write_file(_metadata, "/proc/sys/vm/drop_caches", "2");
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, self->fd, "gmem-held"));
	EXPECT_EQ(held0, gmem_read_u64(_metadata, GMEM_SYSFS "/held_bytes"));
	expect_allocated(_metadata, self->fd, self->size - 11 * pg);

	/* A whole block again, then the rest punched: nothing is held. */
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 0, self->size);
	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, self->size);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 0, self->size - pg);
	EXPECT_EQ(self->size - pg, gmem_fdinfo(_metadata, self->fd, "gmem-held"));
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, self->size - pg, pg);
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, self->fd, "gmem-held"));
	expect_allocated(_metadata, self->fd, 0);
	expect_counters(_metadata, base, 0, 0);
	EXPECT_EQ(held0, gmem_read_u64(_metadata, GMEM_SYSFS "/held_bytes"));
}

/*
 * fallocate modes other than allocate (with KEEP_SIZE) and PUNCH_HOLE |
 * KEEP_SIZE.  6.12.y's vfs_fallocate() takes one mode at a time and
 * refuses with EOPNOTSUPP on its own: unknown bits, two modes at once,
 * PUNCH_HOLE without KEEP_SIZE, COLLAPSE/INSERT_RANGE with KEEP_SIZE.
 * The rest reaches gmem, which also says EOPNOTSUPP.
 */
TEST_F(file, fallocate_modes_eopnotsupp)
{
	const struct {
		const char *name;
		int mode;
	} cases[] = {
		/* Refused by gmem. */
		{ "allocate without KEEP_SIZE",	0 },
		{ "ZERO_RANGE",			FALLOC_FL_ZERO_RANGE },
		{ "ZERO_RANGE | KEEP_SIZE",	FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE },
		{ "COLLAPSE_RANGE",		FALLOC_FL_COLLAPSE_RANGE },
		{ "INSERT_RANGE",		FALLOC_FL_INSERT_RANGE },
		{ "UNSHARE_RANGE",		FALLOC_FL_UNSHARE_RANGE },
		{ "UNSHARE_RANGE | KEEP_SIZE",	FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE },
		/* Refused by the VFS. */
		{ "PUNCH_HOLE",			FALLOC_FL_PUNCH_HOLE },
		{ "COLLAPSE_RANGE | KEEP_SIZE",	FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE },
		{ "INSERT_RANGE | KEEP_SIZE",	FALLOC_FL_INSERT_RANGE | FALLOC_FL_KEEP_SIZE },
		{ "PUNCH_HOLE | ZERO_RANGE | KEEP_SIZE",
		  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE },
		{ "PUNCH_HOLE | UNSHARE_RANGE | KEEP_SIZE",
		  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE },
		{ "NO_HIDE_STALE | KEEP_SIZE",	FALLOC_FL_NO_HIDE_STALE | FALLOC_FL_KEEP_SIZE },
		{ "PUNCH_HOLE | NO_HIDE_STALE | KEEP_SIZE",
		  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_NO_HIDE_STALE | FALLOC_FL_KEEP_SIZE },
	};
	unsigned int i, bit;
	int r;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		errno = 0;
		r = fallocate(self->fd, cases[i].mode, 0, self->page);
		EXPECT_EQ(-1, r) TH_LOG("fallocate %s succeeded", cases[i].name);
		EXPECT_EQ(EOPNOTSUPP, errno)
			TH_LOG("fallocate %s (%#x): expected EOPNOTSUPP, got %s",
			       cases[i].name, cases[i].mode, strerror(errno));
	}
	/* Bits no kernel knows yet. */
	for (bit = 7; bit < 32; bit++) {
		int mode = (int)(1U << bit) | FALLOC_FL_KEEP_SIZE;

		errno = 0;
		r = fallocate(self->fd, mode, 0, self->page);
		EXPECT_EQ(-1, r) TH_LOG("fallocate mode %#x succeeded", mode);
		EXPECT_EQ(EOPNOTSUPP, errno)
			TH_LOG("fallocate mode %#x: expected EOPNOTSUPP, got %s",
			       mode, strerror(errno));
	}
	expect_allocated(_metadata, self->fd, 0);
}

TEST_F(file, fallocate_ranges)
{
	const long long pg = self->page, size = self->size;
	const long long top = LLONG_MAX & ~(pg - 1);	/* last aligned offset */
	const struct {
		const char *name;
		int mode;
		long long offset;
		long long len;
		int err;
	} cases[] = {
		/* gmem: page granularity. */
		{ "unaligned offset",	GMEM_ALLOCATE,	1,		pg,	EINVAL },
		{ "unaligned length",	GMEM_ALLOCATE,	0,		1,	EINVAL },
		{ "length page + 1",	GMEM_ALLOCATE,	0,		pg + 1,	EINVAL },
		{ "offset page - 1",	GMEM_ALLOCATE,	pg - 1,		pg,	EINVAL },
		{ "unaligned punch offset", GMEM_PUNCH,	pg / 2,		pg,	EINVAL },
		{ "unaligned punch length", GMEM_PUNCH,	0,		pg - 1,	EINVAL },
		/* gmem: no allocation past the size. */
		{ "allocate at the size", GMEM_ALLOCATE, size,		pg,	EINVAL },
		{ "allocate across the size", GMEM_ALLOCATE, size - pg,	2 * pg,	EINVAL },
		{ "allocate size + page", GMEM_ALLOCATE, 0,		size + pg, EINVAL },
		{ "allocate far past the size", GMEM_ALLOCATE, top - pg, pg,	EINVAL },
		/* VFS: negative or empty ranges. */
		{ "zero length",	GMEM_ALLOCATE,	0,		0,	EINVAL },
		{ "zero length punch",	GMEM_PUNCH,	0,		0,	EINVAL },
		{ "negative offset",	GMEM_ALLOCATE,	-pg,		pg,	EINVAL },
		{ "negative punch offset", GMEM_PUNCH,	-pg,		pg,	EINVAL },
		{ "negative length",	GMEM_ALLOCATE,	0,		-pg,	EINVAL },
		{ "negative punch length", GMEM_PUNCH,	0,		-pg,	EINVAL },
		/* VFS: offset + len beyond LLONG_MAX. */
		{ "end past LLONG_MAX",	GMEM_ALLOCATE,	pg,		top,	EFBIG },
		{ "punch end past LLONG_MAX", GMEM_PUNCH, pg,		top,	EFBIG },
		{ "both near LLONG_MAX", GMEM_ALLOCATE,	top,		top,	EFBIG },
		{ "punch both near LLONG_MAX", GMEM_PUNCH, top,		top,	EFBIG },
		/* gmem: punching past the size is fine (nothing there). */
		{ "punch at the size",	GMEM_PUNCH,	size,		pg,	0 },
		{ "punch across the size", GMEM_PUNCH,	size - pg,	size,	0 },
		{ "punch up to LLONG_MAX", GMEM_PUNCH,	0,		top,	0 },
		{ "punch last page below LLONG_MAX", GMEM_PUNCH, top - pg, pg,	0 },
	};
	unsigned int i;
	int r;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		errno = 0;
		r = fallocate(self->fd, cases[i].mode, cases[i].offset, cases[i].len);
		if (!cases[i].err) {
			EXPECT_EQ(0, r)
				TH_LOG("fallocate %s: expected success, got %s",
				       cases[i].name, strerror(errno));
		} else {
			EXPECT_EQ(-1, r)
				TH_LOG("fallocate %s succeeded", cases[i].name);
			EXPECT_EQ(cases[i].err, errno)
				TH_LOG("fallocate %s (%#x, %#llx, %#llx): expected %s, got %s",
				       cases[i].name, cases[i].mode,
				       cases[i].offset, cases[i].len,
				       strerror(cases[i].err), strerror(errno));
		}
		/* A refused allocation allocates nothing, not even in range. */
		expect_allocated(_metadata, self->fd, 0);
	}
}

TEST_F(file, punch_past_size)
{
	const long long pg = self->page, size = self->size;

	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, size);
	/* Only what is inside the file goes. */
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, size - pg, 4 * MiB);
	expect_allocated(_metadata, self->fd, size - pg);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, size, pg);
	expect_allocated(_metadata, self->fd, size - pg);
	gmem_fallocate(_metadata, self->fd, GMEM_PUNCH, 0, LLONG_MAX & ~(pg - 1));
	expect_allocated(_metadata, self->fd, 0);
}

/*
 * The inode can outlive the file: an O_PATH fd of /proc/self/fd/N holds
 * the dentry, not the file.  Once the gmem fd is closed its pages are
 * gone, and fstat on the O_PATH fd must say so, not look at freed state
 * (another file created meanwhile may reuse the memory).
 */
TEST_F(file, fstat_after_release)
{
	char path[64];
	struct stat st;
	int opath, fd2;

	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, self->page);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", self->fd);
	opath = open(path, O_PATH | O_CLOEXEC);
	ASSERT_LE(0, opath) TH_LOG("open %s O_PATH: %s", path, strerror(errno));
	ASSERT_EQ(0, fstat(opath, &st));
	EXPECT_EQ(self->page / 512, (unsigned long long)st.st_blocks);

	close(self->fd);
	self->fd = -1;
	fd2 = gmem_create(_metadata, self->devfd, self->size, 0);
	gmem_fallocate(_metadata, fd2, GMEM_ALLOCATE, 0, 3 * self->page);

	ASSERT_EQ(0, fstat(opath, &st));
	EXPECT_EQ(self->size, (unsigned long long)st.st_size);
	EXPECT_EQ(0, st.st_blocks)
		TH_LOG("st_blocks of a released gmem file: expected 0, got %lld",
		       (long long)st.st_blocks);
	close(fd2);
	close(opath);
}

/*
 * memcg: a fresh cgroup v2 group with memory.max = 32 MiB.  Teardown
 * moves the test process back to the root and removes the group.
 */
FIXTURE(memcg) {
	int devfd;
	char dir[64];
	char file[128];
};

#define MEMCG_MAX	(32 * MiB)
#define MEMCG_SLACK	(2 * MiB)	/* per-cpu charge stocks, slab */

#define memcg_path(self, name) ({					\
	snprintf((self)->file, sizeof((self)->file), "%s/%s", (self)->dir, (name)); \
	(self)->file;							\
})

#define memcg_current(_metadata, self)					\
	gmem_read_u64(_metadata, memcg_path(self, "memory.current"))

/* memory.current once it stops moving (see gmem_read_u64_settled()). */
#define memcg_current_settled(_metadata, self)				\
	gmem_read_u64_settled(_metadata, memcg_path(self, "memory.current"))

FIXTURE_SETUP(memcg)
{
	char controllers[256];
	int r;

	self->dir[0] = '\0';
	self->devfd = -1;
	self->devfd = gmem_open_dev(_metadata);

	r = __gmem_read_file(CGROUP_ROOT "/cgroup.controllers", controllers,
			     sizeof(controllers));
	ASSERT_EQ(0, r) TH_LOG("cgroup v2 is not mounted at " CGROUP_ROOT);
	ASSERT_NE(NULL, strstr(controllers, "memory"))
		TH_LOG("no memory controller in " CGROUP_ROOT "/cgroup.controllers");
	gmem_write_file(_metadata, CGROUP_ROOT "/cgroup.subtree_control", "+memory");

	snprintf(self->dir, sizeof(self->dir), CGROUP_ROOT "/gmem-test-%d", getpid());
	ASSERT_EQ(0, mkdir(self->dir, 0755))
		TH_LOG("mkdir %s: %s", self->dir, strerror(errno));
	gmem_write_file(_metadata, memcg_path(self, "memory.max"), "33554432");
	EXPECT_EQ(MEMCG_MAX, gmem_read_u64(_metadata, memcg_path(self, "memory.max")));
}

FIXTURE_TEARDOWN(memcg)
{
	char pid[16];

	if (self->devfd >= 0)
		close(self->devfd);
	if (!self->dir[0])
		return;
	snprintf(pid, sizeof(pid), "%d", getpid());
	__gmem_write_file(CGROUP_ROOT "/cgroup.procs", pid);
	EXPECT_EQ(0, rmdir(self->dir))
		TH_LOG("rmdir %s: %s", self->dir, strerror(errno));
}

/* Move the process @pid into the test's group. */
#define memcg_enter(_metadata, self, pid) do {				\
	char __pid[16];							\
	snprintf(__pid, sizeof(__pid), "%d", (int)(pid));		\
	gmem_write_file(_metadata, memcg_path(self, "cgroup.procs"), __pid); \
} while (0)

/*
 * The test process itself (a child of the harness) moves into the group:
 * an allocation beyond memory.max fails with ENOMEM and keeps what it
 * allocated before (as KVM's guest_memfd does), charged to the group;
 * a punch gives it back.
 */
TEST_F(memcg, limit)
{
	struct gmem_counters base;
	unsigned long long cur0, cur1, cur, kept;
	char pid[16];
	int fd, r;

	memcg_enter(_metadata, self, getpid());
	base = gmem_counters(_metadata);
	cur0 = memcg_current(_metadata, self);

	fd = gmem_create(_metadata, self->devfd, 128 * MiB, 0);
	/*
	 * The file is charged to its creator's group from now on.  Leave
	 * the group: a failed allocation fills it, and the test's own next
	 * page fault there would wake the OOM killer.
	 */
	snprintf(pid, sizeof(pid), "%d", getpid());
	gmem_write_file(_metadata, CGROUP_ROOT "/cgroup.procs", pid);
	errno = 0;
	r = fallocate(fd, GMEM_ALLOCATE, 0, 2 * MEMCG_MAX);
	EXPECT_EQ(-1, r) TH_LOG("allocated 64 MiB in a group limited to 32 MiB");
	EXPECT_EQ(ENOMEM, errno)
		TH_LOG("64 MiB in a 32 MiB group: expected ENOMEM, got %s",
		       strerror(errno));
	/* What the call allocated before the limit stays, and is charged. */
	kept = stat_allocated(_metadata, fd);
	EXPECT_LT(0ULL, kept) TH_LOG("a failed allocation kept nothing");
	EXPECT_GE(MEMCG_MAX, kept)
		TH_LOG("kept %llu KiB in a group limited to %llu KiB",
		       kept >> 10, (unsigned long long)MEMCG_MAX >> 10);
	expect_allocated(_metadata, fd, kept);
	expect_counters(_metadata, base, 1, kept);
	cur = memcg_current_settled(_metadata, self);
	EXPECT_LE(cur0 + kept - MEMCG_SLACK, cur)
		TH_LOG("memory.current %llu KiB before, %llu KiB after keeping %llu KiB",
		       cur0 >> 10, cur >> 10, kept >> 10);
	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, 2 * MEMCG_MAX);
	expect_allocated(_metadata, fd, 0);
	expect_counters(_metadata, base, 1, 0);
	cur1 = memcg_current_settled(_metadata, self);
	EXPECT_GE(cur0 + MEMCG_SLACK, cur1)
		TH_LOG("memory.current %llu KiB before, %llu KiB after punching what a failed allocation kept",
		       cur0 >> 10, cur1 >> 10);

	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, 16 * MiB);
	expect_allocated(_metadata, fd, 16 * MiB);
	cur = memcg_current(_metadata, self);
	EXPECT_LE(cur1 + 16 * MiB, cur)
		TH_LOG("memory.current %llu KiB before, %llu KiB after allocating 16 MiB",
		       cur1 >> 10, cur >> 10);

	close(fd);
	cur = memcg_current_settled(_metadata, self);
	EXPECT_GE(cur0 + MEMCG_SLACK, cur)
		TH_LOG("memory.current %llu KiB before, %llu KiB after close",
		       cur0 >> 10, cur >> 10);
	expect_counters(_metadata, base, 0, 0);
}

/*
 * Held pages: punching part of a populated block keeps the punched pages
 * (zeroed, gmem-held) charged to the file's group.  An allocation that
 * hits the group's limit frees them and goes on, rather than failing
 * with ENOMEM while the file holds memory it does not use.
 */
TEST_F(memcg, held_pages_charged_and_given_back)
{
	unsigned long long cur0, cur, pg = page_size(), nblocks = 14, b;
	char pid[16];
	int fd;

	memcg_enter(_metadata, self, getpid());
	cur0 = memcg_current(_metadata, self);
	fd = gmem_create(_metadata, self->devfd, 64 * MiB, 0);
	snprintf(pid, sizeof(pid), "%d", getpid());
	gmem_write_file(_metadata, CGROUP_ROOT "/cgroup.procs", pid);

	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, nblocks * 2 * MiB);
	for (b = 0; b < nblocks; b++)
		gmem_fallocate(_metadata, fd, GMEM_PUNCH, b * 2 * MiB + pg,
			       2 * MiB - pg);
	expect_allocated(_metadata, fd, nblocks * pg);
	EXPECT_EQ(nblocks * (2 * MiB - pg), gmem_fdinfo(_metadata, fd, "gmem-held"));
	cur = memcg_current_settled(_metadata, self);
	EXPECT_LE(cur0 + nblocks * 2 * MiB - MEMCG_SLACK, cur)
		TH_LOG("memory.current %llu KiB before, %llu KiB with %llu blocks held",
		       cur0 >> 10, cur >> 10, nblocks);

	/* 16 MiB more do not fit next to 28 MiB held in 32 MiB. */
	EXPECT_EQ(0, fallocate(fd, GMEM_ALLOCATE, 32 * MiB, 16 * MiB))
		TH_LOG("allocating 16 MiB with the group full of held pages: %s",
		       strerror(errno));
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, fd, "gmem-held"));
	expect_allocated(_metadata, fd, nblocks * pg + 16 * MiB);

	close(fd);
	cur = memcg_current_settled(_metadata, self);
	EXPECT_GE(cur0 + MEMCG_SLACK, cur)
		TH_LOG("memory.current %llu KiB before, %llu KiB after close",
		       cur0 >> 10, cur >> 10);
}

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

/*
 * A child in the group creates the file and hands it over a UNIX socket
 * to the test process, which stays outside the group: its allocations
 * are still charged to, and limited by, the creator's group.
 */
TEST_F(memcg, charged_to_creator)
{
	unsigned long long cur0, cur1, cur;
	char own[256];
	int sv[2], go[2], status, fd, r;
	pid_t child;

	r = __gmem_read_file("/proc/self/cgroup", own, sizeof(own));
	ASSERT_EQ(0, r);
	ASSERT_EQ(0, strcmp(own, "0::/\n")) TH_LOG("test runs in cgroup %s", own);

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, pipe2(go, O_CLOEXEC));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		char c;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		fd = __gmem_create(self->devfd, 128 * MiB, 0);
		if (fd < 0) {
			fprintf(stderr, "# child: GMEM_CREATE: %s\n", strerror(errno));
			_exit(2);
		}
		_exit(send_fd(sv[1], fd) ? 3 : 0);
	}
	close(go[0]);
	close(sv[1]);
	memcg_enter(_metadata, self, child);
	ASSERT_EQ(1, write(go[1], "g", 1));
	close(go[1]);
	fd = recv_fd(sv[0]);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("creator child ended with status %#x", status);
	ASSERT_LE(0, fd) TH_LOG("no gmem fd from the creator child");
	close(sv[0]);

	cur0 = memcg_current(_metadata, self);
	errno = 0;
	r = fallocate(fd, GMEM_ALLOCATE, 0, 2 * MEMCG_MAX);
	EXPECT_EQ(-1, r)
		TH_LOG("allocated 64 MiB of a file created in a 32 MiB group");
	EXPECT_EQ(ENOMEM, errno)
		TH_LOG("64 MiB of a file created in a 32 MiB group: expected ENOMEM, got %s",
		       strerror(errno));
	EXPECT_LT(0ULL, stat_allocated(_metadata, fd))
		TH_LOG("a failed allocation kept nothing");
	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, 2 * MEMCG_MAX);
	expect_allocated(_metadata, fd, 0);
	cur1 = memcg_current_settled(_metadata, self);
	EXPECT_GE(cur0 + MEMCG_SLACK, cur1)
		TH_LOG("memory.current %llu KiB before, %llu KiB after a failed allocation",
		       cur0 >> 10, cur1 >> 10);

	/*
	 * The group's other memory may shrink meanwhile (a freed page
	 * table, slab): 16 MiB less the slack still says gmem charged it.
	 */
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, 16 * MiB);
	cur = memcg_current(_metadata, self);
	EXPECT_LE(cur1 + 16 * MiB - MEMCG_SLACK, cur)
		TH_LOG("creator's memory.current %llu KiB before, %llu KiB after allocating 16 MiB",
		       cur1 >> 10, cur >> 10);

	close(fd);
	cur = memcg_current_settled(_metadata, self);
	EXPECT_GE(cur0 + MEMCG_SLACK, cur)
		TH_LOG("memory.current %llu KiB before, %llu KiB after close",
		       cur0 >> 10, cur >> 10);
}

/*
 * perm: who may create files is /dev/gmem's mode, nothing else.
 * Teardown restores the mode.
 */
FIXTURE(perm) {
	int devfd;
	mode_t mode;
};

FIXTURE_SETUP(perm)
{
	struct stat st;

	self->mode = 0;
	self->devfd = -1;
	self->devfd = gmem_open_dev(_metadata);
	ASSERT_EQ(0, stat(GMEM_DEV, &st));
	self->mode = st.st_mode & 07777;
	ASSERT_EQ(0U, st.st_uid);
	/* Whatever a udev rule made of it: start from the kernel's 0600. */
	ASSERT_EQ(0, chmod(GMEM_DEV, 0600));
}

FIXTURE_TEARDOWN(perm)
{
	if (self->mode)
		EXPECT_EQ(0, chmod(GMEM_DEV, self->mode))
			TH_LOG("restore the mode of " GMEM_DEV ": %s", strerror(errno));
	if (self->devfd >= 0)
		close(self->devfd);
}

#define NOBODY 65534

/*
 * In a child running as nobody: open /dev/gmem, create a file, allocate
 * a page.  Returns the child's exit status: 0, or the errno of the first
 * step that failed.
 */
static int unprivileged_create(void)
{
	pid_t child = fork();
	int status, fd, devfd;

	if (child < 0)
		return -1;
	if (!child) {
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			_exit(255);
		devfd = open(GMEM_DEV, O_RDWR);
		if (devfd < 0)
			_exit(errno);
		fd = __gmem_create(devfd, 2 * MiB, 0);
		if (fd < 0) {
			fprintf(stderr, "# nobody: GMEM_CREATE: %s\n", strerror(errno));
			_exit(errno);
		}
		if (fallocate(fd, GMEM_ALLOCATE, 0, 2 * MiB)) {
			fprintf(stderr, "# nobody: fallocate: %s\n", strerror(errno));
			_exit(errno);
		}
		_exit(0);
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST_F(perm, unprivileged)
{
	int r;

	r = unprivileged_create();
	EXPECT_EQ(EACCES, r)
		TH_LOG("nobody, " GMEM_DEV " mode 0600: expected EACCES, got %d (%s)",
		       r, r > 0 ? strerror(r) : "success");

	ASSERT_EQ(0, chmod(GMEM_DEV, 0666));
	r = unprivileged_create();
	EXPECT_EQ(0, r)
		TH_LOG("nobody, " GMEM_DEV " mode 0666: expected success, got %d (%s)",
		       r, r > 0 ? strerror(r) : "?");
}

TEST_HARNESS_MAIN
