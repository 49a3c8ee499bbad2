//! The layering of `src/`: data flows one way, so no module imports one that imports it back
//! (directly or around a cycle), and only `config`, `app` and `main` know the command line.
//!
//! Each source file is a module (`src/emnify/client.rs` is `emnify::client`, a `mod.rs` its
//! directory). A module imports another when its code outside `#[cfg(test)]` names a path into
//! it: `crate::a::b::Item`, `super::b::Item`, or, in a `mod.rs`, `child::Item`. Declaring a
//! child (`mod child;`) is not an import; a child naming its parent is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;
type Graph = BTreeMap<Module, BTreeSet<Module>>;

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

/// Source text with comments, string and character literals blanked out, so only code is read.
fn code_only(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let (mut depth, mut j) = (0, i);
            while j < b.len() {
                if source[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if source[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            i = j;
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            i += len;
        } else if b[i] == b'"' || (rest.starts_with("b\"") && !prev_is_ident(b, i)) {
            let mut j = i + if b[i] == b'b' { 2 } else { 1 };
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a): only literals close.
            let close = if rest[1..].starts_with('\\') {
                rest[2..].find('\'').map(|k| k + 3)
            } else {
                rest[1..].chars().next().and_then(|c| {
                    let after = 1 + c.len_utf8();
                    (rest.as_bytes().get(after) == Some(&b'\'')).then_some(after + 1)
                })
            };
            match close {
                Some(len) => {
                    out.push_str("' '");
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`, `br#"…"#`) at the start of `text`.
fn raw_string_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let open = &body[hashes..];
    if !open.starts_with('"') {
        return None;
    }
    let closing = format!("\"{}", "#".repeat(hashes));
    let end = open[1..].find(&closing)?;
    Some(text.len() - body.len() + hashes + 1 + end + closing.len())
}

/// The code of a file before its `#[cfg(test)]` module (tests may reach anywhere).
fn production_code(source: &str) -> String {
    let code = code_only(source);
    match code.find("#[cfg(test)]") {
        Some(at) => code[..at].to_string(),
        None => code,
    }
}

/// Paths (as segments) starting at `prefix` in `code`, with `{a, b::c}` groups expanded one level.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if prev_is_ident(code.as_bytes(), start) || code[..start].ends_with("::") {
            continue;
        }
        let mut segments = Vec::new();
        let mut rest = &code[from..];
        loop {
            let ident: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !ident.is_empty() {
                segments.push(ident.clone());
                rest = &rest[ident.len()..];
                if let Some(next) = rest.strip_prefix("::") {
                    rest = next;
                    continue;
                }
                paths.push(segments);
            } else if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() && first != "self" {
                        let mut path = segments.clone();
                        path.push(first.to_string());
                        paths.push(path);
                    }
                }
            }
            break;
        }
    }
    paths
}

/// The module a path names: the longest prefix of it that is a module.
fn resolve(modules: &BTreeSet<Module>, path: &[String]) -> Module {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains(m)).unwrap_or_default()
}

/// The import graph of the `.rs` files under `src` (`main.rs`, the binary, is left out: it sits above all).
fn import_graph(src: &Path) -> Graph {
    let mut sources = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).expect("under src/").with_extension("");
                let mut module: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if module.last().is_some_and(|l| l == "mod") || module == ["lib"] {
                    module.pop();
                }
                if module != ["main"] {
                    sources.insert(module, std::fs::read_to_string(&path).expect("a source file"));
                }
            }
        }
    }
    graph_of(&sources)
}

fn graph_of(sources: &BTreeMap<Module, String>) -> Graph {
    let modules: BTreeSet<Module> = sources.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, source) in sources {
        let code = production_code(source);
        let mut targets = BTreeSet::new();
        for path in paths_after(&code, "crate::") {
            targets.insert(resolve(&modules, &path));
        }
        // `super::` is the module above (`super::super::` two above).
        for path in paths_after(&code, "super::") {
            let ups = 1 + path.iter().take_while(|s| *s == "super").count();
            let mut full: Module = module[..module.len().saturating_sub(ups)].to_vec();
            full.extend(path.into_iter().skip(ups - 1));
            targets.insert(resolve(&modules, &full));
        }
        for child in modules.iter().filter(|m| m.len() == module.len() + 1 && m.starts_with(module)) {
            let child_name = &child[child.len() - 1];
            for path in paths_after(&code, &format!("{child_name}::")) {
                let mut full = child.clone();
                full.extend(path);
                targets.insert(resolve(&modules, &full));
            }
        }
        targets.remove(module);
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Every cycle found by a depth-first search, each as the modules around it.
fn cycles(graph: &Graph) -> Vec<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &Graph,
        state: &mut BTreeMap<Module, u8>,
        path: &mut Vec<Module>,
        out: &mut Vec<Vec<Module>>,
    ) {
        state.insert(node.clone(), 1);
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let at = path.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = path[at..].to_vec();
                    cycle.push(next.clone());
                    out.push(cycle);
                }
                Some(_) => {}
                None => visit(next, graph, state, path, out),
            }
        }
        path.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            visit(node, graph, &mut state, &mut Vec::new(), &mut out);
        }
    }
    out
}

fn src_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = import_graph(&src_dir());
    assert!(graph.len() > 20, "read only {} modules", graph.len());
    // A few edges that must be seen, so a reader that sees nothing cannot pass.
    let edge = |from: &str, to: &str| {
        let split = |s: &str| s.split("::").map(str::to_string).collect::<Module>();
        graph.get(&split(from)).is_some_and(|t| t.contains(&split(to)))
    };
    assert!(edge("tally::count", "metrics") && edge("receiver", "http") && edge("emnify::scan", "emnify::model"));
    assert!(edge("simulator::http", "simulator") && edge("config::parse", "timefmt"));
    let found: Vec<String> =
        cycles(&graph).iter().map(|c| c.iter().map(name).collect::<Vec<_>>().join(" -> ")).collect();
    assert!(found.is_empty(), "import cycles in src/:\n{}", found.join("\n"));
}

#[test]
fn only_config_app_and_main_know_the_command_line() {
    let mut knowing = Vec::new();
    let mut stack = vec![src_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let code = production_code(&std::fs::read_to_string(&path).expect("a source file"));
            let names_cli =
                code.contains("clap::") || code.contains("crate::config::") || code.contains("SimulateArgs");
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let at_top = path.parent() == Some(src_dir().as_path());
            let in_config = path.parent() == Some(src_dir().join("config").as_path());
            if names_cli && !in_config && !(at_top && matches!(file.as_str(), "app.rs" | "main.rs")) {
                knowing.push(path.display().to_string());
            }
        }
    }
    assert!(knowing.is_empty(), "these files know the command line: {knowing:?}");
}

/// The checker itself: it must find a cycle through a group import, `super::`, and a child path,
/// and must not be fooled by paths in comments, strings or tests.
#[test]
fn the_checker_finds_cycles_and_ignores_comments_strings_and_tests() {
    let module =
        |s: &str| if s.is_empty() { Vec::new() } else { s.split("::").map(str::to_string).collect::<Module>() };
    let sources = |files: &[(&str, &str)]| -> BTreeMap<Module, String> {
        files.iter().map(|(m, text)| (module(m), text.to_string())).collect()
    };
    let cyclic = sources(&[
        ("", "pub mod a; pub mod b; pub mod c;"),
        ("a", "use crate::{b::Thing, c};"),
        ("b", "fn f() { crate::c::g() }"),
        ("c", "pub mod d; use d::X;"),
        ("c::d", "use super::super::a::Y; // crate::nothing"),
    ]);
    let found = cycles(&graph_of(&cyclic));
    assert_eq!(found.len(), 1, "{found:?}");
    let names: BTreeSet<String> = found[0].iter().map(name).collect();
    assert_eq!(names, ["a", "b", "c", "c::d"].into_iter().map(String::from).collect());

    let clean = sources(&[
        ("", "pub mod a; pub mod b;"),
        ("a", "use crate::b::X; const S: &str = \"crate::b is fine\"; const R: &str = r#\"crate::a\"#;"),
        ("b", "/* crate::a */ fn f(c: char) -> bool { c == '\"' } // crate::a\n#[cfg(test)]\nmod tests { use crate::a::*; }"),
    ]);
    assert!(cycles(&graph_of(&clean)).is_empty());
    assert_eq!(graph_of(&clean)[&module("a")], BTreeSet::from([module("b")]));
}
