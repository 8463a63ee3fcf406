//! What is wrong with a policy file, and where: [`Problem`] and [`PolicyError`].

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// Field path such as `spec.horizontal.replicas.min` (empty at the top).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Errors from reading policies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    #[error("{}", render(path, problems))]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// A ScalingPolicy object that is not a valid policy (`ScalingPolicy <namespace>/<name>`,
    /// then the field path and the message of each problem).
    #[error("{}", render_object(object, problems))]
    InvalidObject {
        /// `ScalingPolicy <namespace>/<name>`.
        object: String,
        /// The object (its status says why it does not run).
        reference: super::ObjectRef,
        /// Every problem found (their line and column are of no use for an object: 0).
        problems: Vec<Problem>,
    },
    /// A policy file and a ScalingPolicy object define the same policy name.
    #[error(
        "policy {name} is defined by {first} and by {second}: a name is one policy (rename or \
         remove one of them)"
    )]
    TwoSources {
        /// The name.
        name: String,
        /// The source running it (`file policies/web.yaml`, `ScalingPolicy demo/web`).
        first: String,
        /// The source refused.
        second: String,
    },
    /// Two files define the same policy name.
    #[error("{}: policy name \"{name}\" is already used by {}", path.display(), first.display())]
    Duplicate {
        /// The second file.
        path: PathBuf,
        /// The name.
        name: String,
        /// The first file.
        first: PathBuf,
    },
    /// Two files scale the same target horizontally.
    #[error(
        "{}: policy \"{name}\" scales {target} horizontally, and so does policy \"{other}\" \
         of {}: a target takes one horizontal policy (put both policies' metrics into one; \
         a vertical-only policy beside it is fine)",
        path.display(),
        first.display()
    )]
    SharedTarget {
        /// The second file.
        path: PathBuf,
        /// Its policy.
        name: String,
        /// The target (`Deployment web`).
        target: String,
        /// The policy of the first file.
        other: String,
        /// The first file.
        first: PathBuf,
    },
    /// Two files right-size the same containers of a target.
    #[error(
        "{}: policy \"{name}\" right-sizes {what}, and so does policy \"{other}\" \
         of {}: a container takes one vertical policy, as a target takes one VPA (list every \
         container in one policy's spec.vertical.containers)",
        path.display(),
        first.display()
    )]
    SharedContainers {
        /// The second file.
        path: PathBuf,
        /// Its policy.
        name: String,
        /// The containers both right-size, of which target (`container app of Deployment
        /// web`).
        what: String,
        /// The policy of the first file.
        other: String,
        /// The first file.
        first: PathBuf,
    },
}

fn render(path: &Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", p.field)
            };
            format!(
                "{}:{}:{}: {field}{}",
                path.display(),
                p.line,
                p.column,
                p.message
            )
        })
        .collect();
    lines.join("\n")
}

fn render_object(object: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p.field.as_str() {
            "" => format!("{object}: {}", p.message),
            field => format!("{object}: {field}: {}", p.message),
        })
        .collect();
    lines.join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}
