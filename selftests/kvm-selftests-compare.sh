#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs KVM's own selftests inside the test VM, first without msrguard, then
# with msrguard.ko loaded (its default parameters: enforce), and compares
# each test's outcome (pass, fail with the failing assertion's location,
# skip, timeout) and, for tests that print TAP, each subtest's. Emits TAP,
# one line per test: ok when the outcomes match, or when the difference is
# an intended veto listed in EXPECTED_DIFFS; not ok otherwise, or when a
# listed difference did not happen. A test whose outcomes differ runs again
# once without and with msrguard, and the second pair decides, said so in
# its line: a few tests busy-wait on other vCPUs (hyperv_ipi), and one of
# them can fail without msrguard as well under an emulated CPU's load.
#
#   kvm-selftests-compare.sh [--timeout S] [--only-without] BUILD_DIR MODULE.ko EXPECTED_DIFFS [TOOL]
#
# BUILD_DIR is scripts/build-kvm-selftests.sh's output (tests.txt lists
# the tests). EXPECTED_DIFFS: one line per difference, "TEST[:SUBTEST]
# reason", TEST as in tests.txt or its basename. TOOL (the msrguard tool),
# if given, lists the events each test caused, to explain differences.
# --only-without runs the first pass only (for choosing tests).
# Exit status: 0 if every test is ok, 1 otherwise, 4 if KVM is missing.

set -euo pipefail

timeout_s=120
only_without=0
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout_s="$2"; shift 2 ;;
	--only-without) only_without=1; shift ;;
	*) break ;;
	esac
done
[ $# -ge 3 ] || { echo "usage: $0 [--timeout S] [--only-without] BUILD_DIR MODULE.ko EXPECTED_DIFFS [TOOL]" >&2; exit 2; }
build="$1" module="$2" expected="$3" tool="${4:-}"

mapfile -t tests <"$build/tests.txt"
echo "TAP version 13"

modprobe kvm_amd 2>/dev/null || modprobe kvm_intel 2>/dev/null || true
if [ ! -c /dev/kvm ]; then
	echo "1..0 # SKIP no /dev/kvm in this VM (kvm_amd/kvm_intel did not load)"
	exit 4
fi
if grep -q '^msrguard ' /proc/modules 2>/dev/null; then
	echo "Bail out! msrguard is already loaded: the first pass must run without it"
	exit 1
fi

work=$(mktemp -d /tmp/kvm-selftests.XXXXXX)
trap 'rm -rf "$work"' EXIT

# outcome OUTPUT_FILE RC: pass, skip, timeout, or fail@FILE:LINE of the
# first failed assertion (so two failures at different places differ).
outcome() {
	local out="$1" rc="$2" where
	case "$rc" in
	0) echo pass ;;
	4) echo skip ;;
	124) echo timeout ;;
	*)
		where=$(grep -m1 -oE '^[[:space:]]+[[:alnum:]_/.-]+\.c:[0-9]+:' "$out" | tr -d ' \t' || true)
		echo "fail${where:+@${where%:}}"
		;;
	esac
}

# subtests OUTPUT_FILE: "N NAME<TAB>STATUS" per TAP result line (kselftest
# harness or ksft_test_result), STATUS pass, fail, skip or xfail.
subtests() {
	sed -nE 's/^[[:space:]]*(not ok|ok) ([0-9]+) ([^#]*[^#[:space:]])?[[:space:]]*(# *([A-Za-z]+).*)?$/\1|\2|\3|\5/p' "$1" |
		while IFS='|' read -r res n name directive; do
			status=pass
			[ "$res" = ok ] || status=fail
			case "${directive^^}" in SKIP) status=skip ;; XFAIL) status=xfail ;; esac
			printf '%s %s\t%s\n' "$n" "${name:-?}" "$status"
		done | LC_ALL=C sort -t "$(printf '\t')" -k1,1
}

# run_one DIR TEST: runs TEST, saving output, rc, outcome and duration.
run_one() {
	local dir="$1" t="$2" name start rc=0
	name=${t//\//_}
	mkdir -p "$dir"
	start=$(date +%s%N)
	# Each test in its own directory: some write files in the cwd.
	mkdir -p "$dir/$name.cwd"
	(cd "$dir/$name.cwd" && timeout -k 5 "$timeout_s" "$build/$t") >"$dir/$name.out" 2>&1 </dev/null || rc=$?
	echo $(( ($(date +%s%N) - start) / 1000000 )) >"$dir/$name.ms"
	echo "$rc" >"$dir/$name.rc"
	outcome "$dir/$name.out" "$rc" >"$dir/$name.outcome"
	subtests "$dir/$name.out" >"$dir/$name.sub"
	if [ -n "$tool" ] && [ -c /dev/msrguard ]; then
		"$tool" events --json >"$dir/$name.events" 2>&1 || true
	fi
}

# run_pass DIR: runs every test.
run_pass() {
	local t
	for t in "${tests[@]}"; do
		run_one "$1" "$t"
	done
}

# events_summary FILE: one line per (MSR, access, status, reason) with a count.
events_summary() {
	awk '
	function field(key,   re) {
		re = "\"" key "\":(\"[^\"]*\"|[^,}]*)"
		if (!match($0, re)) return "?"
		v = substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
		gsub(/"/, "", v)
		return v
	}
	/^\{/ {
		k = sprintf("msr=0x%x %s %s %s reason=%s", field("msr"), field("msr_name"),
			field("is_write") == "true" ? "WRMSR" : "RDMSR", field("access_status"), field("reason"))
		if (!(k in n)) order[++count] = k
		n[k]++
	}
	!/^\{/ { print "(tool) " $0 }
	END { for (i = 1; i <= count; i++) printf "%s x%d\n", order[i], n[order[i]] }
	' "$1"
}

# listed_any TEST: whether EXPECTED_DIFFS has any line for TEST.
listed_any() {
	sed -e 's/#.*//' "$expected" 2>/dev/null |
		awk -v t="$1" -v b="${1##*/}" 'NF { k = $1; sub(/:.*/, "", k); if (k == t || k == b) f = 1 } END { exit !f }'
}

secs() { printf '%d.%ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# expected_entry TEST SUBTEST: the reason if listed, else nothing.
expected_entry() {
	local t="$1" sub="$2" base="${1##*/}"
	sed -e 's/#.*//' "$expected" 2>/dev/null | awk -v t="$t" -v b="$base" -v s="$sub" '
		NF { key = $1; $1 = ""; sub(/^ /, "")
		     if (key == t || key == b || (s != "" && (key == t ":" s || key == b ":" s))) { print; exit } }'
}

# all_subtests_listed TEST: every subtest difference in diff_keys[] is listed.
all_subtests_listed() {
	local k
	for k in "${diff_keys[@]}"; do
		[ -z "$k" ] || [ -n "$(expected_entry "$1" "${k#* }")" ] || return 1
	done
}

# classify TEST A B: the differences between the outputs A (without) and B
# (with msrguard), into unexplained[] and intended[].
classify() {
	local t="$1" a="$2" b="$3" oa ob key sa sb j label reason
	oa=$(cat "$a.outcome") ob=$(cat "$b.outcome")
	# Every difference: the whole test's, then each subtest's ("N NAME").
	diff_keys=() diff_what=()
	if [ "$oa" != "$ob" ]; then
		diff_keys+=("") diff_what+=("$oa->$ob")
	fi
	while IFS=$'\t' read -r key sa sb; do
		[ "$sa" = "$sb" ] || { diff_keys+=("$key"); diff_what+=("$sa->$sb"); }
	done < <(LC_ALL=C join -t $'\t' -a1 -a2 -e missing -o 0,1.2,2.2 "$a.sub" "$b.sub")

	unexplained=() intended=()
	for j in "${!diff_keys[@]}"; do
		key=${diff_keys[$j]}
		label="${key:+subtest $key: }${diff_what[$j]}"
		# Listed either for the whole test or for the subtest by name.
		reason=$(expected_entry "$t" "${key#* }")
		# The whole test's change follows from its subtests' when each
		# of those is listed.
		if [ -z "$key" ] && [ -z "$reason" ] && [ ${#diff_keys[@]} -gt 1 ] &&
			all_subtests_listed "$t"; then
			reason="follows from the listed subtests"
		fi
		if [ -n "$reason" ]; then
			intended+=("$label ($reason)")
		else
			unexplained+=("$label")
		fi
	done
}

echo "# pass 1: ${#tests[@]} KVM selftests without msrguard (timeout ${timeout_s}s each)"
run_pass "$work/without"
if [ "$only_without" -eq 1 ]; then
	echo "1..${#tests[@]}"
	i=0
	for t in "${tests[@]}"; do
		i=$((i + 1)); name=${t//\//_}
		echo "ok $i $t: $(cat "$work/without/$name.outcome") ($(secs "$(cat "$work/without/$name.ms")"))"
		sed 's/^/#   /' "$work/without/$name.sub"
		[ "$(cat "$work/without/$name.outcome")" = pass ] || tail -n 8 "$work/without/$name.out" | sed 's/^/#   | /'
	done
	exit 0
fi

echo "# pass 2: the same tests with $module loaded (enforce)"
if ! insmod "$module"; then
	echo "Bail out! insmod $module failed"
	exit 1
fi
run_pass "$work/with"
rmmod msrguard || echo "# warning: rmmod msrguard failed"

echo "1..${#tests[@]}"
i=0 passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
	i=$((i + 1))
	name=${t//\//_}
	a="$work/without/$name" b="$work/with/$name"
	classify "$t" "$a" "$b"
	retried=
	if [ ${#unexplained[@]} -gt 0 ]; then
		# Once more, both ways: the second pair decides.
		first="${unexplained[*]}"
		run_one "$work/without2" "$t"
		if insmod "$module"; then
			run_one "$work/with2" "$t"
			rmmod msrguard || echo "# warning: rmmod msrguard failed"
			a="$work/without2/$name" b="$work/with2/$name"
			classify "$t" "$a" "$b"
			retried="ran again, first time: $first"
		else
			echo "# warning: insmod $module failed for the second run of $t"
		fi
	fi
	oa=$(cat "$a.outcome") ob=$(cat "$b.outcome")
	times="without $(secs "$(cat "$a.ms")"), with $(secs "$(cat "$b.ms")")${retried:+; $retried}"
	if [ ${#unexplained[@]} -gt 0 ]; then
		echo "not ok $i $t: differs with msrguard ($times)"
		printf '#   difference: %s\n' "${unexplained[@]}"
		[ ${#intended[@]} -eq 0 ] || printf '#   intended: %s\n' "${intended[@]}"
		failed=$((failed + 1))
		echo "#   without msrguard: $oa, last lines:"
		tail -n 6 "$a.out" | sed 's/^/#   | /'
		echo "#   with msrguard: $ob, last lines:"
		tail -n 12 "$b.out" | sed 's/^/#   | /'
	elif [ ${#intended[@]} -gt 0 ]; then
		echo "ok $i $t: only intended differences ($times)"
		printf '#   intended: %s\n' "${intended[@]}"
		passed=$((passed + 1))
	elif listed_any "$t" && [ "$oa" != skip ]; then
		echo "not ok $i $t: listed in $(basename "$expected") as an intended veto, but the outcome did not change ($oa) ($times)"
		failed=$((failed + 1))
	elif [ "$oa" = skip ]; then
		reason=$(grep -m1 -oE '(SKIP|skip).*' "$a.out" | sed -E 's/^(SKIP|skip)[: -]*//' | head -c 160 || true)
		echo "ok $i $t: skipped both times # SKIP ${reason:-exit status 4} ($times)"
		skipped=$((skipped + 1))
	else
		echo "ok $i $t: same outcome: $oa, $(wc -l <"$a.sub") subtests same ($times)"
		passed=$((passed + 1))
	fi
	if [ -s "$b.events" ]; then
		echo "#   msrguard events during this test:"
		events_summary "$b.events" | sed 's/^/#     /'
	fi
done
echo "# Totals: pass:$passed fail:$failed skip:$skipped"
[ "$failed" -eq 0 ]
