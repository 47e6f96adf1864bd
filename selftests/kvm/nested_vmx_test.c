// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard and nested Intel VMX, on the kernel tree's KVM selftest library
 * (vmx.h: vcpu_alloc_vmx, prepare_for_vmx_operation, load_vmcs,
 * prepare_vmcs). L1 is a guest hypervisor that runs an L2 with MSR bitmaps
 * on; KVM (L0) runs with kvm_intel nested=1. Run by scripts/test-vmx.sh
 * inside Bochs, which emulates VMX; on an SVM host every test skips.
 *
 * L1 starts as a QEMU guest's firmware does (SeaBIOS, OVMF): its own WRMSR
 * of FEATURE_CONTROL with the value QEMU gives the firmware (lock, VMXON
 * outside SMX, LMCE; fw_cfg etc/msr_feature_control), which the default
 * policy allows (write_mask) without an event; every test below checks
 * the exact events, so an event for that write fails it.
 *
 * Fixture nested_vmx (the default policy loaded):
 *   l2_access             L1's MSR bitmap is clear: L0 decides for L2. L2
 *                         reads PAT (allowed, no event) and writes the
 *                         microcode trigger (vetoed: #GP reaches L2, the
 *                         event has the nested flag and L2's Pc).
 *   l1_intercepts         L1's write bitmap has the microcode trigger: L1
 *                         gets EXIT_REASON_MSR_WRITE, msrguard records
 *                         nothing.
 *   entry_list_denied     VMLAUNCH with a VM-entry MSR-load list {PAT,
 *                         POWER_CTL, MISC_ENABLE | turbo off}: KVM loads
 *                         each through kvm_emulate_msr_write and so through
 *                         msrguard. POWER_CTL's write is dropped ("ignore"),
 *                         MISC_ENABLE's is refused ("gp", outside its write
 *                         mask): the VM-entry fails in L1 with
 *                         EXIT_REASON_MSR_LOAD_FAIL, the exit qualification
 *                         names entry 3, two nested events with L2's entry
 *                         RIP as Pc.
 *   entry_list_allowed    the list {PAT, POWER_CTL}: the entry succeeds,
 *                         L2 reads the PAT the list loaded and POWER_CTL
 *                         unchanged; one event (POWER_CTL ignored).
 *   feat_ctl              FEATURE_CONTROL from an L1 without VMX code: a
 *                         write with a SENTER enable (outside the mask) is
 *                         vetoed by msrguard (#GP, event); the firmware's
 *                         write then succeeds without an event; a write
 *                         after the lock gets #GP from KVM itself, without
 *                         an event.
 *   long_entry_list_events_in_order  an 80-entry VM-entry list of dropped
 *                         writes: 80 events, in the list's order.
 *   teardown_in_l2        L1's VM-exit MSR-load list holds POWER_CTL; the
 *                         VMM closes the VM's files while the vCPU is in
 *                         L2, so KVM loads the list during the VM's
 *                         destruction: one event, flagged outside-run, no
 *                         image fields, no kernel warning, and msrguard
 *                         unloads.
 *   teardown_in_l2_vmm_killed  the VMM killed instead: its memory is gone
 *                         first, KVM loads nothing; no event, no warning.
 *   without_msrguard.entry_list_denied  the denied list without msrguard:
 *                         KVM loads all three, L2 reads them back.
 *   without_msrguard.feat_ctl  the same writes without msrguard: the guest
 *                         sees the same (KVM refuses the SENTER bit too).
 *
 * MSR names from msr-index.h, exit reasons from asm/vmx.h, msrguard's
 * statuses and flags from the generated msrguard_abi.h.
 */
#include <asm/msr-index.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm_util.h"
#include "mce.h"
#include "processor.h"
#include "vmx.h"
#include "kselftest_harness.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"

#define PAT_WRITTEN		0x0007040600070106ull
#define LIST_MAX		3
/*
 * IA32_FEATURE_CONTROL bit 8, the first SENTER local function enable (SDM
 * vol. 4, "IA32_FEATURE_CONTROL"; msr-index.h has no name for it): outside
 * the default policy's write mask, and KVM never accepts it from a guest.
 */
#define FEAT_CTL_SENTER_LOCAL	BIT_ULL(8)
/* CPUID.1:EDX.MCA (the selftests' processor.h defines MCE, not MCA). */
#define X86_FEATURE_MCA_BIT	KVM_X86_CPU_FEATURE(0x1, 0, EDX, 14)

/* What L1 does (sync_global_to_guest). */
static struct {
	u64 feat_ctl;		/* what the firmware writes to FEATURE_CONTROL */
	u64 fc_write[3];	/* the feat_ctl test's three writes */
	bool l1_intercepts;	/* set the MSR's write bit in L1's bitmap */
	u64 list_gpa;		/* VM-entry MSR-load list, or 0 */
	u32 list_count;
	u64 exit_list_gpa;	/* one-entry VM-exit MSR-load list, or 0 */
	u32 read_msr[LIST_MAX];	/* what L2 reads back (0: nothing) */
} args;

/* What L1 and L2 saw (sync_global_from_guest). */
static struct {
	u8 pat_vector, ucode_vector;
	u64 pat_value;
	u64 ucode_pc;		/* L2's WRMSR */
	u8 read_vector[LIST_MAX];
	u64 read_value[LIST_MAX];
	u64 exit_reason, exit_qual, exit_rcx;
	/* The feat_ctl test's three writes: vector, Pc, FEATURE_CONTROL after. */
	u8 fc_vector[3];
	u64 fc_pc[3], fc_value[3];
} seen;

static void l2_access(void)
{
	seen.pat_vector = rdmsr_safe(MSR_IA32_CR_PAT, &seen.pat_value);
	seen.ucode_vector = wrmsr_safe_at(MSR_IA32_UCODE_WRITE, 0x1000, &seen.ucode_pc, false);
	vmcall();
}

/* L2 stops in L0's VMM, which destroys the VM with the vCPU in L2. */
static void l2_waits_for_teardown(void)
{
	GUEST_SYNC(1);
	vmcall();
}

static void l2_read_list(void)
{
	int i;

	for (i = 0; i < LIST_MAX; i++)
		if (args.read_msr[i])
			seen.read_vector[i] = rdmsr_safe(args.read_msr[i], &seen.read_value[i]);
	vmcall();
}

/*
 * What SeaBIOS' msr_feature_control_setup() and OVMF do with QEMU's value:
 * WRMSR, on a guest whose FEATURE_CONTROL is still 0 and unlocked. It must
 * not fault; prepare_for_vmx_operation() then finds VMXON enabled and
 * writes nothing.
 */
static void firmware_feat_ctl(void)
{
	GUEST_ASSERT_EQ(0, rdmsr(MSR_IA32_FEAT_CTL));
	GUEST_ASSERT_EQ(0, wrmsr_safe(MSR_IA32_FEAT_CTL, args.feat_ctl));
	GUEST_ASSERT_EQ(args.feat_ctl, rdmsr(MSR_IA32_FEAT_CTL));
}

static void l1_guest_code(struct vmx_pages *vmx)
{
	firmware_feat_ctl();
	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_vmcs(vmx));
	prepare_vmcs(vmx, args.exit_list_gpa ? l2_waits_for_teardown :
			  args.list_gpa ? l2_read_list : l2_access);
	/* MSR bitmaps on: L1 intercepts exactly the MSRs whose bit it sets. */
	GUEST_ASSERT(!vmwrite(CPU_BASED_VM_EXEC_CONTROL,
			      vmreadz(CPU_BASED_VM_EXEC_CONTROL) | CPU_BASED_USE_MSR_BITMAPS));
	/* Write bitmap for MSRs 0-0x1fff at byte 0x800. */
	if (args.l1_intercepts)
		__set_bit(0x800 * 8 + MSR_IA32_UCODE_WRITE, vmx->msr);
	if (args.list_gpa) {
		GUEST_ASSERT(!vmwrite(VM_ENTRY_MSR_LOAD_ADDR, args.list_gpa));
		GUEST_ASSERT(!vmwrite(VM_ENTRY_MSR_LOAD_COUNT, args.list_count));
	}
	if (args.exit_list_gpa) {
		GUEST_ASSERT(!vmwrite(VM_EXIT_MSR_LOAD_ADDR, args.exit_list_gpa));
		GUEST_ASSERT(!vmwrite(VM_EXIT_MSR_LOAD_COUNT, 1));
	}
	GUEST_ASSERT(!vmlaunch());
	seen.exit_reason = vmreadz(VM_EXIT_REASON);
	seen.exit_qual = vmreadz(EXIT_QUALIFICATION);
	/* L2's RCX (the MSR of an MSR exit), saved by vmlaunch(). */
	seen.exit_rcx = guest_regs.rcx;
	GUEST_DONE();
}

/*
 * FEATURE_CONTROL's writes (args.fc_write) in order. The values come from
 * args, not from locals: this leaf function's locals would sit in the red
 * zone below RSP (LIBKVM's guest code is built without -mno-red-zone),
 * which the #GP's exception frame overwrites.
 */
static void feat_ctl_guest_code(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		seen.fc_vector[i] = wrmsr_safe_at(MSR_IA32_FEAT_CTL, args.fc_write[i],
						  &seen.fc_pc[i], false);
		seen.fc_value[i] = rdmsr(MSR_IA32_FEAT_CTL);
	}
	GUEST_DONE();
}

/* ---- The host ------------------------------------------------------- */

static bool kvm_intel_nested(void)
{
	FILE *f = fopen("/sys/module/kvm_intel/parameters/nested", "re");
	int c = 0;

	if (f) {
		c = fgetc(f);
		fclose(f);
	}
	return c == 'Y' || c == '1';
}

/*
 * The machine-check capabilities QEMU gives a vCPU with "lmce=on":
 * KVM_X86_SETUP_MCE with 10 banks, MCG_CTL_P, MCG_SER_P and MCG_LMCE_P, as
 * far as KVM supports them (kvm_intel always offers LMCE).
 */
static void setup_mce_lmce(struct kvm_vm *vm, struct kvm_vcpu *vcpu)
{
	u64 supported = 0, mcg_cap = MCG_CTL_P | MCG_SER_P | MCG_LMCE_P | 10;

	kvm_ioctl(vm->kvm_fd, KVM_X86_GET_MCE_CAP_SUPPORTED, &supported);
	mcg_cap &= supported | MCG_CAP_BANKS_MASK;
	vcpu_ioctl(vcpu, KVM_X86_SETUP_MCE, &mcg_cap);
}

/*
 * The value QEMU gives the firmware (hw/i386/fw_cfg.c,
 * fw_cfg_build_feature_control), from the vCPU's CPUID and MCG_CAP: VMXON
 * outside SMX with VMX, LMCE with MCE, MCA and MCG_LMCE_P, SGX and SGX
 * launch control with theirs; the lock if any; 0 (nothing written) if none.
 */
static u64 firmware_value(struct kvm_vcpu *vcpu)
{
	u64 v = 0;

	if (vcpu_cpuid_has(vcpu, X86_FEATURE_VMX))
		v |= FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX;
	if (vcpu_cpuid_has(vcpu, X86_FEATURE_MCE) && vcpu_cpuid_has(vcpu, X86_FEATURE_MCA_BIT) &&
	    (vcpu_get_msr(vcpu, MSR_IA32_MCG_CAP) & MCG_LMCE_P))
		v |= FEAT_CTL_LMCE_ENABLED;
	if (vcpu_cpuid_has(vcpu, X86_FEATURE_SGX))
		v |= FEAT_CTL_SGX_ENABLED;
	if (vcpu_cpuid_has(vcpu, X86_FEATURE_SGX_LC))
		v |= FEAT_CTL_SGX_LC_ENABLED;
	return v ? v | FEAT_CTL_LOCKED : 0;
}

/*
 * A VM whose vCPU runs @guest_code, set up as QEMU sets up a vCPU with
 * "-cpu host,lmce=on"; args.feat_ctl is the firmware's value.
 */
static struct kvm_vm *firmware_vm_create(struct kvm_vcpu **vcpu, void *guest_code)
{
	struct kvm_vm *vm = vm_create_with_one_vcpu(vcpu, guest_code);

	setup_mce_lmce(vm, *vcpu);
	memset(&args, 0, sizeof(args));
	args.feat_ctl = firmware_value(*vcpu);
	return vm;
}

/* A VM whose vCPU runs L1; L1 enables VMX with its firmware's WRMSR. */
static struct kvm_vm *l1_create(struct kvm_vcpu **vcpu)
{
	struct kvm_vm *vm = firmware_vm_create(vcpu, l1_guest_code);
	gva_t vmx_gva;

	vcpu_alloc_vmx(vm, &vmx_gva);
	vcpu_args_set(*vcpu, 1, vmx_gva);
	return vm;
}

/* Runs L1 with args to the end, seen filled from the guest, and frees the VM. */
static void run_l1(struct kvm_vm *vm, struct kvm_vcpu *vcpu)
{
	sync_global_to_guest(vm, args);
	memset(&seen, 0, sizeof(seen));
	sync_global_to_guest(vm, seen);
	run_until_done(vcpu);
	sync_global_from_guest(vm, seen);
	kvm_vm_free(vm);
}

/*
 * Runs L1 (and its L2) to GUEST_DONE and frees the VM; @list: the VM-entry
 * MSR-load list (@count entries), or NULL. Returns L2's entry RIP.
 */
static u64 l1_run(struct __test_metadata *_metadata, struct kvm_vm *vm, struct kvm_vcpu *vcpu,
		  const struct vmx_msr_entry *list, u32 count, bool l1_intercepts)
{
	u32 i;

	/* args.feat_ctl is l1_create()'s. */
	args.l1_intercepts = l1_intercepts;
	if (list) {
		gva_t gva = vm_alloc_page(vm);

		memcpy(addr_gva2hva(vm, gva), list, count * sizeof(*list));
		args.list_gpa = addr_gva2gpa(vm, gva);
		args.list_count = count;
		for (i = 0; i < count; i++)
			args.read_msr[i] = list[i].index;
	}
	run_l1(vm, vcpu);
	/* As L1 set it: guest code is identity mapped. */
	return (u64)(list ? l2_read_list : l2_access);
}

/*
 * @e is exactly this write event, on /dev/msrguard and in tracefs; from L2
 * (flag nested) unless @l1.
 */
static void check_event(struct __test_metadata *_metadata, const struct event *e, u32 msr,
			u64 value, u8 status, u8 reason, u64 pc, bool l1)
{
	char why[512];

	EXPECT_EQ(msr, e->msr);
	EXPECT_EQ(1, e->is_write);
	EXPECT_EQ(value, e->value);
	EXPECT_EQ(status, e->status);
	EXPECT_EQ(reason, e->reason);
	EXPECT_EQ(pc, e->pc);
	EXPECT_EQ(l1 ? 0 : MSRGUARD_FLAG_NESTED, e->flags);
	EXPECT_EQ(MSRGUARD_MODE_LONG, e->mode);
	EXPECT_EQ((u32)getpid(), e->pid);
	EXPECT_EQ(0, check_trace(e, status_name(status), why, sizeof(why))) TH_LOG("%s", why);
}

/* The next event is exactly this one. */
static void expect_event(struct __test_metadata *_metadata, int fd, u32 msr, u64 value,
			 u8 status, u8 reason, u64 pc, bool l1)
{
	struct event e;

	ASSERT_EQ(1, next_event(fd, &e)) TH_LOG("no event for msr %#x", msr);
	check_event(_metadata, &e, msr, value, status, reason, pc, l1);
}

FIXTURE(nested_vmx) { int fd; bool loaded; };

/* @p: the msrguard build to load (POLICY_NONE: none). */
static void nested_setup(struct __test_metadata *_metadata, int *fd, bool *loaded,
			 enum policy p)
{
	*fd = -1;
	*loaded = false;
	if (access("/sys/module/kvm_intel", F_OK))
		SKIP(return, "no kvm_intel (not a VMX host; scripts/test-vmx.sh runs this under Bochs)");
	if (!kvm_intel_nested())
		SKIP(return, "kvm_intel nested=0");
	if (!kvm_cpu_has(X86_FEATURE_VMX))
		SKIP(return, "KVM offers its guests no VMX");
	ASSERT_EQ(0, msrguard_load(p, NULL))
		TH_LOG("cannot load msrguard (MSRGUARD_KO in the environment)");
	if (p == POLICY_NONE)
		return;
	*loaded = true;
	*fd = open_device();
	ASSERT_LE(0, *fd) TH_LOG("%s: %s", DEVICE_PATH, strerror(errno));
	ASSERT_EQ(0, write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1"));
	drain(*fd);
	trace_clear();
}

FIXTURE_SETUP(nested_vmx) { nested_setup(_metadata, &self->fd, &self->loaded, POLICY_DEFAULT); }
FIXTURE_TEARDOWN(nested_vmx)
{
	if (self->fd >= 0)
		close(self->fd);
	if (self->loaded)
		unload_msrguard();
}

TEST_F_TIMEOUT(nested_vmx, l2_access, 300)
{
	struct event e;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l1_create(&vcpu);

	l1_run(_metadata, vm, vcpu, NULL, 0, false);
	ASSERT_EQ(EXIT_REASON_VMCALL, seen.exit_reason)
		TH_LOG("L2 ended with exit reason %#lx, not its VMCALL", seen.exit_reason);
	EXPECT_EQ(0, seen.pat_vector);
	EXPECT_EQ(GP_VECTOR, seen.ucode_vector);
	expect_event(_metadata, self->fd, MSR_IA32_UCODE_WRITE, 0x1000,
		     MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_WRITE_DENIED, seen.ucode_pc, false);
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("a second event: msr %#x", e.msr);
}

TEST_F_TIMEOUT(nested_vmx, l1_intercepts, 300)
{
	struct event e;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l1_create(&vcpu);

	l1_run(_metadata, vm, vcpu, NULL, 0, true);
	/* L2's PAT read went to L0 (bit clear), its WRMSR to L1. */
	EXPECT_EQ(EXIT_REASON_MSR_WRITE, seen.exit_reason);
	EXPECT_EQ(MSR_IA32_UCODE_WRITE, (u32)seen.exit_rcx);
	EXPECT_EQ(0, seen.pat_vector);
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("event: msr %#x", e.msr);
}

/*
 * {PAT, POWER_CTL, MISC_ENABLE | turbo off}: allowed, "ignore", outside the
 * default policy's write mask; MISC_ENABLE from the vCPU's own.
 */
static void denied_list(struct kvm_vcpu *vcpu, struct vmx_msr_entry list[LIST_MAX])
{
	memset(list, 0, LIST_MAX * sizeof(*list));
	list[0].index = MSR_IA32_CR_PAT;
	list[0].value = PAT_WRITTEN;
	list[1].index = MSR_IA32_POWER_CTL;
	list[1].value = 0x2;
	list[2].index = MSR_IA32_MISC_ENABLE;
	list[2].value = vcpu_get_msr(vcpu, MSR_IA32_MISC_ENABLE) |
			MSR_IA32_MISC_ENABLE_TURBO_DISABLE;
}

TEST_F_TIMEOUT(nested_vmx, entry_list_denied, 300)
{
	struct vmx_msr_entry list[LIST_MAX];
	struct event e, ev[2], *power, *misc;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l1_create(&vcpu);
	u64 l2_rip;

	denied_list(vcpu, list);
	l2_rip = l1_run(_metadata, vm, vcpu, list, LIST_MAX, false);
	EXPECT_EQ(EXIT_REASON_MSR_LOAD_FAIL | EXIT_REASON_FAILED_VMENTRY, seen.exit_reason)
		TH_LOG("exit reason %#lx", seen.exit_reason);
	/* The qualification is the failing entry's number, from 1. */
	EXPECT_EQ(3, seen.exit_qual);
	/*
	 * Two events, in the list's order: each waits for its image lookup (a
	 * paging guest), and rust/core/pipeline.rs keeps a thread's waiting records
	 * in order although task_work runs last first.
	 */
	ASSERT_EQ(1, next_event(self->fd, &ev[0]));
	ASSERT_EQ(1, next_event(self->fd, &ev[1])) TH_LOG("one event only: msr %#x", ev[0].msr);
	power = &ev[0];
	misc = &ev[1];
	EXPECT_LT(power->seq, misc->seq);
	check_event(_metadata, power, MSR_IA32_POWER_CTL, list[1].value,
		    MSRGUARD_STATUS_BLOCKED_IGNORED, MSRGUARD_REASON_WRITE_DENIED, l2_rip, false);
	check_event(_metadata, misc, MSR_IA32_MISC_ENABLE, list[2].value,
		    MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_WRITE_MASK, l2_rip, false);
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("a third event: msr %#x", e.msr);
}

TEST_F_TIMEOUT(nested_vmx, entry_list_allowed, 300)
{
	struct vmx_msr_entry list[LIST_MAX];
	struct event e;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l1_create(&vcpu);
	u64 l2_rip;

	denied_list(vcpu, list);
	l2_rip = l1_run(_metadata, vm, vcpu, list, 2, false);
	ASSERT_EQ(EXIT_REASON_VMCALL, seen.exit_reason)
		TH_LOG("exit reason %#lx, qualification %#lx", seen.exit_reason, seen.exit_qual);
	EXPECT_EQ(0, seen.read_vector[0]);
	EXPECT_EQ(PAT_WRITTEN, seen.read_value[0]);
	/* "ignore": the write was dropped, POWER_CTL still reads 0. */
	EXPECT_EQ(0, seen.read_vector[1]);
	EXPECT_EQ(0, seen.read_value[1]);
	expect_event(_metadata, self->fd, MSR_IA32_POWER_CTL, list[1].value,
		     MSRGUARD_STATUS_BLOCKED_IGNORED, MSRGUARD_REASON_WRITE_DENIED, l2_rip, false);
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("a second event: msr %#x", e.msr);
}

/*
 * A VM-entry MSR-load list of ORDER_ENTRIES POWER_CTL writes, each dropped
 * with an event whose image is looked up (a paging L2): more records, in
 * one KVM_RUN, than one VM may hold work items for (16 of 64). Every event
 * arrives, in the list's order: a record that finds no item flushes the
 * ones waiting before it. Before, records without an item overtook the
 * waiting ones.
 */
#define ORDER_ENTRIES 80

TEST_F_TIMEOUT(nested_vmx, long_entry_list_events_in_order, 300)
{
	struct vmx_msr_entry *list;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l1_create(&vcpu);
	gva_t gva = vm_alloc_page(vm);
	u64 last_seq = 0;
	struct event e;
	int i;

	list = addr_gva2hva(vm, gva);
	for (i = 0; i < ORDER_ENTRIES; i++)
		list[i] = (struct vmx_msr_entry){ .index = MSR_IA32_POWER_CTL, .value = 0x100 + i };
	args.list_gpa = addr_gva2gpa(vm, gva);
	args.list_count = ORDER_ENTRIES;
	run_l1(vm, vcpu);
	ASSERT_EQ(EXIT_REASON_VMCALL, seen.exit_reason)
		TH_LOG("exit reason %#lx, qualification %#lx", seen.exit_reason, seen.exit_qual);
	for (i = 0; i < ORDER_ENTRIES; i++) {
		ASSERT_EQ(1, next_event(self->fd, &e)) TH_LOG("%d events of %d", i, ORDER_ENTRIES);
		ASSERT_EQ(0x100 + i, e.value) TH_LOG("event %d of the list is POWER_CTL=%#lx", i,
						      e.value);
		EXPECT_LT(last_seq, e.seq);
		last_seq = e.seq;
	}
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("an event after the list: msr %#x", e.msr);
}

/*
 * A VM whose L1 has {POWER_CTL = @value} (a write the default policy
 * drops: an event) as its VM-exit MSR-load list, run until L2's
 * GUEST_SYNC: the vCPU is in L2. Destroying the VM now makes KVM leave
 * nested mode (vmx_vcpu_free -> vmx_leave_nested -> nested_vmx_vmexit ->
 * load_vmcs12_host_state -> nested_vmx_load_msr): a guest write, made
 * while the VM's reference count is already 0.
 */
static struct kvm_vm *l2_waiting(struct kvm_vcpu **vcpu, u64 value)
{
	struct kvm_nested_state *state;
	struct kvm_vm *vm = l1_create(vcpu);
	gva_t gva = vm_alloc_page(vm);
	struct vmx_msr_entry *e = addr_gva2hva(vm, gva);
	struct ucall uc;

	e->index = MSR_IA32_POWER_CTL;
	e->reserved = 0;
	e->value = value;
	args.exit_list_gpa = addr_gva2gpa(vm, gva);
	sync_global_to_guest(vm, args);
	vcpu_run(*vcpu);
	TEST_ASSERT(get_ucall(*vcpu, &uc) == UCALL_SYNC, "L2 did not reach its GUEST_SYNC (%s)",
		    uc.cmd == UCALL_ABORT ? (const char *)uc.buffer : exit_reason_str((*vcpu)->run->exit_reason));
	/* Room for the header and VMCS12, as KVM_CAP_NESTED_STATE says. */
	state = calloc(1, kvm_check_cap(KVM_CAP_NESTED_STATE));
	TEST_ASSERT(state, "no memory for the nested state");
	state->size = kvm_check_cap(KVM_CAP_NESTED_STATE);
	vcpu_nested_state_get(*vcpu, state);
	TEST_ASSERT(state->flags & KVM_STATE_NESTED_GUEST_MODE, "the vCPU is not in L2");
	free(state);
	return vm;
}

/* The teardown's event: POWER_CTL dropped, outside the vCPU's run, no image. */
static void expect_teardown_event(struct __test_metadata *_metadata, int fd, u64 value, pid_t vmm)
{
	struct event e;

	ASSERT_EQ(1, next_event(fd, &e)) TH_LOG("no event for the VM-exit list's write");
	EXPECT_EQ(MSR_IA32_POWER_CTL, e.msr);
	EXPECT_EQ(1, e.is_write);
	EXPECT_EQ(value, e.value);
	EXPECT_EQ(MSRGUARD_STATUS_BLOCKED_IGNORED, e.status);
	EXPECT_EQ(MSRGUARD_REASON_WRITE_DENIED, e.reason);
	/* Nested mode is left before the list loads. */
	EXPECT_EQ(MSRGUARD_FLAG_OUTSIDE_RUN, e.flags);
	EXPECT_EQ((u32)vmm, e.pid);
	EXPECT_EQ(0, e.image_base);
	EXPECT_STREQ("", e.image_name);
	EXPECT_EQ(0, next_event(fd, &e)) TH_LOG("a second event: msr %#x", e.msr);
}

/*
 * The VMM closes the files of a VM whose vCPU is in L2, its memory still
 * mapped (kvm_vm_release; kvm_vm_free would delete the memslots first, and
 * KVM could not read L1's list). msrguard took a reference on the VM for
 * an image lookup although its count was 0 ("refcount_t: addition on 0"),
 * and queued work that used the freed vCPU and VM when this thread
 * returned to user space. Now the event is recorded at once, without
 * image fields; nothing waits; msrguard unloads. scripts/test-vmx.sh fails
 * the run on any warning in the kernel log.
 */
TEST_F_TIMEOUT(nested_vmx, teardown_in_l2, 300)
{
	const u64 value = 0x5a17;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l2_waiting(&vcpu, value);

	kvm_vm_release(vm);
	expect_teardown_event(_metadata, self->fd, value, getpid());
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(0, unload_msrguard());
	self->loaded = false;
}

/*
 * The VMM killed (SIGKILL) with the vCPU in L2: the VM is destroyed in
 * do_exit(), after the VMM's memory is gone (exit_mm before exit_files),
 * so KVM cannot read L1's list and writes nothing (a VMX abort): no event,
 * no warning, and msrguard unloads.
 */
TEST_F_TIMEOUT(nested_vmx, teardown_in_l2_vmm_killed, 300)
{
	const u64 value = 0x5a18;
	int ready[2], status;
	struct event e;
	char c;
	pid_t vmm;

	ASSERT_EQ(0, pipe(ready));
	vmm = fork();
	ASSERT_LE(0, vmm);
	if (!vmm) {
		struct kvm_vcpu *vcpu;

		close(ready[0]);
		l2_waiting(&vcpu, value);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1)) TH_LOG("the VMM ended before L2 waited");
	close(ready[0]);
	ASSERT_EQ(0, kill(vmm, SIGKILL));
	ASSERT_EQ(vmm, waitpid(vmm, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) TH_LOG("status %#x", status);
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("event: msr %#x value %#lx", e.msr, e.value);
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(0, unload_msrguard());
	self->loaded = false;
}

/*
 * FEATURE_CONTROL's three writes (feat_ctl_guest_code) in a VM set up as
 * QEMU's; what the guest saw, the same with and without msrguard.
 */
static void feat_ctl_run(struct __test_metadata *_metadata)
{
	const u64 vmxon = FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = firmware_vm_create(&vcpu, feat_ctl_guest_code);
	u64 fw = args.feat_ctl;

	ASSERT_EQ(vmxon, fw & vmxon) TH_LOG("firmware value %#lx enables no VMXON", fw);
	ksft_print_msg("firmware's FEATURE_CONTROL: %#lx\n", fw);
	/* A SENTER enable outside the mask, the firmware's value, then (locked) an unlock. */
	args.fc_write[0] = fw | FEAT_CTL_SENTER_LOCAL;
	args.fc_write[1] = fw;
	args.fc_write[2] = fw & ~FEAT_CTL_LOCKED;
	run_l1(vm, vcpu);

	/* The SENTER bit: #GP, nothing written. */
	EXPECT_EQ(GP_VECTOR, seen.fc_vector[0]);
	EXPECT_EQ(0, seen.fc_value[0]);
	/* The firmware's value: written. */
	EXPECT_EQ(0, seen.fc_vector[1]);
	EXPECT_EQ(fw, seen.fc_value[1]);
	/* Locked: KVM refuses the guest's write (is_vmx_feature_control_msr_valid). */
	EXPECT_EQ(GP_VECTOR, seen.fc_vector[2]);
	EXPECT_EQ(fw, seen.fc_value[2]);
}

TEST_F_TIMEOUT(nested_vmx, feat_ctl, 300)
{
	struct event e;

	feat_ctl_run(_metadata);
	/* One event: msrguard's veto of the SENTER bit; the #GP after the lock is KVM's. */
	expect_event(_metadata, self->fd, MSR_IA32_FEAT_CTL, args.fc_write[0],
		     MSRGUARD_STATUS_BLOCKED_GP, MSRGUARD_REASON_WRITE_MASK, seen.fc_pc[0], true);
	EXPECT_EQ(0, next_event(self->fd, &e)) TH_LOG("a second event: msr %#x value %#lx",
						      e.msr, e.value);
}

/* Without msrguard KVM loads the whole denied list: the refusal above is msrguard's. */
FIXTURE(without_msrguard) { int fd; bool loaded; };
FIXTURE_SETUP(without_msrguard)
{
	nested_setup(_metadata, &self->fd, &self->loaded, POLICY_NONE);
}
FIXTURE_TEARDOWN(without_msrguard) {}

TEST_F_TIMEOUT(without_msrguard, entry_list_denied, 300)
{
	struct vmx_msr_entry list[LIST_MAX];
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = l1_create(&vcpu);
	int i;

	denied_list(vcpu, list);
	l1_run(_metadata, vm, vcpu, list, LIST_MAX, false);
	ASSERT_EQ(EXIT_REASON_VMCALL, seen.exit_reason)
		TH_LOG("exit reason %#lx, qualification %#lx", seen.exit_reason, seen.exit_qual);
	for (i = 0; i < LIST_MAX; i++) {
		EXPECT_EQ(0, seen.read_vector[i]);
		EXPECT_EQ(list[i].value, seen.read_value[i]) TH_LOG("msr %#x", list[i].index);
	}
}

/* KVM alone: the same vectors and values (it refuses the SENTER bit too). */
TEST_F_TIMEOUT(without_msrguard, feat_ctl, 300)
{
	struct stat st;

	feat_ctl_run(_metadata);
	EXPECT_NE(0, stat(DEVICE_PATH, &st));
}

TEST_HARNESS_MAIN
