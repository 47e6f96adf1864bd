// SPDX-License-Identifier: GPL-2.0

//! `msrguard policy suggest`: a policy proposal from the events of an audit
//! run, in the policy file's own TOML (as `audit2allow` does for SELinux).
//!
//! Each access the given policy would veto is grouped by MSR. For an MSR
//! without an entry, the output is a new `[[msr]]` entry, so the output can
//! be appended to the policy file as it is. For an MSR an existing entry
//! covers, it is that entry changed, commented out, with the line it
//! replaces (appending it would duplicate the entry). For a dangerous MSR
//! (`msrguard_policy::danger`) it is no entry: a "do not allow" comment
//! with the reason, except that a read may be answered with `ignore`.
//! Every proposal is checked with the build's checker before it is printed;
//! one it refuses is printed as a comment with the checker's message.
//!
//! What is proposed: for vetoed reads, `ignore` if every read returned 0
//! (the guest sees the same, and no host value is exposed), else `allow`;
//! for vetoed writes, a `write_mask` that is the entry's mask widened by
//! exactly the bits the guest wrote (`allow` only if that is every bit).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use msrguard_core::msr_names::msr_name;
use msrguard_core::policy::{decide, Action, Entry};
use msrguard_core::record::{trim_nul, AccessStatus, Record};
use msrguard_policy::{danger, PolicyEntry};

use crate::format::utc;

/// Examples of program counters and values kept per MSR.
const EXAMPLES: usize = 3;

/// What the guests did to one MSR that the policy would veto.
#[derive(Default)]
struct Evidence {
    reads: u64,
    writes: u64,
    /// Any vetoed read returned a non-zero value.
    read_nonzero: bool,
    /// OR of every vetoed write's value.
    written_bits: u64,
    values: BTreeSet<u64>,
    first_ns: u64,
    last_ns: u64,
    vmms: BTreeSet<(u32, String)>,
    vcpus: BTreeSet<u32>,
    pcs: Vec<u64>,
}

impl Evidence {
    fn add(&mut self, r: &Record) {
        if self.reads + self.writes == 0 || r.timestamp_ns < self.first_ns {
            self.first_ns = r.timestamp_ns;
        }
        self.last_ns = self.last_ns.max(r.timestamp_ns);
        // A record stands for itself and the identical accesses coalesced into it.
        let accesses = 1 + r.repeat;
        if r.is_write {
            self.writes += accesses;
            self.written_bits |= r.msr_value;
            if self.values.len() < EXAMPLES {
                self.values.insert(r.msr_value);
            }
        } else {
            self.reads += accesses;
            self.read_nonzero |= r.msr_value != 0;
        }
        let comm = String::from_utf8_lossy(trim_nul(&r.vmm_comm)).into_owned();
        self.vmms.insert((r.vmm_pid, comm));
        self.vcpus.insert(r.vcpu_id);
        if self.pcs.len() < EXAMPLES && !self.pcs.contains(&r.pc) {
            self.pcs.push(r.pc);
        }
    }

    /// The evidence as `# ` comment lines.
    fn comments(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# seen: {} vetoed reads, {} vetoed writes, {} .. {}",
            self.reads,
            self.writes,
            utc(self.first_ns),
            utc(self.last_ns)
        );
        let vmms: Vec<String> = self.vmms.iter().map(|(p, c)| format!("{p}/{c}")).collect();
        let vcpus: Vec<String> = self.vcpus.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "# vmm pid/comm: {}; vcpus: {}",
            vmms.join(", "),
            vcpus.join(", ")
        );
        let pcs: Vec<String> = self.pcs.iter().map(|p| format!("{p:#x}")).collect();
        let _ = writeln!(out, "# pc examples: {}", pcs.join(", "));
        if self.writes > 0 {
            let values: Vec<String> = self.values.iter().map(|v| format!("{v:#x}")).collect();
            let _ = writeln!(
                out,
                "# values written (examples): {}; bits written: {:#x}",
                values.join(", "),
                self.written_bits
            );
        }
    }
}

/// Result of [`suggest`].
pub(crate) struct Suggestion {
    /// The proposal to append to the policy (replacements commented out).
    pub(crate) diff: String,
    /// The whole policy with the proposal applied.
    pub(crate) merged: String,
    pub(crate) new_entries: usize,
    pub(crate) replacements: usize,
    pub(crate) refused: usize,
}

fn toml_entry(e: &PolicyEntry) -> String {
    let mut s = String::from("[[msr]]\n");
    let _ = writeln!(s, "index = {:#x}", e.first);
    if e.last != e.first {
        let _ = writeln!(s, "last = {:#x}", e.last);
    }
    let _ = writeln!(s, "name = \"{}\"", e.name);
    let _ = writeln!(s, "read = \"{}\"", e.read.name());
    let _ = writeln!(s, "write = \"{}\"", e.write.name());
    if let Some(m) = e.write_mask {
        // A string: TOML integers stop at 2^63-1.
        let _ = writeln!(s, "write_mask = \"{m:#x}\"");
    }
    let _ = writeln!(s, "reason = \"{}\"", e.reason.replace('"', "'"));
    s
}

fn commented(text: &str) -> String {
    text.lines().map(|l| format!("# {l}\n")).collect()
}

/// The proposal for one MSR: `None` if nothing may be proposed.
fn propose(msr: u32, ev: &Evidence, existing: Option<&PolicyEntry>) -> Option<PolicyEntry> {
    let danger = danger::dangerous(msr);
    let mut e = existing.cloned().unwrap_or_else(|| PolicyEntry {
        first: msr,
        last: msr,
        name: msr_name(msr).map_or_else(|| format!("MSR_{msr:X}"), str::to_string),
        read: msrguard_core::policy::DEFAULT_ACTION,
        write: msrguard_core::policy::DEFAULT_ACTION,
        write_mask: None,
        reason: String::new(),
        line: 0,
    });
    let mut changed = false;
    if ev.reads > 0 {
        let read = if ev.read_nonzero && danger.is_none() {
            Action::Allow
        } else {
            Action::Ignore
        };
        changed |= e.read != read;
        e.read = read;
    }
    if ev.writes > 0 && danger.is_none() {
        let mask = e.write_mask.unwrap_or(0) | ev.written_bits;
        if mask == u64::MAX {
            e.write = Action::Allow;
            e.write_mask = None;
        } else {
            e.write_mask = Some(mask);
        }
        changed = true;
    }
    if !changed {
        return None;
    }
    let learned = format!(
        "Learned in audit mode: {} reads, {} writes (msrguard policy suggest).",
        ev.reads, ev.writes
    );
    e.reason = if e.reason.is_empty() {
        learned
    } else {
        format!("{} {learned}", e.reason)
    };
    Some(e)
}

/// Checks `policy_text` with `addition` appended; the checker's messages.
fn check_with(policy_name: &str, policy_text: &str, addition: &str) -> Result<(), String> {
    let text = format!("{policy_text}\n{addition}");
    msrguard_policy::parse(policy_name, &text)
        .map(|_| ())
        .map_err(|d| {
            d.iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// The proposal for `records` against the policy file `policy_text`.
pub(crate) fn suggest(
    policy_name: &str,
    policy_text: &str,
    records: &[Record],
) -> Result<Suggestion, String> {
    let entries = msrguard_policy::parse(policy_name, policy_text).map_err(|d| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let table: Vec<Entry> = entries.iter().map(PolicyEntry::to_abi).collect();
    let mut by_msr: BTreeMap<u32, Evidence> = BTreeMap::new();
    let mut allowed = 0u64;
    for r in records {
        // Drop reports are not accesses.
        if r.access_status == AccessStatus::Dropped {
            continue;
        }
        if decide(&table, r.msr, r.is_write, r.msr_value).action == Action::Allow {
            allowed += 1;
            continue;
        }
        by_msr.entry(r.msr).or_default().add(r);
    }

    let mut s = Suggestion {
        diff: String::new(),
        merged: String::new(),
        new_entries: 0,
        replacements: 0,
        refused: 0,
    };
    let mut appendix = String::new();
    let mut replace: BTreeMap<usize, String> = BTreeMap::new();
    for (&msr, ev) in &by_msr {
        let name = msr_name(msr).unwrap_or("unknown");
        let existing = entries.iter().find(|e| e.first <= msr && msr <= e.last);
        let mut block = format!("\n# ---- {msr:#x} ({name}) ----\n");
        ev.comments(&mut block);
        if let Some(d) = danger::dangerous(msr) {
            let what = if ev.writes > 0 { " its writes" } else { "" };
            let _ = writeln!(block, "# do not allow{what}: {}", d.why);
        }
        let proposal = propose(msr, ev, existing);
        let entry = proposal.as_ref().map(toml_entry);
        // Checked as it would be used: appended, or in place of the entry.
        let checked = entry.as_ref().map(|entry| match existing {
            None => check_with(policy_name, policy_text, entry),
            Some(old) => check_with(
                policy_name,
                &splice(policy_text, &[(old.line, String::new())].into()),
                entry,
            ),
        });
        match (entry, checked, existing) {
            (Some(entry), Some(Ok(())), None) => {
                s.new_entries += 1;
                block.push_str(&entry);
                s.diff.push_str(&block);
                appendix.push_str(&block);
            }
            (Some(entry), Some(Ok(())), Some(old)) => {
                s.replacements += 1;
                let range = if old.first == old.last {
                    String::new()
                } else {
                    format!(
                        " (it covers {:#x}..={:#x}: the change applies to all of them)",
                        old.first, old.last
                    )
                };
                let _ = writeln!(
                    s.diff,
                    "{block}# replaces the entry at {policy_name}:{}{range}:\n{}",
                    old.line,
                    commented(&entry).trim_end()
                );
                replace.insert(old.line, format!("{}{entry}", block.trim_start()));
            }
            (Some(entry), Some(Err(m)), _) => {
                s.refused += 1;
                let _ = writeln!(
                    block,
                    "# not proposed: the checker refuses it: {m}\n{}",
                    commented(&entry).trim_end()
                );
                s.diff.push_str(&block);
                appendix.push_str(&block);
            }
            _ => {
                s.diff.push_str(&block);
                appendix.push_str(&block);
            }
        }
    }
    let header = format!(
        "# msrguard policy suggest: {} events, {allowed} already allowed by {policy_name}, {} MSRs it would veto:\n# {} new entries, {} changed entries, {} refused by the checker.\n",
        records.len(),
        by_msr.len(),
        s.new_entries,
        s.replacements,
        s.refused
    );
    s.diff = format!(
        "{header}# Append to {policy_name}; a changed entry is commented out: put it in place of the entry it names.\n{}",
        s.diff
    );
    s.merged = splice(policy_text, &replace);
    if !appendix.is_empty() {
        let _ = write!(s.merged, "\n{header}{appendix}");
    }
    Ok(s)
}

/// `text` with the `[[msr]]` entry whose header is on line `n` (1-based)
/// replaced by `replace[n]`: the header and the key lines after it, up to a
/// blank line, a comment or the next table.
pub(crate) fn splice(text: &str, replace: &BTreeMap<usize, String>) -> String {
    let mut out = String::new();
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        if let Some(new) = replace.get(&(i + 1)) {
            out.push_str(new);
            inside = true;
            continue;
        }
        let t = l.trim_start();
        if inside && (t.is_empty() || t.starts_with('#') || t.starts_with('[')) {
            inside = false;
        }
        if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
