// SPDX-License-Identifier: GPL-2.0

//! Profiles: named variants of the base policy, one per kind of VM.
//!
//! A profile file (`policy/profiles/NAME.toml`) starts from the policy the
//! module is built with (its base) and may
//!
//! - decide MSRs of its own (`[[msr]]` tables, as in a policy file): each
//!   decides the MSRs it covers, whatever the base says of them, and the
//!   base decides the rest. These entries thus fit any base (the shipped
//!   one, or a policy learned from audit records), and may allow what the
//!   base refuses (a profile for VMs that trace inside the guest opening
//!   LBR and Intel PT) or refuse what it allows;
//! - pin MSRs (`[[pin]]`: the guest's first write since the vCPU's reset
//!   fixes the value) and make bits set-only (`[[set_only]]`: once set on a
//!   vCPU, the guest cannot clear them), each with its reason;
//! - name the VMs it is for (`cgroup_prefix` in `[profile]`: VMs whose
//!   creating task's cgroup path starts with one of them).
//!
//! The merged entries pass every check a policy file does (KVM's own
//! accesses, the floor); a pin or set-only bit must be on one MSR the
//! profile lets the guest write, and never on an MSR an OS rewrites while
//! it runs ([`crate::rewritten`]).

use msrguard_core::policy::Action;
use serde::Deserialize;
use toml::Spanned;

use crate::entry::{range_holding, Diagnostic, PolicyEntry};
use crate::parse::{
    check_entries, check_overlaps, check_whole, from_toml, name_mismatch, one_line, parse_index,
    parse_number, Lines, RawEntry, RawNumber,
};
use crate::rewritten::{nonzero_reset, rewritten};

pub use msrguard_core::profiles::{MAX_PINS, MAX_PROFILES};

/// The one MSR that may have set-only bits: the module compares a write
/// with the value KVM holds, which its hooks read for EFER only
/// (`vcpu->arch.efer`, always current).
pub const SET_ONLY_MSR: u32 = 0xc000_0080;
/// The name of the profile that is the base policy itself.
pub const DEFAULT_PROFILE: &str = "default";

/// One pinned or set-only MSR of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinSpec {
    /// The MSR.
    pub msr: u32,
    /// Its name.
    pub name: String,
    /// The first write fixes the value.
    pub pin: bool,
    /// Bits that, once set, stay set.
    pub set_only: u64,
    /// Why (one line per rule, joined with "; " when an MSR has both).
    pub reason: String,
    /// Line of its table in the file.
    pub line: usize,
}

/// A checked profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Its name (`[a-z0-9-]`, at most 15 bytes).
    pub name: String,
    /// What it is for (one line).
    pub reason: String,
    /// cgroup path prefixes of the VMs it is given when they are created.
    pub cgroup_prefixes: Vec<String>,
    /// The base entries with the profile's own laid over them, sorted.
    pub entries: Vec<PolicyEntry>,
    /// How many `[[msr]]` entries of its own the profile has.
    pub own_entries: usize,
    /// Pinned and set-only MSRs, sorted by MSR, one each.
    pub pins: Vec<PinSpec>,
}

impl Profile {
    /// The base policy as the profile `default`: no pins, no rule.
    pub fn default_of(base: &[PolicyEntry]) -> Self {
        Self {
            name: DEFAULT_PROFILE.to_string(),
            reason: "the base policy".to_string(),
            cgroup_prefixes: Vec::new(),
            entries: base.to_vec(),
            own_entries: 0,
            pins: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfileFile {
    profile: Spanned<RawHeader>,
    #[serde(default)]
    msr: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    pin: Vec<Spanned<RawPin>>,
    #[serde(default)]
    set_only: Vec<Spanned<RawSetOnly>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    reason: Spanned<String>,
    #[serde(default)]
    cgroup_prefix: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    index: Spanned<RawNumber>,
    name: Spanned<String>,
    reason: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetOnly {
    index: Spanned<RawNumber>,
    name: Spanned<String>,
    bits: Spanned<RawNumber>,
    reason: Spanned<String>,
}

/// Parses and checks a profile file over the checked `base` policy.
pub fn parse_profile(
    file: &str,
    text: &str,
    base: &[PolicyEntry],
) -> Result<Profile, Vec<Diagnostic>> {
    let lines = Lines { text };
    let diag = |offset: usize, message: String| Diagnostic {
        file: file.to_string(),
        line: lines.line(offset),
        message,
    };
    let raw: RawProfileFile = from_toml(file, &lines, text)?;
    let mut errors = Vec::new();

    let header = raw.profile.get_ref();
    let name = header.name.get_ref().trim().to_string();
    let name_ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        errors.push(diag(
            header.name.span().start,
            format!("bad profile name \"{name}\" (want a-z, 0-9 and -, at most 15 bytes)"),
        ));
    } else if name == DEFAULT_PROFILE {
        errors.push(diag(
            header.name.span().start,
            format!("\"{DEFAULT_PROFILE}\" is the base policy's profile: name this one otherwise"),
        ));
    }
    if !one_line(header.reason.get_ref()) {
        errors.push(diag(
            header.reason.span().start,
            "reason must be one non-empty line".to_string(),
        ));
    }
    let mut cgroup_prefixes = Vec::new();
    for p in &header.cgroup_prefix {
        let v = p.get_ref();
        if !v.starts_with('/') || v.contains('\n') || v.len() > 255 {
            errors.push(diag(
                p.span().start,
                format!(
                    "bad cgroup_prefix \"{v}\" (want an absolute cgroup path, at most 255 bytes)"
                ),
            ));
        } else {
            cgroup_prefixes.push(v.clone());
        }
    }

    // Its own entries, laid over the base's.
    let own = check_entries(file, &lines, &raw.msr, &mut errors);
    let own = check_overlaps(file, own, &mut errors);
    let own_ranges: Vec<(u32, u32)> = own.iter().map(|r| (r.first, r.last)).collect();
    let entries = overlay(base, &own);

    // Pins and set-only bits.
    let mut pins: Vec<PinSpec> = Vec::new();
    let mut add = |index: &Spanned<RawNumber>,
                   name: &Spanned<String>,
                   reason: &Spanned<String>,
                   pin: bool,
                   set_only: u64,
                   header: usize,
                   errors: &mut Vec<Diagnostic>| {
        let what = if pin { "pin" } else { "set_only" };
        let msr = match parse_index(index.get_ref()) {
            Ok(msr) => msr,
            Err(m) => {
                errors.push(diag(index.span().start, m));
                return;
            }
        };
        let name = name.get_ref().trim();
        if let Some(m) = name_mismatch(msr, name) {
            errors.push(diag(index.span().start, m));
        }
        if !pin && msr != SET_ONLY_MSR {
            errors.push(diag(
                index.span().start,
                format!(
                    "set_only on {name} ({msr:#x}): the module checks set-only bits against the value the MSR holds, which it knows for MSR_EFER ({SET_ONLY_MSR:#x}) only"
                ),
            ));
            return;
        }
        if !one_line(reason.get_ref()) {
            errors.push(diag(
                reason.span().start,
                "reason must be one non-empty line".to_string(),
            ));
        }
        if let Some(r) = rewritten(msr).filter(|r| pin || r.bits & set_only != 0) {
            let bits = if r.bits == u64::MAX || pin {
                String::new()
            } else {
                format!(", bits {:#x}", r.bits & set_only)
            };
            errors.push(diag(
                index.span().start,
                format!(
                    "{what} on {name} ({msr:#x}{bits}) would veto a well-behaved guest: {}",
                    r.why
                ),
            ));
            return;
        }
        if let Some(r) = nonzero_reset(msr).filter(|_| pin) {
            errors.push(diag(
                index.span().start,
                format!(
                    "pin on {name} ({msr:#x}) would hold its reset value after a VMM reset: {}",
                    r.why
                ),
            ));
            return;
        }
        let Some(entry) = range_holding(&entries, msr, |e| (e.first, e.last)) else {
            errors.push(diag(
                index.span().start,
                format!("{what} on {name} ({msr:#x}): no entry of the profile covers it"),
            ));
            return;
        };
        let writable = if pin {
            entry.write == Action::Allow || entry.write_mask.is_some_and(|m| m != 0)
        } else {
            entry.write == Action::Allow
                || entry.write_mask.is_some_and(|m| m & set_only == set_only)
        };
        if !writable {
            let own = own_ranges.contains(&(entry.first, entry.last));
            errors.push(diag(
                index.span().start,
                format!(
                    "{what} on {name} ({msr:#x}): {} at line {} does not let a guest write {}",
                    if own {
                        "the profile's entry"
                    } else {
                        "the base policy's entry"
                    },
                    entry.line,
                    if pin {
                        "it".to_string()
                    } else {
                        format!("bits {set_only:#x}")
                    }
                ),
            ));
            return;
        }
        let line = lines.line(header);
        match pins.iter_mut().find(|p| p.msr == msr) {
            Some(p) if (pin && p.pin) || (set_only != 0 && p.set_only != 0) => errors.push(diag(
                index.span().start,
                format!(
                    "{what} on {name} ({msr:#x}) again: the first is at line {}",
                    p.line
                ),
            )),
            Some(p) => {
                p.pin |= pin;
                p.set_only |= set_only;
                p.reason = format!("{}; {}", p.reason, reason.get_ref().trim());
            }
            None => pins.push(PinSpec {
                msr,
                name: name.to_string(),
                pin,
                set_only,
                reason: reason.get_ref().trim().to_string(),
                line,
            }),
        }
    };
    for p in &raw.pin {
        let r = p.get_ref();
        add(
            &r.index,
            &r.name,
            &r.reason,
            true,
            0,
            p.span().start,
            &mut errors,
        );
    }
    for s in &raw.set_only {
        let r = s.get_ref();
        match parse_number(r.bits.get_ref()) {
            Ok(0) => errors.push(diag(
                r.bits.span().start,
                "bits must name at least one bit".to_string(),
            )),
            Ok(bits) => add(
                &r.index,
                &r.name,
                &r.reason,
                false,
                bits,
                s.span().start,
                &mut errors,
            ),
            Err(m) => errors.push(diag(r.bits.span().start, m)),
        }
    }
    pins.sort_by_key(|p| p.msr);
    if pins.len() > MAX_PINS {
        errors.push(diag(
            0,
            format!("{} pinned or set-only MSRs: at most {MAX_PINS}", pins.len()),
        ));
    }

    if errors.is_empty() {
        errors = check_whole(file, &entries);
    }
    if errors.is_empty() {
        Ok(Profile {
            name,
            reason: header.reason.get_ref().trim().to_string(),
            cgroup_prefixes,
            entries,
            own_entries: own_ranges.len(),
            pins,
        })
    } else {
        errors.sort_by_key(|d| d.line);
        Err(errors)
    }
}

/// `base` with `own` laid over it (both sorted by first index, neither
/// overlapping itself): each of `own`'s entries decides the MSRs it
/// covers; a base entry it covers in part keeps the rest of its range,
/// in one or two pieces under its own name and line.
pub fn overlay(base: &[PolicyEntry], own: &[PolicyEntry]) -> Vec<PolicyEntry> {
    let mut entries = Vec::with_capacity(base.len() + 2 * own.len());
    for e in base {
        // The first index of `e` no entry of `own` has covered yet.
        let mut next = Some(e.first);
        for o in own
            .iter()
            .filter(|o| o.first <= e.last && e.first <= o.last)
        {
            let Some(first) = next else { break };
            if o.first > first {
                entries.push(PolicyEntry {
                    first,
                    last: o.first - 1,
                    ..e.clone()
                });
            }
            next = o
                .last
                .checked_add(1)
                .filter(|&n| n <= e.last)
                .map(|n| n.max(first));
        }
        if let Some(first) = next {
            entries.push(PolicyEntry { first, ..e.clone() });
        }
    }
    entries.extend(own.iter().cloned());
    entries.sort_by_key(|e| e.first);
    entries
}

/// Checks the set of profiles a module holds (the default one first):
/// names unique, no more than [`MAX_PROFILES`], no cgroup prefix claimed
/// by two profiles. `files[i]` names `profiles[i]`'s file.
pub fn check_profile_set(profiles: &[Profile], files: &[String]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let at = |i: usize, message: String| Diagnostic {
        file: files.get(i).cloned().unwrap_or_default(),
        line: 1,
        message,
    };
    if profiles.len() > MAX_PROFILES {
        errors.push(at(
            0,
            format!(
                "{} profiles: a module holds at most {MAX_PROFILES}",
                profiles.len()
            ),
        ));
    }
    for (i, p) in profiles.iter().enumerate() {
        if let Some(j) = profiles[..i].iter().position(|q| q.name == p.name) {
            errors.push(at(
                i,
                format!(
                    "profile \"{}\" again (also {})",
                    p.name,
                    files.get(j).map_or("", |f| f.as_str())
                ),
            ));
        }
        for prefix in &p.cgroup_prefixes {
            if let Some(q) = profiles[..i].iter().find(|q| {
                q.cgroup_prefixes
                    .iter()
                    .any(|x| x.starts_with(prefix.as_str()) || prefix.starts_with(x.as_str()))
            }) {
                errors.push(at(
                    i,
                    format!(
                        "cgroup_prefix \"{prefix}\" of \"{}\" overlaps one of \"{}\": a VM would match both",
                        p.name, q.name
                    ),
                ));
            }
        }
    }
    errors
}

/// `default` (the policy `base` itself) and each profile file over it,
/// checked one by one and as a set; the messages of every error found.
pub fn load_profiles(base: &[PolicyEntry], files: &[String]) -> Result<Vec<Profile>, Vec<String>> {
    let mut profiles = vec![Profile::default_of(base)];
    let mut names = vec![String::new()];
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| vec![format!("{f}: {e}")])?;
        let p = parse_profile(f, &text, base)
            .map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        profiles.push(p);
        names.push(f.clone());
    }
    let errors = check_profile_set(&profiles, &names);
    if errors.is_empty() {
        Ok(profiles)
    } else {
        Err(errors.iter().map(ToString::to_string).collect())
    }
}
