// SPDX-License-Identifier: GPL-2.0

//! The `mode` and `lock` parameters' rules. `core`-only: the module applies
//! the steps (`rust/module/ffi.rs`), the host tests the rules.
//!
//! - `mode=audit` reports forbidden accesses and lets them through; the
//!   hook audit mode needs (the read completion) is armed before audit
//!   starts and disarmed after it ends, so enforce never runs without
//!   its hooks.
//! - `lock=1` is for good: no unload and no weaker mode until reboot. A
//!   module is never locked in audit mode, which would veto nothing until
//!   an enforce nobody may have planned.

/// The parameters' state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// `mode=audit`.
    pub audit: bool,
    /// `lock=1` was set.
    pub locked: bool,
}

/// A change the rules refuse (`EPERM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Audit asked of a locked module.
    WeakenLocked,
    /// A lock asked in audit mode.
    LockInAudit,
    /// An unlock asked of a locked module.
    Unlock,
}

impl Refusal {
    /// The kernel log line, if the refusal is logged (an unlock is only
    /// refused: asking it is not news).
    pub fn message(self) -> Option<&'static str> {
        match self {
            Refusal::WeakenLocked => {
                Some("mode: refusing to weaken enforce to audit: msrguard is locked")
            }
            Refusal::LockInAudit => {
                Some("lock: refusing to lock in audit mode: set mode=enforce first")
            }
            Refusal::Unlock => None,
        }
    }
}

/// What setting `mode` takes, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeStep {
    /// Already so.
    Nothing,
    /// Arm the audit hooks, then audit (if they cannot be armed: nothing).
    ArmThenAudit,
    /// Enforce, then disarm the audit hooks.
    EnforceThenDisarm,
}

/// What setting `lock` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockStep {
    /// Already so, or `lock=0` while unlocked.
    Nothing,
    /// Lock: pin the module for good.
    Lock,
}

/// The step from `now` to `mode=audit` (`audit`) or `mode=enforce`.
pub fn set_mode(now: Mode, audit: bool) -> Result<ModeStep, Refusal> {
    match (now.audit, audit) {
        (true, true) | (false, false) => Ok(ModeStep::Nothing),
        (false, true) if now.locked => Err(Refusal::WeakenLocked),
        (false, true) => Ok(ModeStep::ArmThenAudit),
        (true, false) => Ok(ModeStep::EnforceThenDisarm),
    }
}

/// The step from `now` to `lock=lock`.
pub fn set_lock(now: Mode, lock: bool) -> Result<LockStep, Refusal> {
    match (now.locked, lock) {
        (true, false) => Err(Refusal::Unlock),
        (true, true) | (false, false) => Ok(LockStep::Nothing),
        (false, true) if now.audit => Err(Refusal::LockInAudit),
        (false, true) => Ok(LockStep::Lock),
    }
}
