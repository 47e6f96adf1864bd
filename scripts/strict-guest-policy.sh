#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Writes the strict policy of the real-guest tests (selftests/distro_guests.sh)
# to OUT: policy/default.toml with the read action of each MSR in
# GUEST_STRICT_IGNORE_READS (scripts/lib.sh) turned to "ignore". Derived, not
# copied, so it follows the default policy. Each of those MSRs must have a
# single-index entry of its own in the default policy.
#
#   scripts/strict-guest-policy.sh OUT

. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 OUT"
awk -v msrs="${GUEST_STRICT_IGNORE_READS[*]}" '
	function flush(   i, idx, single) {
		idx = ""; single = 1
		for (i = 1; i <= nb; i++) {
			if (block[i] ~ /^index *= */) { idx = block[i]; sub(/^index *= */, "", idx); idx = tolower(idx) }
			if (block[i] ~ /^last *= */) single = 0
		}
		if (idx in want) {
			if (!single) { printf "%s: %s is a range in the default policy\n", FILENAME, idx > "/dev/stderr"; bad = 1 }
			for (i = 1; i <= nb; i++) {
				if (block[i] ~ /^read *= */) block[i] = "read = \"ignore\""
				if (block[i] ~ /^reason *= */) block[i] = "reason = \"Strict test policy: reads ignored (selftests/distro_guests.sh).\""
			}
			found[idx] = 1
		}
		for (i = 1; i <= nb; i++) print block[i]
		nb = 0
	}
	BEGIN { n = split(msrs, a, " "); for (i = 1; i <= n; i++) want[tolower(a[i])] = 1 }
	/^\[\[msr\]\]/ { flush() }
	{ block[++nb] = $0 }
	END {
		flush()
		for (m in want) if (!(m in found)) { printf "%s: no entry for %s\n", FILENAME, m > "/dev/stderr"; bad = 1 }
		exit bad
	}
' "$MSRGUARD_ROOT/policy/default.toml" >"$1.tmp" || die "cannot derive the strict guest policy from policy/default.toml"
mv "$1.tmp" "$1"
