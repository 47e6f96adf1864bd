// SPDX-License-Identifier: GPL-2.0

//! The MSRs KVM x86 handles, read from a kernel source tree by the compiler.
//!
//! "Handled" means KVM has code for a guest's RDMSR/WRMSR of the index (or
//! lets the guest reach the hardware MSR directly): an MSR outside this set
//! gets #GP from KVM whatever msrguard decides. libclang parses KVM's sources
//! with the tree's configuration ([`unit`]), so `#if` is resolved, case labels
//! and `case A ... B` ranges come back evaluated, and nothing depends on how
//! the code is laid out. The set is the union of
//!
//! - the case labels of every switch on an MSR index in the functions
//!   [`SOURCES`] counts as guest handlers: the generic handlers
//!   (`kvm_get_msr_common`, `kvm_set_msr_common`, `__kvm_get_msr`,
//!   `__kvm_set_msr`, the MCE helpers), the vendor handlers, nested VMX's
//!   capability MSRs, the PMU and Hyper-V. Every other switch on an MSR index
//!   in those files must be classified there too: a helper for indices a
//!   handler already dispatches (checked: its labels must be in the set), or
//!   not a guest's access (with the reason). A new switch fails the extraction
//!   as "handler added", a handler gone as "handler moved";
//! - the lists KVM reports to VMMs: `msrs_to_save_base`, `msrs_to_save_pmu`,
//!   `emulated_msrs_all`, and VMX's user-return list;
//! - the MSRs whose interception SVM or VMX turns off (pass-through);
//! - Intel PMU counters that `vmx/pmu_intel.c` finds by arithmetic rather
//!   than labels (`get_gp_pmc(pmu, msr, BASE)`: BASE plus up to
//!   `KVM_MAX_NR_INTEL_GP_COUNTERS`; `get_fixed_pmc`: the fixed counters up to
//!   `KVM_MAX_NR_INTEL_FIXED_COUNTERS`) and the LBR stacks, whose location
//!   comes from the host's perf driver (`arch/x86/events/intel/lbr.c`: every
//!   `lbr_from`/`lbr_to`/`lbr_info` base, with the largest constant
//!   `lbr_nr` assigned before it);
//!
//! minus the indices the generic entry points refuse to guests in both
//! directions (`if (!host_initiated) return 1;`: `MSR_KVM_INTERNAL_GUEST_SSP`).
//!
//! The optional parts of KVM in [`unit::FORCED_OPTIONS`] are read as if
//! enabled: the policy must cover every KVM a host may run.
//!
//! Not extracted: Xen's hypercall-page MSR, whose index the VMM chooses at
//! run time (`KVM_XEN_HVM_CONFIG`); it is listed in [`KvmMsrs::notes`].
//! Whether KVM completes an access also depends on the guest's CPUID and
//! KVM's parameters; this set is the upper bound the policy must cover.

#[cfg(test)]
mod tests;
mod unit;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clang::{Clang, EntityKind, Index};

use unit::{bare, descendants, spelling, value, Tree, Unit};

/// A range of MSR indices KVM handles, and where that was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmRange {
    /// First index.
    pub first: u32,
    /// Last index, inclusive.
    pub last: u32,
    /// The file and function (or list) it comes from.
    pub source: String,
}

/// The extracted set.
#[derive(Debug, Default)]
pub struct KvmMsrs {
    /// Every range found (overlapping; see [`KvmMsrs::intervals`]).
    pub ranges: Vec<KvmRange>,
    /// Indices KVM's handlers know but refuse to guests.
    pub guest_refused: Vec<KvmRange>,
    /// What could not be extracted and why.
    pub notes: Vec<String>,
}

impl KvmMsrs {
    /// The handled set as sorted, disjoint, non-adjacent intervals.
    pub fn intervals(&self) -> Vec<(u32, u32)> {
        let mut r: Vec<(u32, u32)> = self.ranges.iter().map(|k| (k.first, k.last)).collect();
        r.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (a, z) in r {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(z),
                _ => out.push((a, z)),
            }
        }
        out
    }

    /// Whether KVM handles `msr`.
    pub fn contains(&self, msr: u32) -> bool {
        self.ranges.iter().any(|k| k.first <= msr && msr <= k.last)
    }

    /// The sources that handle some index of `first..=last`, deduplicated.
    pub fn sources(&self, first: u32, last: u32) -> Vec<&str> {
        let mut s: Vec<&str> = self
            .ranges
            .iter()
            .filter(|k| k.first <= last && first <= k.last)
            .map(|k| k.source.as_str())
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// Why KVM's MSRs could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The tree lacks what the compiler needs to read it.
    #[error("{} is not a configured kernel tree (no {missing}; run `make olddefconfig prepare` there)", kdir.display())]
    NotConfigured {
        /// The tree.
        kdir: PathBuf,
        /// The file that is missing.
        missing: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// libclang could not be loaded.
    #[error("libclang: {0} (install libclang1-19, or set LIBCLANG_PATH to the directory of libclang.so)")]
    Libclang(String),
    /// The compiler did not accept a file.
    #[error("{file}: {reason}")]
    Parse {
        /// The file, relative to the tree.
        file: String,
        /// The compiler's first error in it.
        reason: String,
    },
    /// A switch on an MSR index in a function the extraction does not know.
    #[error("handler added: {function}() in {file} switches on the MSR index `{on}`; classify it in tools/msrguard-policy/src/kvm.rs (SOURCES)")]
    HandlerAdded {
        /// The file.
        file: String,
        /// The function.
        function: String,
        /// The switch's expression.
        on: String,
    },
    /// A function the extraction reads is not where it was.
    #[error("handler moved: {function}() is no longer in {file} with a switch on an MSR index; update tools/msrguard-policy/src/kvm.rs (SOURCES)")]
    HandlerMoved {
        /// The file.
        file: String,
        /// The function.
        function: String,
    },
    /// A KVM source with MSR case labels the extraction does not read.
    #[error("{file} has case labels on MSR indices but the extraction does not read it; add it to tools/msrguard-policy/src/kvm.rs (SOURCES)")]
    FileAdded {
        /// The file.
        file: String,
    },
    /// A helper's labels reach beyond the handlers that dispatch to it.
    #[error("{helper}: {first:#x}..={last:#x} is not in the set the handlers, lists and intercepts give; count the function or say why not (SOURCES)")]
    HelperOutside {
        /// The file and function.
        helper: String,
        /// First index outside.
        first: u32,
        /// Last index outside.
        last: u32,
    },
    /// Something read does not evaluate to a constant.
    #[error("{file}: `{what}` is not a constant the compiler can evaluate")]
    NotConstant {
        /// The file.
        file: String,
        /// The expression, as written.
        what: String,
    },
    /// A value is not a 32-bit MSR index.
    #[error("{what} = {value:#x} is not a 32-bit MSR index")]
    NotIndex {
        /// The expression.
        what: String,
        /// Its value.
        value: u64,
    },
    /// KVM's code no longer has the shape a rule relies on.
    #[error("{file}: {what}; update the rule in tools/msrguard-policy/src/kvm.rs")]
    Shape {
        /// The file.
        file: String,
        /// What changed.
        what: String,
    },
}

/// One interval per line with its first MSR's name and where it was found;
/// then what was refused or not counted (`msrguard kvm-msrs`, and the
/// snapshot test).
impl std::fmt::Display for KvmMsrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (a, z) in self.intervals() {
            let name = msrguard_core::msr_names::msr_name(a).unwrap_or("-");
            let span = if a == z {
                format!("{a:#x}")
            } else {
                format!("{a:#x}-{z:#x}")
            };
            writeln!(f, "{span:<24} {name:<40} {}", self.sources(a, z).join(", "))?;
        }
        for k in &self.guest_refused {
            writeln!(f, "refused to guests: {:#x} ({})", k.first, k.source)?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// Expressions a switch on the MSR index is written with in KVM.
const MSR_VARS: &[&str] = &[
    "msr",
    "index",
    "msr_index",
    "ecx",
    "msr_info->index",
    "msr->index",
];

/// What a switch on an MSR index in a function means for the set.
#[derive(Clone, Copy)]
enum Role {
    /// A guest's RDMSR/WRMSR is dispatched here: its labels are handled.
    Handles,
    /// A helper for indices a counted handler already dispatches (which);
    /// checked: every label must be in the set read from the rest.
    Within(&'static str),
    /// Not on the path of a guest's access (why).
    Not(&'static str),
}

/// A KVM source file the extraction reads, the option that builds it, and
/// every function in it with a switch on an MSR index.
struct Source {
    file: &'static str,
    option: Option<&'static str>,
    functions: &'static [(&'static str, Role)],
}

const NOT_GUEST_FEATURE: Role =
    Role::Not("feature MSRs for the VMM's KVM_GET_MSRS on /dev/kvm, not a guest's access");
const NOT_GUEST_LIST: Role =
    Role::Not("filters the MSR lists KVM reports to VMMs by what the host supports");

/// The generic entry points whose `if (!host_initiated) return 1;` labels
/// refuse an index to guests, for reads and for writes.
const GATE_READ: &str = "__kvm_get_msr";
const GATE_WRITE: &str = "__kvm_set_msr";

/// The files read, in order, with their switches.
const SOURCES: &[Source] = &[
    Source {
        file: "arch/x86/kvm/msrs.c",
        option: None,
        functions: &[
            ("kvm_get_msr_common", Role::Handles),
            ("kvm_set_msr_common", Role::Handles),
            ("get_msr_mce", Role::Handles),
            ("set_msr_mce", Role::Handles),
            (GATE_READ, Role::Handles),
            (GATE_WRITE, Role::Handles),
            ("kvm_get_feature_msr", NOT_GUEST_FEATURE),
            ("kvm_probe_msr_to_save", NOT_GUEST_LIST),
            (
                "__handle_fastpath_wrmsr",
                Role::Within("kvm_set_msr_common (its fast path)"),
            ),
            (
                "is_xstate_managed_msr",
                Role::Within("the handlers (which MSRs live in the guest's FPU state)"),
            ),
        ],
    },
    Source {
        file: "arch/x86/kvm/mtrr.c",
        option: None,
        functions: &[(
            "find_mtrr",
            Role::Within("kvm_get_msr_common/kvm_set_msr_common (MTRRs)"),
        )],
    },
    Source {
        file: "arch/x86/kvm/pmu.c",
        option: None,
        functions: &[
            ("kvm_pmu_get_msr", Role::Handles),
            ("kvm_pmu_set_msr", Role::Handles),
        ],
    },
    Source {
        file: "arch/x86/kvm/hyperv.c",
        option: Some("CONFIG_KVM_HYPERV"),
        functions: &[
            ("kvm_hv_get_msr_pw", Role::Handles),
            ("kvm_hv_get_msr", Role::Handles),
            ("kvm_hv_set_msr_pw", Role::Handles),
            ("kvm_hv_set_msr", Role::Handles),
            ("synic_get_msr", Role::Within("kvm_hv_get_msr (SynIC)")),
            ("synic_set_msr", Role::Within("kvm_hv_set_msr (SynIC)")),
            (
                "syndbg_get_msr",
                Role::Within("kvm_hv_get_msr_pw (debugger)"),
            ),
            (
                "syndbg_set_msr",
                Role::Within("kvm_hv_set_msr_pw (debugger)"),
            ),
            (
                "kvm_hv_msr_partition_wide",
                Role::Within("the Hyper-V handlers (partition-wide or per vCPU)"),
            ),
            (
                "hv_check_msr_access",
                Role::Within("the Hyper-V handlers (the guest's Hyper-V CPUID)"),
            ),
        ],
    },
    Source {
        file: "arch/x86/kvm/svm/svm.c",
        option: None,
        functions: &[
            ("svm_get_msr", Role::Handles),
            ("svm_set_msr", Role::Handles),
            (
                "svm_get_feature_msr",
                Role::Within("svm_set_msr (DE_CFG's supported bits; also the VMM's feature MSRs)"),
            ),
            ("svm_has_emulated_msr", NOT_GUEST_LIST),
            (
                "svm_vmcb_lbr",
                Role::Within("svm_get_msr/svm_set_msr (LBR state in the VMCB)"),
            ),
        ],
    },
    Source {
        file: "arch/x86/kvm/svm/sev.c",
        option: Some("CONFIG_KVM_AMD_SEV"),
        functions: &[],
    },
    Source {
        file: "arch/x86/kvm/svm/pmu.c",
        option: None,
        functions: &[
            ("amd_is_valid_msr", Role::Handles),
            ("get_gp_pmc_amd", Role::Handles),
        ],
    },
    Source {
        file: "arch/x86/kvm/vmx/vmx.c",
        option: None,
        functions: &[
            ("vmx_get_msr", Role::Handles),
            ("vmx_set_msr", Role::Handles),
            ("vmx_get_feature_msr", NOT_GUEST_FEATURE),
            ("vmx_has_emulated_msr", NOT_GUEST_LIST),
            (
                "add_atomic_switch_msr",
                Role::Not("values VM-entry and VM-exit load, not a guest's access"),
            ),
            (
                "clear_atomic_switch_msr",
                Role::Not("values VM-entry and VM-exit load, not a guest's access"),
            ),
        ],
    },
    Source {
        file: "arch/x86/kvm/vmx/nested.c",
        option: None,
        functions: &[
            ("vmx_get_vmx_msr", Role::Handles),
            (
                "vmx_set_vmx_msr",
                Role::Not(
                    "the VMM restoring VMX capability MSRs: vmx_set_msr refuses guests first",
                ),
            ),
            (
                "vmx_get_control_msr",
                Role::Not("the VMM restoring VMX capability MSRs (vmx_set_vmx_msr)"),
            ),
            (
                "vmx_get_fixed0_msr",
                Role::Not("the VMM restoring VMX capability MSRs (vmx_set_vmx_msr)"),
            ),
        ],
    },
    Source {
        file: "arch/x86/kvm/vmx/hyperv.c",
        option: Some("CONFIG_KVM_HYPERV"),
        functions: &[(
            "nested_evmcs_filter_control_msr",
            Role::Within("vmx_get_msr (VMX capability MSRs under enlightened VMCS)"),
        )],
    },
    Source {
        file: "arch/x86/kvm/vmx/pmu_intel.c",
        option: None,
        functions: &[
            ("intel_is_valid_msr", Role::Handles),
            ("intel_pmu_get_msr", Role::Handles),
            ("intel_pmu_set_msr", Role::Handles),
        ],
    },
    Source {
        file: "arch/x86/kvm/vmx/tdx.c",
        option: Some("CONFIG_KVM_INTEL_TDX"),
        functions: &[
            (
                "tdx_has_emulated_msr",
                Role::Not("which MSRs a TDX guest's TDVMCALL may reach the common handlers with"),
            ),
            ("tdx_get_msr", Role::Handles),
            ("tdx_set_msr", Role::Handles),
        ],
    },
];

/// Arrays of MSR indices: (file, array).
const LISTS: &[(&str, &str)] = &[
    ("arch/x86/kvm/msrs.c", "msrs_to_save_base"),
    ("arch/x86/kvm/msrs.c", "msrs_to_save_pmu"),
    ("arch/x86/kvm/msrs.c", "emulated_msrs_all"),
    ("arch/x86/kvm/vmx/vmx.c", "vmx_uret_msrs_list"),
];

/// Intercept-control calls (second argument: the MSR).
const INTERCEPTS: &[&str] = &[
    "svm_set_intercept_for_msr",
    "svm_disable_intercept_for_msr",
    "svm_enable_intercept_for_msr",
    "vmx_set_intercept_for_msr",
    "vmx_disable_intercept_for_msr",
    "vmx_enable_intercept_for_msr",
];
/// The files whose intercept calls count.
const INTERCEPT_FILES: &[&str] = &[
    "arch/x86/kvm/svm/svm.c",
    "arch/x86/kvm/svm/sev.c",
    "arch/x86/kvm/vmx/vmx.c",
];

const PMU_INTEL: &str = "arch/x86/kvm/vmx/pmu_intel.c";
/// Limits `vmx/pmu_intel.c`'s arithmetic uses, evaluated in its context.
const PMU_PROBES: &[&str] = &[
    "KVM_MAX_NR_INTEL_GP_COUNTERS",
    "KVM_MAX_NR_INTEL_FIXED_COUNTERS",
];
const PERF_LBR: &str = "arch/x86/events/intel/lbr.c";

/// libclang allows one `Clang` per process at a time.
static LIBCLANG: Mutex<()> = Mutex::new(());

fn index_of(what: &str, v: u64) -> Result<u32, ExtractError> {
    u32::try_from(v).map_err(|_| ExtractError::NotIndex {
        what: what.to_string(),
        value: v,
    })
}

/// The last index of `count` from `first` (`count` at least 1).
fn last_of(what: &str, first: u32, count: u32) -> Result<u32, ExtractError> {
    count
        .checked_sub(1)
        .and_then(|n| first.checked_add(n))
        .ok_or_else(|| ExtractError::NotIndex {
            what: format!("{what} + {count} - 1"),
            value: u64::from(first) + u64::from(count),
        })
}

/// What the reading collects before the refused indices leave the set.
#[derive(Default)]
struct Reading {
    out: KvmMsrs,
    host_read: Vec<KvmRange>,
    host_write: Vec<KvmRange>,
    helpers: Vec<KvmRange>,
}

/// Extracts the set from the kernel tree at `kdir`.
pub fn extract(kdir: &Path) -> Result<KvmMsrs, ExtractError> {
    let tree = Tree::open(kdir)?;
    check_files(&tree)?;
    // A poisoned lock only means another extraction panicked; libclang's
    // instance is gone with it.
    let _one = LIBCLANG.lock().unwrap_or_else(|e| e.into_inner());
    let clang = Clang::new().map_err(ExtractError::Libclang)?;
    let index = Index::new(&clang, false, false);
    let mut r = Reading::default();

    for src in SOURCES {
        if let Some(option) = src.option {
            if !tree.reads(option) {
                continue;
            }
        }
        let probes = if src.file == PMU_INTEL {
            PMU_PROBES
        } else {
            &[]
        };
        let u = Unit::parse(&index, &tree, src.file, probes)?;
        read_switches(&u, src, &mut r)?;
        for (_, array) in LISTS.iter().filter(|(f, _)| *f == src.file) {
            read_list(&u, array, &mut r.out)?;
        }
        if INTERCEPT_FILES.contains(&src.file) {
            read_intercepts(&u, &mut r.out)?;
        }
        if src.file == PMU_INTEL {
            intel_pmu_rules(&u, &mut r.out)?;
        }
        if src.file == "arch/x86/kvm/vmx/vmx.c" && !excludes_arch_lbr(&u) {
            // KVM offers LBRs only on hosts without architectural LBRs, so
            // the MSR_ARCH_LBR_* stacks never reach a guest (below).
            return Err(ExtractError::Shape {
                file: u.rel.clone(),
                what: "LBR virtualization no longer excludes X86_FEATURE_ARCH_LBR hosts".into(),
            });
        }
        if src.file == "arch/x86/kvm/msrs.c"
            && u.function("kvm_xen_is_hypercall_page_msr").is_some()
        {
            r.out.notes.push(
                "xen.h: the Xen hypercall-page MSR is whatever index the VMM sets with KVM_XEN_HVM_CONFIG; not a fixed index, not extracted".to_string(),
            );
        }
    }
    let lbr = Unit::parse(&index, &tree, PERF_LBR, &[])?;
    lbr_stacks(&lbr, &mut r.out)?;

    remove_refused(&mut r);
    for h in &r.helpers {
        let outside: Vec<u32> = (h.first..=h.last).filter(|&m| !r.out.contains(m)).collect();
        if let (Some(&first), Some(&last)) = (outside.first(), outside.last()) {
            return Err(ExtractError::HelperOutside {
                helper: h.source.clone(),
                first,
                last,
            });
        }
    }
    r.out.ranges.sort_by_key(|k| (k.first, k.last));
    Ok(r.out)
}

/// Whether code the compiler sees (not an `#if`'d-out part) tests
/// `!cpu_feature_enabled(X86_FEATURE_ARCH_LBR)`.
fn excludes_arch_lbr(u: &Unit<'_>) -> bool {
    u.functions().iter().any(|f| {
        descendants(f, EntityKind::UnaryOperator, &[])
            .iter()
            .any(|op| spelling(op) == "!cpu_feature_enabled(X86_FEATURE_ARCH_LBR)")
    })
}

/// Every KVM source with case labels on MSR names must be one the
/// extraction reads (a cheap look at the text, so that a new file of MSR
/// handling is not silently left out; the files read are read by the
/// compiler).
fn check_files(tree: &Tree) -> Result<(), ExtractError> {
    let mut files = Vec::new();
    for dir in ["arch/x86/kvm", "arch/x86/kvm/svm", "arch/x86/kvm/vmx"] {
        let path = tree.kdir.join(dir);
        let entries = std::fs::read_dir(&path).map_err(|source| ExtractError::Io {
            path: path.clone(),
            source,
        })?;
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "c") {
                files.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    files.sort();
    for file in files {
        if SOURCES.iter().any(|s| s.file == file) {
            continue;
        }
        let path = tree.kdir.join(&file);
        let text = std::fs::read_to_string(&path).map_err(|source| ExtractError::Io {
            path: path.clone(),
            source,
        })?;
        // A line `case MSR_...` or `case HV_X64_MSR_...`: the names KVM's
        // switches on the index use (a cheap tripwire, not a reading).
        let labels_msr = text.lines().any(|line| {
            line.trim_start()
                .strip_prefix("case")
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .map(str::trim_start)
                .is_some_and(|label| label.starts_with("MSR_") || label.starts_with("HV_X64_MSR_"))
        });
        if labels_msr {
            return Err(ExtractError::FileAdded { file });
        }
    }
    Ok(())
}

/// The switches on an MSR index in `u`'s functions, by their role.
fn read_switches(u: &Unit<'_>, src: &Source, r: &mut Reading) -> Result<(), ExtractError> {
    let mut seen: Vec<&str> = Vec::new();
    for f in u.functions() {
        let name = f.get_name().unwrap_or_default();
        for sw in descendants(&f, EntityKind::SwitchStmt, &[]) {
            let Some(cond) = sw.get_children().first().copied() else {
                continue;
            };
            let on = spelling(&bare(cond));
            if !MSR_VARS.contains(&on.as_str()) {
                continue;
            }
            let Some(&(known, role)) = src.functions.iter().find(|(n, _)| *n == name) else {
                return Err(ExtractError::HandlerAdded {
                    file: u.rel.clone(),
                    function: name,
                    on,
                });
            };
            seen.push(known);
            let source = format!("{} {known}", u.short());
            let (to, refused) = match role {
                Role::Handles if known == GATE_READ => {
                    (&mut r.out.ranges, Refused::Into(&mut r.host_read))
                }
                Role::Handles if known == GATE_WRITE => {
                    (&mut r.out.ranges, Refused::Into(&mut r.host_write))
                }
                // The guest cannot make this access; the other direction
                // has its own label.
                Role::Handles => (&mut r.out.ranges, Refused::Drop),
                Role::Within(of) => {
                    let helper = format!("{source}, a helper of {of},");
                    read_labels(u, &sw, &helper, &mut r.helpers, Refused::Keep)?;
                    continue;
                }
                Role::Not(why) => {
                    r.out
                        .notes
                        .push(format!("{source}: its MSR switch is not counted: {why}"));
                    continue;
                }
            };
            read_labels(u, &sw, &source, to, refused)?;
        }
    }
    for (name, _) in src.functions {
        if !seen.contains(name) {
            return Err(ExtractError::HandlerMoved {
                file: u.rel.clone(),
                function: name.to_string(),
            });
        }
    }
    Ok(())
}

/// What becomes of a case group whose first statement is
/// `if (!...host_initiated) return 1;`: the index is refused to guests there.
enum Refused<'a> {
    Keep,
    Drop,
    Into(&'a mut Vec<KvmRange>),
}

/// The labels of one switch (not of switches nested in it).
fn read_labels(
    u: &Unit<'_>,
    sw: &clang::Entity<'_>,
    source: &str,
    to: &mut Vec<KvmRange>,
    mut refused: Refused<'_>,
) -> Result<(), ExtractError> {
    let body = sw
        .get_children()
        .last()
        .copied()
        .ok_or_else(|| u.not_constant(source))?;
    let mut any = false;
    for case in descendants(&body, EntityKind::CaseStmt, &[EntityKind::SwitchStmt]) {
        let parts = case.get_children();
        let (first, last) = match parts.as_slice() {
            [a, _stmt] => (*a, *a),
            [a, z, _stmt] => (*a, *z),
            _ => return Err(u.not_constant(&spelling(&case))),
        };
        let lo = index_of(
            &spelling(&first),
            value(first).ok_or_else(|| u.not_constant(&spelling(&first)))?,
        )?;
        let hi = index_of(
            &spelling(&last),
            value(last).ok_or_else(|| u.not_constant(&spelling(&last)))?,
        )?;
        if hi < lo {
            return Err(ExtractError::Shape {
                file: u.rel.clone(),
                what: format!("{source}: case {} is empty", spelling(&case)),
            });
        }
        any = true;
        let range = KvmRange {
            first: lo,
            last: hi,
            source: source.to_string(),
        };
        match &mut refused {
            Refused::Into(h) if refuses_guests(&case) => h.push(range),
            Refused::Drop if refuses_guests(&case) => {}
            _ => to.push(range),
        }
    }
    if !any {
        return Err(ExtractError::Shape {
            file: u.rel.clone(),
            what: format!("{source}: a switch on an MSR index without case labels"),
        });
    }
    Ok(())
}

/// Whether the statement a case group starts with is
/// `if (!...host_initiated) return 1;` (or `if (... || !...host_initiated)`).
fn refuses_guests(case: &clang::Entity<'_>) -> bool {
    let mut stmt = *case;
    while matches!(
        stmt.get_kind(),
        EntityKind::CaseStmt | EntityKind::DefaultStmt
    ) {
        match stmt.get_children().last() {
            Some(s) => stmt = *s,
            None => return false,
        }
    }
    if stmt.get_kind() != EntityKind::IfStmt {
        return false;
    }
    let parts = stmt.get_children();
    let [cond, then] = parts.as_slice() else {
        return false;
    };
    let cond = spelling(&bare(*cond));
    let mut ret = *then;
    if ret.get_kind() == EntityKind::CompoundStmt {
        match ret.get_children().as_slice() {
            [only] => ret = *only,
            _ => return false,
        }
    }
    // `!host_initiated` alone, or as one side of an `||`.
    let refuses = |part: &str| {
        part.strip_prefix('!').is_some_and(|p| {
            p.ends_with("host_initiated")
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_->.".contains(c))
        })
    };
    cond.split("||").any(refuses)
        && ret.get_kind() == EntityKind::ReturnStmt
        && ret.get_children().first().copied().and_then(value) == Some(1)
}

fn read_list(u: &Unit<'_>, array: &str, out: &mut KvmMsrs) -> Result<(), ExtractError> {
    let var = u.variable(array).ok_or_else(|| ExtractError::Shape {
        file: u.rel.clone(),
        what: format!("no array {array}[]"),
    })?;
    let init = var
        .get_children()
        .into_iter()
        .find(|c| c.get_kind() == EntityKind::InitListExpr)
        .ok_or_else(|| ExtractError::Shape {
            file: u.rel.clone(),
            what: format!("{array}[] has no initializer list"),
        })?;
    for item in init.get_children() {
        let what = spelling(&item);
        let v = index_of(&what, value(item).ok_or_else(|| u.not_constant(&what))?)?;
        out.ranges.push(KvmRange {
            first: v,
            last: v,
            source: format!("{} {array}[]", u.short()),
        });
    }
    Ok(())
}

fn read_intercepts(u: &Unit<'_>, out: &mut KvmMsrs) -> Result<(), ExtractError> {
    for f in u.functions() {
        for call in descendants(&f, EntityKind::CallExpr, &[]) {
            let Some(callee) = call.get_name().filter(|n| INTERCEPTS.contains(&n.as_str())) else {
                continue;
            };
            // Children: the callee, then the arguments.
            let Some(arg) = call.get_children().get(2).copied() else {
                continue;
            };
            let what = spelling(&arg);
            match value(arg) {
                Some(v) => {
                    let m = index_of(&what, v)?;
                    out.ranges.push(KvmRange {
                        first: m,
                        last: m,
                        source: format!("{} {callee} (pass-through)", u.short()),
                    });
                }
                // Loops over counters (`MSR_K7_PERFCTR0 + i`): the PMU
                // ranges cover them; say so rather than guess.
                None if descendants(&arg, EntityKind::DeclRefExpr, &[])
                    .iter()
                    .any(|d| d.get_name().as_deref() == Some("i")) =>
                {
                    out.notes.push(format!(
                        "{}: {callee}({what}) not evaluated (loop variable)",
                        u.short()
                    ));
                }
                None => return Err(u.not_constant(&format!("{callee}({what})"))),
            }
        }
    }
    Ok(())
}

/// Intel PMU MSRs `vmx/pmu_intel.c` recognizes by arithmetic.
fn intel_pmu_rules(u: &Unit<'_>, out: &mut KvmMsrs) -> Result<(), ExtractError> {
    let shape = |what: &str| ExtractError::Shape {
        file: u.rel.clone(),
        what: what.to_string(),
    };
    let nr_gp = index_of(PMU_PROBES[0], u.probe(0, PMU_PROBES[0])?)?;
    let nr_fixed = index_of(PMU_PROBES[1], u.probe(1, PMU_PROBES[1])?)?;

    // get_gp_pmc(pmu, msr, BASE): BASE .. BASE + nr_arch_gp_counters - 1.
    let gp = u
        .function("get_gp_pmc")
        .ok_or_else(|| shape("no get_gp_pmc() (pmu.h)"))?;
    if !spelling(&gp).contains("msr>=base&&msr<base+pmu->nr_arch_gp_counters") {
        return Err(shape(
            "pmu.h: get_gp_pmc() no longer tests base..base+nr_arch_gp_counters",
        ));
    }
    let mut bases = Vec::new();
    for f in u.functions() {
        for call in descendants(&f, EntityKind::CallExpr, &[]) {
            if call.get_name().as_deref() != Some("get_gp_pmc") {
                continue;
            }
            let Some(base) = call.get_children().get(3).copied() else {
                continue;
            };
            let what = spelling(&base);
            let b = index_of(&what, value(base).ok_or_else(|| u.not_constant(&what))?)?;
            if !bases.iter().any(|(_, v)| *v == b) {
                bases.push((what, b));
            }
        }
    }
    if bases.is_empty() {
        return Err(shape("no get_gp_pmc() call"));
    }
    for (what, b) in bases {
        out.ranges.push(KvmRange {
            first: b,
            last: last_of(&what, b, nr_gp)?,
            source: format!("vmx/pmu_intel.c get_gp_pmc({what}) x KVM_MAX_NR_INTEL_GP_COUNTERS"),
        });
    }

    // get_fixed_pmc(pmu, msr): the fixed counters from `int base = ...`.
    let fixed = u
        .function("get_fixed_pmc")
        .ok_or_else(|| shape("no get_fixed_pmc() (pmu.h)"))?;
    if !spelling(&fixed).contains("msr<base+pmu->nr_arch_fixed_counters") {
        return Err(shape(
            "pmu.h: get_fixed_pmc() no longer tests base+nr_arch_fixed_counters",
        ));
    }
    let base = descendants(&fixed, EntityKind::VarDecl, &[])
        .into_iter()
        .find(|v| v.get_name().as_deref() == Some("base"))
        .and_then(|v| v.get_children().last().copied())
        .ok_or_else(|| shape("pmu.h: get_fixed_pmc() has no `base = ...`"))?;
    let what = spelling(&base);
    let b = index_of(&what, value(base).ok_or_else(|| u.not_constant(&what))?)?;
    out.ranges.push(KvmRange {
        first: b,
        last: last_of(&what, b, nr_fixed)?,
        source: "vmx/pmu_intel.c get_fixed_pmc() x KVM_MAX_NR_INTEL_FIXED_COUNTERS".to_string(),
    });

    // LBR: `index == X` tests; the stacks come from the host's perf driver.
    let lbr = u
        .function("intel_pmu_is_valid_lbr_msr")
        .ok_or_else(|| shape("no intel_pmu_is_valid_lbr_msr()"))?;
    for field in ["records->from", "records->to", "records->info"] {
        if !spelling(&lbr).contains(field) {
            return Err(shape(&format!(
                "intel_pmu_is_valid_lbr_msr() no longer uses {field}"
            )));
        }
    }
    for op in descendants(&lbr, EntityKind::BinaryOperator, &[]) {
        let parts = op.get_children();
        let [lhs, rhs] = parts.as_slice() else {
            continue;
        };
        let text = spelling(&op);
        if spelling(&bare(*lhs)) != "index" || !text.starts_with("index==") {
            continue;
        }
        let what = spelling(rhs);
        let v = index_of(&what, value(*rhs).ok_or_else(|| u.not_constant(&what))?)?;
        out.ranges.push(KvmRange {
            first: v,
            last: v,
            source: "vmx/pmu_intel.c intel_pmu_is_valid_lbr_msr".to_string(),
        });
    }
    Ok(())
}

/// The LBR stacks the host's perf driver sets up: each init function sets
/// `x86_pmu.lbr_nr` before its stacks, so a stack's depth is the largest
/// constant `lbr_nr` in force where its base is assigned.
fn lbr_stacks(u: &Unit<'_>, out: &mut KvmMsrs) -> Result<(), ExtractError> {
    let mut nr = 0u32;
    let mut stacks: Vec<(String, u32, u32)> = Vec::new(); // name, base, depth
    for f in u.functions() {
        for op in descendants(&f, EntityKind::BinaryOperator, &[]) {
            let parts = op.get_children();
            let [lhs, rhs] = parts.as_slice() else {
                continue;
            };
            let field = spelling(lhs);
            let Some(field) = field.strip_prefix("x86_pmu.lbr_") else {
                continue;
            };
            // An assignment: `=` after the field, not `==`.
            let text = spelling(&op);
            let assigned = text
                .strip_prefix(&format!("x86_pmu.lbr_{field}="))
                .is_some_and(|rest| !rest.starts_with('='));
            if !assigned {
                continue;
            }
            match field {
                // A depth read from the CPU at run time is not a constant:
                // it does not raise the stacks' depth.
                "nr" => nr = value(*rhs).and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                "from" | "to" | "info" => {
                    let name = spelling(rhs);
                    let v = value(*rhs).ok_or_else(|| u.not_constant(&name))?;
                    let base = index_of(&name, v)?;
                    match stacks.iter_mut().find(|s| s.0 == name) {
                        Some(s) => s.2 = s.2.max(nr),
                        None => stacks.push((name, base, nr)),
                    }
                }
                _ => {}
            }
        }
    }
    if stacks.iter().all(|s| s.2 == 0) {
        return Err(ExtractError::Shape {
            file: u.rel.clone(),
            what: "no x86_pmu.lbr_nr/lbr_from assignments".into(),
        });
    }
    stacks.sort();
    for (name, base, depth) in stacks {
        // Architectural LBRs: never offered to a guest (vmx.c, checked).
        if name.starts_with("MSR_ARCH_LBR") {
            continue;
        }
        if depth == 0 {
            return Err(ExtractError::Shape {
                file: u.rel.clone(),
                what: format!("no constant lbr_nr before x86_pmu.lbr_* = {name}"),
            });
        }
        out.ranges.push(KvmRange {
            first: base,
            last: last_of(&name, base, depth)?,
            source: format!("vmx/pmu_intel.c LBR stack {name} (host perf, up to {depth} entries)"),
        });
    }
    Ok(())
}

/// Indices refused to guests in both directions leave the set.
fn remove_refused(r: &mut Reading) {
    let refused = |v: &[KvmRange], m: u32| v.iter().any(|k| k.first <= m && m <= k.last);
    let mut gone = BTreeSet::new();
    for k in r.host_read.iter().chain(&r.host_write) {
        for m in k.first..=k.last {
            if refused(&r.host_read, m) && refused(&r.host_write, m) {
                gone.insert(m);
            }
        }
    }
    for &m in &gone {
        let mut kept = Vec::new();
        for k in r.out.ranges.drain(..) {
            if k.first <= m && m <= k.last {
                if k.first < m {
                    kept.push(KvmRange {
                        last: m - 1,
                        ..k.clone()
                    });
                }
                if m < k.last {
                    kept.push(KvmRange {
                        first: m + 1,
                        ..k.clone()
                    });
                }
            } else {
                kept.push(k);
            }
        }
        r.out.ranges = kept;
        r.out.guest_refused.push(KvmRange {
            first: m,
            last: m,
            source: format!("{GATE_READ}/{GATE_WRITE}: if (!host_initiated) return 1"),
        });
    }
}
