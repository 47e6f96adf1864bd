#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boots the cached kernel with virtme-ng (TCG, AMD CPU model with SVM, so
# KVM works inside), runs a command as root in the host's filesystem, and
# brings its output and exit status back.
#
#   scripts/vm-run.sh [--timeout SECONDS] [--append KERNEL_ARGS]
#                     [--qemu-opts QEMU_OPTIONS] [--kdir KERNEL_TREE]
#                     [--rwdir DIR]... [--name NAME] -- CMD...
#
# --qemu-opts adds options to QEMU's (after "-cpu max"); --kdir boots another
# built tree than the test kernel (lib.sh: kernel_tree). The host's
# filesystem is read-only in the guest, except each --rwdir DIR (written
# through to the host) and /etc, /usr and /var (overlays: what the guest
# writes there is discarded).
#
# Exit status: the command's; 124 on timeout; 125 when the VM died before
# reporting a status or hung at boot twice (a boot that does not reach the
# command within MSRGUARD_VM_BOOT_TIMEOUT seconds, default 300, is retried
# once); 126 when the guest kernel logged a bug (lib.sh: kernel_log_bugs),
# which is printed. The guest's kernel log is kept in
# LOG_DIR/vm-dmesg-NAME.log, its console in LOG_DIR/vm-console-NAME.log
# (NAME: --name, or the command's first word). scripts/bochs-run.sh is the same
# contract on Bochs (Intel VMX).
#
# Evidence of a VM that dies without a word: the guest's kernel log is
# streamed to the host while the command runs (what reached the log before
# the end survives even if the console lost it), and QEMU logs guest
# errors and CPU resets (a triple fault shows as a reset with the CPU's
# state; every boot and power-off also logs some). Both are kept in
# LOG_DIR and their tails printed.
#
# QEMU runs the vCPUs in one TCG thread: multi-threaded TCG (QEMU 7.2, the
# default for x86 on x86) executes stale code after the kernel patches its
# text with int3 (text_poke_bp: a tracepoint's static call or jump label),
# an "Oops: int3" within a minute of toggling tracepoints under load, with
# or without msrguard (scripts/test-vm-runner.sh checks it).
# MSRGUARD_VM_TCG_THREAD=multi restores QEMU's default to reproduce it.

. "$(dirname "$0")/lib.sh"

timeout=900
append=""
qemu_opts=""
KDIR=""
vng_dirs=()
name=""
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout="$2"; shift 2 ;;
	--append) append="$append $2"; shift 2 ;;
	--qemu-opts) qemu_opts="$qemu_opts $2"; shift 2 ;;
	--kdir) KDIR="$2"; shift 2 ;;
	--rwdir) vng_dirs+=(--rwdir "$2"); shift 2 ;;
	--name) name="$2"; shift 2 ;;
	--) shift; break ;;
	*) die "vm-run.sh: unknown option $1 (usage: vm-run.sh [--timeout S] [--append ARGS] [--qemu-opts OPTS] [--kdir DIR] [--rwdir DIR] [--name NAME] -- CMD...)" ;;
	esac
done
[ $# -gt 0 ] || die "vm-run.sh: no command given"

if [ -z "$KDIR" ]; then
	KDIR="$(need_kernel_tree)"
fi
[ -f "$KDIR/arch/x86/boot/bzImage" ] || die "$KDIR: no arch/x86/boot/bzImage (not a built kernel tree)"
[ -x "$VENV/bin/vng" ] || die "virtme-ng missing ($VENV): run scripts/setup.sh first"
export PATH="$VENV/bin:$PATH"

out=$(mktemp -d /tmp/msrguard-vm.XXXXXX)
trap 'rm -rf "$out"' EXIT
# One argument is a shell command line; several are a command and its args.
if [ $# -eq 1 ]; then
	printf '%s\n' "$1" >"$out/argv"
else
	printf '%q ' "$@" >"$out/argv"
fi

# Inside the guest: run the command with its output in a file the host can
# read (vng drops the console output of a non-interactive run), then save
# the status and the kernel log.
cat >"$out/guest.sh" <<EOF
cd "$PWD"
dmesg -w >"$out/dmesg.live" 2>&1 &
bash "$out/argv" >"$out/output" 2>&1 </dev/null
echo \$? >"$out/status"
dmesg >"$out/dmesg"
EOF

# A boot that never reaches the command is retried once: under TCG on a
# loaded machine the test kernel has been seen to stop for good early in
# boot (last console line "vgaarb: loaded"), before anything of ours runs.
# The command's own run is never retried. $out/output appears when the
# command starts.
boot_timeout=${MSRGUARD_VM_BOOT_TIMEOUT:-300}
start=$SECONDS
rc=0
for attempt in 1 2; do
	rm -f "$out/output" "$out/status" "$out/dmesg" "$out/dmesg.live" "$out/qemu.log"
	# stdin from /dev/null: CI has none, and the runner must behave the
	# same interactively. KBUILD_OUTPUT (not --run) makes vng boot the
	# tree with its modules, so kvm.ko and kvm-amd.ko load inside.
	# timeout(1) leads its own process group: killing that group ends vng
	# and its QEMU.
	KBUILD_OUTPUT="$KDIR" timeout --kill-after=30 "$timeout" "$VENV/bin/vng" \
		--disable-kvm \
		--qemu-opts="-accel tcg,thread=${MSRGUARD_VM_TCG_THREAD:-single} -cpu max -d guest_errors,cpu_reset -D $out/qemu.log$qemu_opts" \
		--cpus 2 \
		--memory 3G \
		--user root \
		--rwdir "$out" ${vng_dirs[@]+"${vng_dirs[@]}"} \
		--append "panic_on_warn=0 oops=panic panic=-1 $append" \
		--verbose \
		--exec "bash $out/guest.sh" \
		</dev/null >"$out/console" 2>&1 &
	vm=$!
	# Stopped from outside (scripts/test.sh ending before its background
	# lane): the VM goes too, not at its timeout.
	trap 'kill -KILL -- "-$vm" 2>/dev/null; rm -rf "$out"; exit 143' TERM INT
	boot_start=$SECONDS
	while kill -0 "$vm" 2>/dev/null && [ ! -e "$out/output" ] &&
		[ $((SECONDS - boot_start)) -lt "$boot_timeout" ]; do
		sleep 1
	done
	if [ -e "$out/output" ] || ! kill -0 "$vm" 2>/dev/null; then
		wait "$vm" || rc=$?
		break
	fi
	echo "vm-run: the VM did not start the command within ${boot_timeout}s (attempt $attempt: a hung boot); last console lines:" >&2
	tail -n 10 "$out/console" >&2
	kill -KILL -- "-$vm" 2>/dev/null || true
	wait "$vm" 2>/dev/null || true
	rc=125
done

cat "$out/output" 2>/dev/null || true
elapsed=$((SECONDS - start))
# The whole console stays for a post-mortem: the tail printed below may not
# reach the failure.
[ -n "$name" ] || name=$(basename "${1%% *}")
console_log="$LOG_DIR/vm-console-$name.log"
cp "$out/console" "$console_log" 2>/dev/null || true

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "vm-run: TIMEOUT after ${timeout}s; last console lines (all: $console_log):" >&2
	tail -n 60 "$out/console" >&2
	exit 124
fi
if [ ! -e "$out/output" ]; then
	echo "vm-run: the VM hung at boot twice, before the command started (all: $console_log)" >&2
	exit 125
fi
if [ ! -f "$out/status" ]; then
	cp "$out/dmesg.live" "$LOG_DIR/vm-dmesg-$name.log" 2>/dev/null || true
	cp "$out/qemu.log" "$LOG_DIR/vm-qemu-$name.log" 2>/dev/null || true
	echo "vm-run: the VM ended (vng exit $rc) without reporting a status: kernel crash? last console lines:" >&2
	tail -n 80 "$out/console" >&2
	echo "vm-run: last lines of the guest's kernel log as streamed (all: $LOG_DIR/vm-dmesg-$name.log):" >&2
	tail -n 40 "$out/dmesg.live" >&2 2>/dev/null || echo "(none)" >&2
	echo "vm-run: QEMU's guest errors and CPU resets (all: $LOG_DIR/vm-qemu-$name.log):" >&2
	grep -E -A3 'Triple fault|CPU Reset|invalid|unimplemented' "$out/qemu.log" 2>/dev/null | tail -n 40 >&2 || echo "(none)" >&2
	exit 125
fi
status=$(cat "$out/status")
# The guest's kernel log is kept whatever the outcome: the backends'
# common "status and kernel log out" (bochs-run.sh keeps its own likewise).
if [ ! -f "$out/dmesg" ]; then
	echo "vm-run: the VM ended after the command's status, before its kernel log (all: $console_log)" >&2
	exit 125
fi
cp "$out/dmesg" "$LOG_DIR/vm-dmesg-$name.log"
if kernel_log_bugs vm-run "$out/dmesg"; then
	exit 126
fi
echo "vm-run: command exited $status, VM took ${elapsed}s" >&2
exit "$status"
