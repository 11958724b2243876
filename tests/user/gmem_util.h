/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by gmem's selftests.  Include after kselftest_harness.h.
 */
#ifndef GMEM_UTIL_H
#define GMEM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <gmem.h>

#define GMEM_DEV "/dev/gmem"

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

#endif /* GMEM_UTIL_H */
