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
};
static_assert(sizeof(struct msrguard_access) == 64);

/* A recorded event, as the trace event and the log line show it. */
struct msrguard_outcome {
	u64 sequence;		/* of the record the event is in; 0 if dropped */
	u64 repeat;		/* that record's repeat count after this event */
	u8 queued;		/* a new record (not coalesced, not dropped) */
	u8 log;			/* the VM's log rate limit allows a line */
	u8 pad[6];
	/* NUL-terminated names (Rust's), filled only if a trace or log shows them. */
	char status_name[16];
	char reason_name[16];
	char msr_name[40];
};
static_assert(sizeof(struct msrguard_outcome) == 96);

/* Implemented in Rust. All are bounded and safe in atomic context. */
bool msrguard_rust_proceeds_regardless(u32 msr, bool is_write);
struct msrguard_answer msrguard_rust_on_access(const struct msrguard_facts *facts);
u64 msrguard_rust_completed_read_value(int kvm_ret, u64 data);
void msrguard_rust_record(void *guard, const struct msrguard_access *access,
			  struct msrguard_outcome *outcome);
void msrguard_rust_name(const struct msrguard_access *access, struct msrguard_outcome *outcome);
bool msrguard_rust_may_pass_through(u32 msr, bool is_write);

/* msrguard_hooks.c, called by Rust. */
int msrguard_hooks_init(void *guard);
void msrguard_hooks_exit(void);
/* msrguard_hooks.c, called by the parameters: arms what audit mode needs. */
int msrguard_hooks_set_audit(bool audit);

/* msrguard_params.c. */
bool msrguard_param_audit(void);
bool msrguard_param_locked(void);

/* msrguard_trace.c. */
void msrguard_report(const struct msrguard_access *a, struct msrguard_outcome *o);

#endif
