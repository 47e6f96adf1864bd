// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's C shim: the KVM hooks, the runtime parameters and the trace
 * event. Decisions and event records are Rust's (msrguard_rust_decide(),
 * msrguard_rust_record()).
 *
 * Hooks (kprobes; see Documentation/msrguard.rst for why each is needed and
 * what objdump showed):
 *
 *  - kvm_get_msr_ignored_check() / kvm_set_msr_ignored_check() (kvm): every
 *    guest MSR access that KVM's own filter let through ends here, with the
 *    value written. The decision point: a "gp" veto returns 1 without
 *    running the function (KVM's generic failure: #GP, or a user-space exit
 *    for a VMM that asked for failed MSR accesses), an "ignore" veto
 *    returns 0 (a read gets 0, a write is dropped).
 *  - kvm_msr_allowed() (kvm): for a VMM that asked for filtered-MSR exits
 *    and installed no MSR filter of its own, vetoes become its filter exits.
 *  - svm_set_intercept_for_msr() / vmx_set_intercept_for_msr() (kvm_amd,
 *    kvm_intel): KVM must not stop intercepting an MSR the policy does not
 *    always allow.
 *  - __kvm_emulate_rdmsr/wrmsr, kvm_emulator_{get,set}_msr_with_filter and
 *    kvm_emulate_msr_{read,write}: mark the access under way (path, value),
 *    and kvm_complete_insn_gp() / the emulator functions' returns record an
 *    audited read with the value it returned.
 *
 * All handlers run in atomic context: no sleeping, no allocation, bounded
 * work (a slot lock, a binary search, one ring-buffer insert).
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/atomic.h>
#include <linux/hash.h>
#include <linux/kprobes.h>
#include <linux/kvm_host.h>
#include <linux/linkage.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/objtool.h>
#include <linux/ratelimit.h>
#include <linux/rcupdate.h>
#include <linux/rcupdate_wait.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <asm/vmx.h>

#include "msrguard_shim.h"

#define CREATE_TRACE_POINTS
#include "msrguard_trace.h"

#ifdef CONFIG_PREEMPT_RT
#error "msrguard records events under spinlocks from kprobe context: PREEMPT_RT is not supported"
#endif

/* Mirrors of KVM-internal constants (arch/x86/kvm/kvm_emulate.h, msrs.h). */
#define MSRGUARD_X86EMUL_CONTINUE 0
#define MSRGUARD_MSR_TYPE_R 1
#define MSRGUARD_MSR_TYPE_W 2

/* ---- Parameters ------------------------------------------------------- */

static DEFINE_MUTEX(param_lock);
static bool audit_mode;
static bool locked;

static int mode_set(const char *val, const struct kernel_param *kp)
{
	bool audit;
	int ret = 0;

	if (sysfs_streq(val, "enforce"))
		audit = false;
	else if (sysfs_streq(val, "audit"))
		audit = true;
	else
		return -EINVAL;

	mutex_lock(&param_lock);
	if (locked && audit && !READ_ONCE(audit_mode)) {
		pr_warn("mode: refusing to weaken enforce to audit: msrguard is locked\n");
		ret = -EPERM;
	} else {
		WRITE_ONCE(audit_mode, audit);
	}
	mutex_unlock(&param_lock);
	return ret;
}

static int mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", READ_ONCE(audit_mode) ? "audit" : "enforce");
}

static const struct kernel_param_ops mode_ops = {
	.set = mode_set,
	.get = mode_get,
};
module_param_cb(mode, &mode_ops, NULL, 0644);
MODULE_PARM_DESC(mode, "enforce (veto forbidden accesses, default) or audit (report them, allow them)");

static int lock_set(const char *val, const struct kernel_param *kp)
{
	bool lock;
	int ret;

	ret = kstrtobool(val, &lock);
	if (ret)
		return ret;

	mutex_lock(&param_lock);
	if (locked && !lock) {
		ret = -EPERM;
	} else if (!locked && lock) {
		/* The reference is never dropped: no unload until reboot. */
		__module_get(THIS_MODULE);
		locked = true;
		pr_info("locked: no unload and no weaker mode until reboot\n");
	}
	mutex_unlock(&param_lock);
	return ret;
}

static int lock_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%c\n", READ_ONCE(locked) ? 'Y' : 'N');
}

static const struct kernel_param_ops lock_ops = {
	.set = lock_set,
	.get = lock_get,
};
module_param_cb(lock, &lock_ops, NULL, 0644);
MODULE_PARM_DESC(lock, "once set to 1, msrguard cannot be unloaded and its mode cannot be weakened until reboot");

bool msrguard_shim_audit(void)
{
	return READ_ONCE(audit_mode);
}

bool msrguard_shim_locked(void)
{
	return READ_ONCE(locked);
}

/* ---- Per-vCPU access slots ------------------------------------------- */

/*
 * What the access-entry probes tell the later ones. Keyed by vCPU: a vCPU's
 * exits are handled by one thread at a time, but that thread may migrate
 * between probes, so per-CPU storage would not do. The slots never decide
 * whether an access is vetoed (kvm_{get,set}_msr_ignored_check() decide
 * alone); two vCPUs colliding in a slot only cost a filter exit becoming a
 * #GP, or an audited read being recorded without its value.
 */
enum slot_state {
	SLOT_FREE,
	SLOT_ACCESS,		/* a guest access is under way */
	SLOT_AUDIT_READ,	/* audit mode read: record it when it completes */
};
enum access_path { PATH_EXIT, PATH_EMULATOR, PATH_NESTED };

struct slot_data {
	struct kvm_vcpu *vcpu;
	enum slot_state state;
	enum access_path path;
	u32 msr;
	bool is_write;
	int reg;		/* RDMSR destination: <0 for EDX:EAX */
	u64 value;		/* WRMSR value */
	struct msrguard_access access;	/* SLOT_AUDIT_READ: the event... */
	struct msrguard_verdict verdict; /* ...and the policy's verdict */
};

struct access_slot {
	raw_spinlock_t lock;
	struct slot_data d;
};

#define SLOT_BITS 10
static struct access_slot slots[1 << SLOT_BITS];

static struct access_slot *slot_of(struct kvm_vcpu *vcpu)
{
	return &slots[hash_ptr(vcpu, SLOT_BITS)];
}

/*
 * Marks an access under way. A nested-path probe does not replace an access
 * the same vCPU already has under way for that MSR (a compiler that does
 * not inline kvm_emulate_msr_*() makes the exit path go through them too).
 */
static void slot_begin(struct kvm_vcpu *vcpu, enum access_path path, u32 msr,
		       bool is_write, int reg, u64 value)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;

	raw_spin_lock_irqsave(&s->lock, flags);
	if (!(path == PATH_NESTED && s->d.vcpu == vcpu && s->d.state == SLOT_ACCESS &&
	      s->d.msr == msr && s->d.is_write == is_write)) {
		s->d.vcpu = vcpu;
		s->d.state = SLOT_ACCESS;
		s->d.path = path;
		s->d.msr = msr;
		s->d.is_write = is_write;
		s->d.reg = reg;
		s->d.value = value;
	}
	raw_spin_unlock_irqrestore(&s->lock, flags);
}

/* Copies the access @vcpu has under way to @msr; @take also ends it. */
static bool slot_find_access(struct kvm_vcpu *vcpu, u32 msr, bool is_write, bool take,
			     struct slot_data *out)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;
	bool found;

	raw_spin_lock_irqsave(&s->lock, flags);
	found = s->d.vcpu == vcpu && s->d.state == SLOT_ACCESS && s->d.msr == msr &&
		s->d.is_write == is_write;
	if (found) {
		*out = s->d;
		if (take)
			s->d.state = SLOT_FREE;
	}
	raw_spin_unlock_irqrestore(&s->lock, flags);
	return found;
}

static void slot_mark_audit_read(struct kvm_vcpu *vcpu, const struct slot_data *a,
				 const struct msrguard_access *access,
				 struct msrguard_verdict verdict)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;

	raw_spin_lock_irqsave(&s->lock, flags);
	s->d = *a;
	s->d.vcpu = vcpu;
	s->d.state = SLOT_AUDIT_READ;
	s->d.access = *access;
	s->d.verdict = verdict;
	raw_spin_unlock_irqrestore(&s->lock, flags);
}

/* Takes the audited read @vcpu has pending on @path at guest RIP @pc. */
static bool slot_take_audit_read(struct kvm_vcpu *vcpu, enum access_path path, u64 pc,
				 struct slot_data *out)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;
	bool found;

	/*
	 * Unlocked first look, for the common case: only this vCPU's thread
	 * marks its audited reads, so it sees its own mark; anything else
	 * (another vCPU in the same slot) is re-checked under the lock.
	 */
	if (data_race(s->d.state) != SLOT_AUDIT_READ)
		return false;
	raw_spin_lock_irqsave(&s->lock, flags);
	found = s->d.vcpu == vcpu && s->d.state == SLOT_AUDIT_READ && s->d.path == path &&
		s->d.access.pc == pc;
	if (found) {
		*out = s->d;
		s->d.state = SLOT_FREE;
	}
	raw_spin_unlock_irqrestore(&s->lock, flags);
	return found;
}

/* ---- Guest state ------------------------------------------------------ */

static bool host_is_vmx;

#if IS_ENABLED(CONFIG_KVM_INTEL)
/* VMREAD of the current VMCS; false if there is none (VMfail). */
static bool vmcs_read(unsigned long field, unsigned long *value)
{
	bool failed;

	asm volatile("vmread %[field], %[value]\n\tsetna %[failed]"
		     : [value] "=rm"(*value), [failed] "=qm"(failed)
		     : [field] "r"(field)
		     : "cc");
	return !failed;
}
#endif

/*
 * Guest RIP. SVM copies RIP into vcpu->arch.rip on every exit; VMX reads it
 * lazily from the VMCS, so read the VMCS if KVM has not yet (untested here:
 * TCG has no VMX).
 */
static u64 guest_rip(struct kvm_vcpu *vcpu)
{
#if IS_ENABLED(CONFIG_KVM_INTEL)
	unsigned long rip;

	if (host_is_vmx && !test_bit(VCPU_REG_RIP, vcpu->arch.regs_avail) &&
	    vmcs_read(GUEST_RIP, &rip))
		return rip;
#endif
	return vcpu->arch.rip;
}

/*
 * Guest mode from KVM's cached CR0 and EFER (PE and LMA are never guest-owned
 * bits, so the cache is current). RDMSR and WRMSR are privileged: at CPL > 0
 * (VM86 included) the CPU, or KVM's emulator, raises #GP before any
 * intercept, so every access that reaches kvm_msr_allowed() is at CPL 0.
 */
static u8 guest_mode(struct kvm_vcpu *vcpu)
{
	if (!(vcpu->arch.cr0 & X86_CR0_PE))
		return MSRGUARD_MODE_REAL;
	return (vcpu->arch.efer & EFER_LMA) ? MSRGUARD_MODE_LONG : MSRGUARD_MODE_PROTECTED;
}

/* ---- The guard -------------------------------------------------------- */

static void *guard_ctx;

/* Monitoring counter, reported in the kernel log on unload. */
static atomic64_t intercepts_kept;

/* A bare return: a probe that sets regs->ip here vetoes its function. */
asmlinkage void msrguard_return_stub(void);
asm(
	".text\n"
	".type msrguard_return_stub, @function\n"
	".globl msrguard_return_stub\n"
	ASM_FUNC_ALIGN
	"msrguard_return_stub:\n"
		ANNOTATE_NOENDBR "\n"
		ASM_RET
	".size msrguard_return_stub, .-msrguard_return_stub\n"
);

static int return_early(struct pt_regs *regs, unsigned long value)
{
	regs_set_return_value(regs, value);
	instruction_pointer_set(regs, (unsigned long)msrguard_return_stub);
	/* Non-zero: the kprobe must not single-step the original code. */
	return 1;
}

/*
 * A post handler keeps kprobes from optimizing a probe into a jump (which
 * would ignore the changed regs->ip), as kernel/fail_function.c does.
 */
static void post_nop(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
}
NOKPROBE_SYMBOL(post_nop);

static void report(const struct msrguard_access *a, const struct msrguard_outcome *o)
{
	trace_msrguard_access(a, o);
	pr_warn_ratelimited("seq=%llu %s %s msr=%#x (%s) value=%#llx pc=%#llx reason=%s vmm=%u/%.16s vcpu=%u\n",
			    o->sequence, o->status_name, a->is_write ? "WRMSR" : "RDMSR",
			    a->msr, o->msr_name, a->value, a->pc, o->reason_name,
			    a->vmm_pid, a->vmm_comm, a->vcpu_id);
}

/* Records the event for @a, which the policy objected to, and reports it. */
static void record_and_report(const struct msrguard_access *a, struct msrguard_verdict v)
{
	struct msrguard_outcome out;

	memset(&out, 0, sizeof(out));
	msrguard_rust_record(guard_ctx, a, v, &out);
	if (out.status)
		report(a, &out);
}

static void fill_access(struct msrguard_access *a, struct kvm_vcpu *vcpu, u32 msr,
			bool is_write, u64 value)
{
	memset(a, 0, sizeof(*a));
	a->msr = msr;
	a->is_write = is_write;
	a->value = is_write ? value : 0;
	a->pc = guest_rip(vcpu);
	a->timestamp_ns = ktime_get_real_ns();
	a->vcpu_id = vcpu->vcpu_id;
	a->vmm_pid = task_tgid_nr(current);
	memcpy(a->vmm_comm, current->comm, sizeof(a->vmm_comm));
	a->guest_mode = guest_mode(vcpu);
	a->guest_cpl = 0;
	a->audit = msrguard_shim_audit();
}

/* Whether the VM's VMM wants msrguard's vetoes as filtered-MSR exits. */
static bool vmm_takes_filter_exits(struct kvm *kvm)
{
	/*
	 * Only a VMM that enabled filter exits without a filter of its own:
	 * one with a filter (QEMU) expects exits for its own MSRs only, and
	 * aborts on others.
	 */
	return (READ_ONCE(kvm->arch.user_space_msr_mask) & KVM_MSR_EXIT_REASON_FILTER) &&
	       !rcu_access_pointer(kvm->arch.msr_filter);
}

/*
 * The decision point for an access KVM's own filter let through:
 * kvm_get_msr_ignored_check(vcpu, index, data, host_initiated) and
 * kvm_set_msr_ignored_check(vcpu, index, data, host_initiated).
 */
static int ignored_check_pre(struct pt_regs *regs, bool is_write)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)regs->di;
	u32 msr = (u32)regs->si;
	struct msrguard_verdict v;
	struct msrguard_access a;
	struct slot_data slot;
	bool have_slot;

	/*
	 * KVM_GET/SET_MSRS and friends: the VMM, not the guest. A bool
	 * argument only defines its register's low byte.
	 */
	if (regs->cx & 0xff)
		return 0;

	have_slot = slot_find_access(vcpu, msr, is_write, true, &slot);
	/* The common case, an allowed access, costs one table lookup. */
	v = msrguard_rust_decide(msr, is_write, is_write ? regs->dx : 0);
	if (!v.reason)
		return 0;
	fill_access(&a, vcpu, msr, is_write, regs->dx);

	if (a.audit) {
		/*
		 * An audited read is recorded when it completes, so that
		 * MsrValue is the value the guest got (nested store lists
		 * complete inside KVM: recorded now, with value 0).
		 */
		if (!is_write && have_slot && slot.path != PATH_NESTED)
			slot_mark_audit_read(vcpu, &slot, &a, v);
		else
			record_and_report(&a, v);
		return 0;
	}

	record_and_report(&a, v);
	/*
	 * "ignore" reads 0; and KVM zeroes a failed read's result, which the
	 * skipped function would have done (some emulator callers use the
	 * value without checking).
	 */
	if (!is_write)
		*(u64 *)regs->dx = 0;
	return return_early(regs, v.action == MSRGUARD_ACTION_IGNORE ? 0 : 1);
}

static int get_ignored_check_pre(struct kprobe *p, struct pt_regs *regs)
{
	return ignored_check_pre(regs, false);
}
NOKPROBE_SYMBOL(get_ignored_check_pre);

static int set_ignored_check_pre(struct kprobe *p, struct pt_regs *regs)
{
	return ignored_check_pre(regs, true);
}
NOKPROBE_SYMBOL(set_ignored_check_pre);

/*
 * kvm_msr_allowed(vcpu, index, type): for a VMM that takes filter exits
 * (vmm_takes_filter_exits()), a veto is returned here as "filtered", so
 * KVM gives that VMM its KVM_EXIT_X86_RDMSR/WRMSR exit.
 */
static int msr_allowed_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)regs->di;
	u32 msr = (u32)regs->si;
	bool is_write = (u32)regs->dx & KVM_MSR_FILTER_WRITE;
	struct msrguard_verdict v;
	struct msrguard_access a;
	struct slot_data slot;

	if (!vmm_takes_filter_exits(vcpu->kvm) || msrguard_shim_audit())
		return 0;
	/* Only for a guest access under way (the value is the slot's). */
	if (!slot_find_access(vcpu, msr, is_write, false, &slot) || slot.path == PATH_NESTED)
		return 0;
	v = msrguard_rust_decide(msr, is_write, slot.value);
	if (!v.reason)
		return 0;

	/* The access ends here: KVM will not reach the decision points. */
	slot_find_access(vcpu, msr, is_write, true, &slot);
	fill_access(&a, vcpu, msr, is_write, slot.value);
	record_and_report(&a, v);
	return return_early(regs, false);
}
NOKPROBE_SYMBOL(msr_allowed_pre);

/*
 * svm_set_intercept_for_msr(vcpu, msr, type, set) and the VMX twin: a
 * request to stop intercepting (set == false) becomes a request to keep
 * intercepting when the policy does not allow every such access, in audit
 * mode too (a later switch to enforce then finds no MSR passed through that
 * the policy denies). Both kinds stay intercepted if either is denied.
 */
static int set_intercept_pre(struct kprobe *p, struct pt_regs *regs)
{
	u32 msr = (u32)regs->si;
	int type = (int)regs->dx;

	/* @set is a bool: only the low byte of its register is defined. */
	if (regs->cx & 0xff)
		return 0;
	if (((type & MSRGUARD_MSR_TYPE_R) && !msrguard_rust_may_pass_through(msr, false)) ||
	    ((type & MSRGUARD_MSR_TYPE_W) && !msrguard_rust_may_pass_through(msr, true))) {
		regs->cx = 1;
		atomic64_inc(&intercepts_kept);
	}
	return 0;
}
NOKPROBE_SYMBOL(set_intercept_pre);

/* __kvm_emulate_rdmsr(vcpu, msr, reg, complete): RDMSR exit, both forms. */
static int exit_rdmsr_pre(struct kprobe *p, struct pt_regs *regs)
{
	slot_begin((struct kvm_vcpu *)regs->di, PATH_EXIT, (u32)regs->si, false,
		   (int)regs->dx, 0);
	return 0;
}
NOKPROBE_SYMBOL(exit_rdmsr_pre);

/* __kvm_emulate_wrmsr(vcpu, msr, data): WRMSR exit, both forms. */
static int exit_wrmsr_pre(struct kprobe *p, struct pt_regs *regs)
{
	slot_begin((struct kvm_vcpu *)regs->di, PATH_EXIT, (u32)regs->si, true,
		   -1, regs->dx);
	return 0;
}
NOKPROBE_SYMBOL(exit_wrmsr_pre);

/* kvm_emulate_msr_read(vcpu, index, data): nested VMX MSR store lists. */
static int nested_read_pre(struct kprobe *p, struct pt_regs *regs)
{
	slot_begin((struct kvm_vcpu *)regs->di, PATH_NESTED, (u32)regs->si, false,
		   -1, 0);
	return 0;
}
NOKPROBE_SYMBOL(nested_read_pre);

/* kvm_emulate_msr_write(vcpu, index, data): nested VMX MSR load lists. */
static int nested_write_pre(struct kprobe *p, struct pt_regs *regs)
{
	slot_begin((struct kvm_vcpu *)regs->di, PATH_NESTED, (u32)regs->si, true,
		   -1, regs->dx);
	return 0;
}
NOKPROBE_SYMBOL(nested_write_pre);

/* The value an RDMSR exit put into the guest's registers. */
static u64 rdmsr_result(struct kvm_vcpu *vcpu, int reg)
{
	if (reg >= 0 && reg < NR_VCPU_GENERAL_PURPOSE_REGS)
		return vcpu->arch.regs[reg];
	return (u32)vcpu->arch.regs[VCPU_REGS_RAX] |
	       ((u64)(u32)vcpu->arch.regs[VCPU_REGS_RDX] << 32);
}

/*
 * kvm_complete_insn_gp(vcpu, err): completes an RDMSR exit (before RIP
 * moves on); an audited read is recorded with the value it returned.
 */
static int complete_insn_gp_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)regs->di;
	struct slot_data slot;

	if (slot_take_audit_read(vcpu, PATH_EXIT, guest_rip(vcpu), &slot)) {
		/* A failed read (err != 0) returned nothing. */
		slot.access.value = regs->si ? 0 : rdmsr_result(vcpu, slot.reg);
		record_and_report(&slot.access, slot.verdict);
	}
	return 0;
}
NOKPROBE_SYMBOL(complete_insn_gp_pre);

/* The emulator's MSR accessors: entry marks the access, return records an audited read. */
struct emulator_call {
	struct kvm_vcpu *vcpu;
	u64 *data;
	u64 pc;
};

static int emulator_get_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct emulator_call *c = (struct emulator_call *)ri->data;

	c->vcpu = (struct kvm_vcpu *)regs->di;
	c->data = (u64 *)regs->dx;
	c->pc = guest_rip(c->vcpu);
	slot_begin(c->vcpu, PATH_EMULATOR, (u32)regs->si, false, -1, 0);
	return 0;
}
NOKPROBE_SYMBOL(emulator_get_entry);

static int emulator_set_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct emulator_call *c = (struct emulator_call *)ri->data;

	c->vcpu = (struct kvm_vcpu *)regs->di;
	c->data = NULL;
	c->pc = guest_rip(c->vcpu);
	slot_begin(c->vcpu, PATH_EMULATOR, (u32)regs->si, true, -1, regs->dx);
	return 0;
}
NOKPROBE_SYMBOL(emulator_set_entry);

static int emulator_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct emulator_call *c = (struct emulator_call *)ri->data;
	struct slot_data slot;

	if (c->data && slot_take_audit_read(c->vcpu, PATH_EMULATOR, c->pc, &slot)) {
		slot.access.value = regs_return_value(regs) == MSRGUARD_X86EMUL_CONTINUE ?
				    *c->data : 0;
		record_and_report(&slot.access, slot.verdict);
	}
	return 0;
}
NOKPROBE_SYMBOL(emulator_ret);

/* ---- Arming and disarming with the KVM modules ------------------------ */

/*
 * Probes of one module. The decision points come first in each array:
 * armed last (everything feeding them is in place) and disarmed first.
 */
struct probe_set {
	const char *module;
	const char *witness;	/* a function the module always has */
	struct kprobe **kprobes;
	unsigned int nr_kprobes;
	struct kretprobe **kretprobes;
	unsigned int nr_kretprobes;
	bool armed;
};

static struct kprobe probe_get_check = {
	.symbol_name = "kvm_get_msr_ignored_check",
	.pre_handler = get_ignored_check_pre, .post_handler = post_nop,
};
static struct kprobe probe_set_check = {
	.symbol_name = "kvm_set_msr_ignored_check",
	.pre_handler = set_ignored_check_pre, .post_handler = post_nop,
};
static struct kprobe probe_allowed = {
	.symbol_name = "kvm_msr_allowed",
	.pre_handler = msr_allowed_pre, .post_handler = post_nop,
};
static struct kprobe probe_exit_rd = { .symbol_name = "__kvm_emulate_rdmsr", .pre_handler = exit_rdmsr_pre };
static struct kprobe probe_exit_wr = { .symbol_name = "__kvm_emulate_wrmsr", .pre_handler = exit_wrmsr_pre };
static struct kprobe probe_nested_rd = { .symbol_name = "kvm_emulate_msr_read", .pre_handler = nested_read_pre };
static struct kprobe probe_nested_wr = { .symbol_name = "kvm_emulate_msr_write", .pre_handler = nested_write_pre };
static struct kprobe probe_complete = { .symbol_name = "kvm_complete_insn_gp", .pre_handler = complete_insn_gp_pre };

/* Emulator accesses are rare; a miss only loses an audited read's value. */
static struct kretprobe probe_emul_get = {
	.kp.symbol_name = "kvm_emulator_get_msr_with_filter",
	.entry_handler = emulator_get_entry,
	.handler = emulator_ret,
	.data_size = sizeof(struct emulator_call),
	.maxactive = 64,
};
static struct kretprobe probe_emul_set = {
	.kp.symbol_name = "kvm_emulator_set_msr_with_filter",
	.entry_handler = emulator_set_entry,
	.handler = emulator_ret,
	.data_size = sizeof(struct emulator_call),
	.maxactive = 64,
};

static struct kprobe *kvm_kprobes[] = {
	&probe_get_check, &probe_set_check, &probe_allowed,
	&probe_exit_rd, &probe_exit_wr, &probe_nested_rd, &probe_nested_wr,
	&probe_complete,
};
static struct kretprobe *kvm_kretprobes[] = { &probe_emul_get, &probe_emul_set };

static struct kprobe probe_svm_intercept = {
	.symbol_name = "svm_set_intercept_for_msr",
	.pre_handler = set_intercept_pre,
};
static struct kprobe *svm_kprobes[] = { &probe_svm_intercept };

static struct kprobe probe_vmx_intercept = {
	.symbol_name = "vmx_set_intercept_for_msr",
	.pre_handler = set_intercept_pre,
};
static struct kprobe *vmx_kprobes[] = { &probe_vmx_intercept };

static struct probe_set probe_sets[] = {
	{ "kvm", "kvm_vcpu_ioctl", kvm_kprobes, ARRAY_SIZE(kvm_kprobes),
	  kvm_kretprobes, ARRAY_SIZE(kvm_kretprobes) },
	{ "kvm_amd", "svm_vcpu_run", svm_kprobes, ARRAY_SIZE(svm_kprobes), NULL, 0 },
	{ "kvm_intel", "vmx_vcpu_run", vmx_kprobes, ARRAY_SIZE(vmx_kprobes), NULL, 0 },
};

static DEFINE_MUTEX(arm_lock);

static void reset_kprobe(struct kprobe *kp)
{
	struct kprobe fresh = {
		.symbol_name = kp->symbol_name,
		.pre_handler = kp->pre_handler,
		.post_handler = kp->post_handler,
	};

	*kp = fresh;
}

static void reset_kretprobe(struct kretprobe *rp)
{
	struct kretprobe fresh = {
		.kp.symbol_name = rp->kp.symbol_name,
		.entry_handler = rp->entry_handler,
		.handler = rp->handler,
		.data_size = rp->data_size,
		.maxactive = rp->maxactive,
	};

	*rp = fresh;
}

static void disarm_set(struct probe_set *set)
{
	int i;

	if (!set->armed)
		return;
	/* Decision points first: nothing vetoes with half its inputs gone. */
	for (i = 0; i < set->nr_kprobes; i++)
		unregister_kprobe(set->kprobes[i]);
	for (i = 0; i < set->nr_kretprobes; i++)
		unregister_kretprobe(set->kretprobes[i]);
	set->armed = false;
	pr_info("disarmed (%s)\n", set->module);
}

/* Registers every probe of @set or none. Caller holds arm_lock. */
static int arm_set(struct probe_set *set)
{
	int ret = 0, i, k, r;

	if (set->armed)
		return 0;
	for (i = 0; i < set->nr_kretprobes; i++)
		reset_kretprobe(set->kretprobes[i]);
	for (i = 0; i < set->nr_kprobes; i++)
		reset_kprobe(set->kprobes[i]);

	/* Nothing of the kprobes is registered until their loop runs. */
	k = set->nr_kprobes;
	for (r = 0; r < set->nr_kretprobes && !ret; r++)
		ret = register_kretprobe(set->kretprobes[r]);
	if (ret) {
		pr_err("cannot hook %s (%d): unsupported kernel?\n",
		       set->kretprobes[r - 1]->kp.symbol_name, ret);
		r--;
		goto undo;
	}
	/* Feeders before decision points: register back to front. */
	for (k = set->nr_kprobes; k > 0 && !ret; k--) {
		struct kprobe *kp = set->kprobes[k - 1];

		ret = register_kprobe(kp);
		if (ret) {
			pr_err("cannot hook %s (%d): unsupported kernel?\n", kp->symbol_name, ret);
		} else if (kp->post_handler && !kprobe_ftrace(kp)) {
			/* int3 probes run like NMIs: no spinlocks or wake-ups there. */
			pr_err("cannot hook %s: needs an ftrace-based kprobe (CONFIG_KPROBES_ON_FTRACE)\n",
			       kp->symbol_name);
			unregister_kprobe(kp);
			ret = -EOPNOTSUPP;
		}
	}
	if (ret) {
		k++;
		goto undo;
	}
	set->armed = true;
	pr_info("armed (%s)\n", set->module);
	return 0;

undo:
	for (i = k; i < set->nr_kprobes; i++)
		unregister_kprobe(set->kprobes[i]);
	for (i = 0; i < r; i++)
		unregister_kretprobe(set->kretprobes[i]);
	return ret;
}

static struct probe_set *set_of(const char *module)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(probe_sets); i++)
		if (!strcmp(probe_sets[i].module, module))
			return &probe_sets[i];
	return NULL;
}

/*
 * The KVM modules come and go. Hooks go in while a module is COMING (before
 * any VM can exist); if they cannot, the module is refused: an unguarded
 * KVM is what msrguard exists to prevent. They go out while it is GOING.
 */
static int kvm_module_event(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	struct probe_set *set = set_of(mod->name);
	int ret = 0;

	if (!set)
		return NOTIFY_DONE;

	mutex_lock(&arm_lock);
	if (state == MODULE_STATE_COMING)
		ret = arm_set(set);
	else if (state == MODULE_STATE_GOING)
		disarm_set(set);
	mutex_unlock(&arm_lock);

	if (ret)
		pr_err("refusing to let %s load unguarded\n", mod->name);
	return notifier_from_errno(ret);
}

static struct notifier_block kvm_module_nb = {
	.notifier_call = kvm_module_event,
};

/*
 * Whether @set's module is loaded: does its witness function resolve? Only
 * -ENOENT means "not loaded"; any other failure is returned, so that a
 * loaded module is never left unguarded by mistake.
 */
static int module_is_loaded(const struct probe_set *set, bool *loaded)
{
	/* A disabled kprobe resolves the symbol without patching text. */
	struct kprobe kp = { .symbol_name = set->witness, .flags = KPROBE_FLAG_DISABLED };
	int ret = register_kprobe(&kp);

	*loaded = !ret;
	if (ret == -ENOENT)
		return 0;
	if (!ret)
		unregister_kprobe(&kp);
	return ret;
}

static void disarm_all(void)
{
	int i;

	mutex_lock(&arm_lock);
	for (i = ARRAY_SIZE(probe_sets) - 1; i >= 0; i--)
		disarm_set(&probe_sets[i]);
	mutex_unlock(&arm_lock);
}

int msrguard_shim_init(void *guard)
{
	int ret, i;

	guard_ctx = guard;
	host_is_vmx = boot_cpu_has(X86_FEATURE_VMX);
	for (i = 0; i < ARRAY_SIZE(slots); i++)
		raw_spin_lock_init(&slots[i].lock);

	ret = register_module_notifier(&kvm_module_nb);
	if (ret)
		return ret;

	/*
	 * Modules already loaded are armed now; the notifier arms the others
	 * when they come. A loaded module that lacks a hook point (an
	 * unsupported kernel) fails the load.
	 */
	mutex_lock(&arm_lock);
	for (i = 0; i < ARRAY_SIZE(probe_sets) && !ret; i++) {
		struct probe_set *set = &probe_sets[i];
		bool loaded;

		ret = module_is_loaded(set, &loaded);
		if (ret)
			pr_err("cannot tell whether %s is loaded (%d)\n", set->module, ret);
		else if (!loaded)
			pr_info("%s is not loaded: its hooks are armed when it loads\n", set->module);
		else
			ret = arm_set(set);
	}
	mutex_unlock(&arm_lock);
	if (ret) {
		unregister_module_notifier(&kvm_module_nb);
		disarm_all();
		/* As on unload: tasks may still be on their way out of the stub. */
		synchronize_rcu_tasks();
	}
	return ret;
}

void msrguard_shim_exit(void)
{
	unregister_module_notifier(&kvm_module_nb);
	disarm_all();
	/*
	 * A task may still be between a probe handler and the return stub
	 * (preemptible, it can be scheduled out there); the stub is in our
	 * text, which is freed after this returns.
	 */
	synchronize_rcu_tasks();
	pr_info("kept %lld MSR intercepts the policy does not allow to drop\n",
		(long long)atomic64_read(&intercepts_kept));
}
