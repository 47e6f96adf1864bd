// SPDX-License-Identifier: GPL-2.0

//! Pins and set-only bits: what a hardened guest set at boot, held per vCPU.
//!
//! `core`-only: the module keeps one [`PinState`] per pinned or set-only
//! entry of a VM's profile for each of its vCPUs ([`PinTable`], allocated
//! at load); the host tests check every rule here.
//!
//! - A pinned MSR's first guest write since the vCPU's reset fixes its
//!   value; writing that value again is allowed, any other value is vetoed
//!   ([`PinCheck::Pinned`]).
//! - A set-only bit the MSR holds cannot be cleared by the guest
//!   ([`PinCheck::SetOnly`]); the module sets `sticky` from the value KVM
//!   holds before it checks (`guard::on_pinned_write`).
//! - [`commit`] records a write [`check`] allowed. The module commits at
//!   once: a write KVM then refuses (a non-canonical LSTAR) still pins its
//!   value, which only the guest that wrote it pays for.
//! - The VMM's own writes (`KVM_SET_MSRS`) ([`host_write`]): the pinned
//!   value again keeps the pin (QEMU writes the current values back
//!   whenever it syncs the vCPU's registers; compared in the bits KVM
//!   keeps, so an AMD guest's SYSENTER pin whose kept half is 0 stays
//!   pinned at 0); 0, the reset value of every MSR a profile may pin,
//!   unpins it (a VMM reset: the guest pins it again as it boots); any other value pins it (a migration target restoring
//!   the guest). A guest pinned at 0 (Linux without 32-bit emulation
//!   writes SYSENTER_EIP 0) is restored elsewhere unpinned, and stays
//!   pinned at 0 across a VMM reset. Only MSRs whose reset value is 0 may
//!   be pinned (the checker's rule).
//! - A new vCPU starts from [`PinState::RESET`]; INIT keeps the state (the
//!   guest can send INIT to its own vCPUs).
//! - The first time msrguard looks at a state ([`first_look`]: the vCPU's
//!   first write of the MSR under the VM's profile, given at creation or
//!   by root to a running VM), the value the vCPU holds pins it, unless it
//!   is 0 (the reset value: nothing written yet, so the write pins): a
//!   profile given to a running VM pins what its vCPUs hold, not what an
//!   attacker writes next.
//! - A pin compares the bits KVM keeps of a write ([`check`]: SVM keeps 32
//!   of SYSENTER_ESP/EIP for a guest with AMD's CPUID).

use crate::slots::{
    self,
    Slot, //
};

/// What a profile's entry asks of writes the policy allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinRule {
    /// The first write since reset fixes the value.
    pub pin: bool,
    /// Bits that, once set, the guest cannot clear.
    pub set_only: u64,
}

/// One vCPU's memory of one pinned or set-only MSR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinState {
    /// The pinned value, when `pinned`.
    pub value: u64,
    /// A write fixed `value`.
    pub pinned: bool,
    /// Set-only bits the vCPU has set.
    pub sticky: u64,
    /// [`first_look`] took the value the vCPU held, or the VMM wrote one.
    pub looked: bool,
}

impl PinState {
    /// A vCPU after reset: nothing pinned, no bit set.
    pub const RESET: Self = Self {
        value: 0,
        pinned: false,
        sticky: 0,
        looked: false,
    };
}

/// The value a vCPU holds in an MSR, as the hook knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Not read yet: the hook reads it when [`first_look`] asks.
    NotRead,
    /// The value.
    Value(u64),
    /// It cannot be read here (KVM refused, or the MSR's read might sleep).
    Unknown,
}

impl Held {
    /// From the boundary's `held_state` (`MSRGUARD_HELD_*`) and `held`.
    pub fn from_boundary(state: u8, value: u64) -> Self {
        match state {
            s if s == HeldState::Read as u8 => Self::Value(value),
            s if s == HeldState::Unknown as u8 => Self::Unknown,
            _ => Self::NotRead,
        }
    }

    /// The value, 0 if not known (set-only bits then bind nothing).
    pub fn or_zero(self) -> u64 {
        match self {
            Self::Value(v) => v,
            _ => 0,
        }
    }
}

/// [`Held`] across the C boundary (`MSRGUARD_HELD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HeldState {
    /// `held` was not read.
    NotRead = 0,
    /// `held` is the value.
    Read = 1,
    /// The hook could not read it.
    Unknown = 2,
}

/// msrguard's first look at `state`, before it decides a guest write:
/// a pinned MSR's held value pins it, unless 0 (its reset value: the write
/// pins). Later looks change nothing. False if the held value must be read
/// first (`held` is [`Held::NotRead`]): the hook reads it and asks again.
pub fn first_look(rule: PinRule, state: &mut PinState, held: Held) -> bool {
    if state.looked {
        return true;
    }
    match held {
        Held::NotRead => return false,
        Held::Value(v) if rule.pin && v != 0 => {
            state.value = v;
            state.pinned = true;
        }
        Held::Value(_) | Held::Unknown => {}
    }
    state.looked = true;
    true
}

/// The answer for a guest write the policy allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinCheck {
    /// The write proceeds; [`commit`] it once KVM accepted it.
    Allow,
    /// Vetoed: the MSR holds `pinned`, the write changes it.
    Pinned {
        /// The value the vCPU pinned.
        pinned: u64,
    },
    /// Vetoed: the write clears set-only bits the vCPU has set.
    SetOnly {
        /// The bits it would clear.
        cleared: u64,
    },
}

/// Checks a guest write of `value` under `rule`, given the vCPU's `state`;
/// KVM keeps the bits `kept` of it, which a pin compares (SVM keeps 32 of
/// SYSENTER_EIP for a guest with AMD's CPUID: the value a pin took from
/// what the vCPU held has only those, and Linux writes all 64 again).
/// Bounded, no allocation: safe in the hooks' atomic context.
pub fn check(rule: PinRule, state: &PinState, value: u64, kept: u64) -> PinCheck {
    if rule.pin && state.pinned && (value ^ state.value) & kept != 0 {
        return PinCheck::Pinned {
            pinned: state.value,
        };
    }
    let cleared = state.sticky & rule.set_only & !value;
    if cleared != 0 {
        return PinCheck::SetOnly { cleared };
    }
    PinCheck::Allow
}

/// Records a guest write [`check`] allowed, of `value`.
pub fn commit(rule: PinRule, state: &mut PinState, value: u64) {
    if rule.pin && !state.pinned {
        state.value = value;
        state.pinned = true;
    }
    state.sticky |= value & rule.set_only;
}

/// Records the VMM's write of `value` (`KVM_SET_MSRS`), of which KVM keeps
/// the bits `kept`: the pinned value keeps the pin, 0 clears it, another
/// value pins it; the set-only bits are the value's.
pub fn host_write(rule: PinRule, state: &mut PinState, value: u64, kept: u64) {
    state.looked = true;
    if rule.pin && !(state.pinned && (state.value ^ value) & kept == 0) {
        state.pinned = value != 0;
        state.value = value;
    }
    state.sticky = value & rule.set_only;
}

/// The pinned and set-only states of the vCPUs msrguard has seen write a
/// pinned MSR, over storage the caller allocates (`[VcpuPins::FREE; N]`):
/// the module keeps it under a spinlock, filled when a vCPU first writes a
/// pinned MSR (no allocation there: the storage is allocated at load) and
/// emptied of a VM's vCPUs when the VM goes or gets another profile.
///
/// Keyed by the VM's id (never reused, so a new VM at a destroyed one's
/// address inherits nothing) and the vCPU's id. Open addressing with
/// linear probing, deletion by backward shift; one slot stays free, so
/// every probe ends. Beyond the capacity a vCPU has no states: the module
/// never vetoes for it, and counts it.
pub struct PinTable<S> {
    slots: S,
    live: usize,
}

/// One vCPU's states, by the index of their MSR in its profile's pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuPins {
    /// `vm_id << 32 | vcpu_id`; 0: free (VM id 0 is never tracked).
    key: u64,
    /// The profile whose pins `states` are (a state's index names an MSR
    /// of that profile's pins only).
    profile: u8,
    states: [PinState; crate::profiles::MAX_PINS],
}

impl VcpuPins {
    /// A free slot, to fill the storage with.
    pub const FREE: Self = Self {
        key: 0,
        profile: 0,
        states: [PinState::RESET; crate::profiles::MAX_PINS],
    };
}

impl Slot for VcpuPins {
    fn key(&self) -> u64 {
        self.key
    }
}

impl<S: core::ops::DerefMut<Target = [VcpuPins]>> PinTable<S> {
    /// An empty table of `slots.len()` slots.
    pub fn new(mut slots: S) -> Self {
        slots.fill(VcpuPins::FREE);
        Self { slots, live: 0 }
    }

    /// vCPUs it holds now.
    pub fn live(&self) -> usize {
        self.live
    }

    fn key(vm_id: u32, vcpu_id: u32) -> u64 {
        (u64::from(vm_id) << 32) | u64::from(vcpu_id)
    }

    fn home(&self, key: u64) -> usize {
        slots::home(key, self.slots.len())
    }

    /// The states of vCPU `vcpu_id` of VM `vm_id` under profile `profile`,
    /// as they were (all [`PinState::RESET`] for a vCPU seen first now, or
    /// whose states were another profile's: a write decided under the VM's
    /// previous profile may land after root's change); None for VM id 0 or
    /// a full table. Bounded: safe in the hooks' atomic context.
    pub fn states(
        &mut self,
        vm_id: u32,
        vcpu_id: u32,
        profile: u8,
    ) -> Option<&mut [PinState; crate::profiles::MAX_PINS]> {
        if vm_id == 0 {
            return None;
        }
        let key = Self::key(vm_id, vcpu_id);
        let len = self.slots.len();
        let mut i = self.home(key);
        for _ in 0..len {
            let slot_key = self.slots.get(i)?.key;
            if slot_key == key {
                let slot = self.slots.get_mut(i)?;
                if slot.profile != profile {
                    *slot = VcpuPins {
                        key,
                        profile,
                        ..VcpuPins::FREE
                    };
                }
                return Some(&mut slot.states);
            }
            if slot_key == 0 {
                if self.live + 1 >= len {
                    return None;
                }
                self.live += 1;
                let slot = self.slots.get_mut(i)?;
                *slot = VcpuPins {
                    key,
                    profile,
                    ..VcpuPins::FREE
                };
                return Some(&mut slot.states);
            }
            i = (i + 1) % len;
        }
        None
    }

    /// Forgets every vCPU of VM `vm_id`: the VM went, or got another
    /// profile (whose states start unlooked, [`first_look`]). Bounded by
    /// the table.
    pub fn forget_vm(&mut self, vm_id: u32) {
        let mut i = 0;
        // A removal may shift a later entry into slot i: look at it again.
        while i < self.slots.len() {
            match self.slots.get(i) {
                Some(s) if s.key != 0 && (s.key >> 32) as u32 == vm_id => {
                    slots::remove(&mut self.slots, i, VcpuPins::FREE);
                    self.live -= 1;
                }
                _ => i += 1,
            }
        }
    }
}
