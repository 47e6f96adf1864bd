/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guard cases and event checks shared by msrguard_test and
 * msrguard_vmx_test (guard.c). The record layout comes from msrguard_abi.h,
 * generated from rust/core/record.rs.
 */
#ifndef MSRGUARD_GUARD_H
#define MSRGUARD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msrguard_abi.h"
#include "vm.h"

#define MSR_IA32_UCODE_WRITE		0x00000079
#define MSR_IA32_CR_PAT			0x00000277
#define MSR_IA32_APICBASE		0x0000001b
#define MSR_IA32_MISC_ENABLE		0x000001a0
#define MSR_IA32_POWER_CTL		0x000001fc
#define MSR_IA32_LASTBRANCHFROMIP	0x000001db
#define MSR_IA32_PEBS_ENABLE		0x000003f1
#define MSR_IA32_RTIT_CTL		0x00000570
#define MSR_IA32_DS_AREA		0x00000600
#define MSR_FS_BASE			0xc0000100
/* In no architectural range KVM knows: KVM injects #GP on its own. */
#define MSR_UNKNOWN			0x4b564dffu

#define PAT_RESET		0x0007040600070406ull
#define MISC_ENABLE_LIMIT_CPUID	(1ull << 22)
#define MISC_ENABLE_TURBO_DIS	(1ull << 38)

#define GP_VECTOR 13
#define FEP_LEN 5 /* ud2; "kvm" */

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

enum { NO_EVENT = 0 };

struct guard_case {
	const char *name;
	const char *entry;	/* guest.S entry */
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
	struct vm vm;
	int fd;
	bool have_vm;
	uint64_t misc_enable;	/* the guest's MISC_ENABLE, read at start */
	uint8_t want_mode;	/* MSRGUARD_MODE_* events must carry; 0 = real */
};

/* The most cases one of the tables below holds. */
#define GUARD_MAX_CASES 16
/* How many guard_exit_cases() and guard_emulator_cases() return. */
#define GUARD_EXIT_CASES 15
#define GUARD_EMULATOR_CASES 6

/*
 * The guard tables, run by both programs: the exit path (real mode; uses
 * s->misc_enable, the guest's MISC_ENABLE before any write), the emulator
 * path (forced-emulation prefix) and long mode. Each fills @out and
 * returns how many cases it holds.
 */
size_t guard_exit_cases(const struct suite *s, struct guard_case *out);
size_t guard_emulator_cases(struct guard_case *out);
size_t guard_long_mode_cases(struct guard_case *out);

/* Runs @c; returns 0 on pass or fills @why. */
int run_guard_case(struct suite *s, const struct guard_case *c, char *why, size_t whylen);

int guest_access(struct suite *s, const char *entry, uint32_t msr, uint64_t value,
		 struct guest_result *res);

/* Whether kvm.force_emulation_prefix is on. */
bool fep_enabled(void);

#endif
