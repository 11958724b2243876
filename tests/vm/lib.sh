# shellcheck shell=bash
# Common helpers for the scripts in tests/vm/.  Sourced, not run.

GMEM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GMEM_CACHE=${GMEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gmem}
GMEM_SRC_PKG=linux-source-6.12
GMEM_SRC_TAR=/usr/src/linux-source-6.12.tar.xz
# Bump when the way the kernel is built changes (not its inputs: those are
# hashed).  Part of the cache key.
GMEM_KERNEL_RECIPE=1

# Debian packages the build and the test VM need.
GMEM_DEBS=(build-essential bc bison flex libelf-dev libssl-dev cpio kmod
	   xz-utils python3 rsync "$GMEM_SRC_PKG" qemu-system-x86
	   busybox-static dkms sparse libkmod-dev)

say() { printf 'gmem: %s\n' "$*" >&2; }
die() { printf 'gmem: error: %s\n' "$*" >&2; exit 1; }

# ensure_debs: install the Debian packages that are missing (needs root).
ensure_debs() {
	local missing=() p
	for p in "${GMEM_DEBS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
	fi
	say "installing Debian packages: ${missing[*]}"
	apt-get update -qq >/dev/null || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# apt_lists: make sure apt's package lists are there (a fresh machine may
# have none): if not, refresh them once, as root.
apt_lists() {
	apt-cache show linux-headers-amd64 >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1
	return 0
}

# deb_unpack DIR PKG...: download the Debian packages PKG with apt-get and
# unpack them under DIR/root, once (DIR/.unpacked marks a finished job).
# Nothing is installed: their maintainer scripts never run.
deb_unpack() {
	local dir=$1 deb
	shift
	[ -f "$dir/.unpacked" ] && return 0
	rm -rf "$dir"
	mkdir -p "$dir/root"
	if ! ( cd "$dir" && apt-get download -q "$@" ) >/dev/null 2>&1; then
		# Stale or missing package lists: refresh them once, as root.
		[ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 || return 1
		( cd "$dir" && apt-get download -q "$@" ) >/dev/null 2>&1 || return 1
	fi
	for deb in "$dir"/*.deb; do
		dpkg-deb -x "$deb" "$dir/root" || return 1
	done
	rm -f "$dir"/*.deb
	touch "$dir/.unpacked"
}

# udevadm_path: a udevadm binary: the system's, or one unpacked from
# Debian's udev package.  Installing that package would start udevd on
# this machine, so it is only unpacked.  Fails when neither is there.
udevadm_path() {
	local ver dir
	if command -v udevadm >/dev/null; then
		command -v udevadm
		return 0
	fi
	apt_lists
	ver=$(apt-cache show --no-all-versions udev 2>/dev/null | sed -n 's/^Version: //p')
	[ -n "$ver" ] || return 1
	dir=$GMEM_CACHE/debs/udev_$(tr '~+:' '___' <<<"$ver")
	deb_unpack "$dir" udev || return 1
	for f in "$dir"/root/usr/bin/udevadm "$dir"/root/bin/udevadm; do
		[ -x "$f" ] && echo "$f" && return 0
	done
	return 1
}

# stock_headers: the headers of Debian 12's own kernel (linux-headers-amd64:
# a stock kernel without the KVM patches), unpacked under $GMEM_CACHE.
# Prints the build directory (its Makefile includes the -common package by
# absolute path: build with make -f <dir>/../linux-headers-*-common/Makefile).
stock_headers() {
	local pkg deps
	apt_lists
	pkg=$(apt-cache depends linux-headers-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-headers-.*-amd64\)$/\1/p' | head -n1)
	[ -n "$pkg" ] || return 1
	deps=$(apt-cache depends "$pkg" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-headers-.*-common\|linux-kbuild-.*\)$/\1/p')
	# shellcheck disable=SC2086 # one word per package
	deb_unpack "$GMEM_CACHE/debs/$pkg" "$pkg" $deps || return 1
	echo "$GMEM_CACHE/debs/$pkg/root/usr/src/$pkg"
}

# kernel_key FLAVOR: the cache key of the test kernel of FLAVOR (base, debug):
# source package version + patches + config fragments + recipe.
kernel_key() {
	local flavor=$1 frags=("$GMEM_TOP/kernel/config/base.config")
	[ "$flavor" = base ] || frags+=("$GMEM_TOP/kernel/config/$flavor.config")
	{
		echo "recipe $GMEM_KERNEL_RECIPE flavor $flavor"
		dpkg-query -W -f='${Version}\n' "$GMEM_SRC_PKG"
		cat "$GMEM_TOP"/kernel/patches/6.12/*.patch "${frags[@]}"
	} | sha256sum | cut -c1-16
}

# kernel_dir FLAVOR: where the built tree of FLAVOR lives.
kernel_dir() {
	echo "$GMEM_CACHE/kernel/$(dpkg-query -W -f='${Version}' "$GMEM_SRC_PKG" | tr '~+:' '___')-$1-$(kernel_key "$1")/linux"
}

# vm_copy_dynamic ROOT BIN...: copy the shared libraries and the dynamic
# loader that each BIN needs (as ldd lists them) into ROOT at the same
# paths.  Static binaries need nothing and are skipped.
vm_copy_dynamic() {
	local root=$1 bin lib
	shift
	for bin in "$@"; do
		ldd "$bin" >/dev/null 2>&1 || continue
		for lib in $(ldd "$bin" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib" || die "cannot copy $lib (needed by $bin)"
		done
	done
}

# vm_install_kmod ROOT: Debian's kmod as the VM's modprobe, rmmod, insmod,
# lsmod, depmod and modinfo (busybox provides the rest), so that modules
# load the way they do on a lab host, from the modules.dep of depmod.
vm_install_kmod() {
	local root=$1 kmod tool
	kmod=$(command -v kmod || true)
	[ -n "$kmod" ] || die "kmod is not installed (apt-get install kmod)"
	install -m 755 "$kmod" "$root/bin/kmod"
	for tool in modprobe rmmod insmod lsmod depmod modinfo; do
		ln -sf kmod "$root/bin/$tool"
	done
	vm_copy_dynamic "$root" "$root/bin/kmod"
}

# vm_prepare FLAVOR: build (or reuse) the kernel, build gmem.ko, its KUnit
# module, the selftests and the tools against it, and the kernel's own KVM
# selftests of tests/upstream/list, and assemble the VM's root file
# system.  Sets KDIR, KVER, VM_OUT and VM_ROOTFS.
vm_prepare() {
	local flavor=$1 bin
	KDIR=$("$GMEM_TOP/tests/vm/build-kernel" "$flavor")
	KVER=$(make -s -C "$KDIR" kernelrelease)
	VM_OUT=$GMEM_TOP/build/vm-$flavor
	VM_ROOTFS=$VM_OUT/rootfs
	say "building gmem.ko, tests and tools for $KVER"
	make -s -C "$GMEM_TOP" module KERNELDIR="$KDIR" >&2 ||
		die "module build failed"
	make -s -C "$GMEM_TOP/tests/user" KDIR="$KDIR" OUT="$VM_OUT/bin" >&2 ||
		die "selftest build failed"
	make -s -C "$GMEM_TOP/bench" KDIR="$KDIR" OUT="$VM_OUT/bin" >&2 ||
		die "benchmark build failed"
	if [ -f "$GMEM_TOP/tools/Makefile" ]; then
		make -s -C "$GMEM_TOP/tools" KDIR="$KDIR" OUT="$VM_OUT/bin" >&2 ||
			die "tools build failed"
	fi

	rm -rf "$VM_ROOTFS"
	mkdir -p "$VM_ROOTFS"/{bin,dev,proc,sys,tmp,root,gmem/run,gmem/bin}
	cp /bin/busybox "$VM_ROOTFS/bin/busybox"
	vm_install_kmod "$VM_ROOTFS"
	install -m 755 "$GMEM_TOP/tests/vm/init" "$VM_ROOTFS/init"
	make -s -C "$KDIR" modules_install INSTALL_MOD_PATH="$VM_ROOTFS" \
		INSTALL_MOD_STRIP=1 >/dev/null || die "modules_install failed"
	# gmem goes in as on a lab host: make install (modules, depmod, udev
	# rule), staged in the VM's root.
	make -s -C "$GMEM_TOP" install KERNELDIR="$KDIR" INSTALL_MOD_PATH="$VM_ROOTFS" \
		DESTDIR="$VM_ROOTFS" >/dev/null || die "make install into the VM's root failed"
	vm_add_users_and_udev
	for bin in "$VM_OUT"/bin/*; do
		[ -x "$bin" ] && cp "$bin" "$VM_ROOTFS/gmem/bin/"
	done
	# The kernel's own KVM selftests that use guest_memfd, unmodified
	# (tests/upstream/README.md), go in /gmem/upstream: out of the reach
	# of the globs with which suites finds our own tests in /gmem/bin.
	"$GMEM_TOP/tests/upstream/build" "$KDIR" "$VM_OUT/upstream" \
		"$VM_ROOTFS/gmem/upstream" >&2 || die "KVM selftests build failed"
	vm_copy_dynamic "$VM_ROOTFS" "$VM_ROOTFS"/gmem/bin/* \
		$(find "$VM_ROOTFS/gmem/upstream" -type f -perm -u+x)
	cp "$GMEM_TOP/tests/vm/suites" "$GMEM_TOP/tests/vm/install_test" \
		"$VM_ROOTFS/gmem/bin/"
}

# vm_add_users_and_udev: users and groups like a lab host's (gmem-kvm is
# in group kvm, gmem-user is not), and udevadm with its libraries, so that
# the VM's init can apply the udev rules `make install` put there.
vm_add_users_and_udev() {
	local udevadm
	mkdir -p "$VM_ROOTFS/etc" "$VM_ROOTFS/run"
	printf '%s\n' root:x:0:0:root:/root:/bin/sh \
		gmem-kvm:x:1000:1000::/tmp:/bin/sh \
		gmem-user:x:1001:1001::/tmp:/bin/sh > "$VM_ROOTFS/etc/passwd"
	printf '%s\n' root:x:0: kvm:x:36:gmem-kvm gmem-kvm:x:1000: \
		gmem-user:x:1001: > "$VM_ROOTFS/etc/group"
	if ! udevadm=$(udevadm_path); then
		say "no udevadm (the udev package could not be fetched): /dev/gmem keeps the kernel's 0600 root:root in the VM"
		return 0
	fi
	cp -L "$udevadm" "$VM_ROOTFS/bin/udevadm"
	vm_copy_dynamic "$VM_ROOTFS" "$VM_ROOTFS/bin/udevadm"
}

# vm_numa_args NODES MEM SMP: the QEMU options of a VM with NODES NUMA
# nodes (none for 1): MEM (QEMU's -m: MiB, or a number with M or G) split
# evenly into one memory-backend-ram per node, node 0 taking what does not
# divide; vCPU c on node c*NODES/SMP (rounded down): the vCPUs in
# contiguous blocks, one per node, so that with fewer vCPUs than nodes
# the last nodes have memory only (SMP 1: all on node 0).  vm_boot then
# makes each vCPU a socket of its own: QEMU's default puts them all in
# one socket, whose cores share the L3 cache, and Linux WARNs (here:
# panics) when cache siblings sit on different nodes.
vm_numa_args() {
	local nodes=$1 mem=$2 smp=$3 mib i size first last
	[[ $nodes =~ ^[1-9][0-9]*$ ]] || die "NUMA nodes: wanted a number >= 1, got '$nodes'"
	[ "$nodes" -gt 1 ] || return 0
	[[ $smp =~ ^[1-9][0-9]*$ ]] || die "NUMA: wanted a number of vCPUs, got '$smp'"
	case $mem in
	*[!0-9MG]*|''|[MG]*) die "NUMA: cannot split memory '$mem' (wanted MiB, or a number with M or G)" ;;
	*G) mib=$(( ${mem%G} * 1024 )) ;;
	*M) mib=${mem%M} ;;
	*) mib=$mem ;;
	esac
	for ((i = 0; i < nodes; i++)); do
		size=$((mib / nodes))
		[ $i = 0 ] && size=$((size + mib % nodes))
		printf ' -object memory-backend-ram,id=m%d,size=%dM' $i $size
		printf ' -numa node,nodeid=%d,memdev=m%d' $i $i
		# The vCPUs c with c*nodes/smp = i.
		first=$(((i * smp + nodes - 1) / nodes))
		last=$((((i + 1) * smp + nodes - 1) / nodes - 1))
		if [ $first = $last ]; then
			printf ',cpus=%d' $first
		elif [ $first -lt $last ]; then
			printf ',cpus=%d-%d' $first $last
		fi
	done
}

# vm_boot OUTDIR JOB TIMEOUT MEM SMP [CMDLINE...]: boot the VM built by
# vm_prepare with JOB (a file) as /gmem/job and the files of OUTDIR/add/
# in /gmem/run.  Leaves OUTDIR/console.log and OUTDIR/output.log; returns
# the job's exit status, 124 on timeout, 125 when the VM died without a
# verdict (panic, WARN with panic_on_warn, oops) or a splat was logged.
# GMEM_VM_NUMA=N in the environment gives the VM N NUMA nodes (see
# vm_numa_args; default 1, no -numa options).
vm_boot() {
	local out=$1 job=$2 timeout=$3 mem=$4 smp=$5 rc opts numa
	shift 5
	opts=$(vm_numa_args "${GMEM_VM_NUMA:-1}" "$mem" "$smp") || return 125
	read -ra numa <<<"$opts"
	# With NUMA nodes, one socket per vCPU (see vm_numa_args).
	[ ${#numa[@]} = 0 ] || smp=$smp,sockets=$smp,cores=1,threads=1
	rm -rf "$out/extra"
	mkdir -p "$out/extra/gmem/run"
	install -m 755 "$job" "$out/extra/gmem/job"
	[ -d "$out/add" ] && cp -a "$out/add/." "$out/extra/gmem/run/"
	( cd "$VM_ROOTFS" && find . | cpio -o -H newc -R 0:0 --quiet ) > "$out/initramfs.cpio"
	( cd "$out/extra" && find . | cpio -o -H newc -R 0:0 --quiet ) >> "$out/initramfs.cpio"
	: > "$out/console.log"
	: > "$out/output.log"
	rc=0
	timeout --foreground -k 10 "$timeout" qemu-system-x86_64 \
		-machine pc -accel tcg -cpu EPYC -smp "$smp" -m "$mem" "${numa[@]}" \
		-nodefaults -display none -no-reboot \
		-kernel "$KDIR/arch/x86/boot/bzImage" \
		-initrd "$out/initramfs.cpio" \
		-append "console=ttyS0 panic=-1 panic_on_warn=1 oops=panic printk.time=0 kunit.enable=1 $*" \
		-serial "file:$out/console.log" -serial "file:$out/output.log" \
		</dev/null >"$out/qemu.log" 2>&1 || rc=$?
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		say "VM timed out after ${timeout}s"
		return 124
	fi
	if [ $rc != 0 ]; then
		cat "$out/qemu.log" >&2
		say "qemu failed with status $rc"
		return 125
	fi
	if grep -qE 'Kernel panic|BUG:|WARNING:|Oops|KASAN:|UBSAN:|kmemleak: [0-9]+ new suspected|Call Trace' "$out/console.log"; then
		say "kernel splat in the VM's console (see $out/console.log):"
		grep -E -A20 'Kernel panic|BUG:|WARNING:|Oops|KASAN:|UBSAN:|kmemleak: [0-9]+ new suspected|Call Trace' "$out/console.log" | head -60 >&2
		return 125
	fi
	rc=$(tr -d '\r' < "$out/output.log" | sed -n 's/^@@gmem-exit \([0-9]*\)$/\1/p' | tail -n1)
	if [ -z "$rc" ]; then
		say "VM ended without a verdict (see $out/console.log):"
		tail -n 30 "$out/console.log" >&2
		return 125
	fi
	return "$rc"
}
