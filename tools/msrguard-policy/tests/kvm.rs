// SPDX-License-Identifier: GPL-2.0
//! Extracting KVM's MSR set: the C reading on small snippets, the
//! comparison with a policy, and (when MSRGUARD_KDIR names a kernel tree)
//! the real extraction.

use std::path::Path;

use msrguard_policy::cexpr::{self, Defines};
use msrguard_policy::kvm::{self, KvmMsrs, KvmRange};
use msrguard_policy::{check_against_kvm, parse};

fn defs(text: &str) -> Defines {
    let mut d = Defines::default();
    d.add_text("t.h", text);
    d
}

#[test]
fn evaluates_msr_index_expressions() {
    let d = defs(
        "#define MSR_IA32_MC0_CTL\t\t0x00000400\n\
         #define MSR_IA32_MCx_CTL(x)\t\t(MSR_IA32_MC0_CTL + 4*(x))\n\
         #define KVM_MAX_MCE_BANKS 32 /* banks */\n\
         #define MTRRphysBase_MSR(reg) (0x200 + 2 * (reg))\n\
         #define APIC_BASE_MSR 0x800\n\
         #define KVM_MAX(a, b)\t((a) > (b) ? (a) : (b))\n\
         #define LONG \\\n    (0x10 | _AC(1, UL) << 4)\n\
         #define EN BIT(3)\n",
    );
    assert_eq!(
        d.eval("MSR_IA32_MCx_CTL(KVM_MAX_MCE_BANKS) - 1").unwrap(),
        0x47f
    );
    assert_eq!(d.eval("MTRRphysBase_MSR(0)").unwrap(), 0x200);
    assert_eq!(d.eval("APIC_BASE_MSR + 0xff").unwrap(), 0x8ff);
    assert_eq!(d.eval("KVM_MAX(8, 6)").unwrap(), 8);
    assert_eq!(d.eval("LONG").unwrap(), 0x10);
    assert_eq!(d.eval("(u32)EN").unwrap(), 8);
    assert_eq!(d.eval("0x10ULL + 017").unwrap(), 0x1f);
    let e = d.eval("MSR_NOT_THERE").unwrap_err();
    assert!(e.contains("`MSR_NOT_THERE` is not a known macro"), "{e}");
}

#[test]
fn conflicting_definitions_are_an_error_agreeing_ones_are_not() {
    let mut d = defs("#define A 0x10\n#ifdef X\n#define A 0x11\n#endif\n#define B 1\n");
    d.add_text("u.h", "#define B (0 + 1)\n");
    let e = d.eval("A").unwrap_err();
    assert!(e.contains("A is 0x10 in t.h but 0x11 in t.h"), "{e}");
    assert_eq!(d.eval("B").unwrap(), 1);
}

const HANDLER: &str = r#"
static int other(void) { return 0; }

int kvm_get_msr_common(struct kvm_vcpu *vcpu, struct msr_data *msr_info)
{
	u32 msr = msr_info->index;

	switch (msr_info->index) {
	case MSR_A:	/* case MSR_IN_COMMENT: */
	case MSR_B ... MSR_C:
		msr_info->data = 0;
		break;
	case MSR_HOST:
		if (!msr_info->host_initiated)
			return 1;
		fallthrough;
	case MSR_D: {
		switch (data & 3) {
		case 1:
			break;
		}
		break;
	}
#ifdef CONFIG_X86_64
	case MSR_E:
#endif
	default:
		printk("case MSR_IN_STRING:");
		return 1;
	}
	return 0;
}
"#;

#[test]
fn case_labels_of_the_msr_switch_only() {
    let text = cexpr::strip_comments(HANDLER);
    let body = cexpr::function_body(&text, "kvm_get_msr_common").unwrap();
    let labels = cexpr::case_labels(body, &["msr_info->index"]);
    let got: Vec<(String, Option<String>, bool)> = labels
        .into_iter()
        .map(|l| (l.first, l.last, l.host_only))
        .collect();
    assert_eq!(
        got,
        [
            ("MSR_A".to_string(), None, false),
            ("MSR_B".to_string(), Some("MSR_C".to_string()), false),
            ("MSR_HOST".to_string(), None, true),
            ("MSR_D".to_string(), None, false),
            ("MSR_E".to_string(), None, false),
        ]
    );
    assert!(cexpr::function_body(&text, "kvm_set_msr_common").is_none());
}

#[test]
fn array_items_and_call_arguments() {
    let text = cexpr::strip_comments(
        "static const u32 list[] = {\n\tMSR_A, MSR_B,\n#ifdef CONFIG_X86_64\n\tMSR_C + 2,\n#endif\n\tF(1, 2),\n};\n\
         void f(struct kvm_vcpu *vcpu) {\n\tset_icpt(vcpu, MSR_A, MSR_TYPE_RW);\n\tset_icpt(vcpu, X(1), 0);\n}\n\
         void set_icpt(struct kvm_vcpu *vcpu, u32 msr, int type) {}\n",
    );
    assert_eq!(
        cexpr::array_items(&text, "list").unwrap(),
        ["MSR_A", "MSR_B", "MSR_C + 2", "F(1, 2)"]
    );
    let calls: Vec<String> = cexpr::call_args(&text, "set_icpt")
        .into_iter()
        .map(|a| a[1].clone())
        .collect();
    assert_eq!(calls, ["MSR_A", "X(1)"]);
}

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
/// runs `msrguard check --against-kvm` on the cached tree as well).
#[test]
fn extracts_well_known_msrs_from_a_kernel_tree() {
    let Some(kdir) = std::env::var_os("MSRGUARD_KDIR") else {
        println!("SKIP: MSRGUARD_KDIR is not set (a Linux source tree to extract KVM's MSRs from)");
        return;
    };
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
}
