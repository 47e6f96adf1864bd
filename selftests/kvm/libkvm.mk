# SPDX-License-Identifier: GPL-2.0
# Read after the kernel tree's tools/testing/selftests/kvm/Makefile (see
# Makefile here): msrguard's programs, compiled and linked exactly like
# KVM's own tests (CFLAGS, LDFLAGS, LDLIBS, LIBKVM_OBJS), plus the host
# helpers shared with the older suite (../msrguard_host.c) and between
# these programs (msrguard_kvm.c).

MSRGUARD_BINS := $(patsubst %,$(MSRGUARD_SRC)/%,$(MSRGUARD_PROGS))
MSRGUARD_SHARED_O := $(MSRGUARD_SRC)/msrguard_host.o $(MSRGUARD_SRC)/msrguard_kvm.o

msrguard-progs: $(MSRGUARD_BINS)

$(MSRGUARD_SRC)/%.o: $(MSRGUARD_SRC)/%.c
	$(CC) $(CFLAGS) $(CPPFLAGS) -I$(MSRGUARD_SRC)/.. -c $< -o $@

$(MSRGUARD_SRC)/msrguard_host.o: $(MSRGUARD_SRC)/../msrguard_host.c
	$(CC) $(CFLAGS) $(CPPFLAGS) -c $< -o $@

$(MSRGUARD_BINS): %: %.o $(MSRGUARD_SHARED_O) $(LIBKVM_OBJS)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

-include $(wildcard $(MSRGUARD_SRC)/*.d)

.PHONY: msrguard-progs

# Bochs' initramfs (scripts/test-vmx.sh) has no C library: static.
$(MSRGUARD_SRC)/nested_vmx_test: LDFLAGS += -static
