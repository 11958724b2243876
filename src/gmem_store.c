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
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
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

/**
 * gmem_store_init() - set up an empty store
 * @s: the store
 * @memcg: memory cgroup to charge, or NULL for the allocating task's; the
 *	caller keeps a reference on it for the life of the store
 */
void gmem_store_init(struct gmem_store *s, struct mem_cgroup *memcg)
{
	xa_init(&s->pages);
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
	xa_lock(&s->pages);
	old = __xa_cmpxchg(&s->pages, index, NULL, folio,
			   GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
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
		if (xa_load(&s->pages, index))
			continue;
		if (signal_pending(current)) {
			r = -EINTR;
			break;
		}
		folio = gmem_store_insert_new(s, index, true);
		if (IS_ERR(folio))
			return PTR_ERR(folio);
		/* The store keeps its own reference; drop ours. */
		folio_put(folio);
		cond_resched();
	}
	gmem_store_confirm(s, start, index);
	return r;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_populate);

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
	unsigned long nr = 0;
	struct folio *folio;

	if (start >= end)
		return 0;

	xas_lock(&xas);
	xas_for_each(&xas, folio, end - 1) {
		unsigned long n = folio_nr_pages(folio);
		pgoff_t next = round_down(xas.xa_index, n) + n;

		xas_store(&xas, NULL);
		nr += n;
		folio_put(folio);
		if (need_resched()) {
			/*
			 * Restart after this entry, not with xas_pause(): when
			 * xas_store() has just freed the last node's entry,
			 * xas_pause() moves on from the parent node without
			 * aligning the index, and steps over entries.
			 */
			xas_set(&xas, next);
			xas_unlock(&xas);
			cond_resched();
			xas_lock(&xas);
		}
	}
	xas_unlock(&xas);

	atomic_long_sub(nr, &s->nr_pages);
	gmem_stats_add_pages(-(long)nr);
	return nr;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_store_remove);

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
