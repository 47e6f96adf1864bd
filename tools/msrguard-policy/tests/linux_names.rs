// SPDX-License-Identifier: GPL-2.0
//! The committed MSR name table is what the preprocessor reads from the
//! kernel tree MSRGUARD_KDIR names: one source for names, never edited.

use std::path::Path;

#[test]
fn the_committed_name_table_is_the_trees() {
    let Some(kdir) = std::env::var_os("MSRGUARD_KDIR") else {
        println!("SKIP: MSRGUARD_KDIR is not set (a Linux source tree to read MSR names from)");
        return;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let table =
        msrguard_policy::linux_names::read(Path::new(&kdir), &cc).unwrap_or_else(|e| panic!("{e}"));
    let version = msrguard_policy::kernel_tree::kernel_version(Path::new(&kdir)).unwrap();
    let committed = include_str!("../../../rust/core/msr_names.rs");
    if !committed.contains(&format!("from Linux {version}'s")) {
        println!("SKIP: rust/core/msr_names.rs is not from Linux {version}, the tree's version");
        return;
    }
    assert!(
        msrguard_policy::linux_names::render(&table, &version) == committed,
        "rust/core/msr_names.rs is not what {} defines: regenerate it with \
         `cargo run -p msrguard-policy --bin msrguard-msr-names -- KDIR > rust/core/msr_names.rs`",
        Path::new(&kdir).display()
    );
    // Names the policy relies on, each from one of the three headers.
    for (index, name) in [
        (0xc0000082, "MSR_LSTAR"),
        (0x4b564d01, "MSR_KVM_SYSTEM_TIME_NEW"),
        (0x40000001, "HV_X64_MSR_HYPERCALL"),
    ] {
        assert!(
            table.iter().any(|(v, n)| *v == index && n == name),
            "{name}"
        );
    }
    // Fields of an index, bit numbers and Hyper-V's field values are not.
    for name in ["HV_X64_MSR_HYPERCALL_ENABLE", "MSR_IA32_POWER_CTL_BIT_EE"] {
        assert!(!table.iter().any(|(_, n)| n == name), "{name}");
    }
}
