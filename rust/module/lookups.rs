// SPDX-License-Identifier: GPL-2.0

//! Image lookups in the module: the pipeline of a new event
//! ([`crate::pipeline`]) over the kernel. The work pool and the image cache
//! live here under spinlocks; records go into the event queue; guest
//! memory, task work and the references that keep a VM and this module
//! while work is pending are the C side's (`kvm/guest_memory.c`).

use core::{
    ffi::c_void,
    sync::atomic::{
        AtomicU64,
        AtomicUsize,
        Ordering, //
    },
};

use kernel::{
    new_spinlock,
    prelude::*,
    sync::SpinLock, //
};

use crate::{
    boundary::{
        AccessC,
        ImageC, //
    },
    boundary_calls::{
        c_side::{
            msrguard_kvm_queue_work,
            msrguard_kvm_search,
            msrguard_report, //
        },
        KvmVcpu,
    },
    events::EventQueue,
    image_cache::{
        Entry,
        ImageCache,
        CACHE_SIZE, //
    },
    pipeline::{
        Counter,
        Kernel,
        Search, //
    },
    work_pool::{
        Item,
        WorkPool,
        POOL_SIZE, //
    },
};

/// The lookups' counters, read by the C side's module parameters.
static COUNTERS: [AtomicU64; Counter::ALL.len()] =
    [const { AtomicU64::new(0) }; Counter::ALL.len()];

/// The pool of records waiting for their lookup, and the images found.
#[pin_data]
pub(crate) struct ImageLookups {
    #[pin]
    pool: SpinLock<WorkPool<KVec<Item>>>,
    #[pin]
    cache: SpinLock<ImageCache<KVec<Entry>>>,
    /// The pool's busy items, stored under its lock, read without it.
    pool_busy: AtomicUsize,
}

impl ImageLookups {
    /// The pool and the cache, allocated now: the hooks never allocate.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            pool <- new_spinlock!(WorkPool::new(filled(POOL_SIZE, Item::FREE)?), "msrguard_pool"),
            cache <- new_spinlock!(
                ImageCache::new(filled(CACHE_SIZE, Entry::UNUSED)?),
                "msrguard_image_cache"
            ),
            pool_busy: AtomicUsize::new(0),
        })
    }
}

/// `n` copies of `value`, allocated now (process context), for the tables
/// the hooks use without allocating.
pub(crate) fn filled<T: Copy>(n: usize, value: T) -> Result<KVec<T>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(value, GFP_KERNEL)?;
    }
    Ok(v)
}

/// The pipeline's view of the kernel, for one vCPU's thread.
pub(crate) struct OnVcpu<'a> {
    /// The context the C side calls back with.
    pub(crate) ctx: *const c_void,
    pub(crate) events: &'a EventQueue,
    pub(crate) lookups: &'a ImageLookups,
    /// The vCPU (`struct kvm_vcpu *`), for the C side.
    pub(crate) vcpu: *mut KvmVcpu,
}

impl Kernel for OnVcpu<'_> {
    type PoolItems = KVec<Item>;
    type CacheEntries = KVec<Entry>;

    fn pool_idle(&self) -> bool {
        self.lookups.pool_busy.load(Ordering::Relaxed) == 0
    }

    fn with_pool<R>(&self, f: impl FnOnce(&mut WorkPool<KVec<Item>>) -> R) -> R {
        let mut pool = self.lookups.pool.lock();
        let r = f(&mut pool);
        // Relaxed: a thread that made items busy reads its own store (or a
        // later one, never 0 while its items wait).
        self.lookups.pool_busy.store(pool.busy(), Ordering::Relaxed);
        r
    }

    fn with_cache<R>(&self, f: impl FnOnce(&mut ImageCache<KVec<Entry>>) -> R) -> R {
        f(&mut self.lookups.cache.lock())
    }

    fn record(&self, access: &AccessC) {
        let outcome = self.events.record_access(access);
        // SAFETY: Both are valid for the call.
        unsafe { msrguard_report(access, &outcome) };
    }

    fn repeat_image(&self, access: &mut AccessC) -> bool {
        self.events.repeat_image(access)
    }

    fn queue_work(&self, item: usize) -> bool {
        let Ok(item) = u32::try_from(item) else {
            return false;
        };
        // `pipeline::new_event` asks this only for an event whose facts say
        // the thread is inside its KVM_RUN of `vcpu`, as the C side requires.
        // SAFETY: `ctx` and `vcpu` are what the C side handed the hook
        // calling this, valid for its call; the C side checks `item`.
        unsafe { msrguard_kvm_queue_work(self.ctx, self.vcpu, item) }
    }

    fn search(&self, access: &AccessC) -> Search {
        let mut image = ImageC::ZERO;
        // `pipeline::run_chain` (task work, process context) asks this only
        // when its facts say the thread is still inside its KVM_RUN of
        // `vcpu`, loaded here, as the C side requires.
        // SAFETY: `vcpu` is the task work's, whose VM it holds; `access`
        // and `image` are valid for the call.
        let code = unsafe { msrguard_kvm_search(self.vcpu, access, &mut image) };
        Search::from_code(u8::try_from(code).unwrap_or(u8::MAX), image)
    }

    fn count(&self, counter: Counter) {
        if let Some(c) = COUNTERS.get(counter as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The counter `MSRGUARD_COUNTER_*` `which` (0 for an unknown one), for
/// the C side's read-only module parameters.
#[no_mangle]
pub(crate) extern "C" fn msrguard_rust_image_counter(which: u8) -> u64 {
    COUNTERS
        .get(usize::from(which))
        .map_or(0, |c| c.load(Ordering::Relaxed))
}
