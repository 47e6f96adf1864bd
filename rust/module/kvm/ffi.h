/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The functions msrguard's C side (this directory: KVM hooks, guest memory,
 * parameters, trace) and its Rust side (rust/module/ffi.rs, image.rs) call
 * each other by. The structs they pass and the constants are generated
 * from the core crate (rust/core/boundary.rs, record.rs, guard.rs).
 */
#ifndef MSRGUARD_FFI_H
#define MSRGUARD_FFI_H

#include <linux/types.h>

#include "msrguard_abi.h"
#include "msrguard_boundary.h"

struct kvm;
struct kvm_vcpu;

/* Implemented in Rust (rust/module/ffi.rs, lookups.rs, image.rs). */

/* The hooks' questions: bounded and safe in atomic context. */
bool msrguard_rust_read_proceeds(u32 msr);
bool msrguard_rust_write_proceeds(u32 msr);
void msrguard_rust_on_access(const struct msrguard_facts *facts, struct msrguard_answer *answer);
u64 msrguard_rust_completed_read_value(int kvm_ret, u64 data);
/*
 * What an access answered MSRGUARD_KVM_SUCCEED_IF_KVM_DOES returns once
 * KVM's function returned @kvm_ret, and whether a read's result is zeroed
 * and the event recorded (guard::after_kvm).
 */
int msrguard_rust_after_kvm(int kvm_ret, bool is_write, bool *zero_read, bool *record);
bool msrguard_rust_may_pass_through(u32 msr, bool is_write);

/*
 * Events, with @ctx the pointer given to msrguard_hooks_init(). A repeat
 * of its VM's previous event is only counted (true); a new one is Rust's
 * from here (rust/core/pipeline.rs): recorded now, or after its image is
 * looked up in task work, which calls msrguard_rust_run_chain().
 */
bool msrguard_rust_repeat(const void *ctx, const struct msrguard_repeat *repeat);
void msrguard_rust_new_event(const void *ctx, struct kvm_vcpu *vcpu, struct msrguard_access *a,
			     bool tracing);
/* Process context, on the vCPU's thread: may sleep. */
void msrguard_rust_run_chain(const void *ctx, struct kvm_vcpu *vcpu, u32 head,
			     const struct msrguard_event_facts *facts);
/*
 * VMs, @kvm their struct kvm: created (kvm_arch_init_vm succeeded),
 * destroyed (kvm_arch_destroy_vm returned), and the id of one (0 if
 * untracked), assigned at creation and never reused; atomic context.
 */
void msrguard_rust_vm_created(const void *ctx, const struct kvm *kvm);
void msrguard_rust_vm_destroyed(const void *ctx, const struct kvm *kvm);
u32 msrguard_rust_vm_id(const void *ctx, const struct kvm *kvm);
/* How many VMs the table tracks now. */
u64 msrguard_rust_vms_tracked(void);
/* A recorded event's names, for its trace event and log line. */
void msrguard_rust_name(const struct msrguard_access *access, struct msrguard_names *names);
/* MSRGUARD_COUNTER_* @which of the image lookups. */
u64 msrguard_rust_image_counter(u8 which);
/*
 * Searches guest memory, through @read, for the PE image holding @pc
 * (rust/core/pe.rs); fills @out if one is found. Process context: @read may sleep.
 */
bool msrguard_rust_find_image(u64 pc, u32 max_pages,
			      bool (*read)(void *ctx, u64 va, u8 *buf, u32 len), void *ctx,
			      struct msrguard_image *out);

/*
 * The parameters' state and rules (rust/core/mode.rs), the setters
 * serialized by the caller: 0, or -errno; set_lock 1 when the module is
 * now locked, for the caller to pin it.
 */
bool msrguard_rust_audit(void);
bool msrguard_rust_locked(void);
int msrguard_rust_set_mode(bool audit);
int msrguard_rust_set_lock(bool lock);

/* Called by Rust: hooks.c. */
int msrguard_hooks_init(const void *ctx);
void msrguard_hooks_exit(void);
/* Arms or disarms what audit mode needs. */
int msrguard_hooks_set_audit(bool audit);

/* Called by Rust: guest_memory.c, for a new event of @vcpu's thread. */
void msrguard_kvm_event_facts(struct kvm_vcpu *vcpu, const struct msrguard_access *a,
			      bool tracing, struct msrguard_event_facts *f);
/*
 * Queues task work on current that calls msrguard_rust_run_chain(@ctx,
 * @vcpu, @item), holding the module and @vcpu's VM until it has run;
 * false if it cannot. Only inside this thread's KVM_RUN of @vcpu.
 */
bool msrguard_kvm_queue_work(const void *ctx, struct kvm_vcpu *vcpu, u32 item);
/* Process context: MSRGUARD_SEARCH_*, @image filled if found. */
int msrguard_kvm_search(struct kvm_vcpu *vcpu, const struct msrguard_access *a,
			struct msrguard_image *image);

/* Called by Rust: trace.c, the trace event and log line of a recorded event. */
void msrguard_report(const struct msrguard_access *a, const struct msrguard_outcome *o);

/*
 * verify.c, called by hooks.c when it arms: 0 if @functions of @module
 * (hooked) have no compiler clone and every guest entry point reaches
 * them; else logs what differs.
 */
int msrguard_verify_hooks(const char *module, const char *const *functions, unsigned int nr);

/* verify.c: where @module's function @name starts (0: no such function). */
unsigned long msrguard_function_address(const char *module, const char *name);

#endif
