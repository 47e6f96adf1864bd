// SPDX-License-Identifier: GPL-2.0

//! msrguard: guards the model-specific registers KVM guests may access.
//!
//! Every RDMSR and WRMSR a KVM guest performs is checked against a policy
//! compiled into this module; forbidden accesses are vetoed through KVM's own
//! failure path and reported through `/dev/msrguard`, an ftrace event and the
//! kernel log. See `Documentation/msrguard.rst` in the msrguard repository.

use kernel::prelude::*;

mod device;
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
            description: "Capacity of the event buffer behind /dev/msrguard, in records (set at load time)",
        },
    },
}

/// The loaded module: the C shim's hooks and the `/dev/msrguard` device.
#[pin_data(PinnedDrop)]
struct MsrGuardModule {
    /// `/dev/msrguard`, unregistered when the module is dropped.
    #[pin]
    device: device::Registration,
}

impl kernel::InPlaceModule for MsrGuardModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            device <- device::register(),
        })
        .pin_chain(|_| {
            shim::init()?;
            pr_info!("loaded\n");
            Ok(())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for MsrGuardModule {
    fn drop(self: Pin<&mut Self>) {
        // Hooks go first so that nothing produces events for a device that
        // is about to disappear.
        shim::exit();
        pr_info!("unloaded\n");
    }
}
