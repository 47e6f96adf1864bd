// SPDX-License-Identifier: GPL-2.0
/*
 * A guest's MSR workload for the operator's rollout test
 * (selftests/operator_test.sh): a KVM guest does a fixed set of accesses
 * and one line per access says what the guest saw, so an audit run and an
 * enforcing run of the same workload can be compared. The MSRs are ones a
 * well-behaved guest touches and KVM handles, plus a microcode update
 * trigger, which `msrguard policy suggest` must never propose to allow.
 *
 * Usage: msrguard_workload    (msrguard as the caller set it up)
 * Output: "<op> <msr> <value written or -> -> <gp | read VALUE | ok>" per access.
 */
#include <asm/msr-index.h>

#include <stdio.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"

struct workload_access {
	bool write;
	uint32_t msr;
	uint64_t value;		/* written (WRMSR only) */
};

static const struct workload_access workload[] = {
	{ .msr = MSR_IA32_APICBASE },
	{ .msr = MSR_IA32_MISC_ENABLE },
	/* A value above 2^53: the tool's JSON must keep it exact. */
	{ .write = true, .msr = MSR_KERNEL_GS_BASE, .value = 0xffff888012345000ull },
	{ .msr = MSR_KERNEL_GS_BASE },
	{ .write = true, .msr = MSR_IA32_UCODE_WRITE, .value = 0x1000 },
};

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int bad = 0;
	size_t i;

	/* LIBKVM ends the program with its reason if this fails. */
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	for (i = 0; i < ARRAY_SIZE(workload); i++) {
		const struct workload_access *a = &workload[i];
		int vector = access_in_guest(vcpu, a->msr, a->write, a->value, NULL);

		printf("%s %#x ", a->write ? "wrmsr" : "rdmsr", a->msr);
		if (a->write)
			printf("%#llx -> ", (unsigned long long)a->value);
		else
			printf("- -> ");
		if (vector < 0) {
			printf("stopped (exit reason %u)\n", vcpu->run->exit_reason);
			bad = 1;
		} else if (vector) {
			printf("%s\n", vector == GP_VECTOR ? "gp" : "fault");
		} else if (a->write) {
			printf("ok\n");
		} else {
			printf("read %#llx\n", (unsigned long long)access_read_value(vcpu));
		}
	}
	kvm_vm_free(vm);
	return bad;
}
