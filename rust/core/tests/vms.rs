// SPDX-License-Identifier: GPL-2.0
//! The VM table (`rust/core/vms.rs`) against a model: ids assigned in
//! creation order and never reused, lookups stable while a VM lives, the
//! capacity respected, deletion never losing another VM.

use std::collections::{HashMap, HashSet};

use msrguard_core::vms::{VmSlot, VmTable, VM_SLOTS};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[derive(Clone, Debug)]
enum Op {
    Created(u64),
    Destroyed(u64),
    IdOf(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Addresses that collide often in a small table.
    let key = (1u64..24).prop_map(|k| 0xffff_8880_0000_0000 + k * 0x1000);
    prop_oneof![
        3 => key.clone().prop_map(Op::Created),
        2 => key.clone().prop_map(Op::Destroyed),
        3 => key.prop_map(Op::IdOf),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        // Next to this file, where the regressions are committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/vms.proptest-regressions"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ids_are_unique_and_stable(slots in 2usize..12, ops in prop::collection::vec(op(), 1..300)) {
        let mut t = VmTable::new(vec![VmSlot::FREE; slots]);
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut given: HashSet<u32> = HashSet::new();
        let mut last = 0u32;
        for op in ops {
            match op {
                Op::Created(k) => {
                    model.remove(&k);
                    let id = t.created(k, 0, 0);
                    if model.len() < t.capacity() {
                        prop_assert!(id > last, "ids count up: {} after {}", id, last);
                        prop_assert!(given.insert(id), "id {} given twice", id);
                        last = id;
                        model.insert(k, id);
                    } else {
                        prop_assert_eq!(id, 0, "a full table tracks nothing more");
                    }
                }
                Op::Destroyed(k) => {
                    prop_assert_eq!(t.destroyed(k), model.remove(&k));
                }
                Op::IdOf(k) => {
                    let id = t.id_of(k);
                    match model.get(&k) {
                        Some(&want) => prop_assert_eq!(id, want),
                        None if model.len() < t.capacity() => {
                            prop_assert!(id > last && given.insert(id));
                            last = id;
                            model.insert(k, id);
                        }
                        None => prop_assert_eq!(id, 0),
                    }
                }
            }
            prop_assert_eq!(t.live(), model.len());
            // Every live VM is still found (no probe broken by a deletion).
            for (&k, &id) in &model {
                prop_assert_eq!(t.id_of(k), id);
            }
        }
    }
}

#[test]
fn a_new_vm_at_a_freed_address_gets_a_new_id() {
    let mut t = VmTable::new(vec![VmSlot::FREE; VM_SLOTS]);
    let a = t.created(0xffff_c900_0010_0000, 0, 0);
    assert_eq!(t.destroyed(0xffff_c900_0010_0000), Some(a));
    let b = t.created(0xffff_c900_0010_0000, 0, 0);
    assert!(b > a);
    assert_eq!(t.id_of(0xffff_c900_0010_0000), b);
}

#[test]
fn a_vm_from_before_load_is_adopted_once() {
    let mut t = VmTable::new(vec![VmSlot::FREE; VM_SLOTS]);
    let a = t.id_of(0xffff_c900_0020_0000);
    assert_eq!(a, 1);
    assert_eq!(t.id_of(0xffff_c900_0020_0000), a);
    assert_eq!(t.created(0xffff_c900_0030_0000, 0, 0), 2);
}

#[test]
fn after_the_wrap_a_live_vms_id_is_passed_over() {
    let mut t = VmTable::new(vec![VmSlot::FREE; 8]);
    assert_eq!(t.created(0x1000, 0, 0), 1);
    assert_eq!(t.created(0x2000, 0, 0), 2);
    assert_eq!(t.created(0x3000, 0, 0), 3);
    assert_eq!(t.destroyed(0x2000), Some(2));
    // Ids come round again: 1 and 3 are live, 2 and 4 are not.
    t.wrap_to(1);
    assert_eq!(t.created(0x4000, 0, 0), 2);
    assert_eq!(t.created(0x5000, 0, 0), 4);
    assert_eq!(t.id_of(0x1000), 1);
    assert_eq!(t.id_of(0x3000), 3);
}

#[test]
fn key_zero_is_never_a_vm() {
    let mut t = VmTable::new(vec![VmSlot::FREE; 8]);
    assert_eq!(t.created(0, 0, 0), 0);
    assert_eq!(t.destroyed(0), None);
    assert_eq!(t.id_of(0), 0);
    assert_eq!(t.live(), 0);
}

#[test]
fn a_vm_keeps_the_vmm_and_profile_it_was_created_with_until_root_changes_it() {
    let mut t = VmTable::new(vec![VmSlot::FREE; 8]);
    let id = t.created(0xffff_c900_0040_0000, 4242, 1);
    let vm = t.vm_of(0xffff_c900_0040_0000);
    assert_eq!((vm.id, vm.vmm_pid, vm.profile), (id, 4242, 1));
    assert_eq!(t.set_profile(id, 2), Some(0xffff_c900_0040_0000));
    assert_eq!(t.vm_of(0xffff_c900_0040_0000).profile, 2);
    // No VM has id 0 or an id never given.
    assert_eq!(t.set_profile(0, 2), None);
    assert_eq!(t.set_profile(id + 1, 2), None);
    // A VM that existed before msrguard: the default profile, no VMM known.
    let old = t.vm_of(0xffff_c900_0050_0000);
    assert_eq!((old.vmm_pid, old.profile), (0, 0));
    let mut live: Vec<u32> = t.iter().map(|v| v.id).collect();
    live.sort();
    assert_eq!(live, vec![id, old.id]);
    // Destroyed: gone from the listing, its id no longer settable.
    t.destroyed(0xffff_c900_0040_0000);
    assert_eq!(t.set_profile(id, 0), None);
    assert_eq!(t.iter().count(), 1);
}

/// KVM frees a VM whose `kvm_arch_init_vm` failed early (an unsupported
/// type) without destroying it: until KVM creates one of its vCPUs, its entry is
/// neither listed nor given another profile (root's change would take a
/// reference on freed memory).
#[test]
fn a_vm_without_a_vcpu_is_not_listed_nor_changed() {
    let mut t = VmTable::new(vec![VmSlot::FREE; 8]);
    let id = t.created(0xffff_c900_0060_0000, 77, 0);
    assert_eq!(t.iter().count(), 0);
    assert_eq!(t.set_profile(id, 1), None);
    t.vm_of(0xffff_c900_0060_0000);
    assert_eq!(t.iter().count(), 1);
    assert_eq!(t.set_profile(id, 1), Some(0xffff_c900_0060_0000));
    // A VM at the same address, created anew: not seen again yet.
    let again = t.created(0xffff_c900_0060_0000, 78, 0);
    assert_eq!(t.set_profile(again, 1), None);
}
