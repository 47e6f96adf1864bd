// SPDX-License-Identifier: GPL-2.0

//! The VMs msrguard knows, each with its id, its VMM and its profile.
//! `core`-only: the module keeps the table under a spinlock and fills it
//! from KVM's VM creation and destruction (`rust/module/vm_table.rs`), the
//! host tests it.
//!
//! - A VM's id is assigned when KVM creates it (or, for a VM that existed
//!   before msrguard loaded, at its first event), counting up from 1, and
//!   is never given to another VM while the module is loaded: a new VM at
//!   a destroyed one's address gets a new id, so its events, its share of
//!   the event queue and its cached images are its own.
//! - An entry is trusted (listed, its profile changeable by root) once
//!   KVM creates a vCPU of the VM (or a hook sees one): KVM's creation has
//!   finished, and with it the failure path that expects to drop the only
//!   reference to the VM. The module makes an entry when KVM makes the
//!   VM's MMU (`kvm_mmu_init_vm`, once its type was accepted), and KVM
//!   uninitializes it (so destroys the VM, for msrguard) on every later
//!   failure: no entry is stale but after that function's own ENOMEM.
//! - A VM's profile ([`crate::profiles`]) is given when KVM creates it (by
//!   the creating task's cgroup, which the module matches), the default one
//!   for a VM that existed before msrguard loaded; root may change it
//!   ([`VmTable::set_profile`]).
//! - The table is fixed (no allocation after load): beyond
//!   [`VmTable::capacity`] live VMs, a VM is untracked and its id is 0.
//! - Open addressing with linear probing, deletion by backward shift: a
//!   lookup probes a few slots; every operation is bounded by the table.

use core::ops::DerefMut;

use crate::slots::{
    self,
    Slot, //
};

/// Slots the module has: VMs tracked at once.
pub const VM_SLOTS: usize = 1024;

/// One slot: a VM (its key, never 0) and what is known of it, or free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmSlot {
    key: u64,
    vm: Vm,
    /// KVM created a vCPU of it, or a hook saw one: KVM finished creating
    /// it. Until then its creation may still fail, and KVM drop the only
    /// reference to it.
    vcpu_seen: bool,
}

impl VmSlot {
    /// A free slot, to fill the storage with.
    pub const FREE: Self = Self {
        key: 0,
        vm: Vm {
            id: 0,
            vmm_pid: 0,
            profile: 0,
        },
        vcpu_seen: false,
    };
}

impl Slot for VmSlot {
    fn key(&self) -> u64 {
        self.key
    }
}

/// What the table knows of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vm {
    /// Its id; 0: untracked.
    pub id: u32,
    /// The thread group that created it (0: it existed before msrguard).
    pub vmm_pid: u32,
    /// Its profile's index.
    pub profile: u8,
}

impl Vm {
    /// A VM the table does not track: id 0, the default profile.
    pub const UNTRACKED: Self = Self {
        id: 0,
        vmm_pid: 0,
        profile: 0,
    };
}

/// The table, over storage the caller allocates (`[VmSlot::FREE; N]`).
pub struct VmTable<S> {
    slots: S,
    /// The id the next VM gets.
    next_id: u32,
    /// Ids went past 2^32 - 1 once: an id may be a live VM's.
    wrapped: bool,
    live: usize,
}

impl<S: DerefMut<Target = [VmSlot]>> VmTable<S> {
    /// An empty table of `slots.len()` slots.
    pub fn new(mut slots: S) -> Self {
        slots.fill(VmSlot::FREE);
        Self {
            slots,
            next_id: 1,
            wrapped: false,
            live: 0,
        }
    }

    /// As after 2^32 - 1 VMs, ids count again from `next_id`: for tests
    /// of the wrap, which no test can wait for.
    pub fn wrap_to(&mut self, next_id: u32) {
        self.next_id = next_id.max(1);
        self.wrapped = true;
    }

    /// VMs it can track at once: one slot stays free, so that every probe
    /// ends.
    pub fn capacity(&self) -> usize {
        self.slots.len().saturating_sub(1)
    }

    /// Live VMs tracked.
    pub fn live(&self) -> usize {
        self.live
    }

    fn home(&self, key: u64) -> usize {
        slots::home(key, self.slots.len())
    }

    /// The slot holding `key`, or the free slot where it would go. None for
    /// key 0, which marks a free slot.
    fn probe(&self, key: u64) -> Option<(usize, bool)> {
        if key == 0 {
            return None;
        }
        let len = self.slots.len();
        let mut i = self.home(key);
        for _ in 0..len {
            let slot = self.slots.get(i)?;
            if slot.key == key {
                return Some((i, true));
            }
            if slot.key == 0 {
                return Some((i, false));
            }
            i = (i + 1) % len;
        }
        None
    }

    fn take_id(&mut self) -> u32 {
        // 0 means untracked: after 2^32 - 1 VMs, count from 1 again,
        // passing over the ids live VMs still have (fewer than the slots,
        // so a free one comes within as many tries).
        for _ in 0..=self.slots.len() {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or_else(|| {
                self.wrapped = true;
                1
            });
            if !self.wrapped || !self.slots.iter().any(|s| s.key != 0 && s.vm.id == id) {
                return id;
            }
        }
        0
    }

    fn insert(&mut self, key: u64, vmm_pid: u32, profile: u8) -> Vm {
        if key == 0 || self.live >= self.capacity() {
            return Vm::UNTRACKED;
        }
        let Some((i, false)) = self.probe(key) else {
            return Vm::UNTRACKED;
        };
        let vm = Vm {
            id: self.take_id(),
            vmm_pid,
            profile,
        };
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = VmSlot {
                key,
                vm,
                vcpu_seen: false,
            };
            self.live += 1;
            return vm;
        }
        Vm::UNTRACKED
    }

    /// KVM created the VM `key` for the thread group `vmm_pid`, with
    /// `profile`: its new id (0 if the table is full). An entry of the same
    /// key (a destruction not seen) is replaced.
    pub fn created(&mut self, key: u64, vmm_pid: u32, profile: u8) -> u32 {
        self.destroyed(key);
        self.insert(key, vmm_pid, profile).id
    }

    /// KVM destroyed the VM `key`: its slot is freed. Returns its id, if
    /// it was tracked.
    pub fn destroyed(&mut self, key: u64) -> Option<u32> {
        let (hole, true) = self.probe(key)? else {
            return None;
        };
        let id = self.slots.get(hole)?.vm.id;
        slots::remove(&mut self.slots, hole, VmSlot::FREE);
        self.live -= 1;
        Some(id)
    }

    /// The VM `key`, for a hook that has one of its vCPUs or sees KVM
    /// create one (so KVM finished creating it): as created, or for a VM msrguard has not seen created
    /// (it existed before msrguard loaded) a new id now and the default
    /// profile; [`Vm::UNTRACKED`] if the table is full.
    pub fn vm_of(&mut self, key: u64) -> Vm {
        let i = match self.probe(key) {
            Some((i, true)) => i,
            _ => {
                self.insert(key, 0, crate::profiles::DEFAULT);
                match self.probe(key) {
                    Some((i, true)) => i,
                    _ => return Vm::UNTRACKED,
                }
            }
        };
        match self.slots.get_mut(i) {
            Some(slot) => {
                slot.vcpu_seen = true;
                slot.vm
            }
            None => Vm::UNTRACKED,
        }
    }

    /// The id of the VM `key` ([`Self::vm_of`]).
    pub fn id_of(&mut self, key: u64) -> u32 {
        self.vm_of(key).id
    }

    /// Gives the VM `id` the profile `profile`; None if no VM with a vCPU
    /// has that id (a VM without one may still fail its creation, whose
    /// failure path expects to drop the only reference). Returns the VM's
    /// key: its `struct kvm`, which lives as long as the entry (msrguard's
    /// destroy hook removes it).
    pub fn set_profile(&mut self, id: u32, profile: u8) -> Option<u64> {
        if id == 0 {
            return None;
        }
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.key != 0 && s.vcpu_seen && s.vm.id == id)?;
        slot.vm.profile = profile;
        Some(slot.key)
    }

    /// The VMs with a vCPU, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Vm> + '_ {
        self.slots
            .iter()
            .filter(|s| s.key != 0 && s.vcpu_seen)
            .map(|s| s.vm)
    }
}
