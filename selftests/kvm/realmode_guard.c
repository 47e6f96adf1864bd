// SPDX-License-Identifier: GPL-2.0
/*
 * The real-mode guard cases and the event checks shared by realmode_test
 * (TCG, SVM) and realmode_vmx_test (Bochs, VMX): a guest access, what the guest saw,
 * and the exact event on /dev/msrguard and in tracefs. No kselftest calls
 * here: kselftest.h keeps its counters per file, so each program reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "realmode_guard.h"

int guest_access(struct suite *s, const char *entry, uint32_t msr, uint64_t value,
		 struct guest_result *res)
{
	return guest_run(&s->guest, entry, msr, value, 1, res);
}

/* Runs @c; returns 0 on pass or fills @why. */
int run_guard_case(struct suite *s, const struct guard_case *c, char *why, size_t whylen)
{
	uint64_t halt_rip = guest_gpa(c->entry) + c->insn_offset + 3;
	uint64_t pc = guest_gpa(c->entry) + c->insn_offset;
	struct guest_result res;
	struct event e, extra;
	int ret;

	drain(s->fd);
	trace_clear();
	ret = guest_access(s, c->entry, c->msr, c->value, &res);
	if (ret) {
		snprintf(why, whylen, "KVM_RUN: %s", strerror(-ret));
		return -1;
	}
	if (res.exit_reason != KVM_EXIT_HLT || res.rip != halt_rip) {
		snprintf(why, whylen, "exit %u at rip %#llx, want HLT at %#llx", res.exit_reason,
			 (unsigned long long)res.rip, (unsigned long long)halt_rip);
		return -1;
	}
	if (res.fault_vector != c->want_fault) {
		snprintf(why, whylen, "guest saw vector %u, want %u", res.fault_vector, c->want_fault);
		return -1;
	}
	if (c->check_value && res.value != c->want_value) {
		snprintf(why, whylen, "guest read %#llx, want %#llx",
			 (unsigned long long)res.value, (unsigned long long)c->want_value);
		return -1;
	}

	ret = next_event(s->fd, &e);
	if (c->want_status == NO_EVENT) {
		if (ret != 0) {
			snprintf(why, whylen, "unexpected event (ret %d, msr %#x, status %u)", ret,
				 e.msr, e.status);
			return -1;
		}
		return 0;
	}
	if (ret != 1) {
		snprintf(why, whylen, "no event on %s (ret %d)", DEVICE_PATH, ret);
		return -1;
	}
	if (e.msr != c->msr || e.is_write != (c->entry == guest_wrmsr || c->entry == guest_wrmsr_fep) ||
	    e.status != c->want_status || e.reason != c->want_reason || e.pc != pc ||
	    e.value != (e.is_write ? c->value : 0) || e.pid != (uint32_t)getpid() ||
	    e.vcpu != 0 || e.mode != MSRGUARD_MODE_REAL) {
		snprintf(why, whylen,
			 "event msr=%#x write=%u status=%u reason=%u pc=%#llx value=%#llx pid=%u vcpu=%u mode=%u; "
			 "want msr=%#x status=%u reason=%u pc=%#llx value=%#llx pid=%u",
			 e.msr, e.is_write, e.status, e.reason, (unsigned long long)e.pc,
			 (unsigned long long)e.value, e.pid, e.vcpu, e.mode, c->msr, c->want_status,
			 c->want_reason, (unsigned long long)pc,
			 (unsigned long long)(e.is_write ? c->value : 0), getpid());
		return -1;
	}
	if (next_event(s->fd, &extra) != 0) {
		snprintf(why, whylen, "more than one event (second: msr %#x)", extra.msr);
		return -1;
	}
	return check_trace(&e, c->status_name, why, whylen);
}

size_t guard_exit_cases(const struct suite *s, struct guard_case *out)
{
	uint64_t inside = s->misc_enable | MSR_IA32_MISC_ENABLE_LIMIT_CPUID;
	uint64_t outside = s->misc_enable | MSR_IA32_MISC_ENABLE_TURBO_DISABLE;
	const struct guard_case cases[] = {
		{ "allowed read: RDMSR PAT returns KVM's value, no event", guest_rdmsr, 0,
		  MSR_IA32_CR_PAT, 0, 0, true, PAT_RESET, NO_EVENT, 0, NULL },
		{ "allowed write: WRMSR PAT succeeds, no event", guest_wrmsr, 0,
		  MSR_IA32_CR_PAT, PAT_WRITTEN, 0, false, 0, NO_EVENT, 0, NULL },
		{ "allowed write took effect: RDMSR PAT reads it back", guest_rdmsr, 0,
		  MSR_IA32_CR_PAT, 0, 0, true, PAT_WRITTEN, NO_EVENT, 0, NULL },
		{ "unknown MSR read: #GP and a blocked-gp unknown-msr event", guest_rdmsr, 0,
		  MSR_UNKNOWN, 0, GP_VECTOR, false, 0, MSRGUARD_STATUS_BLOCKED_GP,
		  MSRGUARD_REASON_UNKNOWN_MSR, "blocked-gp" },
		{ "unknown MSR write: #GP and an event with the value", guest_wrmsr, 0,
		  MSR_UNKNOWN, 0x1122334455667788ull, GP_VECTOR, false, 0,
		  MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_UNKNOWN_MSR, "blocked-gp" },
		{ "microcode trigger write (KVM accepts it): #GP and a write-denied event", guest_wrmsr, 0,
		  MSR_IA32_UCODE_WRITE, 0x1000, GP_VECTOR, false, 0, MSRGUARD_STATUS_BLOCKED_GP,
		  MSRGUARD_REASON_WRITE_DENIED, "blocked-gp" },
		{ "masked write inside the mask: MISC_ENABLE |= LIMIT_CPUID succeeds", guest_wrmsr, 0,
		  MSR_IA32_MISC_ENABLE, inside, 0, false, 0, NO_EVENT, 0, NULL },
		{ "masked write took effect: MISC_ENABLE reads it back", guest_rdmsr, 0,
		  MSR_IA32_MISC_ENABLE, 0, 0, true, inside, NO_EVENT, 0, NULL },
		{ "masked write outside the mask: MISC_ENABLE |= TURBO_DISABLE gets #GP, write-mask event",
		  guest_wrmsr, 0, MSR_IA32_MISC_ENABLE, outside, GP_VECTOR, false, 0,
		  MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_WRITE_MASK, "blocked-gp" },
		{ "ignore write: WRMSR POWER_CTL succeeds for the guest, blocked-ignored event",
		  guest_wrmsr, 0, MSR_IA32_POWER_CTL, 0x2, 0, false, 0,
		  MSRGUARD_STATUS_BLOCKED_IGNORED, MSRGUARD_REASON_WRITE_DENIED, "blocked-ignored" },
		{ "ignore dropped the write: RDMSR POWER_CTL still reads the old value 0", guest_rdmsr, 0,
		  MSR_IA32_POWER_CTL, 0, 0, true, 0, NO_EVENT, 0, NULL },
		{ "ignore read: RDMSR LASTBRANCHFROMIP returns 0, blocked-ignored event", guest_rdmsr, 0,
		  MSR_IA32_LASTBRANCHFROMIP, 0, 0, true, 0, MSRGUARD_STATUS_BLOCKED_IGNORED,
		  MSRGUARD_REASON_READ_DENIED, "blocked-ignored" },
		/*
		 * "ignore" reads of MSRs KVM refuses to this vCPU (no Intel PT,
		 * PEBS or DS here, on either vendor): KVM's #GP, no event. A
		 * guard only takes away.
		 */
		{ "ignore read KVM refuses: RDMSR RTIT_CTL gets KVM's #GP, no event", guest_rdmsr, 0,
		  MSR_IA32_RTIT_CTL, 0, GP_VECTOR, false, 0, NO_EVENT, 0, NULL },
		{ "ignore read KVM refuses: RDMSR PEBS_ENABLE gets KVM's #GP, no event", guest_rdmsr, 0,
		  MSR_IA32_PEBS_ENABLE, 0, GP_VECTOR, false, 0, NO_EVENT, 0, NULL },
		{ "ignore read KVM refuses: RDMSR DS_AREA gets KVM's #GP, no event", guest_rdmsr, 0,
		  MSR_IA32_DS_AREA, 0, GP_VECTOR, false, 0, NO_EVENT, 0, NULL },
	};
	_Static_assert(ARRAY_SIZE(cases) == GUARD_EXIT_CASES, "GUARD_EXIT_CASES is the count");

	memcpy(out, cases, sizeof(cases));
	return ARRAY_SIZE(cases);
}

size_t guard_emulator_cases(struct guard_case *out)
{
	const struct guard_case cases[] = {
		{ "emulator path: allowed RDMSR PAT via the forced-emulation prefix", guest_rdmsr_fep,
		  FEP_LEN, MSR_IA32_CR_PAT, 0, 0, true, PAT_WRITTEN, NO_EVENT, 0, NULL },
		{ "emulator path: unknown RDMSR gets #GP and an event", guest_rdmsr_fep, FEP_LEN,
		  MSR_UNKNOWN, 0, GP_VECTOR, false, 0, MSRGUARD_STATUS_BLOCKED_GP,
		  MSRGUARD_REASON_UNKNOWN_MSR, "blocked-gp" },
		{ "emulator path: microcode trigger WRMSR gets #GP and an event", guest_wrmsr_fep,
		  FEP_LEN, MSR_IA32_UCODE_WRITE, 0x2000, GP_VECTOR, false, 0,
		  MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_WRITE_DENIED, "blocked-gp" },
		{ "emulator path: ignore WRMSR POWER_CTL succeeds, blocked-ignored event",
		  guest_wrmsr_fep, FEP_LEN, MSR_IA32_POWER_CTL, 0x2, 0, false, 0,
		  MSRGUARD_STATUS_BLOCKED_IGNORED, MSRGUARD_REASON_WRITE_DENIED, "blocked-ignored" },
		{ "emulator path: ignore RDMSR LASTBRANCHFROMIP returns 0, blocked-ignored event",
		  guest_rdmsr_fep, FEP_LEN, MSR_IA32_LASTBRANCHFROMIP, 0, 0, true, 0,
		  MSRGUARD_STATUS_BLOCKED_IGNORED, MSRGUARD_REASON_READ_DENIED, "blocked-ignored" },
		{ "emulator path: ignore read KVM refuses: RDMSR RTIT_CTL gets KVM's #GP, no event",
		  guest_rdmsr_fep, FEP_LEN, MSR_IA32_RTIT_CTL, 0, GP_VECTOR, false, 0, NO_EVENT, 0,
		  NULL },
	};
	_Static_assert(ARRAY_SIZE(cases) == GUARD_EMULATOR_CASES, "GUARD_EMULATOR_CASES is the count");

	memcpy(out, cases, sizeof(cases));
	return ARRAY_SIZE(cases);
}
