// SPDX-License-Identifier: GPL-2.0-only
/*
 * The permission model of gmem (docs/security.md): /dev/gmem's file
 * mode decides who may create files; a gmem fd is a capability that
 * works for whoever holds it, without showing them the contents; the
 * module parameter is root's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "kselftest_harness.h"
#include "gmem_util.h"

#define NOBODY		65534
#define PARAMS		"/sys/module/gmem/parameters/"

static const char *const params[] = {
	"max_file_size", "blocks", "populate_threads", "max_1g", "takeover",
	"no_direct_map",
};

/* Run @fn as uid/gid NOBODY in a child; returns its exit status. */
static int as_nobody(int (*fn)(void *), void *arg)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(100);
		_exit(fn(arg));
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

FIXTURE(sec) {
	int dev;
};

FIXTURE_SETUP(sec)
{
	self->dev = -1;
	if (getuid())
		SKIP(return, "needs root, to drop to another uid");
	self->dev = gmem_open_dev(_metadata);
}

FIXTURE_TEARDOWN(sec)
{
	if (self->dev >= 0)
		close(self->dev);
}

/* The device node as the kernel makes it: root's, mode 0600. */
/* The gid of group kvm in /etc/group, or -1. */
static int kvm_gid(void)
{
	char line[256];
	int gid = -1;
	FILE *f = fopen("/etc/group", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "kvm:", 4) && sscanf(line, "kvm:%*[^:]:%d:", &gid) == 1)
			break;
	fclose(f);
	return gid;
}

TEST_F(sec, dev_node_root_only)
{
	unsigned int want;
	struct stat st;

	ASSERT_EQ(0, stat(GMEM_DEV, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0U, st.st_uid);
	/* The kernel's 0600 root:root, or udev/60-gmem.rules' 0660 root:kvm. */
	want = st.st_gid == 0 ? 0600U : 0660U;
	EXPECT_EQ(want, st.st_mode & 07777) TH_LOG("mode %#o", st.st_mode & 07777);
	EXPECT_TRUE(st.st_gid == 0 || (int)st.st_gid == kvm_gid())
		TH_LOG("group %u is neither root nor kvm (%d)", st.st_gid, kvm_gid());
}

static int open_dev_rw(void *arg)
{
	int fd = open(GMEM_DEV, O_RDWR);

	if (fd >= 0)
		return 1;
	return errno == EACCES ? 0 : 2;
}

/* Without access to /dev/gmem, no files: open fails with EACCES. */
TEST_F(sec, others_cannot_open)
{
	int r = as_nobody(open_dev_rw, NULL);

	EXPECT_EQ(0, r) TH_LOG("open as uid %d: %s", NOBODY,
			       r == 1 ? "succeeded" : "failed, but not with EACCES");
}

/* Opened for reading only, /dev/gmem creates nothing: EBADF. */
TEST_F(sec, read_only_dev_creates_nothing)
{
	struct gmem_create c = { .size = 4096 };
	int ro = open(GMEM_DEV, O_RDONLY | O_CLOEXEC);

	ASSERT_LE(0, ro);
	errno = 0;
	EXPECT_EQ(-1, ioctl(ro, GMEM_CREATE, &c));
	EXPECT_EQ(EBADF, errno) TH_LOG("GMEM_CREATE on O_RDONLY: %s", strerror(errno));
	close(ro);
}

static int use_passed_fd(void *arg)
{
	int fd = *(int *)arg;
	char buf[64];

	/* What the fd allows, it allows to anyone who holds it... */
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096))
		return 1;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 4096))
		return 2;
	/* ...and what it does not, to nobody. */
	if (read(fd, buf, sizeof(buf)) >= 0 || errno != EINVAL)
		return 3;
	if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED || errno != ENODEV)
		return 4;
	return 0;
}

/* A gmem fd is a capability: an inherited one works for another uid. */
TEST_F(sec, fd_is_the_capability)
{
	struct gmem_create c = { .size = 1 << 20 };
	int fd = ioctl(self->dev, GMEM_CREATE, &c), r;

	ASSERT_LE(0, fd);
	r = as_nobody(use_passed_fd, &fd);
	EXPECT_EQ(0, r) TH_LOG("step %d failed as uid %d", r, NOBODY);
	close(fd);
}

static int write_param(void *arg)
{
	int fd = open(arg, O_WRONLY);

	if (fd >= 0)
		return 1;
	return errno == EACCES ? 0 : 2;
}

/* Every module parameter is root's to change. */
TEST_F(sec, param_root_only)
{
	char path[128];
	struct stat st;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(params); i++) {
		snprintf(path, sizeof(path), PARAMS "%s", params[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s: %s", path, strerror(errno));
		EXPECT_EQ(0644U, st.st_mode & 07777)
			TH_LOG("%s: mode %#o", path, st.st_mode & 07777);
		EXPECT_EQ(0, as_nobody(write_param, path)) TH_LOG("%s", path);
	}
}

TEST_HARNESS_MAIN
