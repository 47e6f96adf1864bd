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

/* Implemented in Rust. All are bounded and safe in atomic context. */
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
bool msrguard_rust_repeat(void *guard, const struct msrguard_repeat *repeat);
bool msrguard_rust_repeat_image(void *guard, const struct msrguard_repeat *repeat,
				struct msrguard_access *access);
void msrguard_rust_record(void *guard, const struct msrguard_access *access,
			  struct msrguard_outcome *outcome);
void msrguard_rust_name(const struct msrguard_access *access, struct msrguard_names *names);
bool msrguard_rust_may_pass_through(u32 msr, bool is_write);
/*
 * Searches guest memory, through @read, for the PE image holding @pc
 * (rust/core/pe.rs); fills @out if one is found. Process context: @read may sleep.
 */
bool msrguard_rust_find_image(u64 pc, u32 max_pages,
			      bool (*read)(void *ctx, u64 va, u8 *buf, u32 len), void *ctx,
			      struct msrguard_image *out);

/* hooks.c, called by Rust. */
int msrguard_hooks_init(void *guard);
void msrguard_hooks_exit(void);
/* hooks.c, called by the parameters: arms what audit mode needs. */
int msrguard_hooks_set_audit(bool audit);

/* hooks.c: queues @a's record, trace event and log line. */
void msrguard_record_now(const struct msrguard_access *a);

struct kvm_vcpu;
/* hooks.c: whether this thread is inside KVM_RUN of @vcpu. */
bool msrguard_in_vcpu_run(struct kvm_vcpu *vcpu);

/*
 * image.c: records @a once its image fields are known (true), or
 * leaves that to the caller (false), with @a's fields filled on a cache hit.
 * Only for an access of a guest with paging on and a Pc, made inside its
 * thread's KVM_RUN of @vcpu (the caller checks).
 */
bool msrguard_image_defer(struct kvm_vcpu *vcpu, struct msrguard_access *a);

/*
 * verify.c: 0 if @functions of @module (hooked) have no compiler
 * clone and every guest entry point reaches them; else logs what differs.
 */
int msrguard_verify_hooks(const char *module, const char *const *functions, unsigned int nr);

/* verify.c: where @module's function @name starts (0: no such function). */
unsigned long msrguard_function_address(const char *module, const char *name);

/* params.c. */
bool msrguard_param_audit(void);
bool msrguard_param_locked(void);

/* trace.c. */
void msrguard_report(const struct msrguard_access *a, const struct msrguard_outcome *o);

#endif
