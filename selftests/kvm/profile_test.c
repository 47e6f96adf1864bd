// SPDX-License-Identifier: GPL-2.0
/*
 * Per-VM profiles as KVM selftests, on the test build (its profiles:
 * default, hardened, and selftest, given to the VMs of a VMM in the cgroup
 * /msrguard-selftest/...; selftests/test-profile.toml: LSTAR pinned,
 * EFER.NXE set-only): a VM gets its profile when KVM creates it, by the
 * creating task's cgroup; root gives a running VM another
 * (MSRGUARD_IOC_SET_PROFILE); the listing (MSRGUARD_IOC_VM) and the VM's
 * records carry it. Under the selftest profile the guest's first LSTAR
 * write pins it, another value is vetoed with reason pinned, clearing
 * EFER.NXE with reason set-only; the VMM's writes move the pin (a reset,
 * a restore into a new VM); a default VM is unchanged; root's profile
 * pins what a running VM's vCPUs hold. INIT and an SMI's RSM keep the
 * pins and EFER.NXE; pins are L1's (an L2 writes its own values). A failed
 * VM creation leaves no entry. lock_test checks that lock=1 refuses a change.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "smm.h"
#include "svm_util.h"
#include "kselftest_harness.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"

#define CGROUP_ROOT	"/sys/fs/cgroup"
/* Under the selftest profile's prefix "/msrguard-selftest/". */
#define CGROUP_PARENT	CGROUP_ROOT "/msrguard-selftest"
#define CGROUP_IN	CGROUP_PARENT "/vmm"
/* Matches no prefix: a byte-wise prefix needs the trailing slash. */
#define CGROUP_OUT	CGROUP_ROOT "/msrguard-selftest2"

/* Two values a kernel could give LSTAR: the guest never uses SYSCALL. */
#define ENTRY_A	0xffffffff81a00000ull
#define ENTRY_B	0xffffffff8badc0deull

/* Moves this process into the cgroup @dir (created if needed). */
static int enter_cgroup(const char *dir)
{
	char path[256], pid[16];

	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_file(path, pid);
}

/* A vetoed WRMSR (UCODE_WRITE, which the test policy does not know) and its record. */
static void vetoed_write(struct __test_metadata *_metadata, struct kvm_vcpu *vcpu, int fd,
			 struct event *e)
{
	drain(fd);
	ASSERT_EQ(GP_VECTOR, access_in_guest(vcpu, MSR_IA32_UCODE_WRITE, true, 0x1000, NULL));
	ASSERT_EQ(1, next_event(fd, e));
	ASSERT_EQ(MSR_IA32_UCODE_WRITE, e->msr);
}

/* Moves this process into the selftest profile's cgroup (SKIP without cgroup2). */
#define ENTER_SELFTEST_CGROUP()								\
do {											\
	if (access(CGROUP_ROOT "/cgroup.procs", F_OK) &&				\
	    mount("cgroup2", CGROUP_ROOT, "cgroup2", 0, NULL))				\
		SKIP(return, "no cgroup2 hierarchy at " CGROUP_ROOT " and cannot mount one: %s", \
		     strerror(errno));							\
	ASSERT_EQ(0, mkdir(CGROUP_PARENT, 0755) && errno != EEXIST ? -errno : 0);	\
	ASSERT_EQ(0, enter_cgroup(CGROUP_IN));						\
} while (0)

FIXTURE(profile) {
	int fd;
	int hardened, selftest;
};

FIXTURE_SETUP(profile)
{
	self->fd = -1;
	ASSERT_EQ(0, msrguard_load_or_reuse(POLICY_TEST, ""))
		TH_LOG("cannot load msrguard's test build (MSRGUARD_TESTPOLICY_KO)");
	self->fd = open_device();
	ASSERT_LE(0, self->fd) TH_LOG("%s: %s", DEVICE_PATH, strerror(errno));
	ASSERT_EQ(0, profile_index(self->fd, "default"));
	self->hardened = profile_index(self->fd, "hardened");
	self->selftest = profile_index(self->fd, "selftest");
	ASSERT_LT(0, self->hardened) TH_LOG("the test build has no hardened profile");
	ASSERT_LT(0, self->selftest) TH_LOG("the test build has no selftest profile");
}

FIXTURE_TEARDOWN(profile)
{
	/* Back to the root cgroup, so that later programs' VMs are default. */
	enter_cgroup(CGROUP_ROOT);
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(profile, the_listing_names_every_profile_once_and_ends)
{
	struct msrguard_profile p = { .index = 100 };

	EXPECT_EQ(-1, ioctl(self->fd, MSRGUARD_IOC_PROFILE, &p));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_NE(self->hardened, self->selftest);
}

TEST_F(profile, a_vm_gets_the_profile_its_vmm_cgroup_says_when_created)
{
	struct kvm_vcpu *vcpu_in, *vcpu_out;
	struct kvm_vm *vm_in, *vm_out;
	struct msrguard_vm_info in, out;
	struct event e;

	ENTER_SELFTEST_CGROUP();
	vm_in = vm_create_with_one_vcpu(&vcpu_in, access_guest);
	ASSERT_EQ(0, enter_cgroup(CGROUP_OUT));
	vm_out = vm_create_with_one_vcpu(&vcpu_out, access_guest);

	ASSERT_TRUE(my_vm(self->fd, 0, &in));
	ASSERT_TRUE(my_vm(self->fd, in.vm_id, &out));
	/* Creation order: the first VM listed may be either. */
	if (in.profile != self->selftest) {
		struct msrguard_vm_info t = in;

		in = out;
		out = t;
	}
	EXPECT_EQ(self->selftest, in.profile);
	EXPECT_EQ(0, out.profile) TH_LOG("a VMM in %s got profile %u", CGROUP_OUT, out.profile);

	/* Each VM's records carry its own profile. */
	vetoed_write(_metadata, vcpu_in, self->fd, &e);
	EXPECT_EQ(in.vm_id, e.vm_id);
	EXPECT_EQ(self->selftest, e.profile);
	vetoed_write(_metadata, vcpu_out, self->fd, &e);
	EXPECT_EQ(out.vm_id, e.vm_id);
	EXPECT_EQ(0, e.profile);

	kvm_vm_free(vm_in);
	kvm_vm_free(vm_out);
}

/*
 * A profile's own entries decide their MSRs over the policy it is built
 * with: the test policy has no entry for KERNEL_GS_BASE, the selftest
 * profile allows it. A default VM's read is vetoed (unknown MSR); the
 * selftest VM's accesses are KVM's, without an event.
 */
TEST_F(profile, a_profiles_own_entry_opens_an_msr_the_policy_lacks)
{
	struct kvm_vcpu *vcpu_in, *vcpu_out;
	struct kvm_vm *vm_in, *vm_out;
	struct event e;

	ENTER_SELFTEST_CGROUP();
	vm_in = vm_create_with_one_vcpu(&vcpu_in, access_guest);
	ASSERT_EQ(0, enter_cgroup(CGROUP_OUT));
	vm_out = vm_create_with_one_vcpu(&vcpu_out, access_guest);
	drain(self->fd);

	EXPECT_EQ(GP_VECTOR, access_in_guest(vcpu_out, MSR_KERNEL_GS_BASE, false, 0, NULL));
	ASSERT_EQ(1, next_event(self->fd, &e));
	EXPECT_EQ(MSR_KERNEL_GS_BASE, e.msr);
	EXPECT_EQ(MSRGUARD_REASON_UNKNOWN_MSR, e.reason);
	EXPECT_EQ(0, e.profile);

	EXPECT_EQ(0, access_in_guest(vcpu_in, MSR_KERNEL_GS_BASE, true, ENTRY_B, NULL));
	EXPECT_EQ(0, access_in_guest(vcpu_in, MSR_KERNEL_GS_BASE, false, 0, NULL));
	EXPECT_EQ(ENTRY_B, access_read_value(vcpu_in));
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("an access the profile allows was recorded");

	kvm_vm_free(vm_in);
	kvm_vm_free(vm_out);
}

/*
 * KVM_CREATE_VM of a type KVM does not support fails in kvm_arch_init_vm,
 * and KVM frees that VM without destroying it: msrguard must make no
 * entry for it. More failures than the VM table has slots (1,024), as any
 * user of /dev/kvm may make, then a VM in the selftest cgroup: tracked,
 * with its profile.
 */
TEST_F(profile, failed_creations_leave_no_entry)
{
	uint64_t tracked = param_u64("vms_tracked");
	struct msrguard_vm_info v;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int kvm_fd, i;

	kvm_fd = open_kvm_dev_path_or_exit();
	for (i = 0; i < 1100; i++) {
		ASSERT_EQ(-1, ioctl(kvm_fd, KVM_CREATE_VM, 0x4d5247ul));
		ASSERT_EQ(EINVAL, errno);
	}
	close(kvm_fd);
	EXPECT_EQ(tracked, param_u64("vms_tracked"));

	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	ASSERT_TRUE(my_vm(self->fd, 0, &v)) TH_LOG("the VM made after the failures is untracked");
	EXPECT_EQ(self->selftest, v.profile);
	EXPECT_EQ(tracked + 1, param_u64("vms_tracked"));
	kvm_vm_free(vm);
}

TEST_F(profile, root_gives_a_running_vm_another_profile)
{
	struct msrguard_set_profile reserved = { .reserved = { 1 } };
	struct msrguard_vm_info v;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct event e;

	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	ASSERT_TRUE(my_vm(self->fd, 0, &v));
	EXPECT_EQ(0, v.profile);

	ASSERT_EQ(0, set_profile(self->fd, v.vm_id, self->hardened));
	ASSERT_TRUE(my_vm(self->fd, 0, &v));
	EXPECT_EQ(self->hardened, v.profile);
	vetoed_write(_metadata, vcpu, self->fd, &e);
	EXPECT_EQ(self->hardened, e.profile);

	/* No such profile, no such VM, a reserved byte set: refused, nothing changes. */
	EXPECT_EQ(-EINVAL, set_profile(self->fd, v.vm_id, 100));
	EXPECT_EQ(-ENOENT, set_profile(self->fd, 0, 0));
	EXPECT_EQ(-ENOENT, set_profile(self->fd, v.vm_id + 1000, 0));
	reserved.vm_id = v.vm_id;
	EXPECT_EQ(-1, ioctl(self->fd, MSRGUARD_IOC_SET_PROFILE, &reserved));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_TRUE(my_vm(self->fd, 0, &v));
	EXPECT_EQ(self->hardened, v.profile);

	kvm_vm_free(vm);
	/* Gone with its VM. */
	EXPECT_FALSE(my_vm(self->fd, 0, &v));
	EXPECT_EQ(-ENOENT, set_profile(self->fd, v.vm_id, 0));
}

/* The guest's LSTAR write; on a veto, its record must say pinned. */
static int lstar_write(struct __test_metadata *_metadata, struct kvm_vcpu *vcpu, int fd,
		       uint64_t value)
{
	struct event e;
	int vector;

	drain(fd);
	vector = access_in_guest(vcpu, MSR_LSTAR, true, value, NULL);
	if (vector == GP_VECTOR) {
		EXPECT_EQ(1, next_event(fd, &e));
		EXPECT_EQ(MSR_LSTAR, e.msr);
		EXPECT_EQ(value, e.value);
		EXPECT_EQ(MSRGUARD_REASON_PINNED, e.reason);
		EXPECT_EQ(MSRGUARD_STATUS_BLOCKED_GP, e.status);
	} else {
		EXPECT_EQ(0, next_event(fd, &e)) TH_LOG("an allowed LSTAR write recorded");
	}
	return vector;
}

TEST_F(profile, lstar_is_pinned_at_the_guests_first_write)
{
	struct kvm_vcpu *vcpu, *plain_vcpu;
	struct kvm_vm *vm, *plain;

	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	ASSERT_EQ(0, enter_cgroup(CGROUP_OUT));
	plain = vm_create_with_one_vcpu(&plain_vcpu, access_guest);

	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	EXPECT_EQ(GP_VECTOR, lstar_write(_metadata, vcpu, self->fd, ENTRY_B));
	EXPECT_EQ(ENTRY_A, vcpu_get_msr(vcpu, MSR_LSTAR));
	/* The default profile pins nothing. */
	EXPECT_EQ(0, lstar_write(_metadata, plain_vcpu, self->fd, ENTRY_A));
	EXPECT_EQ(0, lstar_write(_metadata, plain_vcpu, self->fd, ENTRY_B));

	kvm_vm_free(vm);
	kvm_vm_free(plain);
}

TEST_F(profile, the_vmms_writes_move_the_pin_and_a_restored_vm_keeps_it)
{
	struct kvm_vcpu *vcpu, *restored_vcpu;
	struct kvm_vm *vm, *restored;

	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));

	/* A VMM reset writes 0: the guest's next write pins again. */
	vcpu_set_msr(vcpu, MSR_LSTAR, 0);
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_B));
	EXPECT_EQ(GP_VECTOR, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));

	/*
	 * Saved and restored into a new VM, as a migration does
	 * (KVM_GET_MSRS, KVM_SET_MSRS): the restored value is pinned there.
	 */
	restored = vm_create_with_one_vcpu(&restored_vcpu, access_guest);
	vcpu_set_msr(restored_vcpu, MSR_LSTAR, vcpu_get_msr(vcpu, MSR_LSTAR));
	kvm_vm_free(vm);
	EXPECT_EQ(GP_VECTOR, lstar_write(_metadata, restored_vcpu, self->fd, ENTRY_A));
	EXPECT_EQ(0, lstar_write(_metadata, restored_vcpu, self->fd, ENTRY_B));
	kvm_vm_free(restored);
}

TEST_F(profile, efer_nxe_once_set_cannot_be_cleared)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t efer;
	struct event e;

	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	efer = vcpu_get_msr(vcpu, MSR_EFER);
	ASSERT_TRUE(efer & EFER_NX) TH_LOG("LIBKVM's guest runs without EFER.NXE: %#lx", efer);
	drain(self->fd);
	/* Writing it as it is passes; clearing NXE is vetoed. */
	EXPECT_EQ(0, access_in_guest(vcpu, MSR_EFER, true, efer, NULL));
	EXPECT_EQ(0, next_event(self->fd, &e));
	EXPECT_EQ(GP_VECTOR, access_in_guest(vcpu, MSR_EFER, true, efer & ~EFER_NX, NULL));
	ASSERT_EQ(1, next_event(self->fd, &e));
	EXPECT_EQ(MSR_EFER, e.msr);
	EXPECT_EQ(MSRGUARD_REASON_SET_ONLY, e.reason);
	EXPECT_EQ(efer, vcpu_get_msr(vcpu, MSR_EFER));
	kvm_vm_free(vm);
}

/*
 * Root's profile pins what the vCPU holds then, not what the guest writes
 * next: LSTAR, and SYSENTER_EIP, of which SVM keeps 32 bits for a guest
 * with AMD's CPUID (as this one's, on an AMD host): the guest writing the
 * whole value again passes, as Linux's own rewrite at a CPU's start must.
 */
TEST_F(profile, a_profile_given_by_root_pins_the_values_held)
{
	struct msrguard_vm_info v;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_B));
	EXPECT_EQ(0, access_in_guest(vcpu, MSR_IA32_SYSENTER_EIP, true, ENTRY_A, NULL));
	ASSERT_TRUE(my_vm(self->fd, 0, &v));
	ASSERT_EQ(0, set_profile(self->fd, v.vm_id, self->hardened));
	EXPECT_EQ(GP_VECTOR, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_B));
	EXPECT_EQ(ENTRY_B, vcpu_get_msr(vcpu, MSR_LSTAR));
	/*
	 * SYSENTER_EIP, which SVM (for this AMD-like guest) and VMX pass
	 * through in the default profile: its writes exit once the vCPU
	 * recomputed its intercepts for the new profile (the runs above).
	 */
	EXPECT_EQ(GP_VECTOR, access_in_guest(vcpu, MSR_IA32_SYSENTER_EIP, true, ENTRY_B, NULL));
	EXPECT_EQ(0, access_in_guest(vcpu, MSR_IA32_SYSENTER_EIP, true, ENTRY_A, NULL));
	/* A new high half alone: SVM drops it for this guest, VMX would keep it. */
	EXPECT_EQ(host_cpu_is_amd ? 0 : GP_VECTOR,
		  access_in_guest(vcpu, MSR_IA32_SYSENTER_EIP, true, (u32)ENTRY_A, NULL));
	/* Back to default: no pin. */
	ASSERT_EQ(0, set_profile(self->fd, v.vm_id, 0));
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	kvm_vm_free(vm);
}

/*
 * INIT keeps the pins (pins.rs): another vCPU of the guest may send INIT,
 * and a kernel that pinned LSTAR must not lose the pin to it. KVM takes a
 * latched INIT when asked for the vCPU's state (KVM_GET_MP_STATE), as an
 * INIT IPI's would be; the registers are then put back as they were (not
 * the MSRs: no LSTAR write).
 */
TEST_F(profile, init_keeps_the_pins)
{
	struct kvm_sregs sregs, after;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	vcpu_regs_get(vcpu, &regs);
	vcpu_sregs_get(vcpu, &sregs);
	vcpu_xcrs_get(vcpu, &xcrs);

	vcpu_events_get(vcpu, &events);
	events.flags = KVM_VCPUEVENT_VALID_SMM;
	events.smi.latched_init = 1;
	vcpu_events_set(vcpu, &events);
	vcpu_mp_state_get(vcpu, &mp);
	vcpu_sregs_get(vcpu, &after);
	ASSERT_EQ(0, after.cr0 & X86_CR0_PG) TH_LOG("no INIT: CR0 %#llx", after.cr0);

	vcpu_sregs_set(vcpu, &sregs);
	vcpu_xcrs_set(vcpu, &xcrs);
	vcpu_regs_set(vcpu, &regs);
	EXPECT_EQ(GP_VECTOR, lstar_write(_metadata, vcpu, self->fd, ENTRY_B));
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));
	kvm_vm_free(vm);
}

/* smm_test's handler: reports its stage on port 0xe, then RSM. */
#define SMRAM_GPA	0x1000000
#define SMM_PORT	0xe
static const u8 smi_handler[] = {
	0xb0, 0xfe,		/* mov $0xfe, %al */
	0xe4, SMM_PORT,		/* in $SMM_PORT, %al */
	0x0f, 0xaa,		/* rsm */
};

/*
 * SMM: RSM writes EFER back through KVM's MSR path, first 0 (out of long
 * mode), then the saved value; neither may be vetoed (a veto would
 * triple-fault the guest), and the pins and EFER.NXE hold afterwards.
 */
TEST_F(profile, an_smi_and_its_rsm_keep_efer_and_the_pins)
{
	struct kvm_vcpu_events events;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t efer;

	if (!kvm_has_cap(KVM_CAP_X86_SMM))
		SKIP(return, "KVM has no SMM here (KVM_CAP_X86_SMM)");
	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	setup_smram(vm, vcpu, SMRAM_GPA, smi_handler, sizeof(smi_handler));
	efer = vcpu_get_msr(vcpu, MSR_EFER);
	ASSERT_TRUE(efer & EFER_NX);
	EXPECT_EQ(0, lstar_write(_metadata, vcpu, self->fd, ENTRY_A));

	drain(self->fd);
	inject_smi(vcpu);
	vcpu_run(vcpu);
	ASSERT_EQ(KVM_EXIT_IO, vcpu->run->exit_reason);
	ASSERT_EQ(SMM_PORT, vcpu->run->io.port) TH_LOG("the SMI handler did not run");
	vcpu_events_get(vcpu, &events);
	EXPECT_TRUE(events.smi.smm);

	/* RSM, then the guest's next access: the pin holds, one event (its). */
	EXPECT_EQ(GP_VECTOR, lstar_write(_metadata, vcpu, self->fd, ENTRY_B));
	vcpu_events_get(vcpu, &events);
	EXPECT_FALSE(events.smi.smm);
	EXPECT_EQ(efer, vcpu_get_msr(vcpu, MSR_EFER));
	EXPECT_EQ(GP_VECTOR, access_in_guest(vcpu, MSR_EFER, true, efer & ~EFER_NX, NULL));
	kvm_vm_free(vm);
}

/*
 * Pins are L1's (pins.rs): an L2's write of its own LSTAR is not checked
 * against them, and L1's own write of another value is still vetoed.
 * What L1's LSTAR holds after its L2 ran is printed: SVM shares the
 * VMLOAD state between L1 and L2 (and L1 may VMLOAD), which is why the
 * hardened profile is for guests without nested virtualization
 * (admin-guide.rst).
 */
static void l2_writes_lstar(void)
{
	wrmsr(MSR_LSTAR, ENTRY_B);
	vmmcall();
}

static void l1_pins_lstar_then_runs_l2(struct svm_test_data *svm)
{
	u64 pc;

	GUEST_SYNC(wrmsr_safe_at(MSR_LSTAR, ENTRY_A, &pc, false));
	generic_svm_setup(svm, l2_writes_lstar);
	run_guest(svm->vmcb, svm->vmcb_gpa);
	GUEST_ASSERT_EQ(svm->vmcb->control.exit_code, SVM_EXIT_VMMCALL);
	GUEST_SYNC(rdmsr(MSR_LSTAR));
	GUEST_SYNC(wrmsr_safe_at(MSR_LSTAR, 0xffffffff8badf00dull, &pc, false));
	GUEST_DONE();
}

TEST_F(profile, pins_are_l1s_an_l2_writes_its_own_values)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t lstar;
	struct event e;
	gva_t svm_gva;

	/* Nested VMX runs under Bochs (nested_vmx_test); this is the SVM L1. */
	if (access("/sys/module/kvm_amd", F_OK))
		SKIP(return, "not an SVM host (kvm_amd not loaded)");
	ASSERT_EQ(0, kvm_for_nested()) TH_LOG("kvm_amd could not be reloaded for nested guests");
	if (!kvm_cpu_has(X86_FEATURE_SVM))
		SKIP(return, "no SVM for a guest hypervisor");
	ENTER_SELFTEST_CGROUP();
	vm = vm_create_with_one_vcpu(&vcpu, l1_pins_lstar_then_runs_l2);
	vcpu_alloc_svm(vm, &svm_gva);
	vcpu_args_set(vcpu, 1, svm_gva);
	drain(self->fd);

	EXPECT_EQ(0, run_to_sync(vcpu));
	/* L2's write, and the way back to L1: no veto, no event. */
	lstar = run_to_sync(vcpu);
	EXPECT_EQ(0, next_event(self->fd, &e));
	ksft_print_msg("L1's LSTAR after its L2 wrote %#llx: %#lx\n", ENTRY_B, lstar);
	EXPECT_EQ(GP_VECTOR, run_to_sync(vcpu));
	ASSERT_EQ(1, next_event(self->fd, &e));
	EXPECT_EQ(MSR_LSTAR, e.msr);
	EXPECT_EQ(MSRGUARD_REASON_PINNED, e.reason);
	EXPECT_EQ(0, e.flags & MSRGUARD_FLAG_NESTED);
	kvm_vm_free(vm);
}

/*
 * The shipped profiles, on the default build: tracing opens what the
 * default policy refuses for profiling VMs. The default answers a read of
 * the legacy LBR MSRs with 0 and an event (ignore, where KVM has them);
 * under tracing KVM answers, without an event.
 */
FIXTURE(shipped) {
	int fd;
};

FIXTURE_SETUP(shipped)
{
	self->fd = -1;
	ASSERT_EQ(0, msrguard_load_or_reuse(POLICY_DEFAULT, ""))
		TH_LOG("cannot load msrguard (MSRGUARD_KO)");
	self->fd = open_device();
	ASSERT_LE(0, self->fd) TH_LOG("%s: %s", DEVICE_PATH, strerror(errno));
}

FIXTURE_TEARDOWN(shipped)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(shipped, tracing_opens_what_the_default_refuses)
{
	int tracing = profile_index(self->fd, "tracing");
	struct msrguard_vm_info v;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct event e;

	ASSERT_LT(0, tracing) TH_LOG("the default build has no tracing profile");
	ASSERT_LT(0, profile_index(self->fd, "hardened"));
	vm = vm_create_with_one_vcpu(&vcpu, access_guest);
	drain(self->fd);
	EXPECT_EQ(0, access_in_guest(vcpu, MSR_IA32_LASTBRANCHFROMIP, false, 0, NULL));
	ASSERT_EQ(1, next_event(self->fd, &e));
	EXPECT_EQ(MSR_IA32_LASTBRANCHFROMIP, e.msr);
	EXPECT_EQ(MSRGUARD_STATUS_BLOCKED_IGNORED, e.status);

	ASSERT_TRUE(my_vm(self->fd, 0, &v));
	ASSERT_EQ(0, set_profile(self->fd, v.vm_id, tracing));
	drain(self->fd);
	EXPECT_EQ(0, access_in_guest(vcpu, MSR_IA32_LASTBRANCHFROMIP, false, 0, NULL));
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("a read the tracing profile allows was recorded");
	/* The floor holds in every profile: microcode loading stays vetoed. */
	EXPECT_EQ(GP_VECTOR, access_in_guest(vcpu, MSR_IA32_UCODE_WRITE, true, 0x1000, NULL));
	ASSERT_EQ(1, next_event(self->fd, &e));
	EXPECT_EQ(tracing, e.profile);
	/* By the policy's own entry, kept under the profile's. */
	EXPECT_EQ(MSRGUARD_REASON_WRITE_DENIED, e.reason);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
