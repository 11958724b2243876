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

/*
 * Marks a page that gmem_store_populate() inserted and that nobody has
 * been handed yet: if the populate call fails for lack of memory, it
 * takes exactly these pages back out (gmem_store_rollback()).
 */
#define GMEM_TENTATIVE XA_MARK_1

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
static struct folio *gmem_store_insert_new(struct gmem_store *s, pgoff_t index,
					   bool tentative)
{
	struct mem_cgroup *old_memcg = set_active_memcg(s->memcg);
	struct folio *folio, *old;

	folio = folio_alloc(GMEM_GFP, 0);
	if (!folio) {
		set_active_memcg(old_memcg);
		return ERR_PTR(-ENOMEM);
	}
	/* Nodes too: past the memcg limit, fail with -ENOMEM, never OOM-kill. */
	xa_lock(&s->pages);
	old = __xa_cmpxchg(&s->pages, index, NULL, folio,
			   GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN);
	if (!old && tentative)
		__xa_set_mark(&s->pages, index, GMEM_TENTATIVE);
	else if (old && !xa_is_err(old))
		folio_get(old);
	xa_unlock(&s->pages);
	set_active_memcg(old_memcg);

	if (unlikely(old)) {
		folio_put(folio);
		return xa_is_err(old) ? ERR_PTR(xa_err(old)) : old;
	}
	atomic_long_inc(&s->nr_pages);
	gmem_stats_add_pages(1);
	folio_get(folio);
	return folio;
}

/*
 * Store the pages of the block from @page at @index + *@i onwards, tentative,
 * advancing *@i.  Called with the xa_lock held.  Returns 0, -EEXIST when
 * an index is taken, or the xarray's error (-ENOMEM: retry after
 * xas_nomem()).
 */
static int gmem_store_fill_block(struct xa_state *xas, pgoff_t index,
				 struct page *page, unsigned int *i)
{
	xas_set(xas, index + *i);
	for (; *i < GMEM_BLOCK_PAGES; (*i)++) {
		if (xas_load(xas))
			return -EEXIST;
		xas_store(xas, page_folio(page + *i));
		if (xas_error(xas))
			return xas_error(xas);
		xas_set_mark(xas, GMEM_TENTATIVE);
		xas_next(xas);
	}
	return 0;
}

/*
 * Insert the GMEM_BLOCK_PAGES pages from @page at @index, tentative, and
 * mark the block.  Returns 0, or -EEXIST or -ENOMEM with nothing of @page
 * left in the store.
 */
static int __gmem_store_insert_block(struct gmem_store *s, pgoff_t index,
				     struct page *page)
{
	XA_STATE(xas, &s->pages, index);
	unsigned int i = 0;
	int r;

	do {
		xas_lock(&xas);
		r = gmem_store_fill_block(&xas, index, page, &i);
		xas_unlock(&xas);
	} while (r == -ENOMEM &&
		 xas_nomem(&xas, GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL |
			   __GFP_NOWARN));

	xas_lock(&xas);
	if (r) {
		while (i--) {
			xas_set(&xas, index + i);
			xas_store(&xas, NULL);
		}
	} else {
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
 * being holes.  Returns 0, or -errno and leaves the store as it was, for
 * the caller to fall back to single pages.
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
	if (page) {
		/* Order-0 pages from here on, each with its own reference. */
		split_page(page, GMEM_BLOCK_ORDER);
		r = __gmem_store_insert_block(s, index, page);
	} else {
		r = -ENOMEM;
	}
	set_active_memcg(old_memcg);
	if (r) {
		for (i = 0; page && i < GMEM_BLOCK_PAGES; i++)
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
		return alloc ? gmem_store_insert_new(s, index, false) : NULL;
	/* Handed out: a failing populate must no longer take it back. */
	if (unlikely(xa_get_mark(&s->pages, index, GMEM_TENTATIVE)))
		xa_clear_mark(&s->pages, index, GMEM_TENTATIVE);
	folio_get(folio);
	return folio;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_get);

/* Clear the tentative marks of [@start, @end): the pages are for good. */
static void gmem_store_confirm(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	struct folio *folio;

	xas_lock(&xas);
	xas_for_each_marked(&xas, folio, end - 1, GMEM_TENTATIVE) {
		xas_clear_mark(&xas, GMEM_TENTATIVE);
		if (need_resched()) {
			xas_pause(&xas);
			xas_unlock(&xas);
			cond_resched();
			xas_lock(&xas);
		}
	}
	xas_unlock(&xas);
}

/**
 * gmem_store_populate() - allocate every hole in [@start, @end)
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last
 *
 * The caller excludes removal.  Interruptible: on a signal, what was
 * allocated stays in the store.  On -ENOMEM the pages this call inserted
 * and nobody was handed since stay marked tentative, and the caller
 * takes them back out with gmem_store_rollback() once it can exclude
 * lookups, so that a failed allocation leaves nothing behind.
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
		folio = gmem_store_insert_new(s, index, true);
		if (IS_ERR(folio))
			return PTR_ERR(folio);
		/* The store keeps its own reference. */
		folio_put(folio);
		cond_resched();
	}
	gmem_store_confirm(s, start, index);
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
 * gmem_store_rollback() - free the pages a failed populate left tentative
 * @s: the store
 * @start: first page offset of the failed gmem_store_populate()
 * @end: its end
 *
 * The caller excludes lookups and insertions.
 *
 * Return: the number of pages freed.
 */
unsigned long gmem_store_rollback(struct gmem_store *s, pgoff_t start,
				  pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	unsigned long nr = 0;
	struct folio *folio;

	xas_lock(&xas);
	gmem_store_break_blocks(s, start, end);
	xas_for_each_marked(&xas, folio, end - 1, GMEM_TENTATIVE) {
		xas_store(&xas, NULL);
		nr += folio_nr_pages(folio);
		folio_put(folio);
	}
	xas_unlock(&xas);

	atomic_long_sub(nr, &s->nr_pages);
	gmem_stats_add_pages(-(long)nr);
	return nr;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_rollback);

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
 * gmem_store_hand_out() - pages [@start, @end) are given to a guest
 * @s: the store
 * @start: first page offset
 * @end: page offset after the last; all pages in between are present
 *
 * What gmem_store_get() and gmem_store_set_guest() do for one page, for a
 * range at once: a failing populate no longer takes the pages back, and
 * GMEM_WRITE leaves them alone.  The caller excludes removal.
 */
void gmem_store_hand_out(struct gmem_store *s, pgoff_t start, pgoff_t end)
{
	XA_STATE(xas, &s->pages, start);
	struct folio *folio;

	xas_lock(&xas);
	xas_for_each(&xas, folio, end - 1) {
		xas_clear_mark(&xas, GMEM_TENTATIVE);
		xas_set_mark(&xas, GMEM_GUEST);
	}
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
