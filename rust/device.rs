// SPDX-License-Identifier: GPL-2.0

//! `/dev/msrguard`: the misc device through which userspace reads events.
//!
//! The node is created by devtmpfs with mode 0600: only root reads events.

use kernel::{
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
};

/// The registered `/dev/msrguard`; dropping it removes the node.
pub(crate) type Registration = MiscDeviceRegistration<EventReader>;

/// Name of the device node under `/dev`.
const DEVICE_NAME: &CStr = c"msrguard";

/// One open file of `/dev/msrguard`.
pub(crate) struct EventReader;

/// Registers `/dev/msrguard`.
pub(crate) fn register() -> impl PinInit<Registration, Error> {
    MiscDeviceRegistration::register(MiscDeviceOptions { name: DEVICE_NAME })
}

#[vtable]
impl MiscDevice for EventReader {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(EventReader, GFP_KERNEL)?)
    }
}
