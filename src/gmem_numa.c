// SPDX-License-Identifier: GPL-2.0-only
/*
 * NUMA placement of a gmem file's pages: GMEM_SET_MEMPOLICY and
 * GMEM_GET_MEMPOLICY, and the per-node counts of fdinfo and sysfs.
 *
 * A gmem file is never mapped, so there is no VMA to mbind(2): the file
 * keeps a shared policy tree per page offset, as shmem does per inode
 * (in its store), set with mbind()'s vocabulary through an ioctl.  The
 * kernel's mempolicy code checks the arguments (mpol_create()) and picks
 * the nodes of every allocation (alloc_pages_mpol()); see
 * docs/design.md, "NUMA placement".
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/fs.h>
#include <linux/mempolicy.h>
#include <linux/nodemask.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>

#include "gmem.h"

/* The most bits of a node mask gmem reads or writes: mbind()'s limit. */
#define GMEM_MAXNODE_LIMIT	32768

/*
 * The user's node mask is an array of __u64 (the uapi says so, for 32-bit
 * callers too); the kernel's bitmaps are of unsigned long, the same on
 * the 64-bit kernels gmem builds for.
 */
static_assert(sizeof(unsigned long) == sizeof(u64));

/* Copy a node mask of @maxnode bits at @uptr in; bits past MAX_NUMNODES: 0. */
static int gmem_nodes_from_user(nodemask_t *nodes, u64 uptr, u64 maxnode)
{
	unsigned long *bits;
	int r = 0;

	nodes_clear(*nodes);
	if (!maxnode)
		return 0;
	if (maxnode > GMEM_MAXNODE_LIMIT)
		return -EINVAL;
	bits = bitmap_zalloc(maxnode, GFP_KERNEL);
	if (!bits)
		return -ENOMEM;
	if (copy_from_user(bits, u64_to_user_ptr(uptr),
			   BITS_TO_LONGS(maxnode) * sizeof(long))) {
		r = -EFAULT;
	} else {
		/* Only @maxnode bits count, not the rest of the last word. */
		bitmap_clear(bits, maxnode,
			     BITS_TO_LONGS(maxnode) * BITS_PER_LONG - maxnode);
		if (find_next_bit(bits, maxnode, MAX_NUMNODES) < maxnode)
			r = -EINVAL;
		else
			bitmap_copy(nodes_addr(*nodes), bits,
				    min_t(u64, maxnode, MAX_NUMNODES));
	}
	bitmap_free(bits);
	return r;
}

/*
 * Copy @nodes out as the words of a mask of @maxnode bits at @uptr (at
 * least nr_node_ids), zeroing the words past the kernel's node mask.
 */
static int gmem_nodes_to_user(u64 uptr, u64 maxnode, const nodemask_t *nodes)
{
	char __user *mask = u64_to_user_ptr(uptr);
	size_t copy = BITS_TO_LONGS(maxnode) * sizeof(long);

	if (copy > sizeof(*nodes)) {
		if (clear_user(mask + sizeof(*nodes), copy - sizeof(*nodes)))
			return -EFAULT;
		copy = sizeof(*nodes);
	}
	return copy_to_user(mask, nodes_addr(*nodes), copy) ? -EFAULT : 0;
}

/**
 * gmem_set_mempolicy() - GMEM_SET_MEMPOLICY
 * @file: a gmem file
 * @uarg: the &struct gmem_mempolicy
 *
 * Return: 0 or -errno, as include/uapi/gmem.h says.
 */
long gmem_set_mempolicy(struct file *file, struct gmem_mempolicy __user *uarg)
{
	struct gmem_file *gf = file->private_data;
	struct gmem_mempolicy args;
	struct mempolicy *pol;
	pgoff_t start, end;
	nodemask_t nodes;
	int r;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	/* Pages never move: MPOL_MF_MOVE and MPOL_MF_MOVE_ALL are refused. */
	if (args.flags & ~MPOL_MF_STRICT || args.mode & MPOL_F_NUMA_BALANCING ||
	    memchr_inv(args.reserved, 0, sizeof(args.reserved)))
		return -EINVAL;
	r = gmem_page_range(gf->size, args.offset, args.size, &start, &end);
	if (!r)
		r = gmem_nodes_from_user(&nodes, args.nodemask, args.maxnode);
	if (r)
		return r;
	/* mbind()'s checks; NULL for MPOL_DEFAULT. */
	pol = mpol_create(args.mode, &nodes);
	if (IS_ERR(pol))
		return PTR_ERR(pol);
	/*
	 * gmem's pages are unmovable: the kernel applies MPOL_BIND to them
	 * only on nodes with memory outside ZONE_MOVABLE (apply_policy_zone()),
	 * and would otherwise bind to nothing.
	 */
	if (pol && pol->mode == MPOL_BIND &&
	    !nodes_intersects(pol->nodes, node_states[N_HIGH_MEMORY])) {
		mpol_put(pol);
		return -EINVAL;
	}

	/*
	 * Exclusive: no allocation may pick a policy while it changes (a
	 * block must lie in one range), and the check of MPOL_MF_STRICT
	 * then sees every page allocated under the old policy.
	 */
	if (down_write_killable(&gf->lock)) {
		mpol_put(pol);
		return -EINTR;
	}
	r = gmem_store_set_policy(&gf->store, start, end, pol);
	/* As mbind(): the policy is set, then the pages there are checked. */
	if (!r && pol && pol->mode != MPOL_LOCAL && args.flags & MPOL_MF_STRICT) {
		downgrade_write(&gf->lock);
		if (!gmem_store_on_nodes(&gf->store, start, end, &pol->nodes))
			r = -EIO;
		up_read(&gf->lock);
	} else {
		up_write(&gf->lock);
	}
	mpol_put(pol);
	return r;
}

/**
 * gmem_get_mempolicy() - GMEM_GET_MEMPOLICY
 * @file: a gmem file
 * @uarg: the &struct gmem_mempolicy
 *
 * Return: 0 or -errno, as include/uapi/gmem.h says.
 */
long gmem_get_mempolicy(struct file *file, struct gmem_mempolicy __user *uarg)
{
	struct gmem_file *gf = file->private_data;
	struct gmem_mempolicy args;
	struct mempolicy *pol;
	nodemask_t nodes;
	int r = 0;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.size || args.flags ||
	    memchr_inv(args.reserved, 0, sizeof(args.reserved)) ||
	    !PAGE_ALIGNED(args.offset) || args.offset >= (u64)gf->size ||
	    (args.maxnode && (args.maxnode < nr_node_ids ||
			      args.maxnode > GMEM_MAXNODE_LIMIT)))
		return -EINVAL;

	nodes_clear(nodes);
	args.mode = MPOL_DEFAULT;
	pol = gmem_store_policy(&gf->store, args.offset >> PAGE_SHIFT);
	if (pol) {
		/* What get_mempolicy(2) reports: the nodes as given, if kept. */
		args.mode = pol->mode | (pol->flags & MPOL_MODE_FLAGS);
		if (pol->flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES))
			nodes = pol->w.user_nodemask;
		else if (pol->mode != MPOL_LOCAL)
			nodes = pol->nodes;
		mpol_put(pol);
	}
	if (args.maxnode)
		r = gmem_nodes_to_user(args.nodemask, args.maxnode, &nodes);
	if (!r && put_user(args.mode, &uarg->mode))
		r = -EFAULT;
	return r;
}

/**
 * gmem_show_nodes() - the bytes a store holds on each node with memory
 * @m: fdinfo's seq_file, or NULL to print into @buf instead
 * @buf: a sysfs buffer (PAGE_SIZE bytes)
 * @s: the store, or NULL for all stores together
 *
 * Prints "N0=<bytes> N1=<bytes>" and a newline.
 *
 * Return: the number of bytes printed into @buf (0 with @m).
 */
int gmem_show_nodes(struct seq_file *m, char *buf, struct gmem_store *s)
{
	unsigned long bytes;
	int nid, n = 0;
	bool first = true;

	for_each_node_state(nid, N_MEMORY) {
		/* "N1023=" and 20 digits: a sysfs page holds over 100 nodes. */
		if (!m && n > PAGE_SIZE - 32)
			break;
		bytes = gmem_store_node_pages(s, nid) << PAGE_SHIFT;
		if (m)
			seq_printf(m, "%sN%d=%lu", first ? "" : " ", nid, bytes);
		else
			n += sysfs_emit_at(buf, n, "%sN%d=%lu", first ? "" : " ",
					   nid, bytes);
		first = false;
	}
	if (m)
		seq_putc(m, '\n');
	else
		n += sysfs_emit_at(buf, n, "\n");
	return n;
}
