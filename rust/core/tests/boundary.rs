// SPDX-License-Identifier: GPL-2.0
//! The structs the module's C and Rust sides pass each other
//! (`rust/core/boundary.rs`): C gets them from the generator, so these
//! check what the generated header relies on.

use msrguard_core::boundary::{self, AccessC, CStruct, ImageC};
use msrguard_core::record::{COMM_LEN, IMAGE_NAME_LEN};

/// Every byte is a named field (explicit padding): nothing the compiler
/// pads differently on one side, and no uninitialised byte crosses.
#[test]
fn fields_tile_each_struct() {
    for boundary::Described {
        name, fields, size, ..
    } in boundary::ALL
    {
        let mut end = 0;
        for f in fields {
            assert_eq!(f.offset, end, "{name}.{}: a gap before it", f.name);
            end = f.offset + f.size;
        }
        assert_eq!(end, size, "{name}: a gap at the end");
    }
}

#[test]
fn names_are_unique_c_identifiers() {
    let mut structs: Vec<&str> = boundary::ALL.iter().map(|s| s.name).collect();
    structs.sort_unstable();
    structs.dedup();
    assert_eq!(structs.len(), boundary::ALL.len());
    for boundary::Described { name, fields, .. } in boundary::ALL {
        assert!(name.starts_with("msrguard_"), "{name}");
        for f in fields {
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}.{}",
                f.name
            );
        }
    }
}

/// The strings the C side fills with strscpy/memcpy have the record's sizes.
#[test]
fn string_fields_have_the_record_sizes() {
    let field =
        |fields: &[boundary::CField], n: &str| *fields.iter().find(|f| f.name == n).expect("field");
    let comm = field(AccessC::C_FIELDS, "vmm_comm");
    assert_eq!((comm.ctype, comm.len), ("char", COMM_LEN));
    let name = field(AccessC::C_FIELDS, "image_name");
    assert_eq!((name.ctype, name.len), ("char", IMAGE_NAME_LEN));
    let name = field(ImageC::C_FIELDS, "name");
    assert_eq!((name.ctype, name.len), ("char", IMAGE_NAME_LEN));
}
