//! Writing a report file whole or not at all.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A new file beside a target, moved over the target only once it is complete: a reader never sees half a
/// file, and a failed write leaves the target as it was. Removed when dropped unless persisted.
///
/// ```
/// use std::io::Write;
/// use gm_eval::report::AtomicFile;
///
/// let dir = std::env::temp_dir().join(format!("gm-atomic-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let target = dir.join("report.txt");
/// let (tmp, mut file) = AtomicFile::create_beside(&target).unwrap();
/// file.write_all(b"done\n").unwrap();
/// assert!(!target.exists(), "nothing is there until the file is complete");
/// tmp.persist(&target).unwrap();
/// assert_eq!(std::fs::read_to_string(&target).unwrap(), "done\n");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    persisted: bool,
}

impl AtomicFile {
    /// Creates a new, empty file in the folder of `target` (the current folder for a bare name), named after
    /// it and this process (`.NAME.PID.N.tmp`), never one that exists already.
    pub fn create_beside(target: &Path) -> io::Result<(AtomicFile, File)> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "gm".to_owned());
        let pid = std::process::id();
        for attempt in 0..100u32 {
            let path = dir.join(format!(".{name}.{pid}.{attempt}.tmp"));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((AtomicFile { path, persisted: false }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "too many temporary files are left over"))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file over `target` (write and sync it first).
    pub fn persist(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.persisted = true;
        Ok(())
    }

    /// Copies the contents to `out` (standard output, a device), then removes the file.
    pub fn copy_to(self, out: &mut impl Write) -> io::Result<()> {
        let mut file = File::open(&self.path)?;
        io::copy(&mut file, out)?;
        out.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Renders into a file beside `path` and moves it over `path` once complete, synced; when rendering or
/// writing fails, `path` is left as it was and nothing else remains.
pub fn write_atomically(path: &Path, render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let (tmp, file) = AtomicFile::create_beside(path)?;
    let mut w = BufWriter::new(file);
    render(&mut w)?;
    w.flush()?;
    w.get_ref().sync_all()?;
    drop(w);
    tmp.persist(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gm-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    }

    #[test]
    fn a_written_file_replaces_the_target_and_leaves_nothing_else() {
        let dir = scratch("ok");
        let target = dir.join("r.html");
        fs::write(&target, "old").unwrap();
        write_atomically(&target, |w| w.write_all(b"new")).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(names(&dir), ["r.html"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_render_leaves_the_target_as_it_was_and_no_temporary_file() {
        let dir = scratch("fail");
        let target = dir.join("r.xml");
        fs::write(&target, "old").unwrap();
        let e = write_atomically(&target, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("the renderer failed"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "the renderer failed");
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(names(&dir), ["r.xml"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_names_never_collide() {
        let dir = scratch("names");
        let target = dir.join("s.jsonl");
        let (a, _) = AtomicFile::create_beside(&target).unwrap();
        let (b, _) = AtomicFile::create_beside(&target).unwrap();
        assert_ne!(a.path(), b.path());
        drop((a, b));
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
