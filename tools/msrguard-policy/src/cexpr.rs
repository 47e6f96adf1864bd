// SPDX-License-Identifier: GPL-2.0

//! Just enough C to read KVM's MSR handlers: comment stripping, `#define`
//! collection, integer constant expressions with macro expansion, function
//! bodies, `switch`/`case` labels and array initializers.
//!
//! It is not a C compiler: it understands the shapes Linux's KVM code uses
//! for MSR indices and says so (an `Err` naming the expression) whenever it
//! meets anything else, so a change in the kernel shows up as an error
//! rather than as a silently smaller MSR set.

use std::collections::HashMap;

/// Removes comments, string and character literals (replaced by `0`) and
/// backslash-newline continuations. Newlines are kept so offsets keep their
/// line.
pub fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && b.get(i + 1) == Some(&b'\n') {
            // Line continuation: drop it, keep the line count with a space.
            out.push(' ');
            i += 2;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push('0');
        } else {
            // Multi-byte UTF-8 sequences only occur in comments and strings
            // in kernel C; copy anything else byte-wise as char.
            out.push(c as char);
            i += 1;
        }
    }
    out
}

/// One `#define`.
#[derive(Clone, Debug)]
pub struct Define {
    /// Parameters of a function-like macro.
    pub params: Option<Vec<String>>,
    /// Replacement text.
    pub body: String,
    /// Where it was defined (for diagnostics).
    pub file: String,
}

/// Every `#define` seen, by name; a name may be defined more than once (in
/// `#ifdef` branches), and evaluation insists the definitions agree.
#[derive(Default, Debug)]
pub struct Defines {
    map: HashMap<String, Vec<Define>>,
}

impl Defines {
    /// Collects the `#define`s of `text` (comments already stripped or not).
    pub fn add_text(&mut self, file: &str, text: &str) {
        let text = strip_comments(text);
        for line in text.lines() {
            let t = line.trim_start();
            let Some(rest) = t.strip_prefix('#') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix("define") else {
                continue;
            };
            if !rest.starts_with([' ', '\t']) {
                continue;
            }
            let rest = rest.trim_start();
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..name_len];
            if name.is_empty() {
                continue;
            }
            let after = &rest[name_len..];
            let (params, body) = if let Some(p) = after.strip_prefix('(') {
                let Some(close) = p.find(')') else { continue };
                let params = p[..close]
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                (Some(params), p[close + 1..].trim().to_string())
            } else {
                (None, after.trim().to_string())
            };
            let defs = self.map.entry(name.to_string()).or_default();
            if !defs.iter().any(|d| d.params == params && d.body == body) {
                defs.push(Define {
                    params,
                    body,
                    file: file.to_string(),
                });
            }
        }
    }

    /// The definitions of `name`.
    pub fn get(&self, name: &str) -> Option<&[Define]> {
        self.map.get(name).map(Vec::as_slice)
    }

    /// Evaluates a C integer constant expression.
    pub fn eval(&self, expr: &str) -> Result<u64, String> {
        let toks = tokenize(expr)?;
        let mut p = Parser {
            defs: self,
            toks: &toks,
            pos: 0,
            depth: 0,
        };
        let v = p.expr().map_err(|e| format!("`{}`: {e}", expr.trim()))?;
        if p.pos != toks.len() {
            return Err(format!(
                "`{}`: unexpected `{}`",
                expr.trim(),
                toks[p.pos].text()
            ));
        }
        Ok(v)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(u64),
    Ident(String),
    Punct(&'static str),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Num(n) => n.to_string(),
            Tok::Ident(s) => s.clone(),
            Tok::Punct(p) => p.to_string(),
        }
    }
}

const PUNCTS: &[&str] = &[
    "...", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "->", "+", "-", "*", "/", "%", "(", ")",
    "<", ">", "&", "|", "^", "~", "!", "?", ":", ",", ".",
];

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let raw = &s[start..i];
            let digits = raw.trim_end_matches(['u', 'U', 'l', 'L']);
            let v = if let Some(h) = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
            {
                u64::from_str_radix(h, 16)
            } else if digits.len() > 1 && digits.starts_with('0') {
                u64::from_str_radix(&digits[1..], 8)
            } else {
                digits.parse()
            };
            out.push(Tok::Num(v.map_err(|_| format!("bad number `{raw}`"))?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(s[start..i].to_string()));
        } else {
            for p in PUNCTS {
                if s[i..].starts_with(p) {
                    out.push(Tok::Punct(p));
                    i += p.len();
                    continue 'outer;
                }
            }
            return Err(format!("unexpected character `{}`", c as char));
        }
    }
    Ok(out)
}

/// Type names a cast may use.
const TYPE_WORDS: &[&str] = &[
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "int", "unsigned", "long", "short",
    "char", "signed", "__u32", "__u64",
];

struct Parser<'a> {
    defs: &'a Defines,
    toks: &'a [Tok],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(format!(
                "expected `{p}`, found {}",
                self.peek()
                    .map_or("the end".to_string(), |t| format!("`{}`", t.text()))
            ))
        }
    }

    fn expr(&mut self) -> Result<u64, String> {
        let c = self.binary(0)?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(if c != 0 { a } else { b });
        }
        Ok(c)
    }

    fn binary(&mut self, min_prec: u8) -> Result<u64, String> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Punct(op)) = self.peek() {
            let op = *op;
            let prec = match op {
                "||" => 1,
                "&&" => 2,
                "|" => 3,
                "^" => 4,
                "&" => 5,
                "==" | "!=" => 6,
                "<" | ">" | "<=" | ">=" => 7,
                "<<" | ">>" => 8,
                "+" | "-" => 9,
                "*" | "/" | "%" => 10,
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec + 1)?;
            lhs = match op {
                "||" => u64::from(lhs != 0 || rhs != 0),
                "&&" => u64::from(lhs != 0 && rhs != 0),
                "|" => lhs | rhs,
                "^" => lhs ^ rhs,
                "&" => lhs & rhs,
                "==" => u64::from(lhs == rhs),
                "!=" => u64::from(lhs != rhs),
                "<" => u64::from(lhs < rhs),
                ">" => u64::from(lhs > rhs),
                "<=" => u64::from(lhs <= rhs),
                ">=" => u64::from(lhs >= rhs),
                "<<" => lhs.checked_shl(rhs as u32).ok_or("shift too large")?,
                ">>" => lhs.checked_shr(rhs as u32).ok_or("shift too large")?,
                "+" => lhs.wrapping_add(rhs),
                "-" => lhs.wrapping_sub(rhs),
                "*" => lhs.wrapping_mul(rhs),
                "/" => lhs.checked_div(rhs).ok_or("division by zero")?,
                _ => lhs.checked_rem(rhs).ok_or("division by zero")?,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<u64, String> {
        if self.eat("-") {
            return Ok(self.unary()?.wrapping_neg());
        }
        if self.eat("+") {
            return self.unary();
        }
        if self.eat("~") {
            return Ok(!self.unary()?);
        }
        if self.eat("!") {
            return Ok(u64::from(self.unary()? == 0));
        }
        self.primary()
    }

    /// The tokens of one macro argument list, after the opening `(`.
    fn args(&mut self) -> Result<Vec<Vec<Tok>>, String> {
        let mut args = vec![Vec::new()];
        let mut depth = 0;
        loop {
            let t = self.peek().cloned().ok_or("unclosed macro call")?;
            self.pos += 1;
            match t {
                Tok::Punct("(") => depth += 1,
                Tok::Punct(")") if depth == 0 => break,
                Tok::Punct(")") => depth -= 1,
                Tok::Punct(",") if depth == 0 => {
                    args.push(Vec::new());
                    continue;
                }
                _ => {}
            }
            if let Some(last) = args.last_mut() {
                last.push(t);
            }
        }
        if args.len() == 1 && args[0].is_empty() {
            args.clear();
        }
        Ok(args)
    }

    fn sub(&mut self, toks: &[Tok]) -> Result<u64, String> {
        if self.depth > 64 {
            return Err("macro expansion too deep".to_string());
        }
        let mut p = Parser {
            defs: self.defs,
            toks,
            pos: 0,
            depth: self.depth + 1,
        };
        let v = p.expr()?;
        if p.pos != toks.len() {
            return Err(format!("unexpected `{}`", toks[p.pos].text()));
        }
        Ok(v)
    }

    fn primary(&mut self) -> Result<u64, String> {
        let t = self.peek().cloned().ok_or("expression ends early")?;
        self.pos += 1;
        match t {
            Tok::Num(n) => Ok(n),
            Tok::Punct("(") => {
                // A cast: only type words up to the `)`.
                let start = self.pos;
                let mut end = start;
                while let Some(Tok::Ident(w)) = self.toks.get(end) {
                    if !TYPE_WORDS.contains(&w.as_str()) {
                        break;
                    }
                    end += 1;
                }
                if end > start && self.toks.get(end) == Some(&Tok::Punct(")")) {
                    self.pos = end + 1;
                    return self.unary();
                }
                let v = self.expr()?;
                self.expect(")")?;
                Ok(v)
            }
            Tok::Ident(name) => self.ident(&name),
            Tok::Punct(p) => Err(format!("unexpected `{p}`")),
        }
    }

    fn ident(&mut self, name: &str) -> Result<u64, String> {
        // The uapi/linux/const.h and bits.h helpers paste suffixes
        // (`X##UL`), which this evaluator does not do: give their meaning.
        match name {
            "_AC" | "__AC" | "_UL" | "_ULL" | "UL" | "ULL" | "U32_C" | "U64_C" => {
                self.expect("(")?;
                let args = self.args()?;
                let first = args.first().ok_or(format!("{name}() without argument"))?;
                return self.sub(&first.clone());
            }
            "BIT" | "BIT_ULL" | "_BITUL" | "_BITULL" => {
                self.expect("(")?;
                let args = self.args()?;
                let [a] = args.as_slice() else {
                    return Err(format!("{name}() wants one argument"));
                };
                let n = self.sub(a)?;
                return 1u64
                    .checked_shl(n as u32)
                    .ok_or(format!("{name}({n}) too large"));
            }
            _ => {}
        }
        let defs = self
            .defs
            .get(name)
            .ok_or_else(|| format!("`{name}` is not a known macro"))?;
        let call_args = if defs.iter().any(|d| d.params.is_some()) {
            self.expect("(")?;
            Some(self.args()?)
        } else {
            None
        };
        let mut value: Option<(u64, &str)> = None;
        for d in defs {
            let body = tokenize(&d.body).map_err(|e| format!("{name} in {}: {e}", d.file))?;
            let expanded = match (&d.params, &call_args) {
                (None, None) => body,
                (Some(params), Some(args)) => {
                    if params.len() != args.len() {
                        return Err(format!(
                            "{name} takes {} arguments, given {}",
                            params.len(),
                            args.len()
                        ));
                    }
                    let mut out = Vec::new();
                    for t in body {
                        match &t {
                            Tok::Ident(w) => match params.iter().position(|p| p == w) {
                                Some(i) => {
                                    out.push(Tok::Punct("("));
                                    out.extend(args[i].iter().cloned());
                                    out.push(Tok::Punct(")"));
                                }
                                None => out.push(t),
                            },
                            _ => out.push(t),
                        }
                    }
                    out
                }
                _ => return Err(format!("{name} is both object- and function-like")),
            };
            let v = self
                .sub(&expanded)
                .map_err(|e| format!("{name} ({}): {e}", d.file))?;
            match value {
                None => value = Some((v, &d.file)),
                Some((old, file)) if old != v => {
                    return Err(format!(
                        "{name} is {old:#x} in {file} but {v:#x} in {}",
                        d.file
                    ))
                }
                Some(_) => {}
            }
        }
        value
            .map(|(v, _)| v)
            .ok_or_else(|| format!("`{name}` has no definition"))
    }
}

/// Finds the body (between the braces, exclusive) of the definition of the
/// function `name` in comment-stripped `text`.
pub fn function_body<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(off) = text[from..].find(name) {
        let at = from + off;
        from = at + name.len();
        let before_ok = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let mut i = at + name.len();
        if !before_ok || b.get(i) != Some(&b'(') {
            continue;
        }
        let close = matching(text, i, b'(', b')')?;
        i = close + 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'{') {
            let end = matching(text, i, b'{', b'}')?;
            return Some(&text[i + 1..end]);
        }
    }
    None
}

/// The index of the bracket closing the one at `open`.
fn matching(text: &str, open: usize, o: u8, c: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &ch) in text.as_bytes().iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// One `case` label of a switch on an MSR variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseLabel {
    /// The label's expression, or the first of a `case A ... B` range.
    pub first: String,
    /// The last of a range.
    pub last: Option<String>,
    /// The code under the label (up to the next label) starts by refusing
    /// guest accesses: `if (!host_initiated) return 1;` or the same on
    /// `msr_info->host_initiated`.
    pub host_only: bool,
}

/// The `case` labels of every `switch` in `body` whose controlling
/// expression is one of `vars` (e.g. `msr`, `msr_info->index`); labels of
/// nested switches on anything else are not included. `default:` is not a
/// label here.
pub fn case_labels(body: &str, vars: &[&str]) -> Vec<CaseLabel> {
    let b = body.as_bytes();
    // Stack of (is an MSR switch, brace depth of its block).
    let mut switches: Vec<(bool, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out: Vec<CaseLabel> = Vec::new();
    // Labels of the current group, waiting for their code.
    let mut pending: Vec<usize> = Vec::new();
    let mut i = 0;
    let word_at = |i: usize, w: &str| {
        body[i..].starts_with(w)
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && !b
                .get(i + w.len())
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    while i < b.len() {
        let c = b[i];
        if c == b'#'
            && body[..i]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.trim().is_empty())
        {
            // Preprocessor line inside a function: skip it.
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            if switches.last().is_some_and(|&(_, d)| d == depth) {
                switches.pop();
            }
            depth = depth.saturating_sub(1);
        } else if word_at(i, "switch") {
            let Some(open) = body[i..].find('(').map(|o| i + o) else {
                break;
            };
            let Some(close) = matching(body, open, b'(', b')') else {
                break;
            };
            let expr: String = body[open + 1..close].split_whitespace().collect();
            let is_msr = vars.iter().any(|v| *v == expr);
            let Some(brace) = body[close..].find('{').map(|o| close + o) else {
                break;
            };
            depth += 1;
            switches.push((is_msr, depth));
            i = brace + 1;
            continue;
        } else if word_at(i, "case") || word_at(i, "default") {
            let is_case = word_at(i, "case");
            let start = i + if is_case { 4 } else { 7 };
            // The label ends at a `:` outside parentheses (no `?:` in labels).
            let mut j = start;
            let mut paren = 0i32;
            while j < b.len() {
                match b[j] {
                    b'(' => paren += 1,
                    b')' => paren -= 1,
                    b':' if paren == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            let in_msr_switch = switches.last().is_some_and(|&(m, d)| m && d == depth);
            if is_case && in_msr_switch {
                let label = &body[start..j];
                let (first, last) = match label.split_once("...") {
                    Some((a, z)) => (a.trim().to_string(), Some(z.trim().to_string())),
                    None => (label.trim().to_string(), None),
                };
                out.push(CaseLabel {
                    first,
                    last,
                    host_only: false,
                });
                pending.push(out.len() - 1);
            }
            i = j + 1;
            // Another label right after this one continues the group.
            let rest = body[i..].trim_start();
            let more_labels = rest.starts_with("case") || rest.starts_with("default");
            if !more_labels && !pending.is_empty() {
                let code: String = rest
                    .chars()
                    .take(80)
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let host_only = code.starts_with("if(!host_initiated)return1;")
                    || code.starts_with("if(!msr_info->host_initiated)return1;");
                for &k in &pending {
                    out[k].host_only = host_only;
                }
                pending.clear();
            }
            continue;
        }
        i += 1;
    }
    out
}

/// The top-level, comma-separated items of the initializer of the array
/// `name` (`name[] = { ... };`), preprocessor lines removed.
pub fn array_items(text: &str, name: &str) -> Option<Vec<String>> {
    let pat = format!("{name}[");
    let at = text.find(&pat)?;
    let eq = text[at..].find('=')? + at;
    let open = text[eq..].find('{')? + eq;
    let close = matching(text, open, b'{', b'}')?;
    let inner: String = text[open + 1..close]
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut items = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in inner.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    items.push(cur);
    Some(
        items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// The argument lists (split at top-level commas) of every call of
/// `function` in `text`.
pub fn call_args(text: &str, function: &str) -> Vec<Vec<String>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = text[from..].find(function) {
        let at = from + off;
        from = at + function.len();
        let before_ok = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        if !before_ok || b.get(from) != Some(&b'(') {
            continue;
        }
        let Some(close) = matching(text, from, b'(', b')') else {
            continue;
        };
        let inner = &text[from + 1..close];
        let mut args = Vec::new();
        let mut depth = 0;
        let mut cur = String::new();
        for ch in inner.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(std::mem::take(&mut cur).trim().to_string());
                    continue;
                }
                _ => {}
            }
            cur.push(ch);
        }
        args.push(cur.trim().to_string());
        // A definition or declaration has types in its parameters: skip it.
        if !args
            .iter()
            .any(|a| a.starts_with("struct ") || a.starts_with("u32 "))
        {
            out.push(args);
        }
    }
    out
}
