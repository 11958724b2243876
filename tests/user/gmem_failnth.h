/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Fault injection with /proc/thread-self/fail-nth, for the sweep tests.
 *
 * Writing N to a thread's fail-nth makes the Nth allocation that the
 * failslab or fail_page_alloc filters let through fail, in that thread
 * only; reading it back gives what is left of N: 0 when the failure was
 * injected, non-zero when the thread made fewer than N such allocations.
 * A sweep runs an operation with N = 1, 2, 3, ... until it reads back
 * non-zero: then every allocation point on the operation's path (as
 * taken without a failure) has been made to fail once.
 *
 * By default both filters let only a few allocations through (failslab
 * and fail_page_alloc ignore allocations that may sleep, fail_page_alloc
 * also __GFP_HIGHMEM ones and order 0).  gmem_failnth_setup() opens the
 * filters, silences the report of each injected failure (a stack trace
 * on the console) and leaves the random injection off (probability 0);
 * gmem_failnth_restore() puts every setting back.
 *
 * Between gmem_failnth_arm() and gmem_failnth_left() the thread must do
 * nothing but the call under test: any allocation in between (a page
 * fault on untouched memory, a log line) takes an injection point.  The
 * fd of fail-nth stays open so that neither arming nor reading back
 * allocates.
 *
 * Include after kselftest_harness.h (or kvm_util.h): ARRAY_SIZE().
 */
#ifndef GMEM_FAILNTH_H
#define GMEM_FAILNTH_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmem_util.h"

#define FAILNTH_PROC		"/proc/thread-self/fail-nth"
#define FAILNTH_FAILSLAB	"/sys/kernel/debug/failslab"
#define FAILNTH_PAGE_ALLOC	"/sys/kernel/debug/fail_page_alloc"

/* Sweeps stop here even if the operation still has allocations left. */
#define FAILNTH_MAX		2000

static const struct {
	const char *path;
	const char *value;
} failnth_knobs[] = {
	{ FAILNTH_FAILSLAB "/probability", "0" },
	{ FAILNTH_FAILSLAB "/verbose", "0" },
	{ FAILNTH_FAILSLAB "/ignore-gfp-wait", "N" },
	{ FAILNTH_PAGE_ALLOC "/probability", "0" },
	{ FAILNTH_PAGE_ALLOC "/verbose", "0" },
	{ FAILNTH_PAGE_ALLOC "/ignore-gfp-wait", "N" },
	{ FAILNTH_PAGE_ALLOC "/ignore-gfp-highmem", "N" },
	{ FAILNTH_PAGE_ALLOC "/min-order", "0" },
};

#define FAILNTH_NR_KNOBS	ARRAY_SIZE(failnth_knobs)

struct gmem_failnth {
	int fd;				/* FAILNTH_PROC, read-write */
	int saved;			/* knobs saved so far */
	char old[FAILNTH_NR_KNOBS][32];	/* their values before setup */
};

/* Put back every setting gmem_failnth_setup() changed; close fail-nth. */
static inline void gmem_failnth_restore(struct gmem_failnth *f)
{
	if (f->fd >= 0) {
		if (pwrite(f->fd, "0", 1, 0) != 1)
			fprintf(stderr, "# resetting " FAILNTH_PROC ": %s\n",
				strerror(errno));
		close(f->fd);
		f->fd = -1;
	}
	while (f->saved > 0) {
		int i = --f->saved, r;

		r = __gmem_write_file(failnth_knobs[i].path, f->old[i]);
		if (r)
			fprintf(stderr, "# restoring \"%s\" to %s: %s\n", f->old[i],
				failnth_knobs[i].path, strerror(-r));
	}
}

/*
 * gmem_failnth_setup() - open fail-nth and the injection filters.
 * Returns 0; -ENOENT when the kernel has no fail-nth or debugfs lacks
 * failslab or fail_page_alloc (@why says which); another -errno when a
 * setting cannot be read or written (@why says which).  On error nothing
 * stays changed.
 */
static inline int gmem_failnth_setup(struct gmem_failnth *f, char *why, size_t len)
{
	unsigned int i;
	int r;

	f->fd = -1;
	f->saved = 0;
	if (access(FAILNTH_PROC, F_OK)) {
		snprintf(why, len, FAILNTH_PROC " is absent (CONFIG_FAULT_INJECTION)");
		return -ENOENT;
	}
	if (access(FAILNTH_FAILSLAB, F_OK) || access(FAILNTH_PAGE_ALLOC, F_OK)) {
		snprintf(why, len, FAILNTH_FAILSLAB " or " FAILNTH_PAGE_ALLOC
			 " is absent (CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_DEBUG_FS, debugfs mounted?)");
		return -ENOENT;
	}
	for (i = 0; i < FAILNTH_NR_KNOBS; i++) {
		r = __gmem_read_file(failnth_knobs[i].path, f->old[i],
				     sizeof(f->old[i]));
		f->old[i][strcspn(f->old[i], "\n")] = '\0';
		if (r) {
			snprintf(why, len, "read %s: %s", failnth_knobs[i].path,
				 strerror(-r));
			goto fail;
		}
		f->saved++;
		r = __gmem_write_file(failnth_knobs[i].path, failnth_knobs[i].value);
		if (r) {
			snprintf(why, len, "write %s to %s: %s", failnth_knobs[i].value,
				 failnth_knobs[i].path, strerror(-r));
			goto fail;
		}
	}
	f->fd = open(FAILNTH_PROC, O_RDWR | O_CLOEXEC);
	if (f->fd < 0) {
		r = -errno;
		snprintf(why, len, "open " FAILNTH_PROC ": %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	gmem_failnth_restore(f);
	return r;
}

/* Fail the @n-th allocation from now on in this thread.  0 or -errno. */
static inline int gmem_failnth_arm(struct gmem_failnth *f, unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	return pwrite(f->fd, buf, len, 0) == len ? 0 : -errno;
}

/*
 * gmem_failnth_left() - what is left of the armed count: 0 when the
 * failure was injected.  Resets fail-nth to 0 when it is not.  Returns
 * the count, or -errno when fail-nth cannot be read or reset.
 */
static inline long gmem_failnth_left(struct gmem_failnth *f)
{
	char buf[16];
	ssize_t n;
	long left;

	n = pread(f->fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	left = strtol(buf, NULL, 10);
	if (left && pwrite(f->fd, "0", 1, 0) != 1)
		return -errno;
	return left;
}

/*
 * gmem_failnth_reject() - inject no failure into allocations made under
 * the kernel function @func (its address range in /proc/kallsyms), or
 * under any function again when @func is NULL.  Allocations left out
 * do not count towards fail-nth.  Needs the stack trace filter
 * (CONFIG_FAULT_INJECTION_STACKTRACE_FILTER).  Returns 0, -ENOENT when
 * the kernel has no such filter or no such function, another -errno.
 */
static inline int gmem_failnth_reject(const char *func)
{
	static const char * const dirs[] = { FAILNTH_FAILSLAB, FAILNTH_PAGE_ALLOC };
	unsigned long long start = 0, end = 0, addr;
	char line[256], name[128], path[96], val[32];
	unsigned int i;
	FILE *f;
	char t;
	int r;

	if (func) {
		f = fopen("/proc/kallsyms", "r");
		if (!f)
			return -errno;
		/* The function; then the lowest symbol above it is its end. */
		for (i = 0; i < 2 && (i == 0 || start); i++) {
			rewind(f);
			while (fgets(line, sizeof(line), f)) {
				if (sscanf(line, "%llx %c %127s", &addr, &t, name) != 3)
					continue;
				if (i == 0 && !strcmp(name, func))
					start = addr;
				if (i == 1 && addr > start && (!end || addr < end))
					end = addr;
			}
		}
		fclose(f);
		if (!start || !end)
			return -ENOENT;
	}
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/reject-start", dirs[i]);
		if (access(path, F_OK))
			return -ENOENT;
		snprintf(val, sizeof(val), "%#llx", start);
		r = __gmem_write_file(path, val);
		snprintf(path, sizeof(path), "%s/reject-end", dirs[i]);
		snprintf(val, sizeof(val), "%#llx", end);
		if (!r)
			r = __gmem_write_file(path, val);
		if (r)
			return r;
	}
	return 0;
}

#endif /* GMEM_FAILNTH_H */
