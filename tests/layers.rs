//! The library's modules form layers: no module reaches, through `crate::` or `super::` paths,
//! a module that reaches back to it. A parent module may name its own children (it declares and
//! assembles them); every other path counts. Test code (`#[cfg(test)] mod ...`) is left out:
//! tests may use whatever they test with.
//!
//! The module tree is read the way rustc reads it: from `src/lib.rs`, through each `mod name;`
//! and its `#[path]`. A file shared by several `cfg`s under one name (the kernel keyring and its
//! stand-in) is one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// The layers, from the ground up, as docs/layers.md's map shows them: a module belongs to the
/// entry that names the longest prefix of its path, and may use only its own layer and those
/// below it.
const LAYERS: [(&str, &[&str]); 7] = [
    (
        "ground",
        &[
            "vault",
            "files",
            "paths",
            "ownership",
            "auth_file",
            "import",
            "audit",
            "server_url",
            "clock",
            "secret_buffer",
            "serde_secret",
            "store::description",
            "warning",
            "causes",
            "printable",
        ],
    ),
    ("memory", &["secret_cache", "os", "unlock::cache"]),
    (
        "token exchange",
        &[
            "token",
            "kubelet::exchange",
            "kubelet::settings",
            "kubelet::service_account",
        ],
    ),
    ("settings", &["config", "store::openbao::settings"]),
    ("stores", &["backend", "store", "unlock", "error"]),
    (
        "the keeper",
        &[
            "credentials",
            "token::keeper",
            "token::chain::answer",
            "pending_erase",
        ],
    ),
    (
        "edges",
        &["protocol", "kubelet", "export", "setup", "migrate"],
    ),
];

fn layer(module: &Module) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(at, (name, prefixes))| prefixes.iter().map(move |p| (at, *name, *p)))
        .filter(|(_, _, prefix)| {
            let prefix: Vec<&str> = prefix.split("::").collect();
            module.len() >= prefix.len() && module.iter().zip(&prefix).all(|(a, b)| a == b)
        })
        .max_by_key(|(_, _, prefix)| prefix.split("::").count())
        .map(|(at, name, _)| (at, name))
}

#[test]
fn every_module_uses_only_its_layer_and_those_below() {
    let modules = modules();
    let edges = edges(&modules);
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        if from.is_empty() {
            continue;
        }
        let Some((at, from_layer)) = layer(from) else {
            wrong.push(format!(
                "{} is in no layer: add it to LAYERS and the map in docs/layers.md",
                name(from)
            ));
            continue;
        };
        for to in targets {
            if let Some((to_at, to_name)) = layer(to)
                && to_at > at
            {
                wrong.push(format!(
                    "{} ({from_layer}) uses {} ({to_name}), a layer above it",
                    name(from),
                    name(to)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_library_has_no_import_cycle() {
    let modules = modules();
    let edges = edges(&modules);
    let cycles = cycles(&modules, &edges);
    let shown: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let names: Vec<String> = cycle.iter().map(name).collect();
            let reasons: Vec<String> = cycle
                .iter()
                .flat_map(|from| {
                    edges[from]
                        .iter()
                        .filter(|to| cycle.contains(to))
                        .map(move |to| format!("{} -> {}", name(from), name(to)))
                })
                .collect();
            format!(
                "{} modules: {}\n    through {}",
                cycle.len(),
                names.join(", "),
                reasons.join("; ")
            )
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "{} import cycle(s) in src/ (see the layer map in docs/layers.md):\n  {}",
        cycles.len(),
        shown.join("\n  ")
    );
}

/// The checker itself sees a cycle where there is one, and none where a parent names a child.
#[test]
fn the_checker_finds_a_planted_cycle() {
    let a: Module = vec!["a".into()];
    let b: Module = vec!["b".into()];
    let parent: Module = vec!["p".into()];
    let child: Module = vec!["p".into(), "c".into()];
    let modules: BTreeMap<Module, Vec<PathBuf>> = [&a, &b, &parent, &child]
        .into_iter()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    edges.insert(a.clone(), [b.clone()].into());
    edges.insert(b.clone(), [a.clone()].into());
    edges.insert(parent.clone(), BTreeSet::new());
    edges.insert(child.clone(), [parent.clone()].into());
    assert_eq!(cycles(&modules, &edges), vec![vec![a.clone(), b.clone()]]);

    let source = "use super::{x::Y, z};\nfn f() { crate::a::f(); }\n#[serde(with = \"crate::c::d\")]\n#[cfg(test)]\nmod tests { use crate::b; }";
    let found = paths(&strip(source));
    assert!(found.contains(&vec!["super".to_owned(), "x".into(), "Y".into()]));
    assert!(found.contains(&vec!["super".to_owned(), "z".into()]));
    assert!(found.contains(&vec!["crate".to_owned(), "a".into(), "f".into()]));
    assert!(found.contains(&vec!["crate".to_owned(), "c".into(), "d".into()]));
    assert!(!found.iter().any(|p| p.contains(&"b".to_owned())));
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module of the library and the files it is read from.
fn modules() -> BTreeMap<Module, Vec<PathBuf>> {
    let mut found = BTreeMap::new();
    let mut queue = vec![(Vec::new(), src().join("lib.rs"), true)];
    while let Some((module, file, owns_dir)) = queue.pop() {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let dir = if owns_dir {
            file.parent().expect("a parent").to_path_buf()
        } else {
            file.with_extension("")
        };
        for (child, path) in declared_modules(&text) {
            let mut child_module = module.clone();
            child_module.push(child.clone());
            let (child_file, child_owns_dir) = match path {
                Some(path) => (file.parent().expect("a parent").join(path), false),
                None if dir.join(format!("{child}.rs")).exists() => {
                    (dir.join(format!("{child}.rs")), false)
                }
                None => (dir.join(&child).join("mod.rs"), true),
            };
            queue.push((child_module, child_file, child_owns_dir));
        }
        found.entry(module).or_insert_with(Vec::new).push(file);
    }
    found
}

/// `mod name;` declarations (not inline modules), each with its `#[path]` if it has one.
fn declared_modules(text: &str) -> Vec<(String, Option<String>)> {
    let mut declared = Vec::new();
    let mut path = None;
    let mut test_only = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#[path = \"") {
            path = rest.split('"').next().map(str::to_owned);
            continue;
        }
        if line == "#[cfg(test)]" {
            test_only = true;
            continue;
        }
        // A module compiled only for tests is test code, left out like inline test modules.
        if std::mem::take(&mut test_only) && line.split_whitespace().any(|w| w == "mod") {
            path = None;
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "mod");
        if let Some(at) = at
            && words[..at]
                .iter()
                .all(|w| w.starts_with("pub") || w.starts_with("#["))
            && let Some(name) = words.get(at + 1).and_then(|w| w.strip_suffix(';'))
        {
            declared.push((name.to_owned(), path.take()));
        } else if !line.starts_with("#[") {
            path = None;
        }
    }
    declared
}

/// Which modules each module's own code names.
fn edges(modules: &BTreeMap<Module, Vec<PathBuf>>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut edges = BTreeMap::new();
    for (module, files) in modules {
        let mut targets = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file).expect("read above");
            for path in paths(&strip(&text)) {
                let Some(absolute) = absolute(module, &path) else {
                    continue;
                };
                let target = longest_module(modules, &absolute);
                // A parent naming its own descendants is not a dependency on them.
                if target != *module && !target.starts_with(module) {
                    targets.insert(target);
                }
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

fn absolute(module: &Module, path: &[String]) -> Option<Module> {
    match path.first().map(String::as_str) {
        Some("crate") => Some(path[1..].to_vec()),
        Some("super") => {
            let mut base = module.clone();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        _ => None,
    }
}

fn longest_module(modules: &BTreeMap<Module, Vec<PathBuf>>, path: &Module) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains_key(prefix))
        .unwrap_or_default()
}

/// The source without comments, string and char literals, and `#[cfg(test)]` modules.
fn strip(text: &str) -> String {
    strip_test_modules(&strip_comments_and_strings(text))
}

fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    i += 2;
                } else if chars[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if chars[i] == 'r'
            && (rest.get(1) == Some(&'"') || rest.get(1) == Some(&'#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            let hashes = rest[1..].iter().take_while(|c| **c == '#').count();
            if rest.get(1 + hashes) != Some(&'"') {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if chars[i] == '"' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            let literal: String = chars[start..i.min(chars.len())].iter().collect();
            i += 1;
            // A path in an attribute (`serialize_with = "crate::..."`) is a dependency too.
            if literal.starts_with("crate::") || literal.starts_with("super::") {
                out.push_str(&literal);
            } else {
                out.push_str("\"\"");
            }
        } else if chars[i] == '\'' && (rest.get(1) == Some(&'\\') || rest.get(2) == Some(&'\'')) {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn strip_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let head = after.trim_start();
        let is_module = head.split_whitespace().take(3).any(|word| word == "mod");
        let open = after.find('{');
        let semicolon = after.find(';');
        match open {
            Some(open) if is_module && semicolon.is_none_or(|s| s > open) => {
                let mut depth = 0;
                let mut end = after.len();
                for (offset, c) in after[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Every `crate::`/`super::` path the code names: in `use` trees (braces expanded) and inline.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = find_word(rest, "use") {
        let tail = &rest[at + 3..];
        let end = tail.find(';').unwrap_or(tail.len());
        let tree: String = tail[..end].chars().filter(|c| !c.is_whitespace()).collect();
        if tree.starts_with("crate::") || tree.starts_with("super::") {
            expand(&[], &tree, &mut found);
        }
        rest = &tail[end..];
    }
    for start in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(at) = find_word(rest, start.trim_end_matches(':')) {
            let tail = &rest[at..];
            if tail.starts_with(start) {
                let path: Vec<String> = tail
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                found.push(path);
            }
            rest = &tail[start.len().min(tail.len())..];
        }
    }
    found
}

/// Where `word` starts as a whole word.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(word).map(|at| at + from) {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if boundary(before) && boundary(after) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn expand(prefix: &[String], tree: &str, found: &mut Vec<Vec<String>>) {
    for part in split_top(tree) {
        match part.find('{') {
            Some(open) => {
                let mut head = prefix.to_vec();
                head.extend(segments(part[..open].trim_end_matches("::")));
                expand(&head, &part[open + 1..part.len() - 1], found);
            }
            None => {
                let path = part.split("as").next().unwrap_or(part);
                let mut full = prefix.to_vec();
                full.extend(segments(path).filter(|s| s != "self" && s != "*"));
                found.push(full);
            }
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn split_top(tree: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(
    modules: &BTreeMap<Module, Vec<PathBuf>>,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, v: &'a Module) {
        let n = walk.index.len();
        walk.index.insert(v, n);
        walk.low.insert(v, n);
        walk.stack.push(v);
        let edges = walk.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !walk.index.contains_key(w) {
                visit(walk, w);
                let low = walk.low[v].min(walk.low[w]);
                walk.low.insert(v, low);
            } else if walk.stack.contains(&w) {
                let low = walk.low[v].min(walk.index[w]);
                walk.low.insert(v, low);
            }
        }
        if walk.low[v] == walk.index[v] {
            let mut component = Vec::new();
            while let Some(w) = walk.stack.pop() {
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                walk.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in modules.keys() {
        if !walk.index.contains_key(module) {
            visit(&mut walk, module);
        }
    }
    walk.found.sort();
    walk.found
}

/// The library decides and returns typed errors; only the binaries turn errors into messages
/// with `anyhow`, so no file of the library names it.
#[test]
fn only_the_binaries_use_anyhow() {
    let bin = src().join("bin");
    let users: Vec<String> = library_files(&src())
        .into_iter()
        .filter(|file| !file.starts_with(&bin))
        .filter(|file| {
            std::fs::read_to_string(file)
                .expect("readable")
                .contains("anyhow")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(users.is_empty(), "the library uses anyhow in {users:?}");
}

fn library_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(library_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The CLI only parses, asks the library and shows: no function of it is longer than 60 lines
/// (from its `fn` line to its closing brace).
#[test]
fn cli_functions_are_short() {
    const MAX: usize = 60;
    let mut long = Vec::new();
    let dir = src().join("bin/coffer/cli");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let is_fn = code.starts_with("fn ")
                || (code.starts_with("pub") && code.split_whitespace().nth(1) == Some("fn"));
            if !is_fn || code.ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            let Some(end) = lines[at..].iter().position(|l| *l == close) else {
                continue;
            };
            if end + 1 > MAX {
                long.push(format!(
                    "{}:{} is {} lines",
                    file.display(),
                    at + 1,
                    end + 1
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "CLI functions longer than {MAX} lines (move the decision into the library):\n{}",
        long.join("\n")
    );
}
