/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code for the real-mode guest (realmode.c). The host copies the bytes
 * between guest_code_start and guest_code_end to guest physical address
 * GUEST_CODE_GPA, points RIP at one entry and sets ECX/EAX/EDX/EBX. Every
 * entry ends in HLT, which exits to the host (no in-kernel LAPIC).
 *
 * Faults: #GP and #UD handlers store the vector in EDI; #GP skips the
 * faulting two-byte RDMSR/WRMSR (like the kernel's rdmsr_safe fixups), #UD
 * halts where it is.
 */
#include "realmode.h"

	.code16
	.section .rodata.guest, "a"
	.globl guest_code_start, guest_code_end
	.globl guest_rdmsr, guest_wrmsr, guest_rdmsr_fep, guest_wrmsr_fep
	.globl guest_rdmsr_loop, guest_wrmsr_loop, guest_wrmsr_steps
	.globl guest_gp_handler, guest_ud_handler
	.globl guest_rdmsr_after_nops

guest_code_start:

/* ECX = index; result in EDX:EAX. */
guest_rdmsr:
	rdmsr
	hlt

/* ECX = index, EDX:EAX = value. */
guest_wrmsr:
	wrmsr
	hlt

/* The same through KVM's forced-emulation prefix (ud2; "kvm"). */
guest_rdmsr_fep:
	ud2
	.ascii "kvm"
	rdmsr
	hlt

guest_wrmsr_fep:
	ud2
	.ascii "kvm"
	wrmsr
	hlt

/* EBX times RDMSR of ECX: one exit each, for the benchmarks. */
guest_rdmsr_loop:
	rdmsr
	decl %ebx
	jnz guest_rdmsr_loop
	hlt

/* EBX times WRMSR of EDX:EAX to ECX (WRMSR leaves them as they are). */
guest_wrmsr_loop:
	wrmsr
	decl %ebx
	jnz guest_wrmsr_loop
	hlt

/*
 * EBX times WRMSR of ECX with EDX:EAX, one exit each (a vetoed one's #GP is
 * skipped by the handler). EAX advances by one after each access that
 * leaves a remaining count with no bit of ESI set: ESI = 0 gives EBX
 * distinct values, ESI = 2^k - 1 runs of 2^k identical ones (for an EBX
 * that is a multiple of 2^k).
 */
guest_wrmsr_steps:
	wrmsr
	decl %ebx
	jz 2f
	testl %esi, %ebx
	jnz guest_wrmsr_steps
	incl %eax
	jmp guest_wrmsr_steps
2:	hlt

/*
 * RDMSR two bytes past the entry: a Pc taken from the RIP KVM last wrote
 * (the entry) instead of the VMCS would be wrong here.
 */
guest_rdmsr_after_nops:
	nop
	nop
	rdmsr
	hlt

guest_gp_handler:
	movl $13, %edi
	push %bp
	mov %sp, %bp
	addw $2, 2(%bp)		/* return IP: past the 2-byte RDMSR/WRMSR */
	pop %bp
	iret

guest_ud_handler:
	movl $6, %edi
	hlt

guest_code_end:
	.section .note.GNU-stack, "", @progbits
