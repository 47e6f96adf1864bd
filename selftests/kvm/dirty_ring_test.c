// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's image lookups and KVM's dirty ring, as a KVM selftest.
 *
 * An image lookup walks guest page tables from task work on the vCPU
 * thread; each walk sets Accessed bits, and KVM logs every page-table page
 * it so writes into the running vCPU's dirty ring. KVM checks the ring's
 * soft limit only before entering the guest: a lookup that writes more
 * entries than the ring has left overruns it (a WARN in dirty_ring.c, and
 * dirty pages lost: memory corrupted on a live migration's target).
 *
 * The VM has the smallest ring KVM accepts (one page: 256 entries, soft
 * limit 256 - 64 on SVM) and dirty logging on its memory. Each round the
 * guest writes one data page, then does a vetoed WRMSR from a stub at the
 * top of a 512-page region (a new record: its image is looked up, every
 * time, with image_cache_ms=0). Before each round the host clears the
 * Accessed bits of the region's PTEs, so each lookup's walks write a
 * page-table page about 512 times. Expected: no kernel warning (the VM
 * runner fails the run on one), every data page the guest wrote is in the
 * ring's harvest, the vCPU exits with KVM_EXIT_DIRTY_RING_FULL as KVM
 * intends, and msrguard stopped its searches (image_scans_stopped).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#include "msrguard_kvm.h"

#define ROUNDS		16
#define REGION_PAGES	512
/* One page of struct kvm_dirty_gfn: the smallest ring KVM accepts. */
#define RING_BYTES	4096
#define RING_ENTRIES	(RING_BYTES / sizeof(struct kvm_dirty_gfn))
/* The region and the data pages: a memslot of their own, identity mapped. */
#define TEST_SLOT	1
#define TEST_GPA	0x10000000ul

static struct {
	gva_t stub;		/* WRMSR; RET at the top of the region */
	gva_t data;		/* ROUNDS pages the guest writes, one per round */
} args;

/* The stub's WRMSR faults (#GP, vetoed): go on after it. */
static void skip_wrmsr(struct ex_regs *regs)
{
	regs->rip += 2;
}

static void guest_code(void)
{
	u64 i;

	for (i = 0; i < ROUNDS; i++) {
		*(volatile u64 *)(args.data + i * PAGE_SIZE) = i + 1;
		asm volatile("call *%[stub]"
			     : : [stub] "r"(args.stub), "c"(MSR_UNKNOWN), "a"((u32)i), "d"(0)
			     : "memory");
		GUEST_SYNC(i);
	}
	GUEST_DONE();
}

struct harvest {
	struct kvm_dirty_gfn *ring;
	u32 next;
	u64 entries;
	bool written[ROUNDS];
	u64 data_offset[ROUNDS];	/* in the test's memslot */
};

/* Collects the ring's dirty entries, marks them for reset, resets. */
static void harvest(struct kvm_vm *vm, struct harvest *h)
{
	for (;;) {
		struct kvm_dirty_gfn *g = &h->ring[h->next % RING_ENTRIES];
		int i;

		if (!(__atomic_load_n(&g->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		for (i = 0; i < ROUNDS; i++)
			if (g->slot == TEST_SLOT && g->offset == h->data_offset[i])
				h->written[i] = true;
		__atomic_store_n(&g->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		h->next++;
		h->entries++;
	}
	kvm_vm_reset_dirty_ring(vm);
}

/* The region's PTEs not accessed: the next lookup's walks set them again. */
static void clear_accessed(struct kvm_vm *vm, gva_t region)
{
	int p;

	for (p = 0; p < REGION_PAGES; p++)
		*vm_get_pte(vm, region + p * PAGE_SIZE) &= ~PTE_ACCESSED_MASK(&vm->mmu);
}

FIXTURE(dirty_ring) {};
FIXTURE_SETUP(dirty_ring)
{
	if (!kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) && !kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL))
		SKIP(return, "KVM has no dirty ring");
	/*
	 * With PML, KVM reserves 512 more entries: its smallest ring (16 KiB)
	 * has more headroom than one lookup's walks write here.
	 */
	if (!host_cpu_is_amd)
		SKIP(return, "sized for SVM's ring (64 reserved entries); VMX with PML reserves 576");
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, "image_cache_ms=0"))
		TH_LOG("cannot load msrguard (MSRGUARD_KO in the environment)");
}
FIXTURE_TEARDOWN(dirty_ring)
{
	unload_msrguard();
}

TEST_F_TIMEOUT(dirty_ring, image_lookups_never_overrun_it, 300)
{
	static const u8 stub[] = { 0x0f, 0x30, 0xc3 };	/* WRMSR; RET */
	u64 stopped, full_exits = 0;
	struct harvest h = {};
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	gva_t region;
	int i, missing;

	/* Page tables for the test's memslot come from memslot 0. */
	vm = __vm_create(VM_SHAPE_DEFAULT, 1, REGION_PAGES + ROUNDS);
	vm_enable_dirty_ring(vm, RING_BYTES);
	vcpu = vm_vcpu_add(vm, 0, guest_code);
	vm_install_exception_handler(vm, GP_VECTOR, skip_wrmsr);
	/* The region, then the data pages, mapped where they are. */
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    REGION_PAGES + ROUNDS, KVM_MEM_LOG_DIRTY_PAGES);
	virt_map(vm, TEST_GPA, TEST_GPA, REGION_PAGES + ROUNDS);
	region = TEST_GPA;
	args.stub = region + (REGION_PAGES - 1) * PAGE_SIZE;
	memcpy(addr_gva2hva(vm, args.stub), stub, sizeof(stub));
	args.data = region + REGION_PAGES * PAGE_SIZE;
	for (i = 0; i < ROUNDS; i++)
		h.data_offset[i] = REGION_PAGES + i;
	sync_global_to_guest(vm, args);
	/* Memslot 0 too: the page tables are there. */
	vm_mem_region_set_flags(vm, 0, KVM_MEM_LOG_DIRTY_PAGES);
	h.ring = vcpu_map_dirty_ring(vcpu);

	clear_accessed(vm, region);
	for (;;) {
		vcpu_run(vcpu);
		harvest(vm, &h);
		if (vcpu->run->exit_reason == KVM_EXIT_DIRTY_RING_FULL) {
			full_exits++;
			continue;
		}
		ASSERT_EQ(KVM_EXIT_IO, vcpu->run->exit_reason)
			TH_LOG("exit %s", exit_reason_str(vcpu->run->exit_reason));
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			clear_accessed(vm, region);
			continue;
		case UCALL_DONE:
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			ASSERT_TRUE(false) TH_LOG("unexpected ucall %lu", uc.cmd);
		}
		break;
	}
	stopped = param_u64("image_scans_stopped");
	ksft_print_msg("%lu ring entries harvested, %lu ring-full exits, %lu searches stopped\n",
		       h.entries, full_exits, stopped);
	for (i = 0, missing = -1; i < ROUNDS; i++)
		if (!h.written[i] && missing < 0)
			missing = i;
	EXPECT_EQ(-1, missing) TH_LOG("data page %d, which the guest wrote, is not in the harvest",
				      missing);
	/* The premise: lookups did fill the ring, and msrguard stopped them. */
	EXPECT_LT(0, full_exits);
	EXPECT_LT(0, stopped);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
