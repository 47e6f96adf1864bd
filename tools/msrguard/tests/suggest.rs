// SPDX-License-Identifier: GPL-2.0
//! `msrguard policy suggest` against files of audit-mode records built with
//! the shared record encoder: the proposal passes `msrguard check`, allows
//! exactly what the guests did, and never allows a dangerous MSR.

use std::io::Write;

use assert_cmd::Command;
use msrguard_core::policy::{decide, Action, Entry};
use msrguard_core::record::*;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policy/default.toml");
/// A guest kernel address above 2^53.
const PC: u64 = 18_446_744_072_512_353_219;
const LS_CFG: u32 = 0xc001_1020;
const THREAD_COUNT: u32 = 0x35;
const MISC_ENABLE: u32 = 0x1a0;
const UCODE_WRITE: u32 = 0x79;
const TSC: u32 = 0x10;

fn audit(sequence: u64, msr: u32, is_write: bool, value: u64, pid: u32) -> Record {
    let mut comm = [0u8; COMM_LEN];
    comm[..4].copy_from_slice(b"qemu");
    Record {
        sequence,
        timestamp_ns: 1_795_626_761_000_000_000 + sequence * 1_000_000,
        msr,
        is_write,
        msr_value: value,
        access_status: AccessStatus::AuditAllowed,
        reason: Reason::Unknown,
        pc: PC + sequence,
        image_base: 0,
        image_checksum: 0,
        image_timestamp: 0,
        image_name: [0; IMAGE_NAME_LEN],
        vmm_pid: pid,
        vmm_comm: comm,
        vcpu_id: (sequence % 2) as u32,
        guest_cpl: 0,
        guest_mode: GuestMode::Long,
        flags: 0,
        repeat: 0,
        vm_id: 1,
        profile: 0,
    }
}

/// The accesses of an audit run: what the proposal must allow, what it must
/// not, and one access the policy already allows.
fn audit_run() -> Vec<Record> {
    vec![
        audit(1, LS_CFG, false, 0x1234, 100),
        audit(2, LS_CFG, false, 0x1234, 200),
        audit(3, THREAD_COUNT, false, 0, 100),
        audit(4, MISC_ENABLE, true, 1 << 38, 100),
        audit(5, MISC_ENABLE, true, (1 << 38) | (1 << 9), 100),
        audit(6, UCODE_WRITE, true, 0x1000, 100),
        audit(7, TSC, false, 42, 100),
    ]
}

fn file_of(records: &[Record]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for r in records {
        f.write_all(&r.to_bytes()).unwrap();
    }
    f.flush().unwrap();
    f
}

fn tool() -> Command {
    Command::cargo_bin("msrguard").unwrap()
}

fn suggest(records: &tempfile::NamedTempFile, merge: bool) -> String {
    let mut cmd = tool();
    cmd.args(["policy", "suggest", "--policy", POLICY, "--from"])
        .arg(records.path());
    if merge {
        cmd.arg("--merge");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    tool()
        .arg("check")
        .arg(f.path())
        .assert()
        .success()
        .stdout(predicates::str::ends_with("entries, ok\n"));
    f
}

fn table(text: &str) -> Vec<Entry> {
    msrguard_policy::parse("p", text)
        .unwrap()
        .iter()
        .map(|e| e.to_abi())
        .collect()
}

#[test]
fn appended_proposal_passes_the_checker_with_evidence() {
    let records = file_of(&audit_run());
    let diff = suggest(&records, false);
    let policy = std::fs::read_to_string(POLICY).unwrap();
    check(&format!("{policy}\n{diff}"));

    // New entries for the MSRs without one: allow (a value was read),
    // ignore (every read returned 0).
    assert!(
        diff.contains("index = 0xc0011020\nname = \"MSR_AMD64_LS_CFG\"\nread = \"allow\"\n"),
        "{diff}"
    );
    assert!(diff.contains("index = 0x35\n"), "{diff}");
    let t = table(&format!("{policy}\n{diff}"));
    assert_eq!(decide(&t, THREAD_COUNT, false, 0).action, Action::Ignore);
    // The changed entry is only a comment in the appendable form.
    let header = policy
        .lines()
        .position(|l| l == "index = 0x1a0")
        .expect("MISC_ENABLE entry");
    assert!(
        diff.contains(&format!(
            "# replaces the entry at {POLICY}:{header}:\n# [[msr]]\n# index = 0x1a0\n"
        )),
        "{diff}"
    );
    // Evidence.
    assert!(diff.contains("# seen: 2 vetoed reads, 0 vetoed writes, 2026-11-25T17:12:41.001000000Z .. 2026-11-25T17:12:41.002000000Z\n# vmm pid/comm: 100/qemu, 200/qemu; vcpus: 0, 1\n# pc examples: 0xffffffffb8a433c4, 0xffffffffb8a433c5\n"), "{diff}");
    assert!(
        diff.contains(
            "# values written (examples): 0x4000000000, 0x4000000200; bits written: 0x4000000200\n"
        ),
        "{diff}"
    );
    assert!(diff.contains("7 events, 1 already allowed"), "{diff}");
}

#[test]
fn microcode_write_is_never_allowed() {
    let records = file_of(&audit_run());
    let diff = suggest(&records, false);
    assert!(
        diff.contains("# ---- 0x79 (MSR_IA32_UCODE_WRITE) ----\n"),
        "{diff}"
    );
    assert!(
        diff.contains("# do not allow its writes: microcode loading"),
        "{diff}"
    );
    assert!(!diff.contains("index = 0x79"), "{diff}");
    let merged = suggest(&records, true);
    assert_ne!(
        decide(&table(&merged), UCODE_WRITE, true, 0x1000).action,
        Action::Allow
    );
}

#[test]
fn merged_policy_allows_exactly_what_the_guests_did() {
    let records = audit_run();
    let merged = suggest(&file_of(&records), true);
    check(&merged);
    let t = table(&merged);
    for r in records.iter().filter(|r| r.msr != UCODE_WRITE) {
        let v = decide(&t, r.msr, r.is_write, r.msr_value);
        let want = if r.msr == THREAD_COUNT {
            Action::Ignore
        } else {
            Action::Allow
        };
        assert_eq!(v.action, want, "{:#x} {}", r.msr, r.msr_value);
    }
    // The mask grew by exactly the bits written: another bit stays vetoed.
    assert_eq!(decide(&t, MISC_ENABLE, true, 1 << 38).action, Action::Allow);
    assert_eq!(decide(&t, MISC_ENABLE, true, 1 << 39).action, Action::Gp);
    // A second run on the learned policy has nothing to propose.
    let again = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(again.path(), &merged).unwrap();
    tool()
        .args(["policy", "suggest", "--policy"])
        .arg(again.path())
        .arg("--from")
        .arg(file_of(&records).path())
        .assert()
        .success()
        .stderr("7 events: 0 new entries, 0 changed entries, 0 refused by the checker\n");
}

#[test]
fn events_raw_saves_the_records_unchanged() {
    let records = audit_run();
    let f = file_of(&records);
    let out = tool()
        .args(["events", "--raw", "--device"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(f.path()).unwrap());
}
