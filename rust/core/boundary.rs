// SPDX-License-Identifier: GPL-2.0

//! The structs the module's C side (`rust/module/kvm/`) and its Rust side
//! pass each other. They are defined here once: `msrguard-c-header
//! boundary` prints them as C structs (`msrguard_boundary.h`, generated at
//! build time) with each field's offset asserted, so the C compiler checks
//! its layout against Rust's, field by field.

use crate::record::{
    COMM_LEN,
    IMAGE_NAME_LEN, //
};

/// One field of a boundary struct as C declares it.
#[derive(Clone, Copy, Debug)]
pub struct CField {
    /// C type of the field, or of an array's elements.
    pub ctype: &'static str,
    /// Field name, the same on both sides.
    pub name: &'static str,
    /// Array length; 0 for a scalar.
    pub len: usize,
    /// Offset in the Rust struct, which C must match.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

/// A boundary struct: its C name, fields and size.
pub trait CStruct {
    /// `struct NAME` in C.
    const C_NAME: &'static str;
    /// The fields, in declaration order.
    const C_FIELDS: &'static [CField];
    /// `sizeof`.
    const C_SIZE: usize;
    /// `_Alignof`.
    const C_ALIGN: usize;
}

/// How a Rust field type is spelled in C (kernel types).
pub trait CType {
    /// C type (of the elements, for an array).
    const C: &'static str;
    /// Array length; 0 for a scalar.
    const LEN: usize;
    /// All bits zero.
    const ZERO: Self;
}

impl CType for u8 {
    const C: &'static str = "u8";
    const LEN: usize = 0;
    const ZERO: Self = 0;
}

impl CType for u32 {
    const C: &'static str = "u32";
    const LEN: usize = 0;
    const ZERO: Self = 0;
}

impl CType for u64 {
    const C: &'static str = "u64";
    const LEN: usize = 0;
    const ZERO: Self = 0;
}

impl<const N: usize> CType for [u8; N] {
    const C: &'static str = "u8";
    const LEN: usize = N;
    const ZERO: Self = [0; N];
}

/// Declares a `#[repr(C)]` struct and its [`CStruct`] description. A field
/// may give its C element type (`as "char"` for a string).
macro_rules! boundary_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident as $cname:literal {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident: $ty:ty $(as $cty:literal)?,
            )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// All fields zero, as C's `= {}`.
            pub const ZERO: Self = Self {
                $($field: <$ty as CType>::ZERO,)*
            };
        }

        impl CStruct for $name {
            const C_NAME: &'static str = $cname;
            const C_FIELDS: &'static [CField] = &[
                $(
                    CField {
                        ctype: boundary_struct!(@ctype $ty $(, $cty)?),
                        name: stringify!($field),
                        len: <$ty as CType>::LEN,
                        offset: core::mem::offset_of!($name, $field),
                        size: core::mem::size_of::<$ty>(),
                    },
                )*
            ];
            const C_SIZE: usize = core::mem::size_of::<$name>();
            const C_ALIGN: usize = core::mem::align_of::<$name>();
        }
    };
    (@ctype $ty:ty) => { <$ty as CType>::C };
    (@ctype $ty:ty, $cty:literal) => { $cty };
}

boundary_struct! {
    /// What a hook knows about one access ([`crate::guard::Facts`]).
    pub struct FactsC as "msrguard_facts" {
        /// Value written; 0 for reads.
        pub value: u64,
        /// The value the MSR holds now, where the hook read it (EFER's,
        /// for a write of EFER; a pinned MSR's when the guard asked for
        /// it: `held_state`); else 0.
        pub held: u64,
        /// The bits of a written value KVM keeps ([`crate::guard::Facts`]).
        pub kept_bits: u64,
        pub msr: u32,
        pub vcpu_id: u32,
        /// The VM's id (0: untracked).
        pub vm_id: u32,
        /// `MSRGUARD_HOOK_*` ([`crate::guard::Hook`]).
        pub hook: u8,
        pub is_write: u8,
        pub host_initiated: u8,
        pub vmm_takes_filter_exits: u8,
        pub read_completion_armed: u8,
        /// The VM's profile ([`crate::profiles`]).
        pub profile: u8,
        /// The vCPU runs a nested guest (L2): its own MSR values, not L1's.
        pub nested: u8,
        /// `MSRGUARD_HELD_*` ([`crate::pins::HeldState`]): what `held` is.
        pub held_state: u8,
        pub pad: [u8; 4],
    }
}

boundary_struct! {
    /// The guard's one answer ([`crate::guard::Answer`]).
    pub struct AnswerC as "msrguard_answer" {
        /// `MSRGUARD_KVM_*` ([`crate::guard::KvmReturn`]).
        pub kvm: u8,
        pub zero_read: u8,
        /// `MSRGUARD_RECORD_*` ([`crate::guard::RecordWhen`]).
        pub record: u8,
        /// `MSRGUARD_STATUS_*`, when recorded.
        pub status: u8,
        /// `MSRGUARD_REASON_*`, when recorded.
        pub reason: u8,
        /// No answer yet: ask again with the value the MSR holds
        /// (`held`, `held_state`), which the guard's first look at a
        /// pinned MSR's state needs ([`crate::pins::first_look`]).
        pub wants_held: u8,
    }
}

boundary_struct! {
    /// An access being recorded, filled by the hook that records it.
    pub struct AccessC as "msrguard_access" {
        /// Value written, or the value an audited read got.
        pub value: u64,
        /// Guest RIP of the instruction; 0 if the state is protected.
        pub pc: u64,
        /// CLOCK_REALTIME.
        pub timestamp_ns: u64,
        pub msr: u32,
        pub vcpu_id: u32,
        pub vmm_pid: u32,
        /// The VM's identifier.
        pub vm_id: u32,
        pub is_write: u8,
        pub guest_cpl: u8,
        /// `MSRGUARD_MODE_*`.
        pub guest_mode: u8,
        /// `MSRGUARD_STATUS_*`.
        pub status: u8,
        /// `MSRGUARD_REASON_*`.
        pub reason: u8,
        /// `MSRGUARD_FLAG_*`.
        pub flags: u8,
        /// The VM's profile.
        pub profile: u8,
        pub pad: u8,
        pub vmm_comm: [u8; COMM_LEN] as "char",
        /// The image holding `pc`, or zeros and "".
        pub image_base: u64,
        pub image_checksum: u32,
        pub image_timestamp: u32,
        /// NUL-terminated.
        pub image_name: [u8; IMAGE_NAME_LEN] as "char",
    }
}

boundary_struct! {
    /// A PE image found in guest memory ([`crate::pe::Image`]).
    pub struct ImageC as "msrguard_image" {
        pub base: u64,
        pub size: u32,
        pub checksum: u32,
        pub timestamp: u32,
        /// NUL-terminated.
        pub name: [u8; IMAGE_NAME_LEN] as "char",
        pub pad: u32,
    }
}

boundary_struct! {
    /// An access that may repeat its VM's previous one: what coalescing
    /// compares.
    pub struct RepeatC as "msrguard_repeat" {
        pub value: u64,
        pub pc: u64,
        /// CLOCK_REALTIME_COARSE.
        pub now_ns: u64,
        pub msr: u32,
        pub vm_id: u32,
        pub is_write: u8,
        /// `MSRGUARD_STATUS_*`.
        pub status: u8,
        /// `MSRGUARD_REASON_*`.
        pub reason: u8,
        pub pad: [u8; 5],
    }
}

boundary_struct! {
    /// What became of a recorded event, for the trace event and the log line.
    pub struct OutcomeC as "msrguard_outcome" {
        /// Of the record the event is in; 0 if dropped.
        pub sequence: u64,
        /// That record's repeat count after this event.
        pub repeat: u64,
        /// A new record (not coalesced, not dropped).
        pub queued: u8,
        /// The VM's log rate limit allows a line.
        pub log: u8,
        pub pad: [u8; 6],
    }
}

boundary_struct! {
    /// A recorded event's names, NUL-terminated: only looked up when a
    /// trace event or a log line shows the event.
    pub struct NamesC as "msrguard_names" {
        pub status: [u8; 16] as "char",
        pub reason: [u8; 16] as "char",
        pub msr: [u8; 40] as "char",
        /// The VM's profile.
        pub profile: [u8; 16] as "char",
    }
}

boundary_struct! {
    /// What the pipeline ([`crate::pipeline`]) needs to know of a new
    /// event's vCPU thread, gathered by the C side.
    pub struct EventFactsC as "msrguard_event_facts" {
        /// The thread (the module's key of its task).
        pub task: u64,
        /// The VM (the module's key of its `struct kvm`).
        pub vm: u64,
        /// CLOCK_MONOTONIC, for the image cache (0 where `attributable` is
        /// not: no cache is asked then).
        pub now_ns: u64,
        /// How long a lookup's answer stays cached; 0: no cache.
        pub cache_ttl_ns: u64,
        /// The thread is inside its KVM_RUN of the vCPU.
        pub in_run: u8,
        /// The image holding Pc can be looked up: a Pc, paging on, state
        /// and memory readable, attribution on.
        pub attributable: u8,
        /// A trace event is enabled: it shows every repeat in full.
        pub tracing: u8,
        pub pad: [u8; 5],
    }
}

boundary_struct! {
    /// What the VM table knows of a VM ([`crate::vms::Vm`]) that the hooks use.
    pub struct VmC as "msrguard_vm" {
        /// 0: untracked.
        pub id: u32,
        pub profile: u8,
        pub pad: [u8; 3],
    }
}

/// A boundary struct as the header generator and the tests see it.
#[derive(Clone, Copy, Debug)]
pub struct Described {
    /// `struct NAME` in C.
    pub name: &'static str,
    /// The fields, in declaration order.
    pub fields: &'static [CField],
    /// `sizeof`.
    pub size: usize,
    /// `_Alignof`.
    pub align: usize,
}

/// Every boundary struct, for the header generator and the tests.
pub const ALL: [Described; 9] = [
    describe::<FactsC>(),
    describe::<AnswerC>(),
    describe::<AccessC>(),
    describe::<ImageC>(),
    describe::<RepeatC>(),
    describe::<OutcomeC>(),
    describe::<NamesC>(),
    describe::<EventFactsC>(),
    describe::<VmC>(),
];

const fn describe<T: CStruct>() -> Described {
    Described {
        name: T::C_NAME,
        fields: T::C_FIELDS,
        size: T::C_SIZE,
        align: T::C_ALIGN,
    }
}
