// SPDX-License-Identifier: GPL-2.0

//! msrguard policy files: parsing, checking and code generation.
//!
//! The same code validates a file for `msrguard check` and generates the
//! table compiled into the kernel module, so a file the tool accepts is
//! exactly a file the build accepts. Every error is reported as
//! `file:line: message`.
//!
//! A policy file is TOML: a list of `[[msr]]` tables with the keys `index`,
//! optional `last` (for an inclusive range), `name`, `read`, `write`,
//! optional `write_mask` and `reason`. Numbers may be TOML integers or
//! strings such as `"0xffff_ffff_ffff_ffff"` (TOML integers stop at 2^63-1).

pub mod bypass;
pub mod cexpr;
pub mod danger;
pub mod kvm;

use std::fmt;
use std::fmt::Write as _;

use msrguard_core::policy::{always_allowed, Action, AllowBitmap, AllowWords, Entry};
use serde::Deserialize;
use toml::Spanned;

/// One entry of a checked policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    /// First MSR index covered.
    pub first: u32,
    /// Last MSR index covered, inclusive.
    pub last: u32,
    /// Name (from Linux's `msr-index.h` where the MSR has one).
    pub name: String,
    /// Action for reads.
    pub read: Action,
    /// Action for writes, or for writes outside `write_mask`.
    pub write: Action,
    /// Bits a guest may set.
    pub write_mask: Option<u64>,
    /// Why the entry is what it is (one line).
    pub reason: String,
    /// Line of the entry's `[[msr]]` header in the file.
    pub line: usize,
}

impl PolicyEntry {
    /// The entry in the form the module and the lookup use. The name is
    /// leaked, which is what a `'static` table on the host costs.
    pub fn to_abi(&self) -> Entry {
        Entry {
            first: self.first,
            last: self.last,
            name: Box::leak(self.name.clone().into_boxed_str()),
            read: self.read,
            write: self.write,
            write_mask: self.write_mask.unwrap_or(0),
            has_write_mask: self.write_mask.is_some(),
        }
    }
}

/// A problem in a policy file, with the line it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file's name as given by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    msr: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNumber {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    index: Spanned<RawNumber>,
    last: Option<Spanned<RawNumber>>,
    name: Spanned<String>,
    read: Spanned<String>,
    write: Spanned<String>,
    write_mask: Option<Spanned<RawNumber>>,
    reason: Spanned<String>,
}

/// Maps byte offsets to 1-based line numbers.
struct Lines<'a> {
    text: &'a str,
}

impl Lines<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}

/// Parses a number written as a TOML integer, or a string in decimal or
/// `0x` hexadecimal with optional `_` separators.
fn parse_number(raw: &RawNumber) -> Result<u64, String> {
    match raw {
        RawNumber::Int(v) => u64::try_from(*v).map_err(|_| format!("negative number {v}")),
        RawNumber::Str(s) => {
            let clean: String = s.chars().filter(|&c| c != '_').collect();
            let parsed = match clean
                .strip_prefix("0x")
                .or_else(|| clean.strip_prefix("0X"))
            {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => clean.parse::<u64>(),
            };
            parsed.map_err(|_| format!("bad number \"{s}\" (want decimal or 0x hexadecimal)"))
        }
    }
}

/// Why `name` is wrong for an entry starting at `first`, if it is: an index
/// Linux names (msr-index.h, kvm_para.h, hvgdk_mini.h; see
/// scripts/gen-msr-names.py) must carry one of its Linux names, and a name
/// Linux gives another index cannot be used. An index without a Linux name
/// may have any name that is not another index's.
fn name_mismatch(first: u32, name: &str) -> Option<String> {
    use msrguard_core::msr_names::{msr_names, MSR_NAMES};
    let own = msr_names(first);
    if own.iter().any(|&(_, n)| n == name) {
        return None;
    }
    if let Some(&(_, linux)) = own.first() {
        let all: Vec<&str> = own.iter().map(|&(_, n)| n).collect();
        return Some(format!(
            "{first:#x} is {linux} in Linux's headers, not {name} (want one of: {})",
            all.join(", ")
        ));
    }
    MSR_NAMES
        .iter()
        .find(|&&(_, n)| n == name)
        .map(|&(i, _)| format!("{name} is {i:#x} in Linux's headers, not {first:#x}"))
}

fn parse_action(raw: &str) -> Result<Action, String> {
    Action::from_name(raw)
        .ok_or_else(|| format!("unknown action \"{raw}\" (want \"allow\", \"gp\" or \"ignore\")"))
}

/// Parses and checks a policy file. `file` names it in diagnostics. On
/// success the entries are sorted by index and do not overlap.
pub fn parse(file: &str, text: &str) -> Result<Vec<PolicyEntry>, Vec<Diagnostic>> {
    let lines = Lines { text };
    let diag = |offset: usize, message: String| Diagnostic {
        file: file.to_string(),
        line: lines.line(offset),
        message,
    };

    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        vec![diag(offset, e.message().trim().to_string())]
    })?;

    let mut errors = Vec::new();
    let mut entries = Vec::new();
    for spanned in &raw.msr {
        let header = spanned.span().start;
        let e = spanned.get_ref();
        let mut bad =
            |span: std::ops::Range<usize>, msg: String| errors.push(diag(span.start, msg));

        let first = match parse_number(e.index.get_ref()) {
            Ok(v) if v <= u32::MAX as u64 => Some(v as u32),
            Ok(v) => {
                bad(
                    e.index.span(),
                    format!("index {v:#x} is not a 32-bit MSR index"),
                );
                None
            }
            Err(m) => {
                bad(e.index.span(), m);
                None
            }
        };
        let last = match &e.last {
            None => first,
            Some(l) => match parse_number(l.get_ref()) {
                Ok(v) if v > u32::MAX as u64 => {
                    bad(l.span(), format!("last {v:#x} is not a 32-bit MSR index"));
                    None
                }
                Ok(v) if first.is_some_and(|f| (v as u32) < f) => {
                    bad(
                        l.span(),
                        format!("last {v:#x} is below index {:#x}", first.unwrap_or(0)),
                    );
                    None
                }
                Ok(v) => Some(v as u32),
                Err(m) => {
                    bad(l.span(), m);
                    None
                }
            },
        };
        let name = e.name.get_ref().trim();
        let name_ok =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            bad(
                e.name.span(),
                format!("bad name \"{name}\" (want letters, digits and _, as in msr-index.h)"),
            );
        }
        if let (true, Some(first)) = (name_ok, first) {
            if let Some(m) = name_mismatch(first, name) {
                bad(e.name.span(), m);
            }
        }
        let read = parse_action(e.read.get_ref())
            .map_err(|m| bad(e.read.span(), m))
            .ok();
        let write = parse_action(e.write.get_ref())
            .map_err(|m| bad(e.write.span(), m))
            .ok();
        let write_mask = match &e.write_mask {
            None => None,
            Some(m) => match parse_number(m.get_ref()) {
                Ok(v) => {
                    if write == Some(Action::Allow) {
                        bad(m.span(), "write_mask has no effect with write = \"allow\": the write action handles writes outside the mask".to_string());
                    }
                    Some(v)
                }
                Err(msg) => {
                    bad(m.span(), msg);
                    None
                }
            },
        };
        let reason = e.reason.get_ref().trim();
        if reason.is_empty() || reason.contains('\n') {
            bad(
                e.reason.span(),
                "reason must be one non-empty line".to_string(),
            );
        }
        if let (Some(first), Some(last), Some(read), Some(write)) = (first, last, read, write) {
            entries.push(PolicyEntry {
                first,
                last,
                name: name.to_string(),
                read,
                write,
                write_mask,
                reason: reason.to_string(),
                line: lines.line(header),
            });
        }
    }

    // Duplicates and overlaps, reported at the later entry in the file.
    let mut sorted = entries.clone();
    sorted.sort_by_key(|e| (e.first, e.line));
    for pair in sorted.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.first <= a.last {
            let (earlier, later) = if a.line < b.line { (a, b) } else { (b, a) };
            let what = if a.first == b.first && a.last == b.last {
                "duplicates"
            } else {
                "overlaps"
            };
            errors.push(Diagnostic {
                file: file.to_string(),
                line: later.line,
                message: format!(
                    "{} ({}) {what} {} ({}) at line {}",
                    describe_range(later),
                    later.name,
                    describe_range(earlier),
                    earlier.name,
                    earlier.line
                ),
            });
        }
    }

    if errors.is_empty() {
        errors = check_kvm_internal(file, &sorted);
    }
    if errors.is_empty() {
        Ok(sorted)
    } else {
        errors.sort_by_key(|d| d.line);
        Err(errors)
    }
}

/// An access KVM makes itself, while emulating something other than a guest
/// RDMSR/WRMSR. It passes the same hooks, so a policy denying it breaks KVM
/// (a failed RSM, a WARN on a nested VM-entry, RDTSC reading 0) rather than
/// stopping a guest.
struct KvmAccess {
    first: u32,
    last: u32,
    name: &'static str,
    reads: bool,
    writes: bool,
    by: &'static str,
}

/// What every policy must allow. (XSS, which KVM writes for SEV-ES guests,
/// is not here: KVM ignores that write failing.)
const KVM_INTERNAL: &[KvmAccess] = &[
    KvmAccess {
        first: 0xc0000080,
        last: 0xc0000080,
        name: "MSR_EFER",
        reads: true,
        writes: true,
        by: "RSM and the emulator's mode changes",
    },
    KvmAccess {
        first: 0xc0000081,
        last: 0xc0000084,
        name: "MSR_STAR..MSR_SYSCALL_MASK",
        reads: true,
        writes: false,
        by: "SYSCALL/SYSRET emulation",
    },
    KvmAccess {
        first: 0x174,
        last: 0x176,
        name: "MSR_IA32_SYSENTER_CS..EIP",
        reads: true,
        writes: false,
        by: "SYSENTER/SYSEXIT emulation",
    },
    KvmAccess {
        first: 0x38f,
        last: 0x38f,
        name: "MSR_CORE_PERF_GLOBAL_CTRL",
        reads: false,
        writes: true,
        by: "nested VMX VM-entry and VM-exit",
    },
    KvmAccess {
        first: 0x10,
        last: 0x10,
        name: "MSR_IA32_TSC",
        reads: true,
        writes: false,
        by: "RDTSC emulation",
    },
    KvmAccess {
        first: 0xc0000103,
        last: 0xc0000103,
        name: "MSR_TSC_AUX",
        reads: true,
        writes: false,
        by: "RDPID emulation",
    },
    KvmAccess {
        first: 0x6a0,
        last: 0x6a0,
        name: "MSR_IA32_U_CET",
        reads: true,
        writes: false,
        by: "CET emulation",
    },
    KvmAccess {
        first: 0x6a2,
        last: 0x6a2,
        name: "MSR_IA32_S_CET",
        reads: true,
        writes: false,
        by: "CET emulation",
    },
];

/// Checks that every access KVM makes on its own is allowed.
fn check_kvm_internal(file: &str, entries: &[PolicyEntry]) -> Vec<Diagnostic> {
    let table: Vec<Entry> = entries.iter().map(|e| e.to_abi()).collect();
    let mut out = Vec::new();
    for k in KVM_INTERNAL {
        let (name, who) = (k.name, k.by);
        for msr in k.first..=k.last {
            let denied_read = k.reads && !msrguard_core::policy::always_allowed(&table, msr, false);
            let denied_write =
                k.writes && !msrguard_core::policy::always_allowed(&table, msr, true);
            if !denied_read && !denied_write {
                continue;
            }
            let line = entries
                .iter()
                .find(|e| e.first <= msr && msr <= e.last)
                .map_or(1, |e| e.line);
            let what = match (denied_read, denied_write) {
                (true, true) => "reads and writes",
                (true, false) => "reads",
                _ => "writes",
            };
            out.push(Diagnostic {
                file: file.to_string(),
                line,
                message: format!(
                    "{name} ({msr:#x}) must allow {what} (every value): KVM itself makes them ({who}), and denying them breaks KVM, not the guest"
                ),
            });
            break;
        }
    }
    out
}

fn describe_range(e: &PolicyEntry) -> String {
    if e.first == e.last {
        format!("MSR {:#x}", e.first)
    } else {
        format!("MSRs {:#x}..={:#x}", e.first, e.last)
    }
}

fn action_path(a: Action) -> &'static str {
    match a {
        Action::Allow => "Action::Allow",
        Action::Gp => "Action::Gp",
        Action::Ignore => "Action::Ignore",
    }
}

/// Generates the Rust source of the module's table from checked entries.
pub fn generate(source_name: &str, entries: &[PolicyEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// SPDX-License-Identifier: GPL-2.0");
    let _ = writeln!(
        out,
        "// @generated by msrguard-policy-gen from {source_name}. Do not edit."
    );
    let _ = writeln!(out);
    // A plain comment: the module include!s this file, where an inner
    // doc comment is not allowed.
    let _ = writeln!(out, "// The policy compiled into this module.");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "use crate::policy::{{\n    Action,\n    AllowBitmap,\n    Entry, //\n}};"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "/// Entries sorted by first index, no overlaps ({} entries).",
        entries.len()
    );
    let _ = writeln!(out, "#[rustfmt::skip]");
    let _ = writeln!(out, "pub(crate) static TABLE: &[Entry] = &[");
    for e in entries {
        let _ = writeln!(out, "    // {}", e.reason.replace('\n', " "));
        let _ = writeln!(
            out,
            "    Entry {{ first: {:#x}, last: {:#x}, name: \"{}\", read: {}, write: {}, write_mask: {:#x}, has_write_mask: {} }},",
            e.first,
            e.last,
            e.name,
            action_path(e.read),
            action_path(e.write),
            e.write_mask.unwrap_or(0),
            e.write_mask.is_some()
        );
    }
    let _ = writeln!(out, "];");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "/// The always-allowed MSRs of [`TABLE`], as bitmaps (see `policy::AllowBitmap`)."
    );
    let _ = writeln!(out, "#[rustfmt::skip]");
    let _ = writeln!(
        out,
        "pub(crate) static FAST: &[AllowBitmap; AllowBitmap::BASES.len()] = &["
    );
    for (base, read, write) in allow_bitmaps(entries) {
        let words = |w: &[u64]| {
            w.iter()
                .map(|x| format!("{x:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "    AllowBitmap {{ base: {base:#x}, read: [{}], write: [{}] }},",
            words(&read),
            words(&write)
        );
    }
    let _ = writeln!(out, "];");
    out
}

/// [`allow_bitmaps`] as the module's `AllowBitmap`s, for host tests and
/// benchmarks.
pub fn allow_bitmaps_static(entries: &[PolicyEntry]) -> Vec<AllowBitmap> {
    allow_bitmaps(entries)
        .into_iter()
        .map(|(base, read, write)| AllowBitmap { base, read, write })
        .collect()
}

/// The bitmaps of always-allowed MSRs at [`AllowBitmap::BASES`]:
/// `(base, read words, write words)`, bit set iff [`always_allowed`].
pub fn allow_bitmaps(entries: &[PolicyEntry]) -> Vec<(u32, AllowWords, AllowWords)> {
    let table: Vec<Entry> = entries.iter().map(PolicyEntry::to_abi).collect();
    AllowBitmap::BASES
        .iter()
        .map(|&base| {
            let bits = |is_write| {
                let mut words = [0u64; AllowBitmap::WORDS];
                for i in 0..AllowBitmap::SPAN {
                    if always_allowed(&table, base + i, is_write) {
                        words[(i / 64) as usize] |= 1 << (i % 64);
                    }
                }
                words
            };
            (base, bits(false), bits(true))
        })
        .collect()
}

/// What `msrguard check --against-kvm` finds wrong: each KVM-handled MSR the
/// policy leaves to the default action, and each part of a policy entry
/// covering MSRs KVM does not handle (dead: KVM faults them anyway, and the
/// default action already says `gp`). One line per finding, empty if none.
pub fn check_against_kvm(kvm: &kvm::KvmMsrs, entries: &[PolicyEntry]) -> Vec<String> {
    let mut out = Vec::new();
    let name_of = |m: u32| msrguard_core::msr_names::msr_name(m).unwrap_or("no Linux name");
    // Covered = union of the policy's entries (sorted, disjoint).
    for (a, z) in kvm.intervals() {
        let mut m = a;
        while m <= z {
            if let Some(e) = entries.iter().find(|e| e.first <= m && m <= e.last) {
                if e.last >= z {
                    break;
                }
                m = e.last + 1;
                continue;
            }
            // An uncovered run: up to the next entry or the interval's end.
            let next = entries
                .iter()
                .filter(|e| e.first > m)
                .map(|e| e.first - 1)
                .min()
                .unwrap_or(u32::MAX)
                .min(z);
            out.push(format!(
                "{}: handled by KVM but left to the default action ({}; {})",
                span(m, next),
                name_of(m),
                kvm.sources(m, next).join(", ")
            ));
            if next == u32::MAX {
                break;
            }
            m = next + 1;
        }
    }
    let intervals = kvm.intervals();
    for e in entries {
        let mut m = e.first;
        loop {
            let inside = intervals.iter().find(|&&(a, z)| a <= m && m <= z);
            let stop = match inside {
                Some(&(_, z)) => z.min(e.last),
                None => {
                    let next = intervals
                        .iter()
                        .filter(|&&(a, _)| a > m)
                        .map(|&(a, _)| a - 1)
                        .min()
                        .unwrap_or(u32::MAX)
                        .min(e.last);
                    let refused = kvm
                        .guest_refused
                        .iter()
                        .any(|k| k.first <= next && m <= k.last);
                    out.push(format!(
                        "line {}: {} ({}): dead entry{}: KVM does not handle {}",
                        e.line,
                        describe_range(e),
                        e.name,
                        if e.first == m && e.last == next {
                            ""
                        } else {
                            " part"
                        },
                        if refused {
                            format!("{} (KVM refuses it to guests itself)", span(m, next))
                        } else {
                            span(m, next)
                        }
                    ));
                    next
                }
            };
            if stop >= e.last {
                break;
            }
            m = stop + 1;
        }
    }
    out
}

fn span(a: u32, z: u32) -> String {
    if a == z {
        format!("MSR {a:#x}")
    } else {
        format!("MSRs {a:#x}..={z:#x}")
    }
}
