#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The deterministic benchmark (not part of scripts/test.sh): guest-clock
# nanoseconds per guest MSR exit, without and with msrguard, for each kind of
# access (selftests/kvm/msrguard_bench), in a VM booted with QEMU's instruction
# counting (-icount shift=0,sleep=off: one guest nanosecond is one
# instruction, so the figures repeat from run to run), on the test kernel
# (debug options on) and on the production flavor (debug options off, built
# here on first use, about 10 minutes); then the host policy lookup
# benchmark.
#
#   scripts/bench.sh [--kernel test|prod|both] [--runs N] [--exits N]
#
# Defaults: both kernels, one run each, 3000 exits per round. Each table
# comes from one boot: its ratios compare figures of the same boot.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

kernels="test prod"
runs=1
exits=3000
usage="usage: bench.sh [--kernel test|prod|both] [--runs N] [--exits N]"
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel)
		case "$2" in
		test | prod) kernels="$2" ;;
		both) kernels="test prod" ;;
		*) die "$usage" ;;
		esac
		shift 2
		;;
	--runs) runs="$2"; shift 2 ;;
	--exits) exits="$2"; shift 2 ;;
	*) die "$usage" ;;
	esac
done

# Tools and the test kernel; the production kernel only when asked for.
scripts/setup.sh >/dev/null
for flavor in $kernels; do
	[ "$flavor" = test ] || scripts/build-kernel.sh --flavor "$flavor" >/dev/null
done

make -s -C selftests >/dev/null && make -s -C selftests/kvm >"$LOG_DIR/libkvm-build.log" 2>&1 ||
	die "benchmark build failed (log: $LOG_DIR/libkvm-build.log)"
# The module is built once per kernel tree, each a variant of its own
# (lib.sh: build_module, kbuild's MO=).
for flavor in $kernels; do
	kdir=$(need_kernel_tree "$flavor")
	build_module "bench-$flavor" -s KDIR="$kdir" >/dev/null || die "module build against the $flavor kernel failed"
done

for flavor in $kernels; do
	kdir=$(need_kernel_tree "$flavor")
	for run in $(seq "$runs"); do
		echo "# bench: $flavor kernel ($(basename "$kdir")), run $run of $runs"
		scripts/vm-run.sh --kdir "$kdir" --qemu-opts "-icount shift=0,sleep=off" --timeout 900 -- \
			selftests/kvm/msrguard_bench "$(module_ko "bench-$flavor")" "$exits" ||
			die "VM benchmark on the $flavor kernel failed"
	done
done

msg "host policy lookup benchmark"
cargo run --quiet --locked --release -p msrguard-policy --bin msrguard-lookup-bench -- policy/default.toml
