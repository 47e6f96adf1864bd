// SPDX-License-Identifier: GPL-2.0
//! Image attribution (`rust/pe.rs`) on real PE files built by MinGW-w64,
//! checked against `x86_64-w64-mingw32-objdump -p`, and on random mutations
//! of their headers (no panic, bounded reads).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use msrguard_core::pe::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const CC: &str = "x86_64-w64-mingw32-gcc";
const OBJDUMP: &str = "x86_64-w64-mingw32-objdump";
/// Where the tests "load" images: a Windows kernel-like address.
const BASE: u64 = 0xffff_f806_1234_0000;

fn have_mingw() -> bool {
    let ok = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(CC) && ok(OBJDUMP) {
        return true;
    }
    eprintln!("SKIP: {CC}/{OBJDUMP} not installed (Debian gcc-mingw-w64-x86-64; scripts/setup.sh installs it)");
    false
}

fn probe_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../selftests/pe/probe.c")
}

fn out_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msrguard-pe-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds a DLL from `source` with MinGW-w64, optionally with a PDB (so a
/// CodeView record), and returns its path.
fn build_dll(source: &Path, dir: &Path, name: &str, pdb: Option<&Path>) -> PathBuf {
    build_image(source, dir, name, pdb, &["-shared", "-Wl,--entry=0"])
}

/// Builds a PE image of `kind` (`-shared` for a DLL, else an executable).
fn build_image(
    source: &Path,
    dir: &Path,
    name: &str,
    pdb: Option<&Path>,
    kind: &[&str],
) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new(CC);
    cmd.args(kind);
    cmd.args(["-O2", "-nostdlib", "-Wl,--insert-timestamp", "-o"])
        .arg(&out)
        .arg(source);
    if let Some(pdb) = pdb {
        cmd.arg(format!("-Wl,--pdb={}", pdb.display()));
    }
    let st = cmd.status().expect("run MinGW gcc");
    assert!(st.success(), "MinGW build of {name} failed");
    out
}

/// What objdump says about a PE file.
#[derive(Debug, Default)]
struct Objdump {
    time: String,
    checksum: u32,
    size_of_image: u32,
    export_name: Option<String>,
    pdb: Option<String>,
}

fn objdump(path: &Path) -> Objdump {
    let out = Command::new(OBJDUMP)
        .env("TZ", "UTC")
        .arg("-p")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut o = Objdump::default();
    let mut in_exports = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Time/Date\t") {
            o.time = line["Time/Date".len()..].trim().to_string();
        } else if line.starts_with("CheckSum") {
            o.checksum = u32::from_str_radix(fields[1], 16).unwrap();
        } else if line.starts_with("SizeOfImage") {
            o.size_of_image = u32::from_str_radix(fields[1], 16).unwrap();
        } else if line.starts_with("The Export Tables") {
            in_exports = true;
        } else if in_exports && line.starts_with("Name ") && fields.len() == 3 {
            o.export_name = Some(fields[2].to_string());
        } else if let Some(p) = line.find(" pdb ") {
            o.pdb = Some(line[p + 5..].trim_end_matches(')').to_string());
        }
    }
    o
}

/// ctime()-style UTC time, as objdump prints TimeDateStamp.
fn ctime(t: u32) -> String {
    let days = i64::from(t) / 86400;
    let secs = i64::from(t) % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m as usize - 1];
    format!(
        "{wd} {mon} {d:2} {:02}:{:02}:{:02} {y}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A guest's virtual memory: pages mapped or not, reads counted.
struct Mem {
    base: u64,
    bytes: Vec<u8>,
    mapped: Vec<bool>,
    reads: u64,
}

impl GuestMemory for Mem {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> bool {
        self.reads += 1;
        assert!(buf.len() <= MAX_NAME_READ, "read of {} bytes", buf.len());
        let Some(off) = va.checked_sub(self.base) else {
            return false;
        };
        let Some(end) = off.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.bytes.len() as u64 {
            return false;
        }
        let (off, end) = (off as usize, end as usize);
        if buf.is_empty() || !(off / 4096..=(end - 1) / 4096).all(|p| self.mapped[p]) {
            return false;
        }
        buf.copy_from_slice(&self.bytes[off..end]);
        true
    }
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

/// Loads a PE file as Windows' loader lays it out: headers, then each
/// section at its VirtualAddress; pages no section covers stay unmapped.
/// `extra_pages` mapped zero pages follow the image.
fn load(file: &[u8], base: u64, extra_pages: usize) -> Mem {
    let lfanew = le32(file, 0x3c) as usize;
    let nsect = le16(file, lfanew + 6) as usize;
    let opt_size = le16(file, lfanew + 20) as usize;
    let opt = lfanew + 24;
    let size = le32(file, opt + 56) as usize;
    let hdrs = le32(file, opt + 60) as usize;
    let pages = size.div_ceil(4096) + extra_pages;
    let mut m = Mem {
        base,
        bytes: vec![0; pages * 4096],
        mapped: vec![false; pages],
        reads: 0,
    };
    m.bytes[..hdrs].copy_from_slice(&file[..hdrs]);
    m.mapped[0] = true;
    for s in 0..nsect {
        let sh = opt + opt_size + 40 * s;
        let (vsize, va, raw_size, raw) = (
            le32(file, sh + 8) as usize,
            le32(file, sh + 12) as usize,
            le32(file, sh + 16) as usize,
            le32(file, sh + 20) as usize,
        );
        let n = raw_size.min(vsize);
        m.bytes[va..va + n].copy_from_slice(&file[raw..raw + n]);
        for p in va / 4096..(va + vsize.max(1)).div_ceil(4096) {
            m.mapped[p] = true;
        }
    }
    for p in size.div_ceil(4096)..pages {
        m.mapped[p] = true;
    }
    m
}

fn name_of(img: &Image) -> String {
    String::from_utf8(img.name_bytes().to_vec()).unwrap()
}

#[test]
fn mingw_dll_with_exports_matches_objdump() {
    if !have_mingw() {
        return;
    }
    let dir = out_dir("exports");
    let dll = build_dll(
        &probe_source(),
        &dir,
        "msrguard_probe.dll",
        Some(&dir.join("probe.pdb")),
    );
    let file = std::fs::read(&dll).unwrap();
    let od = objdump(&dll);
    assert_eq!(
        od.export_name.as_deref(),
        Some("msrguard_probe.dll"),
        "{od:?}"
    );
    let mut mem = load(&file, BASE, 0);
    // Every mapped page's first and last byte attributes to the image.
    for page in 0..mem.mapped.len() {
        if !mem.mapped[page] {
            continue;
        }
        for pc in [BASE + page as u64 * 4096, BASE + page as u64 * 4096 + 4095] {
            let img =
                find_image(&mut mem, pc, 4096).unwrap_or_else(|| panic!("no image for {pc:#x}"));
            assert_eq!(img.base, BASE);
            assert_eq!(img.size, od.size_of_image);
            assert_eq!(img.checksum, od.checksum);
            assert_ne!(img.checksum, 0, "ld computes CheckSum");
            assert_eq!(ctime(img.timestamp), od.time);
            assert_eq!(name_of(&img), "msrguard_probe.dll");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn mingw_image_without_exports_is_named_by_its_pdb() {
    if !have_mingw() {
        return;
    }
    let dir = out_dir("pdb");
    let src = dir.join("noexport.c");
    std::fs::write(
        &src,
        "void f(void) { __asm__ volatile(\"wrmsr\" : : \"c\"(0x79), \"a\"(0), \"d\"(0)); }\n",
    )
    .unwrap();
    // A full path in the record: the name is its last component.
    let pdb = dir.join("sub").join("no_exports_here.pdb");
    std::fs::create_dir_all(pdb.parent().unwrap()).unwrap();
    // An executable (as most drivers): no export directory.
    let exe = ["-Wl,--entry=f"];
    let dll = build_image(&src, &dir, "noexport.exe", Some(&pdb), &exe);
    let file = std::fs::read(&dll).unwrap();
    let od = objdump(&dll);
    assert_eq!(od.export_name, None, "{od:?}");
    let pdb_path = od.pdb.clone().expect("objdump shows the CodeView record");
    let base_name = pdb_path.rsplit(['/', '\\']).next().unwrap();
    assert_eq!(base_name, "no_exports_here.pdb");
    let mut mem = load(&file, BASE, 0);
    let img = find_image(&mut mem, BASE + 0x1000, 4096).unwrap();
    assert_eq!(
        (img.checksum, ctime(img.timestamp)),
        (od.checksum, od.time.clone())
    );
    assert_eq!(name_of(&img), base_name);

    // Neither exports nor a PDB: the fields, with an empty name.
    let dll = build_image(&src, &dir, "anonymous.exe", None, &exe);
    let od = objdump(&dll);
    let mut mem = load(&std::fs::read(&dll).unwrap(), BASE, 0);
    let img = find_image(&mut mem, BASE + 0x1000, 4096).unwrap();
    assert_eq!(
        (img.base, img.checksum, ctime(img.timestamp)),
        (BASE, od.checksum, od.time)
    );
    assert_eq!(name_of(&img), "");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn outside_unmapped_header_and_scan_bound() {
    if !have_mingw() {
        return;
    }
    let dir = out_dir("outside");
    let dll = build_dll(&probe_source(), &dir, "msrguard_probe.dll", None);
    let file = std::fs::read(&dll).unwrap();
    let size = u64::from(objdump(&dll).size_of_image);
    let mut mem = load(&file, BASE, 4);
    // Past the image's end (the pages after it are mapped, but not the image).
    assert_eq!(find_image(&mut mem, BASE + size + 0x10, 4096), None);
    // Below it: nothing mapped.
    assert_eq!(find_image(&mut mem, BASE - 0x10, 4096), None);
    // The scan stops after max_pages pages: the header is 2 pages down.
    assert!(find_image(&mut mem, BASE + 0x2000, 3).is_some());
    mem.reads = 0;
    assert_eq!(find_image(&mut mem, BASE + 0x2000, 2), None);
    assert!(mem.reads <= max_reads(2), "{} reads", mem.reads);
    // The header page unmapped: no image.
    mem.mapped[0] = false;
    assert_eq!(find_image(&mut mem, BASE + 0x1000, 4096), None);
    std::fs::remove_dir_all(dir).ok();
}

/// A minimal PE32 image, built by hand: MinGW's i686 compiler is another
/// package, and this covers the 32-bit optional header layout.
fn pe32(name: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 0x3000];
    f[0..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    f[0x80..0x84].copy_from_slice(b"PE\0\0");
    let fh = 0x84;
    f[fh..fh + 2].copy_from_slice(&0x14cu16.to_le_bytes());
    f[fh + 4..fh + 8].copy_from_slice(&0x5a5a_1234u32.to_le_bytes());
    f[fh + 16..fh + 18].copy_from_slice(&224u16.to_le_bytes());
    let opt = fh + 20;
    f[opt..opt + 2].copy_from_slice(&0x10bu16.to_le_bytes());
    f[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes());
    f[opt + 60..opt + 64].copy_from_slice(&0x400u32.to_le_bytes());
    f[opt + 64..opt + 68].copy_from_slice(&0x00c0_ffee_u32.to_le_bytes());
    f[opt + 92..opt + 96].copy_from_slice(&16u32.to_le_bytes());
    // Export directory at 0x2000, its name at 0x2040.
    f[opt + 96..opt + 100].copy_from_slice(&0x2000u32.to_le_bytes());
    f[opt + 100..opt + 104].copy_from_slice(&40u32.to_le_bytes());
    f[0x2000 + 12..0x2000 + 16].copy_from_slice(&0x2040u32.to_le_bytes());
    f[0x2040..0x2040 + name.len()].copy_from_slice(name);
    f
}

fn flat(bytes: Vec<u8>, base: u64) -> Mem {
    let pages = bytes.len().div_ceil(4096);
    Mem {
        base,
        bytes,
        mapped: vec![true; pages],
        reads: 0,
    }
}

#[test]
fn pe32_and_names() {
    let mut mem = flat(pe32(b"hal32.dll\0"), 0x8040_0000);
    let img = find_image(&mut mem, 0x8040_1234, 16).unwrap();
    assert_eq!(
        (img.base, img.size, img.checksum, img.timestamp),
        (0x8040_0000, 0x3000, 0xc0ffee, 0x5a5a_1234)
    );
    assert_eq!(name_of(&img), "hal32.dll");
    // No NUL: no name, the other fields stay.
    let mut mem = flat(pe32(&[b'a'; 0xfc0]), 0x8040_0000);
    let img = find_image(&mut mem, 0x8040_1234, 16).unwrap();
    assert_eq!((name_of(&img).as_str(), img.checksum), ("", 0x00c0_ffee));
    // A long name is truncated; a control character is refused.
    let mut long = [b'x'; 100].to_vec();
    long.push(0);
    let mut mem = flat(pe32(&long), 0x8040_0000);
    assert_eq!(
        name_of(&find_image(&mut mem, 0x8040_1234, 16).unwrap()),
        "x".repeat(NAME_MAX)
    );
    let mut mem = flat(pe32(b"bad\x1b[31m.sys\0"), 0x8040_0000);
    assert_eq!(name_of(&find_image(&mut mem, 0x8040_1234, 16).unwrap()), "");

    // No export directory, a CodeView record with a Windows path.
    let mut f = pe32(b"\0");
    let opt = 0x84 + 20;
    f[opt + 96..opt + 104].fill(0);
    f[opt + 96 + 48..opt + 100 + 48].copy_from_slice(&0x2100u32.to_le_bytes());
    f[opt + 100 + 48..opt + 104 + 48].copy_from_slice(&56u32.to_le_bytes());
    let path = b"C:\\build\\obj\\netfoo.pdb\0";
    // Entry 0: not CodeView; entry 1: CodeView.
    f[0x2100 + 12..0x2100 + 16].copy_from_slice(&1u32.to_le_bytes());
    let e = 0x2100 + 28;
    f[e + 12..e + 16].copy_from_slice(&2u32.to_le_bytes());
    f[e + 16..e + 20].copy_from_slice(&(24 + path.len() as u32).to_le_bytes());
    f[e + 20..e + 24].copy_from_slice(&0x2200u32.to_le_bytes());
    f[0x2200..0x2204].copy_from_slice(b"RSDS");
    f[0x2200 + 24..0x2200 + 24 + path.len()].copy_from_slice(path);
    let mut mem = flat(f.clone(), 0x8040_0000);
    assert_eq!(
        name_of(&find_image(&mut mem, 0x8040_2fff, 16).unwrap()),
        "netfoo.pdb"
    );
    // Another signature (NB10): no name.
    f[0x2200..0x2204].copy_from_slice(b"NB10");
    let mut mem = flat(f, 0x8040_0000);
    assert_eq!(name_of(&find_image(&mut mem, 0x8040_2fff, 16).unwrap()), "");
}

#[test]
fn a_header_made_to_maximise_the_scan_is_bounded() {
    // Every page starts with a valid-looking PE header of one page: none
    // covers pc, which is the top page + 1.
    let one = {
        let mut p = pe32(b"x\0");
        p.truncate(4096);
        p[0x84 + 20 + 56..0x84 + 20 + 60].copy_from_slice(&0x1000u32.to_le_bytes());
        p[0x84 + 20 + 96..0x84 + 20 + 104].fill(0);
        p
    };
    let n = 64;
    let mut bytes = Vec::new();
    for _ in 0..n {
        bytes.extend_from_slice(&one);
    }
    bytes.extend_from_slice(&[0u8; 4096]);
    let mut mem = flat(bytes, 0x10_0000);
    let pc = 0x10_0000 + n as u64 * 4096 + 8;
    assert_eq!(find_image(&mut mem, pc, n as u32 + 1), None);
    assert!(mem.reads <= max_reads(n as u32 + 1), "{} reads", mem.reads);
    assert!(
        mem.reads >= u64::from(READS_PER_PAGE) * n as u64,
        "the scan did look at every page"
    );
    // pc near 0: the scan stops at address 0.
    let mut mem = flat(vec![0; 4096], 0);
    assert_eq!(find_image(&mut mem, 0x10, 4096), None);
    assert_eq!(mem.reads, 1);
}

fn mingw_image() -> Option<Vec<u8>> {
    static IMAGE: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if !have_mingw() {
                return None;
            }
            let dir = out_dir("fuzz");
            let dll = build_dll(
                &probe_source(),
                &dir,
                "msrguard_probe.dll",
                Some(&dir.join("probe.pdb")),
            );
            let file = std::fs::read(&dll).unwrap();
            std::fs::remove_dir_all(dir).ok();
            Some(file)
        })
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        // Next to this file, where the regressions are committed (the
        // default would look for them relative to a source root it guesses).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/pe.proptest-regressions"
        ))),
        ..ProptestConfig::default()
    })]

    /// Random byte mutations of a real DLL's headers, export and debug
    /// data: never a panic, never more reads than the bound, and a result
    /// only if it is consistent.
    #[test]
    fn mutated_headers(
        muts in proptest::collection::vec(
            // Mostly the headers, the debug and export data (where the
            // probe DLL has them), sometimes anywhere.
            (prop_oneof![0usize..0x400, 0x3000usize..0x3060, 0x6000usize..0x6060, 0usize..0x9000], any::<u8>()),
            1..24,
        ),
        pc_off in 0u64..0x9000,
        max_pages in 1u32..16,
    ) {
        let Some(file) = mingw_image() else { return Ok(()); };
        let mut mem = load(&file, BASE, 1);
        let len = mem.bytes.len();
        for (off, b) in muts {
            mem.bytes[off % len] = b;
        }
        let pc = BASE + pc_off;
        let got = find_image(&mut mem, pc, max_pages);
        prop_assert!(mem.reads <= max_reads(max_pages), "{} reads", mem.reads);
        if let Some(img) = got {
            prop_assert_eq!(img.base % PAGE_SIZE, 0);
            prop_assert!(img.base <= pc && pc - img.base < u64::from(img.size));
            prop_assert!(img.name_bytes().iter().all(|b| (0x20..0x7f).contains(b)));
        }
    }
}
