#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Lints: the module with the kernel's clippy, rustfmt and checkpatch, the host
# crates with cargo clippy and cargo fmt. Fails on any warning.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

KDIR="$(need_kernel_tree)"
fail=0

# A variant of its own (lib.sh: build_module), rebuilt every time.
touch rust/module/msrguard_main.rs
# Rust's warnings start the line; the C compiler's follow the file name.
if build_module clippy CLIPPY=1 >"$LOG_DIR/lint-clippy-module.log" 2>&1 &&
	! grep -qE '^warning|: warning:' "$LOG_DIR/lint-clippy-module.log"; then
	echo "ok: module clippy (make CLIPPY=1), no C compiler warning"
else
	grep -A8 -E '^(warning|error)|: (warning|error):' "$LOG_DIR/lint-clippy-module.log" | head -n 60
	echo "FAIL: module clippy"
	fail=1
fi
sources=$(ls rust/core/*.rs rust/module/*.rs)
if rustfmt --edition 2021 --config-path "$KDIR/.rustfmt.toml" --check $sources; then
	echo "ok: module rustfmt (kernel .rustfmt.toml)"
else
	echo "FAIL: module rustfmt"
	fail=1
fi
# The functions C and Rust call each other by are declared once
# (rust/core/boundary_calls.rs): no extern block in the module's Rust, no
# hand-written prototype of a boundary function in its C.
if grep -n 'extern "C" {' rust/module/*.rs ||
	grep -nE '^[a-z].*\bmsrguard_(rust|kvm|hooks)_[a-z_]+\(.*\);$|^(int|unsigned long) msrguard_(verify_hooks|function_address)\(.*\);$' \
		rust/module/kvm/*.c rust/module/kvm/*.h; then
	echo "FAIL: a boundary function declared by hand (declare it in rust/core/boundary_calls.rs)"
	fail=1
else
	echo "ok: boundary functions declared only in rust/core/boundary_calls.rs"
fi
if "$KDIR/scripts/checkpatch.pl" --no-tree --quiet -f rust/module/kvm/*.c rust/module/kvm/*.h; then
	echo "ok: checkpatch (C files)"
else
	echo "FAIL: checkpatch (C files)"
	fail=1
fi
if cargo clippy --workspace --all-targets --locked -q -- -D warnings; then
	echo "ok: cargo clippy"
else
	echo "FAIL: cargo clippy"
	fail=1
fi
if cargo fmt --all --check; then
	echo "ok: cargo fmt"
else
	echo "FAIL: cargo fmt"
	fail=1
fi
exit $fail
