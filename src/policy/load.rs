//! Reading policies: the text of one file ([`parse`]), one file ([`load`]), folders
//! ([`files`], [`load_all`]).

use super::model::PolicyFile;
use super::validate::Validator;
use super::{Policy, PolicyError, Problem, shared_target};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Reads and validates one policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    parse(&text, path)
}

/// Policy files in a folder (`*.yaml`, `*.yml`, sorted), or the path itself when it is a file.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if yaml && !hidden && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every policy under `paths` (files or folders). Returns the good policies and one error
/// per bad file; a bad file never hides the good ones.
pub fn load_all(paths: &[PathBuf]) -> (Vec<Policy>, Vec<PolicyError>) {
    let (mut good, mut bad) = (Vec::<Policy>::new(), Vec::new());
    for p in paths {
        match files(p) {
            Err(e) => bad.push(e),
            Ok(fs) => {
                for f in fs {
                    match load(&f) {
                        Ok(pol) => match good.iter().find(|g| g.name == pol.name) {
                            Some(first) => bad.push(PolicyError::Duplicate {
                                path: f,
                                name: pol.name,
                                first: first.source.clone(),
                            }),
                            None => match shared_target(&pol, &good) {
                                Some(e) => bad.push(e),
                                None => good.push(pol),
                            },
                        },
                        Err(e) => bad.push(e),
                    }
                }
            }
        }
    }
    (good, bad)
}

/// Parses and validates the text of one policy file; `path` is used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
    let invalid = |problems| PolicyError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let mut track = serde_path_to_error::Track::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        PolicyFile::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    });
    let file = match parsed {
        Ok(f) => f,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((0, 0));
            let field = field_path(&track.path().to_string());
            return Err(invalid(vec![Problem {
                line,
                column,
                field,
                message: plain_message(&e),
            }]));
        }
    };
    let mut v = Validator::default();
    let policy = v.policy(file, path);
    match policy {
        Some(p) if v.problems.is_empty() => Ok(p),
        _ => Err(invalid(v.problems)),
    }
}

/// serde_path_to_error writes `?` for the root and `[0]` for indexes; keep dots and indexes.
fn field_path(p: &str) -> String {
    let p = p.trim_start_matches('?').trim_start_matches('.');
    // Spanned values show up as an extra `value` segment; it is not a field of the file.
    p.replace(".value.", ".")
        .trim_end_matches(".value")
        .replace(".value[", "[")
        .to_string()
}

/// The parser's message without its "error: line N column M:" prefix, plus a hint where the
/// parser's own words are terse.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("").trim();
    let msg = first.strip_prefix("error:").unwrap_or(first).trim_start();
    let msg = match msg.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, rest)) => rest,
        None => msg,
    };
    match msg.strip_prefix("invalid ") {
        Some(t @ ("u32" | "u64" | "i64")) => format!("invalid {t}: expected a whole number"),
        Some(t @ ("f64" | "f32")) => format!("invalid {t}: expected a number"),
        _ => msg.to_string(),
    }
}
