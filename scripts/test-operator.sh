#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The operator's rollout, end to end (README, "Using it"): audit a guest
# workload under a starting policy, with the Debian package installed in
# the VM and its unit's command forwarding to a real systemd-journald;
# `msrguard policy suggest` on the saved records; `msrguard check`; build
# the module with the learned policy; enforce it and see the workload run
# as it did in audit mode, except what suggest refused to allow.
#
#   scripts/test-operator.sh DEB TOOL
#
# The starting policy is the suite's small test policy
# (selftests/test-policy.toml, built as the module variant testpolicy by
# scripts/test.sh). TAP on stdout; exit status 0 or 1.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

[ $# -eq 2 ] || die "usage: $0 DEB TOOL"
deb="$1" tool="$2"
start_policy=selftests/test-policy.toml
start_ko="$(module_ko testpolicy)"
workload="$MSRGUARD_ROOT/selftests/kvm/msrguard_workload"
for f in "$deb" "$tool" "$start_ko" "$workload"; do
	[ -r "$f" ] || die "missing $f (scripts/test.sh builds it)"
done

# Not /tmp: the VM has a /tmp of its own; this directory is written through.
out="$MSRGUARD_CACHE/operator"
rm -rf "$out"
mkdir -p "$out"

# Results of the phases run in the VM ("PASS what" / "FAIL what" lines)
# and on the host, numbered as TAP in the order they happen.
AUDIT_CHECKS=6 HOST_CHECKS=2 ENFORCE_CHECKS=3
n=0 passed=0 failed=0
echo "TAP version 13"
echo "1..$((AUDIT_CHECKS + HOST_CHECKS + ENFORCE_CHECKS))"
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $*"; }
# vm_phase CHECKS NAME VM-RUN-ARGS...: the phase's lines as TAP; checks it
# did not report (the VM or the script died) are failures.
vm_phase() {
	local checks="$1" name="$2" start=$n rc=0 line
	shift 2
	scripts/vm-run.sh --timeout 600 "$@" >"$out/$name.log" 2>&1 || rc=$?
	while IFS= read -r line; do
		case "$line" in
		"PASS "*) ok "$name: ${line#PASS }" ;;
		"FAIL "*) not_ok "$name: ${line#FAIL }" ;;
		"# "*) echo "$line" ;;
		esac
	done <"$out/$name.log"
	if [ "$rc" -ne 0 ]; then
		grep -v '^\(PASS\|FAIL\|#\) ' "$out/$name.log" | tail -n 30 | sed 's/^/# /'
	fi
	while [ $((n - start)) -lt "$checks" ]; do
		not_ok "$name: not reached (the VM run exited $rc; log: $out/$name.log)"
	done
}

vm_phase "$AUDIT_CHECKS" audit --rwdir "$out" -- \
	selftests/operator_test.sh audit "$deb" "$start_ko" "$workload" "$out"

# On the host: the proposal, checked, built.
learned="$out/learned-policy.toml"
if [ -s "$out/audit.records" ] &&
	"$tool" policy suggest --policy "$start_policy" --from "$out/audit.records" --merge >"$learned" 2>"$out/suggest.err" &&
	"$tool" check "$learned" >"$out/check.log" 2>&1; then
	"$tool" policy suggest --policy "$start_policy" --from "$out/audit.records" 2>/dev/null | sed 's/^/# /'
	ok "host: msrguard policy suggest --merge on the audit records; msrguard check accepts the result"
else
	cat "$out/suggest.err" "$out/check.log" 2>/dev/null | sed 's/^/# /' || true
	not_ok "host: msrguard policy suggest / msrguard check"
fi
learned_ko="$out/msrguard-learned.ko"
# A variant of its own: the default policy's msrguard.ko is what the later
# steps load.
if build_module learned -s POLICY="$learned" >"$out/build.log" 2>&1 && cp "$(module_ko learned)" "$learned_ko"; then
	ok "host: msrguard.ko built with the learned policy"
else
	tail -n 20 "$out/build.log" | sed 's/^/# /'
	not_ok "host: building msrguard.ko with the learned policy"
fi

vm_phase "$ENFORCE_CHECKS" enforce --rwdir "$out" -- \
	selftests/operator_test.sh enforce "$start_ko" "$learned_ko" "$workload" "$out" "$tool"

[ "$failed" -eq 0 ]
