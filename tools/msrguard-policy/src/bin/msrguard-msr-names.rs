// SPDX-License-Identifier: GPL-2.0

//! `msrguard-msr-names KDIR > rust/core/msr_names.rs`: the MSR name table
//! from the kernel tree's headers, read by the C preprocessor (`$CC`, or
//! `cc`). The host tests compare the committed table with this output.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, kdir] = args.as_slice() else {
        eprintln!("usage: msrguard-msr-names KDIR > rust/core/msr_names.rs");
        return ExitCode::from(2);
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let kdir_path = std::path::Path::new(kdir);
    let Some(version) = msrguard_policy::kernel_tree::kernel_version(kdir_path) else {
        eprintln!("{kdir}: no kernel version in its Makefile");
        return ExitCode::FAILURE;
    };
    match msrguard_policy::linux_names::read(kdir_path, &cc) {
        Ok(table) => {
            print!("{}", msrguard_policy::linux_names::render(&table, &version));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{kdir}: {e}");
            ExitCode::FAILURE
        }
    }
}
