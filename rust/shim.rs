// SPDX-License-Identifier: GPL-2.0

//! The C shim (`msrguard_shim.c`): KVM hooks, runtime parameters and the
//! trace event, and the entry points it calls back into Rust.
//!
//! The `#[repr(C)]` types mirror `msrguard_shim.h`.

use core::ffi::c_void;

use kernel::{
    error::to_result,
    prelude::*, //
};

use crate::{
    events::EventQueue,
    msr_names,
    policy,
    policy_table::TABLE,
    record::{
        fill_nul_padded,
        GuestMode,
        Reason,
        Record,
        COMM_LEN,
        IMAGE_NAME_LEN, //
    }, //
};

/// An access the shim asks about (`struct msrguard_access`).
#[repr(C)]
pub(crate) struct Access {
    value: u64,
    pc: u64,
    timestamp_ns: u64,
    msr: u32,
    vcpu_id: u32,
    vmm_pid: u32,
    is_write: u8,
    guest_cpl: u8,
    guest_mode: u8,
    audit: u8,
    vmm_comm: [u8; COMM_LEN],
}

/// The policy's verdict as the shim sees it (`struct msrguard_verdict`):
/// `reason` 0 means no objection.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Verdict {
    action: u8,
    reason: u8,
}

/// A recorded event and the names the shim reports (`struct msrguard_outcome`).
#[repr(C)]
pub(crate) struct Outcome {
    sequence: u64,
    status: u8,
    pad: [u8; 7],
    status_name: [u8; 16],
    reason_name: [u8; 16],
    msr_name: [u8; 40],
}

extern "C" {
    fn msrguard_shim_init(guard: *const c_void) -> c_int;
    fn msrguard_shim_exit();
    fn msrguard_shim_audit() -> bool;
    fn msrguard_shim_locked() -> bool;
}

/// Arms the shim with `events` as the queue its callbacks record into. On
/// error nothing stays registered.
///
/// `events` must stay valid until [`exit`] returns; the module keeps it
/// pinned in its own state, which outlives both calls.
pub(crate) fn init(events: &EventQueue) -> Result {
    let ptr: *const EventQueue = events;
    // Called once, from module init; `events` is module state, dropped
    // only after `exit`.
    // SAFETY: `ptr` stays valid for as long as the shim is armed.
    let ret = unsafe { msrguard_shim_init(ptr.cast()) };
    to_result(ret)
}

/// Disarms the shim; on return no hook runs any more.
pub(crate) fn exit() {
    // SAFETY: Called once, after a successful `init`.
    unsafe { msrguard_shim_exit() }
}

/// Whether `mode=audit`.
pub(crate) fn audit() -> bool {
    // SAFETY: Reads a parameter; no preconditions.
    unsafe { msrguard_shim_audit() }
}

/// Whether the `lock` parameter has been set.
pub(crate) fn locked() -> bool {
    // SAFETY: Reads a parameter; no preconditions.
    unsafe { msrguard_shim_locked() }
}

/// Decides one guest access. Pure: the shim records an event, with
/// [`msrguard_rust_record`], only when the verdict has a reason.
///
/// Called in atomic context: one binary search.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_decide(msr: u32, is_write: bool, value: u64) -> Verdict {
    let verdict = policy::decide(TABLE, msr, is_write, value);
    Verdict {
        action: verdict.action as u8,
        reason: verdict.reason.map_or(0, |r| r as u8),
    }
}

/// Records the event for an access `verdict` (from [`msrguard_rust_decide`])
/// objects to, and fills `outcome` for the shim's trace event and log line.
/// In audit mode the event is `audit-allowed`.
///
/// Called in atomic context: bounded (one ring insert), no allocation, no
/// sleeping.
///
/// # Safety
///
/// `guard` is the pointer given to `msrguard_shim_init`; `access` and
/// `outcome` are valid, initialized (the shim zeroes `outcome`) and
/// exclusive for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_record(
    guard: *const c_void,
    access: *const Access,
    verdict: Verdict,
    outcome: *mut Outcome,
) {
    let (Some(action), Some(reason)) = (
        policy::Action::from_u8(verdict.action),
        Reason::from_u8(verdict.reason),
    ) else {
        return;
    };
    // SAFETY: The caller passes the queue given to `init`, still alive.
    let events = unsafe { &*guard.cast::<EventQueue>() };
    // SAFETY: Valid for the call, per the function's contract.
    let a = unsafe { &*access };
    // SAFETY: Valid for the call, per the function's contract.
    let out = unsafe { &mut *outcome };

    let status = policy::status_of(action, a.audit != 0);
    let record = Record {
        sequence: 0,
        timestamp_ns: a.timestamp_ns,
        msr: a.msr,
        is_write: a.is_write != 0,
        msr_value: a.value,
        access_status: status,
        reason,
        pc: a.pc,
        image_base: 0,
        image_checksum: 0,
        image_timestamp: 0,
        image_name: [0; IMAGE_NAME_LEN],
        vmm_pid: a.vmm_pid,
        vmm_comm: a.vmm_comm,
        vcpu_id: a.vcpu_id,
        guest_cpl: a.guest_cpl,
        guest_mode: GuestMode::from_u8(a.guest_mode).unwrap_or(GuestMode::Protected),
    };
    out.sequence = events.record(record);
    out.status = status as u8;
    fill_nul_padded(&mut out.status_name, status.name());
    fill_nul_padded(&mut out.reason_name, reason.name());
    let name = policy::lookup(TABLE, a.msr)
        .map(|e| e.name)
        .or_else(|| msr_names::msr_name(a.msr))
        .unwrap_or("unknown");
    fill_nul_padded(&mut out.msr_name, name);
}

/// Whether KVM may stop intercepting `msr` for this kind of access: only if
/// the policy allows every such access whatever the value.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_may_pass_through(msr: u32, is_write: bool) -> bool {
    policy::always_allowed(TABLE, msr, is_write)
}
