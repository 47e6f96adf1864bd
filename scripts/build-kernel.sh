#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fetches Debian's linux-source package (pinned), configures it from a minimal
# base plus scripts/kernel.config, checks every requested option survived,
# and builds it into the cache. An existing tree for the same key is reused.
# Prints the tree's path on stdout.

. "$(dirname "$0")/lib.sh"

KDIR="$(kernel_dir)"
if [ -f "$KDIR/.msrguard-built" ]; then
	msg "kernel: reusing $KDIR"
	echo "$KDIR"
	exit 0
fi

# Through a private apt configuration (private_apt).
fetch_source() {
	local apt="$MSRGUARD_CACHE/apt"
	local deb="$MSRGUARD_CACHE/src/${KERNEL_PKG}_${KERNEL_PKG_VERSION}_all.deb"
	if [ -f "$deb" ]; then
		echo "$deb"
		return
	fi
	mkdir -p "$MSRGUARD_CACHE/src"
	private_apt "$apt" "$KERNEL_SUITE"
	(cd "$MSRGUARD_CACHE/src" && apt-get "${APT_OPTS[@]}" download "$KERNEL_PKG=$KERNEL_PKG_VERSION" >&2)
	[ -f "$deb" ] || die "download of $KERNEL_PKG=$KERNEL_PKG_VERSION did not produce $deb"
	echo "$deb"
}

extract_source() {
	local deb="$1" tmp="$2"
	local x="$MSRGUARD_CACHE/src/extract"
	rm -rf "$x" "$tmp"
	mkdir -p "$x" "$tmp"
	dpkg-deb -x "$deb" "$x"
	tar -xJf "$x/usr/src/$KERNEL_PKG.tar.xz" -C "$tmp" --strip-components=1
	rm -rf "$x"
}

# Minimal base (allnoconfig), then the fragment, then olddefconfig.
configure() {
	local tmp="$1"
	make -C "$tmp" allnoconfig
	"$tmp/scripts/kconfig/merge_config.sh" -m -O "$tmp" "$tmp/.config" \
		"$MSRGUARD_ROOT/scripts/kernel.config"
	make -C "$tmp" olddefconfig
}

# Unmet dependencies drop options silently: fail listing each one.
check_config() {
	local config="$1" missing=() line opt want got
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			opt="${line%%=*}"
			want="${line#*=}"
			;;
		"# CONFIG_"*" is not set")
			opt="${line#\# }"
			opt="${opt%% *}"
			want=""
			;;
		*) continue ;;
		esac
		got=$(grep -E "^$opt=" "$config" | cut -d= -f2- || true)
		[ "$got" = "$want" ] || missing+=("$opt: wanted ${want:-unset}, got ${got:-unset}")
	done <"$MSRGUARD_ROOT/scripts/kernel.config"
	if [ ${#missing[@]} -ne 0 ]; then
		printf 'error: options requested in scripts/kernel.config are not set after olddefconfig:\n' >&2
		printf '  %s\n' "${missing[@]}" >&2
		return 1
	fi
}

# The tree is built where it stays (Kbuild records paths); the stamp marks
# a finished build, and an interrupted one resumes incrementally.
run_logged kernel-fetch fetch_source
deb=$(fetch_source)
if [ ! -f "$KDIR/Makefile" ]; then
	run_logged kernel-extract extract_source "$deb" "$KDIR"
fi
if [ ! -f "$KDIR/.config" ]; then
	run_logged kernel-config configure "$KDIR"
fi
check_config "$KDIR/.config"
run_logged kernel-rustavailable make -C "$KDIR" rustavailable
run_logged kernel-build make -C "$KDIR" -j"$(nproc)" bzImage modules
[ -f "$KDIR/arch/x86/kvm/kvm-amd.ko" ] || die "kernel build produced no kvm-amd.ko"
touch "$KDIR/.msrguard-built"
# Old trees with other keys are only disk space; keep the newest two.
ls -1dt "$MSRGUARD_CACHE"/kernel/linux-* 2>/dev/null | tail -n +3 | xargs -r rm -rf
echo "$KDIR"
