// SPDX-License-Identifier: GPL-2.0
//! Choosing a VM's profile (`rust/core/profiles.rs`): by the creating
//! task's cgroup path, by index, and finding a profile's pin rule.

use msrguard_core::pins::PinRule;
use msrguard_core::policy::Entry;
use msrguard_core::profiles::{for_cgroup, get, pin_of, PinEntry, Profile, DEFAULT};

static TABLE: &[Entry] = &[];

const PIN: PinRule = PinRule {
    pin: true,
    set_only: 0,
};

static PROFILES: &[Profile] = &[
    Profile {
        name: "default",
        table: TABLE,
        cgroup_prefixes: &[],
        pins: &[],
    },
    Profile {
        name: "hardened",
        table: TABLE,
        cgroup_prefixes: &["/machine.slice/", "/hardened"],
        pins: &[
            PinEntry {
                msr: 0xc000_0080,
                rule: PinRule {
                    pin: false,
                    set_only: 0x800,
                },
            },
            PinEntry {
                msr: 0xc000_0082,
                rule: PIN,
            },
        ],
    },
    Profile {
        name: "pmu",
        table: TABLE,
        cgroup_prefixes: &["/perf.slice/"],
        pins: &[],
    },
];

#[test]
fn a_vm_gets_the_profile_whose_prefix_its_cgroup_path_starts_with() {
    assert_eq!(
        for_cgroup(PROFILES, b"/machine.slice/machine-qemu-1.scope"),
        1
    );
    assert_eq!(for_cgroup(PROFILES, b"/perf.slice/vm7"), 2);
    // A byte-wise prefix, as the checker compares them.
    assert_eq!(for_cgroup(PROFILES, b"/hardened2/x"), 1);
}

#[test]
fn a_vm_in_no_profiles_cgroup_gets_the_default() {
    assert_eq!(for_cgroup(PROFILES, b"/"), DEFAULT);
    assert_eq!(for_cgroup(PROFILES, b"/machine.slice"), DEFAULT);
    assert_eq!(
        for_cgroup(PROFILES, b"/user.slice/user-0.slice/session-1.scope"),
        DEFAULT
    );
    assert_eq!(for_cgroup(PROFILES, b""), DEFAULT);
}

#[test]
fn an_index_the_module_does_not_have_falls_back_to_the_default() {
    assert_eq!(get(PROFILES, 2).map(|p| p.name), Some("pmu"));
    assert_eq!(get(PROFILES, 200).map(|p| p.name), Some("default"));
}

#[test]
fn a_pin_rule_is_found_with_the_index_of_its_state() {
    let pins = PROFILES[1].pins;
    assert_eq!(pin_of(pins, 0xc000_0082), Some((1, PIN)));
    assert_eq!(
        pin_of(pins, 0xc000_0080).map(|(i, r)| (i, r.set_only)),
        Some((0, 0x800))
    );
    assert_eq!(pin_of(pins, 0xc000_0081), None);
    assert_eq!(pin_of(PROFILES[0].pins, 0xc000_0082), None);
}

static ALLOW_LSTAR: &[Entry] = &[Entry {
    first: 0xc000_0082,
    last: 0xc000_0082,
    name: "MSR_LSTAR",
    read: msrguard_core::policy::Action::Allow,
    write: msrguard_core::policy::Action::Allow,
    write_mask: 0,
    has_write_mask: false,
}];

#[test]
fn a_pinned_msr_stays_intercepted_for_writes_only_in_its_profile() {
    use msrguard_core::profiles::may_pass_through;
    let default = Profile {
        table: ALLOW_LSTAR,
        ..PROFILES[0]
    };
    let hardened = Profile {
        table: ALLOW_LSTAR,
        ..PROFILES[1]
    };
    let both = [default, hardened];
    assert!(may_pass_through(&both, &default, 0xc000_0082, true));
    assert!(!may_pass_through(&both, &hardened, 0xc000_0082, true));
    assert!(may_pass_through(&both, &hardened, 0xc000_0082, false));
    // A profile whose table does not allow it keeps it intercepted.
    let with_third = [default, hardened, PROFILES[2]];
    assert!(!may_pass_through(
        &with_third,
        &PROFILES[2],
        0xc000_0082,
        false
    ));
}

/// An MSR one profile allows and another does not stays intercepted in
/// both: a VM moved between them gets its accesses decided again at once,
/// whether or not KVM recomputes that MSR's intercept (VMX's LBR MSRs).
#[test]
fn an_msr_only_some_profiles_allow_stays_intercepted_in_all() {
    use msrguard_core::profiles::may_pass_through;
    let default = Profile {
        table: TABLE,
        ..PROFILES[0]
    };
    let opens_lstar = Profile {
        name: "tracing",
        table: ALLOW_LSTAR,
        cgroup_prefixes: &[],
        pins: &[],
    };
    let both = [default, opens_lstar];
    for is_write in [false, true] {
        assert!(!may_pass_through(
            &both,
            &opens_lstar,
            0xc000_0082,
            is_write
        ));
        assert!(!may_pass_through(&both, &default, 0xc000_0082, is_write));
    }
    // Alone, the profile that allows it lets KVM pass it through.
    assert!(may_pass_through(
        &[opens_lstar],
        &opens_lstar,
        0xc000_0082,
        true
    ));
}
