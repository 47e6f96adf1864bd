// SPDX-License-Identifier: GPL-2.0

//! Policy semantics: the one definition of what an access is allowed to do.
//!
//! `core`-only; compiled into the kernel module (with the table generated
//! from `policy/default.toml`) and into the host crates, where the generator,
//! the tool and the unit tests use the same code.
//!
//! An MSR not covered by any entry gets [`DEFAULT_ACTION`]. A read gets the
//! entry's read action. A write with no write mask gets the entry's write
//! action; with a mask, a write that sets only bits inside the mask is
//! allowed, and one that sets any bit outside it gets the write action.

use crate::record::{
    AccessStatus,
    Reason, //
};

/// What happens to an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    /// The access proceeds as KVM would handle it.
    Allow = 0,
    /// Vetoed through KVM's failure path: a user-space MSR exit if the VMM
    /// asked for filtered MSRs, otherwise #GP in the guest.
    Gp = 1,
    /// Vetoed silently, as Hyper-V does for restricted MSRs: a read returns
    /// 0, a write is dropped, the guest sees success.
    Ignore = 2,
}

impl Action {
    /// Name as written in policy files.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Gp => "gp",
            Self::Ignore => "ignore",
        }
    }

    /// Decodes the value `as u8` gives.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Allow),
            1 => Some(Self::Gp),
            2 => Some(Self::Ignore),
            _ => None,
        }
    }

    /// Parses a policy file's action name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(Self::Allow),
            "gp" => Some(Self::Gp),
            "ignore" => Some(Self::Ignore),
            _ => None,
        }
    }
}

/// What an MSR outside the table gets.
pub const DEFAULT_ACTION: Action = Action::Gp;

/// One policy entry: an MSR index or an inclusive range of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First MSR index covered.
    pub first: u32,
    /// Last MSR index covered (equal to `first` for a single MSR).
    pub last: u32,
    /// Name from Linux's `msr-index.h` (or the range's name).
    pub name: &'static str,
    /// Action for reads.
    pub read: Action,
    /// Action for writes (all of them without a mask, violations with one).
    pub write: Action,
    /// Bits a guest may set, when `has_write_mask`.
    pub write_mask: u64,
    /// Whether `write_mask` applies.
    pub has_write_mask: bool,
}

/// The outcome of checking one access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// Why, when `action` is not [`Action::Allow`].
    pub reason: Option<Reason>,
}

impl Verdict {
    const ALLOW: Self = Self {
        action: Action::Allow,
        reason: None,
    };

    const fn deny(action: Action, reason: Reason) -> Self {
        match action {
            Action::Allow => Self::ALLOW,
            _ => Self {
                action,
                reason: Some(reason),
            },
        }
    }
}

/// Bitmaps of the MSRs in one range of indices that the policy always
/// allows, whatever the value, one bit per MSR (as KVM's own MSR filter
/// bitmaps): they decide the common case, an allowed access, in O(1). The
/// generator builds them from the table ([`AllowBitmap::bit`] is
/// [`always_allowed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowBitmap {
    /// First MSR index covered; the bitmap covers [`AllowBitmap::SPAN`].
    pub base: u32,
    /// Bit `i` (word `i / 64`, bit `i % 64`) set: reads of `base + i` are
    /// always allowed.
    pub read: AllowWords,
    /// The same for writes.
    pub write: AllowWords,
}

/// The words of one [`AllowBitmap`], held in place and of a fixed size:
/// the hot path tests a bit without loading a pointer or a length.
pub type AllowWords = [u64; AllowBitmap::WORDS];

impl AllowBitmap {
    /// Where the MSRs guests use live (KVM's filter uses the same three
    /// ranges in its examples): the generator builds a bitmap for each.
    pub const BASES: [u32; 3] = [0, 0xc000_0000, 0xc001_0000];
    /// MSR indices covered by each bitmap.
    pub const SPAN: u32 = 0x2000;
    /// 64-bit words in each bitmap.
    pub const WORDS: usize = (Self::SPAN / 64) as usize;

    /// The bit for `msr`: `None` outside this range.
    pub fn bit(&self, msr: u32, is_write: bool) -> Option<bool> {
        let offset = msr.wrapping_sub(self.base);
        if offset >= Self::SPAN {
            return None;
        }
        let words = if is_write { &self.write } else { &self.read };
        let word = words.get((offset / 64) as usize)?;
        Some(word & (1 << (offset % 64)) != 0)
    }
}

/// Whether a bitmap in `fast` says every access of this kind to `msr` is
/// allowed. `false` means "ask the table", not "denied".
pub fn fast_allowed(fast: &[AllowBitmap], msr: u32, is_write: bool) -> bool {
    fast.iter()
        .find_map(|b| b.bit(msr, is_write))
        .unwrap_or(false)
}

/// Finds the entry covering `msr` in `table`, which must be sorted by
/// `first` with no overlapping ranges (the generator guarantees it).
///
/// Bounded: O(log n) comparisons, no allocation; safe in atomic context.
pub fn lookup(table: &[Entry], msr: u32) -> Option<&Entry> {
    // The entry with the greatest `first` <= msr is the only candidate.
    let idx = table.partition_point(|e| e.first <= msr);
    let entry = table.get(idx.checked_sub(1)?)?;
    (msr <= entry.last).then_some(entry)
}

/// Decides an access. `value` is the value written (ignored for reads).
pub fn decide(table: &[Entry], msr: u32, is_write: bool, value: u64) -> Verdict {
    let Some(entry) = lookup(table, msr) else {
        return Verdict::deny(DEFAULT_ACTION, Reason::Unknown);
    };
    if !is_write {
        return Verdict::deny(entry.read, Reason::ReadDenied);
    }
    if !entry.has_write_mask {
        return Verdict::deny(entry.write, Reason::WriteDenied);
    }
    if value & !entry.write_mask == 0 {
        Verdict::ALLOW
    } else {
        Verdict::deny(entry.write, Reason::WriteMask)
    }
}

/// [`decide`], with the always-allowed MSRs answered by `fast` first.
pub fn decide_fast(
    table: &[Entry],
    fast: &[AllowBitmap],
    msr: u32,
    is_write: bool,
    value: u64,
) -> Verdict {
    if fast_allowed(fast, msr, is_write) {
        return Verdict::ALLOW;
    }
    decide(table, msr, is_write, value)
}

/// Whether the policy allows every access of this kind to `msr`, whatever
/// the value: KVM may then let the guest touch the MSR without an exit.
pub fn always_allowed(table: &[Entry], msr: u32, is_write: bool) -> bool {
    match lookup(table, msr) {
        None => DEFAULT_ACTION == Action::Allow,
        Some(e) if !is_write => e.read == Action::Allow,
        Some(e) => e.write == Action::Allow || (e.has_write_mask && e.write_mask == u64::MAX),
    }
}

/// The status of the event for a vetoed verdict `action`: in audit mode
/// nothing is vetoed, so every event is `audit-allowed`.
pub fn status_of(action: Action, audit: bool) -> AccessStatus {
    match (audit, action) {
        (true, _) => AccessStatus::AuditAllowed,
        (false, Action::Ignore) => AccessStatus::BlockedIgnored,
        (false, _) => AccessStatus::BlockedGp,
    }
}
