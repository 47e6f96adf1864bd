// SPDX-License-Identifier: GPL-2.0
/*
 * The guard tables in real mode, run inside the test VM as root by
 * selftests/kvm/run.sh (scripts/test.sh). TAP output through the kernel's
 * kselftest.h, and its exit status.
 *
 * Every guard case has a KVM guest do one access and checks what the guest
 * saw (#GP, value, success) and the exact event read back from
 * /dev/msrguard and from tracefs, with Pc equal to the instruction's
 * address. The record layout comes from msrguard_abi.h, generated from
 * rust/core/record.rs.
 *
 * Real mode only (events with mode=real and 16-bit Pcs; the same tables run
 * by realmode_vmx_test under Bochs), on the real-mode guest (realmode.c);
 * guard_test runs the guard table in long mode on every path.
 *
 * Usage: realmode_test    (the module in MSRGUARD_KO: selftests/kvm/run.sh)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kselftest.h"

#include "realmode_guard.h"
#include "realmode_suite.h"

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

int main(void)
{
	struct suite s = { .fd = -1 };

	ksft_print_header();
	/* baseline 1, the real-mode tables */
	ksft_set_plan(1 + GUARD_EXIT_CASES + GUARD_EMULATOR_CASES);

	show_kvm_param(kvm_vendor_module(), "npt");
	show_kvm_param(kvm_vendor_module(), "nested");
	suite_start(&s, test_baseline);

	test_guard_cases(&s);
	test_emulator_path(&s);
	guest_destroy(&s.guest);
	close(s.fd);
	if (unload_msrguard())
		ksft_print_msg("msrguard stays loaded: %s\n", strerror(errno));

	ksft_finished();
}
