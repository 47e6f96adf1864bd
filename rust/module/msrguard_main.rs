// SPDX-License-Identifier: GPL-2.0

//! msrguard: guards the model-specific registers KVM guests may access.
//!
//! Every RDMSR and WRMSR a KVM guest performs is checked against a policy
//! compiled into this module (`policy/default.toml`); forbidden accesses are
//! vetoed through KVM's own failure path and reported through
//! `/dev/msrguard`, the `msrguard:msrguard_access` trace event and the
//! kernel log. See `Documentation/msrguard/` in the msrguard repository.
//!
//! The files are in three tiers (`rust/`):
//!
//! - `core/`: what decides and what holds the events, without kernel APIs,
//!   shared with the host crates and tested there (crate `msrguard-core`):
//!   `record` (the ABI), `policy`, `guard` (what happens to each access),
//!   `queue` (the event buffer's rules), `pipeline` (what happens to a new
//!   event) with `work_pool` and `image_cache`, `mode` (the parameters'
//!   rules), `profiles` (per VM: which table, which pins) with `pins` (the
//!   rules per vCPU), `pe` (finding the image holding an address), `msr_names`,
//!   `boundary` (the structs C and Rust pass);
//! - `module/`: the kernel Rust: this file, `events` and `device`
//!   (`/dev/msrguard`), `lookups` (the pipeline of a new event over the
//!   kernel: work pool and image cache under locks), `image` (the PE search
//!   over guest memory read by the C side), `ffi` (the entry points the C
//!   side calls, the parameters' state);
//! - `module/kvm/`: the C, only for what Rust cannot do: hooks into KVM,
//!   guest memory, writable parameters, the trace event.
//!
//! `policy_table` is generated from the policy file and its profiles
//! (`policy/profiles/`) at build time.

use kernel::prelude::*;

#[path = "../core/boundary.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
#[expect(
    dead_code,
    reason = "the header generator uses the field descriptions, the module only the structs"
)]
mod boundary;
#[path = "../core/boundary_calls.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod boundary_calls;
mod device;
mod events;
mod ffi;
#[path = "../core/guard.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod guard;
mod image;
#[path = "../core/image_cache.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod image_cache;
mod lookups;
#[path = "../core/mode.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod mode;
#[path = "../core/msr_names.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod msr_names;
#[path = "../core/pe.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, whose tests use its bounds"
)]
mod pe;
mod pin_table;
#[path = "../core/pins.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, whose tests read the pin table's size"
)]
mod pins;
#[path = "../core/pipeline.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates; the header generator names the codes"
)]
mod pipeline;
#[path = "../core/policy.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, which also use what the module does not"
)]
mod policy;
/// The policy compiled into this module, generated from the policy file
/// into the build's output directory (see `Kbuild`).
mod policy_table {
    include!(concat!(env!("MSRGUARD_GEN"), "/rust/policy_table.rs"));
}
#[path = "../core/profiles.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod profiles;
#[path = "../core/queue.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod queue;
#[path = "../core/record.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, which decode what the module encodes"
)]
mod record;
#[path = "../core/slots.rs"]
#[expect(unreachable_pub, reason = "shared with the host crates")]
mod slots;
mod vm_table;
#[path = "../core/vms.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, whose tests force the ids' wrap"
)]
mod vms;
#[path = "../core/work_pool.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "shared with the host crates, whose tests read the per-VM share"
)]
mod work_pool;

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

/// The loaded module. Fields are dropped in declaration order: after
/// [`PinnedDrop`] removed `/dev/msrguard`, the hooks are disarmed before the
/// lookups, the tables and the queue they use go (no lookup is pending
/// then: each holds the module).
#[pin_data(PinnedDrop)]
struct MsrGuardModule {
    /// The armed KVM hooks; `None` only while the module initializes.
    hooks: Option<ffi::Hooks>,
    /// Records waiting for their image, and the images found.
    #[pin]
    lookups: lookups::ImageLookups,
    /// The VMs known, with their ids and profiles.
    #[pin]
    vms: vm_table::Vms,
    /// The vCPUs' pinned values.
    #[pin]
    pins: pin_table::Pins,
    /// The event queue and its device node.
    #[pin]
    device: device::EventDevice,
}

impl kernel::InPlaceModule for MsrGuardModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let capacity = *module_parameters::ring_records.value_ref() as usize;
        try_pin_init!(Self {
            hooks: None,
            lookups <- lookups::ImageLookups::new(),
            vms <- vm_table::Vms::new(),
            pins <- pin_table::Pins::new(),
            device <- device::EventDevice::new(capacity),
        })
        .pin_chain(move |this| {
            let this = this.project();
            // The queue, the lookups, the VM and pin tables are in place:
            // the hooks may now use them. `hooks` is declared before all
            // four, so it is dropped (disarmed) before them.
            // SAFETY: The queue, the lookups, the VM and pin tables outlive
            // the hooks, as said above.
            let hooks = unsafe {
                ffi::Hooks::arm(&this.device.events, &this.lookups, &this.vms, &this.pins)
            }?;
            *this.hooks = Some(hooks);
            // Last: once the node exists, userspace may use it.
            // SAFETY: `vms` and `pins` are dropped after `PinnedDrop`
            // deregistered the node, and the module (so both) outlives every
            // open file.
            unsafe { this.device.register(&this.vms, &this.pins) }?;
            pr_info!(
                "loaded: {} policy entries, {} profiles, buffer of {} events\n",
                policy_table::TABLE.len(),
                policy_table::PROFILES.len(),
                capacity
            );
            Ok(())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for MsrGuardModule {
    fn drop(self: Pin<&mut Self>) {
        // First the node, so no reader finds a queue on its way out; the
        // fields then drop in declaration order.
        self.project().device.deregister();
        pr_info!("unloaded\n");
    }
}
