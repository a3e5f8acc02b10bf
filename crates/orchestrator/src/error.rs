use std::path::PathBuf;

use connectly_client::ClientError;

/// Why a sync could not run at all. Failures of single runs or sinks do not stop a
/// sync; they are reported in the [`crate::SyncReport`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Another process holds the state folder.
    #[error(
        "another connectly-sync is already running with state folder {path}; wait for it to finish (lock file {lock})"
    )]
    Locked {
        /// The state folder.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The state folder cannot be created or written.
    #[error("state folder {path}: {action}: {source}")]
    StateDir {
        /// The path involved.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger database failed.
    #[error("ledger {path}: {action}: {source}")]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// What was attempted.
        action: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Listing the reports failed.
    #[error("{0}")]
    List(#[from] ClientError),
    /// The sync options are unusable.
    #[error("invalid sync options: {0}")]
    Options(String),
}

impl SyncError {
    /// Whether running the sync again later may succeed without a change by a person.
    pub fn is_temporary(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            SyncError::Locked { .. } => true,
            SyncError::List(e) => e.is_temporary(),
            // A full disk or a busy database clears without a change to the setup.
            SyncError::StateDir { source, .. } => matches!(
                source.kind(),
                ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::Interrupted | ErrorKind::TimedOut
            ),
            SyncError::Ledger { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                )
            ),
            SyncError::Options(_) => false,
        }
    }
}
