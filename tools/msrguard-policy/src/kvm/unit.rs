// SPDX-License-Identifier: GPL-2.0

//! A kernel source file as the compiler reads it: libclang parses it with the
//! tree's configuration and include paths, so `#if` is resolved, macros are
//! expanded and constant expressions come back evaluated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clang::diagnostic::Severity;
use clang::source::SourceRange;
use clang::{
    Entity, EntityKind, EntityVisitResult, EvaluationResult, Index, TranslationUnit, Unsaved,
};

use super::ExtractError;
use crate::kernel_tree;

/// KVM options whose sources the extraction reads even where the tree's
/// configuration leaves them out: the policy covers every KVM a host may
/// run, so the set is the upper bound over these options (a distribution
/// kernel builds them; a tree that does not still gets a policy that works on
/// one that does).
pub(super) const FORCED_OPTIONS: &[&str] = &["CONFIG_KVM_HYPERV", "CONFIG_KVM_AMD_SEV"];

/// A configured kernel tree: where its headers are and what its `.config`
/// enables.
pub(super) struct Tree {
    pub(super) kdir: PathBuf,
    config: BTreeMap<String, String>,
    /// The forced options the configuration leaves out, and what each
    /// selects in `arch/x86/kvm/Kconfig` (so that the headers agree).
    forced: Vec<String>,
}

impl Tree {
    /// Opens `kdir`, which must be configured (`make olddefconfig` and
    /// `make prepare`, or a build, have run there).
    pub(super) fn open(kdir: &Path) -> Result<Self, ExtractError> {
        for needed in [".config", "include/generated/autoconf.h"] {
            if !kdir.join(needed).is_file() {
                return Err(ExtractError::NotConfigured {
                    kdir: kdir.to_path_buf(),
                    missing: needed.to_string(),
                });
            }
        }
        let path = kdir.join(".config");
        let text = std::fs::read_to_string(&path).map_err(|source| ExtractError::Io {
            path: path.clone(),
            source,
        })?;
        let config = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("CONFIG_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut tree = Tree {
            kdir: kdir.to_path_buf(),
            config,
            forced: Vec::new(),
        };
        let kconfig = kdir.join("arch/x86/kvm/Kconfig");
        let kconfig = std::fs::read_to_string(&kconfig).map_err(|source| ExtractError::Io {
            path: kconfig.clone(),
            source,
        })?;
        for option in FORCED_OPTIONS {
            if tree.enabled(option) {
                continue;
            }
            let symbol = option.trim_start_matches("CONFIG_");
            let block = kconfig
                .split("\nconfig ")
                .find(|b| b.lines().next().map(str::trim) == Some(symbol))
                .ok_or_else(|| ExtractError::Shape {
                    file: "arch/x86/kvm/Kconfig".to_string(),
                    what: format!("no `config {symbol}`"),
                })?;
            tree.forced.push(option.to_string());
            for line in block.lines() {
                if let Some(selected) = line.trim().strip_prefix("select ") {
                    let selected = selected.split_whitespace().next().unwrap_or_default();
                    tree.forced.push(format!("CONFIG_{selected}"));
                }
            }
        }
        Ok(tree)
    }

    /// Whether the extraction reads code behind `option`: the tree's
    /// `.config` enables it, or it is forced.
    pub(super) fn reads(&self, option: &str) -> bool {
        self.enabled(option) || FORCED_OPTIONS.contains(&option)
    }

    /// Whether the tree's `.config` sets `option` to `y` or `m`.
    pub(super) fn enabled(&self, option: &str) -> bool {
        matches!(self.config.get(option).map(String::as_str), Some("y" | "m"))
    }

    /// The compiler flags kbuild would use for a file of KVM x86 (the parts
    /// that decide what the code says, not how it is compiled).
    fn flags(&self) -> Vec<String> {
        let mut f: Vec<String> = [
            "-nostdinc",
            "--target=x86_64-linux-gnu",
            "-std=gnu11",
            // As kbuild: the kernel's headers use anonymous struct members.
            "-fms-extensions",
            "-w",
            "-ferror-limit=0",
            // A declaration behind an option the tree leaves out changes
            // nothing read here.
            "-Wno-error=implicit-function-declaration",
            "-D__KERNEL__",
            "-DCC_USING_FENTRY",
            "-DMODULE",
            "-DKBUILD_MODNAME=\"kvm\"",
            "-DKBUILD_BASENAME=\"msrguard_read\"",
            "-D__KBUILD_MODNAME=kmod_kvm",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        f.extend(kernel_tree::include_args(&self.kdir));
        // KVM's own headers, as its Makefile adds them.
        f.push(format!("-I{}/arch/x86/kvm", self.kdir.display()));
        for option in &self.forced {
            f.push(format!("-D{option}=1"));
        }
        f
    }
}

/// A parsed source file. `probes` are macro expressions to evaluate in its
/// context; [`Unit::probe`] returns their values.
pub(super) struct Unit<'i> {
    pub(super) rel: String,
    tu: TranslationUnit<'i>,
}

/// The name of a probe's variable.
fn probe_var(i: usize) -> String {
    format!("msrguard_probe_{i}")
}

impl<'i> Unit<'i> {
    pub(super) fn parse(
        index: &'i Index<'_>,
        tree: &Tree,
        rel: &str,
        probes: &[&str],
    ) -> Result<Self, ExtractError> {
        let path = tree.kdir.join(rel);
        let mut text = std::fs::read_to_string(&path).map_err(|source| ExtractError::Io {
            path: path.clone(),
            source,
        })?;
        for (i, p) in probes.iter().enumerate() {
            text.push_str(&format!(
                "\nstatic const unsigned long long {} = ({p});\n",
                probe_var(i)
            ));
        }
        Self::from_text(index, rel, &path, &text, &tree.flags())
    }

    /// Parses `text` as the file `path` (`rel` in messages) with `flags`.
    pub(super) fn from_text(
        index: &'i Index<'_>,
        rel: &str,
        path: &Path,
        text: &str,
        flags: &[String],
    ) -> Result<Self, ExtractError> {
        let tu = index
            .parser(path)
            .arguments(flags)
            .unsaved(&[Unsaved::new(path, text)])
            .parse()
            .map_err(|e| ExtractError::Parse {
                file: rel.to_string(),
                reason: e.to_string(),
            })?;
        // Any error may have dropped what is read: clang leaves a case label
        // whose macro breaks in a header out of the tree, with the error
        // reported at the header.
        if let Some(d) = tu
            .get_diagnostics()
            .into_iter()
            .find(|d| d.get_severity() >= Severity::Error)
        {
            return Err(ExtractError::Parse {
                file: rel.to_string(),
                reason: d.to_string(),
            });
        }
        Ok(Unit {
            rel: rel.to_string(),
            tu,
        })
    }

    /// The file's path under `arch/x86/kvm/` (or its path in the tree).
    pub(super) fn short(&self) -> &str {
        self.rel.trim_start_matches("arch/x86/kvm/")
    }

    /// The functions defined in the file itself, in source order.
    pub(super) fn functions(&self) -> Vec<Entity<'_>> {
        self.tu
            .get_entity()
            .get_children()
            .into_iter()
            .filter(|e| {
                e.get_kind() == EntityKind::FunctionDecl
                    && e.is_definition()
                    && e.get_location().is_some_and(|l| l.is_in_main_file())
            })
            .collect()
    }

    /// A function defined in the file or in a header it includes.
    pub(super) fn function(&self, name: &str) -> Option<Entity<'_>> {
        self.tu.get_entity().get_children().into_iter().find(|e| {
            e.get_kind() == EntityKind::FunctionDecl
                && e.is_definition()
                && e.get_name().as_deref() == Some(name)
        })
    }

    /// A variable defined in the file itself, at file scope or in a
    /// function.
    pub(super) fn variable(&self, name: &str) -> Option<Entity<'_>> {
        let named = |e: &Entity<'_>| e.get_name().as_deref() == Some(name);
        self.tu
            .get_entity()
            .get_children()
            .into_iter()
            .filter(|e| e.get_location().is_some_and(|l| l.is_in_main_file()))
            .find_map(|e| match e.get_kind() {
                EntityKind::VarDecl if named(&e) => Some(e),
                EntityKind::FunctionDecl => descendants(&e, EntityKind::VarDecl, &[])
                    .into_iter()
                    .find(|v| named(v)),
                _ => None,
            })
    }

    /// The value of the `i`th probe.
    pub(super) fn probe(&self, i: usize, expr: &str) -> Result<u64, ExtractError> {
        let var = self
            .variable(&probe_var(i))
            .ok_or_else(|| self.not_constant(expr))?;
        var.get_children()
            .last()
            .copied()
            .and_then(value)
            .ok_or_else(|| self.not_constant(expr))
    }

    pub(super) fn not_constant(&self, what: &str) -> ExtractError {
        ExtractError::NotConstant {
            file: self.rel.clone(),
            what: what.to_string(),
        }
    }
}

/// The source tokens of `e` joined without spaces: the code as written,
/// whatever its layout. An expression written as a macro is spelled as its
/// name and arguments, where it is expanded.
pub(super) fn spelling(e: &Entity<'_>) -> String {
    let Some(range) = e.get_range() else {
        return String::new();
    };
    let (start, end) = (
        range.get_start().get_expansion_location(),
        range.get_end().get_expansion_location(),
    );
    let Some(file) = start.file else {
        return String::new();
    };
    SourceRange::new(
        file.get_offset_location(start.offset),
        file.get_offset_location(end.offset),
    )
    .tokenize()
    .iter()
    .map(|t| t.get_spelling())
    .collect()
}

/// The value of a constant integer expression, as the compiler evaluates it.
pub(super) fn value(e: Entity<'_>) -> Option<u64> {
    match e.evaluate()? {
        EvaluationResult::UnsignedInteger(v) => Some(v),
        EvaluationResult::SignedInteger(v) => u64::try_from(v).ok(),
        _ => None,
    }
}

/// `e` without implicit conversions and parentheses.
pub(super) fn bare(mut e: Entity<'_>) -> Entity<'_> {
    while matches!(
        e.get_kind(),
        EntityKind::UnexposedExpr | EntityKind::ParenExpr
    ) {
        match e.get_children().as_slice() {
            [only] => e = *only,
            _ => break,
        }
    }
    e
}

/// Every descendant of `e` of `kind`, in source order; `skip` kinds are not
/// descended into.
pub(super) fn descendants<'tu>(
    e: &Entity<'tu>,
    kind: EntityKind,
    skip: &[EntityKind],
) -> Vec<Entity<'tu>> {
    let mut out = Vec::new();
    e.visit_children(|c, _| {
        if c.get_kind() == kind {
            out.push(c);
        }
        if skip.contains(&c.get_kind()) {
            EntityVisitResult::Continue
        } else {
            EntityVisitResult::Recurse
        }
    });
    out
}
