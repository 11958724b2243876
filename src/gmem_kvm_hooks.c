// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem as the guest_memfd provider of a patched KVM
 * (kernel/patches/6.12/): KVM_SET_USER_MEMORY_REGION2 with
 * KVM_MEM_GUEST_MEMFD and a gmem fd binds the memslot to the file, and
 * private guest faults on it ask gmem_kvm_get_pfn() for the page.  With
 * the takeover parameter, KVM_CREATE_GUEST_MEMFD returns gmem files.
 *
 * KVM keeps the bindings, in each file's struct kvm_gmem_binding, with
 * the rules of its own guest_memfd but one: a file binds to one VM only
 * (the first that binds it, or the one it was created for), which the
 * file pins until it is released, or until the holder of both the file
 * and the VM lets the VM go (GMEM_RELEASE_VM, once the VM has no memslot
 * on the file): then the next VM to bind the file gets it, pages and all,
 * the live update of a VMM (docs/design.md, "Handoff").  A file
 * KVM_CREATE_GUEST_MEMFD made stays its VM's for life, as a guest_memfd.
 * The ranges of one file never overlap across memslots; VM and file can
 * go away in either order.  gmem frees
 * or changes pages guests may map only inside kvm_gmem_invalidate().
 * Every bound memslot holds a reference on this module (taken by KVM),
 * so gmem cannot be unloaded while a memslot uses one of its files.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/seq_file.h>

#include "gmem.h"
#include "gmem_trace.h"

#if KVM_GMEM_PROVIDER_API < 3
#error "gmem needs the provider interface of kernel/patches/6.12/ (KVM_GMEM_PROVIDER_API 3)"
#endif

/*
 * Set once the module's init cannot fail any more: a file made before
 * could outlive a module whose init then failed.
 */
static bool gmem_kvm_ready;

/* Let KVM_CREATE_GUEST_MEMFD create gmem files (see gmem_kvm_create()). */
static bool takeover;
module_param(takeover, bool, 0644);
MODULE_PARM_DESC(takeover,
		 "KVM_CREATE_GUEST_MEMFD returns gmem files for the VM types gmem supports (default: off)");

/* Since load: guest_memfd files gmem made, and those it left to KVM. */
static atomic_long_t gmem_kvm_taken_over;
static atomic_long_t gmem_kvm_declined;

/**
 * gmem_kvm_invalidate() - change pages [@start, @end) that guests may map
 * @gf: the file
 * @start: first page offset
 * @end: page offset after the last
 * @change: makes the change (frees pages, changes their attributes)
 * @data: passed to @change
 *
 * KVM zaps the guest mappings of the range, calls @change while no vCPU
 * can map the range again, then lets vCPUs fault it in again.  The range
 * is widened to the whole blocks it touches (see below).  Caller holds
 * @gf->lock exclusively.
 *
 * Return: what @change returns.
 */
int gmem_kvm_invalidate(struct gmem_file *gf, pgoff_t start, pgoff_t end,
			int (*change)(void *data), void *data)
{
	lockdep_assert_held_write(&gf->lock);

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
	trace_gmem_invalidate(gf->store.id, start, end);
	return kvm_gmem_invalidate(&gf->binding, start, end, change, data);
}

/**
 * gmem_kvm_vm_type_ok() - may a VM of this type use gmem files?
 * @type: the VM type (x86: KVM_X86_*_VM)
 *
 * The private pages of SEV-SNP and TDX guests must be prepared by the
 * architecture (kvm_arch_gmem_prepare(): RMP or TDX page state) before
 * a guest may use them, which gmem does not do: such a guest would hang
 * on its first private access.  Only VM types whose private memory is
 * plain memory may bind gmem files.
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

/**
 * gmem_kvm_takeover_ok() - may gmem serve KVM_CREATE_GUEST_MEMFD on a VM?
 * @type: the VM type (x86: KVM_X86_*_VM)
 *
 * The types that may bind gmem files, and the default VM: it has no
 * private memory (KVM refuses its KVM_MEM_GUEST_MEMFD memslots before
 * asking gmem) but may create guest_memfd files.
 *
 * Return: true for KVM_X86_SW_PROTECTED_VM and KVM_X86_DEFAULT_VM.
 */
VISIBLE_IF_KUNIT bool gmem_kvm_takeover_ok(unsigned long type)
{
#ifdef CONFIG_X86
	if (type == KVM_X86_DEFAULT_VM)
		return true;
#endif
	return gmem_kvm_vm_type_ok(type);
}
EXPORT_SYMBOL_IF_KUNIT(gmem_kvm_takeover_ok);

static unsigned long gmem_kvm_vm_type(struct kvm *kvm)
{
#ifdef CONFIG_X86
	return kvm->arch.vm_type;
#else
	return ULONG_MAX;
#endif
}

static struct kvm_gmem_binding *gmem_kvm_binding(struct file *file)
{
	struct gmem_file *gf = file->private_data;

	return gmem_is_gmem_file(file) ? &gf->binding : NULL;
}

static int gmem_kvm_may_bind(struct kvm *kvm)
{
	return gmem_kvm_vm_type_ok(gmem_kvm_vm_type(kvm)) ? 0 : -EOPNOTSUPP;
}

/*
 * KVM_CREATE_GUEST_MEMFD on @kvm, with KVM's flags and size already
 * checked (KVM 6.12 defines no flags): a gmem file with the default
 * choices of a GMEM_CREATE without flags, charged to the caller's memory
 * cgroup, which KVM binds to @kvm.  Left to KVM's own guest_memfd
 * (-EOPNOTSUPP) when takeover is off, for VM types gmem does not support
 * and for sizes above max_file_size.
 */
static struct file *gmem_kvm_create(struct kvm *kvm, loff_t size, u64 flags)
{
	struct file *file;

	/* Pairs with gmem_kvm_ready_for_takeover(). */
	if (!READ_ONCE(takeover) || !smp_load_acquire(&gmem_kvm_ready))
		return ERR_PTR(-EOPNOTSUPP);
	if (flags || !gmem_kvm_takeover_ok(gmem_kvm_vm_type(kvm)) ||
	    size > gmem_max_file_size()) {
		atomic_long_inc(&gmem_kvm_declined);
		return ERR_PTR(-EOPNOTSUPP);
	}
	file = gmem_file_create(size, 0);
	if (!IS_ERR(file))
		atomic_long_inc(&gmem_kvm_taken_over);
	return file;
}

/**
 * gmem_kvm_takeover_counts() - what KVM_CREATE_GUEST_MEMFD did since load
 * @declined: set to how many calls with takeover on gmem left to KVM
 *
 * Return: how many gmem files KVM_CREATE_GUEST_MEMFD returned.
 */
unsigned long gmem_kvm_takeover_counts(unsigned long *declined)
{
	*declined = atomic_long_read(&gmem_kvm_declined);
	return atomic_long_read(&gmem_kvm_taken_over);
}

/*
 * Would KVM map the 2M (@level PG_LEVEL_2M) or 1G range of @gfn with one
 * entry?  Not if its lpage_info disallows it: the range crosses the
 * memslot's edges (KVM marks the partial first and last ranges), its
 * guest frames and userspace address do not line up, or it mixes private
 * and shared attributes.  Read without mmu_lock: a change after this
 * read comes with an invalidation that makes the fault retry.
 */
static bool gmem_kvm_may_map(const struct kvm_memory_slot *slot, gfn_t gfn, int level)
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
				 const struct kvm_memory_slot *slot, gfn_t gfn,
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
					  const struct kvm_memory_slot *slot,
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
static bool gmem_kvm_giant(struct gmem_file *gf, const struct kvm_memory_slot *slot,
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
static int gmem_kvm_max_order(struct gmem_file *gf, const struct kvm_memory_slot *slot,
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
 * Resolve a private guest fault: the page at offset @index of @file,
 * bound to @slot at @gfn, allocated and zeroed on first use unless the
 * page's attributes say otherwise (see gmem_kvm_fault_folio()), with a
 * reference that KVM drops when the fault is done.  Called with
 * kvm->srcu held and a reference on @file.
 */
static int gmem_kvm_get_pfn(struct file *file, const struct kvm_memory_slot *slot,
			    gfn_t gfn, pgoff_t index, kvm_pfn_t *pfn,
			    int *max_order)
{
	struct gmem_file *gf = file->private_data;
	struct folio *folio;
	bool retried = false;
	int r, order, nid;

again:
	r = 0;
	order = 0;
	nid = NUMA_NO_NODE;

	/*
	 * Shared: faults race only with allocations, never with removal or
	 * with a change of attributes or of GMEM_WRITE's page, which take
	 * the lock exclusively.
	 */
	down_read(&gf->lock);
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
	nid = folio_nid(folio);
	if (max_order)
		*max_order = order;
out:
	up_read(&gf->lock);
	/* Past the memcg limit, the file's held pages may make room. */
	if (r == -ENOMEM && !retried && gmem_release_held(gf)) {
		retried = true;
		goto again;
	}
	trace_gmem_fault(gf->store.id, index, order, r, gfn, nid);
	return r;
}

static const struct kvm_gmem_provider gmem_kvm_provider = {
	.owner		= THIS_MODULE,
	.binding	= gmem_kvm_binding,
	.may_bind	= gmem_kvm_may_bind,
	.create		= gmem_kvm_create,
	.get_pfn	= gmem_kvm_get_pfn,
};

int gmem_kvm_init(void)
{
	return kvm_gmem_register_provider(&gmem_kvm_provider);
}

/* The module is up: takeover may make files from now on. */
void gmem_kvm_ready_for_takeover(void)
{
	/* Pairs with gmem_kvm_create(): all of init is seen done. */
	smp_store_release(&gmem_kvm_ready, true);
}

void gmem_kvm_exit(void)
{
	kvm_gmem_unregister_provider(&gmem_kvm_provider);
}

/**
 * gmem_kvm_release_vm() - GMEM_RELEASE_VM: let the file's VM go
 * @gf: the file, which the caller holds
 * @uarg: the VM, as &struct gmem_release_vm
 *
 * KVM drops the file's reference to the VM if the VM has no memslot on
 * the file; the VM's fd proves the caller runs the VM.
 *
 * Return: 0 or -errno, see GMEM_RELEASE_VM.
 */
long gmem_kvm_release_vm(struct gmem_file *gf, struct gmem_release_vm __user *uarg)
{
	struct gmem_release_vm args;
	struct file *vm;
	int r;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.flags)
		return -EINVAL;
	if (args.vm_fd < 0)
		return -EBADF;
	vm = fget(args.vm_fd);
	if (!vm)
		return -EBADF;
	/* Our reference to the VM's file keeps the VM alive meanwhile. */
	r = file_is_kvm(vm) ? kvm_gmem_binding_move(&gf->binding, vm->private_data, NULL) : -EINVAL;
	fput(vm);
	return r;
}

/**
 * gmem_kvm_show_vm() - print the VM a file is bound to, for fdinfo
 * @m: where to print
 * @gf: the file
 *
 * Prints "gmem-vm:\t<KVM's stats id of the VM>" ("kvm-<pid>"), nothing
 * while the file has no VM.  Under the binding's lock: the VM may let
 * the file go (GMEM_RELEASE_VM) and be freed at once.
 */
void gmem_kvm_show_vm(struct seq_file *m, struct gmem_file *gf)
{
	struct kvm *kvm;

	guard(mutex)(&gf->binding.lock);
	kvm = gf->binding.gmem.kvm;
	if (kvm)
		seq_printf(m, "gmem-vm:\t%s\n", kvm->stats_id);
}
