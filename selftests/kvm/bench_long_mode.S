/* SPDX-License-Identifier: GPL-2.0 */
/*
 * msrguard_bench's long-mode guest code, on LIBKVM's guest: the loops are
 * copied into the guest's PE image (position-independent, called with the
 * System V stack), the #GP handler is the gate the guest's own IDT holds
 * while they run. The same instructions as realmode_guest.S's loops and
 * handler, so a long-mode exit costs the guest what a real-mode one does.
 *
 * ECX = index, EDX:EAX = value, EBX = count, ESI = 0; EDI = 13 after a #GP.
 */
	.text
	.globl bench_lm_code_start, bench_lm_code_end
	.globl bench_lm_wrmsr_loop, bench_lm_wrmsr_steps, bench_lm_gp_handler

bench_lm_code_start:

/* EBX times WRMSR of EDX:EAX to ECX. */
bench_lm_wrmsr_loop:
	wrmsr
	decl %ebx
	jnz bench_lm_wrmsr_loop
	ret

/*
 * EBX times WRMSR of ECX, EAX advancing by one after each access that
 * leaves a remaining count with no bit of ESI set (realmode_guest.S's
 * guest_wrmsr_steps).
 */
bench_lm_wrmsr_steps:
	wrmsr
	decl %ebx
	jz 2f
	testl %esi, %ebx
	jnz bench_lm_wrmsr_steps
	incl %eax
	jmp bench_lm_wrmsr_steps
2:	ret

bench_lm_code_end:

/* The CPU pushed an error code, then RIP, CS, RFLAGS, RSP, SS. */
bench_lm_gp_handler:
	movl $13, %edi
	addq $8, %rsp		/* drop the error code */
	addq $2, (%rsp)		/* return RIP: past the 2-byte WRMSR */
	iretq

	.section .note.GNU-stack, "", @progbits
