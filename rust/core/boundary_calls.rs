// SPDX-License-Identifier: GPL-2.0

//! The functions the module's C side (`rust/module/kvm/`) and its Rust side
//! call each other by, and the few one C file calls in another, declared
//! once. `msrguard-c-header boundary` prints their C prototypes into
//! `msrguard_boundary.h`, which every C file includes (so the C compiler
//! checks each C definition and call against it); the module declares the
//! C-implemented ones Rust calls from the same list ([`c_side`]) and checks
//! at compile time that each Rust implementation has the declared type
//! (built with `--cfg msrguard_module`). The C spellings are derived from
//! the Rust types, the callback's too.

#[cfg(not(msrguard_module))]
use core::ffi::c_char;
use core::ffi::{
    c_int,
    c_void, //
};
#[cfg(not(msrguard_module))]
use core::fmt::{
    self,
    Write, //
};
use core::marker::{
    PhantomData,
    PhantomPinned, //
};

#[cfg(not(msrguard_module))]
use crate::boundary::CStruct;
use crate::boundary::{
    AccessC,
    AnswerC,
    EventFactsC,
    FactsC,
    ImageC,
    NamesC,
    OutcomeC,
    RepeatC,
    VmC, //
};

/// `struct kvm`: only passed by pointer (neither `Send`, `Sync` nor
/// `Unpin`: Rust never holds one).
#[repr(C)]
pub struct Kvm {
    _opaque: [u8; 0],
    _kernel_owned: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct kvm_vcpu`: only passed by pointer, like [`Kvm`].
#[repr(C)]
pub struct KvmVcpu {
    _opaque: [u8; 0],
    _kernel_owned: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `unsigned long` in a C-internal prototype (Rust's `c_ulong` is `u64`
/// here, which C spells differently).
#[cfg(not(msrguard_module))]
pub struct UnsignedLong;

#[cfg(not(msrguard_module))]
/// A type a pointer may point to, as C names it.
pub trait CPointee {
    /// The C type (`struct NAME`, `void`, `char`).
    fn c_name(w: &mut dyn Write) -> fmt::Result;
}

#[cfg(not(msrguard_module))]
impl<T: CStruct> CPointee for T {
    fn c_name(w: &mut dyn Write) -> fmt::Result {
        write!(w, "struct {}", T::C_NAME)
    }
}

#[cfg(not(msrguard_module))]
macro_rules! c_pointee {
    ($($ty:ty => $c:literal),* $(,)?) => {
        $(
            impl CPointee for $ty {
                fn c_name(w: &mut dyn Write) -> fmt::Result {
                    w.write_str($c)
                }
            }
        )*
    };
}

#[cfg(not(msrguard_module))]
/// The C spelling of a parameter or return type, with its name.
pub trait CDecl {
    /// Writes a declaration of `name` (empty for a return type).
    fn c_decl(w: &mut dyn Write, name: &str) -> fmt::Result;
}

#[cfg(not(msrguard_module))]
macro_rules! c_scalar {
    ($($ty:ty => $c:literal),* $(,)?) => {
        $(
            impl CDecl for $ty {
                fn c_decl(w: &mut dyn Write, name: &str) -> fmt::Result {
                    w.write_str($c)?;
                    if !name.is_empty() {
                        write!(w, " {name}")?;
                    }
                    Ok(())
                }
            }
        )*
    };
}

#[cfg(not(msrguard_module))]
c_scalar! {
    () => "void",
    bool => "bool",
    u8 => "u8",
    u32 => "u32",
    u64 => "u64",
    c_int => "int",
    UnsignedLong => "unsigned long",
}

#[cfg(not(msrguard_module))]
impl<T: CPointee> CDecl for *const T {
    fn c_decl(w: &mut dyn Write, name: &str) -> fmt::Result {
        w.write_str("const ")?;
        T::c_name(w)?;
        write!(w, " *{name}")
    }
}

#[cfg(not(msrguard_module))]
impl<T: CPointee> CDecl for *mut T {
    fn c_decl(w: &mut dyn Write, name: &str) -> fmt::Result {
        T::c_name(w)?;
        write!(w, " *{name}")
    }
}

#[cfg(not(msrguard_module))]
impl CDecl for *const *const c_char {
    fn c_decl(w: &mut dyn Write, name: &str) -> fmt::Result {
        write!(w, "const char *const *{name}")
    }
}

/// How C reads guest memory for the PE search: copies `len` bytes at guest
/// virtual address `va` into `buf`, false if it cannot.
pub type GuestReadFn = unsafe extern "C" fn(*mut c_void, u64, *mut u8, u32) -> bool;

#[cfg(not(msrguard_module))]
impl<R: CDecl, A: CDecl, B: CDecl, C: CDecl, D: CDecl> CDecl
    for unsafe extern "C" fn(A, B, C, D) -> R
{
    fn c_decl(w: &mut dyn Write, name: &str) -> fmt::Result {
        R::c_decl(w, "")?;
        write!(w, " (*{name})(")?;
        write_args(
            w,
            &[
                |w| A::c_decl(w, ""),
                |w| B::c_decl(w, ""),
                |w| C::c_decl(w, ""),
                |w| D::c_decl(w, ""),
            ],
        )
    }
}
#[cfg(not(msrguard_module))]
/// Which side implements a function, and who calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Rust (`rust/module/`); C calls it.
    Rust,
    /// C (`rust/module/kvm/`); Rust calls it.
    C,
    /// C; only another C file calls it (hooks.c when it arms, and
    /// guest_memory.c for the vendor module's reference).
    CInternal,
}

#[cfg(not(msrguard_module))]
/// A function crossing the boundary, as the header generator sees it.
#[derive(Clone, Copy)]
pub struct CFunction {
    /// Its name.
    pub name: &'static str,
    /// Who implements it.
    pub side: Side,
    /// Its documentation, line by line.
    pub doc: &'static [&'static str],
    /// Writes its C prototype (without the `;`).
    pub prototype: fn(&mut dyn Write) -> fmt::Result,
}

macro_rules! boundary_calls {
    (
        rust {
            $(
                $(#[doc = $rdoc:literal])*
                [$rmod:ident] fn $rname:ident($($rarg:ident: $rty:ty),* $(,)?) $(-> $rret:ty)?;
            )*
        }
        c {
            $(
                $(#[doc = $cdoc:literal])*
                fn $cname:ident($($carg:ident: $cty:ty),* $(,)?) $(-> $cret:ty)?;
            )*
        }
        c_internal {
            $(
                $(#[doc = $idoc:literal])*
                fn $iname:ident($($iarg:ident: $ity:ty),* $(,)?) $(-> $iret:ty)?;
            )*
        }
    ) => {
        /// The C-implemented functions Rust calls, declared to Rust.
        pub mod c_side {
            use super::*;

            extern "C" {
                $(
                    $(#[doc = $cdoc])*
                    pub fn $cname($($carg: $cty),*) $(-> $cret)?;
                )*
            }
        }

        // Each Rust implementation has the type C is told it has.
        #[cfg(msrguard_module)]
        const _: () = {
            $(
                let _: unsafe extern "C" fn($($rty),*) $(-> $rret)? = crate::$rmod::$rname;
            )*
        };

        /// Every function in the header: Rust's, then C's Rust calls, then
        /// C's only C calls.
        #[cfg(not(msrguard_module))]
        pub const FUNCTIONS: &[CFunction] = &[
            $(boundary_calls!(@describe Side::Rust, $rname, [$($rdoc),*], [$($rarg: $rty),*], $($rret)?),)*
            $(boundary_calls!(@describe Side::C, $cname, [$($cdoc),*], [$($carg: $cty),*], $($cret)?),)*
            $(boundary_calls!(@describe Side::CInternal, $iname, [$($idoc),*], [$($iarg: $ity),*], $($iret)?),)*
        ];
    };
    (@describe $side:expr, $name:ident, [$($doc:literal),*], [$($arg:ident: $ty:ty),*], $($ret:ty)?) => {
        CFunction {
            name: stringify!($name),
            side: $side,
            doc: &[$($doc),*],
            prototype: |w| {
                <boundary_calls!(@ret $($ret)?) as CDecl>::c_decl(w, "")?;
                write!(w, " {}(", stringify!($name))?;
                let args: &[fn(&mut dyn Write) -> fmt::Result] = &[
                    $(|w| <$ty as CDecl>::c_decl(w, stringify!($arg))),*
                ];
                write_args(w, args)
            },
        }
    };
    (@ret) => { () };
    (@ret $ret:ty) => { $ret };
}

#[cfg(not(msrguard_module))]
fn write_args(w: &mut dyn Write, args: &[fn(&mut dyn Write) -> fmt::Result]) -> fmt::Result {
    if args.is_empty() {
        w.write_str("void")?;
    }
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        arg(w)?;
    }
    w.write_str(")")
}

#[cfg(not(msrguard_module))]
c_pointee! {
    c_void => "void",
    c_char => "char",
    bool => "bool",
    u8 => "u8",
    Kvm => "struct kvm",
    KvmVcpu => "struct kvm_vcpu",
}

boundary_calls! {
    rust {
        /// The hooks' first question for a guest read. Each of the hooks'
        /// questions down to msrguard_rust_may_pass_through() is bounded and
        /// safe in atomic context.
        [ffi] fn msrguard_rust_read_proceeds(msr: u32) -> bool;
        /// The same for a guest write. Atomic context.
        [ffi] fn msrguard_rust_write_proceeds(msr: u32) -> bool;
        /// Decides one access from the facts a hook gathered. Atomic context.
        [ffi] fn msrguard_rust_on_access(
            ctx: *const c_void,
            facts: *const FactsC,
            answer: *mut AnswerC,
        );
        /// The value a completed read returns to the guest. Atomic context.
        [ffi] fn msrguard_rust_completed_read_value(kvm_ret: c_int, data: u64) -> u64;
        /// What an access answered MSRGUARD_KVM_SUCCEED_IF_KVM_DOES returns
        /// once KVM's function returned kvm_ret, and whether a read's result
        /// is zeroed and the event recorded (guard::after_kvm). Atomic
        /// context.
        [ffi] fn msrguard_rust_after_kvm(
            kvm_ret: c_int,
            is_write: bool,
            zero_read: *mut bool,
            record: *mut bool,
        ) -> c_int;
        /// Whether KVM may stop intercepting msr for this kind of access,
        /// for a VM of profile profile. Atomic context.
        [ffi] fn msrguard_rust_may_pass_through(profile: u8, msr: u32, is_write: bool) -> bool;
        /// Events, with ctx the pointer given to msrguard_hooks_init(): a
        /// repeat of its VM's previous event is only counted (true). Atomic
        /// context.
        [ffi] fn msrguard_rust_repeat(ctx: *const c_void, repeat: *const RepeatC) -> bool;
        /// A new event is Rust's from here (rust/core/pipeline.rs): recorded
        /// now, or after its image is looked up in task work, which calls
        /// msrguard_rust_run_chain(). Atomic context.
        [ffi] fn msrguard_rust_new_event(
            ctx: *const c_void,
            vcpu: *mut KvmVcpu,
            a: *mut AccessC,
            tracing: bool,
        );
        /// Process context, on the vCPU's thread: may sleep.
        [ffi] fn msrguard_rust_run_chain(
            ctx: *const c_void,
            vcpu: *mut KvmVcpu,
            head: u32,
            facts: *const EventFactsC,
        );
        /// KVM starts making a VM (kvm_mmu_init_vm) for the thread group
        /// vmm_pid, created by a task in the cgroup cgroup (its path on the
        /// unified hierarchy, len bytes, maybe truncated). Atomic context.
        [ffi] fn msrguard_rust_vm_created(
            ctx: *const c_void,
            kvm: *const Kvm,
            vmm_pid: u32,
            cgroup: *const u8,
            len: u32,
        );
        /// A VM was destroyed (kvm_arch_destroy_vm returned): its id is never
        /// used again. Atomic context.
        [ffi] fn msrguard_rust_vm_destroyed(ctx: *const c_void, kvm: *const Kvm);
        /// A VM's id (0 if untracked), assigned at creation, never reused,
        /// and its profile. Atomic context.
        [ffi] fn msrguard_rust_vm(ctx: *const c_void, kvm: *const Kvm, vm: *mut VmC);
        /// How many VMs the table tracks now.
        [vm_table] fn msrguard_rust_vms_tracked() -> u64;
        /// Guest writes of pinned MSRs left unchecked (no room for their
        /// vCPU's pinned values).
        [pin_table] fn msrguard_rust_pins_unchecked() -> u64;
        /// A recorded event's names, for its trace event and log line.
        [ffi] fn msrguard_rust_name(access: *const AccessC, names: *mut NamesC);
        /// MSRGUARD_COUNTER_* which of the image lookups.
        [lookups] fn msrguard_rust_image_counter(which: u8) -> u64;
        /// Searches guest memory, through read, for the PE image holding pc
        /// (rust/core/pe.rs); fills out if one is found. Process context:
        /// read may sleep.
        [image] fn msrguard_rust_find_image(
            pc: u64,
            max_pages: u32,
            read: GuestReadFn,
            ctx: *mut c_void,
            out: *mut ImageC,
        ) -> bool;
        /// The parameters' state (rust/core/mode.rs).
        [ffi] fn msrguard_rust_audit() -> bool;
        /// Whether lock is set.
        [ffi] fn msrguard_rust_locked() -> bool;
        /// The mode parameter's setter, serialized by the caller: 0, or
        /// -errno.
        [ffi] fn msrguard_rust_set_mode(audit: bool) -> c_int;
        /// The lock parameter's setter: 1 when the module is now locked, for
        /// the caller to pin it; 0, or -errno.
        [ffi] fn msrguard_rust_set_lock(lock: bool) -> c_int;
    }
    c {
        /// hooks.c: arms the KVM hooks, ctx given back to every event call.
        fn msrguard_hooks_init(ctx: *const c_void) -> c_int;
        /// hooks.c: disarms them.
        fn msrguard_hooks_exit();
        /// hooks.c: arms or disarms what audit mode needs.
        fn msrguard_hooks_set_audit(audit: bool) -> c_int;
        /// hooks.c: a VM's profile changed; no CPU may keep it cached.
        fn msrguard_hooks_vms_changed();
        /// hooks.c: a reference on kvm if it is still alive; the caller
        /// holds the VM table's lock, so the VM's destruction has not
        /// passed msrguard's hook and its memory is there. Atomic context.
        fn msrguard_kvm_get(kvm: *const Kvm) -> bool;
        /// hooks.c: has each vCPU of kvm recompute its MSR intercepts at
        /// its next entry, then drops msrguard_kvm_get()'s reference.
        /// Process context.
        fn msrguard_kvm_recalc_intercepts_put(kvm: *const Kvm);
        /// guest_memory.c: the facts of a new event of vcpu's thread.
        fn msrguard_kvm_event_facts(
            vcpu: *mut KvmVcpu,
            a: *const AccessC,
            tracing: bool,
            f: *mut EventFactsC,
        );
        /// guest_memory.c: queues task work on current that calls
        /// msrguard_rust_run_chain(ctx, vcpu, item), holding the module and
        /// vcpu's VM until it has run; false if it cannot. Only inside this
        /// thread's KVM_RUN of vcpu.
        fn msrguard_kvm_queue_work(ctx: *const c_void, vcpu: *mut KvmVcpu, item: u32) -> bool;
        /// guest_memory.c, process context: MSRGUARD_SEARCH_*, image filled
        /// if found.
        fn msrguard_kvm_search(
            vcpu: *mut KvmVcpu,
            a: *const AccessC,
            image: *mut ImageC,
        ) -> c_int;
        /// trace.c: the trace event and log line of a recorded event.
        fn msrguard_report(a: *const AccessC, o: *const OutcomeC);
    }
    c_internal {
        /// verify.c, called by hooks.c when it arms: 0 if functions of
        /// module (hooked) have no compiler clone and every guest entry
        /// point reaches them; else logs what differs.
        fn msrguard_verify_hooks(
            module: *const c_char,
            functions: *const *const c_char,
            nr: u32,
        ) -> c_int;
        /// verify.c: where module's function name starts (0: no such
        /// function).
        fn msrguard_function_address(module: *const c_char, name: *const c_char) -> UnsignedLong;
        /// hooks.c: a reference on the vendor module (kvm_amd or
        /// kvm_intel), held with every VM reference msrguard takes: a
        /// VM's last put destroys it through the vendor's code, and the
        /// VM's files, which pin the vendor, may close meanwhile. True
        /// when built in; false when it is not loaded or going. Atomic
        /// context.
        fn msrguard_vendor_get() -> bool;
        /// hooks.c: drops msrguard_vendor_get()'s reference.
        fn msrguard_vendor_put();
        /// verify.c: module's function name's ftrace call site, where its
        /// hook attaches by address (0: none, or not traceable). A filter
        /// by name reads every traceable function's name instead.
        fn msrguard_ftrace_site(module: *const c_char, name: *const c_char) -> UnsignedLong;
    }
}
