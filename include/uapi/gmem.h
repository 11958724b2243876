/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * gmem: private memory for KVM guests -- the user ABI.
 *
 * open("/dev/gmem", O_RDWR), then GMEM_CREATE makes a private memory
 * file: a new fd whose pages can back a KVM_MEM_GUEST_MEMFD memslot
 * (pass it in the guest_memfd field of KVM_SET_USER_MEMORY_REGION2 of a
 * VM whose private memory needs no preparation by the architecture, on
 * x86 KVM_X86_SW_PROTECTED_VM; other VM types fail with EOPNOTSUPP) but
 * can never be read or mapped by host userspace, nor written where a
 * guest may see it (GMEM_WRITE fills only pages no guest can see).
 *
 * A gmem file supports fallocate(2), fstat(2), the ioctls below and
 * close(2).  Host access fails: read, write, readv, writev with EINVAL;
 * pread, pwrite, preadv, pwritev with ESPIPE (the file is not seekable;
 * EINVAL for a negative offset); mmap with ENODEV; splice (to or from
 * the file, also with an offset) and tee with EINVAL; sendfile with
 * EINVAL, or ESPIPE when given an offset to read the gmem file at;
 * copy_file_range with EXDEV (EINVAL between two gmem files); io_uring
 * reads and writes with EINVAL; lseek with ESPIPE; ftruncate, fchmod and
 * fchown with EINVAL; open of /proc/<pid>/fd/<fd> with ENXIO.  Arguments
 * that a system call rejects before it reaches the file get that call's
 * own errno (mmap(2): EINVAL, EOVERFLOW, ENOMEM).
 *
 * fallocate(2) takes two modes: FALLOC_FL_KEEP_SIZE allocates the holes
 * of the range, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE frees the
 * pages of the range (pages of a 2 MiB block the range covers in part
 * are zeroed and held for the block instead, see GMEM_CREATE_BLOCKS);
 * every other mode fails with EOPNOTSUPP.  Offset
 * and length must be page aligned (EINVAL); an allocation must end at
 * or before the size (EINVAL), a punched range may end past it.  The VFS
 * adds EINVAL for a negative offset or a length <= 0, and EFBIG for an
 * offset + length beyond LLONG_MAX.  An allocation fails with ENOMEM
 * when memory or the creator's memory cgroup limit runs out, and with
 * EINTR when a signal arrives; either way it keeps what it allocated
 * until then (as KVM's guest_memfd does): a guest may already use it.
 * Punch the range to give it back.
 *
 * fstat(2) reports st_size = the size, st_blksize = the page size and
 * st_blocks = the allocated bytes / 512.  /proc/<pid>/fdinfo/<fd> shows
 * gmem-id (the inode number), gmem-size and gmem-allocated (bytes),
 * gmem-held (bytes of held pages), gmem-1g (bytes in whole 1 GiB ranges),
 * gmem-flags (the GMEM_CREATE flags, hex) and gmem-nodes (the bytes of
 * the file's pages, live and held, on each node that has memory:
 * "N0=<bytes> N1=<bytes>", see GMEM_SET_MEMPOLICY).
 * /sys/class/misc/gmem/files, .../allocated_bytes, .../held_bytes,
 * .../allocations_1g and .../node_bytes (as gmem-nodes) count for the
 * whole module.
 *
 * The memslots bound to a file are all one VM's: the first to bind it,
 * which the file keeps alive (fdinfo gmem-vm: kvm-<pid>) until it is
 * closed or released with GMEM_RELEASE_VM; memslots of other VMs fail
 * with EBUSY meanwhile.  Released, the file keeps all its pages,
 * attributes and policy, and the next VM to bind it (its fd passed with
 * SCM_RIGHTS, or kept across execve(2)) finds the memory as the old guest
 * left it: the live update of a VMM, without copying.  The pages stay
 * unreadable to the host throughout, and pages a guest was given stay
 * refused to GMEM_WRITE.
 *
 * With the module parameter takeover on, KVM's KVM_CREATE_GUEST_MEMFD
 * returns gmem files too (bound to their VM from creation and for life,
 * as KVM's guest_memfd: other VMs fail with EINVAL, GMEM_RELEASE_VM too;
 * otherwise as
 * GMEM_CREATE without flags makes them): every ioctl below works on them.
 * /sys/class/misc/gmem/takeover_files counts them.
 *
 * Every page of a file has attributes (GMEM_ATTR_*) that decide what a
 * private guest fault on it does: allocate a zeroed page (no attribute,
 * the default), exit to userspace when the page is a hole
 * (GMEM_ATTR_NOALLOC), exit to userspace always (GMEM_ATTR_USERFAULT,
 * for post-copy), or report a memory error (GMEM_ATTR_POISON).
 * GMEM_SET_ATTRIBUTES and GMEM_GET_ATTRIBUTES change and read them,
 * GMEM_WRITE fills pages that no guest can see.
 */
#ifndef _UAPI_GMEM_H
#define _UAPI_GMEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

/**
 * define GMEM_IOCTL_MAGIC - ioctl type byte of all gmem ioctls
 *
 * Any ioctl that gmem does not define for the fd it is issued on fails
 * with ENOTTY: also GMEM_CREATE on a gmem file, and GMEM_SET_ATTRIBUTES,
 * GMEM_GET_ATTRIBUTES, GMEM_WRITE, GMEM_SET_MEMPOLICY, GMEM_GET_MEMPOLICY
 * or GMEM_RELEASE_VM on /dev/gmem.
 */
#define GMEM_IOCTL_MAGIC	0xB9

/**
 * define GMEM_CREATE_CLOEXEC - close the new fd on execve(2)
 *
 * Without this flag the fd returned by GMEM_CREATE stays open across
 * execve(2), as with KVM_CREATE_GUEST_MEMFD.
 */
#define GMEM_CREATE_CLOEXEC	(1ULL << 0)

/**
 * define GMEM_CREATE_NOALLOC - every page of the new file starts NOALLOC
 *
 * The file is created with GMEM_ATTR_NOALLOC set on all its pages, as if
 * by GMEM_SET_ATTRIBUTES on the whole file: guest faults never allocate,
 * only fallocate(2) and GMEM_WRITE do.  GMEM_SET_ATTRIBUTES can clear it
 * later, page by page.
 */
#define GMEM_CREATE_NOALLOC	(1ULL << 1)

/**
 * define GMEM_CREATE_USERFAULT - every page of the new file starts USERFAULT
 *
 * The file is created with GMEM_ATTR_USERFAULT set on all its pages:
 * every guest fault exits to userspace until GMEM_SET_ATTRIBUTES clears
 * the bit (the post-copy start state, see GMEM_ATTR_USERFAULT).
 */
#define GMEM_CREATE_USERFAULT	(1ULL << 2)

/**
 * define GMEM_CREATE_BLOCKS - guest faults and GMEM_WRITE allocate 2 MiB
 *
 * A guest fault on a hole of the file allocates the whole naturally
 * aligned 2 MiB block around it, zeroed, and KVM maps it with one 2M
 * entry, when all of that block is holes, the fault may allocate every
 * page of it (no GMEM_ATTR_NOALLOC, GMEM_ATTR_USERFAULT or
 * GMEM_ATTR_POISON on any), and KVM would map the block's guest range
 * with one 2M entry (one memslot covers it, with guest frames and file
 * offsets aligned alike, all of it private).  GMEM_WRITE into a hole
 * whose block is all holes allocates the block too, the pages it does
 * not write being held (holes to the file, see fdinfo gmem-held), so
 * that a restore written page by page ends in whole blocks.  Otherwise
 * a single page is allocated, as without the flag.
 *
 * The cost: a guest that touches one page per 2 MiB gets 2 MiB of
 * memory for it (charged to the file's memory cgroup); a fault that
 * allocates a block zeroes 2 MiB.  fallocate(2) allocates blocks with or
 * without the flag.
 *
 * The module parameter blocks decides which files get this behaviour:
 * "always" (the default: every file, as if the flag was given), "flag"
 * (files created with it) or "never" (none; the flag is then ignored).
 * gmem-flags in fdinfo shows the flag when the file has the behaviour.
 */
#define GMEM_CREATE_BLOCKS	(1ULL << 3)

/**
 * define GMEM_CREATE_NO_DIRECT_MAP - keep the pages out of the direct map
 *
 * Every page the file holds (allocated, or held for a block) is absent
 * from the kernel's direct map from the moment it is allocated until it
 * goes back to the page allocator, so that no host kernel code can read
 * it through the direct map, not even speculatively; a read through the
 * direct map faults.  Pages are unmapped after they are allocated and
 * zeroed, and the TLB flushed (once per page, per block a guest fault or
 * GMEM_WRITE allocates, per 1 GiB range, per up to 32 blocks of an
 * fallocate), before anyone can see them; they are mapped again before
 * they are freed, with their contents.  A 2 MiB block is unmapped as one
 * range, so that the direct map keeps a 2 MiB entry for it (a 1 GiB
 * entry is split into 2 MiB ones, not 4 KiB ones); a single page splits
 * the 2 MiB entry around it.  Held pages of a punched block are zeroed
 * through a temporary mapping, so a punch leaves the block's entry
 * whole; giving held pages back (memory pressure), or freeing a page
 * with a memory error while the rest of its block stays, splits the
 * block's entry into 4 KiB ones.
 *
 * What changes: GMEM_WRITE writes through a temporary mapping of the
 * page, removed and flushed before the page is unlocked.
 * FALLOC_FL_PUNCH_HOLE of part of a 2 MiB block may fail with ENOMEM
 * when no temporary mapping (or, next to a memory error, no page table
 * for the split) can be had; only the block at the start of the range
 * may have been punched then.  See docs/security.md for what the host
 * kernel can no longer do with such pages.
 *
 * The module parameter no_direct_map, when set, gives every new file
 * this flag (files made by KVM_CREATE_GUEST_MEMFD too); gmem-flags in
 * fdinfo shows it.  Fails with EOPNOTSUPP on a kernel whose direct map
 * cannot be changed.
 */
#define GMEM_CREATE_NO_DIRECT_MAP	(1ULL << 4)

/**
 * define GMEM_CREATE_FLAGS - every flag GMEM_CREATE knows
 */
#define GMEM_CREATE_FLAGS	(GMEM_CREATE_CLOEXEC | GMEM_CREATE_NOALLOC | \
				 GMEM_CREATE_USERFAULT | GMEM_CREATE_BLOCKS | \
				 GMEM_CREATE_NO_DIRECT_MAP)

/**
 * struct gmem_create - argument of GMEM_CREATE
 * @size: size of the file in bytes: a non-zero multiple of the page
 *	size, at most the module parameter max_file_size (default 1 TiB;
 *	root can change it in /sys/module/gmem/parameters/, where 0 or an
 *	unaligned value fails with EINVAL).  The size is fixed for the life
 *	of the file.
 * @flags: GMEM_CREATE_* flags; unknown bits are rejected.
 * @reserved: must be zero.
 */
struct gmem_create {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};

/**
 * define GMEM_CREATE - create a private memory file
 *
 * Issued on an fd of /dev/gmem opened for writing, with a
 * &struct gmem_create.  Creating files needs nothing but access to
 * /dev/gmem: its file permissions decide who may.  The new file has its
 * own inode, is opened O_RDWR and holds no pages until fallocate(2) or
 * a guest fault allocates them.  Pages are zeroed when they are
 * allocated and charged to the memory cgroup of the task that created
 * the file; they are never swapped, migrated or put on an LRU list.
 *
 * /proc/<pid>/fdinfo/<fd> of the new file shows the flags it was created
 * with as gmem-flags (hex); GMEM_GET_ATTRIBUTES shows the attributes that
 * GMEM_CREATE_NOALLOC and GMEM_CREATE_USERFAULT set.
 *
 * Return: the new fd.  Errors: EFAULT (bad pointer), EINVAL (non-zero
 * reserved field, unknown flag, size 0, not page aligned or above
 * max_file_size), EBADF (/dev/gmem not opened for writing), EMFILE,
 * ENFILE, ENOMEM.
 */
#define GMEM_CREATE		_IOW(GMEM_IOCTL_MAGIC, 0x01, struct gmem_create)

/**
 * define GMEM_ATTR_NOALLOC - guest faults do not allocate the page
 *
 * A private guest fault on a hole of the file (a page that was never
 * allocated, or was punched) does not allocate it: KVM_RUN fails with
 * EFAULT and exit reason KVM_EXIT_MEMORY_FAULT (flags
 * KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa of the page, size one page).  The VMM
 * allocates the page with fallocate(2) or fills it with GMEM_WRITE and
 * runs the vCPU again.  Faults on pages that are allocated are not
 * affected.
 */
#define GMEM_ATTR_NOALLOC	(1ULL << 0)

/**
 * define GMEM_ATTR_USERFAULT - every guest fault exits to userspace
 *
 * Every private guest fault on the page, allocated or not, fails KVM_RUN
 * with EFAULT and exit reason KVM_EXIT_MEMORY_FAULT, as for
 * GMEM_ATTR_NOALLOC.  Setting the bit zaps the guest's mappings of the
 * page, so the next guest access faults.  GMEM_WRITE may always write a
 * page that has this bit set.  Post-copy: the VMM serves the exit with
 * GMEM_WRITE, clears the bit with GMEM_SET_ATTRIBUTES and runs the vCPU
 * again.
 */
#define GMEM_ATTR_USERFAULT	(1ULL << 1)

/**
 * define GMEM_ATTR_POISON - the page reports a memory error
 *
 * Every private guest fault on the page fails KVM_RUN with EHWPOISON and
 * exit reason KVM_EXIT_MEMORY_FAULT (the same fields as above).  Setting
 * the bit zaps the guest's mappings of the page; the page itself, if
 * allocated, is kept, and the guest sees its content again once the bit
 * is cleared.
 */
#define GMEM_ATTR_POISON	(1ULL << 2)

/**
 * define GMEM_ATTRS - every attribute gmem knows
 *
 * When several are set, a fault checks GMEM_ATTR_POISON first, then
 * GMEM_ATTR_USERFAULT, then GMEM_ATTR_NOALLOC.  KVM's exit does not say
 * which attribute fired: the VMM reads the attributes of the faulting
 * page with GMEM_GET_ATTRIBUTES at the file offset of the gpa.  An exit
 * may be stale (the attributes changed since the fault); running the
 * vCPU again is always safe.
 */
#define GMEM_ATTRS		(GMEM_ATTR_NOALLOC | GMEM_ATTR_USERFAULT | \
				 GMEM_ATTR_POISON)

/**
 * struct gmem_attributes - argument of GMEM_SET_ATTRIBUTES and GMEM_GET_ATTRIBUTES
 * @offset: byte offset in the file of the first page, page aligned.
 * @size: SET: length of the range in bytes, page aligned, non-zero, and
 *	@offset + @size at most the file size.  GET (output only): length
 *	in bytes of the run of pages from @offset that have the same
 *	attributes, up to the end of the file.
 * @attributes: SET: the values of the bits in @mask, a subset of @mask.
 *	GET (output only): the attributes of the page at @offset.
 * @mask: SET: the GMEM_ATTR_* bits to change, non-zero and known; bits
 *	outside @mask keep their value, page by page.  GET (output only):
 *	GMEM_ATTRS, the attributes this module knows.
 * @flags: must be zero.
 * @reserved: must be zero.
 */
struct gmem_attributes {
	__u64 offset;
	__u64 size;
	__u64 attributes;
	__u64 mask;
	__u64 flags;
	__u64 reserved[3];
};

/**
 * define GMEM_SET_ATTRIBUTES - change the attributes of a range of pages
 *
 * Issued on a gmem file with a &struct gmem_attributes.  For every page of
 * [@offset, @offset + @size): attributes = (attributes & ~@mask) |
 * @attributes.  Ranges are stored as runs, not page by page: setting an
 * attribute on a whole 1 TiB file costs a few hundred bytes, charged
 * like the file's pages to the memory cgroup of its creator.  Guest
 * mappings of the range are zapped before the call returns, so the next
 * guest access to any page of the range follows the new attributes.
 * Pages are neither allocated nor freed.
 *
 * Return: 0.  Errors: EFAULT (bad pointer), EBADF (file not open for
 * writing), EINVAL (non-zero @flags or reserved field, @mask zero or with
 * unknown bits, @attributes outside @mask, @offset or @size not page
 * aligned, @size zero, range past the end of the file), ENOMEM (out of
 * memory, or the memory cgroup limit reached), EINTR.  After ENOMEM or
 * EINTR, a part of the range may have its new attributes
 * already; the call can be repeated as it is.
 */
#define GMEM_SET_ATTRIBUTES	_IOW(GMEM_IOCTL_MAGIC, 0x10, struct gmem_attributes)

/**
 * define GMEM_GET_ATTRIBUTES - read the attributes of a run of pages
 *
 * Issued on a gmem file with a &struct gmem_attributes.  Reads @offset,
 * @flags and @reserved; fills @attributes with the attributes of the page
 * at @offset, @size with the length of the run of pages from @offset
 * that share them (a run is as long as possible: the page after it, if
 * any, has other attributes) and @mask with GMEM_ATTRS.  A VMM walks the
 * whole file with offset += size until offset reaches the file size.
 *
 * Return: 0.  Errors: EFAULT (bad pointer), EINVAL (non-zero @flags or
 * reserved field, @offset not page aligned or not below the file size).
 */
#define GMEM_GET_ATTRIBUTES	_IOWR(GMEM_IOCTL_MAGIC, 0x11, struct gmem_attributes)

/**
 * struct gmem_write - argument of GMEM_WRITE
 * @offset: byte offset in the file of the first page, page aligned.
 * @size: bytes to write, page aligned, non-zero, and @offset + @size at
 *	most the file size.
 * @user_addr: address of the @size bytes to copy, in the caller's
 *	address space; any alignment.
 * @flags: must be zero.
 * @written: output: bytes written, from @offset on, also when the call
 *	fails part way.
 * @reserved: must be zero.
 */
struct gmem_write {
	__u64 offset;
	__u64 size;
	__u64 user_addr;
	__u64 flags;
	__u64 written;
	__u64 reserved[3];
};

/**
 * define GMEM_WRITE - fill pages that no guest can see
 *
 * Issued on a gmem file with a &struct gmem_write.  Copies @size bytes
 * from @user_addr into the pages of [@offset, @offset + @size), page by
 * page in order, allocating holes (zeroed, then written; charged to the
 * file's memory cgroup like fallocate(2)) whatever the page's
 * attributes.  A page may be written if no guest was handed it since it
 * was allocated (fallocate(2) and GMEM_WRITE do not hand pages out; a
 * guest fault does, and punching the page makes it new), or if it has
 * GMEM_ATTR_USERFAULT set (no guest can map it then).  A guest fault
 * never sees a page half written: it sees the page before or after the
 * write.  GMEM_WRITE cannot read anything back.
 *
 * Return: 0 when all @size bytes are written.  Errors: EFAULT (bad
 * pointer to the struct, @user_addr not readable, or @written cannot be
 * stored), EBADF (file not open for writing), EINVAL (non-zero @flags or
 * reserved field, @offset or @size not page aligned, @size zero, range
 * past the end of the file), EPERM (a page of the range may be mapped by
 * a guest), EHWPOISON (a page has a memory error), ENOMEM (out of memory,
 * or the memory cgroup limit reached), EINTR (a signal arrived).  On any
 * error after the arguments were checked, @written says how far the call
 * got: the pages before hold the new data, the pages from there on are
 * untouched.  @written is stored last: when that fails (EFAULT), the
 * pages may have been written all the same.
 */
#define GMEM_WRITE		_IOWR(GMEM_IOCTL_MAGIC, 0x12, struct gmem_write)

/**
 * struct gmem_mempolicy - argument of GMEM_SET_MEMPOLICY and GMEM_GET_MEMPOLICY
 * @offset: byte offset in the file of the first page, page aligned.
 * @size: SET: length of the range in bytes, page aligned, non-zero, and
 *	@offset + @size at most the file size.  GET: must be zero.
 * @mode: SET: the policy, as mbind(2) takes it: one of MPOL_DEFAULT,
 *	MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL,
 *	MPOL_PREFERRED_MANY or MPOL_WEIGHTED_INTERLEAVE (<linux/mempolicy.h>),
 *	optionally ORed with MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES.
 *	GET (output only): the policy of the page at @offset, with the same
 *	mode flags as it was set with (MPOL_DEFAULT: none).
 * @flags: SET: 0 or MPOL_MF_STRICT.  GET: must be zero.
 * @nodemask: address of a node bitmap: an array of (@maxnode + 63) / 64
 *	__u64 words, node n in bit n % 64 of word n / 64 (on 64-bit
 *	systems, the unsigned long mask mbind(2) and get_mempolicy(2)
 *	take); may be 0 when @maxnode is 0.  SET: read; bits from @maxnode
 *	on are ignored.  GET: all its words are written.
 * @maxnode: the number of bits in @nodemask.  Unlike mbind(2), which
 *	reads one bit less, every bit counts.  At most 32768.  GET: at
 *	least nr_node_ids (the highest node id in
 *	/sys/devices/system/node/possible, plus one), or 0 not to read the
 *	nodes.
 * @reserved: must be zero.
 */
struct gmem_mempolicy {
	__u64 offset;
	__u64 size;
	__u32 mode;
	__u32 flags;
	__u64 nodemask;
	__u64 maxnode;
	__u64 reserved[3];
};

/**
 * define GMEM_SET_MEMPOLICY - place the pages of a range on NUMA nodes
 *
 * Issued on a gmem file with a &struct gmem_mempolicy.  Sets the memory
 * policy of every page of [@offset, @offset + @size), as mbind(2) does
 * for a mapping (a gmem file has none): every later allocation of a page
 * of the range (fallocate(2), a guest fault, GMEM_WRITE) follows it,
 * whichever thread allocates, on whichever node it runs, within that
 * thread's cpuset as for shmem (a thread whose cpuset allows none of the
 * policy's nodes allocates on its own ones, MPOL_BIND included).  The
 * policy stays with the range, also across punches.  A range that has
 * MPOL_DEFAULT (every range of a new file) follows the allocating
 * thread's own policy (set_mempolicy(2)) and cpuset; fallocate(2)'s
 * helper threads follow the calling thread's, and start from its node
 * (also for MPOL_LOCAL).  A 2 MiB block or a 1 GiB range is allocated on
 * one node, and only where one policy covers all of it (else in smaller
 * units); MPOL_INTERLEAVE and MPOL_WEIGHTED_INTERLEAVE go round the
 * nodes by allocation unit: by 2 MiB block wherever a block is
 * allocated (fallocate(2) always; guest faults and GMEM_WRITE on files
 * with blocks), by page for single pages, by 1 GiB range for 1 GiB
 * ranges.  MPOL_BIND fails an allocation (ENOMEM) rather than use
 * another node.  Pages never move: pages allocated before, and held
 * pages taken back (see GMEM_CREATE_BLOCKS), stay where they are;
 * MPOL_MF_MOVE and MPOL_MF_MOVE_ALL are refused.  Node ids are those of
 * /sys/devices/system/node; nodes without memory, or that the caller's
 * cpuset does not allow when the policy is set, are left out of
 * @nodemask, as mbind(2) does (the policy is not rebound when the
 * cpuset changes later).  Guest faults wait while the policy changes.
 *
 * Return: 0.  Errors: EFAULT (bad pointer), EBADF (not an open fd, or
 * one not open for writing; gmem hands out read-write fds only), EINVAL
 * (@offset or @size not page aligned, @size zero, range past the end of
 * the file, unknown @mode or mode flag, both
 * MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING,
 * @flags other than MPOL_MF_STRICT, non-zero reserved field, @maxnode
 * above 32768, a bit set for a node id the kernel cannot have
 * (MAX_NUMNODES or above), no node left in @nodemask that has memory and
 * is allowed for a mode that needs one: MPOL_BIND, MPOL_INTERLEAVE,
 * MPOL_WEIGHTED_INTERLEAVE, MPOL_PREFERRED_MANY, MPOL_PREFERRED given a
 * non-empty mask or a node flag (MPOL_F_RELATIVE_NODES maps any
 * non-empty mask onto those nodes), a node or a node flag given for
 * MPOL_LOCAL, a node for MPOL_DEFAULT, MPOL_BIND to nodes that have only
 * movable memory, where
 * gmem's unmovable pages cannot go), EIO (MPOL_MF_STRICT and a page of
 * the range, live or held, already on a node the new policy does not
 * name: MPOL_PREFERRED names its one node, MPOL_DEFAULT and MPOL_LOCAL
 * name none and check nothing; the policy is set all the same, as with
 * mbind(2)), ENOSPC (the ranges with a policy the file holds, counted
 * before the call, and the ones it adds (its own unless MPOL_DEFAULT,
 * and one if it splits a range in two) would be more than 1024: set
 * MPOL_DEFAULT over whole ranges first, which never fails so), EINTR
 * (a fatal signal while waiting for guest faults or allocations of the
 * file: seen only by a tracer, the caller is being killed), ENOMEM.
 */
#define GMEM_SET_MEMPOLICY	_IOW(GMEM_IOCTL_MAGIC, 0x13, struct gmem_mempolicy)

/**
 * define GMEM_GET_MEMPOLICY - read the memory policy of a page
 *
 * Issued on a gmem file with a &struct gmem_mempolicy.  Reads @offset,
 * @size, @flags, @nodemask, @maxnode and @reserved; fills @mode and, if
 * @maxnode is not 0, @nodemask with the policy of the page at @offset:
 * MPOL_DEFAULT and an empty mask when none was set, the nodes as they
 * were given (as far as the words of @maxnode reach) when
 * MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES was, else the nodes
 * the policy uses; MPOL_LOCAL has none.
 *
 * Return: 0.  Errors: EFAULT (bad pointer), EINVAL (@offset not page
 * aligned or not below the file size, non-zero @size, @flags or
 * reserved field, @maxnode non-zero and below nr_node_ids or above
 * 32768).
 */
#define GMEM_GET_MEMPOLICY	_IOWR(GMEM_IOCTL_MAGIC, 0x14, struct gmem_mempolicy)

/**
 * struct gmem_release_vm - argument of GMEM_RELEASE_VM
 * @vm_fd: an fd of the VM the file is bound to (KVM_CREATE_VM's)
 * @flags: 0
 */
struct gmem_release_vm {
	__s32 vm_fd;
	__u32 flags;
};

/**
 * define GMEM_RELEASE_VM - let another VM take the file over
 *
 * Issued on a gmem file with a &struct gmem_release_vm, once the VM of
 * @vm_fd has no memslot on the file any more (each deleted with
 * KVM_SET_USER_MEMORY_REGION2, memory_size 0, which zaps the guest's
 * mappings of it): the file lets the VM go (fdinfo drops gmem-vm; the VM
 * is freed once its own fds are closed), and the next VM to bind the
 * file gets it, with every page as the old guest left it.  Only a caller
 * holding both the file and the VM can do so: deleting memslots alone
 * keeps the file the VM's, and a process given only the file cannot take
 * it from the VM.  Given a VM's fd, does nothing on a file no VM has.
 *
 * Return: 0.  Errors: EFAULT (bad pointer), EBADF (@vm_fd is not an open
 * fd), EINVAL (non-zero @flags; @vm_fd is not a KVM VM, or not the file's
 * VM; the file was made by KVM_CREATE_GUEST_MEMFD, whose VM keeps it for
 * life), EBUSY (a memslot of the VM is still bound to the file).
 */
#define GMEM_RELEASE_VM		_IOW(GMEM_IOCTL_MAGIC, 0x15, struct gmem_release_vm)

#endif /* _UAPI_GMEM_H */
