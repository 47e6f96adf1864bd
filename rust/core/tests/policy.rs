// SPDX-License-Identifier: GPL-2.0
//! Policy semantics: lookup against a naive reference, and the decision rules.

use msrguard_core::policy::*;
use msrguard_core::record::Reason;
use proptest::prelude::*;

fn entry(first: u32, last: u32, read: Action, write: Action, mask: Option<u64>) -> Entry {
    Entry {
        first,
        last,
        name: "TEST",
        read,
        write,
        write_mask: mask.unwrap_or(0),
        has_write_mask: mask.is_some(),
    }
}

fn naive(table: &[Entry], msr: u32) -> Option<&Entry> {
    table.iter().find(|e| e.first <= msr && msr <= e.last)
}

/// Sorted, non-overlapping random ranges.
fn table_strategy() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec((0u32..64, 0u32..8), 0..40).prop_map(|gaps| {
        let mut next = 0u32;
        let mut out = Vec::new();
        for (gap, len) in gaps {
            let first = next + gap;
            let last = first + len;
            out.push(entry(first, last, Action::Allow, Action::Allow, None));
            next = last + 1;
        }
        out
    })
}

proptest! {
    #[test]
    fn lookup_agrees_with_linear_scan(table in table_strategy(), msrs in prop::collection::vec(0u32..1200, 64)) {
        for msr in msrs {
            prop_assert_eq!(lookup(&table, msr), naive(&table, msr));
        }
    }

    #[test]
    fn lookup_agrees_at_range_edges(table in table_strategy()) {
        for e in &table {
            for msr in [e.first.saturating_sub(1), e.first, e.last, e.last + 1] {
                prop_assert_eq!(lookup(&table, msr), naive(&table, msr));
            }
        }
    }
}

#[test]
fn lookup_handles_extremes() {
    let t = [
        entry(0, 0, Action::Allow, Action::Allow, None),
        entry(u32::MAX, u32::MAX, Action::Allow, Action::Allow, None),
    ];
    assert_eq!(lookup(&t, 0).map(|e| e.first), Some(0));
    assert_eq!(lookup(&t, 1), None);
    assert_eq!(lookup(&t, u32::MAX).map(|e| e.first), Some(u32::MAX));
    assert_eq!(lookup(&[], 5), None);
}

#[test]
fn unknown_msr_gets_default_action() {
    let v = decide(&[], 0x1234, false, 0);
    assert_eq!(v.action, DEFAULT_ACTION);
    assert_eq!(v.reason, Some(Reason::Unknown));
    assert_eq!(decide(&[], 0x1234, true, 0).action, Action::Gp);
}

#[test]
fn read_and_write_actions_apply() {
    let t = [
        entry(0x10, 0x10, Action::Allow, Action::Gp, None),
        entry(0x20, 0x20, Action::Ignore, Action::Ignore, None),
    ];
    assert_eq!(decide(&t, 0x10, false, 0).action, Action::Allow);
    assert_eq!(decide(&t, 0x10, false, 0).reason, None);
    let w = decide(&t, 0x10, true, 0);
    assert_eq!(
        (w.action, w.reason),
        (Action::Gp, Some(Reason::WriteDenied))
    );
    let r = decide(&t, 0x20, false, 0);
    assert_eq!(
        (r.action, r.reason),
        (Action::Ignore, Some(Reason::ReadDenied))
    );
    assert_eq!(decide(&t, 0x20, true, 5).action, Action::Ignore);
}

#[test]
fn write_mask_allows_inside_and_vetoes_outside() {
    let t = [entry(
        0x1a0,
        0x1a0,
        Action::Allow,
        Action::Gp,
        Some(0x0000_0000_0040_0089),
    )];
    assert_eq!(decide(&t, 0x1a0, true, 0).action, Action::Allow);
    assert_eq!(decide(&t, 0x1a0, true, 0x89).action, Action::Allow);
    let v = decide(&t, 0x1a0, true, 0x8000_0000_0000_0089);
    assert_eq!((v.action, v.reason), (Action::Gp, Some(Reason::WriteMask)));
    assert_eq!(decide(&t, 0x1a0, true, 0x100).action, Action::Gp);
}

#[test]
fn always_allowed_only_without_value_checks() {
    let t = [
        entry(1, 1, Action::Allow, Action::Allow, None),
        entry(2, 2, Action::Allow, Action::Gp, Some(0xff)),
        entry(3, 3, Action::Allow, Action::Gp, Some(u64::MAX)),
        entry(4, 4, Action::Ignore, Action::Allow, None),
    ];
    assert!(always_allowed(&t, 1, false) && always_allowed(&t, 1, true));
    assert!(always_allowed(&t, 2, false) && !always_allowed(&t, 2, true));
    assert!(always_allowed(&t, 3, true));
    assert!(!always_allowed(&t, 4, false) && always_allowed(&t, 4, true));
    assert!(!always_allowed(&t, 5, false));
}

#[test]
fn action_wire_values_round_trip() {
    for a in [Action::Allow, Action::Gp, Action::Ignore] {
        assert_eq!(Action::from_u8(a as u8), Some(a));
        assert_eq!(Action::from_name(a.name()), Some(a));
    }
    assert_eq!(Action::from_u8(3), None);
}
