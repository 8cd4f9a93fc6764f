//! What ships: static checks of everything under `manifests/` and of the `Dockerfile` (every file
//! parses with the crate's own YAML parser, the bundle matches its sources, the Deployment meets the
//! restricted Pod Security profile and starts the controller with flags it accepts, RBAC grants
//! exactly what `paperlb check` verifies, the CRDs are structural and serve what the controller
//! reads, the example config validates); the bundle applied to the fake API server (`apply`); and
//! the static release binary run in an empty root against it (`empty_root`). Network traffic stays
//! on loopback.

#[path = "../support/mod.rs"]
mod support;

mod apply;
mod architecture;
mod bundle;
mod crds;
mod deployment;
mod empty_root;
mod example;
mod files;
mod image;
mod rbac;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file under the repository root, as text (panics naming the file).
pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a multi-document YAML text, split on lines that are exactly `---`, each with the
/// 1-based line number of its first line. Documents holding only comments and blank lines are left out:
/// kubectl skips them too.
pub fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first = 1;
    for (i, line) in text.lines().enumerate() {
        if line.trim_end_matches('\r') == "---" {
            docs.push((first, std::mem::take(&mut current)));
            first = i + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((first, current));
    docs.retain(|(_, d)| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// Every object in a manifest file under the root, parsed; panics naming file and line.
pub fn objects(rel: &str) -> Vec<Value> {
    objects_in(rel, &read(rel))
}

pub fn objects_in(name: &str, text: &str) -> Vec<Value> {
    documents(text)
        .into_iter()
        .map(|(first, doc)| match paperlb::kube::yaml::parse(&doc) {
            Ok(v) => v,
            Err(e) => panic!("{name}:{}: {}", first + e.line - 1, e.message),
        })
        .collect()
}

/// The only object of `kind` in a file.
pub fn object(rel: &str, kind: &str) -> Value {
    let mut found: Vec<Value> = objects(rel)
        .into_iter()
        .filter(|o| o["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{rel}: expected one {kind}");
    found.remove(0)
}

/// Every `.yaml`/`.yml` file under `manifests/`, relative to the root, sorted.
pub fn manifest_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join("manifests"), &mut paths);
    let mut rels: Vec<String> = paths
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    rels.sort();
    rels
}

/// `v[path...]` as a str, or "" when absent.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

#[test]
fn documents_split_on_separator_lines_and_skip_comment_only_ones() {
    let text = "# header\n---\na: 1\nb: ---\n---\n\n# only a comment\n---\nc: 3\n";
    let docs = documents(text);
    let firsts: Vec<usize> = docs.iter().map(|(l, _)| *l).collect();
    assert_eq!(firsts, [3, 9]);
    assert_eq!(docs[0].1, "a: 1\nb: ---\n");
    assert_eq!(docs[1].1, "c: 3\n");
}
