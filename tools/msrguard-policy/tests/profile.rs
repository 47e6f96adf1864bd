// SPDX-License-Identifier: GPL-2.0
//! Profiles over a policy: the shipped ones are accepted, and each kind of
//! bad profile (a pin on an MSR an OS rewrites, on one the guest may not
//! write, an entry below the floor) is rejected with `file:line: message`;
//! a profile's own entries decide their MSRs over any base.

use msrguard_core::policy::{decide, Action};
use msrguard_policy::profile::{check_profile_set, overlay, parse_profile, Profile};
use msrguard_policy::{parse, PolicyEntry};

fn default_policy() -> Vec<PolicyEntry> {
    parse(
        "policy/default.toml",
        include_str!("../../../policy/default.toml"),
    )
    .expect("default policy parses")
}

fn errors(text: &str) -> Vec<String> {
    match parse_profile("p.toml", text, &default_policy()) {
        Ok(_) => panic!("accepted a bad profile:\n{text}"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

const HEADER: &str = "[profile]\nname = \"p\"\nreason = \"r\"\n";

#[test]
fn hardened_profile_pins_the_system_call_entries_and_nxe() {
    let base = default_policy();
    let p = parse_profile(
        "policy/profiles/hardened.toml",
        include_str!("../../../policy/profiles/hardened.toml"),
        &base,
    )
    .expect("hardened profile parses");
    assert_eq!(p.name, "hardened");
    assert_eq!(p.entries, base, "hardened has no entry of its own");
    let pinned: Vec<u32> = p.pins.iter().filter(|x| x.pin).map(|x| x.msr).collect();
    assert_eq!(
        pinned,
        [
            0x175,
            0x176,
            0xc000_0081,
            0xc000_0082,
            0xc000_0083,
            0xc000_0084
        ]
    );
    let efer = p.pins.iter().find(|x| x.msr == 0xc000_0080).expect("EFER");
    assert!(!efer.pin);
    assert_eq!(efer.set_only, 1 << 11);
    assert!(p.pins.iter().all(|x| !x.reason.is_empty()));
}

#[test]
fn pin_on_fs_base_is_refused_with_the_evidence() {
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0xc0000100\nname = \"MSR_FS_BASE\"\nreason = \"r\"\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "p.toml:5: pin on MSR_FS_BASE (0xc0000100) would veto a well-behaved guest: FS_BASE"
        ),
        "{e:?}"
    );
    // Each of these is rewritten at run time by a well-behaved OS.
    for (msr, name) in [
        (0x6e0u32, "MSR_IA32_TSC_DEADLINE"),
        (0x48, "MSR_IA32_SPEC_CTRL"),
        (0x830, "X2APIC_ICR"),
        (0xc000_0102, "MSR_KERNEL_GS_BASE"),
        (0x4b56_4d01, "MSR_KVM_SYSTEM_TIME_NEW"),
    ] {
        let text =
            format!("{HEADER}[[pin]]\nindex = {msr:#x}\nname = \"{name}\"\nreason = \"r\"\n");
        let e = match parse_profile("p.toml", &text, &default_policy()) {
            Ok(_) => panic!("pin on {msr:#x} accepted"),
            Err(d) => d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        };
        assert!(
            e.iter()
                .any(|m| m.contains("would veto a well-behaved guest")),
            "{msr:#x}: {e:?}"
        );
    }
}

#[test]
fn pin_needs_a_single_msr_the_guest_may_write() {
    // UCODE_WRITE: the default policy refuses every write.
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0x79\nname = \"MSR_IA32_UCODE_WRITE\"\nreason = \"r\"\n"
    ));
    assert!(e[0].contains("the base policy's entry at line"), "{e:?}");
    assert!(e[0].contains("does not let a guest write it"), "{e:?}");

    // An MSR no entry covers, the wrong name, twice.
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0x12345\nname = \"X\"\nreason = \"r\"\n"
    ));
    assert!(
        e.iter()
            .any(|m| m.contains("no entry of the profile covers it")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0xc0000082\nname = \"MSR_CSTAR\"\nreason = \"r\"\n"
    ));
    assert!(e[0].contains("is MSR_LSTAR in Linux's headers"), "{e:?}");
    let pin = "[[pin]]\nindex = 0xc0000082\nname = \"MSR_LSTAR\"\nreason = \"r\"\n";
    let e = errors(&format!("{HEADER}{pin}{pin}"));
    assert_eq!(
        e,
        ["p.toml:9: pin on MSR_LSTAR (0xc0000082) again: the first is at line 4"]
    );
}

#[test]
fn set_only_bits_are_for_efer_alone() {
    // The module compares a write with the value KVM holds, which it reads
    // for EFER only: on any other MSR a set-only bit could not be checked.
    for (index, name) in [
        (0xc000_0082u32, "MSR_LSTAR"),
        (0x1a0, "MSR_IA32_MISC_ENABLE"),
    ] {
        let e = errors(&format!(
            "{HEADER}[[set_only]]\nindex = {index:#x}\nname = \"{name}\"\nbits = 0x1\nreason = \"r\"\n"
        ));
        assert!(
            e[0].contains(&format!(
                "set_only on {name} ({index:#x}): the module checks set-only bits against the value the MSR holds, which it knows for MSR_EFER (0xc0000080) only"
            )),
            "{e:?}"
        );
    }
}

#[test]
fn efer_takes_set_only_nxe_but_no_pin_and_no_mode_bits() {
    // RSM restores EFER without LMA, a guest hypervisor toggles SVME.
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0xc0000080\nname = \"MSR_EFER\"\nreason = \"r\"\n"
    ));
    assert!(
        e[0].contains("pin on MSR_EFER (0xc0000080) would veto a well-behaved guest: EFER's LME"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{HEADER}[[set_only]]\nindex = 0xc0000080\nname = \"MSR_EFER\"\nbits = 0x1800\nreason = \"r\"\n"
    ));
    assert!(
        e[0].contains("set_only on MSR_EFER (0xc0000080, bits 0x1000) would veto"),
        "{e:?}"
    );
}

#[test]
fn pins_on_tracing_msrs_and_nonzero_reset_values_are_refused() {
    // LBR_TOS: perf saves and restores it per task (danger.rs' tracing).
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0x1c9\nname = \"MSR_LBR_TOS\"\nreason = \"r\"\n"
    ));
    assert!(
        e.iter()
            .any(|m| m.contains("would veto a well-behaved guest: tracing")),
        "{e:?}"
    );
    // PAT: the VMM's reset writes 0x0007040600070406, which would pin it.
    let e = errors(&format!(
        "{HEADER}[[pin]]\nindex = 0x277\nname = \"MSR_IA32_CR_PAT\"\nreason = \"r\"\n"
    ));
    assert!(
        e[0].contains(
            "pin on MSR_IA32_CR_PAT (0x277) would hold its reset value after a VMM reset"
        ),
        "{e:?}"
    );
}

#[test]
fn an_msr_given_twice_is_refused() {
    let base = default_policy();
    let pmc = base
        .iter()
        .find(|e| e.first <= 0xc1 && 0xc1 <= e.last)
        .expect("the default policy covers IA32_PMC0");
    let one = format!(
        "[[msr]]\nindex = {:#x}\nlast = {:#x}\nname = \"{}\"\nread = \"allow\"\nwrite = \"allow\"\nreason = \"r\"\n",
        pmc.first, pmc.last, pmc.name
    );
    let e = errors(&format!("{HEADER}{one}{one}"));
    assert!(e.iter().any(|m| m.contains("duplicates")), "{e:?}");
}

fn entry(first: u32, last: u32, name: &str, write: Action, line: usize) -> PolicyEntry {
    PolicyEntry {
        first,
        last,
        name: name.to_string(),
        read: Action::Allow,
        write,
        write_mask: None,
        reason: "r".to_string(),
        line,
    }
}

#[test]
fn own_entries_decide_their_msrs_over_any_base() {
    // A performance profile may let guests program the PMU...
    let base = default_policy();
    let pmc = base
        .iter()
        .find(|e| e.first <= 0xc1 && 0xc1 <= e.last)
        .expect("the default policy covers IA32_PMC0")
        .clone();
    assert!(pmc.first < pmc.last, "IA32_PMC0 is in a range: {pmc:?}");
    let text = format!(
        "[profile]\nname = \"perf\"\nreason = \"r\"\n[[msr]]\nindex = {:#x}\nlast = {:#x}\nname = \"{}\"\nread = \"allow\"\nwrite = \"allow\"\nreason = \"r\"\n",
        pmc.first, pmc.last, pmc.name
    );
    let p = parse_profile("p.toml", &text, &base).expect("a PMU profile parses");
    assert_eq!(p.own_entries, 1);
    let table: Vec<_> = p.entries.iter().map(|e| e.to_abi()).collect();
    assert_eq!(decide(&table, 0xc1, true, 5).action, Action::Allow);

    // ... split a base range (the rest keeps the base's decision) ...
    let text = format!(
        "{HEADER}[[msr]]\nindex = {:#x}\nname = \"{}\"\nread = \"gp\"\nwrite = \"gp\"\nreason = \"r\"\n",
        pmc.first, pmc.name
    );
    let p = parse_profile("p.toml", &text, &base).expect("a profile splitting a range parses");
    let table: Vec<_> = p.entries.iter().map(|e| e.to_abi()).collect();
    let base_table: Vec<_> = base.iter().map(|e| e.to_abi()).collect();
    assert_eq!(decide(&table, pmc.first, false, 0).action, Action::Gp);
    for msr in pmc.first + 1..=pmc.last {
        assert_eq!(
            decide(&table, msr, true, 5),
            decide(&base_table, msr, true, 5),
            "{msr:#x}"
        );
    }
    assert_eq!(p.entries.len(), base.len() + 1);

    // ... open an MSR the base has no entry for (LBR_SELECT, a tracing
    // MSR: below the floor for no profile; the test policy stands for a
    // learned one) ...
    let small = parse(
        "selftests/test-policy.toml",
        include_str!("../../../selftests/test-policy.toml"),
    )
    .expect("the test policy parses");
    assert!(small.iter().all(|e| !(e.first <= 0x1c8 && 0x1c8 <= e.last)));
    let text = format!(
        "{HEADER}[[msr]]\nindex = 0x1c8\nname = \"MSR_LBR_SELECT\"\nread = \"allow\"\nwrite = \"allow\"\nreason = \"r\"\n"
    );
    let p = parse_profile("p.toml", &text, &small).expect("a profile adding an entry parses");
    let table: Vec<_> = p.entries.iter().map(|e| e.to_abi()).collect();
    assert_eq!(decide(&table, 0x1c8, true, 1).action, Action::Allow);
    assert_eq!(p.entries.len(), small.len() + 1);

    // ... but not load microcode.
    let e = errors(&format!(
        "{HEADER}[[msr]]\nindex = 0x79\nname = \"MSR_IA32_UCODE_WRITE\"\nread = \"gp\"\nwrite = \"allow\"\nreason = \"r\"\n"
    ));
    assert!(
        e[0].contains("which no policy may allow: microcode loading"),
        "{e:?}"
    );
}

#[test]
fn overlay_gives_each_msr_the_profiles_entry_else_the_bases() {
    // Every base and profile over MSRs 0..12 with up to three entries each,
    // drawn by a fixed generator, against the rule MSR by MSR.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % u64::from(n)) as u32
    };
    let mut table = |n: u32, write: Action, line: usize| {
        let mut entries = Vec::new();
        let mut at = next(4);
        for i in 0..n {
            let last = at + next(4);
            if last >= 12 {
                break;
            }
            entries.push(entry(at, last, "E", write, line + i as usize));
            at = last + 1 + next(3);
        }
        entries
    };
    for _ in 0..2000 {
        let base = table(3, Action::Allow, 1);
        let own = table(3, Action::Gp, 100);
        let merged = overlay(&base, &own);
        for w in merged.windows(2) {
            assert!(w[0].last < w[1].first, "{merged:?}");
        }
        for msr in 0..12 {
            let holding = |t: &[PolicyEntry]| {
                t.iter()
                    .find(|e| e.first <= msr && msr <= e.last)
                    .map(|e| e.line)
            };
            let want = holding(&own).or_else(|| holding(&base));
            assert_eq!(
                holding(&merged),
                want,
                "MSR {msr}: base {base:?} own {own:?} merged {merged:?}"
            );
        }
    }
}

#[test]
fn header_and_set_are_checked() {
    let e = errors("[profile]\nname = \"default\"\nreason = \"r\"\n");
    assert!(e[0].contains("is the base policy's profile"), "{e:?}");
    let e = errors("[profile]\nname = \"Has Space\"\nreason = \"r\"\n");
    assert!(e[0].contains("bad profile name"), "{e:?}");
    let e =
        errors("[profile]\nname = \"p\"\nreason = \"r\"\ncgroup_prefix = [\"machine.slice\"]\n");
    assert!(e[0].contains("bad cgroup_prefix"), "{e:?}");
    let e = errors("[profile]\nname = \"p\"\nreason = \"r\"\n[[pin]]\nindex = 0xc0000082\n");
    assert!(e[0].contains("missing field"), "{e:?}");

    let base = default_policy();
    let mk = |name: &str, prefix: &str| {
        parse_profile(
            "p.toml",
            &format!(
                "[profile]\nname = \"{name}\"\nreason = \"r\"\ncgroup_prefix = [\"{prefix}\"]\n"
            ),
            &base,
        )
        .expect("parses")
    };
    let files: Vec<String> = ["d", "a.toml", "b.toml"].map(String::from).to_vec();
    let set = [
        Profile::default_of(&base),
        mk("a", "/machine.slice/a"),
        mk("b", "/machine.slice/b"),
    ];
    assert!(check_profile_set(&set, &files).is_empty());
    let set = [
        Profile::default_of(&base),
        mk("a", "/machine.slice"),
        mk("b", "/machine.slice/b"),
    ];
    let e = check_profile_set(&set, &files);
    assert!(e[0].message.contains("overlaps one of \"a\""), "{e:?}");
    let set = [Profile::default_of(&base), mk("a", "/x"), mk("a", "/y")];
    assert!(check_profile_set(&set, &files)[0]
        .message
        .contains("profile \"a\" again"));
}
