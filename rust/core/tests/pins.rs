// SPDX-License-Identifier: GPL-2.0
//! Pins and set-only bits (`rust/core/pins.rs`): the rules one by one, and
//! against a model over any sequence of guest and VMM writes.

use msrguard_core::pins::{
    check, commit, first_look, host_write, Held, PinCheck, PinRule, PinState,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const PIN: PinRule = PinRule {
    pin: true,
    set_only: 0,
};
const NXE: u64 = 1 << 11;
const SET_ONLY: PinRule = PinRule {
    pin: false,
    set_only: NXE,
};

fn guest_write(rule: PinRule, s: &mut PinState, value: u64) -> PinCheck {
    let c = check(rule, s, value, u64::MAX);
    if c == PinCheck::Allow {
        commit(rule, s, value);
    }
    c
}

#[test]
fn first_write_pins_and_only_that_value_passes_after() {
    let mut s = PinState::RESET;
    assert_eq!(
        guest_write(PIN, &mut s, 0xffff_ffff_8100_0000),
        PinCheck::Allow
    );
    assert_eq!(
        guest_write(PIN, &mut s, 0xffff_ffff_8100_0000),
        PinCheck::Allow
    );
    assert_eq!(
        guest_write(PIN, &mut s, 0xffff_ffff_c000_0000),
        PinCheck::Pinned {
            pinned: 0xffff_ffff_8100_0000
        }
    );
    // A vetoed write changes nothing.
    assert_eq!(s.value, 0xffff_ffff_8100_0000);
}

/// SVM keeps 32 bits of SYSENTER_EIP for a guest with AMD's CPUID: a pin
/// taken from what the vCPU held (the low half of Linux's entry point)
/// lets Linux write its whole value again, vetoes a change of the kept
/// bits, and a VMM restoring the 32 bits it read keeps the pin.
#[test]
fn a_pin_compares_the_bits_kvm_keeps() {
    const LOW: u64 = 0xffff_ffff;
    let mut s = PinState::RESET;
    assert!(first_look(PIN, &mut s, Held::Value(0x8120_0000)));
    assert_eq!(check(PIN, &s, 0xffff_ffff_8120_0000, LOW), PinCheck::Allow);
    assert_eq!(
        check(PIN, &s, 0xffff_ffff_8bad_c0de, LOW),
        PinCheck::Pinned {
            pinned: 0x8120_0000
        }
    );
    // Where KVM keeps every bit, the high half is a change.
    assert_eq!(
        check(PIN, &s, 0xffff_ffff_8120_0000, u64::MAX),
        PinCheck::Pinned {
            pinned: 0x8120_0000
        }
    );
    host_write(PIN, &mut s, 0x8120_0000, LOW);
    assert!(s.pinned);
    assert_eq!(s.value, 0x8120_0000);
    // A guest's first write pins its whole value; the same low half passes.
    let mut t = PinState::RESET;
    assert_eq!(
        guest_write(PIN, &mut t, 0xffff_ffff_8120_0000),
        PinCheck::Allow
    );
    host_write(PIN, &mut t, 0x8120_0000, LOW);
    assert_eq!(t.value, 0xffff_ffff_8120_0000, "the restore kept the pin");
    assert_eq!(check(PIN, &t, 0xffff_ffff_8120_0000, LOW), PinCheck::Allow);
}

#[test]
fn a_write_kvm_refused_pins_nothing() {
    let mut s = PinState::RESET;
    // check() allowed it, KVM refused it: no commit.
    assert_eq!(
        check(PIN, &s, 0x8000_0000_0000_0000, u64::MAX),
        PinCheck::Allow
    );
    assert_eq!(
        guest_write(PIN, &mut s, 0xffff_ffff_8100_0000),
        PinCheck::Allow
    );
    assert_eq!(s.value, 0xffff_ffff_8100_0000);
}

#[test]
fn set_only_bits_stay_set() {
    let mut s = PinState::RESET;
    assert_eq!(guest_write(SET_ONLY, &mut s, 0x100), PinCheck::Allow);
    assert_eq!(guest_write(SET_ONLY, &mut s, 0x0), PinCheck::Allow);
    assert_eq!(guest_write(SET_ONLY, &mut s, 0x500 | NXE), PinCheck::Allow);
    assert_eq!(guest_write(SET_ONLY, &mut s, 0x501 | NXE), PinCheck::Allow);
    assert_eq!(
        guest_write(SET_ONLY, &mut s, 0x501),
        PinCheck::SetOnly { cleared: NXE }
    );
}

#[test]
fn host_writes_restore_or_reset() {
    let mut s = PinState::RESET;
    guest_write(PIN, &mut s, 0x1234);
    // A migration target restores another value: pinned to it.
    host_write(PIN, &mut s, 0x5678, u64::MAX);
    assert_eq!(
        guest_write(PIN, &mut s, 0x1234),
        PinCheck::Pinned { pinned: 0x5678 }
    );
    // A VMM reset writes 0: the guest pins again as it boots.
    host_write(PIN, &mut s, 0, u64::MAX);
    assert_eq!(guest_write(PIN, &mut s, 0x1234), PinCheck::Allow);
    assert_eq!(
        guest_write(PIN, &mut s, 0x5678),
        PinCheck::Pinned { pinned: 0x1234 }
    );

    // The VMM writes back the value the guest pinned, 0 included: the pin
    // holds.
    let mut z = PinState::RESET;
    assert_eq!(guest_write(PIN, &mut z, 0), PinCheck::Allow);
    host_write(PIN, &mut z, 0, u64::MAX);
    assert_eq!(
        guest_write(PIN, &mut z, 0x1234),
        PinCheck::Pinned { pinned: 0 }
    );

    let mut e = PinState::RESET;
    host_write(SET_ONLY, &mut e, 0x501 | NXE, u64::MAX);
    assert_eq!(
        guest_write(SET_ONLY, &mut e, 0x501),
        PinCheck::SetOnly { cleared: NXE }
    );
    host_write(SET_ONLY, &mut e, 0, u64::MAX);
    assert_eq!(guest_write(SET_ONLY, &mut e, 0x501), PinCheck::Allow);
}

#[test]
fn the_first_look_pins_a_held_value_once() {
    let mut s = PinState::RESET;
    assert!(!first_look(PIN, &mut s, Held::NotRead));
    assert_eq!(s, PinState::RESET);
    assert!(first_look(PIN, &mut s, Held::Value(0x1234)));
    assert_eq!(
        guest_write(PIN, &mut s, 0x5678),
        PinCheck::Pinned { pinned: 0x1234 }
    );
    // Later looks change nothing, a held value or not.
    assert!(first_look(PIN, &mut s, Held::Value(0x5678)));
    assert!(first_look(PIN, &mut s, Held::NotRead));
    assert_eq!((s.pinned, s.value), (true, 0x1234));

    // 0, every pinned MSR's reset value, or a value unknown: the write pins.
    for held in [Held::Value(0), Held::Unknown] {
        let mut z = PinState::RESET;
        assert!(first_look(PIN, &mut z, held));
        assert_eq!(guest_write(PIN, &mut z, 0x5678), PinCheck::Allow);
        assert_eq!(z.value, 0x5678);
    }
    // A set-only rule pins nothing.
    let mut e = PinState::RESET;
    assert!(first_look(SET_ONLY, &mut e, Held::Value(0x501 | NXE)));
    assert!(!e.pinned);
}

#[test]
fn no_rule_allows_everything() {
    let mut s = PinState::RESET;
    for v in [0, 1, u64::MAX, 0x1234] {
        assert_eq!(guest_write(PinRule::default(), &mut s, v), PinCheck::Allow);
    }
    assert_eq!(s, PinState::RESET);
}

#[derive(Clone, Debug)]
enum Op {
    Guest(u64),
    Host(u64),
    /// A guest write KVM refuses: checked, never committed.
    Refused(u64),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    // Few values, so that repeats and clears happen.
    let v = prop_oneof![
        Just(0u64),
        Just(0x800),
        Just(0x501),
        Just(0xd01),
        Just(0x1234)
    ];
    prop_oneof![
        5 => v.clone().prop_map(Op::Guest),
        1 => v.clone().prop_map(Op::Host),
        1 => v.prop_map(Op::Refused),
        1 => Just(Op::Reset),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// The model: a pin is the first accepted guest write since the last
    /// reset or VMM write of 0 (or the VMM's non-zero value; its write of
    /// the pinned value changes nothing); a set-only bit stays set from the
    /// accepted write that set it until a reset or the VMM's write.
    #[test]
    fn pins_follow_the_model(pin: bool, set_only in prop_oneof![Just(0u64), Just(0x800u64), Just(0x900u64)],
                             ops in prop::collection::vec(op(), 0..40)) {
        let rule = PinRule { pin, set_only };
        let mut s = PinState::RESET;
        let mut pinned: Option<u64> = None;
        let mut sticky = 0u64;
        for op in ops {
            match op {
                Op::Guest(v) | Op::Refused(v) => {
                    let want = match pinned {
                        Some(p) if pin && v != p => PinCheck::Pinned { pinned: p },
                        _ if sticky & !v != 0 => PinCheck::SetOnly { cleared: sticky & !v },
                        _ => PinCheck::Allow,
                    };
                    let got = check(rule, &s, v, u64::MAX);
                    prop_assert_eq!(got, want);
                    if got == PinCheck::Allow && matches!(op, Op::Guest(_)) {
                        commit(rule, &mut s, v);
                        if pin && pinned.is_none() {
                            pinned = Some(v);
                        }
                        sticky |= v & set_only;
                    }
                }
                Op::Host(v) => {
                    // The VMM writing back the pinned value changes no pin.
                    if pin && pinned == Some(v) {
                        let mut again = s;
                        host_write(rule, &mut again, v, u64::MAX);
                        prop_assert_eq!((again.pinned, again.value), (s.pinned, s.value));
                    }
                    host_write(rule, &mut s, v, u64::MAX);
                    if pinned != Some(v) {
                        pinned = (pin && v != 0).then_some(v);
                    }
                    sticky = v & set_only;
                }
                Op::Reset => {
                    s = PinState::RESET;
                    pinned = None;
                    sticky = 0;
                }
            }
        }
    }
}

mod table {
    use std::collections::HashMap;

    use msrguard_core::pins::{PinState, PinTable, VcpuPins};
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

    #[derive(Clone, Debug)]
    enum Op {
        /// A vCPU writes: its first state gets this value.
        Write(u32, u32, u64),
        /// Its VM went.
        Forget(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few VMs and vCPUs: many collisions in a small table.
        prop_oneof![
            4 => (1u32..6, 0u32..4, 1u64..1000).prop_map(|(v, c, x)| Op::Write(v, c, x)),
            1 => (1u32..6).prop_map(Op::Forget),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
            ..ProptestConfig::default()
        })]

        /// Against a map: each vCPU keeps its own states until its VM is
        /// forgotten, then starts from reset; the capacity is respected
        /// (a vCPU beyond it has none) and no forget loses another VM's.
        #[test]
        fn keeps_each_vcpus_states_until_its_vm_goes(ops in prop::collection::vec(op(), 1..200), slots in 2usize..24) {
            let mut t = PinTable::new(vec![VcpuPins::FREE; slots]);
            let mut model: HashMap<(u32, u32), u64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Write(vm, vcpu, x) => {
                        let known = model.contains_key(&(vm, vcpu));
                        match t.states(vm, vcpu, 1) {
                            Some(s) => {
                                let expect = model.get(&(vm, vcpu)).copied().unwrap_or(0);
                                prop_assert_eq!(s[0].value, expect);
                                s[0] = PinState { value: x, pinned: true, sticky: 0, looked: true };
                                model.insert((vm, vcpu), x);
                            }
                            None => {
                                prop_assert!(!known, "a held vCPU lost");
                                prop_assert_eq!(model.len(), slots - 1, "refused below capacity");
                            }
                        }
                    }
                    Op::Forget(vm) => {
                        t.forget_vm(vm);
                        model.retain(|&(v, _), _| v != vm);
                    }
                }
                prop_assert_eq!(t.live(), model.len());
            }
            for (&(vm, vcpu), &x) in &model {
                prop_assert_eq!(t.states(vm, vcpu, 1).map(|s| s[0].value), Some(x));
            }
        }
    }

    #[test]
    fn vm_id_0_is_never_held() {
        let mut t = PinTable::new(vec![VcpuPins::FREE; 4]);
        assert!(t.states(0, 1, 1).is_none());
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn states_of_another_profile_start_from_reset() {
        let mut t = PinTable::new(vec![VcpuPins::FREE; 4]);
        if let Some(s) = t.states(1, 0, 1) {
            s[0] = PinState {
                value: 5,
                pinned: true,
                sticky: 0,
                looked: true,
            };
        }
        // Index 0 of profile 2's pins may be another MSR: nothing carries over.
        assert_eq!(t.states(1, 0, 2).map(|s| s[0]), Some(PinState::RESET));
        assert_eq!(t.live(), 1);
    }
}
