// SPDX-License-Identifier: GPL-2.0

//! `msrguard-lookup-bench [POLICY.toml]`: nanoseconds per policy lookup with
//! the generated table (the module's `policy::lookup`), against a plain
//! binary search over the sorted list of every covered index and a linear
//! scan of the ranges, on the same random indices. Prints figures only.

use std::hint::black_box;
use std::time::Instant;

use msrguard_core::policy::{always_allowed, decide, decide_fast, lookup, Entry};

/// Indices to look up: half near covered MSRs, half anywhere.
fn indices(table: &[Entry], n: usize) -> Vec<u32> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let r = next();
            if i % 2 == 0 {
                let e = &table[(r as usize) % table.len()];
                e.first
                    .wrapping_add((r >> 32) as u32 % (e.last - e.first + 2))
            } else {
                r as u32
            }
        })
        .collect()
}

fn time_ns(indices: &[u32], rounds: usize, mut f: impl FnMut(u32) -> bool) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut hits = 0usize;
        for &i in indices {
            hits += f(black_box(i)) as usize;
        }
        black_box(hits);
        best = best.min(start.elapsed().as_nanos() as f64 / indices.len() as f64);
    }
    best
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "policy/default.toml".to_string());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let entries = match msrguard_policy::parse(&path, &text) {
        Ok(e) => e,
        Err(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            std::process::exit(1);
        }
    };
    let table: Vec<Entry> = entries.iter().map(|e| e.to_abi()).collect();
    let mut flat: Vec<u32> = table.iter().flat_map(|e| e.first..=e.last).collect();
    flat.sort_unstable();
    let idx = indices(&table, 1 << 20);

    let generated = time_ns(&idx, 5, |i| lookup(&table, i).is_some());
    let binary = time_ns(&idx, 5, |i| flat.binary_search(&i).is_ok());
    let linear = time_ns(&idx, 5, |i| {
        table.iter().any(|e| e.first <= i && i <= e.last)
    });
    // The module's decision: bitmaps of always-allowed MSRs, then the table.
    let fast = msrguard_policy::allow_bitmaps_static(&entries);
    let allowed: Vec<u32> = idx
        .iter()
        .copied()
        .filter(|&i| always_allowed(&table, i, false))
        .collect();
    let decide_table = time_ns(&allowed, 5, |i| {
        decide(&table, i, false, 0).reason.is_none()
    });
    let decide_bitmap = time_ns(&allowed, 5, |i| {
        decide_fast(&table, &fast, i, false, 0).reason.is_none()
    });
    // The three must agree before their speeds mean anything.
    for &i in idx.iter().take(1 << 16) {
        let a = lookup(&table, i).is_some();
        assert_eq!(a, flat.binary_search(&i).is_ok());
        assert_eq!(a, table.iter().any(|e| e.first <= i && i <= e.last));
    }
    println!(
        "# bench: policy lookup, {} entries ({} indices), {} random lookups, best of 5",
        table.len(),
        flat.len(),
        idx.len()
    );
    println!("# bench: generated table (ranges, partition_point): {generated:6.2} ns/lookup");
    println!(
        "# bench: plain binary search over every index:       {binary:6.2} ns/lookup (generated/plain {:.2})",
        generated / binary
    );
    println!(
        "# bench: linear scan of the ranges:                  {linear:6.2} ns/lookup (generated/linear {:.2})",
        generated / linear
    );
    println!(
        "# bench: allowed RDMSR decision, {} always-allowed indices: table {decide_table:6.2} ns, bitmaps {decide_bitmap:6.2} ns (bitmaps/table {:.2})",
        allowed.len(),
        decide_bitmap / decide_table
    );
}
