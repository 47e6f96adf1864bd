#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Tests the in-tree path (`make in-tree`): a copy of the cached test kernel
# tree gets msrguard as drivers/virt/msrguard/, is configured with
# CONFIG_MSRGUARD=m and built as a whole; then the real-mode guard tables
# and the long-mode image attribution tests (selftests/kvm/realmode_test,
# image_test) run against the module that build produced,
# booting that tree's own kernel. The copy
# lives in the cache (keyed like the kernel), so later runs rebuild only
# msrguard.
#
#   scripts/test-in-tree.sh
#
# Prints the suite's TAP output; exits with its status.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

[ $# -eq 0 ] || die "usage: $0"
KDIR="$(need_kernel_tree)"

key=$(kernel_key)
# A copy of an older kernel key is 2.4 GB nobody uses again.
for old in "$MSRGUARD_CACHE"/in-tree/*; do
	[ "$old" = "$MSRGUARD_CACHE/in-tree/$key" ] || [ ! -d "$old" ] || rm -rf "$old"
done
tree="$MSRGUARD_CACHE/in-tree/$key/linux"
# The copy is of one build of the tree: a rebuild under the same key (its
# stamp is newer) is copied again.
if [ ! -f "$tree/.msrguard-copied" ] || [ "$KDIR/.msrguard-built" -nt "$tree/.msrguard-copied" ]; then
	rm -rf "$tree"
	mkdir -p "$tree"
	run_logged in-tree-copy cp -a "$KDIR/." "$tree/" >&2 || die "cannot copy $KDIR"
	rm -f "$tree/.msrguard-built"
	touch "$tree/.msrguard-copied"
fi

# Not /tmp: the VM has a /tmp of its own.
work="$MSRGUARD_CACHE/in-tree/$key/modules"
rm -rf "$work"
mkdir -p "$work"

# build_with POLICY OUT: msrguard with POLICY into the tree, the tree built,
# its msrguard.ko copied to OUT.
build_with() {
	# The generated sources into a variant's directory, not the clone's rust/.
	make -s in-tree KSRC="$tree" POLICY="$1" MO="$(module_dir in-tree)" >&2 || die "make in-tree POLICY=$1 failed"
	(
		cd "$tree"
		scripts/config --enable VIRT_DRIVERS --disable VMGENID --module MSRGUARD
		make -s olddefconfig
	) >&2 || die "configuring $tree failed"
	grep -qx 'CONFIG_MSRGUARD=m' "$tree/.config" ||
		die "$tree/.config: CONFIG_MSRGUARD=m did not survive olddefconfig: $(grep MSRGUARD "$tree/.config" || echo absent)"
	# The whole tree, not a single directory: the new option changes the
	# kernel's configuration, which vmlinux must match.
	run_logged "in-tree-build-${1##*/}" make -C "$tree" -j"$(nproc)" >&2 || die "building $tree with CONFIG_MSRGUARD=m failed"
	local ko="$tree/drivers/virt/msrguard/msrguard.ko"
	[ -f "$ko" ] || die "the kernel build made no $ko"
	[ "$(modinfo -F intree "$ko")" = Y ] || die "$ko is not marked as an in-tree module"
	cp "$ko" "$2"
}

build_with policy/default.toml "$work/msrguard.ko"
echo "ok in-tree: CONFIG_MSRGUARD=m, drivers/virt/msrguard/msrguard.ko built with the kernel (intree: Y)" >&2

# run.sh's test-policy build and tool: unused by these two.
scripts/vm-run.sh --kdir "$tree" --timeout 900 --append "kvm.force_emulation_prefix=1" -- \
	selftests/kvm/run.sh --only realmode_test,image_test "$work/msrguard.ko" "$work/msrguard.ko" /bin/false
