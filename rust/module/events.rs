// SPDX-License-Identifier: GPL-2.0

//! The bounded event queue behind `/dev/msrguard`.
//!
//! Hooks append records in atomic context; readers take them in order. All
//! readers share the one queue: each record is delivered to exactly one
//! read(). Coalescing, per-VM fairness and drop reports are the rules of
//! [`Queue`] (`queue.rs`, tested on the host); this file puts them under a
//! spinlock and wakes readers.

use kernel::{
    new_poll_condvar,
    new_spinlock, //
    prelude::*,
    sync::{
        poll::PollCondVar,
        SpinLock, //
    },
};

use crate::{
    boundary::{
        AccessC,
        OutcomeC, //
    },
    queue::{
        PushOutcome,
        Pushed,
        Queue,
        RepeatKey, //
    },
    record::{
        AccessStatus,
        GuestMode,
        Reason,
        Record,
        RecordWire,
        Stats, //
    },
};

/// Largest accepted `ring_records` parameter.
pub(crate) const MAX_CAPACITY: usize = 1 << 16;

/// Events waiting for readers, and the wait queue readers sleep on.
#[pin_data]
pub(crate) struct EventQueue {
    #[pin]
    ring: SpinLock<Queue<KVVec<RecordWire>>>,
    #[pin]
    readable: PollCondVar,
}

impl EventQueue {
    /// A queue of `capacity` records, all allocated now: recording never
    /// allocates.
    pub(crate) fn new(capacity: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ring <- new_spinlock!(Queue::new(Self::slots(capacity)?), "msrguard_ring"),
            readable <- new_poll_condvar!("msrguard_readable"),
        })
    }

    fn slots(capacity: usize) -> Result<KVVec<RecordWire>> {
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
            slots.push(RecordWire::default(), GFP_KERNEL)?;
        }
        Ok(slots)
    }

    /// Counts an event as a repeat of its VM's previous record, if it is
    /// one ([`Queue::push_repeat`]). Safe in atomic context.
    pub(crate) fn record_repeat(&self, key: &RepeatKey, now_ns: u64) -> Option<(u64, u64)> {
        self.ring.lock().push_repeat(key, now_ns)
    }

    /// The queued record the event `key` repeats, if any
    /// ([`Queue::repeated_record`]). Safe in atomic context.
    pub(crate) fn repeated_record(&self, key: &RepeatKey, now_ns: u64) -> Option<RecordWire> {
        self.ring.lock().repeated_record(key, now_ns)
    }

    /// Queues an event (or coalesces or drops it, per [`Queue::push`]) and
    /// wakes readers if a record was queued. Safe in atomic context.
    pub(crate) fn record(&self, record: &Record) -> PushOutcome {
        let outcome = self.ring.lock().push(record);
        if matches!(outcome.pushed, Pushed::Queued(_)) {
            self.readable.notify_all();
        }
        outcome
    }

    /// If `access` repeats its VM's queued previous record (the record it will
    /// be coalesced into), copies that record's image fields into it and
    /// returns true: the same Pc, so the same image, known without a lookup.
    /// Counts nothing. For the path that shows every repeat in full (a trace
    /// event is enabled). Atomic context: bounded.
    pub(crate) fn repeat_image(&self, a: &mut AccessC) -> bool {
        let Some(prev) = RepeatKey::from_c(
            a.vm_id, a.msr, a.is_write, a.value, a.pc, a.status, a.reason,
        )
        .and_then(|key| self.repeated_record(&key, a.timestamp_ns)) else {
            return false;
        };
        a.image_base = prev.image_base;
        a.image_checksum = prev.image_checksum;
        a.image_timestamp = prev.image_timestamp;
        a.image_name = prev.image_name;
        true
    }

    /// Queues the event of `a` ([`Self::record`]) and returns what became of
    /// it, for its trace event and log line. Safe in atomic context.
    pub(crate) fn record_access(&self, a: &AccessC) -> OutcomeC {
        let mut out = OutcomeC::ZERO;
        let status = AccessStatus::from_u8(a.status);
        let reason = Reason::from_u8(a.reason);
        let (Some(status), Some(reason)) = (status, reason) else {
            return out;
        };

        let record = Record {
            sequence: 0,
            timestamp_ns: a.timestamp_ns,
            msr: a.msr,
            is_write: a.is_write != 0,
            msr_value: a.value,
            access_status: status,
            reason,
            pc: a.pc,
            image_base: a.image_base,
            image_checksum: a.image_checksum,
            image_timestamp: a.image_timestamp,
            image_name: a.image_name,
            vmm_pid: a.vmm_pid,
            vmm_comm: a.vmm_comm,
            vcpu_id: a.vcpu_id,
            guest_cpl: a.guest_cpl,
            guest_mode: GuestMode::from_u8(a.guest_mode).unwrap_or(GuestMode::Unknown),
            flags: a.flags,
            repeat: 0,
            vm_id: a.vm_id,
            profile: a.profile,
        };
        let pushed = self.record(&record);
        (out.sequence, out.repeat, out.queued) = match pushed.pushed {
            Pushed::Queued(sequence) => (sequence, 0, 1),
            Pushed::Coalesced(sequence, repeat) => (sequence, repeat, 0),
            Pushed::Dropped => (0, 0, 0),
        };
        out.log = u8::from(pushed.log);
        out
    }

    /// Copies up to `out.len()` of the oldest records into `out`; they stay
    /// queued until [`Self::commit`] or [`Self::release`]. Returns how many.
    pub(crate) fn peek(&self, out: &mut [RecordWire]) -> usize {
        self.ring.lock().peek(out)
    }

    /// Sleeps until records are queued, or a signal arrives (`ERESTARTSYS`).
    pub(crate) fn wait_readable(&self) -> Result {
        let mut ring = self.ring.lock();
        while ring.is_empty() {
            if self.readable.wait_interruptible(&mut ring) {
                return Err(ERESTARTSYS);
            }
        }
        Ok(())
    }

    /// Removes the `n` oldest records after they were copied to userspace;
    /// drop reports the freed room allows are queued.
    pub(crate) fn commit(&self, n: usize, now_ns: u64) {
        let mut ring = self.ring.lock();
        let before = ring.len();
        ring.commit(n, now_ns);
        let reported = ring.len() + n.min(before) > before;
        drop(ring);
        if reported {
            self.readable.notify_all();
        }
    }

    /// The records peeked could not be copied out: they stay queued.
    pub(crate) fn release(&self) {
        self.ring.lock().release();
    }

    /// Whether a read would find records now.
    pub(crate) fn readable(&self) -> bool {
        !self.ring.lock().is_empty()
    }

    /// The wait queue `poll` registers on.
    pub(crate) fn poll_condvar(&self) -> &PollCondVar {
        &self.readable
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        self.ring.lock().stats()
    }
}
