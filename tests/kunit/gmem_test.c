// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit suites for gmem: the ioctl dispatch of /dev/gmem, the fallocate
 * range arithmetic and the page store.
 */
#include <kunit/test.h>
#include <kunit/visibility.h>
#include <linux/falloc.h>
#include <linux/highmem.h>
#include <linux/kvm_host.h>
#include <linux/memcontrol.h>
#include <linux/mempolicy.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "gmem.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

static void gmem_dev_ioctl_unknown_test(struct kunit *test)
{
	/* Neither a foreign ioctl nor an unused number of gmem's own type. */
	KUNIT_EXPECT_EQ(test, gmem_dev_ioctl(NULL, _IO('X', 1), 0), -ENOTTY);
	KUNIT_EXPECT_EQ(test, gmem_dev_ioctl(NULL, _IO(GMEM_IOCTL_MAGIC, 0xff), 0),
			-ENOTTY);
}

/* Only VM types whose private memory needs no arch preparation bind. */
static void gmem_kvm_vm_type_test(struct kunit *test)
{
	KUNIT_EXPECT_TRUE(test, gmem_kvm_vm_type_ok(KVM_X86_SW_PROTECTED_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_vm_type_ok(KVM_X86_DEFAULT_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_vm_type_ok(KVM_X86_SEV_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_vm_type_ok(KVM_X86_SEV_ES_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_vm_type_ok(KVM_X86_SNP_VM));
	/* TDX, numbered after SNP upstream; and what comes later. */
	KUNIT_EXPECT_FALSE(test, gmem_kvm_vm_type_ok(KVM_X86_SNP_VM + 1));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_vm_type_ok(ULONG_MAX));
}

/*
 * Takeover serves what binds, and the default VM (no private memory, but
 * it may create guest_memfd files); SEV, SEV-ES, SNP and later types stay
 * with KVM's own guest_memfd.
 */
static void gmem_kvm_takeover_type_test(struct kunit *test)
{
	KUNIT_EXPECT_TRUE(test, gmem_kvm_takeover_ok(KVM_X86_SW_PROTECTED_VM));
	KUNIT_EXPECT_TRUE(test, gmem_kvm_takeover_ok(KVM_X86_DEFAULT_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_takeover_ok(KVM_X86_SEV_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_takeover_ok(KVM_X86_SEV_ES_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_takeover_ok(KVM_X86_SNP_VM));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_takeover_ok(KVM_X86_SNP_VM + 1));
	KUNIT_EXPECT_FALSE(test, gmem_kvm_takeover_ok(ULONG_MAX));
}

static struct kunit_case gmem_dev_test_cases[] = {
	KUNIT_CASE(gmem_dev_ioctl_unknown_test),
	KUNIT_CASE(gmem_kvm_vm_type_test),
	KUNIT_CASE(gmem_kvm_takeover_type_test),
	{}
};

static struct kunit_suite gmem_dev_test_suite = {
	.name = "gmem_dev",
	.test_cases = gmem_dev_test_cases,
};

#define P		((loff_t)PAGE_SIZE)
#define KEEP		FALLOC_FL_KEEP_SIZE
#define PUNCH		(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define TOP		(MAX_LFS_FILESIZE & PAGE_MASK)

struct falloc_case {
	const char *name;
	loff_t size;
	int mode;
	loff_t offset, len;
	int ret;
	pgoff_t start, end;
};

static const struct falloc_case falloc_cases[] = {
	{ "first page", 16 * P, KEEP, 0, P, 0, 0, 1 },
	{ "whole file", 16 * P, KEEP, 0, 16 * P, 0, 0, 16 },
	{ "last page", 16 * P, KEEP, 15 * P, P, 0, 15, 16 },
	{ "alloc past size", 16 * P, KEEP, 15 * P, 2 * P, -EINVAL },
	{ "alloc after size", 16 * P, KEEP, 16 * P, P, -EINVAL },
	{ "punch last page", 16 * P, PUNCH, 15 * P, P, 0, 15, 16 },
	{ "punch past size", 16 * P, PUNCH, 15 * P, 4 * P, 0, 15, 16 },
	{ "punch after size", 16 * P, PUNCH, 20 * P, P, 0, 20, 20 },
	{ "no KEEP_SIZE", 16 * P, 0, 0, P, -EOPNOTSUPP },
	{ "punch without KEEP_SIZE", 16 * P, FALLOC_FL_PUNCH_HOLE, 0, P, -EOPNOTSUPP },
	{ "zero range", 16 * P, KEEP | FALLOC_FL_ZERO_RANGE, 0, P, -EOPNOTSUPP },
	{ "collapse range", 16 * P, KEEP | FALLOC_FL_COLLAPSE_RANGE, 0, P, -EOPNOTSUPP },
	{ "unaligned offset", 16 * P, KEEP, 1, P, -EINVAL },
	{ "unaligned length", 16 * P, KEEP, 0, P - 1, -EINVAL },
	{ "unaligned punch", 16 * P, PUNCH, P / 2, P, -EINVAL },
	{ "zero length", 16 * P, KEEP, 0, 0, -EINVAL },
	{ "negative offset", 16 * P, KEEP, -P, P, -EINVAL },
	{ "negative length", 16 * P, PUNCH, 0, -P, -EINVAL },
	{ "offset + len overflows", TOP, PUNCH, TOP, LLONG_MAX & PAGE_MASK, -EINVAL },
	{ "last page of the largest file", TOP, KEEP, TOP - P, P, 0,
	  (TOP - P) >> PAGE_SHIFT, TOP >> PAGE_SHIFT },
	{ "punch beyond LLONG_MAX", TOP, PUNCH, TOP - P, 2 * P, -EINVAL },
	{ "punch near LLONG_MAX past size", TOP - 4 * P, PUNCH, TOP - 2 * P, 2 * P,
	  0, (TOP - 2 * P) >> PAGE_SHIFT, (TOP - 2 * P) >> PAGE_SHIFT },
};

static void falloc_case_desc(const struct falloc_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(falloc, falloc_cases, falloc_case_desc);

static void gmem_falloc_range_test(struct kunit *test)
{
	const struct falloc_case *c = test->param_value;
	pgoff_t start = 0xdead, end = 0xbeef;
	int ret;

	ret = gmem_falloc_range(c->size, c->mode, c->offset, c->len, &start, &end);
	KUNIT_ASSERT_EQ(test, ret, c->ret);
	if (ret)
		return;
	KUNIT_EXPECT_EQ(test, start, c->start);
	KUNIT_EXPECT_EQ(test, end, c->end);
}

static struct kunit_case gmem_range_test_cases[] = {
	KUNIT_CASE_PARAM(gmem_falloc_range_test, falloc_gen_params),
	{}
};

static struct kunit_suite gmem_range_test_suite = {
	.name = "gmem_range",
	.test_cases = gmem_range_test_cases,
};

/* A store, and the pages out of the direct map when the test began. */
struct gmem_store_test {
	struct gmem_store s;
	unsigned long unmapped;
	unsigned long on_nodes;
};

/* Pages @s (NULL: every store) holds on any node. */
static unsigned long gmem_test_on_nodes(struct gmem_store *s)
{
	unsigned long n = 0;
	int nid;

	for_each_node(nid)
		n += gmem_store_node_pages(s, nid);
	return n;
}

static int __gmem_store_test_init(struct kunit *test, bool no_direct_map)
{
	struct gmem_store_test *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	if (!t)
		return -ENOMEM;
	if (gmem_store_init(&t->s, NULL))
		return -ENOMEM;
	t->s.no_direct_map = no_direct_map;
	t->unmapped = gmem_store_unmapped();
	t->on_nodes = gmem_test_on_nodes(NULL);
	test->priv = &t->s;
	return 0;
}

static int gmem_store_test_init(struct kunit *test)
{
	return __gmem_store_test_init(test, false);
}

static int gmem_store_nodirect_test_init(struct kunit *test)
{
	return __gmem_store_test_init(test, true);
}

static void gmem_store_test_exit(struct kunit *test)
{
	struct gmem_store_test *t = test->priv;

	/* Every page the store holds is counted on its node, once. */
	KUNIT_EXPECT_EQ(test, gmem_test_on_nodes(&t->s),
			atomic_long_read(&t->s.nr_pages) +
			atomic_long_read(&t->s.nr_held));
	gmem_store_destroy(&t->s);
	KUNIT_EXPECT_EQ(test, gmem_test_on_nodes(NULL), t->on_nodes);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&t->s.nr_pages), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&t->s.nr_held), 0);
	/* Every page taken out of the direct map was put back. */
	KUNIT_EXPECT_EQ(test, gmem_store_unmapped(), t->unmapped);
}

/*
 * The test's own mapping of @folio's page: the direct map may not have
 * it (stores without the direct map).  Undo with vunmap().
 */
static void *gmem_test_map(struct kunit *test, struct folio *folio)
{
	struct page *page = folio_page(folio, 0);
	void *p = vmap(&page, 1, VM_MAP, PAGE_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, p);
	return p;
}

static bool gmem_test_folio_zero(struct kunit *test, struct folio *folio)
{
	void *p = gmem_test_map(test, folio);
	bool zero = !memchr_inv(p, 0, PAGE_SIZE);

	vunmap(p);
	return zero;
}

/* Can the kernel read @page through the direct map? */
static bool gmem_test_reachable(struct page *page)
{
	char c;

	return !copy_from_kernel_nofault(&c, page_address(page), 1);
}

static void gmem_store_get_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	struct folio *a, *b;

	KUNIT_EXPECT_NULL(test, gmem_store_get(s, 3, false));
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);

	a = gmem_store_get(s, 3, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, a);
	KUNIT_EXPECT_TRUE(test, gmem_test_folio_zero(test, a));
	KUNIT_EXPECT_FALSE(test, folio_test_lru(a));
	KUNIT_EXPECT_EQ(test, folio_ref_count(a), 2);	/* store + ours */
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 1);

	b = gmem_store_get(s, 3, true);
	KUNIT_EXPECT_PTR_EQ(test, a, b);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 1);
	folio_put(b);
	folio_put(a);
}

static void gmem_store_populate_remove_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 8), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 8);
	/* Populate keeps no reference of its own: removal frees the page. */
	f = gmem_store_get(s, 7, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	KUNIT_EXPECT_EQ(test, folio_ref_count(f), 2);	/* store + ours */
	folio_put(f);
	/* Populating again allocates nothing new. */
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 4, 12), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 12);

	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 2, 4), 2);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 10);
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, 2, false));
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, 3, false));
	f = gmem_store_get(s, 4, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	folio_put(f);

	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 100, 200), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 5, 5), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 100), 10);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);
}

/* Populated pages hold the store's reference only: punched, they are freed. */
static void gmem_store_populate_refcount_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 4), 0);
	f = gmem_store_get(s, 1, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	KUNIT_EXPECT_EQ(test, folio_ref_count(f), 2);	/* store + ours */
	folio_put(f);
}

/*
 * A removal that reschedules right after freeing an xarray node must not
 * step over the entries of the next node: page 5 is alone in the first
 * node, pages 64-69 fill the next one.
 */
static void gmem_store_remove_resched_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 5, 6), 0);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 64, 70), 0);
	set_tsk_need_resched(current);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 100), 7);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);
	f = gmem_store_get(s, 64, false);
	KUNIT_EXPECT_NULL(test, f);
	if (!IS_ERR_OR_NULL(f))
		folio_put(f);
}

/* Entries that are reserved (XA_ZERO_ENTRY) anywhere in the store. */
static unsigned long gmem_store_reserved(struct gmem_store *s)
{
	XA_STATE(xas, &s->pages, 0);
	unsigned long n = 0;
	void *entry;

	xas_lock(&xas);
	xas_for_each(&xas, entry, ULONG_MAX)
		n += xa_is_zero(entry);
	xas_unlock(&xas);
	return n;
}

/*
 * A block insertion reserves its indices before it publishes any page.
 * A fault meanwhile takes a reserved index over; the block then gives
 * up whole and the populate fills the rest with single pages.  No
 * reservation is left behind, and every present page is counted.
 */
static void gmem_store_reserved_takeover_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *f, *g;
	pgoff_t i;

	for (i = B; i < 2 * B; i++)
		KUNIT_ASSERT_EQ(test, xa_reserve(&s->pages, i, GFP_KERNEL), 0);
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, B + 7, false));
	f = gmem_store_get(s, B + 7, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 1);

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 2 * B), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 2 * B);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B), ULONG_MAX);
	g = gmem_store_get(s, B + 7, false);
	KUNIT_EXPECT_PTR_EQ(test, f, g);
	if (!IS_ERR_OR_NULL(g))
		folio_put(g);
	folio_put(f);
	KUNIT_EXPECT_EQ(test, gmem_store_reserved(s), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 2 * B), 2 * B);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);
}

/* A block insertion that finds its range taken leaves no reservation. */
static void gmem_store_block_conflict_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *f;

	f = gmem_store_get(s, B - 1, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	folio_put(f);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, B), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), B);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_reserved(s), 0);
}

/*
 * memory_failure() only flags a gmem page: the store reports a flagged
 * page of a range (so KVM never maps its block at 2M), and the page
 * allocator keeps a flagged page when the store frees it.  The flag is
 * set by hand here and cleared before the page goes back.
 */
static void gmem_store_hwpoisoned_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, B + 2), 0);
	KUNIT_EXPECT_FALSE(test, gmem_store_hwpoisoned(s, 0, B + 2));
	f = gmem_store_get(s, 300, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	SetPageHWPoison(&f->page);
	KUNIT_EXPECT_TRUE(test, gmem_store_hwpoisoned(s, 0, B));
	KUNIT_EXPECT_TRUE(test, gmem_store_hwpoisoned(s, 300, 301));
	KUNIT_EXPECT_FALSE(test, gmem_store_hwpoisoned(s, 0, 300));
	KUNIT_EXPECT_FALSE(test, gmem_store_hwpoisoned(s, 301, B + 2));
	/* The block stays whole: the poison is the caller's to weigh. */
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), 0);
	ClearPageHWPoison(&f->page);
	folio_put(f);
}

static void gmem_store_last_index_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	pgoff_t last = (TOP >> PAGE_SHIFT) - 1;
	struct folio *f;

	f = gmem_store_get(s, last, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	folio_put(f);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, last), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, last, last + 1), 1);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);
}

/*
 * A removal that reschedules right after emptying an xarray node must go
 * on at the next index: 6.12's xas_pause() at that point skips the rest
 * of the parent's slot.  Only page 63 lives in node 0, so removing it
 * frees the node; need_resched is forced so that the walk pauses there.
 */
static void gmem_store_remove_resched_span_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 63, 200), 0);
	KUNIT_ASSERT_EQ(test, atomic_long_read(&s->nr_pages), 137);
	set_tsk_need_resched(current);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 200), 137);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, 64, false));
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, 126, false));
}

static void gmem_store_block_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *first, *f;
	pgoff_t i;

	/* Two aligned blocks and a tail of single pages. */
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 2 * B + 3), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 2 * B + 3);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B - 1), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B + 7), B);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 2 * B), ULONG_MAX);

	/* Physically contiguous and naturally aligned. */
	first = gmem_store_get(s, B, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, first);
	KUNIT_EXPECT_TRUE(test, IS_ALIGNED(folio_pfn(first), B));
	for (i = 1; i < B; i++) {
		f = gmem_store_get(s, B + i, false);
		KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
		KUNIT_EXPECT_EQ(test, folio_pfn(f), folio_pfn(first) + i);
		KUNIT_EXPECT_EQ(test, folio_order(f), 0);
		folio_put(f);
	}
	folio_put(first);

	/* Handing out a block marks every page of it. */
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, B + 9));
	gmem_store_hand_out(s, B, 2 * B);
	KUNIT_EXPECT_TRUE(test, gmem_store_test_guest(s, B + 9));

	/* One page out: the block is no longer whole, the other stays. */
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 5, 6), 1);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B), B);
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, 5, false));

	/* A populate that does not cover an aligned block uses single pages. */
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 3 * B), 2 * B + 2);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 1, B + 1), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B), ULONG_MAX);
}

/* Fill page @index with a non-zero byte. */
static void gmem_store_scribble(struct kunit *test, struct gmem_store *s,
				pgoff_t index)
{
	struct folio *f = gmem_store_get(s, index, false);
	void *p;

	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	p = gmem_test_map(test, f);
	memset(p, 0x5a, PAGE_SIZE);
	vunmap(p);
	folio_put(f);
}

struct gmem_punch_case {
	pgoff_t start, end;	/* in pages, with B = GMEM_BLOCK_PAGES */
};

#define B_ GMEM_BLOCK_PAGES
static const struct gmem_punch_case gmem_punch_cases[] = {
	{ 0, 1 }, { 1, 2 }, { B_ - 1, B_ }, { B_ - 1, B_ + 1 }, { 5, B_ + 7 },
	{ B_ - 3, 2 * B_ + 3 }, { 0, B_ }, { B_, 2 * B_ }, { 1, 3 * B_ - 1 },
	{ 0, 3 * B_ }, { 2 * B_ + 1, 3 * B_ }, { B_ + 100, B_ + 300 },
};

static void gmem_punch_desc(const struct gmem_punch_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "punch [%lu, %lu)", c->start, c->end);
}

KUNIT_ARRAY_PARAM(gmem_punch, gmem_punch_cases, gmem_punch_desc);

/*
 * Punch [start, end) out of three populated blocks, at every alignment:
 * blocks the range covers whole are freed, blocks it covers in part keep
 * the punched pages held (holes to lookups, zeroed) and are no longer
 * whole.  Populating again takes the held pages back: every block is
 * whole again, on the same physical pages, and the punched ones read
 * zero.
 */
static void gmem_store_held_test(struct kunit *test)
{
	const struct gmem_punch_case *c = test->param_value;
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	unsigned long pfn[3], held = 0, freed = 0;
	pgoff_t b, lo, hi;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 3 * B), 0);
	for (b = 0; b < 3; b++) {
		KUNIT_ASSERT_EQ(test, gmem_store_block(s, b * B), b * B);
		f = gmem_store_get(s, b * B, false);
		KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
		pfn[b] = folio_pfn(f);
		folio_put(f);
	}
	gmem_store_scribble(test, s, c->start);
	gmem_store_scribble(test, s, c->end - 1);

	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, c->start, c->end),
			c->end - c->start);
	for (b = 0; b < 3; b++) {
		lo = max(c->start, b * B);
		hi = min(c->end, (b + 1) * B);
		if (lo >= hi) {
			KUNIT_EXPECT_EQ(test, gmem_store_block(s, b * B), b * B);
			continue;
		}
		KUNIT_EXPECT_EQ(test, gmem_store_block(s, b * B), ULONG_MAX);
		if (hi - lo == B)
			freed += B;
		else
			held += hi - lo;
	}
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), held);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages),
			3 * B - (c->end - c->start));
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, c->start, false));
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, c->end - 1, false));

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 3 * B), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 3 * B);
	for (b = 0; b < 3; b++) {
		KUNIT_EXPECT_EQ(test, gmem_store_block(s, b * B), b * B);
		f = gmem_store_get(s, b * B + B / 2, false);
		KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
		lo = max(c->start, b * B);
		hi = min(c->end, (b + 1) * B);
		/* A block punched whole comes back from a new allocation. */
		if (lo >= hi || hi - lo < B)
			KUNIT_EXPECT_EQ(test, folio_pfn(f), pfn[b] + B / 2);
		folio_put(f);
	}
	f = gmem_store_get(s, c->start, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	KUNIT_EXPECT_TRUE(test, gmem_test_folio_zero(test, f));
	folio_put(f);
	f = gmem_store_get(s, c->end - 1, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	KUNIT_EXPECT_TRUE(test, gmem_test_folio_zero(test, f));
	folio_put(f);
	KUNIT_EXPECT_EQ(test, freed + held, c->end - c->start);
}

/*
 * The last live page of a block punched: the block and its held pages
 * are freed.  Punching held pages again changes nothing.
 */
static void gmem_store_held_last_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, B), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 1, B), B - 1);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), B - 1);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 7, 9), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), B - 1);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 1), 1);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 0);
	KUNIT_EXPECT_EQ(test, xa_empty(&s->pages), true);
}

/*
 * Released held pages (the shrinker) are freed; the blocks they were in
 * are blocks no more, and their live pages stay.
 */
static void gmem_store_release_held_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 2 * B), 0);
	gmem_store_remove(s, 3, 4);
	gmem_store_remove(s, B + 10, B + 20);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 11);
	KUNIT_EXPECT_EQ(test, gmem_store_release_held(s), 11);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 2 * B - 11);
	KUNIT_EXPECT_EQ(test, gmem_store_release_held(s), 0);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 2 * B), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 2 * B);
}

/*
 * A block inserted for one page (GMEM_WRITE): the others are held, and
 * writing the rest makes it whole.  A second insertion finds it there.
 */
static void gmem_store_insert_block_live_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_insert_block(s, B, B + 5), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_insert_block(s, B, B + 6), -EEXIST);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 1);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), B - 1);
	KUNIT_EXPECT_NULL(test, gmem_store_get(s, B + 4, false));
	f = gmem_store_get(s, B + 5, false);
	KUNIT_EXPECT_NOT_ERR_OR_NULL(test, f);
	if (!IS_ERR_OR_NULL(f))
		folio_put(f);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B), ULONG_MAX);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, B, 2 * B), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B), B);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 0);
}

/*
 * A punched page with a memory error is not held: it leaves the store,
 * and its block with it is no longer a block.
 */
static void gmem_store_held_hwpoison_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, B), 0);
	gmem_store_remove(s, 10, 11);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 1);
	f = gmem_store_get(s, 300, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	SetPageHWPoison(&f->page);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 300, 301), 1);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), B - 2);
	KUNIT_EXPECT_EQ(test, folio_ref_count(f), 1);	/* ours only */
	ClearPageHWPoison(&f->page);
	folio_put(f);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, B), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), ULONG_MAX);
}

/*
 * A populate split among threads: every block of the range whole, the
 * unaligned head and tail as single pages, nothing twice.
 */
static void gmem_store_populate_threads_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES, nblocks = 40;
	pgoff_t b;

	/* Workers charge the store's memcg: give it one (the root). */
	s->memcg = get_mem_cgroup_from_mm(NULL);
	KUNIT_ASSERT_EQ(test, gmem_store_populate_threads(s, 7, nblocks * B + 9, 4), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), nblocks * B + 2);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 0), ULONG_MAX);
	for (b = 1; b < nblocks; b++)
		KUNIT_EXPECT_EQ(test, gmem_store_block(s, b * B), b * B);
	/* Again over it all: nothing new. */
	KUNIT_ASSERT_EQ(test, gmem_store_populate_threads(s, 0, (nblocks + 1) * B, 2), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), (nblocks + 1) * B);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, ULONG_MAX), (nblocks + 1) * B);
	mem_cgroup_put(s->memcg);
	s->memcg = NULL;
}

/*
 * 1 GiB from one contiguous allocation, with the limit at one: the range
 * is whole (physically contiguous, every block too), a second one falls
 * back to blocks, a punch inside ends the range, and freeing the pages
 * ends the allocation.  Needs a free or movable 1 GiB in the test VM.
 */
static void gmem_store_giant_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t G = GMEM_GIANT_PAGES, B = GMEM_BLOCK_PAGES;
	long allocs0 = gmem_store_giant_allocs();
	struct folio *a, *z;

	s->memcg = get_mem_cgroup_from_mm(NULL);
	gmem_store_set_giant_limit(allocs0 + 1);
	KUNIT_ASSERT_EQ(test, gmem_store_populate_threads(s, G - 5, 3 * G, 1), 0);
	gmem_store_set_giant_limit(0);
	KUNIT_EXPECT_EQ(test, gmem_store_giant_allocs(), allocs0 + 1);
	KUNIT_EXPECT_EQ(test, gmem_store_giant(s, G + 77), G);
	KUNIT_EXPECT_EQ(test, gmem_store_giant(s, 2 * G), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_giant(s, 0), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_nr_giants(s), 1);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, G + B), G + B);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 2 * G), 2 * G);
	a = gmem_store_get(s, G, false);
	z = gmem_store_get(s, 2 * G - 1, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, a);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, z);
	KUNIT_EXPECT_TRUE(test, IS_ALIGNED(folio_pfn(a), G));
	KUNIT_EXPECT_EQ(test, folio_pfn(z), folio_pfn(a) + G - 1);
	KUNIT_EXPECT_TRUE(test, gmem_test_folio_zero(test, z));
	folio_put(a);
	folio_put(z);

	/* One page punched: a held page, the block and the range broken. */
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, G + B + 3, G + B + 4), 1);
	KUNIT_EXPECT_EQ(test, gmem_store_giant(s, G), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, G), G);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, G + B), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_giant_allocs(), allocs0 + 1);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 3 * G), 3 * G - 1 - (G - 5));
	KUNIT_EXPECT_EQ(test, gmem_store_giant_allocs(), allocs0);
	s->memcg = NULL;
}

static unsigned long gmem_xa_entries(struct xarray *xa)
{
	unsigned long i, n = 0;
	void *entry;

	xa_for_each(xa, i, entry)
		n++;
	return n;
}

/*
 * A whole block is one entry (packed); a page handed to a guest alone
 * splits it into 512 entries, marked one by one; the block handed out
 * whole is packed again, marked as a whole.  Lookups find the same
 * pages either way.
 */
static void gmem_store_pack_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *a, *b;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, B, 2 * B), 0);
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->blocks), 1);
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->pages), 0);
	a = gmem_store_get(s, B + 5, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, a);

	gmem_store_set_guest(s, B + 5);
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->blocks), 0);
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->pages), B);
	KUNIT_EXPECT_TRUE(test, gmem_store_test_guest(s, B + 5));
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, B + 6));
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, B + 6), B);
	b = gmem_store_get(s, B + 5, false);
	KUNIT_EXPECT_PTR_EQ(test, a, b);
	if (!IS_ERR_OR_NULL(b))
		folio_put(b);

	KUNIT_EXPECT_TRUE(test, gmem_store_hand_out(s, B, 2 * B));
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->blocks), 1);
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->pages), 0);
	KUNIT_EXPECT_TRUE(test, gmem_store_test_guest(s, B + 6));
	b = gmem_store_get(s, B + 5, false);
	KUNIT_EXPECT_PTR_EQ(test, a, b);
	if (!IS_ERR_OR_NULL(b))
		folio_put(b);
	folio_put(a);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), B);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 4 * B), B);
	KUNIT_EXPECT_EQ(test, gmem_xa_entries(&s->blocks), 0);
}

/*
 * A single-page insertion that finds the index taken by a held page (a
 * block was published split while it allocated) takes the held page
 * back instead of handing out a page that is still a hole to the store.
 */
static void gmem_store_insert_finds_held_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct folio *f;

	KUNIT_ASSERT_EQ(test, gmem_store_insert_block(s, B, B + 5), 0);
	f = gmem_store_insert_new(s, B + 7);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), 2);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_held), B - 2);
	KUNIT_EXPECT_FALSE(test, xa_get_mark(&s->pages, B + 7, XA_MARK_1));
	folio_put(f);
	f = gmem_store_get(s, B + 7, false);
	KUNIT_EXPECT_NOT_ERR_OR_NULL(test, f);
	if (!IS_ERR_OR_NULL(f))
		folio_put(f);
}

/*
 * A range's policy reaches every allocation of the range (single pages,
 * blocks, a populate), outlives a removal, and is read back; the pages
 * are counted on their node.  MPOL_BIND to the first node with memory,
 * which every machine has; the two-node selftests check the placement.
 */
static void gmem_store_policy_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	int nid = first_node(node_states[N_MEMORY]);
	struct mempolicy *pol, *got;
	nodemask_t nodes, none;
	unsigned long on_nid;
	struct folio *f;

	nodes = nodemask_of_node(nid);
	nodes_clear(none);
	pol = mpol_create(MPOL_BIND, &nodes);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, pol);
	KUNIT_ASSERT_EQ(test, gmem_store_set_policy(s, B, 3 * B, pol), 0);
	mpol_put(pol);
	KUNIT_EXPECT_NULL(test, gmem_store_policy(s, B - 1));
	KUNIT_EXPECT_NULL(test, gmem_store_policy(s, 3 * B));
	got = gmem_store_policy(s, 2 * B);
	KUNIT_ASSERT_NOT_NULL(test, got);
	KUNIT_EXPECT_EQ(test, got->mode, MPOL_BIND);
	KUNIT_EXPECT_TRUE(test, nodes_equal(got->nodes, nodes));
	mpol_put(got);

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, B, 3 * B), 0);
	f = gmem_store_get(s, B - 1, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	folio_put(f);	/* The store keeps its own reference. */
	KUNIT_EXPECT_TRUE(test, gmem_store_on_nodes(s, B, 3 * B, &nodes));
	KUNIT_EXPECT_FALSE(test, gmem_store_on_nodes(s, B, 3 * B, &none));
	/* A hole is on every node set, even the empty one. */
	KUNIT_EXPECT_TRUE(test, gmem_store_on_nodes(s, 3 * B, 4 * B, &none));
	on_nid = gmem_store_node_pages(s, nid);
	KUNIT_EXPECT_EQ(test, on_nid, 2 * B + (folio_nid(f) == nid));

	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, B, 3 * B), 2 * B);
	KUNIT_EXPECT_EQ(test, gmem_store_node_pages(s, nid), on_nid - 2 * B);
	got = gmem_store_policy(s, B);
	KUNIT_EXPECT_NOT_NULL(test, got);
	mpol_put(got);
	/* Back to the default. */
	KUNIT_ASSERT_EQ(test, gmem_store_set_policy(s, 0, 4 * B, NULL), 0);
	KUNIT_EXPECT_NULL(test, gmem_store_policy(s, 2 * B));

	/* A block across a policy boundary is not allocated whole. */
	pol = mpol_create(MPOL_BIND, &nodes);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, pol);
	KUNIT_ASSERT_EQ(test, gmem_store_set_policy(s, 4 * B + 7, 5 * B, pol), 0);
	mpol_put(pol);
	KUNIT_EXPECT_EQ(test, gmem_store_insert_block(s, 4 * B, ULONG_MAX), -EXDEV);
	KUNIT_EXPECT_EQ(test, gmem_store_insert_block(s, 5 * B, ULONG_MAX), 0);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 4 * B, 5 * B), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 4 * B), ULONG_MAX);
	KUNIT_EXPECT_EQ(test, gmem_store_block(s, 5 * B), 5 * B);
}

/*
 * A store holds at most 1024 policy ranges (their memory is charged to no
 * memcg): one range per page, alternating so that none merge, until
 * -ENOSPC; MPOL_DEFAULT is always allowed and makes room again.
 */
static void gmem_store_policy_ranges_test(struct kunit *test)
{
	struct gmem_store *s = test->priv;
	int nid = first_node(node_states[N_MEMORY]);
	struct mempolicy *pol[2];
	nodemask_t nodes;
	pgoff_t i;
	int r = 0;

	nodes = nodemask_of_node(nid);
	pol[0] = mpol_create(MPOL_BIND, &nodes);
	pol[1] = mpol_create(MPOL_PREFERRED, &nodes);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, pol[0]);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, pol[1]);
	for (i = 0; i < 2048 && !r; i++)
		r = gmem_store_set_policy(s, i, i + 1, pol[i & 1]);
	KUNIT_EXPECT_EQ(test, r, -ENOSPC);
	KUNIT_EXPECT_EQ(test, i, 1025);
	KUNIT_EXPECT_EQ(test, gmem_store_set_policy(s, 0, 2048, NULL), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_set_policy(s, 0, 4096, pol[0]), 0);
	/* Holes of the default punched into one range split it as well. */
	for (i = 1, r = 0; i < 4096 && !r; i += 2)
		r = gmem_store_set_policy(s, i, i + 1, NULL);
	KUNIT_EXPECT_EQ(test, r, -ENOSPC);
	KUNIT_EXPECT_EQ(test, i, 2 * 1024 + 1);
	mpol_put(pol[0]);
	mpol_put(pol[1]);
}

static struct kunit_case gmem_store_test_cases[] = {
	KUNIT_CASE(gmem_store_get_test),
	KUNIT_CASE(gmem_store_populate_remove_test),
	KUNIT_CASE(gmem_store_populate_refcount_test),
	KUNIT_CASE(gmem_store_remove_resched_test),
	KUNIT_CASE(gmem_store_reserved_takeover_test),
	KUNIT_CASE(gmem_store_block_conflict_test),
	KUNIT_CASE(gmem_store_hwpoisoned_test),
	KUNIT_CASE(gmem_store_block_test),
	KUNIT_CASE(gmem_store_last_index_test),
	KUNIT_CASE(gmem_store_remove_resched_span_test),
	KUNIT_CASE_PARAM(gmem_store_held_test, gmem_punch_gen_params),
	KUNIT_CASE(gmem_store_held_last_test),
	KUNIT_CASE(gmem_store_release_held_test),
	KUNIT_CASE(gmem_store_insert_block_live_test),
	KUNIT_CASE(gmem_store_held_hwpoison_test),
	KUNIT_CASE(gmem_store_populate_threads_test),
	KUNIT_CASE(gmem_store_giant_test),
	KUNIT_CASE(gmem_store_pack_test),
	KUNIT_CASE(gmem_store_insert_finds_held_test),
	KUNIT_CASE(gmem_store_policy_test),
	KUNIT_CASE(gmem_store_policy_ranges_test),
	{}
};

static struct kunit_suite gmem_store_test_suite = {
	.name = "gmem_store",
	.init = gmem_store_test_init,
	.exit = gmem_store_test_exit,
	.test_cases = gmem_store_test_cases,
};

/* Page @index of @s, which must be in the store (held pages too). */
static struct page *gmem_test_page(struct kunit *test, struct gmem_store *s,
				   pgoff_t index)
{
	struct folio *f = gmem_store_get(s, index, false);

	if (!f)		/* a held page: a hole to lookups */
		f = xa_load(&s->pages, index);
	else
		folio_put(f);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	return folio_page(f, 0);
}

/*
 * Every page a store without the direct map holds (single pages, whole
 * blocks, held pages) cannot be read through the direct map; every page
 * it gives back (punched, held ones released, the store destroyed) can
 * be again once it is freed.
 */
static void gmem_store_nodirect_reach_test(struct kunit *test)
{
	struct gmem_store_test *t = test->priv;
	struct gmem_store *s = &t->s;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct page *single, *block, *held, *live;
	pgoff_t i;

	KUNIT_ASSERT_TRUE(test, s->no_direct_map);
	/* Page 3 alone, the block at B whole. */
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 3, 4), 0);
	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, B, 2 * B), 0);
	KUNIT_EXPECT_EQ(test, gmem_store_unmapped(), t->unmapped + B + 1);
	single = gmem_test_page(test, s, 3);
	block = gmem_test_page(test, s, B);
	KUNIT_EXPECT_FALSE(test, gmem_test_reachable(single));
	for (i = 0; i < B; i++)
		KUNIT_EXPECT_FALSE(test, gmem_test_reachable(block + i));

	/* Punch part of the block: held pages, zeroed, still unmapped. */
	KUNIT_ASSERT_EQ(test, gmem_store_remove(s, B + 10, B + 20), 10);
	held = gmem_test_page(test, s, B + 10);
	live = gmem_test_page(test, s, B + 9);
	KUNIT_EXPECT_PTR_EQ(test, held, block + 10);
	KUNIT_EXPECT_FALSE(test, gmem_test_reachable(held));
	KUNIT_EXPECT_FALSE(test, gmem_test_reachable(live));
	KUNIT_EXPECT_TRUE(test, gmem_test_folio_zero(test, page_folio(held)));
	KUNIT_EXPECT_EQ(test, gmem_store_unmapped(), t->unmapped + B + 1);

	/*
	 * Pages are checked while the test's reference keeps them from the
	 * allocator, which may unmap free pages itself (debug_pagealloc).
	 * A punched single page: back in the direct map.
	 */
	get_page(single);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, 8), 1);
	KUNIT_EXPECT_TRUE(test, gmem_test_reachable(single));
	put_page(single);

	/* Held pages given back: mapped; the live ones are not. */
	get_page(held);
	KUNIT_EXPECT_EQ(test, gmem_store_release_held(s), 10);
	KUNIT_EXPECT_TRUE(test, gmem_test_reachable(held));
	KUNIT_EXPECT_FALSE(test, gmem_test_reachable(live));
	KUNIT_EXPECT_EQ(test, gmem_store_unmapped(), t->unmapped + B - 10);
	put_page(held);

	/* Destroyed: every page is back. */
	for (i = 0; i < B; i++)
		if (i < 10 || i >= 20)
			get_page(block + i);
	gmem_store_destroy(s);
	for (i = 0; i < B; i++) {
		if (i >= 10 && i < 20)
			continue;
		KUNIT_EXPECT_TRUE(test, gmem_test_reachable(block + i));
		put_page(block + i);
	}
	KUNIT_EXPECT_EQ(test, gmem_store_unmapped(), t->unmapped);
	KUNIT_ASSERT_EQ(test, gmem_store_init(s, NULL), 0);
	s->no_direct_map = true;
}

/*
 * A whole block punched whole, and a block punched at both ends and in
 * the middle until nothing of it is left, both go back mapped.  So does
 * a block with a memory error in the punched range, while its other
 * live pages stay unmapped.
 */
static void gmem_store_nodirect_punch_test(struct kunit *test)
{
	struct gmem_store_test *t = test->priv;
	struct gmem_store *s = &t->s;
	const pgoff_t B = GMEM_BLOCK_PAGES;
	struct page *a, *b, *c;
	struct folio *f;
	pgoff_t i;

	KUNIT_ASSERT_EQ(test, gmem_store_populate(s, 0, 3 * B), 0);
	a = gmem_test_page(test, s, 0);
	b = gmem_test_page(test, s, B);
	c = gmem_test_page(test, s, 2 * B);

	/* The test's references keep freed pages from the allocator. */
	for (i = 0; i < B; i++) {
		get_page(a + i);
		get_page(b + i);
	}
	get_page(c + 5);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 0, B), B);
	for (i = 0; i < B; i++) {
		KUNIT_EXPECT_TRUE(test, gmem_test_reachable(a + i));
		put_page(a + i);
	}

	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, B, B + 1), 1);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 2 * B - 1, 2 * B), 1);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, B + 100, B + 200), 100);
	for (i = 0; i < B; i++)
		KUNIT_EXPECT_FALSE(test, gmem_test_reachable(b + i));
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, B + 1, 2 * B - 1), B - 102);
	for (i = 0; i < B; i++) {
		KUNIT_EXPECT_TRUE(test, gmem_test_reachable(b + i));
		put_page(b + i);
	}

	/*
	 * A page with a memory error is mapped back like the others when its
	 * file gives it up: unpoison_memory() may return it to the page
	 * allocator later, which must not get it unmapped.
	 */
	f = gmem_store_get(s, 2 * B + 7, false);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	SetPageHWPoison(&f->page);
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 2 * B + 5, 2 * B + 8), 3);
	KUNIT_EXPECT_TRUE(test, gmem_test_reachable(c + 7));
	KUNIT_EXPECT_TRUE(test, gmem_test_reachable(c + 5));
	put_page(c + 5);
	ClearPageHWPoison(&f->page);
	folio_put(f);
	KUNIT_EXPECT_FALSE(test, gmem_test_reachable(c + 4));
	KUNIT_EXPECT_FALSE(test, gmem_test_reachable(c + 8));
	KUNIT_EXPECT_EQ(test, atomic_long_read(&s->nr_pages), B - 3);
	KUNIT_EXPECT_EQ(test, gmem_store_unmapped(), t->unmapped + B - 3);
}

static struct kunit_case gmem_store_nodirect_test_cases[] = {
	KUNIT_CASE(gmem_store_nodirect_reach_test),
	KUNIT_CASE(gmem_store_nodirect_punch_test),
	{}
};

/* Every case of gmem_store again, on stores without the direct map. */
static struct kunit_suite gmem_store_nodirect_test_suite = {
	.name = "gmem_store_nodirect",
	.init = gmem_store_nodirect_test_init,
	.exit = gmem_store_test_exit,
	.test_cases = gmem_store_test_cases,
};

/* What only stores without the direct map do. */
static struct kunit_suite gmem_nodirect_test_suite = {
	.name = "gmem_nodirect",
	.init = gmem_store_nodirect_test_init,
	.exit = gmem_store_test_exit,
	.test_cases = gmem_store_nodirect_test_cases,
};

kunit_test_suites(&gmem_dev_test_suite, &gmem_range_test_suite,
		  &gmem_store_test_suite, &gmem_store_nodirect_test_suite,
		  &gmem_nodirect_test_suite);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("KUnit suites for gmem");
