//! The module shape: the import graph of `src/`, read from the source, has no cycle and no import
//! against the layer order of docs/architecture.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The layer map of docs/architecture.md, lowest first. A unit (a top-level module: `src/x.rs` and
/// `src/x/**`) may import units of its own layer or lower ones. A new top-level module goes in the
/// lowest layer above everything it imports; a new submodule needs no entry.
const LAYERS: &[&[&str]] = &[
    /* 0 */ &["error", "text"],
    /* 1 */ &["tokens", "progress", "stats"],
    /* 2 */ &["check"],
    /* 3 */ &["config"],
    /* 4 */ &["golden"],
    /* 5 */ &["prompt"],
    /* 6 */ &["provider"],
    /* 7 */ &["score"],
    /* 8 */ &["record"],
    /* 9 */ &["metrics"],
    /* 10 */ &["gate"],
    /* 11 */ &["manifest"],
    /* 12 */ &["summary"],
    /* 13 */ &["rundir"],
    /* 14 */ &["evaluation"],
    /* 15 */ &["runner"],
    /* 16 */ &["shadow", "canary"],
    /* 17 */ &["report"],
    /* 18 */ &["history"],
    /* 19 */ &["cli"],
    /* 20 */ &["commands"],
    /* 21 */ &["lib"],
    /* 22 */ &["main"],
];

#[test]
fn src_follows_the_layer_map() {
    // GOLDGATE_ARCH_ROOT=DIR reads DIR/src instead: how an older tree is measured against the map
    // (`git archive REV src | tar -x -C DIR`).
    let root = std::env::var_os("GOLDGATE_ARCH_ROOT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
        PathBuf::from,
    );
    let mut files = Vec::new();
    read_rust_files(&root, &root.join("src"), &mut files);
    let report = check(&files, LAYERS);
    if std::env::var_os("GOLDGATE_ARCH_REPORT").is_some() {
        eprintln!("{report}");
    }
    let clean = report.cycles.is_empty() && report.upward.is_empty() && report.unknown.is_empty();
    assert!(clean, "{report}");
}

/// `(path from the crate root, contents)` of every `.rs` file under `dir`.
fn read_rust_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // Skipped, not failed: a file moved away between listing and reading is not a finding.
            if let Ok(text) = std::fs::read_to_string(&path) {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.push((rel.replace('\\', "/"), text));
            }
        }
    }
}

/// What is wrong with the module shape; empty lists mean nothing is.
#[derive(Debug, Default)]
struct Report {
    cycles: Vec<String>,
    upward: Vec<String>,
    unknown: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} import cycle(s), {} upward import(s), {} unknown unit(s)",
            self.cycles.len(),
            self.upward.len(),
            self.unknown.len()
        )?;
        for line in self.cycles.iter().chain(&self.upward).chain(&self.unknown) {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// The unit graph of `files` (`("src/…", contents)`), checked against `layers`.
fn check(files: &[(String, String)], layers: &[&[&str]]) -> Report {
    // `src/score.rs`, `src/score/mod.rs` and `src/score/judge.rs` are all unit `score`.
    let unit_of = |path: &str| {
        path["src/".len()..]
            .split(['/', '.'])
            .next()
            .unwrap()
            .to_owned()
    };
    let units: BTreeSet<String> = files.iter().map(|(path, _)| unit_of(path)).collect();
    let layer_of: HashMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(n, names)| names.iter().map(move |&name| (name, n)))
        .collect();

    // Each edge with where it is first seen; files in path order so that "first" is stable.
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut files: Vec<_> = files.iter().collect();
    files.sort();
    for (path, source) in files {
        let from = unit_of(path);
        // main.rs reaches the library as `goldgate::`; its own `crate::` is the binary crate.
        let root = if from == "main" { "goldgate" } else { "crate" };
        for (name, line) in imported_names(source, root) {
            // A `crate::` name that is no module is an item of the crate root (lib.rs): an edge to lib.
            let to = if root == "crate" && units.contains(&name) {
                name
            } else {
                "lib".to_owned()
            };
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert(format!("{path}:{line}"));
            }
        }
    }

    let mut report = Report::default();
    for unit in units.iter().filter(|u| !layer_of.contains_key(u.as_str())) {
        report.unknown.push(format!(
            "add `{unit}` to LAYERS in tests/it/architecture.rs at its layer"
        ));
    }
    for ((from, to), at) in &edges {
        if let (Some(&low), Some(&high)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
            && low < high
        {
            report.upward.push(format!(
                "{at}: {from} (layer {low}) imports {to} (layer {high})"
            ));
        }
    }
    let names: Vec<&str> = units.iter().map(String::as_str).collect();
    let index = |unit: &str| names.iter().position(|n| *n == unit);
    let mut next = vec![Vec::new(); names.len()];
    for (from, to) in edges.keys() {
        if let (Some(a), Some(b)) = (index(from), index(to)) {
            next[a].push(b);
        }
    }
    for mut component in cycles_in(&next) {
        component.sort(); // `names` is sorted, so the members come out in name order
        let members: Vec<&str> = component.iter().map(|&u| names[u]).collect();
        let inside: Vec<String> = (edges.iter())
            .filter(|((a, b), _)| members.contains(&a.as_str()) && members.contains(&b.as_str()))
            .map(|((a, b), at)| format!("{a} -> {b} ({at})"))
            .collect();
        report.cycles.push(format!(
            "cycle: {} [{}]",
            members.join(", "),
            inside.join("; ")
        ));
    }
    report
}

/// Tarjan's algorithm over `next` (unit → the units it imports): the strongly connected
/// components of more than one unit, i.e. the units on an import cycle.
fn cycles_in(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Walk<'a> {
        next: &'a [Vec<usize>],
        order: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        found: Vec<Vec<usize>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: usize) {
            let order = self.order.iter().flatten().count();
            (self.order[v], self.low[v]) = (Some(order), order);
            self.stack.push(v);
            let next = self.next;
            for &w in &next[v] {
                match self.order[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    // A dozen units: a linear `contains` is clearer than an on-stack bitmap.
                    Some(o) if self.stack.contains(&w) => self.low[v] = self.low[v].min(o),
                    Some(_) => {}
                }
            }
            if self.order[v] == Some(self.low[v]) {
                let root_at = self.stack.iter().rposition(|&w| w == v).unwrap();
                let component = self.stack.split_off(root_at);
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let n = next.len();
    let mut walk = Walk {
        next,
        order: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in 0..n {
        if walk.order[v].is_none() {
            walk.visit(v);
        }
    }
    walk.found
}

/// The first segment after each `root::` path in `source` (`use root::{a::X, b}` gives `a` and
/// `b`), with its line; comments, literals and the trailing `#[cfg(test)] mod tests` left out.
fn imported_names(source: &str, root: &str) -> Vec<(String, usize)> {
    let code = blank_comments_and_literals(source);
    let code = match find_unit_tests(&code) {
        Some(at) => &code[..at],
        None => &code,
    };
    let tokens = tokens(code);
    let mut names = Vec::new();
    let is_name = |t: &str| t.starts_with(|c: char| c.is_alphabetic() || c == '_');
    for (i, pair) in tokens.windows(2).enumerate() {
        if pair[0].0 != root || pair[1].0 != "::" {
            continue;
        }
        match tokens.get(i + 2) {
            Some(&("{", _)) => {
                // A group: the first name of each entry at its top level.
                let (mut depth, mut entry_start) = (0, true);
                for &(tok, line) in &tokens[i + 3..] {
                    match tok {
                        "{" => depth += 1,
                        "}" if depth == 0 => break,
                        "}" => depth -= 1,
                        "," if depth == 0 => entry_start = true,
                        _ if depth == 0 && entry_start && is_name(tok) => {
                            names.push((tok.to_owned(), line));
                            entry_start = false;
                        }
                        _ => {}
                    }
                }
            }
            Some(&(tok, line)) if is_name(tok) => names.push((tok.to_owned(), line)),
            _ => {}
        }
    }
    names
}

/// Where the unit tests start: a `#[cfg(test)]` followed (after any other attributes) by `mod tests`.
fn find_unit_tests(code: &str) -> Option<usize> {
    code.match_indices("#[cfg(test)]")
        .map(|(at, _)| at)
        .find(|&at| {
            let mut rest = code[at..].trim_start_matches("#[cfg(test)]").trim_start();
            while rest.starts_with("#[") {
                rest = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
            }
            rest.starts_with("mod tests")
        })
}

/// Identifiers, `::` and single punctuation characters, each with its line.
fn tokens(code: &str) -> Vec<(&str, usize)> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let (mut out, mut line, mut rest) = (Vec::new(), 1, code);
    while let Some(c) = rest.chars().next() {
        let len = if is_ident(c) {
            rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len())
        } else if rest.starts_with("::") {
            2
        } else {
            c.len_utf8()
        };
        if c == '\n' {
            line += 1;
        } else if !c.is_whitespace() {
            out.push((&rest[..len], line));
        }
        rest = &rest[len..];
    }
    out
}

/// `source` with comments and string and char literals blanked to spaces (a `crate::x` there is
/// no import); newlines are kept, so line numbers still hold.
fn blank_comments_and_literals(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident = |i: usize| i < c.len() && (c[i].is_alphanumeric() || c[i] == '_');
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < c.len() {
        let start = i;
        // `r"…"`, `r#"…"#`, `br"…"`: a raw string, if the `r` does not end an identifier.
        let raw_prefix = at(i) == 'r' && (i == 0 || !ident(i - 1) || at(i - 1) == 'b');
        let hashes = (i + 1..).take_while(|&j| at(j) == '#').count();
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0; // block comments nest
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    (depth, i) = (depth + 1, i + 2);
                } else if at(i) == '*' && at(i + 1) == '/' {
                    (depth, i) = (depth - 1, i + 2);
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if raw_prefix && at(i + 1 + hashes) == '"' {
            i += hashes + 2;
            while i < c.len() && !(at(i) == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                i += 1;
            }
            i += hashes + 1;
        } else if at(i) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if at(i) == '\'' && at(i + 1) == '\\' {
            i += 3; // `'\n'`, `'\''`, `'\u{…}'`: past the escaped character, then to the quote
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if at(i) == '\'' && at(i + 2) == '\'' {
            i += 3; // `'"'`; a lifetime `'a` has no closing quote and is kept as code
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let end = i.min(c.len());
        out.extend(
            c[start..end]
                .iter()
                .map(|&ch| if ch == '\n' { '\n' } else { ' ' }),
        );
    }
    out
}

mod parsing {
    use super::*;

    #[test]
    fn grouped_and_inline_paths_count_but_comments_literals_and_unit_tests_do_not() {
        let source = r##"
use crate::{
    alpha::A,
    beta::{B, gamma::C},
};
// use crate::in_comment;
/// [`crate::in_doc`] /* nested */
/* use crate::in_block; /* use crate::nested; */ crate::still_comment */
fn f<'a>(s: &'a str) -> char {
    let _ = ("crate::in_string \" crate::escaped", r#"crate::in_raw " crate::x"#, '"');
    crate::delta::run(my_crate::not_it, pub_crate::neither)
}
#[cfg(test)]
#[allow(unused)]
mod tests {
    use crate::only_in_tests;
}
"##;
        let names: Vec<String> = (imported_names(source, "crate").iter())
            .map(|(name, line)| format!("{name}:{line}"))
            .collect();
        assert_eq!(names, ["alpha:3", "beta:4", "delta:11"]);
    }

    #[test]
    fn a_cycle_an_upward_import_and_an_unknown_unit_are_all_reported() {
        let layers: &[&[&str]] = &[&["low"], &["mid", "peer"], &["high"], &["lib"], &["main"]];
        let file = |path: &str, text: &str| (path.to_owned(), text.to_owned());
        let files = [
            file("src/lib.rs", "use crate::high::H;\npub fn now() {}"),
            file("src/main.rs", "fn main() { goldgate::now(); }"),
            file("src/low.rs", "use crate::error::E;\nuse crate::high;\n"),
            file("src/mid/mod.rs", "use crate::{low, peer::P};"),
            file("src/mid/inner.rs", "fn f() { crate::mid::g(); }"),
            file("src/peer.rs", "\n\ncrate::mid::f(); crate::now();"),
            file("src/high.rs", "use crate::error::E;"),
            file("src/error.rs", ""),
        ];
        let report = check(&files, layers);
        assert_eq!(
            report.cycles,
            ["cycle: mid, peer [mid -> peer (src/mid/mod.rs:1); peer -> mid (src/peer.rs:3)]"]
        );
        assert_eq!(
            report.upward,
            [
                "src/low.rs:2: low (layer 0) imports high (layer 2)",
                "src/peer.rs:3: peer (layer 1) imports lib (layer 3)",
            ]
        );
        assert_eq!(
            report.unknown,
            ["add `error` to LAYERS in tests/it/architecture.rs at its layer"]
        );
        assert!(report.to_string().starts_with(
            "1 import cycle(s), 2 upward import(s), 1 unknown unit(s)\n  cycle: mid, peer"
        ));
    }
}
