// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftests of gmemctl (tools/gmemctl.c), the operator's tool: status,
 * ps (rows and totals against the module's counters, with several
 * processes holding files, shared ones among them, and a KVM VM; bytes
 * per NUMA node with --nodes and in --json against the files' gmem-nodes
 * and the module's node_bytes), load
 * (dependencies first) and unload (naming what holds gmem), and the
 * test VM's kmod.
 *
 * gmemctl runs as a program, the way an operator runs it: $GMEMCTL, or
 * gmemctl on PATH.  The files it reports are held by helper processes
 * this test forks.  Tests that unload gmem or kvm reload them in a
 * teardown that runs in the harness's parent process, whatever the test
 * did.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/mempolicy.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
	unsigned long long punch;	/* then bytes punched from offset 0 */
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
	bool bind;			/* MPOL_BIND to node before allocating */
	int node;
};

#define MAX_NODES	64

/*
 * bind_to_node() - set_mempolicy(MPOL_BIND) to @node, by its system
 * call: the test VM has no libnuma.  Returns 0 or -errno.
 */
static int bind_to_node(int node)
{
	unsigned long mask[MAX_NODES / (8 * sizeof(unsigned long))] = { 0 };
	const int bits = 8 * sizeof(unsigned long);

	if (node < 0 || node >= MAX_NODES)
		return -EINVAL;
	mask[node / bits] |= 1UL << (node % bits);
	if (syscall(SYS_set_mempolicy, MPOL_BIND, mask, MAX_NODES + 1))
		return -errno;
	return 0;
}

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
	if (spec->bind) {
		r = bind_to_node(spec->node);
		if (r)
			return -r;
	}
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
		if (spec->files[i].punch &&
		    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			      spec->files[i].punch))
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
					     "--nodes status", "ps status",
					     "--bogus ps", "-x ps" };
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
	EXPECT_NE(NULL, strstr(r.out, "gmemctl ps [-h] [--json] [--nodes]"));
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

/* ---- ps --nodes: bytes per NUMA node ------------------------------------ */

/* Bytes per NUMA node, as gmem-nodes and node_bytes list them. */
struct node_list {
	int n;
	int node[MAX_NODES];
	unsigned long long bytes[MAX_NODES];
};

/*
 * parse_node_list() - the "N<node>=<bytes>" words at @s, up to the end
 * of its line, in @l.  Returns 0, or -EINVAL for anything else.
 */
static int parse_node_list(const char *s, struct node_list *l)
{
	unsigned long long bytes;
	int node, len;

	l->n = 0;
	for (;;) {
		s += strspn(s, " \t");
		if (!*s || *s == '\n')
			return 0;
		if (l->n == MAX_NODES ||
		    sscanf(s, "N%d=%llu%n", &node, &bytes, &len) != 2)
			return -EINVAL;
		l->node[l->n] = node;
		l->bytes[l->n++] = bytes;
		s += len;
	}
}

static unsigned long long node_list_sum(const struct node_list *l)
{
	unsigned long long sum = 0;
	int i;

	for (i = 0; i < l->n; i++)
		sum += l->bytes[i];
	return sum;
}

/* node_list_add() - add @bytes to @node of @l; the node joins at the end. */
static void node_list_add(struct node_list *l, int node, unsigned long long bytes)
{
	int i;

	for (i = 0; i < l->n; i++) {
		if (l->node[i] == node) {
			l->bytes[i] += bytes;
			return;
		}
	}
	if (l->n == MAX_NODES)
		return;
	l->node[l->n] = node;
	l->bytes[l->n++] = bytes;
}

/* node_list_text() - @l as "N0=<bytes> N1=<bytes>" in @buf. */
static const char *node_list_text(const struct node_list *l, char *buf,
				  size_t size)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < l->n; i++)
		len += snprintf(buf + len, len < size ? size - len : 0, "%sN%d=%llu",
				i ? " " : "", l->node[i], l->bytes[i]);
	return buf;
}

/*
 * mem_nodes() - the nodes with memory (/sys/devices/system/node/
 * has_memory, "0-1" or "0,2-3"), ascending, with 0 bytes each.
 * Returns 0 or -errno.
 */
static int mem_nodes(struct node_list *l)
{
	char buf[256], *s, *end;
	long a, b;
	int r;

	r = __gmem_read_file("/sys/devices/system/node/has_memory", buf, sizeof(buf));
	if (r)
		return r;
	l->n = 0;
	for (s = buf; *s && *s != '\n'; s = end + (*end == ',')) {
		a = strtol(s, &end, 10);
		if (end == s)
			return -EINVAL;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s)
				return -EINVAL;
		}
		for (; a <= b; a++)
			node_list_add(l, a, 0);
	}
	return l->n ? 0 : -EINVAL;
}

/*
 * expect_nodes_of() - @l lists exactly the nodes of @mem, in that order
 * (every node with memory, zeros included, ascending).
 */
#define expect_nodes_of(_metadata, l, mem, what) do {			\
	char __a[512], __b[512];					\
	int __i, __same = (l)->n == (mem)->n;				\
	for (__i = 0; __same && __i < (l)->n; __i++)			\
		__same = (l)->node[__i] == (mem)->node[__i];		\
	EXPECT_TRUE(__same)						\
		TH_LOG("%s: expected the nodes with memory (%s), got %s", \
		       (what), node_list_text((mem), __a, sizeof(__a)),	\
		       node_list_text((l), __b, sizeof(__b)));		\
} while (0)

/*
 * expect_node_lists() - @got has the bytes of @want on each node of @want
 * and nothing elsewhere.
 */
#define expect_node_lists(_metadata, want, got, what) do {		\
	char __a[512], __b[512];					\
	int __i, __j, __same = (want)->n == (got)->n;			\
	for (__i = 0; __same && __i < (want)->n; __i++) {		\
		for (__j = 0; __j < (got)->n; __j++)			\
			if ((got)->node[__j] == (want)->node[__i])	\
				break;					\
		__same = __j < (got)->n &&				\
			 (got)->bytes[__j] == (want)->bytes[__i];	\
	}								\
	EXPECT_TRUE(__same)						\
		TH_LOG("%s: expected %s, got %s", (what),		\
		       node_list_text((want), __a, sizeof(__a)),	\
		       node_list_text((got), __b, sizeof(__b)));	\
} while (0)

/* The gmem files of a process, from its fdinfo, each file once. */
struct fdinfo_sums {
	int files;
	unsigned long long allocated, held;
	struct node_list nodes;		/* summed over the files */
};

/*
 * read_fdinfo_sums() - the gmem files of process @pid, read here from
 * /proc/@pid/fdinfo the way gmemctl reads them.  Each file must have a
 * gmem-nodes line that lists the nodes with memory (@mem) and adds up
 * to its gmem-allocated + gmem-held.
 */
static void read_fdinfo_sums(struct __test_metadata *_metadata, pid_t pid,
			     const struct node_list *mem, struct fdinfo_sums *fs)
{
	unsigned long long ids[16], id, alloc, held;
	char dir[64], path[320], link[64], text[8192], *line;
	struct node_list nl;
	struct dirent *de;
	int i, seen;
	ssize_t n;
	DIR *d;

	memset(fs, 0, sizeof(*fs));
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	ASSERT_NE(NULL, d) TH_LOG("opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, "anon_inode:[gmem]"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, de->d_name);
		ASSERT_EQ(0, __gmem_read_key(path, "gmem-id", 0, &id)) TH_LOG("%s", path);
		for (seen = 0, i = 0; i < fs->files; i++)
			seen |= ids[i] == id;
		if (seen)
			continue;
		ASSERT_GT(16, fs->files);
		ids[fs->files++] = id;
		ASSERT_EQ(0, __gmem_read_key(path, "gmem-allocated", 0, &alloc))
			TH_LOG("%s", path);
		ASSERT_EQ(0, __gmem_read_key(path, "gmem-held", 0, &held))
			TH_LOG("%s", path);
		ASSERT_EQ(0, __gmem_read_file(path, text, sizeof(text)));
		line = strstr(text, "\ngmem-nodes:");
		if (!line || parse_node_list(line + strlen("\ngmem-nodes:"), &nl))
			show(path, text);
		ASSERT_NE(NULL, line)
			TH_LOG("%s: expected a gmem-nodes line, got none (above)", path);
		ASSERT_EQ(0, parse_node_list(line + strlen("\ngmem-nodes:"), &nl))
			TH_LOG("%s: expected gmem-nodes as N<node>=<bytes> words, got another line (above)",
			       path);
		expect_nodes_of(_metadata, &nl, mem, path);
		EXPECT_EQ(alloc + held, node_list_sum(&nl))
			TH_LOG("%s: expected gmem-nodes to add up to gmem-allocated %llu + gmem-held %llu",
			       path, alloc, held);
		fs->allocated += alloc;
		fs->held += held;
		for (i = 0; i < nl.n; i++)
			node_list_add(&fs->nodes, nl.node[i], nl.bytes[i]);
	}
	closedir(d);
}

/*
 * The numbers of one row of `gmemctl --nodes ps`.  Its columns are right
 * aligned: a cell ends where the header's word ends.
 */
struct nodes_row {
	unsigned long long allocated, held;
	struct node_list nodes;		/* the N<node> columns */
};

/* The number of the cell of @line that ends at column @end. */
static int cell_at(const char *line, size_t len, size_t end,
		   unsigned long long *v)
{
	size_t start = end;

	if (end > len)
		return -ENOENT;
	while (start > 0 && line[start - 1] != ' ')
		start--;
	if (start == end)
		return -EINVAL;
	return sscanf(line + start, "%llu", v) == 1 ? 0 : -EINVAL;
}

/*
 * nodes_row() - the row of `gmemctl --nodes ps` (@out) that starts with
 * the word @key (a pid, "total", "gmem"), read by the columns of its
 * header: ALLOCATED, HELD, N<node>...  Returns 0, -ENOENT (no such row
 * or header) or -EINVAL (a cell is not a number).
 */
static int nodes_row(const char *out, const char *key, struct nodes_row *row)
{
	const char *hdr = NULL, *line, *nl, *w;
	size_t hlen = 0, len, klen = strlen(key), end;
	unsigned long long v;
	char word[32];
	int node, wl;

	memset(row, 0, sizeof(*row));
	for (line = out; *line; line = *nl ? nl + 1 : nl) {
		nl = strchrnul(line, '\n');
		len = nl - line;
		w = line + strspn(line, " ");
		if (!hdr) {
			if (!strncmp(w, "PID ", 4)) {
				hdr = line;
				hlen = len;
			}
			continue;
		}
		if (strncmp(w, key, klen) || (w[klen] != ' ' && w[klen] != '\n'))
			continue;
		/* Each word of the header, and where it ends. */
		for (w = hdr; w < hdr + hlen; w += wl) {
			w += strspn(w, " ");
			wl = strcspn(w, "\n ");
			if (!wl)
				break;
			snprintf(word, sizeof(word), "%.*s", wl, w);
			end = w + wl - hdr;
			if (!strcmp(word, "ALLOCATED")) {
				if (cell_at(line, len, end, &row->allocated))
					return -EINVAL;
			} else if (!strcmp(word, "HELD")) {
				if (cell_at(line, len, end, &row->held))
					return -EINVAL;
			} else if (sscanf(word, "N%d", &node) == 1) {
				if (cell_at(line, len, end, &v))
					return -EINVAL;
				node_list_add(&row->nodes, node, v);
			}
		}
		return 0;
	}
	return -ENOENT;
}

/*
 * json_nodes() - the "nodes" object after @s in the JSON text, as a node
 * list.  Returns 0, -ENOENT or -EINVAL.
 */
static int json_nodes(const char *s, struct node_list *l)
{
	unsigned long long bytes;
	int node, len;

	l->n = 0;
	s = strstr(s, "\"nodes\": ");
	if (!s)
		return -ENOENT;
	s += strlen("\"nodes\": ");
	if (*s++ != '{')
		return -EINVAL;
	while (*s != '}') {
		if (sscanf(s, "\"%d\": %llu%n", &node, &bytes, &len) != 2)
			return -EINVAL;
		node_list_add(l, node, bytes);
		s += len;
		if (*s == ',')
			s += 2;
		else if (*s != '}')
			return -EINVAL;
	}
	return 0;
}

/* The numbers that `gmemctl ps --json` gives for one process, or a file. */
struct json_part {
	unsigned long long allocated, held;
	struct node_list nodes;
};

/* json_part() - "allocated", "held" and "nodes" after @s. */
#define json_part(_metadata, s, part, what) do {			\
	const char *__s = (s);						\
	ASSERT_EQ(0, json_u64(__s, "allocated", &(part)->allocated))	\
		TH_LOG("%s: no \"allocated\" in: %.300s", (what), __s);	\
	ASSERT_EQ(0, json_u64(__s, "held", &(part)->held))		\
		TH_LOG("%s: no \"held\" in: %.300s", (what), __s);	\
	ASSERT_EQ(0, json_nodes(__s, &(part)->nodes))			\
		TH_LOG("%s: expected \"nodes\": {\"<node>\": <bytes>, ...}, got: %.300s", \
		       (what), __s);					\
} while (0)

/*
 * Two processes: A holds two files, one of them with held pages once
 * blocks are on (a 4 MiB file allocated whole, then 8 KiB punched); B,
 * bound to the last node with memory (set_mempolicy), allocates a 2 MiB
 * file there.  `gmemctl --nodes ps` and `gmemctl ps --json` show the
 * bytes of each node as the files' gmem-nodes lines give them, adding up
 * to allocated + held, and for the module what node_bytes says.  With
 * two nodes or more, all of B's bytes are on its node.
 */
TEST(ps_nodes_shows_bytes_per_node)
{
	struct holder_spec a = {
		.name = "holder-na", .nfiles = 2,
		.files = { { 1 * MiB, 64 * KiB }, { 4 * MiB, 4 * MiB, 8 * KiB } },
	}, b = {
		.name = "holder-nb", .nfiles = 1, .bind = true,
		.files = { { 2 * MiB, 2 * MiB } },
	};
	unsigned long long files, alloc, held;
	struct node_list mem, node_bytes, want;
	struct fdinfo_sums fa, fb;
	struct json_part jp, jf;
	char text[4096], pat[32], what[64], *p, *end, *f;
	struct nodes_row row;
	pid_t pa, pb, pids[2];
	int i, k, nf;
	struct run r;

	if (access(MODULE_DIR, F_OK))
		SKIP(return, "gmem is not loaded");
	ASSERT_EQ(0, mem_nodes(&mem)) TH_LOG("cannot read the nodes with memory");
	files = gmem_read_u64(_metadata, GMEM_SYSFS "/files");
	ASSERT_EQ(0ULL, files) TH_LOG("gmem files are open before the test");
	b.node = mem.node[mem.n - 1];
	pa = start_holder(_metadata, &a);
	pb = start_holder(_metadata, &b);
	pids[0] = pa;
	pids[1] = pb;

	/* What the files say, read here. */
	read_fdinfo_sums(_metadata, pa, &mem, &fa);
	read_fdinfo_sums(_metadata, pb, &mem, &fb);
	EXPECT_EQ(2, fa.files);
	EXPECT_EQ(1, fb.files);
	EXPECT_EQ(64 * KiB + 4 * MiB - 8 * KiB, fa.allocated);
	EXPECT_EQ(2 * MiB, fb.allocated);
	ksft_print_msg("holder-na: allocated %llu, held %llu, %s\n", fa.allocated,
		       fa.held, node_list_text(&fa.nodes, text, sizeof(text)));
	ksft_print_msg("holder-nb (bound to node %d): allocated %llu, held %llu, %s\n",
		       b.node, fb.allocated, fb.held,
		       node_list_text(&fb.nodes, text, sizeof(text)));
	if (mem.n >= 2) {
		want = mem;
		for (i = 0; i < want.n; i++)
			want.bytes[i] = want.node[i] == b.node ? fb.allocated + fb.held : 0;
		expect_node_lists(_metadata, &want, &fb.nodes,
				  "holder-nb, bound to one node: its files' gmem-nodes");
	}

	/* The module's counters. */
	alloc = gmem_read_u64(_metadata, GMEM_SYSFS "/allocated_bytes");
	held = gmem_read_u64(_metadata, GMEM_SYSFS "/held_bytes");
	ASSERT_EQ(0, __gmem_read_file(GMEM_SYSFS "/node_bytes", text, sizeof(text)))
		TH_LOG("expected " GMEM_SYSFS "/node_bytes, got none");
	ASSERT_EQ(0, parse_node_list(text, &node_bytes))
		TH_LOG("expected node_bytes as N<node>=<bytes> words, got: %s", text);
	expect_nodes_of(_metadata, &node_bytes, &mem, GMEM_SYSFS "/node_bytes");
	EXPECT_EQ(alloc + held, node_list_sum(&node_bytes))
		TH_LOG("expected node_bytes to add up to allocated_bytes %llu + held_bytes %llu",
		       alloc, held);
	EXPECT_EQ(fa.allocated + fb.allocated, alloc);
	EXPECT_EQ(fa.held + fb.held, held);

	/* The table. */
	ASSERT_EQ(0, run_gmemctl(&r, "--nodes ps")) TH_LOG("%s", r.err);
	show("gmemctl --nodes ps:", r.out);
	EXPECT_STREQ("", r.err);
	for (k = 0; k < 2; k++) {
		const struct fdinfo_sums *fs = k ? &fb : &fa;

		snprintf(pat, sizeof(pat), "%d", pids[k]);
		ASSERT_EQ(0, nodes_row(r.out, pat, &row))
			TH_LOG("no row with numbers for pid %d", pids[k]);
		snprintf(what, sizeof(what), "--nodes ps, row of pid %d", pids[k]);
		EXPECT_EQ(fs->allocated, row.allocated) TH_LOG("%s: ALLOCATED", what);
		EXPECT_EQ(fs->held, row.held) TH_LOG("%s: HELD", what);
		expect_nodes_of(_metadata, &row.nodes, &mem, what);
		expect_node_lists(_metadata, &fs->nodes, &row.nodes, what);
		EXPECT_EQ(row.allocated + row.held, node_list_sum(&row.nodes))
			TH_LOG("%s: expected the N columns to add up to ALLOCATED + HELD", what);
	}
	ASSERT_EQ(0, nodes_row(r.out, "total", &row)) TH_LOG("no total row");
	EXPECT_EQ(alloc, row.allocated) TH_LOG("--nodes ps, total: ALLOCATED");
	EXPECT_EQ(held, row.held) TH_LOG("--nodes ps, total: HELD");
	expect_node_lists(_metadata, &node_bytes, &row.nodes,
			  "--nodes ps, total (no other gmem files): node_bytes");
	ASSERT_EQ(0, nodes_row(r.out, "gmem", &row)) TH_LOG("no gmem module row");
	EXPECT_EQ(alloc, row.allocated) TH_LOG("--nodes ps, module: ALLOCATED");
	EXPECT_EQ(held, row.held) TH_LOG("--nodes ps, module: HELD");
	expect_node_lists(_metadata, &node_bytes, &row.nodes,
			  "--nodes ps, module: node_bytes");
	EXPECT_EQ(NULL, strstr(r.out, "note:")) TH_LOG("%s", r.out);

	/* JSON: per process, per file, the totals and the module. */
	ASSERT_EQ(0, run_gmemctl(&r, "ps --json")) TH_LOG("%s", r.err);
	for (k = 0; k < 2; k++) {
		const struct fdinfo_sums *fs = k ? &fb : &fa;

		snprintf(pat, sizeof(pat), "{\"pid\": %d, ", pids[k]);
		p = strstr(r.out, pat);
		ASSERT_NE(NULL, p) TH_LOG("no %s in:\n%s", pat, r.out);
		snprintf(what, sizeof(what), "ps --json, pid %d", pids[k]);
		json_part(_metadata, p, &jp, what);
		EXPECT_EQ(fs->allocated, jp.allocated) TH_LOG("%s: allocated", what);
		EXPECT_EQ(fs->held, jp.held) TH_LOG("%s: held", what);
		expect_node_lists(_metadata, &fs->nodes, &jp.nodes, what);
		/* Its files, up to the next process or the totals. */
		end = strstr(p + 1, "{\"pid\": ") ?: strstr(p, "\"totals\": ");
		ASSERT_NE(NULL, end) TH_LOG("%s", r.out);
		nf = 0;
		for (f = strstr(p, "{\"id\": "); f && f < end; f = strstr(f + 1, "{\"id\": ")) {
			snprintf(what, sizeof(what), "ps --json, pid %d, file %d", pids[k], nf);
			json_part(_metadata, f, &jf, what);
			expect_nodes_of(_metadata, &jf.nodes, &mem, what);
			EXPECT_EQ(jf.allocated + jf.held, node_list_sum(&jf.nodes))
				TH_LOG("%s: expected \"nodes\" to add up to allocated %llu + held %llu",
				       what, jf.allocated, jf.held);
			nf++;
		}
		EXPECT_EQ(fs->files, nf) TH_LOG("ps --json, pid %d: files in file_list", pids[k]);
	}
	p = strstr(r.out, "\"totals\": ");
	ASSERT_NE(NULL, p) TH_LOG("%s", r.out);
	json_part(_metadata, p, &jp, "ps --json, totals");
	EXPECT_EQ(alloc, jp.allocated);
	EXPECT_EQ(held, jp.held);
	expect_node_lists(_metadata, &node_bytes, &jp.nodes,
			  "ps --json, totals (no other gmem files): node_bytes");
	p = strstr(r.out, "\"module\": ");
	ASSERT_NE(NULL, p) TH_LOG("%s", r.out);
	json_part(_metadata, p, &jp, "ps --json, module");
	EXPECT_EQ(alloc, jp.allocated);
	EXPECT_EQ(held, jp.held);
	expect_node_lists(_metadata, &node_bytes, &jp.nodes, "ps --json, module: node_bytes");

	holder_stop(pa);
	holder_stop(pb);
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
