/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the machine holds, for tests that check that they gave everything
 * back: gmem's module-wide counters, the number of live KVM VMs, and
 * /proc/meminfo.
 */
#ifndef GMEM_LEAK_H
#define GMEM_LEAK_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GMEM_SYSFS_FILES	"/sys/class/misc/gmem/files"
#define GMEM_SYSFS_BYTES	"/sys/class/misc/gmem/allocated_bytes"

static inline unsigned long long gmem_read_ull(const char *path)
{
	char b[64] = "";
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		if (read(fd, b, sizeof(b) - 1) < 0)
			b[0] = 0;
		close(fd);
	}
	return strtoull(b, NULL, 0);
}

/* A /proc/meminfo value in bytes, 0 if absent. */
static inline unsigned long long gmem_meminfo(const char *key)
{
	char line[256];
	unsigned long long v = 0;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 10) << 10;
	if (f)
		fclose(f);
	return v;
}

/*
 * Live KVM VMs, counted twice: directories "<pid>-<fd>" in KVM's debugfs
 * (a VM whose name is taken by a live one gets none), and the vmalloc'ed
 * struct kvm of each VM in /proc/vmallocinfo (allocated from the
 * KVM_CREATE_VM ioctl).  -1 when the source is missing.
 */
static inline int gmem_count_vms_debugfs(void)
{
	DIR *d = opendir("/sys/kernel/debug/kvm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] >= '0' && e->d_name[0] <= '9';
	closedir(d);
	return n;
}

static inline int gmem_count_vms_vmalloc(void)
{
	FILE *f = fopen("/proc/vmallocinfo", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "[kvm]") &&
		     (strstr(line, " kvm_dev_ioctl+") || strstr(line, " kvm_create_vm+"));
	fclose(f);
	return n;
}

#endif /* GMEM_LEAK_H */
