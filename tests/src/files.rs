//! Walking directories and searching bytes in files.

use std::path::{Path, PathBuf};

/// Every file below `dir` (symlinks are listed, not followed); empty when
/// `dir` does not exist.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => out.extend(walk(&p)),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack` (an empty needle never does).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The files below `dir` whose bytes contain `needle`.
pub fn grep(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| contains(&b, needle)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grep_finds_nested_files_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/x"), b"..needle..").unwrap();
        std::fs::write(d.path().join("a/y"), b"hay").unwrap();
        assert_eq!(grep(d.path(), b"needle"), vec![d.path().join("a/b/x")]);
        assert!(grep(d.path(), b"absent").is_empty());
        assert!(!contains(b"abc", b""));
    }
}
