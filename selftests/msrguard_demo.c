// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard demo, run inside the test VM by scripts/demo.sh: a KVM guest
 * does a few MSR accesses, first without msrguard and then with it, and
 * prints what the guest saw each time.
 *
 * Usage: msrguard_demo MODULE.ko
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm.h"

struct demo_access {
	const char *what;
	const char *entry;
	uint32_t msr;
	uint64_t value;
};

static const struct demo_access accesses[] = {
	{ "RDMSR IA32_APICBASE      ", guest_rdmsr, 0x1b, 0 },
	{ "RDMSR IA32_CR_PAT        ", guest_rdmsr, 0x277, 0 },
	{ "WRMSR IA32_UCODE_WRITE   ", guest_wrmsr, 0x79, 0x1000 },
	{ "WRMSR IA32_POWER_CTL     ", guest_wrmsr, 0x1fc, 0x2 },
	{ "RDMSR unknown 0x4b564dff ", guest_rdmsr, 0x4b564dff, 0 },
};

static void run_accesses(const char *title)
{
	struct guest_result res;
	struct vm vm;
	size_t i;

	printf("\n== %s\n", title);
	if (vm_create(&vm)) {
		printf("   cannot create a KVM guest\n");
		exit(1);
	}
	for (i = 0; i < sizeof(accesses) / sizeof(accesses[0]); i++) {
		const struct demo_access *a = &accesses[i];

		if (vm_run_entry(&vm, a->entry, a->msr, a->value, 1, &res)) {
			printf("   guest %s-> KVM_RUN failed: %s\n", a->what, strerror(errno));
			continue;
		}
		if (res.fault_vector == 13)
			printf("   guest %s-> #GP\n", a->what);
		else if (a->entry == guest_rdmsr)
			printf("   guest %s-> read %#llx\n", a->what, (unsigned long long)res.value);
		else
			printf("   guest %s-> accepted (wrote %#llx)\n", a->what,
			       (unsigned long long)a->value);
	}
	vm_destroy(&vm);
}

int main(int argc, char **argv)
{
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODULE.ko\n", argv[0]);
		return 2;
	}
	if (load_kvm()) {
		fprintf(stderr, "no KVM in this VM\n");
		return 1;
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
