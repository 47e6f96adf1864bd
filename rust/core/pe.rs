// SPDX-License-Identifier: GPL-2.0

//! Image attribution: the PE image (Windows driver, DLL, UEFI module) in
//! guest memory that holds an instruction address.
//!
//! `core`-only, shared with the host crates (crate `msrguard-core`), which
//! test it on real MinGW-w64 DLLs and on random mutations of their headers.
//!
//! The guest controls every byte read here. Every offset is checked against
//! the image's `SizeOfImage` with checked arithmetic, every read is a small
//! bounded copy through [`GuestMemory`] (which may fail: unmapped pages are
//! skipped), every string is length-bounded and must be printable, and the
//! number of reads is bounded by [`max_reads`]: a malformed or hostile
//! header yields `None` or empty fields, never more work.

/// Guest page size: images are page-aligned in guest virtual memory.
pub const PAGE_SIZE: u64 = 4096;

/// Longest image name kept (the record's `image_name` minus its NUL).
pub const NAME_MAX: usize = 39;

/// Largest `e_lfanew` accepted: the NT headers must start in the first page,
/// as every linker puts them.
pub const MAX_LFANEW: u32 = 0x1000 - 4 - 20;

/// Debug directory entries examined for a CodeView record.
pub const MAX_DEBUG_ENTRIES: u32 = 16;

/// Longest name read from an export directory or a CodeView record
/// (Windows' `MAX_PATH`); longer ones are truncated to [`NAME_MAX`] after
/// the path is removed, names without a NUL in that span are not names.
pub const MAX_NAME_READ: usize = 260;

/// Reads done per candidate header page at most: the two-byte `MZ` probe,
/// `e_lfanew`, the NT headers.
pub const READS_PER_PAGE: u32 = 3;

/// Reads done to extract the fields of the image found at most: the export
/// directory, its name (twice if the first read crosses into an unreadable
/// page), the debug directory's entries, one CodeView signature and name.
pub const READS_PER_IMAGE: u32 = 1 + 2 + MAX_DEBUG_ENTRIES + 1 + 2;

/// Upper bound of [`GuestMemory::read`] calls for one [`find_image`] with
/// `max_pages` pages scanned.
pub const fn max_reads(max_pages: u32) -> u64 {
    max_pages as u64 * READS_PER_PAGE as u64 + READS_PER_IMAGE as u64
}

/// Guest memory as the scan sees it: guest virtual addresses of the vCPU
/// whose access is being attributed.
pub trait GuestMemory {
    /// Fills `buf` from guest virtual address `va`; false if any byte is not
    /// readable (unmapped, outside guest memory). `buf` is at most
    /// [`MAX_NAME_READ`] bytes.
    fn read(&mut self, va: u64, buf: &mut [u8]) -> bool;
}

/// The image that holds an address, and the fields of event 12550.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    /// Guest virtual address of the image's `MZ` header (ImageBase).
    pub base: u64,
    /// `OptionalHeader.SizeOfImage`.
    pub size: u32,
    /// `OptionalHeader.CheckSum` (ImageChecksum).
    pub checksum: u32,
    /// `FileHeader.TimeDateStamp` (ImageTimestamp).
    pub timestamp: u32,
    /// The export directory's name, else the CodeView PDB file name without
    /// its path, else empty; NUL-padded, at most [`NAME_MAX`] bytes.
    pub name: [u8; NAME_MAX + 1],
}

impl Image {
    /// The name's bytes, without the padding.
    pub fn name_bytes(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
        &self.name[..len]
    }
}

/// Data directory indices.
const DIR_EXPORT: u32 = 0;
const DIR_DEBUG: u32 = 6;
/// `IMAGE_DEBUG_TYPE_CODEVIEW`.
const DEBUG_TYPE_CODEVIEW: u32 = 2;
/// `IMAGE_NT_OPTIONAL_HDR32_MAGIC`, `IMAGE_NT_OPTIONAL_HDR64_MAGIC`.
const MAGIC_PE32: u16 = 0x10b;
const MAGIC_PE32_PLUS: u16 = 0x20b;

fn u16_at(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// What the headers of one candidate say.
struct Headers {
    size: u32,
    checksum: u32,
    timestamp: u32,
    /// (rva, size) of the export and debug directories; (0, 0) if absent.
    export: (u32, u32),
    debug: (u32, u32),
}

/// NT signature, file header, and the optional header up to and including
/// the debug data directory of a PE32+ (the longer of the two layouts).
const NT_READ: usize = 4 + 20 + 112 + 8 * (DIR_DEBUG as usize + 1);

/// Parses the headers of a candidate image at `base` (whose first two bytes
/// are `MZ`).
fn headers(mem: &mut impl GuestMemory, base: u64) -> Option<Headers> {
    let mut lfanew = [0u8; 4];
    if !mem.read(base.checked_add(0x3c)?, &mut lfanew) {
        return None;
    }
    let lfanew = u32::from_le_bytes(lfanew);
    if !(0x40..=MAX_LFANEW).contains(&lfanew) {
        return None;
    }
    let mut nt = [0u8; NT_READ];
    // The optional header may be shorter than the read (few directories):
    // read what the page holds, parse only what the header declares.
    let nt_va = base.checked_add(u64::from(lfanew))?;
    let avail = (PAGE_SIZE - (nt_va % PAGE_SIZE)).min(NT_READ as u64) as usize;
    let nt = &mut nt[..avail];
    if avail < 4 + 20 + 2 || !mem.read(nt_va, nt) {
        return None;
    }
    if nt[..4] != *b"PE\0\0" {
        return None;
    }
    let file = &nt[4..];
    let timestamp = u32_at(file, 4);
    let opt_size = usize::from(u16_at(file, 16));
    let opt = &file[20..];
    let opt = &opt[..opt_size.min(opt.len())];
    let (dirs_off, count_off) = match u16_at(opt, 0) {
        MAGIC_PE32 => (96, 92),
        MAGIC_PE32_PLUS => (112, 108),
        _ => return None,
    };
    if opt.len() < dirs_off {
        return None;
    }
    let size = u32_at(opt, 56);
    let size_of_headers = u32_at(opt, 60);
    let checksum = u32_at(opt, 64);
    // A sane image: at least its headers, which hold the NT headers.
    if size == 0 || size_of_headers > size || lfanew >= size {
        return None;
    }
    let ndirs = u32_at(opt, count_off);
    let dir = |i: u32| -> (u32, u32) {
        if i >= ndirs {
            return (0, 0);
        }
        let off = dirs_off + 8 * i as usize;
        (u32_at(opt, off), u32_at(opt, off + 4))
    };
    Some(Headers {
        size,
        checksum,
        timestamp,
        export: dir(DIR_EXPORT),
        debug: dir(DIR_DEBUG),
    })
}

/// Whether `[rva, rva + len)` lies inside an image of `size` bytes.
fn inside(rva: u32, len: u32, size: u32) -> bool {
    rva != 0 && rva.checked_add(len).is_some_and(|end| end <= size)
}

/// Reads a NUL-terminated printable name (no space, no `=`) at `rva` (at most
/// [`MAX_NAME_READ`] bytes, inside the image), keeps what follows the last
/// `\` or `/`, truncated to [`NAME_MAX`]. None if there is no NUL, no
/// character, or a non-printable one.
fn read_name(
    mem: &mut impl GuestMemory,
    base: u64,
    size: u32,
    rva: u32,
    limit: u32,
) -> Option<[u8; NAME_MAX + 1]> {
    if !inside(rva, 1, size) {
        return None;
    }
    let len = (size - rva).min(limit).min(MAX_NAME_READ as u32) as usize;
    // Stops at the page end if the name's tail page is unmapped: the page
    // boundary is a hard limit of one read.
    let mut buf = [0u8; MAX_NAME_READ];
    let va = base.checked_add(u64::from(rva))?;
    let in_page = (PAGE_SIZE - va % PAGE_SIZE) as usize;
    let buf = &mut buf[..len];
    if !mem.read(va, buf) {
        // Retry once within the first page: a short name need not cross it.
        if in_page >= len || !mem.read(va, &mut buf[..in_page]) {
            return None;
        }
        buf[in_page..].fill(0xff);
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let full = &buf[..end];
    let file = match full.iter().rposition(|&b| b == b'\\' || b == b'/') {
        Some(p) => &full[p + 1..],
        None => full,
    };
    // Printed as one word of the log line and the trace event: a space or
    // '=' in a guest's name would forge fields there.
    if file.is_empty() || !file.iter().all(|&b| b.is_ascii_graphic() && b != b'=') {
        return None;
    }
    let mut name = [0u8; NAME_MAX + 1];
    let n = file.len().min(NAME_MAX);
    name[..n].copy_from_slice(&file[..n]);
    Some(name)
}

/// The export directory's `Name`.
fn export_name(mem: &mut impl GuestMemory, base: u64, h: &Headers) -> Option<[u8; NAME_MAX + 1]> {
    let (rva, len) = h.export;
    if len < 40 || !inside(rva, 40, h.size) {
        return None;
    }
    let mut dir = [0u8; 40];
    if !mem.read(base.checked_add(u64::from(rva))?, &mut dir) {
        return None;
    }
    read_name(mem, base, h.size, u32_at(&dir, 12), MAX_NAME_READ as u32)
}

/// The PDB file name of the first CodeView (`RSDS`) debug record.
fn pdb_name(mem: &mut impl GuestMemory, base: u64, h: &Headers) -> Option<[u8; NAME_MAX + 1]> {
    let (rva, len) = h.debug;
    if !inside(rva, len, h.size) {
        return None;
    }
    let entries = (len / 28).min(MAX_DEBUG_ENTRIES);
    for i in 0..entries {
        let mut e = [0u8; 28];
        let va = base.checked_add(u64::from(rva + 28 * i))?;
        if !mem.read(va, &mut e) {
            return None;
        }
        if u32_at(&e, 12) != DEBUG_TYPE_CODEVIEW {
            continue;
        }
        let (data, data_len) = (u32_at(&e, 20), u32_at(&e, 16));
        // "RSDS", GUID, age, then the path.
        if data_len <= 24 || !inside(data, data_len, h.size) {
            return None;
        }
        let mut sig = [0u8; 4];
        if !mem.read(base.checked_add(u64::from(data))?, &mut sig) || sig != *b"RSDS" {
            return None;
        }
        return read_name(mem, base, h.size, data + 24, data_len - 24);
    }
    None
}

/// Finds the image holding `pc`: from `pc`'s page down, at most `max_pages`
/// pages, the first page starting with an `MZ` header whose `e_lfanew`
/// leads to `PE\0\0` and whose `SizeOfImage` covers `pc`. Pages that cannot
/// be read are skipped. A candidate that does not cover `pc` is passed over
/// (an image embedded in another's data is not where `pc` is).
pub fn find_image(mem: &mut impl GuestMemory, pc: u64, max_pages: u32) -> Option<Image> {
    let first = pc & !(PAGE_SIZE - 1);
    for i in 0..u64::from(max_pages) {
        let Some(base) = first.checked_sub(i * PAGE_SIZE) else {
            break;
        };
        let mut mz = [0u8; 2];
        if !mem.read(base, &mut mz) || mz != *b"MZ" {
            continue;
        }
        let Some(h) = headers(mem, base) else {
            continue;
        };
        if pc - base >= u64::from(h.size) {
            continue;
        }
        let name = export_name(mem, base, &h)
            .or_else(|| pdb_name(mem, base, &h))
            .unwrap_or([0; NAME_MAX + 1]);
        return Some(Image {
            base,
            size: h.size,
            checksum: h.checksum,
            timestamp: h.timestamp,
            name,
        });
    }
    None
}
