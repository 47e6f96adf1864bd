/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the libkvm programs share on the host side (msrguard_kvm.c): which
 * msrguard build to load, and kvm_amd for nested guests. No kselftest
 * harness here: it may be included once per program only.
 */
#ifndef MSRGUARD_KVM_H
#define MSRGUARD_KVM_H

#include <stdbool.h>

#include "msrguard_host.h"

/*
 * In no range KVM knows: KVM itself answers it with #GP, and every policy
 * denies it (a new record for each value written).
 */
#define MSR_UNKNOWN	0x4b564dffu

/* PAT's value at reset (SDM "IA32_PAT MSR"), which KVM gives a new vCPU. */
#define PAT_RESET	0x0007040600070406ull
/* A PAT value the guard tables write and read back (entry 1 changed). */
#define PAT_WRITTEN	0x0007040600070106ull

/*
 * The records of a flood of vetoed WRMSRs of MSR_UNKNOWN (the storm, the
 * fuzz): its events = access records + their repeats + the events the drop
 * reports name.
 */
struct flood_count {
	uint64_t records, repeats, reports, reported_drops;
};

/*
 * Counts @r into @c: 0, or -1 with @why filled if @r is neither a drop
 * report nor an access record of the flood (this process's vetoed WRMSR of
 * MSR_UNKNOWN) of the current ABI.
 */
int flood_count_add(struct flood_count *c, const struct msrguard_record *r, char *why,
		    size_t len);

/* Which msrguard build a test loads (environment: MSRGUARD_KO, MSRGUARD_TESTPOLICY_KO). */
enum policy { POLICY_DEFAULT, POLICY_TEST, POLICY_NONE };

/* Loads build @p with @params, unloading a stale msrguard first: 0 or -errno. */
int msrguard_load(enum policy p, const char *params);

/*
 * The same, but keeps the loaded msrguard if it is what this would load:
 * the instance msrguard_load_or_reuse() itself loaded (same build, same
 * load parameters, same code address and build ID) with every parameter's
 * value unchanged since. Loading and unloading take seconds under TCG and
 * were most of the guard tests' time; a test that must start from a fresh
 * module uses msrguard_load(). MSRGUARD_FRESH_LOAD=1 makes this reload
 * always.
 */
int msrguard_load_or_reuse(enum policy p, const char *params);

/*
 * A test counts kernel log lines from a mark of its own (log_mark()): the
 * log is a ring, lines from before the test may leave it while the test
 * runs, and an earlier test may have logged the same text. log_lines():
 * how many lines since the last mark contain @text, or -1.
 */
void log_mark(void);
int log_lines(const char *text);

/* Whether this runs under QEMU's TCG (CPUID hypervisor leaf). */
bool under_tcg(void);

/*
 * kvm_amd for nested guests: nested=1, and under QEMU 7.2's TCG without
 * nested paging (its NPT emulation resumes L2 in L1's state; the storm and
 * the distro guests reload the same way). 0 or -errno.
 */
int kvm_for_nested(void);

/* Runs @vcpu until its guest code ends with GUEST_DONE; anything else fails the test. */
void run_until_done(struct kvm_vcpu *vcpu);
/* Runs @vcpu to its next GUEST_SYNC and returns its argument; anything else fails the test. */
uint64_t run_to_sync(struct kvm_vcpu *vcpu);

/*
 * The vector a new guest sees for WRMSR UCODE_WRITE: 0 without msrguard
 * (KVM accepts it), GP_VECTOR with any of its policies.
 */
int ucode_write_vector(void);

#endif
