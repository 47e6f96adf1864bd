// SPDX-License-Identifier: GPL-2.0
/*
 * Image attribution: which PE image in guest memory holds Pc (ImageBase,
 * ImageChecksum, ImageTimestamp, ImageName of event 12550).
 *
 * The hook that records an event runs in atomic context and must not read
 * guest memory. For a guest with paging on and readable state, it takes a
 * pre-allocated item, notes the access, the vCPU and a reference on its VM,
 * and queues task work on the vCPU thread itself (TWA_RESUME): KVM's run
 * loop runs it (xfer_to_guest_mode_handle_work) before the vCPU re-enters
 * the guest, in process context, outside kvm->srcu. There the search
 * (rust/core/pe.rs) reads guest virtual memory through the vCPU's own page walker
 * (vcpu->arch.gva_walk) and KVM's memslots under kvm->srcu, copying from the
 * VMM's memory with copy_from_user(); then the event is recorded, complete.
 * Without an item, or when task work cannot be queued, the event is recorded
 * at once with empty image fields. Only a new record gets here (record_new()
 * in hooks.c): a repeat coalesced into its VM's previous record
 * never asks for its image. A cache hit (an image or a page known to
 * be in none) is answered in the hook, without task work or guest read.
 *
 * Lifetimes: a record is deferred only from inside its thread's KVM_RUN of
 * the vCPU (msrguard_in_vcpu_run()): the thread holds the vCPU's file, so
 * the VM's reference count is not 0. Accesses KVM makes outside the run (a
 * VMM ioctl, the VM's teardown, where the count is 0 and the vCPU is about
 * to be freed) are recorded at once without image fields. Each pending
 * item holds a reference on the module (taken with try_module_get in the
 * hook: msrguard cannot finish unloading while work is pending), on the VM
 * (kvm_get_kvm_safe: the VM and so the vCPU outlive the work) and on
 * kvm.ko (symbol_get of kvm_put_kvm, which drops the VM's). The work frees
 * its item and drops these references last; a task still returning from
 * it after module_put is waited for by the synchronize_rcu_tasks() of
 * msrguard_hooks_exit(). A task that exits with work pending runs it in
 * do_exit(): outside KVM_RUN, the work records without image fields.
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
#include <linux/spinlock.h>
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

#include "ffi.h"

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

static atomic64_t image_lookups, image_cache_hits, image_found, image_reads, image_not_deferred,
	image_scans_stopped;

static int counter_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(kp->arg));
}

static const struct kernel_param_ops counter_ops = {
	.get = counter_get,
};

/* Read-only monitoring counters; the VM suite checks the scan bound with them. */
module_param_cb(image_lookups, &counter_ops, &image_lookups, 0444);
MODULE_PARM_DESC(image_lookups, "Events for which the image holding Pc was looked up");
module_param_cb(image_cache_hits, &counter_ops, &image_cache_hits, 0444);
MODULE_PARM_DESC(image_cache_hits, "Lookups answered by the cache (image or none), without a guest read");
module_param_cb(image_found, &counter_ops, &image_found, 0444);
MODULE_PARM_DESC(image_found, "Lookups that found an image (cache hits included)");
module_param_cb(image_reads, &counter_ops, &image_reads, 0444);
MODULE_PARM_DESC(image_reads, "Guest page reads done by image searches");
module_param_cb(image_not_deferred, &counter_ops, &image_not_deferred, 0444);
MODULE_PARM_DESC(image_not_deferred,
		 "Events recorded without a lookup: no free work item, or no task work possible");
module_param_cb(image_scans_stopped, &counter_ops, &image_scans_stopped, 0444);
MODULE_PARM_DESC(image_scans_stopped,
		 "Image searches stopped early (the vCPU's dirty ring at its soft limit, or the VMM dying)");

/* ---- Cache of images found -------------------------------------------- */

/* Whether @a came from a nested guest (L2). */
static bool access_nested(const struct msrguard_access *a)
{
	return a->flags & MSRGUARD_FLAG_NESTED;
}

#define CACHE_SIZE 64

/*
 * Images found, per VM (its struct kvm and VMM process), and pages whose
 * search found none (@none: image.base/size are that page), so that a
 * guest repeating an access from code in no image (a Linux guest) does not
 * pay a full search each time. Entries expire after image_cache_ms: a VM
 * that unloads or loads a driver, or a new VM that gets the address of a
 * destroyed one, sees a stale entry at most that long.
 */
struct cache_entry {
	const struct kvm *kvm;
	pid_t tgid;
	/* L2's images are not L1's: the same address is another image. */
	bool nested;
	bool none;
	u64 expires_ns;
	struct msrguard_image image;
};

static DEFINE_SPINLOCK(cache_lock);
static struct cache_entry cache[CACHE_SIZE];
static unsigned int cache_next;

/* Whether the cache knows @pc; *@found tells whether an image holds it. */
static bool cache_lookup(const struct kvm *kvm, const struct msrguard_access *a,
			 struct msrguard_image *out, bool *found)
{
	u64 now = ktime_get_ns();
	unsigned long flags;
	bool hit = false;
	int i;

	if (!READ_ONCE(image_cache_ms))
		return false;
	/* Also called from the hooks, which may run with interrupts off. */
	spin_lock_irqsave(&cache_lock, flags);
	for (i = 0; i < CACHE_SIZE; i++) {
		struct cache_entry *e = &cache[i];

		if (e->kvm == kvm && e->tgid == current->tgid && e->nested == access_nested(a) &&
		    now < e->expires_ns && a->pc >= e->image.base && a->pc - e->image.base < e->image.size) {
			*out = e->image;
			*found = !e->none;
			hit = true;
			break;
		}
	}
	spin_unlock_irqrestore(&cache_lock, flags);
	return hit;
}

static void cache_insert(const struct kvm *kvm, const struct msrguard_access *a,
			 const struct msrguard_image *image, bool none)
{
	unsigned int ms = READ_ONCE(image_cache_ms);
	unsigned long flags;

	if (!ms)
		return;
	spin_lock_irqsave(&cache_lock, flags);
	cache[cache_next] = (struct cache_entry){
		.kvm = kvm,
		.tgid = current->tgid,
		.nested = access_nested(a),
		.none = none,
		.expires_ns = ktime_get_ns() + (u64)ms * NSEC_PER_MSEC,
		.image = *image,
	};
	cache_next = (cache_next + 1) % CACHE_SIZE;
	spin_unlock_irqrestore(&cache_lock, flags);
}

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

static void fill(struct msrguard_access *a, const struct msrguard_image *image)
{
	atomic64_inc(&image_found);
	a->image_base = image->base;
	a->image_checksum = image->checksum;
	a->image_timestamp = image->timestamp;
	memcpy(a->image_name, image->name, sizeof(a->image_name));
	a->image_name[sizeof(a->image_name) - 1] = '\0';
}

/* Fills @a's image fields from the image holding a->pc, if one is found. */
static void attribute(struct kvm_vcpu *vcpu, struct msrguard_access *a)
{
	struct kvm *kvm = vcpu->kvm;
	struct msrguard_image image = {};
	unsigned int max_pages = READ_ONCE(image_scan_pages);
	bool found;
	int idx;

	if (!max_pages)
		return;
	/* Counted as a lookup by the hook, which missed the cache. */
	/*
	 * The page walker is the vCPU's current one: if a nested VM-exit (or
	 * entry) came between the access and now, it would walk the other
	 * guest's page tables.
	 */
	if (access_nested(a) != is_guest_mode(vcpu))
		return;
	if (cache_lookup(kvm, a, &image, &found)) {
		atomic64_inc(&image_cache_hits);
	} else {
		struct guest_reader r = { .vcpu = vcpu };

		idx = srcu_read_lock(&kvm->srcu);
		r.slots = kvm_vcpu_memslots(vcpu);
		found = msrguard_rust_find_image(a->pc, max_pages, read_guest, &r, &image);
		srcu_read_unlock(&kvm->srcu, idx);
		if (r.stopped && !found) {
			atomic64_inc(&image_scans_stopped);
			return;
		}
		if (!found)
			image = (struct msrguard_image){
				.base = a->pc & PAGE_MASK,
				.size = PAGE_SIZE,
			};
		cache_insert(kvm, a, &image, !found);
	}
	if (found)
		fill(a, &image);
}

/* ---- Deferring the record to the vCPU thread --------------------------- */

#define POOL_SIZE 64

struct pending {
	struct callback_head work;
	/*
	 * task_work runs LIFO: a thread's later records wait in this chain
	 * behind the first one, whose work records them all, in order.
	 */
	struct pending *next;
	/* The thread the record waits on; written and read by that thread only. */
	struct task_struct *task;
	/* The VM the item is for (set under pool_lock: the per-VM cap). */
	const struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	void (*put_kvm)(struct kvm *kvm);
	struct msrguard_access access;
	bool busy;
	/* The first of its thread's chain: it has the task work. */
	bool head;
	/* The image fields are known (a cache hit): no lookup. */
	bool attributed;
	/* Recorded already (the chain was flushed): the work only releases. */
	bool recorded;
};

/*
 * Items one VM may hold: a VM-entry MSR-load list (up to thousands of
 * entries, one vCPU, one KVM_RUN) must not take every item from the others.
 */
#define POOL_PER_VM (POOL_SIZE / 4)

static DEFINE_SPINLOCK(pool_lock);
static struct pending pool[POOL_SIZE];
/*
 * Busy items (written under pool_lock). A thread with records waiting has
 * made items busy itself, so it never reads 0 then: a cache hit that reads
 * 0 is recorded at once without the pool's lock and scan.
 */
static unsigned int pool_busy;

/*
 * A free item for this thread and @kvm (NULL if none, or if @kvm holds
 * POOL_PER_VM already), and in *@head and *@tail the first and the last
 * item already waiting on this thread (NULL if none): the new one goes
 * behind the last.
 */
static struct pending *pool_get(const struct kvm *kvm, struct pending **head,
				 struct pending **tail)
{
	struct pending *p = NULL;
	unsigned int vm_items = 0;
	unsigned long flags;
	int i;

	*head = NULL;
	*tail = NULL;
	/* Hooks may run with interrupts off (SVM's exit fast path). */
	spin_lock_irqsave(&pool_lock, flags);
	for (i = 0; i < POOL_SIZE; i++) {
		struct pending *q = &pool[i];

		if (!q->busy) {
			if (!p)
				p = q;
			continue;
		}
		vm_items += q->kvm == kvm;
		if (q->task != current)
			continue;
		if (q->head)
			*head = q;
		if (!q->next)
			*tail = q;
	}
	if (p && vm_items < POOL_PER_VM) {
		/* Under the lock: others read ->task and ->kvm of busy items. */
		WRITE_ONCE(pool_busy, pool_busy + 1);
		p->busy = true;
		p->task = current;
		p->kvm = kvm;
		p->next = NULL;
		p->head = false;
		p->attributed = false;
		p->recorded = false;
	} else {
		p = NULL;
	}
	spin_unlock_irqrestore(&pool_lock, flags);
	return p;
}

/*
 * Records this thread's waiting records now, in order, without image
 * fields: a later record that cannot wait behind them (no item) must not
 * overtake them. The chain is this thread's: its work, which will only
 * release the items, runs on this thread, never during a hook.
 */
static void flush_chain(struct pending *head)
{
	struct pending *q;

	for (q = head; q; q = q->next) {
		if (q->recorded)
			continue;
		msrguard_record_now(&q->access);
		q->recorded = true;
	}
}

static void pool_put(struct pending *p)
{
	unsigned long flags;

	spin_lock_irqsave(&pool_lock, flags);
	p->busy = false;
	WRITE_ONCE(pool_busy, pool_busy - 1);
	spin_unlock_irqrestore(&pool_lock, flags);
}

/* Records @p's access, then releases @p and what it holds. */
static void attribute_and_record_one(struct pending *p)
{
	struct kvm_vcpu *vcpu = p->vcpu;
	struct kvm *kvm = vcpu->kvm;
	void (*put_kvm)(struct kvm *kvm);

	/*
	 * Only inside this thread's KVM_RUN is the vCPU loaded here (its page
	 * walker may read lazily cached registers and mark pages dirty for the
	 * running vCPU). After a user-space exit, the work runs on the way
	 * back to user space, with vcpu->mutex released: another thread may be
	 * in KVM_RUN on this vCPU by then. Then, and in do_exit(), the record
	 * goes without.
	 */
	if (!p->recorded) {
		if (!p->attributed && msrguard_in_vcpu_run(vcpu))
			attribute(vcpu, &p->access);
		msrguard_record_now(&p->access);
	}
	put_kvm = p->put_kvm;
	pool_put(p);
	put_kvm(kvm);
	symbol_put(kvm_put_kvm);
	/* Last: from here on only the return, which msrguard_hooks_exit() waits for. */
	module_put(THIS_MODULE);
}

static void attribute_and_record(struct callback_head *work)
{
	struct pending *p = container_of(work, struct pending, work);

	/*
	 * The chain behind @p is this thread's only: no hook on this thread
	 * runs while its task work does, so it cannot grow meanwhile. Each
	 * item holds its own references, so releasing one keeps the module
	 * for the next.
	 */
	while (p) {
		struct pending *next = p->next;

		attribute_and_record_one(p);
		p = next;
	}
}

/*
 * Whether @kvm is an SEV guest: its page tables are ciphertext to the host,
 * and the walker would write Accessed bits into them, corrupting them.
 * (SEV-ES and later have protected state: the hooks attribute nothing.)
 */
static bool memory_encrypted(struct kvm_vcpu *vcpu)
{
	/* struct kvm_svm only exists on SVM hosts (kvm_amd). */
	return boot_cpu_has(X86_FEATURE_SVM) && is_sev_guest(vcpu);
}

bool msrguard_image_defer(struct kvm_vcpu *vcpu, struct msrguard_access *a)
{
	bool (*get_kvm_safe)(struct kvm *kvm);
	struct msrguard_image image;
	struct pending *p, *head, *tail;
	bool hit, found;

	if (!READ_ONCE(image_scan_pages) || memory_encrypted(vcpu))
		return false;
	atomic64_inc(&image_lookups);
	/* A cache hit needs no guest read. */
	hit = cache_lookup(vcpu->kvm, a, &image, &found);
	if (hit) {
		atomic64_inc(&image_cache_hits);
		if (found)
			fill(a, &image);
	}
	if (hit && !READ_ONCE(pool_busy))
		return false;	/* no record waits anywhere: recorded now */
	p = pool_get(vcpu->kvm, &head, &tail);
	/* Recorded now, as without attribution, unless earlier ones wait. */
	if (hit && !tail) {
		if (p)
			pool_put(p);
		return false;
	}
	if (!p) {
		/* Records never overtake this thread's waiting ones. */
		if (head)
			flush_chain(head);
		if (hit)
			return false;
		goto not_deferred;
	}
	p->attributed = hit;
	if (!try_module_get(THIS_MODULE))
		goto no_module;
	/*
	 * kvm_get_kvm_safe/kvm_put_kvm through symbol_get(), not by linking:
	 * msrguard may load before kvm.ko. Each holds a reference on kvm.ko
	 * until it is put; kvm_put_kvm's stays with the work.
	 */
	p->put_kvm = symbol_get(kvm_put_kvm);
	if (!p->put_kvm)
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
	p->vcpu = vcpu;
	p->access = *a;
	if (tail) {
		/* Recorded after the earlier ones, by the first one's work. */
		tail->next = p;
	} else {
		p->head = true;
		init_task_work(&p->work, attribute_and_record);
		if (task_work_add(current, &p->work, TWA_RESUME))
			goto no_work;	/* the task is exiting */
	}
	symbol_put(kvm_get_kvm_safe);
	return true;

no_work:
	/* Not the last reference: this thread's vCPU file holds one. */
	p->put_kvm(vcpu->kvm);
no_kvm:
	symbol_put(kvm_get_kvm_safe);
no_get:
	symbol_put(kvm_put_kvm);
no_put:
	module_put(THIS_MODULE);
no_module:
	pool_put(p);

not_deferred:
	atomic64_inc(&image_not_deferred);
	return false;
}
