// SPDX-License-Identifier: GPL-2.0

//! What happens to a new event: recorded at once, or after the image
//! holding its Pc is looked up on its vCPU thread. `core`-only: the module
//! implements [`Kernel`] with its locks, its queue and the C side's guest
//! memory and task work; the host tests implement it with a model
//! (`tests/pipeline.rs`).
//!
//! [`new_event`] runs in the hook (atomic context); [`run_chain`] in the
//! thread's task work (process context), where guest memory can be read.
//! A repeat coalesced into its VM's previous record never gets here.

use crate::{
    boundary::{
        AccessC,
        EventFactsC,
        ImageC, //
    },
    image_cache::{
        Entry,
        ImageCache,
        ImageOwner,
        Known, //
    },
    record::FLAG_OUTSIDE_RUN,
    work_pool::{
        Item,
        WorkPool, //
    },
};

/// What a search of guest memory found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// The image holding Pc.
    Found(ImageC),
    /// No image holds Pc (within the pages searched).
    NotFound,
    /// Stopped early (the dirty ring at its soft limit, a dying VMM):
    /// says nothing.
    Stopped,
    /// Not searched (the vCPU no longer at the record's guest level, whose
    /// page tables it would walk; attribution turned off meanwhile).
    NotSearched,
}

impl Search {
    const FOUND: u8 = 0;
    const NOT_FOUND: u8 = 1;
    const STOPPED: u8 = 2;
    const NOT_SEARCHED: u8 = 3;

    /// How the C side reports a search: `MSRGUARD_SEARCH_<name>`.
    pub const CODES: [(&'static str, u8); 4] = [
        ("FOUND", Self::FOUND),
        ("NOT_FOUND", Self::NOT_FOUND),
        ("STOPPED", Self::STOPPED),
        ("NOT_SEARCHED", Self::NOT_SEARCHED),
    ];

    /// The search the C side reported as `code`, `image` if found. An
    /// unknown code says nothing, as a stopped search.
    pub fn from_code(code: u8, image: ImageC) -> Search {
        match code {
            Self::FOUND => Search::Found(image),
            Self::NOT_FOUND => Search::NotFound,
            Self::NOT_SEARCHED => Search::NotSearched,
            _ => Search::Stopped,
        }
    }
}

/// The lookups' monitoring counters (module parameters `image_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Counter {
    /// Events whose image was looked up.
    Lookups = 0,
    /// Lookups the cache answered (image or none), without a guest read.
    CacheHits = 1,
    /// Lookups that found an image (cache hits included).
    Found = 2,
    /// Events recorded without a lookup: no free item, or no task work.
    NotDeferred = 3,
    /// Searches stopped early, which cached nothing.
    ScansStopped = 4,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 5] = [
        Counter::Lookups,
        Counter::CacheHits,
        Counter::Found,
        Counter::NotDeferred,
        Counter::ScansStopped,
    ];

    /// The C name of the counter's module parameter, after `image_`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Lookups => "lookups",
            Counter::CacheHits => "cache_hits",
            Counter::Found => "found",
            Counter::NotDeferred => "not_deferred",
            Counter::ScansStopped => "scans_stopped",
        }
    }
}

/// What the pipeline needs of the kernel.
pub trait Kernel {
    /// The pool's storage.
    type PoolItems: core::ops::DerefMut<Target = [Item]>;
    /// The cache's storage.
    type CacheEntries: core::ops::DerefMut<Target = [Entry]>;

    /// Whether the pool has no busy item, read without its lock. A thread
    /// with records waiting has made items busy itself, so it never reads
    /// true then.
    fn pool_idle(&self) -> bool;
    /// Runs `f` on the pool, under its lock (atomic context).
    fn with_pool<R>(&self, f: impl FnOnce(&mut WorkPool<Self::PoolItems>) -> R) -> R;
    /// Runs `f` on the cache, under its lock (atomic context).
    fn with_cache<R>(&self, f: impl FnOnce(&mut ImageCache<Self::CacheEntries>) -> R) -> R;
    /// Queues the record of `access`, then its trace event and log line.
    /// Never called with the pool or the cache locked.
    fn record(&self, access: &AccessC);
    /// While a trace event shows every repeat in full: if `access` repeats
    /// its VM's queued previous record, copies that record's image fields
    /// into it (the same Pc, the same image) and returns true.
    fn repeat_image(&self, access: &mut AccessC) -> bool;
    /// Queues task work on the current thread that will call
    /// [`run_chain`] for `item`, holding the VM and the module until it
    /// has; false if it cannot (the task is exiting).
    fn queue_work(&self, item: usize) -> bool;
    /// Searches the vCPU's guest memory for the image holding
    /// `access.pc` (process context; may sleep).
    fn search(&self, access: &AccessC) -> Search;
    /// Counts one `counter` event.
    fn count(&self, counter: Counter);
}

fn owner(facts: &EventFactsC, access: &AccessC) -> ImageOwner {
    ImageOwner {
        // The VM's id is never another VM's; the address of an untracked
        // VM (id 0) may be, after its destruction, for at most a cache
        // entry's lifetime. (Ids are below 2^32, kernel addresses above.)
        vm: if access.vm_id != 0 {
            u64::from(access.vm_id)
        } else {
            facts.vm
        },
        tgid: access.vmm_pid,
        nested: access.flags & crate::record::FLAG_NESTED != 0,
    }
}

fn fill(access: &mut AccessC, image: &ImageC) {
    access.image_base = image.base;
    access.image_checksum = image.checksum;
    access.image_timestamp = image.timestamp;
    access.image_name = image.name;
    // The name is C's string: NUL-terminated whatever the image said.
    if let Some(last) = access.image_name.last_mut() {
        *last = 0;
    }
}

/// What the cache knows of `access`'s Pc, counted, its image filled in.
fn cached<K: Kernel>(k: &K, facts: &EventFactsC, access: &mut AccessC) -> Option<Known> {
    if facts.cache_ttl_ns == 0 {
        return None;
    }
    let known = k.with_cache(|c| c.lookup(&owner(facts, access), access.pc, facts.now_ns))?;
    k.count(Counter::CacheHits);
    if let Known::Image(image) = known {
        k.count(Counter::Found);
        fill(access, &image);
    }
    Some(known)
}

/// Where a new event goes, decided under the pool's lock.
enum Next {
    RecordNow,
    /// Recorded now, after the thread's chain headed by `head`.
    FlushThenRecordNow {
        head: usize,
    },
    Waits {
        item: usize,
        head: bool,
    },
}

/// Records, in order, the records of the chain headed by `head` not
/// recorded yet; one at a time, each outside the pool's lock (trace event
/// and log line included).
fn flush<K: Kernel>(k: &K, head: usize) {
    while let Some(access) = k.with_pool(|pool| pool.next_to_flush(head)) {
        k.record(&access);
    }
}

/// A new event (not a repeat), every field but the image's gathered by the
/// hook: recorded now, or queued behind its thread's waiting records for a
/// lookup of its image. Never ahead of its thread's waiting records.
/// Atomic context: bounded, no guest read.
pub fn new_event<K: Kernel>(k: &K, facts: &EventFactsC, access: &mut AccessC) {
    let in_run = facts.in_run != 0;
    if !in_run {
        access.flags |= FLAG_OUTSIDE_RUN;
    }
    // Whether the record has every field it will get.
    let complete = if facts.tracing != 0 && k.repeat_image(access) {
        // Shown in full by a trace event: a repeat has its record's image.
        true
    } else if !in_run || facts.attributable == 0 {
        // Outside the vCPU's run no lookup is deferred: the work could
        // outlive the vCPU (teardown) or never run (a kworker).
        true
    } else {
        k.count(Counter::Lookups);
        cached(k, facts, access).is_some()
    };
    // Nearly always: no record waits anywhere, nothing to keep the order of.
    if complete && k.pool_idle() {
        k.record(access);
        return;
    }
    let next = k.with_pool(|pool| {
        let chain = pool.chain(facts.task);
        if complete && chain.is_none() {
            return Next::RecordNow;
        }
        // Inside the run the thread's work comes before the guest runs
        // again; outside, late or never: there the chain goes first.
        if in_run {
            if let Some(item) = pool.acquire(facts.task, facts.vm, chain, access, complete) {
                return Next::Waits {
                    item,
                    head: chain.is_none(),
                };
            }
        }
        // This record cannot wait, and must not overtake the thread's
        // waiting ones: they are recorded first, without images.
        match chain {
            Some(chain) => Next::FlushThenRecordNow { head: chain.head },
            None => Next::RecordNow,
        }
    });
    match next {
        Next::Waits { head: false, .. } => {}
        Next::Waits { item, head: true } if k.queue_work(item) => {}
        Next::Waits { item, .. } => {
            k.with_pool(|pool| pool.free(item));
            k.count(Counter::NotDeferred);
            k.record(access);
        }
        Next::RecordNow | Next::FlushThenRecordNow { .. } => {
            if let Next::FlushThenRecordNow { head } = next {
                flush(k, head);
            }
            if !complete {
                k.count(Counter::NotDeferred);
            }
            k.record(access);
        }
    }
}

/// The task work of the chain whose head is `head`: each record not yet
/// recorded gets its image looked up (if `in_run`: the thread is still in
/// the vCPU's run, whose guest memory it may read) and is recorded, in
/// order; each item is freed. Process context.
pub fn run_chain<K: Kernel>(k: &K, facts: &EventFactsC, head: usize) {
    let mut next = Some(head);
    while let Some(item) = next {
        let Some(taken) = k.with_pool(|pool| pool.take(item)) else {
            return;
        };
        next = taken.next;
        if !taken.recorded {
            let mut access = taken.access;
            if !taken.attributed && facts.in_run != 0 {
                look_up(k, facts, &mut access);
            }
            k.record(&access);
        }
        k.with_pool(|pool| pool.free(item));
    }
}

/// Fills `access`'s image fields from the cache or a search of guest
/// memory, whose answer the cache keeps.
fn look_up<K: Kernel>(k: &K, facts: &EventFactsC, access: &mut AccessC) {
    // Counted as a lookup by the hook, which missed the cache.
    if cached(k, facts, access).is_some() {
        return;
    }
    let image = match k.search(access) {
        Search::Found(image) => Some(image),
        Search::NotFound => None,
        Search::Stopped => {
            k.count(Counter::ScansStopped);
            return;
        }
        Search::NotSearched => return,
    };
    let owner = owner(facts, access);
    k.with_cache(|c| {
        c.insert(
            owner,
            access.pc,
            image.as_ref(),
            facts.now_ns,
            facts.cache_ttl_ns,
        )
    });
    if let Some(image) = image {
        k.count(Counter::Found);
        fill(access, &image);
    }
}
