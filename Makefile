# SPDX-License-Identifier: GPL-2.0
# Builds msrguard.ko. Without KDIR, the kernel tree built by
# scripts/setup.sh (cached outside the clone) is used; with
# KDIR=/path/to/linux, a fully built, Rust-enabled tree of your own.
# POLICY selects the policy file compiled in (default: policy/default.toml),
# PROFILES the profile files over it (default: policy/profiles/*.toml).
# MO=DIR builds into DIR (kbuild's output directory for external modules),
# generated sources included, so builds with different policies do not
# overwrite each other; without it, ./msrguard.ko. MO= needs a source
# directory without an in-place build (scripts/lib.sh: build_module removes
# one; make clean would remove the MO= builds under build/ too).

# Resolved once, not at every use, and not for `make in-tree` alone.
ifeq ($(origin KDIR),undefined)
ifneq ($(filter-out in-tree,$(or $(MAKECMDGOALS),all)),)
KDIR := $(shell $(CURDIR)/scripts/kernel-dir.sh)
endif
endif
POLICY ?= policy/default.toml
PROFILES ?= $(sort $(wildcard $(CURDIR)/policy/profiles/*.toml))
# Where the build and its generated sources go (absolute: kbuild runs in KDIR).
OUT := $(if $(MO),$(abspath $(MO)),$(CURDIR))
kbuild = $(MAKE) -C $(KDIR) M=$(CURDIR) $(if $(MO),MO=$(OUT)) MSRGUARD_GEN=$(OUT)
gen := $(OUT)/rust/policy_table.rs $(OUT)/rust/msrguard_abi.h $(OUT)/rust/msrguard_boundary.h

# Checked where a target needs it: `make in-tree` needs no built tree.
need_kdir = $(if $(KDIR),,$(error no built kernel tree: run scripts/setup.sh, or pass KDIR=/path/to/built/linux))

all: modules

# The generator checks the policy and the profiles (file:line: errors) and
# rewrites the tables only when they change, so it runs every time at no cost.
$(OUT)/rust/policy_table.rs: FORCE
	@mkdir -p $(@D)
	cargo run --quiet --locked --release -p msrguard-policy --bin msrguard-policy-gen -- $(POLICY) $@ $(PROFILES)

# The record layout's and the guard's constants (rust/core/record.rs,
# guard.rs), and the structs and functions the module's C and Rust sides
# share (rust/core/boundary.rs, boundary_calls.rs), for the C side.
$(OUT)/rust/msrguard_abi.h: FORCE
	@mkdir -p $(@D)
	cargo run --quiet --locked --release -p msrguard-core --bin msrguard-c-header -- abi > $@.tmp
	cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

$(OUT)/rust/msrguard_boundary.h: FORCE
	@mkdir -p $(@D)
	cargo run --quiet --locked --release -p msrguard-core --bin msrguard-c-header -- boundary > $@.tmp
	cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

modules: $(gen)
	$(need_kdir)
	$(kbuild) modules

# msrguard as drivers/virt/msrguard/ of the kernel source tree KSRC, with
# the policy POLICY compiled in; then enable CONFIG_MSRGUARD=m there.
in-tree: $(gen)
	$(if $(KSRC),,$(error usage: make in-tree KSRC=/path/to/linux [POLICY=FILE] [MO=DIR]))
	scripts/in-tree.sh $(KSRC) $(OUT)

# msrguard.ko into $(INSTALL_MOD_PATH)/lib/modules/<the tree's release>/
# (kbuild's directory for external modules), then depmod, as kbuild does.
# INSTALL_MOD_PATH defaults to DESTDIR, so a staged install stays staged.
modules_install: modules
	$(need_kdir)
	$(kbuild) INSTALL_MOD_PATH=$(or $(INSTALL_MOD_PATH),$(DESTDIR)) modules_install

# The module, then the tool into $(DESTDIR)$(PREFIX)/bin, the systemd unit
# (pointing at that tool), and the modprobe.d and modules-load.d files.
PREFIX ?= /usr
install: modules_install
	cargo install --quiet --locked --no-track --force --path tools/msrguard --root $(DESTDIR)$(PREFIX)
	install -d $(DESTDIR)/usr/lib/systemd/system $(DESTDIR)/etc/modprobe.d $(DESTDIR)/etc/modules-load.d
	sed 's|^ExecStart=/usr/bin/msrguard|ExecStart=$(PREFIX)/bin/msrguard|' packaging/systemd/msrguard-events.service \
		>$(DESTDIR)/usr/lib/systemd/system/msrguard-events.service
	install -m 0644 packaging/modprobe.d/msrguard.conf $(DESTDIR)/etc/modprobe.d/msrguard.conf
	install -m 0644 packaging/modules-load.d/msrguard.conf $(DESTDIR)/etc/modules-load.d/msrguard.conf

clean:
	$(need_kdir)
	$(kbuild) clean
	rm -f $(gen)

FORCE:

.PHONY: all modules in-tree modules_install install clean FORCE
