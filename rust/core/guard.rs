// SPDX-License-Identifier: GPL-2.0

//! The guard's decisions: what happens to one guest MSR access, given the
//! facts a hook gathered about it.
//!
//! `core`-only, like `policy.rs`: the module calls [`on_access`] from its
//! hooks, and the host crates test every state it can be in. The C hooks
//! only gather [`Facts`] and apply the [`Answer`].
//!
//! Two hooks may see a guest access:
//!
//! - [`Hook::Decision`], at the entry of KVM's access function
//!   (`kvm_{get,set}_msr_ignored_check()`), always armed. It may veto: skip
//!   KVM's function and return a code of KVM's own (see [`KvmReturn`]).
//! - [`Hook::ReadCompletion`], around KVM's read function, armed only while
//!   audit mode is on: an audited read is recorded when KVM's function
//!   returns, so that the event carries the value the guest got.

use crate::{
    pins::{
        self,
        Held,
        PinCheck,
        PinRule,
        PinState, //
    },
    policy::{
        self,
        Action,
        AllowBitmap,
        Entry,
        Verdict, //
    },
    record::{
        AccessStatus,
        Reason, //
    },
};

/// Which hook asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Hook {
    /// Entry of KVM's access function: may veto.
    Decision = 0,
    /// Entry of KVM's read function, with a return handler: records an
    /// audited read with the value it returned. Never vetoes.
    ReadCompletion = 1,
}

/// What a hook knows about one access. All of it is cheap to gather.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The hook asking.
    pub hook: Hook,
    /// MSR index.
    pub msr: u32,
    /// WRMSR (true) or RDMSR.
    pub is_write: bool,
    /// The value written; ignored for reads.
    pub value: u64,
    /// The VMM's own access (`KVM_GET/SET_MSRS`), not the guest's.
    pub host_initiated: bool,
    /// `mode=audit`: report, never veto.
    pub audit: bool,
    /// The VM's VMM asked for filtered-MSR exits and has no MSR filter of
    /// its own: it wants vetoes as `KVM_MSR_EXIT_REASON_FILTER` exits.
    pub vmm_takes_filter_exits: bool,
    /// The [`Hook::ReadCompletion`] hook is armed and sees this access.
    pub read_completion_armed: bool,
    /// The bits of a written value KVM keeps ([`u64::MAX`] but for SVM's
    /// SYSENTER_ESP/EIP of a guest with AMD's CPUID: 32); a pin compares
    /// these, what the vCPU holds after the write.
    pub kept_bits: u64,
}

/// What KVM's access function returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KvmReturn {
    /// Not vetoed: KVM's function runs.
    Proceed = 0,
    /// Vetoed silently where KVM would succeed, KVM's answer where it
    /// would not: a guard only takes away ([`after_kvm`]). A read runs
    /// KVM's function, and only its success becomes a 0; a write runs
    /// KVM's read of the MSR for the guest instead (KVM refuses the MSR or
    /// not; a write would change it), and only its success drops the
    /// write.
    SucceedIfKvmDoes = 1,
    /// Vetoed: KVM's generic failure (1). The guest gets #GP, or the VMM an
    /// `INVAL` exit if it asked for those.
    Fail = 2,
    /// Vetoed: `KVM_MSR_RET_FILTERED`, so the VMM gets the filter exit it
    /// asked for.
    FailFiltered = 3,
    /// Vetoed: `KVM_MSR_RET_UNSUPPORTED`, what KVM answers for an MSR it
    /// does not handle. A VMM that asked for `UNKNOWN` exits gets one (it
    /// emulates MSRs KVM does not know); the others' guests get #GP.
    FailUnsupported = 4,
}

/// When the event for an access is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordWhen {
    /// No event.
    Never = 0,
    /// Now, by the asking hook.
    Now = 1,
    /// When KVM's read function returns, with the value it read
    /// ([`completed_read_value`]).
    AtCompletion = 2,
    /// Once KVM answered, if it succeeded ([`KvmReturn::SucceedIfKvmDoes`]).
    IfKvmSucceeds = 3,
}

/// The one answer a hook applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// What KVM's function returns.
    pub kvm: KvmReturn,
    /// A vetoed read's result is zeroed (KVM zeroes a failed read's result
    /// itself, in the function the veto skips; some callers use it
    /// without checking).
    pub zero_read: bool,
    /// Whether and when the event is recorded.
    pub record: RecordWhen,
    /// The event's status, when recorded.
    pub status: AccessStatus,
    /// The event's reason, when recorded.
    pub reason: Reason,
}

impl Answer {
    /// Nothing to do: KVM handles the access, no event.
    pub const PROCEED: Self = Self {
        kvm: KvmReturn::Proceed,
        zero_read: false,
        record: RecordWhen::Never,
        status: AccessStatus::AuditAllowed,
        reason: Reason::Unknown,
    };
}

/// Whether an access of this kind to `msr` proceeds whatever the other
/// facts are: the policy allows every such access. The decision hooks ask
/// this first, before they gather any fact, so an allowed access costs one
/// bitmap test; [`on_access`] answers [`Answer::PROCEED`] to every access
/// this accepts.
pub fn proceeds_regardless(fast: &[AllowBitmap], msr: u32, is_write: bool) -> bool {
    policy::fast_allowed(fast, msr, is_write)
}

/// Decides one access, from the policy `table` and the facts a hook
/// gathered.
///
/// Bounded and allocation-free: safe in the hooks' atomic context. The
/// hooks ask [`proceeds_regardless`] first, so this runs only for an MSR
/// the policy does not always allow: a binary search, no bitmap.
pub fn on_access(table: &[Entry], facts: &Facts) -> Answer {
    if facts.host_initiated {
        // KVM_GET/SET_MSRS and friends: the VMM, not the guest.
        return Answer::PROCEED;
    }
    let Verdict {
        action,
        reason: Some(reason),
    } = policy::decide(table, facts.msr, facts.is_write, facts.value)
    else {
        return Answer::PROCEED;
    };

    if facts.audit {
        let audit = |record| Answer {
            record,
            status: AccessStatus::AuditAllowed,
            reason,
            ..Answer::PROCEED
        };
        // An audited read is recorded by the completion hook when it is
        // armed (with the value read), else now (value unknown: 0).
        // Both hooks read the same armed flag, so while it changes an
        // audited read is still recorded once.
        return match (facts.hook, facts.is_write, facts.read_completion_armed) {
            (Hook::Decision, false, true) => Answer::PROCEED,
            (Hook::Decision, _, _) => audit(RecordWhen::Now),
            (Hook::ReadCompletion, false, true) => audit(RecordWhen::AtCompletion),
            (Hook::ReadCompletion, _, _) => Answer::PROCEED,
        };
    }
    if facts.hook != Hook::Decision {
        // Enforcing is the decision hook's alone.
        return Answer::PROCEED;
    }

    let kvm = match (action, reason) {
        (Action::Ignore, _) => KvmReturn::SucceedIfKvmDoes,
        // An MSR the policy does not know is one KVM does not handle
        // (`msrguard check --against-kvm`): answer as KVM would.
        (_, Reason::Unknown) => KvmReturn::FailUnsupported,
        _ if facts.vmm_takes_filter_exits => KvmReturn::FailFiltered,
        _ => KvmReturn::Fail,
    };
    let record = if kvm == KvmReturn::SucceedIfKvmDoes {
        RecordWhen::IfKvmSucceeds
    } else {
        RecordWhen::Now
    };
    Answer {
        kvm,
        zero_read: !facts.is_write && kvm != KvmReturn::SucceedIfKvmDoes,
        record,
        status: policy::status_of(action, false),
        reason,
    }
}

/// What an access answered [`KvmReturn::SucceedIfKvmDoes`] finally gets,
/// once KVM's function answered `kvm_ret` (0: success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterKvm {
    /// What KVM's access function returns to its caller.
    pub ret: i32,
    /// The read's result is replaced by 0.
    pub zero_read: bool,
    /// The event is recorded.
    pub record: bool,
}

/// The take-away rule: KVM's success becomes the policy's silent veto (a
/// read of 0, a dropped write, an event); KVM's failure stays KVM's, with
/// its own code (the same vector, the same user-space exit) and no event,
/// as without msrguard.
pub fn after_kvm(kvm_ret: i32, is_write: bool) -> AfterKvm {
    if kvm_ret == 0 {
        AfterKvm {
            ret: 0,
            zero_read: !is_write,
            record: true,
        }
    } else {
        AfterKvm {
            ret: kvm_ret,
            zero_read: false,
            record: false,
        }
    }
}

/// The value a completed audited read recorded: what KVM's read function
/// stored, if it succeeded (`kvm_ret == 0`); a failed read returned nothing.
pub fn completed_read_value(kvm_ret: i32, data: u64) -> u64 {
    if kvm_ret == 0 {
        data
    } else {
        0
    }
}

/// `MSR_EFER`, the one MSR with set-only bits (the checker's rule), and its
/// long mode enable.
const EFER: u32 = 0xc000_0080;
const EFER_LME: u64 = 1 << 8;

/// A write the policy allows (or audits) of an MSR the VM's profile pins
/// or has set-only bits in, on an L1 vCPU whose states are `state`;
/// `held` is the value the MSR holds now, as far as the hook read it
/// (set-only bits are checked against it; the first look at a state pins
/// it, [`pins::first_look`]). Decides, and records the write in `state`
/// right away: a write KVM then refuses (a non-canonical LSTAR) still pins
/// its value, which only the guest that wrote it pays for. None if the
/// held value must be read first: the hook reads it and asks again.
///
/// - The VMM's write (`KVM_SET_MSRS`): never vetoed, it moves the pin
///   ([`pins::host_write`]: a migration target pins, a reset unpins).
/// - The guest's: a change of a pinned value is vetoed, reason
///   [`Reason::Pinned`]; clearing a set-only bit EFER holds, by a write
///   that keeps long mode enabled, [`Reason::SetOnly`]; audit mode records
///   them and lets them through.
///
/// Bounded, no allocation: safe in the hooks' atomic context.
pub fn on_pinned_write(
    rule: PinRule,
    state: &mut PinState,
    held: Held,
    facts: &Facts,
) -> Option<Answer> {
    if facts.host_initiated {
        pins::host_write(rule, state, facts.value, facts.kept_bits);
        return Some(Answer::PROCEED);
    }
    if !pins::first_look(rule, state, held) {
        return None;
    }
    state.sticky = if facts.msr == EFER && facts.value & EFER_LME == 0 {
        // A write leaving long mode (RSM's EFER 0 on its way back from SMM,
        // a reboot to real mode) may clear what long mode needed: the bits
        // bind while it stays on. Coming back needs a new EFER write with
        // LME, which the next write of the set-only bits then governs.
        0
    } else {
        held.or_zero() & rule.set_only
    };
    let reason = match pins::check(rule, state, facts.value, facts.kept_bits) {
        PinCheck::Allow => {
            pins::commit(rule, state, facts.value);
            return Some(Answer::PROCEED);
        }
        PinCheck::Pinned { .. } => Reason::Pinned,
        PinCheck::SetOnly { .. } => Reason::SetOnly,
    };
    if facts.audit {
        return Some(Answer {
            record: RecordWhen::Now,
            status: AccessStatus::AuditAllowed,
            reason,
            ..Answer::PROCEED
        });
    }
    Some(Answer {
        kvm: if facts.vmm_takes_filter_exits {
            KvmReturn::FailFiltered
        } else {
            KvmReturn::Fail
        },
        zero_read: false,
        record: RecordWhen::Now,
        status: AccessStatus::BlockedGp,
        reason,
    })
}

/// Whether KVM may stop intercepting `msr` for this kind of access: only if
/// the policy allows every such access whatever the value, in audit mode
/// too (a later switch to enforce then finds no MSR passed through that the
/// policy denies).
pub fn may_pass_through(table: &[Entry], msr: u32, is_write: bool) -> bool {
    policy::always_allowed(table, msr, is_write)
}
