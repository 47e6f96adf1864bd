// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's real-mode guard cases on Intel VMX: run by scripts/test-vmx.sh
 * inside Bochs (which emulates VMX with EPT), where kvm_intel is KVM. The
 * same tables as realmode_test (realmode_guard.c: exit path, emulator path;
 * long mode is guard_test's table, which test-vmx.sh runs there too), plus
 * what only VMX has: the guest RIP read from the VMCS, the
 * vmx_set_intercept_for_msr hook keeping a pass-through MSR intercepted.
 * Nested VMX (an L1 hypervisor, L2, MSR-load lists) is kvm/nested_vmx_test.
 * TAP output through the kernel's kselftest.h, and its exit status.
 *
 * Usage: realmode_vmx_test    (the modules in MSRGUARD_KO,
 * MSRGUARD_TESTPOLICY_KO). Without kvm_intel it skips.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest.h"

#include "realmode_guard.h"
#include "realmode_suite.h"

/* How many kvm:kvm_msr trace lines (KVM handled a guest RDMSR) name @msr. */
static int kvm_msr_reads(uint32_t msr)
{
	FILE *f = fopen(TRACE_DIR "/trace", "re");
	char line[512], key[48];
	int n = 0;

	if (!f)
		return -1;
	snprintf(key, sizeof(key), "msr_read %x ", msr);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "kvm_msr:") && strstr(line, key);
	fclose(f);
	return n;
}

/*
 * Without msrguard: KVM accepts what the guard cases show msrguard refusing,
 * and on VMX it passes FS_BASE through (no RDMSR exit, so no kvm_msr trace
 * line) while it intercepts PAT. This is what the pass-through case below
 * needs msrguard's intercept hook to change.
 */
static void test_baseline(struct suite *s)
{
	struct guest_result r1, r2, r3, r4;
	int fs_exits, pat_exits, ret;

	ret = write_file(TRACE_DIR "/events/kvm/kvm_msr/enable", "1");
	trace_clear();
	ret = ret ?: guest_access(s, guest_rdmsr, MSR_IA32_CR_PAT, 0, &r1);
	ret = ret ?: guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &r2);
	ret = ret ?: guest_access(s, guest_rdmsr, MSR_FS_BASE, 0, &r3);
	ret = ret ?: guest_access(s, guest_rdmsr, MSR_IA32_MISC_ENABLE, 0, &r4);
	fs_exits = kvm_msr_reads(MSR_FS_BASE);
	pat_exits = kvm_msr_reads(MSR_IA32_CR_PAT);
	write_file(TRACE_DIR "/events/kvm/kvm_msr/enable", "0");
	if (ret) {
		ksft_test_result_fail("baseline without msrguard: %s\n", strerror(-ret));
		ksft_test_result_fail("baseline: FS_BASE passed through (no run)\n");
		return;
	}
	report_baseline(s, &r1, &r2, &r3, &r4);
	if (fs_exits == 0 && pat_exits == 1)
		ksft_test_result_pass("baseline: VMX passes RDMSR FS_BASE through (no kvm_msr trace), RDMSR PAT exits (one)\n");
	else
		ksft_test_result_fail("baseline: kvm_msr trace lines: FS_BASE %d (want 0), PAT %d (want 1)\n",
				      fs_exits, pat_exits);
}

/* The hooks msrguard arms on a VMX host. */
static void test_hooks_armed(void)
{
	int get = ftrace_callbacks("kvm_get_msr_ignored_check");
	int set = ftrace_callbacks("kvm_set_msr_ignored_check");
	int vmx = ftrace_callbacks("vmx_set_intercept_for_msr");
	int svm = ftrace_callbacks("svm_set_intercept_for_msr");

	if (get == 1 && set == 1 && vmx == 1 && svm == 0)
		ksft_test_result_pass("hooks armed on kvm and kvm_intel: get/set decision points and vmx_set_intercept_for_msr\n");
	else
		ksft_test_result_fail("hooks: callbacks get %d set %d vmx_set_intercept_for_msr %d svm %d\n",
				      get, set, vmx, svm);
}

/*
 * VMX reads RIP lazily from the VMCS. Started at an entry two NOPs before
 * the RDMSR, the RIP KVM wrote last (the entry) is not the access's address:
 * only a Pc read from the VMCS (VMREAD GUEST_RIP) is.
 */
static void test_rip_from_vmcs(struct suite *s)
{
	const struct guard_case c = {
		"Pc from the VMCS: unknown RDMSR two NOPs past the entry, event Pc is the RDMSR's address",
		guest_rdmsr_after_nops, 2, MSR_UNKNOWN, 0, GP_VECTOR, false, 0,
		MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_UNKNOWN_MSR, "blocked-gp",
	};
	char why[512];

	report_case(run_guard_case(s, &c, why, sizeof(why)), c.name, why);
}


/*
 * The test policy denies FS_BASE, which VMX passes through (see the
 * baseline): the intercept hook keeps it intercepted, so the guest's read
 * exits and gets #GP with an event.
 */
static void test_passthrough_denied(void)
{
	const struct guard_case c = {
		"MSR VMX passes through (FS_BASE) but the policy denies: kept intercepted, #GP, event",
		guest_rdmsr, 0, MSR_FS_BASE, 0, GP_VECTOR, false, 0,
		MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_READ_DENIED, "blocked-gp",
	};
	struct suite s2 = { .fd = -1 };
	char why[512];
	int ret;

	ret = msrguard_load(POLICY_TEST, "");
	if (ret) {
		ksft_test_result_fail("%s: cannot load the test-policy build: %s\n", c.name,
				      strerror(-ret));
		ksft_test_result_skip("kept intercepts logged at unload (no test-policy module)\n");
		unload_msrguard();
		return;
	}
	guest_create(&s2.guest);
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");
	s2.fd = open_device();
	if (s2.fd < 0) {
		snprintf(why, sizeof(why), "open %s: %s", DEVICE_PATH, strerror(errno));
		ret = -1;
	} else {
		ret = run_guard_case(&s2, &c, why, sizeof(why));
		close(s2.fd);
	}
	guest_destroy(&s2.guest);
	report_case(ret, c.name, why);

	/*
	 * The unload line counts the hook's work: the vCPU above kept FS_BASE.
	 * The last such line is this module's.
	 */
	ret = unload_msrguard();
	if (!ret && !system("dmesg | grep 'msrguard: kept ' | tail -n 1 | grep -Eq 'kept [1-9][0-9]* MSR intercepts'"))
		ksft_test_result_pass("vmx_set_intercept_for_msr hook: the unload log counts kept intercepts\n");
	else
		ksft_test_result_fail("vmx_set_intercept_for_msr hook: rmmod %d, no 'kept N>0 MSR intercepts' line\n",
				      ret);
}

int main(void)
{
	struct guard_case cases[GUARD_MAX_CASES];
	struct suite s = { .fd = -1 };
	unsigned int plan;

	ksft_print_header();
	if (access("/sys/module/kvm_intel", F_OK))
		ksft_exit_skip("no kvm_intel (not a VMX host; scripts/test-vmx.sh runs this under Bochs)\n");
	/*
	 * baseline 2, hooks 1, the tables, RIP 1, rmmod 1, pass-through 2.
	 * Nested VMX: kvm/nested_vmx_test, run after this by test-vmx.sh.
	 */
	plan = 2 + 1 + guard_exit_cases(&s, cases) + 1 + guard_emulator_cases(cases) + 1 + 2;
	ksft_set_plan(plan);

	show_kvm_param("kvm_intel", "ept");
	show_kvm_param("kvm_intel", "unrestricted_guest");
	show_kvm_param("kvm_intel", "nested");
	suite_start(&s, test_baseline);

	test_hooks_armed();
	test_guard_cases(&s);
	test_rip_from_vmcs(&s);
	test_emulator_path(&s);

	close(s.fd);
	s.fd = -1;
	guest_destroy(&s.guest);
	if (unload_msrguard())
		ksft_test_result_fail("rmmod msrguard after the guard cases\n");
	else
		ksft_test_result_pass("rmmod msrguard after the guard cases\n");

	test_passthrough_denied();

	ksft_finished();
}
