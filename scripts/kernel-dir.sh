#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prints the path of the cached kernel tree for the current key if it has
# been built, and nothing (with a message on stderr) otherwise: lib.sh's
# kernel_tree, for the Makefiles.
#
#   scripts/kernel-dir.sh [FLAVOR]    # test (default) or prod

. "$(dirname "$0")/lib.sh"

kernel_tree "${1:-test}"
