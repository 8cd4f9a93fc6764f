//! The crate's layering, checked on its source: every `use crate::…`, `use super::…`, `use
//! self::…`, `use <child module>::…` (grouped trees included) and every inline `crate::…` /
//! `super::…` path in product code is resolved to the file that defines the module it names.
//! Two rules hold over that graph: no import circle between files, and no pure decision module
//! imports a module that does I/O (the two sets are named below). Test-only code (`#[cfg(test)]`
//! items and modules) is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::root;

/// Pure: decisions and data, no I/O, no clock, no threads (paths relative to `src/`).
const PURE: &[&str] = &[
    "controller/decide/",
    "controller/cache.rs",
    "controller/key.rs",
    "controller/queue.rs",
    "model/",
    "updater/api.rs",
];

/// Modules that do I/O (sockets, files, processes, threads); a pure module must not import them.
const IO: &[&str] = &[
    "controller/run/",
    "kube/",
    "updater/client.rs",
    "updater/server.rs",
    "updater/nginx.rs",
    "updater/apply.rs",
    "updater/cli.rs",
    "updater/health.rs",
    "updater/auth.rs",
    "updater/tls.rs",
    "explain/gather.rs",
    "check.rs",
    "http.rs",
    "main.rs",
];

#[test]
fn no_import_circle_between_files() {
    let graph = Graph::load(&root().join("src"));
    let circles: Vec<String> = graph.circles().into_iter().map(|(_, c)| c).collect();
    assert!(
        circles.is_empty(),
        "{} import circle(s) between files:\n{}",
        circles.len(),
        circles.join("\n")
    );
}

/// (importer, imported, why): a file under the first prefix must not import one under the second.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "controller/cache.rs",
        "controller/run/",
        "shared state imports no effect",
    ),
    ("controller/key.rs", "controller/", "the key is a leaf"),
    ("controller/queue.rs", "controller/", "the queue is a leaf"),
    (
        "updater/",
        "model/",
        "the updater knows its own API, not our CRs",
    ),
    ("updater/", "controller/", "the updater knows no controller"),
    ("model/", "controller/", "model types know no controller"),
];

#[test]
fn pure_modules_import_no_io_module_and_no_layer_imports_upward() {
    let graph = Graph::load(&root().join("src"));
    let in_set = |f: &str, set: &[&str]| set.iter().any(|p| f.starts_with(p));
    let mut bad: Vec<String> = graph
        .edges
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter(|(from, to)| in_set(from, PURE) && in_set(to, IO))
        .map(|(from, to)| format!("{from} -> {to}: a pure module imports one that does I/O"))
        .collect();
    for (from, tos) in &graph.edges {
        for to in tos {
            for (a, b, why) in FORBIDDEN {
                if from.starts_with(a) && to.starts_with(b) && from != to {
                    bad.push(format!("{from} -> {to}: {why}"));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_resolves_grouped_super_and_inline_paths() {
    let text =
        "use crate::a::{b::{C, D}, e};\nuse super::super::f::G;\nfn x() { crate::h::i::J; }\n";
    let mut paths = Vec::new();
    scan(text, &strip(text), &mut paths);
    assert_eq!(
        paths,
        [
            "crate::a::b::C",
            "crate::a::b::D",
            "crate::a::e",
            "super::super::f::G",
            "crate::h::i::J"
        ]
    );
    let test_only = "#[cfg(test)]\nmod tests { use crate::x::Y; }\nuse crate::z::{self, W as V};";
    let mut paths = Vec::new();
    scan(test_only, &strip(test_only), &mut paths);
    assert_eq!(paths, ["crate::z", "crate::z::W"]);
}

/// The module tree (module path → file, relative to `src/`) and the file import graph.
struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn load(src: &Path) -> Graph {
        let mut modules: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
        let mut uses: Vec<(Vec<String>, PathBuf, Vec<String>)> = Vec::new();
        for (root_file, root_path) in [("lib.rs", vec![]), ("main.rs", vec!["<bin>".into()])] {
            load_module(
                src,
                &src.join(root_file),
                root_path,
                &mut modules,
                &mut uses,
            );
        }
        let rel = |p: &Path| {
            p.strip_prefix(src)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, file, paths) in &uses {
            let crate_root: Vec<String> = module
                .iter()
                .take_while(|s| *s == "<bin>")
                .cloned()
                .collect();
            for path in paths {
                let Some(target) = resolve(module, &crate_root, path, &modules) else {
                    continue;
                };
                let (from, to) = (rel(file), rel(&modules[&target]));
                if from != to {
                    edges.entry(from).or_default().insert(to);
                }
            }
        }
        Graph { edges }
    }

    /// Every strongly connected set of more than one file, with one circle through it.
    fn circles(&self) -> Vec<(BTreeSet<String>, String)> {
        let nodes: BTreeSet<&String> = self
            .edges
            .iter()
            .flat_map(|(f, ts)| std::iter::once(f).chain(ts))
            .collect();
        let reach = |from: &String| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from.clone()];
            while let Some(n) = stack.pop() {
                for t in self.edges.get(&n).into_iter().flatten() {
                    if seen.insert(t.clone()) {
                        stack.push(t.clone());
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&String, BTreeSet<String>> =
            nodes.iter().map(|n| (*n, reach(n))).collect();
        let mut done = BTreeSet::new();
        let mut out = Vec::new();
        for n in &nodes {
            if done.contains(*n) || !reaches[n].contains(*n) {
                continue;
            }
            let scc: BTreeSet<String> = reaches[n]
                .iter()
                .filter(|m| reaches[m].contains(*n))
                .cloned()
                .collect();
            done.extend(scc.iter().cloned());
            let circle = format!(
                "{} (circle through {} files)",
                self.path_back(n, &scc),
                scc.len()
            );
            out.push((scc, circle));
        }
        out
    }

    /// A shortest path from `n` back to itself inside `scc`, as `a -> b -> a`.
    fn path_back(&self, n: &String, scc: &BTreeSet<String>) -> String {
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        while let Some(m) = queue.pop_front() {
            for t in self.edges.get(&m).into_iter().flatten() {
                if !scc.contains(t) || prev.contains_key(t) {
                    continue;
                }
                prev.insert(t.clone(), m.clone());
                if t == n {
                    let mut path = vec![n.clone()];
                    let mut at = m.clone();
                    while &at != n {
                        path.push(at.clone());
                        at = prev[&at].clone();
                    }
                    path.push(n.clone());
                    path.reverse();
                    return path.join(" -> ");
                }
                queue.push_back(t.clone());
            }
        }
        n.clone()
    }
}

/// Reads `file` as module `path`, records its import paths, and follows its `mod x;` declarations
/// (`#[path]` included; `#[cfg(test)]` ones are left out).
fn load_module(
    src: &Path,
    file: &Path,
    path: Vec<String>,
    modules: &mut BTreeMap<Vec<String>, PathBuf>,
    uses: &mut Vec<(Vec<String>, PathBuf, Vec<String>)>,
) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    modules.insert(path.clone(), file.to_path_buf());
    let mut paths = Vec::new();
    let children = scan(&text, &strip(&text), &mut paths);
    uses.push((path.clone(), file.to_path_buf(), paths));
    let dir = file.parent().unwrap_or(src);
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let own_dir = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    for (name, at) in children {
        let child = match at {
            Some(p) => dir.join(p),
            None if own_dir.join(format!("{name}.rs")).exists() => {
                own_dir.join(format!("{name}.rs"))
            }
            None => own_dir.join(&name).join("mod.rs"),
        };
        let mut child_path = path.clone();
        child_path.push(name);
        load_module(src, &child, child_path, modules, uses);
    }
}

/// The file of the deepest module that `p` (as written in `module`) names.
fn resolve(
    module: &[String],
    crate_root: &[String],
    p: &str,
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let segs: Vec<&str> = p.split("::").collect();
    let mut at: Vec<String> = module.to_vec();
    let mut rest = &segs[..];
    match segs.first().copied() {
        Some("crate") => {
            at = crate_root.to_vec();
            rest = &segs[1..];
        }
        Some("self") => rest = &segs[1..],
        Some("super") => {
            while rest.first() == Some(&"super") {
                at.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            // A child module of this one, named without `self::` (2018 paths).
            let mut child = at.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None;
            }
        }
        None => return None,
    }
    for s in rest {
        let mut next = at.clone();
        next.push(s.to_string());
        if !modules.contains_key(&next) {
            break;
        }
        at = next;
    }
    Some(at)
}

/// The source with comments, string and char literals blanked out (lengths kept).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in out.iter_mut().take(to.min(b.len())).skip(from) {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i..].starts_with(b"//") {
            let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            blank(&mut out, i, end);
            i = end;
        } else if !ident_before
            && (b[i..].starts_with(b"r#")
                || b[i..].starts_with(b"r\"")
                || b[i..].starts_with(b"br"))
        {
            let start = if b[i] == b'b' { i + 2 } else { i + 1 };
            let hashes = b[start..].iter().take_while(|c| **c == b'#').count();
            if b.get(start + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body = start + hashes + 1;
            let end = text[body..]
                .find(&close)
                .map_or(b.len(), |n| body + n + close.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let end = if b.get(i + 1) == Some(&b'\\') {
                text[i + 2..].find('\'').map(|n| i + 2 + n + 1)
            } else {
                let c = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + c) == Some(&b'\'')).then_some(i + 1 + c + 1)
            };
            match end {
                Some(e) => {
                    blank(&mut out, i, e);
                    i = e;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Collects the import paths of `text` (`stripped`: as `strip` left it) into `paths`, skipping
/// `#[cfg(test)]` items, and returns its `mod x;` declarations with their `#[path]`.
fn scan(text: &str, stripped: &str, paths: &mut Vec<String>) -> Vec<(String, Option<String>)> {
    let t = stripped.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let word_at = |i: usize, w: &str| {
        t[i..].starts_with(w.as_bytes())
            && (i == 0 || !(ident(t[i - 1]) || t[i - 1] == b'$'))
            && t.get(i + w.len()).is_none_or(|c| !ident(*c))
    };
    let mut mods = Vec::new();
    let (mut i, mut attr_path, mut test_only) = (0, None, false);
    while i < t.len() {
        if t[i] == b'#' && t.get(i + 1) == Some(&b'[') {
            let end = matching(t, i + 1);
            let attr: String = stripped[i + 2..end].split_whitespace().collect();
            if attr == "cfg(test)" {
                test_only = true;
            } else if attr.starts_with("path=") {
                // The literal was blanked: read it from the source.
                attr_path = text[i..end].split('"').nth(1).map(str::to_string);
            }
            i = end + 1;
        } else if t[i].is_ascii_whitespace() {
            i += 1;
        } else if test_only {
            i = item_end(t, i);
            (test_only, attr_path) = (false, None);
        } else if word_at(i, "use") {
            let end = stripped[i..].find(';').map_or(t.len(), |n| i + n);
            let words: Vec<&str> = stripped[i + 3..end].split_whitespace().collect();
            // `x as y` imports x; drop each `as y`.
            let mut tree = String::new();
            let mut k = 0;
            while k < words.len() {
                if words[k] == "as" {
                    k += 2;
                    continue;
                }
                tree.push_str(words[k]);
                k += 1;
            }
            expand(&tree, "", paths);
            i = end + 1;
        } else if word_at(i, "mod") {
            let rest = stripped[i + 3..].trim_start();
            let name: String = rest
                .bytes()
                .take_while(|c| ident(*c))
                .map(char::from)
                .collect();
            if rest[name.len()..].trim_start().starts_with(';') {
                mods.push((name, attr_path.take()));
                i += stripped[i..].find(';').unwrap_or(0) + 1;
            } else {
                i += 3;
            }
        } else if ident(t[i]) && (i == 0 || !(ident(t[i - 1]) || t[i - 1] == b'$')) {
            // An inline path (`crate::a::f()`, `super::b::C`, `child::g()`); `resolve` keeps those
            // that name a module of this crate.
            let mut j = i;
            while j < t.len() && (ident(t[j]) || t[j] == b':') {
                j += 1;
            }
            let p = stripped[i..j].trim_end_matches(':');
            if p.contains("::") {
                paths.push(p.to_string());
            }
            i = j;
        } else {
            attr_path = None;
            i += 1;
        }
    }
    mods
}

/// Expands a use tree (`a::{b, c::{d}}`, whitespace removed) into full paths under `prefix`.
fn expand(tree: &str, prefix: &str, paths: &mut Vec<String>) {
    let tree = tree.trim_start_matches("::");
    let join = |p: &str| {
        if prefix.is_empty() {
            p.to_string()
        } else {
            format!("{prefix}::{p}")
        }
    };
    match tree.find('{') {
        Some(open) => {
            let head = tree[..open].trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = if head.is_empty() {
                prefix.to_string()
            } else {
                join(head)
            };
            let mut depth = 0;
            let mut start = 0;
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..k], &base, paths);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[start..], &base, paths);
        }
        None if tree.is_empty() => {}
        None => {
            let p = tree.trim_end_matches("::*").trim_end_matches("::self");
            if p == "self" {
                paths.push(prefix.to_string());
            } else {
                paths.push(join(p));
            }
        }
    }
}

/// The index of the bracket closing the one at `open`.
fn matching(t: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (k, c) in t.iter().enumerate().skip(open) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// The end of the item starting at `i`: its `;` or its closing brace.
fn item_end(t: &[u8], i: usize) -> usize {
    let mut k = i;
    let mut depth = 0;
    while k < t.len() {
        match t[k] {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b';' if depth == 0 => return k + 1,
            b'{' if depth == 0 => return matching(t, k) + 1,
            _ => {}
        }
        k += 1;
    }
    t.len()
}
