use std::error::Error;

/// A boxed error source.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why a sink could not deliver (or look up) a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// May pass on its own: retrying the same delivery later can succeed.
    #[error("{sink}: {message}")]
    Retriable {
        /// The sink's name.
        sink: String,
        /// What failed, on what.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Needs a person: retrying the same delivery will fail the same way.
    #[error("{sink}: {message}")]
    Permanent {
        /// The sink's name.
        sink: String,
        /// What failed, on what.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl SinkError {
    /// A failure that may pass on its own.
    pub fn retriable(sink: impl Into<String>, message: impl Into<String>) -> Self {
        SinkError::Retriable {
            sink: sink.into(),
            message: message.into(),
            source: None,
        }
    }

    /// A failure that needs a person.
    pub fn permanent(sink: impl Into<String>, message: impl Into<String>) -> Self {
        SinkError::Permanent {
            sink: sink.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, error: impl Into<BoxError>) -> Self {
        match &mut self {
            SinkError::Retriable { source, .. } | SinkError::Permanent { source, .. } => *source = Some(error.into()),
        }
        self
    }

    /// Whether retrying later may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SinkError::Retriable { .. })
    }

    /// The sink's name.
    pub fn sink(&self) -> &str {
        match self {
            SinkError::Retriable { sink, .. } | SinkError::Permanent { sink, .. } => sink,
        }
    }

    /// The message with every cause appended (`message: cause: cause`), for one-line reports.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = c.source();
        }
        out
    }
}
