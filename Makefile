# SPDX-License-Identifier: GPL-2.0
#
# gmem: private memory for KVM guests.  `make help` lists the targets.
#
# The kbuild rules live in Kbuild; this file forwards to kbuild, installs
# what kbuild built, and names the developer's habits.

KERNELRELEASE ?= $(shell uname -r)
KERNELDIR ?= /lib/modules/$(KERNELRELEASE)/build
# The release of the kernel in KERNELDIR (its uname -r), for depmod and DKMS.
kver = $(or $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"$$/\1/p' \
	$(KERNELDIR)/include/generated/utsrelease.h 2>/dev/null),$(KERNELRELEASE))

VERSION := $(shell cat $(CURDIR)/VERSION)
DESTDIR ?=
UDEVRULESDIR ?= /etc/udev/rules.d
DKMSSRCDIR ?= /usr/src/gmem-$(VERSION)
# What DKMS builds from: the module, its KUnit suite and their kbuild files.
DKMS_FILES := Kbuild Kconfig Makefile VERSION dkms.conf \
	$(wildcard include/uapi/*.h src/*.c src/*.h tests/kunit/*.c)

all: module

module:
	$(MAKE) -C $(KERNELDIR) M=$(CURDIR) modules

clean:
	$(MAKE) -C $(KERNELDIR) M=$(CURDIR) clean 2>/dev/null || true
	rm -rf build

# INSTALL_MOD_PATH and DESTDIR stage the installation under another root.
install: module
	$(MAKE) -C $(KERNELDIR) M=$(CURDIR) modules_install
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(kver)
	$(MAKE) -s udev-install
	$(MAKE) -C tools install

uninstall:
	rm -f $(INSTALL_MOD_PATH)/lib/modules/$(kver)/updates/gmem.ko* \
	      $(INSTALL_MOD_PATH)/lib/modules/$(kver)/updates/gmem_kunit.ko* \
	      $(INSTALL_MOD_PATH)/lib/modules/$(kver)/updates/gmem_inject.ko*
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(kver)
	rm -f $(DESTDIR)$(UDEVRULESDIR)/60-gmem.rules

# The rule names group kvm: create it if the system lacks it (Debian's udev
# package creates it too).  Then apply the rule to a /dev/gmem that exists.
udev-install:
	install -D -m 0644 udev/60-gmem.rules $(DESTDIR)$(UDEVRULESDIR)/60-gmem.rules
ifeq ($(DESTDIR),)
	getent group kvm >/dev/null || groupadd --system kvm
	if command -v udevadm >/dev/null && [ -d /run/udev ]; then \
		udevadm control --reload && \
		udevadm trigger --action=change --sysname-match=gmem --subsystem-match=misc; \
	fi
endif

# The sources DKMS builds from, in $(DESTDIR)/usr/src/gmem-VERSION.
dkms-src:
	rm -rf $(DESTDIR)$(DKMSSRCDIR)
	for f in $(DKMS_FILES); do \
		install -D -m 0644 $$f $(DESTDIR)$(DKMSSRCDIR)/$$f || exit; \
	done

# Register, build and install with DKMS for KERNELDIR's kernel (the
# running one by default), replacing an earlier gmem of the same version.
# DKMS_FLAGS: more dkms options (e.g. --dkmstree, --installtree).
dkms-install: dkms-src
	if dkms status -m gmem -v $(VERSION) $(DKMS_FLAGS) | grep -q .; then \
		dkms remove -m gmem -v $(VERSION) --all $(DKMS_FLAGS); \
	fi
	dkms add -m gmem -v $(VERSION) $(DKMS_FLAGS)
	dkms install -m gmem -v $(VERSION) -k $(kver) $(DKMS_FLAGS) \
		$(if $(filter command line,$(origin KERNELDIR)),--kernelsourcedir $(KERNELDIR))
	$(MAKE) -s udev-install

dkms-uninstall:
	if dkms status -m gmem -v $(VERSION) $(DKMS_FLAGS) | grep -q .; then \
		dkms remove -m gmem -v $(VERSION) --all $(DKMS_FLAGS); \
	fi
	rm -rf $(DESTDIR)$(DKMSSRCDIR)
	rm -f $(DESTDIR)$(UDEVRULESDIR)/60-gmem.rules

# Debian packages of the patched kernel and its headers (see README.md).
kernel-deb:
	kernel/build-deb

demo:
	tests/vm/demo

check:
	tests/vm/check

check-debug:
	tests/vm/check --flavor debug

kunit:
	tests/vm/check --kunit

bench:
	bench/run

# ---------------------------------------------------------------------------
# Static checks: `make lint` runs them all and fails on any finding.  They
# need a full, built kernel tree: KSRC, by default the patched test kernel
# (tests/vm/build-kernel builds it once, or reuses it).

LINT_GOALS := lint style sparse w1 kdoc
ifneq ($(filter $(LINT_GOALS),$(MAKECMDGOALS)),)
ifeq ($(origin KSRC),undefined)
KSRC := $(shell $(CURDIR)/tests/vm/build-kernel)
endif
endif

CHECKPATCH = $(KSRC)/scripts/checkpatch.pl --strict --quiet --show-types
# Kernel code: no exception.
KERNEL_SOURCES := $(wildcard src/*.c src/*.h include/uapi/*.h tests/kunit/*.c)
# Userspace programs (selftests, tools) follow kernel style, minus the
# checks that only make sense inside the kernel:
#   PREFER_KERNEL_TYPES      u64 & co. do not exist in userspace; the KVM
#                            selftests library uses uint64_t too
#   BIT_MACRO                BIT_ULL() is not in userspace headers
#   MACRO_WITH_FLOW_CONTROL, MACRO_ARG_UNUSED
#                            kselftest_harness.h helpers such as
#                            SKIP(return, ...) and ASSERT_*() return from
#                            the test and use the harness's _metadata
#   MACRO_ARG_REUSE          assertion macros print their arguments as
#                            well as test them
#   VOLATILE                 guest code reads guest memory through
#                            volatile pointers so that every access reaches
#                            the memory KVM maps (as KVM's selftests do)
#   AVOID_EXTERNS            guest code is assembled in the same file; its
#                            symbols are declared next to the asm()
#   LONG_LINE_STRING         user-visible messages stay on one line, so
#                            that they can be grepped
#   PREFER_DEFINED_ATTRIBUTE_MACRO
#                            __printf() and friends are kernel macros; a
#                            program defines them from __attribute__
#   CAMELCASE                C99's <inttypes.h> format macros (PRIu64, ...)
USER_SOURCES := $(wildcard tests/user/*.c tests/user/*.h tools/*.c bench/*.c)
USER_IGNORE := PREFER_KERNEL_TYPES,BIT_MACRO,MACRO_WITH_FLOW_CONTROL,MACRO_ARG_UNUSED,MACRO_ARG_REUSE,VOLATILE,AVOID_EXTERNS,LONG_LINE_STRING,PREFER_DEFINED_ATTRIBUTE_MACRO,CAMELCASE
# The KVM patches, checked from inside the kernel tree.
PATCHES := $(wildcard $(CURDIR)/kernel/patches/6.12/*.patch)

style:
	@echo "checkpatch --strict: kernel code"
	@$(CHECKPATCH) --no-tree -f $(KERNEL_SOURCES)
	@echo "checkpatch --strict: userspace code (ignoring $(USER_IGNORE))"
	@$(CHECKPATCH) --no-tree -f --ignore $(USER_IGNORE) $(USER_SOURCES)
	@echo "checkpatch --strict: kernel/patches/6.12"
	@cd $(KSRC) && $(CHECKPATCH) $(PATCHES)

# sparse and W=1 rebuild every object; any warning fails the target.
sparse:
	@echo "sparse (C=2)"
	@mkdir -p build
	@$(MAKE) -s -C $(KSRC) M=$(CURDIR) C=2 modules 2>&1 | tee build/sparse.log
	@! grep -E '(warning|error):' build/sparse.log

w1:
	@echo "W=1 build"
	@mkdir -p build
	@$(MAKE) -s -C $(KSRC) M=$(CURDIR) W=1 modules 2>&1 | tee build/w1.log
	@! grep -E '(warning|error):' build/w1.log

# kernel-doc checks the comments it finds; the loops check that every
# exported function and every uapi macro, struct, union and enum has one.
kdoc:
	@echo "kernel-doc -none -Wall"
	@mkdir -p build
	@$(KSRC)/scripts/kernel-doc -none -Wall $(KERNEL_SOURCES) 2>&1 | tee build/kdoc.log
	@for f in $(filter %.c,$(KERNEL_SOURCES)); do \
		for sym in $$(sed -n 's/^EXPORT_SYMBOL[A-Z_]*(\([A-Za-z0-9_]*\));/\1/p' $$f); do \
			grep -q "^ \* $$sym() - " $$f || \
				echo "$$f: $$sym() is exported without kernel-doc"; \
		done; \
	done | tee -a build/kdoc.log
	@for f in $(wildcard include/uapi/*.h); do \
		sed -n 's/^#define \([A-Za-z][A-Za-z0-9_]*\).*/define \1/p; s/^\(struct\|union\|enum\) \([a-z0-9_]*\) {.*/\1 \2/p' $$f | \
		while read -r kind name; do \
			grep -q "^ \* $$kind $$name - " $$f || \
				echo "$$f: $$kind $$name has no kernel-doc"; \
		done; \
	done | tee -a build/kdoc.log
	@! [ -s build/kdoc.log ]

# dkms.conf is declarative: its PACKAGE_VERSION must be VERSION.
versions:
	@echo "dkms.conf PACKAGE_VERSION = VERSION ($(VERSION))"
	@grep -qx 'PACKAGE_VERSION="$(VERSION)"' dkms.conf || \
		{ echo "dkms.conf: PACKAGE_VERSION is not \"$(VERSION)\"" >&2; exit 1; }

# No merge conflict markers anywhere in the tracked tree.
markers:
	@echo "no merge conflict markers"
	@! git grep -n -E '^(<<<<<<<|>>>>>>>) ' -- . ':!*.patch'

lint: style sparse w1 kdoc versions markers

help:
	@echo 'make [KERNELDIR=dir]      build gmem.ko (default: the running kernel)'
	@echo 'make install              modules_install + depmod + udev rule + gmemctl'
	@echo 'make uninstall            undo make install'
	@echo 'make dkms-install         install with DKMS (sources in $(DKMSSRCDIR))'
	@echo 'make dkms-uninstall       undo make dkms-install'
	@echo 'make kernel-deb           Debian packages of the patched kernel and headers'
	@echo 'make demo                 boot the test VM and show gmem at work'
	@echo 'make check                build everything, run every test in the test VM'
	@echo 'make check-debug          the same on the debug kernel (KASAN, lockdep, kmemleak, ...)'
	@echo 'make kunit                only the KUnit suites'
	@echo 'make bench                gmem against KVM'"'"'s guest_memfd, in the test VM'
	@echo 'make lint                 style sparse w1 kdoc versions markers (any finding fails)'
	@echo 'make style                checkpatch --strict on code and patches'
	@echo 'make sparse               sparse (C=2)'
	@echo 'make w1                   W=1 build'
	@echo 'make kdoc                 kernel-doc -none -Wall'

.PHONY: all module clean install uninstall udev-install dkms-src dkms-install \
	dkms-uninstall kernel-deb demo check check-debug kunit bench style sparse w1 kdoc \
	versions markers lint help
