// SPDX-License-Identifier: GPL-2.0

//! The images found in guest memory, per VM, and the pages found in none,
//! so that a guest repeating an access from code in no image (a Linux
//! guest) or from one driver does not pay a search of guest memory each
//! time. `core`-only: the module keeps it under a spinlock, the host tests
//! it.
//!
//! - An entry belongs to one [`ImageOwner`]: a VM as one VMM process sees
//!   it, at one guest level (L2's images are not L1's: the same address is
//!   another image).
//! - Entries expire: a VM that unloads or loads a driver, or a new VM that
//!   gets the key of a destroyed one, sees a stale entry at most the
//!   lifetime the caller gives.
//! - A full cache overwrites its oldest entry (a ring); every operation
//!   scans at most [`CACHE_SIZE`] entries.

use core::ops::DerefMut;

use crate::boundary::ImageC;

/// Entries the module keeps.
pub const CACHE_SIZE: usize = 64;

/// The guest page size the "no image here" entries cover.
pub const PAGE_SIZE: u64 = 4096;

/// Whose images an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageOwner {
    /// The VM (the module's key of its `struct kvm`).
    pub vm: u64,
    /// The VMM process.
    pub tgid: u32,
    /// Looked up for a nested guest (L2).
    pub nested: bool,
}

/// What the cache knows of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// This image holds it.
    Image(ImageC),
    /// A search found no image holding its page.
    NoImage,
}

/// One cached answer.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    owner: ImageOwner,
    /// `image` is a page that a search found in no image.
    none: bool,
    /// Valid before this time (monotonic ns); 0 for an unused entry.
    expires_ns: u64,
    image: ImageC,
}

impl Entry {
    /// An unused entry, to fill the storage with.
    pub const UNUSED: Self = Self {
        owner: ImageOwner {
            vm: 0,
            tgid: 0,
            nested: false,
        },
        none: false,
        expires_ns: 0,
        image: ImageC::ZERO,
    };

    fn holds(&self, owner: &ImageOwner, pc: u64, now_ns: u64) -> bool {
        self.owner == *owner
            && now_ns < self.expires_ns
            && pc >= self.image.base
            && pc - self.image.base < u64::from(self.image.size)
    }
}

/// The cache, over storage the caller allocates (`[Entry::UNUSED; N]`).
pub struct ImageCache<S> {
    entries: S,
    /// The entry the next insert overwrites.
    next: usize,
}

impl<S: DerefMut<Target = [Entry]>> ImageCache<S> {
    /// A cache of `entries.len()` entries, all unused.
    pub fn new(mut entries: S) -> Self {
        entries.fill(Entry::UNUSED);
        Self { entries, next: 0 }
    }

    /// What the cache knows of `pc` for `owner` at `now_ns`.
    pub fn lookup(&self, owner: &ImageOwner, pc: u64, now_ns: u64) -> Option<Known> {
        let e = self.entries.iter().find(|e| e.holds(owner, pc, now_ns))?;
        Some(if e.none {
            Known::NoImage
        } else {
            Known::Image(e.image)
        })
    }

    /// Remembers for `ttl_ns` what a search for `pc` found: `image`, or
    /// none (then the page of `pc`). A `ttl_ns` of 0 remembers nothing.
    pub fn insert(
        &mut self,
        owner: ImageOwner,
        pc: u64,
        image: Option<&ImageC>,
        now_ns: u64,
        ttl_ns: u64,
    ) {
        let len = self.entries.len();
        if ttl_ns == 0 || len == 0 {
            return;
        }
        let (image, none) = match image {
            Some(image) => (*image, false),
            None => (
                ImageC {
                    base: pc & !(PAGE_SIZE - 1),
                    size: PAGE_SIZE as u32,
                    ..ImageC::ZERO
                },
                true,
            ),
        };
        if let Some(entry) = self.entries.get_mut(self.next) {
            *entry = Entry {
                owner,
                none,
                expires_ns: now_ns.saturating_add(ttl_ns),
                image,
            };
        }
        self.next = (self.next + 1) % len;
    }
}
