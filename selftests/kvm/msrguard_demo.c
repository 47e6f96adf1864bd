// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard demo, run inside the test VM by scripts/demo.sh: a KVM guest
 * does a few MSR accesses, first without msrguard and then with it, and
 * prints what the guest saw each time.
 *
 * Usage: msrguard_demo MODULE.ko
 */
#include <asm/msr-index.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"

struct demo_access {
	const char *what;
	bool write;
	uint32_t msr;
	uint64_t value;
};

static const struct demo_access accesses[] = {
	{ "RDMSR IA32_APICBASE      ", false, MSR_IA32_APICBASE },
	{ "RDMSR IA32_CR_PAT        ", false, MSR_IA32_CR_PAT },
	{ "WRMSR IA32_UCODE_WRITE   ", true, MSR_IA32_UCODE_WRITE, 0x1000 },
	{ "WRMSR IA32_POWER_CTL     ", true, MSR_IA32_POWER_CTL, 0x2 },
	{ "RDMSR unknown 0x4b564dff ", false, MSR_UNKNOWN },
};

static void run_accesses(const char *title)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	size_t i;

	printf("\n== %s\n", title);
	/* LIBKVM ends the program with its reason if this fails. */
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	for (i = 0; i < ARRAY_SIZE(accesses); i++) {
		const struct demo_access *a = &accesses[i];
		int vector = access_in_guest(vcpu, a->msr, a->write, a->value, NULL);

		if (vector < 0)
			printf("   guest %s-> stopped (exit reason %u)\n", a->what,
			       vcpu->run->exit_reason);
		else if (vector == GP_VECTOR)
			printf("   guest %s-> #GP\n", a->what);
		else if (!a->write)
			printf("   guest %s-> read %#llx\n", a->what,
			       (unsigned long long)access_read_value(vcpu));
		else
			printf("   guest %s-> accepted (wrote %#llx)\n", a->what,
			       (unsigned long long)a->value);
	}
	kvm_vm_free(vm);
}

int main(int argc, char **argv)
{
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODULE.ko\n", argv[0]);
		return 2;
	}
	run_accesses("KVM alone");

	ret = load_module_file(argv[1], "");
	if (ret) {
		fprintf(stderr, "insmod %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	printf("\n(msrguard.ko loaded)\n");
	run_accesses("KVM with msrguard");
	return 0;
}
