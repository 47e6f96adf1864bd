#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boots the cached test kernel in Bochs (an Intel CPU with VMX and EPT,
# which QEMU's TCG does not emulate, so kvm_intel runs inside), runs a
# command there and brings its output, exit status and kernel log back:
# the same contract as vm-run.sh, for the other backend.
#
#   scripts/bochs-run.sh [--timeout SECONDS] [--append KERNEL_ARGS]
#                        [--file PATH[=NAME]]... [--name NAME] -- CMD...
#
# The guest has no host filesystem: its initramfs holds busybox (every
# applet), kvm and kvm_intel where modprobe finds them, and each --file at
# /NAME (NAME defaults to the file's; programs statically linked: there is
# no C library). CMD runs in busybox sh
# from /, its output goes to stdout. The guest's kernel log is kept in
# LOG_DIR/vm-dmesg-bochs-NAME.log and its console in
# LOG_DIR/vm-console-bochs-NAME.log (NAME: --name, or the command's first
# word).
#
# Exit status: the command's; 4 (KSFT_SKIP) with a "bochs-run: SKIP: reason"
# line on stdout when Bochs is not installed (scripts/setup.sh installs it)
# or exits before the kernel starts; 124 on timeout; 125 when the VM died
# before reporting a status; 126 when the guest kernel logged a bug
# (lib.sh: kernel_log_bugs), which is printed. One boot WARNING Bochs'
# CPUID causes is excluded (see the check below).

. "$(dirname "$0")/lib.sh"

timeout=600
append=""
files=()
name=""
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout="$2"; shift 2 ;;
	--append) append="$append $2"; shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--name) name="$2"; shift 2 ;;
	--) shift; break ;;
	*) die "bochs-run.sh: unknown option $1 (usage: bochs-run.sh [--timeout S] [--append ARGS] [--file PATH[=NAME]]... [--name NAME] -- CMD...)" ;;
	esac
done
[ $# -gt 0 ] || die "bochs-run.sh: no command given"

skip() {
	echo "bochs-run: SKIP: $*"
	exit 4
}
packages=(bochs bochs-term bochsbios vgabios isolinux syslinux-common xorriso busybox-static cpio kmod)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || skip "not installed: ${missing[*]} (scripts/setup.sh installs them)"
command -v bochs >/dev/null || skip "no bochs command although the bochs package is installed"

KDIR="$(need_kernel_tree)"
release="$(cat "$KDIR/include/config/kernel.release")"
[ -n "$name" ] || name=$(basename "${1%% *}")

out=$(mktemp -d /tmp/msrguard-bochs.XXXXXX)
trap 'rm -rf "$out"' EXIT

# The initramfs: busybox, the KVM modules where modprobe finds them, the
# files, the command. Small enough to make each run.
root="$out/root"
moddir="$root/lib/modules/$release/kernel"
mkdir -p "$root"/{bin,dev,proc,run,sys,tmp} "$moddir"
# init's standard streams: the console (ttyS0), opened before devtmpfs is.
mknod "$root/dev/console" c 5 1
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
for ko in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-intel.ko; do
	install -D -m 0644 "$KDIR/$ko" "$moddir/$ko"
done
# (It warns that the kernel's module lists are missing: only these three.)
depmod -b "$root" "$release" 2>/dev/null
for f in ${files[@]+"${files[@]}"}; do
	src=${f%%=*} dest=$(basename "${f#*=}")
	[ -f "$src" ] || die "bochs-run.sh: no file $src"
	cp "$src" "$root/$dest"
done
if [ $# -eq 1 ]; then
	printf '%s\n' "$1" >"$root/bochs-run.cmd"
else
	printf '%q ' "$@" >"$root/bochs-run.cmd"
fi

# The results leave through the serial port, between markers, after the
# command: console loglevel 1 from then on keeps kernel lines out of them
# (the kernel log comes whole from dmesg), and the guest gives the UART
# time to send every byte before it powers off, which would drop the rest.
cat >"$root/init" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
echo "bochs-run: command starts" >/dev/kmsg
cd /
sh /bochs-run.cmd >/tmp/output 2>&1 </dev/null
echo $? >/tmp/status
dmesg -n 1
# Let the console finish the kernel line it may be printing.
sleep 1
{
	echo
	echo "@@BOCHS-RUN-OUTPUT@@"
	cat /tmp/output
	# The marker starts a line, whatever the output's last one.
	[ -z "$(tail -c 1 /tmp/output)" ] || echo
	echo "@@BOCHS-RUN-STATUS $(cat /tmp/status)@@"
	dmesg
	echo "@@BOCHS-RUN-END@@"
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
  append initrd=/initrd.gz console=ttyS0 loglevel=4 panic=0 oops=panic$append
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
# Stopped from outside: Bochs goes too.
trap 'kill "$bochs_pid" 2>/dev/null; rm -rf "$out"; exit 143' TERM INT
result=""
while kill -0 "$bochs_pid" 2>/dev/null; do
	if grep -q '@@BOCHS-RUN-END@@' "$out/serial"; then
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
	if grep -q '@@BOCHS-RUN-END@@' "$out/serial"; then result=done; else result="Bochs exited"; fi
fi
# Bochs gone before the guest kernel wrote a byte: Bochs could not run
# here (its own error says why), nothing of the kernel or the command ran.
if [ "$result" = "Bochs exited" ] && [ ! -s "$out/serial" ]; then
	skip "Bochs exited (status $bochs_rc) before the guest kernel started: $(grep -hE -i 'panic|error|cannot|fail' "$out/bochs.out" "$out/bochs.log" 2>/dev/null | tail -n 2 | tr '\n' ' ' || true)"
fi
# The guest's serial console ends lines with CR LF.
tr -d '\r' <"$out/serial" >"$out/console"
console_log="$LOG_DIR/vm-console-bochs-$name.log"
cp "$out/console" "$console_log"

sed -n '/^@@BOCHS-RUN-OUTPUT@@$/,/^@@BOCHS-RUN-STATUS /p' "$out/console" | sed '1d;$d'
if [ "$result" = timeout ]; then
	echo "bochs-run: TIMEOUT after ${timeout}s; last console lines (all: $console_log):" >&2
	tail -n 60 "$out/console" >&2
	exit 124
fi
status=$(sed -n 's/^@@BOCHS-RUN-STATUS \([0-9]*\)@@$/\1/p' "$out/console" | head -n 1)
if [ "$result" != done ] || [ -z "$status" ]; then
	echo "bochs-run: the VM ended ($result) without reporting a status; last console lines (all: $console_log):" >&2
	tail -n 80 "$out/console" >&2
	echo "bochs-run: last Bochs lines:" >&2
	tail -n 20 "$out/bochs.out" "$out/bochs.log" >&2
	exit 125
fi

dmesg_log="$LOG_DIR/vm-dmesg-bochs-$name.log"
sed -n '/^@@BOCHS-RUN-STATUS /,/^@@BOCHS-RUN-END@@$/p' "$out/console" | sed '1d;$d' >"$dmesg_log"
grep -q 'bochs-run: command starts' "$dmesg_log" || die "bochs-run: the kernel log lacks the command's start line ($dmesg_log)"
# One splat is excluded, and only before the command starts: Bochs' CPUID
# for this one-CPU model sets HT while leaf 1's logical-processor count
# (EBX[23:16]) is below leaf 4's core count, and the kernel's legacy
# topology parser (arch/x86/kernel/cpu/topology_common.c:parse_legacy) has
# a WARN_ON_ONCE for exactly that inconsistency. It concerns the emulated
# CPU's CPUID at boot, before KVM is loaded; it is shown, not counted.
# Anything else, another WARNING included, counts: from its WARNING line
# to its "end trace" line (at most 80 lines; without an end line nothing
# is excluded).
awk -v excluded="$out/dmesg-excluded" '
	function flush() { for (i = 1; i <= n; i++) print buf[i]; n = 0 }
	/bochs-run: command starts/ { started = 1 }
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
' "$dmesg_log" >"$out/dmesg-counted"
if kernel_log_bugs bochs-run "$out/dmesg-counted"; then
	exit 126
fi
if [ -s "$out/dmesg-excluded" ]; then
	sed 's/^/bochs-run: excluded boot WARNING (Bochs CPUID topology): /' "$out/dmesg-excluded" | head -n 3 >&2
fi
echo "bochs-run: command exited $status, Bochs took ${elapsed}s" >&2
exit "$status"
