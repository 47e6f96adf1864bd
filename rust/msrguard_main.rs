// SPDX-License-Identifier: GPL-2.0

//! msrguard: guards the model-specific registers KVM guests may access.
//!
//! Every RDMSR and WRMSR a KVM guest performs is checked against a policy
//! compiled into this module (`policy/default.toml`); forbidden accesses are
//! vetoed through KVM's own failure path and reported through
//! `/dev/msrguard`, the `msrguard:msrguard_access` trace event and the
//! kernel log. See `Documentation/msrguard.rst` in the msrguard repository.
//!
//! - `record` and `policy` are `core`-only and shared with the host crates;
//! - `policy_table` is generated from the policy file at build time;
//! - `events` and `device` are `/dev/msrguard`;
//! - `shim` binds the C shim, which hooks KVM.

use kernel::prelude::*;

mod device;
mod events;
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod msr_names;
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, which also use what the module does not"
)]
mod policy;
mod policy_table;
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, which decode what the module encodes"
)]
mod record;
mod shim;

module! {
    type: MsrGuardModule,
    name: "msrguard",
    authors: ["msrguard developers"],
    description: "Guards the model-specific registers KVM guests may access",
    license: "GPL",
    params: {
        ring_records: u32 {
            default: 1024,
            description: "Capacity of the event buffer behind /dev/msrguard, in records (1..65536, set at load)",
        },
    },
}

/// The loaded module: `/dev/msrguard` with its queue, and the armed shim.
#[pin_data(PinnedDrop)]
struct MsrGuardModule {
    /// The event queue and its device node.
    #[pin]
    device: device::EventDevice,
    /// Whether the shim's hooks are armed.
    shim_armed: bool,
}

impl kernel::InPlaceModule for MsrGuardModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let capacity = *module_parameters::ring_records.value_ref() as usize;
        try_pin_init!(Self {
            device <- device::EventDevice::new(capacity),
            shim_armed: false,
        })
        .pin_chain(move |this| {
            // SAFETY: Nothing is moved out of the pinned value.
            let this = unsafe { this.get_unchecked_mut() };
            // The queue is in place: the hooks may now record into it.
            shim::init(&this.device.events)?;
            this.shim_armed = true;
            // Last: once the node exists, userspace may use it.
            // SAFETY: `device` is structurally pinned; it is not moved.
            unsafe { Pin::new_unchecked(&mut this.device) }.register()?;
            pr_info!(
                "loaded: {} policy entries, buffer of {} events\n",
                policy_table::TABLE.len(),
                capacity
            );
            Ok(())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for MsrGuardModule {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Nothing is moved out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `device` is structurally pinned; it is not moved.
        unsafe { Pin::new_unchecked(&mut this.device) }.deregister();
        // Hooks go before the queue they record into (dropped after this).
        if this.shim_armed {
            shim::exit();
            this.shim_armed = false;
        }
        pr_info!("unloaded\n");
    }
}
