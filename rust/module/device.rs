// SPDX-License-Identifier: GPL-2.0

//! `/dev/msrguard`: the misc device through which userspace reads events.
//!
//! - The node is mode 0600: only root reads events.
//! - `read()` returns whole records only, as many as fit; a buffer smaller
//!   than one record gets `EINVAL`. It blocks until an event arrives unless
//!   the file is `O_NONBLOCK` (`EAGAIN`). A record leaves the queue only once
//!   it was copied out: a buffer that faults on record k gets records
//!   0..k-1 (a short read), or `EFAULT` when k is 0, and loses nothing.
//! - All readers share one queue: each record goes to exactly one read().
//! - `poll`/`epoll` report `EPOLLIN` while records are queued.
//! - `ioctl(MSRGUARD_IOC_STATS)` returns the ABI version and counters;
//!   `ioctl(MSRGUARD_IOC_POLICY_ENTRY)` the compiled-in policy, entry by
//!   entry; `MSRGUARD_IOC_PROFILE` the profiles, `MSRGUARD_IOC_VM` the live
//!   VMs with their profiles, one per call; `MSRGUARD_IOC_SET_PROFILE` gives
//!   a VM another profile (refused once `lock` is set).
//! - An open file holds a reference on the module: `rmmod` fails with
//!   "in use" (`EWOULDBLOCK`) while anyone has the device open.
//!
//! Rust for Linux's `MiscDevice` has no `poll`, so the file operations are
//! written here against the C structure directly.
//!
//! From userspace (see `tools/msrguard` for the full tool):
//!
//! ```c
//! unsigned char rec[144];
//! int fd = open("/dev/msrguard", O_RDONLY);
//! while (read(fd, rec, sizeof(rec)) == sizeof(rec))
//!         printf("msr %#x\n", *(uint32_t *)(rec + 4));
//! ```

use kernel::{
    bindings,
    error::to_result,
    ffi::{
        c_int,
        c_long,
        c_uint,
        c_ulong, //
    },
    fs::File,
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        poll::PollTable,
        CondVar,
        Mutex, //
    },
    time::{
        ClockSource,
        RealTime, //
    },
    transmute::AsBytes,
    types::Opaque,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

use crate::{
    events::EventQueue,
    ffi,
    pin_table::Pins,
    policy_table::{
        PROFILES,
        TABLE, //
    },
    record::{
        fill_nul_padded,
        PolicyEntryWire,
        ProfileWire,
        RecordWire,
        VmInfoWire,
        IOC_POLICY_ENTRY,
        IOC_PROFILE,
        IOC_SET_PROFILE,
        IOC_STATS,
        IOC_VM,
        POLICY_ENTRY_SIZE,
        PROFILE_NAME_LEN,
        PROFILE_SIZE,
        RECORD_SIZE,
        SET_PROFILE_SIZE,
        STATS_SIZE,
        VM_INFO_SIZE, //
    },
    vm_table::Vms,
};

// SAFETY: `RecordWire` is `repr(C)` with only integer and byte-array fields
// and no padding (record.rs asserts every offset and the size), so every
// byte of a value is initialized.
unsafe impl AsBytes for RecordWire {}

/// A reader's turn to copy records out ([`EventDevice::take_turn`]).
///
/// # Invariants
///
/// The device's `reader_busy` is true, set by this turn, until it drops.
struct ReaderTurn<'a>(&'a EventDevice);

impl Drop for ReaderTurn<'_> {
    fn drop(&mut self) {
        *self.0.reader_busy.lock() = false;
        // All: a reader woken alone might leave on a signal, the rest asleep.
        self.0.reader_turn.notify_all();
    }
}

/// Records copied out per read() call at most (bounds the kernel buffer).
const MAX_BATCH: usize = 64;

/// The event queue and the device node that exposes it.
#[pin_data(PinnedDrop)]
pub(crate) struct EventDevice {
    /// Events waiting for readers.
    #[pin]
    pub(crate) events: EventQueue,
    /// Whether a reader is copying records out: readers take turns, so
    /// that peek-copy-commit is atomic per reader. The mutex is held only
    /// to change the flag, never across a copy, so a reader waiting for
    /// its turn sleeps interruptibly behind one stuck in `copy_to_user`
    /// (a userfaultfd page that never comes).
    #[pin]
    reader_busy: Mutex<bool>,
    /// Wakes readers waiting for their turn.
    #[pin]
    reader_turn: CondVar,
    /// The `struct miscdevice`; files find `self` from it.
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    /// Whether `misc` is registered.
    registered: bool,
    /// The VM table and the pin table, set by [`Self::register`]: valid
    /// while registered.
    vms: *const Vms,
    pins: *const Pins,
}

// SAFETY: The C side only touches `misc` through the misc core, which
// serializes registration; `registered`, `vms` and `pins` change only through
// `Pin<&mut Self>`; everything else, the VM and pin tables included, is
// behind locks.
unsafe impl Send for EventDevice {}
// SAFETY: As above: shared access goes through locks.
unsafe impl Sync for EventDevice {}

impl EventDevice {
    /// Allocates the queue; `/dev/msrguard` appears with [`Self::register`].
    pub(crate) fn new(capacity: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            events <- EventQueue::new(capacity),
            reader_busy <- new_mutex!(false, "msrguard_reader_busy"),
            reader_turn <- new_condvar!("msrguard_reader_turn"),
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                let mut raw: bindings::miscdevice = pin_init::zeroed();
                raw.minor = bindings::MISC_DYNAMIC_MINOR as c_int;
                raw.name = c"msrguard".as_char_ptr();
                raw.fops = &FOPS;
                raw.mode = 0o600;
                // SAFETY: The initializer may write to `slot`.
                unsafe { slot.write(raw) };
                Ok::<(), Error>(())
            }),
            registered: false,
            vms: core::ptr::null(),
            pins: core::ptr::null(),
        })
    }

    /// Registers `/dev/msrguard`. Call once, when everything the device
    /// reads from is in place: an open file only pins the module, not its
    /// initialization.
    ///
    /// # Safety
    ///
    /// `vms` and `pins` stay valid until [`Self::deregister`] has returned
    /// and no file of the device is open (an open file holds the module).
    pub(crate) unsafe fn register(self: Pin<&mut Self>, vms: &Vms, pins: &Pins) -> Result {
        // SAFETY: Nothing is moved out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        this.vms = vms;
        this.pins = pins;
        // `misc` is pinned and deregistered (`deregister`, or `drop`) before
        // it is freed.
        // SAFETY: `misc` holds an initialized miscdevice.
        let ret = unsafe { bindings::misc_register(this.misc.get()) };
        to_result(ret)?;
        // INVARIANT: `registered` is true exactly while `misc` is registered.
        this.registered = true;
        Ok(())
    }

    /// Removes `/dev/msrguard`, if registered.
    pub(crate) fn deregister(self: Pin<&mut Self>) {
        // SAFETY: Nothing is moved out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        if this.registered {
            // SAFETY: `misc` is registered (`registered` invariant).
            unsafe { bindings::misc_deregister(this.misc.get()) };
            this.registered = false;
        }
    }

    /// The device behind an open file of `/dev/msrguard`.
    ///
    /// # Safety
    ///
    /// `file` is an open file of this device: `misc_open()` set its private
    /// data to our `struct miscdevice`, which outlives the file (the file
    /// holds a reference on the module that owns it).
    unsafe fn from_file<'a>(file: *mut bindings::file) -> &'a Self {
        // SAFETY: Per the contract, private_data points at `self.misc`.
        let misc = unsafe { (*file).private_data }.cast::<Opaque<bindings::miscdevice>>();
        // SAFETY: `misc` is the `misc` field of an `EventDevice`.
        unsafe { &*kernel::container_of!(misc, EventDevice, misc) }
    }

    /// Waits for this reader's turn to copy records out (`EAGAIN` instead
    /// if `nonblock`); a signal ends the wait (`ERESTARTSYS`).
    fn take_turn(&self, nonblock: bool) -> Result<ReaderTurn<'_>> {
        let mut busy = self.reader_busy.lock();
        while *busy {
            if nonblock {
                return Err(EAGAIN);
            }
            if self.reader_turn.wait_interruptible(&mut busy) {
                return Err(ERESTARTSYS);
            }
        }
        *busy = true;
        Ok(ReaderTurn(self))
    }

    fn read(&self, nonblock: bool, buf: UserPtr, len: usize) -> Result<usize> {
        if len < RECORD_SIZE {
            return Err(EINVAL);
        }
        let want = (len / RECORD_SIZE).min(MAX_BATCH);
        let mut batch = KVec::with_capacity(want, GFP_KERNEL)?;
        for _ in 0..want {
            batch.push(RecordWire::default(), GFP_KERNEL)?;
        }

        loop {
            // Sleep without the reader lock, so other readers (and signals)
            // are never stuck behind a sleeping one.
            if !nonblock {
                self.events.wait_readable()?;
            }
            // Held to copy records out, never while waiting for them; a
            // non-blocking reader does not wait behind another's copy.
            let _turn = self.take_turn(nonblock)?;
            let n = self.events.peek(&mut batch);
            if n == 0 {
                if nonblock {
                    return Err(EAGAIN);
                }
                // Another reader took them: wait again.
                continue;
            }
            let mut writer = UserSlice::new(buf, n * RECORD_SIZE).writer();
            // A copy that faults on record k delivers 0..k and keeps the rest.
            let copied = batch
                .iter()
                .take(n)
                .take_while(|record| writer.write(*record).is_ok())
                .count();
            if copied == 0 {
                self.events.release();
                return Err(EFAULT);
            }
            let now = <RealTime as ClockSource>::ktime_get();
            self.events.commit(copied, u64::try_from(now).unwrap_or(0));
            return Ok(copied * RECORD_SIZE);
        }
    }

    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(arg);
        match cmd {
            IOC_STATS => {
                let mut stats = self.events.stats();
                stats.audit = u32::from(ffi::audit());
                stats.locked = u32::from(ffi::locked());
                UserSlice::new(arg, STATS_SIZE)
                    .writer()
                    .write_slice(&stats.to_bytes())?;
                Ok(0)
            }
            IOC_POLICY_ENTRY => {
                let (mut reader, mut writer) =
                    UserSlice::new(arg, POLICY_ENTRY_SIZE).reader_writer();
                let mut index = [0u8; 4];
                reader.read_slice(&mut index)?;
                let entry = TABLE
                    .get(u32::from_le_bytes(index) as usize)
                    .ok_or(ENOENT)?;
                let mut wire = PolicyEntryWire {
                    first: entry.first,
                    last: entry.last,
                    write_mask: entry.write_mask,
                    read: entry.read as u8,
                    write: entry.write as u8,
                    has_write_mask: entry.has_write_mask,
                    name: [0; 40],
                };
                fill_nul_padded(&mut wire.name, entry.name);
                writer.write_slice(&wire.to_bytes())?;
                Ok(0)
            }
            IOC_PROFILE => {
                let (mut reader, mut writer) = UserSlice::new(arg, PROFILE_SIZE).reader_writer();
                let mut index = [0u8; 4];
                reader.read_slice(&mut index)?;
                let index = u32::from_le_bytes(index);
                let profile = PROFILES.get(index as usize).ok_or(ENOENT)?;
                let mut wire = ProfileWire {
                    index,
                    pins: profile.pins.len() as u32,
                    name: [0; PROFILE_NAME_LEN],
                };
                fill_nul_padded(&mut wire.name, profile.name);
                writer.write_slice(&wire.to_bytes())?;
                Ok(0)
            }
            IOC_VM => {
                let (mut reader, mut writer) = UserSlice::new(arg, VM_INFO_SIZE).reader_writer();
                let mut position = [0u8; 4];
                reader.read_slice(&mut position)?;
                let position = u32::from_le_bytes(position);
                let vm = self.vms().nth(position as usize).ok_or(ENOENT)?;
                let wire = VmInfoWire {
                    position,
                    vm_id: vm.id,
                    vmm_pid: vm.vmm_pid,
                    profile: vm.profile,
                };
                writer.write_slice(&wire.to_bytes())?;
                Ok(0)
            }
            IOC_SET_PROFILE => {
                let mut b = [0u8; SET_PROFILE_SIZE];
                UserSlice::new(arg, SET_PROFILE_SIZE)
                    .reader()
                    .read_slice(&mut b)?;
                let vm_id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if b[5..].iter().any(|&r| r != 0) {
                    return Err(EINVAL);
                }
                // SAFETY: As in `vms`: `pins` is valid while a file is open.
                let pins = unsafe { &*self.pins };
                ffi::set_profile(self.vms(), pins, vm_id, b[4])?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    /// The VM table.
    fn vms(&self) -> &Vms {
        // SAFETY: An ioctl runs on an open file, so the device is
        // registered and `vms` valid (`register`'s contract).
        unsafe { &*self.vms }
    }
}

#[pinned_drop]
impl PinnedDrop for EventDevice {
    fn drop(self: Pin<&mut Self>) {
        self.deregister();
    }
}

/// There is no per-file state; positions are meaningless (a stream).
///
/// # Safety
///
/// Called by the VFS for a file being opened.
unsafe extern "C" fn fop_open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: The VFS passes the inode and file being opened.
    unsafe { bindings::stream_open(inode, file) }
}

/// # Safety
///
/// Called by the VFS for a file of our misc device (see [`EventDevice::from_file`]).
unsafe extern "C" fn fop_read(
    file: *mut bindings::file,
    buf: *mut c_char,
    len: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: A file of our device, per this function's contract.
    let dev = unsafe { EventDevice::from_file(file) };
    // Read under fdget_pos, so no `File` is made here.
    // SAFETY: The file is valid for the call; `f_flags` is a plain field.
    let flags = unsafe { (*file).f_flags };
    let nonblock = flags & bindings::O_NONBLOCK != 0;
    match dev.read(nonblock, UserPtr::from_addr(buf as usize), len) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS for a file of our misc device.
unsafe extern "C" fn fop_poll(
    file: *mut bindings::file,
    table: *mut bindings::poll_table,
) -> bindings::__poll_t {
    // SAFETY: A file of our device, per this function's contract.
    let dev = unsafe { EventDevice::from_file(file) };
    // SAFETY: The file is valid for the call; no fdget_pos region is active.
    let f = unsafe { File::from_raw_file(file) };
    // SAFETY: The VFS passes a null or valid poll table for this call.
    let table = unsafe { PollTable::from_raw(table) };
    table.register_wait(f, dev.events.poll_condvar());
    if dev.events.readable() {
        bindings::POLLIN | bindings::POLLRDNORM
    } else {
        0
    }
}

/// # Safety
///
/// Called by the VFS for a file of our misc device.
unsafe extern "C" fn fop_ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: A file of our device, per this function's contract.
    let dev = unsafe { EventDevice::from_file(file) };
    match dev.ioctl(cmd, arg) {
        Ok(r) => r as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// File operations of `/dev/msrguard`; there is no per-file state to release.
const FOPS: bindings::file_operations = bindings::file_operations {
    owner: kernel::module::this_module::<crate::MsrGuardModule>().as_ptr(),
    open: Some(fop_open),
    read: Some(fop_read),
    poll: Some(fop_poll),
    unlocked_ioctl: Some(fop_ioctl),
    compat_ioctl: bindings::compat_ptr_ioctl,
    llseek: Some(bindings::noop_llseek),
    ..pin_init::zeroed()
};
