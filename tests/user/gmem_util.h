/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by gmem's selftests.  Include after kselftest_harness.h.
 *
 * Raw/asserting pairs: __name() returns what the kernel said (for negative
 * tests), name() asserts success and takes the test's _metadata.
 */
#ifndef GMEM_UTIL_H
#define GMEM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gmem.h>

#define GMEM_DEV "/dev/gmem"
#define GMEM_SYSFS "/sys/class/misc/gmem"
#define GMEM_PARAM_MAX_FILE_SIZE "/sys/module/gmem/parameters/max_file_size"

/*
 * gmem_open_dev() - open /dev/gmem, skipping the test when it is absent.
 * Returns the fd; does not return when it skips.
 */
#define gmem_open_dev(_metadata) ({					\
	int __fd = open(GMEM_DEV, O_RDWR | O_CLOEXEC);			\
	if (__fd < 0 && errno == ENOENT)				\
		SKIP(return, GMEM_DEV " is absent (is gmem loaded?)");	\
	ASSERT_LE(0, __fd) TH_LOG("open " GMEM_DEV ": %s", strerror(errno)); \
	__fd;								\
})

/* GMEM_CREATE on @devfd: the new fd, or -1 with errno set. */
static inline int __gmem_create(int devfd, __u64 size, __u64 flags)
{
	struct gmem_create args = { .size = size, .flags = flags };

	return ioctl(devfd, GMEM_CREATE, &args);
}

/* gmem_create() - GMEM_CREATE that must succeed.  Returns the new fd. */
#define gmem_create(_metadata, devfd, size, flags) ({			\
	__u64 __size = (size), __flags = (flags);			\
	int __fd = __gmem_create((devfd), __size, __flags);		\
	ASSERT_LE(0, __fd)						\
		TH_LOG("GMEM_CREATE size %#llx flags %#llx: %s",	\
		       (unsigned long long)__size,			\
		       (unsigned long long)__flags, strerror(errno));	\
	__fd;								\
})

/*
 * __gmem_read_file() - read the text of @path (NUL terminated) into @buf.
 * Returns 0, or -errno.
 */
static inline int __gmem_read_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

/*
 * __gmem_write_file() - write @str to @path in one write(2), as
 * `echo -n str > path` does.  Returns 0, or -errno of the open or write.
 */
static inline int __gmem_write_file(const char *path, const char *str)
{
	size_t len = strlen(str);
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, str, len);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != len)
		r = -EIO;
	close(fd);
	return r;
}

/* gmem_write_file() - __gmem_write_file() that must succeed. */
#define gmem_write_file(_metadata, path, str) ({			\
	const char *__p = (path), *__s = (str);				\
	int __r = __gmem_write_file(__p, __s);				\
	ASSERT_EQ(0, __r)						\
		TH_LOG("write \"%s\" to %s: %s", __s, __p, strerror(-__r)); \
})

/*
 * __gmem_read_u64() - the number at the start of the file @path, in any
 * base strtoull() accepts.  Returns 0, or -errno (-EINVAL: no number).
 */
static inline int __gmem_read_u64(const char *path, unsigned long long *val)
{
	char buf[128], *end;
	int r;

	r = __gmem_read_file(path, buf, sizeof(buf));
	if (r)
		return r;
	errno = 0;
	*val = strtoull(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

/* gmem_read_u64() - the number in a sysfs (or other) file; must work. */
#define gmem_read_u64(_metadata, path) ({				\
	const char *__p = (path);					\
	unsigned long long __v = 0;					\
	int __r = __gmem_read_u64(__p, &__v);				\
	ASSERT_EQ(0, __r) TH_LOG("read a number from %s: %s", __p,	\
				 strerror(-__r));			\
	__v;								\
})

/*
 * gmem_read_u64_settled() - gmem_read_u64() of @path once it stops
 * moving, for at most a second: memory.current, say, still counts the
 * xarray and maple tree nodes that an RCU grace period will free.
 */
#define gmem_read_u64_settled(_metadata, path) ({			\
	const char *__sp = (path);					\
	unsigned long long __v = gmem_read_u64(_metadata, __sp), __p;	\
	int __i;							\
	for (__i = 0; __i < 50; __i++) {				\
		usleep(20000);						\
		__p = __v;						\
		__v = gmem_read_u64(_metadata, __sp);			\
		if (__v == __p)						\
			break;						\
	}								\
	__v;								\
})

/*
 * __gmem_read_key() - the number after "@key:" on a line of the text file
 * @path (fdinfo, meminfo, memory.stat style).  The number is decimal
 * unless it starts with 0x or @hex is set.  Returns 0, -ENOENT when no
 * line has @key, or another -errno.
 */
static inline int __gmem_read_key(const char *path, const char *key, int hex,
				  unsigned long long *val)
{
	size_t klen = strlen(key);
	char buf[8192], *line, *next, *end;
	int r;

	r = __gmem_read_file(path, buf, sizeof(buf));
	if (r)
		return r;
	for (line = buf; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			next++;
		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		line += klen + 1;
		errno = 0;
		*val = strtoull(line, &end, hex ? 16 : 0);
		if (errno || end == line)
			return -EINVAL;
		return 0;
	}
	return -ENOENT;
}

/*
 * __gmem_fdinfo() - the value of @key ("gmem-allocated", ...) in
 * /proc/self/fdinfo/@fd.  Returns 0 or -errno (-ENOENT: no such key).
 */
static inline int __gmem_fdinfo(int fd, const char *key,
				unsigned long long *val)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return __gmem_read_key(path, key, !strcmp(key, "gmem-flags"), val);
}

/* gmem_fdinfo() - __gmem_fdinfo() that must succeed; returns the value. */
#define gmem_fdinfo(_metadata, fd, key) ({				\
	int __gfd = (fd);						\
	const char *__k = (key);					\
	unsigned long long __v = 0;					\
	int __r = __gmem_fdinfo(__gfd, __k, &__v);			\
	ASSERT_EQ(0, __r) TH_LOG("fdinfo of fd %d has no number for %s: %s", \
				 __gfd, __k, strerror(-__r));		\
	__v;								\
})

#endif /* GMEM_UTIL_H */
