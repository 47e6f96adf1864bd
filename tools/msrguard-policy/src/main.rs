// SPDX-License-Identifier: GPL-2.0

//! `msrguard-policy-gen POLICY.toml OUT.rs [PROFILE.toml...]`: checks a
//! policy file and its profiles and writes the tables the kernel module
//! compiles. Errors are `file:line: message`, one per line, and nothing is
//! written.

use std::process::ExitCode;

use msrguard_policy::profile::load_profiles;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output, profile_files @ ..] = args.as_slice() else {
        eprintln!("usage: msrguard-policy-gen POLICY.toml OUT.rs [PROFILE.toml...]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let entries = match msrguard_policy::parse(input, &text) {
        Ok(entries) => entries,
        Err(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            return ExitCode::FAILURE;
        }
    };
    let profiles = match load_profiles(&entries, profile_files) {
        Ok(p) => p,
        Err(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            return ExitCode::FAILURE;
        }
    };
    let source = std::path::Path::new(input)
        .file_name()
        .map(|n| format!("policy/{}", n.to_string_lossy()))
        .unwrap_or_else(|| input.clone());
    let generated = msrguard_policy::generate(&source, &profiles);
    // Rewrite only on change, so an unchanged policy does not rebuild the module.
    if std::fs::read_to_string(output).ok().as_deref() == Some(generated.as_str()) {
        return ExitCode::SUCCESS;
    }
    let tmp = format!("{output}.tmp");
    if let Err(e) = std::fs::write(&tmp, generated).and_then(|()| std::fs::rename(&tmp, output)) {
        eprintln!("{output}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
