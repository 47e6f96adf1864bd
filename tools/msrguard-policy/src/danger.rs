// SPDX-License-Identifier: GPL-2.0

//! MSRs no policy should let a guest write, whatever an audit run saw: the
//! classes the default policy refuses on principle (microcode loading, SMM,
//! power/voltage/frequency control, tracing and debug-store facilities).
//! `msrguard policy suggest` never proposes allowing a write to one of them,
//! and proposes at most `ignore` (reads 0) for a read.
//!
//! This is the one list of them; the default policy's entries for these MSRs
//! carry the same reasons in prose.
//!
//! All but the tracing facilities are also the floor: no profile may let a
//! guest write a non-zero value to them ([`check_floor`]). A profile for
//! performance work may allow LBR or PEBS; none may load microcode, enter
//! SMM or change voltage.

use msrguard_core::policy::Action;

use crate::entry::{describe_range, range_holding, Diagnostic, PolicyEntry};

/// A range of dangerous MSRs and why.
pub struct Danger {
    /// First MSR index.
    pub first: u32,
    /// Last MSR index, inclusive.
    pub last: u32,
    /// Why a guest must not write it (one line).
    pub why: &'static str,
}

const fn d(first: u32, last: u32, why: &'static str) -> Danger {
    Danger { first, last, why }
}

const MICROCODE: &str = "microcode loading: a guest write would load or select host microcode";
const SMM: &str = "SMM: system-management mode state belongs to the host firmware";
const POWER: &str =
    "power/voltage/frequency control: host-wide, and a fault-injection vector (Plundervolt)";
const ENERGY: &str = "energy counters: host-wide power readings are a side channel (Platypus)";
pub(crate) const TRACE: &str =
    "tracing/debug store: LBR, BTS, PEBS and Intel PT record or write host-visible state";

/// Sorted by `first`, no overlaps (a unit test checks it).
pub const DANGEROUS: &[Danger] = &[
    d(0x34, 0x34, SMM),
    d(0x40, 0x47, TRACE),
    d(0x60, 0x67, TRACE),
    d(0x79, 0x79, MICROCODE),
    d(0x8b, 0x8b, MICROCODE),
    d(0x9e, 0x9e, SMM),
    d(0x150, 0x150, POWER),
    d(0x199, 0x199, POWER),
    d(0x1a2, 0x1a2, POWER),
    d(0x1ad, 0x1ad, POWER),
    d(0x1b0, 0x1b0, POWER),
    d(0x1c8, 0x1c9, TRACE),
    d(0x1d9, 0x1d9, TRACE),
    d(0x1db, 0x1de, TRACE),
    d(0x1fc, 0x1fc, POWER),
    d(0x3f1, 0x3f2, TRACE),
    d(0x560, 0x587, TRACE),
    d(0x600, 0x600, TRACE),
    d(0x606, 0x610, POWER),
    d(0x611, 0x611, ENERGY),
    d(0x612, 0x618, POWER),
    d(0x619, 0x619, ENERGY),
    d(0x61a, 0x638, POWER),
    d(0x639, 0x639, ENERGY),
    d(0x63a, 0x640, POWER),
    d(0x641, 0x641, ENERGY),
    d(0x642, 0x64f, POWER),
    d(0x680, 0x69f, TRACE),
    d(0x6c0, 0x6df, TRACE),
    d(0x770, 0x777, POWER),
    d(0xdc0, 0xddf, TRACE),
    d(0x1200, 0x121f, TRACE),
    d(0x14ce, 0x14cf, TRACE),
    d(0x1500, 0x161f, TRACE),
    d(0xc0010020, 0xc0010020, MICROCODE),
    d(0xc0010061, 0xc0010071, POWER),
    d(0xc0010111, 0xc0010113, SMM),
    d(0xc0010116, 0xc0010116, SMM),
    d(0xc0010299, 0xc001029b, ENERGY),
    d(0xc00102b0, 0xc00102b4, POWER),
];

impl Danger {
    /// Whether the range is part of the floor no profile may allow.
    pub fn in_floor(&self) -> bool {
        self.why != TRACE
    }
}

/// The floor: each entry of a policy or profile covering a floor MSR must
/// not allow a guest to write a non-zero value (its write action is not
/// `allow`, and a write mask, if any, is 0).
pub fn check_floor(file: &str, entries: &[PolicyEntry]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for e in entries {
        let writes = e.write == Action::Allow || e.write_mask.is_some_and(|m| m != 0);
        if !writes {
            continue;
        }
        if let Some(d) = DANGEROUS
            .iter()
            .find(|d| d.in_floor() && d.first <= e.last && e.first <= d.last)
        {
            errors.push(Diagnostic {
                file: file.to_string(),
                line: e.line,
                message: format!(
                    "{} ({}) lets a guest write MSRs {:#x}..={:#x}, which no policy may allow: {}",
                    describe_range(e),
                    e.name,
                    d.first,
                    d.last,
                    d.why
                ),
            });
        }
    }
    errors
}

/// Why `msr` is dangerous, if it is.
pub fn dangerous(msr: u32) -> Option<&'static Danger> {
    range_holding(DANGEROUS, msr, |x| (x.first, x.last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_without_overlaps_and_found() {
        for w in DANGEROUS.windows(2) {
            assert!(w[0].first <= w[0].last && w[0].last < w[1].first);
        }
        assert_eq!(dangerous(0x79).map(|x| x.why), Some(MICROCODE));
        assert_eq!(dangerous(0x570).map(|x| x.why), Some(TRACE));
        assert_eq!(dangerous(0x611).map(|x| x.why), Some(ENERGY));
        assert!(dangerous(0x10).is_none());
        assert!(dangerous(0xc0000080).is_none());
        assert!(dangerous(u32::MAX).is_none());
    }
}
