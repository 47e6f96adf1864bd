// SPDX-License-Identifier: GPL-2.0
/*
 * A guest's MSR workload for the operator's rollout test
 * (selftests/operator_test.sh): a KVM guest does a fixed set of accesses
 * and one line per access says what the guest saw, so an audit run and an
 * enforcing run of the same workload can be compared. The MSRs are ones a
 * well-behaved guest touches and KVM handles, plus a microcode update
 * trigger, which `msrguard policy suggest` must never propose to allow.
 *
 * Usage: msrguard_workload    (kvm must be loadable; msrguard as the caller set it up)
 * Output: "<op> <msr> <value written or -> -> <gp | read VALUE | ok>" per access.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm.h"

struct workload_access {
	const char *entry;	/* guest_rdmsr or guest_wrmsr */
	uint32_t msr;
	uint64_t value;		/* written (WRMSR only) */
};

static const struct workload_access workload[] = {
	{ .entry = guest_rdmsr, .msr = 0x1b },		/* APIC_BASE */
	{ .entry = guest_rdmsr, .msr = 0x1a0 },		/* MISC_ENABLE */
	{ .entry = guest_wrmsr, .msr = 0xc0000102, .value = 0xffff888012345000ull },	/* KERNEL_GS_BASE, a value above 2^53 */
	{ .entry = guest_rdmsr, .msr = 0xc0000102 },
	{ .entry = guest_wrmsr, .msr = 0x79, .value = 0x1000 },	/* UCODE_WRITE */
};

int main(void)
{
	struct guest_result res;
	struct vm vm;
	size_t i;
	int bad = 0;

	if (load_kvm()) {
		fprintf(stderr, "msrguard_workload: cannot load kvm\n");
		return 1;
	}
	if (vm_create(&vm)) {
		fprintf(stderr, "msrguard_workload: cannot create a KVM guest\n");
		return 1;
	}
	for (i = 0; i < sizeof(workload) / sizeof(workload[0]); i++) {
		const struct workload_access *a = &workload[i];
		int is_write = a->entry == guest_wrmsr;

		printf("%s %#x ", is_write ? "wrmsr" : "rdmsr", a->msr);
		if (is_write)
			printf("%#llx -> ", (unsigned long long)a->value);
		else
			printf("- -> ");
		if (vm_run_entry(&vm, a->entry, a->msr, a->value, 1, &res)) {
			printf("KVM_RUN failed: %s\n", strerror(errno));
			bad = 1;
		} else if (res.fault_vector) {
			printf("%s\n", res.fault_vector == 13 ? "gp" : "fault");
		} else if (is_write) {
			printf("ok\n");
		} else {
			printf("read %#llx\n", (unsigned long long)res.value);
		}
	}
	vm_destroy(&vm);
	return bad;
}
