// SPDX-License-Identifier: GPL-2.0
//! The policy parser: the default policy is accepted, and each kind of bad
//! file is rejected with `file:line: message`.

use msrguard_core::policy::{decide, Action};
use msrguard_policy::parse;

fn errors(text: &str) -> Vec<String> {
    match parse("p.toml", text) {
        Ok(_) => panic!("accepted a bad file:\n{text}"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

const ENTRY: &str = "[[msr]]\nindex = 0x10\nname = \"MSR_IA32_TSC\"\nread = \"allow\"\nwrite = \"allow\"\nreason = \"r\"\n";

/// The smallest valid policy the project has: the test build's, which
/// allows just what KVM itself accesses (plus two MSRs the VM suite uses).
const MINIMAL: &str = include_str!("../../../selftests/test-policy.toml");

#[test]
fn default_policy_is_accepted_sorted_and_sane() {
    let text = include_str!("../../../policy/default.toml");
    let entries = parse("policy/default.toml", text).expect("default policy parses");
    assert!(entries.len() > 50);
    assert!(entries.windows(2).all(|w| w[0].last < w[1].first));
    let table: Vec<_> = entries.iter().map(|e| e.to_abi()).collect();
    // What a Linux guest needs, and what no guest gets.
    for msr in [
        0xc0000080, 0xc0000082, 0xc0000100, 0x277, 0x1b, 0x10, 0x6e0, 0x830, 0x4b564d01,
    ] {
        assert_eq!(
            decide(&table, msr, true, 0).action,
            Action::Allow,
            "write {msr:#x}"
        );
        assert_eq!(
            decide(&table, msr, false, 0).action,
            Action::Allow,
            "read {msr:#x}"
        );
    }
    assert_eq!(decide(&table, 0x79, true, 1).action, Action::Gp);
    assert_eq!(decide(&table, 0x150, true, 1).action, Action::Gp);
    assert_eq!(decide(&table, 0x150, false, 0).action, Action::Gp);
    assert_eq!(decide(&table, 0x570, true, 1).action, Action::Gp);
    assert_eq!(decide(&table, 0x9e, false, 0).action, Action::Gp);
    assert_eq!(decide(&table, 0x3a, false, 0).action, Action::Allow);
    // FEAT_CTL is masked: guest firmware's lock | VMXON | LMCE may be
    // written (KVM checks them against CPUID), SENTER enables may not.
    assert_eq!(decide(&table, 0x3a, true, 0x10_0005).action, Action::Allow);
    assert_eq!(decide(&table, 0x3a, true, 0x7f01).action, Action::Gp);
    assert_eq!(decide(&table, 0x3a, true, 1 << 3).action, Action::Gp);
    assert_eq!(decide(&table, 0x1fc, true, 2).action, Action::Ignore);
    assert_eq!(decide(&table, 0x12345678, false, 0).action, Action::Gp);
    // MISC_ENABLE is masked: XD disable may be set, turbo disable may not.
    assert_eq!(decide(&table, 0x1a0, true, 1 << 34).action, Action::Allow);
    assert_eq!(decide(&table, 0x1a0, true, 1 << 38).action, Action::Gp);
    // Reads KVM answers that Linux does unguarded are answered (issue #8:
    // Debian's 6.1 read INT_PENDING_MSG and logged "unchecked MSR access").
    for msr in [0xc0010055, 0xc0010112, 0xc001001f, 0x198, 0x606] {
        assert_eq!(
            decide(&table, msr, false, 0).action,
            Action::Allow,
            "read {msr:#x}"
        );
    }
    // Refused trace facilities read 0 and accept being turned off.
    assert_eq!(decide(&table, 0x570, false, 0).action, Action::Ignore);
    assert_eq!(decide(&table, 0x570, true, 0).action, Action::Allow);
    // DEBUGCTL: BTF may be set, LBR may not.
    assert_eq!(decide(&table, 0x1d9, true, 1 << 1).action, Action::Allow);
    assert_eq!(decide(&table, 0x1d9, true, 1).action, Action::Gp);
}

#[test]
fn accepts_ranges_and_string_numbers() {
    let text = format!("[[msr]]\nindex = \"0x800\"\nlast = \"0x8_ff\"\nname = \"X2APIC\"\nread = \"allow\"\nwrite = \"gp\"\nwrite_mask = \"0xffff_ffff_ffff_fffe\"\nreason = \"r\"\n{MINIMAL}");
    let e = parse("p.toml", &text).unwrap();
    let x2apic = e.iter().find(|e| e.first == 0x800).unwrap();
    assert_eq!(
        (x2apic.last, x2apic.write_mask),
        (0x8ff, Some(u64::MAX - 1))
    );
}

#[test]
fn rejects_denying_what_kvm_accesses_itself() {
    let denied = MINIMAL.replace(
        "name = \"MSR_CORE_PERF_GLOBAL_CTRL\"\nread = \"allow\"\nwrite = \"allow\"",
        "name = \"MSR_CORE_PERF_GLOBAL_CTRL\"\nread = \"allow\"\nwrite = \"gp\"",
    );
    assert_ne!(denied, MINIMAL);
    let e = errors(&denied);
    assert_eq!(e, ["p.toml:29: MSR_CORE_PERF_GLOBAL_CTRL (0x38f) must allow writes (every value): KVM itself makes them (nested VMX VM-entry and VM-exit), and denying them breaks KVM, not the guest"]);
    let e = errors(ENTRY);
    assert!(
        e[0].starts_with("p.toml:1: MSR_EFER (0xc0000080) must allow reads and writes"),
        "{e:?}"
    );
}

#[test]
fn rejects_duplicate_msr() {
    let e = errors(&format!("{ENTRY}\n{ENTRY}"));
    assert_eq!(
        e,
        ["p.toml:8: MSR 0x10 (MSR_IA32_TSC) duplicates MSR 0x10 (MSR_IA32_TSC) at line 1"]
    );
}

#[test]
fn rejects_overlapping_ranges() {
    let range = "[[msr]]\nindex = 0x8\nlast = 0x10\nname = \"R\"\nread = \"gp\"\nwrite = \"gp\"\nreason = \"r\"\n";
    let e = errors(&format!("{ENTRY}\n{range}"));
    assert_eq!(
        e,
        ["p.toml:8: MSRs 0x8..=0x10 (R) overlaps MSR 0x10 (MSR_IA32_TSC) at line 1"]
    );
}

#[test]
fn rejects_bad_numbers() {
    let e = errors(&ENTRY.replace("index = 0x10", "index = \"0x1g\""));
    assert_eq!(
        e,
        ["p.toml:2: bad number \"0x1g\" (want decimal or 0x hexadecimal)"]
    );
    let e = errors(&ENTRY.replace("index = 0x10", "index = -1"));
    assert_eq!(e, ["p.toml:2: negative number -1"]);
    let e = errors(&ENTRY.replace("index = 0x10", "index = 0x1_0000_0000"));
    assert_eq!(e, ["p.toml:2: index 0x100000000 is not a 32-bit MSR index"]);
    let e = errors(&ENTRY.replace("index = 0x10", "index = 0x10\nlast = 0x4"));
    assert_eq!(e, ["p.toml:3: last 0x4 is below index 0x10"]);
}

#[test]
fn rejects_unknown_keys() {
    let e = errors(&ENTRY.replace("reason", "colour = \"red\"\nreason"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("p.toml:"), "{e:?}");
    assert!(e[0].contains("unknown field `colour`"), "{e:?}");
    let e = errors(&format!("policy = 1\n{ENTRY}"));
    assert!(
        e[0].starts_with("p.toml:1: unknown field `policy`"),
        "{e:?}"
    );
}

#[test]
fn rejects_bad_actions_names_and_masks() {
    let e = errors(&ENTRY.replace("read = \"allow\"", "read = \"deny\""));
    assert_eq!(
        e,
        ["p.toml:4: unknown action \"deny\" (want \"allow\", \"gp\" or \"ignore\")"]
    );
    let e = errors(&ENTRY.replace("reason = \"r\"", "write_mask = 1\nreason = \"r\""));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("p.toml:6: write_mask has no effect"),
        "{e:?}"
    );
    let e = errors(&ENTRY.replace("MSR_IA32_TSC", "tsc counter"));
    assert_eq!(
        e,
        ["p.toml:3: bad name \"tsc counter\" (want letters, digits and _, as in msr-index.h)"]
    );
    let e = errors(&ENTRY.replace("reason = \"r\"", "reason = \"\""));
    assert_eq!(e, ["p.toml:6: reason must be one non-empty line"]);
}

#[test]
fn rejects_missing_keys_and_bad_toml() {
    let e = errors(&ENTRY.replace("write = \"allow\"\n", ""));
    assert!(e[0].starts_with("p.toml:1: missing field `write`"), "{e:?}");
    let e = errors("[[msr]\n");
    assert!(e[0].starts_with("p.toml:1: "), "{e:?}");
}

#[test]
fn rejects_a_linux_name_on_the_wrong_index() {
    // 0x11 has its own Linux name.
    let e = errors(&ENTRY.replace("index = 0x10", "index = 0x11"));
    assert_eq!(
        e,
        ["p.toml:3: 0x11 is MSR_KVM_WALL_CLOCK in Linux's headers, not MSR_IA32_TSC (want one of: MSR_KVM_WALL_CLOCK)"]
    );
    // 0x5 has none, but MSR_IA32_TSC is another index's name.
    let e = errors(&ENTRY.replace("index = 0x10", "index = 0x5"));
    assert_eq!(
        e,
        ["p.toml:3: MSR_IA32_TSC is 0x10 in Linux's headers, not 0x5"]
    );
    // A made-up name on a Linux-named index.
    let e = errors(&ENTRY.replace("MSR_IA32_TSC", "MY_TSC"));
    assert_eq!(
        e,
        ["p.toml:3: 0x10 is MSR_IA32_TSC in Linux's headers, not MY_TSC (want one of: MSR_IA32_TSC)"]
    );
    // Hyper-V's names come from hvgdk_mini.h and are checked the same way.
    let hv = ENTRY
        .replace("index = 0x10", "index = 0x40000001")
        .replace("MSR_IA32_TSC", "HV_X64_MSR_GUEST_OS_ID");
    let e = errors(&hv);
    assert!(
        e[0].contains("0x40000001 is HV_X64_MSR_HYPERCALL in Linux's headers"),
        "{e:?}"
    );
}

/// The generated bitmaps of the default policy say "always allowed"
/// exactly where the table does, and the fast decision equals the table's.
#[test]
fn default_policy_bitmaps_match_the_table() {
    use msrguard_core::policy::{always_allowed, decide, decide_fast};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policy/default.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let entries = msrguard_policy::parse(path, &text).unwrap();
    let table: Vec<_> = entries.iter().map(|e| e.to_abi()).collect();
    let fast = msrguard_policy::allow_bitmaps_static(&entries);
    let mut allowed = 0;
    for b in &fast {
        for i in 0..(b.read.len() as u32 * 64) {
            let msr = b.base + i;
            for is_write in [false, true] {
                let bit = b.bit(msr, is_write).unwrap();
                assert_eq!(bit, always_allowed(&table, msr, is_write), "msr {msr:#x}");
                allowed += usize::from(bit);
                for value in [0, 1, u64::MAX] {
                    assert_eq!(
                        decide_fast(&table, &fast, msr, is_write, value),
                        decide(&table, msr, is_write, value)
                    );
                }
            }
        }
    }
    assert!(
        allowed > 50,
        "only {allowed} always-allowed bits: bitmaps not built?"
    );
}

#[test]
fn accepts_any_linux_name_of_an_index_and_free_names_elsewhere() {
    for (index, name) in [
        ("0x8b", "MSR_IA32_UCODE_REV"),
        ("0x8b", "MSR_AMD64_PATCH_LEVEL"),
        ("0x40000001", "HV_X64_MSR_HYPERCALL"),
        ("0x4b564d01", "MSR_KVM_SYSTEM_TIME_NEW"),
        ("0x800", "X2APIC_MSRS"),
    ] {
        // Writes refused: 0x8b is in the floor.
        let text = ENTRY
            .replace("index = 0x10", &format!("index = {index}"))
            .replace("MSR_IA32_TSC", name)
            .replace("write = \"allow\"", "write = \"gp\"");
        // After the minimal policy, which keeps KVM's own accesses allowed.
        let all = format!("{MINIMAL}\n{text}");
        parse("p.toml", &all).unwrap_or_else(|d| panic!("{index} {name}: {d:?}"));
    }
}

#[test]
fn the_floor_holds_for_every_policy() {
    // Microcode loading, SMM, voltage: no write, not even through a mask.
    for (index, name, write) in [
        ("0x79", "MSR_IA32_UCODE_WRITE", "write = \"allow\""),
        ("0x9e", "MSR_IA32_SMBASE", "write = \"allow\""),
        (
            "0x150",
            "MSR_IA32_VOLTAGE_CTL",
            "write = \"gp\"\nwrite_mask = 1",
        ),
    ] {
        let text = ENTRY
            .replace("index = 0x10", &format!("index = {index}"))
            .replace("MSR_IA32_TSC", name)
            .replace("write = \"allow\"", write);
        let e = errors(&format!("{MINIMAL}\n{text}"));
        assert!(
            e.iter().any(|m| m.contains("which no policy may allow")),
            "{index}: {e:?}"
        );
    }
    // A write of 0 only (a zero mask) is not a write the floor forbids.
    let text = ENTRY
        .replace("index = 0x10", "index = 0x8b")
        .replace("MSR_IA32_TSC", "MSR_IA32_UCODE_REV")
        .replace("write = \"allow\"", "write = \"gp\"\nwrite_mask = 0");
    parse("p.toml", &format!("{MINIMAL}\n{text}")).expect("a zero mask is allowed");
}
