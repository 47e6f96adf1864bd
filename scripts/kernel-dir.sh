#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prints the path of the cached kernel tree for the current key if it has
# been built, and nothing (with a message on stderr) otherwise.
#
#   scripts/kernel-dir.sh [FLAVOR]    # test (default) or prod

. "$(dirname "$0")/lib.sh"

KDIR="$(kernel_dir "${1:-test}")"
if [ -f "$KDIR/.msrguard-built" ]; then
	echo "$KDIR"
else
	echo "msrguard: no built kernel at $KDIR" >&2
fi
