// SPDX-License-Identifier: GPL-2.0
//! The event buffer's rules (`rust/queue.rs`): accounting, fairness,
//! coalescing and drop reports, under random interleavings of two VMs and a
//! reader.

use msrguard_core::queue::*;
use msrguard_core::record::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn event(vm_id: u32, msr: u32, value: u64, t: u64) -> Record {
    Record {
        sequence: 0,
        timestamp_ns: t,
        msr,
        is_write: true,
        msr_value: value,
        access_status: AccessStatus::BlockedGp,
        reason: Reason::WriteDenied,
        pc: 0x1000,
        image_base: 0,
        image_checksum: 0,
        image_timestamp: 0,
        image_name: [0; IMAGE_NAME_LEN],
        vmm_pid: 1,
        vmm_comm: [0; COMM_LEN],
        vcpu_id: 0,
        guest_cpl: 0,
        guest_mode: GuestMode::Long,
        flags: 0,
        repeat: 0,
        vm_id,
        profile: 0,
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// VM index, distinct (else identical to its previous), time step.
    Event(usize, bool, u64),
    /// Read up to n records.
    Read(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            8 => (0usize..2, any::<bool>(), 0u64..400_000_000).prop_map(|(v, d, t)| Op::Event(v, d, t)),
            1 => (1usize..20).prop_map(Op::Read),
        ],
        0..400,
    )
}

/// Per VM: events generated, and what the reader saw of them.
#[derive(Default, Debug)]
struct Tally {
    generated: u64,
    records: u64,
    repeats: u64,
    reported_drops: u64,
}

/// The VMs of the ops.
const VMS: [u32; 2] = [0xaaaa_0001, 0xbbbb_0002];

/// What the ops do, in order, with the time each happens at.
enum Step {
    /// VM index and its event.
    Event(usize, Record),
    /// A read of up to n records.
    Read(usize, u64),
}

/// The ops as steps: time advances, and each distinct event gets a new value.
fn steps(ops: Vec<Op>) -> Vec<Step> {
    let (mut now, mut counter) = (1u64, 0u64);
    ops.into_iter()
        .map(|op| match op {
            Op::Event(v, distinct, dt) => {
                now += dt;
                counter += u64::from(distinct);
                Step::Event(v, event(VMS[v], 0x79, counter, now))
            }
            Op::Read(n) => Step::Read(n, now),
        })
        .collect()
}

/// The proptests' configuration: regressions next to this file, where they
/// are committed (the default would look for them relative to a source
/// root it guesses).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/queue.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn drain(q: &mut Queue<Vec<RecordWire>>, seen: &mut Vec<RecordWire>, n: usize, now: u64) {
    let mut out = vec![RecordWire::default(); n];
    let k = q.peek(&mut out);
    seen.extend_from_slice(&out[..k]);
    q.commit(k, now);
}

proptest! {
    #![proptest_config(config())]
    /// Every event is delivered, coalesced into a delivered record, or
    /// reported dropped, per VM; sequences are gap-free; a VM that never
    /// exceeds its quota loses nothing.
    #[test]
    fn every_event_is_accounted_for(ops in ops(), capacity in 1usize..48) {
        let mut q = Queue::new(vec![RecordWire::default(); capacity]);
        let mut tally = [Tally::default(), Tally::default()];
        let mut seen = Vec::new();
        let mut now = 1u64;
        for step in steps(ops) {
            match step {
                Step::Event(v, e) => {
                    now = e.timestamp_ns;
                    tally[v].generated += 1;
                    q.push(&e);
                }
                Step::Read(n, t) => drain(&mut q, &mut seen, n, t),
            }
            // The identity holds at every moment, drop reports queued or not.
            let s = q.stats();
            prop_assert_eq!(
                s.generated,
                s.delivered + u64::from(s.queued) + s.coalesced + s.dropped,
                "{:?}",
                s
            );
        }
        // Drain everything, drop reports included.
        for _ in 0..capacity * 4 + 8 {
            drain(&mut q, &mut seen, capacity, now);
        }
        prop_assert!(q.is_empty());
        for (i, r) in seen.iter().enumerate() {
            prop_assert_eq!(r.sequence, i as u64 + 1, "sequences are gap-free in delivery order");
            let v = VMS.iter().position(|&id| id == r.vm_id).unwrap();
            if r.access_status == AccessStatus::Dropped as u8 {
                tally[v].reported_drops += r.repeat;
            } else {
                tally[v].records += 1;
                tally[v].repeats += r.repeat;
            }
        }
        let s = q.stats();
        let mut dropped = 0;
        for t in &tally {
            prop_assert_eq!(t.generated, t.records + t.repeats + t.reported_drops, "{:?}", t);
            dropped += t.reported_drops;
        }
        prop_assert_eq!(s.generated, s.delivered + s.coalesced + s.dropped);
        prop_assert_eq!(s.dropped, dropped);
    }
}

proptest! {
    #![proptest_config(config())]
    /// The hooks' first try for a repeat (`push_repeat`, then `push` if it
    /// was none) leaves the queue exactly as `push` alone: same records,
    /// same stats, same outcomes; `repeated_record` changes nothing and
    /// names the record the event is coalesced into. (With a coarse clock behind the precise
    /// one, the window ends that much later: `repeat_window_with_a_coarse_clock`.)
    #[test]
    fn the_repeat_fast_path_changes_nothing(ops in ops(), capacity in 1usize..48) {
        let mut plain = Queue::new(vec![RecordWire::default(); capacity]);
        let mut fast = Queue::new(vec![RecordWire::default(); capacity]);
        let (mut seen_plain, mut seen_fast) = (Vec::new(), Vec::new());
        for step in steps(ops) {
            match step {
                Step::Event(_, e) => {
                    let expected = plain.push(&e);
                    // The trace path's look at the record a repeat joins
                    // counts nothing and names the record push coalesces
                    // into, if any.
                    let before = format!("{:?}", fast.stats());
                    let joins = fast.repeated_record(&RepeatKey::of(&e), e.timestamp_ns);
                    prop_assert_eq!(format!("{:?}", fast.stats()), before);
                    let joins = joins.map(|r| r.sequence);
                    let got = match fast.push_repeat(&RepeatKey::of(&e), e.timestamp_ns) {
                        Some((sequence, repeat)) => PushOutcome {
                            pushed: Pushed::Coalesced(sequence, repeat),
                            log: false,
                        },
                        None => fast.push(&e),
                    };
                    prop_assert_eq!(got, expected);
                    let coalesced_into = match got.pushed {
                        Pushed::Coalesced(sequence, _) => Some(sequence),
                        _ => None,
                    };
                    prop_assert_eq!(joins, coalesced_into);
                }
                Step::Read(n, now) => {
                    drain(&mut plain, &mut seen_plain, n, now);
                    drain(&mut fast, &mut seen_fast, n, now);
                }
            }
            prop_assert_eq!(format!("{:?}", fast.stats()), format!("{:?}", plain.stats()));
        }
        prop_assert_eq!(seen_fast, seen_plain);
    }
}

/// The fast path's coarse clock may read a tick behind the record's time:
/// still a repeat. A clock set back further, or a repeat after the window,
/// is not.
#[test]
fn repeat_window_with_a_coarse_clock() {
    let mut q = Queue::new(vec![RecordWire::default(); 16]);
    let t = 5_000_000_000;
    q.push(&event(7, 0x79, 1, t));
    let key = RepeatKey::of(&event(7, 0x79, 1, t));
    assert_eq!(
        q.push_repeat(&key, t - 4_000_000),
        Some((1, 1)),
        "a tick behind"
    );
    assert_eq!(
        q.push_repeat(&key, t + COALESCE_WINDOW_NS - 1),
        Some((1, 2))
    );
    assert_eq!(
        q.push_repeat(&key, t - COARSE_CLOCK_SLACK_NS),
        None,
        "clock set back"
    );
    assert_eq!(
        q.push_repeat(&key, t + COALESCE_WINDOW_NS),
        None,
        "after the window"
    );
    let other = RepeatKey {
        msr_value: 2,
        ..key
    };
    assert_eq!(q.push_repeat(&other, t), None, "another value");
    assert_eq!(
        q.push_repeat(&RepeatKey { vm_id: 8, ..key }, t),
        None,
        "another VM"
    );
    let s = q.stats();
    assert_eq!((s.generated, s.coalesced, s.queued), (3, 2, 1), "{s:?}");
}

/// One VM floods with no reader while another does a few accesses: the
/// quiet VM's events all get in, the flooder's newest are dropped and
/// reported, and the flooder's first access is kept.
#[test]
fn a_flood_cannot_crowd_out_a_quiet_vm() {
    let capacity = 1024;
    let mut q = Queue::new(vec![RecordWire::default(); capacity]);
    let (flooder, quiet) = (1u32, 2u32);
    for i in 0..100_000u64 {
        q.push(&event(flooder, 0x79, i, 1 + i));
        if i % 10_000 == 0 {
            let p = q.push(&event(quiet, 0x79, 1_000_000 + i, 1 + i));
            assert!(
                matches!(p.pushed, Pushed::Queued(_)),
                "quiet VM's event {i}: {p:?}"
            );
        }
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        drain(&mut q, &mut seen, capacity, 200_000);
    }
    let quiet_records = seen.iter().filter(|r| r.vm_id == quiet).count();
    assert_eq!(quiet_records, 10);
    let first = seen.iter().find(|r| r.vm_id == flooder).unwrap();
    assert_eq!(first.msr_value, 0, "the flooder's first access is kept");
    let flooder_kept = seen
        .iter()
        .filter(|r| r.vm_id == flooder && r.access_status != AccessStatus::Dropped as u8)
        .count();
    let reported: u64 = seen
        .iter()
        .filter(|r| r.access_status == AccessStatus::Dropped as u8)
        .map(|r| {
            assert_eq!(r.vm_id, flooder);
            r.repeat
        })
        .sum();
    assert_eq!(flooder_kept as u64 + reported, 100_000);
    // The quiet VM's first record was queued before the flood reached the
    // reserve; the flooder stops there.
    assert_eq!(
        flooder_kept,
        capacity - q.reserve() - 1,
        "the flooder stops at the reserve"
    );
}

/// Identical accesses coalesce into one record while it is queued, within
/// the window; one being read is never changed.
#[test]
fn identical_accesses_coalesce() {
    let mut q = Queue::new(vec![RecordWire::default(); 8]);
    let p1 = q.push(&event(1, 0x79, 5, 10));
    let p2 = q.push(&event(1, 0x79, 5, 20));
    assert_eq!(p1.pushed, Pushed::Queued(1));
    assert_eq!(p2.pushed, Pushed::Coalesced(1, 1));
    assert!(!p2.log, "a repeat does not log");
    // Outside the window: a new record.
    let p3 = q.push(&event(1, 0x79, 5, 10 + COALESCE_WINDOW_NS));
    assert_eq!(p3.pushed, Pushed::Queued(2));
    // A record being read is not coalesced into.
    let mut out = [RecordWire::default(); 8];
    assert_eq!(q.peek(&mut out), 2);
    let p4 = q.push(&event(1, 0x79, 5, 11 + COALESCE_WINDOW_NS));
    assert_eq!(p4.pushed, Pushed::Queued(3));
    q.commit(2, 0);
    assert_eq!(q.stats().coalesced, 1);
}

/// The log is rate limited per VM: a flooder does not silence another VM.
#[test]
fn log_rate_limit_is_per_vm() {
    let mut q = Queue::new(vec![RecordWire::default(); 4096]);
    let logged = (0..100u64)
        .filter(|&i| q.push(&event(1, 0x79, i, 1 + i)).log)
        .count();
    assert_eq!(logged as u32, LOG_BURST);
    assert!(q.push(&event(2, 0x79, 0, 200)).log);
}

/// An access is coalesced only into the record of its VM's previous event:
/// once an event was dropped in between, an access identical to the last
/// queued record is a new event after a gap, not a repeat of it (else the
/// stream reads "A twice, then one dropped" for A, B, A).
#[test]
fn no_coalescing_across_a_drop() {
    let capacity = 16;
    let mut q = Queue::new(vec![RecordWire::default(); capacity]);
    // Distinct values until the VM is held at the reserve.
    let mut last = 0;
    for i in 0.. {
        if q.push(&event(1, 0x79, i, 1 + i)).pushed == Pushed::Dropped {
            break;
        }
        last = i;
    }
    assert_eq!(q.len(), capacity - q.reserve());
    // The same as the last queued record, after the dropped one.
    let p = q.push(&event(1, 0x79, last, 100));
    assert_eq!(
        p.pushed,
        Pushed::Dropped,
        "coalesced across a dropped event"
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        drain(&mut q, &mut seen, capacity, 200);
    }
    let records = seen
        .iter()
        .filter(|r| r.access_status != AccessStatus::Dropped as u8)
        .count();
    let reported: u64 = seen
        .iter()
        .filter(|r| r.access_status == AccessStatus::Dropped as u8)
        .map(|r| r.repeat)
        .sum();
    assert_eq!(records, capacity - q.reserve());
    assert!(seen
        .iter()
        .all(|r| r.repeat == 0 || r.access_status == AccessStatus::Dropped as u8));
    assert_eq!(reported, 2);
}

/// The stats identity holds while a drop report is queued: `queued` counts
/// access records only, as `generated` does.
#[test]
fn stats_identity_with_a_queued_drop_report() {
    let capacity = 16;
    let mut q = Queue::new(vec![RecordWire::default(); capacity]);
    for i in 0..20u64 {
        q.push(&event(1, 0x79, i, 1 + i));
    }
    let mut seen = Vec::new();
    // Reading one record makes room: the drop report is queued.
    drain(&mut q, &mut seen, 1, 100);
    let s = q.stats();
    assert_eq!(s.dropped, 20 - (capacity - q.reserve()) as u64);
    assert_eq!(
        q.len(),
        capacity - q.reserve() - 1 + 1,
        "the report is queued"
    );
    assert_eq!(
        s.generated,
        s.delivered + u64::from(s.queued) + s.coalesced + s.dropped,
        "{s:?}"
    );
}

/// VMs beyond the queue's slots (more than MAX_VMS with records queued)
/// share no quota; what they lose is still reported, by a drop report of
/// VM id 0, before their next record.
#[test]
fn drops_of_vms_without_a_slot_are_reported() {
    let capacity = MAX_VMS + 8;
    let mut q = Queue::new(vec![RecordWire::default(); capacity]);
    for vm in 1..=MAX_VMS as u32 {
        assert!(matches!(
            q.push(&event(vm, 0x79, 0, 1)).pushed,
            Pushed::Queued(_)
        ));
    }
    // Slotless VMs fill the rest, then lose 5 events.
    let mut kept = 0;
    for i in 0..13u64 {
        match q.push(&event(1000 + i as u32, 0x79, i, 2)).pushed {
            Pushed::Queued(_) => kept += 1,
            Pushed::Dropped => {}
            p => panic!("{p:?}"),
        }
    }
    assert_eq!(kept, 8);
    let mut seen = Vec::new();
    drain(&mut q, &mut seen, MAX_VMS, 3);
    // Room again: the report comes before the slotless VMs' next record.
    assert!(matches!(
        q.push(&event(2000, 0x79, 0, 4)).pushed,
        Pushed::Queued(_)
    ));
    drain(&mut q, &mut seen, capacity, 5);
    let reports: Vec<_> = seen
        .iter()
        .filter(|r| r.access_status == AccessStatus::Dropped as u8)
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!((reports[0].vm_id, reports[0].repeat), (0, 5));
    let last = seen.last().unwrap();
    assert_eq!(
        last.vm_id, 2000,
        "the report is queued before the next record"
    );
    // Every event is a record or a reported drop.
    let records = seen
        .iter()
        .filter(|r| r.access_status != AccessStatus::Dropped as u8)
        .count();
    assert_eq!(records as u64 + reports[0].repeat, MAX_VMS as u64 + 13 + 1);
}
