// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of gmemctl (tools/gmemctl.c), the operator's tool: status,
 * ps (rows and totals against the module's counters, with several
 * processes holding files, shared ones among them, and a KVM VM), load
 * (dependencies first) and unload (naming what holds gmem), and the
 * test VM's kmod.
 *
 * gmemctl runs as a program, the way an operator runs it: $GMEMCTL, or
 * gmemctl on PATH.  The files it reports are held by helper processes
 * this test forks.  Tests that unload gmem or kvm reload them in a
 * teardown that runs in the harness's parent process, whatever the test
 * did.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gmem_util.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)

#define MODULE_DIR	"/sys/module/gmem"
#define KMOD_MODPROBE	"/bin/modprobe"	/* by path: sh would run its own */
#define KALLSYMS_SAYS_PATCHED	"kvm_gmem_register_provider in /proc/kallsyms"
#define MODULES_SAY_PATCHED \
	"installed module kvm exports kvm_gmem_register_provider (modules.symbols)"
#define NOT_OPEN_TO_NOBODY \
	"gmemctl: gmem is not usable: /dev/gmem is not open to uid 65534 for writing"
#define MEMSLOT_REFERENCE \
	"gmemctl: cannot unload gmem: 1 module reference held by no open gmem fd, " \
	"e.g. by a KVM memslot bound to a gmem file, even a closed one, " \
	"or by an O_PATH fd of a closed gmem file; "

/* ---- running gmemctl ---------------------------------------------------- */

struct run {
	int status;		/* exit status; 128 + signal if killed */
	char out[16384];	/* stdout */
	char err[4096];		/* stderr */
};

static const char *gmemctl(void)
{
	return getenv("GMEMCTL") ?: "gmemctl";
}

static void slurp(const char *path, char *buf, size_t size)
{
	if (__gmem_read_file(path, buf, size))
		buf[0] = '\0';
	unlink(path);
}

/*
 * run_cmd() - run the shell command @cmd with stdout and stderr captured.
 * Returns its exit status (also in @r->status).
 */
static int run_cmd(struct run *r, const char *cmd)
{
	char out[64], err[64], *full;
	int st;

	snprintf(out, sizeof(out), "/tmp/gmemctl_test.%d.out", getpid());
	snprintf(err, sizeof(err), "/tmp/gmemctl_test.%d.err", getpid());
	if (asprintf(&full, "%s >%s 2>%s", cmd, out, err) < 0)
		return r->status = -1;
	st = system(full);
	free(full);
	r->status = st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) :
		    128 + WTERMSIG(st);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
	return r->status;
}

/* run_gmemctl() - run `gmemctl @args`; see run_cmd(). */
static int run_gmemctl(struct run *r, const char *args)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "%s %s", gmemctl(), args);
	return run_cmd(r, cmd);
}

/* Lines in @s: an error is one line, ending in a newline. */
static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* show() - print @text under @title, each line a TAP comment. */
static void show(const char *title, const char *text)
{
	const char *nl;

	fprintf(stderr, "# %s\n", title);
	for (; *text; text = nl + 1) {
		nl = strchrnul(text, '\n');
		fprintf(stderr, "#   %.*s\n", (int)(nl - text), text);
		if (!*nl)
			break;
	}
}

/* ---- helper processes that hold gmem files ------------------------------ */

struct holder_file {
	unsigned long long size;
	unsigned long long allocate;	/* bytes fallocated from offset 0 */
};

#define MAX_HOLDER_FILES 4

/* What a helper process does before it waits to be killed. */
struct holder_spec {
	const char *name;		/* its comm */
	struct holder_file files[MAX_HOLDER_FILES];
	int nfiles;
	bool dup_first;			/* a second fd on its first file */
	bool keep_dev;			/* keep /dev/gmem open */
	bool vm;			/* bind its first file to a KVM VM */
	bool close_files;		/* then close its files, keep the VM */
	bool takeover;			/* its one file from KVM_CREATE_GUEST_MEMFD */
};

#define HOLDER_SKIP	1000	/* no KVM for the VM; status otherwise errno */

/*
 * holder_new_vm() - a new KVM_X86_SW_PROTECTED_VM in *@vm.  Returns 0,
 * HOLDER_SKIP (no KVM, or no such VM type) or an errno.
 */
static int holder_new_vm(int *vm)
{
	int kvm, types;

	kvm = open("/dev/kvm", O_RDWR);
	if (kvm < 0)
		return HOLDER_SKIP;
	types = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (types < 0 || !(types & (1 << KVM_X86_SW_PROTECTED_VM)))
		return HOLDER_SKIP;
	*vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	return *vm < 0 ? errno : 0;
}

/*
 * holder_vm() - a KVM_X86_SW_PROTECTED_VM with one memslot whose private
 * memory is the gmem file @gfd.  Returns 0, HOLDER_SKIP or an errno.
 */
static int holder_vm(int gfd, unsigned long long size)
{
	struct kvm_userspace_memory_region2 region = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD,
		.memory_size = size,
		.guest_memfd = gfd,
	};
	int vm, r;
	void *mem;

	r = holder_new_vm(&vm);
	if (r)
		return r;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return errno;
	region.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region))
		return errno;
	return 0;
}

/*
 * holder_takeover() - a KVM_X86_SW_PROTECTED_VM whose private memory file
 * comes from KVM_CREATE_GUEST_MEMFD, as an unmodified VMM makes it (a
 * gmem file with takeover on), @allocate bytes of it allocated.  Returns
 * 0, HOLDER_SKIP or an errno.
 */
static int holder_takeover(const struct holder_file *f)
{
	struct kvm_create_guest_memfd args = { .size = f->size };
	int vm, fd, r;

	r = holder_new_vm(&vm);
	if (r)
		return r;
	fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
	if (fd < 0)
		return errno;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, f->allocate))
		return errno;
	return 0;
}

/* The body of a helper process.  Returns 0, HOLDER_SKIP or an errno. */
static int holder_setup(const struct holder_spec *spec)
{
	int dev, fd, first = -1, fds[MAX_HOLDER_FILES], i, r;

	prctl(PR_SET_NAME, spec->name);
	if (spec->takeover)
		return holder_takeover(&spec->files[0]);
	dev = open(GMEM_DEV, O_RDWR);
	if (dev < 0)
		return errno;
	for (i = 0; i < spec->nfiles; i++) {
		fd = __gmem_create(dev, spec->files[i].size, 0);
		if (fd < 0)
			return errno;
		if (spec->files[i].allocate &&
		    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, spec->files[i].allocate))
			return errno;
		if (first < 0)
			first = fd;
		fds[i] = fd;
	}
	if (spec->dup_first && dup(first) < 0)
		return errno;
	if (spec->vm) {
		r = holder_vm(first, spec->files[0].size);
		if (r)
			return r;
	}
	if (spec->close_files)
		for (i = 0; i < spec->nfiles; i++)
			close(fds[i]);
	if (!spec->keep_dev)
		close(dev);
	return 0;
}

/*
 * holder_start() - fork a process that does @spec and then waits to be
 * killed (or for its parent to die).  Returns its pid; 0 when it could
 * not set up a KVM VM (skip); -errno when it failed.
 */
static pid_t holder_start(const struct holder_spec *spec)
{
	int p[2], r = EIO;
	pid_t pid;

	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		r = holder_setup(spec);
		if (write(p[1], &r, sizeof(r)) != sizeof(r))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &r, sizeof(r)) != sizeof(r))
		r = EIO;
	close(p[0]);
	if (!r)
		return pid;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return r == HOLDER_SKIP ? 0 : -r;
}

/* holder_stop() - kill a helper process and reap it. */
static void holder_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

#define start_holder(_metadata, spec) ({				\
	const struct holder_spec *__s = (spec);				\
	pid_t __pid = holder_start(__s);				\
	if (!__pid)							\
		SKIP(return, "%s: no KVM_X86_SW_PROTECTED_VM here", __s->name); \
	ASSERT_LT(0, __pid) TH_LOG("helper %s failed: %s", __s->name,	\
				   strerror(-__pid));			\
	__pid;								\
})

/* ---- reading gmemctl ps ------------------------------------------------- */

struct ps_row {
	int pid;
	char comm[32];
	int files, shared;
	unsigned long long size, allocated;
	char vm[64];
};

/* The row of @pid in the plain output @out.  Returns 0 or -ENOENT. */
static int ps_row(const char *out, int pid, struct ps_row *row)
{
	const char *line;

	for (line = out; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (sscanf(line, "%d %31s %d %d %llu %llu %63s", &row->pid,
			   row->comm, &row->files, &row->shared, &row->size,
			   &row->allocated, row->vm) == 7 && row->pid == pid)
			return 0;
	}
	return -ENOENT;
}

/* The numbers of the line of @out that starts with @label (after blanks). */
static int ps_label(const char *out, const char *label, int n,
		    unsigned long long *a, unsigned long long *b,
		    unsigned long long *c)
{
	char fmt[64];
	const char *line;

	snprintf(fmt, sizeof(fmt), " %s %%llu %%llu %%llu", label);
	for (line = out; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (sscanf(line, fmt, a, b, c) == n)
			return 0;
	return -ENOENT;
}

/* The number after "key": in the JSON text @s, from @s on. */
static int json_u64(const char *s, const char *key, unsigned long long *v)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	s = strstr(s, pat);
	if (!s)
		return -ENOENT;
	return sscanf(s + strlen(pat), "%llu", v) == 1 ? 0 : -EINVAL;
}

#define expect_row(_metadata, out, pid, name, nfiles, nshared, bytes, alloc, vmname) do { \
	struct ps_row __r;						\
	ASSERT_EQ(0, ps_row((out), (pid), &__r))			\
		TH_LOG("no row for pid %d in:\n%s", (pid), (out));	\
	EXPECT_STREQ((name), __r.comm);					\
	EXPECT_EQ((nfiles), __r.files) TH_LOG("FILES of pid %d", (pid));	\
	EXPECT_EQ((nshared), __r.shared) TH_LOG("SHARED of pid %d", (pid)); \
	EXPECT_EQ((bytes), __r.size) TH_LOG("SIZE of pid %d", (pid));	\
	EXPECT_EQ((alloc), __r.allocated) TH_LOG("ALLOCATED of pid %d", (pid)); \
	EXPECT_STREQ((vmname), __r.vm);					\
} while (0)

/* ---- status and the command line ---------------------------------------- */

TEST(status_says_usable)
{
	char version[64], want[128];
	struct run r;

	if (access(MODULE_DIR, F_OK))
		SKIP(return, "gmem is not loaded");
	ASSERT_EQ(0, __gmem_read_file(MODULE_DIR "/version", version,
				      sizeof(version)));
	version[strcspn(version, "\n")] = '\0';

	ASSERT_EQ(0, run_gmemctl(&r, "status"))
		TH_LOG("gmemctl status: %s%s", r.out, r.err);
	EXPECT_STREQ("", r.err);
	snprintf(want, sizeof(want), "gmem %s, loaded (live)", version);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("no '%s' in:\n%s", want, r.out);
	EXPECT_NE(NULL, strstr(r.out, "kvm patch    yes: " KALLSYMS_SAYS_PATCHED))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "parameter    max_file_size=")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "/dev/gmem    crw")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "\ngmem is usable\n")) TH_LOG("%s", r.out);
}

/* An unprivileged user cannot open /dev/gmem (0600 root): not usable. */
TEST(status_fails_for_a_user_who_cannot_open_dev_gmem)
{
	struct stat st;
	struct run r;
	pid_t pid;
	int st_child;

	if (access(MODULE_DIR, F_OK))
		SKIP(return, "gmem is not loaded");
	ASSERT_EQ(0, stat(GMEM_DEV, &st));
	if (st.st_mode & 0006)
		SKIP(return, GMEM_DEV " is open to everybody here");
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(10);
		run_gmemctl(&r, "status");
		if (r.status != 1 || count_lines(r.err) != 1 ||
		    !strstr(r.err, NOT_OPEN_TO_NOBODY)) {
			fprintf(stderr, "# status %d, stderr: %s", r.status, r.err);
			_exit(11);
		}
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &st_child, 0));
	ASSERT_TRUE(WIFEXITED(st_child));
	EXPECT_EQ(0, WEXITSTATUS(st_child));
}

TEST(command_line_errors_exit_2_with_one_line)
{
	static const char * const bad[] = { "", "frobnicate", "--json status",
					     "ps status", "--bogus ps",
					     "-x ps" };
	struct run r;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		EXPECT_EQ(2, run_gmemctl(&r, bad[i])) TH_LOG("gmemctl %s", bad[i]);
		EXPECT_EQ(1, count_lines(r.err))
			TH_LOG("gmemctl %s: stderr: %s", bad[i], r.err);
		EXPECT_EQ(0, strncmp(r.err, "gmemctl: ", 9)) TH_LOG("%s", r.err);
	}
	EXPECT_EQ(0, run_gmemctl(&r, "--help"));
	EXPECT_NE(NULL, strstr(r.out, "SYNOPSIS"));
	EXPECT_NE(NULL, strstr(r.out, "gmemctl status"));
	EXPECT_NE(NULL, strstr(r.out, "gmemctl ps [-h] [--json]"));
	EXPECT_NE(NULL, strstr(r.out, "gmemctl load"));
	EXPECT_NE(NULL, strstr(r.out, "gmemctl unload"));
	EXPECT_NE(NULL, strstr(r.out, "EXIT STATUS"));
}

/* ---- ps ----------------------------------------------------------------- */

/*
 * Four processes: A holds two files (one through two fds), B one; C and D
 * share a file (inherited across fork) and D has one more.  Each row
 * counts the files its process holds; the total counts each file once
 * and matches the module's counters.
 */
TEST(ps_totals_match_module_counters)
{
	const struct holder_spec a = {
		.name = "holder-a", .nfiles = 2, .dup_first = true,
		.files = { { 1 * MiB, 64 * KiB }, { 2 * MiB, 0 } },
	}, b = {
		.name = "holder-b", .nfiles = 1,
		.files = { { 4 * MiB, 12 * KiB } },
	}, c = {
		.name = "holder-c",
	}, d = {
		.name = "holder-d", .nfiles = 1,
		.files = { { 512 * KiB, 4 * KiB } },
	};
	unsigned long long files0, alloc0, files, alloc, size, mfiles, malloc_;
	const char *d_json = "\"command\": \"holder-d\", \"files\": 2, \"shared\": 1, ";
	unsigned long long v;
	struct ps_row row;
	pid_t pa, pb, pc, pd;
	int dev, shared;
	struct run r;
	char *p, pat[32];

	dev = gmem_open_dev(_metadata);
	files0 = gmem_read_u64(_metadata, GMEM_SYSFS "/files");
	alloc0 = gmem_read_u64(_metadata, GMEM_SYSFS "/allocated_bytes");
	ASSERT_EQ(0ULL, files0) TH_LOG("gmem files are open before the test");

	pa = start_holder(_metadata, &a);
	pb = start_holder(_metadata, &b);
	/* The shared file: C and D inherit it, this process lets go. */
	shared = gmem_create(_metadata, dev, 256 * KiB, 0);
	ASSERT_EQ(0, fallocate(shared, FALLOC_FL_KEEP_SIZE, 0, 8 * KiB));
	close(dev);
	pc = start_holder(_metadata, &c);
	pd = start_holder(_metadata, &d);
	close(shared);

	files = files0 + 5;
	alloc = alloc0 + (64 + 12 + 8 + 4) * KiB;
	size = (1 + 2 + 4) * MiB + (256 + 512) * KiB;
	ASSERT_EQ(files, gmem_read_u64(_metadata, GMEM_SYSFS "/files"));
	ASSERT_EQ(alloc, gmem_read_u64(_metadata, GMEM_SYSFS "/allocated_bytes"));

	ASSERT_EQ(0, run_gmemctl(&r, "ps")) TH_LOG("%s", r.err);
	show("gmemctl ps:", r.out);
	expect_row(_metadata, r.out, pa, "holder-a", 2, 0, 3 * MiB, 64 * KiB, "-");
	expect_row(_metadata, r.out, pb, "holder-b", 1, 0, 4 * MiB, 12 * KiB, "-");
	expect_row(_metadata, r.out, pc, "holder-c", 1, 1, 256 * KiB, 8 * KiB, "-");
	expect_row(_metadata, r.out, pd, "holder-d", 2, 1, 768 * KiB, 12 * KiB, "-");
	EXPECT_EQ(-ENOENT, ps_row(r.out, getpid(), &row))
		TH_LOG("a row for the test itself, which holds no file");
	ASSERT_EQ(0, ps_label(r.out, "total", 3, &v, &mfiles, &malloc_))
		TH_LOG("no total line in:\n%s", r.out);
	EXPECT_EQ(files, v);
	EXPECT_EQ(size, mfiles);
	EXPECT_EQ(alloc, malloc_);
	ASSERT_EQ(0, ps_label(r.out, "gmem module", 2, &mfiles, &malloc_, &v))
		TH_LOG("no module line in:\n%s", r.out);
	EXPECT_EQ(files, mfiles);
	EXPECT_EQ(alloc, malloc_);
	EXPECT_EQ(NULL, strstr(r.out, "note:")) TH_LOG("%s", r.out);

	/* The same in JSON. */
	ASSERT_EQ(0, run_gmemctl(&r, "ps --json")) TH_LOG("%s", r.err);
	p = strstr(r.out, "\"totals\": ");
	ASSERT_NE(NULL, p) TH_LOG("%s", r.out);
	EXPECT_EQ(0, json_u64(p, "files", &v));
	EXPECT_EQ(files, v);
	EXPECT_EQ(0, json_u64(p, "size", &v));
	EXPECT_EQ(size, v);
	EXPECT_EQ(0, json_u64(p, "allocated", &v));
	EXPECT_EQ(alloc, v);
	p = strstr(r.out, "\"module\": ");
	ASSERT_NE(NULL, p) TH_LOG("%s", r.out);
	EXPECT_EQ(0, json_u64(p, "files", &v));
	EXPECT_EQ(files, v);
	snprintf(pat, sizeof(pat), "{\"pid\": %d, ", pd);
	p = strstr(r.out, pat);
	ASSERT_NE(NULL, p) TH_LOG("no %s in:\n%s", pat, r.out);
	EXPECT_EQ(p + strlen(pat), strstr(p, d_json)) TH_LOG("%.120s", p);
	EXPECT_EQ(0, json_u64(p, "allocated", &v));
	EXPECT_EQ(12 * KiB, v);

	/* -h: human sizes. */
	ASSERT_EQ(0, run_gmemctl(&r, "-h ps")) TH_LOG("%s", r.err);
	snprintf(pat, sizeof(pat), "%d", pb);
	p = strstr(r.out, pat);
	ASSERT_NE(NULL, p) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(p, "4.0M")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(p, "12K")) TH_LOG("%s", r.out);

	holder_stop(pa);
	holder_stop(pb);
	holder_stop(pc);
	holder_stop(pd);
	ASSERT_EQ(0, run_gmemctl(&r, "ps --json"));
	p = strstr(r.out, "\"totals\": ");
	ASSERT_NE(NULL, p);
	EXPECT_EQ(0, json_u64(p, "files", &v));
	EXPECT_EQ(files0, v) TH_LOG("%s", r.out);
}

/* A file bound to a KVM VM: its row names the VM as KVM does. */
TEST(ps_names_the_vm_a_file_is_bound_to)
{
	const struct holder_spec vmm = {
		.name = "holder-vmm", .nfiles = 1, .vm = true,
		.files = { { 2 * MiB, 16 * KiB } },
	};
	char vm[32];
	struct run r;
	pid_t pid;

	if (access(GMEM_DEV, F_OK))
		SKIP(return, "gmem is not loaded");
	pid = start_holder(_metadata, &vmm);
	ASSERT_EQ(0, run_gmemctl(&r, "ps")) TH_LOG("%s", r.err);
	show("gmemctl ps:", r.out);
	snprintf(vm, sizeof(vm), "kvm-%d", pid);
	expect_row(_metadata, r.out, pid, "holder-vmm", 1, 0, 2 * MiB, 16 * KiB, vm);
	holder_stop(pid);
}

#define TAKEOVER_PARAM	"/sys/module/gmem/parameters/takeover"

/*
 * A VMM that never heard of gmem, with takeover on: the file it got from
 * KVM_CREATE_GUEST_MEMFD is a gmem file in ps, bound to its VM from
 * creation.
 */
TEST(ps_shows_a_file_from_kvm_create_guest_memfd)
{
	const struct holder_spec vmm = {
		.name = "holder-plain", .nfiles = 1, .takeover = true,
		.files = { { 4 * MiB, 2 * MiB } },
	};
	char vm[32], was[8] = "";
	struct run r;
	pid_t pid;

	if (access(GMEM_DEV, F_OK) || access(TAKEOVER_PARAM, F_OK))
		SKIP(return, "gmem is not loaded, or has no takeover");
	ASSERT_EQ(0, __gmem_read_file(TAKEOVER_PARAM, was, sizeof(was)));
	gmem_write_file(_metadata, TAKEOVER_PARAM, "1");
	pid = holder_start(&vmm);
	gmem_write_file(_metadata, TAKEOVER_PARAM, was[0] == 'Y' ? "1" : "0");
	if (!pid)
		SKIP(return, "no KVM_X86_SW_PROTECTED_VM here");
	ASSERT_LT(0, pid) TH_LOG("helper failed: %s", strerror(-pid));
	ASSERT_EQ(0, run_gmemctl(&r, "ps")) TH_LOG("%s", r.err);
	show("gmemctl ps:", r.out);
	snprintf(vm, sizeof(vm), "kvm-%d", pid);
	expect_row(_metadata, r.out, pid, "holder-plain", 1, 0, 4 * MiB, 2 * MiB, vm);
	holder_stop(pid);
}

/*
 * A file in flight (sent with SCM_RIGHTS, not yet received) is in no
 * process's fds: the total misses it, and a note says where it may be.
 */
TEST(ps_notes_a_file_no_process_holds)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = "f", .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	unsigned long long files, v, w;
	const char *note;
	struct cmsghdr *cmsg;
	int dev, fd, sv[2];
	struct run r;

	dev = gmem_open_dev(_metadata);
	files = gmem_read_u64(_metadata, GMEM_SYSFS "/files");
	fd = gmem_create(_metadata, dev, 64 * KiB, 0);
	close(dev);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	ASSERT_EQ(1, sendmsg(sv[0], &msg, 0)) TH_LOG("sendmsg: %s", strerror(errno));
	close(fd);
	ASSERT_EQ(files + 1, gmem_read_u64(_metadata, GMEM_SYSFS "/files"));

	ASSERT_EQ(0, run_gmemctl(&r, "ps")) TH_LOG("%s", r.err);
	show("gmemctl ps:", r.out);
	ASSERT_EQ(0, ps_label(r.out, "total", 3, &v, &w, &w));
	EXPECT_EQ(files, v);
	ASSERT_EQ(0, ps_label(r.out, "gmem module", 2, &v, &w, &w));
	EXPECT_EQ(files + 1, v);
	note = "note: 1 gmem file(s) in no fd gmemctl can see (in a unix socket)\n";
	EXPECT_NE(NULL, strstr(r.out, note)) TH_LOG("%s", r.out);
	close(sv[0]);
	close(sv[1]);
	EXPECT_EQ(files, gmem_read_u64(_metadata, GMEM_SYSFS "/files"));
}

/* ---- load and unload ---------------------------------------------------- */

/*
 * module: tests that unload gmem (and kvm).  The teardown runs in the
 * harness's parent, even when the test failed or crashed, and loads
 * back whatever is missing, so that the suites after this one find
 * gmem and KVM as init left them.
 */
FIXTURE(module) {
	bool kvm_amd;		/* kvm_amd was loaded */
};

FIXTURE_SETUP(module)
{
	if (access(MODULE_DIR, F_OK))
		SKIP(return, "gmem is not loaded");
	self->kvm_amd = !access("/sys/module/kvm_amd", F_OK);
}

/*
 * Plain checks, not ASSERT_*(): after a failed assertion in the test the
 * harness would take any assertion here for a failed one too.
 */
FIXTURE_TEARDOWN_PARENT(module)
{
	struct run r;

	if (access(MODULE_DIR, F_OK) && run_gmemctl(&r, "load")) {
		ksft_print_msg("teardown: gmemctl load: %s", r.err);
		run_cmd(&r, KMOD_MODPROBE " gmem");
	}
	if (self->kvm_amd && access("/sys/module/kvm_amd", F_OK))
		run_cmd(&r, KMOD_MODPROBE " kvm_amd");
	if (access(GMEM_DEV, F_OK) || (self->kvm_amd && access("/dev/kvm", F_OK))) {
		ksft_print_msg("teardown: could not load gmem%s back\n",
			       self->kvm_amd ? " and kvm_amd" : "");
		_metadata->exit_code = KSFT_FAIL;
	}
}

/* unload refuses while a process holds gmem, and says which; then works. */
TEST_F(module, unload_names_the_holder)
{
	const struct holder_spec h = {
		.name = "holder-u", .nfiles = 1, .keep_dev = true,
		.files = { { 1 * MiB, 4 * KiB } },
	};
	char want[128];
	struct run r;
	pid_t pid;

	pid = start_holder(_metadata, &h);
	EXPECT_EQ(1, run_gmemctl(&r, "unload")) TH_LOG("%s%s", r.out, r.err);
	show("gmemctl unload:", r.err);
	EXPECT_EQ(1, count_lines(r.err)) TH_LOG("%s", r.err);
	snprintf(want, sizeof(want),
		 "gmemctl: cannot unload gmem: in use by: pid %d (holder-u) 1 file and /dev/gmem",
		 pid);
	EXPECT_NE(NULL, strstr(r.err, want)) TH_LOG("no '%s' in: %s", want, r.err);
	/* Every reference is explained by the holder's fds. */
	EXPECT_EQ(NULL, strstr(r.err, "held by no open gmem fd")) TH_LOG("%s", r.err);
	EXPECT_EQ(NULL, strstr(r.err, "Resource temporarily unavailable")) TH_LOG("%s", r.err);
	EXPECT_EQ(0, access(MODULE_DIR, F_OK)) TH_LOG("gmem went away");
	holder_stop(pid);

	ASSERT_EQ(0, run_gmemctl(&r, "unload")) TH_LOG("%s", r.err);
	EXPECT_STREQ("gmem is unloaded\n", r.out);
	EXPECT_NE(0, access(MODULE_DIR, F_OK)) TH_LOG("gmem is still loaded");
	EXPECT_NE(0, access(GMEM_DEV, F_OK));

	/* Without the module: status and ps fail with a reason. */
	EXPECT_EQ(1, run_gmemctl(&r, "status"));
	EXPECT_STREQ("gmemctl: gmem is not usable: gmem is not loaded (gmemctl load)\n", r.err);
	EXPECT_NE(NULL, strstr(r.out, "module       gmem is not loaded")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "installed    /lib/modules/")) TH_LOG("%s", r.out);
	EXPECT_EQ(1, run_gmemctl(&r, "ps"));
	EXPECT_EQ(1, count_lines(r.err)) TH_LOG("%s", r.err);
	EXPECT_EQ(1, run_gmemctl(&r, "unload"));
	EXPECT_STREQ("gmemctl: cannot unload gmem: it is not loaded\n", r.err);

	ASSERT_EQ(0, run_gmemctl(&r, "load")) TH_LOG("%s", r.err);
	EXPECT_NE(NULL, strstr(r.out, "/gmem.ko\n")) TH_LOG("%s", r.out);
	EXPECT_EQ(0, access(GMEM_DEV, F_OK));
	EXPECT_EQ(0, run_gmemctl(&r, "status")) TH_LOG("%s", r.err);
	EXPECT_EQ(0, run_gmemctl(&r, "load"));
	EXPECT_STREQ("gmem is already loaded\n", r.out);
}

/*
 * A memslot bound to a gmem file holds a module reference, even once the
 * file is closed: no gmem fd is left to name, so unload says what holds
 * the reference instead.
 */
TEST_F(module, unload_explains_a_memslot_reference)
{
	const struct holder_spec h = {
		.name = "holder-slot", .nfiles = 1, .vm = true,
		.close_files = true, .files = { { 1 * MiB, 0 } },
	};
	char want[128];
	struct run r;
	pid_t pid;

	pid = start_holder(_metadata, &h);
	ASSERT_EQ(0ULL, gmem_read_u64(_metadata, GMEM_SYSFS "/files"));
	ASSERT_EQ(1ULL, gmem_read_u64(_metadata, MODULE_DIR "/refcnt"));
	EXPECT_EQ(1, run_gmemctl(&r, "unload")) TH_LOG("%s%s", r.out, r.err);
	show("gmemctl unload:", r.err);
	EXPECT_EQ(1, count_lines(r.err)) TH_LOG("%s", r.err);
	EXPECT_NE(NULL, strstr(r.err, MEMSLOT_REFERENCE)) TH_LOG("%s", r.err);
	snprintf(want, sizeof(want), "processes with KVM VMs: pid %d (holder-slot)", pid);
	EXPECT_NE(NULL, strstr(r.err, want)) TH_LOG("no '%s' in: %s", want, r.err);
	EXPECT_EQ(0, access(MODULE_DIR, F_OK)) TH_LOG("gmem went away");
	holder_stop(pid);
	EXPECT_EQ(0ULL, gmem_read_u64(_metadata, MODULE_DIR "/refcnt"));
}

/* load pulls in what gmem needs, kvm first, as modprobe does. */
TEST_F(module, load_loads_kvm_first)
{
	char *kvm, *gmem;
	struct run r;

	ASSERT_EQ(0, run_gmemctl(&r, "unload")) TH_LOG("%s", r.err);
	run_cmd(&r, KMOD_MODPROBE " -r kvm_amd kvm");
	if (!access("/sys/module/kvm", F_OK))
		SKIP(return, "kvm cannot be unloaded here: %.200s", r.err);

	/* With kvm gone, the patch shows in the installed kvm's symbols. */
	EXPECT_EQ(1, run_gmemctl(&r, "status"));
	EXPECT_NE(NULL, strstr(r.out, "kvm patch    yes: " MODULES_SAY_PATCHED))
		TH_LOG("%s", r.out);

	ASSERT_EQ(0, run_gmemctl(&r, "load")) TH_LOG("%s", r.err);
	show("gmemctl load:", r.out);
	kvm = strstr(r.out, "insmod /lib/modules/");
	kvm = kvm ? strstr(kvm, "/kvm.ko\n") : NULL;
	gmem = strstr(r.out, "/gmem.ko\n");
	ASSERT_NE(NULL, kvm) TH_LOG("kvm.ko not inserted:\n%s", r.out);
	ASSERT_NE(NULL, gmem) TH_LOG("gmem.ko not inserted:\n%s", r.out);
	EXPECT_LT(kvm, gmem) TH_LOG("gmem inserted before kvm:\n%s", r.out);
	EXPECT_EQ(0, access("/sys/module/kvm", F_OK));
	EXPECT_EQ(0, access(MODULE_DIR, F_OK));
	EXPECT_EQ(0, run_gmemctl(&r, "status")) TH_LOG("%s", r.err);
}

/* ---- the test VM's module tools ----------------------------------------- */

/* modprobe is kmod's, and resolves gmem's dependency on kvm from depmod. */
TEST(vm_modprobe_is_kmod_and_reads_depmod)
{
	char *kvm, *gmem, link[64];
	struct run r;
	ssize_t n;

	n = readlink(KMOD_MODPROBE, link, sizeof(link) - 1);
	ASSERT_LT(0, n) TH_LOG("readlink " KMOD_MODPROBE ": %s", strerror(errno));
	link[n] = '\0';
	EXPECT_STREQ("kmod", link);
	ASSERT_EQ(0, run_cmd(&r, KMOD_MODPROBE " --version")) TH_LOG("%s", r.err);
	EXPECT_EQ(0, strncmp(r.out, "kmod version ", 13)) TH_LOG("%s", r.out);
	ASSERT_EQ(0, run_cmd(&r, KMOD_MODPROBE " --show-depends gmem")) TH_LOG("%s", r.err);
	kvm = strstr(r.out, "/kvm.ko");
	gmem = strstr(r.out, "/gmem.ko");
	ASSERT_NE(NULL, kvm) TH_LOG("%s", r.out);
	ASSERT_NE(NULL, gmem) TH_LOG("%s", r.out);
	EXPECT_LT(kvm, gmem) TH_LOG("%s", r.out);
}

TEST_HARNESS_MAIN
