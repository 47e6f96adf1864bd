// SPDX-License-Identifier: GPL-2.0

//! The profiles compiled into the module: per VM, which policy table applies
//! and which MSRs are pinned or set-only ([`crate::pins`]).
//!
//! `core`-only: the generator writes the module's [`Profile`] list from the
//! policy file and `policy/profiles/*.toml` (profile 0 is the policy itself,
//! `default`); the module gives each VM one when KVM creates it, by the
//! creating task's cgroup path ([`for_cgroup`]), and root may change it
//! (`msrguard profile set`); the host tests check the rules.

use crate::{
    pins::PinRule,
    policy::Entry, //
};

/// Profiles a module holds at most, `default` included: a VM's profile is
/// one byte in its event records.
pub const MAX_PROFILES: usize = 8;

/// Pinned or set-only MSRs a profile has at most: each vCPU of a VM with
/// the profile keeps this many states.
pub const MAX_PINS: usize = 16;

/// The profile every VM has unless a rule or root gives it another.
pub const DEFAULT: u8 = 0;

/// One pinned or set-only MSR of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinEntry {
    /// The MSR.
    pub msr: u32,
    /// What the profile asks of its writes.
    pub rule: PinRule,
}

/// One profile, as the generator writes it.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Its name: `[a-z0-9-]`, at most 15 bytes; `default` for profile 0.
    pub name: &'static str,
    /// Its policy table: the policy's, with the profile's own entries laid
    /// over it.
    pub table: &'static [Entry],
    /// VMs whose creating task's cgroup path (on the unified hierarchy,
    /// from its root) starts with one of these get this profile.
    pub cgroup_prefixes: &'static [&'static str],
    /// Its pinned and set-only MSRs, sorted by MSR, at most [`MAX_PINS`].
    pub pins: &'static [PinEntry],
}

/// The profile of a VM created by a task in the cgroup `path`: the first
/// profile one of whose prefixes `path` starts with (the checker refuses
/// overlapping prefixes, so there is at most one), else [`DEFAULT`]. A
/// byte-wise prefix, as the checker compares them: `/machine.slice/`
/// matches the slice's children, `/machine.slice` also `/machine.slice2`.
pub fn for_cgroup(profiles: &[Profile], path: &[u8]) -> u8 {
    profiles
        .iter()
        .take(MAX_PROFILES)
        .position(|p| {
            p.cgroup_prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix.as_bytes()))
        })
        .map_or(DEFAULT, |i| i as u8)
}

/// Profile `index`, or [`DEFAULT`]'s for an index the module does not have
/// (a VM's byte is always one it gave, but the hooks never index blindly).
pub fn get(profiles: &[Profile], index: u8) -> Option<&Profile> {
    profiles
        .get(usize::from(index))
        .or_else(|| profiles.get(usize::from(DEFAULT)))
}

/// Where `msr` is among `pins` (the index of its state in a vCPU's pin
/// states) and its rule, if the profile pins it or has set-only bits in it.
pub fn pin_of(pins: &[PinEntry], msr: u32) -> Option<(usize, PinRule)> {
    let i = pins.binary_search_by_key(&msr, |p| p.msr).ok()?;
    pins.get(i).map(|p| (i, p.rule))
}

/// Whether KVM may stop intercepting `msr` for this kind of access for a
/// VM of profile `profile`, one of `profiles`: every profile's table allows
/// every such access whatever the value (in audit mode too, see
/// [`crate::guard::may_pass_through`]), and for a write `profile` neither
/// pins the MSR nor has set-only bits in it (its writes must reach the
/// hooks; reads still pass through).
///
/// Every profile's, not only the VM's: a profile change makes KVM
/// recompute a vCPU's intercepts, but not all of them. VMX takes its LBR
/// MSRs' pass-through back only when the guest's LBR use ends, and SVM
/// skips an LBR recomputation that agrees with the state it cached, so a
/// VM moved off a profile that allows them would keep reading and writing
/// them unseen. An MSR only some profiles allow stays intercepted, and
/// KVM emulates the access (the LBR MSRs' included) once the hook allowed
/// it.
pub fn may_pass_through(profiles: &[Profile], profile: &Profile, msr: u32, is_write: bool) -> bool {
    profiles
        .iter()
        .take(MAX_PROFILES)
        .all(|p| crate::guard::may_pass_through(p.table, msr, is_write))
        && crate::guard::may_pass_through(profile.table, msr, is_write)
        && !(is_write && pin_of(profile.pins, msr).is_some())
}
