// SPDX-License-Identifier: GPL-2.0

//! The compiler's reading on small C files: what a switch contributes, and
//! how a KVM change fails.

use std::path::Path;

use clang::{Clang, Index};

use super::unit::Unit;
use super::{read_switches, ExtractError, Reading, Role, Source, LIBCLANG};

const HANDLER: &str = r#"
#define MSR_A 0x10
#define MSR_B 0x20
#define MSR_C 0x2f
#define MSR_HOST 0x30
#define MSR_BOTH 0x31
#define MSR_D (MSR_A + 2 * 0x40)
#define MSR_E 0x40
#define MSR_NEVER 0x50
struct msr_data { unsigned int index; int host_initiated; unsigned long long data; };

int kvm_get_msr_common(void *vcpu, struct msr_data *msr_info)
{
	switch (msr_info->index) {
	case MSR_A:	/* case MSR_IN_COMMENT: */
	case MSR_B ... MSR_C:
		msr_info->data = 0;
		break;
	case MSR_HOST:
		if (!msr_info->host_initiated)
			return 1;
		/* fallthrough */
	case MSR_D: {
		switch (msr_info->data & 3) {
		case 1:
			break;
		}
		break;
	}
	case MSR_BOTH:
		if (0 || !msr_info->host_initiated)
			return 1;
		break;
#ifdef CONFIG_X86_64
	case MSR_E:
#endif
#if 0
	case MSR_NEVER:
#endif
	default:
		return 1;
	}
	return 0;
}

static int other(unsigned int msr) { return msr; }
"#;

fn with_unit(text: &str, f: impl FnOnce(&Unit<'_>)) -> Result<(), ExtractError> {
    let _one = LIBCLANG.lock().unwrap_or_else(|e| e.into_inner());
    let clang = Clang::new().expect("libclang (install libclang-19-dev or set LIBCLANG_PATH)");
    let index = Index::new(&clang, false, false);
    let flags = ["-std=gnu11".to_string(), "-DCONFIG_X86_64=1".to_string()];
    let u = Unit::from_text(&index, "t.c", Path::new("/nonexistent/t.c"), text, &flags)?;
    f(&u);
    Ok(())
}

fn read(text: &str, functions: &'static [(&'static str, Role)]) -> Result<Reading, ExtractError> {
    let src = Source {
        file: "t.c",
        option: None,
        functions,
    };
    let mut r = Reading::default();
    let mut res = Ok(());
    with_unit(text, |u| res = read_switches(u, &src, &mut r))?;
    res.map(|()| r)
}

fn spans(v: &[super::KvmRange]) -> Vec<(u32, u32)> {
    v.iter().map(|k| (k.first, k.last)).collect()
}

#[test]
fn labels_come_back_evaluated_with_if_resolved() {
    let r = read(HANDLER, &[("kvm_get_msr_common", Role::Handles)]).unwrap();
    // MSR_HOST and MSR_BOTH refuse guests: dropped. MSR_D is an expression;
    // MSR_E is in (CONFIG_X86_64), MSR_NEVER out (#if 0); the nested switch
    // on data is not an MSR switch.
    assert_eq!(
        spans(&r.out.ranges),
        [(0x10, 0x10), (0x20, 0x2f), (0x90, 0x90), (0x40, 0x40)]
    );
}

#[test]
fn a_gate_keeps_what_it_refuses_to_guests() {
    let r = read(HANDLER, &[("kvm_get_msr_common", Role::Handles)]).unwrap();
    assert!(r.host_read.is_empty());
    let text = HANDLER.replace("kvm_get_msr_common", super::GATE_READ);
    let r = read(&text, &[(super::GATE_READ, Role::Handles)]).unwrap();
    assert_eq!(spans(&r.host_read), [(0x30, 0x30), (0x31, 0x31)]);
}

#[test]
fn an_unknown_switch_is_a_handler_added() {
    let text = format!("{HANDLER}\nint new_helper(unsigned int msr) {{ switch (msr) {{ case MSR_A: return 1; }} return 0; }}\n");
    let e = read(&text, &[("kvm_get_msr_common", Role::Handles)])
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("handler added: new_helper() in t.c switches on the MSR index `msr`"),
        "{e}"
    );
}

#[test]
fn a_handler_gone_is_a_handler_moved() {
    let e = read(
        HANDLER,
        &[
            ("kvm_get_msr_common", Role::Handles),
            ("kvm_set_msr_common", Role::Handles),
        ],
    )
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .starts_with("handler moved: kvm_set_msr_common() is no longer in t.c"),
        "{e}"
    );
}

#[test]
fn helpers_and_functions_not_counted_add_nothing() {
    let r = read(HANDLER, &[("kvm_get_msr_common", Role::Within("a test"))]).unwrap();
    assert!(r.out.ranges.is_empty());
    assert_eq!(r.helpers.len(), 6, "refused labels are a helper's too");
    let r = read(HANDLER, &[("kvm_get_msr_common", Role::Not("a test"))]).unwrap();
    assert!(r.out.ranges.is_empty() && r.helpers.is_empty());
    assert!(
        r.out.notes[0].contains("not counted: a test"),
        "{:?}",
        r.out.notes
    );
}

#[test]
fn code_the_compiler_rejects_is_an_error_not_a_guess() {
    // A label that is not a constant (say, after a header changed under
    // it): clang's error, with its place, instead of a smaller set.
    let text = HANDLER.replace("case MSR_A:", "case MSR_A: case MSR_UNDEFINED:");
    let e = read(&text, &[("kvm_get_msr_common", Role::Handles)])
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("t.c:15:19: error: use of undeclared identifier 'MSR_UNDEFINED'"),
        "{e}"
    );
}

#[test]
fn a_label_broken_in_a_header_fails_the_file() {
    // clang drops a case whose macro breaks in a header, reporting the error
    // there: any error anywhere fails the file, or the set would shrink.
    let dir = std::env::temp_dir().join(format!("msrguard-kvm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let header = dir.join("msr.h");
    std::fs::write(&header, "#define MSR_F (0x60 + RENAMED_HELPER)\n").unwrap();
    let text = format!(
        "#include \"{}\"\n{}",
        header.display(),
        HANDLER.replace("case MSR_A:", "case MSR_A: case MSR_F:")
    );
    let e = read(&text, &[("kvm_get_msr_common", Role::Handles)])
        .err()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        e.to_string()
            .contains("msr.h:1:23: error: use of undeclared identifier 'RENAMED_HELPER'"),
        "{e}"
    );
}
