#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fetches Debian's linux-source package (pinned), configures it from a minimal
# base plus scripts/kernel.config, checks every requested option survived,
# and builds it into the cache. An existing tree for the same key is reused.
# Prints the tree's path on stdout.
#
#   scripts/build-kernel.sh [--flavor test|prod]
#
# The "test" flavor (default) is the VM suite's kernel; "prod" turns the
# debug options off (lib.sh's PROD_OFF_OPTIONS) and is built only by
# scripts/bench.sh.

. "$(dirname "$0")/lib.sh"

flavor=test
while [ $# -gt 0 ]; do
	case "$1" in
	--flavor) flavor="$2"; shift 2 ;;
	*) die "build-kernel.sh: unknown option $1 (usage: build-kernel.sh [--flavor test|prod])" ;;
	esac
done
KDIR="$(kernel_dir "$flavor")"
# Log names carry the flavor, except the test flavor's (unchanged).
sfx=""
[ "$flavor" = test ] || sfx="-$flavor"
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

# The flavor's fragment, as a file for merge_config.sh and check_config.
FRAGMENT=$(mktemp /tmp/msrguard-kernel-config.XXXXXX)
trap 'rm -f "$FRAGMENT"' EXIT
kernel_fragment "$flavor" >"$FRAGMENT"

# Minimal base (allnoconfig), then the fragment, then olddefconfig.
configure() {
	local tmp="$1"
	make -C "$tmp" allnoconfig
	"$tmp/scripts/kconfig/merge_config.sh" -m -O "$tmp" "$tmp/.config" "$FRAGMENT"
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
	done <"$FRAGMENT"
	if [ ${#missing[@]} -ne 0 ]; then
		printf 'error: options requested in scripts/kernel.config (flavor %s) are not set after olddefconfig:\n' "$flavor" >&2
		printf '  %s\n' "${missing[@]}" >&2
		return 1
	fi
}

# The tree is built where it stays (Kbuild records paths); the stamp marks
# a finished build, and an interrupted one resumes incrementally.
run_logged kernel-fetch fetch_source
deb=$(fetch_source)
if [ ! -f "$KDIR/Makefile" ]; then
	run_logged kernel-extract$sfx extract_source "$deb" "$KDIR"
fi
if [ ! -f "$KDIR/.config" ]; then
	run_logged kernel-config$sfx configure "$KDIR"
fi
check_config "$KDIR/.config"
run_logged kernel-rustavailable$sfx make -C "$KDIR" rustavailable
run_logged kernel-build$sfx make -C "$KDIR" -j"$(nproc)" bzImage modules
[ -f "$KDIR/arch/x86/kvm/kvm-amd.ko" ] || die "kernel build produced no kvm-amd.ko"
touch "$KDIR/.msrguard-built"
# Old trees with other keys are only disk space; keep the newest two of
# this flavor (another flavor's trees have another prefix).
ls -1dt "$MSRGUARD_CACHE/kernel/$(kernel_prefix "$flavor")"* 2>/dev/null | tail -n +3 | xargs -r rm -rf
echo "$KDIR"
