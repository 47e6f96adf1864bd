// SPDX-License-Identifier: GPL-2.0

//! The event record: the one definition of what `/dev/msrguard` returns.
//!
//! This file is `core`-only and is compiled into both the kernel module and
//! the host crates (`tools/msrguard-abi`), so the module, the tool and the
//! tests cannot disagree about the layout. The layout is documented in
//! `Documentation/msrguard.rst`; every change bumps [`ABI_VERSION`].
//!
//! A record is [`RECORD_SIZE`] bytes, little-endian, fields at fixed offsets:
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
//! |     69 |    3 | reserved (zero)   |
//! |     72 |   16 | vmm_comm          |
//! |     88 |   40 | image_name        |

/// Version of the record layout and of the ioctl ABI.
pub const ABI_VERSION: u16 = 1;

/// Size in bytes of one record.
pub const RECORD_SIZE: usize = 128;

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
}

impl AccessStatus {
    /// Decodes the on-wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::BlockedGp),
            2 => Some(Self::BlockedIgnored),
            3 => Some(Self::AuditAllowed),
            _ => None,
        }
    }

    /// Stable name used in the kernel log, trace events and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BlockedGp => "blocked-gp",
            Self::BlockedIgnored => "blocked-ignored",
            Self::AuditAllowed => "audit-allowed",
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
}

impl Reason {
    /// Decodes the on-wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Unknown),
            2 => Some(Self::ReadDenied),
            3 => Some(Self::WriteDenied),
            4 => Some(Self::WriteMask),
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
        }
    }
}

/// The guest's execution mode at the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GuestMode {
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
    /// Decodes the on-wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
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
    /// Base of the guest image containing `pc` (not yet resolved: 0).
    pub image_base: u64,
    /// Checksum of that image (not yet resolved: 0).
    pub image_checksum: u32,
    /// Link timestamp of that image (not yet resolved: 0).
    pub image_timestamp: u32,
    /// Name of that image, NUL-padded (not yet resolved: empty).
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
}

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
    /// Encodes the record in its wire layout.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        put(&mut b, 0, ABI_VERSION.to_le_bytes());
        put(&mut b, 2, (RECORD_SIZE as u16).to_le_bytes());
        put(&mut b, 4, self.msr.to_le_bytes());
        put(&mut b, 8, self.sequence.to_le_bytes());
        put(&mut b, 16, self.timestamp_ns.to_le_bytes());
        put(&mut b, 24, self.msr_value.to_le_bytes());
        put(&mut b, 32, self.pc.to_le_bytes());
        put(&mut b, 40, self.image_base.to_le_bytes());
        put(&mut b, 48, self.image_checksum.to_le_bytes());
        put(&mut b, 52, self.image_timestamp.to_le_bytes());
        put(&mut b, 56, self.vmm_pid.to_le_bytes());
        put(&mut b, 60, self.vcpu_id.to_le_bytes());
        b[64] = self.is_write as u8;
        b[65] = self.access_status as u8;
        b[66] = self.guest_cpl;
        b[67] = self.guest_mode as u8;
        b[68] = self.reason as u8;
        put(&mut b, 72, self.vmm_comm);
        put(&mut b, 88, self.image_name);
        b
    }

    /// Decodes one record, checking version, size and enumerations.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; RECORD_SIZE] = match bytes.get(..RECORD_SIZE) {
            Some(s) => match s.try_into() {
                Ok(a) => a,
                Err(_) => return Err(DecodeError::Truncated(bytes.len())),
            },
            None => return Err(DecodeError::Truncated(bytes.len())),
        };
        let version = u16::from_le_bytes(get(b, 0));
        if version != ABI_VERSION {
            return Err(DecodeError::Version(version));
        }
        let size = u16::from_le_bytes(get(b, 2));
        if size as usize != RECORD_SIZE {
            return Err(DecodeError::Size(size));
        }
        let is_write = match b[64] {
            0 => false,
            1 => true,
            v => return Err(DecodeError::Field("is_write", v as u64)),
        };
        let access_status = AccessStatus::from_u8(b[65])
            .ok_or(DecodeError::Field("access_status", b[65] as u64))?;
        let guest_mode =
            GuestMode::from_u8(b[67]).ok_or(DecodeError::Field("guest_mode", b[67] as u64))?;
        let reason = Reason::from_u8(b[68]).ok_or(DecodeError::Field("reason", b[68] as u64))?;
        Ok(Self {
            msr: u32::from_le_bytes(get(b, 4)),
            sequence: u64::from_le_bytes(get(b, 8)),
            timestamp_ns: u64::from_le_bytes(get(b, 16)),
            msr_value: u64::from_le_bytes(get(b, 24)),
            pc: u64::from_le_bytes(get(b, 32)),
            image_base: u64::from_le_bytes(get(b, 40)),
            image_checksum: u32::from_le_bytes(get(b, 48)),
            image_timestamp: u32::from_le_bytes(get(b, 52)),
            vmm_pid: u32::from_le_bytes(get(b, 56)),
            vcpu_id: u32::from_le_bytes(get(b, 60)),
            is_write,
            access_status,
            guest_cpl: b[66],
            guest_mode,
            reason,
            vmm_comm: get(b, 72),
            image_name: get(b, 88),
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
pub const STATS_SIZE: usize = 80;

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
/// locked, reserved, reserved) then six `u64` (generated, delivered,
/// dropped, blocked_gp, blocked_ignored, audit_allowed); little-endian, 80 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// [`ABI_VERSION`] of the module.
    pub abi_version: u32,
    /// [`RECORD_SIZE`] of the module.
    pub record_size: u32,
    /// Capacity of the event buffer, in records.
    pub capacity: u32,
    /// Records waiting to be read.
    pub queued: u32,
    /// 1 in audit mode.
    pub audit: u32,
    /// 1 once the `lock` parameter was set.
    pub locked: u32,
    /// Events generated (sequence numbers handed out).
    pub generated: u64,
    /// Records read by userspace.
    pub delivered: u64,
    /// Events dropped because the buffer was full (the newest are dropped).
    pub dropped: u64,
    /// Events with status blocked-gp.
    pub blocked_gp: u64,
    /// Events with status blocked-ignored.
    pub blocked_ignored: u64,
    /// Events with status audit-allowed.
    pub audit_allowed: u64,
}

impl Stats {
    /// Encodes the counters in their wire layout.
    pub fn to_bytes(&self) -> [u8; STATS_SIZE] {
        let mut b = [0u8; STATS_SIZE];
        let words = [
            self.abi_version,
            self.record_size,
            self.capacity,
            self.queued,
            self.audit,
            self.locked,
            0,
            0,
        ];
        for (i, w) in words.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let quads = [
            self.generated,
            self.delivered,
            self.dropped,
            self.blocked_gp,
            self.blocked_ignored,
            self.audit_allowed,
        ];
        for (i, q) in quads.iter().enumerate() {
            b[32 + i * 8..32 + i * 8 + 8].copy_from_slice(&q.to_le_bytes());
        }
        b
    }

    /// Decodes the counters.
    pub fn from_bytes(b: &[u8; STATS_SIZE]) -> Self {
        let w = |i: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[i * 4..i * 4 + 4]);
            u32::from_le_bytes(a)
        };
        let q = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[32 + i * 8..32 + i * 8 + 8]);
            u64::from_le_bytes(a)
        };
        Self {
            abi_version: w(0),
            record_size: w(1),
            capacity: w(2),
            queued: w(3),
            audit: w(4),
            locked: w(5),
            generated: q(0),
            delivered: q(1),
            dropped: q(2),
            blocked_gp: q(3),
            blocked_ignored: q(4),
            audit_allowed: q(5),
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
    pub fn to_bytes(&self) -> [u8; POLICY_ENTRY_SIZE] {
        let mut b = [0u8; POLICY_ENTRY_SIZE];
        b[0..4].copy_from_slice(&self.first.to_le_bytes());
        b[4..8].copy_from_slice(&self.last.to_le_bytes());
        b[8..16].copy_from_slice(&self.write_mask.to_le_bytes());
        b[16] = self.read;
        b[17] = self.write;
        b[18] = self.has_write_mask as u8;
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
