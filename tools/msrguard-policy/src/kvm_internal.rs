// SPDX-License-Identifier: GPL-2.0

//! The accesses KVM makes itself, which every policy must allow.

use msrguard_core::policy::Entry;

use crate::entry::{Diagnostic, PolicyEntry};

/// An access KVM makes itself, while emulating something other than a guest
/// RDMSR/WRMSR. It passes the same hooks, so a policy denying it breaks KVM
/// (a failed RSM, a WARN on a nested VM-entry, RDTSC reading 0) rather than
/// stopping a guest.
struct KvmAccess {
    first: u32,
    last: u32,
    name: &'static str,
    reads: bool,
    writes: bool,
    by: &'static str,
}

/// What every policy must allow. (XSS, which KVM writes for SEV-ES guests,
/// is not here: KVM ignores that write failing.)
const KVM_INTERNAL: &[KvmAccess] = &[
    KvmAccess {
        first: 0xc0000080,
        last: 0xc0000080,
        name: "MSR_EFER",
        reads: true,
        writes: true,
        by: "RSM and the emulator's mode changes",
    },
    KvmAccess {
        first: 0xc0000081,
        last: 0xc0000084,
        name: "MSR_STAR..MSR_SYSCALL_MASK",
        reads: true,
        writes: false,
        by: "SYSCALL/SYSRET emulation",
    },
    KvmAccess {
        first: 0x174,
        last: 0x176,
        name: "MSR_IA32_SYSENTER_CS..EIP",
        reads: true,
        writes: false,
        by: "SYSENTER/SYSEXIT emulation",
    },
    KvmAccess {
        first: 0x38f,
        last: 0x38f,
        name: "MSR_CORE_PERF_GLOBAL_CTRL",
        reads: false,
        writes: true,
        by: "nested VMX VM-entry and VM-exit",
    },
    KvmAccess {
        first: 0x10,
        last: 0x10,
        name: "MSR_IA32_TSC",
        reads: true,
        writes: false,
        by: "RDTSC emulation",
    },
    KvmAccess {
        first: 0xc0000103,
        last: 0xc0000103,
        name: "MSR_TSC_AUX",
        reads: true,
        writes: false,
        by: "RDPID emulation",
    },
    KvmAccess {
        first: 0x6a0,
        last: 0x6a0,
        name: "MSR_IA32_U_CET",
        reads: true,
        writes: false,
        by: "CET emulation",
    },
    KvmAccess {
        first: 0x6a2,
        last: 0x6a2,
        name: "MSR_IA32_S_CET",
        reads: true,
        writes: false,
        by: "CET emulation",
    },
];

/// Checks that every access KVM makes on its own is allowed.
pub(crate) fn check_kvm_internal(file: &str, entries: &[PolicyEntry]) -> Vec<Diagnostic> {
    let table: Vec<Entry> = entries.iter().map(|e| e.to_abi()).collect();
    let mut out = Vec::new();
    for k in KVM_INTERNAL {
        let (name, who) = (k.name, k.by);
        for msr in k.first..=k.last {
            let denied_read = k.reads && !msrguard_core::policy::always_allowed(&table, msr, false);
            let denied_write =
                k.writes && !msrguard_core::policy::always_allowed(&table, msr, true);
            if !denied_read && !denied_write {
                continue;
            }
            let line = entries
                .iter()
                .find(|e| e.first <= msr && msr <= e.last)
                .map_or(1, |e| e.line);
            let what = match (denied_read, denied_write) {
                (true, true) => "reads and writes",
                (true, false) => "reads",
                _ => "writes",
            };
            out.push(Diagnostic {
                file: file.to_string(),
                line,
                message: format!(
                    "{name} ({msr:#x}) must allow {what} (every value): KVM itself makes them ({who}), and denying them breaks KVM, not the guest"
                ),
            });
            break;
        }
    }
    out
}
