#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prints the path of the cached kernel tree for the current key if it has
# been built, and nothing (with a message on stderr) otherwise.

. "$(dirname "$0")/lib.sh"

KDIR="$(kernel_dir)"
if [ -f "$KDIR/.msrguard-built" ]; then
	echo "$KDIR"
else
	echo "msrguard: no built kernel at $KDIR" >&2
fi
