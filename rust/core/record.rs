// SPDX-License-Identifier: GPL-2.0

//! The event record: the one definition of what `/dev/msrguard` returns.
//!
//! This file is `core`-only and is compiled into both the kernel module and
//! the host crates (crate `msrguard-core`), so the module, the tool and the
//! tests cannot disagree about the layout. The layout is documented in
//! `Documentation/msrguard/abi.rst`; every change bumps [`ABI_VERSION`].
//!
//! A record is [`RECORD_SIZE`] bytes, little-endian, fields at fixed offsets
//! ([`RecordWire`], whose offsets are asserted against this table):
//!
//! | offset | size | field             |
//! |-------:|-----:|-------------------|
//! |      0 |    2 | abi_version       |
//! |      2 |    2 | record_size       |
//! |      4 |    4 | msr               |
//! |      8 |    8 | sequence          |
//! |     16 |    8 | timestamp_ns      |
//! |     24 |    8 | msr_value         |
//! |     32 |    8 | pc                |
//! |     40 |    8 | image_base        |
//! |     48 |    4 | image_checksum    |
//! |     52 |    4 | image_timestamp   |
//! |     56 |    4 | vmm_pid           |
//! |     60 |    4 | vcpu_id           |
//! |     64 |    1 | is_write          |
//! |     65 |    1 | access_status     |
//! |     66 |    1 | guest_cpl         |
//! |     67 |    1 | guest_mode        |
//! |     68 |    1 | reason            |
//! |     69 |    1 | flags (v2)        |
//! |     70 |    1 | profile (v3)      |
//! |     71 |    1 | reserved (zero)   |
//! |     72 |   16 | vmm_comm          |
//! |     88 |   40 | image_name        |
//! |    128 |    8 | repeat (v2)       |
//! |    136 |    4 | vm_id (v2)        |
//! |    140 |    4 | reserved (zero)   |
//!
//! Version 1 records are the first 128 bytes of this layout (`flags` was
//! reserved, zero); version 2 had `profile` reserved (zero: `default`) and
//! no pinned or set-only reasons; the tool reads all three.

/// Version of the record layout and of the ioctl ABI.
pub const ABI_VERSION: u16 = 3;

/// Version 2: the layout of version 3 without `profile` (zero).
pub const ABI_VERSION_V2: u16 = 2;

/// Size in bytes of one record.
pub const RECORD_SIZE: usize = 144;

/// Size in bytes of a version 1 record (saved files the tool still reads).
pub const RECORD_SIZE_V1: usize = 128;

/// `flags`: the access came from a nested guest (L2), decided by L0.
pub const FLAG_NESTED: u8 = 1 << 0;

/// `flags`: the guest's state is protected (SEV-ES, SNP, TDX): `pc` is 0
/// and `guest_mode` unknown.
pub const FLAG_STATE_PROTECTED: u8 = 1 << 1;

/// `flags`: KVM made the access for the guest outside the vCPU's run
/// (`KVM_RUN` on its thread): while the VMM changed the vCPU's state
/// (`KVM_SET_MSRS` of FEATURE_CONTROL, `KVM_SET_NESTED_STATE`,
/// `KVM_SET_VCPU_EVENTS`) or destroyed the VM, loading L1's VM-exit MSR
/// list. `pc` is the vCPU's last RIP; the image fields stay empty.
pub const FLAG_OUTSIDE_RUN: u8 = 1 << 2;

/// Byte offsets of the record's fields (see the table above).
pub mod offset {
    /// Offset of `abi_version` (2 bytes).
    pub const ABI_VERSION: usize = 0;
    /// Offset of `record_size` (2 bytes).
    pub const RECORD_SIZE: usize = 2;
    /// Offset of `msr` (4 bytes).
    pub const MSR: usize = 4;
    /// Offset of `sequence` (8 bytes).
    pub const SEQUENCE: usize = 8;
    /// Offset of `timestamp_ns` (8 bytes).
    pub const TIMESTAMP_NS: usize = 16;
    /// Offset of `msr_value` (8 bytes).
    pub const MSR_VALUE: usize = 24;
    /// Offset of `pc` (8 bytes).
    pub const PC: usize = 32;
    /// Offset of `image_base` (8 bytes).
    pub const IMAGE_BASE: usize = 40;
    /// Offset of `image_checksum` (4 bytes).
    pub const IMAGE_CHECKSUM: usize = 48;
    /// Offset of `image_timestamp` (4 bytes).
    pub const IMAGE_TIMESTAMP: usize = 52;
    /// Offset of `vmm_pid` (4 bytes).
    pub const VMM_PID: usize = 56;
    /// Offset of `vcpu_id` (4 bytes).
    pub const VCPU_ID: usize = 60;
    /// Offset of `is_write` (1 bytes).
    pub const IS_WRITE: usize = 64;
    /// Offset of `access_status` (1 bytes).
    pub const ACCESS_STATUS: usize = 65;
    /// Offset of `guest_cpl` (1 bytes).
    pub const GUEST_CPL: usize = 66;
    /// Offset of `guest_mode` (1 bytes).
    pub const GUEST_MODE: usize = 67;
    /// Offset of `reason` (1 bytes).
    pub const REASON: usize = 68;
    /// Offset of `flags` (1 byte, version 2).
    pub const FLAGS: usize = 69;
    /// Offset of `profile` (1 byte, version 3).
    pub const PROFILE: usize = 70;
    /// Offset of `vmm_comm` (16 bytes).
    pub const VMM_COMM: usize = 72;
    /// Offset of `image_name` (40 bytes).
    pub const IMAGE_NAME: usize = 88;
    /// Offset of `repeat` (8 bytes, version 2).
    pub const REPEAT: usize = 128;
    /// Offset of `vm_id` (4 bytes, version 2).
    pub const VM_ID: usize = 136;
}

/// Length of the `vmm_comm` field (the kernel's `TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Length of the `image_name` field.
pub const IMAGE_NAME_LEN: usize = 40;

/// What happened to the access (Windows' `AccessStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessStatus {
    /// Vetoed: KVM's failure path ran (user-space exit or #GP in the guest).
    BlockedGp = 1,
    /// Vetoed silently: a read returned 0, a write was dropped.
    BlockedIgnored = 2,
    /// Audit mode: the policy would have vetoed it, but it was allowed.
    AuditAllowed = 3,
    /// Not an access: `repeat` events of VM `vm_id` were dropped because
    /// that VM was over its share of the buffer; with `vm_id` 0, events of
    /// the VMs without a share (beyond the buffer's per-VM accounting),
    /// dropped because the buffer was full (version 2).
    Dropped = 4,
}

impl AccessStatus {
    /// Every status, in wire order.
    pub const ALL: [Self; 4] = [
        Self::BlockedGp,
        Self::BlockedIgnored,
        Self::AuditAllowed,
        Self::Dropped,
    ];
}

impl AccessStatus {
    /// Decodes the on-wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::BlockedGp),
            2 => Some(Self::BlockedIgnored),
            3 => Some(Self::AuditAllowed),
            4 => Some(Self::Dropped),
            _ => None,
        }
    }

    /// Stable name used in the kernel log, trace events and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BlockedGp => "blocked-gp",
            Self::BlockedIgnored => "blocked-ignored",
            Self::AuditAllowed => "audit-allowed",
            Self::Dropped => "dropped",
        }
    }
}

/// Why the policy objected to the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// The MSR is not in the policy table.
    Unknown = 1,
    /// The entry's read action is not `allow`.
    ReadDenied = 2,
    /// The entry has no write mask and its write action is not `allow`.
    WriteDenied = 3,
    /// The write sets bits outside the entry's write mask.
    WriteMask = 4,
    /// A drop report: the VM was over its share of the buffer (version 2).
    OverQuota = 5,
    /// The write changes an MSR the VM's profile pinned on this vCPU
    /// (version 3).
    Pinned = 6,
    /// The write clears a bit the VM's profile makes set-only, which this
    /// vCPU had set (version 3).
    SetOnly = 7,
}

impl Reason {
    /// Every reason, in wire order.
    pub const ALL: [Self; 7] = [
        Self::Unknown,
        Self::ReadDenied,
        Self::WriteDenied,
        Self::WriteMask,
        Self::OverQuota,
        Self::Pinned,
        Self::SetOnly,
    ];
}

impl Reason {
    /// Decodes the on-wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Unknown),
            2 => Some(Self::ReadDenied),
            3 => Some(Self::WriteDenied),
            4 => Some(Self::WriteMask),
            5 => Some(Self::OverQuota),
            6 => Some(Self::Pinned),
            7 => Some(Self::SetOnly),
            _ => None,
        }
    }

    /// Stable name used in the kernel log, trace events and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown-msr",
            Self::ReadDenied => "read-denied",
            Self::WriteDenied => "write-denied",
            Self::WriteMask => "write-mask",
            Self::OverQuota => "over-vm-quota",
            Self::Pinned => "pinned",
            Self::SetOnly => "set-only",
        }
    }
}

/// The guest's execution mode at the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GuestMode {
    /// Not known: protected guest state, or a drop report (version 2).
    Unknown = 0,
    /// Real mode (CR0.PE clear).
    Real = 1,
    /// Virtual-8086 mode.
    Vm86 = 2,
    /// Protected mode, 16 or 32-bit code.
    Protected = 3,
    /// 64-bit long mode.
    Long = 4,
}

impl GuestMode {
    /// Every mode, in wire order.
    pub const ALL: [Self; 5] = [
        Self::Unknown,
        Self::Real,
        Self::Vm86,
        Self::Protected,
        Self::Long,
    ];
}

impl GuestMode {
    /// Decodes the on-wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Unknown),
            1 => Some(Self::Real),
            2 => Some(Self::Vm86),
            3 => Some(Self::Protected),
            4 => Some(Self::Long),
            _ => None,
        }
    }

    /// Stable name used in the kernel log, trace events and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Real => "real",
            Self::Vm86 => "vm86",
            Self::Protected => "protected",
            Self::Long => "long",
        }
    }
}

/// One event: a vetoed access, or one audit mode let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Per-module-load sequence number, from 1, without gaps at generation.
    pub sequence: u64,
    /// `CLOCK_REALTIME` at the access, in nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// MSR index (ECX of the instruction).
    pub msr: u32,
    /// True for WRMSR.
    pub is_write: bool,
    /// The value written, or the value the read returned to the guest.
    pub msr_value: u64,
    /// What happened to the access.
    pub access_status: AccessStatus,
    /// Why the policy objected.
    pub reason: Reason,
    /// Guest RIP of the instruction.
    pub pc: u64,
    /// Guest virtual address of the PE image containing `pc` (0: none found;
    /// see `rust/pe.rs`).
    pub image_base: u64,
    /// That image's `OptionalHeader.CheckSum` (0: none found).
    pub image_checksum: u32,
    /// That image's `FileHeader.TimeDateStamp` (0: none found).
    pub image_timestamp: u32,
    /// That image's export name, else its PDB file name, NUL-padded (empty:
    /// none found or no name).
    pub image_name: [u8; IMAGE_NAME_LEN],
    /// Thread group id of the VMM process running the vCPU.
    pub vmm_pid: u32,
    /// `comm` of the vCPU thread, NUL-padded.
    pub vmm_comm: [u8; COMM_LEN],
    /// KVM's vCPU id.
    pub vcpu_id: u32,
    /// Guest CPL at the access.
    pub guest_cpl: u8,
    /// Guest execution mode at the access.
    pub guest_mode: GuestMode,
    /// [`FLAG_NESTED`], [`FLAG_STATE_PROTECTED`], [`FLAG_OUTSIDE_RUN`]
    /// (version 2).
    pub flags: u8,
    /// Identical accesses coalesced into this record after the first; for
    /// a [`AccessStatus::Dropped`] report, the events dropped (version 2).
    pub repeat: u64,
    /// The VM's identifier, stable while the VM exists (version 2).
    pub vm_id: u32,
    /// The VM's profile, an index into the module's profiles (0:
    /// `default`; version 3).
    pub profile: u8,
}

/// The record as it is stored and copied to userspace: the layout of the
/// table above, asserted field by field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordWire {
    /// [`ABI_VERSION`].
    pub abi_version: u16,
    /// [`RECORD_SIZE`].
    pub record_size: u16,
    /// MSR index.
    pub msr: u32,
    /// Sequence number.
    pub sequence: u64,
    /// `CLOCK_REALTIME` ns.
    pub timestamp_ns: u64,
    /// Value written or read.
    pub msr_value: u64,
    /// Guest RIP.
    pub pc: u64,
    /// Image base.
    pub image_base: u64,
    /// Image checksum.
    pub image_checksum: u32,
    /// Image timestamp.
    pub image_timestamp: u32,
    /// VMM thread group id.
    pub vmm_pid: u32,
    /// vCPU id.
    pub vcpu_id: u32,
    /// 1 for WRMSR.
    pub is_write: u8,
    /// [`AccessStatus`].
    pub access_status: u8,
    /// Guest CPL.
    pub guest_cpl: u8,
    /// [`GuestMode`].
    pub guest_mode: u8,
    /// [`Reason`].
    pub reason: u8,
    /// `FLAG_*`.
    pub flags: u8,
    /// The VM's profile.
    pub profile: u8,
    /// Zero.
    pub reserved: u8,
    /// VMM thread's comm, NUL-padded.
    pub vmm_comm: [u8; COMM_LEN],
    /// Image name, NUL-padded.
    pub image_name: [u8; IMAGE_NAME_LEN],
    /// Coalesced repeats, or events dropped.
    pub repeat: u64,
    /// VM identifier.
    pub vm_id: u32,
    /// Zero.
    pub reserved2: u32,
}

impl Default for RecordWire {
    fn default() -> Self {
        Self {
            abi_version: 0,
            record_size: 0,
            msr: 0,
            sequence: 0,
            timestamp_ns: 0,
            msr_value: 0,
            pc: 0,
            image_base: 0,
            image_checksum: 0,
            image_timestamp: 0,
            vmm_pid: 0,
            vcpu_id: 0,
            is_write: 0,
            access_status: 0,
            guest_cpl: 0,
            guest_mode: 0,
            reason: 0,
            flags: 0,
            profile: 0,
            reserved: 0,
            vmm_comm: [0; COMM_LEN],
            image_name: [0; IMAGE_NAME_LEN],
            repeat: 0,
            vm_id: 0,
            reserved2: 0,
        }
    }
}

// The struct is the table: same size, same offsets, no padding.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<RecordWire>() == RECORD_SIZE);
    assert!(offset_of!(RecordWire, abi_version) == offset::ABI_VERSION);
    assert!(offset_of!(RecordWire, record_size) == offset::RECORD_SIZE);
    assert!(offset_of!(RecordWire, msr) == offset::MSR);
    assert!(offset_of!(RecordWire, sequence) == offset::SEQUENCE);
    assert!(offset_of!(RecordWire, timestamp_ns) == offset::TIMESTAMP_NS);
    assert!(offset_of!(RecordWire, msr_value) == offset::MSR_VALUE);
    assert!(offset_of!(RecordWire, pc) == offset::PC);
    assert!(offset_of!(RecordWire, image_base) == offset::IMAGE_BASE);
    assert!(offset_of!(RecordWire, image_checksum) == offset::IMAGE_CHECKSUM);
    assert!(offset_of!(RecordWire, image_timestamp) == offset::IMAGE_TIMESTAMP);
    assert!(offset_of!(RecordWire, vmm_pid) == offset::VMM_PID);
    assert!(offset_of!(RecordWire, vcpu_id) == offset::VCPU_ID);
    assert!(offset_of!(RecordWire, is_write) == offset::IS_WRITE);
    assert!(offset_of!(RecordWire, access_status) == offset::ACCESS_STATUS);
    assert!(offset_of!(RecordWire, guest_cpl) == offset::GUEST_CPL);
    assert!(offset_of!(RecordWire, guest_mode) == offset::GUEST_MODE);
    assert!(offset_of!(RecordWire, reason) == offset::REASON);
    assert!(offset_of!(RecordWire, flags) == offset::FLAGS);
    assert!(offset_of!(RecordWire, profile) == offset::PROFILE);
    assert!(offset_of!(RecordWire, vmm_comm) == offset::VMM_COMM);
    assert!(offset_of!(RecordWire, image_name) == offset::IMAGE_NAME);
    assert!(offset_of!(RecordWire, repeat) == offset::REPEAT);
    assert!(offset_of!(RecordWire, vm_id) == offset::VM_ID);
};

/// The C field list of [`RecordWire`] for the generated uapi header:
/// `(C type, name, array length or 0, offset)`.
pub const RECORD_C_FIELDS: [(&str, &str, usize, usize); 25] = [
    ("__u16", "abi_version", 0, offset::ABI_VERSION),
    ("__u16", "record_size", 0, offset::RECORD_SIZE),
    ("__u32", "msr", 0, offset::MSR),
    ("__u64", "sequence", 0, offset::SEQUENCE),
    ("__u64", "timestamp_ns", 0, offset::TIMESTAMP_NS),
    ("__u64", "msr_value", 0, offset::MSR_VALUE),
    ("__u64", "pc", 0, offset::PC),
    ("__u64", "image_base", 0, offset::IMAGE_BASE),
    ("__u32", "image_checksum", 0, offset::IMAGE_CHECKSUM),
    ("__u32", "image_timestamp", 0, offset::IMAGE_TIMESTAMP),
    ("__u32", "vmm_pid", 0, offset::VMM_PID),
    ("__u32", "vcpu_id", 0, offset::VCPU_ID),
    ("__u8", "is_write", 0, offset::IS_WRITE),
    ("__u8", "access_status", 0, offset::ACCESS_STATUS),
    ("__u8", "guest_cpl", 0, offset::GUEST_CPL),
    ("__u8", "guest_mode", 0, offset::GUEST_MODE),
    ("__u8", "reason", 0, offset::REASON),
    ("__u8", "flags", 0, offset::FLAGS),
    ("__u8", "profile", 0, offset::PROFILE),
    ("__u8", "reserved", 0, 71),
    ("char", "vmm_comm", COMM_LEN, offset::VMM_COMM),
    ("char", "image_name", IMAGE_NAME_LEN, offset::IMAGE_NAME),
    ("__u64", "repeat", 0, offset::REPEAT),
    ("__u32", "vm_id", 0, offset::VM_ID),
    ("__u32", "reserved2", 0, 140),
];

/// Why a byte buffer is not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than [`RECORD_SIZE`] bytes.
    Truncated(usize),
    /// A record of another layout version.
    Version(u16),
    /// The size field disagrees with [`RECORD_SIZE`].
    Size(u16),
    /// A field holds a value no version of this layout defines.
    Field(&'static str, u64),
}

fn put<const N: usize>(buf: &mut [u8; RECORD_SIZE], offset: usize, bytes: [u8; N]) {
    buf[offset..offset + N].copy_from_slice(&bytes);
}

fn get<const N: usize>(buf: &[u8; RECORD_SIZE], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[offset..offset + N]);
    out
}

impl Record {
    /// The record in its wire layout.
    pub fn to_wire(self) -> RecordWire {
        RecordWire {
            abi_version: ABI_VERSION,
            record_size: RECORD_SIZE as u16,
            msr: self.msr,
            sequence: self.sequence,
            timestamp_ns: self.timestamp_ns,
            msr_value: self.msr_value,
            pc: self.pc,
            image_base: self.image_base,
            image_checksum: self.image_checksum,
            image_timestamp: self.image_timestamp,
            vmm_pid: self.vmm_pid,
            vcpu_id: self.vcpu_id,
            is_write: u8::from(self.is_write),
            access_status: self.access_status as u8,
            guest_cpl: self.guest_cpl,
            guest_mode: self.guest_mode as u8,
            reason: self.reason as u8,
            flags: self.flags,
            profile: self.profile,
            reserved: 0,
            vmm_comm: self.vmm_comm,
            image_name: self.image_name,
            repeat: self.repeat,
            vm_id: self.vm_id,
            reserved2: 0,
        }
    }

    /// Encodes the record in its wire layout, as bytes.
    pub fn to_bytes(self) -> [u8; RECORD_SIZE] {
        let w = self.to_wire();
        let mut b = [0u8; RECORD_SIZE];
        put(&mut b, offset::ABI_VERSION, w.abi_version.to_le_bytes());
        put(&mut b, offset::RECORD_SIZE, w.record_size.to_le_bytes());
        put(&mut b, offset::MSR, w.msr.to_le_bytes());
        put(&mut b, offset::SEQUENCE, w.sequence.to_le_bytes());
        put(&mut b, offset::TIMESTAMP_NS, w.timestamp_ns.to_le_bytes());
        put(&mut b, offset::MSR_VALUE, w.msr_value.to_le_bytes());
        put(&mut b, offset::PC, w.pc.to_le_bytes());
        put(&mut b, offset::IMAGE_BASE, w.image_base.to_le_bytes());
        put(
            &mut b,
            offset::IMAGE_CHECKSUM,
            w.image_checksum.to_le_bytes(),
        );
        put(
            &mut b,
            offset::IMAGE_TIMESTAMP,
            w.image_timestamp.to_le_bytes(),
        );
        put(&mut b, offset::VMM_PID, w.vmm_pid.to_le_bytes());
        put(&mut b, offset::VCPU_ID, w.vcpu_id.to_le_bytes());
        b[offset::IS_WRITE] = w.is_write;
        b[offset::ACCESS_STATUS] = w.access_status;
        b[offset::GUEST_CPL] = w.guest_cpl;
        b[offset::GUEST_MODE] = w.guest_mode;
        b[offset::REASON] = w.reason;
        b[offset::FLAGS] = w.flags;
        b[offset::PROFILE] = w.profile;
        put(&mut b, offset::VMM_COMM, w.vmm_comm);
        put(&mut b, offset::IMAGE_NAME, w.image_name);
        put(&mut b, offset::REPEAT, w.repeat.to_le_bytes());
        put(&mut b, offset::VM_ID, w.vm_id.to_le_bytes());
        b
    }

    /// The size of the record at the start of `bytes`, from its header:
    /// [`RECORD_SIZE_V1`] or [`RECORD_SIZE`].
    pub fn size_of_next(bytes: &[u8]) -> Result<usize, DecodeError> {
        let (Some(v), Some(s)) = (bytes.get(0..2), bytes.get(2..4)) else {
            return Err(DecodeError::Truncated(bytes.len()));
        };
        let version = u16::from_le_bytes([v[0], v[1]]);
        let size = u16::from_le_bytes([s[0], s[1]]);
        match (version, size as usize) {
            (1, RECORD_SIZE_V1) | (ABI_VERSION_V2 | ABI_VERSION, RECORD_SIZE) => Ok(size as usize),
            (1 | ABI_VERSION_V2 | ABI_VERSION, _) => Err(DecodeError::Size(size)),
            _ => Err(DecodeError::Version(version)),
        }
    }

    /// Decodes one record (version 1, 2 or 3), checking version, size and
    /// enumerations.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let size = Self::size_of_next(bytes)?;
        let Some(record) = bytes.get(..size) else {
            return Err(DecodeError::Truncated(bytes.len()));
        };
        // A version 1 record is the first 128 bytes of version 2.
        let mut b = [0u8; RECORD_SIZE];
        b[..size].copy_from_slice(record);
        let b = &b;
        let is_write = match b[offset::IS_WRITE] {
            0 => false,
            1 => true,
            v => return Err(DecodeError::Field("is_write", u64::from(v))),
        };
        let access_status = AccessStatus::from_u8(b[offset::ACCESS_STATUS]).ok_or(
            DecodeError::Field("access_status", u64::from(b[offset::ACCESS_STATUS])),
        )?;
        let guest_mode = GuestMode::from_u8(b[offset::GUEST_MODE]).ok_or(DecodeError::Field(
            "guest_mode",
            u64::from(b[offset::GUEST_MODE]),
        ))?;
        let reason = Reason::from_u8(b[offset::REASON])
            .ok_or(DecodeError::Field("reason", u64::from(b[offset::REASON])))?;
        Ok(Self {
            msr: u32::from_le_bytes(get(b, offset::MSR)),
            sequence: u64::from_le_bytes(get(b, offset::SEQUENCE)),
            timestamp_ns: u64::from_le_bytes(get(b, offset::TIMESTAMP_NS)),
            msr_value: u64::from_le_bytes(get(b, offset::MSR_VALUE)),
            pc: u64::from_le_bytes(get(b, offset::PC)),
            image_base: u64::from_le_bytes(get(b, offset::IMAGE_BASE)),
            image_checksum: u32::from_le_bytes(get(b, offset::IMAGE_CHECKSUM)),
            image_timestamp: u32::from_le_bytes(get(b, offset::IMAGE_TIMESTAMP)),
            vmm_pid: u32::from_le_bytes(get(b, offset::VMM_PID)),
            vcpu_id: u32::from_le_bytes(get(b, offset::VCPU_ID)),
            is_write,
            access_status,
            guest_cpl: b[offset::GUEST_CPL],
            guest_mode,
            reason,
            vmm_comm: get(b, offset::VMM_COMM),
            image_name: get(b, offset::IMAGE_NAME),
            flags: b[offset::FLAGS],
            profile: b[offset::PROFILE],
            repeat: u64::from_le_bytes(get(b, offset::REPEAT)),
            vm_id: u32::from_le_bytes(get(b, offset::VM_ID)),
        })
    }
}

/// Returns the bytes of a NUL-padded field up to its first NUL.
pub fn trim_nul(field: &[u8]) -> &[u8] {
    match field.iter().position(|&c| c == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// Builds an `_IOR`/`_IOWR` ioctl number the way `<asm-generic/ioctl.h>`
/// does on x86.
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'M' as u32) << 8) | nr
}

/// Size in bytes of [`Stats`] on the wire.
pub const STATS_SIZE: usize = 88;

/// `MSRGUARD_IOC_STATS`: `_IOR('M', 1, struct msrguard_stats)`.
pub const IOC_STATS: u32 = ioc(2, 1, STATS_SIZE);

/// Size in bytes of [`PolicyEntryWire`] on the wire.
pub const POLICY_ENTRY_SIZE: usize = 64;

/// `MSRGUARD_IOC_POLICY_ENTRY`: `_IOWR('M', 2, struct msrguard_policy_entry)`;
/// userspace puts the entry's position in the first four bytes.
pub const IOC_POLICY_ENTRY: u32 = ioc(3, 2, POLICY_ENTRY_SIZE);

/// Length of the name field of [`PolicyEntryWire`].
pub const POLICY_NAME_LEN: usize = 40;

/// The module's counters and ABI version, returned by [`IOC_STATS`].
///
/// Layout: eight `u32` (abi_version, record_size, capacity, queued, audit,
/// locked, vm_quota, vm_reserve) then seven `u64` (generated, delivered,
/// dropped, blocked_gp, blocked_ignored, audit_allowed, coalesced);
/// little-endian, 88 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// [`ABI_VERSION`] of the module.
    pub abi_version: u32,
    /// [`RECORD_SIZE`] of the module.
    pub record_size: u32,
    /// Capacity of the event buffer, in records.
    pub capacity: u32,
    /// Access records waiting to be read (queued drop reports are not
    /// counted: `generated = delivered + queued + coalesced + dropped`).
    pub queued: u32,
    /// 1 in audit mode.
    pub audit: u32,
    /// 1 once the `lock` parameter was set.
    pub locked: u32,
    /// Records a VM may hold before it must leave [`Self::vm_reserve`] free.
    pub vm_quota: u32,
    /// Free records kept for VMs under their quota.
    pub vm_reserve: u32,
    /// Events generated: every vetoed (or audited) access.
    pub generated: u64,
    /// Records read by userspace.
    pub delivered: u64,
    /// Events dropped: their VM was over its share of the buffer (its
    /// newest events are dropped, and reported by a drop record).
    pub dropped: u64,
    /// Events with status blocked-gp.
    pub blocked_gp: u64,
    /// Events with status blocked-ignored.
    pub blocked_ignored: u64,
    /// Events with status audit-allowed.
    pub audit_allowed: u64,
    /// Events coalesced into an earlier identical record (its `repeat`).
    pub coalesced: u64,
}

/// Byte offsets of the [`Stats`] fields (`u32` then `u64`, little-endian).
pub mod stats_offset {
    /// `abi_version` (u32).
    pub const ABI_VERSION: usize = 0;
    /// `record_size` (u32).
    pub const RECORD_SIZE: usize = 4;
    /// `capacity` (u32).
    pub const CAPACITY: usize = 8;
    /// `queued` (u32).
    pub const QUEUED: usize = 12;
    /// `audit` (u32).
    pub const AUDIT: usize = 16;
    /// `locked` (u32).
    pub const LOCKED: usize = 20;
    /// `vm_quota` (u32).
    pub const VM_QUOTA: usize = 24;
    /// `vm_reserve` (u32).
    pub const VM_RESERVE: usize = 28;
    /// `generated` (u64).
    pub const GENERATED: usize = 32;
    /// `delivered` (u64).
    pub const DELIVERED: usize = 40;
    /// `dropped` (u64).
    pub const DROPPED: usize = 48;
    /// `blocked_gp` (u64).
    pub const BLOCKED_GP: usize = 56;
    /// `blocked_ignored` (u64).
    pub const BLOCKED_IGNORED: usize = 64;
    /// `audit_allowed` (u64).
    pub const AUDIT_ALLOWED: usize = 72;
    /// `coalesced` (u64).
    pub const COALESCED: usize = 80;
}

impl Stats {
    /// Encodes the counters in their wire layout.
    pub fn to_bytes(self) -> [u8; STATS_SIZE] {
        use stats_offset::*;
        let mut b = [0u8; STATS_SIZE];
        let words = [
            (ABI_VERSION, self.abi_version),
            (RECORD_SIZE, self.record_size),
            (CAPACITY, self.capacity),
            (QUEUED, self.queued),
            (AUDIT, self.audit),
            (LOCKED, self.locked),
            (VM_QUOTA, self.vm_quota),
            (VM_RESERVE, self.vm_reserve),
        ];
        for (off, w) in words {
            b[off..off + 4].copy_from_slice(&w.to_le_bytes());
        }
        let quads = [
            (GENERATED, self.generated),
            (DELIVERED, self.delivered),
            (DROPPED, self.dropped),
            (BLOCKED_GP, self.blocked_gp),
            (BLOCKED_IGNORED, self.blocked_ignored),
            (AUDIT_ALLOWED, self.audit_allowed),
            (COALESCED, self.coalesced),
        ];
        for (off, q) in quads {
            b[off..off + 8].copy_from_slice(&q.to_le_bytes());
        }
        b
    }

    /// Decodes the counters.
    pub fn from_bytes(b: &[u8; STATS_SIZE]) -> Self {
        use stats_offset::*;
        let w = |off: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[off..off + 4]);
            u32::from_le_bytes(a)
        };
        let q = |off: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[off..off + 8]);
            u64::from_le_bytes(a)
        };
        Self {
            abi_version: w(ABI_VERSION),
            record_size: w(RECORD_SIZE),
            capacity: w(CAPACITY),
            queued: w(QUEUED),
            audit: w(AUDIT),
            locked: w(LOCKED),
            vm_quota: w(VM_QUOTA),
            vm_reserve: w(VM_RESERVE),
            generated: q(GENERATED),
            delivered: q(DELIVERED),
            dropped: q(DROPPED),
            blocked_gp: q(BLOCKED_GP),
            blocked_ignored: q(BLOCKED_IGNORED),
            audit_allowed: q(AUDIT_ALLOWED),
            coalesced: q(COALESCED),
        }
    }
}

/// One policy entry as [`IOC_POLICY_ENTRY`] returns it.
///
/// Layout: first `u32`, last `u32`, write_mask `u64`, read `u8`, write `u8`,
/// has_write_mask `u8`, 5 reserved bytes, name (40 bytes, NUL-padded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyEntryWire {
    /// First MSR index covered.
    pub first: u32,
    /// Last MSR index covered.
    pub last: u32,
    /// Write mask, when `has_write_mask`.
    pub write_mask: u64,
    /// Read action (`policy::Action` value).
    pub read: u8,
    /// Write action (`policy::Action` value).
    pub write: u8,
    /// Whether the write mask applies.
    pub has_write_mask: bool,
    /// Name, NUL-padded.
    pub name: [u8; POLICY_NAME_LEN],
}

impl PolicyEntryWire {
    /// Encodes the entry.
    pub fn to_bytes(self) -> [u8; POLICY_ENTRY_SIZE] {
        let mut b = [0u8; POLICY_ENTRY_SIZE];
        b[0..4].copy_from_slice(&self.first.to_le_bytes());
        b[4..8].copy_from_slice(&self.last.to_le_bytes());
        b[8..16].copy_from_slice(&self.write_mask.to_le_bytes());
        b[16] = self.read;
        b[17] = self.write;
        b[18] = u8::from(self.has_write_mask);
        b[24..64].copy_from_slice(&self.name);
        b
    }

    /// Decodes the entry.
    pub fn from_bytes(b: &[u8; POLICY_ENTRY_SIZE]) -> Self {
        let mut first = [0u8; 4];
        first.copy_from_slice(&b[0..4]);
        let mut last = [0u8; 4];
        last.copy_from_slice(&b[4..8]);
        let mut mask = [0u8; 8];
        mask.copy_from_slice(&b[8..16]);
        let mut name = [0u8; POLICY_NAME_LEN];
        name.copy_from_slice(&b[24..64]);
        Self {
            first: u32::from_le_bytes(first),
            last: u32::from_le_bytes(last),
            write_mask: u64::from_le_bytes(mask),
            read: b[16],
            write: b[17],
            has_write_mask: b[18] != 0,
            name,
        }
    }
}

/// Size in bytes of [`ProfileWire`] on the wire.
pub const PROFILE_SIZE: usize = 24;

/// `MSRGUARD_IOC_PROFILE`: `_IOWR('M', 3, struct msrguard_profile)`;
/// userspace puts the profile's index in the first four bytes (`ENOENT`
/// past the last). Version 3.
pub const IOC_PROFILE: u32 = ioc(3, 3, PROFILE_SIZE);

/// Length of the name field of [`ProfileWire`].
pub const PROFILE_NAME_LEN: usize = 16;

/// One compiled-in profile as [`IOC_PROFILE`] returns it.
///
/// Layout: index `u32`, pins `u32`, name (16 bytes, NUL-padded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileWire {
    /// Its index: what records and [`VmInfoWire`] carry.
    pub index: u32,
    /// Its pinned and set-only MSRs.
    pub pins: u32,
    /// Name, NUL-padded.
    pub name: [u8; PROFILE_NAME_LEN],
}

impl ProfileWire {
    /// Encodes it.
    pub fn to_bytes(self) -> [u8; PROFILE_SIZE] {
        let mut b = [0u8; PROFILE_SIZE];
        b[0..4].copy_from_slice(&self.index.to_le_bytes());
        b[4..8].copy_from_slice(&self.pins.to_le_bytes());
        b[8..24].copy_from_slice(&self.name);
        b
    }

    /// Decodes it.
    pub fn from_bytes(b: &[u8; PROFILE_SIZE]) -> Self {
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut name = [0u8; PROFILE_NAME_LEN];
        name.copy_from_slice(&b[8..24]);
        Self {
            index: word(0),
            pins: word(4),
            name,
        }
    }
}

/// Size in bytes of [`VmInfoWire`] on the wire.
pub const VM_INFO_SIZE: usize = 16;

/// `MSRGUARD_IOC_VM`: `_IOWR('M', 4, struct msrguard_vm_info)`; userspace
/// puts a position (0, 1, ...) in the first four bytes and gets the live
/// VM there (`ENOENT` past the last). VMs created or destroyed meanwhile
/// may shift positions: a listing is a snapshot only per call. Version 3.
pub const IOC_VM: u32 = ioc(3, 4, VM_INFO_SIZE);

/// One live VM as [`IOC_VM`] returns it.
///
/// Layout: position `u32`, vm_id `u32`, vmm_pid `u32`, profile `u8`, 3
/// reserved bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmInfoWire {
    /// The position asked for.
    pub position: u32,
    /// The VM's id, as in its records.
    pub vm_id: u32,
    /// The thread group that created it (0: it existed before msrguard).
    pub vmm_pid: u32,
    /// Its profile's index.
    pub profile: u8,
}

impl VmInfoWire {
    /// Encodes it.
    pub fn to_bytes(self) -> [u8; VM_INFO_SIZE] {
        let mut b = [0u8; VM_INFO_SIZE];
        b[0..4].copy_from_slice(&self.position.to_le_bytes());
        b[4..8].copy_from_slice(&self.vm_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.vmm_pid.to_le_bytes());
        b[12] = self.profile;
        b
    }

    /// Decodes it.
    pub fn from_bytes(b: &[u8; VM_INFO_SIZE]) -> Self {
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        Self {
            position: word(0),
            vm_id: word(4),
            vmm_pid: word(8),
            profile: b[12],
        }
    }
}

/// Size in bytes of the [`IOC_SET_PROFILE`] argument: vm_id `u32`, profile
/// `u8`, 3 reserved bytes.
pub const SET_PROFILE_SIZE: usize = 8;

/// `MSRGUARD_IOC_SET_PROFILE`: `_IOW('M', 5, struct msrguard_set_profile)`:
/// gives a live VM another profile. `EPERM` once `lock` is set, `ENOENT`
/// for no such VM, `EINVAL` for no such profile. Version 3.
pub const IOC_SET_PROFILE: u32 = ioc(1, 5, SET_PROFILE_SIZE);

/// A struct's C fields: `(C type, name, array length or 0, offset)`.
pub type CFieldList = [(&'static str, &'static str, usize, usize)];

/// The C field lists of the version 3 ioctl structs, for the generated
/// uapi header: `(C type, name, array length or 0, offset)`, each with its
/// struct's name and size.
pub const IOCTL_C_STRUCTS: [(&str, usize, &CFieldList); 3] = [
    (
        "msrguard_profile",
        PROFILE_SIZE,
        &[
            ("__u32", "index", 0, 0),
            ("__u32", "pins", 0, 4),
            ("char", "name", PROFILE_NAME_LEN, 8),
        ],
    ),
    (
        "msrguard_vm_info",
        VM_INFO_SIZE,
        &[
            ("__u32", "position", 0, 0),
            ("__u32", "vm_id", 0, 4),
            ("__u32", "vmm_pid", 0, 8),
            ("__u8", "profile", 0, 12),
            ("__u8", "reserved", 3, 13),
        ],
    ),
    (
        "msrguard_set_profile",
        SET_PROFILE_SIZE,
        &[
            ("__u32", "vm_id", 0, 0),
            ("__u8", "profile", 0, 4),
            ("__u8", "reserved", 3, 5),
        ],
    ),
];

/// Copies `s` into a NUL-padded field, truncating at a character boundary
/// so the field stays valid UTF-8 and keeps a terminating NUL.
pub fn fill_nul_padded(field: &mut [u8], s: &str) {
    field.fill(0);
    let mut end = s.len().min(field.len().saturating_sub(1));
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    field[..end].copy_from_slice(&s.as_bytes()[..end]);
}
