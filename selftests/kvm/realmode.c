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
	flat_real_mode_segment(&sregs.cs);
	flat_real_mode_segment(&sregs.ds);
	flat_real_mode_segment(&sregs.es);
	flat_real_mode_segment(&sregs.ss);
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
