// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <string.h>

#include "kvm_util.h"
#include "processor.h"

#include "realmode.h"

static void set_ivt(uint8_t *mem, int vector, const char *handler)
{
	uint16_t off = (uint16_t)guest_gpa(handler);
	uint16_t seg = 0;

	memcpy(mem + vector * 4, &off, 2);
	memcpy(mem + vector * 4 + 2, &seg, 2);
}

void guest_create(struct guest *g)
{
	memset(g, 0, sizeof(*g));
	/*
	 * Barebones: no in-kernel irqchip (HLT exits to us), no memory, no
	 * ELF image, no vCPU set-up; memory from guest physical 0, the vCPU
	 * in its reset state (real mode).
	 */
	g->vm = vm_create_barebones();
	vm_userspace_mem_region_add(g->vm, VM_MEM_SRC_ANONYMOUS, 0, 0,
				    GUEST_MEM_SIZE / g->vm->page_size, 0);
	g->mem = addr_gpa2hva(g->vm, 0);
	memcpy(g->mem + GUEST_CODE_GPA, guest_code_start, guest_code_end - guest_code_start);
	set_ivt(g->mem, GP_VECTOR, guest_gp_handler);
	set_ivt(g->mem, UD_VECTOR, guest_ud_handler);
	g->vcpu = __vm_vcpu_add(g->vm, 0);
}

void guest_destroy(struct guest *g)
{
	if (g->vm)
		kvm_vm_free(g->vm);
	memset(g, 0, sizeof(*g));
}

/* Long-mode structures, below the code at GUEST_CODE_GPA.. and the stack. */
#define GDT_GPA  0x9000
#define IDT_GPA  0xa000
#define PML4_GPA 0xb000
#define PDPT_GPA 0xc000
#define PD_GPA   0xd000

static void put64(uint8_t *mem, uint64_t gpa, uint64_t v)
{
	memcpy(mem + gpa, &v, 8);
}

void guest_set_mode(struct guest *g, enum guest_cpu_mode mode)
{
	uint64_t handler = guest_gpa(guest_gp_handler64);

	g->mode = mode;
	if (mode != GUEST_LONG_MODE)
		return;
	/* Long mode needs CPUID.LM for EFER.LME. */
	vcpu_init_cpuid(g->vcpu, kvm_get_supported_cpuid());
	/* Null, 64-bit code (selector 8), data (selector 0x10). */
	put64(g->mem, GDT_GPA + 0, 0);
	put64(g->mem, GDT_GPA + 8, 0x00af9a000000ffffull);
	put64(g->mem, GDT_GPA + 16, 0x00cf92000000ffffull);
	/* IDT entry 13: 64-bit interrupt gate to the #GP handler. */
	put64(g->mem, IDT_GPA + 13 * 16, (handler & 0xffff) | (8ull << 16) | (0x8eull << 40) |
					 ((handler >> 16 & 0xffff) << 48));
	put64(g->mem, IDT_GPA + 13 * 16 + 8, handler >> 32);
	/* Identity map of the first 2 MiB with one large page. */
	put64(g->mem, PML4_GPA, PDPT_GPA | 3);
	put64(g->mem, PDPT_GPA, PD_GPA | 3);
	put64(g->mem, PD_GPA, 0x83);
}

static void long_mode_sregs(struct kvm_sregs *sregs)
{
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11,
		.present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 3,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};

	sregs->cs = code;
	sregs->ds = sregs->es = sregs->ss = sregs->fs = sregs->gs = data;
	sregs->gdt.base = GDT_GPA;
	sregs->gdt.limit = 3 * 8 - 1;
	sregs->idt.base = IDT_GPA;
	sregs->idt.limit = 32 * 16 - 1;
	sregs->cr3 = PML4_GPA;
	sregs->cr4 = 0x20;		/* PAE */
	sregs->cr0 = 0x80000011;	/* PG, ET, PE */
	sregs->efer = 0x500;		/* LMA, LME */
}

static void flat_real_mode_segment(struct kvm_segment *seg)
{
	seg->base = 0;
	seg->selector = 0;
}

int guest_run(struct guest *g, const char *entry, uint32_t msr, uint64_t value, uint32_t count,
	      struct guest_result *res)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	memset(res, 0, sizeof(*res));
	vcpu_sregs_get(g->vcpu, &sregs);
	if (g->mode == GUEST_LONG_MODE) {
		long_mode_sregs(&sregs);
	} else {
		flat_real_mode_segment(&sregs.cs);
		flat_real_mode_segment(&sregs.ds);
		flat_real_mode_segment(&sregs.es);
		flat_real_mode_segment(&sregs.ss);
	}
	vcpu_sregs_set(g->vcpu, &sregs);

	memset(&regs, 0, sizeof(regs));
	regs.rip = guest_gpa(entry);
	regs.rsp = GUEST_STACK_TOP;
	regs.rflags = 0x2;
	regs.rcx = msr;
	regs.rax = (uint32_t)value;
	regs.rdx = value >> 32;
	regs.rbx = count;
	vcpu_regs_set(g->vcpu, &regs);

	if (__vcpu_run(g->vcpu)) {
		res->err = errno;
		return -errno;
	}
	res->exit_reason = g->vcpu->run->exit_reason;
	vcpu_regs_get(g->vcpu, &regs);
	res->fault_vector = (uint32_t)regs.rdi;
	res->value = ((regs.rdx & 0xffffffffull) << 32) | (uint32_t)regs.rax;
	res->rip = regs.rip;
	return 0;
}
