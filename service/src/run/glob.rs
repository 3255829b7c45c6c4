//! SaveFiles glob expansion, bounded: at most `limits::GLOB_MAX_ENTRIES`
//! directory entries looked at, `limits::GLOB_MAX_FILES` matches, and
//! `limits::GLOB_MAX_TIME`. `**` descends only into real directories (never
//! through a symlink), so a symlink loop cannot make it run forever; `*`, `?` and
//! `[...]` match one component each.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use crate::limits::{GLOB_MAX_ENTRIES, GLOB_MAX_FILES, GLOB_MAX_TIME};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GlobError {
    #[error("bad pattern: {0}")]
    Pattern(String),
    #[error("{0}; narrow the pattern")]
    TooLarge(String),
}

struct Budget {
    entries: usize,
    started: Instant,
}

impl Budget {
    fn entry(&mut self) -> Result<(), GlobError> {
        self.entries += 1;
        if self.entries > GLOB_MAX_ENTRIES {
            return Err(GlobError::TooLarge(format!(
                "the pattern looked at over {GLOB_MAX_ENTRIES} directory entries"
            )));
        }
        if self.entries.is_multiple_of(256) && self.started.elapsed() > GLOB_MAX_TIME {
            return Err(GlobError::TooLarge(format!(
                "expanding the pattern took over {} s",
                GLOB_MAX_TIME.as_secs()
            )));
        }
        Ok(())
    }
}

fn is_pattern(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

/// The paths an absolute pattern matches (files and whatever else; the caller
/// decides), sorted.
pub fn expand(pattern: &Path) -> Result<Vec<PathBuf>, GlobError> {
    let mut parts = Vec::new();
    for c in pattern.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {}
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| GlobError::Pattern("not valid UTF-8".into()))?
                    .to_owned(),
            ),
            Component::CurDir => {}
            Component::ParentDir => return Err(GlobError::Pattern("'..' in a pattern".into())),
        }
    }
    let mut matchers = Vec::with_capacity(parts.len());
    for p in &parts {
        matchers.push(if p == "**" {
            Part::Any
        } else if is_pattern(p) {
            Part::Glob(glob::Pattern::new(p).map_err(|e| GlobError::Pattern(e.to_string()))?)
        } else {
            Part::Literal(p.clone())
        });
    }
    let mut out = Vec::new();
    let mut budget = Budget {
        entries: 0,
        started: Instant::now(),
    };
    walk(PathBuf::from("/"), &matchers, &mut out, &mut budget)?;
    out.sort();
    out.dedup();
    Ok(out)
}

enum Part {
    Literal(String),
    Glob(glob::Pattern),
    Any,
}

fn found(path: PathBuf, out: &mut Vec<PathBuf>) -> Result<(), GlobError> {
    if out.len() >= GLOB_MAX_FILES {
        return Err(GlobError::TooLarge(format!(
            "the pattern matches over {GLOB_MAX_FILES} files"
        )));
    }
    out.push(path);
    Ok(())
}

fn walk(
    dir: PathBuf,
    rest: &[Part],
    out: &mut Vec<PathBuf>,
    budget: &mut Budget,
) -> Result<(), GlobError> {
    let Some((part, after)) = rest.split_first() else {
        if fs::symlink_metadata(&dir).is_ok() {
            found(dir, out)?;
        }
        return Ok(());
    };
    match part {
        Part::Literal(name) => walk(dir.join(name), after, out, budget),
        Part::Glob(pattern) => {
            let Ok(entries) = fs::read_dir(&dir) else {
                return Ok(());
            };
            for e in entries.flatten() {
                budget.entry()?;
                let name = e.file_name();
                if name.to_str().is_some_and(|n| pattern.matches(n)) {
                    walk(e.path(), after, out, budget)?;
                }
            }
            Ok(())
        }
        Part::Any => {
            // Zero directories, then each real subdirectory (not a symlink).
            walk(dir.clone(), after, out, budget)?;
            let Ok(entries) = fs::read_dir(&dir) else {
                return Ok(());
            };
            for e in entries.flatten() {
                budget.entry()?;
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(e.path(), rest, out, budget)?;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_loops_are_not_followed_by_double_star() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/x.txt"), "").unwrap();
        std::fs::write(root.join("a/b/y.txt"), "").unwrap();
        std::os::unix::fs::symlink(root, root.join("a/loop1")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/loop2")).unwrap();
        let got = expand(&root.join("**/*.txt")).unwrap();
        assert_eq!(got, vec![root.join("a/b/y.txt"), root.join("a/x.txt")]);
        assert_eq!(
            expand(&root.join("a/*.txt")).unwrap(),
            vec![root.join("a/x.txt")]
        );
        assert_eq!(
            expand(&root.join("a/x.txt")).unwrap(),
            vec![root.join("a/x.txt")]
        );
        assert!(expand(&root.join("a/none.txt")).unwrap().is_empty());
    }

    #[test]
    fn too_many_files_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..=GLOB_MAX_FILES {
            std::fs::write(tmp.path().join(format!("{i}.f")), "").unwrap();
        }
        assert!(matches!(
            expand(&tmp.path().join("*.f")),
            Err(GlobError::TooLarge(_))
        ));
    }
}
