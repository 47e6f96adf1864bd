// SPDX-License-Identifier: GPL-2.0

//! msrguard's MSR name table (`rust/core/msr_names.rs`), derived from Linux's
//! headers by the C preprocessor: `cc -E -dD` over the headers, with the
//! tree's include paths and configuration, lists every `#define` in the
//! order the headers make it, each under the header it is in.
//!
//! Read: `arch/x86/include/asm/msr-index.h` (`MSR_*`),
//! `arch/x86/include/uapi/asm/kvm_para.h` (`MSR_*`: KVM's) and
//! `include/hyperv/hvgdk_mini.h` (`HV_X64_MSR_*`). Kept: the defines that are
//! MSR indices, not bits or fields of one:
//!
//! - the value is a hexadecimal literal: these headers write every MSR index
//!   in hex and bit numbers, shifts and counts in decimal
//!   (`MSR_IA32_POWER_CTL_BIT_EE` is 19, `MSR_AMD64_IBSFETCH_REG_COUNT` 3);
//! - the name has no `_BIT`, `_BITS` or `_SHIFT` component;
//! - the name is not a field of an index defined before it in the same
//!   header: `EARLIER_ENABLE`, `EARLIER_MASK`, `EARLIER_BIT`... where
//!   `EARLIER` is kept (`HV_X64_MSR_HYPERCALL_ENABLE` is 0x1, a bit of
//!   `HV_X64_MSR_HYPERCALL`). A real MSR may end in `_MASK` or `_ENABLE`
//!   (`MSR_SYSCALL_MASK`, `MSR_IA32_PEBS_ENABLE`): none extends another
//!   index's name;
//! - Hyper-V names lie in the hypervisor range 0x40000000-0x4fffffff (its
//!   header also has hex field values such as
//!   `HV_X64_MSR_TSC_REFERENCE_ENABLE`).
//!
//! Every name of an index is kept, in header order; the first is the
//! display name, and the policy checker accepts any of them for that index.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kernel_tree;

/// (header, name prefix, lowest and highest index it may define)
const HEADERS: &[(&str, &str, u64, u64)] = &[
    ("arch/x86/include/asm/msr-index.h", "MSR_", 0, 0xffff_ffff),
    (
        "arch/x86/include/uapi/asm/kvm_para.h",
        "MSR_",
        0,
        0xffff_ffff,
    ),
    (
        "include/hyperv/hvgdk_mini.h",
        "HV_X64_MSR_",
        0x4000_0000,
        0x4fff_ffff,
    ),
];
const FIELD_WORDS: &[&str] = &["ENABLE", "EN", "BIT", "BITS", "SHIFT", "MASK"];

/// Why the names could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NamesError {
    /// The preprocessor could not run.
    #[error("cannot run the C compiler `{cc}`: {source}")]
    Spawn {
        /// The compiler.
        cc: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The preprocessor failed.
    #[error("`{cc} -E -dD` on {}'s MSR headers failed:\n{stderr}", kdir.display())]
    Preprocess {
        /// The compiler.
        cc: String,
        /// The tree.
        kdir: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// A header defined no name.
    #[error("{header}: no {prefix}* index found; has the header moved?")]
    Empty {
        /// The header.
        header: &'static str,
        /// The prefix looked for.
        prefix: &'static str,
    },
}

/// The `(index, name)` pairs of the tree at `kdir`, sorted by index; an
/// index's names in header order. `cc` is the C compiler (`cc`, or `$CC`).
pub fn read(kdir: &Path, cc: &str) -> Result<Vec<(u32, String)>, NamesError> {
    let k = kdir.display();
    let mut cmd = Command::new(cc);
    cmd.args(["-E", "-dD", "-nostdinc", "-D__KERNEL__", "-x", "c", "-"]);
    cmd.args(kernel_tree::include_args(kdir));
    let source: String = HEADERS
        .iter()
        .map(|(h, ..)| format!("#include \"{k}/{h}\"\n"))
        .collect();
    let out = run_with_stdin(cmd, &source).map_err(|source| NamesError::Spawn {
        cc: cc.to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(NamesError::Preprocess {
            cc: cc.to_string(),
            kdir: kdir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Each header's defines in the order it makes them.
    let mut per_header: Vec<Vec<(u64, String)>> = vec![Vec::new(); HEADERS.len()];
    let mut current: Option<usize> = None;
    for line in text.lines() {
        // Line markers: `# LINE "FILE" FLAGS` name the file that follows.
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(file) = rest.split('"').nth(1) {
                current = HEADERS
                    .iter()
                    .position(|(h, ..)| Path::new(file) == kdir.join(h));
            }
            continue;
        }
        let (Some(i), Some(def)) = (current, line.strip_prefix("#define ")) else {
            continue;
        };
        let (_, prefix, lowest, highest) = HEADERS[i];
        let mut words = def.split_whitespace();
        let (Some(name), Some(raw)) = (words.next(), words.next()) else {
            continue;
        };
        // A function-like macro is no index: `NAME(` does not match.
        if !name.starts_with(prefix) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let Some(value) = hex_literal(raw) else {
            continue;
        };
        let parts: Vec<&str> = name.split('_').collect();
        if value < lowest
            || value > highest
            || parts.iter().any(|p| ["BIT", "BITS", "SHIFT"].contains(p))
        {
            continue;
        }
        let last = parts.last().copied().unwrap_or_default();
        let kept = &per_header[i];
        if FIELD_WORDS.contains(&last)
            && kept
                .iter()
                .any(|(_, earlier)| name.starts_with(&format!("{earlier}_")))
        {
            continue;
        }
        per_header[i].push((value, name.to_string()));
    }
    for (i, (header, prefix, ..)) in HEADERS.iter().enumerate() {
        if per_header[i].is_empty() {
            return Err(NamesError::Empty { header, prefix });
        }
    }
    let mut table: Vec<(u32, String)> = Vec::new();
    for (value, name) in per_header.into_iter().flatten() {
        // Within the range checked above: at most 0xffff_ffff.
        let index = u32::try_from(value).unwrap_or(u32::MAX);
        if !table.iter().any(|(v, n)| *v == index && *n == name) {
            table.push((index, name));
        }
    }
    // Stable: an index's names stay in header order.
    table.sort_by_key(|(v, _)| *v);
    Ok(table)
}

fn run_with_stdin(mut cmd: Command, input: &str) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    child.wait_with_output()
}

/// `0x1234`, with an optional `U`/`L` suffix.
fn hex_literal(raw: &str) -> Option<u64> {
    let digits = raw
        .strip_prefix("0x")
        .or_else(|| raw.strip_prefix("0X"))?
        .trim_end_matches(['u', 'U', 'l', 'L']);
    u64::from_str_radix(digits, 16).ok()
}

/// `rust/core/msr_names.rs` for `table`, read from Linux `version`.
pub fn render(table: &[(u32, String)], version: &str) -> String {
    let mut s = format!(
        "// SPDX-License-Identifier: GPL-2.0
// @generated by `msrguard-msr-names KDIR` (tools/msrguard-policy/src/linux_names.rs)
// from Linux {version}'s msr-index.h, kvm_para.h and hvgdk_mini.h. Do not edit.

//! MSR names from Linux's headers, sorted by index; `core`-only, shared by
//! the policy checker and the tool. An index may have several names.

/// `(index, name)` pairs, sorted by index; an index's names in header order.
pub static MSR_NAMES: &[(u32, &str)] = &[
"
    );
    for (v, name) in table {
        s.push_str(&format!("    ({v:#x}, \"{name}\"),\n"));
    }
    s.push_str(
        "];

/// The names Linux gives `msr`, first the one shown for it.
pub fn msr_names(msr: u32) -> &'static [(u32, &'static str)] {
    let start = MSR_NAMES.partition_point(|&(index, _)| index < msr);
    let end = MSR_NAMES.partition_point(|&(index, _)| index <= msr);
    MSR_NAMES.get(start..end).unwrap_or(&[])
}

/// The Linux name of `msr`, if it has one (the first in header order).
pub fn msr_name(msr: u32) -> Option<&'static str> {
    msr_names(msr).first().map(|&(_, name)| name)
}
",
    );
    s
}
