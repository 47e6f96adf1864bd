// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vm.h"

static void set_ivt(uint8_t *mem, int vector, const char *handler)
{
	uint16_t off = (uint16_t)guest_gpa(handler);
	uint16_t seg = 0;

	memcpy(mem + vector * 4, &off, 2);
	memcpy(mem + vector * 4 + 2, &seg, 2);
}

int vm_create(struct vm *vm)
{
	struct kvm_userspace_memory_region region;
	size_t code_size = guest_code_end - guest_code_start;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		perror("open /dev/kvm");
		return ret;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		goto fail;

	vm->mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		goto fail;
	}
	memcpy(vm->mem + GUEST_CODE_GPA, guest_code_start, code_size);
	set_ivt(vm->mem, 13, guest_gp_handler);
	set_ivt(vm->mem, 6, guest_ud_handler);

	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = GUEST_MEM_SIZE,
		.userspace_addr = (uintptr_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		goto fail;

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		goto fail;
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		goto fail;
	}
	return 0;
fail:
	ret = -errno;
	perror("vm_create");
	vm_destroy(vm);
	return ret;
}

void vm_destroy(struct vm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->mem)
		munmap(vm->mem, GUEST_MEM_SIZE);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
}

static void flat_segment(struct kvm_segment *seg)
{
	seg->base = 0;
	seg->selector = 0;
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

/* Gives the vCPU the CPUID KVM supports: long mode needs CPUID.LM for EFER.LME. */
static int set_supported_cpuid(struct vm *vm)
{
	struct kvm_cpuid2 *cpuid;
	int nent = 256, ret = 0;

	cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(cpuid->entries[0]));
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = nent;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = -errno;
	free(cpuid);
	return ret;
}

int vm_set_mode(struct vm *vm, enum guest_cpu_mode mode)
{
	uint64_t handler = guest_gpa(guest_gp_handler64);
	int ret;

	vm->mode = mode;
	if (mode != GUEST_LONG_MODE)
		return 0;
	ret = set_supported_cpuid(vm);
	if (ret)
		return ret;
	/* Null, 64-bit code (selector 8), data (selector 0x10). */
	put64(vm->mem, GDT_GPA + 0, 0);
	put64(vm->mem, GDT_GPA + 8, 0x00af9a000000ffffull);
	put64(vm->mem, GDT_GPA + 16, 0x00cf92000000ffffull);
	/* IDT entry 13: 64-bit interrupt gate to the #GP handler. */
	put64(vm->mem, IDT_GPA + 13 * 16, (handler & 0xffff) | (8ull << 16) | (0x8eull << 40) |
					  ((handler >> 16 & 0xffff) << 48));
	put64(vm->mem, IDT_GPA + 13 * 16 + 8, handler >> 32);
	/* Identity map of the first 2 MiB with one large page. */
	put64(vm->mem, PML4_GPA, PDPT_GPA | 3);
	put64(vm->mem, PDPT_GPA, PD_GPA | 3);
	put64(vm->mem, PD_GPA, 0x83);
	return 0;
}

int vm_map_page(struct vm *vm, uint64_t va, uint64_t gpa)
{
	uint64_t table = PML4_GPA, entry;
	int level;

	for (level = 3; level > 0; level--) {
		uint64_t slot = table + ((va >> (12 + 9 * level)) & 511) * 8;

		memcpy(&entry, vm->mem + slot, 8);
		if (!(entry & 1)) {
			if (!vm->pt_next)
				vm->pt_next = GUEST_PT_POOL_GPA;
			if (vm->pt_next >= GUEST_PT_POOL_END)
				return -ENOMEM;
			memset(vm->mem + vm->pt_next, 0, 4096);
			entry = vm->pt_next | 3;
			vm->pt_next += 4096;
			put64(vm->mem, slot, entry);
		}
		table = entry & ~0xfffull;
	}
	put64(vm->mem, table + ((va >> 12) & 511) * 8, gpa == (uint64_t)-1 ? 0 : (gpa | 3));
	return 0;
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

int vm_add_vcpu(struct vm *vm, struct vcpu *vcpu, int id)
{
	int ret;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = -1;
	if (id <= 0 || id >= GUEST_MAX_VCPUS)
		return -EINVAL;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (vcpu->fd < 0)
		goto fail;
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		goto fail;
	}
	return 0;
fail:
	ret = -errno;
	perror("vm_add_vcpu");
	vcpu_destroy(vcpu);
	return ret;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

int vm_run_entry(struct vm *vm, const char *entry, uint32_t msr,
		 uint64_t value, uint32_t count, struct guest_result *res)
{
	return vm_run_entry_esi(vm, NULL, entry, msr, value, count, 0, res);
}

int vm_run_entry_esi(struct vm *vm, struct vcpu *vcpu, const char *entry, uint32_t msr,
		     uint64_t value, uint32_t count, uint32_t esi, struct guest_result *res)
{
	int fd = vcpu ? vcpu->fd : vm->vcpu_fd;
	struct kvm_run *run = vcpu ? vcpu->run : vm->run;
	int id = vcpu ? vcpu->id : 0;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	memset(res, 0, sizeof(*res));
	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	if (vm->mode == GUEST_LONG_MODE) {
		long_mode_sregs(&sregs);
	} else {
		flat_segment(&sregs.cs);
		flat_segment(&sregs.ds);
		flat_segment(&sregs.es);
		flat_segment(&sregs.ss);
	}
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rip = guest_gpa(entry);
	regs.rsp = GUEST_STACK_TOP - id * GUEST_STACK_PER_VCPU;
	regs.rflags = 0x2;
	regs.rcx = msr;
	regs.rax = (uint32_t)value;
	regs.rdx = value >> 32;
	regs.rbx = count;
	regs.rsi = esi;
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	if (ioctl(fd, KVM_RUN, 0) < 0) {
		res->err = errno;
		return -errno;
	}
	res->exit_reason = run->exit_reason;
	if (ioctl(fd, KVM_GET_REGS, &regs) < 0)
		return -errno;
	res->fault_vector = (uint32_t)regs.rdi;
	res->value = ((regs.rdx & 0xffffffffull) << 32) | (uint32_t)regs.rax;
	res->rip = regs.rip;
	return 0;
}

void vcpu_describe(struct vm *vm, struct vcpu *vcpu, char *buf, size_t len)
{
	int fd = vcpu ? vcpu->fd : vm->vcpu_fd;
	struct kvm_run *run = vcpu ? vcpu->run : vm->run;
	struct kvm_vcpu_events ev;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	size_t n = 0;
	uint64_t a;
	int i;

#define PUT(...) do { if (n < len) n += snprintf(buf + n, len - n, __VA_ARGS__); } while (0)
	buf[0] = 0;
	if (ioctl(fd, KVM_GET_REGS, &regs) < 0 || ioctl(fd, KVM_GET_SREGS, &sregs) < 0) {
		PUT("(no registers: %s)", strerror(errno));
		return;
	}
	PUT("exit %u", run->exit_reason);
	if (run->exit_reason == KVM_EXIT_IO)
		PUT(" (io port %#x %s size %u)", run->io.port,
		    run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.size);
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR || run->exit_reason == KVM_EXIT_SHUTDOWN)
		PUT(" (suberror %u)", run->internal.suberror);
	PUT("; cs %#x:%#llx ss %#x:%#llx rflags %#llx rax %#llx rbx %#llx rcx %#llx rdx %#llx rsi %#llx rdi %#llx rbp %#llx",
	    sregs.cs.selector, (unsigned long long)regs.rip, sregs.ss.selector,
	    (unsigned long long)regs.rsp, (unsigned long long)regs.rflags,
	    (unsigned long long)regs.rax, (unsigned long long)regs.rbx,
	    (unsigned long long)regs.rcx, (unsigned long long)regs.rdx,
	    (unsigned long long)regs.rsi, (unsigned long long)regs.rdi,
	    (unsigned long long)regs.rbp);
	if (!ioctl(fd, KVM_GET_VCPU_EVENTS, &ev))
		PUT("; exception injected %u pending %u nr %u; interrupt injected %u nr %u; nmi injected %u pending %u",
		    ev.exception.injected, ev.exception.pending, ev.exception.nr,
		    ev.interrupt.injected, ev.interrupt.nr, ev.nmi.injected, ev.nmi.pending);
	a = sregs.cs.base + (regs.rip & 0xffff);
	if (a + 8 <= GUEST_MEM_SIZE) {
		PUT("; bytes at cs:ip");
		for (i = 0; i < 8; i++)
			PUT(" %02x", vm->mem[a + i]);
	}
	a = sregs.ss.base + (regs.rsp & 0xffff);
	if (vm->mode == GUEST_REAL_MODE && a + 16 <= GUEST_MEM_SIZE) {
		PUT("; stack");
		for (i = 0; i < 16; i += 2)
			PUT(" %04x", vm->mem[a + i] | vm->mem[a + i + 1] << 8);
	}
	PUT("; code at %#x, #GP handler %#llx", GUEST_CODE_GPA,
	    (unsigned long long)guest_gpa(guest_gp_handler));
#undef PUT
}

int vm_get_msr(struct vm *vm, uint32_t msr, uint64_t *value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} msrs = { .hdr.nmsrs = 1, .entry.index = msr };

	if (ioctl(vm->vcpu_fd, KVM_GET_MSRS, &msrs) != 1)
		return -EINVAL;
	*value = msrs.entry.data;
	return 0;
}

int vm_set_msr(struct vm *vm, uint32_t msr, uint64_t value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} msrs = { .hdr.nmsrs = 1, .entry.index = msr, .entry.data = value };

	return ioctl(vm->vcpu_fd, KVM_SET_MSRS, &msrs) == 1 ? 0 : -EINVAL;
}
