// SPDX-License-Identifier: GPL-2.0
//! The `mode` and `lock` parameters' rules (`rust/core/mode.rs`).

use msrguard_core::mode::{set_lock, set_mode, LockStep, Mode, ModeStep, Refusal};

fn mode(audit: bool, locked: bool) -> Mode {
    Mode { audit, locked }
}

#[test]
fn audit_arms_first_and_enforce_disarms_last() {
    assert_eq!(
        set_mode(mode(false, false), true),
        Ok(ModeStep::ArmThenAudit)
    );
    assert_eq!(
        set_mode(mode(true, false), false),
        Ok(ModeStep::EnforceThenDisarm)
    );
    assert_eq!(set_mode(mode(true, false), true), Ok(ModeStep::Nothing));
    assert_eq!(set_mode(mode(false, false), false), Ok(ModeStep::Nothing));
}

#[test]
fn a_locked_module_is_never_weakened_nor_unlocked() {
    assert_eq!(
        set_mode(mode(false, true), true),
        Err(Refusal::WeakenLocked)
    );
    assert_eq!(set_mode(mode(false, true), false), Ok(ModeStep::Nothing));
    assert_eq!(set_lock(mode(false, true), false), Err(Refusal::Unlock));
    assert_eq!(set_lock(mode(false, true), true), Ok(LockStep::Nothing));
    assert!(Refusal::WeakenLocked.message().is_some());
    assert_eq!(Refusal::Unlock.message(), None);
}

#[test]
fn no_lock_in_audit_mode() {
    assert_eq!(set_lock(mode(true, false), true), Err(Refusal::LockInAudit));
    assert_eq!(set_lock(mode(false, false), true), Ok(LockStep::Lock));
    assert_eq!(set_lock(mode(false, false), false), Ok(LockStep::Nothing));
}

/// Every sequence of changes from load keeps the two promises: never locked
/// while auditing, and once locked, locked and enforcing for good.
#[test]
fn every_sequence_keeps_the_promises() {
    // Changes: 0 mode=enforce, 1 mode=audit, 2 lock=0, 3 lock=1.
    for seq in 0..4u32.pow(6) {
        let mut now = Mode::default();
        let mut was_locked = false;
        let mut s = seq;
        for _ in 0..6 {
            let change = s % 4;
            s /= 4;
            match change {
                0 | 1 => {
                    if let Ok(step) = set_mode(now, change == 1) {
                        now.audit = match step {
                            ModeStep::Nothing => now.audit,
                            ModeStep::ArmThenAudit => true,
                            ModeStep::EnforceThenDisarm => false,
                        };
                    }
                }
                _ => {
                    if let Ok(LockStep::Lock) = set_lock(now, change == 3) {
                        now.locked = true;
                    }
                }
            }
            assert!(!(now.locked && now.audit), "{seq}: locked in audit mode");
            assert!(!was_locked || now.locked, "{seq}: unlocked");
            was_locked = now.locked;
        }
    }
}
