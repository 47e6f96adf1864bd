/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The real-mode guard cases and event checks shared by realmode_test and
 * realmode_vmx_test (realmode_guard.c). The record layout comes from
 * msrguard_abi.h, generated from rust/core/record.rs.
 */
#ifndef MSRGUARD_REALMODE_GUARD_H
#define MSRGUARD_REALMODE_GUARD_H

#include <asm/msr-index.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "processor.h"

#include "msrguard_kvm.h"
#include "realmode.h"

#define FEP_LEN 5 /* ud2; "kvm" */

enum { NO_EVENT = 0 };

struct guard_case {
	const char *name;
	const char *entry;	/* realmode_guest.S entry */
	unsigned int insn_offset; /* the RDMSR/WRMSR's offset from the entry */
	uint32_t msr;
	uint64_t value;		/* written by WRMSR */
	uint32_t want_fault;	/* 0 or GP_VECTOR */
	bool check_value;	/* compare what RDMSR returned */
	uint64_t want_value;
	uint8_t want_status;	/* MSRGUARD_STATUS_*, or NO_EVENT */
	uint8_t want_reason;
	const char *status_name;
};

struct suite {
	struct guest guest;
	int fd;
	uint64_t misc_enable;	/* the guest's MISC_ENABLE, read at start */
};

/* The most cases one of the tables below holds. */
#define GUARD_MAX_CASES 16
/* How many guard_exit_cases() and guard_emulator_cases() return. */
#define GUARD_EXIT_CASES 15
#define GUARD_EMULATOR_CASES 6

/*
 * The guard tables, run by both programs: the exit path (real mode; uses
 * s->misc_enable, the guest's MISC_ENABLE before any write), the emulator
 * path (forced-emulation prefix), both in real mode. Each fills @out and
 * returns how many cases it holds.
 */
size_t guard_exit_cases(const struct suite *s, struct guard_case *out);
size_t guard_emulator_cases(struct guard_case *out);

/* Runs @c; returns 0 on pass or fills @why. */
int run_guard_case(struct suite *s, const struct guard_case *c, char *why, size_t whylen);

int guest_access(struct suite *s, const char *entry, uint32_t msr, uint64_t value,
		 struct guest_result *res);

#endif
