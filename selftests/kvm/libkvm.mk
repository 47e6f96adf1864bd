# SPDX-License-Identifier: GPL-2.0
# Read after the kernel tree's tools/testing/selftests/kvm/Makefile (see
# Makefile here): msrguard's programs, compiled and linked exactly like
# KVM's own tests (CFLAGS, LDFLAGS, LDLIBS, LIBKVM_OBJS), plus the helpers
# they share (../msrguard_host.c: modules, records, tracefs; msrguard_kvm.c).

MSRGUARD_BINS := $(patsubst %,$(MSRGUARD_SRC)/%,$(MSRGUARD_PROGS))
MSRGUARD_SHARED_O := $(MSRGUARD_SRC)/msrguard_host.o $(MSRGUARD_SRC)/msrguard_kvm.o
# The real-mode guest (realmode.c, its code in realmode_guest.S) and the
# real-mode guard cases, for the programs that run them.
MSRGUARD_REALMODE_O := $(MSRGUARD_SRC)/realmode.o $(MSRGUARD_SRC)/realmode_guest.o
MSRGUARD_REALMODE_GUARD_O := $(MSRGUARD_REALMODE_O) $(MSRGUARD_SRC)/realmode_guard.o

msrguard-progs: $(MSRGUARD_BINS)

$(MSRGUARD_SRC)/%.o: $(MSRGUARD_SRC)/%.c
	$(CC) $(CFLAGS) $(CPPFLAGS) -I$(MSRGUARD_SRC)/.. -c $< -o $@

$(MSRGUARD_SRC)/msrguard_host.o: $(MSRGUARD_SRC)/../msrguard_host.c
	$(CC) $(CFLAGS) $(CPPFLAGS) -c $< -o $@

$(MSRGUARD_SRC)/%.o: $(MSRGUARD_SRC)/%.S
	$(CC) $(CPPFLAGS) -c $< -o $@

$(MSRGUARD_SRC)/realmode_guest.o: $(MSRGUARD_SRC)/realmode.h

$(MSRGUARD_BINS): %: %.o $(MSRGUARD_SHARED_O) $(LIBKVM_OBJS)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(MSRGUARD_SRC)/realmode_test $(MSRGUARD_SRC)/realmode_vmx_test: $(MSRGUARD_REALMODE_GUARD_O)
$(MSRGUARD_SRC)/msrguard_bench: $(MSRGUARD_REALMODE_O) $(MSRGUARD_SRC)/bench_long_mode.o

-include $(wildcard $(MSRGUARD_SRC)/*.d)

.PHONY: msrguard-progs

# Bochs' initramfs (scripts/test-vmx.sh) has no C library: static.
$(MSRGUARD_SRC)/guard_test $(MSRGUARD_SRC)/nested_vmx_test $(MSRGUARD_SRC)/realmode_vmx_test: LDFLAGS += -static
