//! A test's own directory under the system temp directory, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `tunbridge-<tag>-<pid>-<n>`: unique per test in the process, gone after the test.
#[derive(Debug)]
pub struct TestDir(PathBuf);

/// The `n` of the next directory.
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl TestDir {
    /// A new, empty directory. A name another process left behind (one that had this pid
    /// before, perhaps as another user, so the directory may not even be ours to use) is
    /// passed over for the next.
    pub fn new(tag: &str) -> TestDir {
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("tunbridge-{tag}-{}-{n}", std::process::id());
            let dir = std::env::temp_dir().join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return TestDir(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("{}: {e}", dir.display()),
            }
        }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_left_behind_are_passed_over_and_kept() {
        let pid = std::process::id();
        let from = NEXT.load(Ordering::Relaxed);
        let left: Vec<PathBuf> = (from..from + 64)
            .map(|n| std::env::temp_dir().join(format!("tunbridge-left-{pid}-{n}")))
            .collect();
        for dir in &left {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("theirs"), b"keep").unwrap();
        }
        let ours = TestDir::new("left");
        assert!(!left.contains(&ours.0), "{}", ours.0.display());
        assert_eq!(ours.0.read_dir().unwrap().count(), 0, "new and empty");
        for dir in &left {
            assert_eq!(std::fs::read(dir.join("theirs")).unwrap(), b"keep");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
