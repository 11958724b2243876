# SPDX-License-Identifier: GPL-2.0
#
# Programs that run guests use the KVM selftests library of the kernel tree
# KDIR (tools/testing/selftests/kvm/lib), built into $(KVM_OUT) with the
# library's own flags.  Include with KDIR, OUT and TOP set; link a program
# with $(call kvm_link,OUTPUT,SOURCE).

.DEFAULT_GOAL := all

KVM_SELFTESTS := $(KDIR)/tools/testing/selftests/kvm
KVM_OUT := $(OUT)/.kvm

# The library Makefile's flags, so that guest code compiled into our
# programs follows the same rules.
KVM_CFLAGS := -Wall -Wstrict-prototypes -Wuninitialized -O2 -g -std=gnu99 \
	-DCONFIG_64BIT -D_GNU_SOURCE -U_FORTIFY_SOURCE \
	-fno-builtin-memcmp -fno-builtin-memcpy -fno-builtin-memset \
	-fno-builtin-strnlen -fno-stack-protector -fno-PIE -fno-strict-aliasing \
	-march=x86-64-v2 -pthread \
	-I$(KDIR)/tools/include -I$(KDIR)/tools/arch/x86/include \
	-isystem $(KDIR)/usr/include -I$(KVM_SELFTESTS)/include \
	-I$(KVM_SELFTESTS)/include/x86_64 -I$(KDIR)/tools/testing/selftests \
	-I$(TOP)/include/uapi
KVM_LDFLAGS := -static -pthread -no-pie

# The library objects are prerequisites of every upstream KVM selftest:
# building upstream's guest_memfd_test builds them into $(KVM_OUT)/lib.
KVM_LIB := $(KVM_OUT)/guest_memfd_test

$(KVM_LIB):
	@mkdir -p $(KVM_OUT)
	$(MAKE) -s -C $(KVM_SELFTESTS) OUTPUT=$(KVM_OUT) \
		LDFLAGS="$(KVM_LDFLAGS)" $(KVM_LIB)

kvm_link = $(CC) $(KVM_CFLAGS) -o $(1) $(2) $$(find $(KVM_OUT)/lib -name '*.o') \
	$(KVM_LDFLAGS) -ldl
