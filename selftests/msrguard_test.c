// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's VM test suite, run inside the test VM as root (see
 * scripts/test.sh). TAP output through the kernel's kselftest.h, and its
 * exit status (testing.rst: the steps' contract).
 *
 * Every guard case has a KVM guest do one access and checks what the guest
 * saw (#GP, value, success) and the exact event read back from
 * /dev/msrguard and from tracefs, with Pc equal to the instruction's
 * address. The record layout comes from msrguard_abi.h, generated from
 * rust/core/record.rs.
 *
 * What is left here needs this real-mode harness: the guard tables in real
 * mode (events with mode=real and 16-bit Pcs; the same tables run by
 * selftests/msrguard_vmx_test under Bochs). Everything else is in the
 * KVM-selftest suite in selftests/kvm/ (the guard table in long mode on
 * every path, nested guests, image attribution, device, module lifetime,
 * the tool, lock, storm, fuzz).
 *
 * Usage: msrguard_test MODULE.ko
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "guard.h"
#include "guard_suite.h"

static const char *module_path;

/* ---- Helpers ------------------------------------------------------------ */

static int load_module(const char *params)
{
	return load_module_file(module_path, params);
}

/* ---- Phases ------------------------------------------------------------- */

/* Without msrguard, KVM accepts what the guard cases show msrguard refusing. */
static void test_baseline(struct suite *s)
{
	struct guest_result r1, r2, r3, r4;
	int ret;

	ret = guest_access(s, guest_rdmsr, MSR_IA32_CR_PAT, 0, &r1) ||
	      guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &r2) ||
	      guest_access(s, guest_rdmsr, MSR_FS_BASE, 0, &r3) ||
	      guest_access(s, guest_rdmsr, MSR_IA32_MISC_ENABLE, 0, &r4);
	if (ret) {
		ksft_test_result_fail("baseline without msrguard: KVM_RUN failed\n");
		return;
	}
	report_baseline(s, &r1, &r2, &r3, &r4);
}

int main(int argc, char **argv)
{
	struct suite s = { .fd = -1 };
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODULE.ko\n", argv[0]);
		return 2;
	}
	module_path = argv[1];

	ksft_print_header();
	/* baseline 1, the real-mode tables */
	ksft_set_plan(1 + GUARD_EXIT_CASES + GUARD_EMULATOR_CASES);

	ret = load_kvm();
	if (!ret)
		ret = vm_create(&s.vm);
	if (ret)
		ksft_exit_fail_msg("no KVM guest inside the VM: %s\n", strerror(-ret));
	test_baseline(&s);

	ret = load_module("");
	s.fd = ret ? -1 : open_device();
	if (s.fd < 0)
		ksft_exit_fail_msg("cannot load msrguard.ko and open %s\n", DEVICE_PATH);
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");

	test_guard_cases(&s);
	test_emulator_path(&s);
	vm_destroy(&s.vm);
	close(s.fd);
	if (unload_msrguard())
		ksft_print_msg("msrguard stays loaded: %s\n", strerror(errno));

	ksft_finished();
}
