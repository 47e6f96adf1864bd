// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's guard cases as KVM selftests, on the kernel tree's KVM selftest
 * library. One table of guest MSR accesses (cases[]) runs under every path
 * a guest access takes to msrguard's decision:
 *
 *   exit_path      RDMSR/WRMSR intercepted by KVM (SVM MSR exit);
 *   emulator       the same through KVM's instruction emulator (forced
 *                  emulation: kvm.force_emulation_prefix=1);
 *   nested         from an L2 guest whose L1 (a guest hypervisor built with
 *                  svm_util) does not intercept the MSR, so L0 (KVM and
 *                  msrguard) decides: for an MSR the SVM permission map
 *                  covers, L1 says so explicitly with a clear bit in its map;
 *   l1_intercepts  from L2 with L1 intercepting the MSR: L1 gets the exit,
 *                  msrguard says nothing.
 *
 * Each (path, case) pair is one test: fixture = path, variant = case. Each
 * checks what the guest saw (vector, value, a read-back) and the exact event
 * on /dev/msrguard and in tracefs: status, reason, MSR, value, Pc equal to
 * the address of the guest's RDMSR/WRMSR, and the nested flag for L2. The
 * fixtures load the msrguard build the case names (environment: MSRGUARD_KO,
 * MSRGUARD_TESTPOLICY_KO), or keep the one loaded if it is exactly that
 * build with those parameters, unchanged since its load
 * (msrguard_load_or_reuse), drain its queue and clear the trace; no test
 * depends on another.
 */
#include <asm/msr-index.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "svm_util.h"
#include "kselftest_harness.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"

#define FS_BASE_VMM		0x123456789aull

/* What a read of the MSR after the access must return. */
enum readback { BACK_NONE, BACK_WRITTEN, BACK_OLD };

struct guard_case {
	const char *name;	/* the variant's name in the TAP line */
	enum policy policy;
	const char *params;	/* module parameters */
	u32 msr;
	bool write;
	u64 value;		/* WRMSR's value */
	bool set_bits;		/* WRMSR writes the MSR's value | .value */
	u64 vmm_sets;		/* the VMM sets the MSR to this first (if not 0) */
	u8 vector;		/* what the guest sees: 0 or GP_VECTOR */
	bool check_value;	/* RDMSR must return .want_value */
	u64 want_value;
	enum readback back;
	u8 status;		/* MSRGUARD_STATUS_*, or 0: no event */
	u8 reason;		/* MSRGUARD_REASON_* */
	bool amd_only;		/* what KVM answers depends on the vendor: AMD's */
	bool vmx_accepts;	/* KVM accepts it when the vCPU has VMX */
};

static const struct guard_case cases[] = {
	{ .name = "pat_read", .msr = MSR_IA32_CR_PAT,
	  .check_value = true, .want_value = PAT_RESET },
	{ .name = "pat_write", .msr = MSR_IA32_CR_PAT, .write = true,
	  .value = PAT_WRITTEN, .back = BACK_WRITTEN },
	{ .name = "unknown_read", .msr = MSR_UNKNOWN, .vector = GP_VECTOR,
	  .status = MSRGUARD_STATUS_BLOCKED_GP, .reason = MSRGUARD_REASON_UNKNOWN_MSR },
	{ .name = "unknown_write", .msr = MSR_UNKNOWN, .write = true,
	  .value = 0x1122334455667788ull, .vector = GP_VECTOR,
	  .status = MSRGUARD_STATUS_BLOCKED_GP, .reason = MSRGUARD_REASON_UNKNOWN_MSR },
	/* KVM accepts it (see ucode_write_without_msrguard). */
	{ .name = "ucode_write", .msr = MSR_IA32_UCODE_WRITE, .write = true,
	  .value = 0x1000, .vector = GP_VECTOR,
	  .status = MSRGUARD_STATUS_BLOCKED_GP, .reason = MSRGUARD_REASON_WRITE_DENIED },
	{ .name = "misc_enable_inside_mask", .msr = MSR_IA32_MISC_ENABLE, .write = true,
	  .set_bits = true, .value = MSR_IA32_MISC_ENABLE_LIMIT_CPUID, .back = BACK_WRITTEN },
	{ .name = "misc_enable_outside_mask", .msr = MSR_IA32_MISC_ENABLE, .write = true,
	  .set_bits = true, .value = MSR_IA32_MISC_ENABLE_TURBO_DISABLE, .vector = GP_VECTOR,
	  .back = BACK_OLD,
	  .status = MSRGUARD_STATUS_BLOCKED_GP, .reason = MSRGUARD_REASON_WRITE_MASK },
	{ .name = "debugctl_lbr_write", .msr = MSR_IA32_DEBUGCTLMSR, .write = true,
	  .value = DEBUGCTLMSR_LBR, .vector = GP_VECTOR, .back = BACK_OLD,
	  .status = MSRGUARD_STATUS_BLOCKED_GP, .reason = MSRGUARD_REASON_WRITE_MASK },
	/* "ignore": the guest sees success, the write is dropped. */
	{ .name = "power_ctl_write_ignored", .msr = MSR_IA32_POWER_CTL, .write = true,
	  .value = 0x2, .back = BACK_OLD,
	  .status = MSRGUARD_STATUS_BLOCKED_IGNORED, .reason = MSRGUARD_REASON_WRITE_DENIED },
	{ .name = "lbr_from_read_ignored", .msr = MSR_IA32_LASTBRANCHFROMIP,
	  .check_value = true, .want_value = 0,
	  .status = MSRGUARD_STATUS_BLOCKED_IGNORED, .reason = MSRGUARD_REASON_READ_DENIED },
	/*
	 * A guard only takes away: the default policy answers these reads
	 * with "ignore" (an OS may read them unguarded), but KVM refuses them
	 * to this vCPU (Intel PT, PEBS and DS on an AMD host): the guest gets
	 * KVM's own #GP and no event, as without msrguard (below).
	 */
	{ .name = "rtit_ctl_read_kvm_gp", .msr = MSR_IA32_RTIT_CTL, .vector = GP_VECTOR,
	  .amd_only = true },
	{ .name = "pebs_enable_read_kvm_gp", .msr = MSR_IA32_PEBS_ENABLE, .vector = GP_VECTOR,
	  .amd_only = true },
	{ .name = "ds_area_read_kvm_gp", .msr = MSR_IA32_DS_AREA, .vector = GP_VECTOR,
	  .amd_only = true },
	{ .name = "audit_ucode_write", .params = "mode=audit", .msr = MSR_IA32_UCODE_WRITE,
	  .write = true, .value = 0x3000,
	  .status = MSRGUARD_STATUS_AUDIT_ALLOWED, .reason = MSRGUARD_REASON_WRITE_DENIED },
	/*
	 * The test policy denies FS_BASE, which SVM lets a guest access
	 * without an exit (and L1 passes through with its permission map):
	 * msrguard must keep it intercepted.
	 */
	{ .name = "fs_base_read_denied", .policy = POLICY_TEST, .msr = MSR_FS_BASE,
	  .vmm_sets = FS_BASE_VMM, .vector = GP_VECTOR,
	  .status = MSRGUARD_STATUS_BLOCKED_GP, .reason = MSRGUARD_REASON_READ_DENIED },
	/* Audit records a read when it completes: the event has the value read. */
	{ .name = "fs_base_read_audit", .policy = POLICY_TEST, .params = "mode=audit",
	  .msr = MSR_FS_BASE, .vmm_sets = FS_BASE_VMM,
	  .check_value = true, .want_value = FS_BASE_VMM,
	  .status = MSRGUARD_STATUS_AUDIT_ALLOWED, .reason = MSRGUARD_REASON_READ_DENIED },
	{ .name = "pat_write_test_policy", .policy = POLICY_TEST, .msr = MSR_IA32_CR_PAT,
	  .write = true, .value = PAT_WRITTEN, .back = BACK_WRITTEN },
	/*
	 * Guest firmware's FEATURE_CONTROL write (lock, VMXON), inside the
	 * default policy's mask: on SVM KVM has no such MSR and refuses it
	 * itself, with or without msrguard (..._without_msrguard); when the vCPU
	 * has VMX (kvm_intel nested=1) KVM accepts it. No event either way.
	 */
	{ .name = "feat_ctl_write_as_firmware", .msr = MSR_IA32_FEAT_CTL, .write = true,
	  .value = FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX, .vector = GP_VECTOR,
	  .vmx_accepts = true },
	{ .name = "feat_ctl_write_as_firmware_without_msrguard", .policy = POLICY_NONE,
	  .msr = MSR_IA32_FEAT_CTL, .write = true,
	  .value = FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX, .vector = GP_VECTOR,
	  .vmx_accepts = true },
	/* Without msrguard, KVM accepts what the cases above refuse. */
	{ .name = "ucode_write_without_msrguard", .policy = POLICY_NONE,
	  .msr = MSR_IA32_UCODE_WRITE, .write = true, .value = 0x1000 },
	{ .name = "fs_base_read_without_msrguard", .policy = POLICY_NONE, .msr = MSR_FS_BASE,
	  .vmm_sets = FS_BASE_VMM, .check_value = true, .want_value = FS_BASE_VMM },
	{ .name = "rtit_ctl_read_without_msrguard", .policy = POLICY_NONE,
	  .msr = MSR_IA32_RTIT_CTL, .vector = GP_VECTOR, .amd_only = true },
	{ .name = "pebs_enable_read_without_msrguard", .policy = POLICY_NONE,
	  .msr = MSR_IA32_PEBS_ENABLE, .vector = GP_VECTOR, .amd_only = true },
	{ .name = "ds_area_read_without_msrguard", .policy = POLICY_NONE,
	  .msr = MSR_IA32_DS_AREA, .vector = GP_VECTOR, .amd_only = true },
	{ .name = "debugctl_lbr_write_without_msrguard", .policy = POLICY_NONE,
	  .msr = MSR_IA32_DEBUGCTLMSR, .write = true, .value = DEBUGCTLMSR_LBR },
};

/* ---- The guest ------------------------------------------------------ */

enum path { EXIT_PATH, EMULATOR, NESTED, L1_INTERCEPTS };

/* What the guest does (set by the test, sync_global_to_guest). */
static struct {
	u32 msr;
	bool write, fep, readback;
	u64 value;
	bool l1_intercepts;
} args;

/* What the guest saw (sync_global_from_guest). */
static struct {
	u8 vector, back_vector;
	u64 value, back_value;
	u64 pc;			/* the RDMSR/WRMSR's address */
	u64 l1_exit_code, l1_exit_info_1, l1_rcx;
} seen;

static void guest_access(void)
{
	u64 back_pc;

	if (args.write)
		seen.vector = wrmsr_safe_at(args.msr, args.value, &seen.pc, args.fep);
	else
		seen.vector = rdmsr_safe_at(args.msr, &seen.value, &seen.pc, args.fep);
	if (args.readback)
		seen.back_vector = rdmsr_safe_at(args.msr, &seen.back_value, &back_pc, false);
}

static void guest_code(void)
{
	guest_access();
	GUEST_DONE();
}

static void l2_guest_code(void)
{
	guest_access();
	vmmcall();
}

/* The SVM MSR permission map: two bits (read, write) per MSR, three ranges. */
static int msrpm_bit(u32 msr, bool write)
{
	static const u32 base[] = { 0, 0xc0000000, 0xc0010000 };
	int i;

	for (i = 0; i < 3; i++)
		if (msr - base[i] < 0x2000)
			return i * 0x800 * 8 + 2 * (msr - base[i]) + write;
	return -1;
}

static void l1_guest_code(struct svm_test_data *svm)
{
	struct vmcb *vmcb = svm->vmcb;
	int bit = msrpm_bit(args.msr, args.write);

	generic_svm_setup(svm, l2_guest_code);
	/*
	 * generic_svm_setup() intercepts no MSR. An L1 that does intercept
	 * MSRs (MSR_PROT) lets one through with a clear bit in its map; an
	 * MSR outside the map is always intercepted then.
	 */
	if (args.l1_intercepts || bit >= 0)
		vmcb->control.intercept |= BIT_ULL(INTERCEPT_MSR_PROT);
	if (args.l1_intercepts && bit >= 0)
		__set_bit(bit, svm->msr);
	run_guest(vmcb, svm->vmcb_gpa);
	seen.l1_exit_code = vmcb->control.exit_code;
	seen.l1_exit_info_1 = vmcb->control.exit_info_1;
	seen.l1_rcx = guest_regs.rcx;
	GUEST_DONE();
}

/* ---- The host ------------------------------------------------------- */

struct guard {
	int fd;
	bool loaded;
};

static void guard_setup(struct __test_metadata *_metadata, struct guard *g,
			const struct guard_case *c, enum path path)
{
	g->fd = -1;
	if (access("/dev/kvm", F_OK))
		ASSERT_EQ(0, load_kvm());
	/* An Intel vCPU may have PT, PEBS or DS, which KVM then answers. */
	if (c->amd_only && !host_cpu_is_amd)
		SKIP(return, "what KVM answers for this MSR is AMD's (no Intel PT, PEBS, DS)");
	if (path == EMULATOR && !kvm_is_forced_emulation_enabled())
		SKIP(return, "kvm.force_emulation_prefix is off");
	if (path >= NESTED) {
		ASSERT_EQ(0, kvm_for_nested()) TH_LOG("kvm_amd could not be reloaded for nested guests");
		if (!kvm_cpu_has(X86_FEATURE_SVM))
			SKIP(return, "no SVM for a guest hypervisor");
	}
	ASSERT_EQ(0, msrguard_load_or_reuse(c->policy, c->params))
		TH_LOG("cannot load msrguard (MSRGUARD_KO, MSRGUARD_TESTPOLICY_KO in the environment)");
	g->loaded = c->policy != POLICY_NONE;
	if (!g->loaded)
		return;
	g->fd = open_device();
	ASSERT_LE(0, g->fd) TH_LOG("%s: %s", DEVICE_PATH, strerror(errno));
	ASSERT_EQ(0, write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1"));
	drain(g->fd);
	trace_clear();
}

/* msrguard stays loaded for the next test to reuse or replace. */
static void guard_teardown(struct guard *g)
{
	if (g->fd >= 0)
		close(g->fd);
}

static void run_case(struct __test_metadata *_metadata, struct guard *g,
		     const struct guard_case *c, enum path path)
{
	bool nested = path >= NESTED;
	u64 old = 0, written, want_event_value;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct event e;
	char why[512];
	gva_t svm_gva;
	u8 *insn;
	int ret;

	vm = vm_create_with_one_vcpu(&vcpu, nested ? (void *)l1_guest_code : (void *)guest_code);
	if (nested) {
		vcpu_alloc_svm(vm, &svm_gva);
		vcpu_args_set(vcpu, 1, svm_gva);
	}
	if (c->vmm_sets)
		vcpu_set_msr(vcpu, c->msr, c->vmm_sets);
	if (c->set_bits || c->back == BACK_OLD)
		old = vcpu_get_msr(vcpu, c->msr);
	written = c->set_bits ? old | c->value : c->value;

	args.msr = c->msr;
	args.write = c->write;
	args.value = written;
	args.fep = path == EMULATOR;
	args.readback = c->back != BACK_NONE;
	args.l1_intercepts = path == L1_INTERCEPTS;
	sync_global_to_guest(vm, args);
	memset(&seen, 0, sizeof(seen));
	sync_global_to_guest(vm, seen);

	run_until_done(vcpu);
	sync_global_from_guest(vm, seen);

	if (path == L1_INTERCEPTS) {
		/* L1 got the access as its exit; msrguard stays out. */
		EXPECT_EQ(SVM_EXIT_MSR, seen.l1_exit_code);
		EXPECT_EQ(c->write, seen.l1_exit_info_1);
		EXPECT_EQ(c->msr, (u32)seen.l1_rcx);
		if (g->loaded)
			EXPECT_EQ(0, next_event(g->fd, &e));
		kvm_vm_free(vm);
		return;
	}
	if (nested)
		ASSERT_EQ(SVM_EXIT_VMMCALL, seen.l1_exit_code)
			TH_LOG("L2 ended with exit %#lx, not its VMMCALL", seen.l1_exit_code);

	/* What the guest saw. */
	EXPECT_EQ(c->vmx_accepts && kvm_cpu_has(X86_FEATURE_VMX) ? 0 : c->vector, seen.vector);
	if (c->check_value)
		EXPECT_EQ(c->want_value, seen.value);
	if (c->back != BACK_NONE) {
		EXPECT_EQ(0, seen.back_vector);
		EXPECT_EQ(c->back == BACK_WRITTEN ? written : old, seen.back_value);
	}
	/* Pc is the instruction itself: RDMSR (0f 32) or WRMSR (0f 30). */
	insn = addr_gva2hva(vm, seen.pc);
	ASSERT_TRUE(insn[0] == 0x0f && insn[1] == (c->write ? 0x30 : 0x32))
		TH_LOG("no RDMSR/WRMSR at the guest's Pc %#lx", seen.pc);
	kvm_vm_free(vm);

	if (!g->loaded) {
		struct stat st;

		EXPECT_NE(0, stat(DEVICE_PATH, &st));
		return;
	}
	/* The event, exactly. */
	ret = next_event(g->fd, &e);
	if (!c->status) {
		EXPECT_EQ(0, ret) TH_LOG("unexpected event: msr %#x status %u", e.msr, e.status);
		return;
	}
	ASSERT_EQ(1, ret) TH_LOG("no event on %s", DEVICE_PATH);
	want_event_value = c->write ? written :
			   c->status == MSRGUARD_STATUS_AUDIT_ALLOWED ? seen.value : 0;
	EXPECT_EQ(c->msr, e.msr);
	EXPECT_EQ(c->write, e.is_write);
	EXPECT_EQ(c->status, e.status);
	EXPECT_EQ(c->reason, e.reason);
	EXPECT_EQ(want_event_value, e.value);
	EXPECT_EQ(seen.pc, e.pc);
	EXPECT_EQ(nested ? MSRGUARD_FLAG_NESTED : 0, e.flags);
	EXPECT_EQ(MSRGUARD_MODE_LONG, e.mode);
	EXPECT_EQ((u32)getpid(), e.pid);
	EXPECT_EQ(0, e.vcpu);
	EXPECT_EQ(0, e.repeat);
	EXPECT_EQ(0, next_event(g->fd, &e)) TH_LOG("a second event: msr %#x", e.msr);
	EXPECT_EQ(0, check_trace(&e, status_name(c->status), why, sizeof(why))) TH_LOG("%s", why);
}

/*
 * One fixture per path; its variants are cases[], registered from the table
 * (the plan counts them). This calls __register_fixture_variant(), which
 * kselftest_harness.h keeps for its own macros: its public way,
 * FIXTURE_VARIANT_ADD(), declares one variant per macro, so cases[] would
 * have to become an X-macro list expanded once per path instead of the
 * designated-initializer table the KVM selftests use (msrs_test.c).
 * FIXTURE_VARIANT_ADD() fills the same list through the same function (in
 * table order where constructors run in order, as with GCC and glibc; the
 * harness prepends where they run in reverse, and the cases then come out
 * reversed, each under its own name).
 */
#define GUARD_PATH(fixture, path)						\
	FIXTURE(fixture) { struct guard g; };					\
	FIXTURE_VARIANT(fixture) { const struct guard_case *c; };		\
	static FIXTURE_VARIANT(fixture) fixture##_data[ARRAY_SIZE(cases)];	\
	static struct __fixture_variant_metadata fixture##_variants[ARRAY_SIZE(cases)]; \
	static void __attribute__((constructor(KSELFTEST_PRIO_TEST + 1)))	\
	fixture##_register(void)						\
	{									\
		size_t i;							\
										\
		for (i = 0; i < ARRAY_SIZE(cases); i++) {			\
			fixture##_data[i].c = &cases[i];			\
			fixture##_variants[i].name = cases[i].name;		\
			fixture##_variants[i].data = &fixture##_data[i];	\
			__register_fixture_variant(&_##fixture##_fixture_object, \
						   &fixture##_variants[i]);	\
		}								\
	}									\
	FIXTURE_SETUP(fixture) { guard_setup(_metadata, &self->g, variant->c, path); } \
	FIXTURE_TEARDOWN(fixture) { guard_teardown(&self->g); }		\
	TEST_F_TIMEOUT(fixture, access, 120)					\
	{									\
		run_case(_metadata, &self->g, variant->c, path);		\
	}

GUARD_PATH(exit_path, EXIT_PATH)
GUARD_PATH(emulator, EMULATOR)
GUARD_PATH(nested, NESTED)
GUARD_PATH(l1_intercepts, L1_INTERCEPTS)

/*
 * VMRUN loads L2's DEBUGCTL from L1's VMCB (save.dbgctl), with no WRMSR
 * for msrguard to decide, when L1 enables LBR virtualization for L2 and the
 * vCPU has LBRV (tools/msrguard-policy/src/bypass.rs, SVM_VMRUN). L1 asks
 * for LBR there, which the default policy refuses to a WRMSR
 * (debugctl_lbr_write); what L2 then reads shows which way it went.
 */
static void l2_read_debugctl(void)
{
	seen.vector = rdmsr_safe_at(MSR_IA32_DEBUGCTLMSR, &seen.value, &seen.pc, false);
	vmmcall();
}

static void l1_vmrun_debugctl(struct svm_test_data *svm)
{
	struct vmcb *vmcb = svm->vmcb;

	generic_svm_setup(svm, l2_read_debugctl);
	vmcb->control.misc_ctl2 |= SVM_MISC2_ENABLE_V_LBR;
	vmcb->save.dbgctl = DEBUGCTLMSR_LBR;
	run_guest(vmcb, svm->vmcb_gpa);
	seen.l1_exit_code = vmcb->control.exit_code;
	GUEST_DONE();
}

FIXTURE(vmrun_state) { struct guard g; };
FIXTURE_SETUP(vmrun_state)
{
	static const struct guard_case default_policy = { .name = "default" };

	guard_setup(_metadata, &self->g, &default_policy, NESTED);
}
FIXTURE_TEARDOWN(vmrun_state) { guard_teardown(&self->g); }

TEST_F_TIMEOUT(vmrun_state, debugctl_lbr_from_vmcb12, 120)
{
	bool lbrv = kvm_cpu_has(X86_FEATURE_LBRV);
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct event e;
	gva_t svm_gva;

	vm = vm_create_with_one_vcpu(&vcpu, l1_vmrun_debugctl);
	vcpu_alloc_svm(vm, &svm_gva);
	vcpu_args_set(vcpu, 1, svm_gva);
	memset(&seen, 0, sizeof(seen));
	sync_global_to_guest(vm, seen);
	run_until_done(vcpu);
	sync_global_from_guest(vm, seen);
	kvm_vm_free(vm);

	ASSERT_EQ(SVM_EXIT_VMMCALL, seen.l1_exit_code);
	EXPECT_EQ(0, seen.vector);
	/* No access reached msrguard's decision points, either way. */
	EXPECT_EQ(0, next_event(self->g.fd, &e)) TH_LOG("event: msr %#x", e.msr);
	/* With LBRV: a bypass (documented); without: KVM ignores save.dbgctl. */
	EXPECT_EQ(lbrv, !!(seen.value & DEBUGCTLMSR_LBR))
		TH_LOG("vCPU %s LBRV, L2 read DEBUGCTL %#lx", lbrv ? "has" : "has no", seen.value);
	ksft_print_msg("VMRUN with VMCB12 dbgctl=LBR: %s (vCPU %s LBRV; L2 reads DEBUGCTL %#lx)\n",
		       seen.value & DEBUGCTLMSR_LBR ? "BYPASS, L2 runs with LBR on" :
		       "blocked, L2 runs without LBR", lbrv ? "has" : "has no", seen.value);
}

TEST_HARNESS_MAIN
