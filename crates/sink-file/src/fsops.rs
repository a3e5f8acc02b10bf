//! Blocking file-system helpers: temporary names, hashing copies, folder syncs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The copy buffer: large enough for throughput, small enough to stay bounded.
const BUFFER_SIZE: usize = 1 << 20;

/// Distinguishes temporary files made by this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name for `final_name` in the same folder:
/// `.<final name>.tmp-<pid>-<counter>-<nanoseconds>`.
///
/// Final names end in `.csv` or `.manifest.json`; a temporary name starts with a dot
/// and ends in digits, so neither a reader's `*.csv` glob nor [`temp_owner`] can take
/// one for the other.
pub(crate) fn temp_name(final_name: &str) -> String {
    let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".{final_name}.tmp-{}-{counter}-{nanos}", std::process::id())
}

/// The process id that made `file_name`, if it is a temporary file [`temp_name`] made
/// for `final_name`. The suffix must be exactly three digit groups, so another run
/// whose encoded id happens to extend this one's (`a` and `a.csv.tmp-1`) is never
/// mistaken for it.
pub(crate) fn temp_owner(file_name: &str, final_name: &str) -> Option<u32> {
    let rest = file_name
        .strip_prefix('.')
        .and_then(|s| s.strip_prefix(final_name))
        .and_then(|s| s.strip_prefix(".tmp-"))?;
    let groups: Vec<&str> = rest.split('-').collect();
    let well_formed = groups.len() == 3
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
    if well_formed { groups[0].parse().ok() } else { None }
}

/// Whether the process that made a temporary file may still be writing it. Another
/// live process (a second sync with its own state folder delivering the same run into
/// the same folder) must keep its temporary file; only a dead writer's is a leftover.
/// Where liveness cannot be told (no `/proc`), every writer counts as alive.
pub(crate) fn writer_alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc/self");
    if !proc_root.exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A temporary file that is removed when dropped, unless it was published.
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Creates `dir/<temp name for final_name>`, failing if it exists.
    pub(crate) fn create(dir: &Path, final_name: &str) -> io::Result<(TempFile, File)> {
        let path = dir.join(temp_name(final_name));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok((TempFile { path, armed: true }, file))
    }

    /// Renames the file over `target` (atomic within a folder); it is no longer removed on drop.
    pub(crate) fn publish(mut self, target: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, target)?;
        self.armed = false;
        Ok(())
    }
}

impl TempFile {
    /// Deletes the file now, reporting failure (dropping only logs it).
    pub(crate) fn remove(mut self) -> io::Result<()> {
        self.armed = false;
        std::fs::remove_file(&self.path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed
            && let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "could not remove a temporary file");
        }
    }
}

/// Where a copy failed.
pub(crate) enum CopyError {
    /// Reading the source.
    Read(io::Error),
    /// Writing the destination.
    Write(io::Error),
}

/// What a hashing pass saw.
pub(crate) struct Digested {
    /// Bytes read.
    pub(crate) bytes: u64,
    /// SHA-256, lowercase hex.
    pub(crate) sha256: String,
}

/// Streams `src` into `dst` (if any) through a bounded buffer, hashing as it goes.
/// Stops reading once more than `limit` bytes were seen: the content is wrong then,
/// and the caller only needs to know it is longer.
pub(crate) fn copy_hashed(src: &mut impl Read, mut dst: Option<&mut File>, limit: u64) -> Result<Digested, CopyError> {
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    loop {
        let n = match src.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let chunk = &buffer[..n];
        hasher.update(chunk);
        bytes += n as u64;
        if let Some(file) = dst.as_deref_mut() {
            file.write_all(chunk).map_err(CopyError::Write)?;
        }
        if bytes > limit {
            break;
        }
    }
    Ok(Digested {
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Flushes a folder's entries (new names, renames) to disk.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Folders cannot be opened for syncing here; renames are as durable as the platform makes them.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_never_final() {
        for final_name in ["run-1.csv", "run-1.manifest.json", ".hidden.csv", "%2E%2E.csv"] {
            let name = temp_name(final_name);
            assert!(temp_owner(&name, final_name).is_some(), "{name}");
            assert!(name.starts_with('.'));
            assert!(!name.ends_with(".csv") && !name.ends_with(".json"), "{name}");
            assert_ne!(temp_name(final_name), name, "names repeat");
        }
    }

    #[test]
    fn other_runs_and_final_files_are_not_temp_files() {
        assert_eq!(temp_owner(".a.csv.tmp-1-2-3", "a.csv"), Some(1));
        assert!(temp_owner("a.csv", "a.csv").is_none());
        assert!(temp_owner(".a.csv", "a.csv").is_none());
        assert!(temp_owner(".a.csv.tmp-1-2", "a.csv").is_none());
        assert!(temp_owner(".a.csv.tmp-1-2-x", "a.csv").is_none());
        assert!(temp_owner(".a.csv.tmp-1--3", "a.csv").is_none());
        // The temporary file of run `a.csv.tmp-5` (file `a.csv.tmp-5.csv`).
        assert!(temp_owner(".a.csv.tmp-5.csv.tmp-1-2-3", "a.csv").is_none());
        assert!(temp_owner(".ab.csv.tmp-1-2-3", "a.csv").is_none());
    }

    #[test]
    fn copy_streams_and_hashes_across_buffers() {
        let content: Vec<u8> = (0..(BUFFER_SIZE * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let digested = copy_hashed(&mut content.as_slice(), None, u64::MAX).unwrap_or_else(|_| panic!("copy failed"));
        assert_eq!(digested.bytes, content.len() as u64);
        assert_eq!(digested.sha256, hex::encode(Sha256::digest(&content)));
        let short = copy_hashed(&mut content.as_slice(), None, 10).unwrap_or_else(|_| panic!("copy failed"));
        assert!(short.bytes > 10 && short.bytes <= BUFFER_SIZE as u64);
    }
}
