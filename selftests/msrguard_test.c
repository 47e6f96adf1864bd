// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's VM test suite, run inside the test VM as root (see
 * scripts/test.sh). TAP output through the kernel's kselftest.h; a final
 * "N passed, N failed" line for CI.
 *
 * Usage: msrguard_test MODULE.ko
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest.h"
#include "vm.h"

#define MSR_IA32_CR_PAT		0x00000277
#define MSR_IA32_APICBASE	0x0000001b
/* In no architectural range KVM knows: KVM injects #GP on its own. */
#define MSR_UNKNOWN		0x4b564dffu

#define GP_VECTOR 13
#define DEVICE_PATH "/dev/msrguard"

static const char *module_path;

static int load_module(const char *params)
{
	int fd = open(module_path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static int unload_module(void)
{
	return syscall(SYS_delete_module, "msrguard", O_NONBLOCK) ? -errno : 0;
}

static int load_kvm(void)
{
	return system("modprobe kvm_amd 2>/dev/null || modprobe kvm_intel") ? -ENODEV : 0;
}

static void test_module_load_unload(void)
{
	struct stat st;
	int ret;

	ret = load_module("");
	if (ret) {
		ksft_test_result_fail("insmod msrguard.ko: %s\n", strerror(-ret));
		ksft_test_result_skip("device node (module did not load)\n");
		ksft_test_result_skip("rmmod msrguard (module did not load)\n");
		return;
	}
	ksft_test_result_pass("insmod msrguard.ko\n");

	if (stat(DEVICE_PATH, &st))
		ksft_test_result_fail("%s while loaded: %s\n", DEVICE_PATH, strerror(errno));
	else if (!S_ISCHR(st.st_mode) || (st.st_mode & 07777) != 0600)
		ksft_test_result_fail("%s while loaded: mode %o, want char device 0600\n",
				      DEVICE_PATH, st.st_mode);
	else
		ksft_test_result_pass("%s is a 0600 char device while loaded\n", DEVICE_PATH);

	ret = unload_module();
	if (ret)
		ksft_test_result_fail("rmmod msrguard: %s\n", strerror(-ret));
	else if (!stat(DEVICE_PATH, &st) || errno != ENOENT)
		ksft_test_result_fail("%s still exists after rmmod\n", DEVICE_PATH);
	else
		ksft_test_result_pass("rmmod msrguard removes %s\n", DEVICE_PATH);
}

/* One guest MSR access and what the guest must see. */
struct msr_case {
	const char *name;
	const char *entry;	/* guest.S entry: guest_rdmsr, guest_wrmsr... */
	uint32_t msr;
	uint64_t value;		/* written by WRMSR */
	uint32_t want_fault;	/* 0 or GP_VECTOR */
	bool check_value;	/* compare what RDMSR returned with want_value */
	uint64_t want_value;
};

static const struct msr_case kvm_cases[] = {
	{ "guest RDMSR PAT reads KVM's reset value", guest_rdmsr,
	  MSR_IA32_CR_PAT, 0, 0, true, 0x0007040600070406ull },
	{ "guest RDMSR APIC_BASE reads BSP|enable|0xfee00000", guest_rdmsr,
	  MSR_IA32_APICBASE, 0, 0, true, 0xfee00900ull },
	{ "guest RDMSR of an MSR KVM does not know gets #GP", guest_rdmsr,
	  MSR_UNKNOWN, 0, GP_VECTOR, false, 0 },
	{ "guest WRMSR of an MSR KVM does not know gets #GP", guest_wrmsr,
	  MSR_UNKNOWN, 1, GP_VECTOR, false, 0 },
};

/* The guest stops at its HLT, after the access (or after the #GP skip). */
static uint64_t halt_rip(const char *entry)
{
	return guest_gpa(entry) + 3;
}

static void run_msr_case(struct vm *vm, const struct msr_case *c)
{
	struct guest_result res;
	int ret;

	ret = vm_run_entry(vm, c->entry, c->msr, c->value, 1, &res);
	if (ret) {
		ksft_test_result_fail("%s: KVM_RUN: %s\n", c->name, strerror(-ret));
		return;
	}
	if (res.exit_reason != KVM_EXIT_HLT || res.rip != halt_rip(c->entry)) {
		ksft_test_result_fail("%s: exit %u at rip %#llx, want HLT at %#llx\n",
				      c->name, res.exit_reason,
				      (unsigned long long)res.rip,
				      (unsigned long long)halt_rip(c->entry));
		return;
	}
	if (res.fault_vector != c->want_fault) {
		ksft_test_result_fail("%s: guest saw vector %u, want %u\n", c->name,
				      res.fault_vector, c->want_fault);
		return;
	}
	if (c->check_value && res.value != c->want_value) {
		ksft_test_result_fail("%s: guest read %#llx, want %#llx\n", c->name,
				      (unsigned long long)res.value,
				      (unsigned long long)c->want_value);
		return;
	}
	ksft_test_result_pass("%s\n", c->name);
}

static void test_kvm_guest(void)
{
	struct vm vm;
	size_t i;
	int ret;

	ret = load_kvm();
	if (!ret)
		ret = vm_create(&vm);
	if (ret) {
		for (i = 0; i < ARRAY_SIZE(kvm_cases); i++)
			ksft_test_result_fail("%s: no KVM guest (%s)\n", kvm_cases[i].name,
					      strerror(-ret));
		return;
	}
	for (i = 0; i < ARRAY_SIZE(kvm_cases); i++)
		run_msr_case(&vm, &kvm_cases[i]);
	vm_destroy(&vm);
}

int main(int argc, char **argv)
{
	int failed;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODULE.ko\n", argv[0]);
		return 2;
	}
	module_path = argv[1];

	ksft_print_header();
	ksft_set_plan(3 + ARRAY_SIZE(kvm_cases));

	test_module_load_unload();
	test_kvm_guest();

	ksft_print_cnts();
	failed = ksft_get_fail_cnt() + ksft_get_error_cnt();
	printf("%u passed, %u failed\n", ksft_get_pass_cnt(), failed);
	return failed ? KSFT_FAIL : KSFT_PASS;
}
