/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Raw helpers for the attribute ioctls of gmem files, shared by
 * gmem_attrs_test.c and kvm_attrs_test.c.  Each returns what the ioctl
 * returned (-1 with errno set on failure); the tests wrap them in their
 * own asserting variants.
 */
#ifndef GMEM_ATTRS_UTIL_H
#define GMEM_ATTRS_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gmem.h>

/* GMEM_CREATE on a fresh /dev/gmem fd; the new fd or -1 with errno. */
static inline int __gmem_create_file(uint64_t size, uint64_t flags)
{
	struct gmem_create args = { .size = size, .flags = flags };
	int dev, fd, err;

	dev = open("/dev/gmem", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, GMEM_CREATE, &args);
	err = errno;
	close(dev);
	errno = err;
	return fd;
}

static inline int __gmem_set_attrs(int fd, uint64_t offset, uint64_t size,
				   uint64_t attributes, uint64_t mask)
{
	struct gmem_attributes args = {
		.offset = offset,
		.size = size,
		.attributes = attributes,
		.mask = mask,
	};

	return ioctl(fd, GMEM_SET_ATTRIBUTES, &args);
}

/* GMEM_GET_ATTRIBUTES at @offset; fills *@out. */
static inline int __gmem_get_attrs(int fd, uint64_t offset,
				   struct gmem_attributes *out)
{
	memset(out, 0, sizeof(*out));
	out->offset = offset;
	return ioctl(fd, GMEM_GET_ATTRIBUTES, out);
}

/* GMEM_WRITE; *@written (if not NULL) gets the bytes written. */
static inline int __gmem_write(int fd, uint64_t offset, uint64_t size,
			       const void *src, uint64_t *written)
{
	struct gmem_write args = {
		.offset = offset,
		.size = size,
		.user_addr = (uintptr_t)src,
		.written = 0xdeadbeef,
	};
	int r = ioctl(fd, GMEM_WRITE, &args);

	if (written)
		*written = args.written;
	return r;
}

/* The value of key @key in /proc/self/fdinfo/@fd, or -1 if absent. */
static inline long long gmem_attrs_fdinfo(int fd, const char *key)
{
	char path[64], line[256];
	size_t n = strlen(key);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtoll(line + n + 1, NULL, 0);
	fclose(f);
	return v;
}

#endif /* GMEM_ATTRS_UTIL_H */
