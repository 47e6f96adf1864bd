/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between msrguard's C files (hooks, parameters, trace) and its
 * Rust crate. Each struct is mirrored by a `#[repr(C)]` type in rust/shim.rs;
 * both sides assert the same sizes, and the constants come from the generated
 * msrguard_abi.h (rust/record.rs, rust/guard.rs).
 */
#ifndef MSRGUARD_SHIM_H
#define MSRGUARD_SHIM_H

#include <linux/build_bug.h>
#include <linux/types.h>

/* Record and guard constants, generated from the Rust definitions. */
#include "msrguard_abi.h"

/* What a hook knows about one access (guard::Facts). */
struct msrguard_facts {
	u64 value;		/* value written; 0 for reads */
	u32 msr;
	u8 hook;		/* MSRGUARD_HOOK_* */
	u8 is_write;
	u8 host_initiated;
	u8 audit;
	u8 vmm_takes_filter_exits;
	u8 read_completion_armed;
	u8 pad[2];
};
static_assert(sizeof(struct msrguard_facts) == 24);

/* The guard's one answer (guard::Answer). */
struct msrguard_answer {
	u8 kvm;			/* MSRGUARD_KVM_* */
	u8 zero_read;
	u8 record;		/* MSRGUARD_RECORD_* */
	u8 status;		/* MSRGUARD_STATUS_*, when recorded */
	u8 reason;		/* MSRGUARD_REASON_*, when recorded */
};
static_assert(sizeof(struct msrguard_answer) == 5);

/* An access being recorded, filled by the hook that records it. */
struct msrguard_access {
	u64 value;		/* value written, or the value an audited read got */
	u64 pc;			/* guest RIP of the instruction; 0 if protected */
	u64 timestamp_ns;	/* CLOCK_REALTIME */
	u32 msr;
	u32 vcpu_id;
	u32 vmm_pid;
	u32 vm_id;		/* the VM's identifier (a keyed hash of struct kvm) */
	u8 is_write;
	u8 guest_cpl;
	u8 guest_mode;		/* MSRGUARD_MODE_* */
	u8 status;		/* MSRGUARD_STATUS_* */
	u8 reason;		/* MSRGUARD_REASON_* */
	u8 flags;		/* MSRGUARD_FLAG_* */
	u8 pad[2];
	char vmm_comm[16];
	/* The image holding pc (msrguard_image.c), or zeros and "". */
	u64 image_base;
	u32 image_checksum;
	u32 image_timestamp;
	char image_name[40];	/* NUL-terminated */
};
static_assert(sizeof(struct msrguard_access) == 120);

/* A PE image found in guest memory (pe::Image). */
struct msrguard_image {
	u64 base;
	u32 size;
	u32 checksum;
	u32 timestamp;
	char name[40];		/* NUL-terminated */
	u32 pad;
};
static_assert(sizeof(struct msrguard_image) == 64);

/* An access that may repeat its VM's previous one: what coalescing compares. */
struct msrguard_repeat {
	u64 value;
	u64 pc;
	u64 now_ns;		/* CLOCK_REALTIME_COARSE */
	u32 msr;
	u32 vm_id;
	u8 is_write;
	u8 status;		/* MSRGUARD_STATUS_* */
	u8 reason;		/* MSRGUARD_REASON_* */
	u8 pad[5];
};
static_assert(sizeof(struct msrguard_repeat) == 40);

/* What became of a recorded event, for the trace event and the log line. */
struct msrguard_outcome {
	u64 sequence;		/* of the record the event is in; 0 if dropped */
	u64 repeat;		/* that record's repeat count after this event */
	u8 queued;		/* a new record (not coalesced, not dropped) */
	u8 log;			/* the VM's log rate limit allows a line */
	u8 pad[6];
};
static_assert(sizeof(struct msrguard_outcome) == 24);

/*
 * A recorded event's names (Rust's), NUL-terminated: only looked up when a
 * trace event or a log line shows the event.
 */
struct msrguard_names {
	char status[16];
	char reason[16];
	char msr[40];
};
static_assert(sizeof(struct msrguard_names) == 72);

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
 * (rust/pe.rs); fills @out if one is found. Process context: @read may sleep.
 */
bool msrguard_rust_find_image(u64 pc, u32 max_pages,
			      bool (*read)(void *ctx, u64 va, u8 *buf, u32 len), void *ctx,
			      struct msrguard_image *out);

/* msrguard_hooks.c, called by Rust. */
int msrguard_hooks_init(void *guard);
void msrguard_hooks_exit(void);
/* msrguard_hooks.c, called by the parameters: arms what audit mode needs. */
int msrguard_hooks_set_audit(bool audit);

/* msrguard_hooks.c: queues @a's record, trace event and log line. */
void msrguard_record_now(const struct msrguard_access *a);

struct kvm_vcpu;
/* msrguard_hooks.c: whether this thread is inside KVM_RUN of @vcpu. */
bool msrguard_in_vcpu_run(struct kvm_vcpu *vcpu);

/*
 * msrguard_image.c: records @a once its image fields are known (true), or
 * leaves that to the caller (false), with @a's fields filled on a cache hit.
 * Only for an access of a guest with paging on and a Pc, made inside its
 * thread's KVM_RUN of @vcpu (the caller checks).
 */
bool msrguard_image_defer(struct kvm_vcpu *vcpu, struct msrguard_access *a);

/*
 * msrguard_verify.c: 0 if @functions of @module (hooked) have no compiler
 * clone and every guest entry point reaches them; else logs what differs.
 */
int msrguard_verify_hooks(const char *module, const char *const *functions, unsigned int nr);

/* msrguard_verify.c: where @module's function @name starts (0: no such function). */
unsigned long msrguard_function_address(const char *module, const char *name);

/* msrguard_params.c. */
bool msrguard_param_audit(void);
bool msrguard_param_locked(void);

/* msrguard_trace.c. */
void msrguard_report(const struct msrguard_access *a, const struct msrguard_outcome *o);

#endif
