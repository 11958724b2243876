// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem as the guest_memfd provider of a patched KVM
 * (kernel/patches/6.12/): KVM_SET_USER_MEMORY_REGION2 with
 * KVM_MEM_GUEST_MEMFD and a gmem fd binds the memslot here, and private
 * guest faults on it ask gmem_kvm_get_pfn() for the page.
 *
 * The rules are KVM's own guest_memfd's: a file binds to one VM only (the
 * first that binds it, which the file then pins until it is released);
 * the ranges of one file never overlap across memslots; guest mappings
 * are zapped before pages are freed; VM and file can go away in either
 * order.  Every bound memslot holds a reference on this module (taken by
 * KVM), so gmem cannot be unloaded while a memslot uses one of its files.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

#include "gmem.h"

static pgoff_t gmem_kvm_index(struct kvm_memory_slot *slot, gfn_t gfn)
{
	return gfn - slot->base_gfn + slot->gmem.pgoff;
}

/**
 * gmem_kvm_invalidate_begin() - zap guest mappings of pages [@start, @end)
 * @gf: the file
 * @start: first page offset
 * @end: page offset after the last
 *
 * The range is widened to the whole blocks it touches (see below).
 * Caller holds @gf->lock exclusively, which keeps the bindings stable,
 * and calls gmem_kvm_invalidate_end() with the returned count once the
 * pages are gone or changed.
 *
 * Return: how many invalidations were begun.
 */
unsigned long gmem_kvm_invalidate_begin(struct gmem_file *gf, pgoff_t start,
					pgoff_t end)
{
	struct kvm_memory_slot *slot, *prev = NULL;
	unsigned long index, n = 0;

	lockdep_assert_held_write(&gf->lock);
	if (!gf->kvm)
		return 0;

	/*
	 * A fault in flight may have found a whole block and be about to
	 * map all of it at once (gmem_kvm_max_order()), but KVM checks
	 * whether an invalidation is in progress only for the faulting gfn.
	 * Invalidate the whole blocks that [@start, @end) touches, so that
	 * such a fault retries instead of mapping a page that is about to
	 * be freed, or whose attributes are about to change; the same for
	 * whole 1 GiB ranges and 1G mappings.  Both are stable here: only
	 * removal ends them, under @gf->lock.
	 */
	if (gmem_store_giant(&gf->store, start) != ULONG_MAX)
		start = round_down(start, GMEM_GIANT_PAGES);
	else if (gmem_store_block(&gf->store, start) != ULONG_MAX)
		start = round_down(start, GMEM_BLOCK_PAGES);
	if (end < ULONG_MAX - GMEM_GIANT_PAGES &&
	    gmem_store_giant(&gf->store, end - 1) != ULONG_MAX)
		end = round_up(end, GMEM_GIANT_PAGES);
	else if (end < ULONG_MAX - GMEM_BLOCK_PAGES &&
		 gmem_store_block(&gf->store, end - 1) != ULONG_MAX)
		end = round_up(end, GMEM_BLOCK_PAGES);

	/* A memslot's range may be stored as several multi-index entries. */
	xa_for_each_range(&gf->bindings, index, slot, start, end - 1) {
		pgoff_t pgoff = slot->gmem.pgoff;
		gfn_t first = slot->base_gfn + max(pgoff, start) - pgoff;
		gfn_t last = slot->base_gfn + min(pgoff + slot->npages, end) - pgoff;

		if (slot == prev)
			continue;
		prev = slot;
		kvm_gmem_provider_invalidate_begin(gf->kvm, slot, first, last);
		n++;
	}
	return n;
}

/**
 * gmem_kvm_invalidate_end() - end what gmem_kvm_invalidate_begin() began
 * @gf: the file
 * @n: its return value
 */
void gmem_kvm_invalidate_end(struct gmem_file *gf, unsigned long n)
{
	lockdep_assert_held_write(&gf->lock);
	while (n--)
		kvm_gmem_provider_invalidate_end(gf->kvm);
}

/**
 * gmem_kvm_release() - cut a file that is being released off its memslots
 * @gf: the file; its last reference is gone
 *
 * Zaps every guest mapping of the file and clears slot->gmem.file of its
 * memslots, so that KVM's later unbind of those memslots finds nothing to
 * do.  The caller frees the pages and then drops the returned reference
 * with kvm_put_kvm(), which may destroy the VM.
 *
 * Return: the VM the file pinned, or NULL if it was never bound.
 */
struct kvm *gmem_kvm_release(struct gmem_file *gf)
{
	struct kvm *kvm = gf->kvm;
	struct kvm_memory_slot *slot;
	unsigned long index, n;

	if (!kvm)
		return NULL;

	/*
	 * slots_lock first (KVM's order: slots_lock, then provider locks):
	 * it keeps KVM from unbinding and freeing a memslot while we clear
	 * its file pointer.  Nobody can be in gmem_kvm_get_pfn() with this
	 * file: get_file_active() fails once the last reference is gone.
	 */
	mutex_lock(&kvm->slots_lock);
	down_write(&gf->lock);
	xa_for_each(&gf->bindings, index, slot)
		WRITE_ONCE(slot->gmem.file, NULL);
	n = gmem_kvm_invalidate_begin(gf, 0, ULONG_MAX);
	gmem_kvm_invalidate_end(gf, n);
	xa_destroy(&gf->bindings);
	up_write(&gf->lock);
	mutex_unlock(&kvm->slots_lock);
	return kvm;
}

/**
 * gmem_kvm_vm_type_ok() - may a VM of this type bind gmem files?
 * @type: the VM type (x86: KVM_X86_*_VM)
 *
 * The private pages of SEV-SNP and TDX guests must be prepared by the
 * architecture (kvm_arch_gmem_prepare(): RMP or TDX page state) before
 * a guest may use them, which gmem does not do: such a guest would hang
 * on its first private access.  Only VM types whose private memory is
 * plain memory may bind.
 *
 * Return: true for KVM_X86_SW_PROTECTED_VM.
 */
VISIBLE_IF_KUNIT bool gmem_kvm_vm_type_ok(unsigned long type)
{
#ifdef CONFIG_X86
	return type == KVM_X86_SW_PROTECTED_VM;
#else
	return false;
#endif
}
EXPORT_SYMBOL_IF_KUNIT(gmem_kvm_vm_type_ok);

static bool gmem_kvm_owns_file(struct file *file)
{
	return gmem_is_gmem_file(file);
}

static int gmem_kvm_bind(struct kvm *kvm, struct kvm_memory_slot *slot,
			 struct file *file, loff_t offset)
{
	struct gmem_file *gf = file->private_data;
	unsigned long start, end, first;
	loff_t last;
	int r = -EINVAL;

#ifdef CONFIG_X86
	if (!gmem_kvm_vm_type_ok(kvm->arch.vm_type))
		return -EOPNOTSUPP;
#endif
	if (offset < 0 || !PAGE_ALIGNED(offset) ||
	    check_add_overflow(offset, (loff_t)slot->npages << PAGE_SHIFT, &last) ||
	    last > gf->size)
		return -EINVAL;
	start = offset >> PAGE_SHIFT;
	end = start + slot->npages;

	/* Called with kvm->slots_lock held; see gmem_kvm_release(). */
	down_write(&gf->lock);
	if (gf->kvm && gf->kvm != kvm)
		goto out;
	first = start;
	if (xa_find(&gf->bindings, &first, end - 1, XA_PRESENT))
		goto out;
	r = xa_err(xa_store_range(&gf->bindings, start, end - 1, slot,
				  GFP_KERNEL_ACCOUNT));
	if (r) {
		xa_store_range(&gf->bindings, start, end - 1, NULL, GFP_KERNEL);
		goto out;
	}
	if (!gf->kvm) {
		/* The file pins the VM, not the other way round. */
		kvm_get_kvm(kvm);
		gf->kvm = kvm;
	}
	/* The memslot is not visible yet: no fault can race with this. */
	slot->gmem.pgoff = start;
	WRITE_ONCE(slot->gmem.file, file);
out:
	up_write(&gf->lock);
	return r;
}

static void gmem_kvm_unbind(struct kvm_memory_slot *slot)
{
	/*
	 * With kvm->slots_lock held, or from VM destruction.  The file, if
	 * still set, cannot be freed under us: its release takes slots_lock,
	 * and while it is open it pins the VM, so the VM is not being
	 * destroyed.  If it is NULL, release already removed the binding.
	 */
	struct file *file = READ_ONCE(slot->gmem.file);
	struct gmem_file *gf;
	pgoff_t start = slot->gmem.pgoff;

	if (!file)
		return;
	gf = file->private_data;
	down_write(&gf->lock);
	xa_store_range(&gf->bindings, start, start + slot->npages - 1, NULL,
		       GFP_KERNEL);
	WRITE_ONCE(slot->gmem.file, NULL);
	up_write(&gf->lock);
}

/*
 * Would KVM map the 2M (@level PG_LEVEL_2M) or 1G range of @gfn with one
 * entry?  Not if its lpage_info disallows it: the range crosses the
 * memslot's edges (KVM marks the partial first and last ranges), its
 * guest frames and userspace address do not line up, or it mixes private
 * and shared attributes.  Read without mmu_lock: a change after this
 * read comes with an invalidation that makes the fault retry.
 */
static bool gmem_kvm_may_map(struct kvm_memory_slot *slot, gfn_t gfn, int level)
{
#ifdef CONFIG_X86
	unsigned int shift = KVM_HPAGE_GFN_SHIFT(level);
	unsigned long idx = (gfn >> shift) - (slot->base_gfn >> shift);

	return !READ_ONCE(slot->arch.lpage_info[level - 2][idx].disallow_lpage);
#else
	return false;
#endif
}

/*
 * A fault on the hole @index of a file with blocks (GMEM_CREATE_BLOCKS):
 * allocate the whole block if KVM would map it with one 2M entry and
 * every page of it may be allocated by a fault.  Whether it worked or
 * not (a page of it is there, no free block), the fault goes on.
 */
static void gmem_kvm_fault_block(struct gmem_file *gf,
				 struct kvm_memory_slot *slot, gfn_t gfn,
				 pgoff_t index)
{
	pgoff_t head = round_down(index, GMEM_BLOCK_PAGES), last;

	if (!(gf->flags & GMEM_CREATE_BLOCKS) ||
	    !IS_ALIGNED(gfn ^ index, GMEM_BLOCK_PAGES) ||
	    !gmem_kvm_may_map(slot, gfn, PG_LEVEL_2M))
		return;
	if (gmem_attrs_get(&gf->attrs, head, &last) ||
	    last < head + GMEM_BLOCK_PAGES - 1)
		return;
	gmem_store_insert_block(&gf->store, head, ULONG_MAX);
}

/*
 * The folio for a guest fault on page @index, following the page's
 * attributes (checked in this order): POISON fails with -EHWPOISON,
 * USERFAULT with -EFAULT, NOALLOC with -EFAULT when the page is a hole;
 * otherwise a hole is allocated (with its whole block, see above).  KVM
 * turns both errors into a KVM_EXIT_MEMORY_FAULT exit of KVM_RUN
 * (failing with EFAULT or EHWPOISON); the VMM tells the attributes apart
 * with GMEM_GET_ATTRIBUTES.  Returns the folio with a reference, not yet
 * handed to the guest, or an ERR_PTR.  Caller holds @gf->lock shared.
 */
static struct folio *gmem_kvm_fault_folio(struct gmem_file *gf,
					  struct kvm_memory_slot *slot,
					  gfn_t gfn, pgoff_t index)
{
	u64 attrs = gmem_attrs_get(&gf->attrs, index, NULL);
	struct folio *folio;

	lockdep_assert_held_read(&gf->lock);
	if (attrs & GMEM_ATTR_POISON)
		return ERR_PTR(-EHWPOISON);
	if (attrs & GMEM_ATTR_USERFAULT)
		return ERR_PTR(-EFAULT);
	folio = gmem_store_get(&gf->store, index, false);
	if (!folio) {
		if (attrs & GMEM_ATTR_NOALLOC)
			return ERR_PTR(-EFAULT);
		gmem_kvm_fault_block(gf, slot, gfn, index);
		folio = gmem_store_get(&gf->store, index, true);
	}
	return folio;
}

/*
 * Hand the page @folio at @index to the guest alone.  Under the page
 * lock, which GMEM_WRITE holds while it writes the page: from now on
 * GMEM_WRITE leaves it alone (EPERM).  Returns 0 or -EHWPOISON.
 */
static int gmem_kvm_hand_out_page(struct gmem_file *gf, struct folio *folio,
				  pgoff_t index)
{
	int r = 0;

	folio_lock(folio);
	if (folio_test_hwpoison(folio))
		r = -EHWPOISON;
	else
		gmem_store_set_guest(&gf->store, index);
	folio_unlock(folio);
	return r;
}

/*
 * gmem_kvm_max_order() for a whole 1 GiB range (gmem_store_giant()):
 * the same conditions as for a block, at 1G.  Handing out 262144 pages
 * goes block by block; if a block cannot be handed out (GMEM_WRITE is
 * writing a page of it), the fault falls back to 2M, and the blocks
 * already handed out stay so (GMEM_WRITE refuses them, no guest maps
 * them yet).
 */
static bool gmem_kvm_giant(struct gmem_file *gf, struct kvm_memory_slot *slot,
			   gfn_t gfn, pgoff_t index)
{
	pgoff_t head = gmem_store_giant(&gf->store, index), last, b;
	u64 attrs;

	if (head == ULONG_MAX || !IS_ALIGNED(gfn ^ index, GMEM_GIANT_PAGES) ||
	    !gmem_kvm_may_map(slot, gfn, PG_LEVEL_1G))
		return false;
	attrs = gmem_attrs_get(&gf->attrs, head, &last);
	if ((attrs & (GMEM_ATTR_USERFAULT | GMEM_ATTR_POISON)) ||
	    last < head + GMEM_GIANT_PAGES - 1 ||
	    gmem_store_hwpoisoned(&gf->store, head, head + GMEM_GIANT_PAGES))
		return false;
	for (b = head; b < head + GMEM_GIANT_PAGES; b += GMEM_BLOCK_PAGES)
		if (!gmem_store_hand_out(&gf->store, b, b + GMEM_BLOCK_PAGES))
			return false;
	return true;
}

/*
 * The order KVM may map @index with: GMEM_BLOCK_ORDER when @index lies in
 * a whole block (gmem_store_block()) whose guest frames line up with it,
 * whose pages all fault the same way, without USERFAULT or POISON, none
 * of which has a memory error or is being written by GMEM_WRITE, and
 * which KVM would map with one 2M entry.  Only then is the whole block
 * handed to the guest (GMEM_WRITE refuses it from then on); otherwise
 * only the faulting page is.  Called with @gf->lock held shared.
 */
static int gmem_kvm_max_order(struct gmem_file *gf, struct kvm_memory_slot *slot,
			      gfn_t gfn, pgoff_t index)
{
	pgoff_t head, last;
	u64 attrs;

	if (gmem_kvm_giant(gf, slot, gfn, index))
		return GMEM_GIANT_ORDER;
	head = gmem_store_block(&gf->store, index);
	if (head == ULONG_MAX || !IS_ALIGNED(gfn ^ index, GMEM_BLOCK_PAGES) ||
	    !gmem_kvm_may_map(slot, gfn, PG_LEVEL_2M))
		return 0;
	attrs = gmem_attrs_get(&gf->attrs, head, &last);
	if ((attrs & (GMEM_ATTR_USERFAULT | GMEM_ATTR_POISON)) ||
	    last < head + GMEM_BLOCK_PAGES - 1 ||
	    gmem_store_hwpoisoned(&gf->store, head, head + GMEM_BLOCK_PAGES) ||
	    !gmem_store_hand_out(&gf->store, head, head + GMEM_BLOCK_PAGES))
		return 0;
	return GMEM_BLOCK_ORDER;
}

/*
 * Resolve a private guest fault: the page at @gfn's offset, allocated and
 * zeroed on first use unless the page's attributes say otherwise (see
 * gmem_kvm_fault_folio()), with a reference that KVM drops when the fault
 * is done.  Called with kvm->srcu held.
 */
static int gmem_kvm_get_pfn(struct kvm *kvm, struct kvm_memory_slot *slot,
			    gfn_t gfn, kvm_pfn_t *pfn, int *max_order)
{
	pgoff_t index = gmem_kvm_index(slot, gfn);
	struct gmem_file *gf;
	struct folio *folio;
	bool retried = false;
	struct file *file;
	int r, order;

	file = get_file_active(&slot->gmem.file);
	if (!file)
		return -EFAULT;
	gf = file->private_data;
again:
	r = 0;

	/*
	 * Shared: faults race only with allocations, never with removal or
	 * with a change of attributes or of GMEM_WRITE's page, which take
	 * the lock exclusively.
	 */
	down_read(&gf->lock);
	if (xa_load(&gf->bindings, index) != slot) {
		r = -EIO;
		goto out;
	}
	folio = gmem_kvm_fault_folio(gf, slot, gfn, index);
	if (IS_ERR(folio)) {
		r = PTR_ERR(folio);
		goto out;
	}
	/*
	 * The page goes to the guest with its block when KVM may map that
	 * whole (handed out by gmem_kvm_max_order()), else alone.
	 */
	order = max_order ? gmem_kvm_max_order(gf, slot, gfn, index) : 0;
	if (!order)
		r = gmem_kvm_hand_out_page(gf, folio, index);
	if (r) {
		folio_put(folio);
		goto out;
	}
	*pfn = folio_pfn(folio) + (index & (folio_nr_pages(folio) - 1));
	if (max_order)
		*max_order = order;
out:
	up_read(&gf->lock);
	/* Past the memcg limit, the file's held pages may make room. */
	if (r == -ENOMEM && !retried && gmem_release_held(gf)) {
		retried = true;
		goto again;
	}
	fput(file);
	return r;
}

static const struct kvm_gmem_provider gmem_kvm_provider = {
	.owner		= THIS_MODULE,
	.owns_file	= gmem_kvm_owns_file,
	.bind		= gmem_kvm_bind,
	.unbind		= gmem_kvm_unbind,
	.get_pfn	= gmem_kvm_get_pfn,
};

int gmem_kvm_init(void)
{
	return kvm_gmem_register_provider(&gmem_kvm_provider);
}

void gmem_kvm_exit(void)
{
	kvm_gmem_unregister_provider(&gmem_kvm_provider);
}

/**
 * gmem_kvm_name() - name of the VM a file is bound to, for fdinfo
 * @gf: the file
 *
 * Return: KVM's stats id of the VM ("kvm-<pid>"), or NULL when unbound.
 */
const char *gmem_kvm_name(struct gmem_file *gf)
{
	struct kvm *kvm = READ_ONCE(gf->kvm);

	return kvm ? kvm->stats_id : NULL;
}
