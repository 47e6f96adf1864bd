// SPDX-License-Identifier: GPL-2.0

//! Prints `msrguard_abi.h`: the record layout, enumerations and ioctl
//! numbers of `rust/record.rs` as C macros, for the C selftests. Generated
//! at build time, so C never holds a second definition.

use msrguard_abi::guard::{Hook, KvmReturn, RecordWhen};
use msrguard_abi::pe;
use msrguard_abi::policy::Action;
use msrguard_abi::record::*;

fn main() {
    let mut out = String::new();
    let mut def =
        |name: &str, value: String| out.push_str(&format!("#define MSRGUARD_{name} {value}\n"));

    def("ABI_VERSION", ABI_VERSION.to_string());
    def("RECORD_SIZE", RECORD_SIZE.to_string());
    def("COMM_LEN", COMM_LEN.to_string());
    def("IMAGE_NAME_LEN", IMAGE_NAME_LEN.to_string());
    def("RECORD_SIZE_V1", RECORD_SIZE_V1.to_string());
    def("FLAG_NESTED", FLAG_NESTED.to_string());
    def("FLAG_STATE_PROTECTED", FLAG_STATE_PROTECTED.to_string());
    def("FLAG_OUTSIDE_RUN", FLAG_OUTSIDE_RUN.to_string());
    // Image attribution's bounds (rust/pe.rs), which the VM suite checks.
    def("PE_READS_PER_PAGE", pe::READS_PER_PAGE.to_string());
    def("PE_READS_PER_IMAGE", pe::READS_PER_IMAGE.to_string());
    def("PE_MAX_READ", pe::MAX_NAME_READ.to_string());
    for (name, off) in [
        ("ABI_VERSION", offset::ABI_VERSION),
        ("RECORD_SIZE", offset::RECORD_SIZE),
        ("MSR", offset::MSR),
        ("SEQUENCE", offset::SEQUENCE),
        ("TIMESTAMP_NS", offset::TIMESTAMP_NS),
        ("MSR_VALUE", offset::MSR_VALUE),
        ("PC", offset::PC),
        ("IMAGE_BASE", offset::IMAGE_BASE),
        ("IMAGE_CHECKSUM", offset::IMAGE_CHECKSUM),
        ("IMAGE_TIMESTAMP", offset::IMAGE_TIMESTAMP),
        ("VMM_PID", offset::VMM_PID),
        ("VCPU_ID", offset::VCPU_ID),
        ("IS_WRITE", offset::IS_WRITE),
        ("ACCESS_STATUS", offset::ACCESS_STATUS),
        ("GUEST_CPL", offset::GUEST_CPL),
        ("GUEST_MODE", offset::GUEST_MODE),
        ("REASON", offset::REASON),
        ("FLAGS", offset::FLAGS),
        ("REPEAT", offset::REPEAT),
        ("VM_ID", offset::VM_ID),
        ("VMM_COMM", offset::VMM_COMM),
        ("IMAGE_NAME", offset::IMAGE_NAME),
    ] {
        def(&format!("OFF_{name}"), off.to_string());
    }
    for s in AccessStatus::ALL {
        def(
            &format!("STATUS_{}", s.name().replace('-', "_").to_uppercase()),
            (s as u8).to_string(),
        );
    }
    for r in Reason::ALL {
        def(
            &format!("REASON_{}", r.name().replace('-', "_").to_uppercase()),
            (r as u8).to_string(),
        );
    }
    for m in GuestMode::ALL {
        def(
            &format!("MODE_{}", m.name().to_uppercase()),
            (m as u8).to_string(),
        );
    }
    for a in [Action::Allow, Action::Gp, Action::Ignore] {
        def(
            &format!("ACTION_{}", a.name().to_uppercase()),
            (a as u8).to_string(),
        );
    }
    // The guard's answers to the C hooks (rust/guard.rs).
    for (name, h) in [
        ("DECISION", Hook::Decision),
        ("READ_COMPLETION", Hook::ReadCompletion),
    ] {
        def(&format!("HOOK_{name}"), (h as u8).to_string());
    }
    for (name, k) in [
        ("PROCEED", KvmReturn::Proceed),
        ("SUCCEED_IF_KVM_DOES", KvmReturn::SucceedIfKvmDoes),
        ("FAIL", KvmReturn::Fail),
        ("FAIL_FILTERED", KvmReturn::FailFiltered),
        ("FAIL_UNSUPPORTED", KvmReturn::FailUnsupported),
    ] {
        def(&format!("KVM_{name}"), (k as u8).to_string());
    }
    for (name, r) in [
        ("NEVER", RecordWhen::Never),
        ("NOW", RecordWhen::Now),
        ("AT_COMPLETION", RecordWhen::AtCompletion),
        ("IF_KVM_SUCCEEDS", RecordWhen::IfKvmSucceeds),
    ] {
        def(&format!("RECORD_{name}"), (r as u8).to_string());
    }
    // The names, for the trace event's __print_symbolic().
    let symbols = |pairs: Vec<(u8, &str)>| {
        pairs
            .iter()
            .map(|(v, n)| format!("{{ {v}, \"{n}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    def(
        "STATUS_SYMBOLS",
        symbols(
            AccessStatus::ALL
                .iter()
                .map(|&s| (s as u8, s.name()))
                .collect(),
        ),
    );
    def(
        "REASON_SYMBOLS",
        symbols(Reason::ALL.iter().map(|&r| (r as u8, r.name())).collect()),
    );
    def(
        "MODE_SYMBOLS",
        symbols(
            GuestMode::ALL
                .iter()
                .map(|&m| (m as u8, m.name()))
                .collect(),
        ),
    );
    def("IOC_STATS", format!("{:#x}u", IOC_STATS));
    def("STATS_SIZE", STATS_SIZE.to_string());
    for (name, off) in [
        ("ABI_VERSION", stats_offset::ABI_VERSION),
        ("RECORD_SIZE", stats_offset::RECORD_SIZE),
        ("CAPACITY", stats_offset::CAPACITY),
        ("QUEUED", stats_offset::QUEUED),
        ("AUDIT", stats_offset::AUDIT),
        ("LOCKED", stats_offset::LOCKED),
        ("VM_QUOTA", stats_offset::VM_QUOTA),
        ("VM_RESERVE", stats_offset::VM_RESERVE),
        ("GENERATED", stats_offset::GENERATED),
        ("DELIVERED", stats_offset::DELIVERED),
        ("DROPPED", stats_offset::DROPPED),
        ("BLOCKED_GP", stats_offset::BLOCKED_GP),
        ("BLOCKED_IGNORED", stats_offset::BLOCKED_IGNORED),
        ("AUDIT_ALLOWED", stats_offset::AUDIT_ALLOWED),
        ("COALESCED", stats_offset::COALESCED),
    ] {
        def(&format!("STATS_OFF_{name}"), off.to_string());
    }
    def("IOC_POLICY_ENTRY", format!("{:#x}u", IOC_POLICY_ENTRY));
    def("POLICY_ENTRY_SIZE", POLICY_ENTRY_SIZE.to_string());

    // The record as a uapi-style struct, each offset asserted.
    let mut record = String::from("struct msrguard_record {\n");
    let mut asserts = String::new();
    for (ctype, name, len, off) in RECORD_C_FIELDS {
        if len == 0 {
            record.push_str(&format!("\t{ctype} {name};\n"));
        } else {
            record.push_str(&format!("\t{ctype} {name}[{len}];\n"));
        }
        asserts.push_str(&format!(
            "_Static_assert(__builtin_offsetof(struct msrguard_record, {name}) == {off}, \"{name}\");\n"
        ));
    }
    record.push_str("};\n");
    asserts.push_str(&format!(
        "_Static_assert(sizeof(struct msrguard_record) == {RECORD_SIZE}, \"record size\");\n"
    ));
    out.push_str(&format!(
        "\n#ifndef __KERNEL__\n#include <linux/types.h>\n#endif\n\n{record}{asserts}"
    ));

    print!(
        "/* SPDX-License-Identifier: GPL-2.0 */\n\
         /* @generated by msrguard-c-header from rust/record.rs, rust/guard.rs and rust/pe.rs. Do not edit. */\n\
         #ifndef MSRGUARD_ABI_H\n#define MSRGUARD_ABI_H\n\n{out}\n#endif\n"
    );
}
