// SPDX-License-Identifier: GPL-2.0-only
/*
 * The page store of a gmem file: an xarray of folios indexed by page
 * offset in the file.
 *
 * Pages are allocated zeroed, charged to the file's memory cgroup, and
 * are never put on an LRU list, swapped or migrated: they are plain
 * unmovable kernel allocations that only the store references (plus
 * short-lived references of KVM faults in flight).  Every folio is order
 * 0 today; the xarray entry carries the order (multi-index entries) so
 * that huge folios can be stored later without changing the callers.
 *
 * A naturally aligned 2 MiB range is allocated as one physically
 * contiguous block where the page allocator has one and the caller asks
 * for it (populate, and guest faults and GMEM_WRITE on files with
 * blocks): the block is split into order-0 pages at once, each with its
 * own reference and memcg charge.  A block whose pages are all live may
 * be mapped by KVM with one 2M entry (gmem_store_block()).
 *
 * A block is kept in one of two forms.  Packed: one entry in @blocks,
 * indexed by block number, pointing at the block's first page; nothing
 * in @pages for its range.  This is how blocks are inserted whole, and
 * costs about 5 KiB of xarray nodes per GiB instead of 2.4 MiB.  Split:
 * 512 entries in @pages, its first index marked GMEM_BLOCK for as long
 * as all its pages stay in the store; this is how a block lives when its
 * pages differ (held pages, a page handed to a guest alone).  Unpacking
 * allocates xarray nodes for 512 entries; packing happens when a split
 * block is whole again and handed to a guest whole.  Lookups try @blocks
 * first, then @pages, both O(1); a block changes form under the xa_lock
 * of @pages, storing the new form before erasing the old, so that an RCU
 * lookup always finds the page.
 *
 * Punching part of a block does not free those pages: they are zeroed
 * and stay in the store as held pages (GMEM_HELD), which every lookup
 * treats as holes and the next allocation of the same index takes back,
 * so that the block becomes whole again and KVM can map it at 2M again.
 * Held pages are freed when the rest of their block goes, and on demand
 * (gmem_store_release_held(): memory pressure).  They stay charged to
 * the file's memcg, and are counted apart from the live pages.
 *
 * A naturally aligned 1 GiB range populated by fallocate(2) may come from
 * one physically contiguous 1 GiB allocation (alloc_contig_range(): the
 * page allocator cannot hand out anything above 4 MiB), stored as 512
 * blocks and recorded in @giants while all its pages are live, so that
 * KVM may map it with one 1G entry.  6.12 exports no way for a module to
 * charge such pages to a memcg: like hugetlb's gigantic pages they are
 * not charged, and a module-wide limit (gmem_store_set_giant_limit(),
 * default 0: none) caps how many such allocations the stores may hold
 * pages of at once (@giant_pfns counts them).  Their xarray nodes are
 * charged as usual.
 *
 * Nothing is ever taken out of the store while its file's lock is held
 * shared: lookups and insertions run concurrently, and what one of them
 * published stays until a removal, which holds the lock exclusively and
 * zaps guest mappings first.  So a block is published whole or not at
 * all (gmem_store_insert_block()), and a failing populate keeps what it
 * allocated.
 *
 * A store made without the direct map (@no_direct_map) keeps every page
 * it holds, live or held, out of the kernel's direct map, so that no
 * host kernel code can read a guest's private memory through it, not
 * even speculatively.  A page is unmapped once it is allocated (zeroed)
 * and the TLB is flushed before the page is published; it is mapped
 * again before it goes back to the page allocator, with its contents.
 * A block is unmapped and mapped again as one range, which changes its
 * 2 MiB direct-map entry in place (a 1 GiB range, block by block, splits
 * a 1 GiB entry into 2 MiB ones).  Changing part of a 2 MiB entry splits
 * it into 4 KiB entries, which takes a page table: that only happens
 * where the operation may fail (allocating a page, giving held pages
 * back, freeing part of a block with a memory error), never when a whole
 * block or a page whose entry is split already goes back, so that
 * freeing needs no memory.  Held pages are zeroed through a temporary
 * mapping of their own, so that a punch of part of a block leaves its
 * entry whole.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpuset.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mempolicy.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/set_memory.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>
#include <asm/tlbflush.h>

#include "gmem.h"
#include "gmem_trace.h"

#define GMEM_GFP (GFP_HIGHUSER | __GFP_ZERO | __GFP_ACCOUNT | \
		  __GFP_RETRY_MAYFAIL | __GFP_NOWARN)
/* Xarray nodes: past the memcg limit, fail with -ENOMEM, never OOM-kill. */
#define GMEM_NODE_GFP (GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

/*
 * Marks the first index of GMEM_BLOCK_PAGES pages that are in the store
 * (live or held), in order and physically contiguous, from one naturally
 * aligned allocation.  Taking any of them out of the store clears it.
 */
#define GMEM_BLOCK XA_MARK_0

/*
 * Marks a held page: a zeroed page of a block that the file does not
 * have (a hole to every lookup), kept so that the block can become whole
 * again.  Only pages of blocks (GMEM_BLOCK) are held.
 */
#define GMEM_HELD XA_MARK_1

/*
 * Marks a page that was handed to a guest (gmem_store_set_guest()): the
 * guest may map it, so its content must not change under the guest.
 * Removing or holding the page clears the mark.
 */
#define GMEM_GUEST XA_MARK_2

/*
 * Unpacking a block for a punch, which must not fail: its few xarray
 * nodes are charged to the memcg past its limit if need be (__GFP_HIGH
 * with __GFP_RETRY_MAYFAIL: no memcg OOM kill), and the page allocator
 * retries until it has them.
 */
#define GMEM_UNPACK_GFP (GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_HIGH | \
			 __GFP_NOFAIL | __GFP_NOWARN)

/* Opportunistic: a free block or none, no reclaim or compaction for it. */
#define GMEM_BLOCK_GFP ((GFP_HIGHUSER | __GFP_ZERO | __GFP_ACCOUNT | \
			 __GFP_NORETRY | __GFP_NOWARN) & ~__GFP_DIRECT_RECLAIM)

/* Live and held pages of every store, for gmem_store_totals(). */
static atomic_long_t gmem_total_pages = ATOMIC_LONG_INIT(0);
static atomic_long_t gmem_total_held = ATOMIC_LONG_INIT(0);
/* Pages (live and held) of every store on each node. */
static atomic_long_t gmem_node_total[MAX_NUMNODES];

/*
 * page->private of the pages of a 1 GiB allocation while the store holds
 * them (nothing else uses it for these unmovable, non-LRU pages): pages
 * the same file allocates later from the same physical GiB, once some
 * went back to the page allocator, are not counted as its.
 */
#define GMEM_GIANT_TAG	1UL

/* 1 GiB allocations the stores hold pages of, and how many may be. */
static atomic_long_t gmem_giant_allocs = ATOMIC_LONG_INIT(0);
static long gmem_giant_limit;

/**
 * gmem_store_set_giant_limit() - how many 1 GiB allocations may be held
 * @n: the limit for all stores together; 0: populate allocates no 1 GiB
 *	range.  Lowering it frees nothing.
 */
void gmem_store_set_giant_limit(long n)
{
	WRITE_ONCE(gmem_giant_limit, n);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_set_giant_limit);

/**
 * gmem_store_giant_allocs() - 1 GiB allocations the stores hold pages of
 *
 * Return: their number, at most the limit when they were made.
 */
long gmem_store_giant_allocs(void)
{
	return atomic_long_read(&gmem_giant_allocs);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_giant_allocs);

static void gmem_store_count(struct gmem_store *s, long live, long held)
{
	if (live) {
		atomic_long_add(live, &s->nr_pages);
		atomic_long_add(live, &gmem_total_pages);
	}
	if (held) {
		atomic_long_add(held, &s->nr_held);
		atomic_long_add(held, &gmem_total_held);
	}
}

/*
 * Count @nr pages from @page on (one node) in or out of the store: at
 * publication, and when they go back to the page allocator.
 */
static void gmem_store_count_node(struct gmem_store *s, struct page *page,
				  long nr)
{
	int nid = page_to_nid(page);

	atomic_long_add(nr, &s->node_pages[nid]);
	atomic_long_add(nr, &gmem_node_total[nid]);
}

/*
 * Page @page and the (1 << @order) - 1 after it were published at @index:
 * count them on their node and tell the trace.
 */
static void gmem_store_published(struct gmem_store *s, pgoff_t index,
				 struct page *page, unsigned int order)
{
	gmem_store_count_node(s, page, 1L << order);
	trace_gmem_alloc(s->id, index, order, page_to_nid(page));
}

/**
 * gmem_store_node_pages() - pages a store holds on a node
 * @s: the store, or NULL for all stores together
 * @nid: a node id below nr_node_ids
 *
 * Return: the number of pages, live and held.
 */
unsigned long gmem_store_node_pages(struct gmem_store *s, int nid)
{
	return atomic_long_read(s ? &s->node_pages[nid] : &gmem_node_total[nid]);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_node_pages);

/**
 * gmem_store_totals() - pages of all stores together
 * @held: set to the number of held pages
 *
 * Return: the number of live pages.
 */
unsigned long gmem_store_totals(unsigned long *held)
{
	*held = atomic_long_read(&gmem_total_held);
	return atomic_long_read(&gmem_total_pages);
}

/* Pages of all stores that are out of the direct map. */
static atomic_long_t gmem_total_unmapped = ATOMIC_LONG_INIT(0);

/**
 * gmem_store_unmapped() - pages that stores keep out of the direct map
 *
 * Return: their number, for all stores together.
 */
unsigned long gmem_store_unmapped(void)
{
	return atomic_long_read(&gmem_total_unmapped);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_unmapped);

/* Flush the TLB entries of the direct map of @nr pages from @page. */
static void gmem_dm_flush(struct page *page, unsigned long nr)
{
	unsigned long addr = (unsigned long)page_address(page);

	flush_tlb_kernel_range(addr, addr + nr * PAGE_SIZE);
}

/*
 * Take @nr pages from @page out of the direct map, without a TLB flush.
 * Context: may sleep (splitting a large entry allocates a page table);
 * never under a spinlock or RCU.
 * Returns 0, or -ENOMEM when a large entry had to be split and no page
 * table could be had: then nothing changed (mapping back what was done
 * splits nothing).
 */
static int gmem_dm_unmap(struct page *page, unsigned long nr)
{
	int r;

	might_sleep();
	r = set_direct_map_valid_noflush(page, nr, false);
	if (r) {
		WARN_ON_ONCE(set_direct_map_valid_noflush(page, nr, true));
		return r;
	}
	atomic_long_add(nr, &gmem_total_unmapped);
	return 0;
}

/*
 * Put @nr pages from @page back into the direct map.  Returns 0, or
 * -ENOMEM when part of a 2 MiB entry had to be split and no page table
 * could be had (nothing changed then: what was mapped is unmapped and
 * flushed again).  Context: may sleep, as gmem_dm_unmap().
 */
static int gmem_dm_map(struct page *page, unsigned long nr)
{
	int r;

	might_sleep();
	r = set_direct_map_valid_noflush(page, nr, true);
	if (r) {
		set_direct_map_valid_noflush(page, nr, false);
		gmem_dm_flush(page, nr);
		return r;
	}
	atomic_long_sub(nr, &gmem_total_unmapped);
	return 0;
}

/*
 * Unmap freshly allocated pages of @s before they are published: on
 * failure they are still mapped, for the caller to free.
 */
static int gmem_dm_unmap_new(struct gmem_store *s, struct page *page,
			     unsigned long nr)
{
	int r;

	if (!s->no_direct_map)
		return 0;
	r = gmem_dm_unmap(page, nr);
	if (!r)
		gmem_dm_flush(page, nr);
	return r;
}

/*
 * Map pages of @s that were never published back, to free them.  They
 * were unmapped whole by gmem_dm_unmap_new(), so this splits nothing
 * and cannot fail; if it ever did, the pages must be leaked, never
 * freed unmapped: returns false then.
 */
static bool gmem_dm_map_unpublished(struct gmem_store *s, struct page *page,
				    unsigned long nr)
{
	return !s->no_direct_map || !WARN_ON_ONCE(gmem_dm_map(page, nr));
}

/**
 * gmem_store_init() - set up an empty store
 * @s: the store
 * @memcg: memory cgroup to charge, or NULL for the allocating task's; the
 *	caller keeps a reference on it for the life of the store
 *
 * Return: 0, or -ENOMEM (nothing to undo).
 */
int gmem_store_init(struct gmem_store *s, struct mem_cgroup *memcg)
{
	s->node_pages = kcalloc(nr_node_ids, sizeof(*s->node_pages),
				GFP_KERNEL_ACCOUNT);
	if (!s->node_pages)
		return -ENOMEM;
	mpol_shared_policy_init(&s->policy, NULL);
	/*
	 * XA_FLAGS_ACCOUNT: nodes allocated under the xa_lock (GFP_NOWAIT)
	 * are charged too, to the active memcg, which insertions set to
	 * @memcg.  Such a charge fails rather than reclaims; the insertion
	 * then retries through xas_nomem() with __GFP_RETRY_MAYFAIL, which
	 * fails with -ENOMEM past memory.max instead of waking the OOM killer.
	 */
	xa_init_flags(&s->pages, XA_FLAGS_ACCOUNT);
	xa_init_flags(&s->blocks, XA_FLAGS_ACCOUNT);
	atomic_long_set(&s->nr_pages, 0);
	atomic_long_set(&s->nr_held, 0);
	s->memcg = memcg;
	xa_init(&s->giants);
	xa_init(&s->giant_pfns);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_init);

/* The first page of the packed block that holds @index, or NULL. */
static struct page *gmem_store_packed(struct gmem_store *s, pgoff_t index)
{
	struct folio *head = xa_load(&s->blocks, index >> GMEM_BLOCK_ORDER);

	return head ? &head->page : NULL;
}

/*
 * Where a store's allocation goes where the store has no policy: by @pol,
 * from node @nid, as if the thread that asked for it allocated.  Populate
 * workers get the calling thread's (gmem_store_populate_threads()); NULL
 * elsewhere: the allocating thread's own policy and node.
 */
struct gmem_dflt {
	struct mempolicy *pol;
	int nid;
	bool own;	/* @pol is a reference of ours */
};

/*
 * The policy to allocate page @index with, in a unit of (1 << @order)
 * pages: the store's policy of @index, else @dflt's, else the calling
 * thread's own; *@nid is the node to start from.  *@ilx is the
 * interleave index for the interleave modes, which go round the nodes by
 * unit (from a node that depends on the store, as shmem does per inode);
 * NO_INTERLEAVE_INDEX for the others, which keeps alloc_pages_mpol()'s
 * rule for transparent huge pages (try only one node) off 2 MiB blocks.
 * Put the policy with mpol_cond_put().
 */
static struct mempolicy *gmem_store_mpol(struct gmem_store *s, pgoff_t index,
					 unsigned int order,
					 const struct gmem_dflt *dflt,
					 pgoff_t *ilx, int *nid)
{
	struct mempolicy *pol = mpol_shared_policy_lookup(&s->policy, index);

	*nid = dflt ? dflt->nid : numa_node_id();
	if (!pol)
		pol = dflt ? dflt->pol : get_task_policy(current);
	*ilx = NO_INTERLEAVE_INDEX;
	if (pol->mode == MPOL_INTERLEAVE || pol->mode == MPOL_WEIGHTED_INTERLEAVE)
		*ilx = s->id + (index >> order);
	return pol;
}

/* (1 << @order) pages for @index, placed by gmem_store_mpol(), or NULL. */
static struct page *gmem_store_alloc_pages(struct gmem_store *s, gfp_t gfp,
					   pgoff_t index, unsigned int order,
					   const struct gmem_dflt *dflt)
{
	struct mempolicy *pol;
	struct page *page;
	pgoff_t ilx;
	int nid;

	pol = gmem_store_mpol(s, index, order, dflt, &ilx, &nid);
	page = alloc_pages_mpol(gfp, order, pol, ilx, nid);
	mpol_cond_put(pol);
	return page;
}

/*
 * The first policy range that ends after @index, or NULL: ranges are
 * disjoint, in order (what mempolicy.c's sp_lookup() finds).  Caller
 * holds @s->policy.lock.
 */
static struct sp_node *gmem_store_policy_after(struct gmem_store *s,
					       pgoff_t index)
{
	struct rb_node *n = s->policy.root.rb_node;
	struct sp_node *sn, *first = NULL;

	while (n) {
		sn = rb_entry(n, struct sp_node, nd);
		if (sn->end > index) {
			first = sn;
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	return first;
}

/*
 * Does one policy range, or none, cover all of [@start, @end)?  A block
 * or a 1 GiB range comes from one node, so one across a boundary would
 * put some of its pages where their range's policy does not want them:
 * such a unit is allocated in smaller ones.  Two adjacent ranges count as
 * a boundary even with equal policies.  Policies change only with
 * allocations excluded (see gmem_store_set_policy()).
 */
static bool gmem_store_policy_whole(struct gmem_store *s, pgoff_t start,
				    pgoff_t end)
{
	struct sp_node *sn;
	bool whole = true;

	if (RB_EMPTY_ROOT(&s->policy.root))
		return true;
	read_lock(&s->policy.lock);
	sn = gmem_store_policy_after(s, start);
	if (sn && sn->start < end)
		whole = sn->start <= start && sn->end >= end;
	read_unlock(&s->policy.lock);
	return whole;
}

/*
 * gmem_store_insert_new() with @dflt where the store has no policy for
 * @index (NULL: the calling thread's own).
 */
static struct folio *__gmem_store_insert_new(struct gmem_store *s,
					     pgoff_t index,
					     const struct gmem_dflt *dflt);

/**
 * gmem_store_insert_new() - allocate page @index, a hole a moment ago
 * @s: the store
 * @index: page offset
 *
 * Allocates a zeroed folio and inserts it at @index, charging both the
 * page and any xarray nodes to the store's memcg.  gmem_store_get() is
 * the way in; this is exported for KUnit only.  The caller excludes
 * removal.
 *
 * Return: the folio now at @index (which may be one a concurrent caller
 * inserted first, or a held page taken back) with a reference for the
 * caller, or ERR_PTR(-ENOMEM).
 */
VISIBLE_IF_KUNIT struct folio *gmem_store_insert_new(struct gmem_store *s,
						     pgoff_t index)
{
	return __gmem_store_insert_new(s, index, NULL);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_insert_new);

static struct folio *__gmem_store_insert_new(struct gmem_store *s,
					     pgoff_t index,
					     const struct gmem_dflt *dflt)
{
	struct mem_cgroup *old_memcg = set_active_memcg(s->memcg);
	XA_STATE(xas, &s->pages, index);
	struct folio *folio, *old;
	struct page *page;

	page = gmem_store_alloc_pages(s, GMEM_GFP, index, 0, dflt);
	folio = page ? page_folio(page) : NULL;
	if (!folio) {
		set_active_memcg(old_memcg);
		return ERR_PTR(-ENOMEM);
	}
	if (gmem_dm_unmap_new(s, &folio->page, 1)) {
		set_active_memcg(old_memcg);
		folio_put(folio);
		return ERR_PTR(-ENOMEM);
	}
	/*
	 * A hole, or an index reserved by a block insertion in progress
	 * (XA_ZERO_ENTRY), which this page takes over: the block then
	 * gives up.  Anything else is a page a concurrent caller inserted,
	 * or a held page of a block published meanwhile, taken back.
	 */
	do {
		struct page *packed;

		/* Blocks are packed under this lock too. */
		xas_lock(&xas);
		packed = gmem_store_packed(s, index);
		old = packed ? page_folio(packed + (index & (GMEM_BLOCK_PAGES - 1))) :
			       xas_load(&xas);
		if (!old || xa_is_zero(old)) {
			old = NULL;
			xas_store(&xas, folio);
		} else {
			if (!packed && xas_get_mark(&xas, GMEM_HELD)) {
				xas_clear_mark(&xas, GMEM_HELD);
				gmem_store_count(s, 1, -1);
			}
			folio_get(old);
		}
		xas_unlock(&xas);
	} while (xas_nomem(&xas, GMEM_NODE_GFP));
	set_active_memcg(old_memcg);

	if (unlikely(old || xas_error(&xas))) {
		if (gmem_dm_map_unpublished(s, &folio->page, 1))
			folio_put(folio);
		return old ?: ERR_PTR(xas_error(&xas));
	}
	gmem_store_count(s, 1, 0);
	gmem_store_published(s, index, &folio->page, 0);
	folio_get(folio);
	return folio;
}

/*
 * Reserve every index of the block at @index (XA_ZERO_ENTRY), so that the
 * xarray nodes the block needs exist before any of its pages is visible.
 * A lookup sees a reserved index as a hole, and a guest fault may still
 * take it (gmem_store_insert_new() replaces a reservation): the commit
 * below then finds it taken and gives up.  Returns 0 or -ENOMEM.
 */
static int gmem_store_reserve_block(struct gmem_store *s, pgoff_t index)
{
	pgoff_t i;
	int r;

	for (i = index; i < index + GMEM_BLOCK_PAGES; i++) {
		r = xa_reserve(&s->pages, i, GMEM_NODE_GFP);
		if (r)
			return r;
	}
	return 0;
}

/* Drop the reservations of the block at @index that are still unused. */
static void gmem_store_unreserve_block(struct gmem_store *s, pgoff_t index)
{
	pgoff_t i;

	for (i = index; i < index + GMEM_BLOCK_PAGES; i++)
		xa_release(&s->pages, i);
}

/*
 * Publish the GMEM_BLOCK_PAGES pages from @page at @index, all at once:
 * under one hold of the xa_lock, every index must still be reserved (so
 * its slot exists and the stores below allocate nothing and cannot fail),
 * else nothing is stored.  Every page but @live is held.  Returns 0 or
 * -EEXIST.
 */
static int gmem_store_commit_block(struct gmem_store *s, pgoff_t index,
				   struct page *page, pgoff_t live)
{
	XA_STATE(xas, &s->pages, index);
	unsigned int i;
	int r = 0;

	xas_lock(&xas);
	if (gmem_store_packed(s, index))
		r = -EEXIST;
	for (i = 0; !r && i < GMEM_BLOCK_PAGES; i++, xas_next(&xas)) {
		if (xas_load(&xas) != XA_ZERO_ENTRY) {
			r = -EEXIST;
			break;
		}
	}
	if (!r) {
		xas_set(&xas, index);
		for (i = 0; i < GMEM_BLOCK_PAGES; i++, xas_next(&xas)) {
			xas_store(&xas, page_folio(page + i));
			if (xas.xa_index != live)
				xas_set_mark(&xas, GMEM_HELD);
		}
		xas_set(&xas, index);
		xas_load(&xas);
		xas_set_mark(&xas, GMEM_BLOCK);
	}
	xas_unlock(&xas);
	return r;
}

/*
 * Publish the block of GMEM_BLOCK_PAGES pages from @page at @index,
 * packed, if its range is still all holes: one entry in @blocks.
 * Returns 0, -EEXIST, or -ENOMEM (no xarray node for it).
 */
static int gmem_store_commit_packed(struct gmem_store *s, pgoff_t index,
				    struct page *page)
{
	pgoff_t key = index >> GMEM_BLOCK_ORDER;
	XA_STATE(xas, &s->pages, index);
	struct mem_cgroup *old_memcg;
	void *old;
	int r;

	old_memcg = set_active_memcg(s->memcg);
	r = xa_reserve(&s->blocks, key, GMEM_NODE_GFP);
	set_active_memcg(old_memcg);
	if (r)
		return r;
	/*
	 * Under the xa_lock of @pages, which single-page insertions hold
	 * while they look for a packed block: nothing (not even a
	 * reservation) may be in @pages for the range.
	 */
	xas_lock(&xas);
	r = -EEXIST;
	if (!xas_find(&xas, index + GMEM_BLOCK_PAGES - 1)) {
		xa_lock_nested(&s->blocks, SINGLE_DEPTH_NESTING);
		if (!xa_load(&s->blocks, key)) {
			old = __xa_store(&s->blocks, key, page_folio(page), GFP_NOWAIT);
			r = xa_is_err(old) ? xa_err(old) : 0;
		}
		xa_unlock(&s->blocks);
	}
	xas_unlock(&xas);
	if (r)
		xa_release(&s->blocks, key);
	return r;
}

/*
 * Split the packed block at @head into 512 entries of @pages, its first
 * marked GMEM_BLOCK, each marked GMEM_GUEST if the block was.  Returns
 * 0 (also when the block is no longer packed), or -ENOMEM if the nodes
 * for the entries could not be had with @gfp.  The caller excludes
 * removal.
 */
static int gmem_store_unpack(struct gmem_store *s, pgoff_t head, gfp_t gfp)
{
	pgoff_t key = head >> GMEM_BLOCK_ORDER, i;
	XA_STATE(xas, &s->pages, head);
	struct mem_cgroup *old_memcg;
	struct folio *folio;
	struct page *page;
	bool guest;
	int r = 0;

retry:
	old_memcg = set_active_memcg(s->memcg);
	for (i = head; !r && i < head + GMEM_BLOCK_PAGES; i++)
		r = xa_reserve(&s->pages, i, gfp);
	set_active_memcg(old_memcg);
	if (r) {
		gmem_store_unreserve_block(s, head);
		return r;
	}
	xas_lock(&xas);
	folio = xa_load(&s->blocks, key);
	/*
	 * A failed insertion or unpack of the same range may have released
	 * some of the reservations (it cannot tell them from its own):
	 * every slot must still be reserved, so the stores cannot fail.
	 */
	for (i = 0; folio && i < GMEM_BLOCK_PAGES; i++, xas_next(&xas)) {
		if (xas_load(&xas) != XA_ZERO_ENTRY) {
			xas_unlock(&xas);
			xas_set(&xas, head);
			goto retry;
		}
	}
	xas_set(&xas, head);
	if (folio) {
		page = &folio->page;
		guest = xa_get_mark(&s->blocks, key, GMEM_GUEST);
		for (i = 0; i < GMEM_BLOCK_PAGES; i++, xas_next(&xas)) {
			/* Reserved above: the stores allocate nothing. */
			xas_load(&xas);
			xas_store(&xas, page_folio(page + i));
			if (guest)
				xas_set_mark(&xas, GMEM_GUEST);
		}
		xas_set(&xas, head);
		xas_load(&xas);
		xas_set_mark(&xas, GMEM_BLOCK);
		/* The split form is in place: now drop the packed one. */
		xa_lock_nested(&s->blocks, SINGLE_DEPTH_NESTING);
		__xa_erase(&s->blocks, key);
		xa_unlock(&s->blocks);
	}
	xas_unlock(&xas);
	if (!folio)
		gmem_store_unreserve_block(s, head);
	return 0;
}

/*
 * Pack the split block at @head if it is whole and its pages are all
 * handed to a guest or none is (so that the block's one mark says the
 * same as theirs).  Best effort: nothing changes if a node for @blocks
 * cannot be had.  The caller excludes removal.
 */
static void gmem_store_pack(struct gmem_store *s, pgoff_t head)
{
	pgoff_t key = head >> GMEM_BLOCK_ORDER, last = head + GMEM_BLOCK_PAGES - 1;
	XA_STATE(xas, &s->pages, head);
	struct mem_cgroup *old_memcg;
	struct folio *folio;
	unsigned long guests = 0;
	bool ok;
	int r;

	old_memcg = set_active_memcg(s->memcg);
	r = xa_reserve(&s->blocks, key, GMEM_NODE_GFP);
	set_active_memcg(old_memcg);
	if (r)
		return;
	xas_lock(&xas);
	folio = xas_load(&xas);
	ok = folio && xas_get_mark(&xas, GMEM_BLOCK);
	if (ok) {
		xas_set(&xas, head);
		xas_for_each(&xas, folio, last) {
			if (xas_get_mark(&xas, GMEM_HELD)) {
				ok = false;
				break;
			}
			guests += xas_get_mark(&xas, GMEM_GUEST);
		}
	}
	if (ok && (!guests || guests == GMEM_BLOCK_PAGES)) {
		folio = xa_load(&s->pages, head);
		xas_set(&xas, head);
		xa_lock_nested(&s->blocks, SINGLE_DEPTH_NESTING);
		/* The reservation may have been released by a failed insertion. */
		ok = !xa_is_err(__xa_store(&s->blocks, key, folio, GFP_NOWAIT));
		if (ok && guests)
			__xa_set_mark(&s->blocks, key, GMEM_GUEST);
		xa_unlock(&s->blocks);
		/* The packed form is in place: now drop the split one. */
		if (ok)
			xas_for_each(&xas, folio, last)
				xas_store(&xas, NULL);
	} else {
		ok = false;
	}
	xas_unlock(&xas);
	if (!ok)
		xa_release(&s->blocks, key);
}

/*
 * The zeroed, naturally aligned pages of a new block for @index, not split
 * yet, charged to the store's memcg; NULL with *@r = -EEXIST if a page of
 * the range is in the store (held pages too), -EXDEV if a policy boundary
 * lies inside the block, -ENOMEM if no free block could be had.
 */
static struct page *gmem_store_alloc_block(struct gmem_store *s, pgoff_t index,
					   const struct gmem_dflt *dflt, int *r)
{
	pgoff_t last = index + GMEM_BLOCK_PAGES - 1, first = index;
	struct mem_cgroup *old_memcg;
	struct page *page;

	*r = -EEXIST;
	if (gmem_store_packed(s, index) ||
	    xa_find(&s->pages, &first, last, XA_PRESENT))
		return NULL;
	*r = -EXDEV;
	if (!gmem_store_policy_whole(s, index, index + GMEM_BLOCK_PAGES))
		return NULL;
	old_memcg = set_active_memcg(s->memcg);
	page = gmem_store_alloc_pages(s, GMEM_BLOCK_GFP, index, GMEM_BLOCK_ORDER,
				      dflt);
	set_active_memcg(old_memcg);
	*r = page ? 0 : -ENOMEM;
	return page;
}

/*
 * Publish the new block @page (out of the direct map and flushed, if the
 * store has no direct map) at @index, packed.  Returns 0, or -EEXIST or
 * -ENOMEM having freed the block (see gmem_store_commit_packed()).
 */
static int gmem_store_publish_packed(struct gmem_store *s, pgoff_t index,
				     struct page *page)
{
	unsigned int i;
	int r;

	split_page(page, GMEM_BLOCK_ORDER);
	r = gmem_store_commit_packed(s, index, page);
	if (r) {
		if (gmem_dm_map_unpublished(s, page, GMEM_BLOCK_PAGES))
			for (i = 0; i < GMEM_BLOCK_PAGES; i++)
				__free_page(page + i);
		return r;
	}
	gmem_store_count(s, GMEM_BLOCK_PAGES, 0);
	gmem_store_published(s, index, page, GMEM_BLOCK_ORDER);
	return 0;
}

/* gmem_store_insert_block(), with @dflt as in __gmem_store_insert_new(). */
static int __gmem_store_insert_block(struct gmem_store *s, pgoff_t index,
				     pgoff_t live, const struct gmem_dflt *dflt)
{
	struct mem_cgroup *old_memcg;
	struct page *page;
	unsigned int i;
	int r;

	page = gmem_store_alloc_block(s, index, dflt, &r);
	if (!page)
		return r;
	if (gmem_dm_unmap_new(s, page, GMEM_BLOCK_PAGES)) {
		__free_pages(page, GMEM_BLOCK_ORDER);
		return -ENOMEM;
	}
	if (live == ULONG_MAX)
		return gmem_store_publish_packed(s, index, page);
	old_memcg = set_active_memcg(s->memcg);
	r = gmem_store_reserve_block(s, index);
	set_active_memcg(old_memcg);
	if (r) {
		gmem_store_unreserve_block(s, index);
		if (gmem_dm_map_unpublished(s, page, GMEM_BLOCK_PAGES))
			__free_pages(page, GMEM_BLOCK_ORDER);
		return r;
	}
	/* Order-0 pages from here on, each with its own reference. */
	split_page(page, GMEM_BLOCK_ORDER);
	r = gmem_store_commit_block(s, index, page, live);
	if (r) {
		gmem_store_unreserve_block(s, index);
		if (gmem_dm_map_unpublished(s, page, GMEM_BLOCK_PAGES))
			for (i = 0; i < GMEM_BLOCK_PAGES; i++)
				__free_page(page + i);
		return r;
	}
	gmem_store_count(s, 1, GMEM_BLOCK_PAGES - 1);
	gmem_store_published(s, index, page, GMEM_BLOCK_ORDER);
	return 0;
}

/**
 * gmem_store_insert_block() - allocate a whole block
 * @s: the store
 * @index: first page offset of the block, GMEM_BLOCK_PAGES aligned
 * @live: the one page of the block the file gets now, the others being
 *	held; ULONG_MAX for all of them
 *
 * Allocates a zeroed, naturally aligned block of GMEM_BLOCK_PAGES pages
 * and inserts it at @index, all of [@index, @index + GMEM_BLOCK_PAGES)
 * being holes: packed when all its pages are live, else split with the
 * held pages marked.  The caller excludes removal.
 *
 * Return: 0, or -errno for the caller to fall back to single pages:
 * -EEXIST if a page of the range is in the store (held pages too),
 * -EXDEV if a policy boundary lies inside the block (see
 * gmem_store_set_policy()), -ENOMEM if no free block could be had.
 * Nothing of the block was
 * published then (a concurrent insertion of the same block may lose its
 * reservations to the unreserve and fall back too).
 */
int gmem_store_insert_block(struct gmem_store *s, pgoff_t index, pgoff_t live)
{
	return __gmem_store_insert_block(s, index, live, NULL);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_insert_block);

/*
 * A physically contiguous, naturally aligned, zeroed 1 GiB of order-0
 * pages for the range at @index, or NULL: alloc_contig_pages() walks the
 * zones up to ZONE_NORMAL (these pages never move: not ZONE_MOVABLE) of
 * the nodes the policy allows, nearest to the node it picks first (the
 * preferred node, the next node to interleave on, else this CPU's).
 * Interleave tries its own nodes first; only MPOL_BIND stops at its
 * nodes.  Every node the calling thread's cpuset allows otherwise.
 */
static struct page *gmem_alloc_giant(struct gmem_store *s, pgoff_t index)
{
	const gfp_t gfp = GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN |
			  __GFP_RETRY_MAYFAIL;
	nodemask_t allowed = cpuset_current_mems_allowed;
	struct mempolicy *pol;
	struct page *page;
	nodemask_t *nodes;
	pgoff_t ilx;
	int nid;

	pol = gmem_store_mpol(s, index, GMEM_GIANT_ORDER, NULL, &ilx, &nid);
	nodes = policy_nodemask(gfp, pol, ilx, &nid);
	if (!nodes && (pol->mode == MPOL_INTERLEAVE ||
		       pol->mode == MPOL_WEIGHTED_INTERLEAVE))
		nodes = &pol->nodes;
	page = alloc_contig_pages(GMEM_GIANT_PAGES, gfp, nid, nodes ?: &allowed);
	if (!page && nodes && pol->mode != MPOL_BIND &&
	    !fatal_signal_pending(current))
		page = alloc_contig_pages(GMEM_GIANT_PAGES, gfp, nid, &allowed);
	mpol_cond_put(pol);
	return page;
}

/*
 * Tell the trace what a 1 GiB allocation at @index published: the whole
 * range, or the blocks in @done.
 */
static void gmem_store_trace_giant(struct gmem_store *s, pgoff_t index,
				   struct page *page, const unsigned long *done)
{
	unsigned int b;

	if (!trace_gmem_alloc_enabled())
		return;
	if (bitmap_full(done, GMEM_GIANT_BLOCKS)) {
		trace_gmem_alloc(s->id, index, GMEM_GIANT_ORDER, page_to_nid(page));
		return;
	}
	for_each_set_bit(b, done, GMEM_GIANT_BLOCKS)
		trace_gmem_alloc(s->id, index + b * GMEM_BLOCK_PAGES,
				 GMEM_BLOCK_ORDER, page_to_nid(page));
}

/*
 * Populate the 1 GiB range at @index, all holes, from one contiguous
 * allocation if the limit allows one more: its 512 blocks are published
 * one by one (each whole or not at all, as in gmem_store_insert_block());
 * a block that loses to a concurrent fault is freed, and the range is
 * recorded in @giants only if all were published.  Returns 0 when it
 * was; -EEXIST, -ENOSPC (limit), -ENOMEM otherwise, the caller filling
 * the rest with blocks.
 */
static int gmem_store_insert_giant(struct gmem_store *s, pgoff_t index)
{
	DECLARE_BITMAP(done, GMEM_GIANT_BLOCKS) = { 0 };
	unsigned long pfn, key, published = 0, i;
	pgoff_t first = index, b;
	struct mem_cgroup *old_memcg;
	struct page *page;
	bool ok;
	int r;

	if (xa_find(&s->pages, &first, index + GMEM_GIANT_PAGES - 1, XA_PRESENT))
		return -EEXIST;
	first = index >> GMEM_BLOCK_ORDER;
	if (xa_find(&s->blocks, &first, (index + GMEM_GIANT_PAGES - 1) >> GMEM_BLOCK_ORDER,
		    XA_PRESENT) ||
	    !gmem_store_policy_whole(s, index, index + GMEM_GIANT_PAGES))
		return -EEXIST;
	if (atomic_long_inc_return(&gmem_giant_allocs) > READ_ONCE(gmem_giant_limit)) {
		atomic_long_dec(&gmem_giant_allocs);
		return -ENOSPC;
	}
	page = gmem_alloc_giant(s, index);
	if (!page) {
		atomic_long_dec(&gmem_giant_allocs);
		return -ENOMEM;
	}
	/*
	 * Block by block: the first splits a 1 GiB direct-map entry into
	 * 2 MiB ones, so that each block can go back whole on its own.
	 */
	for (b = 0; s->no_direct_map && b < GMEM_GIANT_PAGES; b += GMEM_BLOCK_PAGES) {
		if (!gmem_dm_unmap(page + b, GMEM_BLOCK_PAGES))
			continue;
		ok = true;
		while (b) {
			b -= GMEM_BLOCK_PAGES;
			ok &= gmem_dm_map_unpublished(s, page + b, GMEM_BLOCK_PAGES);
		}
		if (ok)
			free_contig_range(page_to_pfn(page), GMEM_GIANT_PAGES);
		atomic_long_dec(&gmem_giant_allocs);
		return -ENOMEM;
	}
	if (s->no_direct_map)
		gmem_dm_flush(page, GMEM_GIANT_PAGES);
	pfn = page_to_pfn(page);
	key = pfn >> GMEM_GIANT_ORDER;
	old_memcg = set_active_memcg(s->memcg);
	r = xa_insert(&s->giant_pfns, key, xa_mk_value(GMEM_GIANT_PAGES),
		      GMEM_NODE_GFP);
	set_active_memcg(old_memcg);
	for (b = 0; !r && b < GMEM_GIANT_PAGES; b += GMEM_BLOCK_PAGES) {
		for (i = 0; i < GMEM_BLOCK_PAGES; i++)
			set_page_private(page + b + i, GMEM_GIANT_TAG);
		if (!gmem_store_commit_packed(s, index + b, page + b)) {
			published += GMEM_BLOCK_PAGES;
			__set_bit(b >> GMEM_BLOCK_ORDER, done);
			gmem_store_count_node(s, page + b, GMEM_BLOCK_PAGES);
			cond_resched();
			continue;
		}
		for (i = 0; i < GMEM_BLOCK_PAGES; i++)
			set_page_private(page + b + i, 0);
		if (gmem_dm_map_unpublished(s, page + b, GMEM_BLOCK_PAGES))
			for (i = 0; i < GMEM_BLOCK_PAGES; i++)
				__free_page(page + b + i);
	}
	if (r) {
		ok = true;
		for (b = 0; b < GMEM_GIANT_PAGES; b += GMEM_BLOCK_PAGES)
			ok &= gmem_dm_map_unpublished(s, page + b, GMEM_BLOCK_PAGES);
		if (ok)
			free_contig_range(pfn, GMEM_GIANT_PAGES);
		atomic_long_dec(&gmem_giant_allocs);
		return r;
	}
	if (!published) {
		xa_erase(&s->giant_pfns, key);
		atomic_long_dec(&gmem_giant_allocs);
		return -EEXIST;
	}
	/* Nothing was freed yet: the caller excludes removal. */
	xa_store(&s->giant_pfns, key, xa_mk_value(published), GFP_NOWAIT);
	gmem_store_count(s, published, 0);
	gmem_store_trace_giant(s, index, page, done);
	if (published < GMEM_GIANT_PAGES)
		return -EEXIST;
	old_memcg = set_active_memcg(s->memcg);
	r = xa_err(xa_store(&s->giants, index >> GMEM_GIANT_ORDER,
			    xa_mk_value(key), GMEM_NODE_GFP));
	set_active_memcg(old_memcg);
	return r;
}

/**
 * gmem_store_giant() - is @index part of a whole 1 GiB range?
 * @s: the store
 * @index: page offset
 *
 * The caller excludes removal.
 *
 * Return: the first index of the naturally aligned 1 GiB range that
 * holds @index if all its pages are live and come from one contiguous
 * allocation, in order; else ULONG_MAX.
 */
pgoff_t gmem_store_giant(struct gmem_store *s, pgoff_t index)
{
	return xa_load(&s->giants, index >> GMEM_GIANT_ORDER) ?
	       round_down(index, GMEM_GIANT_PAGES) : ULONG_MAX;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_giant);

/**
 * gmem_store_nr_giants() - how many whole 1 GiB ranges the store has
 * @s: the store
 *
 * Safe against concurrent changes (RCU); the count may be stale.
 *
 * Return: the number of ranges gmem_store_giant() finds.
 */
unsigned long gmem_store_nr_giants(struct gmem_store *s)
{
	unsigned long g, n = 0;
	void *v;

	xa_for_each(&s->giants, g, v)
		n++;
	return n;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_nr_giants);

static struct folio *__gmem_store_get(struct gmem_store *s, pgoff_t index,
				      bool alloc, const struct gmem_dflt *dflt);

/**
 * gmem_store_get() - the folio that holds page @index
 * @s: the store
 * @index: page offset in the file
 * @alloc: allocate a zeroed folio when @index is a hole
 *
 * A held page is a hole: allocating it takes it back (zeroed).  The
 * caller excludes removal (see &struct gmem_store).
 *
 * Return: the folio with a reference for the caller (drop it with
 * folio_put()); NULL for a hole when !@alloc; ERR_PTR(-ENOMEM) when the
 * allocation or the memcg charge fails.
 */
struct folio *gmem_store_get(struct gmem_store *s, pgoff_t index, bool alloc)
{
	return __gmem_store_get(s, index, alloc, NULL);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_get);

static struct folio *__gmem_store_get(struct gmem_store *s, pgoff_t index,
				      bool alloc, const struct gmem_dflt *dflt)
{
	const pgoff_t off = index & (GMEM_BLOCK_PAGES - 1);
	XA_STATE(xas, &s->pages, index);
	struct page *packed;
	struct folio *folio;

	/* A packed block's pages stay in the store whatever form it takes. */
	packed = gmem_store_packed(s, index);
	if (packed) {
		folio = page_folio(packed + off);
		folio_get(folio);
		return folio;
	}
	/*
	 * Under the xa_lock, which every change of form holds: a block being
	 * packed is in neither xarray for a moment to a lockless reader,
	 * and a page published held gets its mark just after it is stored.
	 * Only a claim, also under this lock, turns a held page live; only
	 * removal, which the caller excludes, takes one away.
	 */
	xas_lock(&xas);
	packed = gmem_store_packed(s, index);
	if (packed) {
		folio = page_folio(packed + off);
	} else {
		folio = xas_load(&xas);
		if (xa_is_zero(folio))
			folio = NULL;
		if (folio && xas_get_mark(&xas, GMEM_HELD)) {
			if (alloc) {
				xas_clear_mark(&xas, GMEM_HELD);
				gmem_store_count(s, 1, -1);
			} else {
				folio = NULL;
			}
		}
	}
	if (folio)
		folio_get(folio);
	xas_unlock(&xas);
	if (folio || !alloc)
		return folio;
	return __gmem_store_insert_new(s, index, dflt);
}

/*
 * Blocks that a populate of a store without the direct map takes out of
 * it before one TLB flush (a full flush: an IPI to every CPU) lets it
 * publish them all.
 */
#define GMEM_DM_BATCH	32

struct gmem_dm_batch {
	const struct gmem_dflt *dflt;
	unsigned int n;
	pgoff_t index[GMEM_DM_BATCH];
	struct page *page[GMEM_DM_BATCH];
};

/*
 * Flush the TLB once for the blocks of @b, out of the direct map, then
 * publish them.  A block whose range a concurrent fault took a page of
 * is given back, and the holes of its range filled page by page.
 * Returns 0, or -ENOMEM from that; every block is published or freed.
 */
static int gmem_dm_batch_publish(struct gmem_store *s, struct gmem_dm_batch *b)
{
	unsigned long lo = ULONG_MAX, hi = 0, addr;
	struct folio *folio;
	unsigned int i;
	pgoff_t index;
	int r = 0;

	if (!b->n)
		return 0;
	for (i = 0; i < b->n; i++) {
		addr = (unsigned long)page_address(b->page[i]);
		lo = min(lo, addr);
		hi = max(hi, addr + (GMEM_BLOCK_PAGES << PAGE_SHIFT));
	}
	flush_tlb_kernel_range(lo, hi);
	for (i = 0; i < b->n; i++) {
		if (!gmem_store_publish_packed(s, b->index[i], b->page[i]))
			continue;
		for (index = b->index[i];
		     !r && index < b->index[i] + GMEM_BLOCK_PAGES; index++) {
			folio = __gmem_store_get(s, index, true, b->dflt);
			if (IS_ERR(folio))
				r = PTR_ERR(folio);
			else
				folio_put(folio);
			if (!(index & 63))
				cond_resched();
		}
	}
	b->n = 0;
	return r;
}

/*
 * Allocate the block at @index and take it out of the direct map, for
 * @b to publish with others after one TLB flush (at once if @b is full
 * then: *@r is what that returned).  Returns false if no block could be
 * had (-EEXIST, -ENOMEM), for the caller to go on page by page.
 */
static bool gmem_dm_batch_add(struct gmem_store *s, struct gmem_dm_batch *b,
			      pgoff_t index, int *r)
{
	struct page *page = gmem_store_alloc_block(s, index, b->dflt, r);

	*r = 0;
	if (page && gmem_dm_unmap(page, GMEM_BLOCK_PAGES)) {
		__free_pages(page, GMEM_BLOCK_ORDER);
		page = NULL;
	}
	if (!page)
		return false;
	b->index[b->n] = index;
	b->page[b->n++] = page;
	if (b->n == GMEM_DM_BATCH)
		*r = gmem_dm_batch_publish(s, b);
	return true;
}

/*
 * Allocate every hole in [@start, @end): whole blocks where the range
 * covers them, single pages elsewhere.  Stops early when @stop is set
 * (another part of the same populate failed or was interrupted), or on
 * a pending signal when @signals.  Where the store has no policy, pages
 * follow @dflt (NULL: the calling thread's own).  Returns 0, -EINTR or
 * -ENOMEM.
 */
static int __gmem_store_populate(struct gmem_store *s, pgoff_t start,
				 pgoff_t end, atomic_t *stop, bool signals,
				 const struct gmem_dflt *dflt)
{
	struct gmem_dm_batch batch = { .dflt = dflt, .n = 0 };
	struct folio *folio;
	pgoff_t index;
	int r = 0, r2;

	for (index = start; index < end; index++) {
		if (signals && signal_pending(current)) {
			r = -EINTR;
			break;
		}
		if (atomic_read(stop))
			break;
		if (IS_ALIGNED(index, GMEM_BLOCK_PAGES) &&
		    end - index >= GMEM_BLOCK_PAGES) {
			if (gmem_store_block(s, index) == index) {
				index += GMEM_BLOCK_PAGES - 1;
				continue;
			}
			if (!s->no_direct_map) {
				if (!__gmem_store_insert_block(s, index, ULONG_MAX,
							       dflt)) {
					index += GMEM_BLOCK_PAGES - 1;
					cond_resched();
					continue;
				}
			} else if (gmem_dm_batch_add(s, &batch, index, &r)) {
				if (r)
					break;
				index += GMEM_BLOCK_PAGES - 1;
				cond_resched();
				continue;
			}
		}
		folio = __gmem_store_get(s, index, true, dflt);
		if (IS_ERR(folio)) {
			r = PTR_ERR(folio);
			break;
		}
		/* The store keeps its own reference. */
		folio_put(folio);
		if (!(index & 63))
			cond_resched();
	}
	r2 = gmem_dm_batch_publish(s, &batch);
	return r ?: r2;
}

/**
 * gmem_store_populate() - allocate every hole in [@start, @end)
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 *
 * Whole blocks where the range covers them; held pages are taken back.
 * The caller excludes removal.  On a signal or a failed allocation,
 * what was allocated before stays in the store (as with KVM's own
 * guest_memfd): a guest may already have been handed any of it.
 *
 * Return: 0, -EINTR on a pending signal, -ENOMEM.
 */
int gmem_store_populate(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	atomic_t stop = ATOMIC_INIT(0);

	return __gmem_store_populate(s, start, end, &stop, true, NULL);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_populate);

/* One part of a populate, run by a worker (gmem_store_populate_threads()). */
struct gmem_populate_part {
	struct work_struct work;
	struct gmem_store *s;
	pgoff_t start, end;
	atomic_t *stop;
	const struct gmem_dflt *dflt;
	int r;
	struct completion done;
};

static void gmem_populate_work(struct work_struct *work)
{
	struct gmem_populate_part *p = container_of(work, struct gmem_populate_part,
						    work);

	p->r = __gmem_store_populate(p->s, p->start, p->end, p->stop, false,
				     p->dflt);
	if (p->r)
		atomic_set(p->stop, 1);
	complete(&p->done);
}

/* Blocks each part of a parallel populate gets at least. */
#define GMEM_POPULATE_PART_BLOCKS	16
#define GMEM_POPULATE_MAX_THREADS	16

/*
 * The calling thread's placement, for workers that allocate for it: a
 * copy of its own policy (mpol_dup() snapshots it under the task lock: a
 * cpuset change rewrites it in place), else a policy binding to its
 * cpuset's nodes if they are not all (the workers' own cpuset is the
 * root), else the kernel's static default.  Returns false if no copy
 * could be made; put @d->pol with gmem_store_put_dflt().
 */
static bool gmem_store_get_dflt(struct gmem_dflt *d)
{
	nodemask_t mems = cpuset_current_mems_allowed;

	d->nid = numa_node_id();
	d->own = true;
	if (current->mempolicy)
		d->pol = mpol_dup(current->mempolicy);
	else if (!nodes_subset(node_states[N_MEMORY], mems))
		d->pol = mpol_create(MPOL_BIND, &mems);
	else
		d->own = false;
	if (!d->own)
		d->pol = get_task_policy(current);
	return !IS_ERR_OR_NULL(d->pol);
}

static void gmem_store_put_dflt(struct gmem_dflt *d)
{
	if (d->own)
		mpol_put(d->pol);
}

/**
 * gmem_store_populate_threads() - gmem_store_populate() on several CPUs
 * @s: the store, with a memcg (allocations are charged to it wherever
 *	they run)
 * @start: first page offset
 * @end: page offset after the last
 * @threads: how many threads may allocate and zero at once, the calling
 *	one included (at most 16); 0 or 1: the calling thread alone
 *
 * The blocks of a large range are split into @threads parts of whole
 * blocks: the calling thread populates the first, kernel workers
 * (system_unbound_wq) the others, at the same time.  A failure or a
 * signal (seen by the calling thread) stops every part at its next
 * block; the call returns once all have stopped, with what they
 * allocated kept, as gmem_store_populate() does.  The caller excludes
 * removal until then.
 *
 * Return: 0, -EINTR on a pending signal, -ENOMEM.
 */
int gmem_store_populate_threads(struct gmem_store *s, pgoff_t start,
				pgoff_t end, unsigned int threads)
{
	struct gmem_populate_part *parts;
	struct gmem_dflt dflt;
	pgoff_t first = round_up(start, GMEM_BLOCK_PAGES);
	pgoff_t last = round_down(end, GMEM_BLOCK_PAGES);
	unsigned long nblocks, per;
	atomic_t stop = ATOMIC_INIT(0);
	pgoff_t g;
	unsigned int i, n;
	int r, r2;

	/* Whole 1 GiB ranges first, while the limit allows. */
	for (g = round_up(start, GMEM_GIANT_PAGES);
	     READ_ONCE(gmem_giant_limit) && g >= start && g < end &&
	     end - g >= GMEM_GIANT_PAGES; g += GMEM_GIANT_PAGES) {
		if (signal_pending(current))
			return -EINTR;
		gmem_store_insert_giant(s, g);
	}

	threads = min(threads, GMEM_POPULATE_MAX_THREADS);
	if (threads < 2 || !s->memcg || first < start || last <= first)
		return gmem_store_populate(s, start, end);
	nblocks = (last - first) >> GMEM_BLOCK_ORDER;
	n = min_t(unsigned long, threads, nblocks / GMEM_POPULATE_PART_BLOCKS);
	if (n < 2)
		return gmem_store_populate(s, start, end);
	parts = kcalloc(n, sizeof(*parts), GFP_KERNEL);
	if (!parts)
		return gmem_store_populate(s, start, end);
	if (!gmem_store_get_dflt(&dflt)) {
		kfree(parts);
		return gmem_store_populate(s, start, end);
	}

	per = DIV_ROUND_UP(nblocks, n) << GMEM_BLOCK_ORDER;
	for (i = 1; i < n; i++) {
		parts[i].s = s;
		parts[i].start = min(first + i * per, last);
		parts[i].end = min(first + (i + 1) * per, last);
		parts[i].stop = &stop;
		parts[i].dflt = &dflt;
		init_completion(&parts[i].done);
		INIT_WORK(&parts[i].work, gmem_populate_work);
		queue_work(system_unbound_wq, &parts[i].work);
	}
	/* This thread: the unaligned head, the first part, the tail. */
	r = __gmem_store_populate(s, start, min(first + per, last), &stop, true,
				  NULL);
	if (!r)
		r = __gmem_store_populate(s, last, end, &stop, true, NULL);
	if (r)
		atomic_set(&stop, 1);
	for (i = 1; i < n; i++) {
		if (wait_for_completion_interruptible(&parts[i].done)) {
			atomic_set(&stop, 1);
			r = r ?: -EINTR;
			wait_for_completion(&parts[i].done);
		}
		r2 = parts[i].r;
		r = r ?: r2;
	}
	gmem_store_put_dflt(&dflt);
	kfree(parts);
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_populate_threads);

/*
 * Map (@map) or unmap (and flush) the direct map of the pages of @s in
 * [@start, @end) that are in @pages (only the held ones if @held_only):
 * a marked block that lies whole in the range as one range, other pages
 * in runs of consecutive pages.  Returns 0, or -ENOMEM when an entry had
 * to be split and no page table could be had: *@done is then the index
 * up to which the pages were changed.
 */
static int gmem_dm_change(struct page *page, unsigned long nr, bool map)
{
	int r;

	if (map)
		return gmem_dm_map(page, nr);
	r = gmem_dm_unmap(page, nr);
	if (!r)
		gmem_dm_flush(page, nr);
	return r;
}

static int __gmem_dm_pages(struct gmem_store *s, pgoff_t start, pgoff_t end,
			   bool held_only, bool map, pgoff_t *done)
{
	struct page *run = NULL, *page;
	pgoff_t i = start, run_index = 0;
	unsigned long nr = 0;
	struct folio *folio;
	int r;

	*done = start;
	while (i < end) {
		folio = xa_find(&s->pages, &i, end - 1,
				held_only ? GMEM_HELD : XA_PRESENT);
		if (!folio)
			break;
		page = &folio->page;
		if (run && i == run_index + nr && page == run + nr) {
			nr++;
			i++;
			continue;
		}
		if (run) {
			r = gmem_dm_change(run, nr, map);
			if (r)
				return r;
			*done = run_index + nr;
			run = NULL;
			cond_resched();
		}
		if (!held_only && IS_ALIGNED(i, GMEM_BLOCK_PAGES) &&
		    end - i >= GMEM_BLOCK_PAGES &&
		    xa_get_mark(&s->pages, i, GMEM_BLOCK)) {
			r = gmem_dm_change(page, GMEM_BLOCK_PAGES, map);
			if (r)
				return r;
			i += GMEM_BLOCK_PAGES;
			*done = i;
			continue;
		}
		run = page;
		run_index = i++;
		nr = 1;
	}
	if (run) {
		r = gmem_dm_change(run, nr, map);
		if (r)
			return r;
	}
	*done = end;
	return 0;
}

/*
 * Map back the direct map of the pages of @s in [@start, @end), or of its
 * held pages only (@held_only): packed blocks that lie whole in the range
 * (the ones gmem_store_free_packed() takes), and the pages of @pages.
 * The caller excludes every change of @s.  Returns 0, or -ENOMEM when an
 * entry had to be split and no page table could be had: nothing changed
 * then.
 */
static int gmem_dm_map_range(struct gmem_store *s, pgoff_t start, pgoff_t end,
			     bool held_only)
{
	unsigned long first = (start >> GMEM_BLOCK_ORDER) +
			      !IS_ALIGNED(start, GMEM_BLOCK_PAGES);
	unsigned long last = end >> GMEM_BLOCK_ORDER, key;
	struct folio *folio;
	pgoff_t done, undone;
	int r;

	r = __gmem_dm_pages(s, start, end, held_only, true, &done);
	if (r) {
		/* What was mapped was split already, or mapped whole. */
		WARN_ON_ONCE(__gmem_dm_pages(s, start, done, held_only, false,
					     &undone));
		return r;
	}
	if (held_only || last <= first)
		return 0;
	/*
	 * Whole blocks: a 2 MiB entry mapped in place, or entries a punch
	 * split before the block was packed again.  This cannot fail.
	 */
	xa_for_each_range(&s->blocks, key, folio, first, last - 1) {
		WARN_ON_ONCE(gmem_dm_map(&folio->page, GMEM_BLOCK_PAGES));
		cond_resched();
	}
	return 0;
}

/*
 * Map (@map) or unmap the pages of the marked block whose first page is
 * @page (its pages are consecutive) that are set in @bits, in runs.
 * Returns 0, or -ENOMEM with nothing changed.
 */
static int gmem_dm_block_bits(struct page *page, const unsigned long *bits,
			      bool map)
{
	unsigned int rs, re, us, ue;
	int r;

	for_each_set_bitrange(rs, re, bits, GMEM_BLOCK_PAGES) {
		r = map ? gmem_dm_map(page + rs, re - rs) :
			  gmem_dm_unmap(page + rs, re - rs);
		if (!r)
			continue;
		for_each_set_bitrange(us, ue, bits, rs)
			WARN_ON_ONCE(map ? gmem_dm_unmap(page + us, ue - us) :
					   gmem_dm_map(page + us, ue - us));
		if (map)
			gmem_dm_flush(page, GMEM_BLOCK_PAGES);
		return r;
	}
	return 0;
}

/*
 * Zero the @n pages of the block from @page that are set in @bits, out
 * of the direct map, through one temporary mapping of them all whose TLB
 * entries are flushed before this returns: the block's direct-map entry
 * is left as it is (a 2 MiB one is not split).  Returns 0, or -ENOMEM
 * with nothing zeroed.
 */
static int gmem_dm_zero(struct page *page, const unsigned long *bits,
			unsigned int n)
{
	unsigned long len = (unsigned long)n << PAGE_SHIFT;
	struct page **pages;
	unsigned int i, j = 0;
	void *va;

	pages = kvmalloc_array(n, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	for_each_set_bit(i, bits, GMEM_BLOCK_PAGES)
		pages[j++] = page + i;
	/* VM_MAP: vmap() does not keep the array. */
	va = vmap(pages, n, VM_MAP, PAGE_KERNEL);
	kvfree(pages);
	if (!va)
		return -ENOMEM;
	memset(va, 0, len);
	vunmap(va);
	/*
	 * vunmap() flushes lazily (any reuse of the address is preceded by
	 * vmalloc's own purge flush): flush the alias now, before the pages
	 * can hold a guest's data again.
	 */
	flush_tlb_kernel_range((unsigned long)va, (unsigned long)va + len);
	return 0;
}

/*
 * Drop the store's references on the folios of @fbatch, counting those
 * that came from a 1 GiB allocation (tagged GMEM_GIANT_TAG) out of it:
 * the last one out ends the allocation.  Called without the xa_lock of
 * @s->pages.
 */
static void gmem_store_put_batch(struct gmem_store *s, struct folio_batch *fbatch)
{
	unsigned long key, left;
	unsigned int i, run = 0;
	struct page *page;
	void *v;

	/* Out of the node counts, in runs of pages of one node. */
	for (i = 0; i < folio_batch_count(fbatch); i++) {
		page = &fbatch->folios[i]->page;
		run++;
		if (i + 1 < folio_batch_count(fbatch) &&
		    folio_nid(fbatch->folios[i + 1]) == page_to_nid(page))
			continue;
		gmem_store_count_node(s, page, -(long)run);
		run = 0;
	}

	if (!xa_empty(&s->giant_pfns)) {
		for (i = 0; i < folio_batch_count(fbatch); i++) {
			page = &fbatch->folios[i]->page;
			if (page_private(page) != GMEM_GIANT_TAG)
				continue;
			set_page_private(page, 0);
			key = page_to_pfn(page) >> GMEM_GIANT_ORDER;
			v = xa_load(&s->giant_pfns, key);
			if (!v)
				continue;
			left = xa_to_value(v) - 1;
			if (left) {
				/* Replaces an entry: allocates nothing. */
				xa_store(&s->giant_pfns, key, xa_mk_value(left), GFP_NOWAIT);
			} else {
				xa_erase(&s->giant_pfns, key);
				atomic_long_dec(&gmem_giant_allocs);
			}
		}
	}
	folios_put(fbatch);
}

/*
 * Take the packed blocks that lie whole in [@start, @end) out of the
 * store and free their pages.  Returns the number of pages.
 */
static unsigned long gmem_store_free_packed(struct gmem_store *s, pgoff_t start,
					    pgoff_t end)
{
	unsigned long first = (start >> GMEM_BLOCK_ORDER) +
			      !IS_ALIGNED(start, GMEM_BLOCK_PAGES);
	unsigned long last = end >> GMEM_BLOCK_ORDER, nr = 0;
	XA_STATE(xas, &s->blocks, first);
	struct folio *heads[8], *folio;
	struct folio_batch fbatch;
	unsigned int n, i, j;

	if (last-- <= first)
		return 0;
	folio_batch_init(&fbatch);
	do {
		n = 0;
		xas_lock(&xas);
		xas_for_each(&xas, folio, last) {
			xas_store(&xas, NULL);
			heads[n++] = folio;
			if (n == ARRAY_SIZE(heads))
				break;
		}
		if (n == ARRAY_SIZE(heads))
			xas_set(&xas, xas.xa_index + 1);
		xas_unlock(&xas);
		for (i = 0; i < n; i++) {
			for (j = 0; j < GMEM_BLOCK_PAGES; j++) {
				folio = page_folio(&heads[i]->page + j);
				if (!folio_batch_add(&fbatch, folio))
					gmem_store_put_batch(s, &fbatch);
			}
			cond_resched();
		}
		nr += (unsigned long)n << GMEM_BLOCK_ORDER;
	} while (n == ARRAY_SIZE(heads) && xas.xa_index <= last);
	gmem_store_put_batch(s, &fbatch);
	return nr;
}

/*
 * Take every page of [@start, @end) out of the store and free it (held
 * pages too), or only the held ones if @held_only.  Blocks that lose a
 * page are no longer blocks; packed ones must lie whole in the range.
 * Pages of a store without the direct map are mapped first, unless the
 * caller did (@mapped): whole blocks in place, other pages (whose entries
 * are split already) in runs, which needs no memory.  Returns the number
 * of live pages removed.
 */
static unsigned long gmem_store_free(struct gmem_store *s, pgoff_t start,
				     pgoff_t end, bool held_only, bool mapped)
{
	unsigned long nr = 0, held = 0, nr_packed;
	pgoff_t head, broken = ULONG_MAX;
	XA_STATE(xas, &s->pages, start);
	struct folio_batch fbatch;
	struct folio *folio;

	/* Never freed unmapped: kept (leaked) if that ever failed. */
	if (s->no_direct_map && !mapped &&
	    WARN_ON_ONCE(gmem_dm_map_range(s, start, end, held_only)))
		return 0;

	if (!held_only)
		nr = gmem_store_free_packed(s, start, end);
	gmem_store_count(s, -(long)nr, 0);
	nr_packed = nr;
	nr = 0;
	folio_batch_init(&fbatch);
	xas_lock(&xas);
	for (;;) {
		if (held_only)
			folio = xas_find_marked(&xas, end - 1, GMEM_HELD);
		else
			folio = xas_find(&xas, end - 1);
		if (!folio)
			break;
		if (xa_is_zero(folio)) {
			/* A reservation a failed unpack left: nothing to free. */
			xas_store(&xas, NULL);
			continue;
		}
		if (xas_get_mark(&xas, GMEM_HELD))
			held++;
		else
			nr++;
		head = round_down(xas.xa_index, GMEM_BLOCK_PAGES);
		if (head != broken) {
			__xa_clear_mark(&s->pages, head, GMEM_BLOCK);
			broken = head;
		}
		xas_store(&xas, NULL);
		if (folio_batch_add(&fbatch, folio) && !need_resched())
			continue;
		/*
		 * Free the batch without the lock, and restart after this
		 * entry, not with xas_pause(): if the store freed the node,
		 * @xas now points into the parent and 6.12's xas_pause()
		 * steps over the rest of the parent's slot (63 pages left
		 * behind).
		 */
		if (xas.xa_index == end - 1)
			break;
		xas_set(&xas, xas.xa_index + 1);
		xas_unlock(&xas);
		gmem_store_put_batch(s, &fbatch);
		cond_resched();
		xas_lock(&xas);
	}
	xas_unlock(&xas);
	gmem_store_put_batch(s, &fbatch);
	gmem_store_count(s, -(long)nr, -(long)held);
	return nr + nr_packed;
}

/*
 * Punch [@start, @end), which lies inside the block at @head: hold its
 * pages if the block is whole and keeps a live page outside the range,
 * else free them (and the block's held pages with them).  Returns the
 * number of live pages taken out of the file, or -ENOMEM (nothing
 * changed) if the store has no direct map and either no temporary
 * mapping could be had to zero the held pages, or the block's 2 MiB
 * entry could not be split for the pages that leave it alone.
 */
static long gmem_store_punch_block(struct gmem_store *s, pgoff_t head,
				   pgoff_t start, pgoff_t end)
{
	DECLARE_BITMAP(held, GMEM_BLOCK_PAGES) = { 0 };
	DECLARE_BITMAP(go, GMEM_BLOCK_PAGES);
	unsigned long nheld = 0, n = 0, i;
	XA_STATE(xas, &s->pages, start);
	struct folio *folio;
	struct page *first;
	int r;

	if (gmem_store_packed(s, head))
		gmem_store_unpack(s, head, GMEM_UNPACK_GFP);
	if (!xa_get_mark(&s->pages, head, GMEM_BLOCK))
		return gmem_store_free(s, start, end, false, false);
	first = &((struct folio *)xa_load(&s->pages, head))->page;

	xas_lock(&xas);
	/* The live pages of the range (a marked block has all 512 pages)... */
	xas_for_each(&xas, folio, end - 1) {
		if (xas_get_mark(&xas, GMEM_HELD))
			continue;
		if (folio_test_hwpoison(folio))
			break;
		__set_bit(xas.xa_index - head, held);
		n++;
	}
	/* ...and the held ones of the block, found through the marks. */
	if (!folio) {
		xas_set(&xas, head);
		xas_for_each_marked(&xas, folio, head + GMEM_BLOCK_PAGES - 1, GMEM_HELD)
			nheld++;
	}
	if (folio || nheld + n == GMEM_BLOCK_PAGES) {
		/* A memory error in the range, or nothing left to keep. */
		xas_unlock(&xas);
		if (s->no_direct_map) {
			/* The held pages and the range go: whole, or in runs. */
			bitmap_zero(go, GMEM_BLOCK_PAGES);
			bitmap_set(go, start - head, end - start);
			xas_set(&xas, head);
			rcu_read_lock();
			xas_for_each_marked(&xas, folio, head + GMEM_BLOCK_PAGES - 1,
					    GMEM_HELD)
				__set_bit(xas.xa_index - head, go);
			rcu_read_unlock();
			r = gmem_dm_block_bits(first, go, true);
			if (r)
				return r;
		}
		gmem_store_free(s, head, start, true, true);
		gmem_store_free(s, end, head + GMEM_BLOCK_PAGES, true, true);
		return gmem_store_free(s, start, end, false, true);
	}
	/* Zeroed first, out of the direct map: nothing changed on failure. */
	if (s->no_direct_map && n) {
		xas_unlock(&xas);
		r = gmem_dm_zero(first, held, n);
		if (r)
			return r;
		xas_lock(&xas);
	}
	for_each_set_bit(i, held, GMEM_BLOCK_PAGES) {
		xas_set(&xas, head + i);
		xas_load(&xas);
		xas_set_mark(&xas, GMEM_HELD);
		xas_clear_mark(&xas, GMEM_GUEST);
	}
	xas_unlock(&xas);
	gmem_store_count(s, -(long)n, n);
	/*
	 * The guest's mappings are gone and the pages are holes to every
	 * lookup; the caller's exclusive lock keeps claims off until they
	 * are zeroed.
	 */
	for_each_set_bit(i, held, GMEM_BLOCK_PAGES) {
		if (s->no_direct_map)
			break;
		folio = xa_load(&s->pages, head + i);
		clear_highpage(folio_page(folio, 0));
	}
	return n;
}

/* A 1 GiB range that loses a page is one no more. */
static void gmem_store_end_giants(struct gmem_store *s, pgoff_t start,
				  pgoff_t end)
{
	unsigned long g;
	void *v;

	xa_for_each_range(&s->giants, g, v, start >> GMEM_GIANT_ORDER,
			  (end - 1) >> GMEM_GIANT_ORDER)
		xa_erase(&s->giants, g);
}

/* gmem_store_remove() without the trace event. */
static long __gmem_store_remove(struct gmem_store *s, pgoff_t start,
				pgoff_t end)
{
	pgoff_t first = round_up(start, GMEM_BLOCK_PAGES);
	pgoff_t last = round_down(end, GMEM_BLOCK_PAGES);
	long nr = 0, r;

	if (start >= end)
		return 0;
	/*
	 * First, also when a punch below fails: a 1 GiB range with a held
	 * page must never be handed to a guest whole.
	 */
	gmem_store_end_giants(s, start, end);
	if (first > last || first < start)	/* inside one block */
		return gmem_store_punch_block(s, round_down(start, GMEM_BLOCK_PAGES),
					      start, end);
	if (start < first) {
		r = gmem_store_punch_block(s, first - GMEM_BLOCK_PAGES, start,
					   first);
		if (r < 0)
			return r;
		nr += r;
	}
	if (last < end) {
		r = gmem_store_punch_block(s, last, last, end);
		if (r < 0)
			return r;
		nr += r;
	}
	if (first < last)
		nr += gmem_store_free(s, first, last, false, false);
	return nr;
}

/**
 * gmem_store_remove() - take the pages of [@start, @end) out of the file
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 *
 * Whole blocks and pages outside blocks are freed.  Pages of a block the
 * range covers only in part are zeroed and held (see the top of this
 * file), unless no live page of the block is left or one of them has a
 * memory error: then the block's pages in the range and its held pages
 * are freed.
 *
 * The caller holds off lookups and insertions and has already made sure
 * nobody maps the pages (guest mappings are zapped first).  A folio in
 * flight in a KVM fault is freed when that fault drops its reference.
 *
 * In a store without the direct map, held pages are zeroed through a
 * temporary mapping (the block's direct-map entry stays whole); pages
 * that leave a block that keeps others (a memory error in the range)
 * have its 2 MiB entry split, which takes a page table.
 *
 * Return: the number of live pages taken out; -ENOMEM if the mapping
 * or the split could not be had: the blocks at the ends of the range are
 * punched first, so that only the one at the start may have been
 * punched then.
 */
long gmem_store_remove(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	long r = __gmem_store_remove(s, start, end);

	trace_gmem_punch(s->id, start, end, r);
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_remove);

/**
 * gmem_store_release_held() - free every held page
 * @s: the store
 *
 * The blocks they belong to are blocks no more.  The caller holds off
 * lookups and insertions, as for gmem_store_remove(); no guest maps a
 * held page.  In a store without the direct map, a block whose 2 MiB
 * entry cannot be split keeps its held pages (and those after it).
 *
 * Return: the number of pages freed.
 */
unsigned long gmem_store_release_held(struct gmem_store *s)
{
	unsigned long held = atomic_long_read(&s->nr_held);
	pgoff_t i = 0, head;

	if (!held)
		return 0;
	if (!s->no_direct_map) {
		gmem_store_free(s, 0, ULONG_MAX, true, false);
		return held;
	}
	/*
	 * Block by block: mapping a block's held pages splits its 2 MiB
	 * entry if it has one, which may fail; then the rest stays held.
	 */
	while (xa_find(&s->pages, &i, ULONG_MAX, GMEM_HELD)) {
		head = round_down(i, GMEM_BLOCK_PAGES);
		if (gmem_dm_map_range(s, head, head + GMEM_BLOCK_PAGES, true))
			break;
		gmem_store_free(s, head, head + GMEM_BLOCK_PAGES, true, true);
		i = head + GMEM_BLOCK_PAGES;
		cond_resched();
	}
	return held - atomic_long_read(&s->nr_held);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_release_held);

/**
 * gmem_store_set_guest() - remember that page @index was handed to a guest
 * @s: the store
 * @index: page offset of a live page in the store
 *
 * The caller excludes removal.  The mark stays until the page is removed.
 */
void gmem_store_set_guest(struct gmem_store *s, pgoff_t index)
{
	pgoff_t key = index >> GMEM_BLOCK_ORDER;
	bool packed, failed = false;

	/*
	 * A page of a packed block is marked alone once the block is split;
	 * if no node can be had for that, the whole block is marked (which
	 * only costs GMEM_WRITE its other pages).  Marks are set under the
	 * xa_lock of @pages, which every change of form holds, so that
	 * none is lost to an unpack or a pack in between.
	 */
	for (;;) {
		xa_lock(&s->pages);
		packed = xa_load(&s->blocks, key);
		if (!packed) {
			__xa_set_mark(&s->pages, index, GMEM_GUEST);
		} else if (failed) {
			xa_lock_nested(&s->blocks, SINGLE_DEPTH_NESTING);
			__xa_set_mark(&s->blocks, key, GMEM_GUEST);
			xa_unlock(&s->blocks);
		} else if (xa_get_mark(&s->blocks, key, GMEM_GUEST)) {
			failed = true;	/* marked as a whole already */
		}
		xa_unlock(&s->pages);
		if (!packed || failed)
			return;
		failed = gmem_store_unpack(s, round_down(index, GMEM_BLOCK_PAGES),
					   GMEM_NODE_GFP);
	}
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_set_guest);

/**
 * gmem_store_test_guest() - was page @index handed to a guest?
 * @s: the store
 * @index: page offset
 *
 * The caller excludes removal and gmem_store_set_guest() on @index.
 *
 * Return: true if the page is in the store and was handed to a guest
 * since it was inserted; false for a hole or a page no guest was given.
 */
bool gmem_store_test_guest(struct gmem_store *s, pgoff_t index)
{
	bool r;

	/* Under the lock every change of form holds: see gmem_store_get(). */
	xa_lock(&s->pages);
	r = xa_get_mark(&s->blocks, index >> GMEM_BLOCK_ORDER, GMEM_GUEST) ||
	    xa_get_mark(&s->pages, index, GMEM_GUEST);
	xa_unlock(&s->pages);
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_test_guest);

/**
 * gmem_store_block() - is @index part of a whole block?
 * @s: the store
 * @index: page offset
 *
 * The caller excludes removal.
 *
 * Return: the first index of the naturally aligned, physically contiguous
 * block of GMEM_BLOCK_PAGES live pages that holds @index, or ULONG_MAX
 * if there is none (no block, or one with held pages).
 */
pgoff_t gmem_store_block(struct gmem_store *s, pgoff_t index)
{
	pgoff_t head = round_down(index, GMEM_BLOCK_PAGES), i = head;

	if (gmem_store_packed(s, index))
		return head;
	if (!xa_get_mark(&s->pages, head, GMEM_BLOCK) ||
	    xa_find(&s->pages, &i, head + GMEM_BLOCK_PAGES - 1, GMEM_HELD))
		return ULONG_MAX;
	return head;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_block);

/**
 * gmem_store_hwpoisoned() - has a page of [@start, @end) a memory error?
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 *
 * The caller excludes removal.  memory_failure() cannot take gmem's
 * pages away (they are in no page cache), it only flags them.
 *
 * Return: true if a present page of the range is flagged hwpoison.
 */
bool gmem_store_hwpoisoned(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	struct folio *folio;
	struct page *packed;
	pgoff_t lo, hi, i;
	bool r = false;

	/*
	 * A block at a time, under the lock every change of form holds, so
	 * that a block being packed or split is seen in one form.
	 */
	for (lo = start; lo < end && !r; lo = hi) {
		hi = min(end, round_down(lo, GMEM_BLOCK_PAGES) + GMEM_BLOCK_PAGES);
		xa_lock(&s->pages);
		packed = gmem_store_packed(s, lo);
		if (packed) {
			for (i = lo; i < hi && !r; i++)
				r = PageHWPoison(packed + (i & (GMEM_BLOCK_PAGES - 1)));
		} else {
			xas_set(&xas, lo);
			xas_for_each(&xas, folio, hi - 1) {
				if (!xa_is_zero(folio) && folio_test_hwpoison(folio)) {
					r = true;
					break;
				}
			}
		}
		xa_unlock(&s->pages);
		cond_resched();
	}
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_hwpoisoned);

/**
 * gmem_store_hand_out() - pages [@start, @end) are given to a guest
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last; all pages in between are live
 *
 * What gmem_store_set_guest() does for one page, for a range at once,
 * under the page lock of every page (which GMEM_WRITE holds while it
 * writes one), or not at all if one of them is locked.  GMEM_WRITE
 * leaves the pages alone from then on.  The caller excludes removal.
 *
 * Return: true if the pages were handed out.
 */
bool gmem_store_hand_out(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	struct page *packed = gmem_store_packed(s, start);
	pgoff_t locked = start;
	struct folio *folio;
	unsigned int i, n;
	bool ok;

	if (packed && end - start == GMEM_BLOCK_PAGES) {
		for (n = 0; n < GMEM_BLOCK_PAGES; n++)
			if (!folio_trylock(page_folio(packed + n)))
				break;
		ok = n == GMEM_BLOCK_PAGES;
		/* Still packed?  A single-page hand-out may have split it. */
		xa_lock(&s->pages);
		if (ok && xa_load(&s->blocks, start >> GMEM_BLOCK_ORDER) ==
			  page_folio(packed)) {
			xa_lock_nested(&s->blocks, SINGLE_DEPTH_NESTING);
			__xa_set_mark(&s->blocks, start >> GMEM_BLOCK_ORDER, GMEM_GUEST);
			xa_unlock(&s->blocks);
		} else {
			ok = false;
		}
		xa_unlock(&s->pages);
		for (i = 0; i < n; i++)
			folio_unlock(page_folio(packed + i));
		return ok;
	}

	xas_lock(&xas);
	xas_for_each(&xas, folio, end - 1) {
		if (xa_is_zero(folio) || !folio_trylock(folio))
			break;
		locked = xas.xa_index + 1;
	}
	if (locked == end) {
		xas_set(&xas, start);
		xas_for_each(&xas, folio, end - 1)
			xas_set_mark(&xas, GMEM_GUEST);
	}
	xas_set(&xas, start);
	if (locked > start)
		xas_for_each(&xas, folio, locked - 1)
			folio_unlock(folio);
	xas_unlock(&xas);
	/* A split block handed out whole is packed again. */
	if (locked == end && end - start == GMEM_BLOCK_PAGES &&
	    IS_ALIGNED(start, GMEM_BLOCK_PAGES))
		gmem_store_pack(s, start);
	return locked == end;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_hand_out);

/*
 * The kernel keeps a store's policy ranges in memory no memcg is charged
 * for (as for shmem, whose ranges the number of VMAs bounds): a store
 * holds at most this many, enough for any layout of nodes and memslots.
 */
#define GMEM_MAX_POLICY_RANGES	1024

/*
 * Whether setting [@start, @end) may add more ranges than the store may
 * hold: the new one (@pol), and one that a range around it splits into.
 */
static bool gmem_store_policy_full(struct gmem_store *s, pgoff_t start,
				   pgoff_t end, struct mempolicy *pol)
{
	unsigned int nr = 0, adds = !!pol;
	struct sp_node *sn;
	struct rb_node *n;

	read_lock(&s->policy.lock);
	sn = gmem_store_policy_after(s, start);
	if (sn && sn->start < start && sn->end > end)
		adds++;
	for (n = rb_first(&s->policy.root); adds && n; n = rb_next(n))
		nr++;
	read_unlock(&s->policy.lock);
	return adds && nr + adds > GMEM_MAX_POLICY_RANGES;
}

/**
 * gmem_store_set_policy() - set the NUMA memory policy of a range
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 * @pol: the policy (the store takes its own reference), or NULL for the
 *	default: the allocating thread's own policy
 *
 * Later allocations in the range follow @pol; pages already in the
 * store stay where they are.  The caller excludes allocations (which
 * also read the tree outside its lock, to see whether a block lies in
 * one range) and other calls of this function.
 *
 * Return: 0, -ENOSPC if the store would hold more than 1024 ranges (a
 * new one and a split one count; a call that adds none never fails so),
 * -ENOMEM.
 */
int gmem_store_set_policy(struct gmem_store *s, pgoff_t start, pgoff_t end,
			  struct mempolicy *pol)
{
	if (gmem_store_policy_full(s, start, end, pol))
		return -ENOSPC;
	return mpol_set_shared_range(&s->policy, start, end - start, pol);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_set_policy);

/**
 * gmem_store_policy() - the NUMA memory policy of a page offset
 * @s: the store
 * @index: page offset
 *
 * Return: the policy with a reference (put it with mpol_put()), or NULL
 * when none was set.
 */
struct mempolicy *gmem_store_policy(struct gmem_store *s, pgoff_t index)
{
	return mpol_shared_policy_lookup(&s->policy, index);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_policy);

/**
 * gmem_store_on_nodes() - are the pages of a range on the given nodes?
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 * @nodes: the nodes
 *
 * Held pages count.  The caller excludes removal.
 *
 * Return: false if a page of [@start, @end) is on a node not in @nodes.
 */
bool gmem_store_on_nodes(struct gmem_store *s, pgoff_t start, pgoff_t end,
			 const nodemask_t *nodes)
{
	struct folio *folio;
	unsigned long key;

	if (start >= end)
		return true;
	xa_for_each_range(&s->blocks, key, folio, start >> GMEM_BLOCK_ORDER,
			  (end - 1) >> GMEM_BLOCK_ORDER)
		if (!node_isset(folio_nid(folio), *nodes))
			return false;
	xa_for_each_range(&s->pages, key, folio, start, end - 1) {
		if (!node_isset(folio_nid(folio), *nodes))
			return false;
		if (!(key & 511))
			cond_resched();
	}
	return true;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_on_nodes);

/**
 * gmem_store_destroy() - free every page and the xarray
 * @s: the store, no longer reachable by anyone else
 */
void gmem_store_destroy(struct gmem_store *s)
{
	gmem_store_free(s, 0, ULONG_MAX, false, false);
	xa_destroy(&s->pages);
	xa_destroy(&s->blocks);
	xa_destroy(&s->giants);
	/* Empty: every page was counted out of its allocation. */
	WARN_ON_ONCE(!xa_empty(&s->giant_pfns));
	xa_destroy(&s->giant_pfns);
	mpol_free_shared_policy(&s->policy);
	kfree(s->node_pages);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_destroy);
