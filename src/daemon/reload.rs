//! Policy reload: which policy files of the folder changed since the last look.
//!
//! The folder is polled (every 5 s by default): a ConfigMap mount swaps a `..data` symlink to a
//! new folder, which file-change notifications report on the symlink rather than on the files,
//! while a poll sees every file through its symlink. A file is read again only when its size,
//! modification time or inode changed, and counts as changed only when its bytes did.

use crate::policy::{self, PolicyError};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A change of one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new file, or new content in a known one.
    Changed(PathBuf),
    /// The file is gone.
    Removed(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    content: u64,
}

/// Remembers what the policy files of one folder looked like.
#[derive(Debug)]
pub struct Scanner {
    dir: PathBuf,
    seen: BTreeMap<PathBuf, Stamp>,
}

impl Scanner {
    /// A scanner of `dir` that has seen nothing yet (the first scan reports every file).
    pub fn new(dir: &Path) -> Scanner {
        Scanner {
            dir: dir.to_owned(),
            seen: BTreeMap::new(),
        }
    }

    /// The files that changed or went away since the last scan, in path order. A file that
    /// cannot be read is reported as changed (loading it then says why).
    pub fn scan(&mut self) -> Result<Vec<Change>, PolicyError> {
        let files = policy::files(&self.dir)?;
        let present: BTreeSet<&PathBuf> = files.iter().collect();
        let mut changes: Vec<Change> = self
            .seen
            .keys()
            .filter(|p| !present.contains(p))
            .map(|p| Change::Removed(p.clone()))
            .collect();
        for c in &changes {
            if let Change::Removed(p) = c {
                self.seen.remove(p);
            }
        }
        for f in files {
            let Ok(meta) = std::fs::metadata(&f) else {
                changes.push(Change::Changed(f));
                continue;
            };
            let old = self.seen.get(&f);
            let same_stamp = old.is_some_and(|o| {
                o.len == meta.len() && o.modified == meta.modified().ok() && o.inode == meta.ino()
            });
            if same_stamp {
                continue;
            }
            let content = match std::fs::read(&f) {
                Ok(bytes) => {
                    let mut h = DefaultHasher::new();
                    bytes.hash(&mut h);
                    h.finish()
                }
                Err(_) => {
                    changes.push(Change::Changed(f));
                    continue;
                }
            };
            let changed = old.is_none_or(|o| o.content != content);
            self.seen.insert(
                f.clone(),
                Stamp {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                    inode: meta.ino(),
                    content,
                },
            );
            if changed {
                changes.push(Change::Changed(f));
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("setpoint-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn new_changed_and_removed_files() {
        let d = dir("files");
        std::fs::write(d.join("a.yaml"), "a").unwrap();
        std::fs::write(d.join("b.yml"), "b").unwrap();
        std::fs::write(d.join("notes.txt"), "not a policy").unwrap();
        let mut s = Scanner::new(&d);
        assert_eq!(
            s.scan().unwrap(),
            vec![
                Change::Changed(d.join("a.yaml")),
                Change::Changed(d.join("b.yml"))
            ]
        );
        assert_eq!(s.scan().unwrap(), vec![]);
        std::fs::write(d.join("a.yaml"), "a2").unwrap();
        std::fs::remove_file(d.join("b.yml")).unwrap();
        assert_eq!(
            s.scan().unwrap(),
            vec![
                Change::Removed(d.join("b.yml")),
                Change::Changed(d.join("a.yaml"))
            ]
        );
        // Rewritten with the same bytes: not a change.
        std::fs::write(d.join("a.yaml"), "a2").unwrap();
        assert_eq!(s.scan().unwrap(), vec![]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_configmap_symlink_swap_is_seen() {
        // The layout the kubelet makes: web.yaml -> ..data/web.yaml, ..data -> ..v1.
        let d = dir("configmap");
        for (v, text) in [("..v1", "one"), ("..v2", "two")] {
            std::fs::create_dir(d.join(v)).unwrap();
            std::fs::write(d.join(v).join("web.yaml"), text).unwrap();
        }
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/web.yaml", d.join("web.yaml")).unwrap();
        let mut s = Scanner::new(&d);
        assert_eq!(s.scan().unwrap(), vec![Change::Changed(d.join("web.yaml"))]);
        assert_eq!(s.scan().unwrap(), vec![]);
        // The atomic swap: a new symlink renamed over ..data.
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert_eq!(s.scan().unwrap(), vec![Change::Changed(d.join("web.yaml"))]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
