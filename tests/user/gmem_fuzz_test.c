// SPDX-License-Identifier: GPL-2.0-only
/*
 * A fuzzer for gmem's ABI: random operations with random arguments on
 * /dev/gmem, gmem fds and KVM VMs that bind them, judged call by call.
 *
 * Every call is judged twice: its errno must be one that gmem_abi.h
 * documents for that operation, and it must agree with a model of the
 * documented rules (a valid GMEM_CREATE, fallocate, attribute ioctl or
 * GMEM_WRITE succeeds; an invalid one fails with an errno of a rule it
 * broke; nothing that reads or maps the contents ever succeeds; a file
 * binds to one VM at a time, across fork and SCM_RIGHTS: the first to
 * bind it, whose memslots come and go without letting it go; another
 * VM's bind fails with EBUSY until a successful GMEM_RELEASE_VM by that
 * VM, which needs it to have no memslot left on the file (EBUSY), and
 * then the next VM to bind the file gets it (a handoff); fdinfo's
 * gmem-vm names the file's VM, or nothing once released;
 * KVM_CREATE_GUEST_MEMFD gives a gmem file, bound to its VM from creation
 * and for life (EINVAL for other VMs and for its release), exactly when
 * the takeover parameter, the VM type and max_file_size say so, and KVM's
 * own guest_memfd otherwise).  Where the
 * rules say more than the errno, the result is checked too: GET reads
 * back what SET set and nothing around it changed, runs are maximal,
 * GMEM_WRITE reports as written exactly the pages its source could give
 * (no guest runs here, so no page is ever refused with EPERM).  Every
 * ioctl number goes through the model of its fd kind; ours on the other
 * kind of fd fail with ENOTTY.  Around the single calls: fds closed by
 * another thread while in use, forked children and processes that
 * receive fds over a unix socket working on the same files, files charged
 * to a small memory cgroup (ENOMEM and its rollback), a timer signal that
 * interrupts long allocations (EINTR).  At the end every fd is closed and
 * gmem's counters and KVM's VMs must be back where they started, and
 * takeover_files and takeover_declined must have moved as the model said.
 *
 * The operation sequence of each process follows from the seed; the
 * interleaving of processes and threads does not (nor, therefore, which
 * memslots a handoff or a deletion finds, which file a release finds
 * with which VM: whose binds and releases worked).
 *   GMEM_FUZZ_SEED=S     seed (default 1)
 *   GMEM_FUZZ_OPS=N      operations of the main process (default 20000);
 *                        children add theirs, reported separately
 *   GMEM_FUZZ_SECONDS=T  stop after T seconds even if N is not reached
 *   GMEM_FUZZ_VERBOSE=1  log every call
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/mempolicy.h>

#include "kselftest_harness.h"
#include "gmem_util.h"
#include "gmem_abi.h"
#include "gmem_leak.h"
#include "gmem_failnth.h"

#define PAGE		4096ULL
#define MAX_FDS		48
#define MAX_VMS		3
#define MAX_VM_MODELS	8	/* VMs of one process whose memslots the model follows */
#define MAX_VM_SLOTS	32	/* memslots of one VM it follows */
#define KVM_GPA_SANE	(1ULL << 32)	/* memslots below: no KVM limit applies */
#define MAX_CHILDREN	3
#define OWNER_BITS	16
#define MAX_OWNERS	(1 << OWNER_BITS)	/* slots of the owner table */
#define OWNERS_FULL	(MAX_OWNERS / 4 * 3)	/* files it records at most */
#define MAX_FAIL_LOGS	30
#define ALLOC_BUDGET	(256ULL << 20)	/* unlimited files, all processes */
#define MEMCG_LIMIT	(32ULL << 20)	/* the small memory cgroup */
#define MEMCG_DIR	"/sys/fs/cgroup/gmem-fuzz"
#define PARAM		"/sys/module/gmem/parameters/max_file_size"
#define PARAM_BLOCKS	"/sys/module/gmem/parameters/blocks"
#define PARAM_TAKEOVER	"/sys/module/gmem/parameters/takeover"
#define SYSFS_FILES	"/sys/class/misc/gmem/files"
#define SYSFS_BYTES	"/sys/class/misc/gmem/allocated_bytes"
#define SYSFS_UNMAPPED	"/sys/class/misc/gmem/unmapped_bytes"
#define PARAM_NO_DIRECT_MAP "/sys/module/gmem/parameters/no_direct_map"
#define SYSFS_TAKEN	"/sys/class/misc/gmem/takeover_files"
#define SYSFS_DECLINED	"/sys/class/misc/gmem/takeover_declined"
#define LFS_MAX		((uint64_t)LLONG_MAX)
#define SRC_PAGES	512	/* readable source of GMEM_WRITE, ending at the guard */
#define WALK_MAX	64	/* GMEM_GET_ATTRIBUTES calls of one walk */
#define WRITTEN_UNSET	0x5a5a5a5a5a5a5a5aULL	/* gmem_write.written before the call */
#define SYSFS_NODE_BYTES "/sys/class/misc/gmem/node_bytes"
#define NODE_DIR	"/sys/devices/system/node"
#define LONG_BITS	(8 * sizeof(long))
#define NODE_BITS	1024	/* node masks the model keeps: x86's largest MAX_NUMNODES */
#define NODE_WORDS	(NODE_BITS / 64)
#define MAXNODE_LIMIT	32768ULL	/* the largest @maxnode of the mempolicy ioctls */
#define MAX_MEM_NODES	64

enum fd_kind { K_FREE, K_DEV, K_GMEM, K_VM, K_OTHER };
#define M_DEV	(1 << K_DEV)
#define M_GMEM	(1 << K_GMEM)
#define M_VM	(1 << K_VM)
#define M_OTHER	(1 << K_OTHER)
#define M_ANY	(M_DEV | M_GMEM | M_VM | M_OTHER)

struct ffd {
	int fd;
	enum fd_kind kind;
	bool writable;		/* K_DEV: opened for writing */
	uint64_t size;		/* K_GMEM */
	uint64_t ino;		/* K_GMEM */
	bool limited;		/* K_GMEM: charged to the small memory cgroup */
	bool shared;		/* K_GMEM: a child of ours may hold the file too */
	int vm_id;		/* K_VM */
	pid_t vm_pid;		/* K_VM: its creator, the only process that may use it */
	unsigned long vm_type;	/* K_VM: its KVM_CREATE_VM type */
	bool vm_private;	/* K_VM: KVM_X86_SW_PROTECTED_VM */
};

/* Results the model predicts exactly, beyond the errno: counted, and reported. */
enum exact {
	X_CREATE_ATTRS,		/* a new file has the attributes of its GMEM_CREATE flags */
	X_SET_GET,		/* GET reads back what SET set, every run of the range */
	X_SET_EDGES,		/* SET left the pages around the range alone, runs maximal */
	X_WALK,			/* a walk of all runs ends at the file size, runs maximal */
	X_WRITTEN,		/* GMEM_WRITE's written is what the source allowed */
	X_GUEST_MEMFD,		/* KVM_CREATE_GUEST_MEMFD gave the file the model said */
	X_TAKEOVER_COUNTS,	/* ...and moved takeover_files/_declined as it said */
	X_POLICY_GET,		/* GET reads back the policy SET set, in the range */
	X_POLICY_KEPT,		/* ...and the pages around it, or of a refused SET, kept theirs */
	X_BIND_BUSY,		/* a file another VM has: EBUSY */
	X_BUSY_IDLE,		/* ...also when that VM had no memslot left on it */
	X_BIND_MOVED,		/* a file another VM had released: bound */
	X_VM_LINE,		/* fdinfo's gmem-vm named the file's VM, or none */
	X_RELEASE_OK,		/* GMEM_RELEASE_VM by the file's VM, no memslot left: 0 */
	X_RELEASE_BUSY,		/* ...with a memslot left: EBUSY */
	X_RELEASE_INVAL,	/* another VM, a non-VM fd, a file for life: EINVAL */
	X_RELEASE_NONE,		/* a file without a VM: 0, nothing done */
	X_RELEASE_ARGS,		/* bad pointer EFAULT, flags EINVAL, vm_fd EBADF */
	X_FAILED_PIN,		/* a failed bind left the file its VM's (see memslot_call) */
	X_NR
};

static const char *const exact_names[] = {
	"create-attrs", "set-get", "set-edges", "walk", "written", "guest-memfd",
	"takeover-cnt", "policy-get", "policy-kept", "bind-busy", "busy-idle",
	"bind-moved", "gmem-vm", "release-ok", "release-busy", "release-inval",
	"release-none", "release-args", "failed-pin",
};

/* Shared by every process of the run (MAP_SHARED, set up before forks). */
struct shared {
	pthread_mutex_t lock;		/* owners */
	pthread_rwlock_t param_lock;	/* max_file_size, takeover vs. creating files */
	pthread_rwlock_t memcg_lock;	/* filling the small cgroup vs. entering it */
	uint64_t max_file_size;		/* under param_lock */
	bool takeover;			/* under param_lock */
	/*
	 * What KVM_CREATE_GUEST_MEMFD calls of all processes added to
	 * takeover_files and takeover_declined: exactly, and at most
	 * declined_maybe more (calls that failed under injection, maybe
	 * before gmem saw them).
	 */
	atomic_ulong taken_over, declined, declined_maybe;
	/*
	 * Under lock: open addressing on ino, 0 a free slot (key ino + 1).
	 * The file's VM (-1: none): set by the first successful bind, kept
	 * while its memslots come and go (only its creator's calls change
	 * them), cleared only by a successful GMEM_RELEASE_VM (any process
	 * with an fd of the VM may issue it).  Calls that bind or delete a
	 * memslot of the file, or release it, count themselves in
	 * @inflight and @ops: one that met no other is judged exactly (see
	 * struct bind_win).
	 */
	struct owner {
		uint64_t key;
		int vm_id;		/* -1: the file has no VM */
		pid_t vm_pid;		/* its creator: fdinfo's kvm-<pid> */
		int nslots;		/* its memslots on the file */
		int last_vm;		/* the VM that had it before, -1: none */
		bool for_life;		/* from KVM_CREATE_GUEST_MEMFD: @vm_id's for good */
		bool unsure;		/* the model lost track: judge nothing exactly */
		int inflight;
		unsigned int ops;
	} owners[MAX_OWNERS];
	int nr_owners;
	atomic_int next_vm_id;
	atomic_ulong child_ops, children, failures, fail_logs;
	atomic_ulong calls[GMEM_ABI_NR + 1][136];	/* [op][errno], 0 = ok */
	atomic_ulong exact[X_NR];	/* exact checks made */
	atomic_ulong armed, fired;	/* calls armed with fail-nth; failures injected */
};

#define ABI_KVM_CREATE_VM	GMEM_ABI_NR	/* KVM's, counted alongside */

/* The memslots of a VM this process created, as its calls left them. */
struct vm_model {
	pid_t pid;		/* 0: a free entry */
	int vm_id;
	bool lost;		/* a memslot the model could not follow */
	int n;
	struct mslot {
		uint32_t id;
		uint64_t gpa, size;
		bool gm;	/* on a gmem file: */
		uint64_t ino, off;
	} s[MAX_VM_SLOTS];
};

struct fuzz {
	uint64_t rng;
	const char *who;
	struct ffd fds[MAX_FDS];
	struct shared *sh;
	bool child;
	bool racing;		/* fds may be closed under us: EBADF is fine */
	uint64_t race_mask;	/* racing: pick only these fd slots */
	unsigned long op_nr;
	const char *op_name;
	char *src;		/* SRC_PAGES readable pages, buf the last 4 of them */
	char *buf;		/* 4 pages of random bytes */
	char *guard;		/* a PROT_NONE page after buf */
	char *ro;		/* a read-only page, for ioctl structs */
	void *unmapped;
	char *slot_mem;		/* 2 MiB, userspace_addr of memslots */
	pid_t kids[MAX_CHILDREN];
	bool memcg;
	int vm_types;		/* KVM_CAP_VM_TYPES, 0 without KVM */
	bool verbose;
	bool audit;		/* check the fd table after every operation */
	int nth_fd;		/* /proc/thread-self/fail-nth, -1 without it */
	unsigned int nth_pct;	/* how often a call is armed with fail-nth */
	bool armed;		/* fail-nth is set for the next call */
	bool fired;		/* ...and made an allocation of it fail */
	bool inherited[1024];	/* fds open before the run, not ours */
	unsigned long mem_nodes[NODE_WORDS];	/* the nodes with memory */
	int mem_node[MAX_MEM_NODES];	/* ...their ids */
	int nr_mem_nodes;
	int nr_node_ids;	/* the highest possible node id + 1 */
	int max_nodes;		/* the kernel's MAX_NUMNODES */
	struct vm_model vms[MAX_VM_MODELS];
};

/* ---- randomness ---- */

static uint64_t rnd(struct fuzz *f)
{
	/* xorshift64* */
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(struct fuzz *f, uint64_t n)
{
	return n ? rnd(f) % n : 0;
}

static bool chance(struct fuzz *f, unsigned int percent)
{
	return below(f, 100) < percent;
}

static void seed(struct fuzz *f, uint64_t s)
{
	f->rng = s * 0x9E3779B97F4A7C15ULL + 0x1234567;
	if (!f->rng)
		f->rng = 1;
	for (int i = 0; i < 8; i++)
		rnd(f);
}

/* A value from the edges of the 64-bit range and of @size. */
static uint64_t interesting(struct fuzz *f, uint64_t size)
{
	static const uint64_t fixed[] = {
		0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, 2ULL << 20, 1ULL << 30,
		1ULL << 40, (1ULL << 40) + PAGE, LFS_MAX, LFS_MAX & ~(PAGE - 1),
		(LFS_MAX & ~(PAGE - 1)) - PAGE, 1ULL << 63, -PAGE, -1ULL,
		0x7ffff000, 0xfffff000, 0x100000000ULL,
	};

	switch (below(f, 6)) {
	case 0:
		return fixed[below(f, ARRAY_SIZE(fixed))];
	case 1:
		return size;
	case 2:
		return size + PAGE * (below(f, 3) - 1);
	case 3:
		return below(f, size + 2 * PAGE);
	case 4:
		return (below(f, (size >> 12) + 2)) * PAGE;
	default:
		return rnd(f) >> below(f, 64);
	}
}

/* A size for a new file: mostly small and valid, sometimes anything. */
static uint64_t file_size(struct fuzz *f)
{
	switch (below(f, 10)) {
	case 0:
		return interesting(f, 16 * PAGE);
	case 1:
		return (1 + below(f, 256)) << 30;
		/* sparse, up to 256 GiB */
	case 2:
		return (2ULL << 20) + PAGE;
	default:
		return (1 + below(f, 4096)) * PAGE;
		/* up to 16 MiB */
	}
}

/* ---- judging ---- */

struct expect {
	bool ok;		/* success is allowed */
	int n;
	int err[8];		/* errnos the model allows */
};

/* Where the struct of an ioctl is: what the kernel can do with it. */
enum arg_kind {
	ARG_RW,		/* readable and writable */
	ARG_RO,		/* readable only: results cannot be written back */
	ARG_BAD,	/* not readable (bad_ptr()) */
};

static void allow(struct expect *x, int err)
{
	for (int i = 0; i < x->n; i++)
		if (x->err[i] == err)
			return;
	if (x->n < 8)
		x->err[x->n++] = err;
}

static void fail(struct fuzz *f, const char *fmt, ...)
{
	unsigned long n = atomic_fetch_add(&f->sh->failures, 1);
	va_list ap;

	if (atomic_fetch_add(&f->sh->fail_logs, 1) >= MAX_FAIL_LOGS)
		return;
	fprintf(stderr, "# fuzz FAIL [%s op %lu %s] ", f->who, f->op_nr, f->op_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	(void)n;
}

static const char *errname(int e)
{
	static __thread char b[16];

	switch (e) {
#define E(x) case x: return #x
	E(EPERM); E(ENOENT); E(EINTR); E(EIO); E(ENXIO); E(EBADF); E(ENOMEM);
	E(EACCES); E(EFAULT); E(EBUSY); E(EEXIST); E(EXDEV); E(ENODEV);
	E(EINVAL); E(ENFILE); E(EMFILE); E(ENOTTY); E(EFBIG); E(ESPIPE);
	E(ERANGE); E(EOPNOTSUPP); E(EOVERFLOW); E(ENOTDIR); E(EISDIR);
	E(ETXTBSY); E(EAGAIN); E(ENOSPC); E(EROFS); E(E2BIG); E(EHWPOISON);
#undef E
	}
	snprintf(b, sizeof(b), "errno %d", e);
	return b;
}

/*
 * judge() - one call against the documented errnos of @op and the model
 * @r: the call's return value, negative on failure with errno @err
 * @what: the call, for the log
 */
static void judge(struct fuzz *f, int op, const struct expect *x, long r, int err,
		  const char *what)
{
	bool documented, modelled = false;
	int i;

	atomic_fetch_add(&f->sh->calls[op][r < 0 ? (err > 0 && err < 136 ? err : 135) : 0], 1);
	if (f->verbose)
		fprintf(stderr, "# [%s %lu] %s = %ld%s%s\n", f->who, f->op_nr, what, r,
			r < 0 ? " " : "", r < 0 ? errname(err) : "");
	if (r >= 0) {
		if (!x->ok)
			fail(f, "%s succeeded (returned %ld); expected %s%s", what, r,
			     x->n ? errname(x->err[0]) : "failure",
			     x->n > 1 ? " or similar" : "");
		return;
	}
	if (op == ABI_KVM_CREATE_VM)
		documented = err == EINVAL || gmem_abi_resource_errno(err);
	else
		documented = gmem_abi_documented(op, err) ||
			     (f->racing && err == EBADF);
	for (i = 0; i < x->n; i++)
		modelled |= x->err[i] == err;
	if ((x->ok || f->fired) && gmem_abi_resource_errno(err))
		modelled = true;
	if (f->racing && err == EBADF)
		modelled = true;
	if (!documented) {
		fail(f, "%s: %s is not documented for %s (%s)", what, errname(err),
		     op == ABI_KVM_CREATE_VM ? "KVM_CREATE_VM" : gmem_abi[op].name,
		     op == ABI_KVM_CREATE_VM ? "api.rst" : gmem_abi[op].doc);
	} else if (!modelled) {
		char exp[128] = "";

		for (i = 0; i < x->n; i++)
			snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), "%s%s",
				 i ? "/" : "", errname(x->err[i]));
		fail(f, "%s: %s, expected %s", what, errname(err),
		     x->ok ? "success" : exp);
	}
}

/*
 * Fault injection: arm() makes the Nth allocation of the next call fail
 * (N random, small), disarm() right after it reads back whether one did
 * and resets.  An injected failure may turn any call into a resource
 * errno (judge()), never into an undocumented one, and never a leak:
 * the counters at the end must still be exact.
 */
static void arm(struct fuzz *f)
{
	char b[16];
	int n;

	if (f->nth_fd < 0 || !chance(f, f->nth_pct))
		return;
	n = snprintf(b, sizeof(b), "%llu", (unsigned long long)(1 + below(f, 16)));
	f->armed = pwrite(f->nth_fd, b, n, 0) == n;
}

static void disarm(struct fuzz *f)
{
	char b[16] = "";

	if (!f->armed)
		return;
	f->armed = false;
	if (pread(f->nth_fd, b, sizeof(b) - 1, 0) <= 0)
		return;
	f->fired = !strtoul(b, NULL, 10);
	if (pwrite(f->nth_fd, "0", 1, 0) != 1)
		fail(f, "cannot reset fail-nth: %s", strerror(errno));
	atomic_fetch_add(&f->sh->armed, 1);
	atomic_fetch_add(&f->sh->fired, f->fired);
}

static int nth_open(void)
{
	return open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
}

/* A forked child's inherited fd still names its parent's task. */
static void nth_reopen(struct fuzz *f)
{
	if (f->nth_fd < 0)
		return;
	close(f->nth_fd);
	f->nth_fd = nth_open();
}

/* ---- the fd table ---- */

static struct ffd *pick(struct fuzz *f, unsigned int kinds)
{
	int i, n = 0, idx[MAX_FDS];

	for (i = 0; i < MAX_FDS; i++) {
		if (f->racing && !(f->race_mask & (1ULL << i)))
			continue;
		if (f->fds[i].kind != K_FREE && (kinds & (1u << f->fds[i].kind)))
			idx[n++] = i;
	}
	return n ? &f->fds[idx[below(f, n)]] : NULL;
}

static void forget(struct ffd *d)
{
	memset(d, 0, sizeof(*d));
	d->fd = -1;
}

static void drop(struct ffd *d)
{
	close(d->fd);
	forget(d);
}

/* A free slot, closing a random fd to make room if need be. */
static struct ffd *slot(struct fuzz *f)
{
	int i;

	for (i = 0; i < MAX_FDS; i++)
		if (f->fds[i].kind == K_FREE)
			return &f->fds[i];
	i = below(f, MAX_FDS);
	drop(&f->fds[i]);
	return &f->fds[i];
}

static int count_kind(struct fuzz *f, enum fd_kind k)
{
	int i, n = 0;

	for (i = 0; i < MAX_FDS; i++)
		n += f->fds[i].kind == k;
	return n;
}

/* A bad pointer: NULL, unmapped, kernel, or straddling into PROT_NONE. */
static void *bad_ptr(struct fuzz *f, size_t len)
{
	switch (below(f, 4)) {
	case 0:
		return NULL;
	case 1:
		return f->unmapped;
	case 2:
		return (void *)0xffff880000000000ULL;
	default:
		return f->guard - (len > 1 ? len / 2 : 0);
	}
}

static void fill_random(struct fuzz *f, void *p, size_t len)
{
	uint64_t *q = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		q[i] = rnd(f);
}

/*
 * How many bytes from @p on can be read: up to the guard page inside our
 * source buffer, none at the other addresses the fuzzer passes (NULL, an
 * unmapped page, a kernel address).
 */
static uint64_t readable(struct fuzz *f, const char *p)
{
	return p >= f->src && p < f->guard ? (uint64_t)(f->guard - p) : 0;
}

/* @s, then random bytes, in the read-only page; NULL if that fails. */
static void *ro_arg(struct fuzz *f, const void *s, size_t len)
{
	if (mprotect(f->ro, PAGE, PROT_READ | PROT_WRITE))
		return NULL;
	fill_random(f, f->ro, PAGE);
	memcpy(f->ro, s, len);
	return mprotect(f->ro, PAGE, PROT_READ) ? NULL : f->ro;
}

/*
 * Where the struct of an ioctl goes: mostly in our buffer, followed by
 * random bytes that must not matter; now and then in read-only memory
 * (the kernel can read it but not write results back) or nowhere.
 */
static void *place_arg(struct fuzz *f, const void *s, size_t len, enum arg_kind *ak)
{
	unsigned int where = below(f, 100);
	void *p;

	if (where < 4) {
		*ak = ARG_BAD;
		return bad_ptr(f, len);
	}
	if (where < 8) {
		p = ro_arg(f, s, len);
		if (p) {
			*ak = ARG_RO;
			return p;
		}
	}
	*ak = ARG_RW;
	fill_random(f, f->buf, 4 * PAGE);
	memcpy(f->buf, s, len);
	return f->buf;
}

static uint64_t read_u64(const char *path)
{
	char b[64] = "";
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	if (read(fd, b, sizeof(b) - 1) < 0)
		b[0] = 0;
	close(fd);
	return strtoull(b, NULL, 0);
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* ---- the bind-owner model, shared by all processes ---- */

/*
 * The slot of @ino in the owner table: its own, or the free one where it
 * would go.  Files are never forgotten (a file may live on in any of our
 * processes), and the table is never more than 3/4 full.
 */
static unsigned int owner_slot(struct shared *sh, uint64_t ino)
{
	unsigned int i = (ino * 0x9E3779B97F4A7C15ULL) >> (64 - OWNER_BITS);

	while (sh->owners[i].key && sh->owners[i].key != ino + 1)
		i = (i + 1) & (MAX_OWNERS - 1);
	return i;
}

/* The VM of file @ino (bound, or for life), -1 for none. */
static int owner_of(struct fuzz *f, uint64_t ino)
{
	unsigned int i;
	int vm = -1;

	pthread_mutex_lock(&f->sh->lock);
	i = owner_slot(f->sh, ino);
	if (f->sh->owners[i].key)
		vm = f->sh->owners[i].vm_id;
	pthread_mutex_unlock(&f->sh->lock);
	return vm;
}

/* A file from KVM_CREATE_GUEST_MEMFD: VM @vm's, of process @pid, for life. */
static void set_for_life(struct fuzz *f, uint64_t ino, int vm, pid_t pid, const char *what)
{
	struct owner *o;
	bool known = false;

	pthread_mutex_lock(&f->sh->lock);
	o = &f->sh->owners[owner_slot(f->sh, ino)];
	if (o->key) {
		known = true;
	} else if (f->sh->nr_owners < OWNERS_FULL) {
		o->key = ino + 1;
		o->vm_id = vm;
		o->vm_pid = pid;
		o->last_vm = -1;
		o->for_life = true;
		f->sh->nr_owners++;
	}
	pthread_mutex_unlock(&f->sh->lock);
	if (known)
		fail(f, "%s: a new file, but gmem file %" PRIu64 " was known already", what, ino);
}

/*
 * A call that may bind or delete a memslot of a file, or release the
 * file's VM, seen from the owner table: what the table said when it
 * began, and whether it met another such call on the file (begun before
 * it ended, or not ended before it began).  A call that met none is the
 * only one that changed the file's VM or memslots meanwhile, so the
 * table at its start says exactly what it should do.
 */
struct bind_win {
	bool on;		/* the file is in the table */
	unsigned int i, ops;
	bool others;		/* another call was under way when this one began */
	int owner, last_vm;	/* at the start: see struct owner */
	int nslots;
	bool for_life, unsure;
};

#define WIN_BIND	1	/* @delta of win_end(): a memslot bound */
#define WIN_DELETE	-1	/* a memslot deleted */
#define WIN_RELEASE	2	/* GMEM_RELEASE_VM succeeded */
#define WIN_PIN		3	/* a failed bind left the file the VM's */

static void win_begin(struct fuzz *f, uint64_t ino, struct bind_win *w)
{
	struct owner *o;

	memset(w, 0, sizeof(*w));
	w->owner = -1;
	w->last_vm = -1;
	pthread_mutex_lock(&f->sh->lock);
	w->i = owner_slot(f->sh, ino);
	o = &f->sh->owners[w->i];
	if (!o->key && f->sh->nr_owners < OWNERS_FULL) {
		o->key = ino + 1;
		o->vm_id = -1;
		o->last_vm = -1;
		f->sh->nr_owners++;
	}
	if (o->key) {
		w->on = true;
		w->owner = o->vm_id;
		w->last_vm = o->last_vm;
		w->nslots = o->nslots;
		w->for_life = o->for_life;
		w->unsure = o->unsure;
		w->others = o->inflight > 0;
		o->inflight++;
		w->ops = ++o->ops;
	}
	pthread_mutex_unlock(&f->sh->lock);
}

/*
 * End the call's window: @delta WIN_BIND if VM @vm (of process @pid)
 * bound a memslot to the file, WIN_DELETE if it deleted one, WIN_RELEASE
 * if it released the file, 0 if nothing changed; with @unsure, the model
 * lost track of the file.  Sets *@owner_pid to the creator of the VM the
 * file is now with, 0 for none.  Applied in the order the calls end,
 * which among calls that met others may not be the kernel's: a bind
 * always takes the file (it could not have worked otherwise), a release
 * lets go only the VM it names.
 *
 * Return: whether the call met no other (see struct bind_win).
 */
static bool win_end(struct fuzz *f, struct bind_win *w, int vm, pid_t pid, int delta,
		    bool unsure, pid_t *owner_pid)
{
	struct owner *o;
	bool alone;

	*owner_pid = 0;
	if (!w->on)
		return false;
	pthread_mutex_lock(&f->sh->lock);
	o = &f->sh->owners[w->i];
	alone = !w->others && o->ops == w->ops;
	o->inflight--;
	o->unsure |= unsure;
	if (delta == WIN_BIND && o->vm_id != vm && !o->for_life) {
		o->last_vm = o->vm_id >= 0 ? o->vm_id : o->last_vm;
		o->vm_id = vm;
		o->vm_pid = pid;
		o->nslots = 0;
	}
	if ((delta == WIN_BIND || delta == WIN_DELETE) && o->vm_id == vm) {
		o->nslots += delta;
		if (o->nslots < 0)
			o->nslots = 0;
	}
	if (delta == WIN_PIN && o->vm_id < 0 && !o->for_life) {
		o->vm_id = vm;
		o->vm_pid = pid;
		o->nslots = 0;
	}
	if (delta == WIN_RELEASE && o->vm_id == vm && !o->for_life) {
		o->last_vm = vm;
		o->vm_id = -1;
		o->nslots = 0;
	}
	if (o->vm_id >= 0)
		*owner_pid = o->vm_pid;
	pthread_mutex_unlock(&f->sh->lock);
	return alone;
}

/* ---- the memslot model, per VM, in the VM's creator ---- */

static struct vm_model *vm_model_get(struct fuzz *f, int vm_id)
{
	int i;

	for (i = 0; i < MAX_VM_MODELS; i++)
		if (f->vms[i].pid == getpid() && f->vms[i].vm_id == vm_id)
			return &f->vms[i];
	return NULL;
}

/* Does this process still hold an fd of VM @vm_id? */
static bool vm_open(struct fuzz *f, int vm_id)
{
	int i;

	for (i = 0; i < MAX_FDS; i++)
		if (f->fds[i].kind == K_VM && f->fds[i].vm_id == vm_id)
			return true;
	return false;
}

/*
 * Follow the memslots of new VM @vm_id.  An entry is free when its VM is
 * another process's (inherited with fork) or closed here: nobody can
 * change its memslots any more.
 */
static void vm_model_new(struct fuzz *f, int vm_id)
{
	int i;

	for (i = 0; i < MAX_VM_MODELS; i++) {
		if (f->vms[i].pid == getpid() && vm_open(f, f->vms[i].vm_id))
			continue;
		memset(&f->vms[i], 0, sizeof(f->vms[i]));
		f->vms[i].pid = getpid();
		f->vms[i].vm_id = vm_id;
		return;
	}
	fail(f, "no room to model VM %d (at most %d VMs of ours are open)", vm_id,
	     MAX_VM_MODELS);
}

static struct mslot *mslot_find(struct vm_model *mv, uint32_t id)
{
	int i;

	for (i = 0; mv && i < mv->n; i++)
		if (mv->s[i].id == id)
			return &mv->s[i];
	return NULL;
}

/*
 * Would memslot @m of gmem file @ino overlap another of the VM, in guest
 * physical addresses (EEXIST) or in the file (EINVAL)?
 */
static bool mslot_overlap(struct vm_model *mv, const struct kvm_userspace_memory_region2 *m,
			  uint64_t ino)
{
	uint64_t end = m->guest_phys_addr + m->memory_size;
	uint64_t off_end = m->guest_memfd_offset + m->memory_size;
	int i;

	for (i = 0; i < mv->n; i++) {
		const struct mslot *s = &mv->s[i];

		if (s->gpa < end && m->guest_phys_addr < s->gpa + s->size)
			return true;
		if (s->gm && s->ino == ino && s->off < off_end &&
		    m->guest_memfd_offset < s->off + s->size)
			return true;
	}
	return false;
}

/* One of our fds of gmem file @ino (none while racing). */
static struct ffd *gmem_ffd_of(struct fuzz *f, uint64_t ino)
{
	int i;

	for (i = 0; i < MAX_FDS && !f->racing; i++)
		if (f->fds[i].kind == K_GMEM && f->fds[i].ino == ino)
			return &f->fds[i];
	return NULL;
}

/* ---- the attribute model ---- */

static void reap(struct fuzz *f, bool wait_all);

/* A child of ours may now hold the file @ino too (every file: @ino 0). */
static void share(struct fuzz *f, uint64_t ino)
{
	int i;

	for (i = 0; i < MAX_FDS; i++)
		if (f->fds[i].kind == K_GMEM && (!ino || f->fds[i].ino == ino))
			f->fds[i].shared = true;
}

/*
 * Can the results of calls on the file of @d be predicted from this
 * process's own calls?  Not in a child (its parent holds the file), nor
 * while fds are closed under us, nor while a child holds the file too.
 * Once every child is gone, every file is ours alone again.
 */
static bool sole_holder(struct fuzz *f, struct ffd *d)
{
	int i;

	if (f->child || f->racing)
		return false;
	if (!d->shared)
		return true;
	reap(f, false);
	for (i = 0; i < MAX_CHILDREN; i++)
		if (f->kids[i])
			return false;
	for (i = 0; i < MAX_FDS; i++)
		f->fds[i].shared = false;
	return true;
}

static void count_exact(struct fuzz *f, enum exact what)
{
	atomic_fetch_add(&f->sh->exact[what], 1);
}

/* The attributes that GMEM_CREATE's @flags give every page. */
static uint64_t create_attrs(uint64_t flags)
{
	return (flags & GMEM_CREATE_NOALLOC ? GMEM_ATTR_NOALLOC : 0) |
	       (flags & GMEM_CREATE_USERFAULT ? GMEM_ATTR_USERFAULT : 0);
}

/* The range rules of SET and GMEM_WRITE: page aligned, non-empty, inside. */
static bool range_ok(uint64_t size, uint64_t off, uint64_t len)
{
	uint64_t end;

	return len && !(off % PAGE) && !(len % PAGE) &&
	       !__builtin_add_overflow(off, len, &end) && end <= size;
}

static bool reserved_set(const __u64 *reserved, int n)
{
	while (n--)
		if (reserved[n])
			return true;
	return false;
}

/*
 * What a successful GMEM_GET_ATTRIBUTES at @off of @d must have written:
 * known attributes, the run length of whole pages inside the file, mask
 * GMEM_ATTRS, the input fields as they were.
 */
static bool check_get(struct fuzz *f, struct ffd *d, uint64_t off,
		      const struct gmem_attributes *a, const char *what)
{
	if ((a->attributes & ~GMEM_ATTRS) || a->mask != GMEM_ATTRS ||
	    !a->size || a->size % PAGE || a->size > d->size - off ||
	    a->offset != off || a->flags || reserved_set(a->reserved, 3)) {
		fail(f, "%s returned attributes %#llx size %#llx mask %#llx offset %#llx flags %#llx",
		     what, (unsigned long long)a->attributes, (unsigned long long)a->size,
		     (unsigned long long)a->mask, (unsigned long long)a->offset,
		     (unsigned long long)a->flags);
		return false;
	}
	return true;
}

/*
 * A valid GMEM_GET_ATTRIBUTES at @off, judged and checked.  Returns
 * whether it succeeded, with the result in @a.
 */
static bool get_attrs(struct fuzz *f, struct ffd *d, uint64_t off, struct gmem_attributes *a)
{
	struct expect x = { .ok = true };
	char what[96];
	long r;

	memset(a, 0, sizeof(*a));
	a->offset = off;
	r = ioctl(d->fd, GMEM_GET_ATTRIBUTES, a);
	snprintf(what, sizeof(what), "GMEM_GET_ATTRIBUTES(file %llu size %#llx, offset %#llx)",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 (unsigned long long)off);
	judge(f, GMEM_ABI_GET_ATTRS, &x, r, errno, what);
	return !r && check_get(f, d, off, a, what);
}

/* ---- operations ---- */

static struct ffd *add_gmem(struct fuzz *f, int fd, uint64_t size, uint64_t flags,
			    bool limited)
{
	struct ffd *d = slot(f);
	struct stat st;
	int fdflags = fcntl(fd, F_GETFD);

	if (fstat(fd, &st)) {
		fail(f, "fstat of a new gmem fd: %s", errname(errno));
		close(fd);
		return NULL;
	}
	/* A file made by the cgroup helper came over a socket: no O_CLOEXEC. */
	if (!limited && !!(fdflags & FD_CLOEXEC) != !!(flags & GMEM_CREATE_CLOEXEC))
		fail(f, "GMEM_CREATE flags %#" PRIx64 " gave FD_CLOEXEC %d", flags,
		     !!(fdflags & FD_CLOEXEC));
	d->fd = fd;
	d->kind = K_GMEM;
	d->size = size;
	d->ino = st.st_ino;
	d->limited = limited;
	return d;
}

static int memcg_enter(struct fuzz *f, bool in)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_str(in ? MEMCG_DIR "/cgroup.procs" : "/sys/fs/cgroup/cgroup.procs", pid);
}

static int send_fds(int sock, const int *fds, int n);
static int recv_fds(int sock, int *fds, int flags);

/*
 * GMEM_CREATE from a helper process in the small memory cgroup, so that
 * the file is charged there while no process of ours ever lives in it
 * (a full cgroup with a task in it would call the OOM killer on any
 * allocation of that task).  Only with room left in the cgroup, and
 * nobody filling it meanwhile.  Returns the ioctl's result, with the
 * new fd passed back over a socket.
 */
static long create_in_memcg(struct fuzz *f, int dev, void *arg, int *err)
{
	uint64_t cur, max = MEMCG_LIMIT;
	int sv[2], fd, res[2] = { -1, 0 }, st;
	pid_t pid;
	long r = -2;

	pthread_rwlock_wrlock(&f->sh->memcg_lock);
	cur = read_u64(MEMCG_DIR "/memory.current");
	if (cur + (4ULL << 20) > max ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		goto out;
	pid = fork();
	if (!pid) {
		close(sv[0]);
		if (memcg_enter(f, true))
			_exit(1);
		res[0] = ioctl(dev, GMEM_CREATE, arg);
		res[1] = errno;
		/* The fd travels as SCM_RIGHTS; a failure as "-1, errno". */
		if (res[0] >= 0 ? send_fds(sv[1], res, 1) :
		    write(sv[1], res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(sv[1]);
	if (pid > 0) {
		char ctl[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { .iov_base = res, .iov_len = sizeof(res) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		struct cmsghdr *c;
		ssize_t n;

		do {
			n = recvmsg(sv[0], &msg, 0);
		} while (n < 0 && errno == EINTR);
		c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
		if (c && c->cmsg_type == SCM_RIGHTS) {
			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			r = fd;
		} else if (n == sizeof(res)) {
			r = -1;
			*err = res[1];
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	close(sv[0]);
out:
	pthread_rwlock_unlock(&f->sh->memcg_lock);
	return r;
}

/*
 * A new file has the attributes of its GMEM_CREATE flags on every page:
 * one run, the whole file.  Nobody else has the file yet.
 */
static void check_new_file(struct fuzz *f, struct ffd *d, uint64_t flags)
{
	struct gmem_attributes a;

	if (!get_attrs(f, d, 0, &a))
		return;
	if (a.attributes != create_attrs(flags) || a.size != d->size)
		fail(f, "new file of size %#llx, GMEM_CREATE flags %#llx: GET at 0 says attributes %#llx for %#llx bytes",
		     (unsigned long long)d->size, (unsigned long long)flags,
		     (unsigned long long)a.attributes, (unsigned long long)a.size);
	count_exact(f, X_CREATE_ATTRS);
}

/* GMEM_CREATE with @arg (a struct gmem_create, or a bad pointer) on @dev. */
static void do_create(struct fuzz *f, struct ffd *dev, void *arg, enum arg_kind ak)
{
	struct gmem_create c = { 0 };
	struct expect x = { 0 };
	bool limited = f->memcg && chance(f, 20), arg_ok = ak != ARG_BAD;
	struct ffd *d;
	char what[160];
	unsigned int i;
	long r;
	int err = 0;

	if (arg_ok)
		memcpy(&c, arg, sizeof(c));
	pthread_rwlock_rdlock(&f->sh->param_lock);
	if (!arg_ok)
		allow(&x, EFAULT);
	if (!dev->writable)
		allow(&x, EBADF);
	for (i = 0; i < 6; i++)
		if (c.reserved[i] && arg_ok)
			allow(&x, EINVAL);
	if (arg_ok && ((c.flags & ~GMEM_CREATE_FLAGS) || !c.size || c.size % PAGE ||
		       c.size > f->sh->max_file_size))
		allow(&x, EINVAL);
	x.ok = !x.n;
	r = -2;
	if (limited)
		r = create_in_memcg(f, dev->fd, arg, &err);
	if (r == -2) {
		limited = false;
		arm(f);
		r = ioctl(dev->fd, GMEM_CREATE, arg);
		err = errno;
		disarm(f);
	}
	pthread_rwlock_unlock(&f->sh->param_lock);
	snprintf(what, sizeof(what), "GMEM_CREATE(%s{size %#llx flags %#llx res0 %#llx})%s%s",
		 arg_ok ? "" : "bad pointer ", (unsigned long long)c.size,
		 (unsigned long long)c.flags, (unsigned long long)c.reserved[0],
		 dev->writable ? "" : " on O_RDONLY", limited ? " in the small cgroup" : "");
	judge(f, GMEM_ABI_CREATE, &x, r, err, what);
	if (r >= 0) {
		if (x.ok && !f->racing) {
			d = add_gmem(f, r, c.size, c.flags, limited);
			if (d)
				check_new_file(f, d, c.flags);
		} else {
			close(r);
		}
	}
}

static struct ffd *open_dev(struct fuzz *f)
{
	static const int modes[] = { O_RDWR, O_RDWR, O_RDONLY, O_WRONLY };
	int mode = modes[below(f, 4)] | (chance(f, 50) ? O_CLOEXEC : 0);
	struct expect x = { .ok = true };
	struct ffd *d;
	int fd = open(GMEM_DEV, mode);

	judge(f, GMEM_ABI_DEV_OPEN, &x, fd, errno, "open(/dev/gmem)");
	if (fd < 0)
		return NULL;
	d = slot(f);
	d->fd = fd;
	d->kind = K_DEV;
	d->writable = (mode & O_ACCMODE) != O_RDONLY;
	return d;
}

static void op_open_dev(struct fuzz *f)
{
	open_dev(f);
}

static void op_create(struct fuzz *f)
{
	struct ffd *dev = pick(f, M_DEV);
	struct gmem_create c = { 0 };

	if (!dev)
		dev = open_dev(f);
	if (!dev)
		return;
	if (chance(f, 70)) {
		c.size = file_size(f);
		c.flags = below(f, GMEM_CREATE_FLAGS + 1) & GMEM_CREATE_FLAGS;
	} else {
		c.size = chance(f, 50) ? file_size(f) : interesting(f, 1 << 20);
		c.flags = chance(f, 50) ? 1ULL << below(f, 64) : rnd(f) >> below(f, 64);
	}
	if (chance(f, 10))
		c.reserved[below(f, 6)] = rnd(f) | 1;
	if (chance(f, 5)) {
		do_create(f, dev, bad_ptr(f, sizeof(c)), ARG_BAD);
		return;
	}
	/* Random bytes after the struct must not matter. */
	fill_random(f, f->buf, 4 * PAGE);
	memcpy(f->buf, &c, sizeof(c));
	do_create(f, dev, f->buf, ARG_RW);
}

/*
 * A gmem fd; half the time one that has a VM (bound, or for life), if
 * one of four candidates is.  Always four draws: which files
 * other processes bound must not change what this process draws next.
 */
static struct ffd *pick_gmem(struct fuzz *f)
{
	bool bound = chance(f, 50);
	struct ffd *c[4];
	int i;

	for (i = 0; i < 4; i++)
		c[i] = pick(f, M_GMEM);
	for (i = 0; bound && c[0] && i < 4; i++)
		if (owner_of(f, c[i]->ino) >= 0)
			return c[i];
	return c[0];
}

/*
 * A range of a file of @size for SET or GMEM_WRITE: mostly page aligned,
 * inside the file and at most @max_pages long, the whole file in @whole
 * percent of the cases; sometimes anything (unaligned, empty, past the
 * end, wrapping).
 */
static void pick_range(struct fuzz *f, uint64_t size, uint64_t max_pages,
		       unsigned int whole, __u64 *off, __u64 *len)
{
	uint64_t pages = size / PAGE, first;

	if (!pages || chance(f, 15)) {
		*off = interesting(f, size);
		*len = chance(f, 50) ? interesting(f, size) : interesting(f, 16 * PAGE);
		return;
	}
	if (chance(f, whole)) {
		*off = 0;
		*len = size;
		return;
	}
	first = below(f, pages);
	*off = first * PAGE;
	*len = (1 + below(f, pages - first < max_pages ? pages - first : max_pages)) * PAGE;
}

/*
 * After a successful SET of @a on @d, with nobody else at the file: every
 * run of the range has the new bits and differs from the run before it,
 * the pages next to the range kept their attributes (@edge, read before
 * the SET when @has_edge), and the runs at both ends of the range extend
 * past it exactly when the page beyond has the same attributes.
 */
static void check_set(struct fuzz *f, struct ffd *d, const struct gmem_attributes *a,
		      const bool *has_edge, const struct gmem_attributes *edge,
		      const char *what)
{
	uint64_t off = a->offset, end = a->offset + a->size, run_end = 0;
	uint64_t first = 0, prev = 0;
	struct gmem_attributes g;
	bool crosses, alike;
	int i;

	for (i = 0; off < end; i++) {
		if (i == WALK_MAX)
			return;		/* too many runs to follow */
		if (!get_attrs(f, d, off, &g))
			return;
		if ((g.attributes & a->mask) != a->attributes ||
		    (i && g.attributes == prev) ||
		    (i && a->mask == GMEM_ATTRS)) {
			fail(f, "%s: then GET at %#llx says attributes %#llx for %#llx bytes (run %d of the range)",
			     what, (unsigned long long)off, (unsigned long long)g.attributes,
			     (unsigned long long)g.size, i);
			return;
		}
		if (!i)
			first = g.attributes;
		prev = g.attributes;
		run_end = off + g.size;
		off = run_end;
	}
	count_exact(f, X_SET_GET);
	/* A run crosses an end of the range exactly when both sides are alike. */
	if (has_edge[0] && get_attrs(f, d, a->offset - PAGE, &g)) {
		crosses = g.size > PAGE;
		alike = g.attributes == first;
		if (g.attributes != edge[0].attributes || crosses != alike)
			fail(f, "%s: the page before the range had attributes %#llx, now %#llx for %#llx bytes",
			     what, (unsigned long long)edge[0].attributes,
			     (unsigned long long)g.attributes, (unsigned long long)g.size);
	}
	if (has_edge[1] && get_attrs(f, d, end, &g)) {
		crosses = run_end > end;
		alike = g.attributes == prev;
		if (g.attributes != edge[1].attributes || crosses != alike)
			fail(f, "%s: the page after the range had attributes %#llx, now %#llx; the last run of the range ends at %#llx",
			     what, (unsigned long long)edge[1].attributes,
			     (unsigned long long)g.attributes, (unsigned long long)run_end);
	}
	if (has_edge[0] || has_edge[1])
		count_exact(f, X_SET_EDGES);
}

/*
 * ioctl(@cmd) on @d, returning its result and errno in *@err.  What it
 * allocates is charged to the file's cgroup: on a file of the small
 * cgroup it runs under memcg_lock, as fallocate does.
 */
static long charged_ioctl(struct fuzz *f, struct ffd *d, unsigned long cmd, void *arg,
			  int *err)
{
	long r;

	if (d->limited)
		pthread_rwlock_rdlock(&f->sh->memcg_lock);
	arm(f);
	r = ioctl(d->fd, cmd, arg);
	*err = errno;
	disarm(f);
	if (d->limited)
		pthread_rwlock_unlock(&f->sh->memcg_lock);
	return r;
}

/*
 * GMEM_SET_ATTRIBUTES on @d with @arg, its struct as @ak says.  A valid
 * call must succeed (or run out of memory, or be interrupted), and is
 * checked with GETs when nobody else can change the file meanwhile.
 */
static void do_set_attrs(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak)
{
	struct gmem_attributes a = { 0 }, edge[2];
	bool check, has_edge[2] = { false, false };
	struct expect x = { 0 };
	char what[224];
	long r;
	int err;

	if (ak != ARG_BAD)
		memcpy(&a, arg, sizeof(a));
	if (ak == ARG_BAD)
		allow(&x, EFAULT);
	else if (a.flags || reserved_set(a.reserved, 3) || !a.mask ||
		 (a.mask & ~GMEM_ATTRS) || (a.attributes & ~a.mask) ||
		 !range_ok(d->size, a.offset, a.size))
		allow(&x, EINVAL);
	x.ok = !x.n;
	check = x.ok && sole_holder(f, d);
	if (check && a.offset) {
		has_edge[0] = get_attrs(f, d, a.offset - PAGE, &edge[0]);
		check = has_edge[0];
	}
	if (check && a.offset + a.size < d->size) {
		has_edge[1] = get_attrs(f, d, a.offset + a.size, &edge[1]);
		check = has_edge[1];
	}
	/* Its runs are charged to the file's cgroup, as its pages are. */
	r = charged_ioctl(f, d, GMEM_SET_ATTRIBUTES, arg, &err);
	snprintf(what, sizeof(what),
		 "GMEM_SET_ATTRIBUTES(file %llu size %#llx%s, %s{offset %#llx size %#llx attributes %#llx mask %#llx flags %#llx})",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 owner_of(f, d->ino) >= 0 ? " bound" : "",
		 ak == ARG_BAD ? "bad pointer " : ak == ARG_RO ? "read-only " : "",
		 (unsigned long long)a.offset, (unsigned long long)a.size,
		 (unsigned long long)a.attributes, (unsigned long long)a.mask,
		 (unsigned long long)a.flags);
	judge(f, GMEM_ABI_SET_ATTRS, &x, r, err, what);
	if (!r && check)
		check_set(f, d, &a, has_edge, edge, what);
}

static void op_set_attrs(struct fuzz *f)
{
	struct ffd *d = pick_gmem(f);
	struct gmem_attributes a = { 0 };
	enum arg_kind ak;
	void *arg;

	if (!d)
		return;
	pick_range(f, d->size, chance(f, 70) ? 16 : 4096, 5, &a.offset, &a.size);
	if (chance(f, 85))
		a.mask = 1 + below(f, GMEM_ATTRS);	/* a non-empty set of known bits */
	else
		a.mask = chance(f, 50) ? 1ULL << below(f, 64) : rnd(f) >> below(f, 64);
	a.attributes = rnd(f) & a.mask;
	if (chance(f, 5))
		a.attributes |= 1ULL << below(f, 64);
	if (chance(f, 4))
		a.flags = 1ULL << below(f, 64);
	if (chance(f, 4))
		a.reserved[below(f, 3)] = rnd(f) | 1;
	arg = place_arg(f, &a, sizeof(a), &ak);
	do_set_attrs(f, d, arg, ak);
}

/*
 * Walk the runs of a file from offset 0, as a VMM does: they follow each
 * other up to the file size and, when nobody else changes the file
 * meanwhile, neighbours never have the same attributes.
 */
static void attr_walk(struct fuzz *f, struct ffd *d)
{
	struct gmem_attributes a;
	uint64_t off = 0, prev = 0;
	bool strict = sole_holder(f, d);
	int i;

	for (i = 0; i < WALK_MAX && off < d->size; i++) {
		if (!get_attrs(f, d, off, &a))
			return;
		if (strict && i && a.attributes == prev) {
			fail(f, "walk of file %llu: the runs before and from %#llx both have attributes %#llx",
			     (unsigned long long)d->ino, (unsigned long long)off,
			     (unsigned long long)prev);
			return;
		}
		prev = a.attributes;
		off += a.size;
	}
	if (strict && off == d->size)
		count_exact(f, X_WALK);
}

/* GMEM_GET_ATTRIBUTES on @d with @arg, its struct as @ak says. */
static void do_get_attrs(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak)
{
	struct gmem_attributes a = { 0 }, out;
	struct expect x = { 0 };
	char what[160];
	long r;
	int err;

	if (ak != ARG_BAD)
		memcpy(&a, arg, sizeof(a));
	if (ak == ARG_BAD)
		allow(&x, EFAULT);
	else if (a.flags || reserved_set(a.reserved, 3) || a.offset % PAGE || a.offset >= d->size)
		allow(&x, EINVAL);
	else if (ak == ARG_RO)
		allow(&x, EFAULT);	/* read, but the result cannot be stored */
	x.ok = !x.n;
	r = ioctl(d->fd, GMEM_GET_ATTRIBUTES, arg);
	err = errno;
	snprintf(what, sizeof(what),
		 "GMEM_GET_ATTRIBUTES(file %llu size %#llx, %s{offset %#llx flags %#llx})",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 ak == ARG_BAD ? "bad pointer " : ak == ARG_RO ? "read-only " : "",
		 (unsigned long long)a.offset, (unsigned long long)a.flags);
	judge(f, GMEM_ABI_GET_ATTRS, &x, r, err, what);
	if (!r && ak == ARG_RW) {
		memcpy(&out, arg, sizeof(out));
		check_get(f, d, a.offset, &out, what);
	}
}

static void op_get_attrs(struct fuzz *f)
{
	struct ffd *d = pick_gmem(f);
	struct gmem_attributes a;
	enum arg_kind ak;
	void *arg;

	if (!d)
		return;
	if (chance(f, 30)) {
		attr_walk(f, d);
		return;
	}
	/* Garbage in the fields that are output only: GET must ignore it. */
	fill_random(f, &a, sizeof(a));
	a.offset = chance(f, 85) ? below(f, d->size / PAGE) * PAGE : interesting(f, d->size);
	a.flags = chance(f, 4) ? 1ULL << below(f, 64) : 0;
	memset(a.reserved, 0, sizeof(a.reserved));
	if (chance(f, 4))
		a.reserved[below(f, 3)] = rnd(f) | 1;
	arg = place_arg(f, &a, sizeof(a), &ak);
	do_get_attrs(f, d, arg, ak);
}

/* Over the allocation budget: punch the range, so that a write only refills it. */
static void make_room(struct fuzz *f, struct ffd *d, uint64_t off, uint64_t len)
{
	struct expect x = { .ok = true };
	long r;

	r = fallocate(d->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, off, len);
	judge(f, GMEM_ABI_FALLOCATE, &x, r, errno, "fallocate(punch before GMEM_WRITE)");
}

/*
 * GMEM_WRITE on @d with @arg, its struct as @ak says.  No guest runs in
 * the fuzzer, so no page was ever handed to one and none may be refused
 * (EPERM): a valid call writes every whole page its source can give, and
 * `written` says exactly how many.
 */
static void do_write(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak)
{
	struct gmem_write w = { 0 }, out;
	struct expect x = { 0 };
	uint64_t can = 0;
	char what[224];
	bool valid;
	long r;
	int err;

	if (ak != ARG_BAD)
		memcpy(&w, arg, sizeof(w));
	valid = ak != ARG_BAD && !w.flags && !reserved_set(w.reserved, 3) &&
		range_ok(d->size, w.offset, w.size);
	if (ak == ARG_BAD)
		allow(&x, EFAULT);
	else if (!valid)
		allow(&x, EINVAL);
	else if (ak == ARG_RO)
		allow(&x, EFAULT);	/* the pages are written, but not `written` */
	if (valid) {
		can = readable(f, (const char *)(uintptr_t)w.user_addr) / PAGE * PAGE;
		if (can > w.size)
			can = w.size;
		/* The source runs out: EFAULT at the first page it cannot give. */
		if (can < w.size) {
			allow(&x, EFAULT);
			allow(&x, ENOMEM);
			allow(&x, EINTR);
		}
	}
	x.ok = !x.n;
	if (valid && !d->limited && read_u64(SYSFS_BYTES) > ALLOC_BUDGET)
		make_room(f, d, w.offset, w.size);
	r = charged_ioctl(f, d, GMEM_WRITE, arg, &err);
	snprintf(what, sizeof(what),
		 "GMEM_WRITE(file %llu size %#llx%s, %s{offset %#llx size %#llx, source of %#llx bytes, flags %#llx})",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 owner_of(f, d->ino) >= 0 ? " bound" : "",
		 ak == ARG_BAD ? "bad pointer " : ak == ARG_RO ? "read-only " : "",
		 (unsigned long long)w.offset, (unsigned long long)w.size,
		 (unsigned long long)readable(f, (const char *)(uintptr_t)w.user_addr),
		 (unsigned long long)w.flags);
	judge(f, GMEM_ABI_WRITE, &x, r, err, what);
	if (ak != ARG_RW)
		return;
	memcpy(&out, arg, sizeof(out));
	if (!valid || (r < 0 && err == EBADF)) {
		/* Nothing was written; `written` stays or says so. */
		if (out.written != w.written && out.written)
			fail(f, "%s: written %#llx after a call that wrote nothing", what,
			     (unsigned long long)out.written);
		return;
	}
	if (!r ? out.written != w.size :
	    err == EFAULT ? out.written != can : out.written > can || out.written % PAGE)
		fail(f, "%s = %ld %s: written %#llx, the source could give %#llx bytes", what, r,
		     r < 0 ? errname(err) : "", (unsigned long long)out.written,
		     (unsigned long long)can);
	else
		count_exact(f, X_WRITTEN);
}

static void op_write(struct fuzz *f)
{
	struct ffd *d = pick_gmem(f);
	struct gmem_write w = { .written = WRITTEN_UNSET };
	uint64_t len, room;
	enum arg_kind ak;
	const char *src;
	void *arg;

	if (!d)
		return;
	/* Mostly a few pages: every page written is a page allocated and copied. */
	pick_range(f, d->size, chance(f, 90) ? 4 : chance(f, 90) ? 64 : SRC_PAGES, 1,
		   &w.offset, &w.size);
	len = w.size < SRC_PAGES * PAGE ? w.size : SRC_PAGES * PAGE;
	/* A long range mostly gets a source that runs out after 64 pages. */
	if (len > 64 * PAGE && chance(f, 80))
		len = 64 * PAGE;
	room = SRC_PAGES * PAGE - len;
	switch (below(f, 10)) {
	case 0:
		/* Nothing readable, or less than asked for. */
		src = bad_ptr(f, 2 * PAGE);
		break;
	case 1:
		/* The source ends inside the range, maybe mid-page. */
		src = f->guard - below(f, len + 1);
		break;
	default:
		/* @len bytes of source (all the range needs, but for long ranges). */
		src = f->guard - len - (chance(f, 20) ? below(f, room + 1) :
					below(f, room / PAGE + 1) * PAGE);
		break;
	}
	w.user_addr = (uintptr_t)src;
	if (chance(f, 4))
		w.flags = 1ULL << below(f, 64);
	if (chance(f, 4))
		w.reserved[below(f, 3)] = rnd(f) | 1;
	arg = place_arg(f, &w, sizeof(w), &ak);
	do_write(f, d, arg, ak);
}

/* ---- the memory policy model ---- */

/*
 * The nodes of a policy as the fuzzer sees them: NODE_BITS bits, more
 * than the kernel's MAX_NUMNODES (a bit at or above that is EINVAL).
 */
static void nbit_set(unsigned long *m, uint64_t n)
{
	m[n / LONG_BITS] |= 1UL << (n % LONG_BITS);
}

static bool nbit_test(const unsigned long *m, uint64_t n)
{
	return m[n / LONG_BITS] & (1UL << (n % LONG_BITS));
}

static bool nodes_empty(const unsigned long *m)
{
	for (int i = 0; i < NODE_WORDS; i++)
		if (m[i])
			return false;
	return true;
}

/* Bytes of a node mask of @maxnode bits: whole words. */
static uint64_t mask_bytes(uint64_t maxnode)
{
	return (maxnode + LONG_BITS - 1) / LONG_BITS * sizeof(long);
}

/*
 * What a GMEM_SET_MEMPOLICY of @p would set, as GET reads it back: the
 * mode with its node flags, and the nodes used (those with memory; the
 * first for MPOL_PREFERRED) or, with a node flag, the nodes as given.
 */
struct policy {
	uint32_t mode;
	unsigned long nodes[NODE_WORDS];
};

/*
 * The model of GMEM_SET_MEMPOLICY: the errnos that @p (its struct, as
 * @ak says) may fail with go to @x, what a successful call sets to @set.
 * Every rule the call breaks may be the one reported.  Returns whether
 * the call sets a policy when it does not fail with an errno of @x
 * before (EIO: set all the same).
 */
static bool model_set_policy(struct fuzz *f, struct ffd *d, const struct gmem_mempolicy *p,
			     enum arg_kind ak, struct expect *x, struct policy *set)
{
	const uint32_t node_flags = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES;
	uint32_t base = p->mode & ~(node_flags | MPOL_F_NUMA_BALANCING);
	uint32_t nf = p->mode & node_flags;
	unsigned long given[NODE_WORDS] = { 0 }, eff[NODE_WORDS];
	bool bad = false, known = true, relative = nf & MPOL_F_RELATIVE_NODES;
	uint64_t i;
	int w;

	memset(set, 0, sizeof(*set));
	if (ak == ARG_BAD) {
		allow(x, EFAULT);
		return false;
	}
	if ((p->flags & ~MPOL_MF_STRICT) || (p->mode & MPOL_F_NUMA_BALANCING) ||
	    reserved_set(p->reserved, 3) || !range_ok(d->size, p->offset, p->size) ||
	    base >= MPOL_MAX || nf == node_flags || p->maxnode > MAXNODE_LIMIT)
		bad = true;
	if (p->maxnode && p->maxnode <= MAXNODE_LIMIT) {
		const unsigned long *m = (const unsigned long *)(uintptr_t)p->nodemask;

		/* The mask is read whole, or EFAULT. */
		if (readable(f, (const char *)m) < mask_bytes(p->maxnode)) {
			allow(x, EFAULT);
			known = false;
		} else {
			for (i = 0; i < p->maxnode; i++) {
				if (!nbit_test(m, i))
					continue;
				if (i >= (uint64_t)f->max_nodes)
					bad = true;
				else
					nbit_set(given, i);
			}
		}
	}
	for (w = 0; w < NODE_WORDS; w++)
		eff[w] = given[w] & f->mem_nodes[w];
	/* The mode against the nodes, when nothing else is wrong with them. */
	if (known && !bad) {
		set->mode = base | nf;
		switch (base) {
		case MPOL_DEFAULT:
			/* No policy: GET says MPOL_DEFAULT, node flags or not. */
			bad = !nodes_empty(given);
			set->mode = MPOL_DEFAULT;
			break;
		case MPOL_LOCAL:
			bad = !nodes_empty(given) || nf;
			break;
		case MPOL_PREFERRED:
			if (nodes_empty(given)) {
				bad = nf;
				set->mode = MPOL_LOCAL;
				break;
			}
			bad = !relative && nodes_empty(eff);
			if (nf)
				memcpy(set->nodes, given, sizeof(given));
			else if (!bad)
				for (i = 0; i < NODE_BITS; i++)
					if (nbit_test(eff, i)) {
						nbit_set(set->nodes, i);
						break;
					}
			break;
		default:
			bad = nodes_empty(given) || (!relative && nodes_empty(eff));
			memcpy(set->nodes, nf ? given : eff, sizeof(given));
			break;
		}
	}
	if (bad)
		allow(x, EINVAL);
	if (bad || !known)
		return false;
	/* A policy takes a range, splitting one makes two: the model does not count them. */
	allow(x, ENOSPC);
	/* Only with pages on two nodes can one sit on a node a policy does not name. */
	if ((p->flags & MPOL_MF_STRICT) && f->nr_mem_nodes > 1 &&
	    set->mode != MPOL_DEFAULT && set->mode != MPOL_LOCAL)
		allow(x, EIO);
	return true;
}

/*
 * What a successful GMEM_GET_MEMPOLICY stored: a mode it could have set,
 * and nodes (of @maxnode bits in @nodes, if any) below MAX_NUMNODES,
 * with memory unless the mode keeps them as given; none for
 * MPOL_DEFAULT and MPOL_LOCAL.
 */
static bool check_policy(struct fuzz *f, uint32_t mode, const unsigned long *nodes,
			 uint64_t maxnode, const char *what)
{
	const uint32_t node_flags = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES;
	uint32_t base = mode & ~node_flags, nf = mode & node_flags;
	bool none = base == MPOL_DEFAULT || base == MPOL_LOCAL;
	uint64_t i;

	if (base >= MPOL_MAX || nf == node_flags || (none && nf)) {
		fail(f, "%s: mode %#x", what, mode);
		return false;
	}
	for (i = 0; nodes && i < maxnode; i++) {
		if (!nbit_test(nodes, i))
			continue;
		if (none || i >= (uint64_t)f->max_nodes ||
		    (!nf && (i >= NODE_BITS || !nbit_test(f->mem_nodes, i)))) {
			fail(f, "%s: mode %#x with node %llu", what, mode, (unsigned long long)i);
			return false;
		}
	}
	return true;
}

/* A valid GMEM_GET_MEMPOLICY of @d at @off, judged and checked, into @out. */
static bool get_policy(struct fuzz *f, struct ffd *d, uint64_t off, struct policy *out)
{
	struct gmem_mempolicy p = {
		.offset = off, .mode = 0xdeadbeef,
		.nodemask = (uintptr_t)out->nodes, .maxnode = NODE_BITS,
	};
	struct expect x = { .ok = true };
	char what[112];
	long r;

	memset(out->nodes, 0xa5, sizeof(out->nodes));
	r = ioctl(d->fd, GMEM_GET_MEMPOLICY, &p);
	snprintf(what, sizeof(what), "GMEM_GET_MEMPOLICY(file %llu size %#llx, offset %#llx)",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 (unsigned long long)off);
	judge(f, GMEM_ABI_GET_MEMPOLICY, &x, r, errno, what);
	out->mode = p.mode;
	return !r && check_policy(f, p.mode, out->nodes, NODE_BITS, what);
}

static bool same_policy(const struct policy *a, const struct policy *b)
{
	return a->mode == b->mode && !memcmp(a->nodes, b->nodes, sizeof(a->nodes));
}

static const char *policy_str(char *buf, size_t len, const struct policy *p)
{
	size_t o = snprintf(buf, len, "mode %#x nodes {", p->mode);
	int i;

	for (i = 0; i < NODE_BITS && o < len; i++)
		if (nbit_test(p->nodes, i))
			o += snprintf(buf + o, len - o, "%s%d", buf[o - 1] == '{' ? "" : ",", i);
	if (o < len)
		snprintf(buf + o, len - o, "}");
	return buf;
}

/*
 * GMEM_SET_MEMPOLICY on @d with @arg, its struct as @ak says.  A valid
 * call succeeds (or runs out of memory or ranges, or, strict, finds a
 * page elsewhere); when nobody else can change the file, GET then reads
 * the model's policy at both ends of the range and inside it, and the
 * pages around the range (and, after a refused call, in it) kept theirs.
 */
static void do_set_policy(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak)
{
	struct gmem_mempolicy p = { 0 };
	struct policy want, edge[3], got;
	bool check, has_edge[3] = { false, false, false }, sets;
	struct expect x = { 0 };
	uint64_t at[3] = { 0, 0, 0 }, end = 0;
	char what[224], b1[96], b2[96];
	int i, err;
	long r;

	if (ak != ARG_BAD)
		memcpy(&p, arg, sizeof(p));
	/* Valid: success, or only ENOSPC and EIO (and what judge() allows). */
	sets = model_set_policy(f, d, &p, ak, &x, &want);
	x.ok = sets;
	check = sole_holder(f, d) && ak != ARG_BAD;
	/* The page before the range, the one after it, and its first one. */
	at[0] = p.offset - PAGE;
	if (!__builtin_add_overflow(p.offset, p.size, &end))
		at[1] = end;
	at[2] = p.offset;
	for (i = 0; check && i < 3; i++)
		if (!(at[i] % PAGE) && at[i] < d->size && (i != 0 || p.offset) &&
		    (i != 1 || end > p.offset))
			has_edge[i] = get_policy(f, d, at[i], &edge[i]);
	r = charged_ioctl(f, d, GMEM_SET_MEMPOLICY, arg, &err);
	snprintf(what, sizeof(what),
		 "GMEM_SET_MEMPOLICY(file %llu size %#llx, %s{offset %#llx size %#llx mode %#x flags %#x maxnode %llu mask %s})",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 ak == ARG_BAD ? "bad pointer " : ak == ARG_RO ? "read-only " : "",
		 (unsigned long long)p.offset, (unsigned long long)p.size, p.mode, p.flags,
		 (unsigned long long)p.maxnode, policy_str(b1, sizeof(b1), &want));
	judge(f, GMEM_ABI_SET_MEMPOLICY, &x, r, err, what);
	if (!check)
		return;
	if (r && err != EIO) {
		/* Refused: the range's first page kept its policy. */
		if (has_edge[2] && get_policy(f, d, at[2], &got)) {
			if (!same_policy(&got, &edge[2]))
				fail(f, "%s = %s: the first page had %s, now %s", what,
				     errname(err), policy_str(b1, sizeof(b1), &edge[2]),
				     policy_str(b2, sizeof(b2), &got));
			else
				count_exact(f, X_POLICY_KEPT);
		}
		return;
	}
	if (!sets)
		return;
	/* Set: the first, the last and the middle page of the range have it. */
	at[2] = p.offset + p.size / PAGE / 2 * PAGE;
	for (i = 0; i < 3; i++) {
		uint64_t off = i == 0 ? p.offset : i == 1 ? end - PAGE : at[2];

		if (!get_policy(f, d, off, &got))
			return;
		if (!same_policy(&got, &want)) {
			fail(f, "%s = %ld: GET at %#llx says %s, expected %s", what, r,
			     (unsigned long long)off, policy_str(b1, sizeof(b1), &got),
			     policy_str(b2, sizeof(b2), &want));
			return;
		}
	}
	count_exact(f, X_POLICY_GET);
	for (i = 0; i < 2; i++) {
		if (!has_edge[i] || !get_policy(f, d, at[i], &got))
			continue;
		if (!same_policy(&got, &edge[i])) {
			fail(f, "%s: the page %s the range had %s, now %s", what,
			     i ? "after" : "before", policy_str(b1, sizeof(b1), &edge[i]),
			     policy_str(b2, sizeof(b2), &got));
			return;
		}
		count_exact(f, X_POLICY_KEPT);
	}
}

/* The bytes the fuzzer puts a mask of @maxnode bits in (one word if invalid). */
static uint64_t mask_room(uint64_t maxnode)
{
	return maxnode && maxnode <= MAXNODE_LIMIT ? mask_bytes(maxnode) : sizeof(long);
}

/*
 * Where a mask of @maxnode bits goes: its last word ends at the guard
 * page, so that reading or writing one byte more faults.
 */
static unsigned long *mask_at_guard(struct fuzz *f, uint64_t maxnode)
{
	return (unsigned long *)(f->guard - mask_room(maxnode));
}

/* A @maxnode for a node mask: mostly plenty, often at an edge. */
static uint64_t pick_maxnode(struct fuzz *f)
{
	switch (below(f, 18)) {
	case 0:
		return 0;
	case 1:
		return 1 + below(f, 4);
	case 2:
		return f->nr_node_ids;
	case 3:
		return f->nr_node_ids - 1;
	case 4:
		return f->max_nodes;
	case 5:
		return f->max_nodes + 1 + below(f, LONG_BITS);
	case 6:
		return LONG_BITS * (1 + below(f, 4));
	case 7:
		return MAXNODE_LIMIT - below(f, 2);
	case 8:
		return chance(f, 50) ? MAXNODE_LIMIT + 1 : interesting(f, MAXNODE_LIMIT);
	default:
		return NODE_BITS;
	}
}

static void fill_mask(struct fuzz *f, unsigned long *m, uint64_t maxnode)
{
	uint64_t bits = mask_room(maxnode) * 8, n;
	int k = chance(f, 85) ? 1 + below(f, 3) : below(f, 4);

	memset(m, 0, bits / 8);
	while (k--) {
		switch (below(f, 14)) {
		case 0:
			n = f->nr_node_ids;
			break;
		case 1:
			n = f->max_nodes - 1;
			break;
		case 2:
			n = f->max_nodes;
			break;
		case 3:
			n = maxnode + below(f, LONG_BITS);
			break;
		case 4:
			n = below(f, bits);
			break;
		default:
			n = f->mem_node[below(f, f->nr_mem_nodes)];
			break;
		}
		if (n < bits)
			nbit_set(m, n);
	}
}

/*
 * A random policy on a random range.  The node mask (mostly nodes with
 * memory, sometimes nodes without, at or above MAX_NUMNODES, or bits past
 * @maxnode in its last word, which are no nodes) ends at the guard page.
 */
static void op_set_policy(struct fuzz *f)
{
	static const uint32_t node_flags[] = {
		0, 0, 0, 0, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES,
		MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING,
	};
	struct ffd *d = pick_gmem(f);
	struct gmem_mempolicy p = { 0 };
	bool in_buf = false;
	enum arg_kind ak;
	void *arg;

	if (!d)
		return;
	pick_range(f, d->size, chance(f, 70) ? 16 : 4096, 20, &p.offset, &p.size);
	if (chance(f, 90))
		p.mode = below(f, MPOL_MAX) | node_flags[below(f, ARRAY_SIZE(node_flags))];
	else
		p.mode = chance(f, 50) ? 1U << below(f, 32) : (uint32_t)rnd(f);
	if (chance(f, 15))
		p.flags = MPOL_MF_STRICT;
	else if (chance(f, 5))
		p.flags = chance(f, 50) ? MPOL_MF_MOVE << below(f, 2) : 1U << below(f, 32);
	p.maxnode = pick_maxnode(f);
	if (chance(f, 4))
		p.reserved[below(f, 3)] = rnd(f) | 1;
	if (chance(f, 6)) {
		p.nodemask = chance(f, 30) ? 0 : (uintptr_t)bad_ptr(f, mask_room(p.maxnode));
	} else {
		p.nodemask = (uintptr_t)mask_at_guard(f, p.maxnode);
		in_buf = true;
	}
	arg = place_arg(f, &p, sizeof(p), &ak);
	/* After place_arg(), which fills the pages before the guard. */
	if (in_buf)
		fill_mask(f, mask_at_guard(f, p.maxnode), p.maxnode);
	do_set_policy(f, d, arg, ak);
}

/* GMEM_GET_MEMPOLICY on @d with @arg, its struct as @ak says. */
static void do_get_policy(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak)
{
	struct gmem_mempolicy p = { 0 }, out;
	struct expect x = { 0 };
	uint64_t room = 0;
	char what[192];
	long r;
	int err;

	if (ak != ARG_BAD)
		memcpy(&p, arg, sizeof(p));
	if (p.maxnode && p.maxnode <= MAXNODE_LIMIT)
		room = readable(f, (const char *)(uintptr_t)p.nodemask);
	if (ak == ARG_BAD)
		allow(&x, EFAULT);
	else if (p.size || p.flags || reserved_set(p.reserved, 3) || p.offset % PAGE ||
		 p.offset >= d->size ||
		 (p.maxnode && (p.maxnode < (uint64_t)f->nr_node_ids || p.maxnode > MAXNODE_LIMIT)))
		allow(&x, EINVAL);
	else if (ak == ARG_RO || (p.maxnode && room < mask_bytes(p.maxnode)))
		allow(&x, EFAULT);	/* the mode or the nodes cannot be stored */
	x.ok = !x.n;
	arm(f);
	r = ioctl(d->fd, GMEM_GET_MEMPOLICY, arg);
	err = errno;
	disarm(f);
	snprintf(what, sizeof(what),
		 "GMEM_GET_MEMPOLICY(file %llu size %#llx, %s{offset %#llx size %#llx flags %#x maxnode %llu, room for %llu bytes})",
		 (unsigned long long)d->ino, (unsigned long long)d->size,
		 ak == ARG_BAD ? "bad pointer " : ak == ARG_RO ? "read-only " : "",
		 (unsigned long long)p.offset, (unsigned long long)p.size, p.flags,
		 (unsigned long long)p.maxnode, (unsigned long long)room);
	judge(f, GMEM_ABI_GET_MEMPOLICY, &x, r, err, what);
	if (r || ak != ARG_RW)
		return;
	memcpy(&out, arg, sizeof(out));
	p.mode = out.mode;
	if (memcmp(&p, &out, sizeof(p)))
		fail(f, "%s: changed a field other than mode", what);
	check_policy(f, out.mode, p.maxnode ? (const unsigned long *)(uintptr_t)p.nodemask : NULL,
		     p.maxnode, what);
}

static void op_get_policy(struct fuzz *f)
{
	struct ffd *d = pick_gmem(f);
	struct gmem_mempolicy p;
	enum arg_kind ak;
	void *arg;

	if (!d)
		return;
	/* Garbage in the field that is output only: GET must ignore it. */
	memset(&p, 0, sizeof(p));
	p.mode = (uint32_t)rnd(f);
	p.offset = chance(f, 85) ? below(f, d->size / PAGE) * PAGE : interesting(f, d->size);
	if (chance(f, 4))
		p.size = chance(f, 50) ? PAGE : rnd(f);
	if (chance(f, 4))
		p.flags = 1U << below(f, 32);
	if (chance(f, 4))
		p.reserved[below(f, 3)] = rnd(f) | 1;
	p.maxnode = pick_maxnode(f);
	switch (below(f, 20)) {
	case 0:
		p.nodemask = (uintptr_t)f->ro;	/* readable, not writable */
		break;
	case 1:
		p.nodemask = (uintptr_t)bad_ptr(f, mask_room(p.maxnode));
		break;
	case 2:
		/* Room for one word less than the mask. */
		p.nodemask = (uintptr_t)mask_at_guard(f, p.maxnode) + sizeof(long);
		break;
	default:
		p.nodemask = (uintptr_t)mask_at_guard(f, p.maxnode);
		break;
	}
	arg = place_arg(f, &p, sizeof(p), &ak);
	do_get_policy(f, d, arg, ak);
}

static bool vfs_ioctl_cmd(unsigned int cmd)
{
	unsigned int type = _IOC_TYPE(cmd);

	/* Numbers the VFS answers for every file before gmem sees them. */
	if (type == 'f' || type == 'X' || type == 0x94 || type == 0x15)
		return true;
	if (type == 0 && (_IOC_NR(cmd) == 1 || _IOC_NR(cmd) == 2))
		return true;
	return cmd == 0x5421 || cmd == 0x541B || cmd == 0x5450 ||
	       cmd == 0x5451 || cmd == 0x5452 || cmd == 0x5460;
}

static void release_call(struct fuzz *f, struct ffd *g, void *arg, enum arg_kind ak);

/* GMEM_RELEASE_VM with whatever op_ioctl() put at @arg. */
static void do_release(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak)
{
	release_call(f, d, arg, ak);
}

/*
 * The ioctls gmem defines, by the kind of fd that takes them, and the
 * model that judges them: a command from anywhere (op_ioctl() too) that
 * is one of these on its kind of fd goes through its model, never past
 * it.  On the other kind of fd they are unknown: ENOTTY.
 */
static const struct known_ioctl {
	enum fd_kind kind;
	unsigned int cmd;
	void (*model)(struct fuzz *f, struct ffd *d, void *arg, enum arg_kind ak);
} known_ioctls[] = {
	{ K_DEV,  GMEM_CREATE,		do_create },
	{ K_GMEM, GMEM_RELEASE_VM,	do_release },
	{ K_GMEM, GMEM_SET_ATTRIBUTES,	do_set_attrs },
	{ K_GMEM, GMEM_GET_ATTRIBUTES,	do_get_attrs },
	{ K_GMEM, GMEM_WRITE,		do_write },
	{ K_GMEM, GMEM_SET_MEMPOLICY,	do_set_policy },
	{ K_GMEM, GMEM_GET_MEMPOLICY,	do_get_policy },
};

static const struct known_ioctl *known_ioctl(enum fd_kind kind, unsigned int cmd)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(known_ioctls); i++)
		if (known_ioctls[i].kind == kind && known_ioctls[i].cmd == cmd)
			return &known_ioctls[i];
	return NULL;
}

/* One of our commands with its direction or size changed: another number. */
static unsigned int near_miss(struct fuzz *f, unsigned int cmd)
{
	unsigned int size = _IOC_SIZE(cmd);

	if (chance(f, 50))
		return _IOC(_IOC_DIR(cmd) ^ (1 + below(f, 3)), _IOC_TYPE(cmd), _IOC_NR(cmd), size);
	size = chance(f, 50) ? size + 8 * (below(f, 3) + 1) : size - 8 * (below(f, 3) + 1);
	return _IOC(_IOC_DIR(cmd), _IOC_TYPE(cmd), _IOC_NR(cmd), size & _IOC_SIZEMASK);
}

static void op_ioctl(struct fuzz *f)
{
	static const unsigned int foreign[] = {
		KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION2, KVM_CREATE_GUEST_MEMFD,
		KVM_SET_MEMORY_ATTRIBUTES, 0x5401 /* TCGETS */, _IO('X', 1),
	};
	struct ffd *d = pick(f, M_DEV | M_GMEM);
	const struct known_ioctl *k;
	struct expect x = { 0 };
	enum arg_kind ak = ARG_RW;
	unsigned int cmd;
	char what[96];
	void *arg;
	long r;

	if (!d)
		return;
	do {
		switch (below(f, 7)) {
		case 0:
		case 1:
			cmd = _IOC(below(f, 4), GMEM_IOCTL_MAGIC, below(f, 256),
				   below(f, 1 << 14));
			break;
		case 2:
			cmd = rnd(f);
			break;
		case 3:
			cmd = foreign[below(f, ARRAY_SIZE(foreign))];
			break;
		case 4:
		case 5:
			/* Ours, for this kind of fd or the other. */
			cmd = known_ioctls[below(f, ARRAY_SIZE(known_ioctls))].cmd;
			break;
		default:
			cmd = near_miss(f, known_ioctls[below(f, ARRAY_SIZE(known_ioctls))].cmd);
			break;
		}
	} while (vfs_ioctl_cmd(cmd));

	/* Random bytes: in our buffer, in read-only memory, or nowhere. */
	fill_random(f, f->buf, 4 * PAGE);
	arg = f->buf;
	if (chance(f, 20)) {
		ak = ARG_BAD;
		arg = bad_ptr(f, 64);
	} else if (chance(f, 12)) {
		arg = ro_arg(f, f->buf, 64);
		ak = arg ? ARG_RO : ARG_RW;
		if (!arg)
			arg = f->buf;
	}
	k = known_ioctl(d->kind, cmd);
	if (k) {
		k->model(f, d, arg, ak);
		return;
	}
	allow(&x, ENOTTY);
	r = ioctl(d->fd, cmd, arg);
	snprintf(what, sizeof(what), "ioctl(%s, %#x)", d->kind == K_DEV ? "dev" : "gmem", cmd);
	judge(f, GMEM_ABI_IOCTL_UNKNOWN, &x, r, errno, what);
}

static void op_fallocate(struct fuzz *f)
{
	static const int odd_modes[] = {
		0, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE,
		FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_NO_HIDE_STALE |
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0x80 | FALLOC_FL_KEEP_SIZE,
	};
	struct ffd *d = pick(f, chance(f, 97) ? M_GMEM : M_DEV);
	int64_t off, len;
	struct expect x = { 0 };
	uint64_t size, sum;
	bool punch, valid_mode, overflow;
	char what[128];
	int mode, err;
	long r;

	if (!d)
		return;
	size = d->kind == K_GMEM ? d->size : 0;
	switch (below(f, 10)) {
	case 0:
		mode = odd_modes[below(f, ARRAY_SIZE(odd_modes))];
		break;
	case 1:
	case 2:
	case 3:
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		break;
	default:
		mode = FALLOC_FL_KEEP_SIZE;
	}
	if (chance(f, 75)) {
		uint64_t pages = size / PAGE;

		off = below(f, pages + 1) * PAGE;
		len = (1 + below(f, 1024)) * PAGE;
		if (chance(f, 80) && (uint64_t)off + len > size && off < (int64_t)size)
			len = size - off;
	} else {
		off = interesting(f, size);
		len = interesting(f, size);
	}
	punch = mode & FALLOC_FL_PUNCH_HOLE;
	valid_mode = mode == FALLOC_FL_KEEP_SIZE ||
		     mode == (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE);
	/* Keep the machine alive: big valid allocations become punches. */
	if (!punch && valid_mode && len > 0 && (uint64_t)len > (4ULL << 20))
		mode |= FALLOC_FL_PUNCH_HOLE, punch = true;
	if (!punch && valid_mode && !d->limited && read_u64(SYSFS_BYTES) > ALLOC_BUDGET)
		mode |= FALLOC_FL_PUNCH_HOLE, punch = true;

	overflow = __builtin_add_overflow((uint64_t)off, (uint64_t)len, &sum) ||
		   sum > LFS_MAX;
	/* Each rule the call breaks may be the one reported. */
	if (off < 0 || len <= 0)
		allow(&x, EINVAL);
	if (!valid_mode)
		allow(&x, EOPNOTSUPP);
	if (d->kind == K_DEV) {
		allow(&x, d->writable ? ENODEV : EBADF);
	} else {
		if (overflow)
			allow(&x, EFBIG);
		if (off % PAGE || len % PAGE)
			allow(&x, EINVAL);
		if (!punch && !overflow && sum > size)
			allow(&x, EINVAL);
	}
	x.ok = !x.n;
	if (d->limited)
		pthread_rwlock_rdlock(&f->sh->memcg_lock);
	arm(f);
	r = fallocate(d->fd, mode, off, len);
	err = errno;
	disarm(f);
	if (d->limited)
		pthread_rwlock_unlock(&f->sh->memcg_lock);
	snprintf(what, sizeof(what), "fallocate(%s size %#llx, mode %#x, %#llx, %#llx)",
		 d->kind == K_DEV ? "dev" : "gmem", (unsigned long long)size, mode,
		 (unsigned long long)off, (unsigned long long)len);
	judge(f, GMEM_ABI_FALLOCATE, &x, r, err, what);
}

/* read, write and their vector and positional forms: never any data. */
static void op_rw(struct fuzz *f)
{
	struct ffd *d = pick(f, M_GMEM);
	struct iovec iov[3];
	struct iovec *v = iov;
	struct expect x = { 0 };
	size_t len = chance(f, 50) ? interesting(f, PAGE) & 0xffffff : PAGE;
	void *buf = chance(f, 80) ? (void *)f->buf : bad_ptr(f, 64);
	int64_t pos = chance(f, 70) ? (int64_t)below(f, 1 << 20) : (int64_t)interesting(f, 0);
	int n = 1 + below(f, 3), flags = chance(f, 80) ? 0 : (int)(rnd(f) & 0x3f);
	int which = below(f, 12), i, op = GMEM_ABI_READ;
	const char *name;
	char what[96];
	long r;

	if (!d)
		return;
	if (len > 4 * PAGE && buf == f->buf)
		len = 4 * PAGE;
	for (i = 0; i < n; i++) {
		iov[i].iov_base = buf;
		iov[i].iov_len = len / n;
	}
	if (chance(f, 10))
		v = bad_ptr(f, sizeof(iov));
	allow(&x, EINVAL);
	switch (which) {
	case 0:
		name = "read";
		r = read(d->fd, buf, len);
		break;
	case 1:
		name = "write";
		r = write(d->fd, buf, len);
		break;
	case 2:
		name = "readv";
		r = readv(d->fd, v, n);
		break;
	case 3:
		name = "writev";
		r = writev(d->fd, v, n);
		break;
	case 4:
		name = "preadv2(-1)";
		r = preadv2(d->fd, v, n, -1, flags);
		break;
	case 5:
		name = "pwritev2(-1)";
		r = pwritev2(d->fd, v, n, -1, flags);
		break;
	default:
		op = GMEM_ABI_PREAD;
		allow(&x, ESPIPE);
		switch (which) {
		case 6:
			name = "pread";
			r = pread(d->fd, buf, len, pos);
			break;
		case 7:
			name = "pwrite";
			r = pwrite(d->fd, buf, len, pos);
			break;
		case 8:
			name = "preadv";
			r = preadv(d->fd, v, n, pos);
			break;
		case 9:
			name = "pwritev";
			r = pwritev(d->fd, v, n, pos);
			break;
		case 10:
			name = "preadv2";
			r = preadv2(d->fd, v, n, pos < 0 ? 0 : pos, flags);
			break;
		default:
			name = "pwritev2";
			r = pwritev2(d->fd, v, n, pos < 0 ? 0 : pos, flags);
			break;
		}
	}
	snprintf(what, sizeof(what), "%s(gmem, len %#zx, pos %lld, flags %#x%s%s)", name,
		 len, (long long)pos, flags, v != iov ? ", bad iovec" : "",
		 buf != f->buf ? ", bad buffer" : "");
	judge(f, op, &x, r, errno, what);
}

static void op_mmap(struct fuzz *f)
{
	static const int kinds[] = { MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE };
	struct ffd *d = pick(f, M_GMEM);
	struct expect x = { 0 };
	int prot = below(f, 8), flags = kinds[below(f, 3)];
	uint64_t len = chance(f, 80) ? (1 + below(f, 64)) * PAGE : interesting(f, 0);
	uint64_t off = chance(f, 80) ? below(f, 64) * PAGE : interesting(f, 0);
	uint64_t rlen;
	char what[96];
	void *p;

	if (!d)
		return;
	if (chance(f, 20))
		flags |= ((int[]){ MAP_POPULATE, MAP_NORESERVE, MAP_LOCKED, MAP_HUGETLB,
				   MAP_SYNC, MAP_32BIT })[below(f, 6)];
	allow(&x, ENODEV);
	/* mmap(2) checks the range against the largest file size first. */
	rlen = (len + PAGE - 1) & ~(PAGE - 1);
	if (off > LFS_MAX || off + rlen > LFS_MAX || off + rlen < off)
		allow(&x, EOVERFLOW);
	/* ...and finds room for it before it asks the file. */
	if ((flags & MAP_32BIT) || len > (1ULL << 30))
		allow(&x, ENOMEM);
	if (!len || len > (1ULL << 46) || off % PAGE || off + len < off ||
	    (flags & MAP_HUGETLB) || ((flags & MAP_SYNC) && (flags & 3) == MAP_SHARED_VALIDATE)) {
		allow(&x, EINVAL);
		allow(&x, EOVERFLOW);
		allow(&x, ENOMEM);
		allow(&x, EOPNOTSUPP);
	}
	p = mmap(NULL, len, prot, flags, d->fd, off);
	snprintf(what, sizeof(what), "mmap(len %#llx, prot %#x, flags %#x, off %#llx)",
		 (unsigned long long)len, prot, flags, (unsigned long long)off);
	judge(f, GMEM_ABI_MMAP, &x, p == MAP_FAILED ? -1 : 0, errno, what);
	if (p != MAP_FAILED)
		munmap(p, len);
}

/* splice, sendfile, copy_file_range and tee, from and to a gmem fd. */
static void op_splice(struct fuzz *f)
{
	struct ffd *d = pick(f, M_GMEM);
	struct expect x = { 0 };
	int p[2], other, which = below(f, 7);
	loff_t off = below(f, 1 << 20), *offp = chance(f, 50) ? &off : NULL;
	size_t len = chance(f, 80) ? PAGE : interesting(f, PAGE) & 0xffffffff;
	const char *name;
	char what[96];
	long r;
	int err;

	if (!d)
		return;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC))
		return;
	other = memfd_create("fuzz", MFD_CLOEXEC);
	if (other < 0 || write(p[1], f->buf, PAGE) != PAGE || ftruncate(other, 1 << 20)) {
		close(p[0]);
		close(p[1]);
		if (other >= 0)
			close(other);
		return;
	}
	allow(&x, EINVAL);
	allow(&x, ESPIPE);
	x.ok = !len;	/* zero bytes: nothing to move, nothing to refuse */
	switch (which) {
	case 0:
		name = "splice(gmem -> pipe)";
		r = splice(d->fd, offp, p[1], NULL, len, SPLICE_F_NONBLOCK); break;
	case 1:
		name = "splice(pipe -> gmem)";
		r = splice(p[0], NULL, d->fd, offp, len, SPLICE_F_NONBLOCK); break;
	case 2:
		name = "sendfile(memfd <- gmem)";
		r = sendfile(other, d->fd, offp, len); break;
	case 3:
		name = "sendfile(gmem <- memfd)";
		r = sendfile(d->fd, other, offp, len); break;
	case 4:
		name = "copy_file_range(gmem -> memfd)";
		allow(&x, EXDEV);
		r = copy_file_range(d->fd, offp, other, NULL, len, 0); break;
	case 5:
		name = "copy_file_range(memfd -> gmem)";
		allow(&x, EXDEV);
		r = copy_file_range(other, NULL, d->fd, offp, len, 0); break;
	default:
		name = "tee(gmem, pipe)";
		r = tee(d->fd, p[1], len, SPLICE_F_NONBLOCK); break;
	}
	err = errno;
	close(p[0]);
	close(p[1]);
	close(other);
	snprintf(what, sizeof(what), "%s len %#zx%s", name, len, offp ? " with offset" : "");
	judge(f, GMEM_ABI_SPLICE, &x, r, err, what);
	if (r > 0)
		fail(f, "%s moved %ld bytes of a gmem file", what, r);
}

static void op_seek_trunc(struct fuzz *f)
{
	struct ffd *d = pick(f, M_GMEM);
	struct expect x = { 0 };
	char what[96], path[64];
	uint64_t v = interesting(f, d ? d->size : 0);
	int which = below(f, 5);
	long r;

	if (!d)
		return;
	if (which == 0) {
		allow(&x, ESPIPE);
		r = lseek(d->fd, v, below(f, 5));
		snprintf(what, sizeof(what), "lseek(gmem, %lld)", (long long)v);
		judge(f, GMEM_ABI_LSEEK, &x, r, errno, what);
		return;
	}
	allow(&x, EINVAL);
	if (f->racing)
		allow(&x, ENOENT);	/* truncate(2) of a path to a closed fd */
	if (which == 1) {
		r = ftruncate(d->fd, v);
		snprintf(what, sizeof(what), "ftruncate(gmem, %lld)", (long long)v);
	} else if (which == 3) {
		r = fchmod(d->fd, v & 07777);
		snprintf(what, sizeof(what), "fchmod(gmem, %#llo)", (unsigned long long)v & 07777);
	} else if (which == 4) {
		r = fchown(d->fd, v & 0xffff, v >> 16 & 0xffff);
		snprintf(what, sizeof(what), "fchown(gmem, %llu, %llu)",
			 (unsigned long long)v & 0xffff, (unsigned long long)v >> 16 & 0xffff);
	} else {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", d->fd);
		r = truncate(path, v);
		snprintf(what, sizeof(what), "truncate(%s, %lld)", path, (long long)v);
	}
	judge(f, GMEM_ABI_FTRUNCATE, &x, r, errno, what);
}

/* fstat and fdinfo against what the file was created with. */
static void op_stat(struct fuzz *f)
{
	struct ffd *d = pick(f, M_GMEM);
	struct expect x = { .ok = true };
	char path[64], line[128];
	long long id = -1, size = -1;
	struct stat st;
	FILE *fi;
	long r;

	if (!d)
		return;
	r = fstat(d->fd, &st);
	judge(f, GMEM_ABI_FSTAT, &x, r, errno, "fstat(gmem)");
	if (r || f->racing)
		return;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != d->size ||
	    st.st_blksize != PAGE || (uint64_t)st.st_blocks * 512 > d->size ||
	    st.st_ino != d->ino)
		fail(f, "fstat: mode %#o size %lld blksize %ld blocks %lld ino %lu; file of size %#llx ino %llu",
		     st.st_mode, (long long)st.st_size,
		     (long)st.st_blksize, (long long)st.st_blocks, (unsigned long)st.st_ino,
		     (unsigned long long)d->size, (unsigned long long)d->ino);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", d->fd);
	fi = fopen(path, "r");
	if (!fi) {
		fail(f, "open %s: %s", path, errname(errno));
		return;
	}
	while (fgets(line, sizeof(line), fi)) {
		if (sscanf(line, "gmem-id: %lld", &id) == 1)
			continue;
		if (sscanf(line, "gmem-size: %lld", &size) == 1)
			continue;
	}
	fclose(fi);
	if ((uint64_t)id != d->ino || (uint64_t)size != d->size)
		fail(f, "fdinfo: gmem-id %lld gmem-size %lld; expected %llu, %llu", id, size,
		     (unsigned long long)d->ino, (unsigned long long)d->size);
}

/* Reopening the file through /proc: no second way in. */
static void op_reopen(struct fuzz *f)
{
	static const int modes[] = { O_RDONLY, O_WRONLY, O_RDWR, O_PATH };
	struct ffd *d = pick(f, M_GMEM);
	struct expect x = { 0 };
	int mode = modes[below(f, 4)], fd, err;
	char path[64], what[96];

	if (!d)
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", d->fd);
	allow(&x, ENXIO);
	x.ok = mode == O_PATH;	/* a path, with no I/O at all */
	fd = open(path, mode | O_CLOEXEC);
	err = errno;
	snprintf(what, sizeof(what), "open(%s, %#x)", path, mode);
	judge(f, GMEM_ABI_REOPEN, &x, fd, err, what);
	if (fd >= 0) {
		char c;

		if (read(fd, &c, 1) >= 0 || errno != EBADF)
			fail(f, "read of an O_PATH fd of a gmem file: %s", errname(errno));
		close(fd);
	}
}

static void op_dup(struct fuzz *f)
{
	struct ffd *d = pick(f, M_ANY), *n;
	int fd;

	if (!d || f->racing)
		return;
	fd = chance(f, 50) ? dup(d->fd) : fcntl(d->fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		if (errno != EMFILE)
			fail(f, "dup of fd %d: %s", d->fd, errname(errno));
		return;
	}
	n = slot(f);
	if (n == d) {		/* slot() closed the original to make room */
		close(fd);
		return;
	}
	*n = *d;
	n->fd = fd;
}

static void op_close(struct fuzz *f)
{
	struct ffd *d = pick(f, M_ANY);

	if (d)
		drop(d);
}

static int open_vm(struct fuzz *f, unsigned long type)
{
	struct expect x = { 0 };
	int kvm, fd, err;
	char what[64];

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -1;
	x.ok = type < 32 && (f->vm_types & (1u << type));
	if (!x.ok)
		allow(&x, EINVAL);
	fd = ioctl(kvm, KVM_CREATE_VM, type);
	err = errno;
	close(kvm);
	snprintf(what, sizeof(what), "KVM_CREATE_VM(type %#lx)", type);
	judge(f, ABI_KVM_CREATE_VM, &x, fd, err, what);
	return fd;
}

static void op_vm_create(struct fuzz *f)
{
	unsigned long type = chance(f, 85) ? KVM_X86_SW_PROTECTED_VM :
			     chance(f, 50) ? KVM_X86_DEFAULT_VM : rnd(f) >> below(f, 64);
	struct ffd *d;
	int fd;

	if (!f->vm_types || count_kind(f, K_VM) >= MAX_VMS)
		return;
	fd = open_vm(f, type);
	if (fd < 0)
		return;
	d = slot(f);
	d->fd = fd;
	d->kind = K_VM;
	d->vm_id = atomic_fetch_add(&f->sh->next_vm_id, 1);
	d->vm_pid = getpid();
	d->vm_type = type;
	d->vm_private = type == KVM_X86_SW_PROTECTED_VM;
	vm_model_new(f, d->vm_id);
}

static void op_vm_close(struct fuzz *f)
{
	struct ffd *d = pick(f, M_VM);

	if (d && !f->racing)
		drop(d);
}

static bool fdinfo_get(int fd, const char *key, char *val, size_t len);

/*
 * KVM_SET_USER_MEMORY_REGION2 @m on @vm, @g the fd its guest_memfd is
 * (NULL: a number that may be nothing), judged, then remembered: in the
 * VM's memslots (this process created it) and the file's owner entry.
 * Well formed (the model knows every rule it could break), a call that
 * met no other on the file is judged exactly: a bind works unless the
 * file is another VM's (EBUSY, whether that VM still has memslots on it
 * or not, until it released the file; EINVAL for life), a deletion works
 * if the memslot is there and never lets the file go; fdinfo's gmem-vm
 * names the file's VM, or none.
 */
static void memslot_call(struct fuzz *f, struct ffd *vm, struct ffd *g,
			 struct kvm_userspace_memory_region2 *m, bool bad)
{
	struct vm_model *mv = vm->vm_pid == getpid() ? vm_model_get(f, vm->vm_id) : NULL;
	struct mslot *old = mslot_find(mv, m->slot);
	bool gm = m->flags & KVM_MEM_GUEST_MEMFD;
	bool bind_gm = gm && g && g->kind == K_GMEM && m->memory_size;
	bool strict = mv && !mv->lost && !bad && !f->racing;
	bool wf, other, alone, vm_line = false, lost = false, pin_unknown = false;
	struct expect x = { .ok = true };
	char what[256], line[32] = "", want[32] = "";
	struct bind_win w = { .owner = -1 };
	struct ffd *v = NULL;
	uint64_t ino = 0;
	pid_t owner_pid;
	int r, err, delta = 0;

	if (bind_gm)
		ino = g->ino;
	else if (!m->memory_size && old && old->gm)
		ino = old->ino;
	if (mv && ino)
		win_begin(f, ino, &w);
	strict &= !w.unsure;
	if (m->memory_size)
		wf = strict && bind_gm && m->flags == KVM_MEM_GUEST_MEMFD && vm->vm_private &&
		     m->slot < 8 && !old && !(m->memory_size % PAGE) &&
		     m->memory_size <= (2 << 20) && !(m->guest_phys_addr % PAGE) &&
		     m->guest_phys_addr <= KVM_GPA_SANE - m->memory_size &&
		     m->userspace_addr == (uint64_t)f->slot_mem &&
		     !(m->guest_memfd_offset % PAGE) && m->guest_memfd_offset <= g->size &&
		     m->memory_size <= g->size - m->guest_memfd_offset &&
		     !mslot_overlap(mv, m, ino);
	else
		wf = strict && m->slot < 8 && !(m->guest_phys_addr % PAGE) &&
		     m->userspace_addr == (uint64_t)f->slot_mem &&
		     (!m->flags || (m->flags == KVM_MEM_GUEST_MEMFD && vm->vm_private &&
				    !(m->guest_memfd_offset % PAGE)));

	/*
	 * Not armed with fail-nth: KVM's own vmalloc()s of the memslot's
	 * metadata warn with a stack trace when they fail.
	 */
	r = ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, bad ? bad_ptr(f, sizeof(*m)) : (void *)m);
	err = errno;
	if (w.on && !r && !bad)
		delta = m->memory_size ? WIN_BIND : WIN_DELETE;
	if (w.on)
		v = gmem_ffd_of(f, ino);
	if (v)
		vm_line = fdinfo_get(v->fd, "gmem-vm", line, sizeof(line));
	if (mv && !r && !bad && m->memory_size && !old && mv->n == MAX_VM_SLOTS)
		lost = true;	/* a memslot the model cannot follow */
	/*
	 * KVM binds the file (and the file pins the VM) before
	 * kvm_set_memslot(), which may still fail (EINVAL for a guest frame
	 * beyond the MMU's reach, ENOMEM): its error path unbinds the range
	 * but leaves the file the VM's.  Follow that from fdinfo, which
	 * names our pid only if this call did it (our calls do not overlap),
	 * and count it.
	 */
	if (w.on && bind_gm && r < 0 && !bad && w.owner < 0 && !w.for_life) {
		snprintf(want, sizeof(want), "kvm-%d", getpid());
		if (!v)
			pin_unknown = true;
		else if (vm_line && !strcmp(line, want))
			delta = WIN_PIN;
		want[0] = 0;
	}
	alone = win_end(f, &w, vm->vm_id, vm->vm_pid, delta, lost || pin_unknown, &owner_pid);
	if (delta == WIN_PIN && alone)
		count_exact(f, X_FAILED_PIN);

	other = w.owner >= 0 && w.owner != vm->vm_id;
	if (gm && !vm->vm_private)
		x.ok = false, allow(&x, EINVAL);
	if (gm && m->memory_size && g && g->kind != K_GMEM)
		x.ok = false, allow(&x, EINVAL);	/* not a guest_memfd */
	if (bind_gm && other && w.for_life) {
		x.ok = false;
		allow(&x, EINVAL);	/* another VM's for life */
	} else if (bind_gm && other) {
		/* Another VM's until it releases the file, memslots or not. */
		x.ok = !alone;
		allow(&x, EBUSY);
	} else if (bind_gm && !alone) {
		allow(&x, EBUSY);	/* another VM may have bound it meanwhile */
	}
	if (!wf) {
		allow(&x, EINVAL);
		allow(&x, EEXIST);
		allow(&x, EBADF);
	} else if (!m->memory_size && !old) {
		x.ok = false;
		allow(&x, EINVAL);	/* no such memslot */
	}
	if (bad) {
		x.ok = false;
		allow(&x, EFAULT);
	}
	if (vm->vm_pid != getpid()) {
		/* Only the VM's creator may issue its ioctls: nothing else counts. */
		memset(&x, 0, sizeof(x));
		allow(&x, EIO);
	}
	snprintf(what, sizeof(what),
		 "KVM_SET_USER_MEMORY_REGION2(VM %d, slot %#x, flags %#x, gpa %#llx, size %#llx, %s %llu, offset %#llx)%s",
		 vm->vm_id, m->slot, m->flags,
		 (unsigned long long)m->guest_phys_addr, (unsigned long long)m->memory_size,
		 g && g->kind == K_GMEM ? "gmem" : "fd", g && g->kind == K_GMEM ?
		 (unsigned long long)g->ino : (unsigned long long)m->guest_memfd,
		 (unsigned long long)m->guest_memfd_offset, bad ? " bad pointer" : "");
	if (w.on)
		snprintf(what + strlen(what), sizeof(what) - strlen(what),
			 " on gmem %llu, %s VM %d%s", (unsigned long long)ino,
			 w.owner >= 0 ? "with" : "free, last with",
			 w.owner >= 0 ? w.owner : w.last_vm,
			 w.for_life ? " for life" : "");
	judge(f, GMEM_ABI_BIND, &x, r, err, what);

	if (alone && wf && bind_gm && other && !w.for_life && r < 0 && err == EBUSY) {
		count_exact(f, X_BIND_BUSY);
		if (!w.nslots)
			count_exact(f, X_BUSY_IDLE);
	}
	if (alone && wf && bind_gm && w.owner < 0 && !r && w.last_vm >= 0 &&
	    w.last_vm != vm->vm_id)
		count_exact(f, X_BIND_MOVED);
	if (alone && v && !w.unsure && !lost) {
		if (owner_pid)
			snprintf(want, sizeof(want), "kvm-%d", owner_pid);
		if (vm_line != !!owner_pid || strcmp(line, want))
			fail(f, "%s = %d: fdinfo gmem-vm \"%s\"%s; expected %s%s", what, r, line,
			     vm_line ? "" : " (absent)", owner_pid ? want : "none",
			     owner_pid ? "" : ": the file has no VM");
		else
			count_exact(f, X_VM_LINE);
	}

	/* The VM's memslots as the call left them. */
	if (!mv || r || bad)
		return;
	if (!m->memory_size) {
		if (old)
			*old = mv->s[--mv->n];
		else
			mv->lost = true;	/* deleted a memslot it did not know */
	} else if (old) {
		old->gpa = m->guest_phys_addr;	/* moved, or its flags changed */
	} else if (lost) {
		mv->lost = true;
	} else {
		old = &mv->s[mv->n++];
		old->id = m->slot;
		old->gpa = m->guest_phys_addr;
		old->size = m->memory_size;
		old->gm = bind_gm;
		old->ino = ino;
		old->off = m->guest_memfd_offset;
	}
}

/* An fd of ours of VM @vm_id, NULL if we hold none. */
static struct ffd *vm_ffd_of(struct fuzz *f, int vm_id)
{
	int i;

	for (i = 0; vm_id >= 0 && i < MAX_FDS; i++)
		if (f->fds[i].kind == K_VM && f->fds[i].vm_id == vm_id)
			return &f->fds[i];
	return NULL;
}

/*
 * GMEM_RELEASE_VM on gmem fd @g, its struct at @arg (@ak says where),
 * judged.  The argument checks (EFAULT, flags, EBADF, not a VM: EINVAL)
 * need no state; the rest does: a call that met no other bind, deletion
 * or release on the file is judged exactly from the owner table (0 on a
 * file without a VM; EINVAL for another VM's fd or a file for life;
 * EBUSY while the VM has a memslot on the file; else 0, and the file has
 * no VM any more: fdinfo shows no gmem-vm).  One that met others may see
 * the file's VM change meanwhile (but never a file for life's).
 */
static void release_call(struct fuzz *f, struct ffd *g, void *arg, enum arg_kind ak)
{
	struct gmem_release_vm rel = { .vm_fd = -1 };
	struct bind_win w = { .owner = -1 };
	bool fault, is_vm = false, badf = false, alone, exact, vm_line = false;
	struct expect x = { .ok = true };
	char what[192], line[32] = "", want[32] = "";
	enum exact counted = X_NR;
	struct ffd *v = NULL;
	pid_t owner_pid;
	int i, r, err;

	fault = ak == ARG_BAD && readable(f, arg) < sizeof(rel);
	if (!fault)
		memcpy(&rel, arg, sizeof(rel));
	if (rel.vm_fd < 0) {
		badf = true;
	} else {
		for (i = 0; i < MAX_FDS && !v; i++)
			if (f->fds[i].kind != K_FREE && f->fds[i].fd == rel.vm_fd)
				v = &f->fds[i];
		if (v)
			is_vm = v->kind == K_VM;
		else
			badf = fcntl(rel.vm_fd, F_GETFD) < 0;
	}
	if (!fault && !rel.flags && !badf)
		win_begin(f, g->ino, &w);

	r = ioctl(g->fd, GMEM_RELEASE_VM, arg);
	err = errno;
	if (w.on && !f->racing)
		vm_line = fdinfo_get(g->fd, "gmem-vm", line, sizeof(line));
	alone = win_end(f, &w, is_vm ? v->vm_id : -1, is_vm ? v->vm_pid : 0,
			is_vm && !r ? WIN_RELEASE : 0, false, &owner_pid);
	exact = alone && !w.unsure && !f->racing;

	if (fault) {
		x.ok = false;
		allow(&x, EFAULT);
		counted = X_RELEASE_ARGS;
	} else if (rel.flags) {
		x.ok = false;
		allow(&x, EINVAL);
		counted = X_RELEASE_ARGS;
	} else if (badf) {
		x.ok = false;
		allow(&x, EBADF);
		counted = X_RELEASE_ARGS;
	} else if (!is_vm) {
		/* Not a VM: EINVAL; gmem.h lets a file without a VM say 0. */
		allow(&x, EINVAL);
		x.ok = !(exact && w.owner >= 0);
		counted = x.ok ? X_NR : X_RELEASE_INVAL;
	} else if (w.for_life && w.owner >= 0) {
		/* Its VM's for life: never released, by no VM. */
		x.ok = false;
		allow(&x, EINVAL);
		counted = X_RELEASE_INVAL;
	} else if (!exact) {
		allow(&x, EINVAL);	/* the file's VM may have changed meanwhile */
		allow(&x, EBUSY);
	} else if (w.owner < 0) {
		counted = X_RELEASE_NONE;
	} else if (w.owner != v->vm_id) {
		x.ok = false;
		allow(&x, EINVAL);
		counted = X_RELEASE_INVAL;
	} else if (w.nslots > 0) {
		x.ok = false;
		allow(&x, EBUSY);
		counted = X_RELEASE_BUSY;
	} else {
		counted = X_RELEASE_OK;
	}
	snprintf(what, sizeof(what), "GMEM_RELEASE_VM(gmem %llu, vm_fd %d",
		 (unsigned long long)g->ino, rel.vm_fd);
	if (is_vm)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ": VM %d", v->vm_id);
	snprintf(what + strlen(what), sizeof(what) - strlen(what), ", flags %#x)%s",
		 rel.flags, fault ? " bad pointer" : "");
	if (w.on)
		snprintf(what + strlen(what), sizeof(what) - strlen(what),
			 " %s VM %d, %d memslots%s%s", w.owner >= 0 ? "with" : "free, last with",
			 w.owner >= 0 ? w.owner : w.last_vm, w.nslots,
			 w.for_life ? ", for life" : "", alone ? "" : ", raced");
	judge(f, GMEM_ABI_RELEASE_VM, &x, r, err, what);
	if (counted != X_NR && (x.ok ? !r : r < 0 && err == x.err[0]))
		count_exact(f, counted);

	/* fdinfo names the file's VM as the call left it. */
	if (exact && w.on && !f->racing) {
		if (owner_pid)
			snprintf(want, sizeof(want), "kvm-%d", owner_pid);
		if (vm_line != !!owner_pid || strcmp(line, want))
			fail(f, "%s = %d: fdinfo gmem-vm \"%s\"%s; expected %s", what, r, line,
			     vm_line ? "" : " (absent)", owner_pid ? want : "none");
		else
			count_exact(f, X_VM_LINE);
	}
}

/*
 * GMEM_RELEASE_VM with a struct drawn for it: mostly the file's VM (if
 * we hold an fd of it) or any VM of ours, else a non-VM fd (the file
 * itself among them), a negative or closed number or a random one; now
 * and then flags, a read-only or a bad pointer.  Always the same draws.
 */
static void op_release(struct fuzz *f)
{
	struct ffd *g = pick_gmem(f), *any = pick(f, M_VM);
	struct ffd *other = pick(f, M_DEV | M_GMEM | M_OTHER), *own;
	struct gmem_release_vm rel = { 0 };
	unsigned int how = below(f, 12), neg = below(f, 3);
	uint64_t val = rnd(f);
	enum arg_kind ak;
	void *arg;

	rel.flags = chance(f, 90) ? 0 : chance(f, 50) ? 1U << below(f, 32) : (uint32_t)rnd(f) | 1;
	if (!g)
		return;
	own = vm_ffd_of(f, owner_of(f, g->ino));
	switch (how) {
	case 0 ... 4:
		rel.vm_fd = own ? own->fd : any ? any->fd : -1;
		break;
	case 5:
	case 6:
		rel.vm_fd = any ? any->fd : g->fd;
		break;
	case 7:
		rel.vm_fd = other && (val & 1) ? other->fd : g->fd;
		break;
	case 8:
		rel.vm_fd = neg == 0 ? -1 : neg == 1 ? INT32_MIN : -(int32_t)(val % 4096) - 1;
		break;
	case 9:
		rel.vm_fd = 900 + val % 100;	/* above every fd of ours */
		break;
	default:
		rel.vm_fd = (int32_t)val;
		break;
	}
	arg = place_arg(f, &rel, sizeof(rel), &ak);
	release_call(f, g, arg, ak);
}

/* KVM_SET_USER_MEMORY_REGION2 with a gmem fd, random everything else. */
static void op_bind(struct fuzz *f)
{
	struct ffd *vm = pick(f, M_VM), *g;
	struct kvm_userspace_memory_region2 m = { 0 };
	struct vm_model *mv;
	bool bad = false, known;
	uint64_t which;

	if (!vm)
		return;
	g = pick(f, chance(f, 85) ? M_GMEM : M_ANY);
	m.slot = chance(f, 90) ? below(f, 8) : (uint32_t)rnd(f);
	m.flags = chance(f, 80) ? KVM_MEM_GUEST_MEMFD :
		  ((uint32_t[]){ 0, KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY,
				 KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES,
				 (uint32_t)rnd(f) })[below(f, 4)];
	m.guest_phys_addr = chance(f, 90) ? below(f, 1 << 16) * PAGE * 4 : interesting(f, 0);
	if (g && g->kind == K_GMEM && chance(f, 80)) {
		m.guest_memfd_offset = below(f, g->size / PAGE) * PAGE;
		m.memory_size = (1 + below(f, 512)) * PAGE;
		if (m.guest_memfd_offset + m.memory_size > g->size)
			m.memory_size = g->size - m.guest_memfd_offset;
	} else {
		m.guest_memfd_offset = interesting(f, g ? g->size : 0);
		m.memory_size = interesting(f, 2 << 20);
	}
	if (chance(f, 5))
		m.memory_size = 0;	/* delete */
	m.userspace_addr = chance(f, 95) ? (uint64_t)f->slot_mem : interesting(f, 0);
	m.guest_memfd = g ? g->fd : (int)below(f, 1024);
	if (chance(f, 3))
		bad = true;
	/* Half the deletions aim at a memslot the VM has (same draws either way). */
	known = chance(f, 50);
	which = rnd(f);
	mv = vm->vm_pid == getpid() ? vm_model_get(f, vm->vm_id) : NULL;
	if (!m.memory_size && known && mv && mv->n)
		m.slot = mv->s[which % mv->n].id;
	memslot_call(f, vm, g, &m, bad);
}

/*
 * A handoff, as in a VMM's live update: one of our VMs deletes all its
 * memslots on one of its files, releases the file (GMEM_RELEASE_VM with
 * its fd; skipped 30% of the time, a VMM that forgot), then one of our
 * VMs (maybe the same) binds the file: well formed, at a free slot and
 * address, which works for another VM only after the release (EBUSY
 * without it, although the first VM has no memslot left), unless the
 * release did not work (a memslot the model lost, a file the VM has for
 * life: KVM_CREATE_GUEST_MEMFD) or another process's VM took the file
 * meanwhile.
 */
static void op_handoff(struct fuzz *f)
{
	struct ffd *a = pick(f, M_VM), *b = pick(f, M_VM), *g;
	struct kvm_userspace_memory_region2 m;
	struct vm_model *ma, *mb;
	uint64_t r = rnd(f), ino = 0;
	bool release = chance(f, 70);
	int i, n;

	if (!a || !b || f->racing)
		return;
	ma = a->vm_pid == getpid() ? vm_model_get(f, a->vm_id) : NULL;
	for (i = 0, n = ma ? ma->n : 0; i < n && !ino; i++)
		if (ma->s[(r + i) % n].gm)
			ino = ma->s[(r + i) % n].ino;
	g = ino ? gmem_ffd_of(f, ino) : NULL;
	if (!g)
		return;
	for (;;) {
		for (i = 0; i < ma->n && !(ma->s[i].gm && ma->s[i].ino == ino); i++)
			;
		if (i == ma->n)
			break;
		memset(&m, 0, sizeof(m));
		m.slot = ma->s[i].id;
		m.guest_phys_addr = ma->s[i].gpa;
		m.userspace_addr = (uint64_t)f->slot_mem;
		n = ma->n;
		memslot_call(f, a, NULL, &m, false);
		if (ma->n == n)
			return;		/* judged already */
	}
	if (release) {
		memset(f->buf, 0, sizeof(struct gmem_release_vm));
		((struct gmem_release_vm *)f->buf)->vm_fd = a->fd;
		release_call(f, g, f->buf, ARG_RW);
	}

	mb = b->vm_pid == getpid() ? vm_model_get(f, b->vm_id) : NULL;
	if (!mb || mb->lost)
		return;
	memset(&m, 0, sizeof(m));
	m.flags = KVM_MEM_GUEST_MEMFD;
	m.memory_size = g->size < (2 << 20) ? g->size : 2 << 20;
	m.userspace_addr = (uint64_t)f->slot_mem;
	m.guest_memfd = g->fd;
	for (m.slot = 0; m.slot < 8 && mslot_find(mb, m.slot); m.slot++)
		;
	/* A free address: one of 256 4 MiB steps, from a random one on. */
	for (i = 0; i < 256; i++) {
		m.guest_phys_addr = ((r >> 8) + i) % 256 * (4 << 20);
		if (!mslot_overlap(mb, &m, ~0ULL))
			break;
	}
	if (m.slot < 8 && i < 256)
		memslot_call(f, b, g, &m, false);
}

/*
 * The blocks parameter: its three words (a trailing newline allowed, as
 * echo writes them), anything else EINVAL (a write of nothing never
 * reaches the module).  It changes how new files
 * allocate, never what a call returns, so the model needs no state.
 */
static void op_param_blocks(struct fuzz *f)
{
	static const char *const vals[] = {
		"always", "flag", "never", "flag\n", "always\n",
		"\n", "ALWAYS", " flag", "sometimes", "never never", "1",
	};
	struct expect x = { 0 };
	unsigned int i = below(f, ARRAY_SIZE(vals));
	char what[128];
	int r;

	x.ok = i < 5;
	if (!x.ok)
		allow(&x, EINVAL);
	r = write_str(PARAM_BLOCKS, vals[i]);
	snprintf(what, sizeof(what), "write %s \"%s\"", PARAM_BLOCKS, vals[i]);
	judge(f, GMEM_ABI_PARAM_BLOCKS, &x, r ? -1 : 0, -r, what);
}

static void op_param(struct fuzz *f)
{
	static const char *const junk[] = { "abc", "-1", "0x", "4096 4096", "1e9", "1M" };
	static const uint64_t good[] = { 1ULL << 40, 1ULL << 20, 16ULL << 20, PAGE,
					 1ULL << 30, LFS_MAX & ~(PAGE - 1) };
	struct expect x = { 0 };
	char val[64], what[160];
	uint64_t v = 0;
	bool is_num = chance(f, 85);
	int r;

	if (chance(f, 30)) {
		op_param_blocks(f);
		return;
	}
	if (is_num) {
		v = chance(f, 60) ? good[below(f, 6)] : interesting(f, 1ULL << 40);
		snprintf(val, sizeof(val), chance(f, 50) ? "%llu" : "%#llx", (unsigned long long)v);
		x.ok = v && !(v % PAGE) && v <= (LFS_MAX & ~(PAGE - 1));
	} else {
		snprintf(val, sizeof(val), "%s", junk[below(f, 6)]);
	}
	if (!x.ok)
		allow(&x, EINVAL);
	pthread_rwlock_wrlock(&f->sh->param_lock);
	r = write_str(PARAM, val);
	if (!r)
		f->sh->max_file_size = v;
	pthread_rwlock_unlock(&f->sh->param_lock);
	snprintf(what, sizeof(what), "write %s \"%s\"", PARAM, val);
	judge(f, GMEM_ABI_PARAM, &x, r ? -1 : 0, -r, what);
}

/* A boolean parameter as it reads: "Y" or "N". */
static bool read_bool_param(const char *path)
{
	char b[8] = "";
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return false;
	if (read(fd, b, sizeof(b) - 1) < 0)
		b[0] = 0;
	close(fd);
	return b[0] == 'Y';
}

static bool read_takeover(void)
{
	return read_bool_param(PARAM_TAKEOVER);
}

/*
 * The takeover parameter: the values docs/abi.md names (a trailing
 * newline allowed, as echo writes them), anything else EINVAL with the
 * value unchanged (a write of nothing never reaches the module).  It
 * decides what KVM_CREATE_GUEST_MEMFD returns: the model keeps it, under
 * param_lock, and checks that it reads back as written.
 */
static void op_param_takeover(struct fuzz *f)
{
	static const struct { const char *s; int on; } vals[] = {
		{ "1", 1 }, { "0", 0 }, { "y", 1 }, { "n", 0 }, { "Y", 1 },
		{ "N", 0 }, { "on", 1 }, { "off", 0 }, { "1\n", 1 }, { "N\n", 0 },
		{ "2", -1 }, { "-1", -1 }, { " y", -1 }, { "\n", -1 }, { "o", -1 },
		{ "ok", -1 }, { "maybe", -1 }, { "+1", -1 },
	};
	unsigned int i = below(f, ARRAY_SIZE(vals));
	struct expect x = { 0 };
	bool now;
	char what[128];
	int r;

	x.ok = vals[i].on >= 0;
	if (!x.ok)
		allow(&x, EINVAL);
	pthread_rwlock_wrlock(&f->sh->param_lock);
	r = write_str(PARAM_TAKEOVER, vals[i].s);
	if (!r && x.ok)
		f->sh->takeover = vals[i].on;
	now = read_takeover();
	snprintf(what, sizeof(what), "write %s \"%s\"", PARAM_TAKEOVER, vals[i].s);
	if (now != f->sh->takeover)
		fail(f, "%s (%s): takeover reads %s, expected %s", what,
		     r ? errname(-r) : "ok", now ? "Y" : "N", f->sh->takeover ? "Y" : "N");
	f->sh->takeover = now;
	pthread_rwlock_unlock(&f->sh->param_lock);
	judge(f, GMEM_ABI_PARAM_TAKEOVER, &x, r ? -1 : 0, -r, what);
}

/*
 * The no_direct_map parameter: a boolean like takeover (same values,
 * same errors), read back as written.  Files created while it is on are
 * out of the direct map, which every operation on them then exercises;
 * unmapped_bytes must be back at its start when all files are gone.
 */
static void op_param_no_direct_map(struct fuzz *f)
{
	static const struct { const char *s; int on; } vals[] = {
		{ "1", 1 }, { "0", 0 }, { "y", 1 }, { "N\n", 0 }, { "on", 1 },
		{ "off", 0 }, { "2", -1 }, { "maybe", -1 }, { " y", -1 },
	};
	unsigned int i = below(f, ARRAY_SIZE(vals));
	struct expect x = { 0 };
	bool before, now;
	char what[128];
	int r;

	x.ok = vals[i].on >= 0;
	if (!x.ok)
		allow(&x, EINVAL);
	pthread_rwlock_wrlock(&f->sh->param_lock);
	before = read_bool_param(PARAM_NO_DIRECT_MAP);
	r = write_str(PARAM_NO_DIRECT_MAP, vals[i].s);
	now = read_bool_param(PARAM_NO_DIRECT_MAP);
	pthread_rwlock_unlock(&f->sh->param_lock);
	snprintf(what, sizeof(what), "write %s \"%s\"", PARAM_NO_DIRECT_MAP, vals[i].s);
	if (now != (x.ok && !r ? vals[i].on : before))
		fail(f, "%s (%s): no_direct_map reads %s, expected %s", what,
		     r ? errname(-r) : "ok", now ? "Y" : "N",
		     (x.ok && !r ? vals[i].on : before) ? "Y" : "N");
	judge(f, GMEM_ABI_PARAM_NO_DIRECT_MAP, &x, r ? -1 : 0, -r, what);
}

/* The value of @key in the fdinfo of @fd, in @val; false without the key. */
static bool fdinfo_get(int fd, const char *key, char *val, size_t len)
{
	char path[64], line[128], *v;
	size_t klen = strlen(key);
	bool found = false;
	FILE *fi;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	fi = fopen(path, "r");
	if (!fi)
		return false;
	while (!found && fgets(line, sizeof(line), fi)) {
		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		v = line + klen + 1;
		v += strspn(v, " \t");
		v[strcspn(v, "\n")] = 0;
		snprintf(val, len, "%s", v);
		found = true;
	}
	fclose(fi);
	return found;
}

/* The VM types whose KVM_CREATE_GUEST_MEMFD gmem serves (docs/abi.md). */
static bool takeover_type(unsigned long type)
{
	return type == KVM_X86_SW_PROTECTED_VM || type == KVM_X86_DEFAULT_VM;
}

/* Can this process tell the takeover counters' changes apart? */
static bool counters_alone(struct fuzz *f)
{
	int i;

	if (f->child || f->racing)
		return false;
	reap(f, false);
	for (i = 0; i < MAX_CHILDREN; i++)
		if (f->kids[i])
			return false;
	return true;
}

/*
 * The file KVM_CREATE_GUEST_MEMFD returned as @fd, against the model:
 * with KVM's fd flags and the size asked for; a gmem file bound to its VM
 * from creation when @taken (tracked from now on, as bound to @vm_id),
 * else KVM's own guest_memfd (closed).
 */
static void check_guest_memfd(struct fuzz *f, int fd, bool taken, uint64_t size,
			      int vm_id, pid_t vm_pid, const char *what)
{
	char id[32] = "", vm[32] = "", want[32];
	bool gmem = fdinfo_get(fd, "gmem-id", id, sizeof(id));
	int fdflags = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
	bool ok = true;
	struct ffd *d;
	struct stat st;

	if (fstat(fd, &st)) {
		fail(f, "%s: fstat of the new fd: %s", what, errname(errno));
		close(fd);
		return;
	}
	if (fdflags != 0 || (fl & O_ACCMODE) != O_RDWR || (uint64_t)st.st_size != size) {
		fail(f, "%s: fd flags %#x, file flags %#x, size %#llx; KVM makes read-write fds without FD_CLOEXEC, of the size asked for",
		     what, fdflags, fl, (unsigned long long)st.st_size);
		ok = false;
	}
	if (!taken) {
		if (gmem)
			fail(f, "%s: a gmem file (gmem-id %s), but gmem should have left the call to KVM",
			     what, id);
		else if (ok)
			count_exact(f, X_GUEST_MEMFD);
		close(fd);
		return;
	}
	if (!gmem) {
		fail(f, "%s: KVM's own guest_memfd, but takeover should have made a gmem file",
		     what);
		close(fd);
		return;
	}
	snprintf(want, sizeof(want), "kvm-%d", vm_pid);
	fdinfo_get(fd, "gmem-vm", vm, sizeof(vm));
	if (strtoull(id, NULL, 10) != st.st_ino || strcmp(vm, want))
		fail(f, "%s: fdinfo gmem-id %s gmem-vm \"%s\"; expected %lu, \"%s\"", what, id,
		     vm, (unsigned long)st.st_ino, want);
	else if (ok)
		count_exact(f, X_GUEST_MEMFD);
	/* Bound from creation, for life: memslots of other VMs must not bind it. */
	set_for_life(f, st.st_ino, vm_id, vm_pid, what);
	d = add_gmem(f, fd, size, 0, false);
	if (d)
		check_new_file(f, d, 0);
}

/*
 * KVM_CREATE_GUEST_MEMFD on one of our VMs: KVM checks its arguments
 * (any flag, a size that is not a positive multiple of the page size:
 * EINVAL); then, with takeover on, a SW_PROTECTED or DEFAULT VM and a
 * size up to max_file_size, the file is a gmem file, which under fault
 * injection may fail to be made (ENOMEM) but never becomes KVM's own;
 * anything else is KVM's own guest_memfd.  The counters takeover_files
 * and takeover_declined are predicted: call by call while no other
 * process of ours runs, in total at the end.
 */
static void op_guest_memfd(struct fuzz *f)
{
	struct ffd *vm = pick(f, M_VM);
	struct kvm_create_guest_memfd g = { 0 };
	struct expect x = { 0 };
	uint64_t taken0 = 0, declined0 = 0, taken1, declined1;
	bool taken, declined, alone, on;
	enum arg_kind ak;
	char what[192];
	void *arg;
	int vm_id;
	pid_t vm_pid;
	long r;
	int err;

	if (!vm)
		return;
	if (chance(f, 75))
		g.size = file_size(f);
	else
		g.size = interesting(f, 1 << 20);
	if (chance(f, 10))
		g.flags = chance(f, 50) ? 1ULL << below(f, 64) : rnd(f) >> below(f, 64);
	/* KVM only reads the struct: read-only memory is as good as ours. */
	arg = place_arg(f, &g, sizeof(g), &ak);
	vm_id = vm->vm_id;
	vm_pid = vm->vm_pid;

	pthread_rwlock_rdlock(&f->sh->param_lock);
	on = f->sh->takeover;
	if (vm_pid != getpid())
		allow(&x, EIO);		/* only the VM's creator may use it */
	else if (ak == ARG_BAD)
		allow(&x, EFAULT);
	else if (g.flags || !g.size || g.size % PAGE || g.size > LFS_MAX)
		allow(&x, EINVAL);
	x.ok = !x.n;
	taken = x.ok && on && takeover_type(vm->vm_type) &&
		g.size <= f->sh->max_file_size;
	declined = x.ok && on && !taken;
	alone = counters_alone(f);
	if (alone) {
		taken0 = read_u64(SYSFS_TAKEN);
		declined0 = read_u64(SYSFS_DECLINED);
	}
	arm(f);
	r = ioctl(vm->fd, KVM_CREATE_GUEST_MEMFD, arg);
	err = errno;
	disarm(f);
	pthread_rwlock_unlock(&f->sh->param_lock);
	snprintf(what, sizeof(what),
		 "KVM_CREATE_GUEST_MEMFD(VM %d type %lu, %s{size %#llx flags %#llx}) with takeover %s",
		 vm_id, vm->vm_type, ak == ARG_BAD ? "bad pointer " : "",
		 (unsigned long long)g.size, (unsigned long long)g.flags, on ? "on" : "off");
	judge(f, GMEM_ABI_GUEST_MEMFD, &x, r, err, what);
	if (r >= 0 && !x.ok) {
		close(r);
		return;
	}

	/*
	 * gmem counts a file it made, and a call it declines before KVM makes
	 * its own; a call that failed under injection may have failed before
	 * gmem saw it (KVM allocates the fd first).
	 */
	if (taken && r >= 0)
		atomic_fetch_add(&f->sh->taken_over, 1);
	if (declined && r >= 0)
		atomic_fetch_add(&f->sh->declined, 1);
	if (declined && r < 0)
		atomic_fetch_add(&f->sh->declined_maybe, 1);
	if (alone) {
		taken1 = read_u64(SYSFS_TAKEN);
		declined1 = read_u64(SYSFS_DECLINED);
		if (taken1 - taken0 != (taken && r >= 0) ||
		    declined1 - declined0 > declined ||
		    (r >= 0 && declined1 - declined0 != declined))
			fail(f, "%s = %ld: takeover_files +%lld, takeover_declined +%lld; expected +%d, +%d",
			     what, r, (long long)(taken1 - taken0),
			     (long long)(declined1 - declined0), taken && r >= 0, declined);
		else
			count_exact(f, X_TAKEOVER_COUNTS);
	}
	if (r >= 0)
		check_guest_memfd(f, r, taken, g.size, vm_id, vm_pid, what);
}

/* ---- operations that run others: races, forks, fd passing ---- */

static void run_ops(struct fuzz *f, unsigned long n, bool nested);
static void audit_fds(struct fuzz *f);

struct racer {
	struct fuzz *f;
	int fds[MAX_FDS];
	int n;
	uint64_t rng;
	pthread_barrier_t go;
};

static void *race_closer(void *arg)
{
	struct racer *rc = arg;
	struct timespec ts = { 0, 0 };
	int i;

	pthread_barrier_wait(&rc->go);
	for (i = 0; i < rc->n; i++) {
		ts.tv_nsec = (rc->rng >> (i * 4) & 15) * 20000;
		nanosleep(&ts, NULL);
		close(rc->fds[i]);
	}
	return NULL;
}

/*
 * Close some gmem fds in another thread while this one keeps using them:
 * every call either works on the file or fails with EBADF.  No fd is
 * opened meanwhile, so a closed number cannot come back as another file.
 */
static void op_race_close(struct fuzz *f)
{
	struct racer rc = { .f = f, .rng = rnd(f) };
	pthread_t t;
	int i;

	f->race_mask = 0;
	for (i = 0; i < MAX_FDS; i++) {
		if (f->fds[i].kind == K_GMEM && chance(f, 50) && rc.n < 6) {
			rc.fds[rc.n++] = f->fds[i].fd;
			f->race_mask |= 1ULL << i;
		}
	}
	if (!rc.n)
		return;
	pthread_barrier_init(&rc.go, NULL, 2);
	if (pthread_create(&t, NULL, race_closer, &rc)) {
		pthread_barrier_destroy(&rc.go);
		return;
	}
	f->racing = true;
	pthread_barrier_wait(&rc.go);
	run_ops(f, 10 + below(f, 30), true);
	f->racing = false;
	pthread_join(t, NULL);
	pthread_barrier_destroy(&rc.go);
	for (i = 0; i < MAX_FDS; i++)
		if (f->race_mask & (1ULL << i))
			forget(&f->fds[i]);
	f->race_mask = 0;
}

static void reap(struct fuzz *f, bool wait_all)
{
	int i, st;
	pid_t r;

	for (i = 0; i < MAX_CHILDREN; i++) {
		if (!f->kids[i])
			continue;
		do {
			r = waitpid(f->kids[i], &st, wait_all ? 0 : WNOHANG);
		} while (r < 0 && errno == EINTR);
		if (r == 0)
			continue;
		if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			fail(f, "child %d ended with status %#x", f->kids[i], r < 0 ? -1 : st);
		f->kids[i] = 0;
	}
}

static void child_exit(struct fuzz *f, unsigned long ops)
{
	int i;

	for (i = 0; i < MAX_FDS; i++)
		if (f->fds[i].kind != K_FREE)
			drop(&f->fds[i]);
	atomic_fetch_add(&f->sh->child_ops, ops);
	atomic_fetch_add(&f->sh->children, 1);
	_exit(0);
}

static int kid_slot(struct fuzz *f)
{
	int i;

	reap(f, false);
	for (i = 0; i < MAX_CHILDREN; i++)
		if (!f->kids[i])
			return i;
	return -1;
}

/* A child that inherits every fd and works on them while we go on. */
static void op_fork(struct fuzz *f)
{
	unsigned long n = 20 + below(f, 200);
	uint64_t s = rnd(f);
	int k = kid_slot(f);
	pid_t pid;

	if (k < 0)
		return;
	pid = fork();
	if (pid < 0)
		return;
	if (pid) {
		f->kids[k] = pid;
		share(f, 0);
		return;
	}
	memset(f->kids, 0, sizeof(f->kids));
	f->child = true;
	f->who = "fork";
	nth_reopen(f);
	seed(f, s);
	run_ops(f, n, false);
	child_exit(f, n);
}

static int send_fds(int sock, const int *fds, int n)
{
	char ctl[CMSG_SPACE(sizeof(int) * 4)] = { 0 };
	struct iovec iov = { .iov_base = (void *)fds, .iov_len = sizeof(int) * n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl, .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Receive up to 4 fds; returns how many, each in @fds. */
static int recv_fds(int sock, int *fds, int flags)
{
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	int data[4];
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	ssize_t r;

	do {
		r = recvmsg(sock, &msg, flags);
	} while (r < 0 && errno == EINTR);
	c = CMSG_FIRSTHDR(&msg);
	if (r <= 0 || !c || c->cmsg_type != SCM_RIGHTS)
		return 0;
	memcpy(fds, CMSG_DATA(c), c->cmsg_len - CMSG_LEN(0));
	return (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
}

/*
 * Pass fds over a unix socket.  To ourselves (a new fd for the same
 * file), into the void (the socket closes with them in flight), or to
 * a new process that has no fds of its own and binds what it gets to
 * its own VMs while we may bind them to ours.
 */
static void op_pass(struct fuzz *f)
{
	struct ffd *src[4], sent[4];
	int sv[2], fds[4], got[4], n = 1 + below(f, 3), i, k = -1, how = below(f, 3);
	unsigned long ops;
	uint64_t s = rnd(f);
	pid_t pid;

	if (f->racing)
		return;
	for (i = 0; i < n; i++) {
		src[i] = pick(f, chance(f, 80) ? M_GMEM : M_ANY);
		if (!src[i])
			return;
		fds[i] = src[i]->fd;
		sent[i] = *src[i];
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return;
	if (how == 2 && !f->child)
		k = kid_slot(f);
	if (how == 2 && (f->child || k < 0))
		how = 0;
	if (how == 2) {
		pid = fork();
		if (pid < 0) {
			how = 1;
		} else if (!pid) {
			memset(f->kids, 0, sizeof(f->kids));
			for (i = 0; i < MAX_FDS; i++)
				if (f->fds[i].kind != K_FREE && f->fds[i].fd != sv[1])
					close(f->fds[i].fd), forget(&f->fds[i]);
			f->child = true;
			f->who = "scm";
			nth_reopen(f);
			seed(f, s);
			k = recv_fds(sv[1], got, chance(f, 50) ? MSG_CMSG_CLOEXEC : 0);
			for (i = 0; i < k && i < n; i++) {
				struct ffd *d = slot(f);

				*d = sent[i];
				d->fd = got[i];
			}
			close(sv[0]);
			close(sv[1]);
			ops = 20 + below(f, 100);
			f->op_name = "vm-create";
			op_vm_create(f);
			f->op_name = "bind";
			for (i = 0; i < 20; i++)
				op_bind(f);
			run_ops(f, ops, false);
			child_exit(f, ops + 21);
		} else {
			f->kids[k] = pid;
			for (i = 0; i < n; i++)
				if (sent[i].kind == K_GMEM)
					share(f, sent[i].ino);
		}
	}
	if (send_fds(sv[0], fds, n))
		fail(f, "sendmsg(SCM_RIGHTS): %s", errname(errno));
	if (how == 0) {
		k = recv_fds(sv[1], got, chance(f, 50) ? MSG_CMSG_CLOEXEC : 0);
		if (k != n)
			fail(f, "SCM_RIGHTS to self: got %d fds of %d", k, n);
		for (i = 0; i < k; i++) {
			struct ffd *d = slot(f);
			struct stat a, b;

			if (i >= n) {
				close(got[i]);
				continue;
			}
			if (!fstat(got[i], &a) && sent[i].kind == K_GMEM &&
			    a.st_ino != sent[i].ino)
				fail(f, "SCM_RIGHTS: received ino %lu, sent %lu",
				     (unsigned long)a.st_ino, (unsigned long)sent[i].ino);
			(void)b;
			*d = sent[i];
			d->fd = got[i];
		}
	}
	/* how == 1: close with the fds still in flight. */
	close(sv[0]);
	close(sv[1]);
}

static const struct fuzz_op {
	const char *name;
	unsigned int weight;
	void (*fn)(struct fuzz *f);
	bool racing_ok;		/* opens no fds: safe while fds are closed under us */
	bool child_ok;
} fuzz_ops[] = {
	{ "open-dev",	3,  op_open_dev,	false, true },
	{ "create",	12, op_create,		false, true },
	{ "ioctl",	12, op_ioctl,		true,  true },
	{ "set-attrs",	6,  op_set_attrs,	true,  true },
	{ "get-attrs",	4,  op_get_attrs,	true,  true },
	{ "gmem-write",	5,  op_write,		true,  true },
	{ "set-policy",	5,  op_set_policy,	true,  true },
	{ "get-policy",	3,  op_get_policy,	true,  true },
	{ "fallocate",	25, op_fallocate,	true,  true },
	{ "read-write",	6,  op_rw,		true,  true },
	{ "mmap",	4,  op_mmap,		true,  true },
	{ "splice",	4,  op_splice,		false, true },
	{ "seek-trunc",	3,  op_seek_trunc,	true,  true },
	{ "stat",	4,  op_stat,		true,  true },
	{ "reopen",	2,  op_reopen,		false, true },
	{ "dup",	3,  op_dup,		false, true },
	{ "close",	6,  op_close,		false, true },
	{ "vm-create",	2,  op_vm_create,	false, true },
	{ "bind",	10, op_bind,		true,  true },
	{ "handoff",	3,  op_handoff,		false, true },
	{ "release",	4,  op_release,		true,  true },
	{ "vm-close",	1,  op_vm_close,	false, true },
	{ "param",	1,  op_param,		false, false },
	{ "takeover",	1,  op_param_takeover,	false, false },
	{ "no-direct-map", 1, op_param_no_direct_map, false, false },
	{ "kvm-gmemfd",	3,  op_guest_memfd,	false, true },
	{ "pass",	2,  op_pass,		false, true },
	{ "race-close",	1,  op_race_close,	false, false },
	{ "fork",	1,  op_fork,		false, false },
};

#define NR_OPS ARRAY_SIZE(fuzz_ops)

static unsigned long op_counts[NR_OPS];

static void run_ops(struct fuzz *f, unsigned long n, bool nested)
{
	unsigned int total = 0, i, w;
	unsigned long k;

	for (i = 0; i < NR_OPS; i++)
		total += fuzz_ops[i].weight;
	for (k = 0; k < n; k++) {
		w = below(f, total);
		for (i = 0; w >= fuzz_ops[i].weight; i++)
			w -= fuzz_ops[i].weight;
		if ((f->racing && !fuzz_ops[i].racing_ok) ||
		    (f->child && !fuzz_ops[i].child_ok) ||
		    (nested && !fuzz_ops[i].racing_ok)) {
			k--;
			continue;
		}
		f->op_nr++;
		f->op_name = fuzz_ops[i].name;
		f->fired = false;
		op_counts[i]++;
		fuzz_ops[i].fn(f);
		if (f->audit && !f->racing)
			audit_fds(f);
	}
}

/* ---- setup, end state ---- */

static void on_signal(int sig)
{
}

static unsigned long env_ul(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

/*
 * The fd table against the process's real fds: a stale entry or an fd
 * nobody tracks is a fuzzer bug, and would blur the end-state check.
 */
static void audit_fds(struct fuzz *f)
{
	bool tracked[1024] = { false };
	char path[64], link[128];
	struct dirent *e;
	ssize_t n;
	DIR *d;
	int i, fd;

	for (i = 0; i < MAX_FDS; i++) {
		if (f->fds[i].kind == K_FREE)
			continue;
		if (fcntl(f->fds[i].fd, F_GETFD) < 0)
			fail(f, "audit: slot %d (kind %d) holds fd %d, which is closed", i,
			     f->fds[i].kind, f->fds[i].fd);
		else if (f->fds[i].fd < 1024)
			tracked[f->fds[i].fd] = true;
	}
	d = opendir("/proc/self/fd");
	if (!d)
		return;
	while ((e = readdir(d))) {
		fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d) || fd >= 1024 || tracked[fd] ||
		    f->inherited[fd])
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		fail(f, "audit: fd %d (%s) is open but not in the table", fd, link);
	}
	closedir(d);
}

/* The ids of a node list of /sys/devices/system/node ("0-1,3"); how many, or -1. */
static int node_ids(const char *name, int *ids, int max)
{
	char path[96], b[512] = "", *q = b;
	long a, z;
	int fd, n = 0;

	snprintf(path, sizeof(path), NODE_DIR "/%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	if (read(fd, b, sizeof(b) - 1) < 0)
		b[0] = 0;
	close(fd);
	while (*q >= '0' && *q <= '9') {
		a = strtol(q, &q, 10);
		z = *q == '-' ? strtol(q + 1, &q, 10) : a;
		for (; a <= z; a++) {
			if (n == max)
				return -1;
			ids[n++] = a;
		}
		if (*q == ',')
			q++;
	}
	return n;
}

/*
 * What the policy model needs to know of the machine: the nodes with
 * memory, nr_node_ids, and MAX_NUMNODES: the lowest node id that
 * set_mempolicy(2) refuses next to a node with memory, a power of two
 * (it reads @maxnode - 1 bits, hence k + 2 for bits 0..k).
 */
static void numa_setup(struct fuzz *f)
{
	static unsigned long m[MAXNODE_LIMIT / 64 + 1];
	int ids[NODE_BITS], n, i;
	long k, r;

	n = node_ids("has_memory", f->mem_node, MAX_MEM_NODES);
	if (n <= 0) {
		f->mem_node[0] = 0;
		n = 1;
	}
	f->nr_mem_nodes = n;
	for (i = 0; i < n; i++)
		if (f->mem_node[i] < NODE_BITS)
			nbit_set(f->mem_nodes, f->mem_node[i]);
	n = node_ids("possible", ids, NODE_BITS);
	f->nr_node_ids = n > 0 ? ids[n - 1] + 1 : 1;
	f->max_nodes = 1;
	for (k = 1; k < (long)MAXNODE_LIMIT; k <<= 1) {
		if (k <= f->mem_node[0])
			continue;
		memset(m, 0, sizeof(m));
		nbit_set(m, f->mem_node[0]);
		nbit_set(m, k);
		r = syscall(SYS_set_mempolicy, MPOL_BIND, m, k + 2);
		syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0);
		if (r && errno == EINVAL) {
			f->max_nodes = k;
			break;
		}
	}
}

/* The text of @path, without its newline, in @buf; "" if unreadable. */
static void read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

static bool memcg_setup(void)
{
	char v[32];

	if (write_str("/sys/fs/cgroup/cgroup.subtree_control", "+memory"))
		return false;
	if (mkdir(MEMCG_DIR, 0755) && errno != EEXIST)
		return false;
	snprintf(v, sizeof(v), "%llu", MEMCG_LIMIT);
	return !write_str(MEMCG_DIR "/memory.max", v);
}

FIXTURE(fuzz) {
	struct fuzz f;
};

FIXTURE_SETUP(fuzz)
{
	int dev = gmem_open_dev(_metadata);

	close(dev);
}

FIXTURE_TEARDOWN(fuzz)
{
}

/* In CI: GMEM_FUZZ_OPS operations; long runs by hand may take hours. */
TEST_F_TIMEOUT(fuzz, abi, 3600)
{
	struct fuzz *f = &self->f;
	unsigned long seed_v = env_ul("GMEM_FUZZ_SEED", 1);
	unsigned long nr = env_ul("GMEM_FUZZ_OPS", 20000);
	unsigned long secs = env_ul("GMEM_FUZZ_SECONDS", 0);
	uint64_t files0 = read_u64(SYSFS_FILES), bytes0 = read_u64(SYSFS_BYTES);
	uint64_t param0 = read_u64(PARAM), files1, bytes1;
	uint64_t taken0 = read_u64(SYSFS_TAKEN), declined0 = read_u64(SYSFS_DECLINED);
	uint64_t taken1, declined1;
	bool takeover0 = read_takeover();
	bool nodirect0 = read_bool_param(PARAM_NO_DIRECT_MAP);
	uint64_t unmapped0 = read_u64(SYSFS_UNMAPPED), unmapped1;
	char nodes0[512], nodes1[512];
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } };
	struct sigaction sa = { .sa_handler = on_signal };
	pthread_mutexattr_t ma;
	pthread_rwlockattr_t ra;
	struct timespec t0, t1;
	unsigned long done = 0, calls = 0, errs = 0;
	struct gmem_failnth fi = { .fd = -1 };
	char why[256] = "";
	double secs_f;
	int vms0 = gmem_count_vms_debugfs(), vms1 = -1, kvm, i, e, tries;
	int structs0 = gmem_count_vms_vmalloc(), structs1 = -1;
	char param_s[32], blocks0[16] = "";
	int bfd;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < MAX_FDS; i++)
		forget(&f->fds[i]);
	f->who = "main";
	f->verbose = env_ul("GMEM_FUZZ_VERBOSE", 0);
	f->nth_pct = env_ul("GMEM_FUZZ_FAIL_NTH", 10);
	f->nth_fd = -1;
	if (f->nth_pct && !gmem_failnth_setup(&fi, why, sizeof(why)))
		f->nth_fd = nth_open();
	else
		TH_LOG("no fail-nth (%s): allocation failures are not injected",
		       f->nth_pct ? why : "GMEM_FUZZ_FAIL_NTH=0");
	f->audit = env_ul("GMEM_FUZZ_AUDIT", 0);
	numa_setup(f);
	read_text(SYSFS_NODE_BYTES, nodes0, sizeof(nodes0));
	TH_LOG("nodes: %d with memory, nr_node_ids %d, MAX_NUMNODES %d; node_bytes %s",
	       f->nr_mem_nodes, f->nr_node_ids, f->max_nodes, nodes0);
	for (i = 0; i < 1024; i++)
		f->inherited[i] = fcntl(i, F_GETFD) >= 0;
	seed(f, seed_v);
	f->sh = mmap(NULL, sizeof(*f->sh), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, f->sh);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&f->sh->lock, &ma);
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED);
	pthread_rwlock_init(&f->sh->param_lock, &ra);
	pthread_rwlock_init(&f->sh->memcg_lock, &ra);
	f->sh->max_file_size = param0;
	f->sh->takeover = takeover0;
	ASSERT_EQ(0, access(PARAM_TAKEOVER, W_OK))
		TH_LOG("%s: %s", PARAM_TAKEOVER, strerror(errno));
	bfd = open(PARAM_BLOCKS, O_RDONLY);
	ASSERT_LE(0, bfd) TH_LOG("open %s: %s", PARAM_BLOCKS, strerror(errno));
	ASSERT_LT(0, read(bfd, blocks0, sizeof(blocks0) - 1));
	close(bfd);
	/* Never written but for buf: the rest reads as zeroes, from the zero page. */
	f->src = mmap(NULL, (SRC_PAGES + 1) * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, f->src);
	f->buf = f->src + (SRC_PAGES - 4) * PAGE;
	f->guard = f->src + SRC_PAGES * PAGE;
	ASSERT_EQ(0, mprotect(f->guard, PAGE, PROT_NONE));
	f->ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, f->ro);
	/* After the page-sized mappings, so that none of them fills this hole. */
	f->unmapped = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_EQ(0, munmap(f->unmapped, PAGE));
	f->slot_mem = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, f->slot_mem);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm >= 0) {
		f->vm_types = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
		if (f->vm_types < 0)
			f->vm_types = 0;
		close(kvm);
	}
	if (!(f->vm_types & (1 << KVM_X86_SW_PROTECTED_VM)))
		TH_LOG("no KVM_X86_SW_PROTECTED_VM: binding is not fuzzed");
	f->memcg = memcg_setup();
	if (!f->memcg)
		TH_LOG("no memory cgroup: ENOMEM paths are not fuzzed");
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	ASSERT_EQ(0, sigaction(SIGCHLD, &sa, NULL));
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < nr) {
		unsigned long batch = nr - done < 500 ? nr - done : 500;

		run_ops(f, batch, false);
		done += batch;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (secs && (unsigned long)(t1.tv_sec - t0.tv_sec) >= secs)
			break;
	}
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	audit_fds(f);
	for (i = 0; i < MAX_FDS; i++)
		if (f->fds[i].kind != K_FREE)
			drop(&f->fds[i]);
	reap(f, true);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	snprintf(param_s, sizeof(param_s), "%llu", (unsigned long long)param0);
	EXPECT_EQ(0, write_str(PARAM, param_s));
	EXPECT_EQ(0, write_str(PARAM_BLOCKS, blocks0));
	EXPECT_EQ(0, write_str(PARAM_TAKEOVER, takeover0 ? "Y" : "N"));
	EXPECT_EQ(0, write_str(PARAM_NO_DIRECT_MAP, nodirect0 ? "Y" : "N"));
	taken1 = read_u64(SYSFS_TAKEN);
	declined1 = read_u64(SYSFS_DECLINED);
	if (f->memcg)
		rmdir(MEMCG_DIR);
	if (f->nth_fd >= 0)
		close(f->nth_fd);
	gmem_failnth_restore(&fi);

	/* Releases run at the last close; VM destruction may follow an RCU grace. */
	for (tries = 0; tries < 100; tries++) {
		files1 = read_u64(SYSFS_FILES);
		bytes1 = read_u64(SYSFS_BYTES);
		vms1 = gmem_count_vms_debugfs();
		structs1 = gmem_count_vms_vmalloc();
		unmapped1 = read_u64(SYSFS_UNMAPPED);
		read_text(SYSFS_NODE_BYTES, nodes1, sizeof(nodes1));
		if (files1 == files0 && bytes1 == bytes0 && vms1 == vms0 &&
		    structs1 == structs0 && unmapped1 == unmapped0 && !strcmp(nodes0, nodes1))
			break;
		usleep(100000);
	}

	for (i = 0; i <= GMEM_ABI_NR; i++) {
		char line[512] = "";
		unsigned long ok = f->sh->calls[i][0], n = ok;
		int len = 0;

		for (e = 1; e < 136; e++) {
			unsigned long c = f->sh->calls[i][e];

			if (!c)
				continue;
			n += c;
			errs += c;
			len += snprintf(line + len, sizeof(line) - len, " %s %lu",
					errname(e), c);
		}
		calls += n;
		if (n)
			TH_LOG("  %-31s %6lu calls, %6lu ok; errors:%s",
			       i == GMEM_ABI_NR ? "KVM_CREATE_VM" : gmem_abi[i].name, n, ok,
			       line);
	}
	secs_f = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	TH_LOG("fuzz: seed %lu: %lu operations in the main process, %lu in %lu child processes; %lu calls judged, %lu failed with a documented errno; %lu failures; %.1f s, %.0f operations/s",
	       seed_v, done, (unsigned long)f->sh->child_ops,
	       (unsigned long)f->sh->children, calls, errs,
	       (unsigned long)f->sh->failures, secs_f,
	       (done + f->sh->child_ops) / (secs_f > 0 ? secs_f : 1));
	TH_LOG("fail-nth: %lu calls armed, %lu allocation failures injected",
	       (unsigned long)f->sh->armed, (unsigned long)f->sh->fired);
	TH_LOG("takeover: takeover_files +%llu (expected %lu), takeover_declined +%llu (expected %lu, up to %lu more)",
	       (unsigned long long)(taken1 - taken0), (unsigned long)f->sh->taken_over,
	       (unsigned long long)(declined1 - declined0), (unsigned long)f->sh->declined,
	       (unsigned long)f->sh->declined_maybe);
	for (i = 0; i < (int)NR_OPS; i++)
		TH_LOG("  op %-10s %lu", fuzz_ops[i].name, op_counts[i]);
	for (i = 0; i < X_NR; i++)
		TH_LOG("  exact check %-12s %lu", exact_names[i],
		       (unsigned long)f->sh->exact[i]);
	TH_LOG("end state: unmapped_bytes %llu (start %llu)", (unsigned long long)unmapped1,
	       (unsigned long long)unmapped0);
	TH_LOG("end state: node_bytes %s (start %s)", nodes1, nodes0);
	TH_LOG("end state: gmem files %llu (start %llu), allocated_bytes %llu (start %llu), KVM VMs %d/%d (debugfs/vmalloc; start %d/%d); %d files bound in the run (the model holds %d)",
	       (unsigned long long)files1,
	       (unsigned long long)files0, (unsigned long long)bytes1,
	       (unsigned long long)bytes0, vms1, structs1, vms0, structs0,
	       f->sh->nr_owners, OWNERS_FULL);
	EXPECT_EQ(0UL, (unsigned long)f->sh->failures);
	/* The calls of every process, on the counters since the start. */
	EXPECT_EQ((uint64_t)f->sh->taken_over, taken1 - taken0);
	EXPECT_LE((uint64_t)f->sh->declined, declined1 - declined0);
	EXPECT_GE((uint64_t)(f->sh->declined + f->sh->declined_maybe), declined1 - declined0);
	EXPECT_EQ(files0, files1);
	EXPECT_EQ(bytes0, bytes1);
	EXPECT_EQ(unmapped0, unmapped1);
	EXPECT_STREQ(nodes0, nodes1);
	EXPECT_EQ(vms0, vms1);
	EXPECT_EQ(structs0, structs1);
}

TEST_HARNESS_MAIN
