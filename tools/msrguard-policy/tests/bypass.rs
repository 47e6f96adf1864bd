// SPDX-License-Identifier: GPL-2.0
//! The table of MSRs settable outside msrguard's decision points, and the
//! checker's warnings for policies that deny what those paths do.

use msrguard_core::msr_names::{msr_names, MSR_NAMES};
use msrguard_policy::bypass::{check, Warning, BYPASSES};
use msrguard_policy::danger::dangerous;
use msrguard_policy::parse;

/// The smallest valid policy (the test build's); every MSR it leaves out
/// gets the default `gp`.
const MINIMAL: &str = include_str!("../../../selftests/test-policy.toml");
const DEFAULT: &str = include_str!("../../../policy/default.toml");

/// The test policy without its DEBUGCTL entry, for tests that bring their own.
fn minimal_without_debugctl() -> String {
    let own = "[[msr]]\nindex = 0x1d9\nname = \"MSR_IA32_DEBUGCTLMSR\"\nread = \"allow\"\nwrite = \"allow\"\nreason = \"generic_svm_setup() copies it into the VMCB.\"\n";
    let minimal = MINIMAL.replacen(own, "", 1);
    assert_ne!(minimal, MINIMAL, "the test policy's DEBUGCTL entry changed");
    minimal
}

fn warnings(text: &str) -> Vec<Warning> {
    let entries = parse("p.toml", text).expect("policy parses");
    check("p.toml", &entries)
}

fn entry(index: u32, name: &str, read: &str, write: &str, mask: Option<u64>) -> String {
    let mask = mask.map_or(String::new(), |m| format!("write_mask = \"{m:#x}\"\n"));
    format!("[[msr]]\nindex = {index:#x}\nname = \"{name}\"\nread = \"{read}\"\nwrite = \"{write}\"\n{mask}reason = \"r\"\n")
}

/// Warnings about one MSR, as (line, path).
fn about(ws: &[Warning], msr: u32) -> Vec<(Option<usize>, &'static str)> {
    ws.iter()
        .filter(|w| w.msrs.0 <= msr && msr <= w.msrs.1)
        .map(|w| (w.line, w.path))
        .collect()
}

/// Paths of the table that can write `msr` with a value `bits` does not
/// cover, or read it (`read`).
fn table_paths(msr: u32, read: bool, write_outside: Option<u64>) -> Vec<&'static str> {
    BYPASSES
        .iter()
        .filter(|b| b.first <= msr && msr <= b.last)
        .filter(|b| {
            (read && b.reads) || write_outside.is_some_and(|m| b.writes && b.bits & !m != 0)
        })
        .map(|b| b.path)
        .collect()
}

#[test]
fn table_is_well_formed_with_linux_names() {
    for b in BYPASSES {
        assert!(b.first <= b.last, "{b:?}");
        assert!(b.reads || b.writes, "{b:?} neither reads nor writes");
        assert!(b.writes || b.bits == 0, "{b:?}: bits without writes");
        assert!(!b.path.is_empty() && !b.source.is_empty(), "{b:?}");
        let own = msr_names(b.first);
        if own.is_empty() {
            assert!(
                !MSR_NAMES.iter().any(|&(_, n)| n == b.name),
                "{} is another index's Linux name, not {:#x}'s",
                b.name,
                b.first
            );
        } else {
            assert!(
                own.iter().any(|&(_, n)| n == b.name),
                "{:#x} is {own:?} in Linux, not {}",
                b.first,
                b.name
            );
        }
    }
}

/// Every `file:function` the table cites exists in the kernel tree
/// MSRGUARD_KDIR names (scripts/test.sh sets it to the cached 7.3 tree).
#[test]
fn cited_sources_exist_in_the_kernel_tree() {
    let Some(kdir) = std::env::var_os("MSRGUARD_KDIR") else {
        println!("SKIP: MSRGUARD_KDIR is not set (the Linux tree whose KVM the table cites)");
        return;
    };
    let kvm = std::path::Path::new(&kdir).join("arch/x86/kvm");
    for b in BYPASSES {
        for cite in b.source.split("; ") {
            let (file, functions) = cite
                .split_once(':')
                .unwrap_or_else(|| panic!("{:?}: {cite:?} is not file:function", b.path));
            let text = std::fs::read_to_string(kvm.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", kvm.join(file).display()));
            for f in functions.split(", ") {
                let defined = text.lines().any(|l| {
                    // A definition starts at column 0: "static int f(" or "#define F".
                    !l.starts_with([' ', '\t'])
                        && (l.contains(&format!(" {f}(")) || l.contains(&format!("define {f}")))
                });
                assert!(defined, "{file} does not define {f} ({:?})", b.path);
            }
        }
    }
}

/// What the default policy gets, each acceptable for the reason given in
/// Documentation/msrguard/admin-guide.rst ("What the default policy cannot stop"):
/// SMBASE (only the guest's own SMM code relocates it), DEBUGCTL's LBR,
/// FREEZE_LBRS_ON_PMI and RTM_DEBUG bits and the LBR from/to MSRs (nested
/// paths, only when the VMM gives the guest LBRs, LBRV, or RTM).
#[test]
fn default_policy_warnings_are_the_documented_ones() {
    let entries = parse("policy/default.toml", DEFAULT).unwrap();
    let ws = check("policy/default.toml", &entries);
    let line_of = |msr: u32| {
        entries
            .iter()
            .find(|e| e.first <= msr && msr <= e.last)
            .map(|e| e.line)
    };
    let mut got: Vec<(u32, &str)> = ws.iter().map(|w| (w.msrs.0, w.path)).collect();
    got.sort();
    // From the table: which paths do what the default's entries deny.
    let mut want: Vec<(u32, &str)> = Vec::new();
    // SMBASE: read and write gp.
    want.extend(
        table_paths(0x9e, true, Some(0))
            .into_iter()
            .map(|p| (0x9e, p)),
    );
    // DEBUGCTL: write mask BTF | BUS_LOCK_DETECT.
    want.extend(
        table_paths(0x1d9, false, Some(0x6))
            .into_iter()
            .map(|p| (0x1d9, p)),
    );
    // LBR from/to: read ignore, write gp.
    want.extend(
        table_paths(0x1db, true, Some(0))
            .into_iter()
            .map(|p| (0x1db, p)),
    );
    want.sort();
    assert_eq!(got, want);
    assert_eq!(ws.len(), 9, "{ws:#?}");
    for w in &ws {
        assert_eq!(w.line, line_of(w.msrs.0), "{w}");
        assert!(w.to_string().starts_with(&format!(
            "warning: policy/default.toml:{}: ",
            w.line.unwrap_or(0)
        )));
        // SMBASE's writes: the floor's veto, which no policy may lift.
        let tail = if w.floor {
            "without msrguard's decision: the policy cannot stop that (the floor requires the veto)"
        } else {
            "without msrguard's decision: the policy cannot stop that"
        };
        assert!(w.to_string().ends_with(tail), "{w}");
        assert_eq!(
            w.floor,
            w.msrs.0 == 0x9e && !w.to_string().contains(" read"),
            "{w}"
        );
    }
    assert!(ws.iter().any(|w| w.floor));
}

#[test]
fn denying_a_write_a_path_can_make_warns_at_the_entry() {
    // PAT written by nested VMX entry/exit and SVM VMRUN.
    let text = format!(
        "{}{MINIMAL}",
        entry(0x277, "MSR_IA32_CR_PAT", "allow", "gp", None)
    );
    // The test policy has PAT; replace it: drop its own entry.
    let text = text.replacen(
        "[[msr]]\nindex = 0x277\nname = \"MSR_IA32_CR_PAT\"\nread = \"allow\"\nwrite = \"allow\"\nreason = \"An allowed MSR, so the test VM has something that works.\"\n",
        "",
        1,
    );
    let ws = warnings(&text);
    let pat = about(&ws, 0x277);
    let want: Vec<_> = table_paths(0x277, false, Some(0))
        .into_iter()
        .map(|p| (Some(1), p))
        .collect();
    assert!(want.len() >= 3, "VMX exit, VMX entry, SVM VMRUN: {want:?}");
    assert_eq!(pat, want);
    let w = ws.iter().find(|w| w.msrs.0 == 0x277).unwrap();
    assert_eq!(
        w.to_string(),
        format!("warning: p.toml:1: MSR_IA32_CR_PAT (0x277) can also be set by {} ({}) without msrguard's decision: the policy cannot stop that", w.path, BYPASSES.iter().find(|b| b.path == w.path && b.first == 0x277).unwrap().source)
    );
}

#[test]
fn allowing_or_masking_enough_silences_the_warning() {
    // DEBUGCTL: the nested paths set LBR, FREEZE_LBRS_ON_PMI, BUS_LOCK,
    // RTM_DEBUG, or 0. A mask with all of them is enough; one without LBR
    // is not; `allow` is.
    let all_bits = BYPASSES
        .iter()
        .filter(|b| b.first == 0x1d9 && b.writes)
        .fold(0, |m, b| m | b.bits);
    assert_eq!(all_bits, 0x8805);
    for (write, mask, warned) in [
        ("allow", None, false),
        ("gp", Some(all_bits), false),
        ("ignore", Some(all_bits | 0x2), false),
        ("gp", Some(all_bits & !1), true),
        ("gp", None, true),
    ] {
        let text = format!(
            "{}{}",
            entry(0x1d9, "MSR_IA32_DEBUGCTLMSR", "allow", write, mask),
            minimal_without_debugctl()
        );
        let ws = about(&warnings(&text), 0x1d9);
        assert_eq!(
            !ws.is_empty(),
            warned,
            "write {write} mask {mask:?}: {ws:?}"
        );
        assert!(ws.iter().all(|&(line, _)| line == Some(1)));
    }
    // Only the paths whose bits fall outside the mask are named.
    let text = format!(
        "{}{}",
        entry(0x1d9, "MSR_IA32_DEBUGCTLMSR", "allow", "gp", Some(0x8004)),
        minimal_without_debugctl()
    );
    let ws = about(&warnings(&text), 0x1d9);
    let want: Vec<_> = table_paths(0x1d9, false, Some(0x8004))
        .into_iter()
        .map(|p| (Some(1), p))
        .collect();
    assert_eq!(ws, want);
    assert!(!want.is_empty());
}

#[test]
fn read_only_paths_warn_only_for_reads() {
    // RDPMC reads the counters and never writes them.
    let counters = "[[msr]]\nindex = 0xc1\nlast = 0xc8\nname = \"MSR_IA32_PERFCTR0\"\n";
    let gp_writes =
        format!("{counters}read = \"allow\"\nwrite = \"gp\"\nreason = \"r\"\n{MINIMAL}");
    assert_eq!(about(&warnings(&gp_writes), 0xc1), vec![]);
    let ignored_reads =
        format!("{counters}read = \"ignore\"\nwrite = \"allow\"\nreason = \"r\"\n{MINIMAL}");
    let ws = warnings(&ignored_reads);
    let rdpmc: Vec<_> = ws.iter().filter(|w| w.msrs.0 == 0xc1).collect();
    assert_eq!(rdpmc.len(), 1, "{ws:#?}");
    assert_eq!(rdpmc[0].msrs, (0xc1, 0xc8));
    assert!(rdpmc[0]
        .message
        .starts_with("MSR_IA32_PERFCTR0 (0xc1..=0xc8) can also be read by RDPMC ("));
}

#[test]
fn msrs_left_to_the_default_warn_without_a_line() {
    // The test policy has no entry for the x2APIC MSRs: the default `gp`
    // cannot stop the xAPIC MMIO page or the fast path.
    let ws = warnings(MINIMAL);
    let icr = about(&ws, 0x830);
    assert!(icr.iter().all(|&(line, _)| line.is_none()));
    assert!(icr.iter().any(|&(_, p)| p == "the WRMSR fast path"));
    let w = ws
        .iter()
        .find(|w| w.path == "the WRMSR fast path" && w.msrs.0 == 0x830)
        .unwrap();
    assert!(w.to_string().starts_with(
        "warning: p.toml: X2APIC_ICR (0x830) (not in the policy: the default action applies) can also be set by the WRMSR fast path (msrs.c:__handle_fastpath_wrmsr)"
    ));
}

#[test]
fn a_policy_allowing_every_table_msr_but_the_floor_warns_only_for_the_floor() {
    let mut text = String::new();
    let mut covered: Vec<(u32, u32)> = BYPASSES.iter().map(|b| (b.first, b.last)).collect();
    covered.sort();
    // Merge overlapping ranges into disjoint entries.
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, z) in covered {
        match merged.last_mut() {
            Some((_, last)) if a <= *last + 1 => *last = (*last).max(z),
            _ => merged.push((a, z)),
        }
    }
    let minimal = parse("m.toml", MINIMAL).unwrap();
    for (a, z) in merged {
        // Keep the test policy's own entries where they overlap.
        for m in a..=z {
            if minimal.iter().any(|e| e.first <= m && m <= e.last) {
                continue;
            }
            // The floor: no policy may allow its writes (SMBASE); reads only.
            let floor = dangerous(m).is_some_and(|d| d.in_floor());
            let name = msr_names(m)
                .first()
                .map_or(format!("MSR_{m:X}"), |&(_, n)| n.to_string());
            let write = if floor { "gp" } else { "allow" };
            text.push_str(&entry(m, &name, "allow", write, None));
        }
    }
    // The test policy denies FS_BASE: allow it here.
    let minimal = MINIMAL.replace(
        "index = 0xc0000100\nname = \"MSR_FS_BASE\"\nread = \"gp\"\nwrite = \"gp\"",
        "index = 0xc0000100\nname = \"MSR_FS_BASE\"\nread = \"allow\"\nwrite = \"allow\"",
    );
    assert_ne!(minimal, MINIMAL, "the test policy's FS_BASE entry changed");
    text.push_str(&minimal);
    // Only what the floor denies warns.
    let ws = warnings(&text);
    assert!(!ws.is_empty());
    for w in &ws {
        assert!(
            (w.msrs.0..=w.msrs.1).all(|m| dangerous(m).is_some_and(|d| d.in_floor())),
            "{w}"
        );
    }
}

/// Hyper-V's synthetic EOI, ICR and TPR MSRs and the PV EOI and IPI paths
/// reach the x2APIC registers: a policy that denies writes to the x2APIC
/// ones hears of each.
#[test]
fn x2apic_aliases_warn_where_the_x2apic_register_is_denied() {
    for (index, name, hv) in [
        (0x80b, "X2APIC_EOI", "HV_X64_MSR_EOI (0x40000070"),
        (0x830, "X2APIC_ICR", "HV_X64_MSR_ICR (0x40000071"),
        (0x808, "X2APIC_TPR", "HV_X64_MSR_TPR (0x40000072"),
    ] {
        let text = format!("{}{MINIMAL}", entry(index, name, "allow", "gp", None));
        let ws = warnings(&text);
        let paths = about(&ws, index);
        assert!(
            paths
                .iter()
                .any(|&(line, p)| line == Some(1) && p.contains(hv)),
            "{name}: no warning naming {hv}: {paths:?}"
        );
    }
}
