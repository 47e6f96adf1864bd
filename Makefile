# SPDX-License-Identifier: GPL-2.0
# Builds msrguard.ko. Without KDIR, the kernel tree built by
# scripts/setup.sh (cached outside the clone) is used; with
# KDIR=/path/to/linux, a fully built, Rust-enabled tree of your own.

KDIR ?= $(shell $(CURDIR)/scripts/kernel-dir.sh)

ifeq ($(KDIR),)
$(error no built kernel tree: run scripts/setup.sh, or pass KDIR=/path/to/built/linux)
endif

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean

.PHONY: all modules clean
