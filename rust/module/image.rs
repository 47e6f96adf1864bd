// SPDX-License-Identifier: GPL-2.0

//! Image attribution in the module: [`crate::pe`]'s search over the guest
//! memory reader of the C side (`kvm/guest_memory.c`), which runs it in
//! process context on the vCPU's thread.

use core::ffi::c_void;

use crate::{
    boundary::ImageC,
    boundary_calls::GuestReadFn,
    pe::{
        self,
        GuestMemory,
        NAME_MAX, //
    },
    record::IMAGE_NAME_LEN,
};

// The record's name field holds a name and its NUL.
const _: () = assert!(NAME_MAX + 1 == IMAGE_NAME_LEN);

/// The C reader ([`GuestReadFn`]).
type ReadFn = GuestReadFn;

struct CReader {
    read: ReadFn,
    ctx: *mut c_void,
}

impl GuestMemory for CReader {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> bool {
        let Ok(len) = u32::try_from(buf.len()) else {
            return false;
        };
        // SAFETY: `buf` is valid for writes of `len` bytes; `read` and
        // `ctx` are valid for the call, per `msrguard_rust_find_image`'s
        // contract.
        unsafe { (self.read)(self.ctx, va, buf.as_mut_ptr(), len) }
    }
}

/// Searches for the image holding `pc`, at most `max_pages` pages down
/// ([`pe::find_image`]), and fills `out` if one is found.
///
/// # Safety
///
/// `read` may be called with `ctx` and a buffer of at most
/// [`pe::MAX_NAME_READ`] bytes for the duration of the call; `out` is valid
/// for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn msrguard_rust_find_image(
    pc: u64,
    max_pages: u32,
    read: ReadFn,
    ctx: *mut c_void,
    out: *mut ImageC,
) -> bool {
    let mut mem = CReader { read, ctx };
    let Some(image) = pe::find_image(&mut mem, pc, max_pages) else {
        return false;
    };
    // SAFETY: Valid for writes, per the function's contract.
    let out = unsafe { &mut *out };
    out.base = image.base;
    out.size = image.size;
    out.checksum = image.checksum;
    out.timestamp = image.timestamp;
    out.name = image.name;
    out.pad = 0;
    true
}
