// SPDX-License-Identifier: GPL-2.0

//! A checked policy entry, and a problem found in a policy file.

use std::fmt;

use msrguard_core::policy::{Action, Entry};

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

/// The MSR or MSRs an entry covers, for messages.
pub(crate) fn describe_range(e: &PolicyEntry) -> String {
    if e.first == e.last {
        format!("MSR {:#x}", e.first)
    } else {
        format!("MSRs {:#x}..={:#x}", e.first, e.last)
    }
}

/// The element of `table` (sorted by first index, ranges not overlapping)
/// whose range, as `range` gives it, holds `msr`.
pub(crate) fn range_holding<T>(
    table: &[T],
    msr: u32,
    range: impl Fn(&T) -> (u32, u32),
) -> Option<&T> {
    let idx = table.partition_point(|x| range(x).0 <= msr);
    let x = table.get(idx.checked_sub(1)?)?;
    (msr <= range(x).1).then_some(x)
}
