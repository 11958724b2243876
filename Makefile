# SPDX-License-Identifier: GPL-2.0
#
# gmem: private memory for KVM guests.
#
#   make                 build gmem.ko against KERNELDIR (default: the running kernel)
#   make demo            boot the test VM and show gmem at work
#   make check           build the patched test kernel, the module and the tests,
#                        run them all in the test VM; exit status is the verdict
#   make check-debug     the same on the debug kernel (KASAN, KFENCE, lockdep,
#                        DEBUG_VM, UBSAN, kmemleak: kernel/config/debug.config)
#   make kunit           only the KUnit suites, judged by kunit.py
#   make install         modules_install + depmod for KERNELDIR
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

demo:
	tests/vm/demo

check:
	tests/vm/check

check-debug:
	tests/vm/check --flavor debug

kunit:
	tests/vm/check --kunit

.PHONY: all module clean install demo check check-debug kunit
