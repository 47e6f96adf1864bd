// SPDX-License-Identifier: GPL-2.0

//! msrguard policy files: parsing, checking and code generation.
//!
//! The same code validates a file for `msrguard check` and generates the
//! table compiled into the kernel module, so a file the tool accepts is
//! exactly a file the build accepts. Every error is reported as
//! `file:line: message`.
//!
//! A policy file is TOML: a list of `[[msr]]` tables with the keys `index`,
//! optional `last` (for an inclusive range), `name`, `read`, `write`,
//! optional `write_mask` and `reason`. Numbers may be TOML integers or
//! strings such as `"0xffff_ffff_ffff_ffff"` (TOML integers stop at 2^63-1).
//!
//! - [`entry`]: a checked entry and a diagnostic;
//! - [`parse`](mod@parse): parsing and checking a file, with what KVM itself needs
//!   allowed (`kvm_internal`);
//! - [`generate`](mod@generate): the module's table and its bitmaps;
//! - [`against_kvm`]: a policy against the MSRs a kernel tree's KVM handles
//!   ([`kvm`], read by the compiler);
//! - [`linux_names`]: the MSR name table from Linux's headers;
//! - [`kernel_tree`]: the compiler's view of a kernel tree, shared by both
//!   readers;
//! - [`bypass`], [`danger`]: what KVM does to an MSR without the guard,
//!   and the MSRs that must never be allowed (the floor);
//! - [`profile`]: profiles over the policy (entries of their own, pins,
//!   set-only bits, the VMs they are for), with [`rewritten`] the MSRs an
//!   OS rewrites at run time, which no pin may touch.

pub mod against_kvm;
pub mod bypass;
pub mod danger;
pub mod entry;
pub mod generate;
pub mod kernel_tree;
pub mod kvm;
mod kvm_internal;
pub mod linux_names;
pub mod parse;
pub mod profile;
pub mod rewritten;

pub use against_kvm::check_against_kvm;
pub use entry::{Diagnostic, PolicyEntry};
pub use generate::{allow_bitmaps, allow_bitmaps_static, generate};
pub use parse::parse;
