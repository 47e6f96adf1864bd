// SPDX-License-Identifier: GPL-2.0

//! MSRs an operating system rewrites while it runs: a pin or a set-only bit
//! on one of them would veto a well-behaved guest's normal work, so the
//! checker refuses it, with the evidence below. The one list of them, with
//! the tracing and debug-store facilities of [`crate::danger`] (perf
//! programs, saves and restores them per task), and the MSRs whose reset
//! value is not 0, which no pin may hold ([`NONZERO_RESET`]).

use crate::danger::{dangerous, TRACE};
use crate::entry::range_holding;

/// A range of MSRs an OS rewrites at run time, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// First MSR index.
    pub first: u32,
    /// Last MSR index, inclusive.
    pub last: u32,
    /// The bits rewritten (all of them: `u64::MAX`). No MSR of the range
    /// may be pinned; no set-only bit may be one of these.
    pub bits: u64,
    /// Who rewrites it and when (one line).
    pub why: &'static str,
}

const fn r(first: u32, last: u32, why: &'static str) -> Rewritten {
    Rewritten {
        first,
        last,
        bits: u64::MAX,
        why,
    }
}

/// EFER's bits an OS or KVM changes at run time: LME and LMA (mode
/// switches, RSM), SVME (a guest hypervisor enabling SVM).
const EFER_REWRITTEN: u64 = (1 << 8) | (1 << 10) | (1 << 12);

/// Sorted by `first`, no overlaps (a unit test checks it).
pub const REWRITTEN: &[Rewritten] = &[
    r(0x11, 0x12, "KVM's legacy paravirtual clock: Linux's kvm_get_wallclock() writes the wall-clock MSR on every read of it, kvmclock_disable() clears the clock at shutdown and kexec"),
    r(0x3b, 0x3b, "TSC_ADJUST: Linux's tsc_verify_tsc_adjust() (arch/x86/kernel/tsc_sync.c) writes it back whenever firmware or a hypervisor changed it, at any time"),
    r(0x48, 0x48, "SPEC_CTRL: Linux writes it on context switches (SSBD, STIBP: __speculation_ctrl_update() in arch/x86/kernel/process.c) and on kernel entry and exit with IBRS"),
    r(0x49, 0x49, "PRED_CMD: a command MSR (IBPB), written on context switches; it holds no value to pin"),
    r(0xc1, 0xc8, "PMU counters: perf programs and reloads them on every context switch and overflow"),
    r(0xe1, 0xe1, "UMWAIT_CONTROL: Linux rewrites it whenever root changes /sys/devices/system/cpu/umwait_control"),
    r(0x10b, 0x10b, "FLUSH_CMD: a command MSR (L1D flush), written on VM entry and context switches; it holds no value to pin"),
    r(0x140, 0x140, "MISC_FEATURES_ENABLES: Linux switches CPUID faulting per task (arch_prctl(ARCH_SET_CPUID), __switch_to_xtra())"),
    r(0x174, 0x174, "SYSENTER_CS: 32-bit Linux zeroes it to enter vm86 mode and writes it back after"),
    r(0x17a, 0x17a, "MCG_STATUS: the machine-check handler clears it after each machine check"),
    r(0x186, 0x18d, "PMU event selects: perf programs them on every context switch"),
    r(0x1a6, 0x1a7, "OFFCORE_RSP: perf programs them per event"),
    r(0x1c4, 0x1c5, "XFD, XFD_ERR: Linux switches them per task (AMX state, arch/x86/kernel/fpu/xstate.c)"),
    r(0x1d9, 0x1d9, "DEBUGCTL: Linux sets and clears BTF per task (arch/x86/kernel/step.c) and perf toggles LBR"),
    r(0x309, 0x30b, "PMU fixed counters: perf reloads them on every context switch and overflow"),
    r(0x38d, 0x390, "PMU global control and status: perf enables, disables and acknowledges overflows on every PMI"),
    r(0x3f6, 0x3f7, "PEBS load latency and frontend: perf programs them per event"),
    r(0x400, 0x47f, "machine-check banks: the machine-check handler and its poller clear MCi_STATUS after each error"),
    r(0x4c1, 0x4c8, "PMU full-width counters: perf reloads them on every context switch and overflow"),
    r(0x6a0, 0x6a0, "U_CET: the user shadow stack and IBT state, switched per task"),
    r(0x6a2, 0x6a2, "S_CET: Linux clears ENDBR_EN around EFI runtime calls (ibt_save()/ibt_restore() in arch/x86/platform/efi) and sets it again after"),
    r(0x6a4, 0x6a7, "PL0_SSP..PL3_SSP: shadow stack pointers, switched per task"),
    r(0x6e0, 0x6e0, "TSC_DEADLINE: written for every timer interrupt the local APIC programs (lapic_next_deadline())"),
    r(0x6e1, 0x6e1, "PKRS: protection keys for supervisor pages, switched per task"),
    r(0x800, 0x8ff, "x2APIC registers: EOI on every interrupt, ICR for every IPI, the timer for every tick"),
    r(0x4000_0070, 0x4000_0072, "Hyper-V synthetic EOI, ICR and TPR: written for every interrupt and IPI by guests using the enlightenments (Windows, Linux's hv_apic.c)"),
    r(0x4000_00b0, 0x4000_00b7, "Hyper-V synthetic timers: reprogrammed for every timer event"),
    r(0x4b56_4d00, 0x4b56_4d04, "KVM paravirtual MSRs (clock, async page faults, steal time, PV EOI): Linux writes the wall-clock MSR on every read of it and clears the others when a CPU goes offline or the kernel kexecs (kvm_guest_cpu_offline()), then writes them again"),
    Rewritten {
        first: 0xc000_0080,
        last: 0xc000_0080,
        bits: EFER_REWRITTEN,
        why: "EFER's LME and LMA change with the mode (RSM restores EFER without LMA, then KVM sets it), SVME whenever a guest hypervisor enables or disables SVM",
    },
    r(0xc000_0100, 0xc000_0102, "FS_BASE, GS_BASE, KERNEL_GS_BASE: switched per thread (Linux's x86_fsbase_write_task() and SWAPGS, Windows' thread switch for WOW64 and its per-processor GS)"),
    r(0xc000_0300, 0xc000_0303, "AMD PerfMonV2 global control and status: perf enables, disables and acknowledges overflows on every PMI"),
    r(0xc001_0000, 0xc001_0007, "AMD PMU counters and controls: perf programs them on every context switch"),
    r(0xc001_011f, 0xc001_011f, "VIRT_SPEC_CTRL: Linux switches SSBD per task on AMD guests (__speculation_ctrl_update())"),
    r(0xc001_0200, 0xc001_020b, "AMD core PMU counters and controls: perf programs them on every context switch"),
    r(0xc001_1030, 0xc001_103b, "AMD IBS: perf programs the fetch and op sampling controls per event"),
];

/// MSRs whose reset value is not 0: a VMM resetting the guest writes that
/// value (`KVM_SET_MSRS`), which would pin it (`rust/core/pins.rs`: only 0
/// clears a pin), and the guest's boot could not write its own.
pub const NONZERO_RESET: &[Rewritten] = &[
    r(0x1b, 0x1b, "APIC_BASE resets to 0xfee00900 (the boot CPU) or 0xfee00800, and a guest switching to x2APIC rewrites it"),
    r(0x1a0, 0x1a0, "MISC_ENABLE resets with the PEBS- and BTS-unavailable bits set (kvm_vcpu_reset())"),
    r(0x277, 0x277, "PAT resets to 0x0007040600070406, which the VMM writes at reset; the guest then writes its own"),
];

/// Why an OS rewrites `msr` at run time, if it does.
pub fn rewritten(msr: u32) -> Option<Rewritten> {
    if let Some(r) = range_holding(REWRITTEN, msr, |x| (x.first, x.last)) {
        return Some(*r);
    }
    dangerous(msr)
        .filter(|d| d.why == TRACE)
        .map(|d| Rewritten {
            first: d.first,
            last: d.last,
            bits: u64::MAX,
            why: "tracing and debug store (LBR, BTS, PEBS, Intel PT): perf programs, saves and restores them per task",
        })
}

/// Why no pin may hold `msr`: its reset value is not 0.
pub fn nonzero_reset(msr: u32) -> Option<&'static Rewritten> {
    range_holding(NONZERO_RESET, msr, |x| (x.first, x.last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_without_overlaps_and_found() {
        for w in REWRITTEN.windows(2) {
            assert!(w[0].first <= w[0].last && w[0].last < w[1].first);
        }
        assert!(rewritten(0xc000_0100).is_some_and(|x| x.why.starts_with("FS_BASE")));
        assert!(rewritten(0x830).is_some());
        assert!(rewritten(0xc000_0082).is_none());
        assert_eq!(rewritten(0xc000_0080).map(|x| x.bits), Some(0x1500));
        assert!(rewritten(0x176).is_none());
        assert!(rewritten(u32::MAX).is_none());
        // The tracing facilities, from danger.rs.
        for msr in [0x1c9, 0xdc0, 0x1200, 0x40, 0x560, 0x600, 0x1500] {
            assert!(
                rewritten(msr).is_some_and(|x| x.why.starts_with("tracing")),
                "{msr:#x}"
            );
        }
        for w in NONZERO_RESET.windows(2) {
            assert!(w[0].last < w[1].first);
        }
        assert!(nonzero_reset(0x277).is_some());
        assert!(nonzero_reset(0xc000_0082).is_none());
    }
}
