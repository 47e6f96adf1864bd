// SPDX-License-Identifier: GPL-2.0

//! msrguard's core: what decides and what holds the events, with no kernel
//! API, so that it is tested on the host. The kernel module compiles these
//! very files (`rust/module/msrguard_main.rs` names each with `#[path]`), so
//! module, tool and tests share one definition of the record layout and the
//! policy semantics.
//!
//! - [`boundary`]: the structs the module's C and Rust sides pass each other,
//!   and [`boundary_calls`] the functions they call each other by;
//! - [`record`]: the event record read from `/dev/msrguard` (the ABI);
//! - [`policy`]: the policy table's types and lookup;
//! - [`guard`]: what happens to each access;
//! - [`mode`]: the `mode` and `lock` parameters' rules;
//! - [`queue`]: the event buffer's rules (coalescing, per-VM fairness, drops);
//! - [`pipeline`]: what happens to a new event: recorded now, or after
//!   its image is looked up, with [`work_pool`] (records waiting on their
//!   vCPU thread, in order) and [`image_cache`] (images found per VM);
//! - [`profiles`]: the profiles a VM may have (policy table, pins);
//! - [`pins`]: pinned values and set-only bits, per vCPU;
//! - [`vms`]: the VMs known, each with an id never reused;
//! - [`slots`]: open addressing over a fixed slice, for both tables;
//! - [`pe`]: finding the PE image that holds an address;
//! - [`msr_names`]: MSR names from the kernel's `msr-index.h`.

#![no_std]

pub mod boundary;
pub mod boundary_calls;
pub mod guard;
pub mod image_cache;
pub mod mode;
pub mod msr_names;
pub mod pe;
pub mod pins;
pub mod pipeline;
pub mod policy;
pub mod profiles;
pub mod queue;
pub mod record;
pub mod slots;
pub mod vms;
pub mod work_pool;
