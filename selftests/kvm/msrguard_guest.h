/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code the libkvm programs share: rdmsr_safe()/wrmsr_safe() and their
 * forced-emulation forms that also give the instruction's address, and a
 * guest doing one access per GUEST_SYNC for access_in_guest(). In a header,
 * static: LIBKVM runs a program's own image as its guest, so each program
 * needs its copy.
 */
#ifndef MSRGUARD_GUEST_H
#define MSRGUARD_GUEST_H

#include "kvm_util.h"
#include "processor.h"

/* An asm operand list as one macro argument. */
#define COMMA ,

/*
 * KVM_ASM_SAFE{,_FEP}(insn) with the address of the label "1:" those macros
 * put on the instruction: an event's Pc must be it.
 */
#define MSR_SAFE_AT(safe, insn, pc_out, vec, outputs, inputs...)			\
do {										\
	u64 __ec;								\
	asm volatile("lea 1f(%%rip), %[pc]\n\t" safe(insn)			\
		     : outputs, [pc] "=&r"(pc_out), KVM_ASM_SAFE_OUTPUTS(vec, __ec)	\
		     : inputs : KVM_ASM_SAFE_CLOBBERS);				\
} while (0)

static inline u8 rdmsr_safe_at(u32 msr, u64 *val, u64 *pc, bool fep)
{
	u32 a, d;
	u8 vec;

	if (fep)
		MSR_SAFE_AT(KVM_ASM_SAFE_FEP, "rdmsr", *pc, vec, "=a"(a) COMMA "=d"(d), "c"(msr));
	else
		MSR_SAFE_AT(KVM_ASM_SAFE, "rdmsr", *pc, vec, "=a"(a) COMMA "=d"(d), "c"(msr));
	*val = (u64)a | ((u64)d << 32);
	return vec;
}

static inline u8 wrmsr_safe_at(u32 msr, u64 val, u64 *pc, bool fep)
{
	u32 a = val, d = val >> 32;
	u8 vec;

	if (fep)
		MSR_SAFE_AT(KVM_ASM_SAFE_FEP, "wrmsr", *pc, vec, "+a"(a) COMMA "+d"(d), "c"(msr));
	else
		MSR_SAFE_AT(KVM_ASM_SAFE, "wrmsr", *pc, vec, "+a"(a) COMMA "+d"(d), "c"(msr));
	return vec;
}

/* The access access_guest() does next (sync_global_to_guest). */
static struct {
	u32 msr;
	bool write;
	u64 value;
} access_args;

/* The last access's instruction address, and what a RDMSR read (sync_global_from_guest). */
static u64 access_pc, access_read;

/* One access per GUEST_SYNC, whose argument is the vector the guest saw. */
static inline void access_guest(void)
{
	for (;;) {
		u64 val;
		u8 vec = access_args.write ?
			 wrmsr_safe_at(access_args.msr, access_args.value, &access_pc, false) :
			 rdmsr_safe_at(access_args.msr, &val, &access_pc, false);

		if (!access_args.write)
			access_read = val;
		GUEST_SYNC(vec);
	}
}

/*
 * Has @vcpu, running access_guest(), do one access: the vector the guest
 * saw and *@pc the instruction's address, or -1 with the exit (not a ucall)
 * left in vcpu->run.
 */
static inline int access_in_guest(struct kvm_vcpu *vcpu, u32 msr, bool write, u64 value, u64 *pc)
{
	struct ucall uc;

	access_args.msr = msr;
	access_args.write = write;
	access_args.value = value;
	sync_global_to_guest(vcpu->vm, access_args);
	vcpu_run(vcpu);
	if (vcpu->run->exit_reason != KVM_EXIT_IO)
		return -1;
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	if (pc) {
		sync_global_from_guest(vcpu->vm, access_pc);
		*pc = access_pc;
	}
	return uc.args[1];
}

/*
 * Floods for the storm and the fuzz: at each run, wrmsr_steps_guest(SLOT)
 * does wrmsr_steps[SLOT].count WRMSRs of .msr starting at .value, which
 * advances by one after each access that leaves a remaining count with no
 * bit of .hold set (.hold = 0: all distinct; 2^k - 1: runs of 2^k identical
 * values, for a count that is a multiple of 2^k). One slot per vCPU.
 */
struct wrmsr_steps {
	u32 msr;
	u32 count;
	u32 hold;
	u64 value;
};

#define WRMSR_STEPS_SLOTS 4
static struct wrmsr_steps wrmsr_steps[WRMSR_STEPS_SLOTS];

/* GUEST_SYNC's argument: how many of the run's accesses raised #GP. */
static inline void wrmsr_steps_guest(u32 slot)
{
	for (;;) {
		const volatile struct wrmsr_steps *s = &wrmsr_steps[slot];
		u32 left = s->count, hold = s->hold, msr = s->msr, gp = 0;
		u64 value = s->value;

		while (left) {
			gp += wrmsr_safe(msr, value) == GP_VECTOR;
			if (--left && !(left & hold))
				value++;
		}
		GUEST_SYNC(gp);
	}
}

/* The next run's accesses of @vcpu, which runs wrmsr_steps_guest(@slot). */
static inline void wrmsr_steps_set(struct kvm_vcpu *vcpu, u32 slot, u32 msr, u64 value,
				   u32 count, u32 hold)
{
	struct wrmsr_steps *s = addr_gva2hva(vcpu->vm, (gva_t)&wrmsr_steps[slot]);

	*s = (struct wrmsr_steps){ .msr = msr, .count = count, .hold = hold, .value = value };
}

/*
 * After a run of wrmsr_steps_guest(): the number of #GPs it reports, or -1
 * if the run ended in anything but its GUEST_SYNC.
 */
static inline int wrmsr_steps_result(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	if (vcpu->run->exit_reason != KVM_EXIT_IO || get_ucall(vcpu, &uc) != UCALL_SYNC)
		return -1;
	return uc.args[1];
}

/* What the last RDMSR of access_in_guest() read (without a fault). */
static inline u64 access_read_value(struct kvm_vcpu *vcpu)
{
	sync_global_from_guest(vcpu->vm, access_read);
	return access_read;
}

#endif
