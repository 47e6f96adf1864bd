// SPDX-License-Identifier: GPL-2.0

//! Reading `/dev/msrguard` (records, counters, policy) or a file of records.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use msrguard_core::record::{
    trim_nul, DecodeError, PolicyEntryWire, ProfileWire, Record, Stats, VmInfoWire, ABI_VERSION,
    IOC_POLICY_ENTRY, IOC_PROFILE, IOC_SET_PROFILE, IOC_STATS, IOC_VM, POLICY_ENTRY_SIZE,
    PROFILE_SIZE, RECORD_SIZE, SET_PROFILE_SIZE, STATS_SIZE, VM_INFO_SIZE,
};

use crate::Failure;

/// An open msrguard device.
pub(crate) struct Device {
    file: File,
    path: String,
}

fn open_error(path: &str, e: std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::NotFound => Failure(format!(
            "{path} does not exist: is the msrguard module loaded? (insmod msrguard.ko)"
        )),
        ErrorKind::PermissionDenied => Failure(format!(
            "permission denied opening {path}: reading msrguard needs root"
        )),
        _ => Failure(format!("{path}: {e}")),
    }
}

impl Device {
    /// Opens the device and checks it speaks our ABI version.
    pub(crate) fn open(path: &str) -> Result<Self, Failure> {
        Self::open_flags(path, 0)
    }

    fn open_flags(path: &str, flags: i32) -> Result<Self, Failure> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let dev = Self {
            file,
            path: path.to_string(),
        };
        let stats = dev.stats()?;
        if stats.abi_version != ABI_VERSION as u32 || stats.record_size != RECORD_SIZE as u32 {
            return Err(Failure(format!(
                "ABI version mismatch: the module speaks version {} ({}-byte records), this tool version {} ({}-byte records)",
                stats.abi_version, stats.record_size, ABI_VERSION, RECORD_SIZE
            )));
        }
        Ok(dev)
    }

    /// The module's counters.
    pub(crate) fn stats(&self) -> Result<Stats, Failure> {
        let mut buf = [0u8; STATS_SIZE];
        // SAFETY: IOC_STATS writes exactly STATS_SIZE bytes into `buf`.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), IOC_STATS as _, buf.as_mut_ptr()) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Failure(match e.raw_os_error() {
                Some(libc::ENOTTY) | Some(libc::EINVAL) => format!(
                    "{}: not an msrguard device, or a module of another ABI version (this tool speaks version {ABI_VERSION})",
                    self.path
                ),
                _ => format!("{}: stats ioctl: {e}", self.path),
            }));
        }
        Ok(Stats::from_bytes(&buf))
    }

    /// The compiled-in policy, entry by entry.
    pub(crate) fn policy(&self) -> Result<Vec<PolicyEntryWire>, Failure> {
        let mut out = Vec::new();
        for index in 0u32.. {
            let mut buf = [0u8; POLICY_ENTRY_SIZE];
            buf[..4].copy_from_slice(&index.to_le_bytes());
            // SAFETY: IOC_POLICY_ENTRY reads and writes POLICY_ENTRY_SIZE bytes of `buf`.
            let r = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    IOC_POLICY_ENTRY as _,
                    buf.as_mut_ptr(),
                )
            };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOENT) {
                    break;
                }
                return Err(Failure(format!("{}: policy ioctl: {e}", self.path)));
            }
            out.push(PolicyEntryWire::from_bytes(&buf));
        }
        Ok(out)
    }

    /// Items `0, 1, ...` of an ioctl that takes the position in its first
    /// four bytes and answers `ENOENT` past the last.
    fn positions<const N: usize>(&self, cmd: u32, what: &str) -> Result<Vec<[u8; N]>, Failure> {
        let mut out = Vec::new();
        for position in 0u32.. {
            let mut buf = [0u8; N];
            buf[..4].copy_from_slice(&position.to_le_bytes());
            // SAFETY: `cmd` reads and writes N bytes of `buf` (its size is in
            // the ioctl number).
            let r = unsafe { libc::ioctl(self.file.as_raw_fd(), cmd as _, buf.as_mut_ptr()) };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOENT) {
                    break;
                }
                return Err(Failure(format!("{}: {what} ioctl: {e}", self.path)));
            }
            out.push(buf);
        }
        Ok(out)
    }

    /// The compiled-in profiles, `default` first.
    pub(crate) fn profiles(&self) -> Result<Vec<ProfileWire>, Failure> {
        Ok(self
            .positions::<PROFILE_SIZE>(IOC_PROFILE, "profile")?
            .iter()
            .map(ProfileWire::from_bytes)
            .collect())
    }

    /// The profiles' names, by index.
    pub(crate) fn profile_names(&self) -> Result<Vec<String>, Failure> {
        Ok(self
            .profiles()?
            .iter()
            .map(|p| String::from_utf8_lossy(trim_nul(&p.name)).into_owned())
            .collect())
    }

    /// The live VMs.
    pub(crate) fn vms(&self) -> Result<Vec<VmInfoWire>, Failure> {
        Ok(self
            .positions::<VM_INFO_SIZE>(IOC_VM, "vm")?
            .iter()
            .map(VmInfoWire::from_bytes)
            .collect())
    }

    /// Gives the VM `vm_id` the profile `profile`.
    pub(crate) fn set_profile(&self, vm_id: u32, profile: u8) -> Result<(), Failure> {
        let mut buf = [0u8; SET_PROFILE_SIZE];
        buf[..4].copy_from_slice(&vm_id.to_le_bytes());
        buf[4] = profile;
        // SAFETY: IOC_SET_PROFILE reads SET_PROFILE_SIZE bytes of `buf`.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), IOC_SET_PROFILE as _, buf.as_ptr()) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        Err(Failure(match e.raw_os_error() {
            Some(libc::EPERM) => format!(
                "{}: the module is locked (lock=1): profiles cannot change until reboot",
                self.path
            ),
            Some(libc::ENOENT) => format!("{}: no VM {vm_id:08x} (it may have exited)", self.path),
            _ => format!("{}: set profile: {e}", self.path),
        }))
    }
}

/// Where `events` reads records from.
pub(crate) enum Source {
    /// The device: non-blocking reads, and poll() between them when following.
    Device {
        dev: Device,
        follow: bool,
        pending: Vec<u8>,
    },
    /// A file of records, read to its end.
    File {
        path: String,
        data: Vec<u8>,
        offset: usize,
    },
}

impl Source {
    /// Opens `path`: a character device is the msrguard device, anything
    /// else a file of records.
    pub(crate) fn open(path: &str, follow: bool) -> Result<Self, Failure> {
        let meta = std::fs::metadata(path).map_err(|e| open_error(path, e))?;
        if meta.file_type().is_char_device() {
            let dev = Device::open_flags(path, libc::O_NONBLOCK)?;
            return Ok(Source::Device {
                dev,
                follow,
                pending: Vec::new(),
            });
        }
        if follow {
            return Err(Failure(format!(
                "{path}: --follow needs the msrguard device, not a file"
            )));
        }
        let mut data = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| open_error(path, e))?;
        Ok(Source::File {
            path: path.to_string(),
            data,
            offset: 0,
        })
    }

    /// The profiles' names by index, from the device (none from a file).
    pub(crate) fn profile_names(&self) -> Vec<String> {
        match self {
            Source::Device { dev, .. } => dev.profile_names().unwrap_or_default(),
            Source::File { .. } => Vec::new(),
        }
    }

    /// The next record, or `None` at the end (of the file, or of the pending
    /// events when not following).
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>, Failure> {
        match self {
            Source::File { path, data, offset } => {
                if *offset >= data.len() {
                    return Ok(None);
                }
                // Saved files may hold version 1 (128-byte) or 2 records.
                let rest = &data[*offset..];
                let size = Record::size_of_next(rest).map_err(|e| describe(path, *offset, e))?;
                let record = Record::from_bytes(rest).map_err(|e| describe(path, *offset, e))?;
                *offset += size;
                Ok(Some(record))
            }
            Source::Device {
                dev,
                follow,
                pending,
            } => loop {
                if pending.len() >= RECORD_SIZE {
                    let rest = pending.split_off(RECORD_SIZE);
                    let record =
                        Record::from_bytes(pending).map_err(|e| describe(&dev.path, 0, e))?;
                    *pending = rest;
                    return Ok(Some(record));
                }
                let mut buf = vec![0u8; 64 * RECORD_SIZE];
                match (&dev.file).read(&mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        pending.extend_from_slice(&buf);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if !*follow {
                            return Ok(None);
                        }
                        wait_readable(&dev.file)?;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Failure(format!("{}: read: {e}", dev.path))),
                }
            },
        }
    }
}

/// Sleeps in poll() until the device has records.
fn wait_readable(file: &File) -> Result<(), Failure> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(Failure(format!("poll: {e}")));
        }
    }
}

fn describe(path: &str, offset: usize, e: DecodeError) -> Failure {
    Failure(match e {
        DecodeError::Truncated(n) => format!(
            "{path}: truncated record at offset {offset}: {n} of {RECORD_SIZE} bytes"
        ),
        DecodeError::Version(v) => format!(
            "{path}: ABI version mismatch at offset {offset}: record version {v}, this tool reads versions 1 to {ABI_VERSION}"
        ),
        DecodeError::Size(s) => format!(
            "{path}: record at offset {offset} says it is {s} bytes, which its version does not define"
        ),
        DecodeError::Field(name, v) => format!(
            "{path}: record at offset {offset}: invalid {name} {v}"
        ),
    })
}
