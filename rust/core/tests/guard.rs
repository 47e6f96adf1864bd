// SPDX-License-Identifier: GPL-2.0
//! The guard's state machine (`rust/guard.rs`): every combination of hook,
//! mode, VMM and policy verdict, against the rules in its documentation.

use msrguard_core::guard::*;
use msrguard_core::policy::*;
use msrguard_core::record::{AccessStatus, Reason};
use proptest::prelude::*;

/// A small policy exercising every action: allow, gp, ignore, write mask.
fn table() -> Vec<Entry> {
    let e = |first, last, read, write, mask: Option<u64>| Entry {
        first,
        last,
        name: "TEST",
        read,
        write,
        write_mask: mask.unwrap_or(0),
        has_write_mask: mask.is_some(),
    };
    vec![
        e(0x10, 0x10, Action::Allow, Action::Allow, None),
        e(0x20, 0x20, Action::Allow, Action::Gp, None),
        e(0x30, 0x30, Action::Ignore, Action::Ignore, None),
        e(0x40, 0x40, Action::Allow, Action::Gp, Some(0xff)),
        e(0xc000_0080, 0xc000_0080, Action::Allow, Action::Allow, None),
        e(0x4000_0000, 0x4000_00ff, Action::Gp, Action::Ignore, None),
    ]
}

/// The guest's WRMSR of `value` to `msr`, as the decision hook sees it in
/// enforce mode.
fn guest_write(msr: u32, value: u64) -> Facts {
    Facts {
        hook: Hook::Decision,
        msr,
        is_write: true,
        value,
        host_initiated: false,
        audit: false,
        vmm_takes_filter_exits: false,
        read_completion_armed: false,
        kept_bits: u64::MAX,
    }
}

/// Bitmaps built as the generator builds them (bit = `always_allowed`).
fn bitmaps(table: &[Entry]) -> Vec<AllowBitmap> {
    AllowBitmap::BASES
        .iter()
        .map(|&base| {
            let bits = |w| {
                let mut words = [0u64; AllowBitmap::WORDS];
                for i in 0..AllowBitmap::SPAN {
                    if always_allowed(table, base + i, w) {
                        words[(i / 64) as usize] |= 1 << (i % 64);
                    }
                }
                words
            };
            AllowBitmap {
                base,
                read: bits(false),
                write: bits(true),
            }
        })
        .collect()
}

fn msr_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![
            0x10u32,
            0x20,
            0x30,
            0x40,
            0x41,
            0xc000_0080,
            0x4000_0000,
            0x4000_0042,
            0x4b56_4dff,
            0x1fff,
            0x2000,
            0xc000_1fff,
            0xc001_2000,
        ]),
        any::<u32>(),
    ]
}

fn facts_strategy() -> impl Strategy<Value = Facts> {
    (
        any::<bool>(),
        msr_strategy(),
        any::<bool>(),
        prop_oneof![Just(0u64), Just(0xff), Just(0x100), any::<u64>()],
        any::<[bool; 4]>(),
    )
        .prop_map(|(completion, msr, is_write, value, b)| Facts {
            hook: if completion {
                Hook::ReadCompletion
            } else {
                Hook::Decision
            },
            msr,
            is_write,
            value,
            host_initiated: b[0],
            audit: b[1],
            vmm_takes_filter_exits: b[2],
            read_completion_armed: b[3],
            kept_bits: u64::MAX,
        })
}

/// The hooks that see an access: the decision hook always, the completion
/// hook for reads while it is armed.
fn hooks_seeing(f: &Facts) -> Vec<Facts> {
    let mut v = vec![Facts {
        hook: Hook::Decision,
        ..*f
    }];
    if !f.is_write && f.read_completion_armed {
        v.push(Facts {
            hook: Hook::ReadCompletion,
            ..*f
        });
    }
    v
}

proptest! {
    #[test]
    fn fast_path_agrees_with_the_table(msr in msr_strategy(), is_write: bool, value: u64) {
        let t = table();
        let fast = bitmaps(&t);
        prop_assert_eq!(decide_fast(&t, &fast, msr, is_write, value), decide(&t, msr, is_write, value));
    }

    #[test]
    fn allowed_or_host_accesses_proceed_without_event(f in facts_strategy()) {
        let t = table();
        if f.host_initiated || decide(&t, f.msr, f.is_write, f.value).reason.is_none() {
            prop_assert_eq!(on_access(&t, &f), Answer::PROCEED);
        }
    }

    #[test]
    fn what_proceeds_regardless_proceeds_in_every_state(f in facts_strategy()) {
        let t = table();
        let fast = bitmaps(&t);
        if proceeds_regardless(&fast, f.msr, f.is_write) {
            prop_assert_eq!(on_access(&t, &f), Answer::PROCEED);
            prop_assert!(decide(&t, f.msr, f.is_write, f.value).reason.is_none());
        }
    }

    #[test]
    fn audit_never_vetoes_and_records_each_objection_once(f in facts_strategy()) {
        let t = table();
        let f = Facts { audit: true, host_initiated: false, ..f };
        let verdict = decide(&t, f.msr, f.is_write, f.value);
        let answers: Vec<Answer> = hooks_seeing(&f).iter().map(|h| on_access(&t, h)).collect();
        let recorded: Vec<&Answer> = answers.iter().filter(|a| a.record != RecordWhen::Never).collect();
        for a in &answers {
            prop_assert_eq!(a.kvm, KvmReturn::Proceed);
            prop_assert!(!a.zero_read);
        }
        match verdict.reason {
            None => prop_assert!(recorded.is_empty()),
            Some(reason) => {
                prop_assert_eq!(recorded.len(), 1);
                prop_assert_eq!(recorded[0].status, AccessStatus::AuditAllowed);
                prop_assert_eq!(recorded[0].reason, reason);
                // A read is recorded with its value when the completion hook sees it.
                let at_completion = !f.is_write && f.read_completion_armed;
                prop_assert_eq!(
                    recorded[0].record,
                    if at_completion { RecordWhen::AtCompletion } else { RecordWhen::Now }
                );
            }
        }
    }

    #[test]
    fn enforce_vetoes_at_the_decision_hook_only(f in facts_strategy()) {
        let t = table();
        let f = Facts { audit: false, host_initiated: false, ..f };
        let a = on_access(&t, &f);
        let verdict = decide(&t, f.msr, f.is_write, f.value);
        let Some(reason) = verdict.reason else {
            prop_assert_eq!(a, Answer::PROCEED);
            return Ok(());
        };
        if f.hook == Hook::ReadCompletion {
            prop_assert_eq!(a, Answer::PROCEED);
            return Ok(());
        }
        let ignore = verdict.action == Action::Ignore;
        prop_assert_eq!(a.record, if ignore { RecordWhen::IfKvmSucceeds } else { RecordWhen::Now });
        prop_assert_eq!(a.reason, reason);
        prop_assert_eq!(a.zero_read, !f.is_write && !ignore);
        let expected = match (verdict.action, reason) {
            (Action::Ignore, _) => KvmReturn::SucceedIfKvmDoes,
            (_, Reason::Unknown) => KvmReturn::FailUnsupported,
            _ if f.vmm_takes_filter_exits => KvmReturn::FailFiltered,
            _ => KvmReturn::Fail,
        };
        prop_assert_eq!(a.kvm, expected);
        prop_assert_eq!(
            a.status,
            if verdict.action == Action::Ignore { AccessStatus::BlockedIgnored } else { AccessStatus::BlockedGp }
        );
    }

    /// A completion hook that is not (yet, or any more) armed never
    /// records: the decision hook, which reads the same flag, does.
    #[test]
    fn an_unarmed_completion_hook_never_records(f in facts_strategy()) {
        let t = table();
        let f = Facts { hook: Hook::ReadCompletion, read_completion_armed: false, ..f };
        prop_assert_eq!(on_access(&t, &f), Answer::PROCEED);
    }

    /// A guard only takes away: for every access and every answer KVM
    /// could give (0: success; 1, KVM_MSR_RET_UNSUPPORTED and _FILTERED:
    /// failures), what the guest gets with msrguard is KVM's answer, or a
    /// veto of KVM's success (a failure, a zeroed read, a dropped write).
    /// Never a success where KVM failed.
    #[test]
    fn a_guard_never_turns_kvm_failure_into_success(
        f in facts_strategy(),
        kvm_ret in prop_oneof![Just(0), Just(1), Just(0x7ffffffe), Just(0x7fffffff), -5i32..5],
    ) {
        let t = table();
        for f in hooks_seeing(&f) {
            let a = on_access(&t, &f);
            let got = match a.kvm {
                KvmReturn::Proceed => kvm_ret,
                KvmReturn::SucceedIfKvmDoes => {
                    let after = after_kvm(kvm_ret, f.is_write);
                    prop_assert_eq!(after.record, kvm_ret == 0);
                    prop_assert_eq!(after.zero_read, kvm_ret == 0 && !f.is_write);
                    after.ret
                }
                KvmReturn::Fail | KvmReturn::FailFiltered | KvmReturn::FailUnsupported => {
                    prop_assert!(!a.zero_read || !f.is_write);
                    -1
                }
            };
            if kvm_ret != 0 {
                prop_assert_ne!(got, 0, "{:?}: KVM refused ({}), the guest got success", a, kvm_ret);
            }
            if a.kvm == KvmReturn::SucceedIfKvmDoes && kvm_ret != 0 {
                prop_assert_eq!(got, kvm_ret, "KVM's own answer, not another failure");
            }
        }
    }

    #[test]
    fn completed_reads_carry_the_value_only_on_success(ret in -5i32..5, data: u64) {
        prop_assert_eq!(completed_read_value(ret, data), if ret == 0 { data } else { 0 });
    }
}

#[test]
fn unknown_msr_answers_as_kvm_would() {
    let t = table();
    let f = Facts {
        hook: Hook::Decision,
        msr: 0x4b56_4dff,
        is_write: false,
        value: 0,
        host_initiated: false,
        audit: false,
        vmm_takes_filter_exits: true,
        read_completion_armed: false,
        kept_bits: u64::MAX,
    };
    let a = on_access(&t, &f);
    assert_eq!(a.kvm, KvmReturn::FailUnsupported);
    assert_eq!(a.reason, Reason::Unknown);
}

#[test]
fn masked_write_inside_the_mask_is_allowed_outside_vetoed() {
    let t = table();
    let f = |value| guest_write(0x40, value);
    assert_eq!(on_access(&t, &f(0x7f)), Answer::PROCEED);
    let a = on_access(&t, &f(0x100));
    assert_eq!((a.kvm, a.reason), (KvmReturn::Fail, Reason::WriteMask));
}

mod pinned {
    use msrguard_core::guard::*;
    use msrguard_core::pins::{Held, PinRule, PinState};
    use msrguard_core::record::{AccessStatus, Reason};

    const LSTAR: u32 = 0xc000_0082;
    const EFER: u32 = 0xc000_0080;
    const NXE: u64 = 1 << 11;
    const PIN: PinRule = PinRule {
        pin: true,
        set_only: 0,
    };
    const NXE_SET_ONLY: PinRule = PinRule {
        pin: false,
        set_only: NXE,
    };

    fn write(msr: u32, value: u64) -> Facts {
        super::guest_write(msr, value)
    }

    /// A decision on a state msrguard looked at (or looks at now, with
    /// `held` the value the vCPU holds).
    fn decide(rule: PinRule, s: &mut PinState, held: u64, f: &Facts) -> Answer {
        on_pinned_write(rule, s, Held::Value(held), f).expect("the held value was given")
    }

    #[test]
    fn the_first_look_asks_for_the_held_value_and_pins_it() {
        let mut s = PinState::RESET;
        // Not read yet: no answer, nothing changed.
        assert_eq!(
            on_pinned_write(PIN, &mut s, Held::NotRead, &write(LSTAR, 0xb000)),
            None
        );
        assert_eq!(s, PinState::RESET);
        // The vCPU holds 0xa000 (root gave a running VM this profile):
        // pinned to it, the attacker's 0xb000 vetoed, 0xa000 passes.
        let a = on_pinned_write(PIN, &mut s, Held::Value(0xa000), &write(LSTAR, 0xb000));
        assert_eq!(a.map(|a| a.reason), Some(Reason::Pinned));
        assert_eq!(
            on_pinned_write(PIN, &mut s, Held::NotRead, &write(LSTAR, 0xa000)),
            Some(Answer::PROCEED)
        );
    }

    #[test]
    fn a_held_zero_or_unknown_value_leaves_the_pin_to_the_write() {
        for held in [Held::Value(0), Held::Unknown] {
            let mut s = PinState::RESET;
            assert_eq!(
                on_pinned_write(PIN, &mut s, held, &write(LSTAR, 0xb000)),
                Some(Answer::PROCEED)
            );
            assert_eq!((s.pinned, s.value), (true, 0xb000));
        }
    }

    #[test]
    fn a_vmm_write_first_needs_no_held_value() {
        let mut s = PinState::RESET;
        let host = Facts {
            host_initiated: true,
            ..write(LSTAR, 0xc000)
        };
        assert_eq!(
            on_pinned_write(PIN, &mut s, Held::NotRead, &host),
            Some(Answer::PROCEED)
        );
        let a = on_pinned_write(PIN, &mut s, Held::NotRead, &write(LSTAR, 0xa000));
        assert_eq!(a.map(|a| a.reason), Some(Reason::Pinned));
    }

    #[test]
    fn a_guest_changing_a_pinned_value_gets_gp_and_an_event() {
        let mut s = PinState::RESET;
        assert_eq!(
            decide(PIN, &mut s, 0, &write(LSTAR, 0xa000)),
            Answer::PROCEED
        );
        assert_eq!(
            decide(PIN, &mut s, 0xa000, &write(LSTAR, 0xa000)),
            Answer::PROCEED
        );
        let a = decide(PIN, &mut s, 0xa000, &write(LSTAR, 0xb000));
        assert_eq!(
            (a.kvm, a.record, a.status, a.reason),
            (
                KvmReturn::Fail,
                RecordWhen::Now,
                AccessStatus::BlockedGp,
                Reason::Pinned
            )
        );
        // A VMM that asked for filter exits gets one.
        let f = Facts {
            vmm_takes_filter_exits: true,
            ..write(LSTAR, 0xb000)
        };
        assert_eq!(decide(PIN, &mut s, 0xa000, &f).kvm, KvmReturn::FailFiltered);
        // Audit mode reports it and lets it through; the pin stays.
        let audit = Facts {
            audit: true,
            ..write(LSTAR, 0xb000)
        };
        let a = decide(PIN, &mut s, 0xa000, &audit);
        assert_eq!(
            (a.kvm, a.status, a.reason),
            (
                KvmReturn::Proceed,
                AccessStatus::AuditAllowed,
                Reason::Pinned
            )
        );
        assert_eq!((s.pinned, s.value), (true, 0xa000));
    }

    #[test]
    fn the_vmms_writes_move_the_pin_and_are_never_vetoed() {
        let mut s = PinState::RESET;
        decide(PIN, &mut s, 0, &write(LSTAR, 0xa000));
        let host = |v| Facts {
            host_initiated: true,
            ..write(LSTAR, v)
        };
        // A migration target restoring another value: pinned there.
        assert_eq!(decide(PIN, &mut s, 0xa000, &host(0xc000)), Answer::PROCEED);
        assert_eq!(
            decide(PIN, &mut s, 0xc000, &write(LSTAR, 0xa000)).reason,
            Reason::Pinned
        );
        // A reset: 0 unpins, the guest's next write pins again.
        assert_eq!(decide(PIN, &mut s, 0xc000, &host(0)), Answer::PROCEED);
        assert_eq!(
            decide(PIN, &mut s, 0, &write(LSTAR, 0xb000)),
            Answer::PROCEED
        );
        assert_eq!((s.pinned, s.value), (true, 0xb000));
    }

    #[test]
    fn a_set_only_bit_the_msr_holds_cannot_be_cleared() {
        let mut s = PinState::RESET;
        let a = decide(NXE_SET_ONLY, &mut s, 0x501 | NXE, &write(EFER, 0x501));
        assert_eq!((a.kvm, a.reason), (KvmReturn::Fail, Reason::SetOnly));
        // Setting it, keeping it, or a vCPU whose EFER does not hold it
        // (after a reset through KVM_SET_SREGS, or INIT): allowed.
        assert_eq!(
            decide(NXE_SET_ONLY, &mut s, 0x501, &write(EFER, 0x501 | NXE)),
            Answer::PROCEED
        );
        assert_eq!(
            decide(NXE_SET_ONLY, &mut s, 0x501 | NXE, &write(EFER, 0x501 | NXE)),
            Answer::PROCEED
        );
        assert_eq!(
            decide(NXE_SET_ONLY, &mut s, 0, &write(EFER, 0x100)),
            Answer::PROCEED
        );
    }

    /// RSM leaves SMM by writing EFER 0 first (OVMF's SMI handler runs with
    /// NXE set), then the saved EFER, which in a 32-bit firmware phase has
    /// neither LME nor NXE: a guard that vetoed either would triple-fault
    /// the guest. A write without LME leaves long mode: not bound.
    #[test]
    fn a_write_leaving_long_mode_may_clear_nxe() {
        let mut s = PinState::RESET;
        assert_eq!(
            decide(NXE_SET_ONLY, &mut s, 0x500 | NXE, &write(EFER, 0)),
            Answer::PROCEED
        );
        assert_eq!(
            decide(NXE_SET_ONLY, &mut s, NXE, &write(EFER, 0x1)),
            Answer::PROCEED
        );
        // Staying in long mode without NXE: vetoed.
        let a = decide(NXE_SET_ONLY, &mut s, 0x500 | NXE, &write(EFER, 0x500));
        assert_eq!(a.reason, Reason::SetOnly);
    }
}
