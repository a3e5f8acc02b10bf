use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::SyncError;

/// An exclusive lock on a state folder (`STATE/lock`), held for the life of a sync, or
/// of a long-running process that syncs in-process ([`crate::Syncer::run_locked`]).
/// The OS releases it when the process dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    state_dir: PathBuf,
}

impl StateLock {
    /// Takes the lock of `state_dir` (which must exist), or fails with
    /// [`SyncError::Locked`] when another process holds it.
    pub fn acquire(state_dir: &Path) -> Result<Self, SyncError> {
        let lock: PathBuf = state_dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| SyncError::StateDir {
                path: lock.clone(),
                action: "opening the lock file",
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock {
                _file: file,
                state_dir: state_dir.to_path_buf(),
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(SyncError::Locked {
                path: state_dir.to_path_buf(),
                lock,
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(SyncError::StateDir {
                path: lock,
                action: "locking the state folder",
                source,
            }),
        }
    }
}

impl StateLock {
    /// The locked state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}
