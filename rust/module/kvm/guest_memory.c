// SPDX-License-Identifier: GPL-2.0
/*
 * Guest memory for image attribution: which PE image holds Pc (ImageBase,
 * ImageChecksum, ImageTimestamp, ImageName of event 12550). What happens
 * to a new event is Rust's (rust/core/pipeline.rs: recorded now, or queued
 * for a lookup); this file gives it the facts of the vCPU's thread, the
 * task work that runs the lookups, and the reads of guest memory.
 *
 * The hook that records an event runs in atomic context and must not read
 * guest memory. For a guest with paging on and readable state, Rust queues
 * the record and asks for task work on the vCPU thread itself
 * (TWA_RESUME): KVM's run loop runs it (xfer_to_guest_mode_handle_work)
 * before the vCPU re-enters the guest, in process context, outside
 * kvm->srcu. There the search (rust/core/pe.rs) reads guest virtual memory
 * through the vCPU's own page walker (vcpu->arch.gva_walk) and KVM's
 * memslots under kvm->srcu, copying from the VMM's memory; then the
 * records are recorded, complete, in order.
 *
 * Lifetimes: task work is asked for only from inside its thread's KVM_RUN
 * of the vCPU (in_vcpu_run()): the thread holds the vCPU's file, so the
 * VM's reference count is not 0. Accesses KVM makes outside the run (a VMM
 * ioctl, the VM's teardown, where the count is 0 and the vCPU is about to
 * be freed) are recorded at once without image fields. Pending work holds
 * a reference on the module (try_module_get: msrguard cannot finish
 * unloading while work is pending), on the VM (kvm_get_kvm_safe: the VM and
 * so the vCPU outlive the work), on kvm.ko (symbol_get of kvm_put_kvm,
 * which drops the VM's) and on the vendor module (msrguard_vendor_get: the
 * VMM may close the VM meanwhile, and the work's put then destroys it
 * through kvm_amd's or kvm_intel's code). The work drops these last; a task
 * still returning from it after module_put is waited for by the
 * synchronize_rcu_tasks() of msrguard_hooks_exit(). A task that exits with
 * work pending runs it in do_exit(): outside KVM_RUN, the work records
 * without image fields.
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/atomic.h>
#include <linux/highmem.h>
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/srcu.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

/* struct x86_exception, which the page walker fills. */
#include "kvm_emulate.h"
/* is_guest_mode(). */
#include "regs.h"
/* is_sev_guest(). */
#include "svm/svm.h"

#include "msrguard_boundary.h"

/* ---- Parameters and counters ------------------------------------------ */

/* 4096 pages: the header of an image of up to 16 MiB is found. */
static unsigned int image_scan_pages = 4096;

/* The most pages one search may read: 256 MiB below Pc. */
#define IMAGE_SCAN_PAGES_MAX 65536

static int scan_pages_set(const char *val, const struct kernel_param *kp)
{
	unsigned int pages;
	int ret = kstrtouint(val, 0, &pages);

	if (ret)
		return ret;
	if (pages > IMAGE_SCAN_PAGES_MAX) {
		pr_err("msrguard: image_scan_pages=%u is more than %u\n", pages, IMAGE_SCAN_PAGES_MAX);
		return -EINVAL;
	}
	WRITE_ONCE(image_scan_pages, pages);
	return 0;
}

static const struct kernel_param_ops scan_pages_ops = {
	.set = scan_pages_set,
	.get = param_get_uint,
};
module_param_cb(image_scan_pages, &scan_pages_ops, &image_scan_pages, 0644);
MODULE_PARM_DESC(image_scan_pages,
		 "Pages searched below Pc for the PE header of the image holding it (0: no image attribution)");

static unsigned int image_cache_ms = 10000;
module_param(image_cache_ms, uint, 0644);
MODULE_PARM_DESC(image_cache_ms,
		 "How long an image found stays cached for its VM, in ms (0: no cache)");

/* Guest page reads done by searches; the other counters are Rust's. */
static atomic64_t image_reads;

static int reads_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&image_reads));
}

static const struct kernel_param_ops reads_ops = {
	.get = reads_get,
};

/* MSRGUARD_COUNTER_*, in kp->arg. */
static int counter_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%llu\n", msrguard_rust_image_counter((unsigned long)kp->arg));
}

static const struct kernel_param_ops counter_ops = {
	.get = counter_get,
};

#define COUNTER(c) ((void *)(unsigned long)(c))

/* Read-only monitoring counters; the VM suite checks the scan bound with them. */
module_param_cb(image_lookups, &counter_ops, COUNTER(MSRGUARD_COUNTER_LOOKUPS), 0444);
MODULE_PARM_DESC(image_lookups, "Events for which the image holding Pc was looked up");
module_param_cb(image_cache_hits, &counter_ops, COUNTER(MSRGUARD_COUNTER_CACHE_HITS), 0444);
MODULE_PARM_DESC(image_cache_hits, "Lookups answered by the cache (image or none), without a guest read");
module_param_cb(image_found, &counter_ops, COUNTER(MSRGUARD_COUNTER_FOUND), 0444);
MODULE_PARM_DESC(image_found, "Lookups that found an image (cache hits included)");
module_param_cb(image_reads, &reads_ops, NULL, 0444);
MODULE_PARM_DESC(image_reads, "Guest page reads done by image searches");
module_param_cb(image_not_deferred, &counter_ops, COUNTER(MSRGUARD_COUNTER_NOT_DEFERRED), 0444);
MODULE_PARM_DESC(image_not_deferred,
		 "Events recorded without a lookup: no free work item, or no task work possible");
module_param_cb(image_scans_stopped, &counter_ops, COUNTER(MSRGUARD_COUNTER_SCANS_STOPPED), 0444);
MODULE_PARM_DESC(image_scans_stopped,
		 "Image searches stopped early (the vCPU's dirty ring at its soft limit, or the VMM dying)");

/* ---- Reading guest virtual memory ------------------------------------- */

struct guest_reader {
	struct kvm_vcpu *vcpu;
	struct kvm_memslots *slots;
	/* The scan stopped early: its "none found" says nothing. */
	bool stopped;
};

/*
 * Whether the vCPU's dirty ring (if the VM has one) has reached its soft
 * limit. Each page read may set Accessed bits in guest page tables, and
 * KVM pushes each page-table page it so writes into the running vCPU's
 * ring; it checks the soft limit only before entering the guest, and a
 * ring overrun loses dirty pages (a WARN in virt/kvm/dirty_ring.c). Below
 * the soft limit at least 64 entries are free (kvm_dirty_ring_get_rsvd_
 * entries), more than one page read can push (one per paging level, about
 * 30 for an L2 walk through L1's tables): checked before each page.
 */
static bool dirty_ring_soft_full(struct kvm_vcpu *vcpu)
{
	struct kvm_dirty_ring *ring = &vcpu->dirty_ring;

	if (!READ_ONCE(vcpu->kvm->dirty_ring_size))
		return false;
	return READ_ONCE(ring->dirty_index) - READ_ONCE(ring->reset_index) >= ring->soft_limit;
}

/*
 * Copies @len bytes at guest virtual address @va: each page through the
 * vCPU's page walker, KVM's memslots and the VMM's memory. False if any page
 * is not mapped, not in a memslot, or not resident as a normal page of the
 * VMM. Process context, under kvm->srcu.
 */
static bool read_guest(void *ctx, u64 va, u8 *buf, u32 len)
{
	struct guest_reader *r = ctx;
	struct kvm_vcpu *vcpu = r->vcpu;
	bool long_mode = vcpu->arch.efer & EFER_LMA;

	/*
	 * The scan is bounded, but a dying VMM should not wait for it, and
	 * the dirty ring must not overflow: stop, the record goes without
	 * image fields.
	 */
	if (r->stopped || fatal_signal_pending(current) || dirty_ring_soft_full(vcpu)) {
		r->stopped = true;
		return false;
	}
	cond_resched();
	while (len) {
		u32 n = min_t(u32, len, PAGE_SIZE - offset_in_page(va));
		struct kvm_pagewalk *w = &vcpu->arch.gva_walk;
		struct x86_exception e = {};
		struct kvm_memory_slot *slot;
		struct page *page;
		unsigned long hva;
		void *kaddr;
		gpa_t gpa;
		gfn_t gfn;

		/* What the CPU would not translate, the walker is not asked. */
		if (long_mode ? !__is_canonical_address(va, (vcpu->arch.cr4 & X86_CR4_LA57) ? 57 : 48)
			      : va > U32_MAX)
			return false;
		atomic64_inc(&image_reads);
		/* A supervisor read: every access msrguard sees is at CPL 0. */
		gpa = w->gva_to_gpa(vcpu, w, va, 0, &e);
		if (gpa == INVALID_GPA)
			return false;
		gfn = gpa_to_gfn(gpa);
		slot = __gfn_to_memslot(r->slots, gfn);
		if (!slot || (slot->flags & KVM_MEMSLOT_INVALID))
			return false;
		hva = __gfn_to_hva_memslot(slot, gfn) + offset_in_page(gpa);
		/*
		 * Only a page that is resident and a normal page: no fault (a
		 * swapped or userfaultfd page would block the vCPU), no read of
		 * device memory a memslot may map (VFIO BARs: special PTEs).
		 */
		if (!get_user_page_fast_only(hva & PAGE_MASK, 0, &page))
			return false;
		kaddr = kmap_local_page(page);
		memcpy(buf, kaddr + offset_in_page(hva), n);
		kunmap_local(kaddr);
		put_page(page);
		va += n;
		buf += n;
		len -= n;
	}
	return true;
}

/* ---- The facts of a vCPU's thread -------------------------------------- */

/*
 * Whether this thread is inside KVM_RUN of @vcpu, in a user task that is not
 * exiting: the vCPU is loaded here and stays so until the thread next goes
 * back to user space, and the thread holds the vCPU's file, so the VM lives.
 * Otherwise KVM is accessing an MSR for the guest outside its run: a VMM
 * ioctl (KVM_SET_MSRS of FEATURE_CONTROL, KVM_SET_NESTED_STATE and
 * KVM_SET_VCPU_EVENTS leave nested mode, loading L1's VM-exit MSR list) or
 * the VM's teardown (kvm_destroy_vm() -> vmx_vcpu_free() -> ... ->
 * nested_vmx_load_msr(), with the VM's reference count already 0, maybe in
 * a kworker or in do_exit()).
 */
static bool in_vcpu_run(struct kvm_vcpu *vcpu)
{
	if (current->flags & (PF_KTHREAD | PF_EXITING) || !current->mm)
		return false;
	if (!READ_ONCE(vcpu->wants_to_run))
		return false;
	/*
	 * KVM_RUN stores the pid of the thread that runs the vCPU before it
	 * sets wants_to_run (x86 keeps stores in order): read them in the
	 * opposite order, and the pid is that thread's.
	 */
	smp_rmb();
	return rcu_access_pointer(vcpu->pid) == task_pid(current);
}

/*
 * Whether @kvm is an SEV guest: its page tables are ciphertext to the host,
 * and the walker would write Accessed bits into them, corrupting them.
 * (SEV-ES and later have protected state: nothing is attributed.)
 */
static bool memory_encrypted(struct kvm_vcpu *vcpu)
{
	/* struct kvm_svm only exists on SVM hosts (kvm_amd). */
	return boot_cpu_has(X86_FEATURE_SVM) && is_sev_guest(vcpu);
}

/* The facts of this thread for Rust's pipeline; @now_ns only if asked. */
static void gather(struct kvm_vcpu *vcpu, bool now, struct msrguard_event_facts *f)
{
	*f = (struct msrguard_event_facts){
		/* Keys only, never dereferenced by Rust. */
		.task = (u64)(unsigned long)current,
		.vm = (u64)(unsigned long)vcpu->kvm,
		.now_ns = now ? ktime_get_ns() : 0,
		.cache_ttl_ns = (u64)READ_ONCE(image_cache_ms) * NSEC_PER_MSEC,
		.in_run = in_vcpu_run(vcpu),
	};
}

void msrguard_kvm_event_facts(struct kvm_vcpu *vcpu, const struct msrguard_access *a,
			      bool tracing, struct msrguard_event_facts *f)
{
	/*
	 * Only guest virtual addresses are walked (paging on); a guest with
	 * protected state has no Pc, a plain SEV guest unreadable tables.
	 */
	bool attributable = a->pc && !vcpu->arch.guest_state_protected &&
			    (vcpu->arch.cr0 & X86_CR0_PG) && READ_ONCE(image_scan_pages) &&
			    !memory_encrypted(vcpu);

	/* The clock is for the image cache: not read for an event it never sees. */
	gather(vcpu, attributable, f);
	f->attributable = attributable;
	f->tracing = tracing;
}

/* ---- Searching ---------------------------------------------------------- */

int msrguard_kvm_search(struct kvm_vcpu *vcpu, const struct msrguard_access *a,
			struct msrguard_image *image)
{
	struct guest_reader r = { .vcpu = vcpu };
	unsigned int max_pages = READ_ONCE(image_scan_pages);
	bool found;
	int idx;

	if (!max_pages)
		return MSRGUARD_SEARCH_NOT_SEARCHED;
	/*
	 * The page walker is the vCPU's current one: if a nested VM-exit (or
	 * entry) came between the access and now, it would walk the other
	 * guest's page tables.
	 */
	if (!!(a->flags & MSRGUARD_FLAG_NESTED) != is_guest_mode(vcpu))
		return MSRGUARD_SEARCH_NOT_SEARCHED;
	idx = srcu_read_lock(&vcpu->kvm->srcu);
	r.slots = kvm_vcpu_memslots(vcpu);
	found = msrguard_rust_find_image(a->pc, max_pages, read_guest, &r, image);
	srcu_read_unlock(&vcpu->kvm->srcu, idx);
	if (found)
		return MSRGUARD_SEARCH_FOUND;
	return r.stopped ? MSRGUARD_SEARCH_STOPPED : MSRGUARD_SEARCH_NOT_FOUND;
}

/* ---- Task work ---------------------------------------------------------- */

/*
 * The task work of a chain of waiting records, by the index of its first
 * item in Rust's pool, and what it holds.
 */
struct chain_work {
	struct callback_head work;
	const void *ctx;
	struct kvm_vcpu *vcpu;
	void (*put_kvm)(struct kvm *kvm);
};

static struct chain_work chain_work[MSRGUARD_POOL_SIZE];

static void run_chain(struct callback_head *work)
{
	struct chain_work *w = container_of(work, struct chain_work, work);
	unsigned int head = w - chain_work;
	/*
	 * Copied first: once Rust frees the chain's first item, another
	 * thread may take it, and this entry with it.
	 */
	const void *ctx = w->ctx;
	struct kvm_vcpu *vcpu = w->vcpu;
	void (*put_kvm)(struct kvm *kvm) = w->put_kvm;
	struct kvm *kvm = vcpu->kvm;
	struct msrguard_event_facts f;

	/*
	 * Only inside this thread's KVM_RUN is the vCPU loaded here (its page
	 * walker may read lazily cached registers and mark pages dirty for the
	 * running vCPU). After a user-space exit, the work runs on the way
	 * back to user space, with vcpu->mutex released: another thread may be
	 * in KVM_RUN on this vCPU by then. Then, and in do_exit(), the records
	 * go without image fields (f.in_run false).
	 */
	gather(vcpu, true, &f);
	msrguard_rust_run_chain(ctx, vcpu, head, &f);
	put_kvm(kvm);
	symbol_put(kvm_put_kvm);
	msrguard_vendor_put();
	/* Last: from here on only the return, which msrguard_hooks_exit() waits for. */
	module_put(THIS_MODULE);
}

bool msrguard_kvm_queue_work(const void *ctx, struct kvm_vcpu *vcpu, u32 item)
{
	bool (*get_kvm_safe)(struct kvm *kvm);
	struct chain_work *w;

	if (item >= ARRAY_SIZE(chain_work))
		return false;
	w = &chain_work[item];
	/*
	 * Not while msrguard initializes: a module whose init fails is freed
	 * whatever its reference count, and the work would run freed code.
	 */
#ifdef MODULE
	if (READ_ONCE(THIS_MODULE->state) != MODULE_STATE_LIVE)
		return false;
#endif
	if (!try_module_get(THIS_MODULE))
		return false;
	/* The work's put may destroy the VM through the vendor module. */
	if (!msrguard_vendor_get())
		goto no_vendor;
	/*
	 * kvm_get_kvm_safe/kvm_put_kvm through symbol_get(), not by linking:
	 * msrguard may load before kvm.ko. Each holds a reference on kvm.ko
	 * until it is put; kvm_put_kvm's stays with the work.
	 */
	w->put_kvm = symbol_get(kvm_put_kvm);
	if (!w->put_kvm)
		goto no_put;
	get_kvm_safe = symbol_get(kvm_get_kvm_safe);
	if (!get_kvm_safe)
		goto no_get;
	/*
	 * The caller is inside this thread's KVM_RUN of @vcpu, whose file
	 * holds a reference on the VM: it cannot be 0 here. Checked all the
	 * same; a failure records now, without image fields.
	 */
	if (!get_kvm_safe(vcpu->kvm))
		goto no_kvm;
	w->ctx = ctx;
	w->vcpu = vcpu;
	init_task_work(&w->work, run_chain);
	if (task_work_add(current, &w->work, TWA_RESUME))
		goto no_work;	/* the task is exiting */
	symbol_put(kvm_get_kvm_safe);
	return true;

no_work:
	/* Not the last reference: this thread's vCPU file holds one. */
	w->put_kvm(vcpu->kvm);
no_kvm:
	symbol_put(kvm_get_kvm_safe);
no_get:
	symbol_put(kvm_put_kvm);
no_put:
	msrguard_vendor_put();
no_vendor:
	module_put(THIS_MODULE);
	return false;
}
