// SPDX-License-Identifier: GPL-2.0-only
/*
 * The attributes of the pages of a gmem file (GMEM_ATTR_*), which decide
 * what a private guest fault on a page does (see gmem_kvm_get_pfn()).
 *
 * Attributes are kept as runs, not page by page: a maple tree holds one
 * range entry per maximal run of pages with the same non-zero attributes
 * (the value is xa_mk_value(attributes)), and pages without attributes
 * are the gaps between them.  Setting one attribute on a whole 1 TiB
 * file stores a single range; the cost of the tree grows with the number
 * of runs, never with the size of the file.  Two adjacent runs never hold
 * the same value: every store merges with equal neighbours, and the tree
 * itself merges adjacent gaps.
 *
 * The tree uses the file's lock as its external lock: readers (guest
 * faults, GMEM_GET_ATTRIBUTES) hold it shared, writers exclusively.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/maple_tree.h>
#include <linux/memcontrol.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/string.h>

#include "gmem.h"

/**
 * gmem_attrs_init() - set up the attributes of a new file: none on any page
 * @a: the attributes
 * @lock: the lock that protects them (the file's lock)
 * @memcg: memory cgroup to charge for the tree, or NULL for the task that
 *	changes the attributes; the caller keeps a reference on it
 */
void gmem_attrs_init(struct gmem_attrs *a, struct rw_semaphore *lock,
		     struct mem_cgroup *memcg)
{
	mt_init_flags(&a->runs, MT_FLAGS_LOCK_EXTERN);
	mt_set_external_lock(&a->runs, lock);
	a->lock = lock;
	a->memcg = memcg;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_attrs_init);

/**
 * gmem_attrs_destroy() - free the attributes
 * @a: the attributes, no longer reachable by anyone else
 */
void gmem_attrs_destroy(struct gmem_attrs *a)
{
	/* Uncontended: taken for the tree's lock checks only. */
	down_write(a->lock);
	__mt_destroy(&a->runs);
	up_write(a->lock);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_attrs_destroy);

/**
 * gmem_attrs_get() - the attributes of one page, and how far they extend
 * @a: the attributes
 * @index: page offset in the file
 * @last: if not NULL, set to the last page offset of the run of pages
 *	from @index with the same attributes (ULONG_MAX for the trailing
 *	run without attributes: callers clamp it to the file size)
 *
 * The caller holds @a->lock, shared or exclusively.
 *
 * Return: the GMEM_ATTR_* bits of page @index.
 */
u64 gmem_attrs_get(struct gmem_attrs *a, pgoff_t index, pgoff_t *last)
{
	MA_STATE(mas, &a->runs, index, index);
	void *entry;

	lockdep_assert_held(a->lock);
	entry = mas_walk(&mas);
	if (last)
		*last = mas.last;
	return entry ? xa_to_value(entry) : 0;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_attrs_get);

/*
 * Give the pages [@first, @last] the attributes @v, merged with the run
 * before and the run after when they have the same attributes.  Returns
 * 0 or -ENOMEM.
 */
static int gmem_attrs_store(struct gmem_attrs *a, pgoff_t first, pgoff_t last,
			    u64 v)
{
	MA_STATE(mas, &a->runs, 0, 0);
	void *entry = v ? xa_mk_value(v) : NULL;
	struct mem_cgroup *old_memcg;
	int r;

	/* Gaps merge by themselves; runs with a value need a hand. */
	if (entry && first) {
		mas_set(&mas, first - 1);
		if (mas_walk(&mas) == entry)
			first = mas.index;
	}
	if (entry && last != ULONG_MAX) {
		mas_set(&mas, last + 1);
		if (mas_walk(&mas) == entry)
			last = mas.last;
	}
	mas_set_range(&mas, first, last);
	/*
	 * Preallocate, so that every node is charged to the file's memcg
	 * (mas_store_gfp() tries an uncharged GFP_NOWAIT allocation first),
	 * and past its limit fail with -ENOMEM rather than OOM-kill.
	 */
	old_memcg = set_active_memcg(a->memcg);
	r = mas_preallocate(&mas, entry,
			    GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN);
	set_active_memcg(old_memcg);
	if (r)
		return r;
	mas_store_prealloc(&mas, entry);
	return 0;
}

/**
 * gmem_attrs_set() - change the attributes of the pages [@start, @end)
 * @a: the attributes
 * @start: first page offset
 * @end: page offset after the last
 * @attrs: new values of the bits in @mask (a subset of @mask)
 * @mask: the GMEM_ATTR_* bits to change; the others keep their value
 *
 * The caller holds @a->lock exclusively.  A @mask with every known bit
 * stores one range, whatever the range held before; a narrower @mask
 * visits the runs of the range one by one.
 *
 * Return: 0; -ENOMEM, or -EINTR on a pending signal, after which a prefix
 * of the range may have its new attributes (repeating the call is safe).
 */
int gmem_attrs_set(struct gmem_attrs *a, pgoff_t start, pgoff_t end,
		   u64 attrs, u64 mask)
{
	pgoff_t index = start, last;
	u64 old, new;
	int r;

	lockdep_assert_held_write(a->lock);
	if (start >= end)
		return 0;
	if ((mask & GMEM_ATTRS) == GMEM_ATTRS)
		return gmem_attrs_store(a, start, end - 1, attrs & GMEM_ATTRS);

	for (;;) {
		old = gmem_attrs_get(a, index, &last);
		last = min(last, end - 1);
		new = (old & ~mask) | (attrs & mask);
		if (new != old) {
			r = gmem_attrs_store(a, index, last, new);
			if (r)
				return r;
		}
		if (last == end - 1)
			return 0;
		index = last + 1;
		if (signal_pending(current))
			return -EINTR;
		cond_resched();
	}
}
EXPORT_SYMBOL_IF_KUNIT(gmem_attrs_set);

/**
 * gmem_attrs_check() - check the fields of a &struct gmem_attributes
 * @args: the argument of GMEM_SET_ATTRIBUTES or GMEM_GET_ATTRIBUTES, as
 *	copied from userspace
 * @set: for GMEM_SET_ATTRIBUTES (also check @args->mask and
 *	@args->attributes)
 *
 * The range is checked separately (gmem_page_range()).
 *
 * Return: 0, or -EINVAL for non-zero flags or reserved fields, and for
 * SET a mask that is zero or has unknown bits, or attributes outside it.
 */
int gmem_attrs_check(const struct gmem_attributes *args, bool set)
{
	if (args->flags || memchr_inv(args->reserved, 0, sizeof(args->reserved)))
		return -EINVAL;
	if (!set)
		return 0;
	if (!args->mask || (args->mask & ~GMEM_ATTRS) ||
	    (args->attributes & ~args->mask))
		return -EINVAL;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_attrs_check);
