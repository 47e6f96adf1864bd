#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Builds msrguard through packaging/dkms/dkms.conf with Debian's dkms, as a
# distribution would on a kernel update: the repository's files as the DKMS
# source tree, `dkms add` and `dkms build` against the test kernel's tree
# (--kernelsourcedir; a full build, so it has the Rust metadata that
# distribution headers packages may lack). DKMS' own trees are scratch
# directories: the host's /usr/src and /var/lib/dkms are not touched.
# Then the module DKMS built is loaded in the test VM, where the demo's
# guest must see its microcode write vetoed. TAP on stdout; exit status 0
# or 1.
#
#   scripts/test-dkms.sh

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

command -v dkms >/dev/null || die "dkms not installed (scripts/setup.sh installs it)"
KDIR="$(need_kernel_tree)"
kver=$(make -s -C "$KDIR" kernelrelease)
conf=packaging/dkms/dkms.conf
pkg_name=$(sed -n 's/^PACKAGE_NAME="\(.*\)"$/\1/p' "$conf")
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$conf")
[ -n "$pkg_name" ] && [ -n "$version" ] || die "$conf: no PACKAGE_NAME or PACKAGE_VERSION"
# One version: the package's is the tool's.
tool_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' tools/msrguard/Cargo.toml | head -n1)
[ "$version" = "$tool_version" ] || die "$conf: PACKAGE_VERSION $version, but tools/msrguard is $tool_version"

scratch=$(mktemp -d /tmp/msrguard-dkms.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
src="$scratch/src/$pkg_name-$version"
mkdir -p "$src" "$scratch/dkms"
# The source DKMS gets: the committed files (as a release tarball has them),
# with dkms.conf at its top, where DKMS looks for it.
git archive HEAD | tar -x -C "$src"
cp "$conf" "$src/dkms.conf"

dkms_do() {
	dkms "$@" -m "$pkg_name" -v "$version" --sourcetree "$scratch/src" --dkmstree "$scratch/dkms"
}
dkms_do add >&2 || die "dkms add failed"
if ! run_logged dkms-build dkms_do build -k "$kver" --kernelsourcedir "$KDIR" >&2; then
	cat "$scratch/dkms/$pkg_name/$version/build/make.log" 2>/dev/null | tail -n 40 >&2 || true
	die "dkms build failed"
fi
ko=$(find "$scratch/dkms/$pkg_name/$version/$kver" -name "$pkg_name.ko*" | head -n1)
[ -n "$ko" ] || die "dkms build reported success but made no $pkg_name.ko"
[ "$(modinfo -F vermagic "$ko" | awk '{print $1}')" = "$kver" ] || die "$ko: vermagic $(modinfo -F vermagic "$ko"), kernel $kver"
dkms_do status >&2
echo "TAP version 13"
echo "1..2"
echo "ok 1 dkms add + build: $pkg_name/$version for $kver, $(basename "$ko") with vermagic $kver"
# Not /tmp: the VM has a /tmp of its own.
out="$MSRGUARD_CACHE/dkms/msrguard.ko"
mkdir -p "${out%/*}"
cp "$ko" "$out"
demo_rc=0
scripts/vm-run.sh --timeout 300 -- selftests/kvm/msrguard_demo "$out" >"$scratch/demo.log" 2>&1 || demo_rc=$?
if [ "$demo_rc" -eq 0 ] && sed -n '/msrguard.ko loaded/,$p' "$scratch/demo.log" | grep -q 'WRMSR IA32_UCODE_WRITE .*-> #GP'; then
	echo "ok 2 the DKMS-built module loads in the test VM and vetoes the demo guest's microcode write"
else
	sed 's/^/# /' "$scratch/demo.log"
	echo "not ok 2 the DKMS-built module in the test VM (demo exit $demo_rc)"
	exit 1
fi
