/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The errnos gmem's ABI documents, operation by operation, in one table.
 *
 * Tests that judge "every failure is a documented errno" (the fuzzer,
 * gmem_fuzz_test.c, and the stress test, kvm_stress_test.c) look them up
 * here and nowhere else.  Each row says where its errnos are documented:
 * include/uapi/gmem.h (the ABI), README.md, or, for system calls that
 * reject an argument before gmem sees it, that call's own manual page.
 * A new ioctl is a new row (and an operation in the tests).
 *
 * EBADF (a closed fd, or one opened without the access the call needs)
 * is documented for every call on a file descriptor.
 */
#ifndef GMEM_ABI_H
#define GMEM_ABI_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

enum gmem_abi_op {
	GMEM_ABI_DEV_OPEN,	/* open("/dev/gmem") */
	GMEM_ABI_CREATE,	/* ioctl(GMEM_CREATE) on /dev/gmem */
	GMEM_ABI_IOCTL_UNKNOWN,	/* any other ioctl, or one of ours on the other kind of fd */
	GMEM_ABI_SET_ATTRS,	/* ioctl(GMEM_SET_ATTRIBUTES) on a gmem fd */
	GMEM_ABI_GET_ATTRS,	/* ioctl(GMEM_GET_ATTRIBUTES) on a gmem fd */
	GMEM_ABI_WRITE,		/* ioctl(GMEM_WRITE) on a gmem fd */
	GMEM_ABI_SET_MEMPOLICY,	/* ioctl(GMEM_SET_MEMPOLICY) on a gmem fd */
	GMEM_ABI_GET_MEMPOLICY,	/* ioctl(GMEM_GET_MEMPOLICY) on a gmem fd */
	GMEM_ABI_RELEASE_VM,	/* ioctl(GMEM_RELEASE_VM) on a gmem fd */
	GMEM_ABI_FALLOCATE,	/* fallocate(2) on a gmem fd */
	GMEM_ABI_READ,		/* read, write, readv, writev, preadv2/pwritev2 at -1 */
	GMEM_ABI_PREAD,		/* pread, pwrite, preadv, pwritev, preadv2/pwritev2 */
	GMEM_ABI_MMAP,		/* mmap(2) of a gmem fd */
	GMEM_ABI_SPLICE,	/* splice, sendfile, copy_file_range, from or to it */
	GMEM_ABI_LSEEK,		/* lseek(2) */
	GMEM_ABI_FTRUNCATE,	/* ftruncate, truncate, fchmod, fchown */
	GMEM_ABI_FSTAT,		/* fstat(2) */
	GMEM_ABI_REOPEN,	/* open("/proc/self/fd/N") of a gmem fd */
	GMEM_ABI_BIND,		/* KVM_SET_USER_MEMORY_REGION2 naming a gmem fd */
	GMEM_ABI_PARAM,		/* write of /sys/module/gmem/parameters/max_file_size */
	GMEM_ABI_PARAM_BLOCKS,	/* write of /sys/module/gmem/parameters/blocks */
	GMEM_ABI_PARAM_TAKEOVER,	/* write of /sys/module/gmem/parameters/takeover */
	GMEM_ABI_PARAM_NO_DIRECT_MAP,	/* write of .../parameters/no_direct_map */
	GMEM_ABI_GUEST_MEMFD,	/* KVM_CREATE_GUEST_MEMFD on a VM: a gmem file with takeover */
	GMEM_ABI_NR
};

#define GMEM_ABI_MAX_ERRNOS	10

struct gmem_abi_row {
	const char *name;
	const char *doc;		/* where these errnos are documented */
	int errnos[GMEM_ABI_MAX_ERRNOS];	/* 0-terminated */
};

static const struct gmem_abi_row gmem_abi[GMEM_ABI_NR] = {
	[GMEM_ABI_DEV_OPEN] = { "open /dev/gmem", "open(2)",
		{ EACCES, ENOENT, ENXIO, EMFILE, ENFILE, ENOMEM } },
	[GMEM_ABI_CREATE] = { "GMEM_CREATE", "gmem.h: GMEM_CREATE",
		{ EFAULT, EINVAL, EBADF, EMFILE, ENFILE, ENOMEM } },
	[GMEM_ABI_IOCTL_UNKNOWN] = { "unknown ioctl", "gmem.h: GMEM_IOCTL_MAGIC",
		{ ENOTTY, EBADF } },
	[GMEM_ABI_SET_ATTRS] = { "GMEM_SET_ATTRIBUTES", "gmem.h: GMEM_SET_ATTRIBUTES",
		{ EFAULT, EBADF, EINVAL, ENOMEM, EINTR } },
	[GMEM_ABI_GET_ATTRS] = { "GMEM_GET_ATTRIBUTES", "gmem.h: GMEM_GET_ATTRIBUTES",
		{ EFAULT, EINVAL, EBADF } },
	[GMEM_ABI_WRITE] = { "GMEM_WRITE", "gmem.h: GMEM_WRITE",
		{ EFAULT, EBADF, EINVAL, EPERM, EHWPOISON, ENOMEM, EINTR } },
	[GMEM_ABI_SET_MEMPOLICY] = { "GMEM_SET_MEMPOLICY", "gmem.h: GMEM_SET_MEMPOLICY",
		{ EFAULT, EBADF, EINVAL, EIO, ENOSPC, EINTR, ENOMEM } },
	[GMEM_ABI_GET_MEMPOLICY] = { "GMEM_GET_MEMPOLICY", "gmem.h: GMEM_GET_MEMPOLICY",
		{ EFAULT, EINVAL, EBADF } },
	[GMEM_ABI_RELEASE_VM] = { "GMEM_RELEASE_VM", "gmem.h: GMEM_RELEASE_VM",
		{ EFAULT, EBADF, EINVAL, EBUSY } },
	[GMEM_ABI_FALLOCATE] = { "fallocate",
		"gmem.h; README.md: the file's rules; fallocate(2): ENODEV on /dev/gmem",
		{ EOPNOTSUPP, EINVAL, EFBIG, ENOMEM, EINTR, EBADF, ENODEV } },
	[GMEM_ABI_READ] = { "read/write", "gmem.h", { EINVAL, EBADF } },
	[GMEM_ABI_PREAD] = { "pread/pwrite", "gmem.h", { ESPIPE, EINVAL, EBADF } },
	[GMEM_ABI_MMAP] = { "mmap", "gmem.h; mmap(2) for its own argument checks",
		{ ENODEV, EINVAL, EOVERFLOW, ENOMEM, EOPNOTSUPP, EBADF } },
	[GMEM_ABI_SPLICE] = { "splice/sendfile/copy_file_range", "gmem.h",
		{ EINVAL, ESPIPE, EXDEV, EBADF } },
	[GMEM_ABI_LSEEK] = { "lseek", "gmem.h", { ESPIPE, EBADF } },
	[GMEM_ABI_FTRUNCATE] = { "ftruncate", "gmem.h; truncate(2): ENOENT for a path to a closed fd",
		{ EINVAL, EBADF, ENOENT } },
	[GMEM_ABI_FSTAT] = { "fstat", "fstat(2)", { EBADF, EFAULT } },
	[GMEM_ABI_REOPEN] = { "reopen via /proc", "gmem.h", { ENXIO } },
	[GMEM_ABI_BIND] = { "KVM_SET_USER_MEMORY_REGION2",
		"README.md: the file's rules; KVM's api.rst (EIO: VM ioctls from a process other than the VM's creator); docs/abi.md: Binding to KVM (EBUSY: another VM has the file)",
		{ EINVAL, EEXIST, EBADF, EFAULT, ENOMEM, ENODEV, EIO, EOPNOTSUPP, EBUSY } },
	[GMEM_ABI_PARAM] = { "max_file_size", "README.md", { EINVAL } },
	[GMEM_ABI_PARAM_BLOCKS] = { "blocks", "docs/abi.md: Module parameters", { EINVAL } },
	[GMEM_ABI_PARAM_TAKEOVER] = { "takeover", "docs/abi.md: Module parameters", { EINVAL } },
	[GMEM_ABI_PARAM_NO_DIRECT_MAP] = { "no_direct_map", "docs/abi.md: Module parameters",
		{ EINVAL } },
	[GMEM_ABI_GUEST_MEMFD] = { "KVM_CREATE_GUEST_MEMFD",
		"docs/abi.md: Takeover; KVM's api.rst (EIO: VM ioctls from a process other than the VM's creator)",
		{ EINVAL, EFAULT, EIO, ENOMEM, EMFILE, ENFILE } },
};

/* Is @err among the errnos documented for @op? */
static inline bool gmem_abi_documented(enum gmem_abi_op op, int err)
{
	const int *e;

	for (e = gmem_abi[op].errnos; *e; e++)
		if (*e == err)
			return true;
	return false;
}

/* Errnos that say "no resources right now", never "bad input". */
static inline bool gmem_abi_resource_errno(int err)
{
	return err == ENOMEM || err == EMFILE || err == ENFILE || err == EINTR;
}

#endif /* GMEM_ABI_H */
