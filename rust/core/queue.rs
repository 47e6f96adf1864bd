// SPDX-License-Identifier: GPL-2.0

//! The event buffer's rules: ordering, coalescing, per-VM fairness and drop
//! reports. `core`-only, like `policy.rs`: the module wraps it in a spinlock
//! (`events.rs`), the host crates test it.
//!
//! - Records leave in the order they were queued; each queued record (an
//!   access or a drop report) gets the next sequence number, so queued
//!   records are a gap-free run of sequence numbers.
//! - An access identical to its VM's previous one (MSR, direction, value,
//!   Pc, status, reason) within [`COALESCE_WINDOW_NS`] of it, while that
//!   record is still queued and not being read, becomes a repeat count on
//!   it ([`RecordWire::repeat`]) instead of a new record.
//! - Fairness: a VM holding [`Queue::quota`] records or more may add one
//!   only while more than [`Queue::reserve`] slots are free; the reserve is
//!   kept for VMs under their quota. Beyond [`MAX_VMS`] VMs with records
//!   queued, the others share no quota and their drops are reported
//!   together, as a report of VM id 0. When a VM may not add a record, its
//!   newest event is dropped (the oldest evidence stays: an attacker cannot
//!   flood its first access out) and counted for that VM; a drop report
//!   ([`AccessStatus::Dropped`], `repeat` = events dropped) is queued for
//!   it as soon as it may add a record again, before its next event.
//! - The kernel log is rate limited per VM ([`LOG_BURST`] lines per
//!   [`LOG_INTERVAL_NS`]).
//!
//! Every operation is bounded (a probe of at most [`MAX_VMS`] VM slots):
//! safe in atomic context.

use core::ops::DerefMut;

use crate::record::{
    AccessStatus,
    GuestMode,
    Reason,
    Record,
    RecordWire,
    Stats,
    ABI_VERSION,
    COMM_LEN,
    IMAGE_NAME_LEN,
    RECORD_SIZE, //
};

/// VMs tracked at once for fairness and coalescing. Beyond that, a VM's
/// events are queued without a quota while the buffer has room.
pub const MAX_VMS: usize = 64;

/// Identical accesses closer than this to their record's first one are
/// coalesced into it.
pub const COALESCE_WINDOW_NS: u64 = 1_000_000_000;

/// How far behind a record's time a coarse clock may read: two ticks at
/// HZ=100, with room to spare (see [`Queue::push_repeat`]). A clock set back
/// further ends coalescing.
pub const COARSE_CLOCK_SLACK_NS: u64 = 50_000_000;

/// Kernel log lines per VM per [`LOG_INTERVAL_NS`].
pub const LOG_BURST: u32 = 10;

/// The per-VM log rate limit's interval.
pub const LOG_INTERVAL_NS: u64 = 5_000_000_000;

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued as a new record with this sequence number.
    Queued(u64),
    /// Coalesced into the queued record with this sequence number, whose
    /// repeat count is now the second value.
    Coalesced(u64, u64),
    /// Dropped: its VM was over its share, or the buffer full.
    Dropped,
}

/// The outcome of [`Queue::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// What became of the event.
    pub pushed: Pushed,
    /// Whether the VM's log rate limit allows a log line for it.
    pub log: bool,
}

/// What makes an event a repeat of its VM's previous one: the fields
/// [`Queue::push_repeat`] compares, all a hook knows before it gathers the
/// rest of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepeatKey {
    /// The VM ([`Record::vm_id`]).
    pub vm_id: u32,
    /// MSR index.
    pub msr: u32,
    /// WRMSR, else RDMSR.
    pub is_write: bool,
    /// The value written, or the value an audited read got.
    pub msr_value: u64,
    /// Guest RIP of the instruction.
    pub pc: u64,
    /// What became of the access.
    pub access_status: AccessStatus,
    /// Why the policy objected.
    pub reason: Reason,
}

impl RepeatKey {
    /// The key of an event as the C side hands it over (`status` and
    /// `reason` as their ABI bytes); None if either is not one.
    #[inline(always)]
    pub fn from_c(
        vm_id: u32,
        msr: u32,
        is_write: u8,
        msr_value: u64,
        pc: u64,
        status: u8,
        reason: u8,
    ) -> Option<Self> {
        Some(Self {
            vm_id,
            msr,
            is_write: is_write != 0,
            msr_value,
            pc,
            access_status: AccessStatus::from_u8(status)?,
            reason: Reason::from_u8(reason)?,
        })
    }

    /// The key of `record`'s event.
    pub fn of(record: &Record) -> Self {
        Self {
            vm_id: record.vm_id,
            msr: record.msr,
            is_write: record.is_write,
            msr_value: record.msr_value,
            pc: record.pc,
            access_status: record.access_status,
            reason: record.reason,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct VmSlot {
    /// The VM, when `used`.
    vm_id: u32,
    used: bool,
    /// Records of this VM queued.
    queued: usize,
    /// Events dropped and not yet reported.
    unreported_drops: u64,
    /// Sequence number of the record of the VM's previous event, the one
    /// an identical access coalesces into (0: none, or that event was
    /// dropped or reported).
    last_sequence: u64,
    /// The log rate limit's window start and lines in it.
    log_window_ns: u64,
    log_lines: u32,
}

impl VmSlot {
    fn idle(&self) -> bool {
        self.queued == 0 && self.unreported_drops == 0
    }
}

/// The buffer: `slots.len()` records, allocated by the owner.
pub struct Queue<S> {
    slots: S,
    /// Index of the oldest queued record.
    head: usize,
    /// Records queued.
    len: usize,
    /// Of those, drop reports (the stats count access records only).
    reports: usize,
    /// The oldest `reading` records are being copied out by a reader: they
    /// are not coalesced into.
    reading: usize,
    next_sequence: u64,
    stats: Stats,
    vms: [VmSlot; MAX_VMS],
    /// Log rate limit of the VMs without a slot.
    overflow_log: VmSlot,
}

impl<S: DerefMut<Target = [RecordWire]>> Queue<S> {
    /// A queue over `slots` (its length is the capacity; at least 1).
    pub fn new(slots: S) -> Self {
        let capacity = slots.len();
        let mut q = Self {
            slots,
            head: 0,
            len: 0,
            reports: 0,
            reading: 0,
            next_sequence: 1,
            stats: Stats {
                abi_version: u32::from(ABI_VERSION),
                record_size: RECORD_SIZE as u32,
                ..Stats::default()
            },
            vms: [VmSlot::default(); MAX_VMS],
            overflow_log: VmSlot::default(),
        };
        q.stats.capacity = capacity as u32;
        q.stats.vm_quota = Self::quota_for(capacity) as u32;
        q.stats.vm_reserve = Self::reserve_for(capacity) as u32;
        q
    }

    fn quota_for(capacity: usize) -> usize {
        (capacity / 16).max(1)
    }

    fn reserve_for(capacity: usize) -> usize {
        capacity / 4
    }

    /// Records a VM may hold before it must leave [`Self::reserve`] free.
    pub fn quota(&self) -> usize {
        self.stats.vm_quota as usize
    }

    /// Free records kept for VMs under their quota.
    pub fn reserve(&self) -> usize {
        self.stats.vm_reserve as usize
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, offset: usize) -> usize {
        // `slots` is never empty (`new`'s contract), so this never divides
        // by zero; `checked_rem` keeps it panic-free regardless.
        (self.head + offset)
            .checked_rem(self.capacity())
            .unwrap_or(0)
    }

    /// The VM slot of `vm_id`, taking a free or idle one if it has none.
    fn vm_slot(&mut self, vm_id: u32) -> Option<usize> {
        // Id 0 is no VM in particular (untracked VMs): no slot, no quota;
        // its drops are reported with the other slotless ones.
        if vm_id == 0 {
            return None;
        }
        let start = vm_id as usize % MAX_VMS;
        let mut reusable = None;
        for i in 0..MAX_VMS {
            let k = (start + i) % MAX_VMS;
            let v = &self.vms[k];
            if v.used && v.vm_id == vm_id {
                return Some(k);
            }
            if reusable.is_none() && (!v.used || v.idle()) {
                reusable = Some(k);
            }
        }
        let k = reusable?;
        self.vms[k] = VmSlot {
            vm_id,
            used: true,
            ..VmSlot::default()
        };
        Some(k)
    }

    /// Whether a VM with `queued` records may queue one more.
    fn may_queue(&self, queued: usize) -> bool {
        let free = self.capacity() - self.len;
        free > 0 && (queued < self.quota() || free > self.reserve())
    }

    fn append(&mut self, mut wire: RecordWire) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        wire.sequence = sequence;
        let i = self.index(self.len);
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = wire;
        }
        self.len += 1;
        sequence
    }

    /// The queued record with `sequence`, if it is queued and not being read.
    fn queued_mut(&mut self, sequence: u64) -> Option<&mut RecordWire> {
        let first = self.slots.get(self.head)?.sequence;
        let offset = usize::try_from(sequence.checked_sub(first)?).ok()?;
        if offset < self.reading || offset >= self.len {
            return None;
        }
        let i = self.index(offset);
        self.slots.get_mut(i)
    }

    fn drop_report(vm_id: u32, dropped: u64, timestamp_ns: u64) -> RecordWire {
        Record {
            sequence: 0,
            timestamp_ns,
            msr: 0,
            is_write: false,
            msr_value: 0,
            access_status: AccessStatus::Dropped,
            reason: Reason::OverQuota,
            pc: 0,
            image_base: 0,
            image_checksum: 0,
            image_timestamp: 0,
            image_name: [0; IMAGE_NAME_LEN],
            vmm_pid: 0,
            vmm_comm: [0; COMM_LEN],
            vcpu_id: 0,
            guest_cpl: 0,
            guest_mode: GuestMode::Unknown,
            flags: 0,
            repeat: dropped,
            vm_id,
            profile: 0,
        }
        .to_wire()
    }

    /// Queues the unreported drops of the VMs without a slot as one report
    /// of VM id 0, if there is room.
    fn report_overflow_drops(&mut self, timestamp_ns: u64) {
        let dropped = self.overflow_log.unreported_drops;
        if dropped == 0 || self.len >= self.capacity() {
            return;
        }
        self.append(Self::drop_report(0, dropped, timestamp_ns));
        self.reports += 1;
        self.overflow_log.unreported_drops = 0;
    }

    /// Queues the VM's unreported drops as a report, if it may queue.
    fn report_drops(&mut self, k: usize, timestamp_ns: u64) {
        let v = self.vms[k];
        if v.unreported_drops == 0 || !self.may_queue(v.queued) {
            return;
        }
        self.append(Self::drop_report(v.vm_id, v.unreported_drops, timestamp_ns));
        self.reports += 1;
        let v = &mut self.vms[k];
        v.queued += 1;
        v.unreported_drops = 0;
        // A report sits between the VM's last access and the next one.
        v.last_sequence = 0;
    }

    fn log_allowed(slot: &mut VmSlot, now_ns: u64) -> bool {
        if now_ns.wrapping_sub(slot.log_window_ns) >= LOG_INTERVAL_NS {
            slot.log_window_ns = now_ns;
            slot.log_lines = 0;
        }
        if slot.log_lines < LOG_BURST {
            slot.log_lines += 1;
            true
        } else {
            false
        }
    }

    /// Counts an event in `generated` and its status's counter.
    #[inline(always)]
    fn count_generated(&mut self, status: AccessStatus) {
        let stats = &mut self.stats;
        stats.generated = stats.generated.wrapping_add(1);
        match status {
            AccessStatus::BlockedGp => stats.blocked_gp = stats.blocked_gp.wrapping_add(1),
            AccessStatus::BlockedIgnored => {
                stats.blocked_ignored = stats.blocked_ignored.wrapping_add(1)
            }
            AccessStatus::AuditAllowed => stats.audit_allowed = stats.audit_allowed.wrapping_add(1),
            AccessStatus::Dropped => {}
        }
    }

    /// Adds the event `key` at `now_ns` to VM slot `k`'s previous record if
    /// it repeats it. Returns that record's sequence number and new repeat
    /// count. Counts only the coalescing, not the event.
    // Inlined: it is most of a repeat's cost, and a flood is all repeats.
    #[inline(always)]
    fn coalesce(&mut self, k: usize, key: &RepeatKey, now_ns: u64) -> Option<(u64, u64)> {
        let last = self.vms.get(k)?.last_sequence;
        if last == 0 {
            return None;
        }
        let prev = self.queued_mut(last)?;
        if !Self::repeats(prev, key, now_ns) {
            return None;
        }
        prev.repeat = prev.repeat.saturating_add(1);
        let repeat = prev.repeat;
        self.stats.coalesced = self.stats.coalesced.wrapping_add(1);
        Some((last, repeat))
    }

    /// Whether the event `key` at `now_ns` repeats the queued record `prev`.
    #[inline(always)]
    fn repeats(prev: &RecordWire, key: &RepeatKey, now_ns: u64) -> bool {
        prev.msr == key.msr
            && prev.is_write == u8::from(key.is_write)
            && prev.msr_value == key.msr_value
            && prev.pc == key.pc
            && prev.access_status == key.access_status as u8
            && prev.reason == key.reason as u8
            && Self::within_window(now_ns, prev.timestamp_ns)
    }

    /// Whether an event at `now_ns` is close enough to a record first seen
    /// at `first_ns` to be coalesced into it. A coarse `now_ns` may be up to
    /// a clock tick ([`COARSE_CLOCK_SLACK_NS`]) behind the record's precise
    /// time; a clock set back further ends the coalescing.
    fn within_window(now_ns: u64, first_ns: u64) -> bool {
        let age = now_ns.wrapping_sub(first_ns) as i64;
        age > -(COARSE_CLOCK_SLACK_NS as i64) && age < COALESCE_WINDOW_NS as i64
    }

    /// The VM slot of `vm_id`, if it has one.
    fn find_vm(&self, vm_id: u32) -> Option<usize> {
        // Id 0 never has a slot (see `vm_slot`).
        if vm_id == 0 {
            return None;
        }
        let start = vm_id as usize % MAX_VMS;
        (0..MAX_VMS)
            .map(|i| (start + i) % MAX_VMS)
            .find(|&k| self.vms[k].used && self.vms[k].vm_id == vm_id)
    }

    /// Counts the event `key` at `now_ns` as a repeat of its VM's previous
    /// record, if it is one (as [`Self::push`] would), without the rest of
    /// the record: the cheap first try for a flood. `now_ns` may come from
    /// a coarse clock. `None`: not a repeat, nothing counted; push the
    /// event's full record.
    pub fn push_repeat(&mut self, key: &RepeatKey, now_ns: u64) -> Option<(u64, u64)> {
        let k = self.find_vm(key.vm_id)?;
        let coalesced = self.coalesce(k, key, now_ns)?;
        self.count_generated(key.access_status);
        Some(coalesced)
    }

    /// The record the event `key` at `now_ns` would be coalesced into now
    /// (as [`Self::push_repeat`] would), a copy; nothing is counted. For a
    /// caller that shows a repeat in full: its fields that `key` leaves out
    /// (the image holding `pc`) are that record's.
    pub fn repeated_record(&mut self, key: &RepeatKey, now_ns: u64) -> Option<RecordWire> {
        let k = self.find_vm(key.vm_id)?;
        let last = self.vms.get(k)?.last_sequence;
        if last == 0 {
            return None;
        }
        let prev = self.queued_mut(last)?;
        Self::repeats(prev, key, now_ns).then_some(*prev)
    }

    /// Queues an event (its `sequence`, `repeat` are set here).
    pub fn push(&mut self, record: &Record) -> PushOutcome {
        self.count_generated(record.access_status);
        let now = record.timestamp_ns;

        let Some(k) = self.vm_slot(record.vm_id) else {
            // More VMs with queued records than slots: no quota, and their
            // drops are reported together (VM id 0), before their next
            // record.
            let log = Self::log_allowed(&mut self.overflow_log, now);
            self.report_overflow_drops(now);
            if self.overflow_log.unreported_drops == 0 && self.len < self.capacity() {
                let mut wire = record.to_wire();
                wire.repeat = 0;
                return PushOutcome {
                    pushed: Pushed::Queued(self.append(wire)),
                    log,
                };
            }
            let o = &mut self.overflow_log;
            o.unreported_drops = o.unreported_drops.saturating_add(1);
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            return PushOutcome {
                pushed: Pushed::Dropped,
                log,
            };
        };

        // Coalescing first: it costs no room.
        if let Some((sequence, repeat)) = self.coalesce(k, &RepeatKey::of(record), now) {
            return PushOutcome {
                pushed: Pushed::Coalesced(sequence, repeat),
                log: false,
            };
        }

        self.report_drops(k, now);
        let log = Self::log_allowed(&mut self.vms[k], now);
        if self.vms[k].unreported_drops != 0 || !self.may_queue(self.vms[k].queued) {
            let v = &mut self.vms[k];
            v.unreported_drops = v.unreported_drops.saturating_add(1);
            // The VM's previous event is now this lost one: a later access
            // identical to its last queued record is not a repeat of it.
            v.last_sequence = 0;
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            return PushOutcome {
                pushed: Pushed::Dropped,
                log,
            };
        }
        let mut wire = record.to_wire();
        wire.repeat = 0;
        let sequence = self.append(wire);
        let v = &mut self.vms[k];
        v.queued += 1;
        v.last_sequence = sequence;
        PushOutcome {
            pushed: Pushed::Queued(sequence),
            log,
        }
    }

    /// Copies up to `out.len()` of the oldest records into `out` and marks
    /// them as being read (not coalesced into) until [`Self::commit`] or
    /// [`Self::release`]. Returns how many.
    pub fn peek(&mut self, out: &mut [RecordWire]) -> usize {
        let n = out.len().min(self.len);
        for (i, dst) in out.iter_mut().take(n).enumerate() {
            if let Some(src) = self.slots.get(self.index(i)) {
                *dst = *src;
            }
        }
        self.reading = n;
        n
    }

    /// The reader could not copy what it peeked: the records stay queued.
    pub fn release(&mut self) {
        self.reading = 0;
    }

    /// Removes the `n` oldest records once they were copied out, then
    /// queues the drop reports the room allows. `now_ns` dates them.
    pub fn commit(&mut self, n: usize, now_ns: u64) {
        let n = n.min(self.len);
        for i in 0..n {
            let Some(&rec) = self.slots.get(self.index(i)) else {
                continue;
            };
            if rec.access_status != AccessStatus::Dropped as u8 {
                self.stats.delivered = self.stats.delivered.wrapping_add(1);
            } else {
                self.reports = self.reports.saturating_sub(1);
            }
            let start = rec.vm_id as usize % MAX_VMS;
            for j in 0..MAX_VMS {
                let v = &mut self.vms[(start + j) % MAX_VMS];
                if v.used && v.vm_id == rec.vm_id && v.queued > 0 {
                    v.queued -= 1;
                    if v.last_sequence == rec.sequence {
                        v.last_sequence = 0;
                    }
                    break;
                }
            }
        }
        self.head = self.index(n);
        self.len -= n;
        self.reading = 0;
        for k in 0..MAX_VMS {
            if self.vms[k].used {
                self.report_drops(k, now_ns);
            }
        }
        self.report_overflow_drops(now_ns);
    }

    /// Records queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A snapshot of the counters; `queued` counts access records, so that
    /// `generated = delivered + queued + coalesced + dropped` at any time.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.queued = self.len.saturating_sub(self.reports) as u32;
        s
    }
}
