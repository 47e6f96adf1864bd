#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Checks packaging/: the systemd unit with `systemd-analyze verify` (in a
# scratch root holding the unit, the tool at the unit's ExecStart path and
# the host's system units), and that the modprobe.d/modules-load.d files
# name the module and parameters msrguard.ko really has; `make install`
# into a scratch root.
# Usage: scripts/check-packaging.sh [TOOL [MODULE.ko]]

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

tool="${1:-$TOOL}"
ko="${2:-$(module_ko default)}"
unit=packaging/systemd/msrguard-events.service
fail=0

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP systemd-analyze verify: systemd-analyze not installed (Debian package systemd)"
elif [ ! -d /usr/lib/systemd/system ]; then
	echo "SKIP systemd-analyze verify: no /usr/lib/systemd/system to resolve the unit's dependencies against"
else
	[ -x "$tool" ] || die "no msrguard tool at $tool (cargo build --release -p msrguard)"
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	exec_path=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
	mkdir -p "$root$(dirname "$exec_path")" "$root/etc/systemd/system" "$root/usr/lib/systemd"
	cp "$tool" "$root$exec_path"
	cp "$unit" "$root/etc/systemd/system/"
	cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
	# verify exits 0 on warnings (a bad Restart= is only "ignoring"): any
	# output is a failure.
	if out=$(systemd-analyze --root="$root" verify "$(basename "$unit")" 2>&1) && [ -z "$out" ]; then
		echo "ok systemd-analyze verify $unit"
	else
		printf '%s\n' "$out"
		echo "FAIL systemd-analyze verify $unit"
		fail=1
	fi
fi

if [ ! -f "$ko" ]; then
	echo "SKIP modprobe.d/modules-load.d: no $ko to take the module's name and parameters from (make)"
else
	name=$(modinfo -F name "$ko")
	params=$(modinfo -F parm "$ko" | cut -d: -f1)
	loads=$(grep -v '^[[:space:]]*\(#\|$\)' packaging/modules-load.d/msrguard.conf)
	if [ "$loads" = "$name" ]; then
		echo "ok modules-load.d loads $name"
	else
		echo "FAIL modules-load.d/msrguard.conf loads '$loads', the module is '$name'"
		fail=1
	fi
	# Every option line, commented out or not, names the module and one of
	# its parameters.
	n=0
	while read -r mod kv; do
		for p in $kv; do
			n=$((n + 1))
			if [ "$mod" != "$name" ] || ! grep -qx "${p%%=*}" <<<"$params"; then
				echo "FAIL modprobe.d/msrguard.conf: options $mod $p: $name has parameters: $(echo $params)"
				fail=1
			fi
		done
	done < <(sed -n 's/^#\?options \([^ ]*\) \(.*\)/\1 \2/p' packaging/modprobe.d/msrguard.conf)
	[ "$n" -gt 0 ] || { echo "FAIL modprobe.d/msrguard.conf has no options line"; fail=1; }
	[ "$fail" -ne 0 ] || echo "ok modprobe.d: $n options, each a parameter of $name"
fi
# make modules_install / make install into a scratch root: each file where
# a user expects it, the module known to depmod, the tool runnable.
if [ ! -f "$ko" ]; then
	echo "SKIP make install: no $ko (scripts/test.sh builds it)"
else
	inst=$(mktemp -d)
	release=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
	# The default variant's build (make install MO=), not a new in-place one.
	if build_module default -s install DESTDIR="$inst" INSTALL_MOD_PATH="$inst" >"$LOG_DIR/make-install.log" 2>&1; then
		missing=""
		for f in "lib/modules/$release/updates/msrguard.ko" usr/bin/msrguard \
			usr/lib/systemd/system/msrguard-events.service \
			etc/modprobe.d/msrguard.conf etc/modules-load.d/msrguard.conf; do
			[ -e "$inst/$f" ] || missing="$missing $f"
		done
		if [ -n "$missing" ]; then
			echo "FAIL make install: missing$missing"
			fail=1
		elif ! grep -q "^updates/msrguard.ko:" "$inst/lib/modules/$release/modules.dep"; then
			echo "FAIL make modules_install: depmod does not list updates/msrguard.ko"
			fail=1
		elif ! "$inst/usr/bin/msrguard" --version >/dev/null; then
			echo "FAIL make install: the installed tool does not run"
			fail=1
		else
			echo "ok make install: module in lib/modules/$release/updates (depmod), tool, unit, modprobe.d, modules-load.d"
		fi
	else
		tail -n 20 "$LOG_DIR/make-install.log"
		echo "FAIL make install (log: $LOG_DIR/make-install.log)"
		fail=1
	fi
	rm -rf "$inst"
fi
exit "$fail"
