/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code for the real-mode guest (realmode.c), real mode unless
 * guest_set_mode() switches the vCPU to long mode (the access stubs are the
 * same bytes in both). The host copies the bytes
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
	.globl guest_gp_handler64, guest_rdmsr_after_nops
	.globl guest_wrmsr_loop64, guest_wrmsr_steps64

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

/*
 * 64-bit #GP handler (IDT entry 13 in long mode): the CPU pushed an error
 * code, then RIP, CS, RFLAGS, RSP, SS.
 */
	.code64
guest_gp_handler64:
	movl $13, %edi
	addq $8, %rsp		/* drop the error code */
	addq $2, (%rsp)		/* return RIP: past the 2-byte RDMSR/WRMSR */
	iretq

/*
 * Long mode: guest_wrmsr_loop and guest_wrmsr_steps again, for the
 * benchmarks (in 64-bit code the one-byte DEC encodings are REX prefixes).
 */
guest_wrmsr_loop64:
	wrmsr
	decl %ebx
	jnz guest_wrmsr_loop64
	hlt

guest_wrmsr_steps64:
	wrmsr
	decl %ebx
	jz 2f
	testl %esi, %ebx
	jnz guest_wrmsr_steps64
	incl %eax
	jmp guest_wrmsr_steps64
2:	hlt

	.code16

guest_code_end:
	.section .note.GNU-stack, "", @progbits
