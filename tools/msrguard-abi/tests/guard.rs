// SPDX-License-Identifier: GPL-2.0
//! The guard's state machine (`rust/guard.rs`): every combination of hook,
//! mode, VMM and policy verdict, against the rules in its documentation.

use msrguard_abi::guard::*;
use msrguard_abi::policy::*;
use msrguard_abi::record::{AccessStatus, Reason};
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

/// Bitmaps built as the generator builds them (bit = `always_allowed`).
fn bitmaps(table: &[Entry]) -> Vec<AllowBitmap> {
    AllowBitmap::RANGES
        .iter()
        .map(|&(base, len)| {
            let bits = |w| {
                let mut words = vec![0u64; len.div_ceil(64) as usize];
                for i in 0..len {
                    if always_allowed(table, base + i, w) {
                        words[(i / 64) as usize] |= 1 << (i % 64);
                    }
                }
                &*Box::leak(words.into_boxed_slice())
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
        let fast = bitmaps(&t);
        if f.host_initiated || decide(&t, f.msr, f.is_write, f.value).reason.is_none() {
            prop_assert_eq!(on_access(&t, &fast, &f), Answer::PROCEED);
        }
    }

    #[test]
    fn what_proceeds_regardless_proceeds_in_every_state(f in facts_strategy()) {
        let t = table();
        let fast = bitmaps(&t);
        if proceeds_regardless(&fast, f.msr, f.is_write) {
            prop_assert_eq!(on_access(&t, &fast, &f), Answer::PROCEED);
            prop_assert!(decide(&t, f.msr, f.is_write, f.value).reason.is_none());
        }
    }

    #[test]
    fn audit_never_vetoes_and_records_each_objection_once(f in facts_strategy()) {
        let t = table();
        let fast = bitmaps(&t);
        let f = Facts { audit: true, host_initiated: false, ..f };
        let verdict = decide(&t, f.msr, f.is_write, f.value);
        let answers: Vec<Answer> = hooks_seeing(&f).iter().map(|h| on_access(&t, &fast, h)).collect();
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
        let fast = bitmaps(&t);
        let f = Facts { audit: false, host_initiated: false, ..f };
        let a = on_access(&t, &fast, &f);
        let verdict = decide(&t, f.msr, f.is_write, f.value);
        let Some(reason) = verdict.reason else {
            prop_assert_eq!(a, Answer::PROCEED);
            return Ok(());
        };
        if f.hook == Hook::ReadCompletion {
            prop_assert_eq!(a, Answer::PROCEED);
            return Ok(());
        }
        prop_assert_eq!(a.record, RecordWhen::Now);
        prop_assert_eq!(a.reason, reason);
        prop_assert_eq!(a.zero_read, !f.is_write);
        let expected = match (verdict.action, reason) {
            (Action::Ignore, _) => KvmReturn::Succeed,
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
        let fast = bitmaps(&t);
        let f = Facts { hook: Hook::ReadCompletion, read_completion_armed: false, ..f };
        prop_assert_eq!(on_access(&t, &fast, &f), Answer::PROCEED);
    }

    #[test]
    fn completed_reads_carry_the_value_only_on_success(ret in -5i32..5, data: u64) {
        prop_assert_eq!(completed_read_value(ret, data), if ret == 0 { data } else { 0 });
    }
}

#[test]
fn unknown_msr_answers_as_kvm_would() {
    let t = table();
    let fast = bitmaps(&t);
    let f = Facts {
        hook: Hook::Decision,
        msr: 0x4b56_4dff,
        is_write: false,
        value: 0,
        host_initiated: false,
        audit: false,
        vmm_takes_filter_exits: true,
        read_completion_armed: false,
    };
    let a = on_access(&t, &fast, &f);
    assert_eq!(a.kvm, KvmReturn::FailUnsupported);
    assert_eq!(a.reason, Reason::Unknown);
}

#[test]
fn masked_write_inside_the_mask_is_allowed_outside_vetoed() {
    let t = table();
    let fast = bitmaps(&t);
    let f = |value| Facts {
        hook: Hook::Decision,
        msr: 0x40,
        is_write: true,
        value,
        host_initiated: false,
        audit: false,
        vmm_takes_filter_exits: false,
        read_completion_armed: false,
    };
    assert_eq!(on_access(&t, &fast, &f(0x7f)), Answer::PROCEED);
    let a = on_access(&t, &fast, &f(0x100));
    assert_eq!((a.kvm, a.reason), (KvmReturn::Fail, Reason::WriteMask));
}
