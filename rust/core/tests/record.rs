// SPDX-License-Identifier: GPL-2.0
//! The record layout: round trip, fixed offsets, and rejected inputs.

use msrguard_core::record::*;

fn sample() -> Record {
    let mut comm = [0u8; COMM_LEN];
    comm[..4].copy_from_slice(b"qemu");
    Record {
        sequence: 7,
        timestamp_ns: 1_764_000_000_123_456_789,
        msr: 0x79,
        is_write: true,
        msr_value: 0x1122_3344_5566_7788,
        access_status: AccessStatus::BlockedGp,
        reason: Reason::WriteDenied,
        pc: 0xffff_ffff_8100_1234,
        image_base: 0,
        image_checksum: 0,
        image_timestamp: 0,
        image_name: [0; IMAGE_NAME_LEN],
        vmm_pid: 4242,
        vmm_comm: comm,
        vcpu_id: 1,
        guest_cpl: 0,
        guest_mode: GuestMode::Long,
        flags: 0,
        repeat: 0,
        vm_id: 0x1234_5678,
        profile: 0,
    }
}

#[test]
fn round_trip() {
    let r = sample();
    assert_eq!(Record::from_bytes(&r.to_bytes()), Ok(r));
}

#[test]
fn fields_sit_at_documented_offsets() {
    let b = sample().to_bytes();
    assert_eq!(b.len(), RECORD_SIZE);
    assert_eq!(&b[0..2], &ABI_VERSION.to_le_bytes());
    assert_eq!(&b[2..4], &144u16.to_le_bytes());
    assert_eq!(&b[4..8], &0x79u32.to_le_bytes());
    assert_eq!(&b[8..16], &7u64.to_le_bytes());
    assert_eq!(&b[24..32], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(&b[32..40], &0xffff_ffff_8100_1234u64.to_le_bytes());
    assert_eq!(&b[56..60], &4242u32.to_le_bytes());
    assert_eq!(&b[60..64], &1u32.to_le_bytes());
    assert_eq!(b[64], 1);
    assert_eq!(b[65], AccessStatus::BlockedGp as u8);
    assert_eq!(b[67], GuestMode::Long as u8);
    assert_eq!(b[68], Reason::WriteDenied as u8);
    assert_eq!(&b[69..72], &[0, 0, 0]);
    assert_eq!(&b[72..76], b"qemu");
    assert_eq!(trim_nul(&b[72..88]), b"qemu");
    assert_eq!(&b[128..136], &0u64.to_le_bytes());
    assert_eq!(&b[136..140], &0x1234_5678u32.to_le_bytes());
}

/// A version 1 record (a saved file from an older module) is the first 128
/// bytes of version 2 with version 1 in its header.
#[test]
fn reads_version_1_records() {
    let r = sample();
    let mut v1 = r.to_bytes()[..RECORD_SIZE_V1].to_vec();
    v1[0..2].copy_from_slice(&1u16.to_le_bytes());
    v1[2..4].copy_from_slice(&(RECORD_SIZE_V1 as u16).to_le_bytes());
    assert_eq!(Record::size_of_next(&v1), Ok(RECORD_SIZE_V1));
    let got = Record::from_bytes(&v1).unwrap();
    assert_eq!(
        got,
        Record {
            repeat: 0,
            vm_id: 0,
            profile: 0,
            ..r
        }
    );
    // A version 1 header with a version 2 size is refused.
    v1[2..4].copy_from_slice(&(RECORD_SIZE as u16).to_le_bytes());
    assert_eq!(
        Record::from_bytes(&v1),
        Err(DecodeError::Size(RECORD_SIZE as u16))
    );
}

/// A version 2 record is version 3's layout with `profile` reserved (zero):
/// the default profile.
#[test]
fn reads_version_2_records_as_the_default_profile() {
    let r = Record {
        profile: 0,
        ..sample()
    };
    let mut v2 = r.to_bytes();
    v2[0..2].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(Record::from_bytes(&v2), Ok(r));
}

#[test]
fn the_profile_is_byte_70() {
    let b = Record {
        profile: 5,
        ..sample()
    }
    .to_bytes();
    assert_eq!((b[70], b[71]), (5, 0));
    assert_eq!(Record::from_bytes(&b).map(|r| r.profile), Ok(5));
}

#[test]
fn rejects_truncated_and_foreign_records() {
    let b = sample().to_bytes();
    assert_eq!(
        Record::from_bytes(&b[..100]),
        Err(DecodeError::Truncated(100))
    );
    let mut v = b;
    v[0] = 4;
    assert_eq!(Record::from_bytes(&v), Err(DecodeError::Version(4)));
    let mut s = b;
    s[2] = 64;
    assert_eq!(Record::from_bytes(&s), Err(DecodeError::Size(64)));
    let mut a = b;
    a[65] = 9;
    assert_eq!(
        Record::from_bytes(&a),
        Err(DecodeError::Field("access_status", 9))
    );
    let mut w = b;
    w[64] = 2;
    assert_eq!(
        Record::from_bytes(&w),
        Err(DecodeError::Field("is_write", 2))
    );
}

/// The ioctl structs' encoders put each field where the C header (built
/// from IOCTL_C_STRUCTS) says it is.
#[test]
fn ioctl_structs_match_their_c_layout() {
    use msrguard_core::record::{ProfileWire, VmInfoWire, IOCTL_C_STRUCTS};
    let field = |s: &str, f: &str| {
        let (_, _, fields) = IOCTL_C_STRUCTS.iter().find(|(n, _, _)| *n == s).unwrap();
        fields.iter().find(|x| x.1 == f).unwrap().3
    };
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(b"hardened");
    let p = ProfileWire {
        index: 0x0102_0304,
        pins: 7,
        name,
    }
    .to_bytes();
    assert_eq!(p[field("msrguard_profile", "index")], 4);
    assert_eq!(p[field("msrguard_profile", "pins")], 7);
    assert_eq!(p[field("msrguard_profile", "name")], b'h');
    let v = VmInfoWire {
        position: 1,
        vm_id: 2,
        vmm_pid: 3,
        profile: 4,
    }
    .to_bytes();
    assert_eq!(
        [
            v[field("msrguard_vm_info", "position")],
            v[field("msrguard_vm_info", "vm_id")],
            v[field("msrguard_vm_info", "vmm_pid")],
            v[field("msrguard_vm_info", "profile")]
        ],
        [1, 2, 3, 4]
    );
    assert_eq!(VmInfoWire::from_bytes(&v).profile, 4);
    assert_eq!(field("msrguard_set_profile", "profile"), 4);
}
