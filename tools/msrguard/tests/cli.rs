// SPDX-License-Identifier: GPL-2.0
//! The msrguard tool against files of records built with the shared
//! definition: golden text and JSON output, and each error.

use std::io::Write;

use assert_cmd::Command;
use msrguard_core::record::*;

fn record(sequence: u64, msr: u32, is_write: bool, status: AccessStatus, reason: Reason) -> Record {
    let mut comm = [0u8; COMM_LEN];
    comm[..4].copy_from_slice(b"qemu");
    Record {
        sequence,
        timestamp_ns: 1_795_626_761_123_456_789,
        msr,
        is_write,
        msr_value: if is_write { 0x1000 } else { 0 },
        access_status: status,
        reason,
        pc: 0xffff_ffff_8106_2a3c,
        image_base: 0,
        image_checksum: 0,
        image_timestamp: 0,
        image_name: [0; IMAGE_NAME_LEN],
        vmm_pid: 4242,
        vmm_comm: comm,
        vcpu_id: 3,
        guest_cpl: 0,
        guest_mode: GuestMode::Long,
        flags: 0,
        repeat: 0,
        vm_id: 0x1234_5678,
        profile: 0,
    }
}

fn records_file(records: &[Record], extra: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for r in records {
        f.write_all(&r.to_bytes()).unwrap();
    }
    f.write_all(extra).unwrap();
    f.flush().unwrap();
    f
}

fn two_events() -> tempfile::NamedTempFile {
    records_file(
        &[
            record(1, 0x79, true, AccessStatus::BlockedGp, Reason::WriteDenied),
            record(
                2,
                0x4b564dff,
                false,
                AccessStatus::AuditAllowed,
                Reason::Unknown,
            ),
        ],
        &[],
    )
}

fn tool() -> Command {
    Command::cargo_bin("msrguard").unwrap()
}

/// Runs the tool with `args`; it must fail with exactly `stderr`.
fn fails_with(args: &[&str], stderr: String) {
    tool().args(args).assert().failure().stderr(stderr);
}

const GOLDEN_TEXT: &str = "\
Id             : 12550
Description    : msrguard blocked access to a restricted MSR
TimeCreated    : 2026-11-25T17:12:41.123456789Z
Sequence       : 1
Msr            : 0x79 (MSR_IA32_UCODE_WRITE)
IsWrite        : true
MsrValue       : 0x1000
AccessStatus   : blocked-gp
Reason         : write-denied
Pc             : 0xffffffff81062a3c
ImageBase      : 0x0
ImageChecksum  : 0x0
ImageTimestamp : 0x0
ImageName      : 
VmmPid         : 4242
VmmComm        : qemu
VcpuId         : 3
GuestCpl       : 0
GuestMode      : long
VmId           : 12345678
Profile        : default
Nested         : false
OutsideRun     : false
Repeat         : 0

Id             : 12550
Description    : msrguard audited access to a restricted MSR (allowed: audit mode)
TimeCreated    : 2026-11-25T17:12:41.123456789Z
Sequence       : 2
Msr            : 0x4b564dff (unknown)
IsWrite        : false
MsrValue       : 0x0
AccessStatus   : audit-allowed
Reason         : unknown-msr
Pc             : 0xffffffff81062a3c
ImageBase      : 0x0
ImageChecksum  : 0x0
ImageTimestamp : 0x0
ImageName      : 
VmmPid         : 4242
VmmComm        : qemu
VcpuId         : 3
GuestCpl       : 0
GuestMode      : long
VmId           : 12345678
Profile        : default
Nested         : false
OutsideRun     : false
Repeat         : 0

";

#[test]
fn events_text_is_the_12550_layout() {
    let f = two_events();
    tool()
        .args(["events", "--device"])
        .arg(f.path())
        .assert()
        .success()
        .stdout(GOLDEN_TEXT);
}

#[test]
fn events_json_one_object_per_line() {
    let f = two_events();
    let golden = concat!(
        r#"{"access_status":"blocked-gp","guest_cpl":0,"guest_mode":"long","id":12550,"image_base":"0x0","image_checksum":0,"image_name":"","image_timestamp":0,"is_write":true,"msr":121,"msr_name":"MSR_IA32_UCODE_WRITE","msr_value":"0x1000","nested":false,"outside_run":false,"pc":"0xffffffff81062a3c","profile":"default","reason":"write-denied","repeat":0,"schema_version":2,"sequence":1,"time":"2026-11-25T17:12:41.123456789Z","timestamp_ns":"1795626761123456789","vcpu_id":3,"vm_id":"12345678","vmm_comm":"qemu","vmm_pid":4242}"#,
        "\n",
        r#"{"access_status":"audit-allowed","guest_cpl":0,"guest_mode":"long","id":12550,"image_base":"0x0","image_checksum":0,"image_name":"","image_timestamp":0,"is_write":false,"msr":1263947263,"msr_name":"","msr_value":"0x0","nested":false,"outside_run":false,"pc":"0xffffffff81062a3c","profile":"default","reason":"unknown-msr","repeat":0,"schema_version":2,"sequence":2,"time":"2026-11-25T17:12:41.123456789Z","timestamp_ns":"1795626761123456789","vcpu_id":3,"vm_id":"12345678","vmm_comm":"qemu","vmm_pid":4242}"#,
        "\n"
    );
    tool()
        .args(["events", "--json", "--device"])
        .arg(f.path())
        .assert()
        .success()
        .stdout(golden);
}

/// What an operator types first: `msrguard events --json | jq`. jq 1.6 (and
/// JavaScript) hold numbers as doubles, so a 64-bit guest kernel address as
/// a JSON number comes back rounded; as a string it must come back exactly.
#[test]
fn json_64_bit_fields_survive_jq() {
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: jq not installed (scripts/setup.sh installs Debian's jq)");
        return;
    }
    let mut r = record(
        7,
        0xc000_0080,
        true,
        AccessStatus::BlockedGp,
        Reason::WriteMask,
    );
    r.pc = 18_446_744_072_512_353_219;
    r.msr_value = u64::MAX - 1;
    r.image_base = 0xffff_f806_1234_5000;
    let f = records_file(&[r], &[]);
    let json = tool()
        .args(["events", "--json", "--device"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(json.status.success());
    let jq = std::process::Command::new("jq")
        .args([
            "-r",
            "[.pc, .msr_value, .image_base, .timestamp_ns, .sequence, .schema_version] | @tsv",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    jq.stdin.as_ref().unwrap().write_all(&json.stdout).unwrap();
    let out = jq.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jq failed on {:?}",
        String::from_utf8_lossy(&json.stdout)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x").unwrap(), 16).unwrap();
    assert_eq!(fields[0], "0xffffffffb8a433c3");
    assert_eq!(hex(fields[0]), r.pc);
    assert_eq!(hex(fields[1]), r.msr_value);
    assert_eq!(hex(fields[2]), r.image_base);
    assert_eq!(fields[3].parse::<u64>().unwrap(), r.timestamp_ns);
    assert_eq!(fields[4], "7");
    assert_eq!(fields[5], "2");
}

#[test]
fn truncated_record_is_one_clear_error() {
    let f = records_file(
        &[record(
            1,
            0x79,
            true,
            AccessStatus::BlockedGp,
            Reason::WriteDenied,
        )],
        &record(2, 0x79, true, AccessStatus::BlockedGp, Reason::WriteDenied).to_bytes()[..100],
    );
    let path = f.path().display().to_string();
    fails_with(
        &["events", "--json", "--device", &path],
        format!("{path}: truncated record at offset 144: 100 of 144 bytes\n"),
    );
}

#[test]
fn abi_version_mismatch_is_one_clear_error() {
    let mut bytes = record(1, 0x79, true, AccessStatus::BlockedGp, Reason::WriteDenied).to_bytes();
    bytes[0] = 9;
    let f = records_file(&[], &bytes);
    let path = f.path().display().to_string();
    fails_with(&["events", "--device", &path], format!(
            "{path}: ABI version mismatch at offset 0: record version 9, this tool reads versions 1 to 3\n"
        ));
}

#[test]
fn missing_device_says_the_module_is_not_loaded() {
    fails_with(&["events", "--device", "/nonexistent/msrguard"], String::from("/nonexistent/msrguard does not exist: is the msrguard module loaded? (insmod msrguard.ko)\n"));
    fails_with(&["stats", "--device", "/nonexistent/msrguard"], String::from("/nonexistent/msrguard does not exist: is the msrguard module loaded? (insmod msrguard.ko)\n"));
}

#[test]
fn permission_denied_says_root_is_needed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("records");
    std::fs::write(
        &path,
        record(1, 0x79, true, AccessStatus::BlockedGp, Reason::WriteDenied).to_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("msrguard");
    // SAFETY: geteuid has no preconditions.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        // Root reads anything: drop to nobody to see the error users get.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(["events", "--device"])
        .arg(&path)
        .assert()
        .failure()
        .stderr(format!(
            "permission denied opening {}: reading msrguard needs root\n",
            path.display()
        ));
}

#[test]
fn follow_needs_the_device() {
    let f = two_events();
    let path = f.path().display().to_string();
    fails_with(
        &["events", "--follow", "--device", &path],
        format!("{path}: --follow needs the msrguard device, not a file\n"),
    );
}

#[test]
fn check_accepts_the_default_policy_and_reports_errors_by_line() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policy/default.toml");
    tool()
        .args(["check", root])
        .assert()
        .success()
        .stdout(predicates::str::ends_with("entries, ok\n"));
    let mut bad = tempfile::NamedTempFile::new().unwrap();
    bad.write_all(b"[[msr]]\nindex = 0x79\nname = \"MSR_IA32_UCODE_WRITE\"\nread = \"deny\"\nwrite = \"gp\"\nreason = \"r\"\n").unwrap();
    let path = bad.path().display().to_string();
    fails_with(
        &["check", &path],
        format!("{path}:4: unknown action \"deny\" (want \"allow\", \"gp\" or \"ignore\")\n"),
    );
}

const DEFAULT_POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policy/default.toml");

/// The checker's warnings for MSRs that paths outside msrguard's decision
/// points can set: on stderr, the check still passes; `--strict` fails
/// with the same findings as errors.
#[test]
fn check_warns_about_bypassed_denials_and_strict_fails() {
    let text = std::fs::read_to_string(DEFAULT_POLICY).unwrap();
    let entries = msrguard_policy::parse(DEFAULT_POLICY, &text).unwrap();
    let warnings = msrguard_policy::bypass::check(DEFAULT_POLICY, &entries);
    assert!(
        !warnings.is_empty(),
        "the default policy has documented warnings"
    );
    let stderr: String = warnings.iter().map(|w| format!("{w}\n")).collect();
    tool()
        .args(["check", DEFAULT_POLICY])
        .assert()
        .success()
        .stdout(predicates::str::ends_with("entries, ok\n"))
        .stderr(stderr);
    // The floor's vetoes (SMBASE: RSM sets it) are no error: no policy may
    // do otherwise.
    assert!(warnings.iter().any(|w| w.floor));
    let fixable: Vec<_> = warnings.iter().filter(|w| !w.floor).collect();
    let errors: String = fixable
        .iter()
        .map(|w| format!("error: {}\n", w.located()))
        .collect();
    fails_with(
        &["check", "--strict", DEFAULT_POLICY],
        format!(
            "{errors}{DEFAULT_POLICY}: {} denials that paths outside msrguard's decision points bypass (--strict)\n",
            fixable.len()
        ),
    );
}

/// The default policy with every entry a warning names set to allow, but
/// what the floor vetoes, passes `--strict`, with only the floor's warnings
/// on stderr.
#[test]
fn strict_passes_a_policy_that_denies_nothing_bypassable_but_the_floor() {
    let text = std::fs::read_to_string(DEFAULT_POLICY).unwrap();
    let entries = msrguard_policy::parse(DEFAULT_POLICY, &text).unwrap();
    let warned: Vec<usize> = msrguard_policy::bypass::check(DEFAULT_POLICY, &entries)
        .iter()
        .filter(|w| !w.floor)
        .filter_map(|w| w.line)
        .collect();
    let mut out = String::new();
    for e in &entries {
        let warned = warned.contains(&e.line);
        // The floor's writes stay vetoed: only their reads open.
        let floor = (e.first..=e.last)
            .any(|m| msrguard_policy::danger::dangerous(m).is_some_and(|d| d.in_floor()));
        let allow = warned && !floor;
        let (read, write) = match (warned, floor) {
            (false, _) => (e.read.name(), e.write.name()),
            (true, false) => ("allow", "allow"),
            (true, true) => ("allow", e.write.name()),
        };
        out.push_str(&format!(
            "[[msr]]\nindex = {:#x}\nlast = {:#x}\nname = \"{}\"\nread = \"{read}\"\nwrite = \"{write}\"\n",
            e.first, e.last, e.name
        ));
        if let (Some(m), false) = (e.write_mask, allow) {
            out.push_str(&format!("write_mask = \"{m:#x}\"\n"));
        }
        out.push_str(&format!("reason = \"{}\"\n", e.reason.replace('"', "\\\"")));
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(out.as_bytes()).unwrap();
    let path = f.path().display().to_string();
    let relaxed = msrguard_policy::parse(&path, &out).unwrap();
    let left = msrguard_policy::bypass::check(&path, &relaxed);
    assert!(!left.is_empty() && left.iter().all(|w| w.floor), "{left:?}");
    let stderr: String = left.iter().map(|w| format!("{w}\n")).collect();
    tool()
        .args(["check", "--strict", &path])
        .assert()
        .success()
        .stdout(format!("{path}: {} entries, ok\n", entries.len()))
        .stderr(stderr);
}

/// The help says what `--raw` writes: records of the current layout.
#[test]
fn raw_help_gives_the_record_size() {
    let out = tool().args(["events", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains(&format!("{RECORD_SIZE} bytes each")),
        "events --help does not give the record size {RECORD_SIZE}:\n{help}"
    );
}

/// A drop report of VM id 0 says whose events it counts: the VMs beyond
/// the buffer's per-VM accounting, not one VM over its share.
#[test]
fn drop_report_of_vm_zero_says_it_is_no_vm() {
    let mut r = record(3, 0, false, AccessStatus::Dropped, Reason::OverQuota);
    r.vm_id = 0;
    r.repeat = 5;
    let f = records_file(&[r], &[]);
    let out = tool()
        .args(["events", "--device"])
        .arg(f.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("VMs without a share of the buffer"), "{text}");
}
