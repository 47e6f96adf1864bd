#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The msrguard demo: sets up if needed, builds, boots the test VM, and runs
# a KVM guest doing MSR accesses without and with msrguard loaded, then
# shows the events with the msrguard tool.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

scripts/setup.sh >/dev/null
build_all
msg "booting the demo VM (about 15 s)"
# The demo leaves msrguard loaded; the tool then shows what it recorded.
scripts/vm-run.sh --timeout 600 -- "selftests/kvm/msrguard_demo '$(module_ko default)' &&
	echo && echo '== msrguard events (what the guard recorded)' && echo &&
	'$TOOL' events &&
	echo '== msrguard stats' && '$TOOL' stats"
