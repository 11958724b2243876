/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * gmem: private memory for KVM guests -- the user ABI.
 *
 * open("/dev/gmem", O_RDWR), then GMEM_CREATE makes a private memory
 * file: a new fd whose pages can back a KVM_MEM_GUEST_MEMFD memslot
 * (pass it in the guest_memfd field of KVM_SET_USER_MEMORY_REGION2) but
 * can never be read, written or mapped by host userspace.
 *
 * A gmem file supports fallocate(2) (allocate, or
 * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), fstat(2), the ioctls
 * below and close(2).  read, write, readv, writev fail with EINVAL;
 * pread, pwrite, preadv, pwritev with ESPIPE (EINVAL for a negative
 * offset); mmap with ENODEV; splice, tee and sendfile with EINVAL
 * (sendfile with an offset: ESPIPE); copy_file_range with EXDEV (EINVAL
 * between two gmem files); io_uring reads and writes with EINVAL; lseek
 * with ESPIPE; ftruncate, fchmod and fchown with EINVAL; open of
 * /proc/<pid>/fd/<fd> with ENXIO.  Arguments that a system call rejects
 * before it reaches the file get that call's own errno (mmap(2): EINVAL,
 * EOVERFLOW, ENOMEM; fallocate(2): EFBIG when offset + len overflows).
 */
#ifndef _UAPI_GMEM_H
#define _UAPI_GMEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

/**
 * define GMEM_IOCTL_MAGIC - ioctl type byte of all gmem ioctls
 *
 * Any ioctl that gmem does not define fails with ENOTTY.
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
 * define GMEM_CREATE_FLAGS - every flag GMEM_CREATE knows
 */
#define GMEM_CREATE_FLAGS	(GMEM_CREATE_CLOEXEC)

/**
 * struct gmem_create - argument of GMEM_CREATE
 * @size: size of the file in bytes: a non-zero multiple of the page
 *	size, at most the module parameter max_file_size (default 1 TiB).
 *	The size is fixed for the life of the file.
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
 * Return: the new fd.  Errors: EFAULT (bad pointer), EINVAL (non-zero
 * reserved field, unknown flag, size 0, not page aligned or above
 * max_file_size), EBADF (/dev/gmem not opened for writing), EMFILE,
 * ENFILE, ENOMEM.
 */
#define GMEM_CREATE		_IOW(GMEM_IOCTL_MAGIC, 0x01, struct gmem_create)

#endif /* _UAPI_GMEM_H */
