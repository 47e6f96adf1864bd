// SPDX-License-Identifier: GPL-2.0

//! Open addressing over a fixed slice, for the module's tables that may
//! not allocate after load ([`crate::vms`], [`crate::pins`]): a slot's
//! home from its key, and deletion by backward shift, so that no probe
//! stops early at a freed slot. Key 0 marks a free slot.

/// A slot of such a table.
pub trait Slot: Copy {
    /// Its key; 0 if it is free.
    fn key(&self) -> u64;
}

/// Where `key` starts its probe in `len` slots: a multiplicative hash (the
/// kernel's `hash_64`), so that addresses and ids spread over the slots.
pub fn home(key: u64, len: usize) -> usize {
    let h = key.wrapping_mul(0x61c8_8646_80b5_83eb) >> 32;
    (h as usize) % len.max(1)
}

/// Frees slot `hole` of `slots`, moving back each following entry whose
/// probe passed it; `free` is a free slot. Bounded by the slice.
pub fn remove<T: Slot>(slots: &mut [T], mut hole: usize, free: T) {
    let len = slots.len();
    let mut i = hole;
    for _ in 0..len {
        i = (i + 1) % len;
        let Some(&slot) = slots.get(i) else {
            return;
        };
        if slot.key() == 0 {
            break;
        }
        let home = home(slot.key(), len);
        // Whether `home` lies cyclically in (hole, i]: then the entry
        // stays where it is.
        let stays = if hole <= i {
            hole < home && home <= i
        } else {
            hole < home || home <= i
        };
        if !stays {
            if let Some(h) = slots.get_mut(hole) {
                *h = slot;
            }
            hole = i;
        }
    }
    if let Some(h) = slots.get_mut(hole) {
        *h = free;
    }
}
