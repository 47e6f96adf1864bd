// SPDX-License-Identifier: GPL-2.0

//! `msrguard`: the operator's tool for msrguard.
//!
//! - `msrguard events [--follow] [--json|--raw] [--journal]`: the events of
//!   `/dev/msrguard` (or of a file of records, `--device FILE`); `--raw`
//!   saves them as records for `policy suggest`;
//! - `msrguard stats [--json]`: the module's counters and ABI version;
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
            let stdout = std::io::stdout();
            loop {
                let Some(record) = source.next_record()? else {
                    return Ok(());
                };
                if journal {
                    journal::send(&record)?;
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
                        format::json(&record)
                    } else {
                        format::text(&record)
                    };
                    // A closed pipe (e.g. `| head`) ends the output quietly.
                    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Command::Stats { json } => {
            let stats = device::Device::open(&cli.device)?.stats()?;
            println!(
                "{}",
                if json {
                    format::stats_json(&stats)
                } else {
                    format::stats_text(&stats)
                }
            );
            Ok(())
        }
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
    use msrguard_policy::profile::{check_profile_set, parse_profile, Profile};

    let joined = |diags: Vec<msrguard_policy::Diagnostic>| {
        Failure(
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    };
    let mut profiles = vec![Profile::default_of(base)];
    let mut names = vec![String::new()];
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Failure(format!("{f}: {e}")))?;
        let p = parse_profile(f, &text, base).map_err(joined)?;
        let replaced = p.entries.iter().zip(base).filter(|(a, b)| a != b).count();
        println!(
            "{f}: profile {}: {} pinned or set-only MSRs, {replaced} entries replaced, ok",
            p.name,
            p.pins.len()
        );
        profiles.push(p);
        names.push(f.clone());
    }
    let errors = check_profile_set(&profiles, &names);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(joined(errors))
    }
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
