// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem_inject: a test helper, built with the KUnit suites and not for
 * production use.  It lets a selftest give a page of one of its own gmem
 * files a real memory error, as a machine check would.
 *
 * Writing "FD OFFSET" to /sys/kernel/debug/gmem_inject/hwpoison runs
 * memory_failure() on the page at byte OFFSET of the writer's gmem file
 * FD.  Reading the file gives the pfn of the last page poisoned, so that
 * a test can follow that page in /proc/kpageflags after gmem frees it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "gmem.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

static struct dentry *gmem_inject_dir;
static unsigned long gmem_inject_last_pfn;

/*
 * Give page @offset of the caller's gmem file @fd a memory error.
 * Returns its pfn, or -errno.  The page is held across memory_failure(),
 * so that a concurrent punch cannot hand the pfn to someone else first.
 */
static long gmem_inject_hwpoison(int fd, u64 offset)
{
	struct gmem_file *gf;
	struct folio *folio;
	struct fd f = fdget(fd);
	long pfn = -EINVAL;

	if (fd_empty(f))
		return -EBADF;
	if (!gmem_is_gmem_file(fd_file(f)))
		goto out;
	gf = fd_file(f)->private_data;
	if (!PAGE_ALIGNED(offset) || offset >= (u64)gf->size)
		goto out;

	down_read(&gf->lock);
	folio = gmem_store_get(&gf->store, offset >> PAGE_SHIFT, false);
	up_read(&gf->lock);
	pfn = -ENOENT;
	if (!folio)
		goto out;
	pfn = folio_pfn(folio);
	/*
	 * gmem's pages are in no page cache and on no LRU: memory_failure()
	 * flags the page and reports it unhandlable, which is the case a
	 * real machine check meets.
	 */
	memory_failure(pfn, 0);
	if (!folio_test_hwpoison(folio))
		pfn = -EIO;
	folio_put(folio);
out:
	fdput(f);
	return pfn;
}

static ssize_t gmem_inject_write(struct file *file, const char __user *ubuf,
				 size_t len, loff_t *ppos)
{
	char buf[64];
	u64 offset;
	long pfn;
	int fd;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sscanf(buf, "%d %llu", &fd, &offset) != 2)
		return -EINVAL;

	pfn = gmem_inject_hwpoison(fd, offset);
	if (pfn < 0)
		return pfn;
	WRITE_ONCE(gmem_inject_last_pfn, pfn);
	return len;
}

static ssize_t gmem_inject_read(struct file *file, char __user *ubuf,
				size_t len, loff_t *ppos)
{
	char buf[32];
	int n;

	n = scnprintf(buf, sizeof(buf), "%lu\n", READ_ONCE(gmem_inject_last_pfn));
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations gmem_inject_fops = {
	.owner	= THIS_MODULE,
	.write	= gmem_inject_write,
	.read	= gmem_inject_read,
	.llseek	= default_llseek,
};

static int __init gmem_inject_init(void)
{
	gmem_inject_dir = debugfs_create_dir("gmem_inject", NULL);
	debugfs_create_file("hwpoison", 0600, gmem_inject_dir, NULL,
			    &gmem_inject_fops);
	return 0;
}

static void __exit gmem_inject_exit(void)
{
	debugfs_remove_recursive(gmem_inject_dir);
}

module_init(gmem_inject_init);
module_exit(gmem_inject_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test helper: memory errors in gmem pages (not for production)");
