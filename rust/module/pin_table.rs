// SPDX-License-Identifier: GPL-2.0

//! The vCPUs' pinned values ([`crate::pins::PinTable`]) under a spinlock,
//! allocated at load: the hooks claim a vCPU's states on its first write of
//! a pinned MSR without allocating.

use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};

use kernel::{
    new_spinlock,
    prelude::*,
    sync::SpinLock, //
};

use crate::{
    guard::{
        self,
        Answer,
        Facts, //
    },
    pins::{
        Held,
        PinRule,
        PinTable,
        VcpuPins, //
    },
};

/// vCPUs whose pinned values the module holds at once (16 states each):
/// beyond, a vCPU's writes of pinned MSRs are not checked, and counted.
pub(crate) const PIN_VCPUS: usize = 1024;

/// Guest writes of pinned MSRs left unchecked because their vCPU's states
/// did not fit, for the read-only parameter `pins_unchecked`.
static UNCHECKED: AtomicU64 = AtomicU64::new(0);

/// How many writes of pinned MSRs went unchecked.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_pins_unchecked() -> u64 {
    UNCHECKED.load(Ordering::Relaxed)
}

fn free_slots() -> Result<KVVec<VcpuPins>> {
    let mut v = KVVec::with_capacity(PIN_VCPUS, GFP_KERNEL)?;
    for _ in 0..PIN_VCPUS {
        v.push(VcpuPins::FREE, GFP_KERNEL)?;
    }
    Ok(v)
}

/// The table.
#[pin_data]
pub(crate) struct Pins {
    #[pin]
    table: SpinLock<PinTable<KVVec<VcpuPins>>>,
}

impl Pins {
    /// An empty table, allocated now (vmalloc: about 400 KiB).
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            table <- new_spinlock!(PinTable::new(free_slots()?), "msrguard_pins"),
        })
    }

    /// Decides a write the policy allows of an MSR whose rule is `rule`
    /// (its state at `index` of the vCPU's states under `profile`), by
    /// [`guard::on_pinned_write`]: None if the value the vCPU holds (`held`)
    /// must be read first. A vCPU whose states do not fit is never vetoed.
    /// Atomic context.
    #[expect(clippy::too_many_arguments, reason = "the facts of one decision")]
    pub(crate) fn on_write(
        &self,
        vm_id: u32,
        vcpu_id: u32,
        profile: u8,
        index: usize,
        rule: PinRule,
        held: Held,
        facts: &Facts,
    ) -> Option<Answer> {
        let mut table = self.table.lock();
        match table
            .states(vm_id, vcpu_id, profile)
            .and_then(|states| states.get_mut(index))
        {
            Some(state) => guard::on_pinned_write(rule, state, held, facts),
            None => {
                UNCHECKED.fetch_add(1, Ordering::Relaxed);
                Some(Answer::PROCEED)
            }
        }
    }

    /// Forgets the VM `vm_id`'s vCPUs: it went, or got another profile.
    pub(crate) fn forget_vm(&self, vm_id: u32) {
        self.table.lock().forget_vm(vm_id);
    }
}
