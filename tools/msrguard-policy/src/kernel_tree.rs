// SPDX-License-Identifier: GPL-2.0

//! What the readers of a kernel tree share: how kbuild points the compiler
//! at an x86 tree's headers, and the tree's version.

use std::path::Path;

/// kbuild's `-I` directories for x86, and the headers it includes into
/// every file (`-include`), relative to the tree.
const INCLUDE_DIRS: &[&str] = &[
    "arch/x86/include",
    "arch/x86/include/generated",
    "include",
    "arch/x86/include/uapi",
    "arch/x86/include/generated/uapi",
    "include/uapi",
    "include/generated/uapi",
];
const FORCED_HEADERS: &[&str] = &[
    "include/linux/compiler-version.h",
    "include/linux/kconfig.h",
    "include/linux/compiler_types.h",
];

/// The compiler arguments that make the tree at `kdir`'s headers and
/// configuration visible, as kbuild gives them.
pub fn include_args(kdir: &Path) -> Vec<String> {
    let k = kdir.display();
    let mut args: Vec<String> = INCLUDE_DIRS.iter().map(|d| format!("-I{k}/{d}")).collect();
    for header in FORCED_HEADERS {
        args.push("-include".to_string());
        args.push(format!("{k}/{header}"));
    }
    args
}

/// The kernel version of the tree at `kdir` (`7.3.4`), from its Makefile.
pub fn kernel_version(kdir: &Path) -> Option<String> {
    let makefile = std::fs::read_to_string(kdir.join("Makefile")).ok()?;
    let field = |name: &str| {
        makefile.lines().find_map(|l| {
            let value = l.strip_prefix(name)?.trim_start().strip_prefix('=')?;
            Some(value.trim().to_string())
        })
    };
    Some(format!(
        "{}.{}.{}",
        field("VERSION")?,
        field("PATCHLEVEL")?,
        field("SUBLEVEL")?
    ))
}
