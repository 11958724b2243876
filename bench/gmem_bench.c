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
 *
 * The "handoff" rows, last of all, in a table of their own: a VMM
 * handoff (live update) of a gmem file that a guest filled, every page
 * written, from the VM of this process to the VM of another process,
 * which that process created before the handoff.  Latency in
 * microseconds, median of -n runs (alternating sizes), per -H size:
 *   handoff         all of it: the old VMM deletes the memslot, releases
 *                   the file from its VM (GMEM_RELEASE_VM), sends the
 *                   fd over a unix socket (SCM_RIGHTS), the new VMM
 *                   receives it, binds it with a memslot of its VM and
 *                   runs its vCPU until the guest has read a private page
 *                   (the file's last) and reported it with a ucall
 *   ho: delete      KVM_SET_USER_MEMORY_REGION2 deleting the memslot
 *   ho: release     GMEM_RELEASE_VM with the old VM's fd
 *   ho: pass fd     sendmsg() to the return of recvmsg() in the other
 *                   process (which sleeps in it until then)
 *   ho: bind        KVM_SET_USER_MEMORY_REGION2 creating the new memslot
 *   ho: first read  KVM_RUN until the guest's ucall with what it read
 * and a ratio row: the handoff of the largest size / of the smallest.
 * The new VM's memory attributes say private before the bind (KVM keeps
 * one per 4 KiB page, so setting them costs O(size) whenever it is done):
 * the bind then reads them all for KVM's 2M mappings.  With -P, as a
 * diagnostic, the new VM binds the file while its memory is still shared
 * and only the page read is made private, after the bind (in "ho: bind").
 * There is no guest_memfd column: a file of KVM_CREATE_GUEST_MEMFD stays
 * the VM's it was made for until closed; another VM cannot bind it
 * (EINVAL).
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
#include <sys/socket.h>
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
#define MAX_HO_RUNS	31
#define MAX_HO_SIZES	4

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
	double s[MAX_HO_RUNS];	/* runs of the handoff rows too, >= MAX_RUNS */

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

/*
 * The handoff rows: a gmem file passes from the VM of one process (the
 * old VMM, this one) to the VM of another (the new VMM, forked before
 * the file exists), as in a VMM live update.
 */
enum handoff_part { HO_TOTAL, HO_DELETE, HO_RELEASE, HO_PASS, HO_BIND, HO_READ, NR_HO_PARTS };

static const char * const ho_names[NR_HO_PARTS] = {
	[HO_TOTAL] = "handoff",
	[HO_DELETE] = "ho: delete",
	[HO_RELEASE] = "ho: release",
	[HO_PASS] = "ho: pass fd",
	[HO_BIND] = "ho: bind",
	[HO_READ] = "ho: first read",
};

static double ho_results[MAX_HO_SIZES][NR_HO_PARTS][MAX_HO_RUNS];
static bool ho_shared_bind;	/* -P */

/* Old VMM to new VMM, with the fd; and the new VMM's answer. */
struct ho_msg {
	double deleting, deleted;	/* around the memslot's deletion */
	double released;		/* after GMEM_RELEASE_VM */
	uint64_t key;			/* what the guest wrote: offset ^ key */
};

struct ho_done {
	double received, bound, read;	/* after recvmsg, the bind, KVM_RUN */
	uint64_t value;			/* what the new guest read */
};

/* The old guest: write offset ^ @key into the first word of every page. */
static void guest_fill(uint64_t base, uint64_t size, uint64_t key)
{
	uint64_t off;

	for (off = 0; off < size; off += PAGE_SIZE)
		*(volatile uint64_t *)(base + off) = off ^ key;
	GUEST_DONE();
}

/* The new guest: wait for the file, then read one word of it. */
static void guest_read(uint64_t gva)
{
	GUEST_SYNC1(0);
	GUEST_SYNC1(*(volatile uint64_t *)gva);
}

static void xwrite(int fd, const void *buf, size_t len)
{
	TEST_ASSERT(write(fd, buf, len) == (ssize_t)len, "write to the socket: %s",
		    strerror(errno));
}

static void xread(int fd, void *buf, size_t len, const char *what)
{
	ssize_t n = read(fd, buf, len);

	TEST_ASSERT(n == (ssize_t)len, "%s: %s", what,
		    n < 0 ? strerror(errno) : "the other process is gone");
}

static void send_fd(int sock, int fd, const struct ho_msg *msg)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	TEST_ASSERT(sendmsg(sock, &mh, 0) == sizeof(*msg), "sendmsg(SCM_RIGHTS): %s",
		    strerror(errno));
}

static int recv_fd(int sock, struct ho_msg *msg)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	int fd;

	TEST_ASSERT(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) == sizeof(*msg),
		    "recvmsg: %s", strerror(errno));
	c = CMSG_FIRSTHDR(&mh);
	TEST_ASSERT(c && c->cmsg_type == SCM_RIGHTS, "recvmsg: no fd");
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* A VM of @size bytes of private memory at DATA_GPA, not bound yet. */
static struct kvm_vm *ho_vm(uint64_t size, void *guest, struct kvm_vcpu **vcpu,
			    void **hva, bool private)
{
	struct kvm_vm *vm;

	vm = __vm_create_shape_with_one_vcpu(protected_shape, vcpu,
					     size / SZ_2M + 64, guest);
	*hva = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(*hva != MAP_FAILED, "mmap: %s", strerror(errno));
	virt_map_level(vm, DATA_GPA, DATA_GPA, size, PG_LEVEL_2M);
	if (private)
		vm_mem_set_private(vm, DATA_GPA, size);
	return vm;
}

static uint64_t run_to_sync(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC,
		    "new guest: exit %u, ucall %lu", vcpu->run->exit_reason, uc.cmd);
	return uc.args[0];
}

/*
 * The new VMM, in a process of its own: a VM whose memory attributes say
 * private already, a vCPU that ran up to where it waits for the file.
 * Then it waits for the fd on @sock, binds it, lets the guest read the
 * file's last page and answers with the times and what the guest read.
 */
static void __noreturn new_vmm(int sock, uint64_t size)
{
	struct kvm_vcpu *vcpu;
	struct ho_done done;
	struct ho_msg msg;
	struct kvm_vm *vm;
	void *hva;
	int fd;

	vm = ho_vm(size, guest_read, &vcpu, &hva, !ho_shared_bind);
	vcpu_args_set(vcpu, 1, DATA_GPA + size - PAGE_SIZE);
	run_to_sync(vcpu);
	xwrite(sock, "r", 1);

	fd = recv_fd(sock, &msg);
	done.received = now();
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   size, hva, fd, 0);
	if (ho_shared_bind)
		vm_mem_set_private(vm, DATA_GPA + size - PAGE_SIZE, PAGE_SIZE);
	done.bound = now();
	done.value = run_to_sync(vcpu);
	done.read = now();
	xwrite(sock, &done, sizeof(done));
	kvm_vm_free(vm);
	close(fd);
	_exit(0);
}

/* One handoff of a file of @size; its parts into @t (seconds). */
static void run_handoff(uint64_t size, uint64_t key, double t[NR_HO_PARTS])
{
	struct kvm_vcpu *vcpu;
	struct ho_done done;
	struct ho_msg msg = { .key = key };
	struct gmem_release_vm rel = {};
	struct kvm_vm *vm;
	struct ucall uc;
	uint64_t expect;
	struct stat st;
	int sv[2], fd, status;
	pid_t pid;
	void *hva;
	char c;

	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
		    "socketpair: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		close(sv[0]);
		new_vmm(sv[1], size);
	}
	close(sv[1]);

	/* The old VMM: its guest writes every page of a new file. */
	vm = ho_vm(size, guest_fill, &vcpu, &hva, true);
	fd = new_file(GMEM, vm, size);
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   size, hva, fd, 0);
	vcpu_args_set(vcpu, 3, DATA_GPA, size, key);
	vcpu_run(vcpu);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_DONE,
		    "old guest: exit %u, ucall %lu", vcpu->run->exit_reason, uc.cmd);
	TEST_ASSERT(!fstat(fd, &st) && (uint64_t)st.st_blocks * 512 == size,
		    "the guest populated %lu of %lu bytes", st.st_blocks * 512, size);
	xread(sv[0], &c, 1, "new VMM not ready");

	rel.vm_fd = vm->fd;
	msg.deleting = now();
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   0, hva, fd, 0);
	msg.deleted = now();
	TEST_ASSERT(!ioctl(fd, GMEM_RELEASE_VM, &rel), "GMEM_RELEASE_VM: %s", strerror(errno));
	msg.released = now();
	send_fd(sv[0], fd, &msg);
	xread(sv[0], &done, sizeof(done), "new VMM failed");
	TEST_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    !WEXITSTATUS(status), "new VMM: status %#x", status);
	expect = (size - PAGE_SIZE) ^ key;
	TEST_ASSERT(done.value == expect, "the new guest read %#lx, the old one wrote %#lx",
		    done.value, expect);
	t[HO_TOTAL] = done.read - msg.deleting;
	t[HO_DELETE] = msg.deleted - msg.deleting;
	t[HO_RELEASE] = msg.released - msg.deleted;
	t[HO_PASS] = done.received - msg.released;
	t[HO_BIND] = done.bound - done.received;
	t[HO_READ] = done.read - done.bound;
	close(sv[0]);
	close(fd);
	kvm_vm_free(vm);
	munmap(hva, size);
}

/* @runs handoffs of every size, alternating which size goes first. */
static void handoff_table(FILE *csv, const uint64_t *sizes, int nsizes, int runs)
{
	double t[NR_HO_PARTS], med[MAX_HO_SIZES], min, max;
	int r, i, j, p;

	printf("gmem-bench: VMM handoff of a gmem file that a guest wrote all of, %d runs alternating sizes, median [min-max]; no guest_memfd column: KVM's own guest_memfd cannot be handed to another VM\n",
	       runs);
	if (ho_shared_bind)
		printf("gmem-bench: -P: the new VM binds the file with its memory shared, the page it reads made private after\n");
	printf("%10s  %-15s %-8s %28s\n", "size", "row", "unit", "gmem");
	for (r = 0; r < runs; r++) {
		for (j = 0; j < nsizes; j++) {
			i = (j + r) % nsizes;
			run_handoff(sizes[i] << 20, 0x5eed0000ULL + r, t);
			for (p = 0; p < NR_HO_PARTS; p++)
				ho_results[i][p][r] = t[p] * 1e6;
		}
	}
	for (i = 0; i < nsizes; i++) {
		for (p = 0; p < NR_HO_PARTS; p++) {
			stats(ho_results[i][p], runs, &med[i], &min, &max);
			printf("%6lu MiB  %-15s %-8s %12.1f [%.1f-%.1f]\n", sizes[i],
			       ho_names[p], "us", med[i], min, max);
			fprintf(csv, "%lu,%s,us,%.4f,%.4f,%.4f,,,,,\n", sizes[i],
				ho_names[p], med[i], min, max);
		}
		stats(ho_results[i][HO_TOTAL], runs, &med[i], &min, &max);
	}
	if (nsizes < 2)
		return;
	/* The largest against the smallest: the same if O(1) in the size. */
	printf("%6lu MiB  %-15s %-8s %12.3g   (median handoff %lu MiB / %lu MiB)\n",
	       sizes[nsizes - 1], "handoff ratio", "x", med[nsizes - 1] / med[0],
	       sizes[nsizes - 1], sizes[0]);
	fprintf(csv, "%lu,handoff ratio,x,,,,,,,%.4f,handoff %lu MiB\n",
		sizes[nsizes - 1], med[nsizes - 1] / med[0], sizes[0]);
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
	"  -o  write the CSV there too (it is always printed at the end)\n"
	"  -H  sizes of the handoff rows, smallest first (default 256,4096; 0: none)\n"
	"  -n  handoffs per size, median reported (default 15)\n"
	"  -P  handoff rows with the new VM's memory shared when it binds the file,\n"
	"      the page read made private after (a diagnostic)\n";

static void print_usage(const char *prog)
{
	fprintf(stderr, "%s [-s MiB[,MiB...]] [-t MiB] [-r runs] [-o file.csv] [-H MiB[,MiB...]] [-n runs] [-P]\n%s",
		prog, help);
	exit(2);
}

int main(int argc, char *argv[])
{
	uint64_t sizes[MAX_SIZES] = { 64, 256, 1024, 2048 }, touch_max = 1024;
	uint64_t ho_sizes[MAX_HO_SIZES] = { 256, 4096 };
	int nsizes = 4, runs = 3, opt, i, row, ho_nsizes = 2, ho_runs = 15;
	const char *out = NULL;
	char *tok, *save;
	FILE *csv;

	while ((opt = getopt(argc, argv, "s:t:r:o:H:n:Ph")) != -1) {
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
		case 'H':
			ho_nsizes = 0;
			for (tok = strtok_r(optarg, ",", &save); tok && ho_nsizes < MAX_HO_SIZES;
			     tok = strtok_r(NULL, ",", &save))
				if (strtoull(tok, NULL, 0))
					ho_sizes[ho_nsizes++] = strtoull(tok, NULL, 0);
			break;
		case 'P':
			ho_shared_bind = true;
			break;
		case 'n':
			ho_runs = atoi(optarg);
			if (ho_runs < 1 || ho_runs > MAX_HO_RUNS)
				print_usage(argv[0]);
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

	/* After all the others, which run as they did before it existed. */
	if (ho_nsizes)
		handoff_table(csv, ho_sizes, ho_nsizes, ho_runs);

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
