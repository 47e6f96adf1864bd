/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The real-mode guard tests both realmode_test (TCG, SVM) and
 * realmode_vmx_test (Bochs, VMX) run, as static functions: kselftest.h
 * keeps its counters per file, so these report through the including
 * program's. Include after kselftest.h and realmode_guard.h.
 */
#ifndef MSRGUARD_REALMODE_SUITE_H
#define MSRGUARD_REALMODE_SUITE_H

#include <stdio.h>
#include <string.h>

/*
 * Prints a parameter of KVM's vendor module as a TAP comment: the KVM under
 * test (an earlier program in the same boot may have reloaded it).
 */
static void show_kvm_param(const char *module, const char *name)
{
	char path[128], buf[32] = "?";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", module, name);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			strcpy(buf, "?");
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	ksft_print_msg("%s %s=%s\n", module, name, buf);
}

static void report_case(int ret, const char *name, const char *why)
{
	if (ret)
		ksft_test_result_fail("%s: %s\n", name, why);
	else
		ksft_test_result_pass("%s\n", name);
}

/*
 * Without msrguard, KVM accepts what the guard cases show msrguard refusing:
 * @pat (RDMSR PAT), @ucode (WRMSR UCODE_WRITE), @fs (RDMSR FS_BASE) and
 * @misc (RDMSR MISC_ENABLE, whose value the cases need).
 */
static void report_baseline(struct suite *s, const struct guest_result *pat,
			    const struct guest_result *ucode, const struct guest_result *fs,
			    const struct guest_result *misc)
{
	s->misc_enable = misc->value;
	if (pat->fault_vector || pat->value != PAT_RESET || ucode->fault_vector ||
	    fs->fault_vector || misc->fault_vector)
		ksft_test_result_fail("baseline without msrguard: PAT %#llx/%u, UCODE_WRITE %u, FS_BASE %u, MISC_ENABLE %u\n",
				      (unsigned long long)pat->value, pat->fault_vector,
				      ucode->fault_vector, fs->fault_vector, misc->fault_vector);
	else
		ksft_test_result_pass("baseline without msrguard: KVM accepts WRMSR UCODE_WRITE, RDMSR FS_BASE, PAT reads %#llx\n",
				      (unsigned long long)pat->value);
}

/*
 * How both programs start: @baseline with KVM alone (an earlier program may
 * have left msrguard loaded) on a new real-mode guest in s->guest, then
 * msrguard (MSRGUARD_KO) loaded, its device open in s->fd, its trace event
 * on.
 */
static void suite_start(struct suite *s, void (*baseline)(struct suite *s))
{
	int ret = msrguard_load(POLICY_NONE, NULL);

	if (ret)
		ksft_exit_fail_msg("cannot unload msrguard: %s\n", strerror(-ret));
	guest_create(&s->guest);
	baseline(s);
	ret = msrguard_load(POLICY_DEFAULT, "");
	s->fd = ret ? -1 : open_device();
	if (s->fd < 0)
		ksft_exit_fail_msg("cannot load msrguard (MSRGUARD_KO) and open %s: %s\n",
				   DEVICE_PATH, strerror(ret ? -ret : errno));
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");
}

/* The guard cases on the exit path. */
static void test_guard_cases(struct suite *s)
{
	struct guard_case cases[GUARD_MAX_CASES];
	size_t i, n = guard_exit_cases(s, cases);
	char why[512];

	for (i = 0; i < n; i++)
		report_case(run_guard_case(s, &cases[i], why, sizeof(why)), cases[i].name, why);
}

/* The guard cases through KVM's instruction emulator (forced emulation). */
static void test_emulator_path(struct suite *s)
{
	struct guard_case cases[GUARD_MAX_CASES];
	size_t i, n = guard_emulator_cases(cases);
	char why[512];

	for (i = 0; i < n; i++) {
		if (!is_forced_emulation_enabled) {
			ksft_test_result_skip("%s: kvm.force_emulation_prefix is off\n", cases[i].name);
			continue;
		}
		report_case(run_guard_case(s, &cases[i], why, sizeof(why)), cases[i].name, why);
	}
}

#endif
