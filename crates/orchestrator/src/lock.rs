use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::SyncError;

/// An exclusive lock on a state folder, held for the life of a sync. The OS releases
/// it when the process dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateLock {
    pub(crate) fn acquire(state_dir: &Path) -> Result<Self, SyncError> {
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
            Ok(()) => Ok(StateLock { _file: file }),
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
