// SPDX-License-Identifier: GPL-2.0

//! msrguard's shared definitions, compiled from the very files the kernel
//! module compiles (`rust/record.rs`, `rust/policy.rs`, `rust/guard.rs`, `rust/queue.rs`,
//! `rust/msr_names.rs`, `rust/pe.rs`), so that module, tool
//! and tests share one definition of the record layout and the policy.

#![no_std]

#[path = "../../../rust/record.rs"]
pub mod record;

#[path = "../../../rust/policy.rs"]
pub mod policy;

#[path = "../../../rust/guard.rs"]
pub mod guard;

#[path = "../../../rust/queue.rs"]
pub mod queue;

#[path = "../../../rust/msr_names.rs"]
pub mod msr_names;

#[path = "../../../rust/pe.rs"]
pub mod pe;
