// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's KVM hooks: they gather the facts of a guest MSR access, ask
 * Rust (msrguard_rust_on_access()) and apply its answer. Nothing here
 * decides; see rust/core/guard.rs and Documentation/msrguard/design.rst.
 *
 *  - kvm_get_msr_ignored_check() / kvm_set_msr_ignored_check() (kvm): every
 *    guest MSR access, through any path (exit, emulator, nested VMX MSR
 *    lists), ends here. One ftrace_ops each, with FTRACE_OPS_FL_IPMODIFY
 *    as livepatch uses it: a veto makes the function return a KVM code
 *    without running. The only hook on an allowed access.
 *  - kvm_get_msr_ignored_check() again, as an fprobe with a return handler,
 *    only while mode=audit: an audited read is recorded with the value KVM
 *    returned.
 *  - svm_set_intercept_for_msr() / vmx_set_intercept_for_msr() (kvm_amd,
 *    kvm_intel): KVM must not stop intercepting an MSR the policy does not
 *    always allow. Not on the access path.
 *
 * Handlers run in the vCPU thread, possibly with interrupts off: no
 * sleeping, no allocation, bounded work.
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/atomic.h>
#include <linux/cgroup.h>
#include <linux/delay.h>
#include <linux/fprobe.h>
#include <linux/ftrace.h>
#include <linux/jiffies.h>
#include <linux/kobject.h>
#include <linux/kprobes.h>
#include <linux/kvm_host.h>
#include <linux/linkage.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/objtool.h>
#include <linux/percpu.h>
#include <linux/rcupdate_wait.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <asm/asm.h>
#include <asm/ibt.h>
#include <asm/vmx.h>

/* KVM's own return codes and access types (arch/x86/kvm/msrs.h). */
#include "msrs.h"
/* guest_cpuid_is_amd_compatible(): what SVM keeps of SYSENTER_ESP/EIP. */
#include "cpuid.h"

#include "msrguard_boundary.h"
#include "msrguard_trace.h"

#ifdef CONFIG_PREEMPT_RT
#error "msrguard records events under spinlocks from ftrace handlers: PREEMPT_RT is not supported"
#endif

static const void *guard_ctx;
static bool host_is_vmx;
/*
 * Moved each time KVM makes or destroys a VM, or root changes a VM's
 * profile: a CPU's cached VM (below) is only good for the generation it was
 * looked up in, as a new VM may get a destroyed one's address.
 */
static atomic_long_t vm_generation = ATOMIC_LONG_INIT(0);

/*
 * Per CPU, what a decision and a repeated event need and cost more to
 * compute than the rest: the id and profile of the last VM the CPU decided
 * for (a flood comes from one VM; Rust's table has it, looked up again
 * after any VM's destruction or profile change), and the coarse clock read
 * in the current jiffy. That may
 * lag the precise clock by up to two ticks (jiffies moves before the wall
 * time is updated) or by a clock_settime() until the next jiffy: the queue
 * allows for the lag (COARSE_CLOCK_SLACK_NS); beyond it, an event takes
 * the full path, nothing is lost.
 */
struct record_cache {
	const struct kvm *kvm;
	long generation;
	struct msrguard_vm vm;
	unsigned long tick;
	u64 coarse_ns;
};
static DEFINE_PER_CPU(struct record_cache, record_cache);

/* Monitoring counter, reported in the kernel log on unload. */
static atomic64_t intercepts_kept;

/* ---- Guest state ------------------------------------------------------ */

#if IS_ENABLED(CONFIG_KVM_INTEL)
/*
 * VMREAD of the current VMCS; false if there is none (VMfail) or VMREAD
 * faults (VMX off on this CPU): then the exception table resumes after it
 * with @failed still true, as KVM's own VMREAD recovers from a fault.
 */
static bool vmcs_read(unsigned long field, unsigned long *value)
{
	unsigned long v;
	bool failed = true;

	asm volatile("1: vmread %[field], %[v]\n\t"
		     "setna %[failed]\n"
		     "2:\n\t"
		     _ASM_EXTABLE(1b, 2b)
		     : [v] "=r"(v), [failed] "+q"(failed)
		     : [field] "r"(field)
		     : "cc");
	if (failed)
		return false;
	*value = v;
	return true;
}
#endif

/*
 * Guest RIP. SVM copies RIP into vcpu->arch.rip on every exit; VMX reads it
 * lazily from the VMCS, so read the VMCS if KVM has not yet. A guest with
 * protected state (SEV-ES, SNP, TDX) has no RIP the host may know: 0.
 */
static __always_inline u64 guest_rip(struct kvm_vcpu *vcpu)
{
	if (vcpu->arch.guest_state_protected)
		return 0;
#if IS_ENABLED(CONFIG_KVM_INTEL)
	{
		unsigned long rip;

		if (host_is_vmx && !test_bit(VCPU_REG_RIP, vcpu->arch.regs_avail) &&
		    vmcs_read(GUEST_RIP, &rip))
			return rip;
	}
#endif
	return vcpu->arch.rip;
}

/*
 * Guest mode from KVM's cached CR0 and EFER (PE and LMA are never guest-owned
 * bits, so the cache is current). RDMSR and WRMSR are privileged: at CPL > 0
 * the CPU, or KVM's emulator, raises #GP before any intercept, so every
 * access that reaches KVM's access functions is at CPL 0.
 */
static u8 guest_mode(struct kvm_vcpu *vcpu)
{
	if (vcpu->arch.guest_state_protected)
		return MSRGUARD_MODE_UNKNOWN;
	if (!(vcpu->arch.cr0 & X86_CR0_PE))
		return MSRGUARD_MODE_REAL;
	return (vcpu->arch.efer & EFER_LMA) ? MSRGUARD_MODE_LONG : MSRGUARD_MODE_PROTECTED;
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

/* ---- Asking Rust, recording -------------------------------------------- */

/* Whether the read-completion fprobe is registered (written under arm_lock). */
static bool read_completion_armed;

/*
 * KVM's guest read, __kvm_emulate_msr_read() (msrs.h), while kvm is armed:
 * held_value() and the wrappers below call it through this pointer. Not
 * the static hooked function: only an address-taken function (this one is
 * exported) keeps its ENDBR, which an indirect call needs on a CPU with
 * IBT (arm_set() checks it is there).
 */
static typeof(&__kvm_emulate_msr_read) kvm_guest_read;

/* A wrapper's call into KVM's read (below). */
static int kvm_answer(struct kvm_vcpu *vcpu, u32 msr, u64 *data);

/*
 * What @msr holds on @vcpu, for the guard's first look at a pinned MSR
 * (pins.rs; EFER's comes with the question): KVM's own read, for the
 * SYSCALL and SYSENTER MSRs, whose read is a field of the VMCB, the VMCS
 * or KVM's copy (atomic-safe, as this hook is); false for any other MSR or
 * if KVM refuses. Not the others: a Hyper-V MSR's read takes a mutex. For
 * a guest with AMD's CPUID, SVM reads back the 32 bits of SYSENTER_ESP/EIP
 * it keeps: the pin compares those (kept_bits below). A read the policy
 * always allows needs no wrapper slot (the read hook lets it through at
 * once), so a guest that fills the slots cannot make its own write the pin.
 */
static bool held_value(struct kvm_vcpu *vcpu, u32 msr, u64 *value)
{
	switch (msr) {
	case MSR_STAR:
	case MSR_LSTAR:
	case MSR_CSTAR:
	case MSR_SYSCALL_MASK:
	case MSR_IA32_SYSENTER_ESP:
	case MSR_IA32_SYSENTER_EIP:
		if (msrguard_rust_read_proceeds(msr))
			return !READ_ONCE(kvm_guest_read)(vcpu, msr, value);
		return !kvm_answer(vcpu, msr, value);
	default:
		return false;
	}
}

/*
 * The bits of a write of @msr a pin compares: SVM stores 32 bits of
 * SYSENTER_ESP/EIP for a guest with AMD's CPUID (svm_set_msr(); only an
 * Intel guest's high halves are kept, for cross-vendor migration). All 64
 * otherwise: KVM makes these two canonical for every vendor, so comparing
 * every bit can only veto a non-canonical alias of the pinned value.
 */
static __always_inline u64 kept_bits(struct kvm_vcpu *vcpu, u32 msr)
{
	/* One compare for every other write: ESP and EIP are adjacent. */
	if (unlikely(msr - MSR_IA32_SYSENTER_ESP <= MSR_IA32_SYSENTER_EIP - MSR_IA32_SYSENTER_ESP) &&
	    !host_is_vmx && guest_cpuid_is_amd_compatible(vcpu))
		return U32_MAX;
	return U64_MAX;
}

static __always_inline void ask(struct kvm_vcpu *vcpu, const struct msrguard_vm *vm, u8 hook,
				u32 msr, bool is_write, u64 value, bool host_initiated,
				struct msrguard_answer *ans)
{
	bool efer_write = is_write && msr == MSR_EFER;
	struct msrguard_facts facts = {
		.value = value,
		/* Set-only bits are checked against what EFER holds (KVM's cache is current). */
		.held = efer_write ? vcpu->arch.efer : 0,
		.kept_bits = is_write ? kept_bits(vcpu, msr) : U64_MAX,
		.held_state = efer_write ? MSRGUARD_HELD_READ : MSRGUARD_HELD_NOT_READ,
		.msr = msr,
		.vcpu_id = vcpu->vcpu_id,
		.vm_id = vm->id,
		.hook = hook,
		.is_write = is_write,
		.host_initiated = host_initiated,
		.vmm_takes_filter_exits = vmm_takes_filter_exits(vcpu->kvm),
		.read_completion_armed = READ_ONCE(read_completion_armed),
		.profile = vm->profile,
		.nested = is_guest_mode(vcpu),
	};

	msrguard_rust_on_access(guard_ctx, &facts, ans);
	/* Once per vCPU and pinned MSR: the value it holds, then the answer. */
	if (unlikely(ans->wants_held)) {
		facts.held_state = held_value(vcpu, msr, &facts.held) ? MSRGUARD_HELD_READ :
									 MSRGUARD_HELD_UNKNOWN;
		msrguard_rust_on_access(guard_ctx, &facts, ans);
	}
}

/* The VM's id and profile (Rust's VM table) and the coarse clock. */
static __always_inline void vm_and_time(const struct kvm *kvm, struct msrguard_vm *vm,
					u64 *coarse_ns)
{
	struct record_cache *cache = get_cpu_ptr(&record_cache);
	long generation = atomic_long_read(&vm_generation);
	unsigned long tick = READ_ONCE(jiffies);

	if (cache->kvm != kvm || cache->generation != generation) {
		msrguard_rust_vm(guard_ctx, kvm, &cache->vm);
		cache->kvm = kvm;
		cache->generation = generation;
	}
	if (cache->tick != tick) {
		cache->coarse_ns = ktime_get_coarse_real_ns();
		cache->tick = tick;
	}
	*vm = cache->vm;
	*coarse_ns = cache->coarse_ns;
	put_cpu_ptr(&record_cache);
}

/* @comm for a log line: control and non-ASCII bytes as '?' (a VMM names its threads). */
static void printable_comm(char comm[TASK_COMM_LEN])
{
	int i;

	for (i = 0; i < TASK_COMM_LEN && comm[i]; i++)
		if ((unsigned char)comm[i] < 0x20 || (unsigned char)comm[i] > 0x7e)
			comm[i] = '?';
}

/*
 * A new record: every field but the image's gathered, then Rust's
 * (msrguard_rust_new_event(): recorded now, or once the image holding Pc
 * is looked up on the vCPU's thread).
 */
static noinline void record_new(struct kvm_vcpu *vcpu, const struct msrguard_repeat *r,
				 u8 profile)
{
	struct msrguard_access a = {
		.value = r->value,
		.pc = r->pc,
		.timestamp_ns = ktime_get_real_ns(),
		.msr = r->msr,
		.vcpu_id = vcpu->vcpu_id,
		.vmm_pid = task_tgid_nr(current),
		.vm_id = r->vm_id,
		.is_write = r->is_write,
		.guest_cpl = 0,
		.guest_mode = guest_mode(vcpu),
		.status = r->status,
		.reason = r->reason,
		.profile = profile,
		.flags = (is_guest_mode(vcpu) ? MSRGUARD_FLAG_NESTED : 0) |
			 (vcpu->arch.guest_state_protected ? MSRGUARD_FLAG_STATE_PROTECTED : 0),
	};

	BUILD_BUG_ON(sizeof(a.vmm_comm) != TASK_COMM_LEN);
	memcpy(a.vmm_comm, current->comm, sizeof(a.vmm_comm));
	printable_comm(a.vmm_comm);
	msrguard_rust_new_event(guard_ctx, vcpu, &a, trace_msrguard_access_enabled());
}

/*
 * Records an event. A repeat of the VM's previous event (a flood, mostly)
 * only counts on that record: the coalescing fields and a coarse clock are
 * all it needs, so the rest of a record is gathered only for a new one. A
 * trace event shows every event in full: while it is enabled, there is no
 * shortcut.
 */
static __always_inline void record(struct kvm_vcpu *vcpu, const struct msrguard_vm *vm,
				   u64 now_ns, u64 pc, u32 msr, bool is_write, u64 value, u8 status,
				   u8 reason)
{
	struct msrguard_repeat r = {
		.value = value,
		.pc = pc,
		.now_ns = now_ns,
		.msr = msr,
		.vm_id = vm->id,
		.is_write = is_write,
		.status = status,
		.reason = reason,
	};

	if (!trace_msrguard_access_enabled() && msrguard_rust_repeat(guard_ctx, &r))
		return;
	record_new(vcpu, &r, vm->profile);
}

/* ---- The decision hooks ----------------------------------------------- */

/* A bare return: a handler that sets the IP here vetoes its function. */
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

/* ---- "ignore" only where KVM would succeed ------------------------------ */

/*
 * The tasks inside a wrapper: their call into KVM reaches the hooked read
 * function again, whose hook lets it through (current_in_wrapper()). A
 * wrapper may sleep in KVM: unloading waits until every slot is free.
 */
#define WRAPPER_SLOTS 64
static struct task_struct *in_wrapper[WRAPPER_SLOTS];
/* Slots taken: while 0 (nearly always), a vetoed read pays one load. */
static atomic_t wrappers_active = ATOMIC_INIT(0);

/* A slot for current, or -1 if all are taken. */
static int enter_wrapper(void)
{
	int i;

	/* Counted before the slot is taken: the hook never misses it. */
	atomic_inc(&wrappers_active);
	for (i = 0; i < WRAPPER_SLOTS; i++)
		if (!cmpxchg(&in_wrapper[i], NULL, current))
			return i;
	atomic_dec(&wrappers_active);
	return -1;
}

static void leave_wrapper(int slot)
{
	/* After KVM's read: unloading sees the slot free only once it is done. */
	smp_store_release(&in_wrapper[slot], NULL);
	atomic_dec(&wrappers_active);
}

static bool current_in_wrapper(void)
{
	int i;

	if (likely(!atomic_read(&wrappers_active)))
		return false;
	for (i = 0; i < WRAPPER_SLOTS; i++)
		if (READ_ONCE(in_wrapper[i]) == current)
			return true;
	return false;
}

static bool any_in_wrapper(void)
{
	int i;

	for (i = 0; i < WRAPPER_SLOTS; i++)
		if (READ_ONCE(in_wrapper[i]))
			return true;
	return false;
}

/* Records the event of an access the guard answered once KVM had. */
static void record_after_kvm(struct kvm_vcpu *vcpu, u32 msr, bool is_write, u64 value,
			     bool host_initiated)
{
	struct msrguard_answer ans;
	struct msrguard_vm vm;
	u64 now_ns;

	/*
	 * The same question as at the decision, asked again: the same answer
	 * (or a profile root changed in between: the new profile's).
	 */
	vm_and_time(vcpu->kvm, &vm, &now_ns);
	ask(vcpu, &vm, MSRGUARD_HOOK_DECISION, msr, is_write, value, host_initiated, &ans);
	record(vcpu, &vm, now_ns, guest_rip(vcpu), msr, is_write, value, ans.status, ans.reason);
}

/*
 * KVM's answer to the guest's read of @msr into @data (0: success), by
 * KVM's own function; 1 (KVM's generic failure: a veto, never a success)
 * if every wrapper slot is taken.
 */
static int kvm_answer(struct kvm_vcpu *vcpu, u32 msr, u64 *data)
{
	int slot = enter_wrapper(), ret;

	if (slot < 0)
		return 1;
	ret = READ_ONCE(kvm_guest_read)(vcpu, msr, data);
	leave_wrapper(slot);
	return ret;
}

/*
 * In place of kvm_get_msr_ignored_check() for an "ignore" read (always the
 * guest's: host-initiated reads are never vetoed): KVM's read runs; its
 * success becomes a 0 and an event, its failure stays KVM's
 * (msrguard_rust_after_kvm()). A guard only takes away.
 */
static int notrace ignored_read(struct kvm_vcpu *vcpu, u32 msr, u64 *data, bool host_initiated)
{
	bool zero_read, record_it;
	int ret;

	ret = msrguard_rust_after_kvm(kvm_answer(vcpu, msr, data), false, &zero_read, &record_it);
	if (zero_read)
		*data = 0;
	if (record_it)
		record_after_kvm(vcpu, msr, false, 0, host_initiated);
	return ret;
}

/*
 * In place of kvm_set_msr_ignored_check() for an "ignore" write: KVM's read
 * of the MSR for the guest stands in for the write (which would change the
 * MSR): where KVM refuses the MSR, the write fails as KVM fails it; where
 * KVM has it, the write is dropped, with an event.
 */
static int notrace ignored_write(struct kvm_vcpu *vcpu, u32 msr, u64 data, bool host_initiated)
{
	bool zero_read, record_it;
	u64 unused;
	int ret;

	ret = msrguard_rust_after_kvm(kvm_answer(vcpu, msr, &unused), true, &zero_read,
				      &record_it);
	if (record_it)
		record_after_kvm(vcpu, msr, true, data, host_initiated);
	return ret;
}

/*
 * kvm_get_msr_ignored_check(vcpu, index, u64 *data, bool host_initiated)
 * kvm_set_msr_ignored_check(vcpu, index, u64 data, bool host_initiated)
 */
static noinline void notrace decide(struct ftrace_regs *fregs, bool is_write)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)ftrace_regs_get_argument(fregs, 0);
	u32 msr = (u32)ftrace_regs_get_argument(fregs, 1);
	unsigned long data = ftrace_regs_get_argument(fregs, 2);
	/* A bool argument only defines its register's low byte. */
	bool host_initiated = (u8)ftrace_regs_get_argument(fregs, 3);
	u64 value = is_write ? data : 0;
	struct msrguard_answer ans;
	struct msrguard_vm vm;
	u64 now_ns;
	int ret;

	vm_and_time(vcpu->kvm, &vm, &now_ns);
	ask(vcpu, &vm, MSRGUARD_HOOK_DECISION, msr, is_write, value, host_initiated, &ans);
	if (ans.kvm == MSRGUARD_KVM_PROCEED && ans.record == MSRGUARD_RECORD_NEVER)
		return;
	if (ans.kvm == MSRGUARD_KVM_SUCCEED_IF_KVM_DOES) {
		/* KVM answers first (ignored_read/ignored_write), then the rule. */
		ftrace_regs_set_instruction_pointer(fregs, is_write ? (unsigned long)ignored_write
								    : (unsigned long)ignored_read);
		return;
	}

	if (ans.record == MSRGUARD_RECORD_NOW)
		record(vcpu, &vm, now_ns, guest_rip(vcpu), msr, is_write, value, ans.status,
		       ans.reason);
	if (ans.zero_read && !is_write)
		*(u64 *)data = 0;

	switch (ans.kvm) {
	case MSRGUARD_KVM_FAIL:
		ret = 1;
		break;
	case MSRGUARD_KVM_FAIL_FILTERED:
		ret = KVM_MSR_RET_FILTERED;
		break;
	case MSRGUARD_KVM_FAIL_UNSUPPORTED:
		ret = KVM_MSR_RET_UNSUPPORTED;
		break;
	default:
		return;
	}
	ftrace_regs_set_return_value(fregs, ret);
	ftrace_regs_set_instruction_pointer(fregs, (unsigned long)msrguard_return_stub);
}

/*
 * The allowed path is one question, asked before any fact is gathered:
 * decide() (not inlined, so that its frame is not built here) only runs
 * for an MSR the policy does not always allow.
 */
static void notrace get_check_hook(unsigned long ip, unsigned long parent_ip,
				   struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	if (likely(msrguard_rust_read_proceeds((u32)ftrace_regs_get_argument(fregs, 1))))
		return;
	/* ignored_read/ignored_write asking KVM: KVM answers. */
	if (current_in_wrapper())
		return;
	decide(fregs, false);
}

static void notrace set_check_hook(unsigned long ip, unsigned long parent_ip,
				   struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	if (likely(msrguard_rust_write_proceeds((u32)ftrace_regs_get_argument(fregs, 1))))
		return;
	decide(fregs, true);
}

/* ---- Audited reads, recorded at completion ----------------------------- */

struct read_call {
	struct kvm_vcpu *vcpu;
	u64 *data;
	u64 pc;
	u32 msr;
	u8 status;
	u8 reason;
};

static int notrace read_entry(struct fprobe *fp, unsigned long entry_ip, unsigned long ret_ip,
			      struct ftrace_regs *fregs, void *entry_data)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)ftrace_regs_get_argument(fregs, 0);
	u32 msr = (u32)ftrace_regs_get_argument(fregs, 1);
	bool host_initiated = (u8)ftrace_regs_get_argument(fregs, 3);
	struct read_call *c = entry_data;
	struct msrguard_answer ans;
	struct msrguard_vm vm;
	u64 now_ns;

	/* As on the decision hook: an allowed read is one question. */
	if (likely(msrguard_rust_read_proceeds(msr)))
		return 1;
	/* A wrapper's read for an "ignore" answer is not the guest's own. */
	if (current_in_wrapper())
		return 1;

	vm_and_time(vcpu->kvm, &vm, &now_ns);
	ask(vcpu, &vm, MSRGUARD_HOOK_READ_COMPLETION, msr, false, 0, host_initiated, &ans);
	if (ans.record != MSRGUARD_RECORD_AT_COMPLETION)
		return 1;	/* nothing to record: no return handler */
	c->vcpu = vcpu;
	c->data = (u64 *)ftrace_regs_get_argument(fregs, 2);
	/* Before KVM's function runs, RIP is still the instruction's. */
	c->pc = guest_rip(vcpu);
	c->msr = msr;
	c->status = ans.status;
	c->reason = ans.reason;
	return 0;
}

static void notrace read_exit(struct fprobe *fp, unsigned long entry_ip, unsigned long ret_ip,
			      struct ftrace_regs *fregs, void *entry_data)
{
	struct read_call *c = entry_data;
	int kvm_ret = (int)ftrace_regs_get_return_value(fregs);
	struct msrguard_vm vm;
	u64 now_ns;

	vm_and_time(c->vcpu->kvm, &vm, &now_ns);
	record(c->vcpu, &vm, now_ns, c->pc, c->msr, false,
	       msrguard_rust_completed_read_value(kvm_ret, *c->data), c->status, c->reason);
}

static struct fprobe read_completion = {
	.entry_handler = read_entry,
	.exit_handler = read_exit,
	.entry_data_size = sizeof(struct read_call),
};

/* ---- VM lifetimes -------------------------------------------------------- */

/*
 * A VM's entry lives exactly as long as KVM's MMU state of it: from
 * kvm_mmu_init_vm(kvm), which kvm_arch_init_vm() calls once the VM's type
 * was accepted, until kvm_mmu_uninit_vm(kvm), called by
 * kvm_arch_destroy_vm() after the vCPUs' teardown (whose MSR loads are
 * still the VM's) and by every later failure of the creation. A failure
 * before (an unsupported type) frees the VM without destroying it: an
 * entry made then would stay, and, repeated, as any user of /dev/kvm may,
 * such entries would fill the table and leave later VMs untracked, in the
 * default profile. (Left: kvm_mmu_init_vm's own ENOMEM with shadow
 * paging.) Both global in kvm.ko and hooked at their entry by plain
 * ftrace_ops: no return handler, so no function-graph tracing (and its
 * per-task shadow stacks) for them. Either moves the VM-id generation, so
 * no CPU keeps a cached id for an address whose VM changed.
 */
/*
 * The creating task's cgroup path on the unified hierarchy, from its root,
 * for the profiles' cgroup prefixes (at most 255 bytes, so a longer path's
 * first 255 bytes decide). kernfs_path() takes only a spinlock: usable here.
 */
#define CGROUP_PATH_LEN 256
static DEFINE_PER_CPU(char[CGROUP_PATH_LEN], cgroup_path_buf);

/* Still in the creating task: its cgroup chooses the profile. */
static void notrace vm_created_hook(unsigned long ip, unsigned long parent_ip,
				    struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct kvm *kvm = (struct kvm *)ftrace_regs_get_argument(fregs, 0);
	char *path = *get_cpu_ptr(&cgroup_path_buf);
	u32 len = 0;

#ifdef CONFIG_CGROUPS
	rcu_read_lock();
	if (cgroup_path(task_dfl_cgroup(current), path, CGROUP_PATH_LEN) > 0)
		len = strnlen(path, CGROUP_PATH_LEN);
	rcu_read_unlock();
#endif
	msrguard_rust_vm_created(guard_ctx, kvm, task_tgid_nr(current), (const u8 *)path, len);
	put_cpu_ptr(&cgroup_path_buf);
	atomic_long_inc(&vm_generation);
}

/*
 * kvm_arch_vcpu_precreate(kvm, id): KVM_CREATE_VCPU on a VM whose creation
 * finished. From here the VM's entry is trusted: listed, and root may give
 * it another profile (which takes a reference on its struct kvm: until
 * the creation finished, its failure path expects to drop the only one).
 */
static void notrace vcpu_precreate_hook(unsigned long ip, unsigned long parent_ip,
					struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct msrguard_vm vm;

	msrguard_rust_vm(guard_ctx, (struct kvm *)ftrace_regs_get_argument(fregs, 0), &vm);
}

static void notrace vm_destroyed_hook(unsigned long ip, unsigned long parent_ip,
				      struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	msrguard_rust_vm_destroyed(guard_ctx, (struct kvm *)ftrace_regs_get_argument(fregs, 0));
	atomic_long_inc(&vm_generation);
}

void msrguard_hooks_vms_changed(void)
{
	atomic_long_inc(&vm_generation);
}

/*
 * Test only: how long a profile change holds the VM it changes, a window in
 * which the VMM can close the VM and leave msrguard the last reference.
 */
static unsigned int test_profile_pause_ms;
module_param(test_profile_pause_ms, uint, 0444);
MODULE_PARM_DESC(test_profile_pause_ms,
		 "Test only: pause while a profile change holds its VM, in ms (at most 10000)");

/*
 * kvm_get_kvm_safe() without linking to kvm (msrguard may load before
 * kvm.ko): kvm_put_kvm through symbol_get(), whose reference on kvm.ko
 * stays until msrguard_kvm_recalc_intercepts_put() has put the VM; and the
 * vendor module, through which that put may destroy the VM.
 */
bool msrguard_kvm_get(const struct kvm *kvm)
{
	if (!msrguard_vendor_get())
		return false;
	if (!symbol_get(kvm_put_kvm))
		goto no_kvm_module;
	if (refcount_inc_not_zero(&((struct kvm *)kvm)->users_count))
		return true;
	symbol_put(kvm_put_kvm);
no_kvm_module:
	msrguard_vendor_put();
	return false;
}

void msrguard_kvm_recalc_intercepts_put(const struct kvm *kvm)
{
	struct kvm *vm = (struct kvm *)kvm;
	void (*put)(struct kvm *kvm);
	struct kvm_vcpu *vcpu;
	unsigned long i;

	if (test_profile_pause_ms)
		msleep(min(test_profile_pause_ms, 10000U));
	/* Checked before each entry: set_intercept_hook asks the new profile. */
	kvm_for_each_vcpu(i, vcpu, vm)
		kvm_make_request(KVM_REQ_RECALC_INTERCEPTS, vcpu);
	/* msrguard_kvm_get() holds kvm.ko: the symbol is there. */
	put = symbol_get(kvm_put_kvm);
	if (!WARN_ON_ONCE(!put)) {
		put(vm);
		symbol_put(kvm_put_kvm);
	}
	symbol_put(kvm_put_kvm);
	msrguard_vendor_put();
}

/* ---- Intercepts -------------------------------------------------------- */

/*
 * svm_set_intercept_for_msr(vcpu, msr, int type, bool set) and the VMX twin:
 * a request to stop intercepting (set == false) becomes a request to keep
 * intercepting when the VM's profile does not allow every such access (or
 * pins the MSR). Both kinds stay intercepted if either is denied. KVM
 * calls it when it creates a vCPU and when it recomputes the vCPU's
 * intercepts (KVM_REQ_RECALC_INTERCEPTS, which a profile change makes).
 */
static void notrace set_intercept_hook(unsigned long ip, unsigned long parent_ip,
				       struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct kvm_vcpu *vcpu = (struct kvm_vcpu *)ftrace_regs_get_argument(fregs, 0);
	u32 msr = (u32)ftrace_regs_get_argument(fregs, 1);
	int type = (int)ftrace_regs_get_argument(fregs, 2);
	struct msrguard_vm vm;
	u64 now_ns;

	if ((u8)ftrace_regs_get_argument(fregs, 3))
		return;
	vm_and_time(vcpu->kvm, &vm, &now_ns);
	if (((type & MSR_TYPE_R) && !msrguard_rust_may_pass_through(vm.profile, msr, false)) ||
	    ((type & MSR_TYPE_W) && !msrguard_rust_may_pass_through(vm.profile, msr, true))) {
		/* The saved argument registers are restored into the call. */
		arch_ftrace_regs(fregs)->regs.cx = 1;
		atomic64_inc(&intercepts_kept);
	}
}

/* ---- Arming and disarming with the KVM modules ------------------------ */

struct hook {
	const char *function;
	struct ftrace_ops ops;
};

#define HOOK(fn, handler, extra_flags) {				\
	.function = fn,							\
	.ops = { .func = handler, .flags = (extra_flags) },		\
}

/*
 * The decision hooks veto by changing the IP, and are permanent, as
 * livepatch's: while they are armed, sysctl kernel.ftrace_enabled cannot be
 * turned off (which would switch the guard off).
 */
#define DECISION_FLAGS (FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT)
static struct hook kvm_hooks[] = {
	/*
	 * VM lifetimes first: each VM's id (a VM older than these gets one
	 * lazily), and no entry a decision hook makes for a VM older than
	 * msrguard may outlive it (its destruction seen by the hook already).
	 * Destructions before creations: no entry made meanwhile outlives its
	 * VM.
	 */
	HOOK("kvm_mmu_uninit_vm", vm_destroyed_hook, 0),
	HOOK("kvm_mmu_init_vm", vm_created_hook, 0),
	HOOK("kvm_arch_vcpu_precreate", vcpu_precreate_hook, 0),
	HOOK("kvm_get_msr_ignored_check", get_check_hook, DECISION_FLAGS),
	HOOK("kvm_set_msr_ignored_check", set_check_hook, DECISION_FLAGS),
};
static struct hook svm_hooks[] = {
	HOOK("svm_set_intercept_for_msr", set_intercept_hook, 0),
};
static struct hook vmx_hooks[] = {
	HOOK("vmx_set_intercept_for_msr", set_intercept_hook, 0),
};

/* Hooks of one KVM module, armed while it is loaded. */
struct hook_set {
	const char *module;
	const char *witness;	/* a function the module always has */
	struct hook *hooks;
	unsigned int nr_hooks;
	bool has_read_completion;
	bool armed;
	/*
	 * The module while it is armed (RCU: cleared, then a grace period,
	 * when it goes), for msrguard_vendor_get(); NULL when built in.
	 */
	struct module *mod;
	bool builtin;
};

static struct hook_set hook_sets[] = {
	{ "kvm", "kvm_vcpu_ioctl", kvm_hooks, ARRAY_SIZE(kvm_hooks), true },
	{ "kvm_amd", "svm_vcpu_run", svm_hooks, ARRAY_SIZE(svm_hooks), false },
	{ "kvm_intel", "vmx_vcpu_run", vmx_hooks, ARRAY_SIZE(vmx_hooks), false },
};

/* Serializes arming, disarming and the audit hooks' state. */
static DEFINE_MUTEX(arm_lock);
/*
 * msrguard is going (unload or failed init): nothing is armed any more.
 * Set under arm_lock before the module notifier goes, so that a KVM module
 * coming in between is not hooked by a set about to be disarmed.
 */
static bool exiting;
/* mode=audit wants the read-completion fprobe while kvm is armed. */
static bool audit_wanted;

/* kvm_get_msr_ignored_check's ftrace call site, found when kvm is armed. */
static unsigned long get_check_site;

static int arm_read_completion(void)
{
	int ret = register_fprobe_ips(&read_completion, &get_check_site, 1);

	if (ret) {
		pr_err("cannot hook kvm_get_msr_ignored_check for audited reads (%d)\n", ret);
		return ret;
	}
	WRITE_ONCE(read_completion_armed, true);
	return 0;
}

static void disarm_read_completion(void)
{
	if (!read_completion_armed)
		return;
	WRITE_ONCE(read_completion_armed, false);
	unregister_fprobe(&read_completion);
}

static void detach(struct hook *h)
{
	unregister_ftrace_function(&h->ops);
	ftrace_free_filter(&h->ops);
}

/*
 * By address: a filter by name reads the name of every traceable function
 * of the kernel, which made arming take seconds in an emulated VM.
 */
static int attach(const char *module, struct hook *h)
{
	unsigned long site = msrguard_ftrace_site(module, h->function);
	int ret;

	ret = site ? ftrace_set_filter_ip(&h->ops, site, 0, 1) : -ENOENT;
	if (!ret)
		ret = register_ftrace_function(&h->ops);
	if (ret) {
		ftrace_free_filter(&h->ops);
		pr_err("no hook on %s (%d): unsupported kernel?\n", h->function, ret);
	}
	return ret;
}

static void disarm_set(struct hook_set *set)
{
	int i;

	if (!set->armed)
		return;
	for (i = 0; i < set->nr_hooks; i++)
		detach(&set->hooks[i]);
	if (set->has_read_completion)
		disarm_read_completion();
	set->armed = false;
	pr_info("disarmed (%s)\n", set->module);
}

/*
 * @name of @module, checked callable indirectly: with IBT, an indirect call
 * must land on an ENDBR (or it is a #CP, an oops). Only address-taken
 * functions (exported ones) keep theirs. 0 and the address, or -errno.
 */
static int find_callable(const char *module, const char *name, unsigned long *out)
{
	unsigned long addr = msrguard_function_address(module, name);

	if (!addr) {
		pr_err("refusing to arm: %s has no function %s\n", module, name);
		return -ENOENT;
	}
#ifdef CONFIG_X86_KERNEL_IBT
	if (cpu_feature_enabled(X86_FEATURE_IBT)) {
		u32 insn;

		if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)) ||
		    insn != gen_endbr()) {
			pr_err("refusing to arm: %s has no ENDBR: it cannot be called indirectly with IBT\n",
			       name);
			return -ENOEXEC;
		}
	}
#endif
	*out = addr;
	return 0;
}

/*
 * The wrappers' way into KVM (kvm_guest_read), found when kvm is armed
 * rather than linked: msrguard loads without kvm, and arms once it comes.
 */
static int find_kvm_functions(const char *module)
{
	unsigned long read;
	int ret;

	ret = find_callable(module, "__kvm_emulate_msr_read", &read);
	if (ret)
		return ret;
	WRITE_ONCE(kvm_guest_read, (typeof(kvm_guest_read))read);
	get_check_site = msrguard_ftrace_site(module, "kvm_get_msr_ignored_check");
	if (!get_check_site) {
		pr_err("refusing to arm: kvm_get_msr_ignored_check is not traceable\n");
		return -ENOENT;
	}
	return 0;
}

/* Arms every hook of @set or none. Caller holds arm_lock. */
static int arm_set(struct hook_set *set)
{
	int ret = 0, i;

	const char *functions[ARRAY_SIZE(kvm_hooks)];

	if (set->armed)
		return 0;
	/* What is hooked is what the guest paths call (verify.c). */
	if (WARN_ON_ONCE(set->nr_hooks > ARRAY_SIZE(functions)))
		return -EINVAL;
	for (i = 0; i < set->nr_hooks; i++)
		functions[i] = set->hooks[i].function;
	ret = msrguard_verify_hooks(set->module, functions, set->nr_hooks);
	if (ret)
		return ret;
	if (set->has_read_completion) {
		ret = find_kvm_functions(set->module);
		if (ret)
			return ret;
	}
	/* Audit's completion hook first: no audited read goes unseen. */
	if (set->has_read_completion && audit_wanted)
		ret = arm_read_completion();
	for (i = 0; i < set->nr_hooks && !ret; i++) {
		ret = attach(set->module, &set->hooks[i]);
		if (ret)
			break;
	}
	if (ret) {
		while (i--)
			detach(&set->hooks[i]);
		if (set->has_read_completion)
			disarm_read_completion();
		return ret;
	}
	set->armed = true;
	pr_info("armed (%s)\n", set->module);
	return 0;
}

int msrguard_hooks_set_audit(bool audit)
{
	struct hook_set *kvm = &hook_sets[0];
	int ret = 0;

	mutex_lock(&arm_lock);
	audit_wanted = audit;
	if (audit && kvm->armed && !read_completion_armed)
		ret = arm_read_completion();
	else if (!audit)
		disarm_read_completion();
	if (ret)
		audit_wanted = false;
	mutex_unlock(&arm_lock);
	return ret;
}

static struct hook_set *set_of(const char *module)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(hook_sets); i++)
		if (!strcmp(hook_sets[i].module, module))
			return &hook_sets[i];
	return NULL;
}

/* The set of the vendor module this host's VMs run on. */
static struct hook_set *vendor_set(void)
{
	return set_of(host_is_vmx ? "kvm_intel" : "kvm_amd");
}

/*
 * msrguard may drop a VM's last reference (a profile change, task work),
 * which destroys the VM through the vendor module's code. The VM's files
 * pin the vendor module, msrguard's reference does not: without this one,
 * the VMM could close the VM and root unload kvm_amd in between. Held
 * with each VM reference msrguard takes; an unload meanwhile is refused
 * ("in use"). False if the vendor module is not loaded or going.
 */
bool msrguard_vendor_get(void)
{
	struct hook_set *set = vendor_set();
	struct module *mod;
	bool held;

	if (!set)
		return false;
	if (READ_ONCE(set->builtin))
		return true;
	rcu_read_lock();
	mod = READ_ONCE(set->mod);
	held = mod && try_module_get(mod);
	rcu_read_unlock();
	return held;
}

void msrguard_vendor_put(void)
{
	struct hook_set *set = vendor_set();
	struct module *mod;

	if (!set || READ_ONCE(set->builtin))
		return;
	/* The reference taken keeps the module, and set->mod, as they were. */
	mod = READ_ONCE(set->mod);
	if (!WARN_ON_ONCE(!mod))
		module_put(mod);
}

/*
 * The struct module of @set, loaded before msrguard: found by name in the
 * sysfs kset every module's kobject is in (msrguard's too); the kobject
 * reference keeps the struct there (free_module() waits for it) while
 * try_module_get() checks that it is not going. A name without a module
 * behind it is built in (kvm_amd and kvm_intel have parameters, so a
 * built-in one has its kobject). NULL when built in, going (its GOING
 * notification follows), or still loading: its kobject comes after the
 * COMING notification, and its LIVE one gives the module instead.
 */
static struct module *loaded_module(struct hook_set *set)
{
#ifdef MODULE
	struct kobject *kobj = kset_find_obj(THIS_MODULE->mkobj.kobj.kset, set->module);
	struct module *mod;

	if (!kobj)
		return NULL;
	mod = container_of(kobj, struct module_kobject, kobj)->mod;
	if (!mod)
		set->builtin = true;
	else if (try_module_get(mod))
		module_put(mod);
	else
		mod = NULL;
	kobject_put(kobj);
	return mod;
#else
	set->builtin = true;
	return NULL;
#endif
}

/*
 * The KVM modules come and go. Hooks go in while a module is COMING (before
 * any VM can exist); if they cannot, the module is refused: an unguarded
 * KVM is what msrguard exists to prevent. They go out while it is GOING.
 */
static int kvm_module_event(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	struct hook_set *set = set_of(mod->name);
	bool forgotten = false;
	int ret = 0;

	if (!set)
		return NOTIFY_DONE;

	mutex_lock(&arm_lock);
	if (state == MODULE_STATE_COMING && exiting) {
		pr_info("%s loads while msrguard goes: not hooked\n", mod->name);
	} else if (state == MODULE_STATE_COMING) {
		ret = arm_set(set);
		if (!ret)
			WRITE_ONCE(set->mod, mod);
	} else if (state == MODULE_STATE_LIVE) {
		/* Armed at msrguard's load while it was loading, before its kobject. */
		if (set->armed && !set->mod)
			WRITE_ONCE(set->mod, mod);
	} else if (state == MODULE_STATE_GOING) {
		disarm_set(set);
		forgotten = set->mod;
		WRITE_ONCE(set->mod, NULL);
	}
	mutex_unlock(&arm_lock);
	/* No msrguard_vendor_get() still holds the pointer: it is freed next. */
	if (forgotten)
		synchronize_rcu();

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
static int module_is_loaded(const struct hook_set *set, bool *loaded)
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

/*
 * Test only: how long the unload waits between disarming and no longer
 * following the KVM modules, a window a KVM module's reload can then hit.
 */
static unsigned int test_exit_pause_ms;
module_param(test_exit_pause_ms, uint, 0444);
MODULE_PARM_DESC(test_exit_pause_ms, "Test only: pause inside the unload, in ms (at most 10000)");

/*
 * Disarms everything, then stops following the KVM modules: in the other
 * order, a KVM module that goes and comes back in between would keep (or
 * get, at whatever function now sits at the old address) a hook.
 */
static void disarm_all(void)
{
	int i;

	mutex_lock(&arm_lock);
	exiting = true;
	for (i = ARRAY_SIZE(hook_sets) - 1; i >= 0; i--)
		disarm_set(&hook_sets[i]);
	mutex_unlock(&arm_lock);
	if (test_exit_pause_ms)
		msleep(min(test_exit_pause_ms, 10000U));
	unregister_module_notifier(&kvm_module_nb);
	/*
	 * A task may still be between a handler and the return stub or a
	 * wrapper (it can be preempted there); both are in our text, freed
	 * after unload. Then the wrappers, which may sleep in KVM, and the
	 * return from the last one.
	 */
	synchronize_rcu_tasks();
	while (any_in_wrapper())
		msleep(20);
	synchronize_rcu_tasks();
}

int msrguard_hooks_init(const void *guard)
{
	int ret, i;

	guard_ctx = guard;
	host_is_vmx = boot_cpu_has(X86_FEATURE_VMX);

	ret = register_module_notifier(&kvm_module_nb);
	if (ret)
		return ret;

	/*
	 * Modules already loaded are armed now; the notifier arms the others
	 * when they come. A loaded module that lacks a hook point (an
	 * unsupported kernel) fails the load.
	 */
	mutex_lock(&arm_lock);
	for (i = 0; i < ARRAY_SIZE(hook_sets) && !ret; i++) {
		struct hook_set *set = &hook_sets[i];
		bool loaded;

		ret = module_is_loaded(set, &loaded);
		if (ret) {
			pr_err("cannot tell whether %s is loaded (%d)\n", set->module, ret);
		} else if (!loaded) {
			pr_info("%s is not loaded: its hooks are armed when it loads\n", set->module);
		} else {
			/*
			 * Before the hooks: none takes a VM without the vendor
			 * module. Not over what its COMING notification gave.
			 */
			if (!set->mod)
				WRITE_ONCE(set->mod, loaded_module(set));
			ret = arm_set(set);
		}
	}
	mutex_unlock(&arm_lock);
	if (ret)
		disarm_all();
	return ret;
}

void msrguard_hooks_exit(void)
{
	disarm_all();
	pr_info("kept %lld MSR intercepts the policy does not allow to drop\n",
		(long long)atomic64_read(&intercepts_kept));
}
