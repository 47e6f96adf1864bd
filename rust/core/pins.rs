// SPDX-License-Identifier: GPL-2.0

//! Pins and set-only bits: what a hardened guest set at boot, held per vCPU.
//!
//! `core`-only: the module keeps one [`PinState`] per pinned or set-only
//! entry of a VM's profile for each of its vCPUs, allocated when the vCPU
//! is created; the host tests check every rule here.
//!
//! - A pinned MSR's first guest write since the vCPU's reset fixes its
//!   value; writing that value again is allowed, any other value is vetoed
//!   ([`PinCheck::Pinned`]).
//! - A set-only bit, once set on the vCPU, cannot be cleared by the guest
//!   ([`PinCheck::SetOnly`]).
//! - The state moves only when KVM accepted the write ([`commit`]), with the
//!   value the MSR then holds (KVM keeps only the low half of SYSENTER_EIP
//!   for an AMD guest): a write KVM refuses (a non-canonical LSTAR, a
//!   reserved EFER bit) pins nothing.
//! - The VMM's own writes (`KVM_SET_MSRS`) ([`host_write`]): the pinned
//!   value again keeps the pin (QEMU writes the current values back
//!   whenever it syncs the vCPU's registers); 0, the reset value of every
//!   MSR a profile may pin, unpins it (a VMM reset: the guest pins it again
//!   as it boots); any other value pins it (a migration target restoring
//!   the guest). A guest pinned at 0 (Linux without 32-bit emulation
//!   writes SYSENTER_EIP 0) is restored elsewhere unpinned, and stays
//!   pinned at 0 across a VMM reset. Only MSRs whose reset value is 0 may
//!   be pinned (the checker's rule).
//! - A vCPU reset (KVM's, not INIT: the guest can send INIT to its own
//!   vCPUs) clears the state ([`PinState::RESET`]).

/// What a profile's entry asks of writes the policy allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinRule {
    /// The first write since reset fixes the value.
    pub pin: bool,
    /// Bits that, once set, the guest cannot clear.
    pub set_only: u64,
}

impl PinRule {
    /// No pin, no set-only bit: the entry's writes are the policy's alone.
    pub const NONE: Self = Self {
        pin: false,
        set_only: 0,
    };

    /// Whether the rule asks for anything.
    pub const fn is_some(&self) -> bool {
        self.pin || self.set_only != 0
    }
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
}

impl PinState {
    /// A vCPU after reset: nothing pinned, no bit set.
    pub const RESET: Self = Self {
        value: 0,
        pinned: false,
        sticky: 0,
    };
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

/// Checks a guest write of `value` under `rule`, given the vCPU's `state`.
/// Bounded, no allocation: safe in the hooks' atomic context.
pub fn check(rule: PinRule, state: &PinState, value: u64) -> PinCheck {
    if rule.pin && state.pinned && value != state.value {
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

/// Records a guest write KVM accepted (after [`check`] allowed it): `value`
/// is what the MSR holds after it.
pub fn commit(rule: PinRule, state: &mut PinState, value: u64) {
    if rule.pin && !state.pinned {
        state.value = value;
        state.pinned = true;
    }
    state.sticky |= value & rule.set_only;
}

/// Records the VMM's write of `value` (`KVM_SET_MSRS`): the pinned value
/// keeps the pin, 0 clears it, another value pins it; the set-only bits
/// are the value's.
pub fn host_write(rule: PinRule, state: &mut PinState, value: u64) {
    if rule.pin && !(state.pinned && state.value == value) {
        state.pinned = value != 0;
        state.value = value;
    }
    state.sticky = value & rule.set_only;
}
