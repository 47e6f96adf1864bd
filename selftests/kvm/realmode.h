/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A guest LIBKVM does not give: one vCPU starting in real mode, no
 * in-kernel LAPIC (so HLT exits to us), its code from realmode_guest.S at a
 * fixed low address. For what only real mode shows (16-bit Pcs, mode=real
 * events) and the exit benchmark's real-mode cases, whose loops are a few
 * instructions each. The VM and the vCPU are LIBKVM's
 * (vm_create_barebones(), __vm_vcpu_add()); everything else is on LIBKVM's
 * own guests.
 */
#ifndef MSRGUARD_REALMODE_H
#define MSRGUARD_REALMODE_H

/* Where realmode_guest.S's code is copied, and where the real-mode stack starts. */
#define GUEST_CODE_GPA 0x1000
#define GUEST_STACK_TOP 0x8000
#define GUEST_MEM_SIZE 0x100000

/* realmode_guest.S includes the addresses above. */
#ifndef __ASSEMBLER__

#include <stdint.h>

#include "kvm_util.h"

extern const char guest_code_start[], guest_code_end[];
extern const char guest_rdmsr[], guest_wrmsr[], guest_rdmsr_after_nops[];
extern const char guest_rdmsr_fep[], guest_wrmsr_fep[];
extern const char guest_rdmsr_loop[], guest_wrmsr_loop[];
extern const char guest_wrmsr_steps[];
extern const char guest_gp_handler[], guest_ud_handler[];

struct guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint8_t *mem;		/* guest physical 0 .. GUEST_MEM_SIZE */
};

/* What the guest saw when it halted (or why it stopped). */
struct guest_result {
	uint32_t exit_reason;	/* KVM_EXIT_* of the final exit */
	uint32_t fault_vector;	/* 0, or 13 (#GP) / 6 (#UD) */
	uint64_t value;		/* EDX:EAX after the access */
	uint64_t rip;		/* RIP at the exit */
	int err;		/* errno of a failed KVM_RUN */
};

/* Guest physical address of an entry point in realmode_guest.S. */
static inline uint64_t guest_gpa(const char *entry)
{
	return GUEST_CODE_GPA + (uint64_t)(entry - guest_code_start);
}

/* A real-mode guest; LIBKVM ends the program with its reason if it cannot. */
void guest_create(struct guest *g);
void guest_destroy(struct guest *g);

/*
 * Runs the guest from @entry with ECX = @msr, EDX:EAX = @value, EBX =
 * @count and ESI = 0 until it halts or something else exits to userspace:
 * 0 or the negative errno of a failed KVM_RUN.
 */
int guest_run(struct guest *g, const char *entry, uint32_t msr, uint64_t value, uint32_t count,
	      struct guest_result *res);

#endif /* __ASSEMBLER__ */
#endif
