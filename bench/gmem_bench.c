// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem-bench: gmem against KVM's own guest_memfd, side by side in one
 * boot, alternating runs.
 *
 * Rows (each the median of -r alternating runs, with min and max):
 *   populate        fallocate() of the whole file, GiB/s
 *   punch           punch-hole of the whole (allocated) file, GiB/s
 *   first touch     a guest writes one word to every page of its private
 *                   memory, holes allocated on fault; pages/s, exits included
 *   touch exits     the vCPU's exits during first touch, per GiB (lower is
 *                   better)
 *   populate+touch  populate, then first touch; GiB/s over both
 *   conversion      private->shared->private round trips of 4 KiB pages as
 *                   a VMM does them (KVM_SET_MEMORY_ATTRIBUTES + punch-hole,
 *                   fallocate back), every page of a populated 16 MiB file
 *                   once; round trips/s
 *   overhead        kernel memory beyond the pages per GiB allocated
 *                   (slab bytes charged to the benchmark's own memory
 *                   cgroup by the populate: xarray nodes and the like),
 *                   KiB/GiB (lower is better)
 *   pop+touch 1G    populate+touch of a file populated with max_1g set, on
 *                   a memslot aligned for 1G mappings (gmem only)
 *   1G mappings     KVM's pages_1g after that touch, per GiB (gmem only)
 *   populate 1 thr  populate with populate_threads=1: the calling thread
 *                   alone zeroes (gmem only; populate uses all CPUs)
 *   GMEM_WRITE      a restore: GMEM_WRITE of a whole new gmem file from a
 *                   faulted user buffer, 2 MiB per call, GiB/s (gmem only)
 *   memset          userspace memset of the same size (already faulted):
 *                   the zeroing bandwidth the machine allows, GiB/s
 *   memcpy          userspace memcpy of the same size between two faulted
 *                   buffers: the copying bandwidth, GiB/s
 *
 * Ratio = gmem / guest_memfd: above 1 gmem is faster, except for overhead
 * and touch exits, where below 1 gmem uses less.
 *
 * The "nodm" rows hold a gmem file created with GMEM_CREATE_NO_DIRECT_MAP
 * against the same gmem file without it, alternating too, in runs of their
 * own after all the rows above (so that those run as they always did);
 * they print in a table of their own, ratio = with / without:
 *   populate nodm   populate, as above
 *   punch nodm      punch, as above
 *   pop 1 thr nodm  populate 1 thr, as above
 *   pop+touch nodm  populate+touch, as above
 *   touch 4K nodm   first touch of a file made with blocks=never: every
 *                   guest fault allocates (and, with the flag, unmaps and
 *                   flushes) one 4 KiB page; pages/s, sizes up to
 *                   NODM_4K_MAX only, last of all (unmapping single pages
 *                   splits the direct map's 2 MiB entries for good)
 *
 * The "mpol" rows hold a gmem file whose whole range has a memory policy
 * (GMEM_SET_MEMPOLICY, MPOL_BIND to every node with memory: the pages go
 * where they would go anyway) against the same file without one, in a
 * table of their own, ratio = with / without: what looking the policy
 * up costs each allocation.
 *   populate mpol   populate, as above
 *   touch 4K mpol   touch 4K, as above without the flag: one policy
 *                   lookup per guest fault
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/mempolicy.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include <gmem.h>
#include "gmem_kvm_stats.h"

#define MAX_RUNS	15
#define MAX_SIZES	8
#define DATA_GPA	(1ULL << 32)
#define DATA_SLOT	10
#define CONV_PAGES	4096	/* 16 MiB: 8 populated 2 MiB blocks */
#define THREADS_PARAM	"/sys/module/gmem/parameters/populate_threads"
#define MAX_1G_PARAM	"/sys/module/gmem/parameters/max_1g"
#define BLOCKS_PARAM	"/sys/module/gmem/parameters/blocks"
#define NODM_4K_MAX	(64ULL << 20)	/* touch 4K nodm: 16384 faults at most */

/*
 * GMEM_NODM: a gmem file created with GMEM_CREATE_NO_DIRECT_MAP; GMEM_MPOL:
 * one with a memory policy over all of it.
 */
enum backend { GMEM, GUEST_MEMFD, GMEM_NODM, GMEM_MPOL, NR_BACKENDS };

static const struct vm_shape protected_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double gib(uint64_t bytes)
{
	return bytes / (double)SZ_1G;
}

/* The gmem-flags of gmem file @fd, from its fdinfo. */
static uint64_t gmem_flags(int fd)
{
	char path[64], line[256];
	uint64_t flags = ~0ULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "gmem-flags:", 11))
			flags = strtoull(line + 11, NULL, 16);
	fclose(f);
	TEST_ASSERT(flags != ~0ULL, "%s: no gmem-flags", path);
	return flags;
}

/* MPOL_BIND over all of @fd to every node with memory. */
static void set_bind_all(int fd, uint64_t size)
{
	char line[256], *p = line, *end;
	uint64_t mask[16] = { 0 };
	unsigned long a, b;
	FILE *f = fopen("/sys/devices/system/node/has_memory", "r");
	struct gmem_mempolicy pol = {
		.size = size, .mode = MPOL_BIND,
		.nodemask = (uintptr_t)mask, .maxnode = 64 * 16,
	};

	TEST_ASSERT(f && fgets(line, sizeof(line), f),
		    "read /sys/devices/system/node/has_memory: %s", strerror(errno));
	fclose(f);
	/* A node list: "0", "0-1", "0,2-3". */
	for (; *p && *p != '\n'; p = *end == ',' ? end + 1 : end) {
		a = strtoul(p, &end, 10);
		if (end == p)
			break;
		b = a;
		if (*end == '-')
			b = strtoul(end + 1, &end, 10);
		for (; a <= b && a < 64 * 16; a++)
			mask[a / 64] |= 1ULL << (a % 64);
	}
	TEST_ASSERT(!ioctl(fd, GMEM_SET_MEMPOLICY, &pol),
		    "GMEM_SET_MEMPOLICY MPOL_BIND to %s: %s", line, strerror(errno));
}

/* A new private memory file of @size from @b; @vm owns guest_memfds. */
static int new_file(enum backend b, struct kvm_vm *vm, uint64_t size)
{
	struct gmem_create args = { .size = size };
	int dev, fd;

	if (b == GUEST_MEMFD)
		return vm_create_guest_memfd(vm, size, 0);
	if (b == GMEM_NODM)
		args.flags = GMEM_CREATE_NO_DIRECT_MAP;
	dev = open("/dev/gmem", O_RDWR | O_CLOEXEC);
	TEST_ASSERT(dev >= 0, "open /dev/gmem: %s", strerror(errno));
	fd = ioctl(dev, GMEM_CREATE, &args);
	TEST_ASSERT(fd >= 0, "GMEM_CREATE: %s", strerror(errno));
	close(dev);
	/* The nodm rows compare with and without: no_direct_map=Y breaks that. */
	TEST_ASSERT(!!(gmem_flags(fd) & GMEM_CREATE_NO_DIRECT_MAP) == (b == GMEM_NODM),
		    "gmem file %s GMEM_CREATE_NO_DIRECT_MAP (module parameter no_direct_map?)",
		    b == GMEM_NODM ? "without" : "with");
	if (b == GMEM_MPOL)
		set_bind_all(fd, size);
	return fd;
}

static void falloc(int fd, int mode, uint64_t off, uint64_t len)
{
	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE | mode, off, len),
		    "fallocate(mode %#x, %#lx, %#lx): %s", mode, off, len,
		    strerror(errno));
}

/*
 * The benchmark runs in a memory cgroup of its own, so that the slab
 * objects a populate allocates (counted in bytes, object by object, in
 * memory.stat) can be told from everything else on the machine.
 */
#define BENCH_CGROUP	"/sys/fs/cgroup/gmem-bench"

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	TEST_ASSERT(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text),
		    "write '%s' to %s: %s", text, path, strerror(errno));
	close(fd);
}

/* The first line of @path, without its newline, into @buf of @len bytes. */
static void read_line(const char *path, char *buf, int len)
{
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f && fgets(buf, len, f), "read %s: %s", path, strerror(errno));
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static void enter_cgroup(void)
{
	char pid[32];

	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	TEST_ASSERT(!mkdir(BENCH_CGROUP, 0755) || errno == EEXIST,
		    "mkdir " BENCH_CGROUP ": %s", strerror(errno));
	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(BENCH_CGROUP "/cgroup.procs", pid);
}

static long __cgroup_slab_bytes(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen(BENCH_CGROUP "/memory.stat", "r");

	TEST_ASSERT(f, BENCH_CGROUP "/memory.stat: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "slab ", 5))
			v = strtol(line + 5, NULL, 10);
	fclose(f);
	return v;
}

/*
 * The cgroup's slab bytes once they stop moving: freed xarray nodes go
 * back after an RCU grace period, so a previous run's punch may still be
 * settling.
 */
static long cgroup_slab_bytes(void)
{
	long v = __cgroup_slab_bytes(), prev;
	int i;

	for (i = 0; i < 50; i++) {
		usleep(20000);
		prev = v;
		v = __cgroup_slab_bytes();
		if (v == prev)
			break;
	}
	return v;
}

/* populate and punch of one file; returns seconds for each. */
static void run_populate_punch(enum backend b, uint64_t size, double *pop,
			       double *punch, double *overhead)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	int fd = new_file(b, vm, size);
	long slab0 = cgroup_slab_bytes();
	double t;

	t = now();
	falloc(fd, 0, 0, size);
	*pop = now() - t;
	*overhead = (cgroup_slab_bytes() - slab0) / 1024.0 / gib(size);
	t = now();
	falloc(fd, FALLOC_FL_PUNCH_HOLE, 0, size);
	*punch = now() - t;
	close(fd);
	kvm_vm_free(vm);
}

static void guest_touch(uint64_t base, uint64_t size)
{
	uint64_t off;

	for (off = 0; off < size; off += PAGE_SIZE)
		*(volatile uint64_t *)(base + off) = off;
	GUEST_DONE();
}

/*
 * A guest touches every page of @size bytes of private memory backed by a
 * new file of @b, populated first if @populate.  Returns the seconds the
 * populate and the touch took, and the vCPU's exits during the touch.
 * If @giant, on a memslot whose userspace address is 1 GiB aligned (KVM
 * maps 1G only then) with max_1g raised for the file's populate;
 * *@maps_1g gets KVM's pages_1g after the touch.
 */
static void run_touch_1g(enum backend b, uint64_t size, bool populate,
			 bool giant, double *pop, double *touch, uint64_t *exits,
			 uint64_t *maps_1g)
{
	uint64_t npages = size / PAGE_SIZE;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	char *hva = NULL, n[32];
	double t;
	int fd;

	/* Guest page tables use 2M pages: room for them in slot 0. */
	vm = __vm_create_shape_with_one_vcpu(protected_shape, &vcpu,
					     size / SZ_2M + 64, guest_touch);
	fd = new_file(b, vm, size);
	if (giant) {
		hva = mmap(NULL, size + SZ_1G, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		TEST_ASSERT(hva != MAP_FAILED, "mmap: %s", strerror(errno));
		vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD,
					   DATA_GPA, size, align_ptr_up(hva, SZ_1G),
					   fd, 0);
		snprintf(n, sizeof(n), "%lu", size / SZ_1G);
		write_file(MAX_1G_PARAM, n);
	} else {
		vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA, DATA_SLOT, npages,
			   KVM_MEM_GUEST_MEMFD, fd, 0);
	}
	virt_map_level(vm, DATA_GPA, DATA_GPA, size, PG_LEVEL_2M);
	vm_mem_set_private(vm, DATA_GPA, size);
	vcpu_args_set(vcpu, 2, DATA_GPA, size);

	*pop = 0;
	if (populate) {
		t = now();
		falloc(fd, 0, 0, size);
		*pop = now() - t;
	}
	*exits = gmem_vcpu_stat(vcpu, "exits");
	t = now();
	vcpu_run(vcpu);
	*touch = now() - t;
	*exits = gmem_vcpu_stat(vcpu, "exits") - *exits;
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_DONE,
		    "guest did not finish: exit %u, ucall %lu",
		    vcpu->run->exit_reason, uc.cmd);
	if (maps_1g)
		*maps_1g = vm_get_stat(vm, "pages_1g");
	kvm_vm_free(vm);
	close(fd);
	if (giant) {
		write_file(MAX_1G_PARAM, "0");
		munmap(hva, size + SZ_1G);
	}
}

/* run_touch_1g() without 1 GiB ranges. */
static void run_touch(enum backend b, uint64_t size, bool populate,
		      double *pop, double *touch, uint64_t *exits)
{
	run_touch_1g(b, size, populate, false, pop, touch, exits, NULL);
}

/* CONV_PAGES round trips private->shared->private; returns seconds. */
static double run_conversion(enum backend b)
{
	uint64_t size = CONV_PAGES * PAGE_SIZE, gpa;
	struct kvm_vm *vm;
	double t;
	int fd;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = new_file(b, vm, size);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA, DATA_SLOT, CONV_PAGES,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	vm_mem_set_private(vm, DATA_GPA, size);
	falloc(fd, 0, 0, size);

	t = now();
	for (gpa = DATA_GPA; gpa < DATA_GPA + size; gpa += PAGE_SIZE) {
		vm_mem_set_shared(vm, gpa, PAGE_SIZE);
		falloc(fd, FALLOC_FL_PUNCH_HOLE, gpa - DATA_GPA, PAGE_SIZE);
		vm_mem_set_private(vm, gpa, PAGE_SIZE);
		falloc(fd, 0, gpa - DATA_GPA, PAGE_SIZE);
	}
	t = now() - t;
	kvm_vm_free(vm);
	close(fd);
	return t;
}

/*
 * A restore: GMEM_WRITE of a whole new gmem file from an already-faulted
 * user buffer, 2 MiB per call.  Returns seconds.
 */
static double run_write(uint64_t size)
{
	struct gmem_write w = { .size = SZ_2M };
	char *buf;
	double t;
	int fd;

	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	TEST_ASSERT(buf != MAP_FAILED, "mmap: %s", strerror(errno));
	fd = new_file(GMEM, NULL, size);
	t = now();
	for (w.offset = 0; w.offset < size; w.offset += SZ_2M) {
		w.user_addr = (uintptr_t)buf + w.offset;
		TEST_ASSERT(!ioctl(fd, GMEM_WRITE, &w), "GMEM_WRITE at %#llx: %s",
			    (unsigned long long)w.offset, strerror(errno));
	}
	t = now() - t;
	close(fd);
	munmap(buf, size);
	return t;
}

/*
 * glibc's memset() over @size bytes, or memcpy() if @copy, timed by
 * gmem-bench-memset.
 */
static double run_memset(uint64_t size, bool copy)
{
	char cmd[PATH_MAX + 64], self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	double t = 0;
	FILE *p;

	TEST_ASSERT(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = 0;
	snprintf(cmd, sizeof(cmd), "%s-memset %lu%s", self, size, copy ? " copy" : "");
	p = popen(cmd, "r");
	TEST_ASSERT(p && fscanf(p, "%lf", &t) == 1 && !pclose(p) && t > 0,
		    "%s failed", cmd);
	return t;
}

enum row {
	POPULATE, PUNCH, TOUCH, TOUCH_EXITS, POP_TOUCH, CONVERSION, OVERHEAD,
	POP_TOUCH_1G, MAPS_1G, POPULATE_1T, WRITE, MEMSET, MEMCPY,
	POPULATE_NODM, PUNCH_NODM, POPULATE_1T_NODM, POP_TOUCH_NODM,
	TOUCH_4K_NODM, POPULATE_MPOL, TOUCH_4K_MPOL, NR_ROWS
};

/*
 * .nodm: GMEM_NODM against GMEM, .mpol: GMEM_MPOL against GMEM, not GMEM
 * against GUEST_MEMFD.
 */
static const struct {
	const char *name, *unit;
	bool gmem_only, touch, giant, nodm, mpol;
} rows[] = {
	[POPULATE]	= { "populate", "GiB/s" },
	[PUNCH]		= { "punch", "GiB/s" },
	[TOUCH]		= { "first touch", "pages/s", .touch = true },
	[TOUCH_EXITS]	= { "touch exits", "exits/GiB", .touch = true },
	[POP_TOUCH]	= { "populate+touch", "GiB/s", .touch = true },
	[CONVERSION]	= { "conversion 4K", "trips/s" },
	[OVERHEAD]	= { "overhead", "KiB/GiB" },
	[POP_TOUCH_1G]	= { "pop+touch 1G", "GiB/s", .gmem_only = true, .touch = true,
			    .giant = true },
	[MAPS_1G]	= { "1G mappings", "per GiB", .gmem_only = true, .touch = true,
			    .giant = true },
	[POPULATE_1T]	= { "populate 1 thr", "GiB/s", .gmem_only = true },
	[WRITE]		= { "GMEM_WRITE", "GiB/s", .gmem_only = true },
	[MEMSET]	= { "memset (ref)", "GiB/s", .gmem_only = true },
	[MEMCPY]	= { "memcpy (ref)", "GiB/s", .gmem_only = true },
	[POPULATE_NODM]	= { "populate nodm", "GiB/s", .nodm = true },
	[PUNCH_NODM]	= { "punch nodm", "GiB/s", .nodm = true },
	[POPULATE_1T_NODM] = { "pop 1 thr nodm", "GiB/s", .nodm = true },
	[POP_TOUCH_NODM] = { "pop+touch nodm", "GiB/s", .nodm = true, .touch = true },
	[TOUCH_4K_NODM]	= { "touch 4K nodm", "pages/s", .nodm = true, .touch = true },
	[POPULATE_MPOL]	= { "populate mpol", "GiB/s", .mpol = true },
	[TOUCH_4K_MPOL]	= { "touch 4K mpol", "pages/s", .mpol = true, .touch = true },
};

static double results[NR_ROWS][NR_BACKENDS][MAX_RUNS];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void stats(double *v, int n, double *med, double *min, double *max)
{
	double s[MAX_RUNS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	*min = s[0];
	*max = s[n - 1];
	*med = n & 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/*
 * Every nodm row but touch 4K nodm: a gmem file made with
 * GMEM_CREATE_NO_DIRECT_MAP and the same without, alternating which goes
 * first.
 */
static void run_nodm(uint64_t size, int runs, bool touch)
{
	double pop, punch, ovh, t;
	uint64_t exits;
	int r, i;

	for (r = 0; r < runs; r++) {
		for (i = 0; i < 2; i++) {
			enum backend b = (i + r) % 2 ? GMEM_NODM : GMEM;

			run_populate_punch(b, size, &pop, &punch, &ovh);
			results[POPULATE_NODM][b][r] = gib(size) / pop;
			results[PUNCH_NODM][b][r] = gib(size) / punch;
			write_file(THREADS_PARAM, "1");
			run_populate_punch(b, size, &pop, &punch, &ovh);
			write_file(THREADS_PARAM, "0");
			results[POPULATE_1T_NODM][b][r] = gib(size) / pop;
			if (!touch)
				continue;
			run_touch(b, size, true, &pop, &t, &exits);
			results[POP_TOUCH_NODM][b][r] = gib(size) / (pop + t);
		}
	}
}

/*
 * touch 4K nodm and touch 4K mpol: first touch of files made with
 * blocks=never, which fault in 4 KiB pages; @with (GMEM_NODM or
 * GMEM_MPOL) and plain gmem, alternating.
 */
static void run_4k(enum backend with, int row, uint64_t size, int runs)
{
	double pop, t;
	uint64_t exits;
	char blocks[32];
	int r, i;

	read_line(BLOCKS_PARAM, blocks, sizeof(blocks));
	for (r = 0; r < runs; r++) {
		for (i = 0; i < 2; i++) {
			enum backend b = (i + r) % 2 ? with : GMEM;

			write_file(BLOCKS_PARAM, "never");
			run_touch(b, size, false, &pop, &t, &exits);
			write_file(BLOCKS_PARAM, blocks);
			results[row][b][r] = size / PAGE_SIZE / t;
		}
	}
}

/* populate mpol: the same file with and without a policy, alternating. */
static void run_mpol(uint64_t size, int runs)
{
	double pop, punch, ovh;
	int r, i;

	for (r = 0; r < runs; r++) {
		for (i = 0; i < 2; i++) {
			enum backend b = (i + r) % 2 ? GMEM_MPOL : GMEM;

			run_populate_punch(b, size, &pop, &punch, &ovh);
			results[POPULATE_MPOL][b][r] = gib(size) / pop;
		}
	}
}

static void run_size(uint64_t size, int runs, bool touch)
{
	double pop, punch, ovh, t;
	uint64_t exits, maps;
	int r, i;

	for (r = 0; r < runs; r++) {
		for (i = 0; i < 2; i++) {
			/* Alternate which side goes first. */
			enum backend b = (i + r) % 2;

			run_populate_punch(b, size, &pop, &punch, &ovh);
			results[POPULATE][b][r] = gib(size) / pop;
			results[PUNCH][b][r] = gib(size) / punch;
			results[OVERHEAD][b][r] = ovh;
			if (touch) {
				run_touch(b, size, false, &pop, &t, &exits);
				results[TOUCH][b][r] = size / PAGE_SIZE / t;
				results[TOUCH_EXITS][b][r] = exits / gib(size);
				run_touch(b, size, true, &pop, &t, &exits);
				results[POP_TOUCH][b][r] = gib(size) / (pop + t);
			}
			results[CONVERSION][b][r] = CONV_PAGES / run_conversion(b);
		}
		if (touch && !(size % SZ_1G)) {
			run_touch_1g(GMEM, size, true, true, &pop, &t, &exits, &maps);
			results[POP_TOUCH_1G][GMEM][r] = gib(size) / (pop + t);
			results[MAPS_1G][GMEM][r] = maps / gib(size);
		}
		write_file(THREADS_PARAM, "1");
		run_populate_punch(GMEM, size, &pop, &punch, &ovh);
		write_file(THREADS_PARAM, "0");
		results[POPULATE_1T][GMEM][r] = gib(size) / pop;
		results[WRITE][GMEM][r] = gib(size) / run_write(size);
		results[MEMSET][GMEM][r] = gib(size) / run_memset(size, false);
		results[MEMCPY][GMEM][r] = gib(size) / run_memset(size, true);
	}
}

/* Print @row of @size to stdout and @csv. */
static void report_row(FILE *csv, int row, uint64_t size, int runs)
{
	double med[NR_BACKENDS], min[NR_BACKENDS], max[NR_BACKENDS];
	enum backend x, y;
	int b;

	for (b = 0; b < NR_BACKENDS; b++)
		stats(results[row][b], runs, &med[b], &min[b], &max[b]);
	if (rows[row].gmem_only) {
		printf("%6lu MiB  %-15s %-8s %12.2f [%.2f-%.2f]\n",
		       size >> 20, rows[row].name, rows[row].unit,
		       med[GMEM], min[GMEM], max[GMEM]);
		fprintf(csv, "%lu,%s,%s,%.4f,%.4f,%.4f,,,,,\n", size >> 20,
			rows[row].name, rows[row].unit, med[GMEM],
			min[GMEM], max[GMEM]);
		return;
	}
	/* The side measured, and the one it is held against. */
	x = rows[row].nodm ? GMEM_NODM : rows[row].mpol ? GMEM_MPOL : GMEM;
	y = rows[row].nodm || rows[row].mpol ? GMEM : GUEST_MEMFD;
	printf("%6lu MiB  %-15s %-8s %12.2f [%.2f-%.2f]  %12.2f [%.2f-%.2f]  %6.3gx\n",
	       size >> 20, rows[row].name, rows[row].unit,
	       med[x], min[x], max[x], med[y], min[y], max[y], med[x] / med[y]);
	fprintf(csv, "%lu,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%s\n",
		size >> 20, rows[row].name, rows[row].unit, med[x], min[x],
		max[x], med[y], min[y], max[y], med[x] / med[y],
		rows[row].nodm || rows[row].mpol ? "gmem" : "guest_memfd");
}

/* Print the rows of @size that run_size() measured. */
static void report(FILE *csv, uint64_t size, int runs, bool touch)
{
	int row;

	for (row = 0; row < NR_ROWS; row++) {
		if (rows[row].nodm || rows[row].mpol || (!touch && rows[row].touch))
			continue;
		if (rows[row].giant && size % SZ_1G)
			continue;
		report_row(csv, row, size, runs);
	}
}

static const char help[] =
	"  -s  sizes to measure (default 64,256,1024,2048)\n"
	"  -t  largest size with guest touch rows (default 1024)\n"
	"  -r  alternating runs per row, median reported (default 3)\n"
	"  -o  write the CSV there too (it is always printed at the end)\n";

static void print_usage(const char *prog)
{
	fprintf(stderr, "%s [-s MiB[,MiB...]] [-t MiB] [-r runs] [-o file.csv]\n%s",
		prog, help);
	exit(2);
}

int main(int argc, char *argv[])
{
	uint64_t sizes[MAX_SIZES] = { 64, 256, 1024, 2048 }, touch_max = 1024;
	int nsizes = 4, runs = 3, opt, i, row;
	const char *out = NULL;
	char *tok, *save;
	FILE *csv;

	while ((opt = getopt(argc, argv, "s:t:r:o:h")) != -1) {
		switch (opt) {
		case 's':
			nsizes = 0;
			for (tok = strtok_r(optarg, ",", &save); tok && nsizes < MAX_SIZES;
			     tok = strtok_r(NULL, ",", &save))
				sizes[nsizes++] = strtoull(tok, NULL, 0);
			break;
		case 't':
			touch_max = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			runs = atoi(optarg);
			if (runs < 1 || runs > MAX_RUNS)
				print_usage(argv[0]);
			break;
		case 'o':
			out = optarg;
			break;
		default:
			print_usage(argv[0]);
		}
	}
	if (access("/dev/gmem", F_OK) || access("/dev/kvm", F_OK)) {
		fprintf(stderr, "gmem-bench: needs /dev/gmem and /dev/kvm\n");
		return 4;
	}
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM));
	enter_cgroup();

	csv = tmpfile();
	TEST_ASSERT(csv, "tmpfile: %s", strerror(errno));
	fputs("size_mib,row,unit,", csv);
	fputs("gmem_median,gmem_min,gmem_max,", csv);
	fputs("guest_memfd_median,guest_memfd_min,guest_memfd_max,ratio,", csv);
	fputs("baseline\n", csv);
	printf("gmem-bench: %d alternating runs per row, median [min-max]; "
	       "ratio = gmem / guest_memfd\n", runs);
	printf("%10s  %-15s %-8s %28s  %28s  %7s\n", "size", "row", "unit",
	       "gmem", "guest_memfd", "ratio");
	for (i = 0; i < nsizes; i++) {
		bool touch = sizes[i] <= touch_max;

		run_size(sizes[i] << 20, runs, touch);
		report(csv, sizes[i] << 20, runs, touch);
		fflush(stdout);
	}

	printf("gmem-bench: GMEM_CREATE_NO_DIRECT_MAP, %d alternating runs per row; "
	       "ratio = with the flag / the same gmem file without\n", runs);
	printf("%10s  %-15s %-8s %28s  %28s  %7s\n", "size", "row", "unit",
	       "no direct map", "gmem", "ratio");
	for (i = 0; i < nsizes; i++) {
		bool touch = sizes[i] <= touch_max;

		run_nodm(sizes[i] << 20, runs, touch);
		for (row = 0; row < NR_ROWS; row++)
			if (rows[row].nodm && row != TOUCH_4K_NODM &&
			    (touch || !rows[row].touch))
				report_row(csv, row, sizes[i] << 20, runs);
		fflush(stdout);
	}

	printf("gmem-bench: a memory policy over the whole file, %d alternating runs per row; "
	       "ratio = with / the same gmem file without\n", runs);
	printf("%10s  %-15s %-8s %28s  %28s  %7s\n", "size", "row", "unit",
	       "policy", "gmem", "ratio");
	for (i = 0; i < nsizes; i++) {
		run_mpol(sizes[i] << 20, runs);
		report_row(csv, POPULATE_MPOL, sizes[i] << 20, runs);
		if (sizes[i] <= touch_max && (sizes[i] << 20) <= NODM_4K_MAX) {
			run_4k(GMEM_MPOL, TOUCH_4K_MPOL, sizes[i] << 20, runs);
			report_row(csv, TOUCH_4K_MPOL, sizes[i] << 20, runs);
		}
		fflush(stdout);
	}

	/* Last: unmapping single pages splits the direct map's 2 MiB entries. */
	for (i = 0; i < nsizes; i++) {
		if (sizes[i] > touch_max || (sizes[i] << 20) > NODM_4K_MAX)
			continue;
		run_4k(GMEM_NODM, TOUCH_4K_NODM, sizes[i] << 20, runs);
		report_row(csv, TOUCH_4K_NODM, sizes[i] << 20, runs);
		fflush(stdout);
	}

	printf("--- csv ---\n");
	rewind(csv);
	for (int c; (c = fgetc(csv)) != EOF;)
		putchar(c);
	printf("--- end ---\n");
	if (out) {
		FILE *f = fopen(out, "w");

		TEST_ASSERT(f, "%s: %s", out, strerror(errno));
		rewind(csv);
		for (int c; (c = fgetc(csv)) != EOF;)
			fputc(c, f);
		fclose(f);
	}
	return 0;
}
