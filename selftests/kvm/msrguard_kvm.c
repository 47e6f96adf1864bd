// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <asm/msr-index.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_kvm.h"

int msrguard_load(enum policy p, const char *params)
{
	const char *ko = getenv(p == POLICY_TEST ? "MSRGUARD_TESTPOLICY_KO" : "MSRGUARD_KO");
	int ret;

	ret = unload_msrguard();
	if (ret && ret != -ENOENT)
		return ret;
	if (p == POLICY_NONE)
		return 0;
	if (!ko)
		return -EINVAL;
	return load_module_file(ko, params ? params : "");
}

bool under_tcg(void)
{
	u32 eax, sig[3];

	cpuid(0x40000000, &eax, &sig[0], &sig[1], &sig[2]);
	return !memcmp(sig, "TCGTCGTCGTCG", 12);
}

static bool param_is(const char *path, char want)
{
	FILE *f = fopen(path, "re");
	int c = 0;

	if (f) {
		c = fgetc(f);
		fclose(f);
	}
	return c == want;
}

int kvm_for_nested(void)
{
	if (access("/sys/module/kvm_amd", F_OK))
		return -ENODEV;
	if (param_is("/sys/module/kvm_amd/parameters/nested", 'Y') &&
	    !(under_tcg() && param_is("/sys/module/kvm_amd/parameters/npt", 'Y')))
		return 0;
	printf("# reloading kvm_amd with nested=1%s\n", under_tcg() ? " npt=0 (QEMU TCG)" : "");
	if (system(under_tcg() ? "modprobe -r kvm_amd && modprobe kvm_amd nested=1 npt=0" :
				 "modprobe -r kvm_amd && modprobe kvm_amd nested=1"))
		return -EBUSY;
	return 0;
}

void run_until_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
}

static void ucode_write_guest(void)
{
	GUEST_SYNC(wrmsr_safe(MSR_IA32_UCODE_WRITE, 0x1000));
	GUEST_DONE();
}

int ucode_write_vector(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	int vec = -1;

	vm = vm_create_with_one_vcpu(&vcpu, ucode_write_guest);
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	if (get_ucall(vcpu, &uc) == UCALL_SYNC)
		vec = uc.args[1];
	else if (uc.cmd == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	kvm_vm_free(vm);
	return vec;
}
