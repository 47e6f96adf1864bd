// SPDX-License-Identifier: GPL-2.0

//! Bindings to the C shim (`msrguard_shim.c`), which owns what Rust for Linux
//! cannot yet express out of tree: KVM hooks and trace events.

use kernel::{
    error::to_result,
    prelude::*, //
};

extern "C" {
    fn msrguard_shim_init() -> c_int;
    fn msrguard_shim_exit();
}

/// Arms the shim. On error nothing stays registered.
pub(crate) fn init() -> Result {
    // SAFETY: Called once from module init, before `exit`.
    to_result(unsafe { msrguard_shim_init() })
}

/// Disarms the shim; on return no hook runs any more.
pub(crate) fn exit() {
    // SAFETY: Called once from module exit, after a successful `init`.
    unsafe { msrguard_shim_exit() }
}
