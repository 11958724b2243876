// SPDX-License-Identifier: GPL-2.0-only
/*
 * Real KVM guests on gmem files with a memory policy, and the trace
 * events of guest faults and invalidations.
 *
 * - Guest faults follow the file's policy (GMEM_SET_MEMPOLICY), not the
 *   vCPU thread's own (set_mempolicy(2)) nor its CPU's node: with the
 *   file bound to one node and the vCPU thread bound to the other, every
 *   page the guest touches lands on the file's node, in 2 MiB blocks and
 *   in pages, as fdinfo gmem-nodes, the module's node_bytes and the
 *   node's own MemUsed show; both ways round, so that a module following
 *   the CPU's node fails one of them.
 * - MPOL_INTERLEAVE goes round the nodes by 2 MiB block: the guest's
 *   blocks are split evenly between the nodes and KVM still maps each
 *   with one 2M entry (its pages_2m counter).
 * - gmem_fault fires for each fault the guest takes, with the file's id,
 *   the page offset, the order gmem allowed (9 in blocks, 0 for pages)
 *   and error 0; for a fault gmem refuses (NOALLOC hole, USERFAULT,
 *   POISON) with -EFAULT or -EHWPOISON, as KVM_RUN fails.
 * - gmem_invalidate fires for a punch and for an attribute change of a
 *   range the guest has mapped, covering that range, and KVM's 2M
 *   mappings go at the same time.
 *
 * The node cases need two nodes with memory and skip otherwise; the
 * trace cases need tracefs with gmem's events.  Guests run under
 * KVM_X86_SW_PROTECTED_VM; the KVM selftests library of the kernel tree
 * sets them up.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/mempolicy.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_kvm_util.h"
#include "gmem_kvm_stats.h"
#include "gmem_util.h"
#include <gmem.h>

#define GPA1		(1ULL << 32)
#define GPA2		(GPA1 + SZ_1G)
#define SLOT1		10
#define SLOT2		11
#define BLOCK_PAGES	512

#define GMEM_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

static void touch(uint64_t gpa, uint64_t size)
{
	uint64_t i;

	for (i = 0; i < size; i += PAGE_SIZE)
		*(volatile uint64_t *)(gpa + i) = i | 1;
}

static void check(uint64_t gpa, uint64_t size)
{
	uint64_t i;

	for (i = 0; i < size; i += PAGE_SIZE)
		GUEST_ASSERT_EQ(*(volatile uint64_t *)(gpa + i), i | 1);
}

/*
 * Stage 1: nothing touched.  Then one word per 4 KiB page of both ranges
 * is written (stage 2) and read back.
 */
static void guest_touch(uint64_t size1, uint64_t size2)
{
	GUEST_SYNC(1);
	touch(GPA1, size1);
	touch(GPA2, size2);
	GUEST_SYNC(2);
	check(GPA1, size1);
	check(GPA2, size2);
	GUEST_DONE();
}

/*
 * A VM whose memslot SLOT1 maps [GPA1, GPA1 + @size1) to @fd1 from
 * offset 0, and SLOT2 [GPA2, GPA2 + @size2) to @fd2 if @size2 is not 0;
 * all private.
 */
static struct kvm_vm *numa_vm(struct kvm_vcpu **vcpu, void *guest, int fd1,
			      uint64_t size1, int fd2, uint64_t size2)
{
	struct kvm_vm *vm;

	vm = __vm_create_shape_with_one_vcpu(protected_shape, vcpu,
					     (size1 + size2) / SZ_2M + 64, guest);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA1, SLOT1, size1 / PAGE_SIZE,
		   KVM_MEM_GUEST_MEMFD, fd1, 0);
	virt_map(vm, GPA1, GPA1, size1 / PAGE_SIZE);
	vm_mem_set_private(vm, GPA1, size1);
	if (size2) {
		vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA2, SLOT2, size2 / PAGE_SIZE,
			   KVM_MEM_GUEST_MEMFD, fd2, 0);
		virt_map(vm, GPA2, GPA2, size2 / PAGE_SIZE);
		vm_mem_set_private(vm, GPA2, size2);
	}
	vcpu_args_set(*vcpu, 2, size1, size2);
	return vm;
}

/* GMEM_SET_MEMPOLICY of [@offset, @offset + @size) of @fd: @mode on @nodes. */
static void set_file_policy(int fd, uint64_t offset, uint64_t size, int mode,
			    unsigned long nodes)
{
	struct gmem_mempolicy p = {
		.offset = offset,
		.size = size,
		.mode = mode,
		.nodemask = (uintptr_t)&nodes,
		.maxnode = 8 * sizeof(nodes),
	};

	TEST_ASSERT(!ioctl(fd, GMEM_SET_MEMPOLICY, &p),
		    "GMEM_SET_MEMPOLICY [%#lx, +%#lx) mode %d nodes %#lx: %s (errno %d)",
		    offset, size, mode, nodes, strerror(errno), errno);
}

/* set_mempolicy(2) of the calling thread, which runs the vCPU. */
static void set_task_policy(int mode, unsigned long nodes)
{
	TEST_ASSERT(!syscall(__NR_set_mempolicy, mode, mode == MPOL_DEFAULT ? NULL : &nodes,
			     mode == MPOL_DEFAULT ? 0 : 8 * sizeof(nodes)),
		    "set_mempolicy mode %d nodes %#lx: %s (errno %d)", mode, nodes,
		    strerror(errno), errno);
}

static struct gmem_nodes file_nodes(int fd)
{
	struct gmem_nodes n;
	int r = __gmem_fdinfo_nodes(fd, &n);

	TEST_ASSERT(!r, "fdinfo gmem-nodes of fd %d: %s", fd, strerror(-r));
	return n;
}

static struct gmem_nodes module_nodes(void)
{
	struct gmem_nodes n;
	int r = __gmem_sysfs_nodes(&n);

	TEST_ASSERT(!r, "read " GMEM_SYSFS "/node_bytes: %s", strerror(-r));
	return n;
}

static unsigned long long node_used(int node)
{
	unsigned long long v;
	int r = __gmem_node_meminfo(node, "MemUsed", &v);

	TEST_ASSERT(!r, "MemUsed of node %d: %s", node, strerror(-r));
	return v;
}

/*
 * The node cases: the CPU the test runs on (pinned, so that the vCPU
 * thread's node is known), its node, and another node with memory.  The
 * module parameter blocks is put back by the parent, also after a
 * failed TEST_ASSERT, which exits the test's process.
 */
FIXTURE(numa) {
	char blocks[16];
	int cpu, cpu_node, other_node;
};

FIXTURE_SETUP(numa)
{
	unsigned long long mem;
	unsigned int cpu, node;
	cpu_set_t set;
	int n;

	self->blocks[0] = '\0';
	REQUIRE_GMEM_KVM();
	mem = gmem_nodes_with_memory();
	if (__builtin_popcountll(mem) < 2)
		SKIP(return, "fewer than two NUMA nodes with memory (has_memory: mask %#llx)", mem);
	TEST_ASSERT(!getcpu(&cpu, &node), "getcpu: %s", strerror(errno));
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	TEST_ASSERT(!sched_setaffinity(0, sizeof(set), &set), "pin to CPU %u: %s", cpu,
		    strerror(errno));
	if (!(mem & (1ULL << node)))
		SKIP(return, "node %u of CPU %u has no memory (has_memory: mask %#llx)", node,
		     cpu, mem);
	for (n = 0; n < GMEM_MAX_NODES; n++)
		if (n != (int)node && (mem & (1ULL << n)))
			break;
	self->cpu = cpu;
	self->cpu_node = node;
	self->other_node = n;
	gmem_blocks_param_get(self->blocks, sizeof(self->blocks));
	gmem_blocks_param_set("flag");
}

FIXTURE_TEARDOWN_PARENT(numa)
{
	if (self->blocks[0] && __gmem_write_file(GMEM_BLOCKS_PARAM, self->blocks))
		ksft_print_msg("teardown: could not put blocks=%s back\n", self->blocks);
}

#define BIND_BLOCKS	(16 * SZ_2M)
#define BIND_PAGES	SZ_1M

/*
 * File bound to one node, vCPU thread bound to the other (and running on
 * the CPU's node): every page of a blocks file and of a pages file that
 * the guest faults in is on the file's node; node_bytes grows there by
 * as much and not elsewhere, and so does that node's MemUsed (by at
 * least half of it: per-CPU page lists may hold a few MiB either way).
 * First the file on the other node, the thread on the CPU's; then the
 * other way round.  A module that allocated for the thread's policy
 * fails both, one that allocated on the CPU's node fails the first.
 */
TEST_F_TIMEOUT(numa, bind_follows_file_not_task, KVM_TEST_TIMEOUT)
{
	const uint64_t total = BIND_BLOCKS + BIND_PAGES;
	struct gmem_nodes fa, fb, before, after;
	unsigned long long used, used_delta;
	int c, fd1, fd2, fnode, tnode, n;
	unsigned int cpu, node;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	for (c = 0; c < 2; c++) {
		fnode = c ? self->cpu_node : self->other_node;
		tnode = c ? self->other_node : self->cpu_node;
		TH_LOG("file bound to node %d, vCPU thread bound to node %d, on CPU %d of node %d",
		       fnode, tnode, self->cpu, self->cpu_node);
		set_task_policy(MPOL_BIND, 1UL << tnode);
		fd1 = gmem_file(BIND_BLOCKS, GMEM_CREATE_BLOCKS);
		fd2 = gmem_file(BIND_PAGES, 0);
		set_file_policy(fd1, 0, BIND_BLOCKS, MPOL_BIND, 1UL << fnode);
		set_file_policy(fd2, 0, BIND_PAGES, MPOL_BIND, 1UL << fnode);
		vm = numa_vm(&vcpu, guest_touch, fd1, BIND_BLOCKS, fd2, BIND_PAGES);
		run_to_sync(vcpu, 1);
		before = module_nodes();
		used = node_used(fnode);
		run_to_sync(vcpu, 2);
		used_delta = node_used(fnode) - used;
		after = module_nodes();
		TEST_ASSERT(!getcpu(&cpu, &node), "getcpu: %s", strerror(errno));
		TEST_ASSERT(node == (unsigned int)self->cpu_node,
			    "the vCPU thread ran on node %u, expected node %d", node,
			    self->cpu_node);

		fa = file_nodes(fd1);
		fb = file_nodes(fd2);
		TH_LOG("gmem-nodes: blocks file N%d=%llu N%d=%llu, pages file N%d=%llu N%d=%llu; node %d MemUsed grew by %lld",
		       fnode, fa.bytes[fnode], tnode, fa.bytes[tnode], fnode,
		       fb.bytes[fnode], tnode, fb.bytes[tnode], fnode,
		       (long long)used_delta);
		EXPECT_EQ(BIND_BLOCKS, fdinfo_value(fd1, "gmem-allocated"));
		EXPECT_EQ(BIND_PAGES, fdinfo_value(fd2, "gmem-allocated"));
		EXPECT_EQ(BIND_BLOCKS, fa.bytes[fnode])
			TH_LOG("blocks file: gmem-nodes N%d expected %u bytes, got %llu",
			       fnode, BIND_BLOCKS, fa.bytes[fnode]);
		EXPECT_EQ(0, fa.bytes[tnode])
			TH_LOG("blocks file: gmem-nodes N%d expected 0 bytes, got %llu",
			       tnode, fa.bytes[tnode]);
		EXPECT_EQ(BIND_PAGES, fb.bytes[fnode])
			TH_LOG("pages file: gmem-nodes N%d expected %u bytes, got %llu",
			       fnode, BIND_PAGES, fb.bytes[fnode]);
		EXPECT_EQ(0, fb.bytes[tnode])
			TH_LOG("pages file: gmem-nodes N%d expected 0 bytes, got %llu",
			       tnode, fb.bytes[tnode]);
		for (n = 0; n < GMEM_MAX_NODES; n++) {
			uint64_t want = n == fnode ? total : 0;
			int64_t got = after.bytes[n] - before.bytes[n];

			EXPECT_EQ(want, got)
				TH_LOG("node_bytes N%d: expected to grow by %lu, grew by %ld",
				       n, want, got);
		}
		EXPECT_LE(total / 2, used_delta)
			TH_LOG("node %d MemUsed: expected to grow by about %lu, grew by %lld",
			       fnode, total, (long long)used_delta);
		run_to_sync(vcpu, 0);
		kvm_vm_free(vm);
		close(fd1);
		close(fd2);
		set_task_policy(MPOL_DEFAULT, 0);
	}
}

#define IL_SIZE		(8 * SZ_2M)

/*
 * MPOL_INTERLEAVE over both nodes, the vCPU thread bound to the CPU's:
 * the guest's 8 blocks are mapped with 8 2M entries, so each is one
 * piece on one node, and 4 of them are on each node.  A module that
 * interleaved pages would leave no block to map at 2M; one that ignored
 * the policy would put all 8 on the thread's node.
 */
TEST_F_TIMEOUT(numa, interleave_by_block, KVM_TEST_TIMEOUT)
{
	int nodes[2] = { self->cpu_node, self->other_node };
	struct kvm_vcpu *vcpu;
	struct gmem_nodes f;
	struct kvm_vm *vm;
	uint64_t m2;
	int fd, i;

	set_task_policy(MPOL_BIND, 1UL << self->cpu_node);
	fd = gmem_file(IL_SIZE, GMEM_CREATE_BLOCKS);
	set_file_policy(fd, 0, IL_SIZE, MPOL_INTERLEAVE,
			(1UL << self->cpu_node) | (1UL << self->other_node));
	vm = numa_vm(&vcpu, guest_touch, fd, IL_SIZE, -1, 0);
	run_to_sync(vcpu, 1);
	m2 = vm_get_stat(vm, "pages_2m");
	run_to_sync(vcpu, 2);
	m2 = vm_get_stat(vm, "pages_2m") - m2;
	f = file_nodes(fd);
	TH_LOG("%u blocks touched: %lu new 2M mappings; gmem-nodes N%d=%llu N%d=%llu",
	       IL_SIZE / SZ_2M, m2, nodes[0], f.bytes[nodes[0]], nodes[1],
	       f.bytes[nodes[1]]);
	EXPECT_EQ(IL_SIZE / SZ_2M, m2)
		TH_LOG("pages_2m: expected %u new 2M mappings, got %lu", IL_SIZE / SZ_2M, m2);
	EXPECT_EQ(IL_SIZE, fdinfo_value(fd, "gmem-allocated"));
	for (i = 0; i < 2; i++) {
		unsigned long long got = f.bytes[nodes[i]];

		EXPECT_EQ(IL_SIZE / 2, got)
			TH_LOG("gmem-nodes N%d: expected %u bytes (half the blocks), got %llu",
			       nodes[i], IL_SIZE / 2, got);
	}
	run_to_sync(vcpu, 0);
	kvm_vm_free(vm);
	close(fd);
}

/*
 * The trace cases: gmem_fault, gmem_invalidate, gmem_alloc and
 * gmem_punch recorded into a tracefs instance of the test's own, which
 * the parent removes, also after a failed TEST_ASSERT.
 */
FIXTURE(trace) {
	char blocks[16];
	struct gmem_trace t;
};

FIXTURE_SETUP(trace)
{
	static const char * const events[] = {
		"gmem_fault", "gmem_invalidate", "gmem_alloc", "gmem_punch",
	};
	char path[256];
	unsigned int i;
	int r;

	self->blocks[0] = '\0';
	REQUIRE_GMEM_KVM();
	r = __gmem_trace_setup(&self->t, "kvm_numa_test", 1024);
	if (r == -ENODEV)
		SKIP(return, "tracefs is absent (no /sys/kernel/tracing or /sys/kernel/debug/tracing with instances)");
	if (r == -ENOENT)
		SKIP(return, "tracefs has no gmem events (%s/events/gmem is absent)", self->t.root);
	TEST_ASSERT(!r, "make the tracefs instance kvm_numa_test: %s", strerror(-r));
	for (i = 0; i < ARRAY_SIZE(events); i++) {
		snprintf(path, sizeof(path), "%s/events/gmem/%s", self->t.root, events[i]);
		if (access(path, F_OK)) {
			gmem_trace_teardown(&self->t);
			SKIP(return, "gmem event %s is absent (%s)", events[i], path);
		}
		r = __gmem_trace_enable(&self->t, events[i], 1);
		TEST_ASSERT(!r, "enable %s in %s: %s", events[i], self->t.dir, strerror(-r));
	}
	gmem_blocks_param_get(self->blocks, sizeof(self->blocks));
	gmem_blocks_param_set("flag");
}

FIXTURE_TEARDOWN_PARENT(trace)
{
	gmem_trace_teardown(&self->t);
	if (self->blocks[0] && __gmem_write_file(GMEM_BLOCKS_PARAM, self->blocks))
		ksft_print_msg("teardown: could not put blocks=%s back\n", self->blocks);
}

static void clear_events(struct gmem_trace *t)
{
	int r = __gmem_trace_clear(t);

	TEST_ASSERT(!r, "clear %s/trace: %s", t->dir, strerror(-r));
}

static int read_events(struct gmem_trace *t, struct gmem_trace_event **evs)
{
	int n = __gmem_trace_read(t, evs);

	TEST_ASSERT(n >= 0, "read %s/trace: %s%s", t->dir, strerror(-n),
		    n == -EOVERFLOW ? " (events were lost)" : "");
	return n;
}

static bool is_event(const struct gmem_trace_event *e, const char *name,
		     unsigned long long id)
{
	return !strcmp(e->name, name) && (e->has & GMEM_TF_ID) && e->id == id;
}

#define FAULT_FIELDS	(GMEM_TF_ID | GMEM_TF_INDEX | GMEM_TF_ORDER | GMEM_TF_ERROR | \
			 GMEM_TF_GFN | GMEM_TF_NID)
#define INVAL_FIELDS	(GMEM_TF_ID | GMEM_TF_START | GMEM_TF_END)

/*
 * The gmem_fault events of file @id: every one with error 0 and order
 * @order at a page offset below @pages that is a multiple of @stride,
 * and each such offset at least once (a fault may be retried, and then
 * served twice).  The same for gmem_alloc, exactly once each, on a node
 * with memory.
 */
static void expect_faults(struct __test_metadata *_metadata,
			  const struct gmem_trace_event *ev, int n,
			  unsigned long long id, unsigned long long gpa,
			  long long pages, long long stride, long long order)
{
	const unsigned int afields = GMEM_TF_ID | GMEM_TF_INDEX | GMEM_TF_ORDER | GMEM_TF_NID;
	unsigned long long mem = gmem_nodes_with_memory();
	int faults[BLOCK_PAGES] = { 0 }, allocs[BLOCK_PAGES] = { 0 };
	long long k, slots = pages / stride;
	int i;

	ASSERT_GE(BLOCK_PAGES, slots);
	for (i = 0; i < n; i++) {
		const struct gmem_trace_event *e = &ev[i];
		bool at = e->index >= 0 && e->index < pages && !(e->index % stride);

		if (is_event(e, "gmem_fault", id)) {
			EXPECT_EQ(FAULT_FIELDS, e->has & FAULT_FIELDS)
				TH_LOG("gmem_fault id=%llu index=%lld: fields id, index, order, error expected (mask %#x), got mask %#x",
				       id, e->index, FAULT_FIELDS, e->has);
			EXPECT_TRUE(at)
				TH_LOG("gmem_fault id=%llu: index expected a multiple of %lld below %lld, got %lld",
				       id, stride, pages, e->index);
			EXPECT_EQ(order, e->order)
				TH_LOG("gmem_fault id=%llu index=%lld: order expected %lld, got %lld",
				       id, e->index, order, e->order);
			EXPECT_EQ(0, e->error)
				TH_LOG("gmem_fault id=%llu index=%lld: error expected 0, got %lld",
				       id, e->index, e->error);
			/* The memslot maps the file from offset 0 at @gpa. */
			EXPECT_EQ(gpa / PAGE_SIZE + e->index, e->gfn)
				TH_LOG("gmem_fault id=%llu index=%lld: gfn expected %#llx, got %#llx",
				       id, e->index, gpa / PAGE_SIZE + e->index, e->gfn);
			EXPECT_TRUE(e->nid >= 0 && e->nid < GMEM_MAX_NODES &&
				    (mem & (1ULL << e->nid)))
				TH_LOG("gmem_fault id=%llu index=%lld: nid expected a node with memory (mask %#llx), got %lld",
				       id, e->index, mem, e->nid);
			if (at)
				faults[e->index / stride]++;
		} else if (is_event(e, "gmem_alloc", id)) {
			EXPECT_EQ(afields, e->has & afields)
				TH_LOG("gmem_alloc id=%llu: fields id, index, order, nid expected (mask %#x), got mask %#x",
				       id, afields, e->has);
			EXPECT_TRUE(at && e->order == order)
				TH_LOG("gmem_alloc id=%llu: expected order %lld at a multiple of %lld below %lld, got order %lld at %lld",
				       id, order, stride, pages, e->order, e->index);
			EXPECT_TRUE(e->nid >= 0 && e->nid < GMEM_MAX_NODES &&
				    (mem & (1ULL << e->nid)))
				TH_LOG("gmem_alloc id=%llu index=%lld: nid expected a node with memory (mask %#llx), got %lld",
				       id, e->index, mem, e->nid);
			if (at)
				allocs[e->index / stride]++;
		}
	}
	for (k = 0; k < slots; k++) {
		EXPECT_LE(1, faults[k])
			TH_LOG("gmem_fault id=%llu index=%lld order=%lld error=0: expected at least one, got none",
			       id, k * stride, order);
		EXPECT_EQ(1, allocs[k])
			TH_LOG("gmem_alloc id=%llu index=%lld order=%lld: expected one, got %d",
			       id, k * stride, order, allocs[k]);
	}
}

#define FT_BLOCKS	(4 * SZ_2M)
#define FT_PAGES	(16 * PAGE_SIZE)

/*
 * A guest touches a blocks file (4 blocks) and a pages file (16 pages,
 * without GMEM_CREATE_BLOCKS under blocks=flag): one gmem_fault per block
 * at its first page with order 9 (KVM maps each with a 2M entry, as
 * pages_2m shows) and one gmem_alloc of the block; one gmem_fault and one
 * gmem_alloc per page with order 0 for the other file; the ids tell the
 * files apart.
 */
TEST_F_TIMEOUT(trace, fault_events, KVM_TEST_TIMEOUT)
{
	unsigned long long id1, id2;
	struct gmem_trace_event *ev;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd1, fd2, n;
	uint64_t m2;

	fd1 = gmem_file(FT_BLOCKS, GMEM_CREATE_BLOCKS);
	fd2 = gmem_file(FT_PAGES, 0);
	id1 = fdinfo_value(fd1, "gmem-id");
	id2 = fdinfo_value(fd2, "gmem-id");
	TEST_ASSERT(id1 != id2, "two files, one gmem-id %llu", id1);
	vm = numa_vm(&vcpu, guest_touch, fd1, FT_BLOCKS, fd2, FT_PAGES);
	run_to_sync(vcpu, 1);
	clear_events(&self->t);
	m2 = vm_get_stat(vm, "pages_2m");
	run_to_sync(vcpu, 2);
	m2 = vm_get_stat(vm, "pages_2m") - m2;
	EXPECT_EQ(FT_BLOCKS / SZ_2M, m2)
		TH_LOG("pages_2m: expected %u new 2M mappings, got %lu", FT_BLOCKS / SZ_2M, m2);
	n = read_events(&self->t, &ev);
	TH_LOG("%d gmem events for %u blocks and %u pages touched", n,
	       FT_BLOCKS / SZ_2M, (unsigned int)(FT_PAGES / PAGE_SIZE));
	expect_faults(_metadata, ev, n, id1, GPA1, FT_BLOCKS / PAGE_SIZE, BLOCK_PAGES, 9);
	expect_faults(_metadata, ev, n, id2, GPA2, FT_PAGES / PAGE_SIZE, 1, 0);
	free(ev);
	run_to_sync(vcpu, 0);
	kvm_vm_free(vm);
	close(fd1);
	close(fd2);
}

/* GMEM_SET_ATTRIBUTES of page @page of @fd: @attrs of @mask. */
static void set_attr(int fd, int page, uint64_t attrs, uint64_t mask)
{
	struct gmem_attributes a = {
		.offset = page * PAGE_SIZE,
		.size = PAGE_SIZE,
		.attributes = attrs,
		.mask = mask,
	};

	TEST_ASSERT(!ioctl(fd, GMEM_SET_ATTRIBUTES, &a),
		    "GMEM_SET_ATTRIBUTES page %d %#lx of %#lx: %s (errno %d)", page, attrs,
		    mask, strerror(errno), errno);
}

/* The guest writes pages 0-3 of GPA1 in order, then is done. */
static void guest_write4(void)
{
	touch(GPA1, 4 * PAGE_SIZE);
	GUEST_DONE();
}

/*
 * Run the vCPU into a memory fault exit on page @page with errno @err,
 * and find at least one gmem_fault for it with error -@err and no served
 * one; returns the events (free() them).
 */
static struct gmem_trace_event *expect_refused(struct __test_metadata *_metadata,
					       struct gmem_trace *t,
					       struct kvm_vcpu *vcpu,
					       unsigned long long id, int page,
					       int err, int *count)
{
	struct gmem_trace_event *ev;
	int r, n, i, refused = 0;

	r = _vcpu_run(vcpu);
	TEST_ASSERT(r == -1 && errno == err,
		    "KVM_RUN into page %d: expected -1 with errno %d (%s), got %d with errno %d (%s)",
		    page, err, strerror(err), r, errno, strerror(errno));
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MEMORY_FAULT);
	TEST_ASSERT_EQ(vcpu->run->memory_fault.gpa, GPA1 + page * PAGE_SIZE);
	n = read_events(t, &ev);
	for (i = 0; i < n; i++) {
		if (!is_event(&ev[i], "gmem_fault", id) || ev[i].index != page)
			continue;
		EXPECT_EQ(-err, ev[i].error)
			TH_LOG("gmem_fault id=%llu index=%d: error expected %d (-%s), got %lld (order %lld)",
			       id, page, -err, err == EFAULT ? "EFAULT" : "EHWPOISON",
			       ev[i].error, ev[i].order);
		EXPECT_EQ(-1, ev[i].nid)
			TH_LOG("gmem_fault id=%llu index=%d, refused: nid expected -1, got %lld",
			       id, page, ev[i].nid);
		refused += ev[i].error == -err;
	}
	EXPECT_LE(1, refused)
		TH_LOG("gmem_fault id=%llu index=%d error=%d: expected at least one, got none",
		       id, page, -err);
	*count = n;
	return ev;
}

/* At least one gmem_fault of @id at @page with error 0 and order 0. */
static void expect_served(struct __test_metadata *_metadata,
			  const struct gmem_trace_event *ev, int n,
			  unsigned long long id, int page)
{
	int i, served = 0;

	for (i = 0; i < n; i++)
		if (is_event(&ev[i], "gmem_fault", id) && ev[i].index == page)
			served += !ev[i].error && !ev[i].order;
	EXPECT_LE(1, served)
		TH_LOG("gmem_fault id=%llu index=%d order=0 error=0: expected at least one, got none",
		       id, page);
}

/*
 * Faults gmem refuses, one page at a time: a NOALLOC hole (page 0) and a
 * USERFAULT page (1) with -EFAULT (-14), a POISON page (2) with
 * -EHWPOISON; KVM_RUN fails with the same errno.  Once the VMM served
 * each (allocated the hole, cleared the bit), the next run's trace shows
 * the fault served (error 0), and page 3, a plain hole, allocated.
 */
TEST_F_TIMEOUT(trace, fault_error_events, KVM_TEST_TIMEOUT)
{
	struct gmem_trace_event *ev;
	struct kvm_vcpu *vcpu;
	unsigned long long id;
	struct kvm_vm *vm;
	int fd, n, i, allocs = 0;

	fd = gmem_file(4 * PAGE_SIZE, 0);
	id = fdinfo_value(fd, "gmem-id");
	vm = numa_vm(&vcpu, guest_write4, fd, 4 * PAGE_SIZE, -1, 0);
	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, PAGE_SIZE, 2 * PAGE_SIZE),
		    "fallocate pages 1-2: %s", strerror(errno));
	set_attr(fd, 0, GMEM_ATTR_NOALLOC, GMEM_ATTR_NOALLOC);
	set_attr(fd, 1, GMEM_ATTR_USERFAULT, GMEM_ATTR_USERFAULT);
	set_attr(fd, 2, GMEM_ATTR_POISON, GMEM_ATTR_POISON);

	clear_events(&self->t);
	ev = expect_refused(_metadata, &self->t, vcpu, id, 0, EFAULT, &n);
	free(ev);
	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE), "fallocate page 0: %s",
		    strerror(errno));

	clear_events(&self->t);
	ev = expect_refused(_metadata, &self->t, vcpu, id, 1, EFAULT, &n);
	expect_served(_metadata, ev, n, id, 0);
	free(ev);
	set_attr(fd, 1, 0, GMEM_ATTR_USERFAULT);

	clear_events(&self->t);
	ev = expect_refused(_metadata, &self->t, vcpu, id, 2, EHWPOISON, &n);
	expect_served(_metadata, ev, n, id, 1);
	free(ev);
	set_attr(fd, 2, 0, GMEM_ATTR_POISON);

	clear_events(&self->t);
	run_to_sync(vcpu, 0);
	n = read_events(&self->t, &ev);
	expect_served(_metadata, ev, n, id, 2);
	expect_served(_metadata, ev, n, id, 3);
	for (i = 0; i < n; i++)
		if (is_event(&ev[i], "gmem_alloc", id))
			allocs += ev[i].index == 3 && !ev[i].order;
	EXPECT_EQ(1, allocs)
		TH_LOG("gmem_alloc id=%llu index=3 order=0: expected one, got %d", id, allocs);
	free(ev);
	kvm_vm_free(vm);
	close(fd);
}

/* Stage 1: both blocks of GPA1 written. */
static void guest_touch_then_stop(uint64_t size)
{
	touch(GPA1, size);
	GUEST_SYNC(1);
	GUEST_DONE();
}

/*
 * A gmem_invalidate of file @id for [@start, @end) exactly, or for the
 * whole blocks around it (gmem widens the zap of a page in a whole block
 * to the block, so that no fault in flight maps a block being changed).
 */
static void expect_invalidate(struct __test_metadata *_metadata,
			      const struct gmem_trace_event *ev, int n,
			      unsigned long long id, long long start, long long end,
			      const char *what)
{
	long long lo = start / BLOCK_PAGES * BLOCK_PAGES;
	long long hi = (end + BLOCK_PAGES - 1) / BLOCK_PAGES * BLOCK_PAGES;
	int i, found = 0;

	for (i = 0; i < n; i++) {
		if (!is_event(&ev[i], "gmem_invalidate", id))
			continue;
		EXPECT_EQ(INVAL_FIELDS, ev[i].has & INVAL_FIELDS)
			TH_LOG("%s: gmem_invalidate fields id, start, end expected (mask %#x), got mask %#x",
			       what, INVAL_FIELDS, ev[i].has);
		TH_LOG("%s: gmem_invalidate id=%llu start=%lld end=%lld", what, id,
		       ev[i].start, ev[i].end);
		found += (ev[i].start == start && ev[i].end == end) ||
			 (ev[i].start == lo && ev[i].end == hi);
	}
	EXPECT_LE(1, found)
		TH_LOG("%s: expected a gmem_invalidate id=%llu of [%lld, %lld) or [%lld, %lld), got none",
		       what, id, start, end, lo, hi);
}

#define INV_SIZE	(2 * SZ_2M)

/*
 * The guest maps two blocks at 2M.  A punch of page 5 fires a
 * gmem_invalidate covering it (and a gmem_punch of [5, 6) taking one
 * page), and KVM drops the first block's 2M mapping; setting USERFAULT on
 * page 515 fires one covering that page, and the second block's mapping
 * goes too.  A module that zapped without the event, or emitted it for
 * another range or file, fails.
 */
TEST_F_TIMEOUT(trace, invalidate_events, KVM_TEST_TIMEOUT)
{
	struct gmem_trace_event *ev;
	struct kvm_vcpu *vcpu;
	unsigned long long id;
	int fd, n, i, punches = 0;
	struct kvm_vm *vm;
	uint64_t m2;

	fd = gmem_file(INV_SIZE, GMEM_CREATE_BLOCKS);
	id = fdinfo_value(fd, "gmem-id");
	vm = numa_vm(&vcpu, guest_touch_then_stop, fd, INV_SIZE, -1, 0);
	run_to_sync(vcpu, 1);
	m2 = vm_get_stat(vm, "pages_2m");
	TEST_ASSERT(m2 >= INV_SIZE / SZ_2M, "pages_2m %lu after the guest touched %u blocks",
		    m2, INV_SIZE / SZ_2M);

	clear_events(&self->t);
	TEST_ASSERT(!fallocate(fd, GMEM_PUNCH, 5 * PAGE_SIZE, PAGE_SIZE), "punch page 5: %s",
		    strerror(errno));
	EXPECT_EQ(m2 - 1, vm_get_stat(vm, "pages_2m"))
		TH_LOG("pages_2m after the punch: expected %lu, got %lu", m2 - 1,
		       vm_get_stat(vm, "pages_2m"));
	n = read_events(&self->t, &ev);
	expect_invalidate(_metadata, ev, n, id, 5, 6, "punch of page 5");
	for (i = 0; i < n; i++) {
		if (!is_event(&ev[i], "gmem_punch", id))
			continue;
		punches++;
		EXPECT_TRUE(ev[i].start == 5 && ev[i].end == 6 && ev[i].ret == 1)
			TH_LOG("gmem_punch: expected start=5 end=6 ret=1, got start=%lld end=%lld ret=%lld",
			       ev[i].start, ev[i].end, ev[i].ret);
	}
	EXPECT_EQ(1, punches)
		TH_LOG("gmem_punch id=%llu: expected one, got %d", id, punches);
	free(ev);

	clear_events(&self->t);
	set_attr(fd, BLOCK_PAGES + 3, GMEM_ATTR_USERFAULT, GMEM_ATTR_USERFAULT);
	EXPECT_EQ(m2 - 2, vm_get_stat(vm, "pages_2m"))
		TH_LOG("pages_2m after USERFAULT: expected %lu, got %lu", m2 - 2,
		       vm_get_stat(vm, "pages_2m"));
	n = read_events(&self->t, &ev);
	expect_invalidate(_metadata, ev, n, id, BLOCK_PAGES + 3, BLOCK_PAGES + 4,
			  "USERFAULT on page 515");
	free(ev);
	kvm_vm_free(vm);
	close(fd);
}

TEST_HARNESS_MAIN
