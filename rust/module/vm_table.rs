// SPDX-License-Identifier: GPL-2.0

//! The VMs msrguard knows ([`crate::vms`]): the table under a spinlock,
//! filled from KVM's VM creation and destruction, which the C side hooks
//! (`kvm/hooks.c`).

use core::{
    ffi::c_void,
    sync::atomic::{
        AtomicUsize,
        Ordering, //
    },
};

use kernel::{
    new_spinlock,
    prelude::*,
    sync::SpinLock, //
};

use crate::{
    boundary_calls::{
        c_side::msrguard_kvm_get,
        Kvm, //
    },
    lookups::filled,
    vms::{
        Vm,
        VmSlot,
        VmTable,
        VM_SLOTS, //
    },
};

/// VMs tracked, for the read-only parameter `vms_tracked`.
static TRACKED: AtomicUsize = AtomicUsize::new(0);

/// The number of VMs the table tracks now.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_vms_tracked() -> u64 {
    TRACKED.load(Ordering::Relaxed) as u64
}

/// The VM table.
#[pin_data]
pub(crate) struct Vms {
    #[pin]
    table: SpinLock<VmTable<KVec<VmSlot>>>,
}

impl Vms {
    /// An empty table, allocated now: the hooks never allocate.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            table <- new_spinlock!(VmTable::new(filled(VM_SLOTS, VmSlot::FREE)?), "msrguard_vms"),
        })
    }

    /// Runs `f` on the table under its lock, then notes how many VMs it
    /// tracks.
    fn with<R>(&self, f: impl FnOnce(&mut VmTable<KVec<VmSlot>>) -> R) -> R {
        let mut table = self.table.lock();
        let r = f(&mut table);
        TRACKED.store(table.live(), Ordering::Relaxed);
        r
    }

    /// KVM created the VM `kvm` for the thread group `vmm_pid`, with
    /// `profile`: its id (0 if untracked).
    pub(crate) fn created(&self, kvm: *const c_void, vmm_pid: u32, profile: u8) -> u32 {
        self.with(|t| t.created(kvm as u64, vmm_pid, profile))
    }

    /// KVM destroyed the VM `kvm`: its id, if it was tracked.
    pub(crate) fn destroyed(&self, kvm: *const c_void) -> Option<u32> {
        self.with(|t| t.destroyed(kvm as u64))
    }

    /// The VM `kvm` ([`Vm::UNTRACKED`] if untracked). Safe in atomic
    /// context.
    pub(crate) fn vm_of(&self, kvm: *const c_void) -> Vm {
        self.with(|t| t.vm_of(kvm as u64))
    }

    /// Gives the VM `id` the profile `profile`: None if there is no such
    /// VM a hook saw running, else a reference on its `struct kvm` if it
    /// is still alive (the caller drops it), taken under the table's lock:
    /// a VM whose creation finished is freed only after its destruction
    /// passed msrguard's hook, which takes that lock to drop the entry, so
    /// its memory is there.
    pub(crate) fn set_profile(&self, id: u32, profile: u8) -> Option<Option<*const Kvm>> {
        self.with(|t| {
            let key = t.set_profile(id, profile)?;
            let kvm = key as *const Kvm;
            // SAFETY: `kvm` is a VM's whose creation finished and whose
            // destruction has not passed msrguard's hook, as said above.
            Some(unsafe { msrguard_kvm_get(kvm) }.then_some(kvm))
        })
    }

    /// The live VM at `position` of the table's order, if there is one.
    pub(crate) fn nth(&self, position: usize) -> Option<Vm> {
        self.with(|t| t.iter().nth(position))
    }
}
