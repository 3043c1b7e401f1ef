//! Temporary folders and state files, each unique to its test and removed when dropped.

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A name no other test of any running process uses: `gm-{label}-{pid}-{n}`.
fn unique(label: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("gm-{label}-{}-{n}", std::process::id()))
}

/// A fresh, empty folder in the system's temporary folder, removed with everything in it when dropped.
/// It dereferences to its [`Path`].
///
/// ```
/// let dir = gm_testkit::TempDir::new("doc");
/// std::fs::write(dir.join("a.txt"), "a").unwrap();
/// let path = dir.to_path_buf();
/// drop(dir);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes the folder; `label` says which test it belongs to.
    pub fn new(label: &str) -> Self {
        let dir = unique(label);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The folder as a string, for command-line arguments.
    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("the temporary folder's path is UTF-8")
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for TempDir {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of a SQLite state file in the system's temporary folder, not yet created, removed with its
/// `-wal` and `-shm` files when dropped. It dereferences to its [`Path`].
#[derive(Debug)]
pub struct StateFile(PathBuf);

impl StateFile {
    /// A path for a new state file; `label` says which test it belongs to.
    pub fn new(label: &str) -> Self {
        let mut path = unique(label).into_os_string();
        path.push(".sqlite");
        let path = PathBuf::from(path);
        remove_with_companions(&path);
        StateFile(path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for StateFile {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for StateFile {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for StateFile {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        remove_with_companions(&self.0);
    }
}

fn remove_with_companions(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_distinct_and_removed_when_dropped() {
        let (a, b) = (TempDir::new("kit"), TempDir::new("kit"));
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("x"), "x").unwrap();
        let kept = a.to_path_buf();
        drop(a);
        assert!(!kept.exists());
        assert!(b.is_dir());
    }

    #[test]
    fn a_state_file_takes_its_companions_with_it() {
        let f = StateFile::new("kit");
        let wal = PathBuf::from(format!("{}-wal", f.display()));
        std::fs::write(f.path(), "db").unwrap();
        std::fs::write(&wal, "wal").unwrap();
        let path = f.to_path_buf();
        drop(f);
        assert!(!path.exists() && !wal.exists());
    }
}
