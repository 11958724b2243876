/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the selftests that run guests on gmem memory.
 * Include after kvm_util.h and kselftest_harness.h.
 */
#ifndef GMEM_KVM_UTIL_H
#define GMEM_KVM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gmem.h>

/* Guests under TCG are slow: allow minutes, not the harness's 30 s. */
#define KVM_TEST_TIMEOUT	300

static const struct vm_shape protected_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

/* Skip unless /dev/gmem and software-protected VMs are there. */
#define REQUIRE_GMEM_KVM() do {						\
	if (access("/dev/gmem", F_OK))					\
		SKIP(return, "/dev/gmem is absent (is gmem loaded?)");	\
	if (access("/dev/kvm", F_OK))					\
		SKIP(return, "/dev/kvm is absent");			\
	if (!(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM))) \
		SKIP(return, "KVM_X86_SW_PROTECTED_VM is not supported"); \
} while (0)

/* A new gmem file of @size bytes with GMEM_CREATE @flags; asserts success. */
static inline int gmem_file(uint64_t size, uint64_t flags)
{
	struct gmem_create args = { .size = size, .flags = flags };
	int dev, fd;

	dev = open("/dev/gmem", O_RDWR | O_CLOEXEC);
	TEST_ASSERT(dev >= 0, "open /dev/gmem: %s", strerror(errno));
	fd = ioctl(dev, GMEM_CREATE, &args);
	TEST_ASSERT(fd >= 0, "GMEM_CREATE(size %#lx, flags %#lx): %s", size, flags,
		    strerror(errno));
	close(dev);
	return fd;
}

/*
 * GMEM_TEST_BACKEND=guest_memfd: tests that do not depend on gmem's own
 * features take their private memory from KVM's own guest_memfd
 * (KVM_CREATE_GUEST_MEMFD) instead of gmem, so that a failure can be
 * compared with KVM's own backend on the spot.  Their gmem-only checks
 * (fdinfo, module counters) are skipped then.
 */
static inline bool on_guest_memfd(void)
{
	const char *b = getenv("GMEM_TEST_BACKEND");

	return b && !strcmp(b, "guest_memfd");
}

/* A private memory file of @size bytes for @vm, from the chosen backend. */
static inline int private_file(struct kvm_vm *vm, uint64_t size)
{
	return on_guest_memfd() ? vm_create_guest_memfd(vm, size, 0) :
				  gmem_file(size, 0);
}

/* The value of key @key in /proc/self/fdinfo/@fd, or -1 if absent. */
static inline long long fdinfo_value(int fd, const char *key)
{
	char path[64], line[256];
	size_t n = strlen(key);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtoll(line + n + 1, NULL, 0);
	fclose(f);
	return v;
}

/* Does /proc/self/fdinfo/@fd have a line containing @text? */
static inline bool fdinfo_has(int fd, const char *text)
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		found |= !!strstr(line, text);
	fclose(f);
	return found;
}

/*
 * Run @vcpu to its guest's next GUEST_SYNC(@stage), or to GUEST_DONE()
 * when @stage is 0; a guest assertion fails the test.
 */
static inline void run_to_sync(struct kvm_vcpu *vcpu, uint64_t stage)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
		TEST_ASSERT_EQ(uc.args[1], stage);
		break;
	case UCALL_DONE:
		TEST_ASSERT_EQ(stage, 0);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
}

/* Write @val to the file @path (a module parameter); asserts success. */
static inline void gmem_write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(write(fd, val, strlen(val)) == (ssize_t)strlen(val),
		    "write %s to %s: %s", val, path, strerror(errno));
	close(fd);
}

#define GMEM_BLOCKS_PARAM	"/sys/module/gmem/parameters/blocks"

/*
 * The module parameter blocks: which new files allocate 2 MiB blocks on
 * guest faults.  Read into @buf (size @len, without the newline).
 */
static inline void gmem_blocks_param_get(char *buf, size_t len)
{
	int fd = open(GMEM_BLOCKS_PARAM, O_RDONLY);
	ssize_t n;

	TEST_ASSERT(fd >= 0, "open " GMEM_BLOCKS_PARAM ": %s", strerror(errno));
	n = read(fd, buf, len - 1);
	TEST_ASSERT(n > 0, "read " GMEM_BLOCKS_PARAM ": %s", strerror(errno));
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	close(fd);
}

static inline void gmem_blocks_param_set(const char *val)
{
	gmem_write_str(GMEM_BLOCKS_PARAM, val);
}

#define GMEM_TAKEOVER_PARAM	"/sys/module/gmem/parameters/takeover"

/*
 * The module parameter takeover (a bool, read as "Y" or "N"): 1 on, 0
 * off, -1 when gmem has no such parameter.
 */
static inline int gmem_takeover_param_get(void)
{
	char b[4] = "";
	int fd = open(GMEM_TAKEOVER_PARAM, O_RDONLY);

	if (fd < 0 && errno == ENOENT)
		return -1;
	TEST_ASSERT(fd >= 0 && read(fd, b, sizeof(b) - 1) > 0,
		    "read " GMEM_TAKEOVER_PARAM ": %s", strerror(errno));
	close(fd);
	return b[0] == 'Y';
}

static inline void gmem_takeover_param_set(bool on)
{
	gmem_write_str(GMEM_TAKEOVER_PARAM, on ? "1" : "0");
}

#endif /* GMEM_KVM_UTIL_H */
