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
 * Populating a naturally aligned 2 MiB range allocates it as one
 * physically contiguous block when the page allocator has one: the block
 * is split into order-0 pages at once (each freed on its own by a punch),
 * and the store marks its first index GMEM_BLOCK while all its pages are
 * present, so that KVM may map the whole block with one 2M NPT/EPT entry
 * (gmem_store_block()).
 *
 * Nothing is ever taken out of the store while its file's lock is held
 * shared: lookups and insertions run concurrently, and what one of them
 * published stays until a removal, which holds the lock exclusively and
 * zaps guest mappings first.  So a block is published whole or not at
 * all (gmem_store_insert_block()), and a failing populate keeps what it
 * allocated.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/pagevec.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>

#include "gmem.h"

#define GMEM_GFP (GFP_HIGHUSER | __GFP_ZERO | __GFP_ACCOUNT | \
		  __GFP_RETRY_MAYFAIL | __GFP_NOWARN)
/* Xarray nodes: past the memcg limit, fail with -ENOMEM, never OOM-kill. */
#define GMEM_NODE_GFP (GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

/*
 * Marks a page that was handed to a guest (gmem_store_set_guest()): the
 * guest may map it, so its content must not change under the guest.
 * Removing the page from the store clears the mark.
 */
#define GMEM_GUEST XA_MARK_2

/*
 * Marks the first index of GMEM_BLOCK_PAGES pages that are present, in
 * order and physically contiguous, from one naturally aligned allocation.
 * Removing any of them clears the mark.
 */
#define GMEM_BLOCK XA_MARK_0
/* Opportunistic: a free block or none, no reclaim or compaction for it. */
#define GMEM_BLOCK_GFP ((GFP_HIGHUSER | __GFP_ZERO | __GFP_ACCOUNT | \
			 __GFP_NORETRY | __GFP_NOWARN) & ~__GFP_DIRECT_RECLAIM)

/**
 * gmem_store_init() - set up an empty store
 * @s: the store
 * @memcg: memory cgroup to charge, or NULL for the allocating task's; the
 *	caller keeps a reference on it for the life of the store
 */
void gmem_store_init(struct gmem_store *s, struct mem_cgroup *memcg)
{
	/*
	 * XA_FLAGS_ACCOUNT: nodes allocated under the xa_lock (GFP_NOWAIT)
	 * are charged too, to the active memcg, which insertions set to
	 * @memcg.  Such a charge fails rather than reclaims; the insertion
	 * then retries through xas_nomem() with __GFP_RETRY_MAYFAIL, which
	 * fails with -ENOMEM past memory.max instead of waking the OOM killer.
	 */
	xa_init_flags(&s->pages, XA_FLAGS_ACCOUNT);
	atomic_long_set(&s->nr_pages, 0);
	s->memcg = memcg;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_init);

/*
 * Allocate a zeroed folio and insert it at @index, charging both the
 * pages and any xarray nodes to the store's memcg.  Returns the folio
 * now at @index (which may be one a concurrent caller inserted first)
 * with a reference for the caller, or an ERR_PTR.
 */
static struct folio *gmem_store_insert_new(struct gmem_store *s, pgoff_t index)
{
	struct mem_cgroup *old_memcg = set_active_memcg(s->memcg);
	XA_STATE(xas, &s->pages, index);
	struct folio *folio, *old;

	folio = folio_alloc(GMEM_GFP, 0);
	if (!folio) {
		set_active_memcg(old_memcg);
		return ERR_PTR(-ENOMEM);
	}
	/*
	 * A hole, or an index reserved by a block insertion in progress
	 * (XA_ZERO_ENTRY), which this page takes over: the block then
	 * gives up.  Anything else is a page a concurrent caller inserted.
	 */
	do {
		xas_lock(&xas);
		old = xas_load(&xas);
		if (!old || xa_is_zero(old)) {
			old = NULL;
			xas_store(&xas, folio);
		} else {
			folio_get(old);
		}
		xas_unlock(&xas);
	} while (xas_nomem(&xas, GMEM_NODE_GFP));
	set_active_memcg(old_memcg);

	if (unlikely(old || xas_error(&xas))) {
		folio_put(folio);
		return old ?: ERR_PTR(xas_error(&xas));
	}
	atomic_long_inc(&s->nr_pages);
	gmem_stats_add_pages(1);
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
 * else nothing is stored.  Returns 0 or -EEXIST.
 */
static int gmem_store_commit_block(struct gmem_store *s, pgoff_t index,
				   struct page *page)
{
	XA_STATE(xas, &s->pages, index);
	unsigned int i;
	int r = 0;

	xas_lock(&xas);
	for (i = 0; i < GMEM_BLOCK_PAGES; i++, xas_next(&xas)) {
		if (xas_load(&xas) != XA_ZERO_ENTRY) {
			r = -EEXIST;
			break;
		}
	}
	if (!r) {
		xas_set(&xas, index);
		for (i = 0; i < GMEM_BLOCK_PAGES; i++, xas_next(&xas))
			xas_store(&xas, page_folio(page + i));
		xas_set(&xas, index);
		xas_load(&xas);
		xas_set_mark(&xas, GMEM_BLOCK);
	}
	xas_unlock(&xas);
	return r;
}

/*
 * Allocate a zeroed, naturally aligned block of GMEM_BLOCK_PAGES pages
 * and insert it at @index, all of [@index, @index + GMEM_BLOCK_PAGES)
 * being holes.  Returns 0, or -errno for the caller to fall back to
 * single pages: nothing of the block was published (a concurrent
 * insertion of the same block may lose its reservations to the unreserve
 * and fall back too).
 */
static int gmem_store_insert_block(struct gmem_store *s, pgoff_t index)
{
	pgoff_t last = index + GMEM_BLOCK_PAGES - 1, first = index;
	struct mem_cgroup *old_memcg;
	struct page *page;
	unsigned int i;
	int r;

	if (xa_find(&s->pages, &first, last, XA_PRESENT))
		return -EEXIST;
	old_memcg = set_active_memcg(s->memcg);
	page = alloc_pages(GMEM_BLOCK_GFP, GMEM_BLOCK_ORDER);
	if (!page) {
		set_active_memcg(old_memcg);
		return -ENOMEM;
	}
	r = gmem_store_reserve_block(s, index);
	set_active_memcg(old_memcg);
	if (r) {
		gmem_store_unreserve_block(s, index);
		__free_pages(page, GMEM_BLOCK_ORDER);
		return r;
	}
	/* Order-0 pages from here on, each with its own reference. */
	split_page(page, GMEM_BLOCK_ORDER);
	r = gmem_store_commit_block(s, index, page);
	if (r) {
		gmem_store_unreserve_block(s, index);
		for (i = 0; i < GMEM_BLOCK_PAGES; i++)
			__free_page(page + i);
		return r;
	}
	atomic_long_add(GMEM_BLOCK_PAGES, &s->nr_pages);
	gmem_stats_add_pages(GMEM_BLOCK_PAGES);
	return 0;
}

/**
 * gmem_store_get() - the folio that holds page @index
 * @s: the store
 * @index: page offset in the file
 * @alloc: allocate a zeroed folio when @index is a hole
 *
 * The caller excludes removal (see &struct gmem_store).
 *
 * Return: the folio with a reference for the caller (drop it with
 * folio_put()); NULL for a hole when !@alloc; ERR_PTR(-ENOMEM) when the
 * allocation or the memcg charge fails.
 */
struct folio *gmem_store_get(struct gmem_store *s, pgoff_t index, bool alloc)
{
	struct folio *folio = xa_load(&s->pages, index);

	if (!folio)
		return alloc ? gmem_store_insert_new(s, index) : NULL;
	folio_get(folio);
	return folio;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_get);

/**
 * gmem_store_populate() - allocate every hole in [@start, @end)
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 *
 * The caller excludes removal.  On a signal or a failed allocation,
 * what was allocated before stays in the store (as with KVM's own
 * guest_memfd): a guest may already have been handed any of it.
 *
 * Return: 0, -EINTR on a pending signal, -ENOMEM.
 */
int gmem_store_populate(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	struct folio *folio;
	pgoff_t index;
	int r = 0;

	for (index = start; index < end; index++) {
		if (signal_pending(current)) {
			r = -EINTR;
			break;
		}
		if (IS_ALIGNED(index, GMEM_BLOCK_PAGES) &&
		    end - index >= GMEM_BLOCK_PAGES &&
		    !gmem_store_insert_block(s, index)) {
			index += GMEM_BLOCK_PAGES - 1;
			cond_resched();
			continue;
		}
		if (xa_load(&s->pages, index))
			continue;
		folio = gmem_store_insert_new(s, index);
		if (IS_ERR(folio))
			return PTR_ERR(folio);
		/* The store keeps its own reference. */
		folio_put(folio);
		cond_resched();
	}
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_populate);

/*
 * Pages of [@start, @end) are about to leave the store: the blocks they
 * belong to are no longer whole.  Called with the xa_lock held.
 */
static void gmem_store_break_blocks(struct gmem_store *s, pgoff_t start,
				    pgoff_t end)
{
	XA_STATE(xas, &s->pages, round_down(start, GMEM_BLOCK_PAGES));
	struct folio *folio;

	lockdep_assert_held(&s->pages.xa_lock);
	xas_for_each_marked(&xas, folio, end - 1, GMEM_BLOCK)
		xas_clear_mark(&xas, GMEM_BLOCK);
}

/**
 * gmem_store_remove() - take the pages of [@start, @end) out and free them
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 *
 * The caller holds off lookups and insertions and has already made sure
 * nobody maps the pages (guest mappings are zapped first).  A folio in
 * flight in a KVM fault is freed when that fault drops its reference.
 *
 * Return: the number of pages removed.
 */
unsigned long gmem_store_remove(struct gmem_store *s, pgoff_t start,
				pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	struct folio_batch fbatch;
	unsigned long nr = 0;
	struct folio *folio;

	if (start >= end)
		return 0;

	folio_batch_init(&fbatch);
	xas_lock(&xas);
	gmem_store_break_blocks(s, start, end);
	xas_for_each(&xas, folio, end - 1) {
		unsigned long n = folio_nr_pages(folio);

		xas_store(&xas, NULL);
		nr += n;
		if (folio_batch_add(&fbatch, folio) && !need_resched())
			continue;
		/*
		 * Free the batch without the lock, and restart after this
		 * entry, not with xas_pause(): if the store freed the node,
		 * @xas now points into the parent and 6.12's xas_pause()
		 * steps over the rest of the parent's slot (63 pages left
		 * behind).
		 */
		xas_set(&xas, (xas.xa_index | (n - 1)) + 1);
		xas_unlock(&xas);
		folios_put(&fbatch);
		cond_resched();
		xas_lock(&xas);
	}
	xas_unlock(&xas);
	folios_put(&fbatch);

	atomic_long_sub(nr, &s->nr_pages);
	gmem_stats_add_pages(-(long)nr);
	return nr;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_remove);

/**
 * gmem_store_set_guest() - remember that page @index was handed to a guest
 * @s: the store
 * @index: page offset of a page in the store
 *
 * The caller excludes removal.  The mark stays until the page is removed.
 */
void gmem_store_set_guest(struct gmem_store *s, pgoff_t index)
{
	if (!xa_get_mark(&s->pages, index, GMEM_GUEST))
		xa_set_mark(&s->pages, index, GMEM_GUEST);
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
	return xa_get_mark(&s->pages, index, GMEM_GUEST);
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
 * block of GMEM_BLOCK_PAGES present pages that holds @index, or
 * ULONG_MAX if there is none.
 */
pgoff_t gmem_store_block(struct gmem_store *s, pgoff_t index)
{
	pgoff_t head = round_down(index, GMEM_BLOCK_PAGES);

	return xa_get_mark(&s->pages, head, GMEM_BLOCK) ? head : ULONG_MAX;
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
	bool r = false;

	rcu_read_lock();
	xas_for_each(&xas, folio, end - 1) {
		if (xas_retry(&xas, folio))
			continue;
		if (folio_test_hwpoison(folio)) {
			r = true;
			break;
		}
	}
	rcu_read_unlock();
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_hwpoisoned);

/**
 * gmem_store_hand_out() - pages [@start, @end) are given to a guest
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last; all pages in between are present
 *
 * What gmem_store_set_guest() does for one page, for a range at once:
 * GMEM_WRITE leaves the pages alone.  The caller excludes removal.
 */
void gmem_store_hand_out(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	struct folio *folio;

	xas_lock(&xas);
	xas_for_each(&xas, folio, end - 1)
		xas_set_mark(&xas, GMEM_GUEST);
	xas_unlock(&xas);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_hand_out);

/**
 * gmem_store_destroy() - free every page and the xarray
 * @s: the store, no longer reachable by anyone else
 */
void gmem_store_destroy(struct gmem_store *s)
{
	gmem_store_remove(s, 0, ULONG_MAX);
	xa_destroy(&s->pages);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_destroy);
