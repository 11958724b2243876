// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit suites for the page attributes of gmem files: the run store
 * (split, merge, masks, the first and last page, a whole 1 TiB file),
 * the checks of GMEM_SET/GET_ATTRIBUTES and GMEM_WRITE arguments, and
 * the guest mark of the page store.
 */
#include <kunit/test.h>
#include <kunit/visibility.h>
#include <linux/mm.h>
#include <linux/rwsem.h>
#include <linux/slab.h>

#include "gmem.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define N	GMEM_ATTR_NOALLOC
#define U	GMEM_ATTR_USERFAULT
#define X	GMEM_ATTR_POISON
#define ALL	GMEM_ATTRS
#define LAST	(((MAX_LFS_FILESIZE & PAGE_MASK) >> PAGE_SHIFT) - 1)
#define TIB	((1ULL << 40) >> PAGE_SHIFT)

struct attrs_test {
	struct rw_semaphore lock;
	struct gmem_attrs a;
};

static int gmem_attrs_test_init(struct kunit *test)
{
	struct attrs_test *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	if (!t)
		return -ENOMEM;
	init_rwsem(&t->lock);
	gmem_attrs_init(&t->a, &t->lock, NULL);
	test->priv = t;
	return 0;
}

static void gmem_attrs_test_exit(struct kunit *test)
{
	struct attrs_test *t = test->priv;

	gmem_attrs_destroy(&t->a);
}

static int set(struct kunit *test, pgoff_t start, pgoff_t end, u64 attrs, u64 mask)
{
	struct attrs_test *t = test->priv;
	int r;

	down_write(&t->lock);
	r = gmem_attrs_set(&t->a, start, end, attrs, mask);
	up_write(&t->lock);
	return r;
}

static u64 get(struct kunit *test, pgoff_t index, pgoff_t *last)
{
	struct attrs_test *t = test->priv;
	u64 v;

	down_read(&t->lock);
	v = gmem_attrs_get(&t->a, index, last);
	up_read(&t->lock);
	return v;
}

/*
 * Walk every run of the whole index space; check that runs are maximal
 * (no two neighbours alike).  Returns the number of runs with attributes.
 */
static unsigned long nr_runs(struct kunit *test)
{
	unsigned long n = 0;
	pgoff_t index = 0, last;
	u64 v, prev = ~0ULL;

	for (;;) {
		v = get(test, index, &last);
		KUNIT_EXPECT_NE_MSG(test, v, prev, "runs at %#lx and before are alike",
				    index);
		KUNIT_EXPECT_GE(test, last, index);
		n += !!v;
		if (last == ULONG_MAX)
			return n;
		prev = v;
		index = last + 1;
	}
}

/* Page @index has attributes @v, in a run [@first, @last]. */
static void expect_run(struct kunit *test, pgoff_t index, u64 v, pgoff_t first,
		       pgoff_t last)
{
	pgoff_t l = 0xdead;

	KUNIT_EXPECT_EQ_MSG(test, get(test, index, &l), v,
			    "attributes of page %#lx", index);
	KUNIT_EXPECT_EQ_MSG(test, l, last, "end of the run from page %#lx", index);
	KUNIT_EXPECT_EQ_MSG(test, get(test, first, NULL), v,
			    "attributes of page %#lx, first of the run of %#lx",
			    first, index);
}

static void gmem_attrs_empty_test(struct kunit *test)
{
	expect_run(test, 0, 0, 0, ULONG_MAX);
	expect_run(test, LAST, 0, 0, ULONG_MAX);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 0);
	/* An empty range changes nothing. */
	KUNIT_EXPECT_EQ(test, set(test, 5, 5, N, N), 0);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 0);
}

static void gmem_attrs_whole_tib_test(struct kunit *test)
{
	KUNIT_ASSERT_EQ(test, set(test, 0, TIB, N, ALL), 0);
	expect_run(test, 0, N, 0, TIB - 1);
	expect_run(test, TIB / 2, N, 0, TIB - 1);
	expect_run(test, TIB, 0, TIB, ULONG_MAX);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 1);
	/* Masked: visits runs, not pages; still one run. */
	KUNIT_ASSERT_EQ(test, set(test, 0, TIB, U, U), 0);
	expect_run(test, 12345, N | U, 0, TIB - 1);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 1);
	KUNIT_ASSERT_EQ(test, set(test, 0, TIB, 0, ALL), 0);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 0);
}

static void gmem_attrs_split_merge_test(struct kunit *test)
{
	KUNIT_ASSERT_EQ(test, set(test, 0, 100, N, N), 0);
	/* A sub-range with another value splits the run in three. */
	KUNIT_ASSERT_EQ(test, set(test, 10, 20, U, ALL), 0);
	expect_run(test, 0, N, 0, 9);
	expect_run(test, 10, U, 10, 19);
	expect_run(test, 20, N, 20, 99);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 3);
	/* Clearing the middle leaves a gap... */
	KUNIT_ASSERT_EQ(test, set(test, 10, 20, 0, ALL), 0);
	expect_run(test, 15, 0, 10, 19);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 2);
	/* ...and setting it again merges the three back into one. */
	KUNIT_ASSERT_EQ(test, set(test, 10, 20, N, N), 0);
	expect_run(test, 50, N, 0, 99);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 1);
	/* Extending at either end merges too. */
	KUNIT_ASSERT_EQ(test, set(test, 100, 110, N, ALL), 0);
	KUNIT_ASSERT_EQ(test, set(test, 0, 0, N, ALL), 0);
	expect_run(test, 0, N, 0, 109);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 1);
	/* Clearing everything leaves nothing. */
	KUNIT_ASSERT_EQ(test, set(test, 0, 200, 0, N), 0);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 0);
}

static void gmem_attrs_mask_test(struct kunit *test)
{
	KUNIT_ASSERT_EQ(test, set(test, 0, 100, N, N), 0);
	KUNIT_ASSERT_EQ(test, set(test, 50, 150, U, U), 0);
	expect_run(test, 0, N, 0, 49);
	expect_run(test, 50, N | U, 50, 99);
	expect_run(test, 100, U, 100, 149);
	/* Clearing N over all of it: the two U runs become one. */
	KUNIT_ASSERT_EQ(test, set(test, 0, 200, 0, N), 0);
	expect_run(test, 0, 0, 0, 49);
	expect_run(test, 75, U, 50, 149);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 1);
	/* A bit outside the mask is left alone. */
	KUNIT_ASSERT_EQ(test, set(test, 0, 200, X, X), 0);
	expect_run(test, 60, U | X, 50, 149);
	expect_run(test, 0, X, 0, 49);
	expect_run(test, 150, X, 150, 199);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 3);
}

static void gmem_attrs_edges_test(struct kunit *test)
{
	KUNIT_ASSERT_EQ(test, set(test, LAST, LAST + 1, X, X), 0);
	KUNIT_ASSERT_EQ(test, set(test, 0, 1, U, U), 0);
	expect_run(test, 0, U, 0, 0);
	expect_run(test, 1, 0, 1, LAST - 1);
	expect_run(test, LAST, X, LAST, LAST);
	expect_run(test, LAST + 1, 0, LAST + 1, ULONG_MAX);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 2);
	/* Fill the middle: the first and last page merge with it. */
	KUNIT_ASSERT_EQ(test, set(test, 1, LAST, U | X, ALL), 0);
	KUNIT_ASSERT_EQ(test, set(test, 0, LAST + 1, U | X, U | X), 0);
	expect_run(test, LAST / 3, U | X, 0, LAST);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 1);
	KUNIT_ASSERT_EQ(test, set(test, LAST, LAST + 1, 0, ALL), 0);
	KUNIT_ASSERT_EQ(test, set(test, 0, 1, 0, ALL), 0);
	expect_run(test, 1, U | X, 1, LAST - 1);
	KUNIT_ASSERT_EQ(test, set(test, 0, LAST + 1, 0, ALL), 0);
	KUNIT_EXPECT_EQ(test, nr_runs(test), 0);
}

/* Random changes of a small file, compared page by page with a model. */
#define MODEL_PAGES	200
#define MODEL_ROUNDS	2000

static void gmem_attrs_model_test(struct kunit *test)
{
	u8 *model = kunit_kzalloc(test, MODEL_PAGES, GFP_KERNEL);
	u32 seed = 0x9e3779b9;
	unsigned int round, i;

	KUNIT_ASSERT_NOT_NULL(test, model);
	for (round = 0; round < MODEL_ROUNDS; round++) {
		pgoff_t start, end;
		u64 mask, attrs;

		seed = seed * 1103515245 + 12345;
		start = (seed >> 8) % MODEL_PAGES;
		end = start + 1 + (seed >> 20) % (MODEL_PAGES - start);
		mask = 1 + (seed >> 3) % ALL;
		attrs = (seed >> 13) & mask;
		KUNIT_ASSERT_EQ(test, set(test, start, end, attrs, mask), 0);
		for (i = start; i < end; i++)
			model[i] = (model[i] & ~mask) | attrs;
	}
	for (i = 0; i < MODEL_PAGES; i++)
		KUNIT_EXPECT_EQ_MSG(test, get(test, i, NULL), (u64)model[i],
				    "page %u", i);
	nr_runs(test);
}

static struct kunit_case gmem_attrs_test_cases[] = {
	KUNIT_CASE(gmem_attrs_empty_test),
	KUNIT_CASE(gmem_attrs_whole_tib_test),
	KUNIT_CASE(gmem_attrs_split_merge_test),
	KUNIT_CASE(gmem_attrs_mask_test),
	KUNIT_CASE(gmem_attrs_edges_test),
	KUNIT_CASE(gmem_attrs_model_test),
	{}
};

static struct kunit_suite gmem_attrs_test_suite = {
	.name = "gmem_attrs",
	.init = gmem_attrs_test_init,
	.exit = gmem_attrs_test_exit,
	.test_cases = gmem_attrs_test_cases,
};

#define P	((u64)PAGE_SIZE)

struct page_range_case {
	const char *name;
	loff_t size;
	u64 offset, len;
	int ret;
	pgoff_t start, end;
};

static const struct page_range_case page_range_cases[] = {
	{ "first page", 16 * P, 0, P, 0, 0, 1 },
	{ "whole file", 16 * P, 0, 16 * P, 0, 0, 16 },
	{ "last page", 16 * P, 15 * P, P, 0, 15, 16 },
	{ "empty", 16 * P, 0, 0, -EINVAL },
	{ "unaligned offset", 16 * P, 1, P, -EINVAL },
	{ "unaligned length", 16 * P, 0, P + 1, -EINVAL },
	{ "past the end", 16 * P, 15 * P, 2 * P, -EINVAL },
	{ "after the end", 16 * P, 16 * P, P, -EINVAL },
	{ "offset + length wraps", 16 * P, -P, 2 * P, -EINVAL },
	{ "huge length", 16 * P, 0, -P, -EINVAL },
	{ "offset beyond LLONG_MAX", 16 * P, 1ULL << 63, P, -EINVAL },
	{ "last page of 1 TiB", 1LL << 40, (1ULL << 40) - P, P, 0,
	  TIB - 1, TIB },
};

static void page_range_desc(const struct page_range_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(page_range, page_range_cases, page_range_desc);

static void gmem_page_range_test(struct kunit *test)
{
	const struct page_range_case *c = test->param_value;
	pgoff_t start = 0xdead, end = 0xbeef;

	KUNIT_ASSERT_EQ(test, gmem_page_range(c->size, c->offset, c->len, &start, &end),
			c->ret);
	if (c->ret)
		return;
	KUNIT_EXPECT_EQ(test, start, c->start);
	KUNIT_EXPECT_EQ(test, end, c->end);
}

struct attrs_check_case {
	const char *name;
	struct gmem_attributes args;
	int set_ret, get_ret;
};

static const struct attrs_check_case attrs_check_cases[] = {
	{ "set one bit", { .attributes = N, .mask = N }, 0, 0 },
	{ "clear one bit", { .mask = U }, 0, 0 },
	{ "set all", { .attributes = ALL, .mask = ALL }, 0, 0 },
	{ "zero mask", { .mask = 0 }, -EINVAL, 0 },
	{ "unknown mask bit", { .mask = ALL + 1 }, -EINVAL, 0 },
	{ "top mask bit", { .mask = N | (1ULL << 63) }, -EINVAL, 0 },
	{ "attribute outside mask", { .attributes = U, .mask = N }, -EINVAL, 0 },
	{ "flags", { .mask = N, .flags = 1 }, -EINVAL, -EINVAL },
	{ "reserved[0]", { .mask = N, .reserved = { 1 } }, -EINVAL, -EINVAL },
	{ "reserved[2]", { .mask = N, .reserved = { 0, 0, 1 } }, -EINVAL, -EINVAL },
};

static void attrs_check_desc(const struct attrs_check_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(attrs_check, attrs_check_cases, attrs_check_desc);

static void gmem_attrs_check_test(struct kunit *test)
{
	const struct attrs_check_case *c = test->param_value;

	KUNIT_EXPECT_EQ(test, gmem_attrs_check(&c->args, true), c->set_ret);
	KUNIT_EXPECT_EQ(test, gmem_attrs_check(&c->args, false), c->get_ret);
}

static struct kunit_case gmem_attrs_args_test_cases[] = {
	KUNIT_CASE_PARAM(gmem_page_range_test, page_range_gen_params),
	KUNIT_CASE_PARAM(gmem_attrs_check_test, attrs_check_gen_params),
	{}
};

static struct kunit_suite gmem_attrs_args_test_suite = {
	.name = "gmem_attrs_args",
	.test_cases = gmem_attrs_args_test_cases,
};

/* The page store's guest mark: set by faults, gone with the page. */
static void gmem_store_guest_mark_test(struct kunit *test)
{
	struct gmem_store *s = kunit_kzalloc(test, sizeof(*s), GFP_KERNEL);
	struct folio *f;

	KUNIT_ASSERT_NOT_NULL(test, s);
	KUNIT_ASSERT_EQ(test, gmem_store_init(s, NULL), 0);
	/* A hole cannot be marked. */
	gmem_store_set_guest(s, 7);
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, 7));

	f = gmem_store_get(s, 7, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	folio_put(f);
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, 7));
	gmem_store_set_guest(s, 7);
	KUNIT_EXPECT_TRUE(test, gmem_store_test_guest(s, 7));
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, 6));
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, 8));

	/* Punched and allocated again: a new page, no guest has seen it. */
	KUNIT_EXPECT_EQ(test, gmem_store_remove(s, 7, 8), 1);
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, 7));
	f = gmem_store_get(s, 7, true);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, f);
	folio_put(f);
	KUNIT_EXPECT_FALSE(test, gmem_store_test_guest(s, 7));
	gmem_store_destroy(s);
}

static struct kunit_case gmem_store_guest_test_cases[] = {
	KUNIT_CASE(gmem_store_guest_mark_test),
	{}
};

static struct kunit_suite gmem_store_guest_test_suite = {
	.name = "gmem_store_guest",
	.test_cases = gmem_store_guest_test_cases,
};

kunit_test_suites(&gmem_attrs_test_suite, &gmem_attrs_args_test_suite,
		  &gmem_store_guest_test_suite);
