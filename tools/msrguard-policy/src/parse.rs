// SPDX-License-Identifier: GPL-2.0

//! Parsing and checking a policy file.

use msrguard_core::policy::Action;
use serde::{de::DeserializeOwned, Deserialize};
use toml::Spanned;

use crate::entry::{describe_range, Diagnostic, PolicyEntry};
use crate::kvm_internal::check_kvm_internal;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    msr: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawNumber {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEntry {
    index: Spanned<RawNumber>,
    last: Option<Spanned<RawNumber>>,
    name: Spanned<String>,
    read: Spanned<String>,
    write: Spanned<String>,
    write_mask: Option<Spanned<RawNumber>>,
    reason: Spanned<String>,
}

/// Maps byte offsets to 1-based line numbers.
pub(crate) struct Lines<'a> {
    pub(crate) text: &'a str,
}

impl Lines<'_> {
    pub(crate) fn line(&self, offset: usize) -> usize {
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
pub(crate) fn parse_number(raw: &RawNumber) -> Result<u64, String> {
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
/// msrguard-msr-names) must carry one of its Linux names, and a name
/// Linux gives another index cannot be used. An index without a Linux name
/// may have any name that is not another index's.
pub(crate) fn name_mismatch(first: u32, name: &str) -> Option<String> {
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

/// An MSR index: a number of 32 bits at most.
pub(crate) fn parse_index(raw: &RawNumber) -> Result<u32, String> {
    let v = parse_number(raw)?;
    u32::try_from(v).map_err(|_| format!("index {v:#x} is not a 32-bit MSR index"))
}

/// Whether a reason is what every reason must be: one non-empty line.
pub(crate) fn one_line(reason: &str) -> bool {
    !reason.trim().is_empty() && !reason.contains('\n')
}

/// A file's TOML, or the parser's error at its line.
pub(crate) fn from_toml<T: DeserializeOwned>(
    file: &str,
    lines: &Lines<'_>,
    text: &str,
) -> Result<T, Vec<Diagnostic>> {
    toml::from_str(text).map_err(|e| {
        vec![Diagnostic {
            file: file.to_string(),
            line: lines.line(e.span().map(|s| s.start).unwrap_or(0)),
            message: e.message().trim().to_string(),
        }]
    })
}

/// The checks of a whole set of entries, once each entry is whole and none
/// overlaps (a policy file's, or a profile's laid over it): what
/// KVM itself accesses stays allowed, nothing goes below the floor.
pub(crate) fn check_whole(file: &str, entries: &[PolicyEntry]) -> Vec<Diagnostic> {
    let errors = check_kvm_internal(file, entries);
    if !errors.is_empty() {
        return errors;
    }
    crate::danger::check_floor(file, entries)
}

fn parse_action(raw: &str) -> Result<Action, String> {
    Action::from_name(raw)
        .ok_or_else(|| format!("unknown action \"{raw}\" (want \"allow\", \"gp\" or \"ignore\")"))
}

/// Parses and checks a policy file. `file` names it in diagnostics. On
/// success the entries are sorted by index and do not overlap.
pub fn parse(file: &str, text: &str) -> Result<Vec<PolicyEntry>, Vec<Diagnostic>> {
    let lines = Lines { text };
    let raw: RawFile = from_toml(file, &lines, text)?;

    let mut errors = Vec::new();
    let entries = check_entries(file, &lines, &raw.msr, &mut errors);
    let sorted = check_overlaps(file, entries, &mut errors);
    if errors.is_empty() {
        errors = check_whole(file, &sorted);
    }
    if errors.is_empty() {
        Ok(sorted)
    } else {
        errors.sort_by_key(|d| d.line);
        Err(errors)
    }
}

/// Checks each `[[msr]]` table, adding what is wrong to `errors`: the
/// entries that are whole, in file order.
pub(crate) fn check_entries(
    file: &str,
    lines: &Lines<'_>,
    raw: &[Spanned<RawEntry>],
    errors: &mut Vec<Diagnostic>,
) -> Vec<PolicyEntry> {
    let diag = |offset: usize, message: String| Diagnostic {
        file: file.to_string(),
        line: lines.line(offset),
        message,
    };
    let mut entries = Vec::new();
    for spanned in raw {
        let header = spanned.span().start;
        let e = spanned.get_ref();
        let mut bad =
            |span: std::ops::Range<usize>, msg: String| errors.push(diag(span.start, msg));

        let first = parse_index(e.index.get_ref())
            .map_err(|m| bad(e.index.span(), m))
            .ok();
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
        if !one_line(reason) {
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
    entries
}

/// Sorts `entries` by index, adding each duplicate or overlap to `errors`
/// (reported at the later entry in the file).
pub(crate) fn check_overlaps(
    file: &str,
    entries: Vec<PolicyEntry>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<PolicyEntry> {
    let mut sorted = entries;
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
    sorted
}
