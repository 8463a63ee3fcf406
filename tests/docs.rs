//! Checks of the documentation, so that it cannot drift from the code without a failing test:
//!
//! - docs/reference/policy.md lists every field of policies/scalingpolicy.schema.json, and no
//!   field the schema lacks. A field is listed as its path in backticks in the first column of a
//!   table whose first header is `field`: `spec.horizontal.scaleUp.cooldown`, with `[]` for the
//!   items of a list (`spec.horizontal.metrics[].name`). Maps (`metadata.labels`) are one field.
//! - docs/reference/commands.md has a `## `setpoint <command>`` section for every command that
//!   `setpoint --help` lists, and the flag table of each section lists exactly the flags that
//!   `setpoint <command> --help` prints (a row whose first cell starts with `` `--flag``).
//! - policies/scalingpolicy.schema.json (hand-written for editors) has exactly the spec fields
//!   of the model, which the CRD's schema is generated from ([`setpoint::policy::crd`]).
//! - README.md stays at most 10,000 bytes.
//! - Every relative link in README.md, docs/**/*.md, deploy/README.md and
//!   policies/examples/README.md points at a file or folder that exists, and a `#fragment` at a
//!   heading of the Markdown file it names.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The most README.md may hold, in bytes.
const README_LIMIT: usize = 10_000;

/// The policy reference page, from the repository's root.
const POLICY_PAGE: &str = "docs/reference/policy.md";

/// The command reference page, from the repository's root.
const COMMANDS_PAGE: &str = "docs/reference/commands.md";

/// The policy JSON Schema, from the repository's root.
const SCHEMA: &str = "policies/scalingpolicy.schema.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every property path of `schema`, `$ref`s resolved, list items as `[]`.
fn schema_paths(schema: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(schema, schema, "", &mut out, 0);
    out
}

fn walk(root: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>, depth: usize) {
    assert!(
        depth < 64,
        "{SCHEMA}: $ref nesting deeper than 64 at {prefix}"
    );
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("{SCHEMA}: unsupported $ref {r} at {prefix}"));
        let target = root
            .pointer(&format!("/$defs/{name}"))
            .unwrap_or_else(|| panic!("{SCHEMA}: $ref {r} at {prefix} names no definition"));
        walk(root, target, prefix, out, depth + 1);
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in props {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(path.clone());
            walk(root, child, &path, out, depth + 1);
        }
    }
    if let Some(items) = node.get("items") {
        walk(root, items, &format!("{prefix}[]"), out, depth + 1);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for branch in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(root, branch, prefix, out, depth + 1);
        }
    }
}

/// The cells of a Markdown table row, trimmed (None for a line that is not a row).
fn cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?;
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    Some(inner.split('|').map(str::trim).collect())
}

/// The fields a reference page lists: the first column of every table headed `field`. A row
/// whose first cell is not one path in backticks is an error, reported as `line N: ...`.
fn documented_paths(page: &str) -> Result<BTreeSet<String>, Vec<String>> {
    let mut out = BTreeSet::new();
    let mut errors = Vec::new();
    let mut in_table = false;
    for (n, line) in page.lines().enumerate() {
        let Some(row) = cells(line) else {
            in_table = false;
            continue;
        };
        if row.first() == Some(&"field") {
            in_table = true;
            continue;
        }
        if !in_table
            || row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        let first = row[0];
        match first.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
            Some(path) if !path.is_empty() && !path.contains('`') => {
                if !out.insert(path.to_owned()) {
                    errors.push(format!("line {}: `{path}` is listed twice", n + 1));
                }
            }
            _ => errors.push(format!(
                "line {}: the first cell {first:?} is not one field path in backticks",
                n + 1
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What the page lacks and what it lists that the schema does not have, as one message (None
/// when they agree).
fn compare(schema: &BTreeSet<String>, page: &str) -> Option<String> {
    let documented = match documented_paths(page) {
        Ok(d) => d,
        Err(errors) => return Some(errors.join("\n")),
    };
    let missing: Vec<&String> = schema.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(schema).collect();
    if missing.is_empty() && unknown.is_empty() {
        return None;
    }
    let list = |v: &[&String]| {
        v.iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut msg = String::new();
    if !missing.is_empty() {
        msg += &format!(
            "{} fields of {SCHEMA} are missing from {POLICY_PAGE} (add a row `| `path` | type | default | meaning |`):\n{}\n",
            missing.len(),
            list(&missing)
        );
    }
    if !unknown.is_empty() {
        msg += &format!(
            "{} fields listed in {POLICY_PAGE} are not in {SCHEMA}:\n{}\n",
            unknown.len(),
            list(&unknown)
        );
    }
    Some(msg)
}

#[test]
fn the_policy_reference_lists_every_field_of_the_schema() {
    let schema: Value = serde_json::from_str(&read(&root().join(SCHEMA))).unwrap();
    let paths = schema_paths(&schema);
    assert!(
        paths.contains("spec.horizontal.scaleDown.limits[].per")
            && paths.contains("spec.vertical.usage.cpu"),
        "the schema walk misses nested fields: {paths:?}"
    );
    if let Some(msg) = compare(&paths, &read(&root().join(POLICY_PAGE))) {
        panic!("{msg}");
    }
}

#[test]
fn a_field_left_out_or_made_up_is_reported() {
    let schema: Value = serde_json::from_str(&read(&root().join(SCHEMA))).unwrap();
    let paths = schema_paths(&schema);
    let page = read(&root().join(POLICY_PAGE));
    let gone = "`spec.horizontal.scaleUp.cooldown`";
    let without: String = page
        .lines()
        .filter(|l| !l.starts_with(&format!("| {gone} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without.len(), page.len(), "the page lists {gone}");
    let msg = compare(&paths, &without).expect("a missing field is reported");
    assert!(
        msg.contains("missing") && msg.contains("  spec.horizontal.scaleUp.cooldown"),
        "{msg}"
    );
    let extra = page.replacen(
        &format!("| {gone} "),
        "| `spec.horizontal.scaleUp.warmup` | duration | | made up |\n| `spec.horizontal.scaleUp.cooldown` ",
        1,
    );
    let msg = compare(&paths, &extra).expect("an unknown field is reported");
    assert!(
        msg.contains("not in") && msg.contains("  spec.horizontal.scaleUp.warmup"),
        "{msg}"
    );
}

#[test]
fn the_readme_is_at_most_10_kb() {
    let size = read(&root().join("README.md")).len();
    assert!(
        size <= README_LIMIT,
        "README.md is {size} bytes, more than {README_LIMIT}: move detail to a page in docs/"
    );
}

/// The Markdown files whose links are checked, relative to the root.
fn markdown_files() -> Vec<PathBuf> {
    fn under(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                under(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let root = root();
    let mut files = vec![
        root.join("README.md"),
        root.join("deploy/README.md"),
        root.join("policies/examples/README.md"),
    ];
    under(&root.join("docs"), &mut files);
    files
}

/// The text of `page` outside fenced code blocks, line by line with line numbers.
fn prose(page: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (n, line) in page.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((n + 1, line));
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of one line, outside code spans.
fn links(line: &str) -> Vec<String> {
    let mut outside = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            outside += part;
        } else {
            outside += "``";
        }
    }
    let mut out = Vec::new();
    let mut rest = outside.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        out.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
        rest = &rest[end..];
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown page's headings, duplicates numbered as GitHub does.
fn anchors(page: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, line) in prose(page) {
        let Some(text) = line.strip_prefix('#') else {
            continue;
        };
        let text = text.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let base = slug(text);
        let mut anchor = base.clone();
        let mut n = 0;
        while out.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.insert(anchor);
    }
    out
}

#[test]
fn relative_links_point_at_what_exists() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let page = read(&file);
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for (n, line) in prose(&page) {
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let resolved = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                if !resolved.exists() {
                    broken.push(format!("{shown}:{n}: {target}: no such file"));
                    continue;
                }
                if let Some(f) = fragment {
                    let is_md = resolved.extension().is_some_and(|x| x == "md");
                    if is_md && !anchors(&read(&resolved)).contains(f) {
                        broken.push(format!("{shown}:{n}: {target}: no heading #{f} there"));
                    }
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no relative link found: the link parser is broken"
    );
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_link_and_anchor_parsers_read_markdown_as_github_does() {
    assert_eq!(
        links("see [a](x.md), `[not](code.md)` and [b](../y.md#part \"title\")"),
        ["x.md", "../y.md#part"]
    );
    assert_eq!(
        slug(" `setpoint run` (the daemon)"),
        "setpoint-run-the-daemon"
    );
    assert_eq!(
        slug("Horizontal and vertical on CPU together"),
        "horizontal-and-vertical-on-cpu-together"
    );
    let a = anchors("# A\n```\n# not a heading\n```\n## A\n#tag\n");
    assert_eq!(a, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
}

/// What `setpoint ARGS` prints on standard output.
fn setpoint(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_setpoint"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "setpoint {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The commands `setpoint --help` lists (without `help`).
fn commands() -> Vec<String> {
    let help = setpoint(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// The long flags in a help text or a page's table rows, without `--help`.
fn long_flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|w| w.strip_prefix("--"))
        .filter(|f| !f.is_empty() && *f != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_command_reference_lists_every_flag_of_every_command() {
    let page = read(&root().join(COMMANDS_PAGE));
    let commands = commands();
    assert!(commands.len() >= 5, "setpoint --help lists {commands:?}");
    let mut problems = Vec::new();
    for command in &commands {
        let heading = format!("## `setpoint {command}`");
        let Some(at) = page.find(&format!("{heading}\n")) else {
            problems.push(format!("no section {heading}"));
            continue;
        };
        let section = &page[at + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let rows: String = section
            .lines()
            .filter_map(cells)
            .filter_map(|row| row.first().map(|c| format!("{c}\n")))
            .filter(|c| c.starts_with("`--"))
            .collect();
        let documented = long_flags(&rows);
        let actual = long_flags(&setpoint(&[command, "--help"]));
        for f in actual.difference(&documented) {
            problems.push(format!("{heading}: --{f} is missing from the flag table"));
        }
        for f in documented.difference(&actual) {
            problems.push(format!(
                "{heading}: --{f} is not a flag of setpoint {command}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{COMMANDS_PAGE} and `setpoint --help` disagree:\n{}",
        problems.join("\n")
    );
}

/// The editors' JSON Schema stays hand-written (its `oneOf` for the fields of two shapes,
/// patterns and examples serve editors better than a structural schema), but it cannot drift
/// from the model: it has exactly the CRD's spec fields (the model's), and below the fields the
/// CRD leaves open (`tolerance`, `onMetricError`) only theirs.
#[test]
fn the_editors_schema_has_exactly_the_fields_of_the_model() {
    let crd = setpoint::policy::crd::definition();
    let spec = |paths: BTreeSet<String>| -> BTreeSet<String> {
        paths
            .into_iter()
            .filter(|p| p.starts_with("spec."))
            .collect()
    };
    let from_model = spec(schema_paths(
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
    ));
    let editors: Value = serde_json::from_str(&read(&root().join(SCHEMA))).unwrap();
    let from_editors = spec(schema_paths(&editors));
    assert!(from_model.len() > 50, "{from_model:?}");
    let open = [
        "spec.horizontal.tolerance.",
        "spec.horizontal.onMetricError.",
    ];
    let only_editors: Vec<&String> = from_editors
        .difference(&from_model)
        .filter(|p| !open.iter().any(|o| p.starts_with(o)))
        .collect();
    let only_model: Vec<&String> = from_model.difference(&from_editors).collect();
    assert!(
        only_editors.is_empty() && only_model.is_empty(),
        "{SCHEMA} has {only_editors:?} that the model lacks, and lacks {only_model:?}"
    );
}
