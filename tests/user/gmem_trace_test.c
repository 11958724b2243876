// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem's trace events, without a guest: their format files, and that
 * gmem_alloc and gmem_punch fire once per allocation and per punch of a
 * gmem file with the fields of what was done (gmem_fault and
 * gmem_invalidate need a guest: kvm_numa_test checks them).
 *
 * The events are recorded into a tracefs instance of the test's own, so
 * that the global trace buffer and its event switches stay as they were;
 * removing the instance at the end restores everything.  The test skips
 * when tracefs or the gmem events are absent.
 *
 * How each check fails if gmem got it wrong: a missing event leaves an
 * expected one unmatched; a wrong id, index or order makes it match
 * nothing (and counts as unexpected); a nid that is no node with memory,
 * or per-node sums that differ from fdinfo gmem-nodes, fail the node
 * checks; a wrong start, end or ret fails the punch checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"

#define PG		4096ULL
#define BLOCK_PAGES	512ULL
#define GIANT_PAGES	(512ULL * 512)
#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)

#define GMEM_ALLOCATE	FALLOC_FL_KEEP_SIZE
#define GMEM_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

#define BLOCKS_PARAM	"/sys/module/gmem/parameters/blocks"
#define MAX_1G_PARAM	"/sys/module/gmem/parameters/max_1g"
#define INSTANCE	"gmem_trace_test"

static const char * const events[] = {
	"gmem_alloc", "gmem_punch", "gmem_fault", "gmem_invalidate",
};

/* fallocate() that must succeed. */
#define gmem_fallocate(_metadata, fd, mode, off, len) do {		\
	long long __o = (off), __l = (len);				\
	int __m = (mode);						\
	ASSERT_EQ(0, fallocate((fd), __m, __o, __l))			\
		TH_LOG("fallocate mode %#x offset %#llx len %#llx: %s",	\
		       __m, __o, __l, strerror(errno));			\
} while (0)

/* The trace instance, and the module parameters a test changes. */
FIXTURE(trace) {
	struct gmem_trace t;
	int dev;
	char blocks[16];
	unsigned long long max_1g;
	int restore_max_1g;
};

FIXTURE_SETUP(trace)
{
	char path[256];
	unsigned int i;
	int r;

	self->dev = gmem_open_dev(_metadata);
	r = __gmem_read_file(BLOCKS_PARAM, self->blocks, sizeof(self->blocks));
	ASSERT_EQ(0, r) TH_LOG("read " BLOCKS_PARAM ": %s", strerror(-r));
	self->blocks[strcspn(self->blocks, "\n")] = '\0';
	r = __gmem_trace_setup(&self->t, INSTANCE, 1024);
	if (r == -ENODEV)
		SKIP(return, "tracefs is absent (no /sys/kernel/tracing or /sys/kernel/debug/tracing with instances)");
	if (r == -ENOENT)
		SKIP(return, "tracefs has no gmem events (%s/events/gmem is absent)", self->t.root);
	ASSERT_EQ(0, r) TH_LOG("make the tracefs instance %s/instances/" INSTANCE ": %s",
			       self->t.root, strerror(-r));
	for (i = 0; i < ARRAY_SIZE(events); i++) {
		snprintf(path, sizeof(path), "%s/events/gmem/%s", self->t.root, events[i]);
		if (access(path, F_OK)) {
			gmem_trace_teardown(&self->t);
			SKIP(return, "gmem event %s is absent (%s)", events[i], path);
		}
		r = __gmem_trace_enable(&self->t, events[i], 1);
		if (r)
			gmem_trace_teardown(&self->t);
		ASSERT_EQ(0, r) TH_LOG("enable %s in %s: %s", events[i], self->t.dir,
				       strerror(-r));
	}
	r = __gmem_trace_clear(&self->t);
	ASSERT_EQ(0, r) TH_LOG("clear %s/trace: %s", self->t.dir, strerror(-r));
}

/* Plain checks: an ASSERT here would count against the test as well. */
FIXTURE_TEARDOWN(trace)
{
	char v[32];

	gmem_trace_teardown(&self->t);
	if (self->blocks[0] && __gmem_write_file(BLOCKS_PARAM, self->blocks))
		ksft_print_msg("teardown: could not put blocks=%s back\n", self->blocks);
	snprintf(v, sizeof(v), "%llu", self->max_1g);
	if (self->restore_max_1g && __gmem_write_file(MAX_1G_PARAM, v))
		ksft_print_msg("teardown: could not put max_1g=%s back\n", v);
	close(self->dev);
}

/* The trace's gmem events; asserts the read worked and lost nothing. */
#define read_events(_metadata, t, evs) ({				\
	int __n = __gmem_trace_read((t), (evs));			\
	ASSERT_LE(0, __n) TH_LOG("read %s/trace: %s%s", (t)->dir, strerror(-__n), \
				 __n == -EOVERFLOW ? " (events were lost)" : ""); \
	__n;								\
})

#define clear_events(_metadata, t) do {					\
	int __r = __gmem_trace_clear(t);				\
	ASSERT_EQ(0, __r) TH_LOG("clear %s/trace: %s", (t)->dir, strerror(-__r)); \
} while (0)

/* A new gmem file of @size bytes without flags. */
#define new_file(_metadata, self, size) \
	gmem_create(_metadata, (self)->dev, (size), 0)

static int is_event(const struct gmem_trace_event *e, const char *name,
		    unsigned long long id)
{
	return !strcmp(e->name, name) && (e->has & GMEM_TF_ID) && e->id == id;
}

/* How many events named @name the trace has, of any file. */
static int count_named(const struct gmem_trace_event *ev, int n, const char *name)
{
	int i, c = 0;

	for (i = 0; i < n; i++)
		c += !strcmp(ev[i].name, name);
	return c;
}

struct alloc {
	long long index, order;
};

/*
 * The gmem_alloc events of file @id are exactly @want (in any order, each
 * once), each with a nid of a node that has memory; their pages are
 * added, per node, to @pages (indexed by node).
 */
static void expect_allocs(struct __test_metadata *_metadata,
			  const struct gmem_trace_event *ev, int n,
			  unsigned long long id, const struct alloc *want,
			  int nwant, unsigned long long *pages)
{
	const unsigned int all = GMEM_TF_ID | GMEM_TF_INDEX | GMEM_TF_ORDER | GMEM_TF_NID;
	unsigned long long mem = gmem_nodes_with_memory();
	char matched[64] = { 0 };
	int i, j;

	ASSERT_GE(64, nwant);
	for (i = 0; i < n; i++) {
		const struct gmem_trace_event *e = &ev[i];

		if (!is_event(e, "gmem_alloc", id))
			continue;
		EXPECT_EQ(all, e->has & all)
			TH_LOG("gmem_alloc id=%llu: fields id, index, order, nid expected (mask %#x), got mask %#x",
			       id, all, e->has);
		EXPECT_TRUE(e->nid >= 0 && e->nid < GMEM_MAX_NODES &&
			    (mem & (1ULL << e->nid)))
			TH_LOG("gmem_alloc id=%llu index=%lld: nid expected in the nodes with memory (mask %#llx), got %lld",
			       id, e->index, mem, e->nid);
		for (j = 0; j < nwant; j++)
			if (!matched[j] && want[j].index == e->index &&
			    want[j].order == e->order)
				break;
		EXPECT_LT(j, nwant)
			TH_LOG("gmem_alloc id=%llu: unexpected index=%lld order=%lld (each expected allocation once, none else)",
			       id, e->index, e->order);
		if (j < nwant)
			matched[j] = 1;
		if (e->order >= 0 && e->order <= 18 && e->nid >= 0 &&
		    e->nid < GMEM_MAX_NODES)
			pages[e->nid] += 1ULL << e->order;
	}
	for (j = 0; j < nwant; j++)
		EXPECT_TRUE(matched[j])
			TH_LOG("gmem_alloc id=%llu: expected index=%lld order=%lld, got no such event",
			       id, want[j].index, want[j].order);
}

/*
 * fdinfo gmem-nodes of @fd lists every node with memory and no other,
 * with the bytes the gmem_alloc events put there (@pages per node), and
 * its sum is what the file holds: gmem-allocated + gmem-held.
 */
static void expect_nodes(struct __test_metadata *_metadata, int fd,
			 const unsigned long long *pages)
{
	unsigned long long mem = gmem_nodes_with_memory(), sum = 0, held, alloc;
	struct gmem_nodes nodes;
	int node, r;

	r = __gmem_fdinfo_nodes(fd, &nodes);
	ASSERT_EQ(0, r) TH_LOG("fdinfo gmem-nodes of fd %d: %s", fd, strerror(-r));
	EXPECT_EQ(mem, nodes.listed)
		TH_LOG("gmem-nodes: nodes listed expected %#llx (has_memory), got %#llx",
		       mem, nodes.listed);
	for (node = 0; node < GMEM_MAX_NODES; node++) {
		if (!(nodes.listed & (1ULL << node)) && !pages[node])
			continue;
		EXPECT_EQ(pages[node] * PG, nodes.bytes[node])
			TH_LOG("gmem-nodes N%d: expected %llu bytes (gmem_alloc events), got %llu",
			       node, pages[node] * PG, nodes.bytes[node]);
		sum += nodes.bytes[node];
	}
	alloc = gmem_fdinfo(_metadata, fd, "gmem-allocated");
	held = gmem_fdinfo(_metadata, fd, "gmem-held");
	EXPECT_EQ(alloc + held, sum)
		TH_LOG("gmem-nodes: sum expected gmem-allocated %llu + gmem-held %llu, got %llu",
		       alloc, held, sum);
}

static unsigned long long sum_pages(const unsigned long long *pages)
{
	unsigned long long s = 0;
	int i;

	for (i = 0; i < GMEM_MAX_NODES; i++)
		s += pages[i];
	return s;
}

struct field {
	const char *name;
	int is_signed;
};

struct format {
	const char *event;
	const char *print;
	struct field fields[6];
};

static const struct format formats[] = {
	{ "gmem_alloc", "\"id=%llu index=%lu order=%u nid=%d\"",
	  { { "id", 0 }, { "index", 0 }, { "order", 0 }, { "nid", 1 } } },
	{ "gmem_punch", "\"id=%llu start=%lu end=%lu ret=%ld\"",
	  { { "id", 0 }, { "start", 0 }, { "end", 0 }, { "ret", 1 } } },
	{ "gmem_fault", "\"id=%llu index=%lu order=%u error=%d gfn=%#llx nid=%d\"",
	  { { "id", 0 }, { "index", 0 }, { "order", 0 }, { "error", 1 },
	    { "gfn", 0 }, { "nid", 1 } } },
	{ "gmem_invalidate", "\"id=%llu start=%lu end=%lu\"",
	  { { "id", 0 }, { "start", 0 }, { "end", 0 } } },
};

/*
 * Each event's format file: exactly the fields above besides the common_
 * ones (signed where the value can be negative: a node id, -errno), and
 * the print format of the ABI: what a tracer reads the fields and the
 * text by.  A field renamed, missing or of the wrong signedness fails.
 */
TEST_F(trace, formats)
{
	char path[256], buf[8192], *line, *next, *decl, *name, *s;
	unsigned int i, j, seen;
	int r, sign;

	for (i = 0; i < ARRAY_SIZE(formats); i++) {
		const struct format *f = &formats[i];
		int nfields = 0;

		while (nfields < (int)ARRAY_SIZE(f->fields) && f->fields[nfields].name)
			nfields++;

		snprintf(path, sizeof(path), "%s/events/gmem/%s/format", self->t.root,
			 f->event);
		r = __gmem_read_file(path, buf, sizeof(buf));
		ASSERT_EQ(0, r) TH_LOG("read %s: %s", path, strerror(-r));
		seen = 0;
		EXPECT_NE(NULL, strstr(buf, "\nprint fmt: "))
			TH_LOG("%s: expected a print fmt line, got none", path);
		for (line = buf; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if (!strncmp(line, "print fmt: ", 11)) {
				EXPECT_EQ(0, strncmp(line + 11, f->print, strlen(f->print)))
					TH_LOG("%s: print fmt expected to start %s, got %s",
					       path, f->print, line + 11);
				continue;
			}
			decl = strstr(line, "field:");
			if (!decl)
				continue;
			decl += 6;
			s = strchr(decl, ';');
			if (!s)
				continue;
			*s++ = '\0';
			name = strrchr(decl, ' ');
			name = name ? name + 1 : decl;
			if (!strncmp(name, "common_", 7))
				continue;
			sign = -1;
			s = strstr(s, "signed:");
			if (s)
				sign = atoi(s + 7);
			for (j = 0; j < (unsigned int)nfields; j++)
				if (!strcmp(name, f->fields[j].name))
					break;
			EXPECT_LT(j, (unsigned int)nfields)
				TH_LOG("%s: unexpected field %s (%s)", f->event, name, decl);
			if (j == (unsigned int)nfields)
				continue;
			EXPECT_FALSE(!!(seen & (1U << j)))
				TH_LOG("%s: field %s listed twice", f->event, name);
			seen |= 1U << j;
			EXPECT_EQ(f->fields[j].is_signed, sign)
				TH_LOG("%s: field %s expected signed:%d, got signed:%d (%s)",
				       f->event, name, f->fields[j].is_signed, sign, decl);
		}
		for (j = 0; j < (unsigned int)nfields; j++)
			EXPECT_TRUE(!!(seen & (1U << j)))
				TH_LOG("%s: expected a field %s, got none", f->event,
				       f->fields[j].name);
	}
}

/*
 * Pages and a block, in two files: one gmem_alloc per page (order 0)
 * and per 2 MiB block (order 9, at the block's first page offset), with
 * the id of the file allocated; a second fallocate of a range already
 * allocated but for one page gives one event, for that page.  The pages
 * the events name add up to gmem-allocated, and per node to gmem-nodes;
 * the module's node_bytes grows by as much per node.
 */
TEST_F(trace, alloc_pages_and_block)
{
	static const struct alloc want_a[] = {
		{ BLOCK_PAGES - 1, 0 }, { BLOCK_PAGES, 9 }, { 2 * BLOCK_PAGES, 0 },
	};
	static const struct alloc want_b[] = {
		{ 0, 0 }, { 1, 0 }, { 2, 0 }, { 3, 0 },
	};
	unsigned long long pa[GMEM_MAX_NODES] = { 0 }, pb[GMEM_MAX_NODES] = { 0 };
	unsigned long long ida, idb, got;
	struct gmem_nodes before, after;
	struct gmem_trace_event *ev;
	int a, b, n, node, r;

	r = __gmem_sysfs_nodes(&before);
	ASSERT_EQ(0, r) TH_LOG("read " GMEM_SYSFS "/node_bytes: %s", strerror(-r));
	a = new_file(_metadata, self, 8 * MiB);
	b = new_file(_metadata, self, 4 * MiB);
	ida = gmem_fdinfo(_metadata, a, "gmem-id");
	idb = gmem_fdinfo(_metadata, b, "gmem-id");
	ASSERT_NE(ida, idb);

	/* A: the last page before a block, the block, the page after it. */
	gmem_fallocate(_metadata, a, GMEM_ALLOCATE, 2 * MiB - PG, 2 * MiB + 2 * PG);
	gmem_fallocate(_metadata, b, GMEM_ALLOCATE, 0, 3 * PG);
	gmem_fallocate(_metadata, b, GMEM_ALLOCATE, 0, 4 * PG);
	n = read_events(_metadata, &self->t, &ev);
	expect_allocs(_metadata, ev, n, ida, want_a, ARRAY_SIZE(want_a), pa);
	expect_allocs(_metadata, ev, n, idb, want_b, ARRAY_SIZE(want_b), pb);
	EXPECT_EQ(0, count_named(ev, n, "gmem_punch"))
		TH_LOG("gmem_punch: expected no event for allocations, got %d",
		       count_named(ev, n, "gmem_punch"));
	free(ev);

	got = gmem_fdinfo(_metadata, a, "gmem-allocated");
	EXPECT_EQ(sum_pages(pa) * PG, got)
		TH_LOG("file A: gmem-allocated expected %llu (gmem_alloc pages * 4096), got %llu",
		       sum_pages(pa) * PG, got);
	got = gmem_fdinfo(_metadata, b, "gmem-allocated");
	EXPECT_EQ(sum_pages(pb) * PG, got)
		TH_LOG("file B: gmem-allocated expected %llu (gmem_alloc pages * 4096), got %llu",
		       sum_pages(pb) * PG, got);
	expect_nodes(_metadata, a, pa);
	expect_nodes(_metadata, b, pb);

	r = __gmem_sysfs_nodes(&after);
	ASSERT_EQ(0, r) TH_LOG("read " GMEM_SYSFS "/node_bytes: %s", strerror(-r));
	EXPECT_EQ(gmem_nodes_with_memory(), after.listed)
		TH_LOG("node_bytes: nodes listed expected %#llx (has_memory), got %#llx",
		       gmem_nodes_with_memory(), after.listed);
	for (node = 0; node < GMEM_MAX_NODES; node++) {
		unsigned long long want = (pa[node] + pb[node]) * PG;

		got = after.bytes[node] - before.bytes[node];
		EXPECT_EQ(want, got)
			TH_LOG("node_bytes N%d: expected to grow by %llu, grew by %lld",
			       node, want, (long long)got);
	}
	close(a);
	close(b);
}

struct punch {
	long long start, end;		/* page offsets */
	long long ret;			/* live pages taken out */
	unsigned long long held;	/* gmem-held after it, bytes */
};

/*
 * Punches of a file with pages 0-3 and the block at page 512: one
 * gmem_punch per punch, in order, with its start and end page offsets
 * and the live pages it took out: part of the pages, the rest with holes
 * around, only holes (0), two pages inside the block (held now, still
 * out of the file: 2), the rest of the block (510: the held ones were no
 * longer live).  No gmem_alloc fires for a punch.
 */
TEST_F(trace, punch)
{
	static const struct punch punches[] = {
		{ 1, 3, 2, 0 },
		{ 0, 8, 2, 0 },
		{ 0, 8, 0, 0 },
		{ BLOCK_PAGES + 5, BLOCK_PAGES + 7, 2, 2 * PG },
		{ BLOCK_PAGES, 2 * BLOCK_PAGES, BLOCK_PAGES - 2, 0 },
	};
	const unsigned int all = GMEM_TF_ID | GMEM_TF_START | GMEM_TF_END | GMEM_TF_RET;
	unsigned long long id, before, after, held;
	struct gmem_trace_event *ev;
	unsigned int i;
	int fd, n, j, found;

	fd = new_file(_metadata, self, 4 * MiB);
	id = gmem_fdinfo(_metadata, fd, "gmem-id");
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, 4 * PG);
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 2 * MiB, 2 * MiB);
	for (i = 0; i < ARRAY_SIZE(punches); i++) {
		const struct punch *p = &punches[i];

		clear_events(_metadata, &self->t);
		before = gmem_fdinfo(_metadata, fd, "gmem-allocated");
		gmem_fallocate(_metadata, fd, GMEM_PUNCH, p->start * PG,
			       (p->end - p->start) * PG);
		after = gmem_fdinfo(_metadata, fd, "gmem-allocated");
		EXPECT_EQ(p->ret * PG, before - after)
			TH_LOG("punch [%lld, %lld): gmem-allocated expected to drop by %llu, dropped by %lld",
			       p->start, p->end, p->ret * PG, (long long)(before - after));
		held = gmem_fdinfo(_metadata, fd, "gmem-held");
		EXPECT_EQ(p->held, held)
			TH_LOG("punch [%lld, %lld): gmem-held expected %llu, got %llu",
			       p->start, p->end, p->held, held);
		n = read_events(_metadata, &self->t, &ev);
		found = 0;
		for (j = 0; j < n; j++) {
			if (!is_event(&ev[j], "gmem_punch", id))
				continue;
			found++;
			EXPECT_EQ(all, ev[j].has & all)
				TH_LOG("gmem_punch: fields id, start, end, ret expected (mask %#x), got mask %#x",
				       all, ev[j].has);
			EXPECT_EQ(p->start, ev[j].start)
				TH_LOG("punch [%lld, %lld): gmem_punch start expected %llu, got %lld",
				       p->start, p->end, p->start, ev[j].start);
			EXPECT_EQ(p->end, ev[j].end)
				TH_LOG("punch [%lld, %lld): gmem_punch end expected %llu, got %lld",
				       p->start, p->end, p->end, ev[j].end);
			EXPECT_EQ(p->ret, ev[j].ret)
				TH_LOG("punch [%lld, %lld): gmem_punch ret expected %lld, got %lld",
				       p->start, p->end, p->ret, ev[j].ret);
		}
		EXPECT_EQ(1, found)
			TH_LOG("punch [%lld, %lld): expected 1 gmem_punch id=%llu, got %d",
			       p->start, p->end, id, found);
		EXPECT_EQ(0, count_named(ev, n, "gmem_alloc"))
			TH_LOG("punch [%lld, %lld): expected no gmem_alloc, got %d",
			       p->start, p->end, count_named(ev, n, "gmem_alloc"));
		free(ev);
	}
	EXPECT_EQ(0ULL, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
	close(fd);
}

/*
 * GMEM_WRITE into a hole: with blocks, one gmem_alloc of order 9 at the
 * block's first page (the pages not written are held, and gmem-nodes
 * counts them); without, one of order 0 at the page written.
 */
TEST_F(trace, write_allocates)
{
	static const char * const mode[] = { "always", "never" };
	unsigned long long page[PG / 8] = { 1 }, id, held;
	struct gmem_write w = {
		.offset = (BLOCK_PAGES + 7) * PG,
		.size = PG,
		.user_addr = (uintptr_t)page,
	};
	struct gmem_trace_event *ev;
	struct alloc want;
	int i, fd, n;

	for (i = 0; i < 2; i++) {
		unsigned long long pages[GMEM_MAX_NODES] = { 0 };

		gmem_write_file(_metadata, BLOCKS_PARAM, mode[i]);
		fd = new_file(_metadata, self, 4 * MiB);
		id = gmem_fdinfo(_metadata, fd, "gmem-id");
		clear_events(_metadata, &self->t);
		w.written = 0;
		ASSERT_EQ(0, ioctl(fd, GMEM_WRITE, &w))
			TH_LOG("blocks=%s: GMEM_WRITE at page %llu: %s", mode[i],
			       BLOCK_PAGES + 7, strerror(errno));
		n = read_events(_metadata, &self->t, &ev);
		want = i ? (struct alloc){ BLOCK_PAGES + 7, 0 } :
			   (struct alloc){ BLOCK_PAGES, 9 };
		expect_allocs(_metadata, ev, n, id, &want, 1, pages);
		free(ev);
		EXPECT_EQ(PG, gmem_fdinfo(_metadata, fd, "gmem-allocated"));
		held = gmem_fdinfo(_metadata, fd, "gmem-held");
		EXPECT_EQ(i ? 0 : 2 * MiB - PG, held)
			TH_LOG("blocks=%s: gmem-held expected %llu, got %llu", mode[i],
			       i ? 0 : 2 * MiB - PG, held);
		expect_nodes(_metadata, fd, pages);
		close(fd);
	}
}

/*
 * A 1 GiB range with max_1g raised: one gmem_alloc of order 18 at page
 * offset 0 when the file got a contiguous GiB (gmem-1g), else events
 * that cover the range page by page exactly once (blocks, or pages);
 * either way their pages add up to the GiB.  Punching one page ends the
 * range (ret 1), punching the rest gives the other 262143 back.
 */
TEST_F_TIMEOUT(trace, giant, 300)
{
	unsigned long long pages[GMEM_MAX_NODES] = { 0 }, id, max, covered = 0;
	const unsigned long long words = GIANT_PAGES / 64;
	struct gmem_trace_event *ev;
	unsigned long long *bitmap;
	struct alloc want = { 0, 18 };
	char v[32];
	int fd, n, i, giant, punches = 0;
	long long p, ret = 0;

	if (access(MAX_1G_PARAM, F_OK))
		SKIP(return, MAX_1G_PARAM " is absent");
	self->max_1g = gmem_read_u64(_metadata, MAX_1G_PARAM);
	self->restore_max_1g = 1;
	max = gmem_read_u64(_metadata, GMEM_SYSFS "/allocations_1g") + 1;
	snprintf(v, sizeof(v), "%llu", max > self->max_1g ? max : self->max_1g);
	gmem_write_file(_metadata, MAX_1G_PARAM, v);

	fd = new_file(_metadata, self, GiB);
	id = gmem_fdinfo(_metadata, fd, "gmem-id");
	gmem_fallocate(_metadata, fd, GMEM_ALLOCATE, 0, GiB);
	giant = gmem_fdinfo(_metadata, fd, "gmem-1g") == GiB;
	n = read_events(_metadata, &self->t, &ev);
	if (giant) {
		expect_allocs(_metadata, ev, n, id, &want, 1, pages);
	} else {
		TH_LOG("no contiguous GiB (gmem-1g 0): checking that the events cover the range once");
		bitmap = calloc(words, 8);
		ASSERT_NE(NULL, bitmap);
		for (i = 0; i < n; i++) {
			if (!is_event(&ev[i], "gmem_alloc", id))
				continue;
			ASSERT_TRUE(ev[i].order == 0 || ev[i].order == 9)
				TH_LOG("gmem_alloc index=%lld: order expected 0 or 9 without a GiB, got %lld",
				       ev[i].index, ev[i].order);
			ASSERT_TRUE(ev[i].index >= 0 &&
				    ev[i].index + (1LL << ev[i].order) <= (long long)GIANT_PAGES &&
				    !(ev[i].index & ((1LL << ev[i].order) - 1)))
				TH_LOG("gmem_alloc index=%lld order=%lld: expected an aligned range inside the file",
				       ev[i].index, ev[i].order);
			for (p = ev[i].index; p < ev[i].index + (1LL << ev[i].order); p++) {
				EXPECT_FALSE(!!(bitmap[p / 64] & (1ULL << (p % 64))))
					TH_LOG("gmem_alloc: page %lld allocated twice", p);
				bitmap[p / 64] |= 1ULL << (p % 64);
			}
			if (ev[i].nid >= 0 && ev[i].nid < GMEM_MAX_NODES)
				pages[ev[i].nid] += 1ULL << ev[i].order;
		}
		for (p = 0; p < (long long)words; p++)
			covered += __builtin_popcountll(bitmap[p]);
		EXPECT_EQ(GIANT_PAGES, covered)
			TH_LOG("gmem_alloc events: expected to cover %llu pages, covered %llu",
			       GIANT_PAGES, covered);
		free(bitmap);
	}
	free(ev);
	EXPECT_EQ(GIANT_PAGES, sum_pages(pages));
	expect_nodes(_metadata, fd, pages);

	clear_events(_metadata, &self->t);
	gmem_fallocate(_metadata, fd, GMEM_PUNCH, BLOCK_PAGES * PG, PG);
	gmem_fallocate(_metadata, fd, GMEM_PUNCH, 0, GiB);
	n = read_events(_metadata, &self->t, &ev);
	for (i = 0; i < n; i++) {
		if (!is_event(&ev[i], "gmem_punch", id))
			continue;
		ret = punches ? GIANT_PAGES - 1 : 1;
		EXPECT_EQ(punches ? 0LL : (long long)BLOCK_PAGES, ev[i].start);
		EXPECT_EQ(punches ? (long long)GIANT_PAGES : (long long)BLOCK_PAGES + 1,
			  ev[i].end);
		EXPECT_EQ(ret, ev[i].ret)
			TH_LOG("punch %d: ret expected %lld, got %lld", punches + 1, ret,
			       ev[i].ret);
		punches++;
	}
	EXPECT_EQ(2, punches)
		TH_LOG("expected 2 gmem_punch id=%llu, got %d", id, punches);
	free(ev);
	close(fd);
}

TEST_HARNESS_MAIN
