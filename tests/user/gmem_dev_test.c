// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of /dev/gmem itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = -1;
	self->fd = gmem_open_dev(_metadata);
}

FIXTURE_TEARDOWN(dev)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(dev, unknown_ioctl_enotty)
{
	unsigned int cmds[] = {
		_IO('X', 1),				/* someone else's type */
		_IO(GMEM_IOCTL_MAGIC, 0xff),		/* ours, unused number */
		_IOWR(GMEM_IOCTL_MAGIC, 0x7f, __u64),
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		errno = 0;
		EXPECT_EQ(-1, ioctl(self->fd, cmds[i], 0))
			TH_LOG("ioctl 0x%x succeeded on /dev/gmem", cmds[i]);
		EXPECT_EQ(ENOTTY, errno)
			TH_LOG("ioctl 0x%x: errno %d, expected ENOTTY", cmds[i], errno);
	}
}

TEST_HARNESS_MAIN
