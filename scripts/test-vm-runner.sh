#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The VM runner's own test: a guest that dies without a word (a restart,
# no panic, nothing on the console) must end as 125 with the evidence kept:
# the guest's kernel log as streamed until the restart, and QEMU's log of
# guest errors and CPU resets (a restart and a power-off both log resets,
# so only its keeping is checked). And the VM must survive the kernel
# patching its own text under load: with QEMU's multi-threaded TCG, toggling
# the scheduler's tracepoints while both vCPUs switch tasks gave an
# "Oops: int3" within a minute in 6 of 6 boots (no msrguard involved); the
# suite's VMs flaked the same way. Prints TAP; exit status 0 or 1.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

marker="msrguard-vm-runner-marker-$$"
# Not /tmp: the VM has a /tmp of its own; the host's files are visible.
guest="$LOG_DIR/vm-silent-death.sh"
# The marker reaches the kernel log, then the machine restarts at once:
# reboot(2) with LINUX_REBOOT_CMD_RESTART, no sync, no shutdown, as a guest
# kernel that resets the CPU would.
cat >"$guest" <<EOS
echo "$marker" >/dev/kmsg
sleep 2
python3 -c 'import ctypes; ctypes.CDLL(None).syscall(169, 0xfee1dead, 672274793, 0x01234567)'
sleep 60
EOS
# vm-run.sh names its logs after the command (here: bash).
name=bash
rm -f "$LOG_DIR/vm-dmesg-$name.log" "$LOG_DIR/vm-qemu-$name.log"

echo "TAP version 13"
echo "1..6"
pass=0 fail=0
check() {
	if eval "$2"; then
		pass=$((pass + 1)); echo "ok $((pass + fail)) $1"
	else
		fail=$((fail + 1)); echo "not ok $((pass + fail)) $1"
	fi
}
rc=0
scripts/vm-run.sh --timeout 300 -- bash "$guest" >"$LOG_DIR/vm-runner-run.log" 2>&1 || rc=$?
check "a silent death ends as 125 (got $rc)" '[ "$rc" -eq 125 ]'
check "the guest's kernel log up to the death is kept" \
	'grep -q "$marker" "$LOG_DIR/vm-dmesg-$name.log" 2>/dev/null'
check "QEMU's log of guest errors and CPU resets is kept" \
	'grep -q "CPU Reset (CPU 0)" "$LOG_DIR/vm-qemu-$name.log" 2>/dev/null'
[ "$fail" -eq 0 ] || sed 's/^/# /' "$LOG_DIR/vm-runner-run.log"

# The kernel-log check both runners share (lib.sh: kernel_log_bugs) finds a
# bug in a log of many splats too: its printing stops after 150 lines, and
# that early stop must not read as "no bug" (it did, with pipefail).
log="$LOG_DIR/vm-runner-splats.log"
for i in $(seq 300); do
	echo "WARNING: CPU: 0 PID: $i at arch/x86/kvm/x86.c:1 kvm_set_msr_common+0x1a/0x40 [kvm]"
	seq 20 | sed 's|.*| kvm_arch_vcpu_ioctl_run+0x1a/0x40 [kvm] (frame &)|'
done >"$log"
printf 'Linux version 7.3.4\nkvm_amd: Nested Virtualization enabled\n' >"$LOG_DIR/vm-runner-clean.log"
check "the kernel-log check finds a bug in a log of 300 splats" \
	'kernel_log_bugs vm-runner-test "$log" 2>/dev/null'
check "the kernel-log check finds none in a clean log" \
	'! kernel_log_bugs vm-runner-test "$LOG_DIR/vm-runner-clean.log" 2>/dev/null'

# Each toggle makes text_poke_bp patch every sched tracepoint's call site
# (static calls and jump labels, via int3 and IPIs) while the pipes keep
# both vCPUs in and out of __schedule and ttwu.
patcher="$LOG_DIR/vm-text-patching.sh"
cat >"$patcher" <<'EOS'
#!/bin/bash
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
for c in 0 1; do
	( while :; do taskset -c $c dd if=/dev/zero bs=1 count=20000 2>/dev/null |
		taskset -c $((1 - c)) cat >/dev/null; done ) &
done
end=$((SECONDS + 60)) toggles=0
while [ $SECONDS -lt $end ]; do
	echo 1 >$T/events/sched/enable
	echo 0 >$T/events/sched/enable
	toggles=$((toggles + 1))
done
kill $(jobs -p)
echo "toggles: $toggles"
EOS
chmod +x "$patcher"
rc=0
# Run by its path: vm-run.sh names the logs it keeps after the command.
scripts/vm-run.sh --timeout 300 -- "$patcher" >"$LOG_DIR/vm-runner-patching.log" 2>&1 || rc=$?
toggles=$(sed -n 's/^toggles: //p' "$LOG_DIR/vm-runner-patching.log")
check "kernel text patched under load for 60 s (${toggles:-no} tracepoint toggles): no oops (got $rc)" \
	'[ "$rc" -eq 0 ] && [ "${toggles:-0}" -gt 0 ]'
if [ "$rc" -ne 0 ]; then
	grep -E 'Oops|BUG:|RIP: 0010|Kernel panic' "$LOG_DIR/vm-runner-patching.log" |
		head -n 8 | sed 's/^/# /' || true
fi
[ "$fail" -eq 0 ]
