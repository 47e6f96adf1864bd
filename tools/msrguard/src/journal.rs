// SPDX-License-Identifier: GPL-2.0

//! Forwarding events to the systemd journal over its native protocol
//! (`/run/systemd/journal/socket`), with structured fields.
//!
//! Journal fields are strings by protocol, and `journalctl -o json` prints
//! them as JSON strings: 64-bit values (`MSR_VALUE`, `PC`, `IMAGE_BASE`) as
//! `0x...`, the counters in decimal, so no consumer rounds them.

use libsystemd::logging::{journal_send, Priority};
use msrguard_core::msr_names::msr_name;
use msrguard_core::record::{trim_nul, AccessStatus, Record};

use crate::format::{hex, utc};
use crate::Failure;

/// MESSAGE_ID of every msrguard event (a fixed 128-bit id, as journald wants).
pub(crate) const MESSAGE_ID: &str = "4d5352475541524431323535300a0001";

/// Sends one event as a journal entry.
pub(crate) fn send(r: &Record, names: &[String]) -> Result<(), Failure> {
    let (priority, message, fields) = entry(r, names);
    journal_send(priority, &message, fields.into_iter())
        .map_err(|e| Failure(format!("journal: {e} (is systemd-journald running?)")))
}

/// The entry's priority, MESSAGE and other fields.
fn entry(r: &Record, names: &[String]) -> (Priority, String, Vec<(&'static str, String)>) {
    let name = msr_name(r.msr).unwrap_or("unknown");
    let message = format!(
        "msrguard: {} {} MSR {:#x} ({name}) value {:#x} at pc {:#x} (vmm {} {}, vcpu {})",
        r.access_status.name(),
        if r.is_write { "WRMSR" } else { "RDMSR" },
        r.msr,
        r.msr_value,
        r.pc,
        r.vmm_pid,
        String::from_utf8_lossy(trim_nul(&r.vmm_comm)),
        r.vcpu_id
    );
    let priority = match r.access_status {
        AccessStatus::AuditAllowed => Priority::Notice,
        AccessStatus::Dropped => Priority::Error,
        _ => Priority::Warning,
    };
    let fields = vec![
        ("MESSAGE_ID", MESSAGE_ID.to_string()),
        ("MSRGUARD_EVENT_ID", "12550".to_string()),
        ("SEQUENCE", r.sequence.to_string()),
        ("EVENT_TIME", utc(r.timestamp_ns)),
        ("MSR", format!("{:#x}", r.msr)),
        ("MSR_NAME", name.to_string()),
        ("IS_WRITE", (r.is_write as u8).to_string()),
        ("MSR_VALUE", hex(r.msr_value)),
        ("ACCESS_STATUS", r.access_status.name().to_string()),
        ("REASON", r.reason.name().to_string()),
        ("PC", hex(r.pc)),
        ("IMAGE_BASE", hex(r.image_base)),
        ("IMAGE_CHECKSUM", format!("{:#x}", r.image_checksum)),
        ("IMAGE_TIMESTAMP", format!("{:#x}", r.image_timestamp)),
        (
            "IMAGE_NAME",
            String::from_utf8_lossy(trim_nul(&r.image_name)).into_owned(),
        ),
        ("VMM_PID", r.vmm_pid.to_string()),
        (
            "VMM_COMM",
            String::from_utf8_lossy(trim_nul(&r.vmm_comm)).into_owned(),
        ),
        ("VCPU_ID", r.vcpu_id.to_string()),
        ("GUEST_MODE", r.guest_mode.name().to_string()),
        ("VM_ID", format!("{:08x}", r.vm_id)),
        ("PROFILE", crate::format::profile_name(r.profile, names)),
        ("REPEAT", r.repeat.to_string()),
    ];
    (priority, message, fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use msrguard_core::record::{GuestMode, Reason, COMM_LEN, IMAGE_NAME_LEN};

    #[test]
    fn sixty_four_bit_fields_round_trip_exactly() {
        let r = Record {
            sequence: u64::MAX,
            timestamp_ns: 1_795_626_761_123_456_789,
            msr: 0xc000_0080,
            is_write: true,
            msr_value: 0xffff_ffff_ffff_fffe,
            access_status: AccessStatus::AuditAllowed,
            reason: Reason::WriteMask,
            pc: 18_446_744_072_512_353_219,
            image_base: 0xffff_f800_0000_0000,
            image_checksum: 0,
            image_timestamp: 0,
            image_name: [0; IMAGE_NAME_LEN],
            vmm_pid: 1,
            vmm_comm: [0; COMM_LEN],
            vcpu_id: 0,
            guest_cpl: 0,
            guest_mode: GuestMode::Long,
            flags: 0,
            repeat: u64::MAX,
            vm_id: 7,
            profile: 0,
        };
        let (priority, _, fields) = entry(&r, &[]);
        assert!(matches!(priority, Priority::Notice));
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no field {k}"))
        };
        let parse = |k: &str| u64::from_str_radix(get(k).trim_start_matches("0x"), 16).unwrap();
        assert_eq!(get("PC"), "0xffffffffb8a433c3");
        assert_eq!(parse("PC"), r.pc);
        assert_eq!(parse("MSR_VALUE"), r.msr_value);
        assert_eq!(parse("IMAGE_BASE"), r.image_base);
        assert_eq!(get("SEQUENCE").parse::<u64>().unwrap(), r.sequence);
    }
}
