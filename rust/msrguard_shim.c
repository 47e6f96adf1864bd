// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's C shim: the KVM hooks, the runtime parameters and the trace
 * event. Decisions and event records are Rust's (msrguard_rust_check()).
 *
 * Hooks (kprobes, armed while the kvm module is loaded; see
 * Documentation/msrguard.rst for why each is needed and what objdump showed):
 *
 *  - kvm_msr_allowed(): every guest MSR access asks it (RDMSR/WRMSR exits,
 *    immediate forms, the instruction emulator, nested VMX MSR load/store
 *    lists), and so do SVM/VMX before they drop an MSR intercept. A veto
 *    returns false without running it, so KVM takes its own failure path:
 *    a user-space exit if the VMM asked for filtered MSRs, else #GP.
 *  - __kvm_emulate_rdmsr/__kvm_emulate_wrmsr, the emulator's
 *    kvm_emulator_{get,set}_msr_with_filter and the exported
 *    kvm_emulate_msr_{read,write} (nested VMX): mark "an access is under
 *    way" for the vCPU, with the value written, so kvm_msr_allowed() can
 *    tell an access from an intercept query and knows the value.
 *  - kvm_complete_insn_gp() and the emulator functions' returns: turn a
 *    veto with the "ignore" action into success (reads return 0).
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
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <asm/vmx.h>

#include "msrguard_shim.h"

#define CREATE_TRACE_POINTS
#include "msrguard_trace.h"

/* Mirrors of KVM-internal constants (arch/x86/kvm/kvm_emulate.h, x86.h). */
#define MSRGUARD_X86EMUL_CONTINUE 0

/* record.rs GuestMode values. */
enum { MODE_REAL = 1, MODE_VM86 = 2, MODE_PROTECTED = 3, MODE_LONG = 4 };
/* policy.rs Action values. */
enum { ACTION_ALLOW = 0, ACTION_GP = 1, ACTION_IGNORE = 2 };

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

u64 msrguard_shim_realtime_ns(void)
{
	return ktime_get_real_ns();
}

/* ---- Per-vCPU access slots ------------------------------------------- */

/*
 * What the access-entry probes tell kvm_msr_allowed(), and what a veto with
 * the "ignore" action tells the completion probes. Keyed by vCPU: a vCPU's
 * exits are handled by one thread at a time, but that thread may migrate
 * between the probes, so per-CPU storage would not do. Two vCPUs hashing
 * to the same slot only lose the hand-over: kvm_msr_allowed() then treats
 * the call as an intercept query (vetoing whatever could be vetoed) and an
 * "ignore" veto stays a #GP. Never weaker.
 */
enum slot_state {
	SLOT_FREE,
	SLOT_ACCESS,		/* an access is under way: kvm_msr_allowed() comes next */
	SLOT_IGNORE,		/* vetoed with "ignore": complete it as success */
	SLOT_AUDIT_READ,	/* audit mode read: record it with the value it returns */
};
enum access_path { PATH_EXIT, PATH_EMULATOR, PATH_NESTED };

struct access_slot {
	raw_spinlock_t lock;
	struct kvm_vcpu *vcpu;
	enum slot_state state;
	enum access_path path;
	u32 msr;
	bool is_write;
	int reg;		/* RDMSR destination: <0 for EDX:EAX */
	u64 value;
	struct msrguard_access access;	/* SLOT_AUDIT_READ: the event to record */
};

#define SLOT_BITS 10
static struct access_slot slots[1 << SLOT_BITS];

static struct access_slot *slot_of(struct kvm_vcpu *vcpu)
{
	return &slots[hash_ptr(vcpu, SLOT_BITS)];
}

static void slot_begin(struct kvm_vcpu *vcpu, enum access_path path, u32 msr,
		       bool is_write, int reg, u64 value)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;

	raw_spin_lock_irqsave(&s->lock, flags);
	s->vcpu = vcpu;
	s->state = SLOT_ACCESS;
	s->path = path;
	s->msr = msr;
	s->is_write = is_write;
	s->reg = reg;
	s->value = value;
	raw_spin_unlock_irqrestore(&s->lock, flags);
}

/* Takes the pending access of @vcpu to @msr, if that is what is pending. */
static bool slot_take_access(struct kvm_vcpu *vcpu, u32 msr, bool is_write,
			     struct access_slot *out)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;
	bool found;

	raw_spin_lock_irqsave(&s->lock, flags);
	found = s->vcpu == vcpu && s->state == SLOT_ACCESS && s->msr == msr &&
		s->is_write == is_write;
	if (found) {
		*out = *s;
		s->state = SLOT_FREE;
	}
	raw_spin_unlock_irqrestore(&s->lock, flags);
	return found;
}

/* Leaves work for the completion probes: SLOT_IGNORE or SLOT_AUDIT_READ. */
static void slot_mark_completion(struct kvm_vcpu *vcpu, const struct access_slot *a,
				 enum slot_state state, const struct msrguard_access *access)
{
	struct access_slot *s = slot_of(vcpu);
	unsigned long flags;

	raw_spin_lock_irqsave(&s->lock, flags);
	s->vcpu = vcpu;
	s->state = state;
	s->path = a->path;
	s->msr = a->msr;
	s->is_write = a->is_write;
	s->reg = a->reg;
	if (access)
		s->access = *access;
	raw_spin_unlock_irqrestore(&s->lock, flags);
}

/* Takes the completion work of @vcpu on @path; SLOT_FREE if there is none. */
static enum slot_state slot_take_completion(struct kvm_vcpu *vcpu, enum access_path path,
					    struct access_slot *out)
{
	struct access_slot *s = slot_of(vcpu);
	enum slot_state state = SLOT_FREE;
	unsigned long flags;

	raw_spin_lock_irqsave(&s->lock, flags);
	if (s->vcpu == vcpu && s->path == path &&
	    (s->state == SLOT_IGNORE || s->state == SLOT_AUDIT_READ)) {
		state = s->state;
		*out = *s;
		s->state = SLOT_FREE;
	}
	raw_spin_unlock_irqrestore(&s->lock, flags);
	return state;
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
		return MODE_REAL;
	return (vcpu->arch.efer & EFER_LMA) ? MODE_LONG : MODE_PROTECTED;
}

/* ---- The guard -------------------------------------------------------- */

static void *guard_ctx;

/* Monitoring counters, reported in the kernel log on unload. */
static atomic64_t intercept_queries_vetoed;

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

static void report(const struct msrguard_access *a, const struct msrguard_outcome *o)
{
	trace_msrguard_access(a, o);
	pr_warn_ratelimited("seq=%llu %s %s msr=%#x (%s) value=%#llx pc=%#llx reason=%s vmm=%u/%.16s vcpu=%u\n",
			    o->sequence, o->status_name, a->is_write ? "WRMSR" : "RDMSR",
			    a->msr, o->msr_name, a->value, a->pc, o->reason_name,
			    a->vmm_pid, a->vmm_comm, a->vcpu_id);
}

/* Records an event for @a if the policy objects, and reports it. */
static struct msrguard_outcome decide_and_report(const struct msrguard_access *a)
{
	struct msrguard_outcome out;

	msrguard_rust_check(guard_ctx, a, &out);
	if (out.status)
		report(a, &out);
	return out;
}

/* kvm_msr_allowed(vcpu, index, type): the decision point. */
static int msr_allowed_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)regs->di;
	u32 msr = (u32)regs->si;
	bool is_write = (u32)regs->dx & KVM_MSR_FILTER_WRITE;
	struct msrguard_outcome out;
	struct msrguard_access a;
	struct access_slot slot;

	if (!slot_take_access(vcpu, msr, is_write, &slot)) {
		/*
		 * Not an access: SVM/VMX asking whether it may stop intercepting
		 * @msr. Keep the intercept unless every such access is allowed,
		 * in audit mode too: audit then sees these accesses, and a later
		 * switch to enforce finds them still intercepted.
		 */
		if (!msrguard_rust_may_pass_through(msr, is_write)) {
			atomic64_inc(&intercept_queries_vetoed);
			return return_early(regs, false);
		}
		return 0;
	}

	memset(&a, 0, sizeof(a));
	a.msr = msr;
	a.is_write = is_write;
	a.value = is_write ? slot.value : 0;
	a.pc = guest_rip(vcpu);
	a.timestamp_ns = ktime_get_real_ns();
	a.vcpu_id = vcpu->vcpu_id;
	a.vmm_pid = task_tgid_nr(current);
	memcpy(a.vmm_comm, current->comm, sizeof(a.vmm_comm));
	a.guest_mode = guest_mode(vcpu);
	a.guest_cpl = 0;
	a.audit = msrguard_shim_audit();

	/*
	 * An audited read is recorded when it completes, so that MsrValue is
	 * the value the guest got. (Nested load lists complete inside KVM:
	 * recorded now, with value 0.)
	 */
	if (a.audit && !is_write && slot.path != PATH_NESTED &&
	    msrguard_rust_vetoes(msr, false, 0)) {
		slot_mark_completion(vcpu, &slot, SLOT_AUDIT_READ, &a);
		return 0;
	}

	out = decide_and_report(&a);

	switch (out.action) {
	case ACTION_ALLOW:
		return 0;
	case ACTION_IGNORE:
		/*
		 * A VMM that asked for filtered-MSR exits decides itself: it
		 * gets the exit, as for "gp". Nested load lists cannot be
		 * completed as success: "gp" there too (VM-entry fails).
		 */
		if (slot.path != PATH_NESTED &&
		    !(vcpu->kvm->arch.user_space_msr_mask & KVM_MSR_EXIT_REASON_FILTER))
			slot_mark_completion(vcpu, &slot, SLOT_IGNORE, NULL);
		fallthrough;
	default:
		return return_early(regs, false);
	}
}
NOKPROBE_SYMBOL(msr_allowed_pre);

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
 * kvm_complete_insn_gp(vcpu, err): an "ignore" veto completes as success;
 * an audited read is recorded with the value it returned.
 */
static int complete_insn_gp_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)regs->di;
	struct access_slot slot;

	switch (slot_take_completion(vcpu, PATH_EXIT, &slot)) {
	case SLOT_IGNORE:
		if (!slot.is_write) {
			if (slot.reg < 0) {
				vcpu->arch.regs[VCPU_REGS_RAX] = 0;
				vcpu->arch.regs[VCPU_REGS_RDX] = 0;
			} else if (slot.reg < NR_VCPU_GENERAL_PURPOSE_REGS) {
				vcpu->arch.regs[slot.reg] = 0;
			}
		}
		regs->si = 0;
		break;
	case SLOT_AUDIT_READ:
		/* A failed read (err != 0) returned nothing. */
		slot.access.value = regs->si ? 0 : rdmsr_result(vcpu, slot.reg);
		decide_and_report(&slot.access);
		break;
	default:
		break;
	}
	return 0;
}
NOKPROBE_SYMBOL(complete_insn_gp_pre);

/* The emulator's MSR accessors: entry marks the access, return completes "ignore". */
struct emulator_call {
	struct kvm_vcpu *vcpu;
	u64 *data;
};

static int emulator_get_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct emulator_call *c = (struct emulator_call *)ri->data;

	c->vcpu = (struct kvm_vcpu *)regs->di;
	c->data = (u64 *)regs->dx;
	slot_begin(c->vcpu, PATH_EMULATOR, (u32)regs->si, false, -1, 0);
	return 0;
}
NOKPROBE_SYMBOL(emulator_get_entry);

static int emulator_set_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct emulator_call *c = (struct emulator_call *)ri->data;

	c->vcpu = (struct kvm_vcpu *)regs->di;
	c->data = NULL;
	slot_begin(c->vcpu, PATH_EMULATOR, (u32)regs->si, true, -1, regs->dx);
	return 0;
}
NOKPROBE_SYMBOL(emulator_set_entry);

static int emulator_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct emulator_call *c = (struct emulator_call *)ri->data;
	struct access_slot slot;

	switch (slot_take_completion(c->vcpu, PATH_EMULATOR, &slot)) {
	case SLOT_IGNORE:
		if (c->data)
			*c->data = 0;
		regs_set_return_value(regs, MSRGUARD_X86EMUL_CONTINUE);
		break;
	case SLOT_AUDIT_READ:
		slot.access.value = regs_return_value(regs) == MSRGUARD_X86EMUL_CONTINUE && c->data ?
				    *c->data : 0;
		decide_and_report(&slot.access);
		break;
	default:
		break;
	}
	return 0;
}
NOKPROBE_SYMBOL(emulator_ret);

/* ---- Arming and disarming with the kvm module ------------------------- */

static struct kprobe probe_allowed = { .symbol_name = "kvm_msr_allowed", .pre_handler = msr_allowed_pre };
static struct kprobe probe_exit_rd = { .symbol_name = "__kvm_emulate_rdmsr", .pre_handler = exit_rdmsr_pre };
static struct kprobe probe_exit_wr = { .symbol_name = "__kvm_emulate_wrmsr", .pre_handler = exit_wrmsr_pre };
static struct kprobe probe_nested_rd = { .symbol_name = "kvm_emulate_msr_read", .pre_handler = nested_read_pre };
static struct kprobe probe_nested_wr = { .symbol_name = "kvm_emulate_msr_write", .pre_handler = nested_write_pre };
static struct kprobe probe_complete = { .symbol_name = "kvm_complete_insn_gp", .pre_handler = complete_insn_gp_pre };

static struct kprobe *kprobes[] = {
	&probe_exit_rd, &probe_exit_wr, &probe_nested_rd, &probe_nested_wr,
	&probe_complete,
	/* Last: the decision point is armed once everything feeding it is. */
	&probe_allowed,
};

/*
 * Emulator accesses are rare; a generous pool keeps misses (which only
 * turn an "ignore" into a #GP) away.
 */
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
static struct kretprobe *kretprobes[] = { &probe_emul_get, &probe_emul_set };

static DEFINE_MUTEX(arm_lock);
static bool armed;

static void reset_probe(struct kprobe *kp)
{
	const char *name = kp->symbol_name;
	kprobe_pre_handler_t pre = kp->pre_handler;

	memset(kp, 0, sizeof(*kp));
	kp->symbol_name = name;
	kp->pre_handler = pre;
}

static void reset_kretprobe(struct kretprobe *rp)
{
	struct kretprobe copy = {
		.kp.symbol_name = rp->kp.symbol_name,
		.entry_handler = rp->entry_handler,
		.handler = rp->handler,
		.data_size = rp->data_size,
		.maxactive = rp->maxactive,
	};

	*rp = copy;
}

/* Registers every hook or none. Caller holds arm_lock. */
static int arm(void)
{
	int ret, i;

	if (armed)
		return 0;
	for (i = 0; i < ARRAY_SIZE(kprobes); i++)
		reset_probe(kprobes[i]);
	for (i = 0; i < ARRAY_SIZE(kretprobes); i++)
		reset_kretprobe(kretprobes[i]);

	ret = register_kretprobes(kretprobes, ARRAY_SIZE(kretprobes));
	if (ret) {
		pr_err("cannot hook the KVM emulator's MSR accessors (%d): unsupported kernel?\n", ret);
		return ret;
	}
	ret = register_kprobes(kprobes, ARRAY_SIZE(kprobes));
	if (ret) {
		for (i = 0; i < ARRAY_SIZE(kprobes); i++)
			if (kprobes[i]->addr == NULL && kprobes[i]->flags == 0)
				break;
		pr_err("cannot hook KVM's MSR path (%d, first unresolved: %s): unsupported kernel?\n",
		       ret, i < ARRAY_SIZE(kprobes) ? kprobes[i]->symbol_name : "?");
		unregister_kretprobes(kretprobes, ARRAY_SIZE(kretprobes));
		return ret;
	}
	armed = true;
	pr_info("armed: guarding KVM guest MSR accesses (%s)\n",
		host_is_vmx ? "VMX" : "SVM");
	return 0;
}

/* Caller holds arm_lock. After return no handler of ours runs any more. */
static void disarm(void)
{
	if (!armed)
		return;
	/* The decision point goes first (it is last in the array). */
	unregister_kprobes(kprobes, ARRAY_SIZE(kprobes));
	unregister_kretprobes(kretprobes, ARRAY_SIZE(kretprobes));
	armed = false;
	pr_info("disarmed\n");
}

/*
 * KVM comes and goes as a module. Hooks go in while kvm is COMING (before
 * any VM can exist); if they cannot, kvm is refused: an unguarded KVM is
 * what msrguard exists to prevent. They go out while kvm is GOING.
 */
static int kvm_module_event(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	int ret = 0;

	if (strcmp(mod->name, "kvm"))
		return NOTIFY_DONE;

	mutex_lock(&arm_lock);
	if (state == MODULE_STATE_COMING)
		ret = arm();
	else if (state == MODULE_STATE_GOING)
		disarm();
	mutex_unlock(&arm_lock);

	if (ret)
		pr_err("refusing to let kvm load unguarded\n");
	return notifier_from_errno(ret);
}

/* Whether the kvm module is loaded: does one of its oldest exports resolve? */
static bool kvm_is_loaded(void)
{
	struct kprobe kp = { .symbol_name = "kvm_vcpu_ioctl" };

	if (register_kprobe(&kp))
		return false;
	unregister_kprobe(&kp);
	return true;
}

static struct notifier_block kvm_module_nb = {
	.notifier_call = kvm_module_event,
};

int msrguard_shim_init(void *guard)
{
	int ret;
	int i;

	guard_ctx = guard;
	host_is_vmx = boot_cpu_has(X86_FEATURE_VMX);
	for (i = 0; i < ARRAY_SIZE(slots); i++)
		raw_spin_lock_init(&slots[i].lock);

	ret = register_module_notifier(&kvm_module_nb);
	if (ret)
		return ret;

	/*
	 * If kvm is already loaded, arm now. -ENOENT from an unloaded kvm is
	 * not an error: the notifier arms when it comes. Any other failure, or
	 * a kvm that is loaded but lacks a hook point, fails the load.
	 */
	mutex_lock(&arm_lock);
	ret = arm();
	mutex_unlock(&arm_lock);
	if (ret == -ENOENT && !kvm_is_loaded()) {
		pr_info("kvm is not loaded: hooks will be armed when it loads\n");
		ret = 0;
	}
	if (ret)
		unregister_module_notifier(&kvm_module_nb);
	return ret;
}

void msrguard_shim_exit(void)
{
	unregister_module_notifier(&kvm_module_nb);
	mutex_lock(&arm_lock);
	disarm();
	mutex_unlock(&arm_lock);
	pr_info("%lld intercept queries answered 'keep intercepting'\n",
		(long long)atomic64_read(&intercept_queries_vetoed));
}
