// SPDX-License-Identifier: GPL-2.0

//! `msrguard`: the operator's tool for msrguard.
//!
//! - `msrguard events [--follow] [--json|--raw] [--journal]`: the events of
//!   `/dev/msrguard` (or of a file of records, `--device FILE`); `--raw`
//!   saves them as records for `policy suggest`;
//! - `msrguard stats [--json]`: the module's counters and ABI version, and
//!   the live VMs per profile;
//! - `msrguard vms [--json]`: the live VMs with their profiles;
//! - `msrguard profile list` and `msrguard profile set (--vm ID | --pid
//!   PID) NAME`: the compiled-in profiles, and giving a running VM another;
//! - `msrguard policy`: the policy the loaded module enforces;
//! - `msrguard policy suggest --policy FILE [--from RECORDS] [--merge]`: a
//!   policy proposal from audit-mode events;
//! - `msrguard check [--strict] [--against-kvm KDIR] [--profile P]... FILE`: validates a policy
//!   file with the build's checker, warns where it denies an MSR that a path
//!   outside msrguard's decision points can set (errors with `--strict`, but
//!   the floor's), checks profiles over it (`--profile`), and compares it
//!   with the MSRs KVM handles;
//! - `msrguard kvm-msrs KDIR`: the MSRs KVM handles, from a kernel tree.
//!
//! Errors are one line on stderr and a non-zero exit status.

mod device;
mod format;
mod journal;
mod suggest;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use device::Source;

/// Reads msrguard's events, counters and policy.
#[derive(Parser)]
#[command(name = "msrguard", version, about)]
struct Cli {
    /// The msrguard device, or a file of records (for `events`).
    #[arg(long, global = true, default_value = "/dev/msrguard")]
    device: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the events pending on the device (or in the file) and exit.
    Events {
        /// Keep waiting for new events (poll, no busy loop) until interrupted.
        #[arg(long)]
        follow: bool,
        /// One JSON object per event per line.
        #[arg(long, conflicts_with_all = ["journal", "raw"])]
        json: bool,
        /// The records themselves (binary, 144 bytes each), to save to a
        /// file for `msrguard policy suggest --from FILE`.
        #[arg(long, conflicts_with = "journal")]
        raw: bool,
        /// Forward each event to the systemd journal instead of printing it.
        #[arg(long)]
        journal: bool,
    },
    /// Print the module's counters and ABI version.
    Stats {
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the live VMs: id, profile, the VMM that created them.
    Vms {
        /// One JSON object per VM per line.
        #[arg(long)]
        json: bool,
    },
    /// The profiles compiled into the module, and a running VM's.
    Profile {
        #[command(subcommand)]
        action: ProfileCommand,
    },
    /// Print the policy the loaded module enforces.
    #[command(args_conflicts_with_subcommands = true)]
    Policy {
        #[command(subcommand)]
        action: Option<PolicyCommand>,
    },
    /// Check a policy file: `file:line: message` for each problem. With
    /// `--against-kvm KDIR`, also every MSR KVM handles (extracted from the
    /// kernel tree KDIR) that the policy leaves to the default action, and
    /// every entry for MSRs KVM does not handle. Warns (on stderr) for each
    /// entry that denies what a path outside msrguard's decision points can
    /// do to an MSR (Documentation/msrguard/design.rst, "Accesses outside the
    /// guard").
    Check {
        /// Make those warnings errors (non-zero exit), but those the floor
        /// requires (no policy may allow those writes).
        #[arg(long)]
        strict: bool,
        /// A kernel source tree to compare the policy with.
        #[arg(long, value_name = "KDIR")]
        against_kvm: Option<String>,
        /// A profile file over the policy (policy/profiles/NAME.toml), checked
        /// with the others given: its entries, pins and set-only bits.
        #[arg(long = "profile", value_name = "PROFILE")]
        profiles: Vec<String>,
        /// The policy file.
        file: String,
    },
    /// List the MSRs KVM handles, extracted from the kernel tree KDIR.
    KvmMsrs {
        /// The kernel source tree.
        kdir: String,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// List the profiles compiled into the module.
    List,
    /// Give a running VM the profile NAME; each vCPU's pinned MSRs are
    /// pinned to the values it holds (LSTAR, STAR, CSTAR, SYSCALL_MASK;
    /// the others from its next write). Refused once the module is locked
    /// (lock=1).
    Set {
        /// The VM, by its id as events and `msrguard vms` show it (hex).
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "pid",
            required_unless_present = "pid"
        )]
        vm: Option<String>,
        /// Every VM this VMM process created.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// The profile's name.
        name: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Propose policy entries for the accesses of an audit run that POLICY
    /// would veto, as TOML with the evidence in comments. Dangerous MSRs
    /// (microcode, SMM, power, tracing) are never proposed for writes.
    Suggest {
        /// A file of records (`msrguard events --raw > FILE`); without it,
        /// the events pending on the device are read (and consumed).
        #[arg(long, value_name = "FILE")]
        from: Option<String>,
        /// The policy file the audited module was built with.
        #[arg(long, value_name = "POLICY")]
        policy: String,
        /// Print the whole policy with the proposal applied instead.
        #[arg(long)]
        merge: bool,
    },
}

/// What went wrong, as the one line the user sees.
pub(crate) struct Failure(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Events {
            follow,
            json,
            raw,
            journal,
        } => {
            let mut source = Source::open(&cli.device, follow)?;
            let names = source.profile_names();
            let stdout = std::io::stdout();
            loop {
                let Some(record) = source.next_record()? else {
                    return Ok(());
                };
                if journal {
                    journal::send(&record, &names)?;
                } else if raw {
                    let mut out = stdout.lock();
                    if out
                        .write_all(&record.to_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return Ok(());
                    }
                } else {
                    let mut out = stdout.lock();
                    let text = if json {
                        format::json(&record, &names)
                    } else {
                        format::text(&record, &names)
                    };
                    // A closed pipe (e.g. `| head`) ends the output quietly.
                    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Command::Stats { json } => {
            let dev = device::Device::open(&cli.device)?;
            let stats = dev.stats()?;
            let by_profile = format::vms_by_profile(&dev.vms()?, &dev.profile_names()?);
            println!(
                "{}",
                if json {
                    format::stats_json(&stats, &by_profile)
                } else {
                    format::stats_text(&stats, &by_profile)
                }
            );
            Ok(())
        }
        Command::Vms { json } => {
            let dev = device::Device::open(&cli.device)?;
            let (vms, names) = (dev.vms()?, dev.profile_names()?);
            if json {
                if !vms.is_empty() {
                    println!("{}", format::vms_json(&vms, &names));
                }
            } else {
                print!("{}", format::vms_text(&vms, &names));
            }
            Ok(())
        }
        Command::Profile {
            action: ProfileCommand::List,
        } => {
            for p in device::Device::open(&cli.device)?.profiles()? {
                println!(
                    "{:<15}  {} pinned or set-only MSRs",
                    String::from_utf8_lossy(msrguard_core::record::trim_nul(&p.name)),
                    p.pins
                );
            }
            Ok(())
        }
        Command::Profile {
            action: ProfileCommand::Set { vm, pid, name },
        } => set_profile(&cli.device, vm.as_deref(), pid, &name),
        Command::Policy {
            action:
                Some(PolicyCommand::Suggest {
                    from,
                    policy,
                    merge,
                }),
        } => {
            let text =
                std::fs::read_to_string(&policy).map_err(|e| Failure(format!("{policy}: {e}")))?;
            let mut source = Source::open(from.as_deref().unwrap_or(&cli.device), false)?;
            let mut records = Vec::new();
            while let Some(r) = source.next_record()? {
                records.push(r);
            }
            let s = suggest::suggest(&policy, &text, &records).map_err(Failure)?;
            print!("{}", if merge { &s.merged } else { &s.diff });
            eprintln!(
                "{} events: {} new entries, {} changed entries, {} refused by the checker",
                records.len(),
                s.new_entries,
                s.replacements,
                s.refused
            );
            Ok(())
        }
        Command::Policy { action: None } => {
            let entries = device::Device::open(&cli.device)?.policy()?;
            print!("{}", format::policy_table(&entries));
            Ok(())
        }
        Command::Check {
            file,
            against_kvm,
            strict,
            profiles,
        } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| Failure(format!("{file}: {e}")))?;
            let entries = msrguard_policy::parse(&file, &text).map_err(|diags| {
                let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                Failure(lines.join("\n"))
            })?;
            check_profiles(&entries, &profiles)?;
            let bypasses = msrguard_policy::bypass::check(&file, &entries);
            // What the floor requires is no error: no policy may do otherwise.
            let errors: Vec<_> = bypasses.iter().filter(|w| !w.floor).collect();
            if strict && !errors.is_empty() {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|w| format!("error: {}", w.located()))
                    .collect();
                return Err(Failure(format!(
                    "{}\n{file}: {} denials that paths outside msrguard's decision points bypass (--strict)",
                    lines.join("\n"),
                    errors.len()
                )));
            }
            for w in &bypasses {
                eprintln!("{w}");
            }
            let Some(kdir) = against_kvm else {
                println!("{file}: {} entries, ok", entries.len());
                return Ok(());
            };
            let kvm = msrguard_policy::kvm::extract(std::path::Path::new(&kdir))
                .map_err(|e| Failure(format!("{kdir}: cannot extract KVM's MSRs: {e}")))?;
            let findings = msrguard_policy::check_against_kvm(&kvm, &entries);
            if findings.is_empty() {
                let n: u64 = kvm
                    .intervals()
                    .iter()
                    .map(|&(a, z)| u64::from(z - a) + 1)
                    .sum();
                println!(
                    "{file}: {} entries, ok; every one of the {n} MSRs KVM handles in {kdir} has an entry, no dead entries",
                    entries.len()
                );
                return Ok(());
            }
            let lines: Vec<String> = findings.iter().map(|f| format!("{file}: {f}")).collect();
            Err(Failure(format!(
                "{}\n{file}: {} findings against KVM in {kdir}",
                lines.join("\n"),
                findings.len()
            )))
        }
        Command::KvmMsrs { kdir } => {
            let kvm = msrguard_policy::kvm::extract(std::path::Path::new(&kdir))
                .map_err(|e| Failure(format!("{kdir}: cannot extract KVM's MSRs: {e}")))?;
            print!("{kvm}");
            Ok(())
        }
    }
}

/// Checks each profile file over the checked policy `base`, and the set
/// of them, printing a line for each.
fn check_profiles(base: &[msrguard_policy::PolicyEntry], files: &[String]) -> Result<(), Failure> {
    let profiles = msrguard_policy::profile::load_profiles(base, files)
        .map_err(|errors| Failure(errors.join("\n")))?;
    for (f, p) in files.iter().zip(profiles.iter().skip(1)) {
        println!(
            "{f}: profile {}: {} pinned or set-only MSRs, {} of its own, ok",
            p.name,
            p.pins.len(),
            match p.own_entries {
                1 => "1 entry".to_string(),
                n => format!("{n} entries"),
            }
        );
    }
    Ok(())
}

/// `msrguard profile set`: the VM `vm` (hex id) or every VM of the VMM
/// `pid` gets the profile `name`.
fn set_profile(path: &str, vm: Option<&str>, pid: Option<u32>, name: &str) -> Result<(), Failure> {
    let dev = device::Device::open(path)?;
    let names = dev.profile_names()?;
    let Some(index) = names.iter().position(|n| n == name) else {
        return Err(Failure(format!(
            "no profile \"{name}\" in the module (it has: {})",
            names.join(", ")
        )));
    };
    let ids: Vec<u32> = match (vm, pid) {
        (Some(id), _) => {
            let id = u32::from_str_radix(id.trim_start_matches("0x"), 16).map_err(|_| {
                Failure(format!(
                    "bad VM id \"{id}\" (want the hex id `msrguard vms` shows)"
                ))
            })?;
            vec![id]
        }
        (None, Some(pid)) => {
            let ids: Vec<u32> = dev
                .vms()?
                .iter()
                .filter(|v| v.vmm_pid == pid)
                .map(|v| v.vm_id)
                .collect();
            if ids.is_empty() {
                return Err(Failure(format!("process {pid} created no live VM")));
            }
            ids
        }
        (None, None) => return Err(Failure("give --vm ID or --pid PID".to_string())),
    };
    for id in ids {
        dev.set_profile(id, index as u8)?;
        println!("VM {id:08x}: profile {name}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
