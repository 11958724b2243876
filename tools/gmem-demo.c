// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem-demo: a tiny VMM whose guest keeps a secret in private memory
 * from /dev/gmem.
 *
 * It creates a KVM_X86_SW_PROTECTED_VM with one memslot whose shared
 * pages come from an ordinary shared mapping and whose private pages come
 * from a gmem file (GMEM_CREATE on /dev/gmem).  A 16-bit real-mode guest
 * writes a secret into a private page, asks the VMM with the
 * KVM_HC_MAP_GPA_RANGE hypercall to make another page shared, and leaves
 * a message there.  The VMM then shows what the host can and cannot see.
 *
 * Exit status: 0 if every check held, 1 if one failed or something went
 * wrong (with a one-line reason), 4 (kselftest's "skip") if /dev/kvm or
 * /dev/gmem is missing or KVM lacks what the demo needs.
 *
 * With --hold, a demo that passed keeps its VM and gmem file until its
 * standard input reaches end of file (for `gmemctl ps`, make demo).
 *
 * With --handoff, a live update instead: an old VMM process runs the
 * guest, which writes its secret into private memory; the old VMM
 * deletes its memslot, releases the file from its VM (GMEM_RELEASE_VM),
 * passes the gmem fd over a unix socket
 * (SCM_RIGHTS) to a new VMM process, forked before the file existed, and
 * exits.  The new VMM tries to read the file (and cannot), builds a new
 * VM on it, and that VM's guest reads the secret from private memory and
 * sends it out on an I/O port.
 *
 * Build: make -C tools KDIR=<kernel tree with `make headers_install` done>
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/kvm_para.h>

#include <gmem.h>

#ifndef KVM_X86_SW_PROTECTED_VM
/* Debian 12's own, for one: see tools/Makefile. */
#error "<linux/kvm.h> predates Linux 6.8: build with KDIR=<kernel tree>"
#endif

/*
 * Guest-physical memory: one memslot of MEM_SIZE bytes at GPA 0, backed
 * by the shared mapping (shared pages) and the gmem file at offset 0
 * (private pages).
 *
 *   0x1000  guest code                                   shared
 *   0x2000  its secret, XOR-scrambled (u16 length, bytes) shared
 *   0x3000  secret page: the guest unscrambles it here   private
 *   0x4000  message page                                 private, then shared
 *   0x8000  top of the guest's stack (grows down)        shared
 */
#define MEM_SIZE	0x100000
#define PAGE_SIZE	0x1000
#define CODE_GPA	0x1000
#define SCRAMBLED_GPA	0x2000
#define SECRET_GPA	0x3000
#define MSG_GPA		0x4000
#define STACK_TOP	0x8000
#define SECRET_KEY	0x5a	/* XOR key of the scrambled secret */
#define DONE_PORT	0x10	/* the guest writes its status here */
#define SAY_PORT	0x11	/* --handoff: the new guest writes the secret here */
#define TIMEOUT		60	/* seconds the guest may take */

/* Status the guest writes to DONE_PORT. */
#define GUEST_OK		0
#define GUEST_SECRET_BAD	1	/* secret did not read back */
#define GUEST_SECRET_CHANGED	2	/* secret changed after the hypercall */
#define GUEST_HYPERCALL_FAILED	3	/* MAP_GPA_RANGE returned an error */
#define GUEST_MSG_NOT_FRESH	4	/* shared message page not zeroed */

static const char secret[] = "the launch code is 0000 (gmem keeps this private)";
#define GUEST_MESSAGE "hello from the guest, on a page it made shared"
static const char message[] = GUEST_MESSAGE;

#define __str(x)	#x
#define str(x)		__str(x)

/*
 * The guest: 16-bit real-mode code, position dependent, run at CODE_GPA
 * with all segments 0.  It lives in its own section of this program; the
 * VMM copies it into guest memory.  Only the scrambled secret is ever in
 * shared memory: its plaintext exists in the private secret page alone.
 */
extern const unsigned char guest_code[], guest_code_end[];
asm("	.pushsection .rodata.gmem_demo_guest, \"a\"\n"
"	.set	.LCODE, " str(CODE_GPA) "\n"
"	.set	.LSCRAMBLED, " str(SCRAMBLED_GPA) "\n"
"	.set	.LSECRET, " str(SECRET_GPA) "\n"
"	.set	.LMSG, " str(MSG_GPA) "\n"
"	.set	.LKEY, " str(SECRET_KEY) "\n"
"	.set	.LPORT, " str(DONE_PORT) "\n"
"	.globl	guest_code, guest_code_end\n"
"	.code16\n"
"guest_code:\n"
"	cld\n"
	/* 1. Unscramble the secret into the private secret page... */
"	mov	.LSCRAMBLED, %cx\n"
"	mov	$.LSCRAMBLED + 2, %si\n"
"	mov	$.LSECRET, %di\n"
"1:	lodsb\n"
"	xor	$.LKEY, %al\n"
"	stosb\n"
"	loop	1b\n"
	/* ...and read it back. */
"	call	.Lcheck_secret\n"
"	jne	.Lsecret_bad\n"
	/* 2. Scribble a draft on the message page while it is private. */
"	movl	$0x54465244, .LMSG\n"		/* "DRFT" */
	/*
	 * 3. Ask the host to make the message page shared:
	 * KVM_HC_MAP_GPA_RANGE(gpa, npages, attributes), where attributes 0
	 * is 4 KiB pages, decrypted (shared).  0 in eax is success.  vmmcall
	 * is AMD's; on Intel, KVM traps it and patches in vmcall
	 * (KVM_X86_QUIRK_FIX_HYPERCALL_INSN, on by default).
	 */
"	mov	$" str(KVM_HC_MAP_GPA_RANGE) ", %eax\n"
"	mov	$.LMSG, %ebx\n"
"	mov	$1, %ecx\n"
"	xor	%edx, %edx\n"
"	vmmcall\n"
"	test	%eax, %eax\n"
"	jnz	.Lhypercall_failed\n"
	/* 4. Now shared memory backs it: fresh, without the draft. */
"	cmpl	$0, .LMSG\n"
"	jne	.Lmsg_not_fresh\n"
	/* 5. Leave the message there. */
"	mov	$.Lmessage - guest_code + .LCODE, %si\n"
"	mov	$.LMSG, %di\n"
"	mov	$.Lmessage_end - .Lmessage, %cx\n"
"	rep movsb\n"
	/* 6. The secret is still private and intact. */
"	call	.Lcheck_secret\n"
"	jne	.Lsecret_changed\n"
"	mov	$" str(GUEST_OK) ", %al\n"
	/* Report the status in al and stop. */
".Lreport:\n"
"	out	%al, $.LPORT\n"
"	hlt\n"
"	jmp	.Lreport\n"
".Lsecret_bad:\n"
"	mov	$" str(GUEST_SECRET_BAD) ", %al\n"
"	jmp	.Lreport\n"
".Lsecret_changed:\n"
"	mov	$" str(GUEST_SECRET_CHANGED) ", %al\n"
"	jmp	.Lreport\n"
".Lhypercall_failed:\n"
"	mov	$" str(GUEST_HYPERCALL_FAILED) ", %al\n"
"	jmp	.Lreport\n"
".Lmsg_not_fresh:\n"
"	mov	$" str(GUEST_MSG_NOT_FRESH) ", %al\n"
"	jmp	.Lreport\n"
	/* Compare the secret page with the unscrambled secret: ZF=1 if equal. */
".Lcheck_secret:\n"
"	mov	.LSCRAMBLED, %cx\n"
"	mov	$.LSCRAMBLED + 2, %si\n"
"	mov	$.LSECRET, %di\n"
"2:	lodsb\n"
"	xor	$.LKEY, %al\n"
"	scasb\n"
"	jne	3f\n"
"	loop	2b\n"
"3:	ret\n"
".Lmessage:\n"
"	.asciz	\"" GUEST_MESSAGE "\"\n"
".Lmessage_end:\n"
"guest_code_end:\n"
"	.code64\n"
"	.popsection\n"
);

/*
 * --handoff: the new VMM's guest, real-mode code run at CODE_GPA as the
 * other.  It sends what the private secret page holds, up to its first
 * zero byte, out on SAY_PORT, one byte per out, and reports GUEST_OK.
 */
extern const unsigned char reader_code[], reader_code_end[];
asm("	.pushsection .rodata.gmem_demo_guest, \"a\"\n"
"	.globl	reader_code, reader_code_end\n"
"	.code16\n"
"reader_code:\n"
"	cld\n"
"	mov	$" str(SECRET_GPA) ", %si\n"
"	mov	$256, %cx\n"
"1:	lodsb\n"
"	test	%al, %al\n"
"	jz	2f\n"
"	out	%al, $" str(SAY_PORT) "\n"
"	loop	1b\n"
"2:	mov	$" str(GUEST_OK) ", %al\n"
"	out	%al, $" str(DONE_PORT) "\n"
"	hlt\n"
"	jmp	2b\n"
"reader_code_end:\n"
"	.code64\n"
"	.popsection\n"
);

struct demo {
	int kvm, gmem_dev, vm, vcpu, gmem;
	unsigned char *shared;		/* the shared view of guest memory */
	struct kvm_run *run;
	bool quiet;			/* --handoff: fewer words on the setup */
	char said[257];			/* --handoff: what the guest sent out */
	size_t nsaid;
	char failed[160];		/* the first check that failed */
};

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "gmem-demo: FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void skip(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "gmem-demo: SKIP: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(4);
}

/* printf(), unless @d is quiet. */
static void info(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	if (d->quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static const char *errname(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "unknown errno";
}

/* Print one check's verdict; remember the first that failed. */
static bool check(struct demo *d, bool ok, const char *fmt, ...)
{
	char what[160];
	size_t i, j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
	if (!ok && !d->failed[0]) {
		/* One line: join the lines of @what. */
		for (i = 0, j = 0; what[i] && j < sizeof(d->failed) - 1; i++) {
			if (what[i] == '\n')
				while (what[i + 1] == ' ')
					i++;
			d->failed[j++] = what[i] == '\n' ? ' ' : what[i];
		}
		d->failed[j] = '\0';
	}
	return ok;
}

static void set_attributes(struct demo *d, __u64 gpa, __u64 size, bool private)
{
	struct kvm_memory_attributes attr = {
		.address = gpa,
		.size = size,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	if (ioctl(d->vm, KVM_SET_MEMORY_ATTRIBUTES, &attr))
		die("KVM_SET_MEMORY_ATTRIBUTES [%#llx, %#llx) %s: %s",
		    gpa, gpa + size, private ? "private" : "shared",
		    strerror(errno));
}

/* The number on the "@key:" line of the gmem fd's fdinfo, or -1. */
static long long fdinfo_value(struct demo *d, const char *key)
{
	char path[64], line[256];
	size_t len = strlen(key);
	long long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", d->gmem);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, len) && line[len] == ':')
			val = strtoll(line + len + 1, NULL, 0);
	fclose(f);
	return val;
}

/*
 * The VM the gmem file is bound to, from the "gmem-vm:" line of its
 * fdinfo, into @buf; "" if there is none (bound to no VM).
 */
static const char *fdinfo_vm(struct demo *d, char *buf, size_t len)
{
	char path[64], line[256], *v;
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", d->gmem);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "gmem-vm:", 8)) {
			v = line + 8 + strspn(line + 8, " \t");
			snprintf(buf, len, "%.*s", (int)strcspn(v, "\n"), v);
		}
	fclose(f);
	return buf;
}

/* /dev/kvm, /dev/gmem and a software-protected VM. */
static void setup_vm(struct demo *d)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL };
	int types, r;

	d->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (d->kvm < 0)
		skip("cannot open /dev/kvm: %s (is KVM loaded? modprobe kvm_amd or kvm_intel)",
		     strerror(errno));
	d->gmem_dev = open("/dev/gmem", O_RDWR | O_CLOEXEC);
	if (d->gmem_dev < 0)
		skip("cannot open /dev/gmem: %s (is gmem loaded? sudo modprobe gmem)",
		     strerror(errno));

	types = ioctl(d->kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (types < 0)
		types = 0;
	if (!(types & (1 << KVM_X86_SW_PROTECTED_VM)))
		skip("KVM offers no KVM_X86_SW_PROTECTED_VM (KVM_CAP_VM_TYPES %#x): it needs CONFIG_KVM_SW_PROTECTED_VM",
		     types);
	d->vm = ioctl(d->kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	if (d->vm < 0)
		die("KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM): %s", strerror(errno));
	info(d, "  VM: type KVM_X86_SW_PROTECTED_VM (KVM_CAP_VM_TYPES %#x)\n",
	     types);

	r = ioctl(d->vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
	if (r < 0 || !(r & KVM_MEMORY_ATTRIBUTE_PRIVATE))
		skip("the VM has no KVM_MEMORY_ATTRIBUTE_PRIVATE");
	r = ioctl(d->vm, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL);
	if (r < 0 || !(r & (1 << KVM_HC_MAP_GPA_RANGE)))
		skip("KVM cannot exit to userspace on KVM_HC_MAP_GPA_RANGE");
	cap.args[0] = 1 << KVM_HC_MAP_GPA_RANGE;
	if (ioctl(d->vm, KVM_ENABLE_CAP, &cap))
		die("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL): %s", strerror(errno));
	info(d, "  KVM_CAP_EXIT_HYPERCALL: the guest's MAP_GPA_RANGE calls exit to this VMM\n");
}

/*
 * Memslot 0 over all guest memory, private pages from the gmem fd at
 * offset 0, or none (memory_size 0: delete it) if !@size.
 */
static int set_memslot(struct demo *d, int vm, __u64 size)
{
	struct kvm_userspace_memory_region2 region = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = 0,
		.memory_size = size,
		.userspace_addr = (unsigned long)d->shared,
		.guest_memfd = d->gmem,
		.guest_memfd_offset = 0,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region);
}

/* Fresh shared memory, and memslot 0 on it and on the gmem file. */
static void setup_memslot(struct demo *d)
{
	d->shared = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d->shared == MAP_FAILED)
		die("mmap of %d bytes of shared memory: %s", MEM_SIZE,
		    strerror(errno));
	info(d, "  shared memory: %d KiB, mmap(MAP_SHARED | MAP_ANONYMOUS)\n",
	     MEM_SIZE >> 10);

	if (set_memslot(d, d->vm, MEM_SIZE))
		die("KVM_SET_USER_MEMORY_REGION2 with the gmem fd: %s%s",
		    strerror(errno), errno != EINVAL ? "" :
		    " (a KVM without kernel/patches/6.12 takes only its own guest_memfd)");
	info(d, "  memslot 0: GPA [0, %#x), KVM_MEM_GUEST_MEMFD: shared pages come\n"
	     "             from the mapping, private pages from the gmem fd\n",
	     MEM_SIZE);
}

/* The gmem file, the shared mapping, the memslot, the guest's memory. */
static void setup_memory(struct demo *d)
{
	struct gmem_create gc = { .size = MEM_SIZE };
	size_t len = strlen(secret);
	unsigned int i;

	d->gmem = ioctl(d->gmem_dev, GMEM_CREATE, &gc);
	if (d->gmem < 0)
		die("GMEM_CREATE of %d bytes: %s", MEM_SIZE, strerror(errno));
	info(d, "  gmem file: fd %d, %d KiB, from GMEM_CREATE on /dev/gmem\n",
	     d->gmem, MEM_SIZE >> 10);

	setup_memslot(d);

	set_attributes(d, SECRET_GPA, 2 * PAGE_SIZE, true);
	info(d, "  KVM_SET_MEMORY_ATTRIBUTES: private: GPA %#x (secret), %#x (message)\n",
	     SECRET_GPA, MSG_GPA);

	memcpy(d->shared + CODE_GPA, guest_code, guest_code_end - guest_code);
	d->shared[SCRAMBLED_GPA] = len & 0xff;
	d->shared[SCRAMBLED_GPA + 1] = len >> 8;
	for (i = 0; i < len; i++)
		d->shared[SCRAMBLED_GPA + 2 + i] = secret[i] ^ SECRET_KEY;
	info(d, "  guest: %zu bytes of real-mode code at GPA %#x, and its secret,\n"
	     "         XOR-scrambled, at GPA %#x (both shared)\n",
	     (size_t)(guest_code_end - guest_code), CODE_GPA, SCRAMBLED_GPA);
}

static void setup_vcpu(struct demo *d)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rip = CODE_GPA,
		.rsp = STACK_TOP,
		.rflags = 0x2,		/* bit 1 is always set */
	};
	int size;

	d->vcpu = ioctl(d->vm, KVM_CREATE_VCPU, 0);
	if (d->vcpu < 0)
		die("KVM_CREATE_VCPU: %s", strerror(errno));
	size = ioctl(d->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(*d->run))
		die("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	d->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      d->vcpu, 0);
	if (d->run == MAP_FAILED)
		die("mmap of the vCPU's kvm_run: %s", strerror(errno));

	/*
	 * The vCPU starts in real mode with every segment at base 0 except
	 * CS (0xf000:0xfff0, the reset vector): move CS to 0 too.
	 */
	if (ioctl(d->vcpu, KVM_GET_SREGS, &sregs))
		die("KVM_GET_SREGS: %s", strerror(errno));
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(d->vcpu, KVM_SET_SREGS, &sregs))
		die("KVM_SET_SREGS: %s", strerror(errno));
	if (ioctl(d->vcpu, KVM_SET_REGS, &regs))
		die("KVM_SET_REGS: %s", strerror(errno));
}

/*
 * KVM_HC_MAP_GPA_RANGE: the guest asks for pages to become shared or
 * private.  Flip KVM's attribute and, for private->shared, free the
 * private pages with a punch-hole, as a VMM would: their contents are
 * gone for good, and the guest now sees the shared mapping there.
 */
static void handle_map_gpa_range(struct demo *d)
{
	__u64 gpa = d->run->hypercall.args[0];
	__u64 npages = d->run->hypercall.args[1];
	bool private = d->run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED;
	const char *to = private ? "private" : "shared";
	__u64 size = npages * PAGE_SIZE;
	long long before;

	info(d, "  exit: hypercall MAP_GPA_RANGE: GPA %#llx, %llu page(s) -> %s\n",
	     gpa, npages, to);
	if (gpa >= MEM_SIZE || npages > (MEM_SIZE - gpa) / PAGE_SIZE) {
		printf("        outside guest memory: -EINVAL to the guest\n");
		d->run->hypercall.ret = -KVM_EINVAL;
		return;
	}

	set_attributes(d, gpa, size, private);
	info(d, "        KVM_SET_MEMORY_ATTRIBUTES [%#llx, %#llx) -> %s\n",
	     gpa, gpa + size, to);
	if (!private) {
		before = fdinfo_value(d, "gmem-allocated");
		if (fallocate(d->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      gpa, size))
			die("fallocate(PUNCH_HOLE) on the gmem fd at %#llx: %s",
			    gpa, strerror(errno));
		info(d, "        fallocate(PUNCH_HOLE) of the gmem fd: allocated %lld -> %lld bytes\n",
		     before, fdinfo_value(d, "gmem-allocated"));
	}
	d->run->hypercall.ret = 0;
}

static void on_alarm(int sig)
{
	(void)sig;	/* only there to interrupt KVM_RUN */
}

/* Run the guest until it reports on DONE_PORT; return its status. */
static int run_guest(struct demo *d)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	time_t deadline = time(NULL) + TIMEOUT;
	struct kvm_regs regs;
	int status;

	/* No SA_RESTART: the alarm makes KVM_RUN fail with EINTR. */
	sigaction(SIGALRM, &sa, NULL);
	alarm(TIMEOUT);
	for (;;) {
		if (ioctl(d->vcpu, KVM_RUN, 0) < 0) {
			if ((errno == EINTR || errno == EAGAIN) &&
			    time(NULL) < deadline)
				continue;
			if (errno == EINTR)
				die("the guest did not finish within %d seconds",
				    TIMEOUT);
			if (d->run->exit_reason == KVM_EXIT_MEMORY_FAULT)
				die("KVM_RUN: %s, KVM_EXIT_MEMORY_FAULT: GPA %#llx size %#llx flags %#llx (%s)",
				    errname(errno), d->run->memory_fault.gpa,
				    d->run->memory_fault.size,
				    d->run->memory_fault.flags,
				    d->run->memory_fault.flags &
				    KVM_MEMORY_EXIT_FLAG_PRIVATE ? "private" : "shared");
			die("KVM_RUN: %s", strerror(errno));
		}
		switch (d->run->exit_reason) {
		case KVM_EXIT_HYPERCALL:
			if (d->run->hypercall.nr != KVM_HC_MAP_GPA_RANGE)
				die("unexpected hypercall %llu",
				    d->run->hypercall.nr);
			handle_map_gpa_range(d);
			break;
		case KVM_EXIT_IO:
			if (d->run->io.port == SAY_PORT &&
			    d->run->io.direction == KVM_EXIT_IO_OUT &&
			    d->run->io.size == 1 && d->nsaid < sizeof(d->said) - 1) {
				d->said[d->nsaid++] =
					*((char *)d->run + d->run->io.data_offset);
				break;
			}
			if (d->run->io.port != DONE_PORT ||
			    d->run->io.direction != KVM_EXIT_IO_OUT ||
			    d->run->io.size != 1)
				die("unexpected I/O exit: port %#x",
				    d->run->io.port);
			status = *((unsigned char *)d->run + d->run->io.data_offset);
			alarm(0);
			info(d, "  exit: out to port %#x: status %d\n", DONE_PORT,
			     status);
			return status;
		default:
			if (ioctl(d->vcpu, KVM_GET_REGS, &regs))
				regs.rip = ~0ULL;
			die("unexpected exit reason %u at RIP %#llx (KVM_EXIT_* in linux/kvm.h)",
			    d->run->exit_reason, regs.rip);
		}
	}
}

static void guest_verdict(struct demo *d, int status)
{
	static const char * const failure[] = {
		[GUEST_SECRET_BAD] = "the secret did not read back",
		[GUEST_SECRET_CHANGED] = "the secret changed after the hypercall",
		[GUEST_HYPERCALL_FAILED] = "the hypercall returned an error",
		[GUEST_MSG_NOT_FRESH] = "the message page still held the draft",
	};

	if (status == GUEST_OK)
		check(d, true, "the guest's own checks held: its secret read back, before and\n"
		      "       after the hypercall; the page it made shared came up zeroed");
	else if (status < (int)(sizeof(failure) / sizeof(*failure)) &&
		 failure[status])
		check(d, false, "the guest reports: %s", failure[status]);
	else
		check(d, false, "the guest reports unknown status %d", status);
}

static bool all_zero(const unsigned char *p, size_t len)
{
	while (len--)
		if (*p++)
			return false;
	return true;
}

/* What the host can see, and what it cannot. */
static void host_view(struct demo *d)
{
	const char *msg = (const char *)d->shared + MSG_GPA;
	long long allocated;
	char buf[64];
	ssize_t n;
	void *p;

	check(d, !strncmp(msg, message, sizeof(message)),
	      "the message page is shared now, the host reads it:\n"
	      "       \"%.*s\"", (int)strnlen(msg, 60), msg);
	check(d, all_zero(d->shared + SECRET_GPA, PAGE_SIZE),
	      "the shared mapping at the secret page (GPA %#x) holds only zeros:\n"
	      "       the guest's writes went to the gmem file", SECRET_GPA);
	check(d, !memmem(d->shared, MEM_SIZE, secret, strlen(secret)),
	      "the secret is nowhere in the %d KiB of shared memory",
	      MEM_SIZE >> 10);

	n = read(d->gmem, buf, sizeof(buf));
	check(d, n < 0, "read() of the gmem fd fails: %s",
	      n < 0 ? errname(errno) : "no, it worked!");
	n = pread(d->gmem, buf, sizeof(buf), SECRET_GPA);
	check(d, n < 0, "pread() at the secret's offset fails: %s",
	      n < 0 ? errname(errno) : "no, it worked!");
	p = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, d->gmem, SECRET_GPA);
	check(d, p == MAP_FAILED, "mmap() of the gmem fd fails: %s",
	      p == MAP_FAILED ? errname(errno) : "no, it worked!");
	if (p != MAP_FAILED)
		munmap(p, PAGE_SIZE);
	allocated = fdinfo_value(d, "gmem-allocated");
	check(d, allocated == PAGE_SIZE,
	      "the gmem file holds one page, the secret's (allocated: %lld bytes)",
	      allocated);
}

static void print_lines(const char *path, const char *prefix)
{
	char line[256];
	FILE *f = fopen(path, "r");

	if (!f) {
		printf("    %s: %s\n", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, prefix, strlen(prefix)))
			printf("    %s", line);
	fclose(f);
}

static void show_counters(struct demo *d)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", d->gmem);
	printf("  %s (gmem-vm: KVM's name of the VM of pid %d, this one):\n",
	       path, getpid());
	print_lines(path, "gmem-");
	printf("  /sys/class/misc/gmem/files (gmem files open on this machine):\n");
	print_lines("/sys/class/misc/gmem/files", "");
	printf("  /sys/class/misc/gmem/allocated_bytes (in all of them):\n");
	print_lines("/sys/class/misc/gmem/allocated_bytes", "");
}

/*
 * --hold: keep the VM and its gmem file until standard input reaches end
 * of file, so that `gmemctl ps` can show who holds them (make demo).
 */
static void hold(void)
{
	char buf[64];
	ssize_t n;

	printf("gmem-demo: holding the VM and its gmem file until standard input closes\n");
	do {
		n = read(STDIN_FILENO, buf, sizeof(buf));
	} while (n > 0 || (n < 0 && errno == EINTR));
}

/*
 * --handoff: a live update.  The old VMM's guest leaves its secret in
 * private memory; the file goes by SCM_RIGHTS to a new VMM, which runs a
 * new guest on it.
 */
struct handoff_msg {
	pid_t old_vmm;
};

static void send_gmem_fd(int sock, int fd)
{
	struct handoff_msg msg = { .old_vmm = getpid() };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &mh, 0) != sizeof(msg))
		die("sendmsg(SCM_RIGHTS) of the gmem fd: %s", strerror(errno));
}

/* The fd the old VMM sent, and its pid in @old_vmm. */
static int recv_gmem_fd(int sock, pid_t *old_vmm)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct handoff_msg msg;
	struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	ssize_t n;
	int fd;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (!n)
		exit(1);	/* the old VMM failed, and said why */
	if (n < 0)
		die("recvmsg: %s", strerror(errno));
	c = CMSG_FIRSTHDR(&mh);
	if (n != sizeof(msg) || !c || c->cmsg_type != SCM_RIGHTS)
		die("the old VMM sent no gmem fd");
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	*old_vmm = msg.old_vmm;
	return fd;
}

/* A new VM of @d->kvm tries to bind @d's file; 0 or errno. */
static int other_vm_bind(struct demo *d)
{
	int other = ioctl(d->kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM), err;

	if (other < 0)
		die("KVM_CREATE_VM: %s", strerror(errno));
	err = set_memslot(d, other, MEM_SIZE) ? errno : 0;
	close(other);
	return err;
}

/* The old VMM: run the guest, let go of the file, send it, exit. */
static int old_vmm(int sock)
{
	struct demo d = { .quiet = true, .failed = "" };
	struct gmem_release_vm rel = {};
	char vm[64];
	int r, err;

	printf("\n[2] The old VMM (pid %d) runs the guest\n", getpid());
	setup_vm(&d);
	setup_memory(&d);
	setup_vcpu(&d);
	printf("  gmem file: fd %d, %d KiB; memslot 0 binds it to this VM (fdinfo gmem-vm: %s)\n",
	       d.gmem, MEM_SIZE >> 10, fdinfo_vm(&d, vm, sizeof(vm)));
	check(&d, run_guest(&d) == GUEST_OK,
	      "the guest wrote its secret into private page %#x and read it back", SECRET_GPA);

	printf("\n[3] The old VMM lets go of the file\n");
	err = other_vm_bind(&d);
	check(&d, err == EBUSY, "while memslot 0 is there, another VM cannot bind the file: %s",
	      err ? errname(err) : "no, it could!");
	if (set_memslot(&d, d.vm, 0))
		die("KVM_SET_USER_MEMORY_REGION2 deleting memslot 0: %s", strerror(errno));
	printf("  memslot 0 deleted (memory_size 0): the guest cannot reach the file any more\n");
	err = other_vm_bind(&d);
	check(&d, err == EBUSY, "the file is still this VM's (fdinfo gmem-vm: %s): another VM gets %s",
	      fdinfo_vm(&d, vm, sizeof(vm)), err ? errname(err) : "it, it should not!");
	rel.vm_fd = d.vm;
	r = ioctl(d.gmem, GMEM_RELEASE_VM, &rel);
	check(&d, !r && !fdinfo_vm(&d, vm, sizeof(vm))[0],
	      "GMEM_RELEASE_VM with this VM's fd: %s, no gmem-vm in fdinfo, the file has no VM",
	      r ? errname(errno) : "done");
	if (d.failed[0])
		die("%s", d.failed);
	printf("  sendmsg(SCM_RIGHTS): the gmem fd goes to the new VMM; the old VMM exits\n");
	send_gmem_fd(sock, d.gmem);
	return 0;
}

/* The new VMM: receive the file, fail to read it, run a new guest on it. */
static int new_vmm(int sock)
{
	struct demo d = { .quiet = true, .failed = "" };
	char vm[64], buf[64], mine[64];
	pid_t old;
	ssize_t n;
	void *p;

	d.gmem = recv_gmem_fd(sock, &old);
	printf("\n[4] The new VMM (pid %d) has the file, and no VM on it yet\n", getpid());
	n = read(sock, buf, sizeof(buf));
	printf("  recvmsg: gmem fd %d, %lld bytes allocated; the old VMM (pid %d) %s\n",
	       d.gmem, fdinfo_value(&d, "gmem-allocated"), old,
	       n ? "is still there" : "has exited");
	n = read(d.gmem, buf, sizeof(buf));
	check(&d, n < 0, "read() of the gmem fd fails: %s", n < 0 ? errname(errno) : "no, it worked!");
	n = pread(d.gmem, buf, sizeof(buf), SECRET_GPA);
	check(&d, n < 0, "pread() at the secret's offset fails: %s",
	      n < 0 ? errname(errno) : "no, it worked!");
	p = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, d.gmem, SECRET_GPA);
	check(&d, p == MAP_FAILED, "mmap() of the gmem fd fails: %s",
	      p == MAP_FAILED ? errname(errno) : "no, it worked!");

	printf("\n[5] The new VMM builds a new VM on the file\n");
	setup_vm(&d);
	setup_memslot(&d);
	snprintf(mine, sizeof(mine), "kvm-%d", getpid());
	check(&d, !strcmp(fdinfo_vm(&d, vm, sizeof(vm)), mine),
	      "memslot 0 binds the file to the new VM: fdinfo gmem-vm: %s", vm);
	set_attributes(&d, SECRET_GPA, PAGE_SIZE, true);
	memcpy(d.shared + CODE_GPA, reader_code, reader_code_end - reader_code);
	printf("  fresh shared memory with %zu bytes of new guest code; page %#x private\n",
	       (size_t)(reader_code_end - reader_code), SECRET_GPA);
	setup_vcpu(&d);
	printf("  The new guest sends what private page %#x holds out on port %#x.\n",
	       SECRET_GPA, SAY_PORT);
	check(&d, run_guest(&d) == GUEST_OK && !strcmp(d.said, secret),
	      "the new guest read the old guest's secret from the gmem file:\n"
	      "       \"%s\"", d.said);
	check(&d, !memmem(d.shared, MEM_SIZE, secret, strlen(secret)),
	      "the new VMM's shared memory holds no copy of it");
	if (d.failed[0])
		die("%s", d.failed);
	return 0;
}

static int live_update(void)
{
	int sv[2], st_old, st_new;
	pid_t old, new;

	printf("gmem-demo --handoff: a guest's secret in gmem survives the replacement of its VMM\n");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair: %s", strerror(errno));
	printf("\n[1] Two VMM processes, before any gmem file exists, and a unix socket\n");
	new = fork();
	if (new < 0)
		die("fork: %s", strerror(errno));
	if (!new) {
		close(sv[0]);
		exit(new_vmm(sv[1]));
	}
	printf("  new VMM: pid %d, waits for the guest's memory on the socket;\n"
	       "  the old VMM starts next\n", new);
	old = fork();
	if (old < 0)
		die("fork: %s", strerror(errno));
	if (!old) {
		close(sv[1]);
		exit(old_vmm(sv[0]));
	}
	close(sv[0]);
	close(sv[1]);
	if (waitpid(old, &st_old, 0) != old || waitpid(new, &st_new, 0) != new)
		die("waitpid: %s", strerror(errno));
	/* A VMM that failed or skipped said why. */
	if (WIFEXITED(st_old) && WEXITSTATUS(st_old))
		return WEXITSTATUS(st_old);
	if (WIFEXITED(st_new) && WEXITSTATUS(st_new))
		return WEXITSTATUS(st_new);
	if (!WIFEXITED(st_old) || !WIFEXITED(st_new)) {
		fprintf(stderr, "gmem-demo: FAILED: old VMM status %#x, new VMM status %#x\n",
			st_old, st_new);
		return 1;
	}
	printf("\ngmem-demo: PASS: the secret went from one VMM's guest to the next in private\n"
	       "memory; the host could not read it on the way\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct demo d = { .failed = "" };
	bool hold_at_end = false, handoff = false;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hold")) {
			hold_at_end = true;
		} else if (!strcmp(argv[i], "--handoff")) {
			handoff = true;
		} else {
			fprintf(stderr, "gmem-demo: unknown argument '%s' (usage: %s [--hold | --handoff])\n",
				argv[i], argv[0]);
			return 1;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (handoff && hold_at_end) {
		fprintf(stderr, "gmem-demo: --hold and --handoff do not go together\n");
		return 1;
	}
	if (handoff)
		return live_update();
	printf("gmem-demo: a KVM guest keeps a secret in private memory from /dev/gmem\n");

	printf("\n[1] A VM whose private memory comes from /dev/gmem\n");
	setup_vm(&d);
	setup_memory(&d);
	setup_vcpu(&d);

	printf("\n[2] The guest runs\n");
	printf("  It unscrambles its secret into private page %#x and reads it back,\n"
	       "  scribbles a draft on private page %#x, asks the host (vmmcall) to\n"
	       "  make that page shared, checks it came back zeroed, writes a message\n"
	       "  there, checks its secret again and reports on port %#x.\n",
	       SECRET_GPA, MSG_GPA, DONE_PORT);
	guest_verdict(&d, run_guest(&d));

	printf("\n[3] What the host can see, and what it cannot\n");
	host_view(&d);

	printf("\n[4] gmem's counters\n");
	show_counters(&d);

	if (d.failed[0])
		die("%s", d.failed);
	printf("\ngmem-demo: PASS: the guest's private memory stayed out of the host's reach\n");
	if (hold_at_end)
		hold();
	return 0;
}
