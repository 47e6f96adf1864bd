#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Builds the KVM selftests listed in selftests/kvm-selftests.list from the
# cached kernel tree, out of tree, into the cache (keyed by the kernel key;
# the list's hash is checked so a changed list rebuilds). Prints the output
# directory on stdout; its tests.txt names the tests built.
#
#   scripts/build-kvm-selftests.sh [LIST]

. "$(dirname "$0")/lib.sh"

list="${1:-$MSRGUARD_ROOT/selftests/kvm-selftests.list}"
KDIR="$(need_kernel_tree)"

out="$MSRGUARD_CACHE/kvm-selftests/$(kernel_key)"
# One test path (as in the kvm Makefile, e.g. x86/msrs_test) per line;
# "#" starts a comment.
mapfile -t tests < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$list" | awk '{print $1}')
[ ${#tests[@]} -gt 0 ] || die "$list lists no test"
stamp_want=$(printf '%s\n' "${tests[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$out/.msrguard-built" 2>/dev/null)" = "$stamp_want" ]; then
	msg "KVM selftests: reusing $out"
	echo "$out"
	exit 0
fi

build() {
	# The selftests include the tree's exported UAPI headers (usr/include).
	make -C "$KDIR" headers
	# Only the listed tests: the whole x86 set takes several minutes on
	# two cores. The Makefile takes OUTPUT as the build directory and
	# names its targets by their path under it.
	make -C "$KDIR/tools/testing/selftests/kvm" -j"$(nproc)" \
		OUTPUT="$out" "${tests[@]/#/$out/}"
}
mkdir -p "$out"
rm -f "$out/.msrguard-built"
run_logged kvm-selftests-build build >&2 || die "KVM selftests build failed"
# The runner in the VM reads the list from here, not from the source.
printf '%s\n' "${tests[@]}" >"$out/tests.txt"
echo "$stamp_want" >"$out/.msrguard-built"
echo "$out"
