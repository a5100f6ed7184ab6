//! The crate's layers, checked on its source (docs/ARCHITECTURE.md): each module uses only
//! its own layer or the layers above it, no two modules import each other, and a type name
//! means one thing in the whole crate. Reads `src/` as text; needs no root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, from the bottom: a module may use its own layer and those listed before it.
const LAYERS: &[&str] = &["wire", "judge", "ipc|instrument", "daemon", "cli", "crate"];

/// Names several types may share: the packet view of each wire format (smoltcp's habit).
const SHARED_NAMES: &[&str] = &["Packet"];

/// Every source file as (module path, text): `daemon::ledger`, `wire`, `crate` for lib.rs.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut name = relative.to_string_lossy().replace('/', "::");
            if let Some(parent) = name.strip_suffix("::mod") {
                name = parent.to_string();
            }
            if name == "lib" || name == "main" {
                name = "crate".to_string();
            }
            found.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// The code of a file without its comments (doc links name modules without using them).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest known module a `crate::...` path names.
fn module_of<'a>(path: &str, known: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|m| known.get_key_value(&m).map(|(k, _)| k.as_str()))
}

/// The paths `code`, the text of `module`, names through `crate::`, `super::` or `self::`,
/// written from the crate's root (`daemon::ledger::Ledger`), with `{a, b::c}` groups spelled out.
fn paths(module: &str, code: &str) -> Vec<String> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let here: Vec<&str> = module.split("::").filter(|m| *m != "crate").collect();
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("::") {
        let start = code[..at].rfind(|c: char| !is_word(c)).map_or(0, |i| i + 1);
        let first = &code[start..at];
        let before = code[..start].chars().last();
        if !["crate", "super", "self"].contains(&first)
            || before.is_some_and(|c| is_word(c) || c == ':')
        {
            continue;
        }
        let rest = &code[start..];
        let end = rest
            .find(|c: char| !(is_word(c) || c == ':'))
            .unwrap_or(rest.len());
        let mut base: Vec<&str> = Vec::new();
        let mut words = rest[..end].split("::").filter(|w| !w.is_empty()).peekable();
        match words.peek() {
            Some(&"crate") => {
                words.next();
            }
            _ => base.extend(&here),
        }
        while let Some(&w) = words.peek() {
            match w {
                "self" => {}
                "super" => {
                    base.pop();
                }
                _ => break,
            }
            words.next();
        }
        base.extend(words);
        let path = base.join("::");
        let group = rest[end..]
            .strip_prefix('{')
            .filter(|_| rest[..end].ends_with("::"));
        match group.and_then(|g| g.split_once('}')) {
            Some((items, _)) => {
                for item in items.split(',').filter_map(|i| i.split_whitespace().next()) {
                    let item = item.trim_start_matches("self").trim_start_matches("::");
                    paths.push(
                        [path.as_str(), item]
                            .join("::")
                            .trim_matches(':')
                            .to_string(),
                    );
                }
            }
            None => paths.push(path),
        }
    }
    paths
}

/// Which modules each module uses (its own descendants and ancestors aside).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    let mut uses = BTreeMap::new();
    for (module, text) in &known {
        let mut used = BTreeSet::new();
        for path in paths(module, &code(text)) {
            let Some(target) = module_of(&path, &known) else {
                continue;
            };
            let related = target == module
                || module.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{module}::"));
            if !related {
                used.insert(target.to_string());
            }
        }
        uses.insert(module.clone(), used);
    }
    uses
}

/// Every (module, a module it uses) pair.
fn edges() -> Vec<(String, String)> {
    let pairs = imports().into_iter();
    pairs
        .flat_map(|(module, used)| used.into_iter().map(move |u| (module.clone(), u)))
        .collect()
}

/// The top-level folder (or file) of a module: its layer's name.
fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The layer of a module: its index in [`LAYERS`]; test helpers (`testdir`, `oracle`) none.
fn layer(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|l| l.split('|').any(|name| name == top(module)))
}

#[test]
fn paths_through_crate_super_and_self_are_uses() {
    let code = "use super::ipv4 as probe;\nuse super::{checksum, Error};\n\
        let a = self::field::LENGTH;\ncrate::judge::stack::owed();\n\
        use crate::ipc::{self, lines::Lines};\nsuper::super::cli::parse();\nmy_crate::x::y;";
    assert_eq!(
        paths("wire::ip", code),
        [
            "wire::ipv4",
            "wire::checksum",
            "wire::Error",
            "wire::ip::field::LENGTH",
            "judge::stack::owed",
            "ipc",
            "ipc::lines::Lines",
            "cli::parse",
        ]
    );
    assert_eq!(paths("crate", "use crate::wire::ipv4;"), ["wire::ipv4"]);
}

#[test]
fn no_two_modules_import_each_other() {
    let edges = edges();
    let mutual: Vec<_> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .collect();
    assert!(
        mutual.is_empty(),
        "modules importing each other: {mutual:#?}"
    );
}

#[test]
fn each_layer_uses_only_the_layers_above_it() {
    let upward: Vec<_> = edges()
        .into_iter()
        .filter(|(a, b)| top(a) != top(b))
        .filter(|(a, b)| layer(a).zip(layer(b)).is_some_and(|(a, b)| b >= a))
        .collect();
    assert!(
        upward.is_empty(),
        "a layer using its own or a lower one: {upward:#?}"
    );
}

#[test]
fn a_type_name_means_one_thing() {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, text) in modules() {
        for line in code(&text).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(i) = words
                .iter()
                .position(|w| ["struct", "enum", "trait"].contains(w))
            else {
                continue;
            };
            let Some(name) = words.get(i + 1) else {
                continue;
            };
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                seen.entry(name).or_default().push(module.clone());
            }
        }
    }
    let twice: Vec<_> = seen
        .iter()
        .filter(|(name, modules)| modules.len() > 1 && !SHARED_NAMES.contains(&name.as_str()))
        .collect();
    assert!(twice.is_empty(), "type names declared twice: {twice:#?}");
    assert!(seen.len() > 50, "found only {} type names", seen.len());
}
