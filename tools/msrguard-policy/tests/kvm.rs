// SPDX-License-Identifier: GPL-2.0
//! Extracting KVM's MSR set: the comparison with a policy, and (when
//! MSRGUARD_KDIR names a kernel tree) the real extraction against its
//! snapshot. The compiler's reading on small C files is tested in
//! src/kvm/tests.rs.

use std::path::Path;

use msrguard_policy::kvm::{self, KvmMsrs, KvmRange};
use msrguard_policy::{check_against_kvm, parse};

fn range(first: u32, last: u32) -> KvmRange {
    KvmRange {
        first,
        last,
        source: "test".to_string(),
    }
}

const POLICY_HEAD: &str = include_str!("../../../selftests/test-policy.toml");

#[test]
fn against_kvm_reports_uncovered_and_dead_entries() {
    let entries = parse("p.toml", POLICY_HEAD).unwrap();
    // KVM handles exactly what the test policy lists, plus 0x1b and 0x20-0x21.
    let mut k = KvmMsrs::default();
    for e in &entries {
        k.ranges.push(range(e.first, e.last));
    }
    assert_eq!(check_against_kvm(&k, &entries), Vec::<String>::new());
    k.ranges.push(range(0x1b, 0x1b));
    k.ranges.push(range(0x20, 0x21));
    let f = check_against_kvm(&k, &entries);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f[0].starts_with(
            "MSR 0x1b: handled by KVM but left to the default action (MSR_IA32_APICBASE; test)"
        ),
        "{f:?}"
    );
    assert!(
        f[1].starts_with("MSRs 0x20..=0x21: handled by KVM"),
        "{f:?}"
    );
    // Now KVM drops PAT and half of SYSENTER: dead entry and dead part.
    k.ranges.retain(|r| r.first != 0x277 && r.first != 0x174);
    k.ranges.push(range(0x174, 0x174));
    let f = check_against_kvm(&k, &entries);
    assert!(
        f.iter().any(|l| l
            .contains("MSR 0x277 (MSR_IA32_CR_PAT): dead entry: KVM does not handle MSR 0x277")),
        "{f:?}"
    );
    assert!(f.iter().any(|l| l.contains("MSRs 0x174..=0x176 (MSR_IA32_SYSENTER_CS): dead entry part: KVM does not handle MSRs 0x175..=0x176")), "{f:?}");
}

/// The real thing, on the kernel tree MSRGUARD_KDIR names (scripts/test.sh
/// runs `msrguard check --against-kvm` on the cached tree as well): well-known
/// MSRs each rule must find, then the whole extraction of the pinned tree
/// against its snapshot. A KVM that moves or adds a handler fails in the
/// extraction itself ("handler added/moved"); one whose labels, lists or
/// intercepts change fails here, with the lines that differ.
#[test]
fn extracts_kvms_msrs_from_a_kernel_tree_as_its_snapshot_says() {
    let Some(kdir) = std::env::var_os("MSRGUARD_KDIR") else {
        println!("SKIP: MSRGUARD_KDIR is not set (a Linux source tree to extract KVM's MSRs from)");
        return;
    };
    let version = msrguard_policy::kernel_tree::kernel_version(Path::new(&kdir))
        .expect("a kernel version in the tree's Makefile");
    let snapshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/kvm-msrs-{version}.txt"));
    let k = kvm::extract(Path::new(&kdir)).unwrap_or_else(|e| panic!("extraction failed: {e}"));
    for (msr, what) in [
        (0xc0010055, "MSR_K8_INT_PENDING_MSG (kvm_get_msr_common)"),
        (0x1b, "MSR_IA32_APICBASE"),
        (0x10, "MSR_IA32_TSC"),
        (0x40000000, "HV_X64_MSR_GUEST_OS_ID"),
        (0x40000001, "HV_X64_MSR_HYPERCALL"),
        (0x4000009f, "HV_X64_MSR_SINT15 (end of a case range)"),
        (0x4b564d01, "MSR_KVM_SYSTEM_TIME_NEW"),
        (0x8ff, "last x2APIC MSR (APIC_BASE_MSR + 0xff)"),
        (
            0x47f,
            "last MCE bank MSR (MSR_IA32_MCx_CTL(KVM_MAX_MCE_BANKS) - 1)",
        ),
        (0xc0010130, "MSR_AMD64_SEV_ES_GHCB (pass-through in sev.c)"),
        (0x4c8, "MSR_IA32_PMC0 + 7 (get_gp_pmc rule)"),
        (0xc001020b, "MSR_F15H_PERF_CTR5 (svm/pmu.c)"),
    ] {
        assert!(k.contains(msr), "{msr:#x} {what} not found");
    }
    for (msr, what) in [
        (0x79 + 0x1000, "an index nobody defines"),
        (0x4b564dff, "MSR_KVM_INTERNAL_GUEST_SSP (refused to guests)"),
        (0x150, "MSR_OC_MAILBOX (not handled by KVM)"),
    ] {
        assert!(!k.contains(msr), "{msr:#x} {what} found");
    }
    assert!(k.guest_refused.iter().any(|r| r.first == 0x4b564dff));
    assert!(k.notes.iter().any(|n| n.contains("Xen")));
    let got = k.to_string();
    if std::env::var_os("MSRGUARD_UPDATE_SNAPSHOT").is_some() {
        std::fs::write(&snapshot, &got).unwrap();
    }
    let Ok(want) = std::fs::read_to_string(&snapshot) else {
        println!(
            "SKIP: no snapshot for Linux {version} ({}); MSRGUARD_UPDATE_SNAPSHOT=1 writes one",
            snapshot.display()
        );
        return;
    };
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let gone: Vec<&&str> = w.iter().filter(|l| !g.contains(l)).collect();
    let new: Vec<&&str> = g.iter().filter(|l| !w.contains(l)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "KVM's MSRs in {} differ from {}:\nno longer:\n{gone:#?}\nnew:\n{new:#?}\n(MSRGUARD_UPDATE_SNAPSHOT=1 rewrites the snapshot after review)",
        Path::new(&kdir).display(),
        snapshot.display()
    );
}
