# SPDX-License-Identifier: GPL-2.0
#
# gmem: private memory for KVM guests.
#
#   make                 build gmem.ko against KERNELDIR (default: the running kernel)
#   make demo            boot the test VM and show gmem at work
#   make check           build the patched test kernel, the module and the tests,
#                        run them all in the test VM; exit status is the verdict
#   make kunit           only the KUnit suites, judged by kunit.py
#   make bench           gmem against KVM's guest_memfd, in the test VM
#   make install         modules_install + depmod for KERNELDIR, and gmemctl
#                        (DESTDIR, PREFIX: see tools/Makefile)
#
# The kbuild rules live in Kbuild; this file only forwards to kbuild and
# names the developer's habits.

KERNELRELEASE ?= $(shell uname -r)
KERNELDIR ?= /lib/modules/$(KERNELRELEASE)/build
GMEM_VERSION := $(shell cat $(CURDIR)/VERSION)$(shell git -C $(CURDIR) rev-parse --short HEAD 2>/dev/null | sed 's/^/+g/')

all: module

module:
	$(MAKE) -C $(KERNELDIR) M=$(CURDIR) GMEM_VERSION=$(GMEM_VERSION) modules

clean:
	$(MAKE) -C $(KERNELDIR) M=$(CURDIR) clean 2>/dev/null || true
	rm -rf build

install: module
	$(MAKE) -C $(KERNELDIR) M=$(CURDIR) modules_install
	depmod -a $(KERNELRELEASE)
	$(MAKE) -C tools install

demo:
	tests/vm/demo

check:
	tests/vm/check

kunit:
	tests/vm/check --kunit

bench:
	bench/run

.PHONY: all module clean install demo check kunit bench
