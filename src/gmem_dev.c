// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem: private memory for KVM guests.
 *
 * The /dev/gmem misc device and the files it creates.  GMEM_CREATE on
 * /dev/gmem returns a new fd with its own inode whose pages live in a
 * per-file store (gmem_store.c).  The fd has no read, write or mmap: host
 * userspace can size, allocate, punch and describe the memory, and fill
 * pages no guest can see (GMEM_WRITE), never see its contents.  The
 * attributes of its pages (gmem_attrs.c) decide what guest faults do.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/types.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/kvm_host.h>
#include <linux/memcontrol.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/pseudo_fs.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/set_memory.h>
#include <linux/shrinker.h>
#include <linux/slab.h>
#include <linux/suspend.h>
#include <linux/vmalloc.h>
#include <asm/tlbflush.h>

#include "gmem.h"

#define CREATE_TRACE_POINTS
#include "gmem_trace.h"

static unsigned long max_file_size = 1UL << 40;

static int max_file_size_set(const char *val, const struct kernel_param *kp)
{
	unsigned long v;
	int r;

	r = kstrtoul(val, 0, &v);
	if (r)
		return r;
	if (!v || !PAGE_ALIGNED(v) || v > (MAX_LFS_FILESIZE & PAGE_MASK))
		return -EINVAL;
	WRITE_ONCE(max_file_size, v);
	return 0;
}

static const struct kernel_param_ops max_file_size_ops = {
	.set = max_file_size_set,
	.get = param_get_ulong,
};
module_param_cb(max_file_size, &max_file_size_ops, &max_file_size, 0644);
MODULE_PARM_DESC(max_file_size,
		 "Largest size of a gmem file in bytes, page aligned (default 1 TiB)");

/*
 * Which files allocate 2 MiB blocks on guest faults and GMEM_WRITE
 * (GMEM_CREATE_BLOCKS), decided when a file is created.
 */
enum { GMEM_BLOCKS_NEVER, GMEM_BLOCKS_FLAG, GMEM_BLOCKS_ALWAYS };
static const char * const gmem_blocks_names[] = {
	[GMEM_BLOCKS_NEVER]	= "never",
	[GMEM_BLOCKS_FLAG]	= "flag",
	[GMEM_BLOCKS_ALWAYS]	= "always",
};

static int blocks = GMEM_BLOCKS_ALWAYS;

static int blocks_set(const char *val, const struct kernel_param *kp)
{
	int i = sysfs_match_string(gmem_blocks_names, val);

	if (i < 0)
		return -EINVAL;
	WRITE_ONCE(blocks, i);
	return 0;
}

static int blocks_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", gmem_blocks_names[READ_ONCE(blocks)]);
}

static const struct kernel_param_ops blocks_ops = {
	.set = blocks_set,
	.get = blocks_get,
};
module_param_cb(blocks, &blocks_ops, NULL, 0644);
MODULE_PARM_DESC(blocks,
		 "Files whose guest faults and GMEM_WRITE allocate 2 MiB blocks: always (default), flag (created with GMEM_CREATE_BLOCKS), never");

static bool no_direct_map;
module_param(no_direct_map, bool, 0644);
MODULE_PARM_DESC(no_direct_map,
		 "Create every file as if with GMEM_CREATE_NO_DIRECT_MAP: its pages out of the kernel's direct map (default: off)");

/* Can pages leave the direct map here (GMEM_CREATE_NO_DIRECT_MAP)? */
static bool gmem_direct_map_changeable(void)
{
#ifdef CONFIG_ARCH_HAS_SET_DIRECT_MAP
	return can_set_direct_map();
#else
	return false;
#endif
}

static unsigned int populate_threads;
module_param(populate_threads, uint, 0644);
MODULE_PARM_DESC(populate_threads,
		 "Threads that allocate and zero the blocks of a large fallocate at once (0: one per online CPU, default; 1: the calling thread only; at most 16)");

static int max_1g_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int r;

	r = kstrtouint(val, 0, &v);
	if (r)
		return r;
	gmem_store_set_giant_limit(v);
	return param_set_uint(val, kp);
}

static unsigned int max_1g;

static const struct kernel_param_ops max_1g_ops = {
	.set = max_1g_set,
	.get = param_get_uint,
};

module_param_cb(max_1g, &max_1g_ops, &max_1g, 0644);
MODULE_PARM_DESC(max_1g,
		 "How many physically contiguous 1 GiB allocations (not charged to memory cgroups) all gmem files may hold at once; 0 (default): none");

/*
 * gmem's own pseudo file system, mounted while a gmem file or inode
 * exists.  Its inodes point at this module's inode_operations, and an
 * O_PATH fd of /proc/<pid>/fd/N keeps an inode (and its mount) after
 * the file is closed: the superblock holds a reference on this module
 * for as long as it lives, so the module cannot be unloaded under such
 * an inode.  Every file pins the mount (gmem_mnt_count) from GMEM_CREATE
 * to release.
 */
#define GMEM_MAGIC	0x676d656d	/* "gmem" */

static struct vfsmount *gmem_mnt;
static int gmem_mnt_count;

static atomic_long_t gmem_nr_files = ATOMIC_LONG_INIT(0);

/*
 * Every file, for the shrinker of held pages.  The lock is a spinlock
 * the shrinker holds only to pick a file whose lock it can take
 * (down_write_trylock(): reclaim may run inside a gmem allocation that
 * holds a file's lock shared).  Release takes the file off the list,
 * then waits for the file's lock before freeing anything.
 */
static LIST_HEAD(gmem_files);
static DEFINE_SPINLOCK(gmem_files_lock);
static struct shrinker *gmem_shrinker;

/**
 * gmem_release_held() - free the held pages of a file
 * @gf: the file
 *
 * For an allocation of @gf that failed with -ENOMEM (the memcg limit: a
 * memcg's reclaim does not call the shrinker): the held pages are
 * charged to the same memcg.  Takes @gf->lock exclusively; the caller
 * must not hold it.
 *
 * Return: true if any page was freed, for the caller to retry.
 */
bool gmem_release_held(struct gmem_file *gf)
{
	unsigned long n;

	if (!atomic_long_read(&gf->store.nr_held))
		return false;
	down_write(&gf->lock);
	n = gmem_store_release_held(&gf->store);
	up_write(&gf->lock);
	return n;
}

static unsigned long gmem_shrink_count(struct shrinker *shrinker,
				       struct shrink_control *sc)
{
	unsigned long held;

	gmem_store_totals(&held);
	return held ?: SHRINK_EMPTY;
}

static unsigned long gmem_shrink_scan(struct shrinker *shrinker,
				      struct shrink_control *sc)
{
	unsigned long freed = 0;
	struct gmem_file *gf;
	bool found;

	do {
		found = false;
		spin_lock(&gmem_files_lock);
		list_for_each_entry(gf, &gmem_files, node) {
			if (atomic_long_read(&gf->store.nr_held) &&
			    down_write_trylock(&gf->lock)) {
				found = true;
				break;
			}
		}
		spin_unlock(&gmem_files_lock);
		if (!found)
			break;
		/* Release waits for the lock before it frees @gf. */
		freed += gmem_store_release_held(&gf->store);
		up_write(&gf->lock);
	} while (freed < sc->nr_to_scan);
	return freed ?: SHRINK_STOP;
}

/**
 * gmem_falloc_range() - check a fallocate request, compute its pages
 * @size: size of the file
 * @mode: fallocate mode
 * @offset: byte offset of the range
 * @len: byte length of the range
 * @start: first page of the range (output)
 * @end: page after the last (output); a punch past the size is clamped
 *	to the size, and may leave @start == @end (nothing to do)
 *
 * Return: 0; -EOPNOTSUPP for a mode other than allocate or punch-hole, or
 * without FALLOC_FL_KEEP_SIZE; -EINVAL for a negative, unaligned or
 * overflowing range, or an allocation that ends past the size.
 */
VISIBLE_IF_KUNIT int gmem_falloc_range(loff_t size, int mode, loff_t offset,
				       loff_t len, pgoff_t *start, pgoff_t *end)
{
	loff_t last;

	if (!(mode & FALLOC_FL_KEEP_SIZE) ||
	    (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)))
		return -EOPNOTSUPP;
	if (offset < 0 || len <= 0 || !PAGE_ALIGNED(offset) || !PAGE_ALIGNED(len))
		return -EINVAL;
	if (check_add_overflow(offset, len, &last))
		return -EINVAL;
	if (last > size) {
		if (!(mode & FALLOC_FL_PUNCH_HOLE))
			return -EINVAL;
		last = size;
	}
	*start = offset >> PAGE_SHIFT;
	*end = offset < last ? last >> PAGE_SHIFT : *start;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_falloc_range);

/**
 * gmem_page_range() - check a range of an ioctl, compute its pages
 * @size: size of the file
 * @offset: byte offset of the range, from userspace
 * @len: byte length of the range, from userspace
 * @start: first page of the range (output)
 * @end: page after the last (output), greater than @start
 *
 * Return: 0; -EINVAL for an unaligned or empty range, or one that ends
 * past the size.
 */
VISIBLE_IF_KUNIT int gmem_page_range(loff_t size, u64 offset, u64 len,
				     pgoff_t *start, pgoff_t *end)
{
	u64 last;

	if (!len || !PAGE_ALIGNED(offset) || !PAGE_ALIGNED(len) ||
	    check_add_overflow(offset, len, &last) || last > (u64)size)
		return -EINVAL;
	*start = offset >> PAGE_SHIFT;
	*end = last >> PAGE_SHIFT;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_page_range);

/* A change of pages [@start, @end) of @gf, for gmem_kvm_invalidate(). */
struct gmem_change {
	struct gmem_file *gf;
	pgoff_t start;
	pgoff_t end;
	u64 attrs;
	u64 mask;
};

static int gmem_punch(void *data)
{
	struct gmem_change *c = data;
	long r = gmem_store_remove(&c->gf->store, c->start, c->end);

	return r < 0 ? r : 0;
}

static int gmem_change_attrs(void *data)
{
	struct gmem_change *c = data;

	return gmem_attrs_set(&c->gf->attrs, c->start, c->end, c->attrs,
			      c->mask);
}

static long gmem_fallocate(struct file *file, int mode, loff_t offset,
			   loff_t len)
{
	struct gmem_file *gf = file->private_data;
	pgoff_t start, end;
	int r;

	r = gmem_falloc_range(gf->size, mode, offset, len, &start, &end);
	if (r || start == end)
		return r;

	if (mode & FALLOC_FL_PUNCH_HOLE) {
		/*
		 * Exclusive: no fault or allocation may look up a page while
		 * it is being freed; KVM keeps guests from mapping the range
		 * while gmem_punch() runs.
		 */
		struct gmem_change c = { .gf = gf, .start = start, .end = end };

		down_write(&gf->lock);
		r = gmem_kvm_invalidate(gf, start, end, gmem_punch, &c);
		up_write(&gf->lock);
	} else {
		/*
		 * Shared: allocations only race with each other and with
		 * guest faults.  On failure what was allocated stays: a
		 * guest may have been handed it already.  Held until the
		 * workers of a parallel populate are all done.
		 */
		unsigned int threads = READ_ONCE(populate_threads) ?:
				       num_online_cpus();

		down_read(&gf->lock);
		r = gmem_store_populate_threads(&gf->store, start, end, threads);
		up_read(&gf->lock);
		if (r == -ENOMEM && gmem_release_held(gf)) {
			down_read(&gf->lock);
			r = gmem_store_populate_threads(&gf->store, start, end,
							threads);
			up_read(&gf->lock);
		}
	}
	if (!r)
		file_modified(file);
	return r;
}

static int gmem_release(struct inode *inode, struct file *file)
{
	struct gmem_file *gf = file->private_data;

	/*
	 * Last reference to the file, not necessarily to the inode: an
	 * O_PATH fd opened through /proc/<pid>/fd/ holds the dentry, and
	 * fstat on it still reaches gmem_getattr().  Unhook @gf from the
	 * inode (it is freed only after the RCU readers there are done),
	 * and let KVM cut the file off its memslots (zapping the guest's
	 * mappings, dropping the VM) before freeing the pages.
	 */
	WRITE_ONCE(inode->i_private, NULL);
	simple_release_fs(&gmem_mnt, &gmem_mnt_count);
	spin_lock(&gmem_files_lock);
	list_del(&gf->node);
	spin_unlock(&gmem_files_lock);
	/* The shrinker may still be freeing held pages under it. */
	down_write(&gf->lock);
	up_write(&gf->lock);
	kvm_gmem_binding_release(&gf->binding);
	gmem_store_destroy(&gf->store);
	gmem_attrs_destroy(&gf->attrs);
	mem_cgroup_put(gf->store.memcg);
	kfree_rcu(gf, rcu);
	atomic_long_dec(&gmem_nr_files);
	return 0;
}

static void gmem_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gmem_file *gf = file->private_data;

	seq_printf(m, "gmem-id:\t%lu\n", file_inode(file)->i_ino);
	seq_printf(m, "gmem-size:\t%lld\n", gf->size);
	seq_printf(m, "gmem-allocated:\t%lu\n",
		   atomic_long_read(&gf->store.nr_pages) << PAGE_SHIFT);
	seq_printf(m, "gmem-held:\t%lu\n",
		   atomic_long_read(&gf->store.nr_held) << PAGE_SHIFT);
	seq_printf(m, "gmem-1g:\t%lu\n", gmem_store_nr_giants(&gf->store) << 30);
	seq_printf(m, "gmem-flags:\t%#llx\n", gf->flags);
	seq_puts(m, "gmem-nodes:\t");
	gmem_show_nodes(m, NULL, &gf->store);
	gmem_kvm_show_vm(m, gf);
}

static long gmem_set_attributes(struct file *file,
				struct gmem_attributes __user *uarg)
{
	struct gmem_file *gf = file->private_data;
	struct gmem_change c = { .gf = gf };
	struct gmem_attributes args;
	int r;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	r = gmem_attrs_check(&args, true);
	if (!r)
		r = gmem_page_range(gf->size, args.offset, args.size, &c.start,
				    &c.end);
	if (r)
		return r;
	c.attrs = args.attributes;
	c.mask = args.mask;

	/*
	 * Exclusive: guest faults read the attributes with the lock shared.
	 * Zap the guest's mappings of the range first: KVM keeps vCPUs from
	 * mapping it again until the invalidation ends, and every fault
	 * after that sees the new attributes.
	 */
	if (down_write_killable(&gf->lock))
		return -EINTR;
	r = gmem_kvm_invalidate(gf, c.start, c.end, gmem_change_attrs, &c);
	up_write(&gf->lock);
	return r;
}

static long gmem_get_attributes(struct file *file,
				struct gmem_attributes __user *uarg)
{
	struct gmem_file *gf = file->private_data;
	pgoff_t index, last, size_pages = gf->size >> PAGE_SHIFT;
	struct gmem_attributes args;
	int r;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	r = gmem_attrs_check(&args, false);
	if (r)
		return r;
	if (!PAGE_ALIGNED(args.offset) || args.offset >= (u64)gf->size)
		return -EINVAL;
	index = args.offset >> PAGE_SHIFT;

	down_read(&gf->lock);
	args.attributes = gmem_attrs_get(&gf->attrs, index, &last);
	up_read(&gf->lock);
	last = min(last, size_pages - 1);
	args.size = (u64)(last - index + 1) << PAGE_SHIFT;
	args.mask = GMEM_ATTRS;
	if (copy_to_user(uarg, &args, sizeof(args)))
		return -EFAULT;
	return 0;
}

/*
 * GMEM_WRITE into a hole of a file with blocks: allocate the whole block
 * if it is all holes, the other pages held, so that the pages written
 * next take them back and the block ends whole.  Caller holds @gf->lock
 * shared.
 */
static void gmem_write_block(struct gmem_file *gf, pgoff_t index)
{
	pgoff_t head = round_down(index, GMEM_BLOCK_PAGES);

	/* -EEXIST (a page of the block is there) or no free block: fine. */
	if ((gf->flags & GMEM_CREATE_BLOCKS) &&
	    head + GMEM_BLOCK_PAGES <= gf->size >> PAGE_SHIFT)
		gmem_store_insert_block(&gf->store, head, index);
}

/*
 * The source of one page of GMEM_WRITE: the user pages it spans, pinned,
 * or when they cannot be pinned (not plain memory), a kernel copy.
 */
struct gmem_write_src {
	struct page *pages[2];
	unsigned int off;	/* of the source in pages[0] */
	const void *buf;	/* the kernel copy, or NULL */
};

/*
 * Copy one page from @src into @folio at byte @at.  A page out of the
 * direct map (@alias) is written through a temporary mapping of its own,
 * whose TLB entries are flushed before the caller unlocks the page (a
 * guest may be handed it then): vunmap() flushes lazily.  Returns 0 or
 * -ENOMEM (no mapping).
 */
static int gmem_write_copy(struct folio *folio, size_t at,
			   const struct gmem_write_src *src, bool alias)
{
	unsigned int first = PAGE_SIZE - src->off;
	struct page *page = folio_page(folio, at >> PAGE_SHIFT);
	char *dst, *p;

	dst = alias ? vmap(&page, 1, VM_MAP, PAGE_KERNEL) :
		      kmap_local_folio(folio, at);
	if (!dst)
		return -ENOMEM;

	if (src->buf) {
		memcpy(dst, src->buf, PAGE_SIZE);
	} else {
		p = kmap_local_page(src->pages[0]);
		memcpy(dst, p + src->off, first);
		kunmap_local(p);
		if (src->off) {
			p = kmap_local_page(src->pages[1]);
			memcpy(dst + first, p, src->off);
			kunmap_local(p);
		}
	}
	if (alias) {
		vunmap(dst);
		flush_tlb_kernel_range((unsigned long)dst,
				       (unsigned long)dst + PAGE_SIZE);
	} else {
		kunmap_local(dst);
	}
	return 0;
}

/*
 * Write one page from @src into page @index.  Returns 0, -EPERM if a
 * guest may map the page, -EHWPOISON, -ENOMEM or -EINTR.
 */
static int gmem_write_page(struct gmem_file *gf, pgoff_t index,
			   const struct gmem_write_src *src)
{
	struct folio *folio;
	u64 attrs;
	int r = 0;

	/*
	 * Shared: writes run alongside guest faults and other writes, and
	 * the page's attributes cannot change.  The page lock keeps a
	 * fault from handing the page to a guest while it is half written:
	 * faults set the guest mark under it.  A page with USERFAULT
	 * cannot be mapped by a guest: setting the bit zapped its
	 * mappings, and faults refuse it.
	 */
	if (down_read_killable(&gf->lock))
		return -EINTR;
	attrs = gmem_attrs_get(&gf->attrs, index, NULL);
	gmem_write_block(gf, index);
	folio = gmem_store_get(&gf->store, index, true);
	if (IS_ERR(folio)) {
		r = PTR_ERR(folio);
		goto out;
	}
	folio_lock(folio);
	if (!(attrs & GMEM_ATTR_USERFAULT) &&
	    gmem_store_test_guest(&gf->store, index))
		r = -EPERM;
	else if (folio_test_hwpoison(folio))
		r = -EHWPOISON;
	else
		r = gmem_write_copy(folio,
				    (index & (folio_nr_pages(folio) - 1)) << PAGE_SHIFT,
				    src, gf->store.no_direct_map);
	folio_unlock(folio);
	folio_put(folio);
out:
	up_read(&gf->lock);
	return r;
}

/* Source pages GMEM_WRITE pins at once. */
#define GMEM_WRITE_BATCH	16

/*
 * Write pages [@start, @end) from @src: from the pinned source pages,
 * up to GMEM_WRITE_BATCH at a time, or through the kernel page @bounce
 * where they cannot be pinned.  Sets *@done to the first page not
 * written.  Returns 0 or -errno.
 */
static int __gmem_write(struct gmem_file *gf, pgoff_t start, pgoff_t end,
			const char __user *src, void *bounce, pgoff_t *done)
{
	struct page *pinned[GMEM_WRITE_BATCH + 1];
	struct gmem_write_src ws;
	unsigned int off, i;
	pgoff_t index = start;
	int r = 0, got, n;

	while (index < end) {
		/*
		 * Pin or copy with no lock held: the source may fault, take
		 * mmap_lock or wait on userfaultfd for as long as it likes.
		 * Pinned, it is copied once, straight into the page, and
		 * cannot fault half way.
		 */
		off = offset_in_page(src);
		n = min_t(pgoff_t, end - index, GMEM_WRITE_BATCH) + !!off;
		got = pin_user_pages_fast((unsigned long)src & PAGE_MASK, n, 0,
					  pinned);
		if (got < 1 + !!off) {
			if (got > 0)
				unpin_user_pages(pinned, got);
			got = 0;
			if (copy_from_user(bounce, src, PAGE_SIZE)) {
				r = -EFAULT;
				break;
			}
			ws.buf = bounce;
			n = 1;
		} else {
			ws.buf = NULL;
			ws.off = off;
			n = got - !!off;
		}
		for (i = 0; i < n; i++) {
			if (signal_pending(current)) {
				r = -EINTR;
				break;
			}
			if (!ws.buf) {
				ws.pages[0] = pinned[i];
				ws.pages[1] = off ? pinned[i + 1] : NULL;
			}
			r = gmem_write_page(gf, index, &ws);
			if (r == -ENOMEM && gmem_release_held(gf))
				r = gmem_write_page(gf, index, &ws);
			if (r)
				break;
			index++;
			src += PAGE_SIZE;
		}
		if (got > 0)
			unpin_user_pages(pinned, got);
		if (r)
			break;
		cond_resched();
	}
	*done = index;
	return r;
}

static long gmem_write(struct file *file, struct gmem_write __user *uarg)
{
	struct gmem_file *gf = file->private_data;
	struct gmem_write args;
	pgoff_t start, end, done;
	void *bounce;
	int r;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (args.flags || memchr_inv(args.reserved, 0, sizeof(args.reserved)))
		return -EINVAL;
	r = gmem_page_range(gf->size, args.offset, args.size, &start, &end);
	if (r)
		return r;

	/* The arguments are checked: from here on, @written is stored. */
	done = start;
	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	r = -ENOMEM;
	if (bounce)
		r = __gmem_write(gf, start, end, u64_to_user_ptr(args.user_addr),
				 bounce, &done);
	kfree(bounce);
	if (done != start)
		file_modified(file);
	if (put_user((u64)(done - start) << PAGE_SHIFT, &uarg->written))
		return -EFAULT;
	return r;
}

static long gmem_file_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case GMEM_SET_ATTRIBUTES:
		return gmem_set_attributes(file, uarg);
	case GMEM_GET_ATTRIBUTES:
		return gmem_get_attributes(file, uarg);
	case GMEM_WRITE:
		return gmem_write(file, uarg);
	case GMEM_SET_MEMPOLICY:
		return gmem_set_mempolicy(file, uarg);
	case GMEM_GET_MEMPOLICY:
		return gmem_get_mempolicy(file, uarg);
	case GMEM_RELEASE_VM:
		return gmem_kvm_release_vm(file->private_data, uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations gmem_fops = {
	.owner		= THIS_MODULE,
	.release	= gmem_release,
	.fallocate	= gmem_fallocate,
	.unlocked_ioctl	= gmem_file_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.show_fdinfo	= gmem_show_fdinfo,
};

/**
 * gmem_is_gmem_file() - is @file a gmem file?
 * @file: any file
 *
 * Return: true for files made by GMEM_CREATE.
 */
bool gmem_is_gmem_file(struct file *file)
{
	return file->f_op == &gmem_fops;
}
EXPORT_SYMBOL_IF_KUNIT(gmem_is_gmem_file);

static int gmem_getattr(struct mnt_idmap *idmap, const struct path *path,
			struct kstat *stat, u32 request_mask,
			unsigned int query_flags)
{
	struct inode *inode = d_inode(path->dentry);
	struct gmem_file *gf;

	generic_fillattr(idmap, request_mask, inode, stat);
	stat->blksize = PAGE_SIZE;
	stat->blocks = 0;
	/* NULL once the file is released (gmem_release()): no pages. */
	rcu_read_lock();
	gf = READ_ONCE(inode->i_private);
	if (gf)
		stat->blocks = atomic_long_read(&gf->store.nr_pages) <<
			       (PAGE_SHIFT - 9);
	rcu_read_unlock();
	return 0;
}

static int gmem_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
			struct iattr *attr)
{
	/* The size is fixed, and there is nothing else to set. */
	return -EINVAL;
}

static const struct inode_operations gmem_iops = {
	.getattr	= gmem_getattr,
	.setattr	= gmem_setattr,
};

/*
 * The name /proc/<pid>/fd/ shows, as for the anon-inode files gmem made
 * before it had a file system of its own: d_dname() fills the end of
 * @buffer.
 */
static char *gmem_dname(struct dentry *dentry, char *buffer, int buflen)
{
	static const char name[] = "anon_inode:[gmem]";

	if (buflen < sizeof(name))
		return ERR_PTR(-ENAMETOOLONG);
	buffer += buflen - sizeof(name);
	memcpy(buffer, name, sizeof(name));
	return buffer;
}

static const struct dentry_operations gmem_dops = {
	.d_dname	= gmem_dname,
};

static int gmem_init_fs_context(struct fs_context *fc)
{
	struct pseudo_fs_context *ctx = init_pseudo(fc, GMEM_MAGIC);

	if (!ctx)
		return -ENOMEM;
	ctx->dops = &gmem_dops;
	return 0;
}

static struct file_system_type gmem_fs_type = {
	.owner		= THIS_MODULE,
	.name		= "gmem",
	.init_fs_context = gmem_init_fs_context,
	.kill_sb	= kill_anon_super,
};

/* A new file for @gf on a new inode of gmem's file system, or an ERR_PTR. */
static struct file *gmem_file_alloc(struct gmem_file *gf)
{
	struct inode *inode;
	struct file *file;
	int r;

	r = simple_pin_fs(&gmem_fs_type, &gmem_mnt, &gmem_mnt_count);
	if (r)
		return ERR_PTR(r);
	inode = alloc_anon_inode(gmem_mnt->mnt_sb);
	if (IS_ERR(inode)) {
		file = ERR_CAST(inode);
		goto err_release_fs;
	}
	inode->i_private = gf;
	inode->i_op = &gmem_iops;
	inode->i_mode = S_IFREG | 0600;
	inode->i_size = gf->size;

	file = alloc_file_pseudo(inode, gmem_mnt, "[gmem]", O_RDWR, &gmem_fops);
	if (IS_ERR(file))
		goto err_iput;
	/* The file's reference; our caller holds one already. */
	__module_get(THIS_MODULE);
	file->f_flags |= O_LARGEFILE;
	file->private_data = gf;
	return file;

err_iput:
	iput(inode);
err_release_fs:
	simple_release_fs(&gmem_mnt, &gmem_mnt_count);
	return file;
}

/* The file-wide attributes that GMEM_CREATE's flags ask for. */
static int gmem_create_attrs(struct gmem_file *gf)
{
	u64 attrs = 0;
	int r;

	if (gf->flags & GMEM_CREATE_NOALLOC)
		attrs |= GMEM_ATTR_NOALLOC;
	if (gf->flags & GMEM_CREATE_USERFAULT)
		attrs |= GMEM_ATTR_USERFAULT;
	if (!attrs)
		return 0;
	/* Nobody else can see the file yet: taken for the lock checks. */
	down_write(&gf->lock);
	r = gmem_attrs_set(&gf->attrs, 0, gf->size >> PAGE_SHIFT, attrs,
			   GMEM_ATTRS);
	up_write(&gf->lock);
	return r;
}

/**
 * gmem_max_file_size() - the largest size a gmem file may have
 *
 * Return: the max_file_size parameter, in bytes.
 */
loff_t gmem_max_file_size(void)
{
	return READ_ONCE(max_file_size);
}

/**
 * gmem_file_create() - make a new gmem file
 * @size: its size in bytes, page aligned, at most gmem_max_file_size()
 * @flags: GMEM_CREATE_* flags (GMEM_CREATE_FLAGS only)
 *
 * The file's pages and nodes are charged to the caller's memory cgroup.
 * Context: Process context; the caller holds a reference on this module.
 * Return: the file, or an ERR_PTR.
 */
struct file *gmem_file_create(loff_t size, u64 flags)
{
	struct mem_cgroup *memcg;
	struct gmem_file *gf;
	struct file *file;
	int r;

	gf = kzalloc(sizeof(*gf), GFP_KERNEL_ACCOUNT);
	if (!gf)
		return ERR_PTR(-ENOMEM);
	memcg = get_mem_cgroup_from_mm(current->mm);
	r = gmem_store_init(&gf->store, memcg);
	if (r) {
		mem_cgroup_put(memcg);
		kfree(gf);
		return ERR_PTR(r);
	}
	init_rwsem(&gf->lock);
	kvm_gmem_binding_init(&gf->binding, size);
	gmem_attrs_init(&gf->attrs, &gf->lock, gf->store.memcg);
	gf->size = size;
	gf->flags = flags & ~GMEM_CREATE_BLOCKS;
	if (READ_ONCE(no_direct_map) && gmem_direct_map_changeable())
		gf->flags |= GMEM_CREATE_NO_DIRECT_MAP;
	gf->store.no_direct_map = gf->flags & GMEM_CREATE_NO_DIRECT_MAP;
	switch (READ_ONCE(blocks)) {
	case GMEM_BLOCKS_ALWAYS:
		gf->flags |= GMEM_CREATE_BLOCKS;
		break;
	case GMEM_BLOCKS_FLAG:
		gf->flags |= flags & GMEM_CREATE_BLOCKS;
		break;
	}

	r = gmem_create_attrs(gf);
	file = r ? ERR_PTR(r) : gmem_file_alloc(gf);
	if (IS_ERR(file)) {
		gmem_attrs_destroy(&gf->attrs);
		gmem_store_destroy(&gf->store);
		mem_cgroup_put(gf->store.memcg);
		kfree(gf);
		return file;
	}
	gf->store.id = file_inode(file)->i_ino;
	atomic_long_inc(&gmem_nr_files);
	spin_lock(&gmem_files_lock);
	list_add(&gf->node, &gmem_files);
	spin_unlock(&gmem_files_lock);
	return file;
}

static int gmem_create(struct file *dev, struct gmem_create __user *uarg)
{
	struct gmem_create args;
	struct file *file;
	unsigned int i;
	int fd;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (!(dev->f_mode & FMODE_WRITE))
		return -EBADF;
	for (i = 0; i < ARRAY_SIZE(args.reserved); i++)
		if (args.reserved[i])
			return -EINVAL;
	if (args.flags & ~GMEM_CREATE_FLAGS)
		return -EINVAL;
	if ((args.flags & GMEM_CREATE_NO_DIRECT_MAP) &&
	    !gmem_direct_map_changeable())
		return -EOPNOTSUPP;
	if (!args.size || !PAGE_ALIGNED(args.size) ||
	    args.size > gmem_max_file_size())
		return -EINVAL;

	fd = get_unused_fd_flags(args.flags & GMEM_CREATE_CLOEXEC ? O_CLOEXEC : 0);
	if (fd < 0)
		return fd;
	file = gmem_file_create(args.size, args.flags);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		return PTR_ERR(file);
	}
	fd_install(fd, file);
	return fd;
}

/**
 * gmem_dev_ioctl() - ioctl handler of /dev/gmem
 * @file: the open /dev/gmem
 * @cmd: ioctl number
 * @arg: ioctl argument
 *
 * Return: the ioctl's result; -ENOTTY for an ioctl gmem does not know.
 */
VISIBLE_IF_KUNIT long gmem_dev_ioctl(struct file *file, unsigned int cmd,
				     unsigned long arg)
{
	switch (cmd) {
	case GMEM_CREATE:
		return gmem_create(file, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}
EXPORT_SYMBOL_IF_KUNIT(gmem_dev_ioctl);

static const struct file_operations gmem_dev_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.unlocked_ioctl	= gmem_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static ssize_t files_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&gmem_nr_files));
}
static DEVICE_ATTR_RO(files);

static ssize_t allocated_bytes_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	unsigned long held;

	return sysfs_emit(buf, "%lu\n", gmem_store_totals(&held) << PAGE_SHIFT);
}
static DEVICE_ATTR_RO(allocated_bytes);

static ssize_t held_bytes_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	unsigned long held;

	gmem_store_totals(&held);
	return sysfs_emit(buf, "%lu\n", held << PAGE_SHIFT);
}
static DEVICE_ATTR_RO(held_bytes);

static ssize_t allocations_1g_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%ld\n", gmem_store_giant_allocs());
}
static DEVICE_ATTR_RO(allocations_1g);

static ssize_t unmapped_bytes_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", gmem_store_unmapped() << PAGE_SHIFT);
}
static DEVICE_ATTR_RO(unmapped_bytes);

static ssize_t node_bytes_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return gmem_show_nodes(NULL, buf, NULL);
}
static DEVICE_ATTR_RO(node_bytes);

static ssize_t takeover_files_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	unsigned long declined;

	return sysfs_emit(buf, "%lu\n", gmem_kvm_takeover_counts(&declined));
}
static DEVICE_ATTR_RO(takeover_files);

static ssize_t takeover_declined_show(struct device *dev,
				      struct device_attribute *attr, char *buf)
{
	unsigned long declined;

	gmem_kvm_takeover_counts(&declined);
	return sysfs_emit(buf, "%lu\n", declined);
}
static DEVICE_ATTR_RO(takeover_declined);

static struct attribute *gmem_dev_attrs[] = {
	&dev_attr_files.attr,
	&dev_attr_allocated_bytes.attr,
	&dev_attr_held_bytes.attr,
	&dev_attr_allocations_1g.attr,
	&dev_attr_unmapped_bytes.attr,
	&dev_attr_node_bytes.attr,
	&dev_attr_takeover_files.attr,
	&dev_attr_takeover_declined.attr,
	NULL
};
ATTRIBUTE_GROUPS(gmem_dev);

/*
 * Hibernation would map every page out of the direct map back to save it
 * (one split of a 2 MiB entry per page, in atomic context) and write
 * private memory into the image: refuse it while files hold such pages.
 */
static int gmem_pm_notify(struct notifier_block *nb, unsigned long action,
			  void *data)
{
	if (action == PM_HIBERNATION_PREPARE && gmem_store_unmapped()) {
		pr_warn("hibernation refused: pages of gmem files are out of the direct map\n");
		return notifier_from_errno(-EBUSY);
	}
	return NOTIFY_OK;
}

static struct notifier_block gmem_pm_nb = {
	.notifier_call = gmem_pm_notify,
};

static struct miscdevice gmem_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "gmem",
	.fops	= &gmem_dev_fops,
	.groups	= gmem_dev_groups,
};

static int __init gmem_init(void)
{
	int r;

	r = gmem_kvm_init();
	if (r) {
		pr_err("cannot register with KVM as guest_memfd provider: %d\n", r);
		return r;
	}
	gmem_shrinker = shrinker_alloc(0, "gmem-held");
	if (!gmem_shrinker) {
		gmem_kvm_exit();
		return -ENOMEM;
	}
	gmem_shrinker->count_objects = gmem_shrink_count;
	gmem_shrinker->scan_objects = gmem_shrink_scan;
	shrinker_register(gmem_shrinker);
	r = register_pm_notifier(&gmem_pm_nb);
	if (r) {
		shrinker_free(gmem_shrinker);
		gmem_kvm_exit();
		return r;
	}
	r = misc_register(&gmem_misc);
	if (r) {
		pr_err("cannot register /dev/gmem: %d\n", r);
		unregister_pm_notifier(&gmem_pm_nb);
		shrinker_free(gmem_shrinker);
		gmem_kvm_exit();
		return r;
	}
	gmem_kvm_ready_for_takeover();
	pr_info("version %s loaded\n", GMEM_VERSION);
	return 0;
}

static void __exit gmem_exit(void)
{
	unsigned long pages, held;

	misc_deregister(&gmem_misc);
	unregister_pm_notifier(&gmem_pm_nb);
	shrinker_free(gmem_shrinker);
	gmem_kvm_exit();
	/* Every file holds a module reference: none can be left. */
	pages = gmem_store_totals(&held);
	WARN_ONCE(atomic_long_read(&gmem_nr_files) || pages || held,
		  "gmem: %ld files, %lu pages, %lu held left at unload\n",
		  atomic_long_read(&gmem_nr_files), pages, held);
}

module_init(gmem_init);
module_exit(gmem_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("gmem developers");
MODULE_DESCRIPTION("Private memory for KVM guests (/dev/gmem)");
MODULE_VERSION(GMEM_VERSION);
