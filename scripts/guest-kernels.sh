#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prepares what selftests/distro_guests.sh boots: the pinned Debian kernels
# of GUEST_KERNELS (scripts/lib.sh), fetched with a private apt
# configuration with their KVM modules, and a busybox initramfs whose /init
# is selftests/distro-guest-init, holding those modules and
# selftests/msr-index-list (static). All are cached
# under $MSRGUARD_CACHE/guests, keyed by version. Prints that script's
# arguments, one per line: the initramfs, then NAME=VMLINUZ per kernel.

. "$(dirname "$0")/lib.sh"

GUESTS="$MSRGUARD_CACHE/guests"
mkdir -p "$GUESTS"

# The kernels: only vmlinuz is kept (the package's modules are not needed:
# the initramfs loads none).
# The guest's KVM modules, in load order (their only dependencies, as
# modinfo says of 6.1's and 6.12's: kvm-amd/kvm-intel need kvm, kvm needs
# irqbypass).
KVM_MODULES=(virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd arch/x86/kvm/kvm-intel)
# And the msr driver, for the hardened profile's attack (/dev/cpu/*/msr).
GUEST_MODULES=("${KVM_MODULES[@]}" arch/x86/kernel/msr)

# Whether DIR has every module of GUEST_MODULES (a cache made before one was added has not).
have_modules() {
	local m
	for m in "${GUEST_MODULES[@]}"; do
		compgen -G "$1/modules/*/${m##*/}.ko" >/dev/null || return 1
	done
}

fetch_kernel() {
	local pkg="$1" version="$2" dir="$3" tmp mods rel m f
	[ -f "$dir/vmlinuz" ] && have_modules "$dir" && return
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
	# Uncompressed (busybox's insmod reads them whole): bookworm ships .ko,
	# trixie .ko.xz under /usr/lib.
	mods=""
	for f in "$tmp"/x/lib/modules/* "$tmp"/x/usr/lib/modules/*; do
		[ -d "$f" ] && mods=$f && break
	done
	[ -n "$mods" ] || die "$pkg=$version has no modules directory"
	rel=${mods##*/}
	rm -rf "$dir/modules.tmp"
	mkdir -p "$dir/modules.tmp/$rel"
	for m in "${GUEST_MODULES[@]}"; do
		f=""
		for f in "$mods/kernel/$m.ko" "$mods/kernel/$m.ko.xz" "$mods/kernel/$m.ko.zst" ""; do
			[ -f "$f" ] && break
		done
		[ -n "$f" ] || die "$pkg=$version has no module $m"
		case "$f" in
		*.xz) xz -dc "$f" ;;
		*.zst) zstd -dc "$f" ;;
		*) cat "$f" ;;
		esac >"$dir/modules.tmp/$rel/${m##*/}.ko"
	done
	mv "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz.tmp"
	rm -rf "$dir/modules"
	mv "$dir/modules.tmp" "$dir/modules"
	mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
	rm -rf "$tmp"
}

# The initramfs: busybox-static from Debian, keyed by its version and /init.
make_initramfs() {
	local init="$MSRGUARD_ROOT/selftests/distro-guest-init" key out tmp dir
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
		msg "installing busybox-static"
		# The system's package lists may be missing or stale on a new machine.
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2; } ||
			die "could not install busybox-static"
	fi
	key=$({
		dpkg-query -W -f='${Version}' busybox-static
		cat "$init" "$MSRGUARD_ROOT/selftests/msr-index-list.c" "$MSRGUARD_ROOT/selftests/guest-pin-attack.c"
		printf '%s\n' "${GUEST_KERNELS[@]}" "${GUEST_MODULES[@]}"
	} | sha256sum | cut -c1-16)
	out="$GUESTS/initramfs-$key.cpio.gz"
	if [ ! -f "$out" ]; then
		tmp=$(mktemp -d "$GUESTS/tmp.XXXXXX")
		mkdir -p "$tmp/bin" "$tmp/lib/modules"
		cp /bin/busybox "$tmp/bin/busybox"
		# The guest KVM's MSR list, printed by a static program of ours.
		gcc -static -O2 -Wall -o "$tmp/bin/msr-index-list" \
			"$MSRGUARD_ROOT/selftests/msr-index-list.c" ||
			die "cannot build selftests/msr-index-list.c"
		gcc -static -O2 -Wall -o "$tmp/bin/guest-pin-attack" \
			"$MSRGUARD_ROOT/selftests/guest-pin-attack.c" ||
			die "cannot build selftests/guest-pin-attack.c"
		# Every guest kernel's KVM modules, under its release.
		for dir in "$@"; do
			cp -r "$dir"/modules/* "$tmp/lib/modules/"
		done
		install -m 0755 "$init" "$tmp/init"
		(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
			gzip -9 >"$out.tmp"
		mv "$out.tmp" "$out"
		rm -rf "$tmp"
	fi
	echo "$out"
}

dirs=() args=()
for entry in "${GUEST_KERNELS[@]}"; do
	read -r _ pkg version <<<"$entry"
	dir="$GUESTS/${pkg}_${version}"
	fetch_kernel "$pkg" "$version" "$dir"
	dirs+=("$dir")
	args+=("${pkg#linux-image-}_$version=$dir/vmlinuz")
done
make_initramfs "${dirs[@]}"
printf '%s\n' "${args[@]}"
