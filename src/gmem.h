/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Declarations shared by the files of the gmem module.
 */
#ifndef _GMEM_H
#define _GMEM_H

#include <linux/fs.h>
#include <linux/kvm_host.h>
#include <linux/maple_tree.h>
#include <linux/mempolicy.h>
#include <linux/rwsem.h>
#include <linux/xarray.h>
#include <kunit/visibility.h>

#include <uapi/gmem.h>

struct kvm;
struct mem_cgroup;
struct seq_file;

/**
 * struct gmem_store - the pages of one gmem file
 * @pages: folios indexed by page offset in the file: single pages, and
 *	the pages of split blocks.  The store holds one reference per page.
 * @blocks: packed blocks, indexed by page offset >> GMEM_BLOCK_ORDER:
 *	the folio of the block's first page; the block's 512 pages (one
 *	reference each) are in no entry of @pages.
 * @nr_pages: number of live pages in @pages: the pages the file has.
 * @nr_held: number of held pages in @pages: zeroed pages of partly
 *	punched blocks, holes to the file, kept for the block to be whole
 *	again (see gmem_store.c).
 * @memcg: memory cgroup charged for the pages and xarray nodes (NULL:
 *	the allocating task's).
 * @giants: for each naturally aligned 1 GiB range of the file (index
 *	>> GMEM_GIANT_ORDER) whose pages are all live and come from one
 *	physically contiguous 1 GiB allocation: xa_mk_value() of the
 *	allocation's first pfn >> GMEM_GIANT_ORDER.
 * @giant_pfns: for each 1 GiB allocation (first pfn >> GMEM_GIANT_ORDER)
 *	some of whose pages the store holds: xa_mk_value() of how many.
 *	Such pages are not charged to @memcg (see gmem_store.c).
 * @no_direct_map: every page the store holds is absent from the kernel's
 *	direct map (see gmem_store.c).  Set before the first insertion.
 * @policy: the NUMA memory policy of ranges of page offsets (empty: the
 *	allocating thread's own policy).
 * @node_pages: for each node id below nr_node_ids, the pages (live and
 *	held) the store holds on that node.
 * @id: a number that names the store in trace events (the file's inode
 *	number); the store does not use it otherwise.
 *
 * Lookups and insertions may run concurrently (the xa_lock serialises
 * insertions); removal must not run concurrently with either: callers
 * hold their file's lock shared to look up or insert, exclusively to
 * remove.
 */
struct gmem_store {
	struct xarray pages;
	struct xarray blocks;
	atomic_long_t nr_pages;
	atomic_long_t nr_held;
	struct mem_cgroup *memcg;
	struct xarray giants;
	struct xarray giant_pfns;
	bool no_direct_map;
	struct shared_policy policy;
	atomic_long_t *node_pages;
	u64 id;
};

/* Naturally aligned 2 MiB blocks, allocated where they can be. */
#define GMEM_BLOCK_ORDER	(21 - PAGE_SHIFT)
#define GMEM_BLOCK_PAGES	BIT(GMEM_BLOCK_ORDER)
/* Naturally aligned 1 GiB ranges from one contiguous allocation. */
#define GMEM_GIANT_ORDER	(30 - PAGE_SHIFT)
#define GMEM_GIANT_PAGES	BIT(GMEM_GIANT_ORDER)
#define GMEM_GIANT_BLOCKS	(GMEM_GIANT_PAGES / GMEM_BLOCK_PAGES)

int gmem_store_init(struct gmem_store *s, struct mem_cgroup *memcg);
unsigned long gmem_store_totals(unsigned long *held);
unsigned long gmem_store_node_pages(struct gmem_store *s, int nid);
int gmem_store_set_policy(struct gmem_store *s, pgoff_t start, pgoff_t end,
			  struct mempolicy *pol);
struct mempolicy *gmem_store_policy(struct gmem_store *s, pgoff_t index);
bool gmem_store_on_nodes(struct gmem_store *s, pgoff_t start, pgoff_t end,
			 const nodemask_t *nodes);
unsigned long gmem_store_unmapped(void);
int gmem_store_insert_block(struct gmem_store *s, pgoff_t index, pgoff_t live);
unsigned long gmem_store_release_held(struct gmem_store *s);
void gmem_store_set_giant_limit(long n);
long gmem_store_giant_allocs(void);
pgoff_t gmem_store_giant(struct gmem_store *s, pgoff_t index);
unsigned long gmem_store_nr_giants(struct gmem_store *s);
pgoff_t gmem_store_block(struct gmem_store *s, pgoff_t index);
bool gmem_store_hwpoisoned(struct gmem_store *s, pgoff_t start, pgoff_t end);
bool gmem_store_hand_out(struct gmem_store *s, pgoff_t start, pgoff_t end);
void gmem_store_destroy(struct gmem_store *s);
struct folio *gmem_store_get(struct gmem_store *s, pgoff_t index, bool alloc);
int gmem_store_populate(struct gmem_store *s, pgoff_t start, pgoff_t end);
int gmem_store_populate_threads(struct gmem_store *s, pgoff_t start,
				pgoff_t end, unsigned int threads);
long gmem_store_remove(struct gmem_store *s, pgoff_t start, pgoff_t end);
void gmem_store_set_guest(struct gmem_store *s, pgoff_t index);
bool gmem_store_test_guest(struct gmem_store *s, pgoff_t index);

/**
 * struct gmem_attrs - the GMEM_ATTR_* attributes of the pages of one file
 * @runs: maximal runs of pages with the same non-zero attributes: one
 *	range entry per run, its value xa_mk_value(attributes); pages
 *	without attributes are gaps.  Two adjacent runs never have the
 *	same attributes.
 * @lock: the external lock of @runs (the file's lock): held shared to
 *	read, exclusively to change.
 * @memcg: memory cgroup charged for the nodes of @runs (NULL: the
 *	caller's).
 */
struct gmem_attrs {
	struct maple_tree runs;
	struct rw_semaphore *lock;
	struct mem_cgroup *memcg;
};

void gmem_attrs_init(struct gmem_attrs *a, struct rw_semaphore *lock,
		     struct mem_cgroup *memcg);
void gmem_attrs_destroy(struct gmem_attrs *a);
u64 gmem_attrs_get(struct gmem_attrs *a, pgoff_t index, pgoff_t *last);
int gmem_attrs_set(struct gmem_attrs *a, pgoff_t start, pgoff_t end,
		   u64 attrs, u64 mask);
int gmem_attrs_check(const struct gmem_attributes *args, bool set);

/**
 * struct gmem_file - state of one gmem file (one inode, one struct file)
 * @store: the pages.
 * @lock: taken shared to allocate, look up or write pages (guest faults
 *	and GMEM_WRITE too), exclusively to remove pages (held ones too) or
 *	change attributes, which happens inside kvm_gmem_invalidate() so
 *	that no guest maps the pages meanwhile.  Never held when calling
 *	into KVM otherwise.  A page's lock (folio_lock()) orders GMEM_WRITE
 *	into it with faults handing it to a guest.
 * @size: size in bytes, fixed at creation.
 * @flags: GMEM_CREATE_* flags the file was created with.
 * @binding: KVM's state of the file: its VM and memslots.  Only KVM
 *	writes it (see gmem_kvm_hooks.c).
 * @rcu: frees the struct after a grace period: the inode, whose i_private
 *	points here until release, can outlive the file (O_PATH fds).
 * @attrs: the attributes of the pages, under @lock: guest faults read
 *	them with @lock shared, GMEM_SET_ATTRIBUTES changes them with @lock
 *	held exclusively between zapping the guest's mappings and letting
 *	faults map the range again.
 * @node: in the list of all files, for the shrinker of held pages.
 */
struct gmem_file {
	struct gmem_store store;
	struct rw_semaphore lock;
	loff_t size;
	u64 flags;
	struct kvm_gmem_binding binding;
	struct rcu_head rcu;
	struct gmem_attrs attrs;
	struct list_head node;
};

bool gmem_is_gmem_file(struct file *file);
bool gmem_release_held(struct gmem_file *gf);
struct file *gmem_file_create(loff_t size, u64 flags);
loff_t gmem_max_file_size(void);

/* gmem_numa.c */
long gmem_set_mempolicy(struct file *file, struct gmem_mempolicy __user *uarg);
long gmem_get_mempolicy(struct file *file, struct gmem_mempolicy __user *uarg);
int gmem_show_nodes(struct seq_file *m, char *buf, struct gmem_store *s);

/* gmem_kvm_hooks.c */
int gmem_kvm_init(void);
void gmem_kvm_ready_for_takeover(void);
void gmem_kvm_exit(void);
int gmem_kvm_invalidate(struct gmem_file *gf, pgoff_t start, pgoff_t end,
			int (*change)(void *data), void *data);
unsigned long gmem_kvm_takeover_counts(unsigned long *declined);
void gmem_kvm_show_vm(struct seq_file *m, struct gmem_file *gf);
long gmem_kvm_release_vm(struct gmem_file *gf, struct gmem_release_vm __user *uarg);

VISIBLE_IF_KUNIT struct folio *gmem_store_insert_new(struct gmem_store *s,
						     pgoff_t index);
VISIBLE_IF_KUNIT bool gmem_kvm_vm_type_ok(unsigned long type);
VISIBLE_IF_KUNIT bool gmem_kvm_takeover_ok(unsigned long type);
VISIBLE_IF_KUNIT long gmem_dev_ioctl(struct file *file, unsigned int cmd,
				     unsigned long arg);
VISIBLE_IF_KUNIT int gmem_page_range(loff_t size, u64 offset, u64 len,
				     pgoff_t *start, pgoff_t *end);
VISIBLE_IF_KUNIT int gmem_falloc_range(loff_t size, int mode, loff_t offset,
				       loff_t len, pgoff_t *start, pgoff_t *end);

#endif /* _GMEM_H */
