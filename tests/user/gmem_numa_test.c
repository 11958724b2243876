// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of the NUMA placement of gmem files.
 *
 * On any machine: GMEM_SET_MEMPOLICY and GMEM_GET_MEMPOLICY, their
 * arguments and every documented error (each check names its errno),
 * what GET reads back after SET, ranges, and the format of gmem-nodes
 * in fdinfo and of node_bytes.
 *
 * On a machine with two nodes that have memory (the tests skip
 * otherwise): where the pages go.  Every placement is read three ways:
 * the file's gmem-nodes (exact), node_bytes (moves by exactly as much)
 * and each node's own MemUsed (the node named must grow by at least 90%
 * of what the file got there, any other node by no more than a little
 * noise).  Whatever is being placed, the allocating thread's own policy
 * (set_mempolicy(2)) prefers another node than the one expected, so a
 * file policy that were ignored would put the pages there and fail the
 * test.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"

#define PG		4096ULL
#define MIB		(1ULL << 20)
#define BLOCK		(2 * MIB)
#define BPL		(8 * sizeof(unsigned long))	/* bits of a nodemask word */
#define MAXNODE_MAX	32768ULL	/* the largest @maxnode gmem takes */
#define MASK_WORDS	(MAXNODE_MAX / BPL)
#define STD_BITS	1024ULL		/* @maxnode of most calls: x86's largest MAX_NUMNODES */
#define STD_WORDS	(STD_BITS / BPL)
#define MAX_MEM_NODES	64		/* nodes with memory this test can follow */
#define SMALL_PAGES	16		/* pages of the files of the argument tests */
#define PLACE_SIZE	(64 * MIB)	/* 32 blocks: fallocate splits them among helpers */
#define NOISE		(4 * MIB)	/* MemUsed a node may gain from anything else */

#define GMEM_ALLOCATE	FALLOC_FL_KEEP_SIZE
#define GMEM_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

#define NODE_DIR	"/sys/devices/system/node"
#define NODE_BYTES	GMEM_SYSFS "/node_bytes"
#define PARAM_BLOCKS	"/sys/module/gmem/parameters/blocks"
#define WEIGHT_DIR	"/sys/kernel/mm/mempolicy/weighted_interleave"

#define EXPECT_ERRNO(err, call, what, ...) do {				\
	errno = 0;							\
	EXPECT_EQ(-1, (call)) TH_LOG(what ": succeeded, expected %s",	\
				     ##__VA_ARGS__, #err);		\
	EXPECT_EQ(err, errno) TH_LOG(what ": errno %d (%s), expected %s", \
				     ##__VA_ARGS__, errno, strerror(errno), #err); \
} while (0)

/* ---- nodes ---- */

struct numa {
	int nr;			/* nodes with memory */
	int id[MAX_MEM_NODES];	/* their ids, increasing */
	int nr_node_ids;	/* the highest possible node id + 1 */
	int max_nodes;		/* the kernel's MAX_NUMNODES */
	int nomem;		/* the lowest node id without memory */
};

static void bit_set(unsigned long *m, uint64_t n)
{
	m[n / BPL] |= 1UL << (n % BPL);
}

static bool bit_test(const unsigned long *m, uint64_t n)
{
	return m[n / BPL] & (1UL << (n % BPL));
}

/*
 * The ids of a node list of /sys/devices/system/node ("0-1,3"), in @ids
 * (at most @max).  Returns how many, or -errno.
 */
static int node_list(const char *name, int *ids, int max)
{
	char path[128], buf[256], *p;
	int r, n = 0;
	long a, b;

	snprintf(path, sizeof(path), NODE_DIR "/%s", name);
	r = __gmem_read_file(path, buf, sizeof(buf));
	if (r)
		return r;
	for (p = buf; *p && *p != '\n';) {
		a = strtol(p, &p, 10);
		b = a;
		if (*p == '-')
			b = strtol(p + 1, &p, 10);
		for (; a <= b; a++) {
			if (n == max)
				return -E2BIG;
			ids[n++] = a;
		}
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return n;
}

static bool has_memory(const struct numa *n, int node)
{
	int i;

	for (i = 0; i < n->nr; i++)
		if (n->id[i] == node)
			return true;
	return false;
}

/*
 * The kernel's MAX_NUMNODES, a power of two: the lowest node id that
 * set_mempolicy(2) refuses (EINVAL) next to a node with memory.  It reads
 * @maxnode - 1 bits, hence k + 2 for bits 0..k.
 */
static int probe_max_nodes(int mem_node)
{
	static unsigned long m[MASK_WORDS + 1];
	long k, r;

	for (k = 1; k < (long)MAXNODE_MAX; k <<= 1) {
		if (k <= mem_node)
			continue;
		memset(m, 0, sizeof(m));
		bit_set(m, mem_node);
		bit_set(m, k);
		r = syscall(SYS_set_mempolicy, MPOL_BIND, m, k + 2);
		syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0);
		if (r && errno == EINVAL)
			return k;
	}
	return -1;
}

#define get_numa(_metadata, n) do {					\
	int __ids[MAX_MEM_NODES], __r;					\
	__r = node_list("has_memory", (n)->id, MAX_MEM_NODES);		\
	ASSERT_LT(0, __r) TH_LOG(NODE_DIR "/has_memory: %s", strerror(-__r)); \
	(n)->nr = __r;							\
	__r = node_list("possible", __ids, MAX_MEM_NODES);		\
	ASSERT_LT(0, __r) TH_LOG(NODE_DIR "/possible: %s", strerror(-__r)); \
	(n)->nr_node_ids = __ids[__r - 1] + 1;				\
	(n)->max_nodes = probe_max_nodes((n)->id[0]);			\
	ASSERT_LT(0, (n)->max_nodes)					\
		TH_LOG("set_mempolicy(2) took every node id up to 32767"); \
	for ((n)->nomem = 0; has_memory((n), (n)->nomem); (n)->nomem++)	\
		;							\
} while (0)

/* "{0,1}": the nodes of the first @bits bits of @m. */
static const char *mask_str(char *buf, size_t len, const unsigned long *m, uint64_t bits)
{
	size_t o = 0;
	uint64_t i;

	o += snprintf(buf + o, len - o, "{");
	for (i = 0; i < bits && o < len; i++)
		if (bit_test(m, i))
			o += snprintf(buf + o, len - o, "%s%llu", o > 1 ? "," : "",
				      (unsigned long long)i);
	if (o < len)
		snprintf(buf + o, len - o, "}");
	return buf;
}

/* ---- the ioctls ---- */

static int __set_policy(int fd, uint64_t off, uint64_t size, uint32_t mode, uint32_t flags,
			const unsigned long *mask, uint64_t maxnode)
{
	struct gmem_mempolicy p = {
		.offset = off,
		.size = size,
		.mode = mode,
		.flags = flags,
		.nodemask = (uintptr_t)mask,
		.maxnode = maxnode,
	};

	return ioctl(fd, GMEM_SET_MEMPOLICY, &p);
}

/* GMEM_GET_MEMPOLICY at @off; *@mode gets the mode.  Garbage in the output fields. */
static int __get_policy(int fd, uint64_t off, uint32_t *mode, unsigned long *mask,
			uint64_t maxnode)
{
	struct gmem_mempolicy p = {
		.offset = off,
		.mode = 0xdeadbeef,
		.nodemask = (uintptr_t)mask,
		.maxnode = maxnode,
	};
	int r = ioctl(fd, GMEM_GET_MEMPOLICY, &p);

	if (!r && mode)
		*mode = p.mode;
	return r;
}

/* A mask of one node, @maxnode STD_BITS. */
struct one_node {
	unsigned long w[STD_WORDS];
};

static struct one_node nodes_of(int a, int b)
{
	struct one_node m = { { 0 } };

	if (a >= 0)
		bit_set(m.w, a);
	if (b >= 0)
		bit_set(m.w, b);
	return m;
}

/* GMEM_SET_MEMPOLICY of [@off, @off + @size) to @mode on nodes @a and @b (-1: none). */
#define set_policy(_metadata, fd, off, size, mode, a, b) do {		\
	struct one_node __m = nodes_of((a), (b));			\
	uint64_t __o = (off), __s = (size);				\
	uint32_t __md = (mode);						\
	ASSERT_EQ(0, __set_policy((fd), __o, __s, __md, 0, __m.w, STD_BITS)) \
		TH_LOG("GMEM_SET_MEMPOLICY [%#llx, +%#llx) mode %#x nodes %d %d: %s", \
		       (unsigned long long)__o, (unsigned long long)__s, __md, \
		       (int)(a), (int)(b), strerror(errno));		\
} while (0)

/* GET at @off reads back @mode and exactly the nodes of @want (STD_BITS). */
#define expect_policy(_metadata, fd, off, want_mode, want) do {		\
	unsigned long __got[STD_WORDS];					\
	const unsigned long *__w = (want);				\
	char __b1[128], __b2[128];					\
	uint32_t __mode = 0;						\
	uint64_t __off = (off);						\
	memset(__got, 0xa5, sizeof(__got));				\
	ASSERT_EQ(0, __get_policy((fd), __off, &__mode, __got, STD_BITS)) \
		TH_LOG("GMEM_GET_MEMPOLICY at %#llx: %s",		\
		       (unsigned long long)__off, strerror(errno));	\
	EXPECT_EQ((uint32_t)(want_mode), __mode)			\
		TH_LOG("GET at %#llx: mode %#x, expected %#x",		\
		       (unsigned long long)__off, __mode, (uint32_t)(want_mode)); \
	EXPECT_EQ(0, memcmp(__w, __got, sizeof(__got)))			\
		TH_LOG("GET at %#llx: nodes %s, expected %s",		\
		       (unsigned long long)__off,			\
		       mask_str(__b1, sizeof(__b1), __got, STD_BITS),	\
		       mask_str(__b2, sizeof(__b2), __w, STD_BITS));	\
} while (0)

#define expect_policy_of(_metadata, fd, off, mode, a, b) do {		\
	struct one_node __want = nodes_of((a), (b));			\
	expect_policy(_metadata, fd, off, mode, __want.w);		\
} while (0)

static long task_policy(int mode, int node)
{
	struct one_node m = nodes_of(node, -1);

	/* set_mempolicy(2) reads @maxnode - 1 bits. */
	return syscall(SYS_set_mempolicy, mode, node >= 0 ? m.w : NULL,
		       node >= 0 ? STD_BITS + 1 : 0);
}

#define set_task_policy(_metadata, mode, node) do {			\
	int __tm = (mode), __tn = (node);				\
	ASSERT_EQ(0, task_policy(__tm, __tn))				\
		TH_LOG("set_mempolicy(%d, node %d): %s", __tm, __tn, strerror(errno)); \
} while (0)

/* ---- per-node bytes ---- */

/*
 * Parse "N0=<bytes> N1=<bytes>" (gmem-nodes, node_bytes) into @bytes,
 * indexed like n->id.  Every node with memory must be there once, in
 * increasing order, and no other.  Returns 0 or -EINVAL.
 */
static int parse_nodes(const struct numa *n, const char *s, unsigned long long *bytes)
{
	char *end;
	int i;

	for (i = 0; i < n->nr; i++) {
		if (i && *s++ != ' ')
			return -EINVAL;
		if (*s++ != 'N' || strtol(s, &end, 10) != n->id[i] || end == s || *end != '=')
			return -EINVAL;
		s = end + 1;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		bytes[i] = strtoull(s, &end, 10);
		s = end;
	}
	return *s == '\n' || !*s ? 0 : -EINVAL;
}

/* The gmem-nodes line of @fd's fdinfo, without the key; -errno. */
static int fdinfo_nodes(int fd, char *out, size_t len)
{
	char path[64], buf[4096], *line;
	int r;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	r = __gmem_read_file(path, buf, sizeof(buf));
	if (r)
		return r;
	line = strstr(buf, "\ngmem-nodes:\t");
	if (!line)
		return -ENOENT;
	line += strlen("\ngmem-nodes:\t");
	line[strcspn(line, "\n")] = '\0';
	snprintf(out, len, "%s", line);
	return 0;
}

#define file_nodes(_metadata, n, fd, bytes) do {			\
	char __l[512];							\
	int __r = fdinfo_nodes((fd), __l, sizeof(__l));			\
	ASSERT_EQ(0, __r) TH_LOG("gmem-nodes in the fdinfo of fd %d: %s", \
				 (int)(fd), strerror(-__r));		\
	ASSERT_EQ(0, parse_nodes((n), __l, (bytes)))			\
		TH_LOG("gmem-nodes \"%s\": not one N<id>=<bytes> for each node with memory", \
		       __l);						\
} while (0)

#define sys_nodes(_metadata, n, bytes) do {				\
	char __l[512];							\
	int __r = __gmem_read_file(NODE_BYTES, __l, sizeof(__l));	\
	ASSERT_EQ(0, __r) TH_LOG(NODE_BYTES ": %s", strerror(-__r));	\
	ASSERT_EQ(0, parse_nodes((n), __l, (bytes)))			\
		TH_LOG(NODE_BYTES " \"%s\": not one N<id>=<bytes> for each node with memory", \
		       __l);						\
} while (0)

/*
 * Bytes of free pages that sit on the per-cpu lists of each node (the
 * "count:" lines of /proc/zoneinfo): MemFree does not count them.
 */
static void pcp_bytes(const struct numa *n, unsigned long long *bytes)
{
	unsigned long long c;
	char line[256];
	int node = -1, i;
	FILE *f;

	memset(bytes, 0, n->nr * sizeof(*bytes));
	f = fopen("/proc/zoneinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Node %d,", &node) == 1)
			continue;
		if (sscanf(line, " count: %llu", &c) != 1)
			continue;
		for (i = 0; i < n->nr; i++)
			if (n->id[i] == node)
				bytes[i] += c * PG;
	}
	fclose(f);
}

/* What each node has in use: MemUsed of its meminfo, less its free per-cpu pages. */
#define node_used(_metadata, n, bytes) do {				\
	unsigned long long __pcp[MAX_MEM_NODES], __kb;			\
	char __p[96], __k[32];						\
	int __i, __r;							\
	__gmem_write_file("/proc/sys/vm/stat_refresh", "1");		\
	pcp_bytes((n), __pcp);						\
	for (__i = 0; __i < (n)->nr; __i++) {				\
		snprintf(__p, sizeof(__p), NODE_DIR "/node%d/meminfo", (n)->id[__i]); \
		snprintf(__k, sizeof(__k), "Node %d MemUsed", (n)->id[__i]); \
		__r = __gmem_read_key(__p, __k, 0, &__kb);		\
		ASSERT_EQ(0, __r) TH_LOG("%s in %s: %s", __k, __p, strerror(-__r)); \
		(bytes)[__i] = __kb * 1024 - __pcp[__i];		\
	}								\
} while (0)

/* The three views of every node's bytes at one moment. */
struct snap {
	unsigned long long file[MAX_MEM_NODES];	/* gmem-nodes of the file */
	unsigned long long sys[MAX_MEM_NODES];	/* node_bytes */
	unsigned long long used[MAX_MEM_NODES];	/* MemUsed less per-cpu free pages */
};

#define take_snap(_metadata, n, fd, s) do {				\
	file_nodes(_metadata, n, fd, (s)->file);			\
	sys_nodes(_metadata, n, (s)->sys);				\
	node_used(_metadata, n, (s)->used);				\
} while (0)

/*
 * expect_moved() - since @before, the file @fd gained exactly @want[i]
 * bytes on node n->id[i] (gmem-nodes), node_bytes exactly as much, and
 * the node's MemUsed at least 90% of it and at most NOISE more.
 */
static void expect_moved(struct __test_metadata *_metadata, const struct numa *n, int fd,
			 const struct snap *before, const unsigned long long *want,
			 const char *what)
{
	struct snap now;
	long long used;
	int i;

	take_snap(_metadata, n, fd, &now);
	for (i = 0; i < n->nr; i++) {
		used = (long long)(now.used[i] - before->used[i]);
		EXPECT_EQ(want[i], now.file[i] - before->file[i])
			TH_LOG("%s: gmem-nodes N%d grew by %llu bytes, expected %llu",
			       what, n->id[i], now.file[i] - before->file[i], want[i]);
		EXPECT_EQ(want[i], now.sys[i] - before->sys[i])
			TH_LOG("%s: node_bytes N%d grew by %llu bytes, expected %llu",
			       what, n->id[i], now.sys[i] - before->sys[i], want[i]);
		EXPECT_LE(want[i] ? (long long)(want[i] / 10 * 9) : -(long long)NOISE, used)
			TH_LOG("%s: node %d MemUsed grew by %lld bytes, expected at least 90%% of %llu (or no less than -%llu)",
			       what, n->id[i], used, want[i], NOISE);
		EXPECT_GE((long long)(want[i] + NOISE), used)
			TH_LOG("%s: node %d MemUsed grew by %lld bytes, expected at most %llu + %llu",
			       what, n->id[i], used, want[i], NOISE);
	}
}

/* The file holds exactly @want[i] on each node (gmem-nodes). */
static void expect_file_nodes(struct __test_metadata *_metadata, const struct numa *n, int fd,
			      const unsigned long long *want, const char *what)
{
	unsigned long long got[MAX_MEM_NODES];
	int i;

	file_nodes(_metadata, n, fd, got);
	for (i = 0; i < n->nr; i++)
		EXPECT_EQ(want[i], got[i])
			TH_LOG("%s: gmem-nodes N%d is %llu, expected %llu", what, n->id[i],
			       got[i], want[i]);
}

/* Bytes by node, indexed like numa.id. */
struct want {
	unsigned long long n[MAX_MEM_NODES];
};

/* @a bytes on the first node with memory, @b on the second, none elsewhere. */
static struct want bytes_on(unsigned long long a, unsigned long long b)
{
	struct want w = { { a, b } };

	return w;
}

#define ON(a, b) (bytes_on((a), (b)).n)

#define gmem_fallocate(_metadata, fd, mode, off, len) do {		\
	unsigned long long __o = (off), __l = (len);			\
	int __m = (mode);						\
	ASSERT_EQ(0, fallocate((fd), __m, __o, __l))			\
		TH_LOG("fallocate mode %#x [%#llx, +%#llx): %s", __m, __o, __l, \
		       strerror(errno));				\
} while (0)

/* ============ arguments and errors: any machine ============ */

FIXTURE(args) {
	int dev;
	int fd;
	struct numa n;
};

FIXTURE_SETUP(args)
{
	self->fd = -1;
	self->dev = gmem_open_dev(_metadata);
	get_numa(_metadata, &self->n);
	self->fd = gmem_create(_metadata, self->dev, SMALL_PAGES * PG, 0);
}

FIXTURE_TEARDOWN(args)
{
	if (self->fd >= 0)
		close(self->fd);
	close(self->dev);
}

/* Node symbols of the tables, resolved on the machine at hand. */
enum {
	S_MEM = 1 << 0,		/* the first node with memory */
	S_NOMEM = 1 << 1,	/* the lowest node id without memory */
	S_LAST = 1 << 2,	/* MAX_NUMNODES - 1 (no memory there on any test machine) */
	S_MAX = 1 << 3,		/* MAX_NUMNODES: above the kernel's largest node id */
	S_TOP = 1 << 4,		/* 32767: the last bit @maxnode may have */
	S_NEXT = 1 << 5,	/* the first node with memory + 1 */
};

/* @maxnode symbols (raw values are taken as they are). */
#define MN_STD		(~0ULL - 1)	/* STD_BITS, or more for the bits of the mask */
#define MN_MEM		(~0ULL - 2)	/* the first memory node's id: its bit is not read */
#define MN_MEM1		(~0ULL - 3)	/* that id + 1: its bit is the last one read */
#define MN_MAX		(~0ULL - 4)	/* MAX_NUMNODES */
#define MN_MAX1		(~0ULL - 5)	/* MAX_NUMNODES + 1 */

static unsigned long *resolve_mask(const struct numa *n, unsigned long *m, unsigned int sym)
{
	memset(m, 0, MASK_WORDS * sizeof(*m));
	if (sym & S_MEM)
		bit_set(m, n->id[0]);
	if (sym & S_NOMEM)
		bit_set(m, n->nomem);
	if (sym & S_LAST)
		bit_set(m, n->max_nodes - 1);
	if (sym & S_MAX)
		bit_set(m, n->max_nodes);
	if (sym & S_TOP)
		bit_set(m, MAXNODE_MAX - 1);
	if (sym & S_NEXT)
		bit_set(m, n->id[0] + 1);
	return m;
}

static uint64_t resolve_maxnode(const struct numa *n, uint64_t mn)
{
	switch (mn) {
	case MN_STD:
		return n->max_nodes > (int)STD_BITS ? n->max_nodes + 1ULL : STD_BITS;
	case MN_MEM:
		return n->id[0];
	case MN_MEM1:
		return n->id[0] + 1;
	case MN_MAX:
		return n->max_nodes;
	case MN_MAX1:
		return n->max_nodes + 1ULL;
	default:
		return mn;
	}
}

struct set_case {
	const char *name;
	uint64_t offset, size;
	uint32_t mode, flags;
	unsigned int nodes;	/* S_* */
	uint64_t maxnode;	/* MN_* or raw */
	bool null_mask;
	uint64_t reserved;	/* in reserved[@res_idx] */
	int res_idx;
};

#define F	(SMALL_PAGES * PG)
/* A row with a mask, no reserved field set. */
#define SC(name, off, size, mode, flags, nodes, mn) \
	{ name, off, size, mode, flags, nodes, mn, false, 0, 0 }

/* Every documented EINVAL of GMEM_SET_MEMPOLICY, one broken rule a row. */
static const struct set_case set_einval[] = {
	SC("mode MPOL_MAX", 0, PG, MPOL_MAX, 0, S_MEM, MN_STD),
	SC("mode 0x1fff", 0, PG, 0x1fff, 0, S_MEM, MN_STD),
	SC("mode MPOL_BIND with bit 16", 0, PG, MPOL_BIND | 1U << 16, 0, S_MEM, MN_STD),
	SC("mode MPOL_BIND with bit 12", 0, PG, MPOL_BIND | 1U << 12, 0, S_MEM, MN_STD),
	SC("mode 0xffffffff", 0, PG, 0xffffffff, 0, S_MEM, MN_STD),
	SC("MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES",
	   0, PG, MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, 0, S_MEM, MN_STD),
	SC("MPOL_BIND | MPOL_F_NUMA_BALANCING",
	   0, PG, MPOL_BIND | MPOL_F_NUMA_BALANCING, 0, S_MEM, MN_STD),
	SC("MPOL_PREFERRED_MANY | MPOL_F_NUMA_BALANCING",
	   0, PG, MPOL_PREFERRED_MANY | MPOL_F_NUMA_BALANCING, 0, S_MEM, MN_STD),
	SC("MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING",
	   0, PG, MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING, 0, S_MEM, MN_STD),
	SC("flags MPOL_MF_MOVE", 0, PG, MPOL_BIND, MPOL_MF_MOVE, S_MEM, MN_STD),
	SC("flags MPOL_MF_MOVE_ALL", 0, PG, MPOL_BIND, MPOL_MF_MOVE_ALL, S_MEM, MN_STD),
	SC("flags MPOL_MF_STRICT | MPOL_MF_MOVE",
	   0, PG, MPOL_BIND, MPOL_MF_STRICT | MPOL_MF_MOVE, S_MEM, MN_STD),
	SC("flags 1 << 3", 0, PG, MPOL_BIND, 1U << 3, S_MEM, MN_STD),
	SC("flags 1 << 31", 0, PG, MPOL_BIND, 1U << 31, S_MEM, MN_STD),
	{ "reserved[0]", 0, PG, MPOL_BIND, 0, S_MEM, MN_STD, false, 1, 0 },
	{ "reserved[1]", 0, PG, MPOL_BIND, 0, S_MEM, MN_STD, false, 1ULL << 63, 1 },
	{ "reserved[2]", 0, PG, MPOL_BIND, 0, S_MEM, MN_STD, false, 1, 2 },
	SC("unaligned offset", 1, PG, MPOL_BIND, 0, S_MEM, MN_STD),
	SC("unaligned size", 0, PG + 1, MPOL_BIND, 0, S_MEM, MN_STD),
	SC("size 0", 0, 0, MPOL_BIND, 0, S_MEM, MN_STD),
	SC("range past the end", F - PG, 2 * PG, MPOL_BIND, 0, S_MEM, MN_STD),
	SC("range after the end", F, PG, MPOL_BIND, 0, S_MEM, MN_STD),
	SC("offset + size wraps", -PG, 2 * PG, MPOL_BIND, 0, S_MEM, MN_STD),
	SC("MPOL_BIND, empty mask", 0, PG, MPOL_BIND, 0, 0, MN_STD),
	{ "MPOL_BIND, no mask", 0, PG, MPOL_BIND, 0, 0, 0, true, 0, 0 },
	SC("MPOL_INTERLEAVE, empty mask", 0, PG, MPOL_INTERLEAVE, 0, 0, MN_STD),
	SC("MPOL_PREFERRED_MANY, empty mask", 0, PG, MPOL_PREFERRED_MANY, 0, 0, MN_STD),
	SC("MPOL_WEIGHTED_INTERLEAVE, empty mask", 0, PG, MPOL_WEIGHTED_INTERLEAVE, 0, 0, MN_STD),
	SC("MPOL_PREFERRED | MPOL_F_STATIC_NODES, empty mask",
	   0, PG, MPOL_PREFERRED | MPOL_F_STATIC_NODES, 0, 0, MN_STD),
	SC("MPOL_PREFERRED | MPOL_F_RELATIVE_NODES, empty mask",
	   0, PG, MPOL_PREFERRED | MPOL_F_RELATIVE_NODES, 0, 0, MN_STD),
	SC("MPOL_DEFAULT with a node", 0, PG, MPOL_DEFAULT, 0, S_MEM, MN_STD),
	SC("MPOL_DEFAULT with a node without memory", 0, PG, MPOL_DEFAULT, 0, S_NOMEM, MN_STD),
	SC("MPOL_LOCAL with a node", 0, PG, MPOL_LOCAL, 0, S_MEM, MN_STD),
	SC("MPOL_LOCAL | MPOL_F_STATIC_NODES",
	   0, PG, MPOL_LOCAL | MPOL_F_STATIC_NODES, 0, 0, MN_STD),
	SC("MPOL_BIND, only a node without memory", 0, PG, MPOL_BIND, 0, S_NOMEM, MN_STD),
	SC("MPOL_BIND, only node MAX_NUMNODES - 1", 0, PG, MPOL_BIND, 0, S_LAST, MN_STD),
	SC("MPOL_BIND | MPOL_F_STATIC_NODES, only a node without memory",
	   0, PG, MPOL_BIND | MPOL_F_STATIC_NODES, 0, S_NOMEM, MN_STD),
	SC("MPOL_PREFERRED, only a node without memory", 0, PG, MPOL_PREFERRED, 0, S_NOMEM, MN_STD),
	SC("MPOL_INTERLEAVE, only a node without memory",
	   0, PG, MPOL_INTERLEAVE, 0, S_NOMEM, MN_STD),
	SC("MPOL_PREFERRED_MANY, only a node without memory",
	   0, PG, MPOL_PREFERRED_MANY, 0, S_NOMEM, MN_STD),
	SC("MPOL_WEIGHTED_INTERLEAVE, only a node without memory",
	   0, PG, MPOL_WEIGHTED_INTERLEAVE, 0, S_NOMEM, MN_STD),
	/* Every bit counts: bit @maxnode is the first one not read. */
	SC("MPOL_BIND, the node's bit just past maxnode", 0, PG, MPOL_BIND, 0, S_MEM, MN_MEM),
	SC("MPOL_BIND, only the next node's bit, just past maxnode", 0, PG, MPOL_BIND, 0, S_NEXT,
	   MN_MEM1),
	SC("bit MAX_NUMNODES set", 0, PG, MPOL_BIND, 0, S_MEM | S_MAX, MN_MAX1),
	SC("bit 32767 set, maxnode 32768", 0, PG, MPOL_BIND, 0, S_MEM | S_TOP, MAXNODE_MAX),
	SC("maxnode 32769", 0, PG, MPOL_BIND, 0, S_MEM, MAXNODE_MAX + 1),
	SC("maxnode 1 << 63", 0, PG, MPOL_BIND, 0, S_MEM, 1ULL << 63),
	SC("maxnode ~0", 0, PG, MPOL_BIND, 0, S_MEM, ~0ULL),
};

static void set_case_args(const struct numa *n, const struct set_case *c, unsigned long *m,
			  struct gmem_mempolicy *p)
{
	*p = (struct gmem_mempolicy){
		.offset = c->offset,
		.size = c->size,
		.mode = c->mode,
		.flags = c->flags,
		.nodemask = c->null_mask ? 0 : (uintptr_t)resolve_mask(n, m, c->nodes),
		.maxnode = resolve_maxnode(n, c->maxnode),
	};
	p->reserved[c->res_idx] = c->reserved;
}

TEST_F(args, set_einval)
{
	static unsigned long m[MASK_WORDS];
	struct gmem_mempolicy p;
	unsigned int i;

	TH_LOG("nodes with memory: %d (first %d), nr_node_ids %d, MAX_NUMNODES %d",
	       self->n.nr, self->n.id[0], self->n.nr_node_ids, self->n.max_nodes);
	for (i = 0; i < ARRAY_SIZE(set_einval); i++) {
		const struct set_case *c = &set_einval[i];

		if ((c->nodes & S_LAST) && has_memory(&self->n, self->n.max_nodes - 1))
			continue;
		set_case_args(&self->n, c, m, &p);
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_SET_MEMPOLICY, &p),
			     "SET %s (mode %#x flags %#x maxnode %llu)", c->name, p.mode,
			     p.flags, (unsigned long long)p.maxnode);
	}
	/* Nothing was set by the failed calls. */
	expect_policy_of(_metadata, self->fd, 0, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, self->fd, F - PG, MPOL_DEFAULT, -1, -1);
}

TEST_F(args, set_efault)
{
	struct gmem_mempolicy p = {
		.size = PG, .mode = MPOL_BIND, .maxnode = 2 * BPL,
	};
	unsigned long *straddle;
	char *pages;

	pages = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pages);
	ASSERT_EQ(0, munmap(pages + PG, PG));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_SET_MEMPOLICY, NULL), "SET, struct at NULL");
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_SET_MEMPOLICY, pages + PG),
		     "SET, struct unmapped");
	p.nodemask = 0;
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_SET_MEMPOLICY, &p),
		     "SET MPOL_BIND, nodemask NULL, maxnode %llu", (unsigned long long)p.maxnode);
	p.nodemask = (uintptr_t)(pages + PG);
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_SET_MEMPOLICY, &p),
		     "SET MPOL_BIND, nodemask unmapped");
	/* Two words, the second one unmapped: the first alone is no mask. */
	straddle = (unsigned long *)(pages + PG) - 1;
	*straddle = 0;
	bit_set(straddle, self->n.id[0]);
	p.nodemask = (uintptr_t)straddle;
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_SET_MEMPOLICY, &p),
		     "SET MPOL_BIND, the second word of the nodemask unmapped");
	/* ...while one word (64 bits) reads fine from there. */
	p.maxnode = BPL;
	EXPECT_EQ(0, ioctl(self->fd, GMEM_SET_MEMPOLICY, &p))
		TH_LOG("SET MPOL_BIND, maxnode %zu, the mask's word just before an unmapped page: %s",
		       BPL, strerror(errno));
	expect_policy_of(_metadata, self->fd, 0, MPOL_BIND, self->n.id[0], -1);
	munmap(pages, PG);
}

struct set_ok_case {
	const char *name;
	uint32_t mode;
	unsigned int nodes;	/* S_* */
	uint64_t maxnode;	/* MN_* or raw */
	bool null_mask;
	uint32_t want_mode;
	unsigned int want;	/* S_*: what GET reads back */
};

/* Valid calls and what GET reads back: the mode as set, the nodes used or given. */
static const struct set_ok_case set_ok[] = {
	{ "MPOL_DEFAULT, no mask", MPOL_DEFAULT, 0, 0, true, MPOL_DEFAULT, 0 },
	{ "MPOL_DEFAULT, empty mask", MPOL_DEFAULT, 0, MN_STD, false, MPOL_DEFAULT, 0 },
	{ "MPOL_BIND", MPOL_BIND, S_MEM, MN_STD, false, MPOL_BIND, S_MEM },
	{ "MPOL_LOCAL, no mask", MPOL_LOCAL, 0, 0, true, MPOL_LOCAL, 0 },
	{ "MPOL_LOCAL, empty mask", MPOL_LOCAL, 0, MN_STD, false, MPOL_LOCAL, 0 },
	{ "MPOL_PREFERRED, empty mask: local", MPOL_PREFERRED, 0, MN_STD, false, MPOL_LOCAL, 0 },
	{ "MPOL_PREFERRED", MPOL_PREFERRED, S_MEM, MN_STD, false, MPOL_PREFERRED, S_MEM },
	{ "MPOL_PREFERRED, and a node without memory", MPOL_PREFERRED, S_MEM | S_NOMEM, MN_STD,
	  false, MPOL_PREFERRED, S_MEM },
	{ "MPOL_BIND, and a node without memory", MPOL_BIND, S_MEM | S_NOMEM, MN_STD, false,
	  MPOL_BIND, S_MEM },
	{ "MPOL_BIND, and node MAX_NUMNODES - 1", MPOL_BIND, S_MEM | S_LAST, MN_MAX, false,
	  MPOL_BIND, S_MEM },
	{ "MPOL_BIND, maxnode just reaching the node", MPOL_BIND, S_MEM, MN_MEM1, false,
	  MPOL_BIND, S_MEM },
	{ "MPOL_BIND, the next node's bit just past maxnode", MPOL_BIND, S_MEM | S_NEXT, MN_MEM1,
	  false, MPOL_BIND, S_MEM },
	{ "MPOL_BIND | MPOL_F_STATIC_NODES, a bit past maxnode in the same word",
	  MPOL_BIND | MPOL_F_STATIC_NODES, S_MEM | S_NOMEM, MN_MEM1, false,
	  MPOL_BIND | MPOL_F_STATIC_NODES, S_MEM },
	{ "MPOL_BIND, maxnode 32768", MPOL_BIND, S_MEM, MAXNODE_MAX, false, MPOL_BIND, S_MEM },
	{ "MPOL_INTERLEAVE", MPOL_INTERLEAVE, S_MEM, MN_STD, false, MPOL_INTERLEAVE, S_MEM },
	{ "MPOL_PREFERRED_MANY", MPOL_PREFERRED_MANY, S_MEM, MN_STD, false,
	  MPOL_PREFERRED_MANY, S_MEM },
	{ "MPOL_WEIGHTED_INTERLEAVE", MPOL_WEIGHTED_INTERLEAVE, S_MEM, MN_STD, false,
	  MPOL_WEIGHTED_INTERLEAVE, S_MEM },
	{ "MPOL_BIND | MPOL_F_STATIC_NODES: the nodes as given",
	  MPOL_BIND | MPOL_F_STATIC_NODES, S_MEM | S_NOMEM, MN_STD, false,
	  MPOL_BIND | MPOL_F_STATIC_NODES, S_MEM | S_NOMEM },
	{ "MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES: the nodes as given",
	  MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES, S_MEM, MN_STD, false,
	  MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES, S_MEM },
	{ "MPOL_PREFERRED | MPOL_F_STATIC_NODES", MPOL_PREFERRED | MPOL_F_STATIC_NODES, S_MEM,
	  MN_STD, false, MPOL_PREFERRED | MPOL_F_STATIC_NODES, S_MEM },
	{ "MPOL_DEFAULT again", MPOL_DEFAULT, 0, 0, true, MPOL_DEFAULT, 0 },
};

/* Each valid SET on the whole file, read back at its first and last page. */
TEST_F(args, set_get)
{
	static unsigned long m[MASK_WORDS];
	unsigned long want[STD_WORDS], got[STD_WORDS];
	char b1[128], b2[128];
	struct gmem_mempolicy p;
	uint64_t off;
	uint32_t mode;
	unsigned int i;

	/* A new file: MPOL_DEFAULT, no nodes. */
	expect_policy_of(_metadata, self->fd, 0, MPOL_DEFAULT, -1, -1);
	for (i = 0; i < ARRAY_SIZE(set_ok); i++) {
		const struct set_ok_case *c = &set_ok[i];
		struct set_case sc = {
			.size = F, .mode = c->mode, .nodes = c->nodes, .maxnode = c->maxnode,
			.null_mask = c->null_mask,
		};

		if ((c->nodes & S_LAST) && has_memory(&self->n, self->n.max_nodes - 1))
			continue;
		set_case_args(&self->n, &sc, m, &p);
		EXPECT_EQ(0, ioctl(self->fd, GMEM_SET_MEMPOLICY, &p))
			TH_LOG("SET %s (mode %#x maxnode %llu): %s", c->name, p.mode,
			       (unsigned long long)p.maxnode, strerror(errno));
		memcpy(want, resolve_mask(&self->n, m, c->want), sizeof(want));
		for (off = 0; off < F; off += F - PG) {
			memset(got, 0xa5, sizeof(got));
			mode = 0;
			EXPECT_EQ(0, __get_policy(self->fd, off, &mode, got, STD_BITS))
				TH_LOG("%s: GET at %#llx: %s", c->name, (unsigned long long)off,
				       strerror(errno));
			EXPECT_EQ(c->want_mode, mode)
				TH_LOG("%s: GET at %#llx: mode %#x, expected %#x", c->name,
				       (unsigned long long)off, mode, c->want_mode);
			EXPECT_EQ(0, memcmp(want, got, sizeof(got)))
				TH_LOG("%s: GET at %#llx: nodes %s, expected %s", c->name,
				       (unsigned long long)off,
				       mask_str(b1, sizeof(b1), got, STD_BITS),
				       mask_str(b2, sizeof(b2), want, STD_BITS));
		}
	}
}

/*
 * MPOL_MF_STRICT where no page can be on a node the policy does not
 * name: holes, pages on the node named, and MPOL_DEFAULT and MPOL_LOCAL,
 * which name none and check nothing.
 */
TEST_F(args, strict_nothing_to_report)
{
	struct one_node m = nodes_of(self->n.id[0], -1), none = nodes_of(-1, -1);

	EXPECT_EQ(0, __set_policy(self->fd, 0, F, MPOL_BIND, MPOL_MF_STRICT, m.w, STD_BITS))
		TH_LOG("SET MPOL_BIND with MPOL_MF_STRICT on a file without pages: %s",
		       strerror(errno));
	expect_policy_of(_metadata, self->fd, 0, MPOL_BIND, self->n.id[0], -1);
	gmem_fallocate(_metadata, self->fd, GMEM_ALLOCATE, 0, 2 * PG);
	EXPECT_EQ(0, __set_policy(self->fd, 0, F, MPOL_BIND, MPOL_MF_STRICT, m.w, STD_BITS))
		TH_LOG("SET MPOL_BIND with MPOL_MF_STRICT, pages on the node: %s",
		       strerror(errno));
	EXPECT_EQ(0, __set_policy(self->fd, 0, F, MPOL_LOCAL, MPOL_MF_STRICT, NULL, 0))
		TH_LOG("SET MPOL_LOCAL with MPOL_MF_STRICT, pages allocated: %s", strerror(errno));
	expect_policy_of(_metadata, self->fd, 0, MPOL_LOCAL, -1, -1);
	EXPECT_EQ(0, __set_policy(self->fd, 0, F, MPOL_PREFERRED, MPOL_MF_STRICT, none.w,
				  STD_BITS))
		TH_LOG("SET MPOL_PREFERRED, no nodes (local), with MPOL_MF_STRICT: %s",
		       strerror(errno));
	expect_policy_of(_metadata, self->fd, 0, MPOL_LOCAL, -1, -1);
	EXPECT_EQ(0, __set_policy(self->fd, 0, F, MPOL_DEFAULT, MPOL_MF_STRICT, NULL, 0))
		TH_LOG("SET MPOL_DEFAULT with MPOL_MF_STRICT, pages allocated: %s",
		       strerror(errno));
	expect_policy_of(_metadata, self->fd, 0, MPOL_DEFAULT, -1, -1);
}

/*
 * A file holds at most 1024 ranges with a policy.  A call that would add
 * one (a new range) or two (and one it splits) past that fails with
 * ENOSPC, MPOL_DEFAULT too when it splits a range; MPOL_DEFAULT over
 * whole ranges or their ends never does, and makes room.
 */
TEST_F(args, policy_ranges_limit)
{
	const uint64_t pages = 4096;
	int fd = gmem_create(_metadata, self->dev, pages * PG, 0), a = self->n.id[0];
	struct one_node m = nodes_of(a, -1);
	uint64_t i;

	/* [0, 3), then 1023 single pages 4, 6, ..., 2048: 1024 ranges. */
	set_policy(_metadata, fd, 0, 3 * PG, MPOL_BIND, a, -1);
	for (i = 0; i < 1023; i++)
		ASSERT_EQ(0, __set_policy(fd, (4 + 2 * i) * PG, PG, MPOL_BIND, 0, m.w, STD_BITS))
			TH_LOG("SET of range %llu (page %llu): %s", (unsigned long long)i + 2,
			       (unsigned long long)(4 + 2 * i), strerror(errno));
	expect_policy_of(_metadata, fd, 2048 * PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, 2047 * PG, MPOL_DEFAULT, -1, -1);

	EXPECT_ERRNO(ENOSPC, __set_policy(fd, 3 * PG, PG, MPOL_BIND, 0, m.w, STD_BITS),
		     "SET of a 1025th range");
	EXPECT_ERRNO(ENOSPC, __set_policy(fd, 0, pages * PG, MPOL_INTERLEAVE, 0, m.w, STD_BITS),
		     "SET of the whole file over 1024 ranges");
	EXPECT_ERRNO(ENOSPC, __set_policy(fd, 4 * PG, PG, MPOL_PREFERRED, 0, m.w, STD_BITS),
		     "SET over exactly one of 1024 ranges");
	EXPECT_ERRNO(ENOSPC, __set_policy(fd, PG, PG, MPOL_DEFAULT, 0, NULL, 0),
		     "MPOL_DEFAULT splitting one of 1024 ranges");
	/* Refused: nothing changed. */
	expect_policy_of(_metadata, fd, PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, 3 * PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, fd, 4 * PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, 5 * PG, MPOL_DEFAULT, -1, -1);

	/* MPOL_DEFAULT over the end of a range, then over a whole one: room for one. */
	set_policy(_metadata, fd, 0, PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, fd, 0, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, fd, PG, MPOL_BIND, a, -1);
	EXPECT_ERRNO(ENOSPC, __set_policy(fd, 3 * PG, PG, MPOL_BIND, 0, m.w, STD_BITS),
		     "SET of a new range, the end of another one cut");
	set_policy(_metadata, fd, 4 * PG, PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, fd, 4 * PG, MPOL_DEFAULT, -1, -1);
	set_policy(_metadata, fd, 3 * PG, PG, MPOL_PREFERRED, a, -1);
	expect_policy_of(_metadata, fd, 3 * PG, MPOL_PREFERRED, a, -1);
	EXPECT_ERRNO(ENOSPC, __set_policy(fd, 4 * PG, PG, MPOL_BIND, 0, m.w, STD_BITS),
		     "SET of a 1025th range, again");

	/* All of it MPOL_DEFAULT: no range left, any SET works. */
	set_policy(_metadata, fd, 0, pages * PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, fd, 2048 * PG, MPOL_DEFAULT, -1, -1);
	set_policy(_metadata, fd, 0, pages * PG, MPOL_INTERLEAVE, a, -1);
	set_policy(_metadata, fd, PG, PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, (pages - 1) * PG, MPOL_INTERLEAVE, a, -1);
	close(fd);
}

/* Policies belong to ranges: SET changes its range and nothing around it. */
TEST_F(args, ranges)
{
	int a = self->n.id[0];

	set_policy(_metadata, self->fd, 4 * PG, 4 * PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, self->fd, 3 * PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, self->fd, 4 * PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, self->fd, 7 * PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, self->fd, 8 * PG, MPOL_DEFAULT, -1, -1);

	/* Overlapping the end of the first range. */
	set_policy(_metadata, self->fd, 6 * PG, 6 * PG, MPOL_INTERLEAVE, a, -1);
	expect_policy_of(_metadata, self->fd, 5 * PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, self->fd, 6 * PG, MPOL_INTERLEAVE, a, -1);
	expect_policy_of(_metadata, self->fd, 11 * PG, MPOL_INTERLEAVE, a, -1);
	expect_policy_of(_metadata, self->fd, 12 * PG, MPOL_DEFAULT, -1, -1);

	/* A hole punched into a range by MPOL_DEFAULT splits it. */
	set_policy(_metadata, self->fd, 4 * PG, PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, self->fd, 4 * PG, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, self->fd, 5 * PG, MPOL_BIND, a, -1);

	/* The last page, then the whole file. */
	set_policy(_metadata, self->fd, F - PG, PG, MPOL_PREFERRED, a, -1);
	expect_policy_of(_metadata, self->fd, F - PG, MPOL_PREFERRED, a, -1);
	expect_policy_of(_metadata, self->fd, F - 2 * PG, MPOL_DEFAULT, -1, -1);
	set_policy(_metadata, self->fd, 0, F, MPOL_LOCAL, -1, -1);
	expect_policy_of(_metadata, self->fd, 0, MPOL_LOCAL, -1, -1);
	expect_policy_of(_metadata, self->fd, 5 * PG, MPOL_LOCAL, -1, -1);
	expect_policy_of(_metadata, self->fd, F - PG, MPOL_LOCAL, -1, -1);
	set_policy(_metadata, self->fd, 0, F, MPOL_DEFAULT, -1, -1);
	expect_policy_of(_metadata, self->fd, 6 * PG, MPOL_DEFAULT, -1, -1);
}

/* A policy on a whole 1 TiB file is one range, read back at both ends. */
TEST_F(args, huge_file)
{
	const uint64_t tib = 1ULL << 40;
	int fd = gmem_create(_metadata, self->dev, tib, 0), a = self->n.id[0];

	set_policy(_metadata, fd, 0, tib, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, 0, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, tib - PG, MPOL_BIND, a, -1);
	set_policy(_metadata, fd, tib / 2, PG, MPOL_INTERLEAVE, a, -1);
	expect_policy_of(_metadata, fd, tib / 2, MPOL_INTERLEAVE, a, -1);
	expect_policy_of(_metadata, fd, tib / 2 + PG, MPOL_BIND, a, -1);
	expect_policy_of(_metadata, fd, tib / 2 - PG, MPOL_BIND, a, -1);
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	close(fd);
}

struct get_case {
	const char *name;
	uint64_t offset, size;
	uint32_t flags;
	uint64_t maxnode;	/* MN_* or raw */
	uint64_t reserved;
	int res_idx;
};

#define GC(name, off, size, flags, mn) { name, off, size, flags, mn, 0, 0 }

/* Every documented EINVAL of GMEM_GET_MEMPOLICY. */
static const struct get_case get_einval[] = {
	GC("unaligned offset", 1, 0, 0, MN_STD),
	GC("offset at the end", F, 0, 0, MN_STD),
	GC("offset past the end", F + PG, 0, 0, MN_STD),
	GC("offset -4096", -PG, 0, 0, MN_STD),
	GC("size 4096", 0, PG, 0, MN_STD),
	GC("size 1", 0, 1, 0, MN_STD),
	GC("flags MPOL_F_NODE", 0, 0, MPOL_F_NODE, MN_STD),
	GC("flags MPOL_F_ADDR", 0, 0, MPOL_F_ADDR, MN_STD),
	GC("flags MPOL_F_MEMS_ALLOWED", 0, 0, MPOL_F_MEMS_ALLOWED, MN_STD),
	GC("flags MPOL_MF_STRICT", 0, 0, MPOL_MF_STRICT, MN_STD),
	{ "reserved[0]", 0, 0, 0, MN_STD, 1, 0 },
	{ "reserved[1]", 0, 0, 0, MN_STD, 1, 1 },
	{ "reserved[2]", 0, 0, 0, MN_STD, 1ULL << 63, 2 },
	GC("maxnode 32769", 0, 0, 0, MAXNODE_MAX + 1),
	GC("maxnode ~0", 0, 0, 0, ~0ULL),
};

TEST_F(args, get_einval)
{
	static unsigned long m[MASK_WORDS];
	struct gmem_mempolicy p;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(get_einval); i++) {
		const struct get_case *c = &get_einval[i];

		p = (struct gmem_mempolicy){
			.offset = c->offset,
			.size = c->size,
			.flags = c->flags,
			.nodemask = (uintptr_t)m,
			.maxnode = resolve_maxnode(&self->n, c->maxnode),
		};
		p.reserved[c->res_idx] = c->reserved;
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_GET_MEMPOLICY, &p),
			     "GET %s (maxnode %llu)", c->name, (unsigned long long)p.maxnode);
	}
	/* Fewer bits than node ids: the mask could not hold every node. */
	if (self->n.nr_node_ids > 1) {
		p = (struct gmem_mempolicy){
			.nodemask = (uintptr_t)m,
			.maxnode = self->n.nr_node_ids - 1,
		};
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, GMEM_GET_MEMPOLICY, &p),
			     "GET with maxnode %llu, below the %d node ids",
			     (unsigned long long)p.maxnode, self->n.nr_node_ids);
	} else {
		TH_LOG("one node id: no maxnode is below it but 0 (which reads no nodes)");
	}
}

TEST_F(args, get_nodemask)
{
	const uint64_t words = STD_WORDS;
	unsigned long buf[STD_WORDS + 1];
	struct gmem_mempolicy p = { 0 };
	uint32_t mode = 0;
	char *ro, *pages;
	uint64_t i;

	set_policy(_metadata, self->fd, 0, F, MPOL_BIND, self->n.id[0], -1);

	/* maxnode 0: the mode alone, the mask (NULL) not touched. */
	p.mode = 0xdeadbeef;
	EXPECT_EQ(0, ioctl(self->fd, GMEM_GET_MEMPOLICY, &p))
		TH_LOG("GET with maxnode 0 and nodemask NULL: %s", strerror(errno));
	EXPECT_EQ((uint32_t)MPOL_BIND, p.mode) TH_LOG("mode %#x, expected MPOL_BIND", p.mode);

	/* Exactly as many bits as node ids. */
	memset(buf, 0xa5, sizeof(buf));
	ASSERT_EQ(0, __get_policy(self->fd, 0, &mode, buf, self->n.nr_node_ids))
		TH_LOG("GET with maxnode %d (the node ids): %s", self->n.nr_node_ids,
		       strerror(errno));
	for (i = 0; i < (uint64_t)self->n.nr_node_ids; i++)
		EXPECT_EQ(i == (uint64_t)self->n.id[0], bit_test(buf, i))
			TH_LOG("GET with maxnode %d: bit %llu", self->n.nr_node_ids,
			       (unsigned long long)i);
	EXPECT_EQ(0xa5a5a5a5a5a5a5a5UL, buf[1])
		TH_LOG("GET with maxnode %d wrote the word after the mask: %#lx",
		       self->n.nr_node_ids, buf[1]);

	/* All @maxnode bits written, and not a word more. */
	memset(buf, 0xff, sizeof(buf));
	ASSERT_EQ(0, __get_policy(self->fd, 0, &mode, buf, words * BPL));
	for (i = 0; i < words * BPL; i++) {
		bool want = i == (uint64_t)self->n.id[0];

		if (bit_test(buf, i) != want)
			break;
	}
	EXPECT_EQ(words * BPL, i)
		TH_LOG("GET with maxnode %llu: bit %llu is wrong",
		       (unsigned long long)(words * BPL), (unsigned long long)i);
	EXPECT_EQ(~0UL, buf[words]) TH_LOG("GET wrote past its maxnode bits: %#lx", buf[words]);

	/* Where the mask cannot be written: EFAULT. */
	pages = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pages);
	ASSERT_EQ(0, mprotect(pages + PG, PG, PROT_READ));
	EXPECT_ERRNO(EFAULT, __get_policy(self->fd, 0, NULL, NULL, STD_BITS),
		     "GET, nodemask NULL, maxnode %llu", STD_BITS);
	EXPECT_ERRNO(EFAULT, __get_policy(self->fd, 0, NULL, (unsigned long *)(pages + PG),
					  STD_BITS), "GET, nodemask read-only");
	EXPECT_ERRNO(EFAULT, __get_policy(self->fd, 0, NULL,
					  (unsigned long *)(pages + PG) - 1, 2 * BPL),
		     "GET, the second word of the nodemask read-only");
	EXPECT_EQ(0, __get_policy(self->fd, 0, NULL, (unsigned long *)(pages + PG) - 1, BPL))
		TH_LOG("GET, maxnode %zu, one writable word before a read-only page: %s", BPL,
		       strerror(errno));

	/* The struct itself: unreadable, or readable but not writable. */
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_GET_MEMPOLICY, NULL), "GET, struct at NULL");
	ro = pages + PG;
	ASSERT_EQ(0, mprotect(pages + PG, PG, PROT_READ | PROT_WRITE));
	memset(ro, 0, sizeof(struct gmem_mempolicy));
	ASSERT_EQ(0, mprotect(pages + PG, PG, PROT_READ));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, GMEM_GET_MEMPOLICY, ro),
		     "GET, struct read-only (the mode cannot be stored)");
	munmap(pages, 2 * PG);
}

/* Numbers next to ours, and ours on /dev/gmem: ENOTTY. */
TEST_F(args, enotty)
{
	static const struct {
		const char *name;
		unsigned long cmd;
	} cmds[] = {
		{ "SET, _IOWR", _IOWR(GMEM_IOCTL_MAGIC, 0x13, struct gmem_mempolicy) },
		{ "SET, size 56", _IOC(_IOC_WRITE, GMEM_IOCTL_MAGIC, 0x13, 56) },
		{ "SET, size 72", _IOC(_IOC_WRITE, GMEM_IOCTL_MAGIC, 0x13, 72) },
		{ "GET, _IOR", _IOR(GMEM_IOCTL_MAGIC, 0x14, struct gmem_mempolicy) },
		{ "GET, _IOW", _IOW(GMEM_IOCTL_MAGIC, 0x14, struct gmem_mempolicy) },
		{ "nr 0x15", _IOWR(GMEM_IOCTL_MAGIC, 0x15, struct gmem_mempolicy) },
		{ "nr 0x15, _IOW", _IOW(GMEM_IOCTL_MAGIC, 0x15, struct gmem_mempolicy) },
	};
	struct gmem_mempolicy p = { .size = PG, .mode = MPOL_LOCAL };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		EXPECT_ERRNO(ENOTTY, ioctl(self->fd, cmds[i].cmd, &p), "ioctl %s (%#lx)",
			     cmds[i].name, cmds[i].cmd);
	EXPECT_ERRNO(ENOTTY, ioctl(self->dev, GMEM_SET_MEMPOLICY, &p),
		     "GMEM_SET_MEMPOLICY on " GMEM_DEV);
	p.size = 0;
	EXPECT_ERRNO(ENOTTY, ioctl(self->dev, GMEM_GET_MEMPOLICY, &p),
		     "GMEM_GET_MEMPOLICY on " GMEM_DEV);
	expect_policy_of(_metadata, self->fd, 0, MPOL_DEFAULT, -1, -1);
}

/*
 * EBADF.  A gmem file cannot be opened without write access: GMEM_CREATE
 * opens it O_RDWR and reopening it through /proc fails with ENXIO but for
 * O_PATH, whose fds take no ioctl.  So: an O_PATH fd and a closed fd.
 */
TEST_F(args, ebadf)
{
	struct gmem_mempolicy p = { .size = PG, .mode = MPOL_LOCAL };
	char path[64];
	int opath, fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", self->fd);
	opath = open(path, O_PATH | O_CLOEXEC);
	ASSERT_LE(0, opath) TH_LOG("open %s O_PATH: %s", path, strerror(errno));
	EXPECT_ERRNO(EBADF, ioctl(opath, GMEM_SET_MEMPOLICY, &p), "SET on an O_PATH fd");
	p.size = 0;
	EXPECT_ERRNO(EBADF, ioctl(opath, GMEM_GET_MEMPOLICY, &p), "GET on an O_PATH fd");
	close(opath);
	fd = gmem_create(_metadata, self->dev, PG, 0);
	close(fd);
	EXPECT_ERRNO(EBADF, ioctl(fd, GMEM_GET_MEMPOLICY, &p), "GET on a closed fd");
	p.size = PG;
	EXPECT_ERRNO(EBADF, ioctl(fd, GMEM_SET_MEMPOLICY, &p), "SET on a closed fd");
	expect_policy_of(_metadata, self->fd, 0, MPOL_DEFAULT, -1, -1);
}

/*
 * gmem-nodes names every node with memory, and adds up to the file's
 * pages, live and held; node_bytes moves with it.  On one node too.
 */
TEST_F(args, nodes_format)
{
	unsigned long long f0[MAX_MEM_NODES], s0[MAX_MEM_NODES], f1[MAX_MEM_NODES];
	unsigned long long s1[MAX_MEM_NODES], sum = 0, alloc, held;
	char src[PG];
	struct gmem_write w = { .size = PG, .user_addr = (uintptr_t)src };
	int fd, i;

	fd = gmem_create(_metadata, self->dev, 8 * MIB, GMEM_CREATE_BLOCKS);
	file_nodes(_metadata, &self->n, fd, f0);
	sys_nodes(_metadata, &self->n, s0);
	for (i = 0; i < self->n.nr; i++)
		EXPECT_EQ(0ULL, f0[i]) TH_LOG("new file: N%d=%llu", self->n.id[i], f0[i]);

	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, 4 * MIB);
	/* One page written into a hole of the third block: a block with held pages. */
	memset(src, 0x5a, sizeof(src));
	w.offset = 4 * MIB + 8 * PG;
	ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w)) TH_LOG("GMEM_WRITE: %s", strerror(errno));
	file_nodes(_metadata, &self->n, fd, f1);
	sys_nodes(_metadata, &self->n, s1);
	alloc = gmem_fdinfo(_metadata, fd, "gmem-allocated");
	held = gmem_fdinfo(_metadata, fd, "gmem-held");
	for (i = 0; i < self->n.nr; i++) {
		sum += f1[i];
		EXPECT_EQ(f1[i], s1[i] - s0[i])
			TH_LOG("node_bytes N%d grew by %llu, the file's gmem-nodes by %llu",
			       self->n.id[i], s1[i] - s0[i], f1[i]);
	}
	EXPECT_EQ(alloc + held, sum)
		TH_LOG("gmem-nodes add up to %llu; gmem-allocated %llu + gmem-held %llu",
		       sum, alloc, held);
	EXPECT_EQ(4 * MIB + PG, alloc);
	close(fd);
	sys_nodes(_metadata, &self->n, s1);
	for (i = 0; i < self->n.nr; i++)
		EXPECT_EQ(s0[i], s1[i]) TH_LOG("after close: node_bytes N%d %llu, before %llu",
					       self->n.id[i], s1[i], s0[i]);
}

/* ============ placement: two nodes with memory ============ */

struct two {
	int dev;
	int fd[3];
	struct numa n;
	int a, b;			/* the first two nodes with memory */
	unsigned long long base[MAX_MEM_NODES];	/* node_bytes before the test */
	char saved_blocks[16];
	char weight_path[2][96];
	char saved_weight[2][16];
};

#define two_setup(_metadata, t) do {					\
	int __i;							\
	memset((t), 0, sizeof(*(t)));					\
	for (__i = 0; __i < 3; __i++)					\
		(t)->fd[__i] = -1;					\
	(t)->dev = gmem_open_dev(_metadata);				\
	get_numa(_metadata, &(t)->n);					\
	if ((t)->n.nr < 2)						\
		SKIP(return, "needs two NUMA nodes with memory, this machine has %d", \
		     (t)->n.nr);					\
	(t)->a = (t)->n.id[0];						\
	(t)->b = (t)->n.id[1];						\
	sys_nodes(_metadata, &(t)->n, (t)->base);			\
} while (0)

/* Close every file: node_bytes must be back where it was; restore parameters. */
static void two_teardown(struct __test_metadata *_metadata, struct two *t)
{
	unsigned long long now[MAX_MEM_NODES];
	int i, tries;

	for (i = 0; i < 3; i++)
		if (t->fd[i] >= 0)
			close(t->fd[i]);
	close(t->dev);
	if (t->saved_blocks[0])
		EXPECT_EQ(0, __gmem_write_file(PARAM_BLOCKS, t->saved_blocks));
	for (i = 0; i < 2; i++)
		if (t->saved_weight[i][0])
			EXPECT_EQ(0, __gmem_write_file(t->weight_path[i], t->saved_weight[i]));
	/* The last close frees the pages; a populate's workers may still hold it briefly. */
	for (tries = 0; tries < 50; tries++) {
		sys_nodes(_metadata, &t->n, now);
		if (!memcmp(now, t->base, t->n.nr * sizeof(now[0])))
			break;
		usleep(20000);
	}
	for (i = 0; i < t->n.nr; i++)
		EXPECT_EQ(t->base[i], now[i])
			TH_LOG("after closing every file: node_bytes N%d %llu, before the test %llu",
			       t->n.id[i], now[i], t->base[i]);
}

/* The other one of the two nodes. */
#define OTHER(t, node) ((node) == (t)->a ? (t)->b : (t)->a)

/*
 * Placement by mode, each the same way: a 64 MiB file with the policy on
 * all of it, the thread's own policy preferring the node that should get
 * less, fallocate; then punch everything and allocate again (the policy
 * stays with the range); GMEM_WRITE into a second such file.
 */
FIXTURE(placement) {
	struct two t;
};

FIXTURE_VARIANT(placement) {
	uint32_t mode;
	bool on_a, on_b;	/* nodes named */
	int a_halves;		/* expected share of node a: 2 all, 1 half, 0 none */
};

FIXTURE_VARIANT_ADD(placement, bind_b) {
	MPOL_BIND, false, true, 0
};

FIXTURE_VARIANT_ADD(placement, bind_a) {
	MPOL_BIND, true, false, 2
};

FIXTURE_VARIANT_ADD(placement, bind_static_b) {
	MPOL_BIND | MPOL_F_STATIC_NODES, false, true, 0
};

FIXTURE_VARIANT_ADD(placement, preferred_b) {
	MPOL_PREFERRED, false, true, 0
};

FIXTURE_VARIANT_ADD(placement, preferred_a) {
	MPOL_PREFERRED, true, false, 2
};

FIXTURE_VARIANT_ADD(placement, preferred_many_b) {
	MPOL_PREFERRED_MANY, false, true, 0
};

FIXTURE_VARIANT_ADD(placement, interleave) {
	MPOL_INTERLEAVE, true, true, 1
};

FIXTURE_SETUP(placement)
{
	two_setup(_metadata, &self->t);
}

FIXTURE_TEARDOWN(placement)
{
	two_teardown(_metadata, &self->t);
}

/*
 * What @size bytes of the variant put on each node (@a_halves of them on
 * a), and the node the thread then prefers: the one that should get less
 * (either for a half).
 */
static void placement_want(const struct two *t, int a_halves, uint64_t size,
			   unsigned long long *want, int *away)
{
	memset(want, 0, MAX_MEM_NODES * sizeof(*want));
	want[0] = size / 2 * a_halves;
	want[1] = size - want[0];
	*away = a_halves == 2 ? t->b : t->a;
}

TEST_F(placement, fallocate)
{
	struct two *t = &self->t;
	unsigned long long want[MAX_MEM_NODES];
	struct snap s;
	int away, fd;

	placement_want(t, variant->a_halves, PLACE_SIZE, want, &away);
	t->fd[0] = gmem_create(_metadata, t->dev, PLACE_SIZE, 0);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, PLACE_SIZE, variant->mode,
		   variant->on_a ? t->a : -1, variant->on_b ? t->b : -1);
	set_task_policy(_metadata, MPOL_PREFERRED, away);

	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, PLACE_SIZE);
	expect_moved(_metadata, &t->n, fd, &s, want, "fallocate");

	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, PLACE_SIZE);
	expect_file_nodes(_metadata, &t->n, fd, ON(0, 0), "punched");
	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, PLACE_SIZE);
	expect_moved(_metadata, &t->n, fd, &s, want, "fallocate after the punch");
}

TEST_F(placement, gmem_write)
{
	const uint64_t size = 8 * MIB;
	struct two *t = &self->t;
	unsigned long long want[MAX_MEM_NODES];
	struct gmem_write w = { .size = size };
	struct snap s;
	int away, fd;
	char *src;

	src = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	memset(src, 0x3c, size);
	w.user_addr = (uintptr_t)src;
	placement_want(t, variant->a_halves, size, want, &away);
	t->fd[0] = gmem_create(_metadata, t->dev, size, GMEM_CREATE_BLOCKS);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, size, variant->mode,
		   variant->on_a ? t->a : -1, variant->on_b ? t->b : -1);
	set_task_policy(_metadata, MPOL_PREFERRED, away);
	take_snap(_metadata, &t->n, fd, &s);
	ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w)) TH_LOG("GMEM_WRITE of %llu bytes: %s",
						       (unsigned long long)size, strerror(errno));
	expect_moved(_metadata, &t->n, fd, &s, want, "GMEM_WRITE");
	munmap(src, size);
}

/* Scenarios. */
FIXTURE(two_nodes) {
	struct two t;
};

FIXTURE_SETUP(two_nodes)
{
	two_setup(_metadata, &self->t);
}

FIXTURE_TEARDOWN(two_nodes)
{
	two_teardown(_metadata, &self->t);
}

/* MPOL_INTERLEAVE on a file of blocks: each 2 MiB block on one node, by turns. */
TEST_F(two_nodes, interleave_by_block)
{
	struct two *t = &self->t;
	unsigned long long prev[MAX_MEM_NODES], now[MAX_MEM_NODES];
	uint64_t off;
	int fd, last = -1, got;
	struct snap s;

	t->fd[0] = gmem_create(_metadata, t->dev, PLACE_SIZE, 0);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, PLACE_SIZE, MPOL_INTERLEAVE, t->a, t->b);
	set_task_policy(_metadata, MPOL_PREFERRED, t->a);
	take_snap(_metadata, &t->n, fd, &s);
	memset(prev, 0, sizeof(prev));
	for (off = 0; off < PLACE_SIZE; off += BLOCK) {
		gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, off, BLOCK);
		file_nodes(_metadata, &t->n, fd, now);
		got = now[0] - prev[0] == BLOCK ? 0 : now[1] - prev[1] == BLOCK ? 1 : -1;
		ASSERT_LE(0, got)
			TH_LOG("block at %#llx: N%d grew by %llu, N%d by %llu; expected one by 2 MiB",
			       (unsigned long long)off, t->a, now[0] - prev[0], t->b,
			       now[1] - prev[1]);
		ASSERT_EQ(prev[0] + prev[1] + BLOCK, now[0] + now[1]);
		EXPECT_NE(last, got)
			TH_LOG("block at %#llx on node %d, as the block before it",
			       (unsigned long long)off, t->n.id[got]);
		last = got;
		memcpy(prev, now, sizeof(prev));
	}
	expect_moved(_metadata, &t->n, fd, &s, ON(PLACE_SIZE / 2, PLACE_SIZE / 2),
		     "interleaved block by block");
}

/*
 * MPOL_INTERLEAVE where the file allocates pages, not blocks: GMEM_WRITE
 * of one block's range puts half of its pages on each node; the same on
 * a file of blocks puts the whole block on one node.
 */
TEST_F(two_nodes, interleave_by_page)
{
	struct two *t = &self->t;
	unsigned long long got[MAX_MEM_NODES];
	struct gmem_write w = { .size = BLOCK };
	long long diff;
	char *src;
	int r, fd;

	r = __gmem_read_file(PARAM_BLOCKS, t->saved_blocks, sizeof(t->saved_blocks));
	ASSERT_EQ(0, r) TH_LOG(PARAM_BLOCKS ": %s", strerror(-r));
	gmem_write_file(_metadata, PARAM_BLOCKS, "flag");
	src = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	memset(src, 0x77, BLOCK);
	w.user_addr = (uintptr_t)src;
	set_task_policy(_metadata, MPOL_PREFERRED, t->a);

	t->fd[0] = gmem_create(_metadata, t->dev, 2 * BLOCK, 0);
	fd = t->fd[0];
	ASSERT_EQ(0ULL, gmem_fdinfo(_metadata, fd, "gmem-flags") & GMEM_CREATE_BLOCKS);
	set_policy(_metadata, fd, 0, 2 * BLOCK, MPOL_INTERLEAVE, t->a, t->b);
	ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w)) TH_LOG("GMEM_WRITE: %s", strerror(errno));
	file_nodes(_metadata, &t->n, fd, got);
	EXPECT_EQ(BLOCK, got[0] + got[1]);
	diff = (long long)(got[0] - got[1]);
	EXPECT_GE(2 * (long long)PG, llabs(diff))
		TH_LOG("pages of one block's range, interleaved by page: N%d=%llu N%d=%llu",
		       t->a, got[0], t->b, got[1]);

	t->fd[1] = gmem_create(_metadata, t->dev, 2 * BLOCK, GMEM_CREATE_BLOCKS);
	fd = t->fd[1];
	set_policy(_metadata, fd, 0, 2 * BLOCK, MPOL_INTERLEAVE, t->a, t->b);
	ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w)) TH_LOG("GMEM_WRITE: %s", strerror(errno));
	file_nodes(_metadata, &t->n, fd, got);
	EXPECT_TRUE((got[0] == BLOCK && !got[1]) || (got[1] == BLOCK && !got[0]))
		TH_LOG("one block, interleaved by block: N%d=%llu N%d=%llu", t->a, got[0],
		       t->b, got[1]);
	munmap(src, BLOCK);
}

/* MPOL_WEIGHTED_INTERLEAVE with weights 3 and 1: three blocks of four on the first node. */
TEST_F(two_nodes, weighted_interleave)
{
	struct two *t = &self->t;
	struct snap s;
	int i, r, fd;

	for (i = 0; i < 2; i++) {
		snprintf(t->weight_path[i], sizeof(t->weight_path[i]), WEIGHT_DIR "/node%d",
			 t->n.id[i]);
		r = __gmem_read_file(t->weight_path[i], t->saved_weight[i],
				     sizeof(t->saved_weight[i]));
		if (r == -ENOENT)
			SKIP(return, "no %s: the kernel has no interleave weights",
			     t->weight_path[i]);
		ASSERT_EQ(0, r) TH_LOG("%s: %s", t->weight_path[i], strerror(-r));
	}
	gmem_write_file(_metadata, t->weight_path[0], "3");
	gmem_write_file(_metadata, t->weight_path[1], "1");
	t->fd[0] = gmem_create(_metadata, t->dev, PLACE_SIZE, 0);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, PLACE_SIZE, MPOL_WEIGHTED_INTERLEAVE, t->a, t->b);
	set_task_policy(_metadata, MPOL_PREFERRED, t->b);
	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, PLACE_SIZE);
	expect_moved(_metadata, &t->n, fd, &s, ON(PLACE_SIZE / 4 * 3, PLACE_SIZE / 4),
		     "weighted interleave 3:1");
}

/* A policy per range: the first half of the file on one node, the second on the other. */
TEST_F(two_nodes, range_policies)
{
	struct two *t = &self->t;
	struct snap s;
	int fd;

	t->fd[0] = gmem_create(_metadata, t->dev, PLACE_SIZE, 0);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, PLACE_SIZE / 2, MPOL_BIND, t->a, -1);
	set_policy(_metadata, fd, PLACE_SIZE / 2, PLACE_SIZE / 2, MPOL_BIND, t->b, -1);
	expect_policy_of(_metadata, fd, PLACE_SIZE / 2 - PG, MPOL_BIND, t->a, -1);
	expect_policy_of(_metadata, fd, PLACE_SIZE / 2, MPOL_BIND, t->b, -1);
	set_task_policy(_metadata, MPOL_PREFERRED, t->b);
	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, PLACE_SIZE);
	expect_moved(_metadata, &t->n, fd, &s, ON(PLACE_SIZE / 2, PLACE_SIZE / 2),
		     "half bound to each node");
}

/*
 * A new policy applies to later allocations; pages already there stay.
 * GET reads the latest.  Punched and allocated again, they follow it.
 */
TEST_F(two_nodes, policy_change)
{
	const uint64_t half = PLACE_SIZE / 2;
	struct two *t = &self->t;
	struct snap s;
	int fd;

	t->fd[0] = gmem_create(_metadata, t->dev, PLACE_SIZE, 0);
	fd = t->fd[0];
	set_task_policy(_metadata, MPOL_PREFERRED, t->a);
	set_policy(_metadata, fd, 0, PLACE_SIZE, MPOL_BIND, t->b, -1);
	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, half);
	expect_moved(_metadata, &t->n, fd, &s, ON(0, half), "first half, bound to b");

	set_task_policy(_metadata, MPOL_PREFERRED, t->b);
	set_policy(_metadata, fd, 0, PLACE_SIZE, MPOL_BIND, t->a, -1);
	expect_policy_of(_metadata, fd, 0, MPOL_BIND, t->a, -1);
	expect_policy_of(_metadata, fd, PLACE_SIZE - PG, MPOL_BIND, t->a, -1);
	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, half, half);
	expect_moved(_metadata, &t->n, fd, &s, ON(half, 0), "second half, bound to a");
	expect_file_nodes(_metadata, &t->n, fd, ON(half, half), "the first half stayed");

	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, half);
	take_snap(_metadata, &t->n, fd, &s);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, half);
	expect_moved(_metadata, &t->n, fd, &s, ON(half, 0), "first half, punched and again");
	expect_file_nodes(_metadata, &t->n, fd, ON(PLACE_SIZE, 0), "all of it on a");
}

/* MPOL_MF_STRICT: EIO when allocated pages sit on a node the policy does not name. */
TEST_F(two_nodes, strict)
{
	const uint64_t size = 8 * MIB;
	struct two *t = &self->t;
	struct one_node ma = nodes_of(t->a, -1), mb = nodes_of(t->b, -1);
	struct one_node mab = nodes_of(t->a, t->b);
	int fd;

	t->fd[0] = gmem_create(_metadata, t->dev, size, 0);
	fd = t->fd[0];
	set_task_policy(_metadata, MPOL_PREFERRED, t->b);
	set_policy(_metadata, fd, 0, size, MPOL_BIND, t->a, -1);
	/* One block and one page of the next, on a. */
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, BLOCK + PG);
	expect_file_nodes(_metadata, &t->n, fd, ON(BLOCK + PG, 0), "allocated, bound to a");

	EXPECT_EQ(0, __set_policy(fd, 0, size, MPOL_BIND, MPOL_MF_STRICT, ma.w, STD_BITS))
		TH_LOG("MPOL_BIND {a} strict, pages on a: %s", strerror(errno));
	EXPECT_EQ(0, __set_policy(fd, 0, size, MPOL_INTERLEAVE, MPOL_MF_STRICT, mab.w,
				  STD_BITS))
		TH_LOG("MPOL_INTERLEAVE {a,b} strict, pages on a: %s", strerror(errno));
	EXPECT_EQ(0, __set_policy(fd, 2 * BLOCK, size - 2 * BLOCK, MPOL_BIND, MPOL_MF_STRICT,
				  mb.w, STD_BITS))
		TH_LOG("MPOL_BIND {b} strict on holes only: %s", strerror(errno));
	EXPECT_ERRNO(EIO, __set_policy(fd, BLOCK, BLOCK, MPOL_BIND, MPOL_MF_STRICT, mb.w,
				       STD_BITS),
		     "MPOL_BIND {b} strict on a block holding one page on a");
	EXPECT_ERRNO(EIO, __set_policy(fd, 0, size, MPOL_PREFERRED, MPOL_MF_STRICT, mb.w,
				       STD_BITS),
		     "MPOL_PREFERRED {b} strict, pages on a");
	/* The policy is set all the same. */
	expect_policy_of(_metadata, fd, 0, MPOL_PREFERRED, t->b, -1);
	EXPECT_EQ(0, __set_policy(fd, 0, size, MPOL_LOCAL, MPOL_MF_STRICT, NULL, 0))
		TH_LOG("MPOL_LOCAL strict, pages on a: %s", strerror(errno));
	EXPECT_ERRNO(EIO, __set_policy(fd, 0, size, MPOL_BIND, MPOL_MF_STRICT, mb.w, STD_BITS),
		     "MPOL_BIND {b} strict, pages on a");
	expect_policy_of(_metadata, fd, 0, MPOL_BIND, t->b, -1);
	expect_policy_of(_metadata, fd, size - PG, MPOL_BIND, t->b, -1);
	/* Nothing moved. */
	expect_file_nodes(_metadata, &t->n, fd, ON(BLOCK + PG, 0), "after MPOL_MF_STRICT");
}

/* GMEM_WRITE of one page into a hole allocates its block there: held pages count too. */
TEST_F(two_nodes, write_holds_block)
{
	struct two *t = &self->t;
	struct gmem_write w = { .offset = 3 * PG, .size = PG };
	char src[PG];
	struct snap s;
	int fd, r;

	r = __gmem_read_file(PARAM_BLOCKS, t->saved_blocks, sizeof(t->saved_blocks));
	ASSERT_EQ(0, r) TH_LOG(PARAM_BLOCKS ": %s", strerror(-r));
	gmem_write_file(_metadata, PARAM_BLOCKS, "flag");
	memset(src, 0x11, sizeof(src));
	w.user_addr = (uintptr_t)src;
	t->fd[0] = gmem_create(_metadata, t->dev, 2 * BLOCK, GMEM_CREATE_BLOCKS);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, 2 * BLOCK, MPOL_BIND, t->b, -1);
	set_task_policy(_metadata, MPOL_PREFERRED, t->a);
	take_snap(_metadata, &t->n, fd, &s);
	ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w)) TH_LOG("GMEM_WRITE: %s", strerror(errno));
	EXPECT_EQ(PG, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	EXPECT_EQ(BLOCK - PG, gmem_fdinfo(_metadata, fd, "gmem-held"));
	expect_moved(_metadata, &t->n, fd, &s, ON(0, BLOCK), "one page written, block held");
}

struct populator {
	int fd;
	uint64_t size;
	int mode, node;		/* the thread's own policy */
	int cpu_node;		/* the node whose CPUs it runs on, -1: any */
	int r, err;
};

/* Run the calling thread on the CPUs of @node; false if it has none. */
static bool run_on_node(int node)
{
	char name[64];
	cpu_set_t set;
	int cpus[256], n, i;

	snprintf(name, sizeof(name), "node%d/cpulist", node);
	n = node_list(name, cpus, ARRAY_SIZE(cpus));
	if (n <= 0)
		return false;
	CPU_ZERO(&set);
	for (i = 0; i < n; i++)
		CPU_SET(cpus[i], &set);
	return !sched_setaffinity(0, sizeof(set), &set);
}

static void *populate(void *arg)
{
	struct populator *p = arg;

	if (p->cpu_node >= 0 && !run_on_node(p->cpu_node))
		p->cpu_node = -1;
	p->r = task_policy(p->mode, p->node);
	p->err = errno;
	if (p->r)
		return NULL;
	p->r = fallocate(p->fd, GMEM_ALLOCATE, 0, p->size);
	p->err = errno;
	return NULL;
}

#define run_populator(_metadata, pfd, psize, pmode, pnode, pcpu) do {	\
	struct populator __p = {					\
		.fd = (pfd), .size = (psize), .mode = (pmode), .node = (pnode), \
		.cpu_node = (pcpu),					\
	};								\
	pthread_t __th;							\
	ASSERT_EQ(0, pthread_create(&__th, NULL, populate, &__p));	\
	ASSERT_EQ(0, pthread_join(__th, NULL));				\
	ASSERT_EQ(0, __p.r) TH_LOG("thread bound to node %d: %s", __p.node, \
				   strerror(__p.err));			\
	if (__p.cpu_node < 0)						\
		TH_LOG("node %d has no CPUs: the thread ran anywhere", (int)(pcpu)); \
} while (0)

/*
 * The file's policy wins over the allocating thread's; a file without
 * one (MPOL_DEFAULT) follows the thread's, the workers of a large
 * fallocate included: to each of the two nodes in turn.  The thread runs
 * on the CPUs of the other node, so that a worker that allocated on its
 * own CPU's node (or by its own policy) would put pages there.
 */
TEST_F(two_nodes, thread_policy)
{
	static const struct {
		const char *name;
		bool file_b;	/* the file bound to b, or MPOL_DEFAULT */
		bool thread_b;	/* the thread bound to b, or to a */
		bool on_b;	/* where the pages go */
	} cases[] = {
		{ "file bound to b, thread bound to a", true, false, true },
		{ "file MPOL_DEFAULT, thread bound to a", false, false, false },
		{ "file MPOL_DEFAULT, thread bound to b", false, true, true },
		{ "file bound to b, thread bound to b", true, true, true },
	};
	struct two *t = &self->t;
	int thread_node, cpu_node;
	struct want want;
	unsigned int i;
	struct snap s;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		t->fd[0] = gmem_create(_metadata, t->dev, PLACE_SIZE, 0);
		if (cases[i].file_b)
			set_policy(_metadata, t->fd[0], 0, PLACE_SIZE, MPOL_BIND, t->b, -1);
		thread_node = t->a;
		cpu_node = t->b;
		if (cases[i].thread_b) {
			thread_node = t->b;
			cpu_node = t->a;
		}
		want = bytes_on(PLACE_SIZE, 0);
		if (cases[i].on_b)
			want = bytes_on(0, PLACE_SIZE);
		take_snap(_metadata, &t->n, t->fd[0], &s);
		run_populator(_metadata, t->fd[0], PLACE_SIZE, MPOL_BIND, thread_node, cpu_node);
		expect_moved(_metadata, &t->n, t->fd[0], &s, want.n, cases[i].name);
		close(t->fd[0]);
		t->fd[0] = -1;
	}
}

/*
 * MPOL_BIND to a node that fills up: fallocate fails with ENOMEM and
 * nothing spills to the other node, though the thread prefers it.  Then
 * a second file bound to the full node gets nothing either, from
 * GMEM_WRITE or fallocate.
 */
TEST_F_TIMEOUT(two_nodes, bind_full_node, 600)
{
	struct two *t = &self->t;
	unsigned long long free_kb, got[MAX_MEM_NODES];
	char path[96], key[32], src[PG];
	struct gmem_write w = { .size = PG, .user_addr = (uintptr_t)src };
	uint64_t size;
	struct snap s;
	long long used_a;
	int fd, r;

	snprintf(path, sizeof(path), NODE_DIR "/node%d/meminfo", t->b);
	snprintf(key, sizeof(key), "Node %d MemFree", t->b);
	r = __gmem_read_key(path, key, 0, &free_kb);
	ASSERT_EQ(0, r) TH_LOG("%s in %s: %s", key, path, strerror(-r));
	/* More than node b has free, in whole blocks. */
	size = (free_kb * 1024 + 256 * MIB + BLOCK - 1) / BLOCK * BLOCK;
	TH_LOG("node %d has %llu MiB free: a file of %llu MiB bound to it", t->b, free_kb >> 10,
	       (unsigned long long)(size >> 20));
	t->fd[0] = gmem_create(_metadata, t->dev, size, 0);
	fd = t->fd[0];
	set_policy(_metadata, fd, 0, size, MPOL_BIND, t->b, -1);
	set_task_policy(_metadata, MPOL_PREFERRED, t->a);
	take_snap(_metadata, &t->n, fd, &s);
	EXPECT_ERRNO(ENOMEM, fallocate(fd, GMEM_ALLOCATE, 0, size),
		     "fallocate of %llu MiB bound to node %d", (unsigned long long)(size >> 20),
		     t->b);
	file_nodes(_metadata, &t->n, fd, got);
	EXPECT_EQ(0ULL, got[0]) TH_LOG("node %d got %llu bytes of a file bound to node %d",
				       t->a, got[0], t->b);
	EXPECT_LT(size / 2, got[1]) TH_LOG("node %d got only %llu bytes of %llu MiB free",
					   t->b, got[1], free_kb >> 10);
	EXPECT_EQ(got[1], gmem_fdinfo(_metadata, fd, "gmem-allocated") +
		  gmem_fdinfo(_metadata, fd, "gmem-held"));

	t->fd[1] = gmem_create(_metadata, t->dev, 2 * BLOCK, GMEM_CREATE_BLOCKS);
	fd = t->fd[1];
	set_policy(_metadata, fd, 0, 2 * BLOCK, MPOL_BIND, t->b, -1);
	memset(src, 1, sizeof(src));
	EXPECT_ERRNO(ENOMEM, ioctl(fd, GMEM_WRITE, &w), "GMEM_WRITE of a page bound to node %d",
		     t->b);
	EXPECT_ERRNO(ENOMEM, fallocate(fd, GMEM_ALLOCATE, 0, 2 * BLOCK),
		     "fallocate of 4 MiB bound to node %d", t->b);
	expect_file_nodes(_metadata, &t->n, fd, ON(0, 0), "a second file bound to the full node");

	node_used(_metadata, &t->n, got);
	used_a = (long long)(got[0] - s.used[0]);
	EXPECT_GE((long long)NOISE, used_a)
		TH_LOG("node %d MemUsed grew by %lld bytes while node %d filled up", t->a,
		       used_a, t->b);
}

TEST_HARNESS_MAIN
