/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between msrguard's C shim and its Rust crate. Mirrored by
 * `#[repr(C)]` types in rust/shim.rs; keep the two in step.
 *
 * This is an in-module FFI, not an ABI: the record userspace reads is
 * defined once, in rust/record.rs.
 */
#ifndef MSRGUARD_SHIM_H
#define MSRGUARD_SHIM_H

#include <linux/types.h>

/* An access the guard is asked about, filled by the shim. */
struct msrguard_access {
	u64 value;		/* value written; 0 for reads */
	u64 pc;			/* guest RIP of the instruction */
	u64 timestamp_ns;	/* CLOCK_REALTIME */
	u32 msr;
	u32 vcpu_id;
	u32 vmm_pid;
	u8 is_write;
	u8 guest_cpl;
	u8 guest_mode;		/* record.rs GuestMode */
	u8 audit;		/* mode=audit: report, never veto */
	char vmm_comm[16];
};

/* What Rust decided, and what the shim reports in ftrace and the log. */
struct msrguard_outcome {
	u64 sequence;		/* event sequence number, when status != 0 */
	u8 action;		/* policy.rs Action to apply: 0 allow, 1 gp, 2 ignore */
	u8 status;		/* record.rs AccessStatus, 0 = no event */
	u8 reason;		/* record.rs Reason */
	u8 pad[5];
	char status_name[16];	/* NUL-terminated names, from the Rust definitions */
	char reason_name[16];
	char msr_name[40];
};

/* Implemented in Rust. Both are bounded and safe in atomic context. */
void msrguard_rust_check(void *guard, const struct msrguard_access *access,
			 struct msrguard_outcome *outcome);
bool msrguard_rust_may_pass_through(u32 msr, bool is_write);
bool msrguard_rust_vetoes(u32 msr, bool is_write, u64 value);

/* Implemented in C, called by Rust. */
int msrguard_shim_init(void *guard);
void msrguard_shim_exit(void);
bool msrguard_shim_audit(void);
bool msrguard_shim_locked(void);
u64 msrguard_shim_realtime_ns(void);

#endif
