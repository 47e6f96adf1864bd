// SPDX-License-Identifier: GPL-2.0

//! The MSRs KVM x86 handles, extracted from a kernel source tree.
//!
//! "Handled" means KVM has code for a guest's RDMSR/WRMSR of the index (or
//! lets the guest reach the hardware MSR directly): an MSR outside this set
//! gets #GP from KVM whatever msrguard decides. The set is the union of
//!
//! - the `case` labels and `case A ... B` ranges of the switches on the MSR
//!   index in the generic handlers (`kvm_get_msr_common`,
//!   `kvm_set_msr_common`, `__kvm_get_msr`, `__kvm_set_msr`, the MCE
//!   helpers), the vendor handlers (`svm_get_msr`/`svm_set_msr`,
//!   `vmx_get_msr`/`vmx_set_msr`, nested VMX's capability MSRs), the PMU
//!   (`pmu.c`, `svm/pmu.c`, `vmx/pmu_intel.c`) and Hyper-V (`hyperv.c`);
//! - the lists KVM reports to VMMs: `msrs_to_save_base`, `msrs_to_save_pmu`,
//!   `emulated_msrs_all`, and VMX's user-return list;
//! - the MSRs whose interception SVM or VMX turns off (pass-through);
//! - Intel PMU counters that `vmx/pmu_intel.c` finds by arithmetic rather
//!   than labels (`get_gp_pmc(pmu, msr, BASE)`: BASE plus up to
//!   `KVM_MAX_NR_INTEL_GP_COUNTERS`; `get_fixed_pmc`: the fixed counters up to
//!   `KVM_MAX_NR_INTEL_FIXED_COUNTERS`) and the LBR stacks, whose location
//!   comes from the host's perf driver (`arch/x86/events/intel/lbr.c`: every
//!   `lbr_from`/`lbr_to`/`lbr_info` base, with the largest literal
//!   `lbr_nr`);
//!
//! minus the indices the generic entry points refuse to guests in both
//! directions (`if (!host_initiated) return 1;`: `MSR_KVM_INTERNAL_GUEST_SSP`).
//!
//! Not extracted: Xen's hypercall-page MSR, whose index the VMM chooses at
//! run time (`KVM_XEN_HVM_CONFIG`); it is listed in [`KvmMsrs::notes`].
//! Whether KVM completes an access also depends on the guest's CPUID and
//! KVM's parameters; this set is the upper bound the policy must cover.
//!
//! Macro names resolve through the `#define`s of the MSR headers
//! (`msr-index.h`, `kvm_para.h`, `mtrr.h`, `hvgdk_mini.h`, `apicdef.h`,
//! `kvm_host.h`) and of KVM's own headers and sources. Anything that does
//! not resolve is an error naming the expression: a new shape in a newer
//! kernel fails loudly instead of shrinking the set.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cexpr::{self, Defines};

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

/// Switch expressions that are the MSR index in KVM's handlers.
const MSR_VARS: &[&str] = &[
    "msr",
    "index",
    "msr_index",
    "ecx",
    "msr_info->index",
    "msr->index",
];

/// Handler functions whose MSR switches count, and the files they may be in
/// (the first file that defines the function is used).
const HANDLERS: &[(&[&str], &[&str])] = &[
    (
        &["arch/x86/kvm/msrs.c", "arch/x86/kvm/x86.c"],
        &[
            "kvm_get_msr_common",
            "kvm_set_msr_common",
            "get_msr_mce",
            "set_msr_mce",
            "__kvm_get_msr",
            "__kvm_set_msr",
        ],
    ),
    (&["arch/x86/kvm/svm/svm.c"], &["svm_get_msr", "svm_set_msr"]),
    (&["arch/x86/kvm/vmx/vmx.c"], &["vmx_get_msr", "vmx_set_msr"]),
    (
        &["arch/x86/kvm/vmx/nested.c"],
        &["vmx_get_vmx_msr", "vmx_set_vmx_msr"],
    ),
    (
        &["arch/x86/kvm/pmu.c"],
        &["kvm_pmu_get_msr", "kvm_pmu_set_msr"],
    ),
    (
        &["arch/x86/kvm/svm/pmu.c"],
        &["amd_is_valid_msr", "get_gp_pmc_amd"],
    ),
    (
        &["arch/x86/kvm/vmx/pmu_intel.c"],
        &[
            "intel_is_valid_msr",
            "intel_pmu_get_msr",
            "intel_pmu_set_msr",
        ],
    ),
    (
        &["arch/x86/kvm/hyperv.c"],
        &[
            "kvm_hv_get_msr_pw",
            "kvm_hv_get_msr",
            "kvm_hv_set_msr_pw",
            "kvm_hv_set_msr",
        ],
    ),
];

/// The generic entry points whose `if (!host_initiated) return 1;` labels
/// refuse an index to guests, for reads and for writes.
const GATE_READ: &str = "__kvm_get_msr";
const GATE_WRITE: &str = "__kvm_set_msr";

/// Arrays of MSR indices: (file, array).
const LISTS: &[(&str, &str)] = &[
    ("arch/x86/kvm/msrs.c", "msrs_to_save_base"),
    ("arch/x86/kvm/msrs.c", "msrs_to_save_pmu"),
    ("arch/x86/kvm/msrs.c", "emulated_msrs_all"),
    ("arch/x86/kvm/vmx/vmx.c", "vmx_uret_msrs_list"),
];

/// Intercept-control calls (second argument: the MSR), by file.
const INTERCEPTS: &[(&str, &[&str])] = &[
    (
        "arch/x86/kvm/svm/svm.c",
        &[
            "svm_set_intercept_for_msr",
            "svm_disable_intercept_for_msr",
            "svm_enable_intercept_for_msr",
        ],
    ),
    (
        "arch/x86/kvm/svm/sev.c",
        &[
            "svm_set_intercept_for_msr",
            "svm_disable_intercept_for_msr",
            "svm_enable_intercept_for_msr",
        ],
    ),
    (
        "arch/x86/kvm/vmx/vmx.c",
        &[
            "vmx_set_intercept_for_msr",
            "vmx_disable_intercept_for_msr",
            "vmx_enable_intercept_for_msr",
        ],
    ),
];

/// Headers whose `#define`s name MSRs and KVM's limits.
const HEADERS: &[&str] = &[
    "arch/x86/include/asm/msr-index.h",
    "arch/x86/include/uapi/asm/kvm_para.h",
    "arch/x86/include/uapi/asm/mtrr.h",
    "arch/x86/include/asm/apicdef.h",
    "arch/x86/include/asm/kvm_host.h",
    "arch/x86/include/asm/perf_event.h",
    "include/hyperv/hvgdk_mini.h",
];

/// Directories whose `.h` files are read too (KVM's private headers).
const HEADER_DIRS: &[&str] = &[
    "arch/x86/kvm",
    "arch/x86/kvm/svm",
    "arch/x86/kvm/vmx",
    "arch/x86/kvm/mmu",
];

fn read(kdir: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(kdir.join(rel))
        .map_err(|e| format!("{}: {e}", kdir.join(rel).display()))
}

/// Collects the macro definitions the extraction resolves names through.
pub fn defines(kdir: &Path) -> Result<Defines, String> {
    let mut d = Defines::default();
    for h in HEADERS {
        d.add_text(h, &read(kdir, h)?);
    }
    for dir in HEADER_DIRS {
        let mut files: Vec<_> = std::fs::read_dir(kdir.join(dir))
            .map_err(|e| format!("{}: {e}", kdir.join(dir).display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "h"))
            .collect();
        files.sort();
        for f in files {
            let rel = f.strip_prefix(kdir).unwrap_or(&f).display().to_string();
            d.add_text(
                &rel,
                &std::fs::read_to_string(&f).map_err(|e| format!("{rel}: {e}"))?,
            );
        }
    }
    Ok(d)
}

fn to_u32(v: u64, what: &str) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} = {v:#x} is not a 32-bit MSR index"))
}

/// Turns case labels into ranges (`add`) and host-only indices.
fn add_labels(
    defs: &Defines,
    labels: &[cexpr::CaseLabel],
    source: &str,
    out: &mut Vec<KvmRange>,
    host_only: &mut Vec<KvmRange>,
) -> Result<(), String> {
    for l in labels {
        let first = to_u32(defs.eval(&l.first)?, &l.first)?;
        let last = match &l.last {
            Some(z) => to_u32(defs.eval(z)?, z)?,
            None => first,
        };
        if last < first {
            return Err(format!(
                "{source}: case {} ... {} is empty",
                l.first,
                l.last.as_deref().unwrap_or("")
            ));
        }
        let r = KvmRange {
            first,
            last,
            source: source.to_string(),
        };
        if l.host_only {
            host_only.push(r);
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// Extracts the set from the kernel tree at `kdir`.
pub fn extract(kdir: &Path) -> Result<KvmMsrs, String> {
    let mut defs = defines(kdir)?;
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut source_text = |rel: &str, defs: &mut Defines| -> Result<String, String> {
        if let Some((_, t)) = texts.iter().find(|(r, _)| r == rel) {
            return Ok(t.clone());
        }
        let raw = read(kdir, rel)?;
        // A source file's own #defines (e.g. local helpers) resolve too.
        defs.add_text(rel, &raw);
        let t = cexpr::strip_comments(&raw);
        texts.push((rel.to_string(), t.clone()));
        Ok(t)
    };

    let mut out = KvmMsrs::default();
    let mut host_read: Vec<KvmRange> = Vec::new();
    let mut host_write: Vec<KvmRange> = Vec::new();

    for (files, functions) in HANDLERS {
        for f in *functions {
            let mut found = false;
            for file in *files {
                let text = source_text(file, &mut defs)?;
                let Some(body) = cexpr::function_body(&text, f) else {
                    continue;
                };
                let labels = cexpr::case_labels(body, MSR_VARS);
                if labels.is_empty() {
                    return Err(format!("{file}: {f} has no case label on an MSR index"));
                }
                let short = file.trim_start_matches("arch/x86/kvm/");
                let mut host_only = Vec::new();
                add_labels(
                    &defs,
                    &labels,
                    &format!("{short} {f}"),
                    &mut out.ranges,
                    &mut host_only,
                )?;
                if *f == GATE_READ {
                    host_read.extend(host_only);
                } else if *f == GATE_WRITE {
                    host_write.extend(host_only);
                }
                found = true;
                break;
            }
            if !found {
                return Err(format!("{f} is not defined in {}", files.join(" or ")));
            }
        }
    }

    for (file, array) in LISTS {
        let text = source_text(file, &mut defs)?;
        let items = cexpr::array_items(&text, array)
            .ok_or_else(|| format!("{file}: no array {array}[]"))?;
        let short = file.trim_start_matches("arch/x86/kvm/");
        for item in items {
            let v = to_u32(defs.eval(&item)?, &item)?;
            out.ranges.push(KvmRange {
                first: v,
                last: v,
                source: format!("{short} {array}[]"),
            });
        }
    }

    for (file, functions) in INTERCEPTS {
        let text = source_text(file, &mut defs)?;
        let short = file.trim_start_matches("arch/x86/kvm/");
        for f in *functions {
            for args in cexpr::call_args(&text, f) {
                let Some(arg) = args.get(1) else { continue };
                match defs.eval(arg) {
                    Ok(v) => out.ranges.push(KvmRange {
                        first: to_u32(v, arg)?,
                        last: to_u32(v, arg)?,
                        source: format!("{short} {f} (pass-through)"),
                    }),
                    // Loops over counters (`MSR_K7_PERFCTR0 + i`): the PMU
                    // ranges cover them; say so rather than guess.
                    Err(e)
                        if arg
                            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                            .any(|w| w == "i") =>
                    {
                        out.notes.push(format!(
                            "{short}: {f}({arg}) not evaluated (loop variable): {e}"
                        ));
                    }
                    Err(e) => return Err(format!("{short}: {f}: {e}")),
                }
            }
        }
    }

    intel_pmu_rules(kdir, &mut defs, &mut out, &mut source_text)?;

    // Indices refused to guests in both directions leave the set.
    let refused = |v: &[KvmRange], m: u32| v.iter().any(|k| k.first <= m && m <= k.last);
    let mut gone = BTreeSet::new();
    for k in host_read.iter().chain(&host_write) {
        for m in k.first..=k.last {
            if refused(&host_read, m) && refused(&host_write, m) {
                gone.insert(m);
            }
        }
    }
    for &m in &gone {
        let mut kept = Vec::new();
        for k in out.ranges.drain(..) {
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
        out.ranges = kept;
        out.guest_refused.push(KvmRange {
            first: m,
            last: m,
            source: format!("{GATE_READ}/{GATE_WRITE}: if (!host_initiated) return 1"),
        });
    }

    let xen = source_text("arch/x86/kvm/xen.h", &mut defs)?;
    if xen.contains("kvm_xen_is_hypercall_page_msr") {
        out.notes.push(
            "xen.h: the Xen hypercall-page MSR is whatever index the VMM sets with KVM_XEN_HVM_CONFIG; not a fixed index, not extracted".to_string(),
        );
    }
    out.ranges.sort_by_key(|k| (k.first, k.last));
    Ok(out)
}

/// Intel PMU MSRs `vmx/pmu_intel.c` recognizes by arithmetic.
fn intel_pmu_rules(
    kdir: &Path,
    defs: &mut Defines,
    out: &mut KvmMsrs,
    source_text: &mut impl FnMut(&str, &mut Defines) -> Result<String, String>,
) -> Result<(), String> {
    let file = "arch/x86/kvm/vmx/pmu_intel.c";
    let text = source_text(file, defs)?;
    let pmu_h = source_text("arch/x86/kvm/pmu.h", defs)?;

    // get_gp_pmc(pmu, msr, BASE): BASE .. BASE + nr_arch_gp_counters - 1.
    let gp_body = cexpr::function_body(&pmu_h, "get_gp_pmc").ok_or("pmu.h: no get_gp_pmc()")?;
    if !gp_body.contains("msr >= base && msr < base + pmu->nr_arch_gp_counters") {
        return Err(
            "pmu.h: get_gp_pmc() no longer tests base..base+nr_arch_gp_counters; update the rule"
                .to_string(),
        );
    }
    let nr_gp = defs.eval("KVM_MAX_NR_INTEL_GP_COUNTERS")? as u32;
    let mut bases = BTreeSet::new();
    for args in cexpr::call_args(&text, "get_gp_pmc") {
        if let Some(base) = args.get(2) {
            bases.insert(base.clone());
        }
    }
    if bases.is_empty() {
        return Err(format!("{file}: no get_gp_pmc() call"));
    }
    for base in bases {
        let b = to_u32(defs.eval(&base)?, &base)?;
        out.ranges.push(KvmRange {
            first: b,
            last: b + nr_gp - 1,
            source: format!("vmx/pmu_intel.c get_gp_pmc({base}) x KVM_MAX_NR_INTEL_GP_COUNTERS"),
        });
    }

    // get_fixed_pmc(pmu, msr): the fixed counters.
    let fixed_body =
        cexpr::function_body(&pmu_h, "get_fixed_pmc").ok_or("pmu.h: no get_fixed_pmc()")?;
    let base_expr = fixed_body
        .split(';')
        .find_map(|s| s.trim().strip_prefix("int base ="))
        .ok_or("pmu.h: get_fixed_pmc() has no `int base = ...`; update the rule")?;
    if !fixed_body.contains("msr < base + pmu->nr_arch_fixed_counters") {
        return Err(
            "pmu.h: get_fixed_pmc() no longer tests base+nr_arch_fixed_counters; update the rule"
                .to_string(),
        );
    }
    let b = to_u32(defs.eval(base_expr)?, base_expr)?;
    let nr_fixed = defs.eval("KVM_MAX_NR_INTEL_FIXED_COUNTERS")? as u32;
    out.ranges.push(KvmRange {
        first: b,
        last: b + nr_fixed - 1,
        source: "vmx/pmu_intel.c get_fixed_pmc() x KVM_MAX_NR_INTEL_FIXED_COUNTERS".to_string(),
    });

    // LBR: `index == X` tests, and the host perf driver's stacks.
    let lbr = cexpr::function_body(&text, "intel_pmu_is_valid_lbr_msr")
        .ok_or(format!("{file}: no intel_pmu_is_valid_lbr_msr()"))?;
    for part in lbr.split("index ==").skip(1) {
        let name: String = part
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let v = to_u32(defs.eval(&name)?, &name)?;
        out.ranges.push(KvmRange {
            first: v,
            last: v,
            source: "vmx/pmu_intel.c intel_pmu_is_valid_lbr_msr".to_string(),
        });
    }
    for field in ["records->from", "records->to", "records->info"] {
        if !lbr.contains(field) {
            return Err(format!(
                "{file}: intel_pmu_is_valid_lbr_msr() no longer uses {field}; update the rule"
            ));
        }
    }
    let perf_file = "arch/x86/events/intel/lbr.c";
    let perf = cexpr::strip_comments(&read(kdir, perf_file)?);
    // Each init function sets lbr_nr before its stacks: a stack's depth is
    // the largest literal lbr_nr in force where its base is assigned.
    let mut cur_nr = 0u32;
    let mut stacks: std::collections::BTreeMap<String, u32> = Default::default();
    for stmt in perf.split(';') {
        let s: String = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(rest) = s
            .rsplit(['{', '}'])
            .next()
            .map(str::trim)
            .and_then(|t| t.strip_prefix("x86_pmu.lbr_"))
        else {
            continue;
        };
        let Some((field, value)) = rest.split_once(" = ") else {
            continue;
        };
        match field {
            "nr" => cur_nr = value.trim().parse::<u32>().unwrap_or(0),
            "from" | "to" | "info" => {
                let e = stacks.entry(value.trim().to_string()).or_insert(0);
                *e = (*e).max(cur_nr);
            }
            _ => {}
        }
    }
    let max_nr = stacks.values().copied().max().unwrap_or(0);
    if max_nr == 0 || stacks.is_empty() {
        return Err(format!(
            "{perf_file}: no x86_pmu.lbr_nr/lbr_from assignments; update the rule"
        ));
    }
    // KVM offers LBRs only on hosts without architectural LBRs: the
    // MSR_ARCH_LBR_* stacks never reach a guest.
    let vmx = source_text("arch/x86/kvm/vmx/vmx.c", defs)?;
    if !vmx.contains("!cpu_feature_enabled(X86_FEATURE_ARCH_LBR)") {
        return Err("vmx/vmx.c: LBR virtualization no longer excludes X86_FEATURE_ARCH_LBR hosts; update the rule".to_string());
    }
    for (s, nr) in stacks {
        if s.starts_with("MSR_ARCH_LBR") {
            continue;
        }
        if nr == 0 {
            return Err(format!(
                "{perf_file}: no literal lbr_nr before x86_pmu.lbr_* = {s}; update the rule"
            ));
        }
        let b = to_u32(defs.eval(&s)?, &s)?;
        out.ranges.push(KvmRange {
            first: b,
            last: b + nr - 1,
            source: format!("vmx/pmu_intel.c LBR stack {s} (host perf, up to {nr} entries)"),
        });
    }
    Ok(())
}
