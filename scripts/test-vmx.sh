#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs msrguard's VMX tests on Intel VMX: selftests/kvm/realmode_vmx_test
# (the guard tables) and then selftests/kvm/nested_vmx_test (an L1 hypervisor
# built with KVM's selftest library runs an L2, kvm_intel nested=1). Bochs
# emulates a VMX CPU with EPT (QEMU's TCG has no VMX), boots the cached test
# kernel from an ISO whose initramfs holds busybox, kvm, kvm_intel, msrguard
# and the statically linked tests, and brings the TAP output, exit statuses
# and kernel log back through the serial port (a file). It prints both
# programs' TAP.
#
#   scripts/test-vmx.sh [--timeout SECONDS] [MODULE.ko TESTPOLICY_MODULE.ko]
#
# Without the two modules it builds them (default and test policy).
# Exit status: 0 when both programs pass, else 1 (a skip fails too: they
# must run here); 4 (KSFT_SKIP) with a "test-vmx: SKIP: reason" line when Bochs
# is not installed (scripts/setup.sh installs it) or cannot start; 124 on
# timeout; 125 when the VM died before reporting a status; 126 when the
# guest kernel logged a bug (BUG, WARNING, lockdep, KFENCE, Oops, Call
# Trace), which is printed. One boot WARNING Bochs' CPUID causes is
# excluded (see the bug check below).

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

timeout=600
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout="$2"; shift 2 ;;
	--) shift; break ;;
	-*) die "test-vmx.sh: unknown option $1 (usage: test-vmx.sh [--timeout S] [MODULE.ko TESTPOLICY_MODULE.ko])" ;;
	*) break ;;
	esac
done
[ $# -eq 0 ] || [ $# -eq 2 ] || die "test-vmx.sh: give both modules or none"

# What scripts/setup.sh installs for this run (Bochs, the ISO tools).
packages=(bochs bochs-term bochsbios vgabios isolinux syslinux-common xorriso busybox-static cpio kmod libc6-dev)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Bochs missing or broken is a skip with its reason, not a pass; printed
# on stdout, which scripts/test.sh keeps in its log.
skip() {
	echo "test-vmx: SKIP: $*"
	exit 4
}
[ ${#missing[@]} -eq 0 ] || skip "not installed: ${missing[*]} (scripts/setup.sh installs them)"
command -v bochs >/dev/null || skip "no bochs command although the bochs package is installed"

KDIR="$(need_kernel_tree)"
release="$(cat "$KDIR/include/config/kernel.release")"

out=$(mktemp -d /tmp/msrguard-vmx.XXXXXX)
trap 'rm -rf "$out"' EXIT

if [ $# -eq 2 ]; then
	module="$1" testpolicy="$2"
else
	build_module testpolicy -s POLICY=selftests/test-policy.toml >/dev/null || die "module build (test policy) failed"
	build_module default -s >/dev/null || die "module build failed"
	module="$(module_ko default)" testpolicy="$(module_ko testpolicy)"
fi
# LIBKVM (from the kernel tree) and the libkvm programs; realmode_vmx_test
# and nested_vmx_test are linked statically for this initramfs
# (selftests/kvm/libkvm.mk).
make -s -C selftests/kvm >"$out/libkvm-build.log" 2>&1 ||
	{ tail -n 30 "$out/libkvm-build.log" >&2; die "selftests/kvm build failed"; }

# The initramfs: busybox, the KVM modules where modprobe finds them, the
# msrguard modules and the test. Small enough to make each run.
root="$out/root"
moddir="$root/lib/modules/$release/kernel"
mkdir -p "$root"/{bin,dev,proc,sys,tmp} "$moddir"
# init's standard streams: the console (ttyS0), opened before devtmpfs is.
mknod "$root/dev/console" c 5 1
cp /bin/busybox "$root/bin/busybox"
for applet in sh mount modprobe dmesg cat poweroff grep tail sleep sed wc; do
	ln -s busybox "$root/bin/$applet"
done
for ko in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-intel.ko; do
	install -D -m 0644 "$KDIR/$ko" "$moddir/$ko"
done
# (It warns that the kernel's module lists are missing: only these three.)
depmod -b "$root" "$release" 2>/dev/null
cp "$module" "$root/msrguard.ko"
cp "$testpolicy" "$root/msrguard-testpolicy.ko"
cp selftests/kvm/realmode_vmx_test selftests/kvm/nested_vmx_test "$root/"

# The results leave through the serial port, between markers, after the
# test: console loglevel 1 from then on keeps kernel lines out of them (the
# kernel log comes whole from dmesg), and the guest gives the UART time to
# send every byte before it powers off, which would drop the rest.
cat >"$root/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
echo "msrguard-vmx: test starts" >/dev/kmsg
# The programs load kvm_intel (nested=1 is its default) and the msrguard
# builds named here.
export MSRGUARD_KO=/msrguard.ko MSRGUARD_TESTPOLICY_KO=/msrguard-testpolicy.ko
# run NAME COMMAND...: its output and exit status, kept for the report.
run() {
	name=$1
	shift
	"$@" >/tmp/$name.out 2>&1 </dev/null
	echo $? >/tmp/$name.status
}
run realmode_vmx_test /realmode_vmx_test
run nested_vmx_test /nested_vmx_test
dmesg -n 1
# Let the console finish the kernel line it may be printing.
sleep 1
{
	echo
	for name in realmode_vmx_test nested_vmx_test; do
		echo "@@MSRGUARD-VMX-OUTPUT $name@@"
		cat /tmp/$name.out
		echo "@@MSRGUARD-VMX-STATUS $name $(cat /tmp/$name.status)@@"
	done
	echo "@@MSRGUARD-VMX-DMESG@@"
	dmesg
	echo "@@MSRGUARD-VMX-END@@"
} >/tmp/results
# The tty sends CR LF for each LF; at 115200 baud about 11 bytes a
# millisecond: wait twice that, and 3 s more.
bytes=$(($(wc -c </tmp/results) + $(wc -l </tmp/results)))
cat /tmp/results
sleep $((bytes / 5000 + 3))
poweroff -f
EOF
chmod +x "$root/init"
mkdir -p "$out/iso/isolinux"
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out/iso/initrd.gz"
cp "$KDIR/arch/x86/boot/bzImage" "$out/iso/bzImage"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$out/iso/isolinux/"
cat >"$out/iso/isolinux/isolinux.cfg" <<EOF
default msrguard
prompt 0
label msrguard
  kernel /bzImage
  append initrd=/initrd.gz console=ttyS0 loglevel=4 panic=0 oops=panic kvm.force_emulation_prefix=1
EOF
xorriso -as mkisofs -quiet -o "$out/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
	-no-emul-boot -boot-load-size 4 -boot-info-table "$out/iso" 2>"$out/xorriso.log" ||
	{ cat "$out/xorriso.log" >&2; die "cannot make the boot ISO"; }

# broadwell_ult: VMX with EPT, VPID, unrestricted guest (later models need
# noxsave with this kernel). Debian's Bochs has no headless display and
# starts in its debugger: an RFB display waiting for nobody, and the
# debugger command "c" from a file. No time sync: run as fast as it can.
# No sound: its mixer thread aborts (buffer overflow) on a host without a
# sound card.
cat >"$out/bochsrc" <<EOF
megs: 512
cpu: model=broadwell_ult, count=1, ips=200000000
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path=$out/boot.iso, status=inserted
boot: cdrom
clock: sync=none, time0=local
display_library: rfb, options="timeout=0"
com1: enabled=1, mode=file, dev=$out/serial
mouse: enabled=0
speaker: enabled=0
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
log: $out/bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
EOF
echo c >"$out/debugger.rc"
: >"$out/serial"

start=$SECONDS
# stdin from /dev/null: CI has none, and the debugger must see EOF, not wait.
(cd "$out" && exec bochs -q -f "$out/bochsrc" -rc "$out/debugger.rc") </dev/null >"$out/bochs.out" 2>&1 &
bochs_pid=$!
result=""
while kill -0 "$bochs_pid" 2>/dev/null; do
	if grep -q '@@MSRGUARD-VMX-END@@' "$out/serial"; then
		result=done
		break
	fi
	# panic=0: a panicked kernel waits forever; stop at once.
	if grep -q 'Kernel panic - not syncing' "$out/serial"; then
		result="kernel panic"
		break
	fi
	if [ $((SECONDS - start)) -ge "$timeout" ]; then
		result=timeout
		break
	fi
	sleep 1
done
# After the results the guest powers off and Bochs ends; otherwise stop it.
for _ in 1 2 3 4 5; do
	kill -0 "$bochs_pid" 2>/dev/null || break
	sleep 1
done
kill "$bochs_pid" 2>/dev/null || true
bochs_rc=0
wait "$bochs_pid" 2>/dev/null || bochs_rc=$?
elapsed=$((SECONDS - start))
if [ -z "$result" ]; then
	if grep -q '@@MSRGUARD-VMX-END@@' "$out/serial"; then result=done; else result="Bochs exited"; fi
fi
# Bochs gone before the guest kernel wrote a byte: Bochs could not run
# here (its own error says why), nothing of the kernel or msrguard ran.
if [ "$result" = "Bochs exited" ] && [ ! -s "$out/serial" ]; then
	skip "Bochs exited (status $bochs_rc) before the guest kernel started: $(grep -hE -i 'panic|error|cannot|fail' "$out/bochs.out" "$out/bochs.log" 2>/dev/null | tail -n 2 | tr '\n' ' ' || true)"
fi
# The guest's serial console ends lines with CR LF.
tr -d '\r' <"$out/serial" >"$out/console"

# What lies between two markers of the serial output.
between() { sed -n "/^$1/,/^$2/p" "$out/console" | sed '1d;$d'; }

programs=(realmode_vmx_test nested_vmx_test)
for name in "${programs[@]}"; do
	between "@@MSRGUARD-VMX-OUTPUT $name@@" "@@MSRGUARD-VMX-STATUS $name " | tee "$out/$name.tap"
done
if [ "$result" = timeout ]; then
	echo "test-vmx: TIMEOUT after ${timeout}s; last console lines:" >&2
	tail -n 60 "$out/console" >&2
	exit 124
fi
declare -A status=()
for name in "${programs[@]}"; do
	status[$name]=$(sed -n "s/^@@MSRGUARD-VMX-STATUS $name \([0-9]*\)@@\$/\1/p" "$out/console" | head -n 1)
done
no_status=
for name in "${programs[@]}"; do
	[ -n "${status[$name]}" ] || no_status+=" $name"
done
if [ "$result" != done ] || [ -n "$no_status" ]; then
	echo "test-vmx: the VM ended ($result) without reporting a status for:${no_status:- every program}; last console lines:" >&2
	tail -n 80 "$out/console" >&2
	echo "test-vmx: last Bochs lines:" >&2
	tail -n 20 "$out/bochs.out" "$out/bochs.log" >&2
	exit 125
fi

# Any of these in the guest's kernel log means a kernel bug, even if the
# test itself passed; the whole log counts, boot included. One splat is
# excluded, and only before the test starts: Bochs' CPUID for this
# one-CPU model sets HT while leaf 1's logical-processor count (EBX[23:16])
# is below leaf 4's core count, and the kernel's legacy topology parser
# (arch/x86/kernel/cpu/topology_common.c:parse_legacy) has a WARN_ON_ONCE
# for exactly that inconsistency. It concerns the emulated CPU's CPUID at
# boot, before KVM or msrguard is loaded; it is shown, not counted.
# Anything else, another WARNING included, fails.
bug_re='BUG:|WARNING:|possible circular locking|possible recursive locking|inconsistent lock state|KFENCE:|Oops|Call Trace'
between '@@MSRGUARD-VMX-DMESG@@' '@@MSRGUARD-VMX-END@@' >"$out/dmesg"
grep -q 'msrguard-vmx: test starts' "$out/dmesg" || die "test-vmx: the kernel log lacks the test's start line"
# The excluded splat: from its WARNING line to its "end trace" line (at
# most 80 lines; without an end line nothing is excluded).
awk -v excluded="$out/dmesg-excluded" '
	function flush() { for (i = 1; i <= n; i++) print buf[i]; n = 0 }
	/msrguard-vmx: test starts/ { started = 1 }
	!started && !done && !n && /WARNING: arch\/x86\/kernel\/cpu\/topology_common\.c:[0-9]+ at parse_legacy\+/ {
		buf[++n] = $0; next
	}
	n {
		buf[++n] = $0
		if ($0 ~ /---\[ end trace [0-9a-f]+ \]---/) {
			for (i = 1; i <= n; i++) print buf[i] >excluded
			n = 0; done = 1
		} else if (n >= 80) flush()
		next
	}
	{ print }
	END { flush() }
' "$out/dmesg" >"$out/dmesg-counted"
if grep -Eq "$bug_re" "$out/dmesg-counted"; then
	echo "test-vmx: the guest kernel logged a bug:" >&2
	grep -En -B5 -A40 "$bug_re" "$out/dmesg-counted" | head -n 150 >&2
	exit 126
fi
if [ -s "$out/dmesg-excluded" ]; then
	sed 's/^/test-vmx: excluded boot WARNING (Bochs CPUID topology): /' "$out/dmesg-excluded" | head -n 3 >&2
fi
# Each program's exit status, and no SKIP in its TAP: VMX must run here.
rc=0
for name in "${programs[@]}"; do
	skips=$(grep -c '^ok .*# SKIP' "$out/$name.tap" || true)
	if [ "${status[$name]}" != 0 ] || [ "$skips" -ne 0 ]; then
		echo "test-vmx: $name exited ${status[$name]} with $skips skipped: a failure (VMX must run here)" >&2
		rc=1
	fi
done
echo "test-vmx: $(for name in "${programs[@]}"; do printf '%s exited %s, ' "$name" "${status[$name]}"; done)Bochs took ${elapsed}s" >&2
exit "$rc"
