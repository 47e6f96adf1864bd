#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prepares what selftests/distro_guests.sh boots: the pinned Debian kernels
# of GUEST_KERNELS (scripts/lib.sh), fetched with a private apt
# configuration, and a busybox initramfs whose /init is
# selftests/distro-guest-init. Both are cached under $MSRGUARD_CACHE/guests,
# keyed by version. Prints that script's arguments, one per line:
# the initramfs, then NAME=VMLINUZ per kernel.

. "$(dirname "$0")/lib.sh"

GUESTS="$MSRGUARD_CACHE/guests"
mkdir -p "$GUESTS"

# The kernels: only vmlinuz is kept (the package's modules are not needed:
# the initramfs loads none).
fetch_kernel() {
	local pkg="$1" version="$2" dir="$3" tmp
	[ -f "$dir/vmlinuz" ] && return
	if [ -z "${APT_OPTS+x}" ]; then
		local suites=() entry suite
		for entry in "${GUEST_KERNELS[@]}"; do
			read -r suite _ <<<"$entry"
			suites+=("$suite")
		done
		private_apt "$GUESTS/apt" "${suites[@]}"
	fi
	tmp=$(mktemp -d "$GUESTS/tmp.XXXXXX")
	(cd "$tmp" && apt-get "${APT_OPTS[@]}" download "$pkg=$version" >&2) ||
		die "cannot download $pkg=$version: no longer in the mirror? Pin a current version in GUEST_KERNELS (scripts/lib.sh)"
	dpkg-deb -x "$tmp"/*.deb "$tmp/x"
	mkdir -p "$dir"
	mv "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz.tmp"
	mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
	rm -rf "$tmp"
}

# The initramfs: busybox-static from Debian, keyed by its version and /init.
make_initramfs() {
	local init="$MSRGUARD_ROOT/selftests/distro-guest-init" key out tmp
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
		msg "installing busybox-static"
		# The system's package lists may be missing or stale on a new machine.
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2; } ||
			die "could not install busybox-static"
	fi
	key=$({
		dpkg-query -W -f='${Version}' busybox-static
		cat "$init"
	} | sha256sum | cut -c1-16)
	out="$GUESTS/initramfs-$key.cpio.gz"
	if [ ! -f "$out" ]; then
		tmp=$(mktemp -d "$GUESTS/tmp.XXXXXX")
		mkdir -p "$tmp/bin"
		cp /bin/busybox "$tmp/bin/busybox"
		install -m 0755 "$init" "$tmp/init"
		(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
			gzip -9 >"$out.tmp"
		mv "$out.tmp" "$out"
		rm -rf "$tmp"
	fi
	echo "$out"
}

make_initramfs
for entry in "${GUEST_KERNELS[@]}"; do
	read -r _ pkg version <<<"$entry"
	dir="$GUESTS/${pkg}_${version}"
	fetch_kernel "$pkg" "$version" "$dir"
	echo "${pkg#linux-image-}_$version=$dir/vmlinuz"
done
