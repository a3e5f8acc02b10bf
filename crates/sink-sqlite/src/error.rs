//! The crate's one internal error type, classified and mapped to [`SinkError`] at the
//! trait boundary.

use std::io;
use std::path::PathBuf;

use connectly_csv::CsvError;
use connectly_sink::SinkError;
use rusqlite::ErrorCode;

/// Everything that can go wrong inside the sink. Each message says what failed on what;
/// the sink's name is prefixed by [`SinkError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The database's folder could not be created.
    #[error("creating the database folder {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },

    /// A SQLite call failed; `doing` says what was being done (and on which table).
    #[error("{doing}: {source}")]
    Sqlite { doing: String, source: rusqlite::Error },

    /// The database holds something this version cannot work with.
    #[error("{0}")]
    Schema(String),

    /// The spool file could not be opened or read.
    #[error("reading spool file {} of run {run_id}: {source}", path.display())]
    Spool {
        run_id: String,
        path: PathBuf,
        source: io::Error,
    },

    /// The spooled CSV is malformed or does not hold what its columns promise.
    #[error("run {run_id}: bad CSV in spool file {}: {source}", path.display())]
    Csv {
        run_id: String,
        path: PathBuf,
        source: Box<CsvError>,
    },

    /// The spool's content is not what the orchestrator declared.
    #[error(transparent)]
    Mismatch(Box<SpoolMismatch>),

    /// The run is already in the database with other content.
    #[error(
        "run {run_id} of report {report_id} was already loaded with other content \
         (SHA-256 {held}… in the database, {offered}… offered now); refusing to overwrite it"
    )]
    Conflict {
        run_id: String,
        report_id: String,
        held: String,
        offered: String,
    },

    /// The data cannot be stored as the schema requires (reserved or clashing column names, limits).
    #[error("run {run_id}: {problem}")]
    Unstorable { run_id: String, problem: String },

    /// The blocking task did not finish (it panicked or the runtime is shutting down).
    #[error("the SQLite worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Spool content that differs from its declared size or SHA-256.
#[derive(Debug, thiserror::Error)]
#[error(
    "run {run_id}: spool file {} does not match its declared content: read {got_bytes} bytes with \
     SHA-256 {got_sha}, expected {want_bytes} bytes with SHA-256 {want_sha}{csv_note}",
    path.display()
)]
pub(crate) struct SpoolMismatch {
    pub(crate) run_id: String,
    pub(crate) path: PathBuf,
    pub(crate) got_bytes: u64,
    pub(crate) got_sha: String,
    pub(crate) want_bytes: u64,
    pub(crate) want_sha: String,
    /// Set when the content also failed to parse (`; the CSV also failed: ...`).
    pub(crate) csv_note: String,
}

impl Error {
    /// Wraps a SQLite error with what was being done.
    pub(crate) fn sqlite(doing: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Sqlite { doing, source }
    }

    /// Whether retrying the same call later may succeed.
    pub(crate) fn is_retriable(&self) -> bool {
        match self {
            Error::Sqlite { source, .. } => sqlite_is_transient(source),
            // The spool is a local file the orchestrator keeps: a missing one will stay
            // missing, other read failures (EIO, interrupted, too many open files) may pass.
            Error::Spool { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::IsADirectory
            ),
            Error::Csv { source, .. } => matches!(**source, CsvError::Io(_)),
            Error::CreateDir { .. }
            | Error::Schema(_)
            | Error::Mismatch { .. }
            | Error::Conflict { .. }
            | Error::Unstorable { .. }
            | Error::Task(_) => false,
        }
    }

    /// Maps to the trait's error, naming the sink.
    pub(crate) fn into_sink_error(self, sink: &str) -> SinkError {
        let message = self.to_string();
        let error = if self.is_retriable() {
            SinkError::retriable(sink, message)
        } else {
            SinkError::permanent(sink, message)
        };
        error.with_source(self)
    }
}

/// Busy/locked databases, I/O errors, a full disk and memory pressure may pass on
/// their own; everything else (cannot open, read-only, corrupt, not a database,
/// constraint or schema errors) needs a person.
fn sqlite_is_transient(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
        )
    )
}
