// SPDX-License-Identifier: GPL-2.0
//! What happens to a new event (`rust/core/pipeline.rs`), with the work
//! pool (`work_pool.rs`) and the image cache (`image_cache.rs`), driven
//! through a model of the kernel: threads whose hooks make events and
//! whose task work runs at any moment between them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use msrguard_core::boundary::{AccessC, EventFactsC, ImageC};
use msrguard_core::image_cache::{Entry, ImageCache, ImageOwner, Known, CACHE_SIZE, PAGE_SIZE};
use msrguard_core::pipeline::{self, Counter, Kernel, Search};
use msrguard_core::record::FLAG_OUTSIDE_RUN;
use msrguard_core::work_pool::{Item, WorkPool, POOL_SIZE};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Guest images of the model: every VM has these (base, size).
const IMAGES: [(u64, u32); 2] = [(0x1000_0000, 0x4000), (0x2000_0000, 0x2000)];
/// A Pc whose search stops early (the dirty ring, say).
const STOPPING_PC: u64 = 0x3000_0123;

fn image_of(vm: u64, pc: u64) -> Option<ImageC> {
    IMAGES
        .iter()
        .find(|(base, size)| pc >= *base && pc - base < u64::from(*size))
        .map(|&(base, size)| {
            let mut name = [0u8; 40];
            let n = format!("vm{vm}-{base:x}.sys");
            name[..n.len()].copy_from_slice(n.as_bytes());
            ImageC {
                base: base + vm, // each VM's image differs
                size,
                checksum: vm as u32,
                timestamp: 0,
                name,
                pad: 0,
            }
        })
}

#[derive(Default)]
struct Model {
    pool: RefCell<Option<WorkPool<Vec<Item>>>>,
    cache: RefCell<Option<ImageCache<Vec<Entry>>>>,
    recorded: RefCell<Vec<AccessC>>,
    /// Task work queued: (task, head item).
    work: RefCell<Vec<(u64, usize)>>,
    current: Cell<u64>,
    /// The pool's lock is held (records are never made under it).
    pool_locked: Cell<bool>,
    current_vm: Cell<u64>,
    /// queue_work fails (an exiting task).
    exiting: Cell<bool>,
    searches: Cell<u32>,
    counters: RefCell<HashMap<u8, u64>>,
}

impl Model {
    fn new() -> Self {
        let m = Model::default();
        *m.pool.borrow_mut() = Some(WorkPool::new(vec![Item::FREE; POOL_SIZE]));
        *m.cache.borrow_mut() = Some(ImageCache::new(vec![Entry::UNUSED; CACHE_SIZE]));
        m
    }

    fn count_of(&self, c: Counter) -> u64 {
        self.counters.borrow().get(&(c as u8)).copied().unwrap_or(0)
    }
}

impl Kernel for Model {
    type PoolItems = Vec<Item>;
    type CacheEntries = Vec<Entry>;

    fn pool_idle(&self) -> bool {
        self.pool.borrow().as_ref().unwrap().busy() == 0
    }

    fn with_pool<R>(&self, f: impl FnOnce(&mut WorkPool<Vec<Item>>) -> R) -> R {
        self.pool_locked.set(true);
        let r = f(self.pool.borrow_mut().as_mut().unwrap());
        self.pool_locked.set(false);
        r
    }

    fn with_cache<R>(&self, f: impl FnOnce(&mut ImageCache<Vec<Entry>>) -> R) -> R {
        f(self.cache.borrow_mut().as_mut().unwrap())
    }

    fn record(&self, access: &AccessC) {
        assert!(!self.pool_locked.get(), "recorded under the pool's lock");
        self.recorded.borrow_mut().push(*access);
    }

    fn repeat_image(&self, _access: &mut AccessC) -> bool {
        false
    }

    fn queue_work(&self, item: usize) -> bool {
        if self.exiting.get() {
            return false;
        }
        self.work.borrow_mut().push((self.current.get(), item));
        true
    }

    fn search(&self, access: &AccessC) -> Search {
        self.searches.set(self.searches.get() + 1);
        if access.pc == STOPPING_PC {
            return Search::Stopped;
        }
        match image_of(self.current_vm.get(), access.pc) {
            Some(image) => Search::Found(image),
            None => Search::NotFound,
        }
    }

    fn count(&self, counter: Counter) {
        *self.counters.borrow_mut().entry(counter as u8).or_default() += 1;
    }
}

fn facts(task: u64, now_ns: u64, in_run: bool) -> EventFactsC {
    EventFactsC {
        task,
        vm: task % 3,
        now_ns,
        cache_ttl_ns: 10_000_000_000,
        in_run: in_run.into(),
        attributable: 1,
        ..EventFactsC::ZERO
    }
}

/// An access tagged with its thread and its number on that thread.
fn access(task: u64, seq: u32, pc: u64) -> AccessC {
    AccessC {
        pc,
        value: task << 32 | u64::from(seq),
        vmm_pid: 100,
        vcpu_id: task as u32,
        ..AccessC::ZERO
    }
}

fn event(m: &Model, f: &EventFactsC, a: &mut AccessC) {
    m.current.set(f.task);
    m.current_vm.set(f.vm);
    pipeline::new_event(m, f, a);
}

/// Runs `task`'s queued work, as the kernel does before the vCPU
/// re-enters the guest.
fn run_work(m: &Model, task: u64, now_ns: u64, in_run: bool) {
    let mine: Vec<usize> = {
        let mut work = m.work.borrow_mut();
        let mine = work.iter().filter(|w| w.0 == task).map(|w| w.1).collect();
        work.retain(|w| w.0 != task);
        mine
    };
    m.current.set(task);
    m.current_vm.set(task % 3);
    for head in mine.into_iter().rev() {
        pipeline::run_chain(m, &facts(task, now_ns, in_run), head);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A new event of `task` from `pc`.
    Event { task: u64, pc: u64, in_run: bool },
    /// `task`'s work runs (`in_run`: still inside its vCPU's run).
    Work { task: u64, in_run: bool },
    /// The next queue_work fails or succeeds.
    Exiting(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let pc = prop_oneof![
        Just(0x1000_0010u64),
        Just(0x1000_3ff0),
        Just(0x2000_0100),
        Just(0x7000_0000),
        Just(STOPPING_PC),
    ];
    prop_oneof![
        8 => (0..5u64, pc, prop::bool::weighted(0.9))
            .prop_map(|(task, pc, in_run)| Op::Event { task, pc, in_run }),
        2 => (0..5u64, prop::bool::weighted(0.8)).prop_map(|(task, in_run)| Op::Work { task, in_run }),
        1 => any::<bool>().prop_map(Op::Exiting),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Next to this file, where the regressions are committed (the
        // default would look for them relative to a source root it guesses).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/pipeline.proptest-regressions"
        ))),
        ..ProptestConfig::default()
    })]

    /// Whatever the interleaving, each event is recorded exactly once; a
    /// thread's records keep the order its hooks made them in; an image is
    /// the one of the record's own VM at its Pc; the pool ends empty.
    #[test]
    fn each_event_once_in_order_with_its_own_image(ops in prop::collection::vec(op(), 1..400)) {
        let m = Model::new();
        let mut made: HashMap<u64, u32> = HashMap::new();
        let mut now = 1_000u64;
        for op in &ops {
            now += 1_000;
            match *op {
                Op::Event { task, pc, in_run } => {
                    let seq = made.entry(task).or_default();
                    let mut a = access(task, *seq, pc);
                    *seq += 1;
                    event(&m, &facts(task, now, in_run), &mut a);
                }
                Op::Work { task, in_run } => run_work(&m, task, now, in_run),
                Op::Exiting(e) => m.exiting.set(e),
            }
            let busy = m.with_pool(|p| p.busy());
            prop_assert!(busy <= POOL_SIZE);
        }
        for task in 0..5 {
            run_work(&m, task, now, true);
        }
        prop_assert_eq!(m.with_pool(|p| p.busy()), 0, "items left busy");
        prop_assert!(m.work.borrow().is_empty());

        let recorded = m.recorded.borrow();
        let total: u32 = made.values().sum();
        prop_assert_eq!(recorded.len(), total as usize, "each event recorded once");
        let mut last: HashMap<u64, i64> = HashMap::new();
        for a in recorded.iter() {
            let task = a.value >> 32;
            let seq = i64::from(a.value as u32);
            let prev = last.insert(task, seq).unwrap_or(-1);
            prop_assert_eq!(seq, prev + 1, "task {} recorded out of order", task);
            if a.image_base != 0 {
                let want = image_of(task % 3, a.pc).expect("an image where the model has none");
                prop_assert_eq!(a.image_base, want.base);
                prop_assert_eq!(&a.image_name[..], &want.name[..]);
            }
        }
    }
}

#[test]
fn a_hit_with_nothing_waiting_is_recorded_at_once() {
    let m = Model::new();
    let f = facts(1, 10, true);
    let mut a = access(1, 0, 0x1000_0010);
    event(&m, &f, &mut a);
    assert!(
        m.recorded.borrow().is_empty(),
        "a miss waits for its lookup"
    );
    run_work(&m, 1, 20, true);
    assert_eq!(m.recorded.borrow().len(), 1);
    assert_eq!(m.searches.get(), 1);
    let mut b = access(1, 1, 0x1000_0020);
    event(&m, &facts(1, 30, true), &mut b);
    let recorded = m.recorded.borrow();
    assert_eq!(recorded.len(), 2, "a cache hit is recorded in the hook");
    assert_eq!(
        recorded[1].image_base,
        image_of(1, 0x1000_0020).unwrap().base
    );
    assert_eq!(m.searches.get(), 1);
    assert_eq!(m.count_of(Counter::Lookups), 2);
    assert_eq!(m.count_of(Counter::CacheHits), 1);
    assert_eq!(m.count_of(Counter::Found), 2);
}

#[test]
fn a_hit_behind_waiting_records_waits_too() {
    let m = Model::new();
    let mut a = access(1, 0, 0x7000_0000);
    event(&m, &facts(1, 10, true), &mut a);
    run_work(&m, 1, 20, true); // caches "no image" for that page
    let mut b = access(1, 1, 0x1000_0010);
    event(&m, &facts(1, 30, true), &mut b); // a miss: waits
    let mut c = access(1, 2, 0x7000_0008);
    event(&m, &facts(1, 40, true), &mut c); // a hit, but b waits
    assert_eq!(m.recorded.borrow().len(), 1);
    run_work(&m, 1, 50, true);
    let seqs: Vec<u64> = m
        .recorded
        .borrow()
        .iter()
        .map(|a| a.value & 0xffff)
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
}

#[test]
fn no_item_flushes_the_chain_first() {
    let m = Model::new();
    let per_vm = m.with_pool(|p| p.per_vm());
    // One thread of VM 1 fills its share of the pool.
    for seq in 0..per_vm as u32 {
        let mut a = access(1, seq, 0x1000_0010 + u64::from(seq) * PAGE_SIZE * 16);
        event(&m, &facts(1, 10, true), &mut a);
    }
    assert!(m.recorded.borrow().is_empty());
    let mut last = access(1, per_vm as u32, 0x7000_0000);
    event(&m, &facts(1, 20, true), &mut last);
    let seqs: Vec<u64> = m
        .recorded
        .borrow()
        .iter()
        .map(|a| a.value & 0xffff)
        .collect();
    assert_eq!(seqs, (0..=per_vm as u64).collect::<Vec<_>>());
    assert!(m.recorded.borrow().iter().all(|a| a.image_base == 0));
    assert_eq!(m.count_of(Counter::NotDeferred), 1);
    // The flushed records' work only frees their items.
    run_work(&m, 1, 30, true);
    assert_eq!(m.recorded.borrow().len(), per_vm + 1);
    assert_eq!(m.with_pool(|p| p.busy()), 0);
    assert_eq!(m.searches.get(), 0);
}

#[test]
fn one_vm_takes_at_most_its_share() {
    let m = Model::new();
    // Tasks 1, 4, 7, ... are all of VM 1 (task % 3).
    for t in 0..POOL_SIZE as u64 {
        let mut a = access(1 + 3 * t, 0, 0x7000_0000);
        event(&m, &facts(1 + 3 * t, 10, true), &mut a);
    }
    let per_vm = m.with_pool(|p| p.per_vm());
    assert_eq!(m.with_pool(|p| p.busy()), per_vm);
    assert_eq!(m.recorded.borrow().len(), POOL_SIZE - per_vm);
    // Another VM still gets an item.
    let mut a = access(2, 0, 0x7000_0000);
    event(&m, &facts(2, 10, true), &mut a);
    assert_eq!(m.with_pool(|p| p.busy()), per_vm + 1);
}

#[test]
fn outside_the_run_nothing_waits_and_the_record_says_so() {
    let m = Model::new();
    let mut a = access(1, 0, 0x1000_0010);
    event(&m, &facts(1, 10, false), &mut a);
    let recorded = m.recorded.borrow();
    assert_eq!(recorded.len(), 1);
    assert_ne!(recorded[0].flags & FLAG_OUTSIDE_RUN, 0);
    assert_eq!(recorded[0].image_base, 0);
    assert_eq!(m.count_of(Counter::Lookups), 0);
}

#[test]
fn work_after_the_run_records_without_a_search() {
    let m = Model::new();
    let mut a = access(1, 0, 0x1000_0010);
    event(&m, &facts(1, 10, true), &mut a);
    run_work(&m, 1, 20, false);
    assert_eq!(m.recorded.borrow().len(), 1);
    assert_eq!(m.recorded.borrow()[0].image_base, 0);
    assert_eq!(m.searches.get(), 0);
}

#[test]
fn a_stopped_search_is_counted_and_not_cached() {
    let m = Model::new();
    for (seq, now) in [(0, 10), (1, 30)] {
        let mut a = access(1, seq, STOPPING_PC);
        event(&m, &facts(1, now, true), &mut a);
        run_work(&m, 1, now + 10, true);
    }
    assert_eq!(m.searches.get(), 2, "the second event searched again");
    assert_eq!(m.count_of(Counter::ScansStopped), 2);
    assert_eq!(m.count_of(Counter::CacheHits), 0);
}

#[test]
fn a_head_whose_work_cannot_be_queued_is_recorded_at_once() {
    let m = Model::new();
    m.exiting.set(true);
    let mut a = access(1, 0, 0x1000_0010);
    event(&m, &facts(1, 10, true), &mut a);
    assert_eq!(m.recorded.borrow().len(), 1);
    assert_eq!(m.with_pool(|p| p.busy()), 0);
    assert_eq!(m.count_of(Counter::NotDeferred), 1);
}

mod cache {
    use super::*;

    fn owner(vm: u64) -> ImageOwner {
        ImageOwner {
            vm,
            tgid: 7,
            nested: false,
        }
    }

    fn cache() -> ImageCache<Vec<Entry>> {
        ImageCache::new(vec![Entry::UNUSED; CACHE_SIZE])
    }

    #[test]
    fn an_image_is_known_within_it_for_its_owner_until_it_expires() {
        let mut c = cache();
        let image = image_of(1, 0x1000_0000).unwrap();
        c.insert(owner(1), 0x1000_0010, Some(&image), 100, 50);
        assert_eq!(
            c.lookup(&owner(1), image.base, 120),
            Some(Known::Image(image))
        );
        assert_eq!(
            c.lookup(&owner(1), image.base + u64::from(image.size) - 1, 149),
            Some(Known::Image(image))
        );
        assert_eq!(
            c.lookup(&owner(1), image.base + u64::from(image.size), 120),
            None
        );
        assert_eq!(c.lookup(&owner(1), image.base - 1, 120), None);
        assert_eq!(c.lookup(&owner(1), image.base, 150), None, "expired");
        assert_eq!(c.lookup(&owner(2), image.base, 120), None, "another VM");
        let l2 = ImageOwner {
            nested: true,
            ..owner(1)
        };
        assert_eq!(c.lookup(&l2, image.base, 120), None, "the nested guest");
        let other_vmm = ImageOwner {
            tgid: 8,
            ..owner(1)
        };
        assert_eq!(c.lookup(&other_vmm, image.base, 120), None, "another VMM");
    }

    #[test]
    fn no_image_covers_the_page() {
        let mut c = cache();
        c.insert(owner(1), 0x7000_0123, None, 0, 50);
        assert_eq!(c.lookup(&owner(1), 0x7000_0000, 1), Some(Known::NoImage));
        assert_eq!(c.lookup(&owner(1), 0x7000_0fff, 1), Some(Known::NoImage));
        assert_eq!(c.lookup(&owner(1), 0x7000_1000, 1), None);
    }

    #[test]
    fn a_zero_lifetime_caches_nothing() {
        let mut c = cache();
        c.insert(owner(1), 0x7000_0123, None, 0, 0);
        assert_eq!(c.lookup(&owner(1), 0x7000_0123, 0), None);
    }

    #[test]
    fn a_full_cache_overwrites_its_oldest_entry() {
        let mut c = cache();
        for i in 0..=CACHE_SIZE as u64 {
            c.insert(owner(1), i * PAGE_SIZE, None, 0, 1000);
        }
        assert_eq!(c.lookup(&owner(1), 0, 1), None, "the first entry went");
        for i in 1..=CACHE_SIZE as u64 {
            assert_eq!(c.lookup(&owner(1), i * PAGE_SIZE, 1), Some(Known::NoImage));
        }
    }
}
