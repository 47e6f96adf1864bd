// SPDX-License-Identifier: GPL-2.0

//! A policy against the MSRs a kernel tree's KVM handles
//! (`msrguard check --against-kvm`).

use crate::entry::{describe_range, PolicyEntry};
use crate::kvm;

/// What `msrguard check --against-kvm` finds wrong: each KVM-handled MSR the
/// policy leaves to the default action, and each part of a policy entry
/// covering MSRs KVM does not handle (dead: KVM faults them anyway, and the
/// default action already says `gp`). One line per finding, empty if none.
pub fn check_against_kvm(kvm: &kvm::KvmMsrs, entries: &[PolicyEntry]) -> Vec<String> {
    let mut out = Vec::new();
    let name_of = |m: u32| msrguard_core::msr_names::msr_name(m).unwrap_or("no Linux name");
    // Covered = union of the policy's entries (sorted, disjoint).
    for (a, z) in kvm.intervals() {
        let mut m = a;
        while m <= z {
            if let Some(e) = entries.iter().find(|e| e.first <= m && m <= e.last) {
                if e.last >= z {
                    break;
                }
                m = e.last + 1;
                continue;
            }
            // An uncovered run: up to the next entry or the interval's end.
            let next = entries
                .iter()
                .filter(|e| e.first > m)
                .map(|e| e.first - 1)
                .min()
                .unwrap_or(u32::MAX)
                .min(z);
            out.push(format!(
                "{}: handled by KVM but left to the default action ({}; {})",
                span(m, next),
                name_of(m),
                kvm.sources(m, next).join(", ")
            ));
            if next == u32::MAX {
                break;
            }
            m = next + 1;
        }
    }
    let intervals = kvm.intervals();
    for e in entries {
        let mut m = e.first;
        loop {
            let inside = intervals.iter().find(|&&(a, z)| a <= m && m <= z);
            let stop = match inside {
                Some(&(_, z)) => z.min(e.last),
                None => {
                    let next = intervals
                        .iter()
                        .filter(|&&(a, _)| a > m)
                        .map(|&(a, _)| a - 1)
                        .min()
                        .unwrap_or(u32::MAX)
                        .min(e.last);
                    let refused = kvm
                        .guest_refused
                        .iter()
                        .any(|k| k.first <= next && m <= k.last);
                    out.push(format!(
                        "line {}: {} ({}): dead entry{}: KVM does not handle {}",
                        e.line,
                        describe_range(e),
                        e.name,
                        if e.first == m && e.last == next {
                            ""
                        } else {
                            " part"
                        },
                        if refused {
                            format!("{} (KVM refuses it to guests itself)", span(m, next))
                        } else {
                            span(m, next)
                        }
                    ));
                    next
                }
            };
            if stop >= e.last {
                break;
            }
            m = stop + 1;
        }
    }
    out
}

fn span(a: u32, z: u32) -> String {
    if a == z {
        format!("MSR {a:#x}")
    } else {
        format!("MSRs {a:#x}..={z:#x}")
    }
}
