# SPDX-License-Identifier: GPL-2.0
# Shared helpers and pinned versions for msrguard's scripts. Source it, do
# not run it.

set -euo pipefail

MSRGUARD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Pinned inputs. Changing one of them changes the cache key of what depends
# on it, so the next run rebuilds instead of reusing a stale tree.
KERNEL_PKG=linux-source-7.3
KERNEL_PKG_VERSION=7.3.4-1~bpo13+1
KERNEL_SUITE=trixie-backports
BINDGEN_VERSION=0.71.1
VIRTME_NG_VERSION=1.42
LIBCLANG_PKG=libclang-19-dev
# Stock Debian kernels the VM suite boots as KVM guests (selftests/distro_guests.sh):
# "suite package version", two series. The mirror drops a version some time
# after a newer one replaces it; the cache keeps a fetched one.
GUEST_KERNELS=(
	"bookworm linux-image-6.1.0-50-cloud-amd64 6.1.176-1"
	"trixie linux-image-6.12.117+deb13-cloud-amd64 6.12.117-1"
)
# MSRs both of those guests read at boot (seen in audit mode), whose reads
# the real-guest tests' strict policy ignores (scripts/strict-guest-policy.sh):
# each must be recorded as an ignored read, and the guest must still boot.
# Read-only information a hypervisor may hide: the microcode revision
# (UCODE_REV/PATCH_LEVEL) and ARCH_CAPABILITIES.
GUEST_STRICT_IGNORE_READS=(0x8b 0x10a)

# Everything expensive lives outside the clone so a fresh clone reuses it.
# Not under /var: virtme-ng overlays /var in the guest, hiding it.
MSRGUARD_CACHE="${MSRGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msrguard}"
LOG_DIR="$MSRGUARD_CACHE/logs"
VENV="$MSRGUARD_CACHE/venv-virtme-ng-$VIRTME_NG_VERSION"
mkdir -p "$LOG_DIR"

export PATH="$HOME/.cargo/bin:$PATH"

# Cargo's build outputs are expensive too: keep them in the cache, so a
# fresh clone does not rebuild every crate.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MSRGUARD_CACHE/cargo-target}"
TOOL="$CARGO_TARGET_DIR/release/msrguard"

# libclang 19 lives outside the default search path on bookworm.
if [ -d /usr/lib/llvm-19/lib ]; then
	export LIBCLANG_PATH=/usr/lib/llvm-19/lib
fi

msg() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# run_logged NAME CMD...: runs a long step with its output in a log file,
# prints a dot every 10 s so CI sees progress, reports the duration, and on
# failure shows the log's tail.
run_logged() {
	local name="$1"; shift
	local log="$LOG_DIR/$name.log"
	local start=$SECONDS rc=0
	msg "$name (log: $log)"
	"$@" >"$log" 2>&1 &
	local pid=$! ticks=0
	# Poll each second (so short steps report their real duration), and
	# print a dot every 10 s.
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		ticks=$((ticks + 1))
		[ $((ticks % 10)) -ne 0 ] || printf '.' >&2
	done
	wait "$pid" || rc=$?
	printf '\n' >&2
	if [ "$rc" -ne 0 ]; then
		printf 'error: %s failed (exit %d) after %ds; last lines of %s:\n' \
			"$name" "$rc" $((SECONDS - start)) "$log" >&2
		tail -n 40 "$log" >&2
		return "$rc"
	fi
	msg "$name took $((SECONDS - start))s"
}

# Builds msrguard.ko (default policy, module_ko default), the VM programs
# and the tool.
build_all() {
	build_module default -s >/dev/null || die "module build failed"
	make -s -C "$MSRGUARD_ROOT/selftests" >/dev/null || die "selftest and demo build failed"
	# LIBKVM's objects are cached (selftests/kvm/Makefile); its -Wno-* for
	# clang makes gcc print a note on every error: kept to the log.
	make -s -C "$MSRGUARD_ROOT/selftests/kvm" >"$LOG_DIR/libkvm-build.log" 2>&1 || {
		tail -n 40 "$LOG_DIR/libkvm-build.log" >&2
		die "libkvm suite build failed (log: $LOG_DIR/libkvm-build.log)"
	}
	cargo build --quiet --locked --release -p msrguard || die "tool build failed"
}

# private_apt DIR SUITE...: points APT_OPTS at an apt configuration of its
# own under DIR (sources list, lists, cache) for SUITEs of the mirror the
# system uses, and updates it. The system's apt configuration is never
# touched.
private_apt() {
	local dir="$1" suite mirror
	shift
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	: >"$dir/sources.list"
	for suite in "$@"; do
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >>"$dir/sources.list"
	done
	APT_OPTS=(-o Dir::Etc::SourceList="$dir/sources.list"
		-o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$dir/lists"
		-o Dir::Cache="$dir/cache"
		-o Debug::NoLocking=1)
	apt-get "${APT_OPTS[@]}" update >&2
}

rustc_version() { rustc --version | awk '{print $2}'; }

# Kernel flavors: "test" is scripts/kernel.config as it stands (debug
# options on, for the VM suite); "prod" is the same fragment with the debug
# options below turned off, for scripts/bench.sh's cost figures.
PROD_OFF_OPTIONS=(CONFIG_DEBUG_ATOMIC_SLEEP CONFIG_PROVE_LOCKING CONFIG_KFENCE
	CONFIG_DEBUG_LIST CONFIG_RUST_OVERFLOW_CHECKS)

# kernel_fragment [FLAVOR]: the config fragment a flavor is built from.
kernel_fragment() {
	local fragment="$MSRGUARD_ROOT/scripts/kernel.config" o re
	case "${1:-test}" in
	test) cat "$fragment" ;;
	prod)
		# Drop every line naming an option, then state it off, so the
		# build's check fails if one of them comes back.
		re=$(printf '%s|' "${PROD_OFF_OPTIONS[@]}")
		grep -Ev "^(# )?(${re%|})[= ]" "$fragment"
		printf '\n# Production flavor: debug options off.\n'
		for o in "${PROD_OFF_OPTIONS[@]}"; do
			echo "# $o is not set"
		done
		;;
	*) die "unknown kernel flavor ${1} (test or prod)" ;;
	esac
}

# Tree directory names start with a per-flavor prefix, so each flavor's
# old-tree cleanup only sees its own trees.
kernel_prefix() {
	case "${1:-test}" in
	test) echo "linux-" ;;
	*) echo "$1-linux-" ;;
	esac
}

# A kernel tree's cache key: kernel package version, the flavor's config
# fragment, rustc and bindgen versions (and the flavor's name, except for
# "test", whose key predates flavors and must not change).
kernel_key() {
	local flavor="${1:-test}" h
	h=$({
		echo "$KERNEL_PKG_VERSION"
		kernel_fragment "$flavor"
		rustc_version
		echo "$BINDGEN_VERSION"
		[ "$flavor" = test ] || echo "$flavor"
	} | sha256sum | cut -c1-16)
	echo "$(kernel_prefix "$flavor")${KERNEL_PKG_VERSION//[~+]/_}-$h"
}

# Directory of the kernel tree for the current key of a flavor (default:
# test), built or not: where scripts/build-kernel.sh builds it.
kernel_dir() { echo "$MSRGUARD_CACHE/kernel/$(kernel_key "${1:-test}")"; }

# kernel_tree [FLAVOR]: the built kernel tree the module and the tests are
# built against, or nothing (with a message on stderr) if it is not built.
# Every script gets KDIR from here, the Makefiles through
# scripts/kernel-dir.sh.
kernel_tree() {
	local kdir
	kdir="$(kernel_dir "${1:-test}")"
	if [ -f "$kdir/.msrguard-built" ]; then
		echo "$kdir"
	else
		echo "msrguard: no built kernel at $kdir" >&2
	fi
}

# need_kernel_tree [FLAVOR]: the same, or exits: no built kernel.
need_kernel_tree() {
	local kdir
	kdir="$(kernel_tree "$@")"
	[ -n "$kdir" ] || die "no built ${1:-test} kernel: run scripts/setup.sh first"
	echo "$kdir"
}

# Module variants (default policy, test policy, clippy, ...): each built by
# kbuild into an output directory of its own (make MO=), so one build never
# overwrites another's msrguard.ko or policy table. build/ is in the clone
# (per work tree, git-ignored).
module_dir() { echo "$MSRGUARD_ROOT/build/$1"; }
module_ko() { echo "$(module_dir "$1")/msrguard.ko"; }

# build_testpolicy [MAKE-ARGS...]: the suite's test build (variant
# testpolicy): the test policy, with the shipped profiles and the suite's
# own (selftests/test-profile.toml, given by cgroup) over it.
build_testpolicy() {
	build_module testpolicy POLICY=selftests/test-policy.toml \
		PROFILES="$MSRGUARD_ROOT/policy/profiles/hardened.toml $MSRGUARD_ROOT/selftests/test-profile.toml" "$@"
}

# build_module VARIANT [MAKE-ARGS...]: builds the variant (e.g. POLICY=FILE,
# KDIR=DIR, CLIPPY=1) into module_dir VARIANT; output on stdout.
build_module() {
	local variant="$1"
	shift
	# An in-place build (make without MO=) in the source directory would be
	# found instead of the variant's own objects and generated headers
	# (rust/msrguard_abi.h). Its outputs sit in the top directory, rust/
	# and the module's directories only; `make clean` would also delete
	# every variant under build/ (kbuild's clean searches the whole tree).
	local stale
	stale=$(find "$MSRGUARD_ROOT" "$MSRGUARD_ROOT/rust" "$MSRGUARD_ROOT/rust/module" \
		"$MSRGUARD_ROOT/rust/module/kvm" -maxdepth 1 -type f \( \
		-name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' -o \
		-name '.*.cmd' -o -name '*.a' -o -name modules.order -o -name Module.symvers -o \
		-name 'policy_table.rs*' -o -name 'msrguard_abi.h*' -o -name 'msrguard_boundary.h*' \))
	if [ -n "$stale" ]; then
		msg "removing the in-place module build: variants are built with MO="
		xargs rm -f <<<"$stale"
	fi
	make -C "$MSRGUARD_ROOT" MO="$(module_dir "$variant")" "$@"
}

# The one check of a guest's kernel log, for both VM backends (vm-run.sh,
# bochs-run.sh): any of these lines means a kernel bug, even if the command
# passed; the whole log counts, boot included. kernel_log_bugs PREFIX FILE
# prints the lines around the first ones, each led by PREFIX, and succeeds
# when it found one.
KERNEL_BUG_RE='BUG:|WARNING:|possible circular locking|possible recursive locking|inconsistent lock state|KFENCE:|Oops|Call Trace'
kernel_log_bugs() {
	grep -Eq "$KERNEL_BUG_RE" "$2" || return 1
	echo "$1: the guest kernel logged a bug:" >&2
	# head stops reading a long log early; grep's SIGPIPE is not an answer.
	{ grep -En -B5 -A40 "$KERNEL_BUG_RE" "$2" | head -n 150 >&2; } || true
	return 0
}
