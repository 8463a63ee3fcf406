//! The dependency rules of `src/lib.rs`'s `# Layout`, held against the code: every `crate::`
//! path in `src/**/*.rs` (in `use` lines and in code; comments and string literals do not
//! count) must point into a room that its own room may import, and only the cluster adapter
//! names kube-rs types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each room and the rooms it may import (besides itself). `text` is a leaf anyone may use.
const RULES: &[(&str, &[&str])] = &[
    ("text", &[]),
    ("forecast", &["text"]),
    ("engine", &["forecast", "text"]),
    // policy may import only the Prometheus adapter's config type (see PROMETHEUS_CONFIG).
    ("policy", &["engine", "forecast", "text", "prometheus"]),
    ("prometheus", &["engine", "text"]),
    ("cluster", &["engine", "policy", "text"]),
    (
        "tick",
        &[
            "engine",
            "forecast",
            "policy",
            "prometheus",
            "cluster",
            "text",
        ],
    ),
    ("sim", &["engine", "forecast", "policy", "text"]),
    (
        "backtest",
        &["engine", "forecast", "policy", "prometheus", "sim", "text"],
    ),
    (
        "daemon",
        &[
            "engine",
            "forecast",
            "policy",
            "prometheus",
            "cluster",
            "tick",
            "text",
        ],
    ),
    (
        "cli",
        &[
            "engine",
            "forecast",
            "policy",
            "prometheus",
            "cluster",
            "tick",
            "sim",
            "backtest",
            "daemon",
            "text",
        ],
    ),
];

/// What of the Prometheus adapter the policy model may name.
const PROMETHEUS_CONFIG: &[&str] = &["PrometheusConfig", "config"];

/// Crates whose types only the cluster adapter names.
const KUBE_CRATES: &[&str] = &["kube", "k8s_openapi", "kube_lease_manager"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room of a file: the first component under src/ (`src/tick/mod.rs` is in `tick`,
/// `src/backtest.rs` in `backtest`); None for the crate root and the binary.
fn room_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(stem) => Some(stem.to_string()),
        None => Some(first),
    }
}

/// The code of a Rust file without comments, string and char literals (each replaced by a
/// space, newlines kept, so that line numbers stay).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&b, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match b.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some('\n') => out.push('\n'),
                    _ => {}
                }
                j += 1;
            }
            out.push(' ');
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                } else if b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && is_char_literal(&b, i) {
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// `'a'`, `'\n'`, `'\''`, but not a lifetime (`'a`, `'static`).
fn is_char_literal(b: &[char], i: usize) -> bool {
    matches!(
        (b.get(i + 1), b.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// Every path that follows `crate::` in `code`: (line, first segment, second segment). A
/// braced group (`crate::{engine::Sample, policy}`) gives one path per top-level item.
fn crate_paths(code: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(k) = rest.find("crate::") {
        let start = offset + k;
        let before = code[..start].chars().next_back();
        let after = &code[start + "crate::".len()..];
        offset = start + "crate::".len();
        rest = &code[offset..];
        // `$crate::` and `my_crate::` are not this crate's root.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        let after = after.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(split(line, &item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            if !item.trim().is_empty() {
                out.push(split(line, &item));
            }
        } else {
            out.push(split(line, after));
        }
    }
    out
}

fn split(line: usize, path: &str) -> (usize, String, String) {
    let word = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let first = word(path);
    let rest = path.trim_start()[first.len()..].trim_start();
    let second = rest.strip_prefix("::").map(word).unwrap_or_default();
    (line, first, second)
}

/// Where `code` names a kube-rs crate (`kube::`, `k8s_openapi::`, ...), not as a path inside
/// this crate (`cluster::kube::`).
fn kube_names(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for krate in KUBE_CRATES {
            let pat = format!("{krate}::");
            let mut from = 0;
            while let Some(k) = line[from..].find(&pat) {
                let at = from + k;
                let before = line[..at].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    out.push((n + 1, format!("{krate}::")));
                }
                from = at + pat.len();
            }
        }
    }
    out
}

/// The rule breaks in the files under `src`.
fn violations(src: &Path) -> Vec<String> {
    let rules: BTreeMap<&str, &[&str]> = RULES.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let Some(room) = room_of(src, file) else {
            continue;
        };
        let shown = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(file);
        let Some(allowed) = rules.get(room.as_str()) else {
            broken.push(format!(
                "{}: room {room} has no rule in tests/layout.rs (and src/lib.rs `# Layout`)",
                shown.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        let code = code_only(&text);
        for (line, first, second) in crate_paths(&code) {
            if first == room || first.is_empty() || first == "self" {
                continue;
            }
            if !rules.contains_key(first.as_str()) {
                // A crate-root item (a re-export or macro of lib.rs): not a room.
                continue;
            }
            let ok = allowed.contains(&first.as_str())
                && !(room == "policy"
                    && first == "prometheus"
                    && !PROMETHEUS_CONFIG.contains(&second.as_str()));
            if !ok {
                broken.push(format!(
                    "{}:{line}: {room} imports crate::{first}{}",
                    shown.display(),
                    if second.is_empty() {
                        String::new()
                    } else {
                        format!("::{second}")
                    }
                ));
            }
        }
        if room != "cluster" {
            for (line, name) in kube_names(&code) {
                broken.push(format!(
                    "{}:{line}: {room} names {name} (only cluster/ names kube-rs types)",
                    shown.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_import_follows_the_layout() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let broken = violations(&src);
    assert!(
        broken.is_empty(),
        "imports that break the layout of src/lib.rs:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rules_are_the_ones_the_crate_docs_state() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs is readable");
    for (room, allowed) in RULES {
        let row = lib
            .lines()
            .find(|l| l.starts_with(&format!("//! | `{room}")))
            .unwrap_or_else(|| panic!("src/lib.rs `# Layout` has no row for {room}"));
        for a in *allowed {
            assert!(
                row.contains(&format!("`{a}")) || row.contains("all below"),
                "src/lib.rs says of {room}: {row:?}, the test allows {a}"
            );
        }
    }
}

#[test]
fn a_broken_rule_is_caught() {
    let dir = std::env::temp_dir().join(format!("setpoint-layout-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("prometheus")).unwrap();
    std::fs::create_dir_all(src.join("policy")).unwrap();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    let write = |p: &str, t: &str| std::fs::write(src.join(p), t).unwrap();
    write(
        "prometheus/mod.rs",
        "use crate::cluster::ScaleState;\n// use crate::daemon::x;\nfn f() { let s = \"crate::tick\"; }\n",
    );
    write(
        "policy/mod.rs",
        "use crate::prometheus::PrometheusConfig;\nuse crate::{engine::Sample, prometheus::PrometheusClient};\n",
    );
    write(
        "engine/mod.rs",
        "fn f() -> crate::policy::Policy { todo!() }\nfn g(c: kube::Client) {}\nuse crate::cluster::kube::x;\n",
    );
    let broken = violations(&src);
    std::fs::remove_dir_all(&dir).ok();
    let has = |s: &str| broken.iter().any(|b| b.contains(s));
    assert!(
        has("prometheus/mod.rs:1: prometheus imports crate::cluster"),
        "{broken:#?}"
    );
    assert!(
        has("policy/mod.rs:2: policy imports crate::prometheus::PrometheusClient"),
        "{broken:#?}"
    );
    assert!(
        has("engine/mod.rs:1: engine imports crate::policy"),
        "{broken:#?}"
    );
    assert!(has("engine/mod.rs:2: engine names kube::"), "{broken:#?}");
    assert!(
        has("engine/mod.rs:3: engine imports crate::cluster"),
        "{broken:#?}"
    );
    // Comments, strings and the allowed config type are no breaks.
    assert!(!has("daemon") && !has("tick"), "{broken:#?}");
    assert!(!has("policy/mod.rs:1"), "{broken:#?}");
    assert_eq!(broken.len(), 5, "{broken:#?}");
}
