//! Every manifest parses, and every object names its apiVersion, kind and name.

use crate::{manifest_files, objects, str_at};

#[test]
fn every_manifest_parses_and_every_object_has_api_version_kind_and_name() {
    let files = manifest_files();
    assert!(files.len() >= 9, "found only {files:?}");
    let mut count = 0;
    for f in &files {
        let objs = objects(f);
        assert!(!objs.is_empty(), "{f}: no objects");
        for (i, o) in objs.iter().enumerate() {
            assert!(o.is_object(), "{f}: document {i} is not a map");
            // kustomization.yaml is kustomize's own config, not an API object: it has no metadata.
            let paths: &[&[&str]] = if f.ends_with("kustomization.yaml") {
                &[&["apiVersion"], &["kind"]]
            } else {
                &[&["apiVersion"], &["kind"], &["metadata", "name"]]
            };
            for path in paths {
                assert!(
                    !str_at(o, path).is_empty(),
                    "{f}: document {i} has no {}",
                    path.join(".")
                );
            }
            count += 1;
        }
    }
    assert!(count >= 18, "only {count} objects in {files:?}");
}

#[test]
fn namespaced_objects_live_in_paperlb_system() {
    // The bundle is applied as is: every namespaced object we ship names its namespace explicitly.
    let cluster_scoped = [
        "CustomResourceDefinition",
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "Kustomization",
    ];
    for f in manifest_files() {
        for o in objects(&f) {
            let kind = str_at(&o, &["kind"]);
            if !cluster_scoped.contains(&kind) {
                assert_eq!(
                    str_at(&o, &["metadata", "namespace"]),
                    "paperlb-system",
                    "{f}: {kind} {}",
                    str_at(&o, &["metadata", "name"])
                );
            }
        }
    }
}

/// Every `README, "Section"` (or `README.md, "Section"`) that a shipped file, the demo or the code
/// points to names a heading the README has.
#[test]
fn readme_sections_named_by_files_exist() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = crate::root();
    let mut files = vec![root.join("Dockerfile"), root.join("Makefile")];
    for dir in ["manifests", "demo", "src", "examples", "scripts"] {
        walk(&root.join(dir), &mut files);
    }
    let headings: Vec<String> = crate::read("README.md")
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut named = 0;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for (at, _) in text.match_indices("README") {
            let rest = text[at + "README".len()..].trim_start_matches(".md");
            let Some(rest) = rest
                .strip_prefix(", \"")
                .or_else(|| rest.strip_prefix(", \\\""))
            else {
                continue;
            };
            let section = &rest[..rest.find(['"', '\\']).unwrap_or(0)];
            named += 1;
            assert!(
                headings.iter().any(|h| h.contains(section)),
                "{} points to README section {section:?}, which does not exist",
                f.display()
            );
        }
    }
    assert!(named >= 5, "found only {named} references");
}
