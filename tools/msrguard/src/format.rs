// SPDX-License-Identifier: GPL-2.0

//! How events, counters and the policy are printed.
//!
//! JSON field names are stable (documented in Documentation/msrguard/abi.rst):
//! schema_version, id, sequence, timestamp_ns, time, msr, msr_name, is_write,
//! msr_value, access_status, reason, pc, image_base, image_checksum,
//! image_timestamp, image_name, vmm_pid, vmm_comm, vcpu_id, guest_cpl,
//! guest_mode, vm_id, profile (the VM's profile: its name when read from the
//! device, else its index as a string), nested, repeat (identical accesses
//! coalesced after this one; for an access_status "dropped" record, the
//! events of vm_id dropped).
//!
//! JSON numbers are doubles to most consumers (jq 1.6, JavaScript): only
//! integers below 2^53 survive. So every field that can exceed that is a
//! string: `msr_value`, `pc` and `image_base` as `"0x..."` (bit patterns and
//! addresses), `timestamp_ns` in decimal (nanoseconds since the epoch passed
//! 2^53 in April 1970). `sequence` stays a number: it counts records from 1
//! per module load and would need centuries to reach 2^53; `repeat` is a
//! count of guest exits. The rest are 32 bits or less.

use std::fmt::Write as _;

use msrguard_core::msr_names::msr_name;
use msrguard_core::policy::Action;
use msrguard_core::record::{
    trim_nul, AccessStatus, PolicyEntryWire, Record, Stats, VmInfoWire, FLAG_NESTED,
    FLAG_OUTSIDE_RUN,
};
use serde_json::json;

/// The Windows event id msrguard's events mirror.
pub(crate) const EVENT_ID: u32 = 12550;

fn description(r: &Record) -> &'static str {
    match r.access_status {
        AccessStatus::AuditAllowed => {
            "msrguard audited access to a restricted MSR (allowed: audit mode)"
        }
        // VM id 0: the VMs beyond the buffer's per-VM accounting, together.
        AccessStatus::Dropped if r.vm_id == 0 => {
            "msrguard dropped events of VMs without a share of the buffer (more VMs with events queued than it tracks): the buffer was full"
        }
        AccessStatus::Dropped => {
            "msrguard dropped events of this VM: it was over its share of the buffer"
        }
        _ => "msrguard blocked access to a restricted MSR",
    }
}

fn text_field(bytes: &[u8]) -> String {
    String::from_utf8_lossy(trim_nul(bytes)).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (RFC 3339, UTC) for nanoseconds since
/// the epoch.
pub(crate) fn utc(ns: u64) -> String {
    // jiff reaches year 9999, any u64 of nanoseconds ends in 2554: the
    // fallback only keeps this total.
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => format!("{t:.9}"),
        Err(_) => format!("{ns}ns"),
    }
}

fn cpl(c: u8) -> String {
    if c == 0xff {
        "unknown".to_string()
    } else {
        c.to_string()
    }
}

/// The name of profile `index`, from the module's `names` (index 0 is
/// always `default`); its index where the name is not known (a file of
/// records read without the module).
pub(crate) fn profile_name(index: u8, names: &[String]) -> String {
    match names.get(usize::from(index)) {
        Some(name) => name.clone(),
        None if index == 0 => "default".to_string(),
        None => index.to_string(),
    }
}

/// The event as Windows shows event 12550, then the VM's identity; `names`
/// are the module's profiles (may be empty).
pub(crate) fn text(r: &Record, names: &[String]) -> String {
    let mut s = String::new();
    let name = msr_name(r.msr).unwrap_or("unknown");
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<15}: {v}");
    };
    line("Id", EVENT_ID.to_string());
    line("Description", description(r).to_string());
    line("TimeCreated", utc(r.timestamp_ns));
    line("Sequence", r.sequence.to_string());
    line("Msr", format!("{:#x} ({name})", r.msr));
    line("IsWrite", r.is_write.to_string());
    line("MsrValue", format!("{:#x}", r.msr_value));
    line("AccessStatus", r.access_status.name().to_string());
    line("Reason", r.reason.name().to_string());
    line("Pc", format!("{:#x}", r.pc));
    line("ImageBase", format!("{:#x}", r.image_base));
    line("ImageChecksum", format!("{:#x}", r.image_checksum));
    line("ImageTimestamp", format!("{:#x}", r.image_timestamp));
    line("ImageName", text_field(&r.image_name));
    line("VmmPid", r.vmm_pid.to_string());
    line("VmmComm", text_field(&r.vmm_comm));
    line("VcpuId", r.vcpu_id.to_string());
    line("GuestCpl", cpl(r.guest_cpl));
    line("GuestMode", r.guest_mode.name().to_string());
    line("VmId", format!("{:08x}", r.vm_id));
    line("Profile", profile_name(r.profile, names));
    line("Nested", (r.flags & FLAG_NESTED != 0).to_string());
    line("OutsideRun", (r.flags & FLAG_OUTSIDE_RUN != 0).to_string());
    line(
        if r.access_status == AccessStatus::Dropped {
            "EventsDropped"
        } else {
            "Repeat"
        },
        r.repeat.to_string(),
    );
    s
}

/// Version of the `--json` object's schema. 2: `msr_value`, `pc`,
/// `image_base` and `timestamp_ns` became strings (they were numbers, which
/// jq and JavaScript round above 2^53).
pub(crate) const JSON_SCHEMA_VERSION: u32 = 2;

/// A 64-bit bit pattern or address, as `"0x..."`.
pub(crate) fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// One JSON object, on one line.
pub(crate) fn json(r: &Record, names: &[String]) -> String {
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "id": EVENT_ID,
        "sequence": r.sequence,
        "timestamp_ns": r.timestamp_ns.to_string(),
        "time": utc(r.timestamp_ns),
        "msr": r.msr,
        "msr_name": msr_name(r.msr).unwrap_or(""),
        "is_write": r.is_write,
        "msr_value": hex(r.msr_value),
        "access_status": r.access_status.name(),
        "reason": r.reason.name(),
        "pc": hex(r.pc),
        "image_base": hex(r.image_base),
        "image_checksum": r.image_checksum,
        "image_timestamp": r.image_timestamp,
        "image_name": text_field(&r.image_name),
        "vmm_pid": r.vmm_pid,
        "vmm_comm": text_field(&r.vmm_comm),
        "vcpu_id": r.vcpu_id,
        "guest_cpl": if r.guest_cpl == 0xff { serde_json::Value::Null } else { r.guest_cpl.into() },
        "guest_mode": r.guest_mode.name(),
        "vm_id": format!("{:08x}", r.vm_id),
        "profile": profile_name(r.profile, names),
        "nested": r.flags & FLAG_NESTED != 0,
        "outside_run": r.flags & FLAG_OUTSIDE_RUN != 0,
        "repeat": r.repeat,
    })
    .to_string()
}

/// The counters as a table, then the live VMs per profile.
pub(crate) fn stats_text(s: &Stats, vms: &[(String, usize)]) -> String {
    let counters = format!(
        "abi_version     : {}\nrecord_size     : {}\nmode            : {}\nlocked          : {}\ncapacity        : {}\nqueued          : {}\ngenerated       : {}\ndelivered       : {}\ndropped         : {}\nblocked_gp      : {}\nblocked_ignored : {}\naudit_allowed   : {}\ncoalesced       : {}\nvm_quota        : {}\nvm_reserve      : {}",
        s.abi_version,
        s.record_size,
        if s.audit != 0 { "audit" } else { "enforce" },
        s.locked != 0,
        s.capacity,
        s.queued,
        s.generated,
        s.delivered,
        s.dropped,
        s.blocked_gp,
        s.blocked_ignored,
        s.audit_allowed,
        s.coalesced,
        s.vm_quota,
        s.vm_reserve
    );
    let vms_line = vms
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{counters}\nvms             : {}{}",
        vms.iter().map(|(_, n)| n).sum::<usize>(),
        if vms.is_empty() {
            String::new()
        } else {
            format!(" ({vms_line})")
        }
    )
}

/// The counters as one JSON object.
pub(crate) fn stats_json(s: &Stats, vms: &[(String, usize)]) -> String {
    let by_profile: serde_json::Map<String, serde_json::Value> =
        vms.iter().map(|(p, n)| (p.clone(), (*n).into())).collect();
    json!({
        "vms": by_profile,
        "abi_version": s.abi_version,
        "record_size": s.record_size,
        "mode": if s.audit != 0 { "audit" } else { "enforce" },
        "locked": s.locked != 0,
        "capacity": s.capacity,
        "queued": s.queued,
        "generated": s.generated,
        "delivered": s.delivered,
        "dropped": s.dropped,
        "blocked_gp": s.blocked_gp,
        "blocked_ignored": s.blocked_ignored,
        "audit_allowed": s.audit_allowed,
        "coalesced": s.coalesced,
        "vm_quota": s.vm_quota,
        "vm_reserve": s.vm_reserve,
    })
    .to_string()
}

fn action_name(v: u8) -> &'static str {
    Action::from_u8(v).map_or("?", Action::name)
}

/// The module's policy as a table.
pub(crate) fn policy_table(entries: &[PolicyEntryWire]) -> String {
    let mut s = format!(
        "{:<23} {:<34} {:<6} {:<6} {}\n",
        "MSR", "NAME", "READ", "WRITE", "WRITE MASK"
    );
    for e in entries {
        let range = if e.first == e.last {
            format!("{:#x}", e.first)
        } else {
            format!("{:#x}-{:#x}", e.first, e.last)
        };
        let mask = if e.has_write_mask {
            format!("{:#x}", e.write_mask)
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            s,
            "{range:<23} {:<34} {:<6} {:<6} {mask}",
            text_field(&e.name),
            action_name(e.read),
            action_name(e.write)
        );
    }
    let _ = writeln!(
        s,
        "{:<23} {:<34} {:<6} {:<6} -",
        "(anything else)", "", "gp", "gp"
    );
    s
}

/// The live VMs: id, profile, VMM pid and its command name (from /proc).
pub(crate) fn vms_text(vms: &[VmInfoWire], names: &[String]) -> String {
    let mut s = format!(
        "{:<8}  {:<15}  {:>8}  {}\n",
        "VM", "PROFILE", "VMM_PID", "VMM"
    );
    for v in vms {
        let comm = if v.vmm_pid == 0 {
            "(before msrguard)".to_string()
        } else {
            std::fs::read_to_string(format!("/proc/{}/comm", v.vmm_pid))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_else(|_| "?".to_string())
        };
        let _ = writeln!(
            s,
            "{:08x}  {:<15}  {:>8}  {comm}",
            v.vm_id,
            profile_name(v.profile, names),
            v.vmm_pid
        );
    }
    s
}

/// How many live VMs each profile has, in the module's order (the
/// profiles without one left out).
pub(crate) fn vms_by_profile(vms: &[VmInfoWire], names: &[String]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for v in vms {
        let name = profile_name(v.profile, names);
        match counts.iter_mut().find(|(p, _)| *p == name) {
            Some((_, n)) => *n += 1,
            None => counts.push((name, 1)),
        }
    }
    counts.sort_by_key(|(p, _)| names.iter().position(|n| n == p).unwrap_or(usize::MAX));
    counts
}

/// The live VMs as JSON, one object per line.
pub(crate) fn vms_json(vms: &[VmInfoWire], names: &[String]) -> String {
    vms.iter()
        .map(|v| {
            json!({
                "vm_id": format!("{:08x}", v.vm_id),
                "profile": profile_name(v.profile, names),
                "vmm_pid": v.vmm_pid,
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::{profile_name, utc};

    #[test]
    fn utc_is_rfc3339_with_nanoseconds() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc(1_795_626_761_123_456_789),
            "2026-11-25T17:12:41.123456789Z"
        );
        // Leap day, and the largest value a record can hold.
        assert_eq!(
            utc(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(utc(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn profile_names_come_from_the_module_else_the_index() {
        let names = vec!["default".to_string(), "hardened".to_string()];
        assert_eq!(profile_name(1, &names), "hardened");
        assert_eq!(profile_name(0, &[]), "default");
        assert_eq!(profile_name(3, &names), "3");
    }
}
