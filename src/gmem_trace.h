/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * gmem's trace events (system "gmem"), for perf, bpftrace and tracefs.
 * Each names its file by @id, the file's gmem-id in fdinfo (its inode
 * number), and pages by their offset in the file (@index, [@start, @end)).
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM gmem

#if !defined(_GMEM_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _GMEM_TRACE_H

#include <linux/tracepoint.h>

/* A page (order 0), a 2 MiB block (9) or a 1 GiB range (18) was published. */
TRACE_EVENT(gmem_alloc,
	    TP_PROTO(u64 id, pgoff_t index, unsigned int order, int nid),
	    TP_ARGS(id, index, order, nid),
	    TP_STRUCT__entry(__field(u64, id)
			     __field(pgoff_t, index)
			     __field(unsigned int, order)
			     __field(int, nid)),
	    TP_fast_assign(__entry->id = id;
			   __entry->index = index;
			   __entry->order = order;
			   __entry->nid = nid;),
	    TP_printk("id=%llu index=%lu order=%u nid=%d", __entry->id,
		      __entry->index, __entry->order, __entry->nid)
);

/* Pages [start, end) left the file: @ret live pages, or -errno. */
TRACE_EVENT(gmem_punch,
	    TP_PROTO(u64 id, pgoff_t start, pgoff_t end, long ret),
	    TP_ARGS(id, start, end, ret),
	    TP_STRUCT__entry(__field(u64, id)
			     __field(pgoff_t, start)
			     __field(pgoff_t, end)
			     __field(long, ret)),
	    TP_fast_assign(__entry->id = id;
			   __entry->start = start;
			   __entry->end = end;
			   __entry->ret = ret;),
	    TP_printk("id=%llu start=%lu end=%lu ret=%ld", __entry->id,
		      __entry->start, __entry->end, __entry->ret)
);

/*
 * A KVM guest fault on page @index (guest frame @gfn): served (@error 0,
 * @order the largest mapping order allowed, @nid the page's node) or
 * refused (@error a negative errno, @nid -1).
 */
TRACE_EVENT(gmem_fault,
	    TP_PROTO(u64 id, pgoff_t index, unsigned int order, int error,
		     u64 gfn, int nid),
	    TP_ARGS(id, index, order, error, gfn, nid),
	    TP_STRUCT__entry(__field(u64, id)
			     __field(pgoff_t, index)
			     __field(unsigned int, order)
			     __field(int, error)
			     __field(u64, gfn)
			     __field(int, nid)),
	    TP_fast_assign(__entry->id = id;
			   __entry->index = index;
			   __entry->order = order;
			   __entry->error = error;
			   __entry->gfn = gfn;
			   __entry->nid = nid;),
	    TP_printk("id=%llu index=%lu order=%u error=%d gfn=%#llx nid=%d",
		      __entry->id, __entry->index, __entry->order,
		      __entry->error, __entry->gfn, __entry->nid)
);

/* Guest mappings of pages [start, end) are being zapped. */
TRACE_EVENT(gmem_invalidate,
	    TP_PROTO(u64 id, pgoff_t start, pgoff_t end),
	    TP_ARGS(id, start, end),
	    TP_STRUCT__entry(__field(u64, id)
			     __field(pgoff_t, start)
			     __field(pgoff_t, end)),
	    TP_fast_assign(__entry->id = id;
			   __entry->start = start;
			   __entry->end = end;),
	    TP_printk("id=%llu start=%lu end=%lu", __entry->id,
		      __entry->start, __entry->end)
);
#endif /* _GMEM_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE gmem_trace
#include <trace/define_trace.h>
