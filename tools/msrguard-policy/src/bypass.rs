// SPDX-License-Identifier: GPL-2.0

//! The MSRs a guest can set (or read) without msrguard's decision points.
//!
//! msrguard decides in `kvm_get_msr_ignored_check()` and
//! `kvm_set_msr_ignored_check()` (`arch/x86/kvm/msrs.c`). Some paths change
//! or reveal a vCPU's MSR state without passing there: nested VM-entry and
//! VM-exit state loads, VMLOAD, RSM, SEV-ES's EFER trap, XRSTORS, RDPMC,
//! instructions that write MSR-backed registers directly, KVM's fast path.
//! [`BYPASSES`] lists them, each with the KVM source that makes it (Linux
//! 7.3); `Documentation/msrguard/design.rst` ("Accesses outside the guard") gives
//! the reasoning and the paths that are not MSR-specific (the VMM, INIT,
//! TDX). [`check`] warns for each policy entry that denies what one of
//! these paths can do: the policy cannot stop it.

use std::fmt;

use msrguard_core::policy::{decide, Action, Entry};

use crate::PolicyEntry;

/// One path that sets or reads MSRs `first..=last` without the decision
/// points.
#[derive(Clone, Copy, Debug)]
pub struct Bypass {
    /// First MSR index.
    pub first: u32,
    /// Last MSR index, inclusive.
    pub last: u32,
    /// Linux's name of `first` (checked against `msr_names` by the tests).
    pub name: &'static str,
    /// The path reveals the MSR's value to the guest.
    pub reads: bool,
    /// The path writes the MSR, with a value that has only `bits` set.
    pub writes: bool,
    /// The bits the path can set (`u64::MAX`: any value; 0: it only clears).
    pub bits: u64,
    /// What does it, as the warning names it.
    pub path: &'static str,
    /// Where, in Linux 7.3: `file:function[, function]` under
    /// `arch/x86/kvm/`, several separated by `; ` (checked against a kernel
    /// tree by the tests).
    pub source: &'static str,
    /// When the path exists, if not always ("" if always).
    pub when: &'static str,
}

const ALL: u64 = u64::MAX;

// DEBUGCTL bits (msr-index.h).
const DEBUGCTL_LBR: u64 = 1 << 0;
const DEBUGCTL_BUS_LOCK_DETECT: u64 = 1 << 2;
const DEBUGCTL_FREEZE_LBRS_ON_PMI: u64 = 1 << 11;
const DEBUGCTL_RTM_DEBUG: u64 = 1 << 15;

const VMX_EXIT: &str = "a nested VMX VM-exit (L1's host state from VMCS12)";
const VMX_EXIT_SRC: &str = "vmx/nested.c:load_vmcs12_host_state";
const VMX_SAVE: &str = "a nested VMX VM-exit (L2's state saved to VMCS12 for L1)";
const VMX_SAVE_SRC: &str = "vmx/nested.c:sync_vmcs02_to_vmcs12, sync_vmcs02_to_vmcs12_rare";
const VMX_ENTRY: &str = "a nested VMX VM-entry or RSM into L2 (L2's guest state from VMCS12)";
const VMX_ENTRY_SRC: &str = "vmx/nested.c:prepare_vmcs02, prepare_vmcs02_rare";
const SVM_VMRUN: &str = "nested SVM VMRUN or RSM into L2 (L2's state from VMCB12)";
const SVM_VMRUN_SRC: &str = "svm/nested.c:nested_vmcb02_prepare_save";
const SVM_VMEXIT: &str = "a nested SVM #VMEXIT (L2's state saved to VMCB12 for L1)";
const SVM_VMEXIT_SRC: &str = "svm/nested.c:nested_svm_vmexit_update_vmcb12";
const SVM_HSAVE: &str = "SVM SMI and RSM in guest mode (L1's state through its host-save area)";
const SVM_HSAVE_SRC: &str =
    "svm/svm.c:svm_enter_smm, svm_leave_smm; svm/nested.c:svm_copy_vmrun_state";
const VMLOAD: &str = "VMLOAD/VMSAVE (emulated, or virtual VMLOAD/VMSAVE without an exit)";
const VMLOAD_SRC: &str =
    "svm/svm.c:vmload_vmsave_interception; svm/nested.c:svm_copy_vmloadsave_state";
const RSM: &str = "RSM (the state-save area in SMRAM)";
const RSM_SRC: &str = "smm.c:rsm_load_state_64, rsm_load_state_32";
const SMI: &str = "SMI entry (state saved to SMRAM, EFER cleared)";
const SMI_SRC: &str = "smm.c:enter_smm, enter_smm_save_state_64";
const XRSTORS: &str = "XSAVES/XRSTORS of the CET state components (not intercepted)";
const XRSTORS_SRC: &str = "x86.c:KVM_SUPPORTED_XSS";
const XAPIC_MMIO: &str = "the xAPIC MMIO page (emulated, or APICv/AVIC)";
const XAPIC_MMIO_SRC: &str = "lapic.c:apic_mmio_write, apic_mmio_read";
const APICV_READS: &str =
    "VMX APICv x2APIC reads (bitmap written without vmx_set_intercept_for_msr)";
const APICV_READS_SRC: &str = "vmx/vmx.c:vmx_update_msr_bitmap_x2apic";
const RDPMC: &str = "RDPMC";
const RDPMC_SRC: &str = "pmu.c:kvm_pmu_rdpmc, kvm_need_rdpmc_intercept";
const SEGMENTS: &str =
    "WRFSBASE/WRGSBASE, RDFSBASE/RDGSBASE, SWAPGS and segment loads (in hardware, or emulated)";
const SEGMENTS_SRC: &str = "emulate.c:__load_segment_descriptor";

/// Every path that sets or reads an MSR without msrguard's decision points,
/// per MSR range (Linux 7.3). Paths that set every MSR (the VMM, INIT/RESET)
/// or that the kernel source does not enumerate (TDX) are in the
/// documentation only.
#[rustfmt::skip]
pub const BYPASSES: &[Bypass] = &[
    // Nested VMX VM-exit: L1's MSRs from VMCS12's host-state area.
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    Bypass { first: 0x174, last: 0x176, name: "MSR_IA32_SYSENTER_CS", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    Bypass { first: 0xc0000100, last: 0xc0000101, name: "MSR_FS_BASE", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    Bypass { first: 0x277, last: 0x277, name: "MSR_IA32_CR_PAT", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    Bypass { first: 0x6a2, last: 0x6a2, name: "MSR_IA32_S_CET", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    Bypass { first: 0x6a8, last: 0x6a8, name: "MSR_IA32_INT_SSP_TAB", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    Bypass { first: 0xd90, last: 0xd90, name: "MSR_IA32_BNDCFGS", reads: false, writes: true, bits: ALL, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    // Cleared: only a policy that refuses writing 0 is concerned.
    Bypass { first: 0x1d9, last: 0x1d9, name: "MSR_IA32_DEBUGCTLMSR", reads: false, writes: true, bits: 0, path: VMX_EXIT, source: VMX_EXIT_SRC, when: "" },
    // ... and L2's values, as L1 reads them back from VMCS12.
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: true, writes: false, bits: 0, path: VMX_SAVE, source: VMX_SAVE_SRC, when: "" },
    Bypass { first: 0xc0000100, last: 0xc0000101, name: "MSR_FS_BASE", reads: true, writes: false, bits: 0, path: VMX_SAVE, source: VMX_SAVE_SRC, when: "" },
    Bypass { first: 0x6a2, last: 0x6a2, name: "MSR_IA32_S_CET", reads: true, writes: false, bits: 0, path: VMX_SAVE, source: VMX_SAVE_SRC, when: "" },
    Bypass { first: 0x6a8, last: 0x6a8, name: "MSR_IA32_INT_SSP_TAB", reads: true, writes: false, bits: 0, path: VMX_SAVE, source: VMX_SAVE_SRC, when: "" },
    // Nested VMX VM-entry: L2's MSRs from VMCS12's guest-state area.
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    Bypass { first: 0x174, last: 0x176, name: "MSR_IA32_SYSENTER_CS", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    Bypass { first: 0xc0000100, last: 0xc0000101, name: "MSR_FS_BASE", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    Bypass { first: 0x277, last: 0x277, name: "MSR_IA32_CR_PAT", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    Bypass { first: 0x6a2, last: 0x6a2, name: "MSR_IA32_S_CET", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    Bypass { first: 0x6a8, last: 0x6a8, name: "MSR_IA32_INT_SSP_TAB", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    Bypass { first: 0xd90, last: 0xd90, name: "MSR_IA32_BNDCFGS", reads: false, writes: true, bits: ALL, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "" },
    // Masked with vmx_get_supported_debugctl(vcpu, false).
    Bypass { first: 0x1d9, last: 0x1d9, name: "MSR_IA32_DEBUGCTLMSR", reads: false, writes: true, bits: DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "when the VMM gives the guest LBRs (PERF_CAPABILITIES.LBR_FMT)" },
    Bypass { first: 0x1d9, last: 0x1d9, name: "MSR_IA32_DEBUGCTLMSR", reads: false, writes: true, bits: DEBUGCTL_BUS_LOCK_DETECT | DEBUGCTL_RTM_DEBUG, path: VMX_ENTRY, source: VMX_ENTRY_SRC, when: "each bit when the guest has bus-lock detection or RTM" },
    // Nested SVM VMRUN: L2's MSRs from VMCB12.
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: false, writes: true, bits: ALL, path: SVM_VMRUN, source: SVM_VMRUN_SRC, when: "" },
    Bypass { first: 0x277, last: 0x277, name: "MSR_IA32_CR_PAT", reads: false, writes: true, bits: ALL, path: SVM_VMRUN, source: SVM_VMRUN_SRC, when: "g_pat, with nested paging" },
    Bypass { first: 0x6a2, last: 0x6a2, name: "MSR_IA32_S_CET", reads: false, writes: true, bits: ALL, path: SVM_VMRUN, source: SVM_VMRUN_SRC, when: "" },
    Bypass { first: 0x6a8, last: 0x6a8, name: "MSR_IA32_INT_SSP_TAB", reads: false, writes: true, bits: ALL, path: SVM_VMRUN, source: SVM_VMRUN_SRC, when: "" },
    // dbgctl &= ~DEBUGCTL_RESERVED_BITS (= ~DEBUGCTLMSR_LBR).
    Bypass { first: 0x1d9, last: 0x1d9, name: "MSR_IA32_DEBUGCTLMSR", reads: false, writes: true, bits: DEBUGCTL_LBR, path: SVM_VMRUN, source: SVM_VMRUN_SRC, when: "when the VMM gives the guest LBRV and L1 enables it for L2" },
    Bypass { first: 0x1db, last: 0x1de, name: "MSR_IA32_LASTBRANCHFROMIP", reads: false, writes: true, bits: ALL, path: SVM_VMRUN, source: SVM_VMRUN_SRC, when: "when the VMM gives the guest LBRV and L1 enables it for L2" },
    // Nested SVM #VMEXIT: L2's values as L1 reads them from VMCB12.
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: true, writes: false, bits: 0, path: SVM_VMEXIT, source: SVM_VMEXIT_SRC, when: "" },
    Bypass { first: 0x277, last: 0x277, name: "MSR_IA32_CR_PAT", reads: true, writes: false, bits: 0, path: SVM_VMEXIT, source: SVM_VMEXIT_SRC, when: "g_pat, with nested paging" },
    Bypass { first: 0x6a2, last: 0x6a2, name: "MSR_IA32_S_CET", reads: true, writes: false, bits: 0, path: SVM_VMEXIT, source: SVM_VMEXIT_SRC, when: "" },
    Bypass { first: 0x6a8, last: 0x6a8, name: "MSR_IA32_INT_SSP_TAB", reads: true, writes: false, bits: 0, path: SVM_VMEXIT, source: SVM_VMEXIT_SRC, when: "" },
    Bypass { first: 0x1d9, last: 0x1d9, name: "MSR_IA32_DEBUGCTLMSR", reads: true, writes: false, bits: 0, path: SVM_VMEXIT, source: SVM_VMEXIT_SRC, when: "when L1 enables LBRV for L2" },
    Bypass { first: 0x1db, last: 0x1de, name: "MSR_IA32_LASTBRANCHFROMIP", reads: true, writes: false, bits: 0, path: SVM_VMEXIT, source: SVM_VMEXIT_SRC, when: "when L1 enables LBRV for L2" },
    // SVM SMM in guest mode: L1's state written to and loaded from its HSAVE page.
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: true, writes: true, bits: ALL, path: SVM_HSAVE, source: SVM_HSAVE_SRC, when: "" },
    Bypass { first: 0x6a2, last: 0x6a2, name: "MSR_IA32_S_CET", reads: true, writes: true, bits: ALL, path: SVM_HSAVE, source: SVM_HSAVE_SRC, when: "" },
    Bypass { first: 0x6a8, last: 0x6a8, name: "MSR_IA32_INT_SSP_TAB", reads: true, writes: true, bits: ALL, path: SVM_HSAVE, source: SVM_HSAVE_SRC, when: "" },
    Bypass { first: 0x1d9, last: 0x1d9, name: "MSR_IA32_DEBUGCTLMSR", reads: true, writes: true, bits: DEBUGCTL_LBR, path: SVM_HSAVE, source: SVM_HSAVE_SRC, when: "on a host with LBRV" },
    Bypass { first: 0x1db, last: 0x1de, name: "MSR_IA32_LASTBRANCHFROMIP", reads: true, writes: true, bits: ALL, path: SVM_HSAVE, source: SVM_HSAVE_SRC, when: "on a host with LBRV" },
    // VMLOAD loads these from guest memory, VMSAVE stores them there.
    Bypass { first: 0xc0000081, last: 0xc0000084, name: "MSR_STAR", reads: true, writes: true, bits: ALL, path: VMLOAD, source: VMLOAD_SRC, when: "" },
    Bypass { first: 0xc0000100, last: 0xc0000102, name: "MSR_FS_BASE", reads: true, writes: true, bits: ALL, path: VMLOAD, source: VMLOAD_SRC, when: "" },
    Bypass { first: 0x174, last: 0x176, name: "MSR_IA32_SYSENTER_CS", reads: true, writes: true, bits: ALL, path: VMLOAD, source: VMLOAD_SRC, when: "" },
    // RSM: SMBASE relocation and the segment bases (EFER goes through the
    // decision points: __kvm_emulate_msr_write).
    Bypass { first: 0x9e, last: 0x9e, name: "MSR_IA32_SMBASE", reads: false, writes: true, bits: ALL, path: RSM, source: RSM_SRC, when: "in a guest with SMM" },
    Bypass { first: 0xc0000100, last: 0xc0000101, name: "MSR_FS_BASE", reads: false, writes: true, bits: ALL, path: RSM, source: RSM_SRC, when: "in a guest with SMM" },
    Bypass { first: 0x9e, last: 0x9e, name: "MSR_IA32_SMBASE", reads: true, writes: false, bits: 0, path: SMI, source: SMI_SRC, when: "in a guest with SMM" },
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: true, writes: true, bits: 0, path: SMI, source: SMI_SRC, when: "in a guest with SMM" },
    Bypass { first: 0xc0000100, last: 0xc0000101, name: "MSR_FS_BASE", reads: true, writes: false, bits: 0, path: SMI, source: SMI_SRC, when: "in a guest with SMM" },
    // SEV-ES: EFER writes trap after the fact, into kvm_set_msr_common().
    Bypass { first: 0xc0000080, last: 0xc0000080, name: "MSR_EFER", reads: false, writes: true, bits: ALL, path: "an SEV-ES guest's EFER write (trapped after it happened)", source: "svm/svm.c:efer_trap", when: "SEV-ES/SNP guests" },
    // XSS-managed state: CET_USER (U_CET, PL3_SSP), CET_KERNEL (PL0..2_SSP).
    Bypass { first: 0x6a0, last: 0x6a0, name: "MSR_IA32_U_CET", reads: true, writes: true, bits: ALL, path: XRSTORS, source: XRSTORS_SRC, when: "when the guest's XSS enables CET_USER" },
    Bypass { first: 0x6a4, last: 0x6a6, name: "MSR_IA32_PL0_SSP", reads: true, writes: true, bits: ALL, path: XRSTORS, source: XRSTORS_SRC, when: "when the guest's XSS enables CET_KERNEL" },
    Bypass { first: 0x6a7, last: 0x6a7, name: "MSR_IA32_PL3_SSP", reads: true, writes: true, bits: ALL, path: XRSTORS, source: XRSTORS_SRC, when: "when the guest's XSS enables CET_USER; the CPU also saves SSP there on every exit from CPL 3" },
    // RDPMC reads the counters (emulated, or not intercepted with the
    // mediated PMU).
    Bypass { first: 0xc1, last: 0xc8, name: "MSR_IA32_PERFCTR0", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0x309, last: 0x30b, name: "MSR_CORE_PERF_FIXED_CTR0", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0x4c1, last: 0x4c8, name: "MSR_IA32_PMC0", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc0010004, last: 0xc0010007, name: "MSR_K7_PERFCTR0", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc0010201, last: 0xc0010201, name: "MSR_F15H_PERF_CTR", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc0010203, last: 0xc0010203, name: "F15H_PERF_CTR1", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc0010205, last: 0xc0010205, name: "F15H_PERF_CTR2", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc0010207, last: 0xc0010207, name: "F15H_PERF_CTR3", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc0010209, last: 0xc0010209, name: "F15H_PERF_CTR4", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    Bypass { first: 0xc001020b, last: 0xc001020b, name: "F15H_PERF_CTR5", reads: true, writes: false, bits: 0, path: RDPMC, source: RDPMC_SRC, when: "" },
    // RDTSC, RDTSCP and RDPID run without an exit.
    Bypass { first: 0x10, last: 0x10, name: "MSR_IA32_TSC", reads: true, writes: false, bits: 0, path: "RDTSC/RDTSCP (not intercepted)", source: "vmx/vmx.c:vmx_exec_control; svm/svm.c:init_vmcb", when: "" },
    Bypass { first: 0xc0000103, last: 0xc0000103, name: "MSR_TSC_AUX", reads: true, writes: false, bits: 0, path: "RDTSCP/RDPID (not intercepted)", source: "svm/svm.c:svm_recalc_instruction_intercepts; vmx/vmx.c:vmx_secondary_exec_control", when: "" },
    // Instructions that write the registers behind these MSRs.
    Bypass { first: 0xc0000100, last: 0xc0000102, name: "MSR_FS_BASE", reads: true, writes: true, bits: ALL, path: SEGMENTS, source: SEGMENTS_SRC, when: "" },
    Bypass { first: 0x808, last: 0x808, name: "X2APIC_TPR", reads: true, writes: true, bits: 0xf0, path: "MOV to/from CR8 (and the CPU's TPR shadow)", source: "regs.c:kvm_set_cr8; lapic.c:kvm_lapic_set_tpr", when: "" },
    // Hyper-V's synthetic EOI/ICR/TPR MSRs are aliases of the x2APIC ones
    // (decided as their own index, 0x40000070-72); PV EOI and the PV IPI
    // hypercalls reach the same effects without a WRMSR.
    Bypass { first: 0x80b, last: 0x80b, name: "X2APIC_EOI", reads: false, writes: true, bits: ALL, path: "WRMSR of HV_X64_MSR_EOI (0x40000070, decided as that MSR), or PV EOI (a bit in guest memory)", source: "hyperv.c:kvm_hv_set_msr; lapic.c:kvm_hv_vapic_msr_write, apic_sync_pv_eoi_from_guest", when: "with Hyper-V enlightenments or KVM's PV EOI" },
    Bypass { first: 0x808, last: 0x808, name: "X2APIC_TPR", reads: true, writes: true, bits: ALL, path: "RDMSR/WRMSR of HV_X64_MSR_TPR (0x40000072, decided as that MSR)", source: "hyperv.c:kvm_hv_set_msr, kvm_hv_get_msr; lapic.c:kvm_hv_vapic_msr_write, kvm_hv_vapic_msr_read", when: "with Hyper-V enlightenments" },
    Bypass { first: 0x830, last: 0x830, name: "X2APIC_ICR", reads: true, writes: true, bits: ALL, path: "WRMSR of HV_X64_MSR_ICR (0x40000071, decided as that MSR), or the PV IPI hypercalls (KVM_HC_SEND_IPI, HvCallSendSyntheticClusterIpi)", source: "hyperv.c:kvm_hv_set_msr, kvm_hv_send_ipi; lapic.c:kvm_hv_vapic_msr_write, kvm_pv_send_ipi", when: "with Hyper-V enlightenments or KVM's PV IPI" },
    // The x2APIC MSRs are the local APIC's registers, also reachable as MMIO
    // in xAPIC mode; x2APIC mode keeps what was written there (not ID, LDR).
    Bypass { first: 0x802, last: 0x803, name: "X2APIC_ID", reads: true, writes: false, bits: 0, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x808, last: 0x808, name: "X2APIC_TPR", reads: true, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x80a, last: 0x80a, name: "X2APIC_PPR", reads: true, writes: false, bits: 0, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x80b, last: 0x80b, name: "X2APIC_EOI", reads: false, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x80d, last: 0x80d, name: "X2APIC_LDR", reads: true, writes: false, bits: 0, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x80f, last: 0x80f, name: "X2APIC_SPIV", reads: true, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x810, last: 0x827, name: "X2APIC_ISR0", reads: true, writes: false, bits: 0, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x828, last: 0x828, name: "X2APIC_ESR", reads: true, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x82f, last: 0x830, name: "X2APIC_LVTCMCI", reads: true, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x832, last: 0x838, name: "X2APIC_LVTT", reads: true, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x839, last: 0x839, name: "X2APIC_TMCCT", reads: true, writes: false, bits: 0, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    Bypass { first: 0x83e, last: 0x83e, name: "X2APIC_TDCR", reads: true, writes: true, bits: ALL, path: XAPIC_MMIO, source: XAPIC_MMIO_SRC, when: "" },
    // APICv: VMX writes the x2APIC read bitmap directly (readable registers
    // but TMCCT: lapic.c:kvm_x2apic_disable_read_intercept_reg_mask).
    Bypass { first: 0x802, last: 0x803, name: "X2APIC_ID", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x808, last: 0x808, name: "X2APIC_TPR", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x80a, last: 0x80a, name: "X2APIC_PPR", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x80d, last: 0x80d, name: "X2APIC_LDR", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x80f, last: 0x80f, name: "X2APIC_SPIV", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x810, last: 0x827, name: "X2APIC_ISR0", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x828, last: 0x828, name: "X2APIC_ESR", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x82f, last: 0x830, name: "X2APIC_LVTCMCI", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x832, last: 0x838, name: "X2APIC_LVTT", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    Bypass { first: 0x83e, last: 0x83e, name: "X2APIC_TDCR", reads: true, writes: false, bits: 0, path: APICV_READS, source: APICV_READS_SRC, when: "with APICv" },
    // The VM-exit fast path.
    Bypass { first: 0x830, last: 0x830, name: "X2APIC_ICR", reads: false, writes: true, bits: ALL, path: "the WRMSR fast path", source: "msrs.c:__handle_fastpath_wrmsr", when: "" },
    Bypass { first: 0x6e0, last: 0x6e0, name: "MSR_IA32_TSC_DEADLINE", reads: false, writes: true, bits: ALL, path: "the WRMSR fast path", source: "msrs.c:__handle_fastpath_wrmsr", when: "" },
];

/// A policy entry that denies something a [`Bypass`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The policy file.
    pub file: String,
    /// Line of the policy entry; `None` for MSRs the policy leaves to the
    /// default action.
    pub line: Option<usize>,
    /// The first and last MSR concerned.
    pub msrs: (u32, u32),
    /// The path, as in [`Bypass::path`].
    pub path: &'static str,
    /// What is wrong.
    pub message: String,
    /// The policy may not do otherwise: a write to the floor
    /// ([`crate::danger::check_floor`]). `msrguard check --strict` lets it
    /// pass.
    pub floor: bool,
}

impl Warning {
    /// `file:line: message`, or `file: message` without a line.
    pub fn located(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{}: {}", self.file, l, self.message),
            None => format!("{}: {}", self.file, self.message),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning: {}", self.located())
    }
}

fn span(a: u32, z: u32) -> String {
    if a == z {
        format!("{a:#x}")
    } else {
        format!("{a:#x}..={z:#x}")
    }
}

/// One warning per bypass and policy entry whose read action is not allow
/// (for a path that reads) or that does not allow writing every value the
/// path can write (action not allow, or a write mask without those bits).
pub fn check(file: &str, entries: &[PolicyEntry]) -> Vec<Warning> {
    let table: Vec<Entry> = entries.iter().map(PolicyEntry::to_abi).collect();
    let mut out = Vec::new();
    for b in BYPASSES {
        // Runs of MSRs with the same policy entry and the same findings.
        let mut run: Option<(u32, u32, Option<usize>, bool, bool)> = None;
        let mut flush = |run: Option<(u32, u32, Option<usize>, bool, bool)>| {
            let Some((a, z, entry, read, write)) = run else {
                return;
            };
            if !read && !write {
                return;
            }
            let what = match (write, read) {
                (true, true) => "set and read",
                (true, false) => "set",
                _ => "read",
            };
            let name = if a == b.first {
                b.name
            } else {
                msrguard_core::msr_names::msr_name(a).unwrap_or(b.name)
            };
            let bits = match (write, b.bits) {
                (false, _) | (true, ALL) => String::new(),
                (true, 0) => " (to 0)".to_string(),
                (true, bits) => format!(" (bits {bits:#x})"),
            };
            let when = if b.when.is_empty() {
                String::new()
            } else {
                format!(" [{}]", b.when)
            };
            let default = if entry.is_none() {
                " (not in the policy: the default action applies)"
            } else {
                ""
            };
            // A path that only clears (bits 0) is one a zero write mask, which
            // the floor allows, could let through: not the floor's.
            let floor = write
                && !read
                && b.bits != 0
                && (a..=z).all(|m| crate::danger::dangerous(m).is_some_and(|d| d.in_floor()));
            out.push(Warning {
                file: file.to_string(),
                line: entry.map(|i| entries[i].line),
                msrs: (a, z),
                path: b.path,
                message: format!(
                    "{name} ({}){default} can also be {what}{bits} by {} ({}){when} without msrguard's decision: the policy cannot stop that{}",
                    span(a, z),
                    b.path,
                    b.source,
                    if floor { " (the floor requires the veto)" } else { "" }
                ),
                floor,
            });
        };
        for msr in b.first..=b.last {
            let entry = entries.iter().position(|e| e.first <= msr && msr <= e.last);
            let read = b.reads && decide(&table, msr, false, 0).action != Action::Allow;
            let write = b.writes && decide(&table, msr, true, b.bits).action != Action::Allow;
            run = match run {
                Some((a, _, e, r, w)) if e == entry && r == read && w == write => {
                    Some((a, msr, e, r, w))
                }
                other => {
                    flush(other);
                    Some((msr, msr, entry, read, write))
                }
            };
        }
        flush(run);
    }
    out.sort_by_key(|w| (w.line.unwrap_or(0), w.msrs.0));
    out
}
