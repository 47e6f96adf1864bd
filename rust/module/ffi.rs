// SPDX-License-Identifier: GPL-2.0

//! The C side (`kvm/hooks.c`, `kvm/params.c`, `kvm/trace.c`): KVM hooks,
//! runtime parameters and the trace event, and the entry points it calls
//! back into Rust (declared in `kvm/ffi.h`). The structs passed are
//! [`crate::boundary`]'s, from which C's are generated. The decisions are
//! [`crate::guard`]'s.

use core::ffi::c_void;

use kernel::{
    error::to_result,
    prelude::*, //
};

use crate::{
    boundary::{
        AccessC,
        AnswerC,
        FactsC,
        NamesC,
        OutcomeC,
        RepeatC, //
    },
    events::EventQueue,
    guard::{
        self,
        Answer,
        Facts,
        Hook, //
    },
    msr_names,
    policy,
    policy_table::{
        FAST,
        TABLE, //
    },
    queue::{
        Pushed,
        RepeatKey, //
    },
    record::{
        fill_nul_padded,
        AccessStatus,
        GuestMode,
        Reason,
        Record, //
    }, //
};

extern "C" {
    fn msrguard_hooks_init(guard: *const c_void) -> c_int;
    fn msrguard_hooks_exit();
    fn msrguard_param_audit() -> bool;
    fn msrguard_param_locked() -> bool;
}

/// The KVM hooks, armed for as long as this value lives.
///
/// # Invariants
///
/// `msrguard_hooks_init` succeeded and `msrguard_hooks_exit` has not been
/// called yet.
pub(crate) struct Hooks(());

impl Hooks {
    /// Arms the hooks, recording into `events`. On error nothing stays
    /// registered.
    ///
    /// # Safety
    ///
    /// `events` outlives the returned value (the hooks record into it until
    /// it is dropped).
    pub(crate) unsafe fn arm(events: &EventQueue) -> Result<Self> {
        let ptr: *const EventQueue = events;
        // `ptr` stays valid until the returned value is dropped (the
        // function's contract), and dropping it disarms the hooks.
        // SAFETY: `ptr` outlives the armed hooks, as said above.
        let ret = unsafe { msrguard_hooks_init(ptr.cast()) };
        to_result(ret)?;
        // INVARIANT: `msrguard_hooks_init` succeeded.
        Ok(Self(()))
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        // By the type invariant the hooks are armed, and this is the only
        // call of `msrguard_hooks_exit` for them; on return no handler runs.
        // SAFETY: The hooks are armed and disarmed once, as said above.
        unsafe { msrguard_hooks_exit() }
    }
}

/// Whether `mode=audit`.
pub(crate) fn audit() -> bool {
    // SAFETY: Reads a parameter; no preconditions.
    unsafe { msrguard_param_audit() }
}

/// Whether the `lock` parameter has been set.
pub(crate) fn locked() -> bool {
    // SAFETY: Reads a parameter; no preconditions.
    unsafe { msrguard_param_locked() }
}

/// Whether a guest read of `msr` proceeds whatever the facts
/// ([`guard::proceeds_regardless`]): the read hook's first question, and
/// for an allowed MSR its only one. One function per direction: the hot
/// path passes one argument.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_read_proceeds(msr: u32) -> bool {
    guard::proceeds_regardless(FAST, msr, false)
}

/// [`msrguard_rust_read_proceeds`] for a guest write.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_write_proceeds(msr: u32) -> bool {
    guard::proceeds_regardless(FAST, msr, true)
}

/// Decides one access from the facts a hook gathered ([`guard::on_access`]).
///
/// Called in atomic context: one bitmap test, at worst a binary search.
///
/// The answer is written through `answer`, not returned: C reads its bytes
/// in place instead of unpacking a register.
///
/// # Safety
///
/// `facts` is valid for reads and `answer` for writes for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_on_access(
    facts: *const FactsC,
    answer: *mut AnswerC,
) {
    // SAFETY: Valid for the call, per the function's contract.
    let f = unsafe { &*facts };
    let hook = if f.hook == Hook::ReadCompletion as u8 {
        Hook::ReadCompletion
    } else {
        Hook::Decision
    };
    let a: Answer = guard::on_access(
        TABLE,
        &Facts {
            hook,
            msr: f.msr,
            is_write: f.is_write != 0,
            value: f.value,
            host_initiated: f.host_initiated != 0,
            audit: f.audit != 0,
            vmm_takes_filter_exits: f.vmm_takes_filter_exits != 0,
            read_completion_armed: f.read_completion_armed != 0,
        },
    );
    let a = AnswerC {
        kvm: a.kvm as u8,
        zero_read: u8::from(a.zero_read),
        record: a.record as u8,
        status: a.status as u8,
        reason: a.reason as u8,
    };
    // SAFETY: Valid for writes for the call, per the function's contract.
    unsafe { answer.write(a) };
}

/// What an access answered `SucceedIfKvmDoes` returns once KVM's function
/// returned `kvm_ret` ([`guard::after_kvm`]); `zero_read` and `record` say
/// whether a read's result becomes 0 and whether the event is recorded.
///
/// # Safety
///
/// `zero_read` and `record` are valid for writes for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_after_kvm(
    kvm_ret: c_int,
    is_write: bool,
    zero_read: *mut bool,
    record: *mut bool,
) -> c_int {
    let after = guard::after_kvm(kvm_ret, is_write);
    // SAFETY: Valid for writes for the call, per the function's contract.
    unsafe { zero_read.write(after.zero_read) };
    // SAFETY: Valid for writes for the call, per the function's contract.
    unsafe { record.write(after.record) };
    after.ret
}

/// The value an audited read that KVM completed with `kvm_ret` recorded.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_completed_read_value(kvm_ret: c_int, data: u64) -> u64 {
    guard::completed_read_value(kvm_ret, data)
}

/// Counts the event `repeat` as a repeat of its VM's previous record if it
/// is one ([`crate::queue::Queue::push_repeat`]). Returns whether it did;
/// if not, the caller records the event in full. A repeat is neither
/// traced (the caller does not take this path while tracing) nor logged.
///
/// Called in atomic context: bounded, no allocation, no sleeping.
///
/// # Safety
///
/// `guard` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `repeat` is valid for reads for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_repeat(
    guard: *const c_void,
    repeat: *const RepeatC,
) -> bool {
    // The hooks are armed, and `Hooks::arm`'s contract keeps its queue
    // alive until they are disarmed.
    // SAFETY: `guard` points at that live queue, as said above.
    let events = unsafe { &*guard.cast::<EventQueue>() };
    // SAFETY: Valid for the call, per the function's contract.
    let r = unsafe { &*repeat };
    let Some(key) = repeat_key(r) else {
        return false;
    };
    events.record_repeat(&key, r.now_ns).is_some()
}

/// What coalescing compares of `r`; None if its status or reason is not one.
#[inline(always)]
fn repeat_key(r: &RepeatC) -> Option<RepeatKey> {
    Some(RepeatKey {
        vm_id: r.vm_id,
        msr: r.msr,
        is_write: r.is_write != 0,
        msr_value: r.value,
        pc: r.pc,
        access_status: AccessStatus::from_u8(r.status)?,
        reason: Reason::from_u8(r.reason)?,
    })
}

/// If the event `repeat` repeats its VM's queued previous record (the
/// record it will be coalesced into), copies that record's image fields
/// into `access` and returns true: the same Pc, so the same image, known
/// without a lookup. Counts nothing. For the path that shows every repeat
/// in full (a trace event is enabled).
///
/// Called in atomic context: bounded, no allocation, no sleeping.
///
/// # Safety
///
/// `guard` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `repeat` is valid for reads and `access` for reads and
/// writes, exclusively, for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_repeat_image(
    guard: *const c_void,
    repeat: *const RepeatC,
    access: *mut AccessC,
) -> bool {
    // The hooks are armed, and `Hooks::arm`'s contract keeps its queue
    // alive until they are disarmed.
    // SAFETY: `guard` points at that live queue, as said above.
    let events = unsafe { &*guard.cast::<EventQueue>() };
    // SAFETY: Valid for the call, per the function's contract.
    let r = unsafe { &*repeat };
    // SAFETY: Valid and exclusive for the call, per the function's contract.
    let a = unsafe { &mut *access };
    let Some(prev) = repeat_key(r).and_then(|key| events.repeated_record(&key, r.now_ns)) else {
        return false;
    };
    a.image_base = prev.image_base;
    a.image_checksum = prev.image_checksum;
    a.image_timestamp = prev.image_timestamp;
    a.image_name = prev.image_name;
    true
}

/// Records the event for `access` and fills the counters of `outcome` for
/// the trace event and log line (`msrguard_rust_name()` the names).
///
/// Called in atomic context: bounded (one ring insert), no allocation, no
/// sleeping.
///
/// # Safety
///
/// `guard` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `access` and `outcome` are valid and exclusive for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_record(
    guard: *const c_void,
    access: *const AccessC,
    outcome: *mut OutcomeC,
) {
    // The hooks are armed, and `Hooks::arm`'s contract keeps its queue
    // alive until they are disarmed.
    // SAFETY: `guard` points at that live queue, as said above.
    let events = unsafe { &*guard.cast::<EventQueue>() };
    // SAFETY: Valid for the call, per the function's contract.
    let a = unsafe { &*access };
    // SAFETY: Valid for the call, per the function's contract.
    let out = unsafe { &mut *outcome };
    let status = AccessStatus::from_u8(a.status);
    let reason = Reason::from_u8(a.reason);
    let (Some(status), Some(reason)) = (status, reason) else {
        return;
    };

    let record = Record {
        sequence: 0,
        timestamp_ns: a.timestamp_ns,
        msr: a.msr,
        is_write: a.is_write != 0,
        msr_value: a.value,
        access_status: status,
        reason,
        pc: a.pc,
        image_base: a.image_base,
        image_checksum: a.image_checksum,
        image_timestamp: a.image_timestamp,
        image_name: a.image_name,
        vmm_pid: a.vmm_pid,
        vmm_comm: a.vmm_comm,
        vcpu_id: a.vcpu_id,
        guest_cpl: a.guest_cpl,
        guest_mode: GuestMode::from_u8(a.guest_mode).unwrap_or(GuestMode::Unknown),
        flags: a.flags,
        repeat: 0,
        vm_id: a.vm_id,
    };
    let pushed = events.record(&record);
    (out.sequence, out.repeat, out.queued) = match pushed.pushed {
        Pushed::Queued(sequence) => (sequence, 0, 1),
        Pushed::Coalesced(sequence, repeat) => (sequence, repeat, 0),
        Pushed::Dropped => (0, 0, 0),
    };
    out.log = u8::from(pushed.log);
}

/// Fills `names` for the trace event and the log line: only called when
/// one of them will show the event, as each name costs a lookup.
///
/// # Safety
///
/// `access` and `names` are valid and exclusive for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_name(access: *const AccessC, names: *mut NamesC) {
    // SAFETY: Valid for the call, per the function's contract.
    let a = unsafe { &*access };
    // SAFETY: Valid for the call, per the function's contract.
    let names = unsafe { &mut *names };
    let status = AccessStatus::from_u8(a.status).map_or("?", AccessStatus::name);
    let reason = Reason::from_u8(a.reason).map_or("?", Reason::name);
    fill_nul_padded(&mut names.status, status);
    fill_nul_padded(&mut names.reason, reason);
    let msr = policy::lookup(TABLE, a.msr)
        .map(|e| e.name)
        .or_else(|| msr_names::msr_name(a.msr))
        .unwrap_or("unknown");
    fill_nul_padded(&mut names.msr, msr);
}

/// Whether KVM may stop intercepting `msr` for this kind of access.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_may_pass_through(msr: u32, is_write: bool) -> bool {
    guard::may_pass_through(TABLE, msr, is_write)
}
