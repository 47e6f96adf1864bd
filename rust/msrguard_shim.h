/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between msrguard's C shim and its Rust crate. Mirrored by
 * `#[repr(C)]` types in rust/shim.rs; keep the two in step.
 *
 * This is an in-module FFI, not an ABI: the record userspace reads is
 * defined once, in rust/record.rs (its constants reach C through the
 * generated msrguard_abi.h).
 */
#ifndef MSRGUARD_SHIM_H
#define MSRGUARD_SHIM_H

#include <linux/types.h>

/* Record layout constants, generated from rust/record.rs by the Makefile. */
#include "msrguard_abi.h"

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
	u8 guest_mode;		/* MSRGUARD_MODE_* */
	u8 audit;		/* mode=audit: report, never veto */
	char vmm_comm[16];
};

/* The policy's verdict on an access; reason 0 means no objection. */
struct msrguard_verdict {
	u8 action;		/* MSRGUARD_ACTION_* */
	u8 reason;		/* MSRGUARD_REASON_*, or 0 */
};

/* A recorded event, as the shim reports it in ftrace and the log. */
struct msrguard_outcome {
	u64 sequence;		/* event sequence number, when status != 0 */
	u8 status;		/* MSRGUARD_STATUS_*, 0 = nothing recorded */
	u8 pad[7];
	char status_name[16];	/* NUL-terminated names, from the Rust definitions */
	char reason_name[16];
	char msr_name[40];
};

/* Implemented in Rust. All are bounded and safe in atomic context. */
struct msrguard_verdict msrguard_rust_decide(u32 msr, bool is_write, u64 value);
void msrguard_rust_record(void *guard, const struct msrguard_access *access,
			  struct msrguard_verdict verdict, struct msrguard_outcome *outcome);
bool msrguard_rust_may_pass_through(u32 msr, bool is_write);

/* Implemented in C, called by Rust. */
int msrguard_shim_init(void *guard);
void msrguard_shim_exit(void);
bool msrguard_shim_audit(void);
bool msrguard_shim_locked(void);

#endif
