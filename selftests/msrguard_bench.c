// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's in-VM benchmark: nanoseconds per guest RDMSR exit, without and
 * with msrguard loaded, in the same boot. Prints figures; asserts nothing.
 *
 * Usage: msrguard_bench MODULE.ko [EXITS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vm.h"

#define MSR_IA32_APICBASE	0x1b		/* allowed, always intercepted */
#define MSR_UNKNOWN		0x4b564dffu	/* blocked (#GP) */
#define ROUNDS 3

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Best of ROUNDS: ns per exit for @exits RDMSRs of @msr. */
static double ns_per_exit(struct vm *vm, uint32_t msr, uint32_t exits)
{
	struct guest_result res;
	double best = 0;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		double t0 = now_ns(), t;

		if (vm_run_entry(vm, guest_rdmsr_loop, msr, 0, exits, &res) ||
		    res.exit_reason != KVM_EXIT_HLT) {
			fprintf(stderr, "bench: guest did not halt\n");
			exit(1);
		}
		t = (now_ns() - t0) / exits;
		if (!i || t < best)
			best = t;
	}
	return best;
}

int main(int argc, char **argv)
{
	uint32_t exits = argc > 2 ? strtoul(argv[2], NULL, 0) : 3000;
	double allowed0, blocked0, allowed1, blocked1;
	struct vm vm;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s MODULE.ko [EXITS]\n", argv[0]);
		return 2;
	}
	if (load_kvm() || vm_create(&vm))
		return 1;
	allowed0 = ns_per_exit(&vm, MSR_IA32_APICBASE, exits);
	blocked0 = ns_per_exit(&vm, MSR_UNKNOWN, exits);

	ret = load_module_file(argv[1], "");
	if (ret) {
		fprintf(stderr, "insmod: %s\n", strerror(-ret));
		return 1;
	}
	allowed1 = ns_per_exit(&vm, MSR_IA32_APICBASE, exits);
	blocked1 = ns_per_exit(&vm, MSR_UNKNOWN, exits);
	unload_msrguard();
	vm_destroy(&vm);

	printf("# bench: guest RDMSR exits under TCG, %u exits, best of %d rounds\n", exits, ROUNDS);
	printf("# bench: allowed (APIC_BASE):  %8.0f ns/exit without msrguard, %8.0f with, ratio %.2f\n",
	       allowed0, allowed1, allowed1 / allowed0);
	printf("# bench: blocked (unknown MSR): %8.0f ns/exit without msrguard, %8.0f with, ratio %.2f\n",
	       blocked0, blocked1, blocked1 / blocked0);
	return 0;
}
