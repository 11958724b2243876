// SPDX-License-Identifier: GPL-2.0-only
/*
 * Isolation: what a guest keeps in gmem memory stays the guest's.
 *
 *  - host_cannot_read: a guest writes a signature to private pages; the
 *    host tries every way to read them (read, pread, readv, preadv2,
 *    mmap, splice, sendfile, copy_file_range, io_uring, reopening the fd
 *    through /proc) and each fails with its documented errno; then it
 *    searches all of the VMM's memory through /proc/<pid>/mem and
 *    process_vm_readv, from the VMM itself and from another process.
 *    The same signature on one shared page is found, exactly there, so
 *    the search would have found the private copies if they were
 *    reachable.  The host's writes fail too, and the guest finds its
 *    data intact afterwards.
 *  - punched_page_reads_zero: pages punched out of the file under a
 *    running guest read as zeros when the guest touches them again.
 *  - scm_rights_one_vm_at_a_time: a file's memory goes to another VM
 *    only when whoever holds both the file and its VM lets it go.
 *    Another process that got the fd with SCM_RIGHTS cannot bind it to
 *    its VM (EBUSY) while ours has a memslot on it, nor once our VM
 *    deleted them all, nor once our VM's fd is closed; it cannot release
 *    the file with its own VM's fd (EINVAL).  After our GMEM_RELEASE_VM
 *    its VM binds the file, which then is out of our reach (EBUSY, and
 *    our release EINVAL) until that process releases it in turn.  A
 *    fresh file that goes to the other process first is its VM's.
 *    Ownership shows in fdinfo's gmem-vm (the VM's creator's pid),
 *    absent while the file has no VM.  What the next VM finds in the
 *    file's pages is kvm_handoff_test's business.
 *  - other_vm_reads_zero: pages one VM filled and gave back (punched,
 *    or freed with its file) read as zeros in the next VM that gets
 *    memory from gmem, by fault or by fallocate.
 *
 * The host never holds the signature in its memory: it is derived from
 * a seed in the guest, and the host only keeps it XORed with a mask.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/io_uring.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_kvm_util.h"
#include <gmem.h>

#define DATA_SLOT	10
#define DATA_GPA	(1ULL << 32)
#define SIG_PAGES	16			/* private pages with the signature */
#define CONTROL_PAGE	SIG_PAGES		/* a shared page with page 0's */
#define DATA_PAGES	(SIG_PAGES + 1)
#define SIG_WORDS	8			/* what the search looks for */
#define MASK		0x5a5a5a5a5a5a5a5aULL

FIXTURE(iso) {
};

FIXTURE_SETUP(iso)
{
	REQUIRE_GMEM_KVM();
}

FIXTURE_TEARDOWN(iso)
{
}

/* Word @j of page @p of the signature (splitmix64 of the seed). */
static inline uint64_t sig_word(uint64_t seed, uint64_t p, uint64_t j)
{
	uint64_t z = seed + (p << 20 | j) * 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/*
 * A VM with DATA_PAGES pages of gmem at DATA_GPA (private) whose shared
 * view is @shared; the control page is shared.
 */
static struct kvm_vm *data_vm(struct kvm_vcpu **vcpu, void *guest_code, int fd,
			      void **shared)
{
	struct kvm_vm *vm;

	vm = __vm_create_shape_with_one_vcpu(protected_shape, vcpu, 64, guest_code);
	/* Anonymous: one host mapping of the shared view, no alias. */
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA, DATA_SLOT, DATA_PAGES,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, DATA_GPA, DATA_GPA, DATA_PAGES);
	vm_mem_set_private(vm, DATA_GPA, SIG_PAGES * PAGE_SIZE);
	*shared = addr_gpa2hva(vm, DATA_GPA);
	return vm;
}

/* Run until the next ucall; returns its number (UCALL_SYNC, UCALL_DONE). */
static uint64_t run_to_ucall(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	if (get_ucall(vcpu, uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(*uc);
	return uc->cmd;
}

/* ---- host_cannot_read ---- */

/*
 * Write the signature to the private pages and page 0's first words to
 * the shared control page; sync; check the private pages are intact.
 */
static void guest_signature(uint64_t seed_masked)
{
	uint64_t seed = seed_masked ^ MASK, p, j;

	for (p = 0; p < SIG_PAGES; p++)
		for (j = 0; j < PAGE_SIZE / 8; j++)
			((volatile uint64_t *)(DATA_GPA + p * PAGE_SIZE))[j] =
				sig_word(seed, p, j);
	for (j = 0; j < SIG_WORDS; j++)
		((volatile uint64_t *)(DATA_GPA + CONTROL_PAGE * PAGE_SIZE))[j] =
			sig_word(seed, 0, j);
	GUEST_SYNC(1);
	for (p = 0; p < SIG_PAGES; p++)
		for (j = 0; j < PAGE_SIZE / 8; j++)
			__GUEST_ASSERT(((volatile uint64_t *)(DATA_GPA + p * PAGE_SIZE))[j] ==
				       sig_word(seed, p, j),
				       "private page %lu word %lu changed", p, j);
	GUEST_DONE();
}

struct search {
	uint64_t sig[SIG_PAGES][SIG_WORDS];	/* masked */
	unsigned long hits, control_hits, bytes, regions;
	uint64_t control;			/* address of the control page */
};

static void search_init(struct search *s, uint64_t seed)
{
	uint64_t p, j;

	memset(s, 0, sizeof(*s));
	for (p = 0; p < SIG_PAGES; p++)
		for (j = 0; j < SIG_WORDS; j++)
			s->sig[p][j] = sig_word(seed, p, j) ^ MASK;
}

/* Count signature heads in @buf, read from address @addr. */
static void search_chunk(struct search *s, const uint64_t *buf, size_t words, uint64_t addr)
{
	size_t i;
	int p, j;

	for (i = 0; i + SIG_WORDS <= words; i++) {
		for (p = 0; p < SIG_PAGES; p++) {
			for (j = 0; j < SIG_WORDS; j++)
				if ((buf[i + j] ^ MASK) != s->sig[p][j])
					break;
			if (j < SIG_WORDS)
				continue;
			if (addr + i * 8 == s->control)
				s->control_hits++;
			else
				s->hits++;
		}
	}
}

/*
 * Search every readable mapping of @pid, through /proc/<pid>/mem or,
 * with @vm_readv, process_vm_readv(2).
 */
static void search_process(struct search *s, pid_t pid, bool vm_readv)
{
	/* Not static: the KVM library loads the whole ELF into each guest. */
	const size_t buf_len = SZ_1M;
	uint64_t *buf = mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char path[64], line[512], perms[8];
	unsigned long lo, hi, a;
	FILE *maps;
	int mem = -1;

	TEST_ASSERT(buf != MAP_FAILED, "mmap");
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = fopen(path, "r");
	TEST_ASSERT(maps, "open %s: %s", path, strerror(errno));
	if (!vm_readv) {
		snprintf(path, sizeof(path), "/proc/%d/mem", pid);
		mem = open(path, O_RDONLY);
		TEST_ASSERT(mem >= 0, "open %s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), maps)) {
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[0] != 'r')
			continue;
		s->regions++;
		for (a = lo; a < hi; a += buf_len) {
			size_t len = hi - a < buf_len ? hi - a : buf_len;
			ssize_t n;

			if (vm_readv) {
				struct iovec l = { buf, len }, r = { (void *)a, len };

				n = process_vm_readv(pid, &l, 1, &r, 1, 0);
			} else {
				n = pread(mem, buf, len, a);
			}
			if (n <= 0)
				break;		/* [vvar] and the like */
			s->bytes += n;
			search_chunk(s, buf, n / 8, a);
			/* Leave no copy behind for a later region to find. */
			memset(buf, 0, n);
		}
	}
	fclose(maps);
	if (mem >= 0)
		close(mem);
	munmap(buf, buf_len);
}

/* Search @pid from a child process; returns the hits through a pipe. */
static void search_from_child(struct search *s, pid_t pid, bool vm_readv)
{
	int p[2], st;
	pid_t child;

	TEST_ASSERT(!pipe(p), "pipe");
	child = fork();
	TEST_ASSERT(child >= 0, "fork");
	if (!child) {
		search_process(s, pid, vm_readv);
		if (write(p[1], s, sizeof(*s)) != sizeof(*s))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	TEST_ASSERT(read(p[0], s, sizeof(*s)) == sizeof(*s), "child's search");
	close(p[0]);
	waitpid(child, &st, 0);
}

/* A minimal io_uring: one request, its result. */
static int uring_one(uint8_t opcode, int fd, void *buf, uint32_t len, uint64_t off,
		     int splice_fd_in)
{
	struct io_uring_params p = { 0 };
	struct io_uring_sqe *sqes, *sqe;
	struct io_uring_cqe *cqe;
	void *sq, *cq;
	size_t sq_len, cq_len;
	unsigned int *tail, *array, head;
	int ring, r;

	ring = syscall(__NR_io_uring_setup, 4, &p);
	TEST_ASSERT(ring >= 0, "io_uring_setup: %s", strerror(errno));
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		sq_len = sq_len > cq_len ? sq_len : cq_len;
		cq_len = sq_len;
	}
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		  IORING_OFF_SQ_RING);
	cq = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq :
	     mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		  IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	TEST_ASSERT(sq != MAP_FAILED && cq != MAP_FAILED && sqes != MAP_FAILED,
		    "io_uring mmap: %s", strerror(errno));

	sqe = &sqes[0];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = opcode;
	sqe->fd = fd;
	sqe->addr = (uint64_t)buf;
	sqe->len = len;
	sqe->off = off;
	if (opcode == IORING_OP_SPLICE) {
		sqe->splice_fd_in = splice_fd_in;
		sqe->splice_off_in = off;
		sqe->off = -1ULL;
		sqe->addr = 0;
	}
	tail = sq + p.sq_off.tail;
	array = sq + p.sq_off.array;
	array[*tail & *(unsigned int *)(sq + p.sq_off.ring_mask)] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	r = syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	TEST_ASSERT(r == 1, "io_uring_enter: %d %s", r, strerror(errno));
	head = __atomic_load_n((unsigned int *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
	cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
	      (head & *(unsigned int *)(cq + p.cq_off.ring_mask));
	r = cqe->res;
	munmap(sqes, p.sq_entries * sizeof(*sqes));
	if (cq != sq)
		munmap(cq, cq_len);
	munmap(sq, sq_len);
	close(ring);
	return r;
}

#define EXPECT_ERRNO(err, call) do {					\
	long __r;							\
	errno = 0;							\
	__r = (long)(call);						\
	EXPECT_EQ(-1, __r) TH_LOG("%s returned %ld", #call, __r);	\
	EXPECT_EQ(err, errno) TH_LOG("%s: errno %d (%s), expected %s",	\
				     #call, errno, strerror(errno), #err); \
} while (0)

TEST_F_TIMEOUT(iso, host_cannot_read, KVM_TEST_TIMEOUT)
{
	uint64_t seed = 0x0123456789abcdefULL ^ getpid(), *control;
	char buf[PAGE_SIZE], path[64];
	struct iovec iov = { buf, sizeof(buf) };
	struct kvm_vcpu *vcpu;
	struct search s;
	struct kvm_vm *vm;
	struct ucall uc;
	void *shared, *p;
	loff_t off;
	int fd, pipefd[2], memfd;

	fd = gmem_file(DATA_PAGES * PAGE_SIZE, 0);
	vm = data_vm(&vcpu, guest_signature, fd, &shared);
	vcpu_args_set(vcpu, 1, seed ^ MASK);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(vcpu, &uc));
	ASSERT_EQ(SIG_PAGES * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"))
		TH_LOG("the signature is not in the gmem file");

	/* Reading the fd, every way there is. */
	EXPECT_ERRNO(EINVAL, read(fd, buf, sizeof(buf)));
	EXPECT_ERRNO(ESPIPE, pread(fd, buf, sizeof(buf), 0));
	EXPECT_ERRNO(EINVAL, readv(fd, &iov, 1));
	EXPECT_ERRNO(ESPIPE, preadv(fd, &iov, 1, 0));
	EXPECT_ERRNO(EINVAL, preadv2(fd, &iov, 1, -1, 0));
	EXPECT_ERRNO(ESPIPE, preadv2(fd, &iov, 1, 0, RWF_NOWAIT));
	EXPECT_ERRNO(ENODEV, mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0) ==
			     MAP_FAILED ? -1 : 0);
	EXPECT_ERRNO(ENODEV, mmap(NULL, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0) ==
			     MAP_FAILED ? -1 : 0);
	ASSERT_EQ(0, pipe(pipefd));
	EXPECT_ERRNO(EINVAL, splice(fd, NULL, pipefd[1], NULL, PAGE_SIZE, SPLICE_F_NONBLOCK));
	off = 0;
	EXPECT_ERRNO(EINVAL, splice(fd, &off, pipefd[1], NULL, PAGE_SIZE, SPLICE_F_NONBLOCK));
	EXPECT_ERRNO(EINVAL, tee(fd, pipefd[1], PAGE_SIZE, SPLICE_F_NONBLOCK));
	/* A page of data to move, so that nothing returns early with 0. */
	memfd = memfd_create("iso", MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	memset(buf, 0x11, sizeof(buf));
	ASSERT_EQ(sizeof(buf), pwrite(memfd, buf, sizeof(buf), 0));
	EXPECT_ERRNO(EINVAL, sendfile(memfd, fd, NULL, PAGE_SIZE));
	off = 0;
	EXPECT_ERRNO(ESPIPE, sendfile(memfd, fd, &off, PAGE_SIZE));
	EXPECT_ERRNO(EXDEV, copy_file_range(fd, NULL, memfd, NULL, PAGE_SIZE, 0));
	EXPECT_ERRNO(EINVAL, copy_file_range(fd, NULL, fd, NULL, PAGE_SIZE, 0));
	EXPECT_EQ(-EINVAL, uring_one(IORING_OP_READ, fd, buf, sizeof(buf), 0, -1));
	EXPECT_EQ(-EINVAL, uring_one(IORING_OP_READ, fd, buf, sizeof(buf), -1ULL, -1));
	EXPECT_EQ(-EINVAL, uring_one(IORING_OP_READV, fd, &iov, 1, 0, -1));
	EXPECT_EQ(-EINVAL, uring_one(IORING_OP_SPLICE, pipefd[1], NULL, PAGE_SIZE, 0, fd));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	EXPECT_ERRNO(ENXIO, open(path, O_RDONLY));
	EXPECT_ERRNO(ENXIO, open(path, O_RDWR));

	/* Writing it, which would corrupt the guest's data. */
	memset(buf, 0xee, sizeof(buf));
	EXPECT_ERRNO(EINVAL, write(fd, buf, sizeof(buf)));
	EXPECT_ERRNO(ESPIPE, pwrite(fd, buf, sizeof(buf), 0));
	EXPECT_ERRNO(EINVAL, writev(fd, &iov, 1));
	EXPECT_ERRNO(EINVAL, sendfile(fd, memfd, NULL, PAGE_SIZE));
	EXPECT_ERRNO(EINVAL, splice(pipefd[0], NULL, fd, NULL, PAGE_SIZE, SPLICE_F_NONBLOCK));
	EXPECT_ERRNO(EXDEV, copy_file_range(memfd, NULL, fd, NULL, PAGE_SIZE, 0));
	EXPECT_EQ(-EINVAL, uring_one(IORING_OP_WRITE, fd, buf, sizeof(buf), 0, -1));
	close(memfd);
	close(pipefd[0]);
	close(pipefd[1]);

	/* The VMM's memory, from itself and from another process. */
	control = (uint64_t *)((char *)shared + CONTROL_PAGE * PAGE_SIZE);
	search_init(&s, seed);
	s.control = (uint64_t)control;
	search_process(&s, getpid(), false);
	TH_LOG("/proc/self/mem: %lu regions, %lu MiB: %lu copies of the signature, %lu on the shared control page",
	       s.regions, s.bytes >> 20, s.hits, s.control_hits);
	EXPECT_EQ(0, s.hits);
	EXPECT_EQ(1, s.control_hits) TH_LOG("the search does not find what is there");

	search_init(&s, seed);
	s.control = (uint64_t)control;
	search_from_child(&s, getpid(), false);
	TH_LOG("/proc/<pid>/mem from a child: %lu regions, %lu MiB: %lu copies, %lu on the control page",
	       s.regions, s.bytes >> 20, s.hits, s.control_hits);
	EXPECT_EQ(0, s.hits);
	EXPECT_EQ(1, s.control_hits);

	search_init(&s, seed);
	s.control = (uint64_t)control;
	search_from_child(&s, getpid(), true);
	TH_LOG("process_vm_readv from a child: %lu regions, %lu MiB: %lu copies, %lu on the control page",
	       s.regions, s.bytes >> 20, s.hits, s.control_hits);
	EXPECT_EQ(0, s.hits);
	EXPECT_EQ(1, s.control_hits);

	/* The shared view of the private pages never saw the guest's writes. */
	p = NULL;
	for (size_t i = 0; i < SIG_PAGES * PAGE_SIZE && !p; i++)
		if (((char *)shared)[i])
			p = (char *)shared + i;
	EXPECT_EQ(NULL, p) TH_LOG("the shared view of the private pages is not all zeros");

	/* And the guest still has all of its data. */
	EXPECT_EQ(UCALL_DONE, run_to_ucall(vcpu, &uc));
	kvm_vm_free(vm);
	close(fd);
}

/* ---- punched_page_reads_zero ---- */

enum { SYNC_FILLED = 1, SYNC_CHECKED };

/* Fill every private page, let the host punch half, check. */
static void guest_punch(void)
{
	uint64_t p, j;

	for (p = 0; p < SIG_PAGES; p++)
		for (j = 0; j < PAGE_SIZE / 8; j++)
			((volatile uint64_t *)(DATA_GPA + p * PAGE_SIZE))[j] = ~0ULL - j;
	GUEST_SYNC(SYNC_FILLED);
	/* The host punched the odd pages. */
	for (p = 0; p < SIG_PAGES; p++)
		for (j = 0; j < PAGE_SIZE / 8; j++) {
			uint64_t v = ((volatile uint64_t *)(DATA_GPA + p * PAGE_SIZE))[j];

			__GUEST_ASSERT(v == (p & 1 ? 0 : ~0ULL - j),
				       "page %lu word %lu: %#lx after the punch", p, j, v);
		}
	GUEST_SYNC(SYNC_CHECKED);
	GUEST_DONE();
}

TEST_F_TIMEOUT(iso, punched_page_reads_zero, KVM_TEST_TIMEOUT)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	void *shared;
	int fd, p;

	fd = gmem_file(DATA_PAGES * PAGE_SIZE, 0);
	vm = data_vm(&vcpu, guest_punch, fd, &shared);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(vcpu, &uc));
	ASSERT_EQ(SYNC_FILLED, uc.args[1]);
	ASSERT_EQ(SIG_PAGES * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	for (p = 1; p < SIG_PAGES; p += 2)
		ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				       p * PAGE_SIZE, PAGE_SIZE));
	EXPECT_EQ(SIG_PAGES / 2 * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(vcpu, &uc));
	ASSERT_EQ(SYNC_CHECKED, uc.args[1]);
	/* Faulted in again, fresh. */
	EXPECT_EQ(SIG_PAGES * PAGE_SIZE, fdinfo_value(fd, "gmem-allocated"));
	EXPECT_EQ(UCALL_DONE, run_to_ucall(vcpu, &uc));
	kvm_vm_free(vm);
	close(fd);
}

/* ---- scm_rights_one_vm_at_a_time ---- */

/* A command byte for the child, with @fd passed along unless it is -1. */
static int send_cmd(int sock, char cmd, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &cmd, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			      .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	if (fd < 0) {
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
	} else {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

/* The next command byte, or 0 at end of file; *@fd the fd with it, or -1. */
static char recv_cmd(int sock, int *fd)
{
	char ctl[CMSG_SPACE(sizeof(int))], cmd = 0;
	struct iovec iov = { &cmd, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			      .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;

	*fd = -1;
	if (recvmsg(sock, &msg, 0) != 1)
		return 0;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	return cmd;
}

static int bind_file(struct kvm_vm *vm, int slot, int fd, void *hva)
{
	return __vm_set_user_memory_region2(vm, DATA_SLOT + slot, KVM_MEM_GUEST_MEMFD,
					    DATA_GPA + slot * SZ_2M, SZ_2M,
					    (char *)hva + slot * SZ_2M, fd, 0);
}

static int unbind_file(struct kvm_vm *vm, int slot)
{
	return __vm_set_user_memory_region2(vm, DATA_SLOT + slot, 0, DATA_GPA + slot * SZ_2M,
					    0, NULL, -1, 0);
}

static int release_file(int fd, struct kvm_vm *vm)
{
	struct gmem_release_vm rel = { .vm_fd = vm->fd };

	return ioctl(fd, GMEM_RELEASE_VM, &rel);
}

/*
 * The child: a process that never had a gmem file but what comes over the
 * socket, with a VM of its own.  Commands, each answered with an errno (0:
 * done): 'b' with an fd: keep it (instead of the one before) and bind it
 * to our VM; 'u': delete that memslot; 'r': GMEM_RELEASE_VM on the fd
 * kept, with our VM's fd.  End of file: exit.
 */
static void scm_child(int sock)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	void *hva = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int fd, cur = -1, res;
	char cmd;

	while ((cmd = recv_cmd(sock, &fd))) {
		if (cmd == 'b') {
			close(cur);
			cur = fd;
			res = bind_file(vm, 0, fd, hva) ? errno : 0;
			/* Same file, other fd: fallocate works here either way. */
			if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE))
				res = 1000 + errno;
		} else if (cmd == 'u') {
			res = unbind_file(vm, 0) ? errno : 0;
		} else {
			res = release_file(cur, vm) ? errno : 0;
		}
		if (write(sock, &res, sizeof(res)) != sizeof(res))
			_exit(1);
	}
	close(cur);
	kvm_vm_free(vm);
	_exit(0);
}

static int ask_child(int sock, char cmd, int fd)
{
	int res = -1;

	TEST_ASSERT(!send_cmd(sock, cmd, fd), "sendmsg: %s", strerror(errno));
	TEST_ASSERT(read(sock, &res, sizeof(res)) == sizeof(res), "child's answer");
	return res;
}

/* fdinfo of @fd names the VM of process @pid, or (@pid 0) none. */
static bool owned_by(int fd, pid_t pid)
{
	char want[64];

	if (!pid)
		return !fdinfo_has(fd, "gmem-vm:");
	snprintf(want, sizeof(want), "gmem-vm:\tkvm-%d\n", pid);
	return fdinfo_has(fd, want);
}

#define EXPECT_CHILD(err, cmd, fd, what) do {					\
	int __res = ask_child(sv[0], cmd, fd);					\
										\
	EXPECT_EQ(err, __res) TH_LOG("%s: child's '%c': %d (%s), expected %s",	\
				     what, cmd, __res, strerror(__res), #err);	\
} while (0)

#define EXPECT_OURS(err, call, what) do {					\
	errno = 0;								\
	EXPECT_EQ(-1, call);							\
	EXPECT_EQ(err, errno) TH_LOG("%s: %s, expected %s", what,		\
				     strerror(errno), #err);			\
} while (0)

TEST_F_TIMEOUT(iso, scm_rights_one_vm_at_a_time, KVM_TEST_TIMEOUT)
{
	void *hva = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct kvm_vm *vm;
	int sv[2], fd, fd2, fd3, st;
	pid_t child, me = getpid();

	ASSERT_NE(MAP_FAILED, hva);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* Forked before any gmem file exists: SCM_RIGHTS is its only way in. */
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		close(sv[0]);
		scm_child(sv[1]);
	}
	close(sv[1]);

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = gmem_file(SZ_2M, 0);
	ASSERT_EQ(0, bind_file(vm, 0, fd, hva));
	EXPECT_TRUE(owned_by(fd, me));

	/* Our VM has a memslot on it: the other process's VM must wait. */
	EXPECT_CHILD(EBUSY, 'b', fd, "binding a passed fd in use by our VM");
	EXPECT_TRUE(owned_by(fd, me));

	/*
	 * Our VM deletes its memslot: that alone lets nothing go (a VMM does
	 * it to lay its memory out anew), the other VM still gets EBUSY.
	 */
	ASSERT_EQ(0, unbind_file(vm, 0));
	EXPECT_TRUE(owned_by(fd, me));
	EXPECT_CHILD(EBUSY, 'b', fd, "binding a passed fd after our memslot went");
	/* Holding only the file, the other process cannot release it. */
	EXPECT_CHILD(EINVAL, 'r', -1, "releasing our file with the child's VM");
	EXPECT_TRUE(owned_by(fd, me));
	EXPECT_CHILD(EBUSY, 'b', fd, "binding after the child's release attempt");

	/* We let it go: the other process's VM gets it. */
	EXPECT_EQ(0, release_file(fd, vm)) TH_LOG("GMEM_RELEASE_VM: %s", strerror(errno));
	EXPECT_TRUE(owned_by(fd, 0));
	EXPECT_CHILD(0, 'b', fd, "binding a passed fd our VM released");
	EXPECT_TRUE(owned_by(fd, child));
	/* Now ours waits, and cannot release it either: not our VM's. */
	EXPECT_OURS(EBUSY, bind_file(vm, 0, fd, hva), "binding a file the child's VM has");
	EXPECT_OURS(EINVAL, release_file(fd, vm), "releasing the child's VM's file");
	/* The child releases it when done: EBUSY until its memslot went. */
	EXPECT_CHILD(EBUSY, 'r', -1, "the child's release with its memslot there");
	EXPECT_CHILD(0, 'u', -1, "the child's memslot deletion");
	EXPECT_TRUE(owned_by(fd, child));
	EXPECT_OURS(EBUSY, bind_file(vm, 0, fd, hva), "binding before the child released");
	EXPECT_CHILD(0, 'r', -1, "the child's release");
	EXPECT_TRUE(owned_by(fd, 0));
	EXPECT_EQ(0, bind_file(vm, 0, fd, hva))
		TH_LOG("binding the file back after the other VM let go: %s", strerror(errno));
	EXPECT_TRUE(owned_by(fd, me));

	/* A fresh file goes to the other process first: its VM's it is. */
	fd2 = gmem_file(SZ_2M, 0);
	EXPECT_CHILD(0, 'b', fd2, "the first VM to bind a passed fd");
	EXPECT_TRUE(owned_by(fd2, child));
	EXPECT_OURS(EBUSY, bind_file(vm, 1, fd2, hva), "binding after the child's VM did");
	EXPECT_OURS(EINVAL, release_file(fd2, vm), "releasing the child's VM's fresh file");
	EXPECT_CHILD(0, 'u', -1, "the child's memslot deletion");
	EXPECT_OURS(EBUSY, bind_file(vm, 1, fd2, hva), "binding after the child's deletion");

	/*
	 * Closing our VM's fd with its memslot still there hands nothing
	 * over: the file keeps the VM, and its memslot, alive, and nobody can
	 * release it any more.
	 */
	fd3 = dup(fd);
	ASSERT_LE(0, fd3);
	kvm_vm_free(vm);
	EXPECT_TRUE(owned_by(fd, me));
	EXPECT_CHILD(EBUSY, 'b', fd3, "after our VM's fd was closed");
	EXPECT_CHILD(EINVAL, 'r', -1, "releasing our closed VM's file");
	EXPECT_TRUE(owned_by(fd, me));

	close(sv[0]);
	waitpid(child, &st, 0);
	EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st)) TH_LOG("child: status %#x", st);
	close(fd);
	close(fd2);
}

/* ---- other_vm_reads_zero ---- */

#define BIG_PAGES	4096		/* 16 MiB per VM */
#define BIG_GPA		(1ULL << 33)

/* Fill every page with @pattern, or check that every page reads zero. */
static void guest_fill_or_check(uint64_t pattern, uint64_t check)
{
	uint64_t p, j, nonzero = 0;

	for (p = 0; p < BIG_PAGES; p++) {
		volatile uint64_t *w = (uint64_t *)(BIG_GPA + p * PAGE_SIZE);

		for (j = 0; j < PAGE_SIZE / 8; j++) {
			if (check)
				nonzero += w[j] != 0;
			else
				w[j] = pattern ^ (p << 12 | j);
		}
	}
	GUEST_SYNC(nonzero);
	GUEST_DONE();
}

/* One VM over a fresh gmem file of BIG_PAGES; returns the guest's count. */
static uint64_t big_vm(uint64_t pattern, bool check, bool prefault, bool punch_after,
		       int *keep_fd)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	uint64_t nonzero;
	int fd;

	vm = __vm_create_shape_with_one_vcpu(protected_shape, &vcpu, 64, guest_fill_or_check);
	fd = gmem_file(BIG_PAGES * PAGE_SIZE, 0);
	if (prefault)
		TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, BIG_PAGES * PAGE_SIZE),
			    "fallocate: %s", strerror(errno));
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, BIG_GPA, DATA_SLOT, BIG_PAGES,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, BIG_GPA, BIG_GPA, BIG_PAGES);
	vm_mem_set_private(vm, BIG_GPA, BIG_PAGES * PAGE_SIZE);
	vcpu_args_set(vcpu, 2, pattern, (uint64_t)check);
	TEST_ASSERT(run_to_ucall(vcpu, &uc) == UCALL_SYNC, "guest did not sync");
	nonzero = uc.args[1];
	TEST_ASSERT(fdinfo_value(fd, "gmem-allocated") == BIG_PAGES * PAGE_SIZE, "pages not allocated");
	if (punch_after)
		TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
				       BIG_PAGES * PAGE_SIZE), "punch: %s", strerror(errno));
	kvm_vm_free(vm);
	if (keep_fd)
		*keep_fd = fd;
	else
		close(fd);
	return nonzero;
}

TEST_F_TIMEOUT(iso, other_vm_reads_zero, KVM_TEST_TIMEOUT)
{
	uint64_t n;
	int kept;

	/* VM A fills 16 MiB and punches it all, its file still open... */
	big_vm(0xa5a5a5a5a5a5a5a5ULL, false, false, true, &kept);
	/* ...VM B faults 16 MiB in: zeros only. */
	n = big_vm(0, true, false, false, NULL);
	EXPECT_EQ(0, n) TH_LOG("%lu words of another VM's pages seen by a new VM (fault)", n);
	close(kept);

	/* VM C fills 16 MiB and goes away with its file... */
	big_vm(0x3c3c3c3c3c3c3c3cULL, false, false, false, NULL);
	/* ...VM D gets 16 MiB by fallocate: zeros only. */
	n = big_vm(0, true, true, false, NULL);
	EXPECT_EQ(0, n) TH_LOG("%lu words of another VM's pages seen by a new VM (fallocate)",
			       n);
}

TEST_HARNESS_MAIN
