// SPDX-License-Identifier: GPL-2.0-only
/*
 * Handoff: a gmem file made with GMEM_CREATE stays the VM's that first
 * bound it until the file is closed or the VMM, holding the VM's fd,
 * releases it with GMEM_RELEASE_VM once the VM has no memslot on it
 * (kernel/patches/6.12/0005).  Then another VM, of another process that
 * got the fd over a unix socket, may bind it: a VMM live update.
 *
 * Process A is a child forked by the test before A creates its VM and the
 * file; the test's own process is B, which gets the fd with SCM_RIGHTS
 * only.
 *
 *  - guest_data_survives: A's guest writes a pattern, derived from a seed
 *    in the guest, into 4 blocks of 2 MiB spread over a 4 GiB file (8 MiB
 *    touched, mapped 2M: KVM's pages_2m); A deletes its memslots (the
 *    release fails with EBUSY before), releases the file, sends the fd
 *    and exits.  fdinfo names A's VM until the release, none until B
 *    binds the file, then B's VM.  B's guest reads every word back, through 2M mappings
 *    again.  Before and after the bind the host can neither read the
 *    pages (read(): EINVAL) nor write them (GMEM_WRITE: EPERM).
 *  - guest_data_new_layout: the same, B mapping the file with one memslot
 *    per block, at other GPAs, with non-zero guest_memfd_offset.
 *  - busy_until_released: B's bind fails with EBUSY while A has two
 *    memslots on the file, one, and none; so does A's release until
 *    its memslots are gone, and B cannot release A's VM with its own VM's
 *    fd (EINVAL).  Once A released the file, B binds it; then A's bind is
 *    EBUSY, until B deletes its memslot and releases.  A VMM that exits
 *    without releasing leaves the file busy and its VM alive.
 *  - first_vm_freed: A's VM is freed when A closes its VM fd after the
 *    handoff (VMs counted in /proc/vmallocinfo and KVM's debugfs); before
 *    0005 the file kept it until the file was closed.
 *  - takeover_file_not_handed_off: a file from KVM_CREATE_GUEST_MEMFD
 *    with takeover on stays its VM's: another VM's bind fails with EINVAL
 *    while the VM has memslots on it and after it deleted them, as does
 *    GMEM_RELEASE_VM, and the file keeps the VM alive; a GMEM_CREATE file
 *    in the same sequence is EBUSY, then released and handed off.
 *  - failed_bind_released: a memslot that KVM refuses after binding the
 *    file (a GPA above what the MMU maps) leaves the file the VM's, as it
 *    is documented; GMEM_RELEASE_VM lets the VM go and another VM bind.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_kvm_util.h"
#include "gmem_leak.h"
#include <gmem.h>

#define FILE_SIZE	(4ULL * SZ_1G)
#define HALF		(FILE_SIZE / 2)
#define NCHUNKS		4
#define CHUNK		SZ_2M
#define MASK		0x5a5a5a5a5a5a5a5aULL

/* A's layout: two memslots, each on half of the file, at A_GPA. */
#define SLOT_A		10
#define A_GPA		(1ULL << 32)
/* B's other layout: memslot B_SLOT + c on [chunk_off[c] - 2M, + 6M). */
#define B_SLOT		20
#define B_GPA		(1ULL << 34)
#define B_STRIDE	(16ULL * SZ_1M)
#define B_SLOT_SIZE	(3ULL * CHUNK)
/* A GPA above any MMU's reach: KVM refuses it after binding the file. */
#define FAR_GPA		(1ULL << 52)

/* The 2 MiB blocks the guests touch, as file offsets: all else is holes. */
static const uint64_t chunk_off[NCHUNKS] = {
	4ULL * SZ_1M, SZ_1G + 6ULL * SZ_1M, 2ULL * SZ_1G + 200ULL * SZ_1M,
	FILE_SIZE - 4ULL * SZ_1M,
};

/* Where the guest finds each block; set by the host, synced to the guest. */
static uint64_t chunk_gpa[NCHUNKS];

/* The word at byte @off of the file (splitmix64 of the seed). */
static inline uint64_t pattern(uint64_t seed, uint64_t off)
{
	uint64_t z = seed + off * 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void guest_write(uint64_t seed_masked)
{
	uint64_t seed = seed_masked ^ MASK, c, i;

	GUEST_SYNC(1);
	for (c = 0; c < NCHUNKS; c++)
		for (i = 0; i < CHUNK; i += 8)
			*(volatile uint64_t *)(chunk_gpa[c] + i) =
				pattern(seed, chunk_off[c] + i);
	GUEST_DONE();
}

/* Stage 2 reports the words that differ and the first one's file offset. */
static void guest_check(uint64_t seed_masked)
{
	uint64_t seed = seed_masked ^ MASK, c, i, bad = 0, first = -1ULL, words = 0;

	GUEST_SYNC(1);
	for (c = 0; c < NCHUNKS; c++) {
		for (i = 0; i < CHUNK; i += 8, words++) {
			if (*(volatile uint64_t *)(chunk_gpa[c] + i) ==
			    pattern(seed, chunk_off[c] + i))
				continue;
			if (!bad++)
				first = chunk_off[c] + i;
		}
	}
	GUEST_SYNC_ARGS(2, bad, first, words, 0);
	GUEST_DONE();
}

FIXTURE(handoff) {
	int takeover;		/* -1: nothing to put back */
	char blocks[16];
};

FIXTURE_SETUP(handoff)
{
	self->takeover = -1;
	self->blocks[0] = '\0';
	REQUIRE_GMEM_KVM();
	gmem_blocks_param_get(self->blocks, sizeof(self->blocks));
	/* GMEM_CREATE_BLOCKS decides, whatever the default. */
	gmem_blocks_param_set("flag");
	self->takeover = gmem_takeover_param_get();
}

FIXTURE_TEARDOWN(handoff)
{
	if (self->takeover >= 0)
		gmem_takeover_param_set(self->takeover);
	if (self->blocks[0])
		gmem_blocks_param_set(self->blocks);
}

/* ---- the socket between A and B ---- */

/* Send @len bytes of @buf, with @fd attached unless it is negative. */
static int send_msg(int sock, int fd, const void *buf, size_t len)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (fd >= 0) {
		msg.msg_control = ctl;
		msg.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, 0) == (ssize_t)len ? 0 : -1;
}

/* Receive @len bytes into @buf; *@fd: the fd attached, or -1. */
static int recv_msg(int sock, int *fd, void *buf, size_t len)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			      .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;

	*fd = -1;
	if (recvmsg(sock, &msg, MSG_WAITALL) != (ssize_t)len)
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

/* What A saw, sent with the fd. */
struct a_report {
	pid_t pid;
	int named_while_bound;	/* fdinfo: gmem-vm: kvm-<A's pid> */
	int named_after_delete;	/* still a gmem-vm line after the deletions */
	int named_after_release;	/* and after GMEM_RELEASE_VM */
	int delete_err[2];	/* errno of deleting each memslot, or 0 */
	int release_bound;	/* errno of GMEM_RELEASE_VM with memslots bound */
	int release_err;	/* errno of GMEM_RELEASE_VM after the deletions */
	long long flags;	/* fdinfo gmem-flags */
	long long allocated;	/* fdinfo gmem-allocated after the guest ran */
	uint64_t new_2m;	/* pages_2m of A's VM: new 2M mappings */
};

enum { CMD_DELETE, CMD_BIND, CMD_RELEASE, CMD_FREE_VM, CMD_QUIT };

struct a_cmd {
	int op;
	int slot;		/* SLOT_A or SLOT_A + 1 */
};

/* A 2 MiB-aligned shared view of @size bytes, never touched. */
static void *shared_view(uint64_t size)
{
	void *p = mmap(NULL, size + SZ_2M, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	TEST_ASSERT(p != MAP_FAILED, "mmap %#lx: %s", size, strerror(errno));
	return align_ptr_up(p, SZ_2M);
}

/* Memslot SLOT_A + @half of A's layout on @fd; 0 or errno. */
static int bind_half(struct kvm_vm *vm, int half, int fd, char *hva)
{
	return __vm_set_user_memory_region2(vm, SLOT_A + half, KVM_MEM_GUEST_MEMFD,
					    A_GPA + half * HALF, HALF, hva + half * HALF,
					    fd, half * HALF) ? errno : 0;
}

/* GMEM_RELEASE_VM of @fd from the VM of @vm_fd; 0 or errno. */
static int release(int fd, int vm_fd)
{
	struct gmem_release_vm rel = { .vm_fd = vm_fd };

	return ioctl(fd, GMEM_RELEASE_VM, &rel) ? errno : 0;
}

/* Delete memslot @slot of @vm; 0 or errno. */
static int delete_slot(struct kvm_vm *vm, int slot)
{
	return __vm_set_user_memory_region2(vm, slot, 0, 0, 0, NULL, -1, 0) ? errno : 0;
}

static bool fdinfo_names_vm(int fd, pid_t pid)
{
	char line[64];

	snprintf(line, sizeof(line), "gmem-vm:\tkvm-%d\n", pid);
	return fdinfo_has(fd, line);
}

/*
 * Process A, forked before the file exists.  With @guest: its guest
 * writes the pattern, A deletes its memslots, sends the fd and exits.
 * Without: A sends the fd with both memslots bound, then does what B
 * asks (struct a_cmd, answered with an int) until CMD_QUIT or EOF.
 */
static void __attribute__((noreturn)) process_a(int sock, bool guest, uint64_t seed)
{
	struct a_report rep = { .pid = getpid() };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct a_cmd cmd;
	int fd, c, r;
	char *hva;

	if (guest)
		vm = __vm_create_shape_with_one_vcpu(protected_shape, &vcpu, 64, guest_write);
	else
		vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = gmem_file(FILE_SIZE, GMEM_CREATE_BLOCKS);
	rep.flags = fdinfo_value(fd, "gmem-flags");
	hva = shared_view(FILE_SIZE);
	TEST_ASSERT(!bind_half(vm, 0, fd, hva) && !bind_half(vm, 1, fd, hva),
		    "A: bind: %s", strerror(errno));
	rep.named_while_bound = fdinfo_names_vm(fd, getpid());

	if (guest) {
		for (c = 0; c < NCHUNKS; c++) {
			chunk_gpa[c] = A_GPA + chunk_off[c];
			vm_mem_set_private(vm, chunk_gpa[c], CHUNK);
			virt_map(vm, chunk_gpa[c], chunk_gpa[c], CHUNK / PAGE_SIZE);
		}
		sync_global_to_guest(vm, chunk_gpa);
		vcpu_args_set(vcpu, 1, seed ^ MASK);
		run_to_sync(vcpu, 1);
		rep.new_2m = vm_get_stat(vm, "pages_2m");
		run_to_sync(vcpu, 0);
		rep.new_2m = vm_get_stat(vm, "pages_2m") - rep.new_2m;
		rep.allocated = fdinfo_value(fd, "gmem-allocated");
		rep.release_bound = release(fd, vm->fd);
		rep.delete_err[0] = delete_slot(vm, SLOT_A);
		rep.delete_err[1] = delete_slot(vm, SLOT_A + 1);
		rep.named_after_delete = fdinfo_names_vm(fd, getpid());
		rep.release_err = release(fd, vm->fd);
		rep.named_after_release = fdinfo_has(fd, "gmem-vm");
	}
	TEST_ASSERT(!send_msg(sock, fd, &rep, sizeof(rep)), "A: sendmsg: %s",
		    strerror(errno));
	if (guest)
		_exit(0);

	while (read(sock, &cmd, sizeof(cmd)) == sizeof(cmd)) {
		switch (cmd.op) {
		case CMD_DELETE:
			r = delete_slot(vm, cmd.slot);
			break;
		case CMD_BIND:
			r = bind_half(vm, cmd.slot - SLOT_A, fd, hva);
			break;
		case CMD_RELEASE:
			r = release(fd, vm->fd);
			break;
		case CMD_FREE_VM:
			kvm_vm_free(vm);
			vm = NULL;
			r = 0;
			break;
		default:
			_exit(0);
		}
		if (write(sock, &r, sizeof(r)) != sizeof(r))
			_exit(1);
	}
	_exit(0);
}

/* Start process A; returns the fd it sends and fills @rep. */
static int start_a(struct __test_metadata *_metadata, bool guest, uint64_t seed,
		   int *sock, pid_t *pid, struct a_report *rep)
{
	int sv[2], fd;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* No gmem file exists yet: B gets it through the socket or not at all. */
	*pid = fork();
	ASSERT_LE(0, *pid);
	if (!*pid) {
		close(sv[0]);
		process_a(sv[1], guest, seed);
	}
	close(sv[1]);
	*sock = sv[0];
	EXPECT_EQ(0, recv_msg(*sock, &fd, rep, sizeof(*rep)))
		TH_LOG("nothing from process A");
	EXPECT_LE(0, fd) TH_LOG("no fd from process A");
	EXPECT_EQ(*pid, rep->pid);
	return fd;
}

/* Ask A to do @op on @slot; its answer (0 or errno). */
static int ask_a(int sock, int op, int slot)
{
	struct a_cmd cmd = { .op = op, .slot = slot };
	int r = -1;

	TEST_ASSERT(send(sock, &cmd, sizeof(cmd), MSG_NOSIGNAL) == sizeof(cmd), "to A: %s",
		    strerror(errno));
	TEST_ASSERT(read(sock, &r, sizeof(r)) == sizeof(r), "no answer from A");
	return r;
}

/* Wait for A; true if it exited with 0. */
static bool wait_a(int sock, pid_t pid)
{
	struct a_cmd cmd = { .op = CMD_QUIT };
	int st = -1;

	/* A may be gone already. */
	send(sock, &cmd, sizeof(cmd), MSG_NOSIGNAL);
	close(sock);
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st);
}

/* errno of a failing call, 0 if it succeeded. */
static int err_of(long r)
{
	return r < 0 ? errno : 0;
}

/* GMEM_WRITE of one page at @off; 0 or errno. */
static int gmem_write_page(int fd, uint64_t off)
{
	static uint64_t page[PAGE_SIZE / 8];
	struct gmem_write w = {
		.offset = off, .size = PAGE_SIZE, .user_addr = (uintptr_t)page,
	};

	page[0] = 0xbad;
	return err_of(ioctl(fd, GMEM_WRITE, &w));
}

/*
 * The host's view of the file that holds the pattern: no read, no
 * GMEM_WRITE into any page a guest was handed, the pattern's 8 MiB still
 * allocated.  @when says where the test is.
 */
static void host_locked_out(struct __test_metadata *_metadata, int fd, const char *when)
{
	char buf[PAGE_SIZE];
	int c;

	EXPECT_EQ(EINVAL, err_of(read(fd, buf, sizeof(buf))))
		TH_LOG("%s: read() of the file: expected EINVAL", when);
	for (c = 0; c < NCHUNKS; c++) {
		EXPECT_EQ(EPERM, gmem_write_page(fd, chunk_off[c]))
			TH_LOG("%s: GMEM_WRITE at %#lx, a page A's guest wrote: expected EPERM",
			       when, chunk_off[c]);
		EXPECT_EQ(EPERM, gmem_write_page(fd, chunk_off[c] + CHUNK - PAGE_SIZE))
			TH_LOG("%s: GMEM_WRITE at the end of block %d: expected EPERM", when, c);
	}
	EXPECT_EQ(NCHUNKS * CHUNK, fdinfo_value(fd, "gmem-allocated"))
		TH_LOG("%s: gmem-allocated %lld", when, fdinfo_value(fd, "gmem-allocated"));
}

/* Memslots of B's @relayout (or A's) layout on @fd; 0 or the first errno. */
static int bind_b(struct kvm_vm *vm, bool relayout, int fd, char *hva)
{
	uint64_t gpa, off;
	int c, r;

	if (!relayout) {
		r = bind_half(vm, 0, fd, hva);
		return r ?: bind_half(vm, 1, fd, hva);
	}
	for (c = 0; c < NCHUNKS; c++) {
		gpa = B_GPA + c * B_STRIDE;
		off = chunk_off[c] - CHUNK;	/* never 0 */
		if (__vm_set_user_memory_region2(vm, B_SLOT + c, KVM_MEM_GUEST_MEMFD, gpa,
						 B_SLOT_SIZE, hva + c * B_STRIDE, fd, off))
			return errno;
	}
	return 0;
}

static void handoff_guest_data(struct __test_metadata *_metadata, bool relayout)
{
	uint64_t seed = 0x0123456789abcdefULL ^ ((uint64_t)getpid() << 20), m2;
	struct kvm_vcpu *vcpu;
	struct a_report rep;
	struct kvm_vm *vm;
	struct ucall uc;
	int sock, fd, c;
	pid_t a;
	char *hva;

	fd = start_a(_metadata, true, seed, &sock, &a, &rep);
	ASSERT_TRUE(wait_a(sock, a)) TH_LOG("process A failed");
	ASSERT_LE(0, fd);

	/* What A saw. */
	EXPECT_EQ(GMEM_CREATE_BLOCKS, rep.flags & GMEM_CREATE_BLOCKS)
		TH_LOG("the file has no 2 MiB blocks: gmem-flags %#llx", rep.flags);
	EXPECT_TRUE(rep.named_while_bound) TH_LOG("fdinfo did not name A's VM");
	EXPECT_EQ(NCHUNKS * CHUNK, rep.allocated)
		TH_LOG("A: gmem-allocated %lld", rep.allocated);
	EXPECT_EQ(NCHUNKS, rep.new_2m) TH_LOG("A's guest: %lu new 2M mappings",
					      rep.new_2m);
	EXPECT_EQ(EBUSY, rep.release_bound)
		TH_LOG("A: GMEM_RELEASE_VM with both memslots bound: expected EBUSY");
	EXPECT_EQ(0, rep.delete_err[0]);
	EXPECT_EQ(0, rep.delete_err[1]);
	EXPECT_TRUE(rep.named_after_delete)
		TH_LOG("A: the deletions alone let go of the VM (fdinfo)");
	EXPECT_EQ(0, rep.release_err) TH_LOG("A: GMEM_RELEASE_VM after the deletions");
	EXPECT_FALSE(rep.named_after_release) TH_LOG("A: gmem-vm in fdinfo after the release");

	/* A is gone, having released it: the file is nobody's, and still locked. */
	EXPECT_FALSE(fdinfo_has(fd, "gmem-vm")) TH_LOG("gmem-vm in fdinfo before B's bind");
	EXPECT_EQ(FILE_SIZE, fdinfo_value(fd, "gmem-size"));
	host_locked_out(_metadata, fd, "unbound");

	/* B: a new VM, private attributes first, then the file. */
	vm = __vm_create_shape_with_one_vcpu(protected_shape, &vcpu, 64, guest_check);
	for (c = 0; c < NCHUNKS; c++) {
		chunk_gpa[c] = relayout ? B_GPA + c * B_STRIDE + CHUNK : A_GPA + chunk_off[c];
		vm_mem_set_private(vm, chunk_gpa[c], CHUNK);
		virt_map(vm, chunk_gpa[c], chunk_gpa[c], CHUNK / PAGE_SIZE);
	}
	sync_global_to_guest(vm, chunk_gpa);
	hva = shared_view(relayout ? NCHUNKS * B_STRIDE : FILE_SIZE);
	ASSERT_EQ(0, bind_b(vm, relayout, fd, hva))
		TH_LOG("B's bind after A deleted its memslots: %s", strerror(errno));
	EXPECT_TRUE(fdinfo_names_vm(fd, getpid()))
		TH_LOG("fdinfo does not name B's VM (kvm-%d) after the bind", getpid());

	vcpu_args_set(vcpu, 1, seed ^ MASK);
	run_to_sync(vcpu, 1);
	m2 = vm_get_stat(vm, "pages_2m");
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	ASSERT_EQ(UCALL_SYNC, uc.cmd);
	ASSERT_EQ(2, uc.args[1]);
	m2 = vm_get_stat(vm, "pages_2m") - m2;
	TH_LOG("B's guest: %lu words read, %lu wrong (first at %#lx), %lu new 2M mappings",
	       uc.args[4], uc.args[2], uc.args[3], m2);
	EXPECT_EQ(NCHUNKS * CHUNK / 8, uc.args[4]);
	EXPECT_EQ(0, uc.args[2]) TH_LOG("the pattern did not survive the handoff");
	EXPECT_EQ(NCHUNKS, m2) TH_LOG("B's guest did not map the blocks at 2M");
	run_to_sync(vcpu, 0);

	/* Bound to B now: the pages stay out of the host's reach. */
	host_locked_out(_metadata, fd, "bound to B");
	/* ... unlike a page no guest was ever handed. */
	EXPECT_EQ(0, gmem_write_page(fd, 3ULL * SZ_1G)) TH_LOG("GMEM_WRITE into a hole");

	for (c = 0; c < (relayout ? NCHUNKS : 2); c++)
		EXPECT_EQ(0, delete_slot(vm, (relayout ? B_SLOT : SLOT_A) + c));
	EXPECT_TRUE(fdinfo_names_vm(fd, getpid())) TH_LOG("B's deletions let go of B's VM");
	kvm_vm_free(vm);
	close(fd);
}

TEST_F_TIMEOUT(handoff, guest_data_survives, KVM_TEST_TIMEOUT)
{
	handoff_guest_data(_metadata, false);
}

TEST_F_TIMEOUT(handoff, guest_data_new_layout, KVM_TEST_TIMEOUT)
{
	handoff_guest_data(_metadata, true);
}

/* B's one memslot on the whole file, at another GPA than A's; 0 or errno. */
static int bind_whole(struct kvm_vm *vm, int fd, char *hva)
{
	return __vm_set_user_memory_region2(vm, B_SLOT, KVM_MEM_GUEST_MEMFD, B_GPA,
					    FILE_SIZE, hva, fd, 0) ? errno : 0;
}

TEST_F_TIMEOUT(handoff, busy_until_released, KVM_TEST_TIMEOUT)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	char *hva = shared_view(FILE_SIZE);
	struct a_report rep;
	int sock, fd, vms;
	pid_t a;

	fd = start_a(_metadata, false, 0, &sock, &a, &rep);
	ASSERT_LE(0, fd);
	EXPECT_TRUE(fdinfo_names_vm(fd, a)) TH_LOG("fdinfo does not name A's VM");

	/* Two memslots of A's VM on the file, one, none: still A's. */
	EXPECT_EQ(EBUSY, bind_whole(vm, fd, hva)) TH_LOG("A has 2 memslots: expected EBUSY");
	EXPECT_EQ(EBUSY, ask_a(sock, CMD_RELEASE, 0)) TH_LOG("A's release, 2 memslots: EBUSY");
	EXPECT_EQ(0, ask_a(sock, CMD_DELETE, SLOT_A));
	EXPECT_EQ(EBUSY, bind_whole(vm, fd, hva)) TH_LOG("A has 1 memslot: expected EBUSY");
	EXPECT_EQ(EBUSY, ask_a(sock, CMD_RELEASE, 0)) TH_LOG("A's release, 1 memslot: EBUSY");
	EXPECT_EQ(0, ask_a(sock, CMD_DELETE, SLOT_A + 1));
	EXPECT_TRUE(fdinfo_names_vm(fd, a)) TH_LOG("deleting A's memslots let go of A's VM");
	EXPECT_EQ(EBUSY, bind_whole(vm, fd, hva))
		TH_LOG("A has no memslot but did not release: expected EBUSY");
	/* B holds the file but not A's VM: it cannot take the file. */
	EXPECT_EQ(EINVAL, release(fd, vm->fd)) TH_LOG("B releasing A's file with its own VM");
	EXPECT_EQ(EBUSY, bind_whole(vm, fd, hva));

	/* A releases it: B's. */
	EXPECT_EQ(0, ask_a(sock, CMD_RELEASE, 0));
	EXPECT_FALSE(fdinfo_has(fd, "gmem-vm")) TH_LOG("gmem-vm after the release");
	EXPECT_EQ(0, ask_a(sock, CMD_RELEASE, 0)) TH_LOG("a second release: nothing to do");
	EXPECT_EQ(0, bind_whole(vm, fd, hva)) TH_LOG("B's bind after A's release");
	EXPECT_TRUE(fdinfo_names_vm(fd, getpid())) TH_LOG("fdinfo does not name B's VM");

	/* The other way round: A waits for B to delete and release. */
	EXPECT_EQ(EBUSY, ask_a(sock, CMD_BIND, SLOT_A)) TH_LOG("B has it: expected EBUSY");
	EXPECT_EQ(EINVAL, ask_a(sock, CMD_RELEASE, 0)) TH_LOG("A releasing B's file: EINVAL");
	EXPECT_EQ(0, delete_slot(vm, B_SLOT));
	EXPECT_EQ(EBUSY, ask_a(sock, CMD_BIND, SLOT_A)) TH_LOG("B deleted but kept it: EBUSY");
	EXPECT_EQ(0, release(fd, vm->fd));
	EXPECT_EQ(0, ask_a(sock, CMD_BIND, SLOT_A)) TH_LOG("A's bind once B released it");
	EXPECT_TRUE(fdinfo_names_vm(fd, a));
	EXPECT_EQ(EBUSY, bind_whole(vm, fd, hva)) TH_LOG("A has it again: expected EBUSY");

	/*
	 * A exits with its memslot in place: its VM lives on, pinned by the
	 * file B holds, and the file stays busy until B closes it.
	 */
	vms = gmem_count_vms_vmalloc();
	EXPECT_TRUE(wait_a(sock, a)) TH_LOG("process A failed");
	EXPECT_EQ(vms, gmem_count_vms_vmalloc()) TH_LOG("A's VM went with its memslot bound");
	EXPECT_EQ(EBUSY, bind_whole(vm, fd, hva))
		TH_LOG("A exited without releasing: expected EBUSY");
	EXPECT_TRUE(fdinfo_names_vm(fd, a));
	close(fd);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc()) TH_LOG("closing the file freed no VM");
	kvm_vm_free(vm);
}

TEST_F_TIMEOUT(handoff, first_vm_freed, KVM_TEST_TIMEOUT)
{
	int vms = gmem_count_vms_vmalloc(), dirs = gmem_count_vms_debugfs();
	struct a_report rep;
	struct kvm_vm *vm;
	int sock, fd;
	char *hva;
	pid_t a;

	ASSERT_LE(0, vms) TH_LOG("no /proc/vmallocinfo");
	fd = start_a(_metadata, false, 0, &sock, &a, &rep);
	ASSERT_LE(0, fd);
	EXPECT_EQ(vms + 1, gmem_count_vms_vmalloc()) TH_LOG("A's VM is not counted");
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	hva = shared_view(FILE_SIZE);
	EXPECT_EQ(vms + 2, gmem_count_vms_vmalloc());
	if (dirs >= 0)
		EXPECT_EQ(dirs + 2, gmem_count_vms_debugfs());

	EXPECT_EQ(0, ask_a(sock, CMD_DELETE, SLOT_A));
	EXPECT_EQ(0, ask_a(sock, CMD_DELETE, SLOT_A + 1));
	EXPECT_EQ(0, ask_a(sock, CMD_RELEASE, 0));
	EXPECT_EQ(0, bind_whole(vm, fd, hva));
	/* A's VM fd is still open: its VM is still there. */
	EXPECT_EQ(vms + 2, gmem_count_vms_vmalloc());

	/* A closes it (and keeps running): nothing else holds A's VM. */
	EXPECT_EQ(0, ask_a(sock, CMD_FREE_VM, 0));
	EXPECT_EQ(vms + 1, gmem_count_vms_vmalloc())
		TH_LOG("A's VM outlived its fd: the handed-off file pins it");
	if (dirs >= 0)
		EXPECT_EQ(dirs + 1, gmem_count_vms_debugfs());
	EXPECT_TRUE(wait_a(sock, a)) TH_LOG("process A failed");
	EXPECT_EQ(vms + 1, gmem_count_vms_vmalloc());

	/* B's VM, its memslot bound, is pinned by the file as A's was. */
	kvm_vm_free(vm);
	EXPECT_EQ(vms + 1, gmem_count_vms_vmalloc()) TH_LOG("B's bound VM is not pinned");
	close(fd);
	EXPECT_EQ(vms, gmem_count_vms_vmalloc());
	if (dirs >= 0)
		EXPECT_EQ(dirs, gmem_count_vms_debugfs());
}

/* Memslot @slot at @gpa on the first 2 MiB of @fd; 0 or errno. */
static int bind_2m(struct kvm_vm *vm, int slot, uint64_t gpa, int fd)
{
	return __vm_set_user_memory_region2(vm, slot, KVM_MEM_GUEST_MEMFD, gpa, SZ_2M,
					    NULL, fd, 0) ? errno : 0;
}

TEST_F(handoff, takeover_file_not_handed_off)
{
	struct kvm_vm *a, *b;
	int fd, plain, vms;

	if (self->takeover < 0)
		SKIP(return, "gmem has no takeover parameter");
	gmem_takeover_param_set(true);
	a = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	b = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = vm_create_guest_memfd(a, SZ_2M, 0);
	ASSERT_LE(0, fdinfo_value(fd, "gmem-id")) TH_LOG("takeover gave no gmem file");
	plain = gmem_file(SZ_2M, 0);

	/* While A's memslots are there: EINVAL for life, EBUSY for now. */
	EXPECT_EQ(0, bind_2m(a, SLOT_A, A_GPA, fd));
	EXPECT_EQ(0, bind_2m(a, SLOT_A + 1, A_GPA + SZ_2M, plain));
	EXPECT_EQ(EINVAL, bind_2m(b, SLOT_A, A_GPA, fd)) TH_LOG("takeover file, bound");
	EXPECT_EQ(EBUSY, bind_2m(b, SLOT_A + 1, A_GPA + SZ_2M, plain))
		TH_LOG("GMEM_CREATE file, bound");

	/* Once they are gone: still EINVAL, also to release; the other file moves. */
	EXPECT_EQ(0, delete_slot(a, SLOT_A));
	EXPECT_EQ(0, delete_slot(a, SLOT_A + 1));
	EXPECT_EQ(EINVAL, release(fd, a->fd)) TH_LOG("GMEM_RELEASE_VM of a takeover file");
	EXPECT_EQ(0, release(plain, a->fd)) TH_LOG("GMEM_RELEASE_VM of a GMEM_CREATE file");
	EXPECT_TRUE(fdinfo_names_vm(fd, getpid())) TH_LOG("takeover file let go of its VM");
	EXPECT_FALSE(fdinfo_has(plain, "gmem-vm"));
	EXPECT_EQ(EINVAL, bind_2m(b, SLOT_A, A_GPA, fd))
		TH_LOG("takeover file after its VM's memslots were deleted: expected EINVAL");
	EXPECT_EQ(0, bind_2m(b, SLOT_A + 1, A_GPA + SZ_2M, plain))
		TH_LOG("GMEM_CREATE file after the memslots were deleted and the release");
	/* Its own VM may bind it again. */
	EXPECT_EQ(0, bind_2m(a, SLOT_A, A_GPA, fd));
	EXPECT_EQ(0, delete_slot(a, SLOT_A));

	/* It pins its VM until it is closed, memslots or not. */
	vms = gmem_count_vms_vmalloc();
	kvm_vm_free(a);
	EXPECT_EQ(vms, gmem_count_vms_vmalloc()) TH_LOG("the takeover file let its VM go");
	close(fd);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc());
	EXPECT_EQ(0, delete_slot(b, SLOT_A + 1));
	kvm_vm_free(b);
	close(plain);
}

TEST_F(handoff, failed_bind_released)
{
	struct kvm_vm *a, *b, *c;
	int busy, fd, vms;

	a = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	b = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	c = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	busy = gmem_file(SZ_2M, 0);
	fd = gmem_file(SZ_2M, 0);

	/*
	 * KVM binds the file before it checks the GPA against the MMU: with
	 * the file busy, FAR_GPA gets EBUSY, not the GPA's EINVAL.
	 */
	EXPECT_EQ(0, bind_2m(c, SLOT_A, A_GPA, busy));
	EXPECT_EQ(EBUSY, bind_2m(a, SLOT_A, FAR_GPA, busy))
		TH_LOG("the GPA is refused before the bind: the test proves nothing");

	/* Bound, then refused: EINVAL, and the file is A's VM's, no memslot on it. */
	EXPECT_EQ(EINVAL, bind_2m(a, SLOT_A, FAR_GPA, fd)) TH_LOG("memslot at %#llx", FAR_GPA);
	EXPECT_TRUE(fdinfo_names_vm(fd, getpid())) TH_LOG("the failed bind left no VM");
	EXPECT_EQ(EBUSY, bind_2m(b, SLOT_A, A_GPA, fd)) TH_LOG("another VM before the release");

	/* Released, A's VM goes with its fd, the file still open. */
	EXPECT_EQ(0, release(fd, a->fd));
	EXPECT_FALSE(fdinfo_has(fd, "gmem-vm"));
	vms = gmem_count_vms_vmalloc();
	kvm_vm_free(a);
	EXPECT_EQ(vms - 1, gmem_count_vms_vmalloc()) TH_LOG("the released VM is still there");
	EXPECT_EQ(0, bind_2m(b, SLOT_A, A_GPA, fd)) TH_LOG("another VM after the release");
	EXPECT_TRUE(fdinfo_names_vm(fd, getpid()));

	EXPECT_EQ(0, delete_slot(b, SLOT_A));
	EXPECT_EQ(0, release(fd, b->fd));
	EXPECT_EQ(0, delete_slot(c, SLOT_A));
	EXPECT_EQ(0, release(busy, c->fd));
	kvm_vm_free(b);
	kvm_vm_free(c);
	EXPECT_EQ(vms - 3, gmem_count_vms_vmalloc());
	close(fd);
	close(busy);
}

TEST_HARNESS_MAIN
