// SPDX-License-Identifier: GPL-2.0

//! The bounded event queue behind `/dev/msrguard`.
//!
//! Hooks append records in atomic context; readers take them in order. All
//! readers share the one queue: each record is delivered to exactly one
//! read(). When the queue is full the newest event is dropped and counted,
//! so what is queued is always a gap-free run of the oldest undelivered
//! events and the gap shows in the sequence numbers.

use kernel::{
    new_poll_condvar,
    new_spinlock, //
    prelude::*,
    sync::{
        poll::PollCondVar,
        SpinLock, //
    },
};

use crate::record::{
    AccessStatus,
    Record,
    Stats,
    ABI_VERSION,
    RECORD_SIZE, //
};

/// Largest accepted `ring_records` parameter.
pub(crate) const MAX_CAPACITY: usize = 1 << 16;

/// The ring and its counters, under one spinlock.
struct Ring {
    /// Encoded records; `slots.len()` is the capacity, fixed at load.
    slots: KVVec<[u8; RECORD_SIZE]>,
    /// Index of the oldest queued record.
    head: usize,
    /// Number of queued records.
    len: usize,
    /// Sequence number of the next event.
    next_sequence: u64,
    /// Counters reported by the stats ioctl.
    stats: Stats,
}

/// Events waiting for readers, and the wait queue readers sleep on.
#[pin_data]
pub(crate) struct EventQueue {
    #[pin]
    ring: SpinLock<Ring>,
    #[pin]
    readable: PollCondVar,
}

impl EventQueue {
    /// A queue of `capacity` records, all allocated now: recording never
    /// allocates.
    pub(crate) fn new(capacity: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ring <- new_spinlock!(Ring::new(capacity)?, "msrguard_ring"),
            readable <- new_poll_condvar!("msrguard_readable"),
        })
    }

    /// Appends an event, giving it the next sequence number, and wakes
    /// readers. Returns that sequence number. Safe in atomic context.
    pub(crate) fn record(&self, mut record: Record) -> u64 {
        let mut ring = self.ring.lock();
        let sequence = ring.next_sequence;
        ring.next_sequence = sequence.wrapping_add(1);
        record.sequence = sequence;
        let stats = &mut ring.stats;
        stats.generated = stats.generated.wrapping_add(1);
        match record.access_status {
            AccessStatus::BlockedGp => stats.blocked_gp = stats.blocked_gp.wrapping_add(1),
            AccessStatus::BlockedIgnored => {
                stats.blocked_ignored = stats.blocked_ignored.wrapping_add(1)
            }
            AccessStatus::AuditAllowed => stats.audit_allowed = stats.audit_allowed.wrapping_add(1),
        }
        let capacity = ring.slots.len();
        if ring.len >= capacity {
            ring.stats.dropped = ring.stats.dropped.wrapping_add(1);
        } else {
            let index = ring.index(ring.len);
            if let Some(slot) = ring.slots.get_mut(index) {
                *slot = record.to_bytes();
                ring.len += 1;
            }
        }
        drop(ring);
        self.readable.notify_all();
        sequence
    }

    /// Copies up to `out.len()` of the oldest records into `out` without
    /// removing them (see [`Self::commit`]); returns how many.
    pub(crate) fn peek(&self, out: &mut [[u8; RECORD_SIZE]]) -> usize {
        let ring = self.ring.lock();
        let n = out.len().min(ring.len);
        for (i, dst) in out.iter_mut().take(n).enumerate() {
            if let Some(src) = ring.slots.get(ring.index(i)) {
                *dst = *src;
            }
        }
        n
    }

    /// Sleeps until records are queued, or a signal arrives (`ERESTARTSYS`).
    pub(crate) fn wait_readable(&self) -> Result {
        let mut ring = self.ring.lock();
        while ring.len == 0 {
            if self.readable.wait_interruptible(&mut ring) {
                return Err(ERESTARTSYS);
            }
        }
        Ok(())
    }

    /// Removes the `n` oldest records after they were copied to userspace.
    pub(crate) fn commit(&self, n: usize) {
        let mut ring = self.ring.lock();
        let n = n.min(ring.len);
        ring.head = ring.index(n);
        ring.len -= n;
        ring.stats.delivered = ring.stats.delivered.wrapping_add(n as u64);
    }

    /// Whether a read would find records now.
    pub(crate) fn readable(&self) -> bool {
        self.ring.lock().len > 0
    }

    /// The wait queue `poll` registers on.
    pub(crate) fn poll_condvar(&self) -> &PollCondVar {
        &self.readable
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        let ring = self.ring.lock();
        let mut stats = ring.stats;
        stats.queued = ring.len as u32;
        stats.capacity = ring.slots.len() as u32;
        stats
    }
}

impl Ring {
    /// Position in `slots` of the record `offset` places after the oldest.
    fn index(&self, offset: usize) -> usize {
        // `slots` is never empty (`new` checks the capacity).
        (self.head + offset)
            .checked_rem(self.slots.len())
            .unwrap_or(0)
    }

    fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            pr_err!(
                "ring_records={} out of range 1..={}\n",
                capacity,
                MAX_CAPACITY
            );
            return Err(EINVAL);
        }
        let mut slots = KVVec::with_capacity(capacity, GFP_KERNEL)?;
        for _ in 0..capacity {
            slots.push([0u8; RECORD_SIZE], GFP_KERNEL)?;
        }
        Ok(Self {
            slots,
            head: 0,
            len: 0,
            next_sequence: 1,
            stats: Stats {
                abi_version: u32::from(ABI_VERSION),
                record_size: RECORD_SIZE as u32,
                ..Stats::default()
            },
        })
    }
}
