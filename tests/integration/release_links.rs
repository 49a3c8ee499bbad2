//! The release tarball's Markdown links all resolve inside the tarball: an operator reading the packed
//! README offline finds every page and file it names. Fast: `scripts/release --list` builds nothing.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::common::artifacts::repo_path;

/// The files `scripts/release` packs besides the binary, relative to the repository, sorted.
pub fn release_list() -> Vec<String> {
    let out = Command::new(repo_path("scripts/release")).arg("--list").output().expect("scripts/release runs");
    assert!(out.status.success(), "scripts/release --list: {}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    files.sort();
    files
}

/// The relative link targets of a Markdown text (`[text](target)`, anchors dropped); web addresses,
/// mail addresses and links within the page are not files.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = markdown;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split('#').next().unwrap_or("").trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            targets.push(target.to_string());
        }
    }
    targets
}

/// `base/target` with `.` and `..` worked out; `None` when it climbs out of the tree.
fn resolve(base: &Path, target: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in base.join(target).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

#[test]
fn every_link_in_the_packed_markdown_resolves_to_a_packed_file() {
    let packed = release_list();
    let set: BTreeSet<&str> = packed.iter().map(String::as_str).collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in packed.iter().filter(|f| f.ends_with(".md")) {
        let text = std::fs::read_to_string(repo_path(file)).expect("a packed file");
        let base = Path::new(file).parent().map(Path::to_path_buf).unwrap_or_default();
        for target in link_targets(&text) {
            checked += 1;
            let found = resolve(&base, &target).filter(|path| {
                // A file, or a directory some packed file lies in.
                set.contains(path.as_str()) || packed.iter().any(|f| f.starts_with(&format!("{path}/")))
            });
            if found.is_none() {
                broken.push(format!("{file}: {target}"));
            }
        }
    }
    assert!(checked > 50, "links were read: {checked}");
    assert!(broken.is_empty(), "links to files the tarball does not hold:\n{}", broken.join("\n"));
}

#[test]
fn links_are_read_and_resolved_as_a_reader_follows_them() {
    let text = "see [a](../README.md#x), [b](https://example.org/a.md), [c](#here), [d](images/p.png)";
    assert_eq!(link_targets(text), ["../README.md", "images/p.png"]);
    assert_eq!(resolve(&PathBuf::from("docs"), "../README.md").as_deref(), Some("README.md"));
    assert_eq!(resolve(&PathBuf::from("docs"), "../../x"), None);
}
