// SPDX-License-Identifier: GPL-2.0

//! Records waiting on their vCPU thread for the image holding their Pc.
//! `core`-only: the module keeps it under a spinlock, the host tests it
//! (`tests/pipeline.rs` drives it through [`crate::pipeline`]).
//!
//! A hook runs in atomic context and cannot read guest memory, so a new
//! record whose image is not cached waits in an item of this pool until
//! its thread runs task work (process context, before the vCPU re-enters
//! the guest). The rules:
//!
//! - Order: a thread's records leave in the order its hooks made them.
//!   Task work runs last-in first-out, so a thread has one chain of items:
//!   the first (the head) has the task work, and records the later ones,
//!   which wait behind it, in order. A record that cannot wait (no free
//!   item) has the chain recorded first ([`WorkPool::next_to_flush`]).
//! - Fairness: one VM holds at most [`WorkPool::per_vm`] items, so that a
//!   VM-entry MSR-load list (thousands of entries from one vCPU) cannot
//!   take every item from the other VMs.
//! - Bounded: every operation scans the items once.
//!
//! A chain belongs to one thread inside one vCPU's run: the work runs
//! before that thread leaves the run (on its way to user space at the
//! latest), so every item of a chain is of the same vCPU.

use core::ops::DerefMut;

use crate::boundary::AccessC;

/// Items the module has.
pub const POOL_SIZE: usize = 64;

/// One waiting record, or a free item.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    busy: bool,
    /// The thread the record waits on (the module's key of its task).
    task: u64,
    /// The VM the record is of.
    vm: u64,
    /// The next item of the chain.
    next: Option<usize>,
    /// The first item of its thread's chain: it has the task work.
    head: bool,
    /// The image fields are known already (a cache hit): no lookup.
    attributed: bool,
    /// Recorded already (the chain was flushed): the work only frees it.
    recorded: bool,
    access: AccessC,
}

impl Item {
    /// A free item, to fill the storage with.
    pub const FREE: Self = Self {
        busy: false,
        task: 0,
        vm: 0,
        next: None,
        head: false,
        attributed: false,
        recorded: false,
        access: AccessC::ZERO,
    };
}

/// A thread's chain: its first and its last item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The item with the task work.
    pub head: usize,
    /// The item a new record waits behind.
    pub tail: usize,
}

/// An item taken by [`WorkPool::take`], for the work to finish.
#[derive(Clone, Copy, Debug)]
pub struct Taken {
    /// The record.
    pub access: AccessC,
    /// Its image fields are known already.
    pub attributed: bool,
    /// Recorded already: only the item is to be freed.
    pub recorded: bool,
    /// The next item of the chain.
    pub next: Option<usize>,
}

/// The pool, over storage the caller allocates (`[Item::FREE; N]`).
pub struct WorkPool<S> {
    items: S,
    busy: usize,
    per_vm: usize,
}

impl<S: DerefMut<Target = [Item]>> WorkPool<S> {
    /// A pool of `items.len()` free items, a quarter of them per VM at most.
    pub fn new(mut items: S) -> Self {
        items.fill(Item::FREE);
        let per_vm = (items.len() / 4).max(1);
        Self {
            items,
            busy: 0,
            per_vm,
        }
    }

    /// Items one VM may hold.
    pub fn per_vm(&self) -> usize {
        self.per_vm
    }

    /// Items in use. A thread with records waiting has made items busy
    /// itself, so while this is 0 no record waits anywhere.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// The chain of records waiting on `task`, if any.
    pub fn chain(&self, task: u64) -> Option<Chain> {
        let mut head = None;
        let mut tail = None;
        for (i, item) in self.items.iter().enumerate() {
            if item.busy && item.task == task {
                if item.head {
                    head = Some(i);
                }
                if item.next.is_none() {
                    tail = Some(i);
                }
            }
        }
        Some(Chain {
            head: head?,
            tail: tail?,
        })
    }

    /// Takes a free item for `access` of `vm`, waiting on `task` behind
    /// `chain` (the task's, from [`Self::chain`]; None: the item becomes
    /// the head of a new chain). None if no item is free or `vm` holds its
    /// share.
    pub fn acquire(
        &mut self,
        task: u64,
        vm: u64,
        chain: Option<Chain>,
        access: &AccessC,
        attributed: bool,
    ) -> Option<usize> {
        let mut free = None;
        let mut vm_items = 0;
        for (i, item) in self.items.iter().enumerate() {
            if !item.busy {
                free = free.or(Some(i));
            } else if item.vm == vm {
                vm_items += 1;
            }
        }
        let i = free.filter(|_| vm_items < self.per_vm)?;
        let tail = match chain {
            Some(chain) => Some(self.items.get_mut(chain.tail)?),
            None => None,
        };
        if let Some(tail) = tail {
            tail.next = Some(i);
        }
        *self.items.get_mut(i)? = Item {
            busy: true,
            task,
            vm,
            next: None,
            head: chain.is_none(),
            attributed,
            recorded: false,
            access: *access,
        };
        self.busy += 1;
        Some(i)
    }

    /// The first record of the chain headed by `head` not recorded yet,
    /// now marked recorded (its work will only free it); None when every
    /// one is. The caller records it, without this pool's lock: a chain is
    /// its thread's, and only that thread flushes it or runs its work.
    pub fn next_to_flush(&mut self, head: usize) -> Option<AccessC> {
        let mut next = Some(head);
        // A chain has at most as many items as the pool.
        for _ in 0..self.items.len() {
            let item = self.items.get_mut(next?)?;
            if item.busy && !item.recorded {
                item.recorded = true;
                return Some(item.access);
            }
            next = item.next;
        }
        None
    }

    /// What the work needs of busy item `i`. None if `i` is not busy.
    pub fn take(&self, i: usize) -> Option<Taken> {
        let item = self.items.get(i).filter(|item| item.busy)?;
        Some(Taken {
            access: item.access,
            attributed: item.attributed,
            recorded: item.recorded,
            next: item.next,
        })
    }

    /// Frees item `i` (the head of its chain, or a head whose work could
    /// not be queued): the next item, if any, becomes the head. Returns
    /// whether `i` was busy.
    pub fn free(&mut self, i: usize) -> bool {
        let Some(item) = self.items.get_mut(i).filter(|item| item.busy) else {
            return false;
        };
        let next = item.next;
        *item = Item::FREE;
        if let Some(next) = next.and_then(|n| self.items.get_mut(n)) {
            next.head = true;
        }
        self.busy -= 1;
        true
    }
}
