// SPDX-License-Identifier: GPL-2.0

//! The C side (`kvm/hooks.c`, `kvm/params.c`, `kvm/trace.c`): KVM hooks,
//! runtime parameters and the trace event, and the entry points it calls
//! back into Rust. The structs passed are [`crate::boundary`]'s and the
//! functions [`crate::boundary_calls`]'s, from which C's declarations are
//! generated. The decisions are [`crate::guard`]'s.

use core::{
    ffi::c_void,
    sync::atomic::{
        AtomicBool,
        Ordering, //
    },
};

use kernel::{
    error::to_result,
    prelude::*, //
};

use crate::{
    boundary::{
        AccessC,
        AnswerC,
        EventFactsC,
        FactsC,
        NamesC,
        RepeatC,
        VmC, //
    },
    boundary_calls::{
        c_side::{
            msrguard_hooks_exit,
            msrguard_hooks_init,
            msrguard_hooks_set_audit,
            msrguard_hooks_vms_changed,
            msrguard_kvm_event_facts,
            msrguard_kvm_recalc_intercepts_put, //
        },
        Kvm,
        KvmVcpu, //
    },
    events::EventQueue,
    guard::{
        self,
        Answer,
        Facts,
        Hook, //
    },
    lookups::{
        ImageLookups,
        OnVcpu, //
    },
    mode::{
        self,
        LockStep,
        Mode,
        ModeStep, //
    },
    msr_names,
    pin_table::Pins,
    pins::Held,
    pipeline,
    policy,
    policy_table::{
        FAST,
        PROFILES,
        TABLE, //
    },
    profiles,
    queue::RepeatKey,
    record::{
        fill_nul_padded,
        AccessStatus,
        Reason, //
    }, //
    vm_table::Vms,
};

/// What the armed hooks record into: the context the C side calls Rust
/// back with.
pub(crate) struct Recorder {
    events: *const EventQueue,
    lookups: *const ImageLookups,
    vms: *const Vms,
    pins: *const Pins,
}

// SAFETY: `Recorder` only hands out shared references to the queue, the
// lookups, the VM table and the pin table, which are `Sync` (everything in
// them is behind locks or atomic).
unsafe impl Send for Recorder {}
// SAFETY: As above.
unsafe impl Sync for Recorder {}

impl Recorder {
    /// The recorder behind the C side's context pointer.
    ///
    /// # Safety
    ///
    /// `ctx` is the pointer [`Hooks::arm`] gave `msrguard_hooks_init`, and
    /// the hooks are still armed, or work they queued is running (it holds
    /// the module, so they are).
    unsafe fn from_ctx<'a>(ctx: *const c_void) -> &'a Recorder {
        // SAFETY: `Hooks` owns the recorder until it has disarmed the hooks,
        // per the function's contract.
        unsafe { &*ctx.cast::<Recorder>() }
    }

    fn events(&self) -> &EventQueue {
        // SAFETY: `Hooks::arm`'s contract: the queue outlives the hooks,
        // which own `self`.
        unsafe { &*self.events }
    }

    fn lookups(&self) -> &ImageLookups {
        // SAFETY: As in `events`.
        unsafe { &*self.lookups }
    }

    fn vms(&self) -> &Vms {
        // SAFETY: As in `events`.
        unsafe { &*self.vms }
    }

    fn pins(&self) -> &Pins {
        // SAFETY: As in `events`.
        unsafe { &*self.pins }
    }
}

/// The KVM hooks, armed for as long as this value lives.
///
/// # Invariants
///
/// `msrguard_hooks_init` succeeded with `recorder` and
/// `msrguard_hooks_exit` has not been called yet.
pub(crate) struct Hooks {
    recorder: KBox<Recorder>,
}

impl Hooks {
    /// Arms the hooks, recording into `events`, looking images up with
    /// `lookups`, knowing VMs by `vms` and their vCPUs' pinned values by
    /// `pins`. On error nothing stays registered.
    ///
    /// # Safety
    ///
    /// `events`, `lookups`, `vms` and `pins` outlive the returned value (the
    /// hooks use them until it is dropped).
    pub(crate) unsafe fn arm(
        events: &EventQueue,
        lookups: &ImageLookups,
        vms: &Vms,
        pins: &Pins,
    ) -> Result<Self> {
        let recorder = KBox::new(
            Recorder {
                events,
                lookups,
                vms,
                pins,
            },
            GFP_KERNEL,
        )?;
        let ctx: *const Recorder = &*recorder;
        // `recorder` lives until the returned value is dropped, after the
        // hooks are disarmed, and what it points at outlives it (the
        // function's contract).
        // SAFETY: `ctx` outlives the armed hooks, as said above.
        let ret = unsafe { msrguard_hooks_init(ctx.cast()) };
        to_result(ret)?;
        // INVARIANT: `msrguard_hooks_init` succeeded with `recorder`.
        Ok(Self { recorder })
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        // By the type invariant the hooks are armed, and this is the only
        // call of `msrguard_hooks_exit` for them; on return no handler
        // runs, and `recorder` is freed after this.
        // SAFETY: The hooks are armed and disarmed once, as said above.
        unsafe { msrguard_hooks_exit() };
        let _ = &self.recorder;
    }
}

/// `mode=audit`, and `lock`: written by the parameters' setters below, which
/// the C side serializes; read anywhere.
static AUDIT: AtomicBool = AtomicBool::new(false);
static LOCKED: AtomicBool = AtomicBool::new(false);

/// Whether `mode=audit`.
pub(crate) fn audit() -> bool {
    AUDIT.load(Ordering::Relaxed)
}

/// Whether the `lock` parameter has been set.
pub(crate) fn locked() -> bool {
    LOCKED.load(Ordering::Relaxed)
}

/// Whether `mode=audit`, for the parameter's getter.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_audit() -> bool {
    audit()
}

/// Whether `lock` is set, for the parameter's getter.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_locked() -> bool {
    locked()
}

/// A refused parameter change: its log line, if it has one, and `EPERM`.
fn refused(refusal: mode::Refusal) -> c_int {
    if let Some(message) = refusal.message() {
        pr_warn!("{}\n", message);
    }
    EPERM.to_errno()
}

/// The parameters' state now.
fn mode_now() -> Mode {
    Mode {
        audit: audit(),
        locked: locked(),
    }
}

/// Sets `mode=audit` (`audit`) or `mode=enforce` by [`mode::set_mode`]'s
/// rules; 0 or a negative errno.
///
/// # Safety
///
/// The caller serializes the calls of this function and
/// [`msrguard_rust_set_lock`] (the parameters' mutex).
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_set_mode(audit: bool) -> c_int {
    match mode::set_mode(mode_now(), audit) {
        Err(refusal) => refused(refusal),
        Ok(ModeStep::Nothing) => 0,
        Ok(ModeStep::ArmThenAudit) => {
            // SAFETY: Arms or disarms under the hooks' own lock; no
            // preconditions.
            let ret = unsafe { msrguard_hooks_set_audit(true) };
            if ret == 0 {
                AUDIT.store(true, Ordering::Relaxed);
            }
            ret
        }
        Ok(ModeStep::EnforceThenDisarm) => {
            AUDIT.store(false, Ordering::Relaxed);
            // SAFETY: As above.
            unsafe { msrguard_hooks_set_audit(false) };
            0
        }
    }
}

/// Sets `lock` by [`mode::set_lock`]'s rules: 1 if the module is now
/// locked (the caller pins it for good), 0 if nothing changed, or a
/// negative errno.
///
/// # Safety
///
/// As [`msrguard_rust_set_mode`].
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_set_lock(lock: bool) -> c_int {
    match mode::set_lock(mode_now(), lock) {
        Err(refusal) => refused(refusal),
        Ok(LockStep::Nothing) => 0,
        Ok(LockStep::Lock) => {
            LOCKED.store(true, Ordering::Relaxed);
            pr_info!("locked: no unload and no weaker mode until reboot\n");
            1
        }
    }
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

/// Decides one access from the facts a hook gathered ([`guard::on_access`],
/// then for a write the policy allows of an MSR the VM's profile pins,
/// [`guard::on_pinned_write`] over the vCPU's pinned values).
///
/// Called in atomic context: one bitmap test, at worst a binary search
/// (and for a pinned MSR's write, a probe of the pin table).
///
/// The answer is written through `answer`, not returned: C reads its bytes
/// in place instead of unpacking a register.
///
/// # Safety
///
/// `ctx` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `facts` is valid for reads and `answer` for writes for the
/// call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_on_access(
    ctx: *const c_void,
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
    let profile = profiles::get(PROFILES, f.profile);
    let facts = Facts {
        hook,
        msr: f.msr,
        is_write: f.is_write != 0,
        value: f.value,
        host_initiated: f.host_initiated != 0,
        audit: audit(),
        vmm_takes_filter_exits: f.vmm_takes_filter_exits != 0,
        read_completion_armed: f.read_completion_armed != 0,
        kept_bits: f.kept_bits,
    };
    let mut a: Answer = guard::on_access(profile.map_or(TABLE, |p| p.table), &facts);
    let mut wants_held = false;
    // Pins are L1's: a nested guest writes its own values.
    if a == Answer::PROCEED && facts.is_write && hook == Hook::Decision && f.nested == 0 {
        if let Some((index, rule)) = profile.and_then(|p| profiles::pin_of(p.pins, f.msr)) {
            // SAFETY: The hooks are armed, per the function's contract.
            let pins = unsafe { Recorder::from_ctx(ctx) }.pins();
            let held = Held::from_boundary(f.held_state, f.held);
            match pins.on_write(f.vm_id, f.vcpu_id, f.profile, index, rule, held, &facts) {
                Some(answer) => a = answer,
                None => wants_held = true,
            }
        }
    }
    let a = AnswerC {
        kvm: a.kvm as u8,
        zero_read: u8::from(a.zero_read),
        record: a.record as u8,
        status: a.status as u8,
        reason: a.reason as u8,
        wants_held: u8::from(wants_held),
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
/// `ctx` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `repeat` is valid for reads for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_repeat(
    ctx: *const c_void,
    repeat: *const RepeatC,
) -> bool {
    // SAFETY: The hooks are armed, per the function's contract.
    let events = unsafe { Recorder::from_ctx(ctx) }.events();
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
    RepeatKey::from_c(
        r.vm_id, r.msr, r.is_write, r.value, r.pc, r.status, r.reason,
    )
}

/// KVM starts making the VM `kvm` (`kvm_mmu_init_vm`) for the thread
/// group `vmm_pid`: it gets its id, and the profile whose cgroup prefix the
/// creating task's cgroup path (`cgroup`, `len` bytes) starts with.
///
/// # Safety
///
/// `ctx` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `cgroup` is valid for reads of `len` bytes for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_vm_created(
    ctx: *const c_void,
    kvm: *const Kvm,
    vmm_pid: u32,
    cgroup: *const u8,
    len: u32,
) {
    let path: &[u8] = if cgroup.is_null() {
        &[]
    } else {
        // SAFETY: Valid for reads of `len` bytes, per the function's contract.
        unsafe { core::slice::from_raw_parts(cgroup, len as usize) }
    };
    let profile = profiles::for_cgroup(PROFILES, path);
    // SAFETY: The hooks are armed, per the function's contract.
    unsafe { Recorder::from_ctx(ctx) }
        .vms()
        .created(kvm.cast(), vmm_pid, profile);
}

/// KVM destroyed the VM `kvm` (`kvm_arch_destroy_vm` returned): its id is
/// never used again.
///
/// # Safety
///
/// As [`msrguard_rust_vm_created`].
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_vm_destroyed(ctx: *const c_void, kvm: *const Kvm) {
    // SAFETY: The hooks are armed, per the function's contract.
    let recorder = unsafe { Recorder::from_ctx(ctx) };
    if let Some(id) = recorder.vms().destroyed(kvm.cast()) {
        recorder.pins().forget_vm(id);
    }
}

/// The id of the VM `kvm` (0 if untracked: assigned at its creation, or
/// now for a VM that existed before msrguard loaded) and its profile, into
/// `vm`. Atomic context.
///
/// # Safety
///
/// `ctx` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `vm` is valid for writes for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_vm(
    ctx: *const c_void,
    kvm: *const Kvm,
    vm: *mut VmC,
) {
    // SAFETY: The hooks are armed, per the function's contract.
    let v = unsafe { Recorder::from_ctx(ctx) }.vms().vm_of(kvm.cast());
    let c = VmC {
        id: v.id,
        profile: v.profile,
        pad: [0; 3],
    };
    // SAFETY: Valid for writes for the call, per the function's contract.
    unsafe { vm.write(c) };
}

/// Gives the VM `id` the profile `profile` (root, through `/dev/msrguard`),
/// forgetting its vCPUs' pinned values:
/// `EPERM` once `lock` is set, `ENOENT` if no live VM has that id, `EINVAL`
/// for a profile the module does not have.
pub(crate) fn set_profile(vms: &Vms, pins: &Pins, id: u32, profile: u8) -> Result {
    if locked() {
        return Err(EPERM);
    }
    if usize::from(profile) >= PROFILES.len() {
        return Err(EINVAL);
    }
    let kvm = vms.set_profile(id, profile).ok_or(ENOENT)?;
    // The new profile's states start unlooked: each vCPU's next write of
    // a pinned MSR first pins the value it holds (`pins::first_look`). A
    // decision still under the old profile finds its vCPU's states under
    // the new one reset (`PinTable::states`).
    pins.forget_vm(id);
    // SAFETY: No preconditions: it moves the hooks' VM generation.
    unsafe { msrguard_hooks_vms_changed() };
    if let Some(kvm) = kvm {
        // The intercepts follow the new profile (a pinned MSR's writes
        // exit), from each vCPU's next entry.
        // SAFETY: `set_profile` took a reference on `kvm`, which this
        // drops.
        unsafe { msrguard_kvm_recalc_intercepts_put(kvm) };
    }
    Ok(())
}

/// A new event (not a repeat) of `vcpu`, every field but the image's
/// gathered by the hook: through [`pipeline::new_event`], recorded now or
/// after its image is looked up on the vCPU's thread. `tracing`: a trace
/// event shows every repeat in full.
///
/// Called in atomic context: bounded, no allocation, no sleeping.
///
/// # Safety
///
/// `ctx` is the pointer given to `msrguard_hooks_init`, whose hooks are
/// still armed; `vcpu` is the `struct kvm_vcpu` of the access, valid for
/// the call; `access` is valid and exclusive for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_new_event(
    ctx: *const c_void,
    vcpu: *mut KvmVcpu,
    access: *mut AccessC,
    tracing: bool,
) {
    // SAFETY: The hooks are armed, per the function's contract.
    let recorder = unsafe { Recorder::from_ctx(ctx) };
    // SAFETY: Valid and exclusive for the call, per the function's contract.
    let a = unsafe { &mut *access };
    let mut facts = EventFactsC::ZERO;
    // SAFETY: `vcpu` is valid for the call; `a` and `facts` are valid.
    unsafe { msrguard_kvm_event_facts(vcpu, a, tracing, &mut facts) };
    let k = OnVcpu {
        ctx,
        events: recorder.events(),
        lookups: recorder.lookups(),
        vcpu,
    };
    pipeline::new_event(&k, &facts, a);
}

/// The task work of the chain whose head is `head` ([`pipeline::run_chain`]):
/// its records get their images looked up and are recorded, in order.
///
/// Called in process context on the vCPU's thread: may sleep.
///
/// # Safety
///
/// `ctx` and `vcpu` are what [`msrguard_rust_new_event`] gave the C side
/// when it queued the work, which holds the module and the VM; `facts` is
/// valid for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_run_chain(
    ctx: *const c_void,
    vcpu: *mut KvmVcpu,
    head: u32,
    facts: *const EventFactsC,
) {
    // SAFETY: The work holds the module, so the hooks are armed.
    let recorder = unsafe { Recorder::from_ctx(ctx) };
    // SAFETY: Valid for the call, per the function's contract.
    let facts = unsafe { &*facts };
    let k = OnVcpu {
        ctx,
        events: recorder.events(),
        lookups: recorder.lookups(),
        vcpu,
    };
    pipeline::run_chain(&k, facts, head as usize);
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
    let profile = PROFILES.get(usize::from(a.profile)).map_or("?", |p| p.name);
    fill_nul_padded(&mut names.profile, profile);
}

/// Whether KVM may stop intercepting `msr` for this kind of access, for
/// a VM of profile `profile` ([`profiles::may_pass_through`]).
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_may_pass_through(
    profile: u8,
    msr: u32,
    is_write: bool,
) -> bool {
    match profiles::get(PROFILES, profile) {
        Some(p) => profiles::may_pass_through(PROFILES, p, msr, is_write),
        // No profile at all (the generator always writes `default`): keep
        // intercepting.
        None => false,
    }
}
