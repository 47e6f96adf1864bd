#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Places msrguard in a kernel source tree as drivers/virt/msrguard/, with
# its Kconfig entry (CONFIG_MSRGUARD), so it is built with the kernel. Run
# through `make in-tree KSRC=/path/to/linux [POLICY=FILE]`, which first
# generates the policy table and the record constants (the kernel build
# does not run cargo). Running it again updates the copy; files that did
# not change keep their timestamps, so the kernel rebuilds only msrguard.
#
#   scripts/in-tree.sh KSRC [GENDIR]    # GENDIR: where make generated them (MO=)

. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: make in-tree KSRC=/path/to/linux [MO=DIR]"
ksrc="$1" gen="${2:-$MSRGUARD_ROOT}"
[ -f "$ksrc/drivers/virt/Kconfig" ] && [ -f "$ksrc/drivers/virt/Makefile" ] ||
	die "$ksrc: not a kernel source tree (no drivers/virt/Kconfig and Makefile)"
grep -q '^if VIRT_DRIVERS$' "$ksrc/drivers/virt/Kconfig" ||
	die "$ksrc/drivers/virt/Kconfig: no 'if VIRT_DRIVERS' block to add msrguard to"
generated=("$gen/rust/policy_table.rs" "$gen/rust/msrguard_abi.h" "$gen/rust/msrguard_boundary.h")
for f in "${generated[@]}"; do
	[ -f "$f" ] || die "$f missing: run this through 'make in-tree', which generates it"
done

dst="$ksrc/drivers/virt/msrguard"
# The module's sources keep their tiers; the generated files go to rust/,
# where Kbuild looks for them (MSRGUARD_GEN unset: next to the sources).
dirs=(rust/core rust/module rust/module/kvm)
mkdir -p "$dst/rust" "${dirs[@]/#/$dst/}"

# put SRC DST: copies only when the content differs.
put() {
	cmp -s "$1" "$2" || install -m 0644 "$1" "$2"
}
put "$MSRGUARD_ROOT/Kbuild" "$dst/Makefile"
put "$MSRGUARD_ROOT/packaging/in-tree/Kconfig" "$dst/Kconfig"
declare -A wanted=()
# The sources (the core crate's own Cargo.toml, tests and generator are
# host-only), then the generated files from GENDIR.
for d in "${dirs[@]}"; do
	for f in "$MSRGUARD_ROOT/$d"/*.rs "$MSRGUARD_ROOT/$d"/*.c "$MSRGUARD_ROOT/$d"/*.h; do
		[ -f "$f" ] && [ "$d/${f##*/}" != rust/core/lib.rs ] || continue
		put "$f" "$dst/$d/${f##*/}"
		wanted[$d/${f##*/}]=1
	done
done
for f in "${generated[@]}"; do
	put "$f" "$dst/rust/${f##*/}"
	wanted[rust/${f##*/}]=1
done
# A source file msrguard no longer has must not linger in the tree.
for d in rust "${dirs[@]}"; do
	for f in "$dst/$d"/*.rs "$dst/$d"/*.c "$dst/$d"/*.h; do
		[ -f "$f" ] || continue
		[ -n "${wanted[$d/${f##*/}]:-}" ] || rm -f "$f"
	done
done

# Hook it into drivers/virt, once.
line='source "drivers/virt/msrguard/Kconfig"'
grep -qxF "$line" "$ksrc/drivers/virt/Kconfig" ||
	sed -i "/^if VIRT_DRIVERS\$/a $line" "$ksrc/drivers/virt/Kconfig"
line='obj-$(CONFIG_MSRGUARD)	+= msrguard/'
grep -qxF "$line" "$ksrc/drivers/virt/Makefile" || echo "$line" >>"$ksrc/drivers/virt/Makefile"

msg "msrguard is $dst; enable CONFIG_VIRT_DRIVERS and CONFIG_MSRGUARD=m, then build the kernel"
