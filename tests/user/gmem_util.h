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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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

/*
 * NUMA nodes, as gmem reports them: fdinfo gmem-nodes and
 * /sys/class/misc/gmem/node_bytes list "N<node>=<bytes>" for every node
 * that has memory.  Nodes 0-63 only: enough for any test machine.
 */
#define GMEM_MAX_NODES	64

struct gmem_nodes {
	unsigned long long listed;	/* bit n: node n was listed */
	unsigned long long bytes[GMEM_MAX_NODES];
};

/*
 * __gmem_parse_nodes() - parse "N0=<bytes> N1=<bytes>..." (up to the end
 * of the line) into @n.  Returns 0, or -EINVAL on anything else (a node
 * listed twice, a node above 63, no number).
 */
static inline int __gmem_parse_nodes(const char *s, struct gmem_nodes *n)
{
	unsigned long node;
	char *end;

	memset(n, 0, sizeof(*n));
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '\n')
			return 0;
		if (*s++ != 'N')
			return -EINVAL;
		errno = 0;
		node = strtoul(s, &end, 10);
		if (errno || end == s || *end != '=' || node >= GMEM_MAX_NODES ||
		    (n->listed & (1ULL << node)))
			return -EINVAL;
		s = end + 1;
		n->bytes[node] = strtoull(s, &end, 10);
		if (errno || end == s)
			return -EINVAL;
		n->listed |= 1ULL << node;
		s = end;
	}
}

/*
 * __gmem_fdinfo_nodes() - the gmem-nodes line of /proc/self/fdinfo/@fd.
 * Returns 0, -ENOENT when there is none, -EINVAL when it does not parse.
 */
static inline int __gmem_fdinfo_nodes(int fd, struct gmem_nodes *n)
{
	static const char key[] = "gmem-nodes:";
	char path[64], buf[8192], *line;
	int r;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	r = __gmem_read_file(path, buf, sizeof(buf));
	if (r)
		return r;
	for (line = buf; line; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (!strncmp(line, key, sizeof(key) - 1))
			return __gmem_parse_nodes(line + sizeof(key) - 1, n);
	}
	return -ENOENT;
}

/* __gmem_sysfs_nodes() - /sys/class/misc/gmem/node_bytes; as above. */
static inline int __gmem_sysfs_nodes(struct gmem_nodes *n)
{
	char buf[4096];
	int r;

	r = __gmem_read_file(GMEM_SYSFS "/node_bytes", buf, sizeof(buf));
	return r ? r : __gmem_parse_nodes(buf, n);
}

/*
 * gmem_nodes_with_memory() - the nodes that have memory, as a bit mask
 * (/sys/devices/system/node/has_memory, a list such as "0-1,3"); node 0
 * alone on a kernel without NUMA.  Returns 0 when the list cannot be
 * read or parsed.
 */
static inline unsigned long long gmem_nodes_with_memory(void)
{
	unsigned long long mask = 0;
	unsigned long a, b;
	char buf[256], *s, *end;

	if (__gmem_read_file("/sys/devices/system/node/has_memory", buf, sizeof(buf)))
		return access("/sys/devices/system/node", F_OK) ? 1 : 0;
	for (s = buf; *s && *s != '\n'; s = end + (*end == ',')) {
		a = strtoul(s, &end, 10);
		if (end == s)
			return 0;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s)
				return 0;
		}
		for (; a <= b && a < GMEM_MAX_NODES; a++)
			mask |= 1ULL << a;
	}
	return mask;
}

/*
 * __gmem_node_meminfo() - the value of "Node <node> <key>:" in
 * /sys/devices/system/node/node<node>/meminfo, in bytes (the file says
 * kB).  Returns 0 or -errno.
 */
static inline int __gmem_node_meminfo(int node, const char *key,
				      unsigned long long *bytes)
{
	char path[64], k[64];
	int r;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	snprintf(k, sizeof(k), "Node %d %s", node, key);
	r = __gmem_read_key(path, k, 0, bytes);
	if (!r)
		*bytes <<= 10;
	return r;
}

/*
 * gmem's trace events (system "gmem"), recorded into a tracefs instance
 * of the test's own: a ring buffer with its own event switches, so that
 * the global buffer and its users (the suites' guard on kvm:kvm_exit)
 * are left alone, and removing the instance restores everything.
 */
struct gmem_trace {
	char root[64];		/* the tracefs mount */
	char dir[192];		/* the instance */
};

/* One event read back: the fields its line had, see GMEM_TF_*. */
struct gmem_trace_event {
	char name[32];		/* "gmem_alloc", ... */
	unsigned int has;
	unsigned long long id;
	long long index, order, nid, start, end, ret, error;
	unsigned long long gfn;
};

#define GMEM_TF_ID	(1U << 0)
#define GMEM_TF_INDEX	(1U << 1)
#define GMEM_TF_ORDER	(1U << 2)
#define GMEM_TF_NID	(1U << 3)
#define GMEM_TF_START	(1U << 4)
#define GMEM_TF_END	(1U << 5)
#define GMEM_TF_RET	(1U << 6)
#define GMEM_TF_ERROR	(1U << 7)
#define GMEM_TF_GFN	(1U << 8)

/*
 * __gmem_trace_setup() - make the instance @name (removing a leftover of
 * that name first), with a ring buffer of @kb KiB per CPU and no event
 * enabled.  Returns 0; -ENODEV when tracefs is absent (neither
 * /sys/kernel/tracing nor /sys/kernel/debug/tracing has instances),
 * -ENOENT when it has no gmem events, or another -errno.
 */
static inline int __gmem_trace_setup(struct gmem_trace *t, const char *name,
				     unsigned int kb)
{
	static const char * const roots[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	char path[256], num[16];
	unsigned int i;
	int r;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < ARRAY_SIZE(roots); i++) {
		snprintf(path, sizeof(path), "%s/instances", roots[i]);
		if (!access(path, F_OK)) {
			snprintf(t->root, sizeof(t->root), "%s", roots[i]);
			break;
		}
	}
	if (!t->root[0])
		return -ENODEV;
	snprintf(path, sizeof(path), "%s/events/gmem", t->root);
	if (access(path, F_OK))
		return -ENOENT;
	snprintf(t->dir, sizeof(t->dir), "%s/instances/%s", t->root, name);
	if (!access(t->dir, F_OK) && rmdir(t->dir))
		return -errno;
	if (mkdir(t->dir, 0700))
		return -errno;
	snprintf(path, sizeof(path), "%s/buffer_size_kb", t->dir);
	snprintf(num, sizeof(num), "%u", kb);
	r = __gmem_write_file(path, num);
	if (r) {
		rmdir(t->dir);
		t->dir[0] = '\0';
	}
	return r;
}

/*
 * __gmem_trace_enable() - switch the gmem event @event ("gmem_alloc"; NULL
 * for all of them) on or off in the instance.  Returns 0 or -errno
 * (-ENOENT: no such event).
 */
static inline int __gmem_trace_enable(struct gmem_trace *t, const char *event, int on)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/events/gmem%s%s/enable", t->dir,
		 event ? "/" : "", event ? event : "");
	return __gmem_write_file(path, on ? "1" : "0");
}

/* __gmem_trace_clear() - empty the instance's buffer.  0 or -errno. */
static inline int __gmem_trace_clear(struct gmem_trace *t)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/trace", t->dir);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* gmem_trace_teardown() - switch every event off and remove the instance. */
static inline void gmem_trace_teardown(struct gmem_trace *t)
{
	if (!t->dir[0])
		return;
	__gmem_trace_enable(t, NULL, 0);
	rmdir(t->dir);
	t->dir[0] = '\0';
}

/* Parse the fields after "gmem_xxx: " of one line of the trace. */
static inline void __gmem_trace_fields(const char *s, struct gmem_trace_event *e)
{
	static const struct {
		const char *key;
		unsigned int bit;
		size_t off;
	} keys[] = {
		{ "id", GMEM_TF_ID, offsetof(struct gmem_trace_event, id) },
		{ "index", GMEM_TF_INDEX, offsetof(struct gmem_trace_event, index) },
		{ "order", GMEM_TF_ORDER, offsetof(struct gmem_trace_event, order) },
		{ "nid", GMEM_TF_NID, offsetof(struct gmem_trace_event, nid) },
		{ "start", GMEM_TF_START, offsetof(struct gmem_trace_event, start) },
		{ "end", GMEM_TF_END, offsetof(struct gmem_trace_event, end) },
		{ "ret", GMEM_TF_RET, offsetof(struct gmem_trace_event, ret) },
		{ "error", GMEM_TF_ERROR, offsetof(struct gmem_trace_event, error) },
		{ "gfn", GMEM_TF_GFN, offsetof(struct gmem_trace_event, gfn) },
	};
	const char *eq;
	unsigned int i;
	size_t klen;
	char *end;

	while (*s && *s != '\n') {
		while (*s == ' ')
			s++;
		eq = strchr(s, '=');
		if (!eq)
			return;
		klen = eq - s;
		for (i = 0; i < ARRAY_SIZE(keys); i++) {
			if (strlen(keys[i].key) != klen || strncmp(s, keys[i].key, klen))
				continue;
			if (keys[i].bit == GMEM_TF_ID)
				e->id = strtoull(eq + 1, &end, 10);
			else if (keys[i].bit == GMEM_TF_GFN)
				e->gfn = strtoull(eq + 1, &end, 0);
			else
				*(long long *)((char *)e + keys[i].off) =
					strtoll(eq + 1, &end, 10);
			if (end != eq + 1 && (*end == ' ' || *end == '\n' || !*end))
				e->has |= keys[i].bit;
			break;
		}
		s = strpbrk(eq, "\n ");
		if (!s)
			return;
	}
}

/*
 * __gmem_trace_read() - the gmem events in the instance's buffer, oldest
 * first, into a malloc()ed array *@evs (free() it).  Returns how many, or
 * -errno: -EOVERFLOW when the buffer lost events (its header says fewer
 * entries are in it than were written).
 */
static inline int __gmem_trace_read(struct gmem_trace *t, struct gmem_trace_event **evs)
{
	size_t size = 0, cap = 1 << 16;
	unsigned long in = 0, written = 0;
	struct gmem_trace_event *e = NULL;
	char path[256], *buf, *line, *next, *p;
	int fd, n = 0, r = 0;
	ssize_t got;

	*evs = NULL;
	snprintf(path, sizeof(path), "%s/trace", t->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	while (buf) {
		if (cap - size < 4096) {
			cap *= 2;
			p = realloc(buf, cap);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		got = read(fd, buf + size, cap - size - 1);
		if (got <= 0) {
			r = got < 0 ? -errno : 0;
			break;
		}
		size += got;
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	buf[size] = '\0';
	for (line = buf; !r && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		p = strstr(line, "entries-in-buffer/entries-written:");
		if (line[0] == '#' && p) {
			if (sscanf(p, "entries-in-buffer/entries-written: %lu/%lu",
				   &in, &written) == 2 && in != written)
				r = -EOVERFLOW;
			continue;
		}
		p = strstr(line, ": gmem_");
		if (line[0] == '#' || !p)
			continue;
		if (!(n & 255)) {
			struct gmem_trace_event *ne = realloc(e, (n + 256) * sizeof(*e));

			if (!ne) {
				r = -ENOMEM;
				break;
			}
			e = ne;
		}
		memset(&e[n], 0, sizeof(e[n]));
		p += 2;
		snprintf(e[n].name, sizeof(e[n].name), "%.*s",
			 (int)strcspn(p, ":"), p);
		p += strcspn(p, ":");
		if (*p)
			__gmem_trace_fields(p + 1, &e[n]);
		n++;
	}
	free(buf);
	if (r) {
		free(e);
		return r;
	}
	*evs = e;
	return n;
}

#endif /* GMEM_UTIL_H */
