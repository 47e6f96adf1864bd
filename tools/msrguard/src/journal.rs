// SPDX-License-Identifier: GPL-2.0

//! Forwarding events to the systemd journal over its native protocol
//! (`/run/systemd/journal/socket`), with structured fields.

use libsystemd::logging::{journal_send, Priority};
use msrguard_abi::msr_names::msr_name;
use msrguard_abi::record::{trim_nul, AccessStatus, Record};

use crate::format::utc;
use crate::Failure;

/// MESSAGE_ID of every msrguard event (a fixed 128-bit id, as journald wants).
pub(crate) const MESSAGE_ID: &str = "4d5352475541524431323535300a0001";

/// Sends one event as a journal entry.
pub(crate) fn send(r: &Record) -> Result<(), Failure> {
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
    let fields: Vec<(&str, String)> = vec![
        ("MESSAGE_ID", MESSAGE_ID.to_string()),
        ("MSRGUARD_EVENT_ID", "12550".to_string()),
        ("SEQUENCE", r.sequence.to_string()),
        ("EVENT_TIME", utc(r.timestamp_ns)),
        ("MSR", format!("{:#x}", r.msr)),
        ("MSR_NAME", name.to_string()),
        ("IS_WRITE", (r.is_write as u8).to_string()),
        ("MSR_VALUE", format!("{:#x}", r.msr_value)),
        ("ACCESS_STATUS", r.access_status.name().to_string()),
        ("REASON", r.reason.name().to_string()),
        ("PC", format!("{:#x}", r.pc)),
        ("IMAGE_BASE", format!("{:#x}", r.image_base)),
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
        ("REPEAT", r.repeat.to_string()),
    ];
    journal_send(priority, &message, fields.into_iter())
        .map_err(|e| Failure(format!("journal: {e} (is systemd-journald running?)")))
}
