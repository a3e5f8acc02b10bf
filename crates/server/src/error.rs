use std::net::SocketAddr;

use connectly_orchestrator::SyncError;

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unusable (nothing was started).
    #[error("{0}")]
    Config(String),
    /// The state folder is locked by another process, or its ledger is unusable.
    #[error("{0}")]
    State(#[from] SyncError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// Whether the error is the user's configuration (exit status 2) rather than the
    /// environment (state folder locked, port taken: exit status 3).
    pub fn is_config(&self) -> bool {
        matches!(self, ServerError::Config(_))
    }
}
