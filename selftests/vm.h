/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal KVM guest for msrguard's tests: one vCPU in real mode, no
 * in-kernel LAPIC (so HLT exits to us), code from guest.S.
 */
#ifndef MSRGUARD_VM_H
#define MSRGUARD_VM_H

/* Where guest.S's code is copied, and where the real-mode stack starts. */
#define GUEST_CODE_GPA 0x1000
#define GUEST_STACK_TOP 0x8000
#define GUEST_MEM_SIZE 0x100000
/* guest_call64 calls the 64-bit address stored here. */
#define GUEST_CALL_TARGET_GPA 0xe000
/* Page-table pages vm_map_page() takes, in this guest physical range. */
#define GUEST_PT_POOL_GPA 0x20000
#define GUEST_PT_POOL_END 0x30000

/* guest.S includes the addresses above. */
#ifndef __ASSEMBLER__

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "msrguard_host.h"

extern const char guest_code_start[], guest_code_end[];
extern const char guest_rdmsr[], guest_wrmsr[], guest_rdmsr_after_nops[];
extern const char guest_rdmsr_fep[], guest_wrmsr_fep[];
extern const char guest_rdmsr_loop[], guest_wrmsr_loop[];
extern const char guest_wrmsr_steps[];
extern const char guest_gp_handler[], guest_ud_handler[];
extern const char guest_gp_handler64[];
extern const char guest_call64[], guest_wrmsr_loop64[], guest_wrmsr_steps64[];

/* The CPU mode vm_run_entry() starts the guest in. */
enum guest_cpu_mode { GUEST_REAL_MODE, GUEST_LONG_MODE };

struct vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	enum guest_cpu_mode mode;
	uint64_t pt_next;	/* next free page-table page for vm_map_page() */
};

/*
 * A further vCPU of a struct vm (which holds vCPU 0), for tests that run
 * several vCPUs of one VM from several threads. Each has its own real-mode
 * stack below GUEST_STACK_TOP, so their #GP handlers do not collide.
 */
struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
};

#define GUEST_STACK_PER_VCPU 0x400
#define GUEST_MAX_VCPUS 8

/* What the guest saw when it halted (or why it stopped). */
struct guest_result {
	uint32_t exit_reason;	/* KVM_EXIT_* of the final exit */
	uint32_t fault_vector;	/* 0, or 13 (#GP) / 6 (#UD) */
	uint64_t value;		/* EDX:EAX after the access */
	uint64_t rip;		/* RIP at the exit */
	int err;		/* errno of a failed KVM_RUN */
};

/* Guest physical address of an entry point in guest.S. */
static inline uint64_t guest_gpa(const char *entry)
{
	return GUEST_CODE_GPA + (uint64_t)(entry - guest_code_start);
}

/* Returns 0 or a negative errno, with a message on stderr. */
int vm_create(struct vm *vm);
void vm_destroy(struct vm *vm);

/*
 * Runs the guest from @entry with ECX = @msr, EDX:EAX = @value and
 * EBX = @count until it halts or something else exits to userspace.
 */
int vm_run_entry(struct vm *vm, const char *entry, uint32_t msr,
		 uint64_t value, uint32_t count, struct guest_result *res);

/*
 * vm_run_entry() with ESI = @esi too (guest_wrmsr_steps's step mask), on
 * vCPU 0 of @vm (@vcpu NULL) or on @vcpu.
 */
int vm_run_entry_esi(struct vm *vm, struct vcpu *vcpu, const char *entry, uint32_t msr,
		     uint64_t value, uint32_t count, uint32_t esi, struct guest_result *res);

/*
 * After a run that stopped where it should not have: the vCPU's registers,
 * its pending/injected events, the bytes at CS:IP, its real-mode stack and
 * the exit's details, into @buf (for a failure message).
 */
void vcpu_describe(struct vm *vm, struct vcpu *vcpu, char *buf, size_t len);

/* Adds vCPU @id (1..GUEST_MAX_VCPUS-1) to @vm: 0 or a negative errno. */
int vm_add_vcpu(struct vm *vm, struct vcpu *vcpu, int id);
void vcpu_destroy(struct vcpu *vcpu);

/*
 * Makes later vm_run_entry() calls start in @mode: long mode uses identity
 * page tables, a flat 64-bit GDT and an IDT with a #GP handler, all set up
 * here in guest memory, and the vCPU gets the CPUID KVM supports. Returns 0
 * or a negative errno.
 */
int vm_set_mode(struct vm *vm, enum guest_cpu_mode mode);

/*
 * Long mode only: maps the 4 KiB page at guest virtual @va to guest physical
 * @gpa (writable, supervisor), or unmaps it if @gpa is -1. Takes page-table
 * pages from GUEST_PT_POOL_GPA. Effective at the next vm_run_entry() (which
 * reloads CR3). Returns 0 or -ENOMEM.
 */
int vm_map_page(struct vm *vm, uint64_t va, uint64_t gpa);

/* Read one MSR of the vCPU the way a VMM does (KVM_GET_MSRS). */
int vm_get_msr(struct vm *vm, uint32_t msr, uint64_t *value);

/* Write one MSR of the vCPU the way a VMM does (KVM_SET_MSRS). */
int vm_set_msr(struct vm *vm, uint32_t msr, uint64_t value);

#endif /* __ASSEMBLER__ */
#endif
